//! The virtual timer interrupt: GICv3 CPU interface at EL1 (the virtual interface the host
//! drives through its list registers), `CNTV_*`, and the IRQ handler.

use crate::checks::{check, section};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use fw_support::{read_sysreg, write_sysreg};

/// The EL1 virtual timer's PPI.
pub const VTIMER_INTID: u32 = 27;

/// `CNTV_CTL_EL0` bits.
const CTL_ENABLE: u64 = 1 << 0;
const CTL_IMASK: u64 = 1 << 1;
const CTL_ISTATUS: u64 = 1 << 2;

/// Timer interrupts handled.
static TIMER_IRQS: AtomicU32 = AtomicU32::new(0);
/// Spurious acknowledgements (INTID 1020..=1023).
static SPURIOUS: AtomicU32 = AtomicU32::new(0);
/// `CNTV_CTL_EL0` as the handler found it.
static CTL_SEEN: AtomicU64 = AtomicU64::new(0);
/// `ICC_CTLR_EL1.EOImode`: EOI only drops the priority, `ICC_DIR_EL1` deactivates.
static EOI_MODE: AtomicBool = AtomicBool::new(false);

/// The IRQ handler (interrupts stay masked while it runs).
pub fn irq() {
    // ICC_IAR1_EL1: acknowledge the highest-priority Group 1 interrupt.
    let intid = (read_sysreg!(s3_0_c12_c12_0) & 0xff_ffff) as u32;
    if (1020..=1023).contains(&intid) {
        SPURIOUS.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if intid != VTIMER_INTID {
        crate::fatal::report(format_args!(
            "IRQ with INTID {intid} (only the virtual timer, INTID {VTIMER_INTID}, is expected)"
        ));
    }
    let ctl = read_sysreg!(cntv_ctl_el0);
    CTL_SEEN.store(ctl, Ordering::Relaxed);
    // SAFETY: masking the timer's output, then ending the interrupt (ICC_EOIR1_EL1, and
    // ICC_DIR_EL1 when EOImode splits priority drop and deactivation) only changes the
    // timer's and the CPU interface's state.
    unsafe {
        write_sysreg!(cntv_ctl_el0, ctl | CTL_IMASK);
        core::arch::asm!("isb", options(nostack));
        write_sysreg!(s3_0_c12_c12_1, intid);
        if EOI_MODE.load(Ordering::Relaxed) {
            write_sysreg!(s3_0_c12_c11_1, intid);
        }
        core::arch::asm!("isb", options(nostack));
    }
    TIMER_IRQS.fetch_add(1, Ordering::Release);
}

/// Sets up the GIC CPU interface, arms the virtual timer, waits for its interrupt with WFI
/// and checks the handler took it.
pub fn timer_check() {
    section("interrupts: virtual timer through the GICv3 CPU interface");
    // SAFETY: enabling the system register interface (ICC_SRE_EL1.SRE), unmasking all
    // priorities (ICC_PMR_EL1) and enabling Group 1 (ICC_IGRPEN1_EL1) only configure this
    // CPU's interface; IRQs stay masked in PSTATE.
    let sre = unsafe {
        let sre = read_sysreg!(s3_0_c12_c12_5);
        write_sysreg!(s3_0_c12_c12_5, sre | 1);
        core::arch::asm!("isb", options(nostack));
        let sre = read_sysreg!(s3_0_c12_c12_5);
        write_sysreg!(s3_0_c4_c6_0, 0xffu64);
        write_sysreg!(s3_0_c12_c12_7, 1u64);
        core::arch::asm!("isb", options(nostack));
        sre
    };
    check(
        sre & 1 == 1,
        format_args!("ICC_SRE_EL1.SRE = 1 (ICC_SRE_EL1 = {sre:#x})"),
    );
    let ctlr = read_sysreg!(s3_0_c12_c12_4);
    EOI_MODE.store(ctlr & 2 != 0, Ordering::Relaxed);

    let freq = read_sysreg!(cntfrq_el0);
    let delay = (freq / 1000).max(1000);
    // SAFETY: programming the EL1 virtual timer only affects its interrupt, which the
    // handler expects.
    unsafe {
        write_sysreg!(cntv_ctl_el0, 0u64);
        write_sysreg!(cntv_tval_el0, delay);
        write_sysreg!(cntv_ctl_el0, CTL_ENABLE);
        core::arch::asm!("isb", options(nostack));
    }
    let start = counter();
    let deadline = start.saturating_add(freq.max(1) * 10);
    let mut wakeups = 0u64;
    while TIMER_IRQS.load(Ordering::Acquire) == 0 && counter() < deadline {
        wakeups += 1;
        // SAFETY: WFI waits with IRQs masked (a pending interrupt still wakes it); the
        // interrupt is then taken in the short window where IRQs are unmasked, by the
        // handler, which only touches the timer, the CPU interface and its statics.
        unsafe {
            core::arch::asm!(
                "wfi",
                "msr daifclr, #2",
                "isb",
                "msr daifset, #2",
                options(nostack)
            );
        }
    }
    let elapsed = counter() - start;
    // SAFETY: turning the timer off and Group 1 interrupts off has no memory effects.
    unsafe {
        write_sysreg!(cntv_ctl_el0, 0u64);
        write_sysreg!(s3_0_c12_c12_7, 0u64);
        core::arch::asm!("isb", options(nostack));
    }
    let irqs = TIMER_IRQS.load(Ordering::Acquire);
    let ctl = CTL_SEEN.load(Ordering::Relaxed);
    check(
        irqs >= 1 && ctl & CTL_ISTATUS != 0 && ctl & CTL_ENABLE != 0,
        format_args!(
            "virtual timer IRQ (INTID {VTIMER_INTID}) taken {irqs} time(s) after {elapsed} ticks \
             of {delay} ({wakeups} WFI wake-ups, {} spurious), CNTV_CTL = {ctl:#x}, timer \
             masked and interrupt ended ({})",
            SPURIOUS.load(Ordering::Relaxed),
            if EOI_MODE.load(Ordering::Relaxed) {
                "EOIR1 + DIR"
            } else {
                "EOIR1"
            }
        ),
    );
}

/// The virtual counter, read after earlier instructions.
pub fn counter() -> u64 {
    // SAFETY: ISB only orders the counter read after earlier instructions.
    unsafe { core::arch::asm!("isb", options(nostack)) };
    read_sysreg!(cntvct_el0)
}
