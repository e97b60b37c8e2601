//! The hostile realm: the payload's fuzz mode (`cargo xtask fuzz realm --calls N --seed S`).
//!
//! The host enters REC 0 with `x0` = [`ENTRY_MAGIC`]; the payload then asks it for N and S
//! (`RSI_HOST_CALL` [`HOST_CALL_PARAMS`]) and runs N iterations, each one random operation
//! ([`gen`]): RSI and PSCI calls with random arguments, SMCs with random function IDs and
//! immediates, HVCs, SVCs, system register reads and writes, loads, stores, exclusives,
//! atomics, cache and TLB maintenance and instruction fetches at every kind of IPA (its own
//! memory read-only, RAM whose RIPAS it changes at random, EMPTY memory, the unprotected
//! half, beyond the IPA space, unaligned), FP/SIMD, SVE and SME instructions with and without
//! their traps, debug instructions and hints, WFE/WFI/WFIT/WFET/CPU_SUSPEND, ERET with random
//! SPSRs, code at EL0, MMIO to the host's devices, and `CPU_ON` of REC 1 (which runs a few
//! operations of its own and turns itself off).
//!
//! Every exception is taken by the fuzz mode's own vectors ([`vectors`]), counted per class
//! and outcome, and the run continues. Invariants the RMM and the host must keep (an HVC is
//! an UNDEF, memory that is never RAM answers with an SEA, FP registers survive exits, the
//! payload's memory stays RAM, ...) are checked on each outcome; a broken one is a
//! violation. At the end the payload prints the counts, `FUZZ REALM RESULT: PASS` (or
//! `FAIL`), reports to the host ([`HOST_CALL_DONE`], then the usual verdict) and powers off.
//! `docs/realm-payload.md` ("Hostile realm") lists what is excluded and why.

mod exec;
// Parts of the generator are used only by its tests and the documentation.
#[allow(dead_code)]
pub mod gen;
mod map;
mod vectors;

use crate::println;
use cca_abi::rsi::HOST_CALL_NR_GPRS;
use cca_rsi::{AffinityState, Rsi, RsiHostCall, Smc};
use core::sync::atomic::{AtomicU64, Ordering};
use fw_support::read_sysreg;
use gen::{Ctx, Rng, ALL_OUTCOMES, CLASSES, OUTCOMES};

/// REC 0's `x0` that selects the fuzz mode ("FUZZREAL").
pub const ENTRY_MAGIC: u64 = u64::from_le_bytes(*b"FUZZREAL");
/// Host call: the fuzz parameters (the host answers `gprs[0]` = iterations, `gprs[1]` =
/// seed).
pub const HOST_CALL_PARAMS: u16 = 0xCCA4;
/// Host call: the totals (`gprs[0]` iterations, `gprs[1]` violations, `gprs[2]` exceptions,
/// `gprs[3]` seed).
pub const HOST_CALL_DONE: u16 = 0xCCA5;
/// The iteration count's bits (the ones above select a single class).
const ONLY_MASK: u64 = (1 << 48) - 1;
/// Operations REC 1 runs each time it is started.
const REC1_OPS: u64 = 24;
/// Violations printed in full.
const PRINTED_VIOLATIONS: u64 = 16;

/// The scratch buffer: the only part of the payload's memory stores and RMM writes reach.
#[repr(C, align(4096))]
struct Scratch([u64; (gen::SCRATCH_SIZE / 8) as usize]);

/// Written only through raw pointers (by the fuzzer and the RMM); never read as a Rust
/// object.
static mut FUZZ_SCRATCH: Scratch = Scratch([0; (gen::SCRATCH_SIZE / 8) as usize]);

static COUNTS: [[AtomicU64; OUTCOMES]; CLASSES.len()] =
    [const { [const { AtomicU64::new(0) }; OUTCOMES] }; CLASSES.len()];
static EXCEPTIONS: AtomicU64 = AtomicU64::new(0);
static VIOLATIONS: AtomicU64 = AtomicU64::new(0);
static REC1_SEED: AtomicU64 = AtomicU64::new(0);
static REC1_RUNS: AtomicU64 = AtomicU64::new(0);
static REC1_DONE: AtomicU64 = AtomicU64::new(0);

fn ctx(rec1: bool) -> Ctx {
    Ctx {
        scratch_ipa: (&raw const FUZZ_SCRATCH) as u64,
        secondary_entry: crate::entry::secondary_entry(),
        sysregs: exec::SYSREGS.len(),
        rec1,
    }
}

fn record(rec: u64, i: u64, op: &gen::Op, d: &exec::Done) {
    COUNTS[op.class as usize][d.outcome as usize].fetch_add(1, Ordering::Relaxed);
    if d.esr != 0 || d.outcome as usize >= gen::Outcome::Undef as usize {
        EXCEPTIONS.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(what) = d.violation {
        let n = VIOLATIONS.fetch_add(1, Ordering::Relaxed);
        if n < PRINTED_VIOLATIONS {
            println!(
                "fuzz VIOLATION {} on REC {rec} at iteration {i}: {what}: {} kind {} addr {:#x} \
                 args {:x?}, outcome {} ESR {:#x} value {:#x}",
                n + 1,
                op.class.name(),
                op.kind,
                op.addr,
                op.args,
                d.outcome.name(),
                d.esr,
                d.value
            );
        }
    }
}

fn host_call(imm: u16, gprs: [u64; HOST_CALL_NR_GPRS]) -> [u64; HOST_CALL_NR_GPRS] {
    let mut call = RsiHostCall::new(imm, gprs);
    let mut rsi = Rsi::new(Smc);
    match rsi.host_call(&mut call) {
        Ok(()) => call.gprs,
        Err(e) => crate::fatal::report(format_args!("fuzz: host call {imm:#x} failed: {e:?}")),
    }
}

/// REC 0 in fuzz mode: asks for the parameters, runs, reports, powers off.
pub fn run() -> ! {
    vectors::install();
    let c = ctx(false);
    map::build(|w| exec::runtime_ipa(w, &c));
    map::enable();
    let p = host_call(HOST_CALL_PARAMS, [0; HOST_CALL_NR_GPRS]);
    // Bits 63:48 of the count, if set, restrict the run to one class (its index + 1).
    let (calls, only, seed) = (p[0] & ONLY_MASK, p[0] >> 48, p[1]);
    println!(
        "fuzz mode: {calls} iterations, seed {seed:#x}; {} classes, {} windows at {:#x}, {} \
         system registers, scratch at {:#x}",
        CLASSES.len(),
        gen::win::COUNT,
        gen::WINDOW_VA,
        exec::SYSREGS.len(),
        c.scratch_ipa
    );
    REC1_SEED.store(seed ^ 0x5EC0_4D00_F022_0001, Ordering::Relaxed);
    let mut rng = Rng::new(seed);
    let trace = calls <= 64;
    let step = (calls / 10).max(1);
    let start = read_sysreg!(cntvct_el0);
    for i in 0..calls {
        let mut op = gen::next(&mut rng, &c);
        while only != 0 && op.class as u64 != only - 1 {
            op = gen::next(&mut rng, &c);
        }
        if trace {
            println!(
                "fuzz op {i}: {} kind {} addr {:#x} args {:x?}",
                op.class.name(),
                op.kind,
                op.addr,
                op.args
            );
        }
        let d = exec::run(&c, &op);
        record(0, i, &op, &d);
        if (i + 1) % step == 0 {
            println!(
                "fuzz: {} of {calls} iterations, {} exceptions, {} violations",
                i + 1,
                EXCEPTIONS.load(Ordering::Relaxed),
                VIOLATIONS.load(Ordering::Relaxed)
            );
        }
    }
    let ticks = read_sysreg!(cntvct_el0).wrapping_sub(start);
    wait_for_rec1();
    report(calls, seed, ticks)
}

/// Waits (a bounded time) until REC 1 is off, so that its counts are in the report.
fn wait_for_rec1() {
    let mut rsi = Rsi::new(Smc);
    let hz = read_sysreg!(cntfrq_el0).max(1);
    let start = read_sysreg!(cntvct_el0);
    while read_sysreg!(cntvct_el0).wrapping_sub(start) < 2 * hz {
        if matches!(rsi.affinity_info(1, 0), Ok(AffinityState::Off)) {
            return;
        }
    }
    println!("fuzz: REC 1 is still on after 2 s");
}

fn report(calls: u64, seed: u64, ticks: u64) -> ! {
    // Ends any partial line the fuzzed 16550 left, so that the report's lines are whole.
    println!();
    for c in CLASSES {
        let row = &COUNTS[c as usize];
        let total: u64 = row.iter().map(|n| n.load(Ordering::Relaxed)).sum();
        let mut line = [0u8; 240];
        let mut w = Buf(&mut line, 0);
        let _ = core::fmt::write(&mut w, format_args!("fuzz class {} n={total}", c.name()));
        for o in ALL_OUTCOMES {
            let n = row[o as usize].load(Ordering::Relaxed);
            if n > 0 {
                let _ = core::fmt::write(&mut w, format_args!(" {}={n}", o.name()));
            }
        }
        let len = w.1;
        println!("{}", core::str::from_utf8(&line[..len]).unwrap_or("?"));
    }
    let violations = VIOLATIONS.load(Ordering::Relaxed);
    let exceptions = EXCEPTIONS.load(Ordering::Relaxed);
    let hz = read_sysreg!(cntfrq_el0).max(1);
    println!(
        "fuzz totals: iterations={calls} exceptions={exceptions} violations={violations} \
         timer-irqs={} other-irqs={} spurious-irqs={} fiq-serror={} rec1-runs={} rec1-done={} \
         ms={}",
        vectors::TIMER_IRQS.load(Ordering::Relaxed),
        vectors::OTHER_IRQS.load(Ordering::Relaxed),
        vectors::SPURIOUS_IRQS.load(Ordering::Relaxed),
        vectors::ASYNC.load(Ordering::Relaxed),
        REC1_RUNS.load(Ordering::Relaxed),
        REC1_DONE.load(Ordering::Relaxed),
        ticks.saturating_mul(1000) / hz
    );
    if violations == 0 {
        println!("FUZZ REALM RESULT: PASS (iterations {calls}, seed {seed:#x})");
    } else {
        println!("FUZZ REALM RESULT: FAIL ({violations} violations in {calls} iterations, seed {seed:#x})");
    }
    let mut g = [0u64; HOST_CALL_NR_GPRS];
    g[0] = calls;
    g[1] = violations;
    g[2] = exceptions;
    g[3] = seed;
    host_call(HOST_CALL_DONE, g);
    crate::fatal::end(calls, violations)
}

/// A line buffer for `core::fmt`.
struct Buf<'a>(&'a mut [u8], usize);

impl core::fmt::Write for Buf<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            if let Some(slot) = self.0.get_mut(self.1) {
                *slot = b;
                self.1 += 1;
            }
        }
        Ok(())
    }
}

/// REC 1 started by the fuzzer's `CPU_ON`: a few operations of its own, then `CPU_OFF`.
pub fn secondary() -> ! {
    vectors::install();
    map::enable();
    let run = REC1_RUNS.fetch_add(1, Ordering::Relaxed);
    let c = ctx(true);
    let mut rng = Rng::new(REC1_SEED.load(Ordering::Relaxed) ^ run.wrapping_mul(0x9E37_79B9));
    for i in 0..REC1_OPS {
        let op = gen::next(&mut rng, &c);
        let d = exec::run(&c, &op);
        record(1, i, &op, &d);
    }
    REC1_DONE.fetch_add(1, Ordering::Relaxed);
    let r = Rsi::new(Smc).cpu_off();
    crate::fatal::report(format_args!("fuzz: CPU_OFF on REC 1 returned {r:?}"))
}
