//! What the VMM needs from the machine it runs on: the GIC virtual CPU interface, the
//! counter, a preemption timer, idling, and console input. The bare-metal host implements it
//! with system registers; tests with models.

/// The host's GIC virtual CPU interface (GICv3 `ICH_*_EL2`) and the counter the realm's
/// timers compare against. The firmware implements it with system registers; tests with a
/// model.
pub trait VirtualCpuInterface {
    /// `ICH_VTR_EL2`.
    fn vtr(&mut self) -> u64;
    /// Reads `ICH_LR<n>_EL2`.
    fn read_lr(&mut self, n: usize) -> u64;
    /// Writes `ICH_LR<n>_EL2`.
    fn write_lr(&mut self, n: usize, value: u64);
    /// Reads `ICH_AP0R<n>_EL2` (group 0) or `ICH_AP1R<n>_EL2` (group 1).
    fn read_apr(&mut self, group: usize, n: usize) -> u64;
    /// Writes `ICH_AP0R<n>_EL2` or `ICH_AP1R<n>_EL2`.
    fn write_apr(&mut self, group: usize, n: usize, value: u64);
    /// Reads `ICH_VMCR_EL2`.
    fn read_vmcr(&mut self) -> u64;
    /// Writes `ICH_VMCR_EL2`.
    fn write_vmcr(&mut self, value: u64);
    /// Writes `ICH_HCR_EL2`.
    fn write_hcr(&mut self, value: u64);
    /// Reads `ICH_MISR_EL2`.
    fn read_misr(&mut self) -> u64;
    /// The physical counter (`CNTPCT_EL0`); realms run with zero timer offsets, so their
    /// compare values are in its terms.
    fn counter(&mut self) -> u64;
}

/// The machine services the VMM's run loop uses besides the virtual CPU interface.
pub trait VmHost: VirtualCpuInterface {
    /// Ticks per second of [`VirtualCpuInterface::counter`].
    fn counter_hz(&mut self) -> u64;
    /// Arms (`Some(deadline)`, in counter ticks) or disarms the host's own timer, whose
    /// interrupt makes a running REC exit (`IRQ`) so the host can preempt it.
    fn arm_preemption(&mut self, deadline: Option<u64>);
    /// Waits until the counter reaches `until` or console input arrives, whichever is
    /// first (every vCPU is blocked).
    fn idle(&mut self, until: u64);
    /// A byte typed on the host's console, if any.
    fn poll_input(&mut self) -> Option<u8>;
    /// Wall-clock time in seconds since 1970 (for the guest's RTC).
    fn unix_time(&mut self) -> u64;
}
