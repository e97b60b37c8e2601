//! The modern (virtio 1.x, non-transitional) PCI transport, as edk2's `Virtio10Dxe` and
//! Linux's `virtio_pci_modern` expect it and kvmtool presents it to realms:
//!
//! * vendor `0x1AF4`, device `0x1040 + type`, revision 1, subsystem `0x40 + type`, INTA;
//! * one 16 KiB 32-bit memory BAR (BAR 0) holding the common configuration (`0x0000`, 64
//!   bytes), the ISR status (`0x1000`), the device configuration (`0x2000`) and the
//!   notification area (`0x3000`, 4 bytes per queue);
//! * vendor capabilities for those four, and the `PCI_CFG` access window, from `0x40`;
//! * no MSI-X: interrupts are INTx, asserted while the ISR status is non-zero (bit 0 used
//!   buffers, bit 1 configuration change) and cleared by reading it;
//! * features: the device's, plus `VERSION_1`, `ACCESS_PLATFORM` and `INDIRECT_DESC`;
//!   `FEATURES_OK` sticks only if the driver's features are a subset that includes
//!   `VERSION_1`.
//!
//! The device runs only between `FEATURES_OK | DRIVER_OK` and the next reset, and stops at
//! the first ring it cannot use: `DEVICE_NEEDS_RESET` is then set in the status and a
//! configuration-change interrupt raised.

use super::queue::{QueueError, Virtqueue, AVAIL_F_NO_INTERRUPT};
use super::stats::{update, StatsHandle};
use super::{status, DeviceStats, VirtioDevice, F_ACCESS_PLATFORM, F_INDIRECT_DESC, F_VERSION_1};
use crate::devices::pci::{PciFunction, PciIds};
use crate::devices::{size_mask, DeviceCtx};
use alloc::vec::Vec;

/// The virtio PCI vendor ID.
pub const VENDOR: u16 = 0x1af4;
/// The BAR holding every structure.
pub const BAR: usize = 0;
/// Its size.
pub const BAR_SIZE: u32 = 0x4000;
/// Common configuration, offset in the BAR.
pub const COMMON: u64 = 0x0000;
/// Its length (`struct virtio_pci_modern_common_cfg`).
pub const COMMON_LEN: u64 = 0x40;
/// ISR status.
pub const ISR: u64 = 0x1000;
/// Device configuration.
pub const DEVICE: u64 = 0x2000;
/// Notification area.
pub const NOTIFY: u64 = 0x3000;
/// Bytes between two queues' notification addresses.
pub const NOTIFY_MULTIPLIER: u32 = 4;
/// `queue_msix_vector` / `config_msix_vector` without MSI-X.
pub const NO_VECTOR: u16 = 0xffff;

/// Capability types (`cfg_type`).
pub mod cap {
    /// Common configuration.
    pub const COMMON_CFG: u8 = 1;
    /// Notifications.
    pub const NOTIFY_CFG: u8 = 2;
    /// ISR status.
    pub const ISR_CFG: u8 = 3;
    /// Device-specific configuration.
    pub const DEVICE_CFG: u8 = 4;
    /// Configuration-space window onto the BARs.
    pub const PCI_CFG: u8 = 5;
    /// The vendor-specific capability ID.
    pub const VENDOR: u8 = 0x09;
}

/// Where each capability sits in configuration space.
const CAP_COMMON: u16 = 0x40;
const CAP_NOTIFY: u16 = 0x50;
const CAP_ISR: u16 = 0x64;
const CAP_DEVICE: u16 = 0x74;
const CAP_PCI: u16 = 0x84;
const CAPS_END: u16 = 0x98;

/// Common configuration field offsets.
mod common {
    pub const DFSELECT: u64 = 0x00;
    pub const DF: u64 = 0x04;
    pub const GFSELECT: u64 = 0x08;
    pub const GF: u64 = 0x0c;
    pub const MSIX: u64 = 0x10;
    pub const NUM_QUEUES: u64 = 0x12;
    pub const STATUS: u64 = 0x14;
    pub const GENERATION: u64 = 0x15;
    pub const Q_SELECT: u64 = 0x16;
    pub const Q_SIZE: u64 = 0x18;
    pub const Q_MSIX: u64 = 0x1a;
    pub const Q_ENABLE: u64 = 0x1c;
    pub const Q_NOTIFY_OFF: u64 = 0x1e;
    pub const Q_DESC: u64 = 0x20;
    pub const Q_DRIVER: u64 = 0x28;
    pub const Q_DEVICE: u64 = 0x30;
    pub const Q_NOTIFY_DATA: u64 = 0x38;
}

/// A virtio device behind the modern PCI transport.
pub struct VirtioPci<D: VirtioDevice> {
    dev: D,
    queues: Vec<Virtqueue>,
    status: u8,
    needs_reset: bool,
    dfselect: u32,
    gfselect: u32,
    driver_features: u64,
    queue_select: u16,
    isr: u8,
    /// The `PCI_CFG` window: BAR, offset, length.
    window: (u8, u32, u32),
    stats: StatsHandle,
}

impl<D: VirtioDevice> VirtioPci<D> {
    /// `dev` on the transport, its counters in `stats`.
    pub fn new(dev: D, stats: StatsHandle) -> Self {
        let queues = (0..dev.num_queues())
            .map(|_| Virtqueue::new(dev.max_queue_size()))
            .collect();
        Self {
            dev,
            queues,
            status: 0,
            needs_reset: false,
            dfselect: 0,
            gfselect: 0,
            driver_features: 0,
            queue_select: 0,
            isr: 0,
            window: (0, 0, 0),
            stats,
        }
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// Every feature offered.
    pub fn offered(&self) -> u64 {
        self.dev.device_features() | F_VERSION_1 | F_ACCESS_PLATFORM | F_INDIRECT_DESC
    }

    /// The device status as the driver reads it.
    pub fn status(&self) -> u8 {
        self.status
            | if self.needs_reset {
                status::DEVICE_NEEDS_RESET
            } else {
                0
            }
    }

    /// The features the driver accepted (meaningful once `FEATURES_OK` is set).
    pub fn driver_features(&self) -> u64 {
        self.driver_features
    }

    fn live(&self) -> bool {
        let both = status::FEATURES_OK | status::DRIVER_OK;
        self.status & both == both && !self.needs_reset
    }

    fn reset(&mut self) {
        self.status = 0;
        self.needs_reset = false;
        self.dfselect = 0;
        self.gfselect = 0;
        self.driver_features = 0;
        self.queue_select = 0;
        self.isr = 0;
        self.window = (0, 0, 0);
        for q in &mut self.queues {
            q.reset();
        }
        self.dev.reset();
    }

    /// Ends a device call: an error makes the device need a reset; queues that got used
    /// buffers raise an interrupt unless the driver suppressed it.
    fn finish(&mut self, r: Result<(), QueueError>, ctx: &mut DeviceCtx<'_>, st: &mut DeviceStats) {
        let mut err = r.err();
        for q in &mut self.queues {
            if !core::mem::take(&mut q.used_added) {
                continue;
            }
            match q.avail_flags(ctx.dma) {
                Ok(f) if f & AVAIL_F_NO_INTERRUPT != 0 => {}
                Ok(_) => {
                    self.isr |= 1;
                    st.interrupts += 1;
                }
                Err(e) => err = err.or(Some(e)),
            }
        }
        if let Some(e) = err {
            if !self.needs_reset {
                // The guest's driver will not say why its device stopped: the host does, on
                // the console the guest's output goes to.
                let msg = alloc::format!(
                    "\n[host: {}: {e}; the device needs a reset]\n",
                    self.dev.name()
                );
                for b in msg.bytes() {
                    ctx.console.write_byte(b);
                }
            }
            self.needs_reset = true;
            st.errors += 1;
            st.last_error = Some(e);
            if self.status & status::DRIVER_OK != 0 {
                self.isr |= 2;
                st.interrupts += 1;
            }
        }
    }

    fn process(&mut self, q: usize, ctx: &mut DeviceCtx<'_>) {
        if !self.live() {
            return;
        }
        let mut st = self.stats.get();
        let r = self.dev.process(q, &mut self.queues, ctx, &mut st);
        self.finish(r, ctx, &mut st);
        self.stats.set(st);
    }

    fn set_status(&mut self, v: u8, ctx: &mut DeviceCtx<'_>) {
        if v == 0 {
            self.reset();
            return;
        }
        let old = self.status;
        let mut new = v & !status::DEVICE_NEEDS_RESET;
        if new & status::FEATURES_OK != 0 && old & status::FEATURES_OK == 0 {
            let f = self.driver_features;
            if f & !self.offered() != 0 || f & F_VERSION_1 == 0 {
                new &= !status::FEATURES_OK;
            } else {
                for q in &mut self.queues {
                    q.indirect = f & F_INDIRECT_DESC != 0;
                }
            }
        }
        self.status = new;
        if new & status::DRIVER_OK != 0 && old & status::DRIVER_OK == 0 {
            for q in 0..self.queues.len() {
                self.process(q, ctx);
            }
        }
    }

    fn common_image(&self) -> [u8; COMMON_LEN as usize] {
        let mut c = [0u8; COMMON_LEN as usize];
        let mut put = |at: u64, bytes: &[u8]| {
            c[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
        };
        put(common::DFSELECT, &self.dfselect.to_le_bytes());
        let df = match self.dfselect {
            0 => self.offered() as u32,
            1 => (self.offered() >> 32) as u32,
            _ => 0,
        };
        put(common::DF, &df.to_le_bytes());
        put(common::GFSELECT, &self.gfselect.to_le_bytes());
        let gf = match self.gfselect {
            0 => self.driver_features as u32,
            1 => (self.driver_features >> 32) as u32,
            _ => 0,
        };
        put(common::GF, &gf.to_le_bytes());
        put(common::MSIX, &NO_VECTOR.to_le_bytes());
        put(
            common::NUM_QUEUES,
            &(self.queues.len() as u16).to_le_bytes(),
        );
        put(common::STATUS, &[self.status()]);
        put(common::GENERATION, &[0]);
        put(common::Q_SELECT, &self.queue_select.to_le_bytes());
        if let Some(q) = self.queues.get(usize::from(self.queue_select)) {
            put(common::Q_SIZE, &q.size.to_le_bytes());
            put(common::Q_MSIX, &NO_VECTOR.to_le_bytes());
            put(common::Q_ENABLE, &u16::from(q.ready).to_le_bytes());
            put(common::Q_NOTIFY_OFF, &self.queue_select.to_le_bytes());
            put(common::Q_DESC, &q.desc_addr.to_le_bytes());
            put(common::Q_DRIVER, &q.avail_addr.to_le_bytes());
            put(common::Q_DEVICE, &q.used_addr.to_le_bytes());
            put(common::Q_NOTIFY_DATA, &self.queue_select.to_le_bytes());
        }
        c
    }

    fn common_write(&mut self, off: u64, size: u8, value: u64, ctx: &mut DeviceCtx<'_>) {
        let Some(end) = off
            .checked_add(u64::from(size))
            .filter(|&e| e <= COMMON_LEN)
        else {
            return;
        };
        let old = self.common_image();
        let mut new = old;
        for i in 0..u64::from(size) {
            new[(off + i) as usize] = (value >> (8 * i)) as u8;
        }
        let touched = |at: u64, len: u64| off < at + len && at < end;
        let field = |at: u64, len: usize| {
            let mut b = [0u8; 8];
            b[..len].copy_from_slice(&new[at as usize..at as usize + len]);
            u64::from_le_bytes(b)
        };
        if touched(common::DFSELECT, 4) {
            self.dfselect = field(common::DFSELECT, 4) as u32;
        }
        if touched(common::GFSELECT, 4) {
            self.gfselect = field(common::GFSELECT, 4) as u32;
        }
        if touched(common::GF, 4) && self.status & status::FEATURES_OK == 0 {
            let v = field(common::GF, 4);
            match self.gfselect {
                0 => self.driver_features = (self.driver_features & !0xffff_ffff) | v,
                1 => self.driver_features = (self.driver_features & 0xffff_ffff) | v << 32,
                _ => {}
            }
        }
        if touched(common::Q_SELECT, 2) {
            self.queue_select = field(common::Q_SELECT, 2) as u16;
        }
        let qs = usize::from(self.queue_select);
        if let Some(q) = self.queues.get_mut(qs).filter(|q| !q.ready) {
            if touched(common::Q_SIZE, 2) {
                q.size = field(common::Q_SIZE, 2) as u16;
            }
            if touched(common::Q_DESC, 8) {
                q.desc_addr = field(common::Q_DESC, 8);
            }
            if touched(common::Q_DRIVER, 8) {
                q.avail_addr = field(common::Q_DRIVER, 8);
            }
            if touched(common::Q_DEVICE, 8) {
                q.used_addr = field(common::Q_DEVICE, 8);
            }
            if touched(common::Q_ENABLE, 2) && field(common::Q_ENABLE, 2) & 1 == 1 {
                if q.valid_config() {
                    q.ready = true;
                } else {
                    self.needs_reset = true;
                    update(&self.stats, |s| s.errors += 1);
                }
            }
        }
        if touched(common::STATUS, 1) {
            self.set_status(new[common::STATUS as usize], ctx);
        }
    }

    fn bar_access_read(&mut self, offset: u64, size: u8) -> u64 {
        let n = usize::from(size.min(8));
        let mut b = [0u8; 8];
        if offset < COMMON_LEN {
            super::read_bytes(&self.common_image(), offset, &mut b[..n]);
        } else if offset == ISR {
            // Reading the ISR status acknowledges the interrupt.
            b[0] = core::mem::take(&mut self.isr);
        } else if (DEVICE..DEVICE + self.dev.config_len()).contains(&offset) {
            self.dev.read_config(offset - DEVICE, &mut b[..n]);
        }
        u64::from_le_bytes(b)
    }

    fn bar_access_write(&mut self, offset: u64, size: u8, value: u64, ctx: &mut DeviceCtx<'_>) {
        let nq = self.queues.len() as u64;
        if offset < COMMON_LEN {
            self.common_write(offset, size, value, ctx);
        } else if (DEVICE..DEVICE + self.dev.config_len()).contains(&offset) {
            let n = usize::from(size.min(8));
            self.dev
                .write_config(offset - DEVICE, &value.to_le_bytes()[..n]);
        } else if (NOTIFY..NOTIFY + nq * u64::from(NOTIFY_MULTIPLIER)).contains(&offset) {
            let q = ((offset - NOTIFY) / u64::from(NOTIFY_MULTIPLIER)) as usize;
            update(&self.stats, |s| s.notifies += 1);
            self.process(q, ctx);
        }
    }

    /// The capability bytes from `0x40` to [`CAPS_END`].
    fn caps(&self) -> [u8; (CAPS_END - CAP_COMMON) as usize] {
        let mut c = [0u8; (CAPS_END - CAP_COMMON) as usize];
        let entries: [(u16, u16, u8, u8, u64, u64); 5] = [
            (
                CAP_COMMON,
                CAP_NOTIFY,
                16,
                cap::COMMON_CFG,
                COMMON,
                COMMON_LEN,
            ),
            (
                CAP_NOTIFY,
                CAP_ISR,
                20,
                cap::NOTIFY_CFG,
                NOTIFY,
                self.queues.len() as u64 * u64::from(NOTIFY_MULTIPLIER),
            ),
            (CAP_ISR, CAP_DEVICE, 16, cap::ISR_CFG, ISR, 1),
            (
                CAP_DEVICE,
                CAP_PCI,
                16,
                cap::DEVICE_CFG,
                DEVICE,
                self.dev.config_len(),
            ),
            (CAP_PCI, 0, 20, cap::PCI_CFG, 0, 0),
        ];
        for (at, next, len, kind, offset, length) in entries {
            let o = usize::from(at - CAP_COMMON);
            c[o] = cap::VENDOR;
            c[o + 1] = next as u8;
            c[o + 2] = len;
            c[o + 3] = kind;
            c[o + 4] = BAR as u8;
            c[o + 8..o + 12].copy_from_slice(&(offset as u32).to_le_bytes());
            c[o + 12..o + 16].copy_from_slice(&(length as u32).to_le_bytes());
        }
        let n = usize::from(CAP_NOTIFY - CAP_COMMON);
        c[n + 16..n + 20].copy_from_slice(&NOTIFY_MULTIPLIER.to_le_bytes());
        let p = usize::from(CAP_PCI - CAP_COMMON);
        c[p + 4] = self.window.0;
        c[p + 8..p + 12].copy_from_slice(&self.window.1.to_le_bytes());
        c[p + 12..p + 16].copy_from_slice(&self.window.2.to_le_bytes());
        c
    }

    /// The `PCI_CFG` window's target, if it names a valid access of BAR 0.
    fn window_target(&self) -> Option<(u64, u8)> {
        let (bar, off, len) = self.window;
        let ok = usize::from(bar) == BAR
            && matches!(len, 1 | 2 | 4)
            && off % len == 0
            && off.checked_add(len).is_some_and(|e| e <= BAR_SIZE);
        ok.then_some((u64::from(off), len as u8))
    }
}

const PCI_DATA: u16 = CAP_PCI + 16;

impl<D: VirtioDevice> PciFunction for VirtioPci<D> {
    fn name(&self) -> &'static str {
        self.dev.name()
    }

    fn ids(&self) -> PciIds {
        let t = self.dev.device_type();
        PciIds {
            vendor: VENDOR,
            device: 0x1040 + t,
            revision: 1,
            class: self.dev.class_code(),
            subsystem_vendor: VENDOR,
            subsystem: 0x40 + t,
            interrupt_pin: 1,
            capabilities: CAP_COMMON as u8,
        }
    }

    fn bar_size(&self, bar: usize) -> Option<u32> {
        (bar == BAR).then_some(BAR_SIZE)
    }

    fn config_read(&mut self, reg: u16, size: u8, _ctx: &mut DeviceCtx<'_>) -> u32 {
        update(&self.stats, |s| s.accesses += 1);
        if (PCI_DATA..PCI_DATA + 4).contains(&reg) {
            let v = match self.window_target() {
                Some((off, len)) => self.bar_access_read(off, len) as u32,
                None => 0,
            };
            return v >> (8 * (reg - PCI_DATA)) & size_mask(size) as u32;
        }
        if reg < CAP_COMMON {
            return 0;
        }
        let caps = self.caps();
        let mut b = [0u8; 4];
        let n = usize::from(size.min(4));
        super::read_bytes(&caps, u64::from(reg - CAP_COMMON), &mut b[..n]);
        u32::from_le_bytes(b)
    }

    fn config_write(&mut self, reg: u16, size: u8, value: u32, ctx: &mut DeviceCtx<'_>) {
        update(&self.stats, |s| s.accesses += 1);
        let p = CAP_PCI;
        for i in 0..u16::from(size.min(4)) {
            let r = reg + i;
            let byte = (value >> (8 * i)) as u8;
            match r {
                _ if r == p + 4 => self.window.0 = byte,
                _ if (p + 8..p + 12).contains(&r) => {
                    let mut b = self.window.1.to_le_bytes();
                    b[usize::from(r - p - 8)] = byte;
                    self.window.1 = u32::from_le_bytes(b);
                }
                _ if (p + 12..p + 16).contains(&r) => {
                    let mut b = self.window.2.to_le_bytes();
                    b[usize::from(r - p - 12)] = byte;
                    self.window.2 = u32::from_le_bytes(b);
                }
                _ => {}
            }
        }
        if reg == PCI_DATA {
            if let Some((off, len)) = self.window_target() {
                self.bar_access_write(off, len, u64::from(value), ctx);
            }
        }
    }

    fn bar_read(&mut self, bar: usize, offset: u64, size: u8, _ctx: &mut DeviceCtx<'_>) -> u64 {
        update(&self.stats, |s| s.accesses += 1);
        if bar != BAR {
            return 0;
        }
        self.bar_access_read(offset, size)
    }

    fn bar_write(
        &mut self,
        bar: usize,
        offset: u64,
        size: u8,
        value: u64,
        ctx: &mut DeviceCtx<'_>,
    ) {
        update(&self.stats, |s| s.accesses += 1);
        if bar == BAR {
            self.bar_access_write(offset, size, value, ctx);
        }
    }

    fn intx(&self) -> bool {
        self.isr != 0
    }

    fn console_input(&mut self, byte: u8, ctx: &mut DeviceCtx<'_>) -> bool {
        if !self.live() {
            return false;
        }
        let mut st = self.stats.get();
        let r = self.dev.console_input(byte, &mut self.queues, ctx, &mut st);
        let taken = matches!(r, Ok(true));
        self.finish(r.map(|_| ()), ctx, &mut st);
        self.stats.set(st);
        taken
    }
}

#[cfg(test)]
#[path = "pci_tests.rs"]
mod tests;
