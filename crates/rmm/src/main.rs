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
mod hash;
mod platform;
mod realm;

use cca_abi::el3::{BootError, RMM_BOOT_COMPLETE, RMM_RMI_REQ_COMPLETE};
use rmm_core::{Regs, Rmm};

/// The RMM core, created at cold boot and shared by every CPU.
static RMM: spin::Once<Rmm<'static, platform::FwPlatform>> = spin::Once::new();

/// Issues an SMC to EL3 with x0 = `fid` and x1.. = `args`, returning x0..x7.
fn smc(fid: u32, args: &[u64]) -> Regs {
    let mut a = [0u64; 17];
    a[..args.len()].copy_from_slice(args);
    let r = smccc::smc64(fid, a);
    let mut out = [0u64; 8];
    out.copy_from_slice(&r[..8]);
    out
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
        call = smc(RMM_RMI_REQ_COMPLETE, &result);
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
    fw_support::exit_emulator(0xE2)
}
