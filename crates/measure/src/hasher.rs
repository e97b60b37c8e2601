//! Streaming SHA-256 / SHA-384 / SHA-512 over a [`Sha2Engine`] (FIPS 180-4: initial values,
//! padding and output; the engine does the block compression).

use crate::engine::{self, Sha2Engine, SHA256_BLOCK, SHA512_BLOCK};
use crate::{hash_len, SLOT};
use cca_abi::rmi::HashAlgorithm;

/// FIPS 180-4 §5.3.3.
const SHA256_IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
/// FIPS 180-4 §5.3.5.
const SHA512_IV: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];
/// FIPS 180-4 §5.3.4.
const SHA384_IV: [u64; 8] = [
    0xcbbb9d5dc1059ed8,
    0x629a292a367cd507,
    0x9159015a3070dd17,
    0x152fecd8f70e5939,
    0x67332667ffc00b31,
    0x8eb44a8768581511,
    0xdb0c2e0d64f98fa7,
    0x47b5481dbefa4fa4,
];

#[derive(Clone, Copy)]
enum State {
    Sha256([u32; 8]),
    Sha512([u64; 8]),
}

/// An incremental hash: [`Hasher::update`] any number of times, then [`Hasher::finalize`].
///
/// Whole blocks of the input are handed to the engine straight from the caller's slice; only
/// a partial block is buffered.
#[derive(Clone, Copy)]
pub struct Hasher {
    algo: HashAlgorithm,
    engine: &'static dyn Sha2Engine,
    state: State,
    buf: [u8; SHA512_BLOCK],
    used: usize,
    /// Bytes hashed so far (FIPS 180-4 allows < 2^128 bits for SHA-512; this counts bytes in
    /// 128 bits, wrapping only beyond any input that can exist).
    len: u128,
}

impl core::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Hasher")
            .field("algo", &self.algo)
            .field("engine", &self.engine.name())
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Hasher {
    /// A hash of `algo` on the installed engine ([`engine::engine`]).
    pub fn new(algo: HashAlgorithm) -> Self {
        Self::with_engine(algo, engine::engine())
    }

    /// A hash of `algo` on `engine`.
    pub fn with_engine(algo: HashAlgorithm, engine: &'static dyn Sha2Engine) -> Self {
        let state = match algo {
            HashAlgorithm::Sha256 => State::Sha256(SHA256_IV),
            HashAlgorithm::Sha384 => State::Sha512(SHA384_IV),
            HashAlgorithm::Sha512 => State::Sha512(SHA512_IV),
        };
        Self {
            algo,
            engine,
            state,
            buf: [0; SHA512_BLOCK],
            used: 0,
            len: 0,
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.algo
    }

    fn block_size(&self) -> usize {
        match self.state {
            State::Sha256(_) => SHA256_BLOCK,
            State::Sha512(_) => SHA512_BLOCK,
        }
    }

    fn compress(&mut self, blocks: &[u8]) {
        match &mut self.state {
            State::Sha256(s) => self.engine.sha256_blocks(s, blocks),
            State::Sha512(s) => self.engine.sha512_blocks(s, blocks),
        }
    }

    fn compress_buf(&mut self) {
        let bs = self.block_size();
        let buf = self.buf;
        self.compress(&buf[..bs]);
        self.used = 0;
    }

    /// Adds `data` to the hash.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len = self.len.wrapping_add(data.len() as u128);
        let bs = self.block_size();
        if self.used != 0 {
            let take = (bs - self.used).min(data.len());
            self.buf[self.used..self.used + take].copy_from_slice(&data[..take]);
            self.used += take;
            data = &data[take..];
            if self.used < bs {
                return;
            }
            self.compress_buf();
        }
        let whole = data.len() - data.len() % bs;
        if whole != 0 {
            self.compress(&data[..whole]);
        }
        let rest = &data[whole..];
        self.buf[..rest.len()].copy_from_slice(rest);
        self.used = rest.len();
    }

    /// Adds `n` zero bytes to the hash (as [`Hasher::update`] with a zeroed buffer).
    pub fn update_zeros(&mut self, mut n: usize) {
        const ZEROS: [u8; 1024] = [0; 1024];
        while n != 0 {
            let take = n.min(ZEROS.len());
            self.update(&ZEROS[..take]);
            n -= take;
        }
    }

    /// Pads, compresses the last block(s) and returns the hash at the front of a 64-byte
    /// slot (zeros after it).
    pub fn finalize(mut self) -> [u8; SLOT] {
        let bs = self.block_size();
        // The length field: 8 bytes for SHA-256, 16 for SHA-384/512, big-endian bits.
        let len_bytes = bs / 8;
        let bits = self.len.wrapping_mul(8);
        self.buf[self.used] = 0x80;
        self.used += 1;
        if self.used > bs - len_bytes {
            self.buf[self.used..bs].fill(0);
            self.compress_buf();
        }
        self.buf[self.used..bs - len_bytes].fill(0);
        let be = bits.to_be_bytes();
        self.buf[bs - len_bytes..bs].copy_from_slice(&be[16 - len_bytes..]);
        self.compress_buf();
        let mut out = [0u8; SLOT];
        match self.state {
            State::Sha256(s) => {
                for (o, w) in out.chunks_exact_mut(4).zip(s) {
                    o.copy_from_slice(&w.to_be_bytes());
                }
            }
            State::Sha512(s) => {
                for (o, w) in out.chunks_exact_mut(8).zip(s) {
                    o.copy_from_slice(&w.to_be_bytes());
                }
            }
        }
        out[hash_len(self.algo)..].fill(0);
        out
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::engine::Software;
    use sha2::{Digest, Sha256, Sha384, Sha512};
    use std::vec::Vec;

    fn expected(algo: HashAlgorithm, data: &[u8]) -> [u8; SLOT] {
        let mut slot = [0u8; SLOT];
        match algo {
            HashAlgorithm::Sha256 => slot[..32].copy_from_slice(&Sha256::digest(data)),
            HashAlgorithm::Sha384 => slot[..48].copy_from_slice(&Sha384::digest(data)),
            HashAlgorithm::Sha512 => slot.copy_from_slice(&Sha512::digest(data)),
        }
        slot
    }

    const ALGOS: [HashAlgorithm; 3] = [
        HashAlgorithm::Sha256,
        HashAlgorithm::Sha384,
        HashAlgorithm::Sha512,
    ];

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn one_shot_matches_the_sha2_crate_at_every_padding_boundary() {
        // Lengths around both block sizes and both length-field boundaries (55/56, 111/112).
        let lens = [
            0, 1, 55, 56, 57, 63, 64, 65, 111, 112, 113, 127, 128, 129, 255, 256, 1000, 4096, 4352,
        ];
        for algo in ALGOS {
            for n in lens {
                let d = data(n);
                let mut h = Hasher::with_engine(algo, &Software);
                h.update(&d);
                assert_eq!(h.finalize(), expected(algo, &d), "{algo:?} {n}");
            }
        }
    }

    #[test]
    fn split_updates_equal_one_update() {
        let d = data(700);
        for algo in ALGOS {
            let whole = expected(algo, &d);
            for split in [0, 1, 63, 64, 65, 127, 128, 129, 300, 700] {
                let mut h = Hasher::with_engine(algo, &Software);
                h.update(&d[..split]);
                h.update(&[]);
                h.update(&d[split..]);
                assert_eq!(h.finalize(), whole, "{algo:?} split at {split}");
            }
            // Byte by byte.
            let mut h = Hasher::new(algo);
            for b in &d {
                h.update(core::slice::from_ref(b));
            }
            assert_eq!(h.finalize(), whole, "{algo:?} byte by byte");
        }
    }

    #[test]
    fn zeros_equal_a_zeroed_buffer() {
        for algo in ALGOS {
            for n in [0, 1, 1023, 1024, 1025, 4040] {
                let mut h = Hasher::new(algo);
                h.update(b"prefix");
                h.update_zeros(n);
                let mut d = b"prefix".to_vec();
                d.resize(6 + n, 0);
                assert_eq!(h.finalize(), expected(algo, &d), "{algo:?} {n}");
            }
        }
    }

    #[test]
    fn reports_its_algorithm_and_engine() {
        let h = Hasher::with_engine(HashAlgorithm::Sha384, &Software);
        assert_eq!(h.algorithm(), HashAlgorithm::Sha384);
        let s = std::format!("{h:?}");
        assert!(s.contains("Sha384") && s.contains("software"), "{s}");
    }
}
