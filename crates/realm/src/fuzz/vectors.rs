//! The fuzz mode's EL1 exception vectors: every synchronous exception an armed probe takes
//! (injected SEA or UNDEF, a stage 1 fault, a trap, SVC/BRK, an exception from EL0) is
//! recorded in the REC's [`Slot`] and the probe resumes at the address it armed, at EL1h
//! with D, A, I, F masked. IRQs are acknowledged and ended (the virtual timer's is masked at
//! the timer). An exception no probe armed is fatal, as in the checks mode.
//!
//! Probes arm a slot by storing their resume address in [`Slot::resume`] right before the
//! instruction under test (see `exec.rs`); the handler disarms it.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};
use fw_support::{read_sysreg, write_sysreg};

/// What the last exception of a probe on one REC was.
#[repr(C)]
pub struct Slot {
    /// Where to resume (0: no probe armed).
    pub resume: AtomicU64,
    /// Set by the handler when it took an exception for the armed probe.
    pub taken: AtomicU64,
    /// `ESR_EL1` of it.
    pub esr: AtomicU64,
    /// `FAR_EL1`.
    pub far: AtomicU64,
    /// `ELR_EL1`.
    pub elr: AtomicU64,
    /// 1 if it came from EL0.
    pub from_el0: AtomicU64,
}

impl Slot {
    const fn new() -> Self {
        Self {
            resume: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            esr: AtomicU64::new(0),
            far: AtomicU64::new(0),
            elr: AtomicU64::new(0),
            from_el0: AtomicU64::new(0),
        }
    }
}

/// One slot per REC (indexed by `MPIDR_EL1.Aff0`, modulo 4).
pub static SLOTS: [Slot; 4] = [Slot::new(), Slot::new(), Slot::new(), Slot::new()];
/// Virtual timer interrupts taken.
pub static TIMER_IRQS: AtomicU64 = AtomicU64::new(0);
/// Other interrupts taken (SGIs the fuzzer sent itself, device SPIs).
pub static OTHER_IRQS: AtomicU64 = AtomicU64::new(0);
/// Spurious acknowledgements.
pub static SPURIOUS_IRQS: AtomicU64 = AtomicU64::new(0);
/// FIQs and SErrors taken.
pub static ASYNC: AtomicU64 = AtomicU64::new(0);

/// This REC's slot.
pub fn slot() -> &'static Slot {
    &SLOTS[(read_sysreg!(mpidr_el1) & 3) as usize]
}

global_asm!(
    r#"
.macro fz_save
    sub     sp, sp, #256
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    str     x30, [sp, #240]
.endm
.macro fz_restore
    ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    ldr     x30, [sp, #240]
    add     sp, sp, #256
.endm
.macro fz_body name, handler, arg
\name:
    fz_save
    mov     x0, #\arg
    bl      \handler
    fz_restore
    eret
.endm
.macro fz_vector target
    .balign 0x80
    b       \target
.endm

.section .text.fuzz_vectors, "ax"
.balign 2048
.global fuzz_vectors
fuzz_vectors:
    fz_vector fz_unexpected_0
    fz_vector fz_unexpected_1
    fz_vector fz_unexpected_2
    fz_vector fz_unexpected_3
    fz_vector fz_sync_el1
    fz_vector fz_irq_el1
    fz_vector fz_async_0
    fz_vector fz_async_1
    fz_vector fz_sync_el0
    fz_vector fz_irq_el0
    fz_vector fz_async_2
    fz_vector fz_async_3
    fz_vector fz_sync_el0_32
    fz_vector fz_unexpected_13
    fz_vector fz_unexpected_14
    fz_vector fz_unexpected_15
    .balign 0x80
    fz_body fz_unexpected_0, fuzz_unexpected, 0
    fz_body fz_unexpected_1, fuzz_unexpected, 1
    fz_body fz_unexpected_2, fuzz_unexpected, 2
    fz_body fz_unexpected_3, fuzz_unexpected, 3
    fz_body fz_sync_el1, fuzz_sync, 0
    fz_body fz_irq_el1, fuzz_irq, 0
    fz_body fz_async_0, fuzz_async, 0
    fz_body fz_async_1, fuzz_async, 1
    fz_body fz_sync_el0, fuzz_sync, 1
    fz_body fz_irq_el0, fuzz_irq, 1
    fz_body fz_async_2, fuzz_async, 2
    fz_body fz_async_3, fuzz_async, 3
    fz_body fz_sync_el0_32, fuzz_sync, 2
    fz_body fz_unexpected_13, fuzz_unexpected, 13
    fz_body fz_unexpected_14, fuzz_unexpected, 14
    fz_body fz_unexpected_15, fuzz_unexpected, 15
"#
);

unsafe extern "C" {
    /// The vector table above.
    pub fn fuzz_vectors();
}

/// A synchronous exception at EL1 (`from` 0), from AArch64 EL0 (1) or AArch32 EL0 (2).
#[unsafe(no_mangle)]
extern "C" fn fuzz_sync(from: u64) {
    let esr = read_sysreg!(esr_el1);
    let elr = read_sysreg!(elr_el1);
    let far = read_sysreg!(far_el1);
    let s = slot();
    let resume = s.resume.load(Ordering::Relaxed);
    if resume == 0 {
        crate::fatal::report(format_args!(
            "fuzz: exception no probe expected ({}): ESR_EL1={esr:#x} ({}) ELR_EL1={elr:#x} \
             FAR_EL1={far:#x}",
            if from == 0 { "EL1" } else { "EL0" },
            fw_support::exception::ec_name(esr)
        ));
    }
    s.resume.store(0, Ordering::Relaxed);
    s.esr.store(esr, Ordering::Relaxed);
    s.far.store(far, Ordering::Relaxed);
    s.elr.store(elr, Ordering::Relaxed);
    s.from_el0.store(u64::from(from != 0), Ordering::Relaxed);
    s.taken.store(1, Ordering::Relaxed);
    // Back to EL1h with D, A, I, F masked; IL, SS, BTYPE, ALLINT and the AArch32 bit cleared.
    let spsr = read_sysreg!(spsr_el1);
    let spsr = (spsr & !(0x3FF | (1 << 20) | (1 << 21) | (3 << 10) | (1 << 13))) | 0x3C5;
    // SAFETY: the handler returns to the probe's resume label (an address in this image's
    // code the probe stored itself) at EL1h, on the stack the exception was taken on.
    unsafe {
        write_sysreg!(elr_el1, resume);
        write_sysreg!(spsr_el1, spsr);
    }
}

/// An IRQ (at EL1 or from EL0): acknowledge, mask the timer if it was the timer's, end it.
#[unsafe(no_mangle)]
extern "C" fn fuzz_irq(_from: u64) {
    let intid = read_sysreg!(s3_0_c12_c12_0) & 0xff_ffff; // ICC_IAR1_EL1
    if (1020..=1023).contains(&intid) {
        SPURIOUS_IRQS.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if intid == 27 {
        let ctl = read_sysreg!(cntv_ctl_el0);
        // SAFETY: masking the virtual timer's output only affects its interrupt.
        unsafe { write_sysreg!(cntv_ctl_el0, ctl | 2) };
        TIMER_IRQS.fetch_add(1, Ordering::Relaxed);
    } else {
        OTHER_IRQS.fetch_add(1, Ordering::Relaxed);
    }
    let eoi_mode = read_sysreg!(s3_0_c12_c12_4) & 2 != 0; // ICC_CTLR_EL1.EOImode
                                                          // SAFETY: ending the interrupt just acknowledged only changes the CPU interface's state.
    unsafe {
        core::arch::asm!("isb", options(nostack));
        write_sysreg!(s3_0_c12_c12_1, intid); // ICC_EOIR1_EL1
        if eoi_mode {
            write_sysreg!(s3_0_c12_c11_1, intid); // ICC_DIR_EL1
        }
        core::arch::asm!("isb", options(nostack));
    }
}

/// A FIQ or SError: counted; the realm continues where it was.
#[unsafe(no_mangle)]
extern "C" fn fuzz_async(_which: u64) {
    ASYNC.fetch_add(1, Ordering::Relaxed);
}

/// An exception through a vector the fuzzer never uses (EL1 with `SP_EL0`, AArch32 EL0
/// IRQ/FIQ/SError): fatal.
#[unsafe(no_mangle)]
extern "C" fn fuzz_unexpected(index: u64) {
    crate::fatal::report(format_args!(
        "fuzz: exception through vector {index}: ESR_EL1={:#x} ELR_EL1={:#x} SPSR_EL1={:#x}",
        read_sysreg!(esr_el1),
        read_sysreg!(elr_el1),
        read_sysreg!(spsr_el1)
    ))
}

/// Installs the fuzz vectors on this REC.
pub fn install() {
    // SAFETY: the table above handles every exception; its code is in this image.
    unsafe {
        write_sysreg!(vbar_el1, fuzz_vectors as *const () as u64);
        core::arch::asm!("isb", options(nostack));
    }
}
