//! Instruction-count benchmarks of RMI operations, for runs under QEMU's `-icount shift=0`
//! (where every instruction advances virtual time by 1 ns, so the generic timer counts
//! instructions in units of `1e9 / CNTFRQ`).

use crate::rmi::{Conduit, Rmi};
use cca_abi::rmi::{RmiFid, RmiStatus};
use core::fmt::Write;

/// The host's view of the generic timer.
pub trait Clock {
    /// Reads the virtual counter.
    fn ticks(&mut self) -> u64;
    /// Counter frequency in Hz.
    fn frequency(&self) -> u64;
}

/// Converts a tick interval into instructions (exact under `-icount shift=0`).
pub fn instructions(clock: &dyn Clock, ticks: u64) -> u64 {
    ticks.saturating_mul(1_000_000_000) / clock.frequency().max(1)
}

/// Prints one result line: `BENCH <name> <ops> <instructions per op>`.
pub fn report(out: &mut dyn Write, clock: &dyn Clock, name: &str, ops: u64, ticks: u64) {
    let per_op = instructions(clock, ticks) / ops.max(1);
    let _ = writeln!(out, "BENCH {name} {ops} {per_op}");
}

/// Measures granule delegation and undelegation: one granule per call, and whole ranges.
/// `pool` must be `granules` Non-secure granules the RMM tracks. Returns false on an error.
pub fn delegation<C: Conduit, K: Clock>(
    rmi: &mut Rmi<'_, C>,
    clock: &mut K,
    pool: u64,
    granules: u64,
) -> bool {
    let g = cca_abi::GRANULE_SIZE;
    rmi.verbose = false;
    let mut ok = true;
    let t0 = clock.ticks();
    for i in 0..granules {
        let pa = pool + i * g;
        ok &= rmi
            .call(RmiFid::GRANULE_RANGE_DELEGATE, &[pa, pa + g])
            .status()
            == Some(RmiStatus::Success);
    }
    let t1 = clock.ticks();
    for i in 0..granules {
        let pa = pool + i * g;
        ok &= rmi
            .call(RmiFid::GRANULE_RANGE_UNDELEGATE, &[pa, pa + g])
            .status()
            == Some(RmiStatus::Success);
    }
    let t2 = clock.ticks();
    ok &= crate::boot::range_loop(
        rmi,
        RmiFid::GRANULE_RANGE_DELEGATE,
        pool,
        pool + granules * g,
    )
    .is_ok();
    let t3 = clock.ticks();
    ok &= crate::boot::range_loop(
        rmi,
        RmiFid::GRANULE_RANGE_UNDELEGATE,
        pool,
        pool + granules * g,
    )
    .is_ok();
    let t4 = clock.ticks();
    let t5 = clock.ticks();
    for _ in 0..granules {
        ok &= rmi
            .call(RmiFid::VERSION, &[cca_abi::rmi::RMI_VERSION_2_0])
            .status()
            == Some(RmiStatus::Success);
    }
    let t6 = clock.ticks();
    rmi.verbose = true;
    let out = rmi.out();
    report(out, clock, "rmi_version_round_trip", granules, t6 - t5);
    report(
        out,
        clock,
        "delegate_single_granule_call",
        granules,
        t1 - t0,
    );
    report(
        out,
        clock,
        "undelegate_single_granule_call",
        granules,
        t2 - t1,
    );
    report(
        out,
        clock,
        "delegate_per_granule_in_range",
        granules,
        t3 - t2,
    );
    report(
        out,
        clock,
        "undelegate_per_granule_in_range",
        granules,
        t4 - t3,
    );
    ok
}
