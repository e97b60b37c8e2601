//! Exception syndromes: the `ESR_EL2`, `HPFAR_EL2` and `SPSR_EL2` fields the RMM decodes when a
//! realm exits, the masks TF-RMM applies before it shows a syndrome to the host, and the pure
//! helpers of MMIO emulation and exception injection (TF-RMM `lib/arch/include/esr.h`,
//! `arch.h` and `runtime/core/inject_exp.c`).

/// `ESR_ELx.EC`, bits [31:26].
pub const EC_SHIFT: u32 = 26;
/// Mask of `ESR_ELx.EC`.
pub const EC_MASK: u64 = 0x3F << EC_SHIFT;
/// `ESR_ELx.IL`: a 32-bit instruction trapped.
pub const IL: u64 = 1 << 25;

/// Exception classes the RMM handles.
pub mod ec {
    /// Unknown reason (used for an injected UNDEF).
    pub const UNKNOWN: u64 = 0x00;
    /// WFI or WFE trapped (HCR_EL2.TWI/TWE).
    pub const WFX: u64 = 0x01;
    /// FP/SIMD access trapped.
    pub const FPU: u64 = 0x07;
    /// HVC executed in AArch64 state.
    pub const HVC: u64 = 0x16;
    /// SMC trapped (HCR_EL2.TSC): the preferred return address is the SMC itself.
    pub const SMC: u64 = 0x17;
    /// MSR, MRS or system instruction trapped.
    pub const SYSREG: u64 = 0x18;
    /// SVE access trapped.
    pub const SVE: u64 = 0x19;
    /// SME access trapped.
    pub const SME: u64 = 0x1D;
    /// Instruction abort from a lower exception level.
    pub const IABT_LOW: u64 = 0x20;
    /// Data abort from a lower exception level.
    pub const DABT_LOW: u64 = 0x24;
    /// SError.
    pub const SERROR: u64 = 0x2F;
}

/// The exception class of `esr`.
pub const fn class(esr: u64) -> u64 {
    (esr & EC_MASK) >> EC_SHIFT
}

/// Abort ISS: the instruction syndrome is valid (SAS, SSE, SRT, SF, AR are meaningful).
pub const ISV: u64 = 1 << 24;
/// Abort ISS: syndrome access size, bits [23:22].
pub const SAS_SHIFT: u32 = 22;
/// Mask of SAS.
pub const SAS_MASK: u64 = 0x3 << SAS_SHIFT;
/// Abort ISS: the load sign-extends.
pub const SSE: u64 = 1 << 21;
/// Abort ISS: syndrome register transfer (Rt), bits [20:16].
pub const SRT_SHIFT: u32 = 16;
/// Mask of SRT.
pub const SRT_MASK: u64 = 0x1F << SRT_SHIFT;
/// Abort ISS: the register is 64 bits wide.
pub const SF: u64 = 1 << 15;
/// Abort ISS: synchronous error type, bits [12:11].
pub const SET_SHIFT: u32 = 11;
/// Mask of SET.
pub const SET_MASK: u64 = 0x3 << SET_SHIFT;
/// SET: recoverable error (UER).
pub const SET_UER: u64 = 0;
/// SET: uncontainable error (UC).
pub const SET_UC: u64 = 2;
/// SET: restartable error (UEO).
pub const SET_UEO: u64 = 3;
/// Abort ISS: FAR not valid.
pub const FNV: u64 = 1 << 10;
/// Abort ISS: external abort.
pub const EA: u64 = 1 << 9;
/// Abort ISS: stage 2 fault on a stage 1 walk.
pub const S1PTW: u64 = 1 << 7;
/// Abort ISS: write, not read.
pub const WNR: u64 = 1 << 6;
/// Abort ISS: fault status code, bits [5:0].
pub const FSC_MASK: u64 = 0x3F;
/// FSC: translation fault at level 0 (levels 1..3 follow).
pub const FSC_TRANSLATION_L0: u64 = 0x04;
/// FSC: translation fault at level -1 (LPA2).
pub const FSC_TRANSLATION_LM1: u64 = 0x2B;
/// FSC: synchronous external abort, not on a walk.
pub const FSC_SEA: u64 = 0x10;

/// The syndrome fields the host sees for an abort it cannot emulate (TF-RMM
/// `ESR_NONEMULATED_ABORT_MASK`).
pub const NONEMULATED_ABORT_MASK: u64 = EC_MASK | SET_MASK | FNV | EA | FSC_MASK;
/// The syndrome fields the host sees for an emulatable MMIO access (TF-RMM
/// `ESR_EMULATED_ABORT_MASK`): SSE, SRT and AR stay hidden, the RMM applies them itself.
pub const EMULATED_ABORT_MASK: u64 = NONEMULATED_ABORT_MASK | ISV | SAS_MASK | SF | WNR;

/// WFx ISS: TI bit 0 (0 = WFI, 1 = WFE); TF-RMM passes only this bit of TI.
pub const WFX_TI: u64 = 1 << 0;

/// SError ISS: implementation-defined syndrome.
pub const SERROR_IDS: u64 = 1 << 24;
/// SError ISS: asynchronous error type, bits [12:10].
pub const SERROR_AET_SHIFT: u32 = 10;
/// Mask of AET.
pub const SERROR_AET_MASK: u64 = 0x7 << SERROR_AET_SHIFT;
/// AET: uncontainable.
pub const AET_UC: u64 = 0;
/// AET: unrecoverable.
pub const AET_UEU: u64 = 1;
/// AET: restartable.
pub const AET_UEO: u64 = 2;
/// AET: recoverable.
pub const AET_UER: u64 = 3;
/// AET: corrected.
pub const AET_CE: u64 = 6;
/// SError ISS: data fault status code, bits [5:0].
pub const SERROR_DFSC_MASK: u64 = 0x3F;
/// DFSC: asynchronous SError interrupt.
pub const SERROR_DFSC_ASYNC: u64 = 0x11;
/// The SError syndrome fields the host sees (TF-RMM `ESR_SERROR_MASK`).
pub const SERROR_MASK: u64 = SERROR_IDS | SERROR_AET_MASK | EA | EC_MASK | SERROR_DFSC_MASK;

/// Sysreg trap ISS: direction, 1 = read (MRS).
pub const SYSREG_READ: u64 = 1 << 0;
/// Sysreg trap ISS: Rt, bits [9:5].
pub const SYSREG_RT_SHIFT: u32 = 5;
/// Mask of Rt.
pub const SYSREG_RT_MASK: u64 = 0x1F << SYSREG_RT_SHIFT;

/// The ISS encoding of a system register as a trapped MSR/MRS reports it.
pub const fn sysreg(op0: u64, op1: u64, crn: u64, crm: u64, op2: u64) -> u64 {
    (op0 << 20) | (op2 << 17) | (op1 << 14) | (crn << 10) | (crm << 1)
}

/// The CRm of a sysreg trap ISS (bits [4:1]).
pub const fn sysreg_crm(esr: u64) -> u8 {
    ((esr >> 1) & 0xF) as u8
}

/// The op2 of a sysreg trap ISS (bits [19:17]).
pub const fn sysreg_op2(esr: u64) -> u8 {
    ((esr >> 17) & 0x7) as u8
}

/// The Rt of a sysreg trap ISS (31 = XZR).
pub const fn sysreg_rt(esr: u64) -> usize {
    ((esr & SYSREG_RT_MASK) >> SYSREG_RT_SHIFT) as usize
}

/// All the register-encoding fields of a sysreg trap ISS.
pub const SYSREG_MASK: u64 = sysreg(3, 7, 15, 15, 7);
/// The ID register group (op0 3, op1 0, CRn 0): emulated by the RMM.
pub const SYSREG_ID_MASK: u64 = sysreg(3, 7, 15, 0, 0);
/// Value of [`SYSREG_ID_MASK`] for the ID group.
pub const SYSREG_ID: u64 = sysreg(3, 0, 0, 0, 0);
/// The GIC CPU interface registers `ICC_IAR0_EL1`..`ICC_IGRPEN1_EL1`: the host emulates them.
pub const SYSREG_ICC_EL1_MASK: u64 = sysreg(3, 3, 15, 8, 0);
/// Value of [`SYSREG_ICC_EL1_MASK`] for the GIC group.
pub const SYSREG_ICC_EL1: u64 = sysreg(3, 0, 12, 8, 0);
/// `ICC_PMR_EL1`: the host emulates it.
pub const SYSREG_ICC_PMR_EL1: u64 = sysreg(3, 0, 4, 6, 0);
/// The BRBE registers: UNDEFINED in a realm.
pub const SYSREG_BRBE_MASK: u64 = sysreg(2, 7, 14, 0, 0);
/// Value of [`SYSREG_BRBE_MASK`] for BRBE.
pub const SYSREG_BRBE: u64 = sysreg(2, 1, 8, 0, 0);
/// The MPAM registers: UNDEFINED in a realm.
pub const SYSREG_MPAM_MASK: u64 = sysreg(3, 7, 15, 14, 0);
/// Value of [`SYSREG_MPAM_MASK`] for MPAM.
pub const SYSREG_MPAM: u64 = sysreg(3, 0, 10, 4, 0);
/// `S2POR_EL1`: UNDEFINED in a realm.
pub const SYSREG_S2POR_EL1: u64 = sysreg(3, 0, 10, 2, 5);

/// `HPFAR_EL2.FIPA`, bits [47:4] (IPA bits [51:12]; bits [47:44] are RES0 without LPA2).
pub const HPFAR_FIPA_MASK: u64 = ((1 << 44) - 1) << 4;

/// The faulting IPA (page aligned) that `hpfar` names.
pub const fn hpfar_ipa(hpfar: u64) -> u64 {
    (hpfar & HPFAR_FIPA_MASK) << 8
}

/// `SPSR_EL2.M[3:0]`.
pub const SPSR_MODE_MASK: u64 = 0xF;
/// Mode EL0t.
pub const SPSR_MODE_EL0T: u64 = 0x0;
/// Mode EL1t.
pub const SPSR_MODE_EL1T: u64 = 0x4;
/// Mode EL1h.
pub const SPSR_MODE_EL1H: u64 = 0x5;
/// `SPSR_EL2.M[4]`: the exception came from AArch32.
pub const SPSR_NRW: u64 = 1 << 4;
/// `SPSR_EL2.{D,A,I,F}`.
pub const SPSR_DAIF: u64 = 0xF << 6;

/// The register a data abort with ISV transfers (31 = XZR).
pub const fn srt(esr: u64) -> usize {
    ((esr & SRT_MASK) >> SRT_SHIFT) as usize
}

/// True when the abort is a write.
pub const fn is_write(esr: u64) -> bool {
    esr & WNR != 0
}

/// The access size in bytes of a data abort with ISV.
pub const fn access_len(esr: u64) -> u32 {
    1 << ((esr & SAS_MASK) >> SAS_SHIFT)
}

/// The mask of an access of [`access_len`] bytes.
pub const fn access_mask(esr: u64) -> u64 {
    match access_len(esr) {
        8 => u64::MAX,
        n => (1u64 << (n * 8)) - 1,
    }
}

/// The value an emulated MMIO load puts in its register: `value` truncated to the access
/// size, sign-extended if SSE is set, then truncated to 32 bits unless SF is set (TF-RMM
/// `complete_mmio_emulation`).
pub const fn mmio_load_value(esr: u64, value: u64) -> u64 {
    let mut v = value & access_mask(esr);
    if esr & SSE != 0 {
        let top = 1u64 << (access_len(esr) * 8 - 1);
        v = (v ^ top).wrapping_sub(top);
        if esr & SF == 0 {
            v &= 0xFFFF_FFFF;
        }
    }
    v
}

/// True when the fault status code is a synchronous external abort (on a walk or not).
pub const fn fsc_is_external_abort(fsc: u64) -> bool {
    fsc == FSC_SEA || (fsc >= 0x13 && fsc <= 0x17)
}

/// True when the fault status code is a permission fault (any level).
pub const fn fsc_is_permission_fault(fsc: u64) -> bool {
    fsc >= 0x0C && fsc <= 0x0F
}

/// The FSC of a translation fault at `level` (-1..=3).
pub const fn translation_fault_fsc(level: i8) -> u64 {
    if level < 0 {
        FSC_TRANSLATION_LM1
    } else {
        FSC_TRANSLATION_L0 + level as u64
    }
}

/// `ESR_EL1` for a synchronous external abort injected into the realm after the instruction
/// or data abort `esr_el2`, taken with `spsr_el2` (TF-RMM `calc_esr_idabort`): the syndrome
/// is kept except EC (lower or current EL variant), FSC (`fsc`), FnV and S1PTW; EA is set.
pub const fn esr_el1_for_abort(esr_el2: u64, spsr_el2: u64, fsc: u64) -> u64 {
    let mut esr = esr_el2 & !(EC_MASK | FSC_MASK | FNV | S1PTW);
    let mut ecv = esr_el2 & EC_MASK;
    if spsr_el2 & SPSR_MODE_MASK != SPSR_MODE_EL0T {
        // From EL1: the "current EL" class, one above the "lower EL" one.
        ecv += 1 << EC_SHIFT;
    }
    esr |= ecv | (fsc & FSC_MASK) | EA;
    esr
}

/// `ESR_EL1` of an injected UNDEF (EC unknown, IL set).
pub const ESR_EL1_UNDEF: u64 = IL | (ec::UNKNOWN << EC_SHIFT);

#[cfg(test)]
mod tests {
    use super::*;

    fn dabt(sas: u64, sse: bool, sf: bool, rt: u64, write: bool) -> u64 {
        (ec::DABT_LOW << EC_SHIFT)
            | IL
            | ISV
            | (sas << SAS_SHIFT)
            | if sse { SSE } else { 0 }
            | (rt << SRT_SHIFT)
            | if sf { SF } else { 0 }
            | if write { WNR } else { 0 }
            | 0x07
    }

    #[test]
    fn mmio_sign_extension() {
        // Byte loads.
        assert_eq!(
            mmio_load_value(dabt(0, false, false, 1, false), 0x1_80),
            0x80
        );
        assert_eq!(
            mmio_load_value(dabt(0, true, false, 1, false), 0x80),
            0xFFFF_FF80,
            "LDRSB Wt"
        );
        assert_eq!(
            mmio_load_value(dabt(0, true, true, 1, false), 0x80),
            0xFFFF_FFFF_FFFF_FF80,
            "LDRSB Xt"
        );
        assert_eq!(mmio_load_value(dabt(0, true, true, 1, false), 0x7F), 0x7F);
        // Halfwords and words.
        assert_eq!(
            mmio_load_value(dabt(1, true, true, 1, false), 0xAAAA_8001),
            0xFFFF_FFFF_FFFF_8001
        );
        assert_eq!(
            mmio_load_value(dabt(1, false, true, 1, false), 0xAAAA_8001),
            0x8001
        );
        assert_eq!(
            mmio_load_value(dabt(2, true, true, 1, false), 0x1_8000_0000),
            0xFFFF_FFFF_8000_0000,
            "LDRSW"
        );
        assert_eq!(
            mmio_load_value(dabt(2, false, false, 1, false), u64::MAX),
            0xFFFF_FFFF
        );
        // Doublewords: nothing to extend.
        assert_eq!(
            mmio_load_value(dabt(3, false, true, 1, false), u64::MAX),
            u64::MAX
        );
        assert_eq!(access_mask(dabt(3, false, true, 0, false)), u64::MAX);
        assert_eq!(access_len(dabt(2, false, true, 0, false)), 4);
    }

    #[test]
    fn field_extraction() {
        let e = dabt(2, false, true, 17, true);
        assert_eq!(class(e), ec::DABT_LOW);
        assert_eq!(srt(e), 17);
        assert!(is_write(e));
        assert_eq!(e & EMULATED_ABORT_MASK & (SRT_MASK | SSE), 0);
        assert_eq!(hpfar_ipa(0xF), 0, "bits [3:0] are not FIPA");
        assert_eq!(hpfar_ipa((0x1234_5000u64 >> 12) << 4), 0x1234_5000);
        assert_eq!(translation_fault_fsc(3), 0x07);
        assert_eq!(translation_fault_fsc(-1), 0x2B);
        assert!(fsc_is_external_abort(0x10) && fsc_is_external_abort(0x17));
        assert!(!fsc_is_external_abort(0x11) && !fsc_is_external_abort(0x18));
        assert!(fsc_is_permission_fault(0x0F) && !fsc_is_permission_fault(0x07));
        assert_eq!(
            sysreg(3, 0, 12, 11, 5),
            0x30_0000 | (5 << 17) | (12 << 10) | (11 << 1)
        );
        let id = sysreg(3, 0, 0, 7, 4) | (17 << SYSREG_RT_SHIFT) | SYSREG_READ;
        assert_eq!((sysreg_crm(id), sysreg_op2(id), sysreg_rt(id)), (7, 4, 17));
        assert_eq!(id & SYSREG_ID_MASK, SYSREG_ID);
        let e = sysreg(3, 7, 15, 15, 7) | SYSREG_RT_MASK;
        assert_eq!((sysreg_crm(e), sysreg_op2(e), sysreg_rt(e)), (15, 7, 31));
    }

    #[test]
    fn injected_abort_syndrome() {
        let e = dabt(2, false, true, 3, false) | FNV | S1PTW;
        let el1 = esr_el1_for_abort(e, SPSR_MODE_EL1H, FSC_SEA);
        assert_eq!(class(el1), 0x25, "current-EL data abort");
        assert_eq!(el1 & FSC_MASK, FSC_SEA);
        assert_eq!(el1 & (FNV | S1PTW), 0);
        assert_ne!(el1 & EA, 0);
        assert_eq!(el1 & (ISV | SF | IL), ISV | SF | IL, "the rest is kept");
        let el0 = esr_el1_for_abort(e, SPSR_MODE_EL0T, FSC_SEA);
        assert_eq!(class(el0), ec::DABT_LOW);
        let iabt = esr_el1_for_abort((ec::IABT_LOW << EC_SHIFT) | 0x06, 0x3C5, FSC_SEA);
        assert_eq!(class(iabt), 0x21);
        assert_eq!(ESR_EL1_UNDEF, 1 << 25);
    }
}
