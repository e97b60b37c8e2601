//! What the machine has, from the device tree EL3 hands over in x0 (QEMU's): DRAM and CPUs.

/// The machine's DRAM and CPUs.
#[derive(Clone, Copy, Debug)]
pub struct Machine {
    /// DRAM base.
    pub dram_base: u64,
    /// DRAM size.
    pub dram_size: u64,
    /// Number of CPUs.
    pub cpus: usize,
}

impl Machine {
    /// End of DRAM.
    pub fn dram_end(&self) -> u64 {
        self.dram_base + self.dram_size
    }
}

/// Reads the device tree at `dtb` (identity-mapped, or the MMU off). `None` if it is not a
/// valid device tree or has no memory node.
pub fn read(dtb: u64) -> Option<Machine> {
    // SAFETY: EL3 passes the address of the device tree QEMU wrote into DRAM; nothing writes
    // it while it is parsed, and `from_ptr` checks the header before trusting the sizes.
    let fdt = unsafe { fdt::Fdt::from_ptr(dtb as *const u8) }.ok()?;
    let region = fdt.memory().regions().next()?;
    Some(Machine {
        dram_base: region.starting_address as u64,
        dram_size: region.size? as u64,
        cpus: fdt.cpus().count(),
    })
}
