//! The virtual GICv3: interrupt state of every INTID of a VM and its delivery to vCPUs through
//! the GIC virtual CPU interface's list registers.
//!
//! (Interface fixed; the implementation is being written.)

use alloc::vec::Vec;

/// The virtual GIC of one VM.
pub struct Vgic {
    mpidrs: Vec<u64>,
    nr_spis: u32,
}

impl Vgic {
    /// A GIC for vCPUs whose `MPIDR_EL1` affinities are `mpidrs` (index = vCPU), with
    /// `nr_spis` shared peripheral interrupts (INTIDs 32..32 + nr_spis; a multiple of 32).
    pub fn new(mpidrs: &[u64], nr_spis: u32) -> Self {
        Self {
            mpidrs: mpidrs.to_vec(),
            nr_spis,
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
}
