//! The demonstration the host runs when no launch description was loaded: the boot-time RMI
//! sequence with deliberate mistakes, a realm built and torn down, RMI on the second CPU, and
//! the bare-metal payload realm on the VMM (`host_core::payload`); with `cargo xtask bench`,
//! the benchmarks.

use crate::machine::Machine;
use crate::vmhost::Hw;
use crate::{entry, gic, mmu, smc, Dram, Smc};
use cca_abi::{el3::sip, psci, rmi::RmiFid, rmi::RMI_VERSION_2_0};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use fw_support::{println, read_sysreg};
use host_core::boot::{self, BootPlan, Tally};
use host_core::payload::{self, PayloadConsole, PayloadPlan, PayloadReport, Verdict};
use host_core::Rmi;

/// DRAM layout the host uses for its demonstration (all Non-secure).
const CONFIG_PAGE: u64 = 0x7fff_f000;
const POOL_BASE: u64 = 0x8000_0000;
const POOL_GRANULES: u64 = 4096;
const SECONDARY_GRANULE: u64 = 0x8200_0000;
const RMM_CARVEOUT: u64 = 0x4010_0000;
/// Granules the realm demonstration builds its realm from.
const REALM_POOL: (u64, u64) = (0x8800_0000, 0x0200_0000);
/// Where `cargo xtask` loads the realm payload image (`target/images/realm.bin`).
const PAYLOAD_IMAGE: u64 = 0x8A00_0000;
/// Where it writes the image's size, a 64-bit word (0 or absent: no payload).
pub(crate) const PAYLOAD_SIZE: u64 = 0x89FF_F000;
/// Granules and RAM of the realm that runs the payload.
const RUN_POOL: (u64, u64) = (0x8C00_0000, 0x0100_0000);
const MMIO_PA: u64 = 0x0900_0000;

/// Where `cargo xtask bench` leaves [`BENCH_MAGIC`] to ask for the benchmarks.
const BENCH_FLAG: u64 = 0x5fff_f000;
/// "BNCH".
const BENCH_MAGIC: u32 = 0x4843_4e42;
/// Granules used by the delegation benchmark.
const BENCH_POOL: u64 = 0x8400_0000;
/// The large pool of the delegation scaling benchmark: 1 GiB from here when DRAM reaches
/// that far (`cargo xtask bench` gives QEMU 3 GiB), 512 MiB on a 2 GiB machine.
const SCALING_POOL: u64 = 0x9000_0000;

/// The granules of the scaling benchmark's large pool that fit below `dram_end`.
fn scaling_granules(dram_end: u64) -> u64 {
    const GIB: u64 = 1 << 30;
    let size = if dram_end >= SCALING_POOL + GIB {
        GIB
    } else {
        GIB / 2
    };
    size / cca_abi::GRANULE_SIZE
}

/// The generic timer.
struct Timer;

impl host_core::bench::Clock for Timer {
    fn ticks(&mut self) -> u64 {
        // SAFETY: ISB orders the counter read after earlier instructions; no memory effects.
        unsafe { core::arch::asm!("isb", options(nostack)) };
        read_sysreg!(cntvct_el0)
    }

    fn frequency(&self) -> u64 {
        read_sysreg!(cntfrq_el0)
    }
}

/// The payload realm's console lines, printed with the `REALM` label, and the host's lines
/// about what it answered the realm.
struct PayloadOut;

impl PayloadConsole for PayloadOut {
    fn realm_line(&mut self, text: &str) {
        // Only the boot CPU prints while a realm runs, and every host line is complete, so
        // switching the console's label around the line cannot split another line.
        // SAFETY: UART0 is the console the host initialised at boot; `init` replaces the
        // console (and its label) in place.
        unsafe { fw_support::console::init(0x0900_0000, "REALM") };
        println!("{text}");
        // SAFETY: as above.
        unsafe { fw_support::console::init(0x0900_0000, "HOST") };
    }

    fn host_line(&mut self, text: core::fmt::Arguments<'_>) {
        println!("{text}");
    }
}

/// Runs the realm payload (if xtask loaded one) on the VMM and returns what happened.
pub(crate) fn run_payload(rmi: &mut Rmi<'_, Smc>, image_size: u64) -> PayloadReport {
    let (sre, vtr) = gic::init();
    let sre_now = gic::sre();
    println!("-- GIC virtual CPU interface");
    println!("   ICC_SRE_EL2 = {sre:#x} (now {sre_now:#x}), ICH_VTR_EL2 = {vtr:#x}");
    let ok = sre_now & 0b1001 == 0b1001;
    println!(
        "  {}: ICC_SRE_EL2 has SRE and Enable set (the realm uses the GIC system registers)",
        if ok { "ok" } else { "FAILED" }
    );
    let lrs = gic::list_registers_read_back(vtr);
    println!(
        "  {}: ICH_LR<n>_EL2 read back what the host wrote ({} list registers)",
        if lrs { "ok" } else { "FAILED" },
        cca_abi::arch::ich::list_registers(vtr)
    );
    // The host's EL2 timer (the scheduler's preemption tick) and the realm's timers must
    // make a running REC exit and wake the host's WFI.
    gic::enable_host_interrupts(0);
    let plan = PayloadPlan::new(RUN_POOL.0, RUN_POOL.1, PAYLOAD_IMAGE, image_size);
    let mut hw = Hw::new();
    let mut report = payload::run(rmi, &mut Dram, &mut hw, &mut PayloadOut, &plan);
    report.tally.passed += u32::from(ok) + u32::from(lrs);
    report.tally.failed += u32::from(!ok) + u32::from(!lrs);
    report
}

/// The realm's part of the RESULT line.
fn realm_verdict(r: &PayloadReport) -> (bool, impl core::fmt::Display) {
    struct V(Option<Verdict>, bool);
    impl core::fmt::Display for V {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match self.0 {
                None if !self.1 => f.write_str("realm: not run"),
                None => f.write_str("realm: no verdict"),
                Some(v) if v.fatal() => write!(
                    f,
                    "realm: FAIL, fatal error after {} checks passed",
                    v.passed
                ),
                Some(v) if v.pass() => write!(f, "realm: PASS, {} checks", v.passed),
                Some(v) => write!(
                    f,
                    "realm: FAIL, {} of {} checks failed",
                    v.failed,
                    v.passed.saturating_add(v.failed)
                ),
            }
        }
    }
    (r.realm_passed(), V(r.verdict, r.entered))
}

/// Results the secondary CPU leaves for the boot CPU, valid once `SECONDARY_DONE` is set
/// (a separate flag: every 64-bit value, `SMC_UNKNOWN` included, is a possible result).
static SECONDARY_VERSION: AtomicU64 = AtomicU64::new(0);
static SECONDARY_DELEGATE: AtomicU64 = AtomicU64::new(0);
static SECONDARY_UNDELEGATE: AtomicU64 = AtomicU64::new(0);
static SECONDARY_DONE: AtomicBool = AtomicBool::new(false);

fn secondary_cpu_check(c: &mut Tally, cpus: usize) {
    println!("-- secondary CPU: PSCI CPU_ON, RMI on CPU 1 (RMM warm boot), CPU_OFF");
    let mut check = |ok: bool, what: &str| {
        if ok {
            c.passed += 1;
            println!("  ok: {what}");
        } else {
            c.failed += 1;
            println!("  FAILED: {what}");
        }
        ok
    };
    let entry = entry::host_secondary_entry as *const () as u64;
    check(
        smc(psci::CPU_ON_64, &[0x55, entry, 1]) == psci::PsciStatus::InvalidParameters.to_reg(),
        "CPU_ON of a CPU that does not exist is INVALID_PARAMETERS",
    );
    check(
        smc(psci::CPU_ON_64, &[0, entry, 1]) == psci::PsciStatus::AlreadyOn.to_reg(),
        "CPU_ON of the boot CPU is ALREADY_ON",
    );
    if cpus < 2 {
        check(
            false,
            "the machine has a second CPU for the secondary-CPU checks (QEMU -smp 1)",
        );
        return;
    }
    let r = smc(psci::CPU_ON_64, &[1, entry, 1]);
    if !check(r == 0, "CPU_ON(CPU 1) succeeds") {
        return;
    }
    // Wait at most 5 s of counter time for CPU 1 to report and power off.
    let hz = read_sysreg!(cntfrq_el0);
    let start = read_sysreg!(cntpct_el0);
    let mut off = false;
    while read_sysreg!(cntpct_el0).wrapping_sub(start) < 5 * hz {
        if SECONDARY_DONE.load(Ordering::Acquire)
            && smc(psci::AFFINITY_INFO_64, &[1, 0]) == psci::AFFINITY_OFF
        {
            off = true;
            break;
        }
        core::hint::spin_loop();
    }
    check(
        off,
        "CPU 1 ran and powered itself off (AFFINITY_INFO reports OFF)",
    );
    if !off {
        return;
    }
    check(
        SECONDARY_VERSION.load(Ordering::Acquire) == 0,
        "RMI_VERSION on CPU 1 succeeds",
    );
    check(
        SECONDARY_DELEGATE.load(Ordering::Acquire) == 0,
        "GRANULE_RANGE_DELEGATE on CPU 1 succeeds",
    );
    check(
        SECONDARY_UNDELEGATE.load(Ordering::Acquire) == 0,
        "GRANULE_RANGE_UNDELEGATE on CPU 1 succeeds",
    );
}

#[unsafe(no_mangle)]
extern "C" fn host_secondary_main(cpu: u64) -> ! {
    mmu::enable_shared();
    if crate::fuzz::secondary_active() {
        crate::fuzz::secondary(cpu)
    }
    println!("CPU {cpu} up at NS-EL2");
    let mut out = fw_support::console::Writer;
    let mut rmi = Rmi::new(Smc, &mut out);
    SECONDARY_VERSION.store(
        rmi.call(RmiFid::VERSION, &[RMI_VERSION_2_0]).regs[0],
        Ordering::Release,
    );
    let g = SECONDARY_GRANULE;
    SECONDARY_DELEGATE.store(
        rmi.call(RmiFid::GRANULE_RANGE_DELEGATE, &[g, g + 4096])
            .regs[0],
        Ordering::Release,
    );
    SECONDARY_UNDELEGATE.store(
        rmi.call(RmiFid::GRANULE_RANGE_UNDELEGATE, &[g, g + 4096])
            .regs[0],
        Ordering::Release,
    );
    SECONDARY_DONE.store(true, Ordering::Release);
    println!("CPU {cpu} calling PSCI CPU_OFF");
    smc(psci::CPU_OFF, &[]);
    println!("FAILED: CPU_OFF returned");
    fw_support::exit_emulator(0xE1)
}

/// The highest address the demonstration's fixed layout uses.
const DEMO_TOP: u64 = RUN_POOL.0 + RUN_POOL.1;

/// Runs the demonstration and ends the run with its verdict.
pub fn run(machine: &Machine) -> ! {
    if machine.dram_base > 0x4000_0000 || machine.dram_end() < DEMO_TOP {
        println!(
            "RESULT: FAIL (the demonstration's layout needs DRAM {:#x}..{DEMO_TOP:#x}; this \
             machine has {:#x}..{:#x}: run QEMU with -m 2G or more)",
            0x4000_0000u64,
            machine.dram_base,
            machine.dram_end()
        );
        smc(sip::EXIT, &[1]);
        fw_support::exit_emulator(0xE1)
    }
    // SAFETY: the word is in the host's identity-mapped DRAM (checked above); xtask's loader
    // wrote it (or it is still zero).
    let payload_size = unsafe { (PAYLOAD_SIZE as *const u64).read_volatile() };
    println!(
        "realm payload: {payload_size} bytes at {PAYLOAD_IMAGE:#x} (size word at {PAYLOAD_SIZE:#x})"
    );
    let mut out = fw_support::console::Writer;
    let mut rmi = Rmi::new(Smc, &mut out);
    let plan = BootPlan {
        config_page: CONFIG_PAGE,
        pool_base: POOL_BASE,
        pool_granules: POOL_GRANULES,
        untracked_pa: MMIO_PA,
        rmm_carveout_pa: RMM_CARVEOUT,
        probe_delegated: true,
    };
    let mut tally = boot::run(&mut rmi, &mut Dram, &plan);
    let realm_plan = host_core::realm::RealmPlan {
        pool_base: REALM_POOL.0,
        pool_size: REALM_POOL.1,
    };
    let t = host_core::realm::run(&mut rmi, &mut Dram, &realm_plan);
    tally.passed += t.passed;
    tally.failed += t.failed;
    secondary_cpu_check(&mut tally, machine.cpus);
    let run = run_payload(&mut rmi, payload_size);
    tally.passed += run.tally.passed;
    tally.failed += run.tally.failed;
    let calls = rmi.calls;
    // SAFETY: the flag word is in the host's identity-mapped DRAM.
    let bench = unsafe { (BENCH_FLAG as *const u32).read_volatile() } == BENCH_MAGIC;
    if bench {
        println!("-- benchmarks (instructions per operation under -icount shift=0)");
        if !host_core::bench::delegation(&mut rmi, &mut Timer, BENCH_POOL, 1024) {
            tally.failed += 1;
            println!("  FAILED: a benchmarked call did not succeed");
        }
        // Per-granule cost with 1..512 granules per call and over a 16 MiB pool, then over
        // a 1 GiB one (the free DRAM above the demo's pools; 512 MiB on a 2 GiB machine).
        let large = scaling_granules(machine.dram_end());
        if !host_core::bench::delegation_scaling(&mut rmi, &mut Timer, BENCH_POOL, 4096)
            || !host_core::bench::delegation_pool(&mut rmi, &mut Timer, SCALING_POOL, large)
        {
            tally.failed += 1;
            println!("  FAILED: a delegation scaling call did not succeed");
        }
        let plan = host_core::realm::RealmPlan {
            pool_base: BENCH_POOL,
            pool_size: 0x0200_0000,
        };
        let t = host_core::bench::realm_ops(&mut rmi, &mut Timer, &mut Dram, &plan);
        tally.passed += t.passed;
        tally.failed += t.failed;
        host_core::bench::rec_exits(rmi.out(), &Timer, &run.stats);
        host_core::bench::rsi_timings(rmi.out(), &run.rsi_timings);
        host_core::bench::rsi_timings(rmi.out(), &run.token_timings);
    }
    println!(
        "{} RMI calls; {} checks passed, {} failed",
        calls, tally.passed, tally.failed
    );
    let (realm_passed, realm) = realm_verdict(&run);
    if tally.failed == 0 && realm_passed {
        println!("RESULT: PASS ({realm})");
        println!("powering off with PSCI SYSTEM_OFF");
        smc(psci::SYSTEM_OFF, &[]);
    } else {
        println!("RESULT: FAIL ({realm})");
        smc(sip::EXIT, &[1]);
    }
    fw_support::exit_emulator(0xE1)
}
