//! Emulated MMIO devices and the bus that routes a guest's accesses to them.
//!
//! Every device is an [`MmioDevice`] in a file of its own, registered on a [`Bus`] at a base
//! address (in the guest's protected IPA space: the VMM strips the unprotected-alias bit
//! before it asks the bus). Devices see offsets from their base. While they handle an access
//! they may raise or lower interrupt lines and touch the virtual GIC's state through the
//! [`DeviceCtx`] the VMM passes in, and write console output.
//!
//! Guest input is untrusted: a device must accept any offset, size (1, 2, 4 or 8 bytes) and
//! value without panicking. Unknown registers read as zero and ignore writes.

pub mod gicd;
pub mod gicr;
pub mod pci;
pub mod pl011;
pub mod rtc;
pub mod uart16550;
pub mod virtio;

use crate::vgic::Vgic;
use alloc::boxed::Box;
use alloc::vec::Vec;

/// One guest access to a device register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioAccess {
    /// The vCPU that made it (an index into the VM's vCPUs).
    pub vcpu: usize,
    /// Offset from the device's base.
    pub offset: u64,
    /// Size in bytes: 1, 2, 4 or 8.
    pub size: u8,
}

/// Where a device's console output goes (the host's own console, labelled).
pub trait ConsoleOut {
    /// One byte the guest transmitted.
    fn write_byte(&mut self, byte: u8);
}

/// Why a device's access to guest memory failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaError {
    /// Some byte of the range is not in a page the guest shares with the host right now
    /// (protected memory, MMIO, beyond RAM, or a page it took back).
    NotShared {
        /// The first address that is not shared.
        ipa: u64,
    },
    /// The range wraps around the address space.
    Overflow,
}

/// Guest memory as a device model may see it: only the pages the realm shares with the host
/// (RIPAS EMPTY and mapped at the unprotected alias). Addresses are IPAs with or without the
/// alias bit (realm firmware writes them without it, newer Linux with it).
pub trait GuestDma {
    /// Reads `buf.len()` bytes at `ipa`.
    fn read(&mut self, ipa: u64, buf: &mut [u8]) -> Result<(), DmaError>;
    /// Writes `data` at `ipa`.
    fn write(&mut self, ipa: u64, data: &[u8]) -> Result<(), DmaError>;
}

/// No guest memory at all (devices that do no DMA, tests).
pub struct NoDma;

impl GuestDma for NoDma {
    fn read(&mut self, ipa: u64, _buf: &mut [u8]) -> Result<(), DmaError> {
        Err(DmaError::NotShared { ipa })
    }
    fn write(&mut self, ipa: u64, _data: &[u8]) -> Result<(), DmaError> {
        Err(DmaError::NotShared { ipa })
    }
}

/// What a device may use while it handles an access.
pub struct DeviceCtx<'a> {
    /// The virtual GIC: interrupt lines (`Vgic::set_spi_level`) and, for the GIC's own
    /// register models, its distributor and redistributor state.
    pub gic: &'a mut Vgic,
    /// Console output.
    pub console: &'a mut dyn ConsoleOut,
    /// Wall-clock time, seconds since 1970-01-01 UTC (for the RTC).
    pub unix_time: u64,
    /// The guest memory the realm shares with the host (for DMA).
    pub dma: &'a mut dyn GuestDma,
}

/// An emulated device behind an MMIO window.
pub trait MmioDevice {
    /// A short name for log lines.
    fn name(&self) -> &'static str;
    /// A read of `access.size` bytes at `access.offset`; the value is zero-extended.
    fn read(&mut self, access: MmioAccess, ctx: &mut DeviceCtx<'_>) -> u64;
    /// A write of the low `access.size` bytes of `value` at `access.offset`.
    fn write(&mut self, access: MmioAccess, value: u64, ctx: &mut DeviceCtx<'_>);
    /// A byte typed on the host's console; returns true if this device took it (a UART).
    fn console_input(&mut self, _byte: u8, _ctx: &mut DeviceCtx<'_>) -> bool {
        false
    }
}

/// Why a device could not be added to the bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusError {
    /// The window is empty or wraps around the address space.
    BadWindow {
        /// Its base.
        base: u64,
        /// Its size.
        size: u64,
    },
    /// It overlaps the window of a device already on the bus.
    Overlap {
        /// The device already there.
        existing: &'static str,
    },
}

struct Window {
    base: u64,
    size: u64,
    dev: Box<dyn MmioDevice>,
}

/// The devices of one VM, by address.
#[derive(Default)]
pub struct Bus {
    windows: Vec<Window>,
}

impl Bus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `dev` at `[base, base + size)`.
    pub fn add(&mut self, base: u64, size: u64, dev: Box<dyn MmioDevice>) -> Result<(), BusError> {
        let end = base
            .checked_add(size)
            .filter(|_| size > 0)
            .ok_or(BusError::BadWindow { base, size })?;
        if let Some(w) = self
            .windows
            .iter()
            .find(|w| base < w.base + w.size && w.base < end)
        {
            return Err(BusError::Overlap {
                existing: w.dev.name(),
            });
        }
        self.windows.push(Window { base, size, dev });
        Ok(())
    }

    fn find(&mut self, addr: u64, size: u8) -> Option<(&mut Window, u64)> {
        // Devices see only the architecture's access sizes (what an ESR's SAS can say).
        if !matches!(size, 1 | 2 | 4 | 8) {
            return None;
        }
        let w = self
            .windows
            .iter_mut()
            .find(|w| addr >= w.base && addr - w.base < w.size)?;
        let offset = addr - w.base;
        // An access that straddles the end of the window is not the device's.
        (offset + u64::from(size) <= w.size).then_some((w, offset))
    }

    /// The name of the device at `addr`, if any.
    pub fn device_at(&self, addr: u64) -> Option<&'static str> {
        self.windows
            .iter()
            .find(|w| addr >= w.base && addr - w.base < w.size)
            .map(|w| w.dev.name())
    }

    /// A read by `vcpu`; `None` when no device decodes the address or `size` is not 1, 2,
    /// 4 or 8 bytes.
    pub fn read(
        &mut self,
        vcpu: usize,
        addr: u64,
        size: u8,
        ctx: &mut DeviceCtx<'_>,
    ) -> Option<u64> {
        let (w, offset) = self.find(addr, size)?;
        let v = w.dev.read(MmioAccess { vcpu, offset, size }, ctx);
        Some(v & size_mask(size))
    }

    /// A write by `vcpu`; false when no device decodes the address or `size` is not 1, 2,
    /// 4 or 8 bytes.
    pub fn write(
        &mut self,
        vcpu: usize,
        addr: u64,
        size: u8,
        value: u64,
        ctx: &mut DeviceCtx<'_>,
    ) -> bool {
        let Some((w, offset)) = self.find(addr, size) else {
            return false;
        };
        w.dev.write(
            MmioAccess { vcpu, offset, size },
            value & size_mask(size),
            ctx,
        );
        true
    }

    /// Offers a byte of console input to the devices in order; true if one took it.
    pub fn console_input(&mut self, byte: u8, ctx: &mut DeviceCtx<'_>) -> bool {
        self.windows
            .iter_mut()
            .any(|w| w.dev.console_input(byte, ctx))
    }
}

/// The mask of an access of `size` bytes (sizes other than 1, 2, 4 are treated as 8).
pub const fn size_mask(size: u8) -> u64 {
    match size {
        1 => 0xff,
        2 => 0xffff,
        4 => 0xffff_ffff,
        _ => u64::MAX,
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    //! A context for device tests.
    use super::*;

    /// Console output collected in memory.
    #[derive(Default)]
    pub struct Captured(pub Vec<u8>);

    impl ConsoleOut for Captured {
        fn write_byte(&mut self, byte: u8) {
            self.0.push(byte);
        }
    }

    /// The pieces of a device's context a test keeps.
    pub struct Ctx<'a> {
        /// The vGIC.
        pub gic: &'a mut Vgic,
        /// Console output.
        pub out: &'a mut Captured,
        /// Wall-clock time.
        pub unix_time: u64,
    }

    impl Ctx<'_> {
        fn run<T>(&mut self, f: impl FnOnce(&mut DeviceCtx<'_>) -> T) -> T {
            let mut ctx = DeviceCtx {
                gic: self.gic,
                console: self.out,
                unix_time: self.unix_time,
                dma: &mut NoDma,
            };
            f(&mut ctx)
        }

        /// A read of `dev`.
        pub fn read(&mut self, dev: &mut dyn MmioDevice, a: MmioAccess) -> u64 {
            self.run(|ctx| dev.read(a, ctx))
        }

        /// A write to `dev`.
        pub fn write(&mut self, dev: &mut dyn MmioDevice, a: MmioAccess, value: u64) {
            self.run(|ctx| dev.write(a, value, ctx))
        }

        /// Console input to `dev`.
        pub fn input(&mut self, dev: &mut dyn MmioDevice, byte: u8) -> bool {
            self.run(|ctx| dev.console_input(byte, ctx))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::Captured;
    use super::*;

    struct Reg(u64);
    impl MmioDevice for Reg {
        fn name(&self) -> &'static str {
            "reg"
        }
        fn read(&mut self, a: MmioAccess, _: &mut DeviceCtx<'_>) -> u64 {
            self.0 + a.offset
        }
        fn write(&mut self, _: MmioAccess, v: u64, _: &mut DeviceCtx<'_>) {
            self.0 = v;
        }
    }

    #[test]
    fn routes_by_window_and_rejects_overlaps() {
        let mut bus = Bus::new();
        bus.add(0x1000, 0x100, Box::new(Reg(0))).unwrap();
        assert_eq!(
            bus.add(0x10ff, 0x10, Box::new(Reg(0))),
            Err(BusError::Overlap { existing: "reg" })
        );
        assert!(matches!(
            bus.add(u64::MAX, 2, Box::new(Reg(0))),
            Err(BusError::BadWindow { .. })
        ));
        bus.add(0x1100, 0x100, Box::new(Reg(0x50))).unwrap();
        let mut gic = Vgic::new(&[0], 32);
        let mut out = Captured::default();
        let mut ctx = DeviceCtx {
            gic: &mut gic,
            console: &mut out,
            unix_time: 0,
            dma: &mut crate::devices::NoDma,
        };
        assert!(bus.write(0, 0x1000, 4, 0x1_0000_0007, &mut ctx));
        assert_eq!(
            bus.read(0, 0x1004, 4, &mut ctx),
            Some(0xb),
            "value masked to 4 bytes"
        );
        assert_eq!(bus.read(0, 0x1104, 1, &mut ctx), Some(0x54));
        assert_eq!(bus.read(0, 0x10fe, 4, &mut ctx), None, "straddles the end");
        assert_eq!(bus.read(0, 0x2000, 4, &mut ctx), None);
        assert!(!bus.write(0, 0x0fff, 1, 0, &mut ctx));
        assert_eq!(bus.device_at(0x11ff), Some("reg"));
        // Only the architecture's access sizes reach a device.
        for size in [0u8, 3, 5, 16, 255] {
            assert_eq!(bus.read(0, 0x1000, size, &mut ctx), None, "size {size}");
            assert!(!bus.write(0, 0x1000, size, 1, &mut ctx), "size {size}");
        }
        assert_eq!(
            bus.read(0, 0x1000, 8, &mut ctx),
            Some(0x1_0000_0007 & 0xffff_ffff)
        );
    }
}
