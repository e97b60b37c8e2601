//! Decoding of exception syndromes for fatal-error reports.

/// Returns a description of ESR_ELx.EC.
pub fn ec_name(esr: u64) -> &'static str {
    match (esr >> 26) & 0x3f {
        0x00 => "unknown reason",
        0x01 => "WFI/WFE",
        0x07 => "SVE/SIMD/FP access",
        0x0e => "illegal execution state",
        0x15 => "SVC from AArch64",
        0x16 => "HVC from AArch64",
        0x17 => "SMC from AArch64",
        0x18 => "MSR/MRS/system instruction trap",
        0x19 => "SVE access",
        0x1e => "granule protection check (GPC) exception",
        0x20 => "instruction abort from a lower EL",
        0x21 => "instruction abort from the same EL",
        0x22 => "PC alignment fault",
        0x24 => "data abort from a lower EL",
        0x25 => "data abort from the same EL",
        0x26 => "SP alignment fault",
        0x2f => "SError",
        0x3c => "BRK instruction",
        _ => "other exception class",
    }
}

/// Returns true when a data or instruction abort syndrome reports a granule protection fault:
/// on a translation table walk (FSC 0b100011, 0b1001xx: levels -1 to 3) or on the access
/// itself (FSC 0b101000).
pub fn is_gpf(esr: u64) -> bool {
    let ec = (esr >> 26) & 0x3f;
    let fsc = esr & 0x3f;
    ec == 0x1e
        || (matches!(ec, 0x20 | 0x21 | 0x24 | 0x25)
            && (fsc == 0x23 || (0x24..=0x28).contains(&fsc)))
}

/// The vector slot an exception came through, as the images' vector tables number them:
/// 0-3 synchronous/IRQ/FIQ/SError at the current EL, 4 from a lower EL, 5 from AArch32.
pub fn vector_name(kind: u64) -> &'static str {
    match kind {
        0 => "synchronous exception",
        1 => "IRQ",
        2 => "FIQ",
        3 => "SError",
        4 => "exception from a lower EL",
        _ => "exception from AArch32",
    }
}

/// Prints a fatal exception report: `el` names the syndrome registers (`EL2`, `EL3`).
pub fn report_fatal(what: core::fmt::Arguments, el: &str, esr: u64, elr: u64, far: u64) {
    let gpf = if is_gpf(esr) {
        " [GRANULE PROTECTION FAULT]"
    } else {
        ""
    };
    crate::console::print_emergency(format_args!(
        "FATAL: {what}: ESR_{el}={esr:#x} ({}){gpf} ELR_{el}={elr:#x} FAR_{el}={far:#x}\n",
        ec_name(esr)
    ));
}

/// Reports an exception taken at EL2 and ends the run with `status`.
pub fn fatal_el2(what: &str, kind: u64, status: u64) -> ! {
    let esr = crate::read_sysreg!(esr_el2);
    let elr = crate::read_sysreg!(elr_el2);
    let far = crate::read_sysreg!(far_el2);
    report_fatal(
        format_args!("{} in {what}", vector_name(kind)),
        "EL2",
        esr,
        elr,
        far,
    );
    crate::exit_emulator(status)
}

/// Prints a panic report (used by each image's `#[panic_handler]`).
pub fn report_panic(info: &core::panic::PanicInfo) {
    crate::console::print_emergency(format_args!(
        "PANIC on CPU {}: {info}\n",
        crate::cpu_index()
    ));
}
