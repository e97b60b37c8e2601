//! The GICv3 distributor (`GICD_*`, a 64 KiB frame) over the VM's [`Vgic`].
//!
//! One Security state (`GICD_CTLR.DS` = 1) and affinity routing (`ARE` = 1) fixed; no LPIs,
//! message-based SPIs or extended SPIs. The registers:
//!
//! | offset | register | |
//! |---|---|---|
//! | 0x0000 | `CTLR` | EnableGrp0, EnableGrp1; ARE, DS read 1; RWP 0 |
//! | 0x0004 | `TYPER` | ITLinesNumber from the SPI count, CPUNumber, IDbits 9, A3V, RSS |
//! | 0x0008 | `IIDR` | Arm, product 0, r0p0 |
//! | 0x000C, 0x0010 | `TYPER2`, `STATUSR` | RAZ/WI |
//! | 0x0080.. | `IGROUPR`, `IS/ICENABLER`, `IS/ICPENDR`, `IS/ICACTIVER` | SPIs |
//! | 0x0400.. | `IPRIORITYR` | byte or word |
//! | 0x0C00.. | `ICFGR` | SPIs |
//! | 0x0D00.., 0x0E00.. | `IGRPMODR`, `NSACR` | RAZ/WI (DS = 1) |
//! | 0x6100.. | `IROUTER<n>` | 64-bit, or 32-bit halves |
//! | 0xFFD0.. | `PIDR4`..`CIDR3` | `PIDR2` = 0x3B (GICv3) |
//!
//! The SGI/PPI words of the per-INTID banks (`IGROUPR0`, `ISENABLER0`, `IPRIORITYR0..7`,
//! `ICFGR0..1`, ...), `ITARGETSR`, `SGIR`, `CPENDSGIR`/`SPENDSGIR`, SPIs beyond the
//! implemented count and every other offset read as zero and ignore writes.

use super::{DeviceCtx, MmioAccess, MmioDevice};
use crate::vgic::mmio::{self, Bank, Regs};
use crate::vgic::Vgic;

/// `GICD_IROUTER<n>` is at `IROUTER_BASE + 8 n` (n = 32..1019).
const IROUTER_BASE: u64 = 0x6000;

/// The distributor model (its state is in [`DeviceCtx::gic`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Gicd;

impl Gicd {
    /// A distributor.
    pub const fn new() -> Self {
        Self
    }
}

/// `GICD_TYPER` of `gic`.
fn typer(gic: &Vgic) -> u32 {
    let it_lines = gic.nr_spis().div_ceil(32).min(31);
    let cpus = (gic.nr_vcpus().clamp(1, 8) - 1) as u32;
    const IDBITS: u32 = 9 << 19; // 10-bit INTIDs
    const A3V: u32 = 1 << 24; // Aff3 routing supported
    const RSS: u32 = 1 << 26; // SGI targets with Aff0 0..255 (RS)
    it_lines | cpus << 5 | IDBITS | A3V | RSS
}

struct View<'a> {
    gic: &'a mut Vgic,
}

impl View<'_> {
    /// The INTID of the `IROUTER` at the 8-byte-aligned `off`, if it is one.
    fn irouter(off: u64) -> Option<u32> {
        let n = u32::try_from(off.checked_sub(IROUTER_BASE)? / 8).ok()?;
        (32..1020).contains(&n).then_some(n)
    }
}

impl Regs for View<'_> {
    fn is64(&self, off: u64) -> bool {
        Self::irouter(off).is_some()
    }

    fn read64(&mut self, off: u64) -> u64 {
        Self::irouter(off).map_or(0, |n| self.gic.irouter(n))
    }

    fn write64(&mut self, off: u64, value: u64, mask: u64) {
        if let Some(n) = Self::irouter(off) {
            let old = self.gic.irouter(n);
            self.gic.write_irouter(n, old & !mask | value & mask);
        }
    }

    fn read32(&mut self, off: u64) -> u32 {
        match off {
            0x0000 => self.gic.dist_ctlr(),
            0x0004 => typer(self.gic),
            0x0008 => mmio::IIDR,
            0x0080..0x1000 => mmio::read_bank(self.gic, Bank::Dist, off).unwrap_or(0),
            mmio::ID_BASE..0x1_0000 => mmio::id_reg(off),
            _ => 0,
        }
    }

    fn write32(&mut self, off: u64, value: u32, mask: u32) {
        match off {
            0x0000 => {
                let old = self.gic.dist_ctlr();
                self.gic.write_dist_ctlr(old & !mask | value & mask);
            }
            0x0080..0x1000 => {
                mmio::write_bank(self.gic, Bank::Dist, off, value, mask);
            }
            _ => {}
        }
    }
}

impl MmioDevice for Gicd {
    fn name(&self) -> &'static str {
        "gicd"
    }

    fn read(&mut self, access: MmioAccess, ctx: &mut DeviceCtx<'_>) -> u64 {
        mmio::read(&mut View { gic: ctx.gic }, access.offset, access.size)
    }

    fn write(&mut self, access: MmioAccess, value: u64, ctx: &mut DeviceCtx<'_>) {
        mmio::write(
            &mut View { gic: ctx.gic },
            access.offset,
            access.size,
            value,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::test_util::Captured;
    use crate::vgic::BitReg;

    fn rd(g: &mut Vgic, offset: u64, size: u8) -> u64 {
        let mut out = Captured::default();
        let mut ctx = DeviceCtx {
            gic: g,
            console: &mut out,
            unix_time: 0,
            dma: &mut crate::devices::NoDma,
        };
        Gicd::new().read(
            MmioAccess {
                vcpu: 0,
                offset,
                size,
            },
            &mut ctx,
        )
    }

    fn wr(g: &mut Vgic, offset: u64, size: u8, value: u64) {
        let mut out = Captured::default();
        let mut ctx = DeviceCtx {
            gic: g,
            console: &mut out,
            unix_time: 0,
            dma: &mut crate::devices::NoDma,
        };
        Gicd::new().write(
            MmioAccess {
                vcpu: 1,
                offset,
                size,
            },
            value,
            &mut ctx,
        );
    }

    #[test]
    fn identification() {
        let mut g = Vgic::new(&[0, 1], 32);
        assert_eq!(Gicd::new().name(), "gicd");
        assert_eq!(rd(&mut g, 0xffe8, 4), 0x3b, "PIDR2: GICv3");
        assert_eq!(rd(&mut g, 0xffe8, 4) >> 4 & 0xf, 3);
        assert_eq!(rd(&mut g, 0xfff0, 4), 0x0d);
        assert_eq!(rd(&mut g, 0x0008, 4), 0x43b);
        assert_eq!(rd(&mut g, 0x000c, 4), 0, "TYPER2");
        assert_eq!(rd(&mut g, 0x0010, 4), 0, "STATUSR");
        wr(&mut g, 0xffe8, 4, 0);
        wr(&mut g, 0x0004, 4, 0);
        assert_eq!(rd(&mut g, 0xffe8, 4), 0x3b, "read-only");
    }

    #[test]
    fn typer_fields() {
        let mut g = Vgic::new(&[0, 1], 32);
        let t = rd(&mut g, 4, 4);
        assert_eq!(t & 0x1f, 1, "ITLinesNumber: INTIDs 0..64");
        assert_eq!(t >> 5 & 7, 1, "CPUNumber: 2 vCPUs");
        assert_eq!(t >> 19 & 0x1f, 9, "IDbits: 10");
        assert_eq!(t >> 17 & 1, 0, "no LPIs");
        assert_eq!(t >> 16 & 1, 0, "no MBIS");
        assert_eq!(t >> 8 & 1, 0, "no ESPI");
        assert_eq!(t >> 10 & 1, 0, "SecurityExtn 0");
        assert_eq!(t >> 25 & 1, 0, "1-of-N supported");
        assert_eq!(t, 0x0548_0021);
        let mut big = Vgic::new(&[0; 12], 988);
        let t = rd(&mut big, 4, 4);
        assert_eq!((t & 0x1f, t >> 5 & 7), (31, 7), "at most 8 in CPUNumber");
        let mut none = Vgic::new(&[], 0);
        assert_eq!(rd(&mut none, 4, 4) & 0xff, 0);
        let mut odd = Vgic::new(&[0], 40);
        assert_eq!(rd(&mut odd, 4, 4) & 0x1f, 2, "rounded up");
    }

    #[test]
    fn ctlr_sequence_linux_writes() {
        let mut g = Vgic::new(&[0], 32);
        assert_eq!(rd(&mut g, 0, 4), 0x50, "ARE | DS");
        wr(&mut g, 0, 4, 0);
        assert_eq!(rd(&mut g, 0, 4) & 1 << 31, 0, "RWP");
        wr(&mut g, 0, 4, 0x13);
        assert_eq!(rd(&mut g, 0, 4), 0x53);
        wr(&mut g, 0, 4, 0xffff_ffff);
        assert_eq!(rd(&mut g, 0, 4), 0x53, "only the enables are writable");
        wr(&mut g, 1, 1, 0xff);
        assert_eq!(
            rd(&mut g, 0, 4),
            0x53,
            "a byte write of bits 15:8 leaves the enables"
        );
        wr(&mut g, 0, 1, 0x00);
        assert_eq!(rd(&mut g, 0, 4), 0x50);
        assert_eq!(rd(&mut g, 0, 1), 0x50);
    }

    #[test]
    fn per_intid_banks() {
        let mut g = Vgic::new(&[0, 1], 64);
        // IGROUPR: Group 1 at reset, SGI/PPI word RAZ/WI.
        assert_eq!(rd(&mut g, 0x80, 4), 0);
        assert_eq!(rd(&mut g, 0x84, 4), 0xffff_ffff);
        wr(&mut g, 0x84, 4, 0xffff_0000);
        assert_eq!(rd(&mut g, 0x84, 4), 0xffff_0000);
        assert_eq!(rd(&mut g, 0x8c, 4), 0, "beyond 64 SPIs");
        wr(&mut g, 0x80, 4, 0);
        assert!(g.bit(BitReg::Group, 1, 0), "GICD_IGROUPR0 is WI");
        // Enables.
        wr(&mut g, 0x104, 4, 0x8000_0001);
        assert_eq!(rd(&mut g, 0x104, 4), 0x8000_0001);
        assert_eq!(rd(&mut g, 0x184, 4), 0x8000_0001);
        wr(&mut g, 0x184, 4, 1);
        assert_eq!(rd(&mut g, 0x104, 4), 0x8000_0000);
        wr(&mut g, 0x105, 1, 0x01);
        assert_eq!(
            rd(&mut g, 0x104, 4),
            0x8000_0100,
            "byte write sets its bits only"
        );
        wr(&mut g, 0x100, 4, u32::MAX.into());
        assert_eq!(
            g.read_bits(BitReg::Enable, 1, 0),
            0,
            "GICD_ISENABLER0 is WI"
        );
        // Pending and active.
        wr(&mut g, 0x208, 4, 0x4);
        assert!(g.is_pending(0, 66));
        assert_eq!(rd(&mut g, 0x288, 4), 0x4);
        wr(&mut g, 0x288, 4, 0x4);
        assert!(!g.is_pending(0, 66));
        g.set_spi_level(33, true);
        assert_eq!(rd(&mut g, 0x204, 4), 0x2, "a high level line reads pending");
        wr(&mut g, 0x284, 4, 0x2);
        assert_eq!(rd(&mut g, 0x204, 4), 0x2, "and stays so");
        wr(&mut g, 0x304, 4, 0x10);
        assert!(g.is_active(0, 36));
        assert_eq!(rd(&mut g, 0x384, 4), 0x10);
        wr(&mut g, 0x384, 4, 0x10);
        assert!(!g.is_active(0, 36));
        wr(&mut g, 0x200, 4, 0xffff);
        assert!(
            !g.is_pending(0, 1) && !g.is_pending(1, 1),
            "GICD_ISPENDR0 is WI"
        );
        wr(&mut g, 0x30c, 4, u32::MAX.into());
        assert_eq!(rd(&mut g, 0x30c, 4), 0, "beyond 64 SPIs");
    }

    #[test]
    fn priorities_by_byte_and_word() {
        let mut g = Vgic::new(&[0], 32);
        wr(&mut g, 0x420, 4, 0xa0a0_a0a0);
        assert_eq!(rd(&mut g, 0x420, 4), 0xa0a0_a0a0);
        assert_eq!(g.priority(0, 35), 0xa0);
        wr(&mut g, 0x421, 1, 0x47);
        assert_eq!(g.priority(0, 33), 0x40, "low bits not implemented");
        assert_eq!(rd(&mut g, 0x421, 1), 0x40);
        assert_eq!(rd(&mut g, 0x420, 4), 0xa0a0_40a0);
        assert_eq!(rd(&mut g, 0x422, 2), 0xa0a0);
        wr(&mut g, 0x400, 4, 0x8080_8080);
        assert_eq!(
            g.priority(0, 0),
            0,
            "IPRIORITYR0..7 RAZ/WI in the distributor"
        );
        assert_eq!(rd(&mut g, 0x41c, 4), 0);
        wr(&mut g, 0x440, 4, 0x8080_8080);
        assert_eq!(rd(&mut g, 0x440, 4), 0, "beyond nr_spis");
        assert_eq!(rd(&mut g, 0x7fc, 4), 0, "INTIDs 1020..1023");
    }

    #[test]
    fn config_words() {
        let mut g = Vgic::new(&[0], 32);
        assert_eq!(rd(&mut g, 0xc08, 4), 0, "SPIs reset level");
        wr(&mut g, 0xc08, 4, 0xffff_ffff);
        assert_eq!(rd(&mut g, 0xc08, 4), 0xaaaa_aaaa, "even bits RES0");
        assert!(g.is_edge(0, 32) && g.is_edge(0, 47));
        wr(&mut g, 0xc0c, 4, 0x2);
        assert!(g.is_edge(0, 48) && !g.is_edge(0, 49));
        assert_eq!(rd(&mut g, 0xc00, 4), 0, "ICFGR0/1 RAZ in the distributor");
        wr(&mut g, 0xc04, 4, 0xaaaa_aaaa);
        assert!(!g.is_edge(0, 27));
        assert_eq!(rd(&mut g, 0xc10, 4), 0);
    }

    #[test]
    fn irouter_widths() {
        let m = cca_abi::arch::mpidr::from_aff(1, 0, 0, 1);
        let mut g = Vgic::new(&[0, m], 32);
        let off = IROUTER_BASE + 8 * 33;
        assert_eq!(rd(&mut g, off, 8), 0);
        wr(&mut g, off, 8, m);
        assert_eq!(rd(&mut g, off, 8), m);
        assert_eq!(g.spi_target(33), Some(1));
        assert_eq!(rd(&mut g, off, 4), 1);
        assert_eq!(rd(&mut g, off + 4, 4), 1, "Aff3 in the upper half");
        wr(&mut g, off + 4, 4, 0);
        assert_eq!(rd(&mut g, off, 8), 1);
        assert_eq!(g.spi_target(33), None, "affinity 0.0.0.1 alone is no vCPU");
        wr(&mut g, off, 4, 0);
        assert_eq!(g.spi_target(33), Some(0));
        wr(&mut g, off, 8, u64::MAX);
        assert_eq!(rd(&mut g, off, 8), 0xff_80ff_ffff, "RES0 bits");
        assert_eq!(rd(&mut g, off + 3, 1), 0x80, "IRM in a byte read");
        wr(&mut g, IROUTER_BASE + 8 * 31, 8, 1);
        assert_eq!(
            rd(&mut g, IROUTER_BASE + 8 * 31, 8),
            0,
            "no IROUTER below 32"
        );
        wr(&mut g, IROUTER_BASE + 8 * 64, 8, 1);
        assert_eq!(rd(&mut g, IROUTER_BASE + 8 * 64, 8), 0, "beyond nr_spis");
        assert_eq!(rd(&mut g, IROUTER_BASE + 8 * 1020, 8), 0);
        assert_eq!(rd(&mut g, off + 2, 4), 0, "unaligned");
    }

    #[test]
    fn unknown_and_affinity_routing_only_offsets() {
        let mut g = Vgic::new(&[0], 32);
        for off in [
            0x40u64, 0x48, 0x800, 0x820, 0xf00, 0xf10, 0xf20, 0xf80, 0xd04, 0xe08, 0x1000, 0x8000,
            0xc000, 0xffcc,
        ] {
            wr(&mut g, off, 4, u32::MAX.into());
            assert_eq!(rd(&mut g, off, 4), 0, "offset {off:#x}");
        }
        assert_eq!(rd(&mut g, 0x1_0000, 4), 0);
        assert_eq!(rd(&mut g, u64::MAX - 3, 4), 0);
        wr(&mut g, u64::MAX - 7, 8, 1);
        assert_eq!(g.dist_ctlr(), 0x50);
    }
}
