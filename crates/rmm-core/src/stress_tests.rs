//! Concurrency and randomized model-based tests of the whole core.

extern crate std;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::vec::Vec;

use cca_abi::rmi::{RmiFid, RmiStatus, RmmState};
use cca_abi::smccc::{SMC_UNKNOWN, SVE_HINT};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::features::feature_registers;
use crate::granule::GranuleState;
use crate::sim::{Pas, SimPlatform, SIM_CPU};
use crate::test_util::*;
use crate::{Regs, Rmm, MAX_GRANULES_PER_CALL};

/// A tiny deterministic random number generator for the thread tests.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Checks the machine-wide invariants: every granule unlocked, in NS or DELEGATED, with a
/// GPT PAS that matches, and every DELEGATED granule all zeroes and unreadable by the host.
fn check_consistent(rmm: &Rmm<'_, &SimPlatform>, sim: &SimPlatform) -> usize {
    let mut delegated = 0;
    for g in rmm.granules().iter() {
        assert!(!g.is_locked(), "granule {} left locked", g.pa());
        match g.state_unlocked() {
            GranuleState::Ns => assert_ne!(
                sim.pas(g.pa()),
                Pas::Realm,
                "NS granule {} is Realm PAS",
                g.pa()
            ),
            GranuleState::Delegated => {
                delegated += 1;
                assert_eq!(sim.pas(g.pa()), Pas::Realm, "delegated granule {}", g.pa());
                assert!(
                    sim.is_zero(g.pa()),
                    "delegated granule {} is not zero",
                    g.pa()
                );
                assert!(
                    sim.host_read(g.pa(), &mut [0u8; 1]).is_err(),
                    "host reads realm granule {}",
                    g.pa()
                );
            }
            s => panic!("granule {} left in state {s}", g.pa()),
        }
    }
    delegated
}

#[test]
fn concurrent_overlapping_delegate_and_undelegate_keep_every_granule_consistent() {
    let f = Fixture::new();
    let rmm = f.active_rmm();
    // Host data everywhere, so a missed scrub shows.
    for i in 0..B0_GRANULES {
        f.sim.host_write(pa(b0(i)), &[0x77; 4096]).unwrap();
    }
    let net = AtomicU64::new(0);
    let threads = 4;
    std::thread::scope(|s| {
        for t in 0..threads {
            let (rmm, net) = (&rmm, &net);
            s.spawn(move || {
                let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ (t + 1));
                let (mut up, mut down) = (0u64, 0u64);
                for _ in 0..400 {
                    // Overlapping ranges over bank 0 and a little beyond its end.
                    let base = b0(rng.below(B0_GRANULES));
                    let top = base + (1 + rng.below(8)) * G;
                    let fid = if rng.below(2) == 0 {
                        RmiFid::GRANULE_RANGE_DELEGATE
                    } else {
                        RmiFid::GRANULE_RANGE_UNDELEGATE
                    };
                    let out = call(rmm, fid, &[base, top]);
                    if out[0] == 0 {
                        assert!(out[1] > base && out[1] <= top);
                        let n = (out[1] - base) / G;
                        if fid == RmiFid::GRANULE_RANGE_DELEGATE {
                            up += n;
                        } else {
                            down += n;
                        }
                    } else {
                        assert_eq!(out[..2], [RmiStatus::ErrorInput as u64, base]);
                    }
                }
                // Every granule this thread moved, net.
                net.fetch_add(up.wrapping_sub(down), Ordering::SeqCst);
            });
        }
    });
    let delegated = check_consistent(&rmm, &f.sim) as u64;
    assert_eq!(
        delegated,
        net.load(Ordering::SeqCst),
        "granules delegated or undelegated twice, or lost"
    );
    // The NS ones still hold host data or zeroes from a round trip, never anything else.
    for i in 0..B0_GRANULES {
        let mut b = [0u8; 1];
        if f.sim.host_read(pa(b0(i)), &mut b).is_ok() {
            assert!(b[0] == 0x77 || b[0] == 0);
        }
    }
}

#[test]
fn concurrent_delegation_of_one_range_moves_each_granule_once() {
    let f = Fixture::new();
    let rmm = f.active_rmm();
    let total = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            let (rmm, total) = (&rmm, &total);
            s.spawn(move || {
                let top = b1(B1_GRANULES);
                let mut cur = B1;
                let mut mine = 0;
                while cur < top {
                    let out = call(rmm, RmiFid::GRANULE_RANGE_DELEGATE, &[cur, top]);
                    if out[0] == 0 {
                        mine += (out[1] - cur) / G;
                        cur = out[1];
                    } else {
                        // Another CPU has this granule; skip it.
                        cur += G;
                    }
                }
                total.fetch_add(mine, Ordering::SeqCst);
            });
        }
    });
    assert_eq!(total.load(Ordering::SeqCst), B1_GRANULES);
    assert_eq!(
        f.sim.delegate_calls() as u64,
        B1_GRANULES,
        "a granule was offered to EL3 twice"
    );
    assert_eq!(check_consistent(&rmm, &f.sim) as u64, B1_GRANULES);
}

/// One step of the randomized test.
#[derive(Clone, Debug)]
enum Op {
    /// An RMI call with these registers (x0 may be anything).
    Call(Regs),
    /// The host writes `byte` over a granule (tracked addresses only).
    HostWrite(u64, u8),
    /// The host writes an `RmiRmmConfig` at an address, then calls `RMM_CONFIG_SET` on it.
    ConfigSet(u64, u64, u64),
}

/// Secure granules of the randomized test's machine.
fn secure_granules() -> [u64; 2] {
    [b0(3), b1(5)]
}

fn fid_strategy() -> impl Strategy<Value = u64> {
    let implemented = prop::sample::select(std::vec![
        RmiFid::VERSION,
        RmiFid::FEATURES,
        RmiFid::RMM_CONFIG_SET,
        RmiFid::RMM_CONFIG_GET,
        RmiFid::RMM_ACTIVATE,
        RmiFid::GRANULE_TRACKING_GET,
        RmiFid::GPT_L1_CREATE,
        RmiFid::GRANULE_RANGE_DELEGATE,
        RmiFid::GRANULE_RANGE_UNDELEGATE,
    ]);
    prop_oneof![
        6 => (implemented, any::<bool>()).prop_map(|(f, sve)| u64::from(f.fid() | if sve { SVE_HINT } else { 0 })),
        1 => prop::sample::select(RmiFid::ALL).prop_map(|f| u64::from(f.fid())),
        1 => (0x150u64..0x2d0).prop_map(|n| 0xC400_0000 | n),
        1 => any::<u64>(),
    ]
    .prop_filter("realm commands are modelled by the realm streams", |&x0| {
        RmiFid::from_fid((x0 as u32) & !SVE_HINT).is_none_or(|f| !is_realm_command(f))
    })
}

/// The commands of the realm issue (modelled by the realm streams, not the boot model).
fn is_realm_command(f: RmiFid) -> bool {
    use cca_abi::rmi::RmiClass;
    f.class() == RmiClass::Core
        && !matches!(
            f,
            RmiFid::VERSION
                | RmiFid::FEATURES
                | RmiFid::RMM_CONFIG_SET
                | RmiFid::RMM_CONFIG_GET
                | RmiFid::RMM_ACTIVATE
                | RmiFid::GRANULE_TRACKING_GET
                | RmiFid::GPT_L1_CREATE
                | RmiFid::GRANULE_RANGE_DELEGATE
                | RmiFid::GRANULE_RANGE_UNDELEGATE
                | RmiFid::REC_ENTER
                | RmiFid::PSCI_COMPLETE
        )
}

/// Addresses around the interesting places: both banks, their edges, the gap, zero, the top
/// of the PA space, unaligned ones.
fn addr_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => (0..B0_GRANULES + 2).prop_map(|i| B0 - G + i * G),
        4 => (0..B1_GRANULES + 2).prop_map(|i| B1 - G + i * G),
        1 => prop::sample::select(std::vec![0, G, 1 << 30, 1 << 48, (1 << 48) - G, 0xFFFF_FFFF_FFFF_F000u64]),
        1 => (0..B0_GRANULES * G).prop_map(|o| B0 + o),
        1 => any::<u64>(),
    ]
}

fn top_strategy(base: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => (0u64..(MAX_GRANULES_PER_CALL + 100)).prop_map(move |n| base.wrapping_add(n * G)),
        1 => addr_strategy(),
        1 => Just(base.wrapping_add(G + 1)),
    ]
}

fn arg_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![3 => addr_strategy(), 1 => prop::sample::select(std::vec![0u64, 1, 2, 4, 5, 0x10000, 0x20000, 0x20001]), 1 => any::<u64>()]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (fid_strategy(), addr_strategy(), prop::array::uniform5(arg_strategy()))
            .prop_flat_map(|(x0, x1, rest)| (Just(x0), Just(x1), top_strategy(x1), Just(rest)))
            .prop_map(|(x0, x1, x2, r)| Op::Call([x0, x1, x2, r[0], r[1], r[2], r[3], r[4]])),
        1 => ((0..B0_GRANULES).prop_map(b0), any::<u8>()).prop_map(|(a, b)| Op::HostWrite(a, b)),
        1 => ((0..B1_GRANULES).prop_map(b1), any::<u8>()).prop_map(|(a, b)| Op::HostWrite(a, b)),
        2 => (addr_strategy(), prop::sample::select(std::vec![0u64, 1, 2]), prop::sample::select(std::vec![0u64, 1, 3]))
            .prop_map(|(a, t, g)| Op::ConfigSet(a, t, g)),
    ]
}

/// The test's own model of the RMM: global state, each granule's state and the first 16
/// bytes the host would read from it.
struct Model {
    active: bool,
    delegated: HashSet<u64>,
    secure: HashSet<u64>,
    head: HashMap<u64, [u8; 16]>,
    tracked: Vec<(u64, u64)>,
    features: [u64; 5],
}

const GLOBAL: u64 = RmiStatus::ErrorGlobal as u64;
const INPUT: u64 = RmiStatus::ErrorInput as u64;

impl Model {
    fn new() -> Self {
        Self {
            active: false,
            delegated: HashSet::new(),
            secure: secure_granules().into_iter().collect(),
            head: HashMap::new(),
            tracked: banks().iter().map(|b| (b.base, b.base + b.size)).collect(),
            features: feature_registers(&SIM_CPU),
        }
    }

    fn tracked(&self, a: u64) -> bool {
        a % G == 0 && self.tracked.iter().any(|&(b, t)| a >= b && a < t)
    }

    /// True when the host (and the RMM on its behalf) can access the page at `a` as NS.
    fn ns_usable(&self, a: u64) -> bool {
        self.tracked(a) && !self.delegated.contains(&a) && !self.secure.contains(&a)
    }

    /// The NS-page checks of CONFIG_GET and CONFIG_SET (state, then the access itself).
    fn ns_page_ok(&self, a: u64) -> bool {
        a != 0 && a % G == 0 && self.ns_usable(a)
    }

    /// The expected registers for an RMI call, updating the model.
    fn expect(&mut self, r: &Regs) -> Regs {
        let mut out = [0, 0, 0, 0, r[4], r[5], r[6], r[7]];
        let fid = (r[0] as u32) & !SVE_HINT;
        let Some(fid) = RmiFid::from_fid(fid) else {
            out[0] = SMC_UNKNOWN;
            return out;
        };
        let allowed = match fid {
            RmiFid::VERSION
            | RmiFid::FEATURES
            | RmiFid::RMM_CONFIG_GET
            | RmiFid::GRANULE_TRACKING_GET => true,
            RmiFid::RMM_CONFIG_SET | RmiFid::RMM_ACTIVATE => !self.active,
            RmiFid::GPT_L1_CREATE
            | RmiFid::GRANULE_RANGE_DELEGATE
            | RmiFid::GRANULE_RANGE_UNDELEGATE => self.active,
            f if matches!(
                f.class(),
                cca_abi::rmi::RmiClass::DeviceAssignment | cca_abi::rmi::RmiClass::Planes
            ) =>
            {
                out[0] = if self.active {
                    RmiStatus::ErrorNotSupported as u64
                } else {
                    GLOBAL
                };
                return out;
            }
            _ => {
                out[0] = SMC_UNKNOWN;
                return out;
            }
        };
        if !allowed {
            out[0] = GLOBAL;
            return out;
        }
        match fid {
            RmiFid::VERSION => {
                out[0] = if r[1] == 0x20000 { 0 } else { INPUT };
                out[1] = 0x20000;
                out[2] = 0x20000;
            }
            RmiFid::FEATURES => {
                out[1] = if r[1] < 5 {
                    self.features[r[1] as usize]
                } else {
                    0
                }
            }
            RmiFid::RMM_CONFIG_GET => {
                if self.ns_page_ok(r[1]) {
                    self.head.insert(r[1], [0; 16]);
                } else {
                    out[0] = INPUT;
                }
            }
            RmiFid::RMM_CONFIG_SET => {
                let ok = self.ns_page_ok(r[1])
                    && self
                        .head
                        .get(&r[1])
                        .is_none_or(|h| h.iter().all(|&b| b == 0));
                out[0] = if ok { 0 } else { INPUT };
            }
            RmiFid::RMM_ACTIVATE => self.active = true,
            RmiFid::GRANULE_TRACKING_GET => {
                let (b, t) = (r[1], r[2]);
                let max = (1u64 << 48) - 1;
                if b > max || t > max || b > t || t - b < G || b % G != 0 || t % G != 0 {
                    out[0] = INPUT;
                } else {
                    out[2] = if self.tracked(b) { 2 } else { 1 };
                    out[3] = t;
                }
            }
            RmiFid::GPT_L1_CREATE => {
                out[0] = if r[1] % (1 << 30) == 0 {
                    RmiStatus::ErrorGpt as u64
                } else {
                    INPUT
                };
            }
            RmiFid::GRANULE_RANGE_DELEGATE | RmiFid::GRANULE_RANGE_UNDELEGATE => {
                let delegate = fid == RmiFid::GRANULE_RANGE_DELEGATE;
                let (b, t) = (r[1], r[2]);
                out[1] = b;
                if b % G != 0 || t % G != 0 || b.checked_add(G).is_none_or(|m| t < m) {
                    out[0] = INPUT;
                    return out;
                }
                let mut a = b;
                let mut n = 0;
                while n < MAX_GRANULES_PER_CALL && a < t {
                    let ok = if delegate {
                        self.ns_usable(a)
                    } else {
                        self.tracked(a) && self.delegated.contains(&a)
                    };
                    if !ok {
                        if n == 0 {
                            out[0] = INPUT;
                            return out;
                        }
                        break;
                    }
                    if delegate {
                        self.delegated.insert(a);
                    } else {
                        self.delegated.remove(&a);
                    }
                    self.head.insert(a, [0; 16]);
                    a += G;
                    n += 1;
                }
                out[1] = a;
            }
            _ => unreachable!(),
        }
        out
    }

    /// Compares every granule with the machine.
    fn check(&self, rmm: &Rmm<'_, &SimPlatform>, sim: &SimPlatform) {
        assert_eq!(rmm.state() == RmmState::Active, self.active);
        for g in rmm.granules().iter() {
            let a = g.pa().get();
            assert!(!g.is_locked(), "granule {a:#x} left locked");
            let st = g.state_unlocked();
            let mut head = [0u8; 16];
            let readable = sim.host_read(g.pa(), &mut head).is_ok();
            if self.delegated.contains(&a) {
                assert_eq!(st, GranuleState::Delegated, "granule {a:#x}");
                assert_eq!(sim.pas(g.pa()), Pas::Realm, "granule {a:#x}");
                assert!(sim.is_zero(g.pa()), "delegated granule {a:#x} is not zero");
                assert!(!readable, "realm granule {a:#x} is readable as NS");
            } else {
                assert_eq!(st, GranuleState::Ns, "granule {a:#x}");
                let pas = if self.secure.contains(&a) {
                    Pas::Secure
                } else {
                    Pas::NonSecure
                };
                assert_eq!(sim.pas(g.pa()), pas, "granule {a:#x}");
                assert_eq!(readable, pas == Pas::NonSecure, "granule {a:#x}");
                if readable {
                    assert_eq!(
                        head,
                        self.head.get(&a).copied().unwrap_or([0; 16]),
                        "NS granule {a:#x} contents"
                    );
                }
            }
        }
    }
}

/// What a stream did, to show the streams reach the interesting paths.
#[derive(Default)]
struct Stats {
    calls: usize,
    moved: u64,
    by_status: HashMap<u64, usize>,
}

fn run_ops(ops: &[Op], stats: &mut Stats) {
    let f = Fixture::new();
    for s in secure_granules() {
        f.sim.set_pas(pa(s), Pas::Secure);
    }
    let rmm = f.rmm();
    let mut model = Model::new();
    for op in ops {
        match *op {
            Op::Call(regs) => {
                let before = model.delegated.len();
                let expected = model.expect(&regs);
                let got = rmm.handle_rmi(&regs);
                assert_eq!(got, expected, "registers of {regs:#x?}");
                stats.calls += 1;
                stats.moved += before.abs_diff(model.delegated.len()) as u64;
                *stats.by_status.entry(got[0]).or_default() += 1;
            }
            Op::HostWrite(a, byte) => {
                let ok = f.sim.host_write(pa(a), &[byte; 4096]).is_ok();
                assert_eq!(ok, model.ns_usable(a), "host write to {a:#x}");
                if ok {
                    model.head.insert(a, [byte; 16]);
                }
            }
            Op::ConfigSet(a, t, g) => {
                if model.ns_page_ok(a) {
                    let mut b = [0u8; 16];
                    b[..8].copy_from_slice(&t.to_le_bytes());
                    b[8..].copy_from_slice(&g.to_le_bytes());
                    f.sim.host_write(pa(a), &b).unwrap();
                    model.head.insert(a, b);
                }
                let regs = [u64::from(RmiFid::RMM_CONFIG_SET.fid()), a, 0, 0, 0, 0, 0, 0];
                let expected = model.expect(&regs);
                let got = rmm.handle_rmi(&regs);
                assert_eq!(got, expected, "CONFIG_SET({a:#x}) with ({t}, {g})");
                stats.calls += 1;
                *stats.by_status.entry(got[0]).or_default() += 1;
            }
        }
        model.check(&rmm, &f.sim);
    }
    take_debug_logs();
}

#[test]
fn randomized_call_streams_match_the_model() {
    // PROPTEST_CASES=n runs more (or fewer) streams.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(96);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let stats = std::sync::Mutex::new(Stats::default());
    let strategy = prop::collection::vec(op_strategy(), 1..250);
    runner
        .run(&strategy, |ops| {
            let mut s = Stats::default();
            run_ops(&ops, &mut s);
            let mut total = stats.lock().unwrap();
            total.calls += s.calls;
            total.moved += s.moved;
            for (k, v) in s.by_status {
                *total.by_status.entry(k).or_default() += v;
            }
            Ok(())
        })
        .unwrap();
    let stats = stats.into_inner().unwrap();
    let count = |x0: u64| stats.by_status.get(&x0).copied().unwrap_or(0);
    std::eprintln!(
        "randomized_call_streams_match_the_model: {} RMI calls in {cases} streams matched the model \
         ({} SUCCESS, {} ERROR_INPUT, {} ERROR_GLOBAL, {} ERROR_GPT, {} SMC_UNKNOWN; {} granules moved)",
        stats.calls,
        count(0),
        count(INPUT),
        count(GLOBAL),
        count(RmiStatus::ErrorGpt as u64),
        count(SMC_UNKNOWN),
        stats.moved
    );
    assert!(count(0) > 0 && count(INPUT) > 0 && count(GLOBAL) > 0 && count(SMC_UNKNOWN) > 0);
    assert!(stats.moved > 0, "no stream moved a granule");
}
