//! `memcpy` and `memset` for the RMM, 64 bytes per loop iteration with integer register
//! pairs (the RMM does not use FP/SIMD registers outside its hashing routines). They replace
//! `compiler_builtins`' portable versions, whose definitions are weak: every copy and zeroing
//! the compiler emits (REC and RD objects, RTT images, exit records, buffers) goes through
//! them. The RMM maps all its memory as Normal memory with alignment checking off
//! (SCTLR_EL2.A = 0), so unaligned pair accesses are allowed; device memory is only ever
//! accessed with volatile single accesses, never through these.

core::arch::global_asm!(
    r#"
.section .text.memcpy, "ax"
.global memcpy
.type memcpy, %function
/* memcpy(x0 = dst, x1 = src, x2 = n) -> dst; the regions do not overlap. */
memcpy:
    mov     x3, x0
    subs    x2, x2, #64
    b.lo    2f
1:  ldp     x4, x5, [x1]
    ldp     x6, x7, [x1, #16]
    ldp     x8, x9, [x1, #32]
    ldp     x10, x11, [x1, #48]
    add     x1, x1, #64
    stp     x4, x5, [x3]
    stp     x6, x7, [x3, #16]
    stp     x8, x9, [x3, #32]
    stp     x10, x11, [x3, #48]
    add     x3, x3, #64
    subs    x2, x2, #64
    b.hs    1b
2:  adds    x2, x2, #48
    b.lo    4f
3:  ldp     x4, x5, [x1], #16
    stp     x4, x5, [x3], #16
    subs    x2, x2, #16
    b.hs    3b
4:  adds    x2, x2, #16
    b.eq    6f
    tbz     x2, #3, 5f
    ldr     x4, [x1], #8
    str     x4, [x3], #8
    subs    x2, x2, #8
    b.eq    6f
5:  ldrb    w4, [x1], #1
    strb    w4, [x3], #1
    subs    x2, x2, #1
    b.ne    5b
6:  ret
.size memcpy, . - memcpy

.section .text.memset, "ax"
.global memset
.type memset, %function
/* memset(x0 = dst, w1 = byte, x2 = n) -> dst. */
memset:
    mov     x3, x0
    and     x1, x1, #0xff
    orr     x1, x1, x1, lsl #8
    orr     x1, x1, x1, lsl #16
    orr     x1, x1, x1, lsl #32
    subs    x2, x2, #64
    b.lo    2f
1:  stp     x1, x1, [x3]
    stp     x1, x1, [x3, #16]
    stp     x1, x1, [x3, #32]
    stp     x1, x1, [x3, #48]
    add     x3, x3, #64
    subs    x2, x2, #64
    b.hs    1b
2:  adds    x2, x2, #48
    b.lo    4f
3:  stp     x1, x1, [x3], #16
    subs    x2, x2, #16
    b.hs    3b
4:  adds    x2, x2, #16
    b.eq    6f
    tbz     x2, #3, 5f
    str     x1, [x3], #8
    subs    x2, x2, #8
    b.eq    6f
5:  strb    w1, [x3], #1
    subs    x2, x2, #1
    b.ne    5b
6:  ret
.size memset, . - memset

/* rmm_fill_words16(x0 = dst, 8-byte aligned; x1 = value; x2 = words, a non-zero multiple
 * of 16): stores the value 16 words per iteration. */
.section .text.rmm_fill_words16, "ax"
.global rmm_fill_words16
rmm_fill_words16:
1:  stp     x1, x1, [x0]
    stp     x1, x1, [x0, #16]
    stp     x1, x1, [x0, #32]
    stp     x1, x1, [x0, #48]
    stp     x1, x1, [x0, #64]
    stp     x1, x1, [x0, #80]
    stp     x1, x1, [x0, #96]
    stp     x1, x1, [x0, #112]
    add     x0, x0, #128
    subs    x2, x2, #16
    b.ne    1b
    ret

/* rmm_zva_4k(x0 = granule VA, x1 = DC ZVA block size, a power of two from 16 to 1024):
 * zeroes the 4 KiB granule, four blocks per iteration. */
.section .text.rmm_zva_4k, "ax"
.global rmm_zva_4k
rmm_zva_4k:
    add     x2, x0, #4096
1:  dc      zva, x0
    add     x0, x0, x1
    dc      zva, x0
    add     x0, x0, x1
    dc      zva, x0
    add     x0, x0, x1
    dc      zva, x0
    add     x0, x0, x1
    cmp     x0, x2
    b.lo    1b
    ret
"#
);

unsafe extern "C" {
    /// See the assembly above.
    pub fn rmm_fill_words16(dst: *mut u64, value: u64, words: usize);
    /// See the assembly above.
    pub fn rmm_zva_4k(granule: *mut u8, block: u64);
}
