//! The lower-EL context switch shared by EL3 (entering the Normal or Realm world) and the RMM
//! (entering a realm): restore x0–x30 from a 31-word array and ERET; when the lower EL traps
//! back, store its registers into the same array and return to the caller with the vector
//! kind. The caller's callee-saved registers live on its stack across the lower EL's run;
//! the array's address is kept in the EL's TPIDR register.

/// Emits `$enter(gprs: *mut u64) -> u64` and the label `$exit`, which the vector entries for
/// lower-EL exceptions branch to after `stp x0, x1, [sp, #-16]!; mov x0, #kind`.
/// `$tpidr` is the thread register of the EL the code runs at (`tpidr_el2`, `tpidr_el3`).
#[macro_export]
macro_rules! lower_el_switch {
    ($enter:literal, $exit:literal, $tpidr:literal) => {
        core::arch::global_asm!(
            concat!(".section .text.", $enter, ", \"ax\""),
            concat!(".global ", $enter),
            concat!($enter, ":"),
            "    stp     x29, x30, [sp, #-96]!",
            "    stp     x19, x20, [sp, #16]",
            "    stp     x21, x22, [sp, #32]",
            "    stp     x23, x24, [sp, #48]",
            "    stp     x25, x26, [sp, #64]",
            "    stp     x27, x28, [sp, #80]",
            concat!("    msr     ", $tpidr, ", x0"),
            "    ldp     x2, x3, [x0, #16]",
            "    ldp     x4, x5, [x0, #32]",
            "    ldp     x6, x7, [x0, #48]",
            "    ldp     x8, x9, [x0, #64]",
            "    ldp     x10, x11, [x0, #80]",
            "    ldp     x12, x13, [x0, #96]",
            "    ldp     x14, x15, [x0, #112]",
            "    ldp     x16, x17, [x0, #128]",
            "    ldp     x18, x19, [x0, #144]",
            "    ldp     x20, x21, [x0, #160]",
            "    ldp     x22, x23, [x0, #176]",
            "    ldp     x24, x25, [x0, #192]",
            "    ldp     x26, x27, [x0, #208]",
            "    ldp     x28, x29, [x0, #224]",
            "    ldr     x30, [x0, #240]",
            "    ldp     x0, x1, [x0]",
            "    eret",
            "    dsb     nsh",
            "    isb",
            concat!(".global ", $exit),
            concat!($exit, ":"),
            concat!("    mrs     x1, ", $tpidr),
            "    stp     x2, x3, [x1, #16]",
            "    stp     x4, x5, [x1, #32]",
            "    stp     x6, x7, [x1, #48]",
            "    stp     x8, x9, [x1, #64]",
            "    stp     x10, x11, [x1, #80]",
            "    stp     x12, x13, [x1, #96]",
            "    stp     x14, x15, [x1, #112]",
            "    stp     x16, x17, [x1, #128]",
            "    stp     x18, x19, [x1, #144]",
            "    stp     x20, x21, [x1, #160]",
            "    stp     x22, x23, [x1, #176]",
            "    stp     x24, x25, [x1, #192]",
            "    stp     x26, x27, [x1, #208]",
            "    stp     x28, x29, [x1, #224]",
            "    str     x30, [x1, #240]",
            "    ldp     x2, x3, [sp], #16",
            "    stp     x2, x3, [x1]",
            "    ldp     x19, x20, [sp, #16]",
            "    ldp     x21, x22, [sp, #32]",
            "    ldp     x23, x24, [sp, #48]",
            "    ldp     x25, x26, [sp, #64]",
            "    ldp     x27, x28, [sp, #80]",
            "    ldp     x29, x30, [sp], #96",
            "    ret",
        );
    };
}
