//! The hardware-independent part of the Normal-world host.
//!
//! The host talks to the RMM through a [`Conduit`] (an SMC on hardware, a direct call into
//! `rmm-core` in tests) and sees its own memory through [`HostMem`]. Every RMI call it makes
//! is printed decoded: command name, arguments, status name and results.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod bench;
pub mod boot;
pub mod realm;
pub mod rmi;
pub mod run;

pub use rmi::{Conduit, HostMem, Rmi};
