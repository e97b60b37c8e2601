//! Tests of RTT_DATA_MAP_INIT, RTT_DATA_MAP, RTT_UNPROT_MAP, RTT_DATA_UNMAP and
//! RTT_UNPROT_UNMAP: one per failure condition, in TF-RMM's order, the success paths, and
//! the RIM golden vectors.

extern crate std;

use cca_abi::rmi::{map_flags, AddrRangeDesc, BlockSize, RmiFid, RmiStatus};
use std::vec::Vec;

use crate::granule::GranuleState;
use crate::sim::{Pas, Tlbi, SIM_CPU};
use crate::test_util::*;

const INPUT: u64 = RmiStatus::ErrorInput as u64;
const REALM: u64 = RmiStatus::ErrorRealm as u64;
const GIB: u64 = 1 << 30;
const MIB2: u64 = 2 << 20;

fn rtt_err(level: u8) -> u64 {
    code(RmiStatus::ErrorRtt, level)
}

fn rim(rmm: &TRmm<'_>, rd: u64) -> Vec<u8> {
    let g = rmm.granules().lock(pa(rd), GranuleState::Rd).unwrap();
    rmm.rd_read(&g).rim.to_vec()
}

fn hex(b: &[u8]) -> std::string::String {
    b.iter().map(|x| std::format!("{x:02x}")).collect()
}

/// A default realm with the L3 table for GIB.
fn l3_realm(f: &Fixture) -> TRmm<'_> {
    let rmm = setup_realm(f);
    setup_l3(&rmm, GIB);
    rmm
}

// ---------------------------------------------------------------------- RTT_DATA_MAP_INIT

fn map_init(rmm: &TRmm<'_>, data: u64, ipa: u64, src: u64, flags: u64) -> u64 {
    call(rmm, RmiFid::RTT_DATA_MAP_INIT, &[RD, data, ipa, src, flags])[0]
}

#[test]
fn data_map_init_copies_measures_and_maps() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    delegate(&rmm, data(0), 1);
    f.sim.host_write(pa(NS3), &[0x5a; 4096]).unwrap();
    let before = rim(&rmm, RD);
    assert_eq!(map_init(&rmm, data(0), GIB, NS3, 1), 0);
    assert_ne!(rim(&rmm, RD), before);
    assert_eq!(gstate(&rmm, data(0)), GranuleState::Data);
    assert_eq!(f.sim.peek(pa(data(0)))[..], [0x5a; 4096][..]);
    assert_eq!(read_entry(&rmm, GIB, 3), (3, 1, data(0), 1), "assigned RAM");
    assert_eq!(grefs(&rmm, rtt(1)), 1);
}

#[test]
fn data_map_init_rejects_bad_flags() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    delegate(&rmm, data(0), 1);
    assert_eq!(map_init(&rmm, data(0), GIB, NS3, 2), INPUT);
}

#[test]
fn data_map_init_rejects_data_equal_to_rd() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    assert_eq!(map_init(&rmm, RD, GIB, NS3, 0), INPUT);
}

#[test]
fn data_map_init_rejects_src_not_ns() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    delegate(&rmm, data(0), 1);
    assert_eq!(map_init(&rmm, data(0), GIB, data(0), 0), INPUT);
    assert_eq!(map_init(&rmm, data(0), GIB, 0x1000, 0), INPUT, "untracked");
}

#[test]
fn data_map_init_rejects_rd_not_rd() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    delegate(&rmm, data(0), 1);
    assert_eq!(
        call(
            &rmm,
            RmiFid::RTT_DATA_MAP_INIT,
            &[ROOT, data(0), GIB, NS3, 0]
        )[0],
        INPUT
    );
}

#[test]
fn data_map_init_rejects_realm_not_new() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    delegate(&rmm, data(0), 1);
    call(&rmm, RmiFid::REALM_ACTIVATE, &[RD]);
    assert_eq!(map_init(&rmm, data(0), GIB, NS3, 0), REALM);
}

#[test]
fn data_map_init_rejects_ipa_outside_par_or_unaligned() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    delegate(&rmm, data(0), 1);
    for ipa in [UNPROT, GIB + 8, 1 << 40] {
        assert_eq!(map_init(&rmm, data(0), ipa, NS3, 0), INPUT, "{ipa:#x}");
    }
}

#[test]
fn data_map_init_rejects_data_above_48_bits() {
    let (f, hi) = Fixture::with_bank_above_48_bits();
    let rmm = l3_realm(&f);
    delegate(&rmm, hi, 1);
    assert_eq!(map_init(&rmm, hi, GIB, NS3, 0), INPUT);
}

#[test]
fn data_map_init_rejects_missing_level_3_table() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    delegate(&rmm, data(0), 1);
    assert_eq!(map_init(&rmm, data(0), GIB, NS3, 0), rtt_err(1));
}

#[test]
fn data_map_init_rejects_assigned_entry() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    delegate(&rmm, data(0), 2);
    assert_eq!(map_init(&rmm, data(0), GIB, NS3, 0), 0);
    assert_eq!(map_init(&rmm, data(1), GIB, NS3, 0), rtt_err(3));
}

#[test]
fn data_map_init_rejects_data_not_delegated() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    assert_eq!(map_init(&rmm, data(0), GIB, NS3, 0), INPUT);
    assert_eq!(
        map_init(&rmm, rtt(1), GIB, NS3, 0),
        INPUT,
        "the leaf RTT itself"
    );
    assert_eq!(grefs(&rmm, rtt(1)), 0);
}

#[test]
fn data_map_init_rejects_src_that_faults() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    delegate(&rmm, data(0), 1);
    f.sim.set_pas(pa(NS3), Pas::Secure);
    assert_eq!(map_init(&rmm, data(0), GIB, NS3, 0), INPUT);
    assert_eq!(gstate(&rmm, data(0)), GranuleState::Delegated);
    assert!(f.sim.is_zero(pa(data(0))));
}

// ------------------------------------------------------------------- RIM golden vectors

/// attestation.md §4.6: SHA-256 RIM after REALM_CREATE, two measured and one unmeasured
/// DATA granule, and a runnable REC.
#[test]
fn rim_golden_vectors() {
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
    assert_eq!(
        hex(&rim(&rmm, RD)[..32]),
        "6739dfb22b75ee1268d08dfa8369f501bc0b066243553f069f560d1fa1172973"
    );
    assert!(rim(&rmm, RD)[32..].iter().all(|&b| b == 0));
    // Tables for 0x40000000: L1, L2, L3.
    create_rtt(&rmm, 0, 0, 1);
    create_rtt(&rmm, 1, GIB, 2);
    create_rtt(&rmm, 2, GIB, 3);
    let content: Vec<u8> = (0..8192usize)
        .map(|i| if i < 5000 { (i % 251) as u8 } else { 0 })
        .collect();
    delegate(&rmm, data(0), 3);
    f.sim.host_write(pa(NS2), &content[..4096]).unwrap();
    f.sim.host_write(pa(NS3), &content[4096..]).unwrap();
    assert_eq!(map_init(&rmm, data(0), GIB, NS2, 1), 0);
    assert_eq!(map_init(&rmm, data(1), GIB + G, NS3, 1), 0);
    assert_eq!(
        hex(&rim(&rmm, RD)[..32]),
        "f68e1c79c883a1007bff27c0ad1fc76826120891b2677c86c989acdc8d2c66dc"
    );
    assert_eq!(map_init(&rmm, data(2), GIB + 2 * G, NS3, 0), 0);
    assert_eq!(
        hex(&rim(&rmm, RD)[..32]),
        "21774ede8f4c1ceb9fa0f6f2eb1be10e6412684e45e4e868d49185fad683cb69"
    );
    // A runnable REC with pc = 0x40000000 and x0 = 0x40100000.
    let rec = data(3);
    create_rec_ok(&f, &rmm, rec, 0, 1, 0x4000_0000, &[0x4010_0000]);
    assert_eq!(
        hex(&rim(&rmm, RD)[..32]),
        "20fcb505bea94e1e56a7cc80a366a734979180baa79048b14a371232e6150027"
    );
}

#[test]
fn rim_golden_vector_sha512() {
    let f = Fixture::new();
    let rmm = f.active_rmm();
    delegate(&rmm, RD, 1);
    delegate(&rmm, ROOT, 1);
    let p = Params {
        s2sz: 48,
        rtt_level_start: 0,
        rtt_num_start: 1,
        hash_algo: 1,
        ..Params::default()
    };
    assert_eq!(create_realm_with(&f, &rmm, RD, PARAMS, &p)[0], 0);
    let h = hex(&rim(&rmm, RD));
    assert!(
        h.starts_with("799e434048fb57eb") && h.ends_with("d44bbbab"),
        "{h}"
    );
}

// --------------------------------------------------------------------------- RTT_DATA_MAP

fn dmap(rmm: &TRmm<'_>, base: u64, top: u64, flags: u64, oaddr: u64) -> [u64; 8] {
    call(rmm, RmiFid::RTT_DATA_MAP, &[RD, base, top, flags, oaddr])
}

fn desc(size: BlockSize, count: u16, addr: u64, undelegated: bool) -> u64 {
    AddrRangeDesc {
        size,
        count,
        addr,
        undelegated,
    }
    .encode()
}

const SINGLE: u64 = map_flags::ADDR_TYPE_SINGLE;

#[test]
fn data_map_maps_a_whole_table_and_zeroes_the_granules() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    delegate(&rmm, data(0), 8);
    let out = dmap(
        &rmm,
        GIB,
        GIB + 8 * G,
        SINGLE,
        desc(BlockSize::L3_4K, 8, data(0), false),
    );
    assert_eq!(out[..2], [0, GIB + 8 * G]);
    for i in 0..8 {
        assert_eq!(gstate(&rmm, data(i)), GranuleState::Data);
        assert_eq!(
            read_entry(&rmm, GIB + i * G, 3),
            (3, 1, data(i), 0),
            "assigned, EMPTY"
        );
    }
    assert_eq!(grefs(&rmm, rtt(1)), 8);
    // Mapping the same PA again is idempotent.
    let out = dmap(
        &rmm,
        GIB,
        GIB + G,
        SINGLE,
        desc(BlockSize::L3_4K, 1, data(0), false),
    );
    assert_eq!(out[..2], [0, GIB + G]);
    assert_eq!(grefs(&rmm, rtt(1)), 8);
}

#[test]
fn data_map_keeps_the_ripas() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    assert_eq!(
        call(&rmm, RmiFid::RTT_INIT_RIPAS, &[RD, GIB, GIB + G])[0],
        0
    );
    assert_eq!(data_map_pages(&rmm, GIB, data(0), 1)[0], 0);
    assert_eq!(read_entry(&rmm, GIB, 3).3, 1);
}

#[test]
fn data_map_maps_a_2mib_block_from_a_list() {
    let f = Fixture::with(big_banks(), SIM_CPU);
    let rmm = setup_realm(&f);
    create_rtt(&rmm, 0, GIB, 2);
    delegate(&rmm, BLOCK2M, 512);
    f.sim
        .host_write(
            pa(NS2 + 16),
            &desc(BlockSize::L2_2M, 1, BLOCK2M, false).to_le_bytes(),
        )
        .unwrap();
    let out = dmap(
        &rmm,
        GIB,
        GIB + 2 * MIB2,
        map_flags::with_list(2, 1),
        NS2 + 16,
    );
    assert_eq!(
        out[..2],
        [0, GIB + MIB2],
        "one block then the list is exhausted"
    );
    assert_eq!(read_entry(&rmm, GIB, 2), (2, 1, BLOCK2M, 0));
    assert_eq!(grefs(&rmm, rtt(0)), 1);
    assert!((0..512).all(|i| gstate(&rmm, BLOCK2M + i * G) == GranuleState::Data));
}

#[test]
fn data_map_reports_partial_progress() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    delegate(&rmm, data(0), 2);
    // Three granules asked, the third is not delegated.
    let out = dmap(
        &rmm,
        GIB,
        GIB + 3 * G,
        SINGLE,
        desc(BlockSize::L3_4K, 3, data(0), false),
    );
    assert_eq!(out[..2], [0, GIB + 2 * G]);
    assert_eq!(gstate(&rmm, data(2)), GranuleState::Ns);
    // Then the host's retry reports the error.
    let out = dmap(
        &rmm,
        GIB + 2 * G,
        GIB + 3 * G,
        SINGLE,
        desc(BlockSize::L3_4K, 1, data(2), false),
    );
    assert_eq!(out[..2], [INPUT, 0]);
}

#[test]
fn data_map_stops_at_the_end_of_the_leaf_table() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    delegate(&rmm, data(0), 2);
    let base = GIB + MIB2 - G;
    create_rtt(&rmm, 2, GIB + MIB2, 3);
    let out = dmap(
        &rmm,
        base,
        base + 2 * G,
        SINGLE,
        desc(BlockSize::L3_4K, 2, data(0), false),
    );
    assert_eq!(out[..2], [0, GIB + MIB2]);
}

#[test]
fn data_map_rejects_when_every_sro_context_is_sealed() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    let held: Vec<_> = (0..crate::SRO_CONTEXTS)
        .map(|_| {
            rmm.sro_reserve(RmiFid::REC_CREATE, 0, RmiFid::OP_CONTINUE)
                .unwrap()
        })
        .collect();
    assert_eq!(
        dmap(&rmm, GIB, GIB + G, SINGLE, 0)[0],
        RmiStatus::Busy as u64
    );
    for r in held {
        r.seal();
    }
    assert_eq!(
        dmap(&rmm, GIB, GIB + G, SINGLE, 0)[0],
        RmiStatus::Blocked as u64
    );
}

#[test]
fn data_map_rejects_rd_not_rd() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    let out = call(&rmm, RmiFid::RTT_DATA_MAP, &[ROOT, GIB, GIB + G, SINGLE, 0]);
    assert_eq!(out[0], INPUT);
}

#[test]
fn data_map_rejects_zombie_realm() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    call(&rmm, RmiFid::REALM_TERMINATE, &[RD]);
    assert_eq!(
        dmap(
            &rmm,
            GIB,
            GIB + G,
            SINGLE,
            desc(BlockSize::L3_4K, 1, data(0), false)
        )[0],
        REALM
    );
}

#[test]
fn data_map_rejects_empty_range() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    assert_eq!(
        dmap(
            &rmm,
            GIB,
            GIB,
            SINGLE,
            desc(BlockSize::L3_4K, 1, data(0), false)
        )[0],
        INPUT
    );
}

#[test]
fn data_map_rejects_address_type_none_or_reserved() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    let d = desc(BlockSize::L3_4K, 1, data(0), false);
    assert_eq!(dmap(&rmm, GIB, GIB + G, 0, d)[0], INPUT);
    assert_eq!(dmap(&rmm, GIB, GIB + G, 3, d)[0], INPUT);
}

#[test]
fn data_map_rejects_bad_lists() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    assert_eq!(
        dmap(&rmm, GIB, GIB + G, map_flags::with_list(2, 1), NS2 + 4)[0],
        INPUT,
        "misaligned"
    );
    assert_eq!(
        dmap(&rmm, GIB, GIB + G, map_flags::with_list(2, 0), NS2)[0],
        INPUT,
        "count 0"
    );
    delegate(&rmm, NS3, 1);
    assert_eq!(
        dmap(&rmm, GIB, GIB + G, map_flags::with_list(2, 1), NS3)[0],
        INPUT,
        "not NS"
    );
    f.sim.set_pas(pa(NS2), Pas::Secure);
    assert_eq!(
        dmap(&rmm, GIB, GIB + G, map_flags::with_list(2, 1), NS2)[0],
        INPUT,
        "faults"
    );
}

#[test]
fn data_map_rejects_undelegated_descriptor() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    delegate(&rmm, data(0), 1);
    assert_eq!(
        dmap(
            &rmm,
            GIB,
            GIB + G,
            SINGLE,
            desc(BlockSize::L3_4K, 1, data(0), true)
        )[0],
        INPUT
    );
}

#[test]
fn data_map_rejects_bad_range_for_the_block_size() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    let d3 = desc(BlockSize::L3_4K, 1, data(0), false);
    assert_eq!(
        dmap(
            &rmm,
            GIB,
            GIB + G,
            SINGLE,
            desc(BlockSize::L0_512G, 1, 0, false)
        )[0],
        INPUT,
        "level 0"
    );
    assert_eq!(
        dmap(
            &rmm,
            GIB + G,
            GIB + MIB2 + G,
            SINGLE,
            desc(BlockSize::L2_2M, 1, 0, false)
        )[0],
        INPUT,
        "base unaligned to 2 MiB"
    );
    assert_eq!(
        dmap(&rmm, GIB, GIB + G + 1, SINGLE, d3)[0],
        INPUT,
        "top unaligned"
    );
    assert_eq!(
        dmap(&rmm, UNPROT, UNPROT + G, SINGLE, d3)[0],
        INPUT,
        "outside PAR"
    );
    assert_eq!(
        dmap(&rmm, UNPROT - G, UNPROT + G, SINGLE, d3)[0],
        INPUT,
        "straddling"
    );
}

#[test]
fn data_map_rejects_range_smaller_than_a_block() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    assert_eq!(
        dmap(
            &rmm,
            GIB,
            GIB + G,
            SINGLE,
            desc(BlockSize::L2_2M, 1, 0, false)
        )[0],
        rtt_err(2)
    );
}

#[test]
fn data_map_rejects_missing_table() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    let d3 = desc(BlockSize::L3_4K, 1, data(0), false);
    assert_eq!(dmap(&rmm, 2 * GIB, 2 * GIB + G, SINGLE, d3)[0], rtt_err(1));
}

#[test]
fn data_map_rejects_exhausted_descriptor() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    assert_eq!(
        dmap(
            &rmm,
            GIB,
            GIB + G,
            SINGLE,
            desc(BlockSize::L3_4K, 0, data(0), false)
        )[0],
        INPUT
    );
}

#[test]
fn data_map_rejects_misaligned_block() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    create_rtt(&rmm, 0, GIB, 2);
    let d = desc(BlockSize::L2_2M, 1, B1 + G, false);
    assert_eq!(dmap(&rmm, GIB, GIB + MIB2, SINGLE, d)[0], INPUT);
}

#[test]
fn data_map_rejects_block_above_48_bits() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    let d = desc(BlockSize::L3_4K, 1, 1 << 48, false);
    assert_eq!(dmap(&rmm, GIB, GIB + G, SINGLE, d)[0], INPUT);
}

#[test]
fn data_map_rejects_descriptor_of_another_level() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    delegate(&rmm, data(0), 1);
    let list = [
        desc(BlockSize::L3_4K, 0, data(0), false),
        desc(BlockSize::L2_2M, 1, 0, false),
    ];
    for (i, d) in list.iter().enumerate() {
        f.sim
            .host_write(pa(NS2 + 8 * i as u64), &d.to_le_bytes())
            .unwrap();
    }
    assert_eq!(
        dmap(&rmm, GIB, GIB + G, map_flags::with_list(2, 2), NS2)[0],
        rtt_err(3)
    );
}

#[test]
fn data_map_rejects_entry_mapping_another_pa() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    assert_eq!(data_map_pages(&rmm, GIB, data(0), 1)[0], 0);
    delegate(&rmm, data(1), 1);
    let out = dmap(
        &rmm,
        GIB,
        GIB + G,
        SINGLE,
        desc(BlockSize::L3_4K, 1, data(1), false),
    );
    assert_eq!(out[0], rtt_err(3));
    assert_eq!(gstate(&rmm, data(1)), GranuleState::Delegated);
}

#[test]
fn data_map_rejects_table_entry() {
    let f = Fixture::with(big_banks(), SIM_CPU);
    let rmm = l3_realm(&f);
    delegate(&rmm, BLOCK2M, 512);
    let out = dmap(
        &rmm,
        GIB,
        GIB + MIB2,
        SINGLE,
        desc(BlockSize::L2_2M, 1, BLOCK2M, false),
    );
    assert_eq!(out[0], rtt_err(2));
    assert_eq!(gstate(&rmm, BLOCK2M), GranuleState::Delegated);
}

#[test]
fn data_map_rolls_back_a_block_with_an_undelegated_granule() {
    let f = Fixture::with(big_banks(), SIM_CPU);
    let rmm = setup_realm(&f);
    create_rtt(&rmm, 0, GIB, 2);
    delegate(&rmm, BLOCK2M, 511);
    let out = dmap(
        &rmm,
        GIB,
        GIB + MIB2,
        SINGLE,
        desc(BlockSize::L2_2M, 1, BLOCK2M, false),
    );
    assert_eq!(out[0], INPUT);
    assert!((0..511).all(|i| gstate(&rmm, BLOCK2M + i * G) == GranuleState::Delegated));
    assert_eq!(read_entry(&rmm, GIB, 2).1, 0);
    assert_eq!(grefs(&rmm, rtt(0)), 0);
}

// ------------------------------------------------------------------------- RTT_UNPROT_MAP

fn umap(rmm: &TRmm<'_>, base: u64, top: u64, flags: u64, oaddr: u64) -> [u64; 8] {
    call(rmm, RmiFid::RTT_UNPROT_MAP, &[RD, base, top, flags, oaddr])
}

fn ns_realm(f: &Fixture) -> TRmm<'_> {
    let rmm = setup_realm(f);
    create_rtt(&rmm, 0, UNPROT, 2);
    create_rtt(&rmm, 1, UNPROT, 3);
    rmm
}

#[test]
fn unprot_map_maps_ns_pages_and_blocks() {
    let f = Fixture::new();
    let rmm = ns_realm(&f);
    let out = unprot_map(&rmm, UNPROT, 0x7000_0000, BlockSize::L3_4K, 4);
    assert_eq!(out[..2], [0, UNPROT + 4 * G]);
    assert_eq!(
        read_entry(&rmm, UNPROT + G, 3),
        (3, 1, 0x7000_1000 | (5 << 2) | (3 << 6), 0)
    );
    assert_eq!(grefs(&rmm, rtt(1)), 0);
    // Idempotent with the same attributes; ERROR_RTT with others.
    assert_eq!(
        unprot_map(&rmm, UNPROT, 0x7000_0000, BlockSize::L3_4K, 1)[0],
        0
    );
    let d = desc(BlockSize::L3_4K, 1, 0x7000_0000, false);
    assert_eq!(umap(&rmm, UNPROT, UNPROT + G, SINGLE, d)[0], rtt_err(3));
    // A 2 MiB block in an L2 table.
    create_rtt(&rmm, 2, UNPROT + GIB, 2);
    assert_eq!(
        unprot_map(&rmm, UNPROT + GIB, 0x8000_0000, BlockSize::L2_2M, 2)[..2],
        [0, UNPROT + GIB + 2 * MIB2]
    );
    assert!(f.sim.take_tlbis().is_empty());
}

#[test]
fn unprot_map_rejects_rd_not_rd() {
    let f = Fixture::new();
    let rmm = ns_realm(&f);
    assert_eq!(
        call(
            &rmm,
            RmiFid::RTT_UNPROT_MAP,
            &[ROOT, UNPROT, UNPROT + G, SINGLE, 0]
        )[0],
        INPUT
    );
}

#[test]
fn unprot_map_rejects_zombie_realm() {
    let f = Fixture::new();
    let rmm = ns_realm(&f);
    call(&rmm, RmiFid::REALM_TERMINATE, &[RD]);
    assert_eq!(unprot_map(&rmm, UNPROT, 0, BlockSize::L3_4K, 1)[0], REALM);
}

#[test]
fn unprot_map_rejects_bad_range() {
    let f = Fixture::new();
    let rmm = ns_realm(&f);
    let d = desc(BlockSize::L3_4K, 1, 0, true);
    assert_eq!(umap(&rmm, UNPROT, UNPROT, SINGLE, d)[0], INPUT, "empty");
    assert_eq!(umap(&rmm, GIB, GIB + G, SINGLE, d)[0], INPUT, "in PAR");
    assert_eq!(umap(&rmm, UNPROT, UNPROT + G, 0, d)[0], INPUT, "type NONE");
    assert_eq!(
        umap(&rmm, 1 << 40, (1 << 40) + G, SINGLE, d)[0],
        INPUT,
        "outside the IPA space"
    );
}

#[test]
fn unprot_map_accepts_either_descriptor_state() {
    let f = Fixture::new();
    let rmm = ns_realm(&f);
    let d = desc(BlockSize::L3_4K, 1, 0x7000_0000, false);
    assert_eq!(umap(&rmm, UNPROT, UNPROT + G, SINGLE, d)[0], 0);
}

#[test]
fn unprot_map_rejects_undefined_s2ap_bits() {
    let f = Fixture::new();
    let rmm = ns_realm(&f);
    let d = desc(BlockSize::L3_4K, 1, 0x7000_0000, true);
    assert_eq!(
        umap(&rmm, UNPROT, UNPROT + G, SINGLE | (4 << 19), d)[0],
        INPUT
    );
}

#[test]
fn unprot_map_rejects_range_smaller_than_a_block() {
    let f = Fixture::new();
    let rmm = ns_realm(&f);
    let d = desc(BlockSize::L2_2M, 1, 0x8000_0000, true);
    assert_eq!(umap(&rmm, UNPROT, UNPROT + G, SINGLE, d)[0], rtt_err(2));
}

#[test]
fn unprot_map_rejects_missing_table() {
    let f = Fixture::new();
    let rmm = ns_realm(&f);
    let d = desc(BlockSize::L3_4K, 1, 0x7000_0000, true);
    assert_eq!(
        umap(&rmm, UNPROT + GIB, UNPROT + GIB + G, SINGLE, d)[0],
        rtt_err(1)
    );
}

#[test]
fn unprot_map_rejects_reserved_memattr() {
    let f = Fixture::new();
    let rmm = ns_realm(&f);
    let d = desc(BlockSize::L3_4K, 1, 0x7000_0000, true);
    assert_eq!(
        umap(&rmm, UNPROT, UNPROT + G, SINGLE | (4 << 16), d)[0],
        INPUT
    );
}

#[test]
fn unprot_map_rejects_pa_above_48_bits() {
    let f = Fixture::new();
    let rmm = ns_realm(&f);
    let d = desc(BlockSize::L3_4K, 1, 1 << 48, true);
    assert_eq!(umap(&rmm, UNPROT, UNPROT + G, SINGLE, d)[0], INPUT);
}

// ------------------------------------------------------------------------ RTT_DATA_UNMAP

fn dunmap(rmm: &TRmm<'_>, base: u64, top: u64, flags: u64, oaddr: u64) -> [u64; 8] {
    call(rmm, RmiFid::RTT_DATA_UNMAP, &[RD, base, top, flags, oaddr])
}

#[test]
fn data_unmap_single_returns_the_range_and_scrubs() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    assert_eq!(
        call(&rmm, RmiFid::RTT_INIT_RIPAS, &[RD, GIB, GIB + 2 * G])[0],
        0
    );
    assert_eq!(data_map_pages(&rmm, GIB, data(0), 4)[0], 0);
    f.sim.take_tlbis();
    let out = dunmap(&rmm, GIB, GIB + 4 * G, SINGLE, 0);
    assert_eq!(
        out[..4],
        [0, GIB + 4 * G, desc(BlockSize::L3_4K, 4, data(0), false), 0]
    );
    for i in 0..4 {
        assert_eq!(gstate(&rmm, data(i)), GranuleState::Delegated);
        assert!(f.sim.is_zero(pa(data(i))));
    }
    assert_eq!(grefs(&rmm, rtt(1)), 0);
    // RAM entries become DESTROYED (and were invalidated), EMPTY ones stay EMPTY.
    assert_eq!(read_entry(&rmm, GIB, 3), (3, 0, 0, 2));
    assert_eq!(read_entry(&rmm, GIB + 3 * G, 3), (3, 0, 0, 0));
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
}

#[test]
fn data_unmap_list_writes_descriptors() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    assert_eq!(data_map_pages(&rmm, GIB, data(0), 2)[0], 0);
    assert_eq!(data_map_pages(&rmm, GIB + 2 * G, data(8), 1)[0], 0);
    let out = dunmap(&rmm, GIB, GIB + 3 * G, map_flags::with_list(2, 8), NS2);
    assert_eq!(out[..4], [0, GIB + 3 * G, 0, 2]);
    let mut b = [0u8; 16];
    f.sim.host_read(pa(NS2), &mut b).unwrap();
    assert_eq!(
        u64::from_le_bytes(b[..8].try_into().unwrap()),
        desc(BlockSize::L3_4K, 2, data(0), false)
    );
    assert_eq!(
        u64::from_le_bytes(b[8..].try_into().unwrap()),
        desc(BlockSize::L3_4K, 1, data(8), false)
    );
}

#[test]
fn data_unmap_single_stops_at_a_pa_discontinuity() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    assert_eq!(data_map_pages(&rmm, GIB, data(0), 1)[0], 0);
    assert_eq!(data_map_pages(&rmm, GIB + G, data(8), 1)[0], 0);
    let out = dunmap(&rmm, GIB, GIB + 2 * G, SINGLE, 0);
    assert_eq!(
        out[..3],
        [0, GIB + G, desc(BlockSize::L3_4K, 1, data(0), false)]
    );
}

#[test]
fn data_unmap_list_stops_at_its_capacity() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    assert_eq!(data_map_pages(&rmm, GIB, data(0), 1)[0], 0);
    assert_eq!(data_map_pages(&rmm, GIB + G, data(8), 1)[0], 0);
    let out = dunmap(&rmm, GIB, GIB + 2 * G, map_flags::with_list(2, 1), NS2);
    assert_eq!(out[..4], [0, GIB + G, 0, 1]);
}

#[test]
fn data_unmap_none_skips_non_live_entries_and_works_on_zombies() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    assert_eq!(data_map_pages(&rmm, GIB + 4 * G, data(0), 1)[0], 0);
    call(&rmm, RmiFid::REALM_TERMINATE, &[RD]);
    let out = dunmap(&rmm, GIB, GIB + 8 * G, 0, 0);
    assert_eq!(out[..4], [0, GIB + 8 * G, 0, 0]);
    assert_eq!(gstate(&rmm, data(0)), GranuleState::Delegated);
    // Nothing live: progress to top.
    assert_eq!(dunmap(&rmm, GIB, GIB + 8 * G, 0, 0)[..2], [0, GIB + 8 * G]);
}

#[test]
fn data_unmap_of_a_block_releases_every_granule() {
    let f = Fixture::with(big_banks(), SIM_CPU);
    let rmm = setup_realm(&f);
    create_rtt(&rmm, 0, GIB, 2);
    delegate(&rmm, BLOCK2M, 512);
    assert_eq!(
        dmap(
            &rmm,
            GIB,
            GIB + MIB2,
            SINGLE,
            desc(BlockSize::L2_2M, 1, BLOCK2M, false)
        )[0],
        0
    );
    let out = dunmap(&rmm, GIB, GIB + MIB2, SINGLE, 0);
    assert_eq!(
        out[..3],
        [0, GIB + MIB2, desc(BlockSize::L2_2M, 1, BLOCK2M, false)]
    );
    assert!((0..512).all(|i| gstate(&rmm, BLOCK2M + i * G) == GranuleState::Delegated));
    assert_eq!(grefs(&rmm, rtt(0)), 0);
}

#[test]
fn data_unmap_rejects_when_every_sro_context_is_sealed() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    let held: Vec<_> = (0..crate::SRO_CONTEXTS)
        .map(|_| {
            rmm.sro_reserve(RmiFid::REC_CREATE, 0, RmiFid::OP_CONTINUE)
                .unwrap()
                .seal()
        })
        .collect();
    assert_eq!(held.len(), crate::SRO_CONTEXTS);
    assert_eq!(
        dunmap(&rmm, GIB, GIB + G, 0, 0)[0],
        RmiStatus::Blocked as u64
    );
}

#[test]
fn data_unmap_rejects_rd_not_rd() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    assert_eq!(
        call(&rmm, RmiFid::RTT_DATA_UNMAP, &[ROOT, GIB, GIB + G, 0, 0])[0],
        INPUT
    );
}

#[test]
fn data_unmap_rejects_bad_range() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    for (b, t) in [
        (GIB + 1, GIB + G),
        (GIB, GIB + 1),
        (GIB, GIB),
        (1 << 40, (1 << 40) + G),
        (UNPROT, UNPROT + G),
        (UNPROT - G, UNPROT + G),
    ] {
        assert_eq!(dunmap(&rmm, b, t, 0, 0)[0], INPUT, "{b:#x}..{t:#x}");
    }
}

#[test]
fn data_unmap_rejects_oaddr_or_count_without_list() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    assert_eq!(dunmap(&rmm, GIB, GIB + G, SINGLE, NS2)[0], INPUT);
    assert_eq!(
        dunmap(&rmm, GIB, GIB + G, map_flags::with_list(0, 1), 0)[0],
        INPUT
    );
}

#[test]
fn data_unmap_rejects_bad_list() {
    let f = Fixture::new();
    let rmm = l3_realm(&f);
    assert_eq!(
        dunmap(&rmm, GIB, GIB + G, map_flags::with_list(2, 0), NS2)[0],
        INPUT
    );
    assert_eq!(
        dunmap(&rmm, GIB, GIB + G, map_flags::with_list(2, 1), NS2 + 4)[0],
        INPUT
    );
    assert_eq!(
        dunmap(&rmm, GIB, GIB + G, map_flags::with_list(2, 1), RD)[0],
        INPUT
    );
    assert_eq!(dunmap(&rmm, GIB, GIB + G, 3, 0)[0], INPUT);
}

#[test]
fn data_unmap_rejects_base_inside_a_larger_entry() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(
        dunmap(&rmm, GIB + G, GIB + 2 * G, 0, 0)[..4],
        [rtt_err(1), 0, 0, 0]
    );
}

#[test]
fn data_unmap_rejects_first_entry_larger_than_the_range() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(dunmap(&rmm, GIB, GIB + G, 0, 0)[0], rtt_err(1));
}

#[test]
fn data_unmap_stops_before_a_table_entry() {
    // The walk always descends through tables, so a table can only stop a later entry.
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    create_rtt(&rmm, 0, GIB, 2);
    create_rtt(&rmm, 1, GIB + MIB2, 3);
    let out = dunmap(&rmm, GIB, 2 * GIB, 0, 0);
    assert_eq!(out[..2], [0, GIB + MIB2]);
}

#[test]
fn data_unmap_rejects_first_live_block_larger_than_the_range() {
    let f = Fixture::with(big_banks(), SIM_CPU);
    let rmm = setup_realm(&f);
    create_rtt(&rmm, 0, GIB, 2);
    delegate(&rmm, BLOCK2M, 512);
    assert_eq!(
        dmap(
            &rmm,
            GIB,
            GIB + MIB2,
            SINGLE,
            desc(BlockSize::L2_2M, 1, BLOCK2M, false)
        )[0],
        0
    );
    assert_eq!(dunmap(&rmm, GIB, GIB + G, 0, 0)[0], rtt_err(2));
}

// ---------------------------------------------------------------------- RTT_UNPROT_UNMAP

#[test]
fn unprot_unmap_always_invalidates() {
    let f = Fixture::new();
    let rmm = ns_realm(&f);
    assert_eq!(
        unprot_map(&rmm, UNPROT, 0x7000_0000, BlockSize::L3_4K, 2)[0],
        0
    );
    f.sim.take_tlbis();
    let out = call(
        &rmm,
        RmiFid::RTT_UNPROT_UNMAP,
        &[RD, UNPROT, UNPROT + 4 * G, SINGLE, 0],
    );
    assert_eq!(
        out[..3],
        [
            0,
            UNPROT + 4 * G,
            desc(BlockSize::L3_4K, 2, 0x7000_0000, false)
        ]
    );
    assert_eq!(read_entry(&rmm, UNPROT, 3), (3, 0, 0, 0));
    assert_eq!(f.sim.take_tlbis().len(), 2);
    assert_eq!(grefs(&rmm, rtt(1)), 0);
}

#[test]
fn unprot_unmap_list_reports_undelegated_descriptors() {
    let f = Fixture::new();
    let rmm = ns_realm(&f);
    assert_eq!(
        unprot_map(&rmm, UNPROT, 0x7000_0000, BlockSize::L3_4K, 2)[0],
        0
    );
    let out = call(
        &rmm,
        RmiFid::RTT_UNPROT_UNMAP,
        &[RD, UNPROT, UNPROT + 2 * G, map_flags::with_list(2, 4), NS2],
    );
    assert_eq!(out[..4], [0, UNPROT + 2 * G, 0, 1]);
    let mut b = [0u8; 8];
    f.sim.host_read(pa(NS2), &mut b).unwrap();
    assert_eq!(
        u64::from_le_bytes(b),
        desc(BlockSize::L3_4K, 2, 0x7000_0000, true)
    );
}

#[test]
fn unprot_unmap_rejects_protected_range() {
    let f = Fixture::new();
    let rmm = ns_realm(&f);
    assert_eq!(
        call(&rmm, RmiFid::RTT_UNPROT_UNMAP, &[RD, GIB, GIB + G, 0, 0])[0],
        INPUT
    );
}

#[test]
fn unprot_unmap_rejects_rd_not_rd() {
    let f = Fixture::new();
    let rmm = ns_realm(&f);
    assert_eq!(
        call(
            &rmm,
            RmiFid::RTT_UNPROT_UNMAP,
            &[ROOT, UNPROT, UNPROT + G, 0, 0]
        )[0],
        INPUT
    );
}

#[test]
fn unprot_unmap_rejects_base_inside_a_larger_entry() {
    let f = Fixture::new();
    let rmm = ns_realm(&f);
    let b = UNPROT + GIB + G;
    assert_eq!(
        call(&rmm, RmiFid::RTT_UNPROT_UNMAP, &[RD, b, b + G, 0, 0])[0],
        rtt_err(1)
    );
}
