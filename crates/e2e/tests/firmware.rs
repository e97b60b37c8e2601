//! edk2's kvmtool realm firmware as a realm's first stage under our host, RMM and EL3 on
//! QEMU: the firmware (loaded at the RAM base and measured with the device tree) runs its
//! RSI sequence, finds the virtio disk the launcher built from Debian's packages, starts
//! systemd-boot from it, and Debian's Linux boots from the disk with the firmware's ACPI
//! tables, mounts its root from the second partition and powers off. The RIM the launcher
//! predicts for the firmware and the device tree is the one the RMM measures.
//!
//! The firmware is not part of this repository: build it as the README says and run
//! `CCA_REALM_FIRMWARE=/path/to/KVMTOOL_EFI.fd cargo xtask test --qemu-only`. Without the
//! variable the test says it was skipped and passes.

use e2e::images_dir;
use std::path::PathBuf;
use xtask::images::Images;
use xtask::launch::firmware::{boot_firmware, firmware_from_env, FIRMWARE_ENV};

fn images() -> Images {
    let dir = images_dir();
    Images {
        el3: dir.join("el3.bin"),
        rmm: dir.join("rmm.bin"),
        host: dir.join("host.bin"),
        dir,
    }
}

#[test]
fn the_firmware_boots_debian_linux_from_the_disk() {
    let Some(fw) = firmware_from_env() else {
        eprintln!(
            "SKIPPED: the realm firmware boot test needs {FIRMWARE_ENV}=KVMTOOL_EFI.fd (edk2's \
             kvmtool realm firmware, built as the README says); it was not run"
        );
        return;
    };
    assert!(
        fw.is_file(),
        "{FIRMWARE_ENV}={} is not a file",
        fw.display()
    );
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("firmware");
    // CCA_E2E_ECHO=1 shows the console while it runs.
    let echo = std::env::var_os("CCA_E2E_ECHO").is_some();
    let run = boot_firmware(&images(), &fw, 256, 2, &out, false, echo)
        .expect("the firmware launch is prepared");
    let host: Vec<&str> = run
        .outcome
        .lines
        .iter()
        .filter_map(|l| l.strip_prefix("[HOST] "))
        .collect();
    let console = run.realm_console();
    if !run.passed() {
        eprintln!(
            "---- QEMU output ----\n{}\n---- end ----",
            run.outcome.lines.join("\n")
        );
    }
    // The firmware ran (its banner), booted systemd-boot from the disk, which started the
    // kernel's EFI stub, which left the firmware and entered the kernel.
    assert!(console.contains("UEFI firmware"), "no firmware banner");
    assert!(
        console.contains("efi: EFI v2"),
        "the kernel was not booted through EFI"
    );
    assert!(
        host.iter()
            .any(|l| l.starts_with("BENCH firmware_first_rec_enter_to_linux_start 1 ")),
        "no handover measured"
    );
    // Its RSI calls reached the host: RIPAS RAM over all memory, bounce buffers shared.
    assert!(
        host.iter()
            .any(|l| l.contains("RIPAS of [0x80000000, 0x90000000) to RAM: accepted")),
        "no RIPAS RAM over all of RAM"
    );
    assert!(
        host.iter().any(|l| l.contains("to EMPTY: accepted")),
        "no shared buffer"
    );
    // Linux booted from the disk with ACPI, as a realm, and finished its script.
    let e = &run.evidence;
    assert!(
        e.rsi
            .as_deref()
            .is_some_and(|r| r.contains("RME: Using RSI version")),
        "{e:?}"
    );
    assert!(
        console.contains("CCA-INIT: root mounted: /dev/vda2"),
        "root"
    );
    assert!(console.contains("CCA-INIT: efi: yes"), "booted through EFI");
    assert!(
        console
            .lines()
            .any(|l| l.contains("CCA-INIT: acpi-tables:") && l.contains("APIC")),
        "no ACPI MADT"
    );
    assert_eq!(e.cpus, Some(2), "{e:?}");
    assert_eq!(
        run.measured_rim().as_deref(),
        Some(run.prepared.rim.as_str()),
        "RIM measured by the RMM != RIM predicted by the launcher"
    );
    assert!(run.passed(), "the firmware-booted realm did not pass");
}
