//! Tests of RTT_CREATE, RTT_DESTROY, RTT_FOLD, RTT_READ_ENTRY and RTT_INIT_RIPAS: one per
//! failure condition, in TF-RMM's order, and the success paths.

extern crate std;

use cca_abi::rmi::{BlockSize, RmiFid, RmiStatus};

use crate::granule::GranuleState;
use crate::sim::{Tlbi, SIM_CPU};
use crate::test_util::*;

const INPUT: u64 = RmiStatus::ErrorInput as u64;
const REALM: u64 = RmiStatus::ErrorRealm as u64;

fn rtt_err(level: u8) -> u64 {
    code(RmiStatus::ErrorRtt, level)
}

const GIB: u64 = 1 << 30;
const MIB2: u64 = 2 << 20;

// ----------------------------------------------------------------------------- RTT_CREATE

#[test]
fn rtt_create_builds_tables_down_to_level_3() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    create_rtt(&rmm, 0, GIB, 2);
    assert_eq!(gstate(&rmm, rtt(0)), GranuleState::Rtt);
    assert_eq!(grefs(&rmm, ROOT), 1, "the table entry holds a reference");
    assert_eq!(read_entry(&rmm, GIB, 1), (1, 2, rtt(0), 0));
    create_rtt(&rmm, 1, GIB, 3);
    assert_eq!(grefs(&rmm, rtt(0)), 1);
    assert_eq!(read_entry(&rmm, GIB + 0x5000, 3), (3, 0, 0, 0));
    // In the unprotected half the new tables are unassigned_ns.
    create_rtt(&rmm, 2, UNPROT, 2);
    assert_eq!(
        grefs(&rmm, ROOT + G),
        1,
        "the concatenated root holds the reference"
    );
    let p = f.sim.peek(pa(rtt(2)));
    assert_eq!(u64::from_le_bytes(p[8..16].try_into().unwrap()), 1 << 55);
    assert!(f.sim.take_tlbis().is_empty(), "no valid entry was replaced");
}

#[test]
fn rtt_create_rejects_rtt_not_delegated() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(
        call(&rmm, RmiFid::RTT_CREATE, &[RD, rtt(0), GIB, 2])[0],
        INPUT
    );
    assert_eq!(
        call(&rmm, RmiFid::RTT_CREATE, &[RD, rtt(0) + 8, GIB, 2])[0],
        INPUT
    );
    assert_eq!(call(&rmm, RmiFid::RTT_CREATE, &[RD, RD, GIB, 2])[0], INPUT);
    assert_eq!(
        call(&rmm, RmiFid::RTT_CREATE, &[RD, ROOT, GIB, 2])[0],
        INPUT
    );
}

#[test]
fn rtt_create_rejects_rd_not_rd() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    delegate(&rmm, rtt(0), 1);
    assert_eq!(
        call(&rmm, RmiFid::RTT_CREATE, &[ROOT, rtt(0), GIB, 2])[0],
        INPUT
    );
    assert_eq!(gstate(&rmm, rtt(0)), GranuleState::Delegated);
}

#[test]
fn rtt_create_rejects_level_out_of_range() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    delegate(&rmm, rtt(0), 1);
    for level in [0u64, 1, 4, u64::MAX] {
        assert_eq!(
            call(&rmm, RmiFid::RTT_CREATE, &[RD, rtt(0), 0, level])[0],
            INPUT,
            "level {level}"
        );
    }
}

#[test]
fn rtt_create_rejects_ipa_outside_the_realm() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    delegate(&rmm, rtt(0), 1);
    assert_eq!(
        call(&rmm, RmiFid::RTT_CREATE, &[RD, rtt(0), 1 << 40, 2])[0],
        INPUT
    );
}

#[test]
fn rtt_create_rejects_ipa_unaligned_to_the_parent_level() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    delegate(&rmm, rtt(0), 1);
    assert_eq!(
        call(&rmm, RmiFid::RTT_CREATE, &[RD, rtt(0), GIB + MIB2, 2])[0],
        INPUT
    );
}

#[test]
fn rtt_create_rejects_rtt_above_48_bits_without_lpa2() {
    let (f, hi) = Fixture::with_bank_above_48_bits();
    let rmm = setup_realm(&f);
    delegate(&rmm, hi, 1);
    assert_eq!(call(&rmm, RmiFid::RTT_CREATE, &[RD, hi, GIB, 2])[0], INPUT);
}

#[test]
fn rtt_create_rejects_missing_parent_table() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    delegate(&rmm, rtt(0), 1);
    assert_eq!(
        call(&rmm, RmiFid::RTT_CREATE, &[RD, rtt(0), GIB, 3])[0],
        rtt_err(1)
    );
    assert_eq!(gstate(&rmm, rtt(0)), GranuleState::Delegated);
}

#[test]
fn rtt_create_rejects_existing_table() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    create_rtt(&rmm, 0, GIB, 2);
    delegate(&rmm, rtt(1), 1);
    assert_eq!(
        call(&rmm, RmiFid::RTT_CREATE, &[RD, rtt(1), GIB, 2])[0],
        rtt_err(1)
    );
    assert_eq!(grefs(&rmm, ROOT), 1);
}

#[test]
fn rtt_create_unfolds_a_ram_block_with_break_before_make() {
    let f = Fixture::with(big_banks(), SIM_CPU);
    let rmm = setup_realm(&f);
    create_rtt(&rmm, 0, GIB, 2);
    delegate(&rmm, BLOCK2M, 512);
    let (flags, desc) = single(BlockSize::L2_2M, 1, BLOCK2M, false);
    assert_eq!(
        call(&rmm, RmiFid::RTT_INIT_RIPAS, &[RD, GIB, GIB + MIB2])[0],
        0
    );
    let out = call(
        &rmm,
        RmiFid::RTT_DATA_MAP,
        &[RD, GIB, GIB + MIB2, flags, desc],
    );
    assert_eq!(out[..2], [0, GIB + MIB2]);
    assert_eq!(read_entry(&rmm, GIB, 2), (2, 1, BLOCK2M, 1));
    f.sim.take_tlbis();
    create_rtt(&rmm, 1, GIB, 3);
    assert_eq!(
        grefs(&rmm, rtt(1)),
        512,
        "an unfolded block: every entry is live"
    );
    assert_eq!(
        grefs(&rmm, rtt(0)),
        1,
        "the table replaces the block's reference"
    );
    assert_eq!(
        read_entry(&rmm, GIB + 0x7000, 3),
        (3, 1, BLOCK2M + 0x7000, 1)
    );
    assert_eq!(
        f.sim.take_tlbis(),
        [Tlbi::Ipa {
            vmid: 0,
            ipa: GIB,
            level: 2
        }]
    );
}

#[test]
fn rtt_create_unfolds_an_ns_block() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    create_rtt(&rmm, 0, UNPROT, 2);
    assert_eq!(
        unprot_map(&rmm, UNPROT, 0x4000_0000, BlockSize::L2_2M, 1)[0],
        0
    );
    let (_, _, d, _) = read_entry(&rmm, UNPROT, 2);
    f.sim.take_tlbis();
    create_rtt(&rmm, 1, UNPROT, 3);
    assert_eq!(grefs(&rmm, rtt(1)), 0, "NS mappings hold no references");
    assert_eq!(grefs(&rmm, rtt(0)), 1);
    let (_, st, d3, _) = read_entry(&rmm, UNPROT + 0x3000, 3);
    assert_eq!((st, d3), (1, d + 0x3000));
    assert_eq!(
        f.sim.take_tlbis(),
        [Tlbi::Ipa {
            vmid: 0,
            ipa: UNPROT,
            level: 2
        }]
    );
}

#[test]
fn rtt_create_copies_unassigned_ripas() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    create_rtt(&rmm, 0, GIB, 2);
    assert_eq!(
        call(&rmm, RmiFid::RTT_INIT_RIPAS, &[RD, GIB, GIB + MIB2])[0],
        0
    );
    create_rtt(&rmm, 1, GIB, 3);
    assert_eq!(
        read_entry(&rmm, GIB + 0x1000, 3).3,
        1,
        "RAM copied into the child"
    );
}

// ---------------------------------------------------------------------------- RTT_DESTROY

#[test]
fn rtt_destroy_in_par_leaves_destroyed_and_scrubs() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    create_rtt(&rmm, 0, GIB, 2);
    create_rtt(&rmm, 1, 2 * GIB, 2);
    f.sim.take_tlbis();
    let out = call(&rmm, RmiFid::RTT_DESTROY, &[RD, GIB, 2]);
    // x2 skips the now non-live entry up to the next live one (the table at 2 GiB).
    assert_eq!(out[..3], [0, rtt(0), 2 * GIB]);
    assert_eq!(gstate(&rmm, rtt(0)), GranuleState::Delegated);
    assert!(f.sim.is_zero(pa(rtt(0))));
    assert_eq!(grefs(&rmm, ROOT), 1);
    assert_eq!(
        read_entry(&rmm, GIB, 2),
        (1, 0, 0, 2),
        "unassigned, DESTROYED"
    );
    assert_eq!(
        f.sim.take_tlbis(),
        [Tlbi::Ipa {
            vmid: 0,
            ipa: GIB,
            level: 1
        }]
    );
}

#[test]
fn rtt_destroy_unprotected_invalidates_the_whole_range() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    create_rtt(&rmm, 0, UNPROT, 2);
    create_rtt(&rmm, 1, UNPROT, 3);
    assert_eq!(
        unprot_map(&rmm, UNPROT, 0x4000_0000, BlockSize::L3_4K, 3)[0],
        0
    );
    f.sim.take_tlbis();
    let out = call(&rmm, RmiFid::RTT_DESTROY, &[RD, UNPROT, 3]);
    assert_eq!(out[..2], [0, rtt(1)], "NS mappings do not count as live");
    assert_eq!(read_entry(&rmm, UNPROT, 3).0, 2);
    assert_eq!(
        f.sim.take_tlbis(),
        [Tlbi::Range {
            vmid: 0,
            base: UNPROT,
            size: MIB2
        }]
    );
}

#[test]
fn rtt_destroy_rejects_rd_not_rd() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(
        call(&rmm, RmiFid::RTT_DESTROY, &[ROOT, GIB, 2])[..3],
        [INPUT, 0, 0]
    );
}

#[test]
fn rtt_destroy_rejects_level_or_ipa() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(call(&rmm, RmiFid::RTT_DESTROY, &[RD, GIB, 1])[0], INPUT);
    assert_eq!(call(&rmm, RmiFid::RTT_DESTROY, &[RD, GIB, 4])[0], INPUT);
    assert_eq!(call(&rmm, RmiFid::RTT_DESTROY, &[RD, GIB + G, 2])[0], INPUT);
    assert_eq!(call(&rmm, RmiFid::RTT_DESTROY, &[RD, 1 << 40, 2])[0], INPUT);
}

#[test]
fn rtt_destroy_rejects_missing_rtt() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    create_rtt(&rmm, 0, 3 * GIB, 2);
    // The walk stops at level 1: x2 is the next live entry.
    let out = call(&rmm, RmiFid::RTT_DESTROY, &[RD, GIB, 3]);
    assert_eq!(out[..3], [rtt_err(1), 0, 3 * GIB]);
    // The parent entry is reached but is not a table.
    let out = call(&rmm, RmiFid::RTT_DESTROY, &[RD, GIB, 2]);
    assert_eq!(out[..3], [rtt_err(1), 0, 3 * GIB]);
}

#[test]
fn rtt_destroy_rejects_rtt_with_live_entries() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    create_rtt(&rmm, 0, GIB, 2);
    create_rtt(&rmm, 1, GIB, 3);
    let out = call(&rmm, RmiFid::RTT_DESTROY, &[RD, GIB, 2]);
    assert_eq!(out[..3], [rtt_err(2), 0, GIB]);
    assert_eq!(gstate(&rmm, rtt(0)), GranuleState::Rtt);
}

// ------------------------------------------------------------------------------- RTT_FOLD

#[test]
fn rtt_fold_unassigned_entries() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    create_rtt(&rmm, 0, GIB, 2);
    assert_eq!(
        call(&rmm, RmiFid::RTT_INIT_RIPAS, &[RD, GIB, 2 * GIB])[0],
        0
    );
    f.sim.take_tlbis();
    let out = call(&rmm, RmiFid::RTT_FOLD, &[RD, GIB, 2]);
    assert_eq!(out[..2], [0, rtt(0)]);
    assert_eq!(
        read_entry(&rmm, GIB, 2),
        (1, 0, 0, 1),
        "a level 1 unassigned RAM entry"
    );
    assert_eq!(grefs(&rmm, ROOT), 0);
    assert!(f.sim.is_zero(pa(rtt(0))));
    assert_eq!(
        f.sim.take_tlbis(),
        [Tlbi::Ipa {
            vmid: 0,
            ipa: GIB,
            level: 1
        }]
    );
}

#[test]
fn rtt_fold_assigned_pages_into_a_block() {
    let f = Fixture::with(big_banks(), SIM_CPU);
    let rmm = setup_realm(&f);
    setup_l3(&rmm, GIB);
    assert_eq!(
        call(&rmm, RmiFid::RTT_INIT_RIPAS, &[RD, GIB, GIB + MIB2])[0],
        0
    );
    assert_eq!(
        data_map_pages(&rmm, GIB, BLOCK2M, 512)[..2],
        [0, GIB + MIB2]
    );
    assert_eq!(grefs(&rmm, rtt(1)), 512);
    f.sim.take_tlbis();
    let out = call(&rmm, RmiFid::RTT_FOLD, &[RD, GIB, 3]);
    assert_eq!(out[..2], [0, rtt(1)]);
    assert_eq!(read_entry(&rmm, GIB, 3), (2, 1, BLOCK2M, 1));
    assert_eq!(grefs(&rmm, rtt(0)), 1);
    assert_eq!(gstate(&rmm, rtt(1)), GranuleState::Delegated);
    assert_eq!(grefs(&rmm, rtt(1)), 0);
    assert_eq!(
        f.sim.take_tlbis(),
        [Tlbi::Range {
            vmid: 0,
            base: GIB,
            size: MIB2
        }]
    );
}

#[test]
fn rtt_fold_ns_pages_into_a_block() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    create_rtt(&rmm, 0, UNPROT, 2);
    create_rtt(&rmm, 1, UNPROT, 3);
    assert_eq!(
        unprot_map(&rmm, UNPROT, 0x4000_0000, BlockSize::L3_4K, 512)[0],
        0
    );
    let out = call(&rmm, RmiFid::RTT_FOLD, &[RD, UNPROT, 3]);
    assert_eq!(out[..2], [0, rtt(1)]);
    let (level, st, d, _) = read_entry(&rmm, UNPROT, 3);
    assert_eq!((level, st, d), (2, 1, 0x4000_0000 | (5 << 2) | (3 << 6)));
    assert_eq!(grefs(&rmm, rtt(0)), 0, "the NS block holds no reference");
}

#[test]
fn rtt_fold_rejects_rd_not_rd() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(call(&rmm, RmiFid::RTT_FOLD, &[ROOT, GIB, 2])[0], INPUT);
}

#[test]
fn rtt_fold_rejects_level_or_ipa() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(call(&rmm, RmiFid::RTT_FOLD, &[RD, GIB, 1])[0], INPUT);
    assert_eq!(call(&rmm, RmiFid::RTT_FOLD, &[RD, GIB + G, 2])[0], INPUT);
}

#[test]
fn rtt_fold_rejects_missing_parent() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(call(&rmm, RmiFid::RTT_FOLD, &[RD, GIB, 3])[0], rtt_err(1));
}

#[test]
fn rtt_fold_rejects_parent_not_table() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(call(&rmm, RmiFid::RTT_FOLD, &[RD, GIB, 2])[0], rtt_err(1));
}

#[test]
fn rtt_fold_rejects_mixed_unassigned_entries() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    setup_l3(&rmm, GIB);
    assert_eq!(
        call(&rmm, RmiFid::RTT_INIT_RIPAS, &[RD, GIB, GIB + G])[0],
        0
    );
    assert_eq!(call(&rmm, RmiFid::RTT_FOLD, &[RD, GIB, 3])[0], rtt_err(3));
}

#[test]
fn rtt_fold_rejects_partly_live_table() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    setup_l3(&rmm, GIB);
    assert_eq!(data_map_pages(&rmm, GIB, data(0), 1)[0], 0);
    assert_eq!(call(&rmm, RmiFid::RTT_FOLD, &[RD, GIB, 3])[0], rtt_err(3));
}

#[test]
fn rtt_fold_rejects_discontiguous_pages() {
    let f = Fixture::with(big_banks(), SIM_CPU);
    let rmm = setup_realm(&f);
    setup_l3(&rmm, GIB);
    delegate(&rmm, BLOCK2M, 512);
    delegate(&rmm, data(0), 1);
    let (flags, desc) = single(BlockSize::L3_4K, 511, BLOCK2M, false);
    assert_eq!(
        call(
            &rmm,
            RmiFid::RTT_DATA_MAP,
            &[RD, GIB, GIB + 511 * G, flags, desc]
        )[0],
        0
    );
    let (flags, desc) = single(BlockSize::L3_4K, 1, data(0), false);
    assert_eq!(
        call(
            &rmm,
            RmiFid::RTT_DATA_MAP,
            &[RD, GIB + 511 * G, GIB + MIB2, flags, desc]
        )[0],
        0
    );
    assert_eq!(grefs(&rmm, rtt(1)), 512);
    assert_eq!(call(&rmm, RmiFid::RTT_FOLD, &[RD, GIB, 3])[0], rtt_err(3));
}

#[test]
fn rtt_fold_rejects_ns_blocks_at_level_0() {
    let f = Fixture::new();
    let rmm = f.active_rmm();
    delegate(&rmm, RD, 1);
    delegate(&rmm, ROOT, 1);
    let p = Params {
        s2sz: 48,
        rtt_level_start: 0,
        rtt_num_start: 1,
        ..Params::default()
    };
    assert_eq!(create_realm_with(&f, &rmm, RD, PARAMS, &p)[0], 0);
    let unprot = 1u64 << 47;
    create_rtt(&rmm, 0, unprot, 1);
    assert_eq!(
        unprot_map(&rmm, unprot, 0, BlockSize::L1_1G, 512)[..2],
        [0, unprot + 512 * GIB]
    );
    assert_eq!(
        call(&rmm, RmiFid::RTT_FOLD, &[RD, unprot, 1])[0],
        rtt_err(0)
    );
    // Unassigned entries fold at level 1 into level 0.
    create_rtt(&rmm, 1, 0, 1);
    assert_eq!(call(&rmm, RmiFid::RTT_FOLD, &[RD, 0, 1])[..2], [0, rtt(1)]);
}

// ------------------------------------------------------------------------- RTT_READ_ENTRY

#[test]
fn rtt_read_entry_reports_each_state() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    setup_l3(&rmm, GIB);
    assert_eq!(read_entry(&rmm, GIB, 1), (1, 2, rtt(0), 0));
    assert_eq!(read_entry(&rmm, GIB, 3), (3, 0, 0, 0));
    assert_eq!(
        read_entry(&rmm, 3 * GIB, 3),
        (1, 0, 0, 0),
        "the walk stops at level 1"
    );
    assert_eq!(data_map_pages(&rmm, GIB, data(0), 1)[0], 0);
    assert_eq!(
        read_entry(&rmm, GIB, 3),
        (3, 1, data(0), 0),
        "assigned, EMPTY"
    );
    assert_eq!(read_entry(&rmm, UNPROT, 1), (1, 0, 0, 0), "unassigned_ns");
    let out = call(&rmm, RmiFid::RTT_READ_ENTRY, &[RD, GIB, u64::MAX]);
    assert_eq!(out[0], INPUT);
}

#[test]
fn rtt_read_entry_rejects_rd_not_rd() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(call(&rmm, RmiFid::RTT_READ_ENTRY, &[ROOT, 0, 1])[0], INPUT);
}

#[test]
fn rtt_read_entry_rejects_level_out_of_range() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(call(&rmm, RmiFid::RTT_READ_ENTRY, &[RD, 0, 0])[0], INPUT);
    assert_eq!(call(&rmm, RmiFid::RTT_READ_ENTRY, &[RD, 0, 4])[0], INPUT);
}

#[test]
fn rtt_read_entry_rejects_bad_ipa() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(
        call(&rmm, RmiFid::RTT_READ_ENTRY, &[RD, 1 << 40, 3])[0],
        INPUT
    );
    assert_eq!(call(&rmm, RmiFid::RTT_READ_ENTRY, &[RD, G, 2])[0], INPUT);
}

// ------------------------------------------------------------------------- RTT_INIT_RIPAS

#[test]
fn rtt_init_ripas_covers_one_table_per_call() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    // Level 1 entries: 2 GiB in one call.
    assert_eq!(
        call(&rmm, RmiFid::RTT_INIT_RIPAS, &[RD, 0, 2 * GIB])[..2],
        [0, 2 * GIB]
    );
    assert_eq!(read_entry(&rmm, GIB, 1).3, 1);
    // Entries already RAM are skipped; progress stops at the end of the leaf table.
    setup_l3(&rmm, 4 * GIB);
    let out = call(&rmm, RmiFid::RTT_INIT_RIPAS, &[RD, 4 * GIB, 5 * GIB]);
    assert_eq!(out[..2], [0, 4 * GIB + MIB2]);
    let out = call(
        &rmm,
        RmiFid::RTT_INIT_RIPAS,
        &[RD, 4 * GIB, 4 * GIB + 2 * G],
    );
    assert_eq!(out[..2], [0, 4 * GIB + 2 * G]);
    assert!(f.sim.take_tlbis().is_empty());
}

#[test]
fn rtt_init_ripas_rejects_empty_range() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(
        call(&rmm, RmiFid::RTT_INIT_RIPAS, &[RD, GIB, GIB])[0],
        INPUT
    );
}

#[test]
fn rtt_init_ripas_rejects_rd_not_rd() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(
        call(&rmm, RmiFid::RTT_INIT_RIPAS, &[ROOT, 0, GIB])[0],
        INPUT
    );
}

#[test]
fn rtt_init_ripas_rejects_range_outside_par_or_unaligned() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    for (b, t) in [
        (G + 1, 2 * G),
        (0, G + 1),
        (UNPROT - G, UNPROT + G),
        (UNPROT, UNPROT + G),
    ] {
        assert_eq!(
            call(&rmm, RmiFid::RTT_INIT_RIPAS, &[RD, b, t])[0],
            INPUT,
            "{b:#x}..{t:#x}"
        );
    }
}

#[test]
fn rtt_init_ripas_rejects_realm_not_new() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    call(&rmm, RmiFid::REALM_ACTIVATE, &[RD]);
    assert_eq!(call(&rmm, RmiFid::RTT_INIT_RIPAS, &[RD, 0, GIB])[0], REALM);
}

#[test]
fn rtt_init_ripas_rejects_base_inside_a_larger_entry() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(
        call(&rmm, RmiFid::RTT_INIT_RIPAS, &[RD, G, GIB])[0],
        rtt_err(1)
    );
    assert_eq!(
        call(&rmm, RmiFid::RTT_INIT_RIPAS, &[RD, 0, G])[0],
        rtt_err(1),
        "the entry does not fit"
    );
}

#[test]
fn rtt_init_ripas_rejects_destroyed_entry() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    create_rtt(&rmm, 0, GIB, 2);
    call(&rmm, RmiFid::RTT_DESTROY, &[RD, GIB, 2]);
    assert_eq!(
        call(&rmm, RmiFid::RTT_INIT_RIPAS, &[RD, GIB, 2 * GIB])[0],
        rtt_err(1)
    );
}

#[test]
fn rtt_init_ripas_turns_assigned_empty_into_ram() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    setup_l3(&rmm, GIB);
    assert_eq!(data_map_pages(&rmm, GIB, data(0), 1)[0], 0);
    assert_eq!(
        call(&rmm, RmiFid::RTT_INIT_RIPAS, &[RD, GIB, GIB + G])[..2],
        [0, GIB + G]
    );
    assert_eq!(read_entry(&rmm, GIB, 3), (3, 1, data(0), 1));
}
