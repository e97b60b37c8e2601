//! A second opinion: Veraison's `ccatoken` (0.1.0, the only release on crates.io) verifies and
//! appraises a legacy-format token made by this stack's own code, with the endorsements
//! `cca-attest` writes (`trust-anchors.json`, reference values).
//!
//! The token is made as the firmware makes it: the platform claims by EL3's encoder
//! (`el3_core::attest::encode_platform_claims`) signed by EL3's COSE_Sign1 signer
//! (`sign_token`), the realm claims by the RMM's encoder (`rmm_core::token`) signed with the
//! RMM's restartable ES384 (`rmm_core::ecdsa`), both joined in the legacy collection (tag 399,
//! `TokenFormat::Legacy`). `ccatoken` 0.1.0 knows only the RMM 1.0-EAC claims, so two values
//! are re-encoded for it (and only they): the platform profile becomes
//! `http://arm.com/CCA-SSD/1.0.0` and the RAK claim (44237) the raw 97-byte SEC1 point (the
//! binding is then SHA-256 of that point, as 1.0-EAC defines it). What it checks for us:
//! the collection, both COSE_Sign1 envelopes and ES384 signatures, the claim types and sizes,
//! that the trust anchor JSON names the CPAK by instance ID, and that the platform and realm
//! reference values JSON match the claims (software components, configuration, RIM, REMs).
//!
//! The second test pins the limit: the legacy token exactly as our RMM's `legacy-token`
//! build makes it (2.0 profiles, COSE_Key RAK, as TF-RMM's `DOWNREV_CCA_TOKEN_TOP_FORMAT`)
//! verifies with `cca-attest` but `ccatoken` 0.1.0 refuses its platform profile.

use cca_abi::rmi::HashAlgorithm;
use cca_attest::endorse::{DevPlatform, RealmReference};
use cca_attest::{HashAlgo, Predicted};
use ciborium::Value;
use el3_core::attest as el3;
use p384::ecdsa::SigningKey;
use rmm_core::token::{self as rt, RealmClaims, TokenFormat};

/// ear's trust tiers (`ear::claim`).
const TRUSTWORTHY_INSTANCE: i8 = 2;
const APPROVED_CONFIG: i8 = 2;
const APPROVED_BOOT: i8 = 3;
const APPROVED_RUNTIME: i8 = 2;
const CRYPTO_VALIDATION_FAILED: i8 = 99;
const UNRECOGNIZED_INSTANCE: i8 = 97;
const CONTRAINDICATED_RUNTIME: i8 = 96;

const CPAK: [u8; 48] = [0x3C; 48];
const RAK: [u8; 48] = [0x5A; 48];
const IMAGES: [&[u8]; 3] = [b"EL3 image bytes", b"RMM image bytes", b"host image bytes"];

/// The claims a realm token carries in this test.
struct Realm {
    challenge: [u8; 64],
    rpv: [u8; 64],
    rim: [u8; 64],
    rems: [[u8; 64]; 4],
}

fn realm() -> Realm {
    let mut rems = [[0u8; 64]; 4];
    rems[0][..32].fill(0x77);
    Realm {
        challenge: core::array::from_fn(|i| i as u8 ^ 0xA5),
        rpv: [0x52; 64],
        rim: [0x31; 64],
        rems,
    }
}

fn platform() -> DevPlatform {
    DevPlatform::new(&CPAK, IMAGES[0], IMAGES[1], IMAGES[2]).unwrap()
}

/// The platform's reference values with the realm's, as the tools write them.
fn reference_values(r: &Realm) -> cca_attest::ReferenceValues {
    let mut refs = platform().reference_values();
    refs.realm.push(RealmReference {
        rim: r.rim[..32].to_vec(),
        rak_hash_algo: "sha-256".into(),
        rems: core::array::from_fn(|i| r.rems[i][..32].to_vec()),
        rpv: r.rpv.to_vec(),
    });
    refs
}

/// `map` (a CBOR map) with the value of integer key `k` replaced by `v`.
fn replace(map: &[u8], k: u64, v: Value) -> Vec<u8> {
    let Value::Map(mut entries) = ciborium::from_reader::<Value, _>(map).unwrap() else {
        panic!("not a map");
    };
    let e = entries
        .iter_mut()
        .find(|(key, _)| *key == Value::Integer(k.into()))
        .expect("the key is there");
    e.1 = v;
    let mut out = Vec::new();
    ciborium::into_writer(&Value::Map(entries), &mut out).unwrap();
    out
}

/// Which token: the one `ccatoken` 0.1.0 reads, or ours unchanged.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    Eac,
    Ours,
}

/// A legacy-format token for `r` made with the firmware's encoders and signers.
fn token(r: &Realm, layout: Layout) -> Vec<u8> {
    let cpak_public = el3::public_key(&CPAK).unwrap();
    let rak_public = el3::public_key(&RAK).unwrap();
    let rak_cose = el3::cose_key(&rak_public);
    // The binding: SHA-256 of the RAK as the realm token carries it.
    let binding = match layout {
        Layout::Eac => HashAlgo::Sha256.hash(&rak_public),
        Layout::Ours => HashAlgo::Sha256.hash(&rak_cose),
    };
    let components: Vec<el3::Component> = IMAGES
        .iter()
        .zip(el3::COMPONENT_TYPES)
        .map(|(img, kind)| el3::Component {
            kind,
            measurement: el3::measure_image(img),
        })
        .collect();
    let mut buf = [0u8; 2048];
    let n = el3::encode_platform_claims(
        &binding,
        &el3::instance_id(&cpak_public),
        &components,
        &mut buf,
    )
    .unwrap();
    let mut platform_claims = buf[..n].to_vec();
    if layout == Layout::Eac {
        platform_claims = replace(
            &platform_claims,
            265,
            Value::Text("http://arm.com/CCA-SSD/1.0.0".into()),
        );
    }
    let cpak = el3::private_scalar(&CPAK).unwrap();
    let mut ptoken = [0u8; 2048];
    let pn = el3::sign_token(&cpak, &platform_claims, &mut ptoken).unwrap();

    let instance_id = [0x01; 33];
    let claims = RealmClaims {
        challenge: &r.challenge,
        instance_id: &instance_id,
        rpv: &r.rpv,
        rak: &rak_cose,
        algo: HashAlgorithm::Sha256,
        rim: &r.rim,
        rems: &r.rems,
        mec_policy: 0,
    };
    let mut buf = [0u8; rt::MAX_CLAIMS_LEN];
    let n = rt::encode_realm_claims(&claims, &mut buf).unwrap();
    let mut realm_claims = buf[..n].to_vec();
    if layout == Layout::Eac {
        realm_claims = replace(&realm_claims, 44237, Value::Bytes(rak_public.to_vec()));
    }
    let digest = rt::sig_structure_digest(&realm_claims);
    let sig = rmm_core::ecdsa::sign_now(&RAK, &digest, b"test entropy").unwrap();
    let mut rtoken = [0u8; rt::MAX_REALM_TOKEN_LEN + 64];
    let rn = rt::encode_cose_sign1(&realm_claims, &sig, &mut rtoken).unwrap();

    let mut out = [0u8; rt::CCA_TOKEN_BUFFER];
    let n =
        rt::encode_collection(TokenFormat::Legacy, &ptoken[..pn], &rtoken[..rn], &mut out).unwrap();
    out[..n].to_vec()
}

/// `ccatoken`'s verdicts: (platform, realm) instance identity after `verify` with the trust
/// anchors JSON, and the decoded evidence for appraisal.
fn ccatoken_verify(token: &[u8], anchors_json: &str) -> (i8, i8, ccatoken::token::Evidence) {
    let mut ev = ccatoken::token::Evidence::decode(&token.to_vec()).expect("ccatoken decodes it");
    let mut tas = ccatoken::store::MemoTrustAnchorStore::new();
    tas.load_json(anchors_json)
        .expect("ccatoken reads our trust anchors");
    ev.verify(&tas).expect("ccatoken verifies");
    let (p, r) = ev.get_trust_vectors();
    (p.instance_identity.get(), r.instance_identity.get(), ev)
}

/// Flips one bit of the last byte of the COSE_Sign1 at `which` (44234 or 44241) in a legacy
/// collection: the last byte of its signature.
fn flip_signature(token: &[u8], which: u64) -> Vec<u8> {
    let Value::Tag(399, inner) = ciborium::from_reader::<Value, _>(token).unwrap() else {
        panic!("not a legacy collection");
    };
    let Value::Map(mut entries) = *inner else {
        panic!("no map");
    };
    for (k, v) in entries.iter_mut() {
        if *k == Value::Integer(which.into()) {
            let Value::Bytes(b) = v else { panic!() };
            *b.last_mut().unwrap() ^= 1;
        }
    }
    let mut out = Vec::new();
    ciborium::into_writer(&Value::Tag(399, Box::new(Value::Map(entries))), &mut out).unwrap();
    out
}

#[test]
fn ccatoken_verifies_and_appraises_a_legacy_token_of_our_firmware() {
    let r = realm();
    let t = token(&r, Layout::Eac);
    let p = platform();
    let (pv, rv, mut ev) = ccatoken_verify(&t, &p.anchors().to_json());
    assert_eq!((pv, rv), (TRUSTWORTHY_INSTANCE, TRUSTWORTHY_INSTANCE));
    // ccatoken 0.1.0 does not fail a wrong binding (it overwrites the verdict), so check it
    // on what it decoded.
    assert_eq!(
        HashAlgo::Sha256.hash(&ev.realm_claims.rak),
        ev.platform_claims.challenge
    );
    assert_eq!(ev.realm_claims.challenge, r.challenge);
    assert_eq!(ev.realm_claims.perso, r.rpv);
    assert_eq!(ev.realm_claims.rim, r.rim[..32].to_vec());
    assert_eq!(ev.platform_claims.sw_components.len(), 3);

    let mut rvs = ccatoken::store::MemoRefValueStore::new();
    rvs.load_json(&reference_values(&r).to_json())
        .expect("ccatoken reads our reference values");
    ev.appraise(&rvs).expect("ccatoken appraises");
    let (pt, rt) = ev.get_trust_vectors();
    assert_eq!(pt.configuration.get(), APPROVED_CONFIG, "{pt:?}");
    assert_eq!(pt.executables.get(), APPROVED_BOOT, "{pt:?}");
    assert_eq!(rt.executables.get(), APPROVED_RUNTIME, "{rt:?}");
}

#[test]
fn ccatoken_refuses_what_is_wrong() {
    let r = realm();
    let t = token(&r, Layout::Eac);
    let p = platform();
    let anchors = p.anchors().to_json();
    // A flipped bit in either signature.
    let (pv, rv, _) = ccatoken_verify(&flip_signature(&t, 44234), &anchors);
    assert_eq!(pv, CRYPTO_VALIDATION_FAILED);
    assert_ne!(rv, TRUSTWORTHY_INSTANCE);
    let (pv, rv, _) = ccatoken_verify(&flip_signature(&t, 44241), &anchors);
    assert_eq!((pv, rv), (TRUSTWORTHY_INSTANCE, CRYPTO_VALIDATION_FAILED));
    // Another key under the same instance ID.
    let mut other = p.anchors();
    other.0[0].key = *SigningKey::from_slice(&[0x11; 48]).unwrap().verifying_key();
    let (pv, _, _) = ccatoken_verify(&t, &other.to_json());
    assert_eq!(pv, CRYPTO_VALIDATION_FAILED);
    // A platform it does not know.
    let stranger = DevPlatform::new(&[0x11; 48], IMAGES[0], IMAGES[1], IMAGES[2]).unwrap();
    let (pv, _, _) = ccatoken_verify(&t, &stranger.anchors().to_json());
    assert_eq!(pv, UNRECOGNIZED_INSTANCE);
    // Reference values that do not match: another REM, another RMM image.
    let mut refs = reference_values(&r);
    refs.realm[0].rems[0][0] ^= 1;
    let (_, _, mut ev) = ccatoken_verify(&t, &anchors);
    let mut rvs = ccatoken::store::MemoRefValueStore::new();
    rvs.load_json(&refs.to_json()).unwrap();
    ev.appraise(&rvs).unwrap();
    assert_eq!(
        ev.get_trust_vectors().1.executables.get(),
        CONTRAINDICATED_RUNTIME
    );
    let mut refs = reference_values(&r);
    refs.platform[0].sw_components[1].measurement[0] ^= 1;
    let (_, _, mut ev) = ccatoken_verify(&t, &anchors);
    let mut rvs = ccatoken::store::MemoRefValueStore::new();
    rvs.load_json(&refs.to_json()).unwrap();
    ev.appraise(&rvs).unwrap();
    assert_ne!(ev.get_trust_vectors().0.executables.get(), APPROVED_BOOT);
}

#[test]
fn our_legacy_token_verifies_with_cca_attest_and_is_beyond_ccatoken_0_1_0() {
    let r = realm();
    let t = token(&r, Layout::Ours);
    let p = platform();
    let pred = Predicted {
        challenge: Some(r.challenge.to_vec()),
        hash_algo: Some(HashAlgo::Sha256),
        rim: Some(r.rim[..32].to_vec()),
        rems: Some(core::array::from_fn(|i| r.rems[i][..32].to_vec())),
        rpv: Some(r.rpv.to_vec()),
    };
    let ev = cca_attest::check(&t, &p.anchors(), Some(&reference_values(&r)), &pred)
        .expect("cca-attest verifies our legacy token");
    assert_eq!(ev.format, cca_attest::Format::Legacy);
    // ccatoken 0.1.0 knows only the 1.0-EAC platform profile. When a release reads the 2.0
    // profiles this fails, and the first test can drop its re-encoding.
    let Err(e) = ccatoken::token::Evidence::decode(&t) else {
        panic!("ccatoken 0.1.0 decoded a 2.0-profile token: a newer release is in use");
    };
    assert!(
        format!("{e:?}").contains("unknown profile tag:arm.com,2024:cca_platform#2.0.0"),
        "{e:?}"
    );
    // The re-encoded one is refused by cca-attest for the same reason the other way round.
    assert!(cca_attest::check(&token(&r, Layout::Eac), &p.anchors(), None, &pred).is_err());
}
