//! The realm's CPU: what a realm reads from the ID registers, and the EL2 traps that keep
//! the features it is not shown out of its reach (TF-RMM `runtime/core/sysregs.c`,
//! `lib/arch/include/arch_features.h`).
//!
//! Realms run with `HCR_EL2.TID3`, so every EL1 read of an ID register (op0 3, op1 0, CRn 0,
//! CRm 1..=7) traps to the RMM, which answers with [`realm_view`]: a value computed from the
//! CPU's own registers ([`IdRegs`], read once at boot through
//! [`crate::Platform::id_regs`]) and the realm's parameters ([`RealmCpu`]).
//!
//! # Rules
//!
//! The view is an allow-list: every field is zero unless a rule below shows it. A field the
//! architecture adds later therefore reads 0 (the older behaviour) until this module knows
//! it. Fields that only describe EL2 or EL3 (FGT, VH, NV, HCX, ECV, SEL2, EL2/EL3 support...)
//! are shown as the CPU has them, as TF-RMM does: the realm cannot use them, and they need
//! no realm state.
//!
//! A feature is shown only when the RMM switches every EL1/EL0 register it adds between the
//! worlds and between RECs (`crates/rmm/src/realm.rs` saves SCTLR, ACTLR, CPACR, TTBR0/1,
//! TCR, ESR, AFSR0/1, FAR, MAIR, AMAIR, VBAR, CONTEXTIDR, TPIDR_EL1, TPIDR(RO)_EL0, SP_EL0/1,
//! ELR, SPSR, PAR, CNTKCTL, CSSELR, MDSCR, the EL1 timers, the pointer authentication keys,
//! Q0-Q31, FPSR and FPCR), and the instructions it adds are not trapped or disabled for
//! realms. Per feature:
//!
//! | feature | fields | view | why |
//! |---|---|---|---|
//! | FP, AdvSIMD, FP16, AFP, DIT, BTI, SSBS, PAuth, PAN, UAO, LSE, crypto, ... | everything else of PFR0/1, ISAR0-3, MMFR0-2 | as the CPU | state in SPSR, SCTLR, TCR, FPCR or the switched keys and FP registers |
//! | FEAT_RME | `ID_AA64PFR0.RME` | as the CPU | edk2 detects a realm with it |
//! | FEAT_SVE | `ID_AA64PFR0.SVE`, `ID_AA64ZFR0` | only if the realm has SVE | Z/P/FFR/ZCR_EL1 are not switched, so the firmware reports no SVE in `RMI_FEATURES` and `REALM_CREATE` refuses the SVE flag; `CPTR_EL2.TZ` makes SVE instructions UNDEFINED |
//! | FEAT_SME | `ID_AA64PFR1.SME`, `ID_AA64SMFR0` | 0 | ZA, ZT0, SVCR, SMCR_EL1, TPIDR2_EL0 not switched; `CPTR_EL2.TSM` |
//! | FEAT_FPMR, FP8 | `ID_AA64PFR2.FPMR`, `ID_AA64FPFR0` | 0 | FPMR not switched |
//! | PMU (PMUv3, MTPMU, HPMN0, PMSS, SEBEP, EBEP, PMICNTR, DPFZS) | `ID_AA64DFR0/1`, `ID_DFR0.PerfMon`, `ID_DFR1` | only with the realm's PMU flag | PMU registers are trapped (`MDCR_EL2.TPM/TPMCR`) and RAZ/WI; `RMI_FEATURES` offers no PMU, so every realm reads `PMUVer` = 0 |
//! | debug | `ID_AA64DFR0/1` `BRPs`, `WRPs`, `CTX_CMPs` | the realm's `num_bps`/`num_wps` | the counts the host chose; the debug registers themselves are trapped (`MDCR_EL2.TDA/TDOSA`) and RAZ/WI, since they are not switched |
//! | SPE, TRBE, BRBE, trace (ETE, TRF, ITE, external trace buffer), system PMU, ABLE, FEAT_STEP2/BWE | `PMSVer`, `TraceBuffer`, `BRBE`, `TraceVer`, `TraceFilt`, `ExtTrcBuff`, `ID_AA64DFR1` rest, `ID_AA64DFR2`, `ID_DFR0` trace fields | 0 | their registers are not switched; they are trapped (`MDCR_EL2.TPMS/TTRF/E2PB=0/E2TB=0`, `CPTR_EL2.TTA`, the FGT BRBE bits) |
//! | MPAM, AMU | `ID_AA64PFR0.MPAM/AMU`, `ID_AA64PFR1.MPAM_frac`, `ID_PFR0.AMU` | 0 | not switched; MPAM accesses inject an UNDEF, AMU is trapped (`CPTR_EL2.TAM`) |
//! | FEAT_MTE* | `ID_AA64PFR1.MTE/MTE_frac/MTEX`, `ID_AA64PFR2` MTE fields | 0 | GCR_EL1, RGSR_EL1, TFSR(E0)_EL1 not switched; EL3 does not give realms tag access (`SCR_EL3.ATA` = 0) |
//! | FEAT_GCS | `ID_AA64PFR1.GCS` | 0 | GCSCR(E0)_EL1, GCSPR_EL0/1 not switched; EL3 leaves `SCR_EL3.GCSEn` = 0 |
//! | FEAT_NMI | `ID_AA64PFR1.NMI` | 0 | the RMM's exception injection does not model PSTATE.ALLINT, nor virtual NMIs |
//! | FEAT_TCR2, FEAT_SCTLR2 and what they control: S1PIE, S1POE, THE, AIE, D128, ASID2, HAFT, DoubleFault2, ADERR/ANERR, CPA | `ID_AA64MMFR3.TCRX/SCTLRX/S1PIE/S1POE/AIE/D128/D128_2/xDERR/xNERR`, `ID_AA64PFR1.THE/DF2`, `ID_AA64MMFR4.ASID2`, `ID_AA64MMFR1.HAFDBS` > 2, `ID_AA64ISAR2.SYSREG_128/SYSINSTR_128`, `ID_AA64ISAR3.CPA` | 0 (HAFDBS at most 2) | TCR2_EL1, SCTLR2_EL1, PIR(E0)_EL1, POR_EL0/1, MAIR2/AMAIR2_EL1, RCW(S)MASK_EL1 and 128-bit TTBRs are not switched; with `HCRX_EL2.TCR2En/SCTLR2En` = 0 and the FGT bits of the Realm world clear, their accesses trap to the RMM (RAZ/WI) and TCR2/SCTLR2 act as 0 |
//! | FEAT_S2PIE, FEAT_S2POE | `ID_AA64MMFR3.S2PIE/S2POE` | 0 | stage 2 features (TF-RMM hides them too) |
//! | FEAT_LOR | `ID_AA64MMFR1.LO` | 0 | LORSA/LOREA/LORN/LORC_EL1 not switched; trapped (`HCR_EL2.TLOR`) and UNDEFINED (they fall in the MPAM group, CRn 10 CRm 4..5, that TF-RMM makes UNDEFINED) |
//! | FEAT_LS64 | `ID_AA64ISAR1.LS64` | 0 | ACCDATA_EL1 not switched; `HCRX_EL2.EnALS/EnASR/EnAS0` = 0 |
//! | FEAT_TME | `ID_AA64ISAR0.TME` | 0 | `HCR_EL2.TME` = 0 makes it UNDEFINED |
//! | FEAT_MOPS | `ID_AA64ISAR2.MOPS` | as the CPU when it has FEAT_HCX | no state; the firmware sets `HCRX_EL2.MSCEn` (TF-RMM does the same) |
//! | FEAT_CSV2_2/3 (SCXTNUM_ELx) | `ID_AA64PFR0.CSV2`, `ID_AA64PFR1.CSV2_frac`, `ID_PFR0.CSV2` | at most 1 | SCXTNUM_EL0/1 are not switched; `HCR_EL2.EnSCXT` = 0 traps them (RAZ/WI) |
//! | FEAT_PFAR, FEAT_UINJ | `ID_AA64PFR1.PFAR`, `ID_AA64PFR2.UINJ` | 0 | PFAR_EL1 not switched; UINJ is for EL2 software |
//! | RAS | `ID_AA64PFR0.RAS`, `RAS_frac` | as the CPU | ESB and DISR (virtual, `HCR_EL2.AMO`) work; the error record registers are trapped (`HCR_EL2.TERR`) and RAZ/WI, i.e. a RAS CPU with no records |
//! | IMPLEMENTATION DEFINED | `ID_AA64AFR0/1`, `ID_AFR0` | 0 | unknown state |
//! | AArch32 EL0 | `ID_PFR0..MVFR2` (CRm 1..=3) | as the CPU, less AMU, CSV2 > 1, trace and PMU (as above), only if `ID_AA64PFR0.EL0` says EL0 can use AArch32 | otherwise 0 |
//!
//! Reserved encodings of the ID space (and CRm 8..=15 of CRn 0) read 0. `MIDR_EL1`,
//! `MPIDR_EL1` and `REVIDR_EL1` (CRm 0) are not trapped by TID3 (the hardware reads
//! VPIDR_EL2 and VMPIDR_EL2); if they are ever trapped they read the CPU's MIDR and REVIDR and
//! the REC's VMPIDR.

use crate::esr;

/// Number of ID register slots [`IdRegs`] holds: CRm 1..=7, op2 0..=7.
pub const ID_SLOTS: usize = 56;

/// An ID register encoding (op0 3, op1 0, CRn 0) by CRm and op2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IdReg {
    /// CRm (1..=7 for the trapped registers).
    pub crm: u8,
    /// op2 (0..=7).
    pub op2: u8,
}

macro_rules! id_regs {
    ($($(#[$doc:meta])* $name:ident = ($crm:expr, $op2:expr);)*) => {
        impl IdReg {
            $( $(#[$doc])* pub const $name: Self = Self { crm: $crm, op2: $op2 }; )*
            /// Every ID register the architecture allocates in CRm 1..=7 (the others are
            /// reserved and read 0).
            pub const ALLOCATED: &'static [IdReg] = &[$(Self::$name),*];
        }
    };
}

id_regs! {
    /// `ID_PFR0_EL1` (AArch32).
    ID_PFR0 = (1, 0);
    /// `ID_PFR1_EL1` (AArch32).
    ID_PFR1 = (1, 1);
    /// `ID_DFR0_EL1` (AArch32).
    ID_DFR0 = (1, 2);
    /// `ID_AFR0_EL1` (AArch32).
    ID_AFR0 = (1, 3);
    /// `ID_MMFR0_EL1` (AArch32).
    ID_MMFR0 = (1, 4);
    /// `ID_MMFR1_EL1` (AArch32).
    ID_MMFR1 = (1, 5);
    /// `ID_MMFR2_EL1` (AArch32).
    ID_MMFR2 = (1, 6);
    /// `ID_MMFR3_EL1` (AArch32).
    ID_MMFR3 = (1, 7);
    /// `ID_ISAR0_EL1` (AArch32).
    ID_ISAR0 = (2, 0);
    /// `ID_ISAR1_EL1` (AArch32).
    ID_ISAR1 = (2, 1);
    /// `ID_ISAR2_EL1` (AArch32).
    ID_ISAR2 = (2, 2);
    /// `ID_ISAR3_EL1` (AArch32).
    ID_ISAR3 = (2, 3);
    /// `ID_ISAR4_EL1` (AArch32).
    ID_ISAR4 = (2, 4);
    /// `ID_ISAR5_EL1` (AArch32).
    ID_ISAR5 = (2, 5);
    /// `ID_MMFR4_EL1` (AArch32).
    ID_MMFR4 = (2, 6);
    /// `ID_ISAR6_EL1` (AArch32).
    ID_ISAR6 = (2, 7);
    /// `MVFR0_EL1` (AArch32).
    MVFR0 = (3, 0);
    /// `MVFR1_EL1` (AArch32).
    MVFR1 = (3, 1);
    /// `MVFR2_EL1` (AArch32).
    MVFR2 = (3, 2);
    /// `ID_PFR2_EL1` (AArch32).
    ID_PFR2 = (3, 4);
    /// `ID_DFR1_EL1` (AArch32).
    ID_DFR1 = (3, 5);
    /// `ID_MMFR5_EL1` (AArch32).
    ID_MMFR5 = (3, 6);
    /// `ID_AA64PFR0_EL1`.
    AA64PFR0 = (4, 0);
    /// `ID_AA64PFR1_EL1`.
    AA64PFR1 = (4, 1);
    /// `ID_AA64PFR2_EL1`.
    AA64PFR2 = (4, 2);
    /// `ID_AA64ZFR0_EL1`.
    AA64ZFR0 = (4, 4);
    /// `ID_AA64SMFR0_EL1`.
    AA64SMFR0 = (4, 5);
    /// `ID_AA64FPFR0_EL1`.
    AA64FPFR0 = (4, 7);
    /// `ID_AA64DFR0_EL1`.
    AA64DFR0 = (5, 0);
    /// `ID_AA64DFR1_EL1`.
    AA64DFR1 = (5, 1);
    /// `ID_AA64DFR2_EL1`.
    AA64DFR2 = (5, 2);
    /// `ID_AA64AFR0_EL1`.
    AA64AFR0 = (5, 4);
    /// `ID_AA64AFR1_EL1`.
    AA64AFR1 = (5, 5);
    /// `ID_AA64ISAR0_EL1`.
    AA64ISAR0 = (6, 0);
    /// `ID_AA64ISAR1_EL1`.
    AA64ISAR1 = (6, 1);
    /// `ID_AA64ISAR2_EL1`.
    AA64ISAR2 = (6, 2);
    /// `ID_AA64ISAR3_EL1`.
    AA64ISAR3 = (6, 3);
    /// `ID_AA64MMFR0_EL1`.
    AA64MMFR0 = (7, 0);
    /// `ID_AA64MMFR1_EL1`.
    AA64MMFR1 = (7, 1);
    /// `ID_AA64MMFR2_EL1`.
    AA64MMFR2 = (7, 2);
    /// `ID_AA64MMFR3_EL1`.
    AA64MMFR3 = (7, 3);
    /// `ID_AA64MMFR4_EL1`.
    AA64MMFR4 = (7, 4);
}

impl IdReg {
    /// The register at `crm`, `op2`.
    pub const fn new(crm: u8, op2: u8) -> Self {
        Self { crm, op2 }
    }

    /// The ISS encoding a trapped MRS of this register reports (Rt and direction 0).
    pub const fn encoding(self) -> u64 {
        esr::sysreg(3, 0, 0, self.crm as u64, self.op2 as u64)
    }

    /// The slot of this register in [`IdRegs`], if it is in CRm 1..=7.
    pub const fn slot(self) -> Option<usize> {
        if self.crm >= 1 && self.crm <= 7 && self.op2 <= 7 {
            Some((self.crm as usize - 1) * 8 + self.op2 as usize)
        } else {
            None
        }
    }
}

/// The CPU's ID registers as the firmware read them at boot (at EL2, unsanitised).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRegs {
    /// `MIDR_EL1`.
    pub midr: u64,
    /// `REVIDR_EL1`.
    pub revidr: u64,
    regs: [u64; ID_SLOTS],
}

impl Default for IdRegs {
    fn default() -> Self {
        Self::ZERO
    }
}

impl IdRegs {
    /// All registers zero.
    pub const ZERO: Self = Self {
        midr: 0,
        revidr: 0,
        regs: [0; ID_SLOTS],
    };

    /// The value of `reg` (0 outside CRm 1..=7).
    pub const fn get(&self, reg: IdReg) -> u64 {
        match reg.slot() {
            Some(i) => self.regs[i],
            None => 0,
        }
    }

    /// Sets `reg` (ignored outside CRm 1..=7).
    pub fn set(&mut self, reg: IdReg, value: u64) {
        if let Some(i) = reg.slot() {
            self.regs[i] = value;
        }
    }

    /// Returns a copy with `reg` set to `value`.
    #[must_use]
    pub fn with(mut self, reg: IdReg, value: u64) -> Self {
        self.set(reg, value);
        self
    }

    /// Returns a copy with the `width`-bit field at `shift` of `reg` set to `value`.
    #[must_use]
    pub fn with_field(self, reg: IdReg, shift: u32, width: u32, value: u64) -> Self {
        let mask = field_mask(shift, width);
        let v = (self.get(reg) & !mask) | ((value << shift) & mask);
        self.with(reg, v)
    }
}

/// What of a realm's parameters its CPU view depends on (copied from the RD into each REC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RealmCpu {
    /// The realm was created with SVE.
    pub sve: bool,
    /// The realm was created with a PMU.
    pub pmu: bool,
    /// Breakpoints minus one (`RmiRealmParams.num_bps`).
    pub num_bps: u8,
    /// Watchpoints minus one (`RmiRealmParams.num_wps`).
    pub num_wps: u8,
}

/// EL2 settings that hide from realms the features [`realm_view`] does not show, for the
/// firmware to apply while a realm runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RealmTraps {
    /// `HCR_EL2` bits to add: TID3 always; TLOR with FEAT_LOR; TERR with FEAT_RAS.
    pub hcr: u64,
    /// The whole `MDCR_EL2`: TPM, TPMCR (PMU), TDA, TDOSA (debug registers); TPMS with SPE,
    /// TTRF with FEAT_TRF; HPMN, E2PB and E2TB 0 (counters, profiling and trace buffers
    /// stay EL2's, their EL1 registers trapped).
    pub mdcr: u64,
    /// `CPTR_EL2` (E2H = 0 layout) bits to add: TTA always (trace registers); TAM with AMU.
    pub cptr: u64,
    /// `HCRX_EL2` of the Realm world when the CPU has FEAT_HCX: MSCEn with FEAT_MOPS, all
    /// enables of hidden features (TCR2En, SCTLR2En, EnALS, EnAS0, EnASR, ...) 0.
    pub hcrx: Option<u64>,
}

/// `HCR_EL2` bits.
pub mod hcr {
    /// TID3: trap ID group 3 reads.
    pub const TID3: u64 = 1 << 18;
    /// TLOR: trap LOR registers.
    pub const TLOR: u64 = 1 << 35;
    /// TERR: trap RAS error record registers.
    pub const TERR: u64 = 1 << 36;
}

/// `MDCR_EL2` bits.
pub mod mdcr {
    /// TPMCR: trap PMCR_EL0.
    pub const TPMCR: u64 = 1 << 5;
    /// TPM: trap PMU registers.
    pub const TPM: u64 = 1 << 6;
    /// TDA: trap debug registers.
    pub const TDA: u64 = 1 << 9;
    /// TDOSA: trap the OS lock and power-down registers.
    pub const TDOSA: u64 = 1 << 10;
    /// TPMS: trap SPE sampling control registers.
    pub const TPMS: u64 = 1 << 14;
    /// TTRF: trap TRFCR_EL1.
    pub const TTRF: u64 = 1 << 19;
}

/// `CPTR_EL2` bits (E2H = 0).
pub mod cptr {
    /// TTA: trap trace registers.
    pub const TTA: u64 = 1 << 20;
    /// TAM: trap AMU registers.
    pub const TAM: u64 = 1 << 30;
}

/// `HCRX_EL2` bits.
pub mod hcrx {
    /// MSCEn: FEAT_MOPS instructions enabled at EL1 and EL0.
    pub const MSCEN: u64 = 1 << 11;
}

/// The mask of a `width`-bit field at `shift`.
const fn field_mask(shift: u32, width: u32) -> u64 {
    if width >= 64 {
        u64::MAX
    } else {
        ((1u64 << width) - 1) << shift
    }
}

/// The 4-bit field at `shift` of `v`.
const fn nibble(v: u64, shift: u32) -> u64 {
    (v >> shift) & 0xF
}

/// The mask of the 4-bit fields at `shifts`.
const fn nibbles(shifts: &[u32]) -> u64 {
    let mut m = 0;
    let mut i = 0;
    while i < shifts.len() {
        m |= 0xF << shifts[i];
        i += 1;
    }
    m
}

/// The 4-bit field at `shift` of `v`, at most `max`, in place.
const fn capped(v: u64, shift: u32, max: u64) -> u64 {
    let f = nibble(v, shift);
    (if f > max { max } else { f }) << shift
}

/// Low 32 bits: the AArch32 ID registers are 32-bit.
const LOW32: u64 = 0xFFFF_FFFF;

// ID_AA64PFR0_EL1.
const PFR0_EL0: u32 = 0;
const PFR0_RAS: u32 = 28;
const PFR0_SVE: u32 = 32;
const PFR0_AMU: u32 = 44;
const PFR0_CSV2: u32 = 56;
/// EL0..EL3, FP, AdvSIMD, GIC, RAS, SEL2, DIT, RME, CSV3.
const PFR0_SHOWN: u64 = nibbles(&[0, 4, 8, 12, 16, 20, 24, 28, 36, 48, 52, 60]);

// ID_AA64PFR1_EL1.
const PFR1_CSV2_FRAC: u32 = 32;
/// BT, SSBS, RAS_frac, RNDR_trap.
const PFR1_SHOWN: u64 = nibbles(&[0, 4, 12, 28]);

// ID_AA64DFR0_EL1.
const DFR0_BRPS: u32 = 12;
const DFR0_WRPS: u32 = 20;
const DFR0_CTX_CMPS: u32 = 28;
const DFR0_PMSVER: u32 = 32;
const DFR0_TRACEFILT: u32 = 40;
/// DebugVer, DoubleLock.
const DFR0_SHOWN: u64 = nibbles(&[0, 36]);
/// PMUVer, PMSS, SEBEP, MTPMU, HPMN0.
const DFR0_PMU: u64 = nibbles(&[8, 16, 24, 48, 60]);

// ID_AA64DFR1_EL1 (8-bit count fields).
const DFR1_BRPS: u32 = 8;
const DFR1_WRPS: u32 = 16;
const DFR1_CTX_CMPS: u32 = 24;
/// PMICNTR, EBEP, DPFZS.
const DFR1_PMU: u64 = nibbles(&[36, 48, 52]);

/// ID_AA64ISAR0_EL1: everything but TME (24).
const ISAR0_SHOWN: u64 = nibbles(&[4, 8, 12, 16, 20, 28, 32, 36, 40, 44, 48, 52, 56, 60]);
/// ID_AA64ISAR1_EL1: everything but LS64 (60).
const ISAR1_SHOWN: u64 = nibbles(&[0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56]);
/// ID_AA64ISAR2_EL1 bit 16: MOPS.
const ISAR2_MOPS: u32 = 16;
/// ID_AA64ISAR2_EL1: everything but MOPS (shown on its own rule), SYSREG_128 and
/// SYSINSTR_128.
const ISAR2_SHOWN: u64 = nibbles(&[0, 4, 8, 12, 20, 24, 28, 40, 44, 48, 52, 56, 60]);
/// ID_AA64ISAR3_EL1: everything but CPA (0).
const ISAR3_SHOWN: u64 = nibbles(&[4, 8, 12, 16, 20, 24, 28]);

/// ID_AA64MMFR0_EL1: every field (48..55 are RES0).
const MMFR0_SHOWN: u64 = nibbles(&[0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 56, 60]);
// ID_AA64MMFR1_EL1.
const MMFR1_HAFDBS: u32 = 0;
const MMFR1_LO: u32 = 16;
const MMFR1_HCX: u32 = 40;
/// Everything but HAFDBS (capped on its own) and LO.
const MMFR1_SHOWN: u64 = nibbles(&[4, 8, 12, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60]);
/// ID_AA64MMFR2_EL1: every field (44..47 are RES0).
const MMFR2_SHOWN: u64 = nibbles(&[0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 48, 52, 56, 60]);
/// ID_AA64MMFR3_EL1: MEC and Spec_FPACC only.
const MMFR3_SHOWN: u64 = nibbles(&[28, 60]);
/// ID_AA64MMFR4_EL1: everything but ASID2 (8).
const MMFR4_SHOWN: u64 = nibbles(&[4, 12, 16, 20, 24, 28, 36]);

// ID_PFR0_EL1.
const AA32_PFR0_CSV2: u32 = 16;
/// State0..3, DIT, RAS (not AMU, CSV2 on its own).
const AA32_PFR0_SHOWN: u64 = nibbles(&[0, 4, 8, 12, 24, 28]);
/// ID_DFR0_EL1: CopDbg, CopSDbg, MMapDbg, MProfDbg.
const AA32_DFR0_SHOWN: u64 = nibbles(&[0, 4, 8, 20]);
/// ID_DFR0_EL1.PerfMon.
const AA32_DFR0_PMU: u64 = nibbles(&[24]);
/// ID_DFR1_EL1: MTPMU, HPMN0.
const AA32_DFR1_PMU: u64 = nibbles(&[0, 4]);

/// A debug count (minus one) as the CPU reports it: `ID_AA64DFR0`'s 4-bit field, or
/// `ID_AA64DFR1`'s 8-bit field when the first reads 15 and the second is not 0
/// (FEAT_Debugv8p9).
const fn debug_count(dfr0_field: u64, dfr1_field: u64) -> u64 {
    if dfr0_field == 15 && dfr1_field != 0 {
        dfr1_field
    } else {
        dfr0_field
    }
}

/// The realm's debug count fields: `count` (minus one) in DFR0's 4-bit field (15 when
/// larger) and, when the CPU reports the count in DFR1, in DFR1's 8-bit field too.
fn put_count(dfr0: &mut u64, dfr1: &mut u64, count: u64, s0: u32, s1: u32, cpu_dfr1: u64) {
    *dfr0 |= count.min(15) << s0;
    if (cpu_dfr1 >> s1) & 0xFF != 0 {
        *dfr1 |= (count & 0xFF) << s1;
    }
}

/// `ID_AA64DFR0_EL1` and `ID_AA64DFR1_EL1` for `realm`.
fn debug_view(hw: &IdRegs, realm: &RealmCpu) -> (u64, u64) {
    let (d0, d1) = (hw.get(IdReg::AA64DFR0), hw.get(IdReg::AA64DFR1));
    let hw_count = |s0: u32, s1: u32| debug_count(nibble(d0, s0), (d1 >> s1) & 0xFF);
    let bps = u64::from(realm.num_bps).min(hw_count(DFR0_BRPS, DFR1_BRPS));
    let wps = u64::from(realm.num_wps).min(hw_count(DFR0_WRPS, DFR1_WRPS));
    let ctx = hw_count(DFR0_CTX_CMPS, DFR1_CTX_CMPS).min(bps);
    let mut v0 = d0 & DFR0_SHOWN;
    let mut v1 = 0;
    if realm.pmu {
        v0 |= d0 & DFR0_PMU;
        v1 |= d1 & DFR1_PMU;
    }
    put_count(&mut v0, &mut v1, bps, DFR0_BRPS, DFR1_BRPS, d1);
    put_count(&mut v0, &mut v1, wps, DFR0_WRPS, DFR1_WRPS, d1);
    put_count(&mut v0, &mut v1, ctx, DFR0_CTX_CMPS, DFR1_CTX_CMPS, d1);
    (v0, v1)
}

/// True when the realm's EL0 may run AArch32 (`ID_AA64PFR0_EL1.EL0` = 2).
fn aarch32_el0(hw: &IdRegs) -> bool {
    nibble(hw.get(IdReg::AA64PFR0), PFR0_EL0) >= 2
}

/// What a realm with parameters `realm` reads from the ID register `crm`, `op2` (op0 3,
/// op1 0, CRn 0) on a CPU whose registers are `hw`; `vmpidr` is the REC's `VMPIDR_EL2`.
/// See the module documentation for the rules. Any encoding not described there reads 0.
pub fn realm_view(hw: &IdRegs, realm: &RealmCpu, crm: u8, op2: u8, vmpidr: u64) -> u64 {
    let reg = IdReg::new(crm, op2);
    let v = hw.get(reg);
    match reg {
        IdReg { crm: 0, op2: 0 } => hw.midr,
        IdReg { crm: 0, op2: 5 } => vmpidr,
        IdReg { crm: 0, op2: 6 } => hw.revidr,
        IdReg::AA64PFR0 => {
            let mut r = (v & PFR0_SHOWN) | capped(v, PFR0_CSV2, 1);
            if realm.sve {
                r |= v & (0xF << PFR0_SVE);
            }
            r
        }
        IdReg::AA64PFR1 => (v & PFR1_SHOWN) | capped(v, PFR1_CSV2_FRAC, 1),
        IdReg::AA64ZFR0 if realm.sve => v,
        IdReg::AA64DFR0 => debug_view(hw, realm).0,
        IdReg::AA64DFR1 => debug_view(hw, realm).1,
        IdReg::AA64ISAR0 => v & ISAR0_SHOWN,
        IdReg::AA64ISAR1 => v & ISAR1_SHOWN,
        IdReg::AA64ISAR2 => {
            let mut r = v & ISAR2_SHOWN;
            if nibble(hw.get(IdReg::AA64MMFR1), MMFR1_HCX) != 0 {
                r |= v & (0xF << ISAR2_MOPS);
            }
            r
        }
        IdReg::AA64ISAR3 => v & ISAR3_SHOWN,
        IdReg::AA64MMFR0 => v & MMFR0_SHOWN,
        IdReg::AA64MMFR1 => (v & MMFR1_SHOWN) | capped(v, MMFR1_HAFDBS, 2),
        IdReg::AA64MMFR2 => v & MMFR2_SHOWN,
        IdReg::AA64MMFR3 => v & MMFR3_SHOWN,
        IdReg::AA64MMFR4 => v & MMFR4_SHOWN,
        _ if (1..=3).contains(&crm) && aarch32_el0(hw) => aarch32_view(reg, v, realm),
        _ => 0,
    }
}

/// The AArch32 ID registers (CRm 1..=3) for a realm whose EL0 can use AArch32.
fn aarch32_view(reg: IdReg, v: u64, realm: &RealmCpu) -> u64 {
    let pmu = |mask: u64| if realm.pmu { v & mask } else { 0 };
    match reg {
        IdReg::ID_PFR0 => (v & AA32_PFR0_SHOWN) | capped(v, AA32_PFR0_CSV2, 1),
        IdReg::ID_DFR0 => (v & AA32_DFR0_SHOWN) | pmu(AA32_DFR0_PMU),
        IdReg::ID_DFR1 => pmu(AA32_DFR1_PMU),
        IdReg::ID_PFR1
        | IdReg::ID_MMFR0
        | IdReg::ID_MMFR1
        | IdReg::ID_MMFR2
        | IdReg::ID_MMFR3
        | IdReg::ID_ISAR0
        | IdReg::ID_ISAR1
        | IdReg::ID_ISAR2
        | IdReg::ID_ISAR3
        | IdReg::ID_ISAR4
        | IdReg::ID_ISAR5
        | IdReg::ID_MMFR4
        | IdReg::ID_ISAR6
        | IdReg::MVFR0
        | IdReg::MVFR1
        | IdReg::MVFR2
        | IdReg::ID_PFR2
        | IdReg::ID_MMFR5 => v & LOW32,
        _ => 0,
    }
}

impl RealmTraps {
    /// The settings that do not depend on the CPU's features.
    pub const BASE: Self = Self {
        hcr: hcr::TID3,
        mdcr: mdcr::TPM | mdcr::TPMCR | mdcr::TDA | mdcr::TDOSA,
        cptr: cptr::TTA,
        hcrx: None,
    };

    /// The settings for a CPU whose ID registers are `hw`. Trap bits that the architecture
    /// defines only with a feature (RES0 otherwise) are set only when the CPU has it.
    pub fn for_cpu(hw: &IdRegs) -> Self {
        let pfr0 = hw.get(IdReg::AA64PFR0);
        let dfr0 = hw.get(IdReg::AA64DFR0);
        let mmfr1 = hw.get(IdReg::AA64MMFR1);
        let mut t = Self::BASE;
        if nibble(mmfr1, MMFR1_LO) != 0 {
            t.hcr |= hcr::TLOR;
        }
        if nibble(pfr0, PFR0_RAS) != 0 {
            t.hcr |= hcr::TERR;
        }
        if nibble(dfr0, DFR0_PMSVER) != 0 {
            t.mdcr |= mdcr::TPMS;
        }
        if nibble(dfr0, DFR0_TRACEFILT) != 0 {
            t.mdcr |= mdcr::TTRF;
        }
        if nibble(pfr0, PFR0_AMU) != 0 {
            t.cptr |= cptr::TAM;
        }
        if nibble(mmfr1, MMFR1_HCX) != 0 {
            let mops = nibble(hw.get(IdReg::AA64ISAR2), ISAR2_MOPS) != 0;
            t.hcrx = Some(if mops { hcrx::MSCEN } else { 0 });
        }
        t
    }
}
