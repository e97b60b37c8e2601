//! The device tree the host hands a realm, generated at launch.
//!
//! It mirrors what kvmtool builds for an arm64 guest with a GICv3 (`arm/fdt.c`, `arm/gic.c`,
//! `arm/timer.c`, `hw/serial.c`, `hw/rtc.c`, `arm/pci.c`), with the changes a realm needs:
//!
//! * PSCI through `method = "smc"`: Linux detects a realm only when the SMCCC conduit is SMC;
//! * no `kaslr-seed` or `rng-seed`: the DTB is measured into the RIM, so it must be the same
//!   bytes for the same configuration (the output is a pure function of [`DtbConfig`]).
//!
//! Nodes, in order (all children of the root, whose `#address-cells` and `#size-cells` are 2):
//!
//! | node | contents |
//! |---|---|
//! | `/` | `interrupt-parent` = the GIC, `compatible = "linux,dummy-virt"` |
//! | `/chosen` | `bootargs` (if given), `stdout-path = "serial0"`, `linux,initrd-start`/`-end` (if an initrd) |
//! | `/memory@<base>` | `device_type = "memory"`, one `reg` range |
//! | `/cpus/cpu@<mpidr>` | `device_type`, `compatible = "arm,arm-v8"`, `enable-method = "psci"`, `reg` = affinity |
//! | `/intc@3fff0000` | GICv3: distributor (64 KiB) and one redistributor region (128 KiB × vCPUs) |
//! | `/timer` | `arm,armv8-timer`: PPIs 13, 14, 11, 10, level-low, `always-on` |
//! | `/U6_16550A@1000000` | `ns16550a`, 8 bytes, SPI 0 level-high, 1.8432 MHz |
//! | `/rtc@1010000` | `motorola,mc146818`, 2 bytes |
//! | `/pci@40000000` | optional ([`DtbConfig::pci`]): `pci-host-ecam-generic` |
//! | `/psci` | `"arm,psci-1.0", "arm,psci-0.2"`, `method = "smc"` |
//! | `/aliases` | `serial0` = the 16550's path |
//!
//! The vCPUs' `reg` is the MPIDR's affinity (`MPIDR_EL1 & 0xff_00ff_ffff`, as kvmtool masks
//! it): one cell when no vCPU has a non-zero Aff3, two cells (Aff3, then Aff2..Aff0) otherwise,
//! as the Arm CPU binding says.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use cca_abi::arch::mpidr::AFFINITY_MASK;
use vm_fdt::FdtWriter;

use super::platform::{
    gicr_base, ipa_bits, EXTRA_UARTS, GICD_BASE, GICD_SIZE, GICR_FRAME_SIZE, NR_SPIS,
    PCI_ECAM_BASE, PCI_ECAM_SIZE, PCI_MMIO_BASE, PCI_MMIO_SIZE, RAM_BASE, RTC_BASE, RTC_SIZE,
    UART_BASE, UART_CLOCK_HZ, UART_SIZE, UART_SPI,
};

/// The window the loader reserves for the DTB (kvmtool's `FDT_MAX_SIZE`, 64 KiB); a generated
/// tree larger than this is an error.
pub const DTB_MAX_SIZE: u64 = 0x1_0000;

/// The longest `bootargs` accepted, in bytes: Linux's arm64 `COMMAND_LINE_SIZE` (2048) less
/// the terminating NUL.
pub const MAX_BOOTARGS: usize = 2047;

/// The most vCPUs a tree describes: 256 redistributor frames (32 MiB below the distributor)
/// stay clear of the RTC and PV-time windows of kvmtool's map.
pub const MAX_CPUS: usize = 256;
const _: () = assert!(gicr_base(MAX_CPUS as u64) > RTC_BASE + 0x2_0000);

/// The widest realm IPA space a tree describes (52 bits: FEAT_LPA2).
pub const MAX_IPA_BITS: u32 = 52;

/// The phandle of the GIC (kvmtool's `PHANDLE_GIC`).
pub const GIC_PHANDLE: u32 = 1;

/// The path of the 16550 node, which `/aliases/serial0` names.
pub const UART_PATH: &str = "/U6_16550A@1000000";
/// The path of the second 16550 node, the first of [`DtbConfig::extra_uarts`].
pub const DEBUG_UART_PATH: &str = "/U6_16550A@1001000";

/// The PCI I/O window kvmtool describes in the host bridge's `ranges` (CPU address 0, 64 KiB).
/// Not yet in [`super::platform`].
const PCI_IO_BASE: u64 = 0;
const PCI_IO_SIZE: u64 = 0x1_0000;

/// The most legacy-interrupt entries a PCI host bridge node carries (one per device and pin).
pub const MAX_PCI_INTX: usize = 128;

/// Granule size the RMM maps (RAM must be a whole number of them).
const GRANULE: u64 = 4096;

// Interrupt specifier fields (GIC binding).
const GIC_SPI: u32 = 0;
const GIC_PPI: u32 = 1;
const IRQ_TYPE_LEVEL_HIGH: u32 = 4;
const IRQ_TYPE_LEVEL_LOW: u32 = 8;

/// The PPIs of the architected timer, in the binding's order: secure physical (13),
/// non-secure physical (14), virtual (11), hypervisor physical (10).
pub const TIMER_PPIS: [u32; 4] = [13, 14, 11, 10];

/// What the tree describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtbConfig<'a> {
    /// IPA of the first byte of RAM (at least [`RAM_BASE`], 4 KiB-aligned).
    pub ram_base: u64,
    /// Bytes of RAM (a non-zero multiple of 4 KiB).
    pub ram_size: u64,
    /// The `MPIDR_EL1` value of each vCPU, in vCPU order (1 ..= [`MAX_CPUS`], distinct
    /// affinities).
    pub mpidrs: &'a [u64],
    /// The kernel command line (`/chosen/bootargs`), at most [`MAX_BOOTARGS`] bytes, no NUL.
    pub bootargs: Option<&'a str>,
    /// The initrd as (IPA, length in bytes), inside RAM.
    pub initrd: Option<(u64, u64)>,
    /// A PCI host bridge node, when the VMM emulates one.
    pub pci: Option<PciHostBridge<'a>>,
    /// kvmtool's UARTs 1 to 3 ([`EXTRA_UARTS`]) as further 16550 nodes (firmware boots: edk2
    /// makes the first the ACPI DBG2 port, the others SSDT serial ports).
    pub extra_uarts: bool,
}

/// The PCI host bridge: kvmtool's `pci-host-ecam-generic` over [`PCI_ECAM_BASE`] (bus 0), with
/// the I/O window and the 32-bit memory window [`PCI_MMIO_BASE`] in `ranges`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciHostBridge<'a> {
    /// The legacy interrupts (`interrupt-map`) of the devices that use one; at most
    /// [`MAX_PCI_INTX`].
    pub intx: &'a [PciIntx],
}

/// One `interrupt-map` entry: a device's INTx pin wired to a level-high SPI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciIntx {
    /// Device number on bus 0 (0..32).
    pub device: u8,
    /// Interrupt pin: 1 = INTA .. 4 = INTD.
    pub pin: u8,
    /// The SPI number (INTID − 32), below [`NR_SPIS`].
    pub spi: u32,
}

/// Why a tree could not be generated.
#[derive(Debug, PartialEq, Eq)]
pub enum DtbError {
    /// `mpidrs` is empty.
    NoCpus,
    /// More vCPUs than [`MAX_CPUS`].
    TooManyCpus {
        /// vCPUs asked for.
        count: usize,
    },
    /// Two vCPUs have the same affinity.
    DuplicateMpidr {
        /// The affinity both have.
        mpidr: u64,
    },
    /// RAM is empty, wraps, is not 4 KiB-aligned, starts below [`RAM_BASE`] or needs more than
    /// [`MAX_IPA_BITS`] bits of IPA.
    BadRam {
        /// IPA of the range.
        base: u64,
        /// Its size.
        size: u64,
    },
    /// `bootargs` is longer than [`MAX_BOOTARGS`].
    BootargsTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// `bootargs` contains a NUL byte.
    BootargsNul,
    /// The initrd is empty, wraps, or is not inside RAM.
    BadInitrd {
        /// Its IPA.
        start: u64,
        /// Its length.
        len: u64,
    },
    /// A PCI `interrupt-map` entry has a device number ≥ 32, a pin outside 1..=4, an SPI
    /// outside the distributor's, or repeats a (device, pin) pair; or there are more than
    /// [`MAX_PCI_INTX`].
    BadPciIntx {
        /// Index of the entry in [`PciHostBridge::intx`].
        index: usize,
    },
    /// The tree is larger than [`DTB_MAX_SIZE`].
    TooLarge {
        /// Its size in bytes.
        size: usize,
    },
    /// The FDT writer refused a node or property (a bug in this module).
    Writer(vm_fdt::Error),
}

impl fmt::Display for DtbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoCpus => write!(f, "a realm needs at least one vCPU"),
            Self::TooManyCpus { count } => {
                write!(
                    f,
                    "{count} vCPUs asked for; the device tree describes at most {MAX_CPUS}"
                )
            }
            Self::DuplicateMpidr { mpidr } => {
                write!(f, "two vCPUs have the same MPIDR affinity {mpidr:#x}")
            }
            Self::BadRam { base, size } => write!(
                f,
                "RAM [{base:#x}, +{size:#x}) must be non-empty, 4 KiB-aligned, at or above \
                 {RAM_BASE:#x} and below 2^{} (less the shared bit)",
                MAX_IPA_BITS - 1
            ),
            Self::BootargsTooLong { len } => write!(
                f,
                "the kernel command line is {len} bytes; Linux takes at most {MAX_BOOTARGS}"
            ),
            Self::BootargsNul => write!(f, "the kernel command line contains a NUL byte"),
            Self::BadInitrd { start, len } => write!(
                f,
                "the initrd at {start:#x} ({len} bytes) must be non-empty and inside RAM"
            ),
            Self::BadPciIntx { index } => write!(
                f,
                "PCI interrupt entry {index}: device must be below 32, pin 1..=4, SPI below \
                 {NR_SPIS}, each (device, pin) once, at most {MAX_PCI_INTX} entries"
            ),
            Self::TooLarge { size } => write!(
                f,
                "the device tree is {size} bytes, more than the {DTB_MAX_SIZE}-byte DTB window"
            ),
            Self::Writer(e) => write!(f, "device tree writer: {e}"),
        }
    }
}

impl From<vm_fdt::Error> for DtbError {
    fn from(e: vm_fdt::Error) -> Self {
        Self::Writer(e)
    }
}

/// Checks `cfg` and returns the vCPUs' affinities (masked MPIDRs).
fn check(cfg: &DtbConfig<'_>) -> Result<Vec<u64>, DtbError> {
    if cfg.mpidrs.is_empty() {
        return Err(DtbError::NoCpus);
    }
    if cfg.mpidrs.len() > MAX_CPUS {
        return Err(DtbError::TooManyCpus {
            count: cfg.mpidrs.len(),
        });
    }
    let mut affinities: Vec<u64> = Vec::with_capacity(cfg.mpidrs.len());
    for &m in cfg.mpidrs {
        let a = m & AFFINITY_MASK;
        if affinities.contains(&a) {
            return Err(DtbError::DuplicateMpidr { mpidr: a });
        }
        affinities.push(a);
    }

    let ram_end = cfg.ram_base.checked_add(cfg.ram_size);
    let width_ok = matches!(ipa_bits(cfg.ram_base, cfg.ram_size), Some(b) if b <= MAX_IPA_BITS);
    let ram_end = match ram_end {
        Some(end)
            if cfg.ram_size != 0
                && cfg.ram_base >= RAM_BASE
                && cfg.ram_base % GRANULE == 0
                && cfg.ram_size % GRANULE == 0
                && width_ok =>
        {
            end
        }
        _ => {
            return Err(DtbError::BadRam {
                base: cfg.ram_base,
                size: cfg.ram_size,
            })
        }
    };

    if let Some(args) = cfg.bootargs {
        if args.len() > MAX_BOOTARGS {
            return Err(DtbError::BootargsTooLong { len: args.len() });
        }
        if args.as_bytes().contains(&0) {
            return Err(DtbError::BootargsNul);
        }
    }

    if let Some((start, len)) = cfg.initrd {
        let inside = match start.checked_add(len) {
            Some(end) => len != 0 && start >= cfg.ram_base && end <= ram_end,
            None => false,
        };
        if !inside {
            return Err(DtbError::BadInitrd { start, len });
        }
    }

    if let Some(pci) = &cfg.pci {
        if pci.intx.len() > MAX_PCI_INTX {
            return Err(DtbError::BadPciIntx {
                index: MAX_PCI_INTX,
            });
        }
        for (index, e) in pci.intx.iter().enumerate() {
            let repeated = pci.intx[..index]
                .iter()
                .any(|p| p.device == e.device && p.pin == e.pin);
            let taken = cfg.extra_uarts && EXTRA_UARTS.iter().any(|&(_, spi)| spi == e.spi);
            if e.device >= 32 || !(1..=4).contains(&e.pin) || e.spi >= NR_SPIS || repeated || taken
            {
                return Err(DtbError::BadPciIntx { index });
            }
        }
    }
    Ok(affinities)
}

/// Generates the DTB for `cfg`: the same bytes for the same configuration.
pub fn generate(cfg: &DtbConfig<'_>) -> Result<Vec<u8>, DtbError> {
    let affinities = check(cfg)?;
    // Every check that depends on the input is done; what follows can fail only through a
    // bug (an invalid name), reported as `Writer`.
    let nr_cpus = affinities.len() as u64;

    let mut fdt = FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    fdt.property_u32("interrupt-parent", GIC_PHANDLE)?;
    fdt.property_string("compatible", "linux,dummy-virt")?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;

    let chosen = fdt.begin_node("chosen")?;
    if let Some(args) = cfg.bootargs {
        fdt.property_string("bootargs", args)?;
    }
    fdt.property_string("stdout-path", "serial0")?;
    if let Some((start, len)) = cfg.initrd {
        // `check` made sure `start + len` does not wrap.
        fdt.property_u64("linux,initrd-start", start)?;
        fdt.property_u64("linux,initrd-end", start.saturating_add(len))?;
    }
    fdt.end_node(chosen)?;

    let memory = fdt.begin_node(&format!("memory@{:x}", cfg.ram_base))?;
    fdt.property_string("device_type", "memory")?;
    fdt.property_array_u64("reg", &[cfg.ram_base, cfg.ram_size])?;
    fdt.end_node(memory)?;

    cpu_nodes(&mut fdt, &affinities)?;

    let intc = fdt.begin_node(&format!("intc@{GICD_BASE:x}"))?;
    fdt.property_string("compatible", "arm,gic-v3")?;
    fdt.property_u32("#interrupt-cells", 3)?;
    fdt.property_null("interrupt-controller")?;
    fdt.property_array_u64(
        "reg",
        &[
            GICD_BASE,
            GICD_SIZE,
            gicr_base(nr_cpus),
            nr_cpus * GICR_FRAME_SIZE,
        ],
    )?;
    fdt.property_phandle(GIC_PHANDLE)?;
    // As kvmtool: an `interrupt-map` (PCI) then carries two address cells for the GIC.
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.end_node(intc)?;

    let timer = fdt.begin_node("timer")?;
    fdt.property("compatible", b"arm,armv8-timer\0arm,armv7-timer\0")?;
    let mut cells = [0u32; 12];
    for (c, ppi) in cells.chunks_exact_mut(3).zip(TIMER_PPIS) {
        c.copy_from_slice(&[GIC_PPI, ppi, IRQ_TYPE_LEVEL_LOW]);
    }
    fdt.property_array_u32("interrupts", &cells)?;
    fdt.property_null("always-on")?;
    fdt.end_node(timer)?;

    let uart = fdt.begin_node(&UART_PATH[1..])?;
    fdt.property_string("compatible", "ns16550a")?;
    fdt.property_array_u64("reg", &[UART_BASE, UART_SIZE])?;
    fdt.property_array_u32("interrupts", &[GIC_SPI, UART_SPI, IRQ_TYPE_LEVEL_HIGH])?;
    fdt.property_u32("clock-frequency", UART_CLOCK_HZ)?;
    fdt.end_node(uart)?;

    if cfg.extra_uarts {
        for (base, spi) in EXTRA_UARTS {
            let uart = fdt.begin_node(&format!("U6_16550A@{base:x}"))?;
            fdt.property_string("compatible", "ns16550a")?;
            fdt.property_array_u64("reg", &[base, UART_SIZE])?;
            fdt.property_array_u32("interrupts", &[GIC_SPI, spi, IRQ_TYPE_LEVEL_HIGH])?;
            fdt.property_u32("clock-frequency", UART_CLOCK_HZ)?;
            fdt.end_node(uart)?;
        }
    }

    let rtc = fdt.begin_node(&format!("rtc@{RTC_BASE:x}"))?;
    fdt.property_string("compatible", "motorola,mc146818")?;
    fdt.property_array_u64("reg", &[RTC_BASE, RTC_SIZE])?;
    fdt.end_node(rtc)?;

    if let Some(pci) = &cfg.pci {
        pci_node(&mut fdt, pci)?;
    }

    let psci = fdt.begin_node("psci")?;
    fdt.property("compatible", b"arm,psci-1.0\0arm,psci-0.2\0")?;
    fdt.property_string("method", "smc")?;
    fdt.end_node(psci)?;

    let aliases = fdt.begin_node("aliases")?;
    fdt.property_string("serial0", UART_PATH)?;
    fdt.end_node(aliases)?;

    fdt.end_node(root)?;
    let blob = fdt.finish()?;
    if blob.len() as u64 > DTB_MAX_SIZE {
        return Err(DtbError::TooLarge { size: blob.len() });
    }
    Ok(blob)
}

fn cpu_nodes(fdt: &mut FdtWriter, affinities: &[u64]) -> Result<(), DtbError> {
    let two_cells = affinities.iter().any(|a| a >> 32 != 0);
    let cpus = fdt.begin_node("cpus")?;
    fdt.property_u32("#address-cells", if two_cells { 2 } else { 1 })?;
    fdt.property_u32("#size-cells", 0)?;
    for &a in affinities {
        let cpu = fdt.begin_node(&format!("cpu@{a:x}"))?;
        fdt.property_string("device_type", "cpu")?;
        fdt.property_string("compatible", "arm,arm-v8")?;
        fdt.property_string("enable-method", "psci")?;
        if two_cells {
            fdt.property_array_u32("reg", &[(a >> 32) as u32, a as u32])?;
        } else {
            fdt.property_u32("reg", a as u32)?;
        }
        fdt.end_node(cpu)?;
    }
    fdt.end_node(cpus)?;
    Ok(())
}

/// `phys.hi` of a PCI address: the space code (1 = I/O, 2 = 32-bit memory) in bits [25:24].
const fn pci_space(code: u32) -> u32 {
    code << 24
}

fn pci_node(fdt: &mut FdtWriter, pci: &PciHostBridge<'_>) -> Result<(), DtbError> {
    let node = fdt.begin_node(&format!("pci@{PCI_ECAM_BASE:x}"))?;
    fdt.property_string("device_type", "pci")?;
    fdt.property_u32("#address-cells", 3)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_u32("#interrupt-cells", 1)?;
    fdt.property_string("compatible", "pci-host-ecam-generic")?;
    fdt.property_null("dma-coherent")?;
    fdt.property_array_u32("bus-range", &[0, 0])?;
    fdt.property_array_u64("reg", &[PCI_ECAM_BASE, PCI_ECAM_SIZE])?;
    // Each entry: PCI address (3 cells), CPU address (2), size (2).
    let mut ranges: Vec<u32> = Vec::with_capacity(14);
    for (code, base, size) in [
        (1, PCI_IO_BASE, PCI_IO_SIZE),
        (2, PCI_MMIO_BASE, PCI_MMIO_SIZE),
    ] {
        let pci_addr = if code == 1 { 0 } else { base };
        ranges.extend_from_slice(&[
            pci_space(code),
            (pci_addr >> 32) as u32,
            pci_addr as u32,
            (base >> 32) as u32,
            base as u32,
            (size >> 32) as u32,
            size as u32,
        ]);
    }
    fdt.property_array_u32("ranges", &ranges)?;
    // Each entry: child unit address (3 cells) and pin, the GIC's phandle, its unit address
    // (2 cells, see the intc node), and the GIC interrupt specifier (3).
    let mut map: Vec<u32> = Vec::with_capacity(pci.intx.len() * 10);
    for e in pci.intx {
        map.extend_from_slice(&[
            u32::from(e.device) << 11,
            0,
            0,
            u32::from(e.pin),
            GIC_PHANDLE,
            0,
            0,
            GIC_SPI,
            e.spi,
            IRQ_TYPE_LEVEL_HIGH,
        ]);
    }
    fdt.property_array_u32("interrupt-map", &map)?;
    if !pci.intx.is_empty() {
        fdt.property_array_u32("interrupt-map-mask", &[0x1f << 11, 0, 0, 7])?;
    }
    fdt.end_node(node)?;
    Ok(())
}

/// The `/chosen/bootargs` a caller would pass for the 16550 console of a realm whose IPA space
/// is `ipa_bits` wide: `console=ttyS0` and an `earlycon` at the UART's unprotected alias
/// (Linux parses `earlycon` before it knows it is a realm).
pub fn console_bootargs(ipa_bits: u32) -> Option<String> {
    if !(33..=64).contains(&ipa_bits) {
        return None;
    }
    let alias = UART_BASE | 1u64 << (ipa_bits - 1);
    Some(format!("console=ttyS0 earlycon=uart,mmio,{alias:#x}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use fdt::node::FdtNode;
    use fdt::Fdt;

    const MIB: u64 = 1 << 20;

    fn base_cfg(mpidrs: &[u64]) -> DtbConfig<'_> {
        DtbConfig {
            ram_base: RAM_BASE,
            ram_size: 256 * MIB,
            mpidrs,
            bootargs: Some("console=ttyS0 earlycon=uart,mmio,0x101000000 rdinit=/init"),
            initrd: Some((0x8F00_0000, 1_030_891)),
            pci: None,
            extra_uarts: false,
        }
    }

    fn node<'b, 'a>(fdt: &'b Fdt<'a>, path: &str) -> FdtNode<'b, 'a> {
        fdt.find_node(path)
            .unwrap_or_else(|| panic!("no node {path}"))
    }

    fn prop<'a>(n: FdtNode<'_, 'a>, name: &str) -> &'a [u8] {
        n.property(name)
            .unwrap_or_else(|| panic!("{} has no {name}", n.name))
            .value
    }

    fn cells(n: FdtNode<'_, '_>, name: &str) -> Vec<u32> {
        let v = prop(n, name);
        assert_eq!(v.len() % 4, 0, "{name} is not whole cells");
        v.chunks_exact(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn u64s(n: FdtNode<'_, '_>, name: &str) -> Vec<u64> {
        let v = prop(n, name);
        assert_eq!(v.len() % 8, 0, "{name} is not whole u64s");
        v.chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn string(n: FdtNode<'_, '_>, name: &str) -> String {
        let v = prop(n, name);
        assert_eq!(v.last(), Some(&0), "{name} is not NUL-terminated");
        String::from(core::str::from_utf8(&v[..v.len() - 1]).unwrap())
    }

    fn prop_names(n: FdtNode<'_, '_>) -> Vec<String> {
        n.properties().map(|p| String::from(p.name)).collect()
    }

    #[test]
    fn every_node_and_property() {
        let mpidrs = [0x8000_0000, 0x8000_0001];
        let cfg = base_cfg(&mpidrs);
        let blob = generate(&cfg).unwrap();
        let fdt = Fdt::new(&blob).unwrap();

        let root = node(&fdt, "/");
        assert_eq!(
            prop_names(root),
            [
                "interrupt-parent",
                "compatible",
                "#address-cells",
                "#size-cells"
            ]
        );
        assert_eq!(cells(root, "interrupt-parent"), [GIC_PHANDLE]);
        assert_eq!(string(root, "compatible"), "linux,dummy-virt");
        assert_eq!(cells(root, "#address-cells"), [2]);
        assert_eq!(cells(root, "#size-cells"), [2]);
        let children: Vec<&str> = root.children().map(|c| c.name).collect();
        assert_eq!(
            children,
            [
                "chosen",
                "memory@80000000",
                "cpus",
                "intc@3fff0000",
                "timer",
                "U6_16550A@1000000",
                "rtc@1010000",
                "psci",
                "aliases"
            ]
        );

        let chosen = node(&fdt, "/chosen");
        assert_eq!(
            prop_names(chosen),
            [
                "bootargs",
                "stdout-path",
                "linux,initrd-start",
                "linux,initrd-end"
            ]
        );
        assert_eq!(string(chosen, "bootargs"), cfg.bootargs.unwrap());
        assert_eq!(fdt.chosen().bootargs(), cfg.bootargs);
        assert_eq!(string(chosen, "stdout-path"), "serial0");
        assert_eq!(u64s(chosen, "linux,initrd-start"), [0x8F00_0000]);
        assert_eq!(u64s(chosen, "linux,initrd-end"), [0x8F00_0000 + 1_030_891]);
        assert_eq!(fdt.chosen().stdout().unwrap().name, "U6_16550A@1000000");

        let mem = node(&fdt, "/memory@80000000");
        assert_eq!(string(mem, "device_type"), "memory");
        assert_eq!(u64s(mem, "reg"), [RAM_BASE, 256 * MIB]);
        let regions: Vec<_> = fdt.memory().regions().collect();
        assert_eq!(regions.len(), 1);
        assert_eq!(regions[0].starting_address as u64, RAM_BASE);
        assert_eq!(regions[0].size, Some(256 << 20));

        let cpus = node(&fdt, "/cpus");
        assert_eq!(cells(cpus, "#address-cells"), [1]);
        assert_eq!(cells(cpus, "#size-cells"), [0]);
        let names: Vec<&str> = cpus.children().map(|c| c.name).collect();
        assert_eq!(names, ["cpu@0", "cpu@1"]);
        for (i, cpu) in cpus.children().enumerate() {
            assert_eq!(
                prop_names(cpu),
                ["device_type", "compatible", "enable-method", "reg"]
            );
            assert_eq!(string(cpu, "device_type"), "cpu");
            assert_eq!(string(cpu, "compatible"), "arm,arm-v8");
            assert_eq!(string(cpu, "enable-method"), "psci");
            assert_eq!(cells(cpu, "reg"), [i as u32], "the RES1 bit 31 is masked");
        }

        let gic = node(&fdt, "/intc@3fff0000");
        assert_eq!(string(gic, "compatible"), "arm,gic-v3");
        assert_eq!(cells(gic, "#interrupt-cells"), [3]);
        assert!(prop(gic, "interrupt-controller").is_empty());
        assert_eq!(
            u64s(gic, "reg"),
            [0x3FFF_0000, 0x1_0000, 0x3FFB_0000, 0x4_0000]
        );
        assert_eq!(cells(gic, "phandle"), [GIC_PHANDLE]);
        assert_eq!(cells(gic, "#address-cells"), [2]);
        assert_eq!(cells(gic, "#size-cells"), [2]);
        assert_eq!(fdt.find_phandle(GIC_PHANDLE).unwrap().name, gic.name);
        assert_eq!(root.interrupt_parent().unwrap().name, gic.name);

        let timer = node(&fdt, "/timer");
        assert_eq!(
            prop(timer, "compatible"),
            b"arm,armv8-timer\0arm,armv7-timer\0"
        );
        assert_eq!(
            cells(timer, "interrupts"),
            [1, 13, 8, 1, 14, 8, 1, 11, 8, 1, 10, 8]
        );
        assert!(prop(timer, "always-on").is_empty());

        let uart = node(&fdt, "/U6_16550A@1000000");
        assert_eq!(string(uart, "compatible"), "ns16550a");
        assert_eq!(u64s(uart, "reg"), [0x0100_0000, 8]);
        assert_eq!(cells(uart, "interrupts"), [0, 0, 4]);
        assert_eq!(cells(uart, "clock-frequency"), [1_843_200]);

        let rtc = node(&fdt, "/rtc@1010000");
        assert_eq!(string(rtc, "compatible"), "motorola,mc146818");
        assert_eq!(u64s(rtc, "reg"), [0x0101_0000, 2]);
        assert!(rtc.property("interrupts").is_none());

        let psci = node(&fdt, "/psci");
        assert_eq!(prop_names(psci), ["compatible", "method"]);
        assert_eq!(prop(psci, "compatible"), b"arm,psci-1.0\0arm,psci-0.2\0");
        assert_eq!(string(psci, "method"), "smc");

        let aliases = node(&fdt, "/aliases");
        assert_eq!(string(aliases, "serial0"), UART_PATH);
        assert_eq!(
            fdt.aliases().unwrap().resolve_node("serial0").unwrap().name,
            uart.name
        );

        // No entropy and no reserve map: nothing that varies between boots.
        assert!(chosen.property("kaslr-seed").is_none());
        assert!(chosen.property("rng-seed").is_none());
        assert_eq!(fdt.memory_reservations().count(), 0);
        assert!(fdt.find_node("/pci@40000000").is_none());
        assert_eq!(fdt.total_size(), blob.len());
    }

    #[test]
    fn optional_chosen_properties_are_left_out() {
        let mpidrs = [0];
        let cfg = DtbConfig {
            bootargs: None,
            initrd: None,
            ..base_cfg(&mpidrs)
        };
        let blob = generate(&cfg).unwrap();
        let fdt = Fdt::new(&blob).unwrap();
        assert_eq!(prop_names(node(&fdt, "/chosen")), ["stdout-path"]);
        // One vCPU still gets the PSCI enable method (Linux needs it for nothing, but it is
        // harmless and keeps the node uniform) and one redistributor frame.
        let cpu = node(&fdt, "/cpus/cpu@0");
        assert_eq!(string(cpu, "enable-method"), "psci");
        assert_eq!(
            u64s(node(&fdt, "/intc@3fff0000"), "reg"),
            [0x3FFF_0000, 0x1_0000, 0x3FFD_0000, 0x2_0000]
        );
    }

    #[test]
    fn aff3_uses_two_address_cells() {
        let mpidrs = [0, 0x1_0000_0100];
        let blob = generate(&base_cfg(&mpidrs)).unwrap();
        let fdt = Fdt::new(&blob).unwrap();
        let cpus = node(&fdt, "/cpus");
        assert_eq!(cells(cpus, "#address-cells"), [2]);
        assert_eq!(cells(node(&fdt, "/cpus/cpu@0"), "reg"), [0, 0]);
        assert_eq!(cells(node(&fdt, "/cpus/cpu@100000100"), "reg"), [1, 0x100]);
    }

    #[test]
    fn deterministic_and_small() {
        let mpidrs: Vec<u64> = (0..8).map(|i| (i & 3) | ((i >> 2) << 8)).collect();
        let longest = "x".repeat(MAX_BOOTARGS);
        let cfg = DtbConfig {
            bootargs: Some(longest.as_str()),
            ..base_cfg(&mpidrs)
        };
        let a = generate(&cfg).unwrap();
        let b = generate(&cfg).unwrap();
        assert_eq!(a, b);
        assert!(a.len() < 8192, "{} bytes for 8 vCPUs", a.len());
        // A different input gives a different tree.
        let c = generate(&DtbConfig {
            initrd: None,
            ..cfg
        })
        .unwrap();
        assert_ne!(a, c);
        // With the realistic command line it is a couple of KiB.
        let small = generate(&base_cfg(&mpidrs)).unwrap();
        assert!(small.len() < 4096, "{} bytes", small.len());
    }

    #[test]
    fn the_most_cpus_fit_the_window() {
        let mpidrs: Vec<u64> = (0..MAX_CPUS as u64)
            .map(|i| (i & 0xf) | ((i >> 4) << 8))
            .collect();
        let longest = "y".repeat(MAX_BOOTARGS);
        let blob = generate(&DtbConfig {
            bootargs: Some(longest.as_str()),
            ..base_cfg(&mpidrs)
        })
        .unwrap();
        assert!(blob.len() as u64 <= DTB_MAX_SIZE);
        let fdt = Fdt::new(&blob).unwrap();
        assert_eq!(node(&fdt, "/cpus").children().count(), MAX_CPUS);
    }

    #[test]
    fn pci_host_bridge() {
        let mpidrs = [0, 1];
        let intx = [
            PciIntx {
                device: 1,
                pin: 1,
                spi: 3,
            },
            PciIntx {
                device: 2,
                pin: 2,
                spi: 4,
            },
        ];
        let cfg = DtbConfig {
            pci: Some(PciHostBridge { intx: &intx }),
            ..base_cfg(&mpidrs)
        };
        let blob = generate(&cfg).unwrap();
        let fdt = Fdt::new(&blob).unwrap();
        let names: Vec<&str> = node(&fdt, "/").children().map(|c| c.name).collect();
        assert_eq!(
            names[7], "pci@40000000",
            "before psci, as kvmtool orders it"
        );
        let pci = node(&fdt, "/pci@40000000");
        assert_eq!(string(pci, "device_type"), "pci");
        assert_eq!(cells(pci, "#address-cells"), [3]);
        assert_eq!(cells(pci, "#size-cells"), [2]);
        assert_eq!(cells(pci, "#interrupt-cells"), [1]);
        assert_eq!(string(pci, "compatible"), "pci-host-ecam-generic");
        assert!(prop(pci, "dma-coherent").is_empty());
        assert_eq!(cells(pci, "bus-range"), [0, 0]);
        assert_eq!(u64s(pci, "reg"), [0x4000_0000, 0x1000_0000]);
        assert_eq!(
            cells(pci, "ranges"),
            [
                0x0100_0000,
                0,
                0,
                0,
                0,
                0,
                0x1_0000, //
                0x0200_0000,
                0,
                0x5000_0000,
                0,
                0x5000_0000,
                0,
                0x3000_0000
            ]
        );
        assert_eq!(
            cells(pci, "interrupt-map"),
            [
                0x800, 0, 0, 1, 1, 0, 0, 0, 3, 4, //
                0x1000, 0, 0, 2, 1, 0, 0, 0, 4, 4
            ]
        );
        assert_eq!(cells(pci, "interrupt-map-mask"), [0xf800, 0, 0, 7]);

        // No INTx users: an empty map and no mask, as kvmtool writes it.
        let blob = generate(&DtbConfig {
            pci: Some(PciHostBridge { intx: &[] }),
            ..base_cfg(&mpidrs)
        })
        .unwrap();
        let fdt = Fdt::new(&blob).unwrap();
        let pci = node(&fdt, "/pci@40000000");
        assert!(prop(pci, "interrupt-map").is_empty());
        assert!(pci.property("interrupt-map-mask").is_none());
    }

    #[test]
    fn bad_cpus() {
        assert_eq!(generate(&base_cfg(&[])), Err(DtbError::NoCpus));
        let many: Vec<u64> = (0..=MAX_CPUS as u64).collect();
        assert_eq!(
            generate(&base_cfg(&many)),
            Err(DtbError::TooManyCpus {
                count: MAX_CPUS + 1
            })
        );
        assert_eq!(
            generate(&base_cfg(&[1, 2, 0x8000_0001])),
            Err(DtbError::DuplicateMpidr { mpidr: 1 })
        );
    }

    #[test]
    fn bad_ram() {
        let mpidrs = [0];
        for (base, size) in [
            (RAM_BASE, 0),
            (RAM_BASE, 4095),
            (RAM_BASE + 1, 4096),
            (RAM_BASE - 4096, 8192),
            (0, 256 * MIB),
            (u64::MAX - 4095, 8192),
            (RAM_BASE, u64::MAX - RAM_BASE + 1),
            (1 << 51, 4096),
        ] {
            let cfg = DtbConfig {
                ram_base: base,
                ram_size: size,
                initrd: None,
                ..base_cfg(&mpidrs)
            };
            assert_eq!(
                generate(&cfg),
                Err(DtbError::BadRam { base, size }),
                "{base:#x} + {size:#x}"
            );
        }
        // The widest accepted: the last byte just below 2^51.
        let cfg = DtbConfig {
            ram_base: (1 << 51) - 4096,
            ram_size: 4096,
            initrd: None,
            ..base_cfg(&mpidrs)
        };
        assert!(generate(&cfg).is_ok());
    }

    #[test]
    fn bad_bootargs() {
        let mpidrs = [0];
        let long = "z".repeat(MAX_BOOTARGS + 1);
        let cfg = DtbConfig {
            bootargs: Some(long.as_str()),
            ..base_cfg(&mpidrs)
        };
        assert_eq!(
            generate(&cfg),
            Err(DtbError::BootargsTooLong {
                len: MAX_BOOTARGS + 1
            })
        );
        let cfg = DtbConfig {
            bootargs: Some("a\0b"),
            ..base_cfg(&mpidrs)
        };
        assert_eq!(generate(&cfg), Err(DtbError::BootargsNul));
    }

    #[test]
    fn bad_initrd() {
        let mpidrs = [0];
        let end = RAM_BASE + 256 * MIB;
        for (start, len) in [
            (RAM_BASE, 0),
            (RAM_BASE - 1, 2),
            (end - 1, 2),
            (end, 1),
            (u64::MAX, 2),
        ] {
            let cfg = DtbConfig {
                initrd: Some((start, len)),
                ..base_cfg(&mpidrs)
            };
            assert_eq!(
                generate(&cfg),
                Err(DtbError::BadInitrd { start, len }),
                "{start:#x} + {len}"
            );
        }
        let cfg = DtbConfig {
            initrd: Some((end - 1, 1)),
            ..base_cfg(&mpidrs)
        };
        assert!(generate(&cfg).is_ok(), "the last byte of RAM");
    }

    #[test]
    fn bad_pci_intx() {
        let mpidrs = [0];
        let ok = PciIntx {
            device: 0,
            pin: 1,
            spi: 1,
        };
        let cases = [
            (vec![PciIntx { device: 32, ..ok }], 0),
            (vec![ok, PciIntx { pin: 0, ..ok }], 1),
            (vec![PciIntx { pin: 5, ..ok }], 0),
            (
                vec![
                    ok,
                    PciIntx {
                        spi: NR_SPIS,
                        device: 1,
                        ..ok
                    },
                ],
                1,
            ),
            (vec![ok, PciIntx { spi: 2, ..ok }], 1),
            (vec![ok; MAX_PCI_INTX + 1], MAX_PCI_INTX),
        ];
        for (intx, index) in cases {
            let cfg = DtbConfig {
                pci: Some(PciHostBridge { intx: &intx }),
                ..base_cfg(&mpidrs)
            };
            assert_eq!(
                generate(&cfg),
                Err(DtbError::BadPciIntx { index }),
                "{intx:?}"
            );
        }
    }

    #[test]
    fn errors_read_well() {
        let e = DtbError::BootargsTooLong { len: 3000 };
        assert_eq!(
            e.to_string(),
            "the kernel command line is 3000 bytes; Linux takes at most 2047"
        );
        assert!(DtbError::TooLarge { size: 70000 }
            .to_string()
            .contains("70000 bytes"));
        assert!(DtbError::NoCpus.to_string().contains("at least one vCPU"));
    }

    #[test]
    fn console_bootargs_use_the_alias() {
        assert_eq!(
            console_bootargs(33).unwrap(),
            "console=ttyS0 earlycon=uart,mmio,0x101000000"
        );
        assert_eq!(
            console_bootargs(40).unwrap(),
            "console=ttyS0 earlycon=uart,mmio,0x8001000000"
        );
        assert_eq!(console_bootargs(32), None);
        assert_eq!(console_bootargs(65), None);
    }
}
