//! The register-level view of the distributor and redistributors: what `GICD_*` and `GICR_*`
//! read and write, one INTID or one register at a time. The MMIO models in `devices::gicd`
//! and `devices::gicr` decode offsets and call these; the VMM may call them too (for example
//! to enable the timer PPI of a guest that does not program the GIC itself).
//!
//! Every method accepts any vCPU index and INTID: an SGI or PPI of a vCPU that does not
//! exist, or an SPI beyond [`Vgic::nr_spis`], reads as zero and ignores writes.

use super::{
    Vgic, CTLR_ARE, CTLR_DS, CTLR_ENABLE_GRP0, CTLR_ENABLE_GRP1, IROUTER_IRM, PRIORITY_MASK,
    PRIVATE_INTIDS, RCTLR_DPG_MASK, WAKER_CHILDREN_ASLEEP, WAKER_PROCESSOR_SLEEP,
};
use cca_abi::arch::{ich, mpidr};

/// A register bank with one bit per INTID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitReg {
    /// `IGROUPR`: 1 = Group 1.
    Group,
    /// `ISENABLER` / `ICENABLER`.
    Enable,
    /// `ISPENDR` / `ICPENDR`.
    Pending,
    /// `ISACTIVER` / `ICACTIVER`.
    Active,
}

impl Vgic {
    /// `GICD_CTLR`: the group enables, with ARE and DS reading 1 and RWP 0.
    pub fn dist_ctlr(&self) -> u32 {
        self.ctlr | CTLR_ARE | CTLR_DS
    }

    /// A `GICD_CTLR` write: only EnableGrp0 and EnableGrp1 are writable (ARE and DS are RAO/WI,
    /// E1NWF and nASSGIreq RAZ/WI).
    pub fn write_dist_ctlr(&mut self, value: u32) {
        self.ctlr = value & (CTLR_ENABLE_GRP0 | CTLR_ENABLE_GRP1);
    }

    /// The list register of the VM that holds `intid` (as `vcpu` names it), if any.
    pub(super) fn lr_of(&self, vcpu: usize, intid: u32) -> Option<u64> {
        let owner = self.irq(vcpu, intid)?.owner?;
        self.cpus
            .get(owner)?
            .lrs
            .iter()
            .copied()
            .find(|&lr| ich::lr_state(lr) != ich::LrState::Invalid && ich::lr_vintid(lr) == intid)
    }

    /// One bit of `reg` for `intid` as `vcpu` sees it. Pending reads 1 while the latch is set,
    /// a level-sensitive interrupt's line is high, or a list register holds it pending;
    /// active reads the state as of the last flush or sync.
    pub fn bit(&self, reg: BitReg, vcpu: usize, intid: u32) -> bool {
        let Some(x) = self.irq(vcpu, intid) else {
            return false;
        };
        match reg {
            BitReg::Group => x.group1,
            BitReg::Enable => x.enabled,
            BitReg::Pending => {
                x.pending_source()
                    || self
                        .lr_of(vcpu, intid)
                        .is_some_and(|lr| lr & ich::LR_PENDING != 0)
            }
            BitReg::Active => x.active,
        }
    }

    /// Sets (`value` true: the `IS*` and `IGROUPR` = 1 writes) or clears (the `IC*` and
    /// `IGROUPR` = 0 writes) one bit of `reg`. Clearing the pending state clears the latch: a
    /// level-sensitive interrupt stays pending while its line is high.
    pub fn set_bit(&mut self, reg: BitReg, vcpu: usize, intid: u32, value: bool) {
        let Some(x) = self.irq_mut(vcpu, intid) else {
            return;
        };
        match reg {
            BitReg::Group => x.group1 = value,
            BitReg::Enable => x.enabled = value,
            BitReg::Pending => x.latch = value,
            BitReg::Active => x.active = value,
        }
    }

    /// 32 bits of `reg` for INTIDs `first..first + 32` (bit n = INTID first + n).
    pub fn read_bits(&self, reg: BitReg, vcpu: usize, first: u32) -> u32 {
        (0..32u32)
            .filter(|&n| first.checked_add(n).is_some_and(|x| self.bit(reg, vcpu, x)))
            .fold(0, |acc, n| acc | 1 << n)
    }

    /// For each bit n of `bits`, sets (`value` true) or clears bit `first + n` of `reg`.
    pub fn write_bits(&mut self, reg: BitReg, vcpu: usize, first: u32, bits: u32, value: bool) {
        for n in (0..32u32).filter(|n| bits & 1 << n != 0) {
            if let Some(x) = first.checked_add(n) {
                self.set_bit(reg, vcpu, x, value);
            }
        }
    }

    /// Whether `intid` is enabled (as `vcpu` sees it).
    pub fn is_enabled(&self, vcpu: usize, intid: u32) -> bool {
        self.bit(BitReg::Enable, vcpu, intid)
    }

    /// Enables or disables `intid` (as `vcpu` names it), as `ISENABLER`/`ICENABLER` do.
    pub fn set_enabled(&mut self, vcpu: usize, intid: u32, enabled: bool) {
        self.set_bit(BitReg::Enable, vcpu, intid, enabled);
    }

    /// Whether `intid` is pending (as `GICD_ISPENDR` reads it).
    pub fn is_pending(&self, vcpu: usize, intid: u32) -> bool {
        self.bit(BitReg::Pending, vcpu, intid)
    }

    /// Whether `intid` is active (as `GICD_ISACTIVER` reads it).
    pub fn is_active(&self, vcpu: usize, intid: u32) -> bool {
        self.bit(BitReg::Active, vcpu, intid)
    }

    /// The priority of `intid` (`IPRIORITYR` byte).
    pub fn priority(&self, vcpu: usize, intid: u32) -> u8 {
        self.irq(vcpu, intid).map_or(0, |x| x.priority)
    }

    /// Sets the priority of `intid`; the bits below [`PRIORITY_MASK`] are ignored.
    pub fn set_priority(&mut self, vcpu: usize, intid: u32, priority: u8) {
        if let Some(x) = self.irq_mut(vcpu, intid) {
            x.priority = priority & PRIORITY_MASK;
        }
    }

    /// Whether `intid` is edge-triggered (`ICFGR` bit 2n+1). SGIs always are.
    pub fn is_edge(&self, vcpu: usize, intid: u32) -> bool {
        self.irq(vcpu, intid).is_some_and(|x| x.edge)
    }

    /// Configures `intid` as edge-triggered (`edge`) or level-sensitive; SGIs ignore it.
    pub fn set_edge(&mut self, vcpu: usize, intid: u32, edge: bool) {
        if intid < 16 {
            return;
        }
        if let Some(x) = self.irq_mut(vcpu, intid) {
            x.edge = edge;
        }
    }

    /// `GICD_IROUTER<intid>` (0 for an INTID that is not an implemented SPI).
    pub fn irouter(&self, intid: u32) -> u64 {
        self.spi(intid).map_or(0, |s| s.route)
    }

    /// A `GICD_IROUTER<intid>` write: Aff3 [39:32], IRM [31] and Aff2..Aff0 [23:0] are kept,
    /// the rest is RES0. The SPI's target follows at once (an instance already in a list
    /// register stays there until that vCPU's next sync).
    pub fn write_irouter(&mut self, intid: u32, value: u64) {
        let route = value & (mpidr::AFFINITY_MASK | IROUTER_IRM);
        let target = self.route_target(route);
        if let Some(s) = intid
            .checked_sub(PRIVATE_INTIDS)
            .and_then(|i| self.spis.get_mut(i as usize))
        {
            s.route = route;
            s.target = target;
        }
    }

    /// `GICR_WAKER` of `vcpu`: ProcessorSleep [1] and ChildrenAsleep [2], which follows it
    /// at once (0x6 at reset).
    pub fn waker(&self, vcpu: usize) -> u32 {
        match self.cpus.get(vcpu) {
            Some(c) if c.sleep => WAKER_PROCESSOR_SLEEP | WAKER_CHILDREN_ASLEEP,
            _ => 0,
        }
    }

    /// A `GICR_WAKER` write: only ProcessorSleep is writable.
    pub fn write_waker(&mut self, vcpu: usize, value: u32) {
        if let Some(c) = self.cpus.get_mut(vcpu) {
            c.sleep = value & WAKER_PROCESSOR_SLEEP != 0;
        }
    }

    /// `GICR_CTLR` of `vcpu`: the DPG bits [26:24]; EnableLPIs, RWP and UWP read 0.
    pub fn rdist_ctlr(&self, vcpu: usize) -> u32 {
        self.cpus.get(vcpu).map_or(0, |c| c.rctlr)
    }

    /// A `GICR_CTLR` write: only the DPG bits are writable (no LPIs). 1-of-N SPIs are routed
    /// again.
    pub fn write_rdist_ctlr(&mut self, vcpu: usize, value: u32) {
        if let Some(c) = self.cpus.get_mut(vcpu) {
            c.rctlr = value & RCTLR_DPG_MASK;
            self.retarget_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::RCTLR_DPG1NS;
    use super::*;

    #[test]
    fn dist_ctlr_keeps_only_the_group_enables() {
        let mut g = Vgic::new(&[0], 32);
        assert_eq!(g.dist_ctlr(), 0x50, "ARE | DS at reset");
        g.write_dist_ctlr(u32::MAX);
        assert_eq!(g.dist_ctlr(), 0x53);
        assert!(g.grp1_enabled());
        g.write_dist_ctlr(CTLR_ENABLE_GRP0);
        assert_eq!(g.dist_ctlr(), 0x51);
        assert!(!g.grp1_enabled());
    }

    #[test]
    fn bits_set_clear_and_range() {
        let mut g = Vgic::new(&[0, 1], 32);
        g.write_bits(BitReg::Enable, 1, 0, 0x8000_0001, true);
        assert_eq!(g.read_bits(BitReg::Enable, 1, 0), 0x8000_0001);
        assert_eq!(g.read_bits(BitReg::Enable, 0, 0), 0, "private to vCPU 1");
        g.write_bits(BitReg::Enable, 1, 0, 1, false);
        assert_eq!(g.read_bits(BitReg::Enable, 1, 0), 0x8000_0000);
        assert!(g.is_enabled(1, 31) && !g.is_enabled(1, 0));
        g.write_bits(BitReg::Enable, 0, 32, u32::MAX, true);
        assert_eq!(
            g.read_bits(BitReg::Enable, 1, 32),
            u32::MAX,
            "SPIs are shared"
        );
        g.write_bits(BitReg::Enable, 0, 64, u32::MAX, true);
        assert_eq!(
            g.read_bits(BitReg::Enable, 0, 64),
            0,
            "beyond nr_spis: RAZ/WI"
        );
        assert_eq!(
            g.read_bits(BitReg::Group, 0, 32),
            u32::MAX,
            "Group 1 at reset"
        );
        g.write_bits(BitReg::Group, 0, 32, 0xf, false);
        assert_eq!(g.read_bits(BitReg::Group, 0, 32), !0xf);
        assert_eq!(g.read_bits(BitReg::Group, 5, 0), 0, "no vCPU 5");
        g.write_bits(BitReg::Active, 0, 32, 2, true);
        assert!(g.is_active(0, 33));
        g.write_bits(BitReg::Active, 0, 32, 2, false);
        assert!(!g.is_active(0, 33));
        assert_eq!(
            g.read_bits(BitReg::Enable, 0, u32::MAX - 3),
            0,
            "no overflow"
        );
        g.write_bits(BitReg::Enable, 0, u32::MAX - 3, u32::MAX, true);
    }

    #[test]
    fn pending_of_level_and_edge() {
        let mut g = Vgic::new(&[0], 32);
        g.set_spi_level(40, true);
        assert!(g.is_pending(0, 40), "level: the line");
        g.set_bit(BitReg::Pending, 0, 40, false);
        assert!(g.is_pending(0, 40), "ICPENDR does not clear a high line");
        g.set_spi_level(40, false);
        assert!(!g.is_pending(0, 40));
        g.set_bit(BitReg::Pending, 0, 40, true);
        assert!(g.is_pending(0, 40), "ISPENDR on a level interrupt");
        g.set_bit(BitReg::Pending, 0, 40, false);
        assert!(!g.is_pending(0, 40));
        g.set_edge(0, 41, true);
        g.set_spi_level(41, true);
        assert!(g.is_pending(0, 41));
        g.set_spi_level(41, false);
        assert!(g.is_pending(0, 41), "edge: latched");
        g.set_bit(BitReg::Pending, 0, 41, false);
        assert!(!g.is_pending(0, 41));
    }

    #[test]
    fn priority_and_config() {
        let mut g = Vgic::new(&[0], 32);
        g.set_priority(0, 33, 0xff);
        assert_eq!(g.priority(0, 33), 0xf8);
        g.set_priority(0, 2, 0xa7);
        assert_eq!(g.priority(0, 2), 0xa0);
        g.set_priority(0, 64, 0x80);
        assert_eq!(g.priority(0, 64), 0);
        assert_eq!(g.priority(3, 2), 0);
        g.set_edge(0, 3, false);
        assert!(g.is_edge(0, 3), "SGIs are always edge");
        assert!(!g.is_edge(0, 27), "PPIs reset level");
        g.set_edge(0, 27, true);
        assert!(g.is_edge(0, 27));
        g.set_edge(0, 33, true);
        assert!(g.is_edge(0, 33));
        assert!(!g.is_edge(0, 64));
    }

    #[test]
    fn irouter_routes_by_affinity_and_irm() {
        let m1 = mpidr::from_aff(1, 2, 3, 4);
        let mut g = Vgic::new(&[0, m1, 1], 32);
        g.write_irouter(33, m1 | 0xff00_0000_7f00_0000);
        assert_eq!(g.irouter(33), m1, "RES0 bits dropped");
        assert_eq!(g.spi_target(33), Some(1));
        g.write_irouter(33, 5);
        assert_eq!(g.spi_target(33), None, "no vCPU has affinity 5");
        g.write_irouter(33, 1);
        assert_eq!(g.spi_target(33), Some(2));
        g.write_irouter(33, IROUTER_IRM | 1);
        assert_eq!(g.irouter(33), IROUTER_IRM | 1);
        assert_eq!(g.spi_target(33), Some(0), "IRM: lowest vCPU");
        g.write_rdist_ctlr(0, RCTLR_DPG1NS);
        assert_eq!(g.rdist_ctlr(0), RCTLR_DPG1NS);
        assert_eq!(g.spi_target(33), Some(1), "vCPU 0 excluded by DPG1NS");
        assert_eq!(g.spi_target(34), Some(0), "IRM = 0 ignores DPG");
        for v in 0..3 {
            g.write_rdist_ctlr(v, u32::MAX);
        }
        assert_eq!(g.rdist_ctlr(1), RCTLR_DPG_MASK);
        assert_eq!(g.spi_target(33), None, "every vCPU excluded");
        g.write_irouter(31, 1);
        assert_eq!(g.irouter(31), 0, "not an SPI");
        g.write_irouter(64, 1);
        assert_eq!(g.irouter(64), 0, "beyond nr_spis");
        g.check_invariants();
    }

    #[test]
    fn waker_children_follow_processor_sleep() {
        let mut g = Vgic::new(&[0, 1], 32);
        assert_eq!(g.waker(1), 6);
        g.write_waker(1, 0);
        assert_eq!(g.waker(1), 0);
        assert_eq!(g.waker(0), 6, "per vCPU");
        g.write_waker(1, WAKER_CHILDREN_ASLEEP | 1);
        assert_eq!(g.waker(1), 0, "ChildrenAsleep and bit 0 are read-only");
        g.write_waker(1, WAKER_PROCESSOR_SLEEP);
        assert_eq!(g.waker(1), 6);
        assert_eq!(g.waker(9), 0);
        g.write_waker(9, 2);
        assert_eq!(g.rdist_ctlr(9), 0);
        g.write_rdist_ctlr(9, u32::MAX);
    }
}
