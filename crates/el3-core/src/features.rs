//! `SMCCC_ARCH_FEATURE_AVAILABILITY`: which features EL3 enabled for the caller's world,
//! reported as bitmasks over SCR_EL3, CPTR_EL3 and MDCR_EL3 with TF-A's conventions: only
//! feature-enable bits are reported, and trap bits (active low) are inverted so that a set bit
//! always means "enabled, not trapped". TF-RMM uses this to learn what it may use.

/// Opcode (op0:op1:CRn:CRm:op2 as TF-A encodes it) naming SCR_EL3.
pub const SCR_EL3_OPCODE: u64 = 0x1E_1100;
/// Opcode naming CPTR_EL3.
pub const CPTR_EL3_OPCODE: u64 = 0x1E_1140;
/// Opcode naming MDCR_EL3.
pub const MDCR_EL3_OPCODE: u64 = 0x1E_1320;
/// Opcode naming MPAM3_EL3.
pub const MPAM3_EL3_OPCODE: u64 = 0x1E_A500;

/// SMCCC `INVALID_PARAMETER` (-2) as a register value.
pub const SMC_INVALID_PARAM: u64 = (-2i64) as u64;

/// SCR_EL3 bits that enable a feature for the lower ELs.
const SCR_FEATS: u64 = (1 << 16) // APK
    | (1 << 25) // EnSCXT
    | (1 << 26) // ATA
    | (1 << 27) // FGTEn
    | (1 << 28) // ECVEn
    | (1 << 38) // HXEn
    | (1 << 39) // GCSEn
    | (1 << 41) // EnTP2
    | (1 << 43) // TCR2En
    | (1 << 44) // SCTLR2En
    | (1 << 45); // PIEn
/// SCR_EL3.TERR: active low (0 = error records not trapped), reported inverted with FEAT_RAS.
const SCR_TERR: u64 = 1 << 15;
/// SCR_EL3.TRNDR: reported whenever FEAT_RNG is implemented.
const SCR_TRNDR: u64 = 1 << 40;

/// CPTR_EL3.EZ (SVE) and ESM (SME): active high.
const CPTR_FEATS: u64 = (1 << 8) | (1 << 12);
/// CPTR_EL3.TFP (FP/SIMD trap): active low.
const CPTR_TFP: u64 = 1 << 10;
/// CPTR_EL3.TAM (AMU trap): active low, reported with FEAT_AMU.
const CPTR_TAM: u64 = 1 << 30;

/// MDCR_EL3 trap bits reported inverted: TPM (PMU), TDA (debug), TDOSA (OS lock).
const MDCR_FLIPPED: u64 = (1 << 6) | (1 << 9) | (1 << 10);
/// MDCR_EL3.TDCC (trap DCC), reported inverted with FEAT_FGT.
const MDCR_TDCC: u64 = 1 << 27;

/// The implementation facts the answer depends on.
#[derive(Clone, Copy, Debug, Default)]
pub struct Implemented {
    /// FEAT_RAS.
    pub ras: bool,
    /// FEAT_RNG.
    pub rng: bool,
    /// FEAT_AMUv1.
    pub amu: bool,
    /// FEAT_FGT.
    pub fgt: bool,
}

/// The EL3 register values of the caller's world.
#[derive(Clone, Copy, Debug, Default)]
pub struct WorldRegs {
    /// SCR_EL3.
    pub scr: u64,
    /// CPTR_EL3.
    pub cptr: u64,
    /// MDCR_EL3.
    pub mdcr: u64,
}

/// Answers `SMCCC_ARCH_FEATURE_AVAILABILITY(opcode)`: `Ok(bitmask)` or the SMCCC error.
pub fn availability(opcode: u64, regs: &WorldRegs, imp: &Implemented) -> Result<u64, u64> {
    match opcode {
        SCR_EL3_OPCODE => {
            let mut v = regs.scr & SCR_FEATS;
            if imp.ras && regs.scr & SCR_TERR == 0 {
                v |= SCR_TERR;
            }
            if imp.rng {
                v |= SCR_TRNDR;
            }
            Ok(v)
        }
        CPTR_EL3_OPCODE => {
            let mut v = regs.cptr & CPTR_FEATS;
            if regs.cptr & CPTR_TFP == 0 {
                v |= CPTR_TFP;
            }
            if imp.amu && regs.cptr & CPTR_TAM == 0 {
                v |= CPTR_TAM;
            }
            Ok(v)
        }
        MDCR_EL3_OPCODE => {
            let mut v = !regs.mdcr & MDCR_FLIPPED;
            if imp.fgt && regs.mdcr & MDCR_TDCC == 0 {
                v |= MDCR_TDCC;
            }
            Ok(v)
        }
        // MPAM is not enabled for the lower ELs, and other registers are not reported.
        _ => Err(SMC_INVALID_PARAM),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scr_reports_only_feature_bits() {
        let scr = 0x4000_0000_0000_0731 | (1 << 16) | (1 << 17) | (1 << 27) | (1 << 38) | (1 << 62);
        let imp = Implemented {
            ras: true,
            rng: true,
            amu: false,
            fgt: true,
        };
        let v = availability(
            SCR_EL3_OPCODE,
            &WorldRegs {
                scr,
                ..Default::default()
            },
            &imp,
        )
        .unwrap();
        assert_eq!(v, (1 << 16) | (1 << 27) | (1 << 38) | SCR_TERR | SCR_TRNDR);
        assert_eq!(v & (1 << 47), 0, "D128 is never reported as enabled");
        assert_eq!(v & (1 << 62), 0, "NSE is not a feature");
    }

    #[test]
    fn cptr_and_mdcr_invert_trap_bits() {
        let imp = Implemented {
            amu: true,
            fgt: true,
            ..Default::default()
        };
        let regs = WorldRegs {
            scr: 0,
            cptr: 1 << 8,
            mdcr: 0,
        };
        assert_eq!(
            availability(CPTR_EL3_OPCODE, &regs, &imp),
            Ok((1 << 8) | CPTR_TFP | CPTR_TAM)
        );
        assert_eq!(
            availability(MDCR_EL3_OPCODE, &regs, &imp),
            Ok(MDCR_FLIPPED | MDCR_TDCC)
        );
        let trapped = WorldRegs {
            scr: 0,
            cptr: CPTR_TFP,
            mdcr: 1 << 6,
        };
        assert_eq!(
            availability(CPTR_EL3_OPCODE, &trapped, &Implemented::default()),
            Ok(0)
        );
        assert_eq!(
            availability(MDCR_EL3_OPCODE, &trapped, &Implemented::default()),
            Ok((1 << 9) | (1 << 10))
        );
    }

    #[test]
    fn unknown_registers_are_invalid() {
        let r = WorldRegs::default();
        let imp = Implemented::default();
        assert_eq!(
            availability(MPAM3_EL3_OPCODE, &r, &imp),
            Err(SMC_INVALID_PARAM)
        );
        assert_eq!(availability(0x1234, &r, &imp), Err(SMC_INVALID_PARAM));
    }
}
