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
//! The additions are done here, on the `p384` crate's field elements, with the complete
//! mixed-addition formula for `a = -3` (Renes, Costello and Batina 2015, algorithm 5, the
//! one `p384` uses), so that a table entry goes straight from its words into the formula:
//! going through [`AffinePoint`] checked every entry against the curve equation and moved
//! it through byte encodings, which cost 40 % of each window.
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
use p384::elliptic_curve::sec1::{FromEncodedPoint, ToEncodedPoint};
use p384::elliptic_curve::subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use p384::elliptic_curve::PrimeField;
use p384::{AffinePoint, EncodedPoint, FieldBytes, FieldElement, Scalar, U384};

include!(concat!(env!("OUT_DIR"), "/table.rs"));

/// Signed 4-bit windows of a 384-bit scalar (96, and one for the last carry).
pub const WINDOWS: usize = 97;
/// Bits per window.
pub const WINDOW_BITS: u64 = 4;
/// Entries per window (`1..=8` times its power of 16 of the generator).
const ENTRIES: usize = 8;
/// 64-bit words of one coordinate.
const COORD_WORDS: usize = 6;
/// The curve's `b`.
const B: FieldElement = <p384::NistP384 as primeorder::PrimeCurveParams>::EQUATION_B;

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

/// A point in projective coordinates `(X : Y : Z)` (`x = X / Z`, `y = Y / Z`; the point at
/// infinity has `Z = 0`), as the additions of [`add_windows`] leave it.
#[derive(Clone, Copy, Debug)]
pub struct Point {
    x: FieldElement,
    y: FieldElement,
    z: FieldElement,
}

impl Point {
    /// The point at infinity.
    pub const IDENTITY: Self = Self {
        x: FieldElement::ZERO,
        y: FieldElement::ONE,
        z: FieldElement::ZERO,
    };

    /// The affine point (one field inversion), the point at infinity for `Z = 0`.
    pub fn to_affine(&self) -> AffinePoint {
        if bool::from(self.z.is_zero()) {
            return AffinePoint::IDENTITY;
        }
        let zinv = invert(&self.z);
        let x = self.x.multiply(&zinv).to_bytes();
        let y = self.y.multiply(&zinv).to_bytes();
        let e = EncodedPoint::from_affine_coordinates(&x, &y, false);
        // The formulas keep the point on the curve, so the check always passes.
        AffinePoint::from_encoded_point(&e).unwrap_or(AffinePoint::IDENTITY)
    }

    /// `self + (x, y)` for an affine point that is not the point at infinity: the complete
    /// formula for `a = -3` (Renes, Costello and Batina 2015, algorithm 5; 11 multiplications
    /// and two by `b`), correct for every `self`, the point at infinity and `±(x, y)`
    /// included.
    fn add_affine(&self, x: &FieldElement, y: &FieldElement, b: &FieldElement) -> Self {
        let (x1, y1, z1) = (&self.x, &self.y, &self.z);
        let xx = x1.multiply(x);
        let yy = y1.multiply(y);
        let xy = x1.add(y1).multiply(&x.add(y)).sub(&xx.add(&yy));
        let yz = y.multiply(z1).add(y1);
        let xz = x.multiply(z1).add(x1);
        let bz = xz.sub(&b.multiply(z1));
        let bz3 = bz.double().add(&bz);
        let yy_m = yy.sub(&bz3);
        let yy_p = yy.add(&bz3);
        let z3 = z1.double().add(z1);
        let bxz = b.multiply(&xz).sub(&z3.add(&xx));
        let bxz3 = bxz.double().add(&bxz);
        let xx3 = xx.double().add(&xx).sub(&z3);
        Self {
            x: yy_p.multiply(&xy).sub(&yz.multiply(&bxz3)),
            y: yy_p.multiply(&yy_m).add(&xx3.multiply(&bxz3)),
            z: yy_m.multiply(&yz).add(&xy.multiply(&xx3)),
        }
    }
}

impl From<&AffinePoint> for Point {
    fn from(p: &AffinePoint) -> Self {
        let e = p.to_encoded_point(false);
        let coord = |c: Option<&FieldBytes>| c.and_then(|b| FieldElement::from_bytes(b).into());
        match (coord(e.x()), coord(e.y())) {
            (Some(x), Some(y)) => Self {
                x,
                y,
                z: FieldElement::ONE,
            },
            _ => Self::IDENTITY,
        }
    }
}

impl ConditionallySelectable for Point {
    fn conditional_select(a: &Self, b: &Self, choice: Choice) -> Self {
        Self {
            x: FieldElement::conditional_select(&a.x, &b.x, choice),
            y: FieldElement::conditional_select(&a.y, &b.y, choice),
            z: FieldElement::conditional_select(&a.z, &b.z, choice),
        }
    }
}

/// `a^(2^n)`.
fn square_n(a: &FieldElement, n: usize) -> FieldElement {
    let mut r = *a;
    for _ in 0..n {
        r = r.square();
    }
    r
}

/// `1 / a` (0 for 0) as `a^(p - 2)`, in constant time: 385 squarings and 14 multiplications
/// along a fixed chain, under half the time of the `p384` crate's `invert` (divsteps). The
/// exponent `p - 2`, most significant bit first, is 255 ones, a zero, 32 ones, 64 zeros,
/// 30 ones, a zero and a one; `t_k` below is `a^(2^k - 1)` (k ones).
fn invert(a: &FieldElement) -> FieldElement {
    let t1 = *a;
    let t2 = square_n(&t1, 1).multiply(&t1);
    let t3 = square_n(&t2, 1).multiply(&t1);
    let t6 = square_n(&t3, 3).multiply(&t3);
    let t12 = square_n(&t6, 6).multiply(&t6);
    let t15 = square_n(&t12, 3).multiply(&t3);
    let t30 = square_n(&t15, 15).multiply(&t15);
    let t32 = square_n(&t30, 2).multiply(&t2);
    let t60 = square_n(&t30, 30).multiply(&t30);
    let t120 = square_n(&t60, 60).multiply(&t60);
    let t240 = square_n(&t120, 120).multiply(&t120);
    let t255 = square_n(&t240, 15).multiply(&t15);
    let r = square_n(&t255, 1 + 32).multiply(&t32);
    let r = square_n(&r, 64 + 30).multiply(&t30);
    square_n(&r, 2).multiply(&t1)
}

/// One coordinate of a table entry as a field element (the entries are below the modulus:
/// `build.rs` wrote them from affine points, and the tests convert every one).
fn coordinate(words: &[u64]) -> FieldElement {
    let mut w = [0u64; COORD_WORDS];
    w.copy_from_slice(words);
    FieldElement::from_uint(U384::from_words(w)).unwrap_or(FieldElement::ZERO)
}

/// `digit · 16^window · G` as affine coordinates, and whether the digit is zero (the point is
/// then a table entry the caller must not add).
fn window_point(window: usize, digit: i8) -> (FieldElement, FieldElement, Choice) {
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
    let x = coordinate(&w[..COORD_WORDS]);
    let y = coordinate(&w[COORD_WORDS..]);
    let y = FieldElement::conditional_select(&y, &y.neg(), negative);
    (x, y, magnitude.ct_eq(&0))
}

/// `acc + Σ_{i in windows} digits[i] · 16^i · G`. Windows past [`WINDOWS`] are ignored.
pub fn add_windows(mut acc: Point, digits: &Digits, windows: Range<usize>) -> Point {
    let end = windows.end.min(WINDOWS);
    for i in windows.start.min(end)..end {
        let (x, y, zero) = window_point(i, digits.0[i]);
        let sum = acc.add_affine(&x, &y, &B);
        acc = Point::conditional_select(&sum, &acc, zero);
    }
    acc
}

/// `k · G`.
pub fn mul(k: &Scalar) -> Point {
    let mut bytes = [0u8; 48];
    bytes.copy_from_slice(&k.to_repr());
    let mut d = Digits::new(&bytes);
    let p = add_windows(Point::IDENTITY, &d, 0..WINDOWS);
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
    use p384::ProjectivePoint;
    use proptest::prelude::*;
    use std::format;

    /// The affine point `(x, y)`, checked to be on the curve.
    fn affine(x: &FieldElement, y: &FieldElement) -> ProjectivePoint {
        let e = EncodedPoint::from_affine_coordinates(&x.to_bytes(), &y.to_bytes(), false);
        let p = Option::<AffinePoint>::from(AffinePoint::from_encoded_point(&e));
        ProjectivePoint::from(p.expect("on the curve"))
    }

    fn projective(p: &Point) -> ProjectivePoint {
        ProjectivePoint::from(p.to_affine())
    }

    #[test]
    fn every_table_entry_is_its_multiple_of_the_generator() {
        let mut base = ProjectivePoint::GENERATOR;
        for i in 0..WINDOWS {
            let mut want = ProjectivePoint::IDENTITY;
            for j in 1..=ENTRIES as i8 {
                want += base;
                let (x, y, zero) = window_point(i, j);
                assert!(!bool::from(zero));
                assert_eq!(affine(&x, &y), want, "window {i}, entry {j}");
                let (x, y, _) = window_point(i, -j);
                assert_eq!(affine(&x, &y), -want);
            }
            assert!(bool::from(window_point(i, 0).2));
            for _ in 0..4 {
                base = base.double();
            }
        }
    }

    #[test]
    fn the_inversion_is_the_crates() {
        let (mut a, y, _) = window_point(3, 5);
        for _ in 0..64 {
            assert_eq!(invert(&a), a.invert().unwrap());
            assert_eq!(invert(&a).multiply(&a), FieldElement::ONE);
            a = a.multiply(&y).add(&FieldElement::ONE);
        }
        for v in [1u64, 2, 3, u64::MAX] {
            let a = FieldElement::from_u64(v);
            assert_eq!(invert(&a), a.invert().unwrap(), "{v}");
            assert_eq!(invert(&a.neg()), a.neg().invert().unwrap(), "-{v}");
        }
        assert_eq!(invert(&FieldElement::ZERO), FieldElement::ZERO);
    }

    #[test]
    fn the_addition_is_complete() {
        let b = B;
        let g = ProjectivePoint::GENERATOR;
        let (x, y, _) = window_point(0, 1);
        let (nx, ny, _) = window_point(0, -1);
        for (k, name) in [
            (0u64, "infinity"),
            (1, "doubling"),
            (2, "general"),
            (5, "general"),
        ] {
            let acc = Point::from(&(g * Scalar::from(k)).to_affine());
            assert_eq!(
                projective(&acc.add_affine(&x, &y, &b)),
                g * Scalar::from(k + 1),
                "{name}"
            );
        }
        let acc = Point::from(&g.to_affine());
        assert!(
            bool::from(projective(&acc.add_affine(&nx, &ny, &b)).is_identity()),
            "P + -P"
        );
        assert!(bool::from(projective(&Point::IDENTITY).is_identity()));
        assert_eq!(
            Point::from(&AffinePoint::IDENTITY).to_affine(),
            AffinePoint::IDENTITY
        );
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
            assert_eq!(
                projective(&mul(&k)),
                ProjectivePoint::GENERATOR * k,
                "k = {v}"
            );
        }
        let minus_one = -Scalar::ONE;
        assert_eq!(projective(&mul(&minus_one)), -ProjectivePoint::GENERATOR);
        assert!(bool::from(projective(&mul(&Scalar::ZERO)).is_identity()));
    }

    #[test]
    fn windows_in_slices_in_any_order_add_up() {
        let k = Scalar::from(0x1234_5678_9abc_def0u64).square().square();
        let mut bytes = [0u8; 48];
        bytes.copy_from_slice(&k.to_repr());
        let d = Digits::new(&bytes);
        let mut acc = add_windows(Point::IDENTITY, &d, 64..WINDOWS + 10);
        acc = add_windows(acc, &d, 0..8);
        // Through affine coordinates between slices, as the RMM stores its progress.
        acc = Point::from(&acc.to_affine());
        acc = add_windows(acc, &d, 8..64);
        assert_eq!(projective(&acc), ProjectivePoint::GENERATOR * k);
        assert_eq!(
            projective(&add_windows(acc, &d, 200..300)),
            projective(&acc)
        );
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
            prop_assert_eq!(projective(&mul(&k)), ProjectivePoint::GENERATOR * k);
        }
    }
}
