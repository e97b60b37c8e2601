//! A generic PCI host bridge as kvmtool lays it out: configuration space through ECAM at
//! [`PCI_ECAM_BASE`] (bus 0 only, no host-bridge function), a 32-bit memory window at
//! [`PCI_MMIO_BASE`]..`+`[`PCI_MMIO_SIZE`] where the guest places the functions' BARs, and
//! legacy INTx lines wired to level-triggered SPIs (the device tree's `interrupt-map`).
//!
//! [`PciHost`] is one [`MmioDevice`] over both windows (they are contiguous:
//! `0x4000_0000..0x8000_0000`). Each function ([`PciFunction`]) supplies its identity, its
//! 32-bit memory BARs (power-of-two sizes), the capability bytes from `0x40` up, and its BAR
//! registers; the host implements the type 0 header:
//!
//! * vendor/device/revision/class/subsystem IDs and the interrupt pin are read-only;
//! * `COMMAND` keeps I/O, memory, bus-master and INTx-disable; a BAR decodes only while
//!   `COMMAND.MEM` is set, a function may use DMA only while `COMMAND.BUS_MASTER` is set
//!   (otherwise its [`DeviceCtx::dma`] is [`NoDma`]), and INTx-disable masks its line;
//! * `STATUS` reports the capability list and the INTx state;
//! * BARs are sized the usual way (write all-ones, read back the size mask with the
//!   memory-space type bits) and take any address; the expansion ROM BAR is absent;
//! * cache line size, latency timer and interrupt line are plain storage.
//!
//! Accesses of 1, 2 and 4 bytes must be naturally aligned (8-byte accesses are split in two);
//! a misaligned one reads all-ones and is ignored, as are accesses to buses other than 0,
//! absent devices and functions other than 0. Memory-window addresses no BAR decodes read
//! all-ones (a master abort) and ignore writes.

use super::{DeviceCtx, MmioAccess, MmioDevice, NoDma};
use crate::vmm::platform::{PCI_ECAM_BASE, PCI_ECAM_SIZE, PCI_MMIO_BASE, PCI_MMIO_SIZE};
use alloc::boxed::Box;
use alloc::vec::Vec;

/// Where [`PciHost`] goes on the bus: ECAM and the memory window, which follow each other.
pub const WINDOW: (u64, u64) = (PCI_ECAM_BASE, PCI_MMIO_BASE + PCI_MMIO_SIZE - PCI_ECAM_BASE);

/// Type 0 configuration header offsets.
pub mod reg {
    /// Vendor ID (16 bits).
    pub const VENDOR_ID: u16 = 0x00;
    /// Device ID (16 bits).
    pub const DEVICE_ID: u16 = 0x02;
    /// Command (16 bits).
    pub const COMMAND: u16 = 0x04;
    /// Status (16 bits).
    pub const STATUS: u16 = 0x06;
    /// Revision ID (8 bits), then the class code (24 bits).
    pub const REVISION: u16 = 0x08;
    /// Cache line size (8 bits).
    pub const CACHE_LINE: u16 = 0x0c;
    /// Latency timer (8 bits).
    pub const LATENCY: u16 = 0x0d;
    /// Header type (8 bits).
    pub const HEADER_TYPE: u16 = 0x0e;
    /// BAR 0 (six 32-bit BARs follow each other).
    pub const BAR0: u16 = 0x10;
    /// Subsystem vendor ID (16 bits).
    pub const SUBSYSTEM_VENDOR_ID: u16 = 0x2c;
    /// Subsystem ID (16 bits).
    pub const SUBSYSTEM_ID: u16 = 0x2e;
    /// Expansion ROM BAR.
    pub const ROM: u16 = 0x30;
    /// Capabilities pointer (8 bits).
    pub const CAP_PTR: u16 = 0x34;
    /// Interrupt line (8 bits).
    pub const INTERRUPT_LINE: u16 = 0x3c;
    /// Interrupt pin (8 bits).
    pub const INTERRUPT_PIN: u16 = 0x3d;
    /// Where a function's own bytes (capabilities) start.
    pub const FUNCTION_SPECIFIC: u16 = 0x40;
    /// End of the conventional configuration space (the rest of the 4 KiB reads as zero).
    pub const END: u16 = 0x100;
}

/// `COMMAND.IO`: respond to I/O space.
pub const COMMAND_IO: u16 = 1 << 0;
/// `COMMAND.MEM`: respond to memory space (BAR decoding).
pub const COMMAND_MEM: u16 = 1 << 1;
/// `COMMAND.BUS_MASTER`: the function may do DMA.
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
/// `COMMAND.INTX_DISABLE`: the function's INTx line is masked.
pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;
/// The bits of `COMMAND` the host keeps.
const COMMAND_WRITABLE: u16 = COMMAND_IO | COMMAND_MEM | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE;
/// `STATUS.INTERRUPT`: the function asserts INTx.
pub const STATUS_INTERRUPT: u16 = 1 << 3;
/// `STATUS.CAP_LIST`: the capabilities pointer is valid.
pub const STATUS_CAP_LIST: u16 = 1 << 4;
/// Number of BARs of a type 0 header.
pub const NUM_BARS: usize = 6;
/// Devices on bus 0.
pub const MAX_DEVICES: usize = 32;

/// What identifies a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciIds {
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
    /// Revision ID.
    pub revision: u8,
    /// Class code: class, subclass, programming interface (24 bits).
    pub class: u32,
    /// Subsystem vendor ID.
    pub subsystem_vendor: u16,
    /// Subsystem ID.
    pub subsystem: u16,
    /// Interrupt pin (1 = INTA .. 4 = INTD, 0 = none).
    pub interrupt_pin: u8,
    /// Offset of the first capability (0 = none, else at least 0x40).
    pub capabilities: u8,
}

/// A function on the bus.
pub trait PciFunction {
    /// A short name for log lines.
    fn name(&self) -> &'static str;
    /// Its identity.
    fn ids(&self) -> PciIds;
    /// The size of 32-bit memory BAR `bar` (a power of two, at least 16), or `None`.
    fn bar_size(&self, bar: usize) -> Option<u32>;
    /// Reads `size` bytes of its configuration space at `reg` (0x40 ≤ `reg` < 0x100,
    /// naturally aligned).
    fn config_read(&mut self, reg: u16, size: u8, ctx: &mut DeviceCtx<'_>) -> u32;
    /// Writes `size` bytes of its configuration space at `reg`.
    fn config_write(&mut self, reg: u16, size: u8, value: u32, ctx: &mut DeviceCtx<'_>);
    /// Reads `size` bytes at `offset` of BAR `bar`.
    fn bar_read(&mut self, bar: usize, offset: u64, size: u8, ctx: &mut DeviceCtx<'_>) -> u64;
    /// Writes `size` bytes at `offset` of BAR `bar`.
    fn bar_write(&mut self, bar: usize, offset: u64, size: u8, value: u64, ctx: &mut DeviceCtx<'_>);
    /// Whether it asserts its INTx line.
    fn intx(&self) -> bool;
    /// A byte typed on the host's console; true if the function took it.
    fn console_input(&mut self, _byte: u8, _ctx: &mut DeviceCtx<'_>) -> bool {
        false
    }
}

/// Why a function could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciError {
    /// Bus 0 is full.
    BusFull,
    /// A BAR size is not a power of two of at least 16 bytes.
    BadBar {
        /// The BAR.
        bar: usize,
    },
}

struct Slot {
    func: Box<dyn PciFunction>,
    command: u16,
    bars: [u32; NUM_BARS],
    sizes: [u32; NUM_BARS],
    cache_line: u8,
    latency: u8,
    interrupt_line: u8,
    /// INTID of the SPI its INTx pin is wired to.
    intid: Option<u32>,
}

impl Slot {
    fn decodes(&self, addr: u64, size: u8) -> Option<(usize, u64)> {
        if self.command & COMMAND_MEM == 0 {
            return None;
        }
        (0..NUM_BARS).find_map(|b| {
            let len = u64::from(self.sizes[b]);
            let base = u64::from(self.bars[b]);
            let off = addr.checked_sub(base)?;
            (len != 0 && off < len && off + u64::from(size) <= len).then_some((b, off))
        })
    }

    /// The header's byte at `reg` (below 0x40).
    fn header_byte(&self, reg: u16) -> u8 {
        let ids = self.func.ids();
        let status = if ids.capabilities != 0 {
            STATUS_CAP_LIST
        } else {
            0
        } | if self.func.intx() {
            STATUS_INTERRUPT
        } else {
            0
        };
        let word = |v: u16, r: u16| v.to_le_bytes()[usize::from(reg - r)];
        match reg {
            0x00..=0x01 => word(ids.vendor, reg::VENDOR_ID),
            0x02..=0x03 => word(ids.device, reg::DEVICE_ID),
            0x04..=0x05 => word(self.command, reg::COMMAND),
            0x06..=0x07 => word(status, reg::STATUS),
            0x08 => ids.revision,
            0x09..=0x0b => ids.class.to_le_bytes()[usize::from(reg - 0x09)],
            reg::CACHE_LINE => self.cache_line,
            reg::LATENCY => self.latency,
            0x10..=0x27 => {
                let b = usize::from((reg - reg::BAR0) / 4);
                self.bars[b].to_le_bytes()[usize::from(reg % 4)]
            }
            0x2c..=0x2d => word(ids.subsystem_vendor, reg::SUBSYSTEM_VENDOR_ID),
            0x2e..=0x2f => word(ids.subsystem, reg::SUBSYSTEM_ID),
            reg::CAP_PTR => ids.capabilities,
            reg::INTERRUPT_LINE => self.interrupt_line,
            reg::INTERRUPT_PIN => ids.interrupt_pin,
            // Header type 0 (single function), BIST, CardBus CIS, the ROM BAR, reserved,
            // Min_Gnt and Max_Lat read as zero.
            _ => 0,
        }
    }

    fn write_header_byte(&mut self, reg: u16, v: u8) {
        match reg {
            0x04..=0x05 => {
                let mut b = self.command.to_le_bytes();
                b[usize::from(reg - reg::COMMAND)] = v;
                self.command = u16::from_le_bytes(b) & COMMAND_WRITABLE;
            }
            reg::CACHE_LINE => self.cache_line = v,
            reg::LATENCY => self.latency = v,
            0x10..=0x27 => {
                let i = usize::from((reg - reg::BAR0) / 4);
                let mut b = self.bars[i].to_le_bytes();
                b[usize::from(reg % 4)] = v;
                // A 32-bit, non-prefetchable memory BAR: the type bits read as zero and the
                // bits below the size as zero; an absent BAR is all zeros.
                self.bars[i] = u32::from_le_bytes(b)
                    & !self.sizes[i].wrapping_sub(1)
                    & if self.sizes[i] == 0 { 0 } else { !0xf };
            }
            reg::INTERRUPT_LINE => self.interrupt_line = v,
            _ => {}
        }
    }
}

/// The host bridge and the functions on bus 0.
#[derive(Default)]
pub struct PciHost {
    slots: Vec<Slot>,
}

/// Splits an ECAM offset into (bus, device, function, register).
const fn ecam_split(offset: u64) -> (u64, usize, u64, u16) {
    (
        (offset >> 20) & 0xff,
        ((offset >> 15) & 0x1f) as usize,
        (offset >> 12) & 0x7,
        (offset & 0xfff) as u16,
    )
}

impl PciHost {
    /// A bridge with no functions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `func` as the next device on bus 0, its INTx wired to the SPI with INTID
    /// `intid`; returns its device number.
    pub fn add(&mut self, func: Box<dyn PciFunction>, intid: Option<u32>) -> Result<u8, PciError> {
        if self.slots.len() >= MAX_DEVICES {
            return Err(PciError::BusFull);
        }
        let mut sizes = [0u32; NUM_BARS];
        for (bar, s) in sizes.iter_mut().enumerate() {
            *s = func.bar_size(bar).unwrap_or(0);
            if *s != 0 && (!s.is_power_of_two() || *s < 16) {
                return Err(PciError::BadBar { bar });
            }
        }
        self.slots.push(Slot {
            func,
            command: 0,
            bars: [0; NUM_BARS],
            sizes,
            cache_line: 0,
            latency: 0,
            interrupt_line: 0,
            intid,
        });
        Ok((self.slots.len() - 1) as u8)
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when no device is on the bus.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Runs `f` on slot `dev` with a context whose DMA is allowed only if the function is a
    /// bus master, then drives its INTx line.
    fn with_slot<T>(
        &mut self,
        dev: usize,
        ctx: &mut DeviceCtx<'_>,
        f: impl FnOnce(&mut Slot, &mut DeviceCtx<'_>) -> T,
    ) -> Option<T> {
        let slot = self.slots.get_mut(dev)?;
        let r = if slot.command & COMMAND_BUS_MASTER != 0 {
            f(slot, ctx)
        } else {
            let mut none = NoDma;
            let mut c = DeviceCtx {
                gic: &mut *ctx.gic,
                console: &mut *ctx.console,
                unix_time: ctx.unix_time,
                dma: &mut none,
            };
            f(slot, &mut c)
        };
        if let Some(intid) = slot.intid {
            let level = slot.func.intx() && slot.command & COMMAND_INTX_DISABLE == 0;
            ctx.gic.set_spi_level(intid, level);
        }
        Some(r)
    }

    fn config_read(&mut self, offset: u64, size: u8, ctx: &mut DeviceCtx<'_>) -> u64 {
        let all_ones = super::size_mask(size);
        let (bus, dev, func, reg) = ecam_split(offset);
        if bus != 0 || func != 0 || u64::from(reg).checked_rem(u64::from(size)) != Some(0) {
            return all_ones;
        }
        if size == 8 {
            let lo = self.config_read(offset, 4, ctx);
            let hi = self.config_read(offset + 4, 4, ctx);
            return lo | hi << 32;
        }
        self.with_slot(dev, ctx, |slot, ctx| {
            if reg < reg::FUNCTION_SPECIFIC {
                (0..u16::from(size)).fold(0u64, |v, i| {
                    v | u64::from(slot.header_byte(reg + i)) << (8 * i)
                })
            } else if reg < reg::END {
                u64::from(slot.func.config_read(reg, size, ctx))
            } else {
                0
            }
        })
        .unwrap_or(all_ones)
    }

    fn config_write(&mut self, offset: u64, size: u8, value: u64, ctx: &mut DeviceCtx<'_>) {
        let (bus, dev, func, reg) = ecam_split(offset);
        if bus != 0 || func != 0 || u64::from(reg).checked_rem(u64::from(size)) != Some(0) {
            return;
        }
        if size == 8 {
            self.config_write(offset, 4, value & 0xffff_ffff, ctx);
            self.config_write(offset + 4, 4, value >> 32, ctx);
            return;
        }
        self.with_slot(dev, ctx, |slot, ctx| {
            if reg < reg::FUNCTION_SPECIFIC {
                for i in 0..u16::from(size) {
                    slot.write_header_byte(reg + i, (value >> (8 * i)) as u8);
                }
            } else if reg < reg::END {
                slot.func.config_write(reg, size, value as u32, ctx);
            }
        });
    }

    fn route(&self, addr: u64, size: u8) -> Option<(usize, usize, u64)> {
        self.slots
            .iter()
            .enumerate()
            .find_map(|(i, s)| s.decodes(addr, size).map(|(b, off)| (i, b, off)))
    }
}

impl MmioDevice for PciHost {
    fn name(&self) -> &'static str {
        "pci"
    }

    fn read(&mut self, a: MmioAccess, ctx: &mut DeviceCtx<'_>) -> u64 {
        if a.offset < PCI_ECAM_SIZE {
            return self.config_read(a.offset, a.size, ctx);
        }
        let addr = WINDOW.0 + a.offset;
        match self.route(addr, a.size) {
            Some((dev, bar, off)) => self
                .with_slot(dev, ctx, |s, ctx| s.func.bar_read(bar, off, a.size, ctx))
                .unwrap_or(u64::MAX),
            None => u64::MAX,
        }
    }

    fn write(&mut self, a: MmioAccess, value: u64, ctx: &mut DeviceCtx<'_>) {
        if a.offset < PCI_ECAM_SIZE {
            return self.config_write(a.offset, a.size, value, ctx);
        }
        let addr = WINDOW.0 + a.offset;
        if let Some((dev, bar, off)) = self.route(addr, a.size) {
            self.with_slot(dev, ctx, |s, ctx| {
                s.func.bar_write(bar, off, a.size, value, ctx)
            });
        }
    }

    fn console_input(&mut self, byte: u8, ctx: &mut DeviceCtx<'_>) -> bool {
        (0..self.slots.len()).any(|dev| {
            self.with_slot(dev, ctx, |s, ctx| s.func.console_input(byte, ctx)) == Some(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::test_util::Captured;
    use crate::devices::{Bus, DmaError, GuestDma};
    use crate::vgic::Vgic;
    use alloc::rc::Rc;
    use core::cell::Cell;

    /// The last write a [`Fake`] saw: (BAR, or 99 for configuration space; offset; size;
    /// value).
    type LastWrite = Rc<Cell<Option<(usize, u64, u8, u64)>>>;

    /// A function with a 4 KiB BAR 0 and a 256-byte BAR 2 that remembers the last write,
    /// one read-only capability byte at 0x40, and an INTx line the test controls.
    struct Fake {
        intx: bool,
        /// The last write: (BAR, or 99 for configuration space; offset; size; value).
        last: LastWrite,
        /// Whether the last BAR read could use DMA.
        dma_ok: Rc<Cell<Option<bool>>>,
    }

    fn fake() -> Fake {
        Fake {
            intx: false,
            last: Rc::default(),
            dma_ok: Rc::default(),
        }
    }

    impl PciFunction for Fake {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn ids(&self) -> PciIds {
            PciIds {
                vendor: 0x1af4,
                device: 0x1042,
                revision: 1,
                class: 0x01_80_00,
                subsystem_vendor: 0x1af4,
                subsystem: 0x42,
                interrupt_pin: 1,
                capabilities: 0x40,
            }
        }
        fn bar_size(&self, bar: usize) -> Option<u32> {
            match bar {
                0 => Some(0x1000),
                2 => Some(0x100),
                _ => None,
            }
        }
        fn config_read(&mut self, reg: u16, size: u8, _: &mut DeviceCtx<'_>) -> u32 {
            if reg == 0x40 {
                0x09 | u32::from(size) << 8
            } else {
                0
            }
        }
        fn config_write(&mut self, reg: u16, size: u8, value: u32, _: &mut DeviceCtx<'_>) {
            self.last
                .set(Some((99, u64::from(reg), size, u64::from(value))));
        }
        fn bar_read(&mut self, bar: usize, off: u64, size: u8, ctx: &mut DeviceCtx<'_>) -> u64 {
            self.dma_ok
                .set(Some(ctx.dma.read(0x8000_0000, &mut [0u8; 4]).is_ok()));
            (bar as u64) << 28 | off << 8 | u64::from(size)
        }
        fn bar_write(&mut self, bar: usize, off: u64, size: u8, v: u64, _: &mut DeviceCtx<'_>) {
            self.last.set(Some((bar, off, size, v)));
            self.intx = v == 1;
        }
        fn intx(&self) -> bool {
            self.intx
        }
    }

    struct AnyDma;
    impl GuestDma for AnyDma {
        fn read(&mut self, _: u64, _: &mut [u8]) -> Result<(), DmaError> {
            Ok(())
        }
        fn write(&mut self, _: u64, _: &[u8]) -> Result<(), DmaError> {
            Ok(())
        }
    }

    const INTID: u32 = 33;

    struct Env {
        last: LastWrite,
        bus: Bus,
        gic: Vgic,
        out: Captured,
    }

    fn cfg(dev: u64, reg: u64) -> u64 {
        PCI_ECAM_BASE + (dev << 15) + reg
    }

    impl Env {
        fn new() -> Self {
            let mut host = PciHost::new();
            assert!(host.is_empty());
            let f = fake();
            let last = f.last.clone();
            assert_eq!(host.add(Box::new(f), Some(INTID)), Ok(0));
            assert_eq!(host.add(Box::new(fake()), None), Ok(1));
            assert_eq!(host.len(), 2);
            let mut bus = Bus::new();
            bus.add(WINDOW.0, WINDOW.1, Box::new(host)).unwrap();
            Self {
                last,
                bus,
                gic: Vgic::new(&[0], 32),
                out: Captured::default(),
            }
        }
        fn rd(&mut self, addr: u64, size: u8) -> u64 {
            let mut ctx = DeviceCtx {
                gic: &mut self.gic,
                console: &mut self.out,
                unix_time: 0,
                dma: &mut AnyDma,
            };
            self.bus.read(0, addr, size, &mut ctx).expect("decoded")
        }
        fn wr(&mut self, addr: u64, size: u8, v: u64) {
            let mut ctx = DeviceCtx {
                gic: &mut self.gic,
                console: &mut self.out,
                unix_time: 0,
                dma: &mut AnyDma,
            };
            assert!(self.bus.write(0, addr, size, v, &mut ctx));
        }
    }

    #[test]
    fn window_is_ecam_then_mmio() {
        assert_eq!(WINDOW, (0x4000_0000, 0x4000_0000));
        assert_eq!(PCI_ECAM_BASE + PCI_ECAM_SIZE, PCI_MMIO_BASE);
    }

    #[test]
    fn header_identity_and_read_only_fields() {
        let mut e = Env::new();
        assert_eq!(e.rd(cfg(0, 0), 4), 0x1042_1af4);
        assert_eq!(e.rd(cfg(0, 2), 2), 0x1042);
        assert_eq!(
            e.rd(cfg(0, 8), 4),
            0x0180_0001,
            "class 0x018000, revision 1"
        );
        assert_eq!(e.rd(cfg(0, 0x2c), 4), 0x0042_1af4);
        assert_eq!(e.rd(cfg(0, 0x0e), 1), 0, "header type 0, single function");
        assert_eq!(e.rd(cfg(0, 0x34), 1), 0x40);
        assert_eq!(e.rd(cfg(0, 0x3d), 1), 1, "INTA");
        assert_eq!(e.rd(cfg(0, 6), 2), u64::from(STATUS_CAP_LIST));
        // Read-only fields ignore writes.
        e.wr(cfg(0, 0), 4, 0);
        e.wr(cfg(0, 8), 4, 0);
        e.wr(cfg(0, 0x34), 1, 0x80);
        e.wr(cfg(0, 0x3d), 1, 4);
        assert_eq!(e.rd(cfg(0, 0), 4), 0x1042_1af4);
        assert_eq!(e.rd(cfg(0, 8), 4), 0x0180_0001);
        assert_eq!(e.rd(cfg(0, 0x34), 1), 0x40);
        assert_eq!(e.rd(cfg(0, 0x3d), 1), 1);
        // Storage registers.
        e.wr(cfg(0, 0x0c), 1, 0x10);
        e.wr(cfg(0, 0x0d), 1, 0x20);
        e.wr(cfg(0, 0x3c), 1, 0x2a);
        assert_eq!(e.rd(cfg(0, 0x0c), 2), 0x2010);
        assert_eq!(e.rd(cfg(0, 0x3c), 1), 0x2a);
        // Function-specific space goes to the function; extended space is zero.
        assert_eq!(e.rd(cfg(0, 0x40), 2), 0x0209);
        e.wr(cfg(0, 0x44), 2, 0xbeef);
        assert_eq!(e.last.get(), Some((99, 0x44, 2, 0xbeef)));
        e.wr(cfg(0, 0x100), 4, 1);
        assert_eq!(
            e.last.get(),
            Some((99, 0x44, 2, 0xbeef)),
            "extended space ignored"
        );
        assert_eq!(e.rd(cfg(0, 0x100), 4), 0);
        assert_eq!(e.rd(cfg(0, 0xffc), 4), 0);
        // The expansion ROM BAR is absent.
        e.wr(cfg(0, 0x30), 4, 0xffff_ffff);
        assert_eq!(e.rd(cfg(0, 0x30), 4), 0);
        // The command register keeps only what it implements.
        e.wr(cfg(0, 4), 2, 0xffff);
        assert_eq!(
            e.rd(cfg(0, 4), 2),
            u64::from(COMMAND_WRITABLE),
            "IO, MEM, BUS_MASTER, INTX_DISABLE"
        );
        e.wr(cfg(0, 5), 1, 0);
        assert_eq!(e.rd(cfg(0, 4), 2), 0x7);
    }

    #[test]
    fn absent_functions_buses_and_misaligned_accesses_read_all_ones() {
        let mut e = Env::new();
        assert_eq!(e.rd(cfg(2, 0), 4), 0xffff_ffff, "no device 2");
        assert_eq!(e.rd(cfg(31, 0), 2), 0xffff);
        assert_eq!(e.rd(cfg(0, 0) + (1 << 12), 4), 0xffff_ffff, "function 1");
        assert_eq!(e.rd(cfg(0, 0) + (1 << 20), 4), 0xffff_ffff, "bus 1");
        assert_eq!(e.rd(cfg(0, 2), 4), 0xffff_ffff, "misaligned");
        assert_eq!(e.rd(cfg(0, 1), 2), 0xffff);
        e.wr(cfg(0, 6), 4, 0xffff_ffff);
        assert_eq!(e.rd(cfg(0, 4), 2), 0, "a misaligned write is ignored");
        e.wr(cfg(2, 4), 4, 0xffff_ffff);
        assert_eq!(
            e.rd(cfg(0, 0), 8),
            0x0010_0000_1042_1af4,
            "8 bytes: IDs, then command and status"
        );
        e.wr(cfg(0, 0x10), 8, 0xffff_ffff_ffff_ffff);
        assert_eq!(
            e.rd(cfg(0, 0x10), 8),
            0xffff_f000,
            "BAR 0 sized, BAR 1 absent"
        );
    }

    #[test]
    fn bar_sizing_programming_and_decoding() {
        let mut e = Env::new();
        for (bar, mask) in [(0u64, 0xffff_f000u64), (1, 0), (2, 0xffff_ff00), (5, 0)] {
            let r = cfg(0, 0x10 + 4 * bar);
            e.wr(r, 4, 0xffff_ffff);
            assert_eq!(e.rd(r, 4), mask, "BAR {bar}: 32-bit memory, size mask");
        }
        // Program BAR 0 at 0x5000_0000 and BAR 2 at 0x5000_1080 (rounded down to 256).
        e.wr(cfg(0, 0x10), 4, 0x5000_0000);
        e.wr(cfg(0, 0x18), 2, 0x1080);
        e.wr(cfg(0, 0x1a), 2, 0x5000);
        assert_eq!(e.rd(cfg(0, 0x18), 4), 0x5000_1000);
        // Not decoded until COMMAND.MEM.
        assert_eq!(e.rd(0x5000_0010, 4), 0xffff_ffff);
        e.wr(0x5000_0010, 4, 1);
        assert_eq!(e.last.get(), None, "not decoded");
        e.wr(cfg(0, 4), 2, u64::from(COMMAND_MEM));
        assert_eq!(e.rd(0x5000_0010, 4), 0x1004, "BAR 0, offset 0x10, 4 bytes");
        e.wr(0x5000_1004, 2, 7);
        assert_eq!(e.last.get(), Some((2, 4, 2, 7)));
        assert_eq!(e.rd(0x5000_10fc, 4), 0x2000_fc04, "BAR 2's last word");
        assert_eq!(e.rd(0x5000_10ff, 1), 0x01, "its last byte");
        assert_eq!(e.rd(0x5000_10ff, 2), 0xffff, "straddles BAR 2's end");
        assert_eq!(e.rd(0x5000_2000, 4), 0xffff_ffff, "nothing there");
        assert_eq!(e.rd(0x7fff_fffc, 4), 0xffff_ffff);
        // Moving a BAR moves the decode.
        e.wr(cfg(0, 0x10), 4, 0x6000_0000);
        assert_eq!(e.rd(0x5000_0010, 4), 0xffff_ffff);
        assert_eq!(e.rd(0x6000_0ffc, 4), 0xffc04);
        // Device 1's BARs are separate.
        e.wr(cfg(1, 0x10), 4, 0x5000_0000);
        assert_eq!(e.rd(0x5000_0000, 4), 0xffff_ffff, "device 1 MEM off");
        e.wr(cfg(1, 4), 2, u64::from(COMMAND_MEM));
        assert_eq!(e.rd(0x5000_0000, 4), 4);
        // Turning MEM off stops decoding.
        e.wr(cfg(0, 4), 2, 0);
        assert_eq!(e.rd(0x6000_0000, 4), 0xffff_ffff);
    }

    #[test]
    fn dma_needs_bus_master_and_intx_follows_the_function() {
        let mut host = PciHost::new();
        let f = fake();
        let dma_ok = f.dma_ok.clone();
        host.add(Box::new(f), Some(INTID)).unwrap();
        let mut gic = Vgic::new(&[0], 32);
        let mut out = Captured::default();
        let mut ctx = DeviceCtx {
            gic: &mut gic,
            console: &mut out,
            unix_time: 0,
            dma: &mut AnyDma,
        };
        let a = |offset: u64, size| MmioAccess {
            vcpu: 0,
            offset,
            size,
        };
        let mmio = PCI_MMIO_BASE - WINDOW.0;
        host.write(a(0x10, 4), 0x5000_0000, &mut ctx);
        host.write(a(4, 2), u64::from(COMMAND_MEM), &mut ctx);
        host.read(a(mmio, 4), &mut ctx);
        assert_eq!(dma_ok.get(), Some(false), "not a bus master: no DMA");
        host.write(
            a(4, 2),
            u64::from(COMMAND_MEM | COMMAND_BUS_MASTER),
            &mut ctx,
        );
        host.read(a(mmio, 4), &mut ctx);
        assert_eq!(dma_ok.get(), Some(true), "bus master");
        host.write(a(mmio, 4), 1, &mut ctx);
        assert!(ctx.gic.spi_level(INTID), "INTx asserted");
        assert_eq!(
            host.read(a(6, 2), &mut ctx) & u64::from(STATUS_INTERRUPT),
            8
        );
        host.write(
            a(4, 2),
            u64::from(COMMAND_MEM | COMMAND_INTX_DISABLE),
            &mut ctx,
        );
        assert!(!ctx.gic.spi_level(INTID), "masked by INTX_DISABLE");
        host.write(a(4, 2), u64::from(COMMAND_MEM), &mut ctx);
        assert!(ctx.gic.spi_level(INTID));
        host.write(a(mmio, 4), 0, &mut ctx);
        assert!(!ctx.gic.spi_level(INTID));
        assert!(!host.console_input(b'x', &mut ctx));
    }

    #[test]
    fn bad_functions_are_refused() {
        struct BadBar(u32);
        impl PciFunction for BadBar {
            fn name(&self) -> &'static str {
                "bad"
            }
            fn ids(&self) -> PciIds {
                PciIds {
                    vendor: 0,
                    device: 0,
                    revision: 0,
                    class: 0,
                    subsystem_vendor: 0,
                    subsystem: 0,
                    interrupt_pin: 0,
                    capabilities: 0,
                }
            }
            fn bar_size(&self, bar: usize) -> Option<u32> {
                (bar == 3).then_some(self.0)
            }
            fn config_read(&mut self, _: u16, _: u8, _: &mut DeviceCtx<'_>) -> u32 {
                0
            }
            fn config_write(&mut self, _: u16, _: u8, _: u32, _: &mut DeviceCtx<'_>) {}
            fn bar_read(&mut self, _: usize, _: u64, _: u8, _: &mut DeviceCtx<'_>) -> u64 {
                0
            }
            fn bar_write(&mut self, _: usize, _: u64, _: u8, _: u64, _: &mut DeviceCtx<'_>) {}
            fn intx(&self) -> bool {
                false
            }
        }
        let mut h = PciHost::new();
        assert_eq!(
            h.add(Box::new(BadBar(0x1800)), None),
            Err(PciError::BadBar { bar: 3 })
        );
        assert_eq!(
            h.add(Box::new(BadBar(8)), None),
            Err(PciError::BadBar { bar: 3 })
        );
        for _ in 0..MAX_DEVICES {
            h.add(Box::new(BadBar(16)), None).unwrap();
        }
        assert_eq!(h.add(Box::new(BadBar(16)), None), Err(PciError::BusFull));
    }

    mod random {
        use super::*;
        use proptest::prelude::*;

        #[derive(Clone, Debug)]
        enum Op {
            /// A configuration access: device, register (any offset in the 4 KiB space),
            /// size, value, write.
            Config(u8, u16, u8, u64, bool),
            /// An access anywhere in the first MiB of the memory window.
            Window(u32, u8, u64, bool),
        }

        fn size() -> impl Strategy<Value = u8> {
            prop::sample::select(alloc::vec![1u8, 2, 4, 4, 8, 3, 0])
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                3 => (0u8..4, 0u16..0x1000, size(), any::<u64>(), any::<bool>())
                    .prop_map(|(d, r, s, v, w)| Op::Config(d, r, s, v, w)),
                // Registers a driver programs, with values it might plausibly write.
                2 => (0u8..2, prop::sample::select(alloc::vec![4u16, 0x10, 0x14, 0x18, 0x3c]),
                      prop::sample::select(alloc::vec![0u64, 0xffff_ffff, 0x5000_0000,
                          0x5000_1000, 0x5000_0100, 7, 6]), any::<bool>())
                    .prop_map(|(d, r, v, w)| Op::Config(d, r, 4, v, w)),
                2 => (0u32..0x10_0000, size(), any::<u64>(), any::<bool>())
                    .prop_map(|(o, s, v, w)| Op::Window(o, s, v, w)),
            ]
        }

        fn access(e: &mut Env, addr: u64, size: u8, value: u64, write: bool) {
            let mut ctx = DeviceCtx {
                gic: &mut e.gic,
                console: &mut e.out,
                unix_time: 0,
                dma: &mut AnyDma,
            };
            if write {
                let _ = e.bus.write(0, addr, size, value, &mut ctx);
            } else {
                let _ = e.bus.read(0, addr, size, &mut ctx);
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Random configuration and memory-window streams never panic and keep what is
            /// fixed fixed: identity, header type, capability pointer, interrupt pin, absent
            /// devices all ones, and each BAR reading back aligned to its size with its
            /// type bits clear.
            #[test]
            fn random_streams_keep_the_header_invariants(
                ops in proptest::collection::vec(op(), 0..300),
            ) {
                let mut e = Env::new();
                for op in ops {
                    match op {
                        Op::Config(d, r, s, v, w) => {
                            access(&mut e, cfg(u64::from(d), u64::from(r)), s, v, w)
                        }
                        Op::Window(o, s, v, w) => {
                            access(&mut e, PCI_MMIO_BASE + u64::from(o), s, v, w)
                        }
                    }
                    for dev in 0..2 {
                        prop_assert_eq!(e.rd(cfg(dev, 0), 4), 0x1042_1af4);
                        prop_assert_eq!(e.rd(cfg(dev, 0x0e), 1), 0);
                        prop_assert_eq!(e.rd(cfg(dev, 0x34), 1), 0x40);
                        prop_assert_eq!(e.rd(cfg(dev, 0x3d), 1), 1);
                        let bar0 = e.rd(cfg(dev, 0x10), 4);
                        prop_assert_eq!(bar0 & 0xfff, 0, "BAR 0 {:#x}", bar0);
                        let bar2 = e.rd(cfg(dev, 0x18), 4);
                        prop_assert_eq!(bar2 & 0xff, 0, "BAR 2 {:#x}", bar2);
                        prop_assert_eq!(e.rd(cfg(dev, 0x14), 4), 0, "no BAR 1");
                    }
                    prop_assert_eq!(e.rd(cfg(2, 0), 4), 0xffff_ffff);
                }
            }
        }
    }
}
