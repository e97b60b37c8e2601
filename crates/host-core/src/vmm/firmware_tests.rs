//! Tests of firmware boots (`LinuxPlan::with_firmware`): the device tree edk2's kvmtool realm
//! firmware reads, where the firmware and the DTB go, the RIM the RMM measures for them, the
//! firmware's RSI sequence through the run loop (RIPAS RAM over all memory, `IPA_STATE_GET` of
//! a device range, a bounce buffer shared and returned), the 16550 and the RTC through the
//! alias as the firmware drives them, PCI configuration as edk2's `PciBusDxe` programs it, and
//! the command line of the kernel the firmware boots.

use super::super::granules::GranulePool;
use super::super::loader::{LoadError, Payload, IMAGE_MAGIC, MAGIC_OFFSET};
use super::super::memory::PageState;
use super::super::platform::{self, PCI_MMIO_BASE, RAM_BASE, RTC_BASE, UART_BASE};
use super::super::runloop::{DefaultHooks, RunLimits};
use super::super::runloop_tests::Script;
use super::super::stats::ExitClass;
use super::super::vm::{Stop, Vm, VmSpec};
use super::super::vm_tests::*;
use super::*;
use crate::devices::{ConsoleOut, DeviceCtx};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use cca_abi::arch::esr;
use cca_abi::rmi::RmiFid;
use cca_abi::rsi::{self, RsiResponse};
use cca_abi::GRANULE_SIZE as G;
use fdt::Fdt;
use rmm_core::run::{ExitKind, RealmExit, TimerState};

/// Host PA of the firmware file in the simulated DRAM.
const FW_PA: u64 = DRAM;
/// Its length: three pages and a bit (the real one is 2 MiB).
const FW_LEN: u64 = 3 * G + 0x40;
/// Host PA of the device tree.
const DTB_PA: u64 = DRAM + 0x10_0000;

/// A firmware file laid out like `KVMTOOL_EFI.fd`: an arm64 `Image` header with
/// `text_offset` 0x80000 (not used for firmware), `image_size` 64 KiB.
fn firmware(len: u64) -> Vec<u8> {
    let mut f = pattern(len, 9);
    f[0x08..0x10].copy_from_slice(&0x8_0000u64.to_le_bytes());
    f[0x10..0x18].copy_from_slice(&0x1_0000u64.to_le_bytes());
    f[0x18..0x20].copy_from_slice(&0u64.to_le_bytes());
    f[MAGIC_OFFSET..MAGIC_OFFSET + 4].copy_from_slice(&IMAGE_MAGIC.to_le_bytes());
    f
}

fn config(mem: u64, cpus: usize) -> LinuxConfig {
    LinuxConfig {
        mem,
        cpus,
        hash_algo: 0,
        rpv: [0x5C; 64],
        num_bps: 2,
        num_wps: 2,
        params: String::new(),
        measure_initrd: true,
    }
}

const DISK: DeviceSet = DeviceSet {
    virtio_blk: true,
    virtio_console: true,
};

fn prop<'a>(fdt: &Fdt<'a>, node: &str, name: &str) -> Option<&'a [u8]> {
    fdt.find_node(node)?.property(name).map(|p| p.value)
}

fn u64s(v: &[u8]) -> Vec<u64> {
    v.chunks_exact(8)
        .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
        .collect()
}

fn u32s(v: &[u8]) -> Vec<u32> {
    v.chunks_exact(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn the_firmware_goes_at_the_ram_base_and_the_dtb_near_the_top() {
    let fw = firmware(FW_LEN);
    let plan = LinuxPlan::with_firmware(&config(512 << 20, 2), DISK, &fw, FW_LEN).unwrap();
    assert!(plan.is_firmware());
    assert_eq!(plan.layout.payload, Payload::Firmware);
    assert_eq!(plan.layout.image.base, RAM_BASE, "text_offset is not used");
    assert_eq!(plan.layout.pc, RAM_BASE);
    // kvmtool-cca: ALIGN_UP(RAM end - 64 KiB - 2 MiB, 2 MiB).
    assert_eq!(plan.layout.x0, 0x9FE0_0000);
    assert_eq!(plan.layout.dtb.base, plan.layout.x0);
    assert_eq!(plan.layout.image_extent.size, 0x1_0000, "image_size");
    assert!(plan.layout.initrd.is_none());
    assert_eq!((plan.ram, plan.ipa_bits), ((RAM_BASE, 512 << 20), 33));
    // REC 0 at the image with x0 = the DTB, x1..x3 (and the rest) zero; the others off.
    let r0 = &plan.recs[0];
    assert_eq!(
        (r0.flags & 1, r0.pc, r0.gprs[0]),
        (1, RAM_BASE, 0x9FE0_0000)
    );
    assert!(r0.gprs[1..].iter().all(|&x| x == 0));
    assert_eq!(plan.recs[1].flags & 1, 0);
    assert_eq!(plan.recs[1].pc, 0);
    // What is loaded: the firmware file, then the DTB, both measured.
    let loads = plan.loads(FW_PA, None, DTB_PA);
    assert_eq!(loads.len(), 2);
    assert_eq!(
        (loads[0].ipa, loads[0].src, loads[0].len, loads[0].measured),
        (RAM_BASE, FW_PA, FW_LEN, true)
    );
    assert_eq!(
        (loads[1].ipa, loads[1].src, loads[1].len, loads[1].measured),
        (0x9FE0_0000, DTB_PA, plan.dtb.len() as u64, true)
    );
    // A 256 MiB realm (the launcher's default): the DTB at 0x8FE0_0000.
    let small = LinuxPlan::with_firmware(&config(256 << 20, 1), DISK, &fw, FW_LEN).unwrap();
    assert_eq!(small.layout.x0, 0x8FE0_0000);
}

#[test]
fn the_device_tree_of_a_firmware_boot() {
    let fw = firmware(FW_LEN);
    let plan = LinuxPlan::with_firmware(&config(256 << 20, 2), DISK, &fw, FW_LEN).unwrap();
    let blob = &plan.dtb;
    assert!(blob.len() <= FIRMWARE_DTB_LIMIT, "{}", blob.len());
    assert!(blob.len() < 4096, "about kvmtool's size: {}", blob.len());
    let fdt = Fdt::new(blob).unwrap();
    // No kernel arguments and no initrd: the firmware boots what the disk holds.
    assert_eq!(plan.bootargs, "");
    let chosen = fdt.find_node("/chosen").unwrap();
    let names: Vec<&str> = chosen.properties().map(|p| p.name).collect();
    assert_eq!(names, ["stdout-path"]);
    // `stdout-path` leads to the 16550 through the alias (FdtSerialPortAddressLib).
    assert_eq!(
        prop(&fdt, "/chosen", "stdout-path"),
        Some(&b"serial0\0"[..])
    );
    let uart = fdt.chosen().stdout().unwrap();
    assert_eq!(uart.name, "U6_16550A@1000000");
    assert!(uart.property("status").is_none(), "okay by default");
    assert_eq!(
        u64s(uart.property("reg").unwrap().value),
        [UART_BASE, 8],
        "2 + 2 cells"
    );
    // kvmtool's four 16550s: edk2 makes the second the ACPI DBG2 port and the others SSDT
    // serial ports (without them it installs no table after DBG2 or the serial SSDT: no
    // MCFG, no PCI SSDT, and Linux sees no PCI bus).
    let uarts: Vec<_> = fdt
        .all_nodes()
        .filter(|n| {
            n.compatible()
                .is_some_and(|c| c.all().any(|s| s == "ns16550a"))
        })
        .collect();
    assert_eq!(uarts.len(), 4);
    let debug = fdt.find_node(crate::vmm::dtb::DEBUG_UART_PATH).unwrap();
    assert_eq!(
        u64s(debug.property("reg").unwrap().value),
        [platform::DEBUG_UART_BASE, 8]
    );
    assert_eq!(
        u32s(debug.property("interrupts").unwrap().value),
        [0, platform::DEBUG_UART_SPI, 4]
    );
    // One memory node with one range (PrePi reads only the first).
    let mem: Vec<_> = fdt
        .all_nodes()
        .filter(|n| n.property("device_type").map(|p| p.value) == Some(b"memory\0"))
        .collect();
    assert_eq!(mem.len(), 1);
    assert_eq!(
        u64s(mem[0].property("reg").unwrap().value),
        [RAM_BASE, 256 << 20]
    );
    // The RTC the firmware's constructor looks for.
    let rtc = fdt.find_compatible(&["motorola,mc146818"]).unwrap();
    assert_eq!(u64s(rtc.property("reg").unwrap().value), [RTC_BASE, 2]);
    // PSCI over SMC (the firmware's reset library and Linux read `method`).
    assert_eq!(prop(&fdt, "/psci", "method"), Some(&b"smc\0"[..]));
    // The PCI host bridge with an I/O and a 32-bit memory window and INTA of both devices.
    let pci = fdt.find_compatible(&["pci-host-ecam-generic"]).unwrap();
    assert_eq!(
        u64s(pci.property("reg").unwrap().value),
        [0x4000_0000, 0x1000_0000]
    );
    let ranges = u32s(pci.property("ranges").unwrap().value);
    assert_eq!(ranges.len(), 14);
    assert_eq!(ranges[0] >> 24, 1, "I/O first");
    assert_eq!(ranges[7] >> 24, 2, "then 32-bit memory");
    assert_eq!(ranges[9], PCI_MMIO_BASE as u32);
    assert_eq!(u32s(pci.property("interrupt-map").unwrap().value).len(), 20);
    assert!(pci.property("dma-coherent").is_some());
    // No CFI flash (variables stay in RAM, no first-boot reset) and no virtio-mmio.
    assert!(fdt.find_compatible(&["cfi-flash"]).is_none());
    assert!(fdt.find_compatible(&["virtio,mmio"]).is_none());
    // The same bytes every time: the tree is measured.
    let again = LinuxPlan::with_firmware(&config(256 << 20, 2), DISK, &fw, FW_LEN).unwrap();
    assert_eq!(again.dtb, plan.dtb);
    // Without devices there is no PCI node; `-p` goes in unchanged as bootargs.
    let mut cfg = config(256 << 20, 1);
    cfg.params = String::from("debug");
    let bare = LinuxPlan::with_firmware(&cfg, DeviceSet::default(), &fw, FW_LEN).unwrap();
    let fdt = Fdt::new(&bare.dtb).unwrap();
    assert!(fdt.find_compatible(&["pci-host-ecam-generic"]).is_none());
    assert_eq!(fdt.chosen().bootargs(), Some("debug"));
    assert_eq!(bare.bootargs, "debug");
}

#[test]
fn firmware_plans_that_cannot_be_made() {
    let fw = firmware(FW_LEN);
    assert!(matches!(
        LinuxPlan::with_firmware(&config(256 << 20, 0), DISK, &fw, FW_LEN),
        Err(PlanError::NoCpus)
    ));
    assert!(matches!(
        LinuxPlan::with_firmware(&config(0, 1), DISK, &fw, FW_LEN),
        Err(PlanError::BadRam)
    ));
    let mut not_image = fw.clone();
    not_image[MAGIC_OFFSET] = 0;
    assert!(matches!(
        LinuxPlan::with_firmware(&config(256 << 20, 1), DISK, &not_image, FW_LEN),
        Err(PlanError::Load(LoadError::NotArm64Image(_)))
    ));
    assert!(matches!(
        LinuxPlan::with_firmware(&config(256 << 20, 1), DISK, &fw[..32], FW_LEN),
        Err(PlanError::Load(LoadError::TooShort { .. }))
    ));
    // In 4 MiB the DTB goes at 2 MiB: 2 MiB of firmware fit below it, a page more does not.
    assert!(LinuxPlan::with_firmware(&config(4 << 20, 1), DISK, &fw, 2 << 20).is_ok());
    assert!(matches!(
        LinuxPlan::with_firmware(&config(4 << 20, 1), DISK, &fw, (2 << 20) + G),
        Err(PlanError::Load(LoadError::TooSmall { .. }))
    ));
    assert!(LinuxPlan::with_firmware(&config(6 << 20, 1), DISK, &fw, (2 << 20) + G).is_ok());
    // A tree the firmware's 32 KiB window cannot take.
    let e = LinuxPlan::with_firmware(&config(256 << 20, 256), DISK, &fw, FW_LEN).unwrap_err();
    match e {
        PlanError::FirmwareDtbTooLarge { size } => assert!(size > FIRMWARE_DTB_LIMIT),
        other => panic!("{other}"),
    }
    assert!(e_string(256).contains("at most 16384"));
    // The most vCPUs that fit.
    let fits = (1..=256)
        .take_while(|&n| LinuxPlan::with_firmware(&config(256 << 20, n), DISK, &fw, FW_LEN).is_ok())
        .count();
    assert!(fits >= 64, "{fits} vCPUs");
}

fn e_string(cpus: usize) -> String {
    let fw = firmware(FW_LEN);
    match LinuxPlan::with_firmware(&config(256 << 20, cpus), DISK, &fw, FW_LEN) {
        Ok(_) => String::new(),
        Err(e) => alloc::format!("{e}"),
    }
}

/// A data abort at `ipa` that the RMM can describe: a 1-byte access through x0 (read or
/// write), translation fault level 3.
fn byte_access(ipa: u64, write: bool) -> RealmExit {
    let iss = esr::ISV | if write { esr::WNR } else { 0 } | 0x07;
    RealmExit {
        kind: ExitKind::Sync,
        esr: (esr::ec::DABT_LOW << esr::EC_SHIFT) | esr::IL | iss,
        far: ipa & 0xFFF,
        hpfar: (ipa >> 12) << 4,
        timers: TimerState::default(),
    }
}

#[derive(Default)]
struct Console(Vec<u8>);

impl ConsoleOut for Console {
    fn write_byte(&mut self, byte: u8) {
        self.0.push(byte);
    }
}

/// Builds a firmware realm in-process (RAM of the test machine, 4 MiB), checks that the RIM
/// the RMM measured is the one the plan predicts, and runs the firmware's RSI sequence and
/// device accesses: the memory states and the values the realm saw must be the firmware's.
#[test]
fn a_firmware_boot_is_measured_as_predicted_and_its_rsi_calls_are_served() {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let fw = firmware(FW_LEN);
    let cfg = config(RAM_SIZE, 2);
    let plan = LinuxPlan::with_firmware(&cfg, DeviceSet::default(), &fw[..64], FW_LEN).unwrap();
    assert_eq!(plan.layout.x0, RAM_BASE + BLOCK, "top of 4 MiB - 2 MiB");
    m.put(FW_PA, &fw);
    m.put(DTB_PA, &plan.dtb);
    let loads = plan.loads(FW_PA, None, DTB_PA);
    let (vgic, bus, _) = platform_for_firmware(cfg.cpus, Devices::default()).unwrap();
    for (base, _) in platform::EXTRA_UARTS {
        assert!(bus.device_at(base).is_some());
    }
    let spec = VmSpec {
        params: plan.params,
        ram: plan.ram,
        initial_ram: plan.ram,
        recs: &plan.recs,
        loads: &loads,
        initial_vmcr: 0,
    };
    let pool = GranulePool::new(POOL.0, POOL.1).unwrap();
    let mut vm = match Vm::build(&mut rig.rmi, &mut rig.mem, pool, &spec, vgic, bus) {
        Ok(vm) => vm,
        Err(e) => panic!("build: {e}\n{}", rig.log()),
    };
    let rd = rig.rd(vm.realm.rd);
    assert_eq!(
        rd.rim,
        plan.predict_rim(&fw, None).unwrap().slot,
        "RIM measured = predicted"
    );
    // A different DTB (another RAM size) or firmware byte changes the prediction.
    let mut other = fw.clone();
    other[0x100] ^= 1;
    assert_ne!(plan.predict_rim(&other, None).unwrap().slot, rd.rim);

    let shared = platform::shared_bit(plan.ipa_bits);
    let top = RAM_BASE + RAM_SIZE;
    let buffer = RAM_BASE + 0x2_0000;
    let buffer2 = RAM_BASE + 0x3_0000;
    let s = Script::new(&rig);
    // PrePi, MMU off: RIPAS RAM over the whole memory range, flags 0.
    s.smc(&[
        u64::from(rsi::IPA_STATE_SET),
        RAM_BASE,
        top,
        1,
        rsi::NO_CHANGE_DESTROYED,
    ]);
    // Every device range of the DT: the 16550's is EMPTY, so it is host-emulated.
    s.smc(&[u64::from(rsi::IPA_STATE_GET), UART_BASE, UART_BASE + G]);
    // The banner through the alias: poll LSR (THRE | TEMT), then THR.
    s.then(move |_, _| byte_access(shared | (UART_BASE + 5), false));
    s.then(move |ctx, _| {
        ctx.gprs[0] = u64::from(b'U');
        byte_access(shared | UART_BASE, true)
    });
    // The RTC constructor and driver: index D, read VRT.
    s.then(move |ctx, _| {
        ctx.gprs[0] = 0x0D;
        byte_access(shared | RTC_BASE, true)
    });
    s.then(move |_, _| byte_access(shared | (RTC_BASE + 1), false));
    // ArmCcaIoMmuDxe: a bounce buffer shared (EMPTY, flags 1), used at the alias, returned.
    s.smc(&[
        u64::from(rsi::IPA_STATE_SET),
        buffer,
        buffer + 2 * G,
        0,
        rsi::CHANGE_DESTROYED,
    ]);
    s.then(move |_, _| byte_access(shared | buffer, false));
    s.smc(&[
        u64::from(rsi::IPA_STATE_SET),
        buffer,
        buffer + 2 * G,
        1,
        rsi::CHANGE_DESTROYED,
    ]);
    // Another bounce buffer, shared and handed to a device before the firmware touches it.
    s.smc(&[
        u64::from(rsi::IPA_STATE_SET),
        buffer2,
        buffer2 + G,
        0,
        rsi::CHANGE_DESTROYED,
    ]);
    s.off();
    let mut console = Console::default();
    let r = vm.run(
        &mut rig.rmi,
        &mut rig.mem,
        &mut s.fake_host(),
        &mut console,
        &mut DefaultHooks,
        RunLimits {
            max_exits: 100,
            quantum: 1000,
        },
    );
    assert_eq!(r, Ok(Stop::SystemOff), "{}", rig.log());
    let seen = s.seen();
    // REC 0 entered the firmware at the RAM base with x0 = the DTB.
    assert_eq!(
        (seen[0].vcpu, seen[0].pc, seen[0].x[0]),
        (0, RAM_BASE, plan.layout.x0)
    );
    let accept = RsiResponse::Accept as u64;
    assert_eq!(seen[1].x[..3], [0, top, accept], "all RAM, accepted");
    assert_eq!(seen[2].x[..3], [0, UART_BASE + G, 0], "the UART: EMPTY");
    assert_eq!(seen[3].x[0], 0x60, "LSR: THRE | TEMT");
    assert_eq!(seen[6].x[0], 0x80, "RTC register D: VRT");
    assert_eq!(seen[7].x[..3], [0, buffer + 2 * G, accept], "shared");
    assert_eq!(seen[9].x[..3], [0, buffer + 2 * G, accept], "returned");
    assert_eq!(console.0, b"U");
    assert_eq!(vm.stats.get(ExitClass::RipasChange).0, 4);
    assert_eq!(vm.memory.stats.shared_mapped, 1);
    assert_eq!(vm.memory.stats.shared_unmapped, 1);
    assert_eq!(vm.memory.state(buffer), Some(PageState::Ram));
    // The firmware's pages and the DTB stayed private through all of it.
    assert_eq!(vm.memory.state(RAM_BASE), Some(PageState::Private));
    assert_eq!(vm.memory.state(plan.layout.x0), Some(PageState::Private));
    assert!(!rig.calls(RmiFid::RTT_SET_RIPAS).is_empty());
    // A device may fill the shared buffer before the realm touches it at the alias (it is
    // EMPTY: a Non-secure granule); not the returned one, nor the firmware's own pages.
    assert_eq!(vm.memory.state(buffer2), Some(PageState::Empty));
    {
        use crate::devices::GuestDma;
        let mut dma = super::super::dma::SharedMemory {
            memory: &vm.memory,
            mem: &mut rig.mem,
            shared_bit: shared,
        };
        assert!(dma.write(buffer2, b"sector").is_ok());
        assert!(dma.write(buffer2 | shared, b"sector").is_ok());
        assert!(dma.write(buffer, b"x").is_err(), "returned: RIPAS RAM");
        assert!(
            dma.write(RAM_BASE, b"x").is_err(),
            "the firmware's private page"
        );
        assert!(
            dma.write(buffer2 + G - 2, b"xyz").is_err(),
            "runs into a RAM page"
        );
    }
    let pa = vm.memory.backing_of(buffer2).unwrap();
    assert_eq!(&m.sim.peek(rmm_core::Pa::new(pa))[..6], b"sector");
    destroy_clean(&m, &mut rig, &mut vm);
}

/// PCI configuration as edk2's `PciBusDxe` and `Virtio10Dxe` program it: probe every device
/// of bus 0, size each BAR and the ROM BAR (restoring them), assign BAR 0 in the memory
/// window, enable decoding and bus mastering, walk the capability list to the virtio
/// structures, and check the device is modern (revision, subsystem, device ID).
#[test]
fn pci_configuration_as_the_firmware_programs_it() {
    use crate::devices::virtio::blk::VecDisk;
    use crate::devices::virtio::queue::tests::FakeDma;
    let devices = Devices {
        disk: Some(Box::new(VecDisk::new(vec![0; 1 << 20], false))),
        virtio_console: true,
        hvc_out: None,
    };
    let (mut gic, mut bus, _) = platform_with(1, devices).unwrap();
    let mut out = crate::devices::test_util::Captured::default();
    let mut dma = FakeDma::new(RAM_BASE, 1);
    let mut ctx = DeviceCtx {
        gic: &mut gic,
        console: &mut out,
        unix_time: 0,
        dma: &mut dma,
    };
    let cfg = |dev: u64, reg: u64| platform::PCI_ECAM_BASE + (dev << 15) + reg;
    let mut present = Vec::new();
    for dev in 0..32 {
        let id = bus.read(0, cfg(dev, 0), 4, &mut ctx).unwrap();
        if id as u16 == 0xffff {
            continue;
        }
        // Header type 0, single function: functions 1..7 are not probed.
        assert_eq!(bus.read(0, cfg(dev, 0x0e), 1, &mut ctx), Some(0));
        present.push((dev, id));
    }
    assert_eq!(present, [(0, 0x1042_1af4), (1, 0x1043_1af4)]);
    let mut next_bar = PCI_MMIO_BASE;
    for &(dev, _) in &present {
        // Sizing: all-ones, read the mask, restore; only BAR 0 is implemented.
        let mut sizes = Vec::new();
        for bar in 0..6 {
            let reg = cfg(dev, 0x10 + 4 * bar);
            let old = bus.read(0, reg, 4, &mut ctx).unwrap();
            assert!(bus.write(0, reg, 4, 0xffff_ffff, &mut ctx));
            let mask = bus.read(0, reg, 4, &mut ctx).unwrap();
            assert!(bus.write(0, reg, 4, old, &mut ctx));
            sizes.push(mask);
        }
        assert_eq!(sizes[0] & 0xf, 0, "32-bit, non-prefetchable memory");
        let size = (!(sizes[0] as u32 & !0xf)).wrapping_add(1);
        assert_eq!(size, 0x4000, "16 KiB");
        assert!(sizes[1..].iter().all(|&s| s == 0), "{sizes:x?}");
        // The ROM BAR (0xFFFFFFFE: all but the enable bit) is absent.
        assert!(bus.write(0, cfg(dev, 0x30), 4, 0xffff_fffe, &mut ctx));
        assert_eq!(bus.read(0, cfg(dev, 0x30), 4, &mut ctx), Some(0));
        // Assignment, naturally aligned, then MEM | BUS_MASTER with 16-bit accesses.
        let at = next_bar.div_ceil(u64::from(size)) * u64::from(size);
        next_bar = at + u64::from(size);
        assert!(bus.write(0, cfg(dev, 0x10), 4, at, &mut ctx));
        assert_eq!(bus.read(0, cfg(dev, 0x10), 4, &mut ctx), Some(at));
        assert!(bus.write(0, cfg(dev, 0x04), 2, 0x6, &mut ctx));
        assert_eq!(bus.read(0, cfg(dev, 0x04), 2, &mut ctx), Some(0x6));
        // Modern, non-transitional: revision 1, subsystem ID 0x40 + type.
        assert_eq!(bus.read(0, cfg(dev, 0x08), 1, &mut ctx), Some(1));
        let device = bus.read(0, cfg(dev, 0x02), 2, &mut ctx).unwrap();
        assert_eq!(
            bus.read(0, cfg(dev, 0x2e), 2, &mut ctx),
            Some(device - 0x1000)
        );
        // The capability list: the status bit, then the chain from 0x34.
        let status = bus.read(0, cfg(dev, 0x06), 2, &mut ctx).unwrap();
        assert_ne!(status & 0x10, 0);
        let mut ptr = bus.read(0, cfg(dev, 0x34), 1, &mut ctx).unwrap() & !3;
        let mut kinds = Vec::new();
        let mut hops = 0;
        while ptr != 0 {
            hops += 1;
            assert!(hops < 48, "the list ends");
            let id = bus.read(0, cfg(dev, ptr), 1, &mut ctx).unwrap();
            let next = bus.read(0, cfg(dev, ptr + 1), 1, &mut ctx).unwrap();
            if id == 0x09 {
                let kind = bus.read(0, cfg(dev, ptr + 3), 1, &mut ctx).unwrap();
                let bar = bus.read(0, cfg(dev, ptr + 4), 1, &mut ctx).unwrap();
                let offset = bus.read(0, cfg(dev, ptr + 8), 4, &mut ctx).unwrap();
                let len = bus.read(0, cfg(dev, ptr + 12), 4, &mut ctx).unwrap();
                if kind != 5 {
                    assert_eq!(bar, 0, "in BAR 0");
                    assert!(offset + len <= u64::from(size));
                }
                kinds.push(kind);
            }
            ptr = next & !3;
        }
        kinds.sort_unstable();
        assert_eq!(
            kinds,
            [1, 2, 3, 4, 5],
            "common, notify, ISR, device, PCI_CFG"
        );
        // Through the assigned BAR: the common configuration's device status resets to 0.
        assert_eq!(bus.read(0, at + 0x14, 1, &mut ctx), Some(0));
    }
}

#[test]
fn the_command_line_of_the_kernel_the_firmware_boots() {
    let devices = DISK;
    assert_eq!(
        firmware_linux_cmdline(33, devices, "/dev/vda2", "").as_deref(),
        Some(
            "console=ttyS0 earlycon=uart,mmio,0x101000000 swiotlb=8192 root=/dev/vda2 rw \
             rootwait"
        )
    );
    assert_eq!(
        firmware_linux_cmdline(34, DeviceSet::default(), "LABEL=r", " quiet ").as_deref(),
        Some("console=ttyS0 earlycon=uart,mmio,0x201000000 root=LABEL=r rw rootwait quiet")
    );
    assert_eq!(firmware_linux_cmdline(32, devices, "/dev/vda2", ""), None);
    assert_eq!(firmware_linux_cmdline(33, devices, "", ""), None);
    assert_eq!(firmware_linux_cmdline(33, devices, "/dev/vda 2", ""), None);
    assert_eq!(
        firmware_linux_cmdline(33, devices, "/dev/vda2", "a\nb"),
        None
    );
    // No `acpi=` argument: the firmware installs ACPI tables and no device tree, so Linux
    // uses ACPI on its own.
    let line = firmware_linux_cmdline(33, devices, "/dev/vda2", "").unwrap();
    assert!(!line.contains("acpi"));
}
