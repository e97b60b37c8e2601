//! System register access.
//!
//! `read_sysreg!` is safe: reading the registers this stack reads has no side effects.
//! `write_sysreg!` expands to an `asm!` without an `unsafe` block of its own, so every write
//! sits in the caller's `unsafe` block with its own `// SAFETY:` justification.

/// Reads a system register by name or by `sN_N_cN_cN_N` encoding.
#[macro_export]
macro_rules! read_sysreg {
    ($reg:tt) => {{
        let v: u64;
        // SAFETY: reading a system register has no side effects on memory; the registers
        // read through this macro are ID, status or configuration registers.
        unsafe {
            core::arch::asm!(concat!("mrs {}, ", stringify!($reg)), out(reg) v,
                options(nomem, nostack, preserves_flags))
        };
        v
    }};
}

/// Writes a system register. Must be used inside an `unsafe` block.
#[macro_export]
macro_rules! write_sysreg {
    ($reg:tt, $val:expr) => {
        core::arch::asm!(concat!("msr ", stringify!($reg), ", {}"), in(reg) ($val) as u64,
            options(nostack, preserves_flags))
    };
}

/// Extracts an unsigned ID register field of `width` bits at `shift`.
pub const fn field(reg: u64, shift: u32, width: u32) -> u64 {
    (reg >> shift) & ((1u64 << width) - 1)
}

/// CPU features the firmware images check before touching optional registers.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuId {
    /// ID_AA64PFR0_EL1.
    pub pfr0: u64,
    /// ID_AA64PFR1_EL1.
    pub pfr1: u64,
    /// ID_AA64MMFR0_EL1.
    pub mmfr0: u64,
    /// ID_AA64MMFR1_EL1.
    pub mmfr1: u64,
    /// ID_AA64MMFR2_EL1.
    pub mmfr2: u64,
    /// ID_AA64MMFR3_EL1.
    pub mmfr3: u64,
    /// ID_AA64DFR0_EL1.
    pub dfr0: u64,
    /// ID_AA64DFR1_EL1.
    pub dfr1: u64,
    /// ID_AA64ISAR0_EL1.
    pub isar0: u64,
    /// ID_AA64ISAR1_EL1.
    pub isar1: u64,
    /// ID_AA64ISAR2_EL1.
    pub isar2: u64,
}

impl CpuId {
    /// Reads the ID registers of this CPU.
    pub fn read() -> Self {
        Self {
            pfr0: read_sysreg!(id_aa64pfr0_el1),
            pfr1: read_sysreg!(id_aa64pfr1_el1),
            mmfr0: read_sysreg!(id_aa64mmfr0_el1),
            mmfr1: read_sysreg!(id_aa64mmfr1_el1),
            mmfr2: read_sysreg!(id_aa64mmfr2_el1),
            mmfr3: read_sysreg!(s3_0_c0_c7_3),
            dfr0: read_sysreg!(id_aa64dfr0_el1),
            dfr1: read_sysreg!(s3_0_c0_c5_1),
            isar0: read_sysreg!(id_aa64isar0_el1),
            isar1: read_sysreg!(id_aa64isar1_el1),
            isar2: read_sysreg!(s3_0_c0_c6_2),
        }
    }

    /// Physical address size in bits (ID_AA64MMFR0_EL1.PARange).
    pub fn pa_bits(&self) -> u32 {
        match field(self.mmfr0, 0, 4) {
            0 => 32,
            1 => 36,
            2 => 40,
            3 => 42,
            4 => 44,
            5 => 48,
            _ => 52,
        }
    }

    /// The PARange field, for TCR.PS / VTCR.PS.
    pub fn pa_range(&self) -> u64 {
        field(self.mmfr0, 0, 4).min(6)
    }

    /// FEAT_SVE.
    pub fn sve(&self) -> bool {
        field(self.pfr0, 32, 4) != 0
    }
    /// FEAT_SME.
    pub fn sme(&self) -> bool {
        field(self.pfr1, 24, 4) != 0
    }
    /// FEAT_FGT.
    pub fn fgt(&self) -> bool {
        field(self.mmfr0, 56, 4) != 0
    }
    /// FEAT_ECV (CNTPOFF_EL2 needs ECV level 2).
    pub fn ecv2(&self) -> bool {
        field(self.mmfr0, 60, 4) >= 2
    }
    /// FEAT_HCX.
    pub fn hcx(&self) -> bool {
        field(self.mmfr1, 40, 4) != 0
    }
    /// FEAT_TCR2.
    pub fn tcr2(&self) -> bool {
        field(self.mmfr3, 0, 4) != 0
    }
    /// FEAT_SCTLR2.
    pub fn sctlr2(&self) -> bool {
        field(self.mmfr3, 4, 4) != 0
    }
    /// FEAT_S1PIE.
    pub fn s1pie(&self) -> bool {
        field(self.mmfr3, 8, 4) != 0
    }
    /// FEAT_S2PIE.
    pub fn s2pie(&self) -> bool {
        field(self.mmfr3, 12, 4) != 0
    }
    /// FEAT_AMUv1.
    pub fn amu(&self) -> bool {
        field(self.pfr0, 44, 4) != 0
    }
    /// FEAT_PAuth (any algorithm).
    pub fn pauth(&self) -> bool {
        field(self.isar1, 4, 4) != 0
            || field(self.isar1, 8, 4) != 0
            || field(self.isar2, 12, 4) != 0
    }
    /// FEAT_WFxT (`WFIT` and `WFET`, waits with a timeout).
    pub fn wfxt(&self) -> bool {
        field(self.isar2, 0, 4) >= 2
    }
    /// FEAT_MOPS (the memory copy and set instructions).
    pub fn mops(&self) -> bool {
        field(self.isar2, 16, 4) != 0
    }
    /// FEAT_RAS.
    pub fn ras(&self) -> bool {
        field(self.pfr0, 28, 4) != 0
    }
    /// FEAT_RNG.
    pub fn rng(&self) -> bool {
        field(self.isar0, 60, 4) != 0
    }
    /// FEAT_RME.
    pub fn rme(&self) -> bool {
        field(self.pfr0, 52, 4) != 0
    }
    /// FEAT_MTE2 (tag-checked memory).
    pub fn mte2(&self) -> bool {
        field(self.pfr1, 8, 4) >= 2
    }
    /// FEAT_CSV2_2 or later (SCXTNUM registers).
    pub fn csv2_2(&self) -> bool {
        field(self.pfr0, 56, 4) >= 2
    }
    /// FEAT_VHE.
    pub fn vhe(&self) -> bool {
        field(self.mmfr1, 8, 4) != 0
    }
    /// FEAT_LPA2 at stage 1 and stage 2 for 4 KiB granules.
    pub fn lpa2_4k(&self) -> bool {
        field(self.mmfr0, 28, 4) == 1 && field(self.mmfr0, 40, 4) == 3
    }
    /// Number of breakpoints (BRPs field plus one, DFR1 when the field saturates).
    pub fn num_bps(&self) -> u64 {
        let f = field(self.dfr0, 12, 4);
        if f == 15 {
            let d = field(self.dfr1, 8, 8);
            if d != 0 {
                return d + 1;
            }
        }
        f + 1
    }
    /// Number of watchpoints.
    pub fn num_wps(&self) -> u64 {
        let f = field(self.dfr0, 20, 4);
        if f == 15 {
            let d = field(self.dfr1, 16, 8);
            if d != 0 {
                return d + 1;
            }
        }
        f + 1
    }
}
