//! Tests of `Vm::run` with scripted realms.
//!
//! `REC_ENTER` runs for real in the RMM core: the simulator plays what the realm does when the
//! RMM runs it (`SimPlatform::push_realm_step`), so RSI and PSCI calls, aborts, WFI, system
//! register traps and timers come back to the VMM as the RMM decodes them, and what the VMM
//! answers (MMIO values, SEA injection, RIPAS responses, `PSCI_COMPLETE`) reaches the realm's
//! registers as the next step sees them. A fake [`VmHost`] keeps the counter (which only the
//! steps and idling advance), the list registers, the preemption timer and console input.

use super::host::{VirtualCpuInterface, VmHost};
use super::memory::PageState;
use super::platform::{UART_BASE, VTIMER_INTID};
use super::runloop::{DefaultHooks, ExitHooks, RunLimits};
use super::stats::ExitClass;
use super::vcpu::{timer_ctl, VcpuState};
use super::vm::{Stop, Vm};
use super::vm_tests::*;
use crate::devices::ConsoleOut;
use crate::vgic::CTLR_ENABLE_GRP1;
use alloc::string::String;
use alloc::vec::Vec;
use cca_abi::arch::{esr, ich};
use cca_abi::psci::{self, PsciStatus};
use cca_abi::rmi::{RmiFid, RmiStatus};
use cca_abi::rsi::{self, RsiResponse};
use cca_abi::GRANULE_SIZE as G;
use rmm_core::run::{trap, ExitKind, RealmContext, RealmExit, TimerState};
use rmm_core::sim::{Pas, SIM_ICH_VTR};
use rmm_core::Pa;
use std::collections::VecDeque;

/// A vCPU's quantum in counter ticks.
const QUANTUM: u64 = 1000;
/// The 16550 through the unprotected alias.
const UART: u64 = SHARED | UART_BASE;
/// `LSR` of the 16550.
const LSR: u64 = 5;
/// `IER` of the 16550.
const IER: u64 = 1;

/// The machine as the fake host models it.
#[derive(Default)]
pub(super) struct HostState {
    /// The counter.
    pub(super) now: u64,
    /// `ICH_LR<n>_EL2`.
    pub(super) lrs: [u64; 4],
    aprs: [[u64; 4]; 2],
    vmcr: u64,
    /// `ICH_HCR_EL2`.
    pub(super) hcr: u64,
    /// The preemption timer as last armed.
    pub(super) deadline: Option<u64>,
    /// Every `arm_preemption`.
    pub(super) armed: Vec<Option<u64>>,
    /// Every `idle`: (counter, until).
    pub(super) idles: Vec<(u64, u64)>,
    /// Console input: (counter value it arrives at, byte).
    pub(super) input: VecDeque<(u64, u8)>,
    /// Consecutive `idle` calls that could not wait.
    spins: u32,
}

/// The fake host.
pub(super) struct FakeHost(pub(super) Shared<HostState>);

impl VirtualCpuInterface for FakeHost {
    fn vtr(&mut self) -> u64 {
        SIM_ICH_VTR
    }
    fn read_lr(&mut self, n: usize) -> u64 {
        lock(&self.0).lrs[n]
    }
    fn write_lr(&mut self, n: usize, value: u64) {
        lock(&self.0).lrs[n] = value;
    }
    fn read_apr(&mut self, group: usize, n: usize) -> u64 {
        lock(&self.0).aprs[group][n]
    }
    fn write_apr(&mut self, group: usize, n: usize, value: u64) {
        lock(&self.0).aprs[group][n] = value;
    }
    fn read_vmcr(&mut self) -> u64 {
        lock(&self.0).vmcr
    }
    fn write_vmcr(&mut self, value: u64) {
        lock(&self.0).vmcr = value;
    }
    fn write_hcr(&mut self, value: u64) {
        lock(&self.0).hcr = value;
    }
    fn read_misr(&mut self) -> u64 {
        0
    }
    fn counter(&mut self) -> u64 {
        lock(&self.0).now
    }
}

impl VmHost for FakeHost {
    fn counter_hz(&mut self) -> u64 {
        1_000_000
    }
    fn arm_preemption(&mut self, deadline: Option<u64>) {
        let mut h = lock(&self.0);
        h.deadline = deadline;
        h.armed.push(deadline);
    }
    fn idle(&mut self, until: u64) {
        let mut h = lock(&self.0);
        let now = h.now;
        h.idles.push((now, until));
        if until <= now {
            h.spins += 1;
            assert!(
                h.spins < 1000,
                "the run loop spins: idle(until = {until}) at counter {now}, 1000 times"
            );
        } else {
            h.spins = 0;
        }
        let wake = h.input.front().map_or(until, |&(t, _)| t.min(until));
        h.now = now.max(wake);
    }
    fn poll_input(&mut self) -> Option<u8> {
        let mut h = lock(&self.0);
        match h.input.front() {
            Some(&(t, b)) if t <= h.now => {
                h.input.pop_front();
                Some(b)
            }
            _ => None,
        }
    }
    fn unix_time(&mut self) -> u64 {
        1_700_000_000
    }
}

/// What a step saw when the RMM ran the realm.
#[derive(Clone, Debug)]
pub(super) struct Seen {
    /// The vCPU (Aff0 of its MPIDR).
    pub(super) vcpu: usize,
    /// Its PC.
    pub(super) pc: u64,
    /// Its x0..x30.
    pub(super) x: [u64; 31],
    /// The host's list registers.
    pub(super) lrs: [u64; 4],
    /// The trap bits the RMM set.
    pub(super) traps: u64,
    /// The counter.
    pub(super) now: u64,
    /// The host's `ICH_VMCR_EL2`.
    pub(super) vmcr: u64,
}

/// The realm's script.
pub(super) struct Script<'s> {
    sim: &'s rmm_core::sim::SimPlatform,
    /// The fake host's state.
    pub(super) host: Shared<HostState>,
    seen: Shared<Vec<Seen>>,
}

/// A realm exit.
fn exit(kind: ExitKind, esr: u64, far: u64, hpfar: u64) -> RealmExit {
    RealmExit {
        kind,
        esr,
        far,
        hpfar,
        timers: TimerState::default(),
    }
}

/// A data abort at `ipa` with ISS `iss` (FAR: a VA with the IPA's page offset).
fn dabt(ipa: u64, iss: u64) -> RealmExit {
    exit(
        ExitKind::Sync,
        (esr::ec::DABT_LOW << esr::EC_SHIFT) | esr::IL | iss,
        0xFFFF_8000_0012_3000 | (ipa & 0xFFF),
        (ipa >> 12) << 4,
    )
}

/// The ISS of an emulatable access of 2^`sas` bytes through Xrt, translation fault level 3.
fn isv(sas: u64, rt: usize, write: bool) -> u64 {
    esr::ISV
        | (sas << esr::SAS_SHIFT)
        | ((rt as u64) << esr::SRT_SHIFT)
        | if write { esr::WNR } else { 0 }
        | 0x07
}

fn sync(ec: u64, iss: u64) -> RealmExit {
    exit(ExitKind::Sync, (ec << esr::EC_SHIFT) | esr::IL | iss, 0, 0)
}

/// `ICC_SGI1R_EL1` as the ESR of a trapped MSR encodes it.
const ICC_SGI1R_EL1: u64 = esr::sysreg(3, 0, 12, 11, 5);

impl<'s> Script<'s> {
    /// A script for the realm of `rig`'s machine; the fake host starts at counter 0.
    pub(super) fn new(rig: &Rig<'_, 's>) -> Self {
        Self {
            sim: rig.sim,
            host: Shared::default(),
            seen: Shared::default(),
        }
    }

    /// A fake host over this script's host state.
    pub(super) fn fake_host(&self) -> FakeHost {
        FakeHost(self.host.clone())
    }

    /// Queues a step: `act` gets the realm's context and the host's state (its counter, list
    /// registers, preemption deadline) and returns how the realm exits.
    pub(super) fn then(
        &self,
        mut act: impl FnMut(&mut RealmContext, &mut HostState) -> RealmExit + Send + 'static,
    ) {
        let host = self.host.clone();
        let seen = self.seen.clone();
        self.sim.push_realm_step(Box::new(move |ctx| {
            let mut h = lock(&host);
            lock(&seen).push(Seen {
                vcpu: (ctx.vmpidr & 0xFF) as usize,
                pc: ctx.pc,
                x: ctx.gprs,
                lrs: h.lrs,
                traps: ctx.traps,
                now: h.now,
                vmcr: h.vmcr,
            });
            act(ctx, &mut h)
        }));
    }

    /// An MMIO write of `value` (2^`sas` bytes) from Xrt at `ipa`.
    fn write(&self, ipa: u64, sas: u64, rt: usize, value: u64) {
        self.then(move |ctx, _| {
            ctx.gprs[rt] = value;
            dabt(ipa, isv(sas, rt, true))
        });
    }

    /// An MMIO read into Xrt at `ipa`.
    fn read(&self, ipa: u64, sas: u64, rt: usize) {
        self.then(move |_, _| dabt(ipa, isv(sas, rt, false)));
    }

    /// An access at `ipa` the RMM cannot describe for emulation (no ISV).
    fn touch(&self, ipa: u64) {
        self.then(move |_, _| dabt(ipa, esr::WNR | 0x07));
    }

    /// An SMC with x0.. = `regs`.
    pub(super) fn smc(&self, regs: &[u64]) {
        let regs = regs.to_vec();
        self.then(move |ctx, _| {
            ctx.gprs[..regs.len()].copy_from_slice(&regs);
            sync(esr::ec::SMC, 0)
        });
    }

    /// PSCI `SYSTEM_OFF`.
    pub(super) fn off(&self) {
        self.smc(&[u64::from(psci::SYSTEM_OFF)]);
    }

    /// `RSI_IPA_STATE_SET(base, top, ripas, 0)`.
    fn ripas(&self, base: u64, top: u64, ram: bool) {
        self.smc(&[u64::from(rsi::IPA_STATE_SET), base, top, u64::from(ram), 0]);
    }

    /// A WFI.
    fn wfi(&self) {
        self.then(|_, _| sync(esr::ec::WFX, 0));
    }

    /// The host's preemption timer fires: the counter reaches the deadline, IRQ exit.
    fn preempted(&self) {
        self.then(|_, h| {
            h.now = h.deadline.expect("no preemption deadline armed");
            exit(ExitKind::Irq, 0, 0, 0)
        });
    }

    /// An IRQ exit.
    fn irq(&self) {
        self.then(|_, _| exit(ExitKind::Irq, 0, 0, 0));
    }

    /// What the steps saw, in order.
    pub(super) fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
    }

    /// The vCPUs the steps ran on, in order.
    pub(super) fn order(&self) -> Vec<usize> {
        self.seen().iter().map(|s| s.vcpu).collect()
    }
}

/// Console output collected.
#[derive(Default)]
struct Console(Vec<u8>);

impl ConsoleOut for Console {
    fn write_byte(&mut self, byte: u8) {
        self.0.push(byte);
    }
}

/// Runs `vm` with `hooks` until it stops (at most `max_exits` exits); returns how it
/// stopped and the console output.
fn run_with(
    rig: &mut Rig<'_, '_>,
    vm: &mut Vm,
    s: &Script<'_>,
    hooks: &mut dyn ExitHooks,
    max_exits: u64,
) -> (super::error::VmResult<Stop>, String) {
    let mut console = Console::default();
    let r = vm.run(
        &mut rig.rmi,
        &mut rig.mem,
        &mut s.fake_host(),
        &mut console,
        hooks,
        RunLimits {
            max_exits,
            quantum: QUANTUM,
        },
    );
    (r, String::from_utf8_lossy(&console.0).into_owned())
}

/// Runs `vm` with the default hooks and expects `SYSTEM_OFF` with every step used.
pub(super) fn run_to_off(rig: &mut Rig<'_, '_>, vm: &mut Vm, s: &Script<'_>) -> String {
    let (r, console) = run_with(rig, vm, s, &mut DefaultHooks, 200);
    assert_eq!(r, Ok(Stop::SystemOff), "{}", rig.log());
    assert_eq!(rig.sim.pending_realm_steps(), 0, "steps left");
    console
}

/// The standard VM with `cpus` vCPUs, the first `runnable` of them runnable, RIPAS RAM over
/// `initial` bytes of RAM.
fn vm_with(rig: &mut Rig<'_, '_>, m: &Machine, cpus: usize, runnable: usize, initial: u64) -> Vm {
    put_images(m);
    let recs = recs(cpus, runnable);
    let loads = standard_loads();
    let mut spec = standard_spec(&recs, &loads);
    spec.initial_ram = (RAM, initial);
    build(rig, &spec).unwrap_or_else(|e| panic!("build: {e}\n{}", rig.log()))
}

/// The standard single-vCPU VM.
fn vm1(rig: &mut Rig<'_, '_>, m: &Machine) -> Vm {
    vm_with(rig, m, 1, 1, RAM_SIZE)
}

/// The state (pending, active...) of `intid` in the list registers `lrs`, if there.
fn in_lrs(lrs: &[u64], intid: u32) -> Option<ich::LrState> {
    lrs.iter()
        .find(|&&lr| ich::lr_state(lr) != ich::LrState::Invalid && ich::lr_vintid(lr) == intid)
        .map(|&lr| ich::lr_state(lr))
}

/// Hooks with policies a test sets.
#[derive(Default)]
struct Policy {
    deny_cpu_on: bool,
    deny_ripas: bool,
    host_calls: Vec<(usize, u16, u64)>,
}

impl ExitHooks for Policy {
    fn host_call(&mut self, vcpu: usize, imm: u16, gprs: &[u64; 31]) -> [u64; 31] {
        self.host_calls.push((vcpu, imm, gprs[1]));
        let mut out = *gprs;
        out[0] = 0xAB;
        out[1] = gprs[1] + 1;
        out
    }
    fn accept_ripas(&mut self, _base: u64, _top: u64, _ram: bool) -> bool {
        !self.deny_ripas
    }
    fn allow_cpu_on(&mut self, _target: usize) -> bool {
        !self.deny_cpu_on
    }
}

// -------------------------------------------------------------------------------- MMIO

#[test]
fn the_16550_is_written_and_read_through_the_bus() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut vm = vm1(&mut rig, &m);
    let s = Script::new(&rig);
    lock(&s.host).input.push_back((0, b'Z'));
    s.write(UART, 0, 1, u64::from(b'h'));
    s.write(UART, 0, 1, u64::from(b'i'));
    s.read(UART + LSR, 0, 3);
    s.read(UART, 0, 4);
    s.off();
    let console = run_to_off(&mut rig, &mut vm, &s);
    assert_eq!(console, "hi");
    let seen = s.seen();
    for (i, st) in seen.iter().enumerate() {
        assert_eq!(st.pc, entry(0) + 4 * i as u64, "each access completed");
    }
    assert_eq!(seen[3].x[3] & 0x61, 0x61, "LSR: THRE, TEMT and data ready");
    assert_eq!(seen[4].x[4], u64::from(b'Z'), "the typed byte");
    assert_eq!(vm.stats.get(ExitClass::Mmio).0, 4);
    assert_eq!(vm.stats.get(ExitClass::Psci).0, 1);
    destroy_clean(&m, &mut rig, &mut vm);
}

#[test]
fn an_unemulated_address_reads_as_zero_and_ignores_writes() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut vm = vm1(&mut rig, &m);
    let s = Script::new(&rig);
    let nothing = SHARED | 0x0900_0000;
    s.then(move |ctx, _| {
        ctx.gprs[5] = 0xDEAD;
        dabt(nothing, isv(2, 5, false))
    });
    s.write(nothing + 8, 3, 6, 0x1234);
    s.off();
    run_to_off(&mut rig, &mut vm, &s);
    let seen = s.seen();
    assert_eq!(seen[1].x[5], 0, "read as zero");
    assert_eq!(seen[2].pc, entry(0) + 8, "the run went on");
    assert_eq!(vm.stats.get(ExitClass::Mmio).0, 2);
    assert!(rig.log().contains("no device there"), "{}", rig.log());
    destroy_clean(&m, &mut rig, &mut vm);
}

#[test]
fn accesses_that_cannot_be_emulated_get_an_sea() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut vm = vm1(&mut rig, &m);
    let s = Script::new(&rig);
    // No ISV at a device.
    s.touch(UART);
    // With ISV, at the alias of RAM that is private (RIPAS RAM, not mapped yet).
    s.read(SHARED | (RAM + BLOCK), 3, 0);
    s.off();
    run_to_off(&mut rig, &mut vm, &s);
    let inj = m.sim.take_injections();
    assert_eq!(inj.len(), 2, "{inj:?}");
    for i in &inj {
        assert_eq!(i.esr & esr::FSC_MASK, esr::FSC_SEA, "{i:?}");
    }
    assert_eq!(inj[0].elr, entry(0));
    let seen = s.seen();
    assert_eq!(seen[1].pc, 0x200, "the realm took the SEA at VBAR + 0x200");
    assert_eq!(vm.stats.get(ExitClass::Other).0, 2);
    assert_eq!(
        vm.memory.state(RAM + BLOCK),
        Some(PageState::Ram),
        "nothing was shared"
    );
    assert!(rig.log().contains("SEA injected"), "{}", rig.log());
    destroy_clean(&m, &mut rig, &mut vm);
}

// ------------------------------------------------------------------------------ memory

#[test]
fn protected_faults_map_a_block_then_a_page() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut vm = vm1(&mut rig, &m);
    let s = Script::new(&rig);
    let in_block = RAM + BLOCK + 0x5008;
    let in_table = RAM + 0x8010;
    s.touch(in_block);
    s.touch(in_table);
    s.touch(in_table);
    let (r, _) = run_with(&mut rig, &mut vm, &s, &mut DefaultHooks, 100);
    // The third fault is on a page the host mapped: the VMM stops.
    assert!(
        matches!(&r, Err(super::error::VmError::Guest(w)) if w.contains("which the host mapped")),
        "{r:?}"
    );
    let seen = s.seen();
    assert!(
        seen.iter().all(|st| st.pc == entry(0)),
        "aborts retry the access"
    );
    assert_eq!(vm.memory.stats.blocks_mapped, 1);
    assert_eq!(vm.memory.stats.pages_mapped, 1);
    assert_eq!(vm.stats.get(ExitClass::ProtectedFault).0, 2);
    for ipa in [RAM + BLOCK, RAM + RAM_SIZE - G, RAM + 0x8000] {
        let pa = vm.memory.backing_of(ipa).unwrap();
        assert_eq!(m.sim.pas(Pa::new(pa)), Pas::Realm, "{ipa:#x}");
    }
    assert_eq!(vm.memory.state(RAM + 0x9000), Some(PageState::Ram));
    destroy_clean(&m, &mut rig, &mut vm);
}

#[test]
fn the_alias_of_empty_ram_maps_the_shared_page() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut vm = vm_with(&mut rig, &m, 1, 1, BLOCK);
    assert_eq!(vm.memory.state(RAM + BLOCK), Some(PageState::Empty));
    let s = Script::new(&rig);
    let page = RAM + BLOCK + 0x3000;
    s.read(SHARED | (page + 0x18), 3, 2);
    s.off();
    run_to_off(&mut rig, &mut vm, &s);
    assert_eq!(
        s.seen()[1].pc,
        entry(0),
        "the access runs again, now mapped"
    );
    assert_eq!(vm.memory.state(page), Some(PageState::Shared));
    let pa = vm.memory.backing_of(page).unwrap();
    assert_eq!(vm.memory.shared_pa(page | SHARED, SHARED), Some(pa));
    assert_eq!(vm.memory.shared_pa(page, SHARED), Some(pa));
    assert_eq!(m.sim.pas(Pa::new(pa)), Pas::NonSecure);
    assert_eq!(vm.memory.stats.shared_mapped, 1);
    assert_eq!(vm.stats.get(ExitClass::SharedFault).0, 1);
    // The first attempt finds no tables at the alias; the host creates them and maps.
    let maps: Vec<_> = rig
        .calls(RmiFid::RTT_UNPROT_MAP)
        .into_iter()
        .filter(|c| c.ret[0] == 0)
        .collect();
    assert_eq!(maps.len(), 1);
    assert_eq!(maps[0].regs[2..4], [page | SHARED, (page + G) | SHARED]);
    destroy_clean(&m, &mut rig, &mut vm);
}

#[test]
fn ripas_changes_unmap_scrub_share_and_map_again() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut vm = vm1(&mut rig, &m);
    let s = Script::new(&rig);
    let accept = RsiResponse::Accept as u64;
    let reject = RsiResponse::Reject as u64;
    // The four pages of the image (private, with contents) become EMPTY; one is then shared,
    // turned back into RAM (unshared first) and touched again.
    s.ripas(RAM, RAM + 4 * G, false);
    s.read(SHARED | (RAM + G), 3, 0);
    s.ripas(RAM, RAM + 4 * G, true);
    s.touch(RAM + G);
    // RAM outside guest RAM is refused.
    s.ripas(0x1000_0000, 0x1000_1000, true);
    // One page of a block-mapped 2 MiB block becomes EMPTY, then RAM, then is touched: the
    // block is split, and folded again.
    let page = RAM + BLOCK + 0x10_0000;
    s.touch(RAM + BLOCK);
    s.ripas(page, page + G, false);
    s.ripas(page, page + G, true);
    s.touch(page);
    s.off();
    let image_pages: Vec<u64> = (0..4)
        .map(|k| vm.memory.backing_of(RAM + k * G).unwrap())
        .collect();
    assert!(image_pages.iter().all(|&pa| !m.sim.is_zero(Pa::new(pa))));
    run_to_off(&mut rig, &mut vm, &s);
    let seen = s.seen();
    assert_eq!(seen[1].x[..3], [0, RAM + 4 * G, accept], "EMPTY accepted");
    assert_eq!(seen[3].x[..3], [0, RAM + 4 * G, accept], "RAM accepted");
    assert_eq!(
        seen[5].x[..3],
        [0, 0x1000_0000, reject],
        "outside RAM: rejected"
    );
    assert_eq!(seen[7].x[..3], [0, page + G, accept]);
    assert_eq!(seen[8].x[..3], [0, page + G, accept]);
    for k in [0, 2, 3] {
        assert_eq!(vm.memory.state(RAM + k * G), Some(PageState::Ram));
        let pa = image_pages[k as usize];
        assert_eq!(
            m.sim.pas(Pa::new(pa)),
            Pas::NonSecure,
            "page {k} undelegated"
        );
        assert!(m.sim.is_zero(Pa::new(pa)), "page {k} scrubbed");
    }
    assert_eq!(vm.memory.state(RAM + G), Some(PageState::Private));
    assert_eq!(m.sim.pas(Pa::new(image_pages[1])), Pas::Realm);
    assert!(
        m.sim.is_zero(Pa::new(image_pages[1])),
        "mapped again, zeroed"
    );
    let st = vm.memory.stats;
    assert_eq!(st.pages_unmapped, 4 + 1);
    assert_eq!((st.shared_mapped, st.shared_unmapped), (1, 1));
    assert_eq!((st.blocks_mapped, st.pages_mapped, st.folds), (1, 2, 1));
    assert_eq!(rig.calls(RmiFid::RTT_UNPROT_UNMAP).len(), 1);
    assert_eq!(vm.realm.rtts.get(RAM + BLOCK, 3), None, "folded again");
    assert_eq!(vm.memory.state(page), Some(PageState::Private));
    assert_eq!(vm.stats.get(ExitClass::RipasChange).0, 5);
    assert!(rig.log().contains("to EMPTY: accepted"), "{}", rig.log());
    assert!(rig.log().contains("to RAM: rejected"), "{}", rig.log());
    destroy_clean(&m, &mut rig, &mut vm);
}

#[test]
fn ripas_changes_the_hooks_refuse_are_rejected() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut vm = vm_with(&mut rig, &m, 1, 1, BLOCK);
    let s = Script::new(&rig);
    s.ripas(RAM + BLOCK, RAM + BLOCK + G, true);
    s.ripas(RAM, RAM + G, false);
    s.off();
    let mut hooks = Policy {
        deny_ripas: true,
        ..Policy::default()
    };
    let (r, _) = run_with(&mut rig, &mut vm, &s, &mut hooks, 100);
    assert_eq!(r, Ok(Stop::SystemOff));
    let seen = s.seen();
    let reject = RsiResponse::Reject as u64;
    assert_eq!(seen[1].x[..3], [0, RAM + BLOCK, reject], "RAM: rejected");
    // An EMPTY request cannot be rejected: it is answered with no progress.
    assert_eq!(seen[2].x[..3], [0, RAM, RsiResponse::Accept as u64]);
    assert_eq!(vm.memory.state(RAM + BLOCK), Some(PageState::Empty));
    assert_eq!(vm.memory.state(RAM), Some(PageState::Private));
    assert!(rig.calls(RmiFid::RTT_SET_RIPAS).is_empty());
    destroy_clean(&m, &mut rig, &mut vm);
}

#[test]
fn host_calls_are_answered_by_the_hooks() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut vm = vm1(&mut rig, &m);
    let s = Script::new(&rig);
    let call = u64::from(rsi::HOST_CALL);
    // In a loaded page; then in a page not mapped yet (the RMM reports a stage 2 abort, the
    // host maps it and the realm makes the call again).
    s.smc(&[call, RAM + 0x100]);
    let far = RAM + BLOCK + 0x200;
    s.smc(&[call, far]);
    s.smc(&[call, far]);
    s.off();
    let mut hooks = Policy::default();
    let (r, _) = run_with(&mut rig, &mut vm, &s, &mut hooks, 100);
    assert_eq!(r, Ok(Stop::SystemOff), "{}", rig.log());
    // The image's bytes at RAM + 0x100 are the structure the host sees.
    let image = pattern(IMAGE_LEN, 0);
    let imm = u16::from_le_bytes([image[0x100], image[0x101]]);
    let x1 = u64::from_le_bytes(image[0x110..0x118].try_into().unwrap());
    assert_eq!(hooks.host_calls, [(0, imm, x1), (0, 0, 0)]);
    assert_eq!(vm.stats.get(ExitClass::HostCall).0, 2);
    assert_eq!(vm.stats.get(ExitClass::ProtectedFault).0, 1);
    // The answers are in the realm's structures.
    let page = m.sim.peek(Pa::new(vm.memory.backing_of(RAM).unwrap()));
    assert_eq!(page[0x108], 0xAB);
    assert_eq!(
        u64::from_le_bytes(page[0x110..0x118].try_into().unwrap()),
        x1 + 1
    );
    let page = m.sim.peek(Pa::new(vm.memory.backing_of(far).unwrap()));
    assert_eq!(page[0x208], 0xAB);
    let seen = s.seen();
    assert_eq!(seen[1].x[0], 0, "RSI_SUCCESS");
    assert_eq!(
        seen[2].pc, seen[1].pc,
        "the call runs again after the abort"
    );
    destroy_clean(&m, &mut rig, &mut vm);
}

// -------------------------------------------------------------------------------- PSCI

#[test]
fn psci_cpu_on_affinity_info_and_cpu_off() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut vm = vm_with(&mut rig, &m, 2, 1, RAM_SIZE);
    let s = Script::new(&rig);
    let info = [u64::from(psci::AFFINITY_INFO_64), 1, 0];
    s.smc(&info);
    s.smc(&[u64::from(psci::CPU_ON_64), 1, entry(1), 0xC0FFEE]);
    s.smc(&info);
    s.smc(&[u64::from(psci::CPU_OFF)]);
    s.smc(&info);
    // Started again after CPU_OFF: a fresh entry point and context.
    s.smc(&[u64::from(psci::CPU_ON_64), 1, entry(3), 0xBEEF]);
    s.smc(&info);
    s.off(); // vCPU 1
    run_to_off(&mut rig, &mut vm, &s);
    assert_eq!(s.order(), [0, 0, 0, 1, 0, 0, 0, 1]);
    let seen = s.seen();
    assert_eq!(seen[1].x[0], psci::AFFINITY_OFF);
    assert_eq!(seen[2].x[0], PsciStatus::Success.to_reg(), "CPU_ON");
    assert_eq!(
        (seen[3].pc, seen[3].x[0]),
        (entry(1), 0xC0FFEE),
        "vCPU 1 starts"
    );
    assert_eq!(seen[4].x[0], psci::AFFINITY_ON);
    assert_eq!(seen[5].x[0], psci::AFFINITY_OFF, "after CPU_OFF");
    assert_eq!(seen[6].x[0], PsciStatus::Success.to_reg(), "CPU_ON again");
    assert_eq!((seen[7].pc, seen[7].x[0]), (entry(3), 0xBEEF), "restarted");
    let (r0, r1) = (vm.vcpus[0].rec, vm.vcpus[1].rec);
    let completes = rig.calls(RmiFid::PSCI_COMPLETE);
    assert_eq!(completes.len(), 6);
    for c in &completes {
        assert_eq!(c.regs[1..4], [r0, r1, 0]);
        assert_eq!(c.ret[0], 0);
    }
    assert_eq!(vm.vcpus[1].state, VcpuState::Runnable);
    assert_eq!(vm.stats.get(ExitClass::Psci).0, 8);
    destroy_clean(&m, &mut rig, &mut vm);
}

#[test]
fn a_vcpu_started_by_cpu_on_gets_the_initial_vmcr() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    put_images(&m);
    let recs = recs(2, 1);
    let loads = standard_loads();
    let mut spec = standard_spec(&recs, &loads);
    spec.initial_vmcr = crate::vgic::UNMASKED_VMCR;
    let mut vm = build(&mut rig, &spec).unwrap();
    let s = Script::new(&rig);
    s.smc(&[u64::from(psci::CPU_ON_64), 1, entry(1), 0]);
    s.smc(&[u64::from(psci::AFFINITY_INFO_64), 1, 0]);
    s.off(); // vCPU 1
    run_to_off(&mut rig, &mut vm, &s);
    let seen = s.seen();
    assert_eq!(seen[0].vmcr, crate::vgic::UNMASKED_VMCR, "vCPU 0");
    assert_eq!(seen[2].vcpu, 1);
    assert_eq!(seen[2].vmcr, crate::vgic::UNMASKED_VMCR, "vCPU 1");
    destroy_clean(&m, &mut rig, &mut vm);
}

#[test]
fn cpu_on_answers_denied_and_already_on() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut vm = vm_with(&mut rig, &m, 3, 2, RAM_SIZE);
    let s = Script::new(&rig);
    let on = |t| [u64::from(psci::CPU_ON_64), t, entry(0), 0];
    s.smc(&on(2)); // off, denied by the hooks
    s.off();
    let mut hooks = Policy {
        deny_cpu_on: true,
        ..Policy::default()
    };
    let (r, _) = run_with(&mut rig, &mut vm, &s, &mut hooks, 100);
    assert_eq!(r, Ok(Stop::SystemOff), "{}", rig.log());
    assert_eq!(s.seen()[1].x[0], PsciStatus::Denied.to_reg());
    assert_eq!(vm.vcpus[2].state, VcpuState::Off);
    destroy_clean(&m, &mut rig, &mut vm);

    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut vm = vm_with(&mut rig, &m, 2, 2, RAM_SIZE);
    let s = Script::new(&rig);
    s.smc(&on(1)); // already running
    s.off();
    run_to_off(&mut rig, &mut vm, &s);
    assert_eq!(s.seen()[1].x[0], PsciStatus::AlreadyOn.to_reg());
    destroy_clean(&m, &mut rig, &mut vm);
}

#[test]
fn cpu_on_of_a_running_vcpu_the_hooks_deny_is_already_on() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut vm = vm_with(&mut rig, &m, 2, 2, RAM_SIZE);
    let s = Script::new(&rig);
    s.smc(&[u64::from(psci::CPU_ON_64), 1, entry(0), 0]);
    s.off();
    let mut hooks = Policy {
        deny_cpu_on: true,
        ..Policy::default()
    };
    let (r, _) = run_with(&mut rig, &mut vm, &s, &mut hooks, 100);
    assert_eq!(r, Ok(Stop::SystemOff), "{}", rig.log());
    assert_eq!(s.seen()[1].x[0], PsciStatus::AlreadyOn.to_reg());
    destroy_clean(&m, &mut rig, &mut vm);
}

#[test]
fn system_reset_and_every_vcpu_off_end_the_run() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut vm = vm1(&mut rig, &m);
    let s = Script::new(&rig);
    s.smc(&[u64::from(psci::SYSTEM_RESET)]);
    let (r, _) = run_with(&mut rig, &mut vm, &s, &mut DefaultHooks, 10);
    assert_eq!(r, Ok(Stop::SystemReset));
    assert!(rig.log().contains("SYSTEM_RESET"));
    assert_eq!(
        rig.rd(vm.realm.rd).realm_state(),
        cca_abi::rmi::RealmState::SystemOff
    );
    destroy_clean(&m, &mut rig, &mut vm);

    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut vm = vm1(&mut rig, &m);
    let s = Script::new(&rig);
    s.smc(&[u64::from(psci::CPU_OFF)]);
    let (r, _) = run_with(&mut rig, &mut vm, &s, &mut DefaultHooks, 10);
    assert_eq!(
        r,
        Err(super::error::VmError::Guest("every vCPU is off".into()))
    );
    destroy_clean(&m, &mut rig, &mut vm);
}

// -------------------------------------------------------------------------- interrupts

#[test]
fn an_sgi_wakes_a_vcpu_blocked_in_wfi() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut vm = vm_with(&mut rig, &m, 2, 2, RAM_SIZE);
    vm.vgic.write_dist_ctlr(CTLR_ENABLE_GRP1);
    vm.vgic.set_enabled(1, 3, true);
    let s = Script::new(&rig);
    s.preempted(); // vCPU 0's quantum ends
    s.wfi(); // vCPU 1 blocks
    s.then(|ctx, _| {
        // vCPU 0: ICC_SGI1R_EL1 = SGI 3 to Aff0 1 (through x2).
        ctx.gprs[2] = (3 << 24) | (1 << 1);
        sync(esr::ec::SYSREG, ICC_SGI1R_EL1 | (2 << esr::SYSREG_RT_SHIFT))
    });
    s.preempted();
    s.off(); // vCPU 1, woken
    run_to_off(&mut rig, &mut vm, &s);
    assert_eq!(s.order(), [0, 1, 0, 0, 1]);
    let seen = s.seen();
    assert_eq!(
        seen[1].traps,
        trap::WFI | trap::WFE,
        "the host traps WFI and WFE"
    );
    assert_eq!(seen[3].pc, entry(0) + 4, "past the MSR");
    assert_eq!(seen[4].pc, entry(1) + 4, "past the WFI");
    assert_eq!(in_lrs(&seen[4].lrs, 3), Some(ich::LrState::Pending));
    assert_eq!(in_lrs(&seen[3].lrs, 3), None, "not on the sender");
    assert_eq!(vm.stats.get(ExitClass::Sgi).0, 1);
    assert_eq!(vm.stats.get(ExitClass::Wfi).0, 1);
    assert_eq!(vm.stats.get(ExitClass::Irq).0, 2);
    destroy_clean(&m, &mut rig, &mut vm);
}

#[test]
fn wfi_with_nothing_deliverable_idles_until_the_vtimer_and_ppi_27_is_delivered() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut vm = vm1(&mut rig, &m);
    vm.vgic.write_dist_ctlr(CTLR_ENABLE_GRP1);
    vm.vgic.set_enabled(0, VTIMER_INTID, true);
    let s = Script::new(&rig);
    // A WFE yields without blocking.
    s.then(|_, _| sync(esr::ec::WFX, esr::WFX_TI));
    // WFI with the virtual timer armed 5000 ticks ahead.
    s.then(|_, h| {
        h.now = 100;
        let mut e = sync(esr::ec::WFX, 0);
        e.timers.cntv_ctl = timer_ctl::ENABLE;
        e.timers.cntv_cval = 5100;
        e
    });
    // The realm takes the interrupt, completes it, masks the timer and powers off.
    s.then(|ctx, h| {
        h.lrs = [0; 4];
        ctx.gprs[0] = u64::from(psci::SYSTEM_OFF);
        let mut e = sync(esr::ec::SMC, 0);
        e.timers.cntv_ctl = timer_ctl::ENABLE | timer_ctl::IMASK | timer_ctl::ISTATUS;
        e.timers.cntv_cval = 5100;
        e
    });
    let (r, _) = run_with(&mut rig, &mut vm, &s, &mut DefaultHooks, 100);
    assert_eq!(r, Ok(Stop::SystemOff), "{}", rig.log());
    let seen = s.seen();
    let idles = lock(&s.host).idles.clone();
    assert_eq!(idles, [(100, 5100)], "one idle, until the timer");
    assert_eq!(seen[2].now, 5100);
    assert_eq!(seen[2].pc, entry(0) + 8, "past the WFE and the WFI");
    assert_eq!(
        in_lrs(&seen[2].lrs, VTIMER_INTID),
        Some(ich::LrState::Pending)
    );
    assert_eq!(in_lrs(&seen[1].lrs, VTIMER_INTID), None, "not due yet");
    assert_eq!(vm.stats.get(ExitClass::Wfe).0, 1);
    assert_eq!(vm.stats.get(ExitClass::Wfi).0, 1);
    assert!(
        !vm.vcpus[0].timers[0].asserted(5100),
        "masked at the last exit"
    );
    destroy_clean(&m, &mut rig, &mut vm);
}

#[test]
fn an_expired_timer_the_gic_cannot_deliver_does_not_make_the_host_spin() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut vm = vm1(&mut rig, &m);
    vm.vgic.write_dist_ctlr(CTLR_ENABLE_GRP1);
    vm.vgic.set_enabled(0, 32, true);
    assert_eq!(vm.vgic.spi_target(32), Some(0));
    let s = Script::new(&rig);
    lock(&s.host).input.push_back((10_000, b'x'));
    s.write(UART + IER, 0, 1, 1); // receive interrupts on
    s.then(|_, _| {
        // WFI with the virtual timer expired, its PPI disabled at the GIC.
        let mut e = sync(esr::ec::WFX, 0);
        e.timers.cntv_ctl = timer_ctl::ENABLE;
        e.timers.cntv_cval = 0;
        e
    });
    s.off();
    run_to_off(&mut rig, &mut vm, &s);
    assert_eq!(
        in_lrs(&s.seen()[2].lrs, 32),
        Some(ich::LrState::Pending),
        "the UART"
    );
    let idles = lock(&s.host).idles.clone();
    assert!(idles.iter().all(|&(now, until)| until > now), "{idles:?}");
    destroy_clean(&m, &mut rig, &mut vm);
}

#[test]
fn console_input_wakes_a_vcpu_waiting_for_the_uart() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut vm = vm1(&mut rig, &m);
    vm.vgic.write_dist_ctlr(CTLR_ENABLE_GRP1);
    vm.vgic.set_enabled(0, 32, true);
    let s = Script::new(&rig);
    lock(&s.host).input.push_back((7_000, b'x'));
    s.write(UART + IER, 0, 1, 1);
    s.wfi();
    s.read(UART, 0, 7);
    s.off();
    run_to_off(&mut rig, &mut vm, &s);
    let seen = s.seen();
    assert_eq!(seen[2].now, 7_000, "idle until the input came");
    assert_eq!(in_lrs(&seen[2].lrs, 32), Some(ich::LrState::Pending));
    assert_eq!(seen[3].x[7], u64::from(b'x'));
    let idles = lock(&s.host).idles.clone();
    assert!(
        !idles.is_empty() && idles.iter().all(|&(now, until)| until > now),
        "{idles:?}"
    );
    assert!(
        idles
            .iter()
            .all(|&(now, until)| until <= now + 25 * QUANTUM),
        "idling is bounded without a timer: {idles:?}"
    );
    destroy_clean(&m, &mut rig, &mut vm);
}

// -------------------------------------------------------------------------- scheduling

#[test]
fn quanta_rotate_round_robin_over_more_vcpus_than_cpus() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut vm = vm_with(&mut rig, &m, 3, 3, RAM_SIZE);
    let s = Script::new(&rig);
    for _ in 0..8 {
        // Half a quantum of work ending in an IRQ (the second one is the preemption).
        s.then(|_, h| {
            let deadline = h.deadline.expect("armed");
            h.now = (h.now + QUANTUM * 6 / 10).min(deadline);
            exit(ExitKind::Irq, 0, 0, 0)
        });
    }
    s.off();
    run_to_off(&mut rig, &mut vm, &s);
    assert_eq!(s.order(), [0, 0, 1, 1, 2, 2, 0, 0, 1]);
    let armed = lock(&s.host).armed.clone();
    for q in 1..=4 {
        assert!(armed.contains(&Some(q * QUANTUM)), "{armed:?}");
    }
    assert_eq!(armed.last(), Some(&None), "disarmed at the end");
    assert_eq!(vm.stats.get(ExitClass::Irq).0, 8);
    let exits: Vec<u64> = vm.vcpus.iter().map(|v| v.exits).collect();
    assert_eq!(exits, [4, 3, 2]);
    destroy_clean(&m, &mut rig, &mut vm);
}

#[test]
fn the_exit_limit_stops_the_run_and_the_host_state_is_cleared() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut vm = vm1(&mut rig, &m);
    vm.vgic.write_dist_ctlr(CTLR_ENABLE_GRP1);
    vm.vgic.set_enabled(0, VTIMER_INTID, true);
    let s = Script::new(&rig);
    for _ in 0..5 {
        s.then(|_, _| {
            // A due, unmasked timer keeps PPI 27 in a list register.
            let mut e = exit(ExitKind::Irq, 0, 0, 0);
            e.timers.cntv_ctl = timer_ctl::ENABLE | timer_ctl::ISTATUS;
            e
        });
    }
    let (r, _) = run_with(&mut rig, &mut vm, &s, &mut DefaultHooks, 3);
    assert_eq!(r, Ok(Stop::ExitLimit));
    assert_eq!(m.sim.pending_realm_steps(), 2);
    m.sim.clear_realm_steps();
    assert_eq!(vm.stats.total(), 3);
    assert_eq!(
        in_lrs(&s.seen()[2].lrs, VTIMER_INTID),
        Some(ich::LrState::Pending)
    );
    let h = lock(&s.host);
    assert_eq!((h.deadline, h.hcr, h.lrs), (None, 0, [0; 4]));
    drop(h);
    destroy_clean(&m, &mut rig, &mut vm);
}

// ------------------------------------------------------------------------------ errors

#[test]
fn exits_the_vmm_cannot_handle_are_errors() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut vm = vm1(&mut rig, &m);
    let s = Script::new(&rig);
    let guest = |r: &super::error::VmResult<Stop>, what: &str| match r {
        Err(super::error::VmError::Guest(w)) => assert!(w.contains(what), "{w}"),
        other => panic!("expected a guest error with {what:?}, got {other:?}"),
    };
    // An exit reason of a newer RMM (planes).
    lock(&rig.wire).exit_reason = Some(7);
    s.irq();
    let (r, _) = run_with(&mut rig, &mut vm, &s, &mut DefaultHooks, 10);
    guest(&r, "exit reason 7");
    // A synchronous exception the RMM passes on without a syndrome.
    s.then(|_, _| sync(0x07, 0));
    let (r, _) = run_with(&mut rig, &mut vm, &s, &mut DefaultHooks, 10);
    guest(&r, "EC 0x0");
    // An SError (corrected, asynchronous).
    s.then(|_, _| {
        exit(
            ExitKind::SError,
            (esr::ec::SERROR << esr::EC_SHIFT) | (esr::AET_CE << esr::SERROR_AET_SHIFT) | 0x11,
            0,
            0,
        )
    });
    let (r, _) = run_with(&mut rig, &mut vm, &s, &mut DefaultHooks, 10);
    guest(&r, "SError");
    // REC_ENTER refused: the error names the command.
    m.sim.set_gic_host_state_valid(false);
    let (r, _) = run_with(&mut rig, &mut vm, &s, &mut DefaultHooks, 10);
    let e = r.unwrap_err();
    let (doing, err) = rmi_err(&e);
    assert_eq!((doing, err.fid), ("entering a REC", RmiFid::REC_ENTER));
    assert_eq!(err.status(), Some(RmiStatus::ErrorRec));
    m.sim.set_gic_host_state_valid(true);
    // The VM still runs after all that, and tears down.
    s.off();
    run_to_off(&mut rig, &mut vm, &s);
    assert_eq!(s.seen().len(), 4);
    destroy_clean(&m, &mut rig, &mut vm);
}

#[test]
fn teardown_after_a_busy_run_returns_everything() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let mut vm = vm_with(&mut rig, &m, 2, 1, BLOCK);
    let s = Script::new(&rig);
    s.touch(RAM + 0x40_000); // a page in the loaded block
    s.read(SHARED | (RAM + BLOCK + 0x7000), 3, 0); // a shared page
    s.smc(&[u64::from(psci::CPU_ON_64), 1, entry(1), 0]);
    s.ripas(RAM + 0x40_000, RAM + 0x41_000, false);
    s.preempted();
    s.off(); // vCPU 1
    run_to_off(&mut rig, &mut vm, &s);
    assert_eq!(s.order(), [0, 0, 0, 0, 0, 1]);
    assert_eq!(vm.memory.census()[3], 1, "one shared page");
    let t = destroy_clean(&m, &mut rig, &mut vm);
    assert_eq!(t.recs, 2);
    assert_eq!(t.aux_reclaimed, 2 * cca_abi::rmi::REC_AUX_GRANULES as u64);
}
