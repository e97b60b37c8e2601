//! Entry points (REC 0 at IPA 0, other RECs through PSCI `CPU_ON`), the stacks, and the EL1
//! exception vectors.
//!
//! Both entries start at EL1h with the MMU off, and no Rust code runs before the MMU is on:
//!
//! * REC 0 cleans and invalidates the data cache over everything it uses (the RMM wrote the
//!   image and zeroed the rest through cacheable mappings, and REC 0 accesses it uncached
//!   until its MMU is on), clears `.bss`, writes a three-page boot map (one 2 MiB block of
//!   normal memory at IPA 0) with plain stores, enables the MMU on it and calls
//!   `realm_main`, which builds the real map with `aarch64-paging` and switches to it.
//! * A REC started by `CPU_ON` turns its MMU on with the real map, before it touches memory,
//!   from the registers REC 0 published in [`crate::mmu::REALM_MMU_REGS`], then calls
//!   `realm_secondary_main`.

use core::arch::global_asm;

/// RECs this image has stacks for (REC 0, REC 1, and a spare for a bad context id).
pub const MAX_RECS: usize = 4;
/// Each REC's stack slot (`link.ld` reserves `MAX_RECS * STACK_SLOT`): a guard page, which
/// stage 1 leaves unmapped so that an overflow faults, then the stack.
pub const STACK_SLOT: usize = 0x10000;
/// The unmapped guard page at the bottom of each stack slot.
pub const STACK_GUARD: usize = 0x1000;

global_asm!(
    r#"
.section .text.entry, "ax"
.global _start
_start:
    /* REC 0: EL1h, MMU off, x0 = 0 (passed on to realm_main). */
    msr     daifset, #0xf
    mov     x19, x0
    msr     spsel, #1
    adr     x1, realm_vectors
    msr     vbar_el1, x1
    mov     x0, #0
    bl      realm_set_stack
    isb

    /* Clean and invalidate [0, __realm_end) to the point of coherency. */
    mrs     x2, ctr_el0
    ubfx    x2, x2, #16, #4
    mov     x3, #4
    lsl     x3, x3, x2
    mov     x4, #0
    adrp    x5, __realm_end
    add     x5, x5, :lo12:__realm_end
1:  dc      civac, x4
    add     x4, x4, x3
    cmp     x4, x5
    b.lo    1b
    dsb     sy

    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
2:  cmp     x1, x2
    b.hs    3f
    stp     xzr, xzr, [x1], #16
    b       2b

    /*
     * Boot map (in .bss, written with plain stores): L0[0] -> L1, L1[0] -> L2,
     * L2[0] = a 2 MiB block of normal memory at IPA 0, so that realm_main runs with the MMU
     * and caches on and builds the real map with them.
     */
3:  adrp    x0, REALM_BOOT_TABLES
    add     x0, x0, :lo12:REALM_BOOT_TABLES
    add     x1, x0, #0x1000
    add     x2, x0, #0x2000
    orr     x3, x1, #3
    str     x3, [x0]
    orr     x3, x2, #3
    str     x3, [x1]
    ldr     x3, ={boot_block}
    str     x3, [x2]
    dsb     sy
    ldr     x1, ={mair}
    msr     mair_el1, x1
    ldr     x1, ={tcr}
    msr     tcr_el1, x1
    msr     ttbr0_el1, x0
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    ic      iallu
    dsb     nsh
    isb
    mov     x1, #{cpacr}
    msr     cpacr_el1, x1
    ldr     x1, ={sctlr}
    msr     sctlr_el1, x1
    isb
    mov     x0, x19
    bl      realm_main
    b       .

/*
 * PSCI CPU_ON entry: x0 = context id; its low byte is the REC's stack index (1..MAX_RECS-1,
 * anything else uses the spare stack MAX_RECS-1).
 */
.global realm_secondary_entry
realm_secondary_entry:
    msr     daifset, #0xf
    mov     x19, x0
    msr     spsel, #1
    adr     x1, realm_vectors
    msr     vbar_el1, x1
    and     x0, x19, #0xff
    cmp     x0, #{max_recs}
    b.hs    4f
    cbnz    x0, 5f
4:  mov     x0, #({max_recs} - 1)
5:  bl      realm_set_stack

    /* MMU on with REC 0's tables and registers: ttbr0, tcr, mair, sctlr. */
    adrp    x1, REALM_MMU_REGS
    add     x1, x1, :lo12:REALM_MMU_REGS
    ldp     x2, x3, [x1]
    ldp     x4, x5, [x1, #16]
    cbz     x2, 7f
    msr     mair_el1, x4
    msr     tcr_el1, x3
    msr     ttbr0_el1, x2
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    ic      iallu
    dsb     nsh
    isb
    mov     x6, #{cpacr}
    msr     cpacr_el1, x6
    msr     sctlr_el1, x5
    isb
    mov     x0, x19
    bl      realm_secondary_main
    b       .
    /* REC 0 has not published its tables: nothing can run here. */
7:  wfe
    b       7b

/* x0 = REC index: sp = TPIDR_EL1 = top of that REC's stack slot. Uses x0-x2. */
realm_set_stack:
    adrp    x1, __stacks_start
    add     x1, x1, :lo12:__stacks_start
    add     x0, x0, #1
    mov     x2, #{stack_slot}
    madd    x1, x0, x2, x1
    mov     sp, x1
    msr     tpidr_el1, x1
    ret

/* IRQ at EL1h: save the caller-saved registers, ELR and SPSR, call realm_irq, return. */
realm_irq_entry:
    sub     sp, sp, #192
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x29, [sp, #144]
    mrs     x0, elr_el1
    mrs     x1, spsr_el1
    stp     x30, x0, [sp, #160]
    str     x1, [sp, #176]
    bl      realm_irq
    ldr     x1, [sp, #176]
    ldp     x30, x0, [sp, #160]
    msr     elr_el1, x0
    msr     spsr_el1, x1
    ldp     x18, x29, [sp, #144]
    ldp     x16, x17, [sp, #128]
    ldp     x14, x15, [sp, #112]
    ldp     x12, x13, [sp, #96]
    ldp     x10, x11, [sp, #80]
    ldp     x8, x9, [sp, #64]
    ldp     x6, x7, [sp, #48]
    ldp     x4, x5, [sp, #32]
    ldp     x2, x3, [sp, #16]
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #192
    eret

/*
 * Any other exception is fatal: x0 = vector index (0-15), back to the top of this REC's
 * stack (TPIDR_EL1), report.
 */
.macro fatal_entry index
    .balign 0x80
    mov     x0, #\index
    mrs     x1, tpidr_el1
    cbz     x1, 1f
    mov     sp, x1
1:  b       realm_fatal_exception
.endm

.section .text.vectors, "ax"
.balign 2048
.global realm_vectors
realm_vectors:
    fatal_entry 0
    fatal_entry 1
    fatal_entry 2
    fatal_entry 3
    fatal_entry 4
    .balign 0x80
    b       realm_irq_entry
    fatal_entry 6
    fatal_entry 7
    fatal_entry 8
    fatal_entry 9
    fatal_entry 10
    fatal_entry 11
    fatal_entry 12
    fatal_entry 13
    fatal_entry 14
    fatal_entry 15
"#,
    max_recs = const MAX_RECS,
    stack_slot = const STACK_SLOT,
    boot_block = const crate::mmu::BOOT_BLOCK,
    mair = const crate::mmu::MAIR,
    tcr = const crate::mmu::TCR,
    sctlr = const crate::mmu::SCTLR,
    cpacr = const crate::mmu::CPACR,
);

unsafe extern "C" {
    /// The address PSCI `CPU_ON` starts other RECs at (x0 = context id).
    pub fn realm_secondary_entry();
    static __text_end: u8;
    static __rodata_end: u8;
    static __image_end: u8;
    static __stacks_start: u8;
    static __stacks_end: u8;
    static __realm_end: u8;
}

/// Link-time addresses (IPAs) of the image's parts.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// End of `.text` (start of `.rodata`).
    pub text_end: u64,
    /// End of `.rodata` (start of `.data`).
    pub rodata_end: u64,
    /// End of the loaded image (`.data`), granule-aligned.
    pub image_end: u64,
    /// Start of the stacks.
    pub stacks_start: u64,
    /// End of the stacks.
    pub stacks_end: u64,
    /// End of everything the payload uses.
    pub realm_end: u64,
}

/// Returns the image layout from the linker symbols.
pub fn layout() -> Layout {
    Layout {
        text_end: (&raw const __text_end) as u64,
        rodata_end: (&raw const __rodata_end) as u64,
        image_end: (&raw const __image_end) as u64,
        stacks_start: (&raw const __stacks_start) as u64,
        stacks_end: (&raw const __stacks_end) as u64,
        realm_end: (&raw const __realm_end) as u64,
    }
}

/// The IPA of the `CPU_ON` entry point.
pub fn secondary_entry() -> u64 {
    realm_secondary_entry as *const () as u64
}

#[unsafe(no_mangle)]
extern "C" fn realm_fatal_exception(index: u64) -> ! {
    crate::fatal::exception(index)
}

#[unsafe(no_mangle)]
extern "C" fn realm_irq() {
    crate::gic::irq();
}
