//! What can go wrong while building, running or tearing down a VM.

use crate::client::RmiError;
use crate::devices::BusError;
use core::fmt;

/// A VM operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmError {
    /// The RMM rejected a command (the command, its status and index are in the error).
    Rmi {
        /// What the VMM was doing.
        doing: &'static str,
        /// The rejected call.
        err: RmiError,
    },
    /// The host's granule pool cannot supply what is needed.
    OutOfMemory {
        /// What the memory was for.
        what: &'static str,
        /// Granules asked for.
        granules: u64,
    },
    /// A device could not be placed on the bus.
    Bus(BusError),
    /// The VM's configuration is unusable.
    Config(&'static str),
    /// The guest did something the VMM cannot go on from (the message says what).
    Guest(alloc::string::String),
}

impl VmError {
    /// Wraps an RMI error with what the VMM was doing.
    pub fn rmi(doing: &'static str) -> impl FnOnce(RmiError) -> VmError {
        move |err| VmError::Rmi { doing, err }
    }
}

impl fmt::Display for VmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rmi { doing, err } => write!(f, "{doing}: {err}"),
            Self::OutOfMemory { what, granules } => write!(
                f,
                "out of host memory for {what} ({granules} granule(s) of 4 KiB needed)"
            ),
            Self::Bus(e) => write!(f, "device bus: {e:?}"),
            Self::Config(what) => write!(f, "VM configuration: {what}"),
            Self::Guest(what) => write!(f, "guest: {what}"),
        }
    }
}

impl From<BusError> for VmError {
    fn from(e: BusError) -> Self {
        Self::Bus(e)
    }
}

/// The result of a VM operation.
pub type VmResult<T> = Result<T, VmError>;
