//! CCA attestation tokens on the build machine: decoding, verification, appraisal against
//! endorsements and predicted values, and the endorsements of this stack's platform.
//!
//! A verifier checks, in this order ([`verify`]):
//!
//! 1. **structure** ([`Evidence::decode`]): the collection (tag 907 with `[263, bstr]`
//!    pairs, or the legacy tag 399 with bare bstrs), two tagged COSE_Sign1 messages with
//!    ES384 in the protected header, and every claim the profiles make mandatory with its
//!    CBOR type and size ([`claims`]), the profiles themselves included;
//! 2. **the platform signature** with the CPAK the trust anchors hold for the token's
//!    platform instance ID ([`endorse::TrustAnchors`]);
//! 3. **the realm signature** with the RAK the realm token carries;
//! 4. **the binding**: the platform challenge is the hash (named by claim 44240) of the RAK's
//!    encoding;
//! 5. **appraisal** ([`appraise`]): the platform's implementation ID, configuration and
//!    software components against its reference values, and the realm's challenge, RIM,
//!    REMs, RPV and hash algorithm against the values predicted for the launch
//!    ([`Predicted`]).
//!
//! Every failure is an [`Error`] naming what failed; no input, however malformed, makes it
//! panic (a randomized test feeds it mutated tokens).

pub mod b64;
pub mod claims;
pub mod endorse;
pub mod error;
pub mod evidence;
pub mod hex;
pub mod json;

pub use claims::{HashAlgo, PlatformClaims, RealmClaims, SwComponent};
pub use endorse::{PlatformReference, ReferenceValues, TrustAnchor, TrustAnchors};
pub use error::Error;
pub use evidence::{Evidence, Format};

/// Values predicted for a realm (from its launch description) that its token must show.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Predicted {
    /// The challenge the verifier (or the realm) chose, if known.
    pub challenge: Option<Vec<u8>>,
    /// The realm's hash algorithm.
    pub hash_algo: Option<HashAlgo>,
    /// The RIM.
    pub rim: Option<Vec<u8>>,
    /// REM 0..3 (`None`: not checked).
    pub rems: Option<[Vec<u8>; 4]>,
    /// The RPV (64 bytes).
    pub rpv: Option<Vec<u8>>,
}

/// Checks the signatures and the binding of decoded evidence (steps 2-4 above).
pub fn verify(ev: &Evidence, anchors: &TrustAnchors) -> Result<(), Error> {
    let anchor = anchors
        .lookup(&ev.platform.instance_id)
        .ok_or_else(|| Error::UnknownPlatform(hex::encode(&ev.platform.instance_id)))?;
    if anchor.implementation_id != ev.platform.implementation_id {
        return Err(Error::Mismatch {
            what: "implementation ID of the trust anchor",
            expected: hex::encode(&anchor.implementation_id),
            found: hex::encode(&ev.platform.implementation_id),
        });
    }
    ev.verify_platform_signature(&anchor.key)?;
    ev.verify_realm_signature()?;
    ev.check_binding()
}

/// Compares verified evidence with the platform's reference values, the realm reference
/// values if there are any, and a realm's predicted values (step 5 above).
pub fn appraise(ev: &Evidence, refs: &ReferenceValues, predicted: &Predicted) -> Result<(), Error> {
    refs.appraise_platform(&ev.platform)?;
    refs.appraise_realm(&ev.realm)?;
    appraise_realm(ev, predicted)
}

/// Compares the realm claims of verified evidence with predicted values.
pub fn appraise_realm(ev: &Evidence, predicted: &Predicted) -> Result<(), Error> {
    let r = &ev.realm;
    let cmp = |what: &'static str, expected: &[u8], found: &[u8]| {
        if expected == found {
            Ok(())
        } else {
            Err(Error::Mismatch {
                what,
                expected: hex::encode(expected),
                found: hex::encode(found),
            })
        }
    };
    if let Some(c) = &predicted.challenge {
        let mut padded = [0u8; 64];
        if c.len() > 64 {
            return Err(Error::Usage("a challenge has at most 64 bytes".into()));
        }
        padded[..c.len()].copy_from_slice(c);
        cmp("realm challenge", &padded, &r.challenge)?;
    }
    if let Some(a) = predicted.hash_algo {
        if a != r.hash_algo {
            return Err(Error::Mismatch {
                what: "realm hash algorithm",
                expected: a.name().into(),
                found: r.hash_algo.name().into(),
            });
        }
    }
    if let Some(rim) = &predicted.rim {
        cmp("RIM", rim, &r.rim)?;
    }
    if let Some(rems) = &predicted.rems {
        const NAMES: [&str; 4] = ["REM 0", "REM 1", "REM 2", "REM 3"];
        for (i, (want, got)) in rems.iter().zip(&r.rems).enumerate() {
            cmp(NAMES[i], want, got)?;
        }
    }
    if let Some(rpv) = &predicted.rpv {
        cmp("RPV", rpv, &r.rpv)?;
    }
    Ok(())
}

/// Decodes, verifies and appraises `token`; returns the evidence.
pub fn check(
    token: &[u8],
    anchors: &TrustAnchors,
    refs: Option<&ReferenceValues>,
    predicted: &Predicted,
) -> Result<Evidence, Error> {
    let ev = Evidence::decode(token)?;
    verify(&ev, anchors)?;
    match refs {
        Some(refs) => appraise(&ev, refs, predicted)?,
        None => appraise_realm(&ev, predicted)?,
    }
    Ok(ev)
}

#[cfg(test)]
mod tests;
