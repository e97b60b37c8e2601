//! The Arm CCA interfaces shared by every world of this stack.
//!
//! This crate is the single source of truth for function identifiers, status codes and the
//! `#[repr(C)]` structures that cross a world boundary. It follows the RMM specification
//! (DEN0137 v2.0) as implemented by TF-RMM's main branch, the SMC Calling Convention
//! (DEN0028), PSCI (DEN0022) and TF-A's RMM-EL3 communication interface 2.0.
//!
//! Every structure has compile-time size and offset assertions next to its definition.

#![no_std]
#![forbid(unsafe_code)]

pub mod arch;
pub mod el3;
pub mod psci;
pub mod rmi;
pub mod rsi;
pub mod smccc;

/// Size of a granule, the unit of memory the RMM tracks (4 KiB).
pub const GRANULE_SIZE: u64 = 4096;
/// log2 of [`GRANULE_SIZE`].
pub const GRANULE_SHIFT: u32 = 12;

/// Returns true when `addr` is aligned to a granule.
pub const fn granule_aligned(addr: u64) -> bool {
    addr & (GRANULE_SIZE - 1) == 0
}

/// Encodes an interface version as `major << 16 | minor`.
pub const fn version(major: u16, minor: u16) -> u64 {
    ((major as u64) << 16) | minor as u64
}

/// Splits a `major << 16 | minor` version into its parts (bit 31 and above are ignored).
pub const fn version_parts(v: u64) -> (u16, u16) {
    (((v >> 16) & 0x7fff) as u16, (v & 0xffff) as u16)
}
