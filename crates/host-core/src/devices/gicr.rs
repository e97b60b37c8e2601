//! One GICv3 redistributor (`GICR_*`): a 128 KiB window with the RD_base frame at +0 and the
//! SGI_base frame at +64 KiB, for one vCPU. The VMM puts one per vCPU on the bus, contiguous
//! in vCPU order, the last one built with `last` set. Every access addresses the frame's vCPU,
//! whichever vCPU makes it.
//!
//! | offset | register | |
//! |---|---|---|
//! | 0x0000 | `CTLR` | DPG bits; no LPIs; RWP, UWP 0 |
//! | 0x0004 | `IIDR` | Arm, product 0, r0p0 |
//! | 0x0008 | `TYPER` | 64-bit: affinity [63:32], Processor Number [23:8], DPGS, Last |
//! | 0x0010 | `STATUSR` | RAZ/WI |
//! | 0x0014 | `WAKER` | ProcessorSleep; ChildrenAsleep follows it (0x6 at reset) |
//! | 0xFFD0.. | `PIDR4`..`CIDR3` | `PIDR2` = 0x3B |
//! | 0x1_0080.. | `IGROUPR0`, `IS/ICENABLER0`, `IS/ICPENDR0`, `IS/ICACTIVER0` | |
//! | 0x1_0400.. | `IPRIORITYR0..7` | byte or word |
//! | 0x1_0C00 | `ICFGR0` | SGIs: edge, read-only |
//! | 0x1_0C04 | `ICFGR1` | PPIs: level at reset, writable |
//! | 0x1_0D00, 0x1_0E00 | `IGRPMODR0`, `NSACR` | RAZ/WI (DS = 1) |
//!
//! Everything else (LPI registers, extended PPIs) reads as zero and ignores writes, as does a
//! frame built for a vCPU the GIC does not have.

use super::{DeviceCtx, MmioAccess, MmioDevice};
use crate::vgic::mmio::{self, Bank, Regs};
use crate::vgic::Vgic;
use cca_abi::arch::mpidr;

/// The SGI_base frame's offset in the window.
pub const SGI_BASE: u64 = 0x1_0000;
/// `GICR_TYPER.Last`.
pub const TYPER_LAST: u64 = 1 << 4;
/// `GICR_TYPER.DPGS`: `GICR_CTLR.DPG*` are implemented.
pub const TYPER_DPGS: u64 = 1 << 5;

/// The redistributor of one vCPU (its state is in [`DeviceCtx::gic`]).
#[derive(Clone, Copy, Debug)]
pub struct Gicr {
    vcpu: usize,
    last: bool,
}

impl Gicr {
    /// The redistributor of `vcpu`; `last` for the highest frame of the contiguous set
    /// (`GICR_TYPER.Last`).
    pub const fn new(vcpu: usize, last: bool) -> Self {
        Self { vcpu, last }
    }

    /// The vCPU it belongs to.
    pub const fn vcpu(&self) -> usize {
        self.vcpu
    }
}

struct View<'a> {
    gic: &'a mut Vgic,
    vcpu: usize,
    last: bool,
}

impl View<'_> {
    /// `GICR_TYPER`.
    fn typer(&self) -> u64 {
        let Some(m) = self.gic.mpidr(self.vcpu) else {
            return 0;
        };
        u64::from(mpidr::packed(m)) << 32
            | ((self.vcpu as u64) & 0xffff) << 8
            | TYPER_DPGS
            | if self.last { TYPER_LAST } else { 0 }
    }
}

impl Regs for View<'_> {
    fn is64(&self, off: u64) -> bool {
        off == 0x0008
    }

    fn read64(&mut self, _off: u64) -> u64 {
        self.typer()
    }

    fn write64(&mut self, _off: u64, _value: u64, _mask: u64) {}

    fn read32(&mut self, off: u64) -> u32 {
        if self.gic.mpidr(self.vcpu).is_none() {
            return 0;
        }
        match off {
            0x0000 => self.gic.rdist_ctlr(self.vcpu),
            0x0004 => mmio::IIDR,
            0x0014 => self.gic.waker(self.vcpu),
            mmio::ID_BASE..SGI_BASE => mmio::id_reg(off),
            _ => off
                .checked_sub(SGI_BASE)
                .filter(|&o| o < 0x1000)
                .and_then(|o| mmio::read_bank(self.gic, Bank::Redist(self.vcpu), o))
                .unwrap_or(0),
        }
    }

    fn write32(&mut self, off: u64, value: u32, mask: u32) {
        match off {
            0x0000 => {
                let old = self.gic.rdist_ctlr(self.vcpu);
                self.gic
                    .write_rdist_ctlr(self.vcpu, old & !mask | value & mask);
            }
            0x0014 => {
                let old = self.gic.waker(self.vcpu);
                self.gic.write_waker(self.vcpu, old & !mask | value & mask);
            }
            _ => {
                if let Some(o) = off.checked_sub(SGI_BASE).filter(|&o| o < 0x1000) {
                    mmio::write_bank(self.gic, Bank::Redist(self.vcpu), o, value, mask);
                }
            }
        }
    }
}

impl MmioDevice for Gicr {
    fn name(&self) -> &'static str {
        "gicr"
    }

    fn read(&mut self, access: MmioAccess, ctx: &mut DeviceCtx<'_>) -> u64 {
        let mut view = View {
            gic: ctx.gic,
            vcpu: self.vcpu,
            last: self.last,
        };
        mmio::read(&mut view, access.offset, access.size)
    }

    fn write(&mut self, access: MmioAccess, value: u64, ctx: &mut DeviceCtx<'_>) {
        let mut view = View {
            gic: ctx.gic,
            vcpu: self.vcpu,
            last: self.last,
        };
        mmio::write(&mut view, access.offset, access.size, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::test_util::Captured;

    fn rd(g: &mut Vgic, r: Gicr, offset: u64, size: u8) -> u64 {
        let mut out = Captured::default();
        let mut ctx = DeviceCtx {
            gic: g,
            console: &mut out,
            unix_time: 0,
            dma: &mut crate::devices::NoDma,
        };
        let mut r = r;
        r.read(
            MmioAccess {
                vcpu: 0,
                offset,
                size,
            },
            &mut ctx,
        )
    }

    fn wr(g: &mut Vgic, r: Gicr, offset: u64, size: u8, value: u64) {
        let mut out = Captured::default();
        let mut ctx = DeviceCtx {
            gic: g,
            console: &mut out,
            unix_time: 0,
            dma: &mut crate::devices::NoDma,
        };
        let mut r = r;
        r.write(
            MmioAccess {
                vcpu: 0,
                offset,
                size,
            },
            value,
            &mut ctx,
        );
    }

    #[test]
    fn typer_affinity_number_and_last() {
        let m1 = mpidr::from_aff(0x12, 0x34, 0x56, 0x78);
        let mut g = Vgic::new(&[0, m1], 32);
        let (r0, r1) = (Gicr::new(0, false), Gicr::new(1, true));
        assert_eq!(r1.vcpu(), 1);
        assert_eq!(r0.name(), "gicr");
        assert_eq!(rd(&mut g, r0, 8, 8), TYPER_DPGS);
        let t = rd(&mut g, r1, 8, 8);
        assert_eq!(t >> 32, 0x1234_5678, "packed affinity");
        assert_eq!(t >> 8 & 0xffff, 1, "Processor Number");
        assert_ne!(t & TYPER_LAST, 0);
        assert_eq!(t & 3, 0, "no PLPIS, no VLPIS");
        assert_eq!(rd(&mut g, r1, 8, 4), t & 0xffff_ffff);
        assert_eq!(rd(&mut g, r1, 0xc, 4), t >> 32);
        wr(&mut g, r1, 8, 8, 0);
        assert_eq!(rd(&mut g, r1, 8, 8), t, "read-only");
        assert_eq!(rd(&mut g, r1, 0xffe8, 4), 0x3b);
        assert_eq!(rd(&mut g, r1, 4, 4), 0x43b);
        assert_eq!(rd(&mut g, r1, 0x10, 4), 0, "STATUSR");
    }

    #[test]
    fn ctlr_and_waker() {
        let mut g = Vgic::new(&[0, 1], 32);
        let r = Gicr::new(1, true);
        assert_eq!(rd(&mut g, r, 0, 4), 0, "RWP 0, no LPIs");
        wr(&mut g, r, 0, 4, u32::MAX.into());
        assert_eq!(rd(&mut g, r, 0, 4), 7 << 24, "DPG bits only");
        assert_eq!(g.rdist_ctlr(0), 0);
        wr(&mut g, r, 0, 4, 0);
        assert_eq!(rd(&mut g, r, 0x14, 4), 6);
        wr(&mut g, r, 0x14, 4, 0);
        assert_eq!(rd(&mut g, r, 0x14, 4), 0, "awake: ChildrenAsleep 0");
        assert_eq!(g.waker(0), 6, "the frame's vCPU only");
        wr(&mut g, r, 0x14, 1, 2);
        assert_eq!(rd(&mut g, r, 0x14, 4), 6);
    }

    #[test]
    fn sgi_frame() {
        let mut g = Vgic::new(&[0, 1], 32);
        let r = Gicr::new(1, true);
        let s = SGI_BASE;
        assert_eq!(
            rd(&mut g, r, s + 0x80, 4),
            u32::MAX.into(),
            "Group 1 at reset"
        );
        wr(&mut g, r, s + 0x80, 4, 0xffff);
        assert_eq!(rd(&mut g, r, s + 0x80, 4), 0xffff);
        assert!(
            !g.bit(crate::vgic::BitReg::Group, 1, 16) && g.bit(crate::vgic::BitReg::Group, 0, 16)
        );
        wr(&mut g, r, s + 0x100, 4, 1 << 27);
        assert!(g.is_enabled(1, 27));
        assert_eq!(rd(&mut g, r, s + 0x180, 4), 1 << 27);
        wr(&mut g, r, s + 0x180, 4, 1 << 27);
        assert!(!g.is_enabled(1, 27));
        wr(&mut g, r, s + 0x200, 4, 1 << 3);
        assert!(g.is_pending(1, 3));
        assert_eq!(rd(&mut g, r, s + 0x280, 4), 1 << 3);
        wr(&mut g, r, s + 0x280, 4, 1 << 3);
        assert!(!g.is_pending(1, 3));
        wr(&mut g, r, s + 0x300, 4, 1 << 20);
        assert!(g.is_active(1, 20));
        wr(&mut g, r, s + 0x380, 4, 1 << 20);
        assert!(!g.is_active(1, 20));
        wr(&mut g, r, s + 0x41b, 1, 0xa0);
        assert_eq!(g.priority(1, 27), 0xa0);
        assert_eq!(rd(&mut g, r, s + 0x418, 4), 0xa000_0000);
        assert_eq!(rd(&mut g, r, s + 0xc00, 4), 0xaaaa_aaaa, "SGIs edge");
        wr(&mut g, r, s + 0xc00, 4, 0);
        assert_eq!(rd(&mut g, r, s + 0xc00, 4), 0xaaaa_aaaa, "read-only");
        assert_eq!(rd(&mut g, r, s + 0xc04, 4), 0, "PPIs level");
        wr(&mut g, r, s + 0xc04, 4, 2 << 22);
        assert!(g.is_edge(1, 27) && !g.is_edge(0, 27));
        for off in [0xd00u64, 0xe00, 0xe04, 0x84, 0x104, 0x420, 0xc08, 0xf80] {
            wr(&mut g, r, s + off, 4, u32::MAX.into());
            assert_eq!(rd(&mut g, r, s + off, 4), 0, "offset {off:#x}");
        }
        assert_eq!(g.priority(1, 32), 0, "SPI priorities not reachable here");
    }

    #[test]
    fn frame_of_a_missing_vcpu_and_unknown_offsets() {
        let mut g = Vgic::new(&[0], 32);
        let r = Gicr::new(3, true);
        assert_eq!(rd(&mut g, r, 8, 8), 0);
        assert_eq!(rd(&mut g, r, 0x14, 4), 0);
        assert_eq!(rd(&mut g, r, 0xffe8, 4), 0);
        wr(&mut g, r, SGI_BASE + 0x100, 4, u32::MAX.into());
        let r0 = Gicr::new(0, true);
        for off in [
            0x18u64,
            0x70,
            0x78,
            0xa0,
            0x1_1000,
            0x1_ffff,
            0x2_0000,
            u64::MAX - 3,
        ] {
            wr(&mut g, r0, off, 4, u32::MAX.into());
            assert_eq!(rd(&mut g, r0, off, 4), 0, "offset {off:#x}");
        }
        assert_eq!(rd(&mut g, r0, 0x14, 4), 6, "nothing else changed");
    }
}
