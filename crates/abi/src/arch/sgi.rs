//! `ICC_SGI1R_EL1`: the software-generated interrupt a guest sends by writing it.

use super::mpidr;

/// A decoded `ICC_SGI1R_EL1` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sgi1r {
    /// The SGI (INTID 0..=15), bits [27:24].
    pub intid: u8,
    /// Interrupt routing mode, bit 40: every PE except the sender (the target fields are
    /// ignored).
    pub broadcast: bool,
    /// TargetList, bits [15:0]: bit n targets Aff0 = `range * 16 + n`.
    pub target_list: u16,
    /// Range selector, bits [47:44].
    pub range: u8,
    /// Aff1, bits [23:16].
    pub aff1: u8,
    /// Aff2, bits [39:32].
    pub aff2: u8,
    /// Aff3, bits [55:48].
    pub aff3: u8,
}

impl Sgi1r {
    /// Decodes a written value.
    pub const fn decode(v: u64) -> Self {
        Self {
            intid: ((v >> 24) & 0xf) as u8,
            broadcast: v & (1 << 40) != 0,
            target_list: v as u16,
            range: ((v >> 44) & 0xf) as u8,
            aff1: (v >> 16) as u8,
            aff2: (v >> 32) as u8,
            aff3: (v >> 48) as u8,
        }
    }

    /// Encodes it again (the inverse of [`Sgi1r::decode`] on the defined fields).
    pub const fn encode(&self) -> u64 {
        ((self.intid as u64 & 0xf) << 24)
            | if self.broadcast { 1 << 40 } else { 0 }
            | self.target_list as u64
            | ((self.range as u64 & 0xf) << 44)
            | ((self.aff1 as u64) << 16)
            | ((self.aff2 as u64) << 32)
            | ((self.aff3 as u64) << 48)
    }

    /// True when this write targets the PE with affinity `target` (an `MPIDR_EL1` value),
    /// sent by the PE with affinity `sender`.
    pub const fn targets(&self, target: u64, sender: u64) -> bool {
        let target = target & mpidr::AFFINITY_MASK;
        if self.broadcast {
            return target != sender & mpidr::AFFINITY_MASK;
        }
        if mpidr::aff(target, 3) != self.aff3
            || mpidr::aff(target, 2) != self.aff2
            || mpidr::aff(target, 1) != self.aff1
        {
            return false;
        }
        let aff0 = mpidr::aff(target, 0) as u32;
        let base = self.range as u32 * 16;
        aff0 >= base && aff0 < base + 16 && self.target_list & (1 << (aff0 - base)) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_and_target() {
        let w = Sgi1r {
            intid: 1,
            broadcast: false,
            target_list: 0b10,
            range: 0,
            aff1: 0,
            aff2: 0,
            aff3: 0,
        };
        let v = w.encode();
        assert_eq!(Sgi1r::decode(v), w);
        assert!(w.targets(1, 0));
        assert!(!w.targets(0, 0));
        assert!(!w.targets(mpidr::from_aff(0, 0, 1, 1), 0), "Aff1 differs");
        let r1 = Sgi1r {
            range: 1,
            target_list: 1,
            ..w
        };
        assert!(r1.targets(16, 0) && !r1.targets(0, 0));
        let all = Sgi1r::decode(1 << 40 | 2 << 24);
        assert_eq!(all.intid, 2);
        assert!(all.targets(0, 1) && all.targets(2, 1) && !all.targets(1, 1));
        let aff = Sgi1r::decode(0x00ab_0000_00cd_0001 | 5 << 24);
        assert_eq!((aff.aff3, aff.aff1, aff.intid), (0xab, 0xcd, 5));
        assert!(aff.targets(mpidr::from_aff(0xab, 0, 0xcd, 0), 0));
    }
}
