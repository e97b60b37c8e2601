//! The end of a run: the verdict to the host (`RSI_HOST_CALL` 0xCCA0) and PSCI `SYSTEM_OFF`,
//! and fatal exception and panic reports, which end the run the same way with
//! `failed = u64::MAX`.

use crate::layout::HOST_CALL_RESULT;
use cca_abi::rsi::HOST_CALL_NR_GPRS;
use cca_rsi::{Rsi, RsiHostCall, Smc};
use core::sync::atomic::{AtomicU8, Ordering};
use fw_support::read_sysreg;

/// How many fatal reports have started: the first prints and reports, a second (a fault
/// while reporting) only powers off, a third stops the CPU. Only loads and stores: no
/// exclusive accesses on this path.
static DEPTH: AtomicU8 = AtomicU8::new(0);

/// Tells the host the tally (`gprs[0]` = passed, `gprs[1]` = failed) and powers the realm
/// off. If `SYSTEM_OFF` returns, this CPU waits forever.
pub fn end(passed: u64, failed: u64) -> ! {
    let mut gprs = [0u64; HOST_CALL_NR_GPRS];
    gprs[0] = passed;
    gprs[1] = failed;
    let mut call = RsiHostCall::new(HOST_CALL_RESULT, gprs);
    let mut rsi = Rsi::new(Smc);
    let _ = rsi.host_call(&mut call);
    power_off(&mut rsi)
}

fn power_off(rsi: &mut Rsi<Smc>) -> ! {
    let r = rsi.system_off();
    crate::console::print_emergency(format_args!("FAILED: SYSTEM_OFF returned ({r:?})\n"));
    loop {
        // SAFETY: `wfe` only waits for an event; it has no memory effects.
        unsafe { core::arch::asm!("wfe", options(nomem, nostack)) };
    }
}

/// Reports a fatal condition and ends the run with `failed = u64::MAX`.
pub fn report(what: core::fmt::Arguments) -> ! {
    let depth = DEPTH.load(Ordering::Relaxed);
    DEPTH.store(depth.saturating_add(1), Ordering::Relaxed);
    match depth {
        0 => {
            crate::console::print_emergency(format_args!(
                "FATAL on REC {}: {what}\n",
                read_sysreg!(mpidr_el1) & 0xff
            ));
            crate::console::print_emergency(format_args!(
                "REALM RESULT: FAIL (fatal error after {} checks passed)\n",
                crate::checks::passed()
            ));
            end(crate::checks::passed(), u64::MAX)
        }
        1 => power_off(&mut Rsi::new(Smc)),
        _ => loop {
            // SAFETY: `wfe` only waits for an event; it has no memory effects.
            unsafe { core::arch::asm!("wfe", options(nomem, nostack)) };
        },
    }
}

/// Names the vector an exception came through (the vector table's index).
fn vector_name(index: u64) -> &'static str {
    match index {
        0 => "synchronous exception (EL1, SP_EL0)",
        1 => "IRQ (EL1, SP_EL0)",
        2 => "FIQ (EL1, SP_EL0)",
        3 => "SError (EL1, SP_EL0)",
        4 => "synchronous exception at EL1",
        5 => "IRQ at EL1",
        6 => "FIQ at EL1",
        7 => "SError at EL1",
        8..=11 => "exception from EL0 (AArch64)",
        _ => "exception from EL0 (AArch32)",
    }
}

/// Reports an exception taken through the vector at `index` (everything but the IRQ).
pub fn exception(index: u64) -> ! {
    let esr = read_sysreg!(esr_el1);
    let elr = read_sysreg!(elr_el1);
    let far = read_sysreg!(far_el1);
    report(format_args!(
        "{}: ESR_EL1={esr:#x} ({}) ELR_EL1={elr:#x} FAR_EL1={far:#x}",
        vector_name(index),
        fw_support::exception::ec_name(esr)
    ))
}
