//! Where SHA-2 blocks are compressed: a [`Sha2Engine`].
//!
//! Every hash this crate computes goes through one engine. [`Software`] (the `sha2` crate's
//! portable compression functions) is the default; firmware that can do better (the RMM with
//! the CPU's FEAT_SHA256 / FEAT_SHA512 instructions) [`install`]s its own engine once at boot,
//! and from then on every caller of this crate's API (measurements, attestation, anything
//! that calls [`crate::hash`] or uses a [`crate::Hasher`]) gets it. An engine must compute
//! exactly what the software does; the firmware checks that with a known-answer test before
//! installing it.

use sha2::digest::generic_array::GenericArray;

/// SHA-256 block size in bytes.
pub const SHA256_BLOCK: usize = 64;
/// SHA-512 (and SHA-384) block size in bytes.
pub const SHA512_BLOCK: usize = 128;

/// Compresses whole SHA-2 blocks into a chaining state (FIPS 180-4 §6.2.2 and §6.4.2 for one
/// block, repeated).
pub trait Sha2Engine: Sync {
    /// Runs the SHA-256 compression function over `blocks`, whose length is a multiple of
    /// [`SHA256_BLOCK`] (callers guarantee it; an implementation ignores a partial tail).
    fn sha256_blocks(&self, state: &mut [u32; 8], blocks: &[u8]);

    /// Runs the SHA-512 compression function (also SHA-384's) over `blocks`, whose length is
    /// a multiple of [`SHA512_BLOCK`] (an implementation ignores a partial tail).
    fn sha512_blocks(&self, state: &mut [u64; 8], blocks: &[u8]);

    /// A short name for logs ("software", "FEAT_SHA512"...).
    fn name(&self) -> &'static str;
}

/// The portable engine: the `sha2` crate's compression functions.
#[derive(Clone, Copy, Debug, Default)]
pub struct Software;

impl Sha2Engine for Software {
    fn sha256_blocks(&self, state: &mut [u32; 8], blocks: &[u8]) {
        for b in blocks.chunks_exact(SHA256_BLOCK) {
            sha2::compress256(state, core::slice::from_ref(GenericArray::from_slice(b)));
        }
    }

    fn sha512_blocks(&self, state: &mut [u64; 8], blocks: &[u8]) {
        for b in blocks.chunks_exact(SHA512_BLOCK) {
            sha2::compress512(state, core::slice::from_ref(GenericArray::from_slice(b)));
        }
    }

    fn name(&self) -> &'static str {
        "software"
    }
}

static ENGINE: spin::Once<&'static dyn Sha2Engine> = spin::Once::new();

/// Makes `engine` the one every hash of this crate uses from now on. Only the first call
/// takes effect (firmware calls it once at cold boot, before any realm exists); returns
/// false if an engine was already installed.
pub fn install(engine: &'static dyn Sha2Engine) -> bool {
    let mut installed = false;
    ENGINE.call_once(|| {
        installed = true;
        engine
    });
    installed
}

/// The engine in use: the installed one, or [`Software`].
pub fn engine() -> &'static dyn Sha2Engine {
    match ENGINE.get() {
        Some(e) => *e,
        None => &Software,
    }
}

/// What `ID_AA64ISAR0_EL1.SHA2` (bits 15:12) says the CPU implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sha2Features {
    /// FEAT_SHA256: `SHA256H`, `SHA256H2`, `SHA256SU0`, `SHA256SU1`.
    pub sha256: bool,
    /// FEAT_SHA512: `SHA512H`, `SHA512H2`, `SHA512SU0`, `SHA512SU1`.
    pub sha512: bool,
}

impl Sha2Features {
    /// Decodes `ID_AA64ISAR0_EL1` together with `ID_AA64PFR0_EL1`, whose AdvSIMD field
    /// (bits 23:20) must not be 0xF (not implemented): the instructions work on the SIMD
    /// registers. SHA2 = 1 is SHA-256 only, 2 adds SHA-512; other values are reserved and
    /// mean neither.
    pub fn from_id_regs(isar0: u64, pfr0: u64) -> Self {
        let simd = (pfr0 >> 20) & 0xf != 0xf;
        let sha2 = (isar0 >> 12) & 0xf;
        Self {
            sha256: simd && (sha2 == 1 || sha2 == 2),
            sha512: simd && sha2 == 2,
        }
    }
}

/// SHA-256 round constants (FIPS 180-4 §4.2.2), for engines that need them in memory.
pub const SHA256_K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// SHA-512 round constants (FIPS 180-4 §4.2.3), for engines that need them in memory.
pub const SHA512_K: [u64; 80] = [
    0x428a2f98d728ae22,
    0x7137449123ef65cd,
    0xb5c0fbcfec4d3b2f,
    0xe9b5dba58189dbbc,
    0x3956c25bf348b538,
    0x59f111f1b605d019,
    0x923f82a4af194f9b,
    0xab1c5ed5da6d8118,
    0xd807aa98a3030242,
    0x12835b0145706fbe,
    0x243185be4ee4b28c,
    0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f,
    0x80deb1fe3b1696b1,
    0x9bdc06a725c71235,
    0xc19bf174cf692694,
    0xe49b69c19ef14ad2,
    0xefbe4786384f25e3,
    0x0fc19dc68b8cd5b5,
    0x240ca1cc77ac9c65,
    0x2de92c6f592b0275,
    0x4a7484aa6ea6e483,
    0x5cb0a9dcbd41fbd4,
    0x76f988da831153b5,
    0x983e5152ee66dfab,
    0xa831c66d2db43210,
    0xb00327c898fb213f,
    0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2,
    0xd5a79147930aa725,
    0x06ca6351e003826f,
    0x142929670a0e6e70,
    0x27b70a8546d22ffc,
    0x2e1b21385c26c926,
    0x4d2c6dfc5ac42aed,
    0x53380d139d95b3df,
    0x650a73548baf63de,
    0x766a0abb3c77b2a8,
    0x81c2c92e47edaee6,
    0x92722c851482353b,
    0xa2bfe8a14cf10364,
    0xa81a664bbc423001,
    0xc24b8b70d0f89791,
    0xc76c51a30654be30,
    0xd192e819d6ef5218,
    0xd69906245565a910,
    0xf40e35855771202a,
    0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8,
    0x1e376c085141ab53,
    0x2748774cdf8eeb99,
    0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63,
    0x4ed8aa4ae3418acb,
    0x5b9cca4f7763e373,
    0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc,
    0x78a5636f43172f60,
    0x84c87814a1f0ab72,
    0x8cc702081a6439ec,
    0x90befffa23631e28,
    0xa4506cebde82bde9,
    0xbef9a3f7b2c67915,
    0xc67178f2e372532b,
    0xca273eceea26619c,
    0xd186b8c721c0c207,
    0xeada7dd6cde0eb1e,
    0xf57d4f7fee6ed178,
    0x06f067aa72176fba,
    0x0a637dc5a2c898a6,
    0x113f9804bef90dae,
    0x1b710b35131c471b,
    0x28db77f523047d84,
    0x32caab7b40c72493,
    0x3c9ebe0a15c9bebc,
    0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6,
    0x597f299cfc657e2a,
    0x5fcb6fab3ad6faec,
    0x6c44198c4a475817,
];

#[cfg(test)]
mod tests {
    use super::*;

    fn rotr32(x: u32, n: u32) -> u32 {
        x.rotate_right(n)
    }

    /// FIPS 180-4 §6.2.2, written from the standard, using [`SHA256_K`].
    fn reference_sha256_block(state: &mut [u32; 8], block: &[u8]) {
        let mut w = [0u32; 64];
        for (i, c) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        }
        for t in 16..64 {
            let s0 = rotr32(w[t - 15], 7) ^ rotr32(w[t - 15], 18) ^ (w[t - 15] >> 3);
            let s1 = rotr32(w[t - 2], 17) ^ rotr32(w[t - 2], 19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16]
                .wrapping_add(s0)
                .wrapping_add(w[t - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
        for t in 0..64 {
            let s1 = rotr32(e, 6) ^ rotr32(e, 11) ^ rotr32(e, 25);
            let ch = (e & f) ^ (!e & g);
            let t1 = h
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(SHA256_K[t])
                .wrapping_add(w[t]);
            let s0 = rotr32(a, 2) ^ rotr32(a, 13) ^ rotr32(a, 22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            h = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
            *s = s.wrapping_add(v);
        }
    }

    /// FIPS 180-4 §6.4.2, using [`SHA512_K`].
    fn reference_sha512_block(state: &mut [u64; 8], block: &[u8]) {
        let mut w = [0u64; 80];
        for (i, c) in block.chunks_exact(8).enumerate() {
            w[i] = u64::from_be_bytes(c.try_into().unwrap());
        }
        for t in 16..80 {
            let x = w[t - 15];
            let y = w[t - 2];
            let s0 = x.rotate_right(1) ^ x.rotate_right(8) ^ (x >> 7);
            let s1 = y.rotate_right(19) ^ y.rotate_right(61) ^ (y >> 6);
            w[t] = w[t - 16]
                .wrapping_add(s0)
                .wrapping_add(w[t - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
        for t in 0..80 {
            let s1 = e.rotate_right(14) ^ e.rotate_right(18) ^ e.rotate_right(41);
            let ch = (e & f) ^ (!e & g);
            let t1 = h
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(SHA512_K[t])
                .wrapping_add(w[t]);
            let s0 = a.rotate_right(28) ^ a.rotate_right(34) ^ a.rotate_right(39);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            h = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
            *s = s.wrapping_add(v);
        }
    }

    fn pseudo_random(n: usize, seed: u64) -> std::vec::Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 56) as u8
            })
            .collect()
    }

    extern crate std;

    #[test]
    fn round_constants_drive_the_standard_compression() {
        // The constants are typed in; a reference compression written from FIPS 180-4 with
        // them must agree with the `sha2` crate on random blocks and states.
        for seed in 0..16u64 {
            let data = pseudo_random(4 * SHA512_BLOCK, seed);
            let mut s256: [u32; 8] = core::array::from_fn(|i| (seed as u32) * 77 + i as u32);
            let mut soft256 = s256;
            for b in data.chunks_exact(SHA256_BLOCK) {
                reference_sha256_block(&mut s256, b);
            }
            Software.sha256_blocks(&mut soft256, &data);
            assert_eq!(s256, soft256, "seed {seed}");
            let mut s512: [u64; 8] = core::array::from_fn(|i| seed * 0x1234_5678 + i as u64);
            let mut soft512 = s512;
            for b in data.chunks_exact(SHA512_BLOCK) {
                reference_sha512_block(&mut s512, b);
            }
            Software.sha512_blocks(&mut soft512, &data);
            assert_eq!(s512, soft512, "seed {seed}");
        }
        // SHA-256's constants are the top halves of SHA-512's first 64 (both are the cube
        // roots of the first primes).
        for (k32, k64) in SHA256_K.iter().zip(SHA512_K.iter()) {
            assert_eq!(u64::from(*k32), k64 >> 32);
        }
    }

    #[test]
    fn software_ignores_a_partial_tail_and_empty_input() {
        let data = pseudo_random(SHA512_BLOCK + 5, 3);
        let mut a = [1u32; 8];
        let mut b = [1u32; 8];
        Software.sha256_blocks(&mut a, &data);
        Software.sha256_blocks(&mut b, &data[..SHA512_BLOCK]);
        assert_eq!(a, b);
        let before = a;
        Software.sha256_blocks(&mut a, &[]);
        Software.sha256_blocks(&mut a, &data[..SHA256_BLOCK - 1]);
        assert_eq!(a, before);
        let mut c = [1u64; 8];
        let mut d = [1u64; 8];
        Software.sha512_blocks(&mut c, &data);
        Software.sha512_blocks(&mut d, &data[..SHA512_BLOCK]);
        assert_eq!(c, d);
        let before = c;
        Software.sha512_blocks(&mut c, &data[..SHA512_BLOCK - 1]);
        assert_eq!(c, before);
        assert_eq!(Software.name(), "software");
    }

    #[test]
    fn id_register_decoding() {
        let simd = 0u64; // AdvSIMD 0: implemented.
        let no_simd = 0xf << 20;
        let isar = |sha2: u64| sha2 << 12 | 0xf << 4 | 0xf << 16; // other fields set
        let f = Sha2Features::from_id_regs;
        assert_eq!(
            f(isar(0), simd),
            Sha2Features {
                sha256: false,
                sha512: false
            }
        );
        assert_eq!(
            f(isar(1), simd),
            Sha2Features {
                sha256: true,
                sha512: false
            }
        );
        assert_eq!(
            f(isar(2), simd),
            Sha2Features {
                sha256: true,
                sha512: true
            }
        );
        for reserved in 3..16 {
            assert_eq!(
                f(isar(reserved), simd),
                Sha2Features {
                    sha256: false,
                    sha512: false
                },
                "SHA2 = {reserved}"
            );
        }
        assert_eq!(
            f(isar(2), no_simd),
            Sha2Features {
                sha256: false,
                sha512: false
            },
            "no AdvSIMD, no SHA instructions"
        );
        // AdvSIMD 1 (with half precision) is implemented too.
        assert!(f(isar(2), 1 << 20).sha512);
    }
}
