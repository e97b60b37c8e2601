//! The platform root of trust: the Realm Attestation Key the RMM gets, and the CCA platform
//! token EL3 makes and signs for it (RMM-EL3 interface `RMM_ATTEST_GET_REALM_KEY`,
//! `RMM_ATTEST_GET_PLAT_TOKEN`, as TF-A's `rmmd_attest.c` serves them).
//!
//! # Keys
//!
//! * The **CPAK** (CCA Platform Attestation Key, P-384) signs the platform token. This
//!   development platform has no fused key: the build generates one
//!   (`target/attestation/dev-cpak.key`) and the EL3 image carries it. It is a development
//!   identity, as good as the secrecy of that file: verifiers trust it only through the
//!   endorsements written next to it (its public key as `trust-anchors.json`).
//! * The **RAK** (Realm Attestation Key, P-384) is made fresh at every boot from the CPU's
//!   random number generator and handed to the RMM once. The platform token binds it: its
//!   challenge (claim 10) is the hash of the RAK's COSE_Key, which EL3 checks against the
//!   key it made before signing (as RSE's delegated attestation does).
//!
//! # The platform token
//!
//! `18([h'A1013822', {}, bstr(claims), bstr(r ‖ s)])`, ES384 over the claims map: profile
//! (265, `"tag:arm.com,2024:cca_platform#2.0.0"`), challenge (10), client ID (2394, 1: the
//! RMM), implementation ID (2396, [`IMPLEMENTATION_ID`]), instance ID (256, 0x01 then the
//! SHA-256 of the CPAK's SEC1 public key), configuration (2401, [`CONFIG`]), lifecycle (2395,
//! [`LIFECYCLE`]), software components (2399: one map per measured image with type,
//! measurement, version, signer ID and hash algorithm, the keys rust-ccatoken accepts) and
//! hash algorithm (2402, `"sha-256"`).
//!
//! # Measured boot
//!
//! Each image is measured as the SHA-256 of its bytes up to the last non-zero byte
//! ([`measure_image`]): EL3 reads its own flash image and the RMM's and the host's load
//! windows before it starts either, and a verifier's reference values are the same function
//! of the image files.
//!
//! # Errors (TF-A's)
//!
//! A buffer that does not start in the shared page is `E_RMM_BAD_ADDR`; one that ends
//! outside it, an empty one, one too small for the key, an unknown curve, a hash size other
//! than 0, 32, 48 or 64, a hash that is not the RAK's, and a continuation (hash size 0) with
//! no token in progress are `E_RMM_INVAL`; asking for the key a second time is
//! `E_RMM_UNK`.

use cca_abi::el3::El3Error;
use cca_abi::rmi::HashAlgorithm;
use cca_measure::hasher::Hasher;
use minicbor::encode::write::{Cursor, EndOfSlice};
use minicbor::Encoder;
use p384::elliptic_curve::consts::U48;
use p384::elliptic_curve::ops::Reduce;
use p384::elliptic_curve::sec1::ToEncodedPoint;
use p384::elliptic_curve::{Curve, FieldBytesEncoding, PrimeField};
use p384::{FieldBytes, NistP384, NonZeroScalar, Scalar, U384};
use sha2::Digest;

/// The platform profile of CCA 2.0.
pub const PLATFORM_PROFILE: &str = "tag:arm.com,2024:cca_platform#2.0.0";
/// The implementation ID (32 bytes): which platform design this is.
pub const IMPLEMENTATION_ID: [u8; 32] = *b"cca-rs QEMU virt dev platform 01";
/// The platform configuration claim: GPT protected space (40 bits), level 0 entry size (30
/// bits), RMM-EL3 interface 2.0.
pub const CONFIG: [u8; 4] = [40, 30, 2, 0];
/// Lifecycle: PSA "secured" (0x3000).
pub const LIFECYCLE: u16 = 0x3000;
/// Client ID of the Realm Management Security Domain.
pub const CLIENT_ID_RMM: u8 = 1;
/// The measurement hash algorithm of the software components.
pub const HASH_ALGO: &str = "sha-256";
/// The signer ID of the images: they are not signed, so all zero.
pub const SIGNER_ID_UNSIGNED: [u8; 32] = [0; 32];
/// The version every image of this build reports.
pub const SW_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The component types, in token order: the EL3 monitor, the RMM, the Normal-world host.
pub const COMPONENT_TYPES: [&str; 3] = ["BL31", "RMM", "BL33"];
/// `RMM_ATTEST_GET_REALM_KEY` curve ECC SECP384R1.
pub const CURVE_P384: u64 = 0;
/// Bytes of the RAK's private scalar.
pub const RAK_LEN: usize = 48;
/// The largest platform token this EL3 makes.
pub const MAX_TOKEN_LEN: usize = 2048;
/// The shared page size.
pub const PAGE: u64 = 4096;

/// Claim keys of the platform token.
pub mod key {
    /// Challenge (the RAK hash).
    pub const CHALLENGE: u64 = 10;
    /// Instance ID.
    pub const INSTANCE_ID: u64 = 256;
    /// Profile.
    pub const PROFILE: u64 = 265;
    /// Client ID.
    pub const CLIENT_ID: u64 = 2394;
    /// Lifecycle.
    pub const LIFECYCLE: u64 = 2395;
    /// Implementation ID.
    pub const IMPLEMENTATION_ID: u64 = 2396;
    /// Software components.
    pub const SW_COMPONENTS: u64 = 2399;
    /// Configuration.
    pub const CONFIG: u64 = 2401;
    /// Hash algorithm.
    pub const HASH_ALGO: u64 = 2402;
}

/// One measured image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Component {
    /// Its type ([`COMPONENT_TYPES`]).
    pub kind: &'static str,
    /// [`measure_image`] of it.
    pub measurement: [u8; 32],
}

/// Bytes of an arm64 image header (the layout of Linux's `Documentation/arch/arm64/booting.rst`).
pub const IMAGE_HEADER_LEN: usize = 64;
/// Its magic, `"ARM\x64"` at offset 56 (little-endian word).
pub const IMAGE_MAGIC: u32 = 0x644d_5241;

/// The length an image declares for itself in an arm64 image header at the start of its load
/// window of `window` bytes (`image_size`, offset 16), or `None` without such a header, with a
/// size of 0 (unknown) or one the window cannot hold, in which case the whole window is
/// measured up to its last non-zero byte. The size is part of the measured bytes, so an
/// image cannot be measured short without its measurement changing, and EL3 clears the
/// window past it before the image runs, so nothing a loader put there stays unmeasured.
pub fn declared_len(head: &[u8], window: usize) -> Option<usize> {
    let word = |at: usize| -> Option<u64> {
        let b = head.get(at..at + 8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    };
    let magic = word(56)? as u32;
    let size = usize::try_from(word(16)?).ok()?;
    (magic == IMAGE_MAGIC && (IMAGE_HEADER_LEN..=window).contains(&size)).then_some(size)
}

/// The length of `bytes` without its trailing zero bytes.
pub fn image_len(bytes: &[u8]) -> usize {
    let mut end = bytes.len();
    // Whole 8-byte words first (the scan covers megabytes of zeros at boot).
    while end >= 8 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[end - 8..end]);
        if u64::from_ne_bytes(w) != 0 {
            break;
        }
        end -= 8;
    }
    while end > 0 && bytes[end - 1] == 0 {
        end -= 1;
    }
    end
}

/// The measurement of an image: SHA-256 of its bytes up to the last non-zero byte.
pub fn measure_image(bytes: &[u8]) -> [u8; 32] {
    measure_image_parts(&[bytes])
}

/// Bytes of the RMM's and of the host's load window (at the start of the Realm carve-out and
/// at the host's entry point).
pub const LOAD_WINDOW: usize = 16 << 20;

/// What EL3 measures once the image file `image` is loaded at the start of an otherwise zero
/// load window of `window` bytes: the bytes its arm64 image header declares
/// ([`declared_len`]; EL3 clears the window past them), or without a header the window's
/// bytes up to the last non-zero one. The reference value of an RMM or host image.
pub fn measure_loaded(image: &[u8], window: usize) -> [u8; 32] {
    let head = &image[..image.len().min(IMAGE_HEADER_LEN)];
    let len = declared_len(head, window).unwrap_or(window);
    measure_image(&image[..image.len().min(len)])
}

/// [`measure_image`] of the concatenation of `parts`. The hashing goes through
/// `cca_measure`, so it runs on the SHA-2 engine the firmware installed (the CPU's
/// instructions where it has them) and on the software engine elsewhere.
pub fn measure_image_parts(parts: &[&[u8]]) -> [u8; 32] {
    let last = parts.iter().rposition(|p| image_len(p) != 0);
    let mut h = Hasher::new(HashAlgorithm::Sha256);
    if let Some(last) = last {
        for p in &parts[..last] {
            h.update(p);
        }
        h.update(&parts[last][..image_len(parts[last])]);
    }
    let slot = h.finalize();
    let mut m = [0u8; 32];
    m.copy_from_slice(&slot[..32]);
    m
}

/// The platform instance ID: 0x01 (UEID type RAND) then SHA-256 of the CPAK's uncompressed
/// SEC1 public key.
pub fn instance_id(cpak_public: &[u8; 97]) -> [u8; 33] {
    let mut id = [0u8; 33];
    id[0] = 0x01;
    id[1..].copy_from_slice(&sha2::Sha256::digest(cpak_public));
    id
}

/// The COSE_Key of a P-384 public key (`{1: 2, -1: 2, -2: x, -3: y}`, 107 bytes), as the
/// realm token carries the RAK.
pub fn cose_key(public_sec1: &[u8; 97]) -> [u8; 107] {
    let mut k = [0u8; 107];
    k[..8].copy_from_slice(&[0xA4, 0x01, 0x02, 0x20, 0x02, 0x21, 0x58, 0x30]);
    k[8..56].copy_from_slice(&public_sec1[1..49]);
    k[56..59].copy_from_slice(&[0x22, 0x58, 0x30]);
    k[59..].copy_from_slice(&public_sec1[49..]);
    k
}

/// An output buffer was too small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooSmall;

impl From<minicbor::encode::Error<EndOfSlice>> for TooSmall {
    fn from(_: minicbor::encode::Error<EndOfSlice>) -> Self {
        TooSmall
    }
}

/// Encodes the platform claims; returns their length.
pub fn encode_platform_claims(
    challenge: &[u8],
    instance_id: &[u8; 33],
    components: &[Component],
    out: &mut [u8],
) -> Result<usize, TooSmall> {
    let mut e = Encoder::new(Cursor::new(out));
    e.map(9)?;
    e.u64(key::PROFILE)?.str(PLATFORM_PROFILE)?;
    e.u64(key::CHALLENGE)?.bytes(challenge)?;
    e.u64(key::CLIENT_ID)?.u8(CLIENT_ID_RMM)?;
    e.u64(key::IMPLEMENTATION_ID)?.bytes(&IMPLEMENTATION_ID)?;
    e.u64(key::INSTANCE_ID)?.bytes(instance_id)?;
    e.u64(key::CONFIG)?.bytes(&CONFIG)?;
    e.u64(key::LIFECYCLE)?.u16(LIFECYCLE)?;
    e.u64(key::SW_COMPONENTS)?.array(components.len() as u64)?;
    for c in components {
        e.map(5)?;
        e.u8(1)?.str(c.kind)?;
        e.u8(2)?.bytes(&c.measurement)?;
        e.u8(4)?.str(SW_VERSION)?;
        e.u8(5)?.bytes(&SIGNER_ID_UNSIGNED)?;
        e.u8(6)?.str(HASH_ALGO)?;
    }
    e.u64(key::HASH_ALGO)?.str(HASH_ALGO)?;
    Ok(e.into_writer().position())
}

/// The ES384 protected header as the bytes of its bstr.
const PROTECTED_ES384: [u8; 4] = [0xA1, 0x01, 0x38, 0x22];

/// Signs `claims` with `key` and encodes the tagged COSE_Sign1; returns its length. The
/// signature is `SigningKey::sign_prehash`'s (RFC 6979, SHA-384: deterministic), with
/// `R = k · G` from [`cca_basepoint`]'s table (under a third of the cost of the `p384`
/// crate's generic multiplication) and no `SigningKey`, which computes its public key when it is made (the
/// CPAK's comes from the build).
pub fn sign_token(key: &NonZeroScalar, claims: &[u8], out: &mut [u8]) -> Result<usize, TooSmall> {
    // Sig_structure = ["Signature1", protected, h'', payload], hashed with SHA-384.
    let mut head = [0u8; 32];
    let n = {
        let mut e = Encoder::new(Cursor::new(&mut head[..]));
        e.array(4)?
            .str("Signature1")?
            .bytes(&PROTECTED_ES384)?
            .bytes(&[])?
            .bytes_len(claims.len() as u64)?;
        e.into_writer().position()
    };
    let mut h = sha2::Sha384::new();
    h.update(&head[..n]);
    h.update(claims);
    // A SHA-384 digest is exactly as long as a P-384 scalar: it is the field bytes as they
    // are (ECDSA's bits2field), reduced modulo the order for the arithmetic.
    let digest: FieldBytes = h.finalize();
    let order: FieldBytes = NistP384::ORDER.encode_field_bytes();
    let k = rfc6979::generate_k::<sha2::Sha384, U48>(&key.to_repr(), &order, &digest, &[]);
    let k = Option::<Scalar>::from(Scalar::from_repr(k)).ok_or(TooSmall)?;
    let z = <Scalar as Reduce<U384>>::reduce_bytes(&digest);
    let sig = cca_basepoint::ecdsa_sign(key, &k, &z).ok_or(TooSmall)?;
    let mut e = Encoder::new(Cursor::new(out));
    e.tag(minicbor::data::Tag::new(18))?
        .array(4)?
        .bytes(&PROTECTED_ES384)?
        .map(0)?
        .bytes(claims)?
        .bytes(&sig)?;
    Ok(e.into_writer().position())
}

/// A key that is not a P-384 private scalar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadKey;

/// A big-endian P-384 private scalar (not zero, below the group order).
pub fn private_scalar(d: &[u8; 48]) -> Result<NonZeroScalar, BadKey> {
    Option::from(NonZeroScalar::from_repr((*d).into())).ok_or(BadKey)
}

/// The uncompressed SEC1 public key of a private scalar.
pub fn public_key(d: &[u8; 48]) -> Result<[u8; 97], BadKey> {
    let p = cca_basepoint::mul(&*private_scalar(d)?).to_affine();
    p.to_encoded_point(false)
        .as_bytes()
        .try_into()
        .map_err(|_| BadKey)
}

/// The Realm Attestation Key as EL3 hands it to the RMM, once per boot; EL3 keeps no copy
/// once it is handed over.
pub struct RealmKey {
    rak: [u8; RAK_LEN],
    delivered: bool,
}

impl RealmKey {
    /// The key with private scalar `rak` (big-endian; refused unless `0 < rak < n`).
    pub fn new(rak: &[u8; RAK_LEN]) -> Result<Self, BadKey> {
        private_scalar(rak)?;
        Ok(Self {
            rak: *rak,
            delivered: false,
        })
    }

    /// `RMM_ATTEST_GET_REALM_KEY(buf, len, curve)`: writes the RAK's private scalar
    /// (big-endian) at `buf` in `shared` (the shared page, at `shared_pa`); returns its length.
    pub fn get_realm_key(
        &mut self,
        shared: &mut [u8],
        shared_pa: u64,
        buf_pa: u64,
        len: u64,
        curve: u64,
    ) -> Result<u64, El3Error> {
        let (off, len) = shared_range(shared_pa, buf_pa, len)?;
        if curve != CURVE_P384 || len < RAK_LEN {
            return Err(El3Error::Inval);
        }
        if self.delivered {
            return Err(El3Error::Unknown);
        }
        let dst = shared.get_mut(off..off + RAK_LEN).ok_or(El3Error::Inval)?;
        dst.copy_from_slice(&self.rak);
        self.rak = [0; RAK_LEN];
        self.delivered = true;
        Ok(RAK_LEN as u64)
    }
}

/// TF-A's `validate_buffer_params`: the range of `[buf_pa, buf_pa + len)` inside the shared
/// page at `shared_pa`.
fn shared_range(shared_pa: u64, buf_pa: u64, len: u64) -> Result<(usize, usize), El3Error> {
    if buf_pa & !(PAGE - 1) != shared_pa {
        return Err(El3Error::BadAddr);
    }
    let off = buf_pa - shared_pa;
    match off.checked_add(len) {
        Some(end) if len != 0 && end <= PAGE => Ok((off as usize, len as usize)),
        _ => Err(El3Error::Inval),
    }
}

/// EL3's platform attestation state: the CPAK, the RAK's public key, the measurements and
/// the token being handed over.
pub struct PlatformAttestation {
    cpak: NonZeroScalar,
    cpak_public: [u8; 97],
    rak_cose: [u8; 107],
    components: [Component; 3],
    token: [u8; MAX_TOKEN_LEN],
    token_len: usize,
    token_sent: usize,
    /// The challenge size `token` was made for (0: none yet). The challenge of each size is
    /// the hash of the RAK's COSE key and the signature deterministic, so a token made once
    /// for a size is the token for that size.
    token_hash_size: usize,
}

impl PlatformAttestation {
    /// The state for a CPAK, a fresh RAK and the images' measurements.
    pub fn new(
        cpak: &[u8; 48],
        rak: &[u8; RAK_LEN],
        components: [Component; 3],
    ) -> Result<Self, BadKey> {
        Self::with_cpak_public(cpak, public_key(cpak)?, rak, components)
    }

    /// [`Self::new`] with the CPAK's public key computed beforehand (EL3's build derives it
    /// with [`public_key`], saving a scalar multiplication at every cold boot). A public key
    /// that does not belong to `cpak` makes every platform token unverifiable.
    pub fn with_cpak_public(
        cpak: &[u8; 48],
        cpak_public: [u8; 97],
        rak: &[u8; RAK_LEN],
        components: [Component; 3],
    ) -> Result<Self, BadKey> {
        Self::with_public_keys(cpak, cpak_public, public_key(rak)?, components)
    }

    /// [`Self::with_cpak_public`] with the RAK's public key computed beforehand as well (EL3
    /// makes the RAK, a [`RealmKey`], on the boot helper CPU). Public keys that do not belong
    /// to their private keys make the tokens unverifiable.
    pub fn with_public_keys(
        cpak: &[u8; 48],
        cpak_public: [u8; 97],
        rak_public: [u8; 97],
        components: [Component; 3],
    ) -> Result<Self, BadKey> {
        let cpak = private_scalar(cpak)?;
        Ok(Self {
            cpak,
            cpak_public,
            rak_cose: cose_key(&rak_public),
            components,
            token: [0; MAX_TOKEN_LEN],
            token_len: 0,
            token_sent: 0,
            token_hash_size: 0,
        })
    }

    /// The CPAK's uncompressed SEC1 public key.
    pub fn cpak_public(&self) -> &[u8; 97] {
        &self.cpak_public
    }

    /// The platform instance ID.
    pub fn instance_id(&self) -> [u8; 33] {
        instance_id(&self.cpak_public)
    }

    /// The measured images.
    pub fn components(&self) -> &[Component; 3] {
        &self.components
    }

    /// The only challenge of `n` bytes (32, 48 or 64) a platform token can carry: the SHA-2
    /// hash of that size of the RAK's COSE key.
    fn challenge(&self, n: usize) -> [u8; 64] {
        let mut want = [0u8; 64];
        match n {
            32 => want[..32].copy_from_slice(&sha2::Sha256::digest(self.rak_cose)),
            48 => want[..48].copy_from_slice(&sha2::Sha384::digest(self.rak_cose)),
            _ => want.copy_from_slice(&sha2::Sha512::digest(self.rak_cose)),
        }
        want
    }

    /// Encodes and signs the platform token for the `n`-byte challenge into `token`.
    fn make_token(&mut self, n: usize) -> Result<(), El3Error> {
        let challenge = self.challenge(n);
        let mut claims = [0u8; MAX_TOKEN_LEN];
        let c = encode_platform_claims(
            &challenge[..n],
            &self.instance_id(),
            &self.components,
            &mut claims,
        )
        .map_err(|_| El3Error::NoMem)?;
        (self.token_hash_size, self.token_len, self.token_sent) = (0, 0, 0);
        self.token_len =
            sign_token(&self.cpak, &claims[..c], &mut self.token).map_err(|_| El3Error::NoMem)?;
        self.token_sent = self.token_len;
        self.token_hash_size = n;
        Ok(())
    }

    /// Makes the token for a SHA-256 challenge (RMMs hash the RAK with SHA-256, TF-RMM's and
    /// ours) ahead of the request, on a CPU that has time for it at cold boot. The request
    /// then gets the same bytes without the signing; a request for another size signs then.
    pub fn presign(&mut self) -> Result<(), El3Error> {
        self.make_token(32)
    }

    /// `RMM_ATTEST_GET_PLAT_TOKEN(buf, len, hash_size)`: with a hash (at `buf`), makes a token
    /// for it; with 0, continues the one in progress. Copies the next chunk to `buf` and
    /// returns `(chunk length, bytes remaining)`.
    pub fn get_platform_token(
        &mut self,
        shared: &mut [u8],
        shared_pa: u64,
        buf_pa: u64,
        len: u64,
        hash_size: u64,
    ) -> Result<(u64, u64), El3Error> {
        let (off, len) = shared_range(shared_pa, buf_pa, len)?;
        let buf = shared.get_mut(off..off + len).ok_or(El3Error::Inval)?;
        match hash_size {
            0 => {
                if self.token_sent >= self.token_len {
                    return Err(El3Error::Inval);
                }
            }
            32 | 48 | 64 => {
                let n = hash_size as usize;
                let hash = buf.get(..n).ok_or(El3Error::Inval)?;
                if hash != &self.challenge(n)[..n] {
                    return Err(El3Error::Inval);
                }
                if self.token_hash_size != n {
                    self.make_token(n)?;
                }
                self.token_sent = 0;
            }
            _ => return Err(El3Error::Inval),
        }
        let remaining = self.token_len - self.token_sent;
        let chunk = remaining.min(len);
        buf[..chunk].copy_from_slice(&self.token[self.token_sent..self.token_sent + chunk]);
        self.token_sent += chunk;
        Ok((chunk as u64, (self.token_len - self.token_sent) as u64))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use coset::TaggedCborSerializable;
    use p384::ecdsa::signature::Verifier;
    use p384::ecdsa::{Signature, SigningKey, VerifyingKey};
    use std::vec::Vec;

    const SHARED: u64 = 0x418f_f000;
    const CPAK: [u8; 48] = [0x42; 48];
    const RAK: [u8; 48] = [0x17; 48];

    fn components() -> [Component; 3] {
        [
            Component {
                kind: "BL31",
                measurement: [1; 32],
            },
            Component {
                kind: "RMM",
                measurement: [2; 32],
            },
            Component {
                kind: "BL33",
                measurement: [3; 32],
            },
        ]
    }

    fn state() -> PlatformAttestation {
        PlatformAttestation::new(&CPAK, &RAK, components()).unwrap()
    }

    #[test]
    fn a_precomputed_cpak_public_key_gives_the_same_platform() {
        let derived = state();
        let given = PlatformAttestation::with_cpak_public(
            &CPAK,
            public_key(&CPAK).unwrap(),
            &RAK,
            components(),
        )
        .unwrap();
        assert_eq!(given.cpak_public(), derived.cpak_public());
        assert_eq!(given.instance_id(), derived.instance_id());
        // The key EL3 signs with is the private scalar's, whatever public key it was given.
        let vk = VerifyingKey::from_sec1_bytes(given.cpak_public()).unwrap();
        assert_eq!(vk, *SigningKey::from(given.cpak).verifying_key());
    }

    fn rak_hash(n: usize) -> Vec<u8> {
        let k = cose_key(&public_key(&RAK).unwrap());
        match n {
            32 => sha2::Sha256::digest(k).to_vec(),
            48 => sha2::Sha384::digest(k).to_vec(),
            _ => sha2::Sha512::digest(k).to_vec(),
        }
    }

    /// Gets the whole token with chunks of `len` bytes at `off` in the page.
    fn fetch(a: &mut PlatformAttestation, n: usize, off: u64, len: u64) -> Vec<u8> {
        let mut page = [0u8; 4096];
        page[off as usize..off as usize + n].copy_from_slice(&rak_hash(n));
        let mut tok = Vec::new();
        let mut hash_size = n as u64;
        loop {
            let (chunk, rem) = a
                .get_platform_token(&mut page, SHARED, SHARED + off, len, hash_size)
                .unwrap();
            assert!(chunk <= len);
            tok.extend_from_slice(&page[off as usize..(off + chunk) as usize]);
            hash_size = 0;
            if rem == 0 {
                return tok;
            }
        }
    }

    #[test]
    fn the_token_is_signed_by_the_cpak_and_binds_the_rak() {
        let mut a = state();
        for n in [32, 48, 64] {
            let tok = fetch(&mut a, n, 0, 4096);
            let msg = coset::CoseSign1::from_tagged_slice(&tok).unwrap();
            let vk = VerifyingKey::from_sec1_bytes(a.cpak_public()).unwrap();
            msg.verify_signature(&[], |sig, data| {
                vk.verify(data, &Signature::from_slice(sig).unwrap())
            })
            .unwrap();
            let claims: ciborium::Value = ciborium::from_reader(&msg.payload.unwrap()[..]).unwrap();
            let m = claims.into_map().unwrap();
            let get = |k: u64| {
                m.iter()
                    .find(|(key, _)| key.as_integer() == Some(k.into()))
                    .map(|(_, v)| v.clone())
                    .unwrap()
            };
            assert_eq!(get(10).as_bytes().unwrap(), &rak_hash(n));
            assert_eq!(get(265).as_text(), Some(PLATFORM_PROFILE));
            assert_eq!(get(2394).as_integer(), Some(1.into()));
            assert_eq!(get(2396).as_bytes().unwrap(), &IMPLEMENTATION_ID.to_vec());
            assert_eq!(get(256).as_bytes().unwrap(), &a.instance_id().to_vec());
            assert_eq!(get(2395).as_integer(), Some(0x3000.into()));
            let sw = get(2399).into_array().unwrap();
            assert_eq!(sw.len(), 3);
            let c1 = sw[1].as_map().unwrap();
            assert_eq!(c1.len(), 5);
            assert_eq!(c1[0].1.as_text(), Some("RMM"));
            assert_eq!(c1[1].1.as_bytes().unwrap(), &[2u8; 32].to_vec());
            assert_eq!(get(2402).as_text(), Some("sha-256"));
            assert_eq!(m.len(), 9);
        }
    }

    #[test]
    fn chunks_of_any_size() {
        let mut a = state();
        let whole = fetch(&mut a, 32, 0, 4096);
        assert!(whole.len() < 1024);
        for (off, len) in [(0, 32), (100, 33), (4000, 96)] {
            let mut b = state();
            let t = fetch(&mut b, 32, off, len);
            // The signature's nonce is deterministic: the same token.
            assert_eq!(t, whole, "chunks of {len} at {off}");
        }
    }

    #[test]
    fn buffer_errors() {
        let mut a = state();
        let mut page = [0u8; 4096];
        page[..32].copy_from_slice(&rak_hash(32));
        let mut call = |buf: u64, len: u64, hs: u64| {
            a.get_platform_token(&mut page, SHARED, buf, len, hs)
                .map(|_| ())
        };
        assert_eq!(call(SHARED - 8, 64, 32), Err(El3Error::BadAddr));
        assert_eq!(call(SHARED + 4096, 64, 32), Err(El3Error::BadAddr));
        assert_eq!(call(0, 64, 32), Err(El3Error::BadAddr));
        assert_eq!(call(SHARED, 4097, 32), Err(El3Error::Inval));
        assert_eq!(call(SHARED + 8, 4096, 32), Err(El3Error::Inval));
        assert_eq!(call(SHARED + 8, u64::MAX, 32), Err(El3Error::Inval));
        assert_eq!(call(SHARED, 0, 32), Err(El3Error::Inval));
        // The buffer must hold the hash.
        assert_eq!(call(SHARED, 16, 32), Err(El3Error::Inval));
        for hs in [1, 16, 31, 33, 65, u64::MAX] {
            assert_eq!(
                call(SHARED, 4096, hs),
                Err(El3Error::Inval),
                "hash size {hs}"
            );
        }
        // A continuation before any token.
        assert_eq!(call(SHARED, 4096, 0), Err(El3Error::Inval));
    }

    #[test]
    fn only_the_raks_hash_is_signed() {
        let mut a = state();
        let mut page = [0u8; 4096];
        page[..32].copy_from_slice(&rak_hash(32));
        page[0] ^= 1;
        assert_eq!(
            a.get_platform_token(&mut page, SHARED, SHARED, 4096, 32),
            Err(El3Error::Inval)
        );
        // A SHA-384 hash passed as 32 bytes is not the SHA-256.
        page[..48].copy_from_slice(&rak_hash(48));
        assert_eq!(
            a.get_platform_token(&mut page, SHARED, SHARED, 4096, 32),
            Err(El3Error::Inval)
        );
    }

    #[test]
    fn a_presigned_token_is_the_token_asked_for() {
        let mut fresh = state();
        let want = fetch(&mut fresh, 32, 0, 4096);
        let mut a = state();
        a.presign().unwrap();
        let mut page = [0u8; 4096];
        // Nothing is in progress after presigning.
        assert_eq!(
            a.get_platform_token(&mut page, SHARED, SHARED, 4096, 0),
            Err(El3Error::Inval)
        );
        assert_eq!(fetch(&mut a, 32, 0, 4096), want);
        // Another size signs anew; the SHA-256 one is then made again, the same.
        let other = fetch(&mut a, 48, 0, 4096);
        assert_ne!(other, want);
        assert_eq!(fetch(&mut a, 32, 0, 100), want);
        // A wrong challenge is refused after presigning too.
        let mut b = state();
        b.presign().unwrap();
        page[..32].copy_from_slice(&rak_hash(32));
        page[5] ^= 1;
        assert_eq!(
            b.get_platform_token(&mut page, SHARED, SHARED, 4096, 32),
            Err(El3Error::Inval)
        );
    }

    #[test]
    fn a_finished_token_is_not_continued_and_a_new_hash_restarts() {
        let mut a = state();
        let t = fetch(&mut a, 32, 0, 4096);
        let mut page = [0u8; 4096];
        assert_eq!(
            a.get_platform_token(&mut page, SHARED, SHARED, 4096, 0),
            Err(El3Error::Inval)
        );
        // Half-way, a new request starts over.
        page[..32].copy_from_slice(&rak_hash(32));
        let (c, r) = a
            .get_platform_token(&mut page, SHARED, SHARED, 100, 32)
            .unwrap();
        assert_eq!((c, r), (100, t.len() as u64 - 100));
        assert_eq!(fetch(&mut a, 32, 0, 4096), t);
    }

    #[test]
    fn the_realm_key_once() {
        assert!(RealmKey::new(&[0; 48]).is_err());
        let mut a = RealmKey::new(&RAK).unwrap();
        let mut page = [0u8; 4096];
        assert_eq!(
            a.get_realm_key(&mut page, SHARED, SHARED, 4096, 1),
            Err(El3Error::Inval),
            "only P-384"
        );
        assert_eq!(
            a.get_realm_key(&mut page, SHARED, SHARED + 4056, 40, 0),
            Err(El3Error::Inval),
            "too small for the key"
        );
        assert_eq!(
            a.get_realm_key(&mut page, SHARED, SHARED + 4056, 48, 0),
            Err(El3Error::Inval),
            "ends outside the page"
        );
        assert_eq!(
            a.get_realm_key(&mut page, SHARED, SHARED + 8192, 48, 0),
            Err(El3Error::BadAddr)
        );
        assert_eq!(
            a.get_realm_key(&mut page, SHARED, SHARED + 16, 48, 0),
            Ok(48)
        );
        assert_eq!(page[16..64], RAK);
        assert_eq!(a.rak, [0; 48], "EL3 keeps no copy");
        assert_eq!(
            a.get_realm_key(&mut page, SHARED, SHARED, 4096, 0),
            Err(El3Error::Unknown),
            "once per boot"
        );
    }

    #[test]
    fn bad_keys() {
        assert!(PlatformAttestation::new(&[0; 48], &RAK, components()).is_err());
        assert!(PlatformAttestation::new(&CPAK, &[0xff; 48], components()).is_err());
        assert_eq!(public_key(&[0; 48]), Err(BadKey));
    }

    #[test]
    fn tokens_carry_the_signing_keys_deterministic_signature() {
        use p384::ecdsa::signature::hazmat::PrehashSigner;
        let claims = b"claims of some length, more than one SHA-384 block? no, but enough";
        let mut out = [0u8; 512];
        let n = sign_token(&private_scalar(&CPAK).unwrap(), claims, &mut out).unwrap();
        let want: Signature = SigningKey::from_slice(&CPAK)
            .unwrap()
            .sign_prehash(&sha2::Sha384::digest(
                [
                    &[0x84, 0x6A][..],
                    b"Signature1",
                    &[0x44],
                    &PROTECTED_ES384,
                    &[0x40, 0x58, claims.len() as u8],
                    claims,
                ]
                .concat(),
            ))
            .unwrap();
        assert_eq!(&out[n - 96..n], &want.to_bytes()[..]);
        assert!(private_scalar(&[0; 48]).is_err());
        assert!(private_scalar(&[0xff; 48]).is_err());
    }

    #[test]
    fn an_image_header_bounds_the_measured_bytes() {
        let mut head = [0u8; 64];
        head[16..24].copy_from_slice(&4096u64.to_le_bytes());
        head[56..60].copy_from_slice(b"ARM\x64");
        assert_eq!(declared_len(&head, 1 << 20), Some(4096));
        assert_eq!(declared_len(&head, 4096), Some(4096));
        assert_eq!(declared_len(&head, 4095), None, "larger than the window");
        assert_eq!(declared_len(&head[..63], 1 << 20), None, "a short header");
        for size in [0u64, 63, u64::MAX] {
            let mut h = head;
            h[16..24].copy_from_slice(&size.to_le_bytes());
            assert_eq!(declared_len(&h, 1 << 20), None, "size {size}");
        }
        let mut h = head;
        h[59] = b'4';
        assert_eq!(declared_len(&h, 1 << 20), None, "another magic");
        assert_eq!(declared_len(&[0; 64], 1 << 20), None, "no header");
    }

    #[test]
    fn a_loaded_image_is_measured_as_far_as_it_declares() {
        let mut img: Vec<u8> = (0..200u32).map(|i| (i % 251) as u8 | 1).collect();
        img[16..24].copy_from_slice(&100u64.to_le_bytes());
        img[56..60].copy_from_slice(b"ARM\x64");
        assert_eq!(measure_loaded(&img, 4096), measure_image(&img[..100]));
        img[16..24].copy_from_slice(&300u64.to_le_bytes());
        assert_eq!(
            measure_loaded(&img, 4096),
            measure_image(&img),
            "declared past the file"
        );
        assert_eq!(
            measure_loaded(&img, 150),
            measure_image(&img[..150]),
            "no valid size"
        );
        img[56] = 0;
        assert_eq!(measure_loaded(&img, 4096), measure_image(&img), "no header");
        assert_eq!(
            measure_loaded(&img, 150),
            measure_image(&img[..150]),
            "window-bounded"
        );
    }

    #[test]
    fn image_measurement_ignores_trailing_zeros() {
        let img: Vec<u8> = (1..=100u8).collect();
        let mut padded = img.clone();
        padded.extend([0u8; 4099]);
        assert_eq!(image_len(&padded), 100);
        assert_eq!(measure_image(&padded), measure_image(&img));
        let mut inner = img.clone();
        inner.extend([0, 0, 5]);
        assert_eq!(image_len(&inner), 103, "zeros inside are kept");
        assert_eq!(image_len(&[0; 17]), 0);
        assert_eq!(image_len(&[]), 0);
        assert_eq!(
            image_len(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
            8
        );
        assert_eq!(
            measure_image(&[]).to_vec(),
            sha2::Sha256::digest([]).to_vec()
        );
        // Through cca_measure's engine, the same digest as RustCrypto's, across block edges.
        for len in [1usize, 55, 56, 64, 100, 4096 + 7] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8 + 1).collect();
            assert_eq!(
                measure_image(&data).to_vec(),
                sha2::Sha256::digest(&data).to_vec(),
                "{len} bytes"
            );
        }
        // In parts: the same as the whole, trailing zeros over several parts.
        let whole = [&img[..], &[0u8; 20][..]].concat();
        assert_eq!(
            measure_image_parts(&[&img[..1], &img[1..], &[0; 3], &[]]),
            measure_image(&whole)
        );
        assert_eq!(
            measure_image_parts(&[&img[..50], &[0; 10], &img[50..]]),
            measure_image(&[&img[..50], &[0; 10], &img[50..]].concat())
        );
        assert_eq!(measure_image_parts(&[&[0; 4], &[]]), measure_image(&[]));
    }

    #[test]
    fn claims_do_not_fit_small_buffers() {
        let id = [1u8; 33];
        let mut out = [0u8; 64];
        assert_eq!(
            encode_platform_claims(&[0; 32], &id, &components(), &mut out),
            Err(TooSmall)
        );
        let mut out = [0u8; MAX_TOKEN_LEN];
        let n = encode_platform_claims(&[0; 64], &id, &components(), &mut out).unwrap();
        assert!(n + 120 < MAX_TOKEN_LEN);
    }
}
