//! `cargo xtask`: the project's build, run, test and benchmark entry point.
//!
//! * `cargo xtask demo` installs what is missing, builds every image, boots the stack on QEMU
//!   and runs the host's demonstration.
//! * `cargo xtask test` runs the host-side unit tests and then the QEMU end-to-end tests.

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use xtask::setup::step;
use xtask::{images, launch, qemu, setup, workspace_root, RunArgs};

mod token;

mod profile;

mod fuzz;
mod fuzz_realm;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, run and test the Arm CCA stack on QEMU"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install missing tools (QEMU with FEAT_RME, the bare-metal Rust path).
    Setup,
    /// Build the firmware images (EL3 monitor, RMM, host) into target/images.
    Build,
    /// Build everything and boot the stack on QEMU running the host's demonstration.
    Demo(RunArgs),
    /// Run the whole test suite: host-side unit tests, then the QEMU end-to-end tests.
    Test(TestArgs),
    /// Boot under `-icount shift=0` and report instructions per RMI operation; with `--rmm`,
    /// the same for another RMM image and the ratio ours / theirs.
    Bench(BenchArgs),
    /// Boot a Linux realm (kvmtool's options: -k, -i, -p, -m, -c, --measurement-algo,
    /// --realm-pv), interactively.
    Run(launch::LaunchArgs),
    /// Fetch (or show the cached) Debian kernel and BusyBox the realm guests use.
    Guest {
        /// Ask the archive again even if a complete set is cached.
        #[arg(long)]
        refresh: bool,
    },
    /// Check formatting and run clippy on the host crates and on the firmware images.
    Lint,
    /// Attestation tokens: verify one, or write the platform's endorsements.
    #[command(subcommand)]
    Token(token::TokenCmd),
    /// Hostile worlds on QEMU: the hostile host, the hostile realm, and the deliberate fatal
    /// faults of EL3 and the RMM.
    #[command(subcommand)]
    Fuzz(FuzzCmd),
    /// Print the RIM a launch description produces (the options of `run`), for SHA-256 and
    /// SHA-512.
    Measure(launch::LaunchArgs),
}

#[derive(Args)]
struct BenchArgs {
    /// Also benchmark this RMM image (ELF or raw, e.g. TF-RMM's rmm.img, see
    /// docs/performance.md) under the same EL3, host and payload, and print ours, theirs and
    /// the ratio side by side.
    #[arg(long, visible_alias = "against", value_name = "FILE")]
    rmm: Option<std::path::PathBuf>,
    /// Skip the Linux realm part (the micro-benchmarks only, about a minute).
    #[arg(long)]
    skip_linux: bool,
    /// Instead of the table, show where the instructions of operation OP go (EL3, the RMM's
    /// entry, command, copies, scrubs, hashing, the host), by function; `all` for every
    /// benchmarked operation, `list` for their names, `rec_enter` for the RMM's part of every
    /// REC_ENTER of the payload realm (its RSI calls included), `realm_exit` for the RMM's
    /// handling of each realm exit, by class (`realm_exit_N` for one class). Our RMM only; no
    /// Linux part.
    #[arg(long, value_name = "OP")]
    profile: Option<String>,
}

#[derive(Subcommand)]
enum FuzzCmd {
    /// N structured-random RMI calls from both CPUs against the real RMM, each checked, then
    /// a sweep that must get every granule back scrubbed and a canonical realm that must
    /// still pass; fails on any finding.
    Host {
        /// Number of RMI calls (both CPUs together).
        #[arg(long, default_value_t = 100_000)]
        calls: u64,
        /// Seed of the random streams.
        #[arg(long, default_value_t = 1, value_parser = parse_u64)]
        seed: u64,
    },
    /// N iterations of hostile realm behaviour in the payload realm.
    Realm {
        /// Number of iterations.
        #[arg(long, default_value_t = 10_000)]
        calls: u64,
        /// Seed of the random stream.
        #[arg(long, default_value_t = 1, value_parser = parse_u64)]
        seed: u64,
    },
    /// A deliberate fatal fault through EL3's test hook (enabled in a copy of el3.bin only):
    /// passes when the run halts with the faulting world's report (syndrome, address) and
    /// a failure status.
    Fault {
        /// `rmm` (granule protection fault in the RMM), `el3` (granule protection fault in
        /// EL3), `el3-panic` or `rmm-panic`.
        #[arg(long, value_parser = parse_fault)]
        kind: fuzz::FaultKind,
    },
}

fn parse_u64(s: &str) -> std::result::Result<u64, String> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    }
    .map_err(|e| format!("{s}: {e}"))
}

fn parse_fault(s: &str) -> std::result::Result<fuzz::FaultKind, String> {
    fuzz::FaultKind::parse(s)
        .ok_or_else(|| format!("{s}: expected rmm, el3, el3-panic or rmm-panic"))
}

#[derive(Args)]
struct TestArgs {
    /// Only the host-side unit tests (no QEMU).
    #[arg(long, conflicts_with = "qemu_only")]
    host_only: bool,
    /// Only the QEMU end-to-end tests.
    #[arg(long)]
    qemu_only: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    match cli.cmd {
        Cmd::Setup => {
            setup::ensure_all()?;
        }
        Cmd::Build => {
            let tc = setup::ensure_all()?;
            let imgs = images::build_all(&root, &tc)?;
            // The platform's endorsements of these images (docs/attestation.md).
            let out = root.join("target/attestation");
            let p = token::endorse(&imgs.dir, &out)?;
            eprintln!(
                "    endorsements: {} (trust-anchors.json, platform-reference-values.json; \
                 platform instance ID {})",
                out.display(),
                cca_attest::hex::encode(&p.anchor.instance_id)
            );
        }
        Cmd::Demo(args) => {
            let tc = setup::ensure_all()?;
            let imgs = images::build_all(&root, &tc)?;
            let outcome = qemu::run(&root, &imgs, &args)?;
            outcome.report();
            if !outcome.passed() {
                bail!("the demonstration failed");
            }
            // The images QEMU loaded (`qemu::run` writes raw copies of --rmm and --host).
            let rmm_img = args.rmm.as_ref().map(|_| imgs.dir.join("custom-rmm.bin"));
            let host_img = args.host.as_ref().map(|_| imgs.dir.join("custom-host.bin"));
            let platform = token::platform_of(&imgs.dir, rmm_img.as_deref(), host_img.as_deref())?;
            step("the payload realm's attestation token, verified off-line (cca-attest)");
            token::payload_token(&outcome.lines, &platform)?;
            step("part 2: Debian's Linux as a realm guest with 2 vCPUs");
            let mut la = launch::LaunchArgs::new(256, 2);
            la.rmm = args.rmm.clone();
            la.icount = args.icount;
            la.timeout = args.timeout.max(600);
            // Its init script also fetches a token through configfs-tsm.
            let challenge = token::linux_challenge();
            let run = launch::boot_linux(
                &imgs,
                &la,
                xtask::guest::InitScript::Attest {
                    challenge: challenge.clone(),
                },
                &token::TSM_MODULES,
                &root.join("target/launch"),
                true,
                &[],
            )?;
            step("the Linux realm's attestation token (configfs-tsm), verified off-line");
            // `launch` always boots our host (host.bin) with Linux.
            let linux_platform = token::platform_of(&imgs.dir, rmm_img.as_deref(), None)?;
            let verdict = token::linux_token(&run, &challenge, &linux_platform);
            // The RIM the RMM measured: from its log (ours prints it), else from the token.
            let measured = run.measured_rim().or_else(|| {
                verdict
                    .as_ref()
                    .ok()
                    .map(|ev| cca_attest::hex::encode(&ev.realm.rim))
            });
            let e = &run.evidence;
            let checks = [
                (
                    "the kernel found the RMM (RME: Using RSI version)",
                    e.rsi.is_some(),
                ),
                ("both vCPUs online", e.cpus == Some(2)),
                ("memory reported", e.mem_total_kb.is_some_and(|k| k > 0)),
                ("the init script finished", e.done),
                (
                    "RIM measured by the RMM (its log, or the token) = RIM predicted by the launcher",
                    measured.as_deref() == Some(run.prepared.rim.as_str()),
                ),
                ("its attestation token verified", verdict.is_ok()),
                (
                    "the host tore the realm down and passed",
                    run.outcome.passed(),
                ),
            ];
            let mut ok = true;
            for (what, pass) in checks {
                eprintln!("    {}: {what}", if pass { "ok" } else { "FAILED" });
                ok &= pass;
            }
            if !ok {
                bail!("the Linux realm demonstration failed");
            }
            eprintln!(
                "demonstration PASSED: the payload realm and the Linux realm, both realms' \
                 attestation tokens verified (target/attestation/payload.cbor, linux.cbor)"
            );
        }
        Cmd::Run(args) => {
            let tc = setup::ensure_all()?;
            let imgs = images::build_all(&root, &tc)?;
            // With a disk the shell's initramfs brings the virtio-blk driver (`/dev/vda`).
            let modules: &[&str] = if args.disk.is_some() {
                &["virtio_blk"]
            } else {
                &[]
            };
            let (kernel, initrd) =
                launch::guest_files(&args, xtask::guest::InitScript::Shell, modules)?;
            let p = launch::prepare(
                &args,
                &kernel,
                initrd.as_deref(),
                &root.join("target/launch"),
            )?;
            launch::describe(&p);
            let code = if args.timeout > 0 {
                let out = launch::run_captured(
                    &imgs,
                    &p,
                    args.rmm.as_deref(),
                    args.icount,
                    std::time::Duration::from_secs(args.timeout),
                    true,
                    &[],
                )?;
                out.exit_code.unwrap_or(1)
            } else {
                launch::run_interactive(&imgs, &p, args.rmm.as_deref(), args.icount)?
            };
            if code != 0 {
                bail!("the realm run failed (QEMU exit status {code})");
            }
        }
        Cmd::Guest { refresh } => {
            xtask::guest::fetch_and_report(refresh)?;
        }
        Cmd::Bench(b) => {
            let tc = setup::ensure_all()?;
            let imgs = images::build_all(&root, &tc)?;
            if let Some(op) = &b.profile {
                let mode = profile::Mode::of(op);
                let p = profile::run(&root, &imgs, mode)?;
                let ops = match op.as_str() {
                    "list" => {
                        println!("{}", p.operations().join("\n"));
                        return Ok(());
                    }
                    "all" => p.operations(),
                    // The ten most frequent classes of realm exit.
                    profile::REALM_EXIT => {
                        let mut classes = p.operations();
                        classes.sort_by_key(|n| {
                            n.rsplit('_').next().and_then(|r| r.parse::<u64>().ok())
                        });
                        classes.into_iter().take(10).collect()
                    }
                    one => vec![one.to_string()],
                };
                for op in ops {
                    println!("\n{}", p.report(&op, 25)?);
                }
                return Ok(());
            }
            let mut ours = qemu::bench(&imgs)?;
            if !b.skip_linux {
                ours.extend(launch::bench_linux(&imgs, &root.join("target/launch"))?);
                ours.extend(launch::disk::bench_virtio(
                    &imgs,
                    &root.join("target/launch-virtio"),
                )?);
                ours.extend(launch::firmware::bench_firmware(
                    &imgs,
                    &root.join("target/launch"),
                )?);
            }
            let theirs = match &b.rmm {
                None => None,
                Some(other) => {
                    let mut rows = qemu::bench_with(&imgs, Some(other))?;
                    if !b.skip_linux {
                        match linux_rows_with(&imgs, &root.join("target/launch-theirs")) {
                            Ok(r) => rows.extend(r),
                            Err(e) => eprintln!(
                                "    the Linux realm part did not pass with {}: {e:#}",
                                other.display()
                            ),
                        }
                    }
                    Some(rows)
                }
            };
            println!();
            print!("{}", qemu::bench_table(&ours, theirs.as_deref()));
        }
        Cmd::Lint => lint(&root)?,
        Cmd::Token(t) => token::run(&t)?,
        Cmd::Measure(a) => token::measure(&a)?,
        Cmd::Fuzz(FuzzCmd::Host { calls, seed }) => {
            fuzz::host(calls, seed).map_err(anyhow::Error::msg)?
        }
        Cmd::Fuzz(FuzzCmd::Realm { calls, seed }) => fuzz_realm::run(calls, seed)?,
        Cmd::Fuzz(FuzzCmd::Fault { kind }) => fuzz::fault(kind).map_err(anyhow::Error::msg)?,
        Cmd::Test(t) => {
            setup::ensure_openssl_dev()?;
            lint(&root)?;
            if !t.qemu_only {
                setup::step(
                    "host-side unit tests (cargo test: ABI, RMM core, EL3 core, host core, xtask)",
                );
                cargo(&root, &["test", "--", "--skip", RANDOMIZED])?;
                setup::step("randomized RMI streams against the independent model (rmm-core)");
                cargo(
                    &root,
                    &["test", "-p", "rmm-core", RANDOMIZED, "--", "--nocapture"],
                )?;
            }
            if !t.host_only {
                let tc = setup::ensure_all()?;
                let imgs = images::build_all(&root, &tc)?;
                setup::step("QEMU end-to-end tests (cargo test -p e2e)");
                cargo_env(
                    &root,
                    &["test", "-p", "e2e", "--", "--test-threads=1"],
                    &[("CCA_IMAGES", imgs.dir.as_os_str())],
                )?;
            }
        }
    }
    Ok(())
}

/// The Linux realm rows of `cargo xtask bench` for the RMM image `bench_with` left in
/// `imgs.dir` (`bench-rmm.bin`): the same boot as `launch::bench_linux`, passing when the host
/// and the init script did (another RMM does not log the RIM it measured, so the RIM check
/// of our runs does not apply).
fn linux_rows_with(
    imgs: &images::Images,
    out_dir: &std::path::Path,
) -> Result<Vec<qemu::BenchRow>> {
    use xtask::guest::{InitScript, Then};
    let theirs = images::Images {
        dir: imgs.dir.clone(),
        el3: imgs.el3.clone(),
        rmm: imgs.dir.join("bench-rmm.bin"),
        host: imgs.host.clone(),
    };
    let mut args = launch::LaunchArgs::new(256, 2);
    args.icount = true;
    args.timeout = 1200;
    let init = InitScript::Evidence {
        then: Then::PowerOff,
    };
    step("benchmark: Debian's Linux as a realm under -icount shift=0, on the other RMM");
    let run = launch::boot_linux(&theirs, &args, init, &[], out_dir, false, &[])?;
    if !run.outcome.passed() || !run.evidence.done {
        for l in &run.outcome.lines {
            eprintln!("{l}");
        }
        bail!("the Linux realm did not boot to its init script");
    }
    Ok(qemu::bench_rows(&run.outcome.lines)
        .into_iter()
        .filter(|r| r.0.starts_with("linux_"))
        .collect())
}

/// `cargo xtask lint`: rustfmt, then clippy with `-D warnings` on the host crates, the
/// end-to-end tests and every firmware image.
fn lint(root: &std::path::Path) -> Result<()> {
    setup::step("cargo fmt --check");
    cargo(root, &["fmt", "--all", "--", "--check"])?;
    setup::step("clippy: host-side crates");
    cargo(root, &["clippy", "--all-targets", "--", "-D", "warnings"])?;
    setup::step("clippy: end-to-end test crate");
    cargo(
        root,
        &[
            "clippy",
            "-p",
            "e2e",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    match setup::ensure_all()? {
        setup::Toolchain::Rustup => {
            setup::step("clippy: firmware images");
            let mut args = vec![
                "clippy",
                "--release",
                "--target",
                setup::FW_TARGET,
                "--target-dir",
                "target/fw",
            ];
            for p in ["fw-support", "el3", "rmm", "host", "realm-payload"] {
                args.extend(["-p", p]);
            }
            args.extend(["--", "-D", "warnings"]);
            cargo(root, &args)?;
        }
        setup::Toolchain::BuildStd { .. } => {
            eprintln!(
                "    skipping firmware clippy: it needs rustup's {} target",
                setup::FW_TARGET
            );
        }
    }
    Ok(())
}

/// The randomized model test, run on its own so that its call count is shown.
const RANDOMIZED: &str = "randomized_call_streams_match_the_model";

fn cargo(root: &std::path::Path, args: &[&str]) -> Result<()> {
    cargo_env(root, args, &[])
}

fn cargo_env(
    root: &std::path::Path,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(args).current_dir(root);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let status = cmd.status()?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}
