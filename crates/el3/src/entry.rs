//! Reset entry, exception vectors and the lower-EL entry/exit path.

use core::arch::global_asm;

/// Number of CPUs this image supports (stacks, contexts).
pub const MAX_CPUS: usize = 8;
/// log2 of the per-CPU EL3 stack size (16 KiB).
pub const STACK_SHIFT: u32 = 14;

global_asm!(
    r#"
.section .text.entry, "ax"
.global _start
_start:
    mrs     x0, mpidr_el1
    and     x1, x0, #0xff
    ubfx    x2, x0, #8, #8
    add     x19, x1, x2, lsl #4
    adr     x1, el3_vectors
    msr     vbar_el3, x1
    isb
    cmp     x19, #{max_cpus}
    b.hs    2f
    adrp    x1, __stacks_end
    add     x1, x1, :lo12:__stacks_end
    lsl     x2, x19, #{stack_shift}
    sub     sp, x1, x2
    cbnz    x19, 1f
    /* CPU 0: copy .data from flash, clear .bss. */
    adrp    x0, __data_lma
    add     x0, x0, :lo12:__data_lma
    adrp    x1, __data_start
    add     x1, x1, :lo12:__data_start
    adrp    x2, __data_end
    add     x2, x2, :lo12:__data_end
3:  cmp     x1, x2
    b.hs    4f
    ldr     x3, [x0], #8
    str     x3, [x1], #8
    b       3b
4:  adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
5:  cmp     x1, x2
    b.hs    6f
    stp     xzr, xzr, [x1], #16
    b       5b
6:  mov     x0, x19
    bl      el3_primary_main
    b       2f
1:  mov     x0, x19
    bl      el3_secondary_main
2:  wfe
    b       2b

/* Enters a lower EL with the GPRs in the context at x0; returns (to the caller of
 * enter_lower) the kind of exception that brought the CPU back to EL3. */
.section .text.enter_lower, "ax"
.global enter_lower
enter_lower:
    stp     x29, x30, [sp, #-96]!
    stp     x19, x20, [sp, #16]
    stp     x21, x22, [sp, #32]
    stp     x23, x24, [sp, #48]
    stp     x25, x26, [sp, #64]
    stp     x27, x28, [sp, #80]
    msr     tpidr_el3, x0
    ldp     x2, x3, [x0, #16]
    ldp     x4, x5, [x0, #32]
    ldp     x6, x7, [x0, #48]
    ldp     x8, x9, [x0, #64]
    ldp     x10, x11, [x0, #80]
    ldp     x12, x13, [x0, #96]
    ldp     x14, x15, [x0, #112]
    ldp     x16, x17, [x0, #128]
    ldp     x18, x19, [x0, #144]
    ldp     x20, x21, [x0, #160]
    ldp     x22, x23, [x0, #176]
    ldp     x24, x25, [x0, #192]
    ldp     x26, x27, [x0, #208]
    ldp     x28, x29, [x0, #224]
    ldr     x30, [x0, #240]
    ldp     x0, x1, [x0]
    eret

lower_el_return:
    mrs     x1, tpidr_el3
    stp     x2, x3, [x1, #16]
    stp     x4, x5, [x1, #32]
    stp     x6, x7, [x1, #48]
    stp     x8, x9, [x1, #64]
    stp     x10, x11, [x1, #80]
    stp     x12, x13, [x1, #96]
    stp     x14, x15, [x1, #112]
    stp     x16, x17, [x1, #128]
    stp     x18, x19, [x1, #144]
    stp     x20, x21, [x1, #160]
    stp     x22, x23, [x1, #176]
    stp     x24, x25, [x1, #192]
    stp     x26, x27, [x1, #208]
    stp     x28, x29, [x1, #224]
    str     x30, [x1, #240]
    ldp     x2, x3, [sp], #16
    stp     x2, x3, [x1]
    ldp     x19, x20, [sp, #16]
    ldp     x21, x22, [sp, #32]
    ldp     x23, x24, [sp, #48]
    ldp     x25, x26, [sp, #64]
    ldp     x27, x28, [sp, #80]
    ldp     x29, x30, [sp], #96
    ret

.macro lower_entry kind
    stp     x0, x1, [sp, #-16]!
    mov     x0, #\kind
    b       lower_el_return
.endm

.macro fatal_entry kind
    mov     x0, #\kind
    b       el3_fatal_exception
.endm

.section .text.vectors, "ax"
.balign 2048
.global el3_vectors
el3_vectors:
    .balign 0x80
    fatal_entry 0
    .balign 0x80
    fatal_entry 1
    .balign 0x80
    fatal_entry 2
    .balign 0x80
    fatal_entry 3
    .balign 0x80
    fatal_entry 0
    .balign 0x80
    fatal_entry 1
    .balign 0x80
    fatal_entry 2
    .balign 0x80
    fatal_entry 3
    .balign 0x80
    lower_entry 0
    .balign 0x80
    lower_entry 1
    .balign 0x80
    lower_entry 2
    .balign 0x80
    lower_entry 3
    .balign 0x80
    fatal_entry 4
    .balign 0x80
    fatal_entry 4
    .balign 0x80
    fatal_entry 4
    .balign 0x80
    fatal_entry 4
"#,
    max_cpus = const MAX_CPUS,
    stack_shift = const STACK_SHIFT,
);

/// The kind of exception that returned control to EL3 from a lower EL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// Synchronous (SMC, or a trapped instruction).
    Sync,
    /// IRQ.
    Irq,
    /// FIQ.
    Fiq,
    /// SError.
    SError,
}

unsafe extern "C" {
    fn enter_lower(gprs: *mut u64) -> u64;
}

/// Restores `gprs` (x0..x30), ERETs to the lower EL set up in ELR_EL3/SPSR_EL3/SCR_EL3, and
/// returns when the lower EL next traps to EL3, with `gprs` holding its registers.
///
/// # Safety
///
/// ELR_EL3, SPSR_EL3, SCR_EL3 and the target EL's system registers must describe a valid
/// lower-EL context.
pub unsafe fn run_lower(gprs: &mut [u64; 31]) -> ExitKind {
    // SAFETY: `gprs` is a valid 31-word buffer; the caller guarantees the ERET target.
    match unsafe { enter_lower(gprs.as_mut_ptr()) } {
        0 => ExitKind::Sync,
        1 => ExitKind::Irq,
        2 => ExitKind::Fiq,
        _ => ExitKind::SError,
    }
}

/// Reports an exception taken from EL3 itself (or from AArch32) and ends the run.
#[unsafe(no_mangle)]
extern "C" fn el3_fatal_exception(kind: u64) -> ! {
    let esr = fw_support::read_sysreg!(esr_el3);
    let elr = fw_support::read_sysreg!(elr_el3);
    let far = fw_support::read_sysreg!(far_el3);
    let what = fw_support::exception::vector_name(kind);
    crate::power::fatal_exit(format_args!("{what} in EL3"), esr, elr, far)
}
