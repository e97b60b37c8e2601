//! Finds or installs what the build and the QEMU runs need, saying what it does.
//!
//! * QEMU ≥ 10 (`qemu-system-aarch64` with FEAT_RME): on Debian 12 from bookworm-backports,
//!   reusing the mirror URI of the machine's configured Debian sources.
//!   Only `qemu-system-arm`'s required dependencies are installed (`--no-install-recommends`),
//!   plus `ipxe-qemu` for the `efi-virtio.rom` of the virt machine's default virtio-net NIC.
//! * A Rust compiler for `aarch64-unknown-none-softfloat`: rustup's target when rustup can
//!   supply it, otherwise Debian's `rustc-web` + `rust-web-src` + `lld-22` with
//!   `-Zbuild-std`.
//! * Host tools other tasks need ([`require_tools`]), e.g. `gzip`, `xz`, `dpkg-deb`.

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
    parse_qemu_major(&output(
        Command::new("qemu-system-aarch64").arg("--version"),
    )?)
}

/// The major version in `qemu-system-aarch64 --version` output.
fn parse_qemu_major(v: &str) -> Option<u32> {
    let ver = v
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)?;
    ver.split('.').next()?.parse().ok()
}

fn os_release(key: &str) -> Option<String> {
    parse_os_release(&std::fs::read_to_string("/etc/os-release").ok()?, key)
}

/// A `KEY=value` (optionally quoted) from os-release contents.
fn parse_os_release(s: &str, key: &str) -> Option<String> {
    s.lines().find_map(|l| {
        l.strip_prefix(&format!("{key}="))
            .map(|v| v.trim_matches('"').to_string())
    })
}

/// Whether this process runs as root.
pub(crate) fn is_root() -> bool {
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

/// The configured APT sources: every `*.sources` file (deb822) and `sources.list`.
fn apt_sources() -> (Vec<String>, String) {
    let mut deb822 = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for e in dir.flatten() {
            if e.path().extension().is_some_and(|x| x == "sources") {
                if let Ok(s) = std::fs::read_to_string(e.path()) {
                    deb822.push(s);
                }
            }
        }
    }
    let one_line = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    (deb822, one_line)
}

/// The mirror URI of the configured Debian archive (not the security archive).
fn mirror_from(deb822: &[String], one_line: &str) -> Option<String> {
    let mut uris = Vec::new();
    for s in deb822 {
        for l in s.lines() {
            if let Some(u) = l.trim().strip_prefix("URIs:") {
                uris.extend(u.split_whitespace().map(String::from));
            }
        }
    }
    for l in one_line.lines() {
        let w: Vec<_> = l
            .split_whitespace()
            .filter(|w| !w.starts_with('[') && !w.ends_with(']'))
            .collect();
        if w.first() == Some(&"deb") && w.len() > 1 {
            uris.push(w[1].to_string());
        }
    }
    uris.into_iter().find(|u| !u.contains("security"))
}

/// The mirror URI of the machine's configured Debian sources, if any.
pub(crate) fn debian_mirror() -> Option<String> {
    let (deb822, one_line) = apt_sources();
    mirror_from(&deb822, &one_line)
}

/// Whether some configured source already offers `suite`.
fn suite_configured(deb822: &[String], one_line: &str, suite: &str) -> bool {
    let in_deb822 = deb822.iter().any(|s| {
        s.lines().any(|l| {
            l.trim()
                .strip_prefix("Suites:")
                .is_some_and(|v| v.split_whitespace().any(|x| x == suite))
        })
    });
    let in_list = one_line.lines().any(|l| {
        let l = l.trim();
        l.starts_with("deb ") && l.split_whitespace().any(|x| x == suite)
    });
    in_deb822 || in_list
}

/// Makes sure OpenSSL's development files are there (`pkg-config --exists openssl`): the
/// test build needs them for Veraison's `ccatoken`, the second-opinion verifier that
/// `cca-attest`'s tests use (a dev-dependency only: no image links OpenSSL). On Debian as
/// root it installs `pkg-config` and `libssl-dev`; otherwise it fails saying how.
pub fn ensure_openssl_dev() -> Result<()> {
    let present = || run_ok(Command::new("pkg-config").args(["--exists", "openssl"]));
    if present() {
        return Ok(());
    }
    step("OpenSSL development files not found (Debian packages pkg-config, libssl-dev; the tests' ccatoken verifier needs them)");
    let install = "  apt-get install -y --no-install-recommends pkg-config libssl-dev";
    if !is_debian() || !is_root() {
        return Err(cannot_install("OpenSSL's development files", install));
    }
    apt(&[
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "pkg-config",
        "libssl-dev",
    ])?;
    if !present() {
        bail!("`pkg-config --exists openssl` still fails after installing pkg-config libssl-dev");
    }
    Ok(())
}

fn cannot_install(what: &str, commands: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} is missing and this machine cannot install it automatically (this needs root on Debian).\n\
         Install it with:\n{commands}"
    )
}

/// What QEMU needs: `qemu-system-arm` with its Depends only (its Recommends are ~200 GUI,
/// audio, video and block-driver packages a `-display none -bios` run never loads), and
/// `ipxe-qemu`, whose `efi-virtio.rom` the virt machine's default virtio-net-pci NIC loads
/// (QEMU refuses to start without it unless the run passes `-nic none`).
pub const QEMU_PACKAGES: [&str; 2] = ["qemu-system-arm", "ipxe-qemu"];

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
         apt-get update && apt-get install -y --no-install-recommends -t {suite} {}",
        QEMU_PACKAGES.join(" ")
    );
    if !is_debian() || !is_root() {
        return Err(cannot_install("QEMU 10", &commands));
    }
    let (deb822, one_line) = apt_sources();
    let mirror =
        mirror_from(&deb822, &one_line).unwrap_or_else(|| "http://deb.debian.org/debian".into());
    let file = "/etc/apt/sources.list.d/cca-backports.sources";
    if !suite_configured(&deb822, &one_line, &suite) {
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
    let mut args = vec![
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "-t",
        &suite,
    ];
    args.extend(QEMU_PACKAGES);
    apt(&args)?;
    match qemu_major() {
        Some(v) if v >= 10 => Ok(()),
        _ => bail!(
            "QEMU was installed but `qemu-system-aarch64 --version` does not report 10 or later"
        ),
    }
}

/// `name`'s path if it is an executable file in a `PATH` directory.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The Debian packages of the `(command, package)` pairs whose command is missing.
fn missing_packages<'a>(
    tools: &[(&'a str, &'a str)],
    found: impl Fn(&str) -> bool,
) -> (Vec<&'a str>, Vec<&'a str>) {
    let mut commands = Vec::new();
    let mut packages = Vec::new();
    for (cmd, pkg) in tools {
        if !found(cmd) {
            commands.push(*cmd);
            if !packages.contains(pkg) {
                packages.push(*pkg);
            }
        }
    }
    (commands, packages)
}

/// Makes sure each `(command, Debian package)` of `tools` is on `PATH`: on Debian as root it
/// installs the missing packages (`--no-install-recommends`); otherwise it fails naming the
/// commands and the command line that installs them.
pub fn require_tools(tools: &[(&str, &str)]) -> Result<()> {
    let (commands, packages) = missing_packages(tools, |c| find_in_path(c).is_some());
    if commands.is_empty() {
        return Ok(());
    }
    let what = format!("`{}`", commands.join("`, `"));
    step(&format!(
        "{what} not found (Debian package {})",
        packages.join(", ")
    ));
    let install = format!(
        "  apt-get install -y --no-install-recommends {}",
        packages.join(" ")
    );
    if !is_debian() || !is_root() {
        return Err(cannot_install(&what, &install));
    }
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(&packages);
    apt(&args)?;
    let (still, _) = missing_packages(tools, |c| find_in_path(c).is_some());
    if !still.is_empty() {
        bail!(
            "`{}` still not on PATH after installing {}",
            still.join("`, `"),
            packages.join(" ")
        );
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = "Types: deb\n# a snapshot comment\nURIs: http://mirror.example/debian\n\
        Suites: bookworm bookworm-updates\nComponents: main\n\n\
        Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n";

    #[test]
    fn mirror_comes_from_the_configured_archive_not_security() {
        assert_eq!(
            mirror_from(&[DEBIAN.into()], ""),
            Some("http://mirror.example/debian".into())
        );
        let list = "deb [arch=amd64 signed-by=/k.gpg] http://old.example/debian bookworm main\n";
        assert_eq!(
            mirror_from(&[], list),
            Some("http://old.example/debian".into())
        );
        assert_eq!(mirror_from(&[], "# nothing\n"), None);
    }

    #[test]
    fn backports_detection() {
        assert!(!suite_configured(
            &[DEBIAN.into()],
            "",
            "bookworm-backports"
        ));
        let bp = "Types: deb\nURIs: http://m/debian\nSuites: bookworm-backports\n".to_string();
        assert!(suite_configured(
            &[DEBIAN.into(), bp],
            "",
            "bookworm-backports"
        ));
        assert!(suite_configured(
            &[],
            "deb http://m/debian bookworm-backports main",
            "bookworm-backports"
        ));
    }

    #[test]
    fn missing_tools_map_to_packages_once() {
        let tools = [
            ("apt-get", "apt"),
            ("apt-cache", "apt"),
            ("xz", "xz-utils"),
            ("sh", "dash"),
        ];
        let (cmds, pkgs) = missing_packages(&tools, |c| c == "sh");
        assert_eq!(cmds, ["apt-get", "apt-cache", "xz"]);
        assert_eq!(pkgs, ["apt", "xz-utils"]);
        let (cmds, pkgs) = missing_packages(&tools, |_| true);
        assert!(cmds.is_empty() && pkgs.is_empty());
        assert!(find_in_path("sh").is_some());
        assert!(find_in_path("surely-no-such-tool-here").is_none());
        assert!(require_tools(&[("sh", "dash")]).is_ok());
    }

    #[test]
    fn versions() {
        let v = "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\nCopyright";
        assert_eq!(parse_qemu_major(v), Some(10));
        assert_eq!(parse_qemu_major("QEMU emulator version 7.2.15"), Some(7));
        assert_eq!(parse_qemu_major("garbage"), None);
        let os = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";
        assert_eq!(parse_os_release(os, "ID").as_deref(), Some("debian"));
        assert_eq!(
            parse_os_release(os, "VERSION_CODENAME").as_deref(),
            Some("bookworm")
        );
        assert_eq!(parse_os_release(os, "NOPE"), None);
    }
}
