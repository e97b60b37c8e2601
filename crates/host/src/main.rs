//! The Normal-world host (NS-EL2): it plays the hypervisor's part, bringing the RMM up over
//! RMI the way KVM and Xen do at boot, printing every call decoded, and ending the run with a
//! verdict.

#![no_std]
#![no_main]

mod entry;
mod gic;
mod mmu;

use cca_abi::{el3::sip, psci, rmi::RmiFid, rmi::RMI_VERSION_2_0};
use core::sync::atomic::{AtomicU64, Ordering};
use fw_support::{println, read_sysreg};
use host_core::boot::{self, BootPlan, Tally};
use host_core::{Conduit, HostMem, Rmi};

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
const PAYLOAD_SIZE: u64 = 0x89FF_F000;
/// Granules and RAM of the realm that runs the payload.
const RUN_POOL: (u64, u64) = (0x8C00_0000, 0x0100_0000);
const MMIO_PA: u64 = 0x0900_0000;

/// Where `cargo xtask bench` leaves [`BENCH_MAGIC`] to ask for the benchmarks.
const BENCH_FLAG: u64 = 0x5fff_f000;
/// "BNCH".
const BENCH_MAGIC: u32 = 0x4843_4e42;
/// Granules used by the delegation benchmark.
const BENCH_POOL: u64 = 0x8400_0000;

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

/// SMCs to EL3.
struct Smc;

impl Conduit for Smc {
    fn smc(&mut self, regs: [u64; 8]) -> [u64; 8] {
        let mut a = [0u64; 17];
        a[..7].copy_from_slice(&regs[1..]);
        let r = smccc::smc64(regs[0] as u32, a);
        let mut out = [0u64; 8];
        out.copy_from_slice(&r[..8]);
        out
    }
}

fn smc(fid: u32, args: &[u64]) -> u64 {
    let mut regs = [0u64; 8];
    regs[0] = u64::from(fid);
    regs[1..=args.len()].copy_from_slice(args);
    Smc.smc(regs)[0]
}

/// The host's own memory, identity-mapped.
struct Dram;

impl HostMem for Dram {
    fn write(&mut self, pa: u64, data: &[u8]) {
        // SAFETY: the host's DRAM is identity-mapped and the demonstration only uses pages it
        // owns (Non-secure, not delegated) for plain reads and writes.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), pa as *mut u8, data.len()) };
    }

    fn read(&mut self, pa: u64, buf: &mut [u8]) {
        // SAFETY: as for `write`.
        unsafe { core::ptr::copy_nonoverlapping(pa as *const u8, buf.as_mut_ptr(), buf.len()) };
    }

    fn probe_read(&mut self, pa: u64) -> Option<u64> {
        // SAFETY: DRAM is mapped; a granule protection fault is recovered.
        unsafe { entry::probe_read(pa) }
    }
}

/// The realm's console lines, printed with the `REALM` label.
struct RealmLines;

impl host_core::run::RealmConsole for RealmLines {
    fn line(&mut self, text: &str) {
        // Only the boot CPU prints while a realm runs, and every host line is complete, so
        // switching the console's label around the line cannot split another line.
        // SAFETY: UART0 is the console the host initialised at boot; `init` replaces the
        // console (and its label) in place.
        unsafe { fw_support::console::init(0x0900_0000, "REALM") };
        println!("{text}");
        // SAFETY: as above.
        unsafe { fw_support::console::init(0x0900_0000, "HOST") };
    }
}

/// Runs the realm payload (if xtask loaded one) and returns what happened.
fn run_payload(rmi: &mut Rmi<'_, Smc>, image_size: u64) -> host_core::run::RunReport {
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
        host_core::run::ich::list_registers(vtr)
    );
    let plan = host_core::run::RunPlan::new(RUN_POOL.0, RUN_POOL.1, PAYLOAD_IMAGE, image_size);
    let mut report =
        host_core::run::run(rmi, &mut Dram, &mut gic::VirtualCpu, &mut RealmLines, &plan);
    report.tally.passed += u32::from(ok) + u32::from(lrs);
    report.tally.failed += u32::from(!ok) + u32::from(!lrs);
    report
}

/// The realm's part of the RESULT line.
fn realm_verdict(r: &host_core::run::RunReport) -> (bool, impl core::fmt::Display) {
    struct V(Option<host_core::run::Verdict>, bool);
    impl core::fmt::Display for V {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match self.0 {
                None if !self.1 => f.write_str("realm: not run"),
                None => f.write_str("realm: no verdict"),
                Some(v) if v.failed == u64::MAX => write!(
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

/// Results the secondary CPU leaves for the boot CPU.
static SECONDARY_VERSION: AtomicU64 = AtomicU64::new(u64::MAX);
static SECONDARY_DELEGATE: AtomicU64 = AtomicU64::new(u64::MAX);
static SECONDARY_UNDELEGATE: AtomicU64 = AtomicU64::new(u64::MAX);

fn secondary_cpu_check(c: &mut Tally) {
    println!("-- secondary CPU: PSCI CPU_ON, RMI on CPU 1 (RMM warm boot), CPU_OFF");
    let mut check = |ok: bool, what: &str| {
        if ok {
            c.passed += 1;
            println!("  ok: {what}");
        } else {
            c.failed += 1;
            println!("  FAILED: {what}");
        }
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
    let r = smc(psci::CPU_ON_64, &[1, entry, 1]);
    check(r == 0, "CPU_ON(CPU 1) succeeds");
    let mut off = false;
    for _ in 0..200_000_000u64 {
        if smc(psci::AFFINITY_INFO_64, &[1, 0]) == psci::AFFINITY_OFF
            && SECONDARY_UNDELEGATE.load(Ordering::Acquire) != u64::MAX
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
    println!("CPU {cpu} calling PSCI CPU_OFF");
    smc(psci::CPU_OFF, &[]);
    println!("FAILED: CPU_OFF returned");
    fw_support::exit_emulator(0xE1)
}

#[unsafe(no_mangle)]
extern "C" fn host_main(dtb: u64) -> ! {
    // SAFETY: UART0 is the platform console; the MMU is off, so it is device memory.
    unsafe { fw_support::console::init(0x0900_0000, "HOST") };
    mmu::init();
    let el = (read_sysreg!(currentel) >> 2) & 3;
    println!("Normal-world host (Rust) at EL{el}, device tree at {dtb:#x}");
    println!(
        "ID_AA64PFR0_EL1 = {:#018x} (RME = {})",
        read_sysreg!(id_aa64pfr0_el1),
        (read_sysreg!(id_aa64pfr0_el1) >> 52) & 0xf
    );
    let v = smc(psci::VERSION, &[]);
    println!("PSCI_VERSION -> {}.{}", v >> 16, v & 0xffff);
    // SAFETY: the word is in the host's identity-mapped DRAM; xtask's loader wrote it (or
    // it is still zero). Read before anything else uses the memory around it.
    let payload_size = unsafe { (PAYLOAD_SIZE as *const u64).read_volatile() };
    println!("realm payload: {payload_size} bytes at {PAYLOAD_IMAGE:#x} (size word at {PAYLOAD_SIZE:#x})");

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
    secondary_cpu_check(&mut tally);
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
        let plan = host_core::realm::RealmPlan {
            pool_base: BENCH_POOL,
            pool_size: 0x0200_0000,
        };
        let t = host_core::bench::realm_ops(&mut rmi, &mut Timer, &mut Dram, &plan);
        tally.passed += t.passed;
        tally.failed += t.failed;
        host_core::bench::rec_exits(rmi.out(), &Timer, &run.stats);
        for (name, calls, ticks, freq) in run.rsi_timings.iter().flatten() {
            let per_call = ticks.saturating_mul(1_000_000_000) / freq.max(&1) / calls.max(&1);
            println!("BENCH {name} {calls} {per_call}");
        }
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

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    fw_support::exception::report_panic(info);
    fw_support::exit_emulator(0xE1)
}
