//! The per-CPU world-switch loop and the services EL3 provides to each world.

use crate::context::WorldCtx;
use crate::entry::{ExitKind, MAX_CPUS};
use crate::mmu::MmuRegs;
use crate::platform::*;
use crate::{gpt, power};
use cca_abi::el3::{MemoryBank, RMM_EL3_IFC_VERSION};
use cca_abi::smccc;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use el3_core::carveout::Carveout;
use el3_core::gpt::GptError;
use el3_core::memmap::{MemoryMap, Region};
use el3_core::psci::{CpuStates, PsciAction};
use el3_core::routing::{route_smc, Route, World};
use el3_core::session::{RealmVerdict, Session};
use fw_support::println;
use fw_support::sysreg::CpuId;
use spin::{Mutex, Once};

/// EL3's translation registers, shared with secondary CPUs.
pub static MMU: Once<MmuRegs> = Once::new();
static CPUS: Once<CpuStates<MAX_CPUS>> = Once::new();
/// DRAM, the Realm carve-out and EL3's memory: what granule transitions and CPU_ON entry
/// points are checked against.
static MEMORY_MAP: Once<MemoryMap> = Once::new();
static NCPUS: AtomicU64 = AtomicU64::new(1);
static CARVEOUT: Mutex<Carveout> = Mutex::new(Carveout::new(RMM_RESERVE_LOW, RMM_SHARED));
/// Per-CPU entry point and context id handed over by CPU_ON (0 = no request).
static PEN_ENTRY: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static PEN_CONTEXT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Per-CPU activation token the RMM returned at its last boot completion.
static RMM_TOKEN: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Set when the RMM reported a failed boot: RMI calls are then refused.
static RMM_FAILED: AtomicBool = AtomicBool::new(false);

/// The test hook word: the marker, then a word that is 0 in every image `cargo build` makes.
/// `cargo xtask` enables the deliberate faults of the fatal-fault tests in a copy of the
/// image by writing [`HOOKS_ON`] over that word; only then does `CCA_SIP_TEST_HOOK` work.
#[used]
#[unsafe(no_mangle)]
static CCA_EL3_TEST_HOOKS: [u64; 3] = [
    u64::from_le_bytes(*b"CCA-EL3-"),
    u64::from_le_bytes(*b"TESTHOOK"),
    0,
];
/// The value that enables the hooks.
const HOOKS_ON: u64 = u64::from_le_bytes(*b"HOOKS-ON");

fn hooks_enabled() -> bool {
    // SAFETY: a read of a static; volatile, so that the image's own contents are read
    // rather than the value the compiler saw.
    unsafe { core::ptr::read_volatile(&raw const CCA_EL3_TEST_HOOKS[2]) == HOOKS_ON }
}

/// `CCA_SIP_TEST_HOOK(kind, pa)` of an image with hooks: 1 makes the DRAM granule at `pa`
/// inaccessible to every world (GPI NoAccess), 2 reads `pa` through EL3's own map, 3 panics.
/// The first leaves the next access of the RMM to fault; the others fault in EL3.
fn test_hook(kind: u64, pa: u64) -> u64 {
    match kind {
        1 => {
            if el3_core::gtsi::screen(memory_map(), pa).is_err() {
                return cca_abi::el3::El3Error::BadAddr.to_reg();
            }
            let mut guard = gpt::GPT.lock();
            let Some(g) = guard.as_mut() else {
                return cca_abi::el3::El3Error::BadAddr.to_reg();
            };
            match g.write_granule(pa, el3_core::gpt::Gpi::NoAccess) {
                Ok(_) => {
                    // SAFETY: TLBI RPALOS only invalidates cached GPT information for the
                    // granule; the barriers order it after the table write.
                    unsafe {
                        core::arch::asm!(
                            "dsb sy",
                            "sys #6, c8, c4, #7, {}",
                            "dsb sy",
                            "isb",
                            in(reg) pa >> 12,
                            options(nostack)
                        );
                    }
                    println!("TEST HOOK: granule {pa:#x} is now inaccessible to every world");
                    0
                }
                Err(e) => el3_error(e),
            }
        }
        2 => {
            println!("TEST HOOK: EL3 reads {pa:#x} through its Non-secure map of DRAM");
            // SAFETY: deliberately unsafe: the test makes EL3 touch memory it must not, to
            // prove that the fault is reported and ends the run. EL3 maps all of DRAM, so
            // the access is translated; the granule protection check then faults.
            unsafe { core::ptr::read_volatile(pa as *const u64) }
        }
        3 => panic!("deliberate panic requested through CCA_SIP_TEST_HOOK"),
        _ => cca_abi::el3::El3Error::Inval.to_reg(),
    }
}

/// Records the platform shape and writes the RMM boot manifest into the shared buffer.
pub fn init_shared(ncpus: usize, dram_base: u64, dram_size: u64) {
    let mut states = CpuStates::new();
    states.set_count(ncpus);
    CPUS.call_once(|| states);
    NCPUS.store(ncpus as u64, Ordering::Relaxed);
    MEMORY_MAP.call_once(|| MemoryMap {
        dram: Region::new(dram_base, dram_size),
        carveout: Region::new(RMM_BASE, RMM_LIMIT - RMM_BASE),
        root: Region::new(SECURE_RAM.0, SECURE_RAM.1),
    });
    let banks = [MemoryBank {
        base: dram_base,
        size: dram_size,
    }];
    let consoles = [el3_core::manifest::pl011(UART0, UART_CLK_HZ, UART_BAUD)];
    // SAFETY: the shared buffer is the last page of the Realm carve-out, mapped Realm RW in
    // EL3's map; the RMM has not been started yet, so nothing else accesses it.
    let buf = unsafe { core::slice::from_raw_parts_mut(RMM_SHARED as *mut u8, 4096) };
    let used = el3_core::manifest::write(buf, RMM_SHARED, &banks, &consoles)
        .expect("manifest fits in a page");
    println!(
        "boot manifest v0.5 at {RMM_SHARED:#x} ({used} bytes): DRAM {dram_base:#x}+{dram_size:#x}, console PL011 {UART0:#x}"
    );
}

fn cpus() -> &'static CpuStates<MAX_CPUS> {
    CPUS.get().expect("platform initialised")
}

fn memory_map() -> &'static MemoryMap {
    MEMORY_MAP.get().expect("platform initialised")
}

/// The CPU that does the cold boot's attestation work beside the boot CPU.
pub const BOOT_HELPER: usize = 1;
/// The job on offer to [`BOOT_HELPER`] (a [`BootJob`] as a number, 0 for none): whichever
/// CPU takes it does it.
static BOOT_JOB: AtomicU8 = AtomicU8::new(0);

/// The boot helper's jobs ([`crate::attest`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootJob {
    /// The measured boot of the RMM and the host, while the boot CPU boots the RMM.
    Measure = 1,
    /// EL3's own measurement and the attestation set-up, once the host runs.
    Attest = 2,
}

impl BootJob {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Measure),
            2 => Some(Self::Attest),
            _ => None,
        }
    }
}

/// Why a parked CPU left the pen.
pub enum Release {
    /// A CPU_ON: enter the host at `entry` with `context` in x0.
    CpuOn {
        /// The host's entry point.
        entry: u64,
        /// Its context ID.
        context: u64,
    },
    /// A boot helper job ([`offer_boot_job`]).
    BootJob(BootJob),
}

/// Offers `job` to [`BOOT_HELPER`], parked in its pen (replacing a job not taken).
pub fn offer_boot_job(job: BootJob) {
    BOOT_JOB.store(job as u8, Ordering::Release);
    // SAFETY: `dsb`+`sev` only publish the store above and end a `WFE` wait; a CPU in `WFIT`
    // sees the job at its next look (within the pen's millisecond).
    unsafe { core::arch::asm!("dsb ish", "sev", options(nostack)) };
}

/// Takes back the job on offer if no CPU has taken it: the job, whose parts the caller then
/// does where they are needed.
pub fn take_boot_job() -> Option<BootJob> {
    BootJob::from_u8(BOOT_JOB.swap(0, Ordering::AcqRel))
}

/// Parks a secondary CPU until a CPU_ON names it or, for [`BOOT_HELPER`], the boot job is on
/// offer. With FEAT_WFxT the CPU looks every millisecond and sleeps in between (`WFE`, the
/// fallback, is a busy yield under QEMU: a parked CPU would take a host core for itself).
pub fn wait_in_pen(cpu: usize) -> Release {
    let wfxt = CpuId::read().wfxt();
    loop {
        let entry = PEN_ENTRY[cpu].load(Ordering::Acquire);
        if entry != 0 {
            PEN_ENTRY[cpu].store(0, Ordering::Relaxed);
            return Release::CpuOn {
                entry,
                context: PEN_CONTEXT[cpu].load(Ordering::Relaxed),
            };
        }
        if cpu == BOOT_HELPER {
            if let Some(job) = take_boot_job() {
                return Release::BootJob(job);
            }
        }
        fw_support::wait_for_micros(1000, wfxt);
    }
}

/// Runs the boot CPU: cold-boots the RMM, then enters the host.
pub fn run_primary(cpu: usize, id: CpuId) -> ! {
    cpus().set_on(cpu);
    let mut realm = WorldCtx::new(World::Realm, &id, RMM_BASE);
    realm.x[..5].copy_from_slice(&[
        cpu as u64,
        RMM_EL3_IFC_VERSION,
        NCPUS.load(Ordering::Relaxed),
        RMM_SHARED,
        0,
    ]);
    println!("cold-booting the RMM at {RMM_BASE:#x} (RMM-EL3 interface 2.0)");
    let mut ns = WorldCtx::new(World::NonSecure, &id, NS_ENTRY);
    ns.x[0] = DTB_BASE;
    run_cpu(cpu, &id, &mut realm, &mut ns);
    // The boot CPU called CPU_OFF: park it like any other.
    cpus().set_off(cpu);
    loop {
        if let Release::CpuOn { entry, context } = wait_in_pen(cpu) {
            run_secondary(cpu, id, entry, context);
        }
    }
}

/// Runs a CPU brought up by CPU_ON: warm-boots the RMM on it, then enters the host at `entry`.
pub fn run_secondary(cpu: usize, id: CpuId, entry: u64, context_id: u64) {
    let mut realm = WorldCtx::new(World::Realm, &id, RMM_BASE);
    realm.x[0] = cpu as u64;
    realm.x[1] = RMM_TOKEN[cpu].load(Ordering::Acquire);
    let mut ns = WorldCtx::new(World::NonSecure, &id, entry);
    ns.x[0] = context_id;
    run_cpu(cpu, &id, &mut realm, &mut ns);
    cpus().set_off(cpu);
}

/// What the loop does after serving a call.
enum Next {
    Stay,
    Switch,
    PowerOff,
}

fn run_cpu(cpu: usize, id: &CpuId, realm: &mut WorldCtx, ns: &mut WorldCtx) {
    let mut current = World::Realm;
    let mut session = Session::booting();
    loop {
        let ctx = if current == World::Realm {
            &mut *realm
        } else {
            &mut *ns
        };
        let kind = ctx.run(id);
        let esr = crate::esr_el3();
        if kind != ExitKind::Sync || (esr >> 26) & 0x3f != 0x17 {
            power::fatal_exit(
                format_args!("unexpected {kind:?} trap from the {current:?} world on CPU {cpu}"),
                esr,
                ctx.elr,
                fw_support::read_sysreg!(far_el3),
            );
        }
        let next = match current {
            World::Realm => realm_call(cpu, id, esr, &mut session, realm, ns),
            World::NonSecure => ns_call(cpu, id, esr, &mut session, ns, realm),
        };
        match next {
            Next::Stay => {}
            Next::Switch => {
                current = if current == World::Realm {
                    World::NonSecure
                } else {
                    World::Realm
                };
            }
            Next::PowerOff => return,
        }
    }
}

fn el3_error(e: GptError) -> u64 {
    el3_core::gtsi::gpt_error(e).to_reg()
}

/// `RMM_GTSI_DELEGATE` / `RMM_GTSI_UNDELEGATE` of the granule at `pa`: the address checks,
/// then the PAS check and the transition under the table lock.
fn gtsi(pa: u64, t: el3_core::gtsi::Transition) -> u64 {
    if let Err(e) = el3_core::gtsi::screen(memory_map(), pa) {
        return e.to_reg();
    }
    let r = match t {
        el3_core::gtsi::Transition::Delegate => gpt::delegate(pa),
        el3_core::gtsi::Transition::Undelegate => gpt::undelegate(pa),
    };
    r.map_or_else(el3_error, |()| 0)
}

/// Serves an SMC from the RMM.
fn realm_call(
    cpu: usize,
    id: &CpuId,
    esr: u64,
    session: &mut Session,
    realm: &mut WorldCtx,
    ns: &mut WorldCtx,
) -> Next {
    let x = realm.x;
    let r = route_smc(World::Realm, esr, x[0]);
    if let RealmVerdict::Refuse(x0) = session.realm_call(r) {
        println!(
            "refused {:#x} from the RMM on CPU {cpu} in phase {:?}",
            x[0],
            session.phase()
        );
        realm.ret(&[x0]);
        return Next::Stay;
    }
    match r {
        Route::RmiComplete => {
            ns.x[..8].copy_from_slice(&x[1..9]);
            Next::Switch
        }
        Route::BootComplete => {
            let status = x[1];
            RMM_TOKEN[cpu].store(x[2], Ordering::Release);
            // Every image is measured, and the host's window cleared, before the host runs.
            crate::attest::host_ready();
            if status != 0 {
                RMM_FAILED.store(true, Ordering::Release);
                println!("RMM boot FAILED on CPU {cpu}: status {}", status as i64);
            } else {
                println!(
                    "RMM boot complete on CPU {cpu} (token {:#x}); entering the host at {:#x}",
                    x[2], ns.elr
                );
            }
            Next::Switch
        }
        Route::GtsiDelegate => {
            realm.ret(&[gtsi(x[1], el3_core::gtsi::Transition::Delegate)]);
            Next::Stay
        }
        Route::GtsiUndelegate => {
            realm.ret(&[gtsi(x[1], el3_core::gtsi::Transition::Undelegate)]);
            Next::Stay
        }
        Route::ReserveMemory => {
            match CARVEOUT.lock().reserve(x[1], x[2]) {
                Ok(pa) => realm.ret(&[0, pa]),
                Err(e) => realm.ret(&[e.to_reg()]),
            }
            Next::Stay
        }
        Route::Attestation => {
            crate::attest::serve(realm);
            Next::Stay
        }
        Route::El3Features => {
            match el3_core::session::el3_features(x[1], false) {
                Ok(reg) => realm.ret(&[0, reg]),
                Err(e) => realm.ret(&[e.to_reg(), 0]),
            }
            Next::Stay
        }
        Route::SmcccVersion => {
            realm.ret(&[0x1_0002]);
            Next::Stay
        }
        Route::SmcccArchFeatures => {
            realm.ret(&[arch_features(x[1])]);
            Next::Stay
        }
        Route::SmcccFeatureAvailability => {
            feature_availability(realm, id);
            Next::Stay
        }
        _ => {
            realm.ret(&[smccc::SMC_UNKNOWN]);
            Next::Stay
        }
    }
}

fn arch_features(fid: u64) -> u64 {
    match fid as u32 {
        smccc::SMCCC_VERSION
        | smccc::SMCCC_ARCH_FEATURES
        | smccc::SMCCC_ARCH_FEATURE_AVAILABILITY => 0,
        _ => smccc::NOT_SUPPORTED,
    }
}

/// `SMCCC_ARCH_FEATURE_AVAILABILITY(opcode)` for the world `ctx`.
fn feature_availability(ctx: &mut WorldCtx, id: &CpuId) {
    let regs = el3_core::features::WorldRegs {
        scr: ctx.scr(),
        cptr: crate::cptr_el3(id),
        mdcr: crate::MDCR_EL3,
    };
    let imp = el3_core::features::Implemented {
        ras: id.ras(),
        rng: id.rng(),
        amu: id.amu(),
        fgt: id.fgt(),
    };
    match el3_core::features::availability(ctx.x[1], &regs, &imp) {
        Ok(mask) => ctx.ret(&[0, mask]),
        Err(e) => ctx.ret(&[e, 0]),
    }
}

/// Serves an SMC from the host.
fn ns_call(
    cpu: usize,
    id: &CpuId,
    esr: u64,
    session: &mut Session,
    ns: &mut WorldCtx,
    realm: &mut WorldCtx,
) -> Next {
    let x = ns.x;
    match route_smc(World::NonSecure, esr, x[0]) {
        Route::ForwardRmi => {
            if RMM_FAILED.load(Ordering::Acquire) || !session.host_rmi() {
                ns.ret(&[smccc::SMC_UNKNOWN]);
                return Next::Stay;
            }
            realm.x[..8].copy_from_slice(&x[..8]);
            Next::Switch
        }
        Route::Psci => psci_call(cpu, ns),
        Route::SipExit => {
            println!("host requested exit with status {}", x[1]);
            power::exit(x[1])
        }
        Route::TestHook => {
            let r = if hooks_enabled() {
                test_hook(x[1], x[2])
            } else {
                smccc::SMC_UNKNOWN
            };
            ns.ret(&[r]);
            Next::Stay
        }
        Route::SmcccVersion => {
            ns.ret(&[0x1_0002]);
            Next::Stay
        }
        Route::SmcccArchFeatures => {
            ns.ret(&[arch_features(x[1])]);
            Next::Stay
        }
        Route::SmcccFeatureAvailability => {
            feature_availability(ns, id);
            Next::Stay
        }
        _ => {
            ns.ret(&[smccc::SMC_UNKNOWN]);
            Next::Stay
        }
    }
}

fn psci_call(cpu: usize, ns: &mut WorldCtx) -> Next {
    let x = ns.x;
    let fid = smccc::normalize(x[0]);
    match el3_core::psci::dispatch(cpus(), memory_map(), fid, [x[1], x[2], x[3]]) {
        PsciAction::Return(r) => ns.ret(&[r]),
        PsciAction::CpuOn {
            idx,
            entry,
            context,
        } => {
            PEN_CONTEXT[idx].store(context, Ordering::Relaxed);
            PEN_ENTRY[idx].store(entry, Ordering::Release);
            cpus().set_on(idx);
            // SAFETY: `dsb`+`sev` only publish the stores above and wake parked CPUs.
            unsafe { core::arch::asm!("dsb ish", "sev", options(nostack)) };
            ns.ret(&[0]);
        }
        PsciAction::CpuOff => {
            println!("CPU {cpu} powering off");
            return Next::PowerOff;
        }
        PsciAction::SystemOff => {
            println!("PSCI SYSTEM_OFF from the host");
            power::exit(0)
        }
        PsciAction::SystemReset => {
            println!("PSCI SYSTEM_RESET from the host");
            power::reset()
        }
    }
    Next::Stay
}
