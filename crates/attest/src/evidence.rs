//! The collection and its two COSE_Sign1 messages.

use crate::claims::{PlatformClaims, RealmClaims};
use crate::error::Error;
use ciborium::Value;
use coset::{iana, Algorithm, CoseSign1, TaggedCborSerializable};
use p384::ecdsa::signature::Verifier;
use p384::ecdsa::{Signature, VerifyingKey};

/// The largest token accepted (configfs-tsm's `outblob` limit).
pub const MAX_TOKEN: usize = 32 * 1024;
/// CBOR nesting the decoder accepts (a token needs 5).
const MAX_DEPTH: usize = 16;

/// The top level of the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// RMM 2.0: tag 907, `[263, bstr]` pairs.
    Cmw,
    /// RMM 1.0: tag 399, bare bstrs.
    Legacy,
}

/// A decoded (not yet verified) CCA token.
#[derive(Clone, Debug)]
pub struct Evidence {
    /// The top-level format.
    pub format: Format,
    /// The platform token's bytes (a tagged COSE_Sign1).
    pub platform_token: Vec<u8>,
    /// The realm token's bytes (a tagged COSE_Sign1).
    pub realm_token: Vec<u8>,
    /// The platform claims.
    pub platform: PlatformClaims,
    /// The realm claims.
    pub realm: RealmClaims,
    platform_msg: CoseSign1,
    realm_msg: CoseSign1,
}

/// Parses CBOR with a nesting limit.
pub(crate) fn parse(bytes: &[u8]) -> Result<Value, Error> {
    let v: Value = ciborium::de::from_reader_with_recursion_limit(bytes, MAX_DEPTH)
        .map_err(|e| Error::Cbor(e.to_string()))?;
    Ok(v)
}

/// A tagged COSE_Sign1 with ES384 and an attached payload.
fn cose(which: &'static str, bytes: &[u8]) -> Result<(CoseSign1, Value), Error> {
    let msg = CoseSign1::from_tagged_slice(bytes).map_err(|e| Error::Cose(which, e.to_string()))?;
    if msg.protected.header.alg != Some(Algorithm::Assigned(iana::Algorithm::ES384)) {
        return Err(Error::Cose(
            which,
            format!("the algorithm is {:?}, not ES384", msg.protected.header.alg),
        ));
    }
    if msg.unprotected.alg.is_some() {
        return Err(Error::Cose(
            which,
            "an algorithm in the unprotected header".into(),
        ));
    }
    if msg.signature.len() != 96 {
        return Err(Error::Cose(
            which,
            format!("a {}-byte signature, ES384 has 96", msg.signature.len()),
        ));
    }
    let payload = msg
        .payload
        .as_deref()
        .ok_or(Error::Cose(which, "no payload (detached)".into()))?;
    let claims = parse(payload)?;
    Ok((msg, claims))
}

/// The two entries of the collection, in `format`.
fn unwrap_entry(format: Format, key: u64, v: &Value) -> Result<Vec<u8>, Error> {
    let bad = |why: &str| Error::Collection(format!("entry {key}: {why}"));
    match format {
        Format::Legacy => v
            .as_bytes()
            .cloned()
            .ok_or_else(|| bad("not a byte string")),
        Format::Cmw => {
            let a = v.as_array().ok_or_else(|| bad("not a [type, bstr] pair"))?;
            if a.len() != 2 {
                return Err(bad("not a [type, bstr] pair"));
            }
            if a[0].as_integer() != Some(263.into()) {
                return Err(bad("the content format is not 263 (application/eat+cwt)"));
            }
            a[1].as_bytes()
                .cloned()
                .ok_or_else(|| bad("the token is not a byte string"))
        }
    }
}

impl Evidence {
    /// Decodes a token and checks its structure, its claims and their profiles.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_TOKEN {
            return Err(Error::TooLarge(bytes.len()));
        }
        let mut reader = bytes;
        let top: Value = ciborium::de::from_reader_with_recursion_limit(&mut reader, MAX_DEPTH)
            .map_err(|e| Error::Cbor(e.to_string()))?;
        if !reader.is_empty() {
            return Err(Error::Collection(format!(
                "{} bytes after the collection",
                reader.len()
            )));
        }
        let (format, inner) = match top {
            Value::Tag(907, inner) => (Format::Cmw, inner),
            Value::Tag(399, inner) => (Format::Legacy, inner),
            Value::Tag(t, _) => return Err(Error::Collection(format!("tag {t}, not 907 or 399"))),
            _ => return Err(Error::Collection("no tag".into())),
        };
        let map = inner
            .as_map()
            .ok_or_else(|| Error::Collection("not a map".into()))?;
        let mut platform = None;
        let mut realm = None;
        for (k, v) in map {
            let slot = match k.as_integer().and_then(|i| u64::try_from(i).ok()) {
                Some(44234) => &mut platform,
                Some(44241) => &mut realm,
                Some(44258) => continue, // a device token (RMM 2.0); not checked here
                _ => return Err(Error::Collection(format!("unknown entry {k:?}"))),
            };
            if slot.is_some() {
                return Err(Error::Collection(format!("entry {k:?} twice")));
            }
            *slot = Some(v);
        }
        let platform_token = unwrap_entry(
            format,
            44234,
            platform.ok_or_else(|| Error::Collection("no platform token (44234)".into()))?,
        )?;
        let realm_token = unwrap_entry(
            format,
            44241,
            realm.ok_or_else(|| Error::Collection("no realm token (44241)".into()))?,
        )?;
        let (platform_msg, pclaims) = cose("platform", &platform_token)?;
        let (realm_msg, rclaims) = cose("realm", &realm_token)?;
        Ok(Self {
            format,
            platform: PlatformClaims::decode(&pclaims)?,
            realm: RealmClaims::decode(&rclaims)?,
            platform_token,
            realm_token,
            platform_msg,
            realm_msg,
        })
    }

    /// Verifies the platform token's signature with the CPAK `key`.
    pub fn verify_platform_signature(&self, key: &VerifyingKey) -> Result<(), Error> {
        verify_with(&self.platform_msg, key, "platform")
    }

    /// Verifies the realm token's signature with the RAK it carries.
    pub fn verify_realm_signature(&self) -> Result<(), Error> {
        let key = VerifyingKey::from_sec1_bytes(&self.realm.rak_sec1)
            .map_err(|_| Error::BadKey("not a point of P-384".into()))?;
        verify_with(&self.realm_msg, &key, "realm")
    }

    /// Checks that the platform challenge is the hash of the RAK's encoding.
    pub fn check_binding(&self) -> Result<(), Error> {
        let h = self.realm.rak_hash_algo.hash(&self.realm.rak);
        if h != self.platform.challenge {
            return Err(Error::Binding {
                expected: crate::hex::encode(&h),
                found: crate::hex::encode(&self.platform.challenge),
            });
        }
        Ok(())
    }
}

fn verify_with(msg: &CoseSign1, key: &VerifyingKey, which: &'static str) -> Result<(), Error> {
    msg.verify_signature(&[], |sig, data| {
        let sig = Signature::from_slice(sig).map_err(|_| ())?;
        key.verify(data, &sig).map_err(|_| ())
    })
    .map_err(|()| Error::Signature(which))
}
