//! `cargo xtask fuzz host` and `cargo xtask fuzz fault`: the hostile host against the real
//! firmware on QEMU, and the deliberate fatal faults that prove a fault in EL3 or the RMM
//! ends the run with a report and a failure status.
//!
//! The request reaches the host as four 64-bit words at [`REQUEST_ADDR`], written into guest
//! RAM with QEMU `-device loader` before the boot: [`MAGIC`], the mode ([`MODE_HOST`] or
//! [`MODE_FAULT`]), the number of calls (or the kind of fault) and the seed. The host side is
//! `crates/host/src/fuzz.rs`; the fuzzer itself `host_core::fuzz`.
//!
//! This file uses only the `xtask` library and `std` (its errors are strings), so the
//! end-to-end tests include it with `#[path]` and drive the same runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use xtask::qemu::{self, Outcome};
use xtask::{images, setup, workspace_root};

/// Errors are messages (the `xtask` binary turns them into its own).
pub type Result<T> = std::result::Result<T, String>;

/// Returns early with a formatted message.
macro_rules! bail {
    ($($arg:tt)*) => { return Err(format!($($arg)*)) };
}

/// The message of any error, with its causes.
fn msg<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e:#}")
}

/// Where the host reads the request.
pub const REQUEST_ADDR: u64 = 0x5fff_e000;
/// The request's first word ("CCAFUZZ!").
pub const MAGIC: u64 = u64::from_le_bytes(*b"CCAFUZZ!");
/// Mode: the hostile host.
pub const MODE_HOST: u64 = 1;
/// Mode: a deliberate fatal fault.
pub const MODE_FAULT: u64 = 2;

/// The marker in front of EL3's test hook word (`CCA_EL3_TEST_HOOKS` in
/// `crates/el3/src/monitor.rs`).
pub const HOOK_MARKER: &[u8; 16] = b"CCA-EL3-TESTHOOK";
/// The value that enables the hooks.
pub const HOOKS_ON: &[u8; 8] = b"HOOKS-ON";
/// The marker in front of the RMM's test hook word (`CCA_RMM_TEST_HOOKS` in
/// `crates/rmm/src/platform.rs`).
pub const RMM_HOOK_MARKER: &[u8; 16] = b"CCA-RMM-TESTHOOK";

/// The `-device loader` arguments that leave a request for the host.
pub fn request_devices(mode: u64, arg: u64, seed: u64) -> Vec<String> {
    [MAGIC, mode, arg, seed]
        .into_iter()
        .enumerate()
        .map(|(i, word)| {
            format!(
                "loader,addr={:#x},data={word:#x},data-len=8",
                REQUEST_ADDR + 8 * i as u64
            )
        })
        .collect()
}

/// The QEMU command of a run with the images in `dir` (EL3 from `el3`), the payload realm
/// loaded, and the request: 2 CPUs, 2 GiB, as every run.
pub fn command(dir: &Path, el3: &Path, mode: u64, arg: u64, seed: u64) -> Command {
    command_with_rmm(dir, el3, &dir.join("rmm.bin"), mode, arg, seed)
}

/// [`command`] with the RMM image `rmm`.
pub fn command_with_rmm(
    dir: &Path,
    el3: &Path,
    rmm: &Path,
    mode: u64,
    arg: u64,
    seed: u64,
) -> Command {
    let mut cmd = qemu::command(
        el3,
        rmm,
        &dir.join("host.bin"),
        Some(&dir.join("realm.bin")),
        false,
    );
    for d in request_devices(mode, arg, seed) {
        cmd.arg("-device").arg(d);
    }
    cmd
}

/// The number after `key` in `line` (decimal, or hexadecimal after `0x`).
fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    if let Some(hex) = rest.strip_prefix("0x") {
        let digits: String = hex.chars().take_while(char::is_ascii_hexdigit).collect();
        return u64::from_str_radix(&digits, 16).ok();
    }
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// What a hostile-host run reported, and the verdict.
#[derive(Debug, Default)]
pub struct HostReport {
    /// Calls the host made (its `FUZZ RESULT` line).
    pub calls: Option<u64>,
    /// Calls per second the host measured on the machine's counter.
    pub per_second: Option<u64>,
    /// CPUs that fuzzed.
    pub cpus: Option<u64>,
    /// Findings the host counted.
    pub findings: Option<u64>,
    /// The finding lines, with their registers.
    pub finding_lines: Vec<String>,
    /// The sweep's line (absent: the sweep did not run to its end).
    pub sweep: Option<String>,
    /// The per-CPU statistics lines.
    pub stats: Vec<String>,
    /// Checks of the canonical realm after the fuzzing that failed, or `None` if it did not
    /// run.
    pub canonical_failed: Option<usize>,
    /// Why the run did not pass (empty: it passed).
    pub problems: Vec<String>,
    /// QEMU's exit status.
    pub exit_code: Option<i32>,
    /// Wall-clock seconds of the QEMU run.
    pub seconds: f64,
}

impl HostReport {
    /// True when nothing went wrong.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Reads the verdict of a hostile-host run of `calls` calls from its output: it passes only
/// if QEMU powered off with status 0, the host made at least `calls` calls, counted no
/// finding and printed none, the end-of-run sweep ran and left nothing stuck, the canonical
/// realm passed every check, and the host's verdict is PASS.
pub fn judge_host(out: &Outcome, calls: u64) -> HostReport {
    let mut r = HostReport {
        exit_code: out.exit_code,
        seconds: out.seconds,
        ..HostReport::default()
    };
    let host: Vec<&str> = out
        .lines
        .iter()
        .filter_map(|l| l.strip_prefix("[HOST] "))
        .collect();
    if let Some(l) = host.iter().find(|l| l.starts_with("FUZZ RESULT: ")) {
        r.calls = number_after(l, "FUZZ RESULT: ");
        r.per_second = number_after(l, " s (");
        r.cpus = number_after(l, " calls/s) on ");
        r.findings = l.rsplit_once(", ").and_then(|(_, t)| number_after(t, ""));
    }
    r.finding_lines = host
        .iter()
        .filter(|l| l.contains("FINDING"))
        .map(|l| l.to_string())
        .collect();
    r.stats = host
        .iter()
        .filter(|l| l.starts_with("FUZZ CPU "))
        .map(|l| l.to_string())
        .collect();
    r.sweep = host
        .iter()
        .find(|l| l.starts_with("FUZZ sweep: "))
        .map(|l| l.to_string());
    let canonical = host
        .iter()
        .position(|l| *l == "-- the canonical realm after the hostile host");
    r.canonical_failed = canonical.map(|i| {
        host[i..]
            .iter()
            .take_while(|l| !l.starts_with("-- GIC") && !l.starts_with("RESULT: "))
            .filter(|l| l.contains("FAILED"))
            .count()
    });

    let p = &mut r.problems;
    if out.timed_out {
        p.push("QEMU did not finish in time".into());
    } else if out.exit_code != Some(0) {
        p.push(format!("QEMU exit status {:?}", out.exit_code));
    }
    match r.calls {
        None => p.push("the host printed no FUZZ RESULT line".into()),
        Some(n) if n < calls => p.push(format!("only {n} of {calls} calls ran")),
        Some(_) => {}
    }
    match r.findings {
        Some(0) => {}
        Some(n) => p.push(format!("{n} finding(s)")),
        None => p.push("the host did not count its findings".into()),
    }
    if !r.finding_lines.is_empty() {
        p.push(format!("{} finding line(s)", r.finding_lines.len()));
    }
    match &r.sweep {
        None => p.push("no end-of-run sweep".into()),
        Some(l) if !l.ends_with("0 realms and 0 granules stuck") => {
            p.push(format!("the sweep left objects behind: {l}"))
        }
        Some(_) => {}
    }
    match r.canonical_failed {
        None => p.push("the canonical realm did not run after the fuzzing".into()),
        Some(0) => {}
        Some(n) => p.push(format!("{n} check(s) of the canonical realm failed")),
    }
    if !host
        .iter()
        .any(|l| l.starts_with("RESULT: PASS (hostile host"))
    {
        p.push("the host's verdict is not PASS".into());
    }
    if host.iter().any(|l| l.contains("  FAILED")) {
        p.push("a host check FAILED".into());
    }
    r
}

/// A QEMU timeout for `calls` calls: a few thousand run per second, with a generous margin.
pub fn host_timeout(calls: u64) -> Duration {
    Duration::from_secs(240 + calls / 500)
}

/// Runs the hostile host with the images in `dir`.
pub fn run_host_images(
    dir: &Path,
    calls: u64,
    seed: u64,
    timeout: Duration,
    echo: bool,
) -> Result<(HostReport, Outcome)> {
    let mut cmd = command(dir, &dir.join("el3.bin"), MODE_HOST, calls, seed);
    let out = if echo {
        qemu::run_command(&mut cmd, timeout, true)
    } else {
        // The host's progress lines (every few seconds), not the whole console.
        qemu::run_command_showing(&mut cmd, timeout, &["FUZZ progress"])
    }
    .map_err(msg("running QEMU"))?;
    Ok((judge_host(&out, calls), out))
}

/// `cargo xtask fuzz host --calls N --seed S`: builds the images, runs, prints the counts and
/// every finding; fails on any finding, a missing sweep or a failed canonical realm.
pub fn host(calls: u64, seed: u64) -> Result<()> {
    if calls == 0 {
        bail!("--calls must be at least 1");
    }
    let root = workspace_root();
    let tc = setup::ensure_all().map_err(msg("setup"))?;
    let imgs = images::build_all(&root, &tc).map_err(msg("building the images"))?;
    let timeout = host_timeout(calls);
    setup::step(&format!(
        "hostile host: {calls} RMI calls, seed {seed:#x}, on 2 CPUs (QEMU timeout {} s)",
        timeout.as_secs()
    ));
    let (r, out) = run_host_images(&imgs.dir, calls, seed, timeout, false)?;
    for l in out
        .lines
        .iter()
        .filter(|l| l.starts_with("[HOST]") && !l.contains("DEBUG"))
        .filter(|l| l.contains("FUZZ") || l.contains("RESULT") || l.contains("FAILED"))
    {
        eprintln!("    {l}");
    }
    for l in out
        .lines
        .iter()
        .filter(|l| l.contains("FATAL") || l.contains("PANIC"))
    {
        eprintln!("    {l}");
    }
    eprintln!(
        "calls run: {}, calls per second: {}, findings: {}, QEMU {:.1} s, exit status {:?}",
        r.calls.map_or("?".into(), |n| n.to_string()),
        r.per_second.map_or("?".into(), |n| n.to_string()),
        r.findings.map_or("?".into(), |n| n.to_string()),
        r.seconds,
        r.exit_code
    );
    for f in &r.finding_lines {
        eprintln!("FINDING: {f}");
    }
    if r.passed() {
        eprintln!("hostile host PASSED");
        Ok(())
    } else {
        let log = root.join("target/fuzz/host.log");
        if let Some(d) = log.parent() {
            std::fs::create_dir_all(d).map_err(msg("target/fuzz"))?;
        }
        std::fs::write(&log, out.lines.join("\n")).map_err(msg("writing the log"))?;
        bail!(
            "hostile host FAILED: {} (the whole output is in {})",
            r.problems.join("; "),
            log.display()
        )
    }
}

/// A deliberate fatal fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// EL3 makes a delegated granule inaccessible to every world; the RMM's scrub of it on
    /// undelegation takes a granule protection fault at R-EL2.
    Rmm,
    /// EL3 reads a delegated granule through its Non-secure map: a granule protection fault
    /// in EL3.
    El3,
    /// EL3 panics.
    El3Panic,
    /// The RMM panics (an RMM image with its test hook enabled, on
    /// `cca_abi::rmi::TEST_HOOK_PANIC`).
    RmmPanic,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 4] = [
        FaultKind::Rmm,
        FaultKind::El3,
        FaultKind::El3Panic,
        FaultKind::RmmPanic,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Rmm => "rmm",
            FaultKind::El3 => "el3",
            FaultKind::El3Panic => "el3-panic",
            FaultKind::RmmPanic => "rmm-panic",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<FaultKind> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The request's argument (the host's kind number).
    pub fn code(self) -> u64 {
        match self {
            FaultKind::Rmm => 1,
            FaultKind::El3 => 2,
            FaultKind::El3Panic => 3,
            FaultKind::RmmPanic => 4,
        }
    }

    /// The console label of the world that must report the fault, and its syndrome
    /// registers' suffix.
    pub fn world(self) -> (&'static str, &'static str) {
        match self {
            FaultKind::Rmm | FaultKind::RmmPanic => ("RMM", "EL2"),
            FaultKind::El3 | FaultKind::El3Panic => ("EL3", "EL3"),
        }
    }

    /// The QEMU exit status that world's fatal path ends the run with.
    pub fn exit_status(self) -> i32 {
        match self {
            FaultKind::Rmm | FaultKind::RmmPanic => 0xE2,
            FaultKind::El3 | FaultKind::El3Panic => 0xE3,
        }
    }
}

/// Enables the test hooks in an EL3 image: writes [`HOOKS_ON`] over the word after
/// [`HOOK_MARKER`]. The marker must occur exactly once and its word must be zero.
pub fn patch_hooks(image: &mut [u8]) -> Result<()> {
    patch_hooks_after(image, HOOK_MARKER, "EL3")
}

/// Enables the test hook of an image whose hook word follows `marker` (EL3's
/// [`HOOK_MARKER`], the RMM's [`RMM_HOOK_MARKER`]); `what` names the image in errors.
pub fn patch_hooks_after(image: &mut [u8], marker: &[u8; 16], what: &str) -> Result<()> {
    let found: Vec<usize> = image
        .windows(marker.len())
        .enumerate()
        .filter(|(_, w)| *w == marker)
        .map(|(i, _)| i)
        .collect();
    let [at] = found[..] else {
        bail!(
            "the {what} image has {} test hook markers (expected exactly one)",
            found.len()
        );
    };
    let word = at + marker.len();
    let Some(w) = image.get_mut(word..word + 8) else {
        bail!("the {what} image ends inside its test hook word");
    };
    if w != [0; 8] {
        bail!("the {what} image's test hook word is not zero: not a normal image");
    }
    w.copy_from_slice(HOOKS_ON);
    Ok(())
}

/// Writes a copy of the EL3 image `el3` with its hooks enabled to `out` (the normal image
/// is never changed).
pub fn hooked_el3(el3: &Path, out: &Path) -> Result<()> {
    hooked_image(el3, out, patch_hooks)
}

/// Writes a copy of `src` with its hook enabled by `patch` to `out`.
fn hooked_image(src: &Path, out: &Path, patch: impl Fn(&mut [u8]) -> Result<()>) -> Result<()> {
    let name = src.display().to_string();
    let mut image = std::fs::read(src).map_err(msg(&name))?;
    patch(&mut image).map_err(msg(&name))?;
    let name = out.display().to_string();
    if let Some(d) = out.parent() {
        std::fs::create_dir_all(d).map_err(msg(&name))?;
    }
    std::fs::write(out, image).map_err(msg(&name))
}

/// What a deliberate-fault run reported.
#[derive(Debug, Default)]
pub struct FaultReport {
    /// The halt report (the world's `FATAL:` line).
    pub report: Option<String>,
    /// The panic line, for a panic.
    pub panic: Option<String>,
    /// The syndrome the report named.
    pub esr: Option<u64>,
    /// The fault address the report named.
    pub far: Option<u64>,
    /// The return address the report named.
    pub elr: Option<u64>,
    /// Why the run is not the expected halt (empty: it is).
    pub problems: Vec<String>,
    /// QEMU's exit status.
    pub exit_code: Option<i32>,
}

impl FaultReport {
    /// True when the run ended as it must: halted with a report and a failure status.
    pub fn as_expected(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Reads a deliberate-fault run: it must end with the faulting world's `FATAL:` report
/// naming its syndrome (ESR), return address (ELR) and fault address (FAR) — a granule
/// protection fault at `granule` for the two faults, the panic message and location for the
/// panic — QEMU must exit with that world's failure status, and neither the host nor anyone
/// else may have carried on to a verdict.
pub fn judge_fault(kind: FaultKind, out: &Outcome, granule: u64) -> FaultReport {
    let (world, el) = kind.world();
    let tag = format!("[{world}] ");
    let mut r = FaultReport {
        exit_code: out.exit_code,
        ..FaultReport::default()
    };
    r.report = out
        .lines
        .iter()
        .filter_map(|l| l.strip_prefix(tag.as_str()))
        .find(|l| l.starts_with("FATAL: "))
        .map(str::to_string);
    r.panic = out
        .lines
        .iter()
        .filter_map(|l| l.strip_prefix(tag.as_str()))
        .find(|l| l.starts_with("PANIC on CPU "))
        .map(str::to_string);
    if let Some(l) = &r.report {
        r.esr = number_after(l, &format!("ESR_{el}="));
        r.elr = number_after(l, &format!("ELR_{el}="));
        r.far = number_after(l, &format!("FAR_{el}="));
    }
    let host_reached_hook = out.lines.iter().any(|l| l.starts_with("[HOST] FAULT: "));
    let p = &mut r.problems;
    if out.timed_out {
        p.push("QEMU did not halt: killed after the timeout".into());
    }
    if !host_reached_hook {
        p.push("the host never asked for the fault".into());
    }
    match &r.report {
        None => p.push(format!("no FATAL report from {world}")),
        Some(l) => {
            if r.esr.is_none() || r.elr.is_none() || r.far.is_none() {
                p.push(format!("the report does not name ESR, ELR and FAR: {l}"));
            }
        }
    }
    match kind {
        FaultKind::Rmm | FaultKind::El3 => {
            let ec = r.esr.map(|e| (e >> 26) & 0x3f);
            let fsc = r.esr.map(|e| e & 0x3f);
            // A data abort taken at the same EL (EL2 for the RMM, EL3) with a granule
            // protection fault status (not on a table walk: FSC 0b101000).
            if ec != Some(0x25) || fsc != Some(0x28) {
                p.push(format!(
                    "the syndrome is not a granule protection fault of a data access: ESR {:?}",
                    r.esr.map(|e| format!("{e:#x}"))
                ));
            }
            if kind == FaultKind::El3 && r.far != Some(granule) {
                p.push(format!(
                    "FAR {:?} is not the granule {granule:#x}",
                    r.far.map(|f| format!("{f:#x}"))
                ));
            }
            if kind == FaultKind::Rmm && r.far.map(|f| f & 0xfff) != Some(0) {
                p.push(format!(
                    "FAR {:?} is not the start of a granule (the scrub's first store)",
                    r.far.map(|f| format!("{f:#x}"))
                ));
            }
            if !r
                .report
                .as_deref()
                .is_some_and(|l| l.contains("GRANULE PROTECTION FAULT"))
            {
                p.push("the report does not say granule protection fault".into());
            }
        }
        FaultKind::El3Panic | FaultKind::RmmPanic => {
            // `PANIC on CPU n: panicked at FILE:LINE:COL:`, the message on the next line.
            let message = out
                .lines
                .iter()
                .any(|l| l.starts_with(tag.as_str()) && l.contains("deliberate panic"));
            match &r.panic {
                None => p.push(format!("no PANIC line from {world}")),
                Some(l) if !l.contains(".rs:") => {
                    p.push(format!("the panic line names no location: {l}"))
                }
                Some(_) if !message => p.push("the panic's message was not printed".into()),
                Some(_) => {}
            }
            let says = if kind == FaultKind::El3Panic {
                "panic in EL3 while serving"
            } else {
                "panic in the RMM (Realm world, EL2)"
            };
            if !r.report.as_deref().is_some_and(|l| l.contains(says)) {
                p.push(format!("the report does not say `{says}`"));
            }
        }
    }
    if out.exit_code != Some(kind.exit_status()) {
        p.push(format!(
            "QEMU exit status {:?}, expected {:#x} (the {world}'s fatal path)",
            out.exit_code,
            kind.exit_status()
        ));
    }
    if out.lines.iter().any(|l| l.contains("RESULT: PASS")) {
        p.push("a RESULT: PASS was printed".into());
    }
    if out
        .lines
        .iter()
        .any(|l| l.contains("did not fault") || l.contains("did not panic"))
    {
        p.push("the host carried on after the fault".into());
    }
    r
}

/// The granule the host's fault mode delegates and aims the hook at
/// (`crates/host/src/fuzz.rs`, the first granule of its pool).
pub const FAULT_GRANULE: u64 = 0x9000_0000;

/// Runs deliberate fault `kind` with the images in `dir`; the EL3 image with hooks is
/// written to `work` (never over the normal image).
pub fn run_fault_images(
    dir: &Path,
    work: &Path,
    kind: FaultKind,
    echo: bool,
) -> Result<(FaultReport, Outcome)> {
    let el3: PathBuf = work.join("el3-test-hooks.bin");
    hooked_el3(&dir.join("el3.bin"), &el3)?;
    let mut cmd = command(dir, &el3, MODE_FAULT, kind.code(), 0);
    if kind == FaultKind::RmmPanic {
        let rmm = work.join("rmm-test-hooks.bin");
        hooked_image(&dir.join("rmm.bin"), &rmm, |img| {
            patch_hooks_after(img, RMM_HOOK_MARKER, "RMM")
        })?;
        cmd = command_with_rmm(dir, &el3, &rmm, MODE_FAULT, kind.code(), 0);
    }
    let out =
        qemu::run_command(&mut cmd, Duration::from_secs(120), echo).map_err(msg("running QEMU"))?;
    Ok((judge_fault(kind, &out, FAULT_GRANULE), out))
}

/// `cargo xtask fuzz fault --kind K`: builds the images, runs with the hooks enabled in a
/// copy of EL3, and checks the run halts with a report and a failure status.
pub fn fault(kind: FaultKind) -> Result<()> {
    let root = workspace_root();
    let tc = setup::ensure_all().map_err(msg("setup"))?;
    let imgs = images::build_all(&root, &tc).map_err(msg("building the images"))?;
    setup::step(&format!(
        "deliberate fatal fault `{}` (images with test hooks in target/fuzz: el3-test-hooks.bin, and rmm-test-hooks.bin for rmm-panic)",
        kind.name()
    ));
    let (r, out) = run_fault_images(&imgs.dir, &root.join("target/fuzz"), kind, false)?;
    for l in out.lines.iter().filter(|l| {
        l.contains("FAULT") || l.contains("FATAL") || l.contains("PANIC") || l.contains("TEST HOOK")
    }) {
        eprintln!("    {l}");
    }
    eprintln!(
        "run result: {} (QEMU exit status {:?})",
        if out.exit_code == Some(0) {
            "PASS"
        } else {
            "FAIL"
        },
        r.exit_code
    );
    if r.as_expected() {
        eprintln!(
            "deliberate fault `{}` ended the run as it must: halted by {} with ESR {:#x}, FAR {:#x}, result FAIL",
            kind.name(),
            kind.world().0,
            r.esr.unwrap_or(0),
            r.far.unwrap_or(0)
        );
        Ok(())
    } else {
        for l in &out.lines {
            eprintln!("{l}");
        }
        bail!(
            "deliberate fault `{}` did not end the run as it must: {}",
            kind.name(),
            r.problems.join("; ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(lines: &[&str], exit_code: Option<i32>) -> Outcome {
        Outcome {
            exit_code,
            timed_out: false,
            lines: lines.iter().map(|s| s.to_string()).collect(),
            seconds: 1.0,
        }
    }

    const GOOD_HOST: &[&str] = &[
        "[HOST] -- hostile host: 100 structured-random RMI calls, seed 0x1, on 2 CPU(s)",
        "[HOST] FUZZ CPU 0: 70 calls (10 garbage), 0 findings",
        "[HOST] FUZZ sweep: 1 realms, 0 RECs, 3 operations, 4 RTTs destroyed; 231 granules undelegated, 4022 read back scrubbed; 0 realms and 0 granules stuck",
        "[HOST] FUZZ RESULT: 104 calls in 5.025 s (3980 calls/s) on 2 CPU(s), 0 findings",
        "[HOST] -- the canonical realm after the hostile host",
        "[HOST]   ok: REALM_DESTROY returns RMI_SUCCESS",
        "[HOST] -- GIC virtual CPU interface",
        "[HOST] RESULT: PASS (hostile host: 104 calls, 0 findings; canonical realm 91 checks; realm: PASS)",
    ];

    #[test]
    fn a_clean_host_run_passes_and_its_counts_are_read() {
        let r = judge_host(&outcome(GOOD_HOST, Some(0)), 100);
        assert!(r.passed(), "{:?}", r.problems);
        assert_eq!(r.calls, Some(104));
        assert_eq!(r.per_second, Some(3980));
        assert_eq!(r.cpus, Some(2));
        assert_eq!(r.findings, Some(0));
        assert_eq!(r.canonical_failed, Some(0));
        assert_eq!(r.stats.len(), 1);
    }

    fn without(i: usize) -> Vec<&'static str> {
        let mut v = GOOD_HOST.to_vec();
        v.remove(i);
        v
    }

    fn replaced(i: usize, line: &'static str) -> Vec<&'static str> {
        let mut v = GOOD_HOST.to_vec();
        v[i] = line;
        v
    }

    #[test]
    fn every_failure_of_a_host_run_is_caught() {
        let fails = |lines: &[&str], code: Option<i32>, calls: u64, what: &str| {
            let r = judge_host(&outcome(lines, code), calls);
            assert!(!r.passed(), "{what} passed");
            assert!(
                r.problems.iter().any(|p| p.contains(what)),
                "{what}: {:?}",
                r.problems
            );
        };
        fails(GOOD_HOST, Some(1), 100, "exit status");
        fails(GOOD_HOST, None, 100, "exit status");
        fails(GOOD_HOST, Some(0), 105, "only 104 of 105");
        fails(&without(3), Some(0), 100, "no FUZZ RESULT");
        fails(&without(2), Some(0), 100, "no end-of-run sweep");
        fails(&without(4), Some(0), 100, "canonical realm did not run");
        fails(&without(7), Some(0), 100, "verdict is not PASS");
        fails(
            &replaced(
                3,
                "[HOST] FUZZ RESULT: 104 calls in 5.025 s (3980 calls/s) on 2 CPU(s), 2 findings",
            ),
            Some(0),
            100,
            "2 finding(s)",
        );
        fails(
            &replaced(
                1,
                "[HOST] FUZZ CPU 1 FINDING at call 7: the RMM answered garbage",
            ),
            Some(0),
            100,
            "finding line",
        );
        fails(
            &replaced(
                2,
                "[HOST] FUZZ sweep: 1 realms; 0 realms and 3 granules stuck",
            ),
            Some(0),
            100,
            "left objects behind",
        );
        fails(
            &replaced(5, "[HOST]   FAILED: REALM_DESTROY returns RMI_SUCCESS"),
            Some(0),
            100,
            "canonical realm failed",
        );
        let mut timed = outcome(GOOD_HOST, None);
        timed.timed_out = true;
        let r = judge_host(&timed, 100);
        assert!(r.problems.iter().any(|p| p.contains("in time")));
    }

    #[test]
    fn numbers_are_read_in_decimal_and_hex() {
        assert_eq!(number_after("a=12 b", "a="), Some(12));
        assert_eq!(
            number_after("ESR_EL3=0x9600002f (x)", "ESR_EL3="),
            Some(0x9600_002f)
        );
        assert_eq!(number_after("a=x", "a="), None);
        assert_eq!(number_after("b=1", "a="), None);
        assert_eq!(number_after("a=0xzz", "a="), None);
    }

    #[test]
    fn requests_are_four_words_at_the_request_address() {
        let d = request_devices(MODE_HOST, 1000, 0x5eed);
        assert_eq!(
            d,
            [
                "loader,addr=0x5fffe000,data=0x215a5a5546414343,data-len=8",
                "loader,addr=0x5fffe008,data=0x1,data-len=8",
                "loader,addr=0x5fffe010,data=0x3e8,data-len=8",
                "loader,addr=0x5fffe018,data=0x5eed,data-len=8",
            ]
        );
    }

    #[test]
    fn the_hook_word_is_patched_once_and_only_in_a_normal_image() {
        let mut img = vec![0xAAu8; 64];
        img[10..26].copy_from_slice(HOOK_MARKER);
        img[26..34].fill(0);
        patch_hooks(&mut img).unwrap();
        assert_eq!(&img[26..34], HOOKS_ON);
        assert!(img[..10].iter().chain(&img[34..]).all(|&b| b == 0xAA));
        // Already patched (or garbage in the word): refused.
        assert!(patch_hooks(&mut img).is_err());
        // No marker, two markers, a marker at the very end.
        assert!(patch_hooks(&mut [0u8; 64]).is_err());
        let mut two = vec![0u8; 80];
        two[0..16].copy_from_slice(HOOK_MARKER);
        two[40..56].copy_from_slice(HOOK_MARKER);
        assert!(patch_hooks(&mut two).is_err());
        let mut end = vec![0u8; 20];
        end[4..20].copy_from_slice(HOOK_MARKER);
        assert!(patch_hooks(&mut end).is_err());
    }

    #[test]
    fn fault_kinds_round_trip_their_names() {
        for k in FaultKind::ALL {
            assert_eq!(FaultKind::parse(k.name()), Some(k));
        }
        assert_eq!(FaultKind::parse("rmm-panic"), Some(FaultKind::RmmPanic));
        assert_eq!(FaultKind::parse("rmm-fault"), None);
        assert_eq!(FaultKind::Rmm.code(), 1);
        assert_eq!(FaultKind::El3Panic.world(), ("EL3", "EL3"));
    }

    const EL3_FAULT: &[&str] = &[
        "[HOST] FAULT: EL3 reads the delegated granule 0x90000000 through its Non-secure map",
        "[EL3] TEST HOOK: EL3 reads 0x90000000 through its Non-secure map of DRAM",
        "[EL3] FATAL: synchronous exception in EL3: ESR_EL3=0x96000028 (data abort from the same EL) [GRANULE PROTECTION FAULT] ELR_EL3=0x1234 FAR_EL3=0x90000000",
    ];

    #[test]
    fn a_halt_report_with_syndrome_and_address_is_the_expected_end() {
        let r = judge_fault(FaultKind::El3, &outcome(EL3_FAULT, Some(0xE3)), 0x9000_0000);
        assert!(r.as_expected(), "{:?}", r.problems);
        assert_eq!(r.esr, Some(0x9600_0028));
        assert_eq!(r.far, Some(0x9000_0000));
        assert_eq!(r.elr, Some(0x1234));
    }

    #[test]
    fn a_fault_run_that_continues_or_exits_cleanly_is_caught() {
        let bad = |lines: &[&str], code: Option<i32>, what: &str| {
            let r = judge_fault(FaultKind::El3, &outcome(lines, code), 0x9000_0000);
            assert!(
                r.problems.iter().any(|p| p.contains(what)),
                "{what}: {:?}",
                r.problems
            );
        };
        bad(EL3_FAULT, Some(0), "exit status");
        bad(EL3_FAULT, Some(0xE2), "exit status");
        bad(&EL3_FAULT[1..], Some(0xE3), "never asked");
        bad(&EL3_FAULT[..2], Some(0xE3), "no FATAL report");
        let mut more = EL3_FAULT.to_vec();
        more.push("[HOST] RESULT: FAIL (EL3 did not fault: hook answered 0x0)");
        bad(&more, Some(0xE3), "carried on");
        let other = [
            EL3_FAULT[0],
            "[EL3] FATAL: synchronous exception in EL3: ESR_EL3=0x96000010 (data abort from the same EL) ELR_EL3=0x1 FAR_EL3=0x90000008",
        ];
        bad(&other, Some(0xE3), "not a granule protection fault");
        bad(&other, Some(0xE3), "is not the granule");
        let nofar = [
            EL3_FAULT[0],
            "[EL3] FATAL: synchronous exception in EL3: ESR_EL3=0x96000028",
        ];
        bad(&nofar, Some(0xE3), "does not name ESR, ELR and FAR");
        // The RMM's report is required from the RMM, not EL3.
        let r = judge_fault(FaultKind::Rmm, &outcome(EL3_FAULT, Some(0xE2)), 0x9000_0000);
        assert!(r
            .problems
            .iter()
            .any(|p| p.contains("no FATAL report from RMM")));
        // A panic needs its PANIC line with message and location.
        let r = judge_fault(FaultKind::El3Panic, &outcome(EL3_FAULT, Some(0xE3)), 0);
        assert!(r.problems.iter().any(|p| p.contains("no PANIC line")));
        let panic = [
            "[HOST] FAULT: EL3 panics",
            "[EL3] PANIC on CPU 0: panicked at crates/el3/src/monitor.rs:96:14:",
            "[EL3] deliberate panic requested through CCA_SIP_TEST_HOOK",
            "[EL3] FATAL: panic in EL3 while serving the Non-secure world's trap: ESR_EL3=0x5e000000 (SMC from AArch64) ELR_EL3=0x60003e54 FAR_EL3=0x0",
        ];
        let r = judge_fault(FaultKind::El3Panic, &outcome(&panic, Some(0xE3)), 0);
        assert!(r.as_expected(), "{:?}", r.problems);
        assert_eq!(r.esr, Some(0x5e00_0000));
        let r = judge_fault(FaultKind::El3Panic, &outcome(&panic[..2], Some(0xE3)), 0);
        assert!(r
            .problems
            .iter()
            .any(|p| p.contains("message was not printed")));
        let no_loc = [panic[0], "[EL3] PANIC on CPU 0: oops", panic[2], panic[3]];
        let r = judge_fault(FaultKind::El3Panic, &outcome(&no_loc, Some(0xE3)), 0);
        assert!(r.problems.iter().any(|p| p.contains("names no location")));
        let r = judge_fault(FaultKind::El3Panic, &outcome(&panic[..3], Some(0xE3)), 0);
        assert!(r.problems.iter().any(|p| p.contains("no FATAL report")));
    }

    #[test]
    fn an_rmm_panic_is_judged_on_the_rmms_lines() {
        let panic = [
            "[HOST] FAULT: the RMM panics (its test hook's function ID)",
            "[RMM] PANIC on CPU 0: panicked at crates/rmm/src/platform.rs:275:13:",
            "[RMM] deliberate panic requested through the RMM's test hook",
            "[RMM] FATAL: panic in the RMM (Realm world, EL2); last exception taken to R-EL2: ESR_EL2=0x5e000000 (SMC from AArch64) ELR_EL2=0x40102000 FAR_EL2=0x0",
        ];
        let r = judge_fault(FaultKind::RmmPanic, &outcome(&panic, Some(0xE2)), 0);
        assert!(r.as_expected(), "{:?}", r.problems);
        // EL3's panic lines are not the RMM's, and the RMM's status is 0xE2.
        let r = judge_fault(FaultKind::RmmPanic, &outcome(&panic, Some(0xE3)), 0);
        assert!(r.problems.iter().any(|p| p.contains("exit status")));
        let el3 = panic.map(|l| l.replace("[RMM]", "[EL3]"));
        let el3: Vec<&str> = el3.iter().map(String::as_str).collect();
        let r = judge_fault(FaultKind::RmmPanic, &outcome(&el3, Some(0xE2)), 0);
        assert!(r
            .problems
            .iter()
            .any(|p| p.contains("no PANIC line from RMM")));
    }
}
