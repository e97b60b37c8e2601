//! PSCI (DEN0022) function identifiers and return codes, as served by EL3 to the host and by
//! the RMM to realms.

/// `PSCI_VERSION`.
pub const VERSION: u32 = 0x8400_0000;
/// `CPU_SUSPEND` (SMC32).
pub const CPU_SUSPEND_32: u32 = 0x8400_0001;
/// `CPU_SUSPEND` (SMC64).
pub const CPU_SUSPEND_64: u32 = 0xC400_0001;
/// `CPU_OFF`.
pub const CPU_OFF: u32 = 0x8400_0002;
/// `CPU_ON` (SMC32).
pub const CPU_ON_32: u32 = 0x8400_0003;
/// `CPU_ON` (SMC64).
pub const CPU_ON_64: u32 = 0xC400_0003;
/// `AFFINITY_INFO` (SMC32).
pub const AFFINITY_INFO_32: u32 = 0x8400_0004;
/// `AFFINITY_INFO` (SMC64).
pub const AFFINITY_INFO_64: u32 = 0xC400_0004;
/// `MIGRATE_INFO_TYPE`.
pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
/// `SYSTEM_OFF`.
pub const SYSTEM_OFF: u32 = 0x8400_0008;
/// `SYSTEM_RESET`.
pub const SYSTEM_RESET: u32 = 0x8400_0009;
/// `PSCI_FEATURES`.
pub const FEATURES: u32 = 0x8400_000A;

/// PSCI 1.1, the version both EL3 and the RMM report.
pub const PSCI_VERSION_1_1: u64 = 0x0001_0001;

/// PSCI return codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum PsciStatus {
    /// The call succeeded.
    Success = 0,
    /// The function is not implemented.
    NotSupported = -1,
    /// An argument was invalid.
    InvalidParameters = -2,
    /// The operation was denied.
    Denied = -3,
    /// The target CPU is already on.
    AlreadyOn = -4,
    /// A CPU_ON for the target is pending.
    OnPending = -5,
    /// An internal failure occurred.
    InternalFailure = -6,
    /// The target is not present.
    NotPresent = -7,
    /// The target is disabled.
    Disabled = -8,
    /// The entry address is invalid.
    InvalidAddress = -9,
}

impl PsciStatus {
    /// Returns the status as the sign-extended register value the caller sees in x0.
    pub const fn to_reg(self) -> u64 {
        self as i32 as i64 as u64
    }

    /// Decodes a register value, if it is a known status.
    pub const fn from_reg(v: u64) -> Option<Self> {
        Some(match v as i64 {
            0 => Self::Success,
            -1 => Self::NotSupported,
            -2 => Self::InvalidParameters,
            -3 => Self::Denied,
            -4 => Self::AlreadyOn,
            -5 => Self::OnPending,
            -6 => Self::InternalFailure,
            -7 => Self::NotPresent,
            -8 => Self::Disabled,
            -9 => Self::InvalidAddress,
            _ => return None,
        })
    }
}

/// `AFFINITY_INFO` result: the target is on.
pub const AFFINITY_ON: u64 = 0;
/// `AFFINITY_INFO` result: the target is off.
pub const AFFINITY_OFF: u64 = 1;

/// Returns a printable name for a PSCI function identifier.
pub const fn name(fid: u32) -> Option<&'static str> {
    Some(match fid {
        VERSION => "PSCI_VERSION",
        CPU_SUSPEND_32 | CPU_SUSPEND_64 => "CPU_SUSPEND",
        CPU_OFF => "CPU_OFF",
        CPU_ON_32 | CPU_ON_64 => "CPU_ON",
        AFFINITY_INFO_32 | AFFINITY_INFO_64 => "AFFINITY_INFO",
        MIGRATE_INFO_TYPE => "MIGRATE_INFO_TYPE",
        SYSTEM_OFF => "SYSTEM_OFF",
        SYSTEM_RESET => "SYSTEM_RESET",
        FEATURES => "PSCI_FEATURES",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trip() {
        for s in [
            PsciStatus::Success,
            PsciStatus::NotSupported,
            PsciStatus::Denied,
            PsciStatus::AlreadyOn,
            PsciStatus::InvalidAddress,
        ] {
            assert_eq!(PsciStatus::from_reg(s.to_reg()), Some(s));
        }
        assert_eq!(PsciStatus::Denied.to_reg(), 0xFFFF_FFFF_FFFF_FFFD);
        assert_eq!(PsciStatus::from_reg(5), None);
    }
}
