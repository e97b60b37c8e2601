//! A bare-metal realm payload (Realm EL1, plane 0) that exercises the RMM's Realm Services
//! Interface and realm PSCI, and the host's handling of realm exits, with `cca-rsi`.
//!
//! REC 0 starts at IPA 0, builds its stage 1 map, prints through a PL011 the host emulates at
//! an unprotected IPA, runs its checks in a fixed order (each prints `ok: …` or
//! `FAILED: …`), starts REC 1 with PSCI `CPU_ON`, takes a virtual timer interrupt, and ends
//! with `REALM RESULT: PASS (n checks)` or `FAIL`, the tally in `RSI_HOST_CALL` 0xCCA0 and
//! PSCI `SYSTEM_OFF`. The contract with the host is `docs/realm-payload.md`.

#![no_std]
#![no_main]

mod checks;
mod console;
mod entry;
mod fatal;
mod fuzz;
mod gic;
mod layout;
mod mmu;

/// REC 0, called by the entry code on the boot map with `x0` as the realm was entered.
#[unsafe(no_mangle)]
extern "C" fn realm_main(x0: u64) -> ! {
    mmu::init();
    if x0 == fuzz::ENTRY_MAGIC {
        fuzz::run()
    }
    let l = entry::layout();
    println!(
        "Realm payload (Rust) at EL1 on REC 0: image [0, {:#x}), stacks and data up to {:#x}",
        l.image_end, l.realm_end
    );
    assert!(
        l.stacks_end - l.stacks_start >= (entry::MAX_RECS * entry::STACK_SLOT) as u64,
        "link.ld reserves too little stack"
    );
    checks::run(x0);
    checks::finish()
}

/// A REC started by PSCI `CPU_ON`, called by the entry code with its MMU on.
#[unsafe(no_mangle)]
extern "C" fn realm_secondary_main(context: u64) -> ! {
    if context == fuzz::gen::REC1_FUZZ_CONTEXT {
        fuzz::secondary()
    }
    checks::secondary(context)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    fatal::report(format_args!("panic: {info}"))
}
