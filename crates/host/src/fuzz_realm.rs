//! The hostile realm (`cargo xtask fuzz realm --calls N --seed S`): the host runs the realm
//! payload (`crates/realm`) in its fuzz mode and checks that it, the VMM and the RMM survive.
//!
//! `cargo xtask` leaves the request block of [`crate::fuzz::request`] with mode
//! [`MODE_REALM`]: the number of iterations and the seed. The host
//!
//! 1. runs the boot-time RMI sequence (`host_core::boot`) to activate the RMM;
//! 2. builds the payload realm with the VMM (`host_core::vmm`): the payload's layout
//!    (`docs/realm-payload.md`), REC 0 entered with `x0` = [`FUZZ_ENTRY`] (fuzz mode), and
//!    beside the payload's PL011 the devices of kvmtool's map for the realm to poke at: a
//!    16550 at `0x0100_0000`, an MC146818 RTC at `0x0101_0000`, the GICv3 distributor at
//!    `0x3FFF_0000` and two redistributors below it;
//! 3. runs it: the realm asks for its parameters with `RSI_HOST_CALL` [`HOST_CALL_PARAMS`]
//!    (answered `gprs[0]` = iterations, `gprs[1]` = seed), reports its totals with
//!    [`HOST_CALL_DONE`] and its verdict with `0xCCA0`, and powers off;
//! 4. tears the realm down (every granule undelegated and scrubbed) and asks the RMM for
//!    `RMI_VERSION` once more.
//!
//! The run passes (`RESULT: PASS`) only if the realm ran every iteration, reported no
//! violated invariant, powered off by itself, and all of step 4 succeeded.

extern crate alloc;

use crate::machine::Machine;
use crate::vmhost::Hw;
use crate::{gic, smc, Dram, Smc};
use alloc::boxed::Box;
use cca_abi::rmi::RMI_VERSION_2_0;
use cca_abi::rmi::{rec_mpidr, RealmParams, RecParams, RmiFid, REC_PARAMS_FLAG_RUNNABLE};
use cca_abi::{el3::sip, psci};
use fw_support::println;
use host_core::boot::{self, BootPlan};
use host_core::devices::gicd::Gicd;
use host_core::devices::gicr::Gicr;
use host_core::devices::rtc::Mc146818Rtc;
use host_core::devices::uart16550::Uart16550;
use host_core::devices::ConsoleOut;
use host_core::payload;
use host_core::vmm::granules::GranulePool;
use host_core::vmm::host::VmHost;
use host_core::vmm::platform::{
    gicr_base, GICD_BASE, GICD_SIZE, GICR_FRAME_SIZE, RTC_BASE, RTC_SIZE, SPI_BASE, UART_BASE,
    UART_SIZE, UART_SPI,
};
use host_core::vmm::runloop::{ExitHooks, RunLimits};
use host_core::vmm::stats::ExitClass;
use host_core::vmm::vm::{Load, Stop, Vm, VmSpec};
use host_core::Rmi;
use zerocopy::FromZeros;

/// Mode of the request block: the hostile realm (modes 1 and 2 are `crate::fuzz`'s).
pub const MODE_REALM: u64 = 3;
/// `x0` of REC 0 that selects the payload's fuzz mode ("FUZZREAL").
pub const FUZZ_ENTRY: u64 = u64::from_le_bytes(*b"FUZZREAL");
/// Host call: the realm asks for its parameters (`gprs[0]` = iterations, `gprs[1]` = seed).
pub const HOST_CALL_PARAMS: u16 = 0xCCA4;
/// Host call: the realm's totals (`gprs[0]` = iterations run, `gprs[1]` = violations,
/// `gprs[2]` = exceptions taken, `gprs[3]` = seed).
pub const HOST_CALL_DONE: u16 = 0xCCA5;
/// Host call: the payload's verdict (`gprs[1]` = 0 on a pass).
pub const HOST_CALL_VERDICT: u16 = 0xCCA0;

/// Boot-time RMI sequence memory (as the demonstration).
const CONFIG_PAGE: u64 = 0x7fff_f000;
const BOOT_POOL: u64 = 0x8000_0000;
/// Where `cargo xtask` loads the payload image and its size word.
const PAYLOAD_IMAGE: u64 = 0x8A00_0000;
const PAYLOAD_SIZE: u64 = 0x89FF_F000;
/// Granules and RAM of the payload realm.
const RUN_POOL: (u64, u64) = (0x8C00_0000, 0x0100_0000);
/// RIPAS RAM requests starting here are refused (the realm sees `RSI_REJECT`).
const REJECT: (u64, u64) = (0x38_0000, 0x40_0000);
/// Longest realm console line.
const LINE_MAX: usize = 200;

/// The realm's console: whole lines, printed with the `REALM` label. Bytes the realm writes
/// to the 16550's data register arrive here too (the payload only writes printable ones).
struct Lines {
    buf: [u8; LINE_MAX],
    len: usize,
    count: u64,
}

impl Lines {
    fn flush(&mut self) {
        let text = core::str::from_utf8(&self.buf[..self.len]).unwrap_or("<not UTF-8>");
        // SAFETY: UART0 is the console the host initialised at boot; `init` replaces the
        // console (and its label) in place, and only this CPU prints while the realm runs.
        unsafe { fw_support::console::init(0x0900_0000, "REALM") };
        println!("{text}");
        // SAFETY: as above.
        unsafe { fw_support::console::init(0x0900_0000, "HOST") };
        self.len = 0;
        self.count += 1;
    }
}

impl ConsoleOut for Lines {
    fn write_byte(&mut self, byte: u8) {
        match byte {
            b'\n' => self.flush(),
            b'\r' => {}
            _ => {
                if let Some(slot) = self.buf.get_mut(self.len) {
                    *slot = byte;
                    self.len += 1;
                }
                if self.len >= LINE_MAX {
                    self.flush();
                }
            }
        }
    }
}

/// What the realm told the host.
#[derive(Default)]
struct Hooks {
    calls: u64,
    seed: u64,
    params_asked: u64,
    done: Option<[u64; 4]>,
    verdict: Option<(u64, u64)>,
    host_calls: u64,
    ripas_requests: u64,
    ripas_refused: u64,
    cpu_on: u64,
}

impl ExitHooks for Hooks {
    fn host_call(&mut self, vcpu: usize, imm: u16, gprs: &[u64; 31]) -> [u64; 31] {
        self.host_calls += 1;
        match imm {
            HOST_CALL_PARAMS => {
                self.params_asked += 1;
                let mut out = *gprs;
                out[0] = self.calls;
                out[1] = self.seed;
                out
            }
            HOST_CALL_DONE => {
                self.done = Some([gprs[0], gprs[1], gprs[2], gprs[3]]);
                *gprs
            }
            HOST_CALL_VERDICT => {
                println!(
                    "REC {vcpu}: host call {imm:#x}: verdict {} passed, {} failed",
                    gprs[0], gprs[1]
                );
                self.verdict = Some((gprs[0], gprs[1]));
                *gprs
            }
            // Any other immediate, including the fuzzer's random ones: the echo answer.
            _ => gprs.map(|x| x.wrapping_add(1)),
        }
    }

    fn accept_ripas(&mut self, base: u64, _top: u64, ram: bool) -> bool {
        self.ripas_requests += 1;
        let refuse = ram && (REJECT.0..REJECT.1).contains(&base);
        self.ripas_refused += u64::from(refuse);
        !refuse
    }

    fn allow_cpu_on(&mut self, _target: usize) -> bool {
        self.cpu_on += 1;
        true
    }
}

/// The realm parameters of the payload: 40-bit IPAs, SHA-256, the debug resources the RMM
/// offers.
fn realm_params(feat0: u64) -> RealmParams {
    let mut p = RealmParams::new_zeroed();
    p.s2sz = 40;
    p.num_bps = (feat0 >> 14) & 0x3f;
    p.num_wps = (feat0 >> 20) & 0x3f;
    p.hash_algo = 0;
    p.rpv[..8].copy_from_slice(b"fuzzreal");
    p.rtt_level_start = 1;
    p.rtt_num_start = 2;
    p
}

/// The payload's RECs with REC 0 entered in fuzz mode.
fn rec_params() -> [RecParams; payload::RECS] {
    core::array::from_fn(|i| {
        let mut p = RecParams::new_zeroed();
        p.mpidr = rec_mpidr::from_index(i as u64);
        p.pc = 0;
        if i == 0 {
            p.flags = REC_PARAMS_FLAG_RUNNABLE;
            p.gprs[0] = FUZZ_ENTRY;
        }
        p
    })
}

fn fail(why: core::fmt::Arguments<'_>) -> ! {
    println!("RESULT: FAIL ({why})");
    smc(sip::EXIT, &[1]);
    fw_support::exit_emulator(0xE1)
}

/// Runs the hostile realm for `arg` iterations with `seed` and ends the run with the
/// verdict.
pub fn run(machine: &Machine, arg: u64, seed: u64) -> ! {
    // Bits 63:48 of the count, if set, restrict the realm to one class (debugging runs).
    let calls = arg & ((1 << 48) - 1);
    println!("-- hostile realm: {calls} fuzz iterations in the payload realm, seed {seed:#x}");
    if machine.dram_base > 0x4000_0000 || machine.dram_end() < RUN_POOL.0 + RUN_POOL.1 {
        fail(format_args!(
            "the hostile realm needs DRAM 0x40000000..{:#x}: run QEMU with -m 2G",
            RUN_POOL.0 + RUN_POOL.1
        ));
    }
    // SAFETY: the word is in the host's identity-mapped DRAM (checked above); xtask's loader
    // wrote it (or it is still zero).
    let image_size = unsafe { (PAYLOAD_SIZE as *const u64).read_volatile() };
    if image_size == 0 || image_size > payload::INITIAL_RAM.1 {
        fail(format_args!(
            "no usable realm payload image ({image_size} bytes)"
        ));
    }
    let mut out = fw_support::console::Writer;
    let mut rmi = Rmi::new(Smc, &mut out);
    let plan = BootPlan {
        config_page: CONFIG_PAGE,
        pool_base: BOOT_POOL,
        pool_granules: 1024,
        untracked_pa: 0x0900_0000,
        rmm_carveout_pa: 0x4010_0000,
        probe_delegated: false,
    };
    let tally = boot::run(&mut rmi, &mut Dram, &plan);
    if tally.failed != 0 {
        fail(format_args!("{} boot-time RMI checks failed", tally.failed));
    }
    gic::init();
    gic::enable_host_interrupts(0);

    let mut hooks = Hooks {
        calls: arg,
        seed,
        ..Hooks::default()
    };
    let mut vm = match build(&mut rmi, image_size) {
        Ok(vm) => vm,
        Err(e) => fail(format_args!("the payload realm could not be built: {e}")),
    };
    println!(
        "   payload realm built: {} RECs, {} RTT(s); realm output follows as [REALM] lines",
        vm.vcpus.len(),
        vm.realm.rtts.len()
    );
    let mut hw = Hw::new();
    let quantum = (hw.counter_hz() / 250).max(1);
    let limits = RunLimits {
        // Each iteration makes a few exits at most; the console and the final report more.
        max_exits: calls.saturating_mul(64).saturating_add(1_000_000),
        quantum,
    };
    let mut lines = Lines {
        buf: [0; LINE_MAX],
        len: 0,
        count: 0,
    };
    let t0 = crate::vmhost::counter();
    let stop = vm.run(&mut rmi, &mut Dram, &mut hw, &mut lines, &mut hooks, limits);
    let ticks = crate::vmhost::counter().wrapping_sub(t0);
    if lines.len > 0 {
        lines.flush();
    }
    let s = &vm.stats;
    let n = |class| s.get(class).0;
    println!(
        "   {} exits: MMIO {}, shared faults {}, protected faults {}, host calls {}, PSCI {}, \
         RIPAS changes {} ({} refused), WFI {}, WFE {}, SGI {}, sysregs {}, IRQ/FIQ {}, other \
         {}",
        s.total(),
        n(ExitClass::Mmio),
        n(ExitClass::SharedFault),
        n(ExitClass::ProtectedFault),
        n(ExitClass::HostCall),
        n(ExitClass::Psci),
        n(ExitClass::RipasChange),
        hooks.ripas_refused,
        n(ExitClass::Wfi),
        n(ExitClass::Wfe),
        n(ExitClass::Sgi),
        n(ExitClass::SysReg),
        n(ExitClass::Irq),
        n(ExitClass::Other)
    );
    let hz = hw.counter_hz().max(1);
    let ms = ticks.saturating_mul(1000) / hz;
    println!(
        "   realm ran {} ms; REC 0 {} exits, REC 1 {} exits ({} CPU_ON), {} realm lines, \
         memory census [ram, private, empty, shared] {:?}",
        ms,
        vm.vcpus.first().map_or(0, |v| v.exits),
        vm.vcpus.get(1).map_or(0, |v| v.exits),
        hooks.cpu_on,
        lines.count,
        vm.memory.census()
    );
    let mut problems = 0u32;
    let mut check = |ok: bool, what: core::fmt::Arguments<'_>| {
        println!("  {}: {what}", if ok { "ok" } else { "FAILED" });
        problems += u32::from(!ok);
    };
    match &stop {
        Ok(Stop::SystemOff) => check(true, format_args!("the realm powered itself off")),
        Ok(other) => check(
            false,
            format_args!("the realm powered itself off ({other:?})"),
        ),
        Err(e) => check(
            false,
            format_args!("the host survived every exit (the run stopped: {e})"),
        ),
    }
    check(
        hooks.params_asked >= 1,
        format_args!(
            "the realm asked for its parameters ({} time(s): host calls from memory the realm fills at random may ask again)",
            hooks.params_asked
        ),
    );
    let done = hooks.done.unwrap_or([0, u64::MAX, 0, 0]);
    check(
        hooks.done.is_some() && done[0] == calls && done[3] == seed,
        format_args!(
            "the realm ran all {calls} iterations (reported {}, seed {:#x})",
            done[0], done[3]
        ),
    );
    check(
        done[1] == 0,
        format_args!("no invariant violated in the realm ({})", done[1]),
    );
    check(
        hooks.verdict.is_some_and(|(_, f)| f == 0),
        format_args!("the realm's verdict is a pass ({:?})", hooks.verdict),
    );
    match vm.destroy(&mut rmi, &mut Dram) {
        Ok(t) => check(
            t.recs == payload::RECS as u64 && t.still_delegated == 0 && t.not_scrubbed == 0,
            format_args!(
                "the realm is torn down: {} RECs, {} RTTs, {} granules left delegated, {} not \
                 scrubbed",
                t.recs, t.rtts, t.still_delegated, t.not_scrubbed
            ),
        ),
        Err(e) => check(false, format_args!("the realm is torn down ({e})")),
    }
    let v = rmi.call(RmiFid::VERSION, &[RMI_VERSION_2_0]).regs[0];
    check(
        v == 0,
        format_args!("the RMM still answers RMI_VERSION (status {v:#x})"),
    );
    let per_s = u128::from(done[0]) * u128::from(hz) / u128::from(ticks.max(1));
    println!(
        "FUZZ REALM: iterations {} of {calls}, seed {seed:#x}, violations {}, exceptions {}, \
         {per_s} iterations/s",
        done[0], done[1], done[2]
    );
    if problems == 0 {
        println!("RESULT: PASS (hostile realm: {calls} iterations, seed {seed:#x})");
        smc(psci::SYSTEM_OFF, &[]);
        fw_support::exit_emulator(0xE1)
    }
    fail(format_args!("hostile realm: {problems} check(s) failed"))
}

/// Builds and activates the payload realm with the extra devices.
fn build(rmi: &mut Rmi<'_, Smc>, image_size: u64) -> host_core::vmm::error::VmResult<Vm> {
    use host_core::vmm::error::VmError;
    let pool = GranulePool::new(RUN_POOL.0, RUN_POOL.1)?;
    let feat0 = rmi
        .features(0)
        .map_err(VmError::rmi("reading feature register 0"))?;
    let (vgic, mut bus) = payload::platform()?;
    bus.add(
        UART_BASE,
        UART_SIZE,
        Box::new(Uart16550::new(SPI_BASE + UART_SPI)),
    )?;
    bus.add(RTC_BASE, RTC_SIZE, Box::new(Mc146818Rtc::new()))?;
    bus.add(GICD_BASE, GICD_SIZE, Box::new(Gicd::new()))?;
    let gicr = gicr_base(payload::RECS as u64);
    for i in 0..payload::RECS {
        bus.add(
            gicr + i as u64 * GICR_FRAME_SIZE,
            GICR_FRAME_SIZE,
            Box::new(Gicr::new(i, i + 1 == payload::RECS)),
        )?;
    }
    let recs = rec_params();
    let loads = [Load {
        ipa: 0,
        src: PAYLOAD_IMAGE,
        len: image_size,
        measured: true,
    }];
    let spec = VmSpec {
        params: realm_params(feat0),
        ram: payload::RAM,
        initial_ram: payload::INITIAL_RAM,
        recs: &recs,
        loads: &loads,
        initial_vmcr: payload::INITIAL_VMCR,
    };
    Vm::build(rmi, &mut Dram, pool, &spec, vgic, bus)
}
