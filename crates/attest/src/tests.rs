//! Tests against tokens made here: good ones (the RMM core's and EL3 core's own encoders,
//! signed with test keys) and corrupted ones, one per failure condition; and randomized
//! mutations that must never make the verifier panic.

use crate::claims::{HashAlgo, RakEncoding};
use crate::endorse::{DevPlatform, ReferenceValues, TrustAnchors};
use crate::{appraise, check, verify, Error, Evidence, Format, Predicted};
use ciborium::Value;
use coset::{iana, CborSerializable, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable};
use p384::ecdsa::signature::Signer;
use p384::ecdsa::{Signature, SigningKey};
use proptest::prelude::*;
use rmm_core::token::{self as rt, RealmClaims as Rc, TokenFormat};

const CPAK: [u8; 48] = [0x42; 48];
const RAK: [u8; 48] = [0x17; 48];
const EL3_IMG: &[u8] = b"el3 image\0\0";
const RMM_IMG: &[u8] = b"rmm image";
const HOST_IMG: &[u8] = b"host image\0";

fn platform() -> DevPlatform {
    DevPlatform::new(&CPAK, EL3_IMG, RMM_IMG, HOST_IMG).unwrap()
}

fn rak_cose() -> [u8; 107] {
    let p = el3_core::attest::public_key(&RAK).unwrap();
    el3_core::attest::cose_key(&p)
}

/// What a test token is made of; each field can be spoilt.
#[derive(Clone)]
struct Parts {
    platform: Vec<(Value, Value)>,
    realm: Vec<(Value, Value)>,
    cpak: [u8; 48],
    rak: [u8; 48],
    format: TokenFormat,
}

fn decode_map(bytes: &[u8]) -> Vec<(Value, Value)> {
    let v: Value = ciborium::from_reader(bytes).unwrap();
    v.into_map().unwrap()
}

fn measurements() -> [el3_core::attest::Component; 3] {
    let m = |img: &[u8], kind| el3_core::attest::Component {
        kind,
        measurement: el3_core::attest::measure_image(img),
    };
    [m(EL3_IMG, "BL31"), m(RMM_IMG, "RMM"), m(HOST_IMG, "BL33")]
}

impl Parts {
    /// A good token's parts: a SHA-256 realm.
    fn good() -> Self {
        Self::with_algo(cca_abi::rmi::HashAlgorithm::Sha256)
    }

    fn with_algo(algo: cca_abi::rmi::HashAlgorithm) -> Self {
        let cose = rak_cose();
        let rims = [[0x11u8; 64], [0x21; 64], [0x22; 64], [0x23; 64], [0x24; 64]];
        let rems = [rims[1], rims[2], rims[3], rims[4]];
        let c = Rc {
            challenge: &[0xC1; 64],
            instance_id: &{
                let mut id = [0x55; 33];
                id[0] = 1;
                id
            },
            rpv: &[0x7B; 64],
            rak: &cose,
            algo,
            rim: &rims[0],
            rems: &rems,
            mec_policy: 0,
        };
        let mut buf = [0u8; 1024];
        let n = rt::encode_realm_claims(&c, &mut buf).unwrap();
        let realm = decode_map(&buf[..n]);
        let hash = HashAlgo::Sha256.hash(&cose);
        let id = el3_core::attest::instance_id(&el3_core::attest::public_key(&CPAK).unwrap());
        let mut pbuf = [0u8; 2048];
        let n = el3_core::attest::encode_platform_claims(&hash, &id, &measurements(), &mut pbuf)
            .unwrap();
        Self {
            platform: decode_map(&pbuf[..n]),
            realm,
            cpak: CPAK,
            rak: RAK,
            format: TokenFormat::Cmw,
        }
    }

    fn set(map: &mut Vec<(Value, Value)>, key: u64, v: Value) {
        match map
            .iter_mut()
            .find(|(k, _)| k.as_integer() == Some(key.into()))
        {
            Some(e) => e.1 = v,
            None => map.push((Value::Integer(key.into()), v)),
        }
    }

    fn remove(map: &mut Vec<(Value, Value)>, key: u64) {
        map.retain(|(k, _)| k.as_integer() != Some(key.into()));
    }

    fn sign(key: &[u8; 48], claims: &[(Value, Value)]) -> Vec<u8> {
        let mut payload = Vec::new();
        ciborium::into_writer(&Value::Map(claims.to_vec()), &mut payload).unwrap();
        let sk = SigningKey::from_slice(key).unwrap();
        CoseSign1Builder::new()
            .protected(
                HeaderBuilder::new()
                    .algorithm(iana::Algorithm::ES384)
                    .build(),
            )
            .payload(payload)
            .create_signature(&[], |data| {
                let s: Signature = sk.sign(data);
                s.to_bytes().to_vec()
            })
            .build()
            .to_tagged_vec()
            .unwrap()
    }

    fn tokens(&self) -> (Vec<u8>, Vec<u8>) {
        (
            Self::sign(&self.cpak, &self.platform),
            Self::sign(&self.rak, &self.realm),
        )
    }

    fn bytes(&self) -> Vec<u8> {
        let (p, r) = self.tokens();
        collect(self.format, &p, &r)
    }
}

fn collect(format: TokenFormat, p: &[u8], r: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 8192];
    let n = rt::encode_collection(format, p, r, &mut out).unwrap();
    out.truncate(n);
    out
}

fn anchors() -> TrustAnchors {
    platform().anchors()
}

fn refs() -> ReferenceValues {
    platform().reference_values()
}

fn run(token: &[u8]) -> Result<Evidence, Error> {
    check(token, &anchors(), Some(&refs()), &Predicted::default())
}

#[test]
fn good_tokens_of_both_formats_and_every_algorithm() {
    for format in [TokenFormat::Cmw, TokenFormat::Legacy] {
        for algo in [
            cca_abi::rmi::HashAlgorithm::Sha256,
            cca_abi::rmi::HashAlgorithm::Sha384,
            cca_abi::rmi::HashAlgorithm::Sha512,
        ] {
            let mut p = Parts::with_algo(algo);
            p.format = format;
            let ev = run(&p.bytes()).unwrap();
            assert_eq!(
                ev.format,
                match format {
                    TokenFormat::Cmw => Format::Cmw,
                    TokenFormat::Legacy => Format::Legacy,
                }
            );
            let len = cca_measure::hash_len(algo);
            assert_eq!(ev.realm.rim, vec![0x11; len]);
            assert_eq!(ev.realm.rems[3], vec![0x24; len]);
            assert_eq!(ev.realm.rak_encoding, RakEncoding::CoseKey);
            assert_eq!(ev.realm.mec_policy, Some(0));
            assert_eq!(ev.platform.client_id, Some(1));
            assert_eq!(ev.platform.sw_components.len(), 3);
        }
    }
}

#[test]
fn predicted_values_are_compared() {
    let ev = run(&Parts::good().bytes()).unwrap();
    let good = Predicted {
        challenge: Some(vec![0xC1; 64]),
        hash_algo: Some(HashAlgo::Sha256),
        rim: Some(vec![0x11; 32]),
        rems: Some([
            vec![0x21; 32],
            vec![0x22; 32],
            vec![0x23; 32],
            vec![0x24; 32],
        ]),
        rpv: Some(vec![0x7B; 64]),
    };
    appraise(&ev, &refs(), &good).unwrap();
    let wrong = |f: &dyn Fn(&mut Predicted), what: &str| {
        let mut p = good.clone();
        f(&mut p);
        match appraise(&ev, &refs(), &p) {
            Err(Error::Mismatch { what: w, .. }) => assert_eq!(w, what),
            other => panic!("{what}: {other:?}"),
        }
    };
    wrong(&|p| p.challenge = Some(vec![0xC2; 64]), "realm challenge");
    wrong(&|p| p.challenge = Some(vec![0xC1; 32]), "realm challenge");
    wrong(
        &|p| p.hash_algo = Some(HashAlgo::Sha512),
        "realm hash algorithm",
    );
    wrong(&|p| p.rim = Some(vec![0x12; 32]), "RIM");
    wrong(&|p| p.rems.as_mut().unwrap()[2] = vec![0; 32], "REM 2");
    wrong(&|p| p.rpv = Some(vec![0; 64]), "RPV");
    // A short challenge is zero-padded, as Linux pads inblob.
    let mut parts = Parts::good();
    let mut ch = vec![0xC1u8; 32];
    ch.resize(64, 0);
    Parts::set(&mut parts.realm, 10, Value::Bytes(ch));
    let ev = run(&parts.bytes()).unwrap();
    let p = Predicted {
        challenge: Some(vec![0xC1; 32]),
        ..Predicted::default()
    };
    appraise(&ev, &refs(), &p).unwrap();
}

#[test]
fn platform_reference_values_are_compared() {
    let ev = run(&Parts::good().bytes()).unwrap();
    let other = DevPlatform::new(&CPAK, EL3_IMG, b"another rmm", HOST_IMG).unwrap();
    match appraise(&ev, &other.reference_values(), &Predicted::default()) {
        Err(Error::Mismatch { what, .. }) => assert_eq!(what, "software component measurement"),
        r => panic!("{r:?}"),
    }
    let mut refs = refs();
    refs.platform[0].config = vec![1];
    assert!(matches!(
        appraise(&ev, &refs, &Predicted::default()),
        Err(Error::Mismatch {
            what: "platform configuration",
            ..
        })
    ));
    let mut refs2 = self::refs();
    refs2.platform[0].sw_components.pop();
    assert!(matches!(
        appraise(&ev, &refs2, &Predicted::default()),
        Err(Error::Mismatch {
            what: "number of software components",
            ..
        })
    ));
    let mut refs3 = self::refs();
    refs3.platform[0].sw_components[1].version = Some("9.9".into());
    assert!(matches!(
        appraise(&ev, &refs3, &Predicted::default()),
        Err(Error::Mismatch {
            what: "software component signer ID or version",
            ..
        })
    ));
    let mut refs4 = self::refs();
    refs4.platform[0].implementation_id = vec![0; 32];
    assert!(appraise(&ev, &refs4, &Predicted::default()).is_err());
}

#[test]
fn realm_reference_values_are_found_by_rim() {
    let ev = run(&Parts::good().bytes()).unwrap();
    let entry = |rim: Vec<u8>, rem3: u8| crate::endorse::RealmReference {
        rim,
        rak_hash_algo: "sha-256".into(),
        rems: [
            vec![0x21; 32],
            vec![0x22; 32],
            vec![0x23; 32],
            vec![rem3; 32],
        ],
        rpv: vec![0; 64],
    };
    let mut r = refs();
    r.realm.push(entry(vec![0x99; 32], 0x24));
    r.realm.push(entry(vec![0x11; 32], 0x24));
    appraise(&ev, &r, &Predicted::default()).unwrap();
    r.realm.pop();
    assert!(matches!(
        appraise(&ev, &r, &Predicted::default()),
        Err(Error::Mismatch {
            what: "realm reference values",
            ..
        })
    ));
    r.realm.push(entry(vec![0x11; 32], 0x25));
    assert!(matches!(
        appraise(&ev, &r, &Predicted::default()),
        Err(Error::Mismatch {
            what: "REMs of the realm reference values",
            ..
        })
    ));
}

#[test]
fn flipped_signature_bytes() {
    let p = Parts::good();
    let (plat, realm) = p.tokens();
    for (which, flip_platform) in [("platform", true), ("realm", false)] {
        let (mut a, mut b) = (plat.clone(), realm.clone());
        let t = if flip_platform { &mut a } else { &mut b };
        let last = t.len() - 1;
        t[last] ^= 0x01;
        let tok = collect(TokenFormat::Cmw, &a, &b);
        assert_eq!(run(&tok).unwrap_err(), Error::Signature(which));
    }
    // Signed by another key than the trust anchor's.
    let mut q = Parts::good();
    q.cpak = [0x43; 48];
    assert_eq!(run(&q.bytes()).unwrap_err(), Error::Signature("platform"));
    // A realm token signed by another key than the RAK it carries.
    let mut q = Parts::good();
    q.rak = [0x18; 48];
    assert_eq!(run(&q.bytes()).unwrap_err(), Error::Signature("realm"));
}

#[test]
fn wrong_binding() {
    let mut p = Parts::good();
    Parts::set(&mut p.platform, 10, Value::Bytes(vec![0; 32]));
    assert!(matches!(run(&p.bytes()), Err(Error::Binding { .. })));
    // The right hash under another algorithm name.
    let mut p = Parts::good();
    Parts::set(&mut p.realm, 44240, Value::Text("sha-512".into()));
    assert!(matches!(run(&p.bytes()), Err(Error::Binding { .. })));
}

#[test]
fn wrong_profiles() {
    let mut p = Parts::good();
    Parts::set(
        &mut p.platform,
        265,
        Value::Text("http://arm.com/CCA-SSD/1.0.0".into()),
    );
    assert!(matches!(
        run(&p.bytes()),
        Err(Error::UnknownProfile("platform", _))
    ));
    let mut p = Parts::good();
    Parts::set(
        &mut p.realm,
        265,
        Value::Text("tag:arm.com,2024:realm#3.0.0".into()),
    );
    assert!(matches!(
        run(&p.bytes()),
        Err(Error::UnknownProfile("realm", _))
    ));
    let mut p = Parts::good();
    Parts::remove(&mut p.realm, 265);
    assert_eq!(
        run(&p.bytes()).unwrap_err(),
        Error::MissingClaim("realm", 265)
    );
    // 1.0 profiles: the 2.0 mandatory claims may be absent.
    let mut p = Parts::good();
    Parts::set(
        &mut p.realm,
        265,
        Value::Text(crate::claims::REALM_PROFILE_1.into()),
    );
    Parts::remove(&mut p.realm, 256);
    Parts::remove(&mut p.realm, 44243);
    Parts::set(
        &mut p.platform,
        265,
        Value::Text(crate::claims::PLATFORM_PROFILE_1.into()),
    );
    Parts::remove(&mut p.platform, 2394);
    let ev = run(&p.bytes()).unwrap();
    assert_eq!((ev.realm.instance_id, ev.realm.mec_policy), (None, None));
}

#[test]
fn every_mandatory_claim_has_its_type_and_size() {
    let bytes = |n| Value::Bytes(vec![1; n]);
    let text = |s: &str| Value::Text(s.into());
    let int = |i: i64| Value::Integer(i.into());
    let realm_cases: Vec<(u64, Option<Value>)> = vec![
        (10, None),
        (10, Some(bytes(65))),
        (10, Some(bytes(32))),
        (10, Some(text("challenge"))),
        (256, None),
        (256, Some(bytes(34))),
        (256, Some(Value::Bytes(vec![2; 33]))),
        (44235, None),
        (44235, Some(bytes(63))),
        (44237, None),
        (44237, Some(bytes(107))),
        (44237, Some(int(5))),
        (44236, None),
        (44236, Some(text("md5"))),
        (44236, Some(int(0))),
        (44240, None),
        (44240, Some(text("sha-1"))),
        (44243, None),
        (44243, Some(int(2))),
        (44243, Some(text("shared"))),
        (44238, None),
        (44238, Some(bytes(48))),
        (44239, None),
        (44239, Some(Value::Array(vec![bytes(32); 3]))),
        (
            44239,
            Some(Value::Array(vec![
                bytes(32),
                bytes(32),
                bytes(32),
                bytes(33),
            ])),
        ),
        (44239, Some(bytes(128))),
    ];
    for (key, v) in realm_cases {
        let mut p = Parts::good();
        match v.clone() {
            None => Parts::remove(&mut p.realm, key),
            Some(v) => Parts::set(&mut p.realm, key, v),
        }
        let e = run(&p.bytes()).unwrap_err();
        assert!(
            matches!(e, Error::MissingClaim("realm", k) | Error::BadClaim { token: "realm", key: k, .. } if k == key)
                || matches!(e, Error::BadKey(_)),
            "realm {key} {v:?}: {e:?}"
        );
    }
    let platform_cases: Vec<(u64, Option<Value>)> = vec![
        (10, None),
        (10, Some(bytes(33))),
        (2394, None),
        (2394, Some(int(2))),
        (2394, Some(text("1"))),
        (2396, None),
        (2396, Some(bytes(31))),
        (256, None),
        (256, Some(bytes(32))),
        (256, Some(Value::Bytes(vec![2; 33]))),
        (2401, None),
        (2401, Some(bytes(0))),
        (2401, Some(bytes(5000))),
        (2395, None),
        (2395, Some(int(0x1_0000))),
        (2395, Some(int(-1))),
        (2399, None),
        (2399, Some(Value::Array(vec![]))),
        (
            2399,
            Some(Value::Array(vec![Value::Map(vec![(int(1), text("x"))])])),
        ),
        (
            2399,
            Some(Value::Array(vec![Value::Map(vec![(int(2), bytes(32))])])),
        ),
        (
            2399,
            Some(Value::Array(vec![Value::Map(vec![
                (int(2), bytes(31)),
                (int(5), bytes(32)),
            ])])),
        ),
        (
            2399,
            Some(Value::Array(vec![Value::Map(vec![
                (int(2), bytes(32)),
                (int(5), bytes(32)),
                (int(9), int(0)),
            ])])),
        ),
        (
            2399,
            Some(Value::Array(vec![Value::Map(vec![
                (int(2), bytes(32)),
                (int(5), bytes(32)),
                (int(6), text("crc32")),
            ])])),
        ),
        (
            2399,
            Some(Value::Array(vec![Value::Map(vec![
                (int(2), bytes(32)),
                (int(2), bytes(32)),
                (int(5), bytes(32)),
            ])])),
        ),
        (2399, Some(Value::Array(vec![int(3)]))),
        (2402, None),
        (2402, Some(bytes(7))),
        (265, None),
        (265, Some(int(1))),
    ];
    for (key, v) in platform_cases {
        let mut p = Parts::good();
        match v.clone() {
            None => Parts::remove(&mut p.platform, key),
            Some(v) => Parts::set(&mut p.platform, key, v),
        }
        let e = run(&p.bytes()).unwrap_err();
        assert!(
            matches!(e, Error::MissingClaim("platform", k) | Error::BadClaim { token: "platform", key: k, .. } if k == key),
            "platform {key} {v:?}: {e:?}"
        );
    }
}

#[test]
fn structure_errors() {
    let p = Parts::good();
    let (plat, realm) = p.tokens();
    let good = p.bytes();
    // Trailing bytes, another tag, no tag, a third entry, an entry twice, no realm token.
    let mut t = good.clone();
    t.push(0);
    assert!(matches!(run(&t), Err(Error::Collection(_))));
    let mut t = good.clone();
    t[2] = 0x8C;
    assert!(matches!(run(&t), Err(Error::Collection(_))));
    assert!(matches!(run(&good[3..]), Err(Error::Collection(_))));
    let enc = |v: Value| {
        let mut b = Vec::new();
        ciborium::into_writer(&v, &mut b).unwrap();
        b
    };
    let pair = |t: &[u8]| Value::Array(vec![Value::Integer(263.into()), Value::Bytes(t.to_vec())]);
    let k = |n: u64| Value::Integer(n.into());
    let coll = |entries: Vec<(Value, Value)>| enc(Value::Tag(907, Box::new(Value::Map(entries))));
    let cases = [
        coll(vec![(k(44234), pair(&plat))]),
        coll(vec![(k(44241), pair(&realm))]),
        coll(vec![
            (k(44234), pair(&plat)),
            (k(44241), pair(&realm)),
            (k(7), pair(&realm)),
        ]),
        coll(vec![
            (k(44234), pair(&plat)),
            (k(44234), pair(&plat)),
            (k(44241), pair(&realm)),
        ]),
        coll(vec![
            (k(44234), Value::Bytes(plat.clone())),
            (k(44241), pair(&realm)),
        ]),
        coll(vec![
            (
                k(44234),
                Value::Array(vec![Value::Integer(264.into()), Value::Bytes(plat.clone())]),
            ),
            (k(44241), pair(&realm)),
        ]),
        enc(Value::Tag(
            399,
            Box::new(Value::Map(vec![
                (k(44234), pair(&plat)),
                (k(44241), pair(&realm)),
            ])),
        )),
        enc(Value::Tag(907, Box::new(Value::Array(vec![])))),
    ];
    for (i, c) in cases.iter().enumerate() {
        assert!(
            matches!(run(c), Err(Error::Collection(_))),
            "case {i}: {:?}",
            run(c)
        );
    }
    // A device token entry is allowed (and ignored).
    let t = coll(vec![
        (k(44234), pair(&plat)),
        (k(44241), pair(&realm)),
        (k(44258), pair(&[0xA0])),
    ]);
    run(&t).unwrap();
    // Too large.
    assert!(matches!(
        run(&vec![0u8; 40_000]),
        Err(Error::TooLarge(40_000))
    ));
}

#[test]
fn cose_errors() {
    let p = Parts::good();
    let (plat, realm) = p.tokens();
    let k = CoseSign1Builder::new()
        .protected(
            HeaderBuilder::new()
                .algorithm(iana::Algorithm::ES256)
                .build(),
        )
        .payload(vec![0xA0])
        .signature(vec![0; 64])
        .build()
        .to_tagged_vec()
        .unwrap();
    assert!(matches!(
        run(&collect(TokenFormat::Cmw, &k, &realm)),
        Err(Error::Cose("platform", _))
    ));
    // Untagged.
    let untagged = coset::CoseSign1::from_tagged_slice(&realm)
        .unwrap()
        .to_vec()
        .unwrap();
    assert!(matches!(
        run(&collect(TokenFormat::Cmw, &plat, &untagged)),
        Err(Error::Cose("realm", _))
    ));
    // Detached payload, short signature, algorithm also unprotected.
    let mut m = coset::CoseSign1::from_tagged_slice(&realm).unwrap();
    m.payload = None;
    let t = m.to_tagged_vec().unwrap();
    assert!(matches!(
        run(&collect(TokenFormat::Cmw, &plat, &t)),
        Err(Error::Cose("realm", _))
    ));
    let mut m = coset::CoseSign1::from_tagged_slice(&realm).unwrap();
    m.signature.truncate(64);
    let t = m.to_tagged_vec().unwrap();
    assert!(matches!(
        run(&collect(TokenFormat::Cmw, &plat, &t)),
        Err(Error::Cose("realm", _))
    ));
    let mut m = coset::CoseSign1::from_tagged_slice(&realm).unwrap();
    m.unprotected.alg = Some(coset::Algorithm::Assigned(iana::Algorithm::ES384));
    let t = m.to_tagged_vec().unwrap();
    assert!(matches!(
        run(&collect(TokenFormat::Cmw, &plat, &t)),
        Err(Error::Cose("realm", _))
    ));
    // A payload that is not a map.
    let mut m = coset::CoseSign1::from_tagged_slice(&realm).unwrap();
    m.payload = Some(vec![0x80]);
    let t = m.to_tagged_vec().unwrap();
    assert!(matches!(
        run(&collect(TokenFormat::Cmw, &plat, &t)),
        Err(Error::BadClaim { .. })
    ));
}

#[test]
fn duplicate_claims_and_keys() {
    let mut p = Parts::good();
    p.realm
        .push((Value::Integer(10.into()), Value::Bytes(vec![0xC1; 64])));
    assert_eq!(
        run(&p.bytes()).unwrap_err(),
        Error::DuplicateClaim("realm", 10)
    );
    let mut p = Parts::good();
    p.platform
        .push((Value::Integer(2402.into()), Value::Text("sha-256".into())));
    assert_eq!(
        run(&p.bytes()).unwrap_err(),
        Error::DuplicateClaim("platform", 2402)
    );
    // Unknown claims are ignored.
    let mut p = Parts::good();
    p.realm.push((Value::Integer(99999.into()), Value::Null));
    p.platform.push((Value::Text("x".into()), Value::Null));
    run(&p.bytes()).unwrap();
}

#[test]
fn unknown_platforms_and_raw_raks() {
    let tok = Parts::good().bytes();
    let ev = Evidence::decode(&tok).unwrap();
    let other = DevPlatform::new(&[0x43; 48], EL3_IMG, RMM_IMG, HOST_IMG).unwrap();
    assert!(matches!(
        verify(&ev, &other.anchors()),
        Err(Error::UnknownPlatform(_))
    ));
    let mut a = anchors();
    a.0[0].implementation_id = vec![0; 32];
    assert!(matches!(verify(&ev, &a), Err(Error::Mismatch { .. })));
    // A raw SEC1 RAK (RMM 1.0-EAC) bound by its 97 bytes.
    let mut p = Parts::good();
    let raw = el3_core::attest::public_key(&RAK).unwrap().to_vec();
    Parts::set(&mut p.realm, 44237, Value::Bytes(raw.clone()));
    Parts::set(
        &mut p.platform,
        10,
        Value::Bytes(HashAlgo::Sha256.hash(&raw)),
    );
    let ev = run(&p.bytes()).unwrap();
    assert_eq!(ev.realm.rak_encoding, RakEncoding::Raw);
    // A COSE_Key on another curve.
    let mut p = Parts::good();
    let mut k = rak_cose().to_vec();
    k[6] = 0x01;
    Parts::set(&mut p.realm, 44237, Value::Bytes(k));
    assert!(matches!(run(&p.bytes()), Err(Error::BadKey(_))));
}

#[test]
fn truncated_tokens_fail_cleanly() {
    let tok = Parts::good().bytes();
    for n in 0..tok.len() {
        assert!(run(&tok[..n]).is_err(), "a prefix of {n} bytes passed");
    }
}

#[test]
fn json_of_the_claims() {
    let ev = run(&Parts::good().bytes()).unwrap();
    let j = crate::json::claims(&ev);
    assert_eq!(j["realm"]["hash-algo-id"], "sha-256");
    assert_eq!(j["realm"]["initial-measurement"], "11".repeat(32));
    assert_eq!(j["platform"]["sw-components"][1]["component-type"], "RMM");
    assert_eq!(j["platform"]["lifecycle"], "0x3000");
}

#[test]
fn endorsement_json_round_trips_and_refusals() {
    let a = anchors();
    assert_eq!(TrustAnchors::from_json(&a.to_json()).unwrap(), a);
    let mut r = refs();
    r.realm.push(crate::endorse::RealmReference {
        rim: vec![1; 32],
        rak_hash_algo: "sha-256".into(),
        rems: [vec![0; 32], vec![0; 32], vec![0; 32], vec![0; 32]],
        rpv: vec![0; 64],
    });
    assert_eq!(ReferenceValues::from_json(&r.to_json()).unwrap(), r);
    for bad in [
        "",
        "{}",
        "[{}]",
        r#"[{"pkey": {"kty": "EC", "crv": "P-256", "x": "", "y": ""}, "implementation-id": "", "instance-id": ""}]"#,
        r#"[{"pkey": {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}, "implementation-id": "00", "instance-id": "01"}]"#,
    ] {
        assert!(TrustAnchors::from_json(bad).is_err(), "{bad}");
    }
    for bad in [
        "[]",
        r#"{"platform": 1}"#,
        r#"{"platform": [{"implementation-id": "00"}]}"#,
        r#"{"realm": [{"initial-measurement": "00", "rak-hash-algorithm": "sha-256", "extensible-measurements": [], "personalization-value": "00"}]}"#,
    ] {
        assert!(ReferenceValues::from_json(bad).is_err(), "{bad}");
    }
}

/// One mutation of a token.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    Remove(usize),
}

fn apply(tok: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut t = tok.to_vec();
    for m in muts {
        if t.is_empty() {
            break;
        }
        match *m {
            Mutation::Flip(i, bit) => {
                let i = i % t.len();
                t[i] ^= 1 << (bit % 8);
            }
            Mutation::Set(i, v) => {
                let i = i % t.len();
                t[i] = v;
            }
            Mutation::Truncate(n) => t.truncate(n % t.len()),
            Mutation::Insert(i, v) => {
                let i = i % (t.len() + 1);
                t.insert(i, v);
            }
            Mutation::Remove(i) => {
                let i = i % t.len();
                t.remove(i);
            }
        }
    }
    t
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => any::<usize>().prop_map(Mutation::Remove),
    ]
}

fn good_token() -> &'static [u8] {
    static T: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    T.get_or_init(|| Parts::good().bytes())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn mutated_tokens_never_panic_and_never_pass(muts in prop::collection::vec(mutation(), 1..4)) {
        let tok = good_token();
        let t = apply(tok, &muts);
        let r = run(&t);
        if t != tok {
            prop_assert!(r.is_err(), "a mutated token passed: {muts:?}");
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = run(&bytes);
        // Behind a valid collection header too.
        let mut t = vec![0xD9, 0x03, 0x8B];
        t.extend(&bytes);
        let _ = run(&t);
    }
}
