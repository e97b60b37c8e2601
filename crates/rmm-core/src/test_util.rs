//! Shared helpers for this crate's tests: a simulated machine with an RMM on it, RMI call
//! helpers and a logger that captures each thread's log lines.

extern crate std;

use std::cell::RefCell;
use std::string::{String, ToString};
use std::sync::atomic::AtomicU16;
use std::sync::Once;
use std::vec::Vec;

use cca_abi::el3::MemoryBank;
use cca_abi::rmi::{RmiFid, RmiStatus};

use crate::features::CpuFeatures;
use crate::granule::GranuleTable;
use crate::pa::Pa;
use crate::rmm::Rmm;
use crate::sim::{granule_storage, SimPlatform, SIM_CPU};
use crate::Regs;

/// Base of the small bank (16 granules).
pub const B0: u64 = 0x8000_0000;
/// Granules in the small bank.
pub const B0_GRANULES: u64 = 16;
/// Base of the large bank (600 granules: more than one call's worth).
pub const B1: u64 = 0x9000_0000;
/// Granules in the large bank.
pub const B1_GRANULES: u64 = 600;
/// 4 KiB.
pub const G: u64 = 0x1000;

/// The default DRAM banks of test machines.
pub fn banks() -> Vec<MemoryBank> {
    std::vec![
        MemoryBank {
            base: B0,
            size: B0_GRANULES * G
        },
        MemoryBank {
            base: B1,
            size: B1_GRANULES * G
        },
    ]
}

/// A simulated machine and the descriptor storage for an RMM on it.
pub struct Fixture {
    pub sim: SimPlatform,
    pub storage: Vec<AtomicU16>,
    pub banks: Vec<MemoryBank>,
}

impl Fixture {
    /// The default machine.
    pub fn new() -> Self {
        Self::with(banks(), SIM_CPU)
    }

    /// A machine with the given banks and CPU features.
    pub fn with(banks: Vec<MemoryBank>, cpu: CpuFeatures) -> Self {
        init_logger();
        Self {
            sim: SimPlatform::with_cpu(&banks, cpu),
            storage: granule_storage(&banks),
            banks,
        }
    }

    /// A fresh RMM (state INIT) on the machine.
    pub fn rmm(&self) -> Rmm<'_, &SimPlatform> {
        Rmm::new(
            &self.sim,
            GranuleTable::new(&self.banks, &self.storage).unwrap(),
        )
        .unwrap()
    }

    /// A fresh RMM, activated.
    pub fn active_rmm(&self) -> Rmm<'_, &SimPlatform> {
        let rmm = self.rmm();
        assert_eq!(call(&rmm, RmiFid::RMM_ACTIVATE, &[])[0], 0);
        rmm
    }
}

/// Calls `fid` with arguments x1.. = `args`; x4..x7 not given are 0.
pub fn call(rmm: &Rmm<'_, &SimPlatform>, fid: RmiFid, args: &[u64]) -> Regs {
    let mut regs = [0u64; 8];
    regs[0] = u64::from(fid.fid());
    regs[1..=args.len()].copy_from_slice(args);
    rmm.handle_rmi(&regs)
}

/// Returns x0 as a status, panicking if it is not one.
pub fn status(out: &Regs) -> RmiStatus {
    cca_abi::rmi::RmiReturn::from_reg(out[0])
        .expect("x0 is not an RMI status")
        .status
}

/// The PA of granule `i` of bank 0.
pub fn b0(i: u64) -> u64 {
    B0 + i * G
}

/// The PA of granule `i` of bank 1.
pub fn b1(i: u64) -> u64 {
    B1 + i * G
}

/// Shorthand for `Pa::new`.
pub fn pa(a: u64) -> Pa {
    Pa::new(a)
}

struct CaptureLogger;

std::thread_local! {
    static LINES: RefCell<Vec<(log::Level, String)>> = const { RefCell::new(Vec::new()) };
}

impl log::Log for CaptureLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        LINES.with(|l| {
            let mut l = l.borrow_mut();
            if l.len() >= 10_000 {
                l.clear();
            }
            l.push((record.level(), record.args().to_string()));
        });
    }
    fn flush(&self) {}
}

static LOGGER: CaptureLogger = CaptureLogger;

/// Installs the capturing logger (once per process).
pub fn init_logger() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        log::set_logger(&LOGGER).expect("another logger is installed");
        log::set_max_level(log::LevelFilter::Trace);
    });
}

/// Returns and clears this thread's captured `debug` (and more severe) lines.
pub fn take_debug_logs() -> Vec<String> {
    LINES.with(|l| {
        l.borrow_mut()
            .drain(..)
            .filter(|(lvl, _)| *lvl <= log::Level::Debug)
            .map(|(_, s)| s)
            .collect()
    })
}
