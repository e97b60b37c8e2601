//! Tests of `LinuxPlan` against the RMM core: a tiny arm64 `Image` is planned, the VM is built
//! in-process from `plan.loads(...)`, and the RIM the RMM computed by `REALM_ACTIVATE` (read
//! from the realm descriptor) must equal `plan.predict_rim(...)`.

use super::granules::GranulePool;
use super::linux::{platform, LinuxConfig, LinuxPlan, PlanError};
use super::loader::{LoadError, NotImage, IMAGE_MAGIC, MAGIC_OFFSET};
use super::platform::{GICD_BASE, RAM_BASE, RTC_BASE, UART_BASE};
use super::runloop_tests::{run_to_off, Script};
use super::vm::{Vm, VmSpec};
use super::vm_tests::*;
use alloc::string::String;
use alloc::vec::Vec;
use cca_abi::rmi::RmiFid;
use cca_abi::GRANULE_SIZE as G;
use rmm_core::Pa;

/// Host PA of the kernel file.
const KERNEL_PA: u64 = DRAM;
/// Its length: four pages and a bit.
const KERNEL_LEN: u64 = 4 * G + 0x321;
/// Host PA of the initrd.
const INITRD_PA: u64 = DRAM + 0x8_0000;
/// Its length.
const INITRD_LEN: u64 = 2 * G + 77;
/// Host PA of the device tree.
const DTB_PA: u64 = DRAM + 0x10_0000;

/// A little-endian arm64 `Image` of `len` bytes: 4 KiB pages, placed anywhere, `text_offset`
/// 0, `image_size` 64 KiB (more than the file: BSS).
fn image(len: u64) -> Vec<u8> {
    let mut k = pattern(len, 2);
    k[0x08..0x10].copy_from_slice(&0u64.to_le_bytes());
    k[0x10..0x18].copy_from_slice(&0x1_0000u64.to_le_bytes());
    k[0x18..0x20].copy_from_slice(&0b1010u64.to_le_bytes());
    k[0x20..0x38].fill(0);
    k[MAGIC_OFFSET..MAGIC_OFFSET + 4].copy_from_slice(&IMAGE_MAGIC.to_le_bytes());
    k[0x3C..0x40].fill(0);
    k
}

fn config(hash_algo: u8, measure_initrd: bool) -> LinuxConfig {
    LinuxConfig {
        mem: RAM_SIZE,
        cpus: 2,
        hash_algo,
        rpv: [0xA7; 64],
        num_bps: 2,
        num_wps: 2,
        params: String::from("quiet"),
        measure_initrd,
    }
}

/// Plans, builds and boots (one step of REC 0) a Linux realm; returns the RIM the RMM
/// measured, after checking it against the plan's prediction.
fn boot(hash_algo: u8, measure_initrd: bool, initrd: Option<&[u8]>) -> [u8; 64] {
    let m = Machine::standard();
    let rmm = m.rmm();
    let mut rig = Rig::new(&m, &rmm);
    let kernel = image(KERNEL_LEN);
    let cfg = config(hash_algo, measure_initrd);
    let plan = LinuxPlan::new(
        &cfg,
        &kernel[..64],
        KERNEL_LEN,
        initrd.map(|i| i.len() as u64),
    )
    .unwrap();
    assert_eq!((plan.ram, plan.ipa_bits), ((RAM_BASE, RAM_SIZE), 33));
    assert!(plan.bootargs.ends_with(" quiet"), "{}", plan.bootargs);
    m.put(KERNEL_PA, &kernel);
    if let Some(i) = initrd {
        m.put(INITRD_PA, i);
    }
    m.put(DTB_PA, &plan.dtb);
    let loads = plan.loads(KERNEL_PA, initrd.map(|_| INITRD_PA), DTB_PA);
    assert_eq!(loads.len(), 2 + usize::from(initrd.is_some()));
    assert!(
        loads.windows(2).all(|w| w[0].ipa < w[1].ipa),
        "address order"
    );
    if initrd.is_some() {
        assert_eq!(loads[1].measured, measure_initrd, "the initrd's flag");
    }
    let (vgic, bus) = platform(cfg.cpus).unwrap();
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
    assert_eq!(rig.calls(RmiFid::REALM_ACTIVATE).len(), 1);
    let rd = rig.rd(vm.realm.rd);
    let predicted = plan.predict_rim(&kernel, initrd).unwrap();
    assert_eq!(rd.rim, predicted.slot, "RIM measured = predicted");
    assert_eq!(u64::from(hash_algo), rd.hash_algo);
    assert_eq!(rd.rpv, cfg.rpv);
    // The device tree the kernel gets is the plan's, where x0 points.
    let dtb_page = m
        .sim
        .peek(Pa::new(vm.memory.backing_of(plan.layout.x0).unwrap()));
    let n = plan.dtb.len().min(G as usize);
    assert_eq!(&dtb_page[..n], &plan.dtb[..n]);
    // The boot CPU enters the kernel at the planned PC with x0 = the DTB; the other is off.
    let s = Script::new(&rig);
    s.off();
    run_to_off(&mut rig, &mut vm, &s);
    let seen = s.seen();
    assert_eq!(
        (seen[0].vcpu, seen[0].pc, seen[0].x[0]),
        (0, plan.layout.pc, plan.layout.x0)
    );
    assert_eq!(plan.layout.pc, RAM_BASE, "text_offset 0");
    destroy_clean(&m, &mut rig, &mut vm);
    rd.rim
}

#[test]
fn the_rim_of_a_linux_realm_is_predicted_sha256_and_sha512() {
    let initrd = pattern(INITRD_LEN, 3);
    let mut other = initrd.clone();
    other[5] ^= 0xFF;
    let a = boot(0, true, Some(&initrd));
    let b = boot(1, true, Some(&initrd));
    assert!(
        a[32..].iter().all(|&x| x == 0),
        "SHA-256 fills half the slot"
    );
    assert_ne!(a[..32], b[..32]);
    assert!(b[32..].iter().any(|&x| x != 0), "SHA-512 fills the slot");
    // A measured initrd's contents change the RIM.
    assert_ne!(boot(0, true, Some(&other)), a);
}

#[test]
fn an_unmeasured_initrd_changes_the_rim_only_by_its_flags() {
    let initrd = pattern(INITRD_LEN, 3);
    let mut other = initrd.clone();
    other[5] ^= 0xFF;
    let measured = boot(0, true, Some(&initrd));
    let unmeasured = boot(0, false, Some(&initrd));
    assert_ne!(measured, unmeasured);
    assert_eq!(
        boot(0, false, Some(&other)),
        unmeasured,
        "contents not measured"
    );
    assert_ne!(boot(1, false, Some(&initrd)), unmeasured);
    // Without an initrd.
    boot(1, true, None);
}

#[test]
fn plans_that_cannot_be_made() {
    let kernel = image(KERNEL_LEN);
    let cfg = config(0, true);
    let mut c = cfg.clone();
    c.cpus = 0;
    assert!(matches!(
        LinuxPlan::new(&c, &kernel, KERNEL_LEN, None),
        Err(PlanError::NoCpus)
    ));
    let mut c = cfg.clone();
    c.mem = 0;
    assert!(matches!(
        LinuxPlan::new(&c, &kernel, KERNEL_LEN, None),
        Err(PlanError::BadRam)
    ));
    let mut gz = kernel.clone();
    gz[..2].copy_from_slice(&[0x1F, 0x8B]);
    gz[MAGIC_OFFSET] = 0;
    assert!(matches!(
        LinuxPlan::new(&cfg, &gz, KERNEL_LEN, None),
        Err(PlanError::Load(LoadError::NotArm64Image(NotImage::Gzip)))
    ));
    // A kernel that does not fit below the initrd and DTB.
    assert!(matches!(
        LinuxPlan::new(&cfg, &kernel, RAM_SIZE, Some(G)),
        Err(PlanError::Load(LoadError::TooSmall { .. }))
    ));
    let e = LinuxPlan::new(&cfg, &kernel, KERNEL_LEN, Some(0)).unwrap_err();
    assert!(!e.to_string().is_empty());
    // A prediction needs the initrd the plan has room for.
    let plan = LinuxPlan::new(&cfg, &kernel, KERNEL_LEN, Some(INITRD_LEN)).unwrap();
    assert!(plan.predict_rim(&kernel, None).is_none());
    // Only REC 0 is runnable and measured; its PC and x0 are the layout's.
    assert_eq!(plan.recs.len(), 2);
    assert_eq!(plan.recs[0].flags & 1, 1);
    assert_eq!(plan.recs[1].flags & 1, 0);
    assert_eq!(
        (plan.recs[0].pc, plan.recs[0].gprs[0]),
        (plan.layout.pc, plan.layout.x0)
    );
}

#[test]
fn the_platform_has_kvmtools_devices() {
    assert!(platform(0).is_err());
    let (vgic, bus) = platform(3).unwrap();
    assert_eq!(vgic.nr_vcpus(), 3);
    assert_eq!(vgic.mpidr(2), Some(2));
    let names = [
        UART_BASE,
        RTC_BASE,
        GICD_BASE,
        super::platform::gicr_base(3),
    ]
    .map(|a| bus.device_at(a).is_some());
    assert_eq!(names, [true; 4]);
    assert!(bus.device_at(0x0900_0000).is_none(), "nothing else");
    assert!(
        bus.device_at(GICD_BASE - 1).is_some(),
        "the last redistributor"
    );
    assert!(bus.device_at(super::platform::gicr_base(3) - 1).is_none());
}
