//! Concurrency and randomized model-based tests of the whole core.

extern crate std;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::vec;
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
                    sim.holds_no_realm_data(g.pa()),
                    "delegated granule {} holds realm data",
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
    /// A realm-issue command with arguments drawn from small pools, so streams reach deep
    /// states (realms with tables, data, RECs, operations in flight).
    Realm(RealmOp),
}

/// Realm commands with pool-drawn arguments. Granules are `pool(i)`, IPAs `ipa(i)`.
#[derive(Clone, Debug)]
enum RealmOp {
    Delegate {
        first: u64,
        n: u64,
    },
    Undelegate {
        first: u64,
        n: u64,
    },
    Create {
        rd: u64,
        root: u64,
        kind: u8,
    },
    Lifecycle {
        fid: RmiFid,
        rd: u64,
    },
    RttCreate {
        rd: u64,
        rtt: u64,
        ipa: u64,
        level: u64,
    },
    RttOp {
        fid: RmiFid,
        rd: u64,
        ipa: u64,
        level: u64,
    },
    InitRipas {
        rd: u64,
        base: u64,
        n: u64,
    },
    MapInit {
        rd: u64,
        data: u64,
        ipa: u64,
        flags: u64,
    },
    DataMap {
        rd: u64,
        ipa: u64,
        pa: u64,
        n: u16,
        l2: bool,
        list: bool,
    },
    UnprotMap {
        rd: u64,
        ipa: u64,
        pa: u64,
        n: u16,
    },
    Unmap {
        fid: RmiFid,
        rd: u64,
        ipa: u64,
        n: u64,
        addr_type: u64,
    },
    RecCreate {
        rd: u64,
        rec: u64,
        mpidr: u64,
        flags: u64,
    },
    Donate {
        h: usize,
        first: u64,
        n: u64,
    },
    Reclaim {
        h: usize,
        cap: u64,
    },
    Continue {
        h: usize,
    },
    Cancel {
        h: usize,
    },
    RecDestroy {
        rec: u64,
    },
    SetRipas {
        rd: u64,
        rec: u64,
        base: u64,
        n: u64,
        ram: bool,
        change: bool,
    },
    /// REC_CREATE, OP_MEM_DONATE of 16 granules from `first`, OP_CONTINUE.
    RecFull {
        rd: u64,
        rec: u64,
        first: u64,
        mpidr: u64,
    },
    /// REC_DESTROY, OP_MEM_RECLAIM until done, OP_CONTINUE.
    RecTeardown {
        rec: u64,
    },
    /// A short-lived realm: delegate, REALM_CREATE, (maybe an RTT and a data page),
    /// REALM_TERMINATE, the unmap and RTT_DESTROY, REALM_DESTROY.
    Ephemeral {
        rd: u64,
        with_data: bool,
    },
    /// (Maybe a REC at `rec` with the next index and REALM_ACTIVATE of the stream's realm,
    /// then) REC_ENTER of `rec` with entry `flags`; the realm does `script` and then takes an
    /// IRQ. If it exits with a PSCI request, maybe PSCI_COMPLETE with `status`.
    Enter {
        rec: u64,
        flags: u64,
        enter0: u64,
        script: Vec<Act>,
        setup: bool,
        complete: Option<u64>,
    },
    /// PSCI_COMPLETE.
    PsciComplete {
        calling: u64,
        target: u64,
        status: u64,
    },
}

/// What a scripted realm does in one run (see [`Act::step`]).
#[derive(Clone, Debug)]
enum Act {
    Irq,
    Wfx(bool),
    Hvc,
    /// An SMC with x0..x4.
    Smc([u64; 5]),
    Dabt {
        ipa: u64,
        isv: bool,
        write: bool,
        rt: u64,
    },
    Iabt {
        ipa: u64,
    },
    /// A trapped MSR/MRS with this ISS.
    Sysreg(u64),
}

impl Act {
    fn step(&self) -> crate::sim::RealmStep {
        use crate::run::ExitKind::Sync;
        let il = 1u64 << 25;
        let fault = move |ec: u64, iss: u64, ipa: u64| {
            realm_exit(Sync, (ec << 26) | il | iss, ipa, (ipa >> 12) << 4)
        };
        match *self {
            Act::Irq => irq_step(),
            Act::Wfx(wfe) => std::boxed::Box::new(move |_: &mut crate::run::RealmContext| {
                realm_exit(Sync, (1 << 26) | il | u64::from(wfe), 0, 0)
            }),
            Act::Hvc => std::boxed::Box::new(move |_: &mut crate::run::RealmContext| {
                realm_exit(Sync, (0x16 << 26) | il, 0, 0)
            }),
            Act::Smc(x) => smc_step(x.to_vec()),
            Act::Dabt {
                ipa,
                isv,
                write,
                rt,
            } => {
                let mut iss = 0x07;
                if isv {
                    iss |= (1 << 24) | (3 << 22) | (1 << 15) | (rt << 16);
                }
                if write {
                    iss |= 1 << 6;
                }
                std::boxed::Box::new(move |_: &mut crate::run::RealmContext| fault(0x24, iss, ipa))
            }
            Act::Iabt { ipa } => {
                std::boxed::Box::new(move |_: &mut crate::run::RealmContext| fault(0x20, 0x07, ipa))
            }
            Act::Sysreg(iss) => std::boxed::Box::new(move |_: &mut crate::run::RealmContext| {
                realm_exit(Sync, (0x18 << 26) | il | iss, 0, 0)
            }),
        }
    }
}

/// The REC count of the realm at `rd`, if it is a realm.
fn rec_count(rmm: &Rmm<'_, &SimPlatform>, sim: &SimPlatform, rd: u64) -> Option<u64> {
    use zerocopy::FromBytes;
    if rmm.granules().granule(pa(rd))?.state_unlocked() != GranuleState::Rd {
        return None;
    }
    let page = sim.peek(pa(rd));
    let rd = crate::Rd::read_from_bytes(&page[..core::mem::size_of::<crate::Rd>()]).ok()?;
    Some(rd.rec_count)
}

/// The REC a pending PSCI request of the REC at `rec` names, if there is one.
fn psci_target(rmm: &Rmm<'_, &SimPlatform>, sim: &SimPlatform, rec: u64) -> Option<u64> {
    use zerocopy::FromBytes;
    let read = |a: u64| {
        let page = sim.peek(pa(a));
        crate::Rec::read_from_bytes(&page[..core::mem::size_of::<crate::Rec>()]).ok()
    };
    if rmm.granules().granule(pa(rec))?.state_unlocked() != GranuleState::Rec {
        return None;
    }
    let r = read(rec)?;
    if r.pending != crate::rec::PENDING_PSCI {
        return None;
    }
    let idx = crate::rsi::mpidr_el1_to_rec_idx(r.psci_target);
    rmm.granules()
        .iter()
        .filter(|g| g.state_unlocked() == GranuleState::Rec)
        .map(|g| g.pa().get())
        .find(|&a| read(a).is_some_and(|t| t.rd == r.rd && t.rec_idx == idx))
}

/// The `RecRun` page of the realm streams.
const R_RUN: u64 = B0 + 12 * G;

fn act() -> impl Strategy<Value = Act> {
    use cca_abi::{psci, rsi};
    let mpidr = || prop_oneof![6 => 0u64..2, 2 => 0u64..4, 1 => any::<u64>()];
    let smc = prop_oneof![
        3 => (prop::sample::select(std::vec![
            rsi::VERSION, rsi::FEATURES, rsi::MEASUREMENT_READ, rsi::MEASUREMENT_EXTEND,
            rsi::ATTESTATION_TOKEN_INIT, rsi::ATTESTATION_TOKEN_CONTINUE, rsi::REALM_CONFIG,
            rsi::IPA_STATE_SET, rsi::IPA_STATE_GET, rsi::HOST_CALL, 0x8000_0000, 0xC400_01A5,
        ]), ipa(), ipa(), 0u64..3, 0u64..3)
            .prop_map(|(f, a, b, c, d)| [u64::from(f), a, b, c, d]),
        4 => (prop::sample::select(std::vec![
            psci::VERSION, psci::FEATURES, psci::CPU_ON_64, psci::CPU_ON_64, psci::AFFINITY_INFO_64,
            psci::CPU_SUSPEND_64, psci::CPU_OFF, psci::MIGRATE_INFO_TYPE,
        ]), mpidr(), ipa(), any::<u64>(), 0u64..2)
            .prop_map(|(f, a, b, c, d)| [u64::from(f), a, b, c, d]),
        1 => (prop::sample::select(std::vec![psci::SYSTEM_OFF, psci::SYSTEM_RESET]), any::<u64>())
            .prop_map(|(f, a)| [u64::from(f), a, 0, 0, 0]),
        1 => prop::array::uniform5(any::<u64>()),
    ];
    prop_oneof![
        2 => Just(Act::Irq),
        1 => any::<bool>().prop_map(Act::Wfx),
        1 => Just(Act::Hvc),
        8 => smc.prop_map(Act::Smc),
        3 => (ipa(), any::<bool>(), any::<bool>(), 0u64..32)
            .prop_map(|(ipa, isv, write, rt)| Act::Dabt { ipa, isv, write, rt }),
        1 => ipa().prop_map(|ipa| Act::Iabt { ipa }),
        1 => prop::sample::select(std::vec![
            // ICC_SGI1R_EL1 write from x3, ICC_IAR1_EL1 read to x2, ID_AA64PFR0_EL1 read,
            // MPAM1_EL1 write, an unknown register.
            crate::esr::sysreg(3, 0, 12, 11, 5) | (3 << 5),
            crate::esr::sysreg(3, 0, 12, 12, 0) | (2 << 5) | 1,
            crate::esr::sysreg(3, 0, 0, 4, 0) | (4 << 5) | 1,
            crate::esr::sysreg(3, 0, 10, 5, 0),
            crate::esr::sysreg(3, 1, 11, 0, 0) | 1,
        ]).prop_map(Act::Sysreg),
    ]
}

/// Secure granules of the randomized test's machine.
fn secure_granules() -> [u64; 2] {
    [b0(3), b1(5)]
}

/// NS pages the realm streams use for parameters and lists.
const R_PARAMS: u64 = B0 + 8 * G;
const R_LIST: u64 = B0 + 9 * G;
const R_SRC: u64 = B0 + 10 * G;
const R_OUT: u64 = B0 + 11 * G;

/// The realm streams' granule pool: 48 granules of bank 1.
fn pool() -> impl Strategy<Value = u64> {
    (0u64..48).prop_map(b1)
}

/// IPAs that are interesting for both realm shapes the streams create (32-bit IPA: PAR
/// below 2 GiB; 40-bit IPA: PAR below 512 GiB).
fn ipa() -> impl Strategy<Value = u64> {
    prop_oneof![
        5 => (0u64..8).prop_map(|k| 0x4000_0000 + k * G),
        2 => (0u64..8).prop_map(|k| (1 << 39) + k * G),
        6 => prop::sample::select(std::vec![
            0u64, G, 2 * G, 3 * G, 0x20_0000, 0x20_1000, 0x4000_0000, 0x4000_1000, 0x4000_2000,
            0x4020_0000, 0x7FFF_F000, 0x8000_0000, 0x8000_1000, 0x8020_0000, 0xC000_0000,
            1 << 39, (1 << 39) + G, (1 << 39) + 0x20_0000,
        ]),
        1 => any::<u64>().prop_map(|v| v & 0xFF_FFFF_F000),
        1 => any::<u64>(),
    ]
}

fn level() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 1u64..=3, 1 => Just(0u64), 1 => Just(4u64), 1 => Just(u64::MAX)]
}

fn realm_op() -> impl Strategy<Value = RealmOp> {
    use RealmOp::*;
    let rd = || prop_oneof![4 => Just(b1(0)), 2 => Just(b1(8)), 1 => pool()];
    prop_oneof![
        6 => (pool(), 1u64..20).prop_map(|(first, n)| Delegate { first, n }),
        2 => (pool(), 1u64..8).prop_map(|(first, n)| Undelegate { first, n }),
        3 => (rd(), prop_oneof![Just(b1(2)), Just(b1(10)), pool()], 0u8..4)
            .prop_map(|(rd, root, kind)| Create { rd, root, kind }),
        2 => (prop::sample::select(std::vec![RmiFid::REALM_ACTIVATE, RmiFid::REALM_TERMINATE, RmiFid::REALM_DESTROY]), rd())
            .prop_map(|(fid, rd)| Lifecycle { fid, rd }),
        6 => (rd(), pool(), ipa(), level()).prop_map(|(rd, rtt, ipa, level)| RttCreate { rd, rtt, ipa, level }),
        4 => (prop::sample::select(std::vec![RmiFid::RTT_DESTROY, RmiFid::RTT_FOLD, RmiFid::RTT_READ_ENTRY]), rd(), ipa(), level())
            .prop_map(|(fid, rd, ipa, level)| RttOp { fid, rd, ipa, level }),
        2 => (rd(), ipa(), prop_oneof![1u64..8, Just(512u64), Just(1u64 << 18)]).prop_map(|(rd, base, n)| InitRipas { rd, base, n }),
        4 => (rd(), pool(), ipa(), prop_oneof![4 => 0u64..2, 1 => Just(2u64)])
            .prop_map(|(rd, data, ipa, flags)| MapInit { rd, data, ipa, flags }),
        5 => (rd(), ipa(), pool(), 1u16..6, prop::bool::weighted(0.05), any::<bool>())
            .prop_map(|(rd, ipa, pa, n, l2, list)| DataMap { rd, ipa, pa: if l2 { B1 } else { pa }, n, l2, list }),
        3 => (rd(), ipa(), prop_oneof![Just(0x4000_0000u64), pool()], 1u16..4)
            .prop_map(|(rd, ipa, pa, n)| UnprotMap { rd, ipa, pa, n }),
        4 => (prop::sample::select(std::vec![RmiFid::RTT_DATA_UNMAP, RmiFid::RTT_UNPROT_UNMAP]), rd(), ipa(), prop_oneof![1u64..8, Just(512u64)], 0u64..4)
            .prop_map(|(fid, rd, ipa, n, addr_type)| Unmap { fid, rd, ipa, n, addr_type }),
        4 => (rd(), pool(), prop_oneof![6 => Just(0u64), 2 => 1u64..3, 1 => Just(0x10u64)], 0u64..2)
            .prop_map(|(rd, rec, mpidr, flags)| RecCreate { rd, rec, mpidr, flags }),
        5 => (any::<usize>(), pool(), prop_oneof![Just(16u64), 1u64..18]).prop_map(|(h, first, n)| Donate { h, first, n }),
        4 => (any::<usize>(), prop_oneof![Just(16u64), 0u64..4]).prop_map(|(h, cap)| Reclaim { h, cap }),
        6 => any::<usize>().prop_map(|h| Continue { h }),
        1 => any::<usize>().prop_map(|h| Cancel { h }),
        3 => pool().prop_map(|rec| RecDestroy { rec }),
        3 => (rd(), (60u64..64).prop_map(b1), (0u64..4).prop_map(|k| b1(100 + 16 * k)), prop_oneof![3 => Just(0u64), 1 => 1u64..3])
            .prop_map(|(rd, rec, first, mpidr)| RecFull { rd, rec, first, mpidr }),
        2 => prop_oneof![(60u64..64).prop_map(b1), pool()].prop_map(|rec| RecTeardown { rec }),
        2 => ((0u64..4).prop_map(|k| b1(200 + 16 * k)), any::<bool>()).prop_map(|(rd, with_data)| Ephemeral { rd, with_data }),
        2 => (prop::sample::select(std::vec![RmiFid::RTT_DESTROY, RmiFid::RTT_FOLD]), rd(),
              prop::sample::select(std::vec![0x4000_0000u64, 1 << 39]), 2u64..=3)
            .prop_map(|(fid, rd, ipa, level)| RttOp { fid, rd, ipa, level }),
        3 => (rd(), prop_oneof![3 => (60u64..64).prop_map(b1), 1 => pool()], ipa(), 1u64..4, any::<bool>(), any::<bool>())
            .prop_map(|(rd, rec, base, n, ram, change)| SetRipas { rd, rec, base, n, ram, change }),
        6 => (prop_oneof![6 => (60u64..62).prop_map(b1), 1 => (62u64..64).prop_map(b1), 1 => pool()],
              prop_oneof![3 => Just(0u64), 2 => 0u64..32, 1 => any::<u64>()],
              any::<u64>(),
              prop::collection::vec(act(), 0..5),
              prop::bool::weighted(0.5),
              prop::option::weighted(0.8, prop::sample::select(std::vec![0u64, 0u64, (-3i64) as u64])))
            .prop_map(|(rec, flags, enter0, script, setup, complete)| Enter { rec, flags, enter0, script, setup, complete }),
        2 => ((60u64..64).prop_map(b1), prop_oneof![4 => (60u64..64).prop_map(b1), 1 => pool()],
              prop::sample::select(std::vec![0u64, 0u64, (-3i64) as u64, 5]))
            .prop_map(|(calling, target, status)| PsciComplete { calling, target, status }),
    ]
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
        2 => prop::sample::select(RmiFid::ALL).prop_map(|f| u64::from(f.fid())),
        1 => (0x150u64..0x2d0).prop_map(|n| 0xC400_0000 | n),
        1 => any::<u64>(),
    ]
}

/// The commands of the realm issue: their registers are not predicted; the model checks
/// the granule transitions they make and the invariants.
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

fn boot_op() -> impl Strategy<Value = Op> {
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

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => boot_op(),
        5 => realm_op().prop_map(Op::Realm),
    ]
}

const GLOBAL: u64 = RmiStatus::ErrorGlobal as u64;
const INPUT: u64 = RmiStatus::ErrorInput as u64;

/// The test's own model of the RMM: global state, each granule's state (absent: NS), the
/// first 16 bytes the host would read from NS granules, and the operation handles seen.
struct Model {
    /// Several threads share the machine: this model only tracks handles and host writes.
    concurrent: bool,
    active: bool,
    state: HashMap<u64, GranuleState>,
    secure: HashSet<u64>,
    head: HashMap<u64, [u8; 16]>,
    tracked: Vec<(u64, u64)>,
    features: [u64; 5],
    handles: Vec<u64>,
}

impl Model {
    fn new() -> Self {
        Self {
            concurrent: false,
            active: false,
            state: HashMap::new(),
            secure: secure_granules().into_iter().collect(),
            head: HashMap::new(),
            tracked: banks().iter().map(|b| (b.base, b.base + b.size)).collect(),
            features: feature_registers(&SIM_CPU),
            handles: Vec::new(),
        }
    }

    fn tracked(&self, a: u64) -> bool {
        a % G == 0 && self.tracked.iter().any(|&(b, t)| a >= b && a < t)
    }

    fn st(&self, a: u64) -> GranuleState {
        self.state.get(&a).copied().unwrap_or(GranuleState::Ns)
    }

    /// True when the host (and the RMM on its behalf) can access the page at `a` as NS.
    fn ns_usable(&self, a: u64) -> bool {
        self.tracked(a) && self.st(a) == GranuleState::Ns && !self.secure.contains(&a)
    }

    /// The NS-page checks of CONFIG_GET and CONFIG_SET (state, then the access itself).
    fn ns_page_ok(&self, a: u64) -> bool {
        a != 0 && a % G == 0 && self.ns_usable(a)
    }

    /// The expected registers for a boot-issue call, updating the model; `None` for the
    /// realm-issue commands, whose effects are checked by [`Model::check_transitions`].
    fn expect(&mut self, r: &Regs) -> Option<Regs> {
        let mut out = [0, 0, 0, 0, r[4], r[5], r[6], r[7]];
        let fid = (r[0] as u32) & !SVE_HINT;
        let Some(fid) = RmiFid::from_fid(fid) else {
            out[0] = SMC_UNKNOWN;
            return Some(out);
        };
        if fid.class() == cca_abi::rmi::RmiClass::Unimplemented {
            out[0] = SMC_UNKNOWN;
            return Some(out);
        }
        let allowed = match fid {
            RmiFid::VERSION
            | RmiFid::FEATURES
            | RmiFid::RMM_CONFIG_GET
            | RmiFid::GRANULE_TRACKING_GET => true,
            RmiFid::RMM_CONFIG_SET | RmiFid::RMM_ACTIVATE => !self.active,
            _ => self.active,
        };
        if !allowed {
            out[0] = GLOBAL;
            return Some(out);
        }
        if matches!(
            fid.class(),
            cca_abi::rmi::RmiClass::DeviceAssignment | cca_abi::rmi::RmiClass::Planes
        ) {
            out[0] = RmiStatus::ErrorNotSupported as u64;
            return Some(out);
        }
        if is_realm_command(fid) {
            return None;
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
                    return Some(out);
                }
                let mut a = b;
                let mut n = 0;
                while n < MAX_GRANULES_PER_CALL && a < t {
                    let ok = if delegate {
                        self.ns_usable(a)
                    } else {
                        self.tracked(a) && self.st(a) == GranuleState::Delegated
                    };
                    if !ok {
                        if n == 0 {
                            out[0] = INPUT;
                            return Some(out);
                        }
                        break;
                    }
                    if delegate {
                        self.state.insert(a, GranuleState::Delegated);
                    } else {
                        self.state.remove(&a);
                    }
                    self.head.insert(a, [0; 16]);
                    a += G;
                    n += 1;
                }
                out[1] = a;
            }
            _ => unreachable!("{}", fid.name()),
        }
        Some(out)
    }

    /// Checks the granule transitions a realm-issue call made against what the command
    /// may do, then adopts them.
    fn check_transitions(
        &mut self,
        fid: RmiFid,
        regs: &Regs,
        got: &Regs,
        rmm: &Rmm<'_, &SimPlatform>,
    ) {
        use GranuleState::*;
        let status = cca_abi::rmi::RmiReturn::from_reg(got[0]).map(|r| r.status);
        let progressed = matches!(
            status,
            Some(RmiStatus::Success) | Some(RmiStatus::Incomplete)
        );
        let allowed: &[(GranuleState, GranuleState)] = match fid {
            RmiFid::REALM_CREATE => &[(Delegated, Rd), (Delegated, Rtt)],
            RmiFid::REALM_DESTROY => &[(Rd, Delegated), (Rtt, Delegated)],
            RmiFid::RTT_CREATE => &[(Delegated, Rtt)],
            RmiFid::RTT_DESTROY | RmiFid::RTT_FOLD => &[(Rtt, Delegated)],
            RmiFid::RTT_DATA_MAP_INIT | RmiFid::RTT_DATA_MAP => &[(Delegated, Data)],
            RmiFid::RTT_DATA_UNMAP => &[(Data, Delegated)],
            RmiFid::REC_CREATE => &[(Delegated, Partial)],
            RmiFid::OP_MEM_DONATE => &[(Delegated, RecAux)],
            RmiFid::OP_MEM_RECLAIM => &[(RecAux, Delegated)],
            RmiFid::OP_CONTINUE => &[(Partial, Rec), (Partial, Delegated)],
            RmiFid::REC_DESTROY => &[(Rec, Partial)],
            _ => &[],
        };
        let may_change_on_error = matches!(fid, RmiFid::OP_MEM_RECLAIM | RmiFid::OP_CONTINUE);
        let mut changed = Vec::new();
        for g in rmm.granules().iter() {
            let a = g.pa().get();
            let (before, after) = (self.st(a), g.state_unlocked());
            if before == after {
                continue;
            }
            assert!(
                (progressed || may_change_on_error) && allowed.contains(&(before, after)),
                "{}({:#x?}) -> {:#x}: granule {a:#x} went {before} -> {after}",
                fid.name(),
                &regs[1..6],
                got[0]
            );
            changed.push((a, before, after));
        }
        for (a, _, after) in changed {
            if after == Ns {
                self.state.remove(&a);
            } else {
                self.state.insert(a, after);
            }
        }
        // The only NS memory these commands write is the output list the host named.
        let out_page = match fid {
            RmiFid::RTT_DATA_UNMAP | RmiFid::RTT_UNPROT_UNMAP => Some(regs[5]),
            RmiFid::OP_MEM_RECLAIM => Some(regs[2]),
            _ => None,
        };
        if let Some(page) = out_page.map(|a| a & !(G - 1)) {
            let mut head = [0u8; 16];
            if self.ns_usable(page) && rmm.platform().host_read(pa(page), &mut head).is_ok() {
                self.head.insert(page, head);
            }
        }
        if status == Some(RmiStatus::Incomplete)
            && matches!(fid, RmiFid::REC_CREATE | RmiFid::REC_DESTROY)
        {
            self.handles.push(got[1]);
        }
    }

    /// Compares every granule with the machine.
    fn check(&self, rmm: &Rmm<'_, &SimPlatform>, sim: &SimPlatform) {
        assert_eq!(rmm.state() == RmmState::Active, self.active);
        for g in rmm.granules().iter() {
            let a = g.pa().get();
            assert!(!g.is_locked(), "granule {a:#x} left locked");
            let st = g.state_unlocked();
            assert_eq!(st, self.st(a), "granule {a:#x}");
            let mut head = [0u8; 16];
            let readable = sim.host_read(g.pa(), &mut head).is_ok();
            if st == GranuleState::Ns {
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
            } else {
                assert_eq!(sim.pas(g.pa()), Pas::Realm, "{st} granule {a:#x}");
                assert!(!readable, "{st} granule {a:#x} is readable as NS");
                if st == GranuleState::Delegated {
                    assert!(
                        sim.holds_no_realm_data(g.pa()),
                        "delegated granule {a:#x} holds realm data"
                    );
                }
            }
        }
    }
}

/// A valid leaf mapping of a realm: (VMID, IPA, size) -> descriptor.
type Mappings = HashMap<(u16, u64, u64), u64>;

/// The structural invariants of every realm, from the simulated memory with a decoder
/// written from the Arm ARM (not the RMM's): returns the valid leaf mappings.
fn check_realms(rmm: &Rmm<'_, &SimPlatform>, sim: &SimPlatform) -> Mappings {
    use zerocopy::FromBytes;
    let state = |a: u64| rmm.granules().granule(pa(a)).map(|g| g.state_unlocked());
    let mut maps = Mappings::new();
    let mut rtt_seen: HashMap<u64, u64> = HashMap::new();
    let mut data_seen: HashMap<u64, u64> = HashMap::new();
    let mut recs_of: HashMap<u64, u16> = HashMap::new();
    let mut aux_owner: HashMap<u64, u64> = HashMap::new();
    // RECs.
    for g in rmm.granules().iter() {
        if g.state_unlocked() != GranuleState::Rec {
            continue;
        }
        let page = sim.peek(g.pa());
        let rec = crate::Rec::read_from_bytes(&page[..core::mem::size_of::<crate::Rec>()]).unwrap();
        assert_eq!(
            state(rec.rd),
            Some(GranuleState::Rd),
            "REC {} of a non-RD",
            g.pa()
        );
        *recs_of.entry(rec.rd).or_default() += 1;
        assert_eq!(
            g.refcount_unlocked(),
            0,
            "REC {} still counted as running",
            g.pa()
        );
        assert_eq!(rec.num_aux, 16);
        for &x in &rec.aux {
            assert_eq!(
                state(x),
                Some(GranuleState::RecAux),
                "aux {x:#x} of REC {}",
                g.pa()
            );
            assert!(
                aux_owner.insert(x, g.pa().get()).is_none(),
                "aux {x:#x} owned twice"
            );
        }
    }
    // Operations in flight.
    let mut partial_owner: HashMap<u64, usize> = HashMap::new();
    rmm.for_each_sro(|s| {
        if s.object != 0 {
            assert!(
                partial_owner.insert(s.object, s.handle).is_none(),
                "two operations on {:#x}",
                s.object
            );
        }
        for &x in &s.aux[..s.aux_held] {
            assert_eq!(
                state(x),
                Some(GranuleState::RecAux),
                "aux {x:#x} of operation {}",
                s.handle
            );
            assert!(
                aux_owner.insert(x, s.object).is_none(),
                "aux {x:#x} owned twice"
            );
        }
    });
    // Realms.
    for g in rmm.granules().iter() {
        if g.state_unlocked() != GranuleState::Rd {
            continue;
        }
        let page = sim.peek(g.pa());
        let rd = crate::Rd::read_from_bytes(&page[..core::mem::size_of::<crate::Rd>()]).unwrap();
        assert_eq!(
            g.refcount_unlocked(),
            recs_of.get(&g.pa().get()).copied().unwrap_or(0),
            "RD {} refcount is not its number of RECs",
            g.pa()
        );
        assert_eq!(rd.active_recs, 0, "RD {} counts running RECs", g.pa());
        let ipa_size = 1u64 << rd.ipa_bits;
        let sl = rd.start_level as i32;
        let size_of = |level: i32| 1u64 << ((3 - level) * 9 + 12);
        // (table PA, level, first IPA)
        let mut stack: Vec<(u64, i32, u64)> = (0..rd.num_root_rtts)
            .map(|i| (rd.rtt_base + i * G, sl, i * 512 * size_of(sl)))
            .collect();
        while let Some((t, level, base)) = stack.pop() {
            assert_eq!(
                state(t),
                Some(GranuleState::Rtt),
                "table {t:#x} of RD {}",
                g.pa()
            );
            assert!(
                rtt_seen.insert(t, g.pa().get()).is_none(),
                "RTT {t:#x} reachable twice"
            );
            let bytes = sim.peek(pa(t));
            let size = size_of(level);
            let mut refs = 0u16;
            for i in 0..512u64 {
                let ipa = base + i * size;
                if ipa >= ipa_size {
                    break;
                }
                let protected = ipa < ipa_size / 2;
                let d = u64::from_le_bytes(
                    bytes[i as usize * 8..i as usize * 8 + 8]
                        .try_into()
                        .unwrap(),
                );
                let oa = d & 0x0000_FFFF_FFFF_F000 & !(size - 1);
                let ns = d & (1 << 55) != 0;
                if d & 1 == 1 {
                    if level < 3 && d & 3 == 3 {
                        refs += 1;
                        stack.push((d & 0x0000_FFFF_FFFF_F000, level + 1, ipa));
                        continue;
                    }
                    assert!(level >= 1, "valid block at level {level}");
                    assert_eq!(
                        ns, !protected,
                        "IPA {ipa:#x}: NS bit {ns} in the wrong half"
                    );
                    maps.insert((rd.vmid as u16, ipa, size), d);
                    if ns {
                        continue;
                    }
                } else {
                    let hipas = (d >> 3) & 7;
                    if hipas == 0 {
                        assert_eq!(
                            ns, !protected,
                            "IPA {ipa:#x}: unassigned entry in the wrong half"
                        );
                        continue;
                    }
                    assert_eq!(hipas, 1, "IPA {ipa:#x}: HIPAS {hipas}");
                    assert!(
                        protected && !ns,
                        "IPA {ipa:#x}: assigned entry outside the PAR"
                    );
                }
                refs += 1;
                for k in 0..size / G {
                    let p = oa + k * G;
                    assert_eq!(
                        state(p),
                        Some(GranuleState::Data),
                        "IPA {ipa:#x} maps {p:#x}"
                    );
                    assert!(
                        data_seen.insert(p, ipa).is_none(),
                        "DATA {p:#x} mapped twice"
                    );
                }
            }
            let rc = rmm.granules().granule(pa(t)).unwrap().refcount_unlocked();
            assert_eq!(rc, refs, "RTT {t:#x} refcount is not its live entries");
        }
    }
    for g in rmm.granules().iter() {
        let a = g.pa().get();
        match g.state_unlocked() {
            GranuleState::Rtt => assert!(rtt_seen.contains_key(&a), "orphan RTT {a:#x}"),
            GranuleState::Data => assert!(data_seen.contains_key(&a), "orphan DATA {a:#x}"),
            GranuleState::RecAux => assert!(aux_owner.contains_key(&a), "orphan REC_AUX {a:#x}"),
            GranuleState::Partial => {
                assert!(partial_owner.contains_key(&a), "orphan PARTIAL {a:#x}")
            }
            _ => {}
        }
    }
    maps
}

/// What a stream did, to show the streams reach the interesting paths.
#[derive(Default)]
struct Stats {
    calls: usize,
    moved: u64,
    by_status: HashMap<u64, usize>,
    by_fid: HashMap<&'static str, (usize, usize)>,
}

/// Builds the registers (and host writes) of a realm op.
/// The host writes `bytes` at `page` if it can, and the model records what it reads back.
fn host_put(f: &Fixture, model: &mut Model, page: u64, bytes: &[u8]) {
    if model.concurrent {
        // Another thread may have delegated the page: the write then faults, as a host's
        // would, and the RMM reads whatever the page holds.
        let _ = f.sim.host_write(pa(page), bytes);
        return;
    }
    if model.ns_usable(page) {
        f.sim.host_write(pa(page), bytes).unwrap();
        let mut head = model.head.get(&page).copied().unwrap_or([0; 16]);
        let n = bytes.len().min(16);
        head[..n].copy_from_slice(&bytes[..n]);
        model.head.insert(page, head);
    }
}

fn realm_regs(op: &RealmOp, f: &Fixture, model: &mut Model) -> Regs {
    use cca_abi::rmi::{map_flags, AddrRangeDesc, BlockSize};
    let fid = |f: RmiFid| u64::from(f.fid());
    let handles = model.handles.clone();
    let pick = |h: usize| {
        if handles.is_empty() {
            h as u64 % 4
        } else {
            handles[h % handles.len()]
        }
    };
    let mut write = |page: u64, bytes: &[u8]| host_put(f, model, page, bytes);
    let desc = |size, count, addr, undelegated| {
        AddrRangeDesc {
            size,
            count,
            addr,
            undelegated,
        }
        .encode()
    };
    match *op {
        RealmOp::Delegate { first, n } => [
            fid(RmiFid::GRANULE_RANGE_DELEGATE),
            first,
            first + n * G,
            0,
            0,
            0,
            0,
            0,
        ],
        RealmOp::Undelegate { first, n } => [
            fid(RmiFid::GRANULE_RANGE_UNDELEGATE),
            first,
            first + n * G,
            0,
            0,
            0,
            0,
            0,
        ],
        RealmOp::Create { rd, root, kind } => {
            let p = match kind {
                0 => Params {
                    s2sz: 32,
                    rtt_num_start: 1,
                    rtt_base: root,
                    ..Params::default()
                },
                1 => Params {
                    rtt_base: root & !(2 * G - 1),
                    ..Params::default()
                },
                2 => Params {
                    s2sz: 33,
                    rtt_level_start: 2,
                    rtt_num_start: 8,
                    rtt_base: root,
                    ..Params::default()
                },
                _ => Params {
                    s2sz: 64,
                    rtt_base: root,
                    ..Params::default()
                },
            };
            write(R_PARAMS, &p.bytes());
            [fid(RmiFid::REALM_CREATE), rd, R_PARAMS, 0, 0, 0, 0, 0]
        }
        RealmOp::Lifecycle { fid: x, rd } => [fid(x), rd, 0, 0, 0, 0, 0, 0],
        RealmOp::RttCreate {
            rd,
            rtt,
            ipa,
            level,
        } => [fid(RmiFid::RTT_CREATE), rd, rtt, ipa, level, 0, 0, 0],
        RealmOp::RttOp {
            fid: x,
            rd,
            ipa,
            level,
        } => [fid(x), rd, ipa, level, 0, 0, 0, 0],
        RealmOp::InitRipas { rd, base, n } => [
            fid(RmiFid::RTT_INIT_RIPAS),
            rd,
            base,
            base.wrapping_add(n * G),
            0,
            0,
            0,
            0,
        ],
        RealmOp::MapInit {
            rd,
            data,
            ipa,
            flags,
        } => {
            write(R_SRC, &[0xA5; 64]);
            [
                fid(RmiFid::RTT_DATA_MAP_INIT),
                rd,
                data,
                ipa,
                R_SRC,
                flags,
                0,
                0,
            ]
        }
        RealmOp::DataMap {
            rd,
            ipa,
            pa,
            n,
            l2,
            list,
        } => {
            let (size, n) = if l2 {
                (BlockSize::L2_2M, 1)
            } else {
                (BlockSize::L3_4K, n)
            };
            let d = desc(size, n, pa, false);
            let top = ipa.wrapping_add(u64::from(n) * size.bytes());
            if list {
                write(R_LIST, &d.to_le_bytes());
                [
                    fid(RmiFid::RTT_DATA_MAP),
                    rd,
                    ipa,
                    top,
                    map_flags::with_list(2, 1),
                    R_LIST,
                    0,
                    0,
                ]
            } else {
                [fid(RmiFid::RTT_DATA_MAP), rd, ipa, top, 1, d, 0, 0]
            }
        }
        RealmOp::UnprotMap { rd, ipa, pa, n } => {
            let d = desc(BlockSize::L3_4K, n, pa, true);
            [
                fid(RmiFid::RTT_UNPROT_MAP),
                rd,
                ipa,
                ipa.wrapping_add(u64::from(n) * G),
                1 | (5 << 16) | (3 << 19),
                d,
                0,
                0,
            ]
        }
        RealmOp::Unmap {
            fid: x,
            rd,
            ipa,
            n,
            addr_type,
        } => {
            let (flags, oaddr) = match addr_type {
                2 => (map_flags::with_list(2, 4), R_OUT),
                t => (t, 0),
            };
            [fid(x), rd, ipa, ipa.wrapping_add(n * G), flags, oaddr, 0, 0]
        }
        RealmOp::RecCreate {
            rd,
            rec,
            mpidr,
            flags,
        } => {
            let mut b = std::vec![0u8; 4096];
            b[..8].copy_from_slice(&flags.to_le_bytes());
            b[0x100..0x108].copy_from_slice(&mpidr.to_le_bytes());
            write(R_PARAMS, &b);
            [fid(RmiFid::REC_CREATE), rd, rec, R_PARAMS, 0, 0, 0, 0]
        }
        RealmOp::Donate { h, first, n } => {
            let mut b = std::vec![0u8; 8 * n as usize];
            for i in 0..n {
                let d = desc(BlockSize::L3_4K, 1, first + i * G, false);
                b[8 * i as usize..8 * i as usize + 8].copy_from_slice(&d.to_le_bytes());
            }
            write(R_LIST, &b);
            [fid(RmiFid::OP_MEM_DONATE), pick(h), R_LIST, n, 0, 0, 0, 0]
        }
        RealmOp::Reclaim { h, cap } => {
            [fid(RmiFid::OP_MEM_RECLAIM), pick(h), R_OUT, cap, 0, 0, 0, 0]
        }
        RealmOp::Continue { h } => [fid(RmiFid::OP_CONTINUE), pick(h), 0, 0, 0, 0, 0, 0],
        RealmOp::Cancel { h } => [fid(RmiFid::OP_CANCEL), pick(h), 0, 0, 0, 0, 0, 0],
        RealmOp::RecDestroy { rec } => [fid(RmiFid::REC_DESTROY), rec, 0, 0, 0, 0, 0, 0],
        RealmOp::SetRipas {
            rd, rec, base, n, ..
        } => [
            fid(RmiFid::RTT_SET_RIPAS),
            rd,
            rec,
            base,
            base.wrapping_add(n * G),
            0,
            0,
            0,
        ],
        RealmOp::PsciComplete {
            calling,
            target,
            status,
        } => [
            fid(RmiFid::PSCI_COMPLETE),
            calling,
            target,
            status,
            0,
            0,
            0,
            0,
        ],
        RealmOp::RecFull { .. }
        | RealmOp::RecTeardown { .. }
        | RealmOp::Ephemeral { .. }
        | RealmOp::Enter { .. } => {
            unreachable!("composite")
        }
    }
}

/// Runs one call, checks it against the model and the invariants.
fn step(
    regs: &Regs,
    f: &Fixture,
    rmm: &Rmm<'_, &SimPlatform>,
    model: &mut Model,
    stats: &mut Stats,
    before: &Mappings,
) -> Mappings {
    let n_before = model
        .state
        .values()
        .filter(|&&s| s == GranuleState::Delegated)
        .count();
    let expected = model.expect(regs);
    f.sim.take_tlbis();
    let enter = RmiFid::from_fid((regs[0] as u32) & !SVE_HINT) == Some(RmiFid::REC_ENTER);
    if enter && f.sim.pending_realm_steps() == 0 {
        // A REC_ENTER that gets to run the realm sees it take an IRQ.
        f.sim.push_realm_step(irq_step());
    }
    let got = rmm.handle_rmi(regs);
    f.sim.clear_realm_steps();
    if let Some(e) = expected {
        assert_eq!(got, e, "registers of {regs:#x?}");
    } else {
        let fid = RmiFid::from_fid((regs[0] as u32) & !SVE_HINT).unwrap();
        assert!(
            cca_abi::rmi::RmiReturn::from_reg(got[0]).is_some(),
            "{}: x0 {:#x}",
            fid.name(),
            got[0]
        );
        model.check_transitions(fid, regs, &got, rmm);
        // Granules given back to the host are scrubbed (checked by Model::check for NS).
        let e = stats.by_fid.entry(fid.name()).or_default();
        e.0 += 1;
        if got[0] == 0 || got[0] & 0xff == RmiStatus::Incomplete as u64 {
            e.1 += 1;
        }
    }
    stats.calls += 1;
    stats.moved += n_before.abs_diff(
        model
            .state
            .values()
            .filter(|&&s| s == GranuleState::Delegated)
            .count(),
    ) as u64;
    *stats.by_status.entry(got[0]).or_default() += 1;
    model.check(rmm, &f.sim);
    let after = check_realms(rmm, &f.sim);
    let tlbis = f.sim.take_tlbis();
    for (&(vmid, ipa, size), &d) in before {
        if after.get(&(vmid, ipa, size)) != Some(&d) {
            assert!(
                tlbis.iter().any(|t| t.covers(vmid, ipa, size)),
                "{regs:#x?}: the valid mapping of IPA {ipa:#x} (VMID {vmid}, {size:#x} bytes) went away without a TLBI ({tlbis:?})"
            );
        }
    }
    after
}

fn run_ops(ops: &[Op], stats: &mut Stats) {
    let f = Fixture::new();
    for s in secure_granules() {
        f.sim.set_pas(pa(s), Pas::Secure);
    }
    let rmm = f.rmm();
    let mut model = Model::new();
    let mut maps = Mappings::new();
    // Most streams start active, with a realm, so the realm commands get somewhere.
    if ops.len() % 4 != 0 {
        let boot = stream_prologue();
        let act = [u64::from(RmiFid::RMM_ACTIVATE.fid()), 0, 0, 0, 0, 0, 0, 0];
        maps = step(&act, &f, &rmm, &mut model, stats, &maps);
        for op in &boot {
            let regs = realm_regs(op, &f, &mut model);
            maps = step(&regs, &f, &rmm, &mut model, stats, &maps);
        }
    }
    for op in ops {
        match op {
            Op::Call(regs) => maps = step(regs, &f, &rmm, &mut model, stats, &maps),
            Op::Realm(RealmOp::RecFull {
                rd,
                rec,
                first,
                mpidr,
            }) => {
                for op in [
                    RealmOp::Delegate { first: *rec, n: 1 },
                    RealmOp::Delegate {
                        first: *first,
                        n: 16,
                    },
                ] {
                    let regs = realm_regs(&op, &f, &mut model);
                    maps = step(&regs, &f, &rmm, &mut model, stats, &maps);
                }
                let create = RealmOp::RecCreate {
                    rd: *rd,
                    rec: *rec,
                    mpidr: *mpidr,
                    flags: 1,
                };
                let regs = realm_regs(&create, &f, &mut model);
                maps = step(&regs, &f, &rmm, &mut model, stats, &maps);
                if model.handles.is_empty() {
                    continue;
                }
                let h = model.handles.len() - 1;
                for op in [
                    RealmOp::Donate {
                        h,
                        first: *first,
                        n: 16,
                    },
                    RealmOp::Continue { h },
                ] {
                    let regs = realm_regs(&op, &f, &mut model);
                    maps = step(&regs, &f, &rmm, &mut model, stats, &maps);
                }
            }
            Op::Realm(RealmOp::Ephemeral { rd, with_data }) => {
                let (rd, root, rtt, rtt3, data) =
                    (*rd, *rd + G, *rd + 2 * G, *rd + 3 * G, *rd + 4 * G);
                let mut seq = std::vec![
                    RealmOp::Delegate { first: rd, n: 2 },
                    RealmOp::Create { rd, root, kind: 0 },
                ];
                if *with_data {
                    seq.extend([
                        RealmOp::Delegate { first: rtt, n: 3 },
                        RealmOp::RttCreate {
                            rd,
                            rtt,
                            ipa: 0,
                            level: 2,
                        },
                        RealmOp::RttCreate {
                            rd,
                            rtt: rtt3,
                            ipa: 0,
                            level: 3,
                        },
                        RealmOp::MapInit {
                            rd,
                            data,
                            ipa: 0,
                            flags: 1,
                        },
                    ]);
                }
                seq.push(RealmOp::Lifecycle {
                    fid: RmiFid::REALM_TERMINATE,
                    rd,
                });
                if *with_data {
                    seq.extend([
                        RealmOp::Unmap {
                            fid: RmiFid::RTT_DATA_UNMAP,
                            rd,
                            ipa: 0,
                            n: 1,
                            addr_type: 0,
                        },
                        RealmOp::RttOp {
                            fid: RmiFid::RTT_DESTROY,
                            rd,
                            ipa: 0,
                            level: 3,
                        },
                        RealmOp::RttOp {
                            fid: RmiFid::RTT_DESTROY,
                            rd,
                            ipa: 0,
                            level: 2,
                        },
                    ]);
                }
                seq.push(RealmOp::Lifecycle {
                    fid: RmiFid::REALM_DESTROY,
                    rd,
                });
                for op in &seq {
                    let regs = realm_regs(op, &f, &mut model);
                    maps = step(&regs, &f, &rmm, &mut model, stats, &maps);
                }
            }
            Op::Realm(RealmOp::Enter {
                rec,
                flags,
                enter0,
                script,
                setup,
                complete,
            }) => {
                if *setup {
                    // Two RECs (b1(60), b1(61)) with the next indices, if the realm is NEW.
                    for k in 0..2u64 {
                        let Some(n) = rec_count(&rmm, &f.sim, b1(0)) else {
                            break;
                        };
                        let (r, first) = (b1(60 + k), b1(300 + 16 * k));
                        for op in [
                            RealmOp::Delegate { first: r, n: 1 },
                            RealmOp::Delegate { first, n: 16 },
                            RealmOp::RecCreate {
                                rd: b1(0),
                                rec: r,
                                mpidr: cca_abi::rmi::rec_mpidr::from_index(n),
                                flags: 1,
                            },
                        ] {
                            let regs = realm_regs(&op, &f, &mut model);
                            maps = step(&regs, &f, &rmm, &mut model, stats, &maps);
                        }
                        if rmm.granules().granule(pa(r)).unwrap().state_unlocked()
                            != GranuleState::Partial
                        {
                            continue;
                        }
                        let h = model.handles.len() - 1;
                        for op in [RealmOp::Donate { h, first, n: 16 }, RealmOp::Continue { h }] {
                            let regs = realm_regs(&op, &f, &mut model);
                            maps = step(&regs, &f, &rmm, &mut model, stats, &maps);
                        }
                    }
                    let op = RealmOp::Lifecycle {
                        fid: RmiFid::REALM_ACTIVATE,
                        rd: b1(0),
                    };
                    let regs = realm_regs(&op, &f, &mut model);
                    maps = step(&regs, &f, &rmm, &mut model, stats, &maps);
                }
                let mut run = [0u8; 0x300];
                run[..8].copy_from_slice(&flags.to_le_bytes());
                run[0x200..0x208].copy_from_slice(&enter0.to_le_bytes());
                host_put(&f, &mut model, R_RUN, &run);
                for a in script {
                    f.sim.push_realm_step(a.step());
                }
                f.sim.push_realm_step(irq_step());
                let regs = [
                    u64::from(RmiFid::REC_ENTER.fid()),
                    *rec,
                    R_RUN,
                    0,
                    0,
                    0,
                    0,
                    0,
                ];
                maps = step(&regs, &f, &rmm, &mut model, stats, &maps);
                // Answer a PSCI request the realm made, naming the REC it targets.
                if let (Some(status), Some(target)) = (complete, psci_target(&rmm, &f.sim, *rec)) {
                    let op = RealmOp::PsciComplete {
                        calling: *rec,
                        target,
                        status: *status,
                    };
                    let regs = realm_regs(&op, &f, &mut model);
                    maps = step(&regs, &f, &rmm, &mut model, stats, &maps);
                }
            }
            Op::Realm(RealmOp::RecTeardown { rec }) => {
                let regs = realm_regs(&RealmOp::RecDestroy { rec: *rec }, &f, &mut model);
                let n = model.handles.len();
                maps = step(&regs, &f, &rmm, &mut model, stats, &maps);
                if model.handles.len() == n {
                    continue;
                }
                let h = n;
                for _ in 0..3 {
                    let regs = realm_regs(&RealmOp::Reclaim { h, cap: 16 }, &f, &mut model);
                    maps = step(&regs, &f, &rmm, &mut model, stats, &maps);
                }
                let regs = realm_regs(&RealmOp::Continue { h }, &f, &mut model);
                maps = step(&regs, &f, &rmm, &mut model, stats, &maps);
            }
            Op::Realm(r) => {
                if let RealmOp::SetRipas {
                    rec,
                    base,
                    n,
                    ram,
                    change,
                    ..
                } = *r
                {
                    let ripas = if ram {
                        cca_abi::rmi::Ripas::Ram
                    } else {
                        cca_abi::rmi::Ripas::Empty
                    };
                    rmm.rec_request_ripas_change(
                        pa(rec),
                        base,
                        base.wrapping_add(n * G),
                        ripas,
                        change,
                    );
                }
                let regs = realm_regs(r, &f, &mut model);
                maps = step(&regs, &f, &rmm, &mut model, stats, &maps);
            }
            Op::HostWrite(a, byte) => {
                let ok = f.sim.host_write(pa(*a), &[*byte; 4096]).is_ok();
                assert_eq!(ok, model.ns_usable(*a), "host write to {a:#x}");
                if ok {
                    model.head.insert(*a, [*byte; 16]);
                }
                model.check(&rmm, &f.sim);
            }
            Op::ConfigSet(a, t, g) => {
                if model.ns_page_ok(*a) {
                    let mut b = [0u8; 16];
                    b[..8].copy_from_slice(&t.to_le_bytes());
                    b[8..].copy_from_slice(&g.to_le_bytes());
                    f.sim.host_write(pa(*a), &b).unwrap();
                    model.head.insert(*a, b);
                }
                let regs = [
                    u64::from(RmiFid::RMM_CONFIG_SET.fid()),
                    *a,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                ];
                maps = step(&regs, &f, &rmm, &mut model, stats, &maps);
            }
        }
    }
    take_debug_logs();
}

#[test]
fn randomized_call_streams_match_the_model() {
    // PROPTEST_CASES=n runs more (or fewer) streams.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let stats = std::sync::Mutex::new(Stats::default());
    let strategy = prop::collection::vec(op_strategy(), 1..300);
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
            for (k, v) in s.by_fid {
                let e = total.by_fid.entry(k).or_default();
                e.0 += v.0;
                e.1 += v.1;
            }
            Ok(())
        })
        .unwrap();
    let stats = stats.into_inner().unwrap();
    let count = |x0: u64| stats.by_status.get(&x0).copied().unwrap_or(0);
    let mut fids: Vec<_> = stats.by_fid.iter().collect();
    fids.sort();
    std::eprintln!(
        "randomized_call_streams_match_the_model: {} RMI calls in {cases} streams matched the model \
         ({} SUCCESS, {} ERROR_INPUT, {} ERROR_GLOBAL, {} SMC_UNKNOWN; {} granules moved); \
         realm commands (calls, successes): {fids:?}",
        stats.calls,
        count(0),
        count(INPUT),
        count(GLOBAL),
        count(SMC_UNKNOWN),
        stats.moved
    );
    assert!(count(0) > 0 && count(INPUT) > 0 && count(GLOBAL) > 0 && count(SMC_UNKNOWN) > 0);
    assert!(stats.moved > 0, "no stream moved a granule");
    for name in [
        "REALM_CREATE",
        "RTT_CREATE",
        "RTT_DATA_MAP",
        "RTT_DATA_MAP_INIT",
        "REC_CREATE",
        "OP_MEM_DONATE",
        "OP_CONTINUE",
        "RTT_DATA_UNMAP",
        "REC_ENTER",
    ] {
        assert!(
            stats.by_fid.get(name).is_some_and(|e| e.1 > 0),
            "no stream got {name} to succeed"
        );
    }
}

/// The machine-wide invariants at a quiescent point of the threaded streams: every granule
/// unlocked, its PAS the one its state implies (NS: Non-secure, or Secure for the secure
/// granules; anything else: Realm), the host able to read exactly the NS-PAS ones, every
/// DELEGATED granule zero, and the realms' structure ([`check_realms`]: RTT trees, refcounts,
/// REC and auxiliary ownership, operations in flight). Returns the granules per state.
fn check_quiescent(rmm: &Rmm<'_, &SimPlatform>, sim: &SimPlatform) -> HashMap<GranuleState, u64> {
    let secure: HashSet<u64> = secure_granules().into_iter().collect();
    let mut by_state: HashMap<GranuleState, u64> = HashMap::new();
    for g in rmm.granules().iter() {
        let a = g.pa().get();
        assert!(!g.is_locked(), "granule {a:#x} left locked");
        let st = g.state_unlocked();
        *by_state.entry(st).or_default() += 1;
        let readable = sim.host_read(g.pa(), &mut [0u8; 1]).is_ok();
        if st == GranuleState::Ns {
            let pas = if secure.contains(&a) {
                Pas::Secure
            } else {
                Pas::NonSecure
            };
            assert_eq!(sim.pas(g.pa()), pas, "NS granule {a:#x}");
            assert_eq!(readable, pas == Pas::NonSecure, "NS granule {a:#x}");
        } else {
            assert_eq!(sim.pas(g.pa()), Pas::Realm, "{st} granule {a:#x}");
            assert!(!readable, "{st} granule {a:#x} is readable as NS");
            if st == GranuleState::Delegated {
                assert!(
                    sim.holds_no_realm_data(g.pa()),
                    "delegated granule {a:#x} holds realm data"
                );
            }
        }
    }
    check_realms(rmm, sim);
    by_state
}

/// What one thread's call must satisfy whatever the other threads do: x0 is a defined
/// answer; the calls whose result depends on no granule (version, features, tracking, GPT,
/// unknown and unimplemented FIDs, the boot commands of an active RMM) give exactly the
/// model's registers; a range (un)delegation either progresses within its range and the
/// per-call limit or fails at its base.
fn check_concurrent_call(regs: &Regs, got: &Regs, stateless: &mut Model) {
    let fid = RmiFid::from_fid((regs[0] as u32) & !SVE_HINT);
    let exact = match fid {
        None => true,
        Some(f) => {
            matches!(
                f,
                RmiFid::VERSION
                    | RmiFid::FEATURES
                    | RmiFid::GRANULE_TRACKING_GET
                    | RmiFid::GPT_L1_CREATE
                    | RmiFid::RMM_CONFIG_SET
                    | RmiFid::RMM_ACTIVATE
            ) || f.class() != cca_abi::rmi::RmiClass::Core
        }
    };
    if exact {
        let e = stateless.expect(regs);
        if let Some(e) = e {
            assert_eq!(*got, e, "registers of {regs:#x?}");
            return;
        }
    }
    assert!(
        got[0] == SMC_UNKNOWN || cca_abi::rmi::RmiReturn::from_reg(got[0]).is_some(),
        "{regs:#x?}: x0 {:#x} is no RMI status",
        got[0]
    );
    if matches!(
        fid,
        Some(RmiFid::GRANULE_RANGE_DELEGATE | RmiFid::GRANULE_RANGE_UNDELEGATE)
    ) {
        let (base, top) = (regs[1], regs[2]);
        if got[0] == 0 {
            assert!(
                got[1] > base
                    && got[1] <= top
                    && (got[1] - base) / G <= MAX_GRANULES_PER_CALL
                    && got[1] % G == 0,
                "{regs:#x?}: progress to {:#x}",
                got[1]
            );
        } else {
            assert_eq!(
                got[1], base,
                "{regs:#x?}: a failed range call reports its base"
            );
        }
    }
}

/// Runs `op` from one thread of the threaded streams (composites as [`run_ops`] expands
/// them, without the model's expectations), checking each call with
/// [`check_concurrent_call`]. `run_page` is the thread's own `RecRun` page. Returns the
/// number of calls made.
fn concurrent_op(
    op: &Op,
    f: &Fixture,
    rmm: &Rmm<'_, &SimPlatform>,
    model: &mut Model,
    stateless: &mut Model,
    run_page: u64,
    by_fid: &mut HashMap<&'static str, (u64, u64)>,
) -> u64 {
    let mut calls = 0;
    let mut call = |regs: Regs, model: &mut Model| {
        let enter = RmiFid::from_fid((regs[0] as u32) & !SVE_HINT) == Some(RmiFid::REC_ENTER);
        if enter {
            // Whatever else is queued, the run this call may start ends with an IRQ.
            f.sim.push_realm_step(irq_step());
        }
        let got = rmm.handle_rmi(&regs);
        check_concurrent_call(&regs, &got, stateless);
        if let Some(fid) = RmiFid::from_fid((regs[0] as u32) & !SVE_HINT) {
            let e = by_fid.entry(fid.name()).or_default();
            e.0 += 1;
            if got[0] == 0 || got[0] & 0xff == RmiStatus::Incomplete as u64 {
                e.1 += 1;
            }
        }
        if got[0] & 0xff == RmiStatus::Incomplete as u64
            && matches!(
                RmiFid::from_fid((regs[0] as u32) & !SVE_HINT),
                Some(RmiFid::REC_CREATE | RmiFid::REC_DESTROY)
            )
        {
            model.handles.push(got[1]);
            if model.handles.len() > 64 {
                model.handles.remove(0);
            }
        }
        calls += 1;
        got
    };
    match op {
        Op::Call(regs) => {
            call(*regs, model);
        }
        Op::HostWrite(a, byte) => {
            let _ = f.sim.host_write(pa(*a), &[*byte; 4096]);
        }
        Op::ConfigSet(a, t, g) => {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&t.to_le_bytes());
            b[8..].copy_from_slice(&g.to_le_bytes());
            if *a % G == 0 && banks().iter().any(|k| *a >= k.base && *a < k.base + k.size) {
                let _ = f.sim.host_write(pa(*a), &b);
            }
            call(
                [
                    u64::from(RmiFid::RMM_CONFIG_SET.fid()),
                    *a,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                ],
                model,
            );
        }
        Op::Realm(RealmOp::RecFull {
            rd,
            rec,
            first,
            mpidr,
        }) => {
            for op in [
                RealmOp::Delegate { first: *rec, n: 1 },
                RealmOp::Delegate {
                    first: *first,
                    n: 16,
                },
                RealmOp::RecCreate {
                    rd: *rd,
                    rec: *rec,
                    mpidr: *mpidr,
                    flags: 1,
                },
            ] {
                let regs = realm_regs(&op, f, model);
                call(regs, model);
            }
            let h = model.handles.len().wrapping_sub(1);
            for op in [
                RealmOp::Donate {
                    h,
                    first: *first,
                    n: 16,
                },
                RealmOp::Continue { h },
            ] {
                let regs = realm_regs(&op, f, model);
                call(regs, model);
            }
        }
        Op::Realm(RealmOp::RecTeardown { rec }) => {
            let regs = realm_regs(&RealmOp::RecDestroy { rec: *rec }, f, model);
            let got = call(regs, model);
            if got[0] & 0xff == RmiStatus::Incomplete as u64 {
                let h = model.handles.len() - 1;
                for _ in 0..3 {
                    let regs = realm_regs(&RealmOp::Reclaim { h, cap: 16 }, f, model);
                    call(regs, model);
                }
                let regs = realm_regs(&RealmOp::Continue { h }, f, model);
                call(regs, model);
            }
        }
        Op::Realm(RealmOp::Ephemeral { rd, with_data }) => {
            let (rd, root, rtt, rtt3, data) = (*rd, *rd + G, *rd + 2 * G, *rd + 3 * G, *rd + 4 * G);
            let mut seq = std::vec![
                RealmOp::Delegate { first: rd, n: 2 },
                RealmOp::Create { rd, root, kind: 0 },
            ];
            if *with_data {
                seq.extend([
                    RealmOp::Delegate { first: rtt, n: 3 },
                    RealmOp::RttCreate {
                        rd,
                        rtt,
                        ipa: 0,
                        level: 2,
                    },
                    RealmOp::RttCreate {
                        rd,
                        rtt: rtt3,
                        ipa: 0,
                        level: 3,
                    },
                    RealmOp::MapInit {
                        rd,
                        data,
                        ipa: 0,
                        flags: 1,
                    },
                ]);
            }
            seq.push(RealmOp::Lifecycle {
                fid: RmiFid::REALM_TERMINATE,
                rd,
            });
            if *with_data {
                seq.extend([
                    RealmOp::Unmap {
                        fid: RmiFid::RTT_DATA_UNMAP,
                        rd,
                        ipa: 0,
                        n: 1,
                        addr_type: 0,
                    },
                    RealmOp::RttOp {
                        fid: RmiFid::RTT_DESTROY,
                        rd,
                        ipa: 0,
                        level: 3,
                    },
                    RealmOp::RttOp {
                        fid: RmiFid::RTT_DESTROY,
                        rd,
                        ipa: 0,
                        level: 2,
                    },
                ]);
            }
            seq.push(RealmOp::Lifecycle {
                fid: RmiFid::REALM_DESTROY,
                rd,
            });
            for op in &seq {
                let regs = realm_regs(op, f, model);
                call(regs, model);
            }
        }
        Op::Realm(RealmOp::Enter {
            rec,
            flags,
            enter0,
            script,
            setup,
            complete,
        }) => {
            if *setup {
                for k in 0..2u64 {
                    let Some(n) = rec_count(rmm, &f.sim, b1(0)) else {
                        break;
                    };
                    let (r, first) = (b1(60 + k), b1(300 + 16 * k));
                    for op in [
                        RealmOp::Delegate { first: r, n: 1 },
                        RealmOp::Delegate { first, n: 16 },
                        RealmOp::RecCreate {
                            rd: b1(0),
                            rec: r,
                            mpidr: cca_abi::rmi::rec_mpidr::from_index(n),
                            flags: 1,
                        },
                    ] {
                        let regs = realm_regs(&op, f, model);
                        call(regs, model);
                    }
                    let h = model.handles.len().wrapping_sub(1);
                    for op in [RealmOp::Donate { h, first, n: 16 }, RealmOp::Continue { h }] {
                        let regs = realm_regs(&op, f, model);
                        call(regs, model);
                    }
                }
                let op = RealmOp::Lifecycle {
                    fid: RmiFid::REALM_ACTIVATE,
                    rd: b1(0),
                };
                let regs = realm_regs(&op, f, model);
                call(regs, model);
            }
            let mut run = [0u8; 0x300];
            run[..8].copy_from_slice(&flags.to_le_bytes());
            run[0x200..0x208].copy_from_slice(&enter0.to_le_bytes());
            let _ = f.sim.host_write(pa(run_page), &run);
            for a in script {
                f.sim.push_realm_step(a.step());
            }
            let regs = [
                u64::from(RmiFid::REC_ENTER.fid()),
                *rec,
                run_page,
                0,
                0,
                0,
                0,
                0,
            ];
            call(regs, model);
            if let (Some(status), Some(target)) = (complete, psci_target(rmm, &f.sim, *rec)) {
                let op = RealmOp::PsciComplete {
                    calling: *rec,
                    target,
                    status: *status,
                };
                let regs = realm_regs(&op, f, model);
                call(regs, model);
            }
        }
        Op::Realm(r) => {
            if let RealmOp::SetRipas {
                rec,
                base,
                n,
                ram,
                change,
                ..
            } = *r
            {
                let ripas = if ram {
                    cca_abi::rmi::Ripas::Ram
                } else {
                    cca_abi::rmi::Ripas::Empty
                };
                rmm.rec_request_ripas_change(
                    pa(rec),
                    base,
                    base.wrapping_add(n * G),
                    ripas,
                    change,
                );
            }
            let regs = realm_regs(r, f, model);
            call(regs, model);
        }
    }
    calls
}

/// A reusable barrier that gives up (panics) when a thread that should arrive panicked.
struct Rendezvous {
    threads: usize,
    arrived: AtomicU64,
    generation: AtomicU64,
    failed: std::sync::atomic::AtomicBool,
}

impl Rendezvous {
    fn new(threads: usize) -> Self {
        Self {
            threads,
            arrived: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            failed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn wait(&self) {
        let gen = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.threads as u64 {
            self.arrived.store(0, Ordering::Release);
            self.generation.fetch_add(1, Ordering::AcqRel);
            return;
        }
        while self.generation.load(Ordering::Acquire) == gen {
            assert!(
                !self.failed.load(Ordering::Acquire),
                "another thread of the stream failed"
            );
            std::thread::yield_now();
        }
    }
}

/// Marks the rendezvous failed when the thread holding it unwinds.
struct FailOnPanic<'a>(&'a Rendezvous);

impl Drop for FailOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.failed.store(true, Ordering::Release);
        }
    }
}

/// The realm [`run_ops`] starts most streams with: two delegated ranges, a realm at b1(0)
/// with RTTs at levels 2 and 3 in both IPA halves.
fn stream_prologue() -> [RealmOp; 7] {
    [
        RealmOp::Delegate { first: b1(0), n: 5 },
        RealmOp::Delegate {
            first: b1(6),
            n: 42,
        },
        RealmOp::Create {
            rd: b1(0),
            root: b1(2),
            kind: 1,
        },
        RealmOp::RttCreate {
            rd: b1(0),
            rtt: b1(4),
            ipa: 0x4000_0000,
            level: 2,
        },
        RealmOp::RttCreate {
            rd: b1(0),
            rtt: b1(6),
            ipa: 0x4000_0000,
            level: 3,
        },
        RealmOp::RttCreate {
            rd: b1(0),
            rtt: b1(7),
            ipa: 1 << 39,
            level: 2,
        },
        RealmOp::RttCreate {
            rd: b1(0),
            rtt: b1(8),
            ipa: 1 << 39,
            level: 3,
        },
    ]
}

#[test]
fn randomized_call_streams_match_the_model_on_four_threads() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{RngAlgorithm, TestRng};
    // CCA_THREADED_CALLS=n runs about n calls (at least 10^5 by default).
    let target: u64 = std::env::var("CCA_THREADED_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    const THREADS: u64 = 4;
    const OPS_PER_ROUND: usize = 100;
    // Each epoch is a fresh machine (as each stream of the single-threaded test is), so
    // operations left in flight do not exhaust the context pool for the rest of the run.
    const ROUNDS_PER_EPOCH: u64 = 20;
    let calls = AtomicU64::new(0);
    let rounds = AtomicU64::new(0);
    let start = std::time::Instant::now();
    let mut peak: HashMap<GranuleState, u64> = HashMap::new();
    let fids: std::sync::Mutex<HashMap<&'static str, (u64, u64)>> = Default::default();
    let mut epoch = 0u64;
    while calls.load(Ordering::Relaxed) < target {
        let f = Fixture::new();
        for s in secure_granules() {
            f.sim.set_pas(pa(s), Pas::Secure);
        }
        let rmm = f.active_rmm();
        let mut m = Model::new();
        m.concurrent = true;
        for op in &stream_prologue() {
            let regs = realm_regs(op, &f, &mut m);
            rmm.handle_rmi(&regs);
        }
        take_debug_logs();
        check_quiescent(&rmm, &f.sim);
        let barrier = Rendezvous::new(THREADS as usize);
        let peaks = std::sync::Mutex::new(&mut peak);
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let (f, rmm, calls, rounds, barrier, peaks, fids) =
                    (&f, &rmm, &calls, &rounds, &barrier, &peaks, &fids);
                s.spawn(move || {
                    let _guard = FailOnPanic(barrier);
                    let mut seed = [0u8; 32];
                    seed[0] = t as u8 + 1;
                    seed[1..9].copy_from_slice(&epoch.to_le_bytes());
                    seed[16] = 0xCA;
                    let mut runner = TestRunner::new_with_rng(
                        Config::default(),
                        TestRng::from_seed(RngAlgorithm::ChaCha, &seed),
                    );
                    let strategy = prop::collection::vec(op_strategy(), OPS_PER_ROUND);
                    let mut model = Model::new();
                    model.concurrent = true;
                    let mut stateless = Model::new();
                    stateless.active = true;
                    // Each thread has its own RecRun page (bank 0 granules 12..16).
                    let run_page = R_RUN + t * G;
                    let mut by_fid = HashMap::new();
                    for _ in 0..ROUNDS_PER_EPOCH {
                        let ops = strategy.new_tree(&mut runner).unwrap().current();
                        let mut n = 0;
                        for op in &ops {
                            n += concurrent_op(
                                op,
                                f,
                                rmm,
                                &mut model,
                                &mut stateless,
                                run_page,
                                &mut by_fid,
                            );
                        }
                        take_debug_logs();
                        calls.fetch_add(n, Ordering::Relaxed);
                        // A quiescent point: every thread has returned from its calls.
                        barrier.wait();
                        if t == 0 {
                            let by_state = check_quiescent(rmm, &f.sim);
                            let mut p = peaks.lock().unwrap();
                            for (k, v) in by_state {
                                let e = p.entry(k).or_default();
                                *e = (*e).max(v);
                            }
                            rounds.fetch_add(1, Ordering::Relaxed);
                        }
                        barrier.wait();
                    }
                    let mut all = fids.lock().unwrap();
                    for (k, v) in by_fid {
                        let e = all.entry(k).or_default();
                        e.0 += v.0;
                        e.1 += v.1;
                    }
                });
            }
        });
        epoch += 1;
    }
    let calls = calls.load(Ordering::Relaxed);
    let mut peak: Vec<_> = peak
        .iter()
        .map(|(k, v)| (std::format!("{k}"), *v))
        .collect();
    peak.sort();
    let fids = fids.into_inner().unwrap();
    let mut fids: Vec<_> = fids.into_iter().filter(|(_, v)| v.1 > 0).collect();
    fids.sort();
    std::eprintln!(
        "randomized_call_streams_match_the_model_on_four_threads: {calls} RMI calls on \
         {THREADS} threads sharing one RMM ({epoch} machines) in {:.1} s; invariants held at \
         all {} quiescent points; most granules seen per state: {peak:?}; realm commands \
         (calls, successes): {fids:?}",
        start.elapsed().as_secs_f64(),
        rounds.load(Ordering::Relaxed),
    );
    assert!(calls >= target);
    for st in ["RD", "RTT", "DATA", "REC"] {
        assert!(
            peak.iter().any(|(k, v)| k == st && *v > 0),
            "the threads never built a {st} granule"
        );
    }
    for name in [
        "RTT_CREATE",
        "RTT_DESTROY",
        "RTT_DATA_MAP_INIT",
        "REC_ENTER",
        "REALM_DESTROY",
    ] {
        assert!(
            fids.iter().any(|(k, v)| *k == name && v.1 > 0),
            "no thread got {name} to succeed"
        );
    }
}

#[test]
fn concurrent_realm_commands_on_one_realm_keep_the_invariants() {
    use cca_abi::rmi::{map_flags, AddrRangeDesc, BlockSize};
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    const GIB: u64 = 1 << 30;
    create_rtt(&rmm, 0, GIB, 2);
    create_rtt(&rmm, 1, UNPROT, 2);
    create_rtt(&rmm, 2, UNPROT, 3);
    // A shared pool of granules the threads fight over: bank 1 granules 64..192.
    delegate(&rmm, b1(64), 128);
    let calls = AtomicU64::new(0);
    let ok = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (rmm, calls, ok) = (&rmm, &calls, &ok);
            s.spawn(move || {
                let mut rng = XorShift(0x2545_F491_4F6C_DD1D ^ ((t + 1) * 0x9E37));
                for _ in 0..400 {
                    let k = rng.below(4);
                    let leaf = GIB + k * (2 << 20);
                    let g = b1(64 + rng.below(128));
                    let page = leaf + rng.below(8) * G;
                    let d = |n: u16, a: u64, u: bool| {
                        AddrRangeDesc {
                            size: BlockSize::L3_4K,
                            count: n,
                            addr: a,
                            undelegated: u,
                        }
                        .encode()
                    };
                    let (fid, args): (RmiFid, [u64; 5]) = match rng.below(10) {
                        0 => (RmiFid::RTT_CREATE, [RD, g, leaf, 3, 0]),
                        1 => (RmiFid::RTT_DESTROY, [RD, leaf, 3, 0, 0]),
                        2 | 3 => (
                            RmiFid::RTT_DATA_MAP,
                            [
                                RD,
                                page,
                                page + 2 * G,
                                map_flags::ADDR_TYPE_SINGLE,
                                d(2, g, false),
                            ],
                        ),
                        4 => (RmiFid::RTT_DATA_UNMAP, [RD, leaf, leaf + 8 * G, 0, 0]),
                        5 => (RmiFid::RTT_READ_ENTRY, [RD, page, 3, 0, 0]),
                        6 => {
                            let fid = if rng.below(2) == 0 {
                                RmiFid::GRANULE_RANGE_DELEGATE
                            } else {
                                RmiFid::GRANULE_RANGE_UNDELEGATE
                            };
                            (fid, [g, g + G, 0, 0, 0])
                        }
                        7 => (RmiFid::RTT_FOLD, [RD, leaf, 3, 0, 0]),
                        8 => (
                            RmiFid::RTT_UNPROT_MAP,
                            [
                                RD,
                                UNPROT + rng.below(8) * G,
                                UNPROT + 8 * G,
                                map_flags::ADDR_TYPE_SINGLE,
                                d(1, 0x7000_0000, true),
                            ],
                        ),
                        _ => (RmiFid::RTT_UNPROT_UNMAP, [RD, UNPROT, UNPROT + 8 * G, 0, 0]),
                    };
                    let out = call(rmm, fid, &args);
                    assert!(
                        cca_abi::rmi::RmiReturn::from_reg(out[0]).is_some(),
                        "{}: {:#x}",
                        fid.name(),
                        out[0]
                    );
                    calls.fetch_add(1, Ordering::Relaxed);
                    if out[0] == 0 {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    take_debug_logs();
    for g in rmm.granules().iter() {
        assert!(!g.is_locked(), "granule {} left locked", g.pa());
        let st = g.state_unlocked();
        if st == GranuleState::Ns {
            assert_ne!(f.sim.pas(g.pa()), Pas::Realm);
        } else {
            assert_eq!(f.sim.pas(g.pa()), Pas::Realm);
            if st == GranuleState::Delegated {
                assert!(f.sim.is_zero(g.pa()));
            }
        }
    }
    check_realms(&rmm, &f.sim);
    std::eprintln!(
        "concurrent_realm_commands: {} calls on 4 threads, {} succeeded; invariants hold",
        calls.load(Ordering::Relaxed),
        ok.load(Ordering::Relaxed)
    );
    assert!(ok.load(Ordering::Relaxed) > 50);
}

#[test]
fn concurrent_rec_operations_share_the_sro_pool() {
    let f = Fixture::new();
    let rmm = f.active_rmm();
    // Four realms of 32-bit IPA space, one per thread: RD b1(16t), root b1(16t+1), REC
    // b1(16t+2), aux from b1(100 + 16t).
    delegate(&rmm, b1(16), 64);
    delegate(&rmm, b1(100), 64);
    for t in 0..4 {
        let p = Params {
            s2sz: 32,
            rtt_num_start: 1,
            rtt_base: b1(16 + 16 * t + 1),
            ..Params::default()
        };
        assert_eq!(
            create_realm_with(&f, &rmm, b1(16 + 16 * t), PARAMS, &p)[0],
            0
        );
    }
    write_rec_params(&f, NS2, 1, 0, 0x1000, &[]);
    for t in 0..4 {
        write_granule_list(&f, B0 + (4 + t) * G, b1(100 + 16 * t), 16);
    }
    let done = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (rmm, done) = (&rmm, &done);
            s.spawn(move || {
                let (rd, rec, list) = (b1(16 + 16 * t), b1(16 + 16 * t + 2), B0 + (4 + t) * G);
                for _ in 0..25 {
                    let out = loop {
                        let out = call(rmm, RmiFid::REC_CREATE, &[rd, rec, NS2]);
                        if out[0] != RmiStatus::Busy as u64 {
                            break out;
                        }
                    };
                    assert_eq!(out[0], 0x10D);
                    let h = out[1];
                    assert_eq!(
                        call(rmm, RmiFid::OP_MEM_DONATE, &[h, list, 16])[..2],
                        [0xD, 16]
                    );
                    assert_eq!(call(rmm, RmiFid::OP_CONTINUE, &[h, 0])[0], 0);
                    let out = loop {
                        let out = call(rmm, RmiFid::REC_DESTROY, &[rec]);
                        if out[0] != RmiStatus::Busy as u64 {
                            break out;
                        }
                    };
                    assert_eq!(out[0], 0x20D);
                    let h = out[1];
                    let out = call(rmm, RmiFid::OP_MEM_RECLAIM, &[h, list + 512, 16]);
                    assert_eq!(out[..2], [0xD, 1]);
                    assert_eq!(call(rmm, RmiFid::OP_CONTINUE, &[h, 0])[0], 0);
                    // The REC index only grows: destroy does not give the index back, so
                    // the realm is reset for the next round.
                    let g = rmm.granules().lock(pa(rd), GranuleState::Rd).unwrap();
                    let mut r = rmm.rd_read(&g);
                    r.rec_count = 0;
                    rmm.rd_write(&g, &r);
                    drop(g);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    take_debug_logs();
    assert_eq!(done.load(Ordering::Relaxed), 100);
    let mut n = 0;
    rmm.for_each_sro(|_| n += 1);
    assert_eq!(n, 0, "every context is free");
    check_realms(&rmm, &f.sim);
}

#[test]
fn concurrent_rec_entries_and_rtt_commands_keep_the_invariants() {
    use cca_abi::rmi::{map_flags, AddrRangeDesc, BlockSize};
    use cca_abi::rsi;
    let f = Fixture::new();
    let rmm = setup_realm(&f);
    const GIB: u64 = 1 << 30;
    create_rtt(&rmm, 0, GIB, 2);
    // Four 2 MiB entries of RIPAS RAM the threads map, unmap, unfold and fold.
    let out = call(&rmm, RmiFid::RTT_INIT_RIPAS, &[RD, GIB, GIB + (8 << 20)]);
    assert_eq!(out[..2], [0, GIB + (8 << 20)]);
    let recs = [b1(100), b1(101)];
    create_rec_ok(&f, &rmm, recs[0], 0, 1, GIB, &[]);
    create_rec_ok(&f, &rmm, recs[1], 1, 1, GIB, &[]);
    assert_eq!(call(&rmm, RmiFid::REALM_ACTIVATE, &[RD])[0], 0);
    // The granules the host threads fight over: bank 1 granules 200..328.
    delegate(&rmm, b1(200), 128);
    let runs = [b0(12), b0(13)];
    let calls = AtomicU64::new(0);
    let entered = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (rmm, f, calls, entered) = (&rmm, &f, &calls, &entered);
            s.spawn(move || {
                let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ ((t + 1) * 0x2545));
                for _ in 0..300 {
                    let leaf = GIB + rng.below(4) * (2 << 20);
                    let page = leaf + rng.below(8) * G;
                    let g = b1(200 + rng.below(128));
                    if t < 2 && rng.below(10) < 7 {
                        // This thread's REC runs: one thing the realm does, then an IRQ.
                        let action: crate::sim::RealmStep = match rng.below(7) {
                            0 => smc_step(std::vec![u64::from(rsi::REALM_CONFIG), page]),
                            1 => smc_step(std::vec![
                                u64::from(rsi::IPA_STATE_GET),
                                leaf,
                                leaf + (2 << 20)
                            ]),
                            2 => smc_step(std::vec![u64::from(rsi::HOST_CALL), page + 0x100]),
                            3 => smc_step(std::vec![
                                u64::from(rsi::IPA_STATE_SET),
                                page,
                                page + 2 * G,
                                rng.below(2),
                                0
                            ]),
                            4 => smc_step(std::vec![u64::from(rsi::MEASUREMENT_EXTEND), 1, 8, t]),
                            5 => {
                                let hpfar = (page >> 12) << 4;
                                std::boxed::Box::new(move |_: &mut crate::run::RealmContext| {
                                    realm_exit(
                                        crate::run::ExitKind::Sync,
                                        (0x24 << 26) | 0x07,
                                        page,
                                        hpfar,
                                    )
                                })
                            }
                            _ => irq_step(),
                        };
                        f.sim.push_realm_step(action);
                        f.sim.push_realm_step(irq_step());
                        // Sometimes the other thread's REC: busy or not, never both running.
                        let r = recs[if rng.below(8) == 0 { 1 - t } else { t } as usize];
                        let out = call(rmm, RmiFid::REC_ENTER, &[r, runs[t as usize]]);
                        assert!(matches!(out[0], 0 | 3), "REC_ENTER: {:#x}", out[0]);
                        if out[0] == 0 {
                            entered.fetch_add(1, Ordering::Relaxed);
                        }
                        calls.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let d = |n: u16, a: u64| {
                        AddrRangeDesc {
                            size: BlockSize::L3_4K,
                            count: n,
                            addr: a,
                            undelegated: false,
                        }
                        .encode()
                    };
                    let (fid, args): (RmiFid, [u64; 5]) = match rng.below(9) {
                        0 => (RmiFid::RTT_CREATE, [RD, g, leaf, 3, 0]),
                        1 => (RmiFid::RTT_DESTROY, [RD, leaf, 3, 0, 0]),
                        2 | 3 => (
                            RmiFid::RTT_DATA_MAP,
                            [RD, page, page + 2 * G, map_flags::ADDR_TYPE_SINGLE, d(2, g)],
                        ),
                        4 => (RmiFid::RTT_DATA_UNMAP, [RD, leaf, leaf + 8 * G, 0, 0]),
                        5 => (RmiFid::RTT_FOLD, [RD, leaf, 3, 0, 0]),
                        6 => (RmiFid::GRANULE_RANGE_UNDELEGATE, [g, g + G, 0, 0, 0]),
                        7 => (RmiFid::GRANULE_RANGE_DELEGATE, [g, g + G, 0, 0, 0]),
                        _ => {
                            let r = recs[rng.below(2) as usize];
                            (RmiFid::RTT_SET_RIPAS, [RD, r, page, page + 2 * G, 0])
                        }
                    };
                    let out = call(rmm, fid, &args);
                    assert!(
                        cca_abi::rmi::RmiReturn::from_reg(out[0]).is_some(),
                        "{}: {:#x}",
                        fid.name(),
                        out[0]
                    );
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    take_debug_logs();
    for g in rmm.granules().iter() {
        assert!(!g.is_locked(), "granule {} left locked", g.pa());
    }
    // check_realms also checks that no REC is claimed and the RD counts no running REC.
    check_realms(&rmm, &f.sim);
    std::eprintln!(
        "concurrent_rec_entries: {} calls on 4 threads, {} REC_ENTERs ran the realm; invariants hold",
        calls.load(Ordering::Relaxed),
        entered.load(Ordering::Relaxed)
    );
    assert!(entered.load(Ordering::Relaxed) > 50);
    assert_eq!(call(&rmm, RmiFid::REALM_TERMINATE, &[RD])[0], 0);
}
