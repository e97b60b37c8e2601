//! The hostile host (`cargo xtask fuzz host --calls N --seed S`) and the deliberate fatal
//! faults (`cargo xtask fuzz fault`).
//!
//! `cargo xtask fuzz` leaves a request in DRAM at [`REQUEST`] (like the benchmark flag):
//! [`MAGIC`], the mode, the number of calls and the seed. In the hostile-host mode the boot
//! CPU activates the RMM with the boot sequence, starts the second CPU, and both throw
//! `host_core::fuzz` streams at the RMM at once (the boot CPU with realm lifecycles, the
//! second with garbage aimed at the boot CPU's realms and granules). Then the second CPU
//! hands its fuzzer over and keeps making RMI calls while the boot CPU sweeps every
//! object and granule, builds, checks and tears down the canonical realm, runs the payload
//! realm, and powers the machine off with PSCI `SYSTEM_OFF` while the second CPU is still
//! in and out of the Realm world.
//!
//! The fault mode asks the EL3 image's test hook (present only in an image `cargo xtask`
//! enabled it in) to make the RMM or EL3 fault, proving that the run ends with a report and
//! a failure status.

use crate::machine::Machine;
use crate::vmhost::{counter, Hw};
use crate::{entry, gic, smc, Dram, Smc};
use cca_abi::{el3::sip, psci};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use fw_support::{println, read_sysreg};
use host_core::boot::{self, BootPlan};
use host_core::fuzz::{FuzzHw, FuzzPlan, Fuzzer, Hostile, Io, Shared, Span, SCRATCH_PAGES};
use host_core::vmm::host::{VirtualCpuInterface, VmHost};
use host_core::{Conduit, Rmi};
use spin::Mutex;

/// Where `cargo xtask fuzz` writes its request (four 64-bit words).
pub const REQUEST: u64 = 0x5fff_e000;
/// The request's first word: "CCAFUZZ!".
pub const MAGIC: u64 = u64::from_le_bytes(*b"CCAFUZZ!");
/// Mode: the hostile host.
pub const MODE_HOST: u64 = 1;
/// Mode: a deliberate fatal fault (the fourth word says which).
pub const MODE_FAULT: u64 = 2;

/// EL3's test hook (`CCA_SIP_TEST_HOOK(kind, pa)`), answered only by an EL3 image whose hook
/// word `cargo xtask` set; any other EL3 answers `SMC_UNKNOWN`.
const SIP_TEST_HOOK: u32 = 0xC200_00F0;
/// Hook: EL3 makes the granule at `pa` inaccessible to every world (GPI NoAccess).
const HOOK_REVOKE: u64 = 1;
/// Hook: EL3 reads `pa` through its own (Non-secure) mapping of DRAM.
const HOOK_EL3_READ: u64 = 2;
/// Hook: EL3 panics.
const HOOK_EL3_PANIC: u64 = 3;

/// A request from `cargo xtask fuzz`.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    /// [`MODE_HOST`] or [`MODE_FAULT`].
    pub mode: u64,
    /// Number of calls (host mode) or the kind of fault (1 RMM, 2 EL3, 3 EL3 panic).
    pub arg: u64,
    /// Seed of the random streams.
    pub seed: u64,
}

/// The request, if `cargo xtask fuzz` left one.
pub fn request(machine: &Machine) -> Option<Request> {
    if machine.dram_base > REQUEST || machine.dram_end() < REQUEST + 32 {
        return None;
    }
    // SAFETY: the four words are in the host's identity-mapped DRAM (checked above), below
    // its image; QEMU's loader wrote them, or they are zero.
    let w = |i: u64| unsafe { ((REQUEST + 8 * i) as *const u64).read_volatile() };
    (w(0) == MAGIC).then(|| Request {
        mode: w(1),
        arg: w(2),
        seed: w(3),
    })
}

/// Memory of the hostile-host mode (all Non-secure DRAM the host owns; the boot sequence
/// uses its own plan below 0x8100_0000, the canonical realm 0x8800_0000.., the payload realm
/// 0x8A00_0000..0x8D00_0000).
const POOL0: Span = Span::new(0x9000_0000, 4096);
const POOL1: Span = Span::new(0x9100_0000, 2048);
const SCRATCH0: u64 = 0x9200_0000;
const SCRATCH1: u64 = SCRATCH0 + SCRATCH_PAGES * 0x1000;
const CANARIES: Span = Span::new(0x9202_0000, 8);
const CANONICAL: (u64, u64) = (0x8800_0000, 0x0200_0000);
/// The top of what the mode uses.
const TOP: u64 = 0x9203_0000;

/// The second CPU's fuzzer: set by the boot CPU before `CPU_ON`, handed back when done.
static SECONDARY: Mutex<Option<(Fuzzer, u64)>> = Mutex::new(None);
/// The fuzzers aim at each other's objects through this.
static SHARED: Shared = Shared::new();
/// The second CPU is fuzzing.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The boot CPU wants the second one to stop (it stopped making progress).
static STOP: AtomicBool = AtomicBool::new(false);
/// Calls the second CPU made so far (the boot CPU watches its progress).
static CALLS1: AtomicU64 = AtomicU64::new(0);
/// The second CPU handed its fuzzer back.
static HANDED_BACK: AtomicBool = AtomicBool::new(false);

/// The machine services the fuzzer uses: the counter, the EL2 timer, the list registers.
struct FuzzMachine(Hw);

impl FuzzHw for FuzzMachine {
    fn arm_timer(&mut self, ticks: Option<u64>) {
        self.0
            .arm_preemption(ticks.map(|t| counter().saturating_add(t)));
    }
    fn now(&mut self) -> u64 {
        counter()
    }
    fn hz(&mut self) -> u64 {
        read_sysreg!(cntfrq_el0)
    }
    fn num_lrs(&mut self) -> usize {
        let vtr = self.0.vtr();
        cca_abi::arch::ich::list_registers(vtr)
    }
    fn write_lr(&mut self, n: usize, value: u64) {
        self.0.write_lr(n, value);
    }
}

fn hostile(machine: &Machine) -> Hostile {
    Hostile {
        carveout: Span::new(0x4010_0000, 0x1800),
        root: Span::new(0x0e00_0000, 0x1000),
        mmio: [
            0,              // flash
            0x0800_0000,    // GIC distributor
            0x080a_0000,    // GIC redistributors
            0x0900_0000,    // UART0
            0x0901_0000,    // RTC
            0x090b_0000,    // secure GPIO
            0x0a00_0000,    // virtio-mmio
            0x40_1000_0000, // PCIe ECAM
        ],
        dram_base: machine.dram_base,
        dram_end: machine.dram_end(),
    }
}

fn plan(
    machine: &Machine,
    seed: u64,
    pool: Span,
    other: Span,
    scratch: u64,
    lifecycles: bool,
) -> FuzzPlan {
    FuzzPlan {
        seed,
        pool,
        other_pool: other,
        scratch,
        canaries: CANARIES,
        hostile: hostile(machine),
        through_el3: true,
        lifecycles,
        cpus: machine.cpus as u64,
    }
}

/// Runs the second CPU's part: fuzz its share of the calls (or until told to stop), hand
/// the fuzzer back, then keep calling the RMM until the machine is powered off.
pub fn secondary(cpu: u64) -> ! {
    gic::enable_host_interrupts(cpu as usize);
    let taken = SECONDARY.lock().take();
    if let Some((mut f, calls)) = taken {
        let mut hw = FuzzMachine(Hw::new());
        let mut io = Io {
            conduit: &mut Smc,
            mem: &mut Dram,
            hw: &mut hw,
            shared: &SHARED,
        };
        while f.stats().calls < calls && !STOP.load(Ordering::Acquire) {
            f.step(&mut io);
            CALLS1.store(f.stats().calls, Ordering::Release);
        }
        *SECONDARY.lock() = Some((f, calls));
    }
    HANDED_BACK.store(true, Ordering::Release);
    // In and out of the Realm world until the boot CPU powers the machine off.
    let version = [
        u64::from(cca_abi::rmi::RmiFid::VERSION.fid()),
        cca_abi::rmi::RMI_VERSION_2_0,
        0,
        0,
        0,
        0,
        0,
        0,
    ];
    loop {
        Smc.smc(version);
    }
}

/// True when the second CPU is running the fuzzer (for `host_secondary_main`).
pub fn secondary_active() -> bool {
    ACTIVE.load(Ordering::Acquire)
}

fn seconds(ticks: u64) -> (u64, u64) {
    let hz = read_sysreg!(cntfrq_el0).max(1);
    (ticks / hz, (ticks % hz) * 1000 / hz)
}

/// The hostile-host mode; ends the run with its verdict.
pub fn run_host(machine: &Machine, req: Request) -> ! {
    let calls = req.arg;
    println!(
        "-- hostile host: {calls} structured-random RMI calls, seed {:#x}, on {} CPU(s)",
        req.seed,
        machine.cpus.min(2)
    );
    if machine.dram_base > 0x4000_0000 || machine.dram_end() < TOP {
        println!(
            "RESULT: FAIL (the hostile host needs DRAM 0x40000000..{TOP:#x}: run QEMU with -m 2G)"
        );
        smc(sip::EXIT, &[1]);
        fw_support::exit_emulator(0xE1)
    }
    let mut out = fw_support::console::Writer;
    let mut rmi = Rmi::new(Smc, &mut out);
    let boot_plan = BootPlan {
        config_page: 0x7fff_f000,
        pool_base: 0x8000_0000,
        pool_granules: 1024,
        untracked_pa: 0x0900_0000,
        rmm_carveout_pa: 0x4010_0000,
        probe_delegated: true,
    };
    let boot_tally = boot::run(&mut rmi, &mut Dram, &boot_plan);
    gic::init();
    gic::enable_host_interrupts(0);

    let two = machine.cpus >= 2;
    let mut f0 = Fuzzer::new(plan(
        machine,
        req.seed,
        POOL0,
        if two { POOL1 } else { Span::new(0, 0) },
        SCRATCH0,
        true,
    ));
    f0.prepare(&mut Dram, true);
    let (calls0, calls1) = if two {
        (calls - calls / 3, calls / 3)
    } else {
        (calls, 0)
    };
    let start = counter();
    if two {
        let mut f1 = Fuzzer::new(plan(
            machine,
            req.seed ^ 0x5EC0_4D00_0000_0001,
            POOL1,
            POOL0,
            SCRATCH1,
            false,
        ));
        f1.prepare(&mut Dram, false);
        *SECONDARY.lock() = Some((f1, calls1));
        ACTIVE.store(true, Ordering::Release);
        let entry = entry::host_secondary_entry as *const () as u64;
        let r = smc(psci::CPU_ON_64, &[1, entry, 1]);
        if r != 0 {
            println!(
                "  FAILED: CPU_ON(CPU 1) -> {:#x}; fuzzing on the boot CPU only",
                r as i64
            );
            SECONDARY.lock().take();
            ACTIVE.store(false, Ordering::Release);
        }
    }
    let stalled = {
        let mut hw = FuzzMachine(Hw::new());
        let mut io = Io {
            conduit: &mut Smc,
            mem: &mut Dram,
            hw: &mut hw,
            shared: &SHARED,
        };
        let hz = read_sysreg!(cntfrq_el0);
        let step = (calls0 / 10).max(1);
        let mut next = step;
        // The boot CPU fuzzes its share, then goes on until the second CPU finished its own
        // (so both throw calls at the RMM for the whole run), unless that one stops making
        // progress for 30 s.
        let mut seen1 = (0, counter());
        let mut stalled = false;
        loop {
            let mine_done = f0.stats().calls >= calls0;
            let other_done = !ACTIVE.load(Ordering::Acquire) || HANDED_BACK.load(Ordering::Acquire);
            if mine_done && other_done {
                break;
            }
            let now1 = CALLS1.load(Ordering::Acquire);
            if now1 != seen1.0 {
                seen1 = (now1, counter());
            } else if !other_done && counter().wrapping_sub(seen1.1) > 30 * hz {
                println!("  FAILED: CPU 1 made no RMI call for 30 s (at {now1} calls)");
                stalled = true;
                break;
            }
            f0.step(&mut io);
            if f0.stats().calls >= next {
                let (s, ms) = seconds(counter().wrapping_sub(start));
                println!(
                    "FUZZ progress: {} calls on CPU 0 and {now1} on CPU 1 after {s}.{ms:03} s, {} findings",
                    f0.stats().calls,
                    f0.findings_total()
                );
                next += step;
            }
        }
        stalled
    };
    // Stop the second CPU if it is still going (it hands its fuzzer back and keeps calling
    // harmlessly).
    STOP.store(true, Ordering::Release);
    let hz = read_sysreg!(cntfrq_el0);
    let wait = counter();
    let mut f1 = None;
    if ACTIVE.load(Ordering::Acquire) {
        while !HANDED_BACK.load(Ordering::Acquire) && counter().wrapping_sub(wait) < 30 * hz {
            core::hint::spin_loop();
        }
        f1 = SECONDARY.lock().take().map(|(f, _)| f);
        if f1.is_none() {
            println!("  FAILED: CPU 1 did not hand its fuzzer back within 30 s");
        }
    }
    let fuzz_end = counter();
    let total = f0.stats().calls + f1.as_ref().map_or(0, |f| f.stats().calls);
    f0.report(&mut fw_support::console::Writer, "CPU 0");
    if let Some(f) = &f1 {
        f.report(&mut fw_support::console::Writer, "CPU 1");
    }
    println!("-- sweep: every object torn down, every granule undelegated and read back");
    let sweep = {
        let mut hw = FuzzMachine(Hw::new());
        let mut io = Io {
            conduit: &mut Smc,
            mem: &mut Dram,
            hw: &mut hw,
            shared: &SHARED,
        };
        match f1.as_mut() {
            Some(f) => f0.finish(&mut io, &mut [f]),
            None => f0.finish(&mut io, &mut []),
        }
    };
    println!(
        "FUZZ sweep: {} realms, {} RECs, {} operations, {} RTTs destroyed; {} granules \
         undelegated, {} read back scrubbed; {} realms and {} granules stuck",
        sweep.realms,
        sweep.recs,
        sweep.operations,
        sweep.rtts,
        sweep.undelegated,
        sweep.scrubbed,
        sweep.stuck_realms,
        sweep.stuck_granules
    );
    let findings = f0.findings_total();
    for f in f0.findings() {
        println!(
            "FUZZ FINDING at call {}: {}: x0..x7 = {:#x?} -> {:#x?}",
            f.call, f.what, f.regs, f.got
        );
    }
    let (s, ms) = seconds(fuzz_end.wrapping_sub(start));
    let ticks = fuzz_end.wrapping_sub(start).max(1);
    let per_s = u128::from(total) * u128::from(hz) / u128::from(ticks);
    println!(
        "FUZZ RESULT: {total} calls in {s}.{ms:03} s ({per_s} calls/s) on {} CPU(s), {findings} findings",
        if f1.is_some() { 2 } else { 1 }
    );

    println!("-- the canonical realm after the hostile host");
    let t = host_core::realm::run(
        &mut rmi,
        &mut Dram,
        &host_core::realm::RealmPlan {
            pool_base: CANONICAL.0,
            pool_size: CANONICAL.1,
        },
    );
    // SAFETY: the word is in the host's identity-mapped DRAM; xtask's loader wrote it (or
    // it is still zero).
    let payload_size = unsafe { (crate::demo::PAYLOAD_SIZE as *const u64).read_volatile() };
    let realm = crate::demo::run_payload(&mut rmi, payload_size);
    let realm_ok = payload_size == 0 || realm.realm_passed();
    let ok = findings == 0
        && sweep.stuck_granules == 0
        && sweep.stuck_realms == 0
        && boot_tally.failed == 0
        && t.failed == 0
        && realm.tally.failed == 0
        && realm_ok
        && !stalled
        && (f1.is_some() || !two);
    if ok {
        println!(
            "RESULT: PASS (hostile host: {total} calls, 0 findings; canonical realm {} checks; realm: {})",
            t.passed,
            if payload_size == 0 { "not run" } else { "PASS" }
        );
        println!("powering off with PSCI SYSTEM_OFF while CPU 1 is still calling the RMM");
        smc(psci::SYSTEM_OFF, &[]);
    } else {
        println!(
            "RESULT: FAIL (hostile host: {findings} findings, {} stuck; boot {} failed, canonical realm {} failed, payload realm {})",
            sweep.stuck_granules + sweep.stuck_realms,
            boot_tally.failed,
            t.failed,
            if realm_ok { "passed" } else { "FAILED" }
        );
        smc(sip::EXIT, &[1]);
    }
    fw_support::exit_emulator(0xE1)
}

/// The fault mode: makes the RMM (kind 1) or EL3 (kind 2: a granule protection fault, 3: a
/// panic) fault through EL3's test hook. The run must end there, with a report; if it does
/// not, the host reports the failure itself.
pub fn run_fault(_machine: &Machine, req: Request) -> ! {
    let mut out = fw_support::console::Writer;
    let mut rmi = Rmi::new(Smc, &mut out);
    let boot_plan = BootPlan {
        config_page: 0x7fff_f000,
        pool_base: 0x8000_0000,
        pool_granules: 64,
        untracked_pa: 0x0900_0000,
        rmm_carveout_pa: 0x4010_0000,
        probe_delegated: true,
    };
    boot::run(&mut rmi, &mut Dram, &boot_plan);
    let g = POOL0.base;
    let d = rmi.call(
        cca_abi::rmi::RmiFid::GRANULE_RANGE_DELEGATE,
        &[g, g + 0x1000],
    );
    println!(
        "-- deliberate fault {}: granule {g:#x} delegated ({:#x})",
        req.arg, d.regs[0]
    );
    match req.arg {
        1 => {
            println!(
                "FAULT: EL3 revokes every world's access to {g:#x}; the RMM's scrub of it on undelegation must fault"
            );
            let r = smc(SIP_TEST_HOOK, &[HOOK_REVOKE, g]);
            if r == 0 {
                rmi.call(
                    cca_abi::rmi::RmiFid::GRANULE_RANGE_UNDELEGATE,
                    &[g, g + 0x1000],
                );
            }
            println!(
                "RESULT: FAIL (the RMM did not fault: hook answered {:#x})",
                r
            );
        }
        2 => {
            println!("FAULT: EL3 reads the delegated granule {g:#x} through its Non-secure map");
            let r = smc(SIP_TEST_HOOK, &[HOOK_EL3_READ, g]);
            println!("RESULT: FAIL (EL3 did not fault: hook answered {:#x})", r);
        }
        3 => {
            println!("FAULT: EL3 panics");
            let r = smc(SIP_TEST_HOOK, &[HOOK_EL3_PANIC, 0]);
            println!("RESULT: FAIL (EL3 did not panic: hook answered {:#x})", r);
        }
        4 => {
            println!("FAULT: the RMM panics (its test hook's function ID)");
            let r = smc(cca_abi::rmi::TEST_HOOK_PANIC, &[]);
            println!("RESULT: FAIL (the RMM did not panic: it answered {:#x})", r);
        }
        k => println!("RESULT: FAIL (no deliberate fault of kind {k})"),
    }
    smc(sip::EXIT, &[1]);
    fw_support::exit_emulator(0xE1)
}
