//! `RMM_GTSI_DELEGATE` / `RMM_GTSI_UNDELEGATE`: which granules EL3 lets the RMM move between
//! the Non-secure and the Realm PAS, and the error for every refusal.
//!
//! The RMM-EL3 interface defines two errors for a granule transition:
//!
//! * `E_RMM_BAD_ADDR`: the address is not one EL3 transitions: not 4 KiB aligned, outside
//!   the protected physical space, outside DRAM (MMIO, flash, unbacked space), in EL3's own
//!   Root memory, or in the Realm carve-out (the RMM's image, memory and shared page never
//!   leave the Realm PAS, in either direction);
//! * `E_RMM_BAD_PAS`: a DRAM granule of the Normal world's pool that is not in the PAS the
//!   transition starts from (delegating a granule that is already Realm, or Secure;
//!   undelegating one that is Non-secure).
//!
//! [`screen`] makes the address checks, which depend only on the memory map; the PAS check
//! is the table's ([`Gpt::check_transition`]), made under the table lock by the caller that
//! then writes the entry. [`check`] is both, for callers (and tests) holding the table.

use crate::gpt::{Gpi, Gpt, GptError, PGS};
use crate::memmap::MemoryMap;
use cca_abi::el3::El3Error;

/// The direction of a granule transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Non-secure to Realm (`RMM_GTSI_DELEGATE`).
    Delegate,
    /// Realm to Non-secure (`RMM_GTSI_UNDELEGATE`).
    Undelegate,
}

impl Transition {
    /// The PAS the granule must be in.
    pub const fn from(self) -> Gpi {
        match self {
            Self::Delegate => Gpi::NonSecure,
            Self::Undelegate => Gpi::Realm,
        }
    }

    /// The PAS the granule ends in.
    pub const fn to(self) -> Gpi {
        match self {
            Self::Delegate => Gpi::Realm,
            Self::Undelegate => Gpi::NonSecure,
        }
    }
}

/// The address checks of a transition of the granule at `pa`.
pub fn screen(map: &MemoryMap, pa: u64) -> Result<(), El3Error> {
    if pa % PGS != 0 || !map.is_ns_dram(pa) {
        return Err(El3Error::BadAddr);
    }
    Ok(())
}

/// The RMM-EL3 error for a table error.
pub const fn gpt_error(e: GptError) -> El3Error {
    match e {
        GptError::BadPas => El3Error::BadPas,
        GptError::BadAddr | GptError::NoL1Space | GptError::NotGranular => El3Error::BadAddr,
    }
}

/// Every check of a transition of the granule at `pa`: the address ([`screen`]), then the
/// granule's current PAS in `gpt`.
pub fn check(map: &MemoryMap, gpt: &Gpt<'_>, pa: u64, t: Transition) -> Result<(), El3Error> {
    screen(map, pa)?;
    gpt.check_transition(pa, t.from()).map_err(gpt_error)
}

/// Checks and makes a transition in `gpt` (without the cache and TLB maintenance the
/// hardware needs around the write, which the caller does). Returns the physical address of
/// the level 1 word that changed.
pub fn apply(map: &MemoryMap, gpt: &mut Gpt<'_>, pa: u64, t: Transition) -> Result<u64, El3Error> {
    check(map, gpt, pa, t)?;
    gpt.write_granule(pa, t.to()).map_err(gpt_error)
}
