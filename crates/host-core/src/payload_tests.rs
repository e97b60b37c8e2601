//! Tests of the payload realm on the VMM, against the RMM core in-process: every RMI call goes
//! to `rmm-core` (through a conduit that records what the host handed over at each
//! `REC_ENTER`), and the realm's instructions are scripted through the simulator's run seam
//! (each step sees the REC's registers as the RMM enters it and says how the realm exits to
//! EL2), so the RMM decodes every exit, answers RSI and PSCI itself and completes what the
//! host answered at the next entry. A model of the machine (GIC virtual CPU interface,
//! counter, preemption timer, idling) stands in for the firmware's.

use super::*;
use crate::boot::tests::Mem;
use crate::rmi::Conduit;
use cca_abi::arch::esr;
use cca_abi::el3::MemoryBank;
use cca_abi::psci::{self, PsciStatus};
use cca_abi::rmi::{rec_enter_flags, RmiFid, RmiStatus};
use cca_abi::rsi;
use rmm_core::run::{ExitKind, RealmContext, RealmExit, TimerState};
use rmm_core::sim::{Pas, SimPlatform, SIM_ICH_VTR};
use rmm_core::{GranuleTable, Pa, Rmm};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

const BANK: MemoryBank = MemoryBank {
    base: 0x8000_0000,
    size: 0x0200_0000,
};
/// The image, then the realm's pool (16 MiB, as the firmware's).
const IMAGE_PA: u64 = 0x8000_0000;
const POOL: (u64, u64) = (0x8100_0000, 0x0100_0000);
/// Where the image holds the `RsiHostCall` structures of the verdict, the echo and the
/// timings.
const VERDICT_IPA: u64 = 0x1000;
const ECHO_IPA: u64 = 0x2000;
const TIMING_IPA: u64 = 0x3000;
/// Four granules and 100 bytes: the last granule is zero-padded.
const IMAGE_SIZE: u64 = 4 * G + 100;
/// The model's counter frequency.
const HZ: u64 = 1_000_000;

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

/// The machine model, shared with the scripted realm (which takes interrupts from the list
/// registers).
#[derive(Clone, Default)]
struct HostState {
    lrs: [u64; 4],
    aprs: [[u64; 4]; 2],
    vmcr: u64,
    hcr: u64,
    now: u64,
    idles: Vec<u64>,
    preemption: Option<u64>,
    input: VecDeque<u8>,
}

#[derive(Clone, Default)]
struct Host(Arc<Mutex<HostState>>);

impl Host {
    fn state(&self) -> std::sync::MutexGuard<'_, HostState> {
        self.0.lock().unwrap()
    }
}

impl VirtualCpuInterface for Host {
    fn vtr(&mut self) -> u64 {
        SIM_ICH_VTR
    }
    fn read_lr(&mut self, n: usize) -> u64 {
        self.state().lrs.get(n).copied().unwrap_or(0)
    }
    fn write_lr(&mut self, n: usize, value: u64) {
        if let Some(lr) = self.state().lrs.get_mut(n) {
            *lr = value;
        }
    }
    fn read_apr(&mut self, group: usize, n: usize) -> u64 {
        self.state().aprs[group][n]
    }
    fn write_apr(&mut self, group: usize, n: usize, value: u64) {
        self.state().aprs[group][n] = value;
    }
    fn read_vmcr(&mut self) -> u64 {
        self.state().vmcr
    }
    fn write_vmcr(&mut self, value: u64) {
        self.state().vmcr = value;
    }
    fn write_hcr(&mut self, value: u64) {
        self.state().hcr = value;
    }
    fn read_misr(&mut self) -> u64 {
        0
    }
    fn counter(&mut self) -> u64 {
        let mut s = self.state();
        s.now += 1;
        s.now
    }
}

impl VmHost for Host {
    fn counter_hz(&mut self) -> u64 {
        HZ
    }
    fn arm_preemption(&mut self, deadline: Option<u64>) {
        self.state().preemption = deadline;
    }
    fn idle(&mut self, until: u64) {
        let mut s = self.state();
        s.idles.push(until);
        s.now = s.now.max(until);
    }
    fn poll_input(&mut self) -> Option<u8> {
        self.state().input.pop_front()
    }
    fn unix_time(&mut self) -> u64 {
        0
    }
}

/// The RMM core, recording what the host hands over at each `REC_ENTER`.
struct Spy<'a, 'b> {
    rmm: &'a Rmm<'b, &'a SimPlatform>,
    sim: &'a SimPlatform,
    host: Host,
    entries: Rc<RefCell<Vec<Entered>>>,
}

impl Conduit for Spy<'_, '_> {
    fn smc(&mut self, regs: [u64; 8]) -> [u64; 8] {
        if RmiFid::from_fid(regs[0] as u32) == Some(RmiFid::REC_ENTER) {
            let run = regs[2];
            let mut flags = [0u8; 8];
            self.sim.host_read(Pa::new(run), &mut flags).unwrap();
            let mut raw = [0u8; 31 * 8];
            self.sim.host_read(Pa::new(run + 0x200), &mut raw).unwrap();
            let gprs = core::array::from_fn(|i| {
                u64::from_le_bytes(raw[8 * i..8 * i + 8].try_into().unwrap())
            });
            let s = self.host.state();
            self.entries.borrow_mut().push(Entered {
                rec: regs[1],
                flags: u64::from_le_bytes(flags),
                gprs,
                lrs: s.lrs,
                hcr: s.hcr,
                vmcr: s.vmcr,
            });
        }
        self.rmm.handle_rmi(&regs)
    }
}

/// Collects both kinds of console line.
#[derive(Default)]
struct Console {
    realm: Vec<String>,
    host: Vec<String>,
}

impl PayloadConsole for Console {
    fn realm_line(&mut self, text: &str) {
        self.realm.push(text.to_string());
    }
    fn host_line(&mut self, text: core::fmt::Arguments<'_>) {
        self.host.push(text.to_string());
    }
}

/// What the realm steps write down as they run.
type Seen = Arc<Mutex<Vec<String>>>;
type RealmFn = Box<dyn FnMut(&mut RealmContext, &mut Vec<String>) -> RealmExit + Send>;

/// The realm's script.
struct Script<'a> {
    sim: &'a SimPlatform,
    seen: Seen,
    host: Host,
}

impl Script<'_> {
    fn step(
        &self,
        f: impl FnMut(&mut RealmContext, &mut Vec<String>) -> RealmExit + Send + 'static,
    ) {
        let seen = self.seen.clone();
        let mut f: RealmFn = Box::new(f);
        self.sim
            .push_realm_step(Box::new(move |ctx| f(ctx, &mut seen.lock().unwrap())));
    }

    /// An SMC with these arguments; the next step sees the RMM's answer.
    fn smc(&self, args: &'static [u64]) {
        self.step(move |ctx, _| smc(ctx, args));
    }

    /// Records `what` with the first `n` registers the realm sees now (the answer to its
    /// last call), then makes the SMC.
    fn note_then_smc(&self, what: &'static str, n: usize, args: &'static [u64]) {
        self.step(move |ctx, s| {
            s.push(format!("{what} {:x?}", &ctx.gprs[..n]));
            smc(ctx, args)
        });
    }

    /// The payload's console: a UARTFR read, then one word store per character.
    fn print(&self, text: &'static str) {
        self.step(|_, _| uart_access(esr::ISV | SAS_WORD | (2 << 16), uart_fr()));
        for b in text.bytes() {
            self.step(move |ctx, _| {
                ctx.gprs[1] = u64::from(b);
                uart_access(esr::ISV | SAS_WORD | (1 << 16) | esr::WNR, UART_IPA)
            });
        }
    }
}

const SAS_WORD: u64 = 2 << esr::SAS_SHIFT;
const DFSC_TRANSLATION_L3: u64 = 0x07;

const fn uart_fr() -> u64 {
    UART_IPA + 0x18
}

fn exit_at(esr: u64, ipa: u64, timers: TimerState) -> RealmExit {
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
    exit_at(esr::ec::SMC << esr::EC_SHIFT, 0, TimerState::default())
}

fn uart_access(iss: u64, ipa: u64) -> RealmExit {
    exit_at(
        (esr::ec::DABT_LOW << esr::EC_SHIFT) | iss | DFSC_TRANSLATION_L3,
        ipa,
        TimerState::default(),
    )
}

/// A store that faults on an unmapped protected page.
fn touch(ipa: u64) -> RealmExit {
    exit_at(
        (esr::ec::DABT_LOW << esr::EC_SHIFT) | esr::WNR | DFSC_TRANSLATION_L3,
        ipa,
        TimerState::default(),
    )
}

fn irq(timers: TimerState) -> RealmExit {
    RealmExit {
        kind: ExitKind::Irq,
        esr: 0,
        far: 0,
        hpfar: 0,
        timers,
    }
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

/// The gprs of the echo host call: as the payload's, `gprs[30]` wraps.
fn echo_gprs() -> [u64; 31] {
    core::array::from_fn(|i| {
        if i == 30 {
            u64::MAX
        } else {
            0xCCA1_0000_0000_0000 | (i as u64) << 8
        }
    })
}

/// The image: code (never executed here), then the structures of the three host calls, then
/// 100 bytes of a fifth granule.
fn image(verdict: (u64, u64)) -> Vec<u8> {
    let mut img = vec![0xE5u8; G as usize];
    img.extend(host_call_page(HOST_CALL_VERDICT, &[verdict.0, verdict.1]));
    img.extend(host_call_page(0xCCA1, &echo_gprs()));
    img.extend(host_call_page(
        HOST_CALL_TIMING,
        &[64, 5_000, 62_500_000, 64, 8_000, 62_500_000],
    ));
    img.extend((0..100).map(|i| i as u8 + 1));
    assert_eq!(img.len() as u64, IMAGE_SIZE);
    img
}

/// What a scripted run left behind.
struct Run {
    report: PayloadReport,
    out: String,
    console: Console,
    seen: Vec<String>,
    entries: Vec<Entered>,
    steps_left: usize,
    injections: usize,
    /// Every granule of the pool is Non-secure and zero... or at least Non-secure again.
    all_ns: bool,
    calls: u64,
    host: HostState,
}

impl Run {
    fn host_has(&self, line: &str) -> bool {
        self.console.host.iter().any(|l| l == line)
    }
}

fn run_payload(
    verdict: (u64, u64),
    edit: impl FnOnce(&mut PayloadPlan),
    script: impl FnOnce(&Script<'_>),
) -> Run {
    run_with(image(verdict), Host::default(), edit, script)
}

fn run_with(
    img: Vec<u8>,
    host: Host,
    edit: impl FnOnce(&mut PayloadPlan),
    script: impl FnOnce(&Script<'_>),
) -> Run {
    let banks = [BANK];
    let sim = SimPlatform::new(&banks);
    let storage = rmm_core::sim::granule_storage(&banks);
    let sro = rmm_core::SroStorage::new();
    let rmm = Rmm::new(&sim, GranuleTable::new(&banks, &storage).unwrap(), &sro).unwrap();
    for (i, chunk) in img.chunks(G as usize).enumerate() {
        sim.host_write(Pa::new(IMAGE_PA + i as u64 * G), chunk)
            .unwrap();
    }
    let seen = Seen::default();
    script(&Script {
        sim: &sim,
        seen: seen.clone(),
        host: host.clone(),
    });
    let entries = Rc::new(RefCell::new(Vec::new()));
    let mut out = String::new();
    let mut rmi = Rmi::new(
        Spy {
            rmm: &rmm,
            sim: &sim,
            host: host.clone(),
            entries: entries.clone(),
        },
        &mut out,
    );
    assert_eq!(
        rmi.call(RmiFid::RMM_ACTIVATE, &[]).status(),
        Some(RmiStatus::Success)
    );
    let mut plan = PayloadPlan::new(POOL.0, POOL.1, IMAGE_PA, img.len() as u64);
    edit(&mut plan);
    let mut console = Console::default();
    let report = run(
        &mut rmi,
        &mut Mem(&sim),
        &mut host.clone(),
        &mut console,
        &plan,
    );
    let calls = rmi.calls;
    let all_ns = (0..POOL.1 / G).all(|i| sim.pas(Pa::new(POOL.0 + i * G)) == Pas::NonSecure);
    let seen = seen.lock().unwrap().clone();
    let state = host.state().clone();
    let entries = entries.borrow().clone();
    Run {
        report,
        out,
        console,
        seen,
        entries,
        steps_left: sim.pending_realm_steps(),
        injections: sim.take_injections().len(),
        all_ns,
        calls,
        host: state,
    }
}

/// The verdict and SYSTEM_OFF: how a payload ends.
fn finish(s: &Script<'_>) {
    s.smc(&[rsi::HOST_CALL as u64, VERDICT_IPA]);
    s.smc(&[psci::SYSTEM_OFF as u64]);
}

const TRAPS: u64 = rec_enter_flags::TRAP_WFI | rec_enter_flags::TRAP_WFE;

#[test]
fn the_payload_runs_on_the_vmm_and_every_exit_is_answered_as_it_expects() {
    let r = run_payload(
        (40, 0),
        |_| {},
        |s| {
            // Entry state, then the RIM the realm reads.
            s.step(|ctx, seen| {
                seen.push(format!("entry pc {:#x} x0 {:#x}", ctx.pc, ctx.gprs[0]));
                smc(ctx, &[rsi::MEASUREMENT_READ as u64, 0])
            });
            s.step(|ctx, seen| {
                let rim: Vec<u8> = ctx.gprs[1..9]
                    .iter()
                    .flat_map(|w| w.to_le_bytes())
                    .collect();
                seen.push(format!("rim {}", hex(&rim)));
                // The payload's first line.
                uart_access(esr::ISV | SAS_WORD | (2 << 16), uart_fr())
            });
            s.print("hello\r\n");
            // Its stack, not mapped yet; the store is re-executed.
            s.step(|ctx, seen| {
                // x2 holds the last UARTFR read.
                seen.push(format!("uartfr {:#x}", ctx.gprs[2]));
                seen.push(format!("fault at pc {:#x}", ctx.pc));
                touch(0x6_c008)
            });
            s.step(|ctx, seen| {
                seen.push(format!("then pc {:#x}", ctx.pc));
                smc(
                    ctx,
                    &[rsi::IPA_STATE_SET as u64, 0x20_0000, 0x21_0000, 1, 0],
                )
            });
            s.step(|ctx, seen| {
                seen.push(format!("ripas {:x?}", &ctx.gprs[..3]));
                touch(0x20_0008)
            });
            s.smc(&[rsi::IPA_STATE_SET as u64, 0x30_0000, 0x30_1000, 1, 0]);
            s.note_then_smc("reject", 3, &[rsi::HOST_CALL as u64, ECHO_IPA]);
            s.note_then_smc("echo", 1, &[psci::AFFINITY_INFO_64 as u64, 1, 0]);
            s.note_then_smc(
                "affinity",
                1,
                &[psci::CPU_ON_64 as u64, 1, 0x3000, 0x5EC0_0DE0_0000_0001],
            );
            // CPU_ON is completed and REC 0 goes on; its next poll gives REC 1 the CPU.
            s.note_then_smc("cpu_on", 1, &[psci::AFFINITY_INFO_64 as u64, 1, 0]);
            s.step(|ctx, seen| {
                seen.push(format!(
                    "REC 1 pc {:#x} x0 {:#x} mpidr {:#x}",
                    ctx.pc,
                    ctx.gprs[0],
                    ctx.vmpidr & 0xff
                ));
                uart_access(esr::ISV | SAS_WORD | (2 << 16), uart_fr())
            });
            s.print("REC 1\n");
            s.smc(&[psci::CPU_OFF as u64]);
            // The poll REC 0 made while REC 1 was on, then one after its CPU_OFF.
            s.note_then_smc("affinity", 1, &[psci::AFFINITY_INFO_64 as u64, 1, 0]);
            // MRS x3, ICC_SRE_EL1.
            s.step(|ctx, seen| {
                seen.push(format!("affinity {:x?}", &ctx.gprs[..1]));
                exit_at(
                    (esr::ec::SYSREG << esr::EC_SHIFT)
                        | esr::sysreg(3, 0, 12, 12, 5)
                        | (3 << esr::SYSREG_RT_SHIFT)
                        | esr::SYSREG_READ,
                    0,
                    TimerState::default(),
                )
            });
            // WFI with the virtual timer armed 500 ticks ahead.
            let host = s.host.clone();
            s.step(move |ctx, seen| {
                seen.push(format!("icc_sre {:#x}", ctx.gprs[3]));
                let now = host.state().now;
                exit_at(
                    esr::ec::WFX << esr::EC_SHIFT,
                    0,
                    TimerState {
                        cntv_ctl: 1,
                        cntv_cval: now + 500,
                        ..TimerState::default()
                    },
                )
            });
            // The realm takes the interrupt, masks the timer and completes it; then prints.
            let host = s.host.clone();
            s.step(move |_, seen| {
                let mut h = host.state();
                seen.push(format!("lr0 {:#x}", h.lrs[0]));
                h.lrs[0] &= !ich::LR_STATE_MASK;
                irq(TimerState {
                    cntv_ctl: 7,
                    cntv_cval: 1,
                    ..TimerState::default()
                })
            });
            let host = s.host.clone();
            s.step(move |ctx, seen| {
                seen.push(format!("lr0 then {:#x}", host.state().lrs[0]));
                smc(ctx, &[rsi::HOST_CALL as u64, TIMING_IPA])
            });
            s.print("done\n");
            finish(s);
        },
    );
    println!("{}\n{:#?}", r.out, r.console.host);
    let rep = &r.report;
    assert_eq!(rep.tally.failed, 0, "{}", r.out);
    assert_eq!(r.steps_left, 0);
    assert_eq!(r.injections, 0, "the RMM injected an exception");
    assert!(rep.entered && rep.system_off() && rep.realm_passed());
    assert_eq!(
        rep.verdict,
        Some(Verdict {
            passed: 40,
            failed: 0
        })
    );
    assert_eq!(r.console.realm, ["hello", "REC 1", "done"]);
    assert_eq!(rep.realm_lines, 3);

    // What the realm saw.
    let rim = rep.rim.expect("the host predicts the RIM");
    let mut slot = rim.bytes().to_vec();
    slot.resize(64, 0);
    let timer_lr = ich::lr_encode(VTIMER_INTID, 0, LrState::Pending, true);
    let mut seen = r.seen.clone();
    let fr = seen.remove(2);
    let fr = u64::from_str_radix(fr.strip_prefix("uartfr 0x").unwrap(), 16).unwrap();
    assert_eq!(fr & (1 << 5), 0, "UARTFR.TXFF clear");
    let fault_pc = seen.remove(2);
    let then_pc = seen.remove(2);
    assert_eq!(
        fault_pc.strip_prefix("fault at pc "),
        then_pc.strip_prefix("then pc "),
        "the faulting store runs again once the page is mapped"
    );
    let want = [
        "entry pc 0x0 x0 0x0".to_string(),
        format!("rim {}", hex(&slot)),
        // SUCCESS, next = top, ACCEPT.
        "ripas [0, 210000, 0]".into(),
        // SUCCESS, next = base, REJECT.
        "reject [0, 300000, 1]".into(),
        "echo [0]".into(),
        // OFF.
        "affinity [1]".into(),
        "cpu_on [0]".into(),
        "REC 1 pc 0x3000 x0 0x5ec00de000000001 mpidr 0x1".into(),
        // ON when the host completed it, then OFF.
        "affinity [0]".into(),
        "affinity [1]".into(),
        "icc_sre 0x7".into(),
        format!("lr0 {timer_lr:#x}"),
        "lr0 then 0x0".into(),
    ];
    assert_eq!(seen, want);
    let with_timer: Vec<&Entered> = r.entries.iter().filter(|e| e.lrs[0] == timer_lr).collect();
    assert_eq!(with_timer.len(), 1, "injected once");
    assert_eq!(with_timer[0].rec, r.entries[0].rec);
    assert!(r.out.contains(&format!(
        "payload realm RIM (predicted by the host) = {rim}"
    )));

    // What the host handed over.
    let rec0 = r.entries[0].rec;
    for e in &r.entries {
        assert_eq!(e.flags & TRAPS, TRAPS);
        assert_eq!(e.hcr & ich::HCR_EN, ich::HCR_EN);
        if e.rec == rec0 {
            assert_eq!(e.vmcr, INITIAL_VMCR);
        }
    }
    let echo = r
        .entries
        .iter()
        .find(|e| e.gprs[0] == 0xCCA1_0000_0000_0001)
        .expect("the echo is answered");
    assert_eq!(echo.gprs, echo_gprs().map(|x| x.wrapping_add(1)));
    assert_eq!(echo.gprs[30], 0);
    let uart_reads = r
        .entries
        .iter()
        .filter(|e| e.flags == TRAPS | rec_enter_flags::EMUL_MMIO)
        .count();
    assert_eq!(uart_reads as u64, rep.stats.get(ExitClass::Mmio).0);
    let rejected = r
        .entries
        .iter()
        .filter(|e| e.flags & rec_enter_flags::RIPAS_RESPONSE != 0)
        .count();
    assert_eq!((rejected, rep.ripas_rejected), (1, 1));
    assert!(r.entries.iter().any(|e| e.rec != rec0), "REC 1 ran");

    // The policies' lines and the counts.
    for line in [
        "REC 0: host call 0xcca1 answered with every gpr + 1",
        "REC 0: host call 0xcca2: the payload's RSI timings (64 RSI_VERSION and 64 RSI_IPA_STATE_GET calls)",
        "REC 0: host call 0xcca0: the payload's verdict: 40 passed, 0 not passed",
        "PSCI CPU_ON of REC 1: the host answers Success",
        "RIPAS of [0x300000, 0x301000) to RAM: the host refuses requests starting in [0x300000, 0x301000)",
    ] {
        assert!(r.host_has(line), "no `{line}`: {:#?}", r.console.host);
    }
    assert_eq!(rep.host_calls, 3);
    assert_eq!(
        rep.rsi_timings,
        [
            Some(RsiTiming {
                name: "rsi_version_in_realm",
                calls: 64,
                ticks: 5_000,
                counter_hz: 62_500_000
            }),
            Some(RsiTiming {
                name: "rsi_ipa_state_get_in_realm",
                calls: 64,
                ticks: 8_000,
                counter_hz: 62_500_000
            }),
            None,
            None,
            None
        ]
    );
    assert_eq!(
        rep.timer,
        TimerCounts {
            pending_entries: 1,
            completed: 1
        }
    );
    assert_eq!(rep.mapped_on_demand, 2, "the stack page and the new RAM");
    let count = |c| rep.stats.get(c).0;
    assert_eq!(count(ExitClass::Psci), 6);
    assert_eq!(count(ExitClass::HostCall), 3);
    assert_eq!(count(ExitClass::RipasChange), 2);
    assert_eq!(count(ExitClass::ProtectedFault), 2);
    assert_eq!(count(ExitClass::SysReg), 1);
    assert_eq!(count(ExitClass::Wfi), 1);
    assert_eq!(count(ExitClass::Irq), 1);
    assert_eq!(count(ExitClass::Mmio), 23);
    assert_eq!(rep.stats.total(), r.entries.len() as u64);
    assert_eq!(rep.rec_exits, [30, 9]);
    assert_eq!(rep.stats.total(), 39);
    assert!(r.host.idles.len() == 1, "the host idled until the timer");

    // Built, run and torn down.
    assert!(r.out.contains(&format!(
        "image of {IMAGE_SIZE} bytes loaded at IPA 0 as 5 measured DATA granule(s), 2 RECs"
    )));
    assert!(r
        .out
        .contains("  ok: the realm ran and powered itself off (PSCI SYSTEM_OFF) after "));
    assert!(r
        .out
        .contains("  ok: the realm payload passed: 40 checks passed, 0 did not"));
    assert!(r
        .out
        .contains("   REC 1: 9 exit(s), off again (PSCI CPU_OFF)"));
    assert!(r.out.contains(
        "   timer interrupts: 1 REC entry(ies) with the virtual timer's interrupt pending"
    ));
    let t = rep.teardown.expect("torn down");
    assert_eq!((t.recs, t.still_delegated, t.not_scrubbed), (2, 0, 0));
    assert!(t.aux_reclaimed > 0);
    assert!(r.out.contains(&format!(
        "  ok: {} auxiliary granules of 2 REC(s) reclaimed and undelegated",
        t.aux_reclaimed
    )));
    assert!(
        r.out.contains("  ok: 7 data granule(s) unmapped"),
        "{}",
        r.out
    );
    assert!(r.all_ns, "a granule was left delegated");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn a_failing_verdict_is_not_a_pass() {
    let r = run_payload((10, 2), |_| {}, finish);
    assert!(r.report.system_off() && !r.report.realm_passed());
    assert!(r
        .out
        .contains("  FAILED: the realm payload passed: 10 checks passed, 2 did not"));
    assert!(r.host_has("REC 0: host call 0xcca0: the payload's verdict: 10 passed, 2 not passed"));
    assert_eq!(r.report.tally.failed, 1, "{}", r.out);
    assert!(r.all_ns);
}

#[test]
fn a_fatal_error_is_reported_as_such() {
    let r = run_payload((3, u64::MAX), |_| {}, finish);
    assert!(r.report.verdict.is_some_and(|v| v.fatal()));
    assert!(!r.report.realm_passed());
    assert!(r.out.contains(
        "  FAILED: the realm payload passed (it stopped on a fatal error after 3 checks)"
    ));
    assert!(
        r.host_has("REC 0: host call 0xcca0: the payload hit a fatal error after 3 passed checks")
    );
    assert_eq!(r.report.tally.failed, 1);
}

#[test]
fn nothing_checked_is_not_a_pass() {
    let r = run_payload((0, 0), |_| {}, finish);
    assert!(!r.report.realm_passed());
    assert_eq!(r.report.tally.failed, 1);
}

#[test]
fn powering_off_without_a_verdict_fails() {
    let r = run_payload((1, 0), |_| {}, |s| s.smc(&[psci::SYSTEM_OFF as u64]));
    assert!(r.report.system_off() && r.report.verdict.is_none());
    assert!(r
        .out
        .contains("  FAILED: the realm payload reported a verdict (host call 0xcca0)"));
    assert_eq!(r.report.tally.failed, 1);
    assert!(r.all_ns);
}

#[test]
fn a_reset_is_not_a_power_off() {
    let r = run_payload(
        (1, 0),
        |_| {},
        |s| {
            s.smc(&[rsi::HOST_CALL as u64, VERDICT_IPA]);
            s.smc(&[psci::SYSTEM_RESET as u64]);
        },
    );
    assert_eq!(r.report.stop, Some(Stop::SystemReset));
    assert!(r
        .out
        .contains("  FAILED: the realm ran and powered itself off (it called SYSTEM_RESET"));
    assert_eq!(r.report.tally.failed, 1, "the verdict itself passed");
    assert!(r.all_ns);
}

#[test]
fn the_rejection_window_covers_ram_requests_starting_in_it() {
    let r = run_payload(
        (1, 0),
        |_| {},
        |s| {
            s.smc(&[rsi::IPA_STATE_SET as u64, 0x30_0000, 0x30_1000, 1, 0]);
            // Starting below the window: accepted although it reaches into it.
            s.note_then_smc(
                "in",
                3,
                &[rsi::IPA_STATE_SET as u64, 0x2f_f000, 0x30_1000, 1, 0],
            );
            // Starting just above it.
            s.note_then_smc(
                "below",
                3,
                &[rsi::IPA_STATE_SET as u64, 0x30_1000, 0x30_2000, 1, 0],
            );
            // EMPTY requests are never refused.
            s.note_then_smc(
                "above",
                3,
                &[rsi::IPA_STATE_SET as u64, 0x30_0000, 0x30_1000, 0, 0],
            );
            s.note_then_smc("empty", 3, &[rsi::HOST_CALL as u64, VERDICT_IPA]);
            s.smc(&[psci::SYSTEM_OFF as u64]);
        },
    );
    assert_eq!(r.report.tally.failed, 0, "{}", r.out);
    assert_eq!(
        r.seen,
        [
            "in [0, 300000, 1]",
            "below [0, 301000, 0]",
            "above [0, 302000, 0]",
            "empty [0, 301000, 0]"
        ]
    );
    assert_eq!(r.report.ripas_rejected, 1);
    assert_eq!(r.report.stats.get(ExitClass::RipasChange).0, 4);
}

#[test]
fn the_rejection_window_is_a_plan_setting() {
    let r = run_payload(
        (1, 0),
        |p| p.ripas_reject = (0, 0),
        |s| {
            s.smc(&[rsi::IPA_STATE_SET as u64, 0x30_0000, 0x30_1000, 1, 0]);
            s.step(|ctx, seen| {
                seen.push(format!("{:x?}", &ctx.gprs[..3]));
                smc(ctx, &[rsi::HOST_CALL as u64, VERDICT_IPA])
            });
            s.smc(&[psci::SYSTEM_OFF as u64]);
        },
    );
    assert_eq!(r.seen, ["[0, 301000, 0]"]);
    assert_eq!(r.report.ripas_rejected, 0);
    assert_eq!(r.report.tally.failed, 0, "{}", r.out);
}

#[test]
fn cpu_on_can_be_denied() {
    let r = run_payload(
        (1, 0),
        |p| p.allow_cpu_on = false,
        |s| {
            s.smc(&[psci::CPU_ON_64 as u64, 1, 0x3000, 0]);
            s.step(|ctx, seen| {
                seen.push(format!("cpu_on {:#x}", ctx.gprs[0]));
                smc(ctx, &[rsi::HOST_CALL as u64, VERDICT_IPA])
            });
            s.smc(&[psci::SYSTEM_OFF as u64]);
        },
    );
    assert_eq!(
        r.seen,
        [format!("cpu_on {:#x}", PsciStatus::Denied.to_reg())]
    );
    assert!(r.host_has("PSCI CPU_ON of REC 1: the host answers Denied"));
    assert_eq!(r.report.rec_exits[1], 0);
    assert!(r.out.contains("   REC 1: 0 exit(s), never started"));
    assert_eq!(r.report.tally.failed, 0, "{}", r.out);
}

#[test]
fn without_an_image_nothing_runs() {
    let r = run_payload((1, 0), |p| p.image_size = 0, |_| {});
    assert_eq!(
        r.report.tally,
        Tally {
            passed: 0,
            failed: 1
        }
    );
    assert_eq!(r.calls, 1, "only RMM_ACTIVATE");
    assert!(!r.report.entered);
    assert!(r.out.contains(
        "  FAILED: there is a realm payload image (its size word is 0): the realm run is skipped"
    ));
}

#[test]
fn an_image_larger_than_the_initial_ram_is_refused() {
    let r = run_payload((1, 0), |p| p.image_size = 0x20_0001, |_| {});
    assert_eq!(r.report.tally.failed, 1);
    assert_eq!(r.calls, 1);
    assert!(r.out.contains("fits in the realm's initial RAM (2 MiB)"));
}

#[test]
fn a_realm_that_cannot_be_built_is_a_failure_and_nothing_runs() {
    let r = run_payload((1, 0), |p| p.pool_size = 0x40_0000, |_| {});
    assert_eq!(r.report.tally.failed, 1, "{}", r.out);
    assert!(
        r.out.contains("  FAILED: the payload realm is built: "),
        "{}",
        r.out
    );
    assert!(r.entries.is_empty() && !r.report.entered);
    assert!(r.report.teardown.is_none() && r.report.rim.is_none());
}

#[test]
fn a_realm_that_cannot_be_built_leaves_nothing_delegated() {
    let r = run_payload((1, 0), |p| p.pool_size = 0x40_0000, |_| {});
    assert!(
        r.out
            .contains("  FAILED: the payload realm is built: out of host memory for guest RAM"),
        "{}",
        r.out
    );
    assert!(r.all_ns);
}

#[test]
fn an_empty_pool_is_refused() {
    let r = run_payload((1, 0), |p| p.pool_size = 0, |_| {});
    assert_eq!(r.report.tally.failed, 1, "{}", r.out);
    assert!(
        r.out.contains(
            "  FAILED: the payload realm is set up: VM configuration: the granule pool is empty"
        ),
        "{}",
        r.out
    );
    assert_eq!(r.calls, 1, "no RMI call after RMM_ACTIVATE");
}

#[test]
fn the_run_stops_after_its_exit_budget_and_the_realm_is_torn_down() {
    let r = run_payload(
        (1, 0),
        |p| p.max_exits = 3,
        |s| {
            for _ in 0..3 {
                s.step(|_, _| irq(TimerState::default()));
            }
        },
    );
    assert!(r
        .out
        .contains("  FAILED: the realm finished within 3 exits"));
    assert_eq!(r.report.stop, Some(Stop::ExitLimit));
    assert_eq!(r.report.stats.get(ExitClass::Irq).0, 3);
    // The exit budget and the missing verdict.
    assert_eq!(r.report.tally.failed, 2, "{}", r.out);
    assert!(r.report.teardown.is_some_and(|t| t.still_delegated == 0));
    assert!(r.all_ns);
}

#[test]
fn a_run_that_stops_on_an_error_is_torn_down() {
    let r = run_payload(
        (1, 0),
        |_| {},
        |s| {
            // A corrected SError: the RMM reports it, the VMM cannot go on.
            s.step(|_, _| RealmExit {
                kind: ExitKind::SError,
                esr: (esr::ec::SERROR << esr::EC_SHIFT)
                    | (esr::AET_CE << esr::SERROR_AET_SHIFT)
                    | esr::SERROR_DFSC_ASYNC,
                far: 0,
                hpfar: 0,
                timers: TimerState::default(),
            });
        },
    );
    assert!(
        r.out
            .contains("  FAILED: the realm ran and powered itself off (the run stopped after 1 exits: guest: vCPU 0: SError"),
        "{}",
        r.out
    );
    assert_eq!(r.report.stop, None);
    assert_eq!(r.report.tally.failed, 2, "{}", r.out);
    assert!(r.report.teardown.is_some());
    assert!(r.all_ns);
}

#[test]
fn the_hosts_console_input_is_left_alone() {
    let host = Host::default();
    host.state().input.extend(b"abc");
    let r = run_with(image((1, 0)), host, |_| {}, finish);
    assert_eq!(r.report.tally.failed, 0, "{}", r.out);
    assert_eq!(r.host.input, b"abc");
}

// Unit tests of the pieces.

#[test]
fn realm_lines_are_split_at_newlines_and_at_the_longest_line() {
    let mut console = Console::default();
    {
        let out: RefCell<&mut dyn PayloadConsole> = RefCell::new(&mut console);
        let mut lines = Lines {
            out: &out,
            buf: [0; LINE_MAX],
            len: 0,
            count: 0,
        };
        for b in b"one\r\n\ntwo\n" {
            lines.write_byte(*b);
        }
        for _ in 0..LINE_MAX + 3 {
            lines.write_byte(b'x');
        }
        lines.write_byte(b'\n');
        for b in [0xff, 0xfe, b'\n'] {
            lines.write_byte(b);
        }
        lines.write_byte(b'z');
        assert_eq!((lines.len, lines.count), (1, 6));
    }
    let long = "x".repeat(LINE_MAX);
    assert_eq!(
        console.realm,
        ["one", "", "two", long.as_str(), "xxx", "<not UTF-8>"]
    );
}

fn hooks_for(plan: &PayloadPlan, f: impl FnOnce(&mut Hooks<'_, '_>)) -> Vec<String> {
    let mut console = Console::default();
    {
        let out: RefCell<&mut dyn PayloadConsole> = RefCell::new(&mut console);
        f(&mut Hooks::new(&out, plan));
    }
    console.host
}

#[test]
fn host_calls_are_answered_by_immediate() {
    let plan = PayloadPlan::new(0, 0, 0, 0);
    let lines = hooks_for(&plan, |h| {
        let g = echo_gprs();
        assert_eq!(h.host_call(1, 0xCCA1, &g), g.map(|x| x.wrapping_add(1)));
        assert_eq!(h.host_call(0, 0x0001, &[u64::MAX; 31]), [0; 31]);
        let mut v = [0u64; 31];
        v[..2].copy_from_slice(&[7, 1]);
        assert_eq!(h.host_call(0, HOST_CALL_VERDICT, &v), v, "unchanged");
        assert_eq!(
            h.verdict,
            Some(Verdict {
                passed: 7,
                failed: 1
            })
        );
        let mut t = [9u64; 31];
        t[..6].copy_from_slice(&[1, 2, 3, 4, 5, 6]);
        assert_eq!(h.host_call(1, HOST_CALL_TIMING, &t), t, "unchanged");
        assert_eq!(
            h.rsi_timings[1],
            Some(RsiTiming {
                name: "rsi_ipa_state_get_in_realm",
                calls: 4,
                ticks: 5,
                counter_hz: 6
            })
        );
        assert_eq!(
            h.rsi_timings[0].map(|x| (x.calls, x.ticks, x.counter_hz)),
            Some((1, 2, 3))
        );
        assert_eq!(h.host_calls, 4);
    });
    assert_eq!(
        lines,
        [
            "REC 1: host call 0xcca1 answered with every gpr + 1",
            "REC 0: host call 0x1 answered with every gpr + 1",
            "REC 0: host call 0xcca0: the payload's verdict: 7 passed, 1 not passed",
            "REC 1: host call 0xcca2: the payload's RSI timings (1 RSI_VERSION and 4 RSI_IPA_STATE_GET calls)",
        ]
    );
}

#[test]
fn ripas_requests_are_refused_only_for_ram_starting_in_the_window() {
    let mut plan = PayloadPlan::new(0, 0, 0, 0);
    plan.ripas_reject = (0x30_0000, 0x30_2000);
    let lines = hooks_for(&plan, |h| {
        assert!(h.accept_ripas(0x2f_f000, 0x40_0000, true));
        assert!(!h.accept_ripas(0x30_0000, 0x30_1000, true));
        assert!(!h.accept_ripas(0x30_1000, 0x40_0000, true));
        assert!(h.accept_ripas(0x30_2000, 0x30_3000, true));
        assert!(h.accept_ripas(0x30_0000, 0x30_1000, false));
        assert_eq!(h.ripas_rejected, 2);
        assert!(h.allow_cpu_on(1));
    });
    assert_eq!(lines.len(), 3, "{lines:?}");
    plan.allow_cpu_on = false;
    hooks_for(&plan, |h| assert!(!h.allow_cpu_on(3)));
}

#[test]
fn the_timer_watch_counts_entries_with_the_timer_pending_and_its_completions() {
    let mut host = Host::default();
    let mut w = TimerWatch::new(&mut host);
    let timer = ich::lr_encode(VTIMER_INTID, 0, LrState::Pending, true);
    let other = ich::lr_encode(30, 0, LrState::Pending, true);
    // An entry with another interrupt only, and a disable: nothing counted.
    w.write_lr(0, other);
    w.write_hcr(ich::HCR_EN);
    w.write_hcr(0);
    assert_eq!(w.counts, TimerCounts::default());
    // The timer pending in list register 1: one entry; the realm leaves it pending.
    w.write_lr(1, timer);
    w.write_hcr(ich::HCR_EN);
    assert_eq!(w.read_lr(1), timer);
    assert_eq!(w.counts.completed, 0);
    // Active after the acknowledgement: no entry counted, not completed.
    let active = ich::lr_encode(VTIMER_INTID, 0, LrState::Active, true);
    w.host.write_lr(1, active);
    assert_eq!(w.read_lr(1), active);
    w.write_lr(1, active);
    w.write_hcr(ich::HCR_EN);
    // Completed: the list register comes back invalid; read twice, counted once.
    w.host.write_lr(1, 0);
    assert_eq!(w.read_lr(1), 0);
    assert_eq!(w.read_lr(1), 0);
    // Beyond the architecture's list registers: passed through, never counted.
    w.write_lr(MAX_LRS, timer);
    w.read_lr(MAX_LRS);
    assert_eq!(
        w.counts,
        TimerCounts {
            pending_entries: 1,
            completed: 1
        }
    );
    assert_eq!(w.poll_input(), None);
}

#[test]
fn the_platform_has_the_payloads_devices_and_gic_setup() {
    let (vgic, bus) = platform().unwrap();
    assert_eq!(vgic.nr_vcpus(), RECS);
    assert_ne!(vgic.dist_ctlr() & CTLR_ENABLE_GRP1, 0);
    assert!(vgic.is_enabled(0, VTIMER_INTID));
    assert!(
        !vgic.is_enabled(1, VTIMER_INTID),
        "REC 1 does not use the timer"
    );
    assert_eq!(bus.device_at(UART_BASE), Some("pl011"));
    assert_eq!(bus.device_at(UART_BASE + UART_SIZE), None);
    assert_eq!(bus.device_at(UART_BASE - 1), None);
    assert_eq!(UART_IPA, (1 << 39) | 0x0900_0000);

    let recs = rec_params();
    assert_eq!(recs[0].flags, REC_PARAMS_FLAG_RUNNABLE);
    assert_eq!(recs[1].flags, 0);
    assert_eq!((recs[0].pc, recs[0].gprs), (0, [0; 8]));
    assert_eq!(recs[1].mpidr, rec_mpidr::from_index(1));
}
