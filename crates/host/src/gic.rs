//! The GICv3 virtual CPU interface the host programs before every `REC_ENTER` (RMI 2.0: the
//! host writes the real `ICH_*_EL2` registers, the RMM checks them and clears
//! `ICH_HCR_EL2.En` on exit), and the physical counter the realm's timers compare against.
//!
//! | register | encoding |
//! |---|---|
//! | `ICH_AP0R<n>_EL2` | `S3_4_C12_C8_<n>` |
//! | `ICH_AP1R<n>_EL2` | `S3_4_C12_C9_<n>` |
//! | `ICC_SRE_EL2` | `S3_4_C12_C9_5` |
//! | `ICH_HCR_EL2` | `S3_4_C12_C11_0` |
//! | `ICH_VTR_EL2` | `S3_4_C12_C11_1` |
//! | `ICH_MISR_EL2` | `S3_4_C12_C11_2` |
//! | `ICH_VMCR_EL2` | `S3_4_C12_C11_7` |
//! | `ICH_LR<n>_EL2` | `S3_4_C12_C12_<n>` (n < 8), `S3_4_C12_C13_<n - 8>` |

use fw_support::{read_sysreg, write_sysreg};
use host_core::vmm::host::VirtualCpuInterface;

/// `ICC_SRE_EL2.SRE`: the system register interface at EL2.
const SRE: u64 = 1 << 0;
/// `ICC_SRE_EL2.Enable`: EL1 may use `ICC_SRE_EL1` (the realm's accesses do not trap).
const SRE_ENABLE: u64 = 1 << 3;

/// Makes sure `ICC_SRE_EL2` lets EL1 use the GIC system registers (SRE, DFB, DIB, Enable:
/// EL3 already sets 0xF) and returns `(ICC_SRE_EL2 as found, ICH_VTR_EL2)`.
pub fn init() -> (u64, u64) {
    let sre = read_sysreg!(s3_4_c12_c9_5);
    if sre & (SRE | SRE_ENABLE) != SRE | SRE_ENABLE {
        // SAFETY: setting SRE, DFB, DIB and Enable only selects the system register
        // interface for EL2 and lets EL1 use it; the host has no GIC memory-mapped CPU
        // interface state to lose.
        unsafe {
            write_sysreg!(s3_4_c12_c9_5, 0xfu64);
            core::arch::asm!("isb", options(nostack));
        }
    }
    (sre, read_sysreg!(s3_4_c12_c11_1))
}

/// Writes a distinct pending interrupt into every implemented list register and reads it
/// back, then clears them all: proves the register encodings before a realm depends on them.
pub fn list_registers_read_back(vtr: u64) -> bool {
    use cca_abi::arch::ich;
    let mut v = VirtualCpu;
    let n = ich::list_registers(vtr);
    let mut ok = true;
    let lr = |i: usize| ich::lr_encode(100 + i as u32, 0xa0, ich::LrState::Pending, false);
    for i in 0..n {
        v.write_lr(i, lr(i));
    }
    for i in 0..n {
        ok &= v.read_lr(i) == lr(i);
        v.write_lr(i, 0);
    }
    ok
}

/// Reads `ICC_SRE_EL2`.
pub fn sre() -> u64 {
    read_sysreg!(s3_4_c12_c9_5)
}

/// The host's `ICH_*_EL2` registers and `CNTPCT_EL0`.
pub struct VirtualCpu;

macro_rules! lr_read {
    ($n:expr, $($i:literal => $reg:tt),*) => {
        match $n {
            $($i => read_sysreg!($reg),)*
            _ => 0,
        }
    };
}

macro_rules! lr_write {
    ($n:expr, $v:expr, $($i:literal => $reg:tt),*) => {
        match $n {
            // SAFETY: the list registers only hold virtual interrupt state for the realm the
            // host enters next; the interface is disabled (ICH_HCR_EL2.En = 0) while the
            // host itself runs, and EL2 is not affected by it.
            $($i => unsafe { write_sysreg!($reg, $v) },)*
            _ => {}
        }
    };
}

impl VirtualCpuInterface for VirtualCpu {
    fn vtr(&mut self) -> u64 {
        read_sysreg!(s3_4_c12_c11_1)
    }

    fn read_lr(&mut self, n: usize) -> u64 {
        lr_read!(n,
            0 => s3_4_c12_c12_0, 1 => s3_4_c12_c12_1, 2 => s3_4_c12_c12_2,
            3 => s3_4_c12_c12_3, 4 => s3_4_c12_c12_4, 5 => s3_4_c12_c12_5,
            6 => s3_4_c12_c12_6, 7 => s3_4_c12_c12_7, 8 => s3_4_c12_c13_0,
            9 => s3_4_c12_c13_1, 10 => s3_4_c12_c13_2, 11 => s3_4_c12_c13_3,
            12 => s3_4_c12_c13_4, 13 => s3_4_c12_c13_5, 14 => s3_4_c12_c13_6,
            15 => s3_4_c12_c13_7)
    }

    fn write_lr(&mut self, n: usize, value: u64) {
        lr_write!(n, value,
            0 => s3_4_c12_c12_0, 1 => s3_4_c12_c12_1, 2 => s3_4_c12_c12_2,
            3 => s3_4_c12_c12_3, 4 => s3_4_c12_c12_4, 5 => s3_4_c12_c12_5,
            6 => s3_4_c12_c12_6, 7 => s3_4_c12_c12_7, 8 => s3_4_c12_c13_0,
            9 => s3_4_c12_c13_1, 10 => s3_4_c12_c13_2, 11 => s3_4_c12_c13_3,
            12 => s3_4_c12_c13_4, 13 => s3_4_c12_c13_5, 14 => s3_4_c12_c13_6,
            15 => s3_4_c12_c13_7);
    }

    fn read_apr(&mut self, group: usize, n: usize) -> u64 {
        match (group, n) {
            (0, 0) => read_sysreg!(s3_4_c12_c8_0),
            (0, 1) => read_sysreg!(s3_4_c12_c8_1),
            (0, 2) => read_sysreg!(s3_4_c12_c8_2),
            (0, 3) => read_sysreg!(s3_4_c12_c8_3),
            (1, 0) => read_sysreg!(s3_4_c12_c9_0),
            (1, 1) => read_sysreg!(s3_4_c12_c9_1),
            (1, 2) => read_sysreg!(s3_4_c12_c9_2),
            (1, 3) => read_sysreg!(s3_4_c12_c9_3),
            _ => 0,
        }
    }

    fn write_apr(&mut self, group: usize, n: usize, value: u64) {
        // SAFETY: the active priority registers only hold the virtual CPU interface's state
        // for the realm the host enters next (see `write_lr`).
        unsafe {
            match (group, n) {
                (0, 0) => write_sysreg!(s3_4_c12_c8_0, value),
                (0, 1) => write_sysreg!(s3_4_c12_c8_1, value),
                (0, 2) => write_sysreg!(s3_4_c12_c8_2, value),
                (0, 3) => write_sysreg!(s3_4_c12_c8_3, value),
                (1, 0) => write_sysreg!(s3_4_c12_c9_0, value),
                (1, 1) => write_sysreg!(s3_4_c12_c9_1, value),
                (1, 2) => write_sysreg!(s3_4_c12_c9_2, value),
                (1, 3) => write_sysreg!(s3_4_c12_c9_3, value),
                _ => {}
            }
        }
    }

    fn read_vmcr(&mut self) -> u64 {
        read_sysreg!(s3_4_c12_c11_7)
    }

    fn write_vmcr(&mut self, value: u64) {
        // SAFETY: ICH_VMCR_EL2 is the realm's view of its CPU interface (priority mask,
        // group enables); it does not affect EL2.
        unsafe { write_sysreg!(s3_4_c12_c11_7, value) };
    }

    fn write_hcr(&mut self, value: u64) {
        // SAFETY: ICH_HCR_EL2 enables the virtual CPU interface for EL1; the host runs at
        // EL2 with HCR_EL2.IMO/FMO clear, so it is not affected. The ISB makes every write
        // before it take effect before the SMC that enters the realm.
        unsafe {
            write_sysreg!(s3_4_c12_c11_0, value);
            core::arch::asm!("isb", options(nostack));
        }
    }

    fn read_misr(&mut self) -> u64 {
        read_sysreg!(s3_4_c12_c11_2)
    }

    fn counter(&mut self) -> u64 {
        // SAFETY: ISB orders the counter read after earlier instructions; no memory effects.
        unsafe { core::arch::asm!("isb", options(nostack)) };
        read_sysreg!(cntpct_el0)
    }
}

/// The redistributors on QEMU `virt` (128 KiB per CPU).
const GICR_BASE: u64 = 0x080A_0000;
/// Offset of a redistributor's SGI/PPI frame.
const GICR_SGI_FRAME: u64 = 0x1_0000;
/// `GICR_ISENABLER0` in the SGI frame.
const GICR_ISENABLER0: u64 = 0x100;
/// `GICR_IPRIORITYR<n>` in the SGI frame.
const GICR_IPRIORITYR: u64 = 0x400;

/// The physical interrupts that make a running REC exit to this host: the GIC maintenance
/// interrupt (25), the host's EL2 timer (26, the scheduler's preemption tick) and the EL1
/// virtual and physical timers (27, 30) that a realm's timers drive while it runs.
pub const HOST_PPIS: [u32; 4] = [25, 26, 27, 30];

/// Enables [`HOST_PPIS`] on CPU `cpu`'s redistributor (EL3 put every PPI in Non-secure
/// Group 1 and woke the redistributor) and opens this CPU's interface for Group 1 at every
/// priority. The host itself runs with IRQs masked: the interrupts only end realm runs and
/// wake `WFI`; none is ever taken at NS-EL2.
pub fn enable_host_interrupts(cpu: usize) {
    let sgi = GICR_BASE + cpu as u64 * 0x2_0000 + GICR_SGI_FRAME;
    let mut enable = 0u32;
    for intid in HOST_PPIS {
        enable |= 1 << intid;
        let prio = sgi + GICR_IPRIORITYR + u64::from(intid);
        // SAFETY: the redistributor frames are mapped as device memory; the priority byte
        // and ISENABLER0 of this CPU's PPIs belong to the Non-secure host (Group 1 NS).
        unsafe { (prio as *mut u8).write_volatile(0x80) };
    }
    // SAFETY: as above; ISENABLER0 is write-1-to-set, other bits are unaffected.
    unsafe { ((sgi + GICR_ISENABLER0) as *mut u32).write_volatile(enable) };
    // SAFETY: ICC_PMR_EL1 (priority mask) and ICC_IGRPEN1_EL1 (Group 1 enable) of the
    // physical CPU interface at EL2 only decide which interrupts are signalled to this CPU;
    // PSTATE.I stays set, so the host never takes one.
    unsafe {
        write_sysreg!(s3_0_c4_c6_0, 0xffu64);
        write_sysreg!(s3_0_c12_c12_7, 1u64);
        core::arch::asm!("isb", options(nostack));
    }
}
