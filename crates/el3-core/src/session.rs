//! The RMM's side of one CPU's world-switch loop: which RMM-EL3 calls are valid when, and
//! the answer to those that are not.
//!
//! On each CPU the RMM is entered first to boot (cold or warm), and it must end that with
//! `RMM_BOOT_COMPLETE`; from then on it is entered only to serve an RMI call the host made,
//! which it must end with `RMM_RMI_REQ_COMPLETE`. While it runs, in either phase, it may make
//! the service calls (granule transitions, memory reservation, features, attestation). A
//! completion the phase does not expect (a second `BOOT_COMPLETE`, or a `REQ_COMPLETE` while
//! booting) is answered with `SMC_UNKNOWN` and the RMM keeps running: EL3 never hands the
//! host registers it did not ask for, and never resumes a host that is not waiting.

use crate::routing::Route;
use cca_abi::el3::El3Error;
use cca_abi::smccc::SMC_UNKNOWN;

/// Where one CPU's RMM is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Entered to boot; `RMM_BOOT_COMPLETE` is due.
    Booting,
    /// The host runs; the RMM is not running on this CPU.
    HostRunning,
    /// Serving an RMI call; `RMM_RMI_REQ_COMPLETE` is due.
    InRmi,
}

/// What EL3 does with an SMC the RMM made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RealmVerdict {
    /// Serve it (for a completion: switch to the host).
    Serve,
    /// Return this x0 to the RMM and keep running it.
    Refuse(u64),
}

/// One CPU's RMM phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    phase: Phase,
}

impl Session {
    /// A CPU whose RMM is about to be entered to boot.
    pub const fn booting() -> Self {
        Self {
            phase: Phase::Booting,
        }
    }

    /// The current phase.
    pub const fn phase(&self) -> Phase {
        self.phase
    }

    /// Decides an SMC the RMM made (routed as `route`), moving to the next phase when it is
    /// a completion this phase expects.
    pub fn realm_call(&mut self, route: Route) -> RealmVerdict {
        match (route, self.phase) {
            (Route::BootComplete, Phase::Booting) | (Route::RmiComplete, Phase::InRmi) => {
                self.phase = Phase::HostRunning;
                RealmVerdict::Serve
            }
            (Route::BootComplete | Route::RmiComplete, _) => RealmVerdict::Refuse(SMC_UNKNOWN),
            _ => RealmVerdict::Serve,
        }
    }

    /// The host made an RMI call that EL3 forwards: the RMM is entered to serve it. Returns
    /// false (and changes nothing) if the host is not the world running on this CPU.
    pub fn host_rmi(&mut self) -> bool {
        if self.phase != Phase::HostRunning {
            return false;
        }
        self.phase = Phase::InRmi;
        true
    }
}

/// `RMM_EL3_FEATURES(index)`: register 0 is the only one; this EL3 offers none of its
/// features (bit 0, `EL3_TOKEN_SIGN`, is clear). Any other index is `E_RMM_INVAL`, as in
/// TF-A.
pub const fn el3_features(index: u64, token_sign: bool) -> Result<u64, El3Error> {
    if index != 0 {
        return Err(El3Error::Inval);
    }
    Ok(token_sign as u64)
}
