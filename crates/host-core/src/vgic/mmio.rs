//! What the distributor and redistributor MMIO models share: access widths over 32- and
//! 64-bit registers, the per-INTID register banks (same offsets in `GICD` and in a
//! redistributor's SGI frame), and the identification registers.
//!
//! Accesses of 1, 2, 4 or 8 bytes at an offset aligned to their size are accepted everywhere:
//! a narrower access reads or writes its bytes of the 32- or 64-bit register that contains
//! it (a read-modify-write for plain registers, only the written bytes' bits for the
//! write-1-to-set/clear ones), an 8-byte access to two 32-bit registers is two accesses.
//! Unaligned accesses and other sizes read 0 and are ignored.

use super::{BitReg, Vgic, PRIVATE_INTIDS};

/// `GICD_IIDR` / `GICR_IIDR`: Arm (JEP106 0x43B), product 0, r0p0, as QEMU reports.
pub(crate) const IIDR: u32 = 0x0000_043b;
/// Offset of the identification registers (`PIDR4` .. `CIDR3`).
pub(crate) const ID_BASE: u64 = 0xffd0;
/// `PIDR2`: ArchRev 3 (GICv3), JEDEC-assigned, JEP106 identity code bits [6:4] = 3.
pub(crate) const PIDR2: u32 = 0x3b;

/// The identification register at `off` (0xFFD0..0x10000, word-aligned): PIDR4..7, PIDR0..3,
/// CIDR0..3; the part number is 0.
pub(crate) fn id_reg(off: u64) -> u32 {
    const IDS: [u32; 12] = [
        0x44, 0, 0, 0, // PIDR4 (4 KiB count 2^4, JEP106 continuation 4), PIDR5..7
        0x00, 0xb0, PIDR2, 0, // PIDR0, PIDR1 (JEP106 [3:0] = 0xB), PIDR2, PIDR3
        0x0d, 0xf0, 0x05, 0xb1, // CIDR0..3
    ];
    off.checked_sub(ID_BASE)
        .filter(|d| d % 4 == 0)
        .and_then(|d| IDS.get((d / 4) as usize))
        .copied()
        .unwrap_or(0)
}

/// A frame of 32-bit registers with some 64-bit ones.
pub(crate) trait Regs {
    /// Whether the 8-byte-aligned `off` is a 64-bit register.
    fn is64(&self, off: u64) -> bool;
    /// Reads the 64-bit register at `off`.
    fn read64(&mut self, off: u64) -> u64;
    /// Writes the bits of `mask` of the 64-bit register at `off` from `value`.
    fn write64(&mut self, off: u64, value: u64, mask: u64);
    /// Reads the 32-bit register at the 4-byte-aligned `off`.
    fn read32(&mut self, off: u64) -> u32;
    /// Writes the bits of `mask` of the 32-bit register at `off` from `value`.
    fn write32(&mut self, off: u64, value: u32, mask: u32);
}

/// The value mask of `size` bytes (1, 2, 4 or 8), `None` for other sizes.
fn width(size: u8) -> Option<u64> {
    match size {
        1 => Some(0xff),
        2 => Some(0xffff),
        4 => Some(0xffff_ffff),
        8 => Some(u64::MAX),
        _ => None,
    }
}

/// A read of `size` bytes at `offset`.
pub(crate) fn read(regs: &mut dyn Regs, offset: u64, size: u8) -> u64 {
    let Some(mask) = width(size).filter(|_| offset % u64::from(size) == 0) else {
        return 0;
    };
    let base8 = offset & !7;
    if regs.is64(base8) {
        return (regs.read64(base8) >> ((offset & 7) * 8)) & mask;
    }
    if size == 8 {
        let lo = u64::from(regs.read32(offset));
        let hi = u64::from(regs.read32(offset + 4));
        return hi << 32 | lo;
    }
    let shift = (offset & 3) * 8;
    (u64::from(regs.read32(offset & !3)) >> shift) & mask
}

/// A write of the low `size` bytes of `value` at `offset`.
pub(crate) fn write(regs: &mut dyn Regs, offset: u64, size: u8, value: u64) {
    let Some(mask) = width(size).filter(|_| offset % u64::from(size) == 0) else {
        return;
    };
    let value = value & mask;
    let base8 = offset & !7;
    if regs.is64(base8) {
        let shift = (offset & 7) * 8;
        regs.write64(base8, value << shift, mask << shift);
        return;
    }
    if size == 8 {
        regs.write32(offset, value as u32, u32::MAX);
        regs.write32(offset + 4, (value >> 32) as u32, u32::MAX);
        return;
    }
    let shift = (offset & 3) * 8;
    regs.write32(offset & !3, (value << shift) as u32, (mask << shift) as u32);
}

/// Whose per-INTID registers a frame holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bank {
    /// The distributor: SPIs; the SGI/PPI words are RAZ/WI (affinity routing is on).
    Dist,
    /// The SGI frame of this vCPU's redistributor: INTIDs 0..32 only.
    Redist(usize),
}

impl Bank {
    /// Whether the register covering INTIDs `first..` belongs to this bank.
    fn covers(self, first: u32) -> bool {
        match self {
            Bank::Dist => first >= PRIVATE_INTIDS,
            Bank::Redist(_) => first < PRIVATE_INTIDS,
        }
    }

    /// The vCPU that names the private INTIDs.
    fn vcpu(self) -> usize {
        match self {
            Bank::Dist => 0,
            Bank::Redist(v) => v,
        }
    }
}

/// `IGROUPR`..`ICACTIVER` (0x080..0x400): the register and, for the set/clear pairs, whether
/// a write sets (`Some(true)`), clears (`Some(false)`) or writes the value (`None`).
fn bit_bank(off: u64) -> Option<(BitReg, Option<bool>, u32)> {
    let first = u32::try_from((off & 0x7f) / 4 * 32).ok()?;
    let (reg, op) = match off {
        0x080..0x100 => (BitReg::Group, None),
        0x100..0x180 => (BitReg::Enable, Some(true)),
        0x180..0x200 => (BitReg::Enable, Some(false)),
        0x200..0x280 => (BitReg::Pending, Some(true)),
        0x280..0x300 => (BitReg::Pending, Some(false)),
        0x300..0x380 => (BitReg::Active, Some(true)),
        0x380..0x400 => (BitReg::Active, Some(false)),
        _ => return None,
    };
    Some((reg, op, first))
}

/// A read of the per-INTID register at the word-aligned `off` (below 0x1000) of `bank`;
/// `None` when `off` is not one (IGRPMODR and NSACR are one, RAZ with DS = 1).
pub(crate) fn read_bank(gic: &Vgic, bank: Bank, off: u64) -> Option<u32> {
    let v = bank.vcpu();
    if let Some((reg, _, first)) = bit_bank(off) {
        return Some(if bank.covers(first) {
            gic.read_bits(reg, v, first)
        } else {
            0
        });
    }
    match off {
        0x400..0x800 => {
            let first = (off - 0x400) as u32;
            Some(if bank.covers(first) {
                (0..4).fold(0, |acc, k| {
                    acc | u32::from(gic.priority(v, first + k)) << (8 * k)
                })
            } else {
                0
            })
        }
        0xc00..0xd00 => {
            let first = ((off - 0xc00) / 4 * 16) as u32;
            Some(if bank.covers(first) {
                (0..16)
                    .filter(|&i| gic.is_edge(v, first + i))
                    .fold(0, |acc, i| acc | 2 << (2 * i))
            } else {
                0
            })
        }
        0xd00..0xd80 | 0xe00..0xf00 => Some(0),
        _ => None,
    }
}

/// A write of the bits of `mask` of `value` to the per-INTID register at `off` of `bank`;
/// false when `off` is not one.
pub(crate) fn write_bank(gic: &mut Vgic, bank: Bank, off: u64, value: u32, mask: u32) -> bool {
    let v = bank.vcpu();
    if let Some((reg, op, first)) = bit_bank(off) {
        if bank.covers(first) {
            match op {
                Some(set) => gic.write_bits(reg, v, first, value & mask, set),
                None => {
                    gic.write_bits(reg, v, first, value & mask, true);
                    gic.write_bits(reg, v, first, !value & mask, false);
                }
            }
        }
        return true;
    }
    match off {
        0x400..0x800 => {
            let first = (off - 0x400) as u32;
            if bank.covers(first) {
                for k in (0..4).filter(|k| mask >> (8 * k) & 0xff != 0) {
                    gic.set_priority(v, first + k, (value >> (8 * k)) as u8);
                }
            }
            true
        }
        0xc00..0xd00 => {
            let first = ((off - 0xc00) / 4 * 16) as u32;
            if bank.covers(first) {
                for i in (0..16).filter(|i| mask & 2 << (2 * i) != 0) {
                    gic.set_edge(v, first + i, value & 2 << (2 * i) != 0);
                }
            }
            true
        }
        0xd00..0xd80 | 0xe00..0xf00 => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame with a 64-bit register at 8 and 32-bit ones elsewhere, recording writes.
    #[derive(Default)]
    struct Frame {
        r64: u64,
        r32: [u32; 8],
    }

    impl Regs for Frame {
        fn is64(&self, off: u64) -> bool {
            off == 8
        }
        fn read64(&mut self, _: u64) -> u64 {
            self.r64
        }
        fn write64(&mut self, _: u64, value: u64, mask: u64) {
            self.r64 = self.r64 & !mask | value & mask;
        }
        fn read32(&mut self, off: u64) -> u32 {
            self.r32.get((off / 4) as usize).copied().unwrap_or(0)
        }
        fn write32(&mut self, off: u64, value: u32, mask: u32) {
            if let Some(r) = self.r32.get_mut((off / 4) as usize) {
                *r = *r & !mask | value & mask;
            }
        }
    }

    #[test]
    fn widths_and_alignment() {
        let mut f = Frame::default();
        write(&mut f, 0, 4, 0x1122_3344_5566_7788);
        assert_eq!(f.r32[0], 0x5566_7788, "high bits dropped");
        assert_eq!(read(&mut f, 0, 4), 0x5566_7788);
        assert_eq!(read(&mut f, 1, 1), 0x77);
        assert_eq!(read(&mut f, 2, 2), 0x5566);
        write(&mut f, 3, 1, 0xab);
        assert_eq!(f.r32[0], 0xab66_7788);
        write(&mut f, 2, 4, 0xffff_ffff);
        assert_eq!(f.r32[0], 0xab66_7788, "unaligned: ignored");
        assert_eq!(read(&mut f, 1, 2), 0, "unaligned: zero");
        write(&mut f, 0, 3, 1);
        assert_eq!(read(&mut f, 0, 3), 0, "size 3");
        write(&mut f, 16, 8, 0x1_0000_0002);
        assert_eq!(
            (f.r32[4], f.r32[5]),
            (2, 1),
            "8 bytes over two 32-bit registers"
        );
        assert_eq!(read(&mut f, 16, 8), 0x1_0000_0002);
        write(&mut f, 8, 8, 0xaabb_ccdd_0011_2233);
        assert_eq!(
            read(&mut f, 12, 4),
            0xaabb_ccdd,
            "upper half of a 64-bit register"
        );
        write(&mut f, 8, 4, 0x4455_6677);
        assert_eq!(f.r64, 0xaabb_ccdd_4455_6677);
        write(&mut f, 14, 2, 0x9999);
        assert_eq!(f.r64, 0x9999_ccdd_4455_6677);
        assert_eq!(read(&mut f, 9, 1), 0x66);
        assert_eq!(read(&mut f, u64::MAX - 7, 8), 0, "far offset");
        write(&mut f, u64::MAX - 7, 8, 1);
    }

    #[test]
    fn id_registers() {
        assert_eq!(id_reg(0xffe8), 0x3b);
        assert_eq!(id_reg(0xffd0), 0x44);
        assert_eq!(id_reg(0xfffc), 0xb1);
        assert_eq!(id_reg(0xffe9), 0);
        assert_eq!(id_reg(0xffcc), 0);
        assert_eq!(id_reg(0x1_0000), 0);
    }

    #[test]
    fn banks_split_between_distributor_and_redistributor() {
        let mut g = Vgic::new(&[0, 1], 32);
        assert!(write_bank(&mut g, Bank::Dist, 0x100, u32::MAX, u32::MAX));
        assert_eq!(
            g.read_bits(BitReg::Enable, 0, 0),
            0,
            "GICD_ISENABLER0 is WI"
        );
        assert_eq!(read_bank(&g, Bank::Dist, 0x100), Some(0));
        assert!(write_bank(&mut g, Bank::Dist, 0x104, 0x11, u32::MAX));
        assert_eq!(
            read_bank(&g, Bank::Dist, 0x184),
            Some(0x11),
            "ICENABLER reads the same"
        );
        assert!(write_bank(&mut g, Bank::Dist, 0x184, 0x01, 0xff));
        assert_eq!(read_bank(&g, Bank::Dist, 0x104), Some(0x10));
        assert!(write_bank(&mut g, Bank::Dist, 0x108, u32::MAX, u32::MAX));
        assert_eq!(read_bank(&g, Bank::Dist, 0x108), Some(0), "beyond nr_spis");
        assert!(write_bank(
            &mut g,
            Bank::Redist(1),
            0x100,
            1 << 27,
            u32::MAX
        ));
        assert!(g.is_enabled(1, 27) && !g.is_enabled(0, 27));
        assert!(write_bank(
            &mut g,
            Bank::Redist(1),
            0x104,
            u32::MAX,
            u32::MAX
        ));
        assert_eq!(
            read_bank(&g, Bank::Redist(1), 0x104),
            Some(0),
            "no extended PPIs"
        );
        // IGROUPR: a plain register, byte-masked.
        assert!(write_bank(&mut g, Bank::Redist(0), 0x80, 0, 0xff));
        assert_eq!(read_bank(&g, Bank::Redist(0), 0x80), Some(0xffff_ff00));
        // IPRIORITYR.
        assert!(write_bank(
            &mut g,
            Bank::Redist(0),
            0x41c,
            0xa0b0_c0d0,
            0xff00_ff00
        ));
        assert_eq!(read_bank(&g, Bank::Redist(0), 0x41c), Some(0xa000_c000));
        assert!(write_bank(
            &mut g,
            Bank::Redist(0),
            0x420,
            u32::MAX,
            u32::MAX
        ));
        assert_eq!(
            read_bank(&g, Bank::Redist(0), 0x420),
            Some(0),
            "SPI priorities"
        );
        assert!(write_bank(&mut g, Bank::Dist, 0x41c, u32::MAX, u32::MAX));
        assert_eq!(g.priority(0, 31), 0xa0, "GICD_IPRIORITYR7 is WI");
        // ICFGR.
        assert_eq!(read_bank(&g, Bank::Redist(0), 0xc00), Some(0xaaaa_aaaa));
        assert!(write_bank(&mut g, Bank::Redist(0), 0xc00, 0, u32::MAX));
        assert_eq!(
            read_bank(&g, Bank::Redist(0), 0xc00),
            Some(0xaaaa_aaaa),
            "read-only"
        );
        assert_eq!(read_bank(&g, Bank::Redist(0), 0xc04), Some(0));
        assert!(write_bank(
            &mut g,
            Bank::Redist(0),
            0xc04,
            u32::MAX,
            u32::MAX
        ));
        assert_eq!(
            read_bank(&g, Bank::Redist(0), 0xc04),
            Some(0xaaaa_aaaa),
            "odd bits only"
        );
        assert!(write_bank(&mut g, Bank::Dist, 0xc08, 0x8, u32::MAX));
        assert_eq!(read_bank(&g, Bank::Dist, 0xc08), Some(0x8));
        assert!(g.is_edge(0, 33));
        assert_eq!(
            read_bank(&g, Bank::Dist, 0xc04),
            Some(0),
            "GICD_ICFGR1 is RAZ"
        );
        assert_eq!(read_bank(&g, Bank::Dist, 0xc10), Some(0), "beyond nr_spis");
        // IGRPMODR and NSACR: RAZ/WI.
        assert!(write_bank(&mut g, Bank::Dist, 0xd04, u32::MAX, u32::MAX));
        assert_eq!(read_bank(&g, Bank::Dist, 0xd04), Some(0));
        assert_eq!(read_bank(&g, Bank::Redist(0), 0xe00), Some(0));
        assert_eq!(read_bank(&g, Bank::Dist, 0x40), None);
        assert!(!write_bank(&mut g, Bank::Dist, 0xf00, 1, u32::MAX));
    }
}
