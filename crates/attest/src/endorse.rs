//! Endorsements: the trust anchors (which CPAK signs for which platform) and the reference
//! values (what the platform and a realm must measure), in the JSON forms Veraison's
//! `ccatoken` reads (attestation.md §3.3), and those of this stack's development platform.

use crate::claims::PlatformClaims;
use crate::error::Error;
use crate::hex;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p384::ecdsa::VerifyingKey;
use serde_json::{json, Value};

/// One CPAK: the key and the platform it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustAnchor {
    /// The CPAK's public key.
    pub key: VerifyingKey,
    /// The platform's implementation ID (32 bytes).
    pub implementation_id: Vec<u8>,
    /// The platform's instance ID (33 bytes).
    pub instance_id: Vec<u8>,
}

/// A set of trust anchors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustAnchors(pub Vec<TrustAnchor>);

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a Value, Error> {
    v.get(name)
        .ok_or_else(|| Error::Endorsement(format!("no {name:?}")))
}

fn text<'a>(v: &'a Value, name: &str) -> Result<&'a str, Error> {
    field(v, name)?
        .as_str()
        .ok_or_else(|| Error::Endorsement(format!("{name:?} is not a string")))
}

fn hex_field(v: &Value, name: &str, len: Option<usize>) -> Result<Vec<u8>, Error> {
    let b = hex::decode(text(v, name)?)
        .ok_or_else(|| Error::Endorsement(format!("{name:?} is not hex")))?;
    if len.is_some_and(|n| n != b.len()) {
        return Err(Error::Endorsement(format!(
            "{name:?} has {} bytes, expected {}",
            b.len(),
            len.unwrap_or(0)
        )));
    }
    Ok(b)
}

/// The JWK of a P-384 public key.
pub fn jwk(key: &VerifyingKey) -> Value {
    let p = key.to_encoded_point(false);
    let (x, y) = (p.x().map(|x| x.to_vec()), p.y().map(|y| y.to_vec()));
    json!({
        "kty": "EC",
        "crv": "P-384",
        "x": URL_SAFE_NO_PAD.encode(x.unwrap_or_default()),
        "y": URL_SAFE_NO_PAD.encode(y.unwrap_or_default()),
    })
}

fn key_of_jwk(v: &Value) -> Result<VerifyingKey, Error> {
    if text(v, "kty")? != "EC" || text(v, "crv")? != "P-384" {
        return Err(Error::Endorsement("the key is not an EC P-384 JWK".into()));
    }
    let coord = |name| {
        URL_SAFE_NO_PAD
            .decode(text(v, name)?)
            .ok()
            .filter(|b| b.len() == 48)
            .ok_or_else(|| Error::Endorsement(format!("the JWK's {name} is not 48 bytes")))
    };
    let mut sec1 = vec![0x04];
    sec1.extend(coord("x")?);
    sec1.extend(coord("y")?);
    VerifyingKey::from_sec1_bytes(&sec1)
        .map_err(|_| Error::Endorsement("the JWK is not a point of P-384".into()))
}

impl TrustAnchors {
    /// Parses `[{"pkey": JWK, "implementation-id": hex, "instance-id": hex}, ...]`.
    pub fn from_json(json: &str) -> Result<Self, Error> {
        let v: Value = serde_json::from_str(json).map_err(|e| Error::Endorsement(e.to_string()))?;
        let list = v
            .as_array()
            .ok_or_else(|| Error::Endorsement("the trust anchors are not an array".into()))?;
        list.iter()
            .map(|a| {
                Ok(TrustAnchor {
                    key: key_of_jwk(field(a, "pkey")?)?,
                    implementation_id: hex_field(a, "implementation-id", Some(32))?,
                    instance_id: hex_field(a, "instance-id", Some(33))?,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// The JSON form.
    pub fn to_json(&self) -> String {
        let v: Vec<Value> = self
            .0
            .iter()
            .map(|a| {
                json!({
                    "pkey": jwk(&a.key),
                    "implementation-id": hex::encode(&a.implementation_id),
                    "instance-id": hex::encode(&a.instance_id),
                })
            })
            .collect();
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }

    /// The anchor for a platform instance ID.
    pub fn lookup(&self, instance_id: &[u8]) -> Option<&TrustAnchor> {
        self.0.iter().find(|a| a.instance_id == instance_id)
    }
}

/// A software component's reference value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwReference {
    /// The measurement.
    pub measurement: Vec<u8>,
    /// The signer ID.
    pub signer_id: Vec<u8>,
    /// The version, compared if set.
    pub version: Option<String>,
    /// The type, compared if set.
    pub kind: Option<String>,
}

/// A platform's reference values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformReference {
    /// The implementation ID it applies to.
    pub implementation_id: Vec<u8>,
    /// The configuration claim.
    pub config: Vec<u8>,
    /// The software components, in token order.
    pub sw_components: Vec<SwReference>,
}

/// A realm's reference values (`ccatoken`'s form; the RPV and the RAK hash algorithm are
/// written but, as `ccatoken` does, not compared by [`ReferenceValues::appraise_platform`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealmReference {
    /// The RIM.
    pub rim: Vec<u8>,
    /// The RAK hash algorithm.
    pub rak_hash_algo: String,
    /// REM 0..3.
    pub rems: [Vec<u8>; 4],
    /// The RPV.
    pub rpv: Vec<u8>,
}

/// Reference values of platforms and realms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReferenceValues {
    /// Platforms.
    pub platform: Vec<PlatformReference>,
    /// Realms.
    pub realm: Vec<RealmReference>,
}

impl ReferenceValues {
    /// Parses `{"platform": [...], "realm": [...]}`.
    pub fn from_json(json: &str) -> Result<Self, Error> {
        let v: Value = serde_json::from_str(json).map_err(|e| Error::Endorsement(e.to_string()))?;
        if !v.is_object() {
            return Err(Error::Endorsement(
                "the reference values are not an object".into(),
            ));
        }
        let arr = |name: &str| -> Result<Vec<Value>, Error> {
            match v.get(name) {
                None => Ok(Vec::new()),
                Some(a) => a
                    .as_array()
                    .cloned()
                    .ok_or_else(|| Error::Endorsement(format!("{name:?} is not an array"))),
            }
        };
        let platform = arr("platform")?
            .iter()
            .map(|p| {
                let sw = field(p, "sw-components")?
                    .as_array()
                    .ok_or_else(|| Error::Endorsement("\"sw-components\" is not an array".into()))?
                    .iter()
                    .map(|s| {
                        let opt = |n: &str| s.get(n).and_then(Value::as_str).map(str::to_string);
                        Ok(SwReference {
                            measurement: hex_field(s, "measurement-value", None)?,
                            signer_id: hex_field(s, "signer-id", None)?,
                            version: opt("version"),
                            kind: opt("component-type"),
                        })
                    })
                    .collect::<Result<Vec<_>, Error>>()?;
                Ok(PlatformReference {
                    implementation_id: hex_field(p, "implementation-id", Some(32))?,
                    config: hex_field(p, "platform-configuration", None)?,
                    sw_components: sw,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let realm = arr("realm")?
            .iter()
            .map(|r| {
                let list = field(r, "extensible-measurements")?
                    .as_array()
                    .filter(|a| a.len() == 4)
                    .ok_or_else(|| Error::Endorsement("four extensible measurements".into()))?;
                let mut rems: [Vec<u8>; 4] = Default::default();
                for (i, m) in list.iter().enumerate() {
                    rems[i] = m
                        .as_str()
                        .and_then(hex::decode)
                        .ok_or_else(|| Error::Endorsement("a REM is not hex".into()))?;
                }
                Ok(RealmReference {
                    rim: hex_field(r, "initial-measurement", None)?,
                    rak_hash_algo: text(r, "rak-hash-algorithm")?.to_string(),
                    rems,
                    rpv: hex_field(r, "personalization-value", Some(64))?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Self { platform, realm })
    }

    /// The JSON form.
    pub fn to_json(&self) -> String {
        let platform: Vec<Value> = self
            .platform
            .iter()
            .map(|p| {
                let sw: Vec<Value> = p
                    .sw_components
                    .iter()
                    .map(|s| {
                        let mut o = json!({
                            "measurement-value": hex::encode(&s.measurement),
                            "signer-id": hex::encode(&s.signer_id),
                        });
                        if let Some(v) = &s.version {
                            o["version"] = json!(v);
                        }
                        if let Some(k) = &s.kind {
                            o["component-type"] = json!(k);
                        }
                        o
                    })
                    .collect();
                json!({
                    "implementation-id": hex::encode(&p.implementation_id),
                    "platform-configuration": hex::encode(&p.config),
                    "sw-components": sw,
                })
            })
            .collect();
        let realm: Vec<Value> = self
            .realm
            .iter()
            .map(|r| {
                json!({
                    "initial-measurement": hex::encode(&r.rim),
                    "rak-hash-algorithm": r.rak_hash_algo,
                    "extensible-measurements": r.rems.iter().map(|m| hex::encode(m)).collect::<Vec<_>>(),
                    "personalization-value": hex::encode(&r.rpv),
                })
            })
            .collect();
        serde_json::to_string_pretty(&json!({"platform": platform, "realm": realm}))
            .unwrap_or_default()
    }

    /// Compares a realm's claims with the realm reference values, if there are any, as
    /// `ccatoken` appraises: the entry with the token's RIM, whose four REMs must be equal.
    pub fn appraise_realm(&self, r: &crate::claims::RealmClaims) -> Result<(), Error> {
        if self.realm.is_empty() {
            return Ok(());
        }
        let e = self
            .realm
            .iter()
            .find(|e| e.rim == r.rim)
            .ok_or_else(|| Error::Mismatch {
                what: "realm reference values",
                expected: "an entry for the RIM".into(),
                found: hex::encode(&r.rim),
            })?;
        for (want, got) in e.rems.iter().zip(&r.rems) {
            if want != got {
                return Err(Error::Mismatch {
                    what: "REMs of the realm reference values",
                    expected: hex::encode(want),
                    found: hex::encode(got),
                });
            }
        }
        Ok(())
    }

    /// Compares a platform's claims with the reference values for its implementation ID:
    /// the configuration must be equal and the software components equal one by one, in
    /// order (type and version only where the reference sets them), as `ccatoken` appraises.
    pub fn appraise_platform(&self, p: &PlatformClaims) -> Result<(), Error> {
        let r = self
            .platform
            .iter()
            .find(|r| r.implementation_id == p.implementation_id)
            .ok_or_else(|| Error::Mismatch {
                what: "platform reference values",
                expected: "an entry for the implementation ID".into(),
                found: hex::encode(&p.implementation_id),
            })?;
        if r.config != p.config {
            return Err(Error::Mismatch {
                what: "platform configuration",
                expected: hex::encode(&r.config),
                found: hex::encode(&p.config),
            });
        }
        if r.sw_components.len() != p.sw_components.len() {
            return Err(Error::Mismatch {
                what: "number of software components",
                expected: r.sw_components.len().to_string(),
                found: p.sw_components.len().to_string(),
            });
        }
        for (want, got) in r.sw_components.iter().zip(&p.sw_components) {
            let name = got.kind.clone().unwrap_or_else(|| "?".into());
            let kind_ok = want.kind.is_none() || want.kind == got.kind;
            let version_ok = want.version.is_none() || want.version == got.version;
            if !kind_ok || want.measurement != got.measurement {
                return Err(Error::Mismatch {
                    what: "software component measurement",
                    expected: format!(
                        "{} {}",
                        want.kind.as_deref().unwrap_or("?"),
                        hex::encode(&want.measurement)
                    ),
                    found: format!("{name} {}", hex::encode(&got.measurement)),
                });
            }
            if want.signer_id != got.signer_id || !version_ok {
                return Err(Error::Mismatch {
                    what: "software component signer ID or version",
                    expected: format!("{name} {:?}", want.version),
                    found: format!("{name} {:?}", got.version),
                });
            }
        }
        Ok(())
    }
}

/// This stack's development platform, as its build made it.
#[derive(Clone, Debug)]
pub struct DevPlatform {
    /// The trust anchor.
    pub anchor: TrustAnchor,
    /// The platform's reference values.
    pub reference: PlatformReference,
}

impl DevPlatform {
    /// The platform whose CPAK is `cpak` (the private scalar EL3 was built with) and whose
    /// images are `el3`, `rmm` and `host` (the raw image files).
    pub fn new(cpak: &[u8; 48], el3: &[u8], rmm: &[u8], host: &[u8]) -> Result<Self, Error> {
        use el3_core::attest as pa;
        let public = pa::public_key(cpak)
            .map_err(|_| Error::Endorsement("the CPAK is not a P-384 private scalar".into()))?;
        let key = VerifyingKey::from_sec1_bytes(&public)
            .map_err(|_| Error::Endorsement("the CPAK's public key".into()))?;
        let measurements = [
            pa::measure_image(el3),
            pa::measure_loaded(rmm, pa::LOAD_WINDOW),
            pa::measure_loaded(host, pa::LOAD_WINDOW),
        ];
        let sw = measurements
            .iter()
            .zip(pa::COMPONENT_TYPES)
            .map(|(m, kind)| SwReference {
                measurement: m.to_vec(),
                signer_id: pa::SIGNER_ID_UNSIGNED.to_vec(),
                version: Some(pa::SW_VERSION.to_string()),
                kind: Some(kind.to_string()),
            })
            .collect();
        Ok(Self {
            anchor: TrustAnchor {
                key,
                implementation_id: pa::IMPLEMENTATION_ID.to_vec(),
                instance_id: pa::instance_id(&public).to_vec(),
            },
            reference: PlatformReference {
                implementation_id: pa::IMPLEMENTATION_ID.to_vec(),
                config: pa::CONFIG.to_vec(),
                sw_components: sw,
            },
        })
    }

    /// Reads the development CPAK file (96 hex digits) and the images in `images` (`el3.bin`,
    /// `rmm.bin`, `host.bin`).
    pub fn from_build(
        cpak_file: &std::path::Path,
        images: &std::path::Path,
    ) -> Result<Self, Error> {
        let io = |p: &std::path::Path, e: std::io::Error| {
            Error::Endorsement(format!("{}: {e}", p.display()))
        };
        let text = std::fs::read_to_string(cpak_file).map_err(|e| io(cpak_file, e))?;
        let key: [u8; 48] = hex::decode(&text)
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| {
                Error::Endorsement(format!("{} must hold 96 hex digits", cpak_file.display()))
            })?;
        let read = |name: &str| {
            let p = images.join(name);
            std::fs::read(&p).map_err(|e| io(&p, e))
        };
        Self::new(
            &key,
            &read("el3.bin")?,
            &read("rmm.bin")?,
            &read("host.bin")?,
        )
    }

    /// The trust anchors.
    pub fn anchors(&self) -> TrustAnchors {
        TrustAnchors(vec![self.anchor.clone()])
    }

    /// The platform reference values (no realm).
    pub fn reference_values(&self) -> ReferenceValues {
        ReferenceValues {
            platform: vec![self.reference.clone()],
            realm: Vec::new(),
        }
    }
}
