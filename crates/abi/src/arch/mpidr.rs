//! `MPIDR_EL1` affinity fields: Aff0 [7:0], Aff1 [15:8], Aff2 [23:16], Aff3 [39:32].

/// The affinity bits of `MPIDR_EL1` (Aff3..Aff0).
pub const AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// Affinity level `level` (0..=3) of an `MPIDR_EL1` value.
pub const fn aff(mpidr: u64, level: u32) -> u8 {
    let shift = if level == 3 { 32 } else { level * 8 };
    (mpidr >> shift) as u8
}

/// An `MPIDR_EL1` affinity value from its four levels.
pub const fn from_aff(aff3: u8, aff2: u8, aff1: u8, aff0: u8) -> u64 {
    ((aff3 as u64) << 32) | ((aff2 as u64) << 16) | ((aff1 as u64) << 8) | aff0 as u64
}

/// The 32-bit packed affinity `Aff3:Aff2:Aff1:Aff0` (the layout of `GICR_TYPER[63:32]` and
/// `GICD_IROUTER` without the IRM bit's position).
pub const fn packed(mpidr: u64) -> u32 {
    ((aff(mpidr, 3) as u32) << 24)
        | ((aff(mpidr, 2) as u32) << 16)
        | ((aff(mpidr, 1) as u32) << 8)
        | aff(mpidr, 0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let m = from_aff(4, 3, 2, 1);
        assert_eq!(m, 0x4_0003_0201);
        assert_eq!((aff(m, 0), aff(m, 1), aff(m, 2), aff(m, 3)), (1, 2, 3, 4));
        assert_eq!(packed(m), 0x0403_0201);
        assert_eq!(m & AFFINITY_MASK, m);
        assert_eq!(
            (1u64 << 31 | m) & AFFINITY_MASK,
            m,
            "the RES1 bit is not affinity"
        );
    }
}
