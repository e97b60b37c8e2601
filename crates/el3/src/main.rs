//! The EL3 monitor (Root world) of the CCA stack on QEMU `virt` with FEAT_RME.
//!
//! It boots from flash at EL3, builds its own translation tables and the granule protection
//! tables, boots the RMM through the RMM-EL3 interface 2.0, then enters the Normal-world host
//! at NS-EL2 and from then on switches worlds: RMI calls go to the RMM, the RMM's results and
//! requests (granule transitions, memory reservation) are served here, and the host gets PSCI.

#![no_std]
#![no_main]

mod attest;
mod context;
mod entry;
mod gic;
mod gpt;
mod mmu;
mod monitor;
mod platform;
mod power;

use el3_core::gpt::Gpi;
use fw_support::sysreg::CpuId;
use fw_support::{println, read_sysreg, write_sysreg};
use platform::*;

/// The CPTR_EL3 value lower worlds run with.
pub(crate) fn cptr_el3(id: &CpuId) -> u64 {
    let mut cptr = 0u64;
    if id.sve() {
        cptr |= 1 << 8; // EZ: SVE not trapped.
    }
    if id.sme() {
        cptr |= 1 << 12; // ESM: SME not trapped.
    }
    cptr
}

/// The MDCR_EL3 value lower worlds run with: nothing trapped to EL3.
pub(crate) const MDCR_EL3: u64 = 0;

/// Sets up the EL3 registers every CPU needs before entering a lower world.
fn init_el3_regs(id: &CpuId) {
    let cptr = cptr_el3(id);
    // SAFETY: these registers only control traps and vector lengths of the lower ELs and
    // the GIC system register interface; EL3 itself uses no GIC and FP/SIMD only in its
    // SHA-2 routines and the zero-block scan of the measured boot.
    unsafe {
        write_sysreg!(cptr_el3, cptr);
        core::arch::asm!("isb", options(nostack));
        if id.sve() {
            write_sysreg!(s3_6_c1_c2_0, 0xfu64); // ZCR_EL3: maximum vector length.
        }
        if id.sme() {
            write_sysreg!(s3_6_c1_c2_6, 0xfu64); // SMCR_EL3: maximum streaming length.
        }
        write_sysreg!(mdcr_el3, MDCR_EL3);
        write_sysreg!(s3_6_c12_c12_5, 0xfu64); // ICC_SRE_EL3: SRE, DFB, DIB, Enable.
        core::arch::asm!("isb", options(nostack));
        write_sysreg!(s3_4_c12_c9_5, 0xfu64); // ICC_SRE_EL2: SRE, DFB, DIB, Enable.
        core::arch::asm!("isb", options(nostack));
    }
}

/// Reads DRAM and the CPU count from the device tree QEMU placed at the start of DRAM.
fn read_device_tree() -> (u64, u64, usize) {
    // SAFETY: QEMU copies a valid FDT to DTB_BASE for `-bios` boots; it is identity-mapped
    // (or the MMU is off) and nothing writes it while it is parsed.
    let fdt = match unsafe { fdt::Fdt::from_ptr(DTB_BASE as *const u8) } {
        Ok(f) => f,
        Err(e) => panic!("no device tree at {DTB_BASE:#x}: {e:?}"),
    };
    let mut base = 0;
    let mut size = 0;
    for r in fdt.memory().regions() {
        let b = r.starting_address as u64;
        if b == DRAM_BASE {
            base = b;
            size = r.size.unwrap_or(0) as u64;
        }
    }
    let cpus = fdt.cpus().count();
    (base, size, cpus)
}

#[unsafe(no_mangle)]
extern "C" fn el3_primary_main(cpu: usize) -> ! {
    // SAFETY: UART0 is the console of this platform; with the MMU off it is device memory.
    unsafe { fw_support::console::init(UART0 as usize, "EL3") };
    println!("CCA EL3 monitor (Rust) starting on CPU {cpu}");
    let id = CpuId::read();
    if !id.rme() {
        panic!("this CPU does not implement FEAT_RME (run QEMU with -cpu max,x-rme=on)");
    }
    let (dram_base, dram_size, ncpus) = read_device_tree();
    let ncpus = ncpus.clamp(1, entry::MAX_CPUS);
    if dram_base != DRAM_BASE || dram_size < 0x4000_0000 {
        panic!("need at least 1 GiB of DRAM at {DRAM_BASE:#x}, device tree says {dram_base:#x}+{dram_size:#x}");
    }
    let dram_end = dram_base + dram_size;
    println!(
        "platform: {ncpus} CPUs, DRAM {dram_base:#x}..{dram_end:#x}, PA size {} bits",
        id.pa_bits()
    );

    let text_end = core::ptr::addr_of!(__text_end) as u64;
    let regions = [
        (0, text_end, fw_support::mmu::RX_CODE | mmu::ROOT),
        (text_end, 0x0400_0000, fw_support::mmu::RO_DATA | mmu::ROOT),
        (UART0, UART0 + 0x1000, fw_support::mmu::DEVICE | mmu::ROOT),
        (
            SECURE_GPIO,
            SECURE_GPIO + 0x1000,
            fw_support::mmu::DEVICE | mmu::ROOT,
        ),
        (
            GICD_BASE,
            GICD_BASE + 0x1_0000,
            fw_support::mmu::DEVICE | mmu::ROOT,
        ),
        (
            GICR_BASE,
            GICR_BASE + GICR_STRIDE * entry::MAX_CPUS as u64,
            fw_support::mmu::DEVICE | mmu::ROOT,
        ),
        (
            SECURE_RAM.0,
            SECURE_RAM.0 + SECURE_RAM.1,
            fw_support::mmu::RW_DATA | mmu::ROOT,
        ),
        (
            DRAM_BASE,
            RMM_BASE,
            fw_support::mmu::RW_DATA | mmu::NONSECURE,
        ),
        (RMM_BASE, RMM_LIMIT, fw_support::mmu::RW_DATA | mmu::REALM),
        (
            RMM_LIMIT,
            dram_end,
            fw_support::mmu::RW_DATA | mmu::NONSECURE,
        ),
    ];
    let mmu_regs = mmu::build(&regions, id.pa_range());
    mmu::enable(&mmu_regs);
    monitor::MMU.call_once(|| mmu_regs);
    // The measured boot and the attestation set-up go to the boot helper from here on, while
    // this CPU builds the GPT.
    attest::init(ncpus > monitor::BOOT_HELPER);

    if gpt::l0gptsz_bits() != GPT_GEOMETRY.l0gptsz_bits {
        panic!(
            "GPCCR_EL3.L0GPTSZ is {} bits, this monitor is built for 30",
            gpt::l0gptsz_bits()
        );
    }
    let mut g = gpt::create(GPT_GEOMETRY);
    let mut setup = || -> Result<(), el3_core::gpt::GptError> {
        g.make_granular(SECURE_RAM.0)?;
        g.set_range(SECURE_RAM.0, SECURE_RAM.1, Gpi::Root)?;
        let mut pa = dram_base;
        while pa < dram_end {
            g.make_granular(pa)?;
            pa += 1 << GPT_GEOMETRY.l0gptsz_bits;
        }
        g.set_range(dram_base, dram_size, Gpi::NonSecure)?;
        g.set_range(RMM_BASE, RMM_LIMIT - RMM_BASE, Gpi::Realm)
    };
    if let Err(e) = setup() {
        panic!("building the GPT failed: {e:?}");
    }
    *gpt::GPT.lock() = Some(g);
    fw_support::dsb_sy();
    gpt::enable_on_this_cpu(GPT_GEOMETRY);
    println!(
        "GPT enabled: PPS {} bits, L0GPTSZ {} bits; Root {:#x}..{:#x}, Realm {RMM_BASE:#x}..{RMM_LIMIT:#x}, NS DRAM elsewhere",
        GPT_GEOMETRY.pps_bits,
        GPT_GEOMETRY.l0gptsz_bits,
        SECURE_RAM.0,
        SECURE_RAM.0 + SECURE_RAM.1
    );

    monitor::init_shared(ncpus, dram_base, dram_size);
    gic::init_distributor();
    gic::init_redistributor(cpu);
    init_el3_regs(&id);
    attest::measure_rmm(&id);
    monitor::run_primary(cpu, id)
}

#[unsafe(no_mangle)]
extern "C" fn el3_secondary_main(cpu: usize) -> ! {
    loop {
        let release = monitor::wait_in_pen(cpu);
        let id = CpuId::read();
        let regs = *monitor::MMU
            .get()
            .expect("primary set up the MMU before releasing the pen");
        mmu::enable(&regs);
        init_el3_regs(&id);
        match release {
            // The boot CPU may still be building the GPT: the helper measures with granule
            // protection checks off (EL3 reads the images, as it could anyway).
            monitor::Release::BootJob(job) => attest::boot_job(job, &id),
            monitor::Release::CpuOn { entry, context } => {
                gpt::enable_on_this_cpu(GPT_GEOMETRY);
                gic::init_redistributor(cpu);
                monitor::run_secondary(cpu, id, entry, context);
            }
        }
    }
}

unsafe extern "C" {
    static __text_end: u8;
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    fw_support::exception::report_panic(info);
    // EL3 only runs to serve a trap from a lower world: name that world (SCR_EL3.NSE/NS
    // still select it) and the trap's syndrome and addresses, as an exception report does.
    let scr = read_sysreg!(scr_el3);
    let world = match ((scr >> 62) & 1, scr & 1) {
        (0, 1) => "Non-secure",
        (1, 1) => "Realm",
        (0, _) => "Secure",
        _ => "Root",
    };
    power::fatal_exit(
        format_args!("panic in EL3 while serving the {world} world's trap"),
        read_sysreg!(esr_el3),
        read_sysreg!(elr_el3),
        read_sysreg!(far_el3),
    )
}

/// Reads the current value of ESR_EL3 (used by the monitor to classify traps).
pub(crate) fn esr_el3() -> u64 {
    read_sysreg!(esr_el3)
}
