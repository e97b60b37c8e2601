//! The virtual GICv3: interrupt state of every INTID of a VM and its delivery to vCPUs through
//! the GIC virtual CPU interface's list registers.
//!
//! (Interface fixed; the implementation is being written.)

use alloc::vec::Vec;

/// The virtual GIC of one VM.
pub struct Vgic {
    mpidrs: Vec<u64>,
    nr_spis: u32,
    spi_lines: Vec<bool>,
}

impl Vgic {
    /// A GIC for vCPUs whose `MPIDR_EL1` affinities are `mpidrs` (index = vCPU), with
    /// `nr_spis` shared peripheral interrupts (INTIDs 32..32 + nr_spis; a multiple of 32).
    pub fn new(mpidrs: &[u64], nr_spis: u32) -> Self {
        Self {
            mpidrs: mpidrs.to_vec(),
            nr_spis,
            spi_lines: alloc::vec![false; nr_spis as usize],
        }
    }

    /// Number of vCPUs.
    pub fn nr_vcpus(&self) -> usize {
        self.mpidrs.len()
    }

    /// Number of SPIs.
    pub fn nr_spis(&self) -> u32 {
        self.nr_spis
    }

    /// Drives the line of SPI `intid` (32..32 + nr_spis) to `level`; other INTIDs are ignored.
    pub fn set_spi_level(&mut self, intid: u32, level: bool) {
        if let Some(l) = intid
            .checked_sub(32)
            .and_then(|i| self.spi_lines.get_mut(i as usize))
        {
            *l = level;
        }
    }

    /// The level of SPI `intid`'s line (false for INTIDs that are not SPIs).
    pub fn spi_level(&self, intid: u32) -> bool {
        intid
            .checked_sub(32)
            .and_then(|i| self.spi_lines.get(i as usize))
            .copied()
            .unwrap_or(false)
    }
}
