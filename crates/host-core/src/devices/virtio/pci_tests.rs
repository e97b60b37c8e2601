//! The transport driven the way Linux's `virtio_pci_modern` and edk2's `Virtio10Dxe` drive
//! it, through the PCI host bridge on a bus, with guest memory a [`FakeDma`].

use super::super::blk::{self, VecDisk, VirtioBlk};
use super::super::console::VirtioConsole;
use super::super::queue::tests::{Driver, FakeDma, RAM};
use super::super::queue::{QueueError, AVAIL_F_NO_INTERRUPT, DESC_F_NEXT, DESC_F_WRITE};
use super::super::{status as st, StatsHandle, F_ACCESS_PLATFORM, F_INDIRECT_DESC, F_VERSION_1};
use super::*;
use crate::devices::pci::{self, PciHost, COMMAND_BUS_MASTER, COMMAND_MEM};
use crate::devices::test_util::Captured;
use crate::devices::{Bus, DmaError};
use crate::vgic::Vgic;
use alloc::boxed::Box;
use alloc::vec;

const ECAM: u64 = 0x4000_0000;
const BAR0: u64 = 0x5000_0000;
const BLK_INTID: u32 = 33;
const CON_INTID: u32 = 34;
const CON_BAR0: u64 = 0x5000_4000;

struct Env {
    bus: Bus,
    gic: Vgic,
    out: Captured,
    m: FakeDma,
    blk: StatsHandle,
    con: StatsHandle,
}

fn cfg(dev: u64, reg: u64) -> u64 {
    ECAM + (dev << 15) + reg
}

impl Env {
    fn new(disk: VecDisk) -> Self {
        let blk = StatsHandle::default();
        let con = StatsHandle::default();
        let mut host = PciHost::new();
        host.add(
            Box::new(VirtioPci::new(
                VirtioBlk::new(Box::new(disk), "d0"),
                blk.clone(),
            )),
            Some(BLK_INTID),
        )
        .unwrap();
        host.add(
            Box::new(VirtioPci::new(VirtioConsole::new(), con.clone())),
            Some(CON_INTID),
        )
        .unwrap();
        let mut bus = Bus::new();
        bus.add(pci::WINDOW.0, pci::WINDOW.1, Box::new(host))
            .unwrap();
        Self {
            bus,
            gic: Vgic::new(&[0], 32),
            out: Captured::default(),
            m: FakeDma::new(RAM, 64),
            blk,
            con,
        }
    }

    fn rd(&mut self, addr: u64, size: u8) -> u64 {
        let mut ctx = DeviceCtx {
            gic: &mut self.gic,
            console: &mut self.out,
            unix_time: 0,
            dma: &mut self.m,
        };
        self.bus.read(0, addr, size, &mut ctx).expect("decoded")
    }

    fn wr(&mut self, addr: u64, size: u8, v: u64) {
        let mut ctx = DeviceCtx {
            gic: &mut self.gic,
            console: &mut self.out,
            unix_time: 0,
            dma: &mut self.m,
        };
        assert!(self.bus.write(0, addr, size, v, &mut ctx));
    }

    fn input(&mut self, b: u8) -> bool {
        let mut ctx = DeviceCtx {
            gic: &mut self.gic,
            console: &mut self.out,
            unix_time: 0,
            dma: &mut self.m,
        };
        self.bus.console_input(b, &mut ctx)
    }

    /// Assigns BAR 0 of device `dev` at `bar` and turns on memory decoding and bus mastering.
    fn enable(&mut self, dev: u64, bar: u64) {
        self.wr(cfg(dev, 0x10), 4, 0xffff_ffff);
        assert_eq!(self.rd(cfg(dev, 0x10), 4), u64::from(!(BAR_SIZE - 1)));
        self.wr(cfg(dev, 0x10), 4, bar);
        self.wr(cfg(dev, 4), 2, u64::from(COMMAND_MEM | COMMAND_BUS_MASTER));
    }

    fn status(&mut self, bar: u64) -> u8 {
        self.rd(bar + 0x14, 1) as u8
    }

    /// Reset, ACKNOWLEDGE, DRIVER, features (`accept` of what is offered), FEATURES_OK.
    /// Returns whether FEATURES_OK stuck.
    fn negotiate(&mut self, bar: u64, accept: u64) -> bool {
        self.wr(bar + 0x14, 1, 0);
        assert_eq!(self.status(bar), 0);
        self.wr(bar + 0x14, 1, u64::from(st::ACKNOWLEDGE));
        self.wr(bar + 0x14, 1, u64::from(st::ACKNOWLEDGE | st::DRIVER));
        self.wr(bar + 0x08, 4, 0);
        self.wr(bar + 0x0c, 4, accept & 0xffff_ffff);
        self.wr(bar + 0x08, 4, 1);
        self.wr(bar + 0x0c, 4, accept >> 32);
        self.wr(
            bar + 0x14,
            1,
            u64::from(st::ACKNOWLEDGE | st::DRIVER | st::FEATURES_OK),
        );
        self.status(bar) & st::FEATURES_OK != 0
    }

    fn offered(&mut self, bar: u64) -> u64 {
        self.wr(bar, 4, 0);
        let lo = self.rd(bar + 4, 4);
        self.wr(bar, 4, 1);
        lo | self.rd(bar + 4, 4) << 32
    }

    /// Sets up queue `q` for `d` (64-bit addresses written in two halves, as Linux does).
    fn setup_queue(&mut self, bar: u64, q: u16, d: &Driver) {
        self.wr(bar + 0x16, 2, u64::from(q));
        assert_eq!(self.rd(bar + 0x18, 2), 128, "max queue size");
        assert_eq!(self.rd(bar + 0x1c, 2), 0, "not enabled");
        assert_eq!(self.rd(bar + 0x1a, 2), u64::from(NO_VECTOR));
        self.wr(bar + 0x18, 2, u64::from(d.size));
        for (off, v) in [(0x20, d.desc), (0x28, d.avail), (0x30, d.used)] {
            self.wr(bar + off, 4, v & 0xffff_ffff);
            self.wr(bar + off + 4, 4, v >> 32);
        }
        assert_eq!(self.rd(bar + 0x1e, 2), u64::from(q), "queue_notify_off");
        self.wr(bar + 0x1c, 2, 1);
        assert_eq!(self.rd(bar + 0x1c, 2), 1);
    }

    fn driver_ok(&mut self, bar: u64) {
        let s = st::ACKNOWLEDGE | st::DRIVER | st::FEATURES_OK | st::DRIVER_OK;
        self.wr(bar + 0x14, 1, u64::from(s));
    }

    /// A block device ready to use with queue 0 at `d`.
    fn blk_ready(&mut self, d: &Driver) {
        self.enable(0, BAR0);
        assert!(self.negotiate(BAR0, F_VERSION_1 | F_ACCESS_PLATFORM | F_INDIRECT_DESC));
        self.setup_queue(BAR0, 0, d);
        self.driver_ok(BAR0);
    }
}

const HDR: u64 = RAM + 0x10000;
const DATA: u64 = RAM + 0x11000;
const STATUS: u64 = RAM + 0x12000;

/// Puts a read of `sectors` at `sector` in descriptors 0..3 and offers it.
fn read_request(m: &mut FakeDma, d: &mut Driver, sector: u64, sectors: u32) {
    let mut h = [0u8; 16];
    h[8..].copy_from_slice(&sector.to_le_bytes());
    m.put(HDR, &h);
    m.put(STATUS, &[0xff]);
    d.set_desc(m, 0, HDR, 16, DESC_F_NEXT, 1);
    d.set_desc(m, 1, DATA, sectors * 512, DESC_F_NEXT | DESC_F_WRITE, 2);
    d.set_desc(m, 2, STATUS, 1, DESC_F_WRITE, 0);
    d.offer(m, 0);
}

fn disk() -> VecDisk {
    VecDisk::new((0..64 * 512).map(|i| (i / 512) as u8).collect(), false)
}

#[test]
fn identity_and_capabilities_as_edk2_and_linux_look_for_them() {
    let mut e = Env::new(disk());
    assert_eq!(e.rd(cfg(0, 0), 4), 0x1042_1af4, "modern virtio-blk");
    assert_eq!(e.rd(cfg(1, 0), 4), 0x1043_1af4, "modern virtio-console");
    assert!(e.rd(cfg(0, 8), 1) >= 1, "revision >= 1");
    assert!(e.rd(cfg(0, 0x2e), 2) >= 0x40, "subsystem >= 0x40");
    assert_eq!(e.rd(cfg(0, 0x2c), 2), 0x1af4);
    assert_ne!(e.rd(cfg(0, 6), 2) & 0x10, 0, "capability list");
    assert_eq!(e.rd(cfg(0, 0x3d), 1), 1, "INTA");
    assert_eq!(e.rd(cfg(0, 0x08), 4) >> 8, 0x01_8000, "class");
    // Walk the capability list.
    let mut found = vec![];
    let mut at = e.rd(cfg(0, 0x34), 1);
    while at != 0 {
        assert_eq!(e.rd(cfg(0, at), 1), 0x09, "vendor-specific");
        let kind = e.rd(cfg(0, at + 3), 1) as u8;
        let bar = e.rd(cfg(0, at + 4), 1);
        let offset = e.rd(cfg(0, at + 8), 4);
        let length = e.rd(cfg(0, at + 12), 4);
        found.push((kind, bar, offset, length));
        if kind == cap::NOTIFY_CFG {
            assert_eq!(e.rd(cfg(0, at + 16), 4), 4, "notify_off_multiplier");
        }
        at = e.rd(cfg(0, at + 1), 1);
    }
    assert_eq!(
        found,
        [
            (cap::COMMON_CFG, 0, 0, 0x40),
            (cap::NOTIFY_CFG, 0, 0x3000, 4),
            (cap::ISR_CFG, 0, 0x1000, 1),
            (cap::DEVICE_CFG, 0, 0x2000, 0x40),
            (cap::PCI_CFG, 0, 0, 0),
        ]
    );
    // A 16 KiB memory BAR, nothing else.
    for b in 0..6u64 {
        e.wr(cfg(0, 0x10 + 4 * b), 4, 0xffff_ffff);
        let want = if b == 0 { 0xffff_c000 } else { 0 };
        assert_eq!(e.rd(cfg(0, 0x10 + 4 * b), 4), want, "BAR {b}");
    }
    // Reserved configuration bytes read as zero.
    assert_eq!(e.rd(cfg(0, 0xa0), 4), 0);
}

#[test]
fn feature_negotiation() {
    let mut e = Env::new(disk());
    e.enable(0, BAR0);
    let f = e.offered(BAR0);
    assert_ne!(f & F_VERSION_1, 0);
    assert_ne!(f & F_ACCESS_PLATFORM, 0, "as kvmtool offers realms");
    assert_ne!(f & F_INDIRECT_DESC, 0);
    assert_eq!(
        f & (blk::F_FLUSH | blk::F_SEG_MAX | blk::F_BLK_SIZE | blk::F_RO),
        blk::F_FLUSH | blk::F_SEG_MAX | blk::F_BLK_SIZE
    );
    e.wr(BAR0, 4, 2);
    assert_eq!(e.rd(BAR0 + 4, 4), 0, "no features past bit 63");
    assert!(
        !e.negotiate(BAR0, f & !F_VERSION_1),
        "legacy drivers are refused"
    );
    assert!(
        !e.negotiate(BAR0, f | 1 << 40),
        "unoffered features are refused"
    );
    assert!(e.negotiate(BAR0, F_VERSION_1));
    // After FEATURES_OK the driver's features are fixed.
    e.wr(BAR0 + 0x08, 4, 1);
    e.wr(BAR0 + 0x0c, 4, 0xffff_ffff);
    assert_eq!(e.rd(BAR0 + 0x0c, 4), 1);
    // Reads of common configuration fields by any width.
    assert_eq!(e.rd(BAR0 + 0x12, 2), 1, "num_queues");
    assert_eq!(e.rd(BAR0 + 0x10, 2), u64::from(NO_VECTOR));
    assert_eq!(
        e.rd(BAR0 + 0x12, 4) >> 16 & 0xff,
        0xb,
        "status via a wide read"
    );
    assert_eq!(e.rd(BAR0 + 0x3c, 4), 0, "admin queue fields read as zero");
    let mut ro = Env::new(VecDisk::new(vec![0; 512], true));
    ro.enable(0, BAR0);
    assert_ne!(ro.offered(BAR0) & blk::F_RO, 0);
}

#[test]
fn a_read_completes_with_an_intx_interrupt() {
    let mut e = Env::new(disk());
    let mut d = Driver::new(8, RAM);
    e.blk_ready(&d);
    // Device configuration: capacity.
    assert_eq!(e.rd(BAR0 + 0x2000, 8), 64);
    assert_eq!(e.rd(BAR0 + 0x2000 + 20, 4), 512);
    read_request(&mut e.m, &mut d, 5, 2);
    assert!(!e.gic.spi_level(BLK_INTID));
    e.wr(BAR0 + 0x3000, 2, 0);
    assert_eq!(e.m.get(STATUS, 1), [0]);
    assert_eq!(e.m.get(DATA, 1024)[..2], [5, 5]);
    assert_eq!(e.m.get(DATA, 1024)[600], 6);
    assert_eq!(d.used_elem(&e.m, 0), (0, 1025));
    assert!(e.gic.spi_level(BLK_INTID), "INTx raised");
    assert_ne!(e.rd(cfg(0, 6), 2) & 8, 0, "STATUS.INTERRUPT");
    assert_eq!(e.rd(BAR0 + 0x1000, 1), 1, "ISR: used buffer");
    assert!(
        !e.gic.spi_level(BLK_INTID),
        "reading the ISR lowers the line"
    );
    assert_eq!(e.rd(BAR0 + 0x1000, 1), 0);
    let s = e.blk.get();
    assert_eq!(
        (s.requests, s.reads, s.notifies, s.interrupts),
        (1, 1, 1, 1)
    );
    assert!(s.accesses > 10);
    assert_eq!(s.bytes_to_guest, 1024);
    // The driver suppresses interrupts: none is raised.
    e.m.put(d.avail, &AVAIL_F_NO_INTERRUPT.to_le_bytes());
    read_request(&mut e.m, &mut d, 6, 1);
    e.wr(BAR0 + 0x3000, 2, 0);
    assert_eq!(d.used_idx(&e.m), 2);
    assert!(!e.gic.spi_level(BLK_INTID));
    // INTX_DISABLE masks the line.
    e.m.put(d.avail, &0u16.to_le_bytes());
    e.wr(
        cfg(0, 4),
        2,
        u64::from(COMMAND_MEM | COMMAND_BUS_MASTER | 1 << 10),
    );
    read_request(&mut e.m, &mut d, 7, 1);
    e.wr(BAR0 + 0x3000, 2, 0);
    assert!(!e.gic.spi_level(BLK_INTID));
    e.wr(cfg(0, 4), 2, u64::from(COMMAND_MEM | COMMAND_BUS_MASTER));
    assert!(e.gic.spi_level(BLK_INTID));
}

#[test]
fn rings_at_the_unprotected_alias() {
    let mut e = Env::new(disk());
    let alias = e.m.alias;
    let mut d = Driver::new(8, RAM);
    let mut aliased = Driver::new(8, RAM);
    aliased.desc |= alias;
    aliased.avail |= alias;
    aliased.used |= alias;
    e.blk_ready(&aliased);
    let mut h = [0u8; 16];
    h[8..].copy_from_slice(&3u64.to_le_bytes());
    e.m.put(HDR, &h);
    d.set_desc(&mut e.m, 0, HDR | alias, 16, DESC_F_NEXT, 1);
    d.set_desc(&mut e.m, 1, DATA, 512, DESC_F_NEXT | DESC_F_WRITE, 2);
    d.set_desc(&mut e.m, 2, STATUS | alias, 1, DESC_F_WRITE, 0);
    d.offer(&mut e.m, 0);
    e.wr(BAR0 + 0x3000, 2, 0);
    assert_eq!(e.m.get(STATUS, 1), [0]);
    assert_eq!(e.m.get(DATA, 1), [3]);
}

#[test]
fn notifications_before_driver_ok_wait() {
    let mut e = Env::new(disk());
    let mut d = Driver::new(8, RAM);
    e.enable(0, BAR0);
    assert!(e.negotiate(BAR0, F_VERSION_1 | F_ACCESS_PLATFORM));
    e.setup_queue(BAR0, 0, &d);
    read_request(&mut e.m, &mut d, 1, 1);
    e.wr(BAR0 + 0x3000, 2, 0);
    assert_eq!(d.used_idx(&e.m), 0, "not before DRIVER_OK");
    e.driver_ok(BAR0);
    assert_eq!(d.used_idx(&e.m), 1, "taken when the driver is ready");
    // Without INDIRECT_DESC negotiated an indirect descriptor is an error.
    d.set_desc(&mut e.m, 0, RAM + 0x6000, 16, 4, 0);
    d.offer(&mut e.m, 0);
    e.wr(BAR0 + 0x3000, 2, 0);
    assert_ne!(e.status(BAR0) & st::DEVICE_NEEDS_RESET, 0);
}

#[test]
fn hostile_rings_make_the_device_need_a_reset() {
    type Build = fn(&mut FakeDma, &mut Driver);
    let cases: [(&str, Build, QueueError); 6] = [
        (
            "descriptor loop",
            |m, d| {
                d.set_desc(m, 0, HDR, 16, DESC_F_NEXT, 1);
                d.set_desc(m, 1, DATA, 512, DESC_F_NEXT, 0);
                d.offer(m, 0);
            },
            QueueError::ChainTooLong,
        ),
        (
            "head outside the table",
            |m, d| d.offer(m, 9),
            QueueError::HeadIndex(9),
        ),
        (
            "length overflow",
            |m, d| {
                d.set_desc(m, 0, u64::MAX - 8, 16, 0, 0);
                d.offer(m, 0);
            },
            QueueError::LengthOverflow,
        ),
        (
            "buffer in protected memory",
            |m, d| {
                read_request(m, d, 0, 1);
                m.shared.remove(&DATA);
            },
            QueueError::Dma(DmaError::NotShared { ipa: DATA }),
        ),
        (
            "buffer in MMIO",
            |m, d| {
                read_request(m, d, 0, 1);
                d.set_desc(m, 1, 0x0900_0000, 512, DESC_F_NEXT | DESC_F_WRITE, 2);
            },
            QueueError::Dma(DmaError::NotShared { ipa: 0x0900_0000 }),
        ),
        (
            "buffer beyond RAM",
            |m, d| {
                read_request(m, d, 0, 1);
                d.set_desc(m, 1, RAM + (1 << 30), 512, DESC_F_NEXT | DESC_F_WRITE, 2);
            },
            QueueError::Dma(DmaError::NotShared {
                ipa: RAM + (1 << 30),
            }),
        ),
    ];
    for (what, build, err) in cases {
        let mut e = Env::new(disk());
        let mut d = Driver::new(8, RAM);
        e.blk_ready(&d);
        build(&mut e.m, &mut d);
        let writes = e.m.writes;
        e.wr(BAR0 + 0x3000, 2, 0);
        assert_ne!(e.status(BAR0) & st::DEVICE_NEEDS_RESET, 0, "{what}");
        assert_eq!(e.blk.get().last_error, Some(err), "{what}");
        assert_eq!(e.blk.get().errors, 1, "{what}");
        assert_eq!(
            e.m.writes, writes,
            "{what}: nothing written to guest memory"
        );
        assert!(
            e.gic.spi_level(BLK_INTID),
            "{what}: configuration interrupt"
        );
        assert_eq!(e.rd(BAR0 + 0x1000, 1), 2, "{what}: ISR bit 1");
        // Further notifications are ignored until a reset.
        read_request(&mut e.m, &mut d, 0, 1);
        e.m.shared.insert(DATA);
        e.wr(BAR0 + 0x3000, 2, 0);
        assert_eq!(d.used_idx(&e.m), 0, "{what}");
        // A reset brings the device back.
        let mut d2 = Driver::new(8, RAM + 0x20000);
        e.blk_ready(&d2);
        assert_eq!(e.status(BAR0) & st::DEVICE_NEEDS_RESET, 0);
        read_request(&mut e.m, &mut d2, 0, 1);
        e.wr(BAR0 + 0x3000, 2, 0);
        assert_eq!(d2.used_idx(&e.m), 1, "{what}: works after the reset");
    }
}

#[test]
fn bad_queue_configurations_are_refused() {
    let mut e = Env::new(disk());
    e.enable(0, BAR0);
    assert!(e.negotiate(BAR0, F_VERSION_1));
    e.wr(BAR0 + 0x16, 2, 0);
    e.wr(BAR0 + 0x18, 2, 100);
    e.wr(BAR0 + 0x1c, 2, 1);
    assert_eq!(e.rd(BAR0 + 0x1c, 2), 0, "not a power of two: not enabled");
    assert_ne!(e.status(BAR0) & st::DEVICE_NEEDS_RESET, 0);
    // A queue that does not exist reads size 0 and ignores writes.
    e.wr(BAR0 + 0x16, 2, 5);
    assert_eq!(e.rd(BAR0 + 0x18, 2), 0);
    e.wr(BAR0 + 0x1c, 2, 1);
    assert_eq!(e.rd(BAR0 + 0x1c, 2), 0);
    // An enabled queue's configuration is fixed.
    let d = Driver::new(8, RAM);
    e.blk_ready(&d);
    e.wr(BAR0 + 0x16, 2, 0);
    e.wr(BAR0 + 0x20, 4, 0x1234_0000);
    assert_eq!(e.rd(BAR0 + 0x20, 8), d.desc);
    // Notifying a queue that does not exist, or writing outside the structures, is harmless.
    e.wr(BAR0 + 0x3004, 2, 1);
    e.wr(BAR0 + 0x3ffc, 4, 1);
    e.wr(BAR0 + 0x1000, 1, 0xff);
    assert_eq!(e.rd(BAR0 + 0x2fff, 1), 0);
    assert_eq!(e.status(BAR0) & st::DEVICE_NEEDS_RESET, 0);
}

#[test]
fn no_dma_without_bus_mastering() {
    let mut e = Env::new(disk());
    let mut d = Driver::new(8, RAM);
    e.blk_ready(&d);
    e.wr(cfg(0, 4), 2, u64::from(COMMAND_MEM));
    read_request(&mut e.m, &mut d, 0, 1);
    let reads = e.m.reads;
    e.wr(BAR0 + 0x3000, 2, 0);
    assert_eq!(e.m.reads, reads, "the device did not touch guest memory");
    assert_ne!(e.status(BAR0) & st::DEVICE_NEEDS_RESET, 0);
}

#[test]
fn the_pci_cfg_window_reaches_the_bar() {
    let mut e = Env::new(disk());
    e.enable(0, BAR0);
    let cap = 0x84;
    e.wr(cfg(0, cap + 4), 1, 0);
    e.wr(cfg(0, cap + 8), 4, 0x12);
    e.wr(cfg(0, cap + 12), 4, 2);
    assert_eq!(
        e.rd(cfg(0, cap + 16), 4),
        1,
        "num_queues through the window"
    );
    assert_eq!(e.rd(cfg(0, cap + 8), 4), 0x12);
    e.wr(cfg(0, cap + 8), 4, 0x14);
    e.wr(cfg(0, cap + 12), 4, 1);
    e.wr(cfg(0, cap + 16), 4, u64::from(st::ACKNOWLEDGE));
    assert_eq!(
        e.status(BAR0),
        st::ACKNOWLEDGE,
        "status written through the window"
    );
    // Invalid windows do nothing.
    for (bar, off, len) in [
        (1u64, 0x14u64, 1u64),
        (0, 0x13, 2),
        (0, 0x14, 3),
        (0, 0x4000, 4),
    ] {
        e.wr(cfg(0, cap + 4), 1, bar);
        e.wr(cfg(0, cap + 8), 4, off);
        e.wr(cfg(0, cap + 12), 4, len);
        assert_eq!(e.rd(cfg(0, cap + 16), 4), 0);
        e.wr(cfg(0, cap + 16), 4, 0);
    }
    assert_eq!(e.status(BAR0), st::ACKNOWLEDGE);
}

#[test]
fn the_console_over_pci_and_its_input() {
    let mut e = Env::new(disk());
    let mut rx = Driver::new(4, RAM);
    let mut tx = Driver::new(4, RAM + 0x4000);
    e.enable(1, CON_BAR0);
    assert!(e.negotiate(CON_BAR0, F_VERSION_1 | F_ACCESS_PLATFORM));
    e.setup_queue(CON_BAR0, 0, &rx);
    e.setup_queue(CON_BAR0, 1, &tx);
    e.driver_ok(CON_BAR0);
    assert!(
        !e.input(b'a'),
        "nothing written to hvc0 yet: the input is not taken"
    );
    let buf = RAM + 0x30000;
    e.m.put(buf, b"login: ");
    tx.set_desc(&mut e.m, 0, buf, 7, 0, 0);
    tx.offer(&mut e.m, 0);
    e.wr(CON_BAR0 + 0x3004, 2, 1);
    assert_eq!(e.out.0, b"login: ");
    assert_eq!(e.rd(CON_BAR0 + 0x1000, 1), 1);
    rx.set_desc(&mut e.m, 0, buf + 0x100, 16, DESC_F_WRITE, 0);
    rx.offer(&mut e.m, 0);
    assert!(e.input(b'r'));
    assert_eq!(e.m.get(buf + 0x100, 1), b"r");
    assert!(e.gic.spi_level(CON_INTID));
    let s = e.con.get();
    assert_eq!((s.console_bytes, s.bytes_to_guest), (7, 1));
    // After a reset, input goes elsewhere again.
    e.wr(CON_BAR0 + 0x14, 1, 0);
    assert!(!e.gic.spi_level(CON_INTID), "the reset clears the ISR");
    assert!(!e.input(b'x'));
}

#[test]
fn the_linux_platform_wires_the_devices_as_its_device_tree_says() {
    use crate::vmm::linux::{platform_with, DeviceSet, Devices, PCI_SPI_BASE};
    let devices = Devices {
        disk: Some(Box::new(VecDisk::new(vec![0; 1 << 20], false))),
        virtio_console: true,
        hvc_out: None,
    };
    let set = devices.set();
    assert_eq!(
        set,
        DeviceSet {
            virtio_blk: true,
            virtio_console: true
        }
    );
    let intx = set.intx();
    assert_eq!(intx.len(), 2);
    assert_eq!(
        (intx[0].device, intx[0].pin, intx[0].spi),
        (0, 1, PCI_SPI_BASE)
    );
    assert_eq!(
        (intx[1].device, intx[1].pin, intx[1].spi),
        (1, 1, PCI_SPI_BASE + 1)
    );
    let (mut gic, mut bus, stats) = platform_with(1, devices).unwrap();
    let mut out = Captured::default();
    let mut m = FakeDma::new(RAM, 1);
    let mut ctx = DeviceCtx {
        gic: &mut gic,
        console: &mut out,
        unix_time: 0,
        dma: &mut m,
    };
    assert_eq!(bus.read(0, cfg(0, 0), 4, &mut ctx), Some(0x1042_1af4));
    assert_eq!(bus.read(0, cfg(1, 0), 4, &mut ctx), Some(0x1043_1af4));
    assert_eq!(bus.read(0, cfg(2, 0), 4, &mut ctx), Some(0xffff_ffff));
    assert_eq!(bus.device_at(0x7fff_ffff), Some("pci"), "the memory window");
    assert_eq!(bus.device_at(0x8000_0000), None, "RAM is not on the bus");
    assert_eq!(bus.device_at(0x0100_0000), Some("uart16550"));
    // The 16550 is counted.
    bus.write(0, 0x0100_0000, 1, u64::from(b'x'), &mut ctx);
    assert_eq!(stats.uart.get().console_bytes, 1);
    assert!(stats.blk.is_some() && stats.console.is_some());
    // Without devices there is no PCI bus at all.
    let (_, bus, stats) = platform_with(1, Devices::default()).unwrap();
    assert_eq!(bus.device_at(0x4000_0000), None);
    assert!(stats.blk.is_none() && stats.console.is_none());
    assert!(DeviceSet::default().intx().is_empty());
}

#[test]
fn the_plan_describes_the_bus_only_when_there_are_devices() {
    use crate::vmm::linux::{DeviceSet, LinuxConfig, LinuxPlan, SWIOTLB_ARG};
    let mut kernel = vec![0u8; 4096];
    kernel[0x10..0x18].copy_from_slice(&(2u64 << 20).to_le_bytes());
    kernel[0x18..0x20].copy_from_slice(&0x2u64.to_le_bytes());
    kernel[0x38..0x3c].copy_from_slice(b"ARM\x64");
    let cfg = LinuxConfig {
        mem: 256 << 20,
        cpus: 1,
        hash_algo: 0,
        rpv: [0; 64],
        num_bps: 2,
        num_wps: 2,
        params: "quiet".into(),
        measure_initrd: true,
    };
    let both = DeviceSet {
        virtio_blk: true,
        virtio_console: true,
    };
    let with = LinuxPlan::with_devices(&cfg, both, &kernel, 4096, None).unwrap();
    let without = LinuxPlan::new(&cfg, &kernel, 4096, None).unwrap();
    assert!(with.bootargs.contains(SWIOTLB_ARG.trim()));
    assert!(
        with.bootargs.ends_with(" quiet"),
        "the launch's parameters come last"
    );
    assert!(!without.bootargs.contains("swiotlb"));
    let fdt = fdt::Fdt::new(&with.dtb).unwrap();
    let pci = fdt.find_node("/pci@40000000").expect("a host bridge");
    let map = pci.property("interrupt-map").unwrap().value;
    assert_eq!(map.len(), 2 * 10 * 4, "one entry per device");
    let cell = |i: usize| u32::from_be_bytes(map[4 * i..4 * i + 4].try_into().unwrap());
    assert_eq!(
        (cell(0), cell(3), cell(8)),
        (0, 1, 1),
        "00:00.0 INTA -> SPI 1"
    );
    assert_eq!(
        (cell(10), cell(13), cell(18)),
        (1 << 11, 1, 2),
        "00:01.0 INTA -> SPI 2"
    );
    assert!(fdt::Fdt::new(&without.dtb)
        .unwrap()
        .find_node("/pci@40000000")
        .is_none());
    assert_ne!(
        with.predict_rim(&kernel, None),
        without.predict_rim(&kernel, None),
        "the bus is measured"
    );
}
