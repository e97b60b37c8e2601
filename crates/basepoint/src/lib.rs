//! Multiples of the P-384 generator, `k · G`, from a table of precomputed points.
//!
//! The `p384` crate multiplies the generator like any other point: 384 doublings and 96
//! additions with a 4-bit window built at every call. Attestation multiplies only the
//! generator (public keys, ECDSA's `R = k · G`), so this crate trades 74 KiB of read-only
//! data for the doublings: the scalar is recoded into 97 signed 4-bit digits `d_i` in
//! `-8..=8` (`k = Σ d_i · 16^i`), and `k · G = Σ d_i · (16^i · G)` is 97 mixed additions
//! of entries of [`TABLE`](self) (`j · 16^i · G` for `j` in 1..=8, made by `build.rs` with
//! the `p384` crate's own arithmetic).
//!
//! Everything that depends on the scalar is constant time: the recoding is arithmetic, each
//! window reads all eight of its entries and keeps one with [`ConditionallySelectable`], the
//! sign is a conditional negation and a zero digit adds and then selects the sum away.
//!
//! The windows can be added in any order and in several calls ([`add_windows`]), which is
//! how the RMM signs realm tokens in slices.

#![no_std]
#![forbid(unsafe_code)]

use core::ops::Range;
use p384::elliptic_curve::ops::Reduce;
use p384::elliptic_curve::point::AffineCoordinates;
use p384::elliptic_curve::sec1::FromEncodedPoint;
use p384::elliptic_curve::subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use p384::elliptic_curve::PrimeField;
use p384::{AffinePoint, EncodedPoint, FieldBytes, ProjectivePoint, Scalar, U384};

include!(concat!(env!("OUT_DIR"), "/table.rs"));

/// Signed 4-bit windows of a 384-bit scalar (96, and one for the last carry).
pub const WINDOWS: usize = 97;
/// Bits per window.
pub const WINDOW_BITS: u64 = 4;
/// Entries per window (`1..=8` times its power of 16 of the generator).
const ENTRIES: usize = 8;
/// 64-bit words of one coordinate.
const COORD_WORDS: usize = 6;

/// A scalar as signed digits, least significant first: `k = Σ digits[i] · 16^i`, each digit
/// in `-8..=8`.
#[derive(Clone)]
pub struct Digits([i8; WINDOWS]);

impl Digits {
    /// Recodes a big-endian 384-bit scalar (any value: the multiple is then of `k mod n`).
    pub fn new(k: &[u8; 48]) -> Self {
        let mut d = [0i8; WINDOWS];
        let mut carry = 0u8;
        for (i, digit) in d.iter_mut().take(WINDOWS - 1).enumerate() {
            let nibble = (k[47 - i / 2] >> (4 * (i & 1))) & 0xf;
            // v in 0..=16; a digit of 8 or more becomes v - 16 and carries one.
            let v = nibble + carry;
            carry = (v + 8) >> 4;
            *digit = v as i8 - (carry << 4) as i8;
        }
        d[WINDOWS - 1] = carry as i8;
        Self(d)
    }

    /// Overwrites the digits (they are as secret as the scalar).
    pub fn wipe(&mut self) {
        self.0 = [0; WINDOWS];
    }
}

/// `digit · 16^window · G` as an affine point, and whether the digit is zero (the point is
/// then a table entry the caller must not add).
fn window_point(window: usize, digit: i8) -> (AffinePoint, Choice) {
    let negative = Choice::from((digit as u8) >> 7);
    let mask = digit >> 7;
    let magnitude = ((digit ^ mask) - mask) as u8;
    let entries: &[[u64; 2 * COORD_WORDS]; ENTRIES] = &TABLE[window];
    let mut w = entries[0];
    for (j, entry) in entries.iter().enumerate().skip(1) {
        let hit = magnitude.ct_eq(&(j as u8 + 1));
        for (word, e) in w.iter_mut().zip(entry) {
            word.conditional_assign(e, hit);
        }
    }
    let (mut x, mut y) = (FieldBytes::default(), FieldBytes::default());
    for t in 0..COORD_WORDS {
        x[8 * t..8 * t + 8].copy_from_slice(&w[t].to_be_bytes());
        y[8 * t..8 * t + 8].copy_from_slice(&w[COORD_WORDS + t].to_be_bytes());
    }
    let e = EncodedPoint::from_affine_coordinates(&x, &y, false);
    // Every entry is a curve point (`build.rs`; the tests decode all of them), so the
    // identity fallback is never taken.
    let p = AffinePoint::from_encoded_point(&e).unwrap_or(AffinePoint::IDENTITY);
    let p = AffinePoint::conditional_select(&p, &-p, negative);
    (p, magnitude.ct_eq(&0))
}

/// `acc + Σ_{i in windows} digits[i] · 16^i · G`. Windows past [`WINDOWS`] are ignored.
pub fn add_windows(
    mut acc: ProjectivePoint,
    digits: &Digits,
    windows: Range<usize>,
) -> ProjectivePoint {
    let end = windows.end.min(WINDOWS);
    for i in windows.start.min(end)..end {
        let (p, zero) = window_point(i, digits.0[i]);
        let sum = acc + p;
        acc = ProjectivePoint::conditional_select(&sum, &acc, zero);
    }
    acc
}

/// `k · G`.
pub fn mul(k: &Scalar) -> ProjectivePoint {
    let mut bytes = [0u8; 48];
    bytes.copy_from_slice(&k.to_repr());
    let mut d = Digits::new(&bytes);
    let p = add_windows(ProjectivePoint::IDENTITY, &d, 0..WINDOWS);
    d.wipe();
    bytes.fill(0);
    p
}

/// ECDSA's last step with the nonce `k`, after `R = k · G`: `r = x(R) mod n` and
/// `s = k⁻¹ (z + r · d) mod n`, as `r ‖ s` (big-endian, 96 bytes). `z` is the digest already
/// reduced modulo the group order. `None` when `k`, `r` or `s` is zero.
pub fn ecdsa_finish(d: &Scalar, k: &Scalar, z: &Scalar, big_r: &AffinePoint) -> Option<[u8; 96]> {
    let k_inv: Option<Scalar> = k.invert().into();
    let r = <Scalar as Reduce<U384>>::reduce_bytes(&big_r.x());
    let s = k_inv? * (*z + r * d);
    if bool::from(r.is_zero() | s.is_zero()) {
        return None;
    }
    let mut out = [0u8; 96];
    out[..48].copy_from_slice(&r.to_repr());
    out[48..].copy_from_slice(&s.to_repr());
    Some(out)
}

/// An ECDSA signature over the reduced digest `z` with the private scalar `d` and the nonce
/// `k` (which the caller derives, RFC 6979 for one): `r ‖ s`, `None` as [`ecdsa_finish`].
pub fn ecdsa_sign(d: &Scalar, k: &Scalar, z: &Scalar) -> Option<[u8; 96]> {
    ecdsa_finish(d, k, z, &mul(k).to_affine())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use p384::ecdsa::signature::hazmat::PrehashVerifier;
    use p384::ecdsa::{Signature, SigningKey, VerifyingKey};
    use p384::elliptic_curve::group::Group;
    use proptest::prelude::*;
    use std::format;

    #[test]
    fn every_table_entry_is_its_multiple_of_the_generator() {
        let mut base = ProjectivePoint::GENERATOR;
        for i in 0..WINDOWS {
            let mut want = ProjectivePoint::IDENTITY;
            for j in 1..=ENTRIES as i8 {
                want += base;
                let (p, zero) = window_point(i, j);
                assert!(!bool::from(zero));
                assert_eq!(ProjectivePoint::from(p), want, "window {i}, entry {j}");
                let (n, _) = window_point(i, -j);
                assert_eq!(ProjectivePoint::from(n), -want);
            }
            assert!(bool::from(window_point(i, 0).1));
            for _ in 0..4 {
                base = base.double();
            }
        }
    }

    #[test]
    fn recoding_gives_back_the_scalar() {
        for k in [[0u8; 48], [0xff; 48], [0x88; 48], [0x77; 48]] {
            let d = Digits::new(&k);
            assert!(d.0.iter().all(|&x| (-8..=8).contains(&x)));
            // Σ d_i 16^i, evaluated as a 392-bit little-endian number.
            let mut acc = [0i32; 50];
            for (i, &x) in d.0.iter().enumerate() {
                acc[i / 2] += (x as i32) << (4 * (i & 1));
            }
            let mut carry = 0i32;
            let mut out = [0u8; 50];
            for (o, a) in out.iter_mut().zip(acc) {
                let v = a + carry;
                *o = v.rem_euclid(256) as u8;
                carry = v.div_euclid(256);
            }
            let mut le = k;
            le.reverse();
            assert_eq!(&out[..48], &le, "scalar {k:02x?}");
            assert_eq!(&out[48..], &[0, 0]);
        }
    }

    #[test]
    fn small_and_edge_scalars() {
        for v in [0u64, 1, 2, 7, 8, 9, 15, 16, 17, 0x88, u64::MAX] {
            let k = Scalar::from(v);
            assert_eq!(mul(&k), ProjectivePoint::GENERATOR * k, "k = {v}");
        }
        let minus_one = -Scalar::ONE;
        assert_eq!(mul(&minus_one), -ProjectivePoint::GENERATOR);
        assert!(bool::from(mul(&Scalar::ZERO).is_identity()));
    }

    #[test]
    fn windows_in_slices_in_any_order_add_up() {
        let k = Scalar::from(0x1234_5678_9abc_def0u64).square().square();
        let mut bytes = [0u8; 48];
        bytes.copy_from_slice(&k.to_repr());
        let d = Digits::new(&bytes);
        let mut acc = add_windows(ProjectivePoint::IDENTITY, &d, 64..WINDOWS + 10);
        acc = add_windows(acc, &d, 0..8);
        acc = add_windows(acc, &d, 8..64);
        assert_eq!(acc, ProjectivePoint::GENERATOR * k);
        assert_eq!(add_windows(acc, &d, 200..300), acc);
    }

    #[test]
    fn signatures_are_the_ecdsa_crates() {
        let d = Scalar::from(0xdead_beef_u64).square().square().square();
        let k = Scalar::from(0x1234_5678u64)
            .square()
            .square()
            .square()
            .square();
        let z = Scalar::from(42u64).square().square();
        let sig = ecdsa_sign(&d, &k, &z).unwrap();
        let key = SigningKey::from_bytes(&d.to_repr()).unwrap();
        let (want, _) =
            ecdsa::hazmat::SignPrimitive::try_sign_prehashed(&d, k, &z.to_repr()).unwrap();
        let want: Signature = want;
        assert_eq!(sig.as_slice(), want.to_bytes().as_slice());
        let vk = VerifyingKey::from(&key);
        vk.verify_prehash(&z.to_repr(), &Signature::from_slice(&sig).unwrap())
            .unwrap();
        assert_eq!(ecdsa_sign(&d, &Scalar::ZERO, &z), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn random_scalars_match_the_crate(bytes in proptest::array::uniform32(any::<u8>()), more in proptest::array::uniform16(any::<u8>())) {
            let mut repr = FieldBytes::default();
            repr[..32].copy_from_slice(&bytes);
            repr[32..].copy_from_slice(&more);
            repr[0] &= 0x7f; // below the group order
            let k = Option::<Scalar>::from(Scalar::from_repr(repr)).unwrap();
            prop_assert_eq!(mul(&k), ProjectivePoint::GENERATOR * k);
        }
    }
}
