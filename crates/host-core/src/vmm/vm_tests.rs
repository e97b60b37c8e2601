//! Tests of the VMM's objects against the RMM core in-process: the granule pool, the RTT
//! manager, the realm object, guest memory and `Vm::build` / `Vm::destroy`.
//!
//! Every RMI call goes to `rmm_core::Rmm::handle_rmi` on a `SimPlatform`, which tracks the PAS
//! of every granule, so "nothing stays delegated" is checked against the simulated GPT, not
//! against the VMM's own bookkeeping. The harness here ([`Machine`], [`Rig`], the standard
//! VM of [`standard_spec`]) is shared with `runloop_tests` and `linux_tests`.

use super::error::VmError;
use super::granules::GranulePool;
use super::memory::{GuestMemory, PageState};
use super::realm::{Realm, RealmLife};
use super::vm::{Load, Vm, VmSpec};
use crate::boot::tests::Mem;
use crate::rmi::{Conduit, Rmi};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use cca_abi::el3::{El3Error, MemoryBank};
use cca_abi::rmi::{
    rec_mpidr, RealmParams, RealmState, RecParams, RmiFid, RmiStatus, REC_AUX_GRANULES,
    REC_PARAMS_FLAG_RUNNABLE,
};
use cca_abi::GRANULE_SIZE as G;
use rmm_core::sim::{Pas, SimPlatform};
use rmm_core::{GranuleTable, Pa, Rmm, SroStorage};
use std::cell::RefCell;
use std::sync::atomic::AtomicU16;
use std::sync::{Arc, Mutex, MutexGuard};
use zerocopy::{FromBytes, FromZeros};

/// One MiB.
pub(super) const MIB: u64 = 1 << 20;
/// A 2 MiB block.
pub(super) const BLOCK: u64 = 2 * MIB;
/// Host PA of the simulated DRAM (far from the realm's IPAs, so the two are not confused).
pub(super) const DRAM: u64 = 0x2_0000_0000;
/// Size of the simulated DRAM of the standard machine.
pub(super) const DRAM_SIZE: u64 = 16 * MIB;
/// The first 2 MiB of DRAM hold the images the host loads from; the pool is the rest.
pub(super) const POOL: (u64, u64) = (DRAM + BLOCK, DRAM_SIZE - BLOCK);
/// Guest RAM (IPA) of the standard VM: two 2 MiB blocks.
pub(super) const RAM: u64 = 0x8000_0000;
/// Its size.
pub(super) const RAM_SIZE: u64 = 2 * BLOCK;
/// The IPA width of the standard VM.
pub(super) const IPA_BITS: u64 = 33;
/// Its unprotected-alias bit.
pub(super) const SHARED: u64 = 1 << (IPA_BITS - 1);
/// Host PA of the measured image of the standard VM.
pub(super) const IMAGE_PA: u64 = DRAM + 0x1000;
/// Its length: three granules and a bit, so the last page is zero-padded.
pub(super) const IMAGE_LEN: u64 = 3 * G + 100;
/// Host PA of the unmeasured blob of the standard VM.
pub(super) const BLOB_PA: u64 = DRAM + 0x10_0000;
/// Its length.
pub(super) const BLOB_LEN: u64 = 2 * G;
/// Where the blob goes in the guest (still in the first block).
pub(super) const BLOB_IPA: u64 = RAM + 0x10_0000;

/// Locks a mutex, ignoring poisoning (a failed assertion in a realm step must not hide the
/// test's own message).
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// State shared between a test and the things it hands away.
pub(super) type Shared<T> = Arc<Mutex<T>>;

/// A simulated machine with an RMM on it.
pub(super) struct Machine {
    pub(super) sim: SimPlatform,
    banks: [MemoryBank; 1],
    storage: Vec<AtomicU16>,
    sro: SroStorage,
}

impl Machine {
    /// `size` bytes of DRAM at [`DRAM`], all Non-secure.
    pub(super) fn new(size: u64) -> Self {
        let banks = [MemoryBank { base: DRAM, size }];
        Self {
            sim: SimPlatform::new(&banks),
            storage: rmm_core::sim::granule_storage(&banks),
            sro: SroStorage::new(),
            banks,
        }
    }

    /// The standard machine.
    pub(super) fn standard() -> Self {
        Self::new(DRAM_SIZE)
    }

    /// An RMM on the machine, activated (`RMM_ACTIVATE`).
    pub(super) fn rmm(&self) -> Rmm<'_, &SimPlatform> {
        let rmm = Rmm::new(
            &self.sim,
            GranuleTable::new(&self.banks, &self.storage).unwrap(),
            &self.sro,
        )
        .unwrap();
        let mut regs = [0u64; 8];
        regs[0] = u64::from(RmiFid::RMM_ACTIVATE.fid());
        assert_eq!(rmm.handle_rmi(&regs)[0], 0, "RMM_ACTIVATE");
        rmm
    }

    /// The granules of DRAM that are not Non-secure (delegated, or in a realm).
    pub(super) fn not_ns(&self) -> Vec<u64> {
        let b = self.banks[0];
        (0..b.size / G)
            .map(|i| b.base + i * G)
            .filter(|&pa| self.sim.pas(Pa::new(pa)) != Pas::NonSecure)
            .collect()
    }

    /// Asserts that every granule of DRAM is Non-secure.
    pub(super) fn assert_all_ns(&self, when: &str) {
        let left = self.not_ns();
        assert!(
            left.is_empty(),
            "{when}: {} granule(s) not NS, the first at {:#x}",
            left.len(),
            left[0]
        );
    }

    /// Writes `data` to host memory at `pa` (any length, across granules).
    pub(super) fn put(&self, pa: u64, data: &[u8]) {
        let mut at = pa;
        let mut rest = data;
        while !rest.is_empty() {
            let room = (G - at % G) as usize;
            let n = room.min(rest.len());
            self.sim.host_write(Pa::new(at), &rest[..n]).unwrap();
            at += n as u64;
            rest = &rest[n..];
        }
    }
}

/// One RMI call as the wire saw it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Call {
    /// x0..x7 passed.
    pub(super) regs: [u64; 8],
    /// x0..x7 returned.
    pub(super) ret: [u64; 8],
}

impl Call {
    /// True when the call was `fid`.
    pub(super) fn is(&self, fid: RmiFid) -> bool {
        self.regs[0] == u64::from(fid.fid())
    }
}

/// What the conduit records and what it is told to tamper with.
#[derive(Default)]
pub(super) struct Wire {
    /// Every call, in order.
    pub(super) calls: Vec<Call>,
    /// Replaces the exit reason of the next successful `REC_ENTER` (a newer RMM's exits).
    pub(super) exit_reason: Option<u64>,
}

/// The conduit: a direct call into the RMM core, recorded.
pub(super) struct Core<'a, 'b> {
    rmm: &'a Rmm<'b, &'b SimPlatform>,
    sim: &'b SimPlatform,
    wire: Shared<Wire>,
}

impl Conduit for Core<'_, '_> {
    fn smc(&mut self, regs: [u64; 8]) -> [u64; 8] {
        let ret = self.rmm.handle_rmi(&regs);
        let mut w = lock(&self.wire);
        if regs[0] == u64::from(RmiFid::REC_ENTER.fid()) && ret[0] == 0 {
            if let Some(reason) = w.exit_reason.take() {
                let run = regs[2];
                self.sim
                    .host_write(Pa::new(run + 0x800), &reason.to_le_bytes())
                    .unwrap();
            }
        }
        w.calls.push(Call { regs, ret });
        ret
    }
}

std::thread_local! {
    /// What the RMI client and the VMM printed on this test's thread.
    static LOG: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The client's output: this thread's [`LOG`] (a unit struct, so the `'static` borrow the
/// client wants costs no memory).
struct Sink;

impl core::fmt::Write for Sink {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        LOG.with(|l| l.borrow_mut().push_str(s));
        Ok(())
    }
}

/// Everything a test drives the VMM with.
pub(super) struct Rig<'a, 'b> {
    /// The machine.
    pub(super) sim: &'b SimPlatform,
    /// The RMI client.
    pub(super) rmi: Rmi<'static, Core<'a, 'b>>,
    /// The host's view of its memory.
    pub(super) mem: Mem<'b>,
    /// The recorded calls.
    pub(super) wire: Shared<Wire>,
}

impl<'a, 'b> Rig<'a, 'b> {
    /// A client of `rmm` on machine `m`; clears this thread's log.
    pub(super) fn new(m: &'b Machine, rmm: &'a Rmm<'b, &'b SimPlatform>) -> Self {
        LOG.with(|l| l.borrow_mut().clear());
        let wire = Shared::default();
        let sink: &'static mut Sink = Box::leak(Box::new(Sink));
        Self {
            sim: &m.sim,
            rmi: Rmi::new(
                Core {
                    rmm,
                    sim: &m.sim,
                    wire: wire.clone(),
                },
                sink,
            ),
            mem: Mem(&m.sim),
            wire,
        }
    }

    /// What was printed so far.
    pub(super) fn log(&self) -> String {
        LOG.with(|l| l.borrow().clone())
    }

    /// The calls of `fid` so far.
    pub(super) fn calls(&self, fid: RmiFid) -> Vec<Call> {
        lock(&self.wire)
            .calls
            .iter()
            .filter(|c| c.is(fid))
            .copied()
            .collect()
    }

    /// Number of calls so far.
    pub(super) fn ncalls(&self) -> usize {
        lock(&self.wire).calls.len()
    }

    /// The realm descriptor at `rd`, read from outside the machine.
    pub(super) fn rd(&self, rd: u64) -> rmm_core::Rd {
        let page = self.sim.peek(Pa::new(rd));
        rmm_core::Rd::read_from_bytes(&page[..core::mem::size_of::<rmm_core::Rd>()]).unwrap()
    }
}

/// The pattern of test images: never zero, so padding and scrubbing show.
pub(super) fn pattern(len: u64, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 + 1 + seed % 4).collect()
}

/// Realm parameters of the standard VM.
pub(super) fn params(hash_algo: u8) -> RealmParams {
    let mut p = RealmParams::new_zeroed();
    p.s2sz = IPA_BITS;
    p.hash_algo = hash_algo;
    p.num_bps = 2;
    p.num_wps = 2;
    p.rpv[0] = 0x5A;
    p
}

/// Where REC `i` of the standard VM starts.
pub(super) fn entry(i: usize) -> u64 {
    RAM + 0x1000 * i as u64
}

/// REC parameters: `cpus` RECs, the first `runnable` of them runnable.
pub(super) fn recs(cpus: usize, runnable: usize) -> Vec<RecParams> {
    (0..cpus)
        .map(|i| {
            let mut p = RecParams::new_zeroed();
            p.mpidr = rec_mpidr::from_index(i as u64);
            if i < runnable {
                p.flags = REC_PARAMS_FLAG_RUNNABLE;
                p.pc = entry(i);
                p.gprs[0] = 0x1000 + i as u64;
            }
            p
        })
        .collect()
}

/// The loads of the standard VM: the measured image at [`RAM`] (its last page zero-padded)
/// and the unmeasured blob at [`BLOB_IPA`].
pub(super) fn standard_loads() -> Vec<Load> {
    vec![
        Load {
            ipa: RAM,
            src: IMAGE_PA,
            len: IMAGE_LEN,
            measured: true,
        },
        Load {
            ipa: BLOB_IPA,
            src: BLOB_PA,
            len: BLOB_LEN,
            measured: false,
        },
    ]
}

/// Puts the standard VM's image and blob into host memory.
pub(super) fn put_images(m: &Machine) {
    m.put(IMAGE_PA, &pattern(IMAGE_LEN, 0));
    m.put(BLOB_PA, &pattern(BLOB_LEN, 1));
}

/// A VM spec over the given pieces, RIPAS RAM over all of RAM.
pub(super) fn standard_spec<'s>(recs: &'s [RecParams], loads: &'s [Load]) -> VmSpec<'s> {
    VmSpec {
        params: params(0),
        ram: (RAM, RAM_SIZE),
        initial_ram: (RAM, RAM_SIZE),
        recs,
        loads,
        initial_vmcr: 0,
    }
}

/// Builds `spec` from the pool [`POOL`] with kvmtool's platform.
pub(super) fn build(rig: &mut Rig<'_, '_>, spec: &VmSpec<'_>) -> Result<Vm, VmError> {
    build_in(rig, spec, POOL.0, POOL.1)
}

/// Builds `spec` from the pool `[base, base + size)`.
pub(super) fn build_in(
    rig: &mut Rig<'_, '_>,
    spec: &VmSpec<'_>,
    base: u64,
    size: u64,
) -> Result<Vm, VmError> {
    let pool = GranulePool::new(base, size)?;
    let (vgic, bus) = super::linux::platform(spec.recs.len())?;
    Vm::build(&mut rig.rmi, &mut rig.mem, pool, spec, vgic, bus)
}

/// Tears `vm` down and checks that nothing stayed behind, in the VMM's books and in the
/// machine's GPT.
pub(super) fn destroy_clean(
    m: &Machine,
    rig: &mut Rig<'_, '_>,
    vm: &mut Vm,
) -> super::vm::Teardown {
    let t = vm
        .destroy(&mut rig.rmi, &mut rig.mem)
        .unwrap_or_else(|e| panic!("teardown failed: {e}\n{}", rig.log()));
    assert_eq!(t.still_delegated, 0, "{t:?}");
    assert_eq!(t.not_scrubbed, 0, "{t:?}");
    assert_eq!(vm.pool.delegated_granules(), 0);
    assert_eq!(
        vm.pool.free_granules(),
        vm.pool.range().1.saturating_sub(vm.pool.range().0) / G,
        "every granule is back in the pool"
    );
    assert_eq!(vm.realm.life, RealmLife::Destroyed);
    m.assert_all_ns("after teardown");
    t
}

/// The RMI error inside a `VmError::Rmi`, with what the VMM was doing.
pub(super) fn rmi_err(e: &VmError) -> (&'static str, crate::client::RmiError) {
    match e {
        VmError::Rmi { doing, err } => (doing, *err),
        other => panic!("expected an RMI error, got {other:?}"),
    }
}

// ------------------------------------------------------------------------------ granule pool

#[test]
fn pool_allocation_failures() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut p = GranulePool::new(POOL.0, 8 * G).unwrap();
    assert_eq!(
        p.alloc(9, G, "nine"),
        Err(VmError::OutOfMemory {
            what: "nine",
            granules: 9
        })
    );
    let a = p.alloc_delegated(&mut rig.rmi, 8, G, "all").unwrap();
    assert_eq!(p.free_granules(), 0);
    assert_eq!(p.delegated_granules(), 8);
    assert_eq!(m.not_ns().len(), 8, "the GPT agrees");
    assert_eq!(
        p.alloc(1, G, "one more"),
        Err(VmError::OutOfMemory {
            what: "one more",
            granules: 1
        })
    );
    assert_eq!(
        p.alloc_delegated(&mut rig.rmi, 1, G, "a delegated one"),
        Err(VmError::OutOfMemory {
            what: "a delegated one",
            granules: 1
        })
    );
    assert_eq!(
        p.free(a, 8),
        Err(VmError::Config("freeing granules that are still delegated"))
    );
    // Outside the pool: refused before any RMI call.
    let calls = rig.ncalls();
    assert!(matches!(
        p.delegate(&mut rig.rmi, POOL.0 - G, 1),
        Err(VmError::Config(_))
    ));
    assert!(matches!(
        p.undelegate(&mut rig.rmi, a + 8 * G, 1),
        Err(VmError::Config(_))
    ));
    assert!(matches!(p.free(a + 7 * G, 2), Err(VmError::Config(_))));
    assert_eq!(rig.ncalls(), calls);
    assert!(p.is_delegated(a + 7 * G) && !p.is_delegated(a + 8 * G));
    // Delegated twice: the RMM refuses, the error names the command.
    let (doing, err) = rmi_err(&p.delegate(&mut rig.rmi, a, 1).unwrap_err());
    assert_eq!(doing, "delegating granules");
    assert_eq!(err.fid, RmiFid::GRANULE_RANGE_DELEGATE);
    assert_eq!(err.status(), Some(RmiStatus::ErrorInput));
    p.free_delegated(&mut rig.rmi, a, 8).unwrap();
    assert_eq!((p.free_granules(), p.delegated_granules()), (8, 0));
    m.assert_all_ns("after free_delegated");
    // Undelegating what is not delegated.
    let (doing, err) = rmi_err(&p.undelegate(&mut rig.rmi, a, 1).unwrap_err());
    assert_eq!(doing, "undelegating granules");
    assert_eq!(err.fid, RmiFid::GRANULE_RANGE_UNDELEGATE);
}

#[test]
fn delegated_granules_come_back_scrubbed() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut p = GranulePool::new(POOL.0, 4 * G).unwrap();
    let a = p.alloc(4, G, "t").unwrap();
    m.put(a, &pattern(4 * G, 0));
    p.delegate(&mut rig.rmi, a, 4).unwrap();
    assert!((0..4).all(|i| m.sim.pas(Pa::new(a + i * G)) == Pas::Realm));
    p.undelegate(&mut rig.rmi, a, 4).unwrap();
    assert!((0..4).all(|i| m.sim.is_zero(Pa::new(a + i * G))));
    p.free(a, 4).unwrap();
    m.assert_all_ns("after undelegate");
}

#[test]
fn el3_refusing_a_delegation_leaves_nothing_delegated() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut p = GranulePool::new(POOL.0, 4 * G).unwrap();
    // The third of four granules: the first call delegates two, the second fails.
    m.sim
        .refuse_delegate(Pa::new(POOL.0 + 2 * G), El3Error::BadPas);
    let (doing, err) = rmi_err(&p.alloc_delegated(&mut rig.rmi, 4, G, "t").unwrap_err());
    assert_eq!(doing, "delegating granules");
    assert_eq!(err.fid, RmiFid::GRANULE_RANGE_DELEGATE);
    assert_eq!(err.x1, POOL.0 + 2 * G, "where the range stopped");
    assert_eq!((p.free_granules(), p.delegated_granules()), (4, 0));
    m.assert_all_ns("after the refused delegation");
}

#[test]
fn an_undelegation_the_rmm_refuses_is_reported_and_tracked() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut p = GranulePool::new(POOL.0, 8 * G).unwrap();
    let mut r = Realm::create(&mut rig.rmi, &mut rig.mem, &mut p, params(0)).unwrap();
    // The RD is in use: the RMM refuses to undelegate it.
    let (doing, err) = rmi_err(&p.free_delegated(&mut rig.rmi, r.rd, 1).unwrap_err());
    assert_eq!(doing, "undelegating granules");
    assert_eq!(err.fid, RmiFid::GRANULE_RANGE_UNDELEGATE);
    assert_eq!(err.status(), Some(RmiStatus::ErrorInput));
    // The pool does not pretend: the RD is still delegated and allocated.
    assert!(p.is_delegated(r.rd));
    assert_eq!(p.delegated_granules(), 2);
    r.activate(&mut rig.rmi).unwrap();
    r.destroy(&mut rig.rmi, &mut p).unwrap();
    m.assert_all_ns("after the realm's destruction");
}

#[test]
fn a_partly_failed_delegation_is_undone_or_tracked() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut p = GranulePool::new(POOL.0, 4 * G).unwrap();
    let a = p.alloc(4, G, "t").unwrap();
    m.sim.refuse_delegate(Pa::new(a + 2 * G), El3Error::BadPas);
    assert!(p.delegate(&mut rig.rmi, a, 4).is_err());
    // Whatever happened, the pool's books and the GPT must agree; today two granules are
    // Realm while the pool says none is delegated, so no teardown ever returns them.
    assert_eq!(
        p.delegated_granules() as usize,
        m.not_ns().len(),
        "pool and GPT disagree"
    );
}

#[test]
fn aligned_allocation_is_first_fit_in_an_unaligned_pool() {
    // Indices 511, 1023 and 1535 are 2 MiB aligned; 1023..1535 is free once 0..600 is not.
    let mut p = GranulePool::new(0x1000, 6 * MIB).unwrap();
    p.alloc(100, G, "t").unwrap();
    let gap = p.alloc(500, G, "t").unwrap();
    p.alloc(1, G, "t").unwrap(); // index 600
    p.free(gap, 500).unwrap();
    assert_eq!(
        p.alloc(512, BLOCK, "a block"),
        Ok(0x1000 + 1023 * G),
        "the busy granule at index 600 makes the search skip the free block at 1023"
    );
}

// ---------------------------------------------------------------------------------- realm

#[test]
fn realm_create_rejections_return_every_granule() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut p = GranulePool::new(POOL.0, 64 * G).unwrap();
    for bad in [31, 49] {
        let mut q = params(0);
        q.s2sz = bad;
        let calls = rig.ncalls();
        assert!(matches!(
            Realm::create(&mut rig.rmi, &mut rig.mem, &mut p, q),
            Err(VmError::Config(_))
        ));
        assert_eq!(rig.ncalls(), calls, "no RMI call for an s2sz of {bad}");
    }
    let mut q = params(0);
    q.num_bps = 0;
    let e = Realm::create(&mut rig.rmi, &mut rig.mem, &mut p, q).unwrap_err();
    let (doing, err) = rmi_err(&e);
    assert_eq!(doing, "creating the realm");
    assert_eq!(err.fid, RmiFid::REALM_CREATE);
    assert_eq!(err.status(), Some(RmiStatus::ErrorInput));
    assert!(e.to_string().contains("REALM_CREATE"), "{e}");
    assert_eq!((p.free_granules(), p.delegated_granules()), (64, 0));
    m.assert_all_ns("after a rejected REALM_CREATE");
}

#[test]
fn realm_create_out_of_memory_names_what_is_missing() {
    for (granules, what) in [(1, "the realm's address-list page"), (2, "the RD")] {
        let m = Machine::standard();
        let rmm = m.rmm();
        let mut rig = Rig::new(&m, &rmm);
        let mut p = GranulePool::new(POOL.0, granules * G).unwrap();
        let e = Realm::create(&mut rig.rmi, &mut rig.mem, &mut p, params(0)).unwrap_err();
        assert!(
            matches!(e, VmError::OutOfMemory { what: w, .. } if w == what),
            "{granules} granules: {e:?}"
        );
        assert_eq!(p.delegated_granules(), 0);
        m.assert_all_ns("after running out of memory");
    }
}

#[test]
fn realm_create_without_room_for_the_starting_rtts_undelegates_the_rd() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut p = GranulePool::new(POOL.0, 3 * G).unwrap();
    let e = Realm::create(&mut rig.rmi, &mut rig.mem, &mut p, params(0)).unwrap_err();
    assert!(matches!(
        e,
        VmError::OutOfMemory {
            what: "the starting RTTs",
            ..
        }
    ));
    assert_eq!(p.delegated_granules(), 0, "the RD is still delegated");
    assert_eq!(p.free_granules(), 3, "the NS pages are still allocated");
    m.assert_all_ns("after running out of memory");
}

#[test]
fn realm_lifecycle() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut p = GranulePool::new(POOL.0, 64 * G).unwrap();
    let mut r = Realm::create(&mut rig.rmi, &mut rig.mem, &mut p, params(1)).unwrap();
    assert_eq!(r.life, RealmLife::New);
    assert_eq!((r.ipa_bits, r.shared_bit(), r.root.1), (33, SHARED, 1));
    assert_eq!(r.params.rtt_level_start, 1);
    assert_eq!(r.params.rtt_base, r.root.0);
    assert_eq!(p.delegated_granules(), 2, "RD and the starting RTT");
    let rd = rig.rd(r.rd);
    assert_eq!(rd.realm_state(), RealmState::New);
    assert_eq!((rd.ipa_bits, rd.hash_algo, rd.rpv[0]), (33, 1, 0x5A));
    r.activate(&mut rig.rmi).unwrap();
    assert_eq!(r.life, RealmLife::Active);
    assert_eq!(rig.rd(r.rd).realm_state(), RealmState::Active);
    // Activating twice: the RMM refuses.
    let (doing, err) = rmi_err(&r.activate(&mut rig.rmi).unwrap_err());
    assert_eq!(doing, "activating the realm");
    assert_eq!(err.fid, RmiFid::REALM_ACTIVATE);
    assert_eq!(err.status(), Some(RmiStatus::ErrorRealm));
    r.terminate(&mut rig.rmi).unwrap();
    assert_eq!(r.life, RealmLife::Terminated);
    assert_eq!(rig.calls(RmiFid::REALM_TERMINATE).len(), 1);
    assert_eq!(r.destroy(&mut rig.rmi, &mut p).unwrap(), 0);
    assert_eq!(r.life, RealmLife::Destroyed);
    assert_eq!(
        rig.calls(RmiFid::REALM_TERMINATE).len(),
        1,
        "no second REALM_TERMINATE"
    );
    assert_eq!((p.free_granules(), p.delegated_granules()), (64, 0));
    m.assert_all_ns("after REALM_DESTROY");
}

#[test]
fn a_realm_that_never_ran_is_destroyed() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut p = GranulePool::new(POOL.0, 8 * G).unwrap();
    let mut r = Realm::create(&mut rig.rmi, &mut rig.mem, &mut p, params(0)).unwrap();
    // The RMM destroys only ZOMBIE realms: a NEW one must be terminated first.
    r.destroy(&mut rig.rmi, &mut p)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rig.calls(RmiFid::REALM_TERMINATE).len(), 1);
    assert_eq!(p.delegated_granules(), 0);
    m.assert_all_ns("after destroying a NEW realm");
}

// ----------------------------------------------------------------------------------- RTTs

/// `RTT_INIT_RIPAS` of one granule at `ipa`, creating the tables it needs.
fn init_one(
    rig: &mut Rig<'_, '_>,
    p: &mut GranulePool,
    r: &mut Realm,
    ipa: u64,
) -> Result<u64, VmError> {
    let rd = r.rd;
    r.rtts
        .with_tables(&mut rig.rmi, p, rd, (ipa, 3), "RTT_INIT_RIPAS", |c| {
            c.rtt_init_ripas(rd, ipa, ipa + G)
        })
}

#[test]
fn rtts_are_created_on_demand_and_destroyed_deepest_first() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut p = GranulePool::new(POOL.0, 64 * G).unwrap();
    let mut r = Realm::create(&mut rig.rmi, &mut rig.mem, &mut p, params(0)).unwrap();
    // The first walk stops at level 1: the host creates levels 2 and 3 and tries again.
    assert_eq!(init_one(&mut rig, &mut p, &mut r, RAM).unwrap(), RAM + G);
    assert_eq!((r.rtts.len(), r.rtts.created), (2, 2));
    let creates = rig.calls(RmiFid::RTT_CREATE);
    assert_eq!(creates.len(), 2);
    assert_eq!(creates[0].regs[3..5], [RAM, 2], "level 2 first");
    assert_eq!(creates[1].regs[3..5], [RAM, 3]);
    assert_eq!(r.rtts.get(RAM, 2), Some(creates[0].regs[2]));
    assert_eq!(r.rtts.get(RAM + 0x1234, 3), Some(creates[1].regs[2]));
    // The same level 3 table: nothing new. Another block: one more table.
    init_one(&mut rig, &mut p, &mut r, RAM + G).unwrap();
    assert_eq!(r.rtts.len(), 2);
    init_one(&mut rig, &mut p, &mut r, RAM + BLOCK).unwrap();
    assert_eq!(r.rtts.len(), 3);
    // Another GiB: two more.
    init_one(&mut rig, &mut p, &mut r, 0x4000_0000).unwrap();
    assert_eq!(r.rtts.len(), 5);
    assert_eq!(p.delegated_granules(), 2 + 5);
    assert_eq!(m.not_ns().len(), 2 + 5);
    r.activate(&mut rig.rmi).unwrap();
    let before = rig.ncalls();
    assert_eq!(r.destroy(&mut rig.rmi, &mut p).unwrap(), 5);
    let destroys: Vec<u64> = lock(&rig.wire).calls[before..]
        .iter()
        .filter(|c| c.is(RmiFid::RTT_DESTROY))
        .map(|c| c.regs[3])
        .collect();
    assert_eq!(destroys, [3, 3, 3, 2, 2], "deepest level first");
    assert!(r.rtts.is_empty());
    assert_eq!((p.free_granules(), p.delegated_granules()), (64, 0));
    m.assert_all_ns("after the realm's destruction");
}

#[test]
fn rtt_errors_name_the_command_and_return_the_granule() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut p = GranulePool::new(POOL.0, 8 * G).unwrap();
    let mut r = Realm::create(&mut rig.rmi, &mut rig.mem, &mut p, params(0)).unwrap();
    let rd = r.rd;
    // Levels outside 1..=3 are the VMM's mistake.
    assert!(matches!(
        r.rtts.create_levels(&mut rig.rmi, &mut p, rd, RAM, 2, 4),
        Err(VmError::Config(_))
    ));
    assert!(matches!(
        r.rtts.create_levels(&mut rig.rmi, &mut p, rd, RAM, 3, 2),
        Err(VmError::Config(_))
    ));
    // An IPA outside the realm's IPA space: RTT_CREATE is refused, the granule returned.
    let e = r
        .rtts
        .create_levels(&mut rig.rmi, &mut p, rd, 1 << 40, 2, 2)
        .unwrap_err();
    let (doing, err) = rmi_err(&e);
    assert_eq!(doing, "creating an RTT");
    assert_eq!(err.fid, RmiFid::RTT_CREATE);
    assert_eq!(p.delegated_granules(), 2);
    assert!(r.rtts.is_empty());
    // A command failing with something else than ERROR_RTT is not retried.
    let e = r
        .rtts
        .with_tables(&mut rig.rmi, &mut p, rd, (RAM, 3), "RTT_INIT_RIPAS", |c| {
            c.rtt_init_ripas(rd, RAM, SHARED + G)
        })
        .unwrap_err();
    let (doing, err) = rmi_err(&e);
    assert_eq!(doing, "RTT_INIT_RIPAS");
    assert_eq!(err.fid, RmiFid::RTT_INIT_RIPAS);
    assert_eq!(err.status(), Some(RmiStatus::ErrorInput));
    assert!(r.rtts.is_empty());
    // No table to fold.
    assert_eq!(r.rtts.fold(&mut rig.rmi, &mut p, rd, RAM, 3), Ok(false));
    // The pool runs dry while tables are created: the level 2 table stays, level 3 fails.
    let free = p.free_granules();
    let mut hog = Vec::new();
    for _ in 0..free - 1 {
        hog.push(p.alloc(1, G, "hog").unwrap());
    }
    let e = init_one(&mut rig, &mut p, &mut r, RAM).unwrap_err();
    assert_eq!(
        e,
        VmError::OutOfMemory {
            what: "an RTT",
            granules: 1
        }
    );
    assert_eq!(r.rtts.len(), 1);
    for h in hog {
        p.free(h, 1).unwrap();
    }
    // A table with one live entry is not folded and cannot be destroyed.
    init_one(&mut rig, &mut p, &mut r, RAM).unwrap();
    let data = p.alloc_delegated(&mut rig.rmi, 1, G, "data").unwrap();
    rig.rmi.data_map_init(rd, data, RAM, IMAGE_PA, 0).unwrap();
    assert_eq!(r.rtts.fold(&mut rig.rmi, &mut p, rd, RAM, 3), Ok(false));
    assert_eq!(r.rtts.len(), 2);
    r.activate(&mut rig.rmi).unwrap();
    let e = r.destroy(&mut rig.rmi, &mut p).unwrap_err();
    let (doing, err) = rmi_err(&e);
    assert_eq!(doing, "destroying an RTT");
    assert_eq!(err.fid, RmiFid::RTT_DESTROY);
    assert_eq!(err.status(), Some(RmiStatus::ErrorRtt));
    // Unmap the page and the teardown goes through.
    let u = rig.rmi.data_unmap(rd, RAM, RAM + G).unwrap();
    assert_eq!(u.next, RAM + G);
    p.free_delegated(&mut rig.rmi, data, 1).unwrap();
    r.destroy(&mut rig.rmi, &mut p).unwrap();
    assert_eq!(p.delegated_granules(), 0);
    m.assert_all_ns("after the teardown");
}

// --------------------------------------------------------------------------- Vm::build

/// The RIM the standard VM must have, computed from what it loads.
fn standard_rim(hash_algo: u8, recs: &[RecParams]) -> [u8; 64] {
    let mut m = cca_measure::Measurement::realm_create(&params(hash_algo)).unwrap();
    let image = pattern(IMAGE_LEN, 0);
    for (k, chunk) in image.chunks(G as usize).enumerate() {
        let mut page = [0u8; G as usize];
        page[..chunk.len()].copy_from_slice(chunk);
        m.extend_data(RAM + k as u64 * G, 1, &page);
    }
    for k in 0..BLOB_LEN / G {
        m.extend_data(BLOB_IPA + k * G, 0, &[0; G as usize]);
    }
    for p in recs {
        m.extend_rec(p);
    }
    m.slot
}

#[test]
fn build_loads_creates_recs_and_activates() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    put_images(&m);
    let recs = recs(2, 1);
    let loads = standard_loads();
    let mut vm = build(&mut rig, &standard_spec(&recs, &loads)).unwrap();
    assert_eq!(vm.realm.life, RealmLife::Active);
    let rd = rig.rd(vm.realm.rd);
    assert_eq!(rd.realm_state(), RealmState::Active);
    assert_eq!(rd.rec_count, 2);
    assert_eq!(rd.rim, standard_rim(0, &recs), "RIM");
    // The loaded pages: the image with its last page zero-padded, the blob as it was.
    assert_eq!(vm.memory.stats.loaded, 4 + 2);
    let image = pattern(IMAGE_LEN, 0);
    for k in 0..4u64 {
        let pa = vm.memory.backing_of(RAM + k * G).unwrap();
        assert_eq!(m.sim.pas(Pa::new(pa)), Pas::Realm);
        let page = m.sim.peek(Pa::new(pa));
        let want = &image[(k * G) as usize..IMAGE_LEN.min((k + 1) * G) as usize];
        assert_eq!(&page[..want.len()], want, "page {k}");
        assert!(
            page[want.len()..].iter().all(|&b| b == 0),
            "padding of page {k}"
        );
        assert_eq!(vm.memory.state(RAM + k * G), Some(PageState::Private));
    }
    let blob = pattern(BLOB_LEN, 1);
    for k in 0..2u64 {
        let pa = vm.memory.backing_of(BLOB_IPA + k * G).unwrap();
        assert_eq!(
            &m.sim.peek(Pa::new(pa))[..],
            &blob[(k * G) as usize..((k + 1) * G) as usize]
        );
    }
    assert_eq!(
        vm.memory.census(),
        [RAM_SIZE / G - 6, 6, 0, 0],
        "[ram, private, empty, shared]"
    );
    // The RECs: created through the stateful operation, each with its auxiliary granules.
    assert_eq!(vm.vcpus.len(), 2);
    assert_eq!(rig.calls(RmiFid::REC_CREATE).len(), 2);
    let donations = rig.calls(RmiFid::OP_MEM_DONATE);
    let donated: u64 = donations.iter().map(|c| c.regs[3]).sum();
    assert_eq!(donated, 2 * REC_AUX_GRANULES as u64);
    assert!(rig.calls(RmiFid::OP_CONTINUE).len() >= 2);
    for v in &vm.vcpus {
        assert_eq!(m.sim.pas(Pa::new(v.rec)), Pas::Realm);
        assert_eq!(m.sim.pas(Pa::new(v.run)), Pas::NonSecure);
    }
    assert_eq!(vm.vcpus[0].state, super::vcpu::VcpuState::Runnable);
    assert_eq!(vm.vcpus[1].state, super::vcpu::VcpuState::Off);
    assert_eq!(vm.vcpu_by_mpidr(1), Some(1));
    assert_eq!(
        vm.vcpu_by_mpidr(0xFF00_0000_0001),
        Some(1),
        "non-affinity bits ignored"
    );
    assert_eq!(vm.vcpu_by_mpidr(2), None);
    // Aff0[7:4] is not part of a REC's index: the RMM sends such a CPU_ON to REC 1.
    assert_eq!(vm.vcpu_by_mpidr(0x21), Some(1), "as the RMM resolves it");
    assert_eq!(vm.vcpu_by_mpidr(0x12), None);
    // RD, starting RTT, RTTs, 6 data pages, 2 RECs with their auxiliary granules.
    let delegated = 2 + vm.realm.rtts.len() as u64 + 6 + 2 * (1 + REC_AUX_GRANULES as u64);
    assert_eq!(vm.pool.delegated_granules(), delegated);
    assert_eq!(m.not_ns().len() as u64, delegated);
    let t = destroy_clean(&m, &mut rig, &mut vm);
    assert_eq!(t.recs, 2);
    assert_eq!(t.aux_reclaimed, 2 * REC_AUX_GRANULES as u64);
    assert_eq!(
        t.rtts, 2,
        "the level 2 table and the first block's level 3 table"
    );
}

#[test]
fn the_measurement_follows_the_loads() {
    let rim = |edit: &dyn Fn(&Machine, &mut Vec<Load>), hash: u8| {
        let m = Machine::standard();
        let rmm = m.rmm();
        let mut rig = Rig::new(&m, &rmm);
        put_images(&m);
        let recs = recs(1, 1);
        let mut loads = standard_loads();
        edit(&m, &mut loads);
        let mut spec = standard_spec(&recs, &loads);
        spec.params.hash_algo = hash;
        let mut vm = build(&mut rig, &spec).unwrap();
        let r = rig.rd(vm.realm.rd).rim;
        destroy_clean(&m, &mut rig, &mut vm);
        r
    };
    let base = rim(&|_, _| {}, 0);
    assert_eq!(base, standard_rim(0, &recs(1, 1)));
    assert_eq!(rim(&|_, _| {}, 1), standard_rim(1, &recs(1, 1)), "SHA-512");
    // Changing the unmeasured blob does not change the RIM; changing the image does.
    assert_eq!(rim(&|m, _| m.put(BLOB_PA, &[0xEE; 64]), 0), base);
    assert_ne!(rim(&|m, _| m.put(IMAGE_PA + 5, &[0xEE]), 0), base);
    // A byte past the image's end in host memory is not loaded: the padding is zero.
    assert_eq!(rim(&|m, _| m.put(IMAGE_PA + IMAGE_LEN, &[0xEE]), 0), base);
    // The order of the loads is part of the measurement.
    assert_ne!(rim(&|_, l| l.reverse(), 0), base);
}

/// Builds the standard VM with `edit` applied to its spec pieces and expects a failure;
/// checks the machine afterwards.
fn build_fails(
    edit: impl FnOnce(&Machine, &mut Vec<RecParams>, &mut Vec<Load>, &mut RealmParams),
) -> (VmError, String) {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    put_images(&m);
    let mut recs = recs(2, 1);
    let mut loads = standard_loads();
    let mut params = params(0);
    edit(&m, &mut recs, &mut loads, &mut params);
    let mut spec = standard_spec(&recs, &loads);
    spec.params = params;
    let e = match build(&mut rig, &spec) {
        Ok(_) => panic!("the build succeeded"),
        Err(e) => e,
    };
    m.assert_all_ns(&alloc::format!("after the failed build ({e})"));
    (e, rig.log())
}

#[test]
fn bad_loads_tear_down_what_was_built() {
    let (e, log) = build_fails(|_, _, l, _| l[1].ipa = RAM + RAM_SIZE - G);
    assert!(
        matches!(e, VmError::Config(_)),
        "{e:?}: the blob overruns RAM"
    );
    assert!(log.contains("tearing it down"), "{log}");
    let (e, _) = build_fails(|_, _, l, _| l[1].ipa += 0x800);
    assert!(matches!(e, VmError::Config(_)), "{e:?}: unaligned IPA");
    let (e, _) = build_fails(|_, _, l, _| l[1].src += 8);
    assert!(matches!(e, VmError::Config(_)), "{e:?}: unaligned source");
    let (e, _) = build_fails(|_, _, l, _| l[1].ipa = RAM + G);
    assert!(matches!(e, VmError::Config(_)), "{e:?}: overlapping loads");
    let (e, _) = build_fails(|_, _, l, _| l[1].len = 0);
    assert!(matches!(e, VmError::Config(_)), "{e:?}: an empty load");
    // A source the RMM refuses (not Non-secure memory it tracks): the command is named.
    let (e, _) = build_fails(|_, _, l, _| l[1].src = 0x1000);
    let (doing, err) = rmi_err(&e);
    assert_eq!(doing, "RTT_DATA_MAP_INIT");
    assert_eq!(err.fid, RmiFid::RTT_DATA_MAP_INIT);
    assert_eq!(err.status(), Some(RmiStatus::ErrorInput));
    assert!(e.to_string().contains("RTT_DATA_MAP_INIT"), "{e}");
}

#[test]
fn bad_specs_tear_down_what_was_built() {
    let (e, _) = build_fails(|_, r, _, _| r[1].mpidr = rec_mpidr::from_index(5));
    assert_eq!(e, VmError::Config("a REC's MPIDR does not match its index"));
    // Initial RAM outside guest RAM.
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let recs = recs(1, 1);
    let mut spec = standard_spec(&recs, &[]);
    spec.initial_ram = (RAM + BLOCK, RAM_SIZE);
    assert!(matches!(build(&mut rig, &spec), Err(VmError::Config(_))));
    spec.initial_ram = (RAM, 0);
    assert!(matches!(build(&mut rig, &spec), Err(VmError::Config(_))));
    spec.initial_ram = (RAM, RAM_SIZE);
    spec.ram = (RAM + G, RAM_SIZE);
    assert!(matches!(build(&mut rig, &spec), Err(VmError::Config(_))));
    m.assert_all_ns("after the failed builds");
}

#[test]
fn specs_the_vmm_or_the_rmm_refuse_leave_nothing_behind() {
    let (e, _) = build_fails(|_, _, _, p| p.num_wps = 99);
    let (doing, err) = rmi_err(&e);
    assert_eq!(
        (doing, err.fid),
        ("creating the realm", RmiFid::REALM_CREATE)
    );
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let recs = recs(1, 1);
    // RECs that do not match the GIC: refused before any RMI call.
    let spec = standard_spec(&recs, &[]);
    let (vgic, bus) = super::linux::platform(2).unwrap();
    let calls = rig.ncalls();
    let pool = GranulePool::new(POOL.0, POOL.1).unwrap();
    assert!(matches!(
        Vm::build(&mut rig.rmi, &mut rig.mem, pool, &spec, vgic, bus),
        Err(VmError::Config(_))
    ));
    let none: [RecParams; 0] = [];
    let spec = standard_spec(&none, &[]);
    let (vgic, bus) = super::linux::platform(1).unwrap();
    let pool = GranulePool::new(POOL.0, POOL.1).unwrap();
    assert!(matches!(
        Vm::build(&mut rig.rmi, &mut rig.mem, pool, &spec, vgic, bus),
        Err(VmError::Config(_))
    ));
    assert_eq!(rig.ncalls(), calls);
}

/// A pool whose first `head` granules end at a 2 MiB boundary, so that guest RAM comes right
/// after the realm's first allocations, followed by `tail` granules.
fn tight_pool(head: u64, tail: u64) -> (u64, u64) {
    let base = POOL.0 + BLOCK - head * G;
    (base, (head + tail) * G + RAM_SIZE)
}

#[test]
fn running_out_of_memory_anywhere_in_the_build_tears_it_down() {
    // The realm takes 4 granules before RAM (parameter and list pages, RD, starting RTT);
    // the rest comes after RAM. Every size short of enough fails at a different allocation.
    let mut outcomes = Vec::new();
    let mut tail = 0;
    loop {
        let m = Machine::standard();
        let rmm = m.rmm();
        let mut rig = Rig::new(&m, &rmm);
        put_images(&m);
        let recs = recs(2, 1);
        let loads = standard_loads();
        let (base, size) = tight_pool(4, tail);
        match build_in(&mut rig, &standard_spec(&recs, &loads), base, size) {
            Ok(mut vm) => {
                destroy_clean(&m, &mut rig, &mut vm);
                break;
            }
            Err(VmError::OutOfMemory { what, .. }) if what == "REC auxiliary granules" => {
                // Covered (and failing) in `running_out_of_memory_while_donating...`.
                outcomes.push(what);
            }
            Err(e) => {
                let VmError::OutOfMemory { what, .. } = e else {
                    panic!("{tail} granules after RAM: {e}");
                };
                m.assert_all_ns(&alloc::format!("{tail} granules after RAM ({what})"));
                outcomes.push(what);
            }
        }
        tail += 1;
        assert!(tail < 100, "the build never fits");
    }
    outcomes.dedup();
    for what in ["a scratch page", "an RTT", "a REC", "a REC run page"] {
        assert!(
            outcomes.contains(&what),
            "{what} never ran out: {outcomes:?}"
        );
    }
    // Smaller pools fail while the realm or its RAM is created.
    for head in 1..=4 {
        if head == 3 {
            continue; // `realm_create_without_room_for_the_starting_rtts_undelegates_the_rd`
        }
        let m = Machine::standard();
        let rmm = m.rmm();
        let mut rig = Rig::new(&m, &rmm);
        let recs = recs(1, 1);
        let (base, _) = tight_pool(head, 0);
        let Err(e) = build_in(&mut rig, &standard_spec(&recs, &[]), base, head * G) else {
            panic!("a pool of {head} granules is enough");
        };
        assert!(matches!(e, VmError::OutOfMemory { .. }), "{e:?}");
        m.assert_all_ns(&alloc::format!("a pool of {head} granules"));
    }
}

#[test]
fn running_out_of_memory_while_donating_auxiliary_granules_tears_down() {
    let mut tested = 0;
    for tail in 0..100 {
        let m = Machine::standard();
        let rmm = m.rmm();
        let mut rig = Rig::new(&m, &rmm);
        let recs = recs(2, 1);
        let (base, size) = tight_pool(4, tail);
        match build_in(&mut rig, &standard_spec(&recs, &[]), base, size) {
            Ok(mut vm) => {
                destroy_clean(&m, &mut rig, &mut vm);
                break;
            }
            Err(VmError::OutOfMemory {
                what: "REC auxiliary granules",
                ..
            }) => {
                tested += 1;
                m.assert_all_ns(&alloc::format!("{tail} granules after RAM"));
            }
            Err(_) => {}
        }
    }
    assert!(tested > 0);
}

// --------------------------------------------------------------------------- guest memory

#[test]
fn faults_map_a_block_or_a_page_and_full_blocks_fold() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    put_images(&m);
    let recs = recs(1, 1);
    let loads = standard_loads();
    let mut vm = build(&mut rig, &standard_spec(&recs, &loads)).unwrap();
    let Vm {
        memory,
        pool,
        realm,
        ..
    } = &mut vm;
    // The second block has no level 3 table: one 2 MiB mapping.
    let second = RAM + BLOCK;
    assert_eq!(realm.rtts.get(second, 3), None);
    assert!(memory
        .map_on_fault(&mut rig.rmi, pool, realm, second + 0x5008)
        .unwrap());
    assert_eq!(memory.stats.blocks_mapped, 1);
    let maps = rig.calls(RmiFid::RTT_DATA_MAP);
    assert_eq!(maps.len(), 1);
    assert_eq!(maps[0].regs[2..4], [second, second + BLOCK]);
    for k in 0..BLOCK / G {
        assert_eq!(memory.state(second + k * G), Some(PageState::Private));
        let pa = memory.backing_of(second + k * G).unwrap();
        assert_eq!(m.sim.pas(Pa::new(pa)), Pas::Realm);
    }
    // A fault on a page the host mapped is the guest's (or the host's) bug.
    assert!(matches!(
        memory.map_on_fault(&mut rig.rmi, pool, realm, second),
        Err(VmError::Guest(_))
    ));
    // Outside RAM: not the host's to map.
    assert_eq!(
        memory.map_on_fault(&mut rig.rmi, pool, realm, RAM + RAM_SIZE),
        Ok(false)
    );
    assert_eq!(
        memory.map_on_fault(&mut rig.rmi, pool, realm, 0x1000),
        Ok(false)
    );
    // The first block has a level 3 table (the loads): page by page, then a fold.
    let l3 = realm.rtts.get(RAM, 3).unwrap();
    let free_before = pool.free_granules();
    for k in 0..BLOCK / G {
        let ipa = RAM + k * G;
        if memory.state(ipa) == Some(PageState::Ram) {
            assert!(memory
                .map_on_fault(&mut rig.rmi, pool, realm, ipa + 8)
                .unwrap());
        }
    }
    assert_eq!(memory.stats.pages_mapped, BLOCK / G - 6);
    assert_eq!(memory.stats.folds, 1);
    assert_eq!(realm.rtts.folded, 1);
    assert_eq!(realm.rtts.get(RAM, 3), None, "the table was folded");
    assert_eq!(m.sim.pas(Pa::new(l3)), Pas::NonSecure, "and undelegated");
    assert_eq!(pool.free_granules(), free_before + 1);
    let folds = rig.calls(RmiFid::RTT_FOLD);
    assert_eq!(folds.len(), 1);
    assert_eq!(folds[0].regs[2..4], [RAM, 3]);
    assert_eq!(memory.census(), [0, RAM_SIZE / G, 0, 0]);
    let t = destroy_clean(&m, &mut rig, &mut vm);
    assert_eq!(t.rtts, 1, "only the level 2 table is left");
}

#[test]
fn guest_memory_refuses_bad_ranges() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut p = GranulePool::new(POOL.0, 4 * MIB).unwrap();
    for (base, size) in [
        (RAM + G, BLOCK),
        (RAM, BLOCK + G),
        (RAM, 0),
        (u64::MAX - BLOCK + 1, BLOCK),
    ] {
        assert!(
            matches!(
                GuestMemory::new(&mut p, base, size),
                Err(VmError::Config(_))
            ),
            "{base:#x} + {size:#x}"
        );
    }
    assert!(matches!(
        GuestMemory::new(&mut p, RAM, 4 * BLOCK),
        Err(VmError::OutOfMemory {
            what: "guest RAM",
            ..
        })
    ));
    let mut mem = GuestMemory::new(&mut p, RAM, BLOCK).unwrap();
    assert!(mem.contains(RAM) && !mem.contains(RAM + BLOCK) && !mem.contains(RAM - 1));
    assert!(mem.contains_range(RAM, BLOCK) && !mem.contains_range(RAM, BLOCK + 1));
    assert!(!mem.contains_range(RAM, 0) && !mem.contains_range(u64::MAX, 2));
    assert_eq!(mem.state(RAM + BLOCK), None);
    let mut r = Realm::create(&mut rig.rmi, &mut rig.mem, &mut p, params(0)).unwrap();
    for (b, t) in [(RAM + 1, RAM + G), (RAM, RAM), (RAM, RAM + 2 * BLOCK)] {
        assert!(matches!(
            mem.init_ripas(&mut rig.rmi, &mut p, &mut r, b, t),
            Err(VmError::Config(_))
        ));
    }
    mem.init_ripas(&mut rig.rmi, &mut p, &mut r, RAM, RAM + 16 * G)
        .unwrap();
    assert_eq!(mem.census(), [16, 0, BLOCK / G - 16, 0]);
    // Loading into EMPTY memory, twice, or unaligned.
    let load =
        |mem: &mut GuestMemory, rig: &mut Rig<'_, '_>, p: &mut GranulePool, r: &mut Realm, ipa| {
            mem.load_page(&mut rig.rmi, p, r, ipa, IMAGE_PA, true)
        };
    assert!(matches!(
        load(&mut mem, &mut rig, &mut p, &mut r, RAM + 16 * G),
        Err(VmError::Config(_))
    ));
    load(&mut mem, &mut rig, &mut p, &mut r, RAM).unwrap();
    assert!(matches!(
        load(&mut mem, &mut rig, &mut p, &mut r, RAM),
        Err(VmError::Config(_))
    ));
    assert!(matches!(
        load(&mut mem, &mut rig, &mut p, &mut r, RAM + 8),
        Err(VmError::Config(_))
    ));
    // A load the RMM refuses gives the granule back.
    let delegated = p.delegated_granules();
    let e = mem
        .load_page(&mut rig.rmi, &mut p, &mut r, RAM + G, 0x1000, false)
        .unwrap_err();
    assert_eq!(rmi_err(&e).1.fid, RmiFid::RTT_DATA_MAP_INIT);
    assert_eq!(p.delegated_granules(), delegated);
    assert_eq!(mem.state(RAM + G), Some(PageState::Ram));
    // RIPAS changes of unaligned or empty ranges are the guest's mistake.
    let rec = 0;
    for (b, t) in [(RAM + 1, RAM + G), (RAM + G, RAM + G)] {
        assert!(matches!(
            mem.change_ripas(&mut rig.rmi, &mut p, &mut r, rec, (b, t), false),
            Err(VmError::Guest(_))
        ));
    }
    // An alias fault on a page that is not EMPTY is not a shared page.
    assert_eq!(
        mem.share_on_fault(&mut rig.rmi, &mut p, &mut r, RAM),
        Ok(false)
    );
    assert_eq!(mem.shared_pa(RAM | SHARED, SHARED), None);
    r.activate(&mut rig.rmi).unwrap();
    r.terminate(&mut rig.rmi).unwrap();
    mem.release(&mut rig.rmi, &mut p, &mut r).unwrap();
    r.destroy(&mut rig.rmi, &mut p).unwrap();
    assert_eq!(p.delegated_granules(), 0);
    m.assert_all_ns("after the release");
}
