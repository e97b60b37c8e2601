//! Disks for `cargo xtask run --disk FILE[,ro]` (kvmtool's `-d/--disk`): the option's
//! syntax, where the image goes in the host's memory, a root filesystem builder (ext4 made
//! with `mke2fs -d` from Debian's e2fsprogs, holding static BusyBox and an init script), the
//! init scripts that mount it from `/dev/vda` and switch root to it, and a reader of files
//! in an image (`debugfs`) for tests.

use crate::guest::{InitScript, InitramfsFile};
use crate::setup::step;
use anyhow::{bail, Context, Result};
use host_core::vmm::launch::Disk;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The e2fsprogs commands used here: `(command, Debian package)`.
pub const E2FS_TOOLS: &[(&str, &str)] = &[("mke2fs", "e2fsprogs"), ("debugfs", "e2fsprogs")];

/// The disk image is placed at this alignment after the kernel and initrd.
pub const DISK_ALIGN: u64 = 2 << 20;

/// A parsed `--disk` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskArg {
    /// The raw image file.
    pub path: PathBuf,
    /// `,ro`: the guest may not write it.
    pub read_only: bool,
}

/// Parses `FILE`, `FILE,ro` or `FILE,rw` (a file whose name ends in `,ro` must be given as
/// `FILE,ro,rw`).
pub fn parse_disk_arg(s: &str) -> Result<DiskArg> {
    let (path, read_only) = match s.rsplit_once(',') {
        Some((p, "ro")) => (p, true),
        Some((p, "rw")) => (p, false),
        _ => (s, false),
    };
    if path.is_empty() {
        bail!("--disk needs a file name (--disk FILE[,ro])");
    }
    Ok(DiskArg {
        path: PathBuf::from(path),
        read_only,
    })
}

/// Where the image of `arg` goes in host memory: the first [`DISK_ALIGN`] boundary at or
/// after `files_end`, which must leave it below `window_end`. Checks the file is a non-empty
/// whole number of 512-byte sectors.
pub fn place(arg: &DiskArg, files_end: u64, window_end: u64) -> Result<Disk> {
    let size = std::fs::metadata(&arg.path)
        .with_context(|| format!("the disk {}", arg.path.display()))?
        .len();
    if size == 0 || size % 512 != 0 {
        bail!(
            "the disk {} is {size} bytes: a disk image must be a non-empty number of 512-byte \
             sectors",
            arg.path.display()
        );
    }
    let pa = files_end.div_ceil(DISK_ALIGN) * DISK_ALIGN;
    if pa.checked_add(size).is_none_or(|end| end > window_end) {
        bail!(
            "the disk {} ({} MiB) does not fit in the host's file window after the kernel and \
             initrd ({} MiB left): the host keeps the image in its memory",
            arg.path.display(),
            size >> 20,
            window_end.saturating_sub(pa) >> 20
        );
    }
    Ok(Disk {
        pa,
        size,
        read_only: arg.read_only,
    })
}

/// `value` escaped for a QEMU option list (a comma is written twice).
pub fn qemu_opt_escape(value: &str) -> String {
    value.replace(',', ",,")
}

/// Finds an e2fsprogs command, also in the `sbin` directories a non-root `PATH` may lack,
/// installing e2fsprogs where [`crate::setup`] can.
pub fn e2fs_tool(name: &str) -> Result<PathBuf> {
    let find = || {
        crate::setup::find_in_path(name).or_else(|| {
            ["/usr/sbin", "/sbin"]
                .iter()
                .map(|d| Path::new(d).join(name))
                .find(|p| p.is_file())
        })
    };
    if let Some(p) = find() {
        return Ok(p);
    }
    crate::setup::require_tools(E2FS_TOOLS)?;
    find().with_context(|| format!("`{name}` (e2fsprogs) not found"))
}

/// What goes into a root filesystem image.
#[derive(Clone, Debug)]
pub struct RootfsSpec {
    /// The static aarch64 BusyBox binary, installed as `/bin/busybox`.
    pub busybox: PathBuf,
    /// `/sbin/init`, run after the switch of root.
    pub init: String,
    /// Further files (parents created).
    pub files: Vec<InitramfsFile>,
    /// The image size in MiB.
    pub size_mib: u64,
}

/// The directories of a root filesystem: `(path, mode)`.
const ROOT_DIRS: [(&str, u32); 11] = [
    ("bin", 0o755),
    ("sbin", 0o755),
    ("dev", 0o755),
    ("proc", 0o555),
    ("sys", 0o555),
    ("tmp", 0o1777),
    ("etc", 0o755),
    ("root", 0o700),
    ("mnt", 0o755),
    ("lib", 0o755),
    ("persist", 0o755),
];

/// Builds an ext4 image at `out` from `spec` with `mke2fs -d` (labelled `cca-root`).
pub fn build_rootfs(spec: &RootfsSpec, out: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mke2fs = e2fs_tool("mke2fs")?;
    let staging = out.with_extension("staging");
    let _ = std::fs::remove_dir_all(&staging);
    for (d, mode) in ROOT_DIRS {
        let p = staging.join(d);
        std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
    }
    let write = |rel: &str, mode: u32, data: &[u8]| -> Result<()> {
        let p = staging.join(rel.trim_start_matches('/'));
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, data).with_context(|| format!("writing {}", p.display()))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
        Ok(())
    };
    let busybox = std::fs::read(&spec.busybox)
        .with_context(|| format!("reading {}", spec.busybox.display()))?;
    write("bin/busybox", 0o755, &busybox)?;
    write("sbin/init", 0o755, spec.init.as_bytes())?;
    for f in &spec.files {
        write(&f.path, f.mode, &f.data)?;
    }
    let _ = std::fs::remove_file(out);
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    file.set_len(spec.size_mib << 20)?;
    drop(file);
    let o = Command::new(&mke2fs)
        .args([
            "-q",
            "-F",
            "-t",
            "ext4",
            "-L",
            "cca-root",
            "-E",
            "root_owner=0:0",
            "-d",
        ])
        .arg(&staging)
        .arg(out)
        .output()
        .context("running mke2fs")?;
    let _ = std::fs::remove_dir_all(&staging);
    if !o.status.success() {
        bail!(
            "mke2fs -d failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    step(&format!(
        "root filesystem: {} ({} MiB ext4, BusyBox, /sbin/init)",
        out.display(),
        spec.size_mib
    ));
    Ok(())
}

/// The contents of `path` in the ext4 image `image` (`debugfs -R "cat PATH"`); `None` if
/// the file does not exist.
pub fn read_from_image(image: &Path, path: &str) -> Result<Option<Vec<u8>>> {
    let debugfs = e2fs_tool("debugfs")?;
    let o = Command::new(debugfs)
        .arg("-R")
        .arg(format!("cat {path}"))
        .arg(image)
        .output()
        .context("running debugfs")?;
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() {
        bail!("debugfs failed on {}: {}", image.display(), err.trim());
    }
    if err.contains("File not found") {
        return Ok(None);
    }
    Ok(Some(o.stdout))
}

/// The initramfs `/init` that loads the modules (`virtio_blk`), mounts `/dev/vda` (ext4,
/// read-only if `read_only`) on `/newroot`, moves `/dev`, `/proc` and `/sys` there and
/// switches root to it, running its `/sbin/init`.
pub fn switch_root_init(read_only: bool) -> InitScript {
    let opts = if read_only { "ro,noload" } else { "rw" };
    InitScript::Custom(format!(
        "{}{}",
        InitScript::prologue(),
        SWITCH_ROOT.replace("@OPTS@", opts)
    ))
}

const SWITCH_ROOT: &str = r#"i=0
while [ ! -b /dev/vda ] && [ $i -lt 30 ]; do sleep 1; i=$((i+1)); done
echo "CCA-INIT: vda: $(cat /sys/block/vda/size 2>/dev/null) sectors"
mkdir -p /newroot
# The kernel prints to the same 16550 from its own thread: keep its mount message (and the
# rest) off the console so that it cannot land inside the lines below.
echo 1 > /proc/sys/kernel/printk
if mount -t ext4 -o @OPTS@ /dev/vda /newroot; then
  echo "CCA-INIT: root mounted: /dev/vda (@OPTS@)"
  mount --move /dev /newroot/dev
  mount --move /proc /newroot/proc
  mount --move /sys /newroot/sys
  exec switch_root /newroot /sbin/init
fi
echo "CCA-INIT: root mount failed"
echo "CCA-INIT: done"
poweroff -f
while :; do sleep 1; done
"#;

/// The `/sbin/init` of the root filesystem the tests build: reports where root is and
/// whether `vda` is read-only, prints the token `/persist/token` holds, writes the one the
/// kernel command line gives (`cca.token=...`) and syncs; on a read-only root also tries a
/// raw write to `/dev/vda`; says hello on `hvc0` and reads a line typed there (60 s); then
/// powers off.
pub const DISK_INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
echo "CCA-INIT: stage2: $(grep ' / ' /proc/mounts | head -n 1)"
echo "CCA-INIT: vda-ro: $(cat /sys/block/vda/ro)"
old=$(cat /persist/token 2>/dev/null)
echo "CCA-INIT: token-old: ${old:-none}"
new=$(sed -n 's/.*cca\.token=\([^ ]*\).*/\1/p' /proc/cmdline)
if [ -n "$new" ]; then
  if echo "$new" > /persist/token 2>/dev/null && sync; then
    echo "CCA-INIT: token-written: $new"
  else
    echo "CCA-INIT: token-write-failed"
  fi
fi
if grep -q ' / ext4 ro' /proc/mounts; then
  if dd if=/dev/zero of=/dev/vda bs=512 count=1 conv=fsync 2>/dev/null; then
    echo "CCA-INIT: raw-write: done"
  else
    echo "CCA-INIT: raw-write: refused"
  fi
fi
if [ -c /dev/hvc0 ]; then
  # The 16550 sends in the background: let it finish before hvc0 starts its lines.
  sleep 1
  echo "CCA-INIT: hvc0: hello over virtio-console" > /dev/hvc0
  echo "CCA-INIT: hvc0: type a line" > /dev/hvc0
  line=""
  read -t 60 line < /dev/hvc0
  echo "CCA-INIT: hvc0-read: ${line:-none}" > /dev/hvc0
else
  echo "CCA-INIT: hvc0: absent"
fi
sync
echo "CCA-INIT: done"
# Let the 16550 drain the line before the kernel's own power-off message.
sleep 1
poweroff -f
while :; do sleep 1; done
"#;

/// The benchmark guest (after the usual prologue, which loads `virtio_blk`): an untimed pass
/// over the raw `/dev/vda` (so the swiotlb pages the transfers use are already shared), then
/// 64 MiB read and 64 MiB written sequentially with `O_DIRECT` in 1 MiB blocks, each timed
/// with `/proc/uptime` (nanoseconds are instructions under `-icount shift=0`); then 16 KiB
/// on the 16550 and 16 KiB on `hvc0`, in 64-byte lines.
const BENCH_SCRIPT: &str = r#"i=0
while [ ! -b /dev/vda ] && [ $i -lt 30 ]; do sleep 1; i=$((i+1)); done
up() { cut -d' ' -f1 /proc/uptime; }
dd if=/dev/vda of=/dev/null bs=1M count=64 iflag=direct 2>/dev/null
dd if=/dev/zero of=/dev/vda bs=1M count=64 oflag=direct 2>/dev/null
a=$(up); dd if=/dev/vda of=/dev/null bs=1M count=64 iflag=direct 2>/dev/null; b=$(up)
echo "CCA-INIT: bench-read: 67108864 $a $b"
a=$(up); dd if=/dev/zero of=/dev/vda bs=1M count=64 oflag=direct conv=fsync 2>/dev/null; b=$(up)
echo "CCA-INIT: bench-write: 67108864 $a $b"
line=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
yes $line | head -c 16384 > /dev/ttyS0
sleep 1
yes $line | head -c 16384 > /dev/hvc0
echo "CCA-INIT: done"
sleep 1
poweroff -f
while :; do sleep 1; done
"#;

/// The value of `key=` in the host's `STAT <dev>` line of `run`.
pub fn stat(run: &super::LinuxRun, dev: &str, key: &str) -> Option<u64> {
    let prefix = format!("[HOST] STAT {dev} ");
    let line = run
        .outcome
        .lines
        .iter()
        .find_map(|l| l.strip_prefix(&prefix))?;
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// `(bytes, nanoseconds)` of a `CCA-INIT: bench-NAME: BYTES T0 T1` line (uptimes in s).
fn timed(console: &str, name: &str) -> Option<(u64, u64)> {
    let marker = format!("CCA-INIT: bench-{name}: ");
    let v = console.lines().find_map(|l| l.split(&marker).nth(1))?;
    let mut w = v.split_whitespace();
    let bytes = w.next()?.parse().ok()?;
    let t0: f64 = w.next()?.parse().ok()?;
    let t1: f64 = w.next()?.parse().ok()?;
    Some((bytes, ((t1 - t0) * 1e9) as u64))
}

/// `cargo xtask bench`'s virtio rows, from one Linux realm boot under `-icount shift=0`
/// with a blank 64 MiB disk: `(name, ops, value)` where the value is, by row, bytes per
/// million guest instructions (ops: bytes), register accesses (exits) per request × 100
/// (ops: requests), and console bytes per exit × 100 (ops: bytes).
pub fn bench_virtio(
    imgs: &crate::images::Images,
    out_dir: &Path,
) -> Result<Vec<(String, u64, u64)>> {
    std::fs::create_dir_all(out_dir)?;
    let image = out_dir.join("bench-disk.img");
    let f =
        std::fs::File::create(&image).with_context(|| format!("creating {}", image.display()))?;
    f.set_len(64 << 20)?;
    drop(f);
    let mut args = super::LaunchArgs::new(256, 2);
    args.icount = true;
    args.timeout = 1800;
    args.disk = Some(image.display().to_string());
    let init = InitScript::Custom(format!("{}{BENCH_SCRIPT}", InitScript::prologue()));
    step("benchmark: virtio-blk and the two consoles in a Linux realm under -icount shift=0");
    let run = super::boot_linux(imgs, &args, init, &["virtio_blk"], out_dir, false, &[])?;
    if !run.passed() {
        for l in &run.outcome.lines {
            eprintln!("{l}");
        }
        bail!("the virtio benchmark run failed");
    }
    let console = run.realm_console();
    let mut rows = Vec::new();
    for name in ["read", "write"] {
        let (bytes, ns) = timed(&console, name)
            .with_context(|| format!("no bench-{name} line from the guest"))?;
        rows.push((
            format!("virtio_blk_seq_{name}_bytes_per_Minsn"),
            bytes,
            (u128::from(bytes) * 1_000_000 / u128::from(ns.max(1))) as u64,
        ));
    }
    let get = |dev: &str, key: &str| {
        stat(&run, dev, key).with_context(|| format!("no {key} in the host's STAT {dev} line"))
    };
    let (requests, accesses) = (
        get("virtio_blk", "requests")?,
        get("virtio_blk", "accesses")?,
    );
    rows.push((
        "virtio_blk_exits_per_request_x100".into(),
        requests,
        accesses * 100 / requests.max(1),
    ));
    for (row, dev) in [
        ("console_16550_bytes_per_exit_x100", "uart"),
        ("console_virtio_bytes_per_exit_x100", "virtio_console"),
    ] {
        let (bytes, accesses) = (get(dev, "bytes")?, get(dev, "accesses")?);
        rows.push((row.into(), bytes, bytes * 100 / accesses.max(1)));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cca-disk-test-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn disk_arguments() {
        let a = parse_disk_arg("root.img").unwrap();
        assert_eq!((a.path, a.read_only), (PathBuf::from("root.img"), false));
        let a = parse_disk_arg("/x/root.img,ro").unwrap();
        assert_eq!((a.path, a.read_only), (PathBuf::from("/x/root.img"), true));
        let a = parse_disk_arg("a,b.img,rw").unwrap();
        assert_eq!((a.path, a.read_only), (PathBuf::from("a,b.img"), false));
        let a = parse_disk_arg("a,b.img").unwrap();
        assert_eq!(a.path, PathBuf::from("a,b.img"));
        assert!(parse_disk_arg(",ro").is_err());
        assert!(parse_disk_arg("").is_err());
        assert_eq!(qemu_opt_escape("/a,b/c"), "/a,,b/c");
    }

    #[test]
    fn placement_after_the_files() {
        let d = tmp("place");
        let f = d.join("d.img");
        std::fs::write(&f, vec![0u8; 4096]).unwrap();
        let arg = DiskArg {
            path: f.clone(),
            read_only: true,
        };
        let disk = place(&arg, 0x4300_0001, 0x6000_0000).unwrap();
        assert_eq!(disk.pa, 0x4320_0000);
        assert_eq!((disk.size, disk.read_only), (4096, true));
        assert!(place(&arg, 0x5fff_f000, 0x6000_0000)
            .unwrap_err()
            .to_string()
            .contains("does not fit"));
        std::fs::write(&f, vec![0u8; 1000]).unwrap();
        assert!(place(&arg, 0, 1 << 40)
            .unwrap_err()
            .to_string()
            .contains("512"));
        std::fs::write(&f, b"").unwrap();
        assert!(place(&arg, 0, 1 << 40).is_err());
        let missing = DiskArg {
            path: d.join("missing"),
            read_only: false,
        };
        assert!(place(&missing, 0, 1 << 40).is_err());
    }

    #[test]
    fn a_root_filesystem_is_built_and_read_back() {
        let d = tmp("rootfs");
        let busybox = d.join("busybox");
        std::fs::write(&busybox, b"not really busybox").unwrap();
        let spec = RootfsSpec {
            busybox,
            init: DISK_INIT.to_string(),
            files: vec![InitramfsFile {
                path: "/persist/token".into(),
                mode: 0o644,
                data: b"seed\n".to_vec(),
            }],
            size_mib: 8,
        };
        let img = d.join("root.img");
        build_rootfs(&spec, &img).unwrap();
        assert_eq!(std::fs::metadata(&img).unwrap().len(), 8 << 20);
        assert_eq!(
            read_from_image(&img, "/persist/token").unwrap().as_deref(),
            Some(&b"seed\n"[..])
        );
        assert_eq!(
            read_from_image(&img, "/sbin/init").unwrap().as_deref(),
            Some(DISK_INIT.as_bytes())
        );
        assert_eq!(read_from_image(&img, "/nothing").unwrap(), None);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn benchmark_lines() {
        let c =
            "x\n[ 1.0] CCA-INIT: bench-read: 33554432 12.50 13.75\nCCA-INIT: bench-write: 8 1 x\n";
        assert_eq!(timed(c, "read"), Some((33554432, 1_250_000_000)));
        assert_eq!(timed(c, "write"), None, "malformed");
        assert_eq!(timed(c, "other"), None);
        assert!(BENCH_SCRIPT.contains("CCA-INIT: done"));
    }

    #[test]
    fn switch_root_scripts() {
        let InitScript::Custom(rw) = switch_root_init(false) else {
            panic!("a custom script")
        };
        assert!(rw.starts_with(InitScript::prologue()));
        assert!(rw.contains("mount -t ext4 -o rw /dev/vda /newroot"));
        assert!(rw.contains("exec switch_root /newroot /sbin/init"));
        let InitScript::Custom(ro) = switch_root_init(true) else {
            panic!("a custom script")
        };
        assert!(ro.contains("-o ro,noload"));
        assert!(!ro.contains("@OPTS@"));
    }
}
