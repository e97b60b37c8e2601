//! The claims of the platform and realm tokens, decoded with their type, size and profile
//! rules (attestation.md §1.4, §1.5; RMM 2.0 and the 2023 1.0 profiles).

use crate::error::Error;
use ciborium::Value;

/// The platform profile of CCA 2.0 (client ID mandatory, equal to 1).
pub const PLATFORM_PROFILE_2: &str = "tag:arm.com,2024:cca_platform#2.0.0";
/// The platform profile of CCA 1.0 (RMM 1.0-rel0).
pub const PLATFORM_PROFILE_1: &str = "tag:arm.com,2023:cca_platform#1.0.0";
/// The realm profile of RMM 2.0 (instance ID and MEC policy mandatory).
pub const REALM_PROFILE_2: &str = "tag:arm.com,2024:realm#2.0.0";
/// The realm profile of RMM 1.0.
pub const REALM_PROFILE_1: &str = "tag:arm.com,2023:realm#1.0.0";

/// A hash algorithm named by a claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlgo {
    /// `sha-256`.
    Sha256,
    /// `sha-384`.
    Sha384,
    /// `sha-512`.
    Sha512,
}

impl HashAlgo {
    /// The IANA name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha-256",
            Self::Sha384 => "sha-384",
            Self::Sha512 => "sha-512",
        }
    }

    /// Parses an IANA name.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "sha-256" => Some(Self::Sha256),
            "sha-384" => Some(Self::Sha384),
            "sha-512" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// The digest length.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// Hashes `data`.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        let algo = match self {
            Self::Sha256 => cca_abi::rmi::HashAlgorithm::Sha256,
            Self::Sha384 => cca_abi::rmi::HashAlgorithm::Sha384,
            Self::Sha512 => cca_abi::rmi::HashAlgorithm::Sha512,
        };
        cca_measure::hash(algo, data)[..self.digest_len()].to_vec()
    }
}

/// One software component of the platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwComponent {
    /// Key 1: the component type.
    pub kind: Option<String>,
    /// Key 2: its measurement (32, 48 or 64 bytes).
    pub measurement: Vec<u8>,
    /// Key 4: its version.
    pub version: Option<String>,
    /// Key 5: the signer ID (32, 48 or 64 bytes).
    pub signer_id: Vec<u8>,
    /// Key 6: the measurement's hash algorithm.
    pub hash_algo: Option<String>,
}

/// The platform token's claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformClaims {
    /// 265.
    pub profile: String,
    /// 10: the hash of the RAK (32, 48 or 64 bytes).
    pub challenge: Vec<u8>,
    /// 2394 (mandatory in 2.0, equal to 1).
    pub client_id: Option<i128>,
    /// 2396: 32 bytes.
    pub implementation_id: Vec<u8>,
    /// 256: 33 bytes, UEID type RAND (0x01).
    pub instance_id: Vec<u8>,
    /// 2401: non-empty.
    pub config: Vec<u8>,
    /// 2395.
    pub lifecycle: u16,
    /// 2399: at least one.
    pub sw_components: Vec<SwComponent>,
    /// 2400 (optional).
    pub verification_service: Option<String>,
    /// 2402.
    pub hash_algo: String,
}

/// The realm's public key as the token carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RakEncoding {
    /// A COSE_Key (RMM 1.0-rel0 and later).
    CoseKey,
    /// A raw uncompressed SEC1 point (RMM 1.0-EAC).
    Raw,
}

/// The realm token's claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealmClaims {
    /// 265.
    pub profile: String,
    /// 10: 64 bytes.
    pub challenge: Vec<u8>,
    /// 256 (mandatory in 2.0): 33 bytes, UEID type RAND.
    pub instance_id: Option<Vec<u8>>,
    /// 44235: 64 bytes.
    pub rpv: Vec<u8>,
    /// 44237: the RAK's encoding as it is hashed for the binding.
    pub rak: Vec<u8>,
    /// How [`RealmClaims::rak`] encodes the key.
    pub rak_encoding: RakEncoding,
    /// The RAK as an uncompressed SEC1 point.
    pub rak_sec1: Vec<u8>,
    /// 44236.
    pub hash_algo: HashAlgo,
    /// 44240.
    pub rak_hash_algo: HashAlgo,
    /// 44243 (mandatory in 2.0): 0 shared, 1 private.
    pub mec_policy: Option<u8>,
    /// 44238: the hash length.
    pub rim: Vec<u8>,
    /// 44239: four of the hash length.
    pub rems: [Vec<u8>; 4],
}

/// A claims map with its keys checked for duplicates.
pub(crate) struct Claims<'a> {
    token: &'static str,
    entries: Vec<(u64, &'a Value)>,
}

impl<'a> Claims<'a> {
    /// The integer-keyed entries of a map (other keys are ignored, as EAT says of unknown
    /// claims); a key twice is an error.
    pub(crate) fn new(token: &'static str, v: &'a Value) -> Result<Self, Error> {
        let map = v.as_map().ok_or(Error::BadClaim {
            token,
            key: 0,
            why: "the claims are not a map".into(),
        })?;
        let mut entries: Vec<(u64, &Value)> = Vec::with_capacity(map.len());
        for (k, v) in map {
            let Some(k) = k.as_integer().and_then(|i| u64::try_from(i).ok()) else {
                continue;
            };
            if entries.iter().any(|(e, _)| *e == k) {
                return Err(Error::DuplicateClaim(token, k));
            }
            entries.push((k, v));
        }
        Ok(Self { token, entries })
    }

    fn get(&self, key: u64) -> Option<&'a Value> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    fn bad(&self, key: u64, why: impl Into<String>) -> Error {
        Error::BadClaim {
            token: self.token,
            key,
            why: why.into(),
        }
    }

    fn require(&self, key: u64) -> Result<&'a Value, Error> {
        self.get(key).ok_or(Error::MissingClaim(self.token, key))
    }

    /// A mandatory bstr whose length is one of `lens` (any if empty).
    fn bytes(&self, key: u64, lens: &[usize]) -> Result<Vec<u8>, Error> {
        let v = self.require(key)?;
        bytes_of(v, lens).map_err(|why| self.bad(key, why))
    }

    fn text(&self, key: u64) -> Result<String, Error> {
        let v = self.require(key)?;
        v.as_text()
            .map(str::to_string)
            .ok_or_else(|| self.bad(key, "not a text string"))
    }

    fn opt_text(&self, key: u64) -> Result<Option<String>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.text(key).map(Some),
        }
    }

    fn int(&self, key: u64) -> Result<i128, Error> {
        let v = self.require(key)?;
        v.as_integer()
            .map(i128::from)
            .ok_or_else(|| self.bad(key, "not an integer"))
    }

    fn hash_algo(&self, key: u64) -> Result<HashAlgo, Error> {
        let t = self.text(key)?;
        HashAlgo::from_name(&t)
            .ok_or_else(|| self.bad(key, format!("unknown hash algorithm {t:?}")))
    }
}

fn bytes_of(v: &Value, lens: &[usize]) -> Result<Vec<u8>, String> {
    let b = v.as_bytes().ok_or("not a byte string")?;
    if !lens.is_empty() && !lens.contains(&b.len()) {
        return Err(format!("{} bytes, expected {lens:?}", b.len()));
    }
    Ok(b.clone())
}

const HASH_LENS: [usize; 3] = [32, 48, 64];
/// Largest configuration claim accepted.
const MAX_CONFIG: usize = 4096;

impl PlatformClaims {
    /// Decodes and checks the platform claims map.
    pub fn decode(v: &Value) -> Result<Self, Error> {
        let c = Claims::new("platform", v)?;
        let profile = c.text(265)?;
        let v2 = match profile.as_str() {
            PLATFORM_PROFILE_2 => true,
            PLATFORM_PROFILE_1 => false,
            other => return Err(Error::UnknownProfile("platform", other.into())),
        };
        let challenge = c.bytes(10, &HASH_LENS)?;
        let client_id = match (c.get(2394), v2) {
            (None, true) => return Err(Error::MissingClaim("platform", 2394)),
            (None, false) => None,
            (Some(_), _) => {
                let id = c.int(2394)?;
                if v2 && id != 1 {
                    return Err(c.bad(2394, format!("{id}, the 2.0 profile allows only 1")));
                }
                Some(id)
            }
        };
        let implementation_id = c.bytes(2396, &[32])?;
        let instance_id = c.bytes(256, &[33])?;
        if instance_id[0] != 0x01 {
            return Err(c.bad(256, "not a UEID of type RAND (0x01)"));
        }
        let config = c.bytes(2401, &[])?;
        if config.is_empty() || config.len() > MAX_CONFIG {
            return Err(c.bad(
                2401,
                format!("{} bytes, expected 1 to {MAX_CONFIG}", config.len()),
            ));
        }
        let lc = c.int(2395)?;
        let lifecycle =
            u16::try_from(lc).map_err(|_| c.bad(2395, format!("{lc} is not 16-bit")))?;
        let list = c
            .require(2399)?
            .as_array()
            .ok_or_else(|| c.bad(2399, "not an array"))?;
        if list.is_empty() {
            return Err(c.bad(2399, "no software component"));
        }
        let sw_components = list
            .iter()
            .enumerate()
            .map(|(i, s)| {
                SwComponent::decode(s).map_err(|why| c.bad(2399, format!("component {i}: {why}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            profile,
            challenge,
            client_id,
            implementation_id,
            instance_id,
            config,
            lifecycle,
            sw_components,
            verification_service: c.opt_text(2400)?,
            hash_algo: c.text(2402)?,
        })
    }
}

impl SwComponent {
    fn decode(v: &Value) -> Result<Self, String> {
        let map = v.as_map().ok_or("not a map")?;
        let mut seen = Vec::new();
        let mut s = Self {
            kind: None,
            measurement: Vec::new(),
            version: None,
            signer_id: Vec::new(),
            hash_algo: None,
        };
        let text = |v: &Value| v.as_text().map(str::to_string).ok_or("not a text string");
        for (k, v) in map {
            let k = k
                .as_integer()
                .and_then(|i| u64::try_from(i).ok())
                .ok_or("a key that is not a small integer")?;
            if seen.contains(&k) {
                return Err(format!("key {k} twice"));
            }
            seen.push(k);
            match k {
                1 => s.kind = Some(text(v).map_err(|e| format!("key 1: {e}"))?),
                2 => {
                    s.measurement =
                        bytes_of(v, &HASH_LENS).map_err(|e| format!("measurement: {e}"))?
                }
                4 => s.version = Some(text(v).map_err(|e| format!("key 4: {e}"))?),
                5 => {
                    s.signer_id = bytes_of(v, &HASH_LENS).map_err(|e| format!("signer ID: {e}"))?
                }
                6 => {
                    let t = text(v).map_err(|e| format!("key 6: {e}"))?;
                    if HashAlgo::from_name(&t).is_none() {
                        return Err(format!("unknown hash algorithm {t:?}"));
                    }
                    s.hash_algo = Some(t);
                }
                7 => {
                    if v.as_bool().is_none() {
                        return Err("key 7 (LFA supported) is not a bool".into());
                    }
                }
                8 => {
                    if v.as_array().is_none() {
                        return Err("key 8 (countersigners) is not an array".into());
                    }
                }
                other => return Err(format!("unknown key {other}")),
            }
        }
        if s.measurement.is_empty() {
            return Err("no measurement (key 2)".into());
        }
        if s.signer_id.is_empty() {
            return Err("no signer ID (key 5)".into());
        }
        Ok(s)
    }
}

/// The SEC1 point of a COSE_Key that must be `{1: 2 (EC2), -1: 2 (P-384), -2: x, -3: y}`.
fn cose_key_point(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let v: Value = ciborium::from_reader(bytes).map_err(|e| format!("not CBOR: {e}"))?;
    let map = v.as_map().ok_or("the COSE_Key is not a map")?;
    let mut kty = None;
    let mut crv = None;
    let mut x = None;
    let mut y = None;
    for (k, v) in map {
        let k = k
            .as_integer()
            .map(i128::from)
            .ok_or("a COSE_Key label that is not an integer")?;
        let slot = match k {
            1 => &mut kty,
            -1 => &mut crv,
            -2 => &mut x,
            -3 => &mut y,
            _ => continue,
        };
        if slot.is_some() {
            return Err(format!("COSE_Key label {k} twice"));
        }
        *slot = Some(v);
    }
    let int = |v: Option<&Value>| v.and_then(Value::as_integer).map(i128::from);
    if int(kty) != Some(2) {
        return Err("the COSE_Key is not EC2 (kty 2)".into());
    }
    if int(crv) != Some(2) {
        return Err("the COSE_Key's curve is not P-384 (crv 2)".into());
    }
    let coord = |v: Option<&Value>, name: &str| {
        v.and_then(Value::as_bytes)
            .filter(|b| b.len() == 48)
            .cloned()
            .ok_or(format!("the COSE_Key's {name} is not 48 bytes"))
    };
    let mut p = vec![0x04];
    p.extend(coord(x, "x")?);
    p.extend(coord(y, "y")?);
    Ok(p)
}

impl RealmClaims {
    /// Decodes and checks the realm claims map.
    pub fn decode(v: &Value) -> Result<Self, Error> {
        let c = Claims::new("realm", v)?;
        let profile = c.text(265)?;
        let v2 = match profile.as_str() {
            REALM_PROFILE_2 => true,
            REALM_PROFILE_1 => false,
            other => return Err(Error::UnknownProfile("realm", other.into())),
        };
        let challenge = c.bytes(10, &[64])?;
        let instance_id = match (c.get(256), v2) {
            (None, true) => return Err(Error::MissingClaim("realm", 256)),
            (None, false) => None,
            (Some(_), _) => {
                let id = c.bytes(256, &[33])?;
                if id[0] != 0x01 {
                    return Err(c.bad(256, "not a UEID of type RAND (0x01)"));
                }
                Some(id)
            }
        };
        let rpv = c.bytes(44235, &[64])?;
        let rak = c.bytes(44237, &[])?;
        let (rak_encoding, rak_sec1) = if rak.len() == 97 && rak[0] == 0x04 {
            (RakEncoding::Raw, rak.clone())
        } else {
            let p = cose_key_point(&rak).map_err(Error::BadKey)?;
            (RakEncoding::CoseKey, p)
        };
        let hash_algo = c.hash_algo(44236)?;
        let rak_hash_algo = c.hash_algo(44240)?;
        let mec_policy = match (c.get(44243), v2) {
            (None, true) => return Err(Error::MissingClaim("realm", 44243)),
            (None, false) => None,
            (Some(Value::Integer(_)), _) => {
                let m = c.int(44243)?;
                match m {
                    0 | 1 => Some(m as u8),
                    other => return Err(c.bad(44243, format!("{other}, expected 0 or 1"))),
                }
            }
            // RMM 1.1 alpha wrote text; the 1.0 profile does not define the claim.
            (Some(_), false) => None,
            (Some(_), true) => return Err(c.bad(44243, "not an integer")),
        };
        let len = hash_algo.digest_len();
        let rim = c.bytes(44238, &[len])?;
        let list = c
            .require(44239)?
            .as_array()
            .ok_or_else(|| c.bad(44239, "not an array"))?;
        if list.len() != 4 {
            return Err(c.bad(44239, format!("{} REMs, expected 4", list.len())));
        }
        let mut rems: [Vec<u8>; 4] = Default::default();
        for (i, v) in list.iter().enumerate() {
            rems[i] = bytes_of(v, &[len]).map_err(|why| c.bad(44239, format!("REM {i}: {why}")))?;
        }
        Ok(Self {
            profile,
            challenge,
            instance_id,
            rpv,
            rak,
            rak_encoding,
            rak_sec1,
            hash_algo,
            rak_hash_algo,
            mec_policy,
            rim,
            rems,
        })
    }
}
