//! Bare-metal support shared by the EL3 monitor, the RMM and the host images.
//!
//! Everything here is architecture glue: the PL011 console with per-world line labels, a
//! `log` backend, system register accessors, barriers, MMU enablement around
//! `aarch64-paging`, fatal exception reporting, fast clearing of memory and the SHA-2
//! instruction engine. It only builds for `aarch64`.

#![no_std]

pub mod clear;
pub mod console;
pub mod exception;
pub mod mmu;
pub mod once;
pub mod sha2;
pub mod switch;
pub mod sysreg;

/// Stops this CPU for good: a fatal error was reported and nothing may continue.
pub fn halt() -> ! {
    loop {
        // SAFETY: `wfe` only waits for an event; it has no memory effects.
        unsafe { core::arch::asm!("wfe", options(nomem, nostack)) };
    }
}

/// Waits for about `micros` microseconds or until an interrupt is pending, whichever is
/// first, with `WFIT` (FEAT_WFxT, which `wfxt` says the CPU has): unlike `WFE`, which QEMU
/// runs as a yield, the waiting CPU then takes no host time. Without FEAT_WFxT it is one
/// `WFE`. For polling loops (a parked CPU waiting for its release).
pub fn wait_for_micros(micros: u64, wfxt: bool) {
    if !wfxt {
        // SAFETY: `wfe` only waits for an event; it has no memory effects.
        unsafe { core::arch::asm!("wfe", options(nomem, nostack)) };
        return;
    }
    let (now, freq): (u64, u64);
    // SAFETY: reading the virtual count and the counter frequency has no side effects.
    unsafe {
        core::arch::asm!(
            "isb",
            "mrs {n}, cntvct_el0",
            "mrs {f}, cntfrq_el0",
            n = out(reg) now,
            f = out(reg) freq,
            options(nomem, nostack)
        );
    }
    let deadline = now.saturating_add((freq / 1_000_000).max(1).saturating_mul(micros));
    // SAFETY: `WFIT x` (encoded, for assemblers without FEAT_WFxT) waits until CNTVCT_EL0
    // reaches `x` or an interrupt is pending; it has no memory effects.
    unsafe { core::arch::asm!(".inst 0xd5031020 | 0", in("x0") deadline, options(nomem, nostack)) };
}

/// Data synchronisation barrier, full system.
#[inline(always)]
pub fn dsb_sy() {
    // SAFETY: a barrier has no effect besides ordering memory accesses.
    unsafe { core::arch::asm!("dsb sy", options(nostack)) };
}

/// Instruction synchronisation barrier.
#[inline(always)]
pub fn isb() {
    // SAFETY: a barrier has no effect besides synchronising the context.
    unsafe { core::arch::asm!("isb", options(nostack)) };
}

/// Returns the linear index of this CPU on QEMU `virt` with GICv3, which puts 16 CPUs in each
/// Aff1 cluster: `Aff1 * 16 + Aff0`.
pub fn cpu_index() -> usize {
    let mpidr = read_sysreg!(mpidr_el1);
    let aff0 = mpidr & 0xff;
    let aff1 = (mpidr >> 8) & 0xff;
    (aff1 * 16 + aff0) as usize
}

/// Ends the run: asks the emulator (semihosting) to exit with `status`, and halts this CPU if
/// there is no emulator listening. Used by fatal-error paths so that a failing run ends
/// promptly with a non-zero status instead of hanging.
pub fn exit_emulator(status: u64) -> ! {
    use core::sync::atomic::{AtomicBool, Ordering};
    static EXITING: AtomicBool = AtomicBool::new(false);
    if !EXITING.swap(true, Ordering::AcqRel) {
        let block = [0x20026u64, status];
        // SAFETY: SYS_EXIT reads the two-word block; without semihosting the HLT traps into
        // the fatal handler, which calls here again and halts because EXITING is set.
        unsafe {
            core::arch::asm!("hlt #0xf000", in("x0") 0x18u64, in("x1") block.as_ptr(), options(nostack));
        }
    }
    halt()
}

/// Assembly for an arm64 image header (the 64-byte layout of Linux's `booting.rst`: a branch
/// over the header, `image_size` at offset 16, the magic `"ARM\x64"` at offset 56) at the
/// start of a section, then the label `1:` where execution goes on. `image_size` is the
/// linker symbol `__image_size`, which the image's linker script defines as the bytes it
/// loads, so EL3's measured boot hashes those and clears the rest of the load window instead
/// of reading all of it (`el3_core::attest::declared_len`). Use it as the first template string of the entry
/// point's `global_asm!`.
#[macro_export]
macro_rules! image_header_asm {
    () => {
        r#"
    b       1f
    .word   0
    .quad   0
    .quad   __image_size
    .quad   0x2
    .quad   0
    .quad   0
    .quad   0
    .word   0x644d5241
    .word   0
1:
"#
    };
}
