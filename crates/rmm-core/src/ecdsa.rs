//! Restartable ES384 signing (ECDSA over P-384 with a SHA-384 digest) for realm tokens.
//!
//! TF-RMM signs a realm token in slices (mbed TLS restartable ECDSA) so that a pending
//! interrupt can end an `RSI_ATTESTATION_TOKEN_CONTINUE` early. This module does the same
//! on the `p384` crate's field and group arithmetic:
//!
//! 1. [`SignState::start`] derives the nonce `k` from the key, the digest and fresh entropy
//!    (RFC 6979 with additional data, "hedged" signing) and reduces the digest to `z`;
//! 2. the only expensive part, `R = k·G`, adds the 97 signed 4-bit windows of `k` from
//!    [`cca_basepoint`]'s table of generator multiples, least significant first, in constant
//!    time: [`Running::run`] does a given number of bits (whole windows), and
//!    [`Running::save`] stores the partial point (affine, SEC1) between calls;
//! 3. [`Running::finish`] computes `r = x(R) mod n` and `s = k⁻¹ (z + r·d) mod n` and returns
//!    `r ‖ s`, the 96-byte COSE signature.
//!
//! The state ([`SignState`]) is plain bytes, so it can live in a REC auxiliary granule (Realm
//! PAS) between calls. It holds the nonce: the caller must overwrite it once the signature
//! is made or abandoned.

use p384::elliptic_curve::ops::Reduce;
use p384::elliptic_curve::sec1::{FromEncodedPoint, ToEncodedPoint};
use p384::elliptic_curve::{consts::U48, Curve, FieldBytesEncoding, PrimeField};
use p384::{AffinePoint, EncodedPoint, FieldBytes, NistP384, NonZeroScalar};
use p384::{Scalar, U384};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Bits of the P-384 scalars.
pub const SCALAR_BITS: u64 = 384;
/// Bits of work one signature takes: [`cca_basepoint::WINDOWS`] windows of 4 bits (the last
/// one holds the signed recoding's carry).
pub const WORK_BITS: u64 = cca_basepoint::WINDOWS as u64 * cca_basepoint::WINDOW_BITS;
/// Bytes of a P-384 scalar or coordinate.
pub const SCALAR_LEN: usize = 48;
/// Bytes of an ES384 signature (`r ‖ s`, big-endian, fixed length).
pub const SIGNATURE_LEN: usize = 96;
/// Bytes of an uncompressed SEC1 point (`04 ‖ x ‖ y`).
pub const POINT_LEN: usize = 97;

/// Why signing could not go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignError {
    /// The private key is zero or not below the group order.
    InvalidKey,
    /// The stored state does not hold a valid partial computation.
    BadState,
    /// `r` or `s` came out zero (probability 2⁻³⁸⁴): sign again with another nonce.
    Degenerate,
}

/// A signature in progress, as stored between calls.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct SignState {
    /// The nonce `k`, big-endian.
    k: [u8; SCALAR_LEN],
    /// The digest reduced modulo the group order (`z`), big-endian.
    z: [u8; SCALAR_LEN],
    /// The partial product: the windows of `k` below bit `done` times G, as an uncompressed
    /// SEC1 point, or all zero for the point at infinity.
    acc: [u8; POINT_LEN],
    _pad: [u8; 7],
    /// Bits of `k` processed, whole windows: a multiple of 4 up to [`WORK_BITS`].
    done: u64,
}
const _: () = assert!(core::mem::size_of::<SignState>() == 208);

/// Parses a big-endian private scalar.
pub fn private_key(d: &[u8; SCALAR_LEN]) -> Result<NonZeroScalar, SignError> {
    Option::from(NonZeroScalar::from_repr(FieldBytes::from(*d))).ok_or(SignError::InvalidKey)
}

/// The public key of a private scalar: `(x, y)`, big-endian.
pub fn public_key(d: &[u8; SCALAR_LEN]) -> Result<([u8; SCALAR_LEN], [u8; SCALAR_LEN]), SignError> {
    let d = private_key(d)?;
    let p = cca_basepoint::mul(&d).to_affine();
    let e = p.to_encoded_point(false);
    let (Some(x), Some(y)) = (e.x(), e.y()) else {
        return Err(SignError::InvalidKey);
    };
    Ok(((*x).into(), (*y).into()))
}

impl SignState {
    /// Starts signing `digest` (SHA-384, 48 bytes) with the private key `d`. `entropy` is
    /// mixed into the RFC 6979 nonce derivation (it may be empty: the nonce is then the
    /// deterministic one).
    pub fn start(
        d: &[u8; SCALAR_LEN],
        digest: &[u8; SCALAR_LEN],
        entropy: &[u8],
    ) -> Result<Self, SignError> {
        let d = private_key(d)?;
        let z = <Scalar as Reduce<U384>>::reduce_bytes(&FieldBytes::from(*digest));
        let n: FieldBytes = NistP384::ORDER.encode_field_bytes();
        let k = rfc6979::generate_k::<crate::engine_digest::EngineSha384, U48>(
            &d.to_repr(),
            &n,
            &z.to_repr(),
            entropy,
        );
        Ok(Self {
            k: k.into(),
            z: z.to_repr().into(),
            acc: [0; POINT_LEN],
            _pad: [0; 7],
            done: 0,
        })
    }

    /// True once all [`WORK_BITS`] are processed ([`Running::finish`] can run).
    pub fn is_done(&self) -> bool {
        self.done >= WORK_BITS
    }

    /// Bits processed so far.
    pub fn bits_done(&self) -> u64 {
        self.done
    }

    /// A state holding nothing (for wiping).
    pub const fn zeroed() -> Self {
        Self {
            k: [0; SCALAR_LEN],
            z: [0; SCALAR_LEN],
            acc: [0; POINT_LEN],
            _pad: [0; 7],
            done: 0,
        }
    }
}

/// A signature being computed in memory (between [`Running::load`] and [`Running::save`]).
pub struct Running {
    k: [u8; SCALAR_LEN],
    digits: cca_basepoint::Digits,
    acc: cca_basepoint::Point,
    done: u64,
}

impl Running {
    /// Resumes a stored state.
    pub fn load(s: &SignState) -> Result<Self, SignError> {
        if s.done > WORK_BITS || s.done % cca_basepoint::WINDOW_BITS != 0 {
            return Err(SignError::BadState);
        }
        let acc = if s.acc.iter().all(|&b| b == 0) {
            cca_basepoint::Point::IDENTITY
        } else {
            let e = EncodedPoint::from_bytes(s.acc).map_err(|_| SignError::BadState)?;
            let p: Option<AffinePoint> = AffinePoint::from_encoded_point(&e).into();
            cca_basepoint::Point::from(&p.ok_or(SignError::BadState)?)
        };
        Ok(Self {
            k: s.k,
            digits: cca_basepoint::Digits::new(&s.k),
            acc,
            done: s.done,
        })
    }

    /// Processes up to `bits` more bits of the nonce, rounded up to whole 4-bit windows;
    /// returns how many it did.
    pub fn run(&mut self, bits: u64) -> u64 {
        let first = (self.done / cca_basepoint::WINDOW_BITS) as usize;
        let windows =
            bits.div_ceil(cca_basepoint::WINDOW_BITS)
                .min((WORK_BITS - self.done) / cca_basepoint::WINDOW_BITS) as usize;
        self.acc = cca_basepoint::add_windows(self.acc, &self.digits, first..first + windows);
        let n = windows as u64 * cca_basepoint::WINDOW_BITS;
        self.done += n;
        n
    }

    /// True once all [`WORK_BITS`] are processed.
    pub fn is_done(&self) -> bool {
        self.done >= WORK_BITS
    }

    /// Stores the progress into `s` (which must be the state this was loaded from).
    pub fn save(&self, s: &mut SignState) {
        let e = self.acc.to_affine().to_encoded_point(false);
        match e.as_bytes().try_into() {
            Ok(b) => s.acc = b,
            // The point at infinity encodes as one zero byte.
            Err(_) => s.acc = [0; POINT_LEN],
        }
        s.done = self.done;
    }

    /// Completes the signature with the private key `d` and the state's digest: `r ‖ s`.
    pub fn finish(
        &self,
        state: &SignState,
        d: &[u8; SCALAR_LEN],
    ) -> Result<[u8; SIGNATURE_LEN], SignError> {
        if !self.is_done() {
            return Err(SignError::BadState);
        }
        let d = private_key(d)?;
        let k: Option<Scalar> = Scalar::from_repr(FieldBytes::from(self.k)).into();
        let z: Option<Scalar> = Scalar::from_repr(FieldBytes::from(state.z)).into();
        let (Some(k), Some(z)) = (k, z) else {
            return Err(SignError::BadState);
        };
        if bool::from(k.is_zero()) {
            return Err(SignError::BadState);
        }
        cca_basepoint::ecdsa_finish(&d, &k, &z, &self.acc.to_affine()).ok_or(SignError::Degenerate)
    }
}

/// Signs `digest` in one go: for boot-time and test use.
pub fn sign_now(
    d: &[u8; SCALAR_LEN],
    digest: &[u8; SCALAR_LEN],
    entropy: &[u8],
) -> Result<[u8; SIGNATURE_LEN], SignError> {
    let st = SignState::start(d, digest, entropy)?;
    let mut r = Running::load(&st)?;
    r.run(WORK_BITS);
    r.finish(&st, d)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use p384::ecdsa::signature::hazmat::PrehashVerifier;
    use p384::ecdsa::{Signature, VerifyingKey};

    /// The development RAK of TF-A's QEMU port and TF-RMM's host harness (a published test
    /// key, attestation.md §1.6).
    pub(crate) const D: [u8; 48] = [
        0x20, 0x11, 0xC7, 0xF0, 0x3C, 0xEE, 0x43, 0x25, 0x17, 0x6E, 0x52, 0x4F, 0x03, 0x3C, 0x0C,
        0xE1, 0xE2, 0x1A, 0x76, 0xE6, 0xC1, 0xA4, 0xF0, 0xB8, 0x39, 0xAA, 0x1D, 0xF6, 0x1E, 0x0E,
        0x8A, 0x5C, 0x8A, 0x05, 0x74, 0x0F, 0x9B, 0x69, 0xEF, 0xA7, 0xEB, 0x1A, 0x41, 0x85, 0xBD,
        0x11, 0x7F, 0x68,
    ];

    fn verifier(d: &[u8; 48]) -> VerifyingKey {
        let (x, y) = public_key(d).unwrap();
        let mut sec1 = [0u8; 97];
        sec1[0] = 4;
        sec1[1..49].copy_from_slice(&x);
        sec1[49..].copy_from_slice(&y);
        VerifyingKey::from_sec1_bytes(&sec1).unwrap()
    }

    fn verifies(d: &[u8; 48], digest: &[u8; 48], sig: &[u8; 96]) -> bool {
        let s = Signature::from_slice(sig).unwrap();
        verifier(d).verify_prehash(digest, &s).is_ok()
    }

    #[test]
    fn one_go_signatures_verify_with_the_p384_crate() {
        for seed in 0u8..4 {
            let digest = [seed.wrapping_mul(37); 48];
            let sig = sign_now(&D, &digest, &[seed]).unwrap();
            assert!(verifies(&D, &digest, &sig));
            let mut bad = sig;
            bad[95] ^= 1;
            assert!(
                !verifies(&D, &digest, &bad),
                "a flipped bit must not verify"
            );
            let mut other = digest;
            other[0] ^= 0x80;
            assert!(
                !verifies(&D, &other, &sig),
                "another digest must not verify"
            );
        }
    }

    #[test]
    fn entropy_changes_the_nonce_but_not_validity() {
        let digest = [7u8; 48];
        let a = sign_now(&D, &digest, b"one").unwrap();
        let b = sign_now(&D, &digest, b"two").unwrap();
        assert_ne!(a, b);
        assert!(verifies(&D, &digest, &a) && verifies(&D, &digest, &b));
        assert_eq!(
            a,
            sign_now(&D, &digest, b"one").unwrap(),
            "RFC 6979 is deterministic"
        );
    }

    #[test]
    fn sliced_signing_gives_the_same_signature() {
        let digest = [0x5Au8; 48];
        let whole = sign_now(&D, &digest, b"e").unwrap();
        for slice in [1u64, 4, 7, 16, 64, 383, 1000] {
            let mut st = SignState::start(&D, &digest, b"e").unwrap();
            let mut calls = 0;
            while !st.is_done() {
                let mut r = Running::load(&st).unwrap();
                let n = r.run(slice);
                assert_eq!(n, (slice.div_ceil(4) * 4).min(WORK_BITS - st.bits_done()));
                r.save(&mut st);
                calls += 1;
            }
            assert_eq!(calls, 97u64.div_ceil(slice.div_ceil(4)));
            let r = Running::load(&st).unwrap();
            assert_eq!(r.finish(&st, &D).unwrap(), whole, "slice {slice}");
        }
    }

    #[test]
    fn invalid_keys_are_refused() {
        let digest = [1u8; 48];
        assert_eq!(
            SignState::start(&[0; 48], &digest, &[]).unwrap_err(),
            SignError::InvalidKey
        );
        // The group order itself and anything above it are not scalars.
        let n: [u8; 48] = NistP384::ORDER.encode_field_bytes().into();
        assert_eq!(
            SignState::start(&n, &digest, &[]).unwrap_err(),
            SignError::InvalidKey
        );
        assert_eq!(
            SignState::start(&[0xff; 48], &digest, &[]).unwrap_err(),
            SignError::InvalidKey
        );
        assert_eq!(public_key(&[0; 48]).unwrap_err(), SignError::InvalidKey);
        let st = SignState::start(&D, &digest, &[]).unwrap();
        let mut r = Running::load(&st).unwrap();
        r.run(WORK_BITS);
        assert_eq!(r.finish(&st, &[0; 48]).unwrap_err(), SignError::InvalidKey);
    }

    #[test]
    fn corrupted_states_are_refused() {
        let digest = [3u8; 48];
        let mut st = SignState::start(&D, &digest, &[]).unwrap();
        let mut r = Running::load(&st).unwrap();
        r.run(100);
        r.save(&mut st);
        // A point off the curve.
        let mut bad = st;
        bad.acc[96] ^= 1;
        assert_eq!(Running::load(&bad).err(), Some(SignError::BadState));
        // Not an uncompressed point.
        let mut bad = st;
        bad.acc[0] = 0x07;
        assert_eq!(Running::load(&bad).err(), Some(SignError::BadState));
        // Too many bits, or not whole windows.
        let mut bad = st;
        bad.done = WORK_BITS + 4;
        assert_eq!(Running::load(&bad).err(), Some(SignError::BadState));
        bad.done = 6;
        assert_eq!(Running::load(&bad).err(), Some(SignError::BadState));
        // Finishing early.
        let r = Running::load(&st).unwrap();
        assert_eq!(r.finish(&st, &D).unwrap_err(), SignError::BadState);
        // A nonce that is not a scalar.
        let mut bad = st;
        bad.k = [0xff; 48];
        let mut r = Running::load(&bad).unwrap();
        r.run(WORK_BITS);
        assert_eq!(r.finish(&bad, &D).unwrap_err(), SignError::BadState);
        // A zero nonce cannot be inverted.
        let mut bad = SignState::zeroed();
        bad.done = WORK_BITS;
        let r = Running::load(&bad).unwrap();
        assert_eq!(r.finish(&bad, &D).unwrap_err(), SignError::BadState);
    }

    #[test]
    fn the_known_development_key_has_the_published_public_x() {
        // attestation.md §1.6: TF-A's sample RAK has public x starting 76f98809.
        let (x, _) = public_key(&D).unwrap();
        assert_eq!(x[..4], [0x76, 0xf9, 0x88, 0x09]);
    }
}
