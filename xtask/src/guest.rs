//! Provisioning of a Linux Realm guest from Debian's arm64 packages: the cloud kernel and
//! static BusyBox fetched with a private APT configuration ([`debian_kernel`], [`busybox`]),
//! and an initramfs built by our own `newc` writer ([`build_initramfs`]) around one of the
//! [`InitScript`]s.
//!
//! Everything downloaded or built lives in the cache directory ([`cache_dir`]), outside the
//! source tree:
//!
//! ```text
//! <cache>/apt/                  private APT state (sources.list, lists/, cache/, status)
//! <cache>/debs/                 the .deb files, checked against the signed index
//! <cache>/pkgs/NAME_VERSION/    their contents (dpkg-deb -x)
//! <cache>/guest-packages.manifest   written after a complete fetch
//! <cache>/initramfs/            initramfs-<hash>.cpio.gz, content-addressed
//! ```

pub mod apt;
pub mod cpio;
pub mod debver;
pub mod init;
pub mod initramfs;
pub mod packages;

pub use debver::DebVersion;
pub use init::{Evidence, InitScript, Then};
pub use initramfs::{build_initramfs, find_module, InitramfsFile, InitramfsSpec};
pub use packages::{
    busybox, debian_kernel, guest_packages, refresh_guest_packages, CachedDeb, DebianKernel,
    GuestPackages,
};

use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Host tools the package fetch needs: `(command, Debian package)`.
pub const FETCH_TOOLS: &[(&str, &str)] = &[
    ("apt-get", "apt"),
    ("apt-cache", "apt"),
    ("dpkg-deb", "dpkg"),
    ("sha256sum", "coreutils"),
    ("flock", "util-linux"),
];

/// Host tools the initramfs build needs: `(command, Debian package)`.
pub const INITRAMFS_TOOLS: &[(&str, &str)] = &[
    ("gzip", "gzip"),
    ("xz", "xz-utils"),
    ("sha256sum", "coreutils"),
];

/// Checks that `tools` are on `PATH` (installing them where [`crate::setup`] can).
pub fn require_host_tools(tools: &[(&str, &str)]) -> Result<()> {
    crate::setup::require_tools(tools)
}

/// The cache directory: `$CCA_CACHE`, else `$XDG_CACHE_HOME/cca-rs`, else `~/.cache/cca-rs`.
/// It must lie outside the source tree.
pub fn cache_dir() -> Result<PathBuf> {
    let dir = cache_dir_from(
        std::env::var_os("CCA_CACHE"),
        std::env::var_os("XDG_CACHE_HOME"),
        std::env::var_os("HOME"),
    )?;
    let root = crate::workspace_root();
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    if canon(&dir).starts_with(canon(&root)) {
        bail!(
            "the cache {} is inside the source tree {}; set CCA_CACHE to a directory outside it",
            dir.display(),
            root.display()
        );
    }
    Ok(dir)
}

fn cache_dir_from(
    cca: Option<OsString>,
    xdg: Option<OsString>,
    home: Option<OsString>,
) -> Result<PathBuf> {
    let nonempty = |v: Option<OsString>| v.filter(|s| !s.is_empty()).map(PathBuf::from);
    if let Some(d) = nonempty(cca) {
        if d.is_absolute() {
            return Ok(d);
        }
        let cwd = std::env::current_dir().context("the current directory")?;
        return Ok(cwd.join(d));
    }
    // The XDG base directory specification says to ignore relative paths.
    if let Some(d) = nonempty(xdg).filter(|d| d.is_absolute()) {
        return Ok(d.join("cca-rs"));
    }
    if let Some(h) = nonempty(home).filter(|d| d.is_absolute()) {
        return Ok(h.join(".cache").join("cca-rs"));
    }
    bail!("no cache directory: set CCA_CACHE (or HOME)")
}

fn parse_sha256sum(out: &[u8]) -> Result<String> {
    let s = String::from_utf8_lossy(out);
    let h = s
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    if !packages::is_sha256(&h) {
        bail!("unexpected sha256sum output {s:?}");
    }
    Ok(h)
}

/// The SHA256 of a file, in lower-case hex (`sha256sum`).
pub fn sha256_file(path: &Path) -> Result<String> {
    let out = Command::new("sha256sum")
        .arg("--")
        .arg(path)
        .output()
        .context("running sha256sum")?;
    if !out.status.success() {
        bail!(
            "sha256sum {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    parse_sha256sum(&out.stdout)
}

/// The SHA256 of `data`, in lower-case hex (`sha256sum`).
pub fn sha256_bytes(data: &[u8]) -> Result<String> {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running sha256sum")?;
    let mut stdin = child.stdin.take().context("sha256sum's stdin")?;
    // Write from a thread: sha256sum prints only at the end, so this cannot deadlock, but a
    // thread keeps that true whatever the tool does.
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().context("waiting for sha256sum")?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the sha256sum writer panicked"))?
        .context("writing to sha256sum")?;
    if !out.status.success() {
        bail!("sha256sum failed ({})", out.status);
    }
    parse_sha256sum(&out.stdout)
}

/// An exclusive lock on the cache, held by a `flock` child process for as long as this
/// value lives (the lock goes with the child, even if this process dies).
pub struct CacheLock {
    child: Child,
}

impl CacheLock {
    /// Waits for and takes the lock `<cache>/lock`.
    pub fn acquire(cache: &Path) -> Result<Self> {
        let file = cache.join("lock");
        if let Some(l) = Self::spawn(&file, true)? {
            return Ok(l);
        }
        eprintln!(
            "    waiting for another process that holds {}",
            file.display()
        );
        Self::spawn(&file, false)?.with_context(|| format!("could not lock {}", file.display()))
    }

    fn spawn(file: &Path, nonblocking: bool) -> Result<Option<Self>> {
        let mut cmd = Command::new("flock");
        cmd.arg("--exclusive");
        if nonblocking {
            cmd.arg("--nonblock");
        }
        let mut child = cmd
            .arg(file)
            .args(["sh", "-c", "echo locked; exec cat >/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("running flock")?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        if line.trim() == "locked" {
            return Ok(Some(Self { child }));
        }
        drop(child.stdin.take());
        let _ = child.wait();
        Ok(None)
    }
}

impl Drop for CacheLock {
    fn drop(&mut self) {
        // Closing cat's stdin ends it, which releases the lock.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn mb(path: &Path) -> String {
    std::fs::metadata(path)
        .map(|m| format!("{:.1} MB", m.len() as f64 / 1e6))
        .unwrap_or_else(|_| "?".into())
}

/// Fetches the guest packages (from the cache, or with apt when `refresh` or nothing is
/// cached), builds an evidence initramfs with the attestation modules, and prints versions,
/// paths and sizes. For trying the provisioning by hand.
pub fn fetch_and_report(refresh: bool) -> Result<()> {
    let p = if refresh {
        refresh_guest_packages()?
    } else {
        guest_packages()?
    };
    let k = &p.kernel;
    let modules = initramfs::ModuleIndex::scan(&k.modules_dir)?;
    println!("kernel        {} (package {})", k.release, k.version);
    println!("  image       {} ({})", k.image.display(), mb(&k.image));
    println!(
        "  modules     {} ({} modules)",
        k.modules_dir.display(),
        modules.len()
    );
    println!(
        "busybox       {} ({}, {})",
        p.busybox_version,
        p.busybox.display(),
        mb(&p.busybox)
    );
    for d in &p.debs {
        println!(
            "deb           {} {} ({}) sha256 {}",
            d.name,
            d.version,
            mb(&d.path),
            d.sha256
        );
    }
    let spec = InitramfsSpec::new(
        &p.busybox,
        InitScript::Evidence {
            then: Then::PowerOff,
        },
    )
    .with_modules(&k.modules_dir, &["configfs", "tsm_report", "arm-cca-guest"]);
    let initrd = build_initramfs(&spec)?;
    println!("initramfs     {} ({})", initrd.display(), mb(&initrd));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_dir_precedence() {
        let s = |x: &str| Some(OsString::from(x));
        assert_eq!(
            cache_dir_from(s("/c"), s("/x"), s("/h")).unwrap(),
            PathBuf::from("/c")
        );
        assert_eq!(
            cache_dir_from(None, s("/x"), s("/h")).unwrap(),
            PathBuf::from("/x/cca-rs")
        );
        assert_eq!(
            cache_dir_from(s(""), s("relative"), s("/h")).unwrap(),
            PathBuf::from("/h/.cache/cca-rs")
        );
        let rel = cache_dir_from(s("rel"), None, None).unwrap();
        assert!(rel.is_absolute() && rel.ends_with("rel"));
        assert!(cache_dir_from(None, None, None).is_err());
        assert!(cache_dir_from(None, s(""), s("")).is_err());
    }

    #[test]
    fn hashes() {
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(sha256_bytes(b"").unwrap(), empty);
        assert_eq!(
            sha256_bytes(b"abc").unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let f = std::env::temp_dir().join(format!("cca-hash-test-{}", std::process::id()));
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(sha256_file(&f).unwrap(), sha256_bytes(b"abc").unwrap());
        std::fs::remove_file(&f).unwrap();
        assert!(sha256_file(&f).is_err(), "missing file");
        assert!(parse_sha256sum(b"nothex  -\n").is_err());
        assert!(parse_sha256sum(b"").is_err());
    }

    #[test]
    fn the_cache_lock_excludes_and_releases() {
        let d = std::env::temp_dir().join(format!("cca-lock-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let first = CacheLock::acquire(&d).unwrap();
        assert!(
            CacheLock::spawn(&d.join("lock"), true).unwrap().is_none(),
            "held"
        );
        drop(first);
        let again = CacheLock::spawn(&d.join("lock"), true).unwrap();
        assert!(again.is_some(), "released");
        drop(again);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
