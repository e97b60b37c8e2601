//! Firmware boots run by the tools: a realm started in edk2's kvmtool realm firmware that
//! boots Debian's Linux from a GPT disk ([`boot_firmware`], used by the end-to-end test), and
//! the instruction counts of such a boot for `cargo xtask bench` ([`bench_firmware`]).
//!
//! The firmware is not built here: the README says how to build it from edk2's public
//! repository. Both functions take its path; [`FIRMWARE_ENV`] is the variable the test and
//! the benchmark read it from.

use super::efidisk;
use super::{prepare, run_captured, LaunchArgs, LinuxRun};
use crate::guest::Evidence;
use crate::images::Images;
use crate::setup::step;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable naming the firmware file (`KVMTOOL_EFI.fd`).
pub const FIRMWARE_ENV: &str = "CCA_REALM_FIRMWARE";

/// The firmware file [`FIRMWARE_ENV`] names, if it is set and not empty.
pub fn firmware_from_env() -> Option<PathBuf> {
    std::env::var_os(FIRMWARE_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Boots a realm of `mem_mib` MiB and `cpus` vCPUs in `firmware` with a disk built from
/// Debian's packages at `out_dir/efi-test.img` whose Linux prints its evidence and powers
/// off; returns what happened. `icount` runs QEMU with `-icount shift=0`.
pub fn boot_firmware(
    imgs: &Images,
    firmware: &Path,
    mem_mib: u64,
    cpus: u32,
    out_dir: &Path,
    icount: bool,
    echo: bool,
) -> Result<LinuxRun> {
    let disk = out_dir.join("efi-test.img");
    efidisk::build_default(&disk, mem_mib, false, "")?;
    let mut args = LaunchArgs::new(mem_mib, cpus);
    args.firmware = Some(firmware.to_path_buf());
    args.disk = Some(disk.display().to_string());
    args.icount = icount;
    let prepared = prepare(&args, firmware, None, out_dir)?;
    super::describe(&prepared);
    let outcome = run_captured(
        imgs,
        &prepared,
        None,
        icount,
        Duration::from_secs(1800),
        echo,
        &[],
    )?;
    let run = LinuxRun {
        prepared,
        evidence: Evidence::default(),
        outcome,
    };
    let evidence = Evidence::parse(&run.realm_console());
    Ok(LinuxRun { evidence, ..run })
}

/// The rows `cargo xtask bench` reports for a firmware boot under `-icount shift=0` (so
/// nanoseconds are instructions): from the first `REC_ENTER` to the firmware's handover
/// (`..._to_linux_start`: the kernel's first console line, right after its EFI stub called
/// ExitBootServices; `..._to_exit_boot_services` too when the stub prints its own line), and
/// to the guest's init (the Linux shell's start), plus the
/// build and the mean cost of each exit class, as `(name, ops, instructions per op)`. Empty,
/// with a line saying it was skipped, when [`FIRMWARE_ENV`] names no firmware.
///
/// The hook in `cargo xtask bench` (after the Linux rows):
/// `ours.extend(xtask::launch::firmware::bench_firmware(&imgs, &root.join("target/launch"))?);`
pub fn bench_firmware(imgs: &Images, out_dir: &Path) -> Result<Vec<(String, u64, u64)>> {
    let Some(fw) = firmware_from_env() else {
        eprintln!(
            "    firmware boot benchmark skipped: set {FIRMWARE_ENV}=KVMTOOL_EFI.fd (see the \
             README) to measure a realm booted by edk2"
        );
        return Ok(Vec::new());
    };
    step("benchmark: edk2's realm firmware booting Debian's Linux from a disk, -icount shift=0");
    let run = boot_firmware(imgs, &fw, 256, 2, out_dir, true, false)?;
    if !run.passed() {
        for l in &run.outcome.lines {
            eprintln!("{l}");
        }
        bail!("the firmware boot benchmark run failed");
    }
    let rows = bench_rows(&run.outcome.lines);
    if !rows
        .iter()
        .any(|(n, _, _)| n == "firmware_first_rec_enter_to_linux_start")
    {
        bail!("the firmware boot printed no handover line (\"Booting Linux on physical CPU\")");
    }
    Ok(rows)
}

/// The host's `BENCH firmware_*` lines of a run: `(name, ops, value)`.
pub fn bench_rows(lines: &[String]) -> Vec<(String, u64, u64)> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("[HOST] BENCH firmware_"))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((
                format!("firmware_{}", w.next()?),
                w.next()?.parse().ok()?,
                w.next()?.parse().ok()?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_lines_are_read() {
        let lines: Vec<String> = [
            "[HOST] BENCH firmware_first_rec_enter_to_exit_boot_services 1 4200000000",
            "[HOST] BENCH firmware_first_rec_enter_to_init 1 9000000000",
            "[HOST] BENCH linux_run 1 5",
            "[HOST] BENCH firmware_broken",
            "[REALM] BENCH firmware_x 1 2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            bench_rows(&lines),
            [
                (
                    "firmware_first_rec_enter_to_exit_boot_services".to_string(),
                    1,
                    4_200_000_000
                ),
                (
                    "firmware_first_rec_enter_to_init".to_string(),
                    1,
                    9_000_000_000
                ),
            ]
        );
    }
}
