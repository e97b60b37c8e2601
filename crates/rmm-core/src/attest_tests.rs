//! Tests of realm attestation through `REC_ENTER` with scripted realms: every status of
//! `RSI_ATTESTATION_TOKEN_INIT` / `CONTINUE`, interrupted and budgeted signing, the copy
//! rules, the context's wiping, the Realm Instance ID, and the token itself (decoded with
//! coset and ciborium, the signature checked with the `p384` crate's verifier).

extern crate std;

use std::boxed::Box;
use std::sync::{Arc, Mutex};
use std::vec::Vec;

use cca_abi::rmi::{exit_reason, RecExit, RmiFid, RmiStatus};
use cca_abi::rsi;
use coset::TaggedCborSerializable;
use p384::ecdsa::signature::Verifier;
use zerocopy::FromBytes;

use crate::attest::{self, test_env, AttestCtx, Material, Rak, CCA_TOKEN_BUFFER};
use crate::granule::GranuleState;
use crate::platform::PhysMem;
use crate::run::{ExitKind, RealmContext};
use crate::test_util::*;
use crate::token::{self, TokenFormat};

const GIB: u64 = 1 << 30;
const RUN: u64 = B0 + 4 * G;
const PC0: u64 = GIB;
const SUCCESS: u64 = 0;
const INPUT: u64 = 1;
const STATE: u64 = 2;
const INCOMPLETE: u64 = 3;
const UNKNOWN: u64 = 4;
const INIT: u64 = rsi::ATTESTATION_TOKEN_INIT as u64;
const CONT: u64 = rsi::ATTESTATION_TOKEN_CONTINUE as u64;
/// A fake platform token (the RMM copies it without parsing it).
const PLATFORM: [u8; 300] = [0xD2; 300];

fn rec(k: u64) -> u64 {
    B1 + (100 + k) * G
}

/// The realm of `run_tests`: an L3 table at 1 GiB, `data(0..4)` mapped there, the next four
/// pages RIPAS RAM but unmapped, then EMPTY; REC 0 runnable at 1 GiB; ACTIVE.
fn realm_p<'f>(f: &'f Fixture, p: &Params) -> TRmm<'f> {
    let rmm = setup_realm_params(f, p);
    setup_l3(&rmm, GIB);
    assert_eq!(
        call(&rmm, RmiFid::RTT_INIT_RIPAS, &[RD, GIB, GIB + 8 * G])[..2],
        [0, GIB + 8 * G]
    );
    assert_eq!(data_map_pages(&rmm, GIB, data(0), 4)[..2], [0, GIB + 4 * G]);
    create_rec_ok(f, &rmm, rec(0), 0, 1, PC0, &[]);
    assert_eq!(call(&rmm, RmiFid::REALM_ACTIVATE, &[RD])[0], 0);
    rmm
}

fn realm(f: &Fixture) -> TRmm<'_> {
    let p = Params {
        rpv: core::array::from_fn(|i| 0x40 + i as u8),
        ..Default::default()
    };
    realm_p(f, &p)
}

fn with_material(format: TokenFormat) {
    let rak = Rak::new(&crate::ecdsa::tests::D).unwrap();
    test_env::set_material(Some(Material::new(rak, &PLATFORM, format).unwrap()));
    test_env::set_random_fails(false);
    test_env::irq_after(None);
}

/// What one realm SMC led to.
struct Outcome {
    /// The exit the host saw.
    exit: RecExit,
    /// The REC's registers and PC afterwards.
    ctx: RealmContext,
    /// True when the SMC returned to the realm (the REC exited later, on an IRQ).
    returned: bool,
    /// The PC before the SMC.
    pc_before: u64,
}

/// The realm makes one SMC with `regs`; the REC is entered until it exits.
fn smc(f: &Fixture, rmm: &TRmm<'_>, regs: &[u64]) -> Outcome {
    let pc_before = rec_obj(rmm).ctx.pc;
    f.sim.push_realm_step(smc_step(regs.to_vec()));
    let seen: Arc<Mutex<Vec<RealmContext>>> = Arc::default();
    let s = seen.clone();
    f.sim
        .push_realm_step(Box::new(move |ctx: &mut RealmContext| {
            s.lock().unwrap().push(*ctx);
            realm_exit(ExitKind::Irq, 0, 0, 0)
        }));
    let mut b = [0u8; 0x800];
    b[..8].copy_from_slice(&0u64.to_le_bytes());
    f.sim.host_write(pa(RUN), &b).unwrap();
    let out = call(rmm, RmiFid::REC_ENTER, &[rec(0), RUN]);
    assert_eq!(out[0], 0, "REC_ENTER: {:?}", take_debug_logs());
    let mut e = [0u8; 0x800];
    f.sim.host_read(pa(RUN + 0x800), &mut e).unwrap();
    let exit = RecExit::read_from_bytes(&e).unwrap();
    let v = seen.lock().unwrap();
    let returned = !v.is_empty();
    f.sim.clear_realm_steps();
    let ctx = if returned { v[0] } else { rec_obj(rmm).ctx };
    Outcome {
        exit,
        ctx,
        returned,
        pc_before,
    }
}

fn rec_obj(rmm: &TRmm<'_>) -> crate::Rec {
    let g = rmm.granules().lock(pa(rec(0)), GranuleState::Rec).unwrap();
    rmm.rec_read(&g)
}

fn rd_obj(rmm: &TRmm<'_>) -> crate::Rd {
    let g = rmm.granules().lock(pa(RD), GranuleState::Rd).unwrap();
    rmm.rd_read(&g)
}

fn challenge_regs(ch: &[u8; 64]) -> Vec<u64> {
    let mut r = std::vec![INIT];
    r.extend(
        ch.chunks(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap())),
    );
    r
}

fn init(f: &Fixture, rmm: &TRmm<'_>, ch: &[u8; 64]) -> Outcome {
    smc(f, rmm, &challenge_regs(ch))
}

fn cont(f: &Fixture, rmm: &TRmm<'_>, ipa: u64, off: u64, size: u64) -> Outcome {
    smc(f, rmm, &[CONT, ipa, off, size])
}

/// Runs CONTINUE into the page at `GIB + page * 4 KiB` (mapped: `data(page)`) with chunks of
/// `chunk` bytes until SUCCESS; returns the token and the number of calls.
fn fetch(f: &Fixture, rmm: &TRmm<'_>, chunk: u64) -> (Vec<u8>, usize) {
    let mut tok = Vec::new();
    let mut calls = 0;
    let mut off = 0u64;
    loop {
        let size = chunk.min(4096 - off);
        let o = cont(f, rmm, GIB, off, size);
        calls += 1;
        assert!(calls < 400, "no end");
        let (x0, x1) = (o.ctx.gprs[0], o.ctx.gprs[1]);
        assert!(
            x0 == INCOMPLETE || x0 == SUCCESS,
            "x0 {x0}: {:?}",
            take_debug_logs()
        );
        let mut got = std::vec![0u8; x1 as usize];
        f.sim.realm_read(pa(data(0) + off), &mut got);
        tok.extend(got);
        off += x1;
        if off == 4096 {
            off = 0;
        }
        if x0 == SUCCESS {
            return (tok, calls);
        }
    }
}

/// The claims of a verified realm token.
struct Checked {
    claims: Vec<(ciborium::Value, ciborium::Value)>,
    platform: Vec<u8>,
}

impl Checked {
    fn get(&self, key: u64) -> &ciborium::Value {
        &self
            .claims
            .iter()
            .find(|(k, _)| k.as_integer() == Some(key.into()))
            .unwrap_or_else(|| panic!("no claim {key}"))
            .1
    }

    fn bytes(&self, key: u64) -> &[u8] {
        self.get(key).as_bytes().unwrap()
    }
}

/// Decodes the collection, checks the realm token's signature with the RAK it carries.
fn check_token(tok: &[u8], format: TokenFormat) -> Checked {
    let v: ciborium::Value = ciborium::from_reader(tok).unwrap();
    let (tag, inner) = match v {
        ciborium::Value::Tag(t, inner) => (t, *inner),
        other => panic!("not tagged: {other:?}"),
    };
    let map = inner.into_map().unwrap();
    assert_eq!(map.len(), 2);
    let unwrap_pair = |v: &ciborium::Value| -> Vec<u8> {
        match format {
            TokenFormat::Cmw => {
                let a = v.as_array().unwrap();
                assert_eq!(a[0].as_integer(), Some(263.into()));
                a[1].as_bytes().unwrap().clone()
            }
            TokenFormat::Legacy => v.as_bytes().unwrap().clone(),
        }
    };
    assert_eq!(
        tag,
        match format {
            TokenFormat::Cmw => 907,
            TokenFormat::Legacy => 399,
        }
    );
    assert_eq!(map[0].0.as_integer(), Some(44234.into()));
    assert_eq!(map[1].0.as_integer(), Some(44241.into()));
    let platform = unwrap_pair(&map[0].1);
    let realm = unwrap_pair(&map[1].1);
    let msg = coset::CoseSign1::from_tagged_slice(&realm).unwrap();
    let payload = msg.payload.clone().unwrap();
    let claims: ciborium::Value = ciborium::from_reader(&payload[..]).unwrap();
    let claims = claims.into_map().unwrap();
    let c = Checked { claims, platform };
    let key = coset::CoseKey::from_slice(c.bytes(44237)).unwrap();
    let coord = |label: i64| {
        key.params
            .iter()
            .find(|(l, _)| *l == coset::Label::Int(label))
            .unwrap()
            .1
            .as_bytes()
            .unwrap()
            .clone()
    };
    let mut sec1 = std::vec![4u8];
    sec1.extend(coord(-2));
    sec1.extend(coord(-3));
    let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
    let sig = p384::ecdsa::Signature::from_slice(&msg.signature).unwrap();
    msg.verify_signature(&[], |s, data| {
        assert_eq!(s, &msg.signature[..]);
        vk.verify(data, &sig)
    })
    .expect("the realm token's signature verifies with its RAK");
    c
}

use coset::CborSerializable;

#[test]
fn a_whole_token_with_the_realm_claims() {
    init_logger();
    with_material(TokenFormat::Cmw);
    let f = Fixture::new();
    let rmm = realm(&f);
    let ch: [u8; 64] = core::array::from_fn(|i| 0xA0 ^ i as u8);
    let o = init(&f, &rmm, &ch);
    assert!(o.returned);
    assert_eq!(o.ctx.gprs[..2], [SUCCESS, CCA_TOKEN_BUFFER as u64]);
    assert_eq!((o.pc_before, o.ctx.pc), (PC0, PC0 + 4));
    let (tok, calls) = fetch(&f, &rmm, 4096);
    // 388 bits in slices of 40, at most 4 slices a call: 3 calls, the last one copies.
    assert_eq!(calls, 3);
    assert!(tok.len() <= CCA_TOKEN_BUFFER);
    let c = check_token(&tok, TokenFormat::Cmw);
    let rd = rd_obj(&rmm);
    assert_eq!(c.platform, PLATFORM);
    assert_eq!(c.bytes(10), &ch[..]);
    assert_eq!(c.bytes(256), &rd.instance_id[..33]);
    assert_eq!(rd.instance_id[0], 0x01);
    assert_eq!(c.bytes(44235), &rd.rpv[..]);
    assert_eq!(c.bytes(44238), &rd.rim[..32]);
    assert_eq!(c.get(44236).as_text(), Some("sha-256"));
    assert_eq!(c.get(44240).as_text(), Some("sha-256"));
    assert_eq!(c.get(44243).as_integer(), Some(0.into()));
    assert_eq!(c.get(265).as_text(), Some(token::REALM_PROFILE));
    let rems = c.get(44239).as_array().unwrap();
    assert_eq!(rems.len(), 4);
    assert!(rems.iter().all(|r| r.as_bytes().unwrap() == &[0u8; 32]));
    assert_eq!(
        c.bytes(44237),
        &Rak::new(&crate::ecdsa::tests::D).unwrap().cose_key()[..]
    );
    // Handed over: the context and the token are wiped, a new CONTINUE is ERROR_STATE.
    let r = rec_obj(&rmm);
    assert!(f.sim.is_zero(pa(r.aux[attest::AUX_CONTEXT])));
    assert!(f.sim.is_zero(pa(r.aux[attest::AUX_TOKEN])));
    let o = cont(&f, &rmm, GIB, 0, 4096);
    assert_eq!(o.ctx.gprs[0], STATE);
}

#[test]
fn remeasured_realms_and_sha512_claims() {
    with_material(TokenFormat::Cmw);
    let f = Fixture::new();
    let p = Params {
        hash_algo: 1,
        ..Default::default()
    };
    let rmm = realm_p(&f, &p);
    // REM 2 extended before INIT is in the token.
    let o = smc(
        &f,
        &rmm,
        &[
            u64::from(rsi::MEASUREMENT_EXTEND),
            2,
            8,
            0x1122_3344_5566_7788,
        ],
    );
    assert_eq!(o.ctx.gprs[0], SUCCESS);
    init(&f, &rmm, &[7; 64]);
    let (tok, _) = fetch(&f, &rmm, 4096);
    let c = check_token(&tok, TokenFormat::Cmw);
    let rd = rd_obj(&rmm);
    assert_eq!(c.get(44236).as_text(), Some("sha-512"));
    assert_eq!(c.bytes(44238), &rd.rim[..]);
    let rems = c.get(44239).as_array().unwrap();
    assert_eq!(rems[1].as_bytes().unwrap(), &rd.rem[1][..].to_vec());
    assert_ne!(rd.rem[1], [0; 64]);
}

#[test]
fn the_legacy_format() {
    with_material(TokenFormat::Legacy);
    let f = Fixture::new();
    let rmm = realm(&f);
    init(&f, &rmm, &[1; 64]);
    let (tok, _) = fetch(&f, &rmm, 4096);
    assert_eq!(tok[..3], [0xD9, 0x01, 0x8F]);
    check_token(&tok, TokenFormat::Legacy);
}

#[test]
fn small_chunks_and_page_boundaries() {
    with_material(TokenFormat::Cmw);
    let f = Fixture::new();
    let rmm = realm(&f);
    init(&f, &rmm, &[2; 64]);
    let (tok, calls) = fetch(&f, &rmm, 100);
    check_token(&tok, TokenFormat::Cmw);
    assert_eq!(calls, 2 + tok.len().div_ceil(100));
    // Copies at an offset land there and nowhere else.
    init(&f, &rmm, &[3; 64]);
    f.sim.realm_write(pa(data(1)), &[0xEE; 4096]);
    let mut o = cont(&f, &rmm, GIB + G, 4000, 96);
    while o.ctx.gprs[0] == INCOMPLETE && o.ctx.gprs[1] == 0 {
        o = cont(&f, &rmm, GIB + G, 4000, 96);
    }
    assert_eq!(o.ctx.gprs[..2], [INCOMPLETE, 96]);
    let page = f.sim.peek(pa(data(1)));
    assert!(page[..4000].iter().all(|&b| b == 0xEE));
    assert_eq!(page[4000..4003], [0xD9, 0x03, 0x8B]);
}

#[test]
fn an_interrupt_ends_a_call_and_the_next_call_resumes() {
    with_material(TokenFormat::Cmw);
    let f = Fixture::new();
    let rmm = realm(&f);
    init(&f, &rmm, &[4; 64]);
    test_env::irq_after(Some(2));
    let o = cont(&f, &rmm, GIB, 0, 4096);
    assert!(!o.returned, "the call exits to the host");
    assert_eq!(o.exit.exit_reason, exit_reason::IRQ);
    assert_eq!(o.ctx.gprs[..2], [INCOMPLETE, 0]);
    assert_eq!(o.ctx.pc, o.pc_before + 4, "the PC is past the SMC");
    assert_eq!(test_env::irq_checks(), 2);
    let ctx = ctx_of(&f, &rmm);
    assert_eq!(ctx.state, attest::STATE_SIGNING);
    assert_eq!(ctx.sign.bits_done(), 2 * attest::SLICE_BITS);
    // With the interrupt gone, signing resumes where it stopped.
    test_env::irq_after(None);
    let (tok, calls) = fetch(&f, &rmm, 4096);
    assert_eq!(calls, 2, "8 slices left: 4 + 4, and the second call copies");
    check_token(&tok, TokenFormat::Cmw);
}

#[test]
fn each_call_runs_a_bounded_number_of_slices() {
    with_material(TokenFormat::Cmw);
    let f = Fixture::new();
    let rmm = realm(&f);
    init(&f, &rmm, &[5; 64]);
    test_env::irq_after(None);
    let o = cont(&f, &rmm, GIB, 0, 4096);
    assert!(o.returned, "the budget returns to the realm, not the host");
    assert_eq!(o.ctx.gprs[..2], [INCOMPLETE, 0]);
    assert_eq!(test_env::irq_checks() as u64, attest::MAX_SLICES_PER_CALL);
    assert_eq!(
        ctx_of(&f, &rmm).sign.bits_done(),
        attest::MAX_SLICES_PER_CALL * attest::SLICE_BITS
    );
}

fn ctx_of(f: &Fixture, rmm: &TRmm<'_>) -> AttestCtx {
    let r = rec_obj(rmm);
    let page = f.sim.peek(pa(r.aux[attest::AUX_CONTEXT]));
    AttestCtx::read_from_prefix(&page[..]).unwrap().0
}

#[test]
fn a_new_init_abandons_the_token_in_progress() {
    with_material(TokenFormat::Cmw);
    let f = Fixture::new();
    let rmm = realm(&f);
    init(&f, &rmm, &[6; 64]);
    cont(&f, &rmm, GIB, 0, 4096);
    init(&f, &rmm, &[9; 64]);
    assert_eq!(ctx_of(&f, &rmm).sign.bits_done(), 0);
    let (tok, _) = fetch(&f, &rmm, 4096);
    assert_eq!(
        check_token(&tok, TokenFormat::Cmw).bytes(10),
        &[9u8; 64][..]
    );
    // Also while copying.
    init(&f, &rmm, &[10; 64]);
    let (_, _) = {
        let mut o = cont(&f, &rmm, GIB, 0, 10);
        while o.ctx.gprs[1] == 0 {
            o = cont(&f, &rmm, GIB, 0, 10);
        }
        assert_eq!(o.ctx.gprs[..2], [INCOMPLETE, 10]);
        (o, ())
    };
    init(&f, &rmm, &[11; 64]);
    let (tok, _) = fetch(&f, &rmm, 4096);
    assert_eq!(
        check_token(&tok, TokenFormat::Cmw).bytes(10),
        &[11u8; 64][..]
    );
}

#[test]
fn init_failures_are_error_unknown() {
    let f = Fixture::new();
    let rmm = realm(&f);
    // No key and platform token from EL3.
    test_env::set_material(None);
    let o = init(&f, &rmm, &[1; 64]);
    assert_eq!(o.ctx.gprs[..2], [UNKNOWN, 0]);
    assert_eq!(cont(&f, &rmm, GIB, 0, 4096).ctx.gprs[0], STATE);
    // No random bytes for the nonce: INIT took its snapshot, the first CONTINUE (which
    // starts the signature) fails and abandons the token.
    with_material(TokenFormat::Cmw);
    test_env::set_random_fails(true);
    take_debug_logs();
    let o = init(&f, &rmm, &[1; 64]);
    assert_eq!(o.ctx.gprs[..2], [SUCCESS, attest::CCA_TOKEN_BUFFER as u64]);
    assert_eq!(ctx_of(&f, &rmm).state, attest::STATE_CLAIMS);
    let o = cont(&f, &rmm, GIB, 0, 4096);
    assert_eq!(o.ctx.gprs[0], UNKNOWN);
    let logs = take_debug_logs();
    assert!(logs.iter().any(|l| l.contains("random")), "{logs:?}");
    test_env::set_random_fails(false);
    assert_eq!(cont(&f, &rmm, GIB, 0, 4096).ctx.gprs[0], STATE);
    // A failed INIT (no material) also abandons the token in progress.
    init(&f, &rmm, &[1; 64]);
    cont(&f, &rmm, GIB, 0, 4096);
    test_env::set_material(None);
    assert_eq!(init(&f, &rmm, &[1; 64]).ctx.gprs[0], UNKNOWN);
    with_material(TokenFormat::Cmw);
    assert_eq!(cont(&f, &rmm, GIB, 0, 4096).ctx.gprs[0], STATE);
}

#[test]
fn init_takes_the_snapshot_and_the_first_continue_starts_the_signature() {
    // Measurements extended after INIT are not in the token.
    with_material(TokenFormat::Cmw);
    test_env::irq_after(None);
    let f = Fixture::new();
    let rmm = realm(&f);
    let rem_before = rd_obj(&rmm).rem[0];
    init(&f, &rmm, &[12; 64]);
    let ctx = ctx_of(&f, &rmm);
    assert_eq!(ctx.state, attest::STATE_CLAIMS);
    assert_eq!(ctx.sign.bits_done(), 0);
    assert!(ctx.claims_len > 0);
    let mut ext = std::vec![u64::from(rsi::MEASUREMENT_EXTEND), 1, 32];
    ext.extend([0x77u64; 8]);
    assert_eq!(smc(&f, &rmm, &ext).ctx.gprs[0], SUCCESS);
    assert_ne!(rd_obj(&rmm).rem[0], rem_before);
    let o = cont(&f, &rmm, GIB, 0, 4096);
    assert_eq!(o.ctx.gprs[..2], [INCOMPLETE, 0]);
    let ctx = ctx_of(&f, &rmm);
    assert_eq!(ctx.state, attest::STATE_SIGNING);
    assert_eq!(
        ctx.sign.bits_done(),
        attest::MAX_SLICES_PER_CALL * attest::SLICE_BITS,
        "the first CONTINUE started the signature and ran its slices"
    );
    let (tok, _) = fetch(&f, &rmm, 4096);
    let c = check_token(&tok, TokenFormat::Cmw);
    assert_eq!(c.bytes(10), &[12u8; 64][..]);
    let rems = c.get(44239).as_array().unwrap();
    assert_eq!(
        rems[0].as_bytes().unwrap(),
        &rem_before[..32].to_vec(),
        "REM 0 as it was at INIT"
    );
}

#[test]
fn continue_argument_and_buffer_failures() {
    with_material(TokenFormat::Cmw);
    let f = Fixture::new();
    let rmm = realm(&f);
    // Before any INIT.
    assert_eq!(cont(&f, &rmm, GIB, 0, 4096).ctx.gprs[0], STATE);
    init(&f, &rmm, &[1; 64]);
    for (ipa, off, size) in [
        (GIB + 8, 0, 8),
        (GIB, 4096, 0),
        (GIB, 4000, 97),
        (GIB, 8, u64::MAX),
        (UNPROT, 0, 8),
    ] {
        let o = cont(&f, &rmm, ipa, off, size);
        assert_eq!(o.ctx.gprs[0], INPUT, "{ipa:#x} {off} {size}");
    }
    assert_eq!(
        ctx_of(&f, &rmm).sign.bits_done(),
        0,
        "no signing on bad arguments"
    );
    // Signing then a buffer with RIPAS EMPTY: ERROR_INPUT, the token is kept.
    let empty = GIB + 8 * G;
    let mut o = cont(&f, &rmm, empty, 0, 4096);
    while o.ctx.gprs[0] == INCOMPLETE {
        o = cont(&f, &rmm, empty, 0, 4096);
    }
    assert_eq!(o.ctx.gprs[0], INPUT);
    assert_eq!(ctx_of(&f, &rmm).state, attest::STATE_COPYING);
    // Unmapped RAM: a stage 2 abort on the buffer; the SMC runs again once mapped.
    let o = cont(&f, &rmm, GIB + 5 * G, 0, 4096);
    assert!(!o.returned);
    assert_eq!(o.exit.exit_reason, exit_reason::SYNC);
    assert_eq!(o.exit.esr >> 26, 0x24, "a data abort");
    assert_eq!(o.exit.hpfar, (GIB + 5 * G) >> 8);
    assert_eq!(o.ctx.pc, o.pc_before, "the SMC is not skipped");
    // Size 0: INCOMPLETE, nothing written.
    f.sim.realm_write(pa(data(2)), &[0xEE; 16]);
    let o = cont(&f, &rmm, GIB + 2 * G, 0, 0);
    assert_eq!(o.ctx.gprs[..2], [INCOMPLETE, 0]);
    assert_eq!(f.sim.peek(pa(data(2)))[..16], [0xEE; 16]);
    // The token is still there in full.
    let (tok, calls) = fetch(&f, &rmm, 4096);
    assert_eq!(calls, 1);
    check_token(&tok, TokenFormat::Cmw);
}

#[test]
fn the_nonce_is_wiped_once_signed() {
    with_material(TokenFormat::Cmw);
    let f = Fixture::new();
    let rmm = realm(&f);
    init(&f, &rmm, &[1; 64]);
    assert_ne!(ctx_of(&f, &rmm).sign.bits_done(), crate::ecdsa::WORK_BITS);
    let mut o = cont(&f, &rmm, GIB, 0, 1);
    while o.ctx.gprs[1] == 0 {
        o = cont(&f, &rmm, GIB, 0, 1);
    }
    let ctx = ctx_of(&f, &rmm);
    assert_eq!(ctx.state, attest::STATE_COPYING);
    assert!(zerocopy::IntoBytes::as_bytes(&ctx.sign)
        .iter()
        .all(|&b| b == 0));
}

#[test]
fn realm_instance_ids_are_random_and_need_the_random_source() {
    test_env::set_random_fails(false);
    let f = Fixture::new();
    let rmm = realm(&f);
    let a = rd_obj(&rmm).instance_id;
    assert_eq!(a[0], 1);
    assert!(a[33..].iter().all(|&b| b == 0));
    // A second realm with the same parameters gets another ID.
    delegate(&rmm, B1 + 40 * G, 3);
    let mut p = Params {
        rtt_base: B1 + 42 * G,
        rtt_level_start: 1,
        rtt_num_start: 1,
        s2sz: 39,
        ..Default::default()
    };
    let out = create_realm_with(&f, &rmm, B1 + 40 * G, PARAMS, &p);
    assert_eq!(out[0], 0);
    let g = rmm
        .granules()
        .lock(pa(B1 + 40 * G), GranuleState::Rd)
        .unwrap();
    let b = rmm.rd_read(&g).instance_id;
    drop(g);
    assert_ne!(a, b);
    // Without random numbers REALM_CREATE fails with RMI_ERROR_GLOBAL and takes nothing.
    test_env::set_random_fails(true);
    delegate(&rmm, B1 + 50 * G, 2);
    p.rtt_base = B1 + 51 * G;
    let vmids = rmm.vmids_in_use();
    let out = create_realm_with(&f, &rmm, B1 + 50 * G, PARAMS, &p);
    test_env::set_random_fails(false);
    assert_eq!(out[0], RmiStatus::ErrorGlobal as u64);
    assert_eq!(rmm.vmids_in_use(), vmids);
    assert_eq!(gstate(&rmm, B1 + 50 * G), GranuleState::Delegated);
    assert_eq!(gstate(&rmm, B1 + 51 * G), GranuleState::Delegated);
}

#[test]
fn material_checks() {
    let rak = Rak::new(&crate::ecdsa::tests::D).unwrap();
    assert_eq!(
        Material::new(rak.clone(), &[], TokenFormat::Cmw).err(),
        Some(attest::InstallError::PlatformTokenSize(0))
    );
    let big = std::vec![0u8; token::MAX_PLATFORM_TOKEN_LEN + 1];
    assert_eq!(
        Material::new(rak.clone(), &big, TokenFormat::Cmw).err(),
        Some(attest::InstallError::PlatformTokenSize(big.len()))
    );
    let m = Material::new(rak, &big[1..], TokenFormat::Legacy).unwrap();
    assert_eq!(m.platform_token().len(), token::MAX_PLATFORM_TOKEN_LEN);
    assert_eq!(m.format(), TokenFormat::Legacy);
    assert!(Rak::new(&[0; 48]).is_err());
    // The binding hash is SHA-256 of the COSE_Key.
    let rak = m.rak();
    let h = cca_measure::hash(cca_abi::rmi::HashAlgorithm::Sha256, rak.cose_key());
    assert_eq!(rak.binding_hash()[..], h[..32]);
    assert!(!format!("{rak:?}").contains("d:"), "the key is not printed");
}

/// A source that counts its fetches and has material or not.
struct CountingSource {
    fetches: std::sync::atomic::AtomicU32,
    has: bool,
}

impl attest::MaterialSource for CountingSource {
    fn fetch(&self) -> Option<Material> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.has.then(|| {
            let rak = Rak::new(&crate::ecdsa::tests::D).unwrap();
            Material::new(rak, &PLATFORM, TokenFormat::Cmw).unwrap()
        })
    }
}

fn counting(has: bool) -> &'static CountingSource {
    Box::leak(Box::new(CountingSource {
        fetches: 0.into(),
        has,
    }))
}

fn fetches(s: &CountingSource) -> u32 {
    s.fetches.load(std::sync::atomic::Ordering::SeqCst)
}

#[test]
fn the_first_init_fetches_the_material_once() {
    let src = counting(true);
    test_env::set_source(src);
    test_env::set_random_fails(false);
    test_env::irq_after(None);
    let f = Fixture::new();
    let rmm = realm(&f);
    // Nothing is fetched until a realm asks for a token.
    assert_eq!(fetches(src), 0);
    assert_eq!(init(&f, &rmm, &[7; 64]).ctx.gprs[0], SUCCESS);
    assert_eq!(fetches(src), 1);
    let (tok, _) = fetch(&f, &rmm, 4096);
    check_token(&tok, TokenFormat::Cmw);
    assert_eq!(init(&f, &rmm, &[8; 64]).ctx.gprs[0], SUCCESS);
    assert_eq!(fetches(src), 1, "the material is kept");
}

#[test]
fn a_source_without_material_is_asked_once() {
    let src = counting(false);
    test_env::set_source(src);
    test_env::irq_after(None);
    let f = Fixture::new();
    let rmm = realm(&f);
    assert_eq!(init(&f, &rmm, &[7; 64]).ctx.gprs[0], UNKNOWN);
    assert_eq!(init(&f, &rmm, &[7; 64]).ctx.gprs[0], UNKNOWN);
    assert_eq!(fetches(src), 1);
}

#[test]
fn material_cell_rules() {
    let rak = Rak::new(&crate::ecdsa::tests::D).unwrap();
    let m = || Material::new(rak.clone(), &PLATFORM, TokenFormat::Legacy).unwrap();
    // Without a source there is none, and that is final.
    let cell = attest::MaterialCell::new();
    assert!(cell.get().is_none());
    assert_eq!(
        cell.install(m()),
        Err(attest::InstallError::AlreadyInstalled)
    );
    // Installed material is used without asking the source, and only once.
    let src = counting(true);
    let cell = attest::MaterialCell::new();
    assert!(cell.install_source(src));
    assert!(!cell.install_source(counting(true)));
    assert!(cell.install(m()).is_ok());
    assert_eq!(
        cell.install(m()),
        Err(attest::InstallError::AlreadyInstalled)
    );
    assert_eq!(cell.get().map(Material::format), Some(TokenFormat::Legacy));
    assert_eq!(fetches(src), 0);
    // CPUs asking at once: one fetch, every one gets it.
    let src = counting(true);
    let cell: &'static attest::MaterialCell = Box::leak(Box::new(attest::MaterialCell::new()));
    assert!(cell.install_source(src));
    let threads: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || cell.get().map(|m| m.platform_token().len())))
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), Some(PLATFORM.len()));
    }
    assert_eq!(fetches(src), 1);
}

#[test]
fn the_largest_platform_token_still_makes_a_token() {
    let rak = Rak::new(&crate::ecdsa::tests::D).unwrap();
    let big = std::vec![0xD2u8; token::MAX_PLATFORM_TOKEN_LEN];
    test_env::set_material(Some(Material::new(rak, &big, TokenFormat::Cmw).unwrap()));
    test_env::irq_after(None);
    let f = Fixture::new();
    let p = Params {
        hash_algo: 1,
        ..Default::default()
    };
    let rmm = realm_p(&f, &p);
    init(&f, &rmm, &[1; 64]);
    let (tok, _) = fetch(&f, &rmm, 4096);
    assert!(tok.len() <= CCA_TOKEN_BUFFER);
    check_token(&tok, TokenFormat::Cmw);
}

use std::format;
