//! Debian's arm64 cloud kernel and static BusyBox, fetched with the private APT
//! configuration and kept in the cache.
//!
//! The kernel is the newest `linux-image-cloud-arm64` of at least [`MIN_KERNEL`] in any of
//! the suites (apt's own candidate is not used: backports carry a lower pin). Its
//! dependency chain `linux-image-cloud-arm64` → `linux-image-REL` → `linux-binary-REL`
//! (the uncompressed `Image`) and `linux-modules-REL` is resolved from the index records.
//! Every `.deb` is checked against the SHA256 of the signed index, whether it was just
//! downloaded or found in the cache, then unpacked with `dpkg-deb -x`. A manifest written
//! after a complete fetch lets later runs reuse the set without running apt.

use super::apt::{self, parse_depends, Apt, Stanza};
use super::debver::DebVersion;
use super::{cache_dir, sha256_file, CacheLock};
use crate::setup::{self, step};
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The kernel metapackage.
pub const KERNEL_META: &str = "linux-image-cloud-arm64";
/// The BusyBox package.
pub const BUSYBOX: &str = "busybox-static";
/// The oldest kernel that runs as a Realm guest.
pub const MIN_KERNEL: &str = "6.13";
/// The manifest's file name in the cache.
pub const MANIFEST: &str = "guest-packages.manifest";
const MANIFEST_HEADER: &str = "cca-guest-packages 1";

/// Debian's arm64 cloud kernel, unpacked in the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebianKernel {
    /// The Debian package version, e.g. `7.3.4-1~bpo13+1`.
    pub version: String,
    /// The kernel release (`uname -r`), e.g. `7.3.4+deb13-cloud-arm64`.
    pub release: String,
    /// The uncompressed arm64 `Image` (`usr/lib/modules/REL/vmlinuz` of `linux-binary-REL`).
    pub image: PathBuf,
    /// The modules tree (`usr/lib/modules/REL` of `linux-modules-REL`, holding `kernel/`).
    pub modules_dir: PathBuf,
}

/// A downloaded package file, verified against the signed index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedDeb {
    /// Package name.
    pub name: String,
    /// Package version.
    pub version: String,
    /// SHA256 from the index (and of the file).
    pub sha256: String,
    /// The `.deb` in the cache.
    pub path: PathBuf,
}

/// Everything the guest initramfs and boot need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestPackages {
    /// The kernel.
    pub kernel: DebianKernel,
    /// The static aarch64 `busybox` binary.
    pub busybox: PathBuf,
    /// The `busybox-static` package version.
    pub busybox_version: String,
    /// The package files the set came from.
    pub debs: Vec<CachedDeb>,
}

/// The set verified in this process (verifying hashes a few tens of MB, so only once).
static VERIFIED: Mutex<Option<GuestPackages>> = Mutex::new(None);

/// The guest packages: the cached set if a complete one is there (one line says which
/// kernel), otherwise fetched now.
pub fn guest_packages() -> Result<GuestPackages> {
    packages(false, true)
}

/// Runs apt even if a set is cached: updates the indexes, picks the newest versions and
/// downloads what the cache does not already hold.
pub fn refresh_guest_packages() -> Result<GuestPackages> {
    packages(true, true)
}

/// The kernel (see [`guest_packages`]).
pub fn debian_kernel() -> Result<DebianKernel> {
    Ok(packages(false, true)?.kernel)
}

/// The static aarch64 BusyBox binary (see [`guest_packages`]).
pub fn busybox() -> Result<PathBuf> {
    Ok(packages(false, false)?.busybox)
}

fn remember(p: &GuestPackages) {
    if let Ok(mut v) = VERIFIED.lock() {
        *v = Some(p.clone());
    }
}

fn packages(refresh: bool, announce: bool) -> Result<GuestPackages> {
    if !refresh {
        if let Some(p) = VERIFIED.lock().ok().and_then(|v| v.clone()) {
            return Ok(p);
        }
    }
    let cache = cache_dir()?;
    if !refresh {
        if let Some(p) = reuse(&cache, announce) {
            return Ok(p);
        }
    }
    std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    let _lock = CacheLock::acquire(&cache)?;
    if !refresh {
        // Another process may have completed the set while this one waited for the lock.
        if let Ok(Some(p)) = Manifest::load(&cache) {
            if announce {
                announce_cached(&cache, &p);
            }
            remember(&p);
            return Ok(p);
        }
    }
    let p = fetch(&cache).map_err(|e| {
        let cached = Manifest::load(&cache).ok().flatten().is_some();
        if cached {
            e.context(format!(
                "refreshing the guest packages failed; the set cached in {} is unchanged",
                cache.display()
            ))
        } else {
            e.context(format!(
                "no Debian guest packages are cached in {} and fetching them failed",
                cache.display()
            ))
        }
    })?;
    remember(&p);
    Ok(p)
}

fn reuse(cache: &Path, announce: bool) -> Option<GuestPackages> {
    match Manifest::load(cache) {
        Ok(None) => None,
        Ok(Some(p)) => {
            if announce {
                announce_cached(cache, &p);
            }
            remember(&p);
            Some(p)
        }
        Err(e) => {
            eprintln!(
                "    the guest packages cached in {} cannot be used ({e:#}); fetching them again",
                cache.display()
            );
            None
        }
    }
}

fn announce_cached(cache: &Path, p: &GuestPackages) {
    step(&format!(
        "using the cached Debian kernel {} ({}) from {}",
        p.kernel.release,
        p.kernel.version,
        cache.display()
    ));
}

/// The mirror: `$CCA_DEBIAN_MIRROR`, else the configured Debian sources' URI.
fn mirror() -> Result<String> {
    if let Some(m) = std::env::var("CCA_DEBIAN_MIRROR")
        .ok()
        .filter(|m| !m.is_empty())
    {
        return Ok(m);
    }
    setup::debian_mirror().ok_or_else(|| {
        anyhow!(
            "no Debian mirror is configured in /etc/apt/sources.list or \
             /etc/apt/sources.list.d/*.sources; set CCA_DEBIAN_MIRROR to one \
             (e.g. CCA_DEBIAN_MIRROR=http://deb.debian.org/debian)"
        )
    })
}

/// One package to fetch, from its index record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PackageFile {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub size: u64,
}

impl PackageFile {
    pub(crate) fn from_stanza(s: &Stanza) -> Result<Self> {
        let name = s.require("Package")?.to_string();
        if !valid_package_name(&name) {
            bail!("invalid package name {name:?} in the index");
        }
        let version = s.require("Version")?.to_string();
        DebVersion::parse(&version)?;
        let sha256 = s.require("SHA256")?.to_ascii_lowercase();
        if !is_sha256(&sha256) {
            bail!("the index lists no valid SHA256 for {name} {version}");
        }
        let size = s
            .require("Size")?
            .parse()
            .with_context(|| format!("the Size of {name} {version} in the index"))?;
        Ok(Self {
            name,
            version,
            sha256,
            size,
        })
    }

    /// The file name apt-get download gives it (`:` of an epoch quoted as `%3a`).
    pub(crate) fn deb_name(&self) -> String {
        format!("{}_{}_{}.deb", self.name, quote(&self.version), apt::ARCH)
    }

    fn dir_name(&self) -> String {
        format!("{}_{}", self.name, quote(&self.version))
    }
}

fn quote(version: &str) -> String {
    version.replace(':', "%3a")
}

fn valid_package_name(n: &str) -> bool {
    n.len() >= 2
        && n.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+-.".contains(&c))
}

pub(crate) fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// The version a dependency asks for: its `=` version, else `default`.
fn dep_version(relation: &Option<(String, String)>, default: &str) -> String {
    match relation {
        Some((op, v)) if op == "=" => v.clone(),
        _ => default.to_string(),
    }
}

/// `linux-image-REL` (and its version) that the metapackage record depends on.
pub(crate) fn image_package(meta: &Stanza) -> Result<(String, String)> {
    let version = meta.require("Version")?;
    parse_depends(meta.require("Depends")?)
        .into_iter()
        .flatten()
        .find(|d| {
            d.name.starts_with("linux-image-")
                && d.name.ends_with("-cloud-arm64")
                && d.name != KERNEL_META
        })
        .map(|d| (d.name.clone(), dep_version(&d.relation, version)))
        .ok_or_else(|| anyhow!("{KERNEL_META} {version} depends on no linux-image-*-cloud-arm64"))
}

/// The release (`uname -r`) of a `linux-image-REL` package name.
pub(crate) fn release_of(image: &str) -> Result<String> {
    let rel = image.strip_prefix("linux-image-").unwrap_or("");
    if rel.is_empty()
        || !rel.bytes().next().is_some_and(|c| c.is_ascii_digit())
        || !rel
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"+-._".contains(&c))
    {
        bail!("cannot tell the kernel release from the package name {image:?}");
    }
    Ok(rel.to_string())
}

/// The packages holding the kernel image and the modules, from `linux-image-REL`'s record:
/// `linux-binary-REL` and `linux-modules-REL` where the kernel is split (6.13 and later);
/// the image package itself otherwise.
pub(crate) fn image_parts(image: &Stanza) -> Result<[(String, String); 2]> {
    let name = image.require("Package")?;
    let version = image.require("Version")?;
    let rel = release_of(name)?;
    let deps: Vec<_> = image
        .get("Depends")
        .map(parse_depends)
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect();
    let find = |prefix: &str| {
        let want = format!("{prefix}{rel}");
        deps.iter()
            .find(|d| d.name == want)
            .map(|d| (d.name.clone(), dep_version(&d.relation, version)))
            .unwrap_or_else(|| (name.to_string(), version.to_string()))
    };
    Ok([find("linux-binary-"), find("linux-modules-")])
}

/// What a fetch resolved.
struct Plan {
    kernel_version: String,
    release: String,
    binary: PackageFile,
    modules: PackageFile,
    busybox: PackageFile,
}

/// The suites offering `version`, e.g. `forky, sid`.
fn suites_of(all: &[apt::Available], version: &DebVersion) -> String {
    let mut s: Vec<&str> = Vec::new();
    for a in all
        .iter()
        .filter(|a| a.version.as_str() == version.as_str())
    {
        if !s.contains(&a.suite.as_str()) {
            s.push(&a.suite);
        }
    }
    s.join(", ")
}

fn resolve(apt: &Apt) -> Result<Plan> {
    let min = DebVersion::parse(MIN_KERNEL)?;
    let all = apt.versions(KERNEL_META)?;
    let listed: Vec<String> = all
        .iter()
        .map(|a| format!("{} ({})", a.version, a.suite))
        .collect();
    let best = apt::newest(&all, Some(&min)).ok_or_else(|| {
        anyhow!(
            "no {KERNEL_META} of version {MIN_KERNEL} or later in {}; the indexes list: {}",
            apt::SUITES.join(", "),
            if listed.is_empty() {
                "none".to_string()
            } else {
                listed.join(", ")
            }
        )
    })?;
    let meta = apt.show(KERNEL_META, best.version.as_str())?;
    let (image_name, image_version) = image_package(&meta)?;
    let release = release_of(&image_name)?;
    let image = apt.show(&image_name, &image_version)?;
    let [(bn, bv), (mn, mv)] = image_parts(&image)?;
    let binary = PackageFile::from_stanza(&apt.show(&bn, &bv)?)?;
    let modules = PackageFile::from_stanza(&apt.show(&mn, &mv)?)?;
    step(&format!(
        "kernel: {KERNEL_META} {} from {} (newest of {}) → {} and {}",
        best.version,
        suites_of(&all, &best.version),
        listed.join(", "),
        binary.name,
        modules.name
    ));
    let bbs = apt.versions(BUSYBOX)?;
    let bb = apt::newest(&bbs, None)
        .ok_or_else(|| anyhow!("no {BUSYBOX} in {}", apt::SUITES.join(", ")))?;
    let busybox = PackageFile::from_stanza(&apt.show(BUSYBOX, bb.version.as_str())?)?;
    step(&format!(
        "busybox: {BUSYBOX} {} from {}",
        bb.version,
        suites_of(&bbs, &bb.version)
    ));
    Ok(Plan {
        kernel_version: best.version.to_string(),
        release,
        binary,
        modules,
        busybox,
    })
}

fn fetch(cache: &Path) -> Result<GuestPackages> {
    super::require_host_tools(super::FETCH_TOOLS)?;
    if !Path::new(apt::KEYRING).exists() {
        bail!(
            "{} is missing: install Debian's archive keyring (apt-get install debian-archive-keyring)",
            apt::KEYRING
        );
    }
    let mirror = mirror()?;
    let apt = Apt::new(cache, &mirror, setup::is_root())?;
    let hint = format!(
        "check that this machine reaches {mirror} (the mirror of its configured Debian sources; \
         CCA_DEBIAN_MIRROR overrides it), then run again. To see apt's own messages:\n  {}",
        apt.command_line("apt-get", "update")
    );
    step(&format!(
        "updating private {} package indexes ({}) from {mirror} in {}",
        apt::ARCH,
        apt::SUITES.join(", "),
        apt.dir().display()
    ));
    // apt-get update exits 0 when it cannot reach the mirror (it only warns), so what
    // counts is whether package indexes are there afterwards.
    match apt.update() {
        Err(e) if !apt.has_indexes() => return Err(e.context(hint)),
        Err(e) => eprintln!("    warning: {e:#}; using the indexes of the last successful update"),
        Ok(()) if !apt.has_indexes() => {
            return Err(
                anyhow!("apt-get update fetched no package index from {mirror}").context(hint),
            )
        }
        Ok(()) => {}
    }
    let plan = resolve(&apt).with_context(|| hint.clone())?;
    let files = [
        plan.binary.clone(),
        plan.modules.clone(),
        plan.busybox.clone(),
    ];
    let mut unique: Vec<PackageFile> = Vec::new();
    for f in files {
        if !unique.contains(&f) {
            unique.push(f);
        }
    }
    let debs = ensure_debs(&apt, cache, &unique).with_context(|| hint.clone())?;
    let dir_of = |f: &PackageFile| -> Result<PathBuf> {
        let deb = debs
            .iter()
            .find(|d| d.name == f.name && d.version == f.version)
            .ok_or_else(|| anyhow!("{} was not downloaded", f.name))?;
        extract(cache, f, &deb.path)
    };
    let image = kernel_image(&dir_of(&plan.binary)?, &plan.release)?;
    let modules_dir = modules_dir(&dir_of(&plan.modules)?, &plan.release)?;
    let busybox = busybox_binary(&dir_of(&plan.busybox)?)?;
    let p = GuestPackages {
        kernel: DebianKernel {
            version: plan.kernel_version,
            release: plan.release,
            image,
            modules_dir,
        },
        busybox,
        busybox_version: plan.busybox.version,
        debs,
    };
    Manifest::write(cache, &p)?;
    step(&format!(
        "guest packages complete: kernel {} ({}), busybox {}; manifest {}",
        p.kernel.release,
        p.kernel.version,
        p.busybox_version,
        cache.join(MANIFEST).display()
    ));
    Ok(p)
}

/// Makes sure every file is in `<cache>/debs` with the index's SHA256, downloading what is
/// missing or does not match.
fn ensure_debs(apt: &Apt, cache: &Path, files: &[PackageFile]) -> Result<Vec<CachedDeb>> {
    let dir = cache.join("debs");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut missing = Vec::new();
    for f in files {
        let path = dir.join(f.deb_name());
        if path.exists() {
            let got = sha256_file(&path)?;
            if got == f.sha256 {
                eprintln!(
                    "    {} is cached and matches the signed index",
                    f.deb_name()
                );
                continue;
            }
            eprintln!(
                "    {} does not match the SHA256 of the signed index ({got}, expected {}); \
                 downloading it again",
                path.display(),
                f.sha256
            );
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
        missing.push(f);
    }
    if !missing.is_empty() {
        let incoming = dir.join("incoming");
        if incoming.exists() {
            std::fs::remove_dir_all(&incoming)
                .with_context(|| format!("removing {}", incoming.display()))?;
        }
        std::fs::create_dir_all(&incoming)?;
        let total: u64 = missing.iter().map(|f| f.size).sum();
        step(&format!(
            "downloading {} ({:.1} MB)",
            missing
                .iter()
                .map(|f| format!("{} {}", f.name, f.version))
                .collect::<Vec<_>>()
                .join(", "),
            total as f64 / 1e6
        ));
        let pairs: Vec<(String, String)> = missing
            .iter()
            .map(|f| (f.name.clone(), f.version.clone()))
            .collect();
        apt.download(&incoming, &pairs)?;
        for f in &missing {
            let got_path = incoming.join(f.deb_name());
            if !got_path.exists() {
                bail!(
                    "apt-get download did not write {} in {}",
                    f.deb_name(),
                    incoming.display()
                );
            }
            let got = sha256_file(&got_path)?;
            if got != f.sha256 {
                bail!(
                    "the downloaded {} does not match the SHA256 of the signed index \
                     ({got}, expected {})",
                    f.deb_name(),
                    f.sha256
                );
            }
            let path = dir.join(f.deb_name());
            std::fs::rename(&got_path, &path)
                .with_context(|| format!("moving {} to {}", got_path.display(), path.display()))?;
        }
        let _ = std::fs::remove_dir_all(&incoming);
    }
    Ok(files
        .iter()
        .map(|f| CachedDeb {
            name: f.name.clone(),
            version: f.version.clone(),
            sha256: f.sha256.clone(),
            path: dir.join(f.deb_name()),
        })
        .collect())
}

const EXTRACTED_MARK: &str = ".cca-extracted";

/// Unpacks a verified `.deb` into `<cache>/pkgs/NAME_VERSION` (reusing an earlier unpack of
/// the same file).
fn extract(cache: &Path, f: &PackageFile, deb: &Path) -> Result<PathBuf> {
    let pkgs = cache.join("pkgs");
    let dir = pkgs.join(f.dir_name());
    if std::fs::read_to_string(dir.join(EXTRACTED_MARK)).is_ok_and(|s| s.trim() == f.sha256) {
        return Ok(dir);
    }
    let tmp = pkgs.join(format!("{}.partial", f.dir_name()));
    for d in [&dir, &tmp] {
        if d.exists() {
            std::fs::remove_dir_all(d).with_context(|| format!("removing {}", d.display()))?;
        }
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    eprintln!("    unpacking {} into {}", f.deb_name(), dir.display());
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(&tmp)
        .status()
        .context("running dpkg-deb")?;
    if !status.success() {
        bail!("dpkg-deb -x {} failed ({status})", deb.display());
    }
    std::fs::write(tmp.join(EXTRACTED_MARK), &f.sha256)?;
    std::fs::rename(&tmp, &dir)
        .with_context(|| format!("moving {} to {}", tmp.display(), dir.display()))?;
    Ok(dir)
}

fn first_existing(root: &Path, candidates: &[String]) -> Option<PathBuf> {
    candidates.iter().map(|c| root.join(c)).find(|p| p.exists())
}

fn kernel_image(root: &Path, release: &str) -> Result<PathBuf> {
    let p = first_existing(
        root,
        &[
            format!("usr/lib/modules/{release}/vmlinuz"),
            format!("boot/vmlinuz-{release}"),
            format!("lib/modules/{release}/vmlinuz"),
        ],
    )
    .ok_or_else(|| anyhow!("no vmlinuz for {release} in {}", root.display()))?;
    check_arm64_image(&p)?;
    Ok(p)
}

fn modules_dir(root: &Path, release: &str) -> Result<PathBuf> {
    let p = first_existing(
        root,
        &[
            format!("usr/lib/modules/{release}"),
            format!("lib/modules/{release}"),
        ],
    )
    .filter(|p| p.join("kernel").is_dir())
    .ok_or_else(|| anyhow!("no modules tree for {release} in {}", root.display()))?;
    Ok(p)
}

fn busybox_binary(root: &Path) -> Result<PathBuf> {
    let p = first_existing(root, &["usr/bin/busybox".into(), "bin/busybox".into()])
        .ok_or_else(|| anyhow!("no busybox binary in {}", root.display()))?;
    check_aarch64_elf(&p)?;
    Ok(p)
}

fn read_head(path: &Path, n: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(n);
    std::fs::File::open(path)
        .with_context(|| format!("opening {}", path.display()))?
        .take(n as u64)
        .read_to_end(&mut buf)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(buf)
}

/// An uncompressed arm64 `Image` has the magic `ARM\x64` at offset 0x38 of its header.
pub(crate) fn check_arm64_image(path: &Path) -> Result<()> {
    let h = read_head(path, 64)?;
    if h.get(0x38..0x3c) != Some(b"ARM\x64".as_slice()) {
        bail!(
            "{} is not an uncompressed arm64 Image (no ARM\\x64 magic at 0x38)",
            path.display()
        );
    }
    Ok(())
}

/// A 64-bit little-endian ELF file for AArch64 (EM_AARCH64 = 183).
pub(crate) fn check_aarch64_elf(path: &Path) -> Result<()> {
    let h = read_head(path, 20)?;
    let ok =
        h.len() == 20 && h[..4] == *b"\x7fELF" && h[4] == 2 && h[5] == 1 && h[18..20] == [183, 0];
    if !ok {
        bail!("{} is not a 64-bit AArch64 ELF file", path.display());
    }
    Ok(())
}

/// The manifest of a complete set, with paths relative to the cache.
struct Manifest;

impl Manifest {
    fn write(cache: &Path, p: &GuestPackages) -> Result<()> {
        let rel = |path: &Path| -> Result<String> {
            let r = path
                .strip_prefix(cache)
                .with_context(|| format!("{} is outside the cache", path.display()))?;
            Ok(r.display().to_string())
        };
        let mut s = format!(
            "{MANIFEST_HEADER}\n# Written after a complete fetch; delete this file to fetch again.\n\
             kernel-version {}\nkernel-release {}\nkernel-image {}\nkernel-modules {}\n\
             busybox-version {}\nbusybox {}\n",
            p.kernel.version,
            p.kernel.release,
            rel(&p.kernel.image)?,
            rel(&p.kernel.modules_dir)?,
            p.busybox_version,
            rel(&p.busybox)?
        );
        for d in &p.debs {
            s.push_str(&format!(
                "deb {} {} {} {}\n",
                d.name,
                d.version,
                d.sha256,
                rel(&d.path)?
            ));
        }
        let path = cache.join(MANIFEST);
        let tmp = cache.join(format!("{MANIFEST}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, s).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// `Ok(None)` without a manifest; an error when it is malformed or the files it names
    /// are missing or do not match.
    fn load(cache: &Path) -> Result<Option<GuestPackages>> {
        let path = cache.join(MANIFEST);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let p = parse_manifest(cache, &text)?;
        for d in &p.debs {
            let got = sha256_file(&d.path)?;
            if got != d.sha256 {
                bail!(
                    "{} has SHA256 {got}, the index listed {}",
                    d.path.display(),
                    d.sha256
                );
            }
        }
        check_arm64_image(&p.kernel.image)?;
        check_aarch64_elf(&p.busybox)?;
        if !p.kernel.modules_dir.join("kernel").is_dir() {
            bail!("{} holds no kernel/ tree", p.kernel.modules_dir.display());
        }
        Ok(Some(p))
    }
}

/// A path in the manifest: relative, inside the cache.
fn cache_path(cache: &Path, rel: &str) -> Result<PathBuf> {
    let p = Path::new(rel);
    if rel.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        bail!("invalid path {rel:?} in the manifest");
    }
    Ok(cache.join(p))
}

fn parse_manifest(cache: &Path, text: &str) -> Result<GuestPackages> {
    let mut lines = text.lines();
    if lines.next() != Some(MANIFEST_HEADER) {
        bail!("not a manifest of this format");
    }
    let mut get = std::collections::BTreeMap::new();
    let mut debs = Vec::new();
    for l in lines {
        if l.starts_with('#') || l.trim().is_empty() {
            continue;
        }
        let (k, v) = l
            .split_once(' ')
            .ok_or_else(|| anyhow!("malformed manifest line {l:?}"))?;
        if k == "deb" {
            let f: Vec<&str> = v.split(' ').collect();
            let [name, version, sha256, file] = f[..] else {
                bail!("malformed manifest line {l:?}");
            };
            if !valid_package_name(name)
                || DebVersion::parse(version).is_err()
                || !is_sha256(sha256)
            {
                bail!("malformed manifest line {l:?}");
            }
            debs.push(CachedDeb {
                name: name.into(),
                version: version.into(),
                sha256: sha256.into(),
                path: cache_path(cache, file)?,
            });
        } else if get.insert(k, v).is_some() {
            bail!("{k} appears twice in the manifest");
        }
    }
    let field = |k: &str| {
        get.get(k)
            .copied()
            .ok_or_else(|| anyhow!("the manifest has no {k}"))
    };
    if debs.is_empty() {
        bail!("the manifest lists no package files");
    }
    Ok(GuestPackages {
        kernel: DebianKernel {
            version: field("kernel-version")?.into(),
            release: release_of(&format!("linux-image-{}", field("kernel-release")?))?,
            image: cache_path(cache, field("kernel-image")?)?,
            modules_dir: cache_path(cache, field("kernel-modules")?)?,
        },
        busybox: cache_path(cache, field("busybox")?)?,
        busybox_version: field("busybox-version")?.into(),
        debs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: &str = "Package: linux-image-cloud-arm64\nVersion: 7.3.4-1~bpo13+1\n\
        Depends: linux-base-cloud-arm64 (= 7.3.4-1~bpo13+1), linux-image-7.3.4+deb13-cloud-arm64 (= 7.3.4-1~bpo13+1), linux-modules-cloud-arm64 (= 7.3.4-1~bpo13+1)\n";
    const IMAGE: &str = "Package: linux-image-7.3.4+deb13-cloud-arm64\nVersion: 7.3.4-1~bpo13+1\n\
        Depends: dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, linux-base-7.3.4+deb13-cloud-arm64 (= 7.3.4-1~bpo13+1), linux-binary-7.3.4+deb13-cloud-arm64 (= 7.3.4-1~bpo13+1), linux-modules-7.3.4+deb13-cloud-arm64 (= 7.3.4-1~bpo13+1)\n";

    #[test]
    fn kernel_dependency_chain() {
        let meta = Stanza::parse_first(META);
        let (name, version) = image_package(&meta).unwrap();
        assert_eq!(name, "linux-image-7.3.4+deb13-cloud-arm64");
        assert_eq!(version, "7.3.4-1~bpo13+1");
        assert_eq!(release_of(&name).unwrap(), "7.3.4+deb13-cloud-arm64");
        let parts = image_parts(&Stanza::parse_first(IMAGE)).unwrap();
        assert_eq!(
            parts,
            [
                (
                    "linux-binary-7.3.4+deb13-cloud-arm64".to_string(),
                    "7.3.4-1~bpo13+1".to_string()
                ),
                (
                    "linux-modules-7.3.4+deb13-cloud-arm64".to_string(),
                    "7.3.4-1~bpo13+1".to_string()
                )
            ]
        );
    }

    #[test]
    fn suites_offering_a_version() {
        let text = "busybox-static | 1:1.38.0-3+b1 | http://m/debian forky/main arm64 Packages\n\
                    busybox-static | 1:1.38.0-3+b1 | http://m/debian sid/main arm64 Packages\n\
                    busybox-static | 1:1.37.0-6+b9 | http://m/debian trixie/main arm64 Packages\n";
        let all = apt::parse_madison(text, BUSYBOX).unwrap();
        let best = apt::newest(&all, None).unwrap();
        assert_eq!(suites_of(&all, &best.version), "forky, sid");
        let old = DebVersion::parse("1:1.37.0-6+b9").unwrap();
        assert_eq!(suites_of(&all, &old), "trixie");
    }

    #[test]
    fn unsplit_kernels_use_the_image_package() {
        let old = "Package: linux-image-6.12.117-cloud-arm64\nVersion: 6.12.117-1\nDepends: kmod\n";
        let parts = image_parts(&Stanza::parse_first(old)).unwrap();
        let me = (
            "linux-image-6.12.117-cloud-arm64".to_string(),
            "6.12.117-1".to_string(),
        );
        assert_eq!(parts, [me.clone(), me]);
        // An unversioned dependency takes the image's version.
        let loose = "Package: linux-image-7.0-cloud-arm64\nVersion: 7.0-2\nDepends: linux-binary-7.0-cloud-arm64\n";
        let parts = image_parts(&Stanza::parse_first(loose)).unwrap();
        assert_eq!(
            parts[0],
            ("linux-binary-7.0-cloud-arm64".into(), "7.0-2".into())
        );
    }

    #[test]
    fn chain_errors() {
        let no_image = Stanza::parse_first(
            "Package: linux-image-cloud-arm64\nVersion: 1.0\nDepends: linux-base-cloud-arm64\n",
        );
        assert!(image_package(&no_image).is_err());
        assert!(image_package(&Stanza::parse_first("Package: x\nVersion: 1\n")).is_err());
        for bad in [
            "linux-image-",
            "linux-binary-7.3",
            "linux-image-../x",
            "linux-image-x1",
        ] {
            assert!(release_of(bad).is_err(), "{bad}");
        }
        assert!(image_parts(&Stanza::parse_first("Package: linux-image-\nVersion: 1\n")).is_err());
    }

    #[test]
    fn package_files_from_the_index() {
        let s = Stanza::parse_first(
            "Package: busybox-static\nVersion: 1:1.38.0-3+b1\nSize: 857920\n\
             SHA256: 968D1AA8F579FA1AC59C26AFA365454369E13CF29848E6400B50028FED0FFDA0\n",
        );
        let f = PackageFile::from_stanza(&s).unwrap();
        assert_eq!(f.deb_name(), "busybox-static_1%3a1.38.0-3+b1_arm64.deb");
        assert_eq!(f.dir_name(), "busybox-static_1%3a1.38.0-3+b1");
        assert_eq!(f.size, 857_920);
        assert!(is_sha256(&f.sha256), "lower-cased");
        for bad in [
            "Package: ../x\nVersion: 1\nSize: 1\nSHA256: 968d1aa8f579fa1ac59c26afa365454369e13cf29848e6400b50028fed0ffda0\n",
            "Package: ok\nVersion: 1\nSize: 1\nSHA256: 1234\n",
            "Package: ok\nVersion: x y\nSize: 1\nSHA256: 968d1aa8f579fa1ac59c26afa365454369e13cf29848e6400b50028fed0ffda0\n",
            "Package: ok\nVersion: 1\nSize: big\nSHA256: 968d1aa8f579fa1ac59c26afa365454369e13cf29848e6400b50028fed0ffda0\n",
            "Package: ok\nVersion: 1\nSHA256: 968d1aa8f579fa1ac59c26afa365454369e13cf29848e6400b50028fed0ffda0\n",
        ] {
            assert!(PackageFile::from_stanza(&Stanza::parse_first(bad)).is_err(), "{bad}");
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cca-pkg-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A fake cached set: a tiny "Image", an ELF header, a modules tree and one .deb.
    fn fake_set(cache: &Path) -> GuestPackages {
        let img = cache.join("pkgs/b/usr/lib/modules/7.3.4+deb13-cloud-arm64/vmlinuz");
        std::fs::create_dir_all(img.parent().unwrap()).unwrap();
        let mut h = vec![0u8; 64];
        h[0x38..0x3c].copy_from_slice(b"ARM\x64");
        std::fs::write(&img, &h).unwrap();
        let mods = cache.join("pkgs/m/usr/lib/modules/7.3.4+deb13-cloud-arm64");
        std::fs::create_dir_all(mods.join("kernel")).unwrap();
        let bb = cache.join("pkgs/bb/usr/bin/busybox");
        std::fs::create_dir_all(bb.parent().unwrap()).unwrap();
        let mut e = vec![0u8; 64];
        e[..6].copy_from_slice(b"\x7fELF\x02\x01");
        e[18] = 183;
        std::fs::write(&bb, &e).unwrap();
        let deb = cache.join("debs/busybox-static_1%3a1.38.0-3+b1_arm64.deb");
        std::fs::create_dir_all(deb.parent().unwrap()).unwrap();
        std::fs::write(&deb, b"not really a deb").unwrap();
        GuestPackages {
            kernel: DebianKernel {
                version: "7.3.4-1~bpo13+1".into(),
                release: "7.3.4+deb13-cloud-arm64".into(),
                image: img,
                modules_dir: mods,
            },
            busybox: bb,
            busybox_version: "1:1.38.0-3+b1".into(),
            debs: vec![CachedDeb {
                name: "busybox-static".into(),
                version: "1:1.38.0-3+b1".into(),
                sha256: sha256_file(&deb).unwrap(),
                path: deb,
            }],
        }
    }

    #[test]
    fn manifest_round_trip_and_corruption() {
        let cache = scratch("manifest");
        assert_eq!(Manifest::load(&cache).unwrap(), None, "no manifest yet");
        let p = fake_set(&cache);
        Manifest::write(&cache, &p).unwrap();
        assert_eq!(Manifest::load(&cache).unwrap(), Some(p.clone()));
        // A corrupted cached .deb is detected.
        std::fs::write(&p.debs[0].path, b"not really a deb, changed").unwrap();
        let e = Manifest::load(&cache).unwrap_err();
        assert!(format!("{e:#}").contains("SHA256"), "{e:#}");
        // So is an Image without its magic.
        let p = fake_set(&cache);
        Manifest::write(&cache, &p).unwrap();
        std::fs::write(&p.kernel.image, b"gzip?").unwrap();
        assert!(Manifest::load(&cache).is_err());
        std::fs::remove_dir_all(&cache).unwrap();
    }

    #[test]
    fn malformed_manifests() {
        let cache = Path::new("/c");
        let good = "cca-guest-packages 1\nkernel-version 7.3.4-1\nkernel-release 7.3.4-cloud-arm64\n\
            kernel-image pkgs/b/vmlinuz\nkernel-modules pkgs/m\nbusybox-version 1.0\nbusybox pkgs/bb/busybox\n\
            deb busybox-static 1.0 968d1aa8f579fa1ac59c26afa365454369e13cf29848e6400b50028fed0ffda0 debs/x.deb\n";
        let p = parse_manifest(cache, good).unwrap();
        assert_eq!(p.kernel.image, Path::new("/c/pkgs/b/vmlinuz"));
        assert_eq!(p.debs.len(), 1);
        for bad in [
            good.replace("cca-guest-packages 1", "cca-guest-packages 2"),
            good.replace("pkgs/b/vmlinuz", "/etc/passwd"),
            good.replace("pkgs/b/vmlinuz", "../../etc/passwd"),
            good.replace("kernel-modules pkgs/m\n", ""),
            good.replace("968d1aa8", "zzzz"),
            good.replace(" debs/x.deb", ""),
            good.replace("busybox-static 1.0", "busybox-static x"),
            good.replace("7.3.4-cloud-arm64", "../x"),
            format!("{good}kernel-version 1\n"),
            good.lines()
                .filter(|l| !l.starts_with("deb "))
                .collect::<Vec<_>>()
                .join("\n"),
            String::new(),
        ] {
            assert!(parse_manifest(cache, &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_checks() {
        let d = scratch("checks");
        let f = d.join("f");
        std::fs::write(&f, b"short").unwrap();
        assert!(check_arm64_image(&f).is_err());
        assert!(check_aarch64_elf(&f).is_err());
        let mut elf = vec![0u8; 20];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[18] = 62; // x86-64
        std::fs::write(&f, &elf).unwrap();
        assert!(check_aarch64_elf(&f).is_err());
        elf[18] = 183;
        std::fs::write(&f, &elf).unwrap();
        assert!(check_aarch64_elf(&f).is_ok());
        assert!(check_arm64_image(&d.join("missing")).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
