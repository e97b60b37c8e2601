//! `cargo xtask fuzz realm --calls N --seed S`: the hostile realm. The host runs the realm
//! payload in its fuzz mode (`crates/host/src/fuzz_realm.rs`, `crates/realm/src/fuzz.rs`):
//! N iterations of random RSI/PSCI/SMCCC calls, HVCs and SMCs, system registers, memory
//! accesses and fetches at every kind of IPA, FP/SVE/SME, debug and WFx instructions,
//! exceptions at EL0 and EL1, and MMIO to the host's devices. The run passes only if every
//! iteration ran, the realm saw no violated invariant, and afterwards the host tore the realm
//! down cleanly and the RMM still answered `RMI_VERSION`.
//!
//! The request reaches the host as four 64-bit words at [`REQUEST_ADDR`] (loaded with QEMU
//! `-device loader`): [`MAGIC`], [`MODE_REALM`], N, S.

use anyhow::{bail, Result};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use xtask::{images, qemu, setup, workspace_root};

/// Where the host reads the fuzz request.
pub const REQUEST_ADDR: u64 = 0x5fff_e000;
/// The request's first word ("CCAFUZZ!").
pub const MAGIC: u64 = u64::from_le_bytes(*b"CCAFUZZ!");
/// The request's mode: the hostile realm.
pub const MODE_REALM: u64 = 3;

/// How a hostile-realm run ended.
#[derive(Debug)]
pub struct Report {
    /// The host printed `RESULT: PASS`, the realm its passing line, and QEMU exited with 0.
    pub passed: bool,
    /// Iterations the realm reported.
    pub iterations: Option<u64>,
    /// Iterations per second the host measured.
    pub per_second: Option<u64>,
    /// QEMU was killed after the timeout.
    pub timed_out: bool,
    /// QEMU's exit status.
    pub exit_code: Option<i32>,
    /// Every line of the run.
    pub lines: Vec<String>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl Report {
    /// The realm's per-class lines (`fuzz class …`).
    pub fn class_lines(&self) -> Vec<&str> {
        self.lines
            .iter()
            .filter_map(|l| l.strip_prefix("[REALM] "))
            .filter(|l| l.starts_with("fuzz class "))
            .collect()
    }
}

/// The QEMU command for a hostile-realm run with the images in `dir`.
pub fn command(dir: &Path, calls: u64, seed: u64) -> Command {
    let mut cmd = qemu::command(
        &dir.join("el3.bin"),
        &dir.join("rmm.bin"),
        &dir.join("host.bin"),
        Some(&dir.join("realm.bin")),
        false,
    );
    for (i, word) in [MAGIC, MODE_REALM, calls, seed].into_iter().enumerate() {
        cmd.arg("-device").arg(format!(
            "loader,addr={:#x},data={word:#x},data-len=8",
            REQUEST_ADDR + 8 * i as u64
        ));
    }
    cmd
}

/// A timeout that grows with the number of iterations (the realm runs a few thousand per
/// second on QEMU).
pub fn timeout_for(calls: u64) -> Duration {
    Duration::from_secs(120 + calls / 200)
}

fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// Runs the hostile realm with the images in `dir` and reads the verdict from the output.
pub fn run_images(
    dir: &Path,
    calls: u64,
    seed: u64,
    timeout: Duration,
    echo: bool,
) -> Result<Report> {
    let mut cmd = command(dir, calls, seed);
    let out = qemu::run_command(&mut cmd, timeout, echo)?;
    let host_pass = out
        .lines
        .iter()
        .any(|l| l.starts_with("[HOST] RESULT: PASS (hostile realm"));
    let realm_pass = out
        .lines
        .iter()
        .any(|l| l.starts_with("[REALM] ") && l.contains("FUZZ REALM RESULT: PASS"));
    let summary = out
        .lines
        .iter()
        .find(|l| l.starts_with("[HOST] FUZZ REALM: iterations "));
    let iterations = summary.and_then(|l| number_after(l, "iterations "));
    let per_second = summary.and_then(|l| {
        let (_, tail) = l.rsplit_once(", ")?;
        number_after(tail, "")
    });
    Ok(Report {
        passed: out.exit_code == Some(0) && host_pass && realm_pass && iterations == Some(calls),
        iterations,
        per_second,
        timed_out: out.timed_out,
        exit_code: out.exit_code,
        lines: out.lines,
        seconds: out.seconds,
    })
}

/// `cargo xtask fuzz realm --calls N --seed S`: builds the images, runs, prints the verdict.
pub fn run(calls: u64, seed: u64) -> Result<()> {
    let root = workspace_root();
    let tc = setup::ensure_all()?;
    let imgs = images::build_all(&root, &tc)?;
    setup::step(&format!(
        "hostile realm: {calls} iterations, seed {seed:#x} (QEMU timeout {} s)",
        timeout_for(calls).as_secs()
    ));
    let r = run_images(&imgs.dir, calls, seed, timeout_for(calls), true)?;
    for l in r.class_lines() {
        eprintln!("    {l}");
    }
    if r.passed {
        eprintln!(
            "hostile realm PASSED: {} iterations, {} per second, {:.1} s",
            r.iterations.unwrap_or(0),
            r.per_second.unwrap_or(0),
            r.seconds
        );
        Ok(())
    } else if r.timed_out {
        bail!(
            "hostile realm FAILED: QEMU did not finish within {} s",
            timeout_for(calls).as_secs()
        )
    } else {
        bail!(
            "hostile realm FAILED: {} of {calls} iterations reported, QEMU exit status {:?}",
            r.iterations.map_or("no".to_string(), |n| n.to_string()),
            r.exit_code
        )
    }
}
