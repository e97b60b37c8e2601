//! SHA-384 on the installed SHA-2 engine ([`cca_measure::Hasher`]: the CPU's FEAT_SHA512
//! instructions in the firmware, software elsewhere) behind the RustCrypto `digest` traits,
//! so that the `rfc6979` crate's HMAC-DRBG derives the ECDSA nonce on it instead of on the
//! `sha2` crate's software rounds (which a soft-float firmware target cannot accelerate).

use cca_abi::rmi::HashAlgorithm;
use cca_measure::Hasher;
use digest::consts::{U128, U48};
use digest::{FixedOutput, FixedOutputReset, HashMarker, Output, OutputSizeUser, Reset, Update};

/// SHA-384 through [`cca_measure::Hasher`].
#[derive(Clone, Copy, Debug)]
pub struct EngineSha384(Hasher);

impl Default for EngineSha384 {
    fn default() -> Self {
        Self(Hasher::new(HashAlgorithm::Sha384))
    }
}

impl HashMarker for EngineSha384 {}

impl digest::core_api::BlockSizeUser for EngineSha384 {
    type BlockSize = U128;
}

impl OutputSizeUser for EngineSha384 {
    type OutputSize = U48;
}

impl Update for EngineSha384 {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
}

impl FixedOutput for EngineSha384 {
    fn finalize_into(self, out: &mut Output<Self>) {
        let slot = self.0.finalize();
        out.copy_from_slice(&slot[..48]);
    }
}

impl Reset for EngineSha384 {
    fn reset(&mut self) {
        *self = Self::default();
    }
}

impl FixedOutputReset for EngineSha384 {
    fn finalize_into_reset(&mut self, out: &mut Output<Self>) {
        let h = core::mem::take(self);
        h.finalize_into(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use digest::Digest;

    #[test]
    fn matches_the_sha2_crate_in_pieces_and_after_a_reset() {
        let data: [u8; 300] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        for split in [0usize, 1, 111, 112, 127, 128, 129, 300] {
            let mut e = EngineSha384::new();
            Digest::update(&mut e, &data[..split]);
            Digest::update(&mut e, &data[split..]);
            let want = sha2::Sha384::digest(data);
            assert_eq!(
                e.finalize_reset().as_slice(),
                want.as_slice(),
                "split {split}"
            );
            // After the reset it is a fresh hash.
            Digest::update(&mut e, b"abc");
            assert_eq!(
                e.finalize().as_slice(),
                sha2::Sha384::digest(b"abc").as_slice()
            );
        }
    }

    #[test]
    fn the_rfc6979_nonce_is_the_one_the_sha2_crate_derives() {
        let x = [0x11u8; 48].into();
        let n = [0xffu8; 48].into();
        let h = [0x22u8; 48].into();
        for entropy in [&[][..], &[0x5a; 48][..]] {
            let a = rfc6979::generate_k::<EngineSha384, U48>(&x, &n, &h, entropy);
            let b = rfc6979::generate_k::<sha2::Sha384, U48>(&x, &n, &h, entropy);
            assert_eq!(a, b);
        }
    }
}
