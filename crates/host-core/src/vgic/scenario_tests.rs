//! Whole-GIC scenarios: the register sequence Debian's Linux performs at boot (research notes
//! `linux-realm.md` §3.5, `irq-gic-v3.c`), replayed through the device bus at the platform's
//! addresses, then timer and UART delivery; and random MMIO/injection/list-register streams
//! that must never panic and keep the invariants.

use super::*;
use crate::devices::gicd::Gicd;
use crate::devices::gicr::Gicr;
use crate::devices::test_util::Captured;
use crate::devices::{Bus, DeviceCtx};
use crate::vmm::platform::{gicr_base, GICD_BASE, GICD_SIZE, GICR_FRAME_SIZE, UART_SPI};
use crate::vmm::platform::{SPI_BASE, VTIMER_INTID};
use alloc::boxed::Box;
use alloc::vec::Vec;
use cca_abi::arch::ich::{self, lr_state, lr_vintid, LrState, LR_ACTIVE, LR_PENDING};
use proptest::prelude::*;

/// A VM's GIC on a bus, as the VMM builds it.
struct Machine {
    gic: Vgic,
    bus: Bus,
    out: Captured,
    gicr: u64,
}

impl Machine {
    fn new(mpidrs: &[u64], nr_spis: u32) -> Self {
        let n = mpidrs.len();
        let mut bus = Bus::new();
        bus.add(GICD_BASE, GICD_SIZE, Box::new(Gicd::new()))
            .unwrap();
        let gicr = gicr_base(n as u64);
        for v in 0..n {
            let base = gicr + v as u64 * GICR_FRAME_SIZE;
            bus.add(base, GICR_FRAME_SIZE, Box::new(Gicr::new(v, v + 1 == n)))
                .unwrap();
        }
        Self {
            gic: Vgic::new(mpidrs, nr_spis),
            bus,
            out: Captured::default(),
            gicr,
        }
    }

    fn rd(&mut self, vcpu: usize, addr: u64, size: u8) -> u64 {
        let mut ctx = DeviceCtx {
            gic: &mut self.gic,
            console: &mut self.out,
            unix_time: 0,
            dma: &mut crate::devices::NoDma,
        };
        self.bus.read(vcpu, addr, size, &mut ctx).expect("decoded")
    }

    fn wr(&mut self, vcpu: usize, addr: u64, size: u8, value: u64) {
        let mut ctx = DeviceCtx {
            gic: &mut self.gic,
            console: &mut self.out,
            unix_time: 0,
            dma: &mut crate::devices::NoDma,
        };
        assert!(self.bus.write(vcpu, addr, size, value, &mut ctx), "decoded");
    }

    fn rd32(&mut self, vcpu: usize, addr: u64) -> u32 {
        self.rd(vcpu, addr, 4) as u32
    }

    fn wr32(&mut self, vcpu: usize, addr: u64, value: u32) {
        self.wr(vcpu, addr, 4, value.into());
    }
}

const D: u64 = GICD_BASE;

/// `gic_init_bases` .. `gic_dist_init` of the boot CPU (vCPU 0): what Linux writes to the
/// distributor, in order. Returns the redistributor frame Linux found for each vCPU.
fn linux_dist_init(m: &mut Machine, nr_vcpus: usize) -> Vec<u64> {
    // PIDR2 (ArchRev 3 or 4), TYPER, IIDR, TYPER2.
    let arch = m.rd32(0, D + 0xffe8) >> 4 & 0xf;
    assert!(arch == 3 || arch == 4);
    let typer = m.rd32(0, D + 4);
    assert_eq!(typer >> 17 & 1, 0, "LPIS");
    assert_eq!(typer >> 16 & 1, 0, "MBIS");
    assert_eq!(typer >> 8 & 1, 0, "ESPI");
    let nr_irqs = ((typer & 0x1f) + 1) * 32;
    assert_eq!(nr_irqs, 64);
    m.rd32(0, D + 8);
    assert_eq!(m.rd32(0, D + 0xc), 0, "TYPER2");
    // gic_iterate_rdists: walk frames at a 128 KiB stride until Last.
    let mut frames = Vec::new();
    let mut base = m.gicr;
    loop {
        let arch = m.rd32(0, base + 0xffe8) >> 4 & 0xf;
        assert_eq!(arch, 3, "GICR PIDR2");
        let typer = m.rd(0, base + 8, 8);
        assert_eq!(typer & 1, 0, "PLPIS");
        assert_eq!(typer & 2, 0, "VLPIS");
        frames.push(typer);
        if typer & 1 << 4 != 0 {
            break;
        }
        base += GICR_FRAME_SIZE;
        assert!(frames.len() < 64, "no Last bit");
    }
    assert_eq!(frames.len(), nr_vcpus);
    assert_eq!(m.rd32(0, m.gicr) & 1 << 3, 0, "GICR_CTLR.RWP");
    // GICD_CTLR: read, disable, wait for RWP.
    let ctlr = m.rd32(0, D);
    assert_ne!(ctlr & CTLR_DS, 0, "DS = 1");
    m.wr32(0, D, 0);
    assert_eq!(m.rd32(0, D) & 1 << 31, 0, "RWP");
    // Every SPI Group 1; gic_dist_config: level, default priority, inactive, disabled.
    for i in (32..nr_irqs).step_by(32) {
        m.wr32(0, D + 0x80 + u64::from(i / 8), u32::MAX);
    }
    for i in (32..nr_irqs).step_by(16) {
        m.wr32(0, D + 0xc00 + u64::from(i / 4), 0);
    }
    for i in (32..nr_irqs).step_by(4) {
        m.wr32(0, D + 0x400 + u64::from(i), 0xa0a0_a0a0);
    }
    for i in (32..nr_irqs).step_by(32) {
        m.wr32(0, D + 0x380 + u64::from(i / 8), u32::MAX);
        m.wr32(0, D + 0x180 + u64::from(i / 8), u32::MAX);
    }
    assert_eq!(m.rd32(0, D) & 1 << 31, 0, "RWP");
    // Enable, then route every SPI to the boot CPU (64-bit writes).
    m.wr32(0, D, 0x13);
    assert_eq!(m.rd32(0, D) & 1 << 31, 0, "RWP");
    let boot = frames[0] >> 32;
    for i in 32..nr_irqs {
        m.wr(0, D + 0x6000 + 8 * u64::from(i), 8, boot);
    }
    frames
}

/// `gic_cpu_init` on `vcpu`, which found its frame by affinity.
fn linux_cpu_init(m: &mut Machine, vcpu: usize, frames: &[u64]) {
    let aff = u64::from(mpidr::packed(m.gic.mpidr(vcpu).unwrap()));
    let idx = frames
        .iter()
        .position(|t| t >> 32 == aff)
        .expect("own frame");
    let rd = m.gicr + idx as u64 * GICR_FRAME_SIZE;
    let sgi = rd + 0x1_0000;
    // gic_enable_redist: wake up.
    let waker = m.rd32(vcpu, rd + 0x14);
    assert_eq!(waker, 6);
    m.wr32(vcpu, rd + 0x14, waker & !2);
    assert_eq!(m.rd32(vcpu, rd + 0x14) & 4, 0, "ChildrenAsleep");
    // SGIs and PPIs: Group 1, inactive, disabled, default priority; wait for RWP.
    m.wr32(vcpu, sgi + 0x80, u32::MAX);
    m.wr32(vcpu, sgi + 0x380, u32::MAX);
    m.wr32(vcpu, sgi + 0x180, u32::MAX);
    for i in (0..32).step_by(4) {
        m.wr32(vcpu, sgi + 0x400 + i, 0xa0a0_a0a0);
    }
    assert_eq!(m.rd32(vcpu, rd) & 1 << 3, 0, "GICR_CTLR.RWP");
    // The IPIs (SGIs 0..7), one ISENABLER0 write each.
    for s in 0..8 {
        m.wr32(vcpu, sgi + 0x100, 1 << s);
    }
    // The arch timer: ICFGR1 read (level), then enable PPI 27.
    let icfgr1 = m.rd32(vcpu, sgi + 0xc04);
    assert_eq!(icfgr1 >> (2 * (VTIMER_INTID - 16)) & 2, 0, "vtimer level");
    m.wr32(vcpu, sgi + 0x100, 1 << VTIMER_INTID);
}

/// The console's SPI is set up when the UART is opened: enable, level, priority, route.
fn linux_enable_spi(m: &mut Machine, intid: u32, to_mpidr: u64) {
    m.wr32(0, D + 0x400 + u64::from(intid & !3), 0xa0a0_a0a0);
    let cfg = D + 0xc00 + u64::from(intid / 16 * 4);
    let old = m.rd32(0, cfg);
    m.wr32(0, cfg, old & !(3 << (2 * (intid % 16))));
    m.wr(0, D + 0x6000 + 8 * u64::from(intid), 8, to_mpidr);
    m.wr32(0, D + 0x100 + u64::from(intid / 32 * 4), 1 << (intid % 32));
}

#[test]
fn linux_boot_sequence_then_timer_and_uart_delivery() {
    let mpidrs = [0, 1];
    let mut m = Machine::new(&mpidrs, 32);
    let frames = linux_dist_init(&mut m, 2);
    linux_cpu_init(&mut m, 0, &frames);
    linux_cpu_init(&mut m, 1, &frames);

    // The resulting state.
    let g = &m.gic;
    assert_eq!(g.dist_ctlr(), 0x53);
    for x in 32..64 {
        assert!(g.bit(BitReg::Group, 0, x) && !g.is_enabled(0, x) && !g.is_edge(0, x));
        assert_eq!((g.priority(0, x), g.spi_target(x)), (0xa0, Some(0)));
    }
    for v in 0..2 {
        assert_eq!(g.read_bits(BitReg::Enable, v, 0), 0xff | 1 << VTIMER_INTID);
        assert_eq!(g.read_bits(BitReg::Group, v, 0), u32::MAX);
        assert_eq!(g.waker(v), 0);
        assert_eq!(g.priority(v, VTIMER_INTID), 0xa0);
    }
    assert!(!g.has_deliverable(0) && !g.has_deliverable(1));

    // The timer of vCPU 1 fires: INTID 27 in its list registers, nowhere else.
    let vmcr = 0xf0 << ich::VMCR_VPMR_SHIFT | ich::VMCR_VENG1;
    m.gic.set_ppi_level(1, VTIMER_INTID, true);
    assert!(m.gic.has_deliverable_under(1, vmcr) && !m.gic.has_deliverable(0));
    let (mut l0, mut l1) = ([0u64; 4], [0u64; 4]);
    assert!(!m.gic.flush_lrs(0, &mut l0));
    assert_eq!(l0, [0; 4]);
    m.gic.flush_lrs(1, &mut l1);
    assert_eq!(l1[0], ich::lr_encode(27, 0xa0, LrState::Pending, true));

    // The UART opens with its SPI routed to vCPU 0, and has input.
    let uart = SPI_BASE + UART_SPI;
    linux_enable_spi(&mut m, uart, mpidrs[0]);
    assert!(m.gic.is_enabled(0, uart) && !m.gic.is_edge(0, uart));
    m.gic.set_spi_level(uart, true);
    assert_eq!(m.gic.spi_target(uart), Some(0));
    assert_eq!(m.rd32(1, D + 0x204) & 1, 1, "GICD_ISPENDR1 bit 0");
    m.gic.sync_lrs(0, &l0);
    m.gic.flush_lrs(0, &mut l0);
    assert_eq!(l0[0], ich::lr_encode(uart, 0xa0, LrState::Pending, true));
    assert!(l1.iter().all(|&l| lr_vintid(l) != uart));

    // An IPI from vCPU 0 to vCPU 1 (SGI 1, TargetList bit 1).
    assert_eq!(m.gic.send_sgi(0, 1 << 24 | 0b10), 0b10);
    m.gic.sync_lrs(1, &l1);
    m.gic.flush_lrs(1, &mut l1);
    let mut got: Vec<u32> = l1
        .iter()
        .filter(|&&l| l != 0)
        .map(|&l| lr_vintid(l))
        .collect();
    got.sort_unstable();
    assert_eq!(got, [1, 27]);
    m.gic.check_invariants();
}

#[test]
fn affinity_routing_with_a_sparse_topology() {
    // Two clusters: 0.0.0.0, 0.0.0.1, 0.0.1.0; every frame found by its affinity.
    let mpidrs = [0, 1, 0x100];
    let mut m = Machine::new(&mpidrs, 32);
    let frames = linux_dist_init(&mut m, 3);
    for v in 0..3 {
        linux_cpu_init(&mut m, v, &frames);
    }
    linux_enable_spi(&mut m, 40, 0x100);
    assert_eq!(m.gic.spi_target(40), Some(2));
    // SGI 3 to Aff1 = 1, TargetList bit 0.
    assert_eq!(m.gic.send_sgi(0, 1 << 16 | 3 << 24 | 1), 1 << 2);
    m.gic.set_spi_level(40, true);
    assert!(m.gic.has_deliverable(2) && !m.gic.has_deliverable(0));
}

/// One step of a random stream.
#[derive(Clone, Debug)]
enum Op {
    /// An access to the distributor (`frame` None) or a redistributor window.
    Mmio {
        frame: Option<u8>,
        offset: u32,
        size: u8,
        value: u64,
        write: bool,
    },
    Spi(u8, bool),
    Ppi(u8, u8, bool),
    Sgi(u8, u64),
    /// Flush a vCPU's list registers and enter it.
    Enter(u8),
    /// The guest does `actions` to its list registers; exit and sync.
    Exit(u8, Vec<u8>),
    Reset(u8),
}

const NR_VCPUS: usize = 3;
const NR_LRS: usize = 4;

fn offset() -> impl Strategy<Value = u32> {
    prop_oneof![
        0u32..0x2_0000,
        prop::sample::select(alloc::vec![
            0, 4, 8, 0xc, 0x14, 0x80, 0x84, 0x100, 0x104, 0x180, 0x184, 0x200, 0x204, 0x280, 0x284,
            0x300, 0x304, 0x380, 0x384, 0x400, 0x41c, 0x420, 0x424, 0xc00, 0xc04, 0xc08, 0xc0c,
            0x6100, 0x6104, 0x6108, 0x61f8, 0xffe8, 0x1_0080, 0x1_0100, 0x1_0180, 0x1_0200,
            0x1_0280, 0x1_0300, 0x1_0380, 0x1_0400, 0x1_041b, 0x1_0c04,
        ]),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (
            prop::option::of(0u8..4),
            offset(),
            prop::sample::select(alloc::vec![1u8, 2, 4, 4, 8, 3]),
            any::<u64>(),
            prop::bool::weighted(0.7),
        )
            .prop_map(|(frame, offset, size, value, write)| Op::Mmio {
                frame,
                offset,
                size,
                value,
                write,
            }),
        2 => (0u8..40, any::<bool>()).prop_map(|(s, l)| Op::Spi(s, l)),
        2 => (0u8..4, 0u8..40, any::<bool>()).prop_map(|(v, p, l)| Op::Ppi(v, p, l)),
        2 => (0u8..4, any::<u64>(), 0u8..16).prop_map(|(v, raw, sgi)| {
            // Half raw values, half well-formed ones to the existing affinities.
            let value = if raw & 1 == 0 { raw } else { raw & 0x1_0000_0007 | u64::from(sgi) << 24 };
            Op::Sgi(v, value)
        }),
        3 => (0u8..4).prop_map(Op::Enter),
        3 => (0u8..4, prop::collection::vec(any::<u8>(), 0..6))
            .prop_map(|(v, a)| Op::Exit(v, a)),
        1 => (0u8..4).prop_map(Op::Reset),
    ]
}

/// What the guest does to one list register: 0 leave, 1 acknowledge, 2 deactivate, 3 both,
/// 4 a garbage value (the array is the caller's; the GIC must cope).
fn guest(lr: &mut u64, action: u8, garbage: u64) {
    let s = lr_state(*lr);
    match action % 8 {
        1 if s == LrState::Pending => *lr = *lr & !LR_PENDING | LR_ACTIVE,
        2 if matches!(s, LrState::Active | LrState::PendingActive) => *lr &= !LR_ACTIVE,
        3 if s == LrState::Pending => *lr &= !(LR_PENDING | LR_ACTIVE),
        4 => *lr = garbage,
        _ => {}
    }
}

/// The list registers of the vCPUs running at once: no HW bit, Group 1, each SPI in at most
/// one vCPU, each private vINTID at most once per vCPU.
fn check_lrs<'a>(running: impl IntoIterator<Item = &'a [u64; NR_LRS]>, nr_spis: u32) {
    let mut spis = Vec::new();
    for lrs in running {
        let mut private = Vec::new();
        for &lr in lrs.iter().filter(|&&l| lr_state(l) != LrState::Invalid) {
            assert_eq!(lr & ich::LR_HW, 0);
            assert_ne!(lr & ich::LR_GROUP1, 0);
            let x = lr_vintid(lr);
            assert!(x < PRIVATE_INTIDS + nr_spis, "vINTID {x}");
            let seen = if x < PRIVATE_INTIDS {
                &mut private
            } else {
                &mut spis
            };
            assert!(!seen.contains(&x), "vINTID {x} twice");
            seen.push(x);
        }
    }
}

/// Runs every vCPU, acknowledging and completing everything, until nothing is left;
/// returns what each vCPU received.
fn drain(g: &mut Vgic, lrs: &mut [[u64; NR_LRS]; NR_VCPUS]) -> Vec<Vec<u32>> {
    let mut got = alloc::vec![Vec::new(); NR_VCPUS];
    for _ in 0..200 {
        let mut any = false;
        for v in 0..NR_VCPUS {
            g.flush_lrs(v, &mut lrs[v]);
            check_lrs([&lrs[v]], g.nr_spis());
            for lr in lrs[v].iter_mut() {
                if lr_state(*lr) == LrState::Pending {
                    got[v].push(lr_vintid(*lr));
                }
                if *lr != 0 {
                    any = true;
                }
                *lr = 0;
            }
            g.sync_lrs(v, &lrs[v]);
            g.check_invariants();
        }
        if !any {
            return got;
        }
    }
    panic!("interrupts keep coming");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_streams_keep_the_invariants(
        boot in any::<bool>(),
        prios in prop::collection::vec(any::<u8>(), 128),
        ops in prop::collection::vec(op(), 0..80),
    ) {
        let mut m = Machine::new(&[0, 1, 0x1_0000_0100], 32);
        if boot {
            // Linux's boot state, every interrupt enabled at a random priority.
            let frames = linux_dist_init(&mut m, NR_VCPUS);
            for v in 0..NR_VCPUS {
                linux_cpu_init(&mut m, v, &frames);
                m.gic.write_bits(BitReg::Enable, v, 0, u32::MAX, true);
                for x in 0..32 {
                    m.gic.set_priority(v, x, prios[v * 32 + x as usize]);
                }
            }
            m.gic.write_bits(BitReg::Enable, 0, 32, u32::MAX, true);
            for x in 32..64 {
                m.gic.set_priority(0, x, prios[96 + (x as usize - 32)]);
                m.gic.write_irouter(x, m.gic.mpidr(x as usize % NR_VCPUS).unwrap_or(0));
            }
        }
        let mut lrs = [[0u64; NR_LRS]; NR_VCPUS];
        let mut running = [false; NR_VCPUS];
        let mut garbage = 0x9e37_79b9_7f4a_7c15u64;
        for op in ops {
            match op {
                Op::Mmio { frame, offset, size, value, write } => {
                    let base = match frame {
                        None => GICD_BASE,
                        Some(f) => m.gicr + u64::from(f % NR_VCPUS as u8) * GICR_FRAME_SIZE,
                    };
                    let addr = base + u64::from(offset) % if frame.is_none() { GICD_SIZE } else { GICR_FRAME_SIZE };
                    let mut ctx = DeviceCtx { gic: &mut m.gic, console: &mut m.out, unix_time: 0, dma: &mut crate::devices::NoDma };
                    if write {
                        m.bus.write(usize::from(size), addr, size, value, &mut ctx);
                    } else {
                        m.bus.read(0, addr, size, &mut ctx);
                    }
                }
                Op::Spi(s, l) => m.gic.set_spi_level(u32::from(s) + 32, l),
                Op::Ppi(v, p, l) => m.gic.set_ppi_level(v.into(), p.into(), l),
                Op::Sgi(v, value) => {
                    let woken = m.gic.send_sgi(v.into(), value);
                    prop_assert_eq!(woken >> NR_VCPUS, 0);
                    if usize::from(v) >= NR_VCPUS {
                        prop_assert_eq!(woken, 0);
                    }
                }
                Op::Enter(v) => {
                    let v = usize::from(v);
                    if v < NR_VCPUS {
                        m.gic.flush_lrs(v, &mut lrs[v]);
                        running[v] = true;
                        check_lrs((0..NR_VCPUS).filter(|&i| running[i]).map(|i| &lrs[i]), 32);
                    } else {
                        let mut l = [1u64; NR_LRS];
                        prop_assert!(!m.gic.flush_lrs(v, &mut l));
                        prop_assert_eq!(l, [0; NR_LRS]);
                    }
                }
                Op::Exit(v, actions) => {
                    let v = usize::from(v);
                    if running.get(v) == Some(&true) {
                        for (i, a) in actions.iter().enumerate() {
                            garbage = garbage.rotate_left(13).wrapping_mul(0x2545_f491_4f6c_dd1d);
                            guest(&mut lrs[v][i % NR_LRS], *a, garbage);
                        }
                        m.gic.sync_lrs(v, &lrs[v]);
                        running[v] = false;
                    } else {
                        m.gic.sync_lrs(v, &[u64::MAX; NR_LRS]);
                    }
                }
                Op::Reset(v) => {
                    m.gic.reset_vcpu(v.into());
                    if let Some(l) = lrs.get_mut(usize::from(v)) {
                        *l = [0; NR_LRS];
                        running[usize::from(v)] = false;
                    }
                }
            }
            m.gic.check_invariants();
            for v in (0..NR_VCPUS).filter(|&v| !running[v]) {
                if m.gic.dist_ctlr() & CTLR_ENABLE_GRP1 == 0 {
                    prop_assert!(!m.gic.has_deliverable(v), "distributor off");
                }
            }
        }

        // Quiesce: every line low, every vCPU runs until nothing is left to take.
        for x in 32..64 {
            m.gic.set_spi_level(x, false);
        }
        for v in 0..NR_VCPUS {
            for x in 16..32 {
                m.gic.set_ppi_level(v, x, false);
            }
            if running[v] {
                m.gic.sync_lrs(v, &lrs[v]);
            }
            lrs[v] = [0; NR_LRS];
        }
        drain(&mut m.gic, &mut lrs);
        for v in 0..NR_VCPUS {
            prop_assert!(!m.gic.has_deliverable(v), "vCPU {} still has something", v);
        }

        // Then an SGI to every vCPU is delivered exactly once to each.
        m.gic.write_dist_ctlr(CTLR_ENABLE_GRP1);
        for v in 0..NR_VCPUS {
            m.gic.set_bit(BitReg::Group, v, 9, true);
            m.gic.set_bit(BitReg::Active, v, 9, false);
            m.gic.set_enabled(v, 9, true);
        }
        drain(&mut m.gic, &mut lrs);
        m.gic.send_sgi(0, 9 << 24 | 1 << 40);
        m.gic.send_sgi(1, 9 << 24 | 1);
        // Each vCPU exits once before the guest takes it, and the SGI comes again meanwhile
        // (merged with the pending instance).
        for (v, l) in lrs.iter_mut().enumerate() {
            m.gic.flush_lrs(v, l);
            prop_assert!(l.iter().any(|&l| lr_vintid(l) == 9 && l != 0));
            m.gic.send_sgi(v, 9 << 24 | 1 << 40);
            m.gic.sync_lrs(v, l);
        }
        m.gic.send_sgi(1, 9 << 24 | 1);
        let got = drain(&mut m.gic, &mut lrs);
        for (v, g) in got.iter().enumerate() {
            prop_assert_eq!(g.iter().filter(|&&x| x == 9).count(), 1, "vCPU {}: {:?}", v, g);
        }
    }
}
