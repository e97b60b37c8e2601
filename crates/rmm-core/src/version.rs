//! `RMI_VERSION`: interface revision negotiation.

use cca_abi::rmi::{RmiStatus, RMI_VERSION_2_0};

use crate::dispatch::Regs;
use crate::error::{Reason, RmiError};
use crate::platform::Platform;
use crate::rmm::Rmm;

/// The RMI revisions this RMM implements, ascending.
pub const SUPPORTED_RMI_VERSIONS: [u64; 1] = [RMI_VERSION_2_0];

/// The highest implemented revision.
pub const HIGHEST_RMI_VERSION: u64 = SUPPORTED_RMI_VERSIONS[SUPPORTED_RMI_VERSIONS.len() - 1];

impl<'a, P: Platform> Rmm<'a, P> {
    /// `RMI_VERSION(requested)`: SUCCESS with x1 = requested when it is implemented, else
    /// ERROR_INPUT with x1 = highest; x2 = highest either way (as TF-RMM).
    pub(crate) fn cmd_version(&self, regs: &Regs, out: &mut Regs) -> Result<(), RmiError> {
        let requested = regs[1];
        out[2] = HIGHEST_RMI_VERSION;
        if SUPPORTED_RMI_VERSIONS.contains(&requested) {
            out[1] = requested;
            Ok(())
        } else {
            out[1] = HIGHEST_RMI_VERSION;
            Err(RmiError::new(
                RmiStatus::ErrorInput,
                Reason::BadValue {
                    field: "the requested RMI version",
                    value: requested,
                    accepted: "2.0 (0x20000)",
                },
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::*;
    use cca_abi::rmi::{RmiFid, RmiStatus};

    #[test]
    fn version_2_0_succeeds() {
        let f = Fixture::new();
        let rmm = f.rmm();
        assert_eq!(
            call(&rmm, RmiFid::VERSION, &[0x20000])[..4],
            [0, 0x20000, 0x20000, 0]
        );
        let rmm = f.active_rmm();
        assert_eq!(
            call(&rmm, RmiFid::VERSION, &[0x20000])[..4],
            [0, 0x20000, 0x20000, 0]
        );
    }

    #[test]
    fn version_rejects_other_revisions() {
        let f = Fixture::new();
        let rmm = f.rmm();
        for req in [
            0x10000,
            0x10001,
            0x20001,
            0x30000,
            0,
            u64::MAX,
            0x1_0002_0000,
        ] {
            let out = call(&rmm, RmiFid::VERSION, &[req]);
            assert_eq!(
                out[..4],
                [RmiStatus::ErrorInput as u64, 0x20000, 0x20000, 0],
                "{req:#x}"
            );
        }
        assert_eq!(
            take_debug_logs().last().unwrap(),
            "VERSION(0x100020000) -> RMI_ERROR_INPUT: the requested RMI version is 0x100020000, only 2.0 (0x20000) is supported"
        );
    }
}
