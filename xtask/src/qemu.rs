//! Boots the stack on QEMU and watches what each world prints.

use crate::images::{elf_to_raw, Images};
use crate::setup::step;
use crate::RunArgs;
use anyhow::{Context, Result};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Where the host image is loaded (TF-A's BL33 address on QEMU).
pub const HOST_ADDR: u64 = 0x6000_0000;
/// Where the RMM image is loaded (TF-A's RMM_BASE on QEMU).
pub const RMM_ADDR: u64 = 0x4010_0000;
/// Where the realm payload image is loaded, in the host's Non-secure DRAM; the host loads it
/// into a realm as measured data at IPA 0.
pub const PAYLOAD_ADDR: u64 = 0x8A00_0000;
/// Where its size in bytes is written, as a 64-bit little-endian word. The host reads 0 (the
/// memory QEMU gives it is zeroed) when there is no payload, and then skips the realm run
/// with a failure.
pub const PAYLOAD_SIZE_ADDR: u64 = 0x89FF_F000;

/// How a run ended.
pub struct Outcome {
    /// QEMU's exit code (the status passed to EL3's exit path), if it exited by itself.
    pub exit_code: Option<i32>,
    /// True when QEMU was killed after the timeout.
    pub timed_out: bool,
    /// Every line QEMU printed.
    pub lines: Vec<String>,
    /// Seconds of wall time.
    pub seconds: f64,
}

impl Outcome {
    /// True when the host reported success and QEMU exited with status 0.
    pub fn passed(&self) -> bool {
        self.exit_code == Some(0) && self.lines.iter().any(|l| l.contains("[HOST] RESULT: PASS"))
    }

    /// Prints a one-line verdict.
    pub fn report(&self) {
        if self.timed_out {
            eprintln!("QEMU did not finish in time and was killed; the last lines above show where it stopped.");
        } else if self.passed() {
            eprintln!("demonstration PASSED ({:.1} s)", self.seconds);
        } else {
            eprintln!(
                "demonstration FAILED: QEMU exit status {:?} ({:.1} s)",
                self.exit_code, self.seconds
            );
        }
    }
}

fn raw_image(path: &Path, dir: &Path, name: &str) -> Result<PathBuf> {
    let out = dir.join(name);
    elf_to_raw(path, &out).with_context(|| format!("preparing {}", path.display()))?;
    Ok(out)
}

/// The QEMU command line for a run. `realm`, the payload the host runs in a realm, is loaded
/// at [`PAYLOAD_ADDR`] with its size at [`PAYLOAD_SIZE_ADDR`]; without it (or if the file
/// cannot be read) neither is loaded.
pub fn command(el3: &Path, rmm: &Path, host: &Path, realm: Option<&Path>, icount: bool) -> Command {
    command_for(el3, rmm, host, realm, icount, "2G", 2)
}

/// [`command`] with `mem` (QEMU's `-m` value) of DRAM and `cpus` CPUs.
pub fn command_for(
    el3: &Path,
    rmm: &Path,
    host: &Path,
    realm: Option<&Path>,
    icount: bool,
    mem: &str,
    cpus: u32,
) -> Command {
    let smp = cpus.to_string();
    let mut cmd = Command::new("qemu-system-aarch64");
    cmd.args([
        "-M",
        "virt,secure=on,virtualization=on,gic-version=3",
        "-cpu",
        "max,x-rme=on",
    ])
    .args([
        "-m", mem, "-smp", &smp, "-display", "none", "-monitor", "none", "-serial", "stdio",
    ])
    .args([
        "-semihosting-config",
        "enable=on,target=native",
        "-no-reboot",
    ])
    .arg("-bios")
    .arg(el3)
    .arg("-device")
    .arg(format!("loader,file={},addr={RMM_ADDR:#x}", rmm.display()))
    .arg("-device")
    .arg(format!(
        "loader,file={},addr={HOST_ADDR:#x}",
        host.display()
    ));
    if let Some(realm) = realm {
        if let Ok(meta) = std::fs::metadata(realm) {
            cmd.arg("-device")
                .arg(format!(
                    "loader,file={},addr={PAYLOAD_ADDR:#x}",
                    realm.display()
                ))
                .arg("-device")
                .arg(format!(
                    "loader,addr={PAYLOAD_SIZE_ADDR:#x},data={:#x},data-len=8",
                    meta.len()
                ));
        }
    }
    if icount {
        cmd.args(["-icount", "shift=0"]);
    }
    cmd
}

/// Boots the stack and streams its console until QEMU exits or the timeout expires.
pub fn run(_root: &Path, imgs: &Images, args: &RunArgs) -> Result<Outcome> {
    let rmm = match &args.rmm {
        Some(p) => raw_image(p, &imgs.dir, "custom-rmm.bin")?,
        None => imgs.rmm.clone(),
    };
    let host = match &args.host {
        Some(p) => raw_image(p, &imgs.dir, "custom-host.bin")?,
        None => imgs.host.clone(),
    };
    let realm = imgs.realm();
    let mut cmd = command(&imgs.el3, &rmm, &host, Some(&realm), args.icount);
    step(&format!("booting on QEMU: {cmd:?}").replace('"', ""));
    run_command(&mut cmd, Duration::from_secs(args.timeout), true)
}

/// Runs a QEMU command, echoing its output if `echo`, with a timeout.
pub fn run_command(cmd: &mut Command, timeout: Duration, echo: bool) -> Result<Outcome> {
    run_command_with_input(cmd, timeout, echo, &[])
}

/// [`run_command`], typing on QEMU's console: when a line containing `feed[i].0` appears
/// (in order), `feed[i].1` is written to QEMU's standard input a second later.
pub fn run_command_with_input(
    cmd: &mut Command,
    timeout: Duration,
    echo: bool,
    feed: &[(&str, &str)],
) -> Result<Outcome> {
    run_inner(cmd, timeout, &|_| echo, feed)
}

/// [`run_command`], printing as they arrive only the lines that contain one of `show` (for
/// example a long run's progress lines); every line is still returned.
pub fn run_command_showing(cmd: &mut Command, timeout: Duration, show: &[&str]) -> Result<Outcome> {
    run_inner(cmd, timeout, &|l| show.iter().any(|s| l.contains(s)), &[])
}

fn run_inner(
    cmd: &mut Command,
    timeout: Duration,
    echo: &dyn Fn(&str) -> bool,
    feed: &[(&str, &str)],
) -> Result<Outcome> {
    use std::io::Write;
    let start = Instant::now();
    let mut child = cmd
        .stdin(if feed.is_empty() {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-aarch64")?;
    let (tx, rx) = mpsc::channel::<String>();
    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx2.send(format!("[QEMU] {l}"));
        }
    });
    let mut stdin = child.stdin.take();
    let mut next_feed = 0;
    let mut lines = Vec::new();
    let mut timed_out = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(l) => {
                let l = l.trim_end_matches('\r').to_string();
                if echo(&l) {
                    println!("{l}");
                }
                if let Some((trigger, text)) = feed.get(next_feed) {
                    if l.contains(trigger) {
                        next_feed += 1;
                        std::thread::sleep(Duration::from_secs(1));
                        if let Some(w) = stdin.as_mut() {
                            let _ = w.write_all(text.as_bytes());
                            let _ = w.flush();
                        }
                    }
                }
                lines.push(l);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if start.elapsed() > timeout {
            timed_out = true;
            let _ = child.kill();
            eprintln!(
                "QEMU was still running after {} s: killed",
                timeout.as_secs()
            );
            break;
        }
    }
    let status = child.wait()?;
    while let Ok(l) = rx.try_recv() {
        if echo(&l) {
            println!("{l}");
        }
        lines.push(l);
    }
    Ok(Outcome {
        exit_code: if timed_out { None } else { status.code() },
        timed_out,
        lines,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Where the host looks for the benchmark request, and the request itself ("BNCH"), as a
/// QEMU `-device` argument.
pub const BENCH_FLAG: &str = "loader,addr=0x5ffff000,data=0x48434e42,data-len=4";

/// A benchmark result: `(operation, operations timed, instructions per operation)`.
pub type BenchRow = (String, u64, u64);

/// Boots under `-icount shift=0` with the benchmark request and returns
/// `(operation, ops, instructions per op)` rows from the host's `BENCH` lines.
pub fn bench(imgs: &Images) -> Result<Vec<BenchRow>> {
    bench_with(imgs, None)
}

/// [`bench`] with another RMM image (ELF or raw, e.g. TF-RMM's `rmm.img`) in place of ours;
/// the EL3 monitor, the host and the realm payload stay ours, so both runs time the same
/// host code doing the same calls.
pub fn bench_with(imgs: &Images, rmm: Option<&Path>) -> Result<Vec<BenchRow>> {
    let realm = imgs.realm();
    let rmm_img = match rmm {
        Some(p) => raw_image(p, &imgs.dir, "bench-rmm.bin")?,
        None => imgs.rmm.clone(),
    };
    // 3 GiB: room for the scaling benchmark's 1 GiB pool above the demo's pools.
    let mut cmd = command_for(&imgs.el3, &rmm_img, &imgs.host, Some(&realm), true, "3G", 2);
    cmd.arg("-device").arg(BENCH_FLAG);
    match rmm {
        Some(p) => step(&format!(
            "benchmarking {} on QEMU with -icount shift=0",
            p.display()
        )),
        None => step("benchmarking on QEMU with -icount shift=0"),
    }
    let out = run_command(&mut cmd, Duration::from_secs(600), false)?;
    if !out.passed() {
        for l in &out.lines {
            eprintln!("{l}");
        }
        anyhow::bail!("the benchmark run failed");
    }
    let mut rows = bench_rows(&out.lines);
    let ms = cold_boot_ms(imgs, &rmm_img, 5)?;
    rows.push(("cold_boot_to_host_ms_median_of_5".to_string(), 5, ms));
    Ok(rows)
}

/// Wall time from starting QEMU (without `-icount`) to the host's first console line, the
/// median of `runs` boots, in milliseconds: EL3's start-up (GPT included) and the RMM's cold
/// boot. QEMU is killed as soon as the line appears.
pub fn cold_boot_ms(imgs: &Images, rmm: &Path, runs: usize) -> Result<u64> {
    let mut times = Vec::new();
    for _ in 0..runs {
        let mut cmd = command(&imgs.el3, rmm, &imgs.host, None, false);
        let start = Instant::now();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting qemu-system-aarch64")?;
        let out = child.stdout.take().expect("piped");
        let mut seen = None;
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if l.starts_with("[HOST]") {
                seen = Some(start.elapsed());
                break;
            }
            if start.elapsed() > Duration::from_secs(60) {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        times.push(seen.context("the host printed nothing within 60 s")?);
    }
    times.sort();
    Ok(times[times.len() / 2].as_millis() as u64)
}

/// The `[HOST] BENCH <name> <ops> <per op>` lines of a run.
pub fn bench_rows(lines: &[String]) -> Vec<BenchRow> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("[HOST] BENCH "))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((
                w.next()?.to_string(),
                w.next()?.parse().ok()?,
                w.next()?.parse().ok()?,
            ))
        })
        .collect()
}

/// The table `cargo xtask bench` prints: one row per operation, ours / theirs as a ratio
/// when another RMM was measured (a row only one side produced shows `-` on the other).
pub fn bench_table(ours: &[BenchRow], theirs: Option<&[BenchRow]>) -> String {
    use std::fmt::Write;
    let mut t = String::new();
    let Some(theirs) = theirs else {
        let _ = writeln!(
            t,
            "{:<36} {:>8} {:>16}",
            "operation", "ops", "instructions/op"
        );
        for (name, ops, per_op) in ours {
            let _ = writeln!(t, "{name:<36} {ops:>8} {per_op:>16}");
        }
        return t;
    };
    let _ = writeln!(
        t,
        "{:<36} {:>14} {:>14} {:>7}",
        "operation (instructions/op)", "ours", "theirs", "ratio"
    );
    let find = |rows: &[BenchRow], name: &str| rows.iter().find(|r| r.0 == name).map(|r| r.2);
    let mut names: Vec<&str> = ours.iter().map(|r| r.0.as_str()).collect();
    for r in theirs {
        if !names.contains(&r.0.as_str()) {
            names.push(&r.0);
        }
    }
    for name in names {
        let (a, b) = (find(ours, name), find(theirs, name));
        let cell = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let ratio = match (a, b) {
            (Some(a), Some(b)) if b != 0 => format!("{:.2}", a as f64 / b as f64),
            _ => "-".to_string(),
        };
        let _ = writeln!(t, "{name:<36} {:>14} {:>14} {ratio:>7}", cell(a), cell(b));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: &str, ops: u64, per: u64) -> BenchRow {
        (n.to_string(), ops, per)
    }

    #[test]
    fn bench_lines_become_rows_and_malformed_ones_are_skipped() {
        let lines: Vec<String> = [
            "[HOST] BENCH rtt_create_level3 16 20496",
            "[RMM] BENCH not_the_host 1 2",
            "[HOST] BENCH missing_fields 16",
            "[HOST] BENCH not_a_number x 3",
            "[HOST] BENCH realm_create 16 64969 trailing",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            bench_rows(&lines),
            vec![
                row("rtt_create_level3", 16, 20496),
                row("realm_create", 16, 64969)
            ]
        );
    }

    #[test]
    fn the_comparison_table_has_ours_theirs_and_the_ratio() {
        let ours = [row("a", 1, 150), row("b", 1, 10), row("only_ours", 1, 7)];
        let theirs = [row("a", 1, 100), row("b", 1, 0), row("only_theirs", 1, 9)];
        let t = bench_table(&ours, Some(&theirs));
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].contains("ours") && lines[0].contains("ratio"));
        let cols = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(cols(lines[1]), ["a", "150", "100", "1.50"]);
        assert_eq!(cols(lines[2]), ["b", "10", "0", "-"], "no division by zero");
        assert_eq!(cols(lines[3]), ["only_ours", "7", "-", "-"]);
        assert_eq!(cols(lines[4]), ["only_theirs", "-", "9", "-"]);
        assert_eq!(lines.len(), 5);
        let single = bench_table(&ours, None);
        assert_eq!(single.lines().count(), 4);
        assert!(single.lines().nth(1).unwrap().starts_with("a "));
    }
}
