//! `cargo xtask run`: boots a Linux realm on the whole stack, with kvmtool's option names.
//!
//! The launcher checks everything it can before QEMU starts (the kernel is an arm64 `Image`,
//! the initrd is readable, kernel + initrd + DTB fit in the realm's RAM, the vCPU count, the
//! RPV, the hash algorithm), computes the plan the host will build from the same launch
//! description and prints the RIM it predicts, then has QEMU load the description, the kernel
//! and the initrd where the host expects them (`host_core::vmm::placement`) and sizes the
//! machine's DRAM for the realm.
//!
//! With `--firmware FILE` (kvmtool's option) the realm starts in firmware instead: edk2's
//! kvmtool realm firmware (`KVMTOOL_EFI.fd`) at the RAM base, measured with the device tree,
//! booting Linux from the disk (`--disk`, or a GPT disk the launcher builds from Debian's
//! packages, see [`efidisk`]).

#[path = "disk.rs"]
pub mod disk;
#[path = "efidisk.rs"]
pub mod efidisk;
#[path = "firmware.rs"]
pub mod firmware;

use crate::images::Images;
use crate::qemu::{self, Outcome};
use crate::setup::step;
use anyhow::{bail, Context, Result};
use clap::Args;
use host_core::vmm::launch::{self, HashAlgo, HostBlob, LaunchDesc, LaunchLimits};
use host_core::vmm::linux::{DeviceSet, LinuxConfig, LinuxPlan};
use host_core::vmm::placement::{self, FILES_BASE, FILES_END, LAUNCH_PAGE};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Options of `cargo xtask run` (kvmtool's names where they exist).
#[derive(Args, Clone, Debug)]
pub struct LaunchArgs {
    /// The kernel `Image` to boot (default: Debian's newest arm64 cloud kernel, fetched and
    /// cached).
    #[arg(short = 'k', long)]
    pub kernel: Option<PathBuf>,
    /// The initrd (default: a BusyBox initramfs built from Debian's busybox-static).
    #[arg(short = 'i', long)]
    pub initrd: Option<PathBuf>,
    /// Extra kernel command line (appended to the console arguments the host adds).
    #[arg(short = 'p', long, default_value = "")]
    pub params: String,
    /// Guest RAM in MiB.
    #[arg(short = 'm', long, default_value_t = 256)]
    pub mem: u64,
    /// Number of vCPUs.
    #[arg(short = 'c', long, default_value_t = 2)]
    pub cpus: u32,
    /// Measurement algorithm of the realm.
    #[arg(long, default_value = "sha256", value_parser = ["sha256", "sha512"])]
    pub measurement_algo: String,
    /// The Realm Personalisation Value, in hex (up to 64 bytes).
    #[arg(long)]
    pub realm_pv: Option<String>,
    /// Load the initrd without measuring its contents.
    #[arg(long)]
    pub initrd_unmeasured: bool,
    /// Use this RMM image instead of ours (e.g. TF-RMM's `rmm.img`).
    #[arg(long)]
    pub rmm: Option<PathBuf>,
    /// Run QEMU with `-icount shift=0`.
    #[arg(long)]
    pub icount: bool,
    /// Kill QEMU after this many seconds (0: never; the default for an interactive run).
    #[arg(long, default_value_t = 0)]
    pub timeout: u64,
    /// A raw disk image for virtio-blk (`FILE` or `FILE,ro`): flushed writes reach the file.
    #[arg(short = 'd', long, value_name = "FILE[,ro]")]
    pub disk: Option<String>,
    /// Start the realm in this firmware instead of a kernel (edk2's kvmtool realm firmware,
    /// `KVMTOOL_EFI.fd`, built as the README says): it is loaded at the RAM base and measured
    /// with the device tree, and boots Linux from the disk. Without `--disk` the launcher
    /// builds a GPT disk from Debian's packages (`--efi-disk`).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["kernel", "initrd", "initrd_unmeasured"])]
    pub firmware: Option<PathBuf>,
    /// With `--firmware`: build a bootable GPT disk here (EFI system partition with Debian's
    /// kernel, an initramfs and `startup.nsh`; ext4 root with BusyBox; `-p` goes on the
    /// kernel's command line) and boot it. Default without `--disk`:
    /// `target/launch/efi-disk.img`, built once and then reused.
    #[arg(
        long,
        value_name = "FILE",
        requires = "firmware",
        conflicts_with = "disk"
    )]
    pub efi_disk: Option<PathBuf>,
}

impl LaunchArgs {
    /// Defaults for a non-interactive boot (tests, the demo).
    pub fn new(mem: u64, cpus: u32) -> Self {
        Self {
            kernel: None,
            initrd: None,
            params: String::new(),
            mem,
            cpus,
            measurement_algo: "sha256".into(),
            realm_pv: None,
            initrd_unmeasured: false,
            rmm: None,
            icount: false,
            timeout: 0,
            disk: None,
            firmware: None,
            efi_disk: None,
        }
    }
}

/// A launch ready to boot.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The launch description.
    pub desc: LaunchDesc,
    /// Its page as QEMU loads it.
    pub page: PathBuf,
    /// The kernel file.
    pub kernel: PathBuf,
    /// The initrd file.
    pub initrd: Option<PathBuf>,
    /// The RIM the RMM will measure, in hex.
    pub rim: String,
    /// The kernel command line.
    pub bootargs: String,
    /// DRAM to give QEMU, in MiB.
    pub machine_mib: u64,
    /// The disk image file (absolute).
    pub disk: Option<PathBuf>,
}

/// Parses a hex RPV (an optional `0x`, whitespace-free, an even number of digits, at most
/// 64 bytes) into the 64-byte field, zero-padded.
pub fn parse_rpv(hex: &str) -> Result<[u8; 64]> {
    let h = hex.strip_prefix("0x").unwrap_or(hex);
    if h.len() % 2 != 0 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--realm-pv must be hex digits in pairs (got {hex:?})");
    }
    if h.len() > 128 {
        bail!(
            "--realm-pv is {} bytes; the RPV holds at most 64",
            h.len() / 2
        );
    }
    let mut rpv = [0u8; 64];
    for (i, pair) in h.as_bytes().chunks(2).enumerate() {
        rpv[i] = u8::from_str_radix(std::str::from_utf8(pair)?, 16)?;
    }
    Ok(rpv)
}

fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// Validates `args` with `kernel` and `initrd` (the files to boot) and writes the launch
/// page into `out_dir`. Nothing is started. With `args.firmware` the firmware is booted
/// instead (see [`prepare_firmware`]) and `kernel` and `initrd` are not used.
pub fn prepare(
    args: &LaunchArgs,
    kernel: &Path,
    initrd: Option<&Path>,
    out_dir: &Path,
) -> Result<Prepared> {
    if let Some(fw) = &args.firmware {
        return prepare_firmware(args, fw, out_dir);
    }
    let kernel_bytes = std::fs::read(kernel)
        .with_context(|| format!("reading the kernel {}", kernel.display()))?;
    let initrd_bytes = match initrd {
        Some(p) => {
            Some(std::fs::read(p).with_context(|| format!("reading the initrd {}", p.display()))?)
        }
        None => None,
    };
    if let Some(bytes) = &initrd_bytes {
        check_initrd(bytes).with_context(|| {
            format!(
                "the initrd {}",
                initrd.map_or(String::new(), |p| p.display().to_string())
            )
        })?;
    }
    let hash = parse_hash(&args.measurement_algo)?;
    let kernel_pa = FILES_BASE;
    let kernel_end = kernel_pa + kernel_bytes.len() as u64;
    let initrd_pa = align_up(kernel_end, 0x1000);
    let files_end = initrd_pa + initrd_bytes.as_ref().map_or(0, |b| b.len() as u64);
    if files_end > FILES_END {
        bail!(
            "kernel ({} bytes) and initrd ({} bytes) do not fit in the host's file window of {} MiB",
            kernel_bytes.len(),
            initrd_bytes.as_ref().map_or(0, Vec::len),
            (FILES_END - FILES_BASE) >> 20
        );
    }
    let mut desc = LaunchDesc::with_kernel(
        HostBlob {
            pa: kernel_pa,
            size: kernel_bytes.len() as u64,
        },
        args.mem,
        args.cpus,
    );
    desc.initrd = initrd_bytes.as_ref().map(|b| HostBlob {
        pa: initrd_pa,
        size: b.len() as u64,
    });
    desc.hash = hash;
    let disk_file = match &args.disk {
        Some(spec) => {
            let arg = disk::parse_disk_arg(spec)?;
            desc.disk = Some(disk::place(&arg, files_end, FILES_END)?);
            Some(
                std::fs::canonicalize(&arg.path)
                    .with_context(|| format!("the disk {}", arg.path.display()))?,
            )
        }
        None => None,
    };
    if let Some(pv) = &args.realm_pv {
        desc.rpv = parse_rpv(pv)?;
    }
    desc.bootargs = (!args.params.is_empty()).then(|| args.params.clone());
    desc.measure_initrd = !args.initrd_unmeasured;
    check_launch(&desc, args.cpus)?;
    let cfg = LinuxConfig::from_launch(&desc);
    let plan = LinuxPlan::with_devices(
        &cfg,
        DeviceSet::from_launch(&desc),
        &kernel_bytes,
        kernel_bytes.len() as u64,
        initrd_bytes.as_ref().map(|b| b.len() as u64),
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", kernel.display()))?;
    let rim = plan
        .predict_rim(&kernel_bytes, initrd_bytes.as_deref())
        .context("the hash algorithm has no measurement")?;
    let text = desc.to_text();
    let page = launch::encode_page(text.as_bytes())
        .map_err(|e| anyhow::anyhow!("launch description: {e}"))?;
    std::fs::create_dir_all(out_dir)?;
    let page_path = out_dir.join("launch.page");
    std::fs::write(&page_path, page)?;
    let dram = placement::machine_dram(args.mem << 20).context("the realm's RAM is too large")?;
    Ok(Prepared {
        desc,
        page: page_path,
        kernel: kernel.to_path_buf(),
        initrd: initrd.map(Path::to_path_buf),
        rim: format!("{rim}"),
        bootargs: plan.bootargs,
        machine_mib: dram >> 20,
        disk: disk_file,
    })
}

fn parse_hash(name: &str) -> Result<HashAlgo> {
    match name {
        "sha256" => Ok(HashAlgo::Sha256),
        "sha512" => Ok(HashAlgo::Sha512),
        other => bail!("unknown measurement algorithm {other:?} (sha256 or sha512)"),
    }
}

/// The disk of a firmware boot: `--disk`, or the one `--efi-disk` names (built now), or the
/// default `out_dir/efi-disk.img` (built if it does not exist yet).
fn firmware_disk(args: &LaunchArgs, out_dir: &Path) -> Result<disk::DiskArg> {
    if let Some(spec) = &args.disk {
        if !args.params.is_empty() {
            bail!(
                "-p with --firmware --disk: the kernel's command line is the disk's (its \
                 startup.nsh); -p goes on the command line of a disk the launcher builds"
            );
        }
        return disk::parse_disk_arg(spec);
    }
    let (path, build) = match &args.efi_disk {
        Some(p) => (p.clone(), true),
        None => {
            let p = out_dir.join("efi-disk.img");
            let build = !p.exists();
            if !build {
                step(&format!(
                    "reusing the EFI disk {} (delete it, or give --efi-disk, to build a new one)",
                    p.display()
                ));
            }
            (p, build)
        }
    };
    if build {
        efidisk::build_default(&path, args.mem, true, &args.params)?;
    }
    Ok(disk::DiskArg {
        path,
        read_only: false,
    })
}

/// [`prepare`] for `--firmware FILE`: the firmware file (an arm64 `Image`-format file such
/// as `KVMTOOL_EFI.fd`) at the RAM base, the device tree near the top of RAM, both measured,
/// and the disk ([`firmware_disk`]). The RIM covers the firmware and the device tree only.
pub fn prepare_firmware(args: &LaunchArgs, firmware: &Path, out_dir: &Path) -> Result<Prepared> {
    if args.kernel.is_some() || args.initrd.is_some() || args.initrd_unmeasured {
        bail!(
            "--firmware boots the kernel the disk holds: -k, -i and --initrd-unmeasured do \
             not apply"
        );
    }
    let bytes = std::fs::read(firmware)
        .with_context(|| format!("reading the firmware {}", firmware.display()))?;
    let hash = parse_hash(&args.measurement_algo)?;
    let fw_pa = FILES_BASE;
    let files_end = align_up(fw_pa + bytes.len() as u64, 0x1000);
    if files_end > FILES_END {
        bail!(
            "the firmware ({} bytes) does not fit in the host's file window",
            bytes.len()
        );
    }
    let mut desc = LaunchDesc::with_firmware(
        HostBlob {
            pa: fw_pa,
            size: bytes.len() as u64,
        },
        args.mem,
        args.cpus,
    );
    desc.hash = hash;
    std::fs::create_dir_all(out_dir)?;
    let arg = firmware_disk(args, out_dir)?;
    desc.disk = Some(disk::place(&arg, files_end, FILES_END)?);
    let disk_file = std::fs::canonicalize(&arg.path)
        .with_context(|| format!("the disk {}", arg.path.display()))?;
    if let Some(pv) = &args.realm_pv {
        desc.rpv = parse_rpv(pv)?;
    }
    check_launch(&desc, args.cpus)?;
    let cfg = LinuxConfig::from_launch(&desc);
    let plan = LinuxPlan::with_firmware(
        &cfg,
        DeviceSet::from_launch(&desc),
        &bytes,
        bytes.len() as u64,
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", firmware.display()))?;
    let rim = plan
        .predict_rim(&bytes, None)
        .context("the hash algorithm has no measurement")?;
    let text = desc.to_text();
    let page = launch::encode_page(text.as_bytes())
        .map_err(|e| anyhow::anyhow!("launch description: {e}"))?;
    let page_path = out_dir.join("launch.page");
    std::fs::write(&page_path, page)?;
    let dram = placement::machine_dram(args.mem << 20).context("the realm's RAM is too large")?;
    Ok(Prepared {
        desc,
        page: page_path,
        kernel: firmware.to_path_buf(),
        initrd: None,
        rim: format!("{rim}"),
        bootargs: String::from("(the disk's startup.nsh)"),
        machine_mib: dram >> 20,
        disk: Some(disk_file),
    })
}

/// Checks that an initrd is complete: a gzip stream that decompresses to its end, and a
/// `newc` cpio archive (plain or inside the gzip stream) that reaches its trailer. Other
/// formats the kernel may understand (xz, zstd, ...) are passed on unchecked.
pub fn check_initrd(bytes: &[u8]) -> Result<()> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let data = gunzip(bytes)?;
        if data.starts_with(b"070701") {
            check_newc(&data)?;
        }
        return Ok(());
    }
    if bytes.starts_with(b"070701") {
        check_newc(bytes)?;
    }
    Ok(())
}

fn gunzip(bytes: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new("gzip")
        .args(["-dc"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running gzip")?;
    let mut stdin = child.stdin.take().context("gzip's stdin")?;
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output()?;
    let _ = writer.join();
    if !out.status.success() {
        bail!(
            "is a damaged or truncated gzip stream ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// Walks a `newc` cpio archive to its `TRAILER!!!` entry.
fn check_newc(data: &[u8]) -> Result<()> {
    let hex = |b: &[u8]| -> Option<usize> {
        usize::from_str_radix(std::str::from_utf8(b).ok()?, 16).ok()
    };
    let mut off = 0usize;
    loop {
        let h = data
            .get(off..off + 110)
            .context("is a truncated cpio archive (no trailer)")?;
        if &h[..6] != b"070701" && &h[..6] != b"070702" {
            bail!("has a corrupt cpio header at offset {off}");
        }
        let size = hex(&h[54..62]).context("corrupt cpio header")?;
        let namesize = hex(&h[94..102]).context("corrupt cpio header")?;
        let name = data
            .get(off + 110..off + 110 + namesize)
            .context("is a truncated cpio archive")?;
        let data_start = (off + 110 + namesize).div_ceil(4) * 4;
        if name.starts_with(b"TRAILER!!!") {
            return Ok(());
        }
        let next = (data_start + size).div_ceil(4) * 4;
        if next > data.len() {
            bail!("is a truncated cpio archive (an entry runs past the end)");
        }
        off = next;
    }
}

/// The checks every launch gets before QEMU: the description's own limits, and no more
/// vCPUs than the RMM has RECs for.
fn check_launch(desc: &LaunchDesc, cpus: u32) -> Result<()> {
    desc.validate(&LaunchLimits::FORMAT)
        .map_err(|e| anyhow::anyhow!("bad launch: {e}"))?;
    let max = rmm_core_max_recs();
    if u64::from(cpus) > max {
        bail!("{cpus} vCPUs: the RMM supports at most {max} RECs per realm");
    }
    Ok(())
}

/// The most RECs a realm may have on our RMM (its `RMI_FEATURES` register 1).
fn rmm_core_max_recs() -> u64 {
    (1u64 << rmm_core::granule::REFCOUNT_BITS) - 1
}

/// The QEMU command that boots `p` with `imgs` (and `rmm` instead of ours, if given).
pub fn command(imgs: &Images, p: &Prepared, rmm: Option<&Path>, icount: bool) -> Command {
    let rmm = rmm.unwrap_or(&imgs.rmm);
    let mem = format!("{}M", p.machine_mib);
    let mut cmd = qemu::command_for(&imgs.el3, rmm, &imgs.host, None, icount, &mem, 2);
    let mut load = |file: &Path, addr: u64| {
        cmd.arg("-device")
            .arg(format!("loader,file={},addr={addr:#x}", file.display()));
    };
    load(&p.page, LAUNCH_PAGE);
    if let Some(k) = p.desc.kernel.or(p.desc.firmware) {
        load(&p.kernel, k.pa);
    }
    if let (Some(i), Some(f)) = (p.desc.initrd, &p.initrd) {
        load(f, i.pa);
    }
    if let (Some(d), Some(f)) = (p.desc.disk, &p.disk) {
        // Raw, whatever the image looks like; the host writes flushed sectors back to the
        // file it finds on the semihosting command line.
        cmd.arg("-device").arg(format!(
            "loader,file={},addr={:#x},force-raw=on",
            disk::qemu_opt_escape(&f.display().to_string()),
            d.pa
        ));
        cmd.arg("-semihosting-config").arg(format!(
            "enable=on,target=native,arg={}",
            disk::qemu_opt_escape(&f.display().to_string())
        ));
    }
    cmd
}

/// Prints what the launch will do.
pub fn describe(p: &Prepared) {
    if p.desc.firmware.is_some() {
        step(&format!(
            "realm booted by firmware: {} vCPU(s), {} MiB RAM, {}, firmware {} (measured, \
             with the device tree); the kernel it loads from the disk is not measured",
            p.desc.cpus,
            p.desc.mem_mib,
            p.desc.hash.name(),
            p.kernel.display(),
        ));
    } else {
        describe_kernel(p);
    }
    if let (Some(d), Some(f)) = (p.desc.disk, &p.disk) {
        eprintln!(
            "    disk: {} ({} bytes, {}) on virtio-blk, with a virtio-console",
            f.display(),
            d.size,
            if d.read_only {
                "read-only"
            } else {
                "read-write"
            }
        );
    }
    eprintln!("    RIM predicted by the launcher: {}", p.rim);
}

fn describe_kernel(p: &Prepared) {
    step(&format!(
        "Linux realm: {} vCPU(s), {} MiB RAM, {} ({}), kernel {}, initrd {}",
        p.desc.cpus,
        p.desc.mem_mib,
        p.desc.hash.name(),
        if p.desc.measure_initrd {
            "initrd measured"
        } else {
            "initrd not measured"
        },
        p.kernel.display(),
        p.initrd
            .as_ref()
            .map_or("none".into(), |i| i.display().to_string())
    ));
    eprintln!("    kernel command line: {}", p.bootargs);
}

/// Boots `p` and streams the output until QEMU exits (or `timeout` seconds pass).
pub fn run_captured(
    imgs: &Images,
    p: &Prepared,
    rmm: Option<&Path>,
    icount: bool,
    timeout: Duration,
    echo: bool,
    feed: &[(&str, &str)],
) -> Result<Outcome> {
    let mut cmd = command(imgs, p, rmm, icount);
    qemu::run_command_with_input(&mut cmd, timeout, echo, feed)
}

/// Boots `p` with QEMU on this terminal (interactive).
pub fn run_interactive(
    imgs: &Images,
    p: &Prepared,
    rmm: Option<&Path>,
    icount: bool,
) -> Result<i32> {
    let mut cmd = command(imgs, p, rmm, icount);
    step("booting the Linux realm on QEMU (Ctrl-A X quits QEMU)");
    let status = cmd.status().context("starting qemu-system-aarch64")?;
    Ok(status.code().unwrap_or(1))
}

/// The kernel and initrd a launch boots: the ones `args` names, or Debian's cloud kernel and
/// a BusyBox initramfs whose `/init` is `init` (with `modules` from the same kernel).
pub fn guest_files(
    args: &LaunchArgs,
    init: crate::guest::InitScript,
    modules: &[&str],
) -> Result<(PathBuf, Option<PathBuf>)> {
    use crate::guest;
    if let Some(fw) = &args.firmware {
        // The firmware boots the disk's kernel: nothing to fetch here.
        return Ok((fw.clone(), None));
    }
    if let (Some(k), Some(i)) = (&args.kernel, &args.initrd) {
        return Ok((k.clone(), Some(i.clone())));
    }
    let pkgs = guest::guest_packages()?;
    let kernel = args.kernel.clone().unwrap_or(pkgs.kernel.image.clone());
    let initrd = match &args.initrd {
        Some(i) => i.clone(),
        None => {
            let mut spec = guest::InitramfsSpec::new(&pkgs.busybox, init);
            if !modules.is_empty() {
                spec = spec.with_modules(&pkgs.kernel.modules_dir, modules);
            }
            guest::build_initramfs(&spec)?
        }
    };
    Ok((kernel, Some(initrd)))
}

/// A finished non-interactive Linux realm boot.
pub struct LinuxRun {
    /// What was booted.
    pub prepared: Prepared,
    /// How QEMU ended.
    pub outcome: Outcome,
    /// What the init script reported.
    pub evidence: crate::guest::Evidence,
}

impl LinuxRun {
    /// The realm's console, labels removed.
    pub fn realm_console(&self) -> String {
        let mut s = String::new();
        for l in &self.outcome.lines {
            if let Some(r) = l.strip_prefix("[REALM] ") {
                s.push_str(r);
                s.push('\n');
            }
        }
        s
    }

    /// The RIM the RMM logged at activation.
    pub fn measured_rim(&self) -> Option<String> {
        self.outcome
            .lines
            .iter()
            .find_map(|l| l.split("RIM = ").nth(1).map(|r| r.trim().to_string()))
    }

    /// True when the host's verdict passed, QEMU exited 0, the init script finished and
    /// the RMM's RIM equals the launcher's prediction.
    pub fn passed(&self) -> bool {
        self.outcome.passed()
            && self.evidence.done
            && self.measured_rim().as_deref() == Some(self.prepared.rim.as_str())
    }
}

/// Boots a Linux realm with `init` as its `/init` (unless `args` names an initrd) and
/// returns what happened; `feed` types on the console as [`qemu::run_command_with_input`]
/// does.
pub fn boot_linux(
    imgs: &Images,
    args: &LaunchArgs,
    init: crate::guest::InitScript,
    modules: &[&str],
    out_dir: &Path,
    echo: bool,
    feed: &[(&str, &str)],
) -> Result<LinuxRun> {
    let (kernel, initrd) = guest_files(args, init, modules)?;
    let prepared = prepare(args, &kernel, initrd.as_deref(), out_dir)?;
    describe(&prepared);
    let timeout = Duration::from_secs(if args.timeout == 0 { 600 } else { args.timeout });
    let outcome = run_captured(
        imgs,
        &prepared,
        args.rmm.as_deref(),
        args.icount,
        timeout,
        echo,
        feed,
    )?;
    let run = LinuxRun {
        prepared,
        evidence: crate::guest::Evidence::default(),
        outcome,
    };
    let evidence = crate::guest::Evidence::parse(&run.realm_console());
    Ok(LinuxRun { evidence, ..run })
}

/// Benchmark rows of a Linux realm boot under `-icount shift=0`, and the same kernel and
/// initramfs booted directly by QEMU as a plain guest (no RME) as the baseline:
/// `(name, ops, instructions per op)`.
pub fn bench_linux(imgs: &Images, out_dir: &Path) -> Result<Vec<(String, u64, u64)>> {
    use crate::guest::{InitScript, Then};
    let mut args = LaunchArgs::new(256, 2);
    args.icount = true;
    args.timeout = 1200;
    let init = InitScript::Evidence {
        then: Then::PowerOff,
    };
    step("benchmark: Debian's Linux as a realm under -icount shift=0");
    let run = boot_linux(imgs, &args, init.clone(), &[], out_dir, false, &[])?;
    if !run.passed() {
        for l in &run.outcome.lines {
            eprintln!("{l}");
        }
        bail!("the Linux realm benchmark run failed");
    }
    let mut rows: Vec<(String, u64, u64)> = run
        .outcome
        .lines
        .iter()
        .filter_map(|l| l.strip_prefix("[HOST] BENCH linux_"))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((
                format!("linux_{}", w.next()?),
                w.next()?.parse().ok()?,
                w.next()?.parse().ok()?,
            ))
        })
        .collect();
    let realm_uptime = uptime_ns(&run.realm_console());
    step("benchmark: the same kernel and initramfs as a plain QEMU guest (no RME)");
    let (kernel, initrd) = guest_files(&args, init, &[])?;
    let mut cmd = Command::new("qemu-system-aarch64");
    cmd.args([
        "-M",
        "virt,gic-version=3",
        "-cpu",
        "max",
        "-smp",
        "2",
        "-m",
        "256M",
    ])
    .args([
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
    ])
    .args(["-icount", "shift=0", "-kernel"])
    .arg(&kernel)
    .arg("-append")
    .arg("console=ttyAMA0");
    if let Some(i) = &initrd {
        cmd.arg("-initrd").arg(i);
    }
    let plain = qemu::run_command(&mut cmd, Duration::from_secs(1200), false)?;
    let console: String = plain.lines.iter().map(|l| format!("{l}\n")).collect();
    let plain_uptime = uptime_ns(&console);
    if let (Some(r), Some(p)) = (realm_uptime, plain_uptime) {
        rows.push(("linux_guest_uptime_at_init_realm".into(), 1, r));
        rows.push(("linux_guest_uptime_at_init_plain".into(), 1, p));
        rows.push((
            "linux_realm_over_plain_x1000".into(),
            1,
            r.saturating_mul(1000) / p.max(1),
        ));
    } else {
        eprintln!("    (no uptime line from one of the boots: no baseline ratio)");
    }
    Ok(rows)
}

/// The guest's `/proc/uptime` at its init script's evidence line, in ns (= instructions under
/// `-icount shift=0`).
fn uptime_ns(console: &str) -> Option<u64> {
    let v = console
        .lines()
        .find_map(|l| l.split("CCA-INIT: uptime: ").nth(1))?
        .trim();
    let secs: f64 = v.parse().ok()?;
    Some((secs * 1e9) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file with a valid arm64 Image header (text_offset 0, image_size 2 MiB, 4 KiB pages).
    fn fake_kernel(dir: &Path) -> PathBuf {
        let mut k = vec![0u8; 8192];
        k[0x10..0x18].copy_from_slice(&(2u64 << 20).to_le_bytes());
        k[0x18..0x20].copy_from_slice(&0x2u64.to_le_bytes());
        k[0x38..0x3c].copy_from_slice(b"ARM\x64");
        let p = dir.join("Image");
        std::fs::write(&p, k).unwrap();
        p
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cca-launch-test-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn err(args: &LaunchArgs, kernel: &Path, initrd: Option<&Path>, dir: &Path) -> String {
        format!("{:#}", prepare(args, kernel, initrd, dir).unwrap_err())
    }

    #[test]
    fn a_valid_launch_is_prepared() {
        let d = tmp("ok");
        let k = fake_kernel(&d);
        let p = prepare(&LaunchArgs::new(256, 2), &k, None, &d).unwrap();
        assert_eq!(p.rim.len(), 64);
        assert!(p.page.exists());
        assert!(p.bootargs.contains("earlycon=uart,mmio,0x101000000"));
        assert_eq!(p.machine_mib, 1024);
        let again = prepare(&LaunchArgs::new(256, 2), &k, None, &d).unwrap();
        assert_eq!(again.rim, p.rim, "the prediction is deterministic");
    }

    #[test]
    fn bad_launch_input_is_refused_before_qemu_starts() {
        let d = tmp("bad");
        let k = fake_kernel(&d);
        let not_image = d.join("not-an-image");
        std::fs::write(
            &not_image,
            [0x7fu8, b'E', b'L', b'F', 0, 0, 0, 0].repeat(16),
        )
        .unwrap();
        assert!(err(&LaunchArgs::new(256, 1), &not_image, None, &d).contains("arm64"));
        assert!(err(&LaunchArgs::new(2, 1), &k, None, &d).contains("too small"));
        assert!(err(&LaunchArgs::new(256, 0), &k, None, &d)
            .to_lowercase()
            .contains("cpu"));
        assert!(err(&LaunchArgs::new(256, 5000), &k, None, &d)
            .to_lowercase()
            .contains("cpu"));
        let mut a = LaunchArgs::new(256, 1);
        a.realm_pv = Some("ab".repeat(65));
        assert!(err(&a, &k, None, &d).contains("64"));
        let mut a = LaunchArgs::new(256, 1);
        a.measurement_algo = "sha384".into();
        assert!(err(&a, &k, None, &d).contains("sha384"));
        assert!(err(&LaunchArgs::new(256, 1), &d.join("missing"), None, &d).contains("reading"));
    }

    #[test]
    fn truncated_initrds_are_refused() {
        let d = tmp("initrd");
        let k = fake_kernel(&d);
        let mut w = crate::guest::cpio::CpioWriter::new();
        w.file("init", 0o755, b"#!/bin/sh\n").unwrap();
        let cpio = w.finish();
        check_initrd(&cpio).unwrap();
        assert!(check_initrd(&cpio[..cpio.len() / 2]).is_err());
        let gz = d.join("i.gz");
        let raw = d.join("i.cpio");
        std::fs::write(&raw, &cpio).unwrap();
        let out = Command::new("gzip")
            .args(["-n", "-c"])
            .arg(&raw)
            .output()
            .unwrap();
        std::fs::write(&gz, &out.stdout).unwrap();
        check_initrd(&out.stdout).unwrap();
        let cut = d.join("cut.gz");
        std::fs::write(&cut, &out.stdout[..out.stdout.len() - 8]).unwrap();
        assert!(err(&LaunchArgs::new(256, 1), &k, Some(&cut), &d).contains("truncated"));
        assert!(prepare(&LaunchArgs::new(256, 1), &k, Some(&gz), &d).is_ok());
        check_initrd(b"\xfd7zXZ\0 whatever").unwrap();
    }

    #[test]
    fn rpv_parsing() {
        let r = parse_rpv("0x0102ff").unwrap();
        assert_eq!(&r[..3], &[1, 2, 0xff]);
        assert!(r[3..].iter().all(|&b| b == 0));
        assert!(parse_rpv("123").is_err());
        assert!(parse_rpv("zz").is_err());
        assert!(parse_rpv(&"ab".repeat(65)).is_err());
        assert!(parse_rpv(&"ab".repeat(64)).is_ok());
    }
}
