//! A realm is built, checked and torn down over RMI on QEMU, with real stage 2 tables.

use e2e::{shared_boot, world_lines};

#[test]
fn realm_lifecycle_passes_on_qemu() {
    let out = shared_boot();
    let host = world_lines(out, "HOST");
    for section in [
        "-- realm creation",
        "-- stage 2 tables",
        "-- RECs through stateful operations",
        "-- teardown",
    ] {
        assert!(host.contains(&section), "missing `{section}`");
    }
    assert!(host.contains(&"  ok: 32 auxiliary granules reclaimed and undelegated (32)"));
    assert!(host.contains(&"  ok: every returned granule is scrubbed"));
    assert!(host.contains(&"  ok: REALM_DESTROY returns RMI_SUCCESS"));
    assert!(!host.iter().any(|l| l.contains("FAILED")));
}

#[test]
fn rim_reported_by_the_rmm_matches_the_hosts_prediction() {
    let out = shared_boot();
    let predicted = world_lines(out, "HOST")
        .iter()
        .find_map(|l| l.strip_prefix("RIM (predicted by the host) = "))
        .expect("the host prints its predicted RIM")
        .to_string();
    let measured = world_lines(out, "RMM")
        .iter()
        .find_map(|l| l.split_once("is ACTIVE; RIM = ").map(|(_, r)| r))
        .expect("the RMM logs the RIM at REALM_ACTIVATE")
        .to_string();
    assert_eq!(predicted.len(), 64, "SHA-256");
    assert_eq!(measured, predicted);
}

#[test]
fn host_mistakes_are_rejected_with_reasons_in_the_rmm_log() {
    let out = shared_boot();
    let rmm = world_lines(out, "RMM");
    for needle in [
        "REALM_CREATE(",
        "RTT_CREATE(",
        "RTT_DATA_MAP_INIT(",
        "RTT_UNPROT_MAP(",
        "REALM_ACTIVATE(",
        "REALM_DESTROY(",
    ] {
        assert!(
            rmm.iter().any(|l| l.starts_with("DEBUG ")
                && l.contains(needle)
                && l.contains(" -> RMI_ERROR")),
            "no rejection of {needle} in the RMM log"
        );
    }
}

#[test]
fn benchmark_mode_reports_every_operation() {
    let dir = e2e::images_dir();
    let imgs = xtask::images::Images {
        el3: dir.join("el3.bin"),
        rmm: dir.join("rmm.bin"),
        host: dir.join("host.bin"),
        dir,
    };
    let rows = xtask::qemu::bench(&imgs).expect("benchmark run passes");
    let names: Vec<_> = rows.iter().map(|r| r.0.as_str()).collect();
    for op in [
        "rmi_version_round_trip",
        "delegate_per_granule_in_range",
        "realm_create",
        "rtt_create_level3",
        "data_map_init_measured_per_4k",
        "data_map_per_2m_block",
        "rec_create_sro",
    ] {
        assert!(names.contains(&op), "no {op} in {names:?}");
    }
    assert!(rows.iter().all(|r| r.1 > 0 && r.2 > 0), "{rows:?}");
}
