//! The hardware seam for running a REC: the context the core hands the firmware for one
//! entry into Realm EL1, and what the firmware reports when the realm comes back to EL2.
//!
//! The core owns everything the RMI/RSI semantics need (GPRs, PC, PSTATE, stage 2
//! configuration, the trap flags it chose). The firmware owns `arch`: EL1 system registers,
//! EL1 timers, FP/SIMD state, in a layout only it interprets. The core stores the whole
//! context in the REC granule ([`crate::Rec::ctx`]) and never reads `arch`, except through
//! [`TimerState`] on exit; it changes `arch` only through
//! [`crate::Platform::reset_arch_state`] and [`crate::Platform::inject_sync_exception`].
//!
//! # Conventions
//!
//! * `pstate` is `SPSR_EL2`. A new REC, and a REC that `PSCI_COMPLETE` turns on for
//!   `CPU_ON`, start with [`crate::rec::PSTATE_INIT`] = 0x3C5 (EL1h, AArch64, D, A, I, F
//!   masked).
//! * `pc` is `ELR_EL2` exactly as the exception left it; the firmware never adjusts it. The
//!   core advances it by 4 past a trapped SMC (HCR_EL2.TSC reports the SMC itself; not when
//!   it answers with a synthesised stage 2 abort, so the SMC runs again), a trapped WFI/WFE
//!   and a trapped MSR/MRS it emulates or forwards, and past an MMIO access when the host
//!   completes it with `EMUL_MMIO`. An HVC already returns past itself (the core injects an
//!   UNDEF there). Aborts leave it on the faulting instruction.
//! * `traps` is recomputed at every `REC_ENTER`: [`trap::WFI`] if the host set
//!   `RMI_REC_ENTER_FLAG_TRAP_WFI`, [`trap::WFE`] for `TRAP_WFE`, nothing else. The firmware
//!   ORs it into its HCR_EL2 for every entry of that `REC_ENTER` (the core may enter the
//!   realm several times before returning to the host).
//! * `vttbr`, `vtcr`, `vmpidr` are set at `REC_CREATE` and never change.
//! * [`RealmExit`]: `esr`, `far`, `hpfar` are `ESR_EL2`, `FAR_EL2`, `HPFAR_EL2` of the
//!   exception (for IRQ/FIQ they are ignored); `timers` are the realm's EL1 timers, copied
//!   into `RmiRecExit` on every exit to the host. The firmware owns the timer policy of
//!   TF-RMM's `check_pending_timers` (masking an asserted timer with CNTHCTL_EL2 while the
//!   realm runs, and returning an IRQ exit without entering when a timer's output changed
//!   since the last exit).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Words of firmware-owned architectural state per REC (1 KiB).
pub const ARCH_STATE_WORDS: usize = 128;

/// HCR_EL2 trap requests the core adds for one entry.
pub mod trap {
    /// Trap WFI (HCR_EL2.TWI), as the host asked with `RMI_REC_ENTER_TRAP_WFI`.
    pub const WFI: u64 = 1 << 13;
    /// Trap WFE (HCR_EL2.TWE), as the host asked with `RMI_REC_ENTER_TRAP_WFE`.
    pub const WFE: u64 = 1 << 14;
}

/// Everything the firmware needs to enter a REC.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct RealmContext {
    /// x0..x30.
    pub gprs: [u64; 31],
    /// The address to return to (ELR_EL2).
    pub pc: u64,
    /// The PSTATE to return with (SPSR_EL2).
    pub pstate: u64,
    /// VTTBR_EL2: root RTT and VMID.
    pub vttbr: u64,
    /// VTCR_EL2.
    pub vtcr: u64,
    /// VMPIDR_EL2.
    pub vmpidr: u64,
    /// Trap bits from [`trap`] to OR into the firmware's HCR_EL2 for this entry.
    pub traps: u64,
    /// Firmware-owned state; zero for a REC that has never run (the firmware then applies
    /// its architectural reset values, see [`crate::Platform::reset_arch_state`]).
    pub arch: [u64; ARCH_STATE_WORDS],
}

const _: () = assert!(core::mem::size_of::<RealmContext>() == (31 + 6) * 8 + ARCH_STATE_WORDS * 8);

/// Why the realm came back to EL2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// A synchronous exception (ESR_EL2 says which).
    Sync,
    /// A physical IRQ.
    Irq,
    /// A physical FIQ.
    Fiq,
    /// An SError.
    SError,
}

/// The realm's EL1 timers, as the host must see them on every exit (CVALs relative to the
/// realm's counter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerState {
    /// CNTV_CTL_EL0.
    pub cntv_ctl: u64,
    /// CNTV_CVAL_EL0.
    pub cntv_cval: u64,
    /// CNTP_CTL_EL0.
    pub cntp_ctl: u64,
    /// CNTP_CVAL_EL0.
    pub cntp_cval: u64,
}

/// What the firmware reports after the realm exits to EL2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RealmExit {
    /// The exception class.
    pub kind: ExitKind,
    /// ESR_EL2 (for synchronous exceptions and SErrors).
    pub esr: u64,
    /// FAR_EL2.
    pub far: u64,
    /// HPFAR_EL2.
    pub hpfar: u64,
    /// The EL1 timers at the time of the exit.
    pub timers: TimerState,
}
