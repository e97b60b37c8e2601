//! `cargo xtask`: the project's build, run, test and benchmark entry point.
//!
//! * `cargo xtask demo` installs what is missing, builds every image, boots the stack on QEMU
//!   and runs the host's demonstration.
//! * `cargo xtask test` runs the host-side unit tests and then the QEMU end-to-end tests.

mod images;
mod qemu;
mod setup;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

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
}

/// Options for a QEMU run.
#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    /// Use this RMM image instead of ours (ELF or raw, loaded at 0x40100000; e.g. TF-RMM's rmm.img).
    #[arg(long)]
    pub rmm: Option<PathBuf>,
    /// Use this Normal-world image instead of our host (ELF or raw, loaded at 0x60000000).
    #[arg(long)]
    pub host: Option<PathBuf>,
    /// Run QEMU with `-icount shift=0` so the virtual counter counts instructions.
    #[arg(long)]
    pub icount: bool,
    /// Kill QEMU if it has not finished after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
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
            images::build_all(&root, &tc)?;
        }
        Cmd::Demo(args) => {
            let tc = setup::ensure_all()?;
            let imgs = images::build_all(&root, &tc)?;
            let outcome = qemu::run(&root, &imgs, &args)?;
            outcome.report();
            if !outcome.passed() {
                bail!("the demonstration failed");
            }
        }
        Cmd::Test(t) => {
            if !t.qemu_only {
                setup::step("host-side unit tests (cargo test --workspace)");
                cargo(&root, &["test", "--workspace", "--exclude", "e2e"])?;
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

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

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
