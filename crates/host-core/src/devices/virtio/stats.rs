//! Counters of what a device did, shared between the device on the bus and whoever built
//! the platform (the host prints them after a run; the benchmark derives bytes per exit and
//! exits per request from them), and [`Metered`], which counts any MMIO device's accesses.

use super::queue::QueueError;
use crate::devices::{ConsoleOut, DeviceCtx, MmioAccess, MmioDevice};
use alloc::rc::Rc;
use core::cell::Cell;

/// What one device did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Guest accesses to its registers (each one an MMIO exit).
    pub accesses: u64,
    /// Queue notifications.
    pub notifies: u64,
    /// Used-buffer notifications (interrupts) it raised.
    pub interrupts: u64,
    /// Requests (block) or buffers (console) it completed.
    pub requests: u64,
    /// Block read requests.
    pub reads: u64,
    /// Block write requests.
    pub writes: u64,
    /// Block flush requests.
    pub flushes: u64,
    /// Requests answered with an error status (I/O error, unsupported, read-only).
    pub refused: u64,
    /// Bytes the device wrote into guest memory (disk reads, console input).
    pub bytes_to_guest: u64,
    /// Bytes the device read from guest memory (disk writes, console output).
    pub bytes_from_guest: u64,
    /// Bytes of console output.
    pub console_bytes: u64,
    /// Rings it could not use (each made it need a reset).
    pub errors: u64,
    /// The last of those.
    pub last_error: Option<QueueError>,
}

/// Counters shared with the device.
pub type StatsHandle = Rc<Cell<DeviceStats>>;

/// Applies `f` to the counters behind `h`.
pub fn update(h: &StatsHandle, f: impl FnOnce(&mut DeviceStats)) {
    let mut s = h.get();
    f(&mut s);
    h.set(s);
}

/// Console output that is counted on its way.
struct Counting<'a> {
    inner: &'a mut dyn ConsoleOut,
    bytes: u64,
}

impl ConsoleOut for Counting<'_> {
    fn write_byte(&mut self, byte: u8) {
        self.bytes += 1;
        self.inner.write_byte(byte);
    }
}

/// An MMIO device whose accesses and console output are counted in a [`StatsHandle`]
/// (for the 16550 in the console benchmark).
pub struct Metered<D> {
    inner: D,
    stats: StatsHandle,
}

impl<D: MmioDevice> Metered<D> {
    /// `inner`, counted in `stats`.
    pub fn new(inner: D, stats: StatsHandle) -> Self {
        Self { inner, stats }
    }

    fn counted<T>(
        &mut self,
        ctx: &mut DeviceCtx<'_>,
        f: impl FnOnce(&mut D, &mut DeviceCtx<'_>) -> T,
    ) -> T {
        let mut out = Counting {
            inner: &mut *ctx.console,
            bytes: 0,
        };
        let mut c = DeviceCtx {
            gic: &mut *ctx.gic,
            console: &mut out,
            unix_time: ctx.unix_time,
            dma: &mut *ctx.dma,
        };
        let r = f(&mut self.inner, &mut c);
        let n = out.bytes;
        update(&self.stats, |s| {
            s.accesses += 1;
            s.console_bytes += n;
        });
        r
    }
}

impl<D: MmioDevice> MmioDevice for Metered<D> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn read(&mut self, access: MmioAccess, ctx: &mut DeviceCtx<'_>) -> u64 {
        self.counted(ctx, |d, c| d.read(access, c))
    }
    fn write(&mut self, access: MmioAccess, value: u64, ctx: &mut DeviceCtx<'_>) {
        self.counted(ctx, |d, c| d.write(access, value, c));
    }
    fn console_input(&mut self, byte: u8, ctx: &mut DeviceCtx<'_>) -> bool {
        self.inner.console_input(byte, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::test_util::Captured;
    use crate::devices::uart16550::Uart16550;
    use crate::devices::NoDma;
    use crate::vgic::Vgic;

    #[test]
    fn metered_counts_accesses_and_console_bytes() {
        let stats = StatsHandle::default();
        let mut dev = Metered::new(Uart16550::new(32), stats.clone());
        let mut gic = Vgic::new(&[0], 32);
        let mut out = Captured::default();
        let mut ctx = DeviceCtx {
            gic: &mut gic,
            console: &mut out,
            unix_time: 0,
            dma: &mut NoDma,
        };
        let a = |offset| MmioAccess {
            vcpu: 0,
            offset,
            size: 1,
        };
        dev.write(a(0), u64::from(b'h'), &mut ctx);
        dev.write(a(0), u64::from(b'i'), &mut ctx);
        assert_eq!(dev.read(a(5), &mut ctx) & 0x60, 0x60, "LSR: THRE | TEMT");
        assert!(dev.console_input(b'x', &mut ctx));
        assert_eq!(dev.name(), "uart16550");
        let s = stats.get();
        assert_eq!((s.accesses, s.console_bytes), (3, 2));
        assert_eq!(out.0, b"hi");
    }
}
