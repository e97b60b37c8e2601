//! The hostile host against the RMM core in-process: one fuzzer, two fuzzers on two threads
//! sharing one RMM, and the checks themselves shown to catch an RMM that misbehaves.

extern crate std;

use super::*;
use crate::rmi::{Conduit, HostMem};
use cca_abi::el3::MemoryBank;
use cca_abi::rmi::RmiFid;
use rmm_core::pa::Pa;
use rmm_core::run::{ExitKind, RealmContext, RealmExit, TimerState};
use rmm_core::sim::{Pas, SimPlatform};
use rmm_core::{GranuleTable, Rmm};
use std::boxed::Box;
use std::sync::atomic::AtomicU64 as Counter;

/// The machine: a small bank standing for the carve-out (never NS), a bank standing for
/// EL3's memory (Root), and the DRAM the fuzzers use.
const CARVEOUT: Span = Span::new(0x4010_0000, 64);
const ROOT: Span = Span::new(0x0e00_0000, 16);
const DRAM: u64 = 0x8000_0000;
const DRAM_GRANULES: u64 = 4096;
const POOL0: Span = Span::new(DRAM, 1024);
const POOL1: Span = Span::new(DRAM + 1024 * G, 512);
const SCRATCH0: u64 = DRAM + 1536 * G;
const SCRATCH1: u64 = SCRATCH0 + SCRATCH_PAGES * G;
const CANARIES: Span = Span::new(SCRATCH1 + SCRATCH_PAGES * G, 8);
/// Granules for the canonical realm after the sweep (2 MiB aligned, 8 MiB).
const CANONICAL: u64 = DRAM + 0x80_0000;

fn banks() -> [MemoryBank; 3] {
    [
        MemoryBank {
            base: ROOT.base,
            size: ROOT.granules * G,
        },
        MemoryBank {
            base: CARVEOUT.base,
            size: CARVEOUT.granules * G,
        },
        MemoryBank {
            base: DRAM,
            size: DRAM_GRANULES * G,
        },
    ]
}

fn hostile() -> Hostile {
    Hostile {
        carveout: CARVEOUT,
        root: ROOT,
        mmio: [
            0x0800_0000,
            0x080a_0000,
            0x0900_0000,
            0x0901_0000,
            0x0a00_0000,
            0x1000_0000,
            0x40_1000_0000,
            0,
        ],
        dram_base: 0x4000_0000,
        dram_end: DRAM + DRAM_GRANULES * G,
    }
}

fn plan(seed: u64, pool: Span, other: Span, scratch: u64, lifecycles: bool) -> FuzzPlan {
    FuzzPlan {
        seed,
        pool,
        other_pool: other,
        scratch,
        canaries: CANARIES,
        hostile: hostile(),
        through_el3: false,
        lifecycles,
        cpus: 2,
    }
}

/// The simulated machine with an activated RMM on it.
struct Machine {
    sim: SimPlatform,
    storage: std::vec::Vec<core::sync::atomic::AtomicU16>,
    sro: rmm_core::SroStorage,
}

impl Machine {
    fn new() -> Self {
        let b = banks();
        let sim = SimPlatform::new(&b);
        for i in 0..ROOT.granules {
            sim.set_pas(Pa::new(ROOT.granule(i)), Pas::Root);
        }
        for i in 0..CARVEOUT.granules {
            sim.set_pas(Pa::new(CARVEOUT.granule(i)), Pas::Secure);
        }
        Self {
            storage: rmm_core::sim::granule_storage(&b),
            sro: rmm_core::SroStorage::new(),
            sim,
        }
    }

    fn rmm(&self) -> Rmm<'_, &SimPlatform> {
        let b = banks();
        let rmm = Rmm::new(
            &self.sim,
            GranuleTable::new(&b, &self.storage).unwrap(),
            &self.sro,
        )
        .unwrap();
        let mut regs = [0u64; 8];
        regs[0] = u64::from(RmiFid::RMM_ACTIVATE.fid());
        assert_eq!(rmm.handle_rmi(&regs)[0], 0);
        rmm
    }
}

/// The RMM core as the conduit; what a realm does when a REC runs is scripted: an RSI call
/// now and then, then an exit the host must handle.
struct Direct<'a, 'b> {
    rmm: &'a Rmm<'b, &'a SimPlatform>,
    sim: &'a SimPlatform,
    rng: Rng,
    /// Makes the first successful delegation report one granule more than it moved.
    lie_once: bool,
    /// Several threads share the script: leave steps a failed entry did not use (they end
    /// with an exit, so whichever REC runs them exits).
    shared_script: bool,
}

fn exit(kind: ExitKind, esr: u64, ipa: u64) -> RealmExit {
    RealmExit {
        kind,
        esr,
        far: ipa,
        hpfar: (ipa >> 12) << 4,
        timers: TimerState::default(),
    }
}

impl Conduit for Direct<'_, '_> {
    fn smc(&mut self, regs: [u64; 8]) -> [u64; 8] {
        if super::check::fid_of(regs[0]) == Some(RmiFid::REC_ENTER) {
            if self.rng.chance(30) {
                self.sim.push_realm_step(Box::new(|ctx: &mut RealmContext| {
                    ctx.gprs[0] = u64::from(cca_abi::rsi::VERSION);
                    ctx.gprs[1] = 0x1_0001;
                    exit(ExitKind::Sync, 0x17 << 26 | 1 << 25, 0)
                }));
            }
            if self.rng.chance(20) {
                // An HVC: the RMM injects an UNDEFINED exception and runs the realm on.
                self.sim.push_realm_step(Box::new(|_: &mut RealmContext| {
                    exit(ExitKind::Sync, 0x16 << 26 | 1 << 25, 0)
                }));
            }
            let last = match self.rng.below(2) {
                0 => exit(ExitKind::Irq, 0, 0),
                // The realm's load from an unmapped unprotected IPA.
                _ => exit(
                    ExitKind::Sync,
                    0x24 << 26 | 1 << 25 | 1 << 24 | 3 << 22 | 0x07,
                    gen::UNPROT + 0x10_0000,
                ),
            };
            self.sim
                .push_realm_step(Box::new(move |_: &mut RealmContext| last));
        }
        let mut out = self.rmm.handle_rmi(&regs);
        if !self.shared_script {
            self.sim.clear_realm_steps();
        }
        if self.lie_once
            && super::check::fid_of(regs[0]) == Some(RmiFid::GRANULE_RANGE_DELEGATE)
            && out[0] == 0
        {
            self.lie_once = false;
            out[1] += G;
        }
        out
    }
}

/// The host's view of the simulated memory. With `dirty_undelegated`, a granule the RMM
/// returns reads back with one word set, as if the RMM had not scrubbed it.
struct Mem<'a> {
    sim: &'a SimPlatform,
    dirty_undelegated: bool,
}

impl HostMem for Mem<'_> {
    fn write(&mut self, pa: u64, data: &[u8]) {
        if let Err(e) = self.sim.host_write(Pa::new(pa), data) {
            panic!("the fuzzer wrote {pa:#x}, which is not NS: {e:?}");
        }
    }

    fn read(&mut self, pa: u64, buf: &mut [u8]) {
        self.sim
            .host_read(Pa::new(pa), buf)
            .expect("the fuzzer reads only NS pages");
        if self.dirty_undelegated && POOL0.contains(pa) && !buf.is_empty() {
            buf[0] |= 1;
        }
    }

    fn probe_read(&mut self, pa: u64) -> Option<u64> {
        let mut w = [0u8; 8];
        self.sim
            .host_read(Pa::new(pa), &mut w)
            .ok()
            .map(|()| u64::from_le_bytes(w))
    }
}

/// A machine without a timer or list registers.
struct NoHw {
    t: u64,
}

impl FuzzHw for NoHw {
    fn arm_timer(&mut self, _: Option<u64>) {}
    fn now(&mut self) -> u64 {
        self.t += 1;
        self.t
    }
    fn hz(&mut self) -> u64 {
        1_000_000
    }
    fn num_lrs(&mut self) -> usize {
        0
    }
    fn write_lr(&mut self, _: usize, _: u64) {}
}

impl<'a, 'b> Direct<'a, 'b> {
    /// The core as the conduit, its realm script drawn from `seed`.
    fn new(rmm: &'a Rmm<'b, &'a SimPlatform>, sim: &'a SimPlatform, seed: u64) -> Self {
        Self {
            rmm,
            sim,
            rng: Rng::new(seed),
            lie_once: false,
            shared_script: false,
        }
    }
}

impl<'a> Mem<'a> {
    /// The host's honest view of the simulated memory.
    fn new(sim: &'a SimPlatform) -> Self {
        Self {
            sim,
            dirty_undelegated: false,
        }
    }
}

/// What one fuzzer calls through: the core, the memory and a machine without a timer.
struct Rig<'a, 'b> {
    conduit: Direct<'a, 'b>,
    mem: Mem<'a>,
    hw: NoHw,
}

impl<'a, 'b> Rig<'a, 'b> {
    fn new(m: &'a Machine, rmm: &'a Rmm<'b, &'a SimPlatform>, seed: u64) -> Self {
        Self {
            conduit: Direct::new(rmm, &m.sim, seed),
            mem: Mem::new(&m.sim),
            hw: NoHw { t: 0 },
        }
    }

    fn io<'s>(&'s mut self, shared: &'s Shared) -> Io<'s, Direct<'a, 'b>, Mem<'a>, NoHw> {
        Io {
            conduit: &mut self.conduit,
            mem: &mut self.mem,
            hw: &mut self.hw,
            shared,
        }
    }
}

fn report(f: &Fuzzer) -> std::string::String {
    let mut s = std::string::String::new();
    f.report(&mut s, "test");
    s
}

/// Every granule the RMM tracks is NS again (the others are printed).
fn all_ns(rmm: &Rmm<'_, &SimPlatform>) -> bool {
    let mut ok = true;
    rmm.for_each_sro(|s| {
        std::println!(
            "operation {} ({}, sealed {}) in flight on {:#x} ({} auxiliary granules held)",
            s.handle,
            s.command.name(),
            s.sealed,
            s.object,
            s.aux_held
        );
        ok = false;
    });
    for g in rmm.granules().iter() {
        if g.state_unlocked() != rmm_core::granule::GranuleState::Ns {
            std::println!("granule {:#x} is {}", g.pa().get(), g.state_unlocked());
            ok = false;
        }
    }
    ok
}

/// `CCA_FUZZ_SEED=n` changes the streams.
fn seed() -> u64 {
    std::env::var("CCA_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn calls() -> u64 {
    std::env::var("CCA_FUZZ_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

#[test]
fn a_hostile_host_finds_nothing_and_every_granule_comes_back() {
    let m = Machine::new();
    let rmm = m.rmm();
    let mut f = Fuzzer::new(plan(1 ^ seed(), POOL0, POOL1, SCRATCH0, true));
    let shared = Shared::new();
    let mut rig = Rig::new(&m, &rmm, 7);
    f.prepare(&mut rig.mem, true);
    let mut io = rig.io(&shared);
    f.run(&mut io, calls());
    let sweep = f.finish(&mut io, &mut []);
    let r = report(&f);
    std::println!("{r}\n{sweep:?}");
    all_ns(&rmm);
    assert_eq!(f.findings_total(), 0, "{r}");
    assert_eq!(sweep.stuck_granules, 0);
    assert_eq!(sweep.stuck_realms, 0);
    assert!(all_ns(&rmm), "the RMM kept granules after the sweep");
    let s = f.stats();
    assert!(s.lifecycles >= 3, "{r}");
    assert!(s.entered >= 3, "{r}");
    assert!(s.delegated > 100 && s.undelegated > 100, "{r}");
    assert!(sweep.scrubbed > 100, "{sweep:?}");
    for st in [
        cca_abi::rmi::RmiStatus::Success,
        cca_abi::rmi::RmiStatus::ErrorInput,
        cca_abi::rmi::RmiStatus::ErrorRtt,
        cca_abi::rmi::RmiStatus::ErrorRealm,
        cca_abi::rmi::RmiStatus::Incomplete,
        cca_abi::rmi::RmiStatus::ErrorNotSupported,
    ] {
        assert!(s.by_status[st as usize] > 0, "never {}: {r}", st.name());
    }
    assert!(s.unknown > 0);
    // The canonical realm still builds and tears down, every granule scrubbed.
    let mut out = std::string::String::new();
    let mut rmi = crate::rmi::Rmi::new(Direct::new(&rmm, &m.sim, 3), &mut out);
    let t = crate::realm::run(
        &mut rmi,
        &mut Mem::new(&m.sim),
        &crate::realm::RealmPlan {
            pool_base: CANONICAL,
            pool_size: 0x80_0000,
        },
    );
    assert_eq!(t.failed, 0, "{out}");
    assert!(all_ns(&rmm));
}

#[test]
fn two_hostile_hosts_on_two_threads_share_one_rmm() {
    let m = Machine::new();
    let rmm = m.rmm();
    let shared = Shared::new();
    let mut f0 = Fuzzer::new(plan(11 ^ seed(), POOL0, POOL1, SCRATCH0, true));
    let mut f1 = Fuzzer::new(plan(12 ^ seed(), POOL1, POOL0, SCRATCH1, false));
    {
        let mut mem = Mem::new(&m.sim);
        f0.prepare(&mut mem, true);
        f1.prepare(&mut mem, false);
    }
    let n = calls() / 2;
    let done = Counter::new(0);
    std::thread::scope(|s| {
        for (k, f) in [&mut f0, &mut f1].into_iter().enumerate() {
            let (m, rmm, shared, done) = (&m, &rmm, &shared, &done);
            s.spawn(move || {
                let mut rig = Rig::new(m, rmm, 100 + k as u64);
                rig.conduit.shared_script = true;
                f.run(&mut rig.io(shared), n);
                done.fetch_add(1, Ordering::Relaxed);
            });
        }
    });
    assert_eq!(done.load(Ordering::Relaxed), 2);
    let mut rig = Rig::new(&m, &rmm, 5);
    let mut io = rig.io(&shared);
    let r1 = report(&f1);
    let sweep = f0.finish(&mut io, &mut [&mut f1]);
    let r0 = report(&f0);
    std::println!("{r0}\n{r1}\n{sweep:?}");
    all_ns(&rmm);
    assert_eq!(f0.findings_total(), 0, "{r0}");
    assert_eq!(sweep.stuck_granules + sweep.stuck_realms, 0, "{sweep:?}");
    assert!(all_ns(&rmm), "the RMM kept granules after the sweep");
    assert!(f1.stats().delegated > 50, "{r1}");
}

#[test]
fn targeted_races_hit_the_published_realm_and_the_sweep_cleans_up() {
    // The two fuzzers interleaved call by call on one thread (deterministic): the second
    // one's targeted races run the first one's RECs and put tables into its realm.
    let m = Machine::new();
    let rmm = m.rmm();
    let shared = Shared::new();
    let mut f0 = Fuzzer::new(plan(21 ^ seed(), POOL0, POOL1, SCRATCH0, true));
    let mut f1 = Fuzzer::new(plan(22 ^ seed(), POOL1, POOL0, SCRATCH1, false));
    let (mut rig0, mut rig1) = (Rig::new(&m, &rmm, 200), Rig::new(&m, &rmm, 201));
    f0.prepare(&mut rig0.mem, true);
    f1.prepare(&mut rig1.mem, false);
    let mut io0 = rig0.io(&shared);
    let mut io1 = rig1.io(&shared);
    let n = calls() / 2;
    while f0.stats().calls < n || f1.stats().calls < n {
        f0.step(&mut io0);
        f1.step(&mut io1);
    }
    let r1 = report(&f1);
    let sweep = f0.finish(&mut io0, &mut [&mut f1]);
    let r0 = report(&f0);
    std::println!("{r0}\n{r1}\n{sweep:?}");
    assert_eq!(f0.findings_total(), 0, "{r0}");
    assert_eq!(sweep.stuck_granules + sweep.stuck_realms, 0, "{sweep:?}");
    assert!(all_ns(&rmm), "the RMM kept granules after the sweep");
    let s = f1.stats();
    assert!(s.races > 100, "{r1}");
    assert!(s.race_entered > 0, "{r1}");
    assert!(s.race_rtts > 0, "{r1}");
    assert!(f0.stats().lifecycles > 0, "{r0}");
}

#[test]
fn feeding_a_stale_operation_gives_the_granules_back() {
    // The sweep drives the handles it saw, and a handle may be stale (the operation ended,
    // or the other CPU moved it on): a donation the RMM refuses must not leave the granules
    // delegated, or a sweep with many stale handles drains the pool (the 10^7-call run's
    // nine findings).
    let m = Machine::new();
    let rmm = m.rmm();
    let mut f = Fuzzer::new(plan(5, POOL0, POOL1, SCRATCH0, false));
    let shared = Shared::new();
    let mut rig = Rig::new(&m, &rmm, 1);
    f.prepare(&mut rig.mem, true);
    let mut io = rig.io(&shared);
    let donate16 = cca_abi::rmi::DonateReq {
        size: cca_abi::rmi::BlockSize::L3_4K,
        count: 16,
        contig: false,
        undelegated: false,
    }
    .encode();
    let wants_donation = cca_abi::rmi::RmiReturn::with_index(
        cca_abi::rmi::RmiStatus::Incomplete,
        cca_abi::rmi::mem_req::DONATE,
    )
    .to_reg();
    for handle in 0..40 {
        let r = f.drive_sro(&mut io, [wants_donation, handle, donate16, 0, 0, 0, 0, 0]);
        assert_eq!(r[0], cca_abi::rmi::RmiStatus::ErrorInput as u64, "{r:x?}");
    }
    let held = (0..POOL0.granules)
        .filter(|&i| f.shadow.delegated(POOL0.granule(i)))
        .count();
    assert_eq!(
        held, 0,
        "granules offered to stale operations stayed delegated"
    );
    assert!(all_ns(&rmm));
    assert_eq!(f.findings_total(), 0, "{}", report(&f));
}

#[test]
fn the_checks_catch_a_misbehaving_rmm() {
    // A delegation that claims one granule more than it moved.
    let m = Machine::new();
    let rmm = m.rmm();
    let mut f = Fuzzer::new(plan(21, POOL0, Span::new(0, 0), SCRATCH0, true));
    let shared = Shared::new();
    let mut rig = Rig::new(&m, &rmm, 1);
    rig.conduit.lie_once = true;
    f.prepare(&mut rig.mem, true);
    let mut io = rig.io(&shared);
    f.run(&mut io, 2_000);
    assert!(
        f.findings()
            .iter()
            .any(|x| x.what.contains("moved granules the host does not own")),
        "{}",
        report(&f)
    );

    // Undelegated granules that read back unscrubbed.
    let m = Machine::new();
    let rmm = m.rmm();
    let mut f = Fuzzer::new(plan(22, POOL0, Span::new(0, 0), SCRATCH0, true));
    let mut rig = Rig::new(&m, &rmm, 1);
    rig.mem.dirty_undelegated = true;
    f.prepare(&mut rig.mem, true);
    let mut io = rig.io(&shared);
    f.run(&mut io, 2_000);
    assert!(
        f.findings()
            .iter()
            .any(|x| x.what.contains("without being scrubbed")),
        "{}",
        report(&f)
    );

    // A watched page the RMM (here: the test) wrote.
    let m = Machine::new();
    let rmm = m.rmm();
    let mut f = Fuzzer::new(plan(23, POOL0, Span::new(0, 0), SCRATCH0, false));
    let mut rig = Rig::new(&m, &rmm, 1);
    f.prepare(&mut rig.mem, true);
    m.sim
        .host_write(Pa::new(CANARIES.granule(3) + 0x100), &[0u8; 8])
        .unwrap();
    let mut io = rig.io(&shared);
    f.finish(&mut io, &mut []);
    // The report names the first changed word, what it holds and how many words changed.
    assert!(
        f.findings()
            .iter()
            .any(|x| x.what.contains("watched NS page changed")
                && x.got[..3] == [CANARIES.granule(3) + 0x100, 0, 1]),
        "{}",
        report(&f)
    );
}

#[test]
fn an_rmm_that_answers_garbage_is_reported() {
    struct Liar;
    impl Conduit for Liar {
        fn smc(&mut self, regs: [u64; 8]) -> [u64; 8] {
            // Succeeds at everything, and answers unknown numbers with SUCCESS too.
            [0, regs[2], 0, 0, 0, 0, 0, 0]
        }
    }
    let m = Machine::new();
    let mut f = Fuzzer::new(plan(31, POOL0, Span::new(0, 0), SCRATCH0, false));
    let mut mem = Mem::new(&m.sim);
    f.prepare(&mut mem, true);
    let shared = Shared::new();
    let mut io = Io {
        conduit: &mut Liar,
        mem: &mut mem,
        hw: &mut NoHw { t: 0 },
        shared: &shared,
    };
    f.run(&mut io, 500);
    let r = report(&f);
    for what in [
        "a command whose answer is fixed gave another",
        "never a granule",
        "RMI_VERSION",
        "no command has did not get SMC_UNKNOWN",
    ] {
        assert!(
            f.findings().iter().any(|x| x.what.contains(what)) || f.findings_total() > 16,
            "{what}: {r}"
        );
    }
    assert!(f.findings_total() > 16);
}

#[test]
fn the_random_stream_is_deterministic() {
    let mut a = Rng::new(42);
    let mut b = Rng::new(42);
    for _ in 0..100 {
        assert_eq!(a.bits(), b.bits());
    }
    let mut c = Rng::new(43);
    assert_ne!(Rng::new(42).bits(), c.bits());
    assert_eq!(Rng::new(1).below(0), 0);
    for _ in 0..1000 {
        assert!(a.below(7) < 7);
    }
    let s = Span::new(0x1000, 2);
    assert_eq!(s.end(), 0x3000);
    assert_eq!(s.index(0x2fff), Some(1));
    assert_eq!(s.index(0x3000), None);
    assert!(hostile().never_valid(CARVEOUT.base));
    assert!(hostile().never_valid(ROOT.base));
    assert!(hostile().never_valid(DRAM + 8));
    assert!(!hostile().never_valid(DRAM));
}
