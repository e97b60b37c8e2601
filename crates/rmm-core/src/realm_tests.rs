//! Tests of REALM_CREATE, REALM_ACTIVATE, REALM_TERMINATE and REALM_DESTROY: one per
//! failure condition, in TF-RMM's order, and the success paths.

extern crate std;

use cca_abi::rmi::{RealmState, RmiFid, RmiStatus};

use crate::granule::GranuleState;
use crate::sim::{Pas, Tlbi, SIM_CPU};
use crate::test_util::*;
use crate::CpuFeatures;

const INPUT: u64 = RmiStatus::ErrorInput as u64;
const REALM: u64 = RmiStatus::ErrorRealm as u64;

/// Creates the default realm's granules, then REALM_CREATE with `p`; asserts `expected`
/// and, on failure, that nothing changed.
fn create_fails(f: &Fixture, p: Params, expected: u64) {
    let rmm = f.active_rmm();
    delegate(&rmm, RD, 1);
    delegate(&rmm, ROOT, 2);
    let out = create_realm_with(f, &rmm, RD, PARAMS, &p);
    assert_eq!(out[0], expected, "{p:?}");
    assert_eq!(gstate(&rmm, RD), GranuleState::Delegated);
    assert_eq!(gstate(&rmm, ROOT), GranuleState::Delegated);
    assert_eq!(gstate(&rmm, ROOT + G), GranuleState::Delegated);
    assert_eq!(rmm.vmids_in_use(), 0);
    assert!(f.sim.is_zero(pa(ROOT)) && f.sim.is_zero(pa(RD)));
}

fn rd_of(rmm: &TRmm<'_>) -> crate::Rd {
    let g = rmm.granules().lock(pa(RD), GranuleState::Rd).unwrap();
    rmm.rd_read(&g)
}

#[test]
fn realm_create_succeeds() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(gstate(&rmm, RD), GranuleState::Rd);
    assert_eq!(gstate(&rmm, ROOT), GranuleState::Rtt);
    assert_eq!(gstate(&rmm, ROOT + G), GranuleState::Rtt);
    assert_eq!((grefs(&rmm, RD), grefs(&rmm, ROOT)), (0, 0));
    let rd = rd_of(&rmm);
    assert_eq!(rd.realm_state(), RealmState::New);
    assert_eq!((rd.ipa_bits, rd.start_level, rd.num_root_rtts), (40, 1, 2));
    assert_eq!(rmm.vmids_in_use(), 1);
    // Root entries: 512 GiB of PAR in the first table, unprotected in the second.
    assert_eq!(read_entry(&rmm, 0, 1), (1, 0, 0, 0));
    let p = f.sim.peek(pa(ROOT));
    assert_eq!(u64::from_le_bytes(p[..8].try_into().unwrap()), 0xC0);
    let p = f.sim.peek(pa(ROOT + G));
    assert_eq!(u64::from_le_bytes(p[..8].try_into().unwrap()), 1 << 55);
    assert!(f.sim.host_read(pa(RD), &mut [0u8; 8]).is_err());
}

#[test]
fn realm_create_with_each_hash_algorithm_and_start_level() {
    for (algo, s2sz, sl, num) in [
        (1u8, 48u64, 0i64, 1u32),
        (2, 32, 2, 4),
        (0, 33, 2, 8),
        (0, 43, 1, 16),
    ] {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        delegate(&rmm, RD, 1);
        let base = B1 + 16 * G;
        delegate(&rmm, base, u64::from(num));
        let p = Params {
            hash_algo: algo,
            s2sz,
            rtt_level_start: sl,
            rtt_num_start: num,
            rtt_base: base,
            ..Params::default()
        };
        let out = create_realm_with(&f, &rmm, RD, PARAMS, &p);
        assert_eq!(out[0], 0, "{p:?}");
        for i in 0..u64::from(num) {
            assert_eq!(gstate(&rmm, base + i * G), GranuleState::Rtt);
        }
    }
}

#[test]
fn realm_create_rejects_untracked_params() {
    let f = Fixture::new();
    let rmm = f.active_rmm();
    delegate(&rmm, RD, 1);
    delegate(&rmm, ROOT, 2);
    for page in [0, B0 + 8, B0 - G] {
        assert_eq!(call(&rmm, RmiFid::REALM_CREATE, &[RD, page])[0], INPUT);
    }
}

#[test]
fn realm_create_rejects_params_not_ns() {
    let f = Fixture::new();
    let rmm = f.active_rmm();
    delegate(&rmm, RD, 1);
    delegate(&rmm, ROOT, 2);
    delegate(&rmm, NS2, 1);
    assert_eq!(call(&rmm, RmiFid::REALM_CREATE, &[RD, NS2])[0], INPUT);
}

#[test]
fn realm_create_rejects_params_that_fault() {
    let f = Fixture::new();
    let rmm = f.active_rmm();
    delegate(&rmm, RD, 1);
    delegate(&rmm, ROOT, 2);
    f.sim.set_pas(pa(NS2), Pas::Secure);
    assert_eq!(call(&rmm, RmiFid::REALM_CREATE, &[RD, NS2])[0], INPUT);
}

#[test]
fn realm_create_rejects_lpa2_without_feature() {
    create_fails(
        &Fixture::new(),
        Params {
            flags0: 1,
            ..Params::default()
        },
        INPUT,
    );
}

#[test]
fn realm_create_rejects_s2sz_below_32() {
    create_fails(
        &Fixture::new(),
        Params {
            s2sz: 31,
            rtt_num_start: 1,
            ..Params::default()
        },
        INPUT,
    );
}

#[test]
fn realm_create_rejects_s2sz_above_feature() {
    create_fails(
        &Fixture::new(),
        Params {
            s2sz: 49,
            rtt_level_start: 0,
            rtt_num_start: 2,
            ..Params::default()
        },
        INPUT,
    );
    // Only the low 32 bits of the field are read: 40 with garbage above is still 40.
    let f = Fixture::new();
    let rmm = f.active_rmm();
    delegate(&rmm, RD, 1);
    delegate(&rmm, ROOT, 2);
    let p = Params {
        s2sz: (7 << 32) | 40,
        ..Params::default()
    };
    assert_eq!(create_realm_with(&f, &rmm, RD, PARAMS, &p)[0], 0);
}

#[test]
fn realm_create_rejects_zero_breakpoints() {
    create_fails(
        &Fixture::new(),
        Params {
            num_bps: 0,
            ..Params::default()
        },
        INPUT,
    );
}

#[test]
fn realm_create_rejects_too_many_breakpoints() {
    create_fails(
        &Fixture::new(),
        Params {
            num_bps: 6,
            ..Params::default()
        },
        INPUT,
    );
}

#[test]
fn realm_create_rejects_zero_watchpoints() {
    create_fails(
        &Fixture::new(),
        Params {
            num_wps: 0,
            ..Params::default()
        },
        INPUT,
    );
}

#[test]
fn realm_create_rejects_too_many_watchpoints() {
    create_fails(
        &Fixture::new(),
        Params {
            num_wps: 4,
            ..Params::default()
        },
        INPUT,
    );
}

#[test]
fn realm_create_rejects_sve_without_feature() {
    create_fails(
        &Fixture::new(),
        Params {
            flags0: 2,
            ..Params::default()
        },
        INPUT,
    );
}

#[test]
fn realm_create_rejects_sve_vl_above_feature() {
    let cpu = CpuFeatures {
        sve_vq: Some(2),
        ..SIM_CPU
    };
    create_fails(
        &Fixture::with(banks(), cpu),
        Params {
            flags0: 2,
            sve_vl: 3,
            ..Params::default()
        },
        INPUT,
    );
    let f = Fixture::with(banks(), cpu);
    let rmm = f.active_rmm();
    delegate(&rmm, RD, 1);
    delegate(&rmm, ROOT, 2);
    let p = Params {
        flags0: 2,
        sve_vl: 2,
        ..Params::default()
    };
    assert_eq!(create_realm_with(&f, &rmm, RD, PARAMS, &p)[0], 0);
}

#[test]
fn realm_create_rejects_pmu_counters_above_feature() {
    create_fails(
        &Fixture::new(),
        Params {
            flags0: 4,
            pmu_num_ctrs: 1,
            ..Params::default()
        },
        INPUT,
    );
}

#[test]
fn realm_create_rejects_pmu_with_zero_counters() {
    create_fails(
        &Fixture::new(),
        Params {
            flags0: 4,
            ..Params::default()
        },
        INPUT,
    );
}

#[test]
fn realm_create_rejects_device_assignment() {
    create_fails(
        &Fixture::new(),
        Params {
            flags0: 8,
            ..Params::default()
        },
        INPUT,
    );
}

#[test]
fn realm_create_rejects_invalid_mec_policy() {
    create_fails(
        &Fixture::new(),
        Params {
            flags0: 2 << 7,
            ..Params::default()
        },
        INPUT,
    );
    // Private is accepted (no FEAT_MEC: the system MECID).
    let f = Fixture::new();
    let rmm = f.active_rmm();
    delegate(&rmm, RD, 1);
    delegate(&rmm, ROOT, 2);
    let p = Params {
        flags0: 1 << 7,
        ..Params::default()
    };
    assert_eq!(create_realm_with(&f, &rmm, RD, PARAMS, &p)[0], 0);
}

#[test]
fn realm_create_rejects_start_level_out_of_range() {
    create_fails(
        &Fixture::new(),
        Params {
            rtt_level_start: -1,
            ..Params::default()
        },
        INPUT,
    );
    create_fails(
        &Fixture::new(),
        Params {
            rtt_level_start: 4,
            ..Params::default()
        },
        INPUT,
    );
}

#[test]
fn realm_create_rejects_start_level_0_below_44_bit_pas() {
    let cpu = CpuFeatures {
        pa_width: 42,
        ..SIM_CPU
    };
    let banks = banks();
    create_fails(
        &Fixture::with(banks, cpu),
        Params {
            rtt_level_start: 0,
            rtt_num_start: 1,
            ..Params::default()
        },
        INPUT,
    );
}

#[test]
fn realm_create_rejects_start_level_inconsistent_with_s2sz() {
    create_fails(
        &Fixture::new(),
        Params {
            rtt_level_start: 2,
            ..Params::default()
        },
        INPUT,
    );
    create_fails(
        &Fixture::new(),
        Params {
            rtt_level_start: 3,
            s2sz: 32,
            ..Params::default()
        },
        INPUT,
    );
}

#[test]
fn realm_create_rejects_wrong_number_of_starting_rtts() {
    create_fails(
        &Fixture::new(),
        Params {
            rtt_num_start: 1,
            ..Params::default()
        },
        INPUT,
    );
    create_fails(
        &Fixture::new(),
        Params {
            rtt_num_start: 4,
            ..Params::default()
        },
        INPUT,
    );
}

#[test]
fn realm_create_rejects_aux_planes() {
    create_fails(
        &Fixture::new(),
        Params {
            num_aux_planes: 1,
            ..Params::default()
        },
        INPUT,
    );
}

#[test]
fn realm_create_rejects_ats_plane_above_planes() {
    create_fails(
        &Fixture::new(),
        Params {
            ats_plane: 1,
            ..Params::default()
        },
        INPUT,
    );
}

#[test]
fn realm_create_rejects_indirect_s2ap() {
    create_fails(
        &Fixture::new(),
        Params {
            flags1: 2,
            ..Params::default()
        },
        INPUT,
    );
}

#[test]
fn realm_create_rejects_misaligned_rtt_base() {
    create_fails(
        &Fixture::new(),
        Params {
            rtt_base: ROOT + G,
            ..Params::default()
        },
        INPUT,
    );
}

#[test]
fn realm_create_rejects_unknown_hash_algorithm() {
    create_fails(
        &Fixture::new(),
        Params {
            hash_algo: 3,
            ..Params::default()
        },
        INPUT,
    );
}

#[test]
fn realm_create_rejects_undelegated_first_root() {
    let f = Fixture::new();
    let rmm = f.active_rmm();
    delegate(&rmm, RD, 1);
    delegate(&rmm, ROOT + G, 1);
    let out = create_realm_with(&f, &rmm, RD, PARAMS, &Params::default());
    assert_eq!(out[0], INPUT);
    assert_eq!(gstate(&rmm, ROOT + G), GranuleState::Delegated);
    assert_eq!(rmm.vmids_in_use(), 0);
}

#[test]
fn realm_create_rejects_undelegated_second_root_and_reverts_the_first() {
    let f = Fixture::new();
    let rmm = f.active_rmm();
    delegate(&rmm, RD, 1);
    delegate(&rmm, ROOT, 1);
    let out = create_realm_with(&f, &rmm, RD, PARAMS, &Params::default());
    assert_eq!(out[0], INPUT);
    assert_eq!(gstate(&rmm, ROOT), GranuleState::Delegated);
    assert_eq!(rmm.vmids_in_use(), 0);
}

#[test]
fn realm_create_rejects_undelegated_rd_and_reverts_the_roots() {
    let f = Fixture::new();
    let rmm = f.active_rmm();
    delegate(&rmm, ROOT, 2);
    let out = create_realm_with(&f, &rmm, RD, PARAMS, &Params::default());
    assert_eq!(out[0], INPUT);
    assert_eq!(gstate(&rmm, ROOT), GranuleState::Delegated);
    assert_eq!(gstate(&rmm, ROOT + G), GranuleState::Delegated);
    assert_eq!(rmm.vmids_in_use(), 0);
}

#[test]
fn realm_create_rejects_rd_aliasing_a_root() {
    let f = Fixture::new();
    let rmm = f.active_rmm();
    delegate(&rmm, ROOT, 2);
    let out = create_realm_with(&f, &rmm, ROOT, PARAMS, &Params::default());
    assert_eq!(out[0], INPUT);
    assert_eq!(gstate(&rmm, ROOT), GranuleState::Delegated);
}

#[test]
fn realm_create_fails_with_error_global_when_vmids_run_out() {
    let f = Fixture::new();
    let rmm = f.active_rmm();
    // 256 realms of one RD and one root each (32-bit IPA, level 1).
    let n = crate::realm::NUM_VMIDS as u64;
    delegate(&rmm, B1, 2 * n + 2);
    for i in 0..n {
        let p = Params {
            s2sz: 32,
            rtt_num_start: 1,
            rtt_base: B1 + (2 * i + 1) * G,
            ..Params::default()
        };
        let out = create_realm_with(&f, &rmm, B1 + 2 * i * G, PARAMS, &p);
        assert_eq!(out[0], 0, "realm {i}");
    }
    assert_eq!(rmm.vmids_in_use(), 256);
    let p = Params {
        s2sz: 32,
        rtt_num_start: 1,
        rtt_base: B1 + (2 * n + 1) * G,
        ..Params::default()
    };
    let out = create_realm_with(&f, &rmm, B1 + 2 * n * G, PARAMS, &p);
    assert_eq!(out[0], RmiStatus::ErrorGlobal as u64);
    assert_eq!(gstate(&rmm, B1 + (2 * n + 1) * G), GranuleState::Delegated);
    // Destroying one frees its VMID.
    assert_eq!(call(&rmm, RmiFid::REALM_TERMINATE, &[B1])[0], 0);
    assert_eq!(call(&rmm, RmiFid::REALM_DESTROY, &[B1])[0], 0);
    assert_eq!(
        create_realm_with(&f, &rmm, B1 + 2 * n * G, PARAMS, &p)[0],
        0
    );
}

#[test]
fn realm_activate_rejects_non_rd() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(call(&rmm, RmiFid::REALM_ACTIVATE, &[ROOT])[0], INPUT);
    assert_eq!(call(&rmm, RmiFid::REALM_ACTIVATE, &[RD + 8])[0], INPUT);
}

#[test]
fn realm_activate_rejects_realm_not_new() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(call(&rmm, RmiFid::REALM_ACTIVATE, &[RD])[0], 0);
    assert_eq!(rd_of(&rmm).realm_state(), RealmState::Active);
    assert_eq!(call(&rmm, RmiFid::REALM_ACTIVATE, &[RD])[0], REALM);
}

#[test]
fn realm_terminate_rejects_non_rd() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(call(&rmm, RmiFid::REALM_TERMINATE, &[ROOT])[0], INPUT);
}

#[test]
fn realm_terminate_rejects_running_recs() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    let g = rmm.granules().lock(pa(RD), GranuleState::Rd).unwrap();
    let mut rd = rmm.rd_read(&g);
    rd.active_recs = 1;
    rmm.rd_write(&g, &rd);
    drop(g);
    assert_eq!(call(&rmm, RmiFid::REALM_TERMINATE, &[RD])[0], REALM);
    assert_eq!(rd_of(&rmm).realm_state(), RealmState::New);
}

#[test]
fn realm_terminate_succeeds_from_every_state() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(call(&rmm, RmiFid::REALM_TERMINATE, &[RD])[0], 0);
    assert_eq!(rd_of(&rmm).realm_state(), RealmState::Zombie);
    assert_eq!(
        call(&rmm, RmiFid::REALM_TERMINATE, &[RD])[0],
        0,
        "ZOMBIE again"
    );
    assert_eq!(call(&rmm, RmiFid::REALM_ACTIVATE, &[RD])[0], REALM);
}

#[test]
fn realm_destroy_rejects_non_rd() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(call(&rmm, RmiFid::REALM_DESTROY, &[ROOT])[0], INPUT);
}

#[test]
fn realm_destroy_rejects_realm_with_recs() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    call(&rmm, RmiFid::REALM_TERMINATE, &[RD]);
    rmm.granules()
        .granule(pa(RD))
        .unwrap()
        .lock()
        .refcount_add(1);
    assert_eq!(call(&rmm, RmiFid::REALM_DESTROY, &[RD])[0], REALM);
}

#[test]
fn realm_destroy_rejects_realm_not_zombie() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    assert_eq!(call(&rmm, RmiFid::REALM_DESTROY, &[RD])[0], REALM);
    call(&rmm, RmiFid::REALM_ACTIVATE, &[RD]);
    assert_eq!(call(&rmm, RmiFid::REALM_DESTROY, &[RD])[0], REALM);
}

#[test]
fn realm_destroy_rejects_live_root_entries() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    create_rtt(&rmm, 0, 0x4000_0000, 2);
    call(&rmm, RmiFid::REALM_TERMINATE, &[RD]);
    assert_eq!(call(&rmm, RmiFid::REALM_DESTROY, &[RD])[0], REALM);
    assert_eq!(gstate(&rmm, RD), GranuleState::Rd);
}

#[test]
fn realm_destroy_returns_everything_scrubbed() {
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    f.sim.take_tlbis();
    assert_eq!(call(&rmm, RmiFid::REALM_TERMINATE, &[RD])[0], 0);
    assert_eq!(call(&rmm, RmiFid::REALM_DESTROY, &[RD])[0], 0);
    for a in [RD, ROOT, ROOT + G] {
        assert_eq!(gstate(&rmm, a), GranuleState::Delegated);
        assert!(f.sim.is_zero(pa(a)), "{a:#x} not scrubbed");
    }
    assert_eq!(rmm.vmids_in_use(), 0);
    assert_eq!(f.sim.take_tlbis(), [Tlbi::Vmid(0)]);
    call(&rmm, RmiFid::GRANULE_RANGE_UNDELEGATE, &[RD, RD + G]);
    assert_eq!(gstate(&rmm, RD), GranuleState::Ns);
}

#[test]
fn realm_commands_are_gated_before_activation() {
    let f = Fixture::new();
    let rmm = f.rmm();
    for fid in [
        RmiFid::REALM_CREATE,
        RmiFid::REALM_ACTIVATE,
        RmiFid::REALM_DESTROY,
        RmiFid::REALM_TERMINATE,
    ] {
        assert_eq!(
            call(&rmm, fid, &[RD, PARAMS])[0],
            RmiStatus::ErrorGlobal as u64
        );
    }
}

/// Delegation leaves the host's bytes in a granule (as TF-RMM); every object the RMM builds
/// on a DELEGATED granule must therefore initialise all of it. Fill the granules with a
/// pattern first, build one of everything, and look for the pattern.
#[test]
fn objects_built_on_delegated_granules_keep_none_of_the_hosts_bytes() {
    const DIRT: u8 = 0xA5;
    let f = Fixture::new();
    let rmm = f.active_rmm();
    for i in 0..B1_GRANULES {
        f.sim.host_write(pa(B1 + i * G), &[DIRT; 4096]).unwrap();
    }
    let dirty_word = u64::from_ne_bytes([DIRT; 8]);
    delegate(&rmm, RD, 1);
    delegate(&rmm, ROOT, 2);
    assert_eq!(
        create_realm_with(&f, &rmm, RD, PARAMS, &Params::default())[0],
        0
    );
    let rd = f.sim.peek(pa(RD));
    assert!(
        rd[core::mem::size_of::<crate::Rd>()..]
            .iter()
            .all(|&b| b == 0),
        "the RD granule keeps host bytes after the RD"
    );
    assert!(
        rd.windows(8).all(|w| w != [DIRT; 8]),
        "the RD holds a host word"
    );
    // Both starting-level tables, every entry.
    for root in [ROOT, ROOT + G] {
        let t = f.sim.peek(pa(root));
        for (i, e) in t.chunks_exact(8).enumerate() {
            let e = u64::from_le_bytes(e.try_into().unwrap());
            assert_ne!(e, dirty_word, "root {root:#x} entry {i} is the host's");
        }
    }
    // An RTT at each level (entry 0 of the level 2 table now points to the level 3 one).
    setup_l3(&rmm, 0);
    for i in 0..2 {
        let t = f.sim.peek(pa(rtt(i)));
        let last = &t[4088..];
        assert!(
            t[8..].chunks_exact(8).all(|e| e == last),
            "RTT {i} is not uniformly unassigned"
        );
        assert_ne!(last, [DIRT; 8]);
        assert_ne!(&t[..8], [DIRT; 8]);
    }
    // A REC and its auxiliary granules.
    let rec = B1 + 100 * G;
    create_rec_ok(&f, &rmm, rec, 0, 1, 0x1000, &[]);
    let r = f.sim.peek(pa(rec));
    assert!(r[core::mem::size_of::<crate::Rec>()..]
        .iter()
        .all(|&b| b == 0));
    // The attestation context and token granules are zeroed; the others, which this RMM
    // never reads or writes, keep the host's bytes.
    for a in 0..16 {
        let used = [crate::attest::AUX_CONTEXT, crate::attest::AUX_TOKEN].contains(&(a as usize));
        let zero = f.sim.is_zero(pa(aux_base(0) + a * G));
        assert_eq!(zero, used, "aux {a}");
    }
    // Unmeasured data is zeroed; measured data is the source's.
    assert_eq!(data_map_pages(&rmm, 0, data(0), 1)[0], 0);
    assert!(f.sim.is_zero(pa(data(0))));
    f.sim.host_write(pa(NS2), &[0x3c; 4096]).unwrap();
    delegate(&rmm, data(1), 1);
    let out = call(&rmm, RmiFid::RTT_DATA_MAP_INIT, &[RD, data(1), G, NS2, 1]);
    assert_eq!(out[0], 0);
    assert!(f.sim.peek(pa(data(1))).iter().all(|&b| b == 0x3c));
}
