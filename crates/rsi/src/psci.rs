//! PSCI (and `SMCCC_VERSION`) through the same conduit: in a realm the RMM answers
//! `PSCI_VERSION`, `PSCI_FEATURES` and argument errors itself and forwards `CPU_ON`,
//! `AFFINITY_INFO`, `CPU_OFF`, `SYSTEM_OFF` and `SYSTEM_RESET` to the host.
//!
//! PSCI results are 32-bit signed values: they are decoded from the low 32 bits of x0, so
//! a sign-extended and a zero-extended negative status read the same.

use crate::client::Rsi;
use crate::conduit::Conduit;
use cca_abi::psci::{self, PsciStatus};
use cca_abi::smccc;

/// A PSCI call's failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciError {
    /// A PSCI error status.
    Status(PsciStatus),
    /// A value the call does not define (for instance a positive value where only 0 is
    /// defined), with x0 as returned.
    Unknown(u64),
}

impl core::fmt::Display for PsciError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Status(s) => write!(f, "{s:?} ({})", *s as i32),
            Self::Unknown(v) => write!(f, "undefined result {v:#x}"),
        }
    }
}

/// `AFFINITY_INFO` results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AffinityState {
    /// 0: at least one CPU of the affinity instance is on.
    On,
    /// 1: all CPUs of the affinity instance are off.
    Off,
    /// 2: a CPU_ON of the affinity instance is pending.
    OnPending,
}

/// x0 as the 32-bit signed result PSCI defines.
fn result32(x0: u64) -> i32 {
    x0 as u32 as i32
}

/// A non-negative value, or the error a negative one encodes.
fn value(x0: u64) -> Result<u64, PsciError> {
    let v = result32(x0);
    if v >= 0 {
        Ok(v as u64)
    } else {
        Err(PsciStatus::from_reg(v as i64 as u64).map_or(PsciError::Unknown(x0), PsciError::Status))
    }
}

/// `SUCCESS` (0), or the error.
fn success(x0: u64) -> Result<(), PsciError> {
    match value(x0)? {
        0 => Ok(()),
        _ => Err(PsciError::Unknown(x0)),
    }
}

impl<C: Conduit> Rsi<C> {
    /// `SMCCC_VERSION`: the SMC Calling Convention version (`major << 16 | minor`).
    pub fn smccc_version(&mut self) -> Result<u64, PsciError> {
        value(self.call(smccc::SMCCC_VERSION, &[])[0])
    }

    /// `PSCI_VERSION` (`major << 16 | minor`; a realm sees 1.1).
    pub fn psci_version(&mut self) -> Result<u64, PsciError> {
        value(self.call(psci::VERSION, &[])[0])
    }

    /// `PSCI_FEATURES(fid)`: the feature flags of an implemented function, or
    /// `NOT_SUPPORTED`.
    pub fn psci_features(&mut self, fid: u32) -> Result<u64, PsciError> {
        value(self.call(psci::FEATURES, &[u64::from(fid)])[0])
    }

    /// `CPU_ON` (SMC64): starts the vCPU (REC) with `mpidr` at `entry` (a protected IPA)
    /// with x0 = `context_id`.
    pub fn cpu_on(&mut self, mpidr: u64, entry: u64, context_id: u64) -> Result<(), PsciError> {
        success(self.call(psci::CPU_ON_64, &[mpidr, entry, context_id])[0])
    }

    /// `CPU_OFF`: powers this vCPU off. The RMM never resumes the caller (only a later
    /// `CPU_ON` restarts the REC, at its new entry point), so a return is a failure or a
    /// misbehaving RMM.
    pub fn cpu_off(&mut self) -> Result<(), PsciError> {
        success(self.call(psci::CPU_OFF, &[])[0])
    }

    /// `AFFINITY_INFO` (SMC64) of `mpidr` at `lowest_level` (a realm supports level 0).
    pub fn affinity_info(
        &mut self,
        mpidr: u64,
        lowest_level: u64,
    ) -> Result<AffinityState, PsciError> {
        let x0 = self.call(psci::AFFINITY_INFO_64, &[mpidr, lowest_level])[0];
        match value(x0)? {
            0 => Ok(AffinityState::On),
            1 => Ok(AffinityState::Off),
            2 => Ok(AffinityState::OnPending),
            _ => Err(PsciError::Unknown(x0)),
        }
    }

    /// `SYSTEM_OFF`: ends the realm. Returns only if the call failed.
    pub fn system_off(&mut self) -> Result<(), PsciError> {
        success(self.call(psci::SYSTEM_OFF, &[])[0])
    }

    /// `SYSTEM_RESET`: ends the realm (the host may build it again). Returns only if the
    /// call failed.
    pub fn system_reset(&mut self) -> Result<(), PsciError> {
        success(self.call(psci::SYSTEM_RESET, &[])[0])
    }
}
