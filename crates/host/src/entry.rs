//! Entry points (boot CPU and secondaries brought up by PSCI CPU_ON), exception vectors, and a
//! fault-tolerant read used to show that delegated memory is out of the host's reach.

use core::arch::global_asm;

/// CPUs this image supports.
pub const MAX_CPUS: usize = 8;

global_asm!(
    r#"
.section .text.entry, "ax"
.global _start
_start:
"#,
    fw_support::image_header_asm!(),
    r#"
    mov     x19, x0
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
1:  cmp     x1, x2
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
2:  mov     x0, #0
    bl      set_stack_and_vectors
    mov     x0, x19
    bl      host_main
    b       .

/* PSCI CPU_ON entry: x0 = context id = CPU index. */
.global host_secondary_entry
host_secondary_entry:
    mov     x19, x0
    cmp     x19, #{max_cpus}
    b.hs    .
    bl      set_stack_and_vectors
    mov     x0, x19
    bl      host_secondary_main
    b       .

/* x0 = CPU index; uses x0-x3 only, returns through x30 unchanged. */
set_stack_and_vectors:
    adrp    x1, __stacks_end
    add     x1, x1, :lo12:__stacks_end
    lsl     x2, x0, #15
    sub     sp, x1, x2
    adr     x3, host_vectors
    msr     vbar_el2, x3
    isb
    ret

/* u64 host_probe_read(u64 *p, u64 *out): 0 = read, 1 = the access faulted. */
.global host_probe_read
.global host_probe_start
.global host_probe_end
host_probe_start:
host_probe_read:
    ldr     x2, [x0]
    str     x2, [x1]
    mov     x0, #0
    ret
host_probe_fault:
    mov     x0, #1
    ret
host_probe_end:

.macro fatal_entry kind
    .balign 0x80
    mov     x0, #\kind
    b       host_fatal_exception
.endm

.section .text.vectors, "ax"
.balign 2048
host_vectors:
    fatal_entry 0
    fatal_entry 1
    fatal_entry 2
    fatal_entry 3
    .balign 0x80
    stp     x0, x1, [sp, #-16]!
    mrs     x0, elr_el2
    adr     x1, host_probe_start
    cmp     x0, x1
    b.lo    5f
    adr     x1, host_probe_end
    cmp     x0, x1
    b.hs    5f
    adr     x1, host_probe_fault
    msr     elr_el2, x1
    ldp     x0, x1, [sp], #16
    eret
5:  ldp     x0, x1, [sp], #16
    mov     x0, #0
    b       host_fatal_exception
    fatal_entry 1
    fatal_entry 2
    fatal_entry 3
    fatal_entry 4
    fatal_entry 4
    fatal_entry 4
    fatal_entry 4
    fatal_entry 4
    fatal_entry 4
    fatal_entry 4
    fatal_entry 4
"#,
    max_cpus = const MAX_CPUS,
);

unsafe extern "C" {
    fn host_probe_read(p: *const u64, out: *mut u64) -> u64;
    /// The address PSCI CPU_ON starts secondary CPUs at.
    pub fn host_secondary_entry();
}

/// Reads a word, returning `None` if the access faulted.
///
/// # Safety
///
/// `pa` must be mapped in the host's stage 1 (faults from the memory system are recovered,
/// translation of the address must exist).
pub unsafe fn probe_read(pa: u64) -> Option<u64> {
    let mut v = 0u64;
    // SAFETY: the caller guarantees the mapping; a fault is recovered by the vector.
    let r = unsafe { host_probe_read(pa as *const u64, &mut v) };
    (r == 0).then_some(v)
}

#[unsafe(no_mangle)]
extern "C" fn host_fatal_exception(kind: u64) -> ! {
    fw_support::exception::fatal_el2("the host", kind, 0xE1)
}
