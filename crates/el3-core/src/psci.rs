//! PSCI CPU power states as EL3 tracks them for the Normal world.

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
        match self.states[idx].compare_exchange(
            PowerState::Off as u8,
            PowerState::OnPending as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Ok(idx),
            Err(s) if s == PowerState::OnPending as u8 => Err(CpuOnError::OnPending),
            Err(_) => Err(CpuOnError::AlreadyOn),
        }
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
