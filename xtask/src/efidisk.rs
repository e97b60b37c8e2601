//! A bootable disk for firmware boots (`cargo xtask run --firmware FILE`): a GPT disk image
//! with an EFI system partition and an ext4 root partition, built from Debian's packages with
//! Debian's tools (`sfdisk` from fdisk, `mkfs.vfat` from dosfstools, `mcopy`/`mmd` from mtools,
//! `mke2fs` from e2fsprogs).
//!
//! ```text
//! sector 0..2048          protective MBR, GPT header and entries
//! partition 1 (ESP)       FAT32 "CCA-ESP": \EFI\BOOT\BOOTAA64.EFI (Debian's systemd-boot),
//!                         \loader\loader.conf, \loader\entries\cca.conf, \Image (Debian's
//!                         kernel, an EFI stub), \initrd.img, \startup.nsh
//! partition 2 (root)      ext4 "cca-root": static BusyBox, /sbin/init
//! last 33 sectors         the backup GPT
//! ```
//!
//! The firmware (edk2's kvmtool realm firmware) has no boot option in its RAM-backed
//! variables; it boots the disk as removable media, `\EFI\BOOT\BOOTAA64.EFI`: Debian's
//! systemd-boot (package `systemd-boot-efi`, arm64, fetched into the cache like the kernel),
//! which starts the one entry of `\loader\entries` at once: `\Image` with `\initrd.img` and
//! the command line. (Its built-in UEFI Shell is not an active boot option in this build, so
//! without a removable-media loader the firmware stops in its setup menu; `startup.nsh` runs
//! the same command when the Shell is started by hand.) The kernel's EFI stub loads the
//! initrd, leaves the firmware (ExitBootServices) and boots
//! with the ACPI tables the firmware generated; the initramfs loads `virtio_blk`, mounts
//! `/dev/vda2` and switches root to it. Nothing on this disk is measured into the RIM.

use crate::guest::{self, InitScript, Then};
use crate::launch::disk::{build_rootfs, RootfsSpec};
use crate::setup::step;
use anyhow::{bail, Context, Result};
use host_core::vmm::linux::{firmware_linux_cmdline, DeviceSet};
use host_core::vmm::platform;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The tools the builder runs: `(command, Debian package)`.
pub const EFI_DISK_TOOLS: &[(&str, &str)] = &[
    ("sfdisk", "fdisk"),
    ("mkfs.vfat", "dosfstools"),
    ("mcopy", "mtools"),
    ("mmd", "mtools"),
    ("mtype", "mtools"),
    ("mke2fs", "e2fsprogs"),
];

/// Sector size of the image.
pub const SECTOR: u64 = 512;
/// Where the first partition starts (1 MiB, the usual alignment).
pub const FIRST_LBA: u64 = 2048;
/// Sectors kept free at the end for the backup GPT (its header and 128 entries).
pub const BACKUP_GPT_SECTORS: u64 = 33;
/// The EFI system partition's GPT type.
pub const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/// The Linux filesystem GPT type.
pub const LINUX_TYPE: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
/// The smallest FAT32 file system `mkfs.vfat` makes with 512-byte clusters (65525 clusters
/// and the FATs), rounded up.
pub const MIN_ESP_MIB: u64 = 34;
/// The root partition's device in the guest: virtio-blk's second partition.
pub const ROOT_DEVICE: &str = "/dev/vda2";

/// What goes on the disk.
#[derive(Clone, Debug)]
pub struct EfiDiskSpec {
    /// The kernel `Image` (with its EFI stub), copied to `\Image`.
    pub kernel: PathBuf,
    /// The initramfs, copied to `\initrd.img`.
    pub initrd: PathBuf,
    /// The kernel command line `startup.nsh` passes (after `initrd=\initrd.img`).
    pub cmdline: String,
    /// The removable-media loader copied to `\EFI\BOOT\BOOTAA64.EFI` (systemd-boot), if any.
    pub loader: Option<PathBuf>,
    /// The ESP's size in MiB (at least [`MIN_ESP_MIB`] and room for the files).
    pub esp_mib: u64,
    /// The root partition's contents (its `size_mib` is the partition's size).
    pub rootfs: RootfsSpec,
}

/// The `startup.nsh` the UEFI Shell runs: the kernel from the first file system with the
/// initrd and `cmdline`. Lines end in CR LF, as the Shell's scripts are usually written.
pub fn startup_nsh(cmdline: &str) -> Result<String> {
    if cmdline.chars().any(char::is_control) {
        bail!("the kernel command line for startup.nsh has a control character");
    }
    // The Shell reads `^` as an escape and `#` as a comment.
    if cmdline.contains(['^', '#']) {
        bail!("the kernel command line for startup.nsh may not contain '^' or '#'");
    }
    Ok(format!(
        "@echo -off\r\necho \"CCA-ESP: starting Linux from fs0:\"\r\nfs0:\r\n\\Image initrd=\\initrd.img {cmdline}\r\n"
    ))
}

/// systemd-boot's `loader.conf`: the default entry, no menu.
pub const LOADER_CONF: &str = "default cca.conf\ntimeout 0\nconsole-mode keep\neditor no\n";

/// systemd-boot's entry: the kernel and initrd at the ESP's root with `cmdline`.
pub fn loader_entry(cmdline: &str) -> Result<String> {
    if cmdline.chars().any(char::is_control) {
        bail!("the kernel command line for the loader entry has a control character");
    }
    Ok(format!(
        "title Debian Linux (cca-rs)\nlinux /Image\ninitrd /initrd.img\noptions {cmdline}\n"
    ))
}

/// The package that ships systemd-boot.
pub const SYSTEMD_BOOT_PACKAGE: &str = "systemd-boot-efi";
/// Its arm64 loader inside the package.
pub const SYSTEMD_BOOT_EFI: &str = "usr/lib/systemd/boot/efi/systemd-bootaa64.efi";

/// Debian's arm64 systemd-boot (`systemd-bootaa64.efi` of `systemd-boot-efi`), fetched with
/// the guest packages' private APT configuration (apt checks it against the signed index)
/// and unpacked into the cache once.
pub fn systemd_boot() -> Result<PathBuf> {
    let cache = guest::cache_dir()?;
    let root = cache.join("pkgs").join(SYSTEMD_BOOT_PACKAGE);
    let efi = root.join(SYSTEMD_BOOT_EFI);
    if efi.is_file() {
        return Ok(efi);
    }
    // The kernel's fetch sets up the private indexes.
    guest::guest_packages()?;
    let mirror = std::env::var("CCA_DEBIAN_MIRROR")
        .ok()
        .filter(|m| !m.is_empty())
        .or_else(crate::setup::debian_mirror)
        .context("no Debian mirror is configured (set CCA_DEBIAN_MIRROR)")?;
    let apt = guest::apt::Apt::new(&cache, &mirror, crate::setup::is_root())?;
    if !apt.has_indexes() {
        apt.update()?;
    }
    let available = apt.versions(SYSTEMD_BOOT_PACKAGE)?;
    let newest = guest::apt::newest(&available, None)
        .with_context(|| format!("the Debian indexes have no {SYSTEMD_BOOT_PACKAGE} for arm64"))?;
    let version = newest.version.as_str().to_string();
    let debs = cache.join("debs").join(SYSTEMD_BOOT_PACKAGE);
    let _ = std::fs::remove_dir_all(&debs);
    std::fs::create_dir_all(&debs)?;
    step(&format!(
        "fetching {SYSTEMD_BOOT_PACKAGE} {version} (arm64) for the EFI disk's loader"
    ));
    apt.download(
        &debs,
        &[(SYSTEMD_BOOT_PACKAGE.to_string(), version.clone())],
    )?;
    let deb = std::fs::read_dir(&debs)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .with_context(|| format!("apt-get download left no {SYSTEMD_BOOT_PACKAGE} .deb"))?;
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    run(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root),
        "dpkg-deb -x",
    )?;
    if !efi.is_file() {
        bail!("{} has no {SYSTEMD_BOOT_EFI}", deb.display());
    }
    Ok(efi)
}

/// A partition: `(first sector, sectors)`.
pub type Extent = (u64, u64);

/// Where the two partitions go for an ESP of `esp_mib` and a root of `root_mib`: the ESP
/// from [`FIRST_LBA`], the root right after it (both MiB-aligned), and the total image size
/// in bytes (the backup GPT after the root, rounded up to a MiB).
pub fn layout(esp_mib: u64, root_mib: u64) -> Result<(Extent, Extent, u64)> {
    if esp_mib < MIN_ESP_MIB || root_mib == 0 {
        bail!(
            "an EFI disk needs an ESP of at least {MIN_ESP_MIB} MiB and a root partition \
             (got {esp_mib} and {root_mib} MiB)"
        );
    }
    let per_mib = (1 << 20) / SECTOR;
    let esp = (FIRST_LBA, esp_mib * per_mib);
    let root = (esp.0 + esp.1, root_mib * per_mib);
    let end = root.0 + root.1 + BACKUP_GPT_SECTORS;
    let bytes = (end * SECTOR).div_ceil(1 << 20) << 20;
    Ok((esp, root, bytes))
}

/// The `sfdisk` script of the layout.
pub fn sfdisk_script(esp: Extent, root: Extent) -> String {
    format!(
        "label: gpt\nunit: sectors\nfirst-lba: {FIRST_LBA}\n\
         start={}, size={}, type={ESP_TYPE}, name=\"EFI system partition\"\n\
         start={}, size={}, type={LINUX_TYPE}, name=\"cca-root\"\n",
        esp.0, esp.1, root.0, root.1
    )
}

/// Finds a tool on `PATH` or in the `sbin` directories a non-root `PATH` may lack,
/// installing the Debian packages of [`EFI_DISK_TOOLS`] where [`crate::setup`] can.
pub fn tool(name: &str) -> Result<PathBuf> {
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
    let pkgs: Vec<(&str, &str)> = EFI_DISK_TOOLS
        .iter()
        .copied()
        .filter(|(c, _)| *c == name)
        .collect();
    crate::setup::require_tools(&pkgs)?;
    find().with_context(|| format!("`{name}` not found"))
}

fn run(cmd: &mut Command, what: &str) -> Result<Vec<u8>> {
    let o = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !o.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(o.stdout)
}

/// Copies `src` into `dst` at byte `offset`.
fn copy_into(dst: &mut std::fs::File, offset: u64, src: &Path) -> Result<()> {
    let mut f = std::fs::File::open(src).with_context(|| format!("opening {}", src.display()))?;
    dst.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        dst.write_all(&buf[..n])?;
    }
}

/// Builds the disk of `spec` at `out` (replacing it).
pub fn build(spec: &EfiDiskSpec, out: &Path) -> Result<()> {
    let sfdisk = tool("sfdisk")?;
    let mkfs = tool("mkfs.vfat")?;
    let mcopy = tool("mcopy")?;
    let (esp, root, bytes) = layout(spec.esp_mib, spec.rootfs.size_mib)?;
    let need = std::fs::metadata(&spec.kernel)
        .with_context(|| format!("the kernel {}", spec.kernel.display()))?
        .len()
        + std::fs::metadata(&spec.initrd)
            .with_context(|| format!("the initrd {}", spec.initrd.display()))?
            .len();
    // FAT32's own structures and some slack.
    if need + (4 << 20) > spec.esp_mib << 20 {
        bail!(
            "the kernel and initrd ({} MiB) do not fit in an ESP of {} MiB",
            need >> 20,
            spec.esp_mib
        );
    }
    let nsh = startup_nsh(&spec.cmdline)?;
    let work = out.with_extension("parts");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let esp_img = work.join("esp.img");
    let root_img = work.join("root.img");
    let nsh_file = work.join("startup.nsh");
    std::fs::write(&nsh_file, &nsh)?;
    let loader_conf = work.join("loader.conf");
    std::fs::write(&loader_conf, LOADER_CONF)?;
    let entry = work.join("cca.conf");
    std::fs::write(&entry, loader_entry(&spec.cmdline)?)?;

    // The ESP: FAT32 with 512-byte clusters, the three files at its root.
    let _ = std::fs::remove_file(&esp_img);
    run(
        Command::new(&mkfs)
            .args(["-F", "32", "-s", "1", "-n", "CCA-ESP", "-C"])
            .arg(&esp_img)
            .arg((esp.1 * SECTOR / 1024).to_string()),
        "mkfs.vfat",
    )?;
    let mut files = vec![
        (spec.kernel.as_path(), "::/Image"),
        (spec.initrd.as_path(), "::/initrd.img"),
        (nsh_file.as_path(), "::/startup.nsh"),
    ];
    if let Some(loader) = &spec.loader {
        let mmd = tool("mmd")?;
        for dir in ["::/EFI", "::/EFI/BOOT", "::/loader", "::/loader/entries"] {
            run(
                Command::new(&mmd)
                    .arg("-i")
                    .arg(&esp_img)
                    .arg(dir)
                    .env("MTOOLS_SKIP_CHECK", "1"),
                "mmd",
            )?;
        }
        files.push((loader.as_path(), "::/EFI/BOOT/BOOTAA64.EFI"));
        files.push((loader_conf.as_path(), "::/loader/loader.conf"));
        files.push((entry.as_path(), "::/loader/entries/cca.conf"));
    }
    for (src, name) in files {
        run(
            Command::new(&mcopy)
                .arg("-o")
                .arg("-i")
                .arg(&esp_img)
                .arg(src)
                .arg(name)
                .env("MTOOLS_SKIP_CHECK", "1"),
            "mcopy",
        )?;
    }

    // The root partition: ext4 from the existing builder.
    build_rootfs(&spec.rootfs, &root_img)?;

    // The image: GPT first (on the empty file, so nothing is wiped later), then the
    // partitions at their offsets.
    let _ = std::fs::remove_file(out);
    let disk = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    disk.set_len(bytes)?;
    drop(disk);
    let mut child = Command::new(&sfdisk)
        .args([
            "--quiet",
            "--wipe",
            "never",
            "--no-reread",
            "--no-tell-kernel",
        ])
        .arg(out)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running sfdisk")?;
    child
        .stdin
        .take()
        .context("sfdisk's stdin")?
        .write_all(sfdisk_script(esp, root).as_bytes())?;
    let o = child.wait_with_output()?;
    if !o.status.success() {
        bail!(
            "sfdisk failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    let mut disk = std::fs::OpenOptions::new().write(true).open(out)?;
    copy_into(&mut disk, esp.0 * SECTOR, &esp_img)?;
    copy_into(&mut disk, root.0 * SECTOR, &root_img)?;
    disk.sync_all()?;
    drop(disk);
    let _ = std::fs::remove_dir_all(&work);
    step(&format!(
        "EFI disk: {} ({} MiB: GPT, ESP {} MiB FAT32 with {}\\Image, \\initrd.img, \
         \\startup.nsh; root {} MiB ext4 as {ROOT_DEVICE})",
        out.display(),
        bytes >> 20,
        spec.esp_mib,
        if spec.loader.is_some() {
            "systemd-boot, "
        } else {
            ""
        },
        spec.rootfs.size_mib
    ));
    Ok(())
}

/// The partitions of `image` as `sfdisk --dump` reports them: `(start, size, type)`.
pub fn partitions(image: &Path) -> Result<Vec<(u64, u64, String)>> {
    let out = run(
        Command::new(tool("sfdisk")?).arg("--dump").arg(image),
        "sfdisk --dump",
    )?;
    let text = String::from_utf8_lossy(&out);
    let mut v = Vec::new();
    for line in text.lines().filter(|l| l.contains("start=")) {
        let fields = line.split_once(" : ").map_or(line, |(_, f)| f);
        let field = |k: &str| {
            fields.split(',').find_map(|f| {
                let (key, value) = f.split_once('=')?;
                (key.trim() == k).then(|| value.trim().to_string())
            })
        };
        let num = |k: &str| field(k).and_then(|v| v.parse::<u64>().ok());
        match (num("start"), num("size"), field("type")) {
            (Some(s), Some(n), Some(t)) => v.push((s, n, t.to_uppercase())),
            _ => bail!("sfdisk --dump line not understood: {line}"),
        }
    }
    Ok(v)
}

/// The contents of `path` (e.g. `::/startup.nsh`) in the FAT file system that starts at
/// sector `start` of `image`.
pub fn read_fat_file(image: &Path, start: u64, path: &str) -> Result<Vec<u8>> {
    run(
        Command::new(tool("mtype")?)
            .arg("-i")
            .arg(format!("{}@@{}", image.display(), start * SECTOR))
            .arg(path)
            .env("MTOOLS_SKIP_CHECK", "1"),
        "mtype",
    )
}

/// The initramfs `/init` of the ESP: loads `virtio_blk`, waits for [`ROOT_DEVICE`], mounts it
/// and switches root to it.
pub fn esp_init() -> InitScript {
    InitScript::Custom(format!("{}{SWITCH_ROOT_VDA2}", InitScript::prologue()))
}

const SWITCH_ROOT_VDA2: &str = r#"echo "CCA-INIT: booted by firmware: $(cat /proc/cmdline)"
i=0
while [ ! -b /dev/vda2 ] && [ $i -lt 30 ]; do sleep 1; i=$((i+1)); done
mkdir -p /newroot
if mount -t ext4 -o rw /dev/vda2 /newroot; then
  echo "CCA-INIT: root mounted: /dev/vda2"
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

/// Lines the root filesystem's init prints first: where root is, and that the kernel runs
/// on the firmware's ACPI tables.
const ROOT_EVIDENCE: &str = r#"echo "CCA-INIT: stage2: $(grep ' / ' /proc/mounts | head -n 1)"
echo "CCA-INIT: acpi-tables: $(ls /sys/firmware/acpi/tables 2>/dev/null | tr '\n' ' ')"
if [ -d /sys/firmware/efi ]; then echo "CCA-INIT: efi: yes"; else echo "CCA-INIT: efi: no"; fi
"#;

/// The root filesystem's `/sbin/init`: [`ROOT_EVIDENCE`], then the usual evidence and
/// power-off (`shell` false) or an interactive shell (`shell` true).
pub fn root_init(shell: bool) -> String {
    let script = if shell {
        InitScript::Shell
    } else {
        InitScript::Evidence {
            then: Then::PowerOff,
        }
    }
    .render();
    let prologue = InitScript::prologue();
    let rest = script.strip_prefix(prologue).unwrap_or(&script);
    format!("{prologue}{ROOT_EVIDENCE}{rest}")
}

/// Builds the disk a firmware boot of a realm with `mem_mib` of RAM uses by default, from
/// Debian's packages: the cloud kernel on the ESP with an initramfs ([`esp_init`]) holding
/// `virtio_blk`, the command line for the 16550 and [`ROOT_DEVICE`] plus `extra`, and a
/// BusyBox root whose init is [`root_init`]`(shell)`.
pub fn build_default(out: &Path, mem_mib: u64, shell: bool, extra: &str) -> Result<()> {
    guest::require_host_tools(EFI_DISK_TOOLS)?;
    let pkgs = guest::guest_packages()?;
    let spec = guest::InitramfsSpec::new(&pkgs.busybox, esp_init())
        .with_modules(&pkgs.kernel.modules_dir, &["virtio_blk"]);
    let initrd = guest::build_initramfs(&spec)?;
    let ipa_bits = platform::ipa_bits(platform::RAM_BASE, mem_mib << 20)
        .context("the realm's RAM size gives no IPA width")?;
    let devices = DeviceSet {
        virtio_blk: true,
        virtio_console: true,
    };
    let cmdline = firmware_linux_cmdline(ipa_bits, devices, ROOT_DEVICE, extra)
        .context("the kernel command line cannot be made (a control character in -p?)")?;
    let kernel_mib = std::fs::metadata(&pkgs.kernel.image)?.len() >> 20;
    let spec = EfiDiskSpec {
        kernel: pkgs.kernel.image.clone(),
        initrd,
        cmdline,
        loader: Some(systemd_boot()?),
        esp_mib: (kernel_mib + 24).max(MIN_ESP_MIB + 30),
        rootfs: RootfsSpec {
            busybox: pkgs.busybox.clone(),
            init: root_init(shell),
            files: Vec::new(),
            size_mib: 32,
        },
    };
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    build(&spec, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cca-efidisk-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn the_layout_and_its_script() {
        let (esp, root, bytes) = layout(64, 32).unwrap();
        assert_eq!(esp, (2048, 64 * 2048));
        assert_eq!(root, (2048 + 64 * 2048, 32 * 2048));
        assert_eq!(bytes, 98 << 20, "1 + 64 + 32 MiB and the backup GPT");
        assert!(layout(MIN_ESP_MIB - 1, 32).is_err());
        assert!(layout(64, 0).is_err());
        let s = sfdisk_script(esp, root);
        assert!(s.starts_with("label: gpt\n"));
        assert!(s.contains(&format!("start=2048, size=131072, type={ESP_TYPE}")));
        assert!(s.contains(&format!("start=133120, size=65536, type={LINUX_TYPE}")));
    }

    #[test]
    fn startup_nsh_runs_the_kernel_with_its_initrd() {
        let s = startup_nsh("console=ttyS0 root=/dev/vda2 rw").unwrap();
        assert!(s.contains(
            "\r\nfs0:\r\n\\Image initrd=\\initrd.img console=ttyS0 root=/dev/vda2 rw\r\n"
        ));
        assert!(s.starts_with("@echo -off\r\n"));
        assert!(startup_nsh("a\nb").is_err());
        assert!(startup_nsh("a # b").is_err());
        assert!(startup_nsh("a ^ b").is_err());
    }

    #[test]
    fn the_loader_entry_boots_the_kernel_with_its_initrd() {
        let e = loader_entry("console=ttyS0 root=/dev/vda2 rw").unwrap();
        assert!(e.contains(
            "\nlinux /Image\ninitrd /initrd.img\noptions console=ttyS0 root=/dev/vda2 rw\n"
        ));
        assert!(loader_entry("a\nb").is_err());
        assert!(LOADER_CONF.contains("timeout 0"), "no menu");
    }

    #[test]
    fn init_scripts() {
        let e = esp_init().render();
        assert!(e.starts_with(InitScript::prologue()));
        assert!(e.contains("mount -t ext4 -o rw /dev/vda2 /newroot"));
        assert!(e.contains("exec switch_root /newroot /sbin/init"));
        let r = root_init(false);
        assert!(r.starts_with(InitScript::prologue()));
        assert!(r.contains("acpi-tables"));
        assert!(r.contains("CCA-INIT: done"));
        assert!(r.contains("poweroff -f"));
        let sh = root_init(true);
        assert!(sh.contains("setsid cttyhack sh"));
        assert!(!sh.contains("CCA-INIT: done"));
    }

    /// Builds a disk from small stand-in files and reads it back: the GPT, the ESP's files
    /// and the root filesystem's init.
    #[test]
    fn a_disk_is_built_and_read_back() {
        if EFI_DISK_TOOLS.iter().any(|(c, _)| {
            crate::setup::find_in_path(c).is_none() && !Path::new("/usr/sbin").join(c).exists()
        }) {
            eprintln!(
                "skipped: the disk tools (fdisk, dosfstools, mtools, e2fsprogs) are not installed"
            );
            return;
        }
        let d = tmp("build");
        let kernel = d.join("Image");
        std::fs::write(&kernel, b"MZ kernel stand-in".repeat(1000)).unwrap();
        let initrd = d.join("initrd.img");
        std::fs::write(&initrd, b"070701 initrd stand-in").unwrap();
        let busybox = d.join("busybox");
        std::fs::write(&busybox, b"\x7fELF busybox stand-in").unwrap();
        let loader = d.join("BOOTAA64.EFI");
        std::fs::write(&loader, b"MZ loader stand-in").unwrap();
        let spec = EfiDiskSpec {
            kernel: kernel.clone(),
            initrd,
            cmdline: "console=ttyS0 root=/dev/vda2 rw".into(),
            loader: Some(loader),
            esp_mib: MIN_ESP_MIB,
            rootfs: RootfsSpec {
                busybox,
                init: root_init(false),
                files: Vec::new(),
                size_mib: 8,
            },
        };
        let out = d.join("efi.img");
        build(&spec, &out).unwrap();
        let (esp, root, bytes) = layout(MIN_ESP_MIB, 8).unwrap();
        assert_eq!(std::fs::metadata(&out).unwrap().len(), bytes);
        let parts = partitions(&out).unwrap();
        assert_eq!(
            parts,
            [
                (esp.0, esp.1, ESP_TYPE.to_string()),
                (root.0, root.1, LINUX_TYPE.to_string())
            ]
        );
        assert_eq!(
            read_fat_file(&out, esp.0, "::/Image").unwrap(),
            std::fs::read(&kernel).unwrap()
        );
        let nsh = read_fat_file(&out, esp.0, "::/startup.nsh").unwrap();
        assert_eq!(nsh, startup_nsh(&spec.cmdline).unwrap().into_bytes());
        assert!(read_fat_file(&out, esp.0, "::/missing").is_err());
        assert_eq!(
            read_fat_file(&out, esp.0, "::/EFI/BOOT/BOOTAA64.EFI").unwrap(),
            b"MZ loader stand-in"
        );
        assert_eq!(
            read_fat_file(&out, esp.0, "::/loader/loader.conf").unwrap(),
            LOADER_CONF.as_bytes()
        );
        let entry = read_fat_file(&out, esp.0, "::/loader/entries/cca.conf").unwrap();
        assert_eq!(entry, loader_entry(&spec.cmdline).unwrap().into_bytes());
        // The root partition, cut out of the image, is the ext4 the builder made.
        let mut img = std::fs::read(&out).unwrap();
        let part = img.split_off((root.0 * SECTOR) as usize);
        let part = &part[..(root.1 * SECTOR) as usize];
        let root_img = d.join("root.img");
        std::fs::write(&root_img, part).unwrap();
        let init = crate::launch::disk::read_from_image(&root_img, "/sbin/init")
            .unwrap()
            .unwrap();
        assert_eq!(init, root_init(false).into_bytes());
        // Too small an ESP for its files is refused before anything is built.
        let mut big = spec.clone();
        std::fs::write(&kernel, vec![0u8; (MIN_ESP_MIB as usize) << 20]).unwrap();
        big.kernel = kernel;
        let e = build(&big, &d.join("big.img")).unwrap_err();
        assert!(format!("{e:#}").contains("do not fit"), "{e:#}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
