//! Register encoding and result decoding of every call, against a fake conduit.

extern crate std;

use super::*;
use cca_abi::psci::{self as abi_psci, PsciStatus};
use cca_abi::rmi::HashAlgorithm;
use cca_abi::rsi::{self as abi, HOST_CALL_NR_GPRS, RSI_VERSION_1_0, RSI_VERSION_1_1};
use std::vec::Vec;

/// What a fake conduit saw of one call.
#[derive(Debug)]
struct Seen {
    regs: Regs,
    /// Length of the memory shared with the callee, if any.
    shared: Option<usize>,
}

/// A conduit that answers with a closure (which may also play the RMM's part on shared
/// memory) and records every call.
struct Fake<F> {
    answer: F,
    seen: Vec<Seen>,
    /// Added to addresses by `ipa_of` (0: identity).
    ipa_offset: u64,
}

impl<F: FnMut(&Regs, Option<&mut [u8]>) -> Regs> Fake<F> {
    fn new(answer: F) -> Rsi<Self> {
        Rsi::new(Self {
            answer,
            seen: Vec::new(),
            ipa_offset: 0,
        })
    }
}

impl<F: FnMut(&Regs, Option<&mut [u8]>) -> Regs> Conduit for Fake<F> {
    fn smc(&mut self, regs: Regs) -> Regs {
        self.seen.push(Seen { regs, shared: None });
        (self.answer)(&regs, None)
    }

    fn smc_shared(&mut self, regs: Regs, shared: &mut [u8]) -> Regs {
        self.seen.push(Seen {
            regs,
            shared: Some(shared.len()),
        });
        (self.answer)(&regs, Some(shared))
    }

    fn ipa_of(&self, addr: usize) -> u64 {
        addr as u64 + self.ipa_offset
    }
}

/// A register file from the first few values.
fn r(vals: &[u64]) -> Regs {
    let mut out = [0u64; NUM_REGS];
    out[..vals.len()].copy_from_slice(vals);
    out
}

/// Expects `regs` to be `fid` followed by `args` and zeros.
fn assert_call(seen: &Seen, fid: u32, args: &[u64]) {
    let mut want = vec_regs(args);
    want[0] = u64::from(fid);
    assert_eq!(seen.regs, want, "registers of {fid:#x}");
}

fn vec_regs(args: &[u64]) -> Regs {
    let mut want = [0u64; NUM_REGS];
    want[1..=args.len()].copy_from_slice(args);
    want
}

fn calls<F>(rsi: &mut Rsi<Fake<F>>) -> &[Seen] {
    &rsi.conduit().seen
}

#[test]
fn check_decodes_statuses() {
    assert_eq!(check(0), Ok(()));
    assert_eq!(check(1), Err(Error::Status(RsiStatus::ErrorInput)));
    assert_eq!(check(3), Err(Error::Status(RsiStatus::Incomplete)));
    assert_eq!(check(5), Err(Error::Status(RsiStatus::ErrorDevice)));
    assert_eq!(check(6), Err(Error::NotStatus(6)));
    assert_eq!(check(u64::MAX), Err(Error::NotStatus(u64::MAX)));
    assert_eq!(
        std::format!("{}", Error::NotStatus(u64::MAX)),
        "SMC_UNKNOWN"
    );
    assert_eq!(
        Error::Status(RsiStatus::ErrorState).status(),
        Some(RsiStatus::ErrorState)
    );
    assert_eq!(Error::BadResult.status(), None);
}

#[test]
fn version_success_and_mismatch() {
    // TF-RMM: a supported request gives SUCCESS, x1 = request, x2 = highest.
    let mut rsi = Fake::new(|regs: &Regs, _: Option<&mut [u8]>| match regs[1] {
        0x10000 | 0x10001 => r(&[0, regs[1], 0x10001]),
        _ => r(&[1, 0x10001, 0x10001]),
    });
    assert_eq!(
        rsi.version(RSI_VERSION_1_1),
        Ok(Revisions {
            lower: 0x10001,
            higher: 0x10001
        })
    );
    assert_call(&calls(&mut rsi)[0], 0xC400_0190, &[0x10001]);
    assert_eq!(
        rsi.version(RSI_VERSION_1_0),
        Ok(Revisions {
            lower: 0x10000,
            higher: 0x10001
        })
    );
    // Otherwise ERROR_INPUT with x1 = x2 = highest.
    assert_eq!(
        rsi.version(0x20000),
        Err(VersionError::Unsupported(Revisions {
            lower: 0x10001,
            higher: 0x10001
        }))
    );
    assert_call(&calls(&mut rsi)[2], 0xC400_0190, &[0x20000]);
}

#[test]
fn version_errors() {
    let mut rsi = Fake::new(|_: &Regs, _: Option<&mut [u8]>| r(&[u64::MAX]));
    assert_eq!(
        rsi.version(RSI_VERSION_1_1),
        Err(VersionError::Call(Error::NotStatus(u64::MAX)))
    );
    let mut rsi = Fake::new(|_: &Regs, _: Option<&mut [u8]>| r(&[0, 0x10001, 0x10000]));
    assert_eq!(
        rsi.version(RSI_VERSION_1_1),
        Err(VersionError::Call(Error::BadResult)),
        "lower > higher"
    );
}

#[test]
fn negotiate_falls_back_to_an_older_minor() {
    // An RMM that only implements 1.0.
    let mut rsi = Fake::new(|regs: &Regs, _: Option<&mut [u8]>| match regs[1] {
        0x10000 => r(&[0, 0x10000, 0x10000]),
        _ => r(&[1, 0x10000, 0x10000]),
    });
    assert_eq!(rsi.negotiate(RSI_VERSION_1_1), Ok(RSI_VERSION_1_0));
    let seen = calls(&mut rsi);
    assert_eq!(seen.len(), 2);
    assert_eq!((seen[0].regs[1], seen[1].regs[1]), (0x10001, 0x10000));

    // A request of another major is not downgraded.
    let mut rsi = Fake::new(|_: &Regs, _: Option<&mut [u8]>| r(&[1, 0x10001, 0x10001]));
    assert!(matches!(
        rsi.negotiate(0x20000),
        Err(VersionError::Unsupported(_))
    ));
    assert_eq!(calls(&mut rsi).len(), 1);

    // A supported request takes one call.
    let mut rsi = Fake::new(|regs: &Regs, _: Option<&mut [u8]>| r(&[0, regs[1], 0x10001]));
    assert_eq!(rsi.negotiate(RSI_VERSION_1_1), Ok(RSI_VERSION_1_1));
    assert_eq!(calls(&mut rsi).len(), 1);
}

#[test]
fn features() {
    let mut rsi = Fake::new(|regs: &Regs, _: Option<&mut [u8]>| {
        r(&[0, if regs[1] == 0 { abi::FEATURE0_DA } else { 0 }])
    });
    assert_eq!(rsi.features(0), Ok(1));
    assert_eq!(rsi.features(7), Ok(0));
    assert_call(&calls(&mut rsi)[0], 0xC400_0191, &[0]);
    assert_call(&calls(&mut rsi)[1], 0xC400_0191, &[7]);
}

#[test]
fn realm_config_shares_the_structure() {
    let mut cfg = RsiRealmConfig::ZEROED;
    let addr = core::ptr::from_mut(&mut cfg) as u64;
    let mut rsi = Fake::new(|regs: &Regs, shared: Option<&mut [u8]>| {
        let m = shared.expect("REALM_CONFIG shares memory");
        // The RMM's writes, at the offsets TF-RMM uses.
        m[0..8].copy_from_slice(&40u64.to_le_bytes());
        m[8] = abi::HASH_SHA_256;
        m[0x18..0x1c].copy_from_slice(&0x9050_0003u32.to_le_bytes());
        m[0x200] = 0x5A;
        r(&[0, regs[1]])
    });
    rsi.conduit().ipa_offset = 0x1000_0000;
    assert_eq!(rsi.realm_config(&mut cfg), Ok(()));
    let seen = &calls(&mut rsi)[0];
    assert_call(seen, 0xC400_0196, &[addr + 0x1000_0000]);
    assert_eq!(seen.shared, Some(4096));
    assert_eq!(
        addr % 4096,
        0,
        "the type keeps the structure granule-aligned"
    );
    assert_eq!(cfg.ipa_width, 40);
    assert_eq!(hash_algorithm(cfg.hash_algo), Some(HashAlgorithm::Sha256));
    assert_eq!(cfg.gicv3_vtr, 0x9050_0003);
    assert_eq!(cfg.rpv[0], 0x5A);

    let mut rsi = Fake::new(|_: &Regs, _: Option<&mut [u8]>| r(&[1]));
    assert_eq!(
        rsi.realm_config(&mut cfg),
        Err(Error::Status(RsiStatus::ErrorInput))
    );
}

#[test]
fn hash_algorithm_codes() {
    assert_eq!(hash_algorithm(0), Some(HashAlgorithm::Sha256));
    assert_eq!(hash_algorithm(1), Some(HashAlgorithm::Sha512));
    assert_eq!(hash_algorithm(2), Some(HashAlgorithm::Sha384));
    assert_eq!(hash_algorithm(3), None);
}

#[test]
fn measurement_read_decodes_x1_to_x8() {
    let mut rsi = Fake::new(|regs: &Regs, _: Option<&mut [u8]>| {
        if regs[1] >= abi::MEASUREMENT_SLOTS {
            return r(&[1]);
        }
        let mut out = r(&[0]);
        for i in 0..8 {
            // Bytes 8i..8i+8 hold 8i, 8i+1, ...: little-endian in x(i+1).
            out[1 + i] = u64::from_le_bytes(core::array::from_fn(|b| (8 * i + b) as u8));
        }
        out
    });
    let m = rsi.measurement_read(0).unwrap();
    assert_eq!(m.0, core::array::from_fn(|i| i as u8));
    assert_call(&calls(&mut rsi)[0], 0xC400_0192, &[0]);
    assert_eq!(
        rsi.measurement_read(5),
        Err(Error::Status(RsiStatus::ErrorInput))
    );
    assert_call(&calls(&mut rsi)[1], 0xC400_0192, &[5]);
}

#[test]
fn measurement_extend_packs_the_value_into_x3_to_x10() {
    let mut rsi = Fake::new(|_: &Regs, _: Option<&mut [u8]>| r(&[0]));
    let value: [u8; 64] = core::array::from_fn(|i| 0x80 + i as u8);
    rsi.measurement_extend(1, &value[..32]).unwrap();
    let mut want = [0u64; 10];
    want[0] = 1;
    want[1] = 32;
    for i in 0..4 {
        want[2 + i] = u64::from_le_bytes(value[8 * i..8 * i + 8].try_into().unwrap());
    }
    assert_call(&calls(&mut rsi)[0], 0xC400_0193, &want);

    // A partial last word, and the full 64 bytes reaching x10.
    rsi.measurement_extend(4, &[0xAA, 0xBB, 0xCC]).unwrap();
    assert_call(&calls(&mut rsi)[1], 0xC400_0193, &[4, 3, 0xCC_BBAA]);
    rsi.measurement_extend(2, &value).unwrap();
    let seen = &calls(&mut rsi)[2];
    assert_eq!(seen.regs[2], 64);
    assert_eq!(
        seen.regs[10],
        u64::from_le_bytes(value[56..].try_into().unwrap())
    );
    assert_eq!(seen.regs[11], 0);

    // More than 64 bytes cannot be encoded: refused without a call.
    assert_eq!(
        rsi.measurement_extend(1, &[0; 65]),
        Err(Error::InvalidArgument)
    );
    assert_eq!(calls(&mut rsi).len(), 3);
}

#[test]
fn attestation_token_init_passes_the_challenge() {
    let mut rsi = Fake::new(|_: &Regs, _: Option<&mut [u8]>| r(&[0, 4096]));
    let challenge: [u8; 64] = core::array::from_fn(|i| i as u8);
    assert_eq!(rsi.attestation_token_init(&challenge), Ok(4096));
    let args: Vec<u64> = (0..8)
        .map(|i| u64::from_le_bytes(challenge[8 * i..8 * i + 8].try_into().unwrap()))
        .collect();
    assert_call(&calls(&mut rsi)[0], 0xC400_0194, &args);

    let mut rsi = Fake::new(|_: &Regs, _: Option<&mut [u8]>| r(&[4]));
    assert_eq!(
        rsi.attestation_token_init(&challenge),
        Err(Error::Status(RsiStatus::ErrorUnknown))
    );
}

/// A fake RMM holding a token of `len` bytes that it signs in two steps and then hands out
/// at most 1000 bytes per call.
fn token_rmm(len: usize) -> impl FnMut(&Regs, Option<&mut [u8]>) -> Regs {
    let token: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
    let mut signing_steps = 2;
    let mut copied = 0;
    move |regs: &Regs, shared: Option<&mut [u8]>| match regs[0] as u32 {
        abi::ATTESTATION_TOKEN_INIT => {
            signing_steps = 2;
            copied = 0;
            r(&[0, 4096 * 2])
        }
        abi::ATTESTATION_TOKEN_CONTINUE => {
            let (offset, size) = (regs[2] as usize, regs[3] as usize);
            if signing_steps > 0 {
                signing_steps -= 1;
                return r(&[3]);
            }
            let n = size.min(1000).min(len - copied);
            shared.unwrap()[offset..offset + n].copy_from_slice(&token[copied..copied + n]);
            copied += n;
            r(&[if copied == len { 0 } else { 3 }, n as u64])
        }
        _ => r(&[u64::MAX]),
    }
}

#[test]
fn attestation_token_continue_encoding() {
    let mut g = Granule::ZEROED;
    let addr = core::ptr::from_mut(&mut g) as u64;
    let mut rsi = Fake::new(token_rmm(1500));
    rsi.attestation_token_init(&[0; 64]).unwrap();
    assert_eq!(
        rsi.attestation_token_continue(&mut g, 16, 100),
        Ok(TokenStep::Incomplete { written: 0 })
    );
    let seen = &calls(&mut rsi)[1];
    assert_call(seen, 0xC400_0195, &[addr, 16, 100]);
    assert_eq!(seen.shared, Some(4096));
    assert_eq!(addr % 4096, 0);
    rsi.attestation_token_continue(&mut g, 0, 4096).unwrap();
    assert_eq!(
        rsi.attestation_token_continue(&mut g, 0, 4096),
        Ok(TokenStep::Incomplete { written: 1000 })
    );
    assert_eq!(
        rsi.attestation_token_continue(&mut g, 1000, 3096),
        Ok(TokenStep::Done { written: 500 })
    );
    assert_eq!(g.0[1000 + 499], ((1499 * 7) as u8));

    // Offsets and sizes outside the granule are refused without a call.
    let n = calls(&mut rsi).len();
    assert_eq!(
        rsi.attestation_token_continue(&mut g, 4096, 0),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        rsi.attestation_token_continue(&mut g, 4000, 97),
        Err(Error::InvalidArgument)
    );
    assert_eq!(calls(&mut rsi).len(), n);

    // More bytes written than asked for is not a valid answer.
    let mut rsi = Fake::new(|_: &Regs, _: Option<&mut [u8]>| r(&[0, 200]));
    assert_eq!(
        rsi.attestation_token_continue(&mut g, 0, 100),
        Err(Error::BadResult)
    );
    let mut rsi = Fake::new(|_: &Regs, _: Option<&mut [u8]>| r(&[2]));
    assert_eq!(
        rsi.attestation_token_continue(&mut g, 0, 100),
        Err(Error::Status(RsiStatus::ErrorState))
    );
}

#[test]
fn attestation_token_fills_granules_in_order() {
    let len = 5000;
    let mut rsi = Fake::new(token_rmm(len));
    let mut buf = [Granule::ZEROED; 2];
    assert_eq!(rsi.attestation_token(&[1; 64], &mut buf), Ok(len));
    let bytes: Vec<u8> = buf.iter().flat_map(|g| g.0).collect();
    let want: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
    assert_eq!(&bytes[..len], &want[..]);
    // Every CONTINUE asked for the rest of its granule.
    for s in &calls(&mut rsi)[1..] {
        assert_eq!(s.regs[2] + s.regs[3], 4096);
    }

    let mut rsi = Fake::new(token_rmm(len));
    let mut small = [Granule::ZEROED; 1];
    assert_eq!(
        rsi.attestation_token(&[1; 64], &mut small),
        Err(Error::BufferTooSmall)
    );
}

#[test]
fn ipa_state_set_encoding_and_results() {
    let mut rsi = Fake::new(|regs: &Regs, _: Option<&mut [u8]>| {
        if regs[2] <= regs[1] {
            return r(&[1]);
        }
        // The host changes 16 KiB per call and rejects RAM requests at 3 MiB.
        if regs[1] == 0x30_0000 {
            return r(&[0, regs[1], 1]);
        }
        r(&[0, (regs[1] + 0x4000).min(regs[2]), 0])
    });
    assert_eq!(
        rsi.ipa_state_set(0x20_0000, 0x21_0000, Ripas::Ram, false),
        Ok(RipasChange {
            next: 0x20_4000,
            response: RsiResponse::Accept
        })
    );
    assert_call(
        &calls(&mut rsi)[0],
        0xC400_0197,
        &[0x20_0000, 0x21_0000, 1, 0],
    );
    rsi.ipa_state_set(0x20_0000, 0x20_1000, Ripas::Empty, true)
        .unwrap();
    assert_call(
        &calls(&mut rsi)[1],
        0xC400_0197,
        &[0x20_0000, 0x20_1000, 0, 1],
    );
    assert_eq!(
        rsi.ipa_state_set(0x21_0000, 0x20_0000, Ripas::Ram, false),
        Err(Error::Status(RsiStatus::ErrorInput))
    );

    // set_ripas repeats the call from `next` until the range is done.
    let n = calls(&mut rsi).len();
    assert_eq!(
        rsi.set_ripas(0x20_0000, 0x21_0000, Ripas::Ram, false),
        Ok(SetRipas::Done)
    );
    let bases: Vec<u64> = calls(&mut rsi)[n..].iter().map(|s| s.regs[1]).collect();
    assert_eq!(bases, [0x20_0000, 0x20_4000, 0x20_8000, 0x20_C000]);
    assert_eq!(
        rsi.set_ripas(0x30_0000, 0x30_1000, Ripas::Ram, false),
        Ok(SetRipas::Rejected { at: 0x30_0000 })
    );
}

#[test]
fn ipa_state_set_rejects_impossible_answers() {
    // No progress although accepted.
    let mut rsi = Fake::new(|regs: &Regs, _: Option<&mut [u8]>| r(&[0, regs[1], 0]));
    assert_eq!(
        rsi.set_ripas(0x1000, 0x3000, Ripas::Ram, false),
        Err(Error::NoProgress { at: 0x1000 })
    );
    // Progress beyond top, and an undefined response.
    let mut rsi = Fake::new(|_: &Regs, _: Option<&mut [u8]>| r(&[0, 0x9000, 0]));
    assert_eq!(
        rsi.ipa_state_set(0x1000, 0x3000, Ripas::Ram, false),
        Err(Error::BadResult)
    );
    let mut rsi = Fake::new(|regs: &Regs, _: Option<&mut [u8]>| r(&[0, regs[2], 2]));
    assert_eq!(
        rsi.ipa_state_set(0x1000, 0x3000, Ripas::Ram, false),
        Err(Error::BadResult)
    );
}

#[test]
fn ipa_state_get_encoding_and_results() {
    let mut rsi = Fake::new(|regs: &Regs, _: Option<&mut [u8]>| {
        if regs[1] < 0x20_0000 {
            r(&[0, regs[2].min(0x20_0000), 1])
        } else {
            r(&[0, regs[2], 0])
        }
    });
    assert_eq!(
        rsi.ipa_state_get(0, 0x20_0000),
        Ok(RipasRegion {
            top: 0x20_0000,
            ripas: Ripas::Ram
        })
    );
    assert_call(&calls(&mut rsi)[0], 0xC400_0198, &[0, 0x20_0000]);
    assert_eq!(
        rsi.ipa_state_get(0x1000, 0x40_0000),
        Ok(RipasRegion {
            top: 0x20_0000,
            ripas: Ripas::Ram
        })
    );
    assert_eq!(
        rsi.ipa_state_get(0x20_0000, 0x40_0000).map(|g| g.ripas),
        Ok(Ripas::Empty)
    );

    let mut rsi = Fake::new(|regs: &Regs, _: Option<&mut [u8]>| r(&[0, regs[2], 7]));
    assert_eq!(
        rsi.ipa_state_get(0, 0x1000),
        Err(Error::BadResult),
        "RIPAS 7"
    );
    let mut rsi = Fake::new(|regs: &Regs, _: Option<&mut [u8]>| r(&[0, regs[1], 1]));
    assert_eq!(
        rsi.ipa_state_get(0, 0x1000),
        Err(Error::BadResult),
        "top = base"
    );
    let mut rsi = Fake::new(|_: &Regs, _: Option<&mut [u8]>| r(&[1]));
    assert_eq!(
        rsi.ipa_state_get(0, 0x1000),
        Err(Error::Status(RsiStatus::ErrorInput))
    );
}

#[test]
fn host_call_shares_the_structure() {
    let mut gprs = [0u64; HOST_CALL_NR_GPRS];
    for (i, g) in gprs.iter_mut().enumerate() {
        *g = 0x100 * i as u64;
    }
    gprs[30] = u64::MAX;
    let mut call = RsiHostCall::new(0xCCA1, gprs);
    let addr = core::ptr::from_mut(&mut call) as u64;
    let mut imm_seen = 0;
    let mut rsi = Fake::new(|regs: &Regs, shared: Option<&mut [u8]>| {
        // The host's part, as the RMM relays it: read imm and gprs, add 1 to each gpr.
        let m = shared.expect("HOST_CALL shares memory");
        imm_seen = u16::from_le_bytes([m[0], m[1]]);
        for i in 0..HOST_CALL_NR_GPRS {
            let o = 8 + 8 * i;
            let v = u64::from_le_bytes(m[o..o + 8].try_into().unwrap());
            m[o..o + 8].copy_from_slice(&v.wrapping_add(1).to_le_bytes());
        }
        r(&[0, regs[1]])
    });
    assert_eq!(rsi.host_call(&mut call), Ok(()));
    let seen = &calls(&mut rsi)[0];
    assert_call(seen, 0xC400_0199, &[addr]);
    assert_eq!(seen.shared, Some(256));
    assert_eq!(addr % 256, 0);
    drop(rsi);
    assert_eq!(imm_seen, 0xCCA1);
    assert_eq!(call.imm, 0xCCA1);
    for i in 0..30 {
        assert_eq!(call.gprs[i], 0x100 * i as u64 + 1);
    }
    assert_eq!(call.gprs[30], 0);
}

#[test]
fn raw_call_places_arguments() {
    let mut rsi = Fake::new(|regs: &Regs, _: Option<&mut [u8]>| *regs);
    let args: Vec<u64> = (1..=17).collect();
    let out = rsi.call(0xC400_0193, &args);
    assert_eq!(out[0], 0xC400_0193);
    assert_eq!(&out[1..], &args[..]);
    let out = rsi.call(abi::REALM_CONFIG, &[0x1008]);
    assert_eq!(out, r(&[0xC400_0196, 0x1008]));
}

#[test]
#[should_panic(expected = "at most 17 arguments")]
fn raw_call_with_18_arguments_panics() {
    let mut rsi = Fake::new(|regs: &Regs, _: Option<&mut [u8]>| *regs);
    rsi.call(0xC400_0193, &[0; 18]);
}

#[test]
fn psci_version_features_and_smccc() {
    let mut rsi = Fake::new(|regs: &Regs, _: Option<&mut [u8]>| match regs[0] as u32 {
        abi_psci::VERSION => r(&[0x10001]),
        cca_abi::smccc::SMCCC_VERSION => r(&[0x10002]),
        abi_psci::FEATURES if regs[1] == u64::from(abi_psci::CPU_ON_64) => r(&[0]),
        // NOT_SUPPORTED, zero-extended from 32 bits.
        abi_psci::FEATURES => r(&[0xFFFF_FFFF]),
        _ => r(&[u64::MAX]),
    });
    assert_eq!(rsi.psci_version(), Ok(0x10001));
    assert_call(&calls(&mut rsi)[0], 0x8400_0000, &[]);
    assert_eq!(rsi.smccc_version(), Ok(0x10002));
    assert_call(&calls(&mut rsi)[1], 0x8000_0000, &[]);
    assert_eq!(rsi.psci_features(abi_psci::CPU_ON_64), Ok(0));
    assert_call(&calls(&mut rsi)[2], 0x8400_000A, &[0xC400_0003]);
    assert_eq!(
        rsi.psci_features(abi_psci::MIGRATE_INFO_TYPE),
        Err(PsciError::Status(PsciStatus::NotSupported))
    );
}

#[test]
fn psci_cpu_on_and_errors() {
    let mut rsi = Fake::new(
        |regs: &Regs, _: Option<&mut [u8]>| match (regs[1], regs[2]) {
            (_, e) if e >= 1 << 39 => r(&[PsciStatus::InvalidAddress.to_reg()]),
            (0, _) => r(&[PsciStatus::AlreadyOn.to_reg()]),
            (1, _) => r(&[0]),
            (7, _) => r(&[5]),
            _ => r(&[PsciStatus::InvalidParameters.to_reg()]),
        },
    );
    assert_eq!(rsi.cpu_on(1, 0x1000, 0xC0DE), Ok(()));
    assert_call(&calls(&mut rsi)[0], 0xC400_0003, &[1, 0x1000, 0xC0DE]);
    assert_eq!(
        rsi.cpu_on(2, 0x1000, 0),
        Err(PsciError::Status(PsciStatus::InvalidParameters))
    );
    assert_eq!(
        rsi.cpu_on(1, 1 << 39, 0),
        Err(PsciError::Status(PsciStatus::InvalidAddress))
    );
    assert_eq!(
        rsi.cpu_on(0, 0x1000, 0),
        Err(PsciError::Status(PsciStatus::AlreadyOn))
    );
    assert_eq!(rsi.cpu_on(7, 0x1000, 0), Err(PsciError::Unknown(5)));
    // A negative value no PSCI status has.
    let mut rsi = Fake::new(|_: &Regs, _: Option<&mut [u8]>| r(&[(-77i64) as u64]));
    assert_eq!(
        rsi.cpu_on(1, 0, 0),
        Err(PsciError::Unknown((-77i64) as u64))
    );
}

#[test]
fn psci_affinity_info() {
    let mut rsi = Fake::new(
        |regs: &Regs, _: Option<&mut [u8]>| match (regs[1], regs[2]) {
            (_, l) if l != 0 => r(&[PsciStatus::InvalidParameters.to_reg()]),
            (0, _) => r(&[0]),
            (1, _) => r(&[1]),
            (2, _) => r(&[2]),
            _ => r(&[3]),
        },
    );
    assert_eq!(rsi.affinity_info(0, 0), Ok(AffinityState::On));
    assert_call(&calls(&mut rsi)[0], 0xC400_0004, &[0, 0]);
    assert_eq!(rsi.affinity_info(1, 0), Ok(AffinityState::Off));
    assert_eq!(rsi.affinity_info(2, 0), Ok(AffinityState::OnPending));
    assert_eq!(rsi.affinity_info(3, 0), Err(PsciError::Unknown(3)));
    assert_eq!(
        rsi.affinity_info(1, 1),
        Err(PsciError::Status(PsciStatus::InvalidParameters))
    );
    assert_call(&calls(&mut rsi)[4], 0xC400_0004, &[1, 1]);
}

#[test]
fn psci_off_and_reset() {
    let mut rsi = Fake::new(|regs: &Regs, _: Option<&mut [u8]>| match regs[0] as u32 {
        abi_psci::CPU_OFF => r(&[PsciStatus::Denied.to_reg()]),
        _ => r(&[0]),
    });
    assert_eq!(rsi.cpu_off(), Err(PsciError::Status(PsciStatus::Denied)));
    assert_call(&calls(&mut rsi)[0], 0x8400_0002, &[]);
    assert_eq!(rsi.system_off(), Ok(()));
    assert_call(&calls(&mut rsi)[1], 0x8400_0008, &[]);
    assert_eq!(rsi.system_reset(), Ok(()));
    assert_call(&calls(&mut rsi)[2], 0x8400_0009, &[]);
}

#[test]
fn conduit_by_reference() {
    let mut fake = Fake {
        answer: |_: &Regs, _: Option<&mut [u8]>| r(&[0, 42]),
        seen: Vec::new(),
        ipa_offset: 0,
    };
    {
        let mut rsi = Rsi::new(&mut fake);
        assert_eq!(rsi.features(0), Ok(42));
    }
    assert_eq!(fake.seen.len(), 1);
}
