//! Command errors: the status the host sees, plus the reason a person reads in the log.

use core::fmt;

use cca_abi::el3::El3Error;
use cca_abi::rmi::{RmiReturn, RmiStatus};

use crate::granule::{GranuleState, LockError};
use crate::pa::Pa;

/// Why a command failed, in words a person can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A fixed explanation.
    Text(&'static str),
    /// A fixed explanation about one address.
    AtAddr(&'static str, Pa),
    /// A granule is in the wrong state.
    WrongState {
        /// The granule.
        pa: Pa,
        /// The state it was in.
        found: GranuleState,
        /// The state the command needs.
        expected: GranuleState,
    },
    /// An address is unaligned or outside every DRAM bank the RMM tracks.
    Untracked(Pa),
    /// EL3 refused a request about a granule.
    El3Refused {
        /// The request.
        call: &'static str,
        /// The granule.
        pa: Pa,
        /// EL3's answer.
        error: El3Error,
    },
    /// Reading or writing an NS page faulted.
    NsFault(Pa),
    /// A fixed explanation about one value.
    Value(&'static str, u64),
    /// A value read from the host is not one the RMM supports.
    BadValue {
        /// The field.
        field: &'static str,
        /// The value found.
        value: u64,
        /// What the RMM accepts.
        accepted: &'static str,
    },
}

impl Reason {
    /// The reason for failing to lock the granule at `pa` in state `expected`.
    pub fn from_lock(pa: Pa, expected: GranuleState, e: LockError) -> Self {
        match e {
            LockError::Untracked => Self::Untracked(pa),
            LockError::WrongState(found) => Self::WrongState {
                pa,
                found,
                expected,
            },
            LockError::SameGranule => Self::AtAddr("the same granule is named twice", pa),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Text(s) => f.write_str(s),
            Self::AtAddr(s, pa) => write!(f, "{s} ({pa})"),
            Self::Value(s, v) => write!(f, "{s} ({v:#x})"),
            Self::WrongState {
                pa,
                found,
                expected,
            } => {
                write!(f, "granule {pa} is {found}, expected {expected}")
            }
            Self::Untracked(pa) => {
                if pa.is_granule_aligned() {
                    write!(
                        f,
                        "granule {pa} is not in any DRAM bank of the boot manifest"
                    )
                } else {
                    write!(f, "address {pa} is not 4 KiB aligned")
                }
            }
            Self::El3Refused { call, pa, error } => {
                write!(f, "EL3 refused {call} of granule {pa} ({error:?})")
            }
            Self::NsFault(pa) => {
                write!(
                    f,
                    "accessing NS page {pa} faulted (it is not in the NS PAS)"
                )
            }
            Self::BadValue {
                field,
                value,
                accepted,
            } => {
                write!(f, "{field} is {value:#x}, only {accepted} is supported")
            }
        }
    }
}

/// A failed command: the return code for x0 and the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RmiError {
    /// The status (x0 bits [7:0]).
    pub status: RmiStatus,
    /// The index (x0 bits [15:8]), for example the RTT level of `RMI_ERROR_RTT`.
    pub index: u8,
    /// Why.
    pub reason: Reason,
}

impl RmiError {
    /// An error with index 0.
    pub const fn new(status: RmiStatus, reason: Reason) -> Self {
        Self {
            status,
            index: 0,
            reason,
        }
    }

    /// `RMI_ERROR_INPUT` with a fixed explanation.
    pub const fn input(text: &'static str) -> Self {
        Self::new(RmiStatus::ErrorInput, Reason::Text(text))
    }

    /// `RMI_ERROR_REALM` with a fixed explanation.
    pub const fn realm(text: &'static str) -> Self {
        Self::new(RmiStatus::ErrorRealm, Reason::Text(text))
    }

    /// `RMI_ERROR_REC` with a fixed explanation.
    pub const fn rec(text: &'static str) -> Self {
        Self::new(RmiStatus::ErrorRec, Reason::Text(text))
    }

    /// `RMI_ERROR_GLOBAL` with a fixed explanation.
    pub const fn global(text: &'static str) -> Self {
        Self::new(RmiStatus::ErrorGlobal, Reason::Text(text))
    }

    /// `RMI_ERROR_RTT` with the RTT level as the index (level -1 is 0xff, as TF-RMM packs it).
    pub const fn rtt(level: i8, text: &'static str) -> Self {
        Self {
            status: RmiStatus::ErrorRtt,
            index: level as u8,
            reason: Reason::Text(text),
        }
    }

    /// `RMI_ERROR_INPUT` about a value.
    pub const fn input_value(text: &'static str, v: u64) -> Self {
        Self::new(RmiStatus::ErrorInput, Reason::Value(text, v))
    }

    /// `RMI_ERROR_INPUT` because the granule at `pa` could not be locked in `expected`.
    pub fn input_lock(pa: Pa, expected: GranuleState, e: LockError) -> Self {
        Self::new(RmiStatus::ErrorInput, Reason::from_lock(pa, expected, e))
    }

    /// The value of x0.
    pub const fn to_reg(&self) -> u64 {
        RmiReturn::with_index(self.status, self.index).to_reg()
    }
}

impl fmt::Display for RmiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.status.name())?;
        if self.index != 0 {
            write!(f, " (index {})", self.index)?;
        }
        write!(f, ": {}", self.reason)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    #[test]
    fn messages_name_the_failed_check() {
        let e = RmiError::new(
            RmiStatus::ErrorInput,
            Reason::WrongState {
                pa: Pa::new(0x8000_0000),
                found: GranuleState::Delegated,
                expected: GranuleState::Ns,
            },
        );
        assert_eq!(
            e.to_string(),
            "RMI_ERROR_INPUT: granule 0x80000000 is DELEGATED, expected NS"
        );
        assert_eq!(e.to_reg(), 1);
        let e = RmiError {
            status: RmiStatus::ErrorRtt,
            index: 2,
            reason: Reason::Text("x"),
        };
        assert_eq!(e.to_string(), "RMI_ERROR_RTT (index 2): x");
        assert_eq!(e.to_reg(), 0x204);
        assert_eq!(
            Reason::Untracked(Pa::new(0x10)).to_string(),
            "address 0x10 is not 4 KiB aligned"
        );
        assert_eq!(
            Reason::El3Refused {
                call: "GTSI_DELEGATE",
                pa: Pa::new(0x1000),
                error: El3Error::BadPas
            }
            .to_string(),
            "EL3 refused GTSI_DELEGATE of granule 0x1000 (BadPas)"
        );
    }
}
