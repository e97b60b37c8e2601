//! Reset entry, exception vectors and the lower-EL entry/exit path.

use core::arch::global_asm;

/// Number of CPUs this image supports (stacks, contexts).
pub const MAX_CPUS: usize = 8;
/// log2 of the per-CPU EL3 stack size (64 KiB).
pub const STACK_SHIFT: u32 = 16;

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

.macro lower_entry kind
    stp     x0, x1, [sp, #-16]!
    mov     x0, #\kind
    b       el3_lower_exit
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

fw_support::lower_el_switch!("enter_lower", "el3_lower_exit", "tpidr_el3");

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
