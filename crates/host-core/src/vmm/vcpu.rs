//! A vCPU: its REC, its `RmiRecRun` page, what the next entry hands the RMM, and the state the
//! host keeps for it while it is not loaded (list registers, active priorities, `ICH_VMCR_EL2`,
//! the EL1 timers as the last exit reported them).

use cca_abi::arch::ich;
use cca_abi::rmi::{rec_mpidr, RecEnter, RecExit};
use zerocopy::FromZeros;

/// Most list registers the architecture has.
pub const MAX_LRS: usize = 16;

/// `CNTx_CTL_EL0` bits.
pub mod timer_ctl {
    /// The timer is enabled.
    pub const ENABLE: u64 = 1 << 0;
    /// Its interrupt is masked.
    pub const IMASK: u64 = 1 << 1;
    /// The condition is met.
    pub const ISTATUS: u64 = 1 << 2;
}

/// An EL1 timer as the last exit reported it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerState {
    /// `CNTx_CTL_EL0`.
    pub ctl: u64,
    /// `CNTx_CVAL_EL0` (physical counter terms: realms run with a zero offset).
    pub cval: u64,
}

impl TimerState {
    /// True when the timer's interrupt is asserted at counter value `now`.
    pub const fn asserted(&self, now: u64) -> bool {
        self.ctl & timer_ctl::ENABLE != 0
            && self.ctl & timer_ctl::IMASK == 0
            && (self.ctl & timer_ctl::ISTATUS != 0 || now >= self.cval)
    }

    /// When the interrupt will assert, if it is armed and not yet asserted.
    pub const fn deadline(&self) -> Option<u64> {
        if self.ctl & timer_ctl::ENABLE != 0 && self.ctl & timer_ctl::IMASK == 0 {
            Some(self.cval)
        } else {
            None
        }
    }
}

/// What a vCPU is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcpuState {
    /// Powered off (not yet started by `CPU_ON`, or after `CPU_OFF`).
    Off,
    /// Ready to run.
    Runnable,
    /// Waiting for an interrupt (WFI, `CPU_SUSPEND`).
    Blocked,
}

/// One vCPU.
pub struct Vcpu {
    /// Its index in the VM.
    pub index: usize,
    /// The REC granule.
    pub rec: u64,
    /// Its `RmiRecRun` page (Non-secure).
    pub run: u64,
    /// `RmiRecMpidr`.
    pub rec_mpidr: u64,
    /// What it is doing.
    pub state: VcpuState,
    /// What the next `REC_ENTER` hands over (flags answering the last exit, gprs).
    pub enter: RecEnter,
    /// Its list registers while it is not loaded.
    pub lrs: [u64; MAX_LRS],
    /// `ICH_AP0R<n>_EL2` and `ICH_AP1R<n>_EL2`.
    pub aprs: [[u64; 4]; 2],
    /// `ICH_VMCR_EL2`.
    pub vmcr: u64,
    /// The `ICH_VMCR_EL2` it starts with (again after `CPU_ON`).
    pub initial_vmcr: u64,
    /// The virtual (0) and physical (1) EL1 timers.
    pub timers: [TimerState; 2],
    /// Exits it made.
    pub exits: u64,
}

impl Vcpu {
    /// vCPU `index` of REC `rec` with run page `run`; it starts `Off` unless `runnable`.
    pub fn new(index: usize, rec: u64, run: u64, runnable: bool) -> Self {
        Self {
            index,
            rec,
            run,
            rec_mpidr: rec_mpidr::from_index(index as u64),
            state: if runnable {
                VcpuState::Runnable
            } else {
                VcpuState::Off
            },
            enter: RecEnter::new_zeroed(),
            lrs: [0; MAX_LRS],
            aprs: [[0; 4]; 2],
            vmcr: 0,
            initial_vmcr: 0,
            timers: [TimerState::default(); 2],
            exits: 0,
        }
    }

    /// Its `MPIDR_EL1` affinity (what the guest names it by in PSCI and SGIs).
    pub fn mpidr(&self) -> u64 {
        rec_mpidr::to_mpidr_el1(self.rec_mpidr)
    }

    /// Forgets its interrupt and timer state (it starts again after `CPU_ON`).
    pub fn reset_interrupts(&mut self) {
        self.lrs = [0; MAX_LRS];
        self.aprs = [[0; 4]; 2];
        self.vmcr = self.initial_vmcr;
        self.timers = [TimerState::default(); 2];
    }

    /// Records the timers an exit reported.
    pub fn note_timers(&mut self, exit: &RecExit) {
        self.timers = [
            TimerState {
                ctl: exit.cntv_ctl,
                cval: exit.cntv_cval,
            },
            TimerState {
                ctl: exit.cntp_ctl,
                cval: exit.cntp_cval,
            },
        ];
    }

    /// True when one of its list registers holds an interrupt.
    pub fn has_lr_in_use(&self) -> bool {
        self.lrs
            .iter()
            .any(|&lr| ich::lr_state(lr) != ich::LrState::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_assertion() {
        let t = TimerState {
            ctl: timer_ctl::ENABLE,
            cval: 100,
        };
        assert!(!t.asserted(99));
        assert!(t.asserted(100));
        assert_eq!(t.deadline(), Some(100));
        let masked = TimerState {
            ctl: timer_ctl::ENABLE | timer_ctl::IMASK | timer_ctl::ISTATUS,
            cval: 0,
        };
        assert!(!masked.asserted(1000));
        assert_eq!(masked.deadline(), None);
        let off = TimerState { ctl: 0, cval: 0 };
        assert!(!off.asserted(5) && off.deadline().is_none());
        let status = TimerState {
            ctl: timer_ctl::ENABLE | timer_ctl::ISTATUS,
            cval: 1000,
        };
        assert!(status.asserted(0), "ISTATUS as the RMM saw it");
    }

    #[test]
    fn vcpu_identity() {
        let v = Vcpu::new(17, 0x1000, 0x2000, false);
        assert_eq!(v.state, VcpuState::Off);
        assert_eq!(v.rec_mpidr, (1 << 8) | 1);
        assert_eq!(v.mpidr(), (1 << 8) | 1);
    }
}
