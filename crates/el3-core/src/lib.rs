//! The hardware-independent core of the EL3 monitor.
//!
//! The bare-metal `el3` crate supplies memory for the tables, system registers, TLB and
//! cache maintenance and the world switch; everything that decides (which PAS a granule is
//! in, what a call from a world means, where the RMM's memory comes from) lives here and is
//! tested on the build machine.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod attest;
pub mod carveout;
pub mod features;
pub mod gpt;
pub mod gtsi;
pub mod manifest;
pub mod memmap;
pub mod psci;
pub mod routing;
pub mod session;
pub mod shared_work;

#[cfg(test)]
mod gtsi_tests;
#[cfg(test)]
mod psci_tests;
#[cfg(test)]
mod session_tests;
