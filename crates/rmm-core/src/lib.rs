//! The hardware-independent core of the RMM: RMI command semantics, granule tracking and
//! the seams to the hardware.
//!
//! The core follows TF-RMM main's RMI 2.0 behaviour (see `shared/research/tf-rmm.md`). It
//! neither touches memory nor issues SMCs itself: the firmware gives it a [`Platform`] that
//! reads and writes physical memory through the right PAS and calls EL3, and a
//! [`GranuleTable`] over storage it owns. Everything else lives in one [`Rmm`] object that
//! all CPUs share.
//!
//! # Boot
//!
//! ```ignore
//! // Storage for the granule descriptors: 2 bytes per 4 KiB granule of DRAM
//! // (DESCRIPTOR_BYTES_PER_GIB = 512 KiB per GiB).
//! static DESCRIPTORS: [AtomicU16; N] = [const { AtomicU16::new(0) }; N];
//! static RMM: spin::Once<Rmm<'static, FwPlatform>> = spin::Once::new();
//!
//! let banks: &[MemoryBank] = manifest_dram_banks();
//! let table = GranuleTable::new(banks, &DESCRIPTORS).map_err(InitError::from)?;
//! let rmm = Rmm::new(FwPlatform::new(), table, &SRO)?; // InitError::boot_error() for BOOT_COMPLETE
//! RMM.call_once(|| rmm);
//!
//! // Then, on every CPU, for every RMI call EL3 forwards:
//! let out: [u64; 8] = RMM.get().unwrap().handle_rmi(&[x0, x1, x2, x3, x4, x5, x6, x7]);
//! // ... and return `out` to EL3 with RMM_RMI_REQ_COMPLETE (x1..x8 = out[0..8]).
//! ```
//!
//! # Modules
//!
//! * [`dispatch`]: function identifier decoding, the activation gate, result registers;
//! * [`granule`]: granule descriptors, states and locks;
//! * [`platform`]: the [`PhysMem`], [`El3`] and [`Platform`] traits;
//! * [`features`], [`version`], [`config`], [`tracking`], [`delegate`]: the boot commands;
//! * [`realm`], [`rtt`], [`rtt_map`], [`rec`], [`sro`]: realms, their translation tables,
//!   memory, RECs and the stateful operations; [`s2tt`] and [`addr_list`]: the stage 2
//!   descriptor format and address range lists;
//! * [`run`], [`rec_enter`], [`rsi`], [`psci`], [`esr`]: running RECs (`REC_ENTER`, the
//!   exits, the RSI and PSCI calls realms make, `PSCI_COMPLETE`) behind
//!   [`Platform::run_realm`]; [`idregs`]: the ID registers realms read and the EL2 traps that
//!   go with them;
//! * [`attest`], [`token`], [`ecdsa`]: realm attestation (`RSI_ATTESTATION_TOKEN_*`), the
//!   token's encoding and the restartable ES384 signer;
//! * `sim` (cargo feature `sim`): a simulated machine for tests.

#![no_std]
#![forbid(unsafe_code)]

pub mod addr_list;
pub mod attest;
pub mod config;
pub mod delegate;
pub mod dispatch;
pub mod ecdsa;
pub mod engine_digest;
pub mod error;
pub use cca_abi::arch::esr;
pub mod features;
pub mod granule;
pub mod idregs;
pub mod pa;
pub mod platform;
pub mod psci;
pub mod realm;
pub mod rec;
pub mod rec_enter;
pub mod rmm;
pub mod rsi;
pub mod rtt;
pub mod rtt_map;
pub mod run;
pub mod s2tt;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod sro;
pub mod token;
pub mod tracking;
pub mod version;

#[cfg(test)]
mod attest_tests;
#[cfg(test)]
mod idregs_tests;
#[cfg(test)]
mod map_tests;
#[cfg(test)]
mod realm_tests;
#[cfg(test)]
mod rtt_tests;
#[cfg(test)]
mod run_tests;
#[cfg(test)]
mod sro_tests;
#[cfg(test)]
mod stress_tests;
#[cfg(test)]
#[allow(dead_code)]
mod test_util;

pub use delegate::MAX_GRANULES_PER_CALL;
pub use dispatch::Regs;
pub use error::{Reason, RmiError};
pub use features::CpuFeatures;
pub use granule::{
    Granule, GranuleState, GranuleTable, LockedGranule, TableError, DESCRIPTOR_BYTES_PER_GIB,
    MAX_DRAM_BANKS,
};
pub use idregs::{IdReg, IdRegs, RealmCpu, RealmTraps};
pub use pa::Pa;
pub use platform::{El3, NsFault, PhysMem, Platform};
pub use realm::{Rd, S2Ctx};
pub use rec::Rec;
pub use rmm::{InitError, Rmm};
pub use sro::SroStorage;
pub use sro::{SroInfo, SRO_CONTEXTS};
