//! Virtio 1.x devices for realms: the modern PCI transport ([`pci`]), the split virtqueue
//! ([`queue`]), a block device ([`blk`]) and a console ([`console`]).
//!
//! The devices only see guest memory through [`crate::devices::GuestDma`], which refuses
//! anything the realm does not share with the host right now, so a driver's addresses (with
//! or without the unprotected-alias bit) can never make the host touch protected memory,
//! MMIO or memory outside the realm. A ring the device cannot use (see
//! [`queue::QueueError`]) sets `DEVICE_NEEDS_RESET` and the device stops using its queues
//! until the driver resets it.

pub mod blk;
pub mod console;
pub mod pci;
pub mod queue;
pub mod stats;

use crate::devices::DeviceCtx;
use queue::{QueueError, Virtqueue};
pub use stats::{DeviceStats, StatsHandle};

/// `VIRTIO_F_INDIRECT_DESC` (bit 28).
pub const F_INDIRECT_DESC: u64 = 1 << 28;
/// `VIRTIO_F_VERSION_1` (bit 32): a virtio 1.x device.
pub const F_VERSION_1: u64 = 1 << 32;
/// `VIRTIO_F_ACCESS_PLATFORM` (bit 33): the device reaches memory through the platform's
/// DMA translation; a realm's Linux refuses devices without it.
pub const F_ACCESS_PLATFORM: u64 = 1 << 33;

/// Device status bits (virtio 1.x §2.1).
pub mod status {
    /// The guest found the device.
    pub const ACKNOWLEDGE: u8 = 1;
    /// The guest has a driver for it.
    pub const DRIVER: u8 = 2;
    /// The driver is ready.
    pub const DRIVER_OK: u8 = 4;
    /// Feature negotiation is complete.
    pub const FEATURES_OK: u8 = 8;
    /// The device hit an error it cannot recover from without a reset.
    pub const DEVICE_NEEDS_RESET: u8 = 0x40;
    /// The driver gave up on the device.
    pub const FAILED: u8 = 0x80;
}

/// Device type numbers (virtio 1.x §5).
pub mod device_type {
    /// Block device.
    pub const BLOCK: u16 = 2;
    /// Console.
    pub const CONSOLE: u16 = 3;
}

/// What a device does on its queues; the transport ([`pci::VirtioPci`]) does the rest
/// (feature negotiation, status, queue configuration, notifications and interrupts).
pub trait VirtioDevice {
    /// A short name for log lines.
    fn name(&self) -> &'static str;
    /// Its virtio device type ([`device_type`]).
    fn device_type(&self) -> u16;
    /// The PCI class code (class, subclass, programming interface).
    fn class_code(&self) -> u32;
    /// Device-specific feature bits it offers (the transport adds `VERSION_1`,
    /// `ACCESS_PLATFORM` and `INDIRECT_DESC`).
    fn device_features(&self) -> u64;
    /// Number of virtqueues.
    fn num_queues(&self) -> u16;
    /// The largest queue size (a power of two).
    fn max_queue_size(&self) -> u16 {
        128
    }
    /// Bytes of device configuration space.
    fn config_len(&self) -> u64;
    /// Reads device configuration bytes at `offset` (bytes past the end read as zero).
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Writes device configuration bytes (ignored by default).
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}
    /// The driver reset the device.
    fn reset(&mut self);
    /// The driver notified queue `q` (or the device just became ready): take what is
    /// available. `queues` are all the device's queues, enabled ones ready to use.
    fn process(
        &mut self,
        q: usize,
        queues: &mut [Virtqueue],
        ctx: &mut DeviceCtx<'_>,
        stats: &mut DeviceStats,
    ) -> Result<(), QueueError>;
    /// A byte typed on the host's console, offered while the driver is ready: returns
    /// `Ok(true)` if the device took it. Default: not a console.
    fn console_input(
        &mut self,
        _byte: u8,
        _queues: &mut [Virtqueue],
        _ctx: &mut DeviceCtx<'_>,
        _stats: &mut DeviceStats,
    ) -> Result<bool, QueueError> {
        Ok(false)
    }
}

/// Reads `data.len()` bytes at `offset` of a configuration image `cfg` (zero past its end).
pub fn read_bytes(cfg: &[u8], offset: u64, data: &mut [u8]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b = usize::try_from(offset)
            .ok()
            .and_then(|o| o.checked_add(i))
            .and_then(|o| cfg.get(o))
            .copied()
            .unwrap_or(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_images_read_as_zero_past_the_end() {
        let cfg = [1u8, 2, 3];
        let mut b = [9u8; 4];
        read_bytes(&cfg, 1, &mut b);
        assert_eq!(b, [2, 3, 0, 0]);
        read_bytes(&cfg, u64::MAX, &mut b);
        assert_eq!(b, [0; 4]);
    }
}
