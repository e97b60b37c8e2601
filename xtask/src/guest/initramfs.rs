//! The guest initramfs: a `newc` archive holding static BusyBox, an `/init` script, the
//! directories and `/dev/console` node the kernel needs before devtmpfs, and optional
//! kernel modules (decompressed, loaded by `/init` in the order given), gzip-compressed with
//! `gzip -n -9` into a content-addressed file in the cache.

use super::cpio::CpioWriter;
use super::init::{InitScript, LOAD_ORDER};
use super::packages::check_aarch64_elf;
use super::{cache_dir, sha256_bytes};
use crate::setup::step;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// What goes into an initramfs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitramfsSpec {
    /// The `/init` script.
    pub init: InitScript,
    /// The static aarch64 BusyBox binary (see [`super::busybox`]), installed as `/bin/busybox`.
    pub busybox: PathBuf,
    /// The modules tree to take modules from ([`super::DebianKernel::modules_dir`]); needed
    /// only when `modules` is not empty.
    pub modules_dir: Option<PathBuf>,
    /// Module names (`-` and `_` are equivalent), loaded by `/init` in this order.
    pub modules: Vec<String>,
    /// Further files.
    pub files: Vec<InitramfsFile>,
}

/// A further file of an initramfs; missing parent directories are created (mode 0755).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitramfsFile {
    /// Absolute path in the guest, e.g. `/etc/motd`.
    pub path: String,
    /// Permission bits, e.g. `0o644`.
    pub mode: u32,
    /// Contents.
    pub data: Vec<u8>,
}

impl InitramfsSpec {
    /// BusyBox and `init`, no modules, no further files.
    pub fn new(busybox: impl Into<PathBuf>, init: InitScript) -> Self {
        Self {
            init,
            busybox: busybox.into(),
            modules_dir: None,
            modules: Vec::new(),
            files: Vec::new(),
        }
    }

    /// Adds modules from `modules_dir`, to be loaded in the order given.
    pub fn with_modules(mut self, modules_dir: impl Into<PathBuf>, names: &[&str]) -> Self {
        self.modules_dir = Some(modules_dir.into());
        self.modules.extend(names.iter().map(|s| s.to_string()));
        self
    }

    /// Adds a file.
    pub fn with_file(mut self, path: &str, mode: u32, data: impl Into<Vec<u8>>) -> Self {
        self.files.push(InitramfsFile {
            path: path.to_string(),
            mode,
            data: data.into(),
        });
        self
    }
}

/// The directories every initramfs has: `(path, mode)`.
const DIRS: [(&str, u32); 9] = [
    ("bin", 0o755),
    ("dev", 0o755),
    ("etc", 0o755),
    ("proc", 0o555),
    ("root", 0o700),
    ("sbin", 0o755),
    ("sys", 0o555),
    ("tmp", 0o1777),
    ("lib", 0o755),
];

/// Builds the initramfs (or reuses the identical one built before) and returns its path:
/// `<cache>/initramfs/initramfs-<sha256 of the archive, 16 digits>.cpio.gz`.
pub fn build_initramfs(spec: &InitramfsSpec) -> Result<PathBuf> {
    super::require_host_tools(super::INITRAMFS_TOOLS)?;
    let archive = archive(spec)?;
    let hash = sha256_bytes(&archive)?;
    let dir = cache_dir()?.join("initramfs");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("initramfs-{}.cpio.gz", &hash[..16]));
    if path.exists() {
        step(&format!("initramfs: reusing {}", path.display()));
        return Ok(path);
    }
    gzip_to(&archive, &path)?;
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    step(&format!(
        "initramfs: {} ({} bytes, {} uncompressed; modules: {})",
        path.display(),
        size,
        archive.len(),
        if spec.modules.is_empty() {
            "none".to_string()
        } else {
            spec.modules.join(", ")
        }
    ));
    Ok(path)
}

static TMP_SEQ: AtomicU32 = AtomicU32::new(0);

/// `gzip -n -9` of `data` into `path`, written to a temporary file first and renamed.
fn gzip_to(data: &[u8], path: &Path) -> Result<()> {
    let tmp = path.with_extension(format!(
        "tmp.{}.{}",
        std::process::id(),
        TMP_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let out = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut child = Command::new("gzip")
        .args(["-n", "-9", "-c"])
        .stdin(Stdio::piped())
        .stdout(out)
        .spawn()
        .context("running gzip")?;
    let mut stdin = child.stdin.take().context("gzip's stdin")?;
    let written = stdin.write_all(data);
    drop(stdin);
    let status = child.wait().context("waiting for gzip")?;
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).context("writing to gzip");
    }
    if !status.success() {
        let _ = std::fs::remove_file(&tmp);
        bail!("gzip failed ({status})");
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The uncompressed `newc` archive of `spec`.
pub fn archive(spec: &InitramfsSpec) -> Result<Vec<u8>> {
    check_aarch64_elf(&spec.busybox)?;
    let busybox = std::fs::read(&spec.busybox)
        .with_context(|| format!("reading {}", spec.busybox.display()))?;
    let modules = load_modules(spec)?;
    let mut w = CpioWriter::new();
    for (d, mode) in DIRS {
        w.dir(d, mode)?;
    }
    // The kernel opens /dev/console for init's stdio before anything mounts devtmpfs.
    w.char_device("dev/console", 0o600, 5, 1)?;
    w.file("bin/busybox", 0o755, &busybox)?;
    w.file("init", 0o755, spec.init.render().as_bytes())?;
    if !modules.is_empty() {
        w.dir("lib/modules", 0o755)?;
        let mut order = String::new();
        for (name, data) in &modules {
            w.file(&format!("lib/modules/{name}.ko"), 0o644, data)?;
            order.push_str(name);
            order.push('\n');
        }
        w.file(LOAD_ORDER, 0o644, order.as_bytes())?;
    }
    for f in &spec.files {
        let rel = f.path.trim_start_matches('/');
        let mut parent = String::new();
        let parts: Vec<&str> = rel.split('/').collect();
        for p in parts.iter().take(parts.len().saturating_sub(1)) {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(p);
            if !w.contains(&parent) {
                w.dir(&parent, 0o755)?;
            }
        }
        w.file(&f.path, f.mode, &f.data)
            .with_context(|| format!("adding {} to the initramfs", f.path))?;
    }
    Ok(w.finish())
}

/// The requested modules, decompressed: `(file base name, contents)` in the order given.
fn load_modules(spec: &InitramfsSpec) -> Result<Vec<(String, Vec<u8>)>> {
    if spec.modules.is_empty() {
        return Ok(Vec::new());
    }
    let dir = spec.modules_dir.as_deref().ok_or_else(|| {
        anyhow!(
            "modules {:?} requested without a modules tree",
            spec.modules
        )
    })?;
    let index = ModuleIndex::scan(dir)?;
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for name in &spec.modules {
        let path = index.find(name)?;
        let base = module_stem(&path).unwrap_or_default();
        if out.iter().any(|(b, _)| canonical(b) == canonical(&base)) {
            bail!("module {name} is listed twice");
        }
        out.push((base, read_module(&path)?));
    }
    Ok(out)
}

/// A module's contents, decompressed with `xz -dc` if it is a `.ko.xz` (BusyBox's insmod
/// needs plain ELF).
fn read_module(path: &Path) -> Result<Vec<u8>> {
    let data = if path.extension().is_some_and(|x| x == "xz") {
        let out = Command::new("xz")
            .arg("-dc")
            .arg(path)
            .output()
            .context("running xz")?;
        if !out.status.success() {
            bail!(
                "xz -dc {} failed: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        out.stdout
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
    };
    if !data.starts_with(b"\x7fELF") {
        bail!("{} is not an ELF module", path.display());
    }
    Ok(data)
}

/// A module name with `-` written as `_` (the kernel treats them alike).
pub fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

/// `foo-bar` of `.../foo-bar.ko` or `.../foo-bar.ko.xz`.
fn module_stem(path: &Path) -> Option<String> {
    let f = path.file_name()?.to_str()?;
    f.strip_suffix(".ko.xz")
        .or_else(|| f.strip_suffix(".ko"))
        .map(str::to_string)
}

/// The `.ko` and `.ko.xz` files of a modules tree, by canonical name.
#[derive(Debug, Default)]
pub struct ModuleIndex {
    by_name: BTreeMap<String, Vec<PathBuf>>,
}

impl ModuleIndex {
    /// Scans `modules_dir/kernel` (or `modules_dir` if it has no `kernel/`). Symbolic links
    /// are not followed.
    pub fn scan(modules_dir: &Path) -> Result<Self> {
        let root = if modules_dir.join("kernel").is_dir() {
            modules_dir.join("kernel")
        } else {
            modules_dir.to_path_buf()
        };
        let mut idx = Self::default();
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            let entries =
                std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))?;
            for e in entries {
                let e = e.with_context(|| format!("reading {}", d.display()))?;
                let ty = e.file_type()?;
                let p = e.path();
                if ty.is_dir() {
                    stack.push(p);
                } else if ty.is_file() {
                    if let Some(stem) = module_stem(&p) {
                        idx.by_name.entry(canonical(&stem)).or_default().push(p);
                    }
                }
            }
        }
        if idx.by_name.is_empty() {
            bail!("no kernel modules under {}", root.display());
        }
        for v in idx.by_name.values_mut() {
            v.sort();
        }
        Ok(idx)
    }

    /// The file of module `name` (`-` and `_` equivalent).
    pub fn find(&self, name: &str) -> Result<PathBuf> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        {
            bail!("invalid module name {name:?}");
        }
        match self.by_name.get(&canonical(name)).map(Vec::as_slice) {
            Some([one]) => Ok(one.clone()),
            Some(many) if !many.is_empty() => bail!(
                "module name {name} is ambiguous: {}",
                many.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => bail!(
                "no module {name} in this kernel's modules package (it may be built in: \
                 see modules.builtin in linux-base-REL)"
            ),
        }
    }

    /// The number of module names.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether the index is empty (never after a successful scan).
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// Resolves one module name to its file in `modules_dir` (see [`ModuleIndex`]).
pub fn find_module(modules_dir: &Path, name: &str) -> Result<PathBuf> {
    ModuleIndex::scan(modules_dir)?.find(name)
}

#[cfg(test)]
mod tests {
    use super::super::cpio::{tests::parse, S_IFCHR, S_IFDIR, S_IFREG};
    use super::super::init::Then;
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("cca-initramfs-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn fake_elf(path: &Path, tag: &[u8]) {
        let mut e = vec![0u8; 64];
        e[..6].copy_from_slice(b"\x7fELF\x02\x01");
        e[18] = 183;
        e.extend_from_slice(tag);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, e).unwrap();
    }

    /// A modules tree: configfs and arm-cca-guest compressed with the real `xz`, tsm_report
    /// uncompressed, and a name that exists twice.
    fn fake_modules(root: &Path) -> PathBuf {
        let m = root.join("usr/lib/modules/7.3.4+deb13-cloud-arm64");
        let k = m.join("kernel");
        fake_elf(&k.join("fs/configfs/configfs.ko"), b"configfs");
        fake_elf(
            &k.join("drivers/virt/coco/arm-cca-guest/arm-cca-guest.ko"),
            b"cca",
        );
        fake_elf(&k.join("drivers/virt/coco/guest/tsm_report.ko"), b"tsm");
        fake_elf(&k.join("a/dup.ko"), b"1");
        fake_elf(&k.join("b/dup.ko"), b"2");
        std::fs::write(k.join("fs/configfs/notes.txt"), b"not a module").unwrap();
        for f in [
            "fs/configfs/configfs.ko",
            "drivers/virt/coco/arm-cca-guest/arm-cca-guest.ko",
        ] {
            assert!(Command::new("xz")
                .arg(k.join(f))
                .status()
                .unwrap()
                .success());
        }
        m
    }

    #[test]
    fn module_names_resolve_with_dash_and_underscore() {
        let d = scratch("names");
        let m = fake_modules(&d);
        let idx = ModuleIndex::scan(&m).unwrap();
        assert_eq!(idx.len(), 4);
        assert!(idx
            .find("arm_cca_guest")
            .unwrap()
            .ends_with("arm-cca-guest.ko.xz"));
        assert!(idx
            .find("arm-cca-guest")
            .unwrap()
            .ends_with("arm-cca-guest.ko.xz"));
        assert!(idx.find("tsm-report").unwrap().ends_with("tsm_report.ko"));
        assert!(find_module(&m, "configfs")
            .unwrap()
            .ends_with("configfs.ko.xz"));
        let e = idx.find("virtio_blk").unwrap_err();
        assert!(format!("{e}").contains("built in"), "{e}");
        assert!(format!("{}", idx.find("dup").unwrap_err()).contains("ambiguous"));
        for bad in ["", "../configfs", "a b", "notes"] {
            assert!(idx.find(bad).is_err(), "{bad:?}");
        }
        let empty = scratch("empty");
        assert!(ModuleIndex::scan(&empty).is_err());
        assert!(ModuleIndex::scan(&empty.join("missing")).is_err());
        std::fs::remove_dir_all(&d).unwrap();
        std::fs::remove_dir_all(&empty).unwrap();
    }

    #[test]
    fn archive_contents() {
        let d = scratch("archive");
        let m = fake_modules(&d);
        let bb = d.join("busybox");
        fake_elf(&bb, b"busybox");
        let spec = InitramfsSpec::new(
            &bb,
            InitScript::Evidence {
                then: Then::PowerOff,
            },
        )
        .with_modules(&m, &["configfs", "tsm-report", "arm_cca_guest"])
        .with_file("/etc/deep/er/motd", 0o644, b"hello".to_vec());
        let a = archive(&spec).unwrap();
        assert_eq!(a, archive(&spec).unwrap(), "deterministic");
        let e = parse(&a).unwrap();
        let by = |n: &str| {
            e.iter()
                .find(|x| x.name == n)
                .unwrap_or_else(|| panic!("{n}"))
        };
        for (dname, _) in DIRS {
            assert_eq!(by(dname).mode() & 0o170000, S_IFDIR, "{dname}");
        }
        assert_eq!(by("tmp").mode(), S_IFDIR | 0o1777);
        let console = by("dev/console");
        assert_eq!(console.mode(), S_IFCHR | 0o600);
        assert_eq!((console.fields[9], console.fields[10]), (5, 1));
        assert_eq!(by("init").mode(), S_IFREG | 0o755);
        assert_eq!(
            by("init").data,
            InitScript::Evidence {
                then: Then::PowerOff
            }
            .render()
            .as_bytes()
        );
        assert_eq!(by("bin/busybox").mode(), S_IFREG | 0o755);
        assert_eq!(by("bin/busybox").data, std::fs::read(&bb).unwrap());
        // Modules decompressed, named after their files, loaded in the order given.
        let ko = by("lib/modules/configfs.ko");
        assert!(ko.data.starts_with(b"\x7fELF") && ko.data.ends_with(b"configfs"));
        assert!(by("lib/modules/arm-cca-guest.ko").data.ends_with(b"cca"));
        assert!(by("lib/modules/tsm_report.ko").data.ends_with(b"tsm"));
        assert_eq!(
            by(LOAD_ORDER).data,
            b"configfs\ntsm_report\narm-cca-guest\n"
        );
        // Parents of further files come before them.
        let pos = |n: &str| e.iter().position(|x| x.name == n).unwrap();
        assert!(
            pos("etc/deep") < pos("etc/deep/er") && pos("etc/deep/er") < pos("etc/deep/er/motd")
        );
        assert_eq!(by("etc/deep/er/motd").data, b"hello");
        // Directories come before their contents.
        assert!(pos("bin") < pos("bin/busybox") && pos("dev") < pos("dev/console"));
        assert!(
            pos("lib") < pos("lib/modules") && pos("lib/modules") < pos("lib/modules/configfs.ko")
        );
        // Inode numbers in order.
        let inos: Vec<u32> = e.iter().map(|x| x.ino()).collect();
        assert!(inos[..inos.len() - 1].windows(2).all(|w| w[1] == w[0] + 1) && inos[0] == 1);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn archive_errors() {
        let d = scratch("errors");
        let m = fake_modules(&d);
        let bb = d.join("busybox");
        fake_elf(&bb, b"");
        let base = InitramfsSpec::new(&bb, InitScript::Shell);
        assert!(archive(&base).is_ok());
        // No modules: no lib/modules and no load order.
        let e = parse(&archive(&base).unwrap()).unwrap();
        assert!(!e.iter().any(|x| x.name.starts_with("lib/modules")));
        let mut no_dir = base.clone();
        no_dir.modules = vec!["configfs".into()];
        assert!(archive(&no_dir).is_err(), "modules without a tree");
        assert!(archive(&base.clone().with_modules(&m, &["configfs", "configfs"])).is_err());
        assert!(archive(&base.clone().with_modules(&m, &["tsm_report", "tsm-report"])).is_err());
        assert!(archive(&base.clone().with_modules(&m, &["nope"])).is_err());
        assert!(archive(&base.clone().with_file("/init", 0o755, b"dup".to_vec())).is_err());
        assert!(archive(&base.clone().with_file("/a/../b", 0o644, b"".to_vec())).is_err());
        // A corrupt .ko.xz and a module that is not ELF.
        let k = m.join("kernel");
        std::fs::write(k.join("bad.ko.xz"), b"not xz").unwrap();
        std::fs::write(k.join("text.ko"), b"text").unwrap();
        assert!(archive(&base.clone().with_modules(&m, &["bad"])).is_err());
        assert!(archive(&base.clone().with_modules(&m, &["text"])).is_err());
        // BusyBox must be an aarch64 ELF.
        std::fs::write(&bb, b"#!/bin/sh").unwrap();
        assert!(archive(&base).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn gzip_is_deterministic() {
        let d = scratch("gzip");
        let (a, b) = (d.join("a.gz"), d.join("b.gz"));
        gzip_to(b"some archive bytes", &a).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        gzip_to(b"some archive bytes", &b).unwrap();
        let (x, y) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(x, y);
        assert_eq!(&x[..2], [0x1f, 0x8b]);
        assert_eq!(&x[4..8], [0, 0, 0, 0], "no timestamp");
        assert_eq!(x[3] & 0x08, 0, "no file name");
        let back = Command::new("gzip").arg("-dc").arg(&a).output().unwrap();
        assert_eq!(back.stdout, b"some archive bytes");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
