//! PSCI for the Normal world: the CPU power states EL3 tracks and what each call with its
//! arguments means ([`dispatch`]), every bad argument answered with its PSCI error.

use crate::memmap::MemoryMap;
use cca_abi::psci::{self, PsciStatus};
use core::sync::atomic::{AtomicU8, Ordering};

/// Power state of one CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PowerState {
    /// Off, parked in EL3.
    Off = 0,
    /// A CPU_ON was accepted; the CPU is booting.
    OnPending = 1,
    /// On.
    On = 2,
}

/// The power states of up to `N` CPUs, shared by all CPUs.
pub struct CpuStates<const N: usize> {
    states: [AtomicU8; N],
    count: usize,
}

/// Why a CPU_ON was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuOnError {
    /// The MPIDR names no CPU of this platform.
    InvalidParameters,
    /// The CPU is already on.
    AlreadyOn,
    /// A CPU_ON for this CPU is in progress.
    OnPending,
}

impl<const N: usize> CpuStates<N> {
    /// All CPUs off.
    pub const fn new() -> Self {
        Self {
            states: [const { AtomicU8::new(PowerState::Off as u8) }; N],
            count: N,
        }
    }

    /// Limits the platform to `count` CPUs (at most `N`).
    pub fn set_count(&mut self, count: usize) {
        self.count = count.min(N);
    }

    /// Number of CPUs.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Converts an MPIDR to a linear CPU index on QEMU `virt` (16 CPUs per Aff1 cluster).
    pub fn index_of(&self, mpidr: u64) -> Option<usize> {
        let aff0 = mpidr & 0xff;
        let aff1 = (mpidr >> 8) & 0xff;
        if aff0 >= 16 || mpidr & !0xffff_u64 & 0xff_00ff_ffff != 0 {
            return None;
        }
        let idx = (aff1 * 16 + aff0) as usize;
        (idx < self.count).then_some(idx)
    }

    /// Returns the state of CPU `idx`.
    pub fn get(&self, idx: usize) -> PowerState {
        match self.states[idx].load(Ordering::Acquire) {
            0 => PowerState::Off,
            1 => PowerState::OnPending,
            _ => PowerState::On,
        }
    }

    /// Marks CPU `idx` on (the boot CPU, or a CPU that finished booting).
    pub fn set_on(&self, idx: usize) {
        self.states[idx].store(PowerState::On as u8, Ordering::Release);
    }

    /// Marks CPU `idx` off.
    pub fn set_off(&self, idx: usize) {
        self.states[idx].store(PowerState::Off as u8, Ordering::Release);
    }

    /// Claims an off CPU for CPU_ON.
    pub fn begin_on(&self, mpidr: u64) -> Result<usize, CpuOnError> {
        let idx = self.index_of(mpidr).ok_or(CpuOnError::InvalidParameters)?;
        self.claim(idx).map(|()| idx)
    }

    /// Claims CPU `idx` (an index below [`CpuStates::count`]) for CPU_ON if it is off.
    pub fn claim(&self, idx: usize) -> Result<(), CpuOnError> {
        if idx >= self.count {
            return Err(CpuOnError::InvalidParameters);
        }
        match self.states[idx].compare_exchange(
            PowerState::Off as u8,
            PowerState::OnPending as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Ok(()),
            Err(s) if s == PowerState::OnPending as u8 => Err(CpuOnError::OnPending),
            Err(_) => Err(CpuOnError::AlreadyOn),
        }
    }
}

/// What a PSCI call asks EL3 to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciAction {
    /// Return this x0 to the caller.
    Return(u64),
    /// Release CPU `idx` (already claimed, now `OnPending`) to enter the Normal world at
    /// `entry` with `context` in x0; the caller gets `SUCCESS`.
    CpuOn {
        /// Linear index of the CPU.
        idx: usize,
        /// Entry point (a Normal-world DRAM address, 4-byte aligned).
        entry: u64,
        /// Context id for the new CPU's x0.
        context: u64,
    },
    /// Power the calling CPU off (the call does not return).
    CpuOff,
    /// Power the system off (the call does not return, whatever the other CPUs run).
    SystemOff,
    /// Reset the system (the call does not return).
    SystemReset,
}

/// The PSCI functions this EL3 implements (`PSCI_FEATURES` answers 0 for them).
pub const IMPLEMENTED: [u32; 10] = [
    psci::VERSION,
    psci::FEATURES,
    psci::CPU_ON_32,
    psci::CPU_ON_64,
    psci::CPU_OFF,
    psci::AFFINITY_INFO_32,
    psci::AFFINITY_INFO_64,
    psci::SYSTEM_OFF,
    psci::SYSTEM_RESET,
    psci::MIGRATE_INFO_TYPE,
];

/// `MIGRATE_INFO_TYPE`: no Trusted OS, so no migration is needed (2).
pub const MIGRATE_NONE: u64 = 2;

/// `AFFINITY_INFO` result: a `CPU_ON` of the target is in progress.
pub const AFFINITY_ON_PENDING: u64 = 2;

/// True when `fid` is an SMC32 function: its arguments are the low 32 bits of x1..x3.
const fn is_smc32(fid: u32) -> bool {
    fid & (1 << 30) == 0
}

/// Checks a `CPU_ON` entry point: it must be a Normal-world DRAM address (not the Realm
/// carve-out, not EL3's memory, not MMIO or unbacked space) and 4-byte aligned, as an A64
/// instruction is (PSCI's `INVALID_ADDRESS` otherwise).
pub const fn check_entry(map: &MemoryMap, entry: u64) -> Result<(), PsciStatus> {
    if entry % 4 != 0 || !map.is_ns_dram(entry) {
        return Err(PsciStatus::InvalidAddress);
    }
    Ok(())
}

/// Decides the PSCI call `fid` (already normalised) with arguments `x1..x3` = `args`, made
/// by the Normal world. A `CPU_ON` that succeeds claims its target CPU in `states`.
///
/// The checks of `CPU_ON` go in TF-A's order: the target MPIDR (`INVALID_PARAMETERS`), the
/// entry point (`INVALID_ADDRESS`), then the target's state (`ALREADY_ON`, `ON_PENDING`).
pub fn dispatch<const N: usize>(
    states: &CpuStates<N>,
    map: &MemoryMap,
    fid: u32,
    args: [u64; 3],
) -> PsciAction {
    let args = if is_smc32(fid) {
        args.map(|a| a & 0xffff_ffff)
    } else {
        args
    };
    let ret = |s: PsciStatus| PsciAction::Return(s.to_reg());
    match fid {
        psci::VERSION => PsciAction::Return(psci::PSCI_VERSION_1_1),
        psci::FEATURES => {
            // The queried function identifier is a 32-bit value; the upper half of x1 is
            // not part of it.
            let q = args[0] as u32;
            if IMPLEMENTED.contains(&q) {
                PsciAction::Return(0)
            } else {
                ret(PsciStatus::NotSupported)
            }
        }
        psci::CPU_ON_32 | psci::CPU_ON_64 => {
            let [mpidr, entry, context] = args;
            let Some(idx) = states.index_of(mpidr) else {
                return ret(PsciStatus::InvalidParameters);
            };
            if let Err(e) = check_entry(map, entry) {
                return ret(e);
            }
            match states.claim(idx) {
                Ok(()) => PsciAction::CpuOn {
                    idx,
                    entry,
                    context,
                },
                Err(CpuOnError::AlreadyOn) => ret(PsciStatus::AlreadyOn),
                Err(CpuOnError::OnPending) => ret(PsciStatus::OnPending),
                Err(CpuOnError::InvalidParameters) => ret(PsciStatus::InvalidParameters),
            }
        }
        psci::CPU_OFF => PsciAction::CpuOff,
        psci::AFFINITY_INFO_32 | psci::AFFINITY_INFO_64 => {
            let [mpidr, level, _] = args;
            if level != 0 {
                return ret(PsciStatus::InvalidParameters);
            }
            match states.index_of(mpidr) {
                None => ret(PsciStatus::InvalidParameters),
                Some(i) => PsciAction::Return(match states.get(i) {
                    PowerState::On => psci::AFFINITY_ON,
                    PowerState::Off => psci::AFFINITY_OFF,
                    PowerState::OnPending => AFFINITY_ON_PENDING,
                }),
            }
        }
        psci::MIGRATE_INFO_TYPE => PsciAction::Return(MIGRATE_NONE),
        psci::SYSTEM_OFF => PsciAction::SystemOff,
        psci::SYSTEM_RESET => PsciAction::SystemReset,
        _ => ret(PsciStatus::NotSupported),
    }
}

impl<const N: usize> Default for CpuStates<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_on_state_machine() {
        let mut s = CpuStates::<4>::new();
        s.set_count(2);
        s.set_on(0);
        assert_eq!(s.begin_on(0), Err(CpuOnError::AlreadyOn));
        assert_eq!(s.begin_on(1), Ok(1));
        assert_eq!(s.begin_on(1), Err(CpuOnError::OnPending));
        assert_eq!(s.begin_on(2), Err(CpuOnError::InvalidParameters));
        assert_eq!(s.begin_on(0x100), Err(CpuOnError::InvalidParameters));
        assert_eq!(
            s.begin_on(0x1_0000_0000),
            Err(CpuOnError::InvalidParameters)
        );
        s.set_on(1);
        assert_eq!(s.get(1), PowerState::On);
        s.set_off(1);
        assert_eq!(s.begin_on(1), Ok(1));
    }
}
