//! Running a realm: the host builds a realm around a payload image, enters its RECs in a loop
//! and handles every exit, then tears it all down.
//!
//! The realm (TF-RMM main's ABI; the contract with the payload is `docs/realm-payload.md`):
//!
//! | IPA | what the host provides |
//! |---|---|
//! | `[0, image)` | the payload image, loaded as measured DATA granules (`RTT_DATA_MAP_INIT`) |
//! | `[0, 2 MiB)` | RIPAS RAM from the start (`RTT_INIT_RIPAS`); pages the image does not cover are mapped when the realm first touches them |
//! | `[2 MiB, 4 MiB)` | RIPAS EMPTY; the realm may ask for RAM (`RSI_IPA_STATE_SET`), pages are mapped on first touch |
//! | `2^39 + 0x0900_0000` | a PL011 the host emulates: nothing is mapped, every access is an emulatable data abort |
//!
//! REC 0 (runnable, pc 0, x0..x7 = 0) and REC 1 (not runnable) are created through the
//! stateful `REC_CREATE` operation. The run loop enters one REC at a time on the calling CPU
//! and, before every `REC_ENTER`, programs the GIC virtual CPU interface itself (the RMI 2.0
//! model: list registers with the virtual timer's interrupt when it is due, `ICH_VMCR_EL2`,
//! `ICH_HCR_EL2.En`); after the exit it reads the list registers back to see what the realm
//! completed. What each exit reason does is documented on [`run`].

use crate::boot::{Checker, Tally};
use crate::realm::{
    create_rec, create_rtt, delegate, drive_sro, init_ripas, realm_params, undelegate, Pool,
    UNPROTECTED,
};
use crate::rmi::{status_name, Conduit, HostMem, Rmi};
use cca_abi::psci::{self, PsciStatus};
use cca_abi::rmi::{
    exit_reason, rec_enter_flags, rec_mpidr, AddrRangeDesc, BlockSize, RecExit, RecParams, RmiFid,
    RmiStatus, REC_PARAMS_FLAG_RUNNABLE,
};
use cca_abi::GRANULE_SIZE as G;
use cca_measure::Measurement;
use zerocopy::{FromBytes, FromZeros, IntoBytes};

/// Protected IPAs with RIPAS RAM from the start; the payload image is loaded at its base.
pub const INITIAL_RAM: (u64, u64) = (0, 0x20_0000);
/// Top of the protected range the host backs with memory: `[0, RAM_TOP)`. Above
/// [`INITIAL_RAM`] it starts RIPAS EMPTY.
pub const RAM_TOP: u64 = 0x40_0000;
/// RAM requests (`RSI_IPA_STATE_SET`) starting in this range are rejected by default: the
/// payload checks that a host may refuse one.
pub const DEFAULT_RIPAS_REJECT: (u64, u64) = (0x30_0000, RAM_TOP);
/// The unprotected IPA of the emulated PL011 (the alias of QEMU's UART0 address).
pub const UART_IPA: u64 = UNPROTECTED + 0x0900_0000;
/// `RSI_HOST_CALL` immediate of the payload's verdict: gprs[0] = checks passed, gprs[1] =
/// checks failed (`u64::MAX` after a fatal error).
pub const HOST_CALL_VERDICT: u32 = 0xCCA0;
/// `RSI_HOST_CALL` immediate of the payload's RSI timing report: gprs[0..3] = calls, counter
/// ticks, CNTFRQ for `RSI_VERSION`; gprs[3..6] the same for `RSI_IPA_STATE_GET`.
pub const HOST_CALL_TIMING: u32 = 0xCCA2;
/// The EL1 virtual timer's PPI.
pub const VTIMER_INTID: u64 = 27;
/// The EL1 physical timer's PPI.
pub const PTIMER_INTID: u64 = 30;
/// Number of RECs of the realm.
pub const RECS: usize = 2;

/// PL011 register offsets the host emulates.
pub mod uart {
    /// UARTDR: data register.
    pub const DR: u64 = 0x000;
    /// UARTFR: flag register (the host always reads 0: transmit FIFO not full).
    pub const FR: u64 = 0x018;
}

/// GICv3 virtual CPU interface register fields (`ICH_*_EL2`).
pub mod ich {
    /// `ICH_LR<n>_EL2.State` shift (bits [63:62]: 0 invalid, 1 pending, 2 active, 3 both).
    pub const LR_STATE_SHIFT: u32 = 62;
    /// State: pending.
    pub const LR_PENDING: u64 = 1 << 62;
    /// State: active.
    pub const LR_ACTIVE: u64 = 2 << 62;
    /// HW: the virtual interrupt is linked to a physical one (never set by this host).
    pub const LR_HW: u64 = 1 << 61;
    /// Group 1.
    pub const LR_GROUP1: u64 = 1 << 60;
    /// Priority field shift (bits [55:48]).
    pub const LR_PRIORITY_SHIFT: u32 = 48;
    /// EOI: with HW = 0, the deactivation sets `ICH_EISR_EL2` and `ICH_MISR_EL2.EOI`.
    pub const LR_EOI: u64 = 1 << 41;
    /// vINTID field.
    pub const LR_VINTID: u64 = 0xffff_ffff;
    /// Priority the host gives the timer interrupts.
    pub const TIMER_PRIORITY: u64 = 0xa0;
    /// `ICH_HCR_EL2.En`: the virtual CPU interface is enabled.
    pub const HCR_EN: u64 = 1;
    /// `ICH_VMCR_EL2.VENG1`: virtual Group 1 interrupts enabled.
    pub const VMCR_VENG1: u64 = 1 << 1;
    /// `ICH_VMCR_EL2.VPMR` shift (bits [31:24]).
    pub const VMCR_VPMR_SHIFT: u32 = 24;
    /// The VMCR a REC starts with: priority mask 0xff (nothing masked), Group 1 enabled.
    pub const VMCR_INITIAL: u64 = (0xff << VMCR_VPMR_SHIFT) | VMCR_VENG1;
    /// `ICH_MISR_EL2.EOI`: some list register with EOI = 1 was deactivated.
    pub const MISR_EOI: u64 = 1;
    /// Returns the state bits of a list register.
    pub const fn state(lr: u64) -> u64 {
        lr >> LR_STATE_SHIFT
    }
    /// Number of list registers from `ICH_VTR_EL2.ListRegs` (at most 16).
    pub const fn list_registers(vtr: u64) -> usize {
        let n = (vtr & 0x1f) as usize + 1;
        if n > 16 {
            16
        } else {
            n
        }
    }
    /// Number of `ICH_AP0R<n>_EL2` / `ICH_AP1R<n>_EL2` registers from `ICH_VTR_EL2.PREbits`.
    pub const fn active_priority_registers(vtr: u64) -> usize {
        let prebits = ((vtr >> 26) & 7) + 1;
        if prebits <= 5 {
            1
        } else if prebits == 6 {
            2
        } else {
            4
        }
    }
}

/// `CNTx_CTL_EL0` bits as the exit reports them.
mod timer_ctl {
    pub const ENABLE: u64 = 1 << 0;
    pub const IMASK: u64 = 1 << 1;
    pub const ISTATUS: u64 = 1 << 2;
}

pub use crate::vmm::host::VirtualCpuInterface;

/// Where the lines the realm prints on its UART go (the firmware prints them as `[REALM] …`).
pub trait RealmConsole {
    /// One complete line, without its newline.
    fn line(&mut self, text: &str);
}

/// What the host gives the realm and how it answers it.
#[derive(Clone, Copy, Debug)]
pub struct RunPlan {
    /// Start of a Non-secure region for the realm's granules and its RAM (4 KiB aligned).
    pub pool_base: u64,
    /// Size of that region (at least 6 MiB).
    pub pool_size: u64,
    /// Where the payload image is in host memory.
    pub image_pa: u64,
    /// Its size in bytes (0: there is no image and nothing runs).
    pub image_size: u64,
    /// RAM requests whose base is in `[start, end)` are rejected.
    pub ripas_reject: (u64, u64),
    /// The run stops with a failure after this many exits.
    pub max_exits: u64,
    /// Answer `CPU_ON` with SUCCESS (false: DENIED).
    pub allow_cpu_on: bool,
}

impl RunPlan {
    /// A plan with the default policies.
    pub const fn new(pool_base: u64, pool_size: u64, image_pa: u64, image_size: u64) -> Self {
        Self {
            pool_base,
            pool_size,
            image_pa,
            image_size,
            ripas_reject: DEFAULT_RIPAS_REJECT,
            max_exits: 2_000_000,
            allow_cpu_on: true,
        }
    }
}

/// Exit categories the run loop counts and times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitClass {
    /// An emulated MMIO access (the UART).
    Mmio,
    /// `RSI_HOST_CALL`.
    HostCall,
    /// A PSCI request.
    Psci,
    /// `RSI_IPA_STATE_SET`.
    RipasChange,
    /// A fault on protected memory the host had not mapped yet.
    ProtectedFault,
    /// A trapped WFI or WFE.
    Wfx,
    /// A trapped GIC system register access.
    SysReg,
    /// A physical IRQ or FIQ.
    Irq,
    /// Anything else (errors).
    Other,
}

impl ExitClass {
    /// Every class, in table order.
    pub const ALL: [ExitClass; 9] = [
        Self::Mmio,
        Self::HostCall,
        Self::Psci,
        Self::RipasChange,
        Self::ProtectedFault,
        Self::Wfx,
        Self::SysReg,
        Self::Irq,
        Self::Other,
    ];

    /// A short name (used in benchmark names).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Mmio => "mmio",
            Self::HostCall => "host_call",
            Self::Psci => "psci",
            Self::RipasChange => "ripas_change",
            Self::ProtectedFault => "protected_fault",
            Self::Wfx => "wfx",
            Self::SysReg => "sysreg",
            Self::Irq => "irq",
            Self::Other => "other",
        }
    }
}

/// Exits per class and the counter ticks their `REC_ENTER` calls took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitStats {
    /// Exits per class (indexed like [`ExitClass::ALL`]).
    pub count: [u64; 9],
    /// Sum of the ticks from just before each `REC_ENTER` to just after it returned with an
    /// exit of that class.
    pub ticks: [u64; 9],
}

impl ExitStats {
    fn record(&mut self, class: ExitClass, ticks: u64) {
        self.count[class as usize] += 1;
        self.ticks[class as usize] += ticks;
    }

    /// `(exits, ticks)` of one class.
    pub fn get(&self, class: ExitClass) -> (u64, u64) {
        (self.count[class as usize], self.ticks[class as usize])
    }

    /// Every exit.
    pub fn total(&self) -> u64 {
        self.count.iter().sum()
    }
}

/// The tally the payload reported with `RSI_HOST_CALL` 0xCCA0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Checks that passed.
    pub passed: u64,
    /// Checks that failed (`u64::MAX`: the payload hit a fatal error).
    pub failed: u64,
}

impl Verdict {
    /// A pass: nothing failed and something was checked.
    pub const fn pass(&self) -> bool {
        self.failed == 0 && self.passed > 0
    }
}

/// What a run did.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunReport {
    /// The host's own checks (building, running, tearing down).
    pub tally: Tally,
    /// A REC was entered at least once.
    pub entered: bool,
    /// The realm powered itself off (PSCI `SYSTEM_OFF` or `SYSTEM_RESET`).
    pub system_off: bool,
    /// The payload's verdict, if it reported one.
    pub verdict: Option<Verdict>,
    /// RSI calls the payload timed itself (host call 0xCCA2): `(name, calls, ticks, CNTFRQ)`.
    pub rsi_timings: [Option<(&'static str, u64, u64, u64)>; 2],
    /// Exits by class, with timings.
    pub stats: ExitStats,
    /// Lines the realm printed.
    pub realm_lines: u64,
    /// Protected pages the host mapped when the realm first touched them.
    pub mapped_on_demand: u64,
    /// Timer interrupts put in a list register.
    pub timer_injections: u64,
    /// Timer interrupts the realm completed (their list register came back invalid).
    pub timer_eois: u64,
    /// Exits after which `ICH_MISR_EL2.EOI` was set.
    pub misr_eoi: u64,
    /// The RIM the host predicted.
    pub rim: Option<Measurement>,
}

impl RunReport {
    /// True when the payload reported a passing verdict.
    pub fn realm_passed(&self) -> bool {
        self.verdict.is_some_and(|v| v.pass())
    }
}

const MAX_LRS: usize = 16;
const LINE_MAX: usize = 200;
const MAX_RTTS: usize = 8;
const RAM_PAGES: usize = (RAM_TOP / G) as usize;

/// The host's state of one REC.
#[derive(Clone, Copy)]
struct Vcpu {
    /// The REC granule (0: not delegated).
    rec: u64,
    created: bool,
    /// Its `RmiRecRun` page.
    run: u64,
    /// `RmiRecMpidr`.
    mpidr: u64,
    runnable: bool,
    /// Entry flags and gprs for the next `REC_ENTER`.
    flags: u64,
    gprs: [u64; 31],
    /// The REC's virtual CPU interface state while it is not loaded.
    lrs: [u64; MAX_LRS],
    aprs: [[u64; 4]; 2],
    vmcr: u64,
    /// `(ctl, cval)` of the virtual and physical timers at the last exit.
    timers: [(u64, u64); 2],
    line: [u8; LINE_MAX],
    line_len: usize,
}

impl Vcpu {
    const fn new() -> Self {
        Self {
            rec: 0,
            created: false,
            run: 0,
            mpidr: 0,
            runnable: false,
            flags: 0,
            gprs: [0; 31],
            lrs: [0; MAX_LRS],
            aprs: [[0; 4]; 2],
            vmcr: ich::VMCR_INITIAL,
            timers: [(0, 0); 2],
            line: [0; LINE_MAX],
            line_len: 0,
        }
    }

    /// Forgets the interrupt and timer state (the REC starts again after `CPU_ON`).
    fn reset_interrupts(&mut self) {
        self.lrs = [0; MAX_LRS];
        self.aprs = [[0; 4]; 2];
        self.vmcr = ich::VMCR_INITIAL;
        self.timers = [(0, 0); 2];
    }

    fn flush_line(&mut self, console: &mut dyn RealmConsole, report: &mut RunReport) {
        let text = core::str::from_utf8(&self.line[..self.line_len]).unwrap_or("<not UTF-8>");
        console.line(text);
        report.realm_lines += 1;
        self.line_len = 0;
    }

    fn put_char(&mut self, b: u8, console: &mut dyn RealmConsole, report: &mut RunReport) {
        match b {
            b'\n' => self.flush_line(console, report),
            b'\r' => {}
            _ => {
                self.line[self.line_len] = b;
                self.line_len += 1;
                if self.line_len == LINE_MAX {
                    self.flush_line(console, report);
                }
            }
        }
    }
}

/// Everything the host created for the realm.
struct Realm {
    pool: Pool,
    scratch: u64,
    list_page: u64,
    rd: u64,
    root: u64,
    created: bool,
    /// `(pa, ipa, level)` of every RTT the host created, in creation order.
    rtts: [(u64, u64, u64); MAX_RTTS],
    nrtts: usize,
    /// Backing of the protected RAM: the granule of IPA `x` is `ram_base + x`.
    ram_base: u64,
    /// Which pages of `[0, RAM_TOP)` are mapped.
    mapped: [u64; RAM_PAGES / 64],
    vcpus: [Vcpu; RECS],
    nr_lrs: usize,
    nr_aprs: usize,
}

impl Realm {
    fn is_mapped(&self, ipa: u64) -> bool {
        let i = (ipa / G) as usize;
        self.mapped[i / 64] & (1 << (i % 64)) != 0
    }

    fn set_mapped(&mut self, ipa: u64, on: bool) {
        let i = (ipa / G) as usize;
        if on {
            self.mapped[i / 64] |= 1 << (i % 64);
        } else {
            self.mapped[i / 64] &= !(1 << (i % 64));
        }
    }

    /// The REC whose MPIDR (in `MPIDR_EL1` layout, as the realm passes it to PSCI) is `mpidr`.
    fn rec_by_mpidr(&self, mpidr: u64) -> Option<usize> {
        let affinity = mpidr & 0xff_00ff_ffff;
        self.vcpus
            .iter()
            .position(|v| v.created && rec_mpidr::to_mpidr_el1(v.mpidr) == affinity)
    }

    fn next_runnable(&self, from: usize) -> Option<usize> {
        (1..=RECS)
            .map(|k| (from + k) % RECS)
            .find(|&i| self.vcpus[i].runnable)
    }
}

/// Size in bytes of what one RTT entry at `level` maps.
const fn entry_size(level: u64) -> u64 {
    1 << (12 + 9 * (3 - level))
}

/// Makes sure the RTT at `level` covering `ipa` exists, creating it.
fn add_rtt<C: Conduit>(
    c: &mut Checker<'_, '_, C>,
    realm: &mut Realm,
    ipa: u64,
    level: u64,
) -> bool {
    if !(2..=3).contains(&level) || realm.nrtts == MAX_RTTS {
        return c.check(
            false,
            format_args!("an RTT at level {level} for IPA {ipa:#x} is needed and cannot be made"),
        );
    }
    let base = ipa & !(entry_size(level - 1) - 1);
    match create_rtt(c, &mut realm.pool, realm.rd, base, level) {
        Some(t) => {
            c.say(format_args!(
                "   RTT at {t:#x}: level {level}, IPAs [{base:#x}, {:#x})",
                base + entry_size(level - 1)
            ));
            realm.rtts[realm.nrtts] = (t, base, level);
            realm.nrtts += 1;
            true
        }
        None => false,
    }
}

/// Maps the protected page at `ipa` with a fresh delegated granule (`RTT_DATA_MAP`, creating
/// RTTs the walk reports missing).
fn map_page<C: Conduit, M: HostMem>(
    c: &mut Checker<'_, '_, C>,
    mem: &mut M,
    realm: &mut Realm,
    ipa: u64,
) -> bool {
    let pa = realm.ram_base + ipa;
    if !delegate(c, pa, 1) {
        return false;
    }
    let desc = AddrRangeDesc {
        size: BlockSize::L3_4K,
        count: 1,
        addr: pa,
        undelegated: false,
    }
    .encode();
    for _ in 0..4 {
        let first = c
            .rmi
            .call(RmiFid::RTT_DATA_MAP, &[realm.rd, ipa, ipa + G, 1, desc]);
        let Realm {
            pool, list_page, ..
        } = realm;
        let mut aux = |c: &mut Checker<'_, '_, C>, n: u64| {
            let b = pool.take(n, G);
            delegate(c, b, n);
            b
        };
        let mut reclaimed = 0;
        let r = drive_sro(c, mem, first, *list_page, &mut aux, &mut reclaimed);
        match r.status() {
            Some(RmiStatus::Success) if r.regs[1] == ipa + G => {
                realm.set_mapped(ipa, true);
                return true;
            }
            Some(RmiStatus::ErrorRtt) => {
                let level = (r.regs[0] >> 8) & 0xff;
                if !add_rtt(c, realm, ipa, level + 1) {
                    break;
                }
            }
            _ => {
                c.check(
                    false,
                    format_args!(
                        "RTT_DATA_MAP of IPA {ipa:#x} -> {} (x1 = {:#x})",
                        status_name(r.regs[0]),
                        r.regs[1]
                    ),
                );
                break;
            }
        }
    }
    undelegate(c, pa, 1);
    false
}

/// Builds the realm: RD, RTTs, the image as measured data, initial RIPAS, two RECs,
/// activation. Returns false if a step failed (what was built is still recorded for
/// teardown).
fn build<C: Conduit, M: HostMem>(
    c: &mut Checker<'_, '_, C>,
    mem: &mut M,
    plan: &RunPlan,
    realm: &mut Realm,
    report: &mut RunReport,
) -> bool {
    let feat0 = c.rmi.call(RmiFid::FEATURES, &[0]).regs[1];
    let rd = realm.pool.take(1, G);
    let root = realm.pool.take(2, 2 * G);
    if !(delegate(c, rd, 1) && delegate(c, root, 2)) {
        return false;
    }
    realm.rd = rd;
    realm.root = root;
    let params = realm_params(feat0, root);
    mem.write(realm.scratch, params.as_bytes());
    let r = c.expect(
        RmiFid::REALM_CREATE,
        &[rd, realm.scratch],
        RmiStatus::Success,
    );
    if r.status() != Some(RmiStatus::Success) {
        return false;
    }
    realm.created = true;
    let mut rim = Measurement::realm_create(&params);
    if !(add_rtt(c, realm, 0, 2) && add_rtt(c, realm, 0, 3)) {
        return false;
    }
    if !init_ripas(c, rd, INITIAL_RAM.0, INITIAL_RAM.1) {
        return false;
    }

    // The image, one measured granule at a time (the last one zero-padded).
    let pages = plan.image_size.div_ceil(G);
    let verbose = c.rmi.verbose;
    c.rmi.verbose = false;
    c.quiet = true;
    let mut loaded = 0;
    for i in 0..pages {
        let ipa = INITIAL_RAM.0 + i * G;
        let mut page = [0u8; G as usize];
        let len = (plan.image_size - i * G).min(G) as usize;
        mem.read(plan.image_pa + i * G, &mut page[..len]);
        let src = if len == G as usize {
            plan.image_pa + i * G
        } else {
            mem.write(realm.scratch, &page);
            realm.scratch
        };
        let data = realm.ram_base + ipa;
        if !delegate(c, data, 1) {
            break;
        }
        let r = c.rmi.call(
            RmiFid::RTT_DATA_MAP_INIT,
            &[
                rd,
                data,
                ipa,
                src,
                cca_abi::rmi::data_flags::MEASURE_CONTENT,
            ],
        );
        if r.status() != Some(RmiStatus::Success) {
            c.check(
                false,
                format_args!(
                    "RTT_DATA_MAP_INIT of IPA {ipa:#x} -> {}",
                    status_name(r.regs[0])
                ),
            );
            undelegate(c, data, 1);
            break;
        }
        realm.set_mapped(ipa, true);
        if let Some(m) = rim.as_mut() {
            m.extend_data(ipa, cca_abi::rmi::data_flags::MEASURE_CONTENT, &page);
        }
        loaded += 1;
    }
    c.quiet = false;
    c.rmi.verbose = verbose;
    if !c.check(
        loaded == pages,
        format_args!(
            "payload image of {} bytes loaded at IPA 0 as {loaded} measured DATA granule(s)",
            plan.image_size
        ),
    ) {
        return false;
    }

    let Realm {
        pool,
        vcpus,
        scratch,
        list_page,
        ..
    } = realm;
    let mut aux = |c: &mut Checker<'_, '_, C>, n: u64| {
        let b = pool.take(n, G);
        delegate(c, b, n);
        b
    };
    for (i, v) in vcpus.iter_mut().enumerate() {
        let rec = aux(c, 1);
        v.rec = rec;
        v.mpidr = rec_mpidr::from_index(i as u64);
        let mut rp = RecParams::new_zeroed();
        rp.flags = if i == 0 { REC_PARAMS_FLAG_RUNNABLE } else { 0 };
        rp.mpidr = v.mpidr;
        rp.pc = INITIAL_RAM.0;
        v.created = create_rec(c, mem, rd, rec, &rp, i, (*scratch, *list_page), &mut aux);
        if !v.created {
            return false;
        }
        if let Some(m) = rim.as_mut() {
            m.extend_rec(&rp);
        }
    }
    let r = c.expect(RmiFid::REALM_ACTIVATE, &[rd], RmiStatus::Success);
    report.rim = rim;
    if let Some(m) = rim {
        c.say(format_args!(
            "payload realm RIM (predicted by the host) = {m}"
        ));
    }
    r.status() == Some(RmiStatus::Success)
}

/// What the loop does after an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// Enter the same REC again.
    Stay,
    /// Enter the next runnable REC (round robin).
    Yield,
    /// Enter this REC next.
    Switch(usize),
    /// Stop the realm (a failure was recorded).
    Stop,
    /// The realm powered off.
    Off,
}

/// Loads REC `v`'s virtual interface state into the GIC, with the timer interrupts that are
/// due, and enables the interface.
fn load_gic<V: VirtualCpuInterface>(
    gic: &mut V,
    v: &mut Vcpu,
    nr_lrs: usize,
    nr_aprs: usize,
    report: &mut RunReport,
) {
    let now = gic.counter();
    for (k, intid) in [(0, VTIMER_INTID), (1, PTIMER_INTID)] {
        let (ctl, cval) = v.timers[k];
        let asserted = ctl & timer_ctl::ENABLE != 0
            && ctl & timer_ctl::IMASK == 0
            && (ctl & timer_ctl::ISTATUS != 0 || now >= cval);
        let slot =
            (0..nr_lrs).find(|&n| ich::state(v.lrs[n]) != 0 && v.lrs[n] & ich::LR_VINTID == intid);
        match (asserted, slot) {
            (true, None) => {
                if let Some(free) = (0..nr_lrs).find(|&n| ich::state(v.lrs[n]) == 0) {
                    v.lrs[free] = ich::LR_PENDING
                        | ich::LR_GROUP1
                        | ich::LR_EOI
                        | (ich::TIMER_PRIORITY << ich::LR_PRIORITY_SHIFT)
                        | intid;
                    report.timer_injections += 1;
                }
            }
            // A level-sensitive interrupt whose line dropped before the realm took it.
            (false, Some(n)) if ich::state(v.lrs[n]) == 1 => v.lrs[n] = 0,
            _ => {}
        }
    }
    for n in 0..nr_lrs {
        gic.write_lr(n, v.lrs[n]);
    }
    for g in 0..2 {
        for n in 0..nr_aprs {
            gic.write_apr(g, n, v.aprs[g][n]);
        }
    }
    gic.write_vmcr(v.vmcr);
    gic.write_hcr(ich::HCR_EN);
}

/// Reads REC `v`'s virtual interface state back after an exit; list registers that came
/// back invalid were completed by the realm.
fn save_gic<V: VirtualCpuInterface>(
    gic: &mut V,
    v: &mut Vcpu,
    nr_lrs: usize,
    nr_aprs: usize,
    report: &mut RunReport,
) {
    if gic.read_misr() & ich::MISR_EOI != 0 {
        report.misr_eoi += 1;
    }
    for n in 0..nr_lrs {
        let lr = gic.read_lr(n);
        let before = v.lrs[n];
        if ich::state(before) != 0 && ich::state(lr) == 0 {
            let intid = before & ich::LR_VINTID;
            if intid == VTIMER_INTID || intid == PTIMER_INTID {
                report.timer_eois += 1;
            }
            v.lrs[n] = 0;
        } else {
            v.lrs[n] = lr;
        }
    }
    for g in 0..2 {
        for n in 0..nr_aprs {
            v.aprs[g][n] = gic.read_apr(g, n);
        }
    }
    v.vmcr = gic.read_vmcr();
}

/// Emulates an access to an unprotected IPA.
fn mmio<C: Conduit>(
    c: &mut Checker<'_, '_, C>,
    v: &mut Vcpu,
    index: usize,
    exit: &RecExit,
    ipa: u64,
    console: &mut dyn RealmConsole,
    report: &mut RunReport,
) -> (ExitClass, Next) {
    let ec = (exit.esr >> 26) & 0x3f;
    let isv = exit.esr & (1 << 24) != 0;
    let write = exit.esr & (1 << 6) != 0;
    if ec == 0x24 && isv && (UART_IPA..UART_IPA + G).contains(&ipa) {
        let offset = ipa - UART_IPA;
        if write {
            if offset == uart::DR {
                v.put_char(exit.gprs[0] as u8, console, report);
            }
        } else {
            // UARTDR reads 0 (no input), UARTFR reads 0 (transmit FIFO not full), and so
            // does everything else.
            v.gprs[0] = 0;
        }
        v.flags |= rec_enter_flags::EMUL_MMIO;
        (ExitClass::Mmio, Next::Stay)
    } else {
        c.check(
            false,
            format_args!(
                "REC {index}: access to unprotected IPA {ipa:#x} the host does not emulate \
                 (ESR {:#x}): SEA injected",
                exit.esr
            ),
        );
        v.flags |= rec_enter_flags::INJECT_SEA;
        (ExitClass::Other, Next::Stay)
    }
}

/// Builds a realm around the payload image, runs it and tears it down.
///
/// Every exit of the REC being run is handled as follows; the REC is then entered again
/// unless stated otherwise:
///
/// * **SYNC, data abort at the UART** (`2^39 + 0x0900_0000`, emulatable): a write to UARTDR
///   adds the character to that REC's line (each complete line goes to `console`); reads
///   return 0 in `enter.gprs[0]`; the entry sets `EMUL_MMIO`. Any other unprotected access
///   is a failure answered with `INJECT_SEA`.
/// * **SYNC, data or instruction abort at a protected IPA**: an unmapped page in
///   `[0, 4 MiB)` is mapped with a fresh delegated granule (`RTT_DATA_MAP`, creating the
///   RTTs the RMM reports missing); anything else is a failure and the run stops.
/// * **SYNC, WFI/WFE** (the host always sets `TRAP_WFI`/`TRAP_WFE`): the next runnable REC
///   is entered; a due timer interrupt is injected at that entry.
/// * **SYNC, GIC system register**: reads return 0 (`ICC_SRE_EL1`: 0x7), writes are ignored.
/// * **IRQ/FIQ**: the next runnable REC is entered.
/// * **PSCI** (`gprs[0]` = FID): `CPU_ON` → `PSCI_COMPLETE(caller, target, SUCCESS or
///   DENIED)` and the target is entered next; `AFFINITY_INFO` → `PSCI_COMPLETE(caller,
///   target, SUCCESS)`; `CPU_OFF` → the REC is not entered again until a `CPU_ON`;
///   `CPU_SUSPEND` → like WFI; `SYSTEM_OFF`/`SYSTEM_RESET` → the run ends.
/// * **RIPAS_CHANGE**: a RAM request starting in `plan.ripas_reject` (or reaching above
///   4 MiB) is rejected (`RIPAS_RESPONSE`); otherwise `RTT_SET_RIPAS` is called from each
///   returned x1 until the requested top (creating RTTs on `ERROR_RTT`) and the entry
///   accepts.
/// * **HOST_CALL**: imm 0xCCA0 records the payload's verdict (gprs[0] passed, gprs[1]
///   failed) and hands the gprs back unchanged; any other imm is answered with every gpr + 1.
/// * **SERROR**, unknown exit reasons, or a `REC_ENTER` that fails: a failure, the run stops.
///
/// Before every entry the host writes the REC's list registers (adding vINTID 27 or 30,
/// group 1, pending, HW = 0, when that EL1 timer is enabled, unmasked and due by the
/// counter), its `ICH_AP0R/AP1R`, its `ICH_VMCR_EL2` (starting with VPMR 0xff and VENG1)
/// and `ICH_HCR_EL2.En`; after the exit it reads them back.
pub fn run<C: Conduit, M: HostMem, V: VirtualCpuInterface>(
    rmi: &mut Rmi<'_, C>,
    mem: &mut M,
    gic: &mut V,
    console: &mut dyn RealmConsole,
    plan: &RunPlan,
) -> RunReport {
    let mut c = Checker::new(rmi);
    let mut report = RunReport::default();
    c.say(format_args!(
        "-- a realm runs the payload image ({} bytes at {:#x})",
        plan.image_size, plan.image_pa
    ));
    if plan.image_size == 0 {
        c.check(
            false,
            format_args!(
                "there is a realm payload image (its size word is 0): the realm run is skipped"
            ),
        );
        report.tally = c.tally;
        return report;
    }
    if plan.image_size > INITIAL_RAM.1 - INITIAL_RAM.0 {
        c.check(
            false,
            format_args!(
                "the payload image ({} bytes) fits in the realm's initial RAM (2 MiB): the \
                 realm run is skipped",
                plan.image_size
            ),
        );
        report.tally = c.tally;
        return report;
    }
    let vtr = gic.vtr();
    let mut pool = Pool {
        next: plan.pool_base,
        end: plan.pool_base + plan.pool_size,
    };
    let scratch = pool.take(1, G);
    let list_page = pool.take(1, G);
    let runs = pool.take(RECS as u64, G);
    let ram_base = pool.take(RAM_PAGES as u64, G);
    let mut realm = Realm {
        pool,
        scratch,
        list_page,
        rd: 0,
        root: 0,
        created: false,
        rtts: [(0, 0, 0); MAX_RTTS],
        nrtts: 0,
        ram_base,
        mapped: [0; RAM_PAGES / 64],
        vcpus: [Vcpu::new(); RECS],
        nr_lrs: ich::list_registers(vtr),
        nr_aprs: ich::active_priority_registers(vtr),
    };
    for (i, v) in realm.vcpus.iter_mut().enumerate() {
        v.run = runs + i as u64 * G;
    }
    c.say(format_args!(
        "   GIC virtual CPU interface: ICH_VTR_EL2 = {vtr:#x}: {} list registers, {} active \
         priority register(s) per group",
        realm.nr_lrs, realm.nr_aprs
    ));
    if build(&mut c, mem, plan, &mut realm, &mut report) {
        run_loop(&mut c, mem, gic, console, plan, &mut realm, &mut report);
    }
    teardown(&mut c, mem, &mut realm);
    report.tally = c.tally;
    report
}

fn run_loop<C: Conduit, M: HostMem, V: VirtualCpuInterface>(
    c: &mut Checker<'_, '_, C>,
    mem: &mut M,
    gic: &mut V,
    console: &mut dyn RealmConsole,
    plan: &RunPlan,
    realm: &mut Realm,
    report: &mut RunReport,
) {
    c.say(format_args!(
        "-- running REC 0 (realm output follows as [REALM] lines)"
    ));
    let verbose = c.rmi.verbose;
    c.rmi.verbose = false;
    c.quiet = true;
    realm.vcpus[0].runnable = true;
    let mut cur = 0;
    let mut exits = 0u64;
    let mut counters = LoopCounters::default();
    loop {
        if exits >= plan.max_exits {
            c.check(
                false,
                format_args!("the realm finished within {} exits", plan.max_exits),
            );
            break;
        }
        let (nr_lrs, nr_aprs) = (realm.nr_lrs, realm.nr_aprs);
        let v = &mut realm.vcpus[cur];
        let flags = v.flags | rec_enter_flags::TRAP_WFI | rec_enter_flags::TRAP_WFE;
        mem.write(v.run, &flags.to_le_bytes());
        mem.write(v.run + 0x200, v.gprs.as_bytes());
        load_gic(gic, v, nr_lrs, nr_aprs, report);
        let t0 = gic.counter();
        let r = c.rmi.call(RmiFid::REC_ENTER, &[v.rec, v.run]);
        let t1 = gic.counter();
        save_gic(gic, v, nr_lrs, nr_aprs, report);
        v.flags = 0;
        v.gprs = [0; 31];
        if r.status() != Some(RmiStatus::Success) {
            c.check(
                false,
                format_args!(
                    "REC_ENTER(REC {cur}) -> {} after {exits} exit(s)",
                    status_name(r.regs[0])
                ),
            );
            break;
        }
        report.entered = true;
        exits += 1;
        let mut raw = [0u8; 0x800];
        mem.read(v.run + 0x800, &mut raw);
        let Ok(exit) = RecExit::read_from_bytes(&raw[..]) else {
            break;
        };
        v.timers = [
            (exit.cntv_ctl, exit.cntv_cval),
            (exit.cntp_ctl, exit.cntp_cval),
        ];
        let (class, next) = handle_exit(
            c,
            mem,
            console,
            plan,
            realm,
            cur,
            &exit,
            report,
            &mut counters,
        );
        report.stats.record(class, t1.wrapping_sub(t0));
        let pick = match next {
            Next::Stop => break,
            Next::Off => {
                report.system_off = true;
                break;
            }
            Next::Stay if realm.vcpus[cur].runnable => Some(cur),
            Next::Switch(i) => Some(i),
            Next::Stay | Next::Yield => realm.next_runnable(cur),
        };
        match pick {
            Some(i) => cur = i,
            None => {
                c.check(
                    false,
                    format_args!("a REC is left to run (every REC is off but the realm is on)"),
                );
                break;
            }
        }
    }
    for v in realm.vcpus.iter_mut() {
        if v.line_len > 0 {
            v.flush_line(console, report);
        }
    }
    // Leave the virtual CPU interface disabled and empty.
    gic.write_hcr(0);
    for n in 0..realm.nr_lrs {
        gic.write_lr(n, 0);
    }
    c.quiet = false;
    c.rmi.verbose = verbose;
    let s = &report.stats;
    c.say(format_args!(
        "   {} exits: MMIO {}, host calls {}, PSCI {} ({} AFFINITY_INFO), RIPAS \
         changes {}, faults mapped {}, WFx {}, GIC sysregs {}, IRQ/FIQ {}, other {}",
        s.total(),
        s.get(ExitClass::Mmio).0,
        s.get(ExitClass::HostCall).0,
        s.get(ExitClass::Psci).0,
        counters.affinity_polls,
        s.get(ExitClass::RipasChange).0,
        s.get(ExitClass::ProtectedFault).0,
        s.get(ExitClass::Wfx).0,
        s.get(ExitClass::SysReg).0,
        s.get(ExitClass::Irq).0,
        s.get(ExitClass::Other).0
    ));
    c.say(format_args!(
        "   timer interrupts: {} injected through a list register, {} completed by the realm \
         (ICH_MISR_EL2.EOI seen after {} exit(s)); {} realm line(s)",
        report.timer_injections, report.timer_eois, report.misr_eoi, report.realm_lines
    ));
    c.check(
        report.system_off,
        format_args!("the realm ran and powered itself off (PSCI SYSTEM_OFF) after {exits} exits"),
    );
    match report.verdict {
        Some(v) if v.failed == u64::MAX => {
            c.check(
                false,
                format_args!(
                    "the realm payload passed (it stopped on a fatal error after {} checks)",
                    v.passed
                ),
            );
        }
        Some(v) => {
            c.check(
                v.pass(),
                format_args!(
                    "the realm payload passed: {} checks passed, {} did not",
                    v.passed, v.failed
                ),
            );
        }
        None => {
            c.check(
                false,
                format_args!("the realm payload reported a verdict (host call 0xcca0)"),
            );
        }
    }
}

/// Counters the loop keeps across exits.
#[derive(Default)]
struct LoopCounters {
    affinity_polls: u64,
    sysreg_seen: bool,
}

/// Handles one exit of REC `cur`: returns its class and what to run next.
#[allow(clippy::too_many_arguments)]
fn handle_exit<C: Conduit, M: HostMem>(
    c: &mut Checker<'_, '_, C>,
    mem: &mut M,
    console: &mut dyn RealmConsole,
    plan: &RunPlan,
    realm: &mut Realm,
    cur: usize,
    exit: &RecExit,
    report: &mut RunReport,
    counters: &mut LoopCounters,
) -> (ExitClass, Next) {
    match exit.exit_reason {
        exit_reason::SYNC => {
            let ec = (exit.esr >> 26) & 0x3f;
            match ec {
                0x24 | 0x20 => {
                    let ipa = (((exit.hpfar >> 4) & ((1 << 40) - 1)) << 12) | (exit.far & 0xfff);
                    if ipa & UNPROTECTED != 0 {
                        let v = &mut realm.vcpus[cur];
                        mmio(c, v, cur, exit, ipa, console, report)
                    } else {
                        protected_fault(c, mem, realm, cur, ipa, exit, report)
                    }
                }
                0x01 => (ExitClass::Wfx, Next::Yield),
                0x18 => {
                    let iss = exit.esr & 0x1ff_ffff;
                    let read = iss & 1 != 0;
                    let reg = (
                        (iss >> 20) & 3,
                        (iss >> 14) & 7,
                        (iss >> 10) & 0xf,
                        (iss >> 1) & 0xf,
                        (iss >> 17) & 7,
                    );
                    if read {
                        // ICC_SRE_EL1: SRE, DFB and DIB set.
                        realm.vcpus[cur].gprs[0] = if reg == (3, 0, 12, 12, 5) { 0x7 } else { 0 };
                    }
                    if !counters.sysreg_seen {
                        counters.sysreg_seen = true;
                        c.say(format_args!(
                            "REC {cur}: trapped {} of S{}_{}_C{}_C{}_{} (reads 0, writes \
                             ignored)",
                            if read { "read" } else { "write" },
                            reg.0,
                            reg.1,
                            reg.2,
                            reg.3,
                            reg.4
                        ));
                    }
                    (ExitClass::SysReg, Next::Stay)
                }
                _ => {
                    c.check(
                        false,
                        format_args!(
                            "REC {cur}: unexpected synchronous exit, EC {ec:#x} (ESR \
                             {:#x}, FAR {:#x}, HPFAR {:#x})",
                            exit.esr, exit.far, exit.hpfar
                        ),
                    );
                    (ExitClass::Other, Next::Stop)
                }
            }
        }
        exit_reason::IRQ | exit_reason::FIQ => (ExitClass::Irq, Next::Yield),
        exit_reason::PSCI => psci_exit(
            c,
            plan,
            realm,
            cur,
            exit,
            report,
            &mut counters.affinity_polls,
        ),
        exit_reason::RIPAS_CHANGE => ripas_exit(c, plan, realm, cur, exit),
        exit_reason::HOST_CALL => {
            let imm = exit.imm & 0xffff;
            if imm == HOST_CALL_VERDICT {
                let verdict = Verdict {
                    passed: exit.gprs[0],
                    failed: exit.gprs[1],
                };
                report.verdict = Some(verdict);
                realm.vcpus[cur].gprs = exit.gprs;
                if verdict.failed == u64::MAX {
                    c.say(format_args!(
                        "REC {cur}: host call {imm:#x}: the payload hit a fatal error after \
                         {} passed checks",
                        verdict.passed
                    ));
                } else {
                    c.say(format_args!(
                        "REC {cur}: host call {imm:#x}: the payload's verdict: {} passed, {} \
                         not passed",
                        verdict.passed, verdict.failed
                    ));
                }
            } else if imm == HOST_CALL_TIMING {
                let g = exit.gprs;
                report.rsi_timings = [
                    Some(("rsi_version_in_realm", g[0], g[1], g[2])),
                    Some(("rsi_ipa_state_get_in_realm", g[3], g[4], g[5])),
                ];
                realm.vcpus[cur].gprs = exit.gprs;
                c.say(format_args!(
                    "REC {cur}: host call {imm:#x}: the payload's RSI timings"
                ));
            } else {
                for (out, x) in realm.vcpus[cur].gprs.iter_mut().zip(exit.gprs) {
                    *out = x.wrapping_add(1);
                }
                c.say(format_args!(
                    "REC {cur}: host call {imm:#x} answered with every gpr + 1"
                ));
            }
            (ExitClass::HostCall, Next::Stay)
        }
        exit_reason::SERROR => {
            c.check(
                false,
                format_args!("REC {cur}: SError exit (ESR {:#x})", exit.esr),
            );
            (ExitClass::Other, Next::Stop)
        }
        other => {
            c.check(
                false,
                format_args!("REC {cur}: exit reason {other} is not handled"),
            );
            (ExitClass::Other, Next::Stop)
        }
    }
}

fn protected_fault<C: Conduit, M: HostMem>(
    c: &mut Checker<'_, '_, C>,
    mem: &mut M,
    realm: &mut Realm,
    cur: usize,
    ipa: u64,
    exit: &RecExit,
    report: &mut RunReport,
) -> (ExitClass, Next) {
    let page = ipa & !(G - 1);
    if page >= RAM_TOP {
        c.check(
            false,
            format_args!(
                "REC {cur}: fault at protected IPA {ipa:#x} outside the realm's RAM [0, \
                 {RAM_TOP:#x}) (ESR {:#x})",
                exit.esr
            ),
        );
        return (ExitClass::ProtectedFault, Next::Stop);
    }
    if realm.is_mapped(page) {
        c.check(
            false,
            format_args!(
                "REC {cur}: fault at protected IPA {ipa:#x}, which is mapped (ESR {:#x})",
                exit.esr
            ),
        );
        return (ExitClass::ProtectedFault, Next::Stop);
    }
    if map_page(c, mem, realm, page) {
        report.mapped_on_demand += 1;
        (ExitClass::ProtectedFault, Next::Stay)
    } else {
        (ExitClass::ProtectedFault, Next::Stop)
    }
}

fn psci_exit<C: Conduit>(
    c: &mut Checker<'_, '_, C>,
    plan: &RunPlan,
    realm: &mut Realm,
    cur: usize,
    exit: &RecExit,
    report: &mut RunReport,
    affinity_polls: &mut u64,
) -> (ExitClass, Next) {
    let fid = exit.gprs[0] as u32;
    let caller = realm.vcpus[cur].rec;
    let complete =
        |c: &mut Checker<'_, '_, C>, target: usize, realm: &Realm, status: PsciStatus| {
            let r = c.rmi.call(
                RmiFid::PSCI_COMPLETE,
                &[caller, realm.vcpus[target].rec, status.to_reg()],
            );
            c.check(
                r.status() == Some(RmiStatus::Success),
                format_args!(
                    "PSCI_COMPLETE(REC {cur}, REC {target}, {status:?}) -> {}",
                    status_name(r.regs[0])
                ),
            )
        };
    let target = || realm.rec_by_mpidr(exit.gprs[1]);
    let next = match fid {
        psci::CPU_ON_32 | psci::CPU_ON_64 => {
            let Some(t) = target() else {
                c.check(
                    false,
                    format_args!(
                        "REC {cur}: CPU_ON names MPIDR {:#x}, which no REC has",
                        exit.gprs[1]
                    ),
                );
                return (ExitClass::Psci, Next::Stop);
            };
            let status = if plan.allow_cpu_on {
                PsciStatus::Success
            } else {
                PsciStatus::Denied
            };
            // The RMM forwards the function and the target only; it keeps the entry point
            // and context and applies them at PSCI_COMPLETE.
            c.say(format_args!(
                "REC {cur}: PSCI CPU_ON(MPIDR {:#x} = REC {t}): the host answers {status:?}",
                exit.gprs[1]
            ));
            if !complete(c, t, realm, status) {
                return (ExitClass::Psci, Next::Stop);
            }
            let target = &mut realm.vcpus[t];
            if status == PsciStatus::Success && !target.runnable {
                target.runnable = true;
                target.reset_interrupts();
                Next::Switch(t)
            } else {
                Next::Stay
            }
        }
        psci::AFFINITY_INFO_32 | psci::AFFINITY_INFO_64 => {
            let Some(t) = target() else {
                c.check(
                    false,
                    format_args!(
                        "REC {cur}: AFFINITY_INFO names MPIDR {:#x}, which no REC has",
                        exit.gprs[1]
                    ),
                );
                return (ExitClass::Psci, Next::Stop);
            };
            *affinity_polls += 1;
            if !complete(c, t, realm, PsciStatus::Success) {
                return (ExitClass::Psci, Next::Stop);
            }
            Next::Yield
        }
        psci::CPU_OFF => {
            c.say(format_args!("REC {cur}: PSCI CPU_OFF"));
            realm.vcpus[cur].runnable = false;
            Next::Yield
        }
        psci::CPU_SUSPEND_32 | psci::CPU_SUSPEND_64 => Next::Yield,
        psci::SYSTEM_OFF | psci::SYSTEM_RESET => {
            c.say(format_args!(
                "REC {cur}: PSCI {}: the realm is done",
                if fid == psci::SYSTEM_OFF {
                    "SYSTEM_OFF"
                } else {
                    "SYSTEM_RESET"
                }
            ));
            report.system_off = true;
            Next::Off
        }
        _ => {
            c.check(
                false,
                format_args!("REC {cur}: PSCI function {fid:#x} is not expected at the host"),
            );
            Next::Stay
        }
    };
    (ExitClass::Psci, next)
}

fn ripas_exit<C: Conduit>(
    c: &mut Checker<'_, '_, C>,
    plan: &RunPlan,
    realm: &mut Realm,
    cur: usize,
    exit: &RecExit,
) -> (ExitClass, Next) {
    let (base, top) = (exit.ripas_base, exit.ripas_top);
    let ram = exit.ripas_value == cca_abi::rmi::Ripas::Ram as u8;
    let what = if ram { "RAM" } else { "EMPTY" };
    let in_window = (plan.ripas_reject.0..plan.ripas_reject.1).contains(&base);
    if ram && (in_window || top > RAM_TOP) {
        realm.vcpus[cur].flags |= rec_enter_flags::RIPAS_RESPONSE;
        c.say(format_args!(
            "REC {cur}: RIPAS of [{base:#x}, {top:#x}) to {what}: rejected ({})",
            if in_window {
                "the host refuses requests starting there"
            } else {
                "beyond the memory the host gives the realm"
            }
        ));
        return (ExitClass::RipasChange, Next::Stay);
    }
    let mut addr = base;
    let mut calls = 0;
    while addr < top && calls < 16 {
        calls += 1;
        let rec = realm.vcpus[cur].rec;
        let r = c
            .rmi
            .call(RmiFid::RTT_SET_RIPAS, &[realm.rd, rec, addr, top]);
        match r.status() {
            Some(RmiStatus::Success) if r.regs[1] > addr && r.regs[1] <= top => addr = r.regs[1],
            Some(RmiStatus::ErrorRtt) => {
                let level = (r.regs[0] >> 8) & 0xff;
                if !add_rtt(c, realm, addr, level + 1) {
                    break;
                }
            }
            _ => {
                c.check(
                    false,
                    format_args!(
                        "RTT_SET_RIPAS(REC {cur}, {addr:#x}, {top:#x}) -> {} (x1 = {:#x})",
                        status_name(r.regs[0]),
                        r.regs[1]
                    ),
                );
                break;
            }
        }
    }
    c.say(format_args!(
        "REC {cur}: RIPAS of [{base:#x}, {top:#x}) to {what}: accepted, RTT_SET_RIPAS reached \
         {addr:#x} in {calls} call(s)"
    ));
    (ExitClass::RipasChange, Next::Stay)
}

/// Terminates and destroys the realm and undelegates every granule the host delegated.
fn teardown<C: Conduit, M: HostMem>(c: &mut Checker<'_, '_, C>, mem: &mut M, realm: &mut Realm) {
    c.say(format_args!("-- payload realm teardown"));
    if realm.created {
        c.expect(RmiFid::REALM_TERMINATE, &[realm.rd], RmiStatus::Success);
    }
    let mut reclaimed = 0;
    let mut recs = 0;
    for v in realm.vcpus {
        if v.created {
            recs += 1;
            crate::realm::destroy_rec(c, mem, v.rec, realm.list_page, &mut reclaimed);
        } else if v.rec != 0 {
            undelegate(c, v.rec, 1);
        }
    }
    if recs > 0 {
        c.check(
            reclaimed == 16 * recs,
            format_args!(
                "{reclaimed} auxiliary granules of {recs} REC(s) reclaimed and undelegated"
            ),
        );
    }

    // Data: one DATA_UNMAP per run of mapped pages (their granules are contiguous too).
    let verbose = c.rmi.verbose;
    c.rmi.verbose = false;
    c.quiet = true;
    let mut unmapped = 0u64;
    let mut ok = true;
    let mut ipa = 0;
    while ipa < RAM_TOP {
        if !realm.is_mapped(ipa) {
            ipa += G;
            continue;
        }
        let mut end = ipa;
        while end < RAM_TOP && realm.is_mapped(end) {
            end += G;
        }
        while ipa < end {
            let r = c
                .rmi
                .call(RmiFid::RTT_DATA_UNMAP, &[realm.rd, ipa, end, 1, 0]);
            let d = AddrRangeDesc::decode(r.regs[2]);
            let n = u64::from(d.count) * (d.size.bytes() / G);
            let top = r.regs[1];
            if r.status() != Some(RmiStatus::Success)
                || top <= ipa
                || top > end
                || d.addr != realm.ram_base + ipa
                || n != (top - ipa) / G
            {
                c.check(
                    false,
                    format_args!(
                        "RTT_DATA_UNMAP [{ipa:#x}, {end:#x}) -> {} x1 = {top:#x} x2 = {:#x}",
                        status_name(r.regs[0]),
                        r.regs[2]
                    ),
                );
                ok = false;
                ipa = end;
                break;
            }
            ok &= undelegate(c, d.addr, n);
            for p in 0..n {
                realm.set_mapped(ipa + p * G, false);
            }
            unmapped += n;
            ipa = top;
        }
    }
    c.quiet = false;
    c.rmi.verbose = verbose;
    c.check(
        ok,
        format_args!("{unmapped} data granule(s) unmapped (RTT_DATA_UNMAP) and undelegated"),
    );
    for i in (0..realm.nrtts).rev() {
        let (t, ipa, level) = realm.rtts[i];
        let r = c.expect(
            RmiFid::RTT_DESTROY,
            &[realm.rd, ipa, level],
            RmiStatus::Success,
        );
        if r.status() == Some(RmiStatus::Success) && r.regs[1] == t {
            undelegate(c, t, 1);
        }
    }
    if realm.created {
        c.expect(RmiFid::REALM_DESTROY, &[realm.rd], RmiStatus::Success);
    }
    if realm.rd != 0 {
        undelegate(c, realm.rd, 1);
        undelegate(c, realm.root, 2);
        let mut clean = true;
        for pa in [realm.rd, realm.ram_base] {
            let mut w = [0u8; 8];
            mem.read(pa, &mut w);
            clean &= w == [0; 8];
        }
        c.check(
            clean,
            format_args!("the RD and the image's first data granule come back scrubbed"),
        );
    }
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
