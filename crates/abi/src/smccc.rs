//! SMC Calling Convention (DEN0028) function identifiers and common values.

/// Bit 31: fast call.
pub const FAST_CALL: u32 = 1 << 31;
/// Bit 30: SMC64 calling convention.
pub const SMC64: u32 = 1 << 30;
/// Bit 16: the SVE live-state hint (SMCCC 1.3). Callees must ignore it when decoding.
pub const SVE_HINT: u32 = 1 << 16;

/// Owning entity numbers (FID bits [29:24]).
pub mod oen {
    /// Arm architecture calls.
    pub const ARCH: u32 = 0;
    /// SiP (silicon provider) calls.
    pub const SIP: u32 = 2;
    /// Standard secure service calls (PSCI, RMI, RSI, RMM-EL3).
    pub const STANDARD: u32 = 4;
}

/// The value returned in x0 for an unknown function identifier.
pub const SMC_UNKNOWN: u64 = u64::MAX;
/// SMCCC `NOT_SUPPORTED` (-1), as a register value.
pub const NOT_SUPPORTED: u64 = u64::MAX;

/// `SMCCC_VERSION`.
pub const SMCCC_VERSION: u32 = 0x8000_0000;
/// `SMCCC_ARCH_FEATURES`.
pub const SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;
/// `SMCCC_ARCH_SOC_ID`.
pub const SMCCC_ARCH_SOC_ID: u32 = 0x8000_0002;
/// `SMCCC_ARCH_FEATURE_AVAILABILITY` (SMC64).
pub const SMCCC_ARCH_FEATURE_AVAILABILITY: u32 = 0xC000_0003;

/// Builds a fast SMC64 function identifier.
pub const fn fid64(oen: u32, fnum: u32) -> u32 {
    FAST_CALL | SMC64 | (oen << 24) | (fnum & 0xffff)
}

/// Clears the SVE hint bit from a function identifier taken from x0.
pub const fn normalize(x0: u64) -> u32 {
    (x0 as u32) & !SVE_HINT
}

/// Returns the owning entity number of a function identifier.
pub const fn oen_of(fid: u32) -> u32 {
    (fid >> 24) & 0x3f
}

/// Returns the function number (bits [15:0]) of a function identifier.
pub const fn fnum_of(fid: u32) -> u32 {
    fid & 0xffff
}

/// Returns true when the identifier uses the SMC64 convention.
pub const fn is_smc64(fid: u32) -> bool {
    fid & SMC64 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fid_encoding() {
        assert_eq!(fid64(oen::STANDARD, 0x150), 0xC400_0150);
        assert_eq!(normalize(0xC401_0150), 0xC400_0150);
        assert_eq!(oen_of(0xC400_0150), oen::STANDARD);
        assert_eq!(fnum_of(0xC400_01F1), 0x1F1);
        assert!(is_smc64(0xC400_0150));
        assert!(!is_smc64(0x8400_0000));
    }
}
