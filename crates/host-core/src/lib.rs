//! The Normal-world hypervisor as a hardware-independent library.
//!
//! The host talks to the RMM through a [`Conduit`] (an SMC on hardware, a direct call into
//! `rmm-core` in tests) and sees its own memory through [`HostMem`]. On top of that:
//!
//! * [`client`]: a typed RMI client (every command returns a `Result`);
//! * [`vmm`]: the hypervisor's objects: granule allocator, realm and RTT manager, guest
//!   memory, vCPUs, scheduler, the Linux loader, the device tree and the launch description;
//! * [`devices`]: the MMIO device models on a bus (16550, RTC, PL011, GIC distributor and
//!   redistributors), one file each;
//! * [`vgic`]: the virtual GIC's interrupt state and its list-register management;
//! * [`boot`], [`realm`], [`payload`], [`bench`]: the demonstration's checked sequences and
//!   its payload realm, clients of the library.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod bench;
pub mod boot;
pub mod client;
pub mod devices;
pub mod fuzz;
pub mod payload;
pub mod realm;
pub mod rmi;
pub mod vgic;
pub mod vmm;

pub use rmi::{Conduit, HostMem, Rmi};
