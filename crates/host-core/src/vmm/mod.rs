//! The hypervisor's objects.
//!
//! * [`platform`]: the realm platform (kvmtool's arm64 layout);
//! * [`loader`]: the arm64 Linux `Image` header and where kernel, DTB and initrd go;
//! * [`dtb`]: the device tree generated at launch;
//! * [`launch`]: the launch description the launcher hands the host.

pub mod dma;
pub mod dtb;
pub mod error;
pub mod granules;
pub mod host;
pub mod launch;
pub mod linux;
pub mod loader;
pub mod memory;
pub mod placement;
pub mod platform;
pub mod realm;
pub mod rtt;
pub mod runloop;
pub mod stats;
pub mod vcpu;
pub mod vm;

#[cfg(test)]
mod linux_tests;
#[cfg(test)]
mod runloop_tests;
#[cfg(test)]
mod vm_tests;
