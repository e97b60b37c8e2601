//! `RMI_FEATURES`: the feature registers, computed from the CPU features the platform reads.

use cca_abi::rmi::{feat0, feat1};

use crate::dispatch::Regs;
use crate::error::RmiError;
use crate::granule::REFCOUNT_BITS;
use crate::platform::Platform;
use crate::rmm::Rmm;

/// Number of feature registers RMI 2.0 defines (indices 0..=4).
pub const NUM_FEATURE_REGISTERS: usize = 5;

/// The CPU properties that feature register 0 reports. The firmware reads them once at boot
/// (see [`CpuFeatures::from_id_regs`]); tests and the simulator fill them in directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuFeatures {
    /// Physical address width in bits: one of 32, 36, 40, 42, 44, 48, 52.
    pub pa_width: u8,
    /// Both stage 1 and stage 2 support 52-bit addresses with 4 KiB pages (FEAT_LPA2).
    pub lpa2: bool,
    /// With SVE: `Some(VQ - 1)` for the largest vector length EL3 allows (0..=15).
    pub sve_vq: Option<u8>,
    /// `ID_AA64DFR0_EL1.BRPs`: number of breakpoints minus one (15: see `dfr1_brps`).
    pub dfr0_brps: u8,
    /// `ID_AA64DFR0_EL1.WRPs`: number of watchpoints minus one (15: see `dfr1_wrps`).
    pub dfr0_wrps: u8,
    /// `ID_AA64DFR1_EL1.BRPs` (FEAT_Debugv8p9; 0 when not implemented).
    pub dfr1_brps: u8,
    /// `ID_AA64DFR1_EL1.WRPs` (FEAT_Debugv8p9; 0 when not implemented).
    pub dfr1_wrps: u8,
}

/// The PA widths `ID_AA64MMFR0_EL1.PARange` encodes, indexed by the field value.
const PARANGE_BITS: [u8; 7] = [32, 36, 40, 42, 44, 48, 52];

impl CpuFeatures {
    /// Derives the features from raw ID register values, as TF-RMM does:
    ///
    /// * PA width from `ID_AA64MMFR0_EL1.PARange`, limited to 48 bits unless stage 1 supports
    ///   4 KiB LPA2 (`TGran4` = 1); an unknown encoding means 52 bits with LPA2, else 48;
    /// * LPA2 when both stage 1 (`TGran4` = 1) and stage 2 (`TGran4_2` = 3, or 0 with
    ///   `TGran4` = 1) support it;
    /// * the breakpoint and watchpoint fields of `ID_AA64DFR0_EL1` and `ID_AA64DFR1_EL1`.
    ///
    /// `sve_vq` is `Some(VQ - 1)` of the largest SVE vector length, or `None` without SVE.
    pub const fn from_id_regs(mmfr0: u64, dfr0: u64, dfr1: u64, sve_vq: Option<u8>) -> Self {
        let parange = (mmfr0 & 0xf) as usize;
        let tgran4 = (mmfr0 >> 28) & 0xf;
        let tgran4_2 = (mmfr0 >> 40) & 0xf;
        let lpa2_s1 = tgran4 == 1;
        let lpa2_s2 = tgran4_2 == 3 || (tgran4_2 == 0 && lpa2_s1);
        let mut pa_width = if parange < PARANGE_BITS.len() {
            PARANGE_BITS[parange]
        } else if lpa2_s1 {
            52
        } else {
            48
        };
        if pa_width > 48 && !lpa2_s1 {
            pa_width = 48;
        }
        Self {
            pa_width,
            lpa2: lpa2_s1 && lpa2_s2,
            sve_vq,
            dfr0_brps: ((dfr0 >> 12) & 0xf) as u8,
            dfr0_wrps: ((dfr0 >> 20) & 0xf) as u8,
            dfr1_brps: ((dfr1 >> 8) & 0xff) as u8,
            dfr1_wrps: ((dfr1 >> 16) & 0xff) as u8,
        }
    }

    /// Checks that the values are ones a CPU can report; returns what is wrong otherwise.
    pub fn validate(&self) -> Result<(), &'static str> {
        if !PARANGE_BITS.contains(&self.pa_width) {
            return Err("PA width is not one of 32, 36, 40, 42, 44, 48, 52 bits");
        }
        if matches!(self.sve_vq, Some(vq) if vq > 15) {
            return Err("SVE VQ - 1 exceeds 15");
        }
        if self.dfr0_brps > 15 || self.dfr0_wrps > 15 {
            return Err("ID_AA64DFR0_EL1.BRPs/WRPs exceed 4 bits");
        }
        Ok(())
    }

    /// Returns the largest valid PA (`2^pa_width - 1`).
    pub fn max_pa(&self) -> u64 {
        1u64.checked_shl(u32::from(self.pa_width))
            .map_or(u64::MAX, |v| v - 1)
    }
}

/// Applies the `ID_AA64DFR1_EL1` rule: a DFR0 count field of 15 means "16 or more", and the
/// real count (minus one) is in DFR1 when FEAT_Debugv8p9 reports it there (non-zero).
fn debug_count(dfr0: u8, dfr1: u8) -> u64 {
    if dfr0 == 15 && dfr1 != 0 {
        u64::from(dfr1)
    } else {
        u64::from(dfr0)
    }
}

/// Computes feature registers 0..=4 for `cpu`:
///
/// * 0: S2SZ = PA width, LPA2, SVE_EN/SVE_VL, NUM_BPS/NUM_WPS; PMU off (as TF-RMM for 2.0);
/// * 1: 4 KiB granules, SHA-256 and SHA-512, MAX_RECS_ORDER = refcount width (10),
///   L0GPTSZ = 30 bits, PPS = 48 bits;
/// * 2: 0 (no device assignment); 3: 0 (no planes); 4: 0 (no private MECIDs).
pub fn feature_registers(cpu: &CpuFeatures) -> [u64; NUM_FEATURE_REGISTERS] {
    let mut reg0 = u64::from(cpu.pa_width) << feat0::S2SZ_SHIFT;
    if cpu.lpa2 {
        reg0 |= feat0::LPA2;
    }
    if let Some(vq) = cpu.sve_vq {
        reg0 |= feat0::SVE_EN | (u64::from(vq & 0xf) << feat0::SVE_VL_SHIFT);
    }
    reg0 |= (debug_count(cpu.dfr0_brps, cpu.dfr1_brps) & 0x3f) << feat0::NUM_BPS_SHIFT;
    reg0 |= (debug_count(cpu.dfr0_wrps, cpu.dfr1_wrps) & 0x3f) << feat0::NUM_WPS_SHIFT;

    let reg1 = feat1::GRAN_SZ_4K
        | feat1::HASH_SHA_256
        | feat1::HASH_SHA_512
        | (u64::from(REFCOUNT_BITS) << feat1::MAX_RECS_ORDER_SHIFT)
        | (feat1::L0GPTSZ_30BITS << feat1::L0GPTSZ_SHIFT)
        | (feat1::PPS_48BITS << feat1::PPS_SHIFT);

    [reg0, reg1, 0, 0, 0]
}

impl<'a, P: Platform> Rmm<'a, P> {
    /// `RMI_FEATURES(index)`: x1 = feature register `index`, 0 for an undefined index.
    /// Always SUCCESS.
    pub(crate) fn cmd_features(&self, regs: &Regs, out: &mut Regs) -> Result<(), RmiError> {
        out[1] = usize::try_from(regs[1])
            .ok()
            .and_then(|i| self.features.get(i))
            .copied()
            .unwrap_or(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: CpuFeatures = CpuFeatures {
        pa_width: 48,
        lpa2: false,
        sve_vq: None,
        dfr0_brps: 5,
        dfr0_wrps: 3,
        dfr1_brps: 0,
        dfr1_wrps: 0,
    };

    #[test]
    fn features_reports_registers_0_to_4() {
        use crate::test_util::*;
        use cca_abi::rmi::RmiFid;
        let cpu = CpuFeatures {
            pa_width: 52,
            lpa2: true,
            sve_vq: Some(3),
            ..BASE
        };
        let f = Fixture::with(banks(), cpu);
        let rmm = f.rmm();
        let regs = feature_registers(&cpu);
        for (i, r) in regs.iter().enumerate() {
            assert_eq!(
                call(&rmm, RmiFid::FEATURES, &[i as u64])[..3],
                [0, *r, 0],
                "register {i}"
            );
        }
        assert_eq!(call(&rmm, RmiFid::FEATURES, &[0])[1] & 0xff, 52);
    }

    #[test]
    fn features_other_indices_are_zero() {
        use crate::test_util::*;
        use cca_abi::rmi::RmiFid;
        let f = Fixture::new();
        let rmm = f.active_rmm();
        for i in [5u64, 6, 0x100, 1 << 32, u64::MAX] {
            assert_eq!(
                call(&rmm, RmiFid::FEATURES, &[i])[..2],
                [0, 0],
                "index {i:#x}"
            );
        }
    }

    #[test]
    fn reg0_fields() {
        let r = feature_registers(&BASE)[0];
        assert_eq!(r & 0xff, 48);
        assert_eq!(r & feat0::LPA2, 0);
        assert_eq!(r & feat0::SVE_EN, 0);
        assert_eq!((r >> feat0::NUM_BPS_SHIFT) & 0x3f, 5);
        assert_eq!((r >> feat0::NUM_WPS_SHIFT) & 0x3f, 3);
        assert_eq!(
            r & (feat0::PMU_EN | (0x1f << feat0::PMU_NUM_CTRS_SHIFT)),
            0,
            "PMU is off"
        );
        assert_eq!(r >> 26, 0);

        let r = feature_registers(&CpuFeatures {
            pa_width: 52,
            lpa2: true,
            sve_vq: Some(15),
            ..BASE
        })[0];
        assert_eq!(r & 0xff, 52);
        assert_ne!(r & feat0::LPA2, 0);
        assert_ne!(r & feat0::SVE_EN, 0);
        assert_eq!((r >> feat0::SVE_VL_SHIFT) & 0xf, 15);
    }

    #[test]
    fn reg0_uses_dfr1_when_dfr0_reads_15() {
        let cpu = CpuFeatures {
            dfr0_brps: 15,
            dfr1_brps: 31,
            dfr0_wrps: 15,
            dfr1_wrps: 0,
            ..BASE
        };
        let r = feature_registers(&cpu)[0];
        assert_eq!((r >> feat0::NUM_BPS_SHIFT) & 0x3f, 31);
        assert_eq!(
            (r >> feat0::NUM_WPS_SHIFT) & 0x3f,
            15,
            "DFR1 field 0 keeps 15"
        );
        // DFR1 is ignored unless DFR0 reads 15.
        let cpu = CpuFeatures {
            dfr0_brps: 14,
            dfr1_brps: 31,
            ..BASE
        };
        assert_eq!(
            (feature_registers(&cpu)[0] >> feat0::NUM_BPS_SHIFT) & 0x3f,
            14
        );
    }

    #[test]
    fn reg1_matches_tf_rmm() {
        let r = feature_registers(&BASE)[1];
        assert_eq!(r, 1 | (1 << 3) | (1 << 5) | (10 << 6) | (5 << 14));
    }

    #[test]
    fn regs_2_to_4_are_zero() {
        assert_eq!(&feature_registers(&BASE)[2..], &[0, 0, 0]);
    }

    #[test]
    fn from_id_regs_decodes_parange_and_lpa2() {
        // PARange 5 (48 bits), TGran4 = 0, TGran4_2 = 2.
        let c = CpuFeatures::from_id_regs(5 | (2 << 40), 0, 0, None);
        assert_eq!((c.pa_width, c.lpa2), (48, false));
        // PARange 6 (52 bits) without LPA2 is limited to 48.
        let c = CpuFeatures::from_id_regs(6, 0, 0, None);
        assert_eq!((c.pa_width, c.lpa2), (48, false));
        // PARange 6 with TGran4 = 1 and TGran4_2 = 0 (same as stage 1): 52 bits, LPA2.
        let c = CpuFeatures::from_id_regs(6 | (1 << 28), 0, 0, None);
        assert_eq!((c.pa_width, c.lpa2), (52, true));
        // Stage 2 without LPA2 (TGran4_2 = 2) clears LPA2 but keeps the 52-bit PA width.
        let c = CpuFeatures::from_id_regs(6 | (1 << 28) | (2 << 40), 0, 0, None);
        assert_eq!((c.pa_width, c.lpa2), (52, false));
        // Unknown PARange: 48 bits without LPA2.
        assert_eq!(CpuFeatures::from_id_regs(0xf, 0, 0, None).pa_width, 48);
        assert_eq!(CpuFeatures::from_id_regs(2, 0, 0, None).pa_width, 40);
    }

    #[test]
    fn from_id_regs_decodes_debug_fields() {
        let c =
            CpuFeatures::from_id_regs(5, (15 << 12) | (7 << 20), (40 << 8) | (50 << 16), Some(3));
        assert_eq!(
            (c.dfr0_brps, c.dfr0_wrps, c.dfr1_brps, c.dfr1_wrps),
            (15, 7, 40, 50)
        );
        assert_eq!(c.sve_vq, Some(3));
    }

    #[test]
    fn validate_rejects_impossible_values() {
        assert!(BASE.validate().is_ok());
        assert!(CpuFeatures {
            pa_width: 47,
            ..BASE
        }
        .validate()
        .is_err());
        assert!(CpuFeatures {
            sve_vq: Some(16),
            ..BASE
        }
        .validate()
        .is_err());
        assert!(CpuFeatures {
            dfr0_brps: 16,
            ..BASE
        }
        .validate()
        .is_err());
        assert_eq!(BASE.max_pa(), (1 << 48) - 1);
    }
}
