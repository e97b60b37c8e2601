//! Tests of the stateful operations: REC_CREATE, REC_DESTROY, OP_CONTINUE, OP_MEM_DONATE,
//! OP_MEM_RECLAIM, OP_CANCEL, and RTT_SET_RIPAS (which needs a REC).

extern crate std;

use cca_abi::rmi::{map_flags, AddrRangeDesc, BlockSize, Ripas, RmiFid, RmiStatus};
use std::vec::Vec;

use crate::granule::GranuleState;
use crate::sim::{Pas, Tlbi};
use crate::test_util::*;

const INPUT: u64 = RmiStatus::ErrorInput as u64;
const REALM: u64 = RmiStatus::ErrorRealm as u64;
const INCOMPLETE_NONE: u64 = 0xD;
const INCOMPLETE_DONATE: u64 = 0x10D;
const INCOMPLETE_RECLAIM: u64 = 0x20D;
const GIB: u64 = 1 << 30;

/// The REC granule of REC index `k`.
fn rec(k: u64) -> u64 {
    B1 + (100 + k) * G
}

fn rec_obj(rmm: &TRmm<'_>, a: u64) -> crate::Rec {
    let g = rmm.granules().lock(pa(a), GranuleState::Rec).unwrap();
    rmm.rec_read(&g)
}

/// Reclaims everything of `h` into NS3 and calls OP_CONTINUE; returns its x0.
fn reclaim_all_and_continue(rmm: &TRmm<'_>, h: u64) -> u64 {
    loop {
        let out = call(rmm, RmiFid::OP_MEM_RECLAIM, &[h, NS3, 512]);
        match out[0] {
            INCOMPLETE_RECLAIM => continue,
            INCOMPLETE_NONE => break,
            x => panic!("OP_MEM_RECLAIM returned {x:#x}"),
        }
    }
    call(rmm, RmiFid::OP_CONTINUE, &[h, 0])[0]
}

/// A REC_CREATE whose OP_CONTINUE fails: checks the reclaim path and the final error.
fn create_fails_at_continue(f: &Fixture, rmm: &TRmm<'_>, mpidr: u64, expected: u64) {
    let refs = grefs(rmm, RD);
    let aux0 = aux_base(cca_abi::rmi::rec_mpidr::to_index(mpidr));
    let h = start_rec(f, rmm, rec(0), mpidr, 1, 0, &[]);
    let out = call(rmm, RmiFid::OP_CONTINUE, &[h, 0]);
    assert_eq!(out[..3], [INCOMPLETE_RECLAIM, 0, 0]);
    let out = call(rmm, RmiFid::OP_MEM_RECLAIM, &[h, NS3, 16]);
    assert_eq!(
        out[..2],
        [INCOMPLETE_NONE, 1],
        "16 contiguous granules in one descriptor"
    );
    let mut b = [0u8; 8];
    f.sim.host_read(pa(NS3), &mut b).unwrap();
    assert_eq!(
        AddrRangeDesc::decode(u64::from_le_bytes(b)),
        AddrRangeDesc {
            size: BlockSize::L3_4K,
            count: 16,
            addr: aux0,
            undelegated: false
        }
    );
    assert_eq!(
        call(rmm, RmiFid::OP_CONTINUE, &[h, 0])[..3],
        [expected, 0, 0]
    );
    assert_eq!(gstate(rmm, rec(0)), GranuleState::Delegated);
    assert!(f.sim.is_zero(pa(rec(0))));
    for i in 0..16 {
        assert_eq!(gstate(rmm, aux0 + i * G), GranuleState::Delegated);
        assert!(f.sim.is_zero(pa(aux0 + i * G)));
    }
    assert_eq!(grefs(rmm, RD), refs);
    let mut n = 0;
    rmm.for_each_sro(|_| n += 1);
    assert_eq!(n, 0, "the context is free again");
}

// ----------------------------------------------------------------------------- REC_CREATE

#[test]
fn rec_create_builds_a_rec() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    let rim0 = {
        let g = rmm.granules().lock(pa(RD), GranuleState::Rd).unwrap();
        rmm.rd_read(&g).rim
    };
    let h = start_rec(&f, &rmm, rec(0), 0, 0, 0x8000, &[1, 2, 3]);
    assert_eq!(gstate(&rmm, rec(0)), GranuleState::Partial);
    assert_eq!(gstate(&rmm, aux_base(0)), GranuleState::RecAux);
    assert_eq!(call(&rmm, RmiFid::OP_CONTINUE, &[h, 0])[..3], [0, 0, 0]);
    assert_eq!(gstate(&rmm, rec(0)), GranuleState::Rec);
    assert_eq!(grefs(&rmm, RD), 1);
    let r = rec_obj(&rmm, rec(0));
    assert_eq!((r.rd, r.rec_idx, r.ctx.pc, r.runnable), (RD, 0, 0x8000, 0));
    assert_eq!(r.ctx.gprs[..4], [1, 2, 3, 0]);
    assert_eq!(r.ctx.vmpidr, 1 << 31);
    assert_eq!(r.aux[0], aux_base(0));
    assert_eq!(r.ctx.vttbr, ROOT);
    assert_eq!(r.ctx.pstate, 0x3C5);
    assert_eq!(
        r.ctx.arch[0], 1,
        "the firmware reset the architectural state"
    );
    let g = rmm.granules().lock(pa(RD), GranuleState::Rd).unwrap();
    let rd = rmm.rd_read(&g);
    assert_eq!(rd.rec_count, 1);
    assert_eq!(rd.rim, rim0, "a REC that is not runnable is not measured");
    drop(g);
    // The next REC must have index 1; a runnable one changes the RIM.
    create_rec_ok(&f, &rmm, rec(1), 1, 1, 0, &[]);
    assert_eq!(grefs(&rmm, RD), 2);
    let g = rmm.granules().lock(pa(RD), GranuleState::Rd).unwrap();
    assert_ne!(rmm.rd_read(&g).rim, rim0);
}

#[test]
fn rec_create_rejects_rec_not_delegated() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    for a in [rec(0), rec(0) + 8, RD, 0] {
        assert_eq!(
            call(&rmm, RmiFid::REC_CREATE, &[RD, a, NS2])[..2],
            [INPUT, 0],
            "{a:#x}"
        );
    }
}

#[test]
fn rec_create_rejects_when_every_context_is_sealed_or_busy() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    delegate(&rmm, rec(0), 1);
    let held: Vec<_> = (0..crate::SRO_CONTEXTS)
        .map(|_| {
            rmm.sro_reserve(RmiFid::RTT_DATA_MAP, 0, RmiFid::OP_CONTINUE)
                .unwrap()
        })
        .collect();
    assert_eq!(
        call(&rmm, RmiFid::REC_CREATE, &[RD, rec(0), NS2])[0],
        RmiStatus::Busy as u64
    );
    for r in held {
        r.seal();
    }
    assert_eq!(
        call(&rmm, RmiFid::REC_CREATE, &[RD, rec(0), NS2])[0],
        RmiStatus::Blocked as u64
    );
    assert_eq!(gstate(&rmm, rec(0)), GranuleState::Delegated);
}

#[test]
fn rec_create_fails_at_continue_when_params_are_not_ns() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    delegate(&rmm, rec(0), 1);
    let out = call(&rmm, RmiFid::REC_CREATE, &[RD, rec(0), RD]);
    assert_eq!(
        out[0], INCOMPLETE_DONATE,
        "the parameters are read at OP_CONTINUE"
    );
    let h = out[1];
    delegate(&rmm, aux_base(0), 16);
    write_granule_list(&f, NS3, aux_base(0), 16);
    assert_eq!(
        call(&rmm, RmiFid::OP_MEM_DONATE, &[h, NS3, 16])[0],
        INCOMPLETE_NONE
    );
    assert_eq!(
        call(&rmm, RmiFid::OP_CONTINUE, &[h, 0])[0],
        INCOMPLETE_RECLAIM
    );
    assert_eq!(reclaim_all_and_continue(&rmm, h), INPUT);
}

#[test]
fn rec_create_fails_at_continue_when_params_fault() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    let h = start_rec(&f, &rmm, rec(0), 0, 1, 0, &[]);
    f.sim.set_pas(pa(NS2), Pas::Secure);
    assert_eq!(
        call(&rmm, RmiFid::OP_CONTINUE, &[h, 0])[0],
        INCOMPLETE_RECLAIM
    );
    assert_eq!(reclaim_all_and_continue(&rmm, h), INPUT);
}

#[test]
fn rec_create_fails_at_continue_when_rd_is_not_an_rd() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    delegate(&rmm, rec(0), 1);
    write_rec_params(&f, NS2, 1, 0, 0, &[]);
    let h = call(&rmm, RmiFid::REC_CREATE, &[ROOT, rec(0), NS2])[1];
    delegate(&rmm, aux_base(0), 16);
    write_granule_list(&f, NS3, aux_base(0), 16);
    assert_eq!(
        call(&rmm, RmiFid::OP_MEM_DONATE, &[h, NS3, 16])[0],
        INCOMPLETE_NONE
    );
    assert_eq!(
        call(&rmm, RmiFid::OP_CONTINUE, &[h, 0])[0],
        INCOMPLETE_RECLAIM
    );
    assert_eq!(reclaim_all_and_continue(&rmm, h), INPUT);
}

#[test]
fn rec_create_fails_at_continue_with_too_many_recs() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    rmm.granules()
        .granule(pa(RD))
        .unwrap()
        .lock()
        .refcount_add(crate::granule::REFCOUNT_MAX);
    create_fails_at_continue(&f, &rmm, 0, REALM);
    rmm.granules()
        .granule(pa(RD))
        .unwrap()
        .lock()
        .refcount_sub(crate::granule::REFCOUNT_MAX);
}

#[test]
fn rec_create_fails_at_continue_when_realm_is_not_new() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    call(&rmm, RmiFid::REALM_ACTIVATE, &[RD]);
    create_fails_at_continue(&f, &rmm, 0, REALM);
}

#[test]
fn rec_create_fails_at_continue_with_invalid_mpidr() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    create_fails_at_continue(&f, &rmm, 0x10, INPUT);
}

#[test]
fn rec_create_fails_at_continue_with_mpidr_out_of_order() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    create_fails_at_continue(&f, &rmm, 1, INPUT);
}

#[test]
fn rec_create_reads_the_params_at_continue_time() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    let h = start_rec(&f, &rmm, rec(0), 5, 1, 0, &[]);
    write_rec_params(&f, NS2, 1, 0, 0x1234, &[]);
    assert_eq!(call(&rmm, RmiFid::OP_CONTINUE, &[h, 0])[0], 0);
    assert_eq!(rec_obj(&rmm, rec(0)).ctx.pc, 0x1234);
}

// -------------------------------------------------------------------------- OP_MEM_DONATE

fn begin(f: &Fixture, rmm: &TRmm<'_>) -> u64 {
    delegate(rmm, rec(0), 1);
    write_rec_params(f, NS2, 1, 0, 0, &[]);
    let out = call(rmm, RmiFid::REC_CREATE, &[RD, rec(0), NS2]);
    assert_eq!(out[0], INCOMPLETE_DONATE);
    out[1]
}

#[test]
fn op_mem_donate_accepts_partial_donations() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    let h = begin(&f, &rmm);
    delegate(&rmm, aux_base(0), 16);
    write_granule_list(&f, NS3, aux_base(0), 16);
    let out = call(&rmm, RmiFid::OP_MEM_DONATE, &[h, NS3, 10]);
    assert_eq!(out[..3], [INCOMPLETE_DONATE, 10, 6 << 2]);
    // More than requested now.
    assert_eq!(call(&rmm, RmiFid::OP_MEM_DONATE, &[h, NS3, 16])[0], INPUT);
    let out = call(&rmm, RmiFid::OP_MEM_DONATE, &[h, NS3 + 80, 6]);
    assert_eq!(out[..3], [INCOMPLETE_NONE, 6, 0]);
    assert_eq!(call(&rmm, RmiFid::OP_CONTINUE, &[h, 0])[0], 0);
}

#[test]
fn op_mem_donate_stops_at_a_later_granule_not_delegated() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    let h = begin(&f, &rmm);
    delegate(&rmm, aux_base(0), 1);
    write_granule_list(&f, NS3, aux_base(0), 2);
    let out = call(&rmm, RmiFid::OP_MEM_DONATE, &[h, NS3, 2]);
    assert_eq!(out[..3], [INCOMPLETE_DONATE, 1, 15 << 2]);
    assert_eq!(gstate(&rmm, aux_base(0) + G), GranuleState::Ns);
}

#[test]
fn op_mem_donate_fails_the_operation_when_the_first_granule_is_not_delegated() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    let h = begin(&f, &rmm);
    delegate(&rmm, aux_base(0), 1);
    write_granule_list(&f, NS3, aux_base(0), 1);
    assert_eq!(
        call(&rmm, RmiFid::OP_MEM_DONATE, &[h, NS3, 1])[0],
        INCOMPLETE_DONATE
    );
    write_granule_list(&f, NS3, aux_base(0) + G, 1);
    let out = call(&rmm, RmiFid::OP_MEM_DONATE, &[h, NS3, 1]);
    assert_eq!(out[..3], [INCOMPLETE_RECLAIM, 0, 0]);
    assert_eq!(reclaim_all_and_continue(&rmm, h), INPUT);
    assert_eq!(gstate(&rmm, aux_base(0)), GranuleState::Delegated);
    assert_eq!(gstate(&rmm, rec(0)), GranuleState::Delegated);
}

#[test]
fn op_mem_donate_rejects_unknown_handle() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(call(&rmm, RmiFid::OP_MEM_DONATE, &[0, NS3, 1])[0], INPUT);
    assert_eq!(
        call(&rmm, RmiFid::OP_MEM_DONATE, &[u64::MAX, NS3, 1])[0],
        INPUT
    );
}

#[test]
fn op_mem_donate_rejects_unexpected_call() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    let h = start_rec(&f, &rmm, rec(0), 0, 1, 0, &[]);
    assert_eq!(call(&rmm, RmiFid::OP_MEM_DONATE, &[h, NS3, 1])[0], INPUT);
    assert_eq!(
        call(&rmm, RmiFid::OP_CONTINUE, &[h, 0])[0],
        0,
        "still sealed and usable"
    );
}

#[test]
fn op_mem_donate_rejects_misaligned_list() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    let h = begin(&f, &rmm);
    assert_eq!(
        call(&rmm, RmiFid::OP_MEM_DONATE, &[h, NS3 + 4, 1])[0],
        INPUT
    );
}

#[test]
fn op_mem_donate_rejects_list_not_ns() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    let h = begin(&f, &rmm);
    assert_eq!(call(&rmm, RmiFid::OP_MEM_DONATE, &[h, RD, 1])[0], INPUT);
    f.sim.set_pas(pa(NS3), Pas::Secure);
    assert_eq!(call(&rmm, RmiFid::OP_MEM_DONATE, &[h, NS3, 1])[0], INPUT);
}

/// Donates the single descriptor `d` (written to NS3) to the operation `h`; returns x0.
fn donate_one(
    f: &Fixture,
    rmm: &crate::Rmm<'_, &crate::sim::SimPlatform>,
    h: u64,
    d: AddrRangeDesc,
) -> u64 {
    f.sim
        .host_write(pa(NS3), &d.encode().to_le_bytes())
        .unwrap();
    call(rmm, RmiFid::OP_MEM_DONATE, &[h, NS3, 1])[0]
}

#[test]
fn op_mem_donate_rejects_undelegated_descriptor() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    let h = begin(&f, &rmm);
    let d = AddrRangeDesc {
        size: BlockSize::L3_4K,
        count: 1,
        addr: aux_base(0),
        undelegated: true,
    };
    assert_eq!(donate_one(&f, &rmm, h, d), INPUT);
}

#[test]
fn op_mem_donate_rejects_misaligned_descriptor() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    let h = begin(&f, &rmm);
    let d = AddrRangeDesc {
        size: BlockSize::L2_2M,
        count: 1,
        addr: aux_base(0),
        undelegated: false,
    };
    assert_eq!(donate_one(&f, &rmm, h, d), INPUT);
}

#[test]
fn op_mem_donate_rejects_more_than_requested() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    let h = begin(&f, &rmm);
    write_granule_list(&f, NS3, aux_base(0), 17);
    assert_eq!(call(&rmm, RmiFid::OP_MEM_DONATE, &[h, NS3, 17])[0], INPUT);
}

#[test]
fn op_mem_donate_clips_the_list_at_the_page_end() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    let h = begin(&f, &rmm);
    delegate(&rmm, aux_base(0), 1);
    write_granule_list(&f, NS3 + G - 8, aux_base(0), 1);
    assert_eq!(
        call(&rmm, RmiFid::OP_MEM_DONATE, &[h, NS3 + G - 8, 16])[..2],
        [INCOMPLETE_DONATE, 1]
    );
}

// ---------------------------------------------------------------------------- OP_CONTINUE

#[test]
fn op_continue_rejects_unknown_handle() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(call(&rmm, RmiFid::OP_CONTINUE, &[3, 0])[0], INPUT);
}

#[test]
fn op_continue_rejects_operation_waiting_for_memory() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    let h = begin(&f, &rmm);
    assert_eq!(call(&rmm, RmiFid::OP_CONTINUE, &[h, 0])[0], INPUT);
    assert_eq!(gstate(&rmm, rec(0)), GranuleState::Partial);
}

// ------------------------------------------------------------------------- OP_MEM_RECLAIM

fn destroy_started(f: &Fixture, rmm: &TRmm<'_>) -> u64 {
    create_rec_ok(f, rmm, rec(0), 0, 1, 0, &[]);
    let out = call(rmm, RmiFid::REC_DESTROY, &[rec(0)]);
    assert_eq!((out[0], out[2]), (INCOMPLETE_RECLAIM, 0));
    out[1]
}

#[test]
fn op_mem_reclaim_in_small_batches() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    let h = destroy_started(&f, &rmm);
    for i in 0..3 {
        let out = call(&rmm, RmiFid::OP_MEM_RECLAIM, &[h, NS3 + 8 * i, 5]);
        assert_eq!(out[..2], [INCOMPLETE_RECLAIM, 1], "batch {i}");
    }
    let out = call(&rmm, RmiFid::OP_MEM_RECLAIM, &[h, NS3, 5]);
    assert_eq!(out[..2], [INCOMPLETE_NONE, 1]);
    assert_eq!(call(&rmm, RmiFid::OP_CONTINUE, &[h, 0])[0], 0);
}

#[test]
fn op_mem_reclaim_rejects_unknown_handle() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(call(&rmm, RmiFid::OP_MEM_RECLAIM, &[7, NS3, 1])[0], INPUT);
}

#[test]
fn op_mem_reclaim_rejects_misaligned_list() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    let h = destroy_started(&f, &rmm);
    assert_eq!(
        call(&rmm, RmiFid::OP_MEM_RECLAIM, &[h, NS3 + 1, 1])[0],
        INPUT
    );
}

#[test]
fn op_mem_reclaim_rejects_unexpected_call() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    let h = begin(&f, &rmm);
    assert_eq!(call(&rmm, RmiFid::OP_MEM_RECLAIM, &[h, NS3, 1])[0], INPUT);
}

#[test]
fn op_mem_reclaim_with_no_room_repeats_the_request() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    let h = destroy_started(&f, &rmm);
    assert_eq!(
        call(&rmm, RmiFid::OP_MEM_RECLAIM, &[h, NS3, 0])[..2],
        [INCOMPLETE_RECLAIM, 0]
    );
    assert_eq!(gstate(&rmm, aux_base(0)), GranuleState::RecAux);
}

#[test]
fn op_mem_reclaim_retries_after_a_failed_copy() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    let h = destroy_started(&f, &rmm);
    assert_eq!(
        call(&rmm, RmiFid::OP_MEM_RECLAIM, &[h, RD, 16])[..2],
        [INPUT, 0]
    );
    // The granules were moved and listed; the next call hands the list over.
    let out = call(&rmm, RmiFid::OP_MEM_RECLAIM, &[h, NS3, 16]);
    assert_eq!(out[..2], [INCOMPLETE_NONE, 1]);
    assert_eq!(call(&rmm, RmiFid::OP_CONTINUE, &[h, 0])[0], 0);
}

// ------------------------------------------------------------------------------ OP_CANCEL

#[test]
fn op_cancel_rejects_unknown_handle() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(call(&rmm, RmiFid::OP_CANCEL, &[1])[0], INPUT);
}

#[test]
fn op_cancel_cannot_cancel_anything() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    let h = start_rec(&f, &rmm, rec(0), 0, 1, 0, &[]);
    assert_eq!(call(&rmm, RmiFid::OP_CANCEL, &[h])[0], INPUT);
    assert_eq!(call(&rmm, RmiFid::OP_CONTINUE, &[h, 0])[0], 0);
}

// ---------------------------------------------------------------------------- REC_DESTROY

#[test]
fn rec_destroy_returns_everything_scrubbed() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    let h = destroy_started(&f, &rmm);
    assert_eq!(gstate(&rmm, rec(0)), GranuleState::Partial);
    assert_eq!(grefs(&rmm, RD), 0, "the RD reference goes at once");
    assert_eq!(reclaim_all_and_continue(&rmm, h), 0);
    assert_eq!(gstate(&rmm, rec(0)), GranuleState::Delegated);
    assert!(f.sim.is_zero(pa(rec(0))));
    for i in 0..16 {
        assert_eq!(gstate(&rmm, aux_base(0) + i * G), GranuleState::Delegated);
    }
    call(&rmm, RmiFid::REALM_TERMINATE, &[RD]);
    assert_eq!(call(&rmm, RmiFid::REALM_DESTROY, &[RD])[0], 0);
}

#[test]
fn rec_destroy_rejects_when_every_context_is_sealed() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    create_rec_ok(&f, &rmm, rec(0), 0, 1, 0, &[]);
    let _held: Vec<_> = (0..crate::SRO_CONTEXTS)
        .map(|_| {
            rmm.sro_reserve(RmiFid::RTT_DATA_MAP, 0, RmiFid::OP_CONTINUE)
                .unwrap()
                .seal()
        })
        .collect();
    assert_eq!(
        call(&rmm, RmiFid::REC_DESTROY, &[rec(0)])[0],
        RmiStatus::Blocked as u64
    );
    assert_eq!(gstate(&rmm, rec(0)), GranuleState::Rec);
}

#[test]
fn rec_destroy_rejects_non_rec() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(call(&rmm, RmiFid::REC_DESTROY, &[RD])[0], INPUT);
    let mut n = 0;
    rmm.for_each_sro(|_| n += 1);
    assert_eq!(n, 0, "the context was released");
}

#[test]
fn rec_destroy_rejects_running_rec() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    create_rec_ok(&f, &rmm, rec(0), 0, 1, 0, &[]);
    rmm.granules()
        .granule(pa(rec(0)))
        .unwrap()
        .lock()
        .refcount_add(1);
    assert_eq!(
        call(&rmm, RmiFid::REC_DESTROY, &[rec(0)])[0],
        RmiStatus::ErrorRec as u64
    );
}

// -------------------------------------------------------------------------- RTT_SET_RIPAS

fn set_ripas(rmm: &TRmm<'_>, base: u64, top: u64) -> [u64; 8] {
    call(rmm, RmiFid::RTT_SET_RIPAS, &[RD, rec(0), base, top])
}

/// A realm with the L3 table at GIB, two RAM pages mapped there, and REC 0.
fn ripas_realm(f: &Fixture) -> TRmm<'_> {
    let rmm = setup_realm(f);
    setup_l3(&rmm, GIB);
    assert_eq!(
        call(&rmm, RmiFid::RTT_INIT_RIPAS, &[RD, GIB, GIB + 4 * G])[0],
        0
    );
    assert_eq!(data_map_pages(&rmm, GIB, data(0), 2)[0], 0);
    create_rec_ok(f, &rmm, rec(0), 0, 1, 0, &[]);
    rmm
}

#[test]
fn rtt_set_ripas_to_empty_invalidates_ram() {
    let f = Fixture::new();
    let rmm = ripas_realm(&f);
    assert!(rmm.rec_request_ripas_change(pa(rec(0)), GIB, GIB + 8 * G, Ripas::Empty, false));
    f.sim.take_tlbis();
    assert_eq!(set_ripas(&rmm, GIB, GIB + 8 * G)[..2], [0, GIB + 8 * G]);
    assert_eq!(read_entry(&rmm, GIB, 3), (3, 1, data(0), 0));
    assert_eq!(read_entry(&rmm, GIB + 3 * G, 3).3, 0);
    assert_eq!(
        f.sim.take_tlbis(),
        [
            Tlbi::Ipa {
                vmid: 0,
                ipa: GIB,
                level: 3
            },
            Tlbi::Ipa {
                vmid: 0,
                ipa: GIB + G,
                level: 3
            }
        ]
    );
    assert_eq!(rec_obj(&rmm, rec(0)).ripas_addr, GIB + 8 * G);
}

#[test]
fn rtt_set_ripas_in_steps_and_to_ram() {
    let f = Fixture::new();
    let rmm = ripas_realm(&f);
    assert!(rmm.rec_request_ripas_change(pa(rec(0)), GIB + 4 * G, GIB + 8 * G, Ripas::Ram, false));
    assert_eq!(
        set_ripas(&rmm, GIB + 4 * G, GIB + 6 * G)[..2],
        [0, GIB + 6 * G]
    );
    assert_eq!(
        set_ripas(&rmm, GIB + 4 * G, GIB + 8 * G)[0],
        INPUT,
        "base must be the next address"
    );
    assert_eq!(
        set_ripas(&rmm, GIB + 6 * G, GIB + 8 * G)[..2],
        [0, GIB + 8 * G]
    );
    assert_eq!(read_entry(&rmm, GIB + 7 * G, 3).3, 1);
}

#[test]
fn rtt_set_ripas_destroyed_needs_change_destroyed() {
    let f = Fixture::new();
    let rmm = ripas_realm(&f);
    assert_eq!(
        call(&rmm, RmiFid::RTT_DATA_UNMAP, &[RD, GIB, GIB + G, 0, 0])[0],
        0
    );
    assert_eq!(read_entry(&rmm, GIB, 3).3, 2);
    assert!(rmm.rec_request_ripas_change(pa(rec(0)), GIB, GIB + G, Ripas::Ram, false));
    assert_eq!(
        set_ripas(&rmm, GIB, GIB + G)[0],
        code(RmiStatus::ErrorRtt, 3)
    );
    assert!(rmm.rec_request_ripas_change(pa(rec(0)), GIB, GIB + G, Ripas::Ram, true));
    assert_eq!(set_ripas(&rmm, GIB, GIB + G)[..2], [0, GIB + G]);
    assert_eq!(read_entry(&rmm, GIB, 3).3, 1);
}

#[test]
fn rtt_set_ripas_rejects_bad_range() {
    let f = Fixture::new();
    let rmm = ripas_realm(&f);
    assert_eq!(set_ripas(&rmm, GIB, GIB)[0], INPUT);
    assert_eq!(set_ripas(&rmm, GIB, GIB + 8)[0], INPUT);
}

#[test]
fn rtt_set_ripas_rejects_bad_rd_or_rec() {
    let f = Fixture::new();
    let rmm = ripas_realm(&f);
    assert_eq!(
        call(&rmm, RmiFid::RTT_SET_RIPAS, &[ROOT, rec(0), GIB, GIB + G])[0],
        INPUT
    );
    assert_eq!(
        call(&rmm, RmiFid::RTT_SET_RIPAS, &[RD, RD, GIB, GIB + G])[0],
        INPUT
    );
}

#[test]
fn rtt_set_ripas_rejects_running_rec() {
    let f = Fixture::new();
    let rmm = ripas_realm(&f);
    rmm.granules()
        .granule(pa(rec(0)))
        .unwrap()
        .lock()
        .refcount_add(1);
    assert_eq!(set_ripas(&rmm, GIB, GIB + G)[0], RmiStatus::ErrorRec as u64);
}

#[test]
fn rtt_set_ripas_rejects_rec_of_another_realm() {
    let f = Fixture::new();
    let rmm = ripas_realm(&f);
    let rd2 = B1 + 300 * G;
    delegate(&rmm, rd2, 1);
    delegate(&rmm, rd2 + 2 * G, 1);
    let p = Params {
        s2sz: 32,
        rtt_num_start: 1,
        rtt_base: rd2 + 2 * G,
        ..Params::default()
    };
    assert_eq!(create_realm_with(&f, &rmm, rd2, PARAMS, &p)[0], 0);
    let out = call(&rmm, RmiFid::RTT_SET_RIPAS, &[rd2, rec(0), 0, G]);
    assert_eq!(out[0], RmiStatus::ErrorRec as u64);
}

#[test]
fn rtt_set_ripas_rejects_range_other_than_the_request() {
    let f = Fixture::new();
    let rmm = ripas_realm(&f);
    // No request: base 0, top 0.
    assert_eq!(set_ripas(&rmm, GIB, GIB + G)[0], INPUT);
    assert!(rmm.rec_request_ripas_change(pa(rec(0)), GIB, GIB + G, Ripas::Empty, false));
    assert_eq!(
        set_ripas(&rmm, GIB, GIB + 2 * G)[0],
        INPUT,
        "top beyond the request"
    );
}

#[test]
fn rtt_set_ripas_rejects_base_inside_a_larger_entry() {
    let f = Fixture::new();
    let rmm = ripas_realm(&f);
    assert!(rmm.rec_request_ripas_change(pa(rec(0)), 2 * GIB + G, 3 * GIB, Ripas::Empty, false));
    assert_eq!(
        set_ripas(&rmm, 2 * GIB + G, 3 * GIB)[0],
        code(RmiStatus::ErrorRtt, 1)
    );
}

#[test]
fn rtt_set_ripas_rejects_unprotected_entries() {
    let f = Fixture::new();
    let rmm = ripas_realm(&f);
    assert!(rmm.rec_request_ripas_change(pa(rec(0)), UNPROT, UNPROT + GIB, Ripas::Empty, false));
    assert_eq!(
        set_ripas(&rmm, UNPROT, UNPROT + GIB)[0],
        code(RmiStatus::ErrorRtt, 1)
    );
    let _ = map_flags::ADDR_TYPE_NONE;
}
