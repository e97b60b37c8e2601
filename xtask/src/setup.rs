//! Finds or installs what the build and the QEMU runs need, saying what it does.
//!
//! * QEMU ≥ 10 (`qemu-system-aarch64` with FEAT_RME): on Debian 12 from bookworm-backports,
//!   reusing the mirror URI of the machine's configured Debian sources.
//! * A Rust compiler for `aarch64-unknown-none-softfloat`: rustup's target when rustup can
//!   supply it, otherwise Debian's `rustc-web` + `rust-web-src` + `lld-22` with
//!   `-Zbuild-std`.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use wait_timeout::ChildExt;

/// The target all firmware images are built for (no FP/SIMD use in the firmware itself).
pub const FW_TARGET: &str = "aarch64-unknown-none-softfloat";

/// How firmware images are compiled.
#[derive(Clone, Debug)]
pub enum Toolchain {
    /// rustup's toolchain has the target's prebuilt standard library.
    Rustup,
    /// Debian's compiler builds `core`/`alloc` from source (`-Zbuild-std`).
    BuildStd {
        /// The compiler to use.
        rustc: PathBuf,
    },
}

/// Prints a progress line.
pub fn step(msg: &str) {
    eprintln!("\x1b[1m==> {msg}\x1b[0m");
}

/// Makes sure QEMU and a firmware toolchain are available; returns the toolchain to use.
pub fn ensure_all() -> Result<Toolchain> {
    ensure_qemu()?;
    ensure_fw_toolchain()
}

fn run_ok(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The major version of `qemu-system-aarch64`, if installed.
pub fn qemu_major() -> Option<u32> {
    let v = output(Command::new("qemu-system-aarch64").arg("--version"))?;
    let ver = v
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)?;
    ver.split('.').next()?.parse().ok()
}

fn os_release(key: &str) -> Option<String> {
    let s = std::fs::read_to_string("/etc/os-release").ok()?;
    s.lines().find_map(|l| {
        l.strip_prefix(&format!("{key}="))
            .map(|v| v.trim_matches('"').to_string())
    })
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_some_and(|s| s.trim() == "0")
}

fn is_debian() -> bool {
    os_release("ID").as_deref() == Some("debian") && Path::new("/usr/bin/apt-get").exists()
}

fn apt(args: &[&str]) -> Result<()> {
    eprintln!("    running: apt-get {}", args.join(" "));
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get")?;
    if !status.success() {
        bail!("apt-get {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// The mirror URI of the configured Debian archive (not the security archive).
fn debian_mirror() -> Option<String> {
    let mut uris = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for e in dir.flatten() {
            if e.path().extension().is_some_and(|x| x == "sources") {
                if let Ok(s) = std::fs::read_to_string(e.path()) {
                    uris.extend(
                        s.lines()
                            .filter_map(|l| l.strip_prefix("URIs:"))
                            .flat_map(|u| {
                                u.split_whitespace().map(String::from).collect::<Vec<_>>()
                            }),
                    );
                }
            }
        }
    }
    if let Ok(s) = std::fs::read_to_string("/etc/apt/sources.list") {
        for l in s.lines() {
            let w: Vec<_> = l
                .split_whitespace()
                .filter(|w| !w.starts_with('[') && !w.ends_with(']'))
                .collect();
            if w.first() == Some(&"deb") && w.len() > 1 {
                uris.push(w[1].to_string());
            }
        }
    }
    uris.into_iter().find(|u| !u.contains("security"))
}

fn cannot_install(what: &str, commands: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} is missing and this machine cannot install it automatically (this needs root on Debian).\n\
         Install it with:\n{commands}"
    )
}

fn ensure_qemu() -> Result<()> {
    if let Some(v) = qemu_major() {
        if v >= 10 {
            return Ok(());
        }
        step(&format!(
            "qemu-system-aarch64 {v}.x has no FEAT_RME; QEMU 10 or later is needed"
        ));
    } else {
        step("qemu-system-aarch64 not found; installing QEMU 10 (FEAT_RME)");
    }
    let codename = os_release("VERSION_CODENAME").unwrap_or_default();
    let suite = format!("{codename}-backports");
    let commands = format!(
        "  echo 'deb http://deb.debian.org/debian {suite} main' > /etc/apt/sources.list.d/backports.list\n  \
         apt-get update && apt-get install -y -t {suite} qemu-system-arm"
    );
    if !is_debian() || !is_root() {
        return Err(cannot_install("QEMU 10", &commands));
    }
    let mirror = debian_mirror().unwrap_or_else(|| "http://deb.debian.org/debian".into());
    let file = "/etc/apt/sources.list.d/cca-backports.sources";
    if !Path::new(file).exists() {
        eprintln!("    adding {suite} from {mirror} in {file}");
        std::fs::write(
            file,
            format!(
                "Types: deb\nURIs: {mirror}\nSuites: {suite}\nComponents: main\n\
                 Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
            ),
        )
        .with_context(|| format!("writing {file}"))?;
    }
    apt(&["update", "-q"])?;
    apt(&["install", "-y", "-q", "-t", &suite, "qemu-system-arm"])?;
    match qemu_major() {
        Some(v) if v >= 10 => Ok(()),
        _ => bail!(
            "QEMU was installed but `qemu-system-aarch64 --version` does not report 10 or later"
        ),
    }
}

fn rustup_has_target() -> bool {
    output(Command::new("rustup").args(["target", "list", "--installed"]))
        .is_some_and(|s| s.lines().any(|l| l.trim() == FW_TARGET))
}

fn rustup_add_target() -> bool {
    let Ok(mut child) = Command::new("rustup")
        .args(["target", "add", FW_TARGET])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    match child.wait_timeout(Duration::from_secs(180)) {
        Ok(Some(s)) => s.success(),
        _ => {
            let _ = child.kill();
            false
        }
    }
}

const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_RUST_SRC: &str = "/usr/lib/rustlib/src/rust/library/core";

fn debian_build_std_ready() -> bool {
    Path::new(DEBIAN_RUSTC).exists()
        && Path::new(DEBIAN_RUST_SRC).exists()
        && run_ok(
            Command::new("rust-lld")
                .arg("-flavor")
                .arg("gnu")
                .arg("--version"),
        )
}

fn ensure_fw_toolchain() -> Result<Toolchain> {
    let forced = std::env::var("CCA_FW_TOOLCHAIN").unwrap_or_default();
    if forced != "build-std" {
        if rustup_has_target() {
            return Ok(Toolchain::Rustup);
        }
        if forced != "rustup" && Path::new(&home_cargo_bin("rustup")).exists() {
            step(&format!("adding the {FW_TARGET} target with rustup"));
            if rustup_add_target() {
                return Ok(Toolchain::Rustup);
            }
            eprintln!(
                "    rustup cannot supply {FW_TARGET}; using Debian's compiler with -Zbuild-std"
            );
        }
    }
    if !debian_build_std_ready() {
        step("installing Debian's rustc-web, rust-web-src and lld-22 for bare-metal builds");
        let commands =
            "  apt-get update && apt-get install -y rustc-web cargo-web rust-web-src lld-22";
        if !is_debian() || !is_root() {
            return Err(cannot_install("A bare-metal Rust toolchain", commands));
        }
        apt(&["update", "-q"])?;
        apt(&[
            "install",
            "-y",
            "-q",
            "rustc-web",
            "cargo-web",
            "rust-web-src",
            "lld-22",
        ])?;
        if !debian_build_std_ready() {
            bail!("Debian's rustc-web/rust-web-src/lld-22 are installed but {DEBIAN_RUSTC}, {DEBIAN_RUST_SRC} or rust-lld is missing");
        }
    }
    Ok(Toolchain::BuildStd {
        rustc: PathBuf::from(DEBIAN_RUSTC),
    })
}

fn home_cargo_bin(tool: &str) -> String {
    if let Ok(out) = Command::new("which").arg(tool).output() {
        let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !p.is_empty() {
            return p;
        }
    }
    format!(
        "{}/.cargo/bin/{tool}",
        std::env::var("HOME").unwrap_or_default()
    )
}
