//! The Realm Management Monitor image (Realm EL2).
//!
//! This crate is the architecture layer: boot argument and manifest validation, the RMM's own
//! stage 1 tables, exception vectors, the calls to EL3, and the loop that receives RMI calls
//! from EL3 and answers them. Every command's semantics live in `rmm-core`.

#![no_std]
#![no_main]

mod attest;
mod boot;
mod entry;
mod mem;
mod platform;
mod realm;

use cca_abi::el3::{BootError, RMM_BOOT_COMPLETE, RMM_RMI_REQ_COMPLETE};
use rmm_core::{Regs, Rmm};

/// The RMM core, created at cold boot and shared by every CPU.
static RMM: spin::Once<Rmm<'static, platform::FwPlatform>> = spin::Once::new();

/// Issues an SMC to EL3 with x0 = `fid` and x1..x8 = `args` (at most eight), returning
/// x0..x7.
fn smc(fid: u32, args: &[u64]) -> Regs {
    let mut a = [0u64; 8];
    let n = args.len().min(8);
    a[..n].copy_from_slice(&args[..n]);
    smc_regs(fid, &a)
}

/// [`smc`] with x1..x8 given in full. Only x0-x8 carry values in the RMM-EL3 interface;
/// EL3 may change x9-x17 (SMCCC 1.2) and preserves x18-x30.
#[inline(always)]
fn smc_regs(fid: u32, a: &[u64; 8]) -> Regs {
    let mut r = [0u64; 8];
    // SAFETY: an SMC to EL3, which returns here with x0-x17 as SMCCC 1.2 defines and the
    // other registers and the RMM's memory as they were.
    unsafe {
        core::arch::asm!(
            "smc #0",
            inout("x0") u64::from(fid) => r[0],
            inout("x1") a[0] => r[1],
            inout("x2") a[1] => r[2],
            inout("x3") a[2] => r[3],
            inout("x4") a[3] => r[4],
            inout("x5") a[4] => r[5],
            inout("x6") a[5] => r[6],
            inout("x7") a[6] => r[7],
            inout("x8") a[7] => _,
            lateout("x9") _,
            lateout("x10") _,
            lateout("x11") _,
            lateout("x12") _,
            lateout("x13") _,
            lateout("x14") _,
            lateout("x15") _,
            lateout("x16") _,
            lateout("x17") _,
            options(nostack),
        )
    };
    r
}

/// Reports the end of boot on this CPU to EL3 and, on success, serves RMI calls forever.
fn boot_complete(status: BootError, token: u64) -> ! {
    let mut call = smc(RMM_BOOT_COMPLETE, &[status.to_reg(), token]);
    if status != BootError::Success {
        fw_support::halt();
    }
    let rmm = RMM.get().expect("RMM core initialised at cold boot");
    loop {
        let result = rmm.handle_rmi(&call);
        realm::leave();
        call = smc_regs(RMM_RMI_REQ_COMPLETE, &result);
    }
}

#[unsafe(no_mangle)]
extern "C" fn rmm_cold_boot(cpu: u64, version: u64, ncpus: u64, shared: u64, token: u64) -> ! {
    match boot::cold(cpu, version, ncpus, shared, token) {
        Ok(rmm) => {
            RMM.call_once(|| rmm);
            boot_complete(BootError::Success, boot::token_for(cpu))
        }
        Err(e) => boot_complete(e, 0),
    }
}

#[unsafe(no_mangle)]
extern "C" fn rmm_warm_boot(cpu: u64, token: u64) -> ! {
    match boot::warm(cpu, token) {
        Ok(()) => boot_complete(BootError::Success, boot::token_for(cpu)),
        Err(e) => boot_complete(e, 0),
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    fw_support::exception::report_panic(info);
    // The RMM runs in the Realm world at EL2, serving an RMI call or a realm's exit: the
    // syndrome registers hold the last exception taken to R-EL2 (a realm's trap, if the
    // panic came while handling one).
    fw_support::exception::report_fatal(
        format_args!("panic in the RMM (Realm world, EL2); last exception taken to R-EL2"),
        "EL2",
        fw_support::read_sysreg!(esr_el2),
        fw_support::read_sysreg!(elr_el2),
        fw_support::read_sysreg!(far_el2),
    );
    fw_support::exit_emulator(0xE2)
}
