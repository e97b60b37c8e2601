//! Tests of `aarch64_sha2.s` on the build machine: an interpreter of exactly the AArch64
//! instructions that file uses (integer moves and arithmetic on x registers and SP, `CBZ`,
//! `B.NE`, `LD1`/`ST1` with register lists, `REV32`/`REV64`, `MOV`/`ADD`/`EXT` on vectors,
//! and the FEAT_SHA256 / FEAT_SHA512 instructions with their architectural semantics), which
//! runs the routines on random blocks and states and compares them with the software engine.
//! An instruction it does not know fails the test, so the file cannot grow past the model.

extern crate std;

use crate::engine::{Sha2Engine, Software, SHA256_K, SHA512_K};
use std::collections::HashMap;
use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

const SOURCE: &str = include_str!("aarch64_sha2.s");

/// One parsed line: an optional numeric label and an instruction.
#[derive(Clone, Debug)]
struct Insn {
    op: String,
    args: Vec<String>,
}

struct Program {
    insns: Vec<Insn>,
    /// (label number, index of the instruction it precedes).
    labels: Vec<(u32, usize)>,
    globals: HashMap<String, usize>,
}

fn strip_comments(src: &str) -> String {
    let mut out = String::new();
    let mut rest = src;
    while let Some(i) = rest.find("/*") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find("*/").expect("unterminated comment") + i + 2;
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Splits operands at top-level commas (not inside `{...}` or `[...]`).
fn split_args(s: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            args.push(cur.trim().to_string());
            cur.clear();
        } else {
            cur.push(c);
        }
    }
    if !cur.trim().is_empty() {
        args.push(cur.trim().to_string());
    }
    args
}

fn parse(src: &str) -> Program {
    let mut p = Program {
        insns: Vec::new(),
        labels: Vec::new(),
        globals: HashMap::new(),
    };
    for raw in strip_comments(src).lines() {
        let mut line = raw.trim();
        if line.is_empty() || line.starts_with('.') {
            continue;
        }
        if let Some((label, rest)) = line.split_once(':') {
            if let Ok(n) = label.trim().parse::<u32>() {
                p.labels.push((n, p.insns.len()));
            } else {
                p.globals.insert(label.trim().to_string(), p.insns.len());
            }
            line = rest.trim();
            if line.is_empty() {
                continue;
            }
        }
        let (op, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        p.insns.push(Insn {
            op: op.to_string(),
            args: split_args(rest),
        });
    }
    p
}

/// The machine state the routines can touch.
struct Machine {
    x: [u64; 31],
    sp: u64,
    v: [[u64; 2]; 32],
    mem: Vec<u8>,
    nz: bool,
}

const MEM: usize = 0x10000;

impl Machine {
    fn xreg(&self, name: &str) -> u64 {
        if name == "sp" {
            return self.sp;
        }
        let n: usize = name
            .strip_prefix('x')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not an x register: {name}"));
        self.x[n]
    }

    fn set_xreg(&mut self, name: &str, val: u64) {
        if name == "sp" {
            self.sp = val;
            return;
        }
        let n: usize = name
            .strip_prefix('x')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not an x register: {name}"));
        self.x[n] = val;
    }

    fn load(&self, addr: u64) -> [u64; 2] {
        let a = addr as usize;
        assert!(a + 16 <= MEM, "load outside memory at {addr:#x}");
        let b = &self.mem[a..a + 16];
        [
            u64::from_le_bytes(b[..8].try_into().unwrap()),
            u64::from_le_bytes(b[8..].try_into().unwrap()),
        ]
    }

    fn store(&mut self, addr: u64, v: [u64; 2]) {
        let a = addr as usize;
        assert!(a + 16 <= MEM, "store outside memory at {addr:#x}");
        self.mem[a..a + 8].copy_from_slice(&v[0].to_le_bytes());
        self.mem[a + 8..a + 16].copy_from_slice(&v[1].to_le_bytes());
    }
}

/// `v12.4s`, `q3`, `v0.16b` -> (register number, arrangement).
fn vreg(s: &str) -> (usize, &str) {
    let s = s.trim();
    let (body, arr) = s.split_once('.').unwrap_or((s, ""));
    let n = body
        .strip_prefix('v')
        .or_else(|| body.strip_prefix('q'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a vector register: {s}"));
    (n, arr)
}

/// `{v4.16b-v7.16b}` -> register numbers.
fn vlist(s: &str) -> Vec<usize> {
    let inner = s.trim().trim_start_matches('{').trim_end_matches('}');
    if let Some((a, b)) = inner.split_once('-') {
        let (first, _) = vreg(a);
        let (last, _) = vreg(b);
        (first..=last).collect()
    } else {
        inner.split(',').map(|r| vreg(r).0).collect()
    }
}

fn imm(s: &str) -> u64 {
    let s = s.trim().trim_start_matches('#');
    s.parse()
        .unwrap_or_else(|_| panic!("not an immediate: {s}"))
}

fn words(v: [u64; 2]) -> [u32; 4] {
    [
        v[0] as u32,
        (v[0] >> 32) as u32,
        v[1] as u32,
        (v[1] >> 32) as u32,
    ]
}

fn from_words(w: [u32; 4]) -> [u64; 2] {
    [
        u64::from(w[0]) | u64::from(w[1]) << 32,
        u64::from(w[2]) | u64::from(w[3]) << 32,
    ]
}

fn ch32(x: u32, y: u32, z: u32) -> u32 {
    (x & y) ^ (!x & z)
}
fn maj32(x: u32, y: u32, z: u32) -> u32 {
    (x & y) ^ (x & z) ^ (y & z)
}
fn big_s0_32(x: u32) -> u32 {
    x.rotate_right(2) ^ x.rotate_right(13) ^ x.rotate_right(22)
}
fn big_s1_32(x: u32) -> u32 {
    x.rotate_right(6) ^ x.rotate_right(11) ^ x.rotate_right(25)
}
fn s0_32(x: u32) -> u32 {
    x.rotate_right(7) ^ x.rotate_right(18) ^ (x >> 3)
}
fn s1_32(x: u32) -> u32 {
    x.rotate_right(17) ^ x.rotate_right(19) ^ (x >> 10)
}
fn big_s0_64(x: u64) -> u64 {
    x.rotate_right(28) ^ x.rotate_right(34) ^ x.rotate_right(39)
}
fn big_s1_64(x: u64) -> u64 {
    x.rotate_right(14) ^ x.rotate_right(18) ^ x.rotate_right(41)
}
fn s0_64(x: u64) -> u64 {
    x.rotate_right(1) ^ x.rotate_right(8) ^ (x >> 7)
}
fn s1_64(x: u64) -> u64 {
    x.rotate_right(19) ^ x.rotate_right(61) ^ (x >> 6)
}
fn ch64(x: u64, y: u64, z: u64) -> u64 {
    (x & y) ^ (!x & z)
}
fn maj64(x: u64, y: u64, z: u64) -> u64 {
    (x & y) ^ (x & z) ^ (y & z)
}

/// SHA256H (`part1`: the new ABCD from Vd = ABCD, Vn = EFGH) and SHA256H2 (the new EFGH
/// from Vd = EFGH, Vn = ABCD): four rounds with W + K in Vm.
fn sha256_rounds(abcd: [u32; 4], efgh: [u32; 4], wk: [u32; 4], part1: bool) -> [u32; 4] {
    let (mut x, mut y) = (abcd, efgh);
    for w in wk {
        let t1 = y[3]
            .wrapping_add(big_s1_32(y[0]))
            .wrapping_add(ch32(y[0], y[1], y[2]))
            .wrapping_add(w);
        let t2 = big_s0_32(x[0]).wrapping_add(maj32(x[0], x[1], x[2]));
        y = [x[3].wrapping_add(t1), y[0], y[1], y[2]];
        x = [t1.wrapping_add(t2), x[0], x[1], x[2]];
    }
    if part1 {
        x
    } else {
        y
    }
}

fn step(m: &mut Machine, i: &Insn) {
    let a = &i.args;
    match i.op.as_str() {
        "sub" | "add" if !a[0].starts_with('v') => {
            let l = m.xreg(&a[1]);
            let r = imm(&a[2]);
            let v = if i.op == "sub" {
                l.wrapping_sub(r)
            } else {
                l.wrapping_add(r)
            };
            m.set_xreg(&a[0], v);
        }
        "subs" => {
            let v = m.xreg(&a[1]).wrapping_sub(imm(&a[2]));
            m.set_xreg(&a[0], v);
            m.nz = v != 0;
        }
        "mov" if !a[0].starts_with('v') => {
            let v = m.xreg(&a[1]);
            m.set_xreg(&a[0], v);
        }
        "mov" => {
            let (d, _) = vreg(&a[0]);
            let (n, _) = vreg(&a[1]);
            m.v[d] = m.v[n];
        }
        "ld1" | "st1" => {
            let regs = vlist(&a[0]);
            let base = a[1].trim_start_matches('[').trim_end_matches(']');
            let mut addr = m.xreg(base);
            for r in &regs {
                if i.op == "ld1" {
                    m.v[*r] = m.load(addr);
                } else {
                    m.store(addr, m.v[*r]);
                }
                addr += 16;
            }
            if let Some(post) = a.get(2) {
                assert_eq!(imm(post), 16 * regs.len() as u64, "post-index size");
                m.set_xreg(base, addr);
            }
        }
        "rev32" | "rev64" => {
            let (d, _) = vreg(&a[0]);
            let (n, _) = vreg(&a[1]);
            let v = m.v[n];
            m.v[d] = if i.op == "rev64" {
                [v[0].swap_bytes(), v[1].swap_bytes()]
            } else {
                from_words(words(v).map(u32::swap_bytes))
            };
        }
        "add" => {
            let (d, arr) = vreg(&a[0]);
            let (n, _) = vreg(&a[1]);
            let (k, _) = vreg(&a[2]);
            m.v[d] = match arr {
                "2d" => [
                    m.v[n][0].wrapping_add(m.v[k][0]),
                    m.v[n][1].wrapping_add(m.v[k][1]),
                ],
                "4s" => {
                    let (x, y) = (words(m.v[n]), words(m.v[k]));
                    from_words(core::array::from_fn(|j| x[j].wrapping_add(y[j])))
                }
                other => panic!("add with arrangement {other}"),
            };
        }
        "ext" => {
            let (d, _) = vreg(&a[0]);
            let (n, _) = vreg(&a[1]);
            let (k, _) = vreg(&a[2]);
            assert_eq!(imm(&a[3]), 8, "only EXT #8 is modelled");
            m.v[d] = [m.v[n][1], m.v[k][0]];
        }
        "sha256h" | "sha256h2" => {
            let (d, _) = vreg(&a[0]);
            let (n, _) = vreg(&a[1]);
            let (k, _) = vreg(&a[2]);
            let (vd, vn, wk) = (words(m.v[d]), words(m.v[n]), words(m.v[k]));
            m.v[d] = from_words(if i.op == "sha256h" {
                sha256_rounds(vd, vn, wk, true)
            } else {
                sha256_rounds(vn, vd, wk, false)
            });
        }
        "sha256su0" => {
            let (d, _) = vreg(&a[0]);
            let (n, _) = vreg(&a[1]);
            let (w, x) = (words(m.v[d]), words(m.v[n]));
            let next = [w[1], w[2], w[3], x[0]];
            m.v[d] = from_words(core::array::from_fn(|j| w[j].wrapping_add(s0_32(next[j]))));
        }
        "sha256su1" => {
            let (d, _) = vreg(&a[0]);
            let (n, _) = vreg(&a[1]);
            let (k, _) = vreg(&a[2]);
            let (w, x, y) = (words(m.v[d]), words(m.v[n]), words(m.v[k]));
            // W[t+9..t+12] = x[1..3], y[0]; sigma1 of W[t+14..t+15] = y[2..3], then of the
            // two results just computed.
            let mut r = [0u32; 4];
            r[0] = w[0].wrapping_add(s1_32(y[2])).wrapping_add(x[1]);
            r[1] = w[1].wrapping_add(s1_32(y[3])).wrapping_add(x[2]);
            r[2] = w[2].wrapping_add(s1_32(r[0])).wrapping_add(x[3]);
            r[3] = w[3].wrapping_add(s1_32(r[1])).wrapping_add(y[0]);
            m.v[d] = from_words(r);
        }
        "sha512h" => {
            let (d, _) = vreg(&a[0]);
            let (n, _) = vreg(&a[1]);
            let (k, _) = vreg(&a[2]);
            let (w, x, y) = (m.v[d], m.v[n], m.v[k]);
            let hi = ch64(y[1], x[0], x[1])
                .wrapping_add(big_s1_64(y[1]))
                .wrapping_add(w[1]);
            let t = hi.wrapping_add(y[0]);
            let lo = ch64(t, y[1], x[0])
                .wrapping_add(big_s1_64(t))
                .wrapping_add(w[0]);
            m.v[d] = [lo, hi];
        }
        "sha512h2" => {
            let (d, _) = vreg(&a[0]);
            let (n, _) = vreg(&a[1]);
            let (k, _) = vreg(&a[2]);
            let (w, x, y) = (m.v[d], m.v[n], m.v[k]);
            let hi = maj64(x[0], y[1], y[0])
                .wrapping_add(big_s0_64(y[0]))
                .wrapping_add(w[1]);
            let lo = maj64(hi, y[0], y[1])
                .wrapping_add(big_s0_64(hi))
                .wrapping_add(w[0]);
            m.v[d] = [lo, hi];
        }
        "sha512su0" => {
            let (d, _) = vreg(&a[0]);
            let (n, _) = vreg(&a[1]);
            let (w, x) = (m.v[d], m.v[n]);
            m.v[d] = [
                w[0].wrapping_add(s0_64(w[1])),
                w[1].wrapping_add(s0_64(x[0])),
            ];
        }
        "sha512su1" => {
            let (d, _) = vreg(&a[0]);
            let (n, _) = vreg(&a[1]);
            let (k, _) = vreg(&a[2]);
            let (w, x, y) = (m.v[d], m.v[n], m.v[k]);
            m.v[d] = [
                w[0].wrapping_add(s1_64(x[0])).wrapping_add(y[0]),
                w[1].wrapping_add(s1_64(x[1])).wrapping_add(y[1]),
            ];
        }
        other => panic!("instruction {other} is not modelled: {i:?}"),
    }
}

/// Runs the routine `name` to its `ret`; returns the number of instructions executed.
fn run(p: &Program, name: &str, m: &mut Machine) -> u64 {
    let mut pc = p.globals[name];
    let mut count = 0;
    let target = |p: &Program, pc: usize, label: &str| -> usize {
        let (n, dir) = label.split_at(label.len() - 1);
        let n: u32 = n.parse().unwrap();
        match dir {
            "b" => {
                p.labels
                    .iter()
                    .rev()
                    .find(|(l, at)| *l == n && *at <= pc)
                    .unwrap()
                    .1
            }
            "f" => {
                p.labels
                    .iter()
                    .find(|(l, at)| *l == n && *at > pc)
                    .unwrap()
                    .1
            }
            _ => panic!("label {label}"),
        }
    };
    loop {
        let i = &p.insns[pc];
        count += 1;
        assert!(count < 10_000_000, "runaway");
        match i.op.as_str() {
            "ret" => return count,
            "cbz" => {
                if m.xreg(&i.args[0]) == 0 {
                    pc = target(p, pc, &i.args[1]);
                    continue;
                }
            }
            "b.ne" => {
                if m.nz {
                    pc = target(p, pc, &i.args[0]);
                    continue;
                }
            }
            _ => step(m, i),
        }
        pc += 1;
    }
}

/// Memory layout: the state at 0x100, the constants at 0x200, the blocks from 0x1000, the
/// stack below 0xF000.
const STATE: u64 = 0x100;
const KTAB: u64 = 0x200;
const DATA: u64 = 0x1000;
const STACK_TOP: u64 = 0xF000;

fn machine(seed: u64) -> Machine {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut m = Machine {
        x: [0; 31],
        sp: STACK_TOP,
        v: [[0; 2]; 32],
        mem: vec![0; MEM],
        nz: false,
    };
    for v in m.v.iter_mut() {
        *v = [next(), next()];
    }
    for b in m.mem.iter_mut() {
        *b = next() as u8;
    }
    for r in m.x.iter_mut().skip(6) {
        *r = next();
    }
    m
}

/// Runs one routine on `m` and checks what it must leave alone: every SIMD register, SP,
/// x6 and above, and memory outside the state and the stack below SP.
fn run_checked(p: &Program, name: &str, m: &mut Machine, state_len: usize) -> u64 {
    let before_v = m.v;
    let before_x = m.x;
    let before_mem = m.mem.clone();
    let n = run(p, name, m);
    assert_eq!(m.v, before_v, "{name} changed a SIMD register");
    assert_eq!(m.sp, STACK_TOP, "{name} left SP moved");
    assert_eq!(m.x[6..], before_x[6..], "{name} changed x6 or above");
    for (a, (now, was)) in m.mem.iter().zip(&before_mem).enumerate() {
        let a = a as u64;
        let state = (STATE..STATE + state_len as u64).contains(&a);
        let stack = (STACK_TOP - 1024..STACK_TOP).contains(&a);
        assert!(
            state || stack || now == was,
            "{name} wrote outside its state and stack at {a:#x}"
        );
    }
    n
}

#[test]
fn the_sha256_routine_computes_the_compression_function() {
    let p = parse(SOURCE);
    for (seed, blocks) in [(1u64, 1usize), (2, 2), (3, 5), (4, 64)] {
        let mut m = machine(seed);
        let mut state: [u32; 8] =
            core::array::from_fn(|i| (seed as u32).wrapping_mul(0x0101_0101) ^ i as u32);
        for (i, k) in SHA256_K.iter().enumerate() {
            m.mem[KTAB as usize + 4 * i..KTAB as usize + 4 * i + 4]
                .copy_from_slice(&k.to_le_bytes());
        }
        for (i, s) in state.iter().enumerate() {
            m.mem[STATE as usize + 4 * i..STATE as usize + 4 * i + 4]
                .copy_from_slice(&s.to_le_bytes());
        }
        let data = m.mem[DATA as usize..DATA as usize + 64 * blocks].to_vec();
        m.x[0] = STATE;
        m.x[1] = DATA;
        m.x[2] = blocks as u64;
        m.x[3] = KTAB;
        let n = run_checked(&p, "fw_sha256_blocks", &mut m, 32);
        Software.sha256_blocks(&mut state, &data);
        let got: [u32; 8] = core::array::from_fn(|i| {
            u32::from_le_bytes(
                m.mem[STATE as usize + 4 * i..STATE as usize + 4 * i + 4]
                    .try_into()
                    .unwrap(),
            )
        });
        assert_eq!(got, state, "{blocks} blocks");
        // About a hundred instructions a block (docs/performance.md).
        assert!(
            n < 40 + 105 * blocks as u64,
            "{n} instructions for {blocks} blocks"
        );
    }
}

#[test]
fn the_sha512_routine_computes_the_compression_function() {
    let p = parse(SOURCE);
    for (seed, blocks) in [(5u64, 1usize), (6, 2), (7, 3), (8, 33)] {
        let mut m = machine(seed);
        let mut state: [u64; 8] =
            core::array::from_fn(|i| seed.wrapping_mul(0x0101_0101_0101_0101) ^ i as u64);
        for (i, k) in SHA512_K.iter().enumerate() {
            m.mem[KTAB as usize + 8 * i..KTAB as usize + 8 * i + 8]
                .copy_from_slice(&k.to_le_bytes());
        }
        for (i, s) in state.iter().enumerate() {
            m.mem[STATE as usize + 8 * i..STATE as usize + 8 * i + 8]
                .copy_from_slice(&s.to_le_bytes());
        }
        let data = m.mem[DATA as usize..DATA as usize + 128 * blocks].to_vec();
        m.x[0] = STATE;
        m.x[1] = DATA;
        m.x[2] = blocks as u64;
        m.x[3] = KTAB;
        run_checked(&p, "fw_sha512_blocks", &mut m, 64);
        Software.sha512_blocks(&mut state, &data);
        let got: [u64; 8] = core::array::from_fn(|i| {
            u64::from_le_bytes(
                m.mem[STATE as usize + 8 * i..STATE as usize + 8 * i + 8]
                    .try_into()
                    .unwrap(),
            )
        });
        assert_eq!(got, state, "{blocks} blocks");
    }
}

#[test]
fn zero_blocks_change_nothing() {
    let p = parse(SOURCE);
    for (name, len) in [("fw_sha256_blocks", 32), ("fw_sha512_blocks", 64)] {
        let mut m = machine(9);
        let before = m.mem.clone();
        m.x[0] = STATE;
        m.x[1] = DATA;
        m.x[2] = 0;
        m.x[3] = KTAB;
        let n = run_checked(&p, name, &mut m, len);
        assert_eq!(m.mem, before, "{name}");
        assert_eq!(n, 2, "{name}: CBZ and RET");
    }
}

#[test]
fn the_model_refuses_what_it_does_not_know() {
    let p = parse("f:\n    eor v0.16b, v1.16b, v2.16b\n    ret\n");
    let r = std::panic::catch_unwind(|| {
        let mut m = machine(1);
        run(&p, "f", &mut m)
    });
    assert!(r.is_err());
    let _ = format!("{:?}", p.insns[0]);
}
