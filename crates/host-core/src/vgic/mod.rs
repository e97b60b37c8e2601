//! The virtual GICv3: interrupt state of every INTID of a VM and its delivery to vCPUs through
//! the GIC virtual CPU interface's list registers.
//!
//! # Model
//!
//! One [`Vgic`] holds, for every vCPU, its 16 SGIs and 16 PPIs (INTIDs 0..32), and for the
//! VM its SPIs (INTIDs 32..32 + [`Vgic::nr_spis`]). Each interrupt has a group, an enable, a
//! priority, a configuration (edge or level; SGIs are always edge, PPIs and SPIs reset to
//! level), a pending latch (an edge seen, or a software `ISPENDR` write), an input line level
//! (level-sensitive sources: [`Vgic::set_ppi_level`], [`Vgic::set_spi_level`]) and an active
//! state. A level-sensitive interrupt is pending while its line is high or its latch is set;
//! an edge-triggered one while its latch is set. An SPI goes to the vCPU its `GICD_IROUTER`
//! names ([`Vgic::spi_target`]).
//!
//! The distributor runs with one Security state (`GICD_CTLR.DS` = 1) and affinity routing
//! (`ARE` = 1) fixed. Only Group 1 interrupts are delivered, and only while
//! `GICD_CTLR.EnableGrp1` is set (for SGIs and PPIs too, as QEMU and KVM do). The
//! redistributor's `GICR_WAKER.ProcessorSleep` is kept for the guest's handshake but does not
//! gate delivery (a virtual PE has no power domain; KVM does the same).
//!
//! # List registers
//!
//! The interrupts reach the guest through the `ICH_LR<n>_EL2` of the vCPU's REC. The VMM keeps
//! the vCPU's list-register values and calls, around every `REC_ENTER`:
//!
//! 1. [`Vgic::flush_lrs`] before entering: it rewrites the whole slice. List registers holding an
//!    active interrupt stay where they are; the free ones get the highest-priority (lowest
//!    value, then lowest INTID) pending, enabled, Group 1 interrupts that target the vCPU and
//!    are in no list register, each vINTID at most once, HW = 0, Group 1, with the EOI bit for
//!    level-sensitive ones. It returns true when more were pending than list registers
//!    were free; the caller then sets `ICH_HCR_EL2.UIE` so that the guest's completions bring the vCPU back for the rest.
//! 2. [`Vgic::sync_lrs`] after the exit, with the list registers read back: an invalid one was
//!    completed by the guest (a level-sensitive interrupt whose line is still high is pending
//!    again); an active one stays in its list register; a pending one returns to the
//!    distributor's state (so the next flush orders it by priority again, and a disable,
//!    clear or re-route the guest makes meanwhile takes effect). An edge that arrives while
//!    the previous instance is in a list register is latched and delivered again: as
//!    pending+active behind an active instance, or merged with a still-pending one (what the
//!    architecture does with a second edge before the first is acknowledged).
//!
//! Level-sensitive interrupts are never put in the pending+active state (software resampling,
//! as KVM does): while the guest handles one, its list register is active with EOI = 1, so
//! the deactivation raises a maintenance interrupt and the next sync samples the line again.
//!
//! Between `sync_lrs` and `flush_lrs` the vCPU's interrupts live entirely in this structure, so the
//! guest's distributor and redistributor accesses see and change them exactly. While a vCPU
//! runs on another physical CPU (after `flush_lrs`, before `sync_lrs`), a change that another vCPU
//! makes to an interrupt in its list registers (a clear or disable) takes effect at its next
//! exit; `GICD_CTLR.RWP` reads 0. An SPI that sits active in one vCPU's list registers is
//! delivered to no other vCPU until that vCPU deactivates it.
//!
//! [`Vgic::has_deliverable`] tells the scheduler whether a vCPU blocked in WFI has something
//! to take; [`Vgic::send_sgi`] routes a trapped `ICC_SGI1R_EL1` write and returns the vCPUs it
//! made an SGI pending on.
//!
//! Submodules: `irq` (per-interrupt state), `regs` (the register-level view the GICD and GICR
//! models use), `inject` (lines and SGIs), `lr` (list registers), `mmio` (access-width
//! helpers shared by the GICD and GICR models).

mod inject;
mod irq;
mod lr;
pub(crate) mod mmio;
mod regs;

#[cfg(test)]
mod scenario_tests;

use alloc::vec::Vec;
use cca_abi::arch::mpidr;
use irq::Irq;

pub use lr::UNMASKED_VMCR;
pub use regs::BitReg;

/// INTIDs below this are private to a vCPU (SGIs 0..16, PPIs 16..32).
pub const PRIVATE_INTIDS: u32 = 32;
/// The largest number of SPIs a GICv3 without extended SPIs has (INTIDs 32..1020).
pub const MAX_SPIS: u32 = 988;
/// The most list registers a virtual CPU interface has (`ICH_VTR_EL2.ListRegs` + 1 ≤ 16).
pub const MAX_LRS: usize = 16;
/// The priority bits the distributor keeps (5, as `ICH_VTR_EL2.PRIbits` on QEMU and most
/// cores): writes of the low three bits are ignored, as KVM does.
pub const PRIORITY_MASK: u8 = 0xf8;

/// `GICD_CTLR.EnableGrp0`.
pub const CTLR_ENABLE_GRP0: u32 = 1 << 0;
/// `GICD_CTLR.EnableGrp1` (with DS = 1 the only Group 1 enable).
pub const CTLR_ENABLE_GRP1: u32 = 1 << 1;
/// `GICD_CTLR.ARE`: affinity routing, RAO/WI.
pub const CTLR_ARE: u32 = 1 << 4;
/// `GICD_CTLR.DS`: one Security state, RAO/WI.
pub const CTLR_DS: u32 = 1 << 6;
/// `GICD_IROUTER.Interrupt_Routing_Mode`: any participating vCPU.
pub const IROUTER_IRM: u64 = 1 << 31;
/// `GICR_WAKER.ProcessorSleep`.
pub const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
/// `GICR_WAKER.ChildrenAsleep`.
pub const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// `GICR_CTLR.DPG0`, `DPG1NS`, `DPG1S`: the vCPU does not take 1-of-N (IRM = 1) SPIs of
/// that group. With DS = 1, Group 1 SPIs obey `DPG1NS`.
pub const RCTLR_DPG_MASK: u32 = 7 << 24;
/// `GICR_CTLR.DPG1NS`.
pub const RCTLR_DPG1NS: u32 = 1 << 25;

/// Per-vCPU state: private interrupts, redistributor registers and the list registers as
/// last written (or folded back).
#[derive(Clone)]
struct Cpu {
    irqs: [Irq; PRIVATE_INTIDS as usize],
    /// `GICR_WAKER.ProcessorSleep` (ChildrenAsleep follows it).
    sleep: bool,
    /// `GICR_CTLR` (the DPG bits).
    rctlr: u32,
    /// The list registers: after a flush, what it wrote; after a sync, the active ones kept.
    lrs: [u64; MAX_LRS],
    /// Flushed and not yet synced: the list registers carry state this structure lacks.
    in_flight: bool,
}

impl Cpu {
    fn new() -> Self {
        Self {
            irqs: core::array::from_fn(|x| Irq::reset(x < 16)),
            sleep: true,
            rctlr: 0,
            lrs: [0; MAX_LRS],
            in_flight: false,
        }
    }
}

/// One shared peripheral interrupt.
#[derive(Clone, Copy)]
struct Spi {
    irq: Irq,
    /// `GICD_IROUTER` (writable bits only).
    route: u64,
    /// The vCPU it is routed to now (computed from `route`).
    target: Option<usize>,
}

/// The virtual GIC of one VM.
#[derive(Clone)]
pub struct Vgic {
    mpidrs: Vec<u64>,
    nr_spis: u32,
    /// `GICD_CTLR` group enables (`CTLR_ENABLE_GRP0 | CTLR_ENABLE_GRP1`).
    ctlr: u32,
    cpus: Vec<Cpu>,
    spis: Vec<Spi>,
}

impl Vgic {
    /// A GIC for vCPUs whose `MPIDR_EL1` affinities are `mpidrs` (index = vCPU), with
    /// `nr_spis` shared peripheral interrupts (INTIDs 32..32 + nr_spis; a multiple of 32, at
    /// most [`MAX_SPIS`]: larger values are clamped).
    ///
    /// Reset state: the distributor disabled; every interrupt Group 1, disabled, not pending,
    /// not active, priority 0; SGIs edge, PPIs and SPIs level; every `GICD_IROUTER` 0 (the
    /// vCPU with affinity 0.0.0.0); every redistributor asleep (`GICR_WAKER` = 0x6).
    pub fn new(mpidrs: &[u64], nr_spis: u32) -> Self {
        let nr_spis = nr_spis.min(MAX_SPIS);
        let mut g = Self {
            mpidrs: mpidrs.iter().map(|m| m & mpidr::AFFINITY_MASK).collect(),
            nr_spis,
            ctlr: 0,
            cpus: alloc::vec![Cpu::new(); mpidrs.len()],
            spis: alloc::vec![
                Spi {
                    irq: Irq::reset(false),
                    route: 0,
                    target: None,
                };
                nr_spis as usize
            ],
        };
        g.retarget_all();
        g
    }

    /// Number of vCPUs.
    pub fn nr_vcpus(&self) -> usize {
        self.mpidrs.len()
    }

    /// Number of SPIs.
    pub fn nr_spis(&self) -> u32 {
        self.nr_spis
    }

    /// The `MPIDR_EL1` affinity of `vcpu` (Aff3..Aff0 only), if it exists.
    pub fn mpidr(&self, vcpu: usize) -> Option<u64> {
        self.mpidrs.get(vcpu).copied()
    }

    /// The vCPU with `MPIDR_EL1` affinity `mpidr` (other bits ignored), if any.
    pub fn vcpu_of(&self, mpidr: u64) -> Option<usize> {
        let aff = mpidr & mpidr::AFFINITY_MASK;
        self.mpidrs.iter().position(|&m| m == aff)
    }

    /// Whether Group 1 interrupts are forwarded (`GICD_CTLR.EnableGrp1`).
    fn grp1_enabled(&self) -> bool {
        self.ctlr & CTLR_ENABLE_GRP1 != 0
    }

    /// The state of `intid` as `vcpu` sees it: its own SGI or PPI, or an SPI.
    fn irq(&self, vcpu: usize, intid: u32) -> Option<&Irq> {
        if intid < PRIVATE_INTIDS {
            self.cpus.get(vcpu).map(|c| &c.irqs[intid as usize])
        } else {
            self.spis
                .get((intid - PRIVATE_INTIDS) as usize)
                .map(|s| &s.irq)
        }
    }

    /// Mutable [`Vgic::irq`].
    fn irq_mut(&mut self, vcpu: usize, intid: u32) -> Option<&mut Irq> {
        if intid < PRIVATE_INTIDS {
            self.cpus.get_mut(vcpu).map(|c| &mut c.irqs[intid as usize])
        } else {
            self.spis
                .get_mut((intid - PRIVATE_INTIDS) as usize)
                .map(|s| &mut s.irq)
        }
    }

    /// The SPI state of `intid`, if it is an implemented SPI.
    fn spi(&self, intid: u32) -> Option<&Spi> {
        intid
            .checked_sub(PRIVATE_INTIDS)
            .and_then(|i| self.spis.get(i as usize))
    }

    /// The vCPU that `intid` (as `vcpu` names it) is delivered to: `vcpu` itself for an SGI or
    /// PPI, the routed vCPU for an SPI.
    fn target(&self, vcpu: usize, intid: u32) -> Option<usize> {
        if intid < PRIVATE_INTIDS {
            (vcpu < self.cpus.len()).then_some(vcpu)
        } else {
            self.spi(intid).and_then(|s| s.target)
        }
    }

    /// The vCPU SPI `intid` is routed to now (`None` for an INTID that is not an implemented
    /// SPI, an `IROUTER` affinity no vCPU has, or IRM = 1 with every vCPU excluded by
    /// `GICR_CTLR.DPG1NS`). IRM = 1 picks the lowest-numbered vCPU that does not exclude
    /// itself.
    pub fn spi_target(&self, intid: u32) -> Option<usize> {
        self.spi(intid).and_then(|s| s.target)
    }

    /// Where `route` (an `IROUTER` value) sends an SPI.
    fn route_target(&self, route: u64) -> Option<usize> {
        if route & IROUTER_IRM != 0 {
            self.cpus.iter().position(|c| c.rctlr & RCTLR_DPG1NS == 0)
        } else {
            self.vcpu_of(route)
        }
    }

    /// Recomputes every SPI's target (after an `IROUTER` or `GICR_CTLR` change).
    fn retarget_all(&mut self) {
        for i in 0..self.spis.len() {
            self.spis[i].target = self.route_target(self.spis[i].route);
        }
    }

    /// Whether `intid` is pending and may be signalled to `vcpu` now: Group 1, enabled, the
    /// distributor's Group 1 enabled, routed to `vcpu`, and pending (latch or high line).
    fn ready_for(&self, vcpu: usize, intid: u32) -> bool {
        self.grp1_enabled()
            && self.target(vcpu, intid) == Some(vcpu)
            && self
                .irq(vcpu, intid)
                .is_some_and(|x| x.group1 && x.enabled && x.pending_source())
    }

    /// Resets `vcpu`'s private interrupts, redistributor and list registers to their reset
    /// state (PSCI `CPU_ON` of a vCPU that was off): every SGI and PPI Group 1, disabled, not
    /// pending, not active, priority 0, PPIs level; `GICR_WAKER` asleep; `GICR_CTLR` 0. The
    /// PPI input lines keep their levels (the devices driving them own them). SPIs held in its
    /// list registers are released and lose their active state. The caller's list-register
    /// values for the vCPU need no clearing: the next [`Vgic::flush_lrs`] rewrites them.
    pub fn reset_vcpu(&mut self, vcpu: usize) {
        let Some(cpu) = self.cpus.get_mut(vcpu) else {
            return;
        };
        let lines: [bool; PRIVATE_INTIDS as usize] = core::array::from_fn(|i| cpu.irqs[i].line);
        *cpu = Cpu::new();
        for (irq, line) in cpu.irqs.iter_mut().zip(lines) {
            irq.line = line;
        }
        for s in self.spis.iter_mut() {
            if s.irq.owner == Some(vcpu) {
                s.irq.owner = None;
                s.irq.active = false;
            }
        }
        self.retarget_all();
    }

    /// Checks the structure's invariants (tests): owners and list registers agree, each vINTID
    /// is in at most one list register of the VM, no list register has HW set, and SPI targets
    /// match their routes.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        use cca_abi::arch::ich;
        let mut seen_spi = alloc::vec![false; self.spis.len()];
        for (v, cpu) in self.cpus.iter().enumerate() {
            let mut seen = [false; PRIVATE_INTIDS as usize];
            for &lr in cpu.lrs.iter() {
                if ich::lr_state(lr) == ich::LrState::Invalid {
                    assert_eq!(lr, 0, "an invalid shadow slot is zero");
                    continue;
                }
                assert_eq!(lr & ich::LR_HW, 0);
                assert_ne!(lr & ich::LR_GROUP1, 0);
                let x = ich::lr_vintid(lr);
                assert_eq!(
                    self.irq(v, x).map(|i| i.owner),
                    Some(Some(v)),
                    "vCPU {v} LR {lr:#x} not owned"
                );
                if x < PRIVATE_INTIDS {
                    assert!(!seen[x as usize], "vINTID {x} twice on vCPU {v}");
                    seen[x as usize] = true;
                } else {
                    let i = (x - PRIVATE_INTIDS) as usize;
                    assert!(!seen_spi[i], "SPI {x} twice");
                    seen_spi[i] = true;
                }
                if !cpu.in_flight {
                    assert_ne!(lr & ich::LR_ACTIVE, 0, "after sync only active LRs stay");
                }
            }
            for (x, irq) in cpu.irqs.iter().enumerate() {
                assert_eq!(irq.owner.is_some(), seen[x], "vCPU {v} INTID {x} owner");
                if let Some(o) = irq.owner {
                    assert_eq!(o, v);
                }
            }
        }
        for (i, s) in self.spis.iter().enumerate() {
            assert_eq!(s.irq.owner.is_some(), seen_spi[i], "SPI {} owner", i + 32);
            assert_eq!(s.target, self.route_target(s.route));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_state() {
        let g = Vgic::new(&[0, 1, 0x1_0000_0100 | 1 << 31], 64);
        assert_eq!((g.nr_vcpus(), g.nr_spis()), (3, 64));
        assert_eq!(g.mpidr(2), Some(0x1_0000_0100), "RES1 bit 31 dropped");
        assert_eq!(g.mpidr(3), None);
        assert_eq!(g.vcpu_of(0x1_0000_0100), Some(2));
        assert_eq!(g.vcpu_of(0x8000_0001), Some(1), "non-affinity bits ignored");
        assert_eq!(g.vcpu_of(7), None);
        assert_eq!(g.spi_target(32), Some(0), "IROUTER 0 is affinity 0.0.0.0");
        assert_eq!(g.spi_target(95), Some(0));
        assert_eq!(g.spi_target(96), None, "beyond nr_spis");
        assert_eq!(g.spi_target(31), None, "not an SPI");
        assert!(!g.grp1_enabled());
        for v in 0..3 {
            for x in 0..32 {
                let i = g.irq(v, x).unwrap();
                assert!(i.group1 && !i.enabled && !i.latch && !i.active);
                assert_eq!(i.edge, x < 16);
                assert_eq!(i.priority, 0);
            }
            assert!(g.cpus[v].sleep);
        }
        g.check_invariants();
    }

    #[test]
    fn spi_count_is_clamped_and_no_vcpu_is_fine() {
        let g = Vgic::new(&[], 5000);
        assert_eq!(g.nr_spis(), MAX_SPIS);
        assert_eq!(g.spi_target(40), None, "no vCPU has affinity 0");
        assert!(g.irq(0, 3).is_none());
        assert!(g.irq(0, 1019).is_some());
        assert!(g.irq(0, 1020).is_none());
        g.check_invariants();
    }
}
