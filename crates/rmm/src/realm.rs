//! Running a REC: the world switch between the RMM (Realm EL2) and a realm (Realm EL1).
//!
//! On entry the RMM saves the Normal world's EL1 and FP/SIMD state (the RMM owns EL1 state in
//! the Realm world, and the host's must survive untouched and unseen), loads the REC's state
//! from `RealmContext.arch`, configures stage 2 and the traps, and ERETs. Any exception from
//! the realm comes back through the lower-EL vectors into `realm_enter`'s caller. The realm's
//! EL1 and FP/SIMD state then stays in the registers (only SP_EL0 and the timers are saved
//! and switched to the RMM's values), so that an exit the RMM handles itself (an RSI call)
//! re-enters without saving and restoring it; [`park`] saves it once, before `REC_ENTER`
//! returns, and [`leave`] restores the host's. An injected exception parks first (it edits
//! the saved EL1 registers), and so does nothing else: the RMM's own code does not use EL1
//! or FP/SIMD registers (the SHA-2 routines save and restore the SIMD registers they use).

use crate::entry::MAX_CPUS;
use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use fw_support::{read_sysreg, write_sysreg};
use rmm_core::run::{ExitKind, RealmContext, RealmExit, TimerState, ARCH_STATE_WORDS};
use rmm_core::{IdRegs, RealmTraps};
use spin::Mutex;

/// Indices of the EL1 state in `RealmContext.arch`.
mod idx {
    pub const SCTLR: usize = 0;
    pub const ACTLR: usize = 1;
    pub const CPACR: usize = 2;
    pub const TTBR0: usize = 3;
    pub const TTBR1: usize = 4;
    pub const TCR: usize = 5;
    pub const ESR: usize = 6;
    pub const AFSR0: usize = 7;
    pub const AFSR1: usize = 8;
    pub const FAR: usize = 9;
    pub const MAIR: usize = 10;
    pub const AMAIR: usize = 11;
    pub const VBAR: usize = 12;
    pub const CONTEXTIDR: usize = 13;
    pub const TPIDR_EL1: usize = 14;
    pub const TPIDRRO_EL0: usize = 15;
    pub const TPIDR_EL0: usize = 16;
    pub const SP_EL0: usize = 17;
    pub const SP_EL1: usize = 18;
    pub const ELR: usize = 19;
    pub const SPSR: usize = 20;
    pub const PAR: usize = 21;
    pub const CNTKCTL: usize = 22;
    pub const CSSELR: usize = 23;
    pub const MDSCR: usize = 24;
    pub const CNTV_CTL: usize = 25;
    pub const CNTV_CVAL: usize = 26;
    pub const CNTP_CTL: usize = 27;
    pub const CNTP_CVAL: usize = 28;
    /// Ten pointer authentication key halves.
    pub const APKEYS: usize = 29;
    /// Q0..Q31 (two words each), FPSR, FPCR.
    pub const FP: usize = 40;
    pub const FP_WORDS: usize = 66;
    /// Which EL1 timers were asserting at the last exit (bit 0 virtual, bit 1 physical).
    pub const TIMERS_ASSERTED: usize = FP + FP_WORDS;
    pub const END: usize = TIMERS_ASSERTED + 1;
}
const _: () = assert!(idx::END <= ARCH_STATE_WORDS);

/// SCTLR_EL1 reset value: RES1 bits, MMU and caches off, little-endian.
const SCTLR_EL1_RESET: u64 = 0x30D0_0800;

/// HCR_EL2 while a realm runs: VM, SWIO, FMO, IMO, AMO, FB, BSU inner shareable, TSC (SMC
/// traps to EL2), RW (EL1 is AArch64), APK/API (pointer authentication not trapped), FWB
/// (stage 2 memory attributes as the RTTs encode them); plus [`RealmTraps::hcr`] (TID3: ID
/// register reads trap and get the realm's view; TLOR, TERR) and the host's WFI/WFE traps.
/// EnSCXT, ATA, TME stay 0: SCXTNUM_ELx, MTE tags and TME are not given to realms.
const HCR_REALM: u64 = (1 << 0)
    | (1 << 1)
    | (1 << 3)
    | (1 << 4)
    | (1 << 5)
    | (1 << 9)
    | (1 << 10)
    | (1 << 19)
    | (1 << 31)
    | (1 << 40)
    | (1 << 41)
    | (1 << 46);

/// CPTR_EL2 (non-VHE layout) while a realm runs: RES1 bits, SVE and SME trapped, FP/SIMD not;
/// plus [`RealmTraps::cptr`] (trace registers, AMU).
const CPTR_REALM: u64 = 0x33FF;
/// CNTHCTL_EL2 (E2H = 0): EL1 may read the physical counter and use the physical timer.
const CNTHCTL_REALM: u64 = 0b11;
/// CNTHCTL_EL2.CNTVMASK (FEAT_RME): the virtual timer's output to the interrupt controller
/// is masked.
const CNTHCTL_CNTVMASK: u64 = 1 << 18;
/// CNTHCTL_EL2.CNTPMASK (FEAT_RME): the same for the physical timer.
const CNTHCTL_CNTPMASK: u64 = 1 << 19;

/// The EL2 traps that go with the realms' view of the ID registers, computed at cold boot
/// from the CPU's ID registers.
static TRAPS: spin::Once<RealmTraps> = spin::Once::new();

/// The realm EL2 traps ([`RealmTraps::BASE`] until [`init`] ran), by reference (no copy on
/// the entry path).
fn traps() -> &'static RealmTraps {
    TRAPS.get().unwrap_or(&RealmTraps::BASE)
}

/// Computes the realm traps from the CPU's ID registers (cold boot) and applies this CPU's
/// part of them.
pub fn init(ids: &IdRegs) {
    TRAPS.call_once(|| RealmTraps::for_cpu(ids));
    init_cpu();
}

/// Programs this CPU's Realm-world HCRX_EL2 (cold and warm boot): MSCEn with FEAT_MOPS, and
/// 0 for every enable of a feature realms are not shown (TCR2En and SCTLR2En among them, so
/// TCR2_EL1 and SCTLR2_EL1 act as 0 for realms and their accesses trap to the RMM). EL3
/// saves and restores it with the rest of the Realm world's EL2 state.
pub fn init_cpu() {
    if let Some(hcrx) = traps().hcrx {
        // SAFETY: HCRX_EL2 only configures EL1&0 (E2H = 0): the RMM's own execution does
        // not depend on it.
        unsafe {
            write_sysreg!(s3_4_c1_c2_2, hcrx);
            core::arch::asm!("isb", options(nostack));
        }
    }
}

/// Which of the saved EL1 timers assert their interrupt now: enabled, not masked, and the
/// counter has reached the compare value (CNTVOFF_EL2 is 0 for realms).
fn timers_asserted(a: &[u64; ARCH_STATE_WORDS]) -> u64 {
    let now = read_sysreg!(cntpct_el0);
    let asserted = |ctl: u64, cval: u64| ctl & 0b11 == 0b01 && now >= cval;
    u64::from(asserted(a[idx::CNTV_CTL], a[idx::CNTV_CVAL]))
        | (u64::from(asserted(a[idx::CNTP_CTL], a[idx::CNTP_CVAL])) << 1)
}

/// The Normal world's EL1 state on one CPU, saved at the first realm entry of an RMI call and
/// restored by [`leave`] before the RMM answers the host: exits the RMM handles itself (RSI
/// calls, local PSCI) re-enter the realm without switching the host's state back and forth.
struct NsState {
    state: [u64; ARCH_STATE_WORDS],
    saved: bool,
    rmm_sp_el0: u64,
}

static NS_STATE: [Mutex<NsState>; MAX_CPUS] = [const {
    Mutex::new(NsState {
        state: [0; ARCH_STATE_WORDS],
        saved: false,
        rmm_sp_el0: 0,
    })
}; MAX_CPUS];

/// Per CPU: the address of the `RealmContext` whose EL1 and FP/SIMD state is live in this
/// CPU's registers (its `arch` words other than SP_EL0 and the timers are stale), or 0.
static LIVE: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];

/// Per CPU: the RMM's own SP_EL0 (its exception stack), as `NsState::rmm_sp_el0`, readable
/// without the lock by the entries after the first of an RMI call.
static RMM_SP_EL0: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Per CPU: `NsState::saved`, readable without the lock (only this CPU writes either), so
/// that [`leave`] costs a load when no realm ran during the RMI call.
static ENTERED: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

fn live_slot() -> &'static AtomicUsize {
    &LIVE[fw_support::cpu_index()]
}

fn ctx_id(ctx: &RealmContext) -> usize {
    ctx as *const RealmContext as usize
}

/// Saves a live realm state into `ctx.arch` (see [`LIVE`]); nothing if `ctx` is not live.
pub fn park(ctx: &mut RealmContext) {
    let live = live_slot();
    if live.load(Ordering::Relaxed) != ctx_id(ctx) {
        return;
    }
    // SP_EL0 and the timers were saved at the exit; the registers now hold the RMM's SP_EL0
    // and disabled timer controls.
    let a = &mut ctx.arch;
    let keep = [
        a[idx::SP_EL0],
        a[idx::CNTV_CTL],
        a[idx::CNTV_CVAL],
        a[idx::CNTP_CTL],
        a[idx::CNTP_CVAL],
    ];
    save_state(a);
    a[idx::SP_EL0] = keep[0];
    a[idx::CNTV_CTL] = keep[1];
    a[idx::CNTV_CVAL] = keep[2];
    a[idx::CNTP_CTL] = keep[3];
    a[idx::CNTP_CVAL] = keep[4];
    live.store(0, Ordering::Relaxed);
}

/// Puts the Normal world's EL1 and FP/SIMD state back if a realm ran during this RMI call, and
/// stops the realm's virtual interrupts (ICH_HCR_EL2.En = 0). Called before every answer to
/// the host.
pub fn leave() {
    let cpu = fw_support::cpu_index();
    // Most RMI calls run no realm: they do not take the lock.
    if !ENTERED[cpu].load(Ordering::Relaxed) {
        return;
    }
    let mut ns = NS_STATE[cpu].lock();
    if !ns.saved {
        return;
    }
    ENTERED[cpu].store(false, Ordering::Relaxed);
    // The core parks every REC it ran before answering; a live state left here (a path that
    // did not) is dropped, not written anywhere.
    live_slot().store(0, Ordering::Relaxed);
    restore_state(&ns.state);
    ns.saved = false;
    // SAFETY: the RMM's exception stack pointer (which the host's state does not include
    // meaningfully: EL3 switches SP_EL0 per world) and ICH_HCR_EL2.En, which belongs to the
    // host again now.
    unsafe {
        write_sysreg!(sp_el0, ns.rmm_sp_el0);
        let ich_hcr = read_sysreg!(s3_4_c12_c11_0);
        write_sysreg!(s3_4_c12_c11_0, ich_hcr & !1);
        core::arch::asm!("isb", options(nostack));
    }
}

global_asm!(
    r#"
.arch_extension fp
.arch_extension simd
/* fp_save(x0 = 66-word buffer), fp_restore(x0): Q0-Q31, FPSR, FPCR. */
.section .text.fp_switch, "ax"
.global rmm_fp_save
rmm_fp_save:
    stp     q0, q1, [x0, #0]
    stp     q2, q3, [x0, #32]
    stp     q4, q5, [x0, #64]
    stp     q6, q7, [x0, #96]
    stp     q8, q9, [x0, #128]
    stp     q10, q11, [x0, #160]
    stp     q12, q13, [x0, #192]
    stp     q14, q15, [x0, #224]
    stp     q16, q17, [x0, #256]
    stp     q18, q19, [x0, #288]
    stp     q20, q21, [x0, #320]
    stp     q22, q23, [x0, #352]
    stp     q24, q25, [x0, #384]
    stp     q26, q27, [x0, #416]
    stp     q28, q29, [x0, #448]
    stp     q30, q31, [x0, #480]
    mrs     x1, fpsr
    mrs     x2, fpcr
    add     x0, x0, #512
    stp     x1, x2, [x0]
    ret
.global rmm_fp_restore
rmm_fp_restore:
    ldp     q0, q1, [x0, #0]
    ldp     q2, q3, [x0, #32]
    ldp     q4, q5, [x0, #64]
    ldp     q6, q7, [x0, #96]
    ldp     q8, q9, [x0, #128]
    ldp     q10, q11, [x0, #160]
    ldp     q12, q13, [x0, #192]
    ldp     q14, q15, [x0, #224]
    ldp     q16, q17, [x0, #256]
    ldp     q18, q19, [x0, #288]
    ldp     q20, q21, [x0, #320]
    ldp     q22, q23, [x0, #352]
    ldp     q24, q25, [x0, #384]
    ldp     q26, q27, [x0, #416]
    ldp     q28, q29, [x0, #448]
    ldp     q30, q31, [x0, #480]
    add     x0, x0, #512
    ldp     x1, x2, [x0]
    msr     fpsr, x1
    msr     fpcr, x2
    ret

"#
);

fw_support::lower_el_switch!("rmm_realm_enter", "rmm_realm_exit", "tpidr_el2");

unsafe extern "C" {
    fn rmm_fp_save(buf: *mut u64);
    fn rmm_fp_restore(buf: *const u64);
    fn rmm_realm_enter(gprs: *mut u64) -> u64;
}

macro_rules! save_el1 {
    ($a:expr, $($i:ident => $reg:tt),* $(,)?) => {
        $( $a[idx::$i] = read_sysreg!($reg); )*
    };
}

macro_rules! restore_el1 {
    ($a:expr, $($i:ident => $reg:tt),* $(,)?) => {
        // SAFETY: EL1 registers do not affect the RMM at EL2 (HCR_EL2.E2H = 0); they take
        // effect for the realm (or the host's EL1) on the next ERET to EL1.
        unsafe { $( write_sysreg!($reg, $a[idx::$i]); )* }
    };
}

fn save_state(a: &mut [u64; ARCH_STATE_WORDS]) {
    save_el1!(a,
        SCTLR => sctlr_el1, ACTLR => actlr_el1, CPACR => cpacr_el1, TTBR0 => ttbr0_el1,
        TTBR1 => ttbr1_el1, TCR => tcr_el1, ESR => esr_el1, AFSR0 => afsr0_el1,
        AFSR1 => afsr1_el1, FAR => far_el1, MAIR => mair_el1, AMAIR => amair_el1,
        VBAR => vbar_el1, CONTEXTIDR => contextidr_el1, TPIDR_EL1 => tpidr_el1,
        TPIDRRO_EL0 => tpidrro_el0, TPIDR_EL0 => tpidr_el0, SP_EL0 => sp_el0, SP_EL1 => sp_el1,
        ELR => elr_el1, SPSR => spsr_el1, PAR => par_el1, CNTKCTL => cntkctl_el1,
        CSSELR => csselr_el1, MDSCR => mdscr_el1, CNTV_CTL => cntv_ctl_el0,
        CNTV_CVAL => cntv_cval_el0, CNTP_CTL => cntp_ctl_el0, CNTP_CVAL => cntp_cval_el0,
    );
    a[idx::APKEYS] = read_sysreg!(s3_0_c2_c1_0);
    a[idx::APKEYS + 1] = read_sysreg!(s3_0_c2_c1_1);
    a[idx::APKEYS + 2] = read_sysreg!(s3_0_c2_c1_2);
    a[idx::APKEYS + 3] = read_sysreg!(s3_0_c2_c1_3);
    a[idx::APKEYS + 4] = read_sysreg!(s3_0_c2_c2_0);
    a[idx::APKEYS + 5] = read_sysreg!(s3_0_c2_c2_1);
    a[idx::APKEYS + 6] = read_sysreg!(s3_0_c2_c2_2);
    a[idx::APKEYS + 7] = read_sysreg!(s3_0_c2_c2_3);
    a[idx::APKEYS + 8] = read_sysreg!(s3_0_c2_c3_0);
    a[idx::APKEYS + 9] = read_sysreg!(s3_0_c2_c3_1);
    // SAFETY: the FP area is 66 words inside `a`; the routine only stores to it.
    unsafe { rmm_fp_save(a[idx::FP..].as_mut_ptr()) };
}

fn restore_state(a: &[u64; ARCH_STATE_WORDS]) {
    // The timer control registers go first and disabled, so that a realm's expired timer does
    // not fire in the host's context (or the reverse) while the rest is switched.
    // SAFETY: see `restore_el1!`.
    unsafe {
        write_sysreg!(cntv_ctl_el0, 0u64);
        write_sysreg!(cntp_ctl_el0, 0u64);
    }
    restore_el1!(a,
        SCTLR => sctlr_el1, ACTLR => actlr_el1, CPACR => cpacr_el1, TTBR0 => ttbr0_el1,
        TTBR1 => ttbr1_el1, TCR => tcr_el1, ESR => esr_el1, AFSR0 => afsr0_el1,
        AFSR1 => afsr1_el1, FAR => far_el1, MAIR => mair_el1, AMAIR => amair_el1,
        VBAR => vbar_el1, CONTEXTIDR => contextidr_el1, TPIDR_EL1 => tpidr_el1,
        TPIDRRO_EL0 => tpidrro_el0, TPIDR_EL0 => tpidr_el0, SP_EL0 => sp_el0, SP_EL1 => sp_el1,
        ELR => elr_el1, SPSR => spsr_el1, PAR => par_el1, CNTKCTL => cntkctl_el1,
        CSSELR => csselr_el1, MDSCR => mdscr_el1, CNTV_CVAL => cntv_cval_el0,
        CNTP_CVAL => cntp_cval_el0, CNTV_CTL => cntv_ctl_el0, CNTP_CTL => cntp_ctl_el0,
    );
    let k = &a[idx::APKEYS..idx::APKEYS + 10];
    // SAFETY: the keys only affect pointer authentication at EL1/EL0.
    unsafe {
        write_sysreg!(s3_0_c2_c1_0, k[0]);
        write_sysreg!(s3_0_c2_c1_1, k[1]);
        write_sysreg!(s3_0_c2_c1_2, k[2]);
        write_sysreg!(s3_0_c2_c1_3, k[3]);
        write_sysreg!(s3_0_c2_c2_0, k[4]);
        write_sysreg!(s3_0_c2_c2_1, k[5]);
        write_sysreg!(s3_0_c2_c2_2, k[6]);
        write_sysreg!(s3_0_c2_c2_3, k[7]);
        write_sysreg!(s3_0_c2_c3_0, k[8]);
        write_sysreg!(s3_0_c2_c3_1, k[9]);
    }
    // SAFETY: the FP area is 66 words inside `a`; the routine only loads from it.
    unsafe { rmm_fp_restore(a[idx::FP..].as_ptr()) };
}

/// Architectural reset state of a REC: EL1 MMU off, everything else zero.
pub fn reset(ctx: &mut RealmContext) {
    let live = live_slot();
    if live.load(Ordering::Relaxed) == ctx_id(ctx) {
        live.store(0, Ordering::Relaxed);
    }
    ctx.arch = [0; ARCH_STATE_WORDS];
    ctx.arch[idx::SCTLR] = SCTLR_EL1_RESET;
}

/// Checks the GIC list registers the host programmed: HW = 0 in every valid LR and no
/// duplicate vINTID.
pub fn gic_lrs_valid() -> bool {
    let n = (read_sysreg!(s3_4_c12_c11_1) & 0x1f) as usize + 1;
    let mut lrs = [0u64; 16];
    for (i, lr) in lrs.iter_mut().enumerate().take(n.min(16)) {
        *lr = read_lr(i);
    }
    let live = |v: u64| v >> 62 != 0;
    for i in 0..n.min(16) {
        if !live(lrs[i]) {
            continue;
        }
        if lrs[i] & (1 << 61) != 0 {
            return false;
        }
        let vintid = lrs[i] & 0xffff_ffff;
        if lrs[i + 1..n.min(16)]
            .iter()
            .any(|&o| live(o) && o & 0xffff_ffff == vintid)
        {
            return false;
        }
    }
    true
}

fn read_lr(i: usize) -> u64 {
    match i {
        0 => read_sysreg!(s3_4_c12_c12_0),
        1 => read_sysreg!(s3_4_c12_c12_1),
        2 => read_sysreg!(s3_4_c12_c12_2),
        3 => read_sysreg!(s3_4_c12_c12_3),
        4 => read_sysreg!(s3_4_c12_c12_4),
        5 => read_sysreg!(s3_4_c12_c12_5),
        6 => read_sysreg!(s3_4_c12_c12_6),
        7 => read_sysreg!(s3_4_c12_c12_7),
        8 => read_sysreg!(s3_4_c12_c13_0),
        9 => read_sysreg!(s3_4_c12_c13_1),
        10 => read_sysreg!(s3_4_c12_c13_2),
        11 => read_sysreg!(s3_4_c12_c13_3),
        12 => read_sysreg!(s3_4_c12_c13_4),
        13 => read_sysreg!(s3_4_c12_c13_5),
        14 => read_sysreg!(s3_4_c12_c13_6),
        _ => read_sysreg!(s3_4_c12_c13_7),
    }
}

/// Runs the REC described by `ctx` until it traps to EL2.
pub fn run(ctx: &mut RealmContext) -> RealmExit {
    let cpu = fw_support::cpu_index();
    let live = &LIVE[cpu];
    let is_live = live.load(Ordering::Relaxed) == ctx_id(ctx);
    // A live REC means that the host's state was saved at this RMI call's first entry (see
    // `NsState`): its lock is only taken for the first entry.
    let rmm_sp_el0 = if is_live {
        RMM_SP_EL0[cpu].load(Ordering::Relaxed)
    } else {
        let mut ns = NS_STATE[cpu].lock();
        if !ns.saved {
            save_state(&mut ns.state);
            ns.rmm_sp_el0 = read_sysreg!(sp_el0);
            RMM_SP_EL0[cpu].store(ns.rmm_sp_el0, Ordering::Relaxed);
            ns.saved = true;
            ENTERED[cpu].store(true, Ordering::Relaxed);
        }
        ns.rmm_sp_el0
    };
    let t = traps();
    // As TF-RMM: a timer already asserting when the realm is entered is masked towards the
    // interrupt controller, so it cannot bring the realm straight back to EL2; the host
    // injects it as a virtual interrupt instead.
    let asserted = timers_asserted(&ctx.arch);
    let mut cnthctl = CNTHCTL_REALM;
    if asserted & 1 != 0 {
        cnthctl |= CNTHCTL_CNTVMASK;
    }
    if asserted & 2 != 0 {
        cnthctl |= CNTHCTL_CNTPMASK;
    }
    if is_live {
        // Its EL1 and FP/SIMD state is still in the registers, and so are the stage 2 and
        // trap registers of the previous entry: only SP_EL0 and the timer controls, which
        // the exit path changed, go back.
        // SAFETY: EL1/EL0 registers of the realm, which take effect at the ERET below.
        unsafe {
            write_sysreg!(sp_el0, ctx.arch[idx::SP_EL0]);
            write_sysreg!(cntv_ctl_el0, ctx.arch[idx::CNTV_CTL]);
            write_sysreg!(cntp_ctl_el0, ctx.arch[idx::CNTP_CTL]);
        }
    } else {
        restore_state(&ctx.arch);
        // SAFETY: these EL2 registers configure the realm's translation and traps; the
        // RMM's own execution at EL2 does not depend on them (HCR_EL2.E2H = 0, TGE = 0).
        // They stay as written until the next full entry (TLB maintenance that changes
        // VTTBR_EL2 puts it back).
        unsafe {
            write_sysreg!(vttbr_el2, ctx.vttbr);
            write_sysreg!(vtcr_el2, ctx.vtcr);
            write_sysreg!(vmpidr_el2, ctx.vmpidr);
            write_sysreg!(vpidr_el2, read_sysreg!(midr_el1));
            write_sysreg!(cptr_el2, CPTR_REALM | t.cptr);
            write_sysreg!(mdcr_el2, t.mdcr);
            write_sysreg!(cntvoff_el2, 0u64);
        }
    }
    // SAFETY: the per-entry EL2 registers; HCR_EL2 is put back to the RMM's value below
    // before any other RMM code runs.
    unsafe {
        write_sysreg!(cnthctl_el2, cnthctl);
        write_sysreg!(hcr_el2, HCR_REALM | t.hcr | ctx.traps);
        write_sysreg!(elr_el2, ctx.pc);
        write_sysreg!(spsr_el2, ctx.pstate);
        core::arch::asm!("isb", options(nostack));
    }
    // SAFETY: the context's GPRs are a 31-word array; ELR/SPSR/HCR/stage 2 describe the
    // realm, and the lower-EL vectors return here through `rmm_realm_exit`.
    let kind = unsafe { rmm_realm_enter(ctx.gprs.as_mut_ptr()) };
    let exit_esr = read_sysreg!(esr_el2);
    let exit_far = read_sysreg!(far_el2);
    let exit_hpfar = read_sysreg!(hpfar_el2);
    ctx.pc = read_sysreg!(elr_el2);
    ctx.pstate = read_sysreg!(spsr_el2);
    // The EL1 state stays live (see `LIVE`); what the RMM changes below is saved first:
    // SP_EL0, and the timers (disabled while the RMM runs, so that a realm timer does not
    // fire in the host's context).
    let a = &mut ctx.arch;
    a[idx::SP_EL0] = read_sysreg!(sp_el0);
    a[idx::CNTV_CTL] = read_sysreg!(cntv_ctl_el0);
    a[idx::CNTV_CVAL] = read_sysreg!(cntv_cval_el0);
    a[idx::CNTP_CTL] = read_sysreg!(cntp_ctl_el0);
    a[idx::CNTP_CVAL] = read_sysreg!(cntp_cval_el0);
    // SAFETY: back to the RMM's own configuration: no stage 2, nothing trapped for EL1 since
    // no EL1 code runs until the next entry; the RMM's exception stack pointer.
    unsafe {
        write_sysreg!(hcr_el2, 0u64);
        write_sysreg!(cntv_ctl_el0, 0u64);
        write_sysreg!(cntp_ctl_el0, 0u64);
        write_sysreg!(sp_el0, rmm_sp_el0);
        core::arch::asm!("isb", options(nostack));
    }
    live.store(ctx_id(ctx), Ordering::Relaxed);
    let timers = TimerState {
        cntv_ctl: ctx.arch[idx::CNTV_CTL],
        cntv_cval: ctx.arch[idx::CNTV_CVAL],
        cntp_ctl: ctx.arch[idx::CNTP_CTL],
        cntp_cval: ctx.arch[idx::CNTP_CVAL],
    };
    let mut kind = match kind {
        0 => ExitKind::Sync,
        1 => ExitKind::Irq,
        2 => ExitKind::Fiq,
        _ => ExitKind::SError,
    };
    // As TF-RMM: when a timer's output changed while the realm ran, the host must hear about
    // it promptly, so an exit the RMM would otherwise handle itself becomes an IRQ exit. Only
    // SMC and WFI/WFE traps are turned, because re-executing them is harmless (the RMM then
    // does not advance the PC).
    let asserted = timers_asserted(&ctx.arch);
    let ec = (exit_esr >> 26) & 0x3f;
    if asserted != ctx.arch[idx::TIMERS_ASSERTED]
        && kind == ExitKind::Sync
        && (ec == 0x17 || ec == 0x01)
    {
        kind = ExitKind::Irq;
    }
    ctx.arch[idx::TIMERS_ASSERTED] = asserted;
    RealmExit {
        kind,
        esr: exit_esr,
        far: exit_far,
        hpfar: exit_hpfar,
        timers,
    }
}

/// Makes the realm take a synchronous exception to EL1 at its next entry (see
/// `Platform::inject_sync_exception`).
pub fn inject_sync_exception(ctx: &mut RealmContext, esr: u64, far: u64) {
    // The injection edits the saved EL1 registers: the next entry restores them all.
    park(ctx);
    let a = &mut ctx.arch;
    a[idx::ESR] = esr;
    a[idx::FAR] = far;
    a[idx::ELR] = ctx.pc;
    a[idx::SPSR] = ctx.pstate;
    let m = ctx.pstate & 0x1f;
    let offset = if m & 0x10 != 0 {
        0x600
    } else {
        match m & 0xf {
            0b0101 => 0x200,
            0b0100 => 0x0,
            _ => 0x400,
        }
    };
    ctx.pc = a[idx::VBAR].wrapping_add(offset);
    let sctlr = a[idx::SCTLR];
    let mut pstate = 0x3c5 | (ctx.pstate & ((0xf << 28) | (1 << 24)));
    if sctlr & (1 << 23) == 0 {
        pstate |= 1 << 22; // PAN
    }
    if sctlr & (1 << 44) != 0 {
        pstate |= 1 << 12; // SSBS
    }
    ctx.pstate = pstate;
}

/// ICH_VTR_EL2.
pub fn gic_vtr() -> u64 {
    read_sysreg!(s3_4_c12_c11_1)
}
