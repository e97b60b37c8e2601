//! What the VMM and its devices inject: SPI and PPI input lines, and SGIs from trapped
//! `ICC_SGI1R_EL1` writes.

use super::{Vgic, PRIVATE_INTIDS};
use cca_abi::arch::sgi::Sgi1r;

impl Vgic {
    /// Drives the line of SPI `intid` (32..32 + nr_spis) to `level`; other INTIDs are ignored.
    /// A level-sensitive SPI is pending while the line is high; an edge-triggered one latches
    /// each rising edge. [`Vgic::spi_target`] names the vCPU to wake or kick.
    pub fn set_spi_level(&mut self, intid: u32, level: bool) {
        if let Some(s) = intid
            .checked_sub(PRIVATE_INTIDS)
            .and_then(|i| self.spis.get_mut(i as usize))
        {
            s.irq.drive(level);
        }
    }

    /// The level of SPI `intid`'s line (false for INTIDs that are not SPIs).
    pub fn spi_level(&self, intid: u32) -> bool {
        self.spi(intid).is_some_and(|s| s.irq.line)
    }

    /// Drives the line of PPI `intid` (16..32) of `vcpu` to `level`, for example the virtual
    /// timer (INTID 27, level-sensitive) from the REC exit's `cntv_ctl`: high while
    /// `ENABLE && ISTATUS && !IMASK`. Other INTIDs and vCPUs are ignored.
    pub fn set_ppi_level(&mut self, vcpu: usize, intid: u32, level: bool) {
        if !(16..PRIVATE_INTIDS).contains(&intid) {
            return;
        }
        if let Some(x) = self.irq_mut(vcpu, intid) {
            x.drive(level);
        }
    }

    /// The level of PPI `intid`'s line of `vcpu` (false for other INTIDs).
    pub fn ppi_level(&self, vcpu: usize, intid: u32) -> bool {
        (16..PRIVATE_INTIDS).contains(&intid) && self.irq(vcpu, intid).is_some_and(|x| x.line)
    }

    /// An `ICC_SGI1R_EL1` write of `value` by `sender` (the REC exit's trapped value): makes SGI
    /// `value[27:24]` pending on every targeted vCPU, `IRM` = 1 meaning every vCPU but the
    /// sender, otherwise those whose affinity is `Aff3.Aff2.Aff1` and whose Aff0 is
    /// `RS * 16 + n` for a set bit n of TargetList. Affinities no vCPU has are ignored, as is a
    /// target whose SGI is Group 0 (SGI1R generates Group 1 SGIs) and a `sender` that does not
    /// exist.
    ///
    /// Returns the vCPUs it made the SGI pending on, bit n = vCPU n (vCPUs 64 and up are made
    /// pending but have no bit), for the scheduler to wake or kick.
    pub fn send_sgi(&mut self, sender: usize, value: u64) -> u64 {
        let Some(from) = self.mpidr(sender) else {
            return 0;
        };
        let sgi = Sgi1r::decode(value);
        let mut woken = 0u64;
        for (v, cpu) in self.cpus.iter_mut().enumerate() {
            let Some(&to) = self.mpidrs.get(v) else {
                continue;
            };
            let x = &mut cpu.irqs[usize::from(sgi.intid & 0xf)];
            if sgi.targets(to, from) && x.group1 {
                x.latch = true;
                if v < 64 {
                    woken |= 1 << v;
                }
            }
        }
        woken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vgic::BitReg;
    use cca_abi::arch::mpidr;

    fn sgi1r(intid: u8, aff3: u8, aff2: u8, aff1: u8, rs: u8, list: u16) -> u64 {
        Sgi1r {
            intid,
            broadcast: false,
            target_list: list,
            range: rs,
            aff1,
            aff2,
            aff3,
        }
        .encode()
    }

    #[test]
    fn lines_of_spis_and_ppis() {
        let mut g = Vgic::new(&[0, 1], 32);
        g.set_spi_level(32, true);
        assert!(g.spi_level(32) && !g.spi_level(33));
        g.set_spi_level(64, true);
        assert!(!g.spi_level(64), "beyond nr_spis");
        g.set_spi_level(31, true);
        assert!(!g.spi_level(31) && !g.ppi_level(0, 31), "not an SPI");
        g.set_ppi_level(1, 27, true);
        assert!(g.ppi_level(1, 27) && !g.ppi_level(0, 27));
        assert!(g.is_pending(1, 27));
        g.set_ppi_level(1, 27, false);
        assert!(!g.is_pending(1, 27));
        g.set_ppi_level(0, 5, true);
        assert!(!g.is_pending(0, 5), "an SGI has no line");
        g.set_ppi_level(0, 32, true);
        assert!(!g.spi_level(32 + 1) && g.spi_level(32), "SPIs untouched");
        g.set_ppi_level(7, 27, true);
        assert!(!g.ppi_level(7, 27));
    }

    #[test]
    fn sgi_target_list_and_affinity_fields() {
        let cpus = [
            mpidr::from_aff(0, 0, 0, 0),
            mpidr::from_aff(0, 0, 0, 1),
            mpidr::from_aff(0, 0, 1, 0),
            mpidr::from_aff(0, 2, 0, 0),
            mpidr::from_aff(3, 0, 0, 0),
            mpidr::from_aff(0, 0, 0, 17),
        ];
        let mut g = Vgic::new(&cpus, 32);
        assert_eq!(
            g.send_sgi(0, sgi1r(1, 0, 0, 0, 0, 0b11)),
            0b11,
            "self and vCPU 1"
        );
        assert!(g.is_pending(0, 1) && g.is_pending(1, 1) && !g.is_pending(2, 1));
        assert_eq!(g.send_sgi(0, sgi1r(2, 0, 0, 1, 0, 1)), 1 << 2, "Aff1");
        assert_eq!(g.send_sgi(0, sgi1r(2, 0, 2, 0, 0, 1)), 1 << 3, "Aff2");
        assert_eq!(g.send_sgi(0, sgi1r(2, 3, 0, 0, 0, 1)), 1 << 4, "Aff3");
        assert_eq!(
            g.send_sgi(0, sgi1r(2, 0, 0, 0, 1, 1 << 1)),
            1 << 5,
            "RS 1: Aff0 17"
        );
        assert_eq!(
            g.send_sgi(0, sgi1r(2, 0, 0, 0, 0, 1 << 1)),
            1 << 1,
            "RS 0: Aff0 1"
        );
        assert!(g.is_pending(5, 2) && g.is_pending(1, 2) && !g.is_pending(0, 2));
        assert_eq!(
            g.send_sgi(0, sgi1r(3, 0, 0, 9, 0, 0xffff)),
            0,
            "unknown Aff1"
        );
        assert_eq!(
            g.send_sgi(0, sgi1r(3, 0, 0, 0, 2, 0xffff)),
            0,
            "unknown range"
        );
        assert_eq!(g.send_sgi(0, sgi1r(3, 0, 0, 0, 0, 0)), 0, "empty list");
        assert_eq!(g.send_sgi(6, sgi1r(3, 0, 0, 0, 0, 1)), 0, "no such sender");
        for v in 0..6 {
            assert!(!g.is_pending(v, 3));
        }
        g.check_invariants();
    }

    #[test]
    fn sgi_broadcast_and_group0() {
        let mut g = Vgic::new(&[0, 1, 2], 32);
        let all = 1 << 40 | 7 << 24 | 0xffff;
        assert_eq!(g.send_sgi(1, all), 0b101, "IRM: all but the sender");
        assert!(g.is_pending(0, 7) && !g.is_pending(1, 7) && g.is_pending(2, 7));
        g.set_bit(BitReg::Group, 2, 8, false);
        assert_eq!(
            g.send_sgi(1, all & !(0xf << 24) | 8 << 24),
            0b001,
            "Group 0 SGI"
        );
        assert!(!g.is_pending(2, 8));
        assert_eq!(g.send_sgi(0, u64::MAX), 0b110, "every field set: IRM wins");
        assert!(g.is_pending(1, 15) && g.is_pending(2, 15));
    }

    #[test]
    fn sgi_mask_stops_at_64_vcpus() {
        let cpus: alloc::vec::Vec<u64> = (0..70u64).map(|i| ((i / 16) << 8) | (i % 16)).collect();
        let mut g = Vgic::new(&cpus, 32);
        let mask = g.send_sgi(0, 1 << 40);
        assert_eq!(mask, !1);
        assert!(g.is_pending(69, 0), "made pending without a bit");
    }
}
