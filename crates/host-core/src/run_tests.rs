//! Tests of the run loop. Every RMI call goes to the real RMM core except `REC_ENTER` and
//! `PSCI_COMPLETE`: a scripted fake plays the realm's exits (writing `RmiRecExit` into the
//! REC's run page as the RMM would, recording the pending RIPAS request in the RMM core so
//! that `RTT_SET_RIPAS` runs for real) and records what the host handed over at each entry.
//! A model of the GIC virtual CPU interface stands in for the `ICH_*_EL2` registers.

use super::*;
use crate::boot::tests::Mem;
use cca_abi::el3::MemoryBank;
use cca_abi::rmi::Ripas;
use rmm_core::sim::{Pas, SimPlatform};
use rmm_core::{GranuleTable, Pa, Rmm};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

const BANK: MemoryBank = MemoryBank {
    base: 0x8000_0000,
    size: 0x0200_0000,
};
const POOL: (u64, u64) = (0x8040_0000, 0x0080_0000);
const IMAGE_PA: u64 = 0x8100_0000;
/// Three granules and a bit: the last one is zero-padded.
const IMAGE_SIZE: u64 = 3 * G + 100;
/// `ICH_VTR_EL2` of the model: 5 priority and preemption bits, 4 list registers (QEMU's).
const VTR: u64 = (4 << 29) | (4 << 26) | 3;

/// What the host handed over at one `REC_ENTER`.
#[derive(Clone, Debug)]
struct Entered {
    rec: u64,
    flags: u64,
    gprs: [u64; 31],
    lrs: [u64; 4],
    hcr: u64,
    vmcr: u64,
}

/// One exit of the realm.
struct Step {
    exit: RecExit,
    /// `REC_ENTER` fails with this x0 instead.
    status: Option<u64>,
    /// The realm asked for this RIPAS change (recorded in the RMM core).
    ripas: Option<(u64, u64, Ripas)>,
    /// The realm took and completed every interrupt pending in the list registers.
    eoi: bool,
    /// Counter ticks that pass while the realm runs.
    advance: u64,
}

impl Step {
    fn new(reason: u64) -> Self {
        let mut exit = RecExit::new_zeroed();
        exit.exit_reason = reason;
        Self {
            exit,
            status: None,
            ripas: None,
            eoi: false,
            advance: 0,
        }
    }

    fn timer(mut self, ctl: u64, cval: u64) -> Self {
        self.exit.cntv_ctl = ctl;
        self.exit.cntv_cval = cval;
        self
    }

    fn eoi(mut self) -> Self {
        self.eoi = true;
        self
    }

    fn after(mut self, ticks: u64) -> Self {
        self.advance = ticks;
        self
    }
}

const EC_DABT: u64 = 0x24 << 26;
const ISV: u64 = 1 << 24;
const SAS_WORD: u64 = 2 << 22;
const WNR: u64 = 1 << 6;

fn dabt(ipa: u64, iss: u64) -> Step {
    let mut s = Step::new(exit_reason::SYNC);
    s.exit.esr = EC_DABT | iss;
    s.exit.hpfar = (ipa >> 12) << 4;
    s.exit.far = ipa & 0xfff;
    s
}

fn uart_read(offset: u64) -> Step {
    dabt(UART_IPA + offset, ISV | SAS_WORD)
}

fn uart_write(offset: u64, v: u64) -> Step {
    let mut s = dabt(UART_IPA + offset, ISV | SAS_WORD | WNR);
    s.exit.gprs[0] = v;
    s
}

/// What the payload's console does per character: read UARTFR, write UARTDR.
fn print(text: &str) -> Vec<Step> {
    text.bytes()
        .flat_map(|b| [uart_read(uart::FR), uart_write(uart::DR, u64::from(b))])
        .collect()
}

/// A stage 2 translation fault at a protected IPA (the RMM reports far = 0).
fn fault(ipa: u64) -> Step {
    let mut s = dabt(ipa, 0x07);
    s.exit.far = 0;
    s
}

fn psci(fid: u32, args: &[u64]) -> Step {
    let mut s = Step::new(exit_reason::PSCI);
    s.exit.gprs[0] = u64::from(fid);
    s.exit.gprs[1..=args.len()].copy_from_slice(args);
    s
}

fn ripas(base: u64, top: u64, value: Ripas) -> Step {
    let mut s = Step::new(exit_reason::RIPAS_CHANGE);
    s.exit.ripas_base = base;
    s.exit.ripas_top = top;
    s.exit.ripas_value = value as u8;
    s.ripas = Some((base, top, value));
    s
}

fn host_call(imm: u32, gprs: &[u64]) -> Step {
    let mut s = Step::new(exit_reason::HOST_CALL);
    s.exit.imm = imm;
    s.exit.gprs[..gprs.len()].copy_from_slice(gprs);
    s
}

fn wfi() -> Step {
    let mut s = Step::new(exit_reason::SYNC);
    s.exit.esr = 0x01 << 26;
    s
}

fn failing_enter(x0: u64) -> Step {
    let mut s = Step::new(exit_reason::SYNC);
    s.status = Some(x0);
    s
}

/// Everything the fake RMM, the GIC model and the test share.
#[derive(Default)]
struct World {
    lrs: [u64; 4],
    aprs: [[u64; 4]; 2],
    vmcr: u64,
    hcr: u64,
    now: u64,
    steps: VecDeque<Step>,
    entries: Vec<Entered>,
    completes: Vec<[u64; 3]>,
    complete_status: u64,
}

/// The RMM core, with `REC_ENTER` and `PSCI_COMPLETE` played by the script.
struct Fake<'a, 'b> {
    rmm: &'a Rmm<'b, &'a SimPlatform>,
    sim: &'a SimPlatform,
    world: Rc<RefCell<World>>,
}

impl Conduit for Fake<'_, '_> {
    fn smc(&mut self, regs: [u64; 8]) -> [u64; 8] {
        match RmiFid::from_fid(regs[0] as u32) {
            Some(RmiFid::REC_ENTER) => self.rec_enter(regs[1], regs[2]),
            Some(RmiFid::PSCI_COMPLETE) => {
                let mut w = self.world.borrow_mut();
                w.completes.push([regs[1], regs[2], regs[3]]);
                [w.complete_status, 0, 0, 0, 0, 0, 0, 0]
            }
            _ => self.rmm.handle_rmi(&regs),
        }
    }
}

impl Fake<'_, '_> {
    fn rec_enter(&mut self, rec: u64, run: u64) -> [u64; 8] {
        let mut flags = [0u8; 8];
        self.sim.host_read(Pa::new(run), &mut flags).unwrap();
        let mut gprs = [0u64; 31];
        self.sim
            .host_read(Pa::new(run + 0x200), gprs.as_mut_bytes())
            .unwrap();
        let mut w = self.world.borrow_mut();
        let entered = Entered {
            rec,
            flags: u64::from_le_bytes(flags),
            gprs,
            lrs: w.lrs,
            hcr: w.hcr,
            vmcr: w.vmcr,
        };
        // What the RMM checks of the host's GIC state (RMI_ERROR_REC otherwise).
        let live: Vec<u64> = w
            .lrs
            .iter()
            .filter(|&&lr| ich::state(lr) != 0)
            .copied()
            .collect();
        assert!(
            live.iter().all(|lr| lr & ich::LR_HW == 0),
            "HW bit in {live:x?}"
        );
        for (i, a) in live.iter().enumerate() {
            for b in &live[i + 1..] {
                assert_ne!(a & ich::LR_VINTID, b & ich::LR_VINTID, "duplicate vINTID");
            }
        }
        w.entries.push(entered);
        let Some(step) = w.steps.pop_front() else {
            panic!(
                "the host entered REC {rec:#x} but the script has no more exits: {:#x?}",
                w.entries.last()
            );
        };
        if let Some(x0) = step.status {
            return [x0, 0, 0, 0, 0, 0, 0, 0];
        }
        if step.eoi {
            for lr in w.lrs.iter_mut() {
                *lr &= !(3 << ich::LR_STATE_SHIFT);
            }
        }
        if let Some((base, top, value)) = step.ripas {
            assert!(self
                .rmm
                .rec_request_ripas_change(Pa::new(rec), base, top, value, false));
        }
        w.hcr &= !ich::HCR_EN;
        w.now += step.advance;
        self.sim
            .host_write(Pa::new(run + 0x800), step.exit.as_bytes())
            .unwrap();
        [0; 8]
    }
}

/// The GIC virtual CPU interface model.
struct Gic(Rc<RefCell<World>>);

impl VirtualCpuInterface for Gic {
    fn vtr(&mut self) -> u64 {
        VTR
    }
    fn read_lr(&mut self, n: usize) -> u64 {
        self.0.borrow().lrs[n]
    }
    fn write_lr(&mut self, n: usize, value: u64) {
        self.0.borrow_mut().lrs[n] = value;
    }
    fn read_apr(&mut self, group: usize, n: usize) -> u64 {
        self.0.borrow().aprs[group][n]
    }
    fn write_apr(&mut self, group: usize, n: usize, value: u64) {
        self.0.borrow_mut().aprs[group][n] = value;
    }
    fn read_vmcr(&mut self) -> u64 {
        self.0.borrow().vmcr
    }
    fn write_vmcr(&mut self, value: u64) {
        self.0.borrow_mut().vmcr = value;
    }
    fn write_hcr(&mut self, value: u64) {
        self.0.borrow_mut().hcr = value;
    }
    fn read_misr(&mut self) -> u64 {
        let eoi = self
            .0
            .borrow()
            .lrs
            .iter()
            .any(|&lr| ich::state(lr) == 0 && lr & ich::LR_HW == 0 && lr & ich::LR_EOI != 0);
        u64::from(eoi)
    }
    fn counter(&mut self) -> u64 {
        let mut w = self.0.borrow_mut();
        w.now += 1;
        w.now
    }
}

struct Lines(Vec<String>);

impl RealmConsole for Lines {
    fn line(&mut self, text: &str) {
        self.0.push(text.to_string());
    }
}

/// What a scripted run left behind.
struct Outcome {
    report: RunReport,
    out: String,
    lines: Vec<String>,
    entries: Vec<Entered>,
    completes: Vec<[u64; 3]>,
    steps_left: usize,
    /// Every granule of the pool is Non-secure again.
    all_ns: bool,
    calls: u64,
}

fn run_script(edit: impl FnOnce(&mut RunPlan), steps: Vec<Step>) -> Outcome {
    run_script_answering(edit, steps, 0)
}

/// Runs a script; the fake answers `PSCI_COMPLETE` with x0 = `complete_status`.
fn run_script_answering(
    edit: impl FnOnce(&mut RunPlan),
    steps: Vec<Step>,
    complete_status: u64,
) -> Outcome {
    let banks = [BANK];
    let sim = SimPlatform::new(&banks);
    let storage = rmm_core::sim::granule_storage(&banks);
    let sro = rmm_core::SroStorage::new();
    let rmm = Rmm::new(&sim, GranuleTable::new(&banks, &storage).unwrap(), &sro).unwrap();
    let image: Vec<u8> = (0..IMAGE_SIZE).map(|i| (i % 253) as u8 + 1).collect();
    for (i, chunk) in image.chunks(G as usize).enumerate() {
        sim.host_write(Pa::new(IMAGE_PA + i as u64 * G), chunk)
            .unwrap();
    }
    let world = Rc::new(RefCell::new(World {
        steps: steps.into(),
        complete_status,
        ..World::default()
    }));
    let mut out = String::new();
    let mut rmi = Rmi::new(
        Fake {
            rmm: &rmm,
            sim: &sim,
            world: world.clone(),
        },
        &mut out,
    );
    assert_eq!(
        rmi.call(RmiFid::RMM_ACTIVATE, &[]).status(),
        Some(RmiStatus::Success)
    );
    let mut plan = RunPlan::new(POOL.0, POOL.1, IMAGE_PA, IMAGE_SIZE);
    edit(&mut plan);
    let mut lines = Lines(Vec::new());
    let report = run(
        &mut rmi,
        &mut Mem(&sim),
        &mut Gic(world.clone()),
        &mut lines,
        &plan,
    );
    let calls = rmi.calls;
    let all_ns = (0..POOL.1 / G).all(|i| sim.pas(Pa::new(POOL.0 + i * G)) == Pas::NonSecure);
    let w = world.borrow();
    Outcome {
        report,
        out,
        lines: lines.0,
        entries: w.entries.clone(),
        completes: w.completes.clone(),
        steps_left: w.steps.len(),
        all_ns,
        calls,
    }
}

/// The steps that end a passing payload: the verdict and SYSTEM_OFF.
fn finish(passed: u64, failed: u64) -> Vec<Step> {
    vec![
        host_call(HOST_CALL_VERDICT, &[passed, failed]),
        psci(psci::SYSTEM_OFF, &[]),
    ]
}

const TRAPS: u64 = rec_enter_flags::TRAP_WFI | rec_enter_flags::TRAP_WFE;

#[test]
fn a_payload_run_exercises_every_exit_the_payload_makes() {
    let mut steps = Vec::new();
    let at = |steps: &mut Vec<Step>, more: Vec<Step>| {
        steps.extend(more);
        steps.len()
    };
    // REC 0 prints, touches its stack, turns 64 KiB at 2 MiB into RAM and uses it, has a
    // request at 3 MiB rejected, makes an echo host call.
    let after_print = at(&mut steps, print("hello\n"));
    let after_fault = at(&mut steps, vec![fault(0x10_0010)]);
    let after_ram = at(
        &mut steps,
        vec![ripas(0x20_0000, 0x21_0000, Ripas::Ram), fault(0x20_0008)],
    );
    let after_reject = at(&mut steps, vec![ripas(0x30_0000, 0x30_1000, Ripas::Ram)]);
    let echo: Vec<u64> = (0..31).map(|i| 0xCCA1_0000 + i).collect();
    let after_echo = at(&mut steps, vec![host_call(0xCCA1, &echo)]);
    // PSCI: REC 1 is off, CPU_ON starts it, it prints and stops, REC 0 sees it off.
    let after_cpu_on = at(
        &mut steps,
        vec![
            psci(psci::AFFINITY_INFO_64, &[1, 0]),
            psci(psci::CPU_ON_64, &[1, 0x1000, 0x5EC0]),
        ],
    );
    let mut rec1 = print("REC 1\n");
    rec1.push(psci(psci::CPU_OFF, &[]));
    let after_rec1 = at(&mut steps, rec1);
    // The virtual timer: armed for 10 000, not due at the first WFI, due at the second; the
    // realm takes it, masks the timer and completes the interrupt.
    let after_wfi = at(
        &mut steps,
        vec![
            psci(psci::AFFINITY_INFO_64, &[1, 0]),
            wfi().timer(1, 10_000),
            wfi().timer(1, 10_000).after(20_000),
        ],
    );
    let after_eoi = at(
        &mut steps,
        vec![Step::new(exit_reason::IRQ).timer(7, 10_000).eoi()],
    );
    at(&mut steps, print("done\n"));
    at(&mut steps, finish(20, 0));

    let o = run_script(|_| {}, steps);
    println!("{}", o.out);
    let r = &o.report;
    assert_eq!(r.tally.failed, 0, "{}", o.out);
    assert!(r.tally.passed >= 15, "{}", r.tally.passed);
    assert_eq!(o.steps_left, 0);
    assert!(r.entered && r.system_off && r.realm_passed());
    assert_eq!(
        r.verdict,
        Some(Verdict {
            passed: 20,
            failed: 0
        })
    );
    assert_eq!(o.lines, ["hello", "REC 1", "done"]);
    assert!(o.all_ns, "a granule was left delegated");
    assert!(o
        .out
        .contains("payload realm RIM (predicted by the host) = "));

    // Every entry traps WFx and enables the virtual CPU interface with the REC's VMCR.
    let rec0 = o.entries[0].rec;
    for e in &o.entries {
        assert_eq!(e.flags & TRAPS, TRAPS);
        assert_eq!(e.hcr, ich::HCR_EN);
        assert_eq!(e.vmcr, ich::VMCR_INITIAL);
    }
    // UART: a UARTFR read answered 0 with EMUL_MMIO, then the UARTDR write completed.
    assert_eq!(o.entries[1].flags, TRAPS | rec_enter_flags::EMUL_MMIO);
    assert_eq!(o.entries[1].gprs[0], 0);
    assert_eq!(o.entries[2].flags, TRAPS | rec_enter_flags::EMUL_MMIO);
    // Faults are answered by mapping, without flags.
    assert_eq!(o.entries[after_print + 1].flags, TRAPS);
    assert_eq!(o.entries[after_fault + 1].flags, TRAPS);
    assert_eq!(
        o.entries[after_ram].flags, TRAPS,
        "the RAM request is accepted"
    );
    assert_eq!(
        o.entries[after_reject].flags,
        TRAPS | rec_enter_flags::RIPAS_RESPONSE
    );
    let expect: Vec<u64> = echo.iter().map(|x| x + 1).collect();
    assert_eq!(o.entries[after_echo].gprs[..], expect[..]);
    // CPU_ON: PSCI_COMPLETE, then REC 1 runs until CPU_OFF, then REC 0 again.
    let rec1 = o.entries[after_cpu_on].rec;
    assert_ne!(rec1, rec0);
    assert_eq!(
        o.entries[after_cpu_on - 1].rec,
        rec0,
        "REC 1 was off: REC 0 polls"
    );
    assert!(o.entries[after_cpu_on..after_rec1]
        .iter()
        .all(|e| e.rec == rec1));
    assert_eq!(o.entries[after_rec1].rec, rec0);
    assert_eq!(o.completes, [[rec0, rec1, 0]; 3]);
    // The timer: no list register before it is due, vINTID 27 pending in group 1 (HW = 0,
    // EOI maintenance) once it is, and nothing after the realm completed it.
    assert!(o.entries[after_wfi - 1]
        .lrs
        .iter()
        .all(|&lr| ich::state(lr) == 0));
    let lr = o.entries[after_wfi].lrs[0];
    assert_eq!(
        lr,
        ich::LR_PENDING | ich::LR_GROUP1 | ich::LR_EOI | (0xa0 << 48) | 27,
        "{lr:#x}"
    );
    assert!(o.entries[after_eoi].lrs.iter().all(|&lr| lr == 0));
    assert_eq!((r.timer_injections, r.timer_eois), (1, 1));
    assert!(r.misr_eoi >= 1);

    // Exit accounting.
    let count = |c| r.stats.get(c).0;
    assert_eq!(count(ExitClass::Mmio), 2 * (6 + 6 + 5));
    assert_eq!(count(ExitClass::HostCall), 2);
    assert_eq!(count(ExitClass::Psci), 5);
    assert_eq!(count(ExitClass::RipasChange), 2);
    assert_eq!(count(ExitClass::ProtectedFault), 2);
    assert_eq!(count(ExitClass::Wfx), 2);
    assert_eq!(count(ExitClass::Irq), 1);
    assert_eq!(count(ExitClass::Other), 0);
    assert_eq!(r.stats.total(), o.entries.len() as u64);
    assert!(r.stats.ticks.iter().sum::<u64>() >= r.stats.total());
    assert_eq!(r.mapped_on_demand, 2);
    assert!(o.out.contains("4 measured DATA granule(s)"), "{}", o.out);
    assert!(
        o.out.contains("6 data granule(s) unmapped"),
        "image (4) and two pages mapped on demand: {}",
        o.out
    );
    assert!(o
        .out
        .contains("32 auxiliary granules of 2 REC(s) reclaimed"));
    assert!(o.out.contains(
        "RIPAS of [0x200000, 0x210000) to RAM: accepted, RTT_SET_RIPAS reached 0x210000"
    ));
}

#[test]
fn without_an_image_nothing_runs() {
    let o = run_script(|p| p.image_size = 0, vec![]);
    assert_eq!(o.report.tally.failed, 1);
    assert_eq!(o.calls, 1, "only RMM_ACTIVATE");
    assert!(!o.report.entered);
    assert!(o
        .out
        .contains("FAILED: there is a realm payload image (its size word is 0)"));
}

#[test]
fn an_image_larger_than_initial_ram_is_refused() {
    let o = run_script(|p| p.image_size = 0x20_0001, vec![]);
    assert_eq!(o.report.tally.failed, 1);
    assert_eq!(o.calls, 1);
}

#[test]
fn a_failing_rec_enter_stops_the_run_and_the_realm_is_torn_down() {
    let o = run_script(|_| {}, vec![failing_enter(u64::MAX)]);
    let r = &o.report;
    assert!(!r.entered);
    assert!(o
        .out
        .contains("FAILED: REC_ENTER(REC 0) -> SMC_UNKNOWN after 0 exit(s)"));
    assert_eq!(
        r.tally.failed, 3,
        "REC_ENTER, SYSTEM_OFF and verdict: {}",
        o.out
    );
    assert!(o.all_ns);
    assert!(!r.realm_passed());
}

#[test]
fn an_access_the_host_does_not_emulate_gets_an_sea() {
    let mut steps = vec![dabt(UNPROTECTED + 0x1000, ISV | SAS_WORD)];
    steps.extend(finish(3, u64::MAX));
    let o = run_script(|_| {}, steps);
    assert_eq!(o.entries[1].flags, TRAPS | rec_enter_flags::INJECT_SEA);
    assert!(o
        .out
        .contains("access to unprotected IPA 0x8000001000 the host does not emulate"));
    assert!(o
        .out
        .contains("FAILED: the realm payload passed (it stopped on a fatal error after 3 checks)"));
    assert_eq!(o.report.tally.failed, 2);
    assert!(o.report.system_off && !o.report.realm_passed());
    assert!(o.all_ns);
}

#[test]
fn a_fault_outside_the_realms_ram_stops_the_realm() {
    let o = run_script(|_| {}, vec![fault(0x80_0000)]);
    assert!(o
        .out
        .contains("fault at protected IPA 0x800000 outside the realm's RAM"));
    assert_eq!(o.report.tally.failed, 3, "{}", o.out);
    assert_eq!(o.entries.len(), 1);
    assert!(o.all_ns);
}

#[test]
fn a_fault_on_a_mapped_page_stops_the_realm() {
    let o = run_script(|_| {}, vec![fault(0x1000)]);
    assert!(o
        .out
        .contains("fault at protected IPA 0x1000, which is mapped"));
    assert_eq!(o.report.tally.failed, 3);
    assert!(o.all_ns);
}

#[test]
fn an_serror_stops_the_realm() {
    let mut s = Step::new(exit_reason::SERROR);
    s.exit.esr = 0x2f << 26;
    let o = run_script(|_| {}, vec![s]);
    assert!(o
        .out
        .contains("FAILED: REC 0: SError exit (ESR 0xbc000000)"));
    assert_eq!(o.report.tally.failed, 3);
    assert!(o.all_ns);
}

#[test]
fn cpu_on_can_be_denied() {
    let mut steps = vec![psci(psci::CPU_ON_64, &[1, 0x1000, 0])];
    steps.extend(finish(1, 0));
    let o = run_script(|p| p.allow_cpu_on = false, steps);
    let rec0 = o.entries[0].rec;
    assert_eq!(o.completes.len(), 1);
    assert_eq!(o.completes[0][0], rec0);
    assert_eq!(o.completes[0][2], PsciStatus::Denied.to_reg());
    assert!(o.entries.iter().all(|e| e.rec == rec0));
    assert_eq!(o.report.tally.failed, 0, "{}", o.out);
}

#[test]
fn a_psci_complete_the_rmm_refuses_stops_the_realm() {
    let steps = vec![psci(psci::AFFINITY_INFO_64, &[1, 0])];
    let o = run_script_answering(|_| {}, steps, RmiStatus::ErrorInput as u64);
    assert!(o
        .out
        .contains("FAILED: PSCI_COMPLETE(REC 0, REC 1, Success) -> RMI_ERROR_INPUT"));
    assert_eq!(o.entries.len(), 1);
    assert!(o.all_ns);
}

#[test]
fn cpu_on_for_an_unknown_mpidr_stops_the_realm() {
    let o = run_script(|_| {}, vec![psci(psci::CPU_ON_64, &[7, 0x1000, 0])]);
    assert!(o.out.contains("CPU_ON names MPIDR 0x7, which no REC has"));
    assert!(o.completes.is_empty());
    assert!(o.all_ns);
}

#[test]
fn the_run_stops_after_its_exit_budget() {
    let steps = (0..3).map(|_| Step::new(exit_reason::IRQ)).collect();
    let o = run_script(|p| p.max_exits = 3, steps);
    assert!(o.out.contains("FAILED: the realm finished within 3 exits"));
    assert_eq!(o.report.stats.get(ExitClass::Irq).0, 3);
    assert!(o.all_ns);
}

#[test]
fn a_realm_whose_only_rec_stops_without_system_off_fails() {
    let o = run_script(|_| {}, vec![psci(psci::CPU_OFF, &[])]);
    assert!(o.out.contains("FAILED: a REC is left to run"));
    assert!(o.all_ns);
}

#[test]
fn ripas_empty_is_accepted_and_ram_beyond_the_hosts_memory_is_rejected() {
    let mut steps = vec![
        fault(0x10_0000),
        ripas(0x10_0000, 0x10_2000, Ripas::Empty),
        ripas(0x2f_f000, 0x40_1000, Ripas::Ram),
    ];
    steps.extend(finish(2, 0));
    let o = run_script(|_| {}, steps);
    assert_eq!(o.report.tally.failed, 0, "{}", o.out);
    assert_eq!(o.entries[2].flags, TRAPS);
    assert_eq!(o.entries[3].flags, TRAPS | rec_enter_flags::RIPAS_RESPONSE);
    assert!(o.out.contains(
        "RIPAS of [0x100000, 0x102000) to EMPTY: accepted, RTT_SET_RIPAS reached 0x102000"
    ));
    assert!(o.out.contains("beyond the memory the host gives the realm"));
    assert!(o.all_ns);
}

#[test]
fn the_rejection_window_is_a_plan_setting() {
    let mut steps = vec![ripas(0x30_0000, 0x30_1000, Ripas::Ram)];
    steps.extend(finish(1, 0));
    let o = run_script(|p| p.ripas_reject = (0, 0), steps);
    assert_eq!(o.entries[1].flags, TRAPS);
    assert_eq!(o.report.tally.failed, 0, "{}", o.out);
}

#[test]
fn a_trapped_icc_sre_el1_read_returns_sre_dfb_dib() {
    let mut s = Step::new(exit_reason::SYNC);
    // MRS x3, ICC_SRE_EL1: op0 3, op2 5, op1 0, CRn 12, Rt (masked to 0 by the RMM), CRm 12,
    // direction read.
    s.exit.esr = (0x18 << 26) | (3 << 20) | (5 << 17) | (12 << 10) | (12 << 1) | 1;
    let mut steps = vec![s];
    steps.extend(finish(1, 0));
    let o = run_script(|_| {}, steps);
    assert_eq!(o.entries[1].gprs[0], 7);
    assert_eq!(o.report.tally.failed, 0, "{}", o.out);
    assert_eq!(o.report.stats.get(ExitClass::SysReg).0, 1);
}

#[test]
fn a_timer_that_drops_before_the_realm_takes_it_is_withdrawn() {
    let steps = vec![
        wfi().timer(1, 0),
        Step::new(exit_reason::IRQ).timer(3, 0),
        host_call(HOST_CALL_VERDICT, &[1, 0]),
        psci(psci::SYSTEM_OFF, &[]),
    ];
    let o = run_script(|_| {}, steps);
    assert_eq!(ich::state(o.entries[1].lrs[0]), 1, "injected");
    assert!(o.entries[2].lrs.iter().all(|&lr| lr == 0), "withdrawn");
    assert_eq!((o.report.timer_injections, o.report.timer_eois), (1, 0));
}

#[test]
fn a_long_line_is_split_and_a_partial_one_is_flushed_at_the_end() {
    let long = "x".repeat(LINE_MAX + 10);
    let mut steps = print(&long);
    steps.extend(finish(1, 0));
    let o = run_script(|_| {}, steps);
    assert_eq!(o.lines.len(), 2);
    assert_eq!(o.lines[0].len(), LINE_MAX);
    assert_eq!(o.lines[1].len(), 10);
}

#[test]
fn a_failing_verdict_is_not_a_pass() {
    let o = run_script(|_| {}, finish(10, 2));
    assert!(!o.report.realm_passed());
    assert!(o
        .out
        .contains("FAILED: the realm payload passed: 10 checks passed, 2 did not"));
    let o = run_script(|_| {}, finish(0, 0));
    assert!(!o.report.realm_passed(), "nothing was checked");
}

/// The run loop against the RMM core's own `REC_ENTER`: the realm's instructions are scripted
/// through the simulator's run seam (each step sees the REC's registers as the RMM enters it
/// and says how the realm exits to EL2), so the RMM decodes every exit, answers RSI and PSCI
/// itself, and completes what the host answered at the next entry.
mod against_the_rmm_core {
    use super::*;
    use rmm_core::run::{ExitKind, RealmContext, RealmExit, TimerState};
    use std::sync::{Arc, Mutex};

    /// The host's GIC model, shared with the scripted realm (which takes the interrupt).
    #[derive(Default)]
    struct SharedGic {
        lrs: [u64; 4],
        vmcr: u64,
        hcr: u64,
        now: u64,
    }

    #[derive(Clone, Default)]
    struct HostGic(Arc<Mutex<SharedGic>>);

    impl VirtualCpuInterface for HostGic {
        fn vtr(&mut self) -> u64 {
            VTR
        }
        fn read_lr(&mut self, n: usize) -> u64 {
            self.0.lock().unwrap().lrs[n]
        }
        fn write_lr(&mut self, n: usize, value: u64) {
            self.0.lock().unwrap().lrs[n] = value;
        }
        fn read_apr(&mut self, _: usize, _: usize) -> u64 {
            0
        }
        fn write_apr(&mut self, _: usize, _: usize, _: u64) {}
        fn read_vmcr(&mut self) -> u64 {
            self.0.lock().unwrap().vmcr
        }
        fn write_vmcr(&mut self, value: u64) {
            self.0.lock().unwrap().vmcr = value;
        }
        fn write_hcr(&mut self, value: u64) {
            self.0.lock().unwrap().hcr = value;
        }
        fn read_misr(&mut self) -> u64 {
            0
        }
        fn counter(&mut self) -> u64 {
            let mut g = self.0.lock().unwrap();
            g.now += 1;
            g.now
        }
    }

    const SMC_EC: u64 = 0x17 << 26;
    const RSI_IPA_STATE_SET: u64 = 0xC400_0197;
    const RSI_HOST_CALL: u64 = 0xC400_0199;

    fn exit(esr: u64, ipa: u64, timers: TimerState) -> RealmExit {
        RealmExit {
            kind: ExitKind::Sync,
            esr,
            far: ipa,
            hpfar: (ipa >> 12) << 4,
            timers,
        }
    }

    fn smc(ctx: &mut RealmContext, args: &[u64]) -> RealmExit {
        ctx.gprs[..args.len()].copy_from_slice(args);
        exit(SMC_EC, 0, TimerState::default())
    }

    /// A word store of `x1` to the UART's UARTDR (Rt = 1).
    fn uart_store(ctx: &mut RealmContext, b: u8) -> RealmExit {
        ctx.gprs[1] = u64::from(b);
        exit(
            EC_DABT | ISV | SAS_WORD | (1 << 16) | WNR | 7,
            UART_IPA,
            TimerState::default(),
        )
    }

    /// An `RsiHostCall` (imm at 0, gprs at 8) as the first bytes of a granule.
    fn host_call_page(imm: u16, gprs: &[u64]) -> Vec<u8> {
        let mut page = vec![0u8; G as usize];
        page[..2].copy_from_slice(&imm.to_le_bytes());
        for (i, g) in gprs.iter().enumerate() {
            page[8 + 8 * i..16 + 8 * i].copy_from_slice(&g.to_le_bytes());
        }
        page
    }

    #[test]
    fn a_realm_runs_under_the_rmm_cores_rec_enter() {
        let banks = [BANK];
        let sim = SimPlatform::new(&banks);
        let storage = rmm_core::sim::granule_storage(&banks);
        let sro = rmm_core::SroStorage::new();
        let rmm = Rmm::new(&sim, GranuleTable::new(&banks, &storage).unwrap(), &sro).unwrap();
        // The image: code (never executed here), the verdict and echo host call structures.
        let image = [
            vec![0u8; G as usize],
            host_call_page(0xCCA0, &[7, 0]),
            host_call_page(0xCCA1, &[1, 2, 3]),
        ];
        for (i, page) in image.iter().enumerate() {
            sim.host_write(Pa::new(IMAGE_PA + i as u64 * G), page)
                .unwrap();
        }

        let gic = HostGic::default();
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        type Step = Box<dyn FnMut(&mut RealmContext) -> RealmExit + Send>;
        type Realm = Box<dyn Fn(&mut RealmContext, &mut Vec<String>) -> RealmExit + Send>;
        let step = |f: Realm| {
            let seen = seen.clone();
            Box::new(move |ctx: &mut RealmContext| f(ctx, &mut seen.lock().unwrap())) as Step
        };
        let g = gic.0.clone();
        let steps: Vec<Step> = vec![
            step(Box::new(|ctx, _| uart_store(ctx, b'A'))),
            step(Box::new(|ctx, s| {
                s.push(format!("pc {:#x}", ctx.pc));
                uart_store(ctx, b'B')
            })),
            step(Box::new(|ctx, _| uart_store(ctx, b'\n'))),
            // A word load of UARTFR into x2.
            step(Box::new(|ctx, _| {
                ctx.gprs[2] = 0xdead;
                exit(
                    EC_DABT | ISV | SAS_WORD | (2 << 16) | 7,
                    UART_IPA + uart::FR,
                    TimerState::default(),
                )
            })),
            // A store to its stack, not mapped yet.
            step(Box::new(|ctx, s| {
                s.push(format!("x2 {:#x} pc {:#x}", ctx.gprs[2], ctx.pc));
                exit(EC_DABT | WNR | 7, 0x10_0008, TimerState::default())
            })),
            step(Box::new(|ctx, s| {
                s.push(format!("pc {:#x}", ctx.pc));
                smc(ctx, &[RSI_IPA_STATE_SET, 0x20_0000, 0x21_0000, 1, 0])
            })),
            step(Box::new(|ctx, s| {
                s.push(format!("ripas {:x?}", &ctx.gprs[..3]));
                smc(ctx, &[RSI_IPA_STATE_SET, 0x30_0000, 0x30_1000, 1, 0])
            })),
            step(Box::new(|ctx, s| {
                s.push(format!("ripas {:x?}", &ctx.gprs[..3]));
                smc(ctx, &[RSI_HOST_CALL, 0x2000])
            })),
            step(Box::new(|ctx, s| {
                s.push(format!("host call {:#x}", ctx.gprs[0]));
                smc(ctx, &[u64::from(psci::CPU_ON_64), 1, 0x3000, 0x5ec0])
            })),
            // REC 1.
            step(Box::new(|ctx, s| {
                s.push(format!(
                    "REC 1 pc {:#x} x0 {:#x} mpidr {:#x}",
                    ctx.pc,
                    ctx.gprs[0],
                    ctx.vmpidr & 0xff
                ));
                smc(ctx, &[u64::from(psci::CPU_OFF)])
            })),
            // REC 0 again.
            step(Box::new(|ctx, s| {
                s.push(format!("cpu_on {:#x}", ctx.gprs[0]));
                smc(ctx, &[u64::from(psci::AFFINITY_INFO_64), 1, 0])
            })),
            // WFI with the virtual timer enabled and expired.
            step(Box::new(|ctx, s| {
                s.push(format!("affinity {:#x}", ctx.gprs[0]));
                let timers = TimerState {
                    cntv_ctl: 5,
                    cntv_cval: 1,
                    ..TimerState::default()
                };
                exit(0x01 << 26, 0, timers)
            })),
            // The realm takes the interrupt, masks the timer and ends the interrupt.
            step(Box::new(move |_, s| {
                let mut gic = g.lock().unwrap();
                s.push(format!("lr0 {:#x}", gic.lrs[0]));
                gic.lrs[0] &= !(3 << ich::LR_STATE_SHIFT);
                RealmExit {
                    kind: ExitKind::Irq,
                    esr: 0,
                    far: 0,
                    hpfar: 0,
                    timers: TimerState {
                        cntv_ctl: 7,
                        cntv_cval: 1,
                        ..TimerState::default()
                    },
                }
            })),
            step(Box::new(|ctx, _| smc(ctx, &[RSI_HOST_CALL, 0x1000]))),
            step(Box::new(|ctx, _| smc(ctx, &[u64::from(psci::SYSTEM_OFF)]))),
        ];
        for s in steps {
            sim.push_realm_step(s);
        }

        let mut out = String::new();
        let mut rmi = Rmi::new(crate::boot::tests::Direct(&rmm), &mut out);
        assert_eq!(
            rmi.call(RmiFid::RMM_ACTIVATE, &[]).status(),
            Some(RmiStatus::Success)
        );
        let plan = RunPlan::new(POOL.0, POOL.1, IMAGE_PA, 3 * G);
        let mut lines = Lines(Vec::new());
        let report = run(
            &mut rmi,
            &mut Mem(&sim),
            &mut gic.clone(),
            &mut lines,
            &plan,
        );
        println!("{out}");
        assert_eq!(report.tally.failed, 0, "{out}");
        assert_eq!(sim.pending_realm_steps(), 0);
        assert!(
            sim.take_injections().is_empty(),
            "the RMM injected an exception"
        );
        assert_eq!(lines.0, ["AB"]);
        assert_eq!(
            report.verdict,
            Some(Verdict {
                passed: 7,
                failed: 0
            })
        );
        assert!(report.system_off && report.realm_passed());
        assert_eq!((report.timer_injections, report.timer_eois), (1, 1));
        assert_eq!(report.mapped_on_demand, 1);
        let timer_lr = ich::LR_PENDING | ich::LR_GROUP1 | ich::LR_EOI | (0xa0 << 48) | 27;
        let want = [
            // EMUL_MMIO completed the store: the PC moved on.
            "pc 0x4".to_string(),
            // ... and the load: x2 holds the host's value.
            "x2 0x0 pc 0x10".into(),
            // The faulting store is re-executed after the host mapped the page.
            "pc 0x10".into(),
            // SUCCESS, next = top, ACCEPT.
            "ripas [0, 210000, 0]".into(),
            // SUCCESS, next = base, REJECT.
            "ripas [0, 300000, 1]".into(),
            "host call 0x0".into(),
            "REC 1 pc 0x3000 x0 0x5ec0 mpidr 0x1".into(),
            "cpu_on 0x0".into(),
            // AFFINITY_INFO: OFF.
            "affinity 0x1".into(),
            format!("lr0 {timer_lr:#x}"),
        ];
        assert_eq!(*seen.lock().unwrap(), want);
        let all_ns = (0..POOL.1 / G).all(|i| sim.pas(Pa::new(POOL.0 + i * G)) == Pas::NonSecure);
        assert!(all_ns);
    }
}
