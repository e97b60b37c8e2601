//! Realm measurements as the RMM computes them (TF-RMM main, RMM 2.0 rules), so that a host
//! or a verifier can predict a realm's RIM from what it loads.
//!
//! * `REALM_CREATE`: RIM = H(a 4 KiB `RmiRealmParams` image holding only the measured fields).
//! * `RTT_DATA_MAP_INIT`: RIM = H(0x100-byte data descriptor: type 0, RIM, IPA, flags,
//!   H(contents) if measured).
//! * `REC_CREATE` of a runnable REC: RIM = H(0x100-byte REC descriptor: type 1, RIM,
//!   H(a 4 KiB `RmiRecParams` image holding flags, pc and x0..x7)).
//! * `RSI_MEASUREMENT_EXTEND`: REM = H(REM ‖ value).
//!
//! `RTT_INIT_RIPAS` and `RTT_DATA_MAP` are not measured in RMM 2.0.
//!
//! Hashing goes through one [`Sha2Engine`] ([`engine`]): software by default, or one the
//! firmware [`install`]s at boot (the RMM's uses the CPU's SHA-2 instructions), so that every
//! user of [`hash`], [`Hasher`] and [`Measurement`] gets the same, fastest path.

#![no_std]
#![forbid(unsafe_code)]

pub mod engine;
pub mod hasher;
pub mod kat;

#[cfg(test)]
mod aarch64_model;

pub use engine::{engine, install, Sha2Engine, Sha2Features, Software};
pub use hasher::Hasher;

use cca_abi::rmi::{HashAlgorithm, RealmParams, RecParams};

/// Size of a measurement slot.
pub const SLOT: usize = 64;

/// A measurement value in its 64-byte slot (a shorter hash at the front, zeros after it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Measurement {
    /// The algorithm.
    pub algo: HashAlgorithm,
    /// The slot.
    pub slot: [u8; SLOT],
}

/// Length in bytes of a hash.
pub const fn hash_len(algo: HashAlgorithm) -> usize {
    match algo {
        HashAlgorithm::Sha256 => 32,
        HashAlgorithm::Sha384 => 48,
        HashAlgorithm::Sha512 => 64,
    }
}

/// Hashes `data` into a 64-byte slot (the hash at the front, zeros after it), on the
/// installed engine.
pub fn hash(algo: HashAlgorithm, data: &[u8]) -> [u8; SLOT] {
    let mut h = Hasher::new(algo);
    h.update(data);
    h.finalize()
}

/// [`hash`] on a given engine.
pub fn hash_with(engine: &'static dyn Sha2Engine, algo: HashAlgorithm, data: &[u8]) -> [u8; SLOT] {
    let mut h = Hasher::with_engine(algo, engine);
    h.update(data);
    h.finalize()
}

/// Hashes a 4 KiB image whose bytes from `prefix.len()` on are zero, without building it.
fn hash_page_image(algo: HashAlgorithm, prefix: &[u8]) -> [u8; SLOT] {
    let mut h = Hasher::new(algo);
    h.update(prefix);
    h.update_zeros(PAGE - prefix.len());
    h.finalize()
}

/// The size of the parameter images the RIM rules hash.
const PAGE: usize = 4096;

/// Decodes `RmiRealmParams.hash_algo`.
pub fn algorithm(code: u8) -> Option<HashAlgorithm> {
    match code {
        0 => Some(HashAlgorithm::Sha256),
        1 => Some(HashAlgorithm::Sha512),
        2 => Some(HashAlgorithm::Sha384),
        _ => None,
    }
}

/// Measurement descriptor types.
const DESC_DATA: u8 = 0;
const DESC_REC: u8 = 1;
const DESC_LEN: usize = 0x100;

impl Measurement {
    /// The hash bytes (without the zero tail).
    pub fn bytes(&self) -> &[u8] {
        &self.slot[..hash_len(self.algo)]
    }

    /// The initial RIM of a realm created with `params`.
    pub fn realm_create(params: &RealmParams) -> Option<Self> {
        let algo = algorithm(params.hash_algo)?;
        // Only the first 0x31 bytes of the 4 KiB image can be non-zero.
        let mut image = [0u8; 0x40];
        image[0x00..0x08].copy_from_slice(&params.flags0.to_le_bytes());
        image[0x08..0x0c].copy_from_slice(&(params.s2sz as u32).to_le_bytes());
        image[0x10..0x14].copy_from_slice(&(params.sve_vl as u32).to_le_bytes());
        image[0x18..0x1c].copy_from_slice(&(params.num_bps as u32).to_le_bytes());
        image[0x20..0x24].copy_from_slice(&(params.num_wps as u32).to_le_bytes());
        image[0x28..0x2c].copy_from_slice(&(params.pmu_num_ctrs as u32).to_le_bytes());
        image[0x30] = params.hash_algo;
        Some(Self {
            algo,
            slot: hash_page_image(algo, &image),
        })
    }

    fn extend_descriptor(&mut self, desc: &mut [u8; DESC_LEN]) {
        desc[0x08..0x10].copy_from_slice(&(DESC_LEN as u64).to_le_bytes());
        desc[0x10..0x50].copy_from_slice(&self.slot);
        self.slot = hash(self.algo, desc);
    }

    /// Extends the RIM for `RTT_DATA_MAP_INIT` of `content` at `ipa` with `flags`
    /// (1 = measure the content, 0 = measure only the address and flags).
    pub fn extend_data(&mut self, ipa: u64, flags: u64, content: &[u8; 4096]) {
        let mut d = [0u8; DESC_LEN];
        d[0] = DESC_DATA;
        d[0x50..0x58].copy_from_slice(&ipa.to_le_bytes());
        d[0x58..0x60].copy_from_slice(&flags.to_le_bytes());
        if flags & 1 != 0 {
            d[0x60..0xa0].copy_from_slice(&hash(self.algo, content));
        }
        self.extend_descriptor(&mut d);
    }

    /// Extends the RIM for the creation of a REC (only runnable RECs are measured).
    pub fn extend_rec(&mut self, params: &RecParams) {
        self.extend_rec_fields(params.flags, params.pc, &params.gprs);
    }

    /// [`Measurement::extend_rec`] from the only `RmiRecParams` fields the RIM rule hashes
    /// (flags, pc, x0..x7; the MPIDR is not measured), for a caller that did not read the
    /// whole 4 KiB structure.
    pub fn extend_rec_fields(&mut self, flags: u64, pc: u64, gprs: &[u64; 8]) {
        if flags & 1 == 0 {
            return;
        }
        // Flags, pc and x0..x7: the image is zero from 0x340 on.
        let mut image = [0u8; 0x340];
        image[0..8].copy_from_slice(&flags.to_le_bytes());
        image[0x200..0x208].copy_from_slice(&pc.to_le_bytes());
        for (i, r) in gprs.iter().enumerate() {
            image[0x300 + 8 * i..0x308 + 8 * i].copy_from_slice(&r.to_le_bytes());
        }
        let mut d = [0u8; DESC_LEN];
        d[0] = DESC_REC;
        d[0x50..0x90].copy_from_slice(&hash_page_image(self.algo, &image));
        self.extend_descriptor(&mut d);
    }

    /// `RSI_MEASUREMENT_EXTEND`: `REM = H(REM ‖ value)`, `value` at most 64 bytes.
    pub fn extend_rem(&mut self, value: &[u8]) {
        let n = hash_len(self.algo);
        let mut buf = [0u8; 2 * SLOT];
        buf[..n].copy_from_slice(&self.slot[..n]);
        let len = value.len().min(SLOT);
        buf[n..n + len].copy_from_slice(&value[..len]);
        self.slot = hash(self.algo, &buf[..n + len]);
    }
}

impl core::fmt::Display for Measurement {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in self.bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;
    use zerocopy::FromZeros;

    fn params(hash_algo: u8) -> RealmParams {
        let mut p = RealmParams::new_zeroed();
        p.s2sz = 48;
        p.num_bps = 1;
        p.num_wps = 1;
        p.hash_algo = hash_algo;
        p
    }

    fn content(page: usize) -> [u8; 4096] {
        let mut c = [0u8; 4096];
        for (j, b) in c.iter_mut().enumerate() {
            let i = page * 4096 + j;
            *b = if i < 5000 { (i % 251) as u8 } else { 0 };
        }
        c
    }

    // Golden vectors: research notes (attestation.md §4.6), computed independently.
    #[test]
    fn golden_sha256_sequence() {
        let mut rim = Measurement::realm_create(&params(0)).unwrap();
        assert_eq!(
            format!("{rim}"),
            "6739dfb22b75ee1268d08dfa8369f501bc0b066243553f069f560d1fa1172973"
        );
        rim.extend_data(0x4000_0000, 1, &content(0));
        rim.extend_data(0x4000_1000, 1, &content(1));
        assert_eq!(
            format!("{rim}"),
            "f68e1c79c883a1007bff27c0ad1fc76826120891b2677c86c989acdc8d2c66dc"
        );
        rim.extend_data(0x4000_2000, 0, &[0xAA; 4096]);
        assert_eq!(
            format!("{rim}"),
            "21774ede8f4c1ceb9fa0f6f2eb1be10e6412684e45e4e868d49185fad683cb69"
        );
        let mut rec = RecParams::new_zeroed();
        rec.flags = 1;
        rec.pc = 0x4000_0000;
        rec.gprs[0] = 0x4010_0000;
        rec.mpidr = 0x55; // not measured
        rim.extend_rec(&rec);
        assert_eq!(
            format!("{rim}"),
            "20fcb505bea94e1e56a7cc80a366a734979180baa79048b14a371232e6150027"
        );
        rec.flags = 0;
        let before = rim;
        rim.extend_rec(&rec);
        assert_eq!(rim, before, "a REC that is not runnable is not measured");
    }

    #[test]
    fn golden_sha512_create() {
        let rim = Measurement::realm_create(&params(1)).unwrap();
        let s = format!("{rim}");
        assert_eq!(s.len(), 128);
        assert!(
            s.starts_with("799e434048fb57eb") && s.ends_with("d44bbbab"),
            "{s}"
        );
    }

    #[test]
    fn golden_rem_extend() {
        let mut rem = Measurement {
            algo: HashAlgorithm::Sha256,
            slot: [0; SLOT],
        };
        let value = hash(HashAlgorithm::Sha256, b"hello");
        rem.extend_rem(&value[..32]);
        assert_eq!(
            format!("{rem}"),
            "9851312028952521510e8eaab5be94e7dc24b5fc292b2e9781173cf11ffa9878"
        );
    }

    std::thread_local! {
        // Blocks compressed by `Counting` on this test's thread (other tests hash at the
        // same time on theirs).
        static CALLS: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
    }
    struct Counting;
    impl Sha2Engine for Counting {
        fn sha256_blocks(&self, state: &mut [u32; 8], blocks: &[u8]) {
            CALLS.with(|c| c.set(c.get() + 1));
            Software.sha256_blocks(state, blocks);
        }
        fn sha512_blocks(&self, state: &mut [u64; 8], blocks: &[u8]) {
            CALLS.with(|c| c.set(c.get() + 1));
            Software.sha512_blocks(state, blocks);
        }
        fn name(&self) -> &'static str {
            "counting"
        }
    }
    static COUNTING: Counting = Counting;

    // The only test that installs an engine (the engine is global; it computes what the
    // software does, so the other tests' results do not depend on when this one runs).
    #[test]
    fn an_installed_engine_serves_every_hash() {
        assert!(install(&COUNTING));
        assert!(!install(&Software), "only the first engine is installed");
        assert_eq!(engine().name(), "counting");
        let calls = || CALLS.with(|c| c.get());
        let before = calls();
        let rim = Measurement::realm_create(&params(0)).unwrap();
        assert_eq!(
            format!("{rim}"),
            "6739dfb22b75ee1268d08dfa8369f501bc0b066243553f069f560d1fa1172973"
        );
        assert!(
            calls() > before,
            "the installed engine compressed the blocks"
        );
        let before = calls();
        let _ = hash(HashAlgorithm::Sha512, b"abc");
        assert!(calls() > before);
        // An explicit engine bypasses the installed one.
        let before = calls();
        let _ = hash_with(&Software, HashAlgorithm::Sha256, b"abc");
        assert_eq!(calls(), before);
    }

    #[test]
    fn hash_with_and_hash_agree_for_every_algorithm() {
        for algo in [
            HashAlgorithm::Sha256,
            HashAlgorithm::Sha384,
            HashAlgorithm::Sha512,
        ] {
            let d = [0x5au8; 300];
            assert_eq!(hash(algo, &d), hash_with(&Software, algo, &d));
            let h = hash(algo, &d);
            assert!(h[hash_len(algo)..].iter().all(|&b| b == 0));
        }
        // FIPS 180-2 "abc" vectors (first and last bytes).
        let h = hash(HashAlgorithm::Sha384, b"abc");
        assert_eq!(&h[..4], &[0xcb, 0x00, 0x75, 0x3f]);
        assert_eq!(
            &h[40..48],
            &[0x58, 0xba, 0xec, 0xa1, 0x34, 0xc8, 0x25, 0xa7]
        );
        let h = hash(HashAlgorithm::Sha256, b"abc");
        assert_eq!(&h[..4], &[0xba, 0x78, 0x16, 0xbf]);
        let h = hash(HashAlgorithm::Sha512, b"abc");
        assert_eq!(&h[..4], &[0xdd, 0xaf, 0x35, 0xa1]);
    }

    #[test]
    fn unknown_algorithm() {
        assert!(Measurement::realm_create(&params(3)).is_none());
    }
}
