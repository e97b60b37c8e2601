//! Known answers for checking a [`Sha2Engine`] before it is installed.
//!
//! A fixed 300-byte message, hashed at lengths 0, 55 (SHA-256's last one-block length), 119
//! (SHA-512's) and 300 (several blocks) with SHA-256, SHA-384 and SHA-512: twelve digests
//! from FIPS 180-4 implementations (the tests check them against the `sha2` crate and this
//! crate's software engine). Firmware compares its instruction engine with these instead of
//! running the software engine next to it at every cold boot.

use crate::engine::Sha2Engine;
use crate::hasher::Hasher;
use cca_abi::rmi::HashAlgorithm;

/// Bytes of the known-answer message.
pub const MESSAGE_LEN: usize = 300;
/// The prefix lengths hashed.
pub const LENGTHS: [usize; 4] = [0, 55, 119, 300];

/// The known-answer message: byte `i` is `73 i + 11 (mod 256)`.
pub const fn message() -> [u8; MESSAGE_LEN] {
    let mut m = [0u8; MESSAGE_LEN];
    let mut i = 0;
    while i < MESSAGE_LEN {
        m[i] = (i as u8).wrapping_mul(73).wrapping_add(11);
        i += 1;
    }
    m
}

const fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => panic!("not a lower-case hex digit"),
    }
}

/// Decodes lower-case hex at compile time, left-aligned in 64 bytes.
const fn hex(s: &str) -> [u8; 64] {
    let b = s.as_bytes();
    let mut out = [0u8; 64];
    let mut i = 0;
    while i < b.len() / 2 {
        out[i] = nibble(b[2 * i]) << 4 | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

/// `(algorithm, prefix length, digest)`, the digest left-aligned in 64 bytes.
pub const ANSWERS: [(HashAlgorithm, usize, [u8; 64]); 12] = [
    (HashAlgorithm::Sha256, 0, hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")),
    (HashAlgorithm::Sha256, 55, hex("1c78d7cc748ec50b55bcc164fd1a65cb1f02f505e1967f298971688c1d0225cd")),
    (HashAlgorithm::Sha256, 119, hex("d48bc25677673d258cf093b7184af39460c1b5d46bec2897a553288ccf003e61")),
    (HashAlgorithm::Sha256, 300, hex("4886211ec0ebbd94270b2b615b95cae428cb055b6adb3cfdbcacd6c9be61523d")),
    (HashAlgorithm::Sha384, 0, hex("38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b")),
    (HashAlgorithm::Sha384, 55, hex("46593517a5414972f46bef523b170e04d69bdf14bcc00e0bd5f8ee751e56e160f0d0fdbb67ab2e584d20676e4b8622e4")),
    (HashAlgorithm::Sha384, 119, hex("aaa319f782153c172ebb59f65903373d943db17d298fc90a12ded80ff04e0f850fa4d984083e3f13af54dcdaa121aaf2")),
    (HashAlgorithm::Sha384, 300, hex("28eee9f426010eaa267bbb2d4145ca9910e353917a84eeae71c1c2c67502c82bfc05651861439b6f94cfc79b59c99ed3")),
    (HashAlgorithm::Sha512, 0, hex("cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e")),
    (HashAlgorithm::Sha512, 55, hex("8f28087ef01543c42a4e6ef755ab4fc19a244e844253e9d67e19b24c17f4522fae3e3be0d819ddaca14600df263dc783a91438d0a894a376dfee2d0901f89b3d")),
    (HashAlgorithm::Sha512, 119, hex("b076a47e1030dab30214afb828eee7da173d24bb90a584b011002db4054dcd5c7837cf905e0f0b744986f23871edb3061d49994491d800e2e5e6af3597395e28")),
    (HashAlgorithm::Sha512, 300, hex("7b267deee256092da11d0d5de9d2e5b5b0153747c8d677d30f65090045012480a9ac272746413ffacf7bddd4c491ffbfd1e017af63130ae9d422730a468bef4c")),
];

/// True when `engine` gives every known answer.
pub fn passes(engine: &'static dyn Sha2Engine) -> bool {
    let msg = message();
    ANSWERS.iter().all(|(algo, len, want)| {
        let mut h = Hasher::with_engine(*algo, engine);
        h.update(&msg[..*len]);
        let got = h.finalize();
        let n = match algo {
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha384 => 48,
            HashAlgorithm::Sha512 => 64,
        };
        got[..n] == want[..n]
    })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::engine::Software;
    use sha2::Digest;

    #[test]
    fn the_answers_are_the_sha2_crates() {
        let msg = message();
        for (algo, len, want) in ANSWERS {
            let m = &msg[..len];
            let got: std::vec::Vec<u8> = match algo {
                HashAlgorithm::Sha256 => sha2::Sha256::digest(m).to_vec(),
                HashAlgorithm::Sha384 => sha2::Sha384::digest(m).to_vec(),
                HashAlgorithm::Sha512 => sha2::Sha512::digest(m).to_vec(),
            };
            assert_eq!(got[..], want[..got.len()], "{algo:?} of {len} bytes");
            assert!(want[got.len()..].iter().all(|&b| b == 0));
        }
        assert!(LENGTHS.iter().all(|l| ANSWERS.iter().any(|a| a.1 == *l)));
    }

    #[test]
    fn the_software_engine_passes_and_a_wrong_one_fails() {
        assert!(passes(&Software));
        struct OffByOne;
        impl Sha2Engine for OffByOne {
            fn sha256_blocks(&self, state: &mut [u32; 8], blocks: &[u8]) {
                Software.sha256_blocks(state, blocks);
                state[7] ^= 1;
            }
            fn sha512_blocks(&self, state: &mut [u64; 8], blocks: &[u8]) {
                Software.sha512_blocks(state, blocks);
            }
            fn name(&self) -> &'static str {
                "broken"
            }
        }
        assert!(!passes(&OffByOne));
        struct Sha512Broken;
        impl Sha2Engine for Sha512Broken {
            fn sha256_blocks(&self, state: &mut [u32; 8], blocks: &[u8]) {
                Software.sha256_blocks(state, blocks);
            }
            fn sha512_blocks(&self, state: &mut [u64; 8], blocks: &[u8]) {
                Software.sha512_blocks(state, &blocks[..blocks.len().min(128)]);
            }
            fn name(&self) -> &'static str {
                "broken"
            }
        }
        assert!(!passes(&Sha512Broken));
    }
}
