//! The Normal-world host (NS-EL2): it plays the hypervisor's part, bringing the RMM up over
//! RMI the way KVM and Xen do at boot, printing every call decoded, and ending the run with a
//! verdict.

#![no_std]
#![no_main]

mod entry;
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
    let calls = rmi.calls;
    secondary_cpu_check(&mut tally);
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
    }
    println!(
        "{} RMI calls; {} checks passed, {} failed",
        calls, tally.passed, tally.failed
    );
    if tally.failed == 0 {
        println!("RESULT: PASS");
        println!("powering off with PSCI SYSTEM_OFF");
        smc(psci::SYSTEM_OFF, &[]);
    } else {
        println!("RESULT: FAIL");
        smc(sip::EXIT, &[1]);
    }
    fw_support::exit_emulator(0xE1)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    fw_support::exception::report_panic(info);
    fw_support::exit_emulator(0xE1)
}
