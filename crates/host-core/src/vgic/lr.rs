//! List registers: [`Vgic::flush_lrs`] before a REC entry, [`Vgic::sync_lrs`] after the exit,
//! and [`Vgic::has_deliverable`] for the scheduler. The module documentation of `vgic` describes
//! the life of an interrupt across them.

use super::{Vgic, MAX_LRS, PRIVATE_INTIDS};
use cca_abi::arch::ich::{self, LrState};

/// An `ICH_VMCR_EL2` that masks nothing: `VPMR` = 0xFF, `VENG1` = 1.
pub const UNMASKED_VMCR: u64 = 0xff << ich::VMCR_VPMR_SHIFT | ich::VMCR_VENG1;

const fn has_pending(s: LrState) -> bool {
    matches!(s, LrState::Pending | LrState::PendingActive)
}

const fn has_active(s: LrState) -> bool {
    matches!(s, LrState::Active | LrState::PendingActive)
}

impl Vgic {
    /// Folds `vcpu`'s list registers, read back after an exit (`lrs[n]` = `ICH_LR<n>_EL2`),
    /// into the interrupt state:
    ///
    /// - invalid: the guest completed the interrupt (a level-sensitive one whose line is still
    ///   high is pending again; its software-pending latch is consumed);
    /// - active or pending+active: it stays in that list register; a pending part is latched;
    /// - pending: it leaves the list register with its pending state (latched for an edge,
    ///   still given by the line or latch for a level-sensitive one), so that the next flush
    ///   places it by priority again, or not at all if the guest disabled it meanwhile.
    ///
    /// A list register whose vINTID is not the one the last flush wrote there counts as
    /// invalid. Calling it twice, or without a flush before, changes nothing; an unknown
    /// `vcpu` is ignored.
    pub fn sync_lrs(&mut self, vcpu: usize, lrs: &[u64]) {
        if !self.cpus.get(vcpu).is_some_and(|c| c.in_flight) {
            return;
        }
        for i in 0..MAX_LRS {
            let written = self.cpus[vcpu].lrs[i];
            if ich::lr_state(written) == LrState::Invalid {
                continue;
            }
            let x = ich::lr_vintid(written);
            let seen = lrs
                .get(i)
                .copied()
                .filter(|&lr| ich::lr_vintid(lr) == x)
                .map_or(LrState::Invalid, ich::lr_state);
            let keep = has_active(seen);
            if let Some(irq) = self.irq_mut(vcpu, x) {
                if irq.edge {
                    if has_pending(seen) {
                        irq.latch = true;
                    }
                } else if written & ich::LR_PENDING != 0 && !has_pending(seen) {
                    // Acknowledged: a software pending state is consumed.
                    irq.latch = false;
                }
                irq.active = keep;
                if !keep {
                    irq.owner = None;
                }
            }
            self.cpus[vcpu].lrs[i] = if keep {
                ich::lr_encode(
                    x,
                    ich::lr_priority(written),
                    seen,
                    written & ich::LR_EOI != 0,
                )
            } else {
                0
            };
        }
        self.cpus[vcpu].in_flight = false;
    }

    /// Fills `vcpu`'s list registers before an entry. `lrs` holds its implemented list
    /// registers as last read back (at most [`MAX_LRS`] are used; any beyond are zeroed); every
    /// element is rewritten:
    ///
    /// - each active interrupt stays in its list register (pending+active for an edge that
    ///   arrived meanwhile; a level-sensitive one never pending+active), keeping the priority
    ///   it was acknowledged at, or leaves it if the guest cleared its active state;
    /// - the free ones receive, best first (lowest priority value, then lowest INTID), the
    ///   pending, enabled, Group 1 interrupts routed to `vcpu` that are not active and in no
    ///   list register of the VM, while `GICD_CTLR.EnableGrp1` is set;
    /// - every value is Group 1 with HW = 0 and each vINTID appears once; EOI is set for
    ///   level-sensitive interrupts (the deactivation brings a maintenance interrupt, and the
    ///   next sync samples the line again), and for an active edge interrupt with another
    ///   instance waiting that the list register cannot carry.
    ///
    /// Returns true when more interrupts were ready for the vCPU than list registers were
    /// free: the caller should then enter with `ICH_HCR_EL2.UIE` (underflow maintenance
    /// interrupt) so that the vCPU exits once the guest has completed enough of them.
    ///
    /// If the caller did not [`Vgic::sync_lrs`] since the last flush, `lrs` is synced first.
    /// An unknown `vcpu` gets all list registers zeroed.
    pub fn flush_lrs(&mut self, vcpu: usize, lrs: &mut [u64]) -> bool {
        if vcpu >= self.cpus.len() {
            lrs.fill(0);
            return false;
        }
        self.sync_lrs(vcpu, lrs);
        let n = lrs.len().min(MAX_LRS);

        // The list registers that stay (active ones), inside the first n.
        let mut slots = [0u64; MAX_LRS];
        let kept = self.cpus[vcpu].lrs;
        for (i, &lr) in kept.iter().enumerate().take(n) {
            slots[i] = lr;
        }
        for &lr in kept.iter().skip(n) {
            if ich::lr_state(lr) == LrState::Invalid {
                continue;
            }
            if let Some(free) = slots[..n].iter().position(|&s| s == 0) {
                slots[free] = lr;
            } else if let Some(irq) = self.irq_mut(vcpu, ich::lr_vintid(lr)) {
                // Fewer list registers than before, all taken: the instance is lost.
                irq.owner = None;
                irq.active = false;
            }
        }

        // Their state now.
        for slot in slots.iter_mut().take(n) {
            let old = *slot;
            if ich::lr_state(old) == LrState::Invalid {
                continue;
            }
            let x = ich::lr_vintid(old);
            let ready = self.ready_for(vcpu, x);
            let Some(irq) = self.irq_mut(vcpu, x) else {
                *slot = 0;
                continue;
            };
            let act = irq.active;
            let pend = ready && (irq.edge || !act);
            let state = match (pend, act) {
                (true, true) => LrState::PendingActive,
                (false, true) => LrState::Active,
                (true, false) => LrState::Pending,
                (false, false) => {
                    irq.owner = None;
                    *slot = 0;
                    continue;
                }
            };
            let priority = if act && old & ich::LR_ACTIVE != 0 {
                ich::lr_priority(old)
            } else {
                irq.priority
            };
            let eoi = !irq.edge || (act && !pend && irq.pending_source());
            if irq.edge && pend {
                irq.latch = false;
            }
            *slot = ich::lr_encode(x, priority, state, eoi);
        }

        // The free ones, best first.
        let mut overflow = false;
        for slot in slots.iter_mut().take(n) {
            if *slot != 0 {
                continue;
            }
            let Some(x) = self.best_waiting(vcpu) else {
                break;
            };
            if let Some(irq) = self.irq_mut(vcpu, x) {
                irq.owner = Some(vcpu);
                if irq.edge {
                    irq.latch = false;
                }
                *slot = ich::lr_encode(x, irq.priority, LrState::Pending, !irq.edge);
            }
        }
        if slots[..n].iter().all(|&s| s != 0) && self.best_waiting(vcpu).is_some() {
            overflow = true;
        }

        for (i, lr) in lrs.iter_mut().enumerate() {
            *lr = slots.get(i).copied().unwrap_or(0);
        }
        let cpu = &mut self.cpus[vcpu];
        cpu.lrs = slots;
        cpu.in_flight = true;
        overflow
    }

    /// The INTIDs `vcpu` may receive: its SGIs and PPIs, then the SPIs.
    fn intids(&self) -> core::ops::Range<u32> {
        0..PRIVATE_INTIDS + self.nr_spis
    }

    /// The best interrupt waiting for a free list register of `vcpu`: ready, not active, in no
    /// list register; lowest priority value, then lowest INTID.
    fn best_waiting(&self, vcpu: usize) -> Option<u32> {
        let mut best: Option<(u8, u32)> = None;
        for x in self.intids() {
            let Some(irq) = self.irq(vcpu, x) else {
                continue;
            };
            if irq.owner.is_some() || irq.active || !self.ready_for(vcpu, x) {
                continue;
            }
            if best.is_none_or(|(p, _)| irq.priority < p) {
                best = Some((irq.priority, x));
            }
        }
        best.map(|(_, x)| x)
    }

    /// Whether `vcpu` has an interrupt to take, whatever the guest's priority mask: one
    /// pending in its list registers, or one waiting for them (ready: pending, enabled,
    /// Group 1, distributor enabled, routed to it; not active; in no other vCPU's list
    /// registers). The scheduler wakes a vCPU blocked in WFI when this becomes true.
    /// [`Vgic::has_deliverable_under`] also applies the guest's `ICH_VMCR_EL2`.
    pub fn has_deliverable(&self, vcpu: usize) -> bool {
        self.has_deliverable_under(vcpu, UNMASKED_VMCR)
    }

    /// [`Vgic::has_deliverable`] for the virtual CPU interface state `vmcr` (the vCPU's
    /// `ICH_VMCR_EL2` as saved at its last exit): false while `VENG1` is clear, and only
    /// interrupts whose priority value is below `VPMR` count. The guest's running priority
    /// (its active interrupts) is not considered.
    pub fn has_deliverable_under(&self, vcpu: usize, vmcr: u64) -> bool {
        let Some(cpu) = self.cpus.get(vcpu) else {
            return false;
        };
        if vmcr & ich::VMCR_VENG1 == 0 {
            return false;
        }
        let pmr = ich::vmcr_pmr(vmcr);
        if cpu
            .lrs
            .iter()
            .any(|&lr| ich::lr_state(lr) == LrState::Pending && ich::lr_priority(lr) < pmr)
        {
            return true;
        }
        self.intids().any(|x| {
            self.irq(vcpu, x).is_some_and(|irq| {
                irq.owner.is_none_or(|o| o == vcpu)
                    && !irq.active
                    && irq.priority < pmr
                    && self.ready_for(vcpu, x)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{BitReg, CTLR_ENABLE_GRP1, IROUTER_IRM};
    use super::*;
    use ich::{lr_encode, lr_priority, lr_state, lr_vintid, LR_ACTIVE, LR_EOI, LR_PENDING};

    /// A GIC with the distributor on and `intids` of vCPU 0 (and SPIs) enabled.
    fn gic(nr_vcpus: usize, intids: &[u32]) -> Vgic {
        let mpidrs: alloc::vec::Vec<u64> = (0..nr_vcpus as u64).collect();
        let mut g = Vgic::new(&mpidrs, 64);
        g.write_dist_ctlr(CTLR_ENABLE_GRP1);
        for &x in intids {
            g.set_enabled(0, x, true);
        }
        g
    }

    /// Flushes and returns how many list registers are valid.
    fn used(g: &mut Vgic, v: usize, lrs: &mut [u64]) -> usize {
        g.flush_lrs(v, lrs);
        lrs.iter().filter(|&&l| l != 0).count()
    }

    fn vintids(lrs: &[u64]) -> alloc::vec::Vec<u32> {
        lrs.iter()
            .filter(|&&l| lr_state(l) != LrState::Invalid)
            .map(|&l| lr_vintid(l))
            .collect()
    }

    /// The guest acknowledges the LR holding `x`.
    fn ack(lrs: &mut [u64], x: u32) {
        let l = lrs
            .iter_mut()
            .find(|l| lr_vintid(**l) == x && **l != 0)
            .unwrap();
        assert_eq!(lr_state(*l), LrState::Pending, "acknowledging {x}");
        *l = *l & !LR_PENDING | LR_ACTIVE;
    }

    /// The guest deactivates the LR holding `x` (pending+active becomes pending).
    fn eoi(lrs: &mut [u64], x: u32) {
        let l = lrs
            .iter_mut()
            .find(|l| lr_vintid(**l) == x && **l != 0)
            .unwrap();
        assert!(has_active(lr_state(*l)));
        *l &= !LR_ACTIVE;
        if lr_state(*l) == LrState::Invalid {
            *l = 0;
        }
    }

    #[test]
    fn nothing_pending_nothing_flushed() {
        let mut g = gic(1, &[27]);
        let mut lrs = [0xdead; 4];
        assert!(!g.flush_lrs(0, &mut lrs));
        assert_eq!(lrs, [0; 4], "stale values are cleared");
        assert!(!g.has_deliverable(0));
        g.check_invariants();
    }

    #[test]
    fn level_timer_round_trip() {
        let mut g = gic(1, &[27]);
        g.set_priority(0, 27, 0xa0);
        g.set_ppi_level(0, 27, true);
        assert!(g.has_deliverable(0));
        let mut lrs = [0u64; 4];
        assert!(!g.flush_lrs(0, &mut lrs));
        assert_eq!(lrs[0], lr_encode(27, 0xa0, LrState::Pending, true));
        assert_eq!(lrs[0] & ich::LR_HW, 0);
        g.check_invariants();
        // Exit before the guest took it: still pending, back in the distributor.
        g.sync_lrs(0, &lrs);
        assert!(g.is_pending(0, 27));
        g.check_invariants();
        g.flush_lrs(0, &mut lrs);
        ack(&mut lrs, 27);
        g.sync_lrs(0, &lrs);
        assert!(g.is_active(0, 27));
        g.check_invariants();
        // Line still high while it is active: no pending+active for level, EOI kept.
        assert_eq!(used(&mut g, 0, &mut lrs), 1);
        assert_eq!(lrs[0], lr_encode(27, 0xa0, LrState::Active, true));
        // The guest deactivates; the line is still high: pending again.
        eoi(&mut lrs, 27);
        g.sync_lrs(0, &lrs);
        assert!(!g.is_active(0, 27) && g.is_pending(0, 27));
        g.flush_lrs(0, &mut lrs);
        assert_eq!(lr_state(lrs[0]), LrState::Pending);
        ack(&mut lrs, 27);
        eoi(&mut lrs, 27);
        g.sync_lrs(0, &lrs);
        g.set_ppi_level(0, 27, false);
        assert_eq!(used(&mut g, 0, &mut lrs), 0, "line low: not re-delivered");
        assert!(!g.is_pending(0, 27));
        g.check_invariants();
    }

    #[test]
    fn level_line_drop_withdraws_an_unacknowledged_lr() {
        let mut g = gic(1, &[27]);
        g.set_ppi_level(0, 27, true);
        let mut lrs = [0u64; 2];
        g.flush_lrs(0, &mut lrs);
        g.sync_lrs(0, &lrs);
        g.set_ppi_level(0, 27, false);
        assert_eq!(used(&mut g, 0, &mut lrs), 0);
        assert_eq!(lrs, [0, 0]);
    }

    #[test]
    fn edge_again_while_active_becomes_pending_active() {
        let mut g = gic(1, &[1]);
        g.send_sgi(0, 1 << 24 | 1);
        let mut lrs = [0u64; 4];
        g.flush_lrs(0, &mut lrs);
        assert_eq!(
            lrs[0],
            lr_encode(1, 0, LrState::Pending, false),
            "edge: no EOI"
        );
        ack(&mut lrs, 1);
        // A second SGI while the vCPU runs (the previous instance acknowledged).
        g.send_sgi(0, 1 << 24 | 1);
        assert!(g.is_pending(0, 1));
        g.sync_lrs(0, &lrs);
        g.flush_lrs(0, &mut lrs);
        assert_eq!(vintids(&lrs), [1], "once");
        assert_eq!(lr_state(lrs[0]), LrState::PendingActive);
        eoi(&mut lrs, 1);
        ack(&mut lrs, 1);
        eoi(&mut lrs, 1);
        g.sync_lrs(0, &lrs);
        assert!(!g.is_pending(0, 1) && !g.is_active(0, 1));
        assert_eq!(used(&mut g, 0, &mut lrs), 0, "delivered exactly twice");
        g.check_invariants();
    }

    #[test]
    fn edge_again_while_still_pending_merges() {
        let mut g = gic(1, &[2]);
        g.send_sgi(0, 2 << 24 | 1);
        let mut lrs = [0u64; 4];
        g.flush_lrs(0, &mut lrs);
        g.send_sgi(0, 2 << 24 | 1);
        g.sync_lrs(0, &lrs);
        g.flush_lrs(0, &mut lrs);
        assert_eq!(vintids(&lrs), [2]);
        assert_eq!(lr_state(lrs[0]), LrState::Pending);
        ack(&mut lrs, 2);
        eoi(&mut lrs, 2);
        g.sync_lrs(0, &lrs);
        assert_eq!(used(&mut g, 0, &mut lrs), 0);
    }

    #[test]
    fn edge_completed_then_again_is_requeued() {
        let mut g = gic(1, &[3]);
        let mut lrs = [0u64; 4];
        for _ in 0..3 {
            g.send_sgi(0, 3 << 24 | 1);
            assert_eq!(used(&mut g, 0, &mut lrs), 1);
            ack(&mut lrs, 3);
            eoi(&mut lrs, 3);
            g.sync_lrs(0, &lrs);
        }
        assert_eq!(used(&mut g, 0, &mut lrs), 0);
    }

    #[test]
    fn ten_pending_four_lrs_by_priority() {
        let mut g = gic(1, &[]);
        // SPIs 32..42, priorities falling with INTID except two ties.
        for (k, x) in (32..42).enumerate() {
            g.set_enabled(0, x, true);
            g.set_edge(0, x, true);
            g.set_priority(0, x, 0xf8 - 8 * k as u8);
            g.set_spi_level(x, true);
        }
        g.set_priority(0, 32, 0x00);
        g.set_priority(0, 33, 0x00);
        let mut lrs = [0u64; 4];
        assert!(g.flush_lrs(0, &mut lrs), "overflow");
        assert_eq!(
            vintids(&lrs),
            [32, 33, 41, 40],
            "ties by INTID, then priority"
        );
        g.check_invariants();
        let mut delivered = alloc::vec::Vec::new();
        let mut rounds = 0;
        loop {
            // The guest takes and completes everything in its LRs.
            for x in vintids(&lrs) {
                ack(&mut lrs, x);
                eoi(&mut lrs, x);
                delivered.push(x);
            }
            g.sync_lrs(0, &lrs);
            g.check_invariants();
            let overflow = g.flush_lrs(0, &mut lrs);
            rounds += 1;
            if vintids(&lrs).is_empty() {
                assert!(!overflow);
                break;
            }
            assert_eq!(overflow, rounds == 1, "round {rounds}");
        }
        delivered.sort_unstable();
        assert_eq!(
            delivered,
            (32..42).collect::<alloc::vec::Vec<_>>(),
            "each once"
        );
        assert_eq!(rounds, 3);
    }

    #[test]
    fn higher_priority_arrival_displaces_unacknowledged_lower_ones() {
        let mut g = gic(1, &[]);
        for x in 32..34 {
            g.set_enabled(0, x, true);
            g.set_priority(0, x, 0x80);
            g.set_spi_level(x, true);
        }
        let mut lrs = [0u64; 2];
        g.flush_lrs(0, &mut lrs);
        assert_eq!(vintids(&lrs), [32, 33]);
        g.sync_lrs(0, &lrs);
        g.set_enabled(0, 40, true);
        g.set_priority(0, 40, 0x10);
        g.set_spi_level(40, true);
        assert!(g.flush_lrs(0, &mut lrs));
        assert_eq!(vintids(&lrs), [40, 32]);
        assert!(g.is_pending(0, 33), "displaced, still pending");
    }

    #[test]
    fn active_lrs_stay_and_keep_their_priority() {
        let mut g = gic(1, &[]);
        for x in 32..36 {
            g.set_enabled(0, x, true);
            g.set_priority(0, x, 0x80);
            g.set_spi_level(x, true);
        }
        let mut lrs = [0u64; 2];
        g.flush_lrs(0, &mut lrs);
        ack(&mut lrs, 33);
        g.sync_lrs(0, &lrs);
        g.set_priority(0, 33, 0x20);
        g.flush_lrs(0, &mut lrs);
        assert_eq!(
            lrs[1],
            lr_encode(33, 0x80, LrState::Active, true),
            "slot and priority"
        );
        assert_eq!(lr_vintid(lrs[0]), 32);
        assert_eq!(lr_priority(lrs[0]), 0x80);
    }

    #[test]
    fn disabling_an_interrupt_pending_in_an_lr() {
        let mut g = gic(1, &[]);
        g.set_enabled(0, 33, true);
        g.set_edge(0, 33, true);
        g.set_spi_level(33, true);
        let mut lrs = [0u64; 4];
        g.flush_lrs(0, &mut lrs);
        assert_eq!(vintids(&lrs), [33]);
        // The guest exits (an ICENABLER write) before acknowledging it.
        g.sync_lrs(0, &lrs);
        g.set_enabled(0, 33, false);
        assert_eq!(used(&mut g, 0, &mut lrs), 0, "withdrawn");
        assert!(g.is_pending(0, 33), "still pending");
        assert!(!g.has_deliverable(0));
        g.sync_lrs(0, &lrs);
        g.set_enabled(0, 33, true);
        g.flush_lrs(0, &mut lrs);
        assert_eq!(vintids(&lrs), [33], "delivered once enabled again");
        g.check_invariants();
    }

    #[test]
    fn group0_and_distributor_disable_withdraw_too() {
        let mut g = gic(1, &[27]);
        g.set_ppi_level(0, 27, true);
        let mut lrs = [0u64; 4];
        g.flush_lrs(0, &mut lrs);
        g.sync_lrs(0, &lrs);
        g.set_bit(BitReg::Group, 0, 27, false);
        assert_eq!(used(&mut g, 0, &mut lrs), 0, "Group 0 is never delivered");
        g.sync_lrs(0, &lrs);
        g.set_bit(BitReg::Group, 0, 27, true);
        g.write_dist_ctlr(0);
        assert_eq!(used(&mut g, 0, &mut lrs), 0, "distributor off");
        assert!(!g.has_deliverable(0));
        g.sync_lrs(0, &lrs);
        g.write_dist_ctlr(CTLR_ENABLE_GRP1);
        assert_eq!(used(&mut g, 0, &mut lrs), 1);
    }

    #[test]
    fn clearing_pending_and_active_of_lr_interrupts() {
        let mut g = gic(1, &[4, 5]);
        g.send_sgi(0, 4 << 24 | 1);
        g.send_sgi(0, 5 << 24 | 1);
        let mut lrs = [0u64; 4];
        g.flush_lrs(0, &mut lrs);
        ack(&mut lrs, 5);
        g.sync_lrs(0, &lrs);
        // ICPENDR of SGI 4 (pending, back in the distributor), ICACTIVER of SGI 5.
        g.set_bit(BitReg::Pending, 0, 4, false);
        g.set_bit(BitReg::Active, 0, 5, false);
        assert_eq!(used(&mut g, 0, &mut lrs), 0);
        assert!(!g.is_active(0, 5) && !g.is_pending(0, 4));
        g.check_invariants();
        // ISACTIVER of an idle interrupt: active outside any LR, never delivered.
        g.set_bit(BitReg::Active, 0, 4, true);
        g.send_sgi(0, 4 << 24 | 1);
        g.sync_lrs(0, &lrs);
        assert_eq!(used(&mut g, 0, &mut lrs), 0);
        assert!(!g.has_deliverable(0));
        g.sync_lrs(0, &lrs);
        g.set_bit(BitReg::Active, 0, 4, false);
        assert_eq!(used(&mut g, 0, &mut lrs), 1);
    }

    #[test]
    fn icactiver_of_a_pending_active_lr_leaves_the_pending_part() {
        let mut g = gic(1, &[6]);
        g.send_sgi(0, 6 << 24 | 1);
        let mut lrs = [0u64; 4];
        g.flush_lrs(0, &mut lrs);
        ack(&mut lrs, 6);
        g.sync_lrs(0, &lrs);
        g.send_sgi(0, 6 << 24 | 1);
        g.set_bit(BitReg::Active, 0, 6, false);
        g.flush_lrs(0, &mut lrs);
        assert_eq!(lrs[0], lr_encode(6, 0, LrState::Pending, false));
    }

    #[test]
    fn sync_without_flush_and_flush_without_sync() {
        let mut g = gic(1, &[27]);
        let mut lrs = [lr_encode(27, 0, LrState::Active, false), 0];
        g.sync_lrs(0, &lrs);
        assert!(
            !g.is_active(0, 27),
            "an LR this GIC did not write is ignored"
        );
        g.set_ppi_level(0, 27, true);
        g.flush_lrs(0, &mut lrs);
        assert_eq!(vintids(&lrs), [27]);
        // The caller skips sync; the guest acknowledged it.
        ack(&mut lrs, 27);
        g.flush_lrs(0, &mut lrs);
        assert_eq!(lr_state(lrs[0]), LrState::Active, "synced by the flush");
        g.sync_lrs(0, &lrs);
        g.sync_lrs(0, &[0, 0]);
        assert!(g.is_active(0, 27), "a second sync changes nothing");
        g.check_invariants();
    }

    #[test]
    fn a_foreign_or_moved_lr_counts_as_completed() {
        let mut g = gic(1, &[27, 1]);
        g.set_ppi_level(0, 27, true);
        let mut lrs = [0u64; 4];
        g.flush_lrs(0, &mut lrs);
        lrs[0] = lr_encode(1, 0, LrState::Active, false);
        lrs[1] = lr_encode(27, 0, LrState::Active, false) | ich::LR_HW;
        g.sync_lrs(0, &lrs);
        assert!(!g.is_active(0, 27) && !g.is_active(0, 1));
        g.flush_lrs(0, &mut lrs);
        assert_eq!(vintids(&lrs), [27], "line still high; garbage gone");
        assert!(lrs.iter().all(|l| l & ich::LR_HW == 0));
        g.check_invariants();
    }

    #[test]
    fn fewer_lrs_than_before() {
        let mut g = gic(1, &[1, 2, 3]);
        for s in 1..4 {
            g.send_sgi(0, s << 24 | 1);
        }
        let mut lrs = [0u64; 4];
        g.flush_lrs(0, &mut lrs);
        for x in 1..4 {
            ack(&mut lrs, x);
        }
        g.sync_lrs(0, &lrs);
        let mut two = [0u64; 2];
        assert_eq!(used(&mut g, 0, &mut two), 2, "two of three kept");
        g.check_invariants();
        let mut none: [u64; 0] = [];
        g.sync_lrs(0, &two);
        g.flush_lrs(0, &mut none);
        g.check_invariants();
        let mut many = [7u64; 20];
        g.sync_lrs(0, &none);
        g.send_sgi(0, 9 << 24 | 1);
        g.set_enabled(0, 9, true);
        assert_eq!(used(&mut g, 0, &mut many), 1);
        assert_eq!(&many[16..], &[0; 4], "beyond 16: zeroed");
        let mut lrs = [1u64; 3];
        assert!(!g.flush_lrs(5, &mut lrs));
        assert_eq!(lrs, [0; 3], "no such vCPU");
        g.sync_lrs(5, &lrs);
    }

    #[test]
    fn spis_go_to_their_target_only_and_once() {
        let mut g = gic(2, &[]);
        g.set_enabled(0, 40, true);
        g.write_irouter(40, 1);
        g.set_spi_level(40, true);
        let (mut l0, mut l1) = ([0u64; 4], [0u64; 4]);
        assert_eq!(used(&mut g, 0, &mut l0), 0);
        assert!(!g.has_deliverable(0) && g.has_deliverable(1));
        g.flush_lrs(1, &mut l1);
        assert_eq!(vintids(&l1), [40]);
        ack(&mut l1, 40);
        g.sync_lrs(1, &l1);
        // Re-routed while active on vCPU 1: stays there, not delivered to vCPU 0.
        g.write_irouter(40, 0);
        g.sync_lrs(0, &l0);
        assert_eq!(used(&mut g, 0, &mut l0), 0);
        assert!(!g.has_deliverable(0));
        g.flush_lrs(1, &mut l1);
        assert_eq!(l1[0], lr_encode(40, 0, LrState::Active, true));
        eoi(&mut l1, 40);
        g.sync_lrs(1, &l1);
        g.check_invariants();
        // Completed; line still high: now vCPU 0's.
        assert!(g.has_deliverable(0) && !g.has_deliverable(1));
        g.sync_lrs(0, &l0);
        g.flush_lrs(0, &mut l0);
        assert_eq!(vintids(&l0), [40]);
        g.flush_lrs(1, &mut l1);
        assert_eq!(vintids(&l1), [] as [u32; 0]);
        g.check_invariants();
    }

    #[test]
    fn edge_spi_waiting_behind_an_active_one_asks_for_eoi() {
        let mut g = gic(2, &[]);
        g.set_enabled(0, 41, true);
        g.set_edge(0, 41, true);
        g.write_irouter(41, IROUTER_IRM);
        g.set_spi_level(41, true);
        let mut l0 = [0u64; 4];
        g.flush_lrs(0, &mut l0);
        ack(&mut l0, 41);
        g.sync_lrs(0, &l0);
        g.write_rdist_ctlr(0, super::super::RCTLR_DPG1NS);
        assert_eq!(g.spi_target(41), Some(1));
        g.set_spi_level(41, false);
        g.set_spi_level(41, true);
        g.flush_lrs(0, &mut l0);
        assert_eq!(
            l0[0],
            lr_encode(41, 0, LrState::Active, true),
            "EOI: vCPU 1 waits"
        );
    }

    #[test]
    fn has_deliverable_respects_vmcr() {
        let mut g = gic(1, &[27]);
        g.set_priority(0, 27, 0xa0);
        g.set_ppi_level(0, 27, true);
        assert!(g.has_deliverable(0));
        assert!(
            !g.has_deliverable_under(0, UNMASKED_VMCR & !ich::VMCR_VENG1),
            "Group 1 off"
        );
        assert!(g.has_deliverable_under(0, UNMASKED_VMCR));
        assert!(
            !g.has_deliverable_under(0, 0xa0 << 24 | ich::VMCR_VENG1),
            "masked"
        );
        assert!(g.has_deliverable_under(0, 0xa8 << 24 | ich::VMCR_VENG1));
        assert!(!g.has_deliverable(1));
        let mut lrs = [0u64; 4];
        g.flush_lrs(0, &mut lrs);
        assert!(g.has_deliverable(0), "pending in an LR (in flight)");
        assert!(!g.has_deliverable_under(0, 0x80 << 24 | ich::VMCR_VENG1));
        ack(&mut lrs, 27);
        g.sync_lrs(0, &lrs);
        assert!(!g.has_deliverable(0), "active: nothing to take");
    }

    #[test]
    fn level_software_pending_is_consumed_by_the_acknowledge() {
        let mut g = gic(1, &[]);
        g.set_enabled(0, 35, true);
        g.set_bit(BitReg::Pending, 0, 35, true);
        let mut lrs = [0u64; 4];
        g.flush_lrs(0, &mut lrs);
        assert_ne!(lrs[0] & LR_EOI, 0);
        ack(&mut lrs, 35);
        g.sync_lrs(0, &lrs);
        assert!(!g.is_pending(0, 35));
        // ISPENDR while it is active: kept for after the deactivation.
        g.set_bit(BitReg::Pending, 0, 35, true);
        g.flush_lrs(0, &mut lrs);
        assert_eq!(lr_state(lrs[0]), LrState::Active);
        g.sync_lrs(0, &lrs);
        assert!(g.is_pending(0, 35), "the Active LR did not consume it");
        g.flush_lrs(0, &mut lrs);
        eoi(&mut lrs, 35);
        g.sync_lrs(0, &lrs);
        g.flush_lrs(0, &mut lrs);
        assert_eq!(lr_state(lrs[0]), LrState::Pending);
    }

    #[test]
    fn reset_vcpu_releases_its_lrs() {
        let mut g = gic(2, &[27]);
        g.set_enabled(0, 40, true);
        g.set_spi_level(40, true);
        g.set_ppi_level(0, 27, true);
        g.write_waker(0, 0);
        let mut lrs = [0u64; 4];
        g.flush_lrs(0, &mut lrs);
        ack(&mut lrs, 40);
        g.sync_lrs(0, &lrs);
        g.reset_vcpu(0);
        g.check_invariants();
        assert!(
            !g.is_active(0, 40) && g.is_pending(0, 40),
            "SPI released, line high"
        );
        assert!(
            !g.is_enabled(0, 27) && g.ppi_level(0, 27),
            "line kept, enable reset"
        );
        assert_eq!(g.waker(0), 6);
        g.set_enabled(0, 27, true);
        assert_eq!(used(&mut g, 0, &mut lrs), 2, "stale LRs overwritten");
        g.check_invariants();
        g.reset_vcpu(9);
    }
}
