//! Hostile worlds on QEMU: the hostile host (`cargo xtask fuzz host`) against the real RMM
//! from both CPUs, and the deliberate fatal faults (`cargo xtask fuzz fault`) that must halt
//! the machine with a report naming the world, the syndrome and the address, and a failure
//! status. The runs and their verdicts are xtask's own (`xtask/src/fuzz.rs`, included here).

#[allow(dead_code)]
#[path = "../../../xtask/src/fuzz.rs"]
mod fuzz;

use fuzz::FaultKind;
use std::path::PathBuf;
use std::time::Duration;

/// Calls of the QEMU run: at about 3500 calls per second (both CPUs, the RMM logging every
/// rejection) this is about 30 s of fuzzing, well under a minute of QEMU in all.
const CALLS: u64 = 100_000;

/// A number from a `FUZZ CPU n: …` statistics line: the one before `what`.
fn stat(line: &str, what: &str) -> Option<u64> {
    let before = &line[..line.find(what)?];
    before
        .split_whitespace()
        .last()?
        .trim_start_matches('(')
        .parse()
        .ok()
}

#[test]
fn a_hostile_host_on_both_cpus_finds_nothing_and_every_granule_comes_back() {
    let dir = e2e::images_dir();
    let (r, out) = fuzz::run_host_images(&dir, CALLS, 0x5EED_0101, Duration::from_secs(300), false)
        .expect("QEMU runs");
    eprintln!(
        "hostile host: {:?} calls, {:?} calls/s on {:?} CPUs, {:?} findings, QEMU {:.1} s",
        r.calls, r.per_second, r.cpus, r.findings, r.seconds
    );
    if !r.passed() {
        eprintln!(
            "---- QEMU output ----\n{}\n---- end ----",
            out.lines.join("\n")
        );
    }
    assert!(r.passed(), "{:?}", r.problems);
    assert!(r.calls.unwrap() >= CALLS);
    assert_eq!(r.cpus, Some(2), "both CPUs fuzzed");
    assert_eq!(r.findings, Some(0));
    assert!(r.per_second.unwrap() > 0);
    // Both fuzzers did real work: the boot CPU completed lifecycles whose RECs ran, and
    // the second threw garbage and corruptions at them.
    let cpu0 = r
        .stats
        .iter()
        .find(|l| l.starts_with("FUZZ CPU 0: "))
        .expect("CPU 0's counts");
    let cpu1 = r
        .stats
        .iter()
        .find(|l| l.starts_with("FUZZ CPU 1: "))
        .expect("CPU 1's counts");
    assert!(stat(cpu0, "lifecycles completed").unwrap() > 0, "{cpu0}");
    assert!(
        stat(cpu0, "REC_ENTERs ran the realm").unwrap() > 0,
        "{cpu0}"
    );
    assert!(stat(cpu0, "granules delegated").unwrap() > 0, "{cpu0}");
    assert!(stat(cpu1, "garbage").unwrap() > CALLS / 10, "{cpu1}");
    assert!(stat(cpu1, "corruptions)").unwrap() > 0, "{cpu1}");
    // Its targeted races ran the boot CPU's RECs while that CPU ran them too.
    assert!(stat(cpu1, "targeted races").unwrap() > 0, "{cpu1}");
    assert!(stat(cpu1, "REC_ENTERs ran a REC").unwrap() > 0, "{cpu1}");
    // The sweep read granules back scrubbed, and the RMM served the canonical realm and the
    // payload realm afterwards.
    let sweep = r.sweep.as_deref().unwrap();
    assert!(stat(sweep, "read back scrubbed").unwrap() > 0, "{sweep}");
    assert_eq!(r.canonical_failed, Some(0));
    assert!(out
        .lines
        .iter()
        .any(|l| l.starts_with("[HOST]   ok: the realm payload passed")));
}

fn fault(kind: FaultKind) {
    let dir = e2e::images_dir();
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("fault-{}", kind.name()));
    let (r, out) = fuzz::run_fault_images(&dir, &work, kind, false).expect("QEMU runs");
    if !r.as_expected() {
        eprintln!(
            "---- QEMU output ----\n{}\n---- end ----",
            out.lines.join("\n")
        );
    }
    assert!(r.as_expected(), "{:?}", r.problems);
    assert!(
        r.exit_code.is_some_and(|c| c != 0),
        "the run's result is FAIL"
    );
    eprintln!("{}: {}", kind.name(), r.report.as_deref().unwrap_or(""));
    // The normal image still has its hooks off (only the copy was patched).
    let normal = std::fs::read(dir.join("el3.bin")).unwrap();
    let mut copy = normal.clone();
    fuzz::patch_hooks(&mut copy).expect("the normal image's hook word is still zero");
    assert_eq!(
        std::fs::read(work.join("el3-test-hooks.bin")).unwrap(),
        copy
    );
}

#[test]
fn a_granule_protection_fault_in_the_rmm_halts_with_its_report() {
    fault(FaultKind::Rmm);
}

#[test]
fn a_granule_protection_fault_in_el3_halts_with_its_report() {
    fault(FaultKind::El3);
}

#[test]
fn a_panic_in_el3_halts_with_its_report() {
    fault(FaultKind::El3Panic);
}

#[test]
fn a_panic_in_the_rmm_halts_with_its_report() {
    fault(FaultKind::RmmPanic);
    // Only the copy of the RMM was patched too.
    let dir = e2e::images_dir();
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fault-rmm-panic");
    let mut copy = std::fs::read(dir.join("rmm.bin")).unwrap();
    fuzz::patch_hooks_after(&mut copy, fuzz::RMM_HOOK_MARKER, "RMM")
        .expect("the normal RMM image's hook word is still zero");
    assert_eq!(
        std::fs::read(work.join("rmm-test-hooks.bin")).unwrap(),
        copy
    );
}

#[test]
fn the_normal_rmm_image_refuses_the_test_hook() {
    // The normal RMM answers the hook's function ID SMC_UNKNOWN (and logs it); the host then
    // fails the run on its own terms.
    let dir = e2e::images_dir();
    let mut cmd = fuzz::command(
        &dir,
        &dir.join("el3.bin"),
        fuzz::MODE_FAULT,
        FaultKind::RmmPanic.code(),
        0,
    );
    let out = xtask::qemu::run_command(&mut cmd, Duration::from_secs(120), false).unwrap();
    assert!(
        out.lines.iter().any(|l| l.starts_with(
            "[HOST] RESULT: FAIL (the RMM did not panic: it answered 0xffffffffffffffff)"
        )),
        "{:#?}",
        out.lines
    );
    assert!(!out.lines.iter().any(|l| l.contains("PANIC")));
}

#[test]
fn the_normal_el3_image_refuses_the_test_hook() {
    // Without the patched word the hook is SMC_UNKNOWN: the host reports that nothing
    // faulted and the run fails on the host's own terms, not with a halt report.
    let dir = e2e::images_dir();
    let mut cmd = fuzz::command(
        &dir,
        &dir.join("el3.bin"),
        fuzz::MODE_FAULT,
        FaultKind::El3Panic.code(),
        0,
    );
    let out = xtask::qemu::run_command(&mut cmd, Duration::from_secs(120), false).unwrap();
    assert!(
        out.lines.iter().any(|l| l.starts_with(
            "[HOST] RESULT: FAIL (EL3 did not panic: hook answered 0xffffffffffffffff)"
        )),
        "{}",
        out.lines.join("\n")
    );
    assert!(!out
        .lines
        .iter()
        .any(|l| l.contains("PANIC") || l.contains("FATAL")));
    assert_eq!(out.exit_code, Some(1));
}
