//! The three worlds boot on QEMU and the host's boot-time RMI sequence passes.

use e2e::{boot, shared_boot, world_lines};

#[test]
fn host_sequence_passes_and_qemu_powers_off_with_status_zero() {
    let out = shared_boot();
    assert!(!out.timed_out, "QEMU hung");
    assert_eq!(out.exit_code, Some(0), "QEMU exit status");
    assert!(out.passed());
    let host = world_lines(out, "HOST");
    assert!(host.iter().any(|l| l.contains("0 failed")), "summary line");
    assert!(
        !host.iter().any(|l| l.contains("FAILED")),
        "a host check failed"
    );
}

#[test]
fn el3_builds_the_gpt_and_boots_the_rmm() {
    let out = shared_boot();
    let el3 = world_lines(out, "EL3");
    assert!(el3
        .iter()
        .any(|l| l.starts_with("GPT enabled: PPS 40 bits")));
    assert!(el3
        .iter()
        .any(|l| l.starts_with("boot manifest v0.5 at 0x418ff000")));
    assert!(el3
        .iter()
        .any(|l| l.starts_with("RMM boot complete on CPU 0")));
}

#[test]
fn rmm_completes_boot_on_every_cpu() {
    let out = shared_boot();
    let rmm = world_lines(out, "RMM");
    assert!(rmm
        .iter()
        .any(|l| l.starts_with("RMM (Rust) cold boot on CPU 0 of 2")));
    assert!(rmm.iter().any(|l| l.starts_with("warm boot on CPU 1")));
    let el3 = world_lines(out, "EL3");
    assert!(el3
        .iter()
        .any(|l| l.starts_with("RMM boot complete on CPU 1")));
}

#[test]
fn every_rmm_rejection_names_command_status_and_reason() {
    let out = shared_boot();
    let mut rejections = 0;
    for (i, l) in out.lines.iter().enumerate() {
        let Some(call) = l.strip_prefix("[HOST] RMI ") else {
            continue;
        };
        let Some((_, status)) = call.split_once(" -> ") else {
            continue;
        };
        if status.starts_with("RMI_SUCCESS") || status.starts_with("RMI_INCOMPLETE") {
            continue;
        }
        rejections += 1;
        let prev = &out.lines[i - 1];
        assert!(
            prev.starts_with("[RMM] DEBUG "),
            "no RMM log line before rejected call `{l}`"
        );
        let status_name = status.split_whitespace().next().unwrap();
        assert!(
            prev.contains(status_name),
            "RMM log `{prev}` does not name {status_name}"
        );
        let reason = prev.split_once(": ").map(|(_, r)| r).unwrap_or("");
        assert!(reason.len() > 10, "RMM log `{prev}` gives no reason");
    }
    assert!(
        rejections >= 15,
        "the demonstration makes deliberate bad calls ({rejections})"
    );
}

#[test]
fn delegated_memory_is_out_of_the_hosts_reach_and_scrubbed() {
    let out = shared_boot();
    let host = world_lines(out, "HOST");
    assert!(
        host.contains(&"  ok: the host cannot read a delegated granule (granule protection fault)")
    );
    assert!(host
        .contains(&"  ok: undelegated granules come back scrubbed (the host's pattern is gone)"));
}

#[test]
fn instruction_counting_mode_boots_too() {
    let out = boot(true);
    assert!(out.passed(), "the stack fails under -icount shift=0");
}

/// Boots our stack with the realm payload on a machine of `mem` DRAM and `cpus` CPUs.
fn boot_machine(mem: &str, cpus: u32) -> e2e::Outcome {
    let dir = e2e::images_dir();
    let realm = dir.join("realm.bin");
    let mut cmd = xtask::qemu::command_for(
        &dir.join("el3.bin"),
        &dir.join("rmm.bin"),
        &dir.join("host.bin"),
        Some(realm.as_path()),
        false,
        mem,
        cpus,
    );
    xtask::qemu::run_command(&mut cmd, std::time::Duration::from_secs(120), false)
        .expect("QEMU runs")
}

#[test]
fn a_single_cpu_machine_fails_the_secondary_check_quickly() {
    let out = boot_machine("2G", 1);
    assert!(
        !out.timed_out,
        "the host waited for a CPU that does not exist"
    );
    let host = world_lines(&out, "HOST");
    assert!(host
        .iter()
        .any(|l| l.contains("FAILED: the machine has a second CPU")));
    assert!(host.iter().any(|l| l.starts_with("RESULT: FAIL")));
    assert_ne!(out.exit_code, Some(0));
}

#[test]
fn too_little_dram_for_the_demonstration_is_refused_with_a_reason() {
    let out = boot_machine("1G", 2);
    assert!(!out.timed_out);
    let host = world_lines(&out, "HOST");
    assert!(
        host.iter()
            .any(|l| l.starts_with("RESULT: FAIL (the demonstration's layout needs DRAM")),
        "{host:#?}"
    );
    assert_ne!(out.exit_code, Some(0));
}
