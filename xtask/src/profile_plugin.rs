//! A QEMU TCG plugin for `cargo xtask bench --profile`: counts the guest instructions executed
//! inside "windows", per translation block, so that xtask can attribute them to functions.
//!
//! This file is not part of the xtask crate: `xtask::profile` compiles it on its own with
//! `rustc --crate-type cdylib` and loads it with `-plugin`. It declares the few functions of
//! QEMU's public plugin API (`include/qemu/qemu-plugin.h`, API version 4, QEMU 9.2 and 10.0)
//! it uses.
//!
//! Arguments (`-plugin lib.so,arg=value,...`):
//! * `open=ADDR`, `close=ADDR` (hex virtual addresses): executing the instruction at `open`
//!   starts the next window (0, 1, 2...), executing the one at `close` ends it. Instructions
//!   outside a window are not counted.
//! * `ram=ADDR` (hex): the guest physical address of the start of RAM; the `open` marker must
//!   be identity-mapped RAM code (the host's), which fixes where guest RAM lives in QEMU's
//!   memory, so instructions in RAM are reported by physical address and others (flash) by
//!   virtual address.
//! * `out=PATH`: where to write the counts at exit, one line per window and block:
//!   `<window> <p|v> <hex address of the block> <instructions in the block> <executions>`.

#![allow(non_camel_case_types)]

use std::collections::HashMap;
use std::ffi::CStr;
use std::io::Write;
use std::os::raw::{c_char, c_int, c_uint, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

type qemu_plugin_id_t = u64;

/// `QEMU_PLUGIN_CB_NO_REGS`.
const CB_NO_REGS: c_int = 0;

extern "C" {
    fn qemu_plugin_register_vcpu_tb_trans_cb(
        id: qemu_plugin_id_t,
        cb: extern "C" fn(qemu_plugin_id_t, *mut c_void),
    );
    fn qemu_plugin_register_atexit_cb(
        id: qemu_plugin_id_t,
        cb: extern "C" fn(qemu_plugin_id_t, *mut c_void),
        userdata: *mut c_void,
    );
    fn qemu_plugin_tb_n_insns(tb: *const c_void) -> usize;
    fn qemu_plugin_tb_get_insn(tb: *const c_void, idx: usize) -> *mut c_void;
    fn qemu_plugin_insn_vaddr(insn: *const c_void) -> u64;
    fn qemu_plugin_insn_haddr(insn: *const c_void) -> *mut c_void;
    fn qemu_plugin_register_vcpu_tb_exec_cb(
        tb: *mut c_void,
        cb: extern "C" fn(c_uint, *mut c_void),
        flags: c_int,
        userdata: *mut c_void,
    );
    fn qemu_plugin_register_vcpu_insn_exec_cb(
        insn: *mut c_void,
        cb: extern "C" fn(c_uint, *mut c_void),
        flags: c_int,
        userdata: *mut c_void,
    );
}

#[no_mangle]
pub static qemu_plugin_version: c_int = 4;

/// No window open.
const CLOSED: u64 = u64::MAX;

struct Config {
    open: u64,
    close: u64,
    ram: u64,
    out: String,
}

static CONFIG: Mutex<Option<Config>> = Mutex::new(None);
/// The open window, or [`CLOSED`].
static WINDOW: AtomicU64 = AtomicU64::new(CLOSED);
static NEXT_WINDOW: AtomicU64 = AtomicU64::new(0);
/// Host address of guest RAM's first byte, once known (0 before).
static RAM_HOST: AtomicU64 = AtomicU64::new(0);

/// One translated block: where it is and how long.
struct Block {
    vaddr: u64,
    haddr: u64,
    insns: u64,
}

/// (window, block) -> executions.
static COUNTS: Mutex<Option<HashMap<(u64, usize), u64>>> = Mutex::new(None);

extern "C" fn on_open(_vcpu: c_uint, _u: *mut c_void) {
    let w = NEXT_WINDOW.fetch_add(1, Ordering::Relaxed);
    WINDOW.store(w, Ordering::Relaxed);
}

extern "C" fn on_close(_vcpu: c_uint, _u: *mut c_void) {
    WINDOW.store(CLOSED, Ordering::Relaxed);
}

extern "C" fn on_block(_vcpu: c_uint, block: *mut c_void) {
    let w = WINDOW.load(Ordering::Relaxed);
    if w == CLOSED {
        return;
    }
    let mut c = COUNTS.lock().unwrap();
    *c.get_or_insert_with(HashMap::new)
        .entry((w, block as usize))
        .or_insert(0) += 1;
}

extern "C" fn on_translate(_id: qemu_plugin_id_t, tb: *mut c_void) {
    let (open, close, ram) = {
        let c = CONFIG.lock().unwrap();
        let c = c.as_ref().unwrap();
        (c.open, c.close, c.ram)
    };
    // SAFETY: QEMU passes a valid block handle for the duration of this callback.
    let n = unsafe { qemu_plugin_tb_n_insns(tb) };
    if n == 0 {
        return;
    }
    // SAFETY: as above, index in range.
    let first = unsafe { qemu_plugin_tb_get_insn(tb, 0) };
    // SAFETY: a valid instruction handle.
    let (vaddr, haddr) = unsafe {
        (
            qemu_plugin_insn_vaddr(first),
            qemu_plugin_insn_haddr(first) as u64,
        )
    };
    for i in 0..n {
        // SAFETY: index in range.
        let insn = unsafe { qemu_plugin_tb_get_insn(tb, i) };
        // SAFETY: a valid instruction handle.
        let va = unsafe { qemu_plugin_insn_vaddr(insn) };
        if va == open {
            // The host runs identity-mapped: its physical address is its virtual address.
            // SAFETY: a valid instruction handle.
            let h = unsafe { qemu_plugin_insn_haddr(insn) } as u64;
            RAM_HOST.store(h.wrapping_sub(va - ram), Ordering::Relaxed);
            // SAFETY: registering a callback on an instruction of this block.
            unsafe {
                qemu_plugin_register_vcpu_insn_exec_cb(
                    insn,
                    on_open,
                    CB_NO_REGS,
                    std::ptr::null_mut(),
                )
            };
        } else if va == close {
            // SAFETY: as above.
            unsafe {
                qemu_plugin_register_vcpu_insn_exec_cb(
                    insn,
                    on_close,
                    CB_NO_REGS,
                    std::ptr::null_mut(),
                )
            };
        }
    }
    let block = Box::into_raw(Box::new(Block {
        vaddr,
        haddr,
        insns: n as u64,
    }));
    // SAFETY: the block description lives for the rest of the run (leaked on purpose).
    unsafe { qemu_plugin_register_vcpu_tb_exec_cb(tb, on_block, CB_NO_REGS, block.cast()) };
}

extern "C" fn on_exit(_id: qemu_plugin_id_t, _u: *mut c_void) {
    let (out, ram) = {
        let c = CONFIG.lock().unwrap();
        let c = c.as_ref().unwrap();
        (c.out.clone(), c.ram)
    };
    let ram_host = RAM_HOST.load(Ordering::Relaxed);
    let counts = COUNTS.lock().unwrap().take().unwrap_or_default();
    let mut f = match std::fs::File::create(&out) {
        Ok(f) => std::io::BufWriter::new(f),
        Err(_) => return,
    };
    for ((w, block), execs) in counts {
        // SAFETY: every key was made from a leaked `Block`.
        let b = unsafe { &*(block as *const Block) };
        // RAM is at most 4 GiB in these runs; anything else (flash) by virtual address.
        let pa = b.haddr.wrapping_sub(ram_host);
        let (space, addr) = if ram_host != 0 && pa < (4 << 30) {
            ('p', pa + ram)
        } else {
            ('v', b.vaddr)
        };
        let _ = writeln!(f, "{w} {space} {addr:x} {} {execs}", b.insns);
    }
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

/// # Safety
///
/// Called by QEMU with `argc` valid C strings in `argv`.
#[no_mangle]
pub unsafe extern "C" fn qemu_plugin_install(
    id: qemu_plugin_id_t,
    _info: *const c_void,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    let mut cfg = Config {
        open: 0,
        close: 0,
        ram: 0x4000_0000,
        out: "profile.txt".into(),
    };
    for i in 0..argc.max(0) as usize {
        // SAFETY: QEMU passes `argc` NUL-terminated strings.
        let arg = unsafe { CStr::from_ptr(*argv.add(i)) }.to_string_lossy();
        let Some((k, v)) = arg.split_once('=') else {
            return -1;
        };
        match k {
            "open" => cfg.open = hex(v).unwrap_or(0),
            "close" => cfg.close = hex(v).unwrap_or(0),
            "ram" => cfg.ram = hex(v).unwrap_or(0x4000_0000),
            "out" => cfg.out = v.to_string(),
            _ => return -1,
        }
    }
    if cfg.open == 0 || cfg.close == 0 {
        return -1;
    }
    *CONFIG.lock().unwrap() = Some(cfg);
    // SAFETY: registering callbacks with QEMU's plugin API.
    unsafe {
        qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
        qemu_plugin_register_atexit_cb(id, on_exit, std::ptr::null_mut());
    }
    0
}
