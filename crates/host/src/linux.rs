//! The host as a VMM: when `cargo xtask run` loaded a launch description, bring the RMM up,
//! build the Linux realm it describes on kvmtool's platform, run it until it powers off or
//! resets, tear it down, and end the run with a verdict.
//!
//! Host memory follows `host_core::vmm::placement`.

extern crate alloc;

#[path = "disk.rs"]
mod disk;

use crate::machine::Machine;
use crate::vmhost::Hw;
use crate::{smc, Dram, Smc};
use cca_abi::el3::sip;
use cca_abi::psci;
use cca_abi::rmi::{RmmConfig, RMI_VERSION_2_0};
use fw_support::println;
use host_core::devices::ConsoleOut;
use host_core::vmm::error::VmError;
use host_core::vmm::granules::GranulePool;
use host_core::vmm::launch::{self, LaunchLimits};
use host_core::vmm::linux::LinuxConfig;
use host_core::vmm::linux::LinuxPlan;
use host_core::vmm::linux::{DeviceSet, Devices, PlatformStats};
use host_core::vmm::placement::{FILES_BASE, FILES_END, LAUNCH_PAGE, POOL_BASE};
use host_core::vmm::runloop::{DefaultHooks, RunLimits};
use host_core::vmm::vm::{Stop, Vm, VmSpec};
use host_core::{HostMem, Rmi};
use zerocopy::IntoBytes;

/// The launch description's text, if the launcher loaded one.
pub fn launch_description(machine: &Machine) -> Option<&'static [u8]> {
    let end = LAUNCH_PAGE.checked_add(launch::LAUNCH_PAGE_SIZE as u64)?;
    if LAUNCH_PAGE < machine.dram_base || end > machine.dram_end() {
        return None;
    }
    // SAFETY: the window is identity-mapped DRAM (checked above) that only QEMU's loader
    // wrote; the host never writes it, so a shared slice for the rest of the run is sound.
    let page =
        unsafe { core::slice::from_raw_parts(LAUNCH_PAGE as *const u8, launch::LAUNCH_PAGE_SIZE) };
    launch::decode_page(page).ok()
}

/// The realm's console: bytes go out labelled `[REALM]` as they come. It also notes when the
/// guest's init script printed its first line (the benchmark's end of boot) and, for a
/// firmware boot, when Linux's EFI stub said it was leaving the firmware (the benchmark's
/// ExitBootServices).
struct RealmConsole {
    /// [`INIT_MARKER`]: the guest's init script has started.
    init: Marker,
    /// [`EXIT_BOOT_SERVICES_MARKER`]: the EFI stub is calling ExitBootServices.
    exit_boot_services: Marker,
    /// [`LINUX_START_MARKER`]: the kernel's first line, right after the firmware handed over.
    linux_start: Marker,
}

/// A byte string watched for on the console, and the counter when it first went by.
struct Marker {
    pattern: &'static [u8],
    /// How much of the pattern the last bytes matched.
    matched: usize,
    /// The counter when the pattern was first seen.
    seen: Option<u64>,
}

impl Marker {
    const fn new(pattern: &'static [u8]) -> Self {
        Self {
            pattern,
            matched: 0,
            seen: None,
        }
    }

    fn feed(&mut self, byte: u8) {
        if self.seen.is_some() || self.pattern.is_empty() {
            return;
        }
        if byte == self.pattern[self.matched] {
            self.matched += 1;
            if self.matched == self.pattern.len() {
                self.seen = Some(crate::vmhost::counter());
            }
        } else {
            self.matched = usize::from(byte == self.pattern[0]);
        }
    }
}

/// What the launcher's init scripts start their lines with.
const INIT_MARKER: &[u8] = b"CCA-INIT:";
/// What Linux's EFI stub prints just before it calls ExitBootServices (when its log level
/// lets it).
const EXIT_BOOT_SERVICES_MARKER: &[u8] = b"Exiting boot services";
/// The kernel's first console line (its `earlycon`), printed just after the EFI stub called
/// ExitBootServices and entered the kernel.
const LINUX_START_MARKER: &[u8] = b"Booting Linux on physical CPU";

impl ConsoleOut for RealmConsole {
    fn write_byte(&mut self, byte: u8) {
        fw_support::console::write_bytes_as("REALM", &[byte]);
        self.init.feed(byte);
        self.exit_boot_services.feed(byte);
        self.linux_start.feed(byte);
    }
}

/// The virtio-console's output (the guest's `hvc0`): lines labelled `[HVC0]`, apart from the
/// 16550's `[REALM]` lines.
struct HvcConsole;

impl ConsoleOut for HvcConsole {
    fn write_byte(&mut self, byte: u8) {
        fw_support::console::write_bytes_as("HVC0", &[byte]);
    }
}

fn fail(what: core::fmt::Arguments<'_>) -> ! {
    println!("RESULT: FAIL ({what})");
    smc(sip::EXIT, &[1]);
    fw_support::exit_emulator(0xE1)
}

/// The RMI bring-up a hypervisor does at boot: version, configuration, activation.
/// Returns the number of RECs a realm may have.
/// Returns what the RMM's feature registers allow a launch.
fn bring_up(
    rmi: &mut Rmi<'_, Smc>,
    config_page: u64,
) -> Result<LaunchLimits, host_core::client::RmiError> {
    rmi.version(RMI_VERSION_2_0)?;
    let f0 = rmi.features(0)?;
    let f1 = rmi.features(1)?;
    Dram.write(config_page, RmmConfig::default().as_bytes());
    rmi.rmm_config_set(config_page)?;
    rmi.rmm_activate()?;
    Ok(LaunchLimits::from_features(f0, f1))
}

/// Builds and runs the realm the launch description `text` describes; never returns.
pub fn run(machine: &Machine, text: &[u8]) -> ! {
    println!("-- launch description found at {LAUNCH_PAGE:#x}: the host runs a Linux realm");
    crate::gic::init();
    crate::gic::enable_host_interrupts(0);
    let desc = match launch::parse(text) {
        Ok(d) => d,
        Err(e) => fail(format_args!("bad launch description: {e}")),
    };
    let mut out = fw_support::console::Writer;
    let mut rmi = Rmi::new(Smc, &mut out);
    let pool_top = machine.dram_end();
    let Ok(mut pool) = GranulePool::new(POOL_BASE, pool_top.saturating_sub(POOL_BASE)) else {
        fail(format_args!(
            "DRAM ends at {pool_top:#x}: no room for the VM above {POOL_BASE:#x}"
        ))
    };
    let config_page = match pool.alloc(1, 4096, "the RMM configuration page") {
        Ok(p) => p,
        Err(e) => fail(format_args!("{e}")),
    };
    let limits = match bring_up(&mut rmi, config_page) {
        Ok(l) => l,
        Err(e) => fail(format_args!("bringing the RMM up: {e}")),
    };
    if let Err(e) = desc.validate(&limits) {
        fail(format_args!("the launch does not fit this RMM: {e}"));
    }
    // The file the realm starts in: a kernel, or firmware that boots one from the disk.
    let (image, firmware) = match (desc.kernel, desc.firmware) {
        (Some(k), _) => (k, false),
        (None, Some(f)) => (f, true),
        (None, None) => fail(format_args!(
            "the launch description has neither a kernel nor firmware"
        )),
    };
    let what = if firmware { "firmware" } else { "kernel" };
    let files_end = FILES_END.min(machine.dram_end());
    let disk_blob = desc.disk.map(|d| launch::HostBlob {
        pa: d.pa,
        size: d.size,
    });
    for (what, blob) in [
        (what, Some(image)),
        ("initrd", desc.initrd),
        ("disk", disk_blob),
    ] {
        if let Some(b) = blob {
            let inside =
                b.pa >= FILES_BASE && b.pa.checked_add(b.size).is_some_and(|e| e <= files_end);
            if !inside {
                fail(format_args!(
                    "the {what} at {:#x} ({} bytes) is not inside the file window {FILES_BASE:#x}..{files_end:#x}",
                    b.pa, b.size
                ));
            }
        }
    }
    let cfg = LinuxConfig::from_launch(&desc);
    let mut head = [0u8; 64];
    Dram.read(image.pa, &mut head);
    let set = DeviceSet::from_launch(&desc);
    let planned = if firmware {
        LinuxPlan::with_firmware(&cfg, set, &head, image.size)
    } else {
        LinuxPlan::with_devices(&cfg, set, &head, image.size, desc.initrd.map(|i| i.size))
    };
    let plan = match planned {
        Ok(p) => p,
        Err(e) => fail(format_args!("{e}")),
    };
    if firmware {
        println!(
            "   {} vCPU(s), {} MiB of RAM at {:#x}, {}-bit IPAs, firmware {} bytes at {:#x} \
             (measured), device tree at {:#x} (measured); what the firmware loads from the \
             disk is not measured",
            cfg.cpus,
            cfg.mem >> 20,
            plan.ram.0,
            plan.ipa_bits,
            image.size,
            plan.layout.image.base,
            plan.layout.dtb.base
        );
    } else {
        println!(
            "   {} vCPU(s), {} MiB of RAM at {:#x}, {}-bit IPAs, kernel {} bytes, initrd {} bytes{}",
            cfg.cpus,
            cfg.mem >> 20,
            plan.ram.0,
            plan.ipa_bits,
            image.size,
            desc.initrd.map_or(0, |i| i.size),
            if cfg.measure_initrd {
                ""
            } else {
                " (not measured)"
            }
        );
        println!("   kernel command line: {}", plan.bootargs);
    }
    let dtb_pages = (plan.dtb.len() as u64).div_ceil(4096);
    let dtb_pa = match pool.alloc(dtb_pages, 4096, "the device tree") {
        Ok(p) => p,
        Err(e) => fail(format_args!("{e}")),
    };
    Dram.write(dtb_pa, &plan.dtb);
    let loads = plan.loads(image.pa, desc.initrd.map(|i| i.pa), dtb_pa);
    let mut devices = Devices {
        disk: None,
        virtio_console: set.virtio_console,
        hvc_out: Some(alloc::boxed::Box::new(HvcConsole)),
    };
    if let Some(d) = desc.disk {
        match disk::HostDisk::open(&d) {
            Ok(h) => {
                println!(
                    "   disk: {} bytes at {:#x}, {}, file {} (virtio-blk and virtio-console on PCI)",
                    d.size,
                    d.pa,
                    if d.read_only { "read-only" } else { "read-write, flushes written back by semihosting" },
                    if h.path.is_empty() { "(none)" } else { h.path.as_str() }
                );
                devices.disk = Some(alloc::boxed::Box::new(h));
            }
            Err(e) => fail(format_args!("the disk: {e}")),
        }
    }
    let platform = if firmware {
        host_core::vmm::linux::platform_for_firmware(cfg.cpus, devices)
    } else {
        host_core::vmm::linux::platform_with(cfg.cpus, devices)
    };
    let (vgic, bus, dev_stats) = match platform {
        Ok(v) => v,
        Err(e) => fail(format_args!("{e}")),
    };
    let spec = VmSpec {
        params: plan.params,
        ram: plan.ram,
        initial_ram: plan.ram,
        recs: &plan.recs,
        loads: &loads,
        initial_vmcr: 0,
    };
    println!("-- building the realm (RD, RTTs, RIPAS RAM over all memory, measured {what}, RECs)");
    let mut hw = Hw::new();
    let t0 = hw_counter(&mut hw);
    let mut vm = match Vm::build(&mut rmi, &mut Dram, pool, &spec, vgic, bus) {
        Ok(vm) => vm,
        Err(e) => fail(format_args!("building the realm: {e}")),
    };
    let t1 = hw_counter(&mut hw);
    println!(
        "   realm built: {} pages loaded, {} RTTs; REC 0 enters at {:#x} with x0 = {:#x}",
        vm.memory.stats.loaded,
        vm.realm.rtts.len(),
        plan.layout.pc,
        plan.layout.x0
    );
    // Benchmark lines of a firmware boot are named `firmware_*`.
    let bench = if firmware { "firmware" } else { "linux" };
    println!("BENCH {bench}_build 1 {}", ticks_to_ns(&mut hw, t1 - t0));
    println!("-- running the realm (its console follows as [REALM] lines)");
    let quantum = host_core::vmm::host::VmHost::counter_hz(&mut hw) / 250;
    let mut console = RealmConsole {
        init: Marker::new(INIT_MARKER),
        exit_boot_services: Marker::new(if firmware {
            EXIT_BOOT_SERVICES_MARKER
        } else {
            b""
        }),
        linux_start: Marker::new(if firmware { LINUX_START_MARKER } else { b"" }),
    };
    let stop = vm.run(
        &mut rmi,
        &mut Dram,
        &mut hw,
        &mut console,
        &mut DefaultHooks,
        RunLimits {
            max_exits: u64::MAX,
            quantum: quantum.max(1),
        },
    );
    let t2 = hw_counter(&mut hw);
    fw_support::console::write_bytes_as("REALM", b"\n");
    println!("   {}", vm.stats);
    println!(
        "   memory: {:?}; pages by state [ram, private, empty, shared] = {:?}",
        vm.memory.stats,
        vm.memory.census()
    );
    print_device_stats(&dev_stats, &vm.memory.stats);
    println!("BENCH {bench}_run 1 {}", ticks_to_ns(&mut hw, t2 - t1));
    if let Some(t) = console.exit_boot_services.seen {
        println!(
            "BENCH {bench}_first_rec_enter_to_exit_boot_services 1 {}",
            ticks_to_ns(&mut hw, t.saturating_sub(t1))
        );
    }
    if let Some(t) = console.linux_start.seen {
        println!(
            "BENCH {bench}_first_rec_enter_to_linux_start 1 {}",
            ticks_to_ns(&mut hw, t.saturating_sub(t1))
        );
    }
    if let Some(t) = console.init.seen {
        println!(
            "BENCH {bench}_first_rec_enter_to_init 1 {}",
            ticks_to_ns(&mut hw, t.saturating_sub(t1))
        );
    }
    for class in host_core::vmm::stats::ExitClass::ALL {
        let (n, ticks) = vm.stats.get(class);
        if let Some(mean) = ticks_to_ns(&mut hw, ticks).checked_div(n) {
            println!("BENCH {bench}_exit_{} {n} {mean}", class.name());
        }
    }
    println!("-- teardown");
    let teardown = vm.destroy(&mut rmi, &mut Dram);
    let verdict = match (&stop, &teardown) {
        (Ok(s), Ok(t)) if t.still_delegated == 0 && t.not_scrubbed == 0 => {
            println!(
                "   {} RECs ({} auxiliary granules), {} RTTs destroyed; nothing left delegated; \
                 returned granules read back as zero",
                t.recs, t.aux_reclaimed, t.rtts
            );
            match s {
                Stop::SystemOff => Ok("realm: Linux powered off"),
                Stop::SystemReset => Ok("realm: Linux reset"),
                Stop::ExitLimit => Err(VmError::Config("the exit limit was reached")),
            }
        }
        (Ok(_), Ok(t)) => {
            println!(
                "   FAILED: {} granule(s) still delegated, {} not scrubbed",
                t.still_delegated, t.not_scrubbed
            );
            Err(VmError::Config("teardown left granules behind"))
        }
        (Err(e), _) | (_, Err(e)) => Err(e.clone()),
    };
    match verdict {
        Ok(what) => {
            println!("RESULT: PASS ({what})");
            smc(psci::SYSTEM_OFF, &[]);
            fw_support::exit_emulator(0xE1)
        }
        Err(e) => fail(format_args!("realm: {e}")),
    }
}

/// What the devices did: a line each for people, a `STAT` line each for the benchmark.
fn print_device_stats(p: &PlatformStats, mem: &host_core::vmm::memory::MemoryStats) {
    let u = p.uart.get();
    println!(
        "   16550: {} bytes out, {} register accesses",
        u.console_bytes, u.accesses
    );
    println!(
        "STAT uart bytes={} accesses={}",
        u.console_bytes, u.accesses
    );
    if let Some(h) = &p.blk {
        let s = h.get();
        println!(
            "   virtio-blk: {} requests ({} reads, {} writes, {} flushes, {} refused), {} bytes \
             to the guest, {} from it, {} register accesses, {} interrupts, {} ring errors{}",
            s.requests,
            s.reads,
            s.writes,
            s.flushes,
            s.refused,
            s.bytes_to_guest,
            s.bytes_from_guest,
            s.accesses,
            s.interrupts,
            s.errors,
            match s.last_error {
                Some(e) => alloc::format!(" (last: {e})"),
                None => alloc::string::String::new(),
            }
        );
        println!(
            "STAT virtio_blk requests={} reads={} writes={} flushes={} refused={} to_guest={} \
             from_guest={} accesses={} notifies={} interrupts={} errors={}",
            s.requests,
            s.reads,
            s.writes,
            s.flushes,
            s.refused,
            s.bytes_to_guest,
            s.bytes_from_guest,
            s.accesses,
            s.notifies,
            s.interrupts,
            s.errors
        );
    }
    if let Some(h) = &p.console {
        let s = h.get();
        println!(
            "   virtio-console: {} bytes out in {} buffers, {} bytes in, {} register accesses, \
             {} ring errors",
            s.console_bytes, s.requests, s.bytes_to_guest, s.accesses, s.errors
        );
        println!(
            "STAT virtio_console bytes={} buffers={} in={} accesses={} notifies={} errors={}",
            s.console_bytes, s.requests, s.bytes_to_guest, s.accesses, s.notifies, s.errors
        );
    }
    println!(
        "   shared memory: {} pages mapped at the unprotected alias (RTT_UNPROT_MAP), {} \
         unmapped again (RTT_UNPROT_UNMAP)",
        mem.shared_mapped, mem.shared_unmapped
    );
    println!(
        "STAT shared unprot_map={} unprot_unmap={}",
        mem.shared_mapped, mem.shared_unmapped
    );
}

fn hw_counter(hw: &mut Hw) -> u64 {
    host_core::vmm::host::VirtualCpuInterface::counter(hw)
}

fn ticks_to_ns(hw: &mut Hw, ticks: u64) -> u64 {
    let hz = host_core::vmm::host::VmHost::counter_hz(hw).max(1);
    (ticks as u128 * 1_000_000_000 / hz as u128) as u64
}
