//! The Normal-world host (NS-EL2): it plays the hypervisor's part, bringing the RMM up over
//! RMI the way KVM and Xen do at boot, printing every call decoded, and ending the run with a
//! verdict; or, when the launcher loaded a launch description, it is a VMM that builds and
//! runs a Linux realm from it.

#![no_std]
#![no_main]

mod demo;
mod entry;
mod fuzz;
mod fuzz_realm;
mod gic;
mod heap;
mod linux;
mod machine;
mod mmu;
mod vmhost;

use cca_abi::{el3::sip, psci};
use fw_support::{println, read_sysreg};
use host_core::{Conduit, HostMem};

/// SMCs to EL3.
pub(crate) struct Smc;

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

pub(crate) fn smc(fid: u32, args: &[u64]) -> u64 {
    let mut regs = [0u64; 8];
    regs[0] = u64::from(fid);
    regs[1..=args.len()].copy_from_slice(args);
    Smc.smc(regs)[0]
}

/// The host's own memory, identity-mapped.
pub(crate) struct Dram;

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

/// Where QEMU `virt` puts the device tree when it boots firmware (the start of DRAM).
const QEMU_VIRT_DTB: u64 = 0x4000_0000;

#[unsafe(no_mangle)]
extern "C" fn host_main(dtb: u64) -> ! {
    // SAFETY: UART0 is the platform console; the MMU is off, so it is device memory.
    unsafe { fw_support::console::init(mmu::UART0 as usize, "HOST") };
    let el = (read_sysreg!(currentel) >> 2) & 3;
    // TF-A enters BL33 with x0 = 0 on QEMU; QEMU `virt` places the device tree at the start
    // of DRAM for firmware boots, where TF-A itself reads it.
    let dtb = if dtb == 0 { QEMU_VIRT_DTB } else { dtb };
    println!("Normal-world host (Rust) at EL{el}, device tree at {dtb:#x}");
    let Some(machine) = machine::read(dtb) else {
        println!("RESULT: FAIL (no usable device tree at {dtb:#x}: cannot tell DRAM and CPUs)");
        smc(sip::EXIT, &[1]);
        fw_support::exit_emulator(0xE1)
    };
    println!(
        "machine: {} CPU(s), DRAM {:#x}..{:#x} ({} MiB)",
        machine.cpus,
        machine.dram_base,
        machine.dram_end(),
        machine.dram_size >> 20
    );
    mmu::init(machine.dram_base, machine.dram_end());
    heap::init();
    println!(
        "ID_AA64PFR0_EL1 = {:#018x} (RME = {})",
        read_sysreg!(id_aa64pfr0_el1),
        (read_sysreg!(id_aa64pfr0_el1) >> 52) & 0xf
    );
    let v = smc(psci::VERSION, &[]);
    println!("PSCI_VERSION -> {}.{}", v >> 16, v & 0xffff);
    match linux::launch_description(&machine) {
        Some(text) => linux::run(&machine, text),
        None => match fuzz::request(&machine) {
            Some(r) if r.mode == fuzz::MODE_HOST => fuzz::run_host(&machine, r),
            Some(r) if r.mode == fuzz::MODE_FAULT => fuzz::run_fault(&machine, r),
            Some(r) if r.mode == fuzz_realm::MODE_REALM => fuzz_realm::run(&machine, r.arg, r.seed),
            _ => demo::run(&machine),
        },
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    fw_support::exception::report_panic(info);
    fw_support::exit_emulator(0xE1)
}
