//! The host runs the realm payload (`crates/realm`) in a realm on QEMU: the payload's console
//! comes out as `[REALM]` lines, the host handles its exits, and the payload's verdict is part
//! of the host's RESULT line.

use e2e::{boot_images, shared_boot, world_lines};

/// The number of `ok:` checks the payload printed.
fn realm_checks_passed(realm: &[&str]) -> usize {
    realm.iter().filter(|l| l.starts_with("  ok: ")).count()
}

#[test]
fn the_realm_payload_runs_and_its_verdict_reaches_the_result_line() {
    let out = shared_boot();
    let realm = world_lines(out, "REALM");
    assert!(
        realm
            .iter()
            .any(|l| l.starts_with("Realm payload (Rust) at EL1 on REC 0")),
        "the payload did not start: {realm:#?}"
    );
    assert!(
        !realm
            .iter()
            .any(|l| l.contains("FAILED") || l.contains("FATAL")),
        "a realm check failed: {realm:#?}"
    );
    // The calls the RMM's vector answers itself leave the realm's other registers as they were.
    for call in [
        "RSI_VERSION(1.0): x0..x3 = 0x0 0x10000 0x10001 0x0, x4..x17 kept",
        "RSI_FEATURES(0): x0..x3 = 0x0 0x0 0x0 0x0, x4..x17 kept",
    ] {
        assert!(
            realm
                .iter()
                .any(|l| l.contains("ok: ") && l.ends_with(call)),
            "no `ok: {call}`: {realm:#?}"
        );
    }
    let passed = realm_checks_passed(&realm);
    assert!(passed >= 40, "{passed} checks passed");
    assert!(
        realm.contains(&format!("REALM RESULT: PASS ({passed} checks)").as_str()),
        "the verdict does not count the {passed} `ok:` lines: {realm:#?}"
    );
    let host = world_lines(out, "HOST");
    let verdict =
        format!("REC 0: host call 0xcca0: the payload's verdict: {passed} passed, 0 not passed");
    assert!(host.contains(&verdict.as_str()), "no `{verdict}`");
    let ok = format!("  ok: the realm payload passed: {passed} checks passed, 0 did not");
    assert!(host.contains(&ok.as_str()), "no `{ok}`");
    let result = format!("RESULT: PASS (realm: PASS, {passed} checks)");
    assert!(host.contains(&result.as_str()), "no `{result}`");
    assert!(out.passed());
}

#[test]
fn the_host_answers_every_kind_of_exit_the_payload_makes() {
    let out = shared_boot();
    let host = world_lines(out, "HOST");
    let has = |prefix: &str| host.iter().any(|l| l.starts_with(prefix));
    for line in [
        "vCPU 0: RIPAS of [0x200000, 0x210000) to RAM: accepted up to 0x210000",
        "RIPAS of [0x300000, 0x301000) to RAM: the host refuses requests starting in \
         [0x300000, 0x301000)",
        "vCPU 0: RIPAS of [0x300000, 0x301000) to RAM: rejected",
        "REC 0: host call 0xcca1 answered with every gpr + 1",
        "REC 0: host call 0xcca2: the payload's RSI timings (64 RSI_VERSION and 64 \
         RSI_IPA_STATE_GET calls)",
        "PSCI CPU_ON of REC 1: the host answers Success",
        "vCPU 0: PSCI SYSTEM_OFF",
        "  ok: the realm ran and powered itself off (PSCI SYSTEM_OFF)",
        "  ok: 32 auxiliary granules of 2 REC(s) reclaimed and undelegated",
        "  ok: the RD and the image's first data granule come back scrubbed",
    ] {
        assert!(has(line), "no host line starting `{line}`");
    }
    // REC 1 ran after CPU_ON and powered itself off again.
    let rec1 = host
        .iter()
        .find(|l| l.starts_with("   REC 1: "))
        .expect("the host reports REC 1");
    assert!(
        rec1.ends_with(" exit(s), off again (PSCI CPU_OFF)"),
        "{rec1}"
    );
    let realm = world_lines(out, "REALM");
    assert!(realm.iter().any(|l| l.starts_with("REC 1 up at EL1")));
    // The virtual timer went through a list register and the realm completed it.
    let timer = host
        .iter()
        .find_map(|l| l.strip_prefix("   timer interrupts: "))
        .expect("the host reports the timer interrupts");
    let n: Vec<u64> = timer
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(n[0] >= 1 && n[1] >= 1, "injected and completed: {timer}");
    // Pages the realm touched were mapped on demand.
    let exits = host
        .iter()
        .find(|l| l.contains(" exits: MMIO "))
        .expect("the host reports the exits");
    assert!(!exits.contains("faults mapped 0,"), "{exits}");
}

#[test]
fn the_payload_realms_rim_is_the_one_the_host_predicted_and_the_realm_reads() {
    let out = shared_boot();
    let predicted = world_lines(out, "HOST")
        .iter()
        .find_map(|l| l.strip_prefix("payload realm RIM (predicted by the host) = "))
        .expect("the host predicts the payload realm's RIM")
        .to_string();
    let measured: Vec<&str> = world_lines(out, "RMM")
        .iter()
        .filter_map(|l| l.split_once("is ACTIVE; RIM = ").map(|(_, r)| r))
        .collect();
    assert_eq!(measured.last(), Some(&predicted.as_str()), "{measured:?}");
    let read = world_lines(out, "REALM")
        .iter()
        .find_map(|l| l.strip_prefix("  ok: MEASUREMENT_READ(0) -> RIM "))
        .expect("the payload reads its RIM")
        .to_string();
    assert!(read.starts_with(&predicted), "{read} vs {predicted}");
}

#[test]
fn without_a_payload_image_the_host_skips_the_realm_and_fails() {
    let out = boot_images(false, false);
    assert!(!out.timed_out);
    assert_ne!(out.exit_code, Some(0));
    let host = world_lines(&out, "HOST");
    assert!(host.iter().any(|l| l.starts_with(
        "  FAILED: there is a realm payload image (its size word is 0): the realm run is skipped"
    )));
    assert!(host.contains(&"RESULT: FAIL (realm: not run)"));
    assert!(world_lines(&out, "REALM").is_empty());
}

#[test]
fn benchmark_mode_reports_rec_enter_round_trips() {
    let dir = e2e::images_dir();
    let imgs = xtask::images::Images {
        el3: dir.join("el3.bin"),
        rmm: dir.join("rmm.bin"),
        host: dir.join("host.bin"),
        dir,
    };
    let rows = xtask::qemu::bench(&imgs).expect("benchmark run passes");
    for op in ["rec_enter_mmio", "rec_enter_host_call", "rec_enter_psci"] {
        let row = rows.iter().find(|r| r.0 == op);
        assert!(row.is_some_and(|r| r.1 > 0 && r.2 > 0), "{op}: {rows:?}");
    }
    let host_calls = rows.iter().find(|r| r.0 == "rec_enter_host_call").unwrap();
    // Echo, timings and verdict, plus the attestation token handed over 224 bytes per call
    // (a CCA token of this platform is 1..4 KiB: 5..19 calls).
    assert!(
        (3 + 5..=3 + 19).contains(&host_calls.1),
        "the payload makes three host calls (echo, timings, verdict) and hands its token \
         over in 224-byte host calls: {host_calls:?}"
    );
    for op in ["rsi_version_in_realm", "rsi_ipa_state_get_in_realm"] {
        let row = rows.iter().find(|r| r.0 == op);
        assert!(row.is_some_and(|r| r.1 == 64 && r.2 > 0), "{op}: {rows:?}");
    }
}
