//! The firmware's SHA-2 engine: the CPU's FEAT_SHA256 / FEAT_SHA512 instructions behind
//! `cca_measure`'s [`Sha2Engine`] seam, installed at cold boot (by the RMM and by the EL3
//! monitor, each for its own image) when the ID registers show them and they give the
//! known answers of `cca_measure::kat`. Everything hashed through `cca_measure` then
//! runs on them: in the RMM every measurement (`REALM_CREATE`, `RTT_DATA_MAP_INIT`,
//! `REC_CREATE`, `RSI_MEASUREMENT_EXTEND`), in EL3 the measured boot of its own image, the
//! RMM's and the host's. Without them (or if an answer is wrong) the software engine stays
//! in use.
//!
//! FP/SIMD state: the routines (`cca_measure`'s `aarch64_sha2.s`) save the SIMD registers
//! they use on the caller's stack and restore them, so the world whose registers are live
//! (the host's during an RMI call, a realm's during an RSI call) never sees them change, and
//! no lazy-switching state is involved. That costs 18 instructions per SHA-256 call and 14 per
//! SHA-512 call (docs/performance.md). FP/SIMD is never trapped where they run: the RMM's
//! CPTR_EL2 values keep TFP 0, and EL3 leaves CPTR_EL3.TFP clear.

use cca_measure::engine::{Sha2Engine, Sha2Features, Software, SHA256_K, SHA512_K};

core::arch::global_asm!(
    include_str!("../../measure/src/aarch64_sha2.s"),
    options(raw)
);

unsafe extern "C" {
    fn fw_sha256_blocks(state: *mut u32, blocks: *const u8, count: usize, k: *const u32);
    fn fw_sha512_blocks(state: *mut u64, blocks: *const u8, count: usize, k: *const u64);
}

/// The instruction engine; SHA-512 (and SHA-384) falls back to software without FEAT_SHA512.
struct Instructions {
    sha512: bool,
}

impl Sha2Engine for Instructions {
    fn sha256_blocks(&self, state: &mut [u32; 8], blocks: &[u8]) {
        let count = blocks.len() / 64;
        // SAFETY: the routine reads `count` 64-byte blocks from `blocks` (inside the slice),
        // the 64 constants, and reads and writes the 8-word state; it restores every SIMD
        // register it uses and touches no other memory than its own stack frame.
        unsafe {
            fw_sha256_blocks(
                state.as_mut_ptr(),
                blocks.as_ptr(),
                count,
                SHA256_K.as_ptr(),
            )
        };
    }

    fn sha512_blocks(&self, state: &mut [u64; 8], blocks: &[u8]) {
        if !self.sha512 {
            Software.sha512_blocks(state, blocks);
            return;
        }
        let count = blocks.len() / 128;
        // SAFETY: as for SHA-256, with 128-byte blocks and the 80 SHA-512 constants.
        unsafe {
            fw_sha512_blocks(
                state.as_mut_ptr(),
                blocks.as_ptr(),
                count,
                SHA512_K.as_ptr(),
            )
        };
    }

    fn name(&self) -> &'static str {
        if self.sha512 {
            "FEAT_SHA512 instructions"
        } else {
            "FEAT_SHA256 instructions, software SHA-512"
        }
    }
}

static SHA256_ONLY: Instructions = Instructions { sha512: false };
static SHA256_AND_512: Instructions = Instructions { sha512: true };

/// Installs the instruction engine if `ID_AA64ISAR0_EL1` / `ID_AA64PFR0_EL1` show the SHA-2
/// instructions and they give the known answers (`cca_measure::kat`); returns the engine in
/// use.
pub fn init(isar0: u64, pfr0: u64) -> &'static str {
    let f = Sha2Features::from_id_regs(isar0, pfr0);
    if !f.sha256 {
        return "software (the CPU has no SHA-2 instructions)";
    }
    let engine: &'static Instructions = if f.sha512 {
        &SHA256_AND_512
    } else {
        &SHA256_ONLY
    };
    if !cca_measure::kat::passes(engine) {
        log::error!("the SHA-2 instructions gave a wrong known answer: not used");
        return "software (the SHA-2 instructions failed the known-answer test)";
    }
    cca_measure::install(engine);
    cca_measure::engine().name()
}
