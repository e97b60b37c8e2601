//! Debian's arm64 Linux as a realm guest under our host, RMM and EL3 on QEMU: the kernel finds
//! the RMM, all vCPUs come online (also with more vCPUs than physical CPUs), the swiotlb pool's
//! RIPAS change is carried out, power-off and reboot both end in a full teardown, an access to
//! an address nothing emulates does not stop the guest, and the RIM the launcher predicts is
//! the one the RMM measures, with both hash algorithms.
//!
//! The kernel and BusyBox come from Debian's archive through `xtask::guest` (cached outside
//! the tree); the first run downloads them.

use e2e::images_dir;
use std::path::PathBuf;
use xtask::guest::{InitScript, Then};
use xtask::images::Images;
use xtask::launch::{boot_linux, LaunchArgs, LinuxRun};

fn images() -> Images {
    let dir = images_dir();
    Images {
        el3: dir.join("el3.bin"),
        rmm: dir.join("rmm.bin"),
        host: dir.join("host.bin"),
        dir,
    }
}

fn boot(args: &LaunchArgs, init: InitScript, name: &str) -> LinuxRun {
    boot_typing(args, init, name, &[])
}

fn boot_typing(args: &LaunchArgs, init: InitScript, name: &str, feed: &[(&str, &str)]) -> LinuxRun {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let run =
        boot_linux(&images(), args, init, &[], &out, false, feed).expect("the launch is prepared");
    if !run.passed() {
        eprintln!(
            "---- QEMU output ----\n{}\n---- end ----",
            run.outcome.lines.join("\n")
        );
    }
    run
}

fn args(mem: u64, cpus: u32) -> LaunchArgs {
    let mut a = LaunchArgs::new(mem, cpus);
    a.timeout = 900;
    a
}

fn host_lines(run: &LinuxRun) -> Vec<&str> {
    run.outcome
        .lines
        .iter()
        .filter_map(|l| l.strip_prefix("[HOST] "))
        .collect()
}

fn check_common(run: &LinuxRun, cpus: u32) {
    assert!(run.passed(), "the Linux realm did not pass");
    let e = &run.evidence;
    assert!(
        e.rsi
            .as_deref()
            .is_some_and(|r| r.contains("RME: Using RSI version")),
        "no RSI version line: {e:?}"
    );
    assert_eq!(e.cpus, Some(cpus), "{e:?}");
    assert!(e.mem_total_kb.is_some_and(|k| k > 100_000), "{e:?}");
    assert_eq!(
        run.measured_rim().as_deref(),
        Some(run.prepared.rim.as_str()),
        "RIM measured by the RMM != RIM predicted by the launcher"
    );
    let host = host_lines(run);
    assert!(
        host.iter().any(|l| l.contains("nothing left delegated")
            && l.contains("returned granules read back as zero")),
        "no clean teardown line"
    );
}

#[test]
fn two_vcpus_sha256_boot_to_init_and_power_off() {
    let run = boot(
        &args(256, 2),
        InitScript::Evidence {
            then: Then::PowerOff,
        },
        "linux-2cpu",
    );
    check_common(&run, 2);
    let host = host_lines(&run);
    assert!(host.contains(&"RESULT: PASS (realm: Linux powered off)"));
    // The swiotlb pool is made EMPTY (not avoided with swiotlb=noforce), and its pages left
    // the realm.
    assert!(
        host.iter().any(|l| l.contains("to EMPTY: accepted")),
        "no RIPAS EMPTY request was handled"
    );
    assert!(!run.prepared.bootargs.contains("swiotlb=noforce"));
    assert!(host.iter().any(|l| l.contains("to RAM: accepted")));
    assert_eq!(run.prepared.rim.len(), 64, "a SHA-256 RIM");
}

#[test]
fn one_vcpu_sha512_with_an_rpv_reboots_into_a_full_teardown() {
    let mut a = args(256, 1);
    a.measurement_algo = "sha512".into();
    a.realm_pv = Some("0xc0ffee0011223344556677".into());
    let run = boot(
        &a,
        InitScript::Evidence { then: Then::Reboot },
        "linux-sha512",
    );
    check_common(&run, 1);
    assert!(host_lines(&run).contains(&"RESULT: PASS (realm: Linux reset)"));
    assert_eq!(run.prepared.rim.len(), 128, "a SHA-512 RIM");
    assert!(run
        .prepared
        .desc
        .to_text()
        .contains("rpv=c0ffee0011223344556677"));
}

#[test]
fn more_vcpus_than_physical_cpus_all_come_online_with_a_gib_of_ram() {
    let run = boot(
        &args(1024, 3),
        InitScript::Evidence {
            then: Then::PowerOff,
        },
        "linux-3cpu",
    );
    check_common(&run, 3);
    assert!(
        run.evidence.mem_total_kb.is_some_and(|k| k > 900_000),
        "1 GiB of RAM"
    );
    let host = host_lines(&run);
    let stats = host
        .iter()
        .find(|l| l.contains(" exits:"))
        .expect("exit statistics");
    assert!(stats.contains(" sgi "), "IPIs were routed: {stats}");
    assert!(
        stats.contains(" irq "),
        "the quantum preempted vCPUs: {stats}"
    );
}

#[test]
fn an_unemulated_device_address_reads_as_zero_and_the_guest_goes_on() {
    // 0x0A00_0000 has no device on kvmtool's platform; through the unprotected alias
    // (bit 32 of a 33-bit IPA space) the access reaches the host as an emulatable abort.
    let run = boot(
        &args(256, 1),
        InitScript::ProbeUnemulated {
            addr: 0x1_0A00_0000,
        },
        "linux-probe",
    );
    check_common(&run, 1);
    let host = host_lines(&run);
    assert!(
        host.iter()
            .any(|l| l.contains("at 0xa000000: no device there, read as zero / ignored")),
        "the host did not log the unemulated access"
    );
    let v = run.evidence.probe_value.clone().unwrap_or_default();
    assert!(
        v.trim_start_matches("0x").chars().all(|c| c == '0') && !v.is_empty(),
        "the probe read {v:?}"
    );
}

#[test]
fn the_shell_on_the_16550_is_interactive() {
    // Typed bytes go QEMU -> host PL011 -> the virtual 16550's receive FIFO -> SPI 32 -> the
    // guest's 8250 driver -> the shell, whose answer comes back out the same way.
    let run = boot_typing(
        &args(256, 1),
        InitScript::Shell,
        "linux-shell",
        &[
            ("CCA-INIT: shell on", "echo typed-$((6*7))\n"),
            ("typed-42", "exit\n"),
        ],
    );
    let console = run.realm_console();
    assert!(
        console.lines().any(|l| l.trim() == "typed-42"),
        "the shell did not answer what was typed"
    );
    assert!(console.contains("CCA-INIT: shell exited"));
    assert!(run.outcome.passed(), "the host's verdict");
}
