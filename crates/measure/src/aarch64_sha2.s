/* SHA-256 and SHA-512 block compression with the FEAT_SHA256 / FEAT_SHA512 instructions.
 * The RMM assembles this file into its image (crates/rmm/src/hash.rs) and installs it as
 * cca_measure's engine; this crate's tests run it on an interpreter of the instructions it
 * uses (src/aarch64_model.rs) and compare it with the software engine.
 *
 * The RMM is built without FP/SIMD, so the compiler never keeps values in the SIMD
 * registers; these routines save every SIMD register they write on the stack and restore it
 * before returning, so whichever world's FP/SIMD state is live in the registers (the host's
 * during an RMI call, a realm's during an RSI call) comes back unchanged. None of the
 * instructions used reads FPCR or writes FPSR. */
.arch_extension fp
.arch_extension simd
.arch_extension sha2
.arch_extension sha3

/* fw_sha256_blocks(x0 = state: [u32; 8], x1 = blocks, x2 = number of 64-byte blocks,
 * x3 = the 64 round constants). Uses v0-v9 and v16-v31, saved on the stack and restored.
 * v0 = ABCD, v1 = EFGH, v2/v3 = the state at the block's start, v4-v7 = the message
 * schedule (four words each), v8 = W + K, v9 = ABCD before SHA256H, v16-v31 = K. */
.section .text.fw_sha256_blocks, "ax"
.global fw_sha256_blocks
fw_sha256_blocks:
    cbz     x2, 9f
    sub     sp, sp, #416
    mov     x5, sp
    st1     {v0.16b-v3.16b}, [x5], #64
    st1     {v4.16b-v7.16b}, [x5], #64
    st1     {v8.16b-v9.16b}, [x5], #32
    st1     {v16.16b-v19.16b}, [x5], #64
    st1     {v20.16b-v23.16b}, [x5], #64
    st1     {v24.16b-v27.16b}, [x5], #64
    st1     {v28.16b-v31.16b}, [x5]
    ld1     {v16.4s-v19.4s}, [x3], #64
    ld1     {v20.4s-v23.4s}, [x3], #64
    ld1     {v24.4s-v27.4s}, [x3], #64
    ld1     {v28.4s-v31.4s}, [x3]
    ld1     {v0.4s-v1.4s}, [x0]
1:  ld1     {v4.16b-v7.16b}, [x1], #64
    rev32   v4.16b, v4.16b
    rev32   v5.16b, v5.16b
    rev32   v6.16b, v6.16b
    rev32   v7.16b, v7.16b
    mov     v2.16b, v0.16b
    mov     v3.16b, v1.16b
    add     v8.4s, v4.4s, v16.4s
    sha256su0 v4.4s, v5.4s
    mov     v9.16b, v0.16b
    sha256h q0, q1, v8.4s
    sha256h2 q1, q9, v8.4s
    sha256su1 v4.4s, v6.4s, v7.4s
    add     v8.4s, v5.4s, v17.4s
    sha256su0 v5.4s, v6.4s
    mov     v9.16b, v0.16b
    sha256h q0, q1, v8.4s
    sha256h2 q1, q9, v8.4s
    sha256su1 v5.4s, v7.4s, v4.4s
    add     v8.4s, v6.4s, v18.4s
    sha256su0 v6.4s, v7.4s
    mov     v9.16b, v0.16b
    sha256h q0, q1, v8.4s
    sha256h2 q1, q9, v8.4s
    sha256su1 v6.4s, v4.4s, v5.4s
    add     v8.4s, v7.4s, v19.4s
    sha256su0 v7.4s, v4.4s
    mov     v9.16b, v0.16b
    sha256h q0, q1, v8.4s
    sha256h2 q1, q9, v8.4s
    sha256su1 v7.4s, v5.4s, v6.4s
    add     v8.4s, v4.4s, v20.4s
    sha256su0 v4.4s, v5.4s
    mov     v9.16b, v0.16b
    sha256h q0, q1, v8.4s
    sha256h2 q1, q9, v8.4s
    sha256su1 v4.4s, v6.4s, v7.4s
    add     v8.4s, v5.4s, v21.4s
    sha256su0 v5.4s, v6.4s
    mov     v9.16b, v0.16b
    sha256h q0, q1, v8.4s
    sha256h2 q1, q9, v8.4s
    sha256su1 v5.4s, v7.4s, v4.4s
    add     v8.4s, v6.4s, v22.4s
    sha256su0 v6.4s, v7.4s
    mov     v9.16b, v0.16b
    sha256h q0, q1, v8.4s
    sha256h2 q1, q9, v8.4s
    sha256su1 v6.4s, v4.4s, v5.4s
    add     v8.4s, v7.4s, v23.4s
    sha256su0 v7.4s, v4.4s
    mov     v9.16b, v0.16b
    sha256h q0, q1, v8.4s
    sha256h2 q1, q9, v8.4s
    sha256su1 v7.4s, v5.4s, v6.4s
    add     v8.4s, v4.4s, v24.4s
    sha256su0 v4.4s, v5.4s
    mov     v9.16b, v0.16b
    sha256h q0, q1, v8.4s
    sha256h2 q1, q9, v8.4s
    sha256su1 v4.4s, v6.4s, v7.4s
    add     v8.4s, v5.4s, v25.4s
    sha256su0 v5.4s, v6.4s
    mov     v9.16b, v0.16b
    sha256h q0, q1, v8.4s
    sha256h2 q1, q9, v8.4s
    sha256su1 v5.4s, v7.4s, v4.4s
    add     v8.4s, v6.4s, v26.4s
    sha256su0 v6.4s, v7.4s
    mov     v9.16b, v0.16b
    sha256h q0, q1, v8.4s
    sha256h2 q1, q9, v8.4s
    sha256su1 v6.4s, v4.4s, v5.4s
    add     v8.4s, v7.4s, v27.4s
    sha256su0 v7.4s, v4.4s
    mov     v9.16b, v0.16b
    sha256h q0, q1, v8.4s
    sha256h2 q1, q9, v8.4s
    sha256su1 v7.4s, v5.4s, v6.4s
    add     v8.4s, v4.4s, v28.4s
    mov     v9.16b, v0.16b
    sha256h q0, q1, v8.4s
    sha256h2 q1, q9, v8.4s
    add     v8.4s, v5.4s, v29.4s
    mov     v9.16b, v0.16b
    sha256h q0, q1, v8.4s
    sha256h2 q1, q9, v8.4s
    add     v8.4s, v6.4s, v30.4s
    mov     v9.16b, v0.16b
    sha256h q0, q1, v8.4s
    sha256h2 q1, q9, v8.4s
    add     v8.4s, v7.4s, v31.4s
    mov     v9.16b, v0.16b
    sha256h q0, q1, v8.4s
    sha256h2 q1, q9, v8.4s
    add     v0.4s, v0.4s, v2.4s
    add     v1.4s, v1.4s, v3.4s
    subs    x2, x2, #1
    b.ne    1b
    st1     {v0.4s-v1.4s}, [x0]
    mov     x5, sp
    ld1     {v0.16b-v3.16b}, [x5], #64
    ld1     {v4.16b-v7.16b}, [x5], #64
    ld1     {v8.16b-v9.16b}, [x5], #32
    ld1     {v16.16b-v19.16b}, [x5], #64
    ld1     {v20.16b-v23.16b}, [x5], #64
    ld1     {v24.16b-v27.16b}, [x5], #64
    ld1     {v28.16b-v31.16b}, [x5]
    add     sp, sp, #416
9:  ret

/* fw_sha512_blocks(x0 = state: [u64; 8], x1 = blocks, x2 = number of 128-byte blocks,
 * x3 = the 80 round constants). Uses v0-v6 and v16-v27, saved on the stack and restored.
 * v24-v27 = the state (AB, CD, EF, GH: the first of each pair in the low half); v0-v4
 * hold the working state and the next W + K, their roles rotating every two rounds;
 * v5, v6 = FG and DE for SHA512H (v5 also the schedule's W[t+9..10]); v16-v23 = the
 * message schedule (two words each). */
.section .text.fw_sha512_blocks, "ax"
.global fw_sha512_blocks
fw_sha512_blocks:
    cbz     x2, 9f
    sub     sp, sp, #304
    mov     x5, sp
    st1     {v0.16b-v3.16b}, [x5], #64
    st1     {v4.16b-v6.16b}, [x5], #48
    st1     {v16.16b-v19.16b}, [x5], #64
    st1     {v20.16b-v23.16b}, [x5], #64
    st1     {v24.16b-v27.16b}, [x5]
    ld1     {v24.2d-v27.2d}, [x0]
1:  ld1     {v16.16b-v19.16b}, [x1], #64
    ld1     {v20.16b-v23.16b}, [x1], #64
    rev64   v16.16b, v16.16b
    rev64   v17.16b, v17.16b
    rev64   v18.16b, v18.16b
    rev64   v19.16b, v19.16b
    rev64   v20.16b, v20.16b
    rev64   v21.16b, v21.16b
    rev64   v22.16b, v22.16b
    rev64   v23.16b, v23.16b
    mov     v0.16b, v24.16b
    mov     v1.16b, v25.16b
    mov     v2.16b, v26.16b
    mov     v3.16b, v27.16b
    mov     x4, x3
    ld1     {v4.2d}, [x4], #16
    add     v4.2d, v4.2d, v16.2d
    ext     v4.16b, v4.16b, v4.16b, #8
    add     v4.2d, v4.2d, v3.2d
    ext     v5.16b, v2.16b, v3.16b, #8
    ext     v6.16b, v1.16b, v2.16b, #8
    sha512h q4, q5, v6.2d
    add     v3.2d, v1.2d, v4.2d
    sha512h2 q4, q1, v0.2d
    sha512su0 v16.2d, v17.2d
    ext     v5.16b, v20.16b, v21.16b, #8
    sha512su1 v16.2d, v23.2d, v5.2d
    ld1     {v1.2d}, [x4], #16
    add     v1.2d, v1.2d, v17.2d
    ext     v1.16b, v1.16b, v1.16b, #8
    add     v1.2d, v1.2d, v2.2d
    ext     v5.16b, v3.16b, v2.16b, #8
    ext     v6.16b, v0.16b, v3.16b, #8
    sha512h q1, q5, v6.2d
    add     v2.2d, v0.2d, v1.2d
    sha512h2 q1, q0, v4.2d
    sha512su0 v17.2d, v18.2d
    ext     v5.16b, v21.16b, v22.16b, #8
    sha512su1 v17.2d, v16.2d, v5.2d
    ld1     {v0.2d}, [x4], #16
    add     v0.2d, v0.2d, v18.2d
    ext     v0.16b, v0.16b, v0.16b, #8
    add     v0.2d, v0.2d, v3.2d
    ext     v5.16b, v2.16b, v3.16b, #8
    ext     v6.16b, v4.16b, v2.16b, #8
    sha512h q0, q5, v6.2d
    add     v3.2d, v4.2d, v0.2d
    sha512h2 q0, q4, v1.2d
    sha512su0 v18.2d, v19.2d
    ext     v5.16b, v22.16b, v23.16b, #8
    sha512su1 v18.2d, v17.2d, v5.2d
    ld1     {v4.2d}, [x4], #16
    add     v4.2d, v4.2d, v19.2d
    ext     v4.16b, v4.16b, v4.16b, #8
    add     v4.2d, v4.2d, v2.2d
    ext     v5.16b, v3.16b, v2.16b, #8
    ext     v6.16b, v1.16b, v3.16b, #8
    sha512h q4, q5, v6.2d
    add     v2.2d, v1.2d, v4.2d
    sha512h2 q4, q1, v0.2d
    sha512su0 v19.2d, v20.2d
    ext     v5.16b, v23.16b, v16.16b, #8
    sha512su1 v19.2d, v18.2d, v5.2d
    ld1     {v1.2d}, [x4], #16
    add     v1.2d, v1.2d, v20.2d
    ext     v1.16b, v1.16b, v1.16b, #8
    add     v1.2d, v1.2d, v3.2d
    ext     v5.16b, v2.16b, v3.16b, #8
    ext     v6.16b, v0.16b, v2.16b, #8
    sha512h q1, q5, v6.2d
    add     v3.2d, v0.2d, v1.2d
    sha512h2 q1, q0, v4.2d
    sha512su0 v20.2d, v21.2d
    ext     v5.16b, v16.16b, v17.16b, #8
    sha512su1 v20.2d, v19.2d, v5.2d
    ld1     {v0.2d}, [x4], #16
    add     v0.2d, v0.2d, v21.2d
    ext     v0.16b, v0.16b, v0.16b, #8
    add     v0.2d, v0.2d, v2.2d
    ext     v5.16b, v3.16b, v2.16b, #8
    ext     v6.16b, v4.16b, v3.16b, #8
    sha512h q0, q5, v6.2d
    add     v2.2d, v4.2d, v0.2d
    sha512h2 q0, q4, v1.2d
    sha512su0 v21.2d, v22.2d
    ext     v5.16b, v17.16b, v18.16b, #8
    sha512su1 v21.2d, v20.2d, v5.2d
    ld1     {v4.2d}, [x4], #16
    add     v4.2d, v4.2d, v22.2d
    ext     v4.16b, v4.16b, v4.16b, #8
    add     v4.2d, v4.2d, v3.2d
    ext     v5.16b, v2.16b, v3.16b, #8
    ext     v6.16b, v1.16b, v2.16b, #8
    sha512h q4, q5, v6.2d
    add     v3.2d, v1.2d, v4.2d
    sha512h2 q4, q1, v0.2d
    sha512su0 v22.2d, v23.2d
    ext     v5.16b, v18.16b, v19.16b, #8
    sha512su1 v22.2d, v21.2d, v5.2d
    ld1     {v1.2d}, [x4], #16
    add     v1.2d, v1.2d, v23.2d
    ext     v1.16b, v1.16b, v1.16b, #8
    add     v1.2d, v1.2d, v2.2d
    ext     v5.16b, v3.16b, v2.16b, #8
    ext     v6.16b, v0.16b, v3.16b, #8
    sha512h q1, q5, v6.2d
    add     v2.2d, v0.2d, v1.2d
    sha512h2 q1, q0, v4.2d
    sha512su0 v23.2d, v16.2d
    ext     v5.16b, v19.16b, v20.16b, #8
    sha512su1 v23.2d, v22.2d, v5.2d
    ld1     {v0.2d}, [x4], #16
    add     v0.2d, v0.2d, v16.2d
    ext     v0.16b, v0.16b, v0.16b, #8
    add     v0.2d, v0.2d, v3.2d
    ext     v5.16b, v2.16b, v3.16b, #8
    ext     v6.16b, v4.16b, v2.16b, #8
    sha512h q0, q5, v6.2d
    add     v3.2d, v4.2d, v0.2d
    sha512h2 q0, q4, v1.2d
    sha512su0 v16.2d, v17.2d
    ext     v5.16b, v20.16b, v21.16b, #8
    sha512su1 v16.2d, v23.2d, v5.2d
    ld1     {v4.2d}, [x4], #16
    add     v4.2d, v4.2d, v17.2d
    ext     v4.16b, v4.16b, v4.16b, #8
    add     v4.2d, v4.2d, v2.2d
    ext     v5.16b, v3.16b, v2.16b, #8
    ext     v6.16b, v1.16b, v3.16b, #8
    sha512h q4, q5, v6.2d
    add     v2.2d, v1.2d, v4.2d
    sha512h2 q4, q1, v0.2d
    sha512su0 v17.2d, v18.2d
    ext     v5.16b, v21.16b, v22.16b, #8
    sha512su1 v17.2d, v16.2d, v5.2d
    ld1     {v1.2d}, [x4], #16
    add     v1.2d, v1.2d, v18.2d
    ext     v1.16b, v1.16b, v1.16b, #8
    add     v1.2d, v1.2d, v3.2d
    ext     v5.16b, v2.16b, v3.16b, #8
    ext     v6.16b, v0.16b, v2.16b, #8
    sha512h q1, q5, v6.2d
    add     v3.2d, v0.2d, v1.2d
    sha512h2 q1, q0, v4.2d
    sha512su0 v18.2d, v19.2d
    ext     v5.16b, v22.16b, v23.16b, #8
    sha512su1 v18.2d, v17.2d, v5.2d
    ld1     {v0.2d}, [x4], #16
    add     v0.2d, v0.2d, v19.2d
    ext     v0.16b, v0.16b, v0.16b, #8
    add     v0.2d, v0.2d, v2.2d
    ext     v5.16b, v3.16b, v2.16b, #8
    ext     v6.16b, v4.16b, v3.16b, #8
    sha512h q0, q5, v6.2d
    add     v2.2d, v4.2d, v0.2d
    sha512h2 q0, q4, v1.2d
    sha512su0 v19.2d, v20.2d
    ext     v5.16b, v23.16b, v16.16b, #8
    sha512su1 v19.2d, v18.2d, v5.2d
    ld1     {v4.2d}, [x4], #16
    add     v4.2d, v4.2d, v20.2d
    ext     v4.16b, v4.16b, v4.16b, #8
    add     v4.2d, v4.2d, v3.2d
    ext     v5.16b, v2.16b, v3.16b, #8
    ext     v6.16b, v1.16b, v2.16b, #8
    sha512h q4, q5, v6.2d
    add     v3.2d, v1.2d, v4.2d
    sha512h2 q4, q1, v0.2d
    sha512su0 v20.2d, v21.2d
    ext     v5.16b, v16.16b, v17.16b, #8
    sha512su1 v20.2d, v19.2d, v5.2d
    ld1     {v1.2d}, [x4], #16
    add     v1.2d, v1.2d, v21.2d
    ext     v1.16b, v1.16b, v1.16b, #8
    add     v1.2d, v1.2d, v2.2d
    ext     v5.16b, v3.16b, v2.16b, #8
    ext     v6.16b, v0.16b, v3.16b, #8
    sha512h q1, q5, v6.2d
    add     v2.2d, v0.2d, v1.2d
    sha512h2 q1, q0, v4.2d
    sha512su0 v21.2d, v22.2d
    ext     v5.16b, v17.16b, v18.16b, #8
    sha512su1 v21.2d, v20.2d, v5.2d
    ld1     {v0.2d}, [x4], #16
    add     v0.2d, v0.2d, v22.2d
    ext     v0.16b, v0.16b, v0.16b, #8
    add     v0.2d, v0.2d, v3.2d
    ext     v5.16b, v2.16b, v3.16b, #8
    ext     v6.16b, v4.16b, v2.16b, #8
    sha512h q0, q5, v6.2d
    add     v3.2d, v4.2d, v0.2d
    sha512h2 q0, q4, v1.2d
    sha512su0 v22.2d, v23.2d
    ext     v5.16b, v18.16b, v19.16b, #8
    sha512su1 v22.2d, v21.2d, v5.2d
    ld1     {v4.2d}, [x4], #16
    add     v4.2d, v4.2d, v23.2d
    ext     v4.16b, v4.16b, v4.16b, #8
    add     v4.2d, v4.2d, v2.2d
    ext     v5.16b, v3.16b, v2.16b, #8
    ext     v6.16b, v1.16b, v3.16b, #8
    sha512h q4, q5, v6.2d
    add     v2.2d, v1.2d, v4.2d
    sha512h2 q4, q1, v0.2d
    sha512su0 v23.2d, v16.2d
    ext     v5.16b, v19.16b, v20.16b, #8
    sha512su1 v23.2d, v22.2d, v5.2d
    ld1     {v1.2d}, [x4], #16
    add     v1.2d, v1.2d, v16.2d
    ext     v1.16b, v1.16b, v1.16b, #8
    add     v1.2d, v1.2d, v3.2d
    ext     v5.16b, v2.16b, v3.16b, #8
    ext     v6.16b, v0.16b, v2.16b, #8
    sha512h q1, q5, v6.2d
    add     v3.2d, v0.2d, v1.2d
    sha512h2 q1, q0, v4.2d
    sha512su0 v16.2d, v17.2d
    ext     v5.16b, v20.16b, v21.16b, #8
    sha512su1 v16.2d, v23.2d, v5.2d
    ld1     {v0.2d}, [x4], #16
    add     v0.2d, v0.2d, v17.2d
    ext     v0.16b, v0.16b, v0.16b, #8
    add     v0.2d, v0.2d, v2.2d
    ext     v5.16b, v3.16b, v2.16b, #8
    ext     v6.16b, v4.16b, v3.16b, #8
    sha512h q0, q5, v6.2d
    add     v2.2d, v4.2d, v0.2d
    sha512h2 q0, q4, v1.2d
    sha512su0 v17.2d, v18.2d
    ext     v5.16b, v21.16b, v22.16b, #8
    sha512su1 v17.2d, v16.2d, v5.2d
    ld1     {v4.2d}, [x4], #16
    add     v4.2d, v4.2d, v18.2d
    ext     v4.16b, v4.16b, v4.16b, #8
    add     v4.2d, v4.2d, v3.2d
    ext     v5.16b, v2.16b, v3.16b, #8
    ext     v6.16b, v1.16b, v2.16b, #8
    sha512h q4, q5, v6.2d
    add     v3.2d, v1.2d, v4.2d
    sha512h2 q4, q1, v0.2d
    sha512su0 v18.2d, v19.2d
    ext     v5.16b, v22.16b, v23.16b, #8
    sha512su1 v18.2d, v17.2d, v5.2d
    ld1     {v1.2d}, [x4], #16
    add     v1.2d, v1.2d, v19.2d
    ext     v1.16b, v1.16b, v1.16b, #8
    add     v1.2d, v1.2d, v2.2d
    ext     v5.16b, v3.16b, v2.16b, #8
    ext     v6.16b, v0.16b, v3.16b, #8
    sha512h q1, q5, v6.2d
    add     v2.2d, v0.2d, v1.2d
    sha512h2 q1, q0, v4.2d
    sha512su0 v19.2d, v20.2d
    ext     v5.16b, v23.16b, v16.16b, #8
    sha512su1 v19.2d, v18.2d, v5.2d
    ld1     {v0.2d}, [x4], #16
    add     v0.2d, v0.2d, v20.2d
    ext     v0.16b, v0.16b, v0.16b, #8
    add     v0.2d, v0.2d, v3.2d
    ext     v5.16b, v2.16b, v3.16b, #8
    ext     v6.16b, v4.16b, v2.16b, #8
    sha512h q0, q5, v6.2d
    add     v3.2d, v4.2d, v0.2d
    sha512h2 q0, q4, v1.2d
    sha512su0 v20.2d, v21.2d
    ext     v5.16b, v16.16b, v17.16b, #8
    sha512su1 v20.2d, v19.2d, v5.2d
    ld1     {v4.2d}, [x4], #16
    add     v4.2d, v4.2d, v21.2d
    ext     v4.16b, v4.16b, v4.16b, #8
    add     v4.2d, v4.2d, v2.2d
    ext     v5.16b, v3.16b, v2.16b, #8
    ext     v6.16b, v1.16b, v3.16b, #8
    sha512h q4, q5, v6.2d
    add     v2.2d, v1.2d, v4.2d
    sha512h2 q4, q1, v0.2d
    sha512su0 v21.2d, v22.2d
    ext     v5.16b, v17.16b, v18.16b, #8
    sha512su1 v21.2d, v20.2d, v5.2d
    ld1     {v1.2d}, [x4], #16
    add     v1.2d, v1.2d, v22.2d
    ext     v1.16b, v1.16b, v1.16b, #8
    add     v1.2d, v1.2d, v3.2d
    ext     v5.16b, v2.16b, v3.16b, #8
    ext     v6.16b, v0.16b, v2.16b, #8
    sha512h q1, q5, v6.2d
    add     v3.2d, v0.2d, v1.2d
    sha512h2 q1, q0, v4.2d
    sha512su0 v22.2d, v23.2d
    ext     v5.16b, v18.16b, v19.16b, #8
    sha512su1 v22.2d, v21.2d, v5.2d
    ld1     {v0.2d}, [x4], #16
    add     v0.2d, v0.2d, v23.2d
    ext     v0.16b, v0.16b, v0.16b, #8
    add     v0.2d, v0.2d, v2.2d
    ext     v5.16b, v3.16b, v2.16b, #8
    ext     v6.16b, v4.16b, v3.16b, #8
    sha512h q0, q5, v6.2d
    add     v2.2d, v4.2d, v0.2d
    sha512h2 q0, q4, v1.2d
    sha512su0 v23.2d, v16.2d
    ext     v5.16b, v19.16b, v20.16b, #8
    sha512su1 v23.2d, v22.2d, v5.2d
    ld1     {v4.2d}, [x4], #16
    add     v4.2d, v4.2d, v16.2d
    ext     v4.16b, v4.16b, v4.16b, #8
    add     v4.2d, v4.2d, v3.2d
    ext     v5.16b, v2.16b, v3.16b, #8
    ext     v6.16b, v1.16b, v2.16b, #8
    sha512h q4, q5, v6.2d
    add     v3.2d, v1.2d, v4.2d
    sha512h2 q4, q1, v0.2d
    sha512su0 v16.2d, v17.2d
    ext     v5.16b, v20.16b, v21.16b, #8
    sha512su1 v16.2d, v23.2d, v5.2d
    ld1     {v1.2d}, [x4], #16
    add     v1.2d, v1.2d, v17.2d
    ext     v1.16b, v1.16b, v1.16b, #8
    add     v1.2d, v1.2d, v2.2d
    ext     v5.16b, v3.16b, v2.16b, #8
    ext     v6.16b, v0.16b, v3.16b, #8
    sha512h q1, q5, v6.2d
    add     v2.2d, v0.2d, v1.2d
    sha512h2 q1, q0, v4.2d
    sha512su0 v17.2d, v18.2d
    ext     v5.16b, v21.16b, v22.16b, #8
    sha512su1 v17.2d, v16.2d, v5.2d
    ld1     {v0.2d}, [x4], #16
    add     v0.2d, v0.2d, v18.2d
    ext     v0.16b, v0.16b, v0.16b, #8
    add     v0.2d, v0.2d, v3.2d
    ext     v5.16b, v2.16b, v3.16b, #8
    ext     v6.16b, v4.16b, v2.16b, #8
    sha512h q0, q5, v6.2d
    add     v3.2d, v4.2d, v0.2d
    sha512h2 q0, q4, v1.2d
    sha512su0 v18.2d, v19.2d
    ext     v5.16b, v22.16b, v23.16b, #8
    sha512su1 v18.2d, v17.2d, v5.2d
    ld1     {v4.2d}, [x4], #16
    add     v4.2d, v4.2d, v19.2d
    ext     v4.16b, v4.16b, v4.16b, #8
    add     v4.2d, v4.2d, v2.2d
    ext     v5.16b, v3.16b, v2.16b, #8
    ext     v6.16b, v1.16b, v3.16b, #8
    sha512h q4, q5, v6.2d
    add     v2.2d, v1.2d, v4.2d
    sha512h2 q4, q1, v0.2d
    sha512su0 v19.2d, v20.2d
    ext     v5.16b, v23.16b, v16.16b, #8
    sha512su1 v19.2d, v18.2d, v5.2d
    ld1     {v1.2d}, [x4], #16
    add     v1.2d, v1.2d, v20.2d
    ext     v1.16b, v1.16b, v1.16b, #8
    add     v1.2d, v1.2d, v3.2d
    ext     v5.16b, v2.16b, v3.16b, #8
    ext     v6.16b, v0.16b, v2.16b, #8
    sha512h q1, q5, v6.2d
    add     v3.2d, v0.2d, v1.2d
    sha512h2 q1, q0, v4.2d
    sha512su0 v20.2d, v21.2d
    ext     v5.16b, v16.16b, v17.16b, #8
    sha512su1 v20.2d, v19.2d, v5.2d
    ld1     {v0.2d}, [x4], #16
    add     v0.2d, v0.2d, v21.2d
    ext     v0.16b, v0.16b, v0.16b, #8
    add     v0.2d, v0.2d, v2.2d
    ext     v5.16b, v3.16b, v2.16b, #8
    ext     v6.16b, v4.16b, v3.16b, #8
    sha512h q0, q5, v6.2d
    add     v2.2d, v4.2d, v0.2d
    sha512h2 q0, q4, v1.2d
    sha512su0 v21.2d, v22.2d
    ext     v5.16b, v17.16b, v18.16b, #8
    sha512su1 v21.2d, v20.2d, v5.2d
    ld1     {v4.2d}, [x4], #16
    add     v4.2d, v4.2d, v22.2d
    ext     v4.16b, v4.16b, v4.16b, #8
    add     v4.2d, v4.2d, v3.2d
    ext     v5.16b, v2.16b, v3.16b, #8
    ext     v6.16b, v1.16b, v2.16b, #8
    sha512h q4, q5, v6.2d
    add     v3.2d, v1.2d, v4.2d
    sha512h2 q4, q1, v0.2d
    sha512su0 v22.2d, v23.2d
    ext     v5.16b, v18.16b, v19.16b, #8
    sha512su1 v22.2d, v21.2d, v5.2d
    ld1     {v1.2d}, [x4], #16
    add     v1.2d, v1.2d, v23.2d
    ext     v1.16b, v1.16b, v1.16b, #8
    add     v1.2d, v1.2d, v2.2d
    ext     v5.16b, v3.16b, v2.16b, #8
    ext     v6.16b, v0.16b, v3.16b, #8
    sha512h q1, q5, v6.2d
    add     v2.2d, v0.2d, v1.2d
    sha512h2 q1, q0, v4.2d
    sha512su0 v23.2d, v16.2d
    ext     v5.16b, v19.16b, v20.16b, #8
    sha512su1 v23.2d, v22.2d, v5.2d
    ld1     {v0.2d}, [x4], #16
    add     v0.2d, v0.2d, v16.2d
    ext     v0.16b, v0.16b, v0.16b, #8
    add     v0.2d, v0.2d, v3.2d
    ext     v5.16b, v2.16b, v3.16b, #8
    ext     v6.16b, v4.16b, v2.16b, #8
    sha512h q0, q5, v6.2d
    add     v3.2d, v4.2d, v0.2d
    sha512h2 q0, q4, v1.2d
    ld1     {v4.2d}, [x4], #16
    add     v4.2d, v4.2d, v17.2d
    ext     v4.16b, v4.16b, v4.16b, #8
    add     v4.2d, v4.2d, v2.2d
    ext     v5.16b, v3.16b, v2.16b, #8
    ext     v6.16b, v1.16b, v3.16b, #8
    sha512h q4, q5, v6.2d
    add     v2.2d, v1.2d, v4.2d
    sha512h2 q4, q1, v0.2d
    ld1     {v1.2d}, [x4], #16
    add     v1.2d, v1.2d, v18.2d
    ext     v1.16b, v1.16b, v1.16b, #8
    add     v1.2d, v1.2d, v3.2d
    ext     v5.16b, v2.16b, v3.16b, #8
    ext     v6.16b, v0.16b, v2.16b, #8
    sha512h q1, q5, v6.2d
    add     v3.2d, v0.2d, v1.2d
    sha512h2 q1, q0, v4.2d
    ld1     {v0.2d}, [x4], #16
    add     v0.2d, v0.2d, v19.2d
    ext     v0.16b, v0.16b, v0.16b, #8
    add     v0.2d, v0.2d, v2.2d
    ext     v5.16b, v3.16b, v2.16b, #8
    ext     v6.16b, v4.16b, v3.16b, #8
    sha512h q0, q5, v6.2d
    add     v2.2d, v4.2d, v0.2d
    sha512h2 q0, q4, v1.2d
    ld1     {v4.2d}, [x4], #16
    add     v4.2d, v4.2d, v20.2d
    ext     v4.16b, v4.16b, v4.16b, #8
    add     v4.2d, v4.2d, v3.2d
    ext     v5.16b, v2.16b, v3.16b, #8
    ext     v6.16b, v1.16b, v2.16b, #8
    sha512h q4, q5, v6.2d
    add     v3.2d, v1.2d, v4.2d
    sha512h2 q4, q1, v0.2d
    ld1     {v1.2d}, [x4], #16
    add     v1.2d, v1.2d, v21.2d
    ext     v1.16b, v1.16b, v1.16b, #8
    add     v1.2d, v1.2d, v2.2d
    ext     v5.16b, v3.16b, v2.16b, #8
    ext     v6.16b, v0.16b, v3.16b, #8
    sha512h q1, q5, v6.2d
    add     v2.2d, v0.2d, v1.2d
    sha512h2 q1, q0, v4.2d
    ld1     {v0.2d}, [x4], #16
    add     v0.2d, v0.2d, v22.2d
    ext     v0.16b, v0.16b, v0.16b, #8
    add     v0.2d, v0.2d, v3.2d
    ext     v5.16b, v2.16b, v3.16b, #8
    ext     v6.16b, v4.16b, v2.16b, #8
    sha512h q0, q5, v6.2d
    add     v3.2d, v4.2d, v0.2d
    sha512h2 q0, q4, v1.2d
    ld1     {v4.2d}, [x4], #16
    add     v4.2d, v4.2d, v23.2d
    ext     v4.16b, v4.16b, v4.16b, #8
    add     v4.2d, v4.2d, v2.2d
    ext     v5.16b, v3.16b, v2.16b, #8
    ext     v6.16b, v1.16b, v3.16b, #8
    sha512h q4, q5, v6.2d
    add     v2.2d, v1.2d, v4.2d
    sha512h2 q4, q1, v0.2d
    add     v24.2d, v24.2d, v4.2d
    add     v25.2d, v25.2d, v0.2d
    add     v26.2d, v26.2d, v2.2d
    add     v27.2d, v27.2d, v3.2d
    subs    x2, x2, #1
    b.ne    1b
    st1     {v24.2d-v27.2d}, [x0]
    mov     x5, sp
    ld1     {v0.16b-v3.16b}, [x5], #64
    ld1     {v4.16b-v6.16b}, [x5], #48
    ld1     {v16.16b-v19.16b}, [x5], #64
    ld1     {v20.16b-v23.16b}, [x5], #64
    ld1     {v24.16b-v27.16b}, [x5]
    add     sp, sp, #304
9:  ret
