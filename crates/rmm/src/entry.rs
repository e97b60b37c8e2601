//! Boot entry, exception vectors and the fault-tolerant accessor for Non-secure memory.

use core::arch::global_asm;

/// CPUs this image supports (TF-A reports 32 on QEMU).
pub const MAX_CPUS: usize = 32;
/// log2 of the per-CPU stack size (64 KiB; the lowest page is an unmapped guard).
pub const STACK_SHIFT: u32 = 16;
/// log2 of the per-CPU exception stack size (4 KiB), used through SP_EL0 by the vectors.
pub const EXC_STACK_SHIFT: u32 = 12;

/// The lowest RSI revision the RMM implements (the vector's fast path answers `RSI_VERSION`).
const RSI_LOWEST: u64 = rmm_core::rsi::RSI_REVISIONS[0];
/// The highest.
const RSI_HIGHEST: u64 = rmm_core::rsi::RSI_REVISIONS[rmm_core::rsi::RSI_REVISIONS.len() - 1];

/// The fast path checks a range: the implemented revisions must be every one from the lowest
/// to the highest, each below 2^32 (two `movz`/`movk` halves), with a span `cmp` can encode.
const _: () = {
    let r = rmm_core::rsi::RSI_REVISIONS;
    let mut i = 1;
    while i < r.len() {
        assert!(r[i] == r[i - 1] + 1);
        i += 1;
    }
    assert!(RSI_HIGHEST < 1 << 32 && RSI_HIGHEST - RSI_LOWEST < 4096);
    assert!(cca_abi::rsi::FEATURES == cca_abi::rsi::VERSION + 1);
};

global_asm!(
    r#"
.section .text.entry, "ax"
.global _start
_start:
"#,
    fw_support::image_header_asm!(),
    r#"
    mov     x19, x0
    mov     x20, x1
    mov     x21, x2
    mov     x22, x3
    mov     x23, x4
    adr     x5, rmm_vectors
    msr     vbar_el2, x5
    isb
    cmp     x19, #{max_cpus}
    b.hs    9f
    adrp    x5, __stacks_end
    add     x5, x5, :lo12:__stacks_end
    lsl     x6, x19, #{stack_shift}
    sub     sp, x5, x6
    adrp    x5, __exc_stacks_end
    add     x5, x5, :lo12:__exc_stacks_end
    lsl     x6, x19, #{exc_stack_shift}
    sub     x5, x5, x6
    msr     sp_el0, x5
    adrp    x5, rmm_cold_boot_done
    ldr     w6, [x5, :lo12:rmm_cold_boot_done]
    cbnz    w6, 8f
    mov     w6, #1
    str     w6, [x5, :lo12:rmm_cold_boot_done]
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
1:  cmp     x1, x2
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
2:  mov     x0, x19
    mov     x1, x20
    mov     x2, x21
    mov     x3, x22
    mov     x4, x23
    bl      rmm_cold_boot
    b       .
8:  mov     x0, x19
    mov     x1, x20
    bl      rmm_warm_boot
    b       .
    /* CPU index beyond this image's stacks: report it to EL3 without touching memory. */
9:  movz    x0, #0x01CF
    movk    x0, #0xC400, lsl #16
    mov     x1, #-4
    mov     x2, #0
    smc     #0
    b       9b

.section .data.rmm_cold_boot_done, "aw"
.balign 4
rmm_cold_boot_done:
    .word 0

/* Copies x2 bytes from x1 to x0 where one side is Non-secure memory the host controls.
 * Returns 0, or 1 if the access faulted (for example a granule protection fault because the
 * host passed memory that is not in the Non-secure PAS). When the three are multiples of 8
 * it moves 64 bytes per iteration with register pairs, then 16, then 8; otherwise bytes. */
.section .text.ns_access, "ax"
.global rmm_ns_copy
.global rmm_ns_access_start
.global rmm_ns_access_end
rmm_ns_access_start:
rmm_ns_copy:
    orr     x3, x0, x1
    orr     x3, x3, x2
    tst     x3, #7
    b.ne    3f
    subs    x2, x2, #64
    b.lo    6f
5:  ldp     x4, x5, [x1]
    ldp     x6, x7, [x1, #16]
    ldp     x8, x9, [x1, #32]
    ldp     x10, x11, [x1, #48]
    add     x1, x1, #64
    stp     x4, x5, [x0]
    stp     x6, x7, [x0, #16]
    stp     x8, x9, [x0, #32]
    stp     x10, x11, [x0, #48]
    add     x0, x0, #64
    subs    x2, x2, #64
    b.hs    5b
6:  adds    x2, x2, #56
    b.lo    2f
1:  ldr     x3, [x1], #8
    str     x3, [x0], #8
    subs    x2, x2, #8
    b.hs    1b
2:  mov     x0, #0
    ret
3:  cbz     x2, 2b
4:  ldrb    w3, [x1], #1
    strb    w3, [x0], #1
    subs    x2, x2, #1
    b.ne    4b
    b       2b
rmm_ns_access_fault:
    mov     x0, #1
    ret
rmm_ns_access_end:

/* Every vector first switches to this CPU's exception stack (SP_EL0), so that a stack
 * overflow into the guard page below the main stack is still reported. ERET restores the
 * interrupted stack selection. */
.macro fatal_entry kind
    .balign 0x80
    msr     spsel, #0
    mov     x0, #\kind
    b       rmm_fatal_exception
.endm

.macro realm_entry kind
    .balign 0x80
    stp     x0, x1, [sp, #-16]!
    mov     x0, #\kind
    b       rmm_realm_exit
.endm

.section .text.vectors, "ax"
.balign 2048
.global rmm_vectors
rmm_vectors:
    fatal_entry 0
    fatal_entry 1
    fatal_entry 2
    fatal_entry 3
    /* Current EL with SP_ELx, synchronous: a fault inside rmm_ns_copy is recovered. */
    .balign 0x80
    msr     spsel, #0
    stp     x0, x1, [sp, #-16]!
    mrs     x0, elr_el2
    adr     x1, rmm_ns_access_start
    cmp     x0, x1
    b.lo    5f
    adr     x1, rmm_ns_access_end
    cmp     x0, x1
    b.hs    5f
    adr     x1, rmm_ns_access_fault
    msr     elr_el2, x1
    ldp     x0, x1, [sp], #16
    eret
5:  ldp     x0, x1, [sp], #16
    mov     x0, #0
    b       rmm_fatal_exception
    fatal_entry 1
    fatal_entry 2
    fatal_entry 3
    /* Lower EL, AArch64: the realm trapped to EL2; back to rmm_realm_enter's caller, except
     * the RSI calls answered in rmm_realm_sync. */
    .balign 0x80
    stp     x0, x1, [sp, #-16]!
    b       rmm_realm_sync
    realm_entry 1
    realm_entry 2
    realm_entry 3
    fatal_entry 5
    fatal_entry 5
    fatal_entry 5
    fatal_entry 5

/* The fast path of a synchronous exit from the realm (the realm's x0 and x1 are on the stack):
 * RSI_VERSION with an implemented revision and RSI_FEATURES need no REC, realm or lock, so
 * they are answered here, with exactly the registers the full path (rsi::handle_realm_smc)
 * gives: x0 = SUCCESS, x1 = the revision (or 0), x2 = the highest revision (or 0), x3 = 0,
 * the PC past the SMC; the realm's EL1, FP/SIMD and other registers are never touched.
 * Everything else, an unimplemented revision (logged and answered by the full path) and any
 * call made while a realm timer asserts (the full path may turn it into an IRQ exit so the
 * host hears of the timer), goes to rmm_realm_exit. */
.section .text.realm_sync, "ax"
rmm_realm_sync:
    mrs     x1, esr_el2
    lsr     x1, x1, #26
    cmp     x1, #0x17
    b.ne    8f
    movz    w1, #{rsi_version_lo}
    movk    w1, #{rsi_version_hi}, lsl #16
    /* The upper half of x0 is ignored, as smccc::normalize does; FEATURES is VERSION + 1. */
    sub     w1, w0, w1
    cmp     w1, #1
    b.hi    8f
    mrs     x0, cntv_ctl_el0
    and     x0, x0, #7
    cmp     x0, #5
    b.eq    8f
    mrs     x0, cntp_ctl_el0
    and     x0, x0, #7
    cmp     x0, #5
    b.eq    8f
    cbnz    w1, 2f
    /* RSI_VERSION(x1 = requested): the implemented revisions are lowest..=highest. */
    ldr     x1, [sp, #8]
    movz    x0, #{rsi_lowest_lo}
    movk    x0, #{rsi_lowest_hi}, lsl #16
    sub     x0, x1, x0
    cmp     x0, #{rsi_span}
    b.hi    8f
    movz    x2, #{rsi_highest_lo}
    movk    x2, #{rsi_highest_hi}, lsl #16
    b       3f
    /* RSI_FEATURES(index): RsiFeatureRegister0 is 0 (no DA, MRO, ATS), other indices 0. */
2:  mov     x1, #0
    mov     x2, #0
3:  mrs     x3, elr_el2
    add     x3, x3, #4
    msr     elr_el2, x3
    mov     x3, #0
    mov     x0, #0
    add     sp, sp, #16
    eret
8:  mov     x0, #0
    b       rmm_realm_exit
"#,
    max_cpus = const MAX_CPUS,
    rsi_version_lo = const cca_abi::rsi::VERSION & 0xffff,
    rsi_version_hi = const cca_abi::rsi::VERSION >> 16,
    rsi_lowest_lo = const RSI_LOWEST & 0xffff,
    rsi_lowest_hi = const (RSI_LOWEST >> 16) & 0xffff,
    rsi_highest_lo = const RSI_HIGHEST & 0xffff,
    rsi_highest_hi = const (RSI_HIGHEST >> 16) & 0xffff,
    rsi_span = const RSI_HIGHEST - RSI_LOWEST,
    stack_shift = const STACK_SHIFT,
    exc_stack_shift = const EXC_STACK_SHIFT,
);

/// The RMM's load and entry address.
pub fn _start_addr() -> u64 {
    unsafe extern "C" {
        fn _start();
    }
    _start as *const () as usize as u64
}

unsafe extern "C" {
    fn rmm_ns_copy(dst: *mut u8, src: *const u8, len: usize) -> u64;
}

/// Copies `len` bytes between RMM memory and Non-secure memory, reporting a fault instead of
/// taking it.
///
/// # Safety
///
/// `dst` and `src` must be mapped in the RMM's stage 1 for `len` bytes (the Non-secure side
/// through the Non-secure alias), and the RMM-side buffer must be valid for the access.
pub unsafe fn ns_copy(dst: *mut u8, src: *const u8, len: usize) -> bool {
    // SAFETY: guaranteed by the caller; a fault on the Non-secure side is recovered by the
    // vector and reported as a non-zero return.
    unsafe { rmm_ns_copy(dst, src, len) == 0 }
}

#[unsafe(no_mangle)]
extern "C" fn rmm_fatal_exception(kind: u64) -> ! {
    fw_support::exception::fatal_el2("the RMM", kind, 0xE2)
}
