//! A Linux realm on kvmtool's platform: from a launch configuration and the kernel's `Image`
//! header to everything the VM is built from (realm parameters, layout, device tree, RECs,
//! what is loaded where and whether it is measured), and the RIM that build will produce.
//!
//! The host builds the VM from a [`LinuxPlan`]; the launcher computes the same plan from the
//! same description and predicts the RIM with [`LinuxPlan::predict_rim`], so the two cannot
//! disagree about what is measured.
//!
//! A realm can also start in firmware ([`LinuxPlan::with_firmware`]): edk2's kvmtool realm
//! firmware (`KVMTOOL_EFI.fd`, an `Image`-format file) at the RAM base and the device tree
//! near the top of RAM, as kvmtool-cca places them for `--firmware`; the firmware then loads
//! Linux from the virtio disk, which the RIM does not cover (see `docs/firmware.md`).

use super::dtb::{self, DtbConfig};
use super::loader::{self, ImageHeader, Layout, LoadError, Part};
use super::platform::{self, RAM_BASE};
use super::vm::Load;
use alloc::string::String;
use alloc::vec::Vec;
use cca_abi::rmi::{data_flags, rec_mpidr, RealmParams, RecParams, REC_PARAMS_FLAG_RUNNABLE};
use cca_abi::GRANULE_SIZE as G;
use cca_measure::Measurement;
use core::fmt;
use zerocopy::FromZeros;

/// What the launch asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinuxConfig {
    /// Guest RAM in bytes (at [`RAM_BASE`]).
    pub mem: u64,
    /// Number of vCPUs.
    pub cpus: usize,
    /// `RmiHashAlgorithm` (0 SHA-256, 1 SHA-512).
    pub hash_algo: u8,
    /// The Realm Personalisation Value.
    pub rpv: [u8; 64],
    /// Breakpoints and watchpoints the realm gets.
    pub num_bps: u64,
    /// See `num_bps`.
    pub num_wps: u64,
    /// Extra kernel command line, appended to the console arguments the host adds.
    pub params: String,
    /// Whether the initrd's contents are measured.
    pub measure_initrd: bool,
}

/// The virtio devices of a Linux realm, on a PCI host bridge that exists only if one of
/// them does. They take devices 0, 1, ... of bus 0 in this order; device `d`'s INTA is SPI
/// [`PCI_SPI_BASE`]` + d`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceSet {
    /// A virtio-blk device.
    pub virtio_blk: bool,
    /// A virtio-console device (`hvc0`).
    pub virtio_console: bool,
}

/// What the host adds to the command line when there are virtio devices: a 16 MiB swiotlb
/// pool (8192 slabs of 2 KiB). Debian's 7.x kernels size a realm's pool at 1 MiB per GiB of
/// RAM, rounded up to 512 KiB for 256 MiB, and virtio-console's receive buffers alone (128
/// pages) fill that, leaving virtio-blk nothing to bounce through. A `swiotlb=` in the
/// launch's own parameters comes later and wins.
pub const SWIOTLB_ARG: &str = " swiotlb=8192";

/// The SPI of PCI device 0's INTA (the 16550 has SPI 0).
pub const PCI_SPI_BASE: u32 = 1;

impl DeviceSet {
    /// The devices a launch description asks for: a disk brings the PCI bus, and with it a
    /// virtio-console next to the 16550.
    pub fn from_launch(desc: &super::launch::LaunchDesc) -> Self {
        Self {
            virtio_blk: desc.disk.is_some(),
            virtio_console: desc.disk.is_some(),
        }
    }

    /// The `interrupt-map` entries, in device order.
    pub fn intx(&self) -> Vec<dtb::PciIntx> {
        let n = usize::from(self.virtio_blk) + usize::from(self.virtio_console);
        (0..n as u8)
            .map(|device| dtb::PciIntx {
                device,
                pin: 1,
                spi: PCI_SPI_BASE + u32::from(device),
            })
            .collect()
    }
}

/// Why a plan cannot be made.
#[derive(Debug)]
pub enum PlanError {
    /// The RAM size gives no IPA width.
    BadRam,
    /// The kernel file or the layout.
    Load(LoadError),
    /// The device tree.
    Dtb(dtb::DtbError),
    /// No vCPU.
    NoCpus,
    /// The device tree of a firmware boot is larger than the firmware takes
    /// ([`FIRMWARE_DTB_LIMIT`]).
    FirmwareDtbTooLarge {
        /// Its size in bytes.
        size: usize,
    },
}

/// The largest device tree a firmware boot hands over. edk2's `PrePi` packs the tree and
/// copies it to its image + 0x40, in the 32 KiB window before its firmware volume whose top
/// it also uses as its first stack; kvmtool's trees are 2 to 4 KiB. 16 KiB leaves the stack
/// its 16 KiB and holds about 100 vCPUs.
pub const FIRMWARE_DTB_LIMIT: usize = 0x4000;

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadRam => write!(f, "guest RAM must be a non-empty number of bytes"),
            Self::Load(e) => write!(f, "{e}"),
            Self::Dtb(e) => write!(f, "device tree: {e}"),
            Self::NoCpus => write!(f, "a realm needs at least one vCPU"),
            Self::FirmwareDtbTooLarge { size } => write!(
                f,
                "the device tree is {size} bytes; the firmware takes at most \
                 {FIRMWARE_DTB_LIMIT} (use fewer vCPUs)"
            ),
        }
    }
}

/// Everything a Linux realm is built from.
#[derive(Clone, Debug)]
pub struct LinuxPlan {
    /// Realm parameters (RTT fields are the VM's to fill in).
    pub params: RealmParams,
    /// Guest RAM `(base, size)`.
    pub ram: (u64, u64),
    /// IPA width.
    pub ipa_bits: u32,
    /// Where kernel, initrd and DTB go.
    pub layout: Layout,
    /// The device tree.
    pub dtb: Vec<u8>,
    /// The kernel command line in it.
    pub bootargs: String,
    /// One REC per vCPU.
    pub recs: Vec<RecParams>,
    /// Whether the initrd is measured.
    pub measure_initrd: bool,
}

/// vCPU parameters for `cpus` vCPUs: REC 0 runnable at `pc` with x0 = `x0`, the others off.
fn rec_params(cpus: usize, pc: u64, x0: u64) -> Vec<RecParams> {
    (0..cpus)
        .map(|i| {
            let mut p = RecParams::new_zeroed();
            p.mpidr = rec_mpidr::from_index(i as u64);
            if i == 0 {
                p.flags = REC_PARAMS_FLAG_RUNNABLE;
                p.pc = pc;
                p.gprs[0] = x0;
            }
            p
        })
        .collect()
}

/// The realm parameters a configuration asks for, with `ipa_bits`.
fn realm_params(cfg: &LinuxConfig, ipa_bits: u32) -> RealmParams {
    let mut params = RealmParams::new_zeroed();
    params.s2sz = u64::from(ipa_bits);
    params.hash_algo = cfg.hash_algo;
    params.rpv = cfg.rpv;
    params.num_bps = cfg.num_bps;
    params.num_wps = cfg.num_wps;
    params
}

fn vcpu_mpidrs(cpus: usize) -> Vec<u64> {
    (0..cpus as u64)
        .map(|i| rec_mpidr::to_mpidr_el1(rec_mpidr::from_index(i)))
        .collect()
}

impl LinuxPlan {
    /// Plans a realm for `cfg` booting the kernel whose file starts with `kernel_head` (at
    /// least its 64-byte header) and is `kernel_len` bytes long, with an initrd of
    /// `initrd_len` bytes, and no PCI devices.
    pub fn new(
        cfg: &LinuxConfig,
        kernel_head: &[u8],
        kernel_len: u64,
        initrd_len: Option<u64>,
    ) -> Result<Self, PlanError> {
        Self::with_devices(
            cfg,
            DeviceSet::default(),
            kernel_head,
            kernel_len,
            initrd_len,
        )
    }

    /// [`LinuxPlan::new`] with `devices` on a PCI host bridge (in the device tree, and
    /// [`SWIOTLB_ARG`] on the command line).
    pub fn with_devices(
        cfg: &LinuxConfig,
        devices: DeviceSet,
        kernel_head: &[u8],
        kernel_len: u64,
        initrd_len: Option<u64>,
    ) -> Result<Self, PlanError> {
        if cfg.cpus == 0 {
            return Err(PlanError::NoCpus);
        }
        let ipa_bits = platform::ipa_bits(RAM_BASE, cfg.mem).ok_or(PlanError::BadRam)?;
        let header = ImageHeader::parse(kernel_head).map_err(PlanError::Load)?;
        let layout = loader::plan(
            RAM_BASE,
            cfg.mem,
            &header,
            kernel_len,
            initrd_len,
            dtb::DTB_MAX_SIZE,
        )
        .map_err(PlanError::Load)?;
        let mut bootargs = dtb::console_bootargs(ipa_bits).ok_or(PlanError::BadRam)?;
        if devices != DeviceSet::default() {
            bootargs.push_str(SWIOTLB_ARG);
        }
        if !cfg.params.is_empty() {
            bootargs.push(' ');
            bootargs.push_str(&cfg.params);
        }
        let mpidrs = vcpu_mpidrs(cfg.cpus);
        let intx = devices.intx();
        let dtb = dtb::generate(&DtbConfig {
            ram_base: RAM_BASE,
            ram_size: cfg.mem,
            mpidrs: &mpidrs,
            bootargs: Some(&bootargs),
            initrd: layout.initrd.map(|r| (r.base, r.size)),
            pci: (!intx.is_empty()).then_some(dtb::PciHostBridge { intx: &intx }),
            extra_uarts: false,
        })
        .map_err(PlanError::Dtb)?;
        Ok(Self {
            params: realm_params(cfg, ipa_bits),
            ram: (RAM_BASE, cfg.mem),
            ipa_bits,
            recs: rec_params(cfg.cpus, layout.pc, layout.x0),
            layout,
            dtb,
            bootargs,
            measure_initrd: cfg.measure_initrd,
        })
    }

    /// Plans a realm for `cfg` that starts in firmware (edk2's kvmtool realm firmware) whose
    /// file starts with `firmware_head` (at least its 64-byte `Image` header) and is
    /// `firmware_len` bytes long, with `devices` on a PCI host bridge.
    ///
    /// What differs from a kernel boot: the firmware goes at the RAM base with `pc` there
    /// (its `text_offset` is not used) and the DTB window near the top of RAM
    /// ([`loader::plan_firmware`]); the device tree has no `/chosen/bootargs` unless
    /// `cfg.params` gives one (kvmtool passes `-p` on unchanged, and the host adds no console
    /// arguments: the firmware and the kernel it boots find the 16550 through
    /// `stdout-path` and the ACPI SPCR table), no initrd, and must stay within
    /// [`FIRMWARE_DTB_LIMIT`]; there is no initrd to measure. The firmware and the DTB are
    /// measured; whatever the firmware loads later is not.
    pub fn with_firmware(
        cfg: &LinuxConfig,
        devices: DeviceSet,
        firmware_head: &[u8],
        firmware_len: u64,
    ) -> Result<Self, PlanError> {
        if cfg.cpus == 0 {
            return Err(PlanError::NoCpus);
        }
        let ipa_bits = platform::ipa_bits(RAM_BASE, cfg.mem).ok_or(PlanError::BadRam)?;
        let header = ImageHeader::parse(firmware_head).map_err(PlanError::Load)?;
        let layout =
            loader::plan_firmware(RAM_BASE, cfg.mem, &header, firmware_len, dtb::DTB_MAX_SIZE)
                .map_err(PlanError::Load)?;
        let bootargs = cfg.params.clone();
        let mpidrs = vcpu_mpidrs(cfg.cpus);
        let intx = devices.intx();
        let dtb = dtb::generate(&DtbConfig {
            ram_base: RAM_BASE,
            ram_size: cfg.mem,
            mpidrs: &mpidrs,
            bootargs: (!bootargs.is_empty()).then_some(bootargs.as_str()),
            initrd: None,
            pci: (!intx.is_empty()).then_some(dtb::PciHostBridge { intx: &intx }),
            extra_uarts: true,
        })
        .map_err(PlanError::Dtb)?;
        if dtb.len() > FIRMWARE_DTB_LIMIT {
            return Err(PlanError::FirmwareDtbTooLarge { size: dtb.len() });
        }
        Ok(Self {
            params: realm_params(cfg, ipa_bits),
            ram: (RAM_BASE, cfg.mem),
            ipa_bits,
            recs: rec_params(cfg.cpus, layout.pc, layout.x0),
            layout,
            dtb,
            bootargs,
            measure_initrd: false,
        })
    }

    /// True when the plan starts in firmware rather than in a kernel.
    pub fn is_firmware(&self) -> bool {
        self.layout.payload == loader::Payload::Firmware
    }

    /// What the VM loads, in address order (the measurement order), given where the kernel,
    /// initrd and DTB bytes are in host memory.
    pub fn loads(&self, kernel_pa: u64, initrd_pa: Option<u64>, dtb_pa: u64) -> Vec<Load> {
        self.layout
            .in_address_order()
            .into_iter()
            .filter_map(|(part, r)| {
                let (src, len, measured) = match part {
                    Part::Image => (kernel_pa, r.size, true),
                    Part::Initrd => (initrd_pa?, r.size, self.measure_initrd),
                    Part::Dtb => (dtb_pa, self.dtb.len() as u64, true),
                };
                Some(Load {
                    ipa: r.base,
                    src,
                    len,
                    measured,
                })
            })
            .collect()
    }

    /// The RIM the RMM will compute for this plan with these file contents.
    pub fn predict_rim(&self, kernel: &[u8], initrd: Option<&[u8]>) -> Option<Measurement> {
        let mut m = Measurement::realm_create(&self.params)?;
        for (part, r) in self.layout.in_address_order() {
            let (bytes, measured) = match part {
                Part::Image => (kernel, true),
                Part::Initrd => (initrd?, self.measure_initrd),
                Part::Dtb => (&self.dtb[..], true),
            };
            let flags = if measured {
                data_flags::MEASURE_CONTENT
            } else {
                data_flags::NO_MEASURE_CONTENT
            };
            for (k, chunk) in bytes.chunks(G as usize).enumerate() {
                let mut page = [0u8; G as usize];
                page[..chunk.len()].copy_from_slice(chunk);
                m.extend_data(r.base + k as u64 * G, flags, &page);
            }
        }
        for p in &self.recs {
            m.extend_rec(p);
        }
        Some(m)
    }
}

/// The devices of kvmtool's platform for `cpus` vCPUs: the virtual GIC (distributor and one
/// redistributor per vCPU) and a bus with the 16550 UART, the MC146818 RTC, the GIC
/// distributor and the redistributors. Unknown addresses are left off the bus (the run loop
/// answers them as RAZ/WI).
pub fn platform(cpus: usize) -> super::error::VmResult<(crate::vgic::Vgic, crate::devices::Bus)> {
    let (vgic, bus, _) = platform_with(cpus, Devices::default())?;
    Ok((vgic, bus))
}

/// What [`platform_with`] puts on the PCI bus.
#[derive(Default)]
pub struct Devices {
    /// The disk a virtio-blk device serves.
    pub disk: Option<alloc::boxed::Box<dyn crate::devices::virtio::blk::BlockBackend>>,
    /// Whether there is a virtio-console.
    pub virtio_console: bool,
    /// Where the virtio-console's output goes (the run's console if `None`).
    pub hvc_out: Option<alloc::boxed::Box<dyn crate::devices::ConsoleOut>>,
}

impl Devices {
    /// The devices as the plan (and its device tree) sees them.
    pub fn set(&self) -> DeviceSet {
        DeviceSet {
            virtio_blk: self.disk.is_some(),
            virtio_console: self.virtio_console,
        }
    }
}

/// The counters of the platform's devices.
#[derive(Clone, Debug, Default)]
pub struct PlatformStats {
    /// The 16550 (accesses and console bytes).
    pub uart: crate::devices::virtio::StatsHandle,
    /// The virtio-blk device, if any.
    pub blk: Option<crate::devices::virtio::StatsHandle>,
    /// The virtio-console, if any.
    pub console: Option<crate::devices::virtio::StatsHandle>,
}

/// [`platform`] with `devices` on a PCI host bridge (ECAM at
/// [`platform::PCI_ECAM_BASE`], memory window at [`platform::PCI_MMIO_BASE`]) in the
/// order and with the interrupts [`DeviceSet::intx`] gives; the bridge comes first on the
/// bus, so an active virtio-console gets console input before the 16550.
pub fn platform_with(
    cpus: usize,
    devices: Devices,
) -> super::error::VmResult<(crate::vgic::Vgic, crate::devices::Bus, PlatformStats)> {
    use crate::devices::pci::{self, PciHost};
    use crate::devices::virtio::{
        blk::VirtioBlk, console::VirtioConsole, pci::VirtioPci, stats::Metered, StatsHandle,
    };
    use crate::devices::{gicd::Gicd, gicr::Gicr, rtc::Mc146818Rtc, uart16550::Uart16550, Bus};
    use alloc::boxed::Box;
    use platform::*;
    if cpus == 0 {
        return Err(super::error::VmError::Config(
            "a VM needs at least one vCPU",
        ));
    }
    let mpidrs: Vec<u64> = (0..cpus as u64)
        .map(|i| rec_mpidr::to_mpidr_el1(rec_mpidr::from_index(i)))
        .collect();
    let vgic = crate::vgic::Vgic::new(&mpidrs, NR_SPIS);
    let mut bus = Bus::new();
    let mut stats = PlatformStats::default();
    let intids: Vec<u32> = devices
        .set()
        .intx()
        .iter()
        .map(|e| SPI_BASE + e.spi)
        .collect();
    let mut host = PciHost::new();
    let bad = |_| super::error::VmError::Config("the PCI bus refused a device");
    let mut slot = intids.iter().copied();
    if let Some(disk) = devices.disk {
        let h = StatsHandle::default();
        let dev = VirtioPci::new(VirtioBlk::new(disk, "cca-vda"), h.clone());
        host.add(Box::new(dev), slot.next()).map_err(bad)?;
        stats.blk = Some(h);
    }
    if devices.virtio_console {
        let h = StatsHandle::default();
        let con = match devices.hvc_out {
            Some(out) => VirtioConsole::with_output(out),
            None => VirtioConsole::new(),
        };
        let dev = VirtioPci::new(con, h.clone());
        host.add(Box::new(dev), slot.next()).map_err(bad)?;
        stats.console = Some(h);
    }
    if !host.is_empty() {
        bus.add(pci::WINDOW.0, pci::WINDOW.1, Box::new(host))?;
    }
    bus.add(
        UART_BASE,
        UART_SIZE,
        Box::new(Metered::new(
            Uart16550::new(SPI_BASE + UART_SPI),
            stats.uart.clone(),
        )),
    )?;
    bus.add(RTC_BASE, RTC_SIZE, Box::new(Mc146818Rtc::new()))?;
    bus.add(GICD_BASE, GICD_SIZE, Box::new(Gicd::new()))?;
    let gicr = gicr_base(cpus as u64);
    for i in 0..cpus {
        bus.add(
            gicr + i as u64 * GICR_FRAME_SIZE,
            GICR_FRAME_SIZE,
            Box::new(Gicr::new(i, i + 1 == cpus)),
        )?;
    }
    Ok((vgic, bus, stats))
}

/// The command line for a Linux kernel that firmware boots from the disk (it goes into the
/// disk's `startup.nsh`, not into the device tree): the 16550 console with an `earlycon` at
/// its unprotected alias for a realm with `ipa_bits`-bit IPAs (Linux parses `earlycon`
/// before it knows it is a realm, and before it reads ACPI's SPCR), [`SWIOTLB_ARG`] when
/// there are virtio devices, the root filesystem `root` mounted read-write, then `extra`.
/// `None` for an IPA width the console arguments cannot describe, or a `root` or `extra`
/// with control characters.
pub fn firmware_linux_cmdline(
    ipa_bits: u32,
    devices: DeviceSet,
    root: &str,
    extra: &str,
) -> Option<String> {
    if root.is_empty()
        || root.contains(char::is_whitespace)
        || root.chars().chain(extra.chars()).any(char::is_control)
    {
        return None;
    }
    let mut s = dtb::console_bootargs(ipa_bits)?;
    if devices != DeviceSet::default() {
        s.push_str(SWIOTLB_ARG);
    }
    s.push_str(" root=");
    s.push_str(root);
    s.push_str(" rw rootwait");
    let extra = extra.trim();
    if !extra.is_empty() {
        s.push(' ');
        s.push_str(extra);
    }
    Some(s)
}

#[cfg(test)]
#[path = "firmware_tests.rs"]
mod firmware_tests;

/// [`platform_with`] for a firmware boot: also kvmtool's UARTs 1 to 3
/// ([`platform::EXTRA_UARTS`]) its device tree describes (edk2 makes them the ACPI DBG2 port
/// and SSDT serial ports; Linux probes the latter).
pub fn platform_for_firmware(
    cpus: usize,
    devices: Devices,
) -> super::error::VmResult<(crate::vgic::Vgic, crate::devices::Bus, PlatformStats)> {
    use crate::devices::uart16550::Uart16550;
    let (vgic, mut bus, stats) = platform_with(cpus, devices)?;
    for (base, spi) in platform::EXTRA_UARTS {
        bus.add(
            base,
            platform::UART_SIZE,
            alloc::boxed::Box::new(Uart16550::new(platform::SPI_BASE + spi)),
        )?;
    }
    Ok((vgic, bus, stats))
}

impl LinuxConfig {
    /// The configuration a launch description asks for (its kernel and initrd are the
    /// caller's to find).
    pub fn from_launch(desc: &super::launch::LaunchDesc) -> Self {
        Self {
            mem: desc.mem_bytes(),
            cpus: desc.cpus as usize,
            hash_algo: desc.hash.to_rmi() as u8,
            rpv: desc.rpv,
            num_bps: u64::from(desc.num_bps),
            num_wps: u64::from(desc.num_wps),
            params: desc.bootargs.clone().unwrap_or_default(),
            measure_initrd: desc.measure_initrd,
        }
    }
}
