//! The CCA attestation token as TF-RMM main encodes it: the realm claims, their COSE_Sign1
//! envelope (ES384) and the collection that joins the platform token and the realm token.
//!
//! Byte for byte (attestation.md §1, TF-RMM `attestation_token.c`; every length in its
//! shortest form, every map and array of definite length):
//!
//! * realm claims: a map of 10 entries in this order: challenge (10, bstr 64), instance ID
//!   (256, bstr 33), RPV (44235, bstr 64), RAK (44237, bstr holding the 107-byte COSE_Key),
//!   hash algorithm (44236, tstr), RAK hash algorithm (44240, tstr `"sha-256"`), MEC policy
//!   (44243, int), profile (265, tstr `"tag:arm.com,2024:realm#2.0.0"`), RIM (44238, bstr of
//!   the hash length), REMs (44239, array of 4 such bstr);
//! * realm token: `18([h'A1013822', {}, bstr(claims), bstr(r ‖ s)])`, signed over the
//!   RFC 9052 `Sig_structure` `["Signature1", h'A1013822', h'', bstr(claims)]` with SHA-384;
//! * collection ([`TokenFormat::Cmw`]): `907({44234: [263, bstr(platform token)], 44241:
//!   [263, bstr(realm token)]})`; [`TokenFormat::Legacy`] (TF-RMM's
//!   `DOWNREV_CCA_TOKEN_TOP_FORMAT`): `399({44234: bstr(platform), 44241: bstr(realm)})`.
//!
//! Encoding never allocates: everything goes into caller buffers and a buffer that is too
//! small is an error, not a panic.

use cca_abi::rmi::HashAlgorithm;
use minicbor::encode::write::{Cursor, EndOfSlice};
use minicbor::Encoder;

use crate::ecdsa::{SCALAR_LEN, SIGNATURE_LEN};

/// Claim keys and tags.
pub mod key {
    /// Challenge.
    pub const CHALLENGE: u64 = 10;
    /// Realm Instance ID (UEID).
    pub const INSTANCE_ID: u64 = 256;
    /// Profile.
    pub const PROFILE: u64 = 265;
    /// Realm Personalisation Value.
    pub const RPV: u64 = 44235;
    /// Realm hash algorithm.
    pub const HASH_ALGO: u64 = 44236;
    /// Realm public key (the RAK as a COSE_Key).
    pub const PUB_KEY: u64 = 44237;
    /// Realm Initial Measurement.
    pub const RIM: u64 = 44238;
    /// Realm Extensible Measurements.
    pub const REMS: u64 = 44239;
    /// Hash algorithm of the RAK binding.
    pub const PUB_KEY_HASH_ALGO: u64 = 44240;
    /// MEC policy.
    pub const MEC_POLICY: u64 = 44243;
    /// Collection key of the platform token.
    pub const PLATFORM_TOKEN: u64 = 44234;
    /// Collection key of the realm token.
    pub const REALM_TOKEN: u64 = 44241;
    /// Tag of the RMM 2.0 collection (a CMW collection).
    pub const TAG_CMW_COLLECTION: u64 = 907;
    /// Tag of the legacy (RMM 1.0) collection.
    pub const TAG_LEGACY_COLLECTION: u64 = 399;
    /// CoAP content format `application/eat+cwt` in the CMW pairs.
    pub const CONTENT_FORMAT_EAT_CWT: u64 = 263;
    /// Tag of a COSE_Sign1 message.
    pub const TAG_COSE_SIGN1: u64 = 18;
}

/// The realm profile TF-RMM main writes.
pub const REALM_PROFILE: &str = "tag:arm.com,2024:realm#2.0.0";
/// The RAK binding's hash algorithm (TF-RMM always uses SHA-256).
pub const BINDING_HASH: &str = "sha-256";
/// The COSE protected header `{1: -35}` (alg ES384), as the bytes inside its bstr.
pub const PROTECTED_ES384: [u8; 4] = [0xA1, 0x01, 0x38, 0x22];
/// Size of the realm challenge.
pub const CHALLENGE_LEN: usize = 64;
/// Size of a Realm Instance ID: 0x01 (UEID type RAND) then 32 random bytes.
pub const INSTANCE_ID_LEN: usize = 33;
/// Size of the RAK's COSE_Key encoding.
pub const COSE_KEY_LEN: usize = 107;
/// Upper bound on the realm claims' encoding (a SHA-512 realm needs 683 bytes).
pub const MAX_CLAIMS_LEN: usize = 768;
/// Upper bound on a realm token: the claims plus the COSE_Sign1 framing and signature.
pub const MAX_REALM_TOKEN_LEN: usize = MAX_CLAIMS_LEN + 16 + SIGNATURE_LEN;
/// The size of the buffer the whole token must fit in, and the bound
/// `RSI_ATTESTATION_TOKEN_INIT` returns (TF-RMM: one page).
pub const CCA_TOKEN_BUFFER: usize = 4096;
/// Framing the collection adds around the two tokens (tag, map, keys, CMW pairs, bstr
/// headers), at most.
pub const COLLECTION_OVERHEAD: usize = 24;
/// The largest platform token this RMM accepts: the collection must fit in
/// [`CCA_TOKEN_BUFFER`] whatever the realm token.
pub const MAX_PLATFORM_TOKEN_LEN: usize =
    CCA_TOKEN_BUFFER - MAX_REALM_TOKEN_LEN - COLLECTION_OVERHEAD;

/// The top level of the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenFormat {
    /// RMM 2.0 (TF-RMM main's default): tag 907 with `[263, bstr]` pairs.
    Cmw,
    /// RMM 1.0 (TF-RMM's `DOWNREV_CCA_TOKEN_TOP_FORMAT`): tag 399 with bare bstrs.
    Legacy,
}

/// An output buffer was too small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooSmall;

impl From<minicbor::encode::Error<EndOfSlice>> for TooSmall {
    fn from(_: minicbor::encode::Error<EndOfSlice>) -> Self {
        TooSmall
    }
}

/// What goes into the realm claims.
#[derive(Clone, Copy, Debug)]
pub struct RealmClaims<'a> {
    /// The 64-byte challenge the realm passed to `RSI_ATTESTATION_TOKEN_INIT`.
    pub challenge: &'a [u8; CHALLENGE_LEN],
    /// The Realm Instance ID made at `REALM_CREATE`.
    pub instance_id: &'a [u8; INSTANCE_ID_LEN],
    /// The RPV.
    pub rpv: &'a [u8; 64],
    /// The RAK's COSE_Key ([`cose_key_p384`]).
    pub rak: &'a [u8; COSE_KEY_LEN],
    /// The realm's hash algorithm.
    pub algo: HashAlgorithm,
    /// The RIM slot (only the hash length is encoded).
    pub rim: &'a [u8; 64],
    /// The four REM slots.
    pub rems: &'a [[u8; 64]; 4],
    /// 1 when the realm has a private MECID, 0 when it shares the default one.
    pub mec_policy: u8,
}

/// The IANA text name of a hash algorithm.
pub const fn hash_algo_name(algo: HashAlgorithm) -> &'static str {
    match algo {
        HashAlgorithm::Sha256 => "sha-256",
        HashAlgorithm::Sha384 => "sha-384",
        HashAlgorithm::Sha512 => "sha-512",
    }
}

/// The COSE_Key of a P-384 public key as t_cose encodes it for TF-RMM:
/// `{1: 2 (EC2), -1: 2 (P-384), -2: x, -3: y}`, 107 bytes.
pub fn cose_key_p384(x: &[u8; SCALAR_LEN], y: &[u8; SCALAR_LEN]) -> [u8; COSE_KEY_LEN] {
    let mut k = [0u8; COSE_KEY_LEN];
    k[..7].copy_from_slice(&[0xA4, 0x01, 0x02, 0x20, 0x02, 0x21, 0x58]);
    k[7] = 0x30;
    k[8..56].copy_from_slice(x);
    k[56..59].copy_from_slice(&[0x22, 0x58, 0x30]);
    k[59..].copy_from_slice(y);
    k
}

fn encoder(out: &mut [u8]) -> Encoder<Cursor<&mut [u8]>> {
    Encoder::new(Cursor::new(out))
}

/// Encodes the realm claims map into `out`; returns its length.
pub fn encode_realm_claims(c: &RealmClaims<'_>, out: &mut [u8]) -> Result<usize, TooSmall> {
    let len = cca_measure::hash_len(c.algo);
    let mut e = encoder(out);
    e.map(10)?;
    e.u64(key::CHALLENGE)?.bytes(c.challenge)?;
    e.u64(key::INSTANCE_ID)?.bytes(c.instance_id)?;
    e.u64(key::RPV)?.bytes(c.rpv)?;
    e.u64(key::PUB_KEY)?.bytes(c.rak)?;
    e.u64(key::HASH_ALGO)?.str(hash_algo_name(c.algo))?;
    e.u64(key::PUB_KEY_HASH_ALGO)?.str(BINDING_HASH)?;
    e.u64(key::MEC_POLICY)?.u8(c.mec_policy)?;
    e.u64(key::PROFILE)?.str(REALM_PROFILE)?;
    e.u64(key::RIM)?.bytes(&c.rim[..len])?;
    e.u64(key::REMS)?.array(4)?;
    for rem in c.rems {
        e.bytes(&rem[..len])?;
    }
    Ok(e.into_writer().position())
}

/// The length of the shortest CBOR head for a byte string of `len` bytes.
fn bstr_head_len(len: usize) -> usize {
    match len {
        0..=23 => 1,
        24..=0xFF => 2,
        0x100..=0xFFFF => 3,
        _ => 5,
    }
}

/// SHA-384 of the COSE `Sig_structure` of a COSE_Sign1 with the ES384 protected header, no
/// external data, and `payload`: the digest ES384 signs.
pub fn sig_structure_digest(payload: &[u8]) -> [u8; SCALAR_LEN] {
    let mut head = [0u8; 32];
    let n = {
        let mut e = encoder(&mut head);
        // 4 entries, "Signature1", the protected header bstr, empty external AAD, the
        // payload's bstr head (the payload follows).
        let r = (|| -> Result<usize, TooSmall> {
            e.array(4)?
                .str("Signature1")?
                .bytes(&PROTECTED_ES384)?
                .bytes(&[])?
                .bytes_len(payload.len() as u64)?;
            Ok(e.writer().position())
        })();
        // The head is at most 1 + 11 + 5 + 1 + 9 bytes.
        r.unwrap_or(0)
    };
    let mut h = cca_measure::Hasher::new(HashAlgorithm::Sha384);
    h.update(&head[..n]);
    h.update(payload);
    let slot = h.finalize();
    let mut d = [0u8; SCALAR_LEN];
    d.copy_from_slice(&slot[..SCALAR_LEN]);
    d
}

/// Encodes `18([h'A1013822', {}, bstr(payload), bstr(signature)])` into `out`; returns its
/// length.
pub fn encode_cose_sign1(
    payload: &[u8],
    signature: &[u8; SIGNATURE_LEN],
    out: &mut [u8],
) -> Result<usize, TooSmall> {
    let mut e = encoder(out);
    e.tag(minicbor::data::Tag::new(key::TAG_COSE_SIGN1))?
        .array(4)?
        .bytes(&PROTECTED_ES384)?
        .map(0)?
        .bytes(payload)?
        .bytes(signature)?;
    Ok(e.into_writer().position())
}

/// The length [`encode_cose_sign1`] gives for a payload of `payload_len` bytes.
pub fn cose_sign1_len(payload_len: usize) -> usize {
    1 + 1 + 5 + 1 + bstr_head_len(payload_len) + payload_len + 2 + SIGNATURE_LEN
}

/// Encodes the collection of `platform` and `realm` (both tagged COSE_Sign1 messages) in
/// `format` into `out`; returns its length.
pub fn encode_collection(
    format: TokenFormat,
    platform: &[u8],
    realm: &[u8],
    out: &mut [u8],
) -> Result<usize, TooSmall> {
    let mut e = encoder(out);
    match format {
        TokenFormat::Cmw => {
            e.tag(minicbor::data::Tag::new(key::TAG_CMW_COLLECTION))?
                .map(2)?
                .u64(key::PLATFORM_TOKEN)?
                .array(2)?
                .u64(key::CONTENT_FORMAT_EAT_CWT)?
                .bytes(platform)?
                .u64(key::REALM_TOKEN)?
                .array(2)?
                .u64(key::CONTENT_FORMAT_EAT_CWT)?
                .bytes(realm)?;
        }
        TokenFormat::Legacy => {
            e.tag(minicbor::data::Tag::new(key::TAG_LEGACY_COLLECTION))?
                .map(2)?
                .u64(key::PLATFORM_TOKEN)?
                .bytes(platform)?
                .u64(key::REALM_TOKEN)?
                .bytes(realm)?;
        }
    }
    Ok(e.into_writer().position())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::ecdsa;
    use coset::{CborSerializable, TaggedCborSerializable};
    use std::vec::Vec;

    fn claims<'a>(
        algo: HashAlgorithm,
        challenge: &'a [u8; 64],
        id: &'a [u8; 33],
        rpv: &'a [u8; 64],
        rak: &'a [u8; 107],
        rim: &'a [u8; 64],
        rems: &'a [[u8; 64]; 4],
    ) -> RealmClaims<'a> {
        RealmClaims {
            challenge,
            instance_id: id,
            rpv,
            rak,
            algo,
            rim,
            rems,
            mec_policy: 0,
        }
    }

    #[test]
    fn cose_key_of_the_tf_a_sample_rak_hashes_to_the_sample_platform_challenge() {
        // attestation.md §1.6: SHA-256 of the COSE_Key of TF-A's sample RAK is the challenge
        // of the sample platform token, so this is exactly t_cose's encoding.
        let (x, y) = ecdsa::public_key(&ecdsa::tests::D).unwrap();
        let k = cose_key_p384(&x, &y);
        let h = cca_measure::hash(HashAlgorithm::Sha256, &k);
        let want = "0d22e08a98469058486318283489bdb36f09dbefeb1864df433fa6e54ea2d711";
        let got: std::string::String = h[..32].iter().map(|b| std::format!("{b:02x}")).collect();
        assert_eq!(got, want);
        let key = coset::CoseKey::from_slice(&k).unwrap();
        assert_eq!(key.kty, coset::KeyType::Assigned(coset::iana::KeyType::EC2));
    }

    #[test]
    fn realm_claims_are_byte_exact() {
        let (ch, id, rpv, rak) = ([0xC1; 64], [0x01; 33], [0x7B; 64], [0xAA; 107]);
        let rim = [0x11; 64];
        let rems = [[0x21; 64], [0x22; 64], [0x23; 64], [0x24; 64]];
        let c = claims(HashAlgorithm::Sha256, &ch, &id, &rpv, &rak, &rim, &rems);
        let mut out = [0u8; MAX_CLAIMS_LEN];
        let n = encode_realm_claims(&c, &mut out).unwrap();
        // The expected encoding, written out by hand from the format description.
        let mut want: Vec<u8> = std::vec![0xAA, 0x0A, 0x58, 0x40];
        want.extend([0xC1; 64]);
        want.extend([0x19, 0x01, 0x00, 0x58, 0x21]);
        want.extend([0x01; 33]);
        want.extend([0x19, 0xAC, 0xCB, 0x58, 0x40]);
        want.extend([0x7B; 64]);
        want.extend([0x19, 0xAC, 0xCD, 0x58, 0x6B]);
        want.extend([0xAA; 107]);
        want.extend([0x19, 0xAC, 0xCC, 0x67]);
        want.extend(b"sha-256");
        want.extend([0x19, 0xAC, 0xD0, 0x67]);
        want.extend(b"sha-256");
        want.extend([0x19, 0xAC, 0xD3, 0x00]);
        want.extend([0x19, 0x01, 0x09, 0x78, 0x1C]);
        want.extend(b"tag:arm.com,2024:realm#2.0.0");
        want.extend([0x19, 0xAC, 0xCE, 0x58, 0x20]);
        want.extend([0x11; 32]);
        want.extend([0x19, 0xAC, 0xCF, 0x84]);
        for b in 0x21..=0x24 {
            want.extend([0x58, 0x20]);
            want.extend([b; 32]);
        }
        assert_eq!(&out[..n], &want[..]);
    }

    #[test]
    fn claims_of_every_algorithm_fit_and_measurements_have_the_hash_length() {
        let (ch, id, rpv, rak) = ([1; 64], [1; 33], [2; 64], [3; 107]);
        let (rim, rems) = ([4; 64], [[5; 64]; 4]);
        let mut max = 0;
        for (algo, len) in [
            (HashAlgorithm::Sha256, 32),
            (HashAlgorithm::Sha384, 48),
            (HashAlgorithm::Sha512, 64),
        ] {
            let c = claims(algo, &ch, &id, &rpv, &rak, &rim, &rems);
            let mut out = [0u8; MAX_CLAIMS_LEN];
            let n = encode_realm_claims(&c, &mut out).unwrap();
            max = max.max(n);
            let v: ciborium::Value = ciborium::from_reader(&out[..n]).unwrap();
            let m = v.as_map().unwrap();
            assert_eq!(m.len(), 10);
            let rim_v = m
                .iter()
                .find(|(k, _)| k.as_integer() == Some(44238.into()))
                .unwrap();
            assert_eq!(rim_v.1.as_bytes().unwrap().len(), len);
            let name = m
                .iter()
                .find(|(k, _)| k.as_integer() == Some(44236.into()))
                .unwrap();
            assert_eq!(name.1.as_text(), Some(hash_algo_name(algo)));
        }
        assert_eq!(max, 683, "the SHA-512 claims");
        assert!(max <= MAX_CLAIMS_LEN);
        // One byte short of the need fails cleanly.
        let c = claims(HashAlgorithm::Sha512, &ch, &id, &rpv, &rak, &rim, &rems);
        let mut out = [0u8; 682];
        assert_eq!(encode_realm_claims(&c, &mut out), Err(TooSmall));
        assert_eq!(encode_realm_claims(&c, &mut []), Err(TooSmall));
    }

    #[test]
    fn cose_sign1_and_sig_structure_match_coset() {
        for len in [0usize, 23, 24, 255, 256, 600] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let sig = [0x5E; 96];
            let mut out = [0u8; 1024];
            let n = encode_cose_sign1(&payload, &sig, &mut out).unwrap();
            assert_eq!(n, cose_sign1_len(len), "payload {len}");
            let msg = coset::CoseSign1::from_tagged_slice(&out[..n]).unwrap();
            assert_eq!(msg.payload.as_deref(), Some(&payload[..]));
            assert_eq!(msg.signature, sig);
            assert_eq!(
                msg.protected.header.alg,
                Some(coset::Algorithm::Assigned(coset::iana::Algorithm::ES384))
            );
            assert!(msg.unprotected.is_empty());
            // coset's own Sig_structure, hashed, is the digest we sign.
            let tbs = msg.tbs_data(&[]);
            let d = cca_measure::hash(HashAlgorithm::Sha384, &tbs);
            assert_eq!(sig_structure_digest(&payload)[..], d[..48]);
            // Too small a buffer: an error, whatever is missing.
            assert_eq!(
                encode_cose_sign1(&payload, &sig, &mut out[..n - 1]),
                Err(TooSmall)
            );
        }
        // The exact envelope bytes.
        let mut out = [0u8; 256];
        let n = encode_cose_sign1(&[0xA0], &[0; 96], &mut out).unwrap();
        assert_eq!(
            out[..10],
            [0xD2, 0x84, 0x44, 0xA1, 0x01, 0x38, 0x22, 0xA0, 0x41, 0xA0]
        );
        assert_eq!(out[10..12], [0x58, 0x60]);
        assert_eq!(n, 12 + 96);
    }

    #[test]
    fn collections_of_both_formats() {
        let plat = [0xD2u8; 300];
        let realm = [0xD2u8; 40];
        let mut out = [0u8; 512];
        let n = encode_collection(TokenFormat::Cmw, &plat, &realm, &mut out).unwrap();
        let mut want: Vec<u8> = std::vec![
            0xD9, 0x03, 0x8B, 0xA2, 0x19, 0xAC, 0xCA, 0x82, 0x19, 0x01, 0x07, 0x59, 0x01, 0x2C
        ];
        want.extend(plat);
        want.extend([0x19, 0xAC, 0xD1, 0x82, 0x19, 0x01, 0x07, 0x58, 40]);
        want.extend(realm);
        assert_eq!(&out[..n], &want[..]);
        assert!(n - plat.len() - realm.len() <= COLLECTION_OVERHEAD);
        let n = encode_collection(TokenFormat::Legacy, &plat, &realm, &mut out).unwrap();
        let mut want: Vec<u8> =
            std::vec![0xD9, 0x01, 0x8F, 0xA2, 0x19, 0xAC, 0xCA, 0x59, 0x01, 0x2C];
        want.extend(plat);
        want.extend([0x19, 0xAC, 0xD1, 0x58, 40]);
        want.extend(realm);
        assert_eq!(&out[..n], &want[..]);
        assert_eq!(
            encode_collection(TokenFormat::Cmw, &plat, &realm, &mut out[..300]),
            Err(TooSmall)
        );
    }

    #[test]
    fn the_largest_platform_token_still_fits() {
        let plat = std::vec![0u8; MAX_PLATFORM_TOKEN_LEN];
        let realm = std::vec![0u8; MAX_REALM_TOKEN_LEN];
        let mut out = std::vec![0u8; CCA_TOKEN_BUFFER];
        assert!(encode_collection(TokenFormat::Cmw, &plat, &realm, &mut out).is_ok());
        assert!(cose_sign1_len(MAX_CLAIMS_LEN) <= MAX_REALM_TOKEN_LEN);
    }
}
