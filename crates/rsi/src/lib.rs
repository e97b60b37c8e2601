//! A typed client of the Realm Services Interface (RSI 1.x) and of PSCI, for software running
//! at Realm EL1 (plane 0).
//!
//! Every call goes through a [`Conduit`]: on `aarch64` `Smc` issues `SMC #0` with the SMC
//! Calling Convention 1.2 register file (x0..x17 in and out); tests and simulations supply
//! their own. [`Rsi`] encodes the arguments of each command into registers, decodes the
//! results into types, and follows TF-RMM main's ABI (`lib/smc/include/smc-rsi.h`):
//!
//! | call | arguments | results |
//! |---|---|---|
//! | [`Rsi::version`] | x1 = requested | x1 = lower, x2 = higher revision |
//! | [`Rsi::features`] | x1 = index | x1 = feature register |
//! | [`Rsi::realm_config`] | x1 = IPA of an [`RsiRealmConfig`] | the structure is written |
//! | [`Rsi::measurement_read`] | x1 = index 0..=4 | x1..x8 = 64 bytes |
//! | [`Rsi::measurement_extend`] | x1 = index 1..=4, x2 = size, x3..x10 = value | – |
//! | [`Rsi::attestation_token_init`] | x1..x8 = challenge | x1 = token size bound |
//! | [`Rsi::attestation_token_continue`] | x1 = granule IPA, x2 = offset, x3 = size | x1 = bytes written |
//! | [`Rsi::ipa_state_set`] | x1 = base, x2 = top, x3 = RIPAS, x4 = flags | x1 = next, x2 = response |
//! | [`Rsi::ipa_state_get`] | x1 = base, x2 = top | x1 = top of the uniform region, x2 = RIPAS |
//! | [`Rsi::host_call`] | x1 = IPA of an [`RsiHostCall`] | the structure's `gprs` are rewritten |
//!
//! Calls that name realm memory by IPA take that memory as a `&mut` borrow and hand it to
//! [`Conduit::smc_shared`], so the borrow checker guarantees nothing else uses it while the
//! RMM (or a test double) reads and writes it. Addresses are translated with
//! [`Conduit::ipa_of`], which is the identity by default (a realm that maps its memory at
//! VA = IPA).
//!
//! [`Rsi::call`] makes a raw call with any function identifier and arguments, for negative
//! tests of an RMM (an unaligned or unprotected IPA, an out-of-range size): whatever memory
//! such a call names is the caller's responsibility.

#![no_std]
#![forbid(unsafe_code)]

mod client;
pub mod conduit;
mod psci;

#[cfg(test)]
mod tests;

pub use cca_abi::rsi::{Ripas, RsiHostCall, RsiRealmConfig, RsiResponse, RsiStatus};
pub use client::{
    hash_algorithm, Granule, MeasurementValue, Revisions, RipasChange, RipasRegion, Rsi, SetRipas,
    TokenStep, VersionError,
};
#[cfg(target_arch = "aarch64")]
pub use conduit::Smc;
pub use conduit::{Conduit, Regs, NUM_REGS};
pub use psci::{AffinityState, PsciError};

/// Why an RSI call did not produce its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The RMM answered with an RSI status other than `RSI_SUCCESS`.
    Status(RsiStatus),
    /// x0 held no RSI status: `SMC_UNKNOWN` (-1) when the RMM does not implement the
    /// function.
    NotStatus(u64),
    /// The RMM's results contradict the command's definition (a RIPAS or response value out
    /// of range, progress outside the requested range, more bytes written than asked for).
    BadResult,
    /// The client refused the arguments before calling (e.g. an extend value longer than
    /// 64 bytes, an offset outside a granule).
    InvalidArgument,
    /// The host accepted a RIPAS change but made no progress from `at`.
    NoProgress {
        /// The address the request started from.
        at: u64,
    },
    /// The attestation token does not fit in the buffer given.
    BufferTooSmall,
}

impl Error {
    /// The RSI status the RMM returned, if that is why the call failed.
    pub const fn status(self) -> Option<RsiStatus> {
        match self {
            Self::Status(s) => Some(s),
            _ => None,
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Status(s) => f.write_str(s.name()),
            Self::NotStatus(u64::MAX) => f.write_str("SMC_UNKNOWN"),
            Self::NotStatus(v) => write!(f, "x0 = {v:#x} (not an RSI status)"),
            Self::BadResult => f.write_str("results outside the command's definition"),
            Self::InvalidArgument => f.write_str("invalid argument (refused by the client)"),
            Self::NoProgress { at } => write!(f, "host accepted without progress at {at:#x}"),
            Self::BufferTooSmall => f.write_str("buffer too small"),
        }
    }
}

/// Result of an RSI call.
pub type Result<T> = core::result::Result<T, Error>;

/// Decodes x0 of an RSI call: `Ok` for `RSI_SUCCESS`, the error otherwise.
pub const fn check(x0: u64) -> Result<()> {
    match RsiStatus::from_reg(x0) {
        Some(RsiStatus::Success) => Ok(()),
        Some(s) => Err(Error::Status(s)),
        None => Err(Error::NotStatus(x0)),
    }
}
