//! The hostile realm: the payload's fuzz mode on QEMU (`cargo xtask fuzz realm`), and the unit
//! tests of its generator (`crates/realm/src/fuzz/gen.rs` is pure code, included here so that
//! it is tested on the build machine).

#[allow(dead_code)]
#[path = "../../realm/src/fuzz/gen.rs"]
mod gen;

use std::time::Duration;

/// The request block `cargo xtask fuzz realm` loads (`xtask/src/fuzz_realm.rs`): "CCAFUZZ!",
/// mode 3 (the hostile realm), iterations, seed.
fn run(calls: u64, seed: u64) -> e2e::Outcome {
    let dir = e2e::images_dir();
    let mut cmd = xtask::qemu::command(
        &dir.join("el3.bin"),
        &dir.join("rmm.bin"),
        &dir.join("host.bin"),
        Some(&dir.join("realm.bin")),
        false,
    );
    let magic = u64::from_le_bytes(*b"CCAFUZZ!");
    for (i, word) in [magic, 3, calls, seed].into_iter().enumerate() {
        cmd.arg("-device").arg(format!(
            "loader,addr={:#x},data={word:#x},data-len=8",
            0x5fff_e000u64 + 8 * i as u64
        ));
    }
    xtask::qemu::run_command(&mut cmd, Duration::from_secs(170), false).expect("QEMU runs")
}

/// Iterations of the QEMU run (a few thousand keep it well under two minutes).
const CALLS: u64 = 3000;

#[test]
fn hostile_realm_survives_on_qemu() {
    let seed = 0x5EED_0011;
    let r = run(CALLS, seed);
    let passed = r.exit_code == Some(0)
        && r.lines
            .iter()
            .any(|l| l.starts_with("[HOST] RESULT: PASS (hostile realm"))
        && r.lines
            .iter()
            .any(|l| l.starts_with("[REALM] ") && l.contains("FUZZ REALM RESULT: PASS"));
    if !passed {
        eprintln!(
            "---- QEMU output ----\n{}\n---- end ----",
            r.lines.join("\n")
        );
    }
    assert!(!r.timed_out, "QEMU timed out");
    assert!(passed, "the hostile realm run failed");
    let summary =
        format!("[HOST] FUZZ REALM: iterations {CALLS} of {CALLS}, seed {seed:#x}, violations 0,");
    assert!(
        r.lines.iter().any(|l| l.starts_with(&summary)),
        "no `{summary}` line"
    );
    // Every class ran, and the outcomes the architecture and the RMM define were seen.
    let classes: Vec<&str> = r
        .lines
        .iter()
        .filter_map(|l| l.strip_prefix("[REALM] fuzz class "))
        .collect();
    for c in gen::CLASSES {
        assert!(
            classes
                .iter()
                .any(|l| l.starts_with(&format!("{} ", c.name()))),
            "no report of class {}",
            c.name()
        );
    }
    let all = classes.join("\n");
    for outcome in [
        "undef=",
        "sea=",
        "translation=",
        "permission=",
        "svc/hvc/smc=",
    ] {
        assert!(all.contains(outcome), "no `{outcome}` outcome in\n{all}");
    }
    // The RMM never halted and the host survived: the run ended with the host's checks.
    for needle in [
        "[HOST]   ok: the realm powered itself off",
        "[HOST]   ok: the RMM still answers RMI_VERSION (status 0x0)",
    ] {
        assert!(
            r.lines.iter().any(|l| l.starts_with(needle)),
            "missing `{needle}`"
        );
    }
    assert!(!r.lines.iter().any(|l| l.contains("FATAL")));
}
