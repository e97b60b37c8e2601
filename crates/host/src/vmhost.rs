//! The machine services the VMM's run loop uses ([`host_core::vmm::host::VmHost`]): the GIC
//! virtual CPU interface, the counter, the EL2 physical timer as the preemption tick, idling
//! with `WFI`, console input and the PL031's wall-clock time.

use crate::gic::VirtualCpu;
use crate::mmu::PL031;
use fw_support::{read_sysreg, write_sysreg};
use host_core::vmm::host::{VirtualCpuInterface, VmHost};

/// `CNTHP_CTL_EL2.ENABLE`.
const TIMER_ENABLE: u64 = 1;

/// The host machine as the VMM sees it.
pub struct Hw {
    gic: VirtualCpu,
    /// Wall-clock seconds and the counter when they were read.
    epoch: (u64, u64),
    /// A byte of input read while idling, not yet handed over.
    input: Option<u8>,
}

impl Hw {
    /// Reads the wall-clock time once.
    pub fn new() -> Self {
        // SAFETY: the PL031 is mapped as device memory; RTCDR (offset 0) is a read-only
        // counter of seconds.
        let secs = unsafe { (PL031 as *const u32).read_volatile() };
        Self {
            gic: VirtualCpu,
            epoch: (u64::from(secs), counter()),
            input: None,
        }
    }
}

/// The physical counter (`CNTPCT_EL0`).
pub fn counter() -> u64 {
    // SAFETY: ISB orders the counter read after earlier instructions; no memory effects.
    unsafe { core::arch::asm!("isb", options(nostack)) };
    read_sysreg!(cntpct_el0)
}

fn set_timer(deadline: Option<u64>) {
    // SAFETY: CNTHP_CVAL_EL2/CNTHP_CTL_EL2 are the host's own EL2 timer (the RMM and EL3 do
    // not use it); its interrupt only makes a running REC exit or wakes WFI.
    unsafe {
        match deadline {
            Some(d) => {
                write_sysreg!(s3_4_c14_c2_2, d);
                write_sysreg!(s3_4_c14_c2_1, TIMER_ENABLE);
            }
            None => write_sysreg!(s3_4_c14_c2_1, 0u64),
        }
        core::arch::asm!("isb", options(nostack));
    }
}

impl VirtualCpuInterface for Hw {
    fn vtr(&mut self) -> u64 {
        self.gic.vtr()
    }
    fn read_lr(&mut self, n: usize) -> u64 {
        self.gic.read_lr(n)
    }
    fn write_lr(&mut self, n: usize, value: u64) {
        self.gic.write_lr(n, value)
    }
    fn read_apr(&mut self, group: usize, n: usize) -> u64 {
        self.gic.read_apr(group, n)
    }
    fn write_apr(&mut self, group: usize, n: usize, value: u64) {
        self.gic.write_apr(group, n, value)
    }
    fn read_vmcr(&mut self) -> u64 {
        self.gic.read_vmcr()
    }
    fn write_vmcr(&mut self, value: u64) {
        self.gic.write_vmcr(value)
    }
    fn write_hcr(&mut self, value: u64) {
        self.gic.write_hcr(value)
    }
    fn read_misr(&mut self) -> u64 {
        self.gic.read_misr()
    }
    fn counter(&mut self) -> u64 {
        counter()
    }
}

impl VmHost for Hw {
    fn counter_hz(&mut self) -> u64 {
        read_sysreg!(cntfrq_el0)
    }

    fn arm_preemption(&mut self, deadline: Option<u64>) {
        set_timer(deadline);
    }

    fn idle(&mut self, until: u64) {
        // Wake at least every 10 ms to look at the console (its interrupt is not used).
        let step = (read_sysreg!(cntfrq_el0) / 100).max(1);
        loop {
            if self.input.is_none() {
                self.input = fw_support::console::read_byte();
            }
            let now = counter();
            if self.input.is_some() || now >= until {
                break;
            }
            set_timer(Some(until.min(now.saturating_add(step))));
            // SAFETY: WFI only waits; the pending timer interrupt (masked by PSTATE.I) ends it.
            unsafe { core::arch::asm!("wfi", options(nostack)) };
        }
        set_timer(None);
    }

    fn poll_input(&mut self) -> Option<u8> {
        self.input.take().or_else(fw_support::console::read_byte)
    }

    fn unix_time(&mut self) -> u64 {
        let hz = read_sysreg!(cntfrq_el0).max(1);
        self.epoch.0 + counter().wrapping_sub(self.epoch.1) / hz
    }
}
