//! Instruction-count benchmarks of RMI operations, for runs under QEMU's `-icount shift=0`
//! (where every instruction advances virtual time by 1 ns, so the generic timer counts
//! instructions in units of `1e9 / CNTFRQ`).

use crate::payload::RsiTiming;
use crate::rmi::{Conduit, Rmi};
use crate::vmm::stats::{ExitClass, ExitStats};
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

/// Which profile window [`region_start`] opens next.
static REGIONS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The start of a timed region. `cargo xtask bench --profile` finds this function in the host
/// image and counts every instruction (EL3, RMM, host) from its first instruction to
/// [`region_end`]'s, as window `n`, the value returned; the region is named by the
/// `REGION <n> <name> <ops>` line [`Region::end`] prints. Outside a profile run it only
/// counts.
#[inline(never)]
pub fn region_start() -> u64 {
    REGIONS.fetch_add(1, core::sync::atomic::Ordering::Relaxed)
}

/// The end of a timed region (see [`region_start`]).
#[inline(never)]
pub fn region_end() {
    core::hint::black_box(REGIONS.load(core::sync::atomic::Ordering::Relaxed));
}

/// One timed region: the profile window and the counter readings around it.
pub struct Region {
    index: u64,
    t0: u64,
}

impl Region {
    /// Opens the window and reads the counter.
    pub fn start(clock: &mut dyn Clock) -> Self {
        let index = region_start();
        Self {
            index,
            t0: clock.ticks(),
        }
    }

    /// Reads the counter, closes the window, names it (`REGION <n> <name> <ops>`) and
    /// returns the ticks elapsed.
    pub fn end(self, clock: &mut dyn Clock, out: &mut dyn Write, name: &str, ops: u64) -> u64 {
        let ticks = clock.ticks().saturating_sub(self.t0);
        region_end();
        let _ = writeln!(out, "REGION {} {name} {ops}", self.index);
        ticks
    }
}

/// Measures granule delegation and undelegation: one granule per call, and whole ranges.
/// `pool` must be `granules` Non-secure granules the RMM tracks. Returns false on an error.
/// Each measurement is a [`Region`]; the results are printed in the order they were taken.
pub fn delegation<C: Conduit, K: Clock>(
    rmi: &mut Rmi<'_, C>,
    clock: &mut K,
    pool: u64,
    granules: u64,
) -> bool {
    let g = cca_abi::GRANULE_SIZE;
    rmi.verbose = false;
    let mut ok = true;
    let mut results: [(&str, u64); 5] = [("", 0); 5];
    let r = Region::start(clock);
    for _ in 0..granules {
        ok &= rmi
            .call(RmiFid::VERSION, &[cca_abi::rmi::RMI_VERSION_2_0])
            .status()
            == Some(RmiStatus::Success);
    }
    results[0] = (
        "rmi_version_round_trip",
        r.end(clock, rmi.out(), "rmi_version_round_trip", granules),
    );
    for (i, (fid, name)) in [
        (
            RmiFid::GRANULE_RANGE_DELEGATE,
            "delegate_single_granule_call",
        ),
        (
            RmiFid::GRANULE_RANGE_UNDELEGATE,
            "undelegate_single_granule_call",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let r = Region::start(clock);
        for i in 0..granules {
            let pa = pool + i * g;
            ok &= rmi.call(fid, &[pa, pa + g]).status() == Some(RmiStatus::Success);
        }
        results[1 + i] = (name, r.end(clock, rmi.out(), name, granules));
    }
    for (i, (fid, name)) in [
        (
            RmiFid::GRANULE_RANGE_DELEGATE,
            "delegate_per_granule_in_range",
        ),
        (
            RmiFid::GRANULE_RANGE_UNDELEGATE,
            "undelegate_per_granule_in_range",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let r = Region::start(clock);
        ok &= crate::boot::range_loop(rmi, fid, pool, pool + granules * g).is_ok();
        results[3 + i] = (name, r.end(clock, rmi.out(), name, granules));
    }
    rmi.verbose = true;
    for (name, ticks) in results {
        report(rmi.out(), clock, name, granules, ticks);
    }
    ok
}

/// Measures how delegation scales: per granule, with 1, 8, 64 and 512 granules per
/// `GRANULE_RANGE_DELEGATE` / `UNDELEGATE` call (`BENCH delegate_per_granule_<n>_per_call`,
/// `undelegate_...`), over `pool`, which must hold at least 512 Non-secure granules the RMM
/// tracks; and then the same range calls over all `pool_granules` ([`delegation_pool`]).
/// Returns false on an error.
pub fn delegation_scaling<C: Conduit, K: Clock>(
    rmi: &mut Rmi<'_, C>,
    clock: &mut K,
    pool: u64,
    pool_granules: u64,
) -> bool {
    use core::fmt::Write as _;
    let g = cca_abi::GRANULE_SIZE;
    let verbose = rmi.verbose;
    rmi.verbose = false;
    let mut ok = pool_granules >= 512;
    let mut name = alloc::string::String::new();
    for per_call in [1u64, 8, 64, 512] {
        let total = 512;
        for (fid, what) in [
            (RmiFid::GRANULE_RANGE_DELEGATE, "delegate"),
            (RmiFid::GRANULE_RANGE_UNDELEGATE, "undelegate"),
        ] {
            name.clear();
            let _ = write!(name, "{what}_per_granule_{per_call}_per_call");
            let r = Region::start(clock);
            let mut base = pool;
            while ok && base < pool + total * g {
                let top = base + per_call * g;
                // An RMM may do part of a range per call (TF-RMM does one granule): the
                // range is called until done, as a host must.
                ok = crate::boot::range_loop(rmi, fid, base, top).is_ok();
                base = top;
            }
            let ticks = r.end(clock, rmi.out(), name.as_str(), total);
            report(rmi.out(), clock, name.as_str(), total, ticks);
        }
    }
    rmi.verbose = verbose;
    ok && delegation_pool(rmi, clock, pool, pool_granules)
}

/// Measures delegation and undelegation of a whole pool of `granules` Non-secure granules at
/// `pool` with range calls (as a host donates a realm's memory), per granule:
/// `BENCH delegate_per_granule_pool_<MiB>m` and `undelegate_...`, so that pools of different
/// sizes (a 16 MiB realm's and a larger one's) can be compared. Returns false on an error.
pub fn delegation_pool<C: Conduit, K: Clock>(
    rmi: &mut Rmi<'_, C>,
    clock: &mut K,
    pool: u64,
    granules: u64,
) -> bool {
    use core::fmt::Write as _;
    let g = cca_abi::GRANULE_SIZE;
    let verbose = rmi.verbose;
    rmi.verbose = false;
    let mib = granules.saturating_mul(g) >> 20;
    let Some(top) = granules.checked_mul(g).and_then(|s| pool.checked_add(s)) else {
        rmi.verbose = verbose;
        return false;
    };
    let mut ok = granules != 0;
    let mut name = alloc::string::String::new();
    for (fid, what) in [
        (RmiFid::GRANULE_RANGE_DELEGATE, "delegate"),
        (RmiFid::GRANULE_RANGE_UNDELEGATE, "undelegate"),
    ] {
        name.clear();
        let _ = write!(name, "{what}_per_granule_pool_{mib}m");
        let r = Region::start(clock);
        ok = ok && crate::boot::range_loop(rmi, fid, pool, top).is_ok();
        let ticks = r.end(clock, rmi.out(), name.as_str(), granules);
        report(rmi.out(), clock, name.as_str(), granules, ticks);
    }
    rmi.verbose = verbose;
    ok
}

/// Measures realm operations: `REALM_CREATE`, `RTT_CREATE`, `RTT_DATA_MAP_INIT` with
/// measurement (per 4 KiB), `RTT_DATA_MAP` (per 2 MiB block) and `REC_CREATE` (the whole
/// stateful operation with pre-delegated auxiliary granules). Granule delegation is kept out of
/// the timed regions. Returns the checks' tally.
pub fn realm_ops<C: Conduit, K: Clock, M: crate::HostMem>(
    rmi: &mut Rmi<'_, C>,
    clock: &mut K,
    mem: &mut M,
    plan: &crate::realm::RealmPlan,
) -> crate::boot::Tally {
    use crate::realm::{delegate, drive_sro, undelegate, Pool};
    use cca_abi::rmi::{AddrRangeDesc, BlockSize, RecParams};
    use zerocopy::{FromZeros, IntoBytes};
    const G: u64 = cca_abi::GRANULE_SIZE;
    const N: u64 = 16;
    let verbose = rmi.verbose;
    rmi.verbose = false;
    let feat0 = rmi.call(RmiFid::FEATURES, &[0]).regs[1];
    let mut c = crate::boot::Checker::new(rmi);
    c.quiet = true;
    let mut pool = Pool {
        next: plan.pool_base,
        end: plan.pool_base + plan.pool_size,
    };
    let params_page = pool.take(1, G);
    let list_page = pool.take(1, G);
    let src = pool.take(1, G);
    mem.write(src, &[0x5a; 4096]);
    let rd = pool.take(1, G);
    let root = pool.take(2, 2 * G);
    delegate(&mut c, rd, 1);
    delegate(&mut c, root, 2);
    let p = crate::realm::realm_params(feat0, root);
    mem.write(params_page, p.as_bytes());

    // REALM_CREATE is timed call by call (the teardown between them is not).
    let mut t_create = 0;
    for _ in 0..N {
        let r = Region::start(clock);
        let out = c.rmi.call(RmiFid::REALM_CREATE, &[rd, params_page]);
        t_create += r.end(clock, c.rmi.out(), "realm_create", 1);
        c.check(
            out.status() == Some(RmiStatus::Success),
            format_args!("REALM_CREATE"),
        );
        c.expect(RmiFid::REALM_TERMINATE, &[rd], RmiStatus::Success);
        c.expect(RmiFid::REALM_DESTROY, &[rd], RmiStatus::Success);
    }
    c.expect(RmiFid::REALM_CREATE, &[rd, params_page], RmiStatus::Success);

    let l2 = pool.take(1, G);
    delegate(&mut c, l2, 1);
    c.expect(RmiFid::RTT_CREATE, &[rd, l2, 0, 2], RmiStatus::Success);
    let l3 = pool.take(N, G);
    delegate(&mut c, l3, N);
    let r = Region::start(clock);
    for i in 0..N {
        c.rmi
            .call(RmiFid::RTT_CREATE, &[rd, l3 + i * G, i << 21, 3]);
    }
    let t_rtt = r.end(clock, c.rmi.out(), "rtt_create_level3", N);
    c.expect(
        RmiFid::RTT_READ_ENTRY,
        &[rd, (N - 1) << 21, 2],
        RmiStatus::Success,
    );

    let data = pool.take(N, G);
    delegate(&mut c, data, N);
    let r = Region::start(clock);
    for i in 0..N {
        c.rmi.call(
            RmiFid::RTT_DATA_MAP_INIT,
            &[rd, data + i * G, i * G, src, 1],
        );
    }
    let t_init = r.end(clock, c.rmi.out(), "data_map_init_measured_per_4k", N);

    const BLOCKS: u64 = 4;
    let blocks = pool.take(512 * BLOCKS, 1 << 21);
    delegate(&mut c, blocks, 512 * BLOCKS);
    let base_ipa = 0x1000_0000;
    let r = Region::start(clock);
    for i in 0..BLOCKS {
        let d = AddrRangeDesc {
            size: BlockSize::L2_2M,
            count: 1,
            addr: blocks + i * (1 << 21),
            undelegated: false,
        };
        let ipa = base_ipa + i * (1 << 21);
        c.rmi.call(
            RmiFid::RTT_DATA_MAP,
            &[rd, ipa, ipa + (1 << 21), 1, d.encode()],
        );
    }
    let t_map = r.end(clock, c.rmi.out(), "data_map_per_2m_block", BLOCKS);

    const RECS: u64 = 4;
    let recs = pool.take(RECS, G);
    let aux = pool.take(16 * RECS, G);
    delegate(&mut c, recs, RECS);
    delegate(&mut c, aux, 16 * RECS);
    let mut next_aux = aux;
    let mut take_aux = |_: &mut crate::boot::Checker<'_, '_, C>, n: u64| {
        let b = next_aux;
        next_aux += n * G;
        b
    };
    let mut reclaimed = 0;
    let mut t_rec = 0;
    for i in 0..RECS {
        let mut rp = RecParams::new_zeroed();
        rp.flags = 1;
        rp.mpidr = i;
        mem.write(params_page, rp.as_bytes());
        let r = Region::start(clock);
        let first = c
            .rmi
            .call(RmiFid::REC_CREATE, &[rd, recs + i * G, params_page]);
        let done = drive_sro(&mut c, mem, first, list_page, &mut take_aux, &mut reclaimed);
        t_rec += r.end(clock, c.rmi.out(), "rec_create_sro", 1);
        c.check(
            done.status() == Some(RmiStatus::Success),
            format_args!("REC_CREATE {i}"),
        );
    }
    // Teardown, untimed.
    c.expect(RmiFid::REALM_TERMINATE, &[rd], RmiStatus::Success);
    let mut none = |_: &mut crate::boot::Checker<'_, '_, C>, _: u64| 0;
    for i in 0..RECS {
        let first = c.rmi.call(RmiFid::REC_DESTROY, &[recs + i * G]);
        let done = drive_sro(&mut c, mem, first, list_page, &mut none, &mut reclaimed);
        c.check(
            done.status() == Some(RmiStatus::Success),
            format_args!("REC_DESTROY {i}"),
        );
    }
    undelegate(&mut c, recs, RECS);
    for i in 0..BLOCKS {
        let ipa = base_ipa + i * (1 << 21);
        c.expect(
            RmiFid::RTT_DATA_UNMAP,
            &[rd, ipa, ipa + (1 << 21), 1, 0],
            RmiStatus::Success,
        );
    }
    undelegate(&mut c, blocks, 512 * BLOCKS);
    for i in 0..N {
        c.expect(
            RmiFid::RTT_DATA_UNMAP,
            &[rd, i * G, (i + 1) * G, 1, 0],
            RmiStatus::Success,
        );
    }
    undelegate(&mut c, data, N);
    for i in (0..N).rev() {
        c.expect(RmiFid::RTT_DESTROY, &[rd, i << 21, 3], RmiStatus::Success);
    }
    undelegate(&mut c, l3, N);
    c.expect(RmiFid::RTT_DESTROY, &[rd, 0, 2], RmiStatus::Success);
    undelegate(&mut c, l2, 1);
    c.expect(RmiFid::REALM_DESTROY, &[rd], RmiStatus::Success);
    undelegate(&mut c, rd, 1);
    undelegate(&mut c, root, 2);
    let tally = c.tally;
    rmi.verbose = verbose;
    let out = rmi.out();
    report(out, clock, "realm_create", N, t_create);
    report(out, clock, "rtt_create_level3", N, t_rtt);
    report(out, clock, "data_map_init_measured_per_4k", N, t_init);
    report(out, clock, "data_map_per_2m_block", BLOCKS, t_map);
    report(out, clock, "rec_create_sro", RECS, t_rec);
    tally
}

/// The `BENCH rec_enter_<name>` rows and the exit classes each sums, in the order they are
/// printed. The names are stable (`cargo xtask bench`, docs/performance.md): `wfx` is WFI and
/// WFE together, the classes the payload never causes come last.
pub const REC_EXIT_ROWS: [(&str, &[ExitClass]); 11] = [
    ("mmio", &[ExitClass::Mmio]),
    ("host_call", &[ExitClass::HostCall]),
    ("psci", &[ExitClass::Psci]),
    ("ripas_change", &[ExitClass::RipasChange]),
    ("protected_fault", &[ExitClass::ProtectedFault]),
    ("wfx", &[ExitClass::Wfi, ExitClass::Wfe]),
    ("sysreg", &[ExitClass::SysReg]),
    ("irq", &[ExitClass::Irq]),
    ("other", &[ExitClass::Other]),
    ("shared_fault", &[ExitClass::SharedFault]),
    ("sgi", &[ExitClass::Sgi]),
];

/// Reports the `REC_ENTER` round trips of a VM's run ([`crate::vmm::stats`]), two lines per
/// row of [`REC_EXIT_ROWS`] whose classes occurred:
/// `BENCH rec_enter_<name> <exits> <instructions of the fastest round trip>` and
/// `BENCH rec_enter_<name>_mean <exits> <instructions per round trip>`.
///
/// What is measured: the counter just before the host's `REC_ENTER` SMC and just after it
/// returned, for every entry, summed by the class of the exit that ended it. A round trip
/// covers the SMC to EL3, the world switch to the RMM, the RMM's entry checks and its entry
/// into the realm, **the realm's own execution until its next exit**, the exit's processing
/// in the RMM, and the way back to the host. The payload is not told to loop: these are its
/// own exits (UART accesses for `mmio`, its `RSI_HOST_CALL`s for `host_call`, ...), so
/// the realm's work between two exits is part of the figure (small for `mmio`: one character
/// of formatting; larger for the first exits of other classes). The host's handling of an
/// exit (emulation, RMI calls such as `RTT_DATA_MAP` or `PSCI_COMPLETE`) is outside the
/// timed window. RSI calls the RMM answers without an exit never reach the host and are not
/// measured here. The fastest round trip of a class is the one with the least realm work in
/// it, so it is the row that compares RMMs (and EL3s); the mean also carries whatever the
/// realm did before those exits (an attestation token before an IRQ exit, timing loops before
/// a host call).
pub fn rec_exits(out: &mut dyn Write, clock: &dyn Clock, stats: &ExitStats) {
    for (name, classes) in REC_EXIT_ROWS {
        let (exits, ticks) = classes.iter().fold((0u64, 0u64), |(n, t), &c| {
            let (cn, ct) = stats.get(c);
            (n.saturating_add(cn), t.saturating_add(ct))
        });
        let (Some(per), Some(fastest)) = (
            instructions(clock, ticks).checked_div(exits),
            stats.fastest_of(classes),
        ) else {
            continue;
        };
        let fastest = instructions(clock, fastest);
        let _ = writeln!(out, "BENCH rec_enter_{name} {exits} {fastest}");
        let _ = writeln!(out, "BENCH rec_enter_{name}_mean {exits} {per}");
    }
}

/// Reports the RSI calls the payload timed itself ([`crate::payload::RsiTiming`]):
/// `BENCH <name> <calls> <instructions per call>` (nanoseconds of the realm's counter per call,
/// exact instructions under `-icount shift=0`).
pub fn rsi_timings(out: &mut dyn Write, timings: &[Option<RsiTiming>]) {
    for t in timings.iter().flatten() {
        let _ = writeln!(
            out,
            "BENCH {} {} {}",
            t.name,
            t.calls,
            t.nanoseconds_per_call()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::tests::{Direct, Mem};
    use cca_abi::el3::MemoryBank;
    use rmm_core::sim::SimPlatform;
    use rmm_core::{GranuleTable, Rmm};

    struct Steps(u64);
    impl Clock for Steps {
        fn ticks(&mut self) -> u64 {
            self.0 += 1;
            self.0
        }
        fn frequency(&self) -> u64 {
            1_000_000_000
        }
    }

    #[test]
    fn benchmarks_run_against_the_rmm_core() {
        let banks = [MemoryBank {
            base: 0x8000_0000,
            size: 0x0200_0000,
        }];
        let sim = SimPlatform::new(&banks);
        let storage = rmm_core::sim::granule_storage(&banks);
        let sro = rmm_core::SroStorage::new();
        let rmm = Rmm::new(&sim, GranuleTable::new(&banks, &storage).unwrap(), &sro).unwrap();
        let mut out = String::new();
        let mut rmi = Rmi::new(Direct(&rmm), &mut out);
        rmi.call(RmiFid::RMM_ACTIVATE, &[]);
        assert!(delegation(&mut rmi, &mut Steps(0), 0x8000_0000, 64));
        let plan = crate::realm::RealmPlan {
            pool_base: 0x8040_0000,
            pool_size: 0x0100_0000,
        };
        let t = realm_ops(&mut rmi, &mut Steps(0), &mut Mem(&sim), &plan);
        assert_eq!(t.failed, 0, "{out}");
        assert_eq!(
            out.lines().filter(|l| l.starts_with("BENCH ")).count(),
            10,
            "{out}"
        );
        // Every timed region is named, in order, for `cargo xtask bench --profile`: five
        // delegation regions, 16 REALM_CREATEs, RTT_CREATE, DATA_MAP_INIT, DATA_MAP, 4
        // REC_CREATEs.
        let regions: Vec<&str> = out.lines().filter(|l| l.starts_with("REGION ")).collect();
        assert_eq!(regions.len(), 5 + 16 + 3 + 4, "{out}");
        // Window numbers only grow (other tests open windows at the same time).
        let numbers: Vec<u64> = regions
            .iter()
            .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
            .collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
        assert!(
            regions[0].ends_with(" rmi_version_round_trip 64"),
            "{}",
            regions[0]
        );
        assert!(regions[5].ends_with(" realm_create 1"), "{}", regions[5]);
    }

    #[test]
    fn delegation_scales_over_calls_of_every_size_and_the_whole_pool() {
        let banks = [MemoryBank {
            base: 0x8000_0000,
            size: 0x0100_0000,
        }];
        let sim = SimPlatform::new(&banks);
        let storage = rmm_core::sim::granule_storage(&banks);
        let sro = rmm_core::SroStorage::new();
        let rmm = Rmm::new(&sim, GranuleTable::new(&banks, &storage).unwrap(), &sro).unwrap();
        let mut out = String::new();
        {
            let mut rmi = Rmi::new(Direct(&rmm), &mut out);
            rmi.call(RmiFid::RMM_ACTIVATE, &[]);
            assert!(delegation_scaling(
                &mut rmi,
                &mut Steps(0),
                0x8000_0000,
                1024
            ));
        }
        let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("BENCH ")).collect();
        let names: Vec<&str> = rows
            .iter()
            .map(|l| l.split_whitespace().nth(1).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "delegate_per_granule_1_per_call",
                "undelegate_per_granule_1_per_call",
                "delegate_per_granule_8_per_call",
                "undelegate_per_granule_8_per_call",
                "delegate_per_granule_64_per_call",
                "undelegate_per_granule_64_per_call",
                "delegate_per_granule_512_per_call",
                "undelegate_per_granule_512_per_call",
                "delegate_per_granule_pool_4m",
                "undelegate_per_granule_pool_4m",
            ]
        );
        assert!(rows[8].contains(" 1024 "), "{}", rows[8]);
        let mut out2 = String::new();
        let mut rmi2 = Rmi::new(Direct(&rmm), &mut out2);
        // Everything went back to NS: the whole pool can be delegated again.
        assert_eq!(
            rmi2.call(RmiFid::GRANULE_RANGE_DELEGATE, &[0x8000_0000, 0x8040_0000])
                .status(),
            Some(RmiStatus::Success)
        );
        // A pool smaller than one 512-granule call is refused, not overrun.
        assert!(!delegation_scaling(
            &mut rmi2,
            &mut Steps(0),
            0x8080_0000,
            511
        ));
    }

    #[test]
    fn a_whole_pool_is_delegated_and_undelegated_and_named_by_its_size() {
        let banks = [MemoryBank {
            base: 0x8000_0000,
            size: 0x0200_0000,
        }];
        let sim = SimPlatform::new(&banks);
        let storage = rmm_core::sim::granule_storage(&banks);
        let sro = rmm_core::SroStorage::new();
        let rmm = Rmm::new(&sim, GranuleTable::new(&banks, &storage).unwrap(), &sro).unwrap();
        let mut out = String::new();
        {
            let mut rmi = Rmi::new(Direct(&rmm), &mut out);
            rmi.call(RmiFid::RMM_ACTIVATE, &[]);
            assert!(delegation_pool(&mut rmi, &mut Steps(0), 0x8000_0000, 4096));
            // Nothing left delegated: the pool can be delegated again.
            assert!(delegation_pool(&mut rmi, &mut Steps(0), 0x8100_0000, 4096));
            // Empty, overflowing or untracked pools are errors.
            assert!(!delegation_pool(&mut rmi, &mut Steps(0), 0x8000_0000, 0));
            assert!(!delegation_pool(
                &mut rmi,
                &mut Steps(0),
                u64::MAX - 0xfff,
                2
            ));
            assert!(!delegation_pool(&mut rmi, &mut Steps(0), 0x8100_0000, 8192));
        }
        let names: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("BENCH "))
            .map(|l| l.split_whitespace().nth(1).unwrap())
            .collect();
        assert_eq!(
            &names[..4],
            [
                "delegate_per_granule_pool_16m",
                "undelegate_per_granule_pool_16m",
                "delegate_per_granule_pool_16m",
                "undelegate_per_granule_pool_16m",
            ]
        );
        assert!(
            out.contains("BENCH delegate_per_granule_pool_16m 4096 "),
            "{out}"
        );
    }

    #[test]
    fn rec_exit_round_trips_are_reported_per_row_that_occurred() {
        let mut stats = ExitStats::default();
        stats.record(ExitClass::Mmio, 100);
        stats.record(ExitClass::Mmio, 300);
        stats.record(ExitClass::HostCall, 1000);
        stats.record(ExitClass::Wfi, 40);
        stats.record(ExitClass::Wfe, 20);
        stats.record(ExitClass::Sgi, 8);
        let mut out = String::new();
        rec_exits(&mut out, &Steps(0), &stats);
        assert_eq!(
            out,
            "BENCH rec_enter_mmio 2 100\nBENCH rec_enter_mmio_mean 2 200\n\
             BENCH rec_enter_host_call 1 1000\nBENCH rec_enter_host_call_mean 1 1000\n\
             BENCH rec_enter_wfx 2 20\nBENCH rec_enter_wfx_mean 2 30\n\
             BENCH rec_enter_sgi 1 8\nBENCH rec_enter_sgi_mean 1 8\n"
        );
        let mut none = String::new();
        rec_exits(&mut none, &Steps(0), &ExitStats::default());
        assert_eq!(none, "", "no exits, no rows");
    }

    #[test]
    fn every_exit_class_is_in_exactly_one_row_and_the_names_are_unique() {
        for class in ExitClass::ALL {
            let rows = REC_EXIT_ROWS
                .iter()
                .filter(|(_, cs)| cs.contains(&class))
                .count();
            assert_eq!(rows, 1, "{class:?}");
        }
        let mut names: Vec<&str> = REC_EXIT_ROWS.iter().map(|r| r.0).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), REC_EXIT_ROWS.len());
    }

    #[test]
    fn rsi_timings_become_instructions_per_call() {
        let t = |name, calls, ticks, counter_hz| {
            Some(RsiTiming {
                name,
                calls,
                ticks,
                counter_hz,
            })
        };
        let mut out = String::new();
        rsi_timings(
            &mut out,
            &[
                // 62.5 MHz: 16 ns per tick.
                t("rsi_version_in_realm", 64, 5_000, 62_500_000),
                None,
                // Nothing to divide by: 0, never a panic.
                t("zero_calls", 0, 5, 1),
                t("zero_hz", 3, 5, 0),
                t("huge", 1, u64::MAX, 1),
            ],
        );
        assert_eq!(
            out,
            "BENCH rsi_version_in_realm 64 1250\nBENCH zero_calls 0 0\nBENCH zero_hz 3 0\n\
             BENCH huge 1 18446744073709551615\n"
        );
    }
}
