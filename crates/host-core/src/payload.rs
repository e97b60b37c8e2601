//! The payload realm demonstration as a client of the VMM ([`crate::vmm`]): the host builds a
//! [`Vm`] around the bare-metal payload image (`crates/realm`), runs it with the VMM's run loop
//! and tears it down, deciding only the policies the payload checks.
//!
//! The realm (the contract with the payload is `docs/realm-payload.md`):
//!
//! | IPA | what the host provides |
//! |---|---|
//! | `[0, image)` | the payload image, loaded as measured DATA granules (`RTT_DATA_MAP_INIT`) |
//! | `[0, 2 MiB)` | RIPAS RAM from the start; the pages the image does not cover are mapped when the realm first touches them |
//! | `[2 MiB, 4 MiB)` | RIPAS EMPTY; the realm may ask for RAM (`RSI_IPA_STATE_SET`), except for requests starting in [`RIPAS_REJECT`]; pages are mapped on first touch |
//! | `2^39 + 0x0900_0000` | a PL011 ([`crate::devices::pl011`]) at the unprotected alias of [`UART_BASE`] |
//!
//! `s2sz` is 40, SHA-256, the breakpoint and watchpoint counts the RMM offers. REC 0 is
//! runnable at pc 0 with x0..x7 = 0, REC 1 is off until the payload starts it with PSCI
//! `CPU_ON`. The payload programs no GIC distributor, so the host enables Group 1 in the
//! virtual distributor and the virtual timer's PPI (INTID 27) of REC 0 itself, and every vCPU
//! starts with `ICH_VMCR_EL2` = [`INITIAL_VMCR`].
//!
//! What the host decides beyond the VMM's platform (the [`ExitHooks`]):
//!
//! * `RSI_HOST_CALL` [`HOST_CALL_VERDICT`]: the payload's verdict (`gprs[0]` checks passed,
//!   `gprs[1]` failed, `u64::MAX` after a fatal error), recorded, gprs handed back unchanged;
//! * [`HOST_CALL_TIMING`]: the payload's RSI timings, recorded for `cargo xtask bench`;
//! * [`HOST_CALL_TOKEN`]: a chunk of the payload's attestation token; the host gathers them
//!   (answering `gprs[0]` = the bytes it holds in order) and, once it holds the whole token,
//!   prints it in base64 between [`TOKEN_BEGIN`] and [`TOKEN_END`] lines so that a verifier
//!   off the machine can check it;
//! * any other immediate: answered with every gpr + 1 (wrapping), the payload's echo check;
//! * a RIPAS change to RAM whose base is in [`PayloadPlan::ripas_reject`]: rejected;
//! * `CPU_ON`: allowed unless [`PayloadPlan::allow_cpu_on`] is false.
//!
//! Everything else (UART accesses, faults on RAM, WFI, the timer through list registers,
//! PSCI, the trapped GIC system registers) is the VMM's ordinary handling
//! ([`crate::vmm::runloop`]). The realm's UART bytes are gathered into lines for
//! [`PayloadConsole::realm_line`].

use crate::boot::{Checker, Tally};
use crate::devices::{pl011::Pl011, Bus, ConsoleOut};
use crate::realm::{realm_params, S2SZ, UNPROTECTED};
use crate::rmi::{Conduit, HostMem, Rmi};
use crate::vgic::{Vgic, CTLR_ENABLE_GRP1, UNMASKED_VMCR};
use crate::vmm::error::{VmError, VmResult};
use crate::vmm::granules::GranulePool;
use crate::vmm::host::{VirtualCpuInterface, VmHost};
use crate::vmm::platform::VTIMER_INTID;
use crate::vmm::runloop::{ExitHooks, RunLimits};
use crate::vmm::stats::{ExitClass, ExitStats};
use crate::vmm::vcpu::{VcpuState, MAX_LRS};
use crate::vmm::vm::{Load, Stop, Teardown, Vm, VmSpec};
use alloc::boxed::Box;
use cca_abi::arch::ich::{self, LrState};
use cca_abi::rmi::{data_flags, rec_mpidr, RecParams, REC_PARAMS_FLAG_RUNNABLE};
use cca_abi::GRANULE_SIZE as G;
use cca_measure::Measurement;
use core::cell::RefCell;
use zerocopy::FromZeros;

/// Guest RAM `(IPA base, size)`: `[0, 4 MiB)`.
pub const RAM: (u64, u64) = (0, 0x40_0000);
/// The part of RAM that is RIPAS RAM at activation (the image is loaded at its base); the
/// rest starts EMPTY.
pub const INITIAL_RAM: (u64, u64) = (0, 0x20_0000);
/// RAM requests (`RSI_IPA_STATE_SET`) whose base is in `[start, end)` are rejected by default:
/// the payload checks that a host may refuse one.
pub const RIPAS_REJECT: (u64, u64) = (0x30_0000, 0x30_1000);
/// The PL011's IPA (the realm reaches it through the unprotected alias, [`UART_IPA`]).
pub const UART_BASE: u64 = 0x0900_0000;
/// The address the payload uses for the PL011: the unprotected alias of [`UART_BASE`].
pub const UART_IPA: u64 = UNPROTECTED | UART_BASE;
/// The PL011's register window.
pub const UART_SIZE: u64 = 0x1000;
/// The PL011's interrupt: SPI 1 (INTID 33), as QEMU `virt`'s UART0 (the payload polls).
pub const UART_INTID: u32 = 33;
/// SPIs of the realm's virtual GIC.
pub const NR_SPIS: u32 = 32;
/// Number of RECs.
pub const RECS: usize = 2;
/// `ICH_VMCR_EL2` every vCPU starts with: priority mask 0xff, Group 1 enabled.
pub const INITIAL_VMCR: u64 = UNMASKED_VMCR;
/// `RSI_HOST_CALL` immediate of the payload's verdict.
pub const HOST_CALL_VERDICT: u16 = 0xCCA0;
/// `RSI_HOST_CALL` immediate of the payload's RSI timing report: `gprs[0..3]` = calls,
/// counter ticks, CNTFRQ for `RSI_VERSION`; `gprs[3..6]` the same for `RSI_IPA_STATE_GET`.
pub const HOST_CALL_TIMING: u16 = 0xCCA2;
/// `RSI_HOST_CALL` immediate of a chunk of the payload's attestation token: `gprs[0]` = the
/// token's length, `gprs[1]` = the chunk's offset, `gprs[2]` = its length (at most 224),
/// `gprs[3..31]` = its bytes, little-endian.
pub const HOST_CALL_TOKEN: u16 = 0xCCA3;
/// The largest token the host takes from the payload.
pub const TOKEN_MAX: usize = 16 * 1024;
/// The host line before the token's base64 lines (followed by ` <length> bytes`).
pub const TOKEN_BEGIN: &str = "attestation token from the realm:";
/// The prefix of each base64 line of the token.
pub const TOKEN_LINE: &str = "TOKEN-B64 ";
/// The host line after the token's base64 lines.
pub const TOKEN_END: &str = "attestation token end";
/// Longest realm line; a longer one is split.
pub const LINE_MAX: usize = 200;

/// Where the payload's lines and the host's lines about its exits go.
pub trait PayloadConsole {
    /// One complete line the realm printed, without its newline (the firmware prints it as
    /// `[REALM] …`).
    fn realm_line(&mut self, text: &str);
    /// One line of the host's own, about what it answered the realm.
    fn host_line(&mut self, text: core::fmt::Arguments<'_>);
}

/// What the host gives the realm and how it answers it.
#[derive(Clone, Copy, Debug)]
pub struct PayloadPlan {
    /// Start of a Non-secure region for the realm's granules and its RAM (4 KiB aligned).
    pub pool_base: u64,
    /// Size of that region (at least 8 MiB: 4 MiB of RAM, 2 MiB aligned, and the realm's
    /// own granules).
    pub pool_size: u64,
    /// Where the payload image is in host memory (4 KiB aligned).
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

impl PayloadPlan {
    /// A plan with the default policies.
    pub const fn new(pool_base: u64, pool_size: u64, image_pa: u64, image_size: u64) -> Self {
        Self {
            pool_base,
            pool_size,
            image_pa,
            image_size,
            ripas_reject: RIPAS_REJECT,
            max_exits: 2_000_000,
            allow_cpu_on: true,
        }
    }
}

/// The tally the payload reported with `RSI_HOST_CALL` [`HOST_CALL_VERDICT`].
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

    /// The payload stopped on a fatal error.
    pub const fn fatal(&self) -> bool {
        self.failed == u64::MAX
    }
}

/// RSI calls the payload timed itself and reported with [`HOST_CALL_TIMING`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RsiTiming {
    /// The benchmark's name (`rsi_version_in_realm`, `rsi_ipa_state_get_in_realm`).
    pub name: &'static str,
    /// Calls timed.
    pub calls: u64,
    /// Counter ticks they took.
    pub ticks: u64,
    /// The counter's frequency as the realm read it (`CNTFRQ_EL0`).
    pub counter_hz: u64,
}

impl RsiTiming {
    /// Nanoseconds per call (instructions per call under `-icount shift=0`); 0 when the
    /// realm reported no calls or no frequency.
    pub fn nanoseconds_per_call(&self) -> u64 {
        let ns = u128::from(self.ticks) * 1_000_000_000;
        let per = ns
            .checked_div(u128::from(self.counter_hz))
            .and_then(|t| t.checked_div(u128::from(self.calls)))
            .unwrap_or(0);
        u64::try_from(per).unwrap_or(u64::MAX)
    }
}

/// The virtual timer's interrupt as the host saw it through the list registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerCounts {
    /// Entries made with the virtual timer's INTID pending in a list register.
    pub pending_entries: u64,
    /// Times the realm completed it (a list register that held it came back invalid).
    pub completed: u64,
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct PayloadReport {
    /// The host's own checks (building, running, tearing down).
    pub tally: Tally,
    /// A REC was entered at least once.
    pub entered: bool,
    /// How the run ended (`None`: the realm was not run, or the run stopped on an error).
    pub stop: Option<Stop>,
    /// The payload's verdict, if it reported one.
    pub verdict: Option<Verdict>,
    /// RSI calls the payload timed itself.
    pub rsi_timings: [Option<RsiTiming>; 5],
    /// The payload's attestation token timings: the whole token (INIT and every CONTINUE),
    /// the CONTINUEs that only signed, INIT alone.
    pub token_timings: [Option<RsiTiming>; 3],
    /// The attestation token the payload handed over, when it handed all of it.
    pub token: Option<alloc::vec::Vec<u8>>,
    /// `RSI_HOST_CALL` exits.
    pub host_calls: u64,
    /// RIPAS changes to RAM the host refused.
    pub ripas_rejected: u64,
    /// Exits by class, with timings.
    pub stats: ExitStats,
    /// Lines the realm printed.
    pub realm_lines: u64,
    /// Protected pages and blocks the host mapped when the realm first touched them.
    pub mapped_on_demand: u64,
    /// The virtual timer's interrupt.
    pub timer: TimerCounts,
    /// Exits of each REC.
    pub rec_exits: [u64; RECS],
    /// The RIM the host predicted.
    pub rim: Option<Measurement>,
    /// What teardown found.
    pub teardown: Option<Teardown>,
}

impl PayloadReport {
    /// The realm powered itself off with PSCI `SYSTEM_OFF`.
    pub fn system_off(&self) -> bool {
        self.stop == Some(Stop::SystemOff)
    }

    /// True when the payload reported a passing verdict.
    pub fn realm_passed(&self) -> bool {
        self.verdict.is_some_and(|v| v.pass())
    }
}

/// The realm's console output, gathered into lines.
struct Lines<'s, 'c> {
    out: &'s RefCell<&'c mut dyn PayloadConsole>,
    buf: [u8; LINE_MAX],
    len: usize,
    count: u64,
}

impl Lines<'_, '_> {
    fn flush(&mut self) {
        let text = core::str::from_utf8(&self.buf[..self.len]).unwrap_or("<not UTF-8>");
        self.out.borrow_mut().realm_line(text);
        self.count += 1;
        self.len = 0;
    }
}

impl ConsoleOut for Lines<'_, '_> {
    fn write_byte(&mut self, byte: u8) {
        match byte {
            b'\n' => self.flush(),
            b'\r' => {}
            _ => {
                self.buf[self.len] = byte;
                self.len += 1;
                if self.len == LINE_MAX {
                    self.flush();
                }
            }
        }
    }
}

/// The payload's policies (see the module documentation).
struct Hooks<'s, 'c> {
    out: &'s RefCell<&'c mut dyn PayloadConsole>,
    ripas_reject: (u64, u64),
    allow_cpu_on: bool,
    verdict: Option<Verdict>,
    rsi_timings: [Option<RsiTiming>; 5],
    token_timings: [Option<RsiTiming>; 3],
    token: alloc::vec::Vec<u8>,
    token_complete: bool,
    host_calls: u64,
    ripas_rejected: u64,
}

impl<'s, 'c> Hooks<'s, 'c> {
    fn new(out: &'s RefCell<&'c mut dyn PayloadConsole>, plan: &PayloadPlan) -> Self {
        Self {
            out,
            ripas_reject: plan.ripas_reject,
            allow_cpu_on: plan.allow_cpu_on,
            verdict: None,
            rsi_timings: [None; 5],
            token_timings: [None; 3],
            token: alloc::vec::Vec::new(),
            token_complete: false,
            host_calls: 0,
            ripas_rejected: 0,
        }
    }

    fn say(&self, what: core::fmt::Arguments<'_>) {
        self.out.borrow_mut().host_line(what);
    }

    /// Takes a [`HOST_CALL_TOKEN`] chunk; returns the bytes held in order. A chunk at offset
    /// 0 starts a new token; one that does not continue the bytes held, or a token larger
    /// than [`TOKEN_MAX`], is ignored.
    fn token_chunk(&mut self, gprs: &[u64; 31]) -> usize {
        let (total, off, len) = (gprs[0], gprs[1], gprs[2]);
        let fits = usize::try_from(total).is_ok_and(|t| t <= TOKEN_MAX) && len <= 28 * 8;
        if off == 0 {
            self.token.clear();
            self.token_complete = false;
        }
        if !fits || off != self.token.len() as u64 || off.saturating_add(len) > total {
            return self.token.len();
        }
        let bytes = gprs[3..].iter().flat_map(|w| w.to_le_bytes());
        self.token.extend(bytes.take(len as usize));
        if self.token.len() as u64 == total && !self.token_complete {
            self.token_complete = true;
            self.say(format_args!("{TOKEN_BEGIN} {total} bytes"));
            for chunk in self.token.chunks(72) {
                let mut b64 = [0u8; 96];
                let n = base64(chunk, &mut b64);
                let text = core::str::from_utf8(&b64[..n]).unwrap_or("");
                self.say(format_args!("{TOKEN_LINE}{text}"));
            }
            self.say(format_args!("{TOKEN_END}"));
        }
        self.token.len()
    }
}

/// Standard base64 (RFC 4648, with padding) of `data` into `out`; returns the length
/// (`out` must hold `4 * ceil(len / 3)` bytes, or the output is cut there).
pub fn base64(data: &[u8], out: &mut [u8]) -> usize {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut n = 0;
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let quad = [
            ALPHABET[(v >> 18) as usize & 63],
            ALPHABET[(v >> 12) as usize & 63],
            if c.len() > 1 {
                ALPHABET[(v >> 6) as usize & 63]
            } else {
                b'='
            },
            if c.len() > 2 {
                ALPHABET[v as usize & 63]
            } else {
                b'='
            },
        ];
        for q in quad {
            if let Some(slot) = out.get_mut(n) {
                *slot = q;
                n += 1;
            }
        }
    }
    n
}

impl ExitHooks for Hooks<'_, '_> {
    fn host_call(&mut self, vcpu: usize, imm: u16, gprs: &[u64; 31]) -> [u64; 31] {
        self.host_calls += 1;
        match imm {
            HOST_CALL_VERDICT => {
                let v = Verdict {
                    passed: gprs[0],
                    failed: gprs[1],
                };
                self.verdict = Some(v);
                if v.fatal() {
                    self.say(format_args!(
                        "REC {vcpu}: host call {imm:#x}: the payload hit a fatal error after {} \
                         passed checks",
                        v.passed
                    ));
                } else {
                    self.say(format_args!(
                        "REC {vcpu}: host call {imm:#x}: the payload's verdict: {} passed, {} \
                         not passed",
                        v.passed, v.failed
                    ));
                }
                *gprs
            }
            HOST_CALL_TIMING => {
                let t = |name, k: usize| RsiTiming {
                    name,
                    calls: gprs[k],
                    ticks: gprs[k + 1],
                    counter_hz: gprs[k + 2],
                };
                // gprs[15..24]: REALM_CONFIG, MEASUREMENT_READ, MEASUREMENT_EXTEND (a
                // payload that does not time them leaves them 0: no row).
                let extra = |name, k: usize| (gprs[k] != 0).then(|| t(name, k));
                self.rsi_timings = [
                    Some(t("rsi_version_in_realm", 0)),
                    Some(t("rsi_ipa_state_get_in_realm", 3)),
                    extra("rsi_realm_config_in_realm", 15),
                    extra("rsi_measurement_read_in_realm", 18),
                    extra("rsi_measurement_extend_in_realm", 21),
                ];
                if gprs[6] != 0 {
                    self.token_timings = [
                        Some(t("attestation_token_in_realm", 6)),
                        Some(t("attestation_token_signing_in_realm", 9)),
                        Some(t("attestation_token_init_in_realm", 12)),
                    ];
                }
                self.say(format_args!(
                    "REC {vcpu}: host call {imm:#x}: the payload's RSI timings ({} RSI_VERSION \
                     and {} RSI_IPA_STATE_GET calls)",
                    gprs[0], gprs[3]
                ));
                *gprs
            }
            HOST_CALL_TOKEN => {
                let mut out = *gprs;
                out[0] = self.token_chunk(gprs) as u64;
                out
            }
            _ => {
                self.say(format_args!(
                    "REC {vcpu}: host call {imm:#x} answered with every gpr + 1"
                ));
                gprs.map(|x| x.wrapping_add(1))
            }
        }
    }

    fn accept_ripas(&mut self, base: u64, top: u64, ram: bool) -> bool {
        let refused = ram && (self.ripas_reject.0..self.ripas_reject.1).contains(&base);
        if refused {
            self.ripas_rejected += 1;
            self.say(format_args!(
                "RIPAS of [{base:#x}, {top:#x}) to RAM: the host refuses requests starting in \
                 [{:#x}, {:#x})",
                self.ripas_reject.0, self.ripas_reject.1
            ));
        }
        !refused
    }

    fn allow_cpu_on(&mut self, target: usize) -> bool {
        self.say(format_args!(
            "PSCI CPU_ON of REC {target}: the host answers {}",
            if self.allow_cpu_on {
                "Success"
            } else {
                "Denied"
            }
        ));
        self.allow_cpu_on
    }
}

/// The host's GIC virtual CPU interface, watched for the virtual timer's interrupt: what the
/// VMM writes to the list registers before an entry and reads back after the exit.
struct TimerWatch<'h, H: VmHost> {
    host: &'h mut H,
    /// What each list register holds as far as the host knows (written, or read back).
    lrs: [u64; MAX_LRS],
    counts: TimerCounts,
}

impl<'h, H: VmHost> TimerWatch<'h, H> {
    fn new(host: &'h mut H) -> Self {
        Self {
            host,
            lrs: [0; MAX_LRS],
            counts: TimerCounts::default(),
        }
    }
}

fn holds_timer(lr: u64) -> bool {
    ich::lr_state(lr) != LrState::Invalid && ich::lr_vintid(lr) == VTIMER_INTID
}

impl<H: VmHost> VirtualCpuInterface for TimerWatch<'_, H> {
    fn vtr(&mut self) -> u64 {
        self.host.vtr()
    }
    fn read_lr(&mut self, n: usize) -> u64 {
        let lr = self.host.read_lr(n);
        if let Some(known) = self.lrs.get_mut(n) {
            if holds_timer(*known) && !holds_timer(lr) {
                self.counts.completed += 1;
            }
            *known = lr;
        }
        lr
    }
    fn write_lr(&mut self, n: usize, value: u64) {
        if let Some(known) = self.lrs.get_mut(n) {
            *known = value;
        }
        self.host.write_lr(n, value);
    }
    fn read_apr(&mut self, group: usize, n: usize) -> u64 {
        self.host.read_apr(group, n)
    }
    fn write_apr(&mut self, group: usize, n: usize, value: u64) {
        self.host.write_apr(group, n, value);
    }
    fn read_vmcr(&mut self) -> u64 {
        self.host.read_vmcr()
    }
    fn write_vmcr(&mut self, value: u64) {
        self.host.write_vmcr(value);
    }
    fn write_hcr(&mut self, value: u64) {
        let pending = self.lrs.iter().any(|&lr| {
            holds_timer(lr)
                && matches!(ich::lr_state(lr), LrState::Pending | LrState::PendingActive)
        });
        if value & ich::HCR_EN != 0 && pending {
            self.counts.pending_entries += 1;
        }
        self.host.write_hcr(value);
    }
    fn read_misr(&mut self) -> u64 {
        self.host.read_misr()
    }
    fn counter(&mut self) -> u64 {
        self.host.counter()
    }
}

impl<H: VmHost> VmHost for TimerWatch<'_, H> {
    fn counter_hz(&mut self) -> u64 {
        self.host.counter_hz()
    }
    fn arm_preemption(&mut self, deadline: Option<u64>) {
        self.host.arm_preemption(deadline);
    }
    fn idle(&mut self, until: u64) {
        self.host.idle(until);
    }
    fn poll_input(&mut self) -> Option<u8> {
        // The payload reads no input; the host's console keeps its bytes.
        None
    }
    fn unix_time(&mut self) -> u64 {
        self.host.unix_time()
    }
}

/// The REC parameters: REC 0 runnable at pc 0 (x0..x7 = 0), REC 1 off.
pub fn rec_params() -> [RecParams; RECS] {
    core::array::from_fn(|i| {
        let mut p = RecParams::new_zeroed();
        p.mpidr = rec_mpidr::from_index(i as u64);
        p.pc = INITIAL_RAM.0;
        if i == 0 {
            p.flags = REC_PARAMS_FLAG_RUNNABLE;
        }
        p
    })
}

/// The payload's devices: a virtual GIC for [`RECS`] vCPUs with Group 1 enabled in the
/// distributor and the virtual timer's PPI enabled on REC 0 (the payload does not program a
/// distributor), and a bus with the PL011 at [`UART_BASE`].
pub fn platform() -> VmResult<(Vgic, Bus)> {
    let mpidrs: [u64; RECS] =
        core::array::from_fn(|i| rec_mpidr::to_mpidr_el1(rec_mpidr::from_index(i as u64)));
    let mut vgic = Vgic::new(&mpidrs, NR_SPIS);
    vgic.write_dist_ctlr(CTLR_ENABLE_GRP1);
    vgic.set_enabled(0, VTIMER_INTID, true);
    let mut bus = Bus::new();
    bus.add(UART_BASE, UART_SIZE, Box::new(Pl011::new(UART_INTID)))?;
    Ok((vgic, bus))
}

/// The RIM the RMM will compute for a realm created with `spec` whose single load's bytes
/// are read from `mem`.
fn predict_rim<M: HostMem>(mem: &mut M, spec: &VmSpec<'_>) -> Option<Measurement> {
    let mut m = Measurement::realm_create(&spec.params)?;
    for l in spec.loads {
        let flags = if l.measured {
            data_flags::MEASURE_CONTENT
        } else {
            data_flags::NO_MEASURE_CONTENT
        };
        let mut off = 0;
        while off < l.len {
            let mut page = [0u8; G as usize];
            let n = (l.len - off).min(G) as usize;
            mem.read(l.src + off, &mut page[..n]);
            m.extend_data(l.ipa + off, flags, &page);
            off += G;
        }
    }
    for p in spec.recs {
        m.extend_rec(p);
    }
    Some(m)
}

/// Builds a realm around the payload image, runs it on the VMM and tears it down; the
/// module documentation says what the host answers. `host` is the machine (GIC virtual CPU
/// interface, counter, preemption timer, idling); the realm's lines and the host's lines about
/// its answers go to `console`, everything else to the RMI client's output.
pub fn run<C: Conduit, M: HostMem, H: VmHost>(
    rmi: &mut Rmi<'_, C>,
    mem: &mut M,
    host: &mut H,
    console: &mut dyn PayloadConsole,
    plan: &PayloadPlan,
) -> PayloadReport {
    let mut c = Checker::new(rmi);
    let mut report = PayloadReport::default();
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
    let Some(mut vm) = build(&mut c, mem, plan, &mut report) else {
        report.tally = c.tally;
        return report;
    };
    run_vm(&mut c, mem, host, console, plan, &mut vm, &mut report);
    teardown(&mut c, mem, &mut vm, &mut report);
    report.tally = c.tally;
    report
}

/// Builds and activates the realm and predicts its RIM; `None` if that failed (the VMM
/// has torn down what it built).
fn build<C: Conduit, M: HostMem>(
    c: &mut Checker<'_, '_, C>,
    mem: &mut M,
    plan: &PayloadPlan,
    report: &mut PayloadReport,
) -> Option<Vm> {
    let made = (|| -> VmResult<_> {
        let pool = GranulePool::new(plan.pool_base, plan.pool_size)?;
        let feat0 = c
            .rmi
            .features(0)
            .map_err(VmError::rmi("reading feature register 0"))?;
        Ok((pool, feat0, platform()?))
    })();
    let (pool, feat0, (vgic, bus)) = match made {
        Ok(x) => x,
        Err(e) => {
            c.check(false, format_args!("the payload realm is set up: {e}"));
            return None;
        }
    };
    // The VMM fills in the RTT fields.
    let params = realm_params(feat0, 0);
    let recs = rec_params();
    let loads = [Load {
        ipa: INITIAL_RAM.0,
        src: plan.image_pa,
        len: plan.image_size,
        measured: true,
    }];
    let spec = VmSpec {
        params,
        ram: RAM,
        initial_ram: INITIAL_RAM,
        recs: &recs,
        loads: &loads,
        initial_vmcr: INITIAL_VMCR,
    };
    c.say(format_args!(
        "   {S2SZ}-bit IPAs; RAM [{:#x}, {:#x}): RIPAS RAM below {:#x}, EMPTY above; PL011 at \
         {UART_IPA:#x}; REC 0 runnable at pc {:#x}, REC 1 off",
        RAM.0,
        RAM.0 + RAM.1,
        INITIAL_RAM.0 + INITIAL_RAM.1,
        INITIAL_RAM.0
    ));
    let vm = match Vm::build(c.rmi, mem, pool, &spec, vgic, bus) {
        Ok(vm) => vm,
        Err(e) => {
            c.check(false, format_args!("the payload realm is built: {e}"));
            return None;
        }
    };
    c.check(
        true,
        format_args!(
            "the payload realm is built and active: image of {} bytes loaded at IPA 0 as {} \
             measured DATA granule(s), {} RECs, {} RTT(s)",
            plan.image_size,
            vm.memory.stats.loaded,
            vm.vcpus.len(),
            vm.realm.rtts.len()
        ),
    );
    let created = VmSpec {
        params: vm.realm.params,
        ..spec
    };
    report.rim = predict_rim(mem, &created);
    if let Some(m) = report.rim {
        c.say(format_args!(
            "payload realm RIM (predicted by the host) = {m}"
        ));
    }
    Some(vm)
}

/// Runs the VM until the payload powers off and checks how it ended.
fn run_vm<C: Conduit, M: HostMem, H: VmHost>(
    c: &mut Checker<'_, '_, C>,
    mem: &mut M,
    host: &mut H,
    console: &mut dyn PayloadConsole,
    plan: &PayloadPlan,
    vm: &mut Vm,
    report: &mut PayloadReport,
) {
    c.say(format_args!(
        "-- running REC 0 (realm output follows as [REALM] lines)"
    ));
    let out = RefCell::new(console);
    let mut lines = Lines {
        out: &out,
        buf: [0; LINE_MAX],
        len: 0,
        count: 0,
    };
    let mut hooks = Hooks::new(&out, plan);
    let quantum = (host.counter_hz() / 250).max(1);
    let mut watch = TimerWatch::new(host);
    let limits = RunLimits {
        max_exits: plan.max_exits,
        quantum,
    };
    let stop = vm.run(c.rmi, mem, &mut watch, &mut lines, &mut hooks, limits);
    if lines.len > 0 {
        lines.flush();
    }
    // Every exit the loop took, including one that stopped it on an error (which has no
    // class in the statistics).
    let total: u64 = vm.vcpus.iter().map(|v| v.exits).sum();
    report.stats = vm.stats;
    report.entered = total > 0;
    report.verdict = hooks.verdict;
    report.rsi_timings = hooks.rsi_timings;
    report.token_timings = hooks.token_timings;
    report.token = hooks
        .token_complete
        .then(|| core::mem::take(&mut hooks.token));
    report.host_calls = hooks.host_calls;
    report.ripas_rejected = hooks.ripas_rejected;
    report.realm_lines = lines.count;
    report.timer = watch.counts;
    report.mapped_on_demand = vm.memory.stats.pages_mapped + vm.memory.stats.blocks_mapped;
    for (n, v) in report.rec_exits.iter_mut().zip(&vm.vcpus) {
        *n = v.exits;
    }
    let s = &vm.stats;
    let n = |class| s.get(class).0;
    c.say(format_args!(
        "   {} exits: MMIO {}, host calls {}, PSCI {}, RIPAS changes {}, faults mapped {}, WFI \
         {}, WFE {}, GIC sysregs {}, IRQ/FIQ {}, other {}",
        s.total(),
        n(ExitClass::Mmio),
        n(ExitClass::HostCall),
        n(ExitClass::Psci),
        n(ExitClass::RipasChange),
        n(ExitClass::ProtectedFault),
        n(ExitClass::Wfi),
        n(ExitClass::Wfe),
        n(ExitClass::SysReg),
        n(ExitClass::Irq),
        n(ExitClass::Other)
    ));
    c.say(format_args!(
        "   timer interrupts: {} REC entry(ies) with the virtual timer's interrupt pending in a \
         list register, {} completed by the realm; {} protected page(s) or block(s) mapped on \
         first touch; {} realm line(s)",
        report.timer.pending_entries,
        report.timer.completed,
        report.mapped_on_demand,
        report.realm_lines
    ));
    if let Some(v) = vm.vcpus.get(1) {
        c.say(format_args!(
            "   REC 1: {} exit(s), {}",
            v.exits,
            match v.state {
                VcpuState::Off if v.exits > 0 => "off again (PSCI CPU_OFF)",
                VcpuState::Off => "never started",
                _ => "still on",
            }
        ));
    }
    match &stop {
        Ok(Stop::SystemOff) => {
            c.check(
                true,
                format_args!(
                    "the realm ran and powered itself off (PSCI SYSTEM_OFF) after {total} exits"
                ),
            );
        }
        Ok(Stop::SystemReset) => {
            c.check(
                false,
                format_args!(
                    "the realm ran and powered itself off (it called SYSTEM_RESET after \
                     {total} exits)"
                ),
            );
        }
        Ok(Stop::ExitLimit) => {
            c.check(
                false,
                format_args!("the realm finished within {} exits", plan.max_exits),
            );
        }
        Err(e) => {
            c.check(
                false,
                format_args!(
                    "the realm ran and powered itself off (the run stopped after {total} exits: \
                     {e})"
                ),
            );
        }
    }
    report.stop = stop.ok();
    match report.verdict {
        Some(v) if v.fatal() => {
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

/// Terminates and destroys the realm and checks that every granule came back scrubbed.
fn teardown<C: Conduit, M: HostMem>(
    c: &mut Checker<'_, '_, C>,
    mem: &mut M,
    vm: &mut Vm,
    report: &mut PayloadReport,
) {
    c.say(format_args!("-- payload realm teardown"));
    let unmapped_before = vm.memory.stats.pages_unmapped;
    let t = match vm.destroy(c.rmi, mem) {
        Ok(t) => t,
        Err(e) => {
            c.check(false, format_args!("the payload realm is torn down: {e}"));
            return;
        }
    };
    report.teardown = Some(t);
    let unmapped = vm
        .memory
        .stats
        .pages_unmapped
        .saturating_sub(unmapped_before);
    c.check(
        t.recs == RECS as u64 && t.still_delegated == 0,
        format_args!(
            "{} auxiliary granules of {} REC(s) reclaimed and undelegated",
            t.aux_reclaimed, t.recs
        ),
    );
    c.check(
        t.still_delegated == 0,
        format_args!(
            "{unmapped} data granule(s) unmapped (RTT_DATA_UNMAP), {} RTT(s) destroyed, {} \
             granule(s) left delegated",
            t.rtts, t.still_delegated
        ),
    );
    c.check(
        t.not_scrubbed == 0,
        format_args!(
            "the RD and the image's first data granule come back scrubbed, as do the RECs ({} \
             sampled granule(s) non-zero)",
            t.not_scrubbed
        ),
    );
}

#[cfg(test)]
#[path = "payload_tests.rs"]
mod tests;

#[cfg(test)]
mod token_tests {
    use super::*;
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;

    struct Out(Vec<String>);

    impl PayloadConsole for Out {
        fn realm_line(&mut self, _: &str) {}
        fn host_line(&mut self, text: core::fmt::Arguments<'_>) {
            self.0.push(text.to_string());
        }
    }

    fn b64(data: &[u8]) -> String {
        let mut out = [0u8; 64];
        let n = base64(data, &mut out);
        String::from_utf8(out[..n].to_vec()).unwrap()
    }

    #[test]
    fn base64_is_rfc_4648() {
        for (data, want) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
            (&[0xFF, 0xEF, 0x3E], "/+8+"),
        ] {
            assert_eq!(b64(data), want);
        }
        // A short output buffer cuts the output, never more.
        let mut out = [0u8; 3];
        assert_eq!(base64(b"foobar", &mut out), 3);
    }

    /// The gprs of a chunk of `token` at `off`.
    fn chunk(token: &[u8], off: usize) -> [u64; 31] {
        let n = (token.len() - off).min(224);
        let mut g = [0u64; 31];
        g[0] = token.len() as u64;
        g[1] = off as u64;
        g[2] = n as u64;
        for (i, b) in token[off..off + n].iter().enumerate() {
            g[3 + i / 8] |= u64::from(*b) << (8 * (i % 8));
        }
        g
    }

    #[test]
    fn token_chunks_are_gathered_and_printed_once() {
        let mut out = Out(Vec::new());
        let cell: RefCell<&mut dyn PayloadConsole> = RefCell::new(&mut out);
        let plan = PayloadPlan::new(0, 0, 0, 0);
        let mut h = Hooks::new(&cell, &plan);
        let token: Vec<u8> = (0..500u32).map(|i| (i * 7) as u8).collect();
        assert_eq!(h.host_call(0, HOST_CALL_TOKEN, &chunk(&token, 0))[0], 224);
        // A chunk out of order is ignored; the answer says what the host holds.
        assert_eq!(h.host_call(0, HOST_CALL_TOKEN, &chunk(&token, 448))[0], 224);
        assert_eq!(h.host_call(0, HOST_CALL_TOKEN, &chunk(&token, 224))[0], 448);
        assert_eq!(h.host_call(0, HOST_CALL_TOKEN, &chunk(&token, 448))[0], 500);
        assert!(h.token_complete);
        assert_eq!(h.token, token);
        // Too long a chunk, or a token over the limit, is not taken.
        let mut bad = chunk(&token, 0);
        bad[2] = 225;
        assert_eq!(h.host_call(0, HOST_CALL_TOKEN, &bad)[0], 0);
        let mut big = chunk(&token, 0);
        big[0] = TOKEN_MAX as u64 + 1;
        assert_eq!(h.host_call(0, HOST_CALL_TOKEN, &big)[0], 0);
        let mut past = chunk(&token, 0);
        past[0] = 100;
        assert_eq!(
            h.host_call(0, HOST_CALL_TOKEN, &past)[0],
            0,
            "the chunk ends past the token"
        );
        drop(h);
        let lines = &out.0;
        assert_eq!(
            lines.iter().filter(|l| l.starts_with(TOKEN_BEGIN)).count(),
            1
        );
        assert_eq!(lines[0], "attestation token from the realm: 500 bytes");
        let text: String = lines
            .iter()
            .filter_map(|l| l.strip_prefix(TOKEN_LINE))
            .collect();
        // Lines of 72 bytes (a multiple of 3): the lines join into the whole encoding.
        assert_eq!(text, b64_all(&token));
        assert!(lines.iter().any(|l| l == TOKEN_END));
    }

    fn b64_all(data: &[u8]) -> String {
        let mut out = alloc::vec![0u8; data.len().div_ceil(3) * 4];
        let n = base64(data, &mut out);
        String::from_utf8(out[..n].to_vec()).unwrap()
    }
}
