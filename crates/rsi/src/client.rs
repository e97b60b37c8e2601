//! The RSI commands: register encoding of the arguments and typed decoding of the results.

use crate::conduit::{Conduit, Regs, NUM_REGS};
use crate::{check, Error, Result};
use cca_abi::rmi::HashAlgorithm;
use cca_abi::rsi::{
    self, Ripas, RsiHostCall, RsiRealmConfig, RsiResponse, RsiStatus, CHALLENGE_SIZE,
    MEASUREMENT_SIZE,
};
use cca_abi::GRANULE_SIZE;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The revisions `RSI_VERSION` reports (x1, x2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Revisions {
    /// x1: the requested revision when it is supported, otherwise the revision the RMM
    /// proposes (TF-RMM: its highest).
    pub lower: u64,
    /// x2: the highest revision the RMM implements.
    pub higher: u64,
}

/// Why `RSI_VERSION` did not accept the requested revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionError {
    /// `RSI_ERROR_INPUT`: the revision is not supported; the RMM's revisions are attached.
    Unsupported(Revisions),
    /// Any other failure.
    Call(Error),
}

impl core::fmt::Display for VersionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Unsupported(r) => write!(
                f,
                "RSI_ERROR_INPUT (revisions {:#x}, highest {:#x})",
                r.lower, r.higher
            ),
            Self::Call(e) => e.fmt(f),
        }
    }
}

/// The outcome of one `RSI_IPA_STATE_SET` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RipasChange {
    /// x1: the base of the part of the range that was not changed.
    pub next: u64,
    /// x2: whether the host accepted the request.
    pub response: RsiResponse,
}

/// The outcome of [`Rsi::set_ripas`], which repeats `RSI_IPA_STATE_SET` until the range is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetRipas {
    /// The whole range has the new RIPAS.
    Done,
    /// The host rejected the request; `[base, at)` was changed, `[at, top)` was not.
    Rejected {
        /// The first address not changed.
        at: u64,
    },
}

/// The answer of `RSI_IPA_STATE_GET`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RipasRegion {
    /// x1: `[base, top)` has one RIPAS.
    pub top: u64,
    /// x2: that RIPAS.
    pub ripas: Ripas,
}

/// One step of `RSI_ATTESTATION_TOKEN_CONTINUE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenStep {
    /// `RSI_INCOMPLETE`: call again (`written` bytes were copied, possibly none while the
    /// RMM is still signing).
    Incomplete {
        /// Bytes written at the offset given.
        written: usize,
    },
    /// `RSI_SUCCESS`: the last `written` bytes of the token were copied.
    Done {
        /// Bytes written at the offset given.
        written: usize,
    },
}

/// A 4 KiB granule of realm memory, the unit `RSI_ATTESTATION_TOKEN_CONTINUE` writes into.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, align(4096))]
pub struct Granule(pub [u8; GRANULE_SIZE as usize]);

impl Granule {
    /// A granule of zeros.
    pub const ZEROED: Self = Self([0; GRANULE_SIZE as usize]);
}

/// A measurement as `RSI_MEASUREMENT_READ` returns it: 64 bytes, x1..x8 little-endian
/// (a digest shorter than 64 bytes is followed by zeros).
///
/// 8-byte aligned, so that taking the eight result registers apart is eight word stores on
/// a target built for strict alignment (a bare `[u8; 64]` inside a `Result` sits at offset
/// 1 and is written a byte at a time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, align(8))]
pub struct MeasurementValue(pub [u8; MEASUREMENT_SIZE]);

impl MeasurementValue {
    /// The value of the eight result registers `x1..x8`.
    pub fn from_regs(regs: &[u64; 8]) -> Self {
        let mut m = Self([0; MEASUREMENT_SIZE]);
        for (chunk, reg) in m.0.chunks_exact_mut(8).zip(regs) {
            chunk.copy_from_slice(&reg.to_le_bytes());
        }
        m
    }
}

impl core::ops::Deref for MeasurementValue {
    type Target = [u8; MEASUREMENT_SIZE];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// Decodes `RsiRealmConfig.hash_algo` (`RsiHashAlgorithm`).
pub const fn hash_algorithm(code: u8) -> Option<HashAlgorithm> {
    match code {
        rsi::HASH_SHA_256 => Some(HashAlgorithm::Sha256),
        rsi::HASH_SHA_512 => Some(HashAlgorithm::Sha512),
        rsi::HASH_SHA_384 => Some(HashAlgorithm::Sha384),
        _ => None,
    }
}

/// Builds the register file of a call: `fid` in x0, `args` from x1, zeros after them.
///
/// Panics if there are more than 17 arguments.
fn regs(fid: u32, args: &[u64]) -> Regs {
    assert!(args.len() < NUM_REGS, "SMCCC passes at most 17 arguments");
    let mut r = [0u64; NUM_REGS];
    r[0] = u64::from(fid);
    r[1..=args.len()].copy_from_slice(args);
    r
}

/// An RSI (and PSCI) client over a [`Conduit`].
#[derive(Debug)]
pub struct Rsi<C> {
    conduit: C,
}

impl<C> Rsi<C> {
    /// A client making its calls through `conduit`.
    pub const fn new(conduit: C) -> Self {
        Self { conduit }
    }

    /// The conduit.
    pub fn conduit(&mut self) -> &mut C {
        &mut self.conduit
    }

    /// Returns the conduit.
    pub fn into_inner(self) -> C {
        self.conduit
    }
}

impl<C: Conduit> Rsi<C> {
    /// Makes a raw call: `fid` in x0, `args` in x1.. (the rest zero); returns x0..x17.
    ///
    /// Memory an RMM reads or writes because of these arguments is the caller's business:
    /// use the typed calls to pass memory. Panics if there are more than 17 arguments.
    pub fn call(&mut self, fid: u32, args: &[u64]) -> Regs {
        self.conduit.smc(regs(fid, args))
    }

    /// The IPA of `shared` followed by a call that shares it with the callee.
    fn call_shared(&mut self, fid: u32, args: &[u64], shared: &mut [u8]) -> Regs {
        self.conduit.smc_shared(regs(fid, args), shared)
    }

    fn ipa_of<T>(&self, object: &mut T) -> u64 {
        self.conduit.ipa_of(core::ptr::from_mut(object) as usize)
    }

    /// `RSI_VERSION`: asks for interface revision `requested` (`major << 16 | minor`).
    ///
    /// `Ok` when the RMM supports it (x1 = `requested`, x2 = its highest revision);
    /// [`VersionError::Unsupported`] with the RMM's revisions when it does not.
    pub fn version(&mut self, requested: u64) -> core::result::Result<Revisions, VersionError> {
        let r = self.call(rsi::VERSION, &[requested]);
        let revs = Revisions {
            lower: r[1],
            higher: r[2],
        };
        match check(r[0]) {
            Ok(()) | Err(Error::Status(RsiStatus::ErrorInput)) if revs.lower > revs.higher => {
                Err(VersionError::Call(Error::BadResult))
            }
            Ok(()) => Ok(revs),
            Err(Error::Status(RsiStatus::ErrorInput)) => Err(VersionError::Unsupported(revs)),
            Err(e) => Err(VersionError::Call(e)),
        }
    }

    /// Negotiates a revision: asks for `wanted` and, if the RMM's highest revision is an
    /// older minor revision of the same major, asks for that one. Returns the revision agreed.
    pub fn negotiate(&mut self, wanted: u64) -> core::result::Result<u64, VersionError> {
        match self.version(wanted) {
            Ok(_) => Ok(wanted),
            Err(VersionError::Unsupported(r))
                if r.higher >> 16 == wanted >> 16 && r.higher < wanted =>
            {
                self.version(r.higher).map(|_| r.higher)
            }
            Err(e) => Err(e),
        }
    }

    /// `RSI_FEATURES`: reads feature register `index` (0 is `RsiFeatureRegister0`; the RMM
    /// answers 0 for indices it does not define).
    pub fn features(&mut self, index: u64) -> Result<u64> {
        let r = self.call(rsi::FEATURES, &[index]);
        check(r[0]).map(|()| r[1])
    }

    /// `RSI_REALM_CONFIG`: asks the RMM to fill `out` (4 KiB-aligned by its type).
    pub fn realm_config(&mut self, out: &mut RsiRealmConfig) -> Result<()> {
        let ipa = self.ipa_of(out);
        let r = self.call_shared(rsi::REALM_CONFIG, &[ipa], out.as_mut_bytes());
        check(r[0])
    }

    /// `RSI_MEASUREMENT_READ`: measurement `index` (0 = RIM, 1..=4 = REMs), as the 64 bytes
    /// of x1..x8 (a shorter hash is followed by zeros).
    pub fn measurement_read(&mut self, index: u64) -> Result<MeasurementValue> {
        let r = self.call(rsi::MEASUREMENT_READ, &[index]);
        check(r[0])?;
        Ok(MeasurementValue::from_regs(&[
            r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8],
        ]))
    }

    /// `RSI_MEASUREMENT_EXTEND`: extends REM `index` (1..=4) with `value` (at most 64 bytes,
    /// passed little-endian in x3..x10 with x2 = its length).
    pub fn measurement_extend(&mut self, index: u64, value: &[u8]) -> Result<()> {
        if value.len() > MEASUREMENT_SIZE {
            return Err(Error::InvalidArgument);
        }
        let mut args = [0u64; 10];
        args[0] = index;
        args[1] = value.len() as u64;
        for (i, b) in value.iter().enumerate() {
            args[2 + i / 8] |= u64::from(*b) << (8 * (i % 8));
        }
        let r = self.call(rsi::MEASUREMENT_EXTEND, &args);
        check(r[0])
    }

    /// `RSI_ATTESTATION_TOKEN_INIT`: starts a token for `challenge` (x1..x8). Returns x1, an
    /// upper bound on the token's size in bytes.
    pub fn attestation_token_init(&mut self, challenge: &[u8; CHALLENGE_SIZE]) -> Result<u64> {
        let mut args = [0u64; 8];
        for (a, chunk) in args.iter_mut().zip(challenge.chunks_exact(8)) {
            *a = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        }
        let r = self.call(rsi::ATTESTATION_TOKEN_INIT, &args);
        check(r[0]).map(|()| r[1])
    }

    /// `RSI_ATTESTATION_TOKEN_CONTINUE`: asks for up to `size` more bytes of the token at
    /// `offset` in `granule`.
    pub fn attestation_token_continue(
        &mut self,
        granule: &mut Granule,
        offset: usize,
        size: usize,
    ) -> Result<TokenStep> {
        let g = GRANULE_SIZE as usize;
        if offset >= g || size > g - offset {
            return Err(Error::InvalidArgument);
        }
        let ipa = self.ipa_of(granule);
        let r = self.call_shared(
            rsi::ATTESTATION_TOKEN_CONTINUE,
            &[ipa, offset as u64, size as u64],
            granule.as_mut_bytes(),
        );
        let done = match RsiStatus::from_reg(r[0]) {
            Some(RsiStatus::Success) => true,
            Some(RsiStatus::Incomplete) => false,
            Some(s) => return Err(Error::Status(s)),
            None => return Err(Error::NotStatus(r[0])),
        };
        if r[1] > size as u64 {
            return Err(Error::BadResult);
        }
        let written = r[1] as usize;
        Ok(if done {
            TokenStep::Done { written }
        } else {
            TokenStep::Incomplete { written }
        })
    }

    /// Gets a whole attestation token for `challenge` into `buf` (granule after granule) and
    /// returns its length. Repeats `RSI_ATTESTATION_TOKEN_CONTINUE` for as long as the RMM
    /// answers `RSI_INCOMPLETE`.
    pub fn attestation_token(
        &mut self,
        challenge: &[u8; CHALLENGE_SIZE],
        buf: &mut [Granule],
    ) -> Result<usize> {
        self.attestation_token_init(challenge)?;
        let g = GRANULE_SIZE as usize;
        let mut total = 0;
        for granule in buf.iter_mut() {
            let mut offset = 0;
            while offset < g {
                match self.attestation_token_continue(granule, offset, g - offset)? {
                    TokenStep::Done { written } => return Ok(total + written),
                    TokenStep::Incomplete { written } => {
                        offset += written;
                        total += written;
                    }
                }
            }
        }
        Err(Error::BufferTooSmall)
    }

    /// `RSI_IPA_STATE_SET`: asks the host to change the RIPAS of `[base, top)` to `ripas`
    /// (`change_destroyed`: DESTROYED entries may change too). One call: the host may
    /// change only part of the range ([`RipasChange::next`]).
    pub fn ipa_state_set(
        &mut self,
        base: u64,
        top: u64,
        ripas: Ripas,
        change_destroyed: bool,
    ) -> Result<RipasChange> {
        let flags = if change_destroyed {
            rsi::CHANGE_DESTROYED
        } else {
            rsi::NO_CHANGE_DESTROYED
        };
        let r = self.call(rsi::IPA_STATE_SET, &[base, top, ripas as u64, flags]);
        check(r[0])?;
        let response = RsiResponse::from_reg(r[2]).ok_or(Error::BadResult)?;
        if r[1] < base || r[1] > top {
            return Err(Error::BadResult);
        }
        Ok(RipasChange {
            next: r[1],
            response,
        })
    }

    /// Changes the RIPAS of `[base, top)` with as many `RSI_IPA_STATE_SET` calls as the
    /// host needs, until the range is done or the host rejects the request.
    pub fn set_ripas(
        &mut self,
        base: u64,
        top: u64,
        ripas: Ripas,
        change_destroyed: bool,
    ) -> Result<SetRipas> {
        let mut at = base;
        loop {
            let c = self.ipa_state_set(at, top, ripas, change_destroyed)?;
            if c.response == RsiResponse::Reject {
                return Ok(SetRipas::Rejected { at: c.next });
            }
            if c.next == top {
                return Ok(SetRipas::Done);
            }
            if c.next <= at {
                return Err(Error::NoProgress { at });
            }
            at = c.next;
        }
    }

    /// `RSI_IPA_STATE_GET`: the RIPAS at `base` and how far it extends (at most to `top`).
    pub fn ipa_state_get(&mut self, base: u64, top: u64) -> Result<RipasRegion> {
        let r = self.call(rsi::IPA_STATE_GET, &[base, top]);
        check(r[0])?;
        let ripas = Ripas::from_reg(r[2]).ok_or(Error::BadResult)?;
        if r[1] <= base || r[1] > top {
            return Err(Error::BadResult);
        }
        Ok(RipasRegion { top: r[1], ripas })
    }

    /// `RSI_HOST_CALL`: passes `call.imm` and `call.gprs` to the host; when the call returns,
    /// `call.gprs` holds the host's answer.
    pub fn host_call(&mut self, call: &mut RsiHostCall) -> Result<()> {
        let ipa = self.ipa_of(call);
        let r = self.call_shared(rsi::HOST_CALL, &[ipa], call.as_mut_bytes());
        check(r[0])
    }
}
