//! Running one [`Op`]: the stubs (`stubs.s`, `sysregs.s`), the probes that arm the REC's
//! [`Slot`](super::vectors::Slot), and each class's outcome and invariants.

use super::gen::{self, fid, mem, rsi_kind, win, Class, Ctx, Op, Outcome, WINDOWS};
use super::vectors::{slot, TIMER_IRQS};
use core::arch::global_asm;
use core::sync::atomic::Ordering;
use fw_support::{read_sysreg, write_sysreg};

global_asm!(include_str!("stubs.s"), options(raw));
global_asm!(include_str!("sysregs.s"), options(raw));

unsafe extern "C" {
    fn fuzz_hvc_stubs();
    fn fuzz_smc_stubs();
    fn fuzz_svc_stubs();
    fn fuzz_brk_stubs();
    fn fuzz_hlt_stubs();
    fn fuzz_udf_stubs();
    fn fuzz_hint_stubs();
    fn fuzz_mem_stubs();
    fn fuzz_fp_stubs();
    fn fuzz_misc_stubs();
    fn fuzz_cache_stubs();
    fn fuzz_sysreg_stubs();
    /// The EL0 code page (4 KiB aligned, only EL0 stubs on it).
    pub fn fuzz_el0_page();
}

include!("sysregs.rs");

fn addr(f: unsafe extern "C" fn()) -> u64 {
    f as *const () as u64
}

/// An exception a probe took.
#[derive(Clone, Copy, Debug)]
pub struct Exc {
    /// `ESR_EL1`.
    pub esr: u64,
    /// It came from EL0.
    pub el0: bool,
}

/// What one operation did.
#[derive(Clone, Copy, Debug)]
pub struct Done {
    /// How it ended.
    pub outcome: Outcome,
    /// An invariant it broke, if any.
    pub violation: Option<&'static str>,
    /// `ESR_EL1` if it took an exception.
    pub esr: u64,
    /// A result value (x2 of a stub, x0 of a call).
    pub value: u64,
}

fn take() -> Option<Exc> {
    let s = slot();
    s.resume.store(0, Ordering::Relaxed);
    if s.taken.swap(0, Ordering::Relaxed) == 0 {
        return None;
    }
    Some(Exc {
        esr: s.esr.load(Ordering::Relaxed),
        el0: s.from_el0.load(Ordering::Relaxed) != 0,
    })
}

/// Branches to `stub` with x0..x7 = `r` (x14 = the return address); returns x0..x7 after
/// it, or the exception it took (x0..x7 as they were then).
fn stub(stub: u64, r: &mut [u64; 8]) -> Option<Exc> {
    let s = slot().resume.as_ptr();
    // SAFETY: every stub is a few instructions ending in `br x14`; what they may touch is
    // limited by construction (gen.rs): addresses in the fuzzer's windows, registers x0-x17
    // and x30 (clobbered here), FP/SIMD registers (unused by this soft-float image). An
    // exception resumes at label 9 through the armed slot.
    unsafe {
        core::arch::asm!(
            "adr x16, 9f",
            "str x16, [{s}]",
            "adr x14, 9f",
            "br x15",
            "9:",
            out("x16") _,
            s = in(reg) s,
            in("x15") stub,
            out("x14") _,
            inout("x0") r[0],
            inout("x1") r[1],
            inout("x2") r[2],
            inout("x3") r[3],
            inout("x4") r[4],
            inout("x5") r[5],
            inout("x6") r[6],
            inout("x7") r[7],
            clobber_abi("C"),
        );
    }
    take()
}

/// An SMC with x0..x13 = `r`; returns the registers after it.
fn smc(r: &mut [u64; 14]) -> Option<Exc> {
    let s = slot().resume.as_ptr();
    // SAFETY: the SMC goes to the RMM, which answers it (RSI, PSCI, SMCCC) or exits to the
    // host; the function IDs and arguments that could end, block or corrupt the payload
    // are excluded by the generator. An injected exception resumes at label 9.
    unsafe {
        core::arch::asm!(
            "adr x16, 9f",
            "str x16, [{s}]",
            "smc #0",
            "9:",
            out("x16") _,
            s = in(reg) s,
            inout("x0") r[0],
            inout("x1") r[1],
            inout("x2") r[2],
            inout("x3") r[3],
            inout("x4") r[4],
            inout("x5") r[5],
            inout("x6") r[6],
            inout("x7") r[7],
            inout("x8") r[8],
            inout("x9") r[9],
            inout("x10") r[10],
            inout("x11") r[11],
            inout("x12") r[12],
            inout("x13") r[13],
            clobber_abi("C"),
        );
    }
    take()
}

fn exc_done(e: Exc, violation: Option<&'static str>) -> Done {
    Done {
        outcome: gen::classify(e.esr),
        violation,
        esr: e.esr,
        value: 0,
    }
}

fn ok(value: u64) -> Done {
    Done {
        outcome: Outcome::Ok,
        violation: None,
        esr: 0,
        value,
    }
}

fn call_done(outcome: Outcome, value: u64, violation: Option<&'static str>) -> Done {
    Done {
        outcome,
        violation,
        esr: 0,
        value,
    }
}

/// The IPA of the scratch buffer's base, for host call structures.
fn scratch_write(ctx: &Ctx, ipa: u64, words: &[u64]) {
    let end = ctx.scratch_ipa + gen::SCRATCH_SIZE;
    for (i, w) in words.iter().enumerate() {
        let a = ipa + 8 * i as u64;
        if a % 8 == 0 && a >= ctx.scratch_ipa && a + 8 <= end {
            // SAFETY: the address is inside the scratch buffer (checked), which only the
            // fuzzer and the RMM write and nothing reads as a Rust object.
            unsafe { (a as *mut u64).write_volatile(*w) };
        }
    }
}

fn rsi(ctx: &Ctx, op: &Op) -> Done {
    let a = &op.args;
    let mut r = [0u64; 14];
    r[0] = u64::from(gen::rsi_fid(op.kind));
    match op.kind {
        rsi_kind::MEAS_EXTEND => {
            r[1] = a[0];
            r[2] = a[1];
            for (i, v) in r[3..11].iter_mut().enumerate() {
                *v = a[i % 8].rotate_left(i as u32 * 7);
            }
        }
        rsi_kind::IPA_SET => {
            r[1] = a[0];
            r[2] = a[1];
            r[3] = a[2];
            r[4] = a[3];
            if !gen::ripas_range_is_safe(a[0], a[1]) {
                return call_done(Outcome::Error, 0, Some("generator: unsafe RIPAS range"));
            }
        }
        rsi_kind::HOST_CALL => {
            let mut words = [0u64; 32];
            words[0] = a[1];
            for (i, w) in words[1..].iter_mut().enumerate() {
                *w = a[i % 8] ^ (i as u64);
            }
            scratch_write(ctx, a[0], &words);
            r[1] = a[0];
        }
        rsi_kind::TOKEN_INIT => r[1..9].copy_from_slice(a),
        rsi_kind::OTHER => {
            r[0] = a[7];
            r[1..8].copy_from_slice(&a[..7]);
        }
        _ => r[1..5].copy_from_slice(&a[..4]),
    }
    if matches!(
        op.kind,
        rsi_kind::REALM_CONFIG | rsi_kind::HOST_CALL | rsi_kind::TOKEN_CONTINUE
    ) && !gen::buffer_ipa_is_safe(a[0], ctx)
    {
        return call_done(Outcome::Error, 0, Some("generator: unsafe RSI buffer"));
    }
    let base = r[1];
    let top = r[2];
    if let Some(e) = smc(&mut r) {
        return exc_done(e, Some("an RSI call took an exception"));
    }
    let Some(outcome) = gen::classify_rsi(r[0]) else {
        return call_done(
            Outcome::OtherException,
            r[0],
            Some("an RSI call returned an undefined status"),
        );
    };
    let mut violation = None;
    match op.kind {
        rsi_kind::IPA_SET if r[0] == 0 => {
            let valid = base < top && base % gen::PAGE == 0 && top % gen::PAGE == 0;
            if !valid {
                violation = Some("RSI_IPA_STATE_SET accepted an invalid range");
            } else if r[1] < base || r[1] > top {
                violation = Some("RSI_IPA_STATE_SET returned a next address outside the range");
            }
        }
        // The payload's own memory is RAM for as long as it runs.
        rsi_kind::IPA_GET
            if r[0] == 0
                && base < gen::PAYLOAD_RAM.1
                && base % gen::PAGE == 0
                && r[2] != 1
                && r[1] > base =>
        {
            violation = Some("RSI_IPA_STATE_GET reports the payload's memory as not RAM");
        }
        rsi_kind::VERSION if r[0] == 0 && r[1] == 0 => {
            violation = Some("RSI_VERSION succeeded with revision 0");
        }
        _ => {}
    }
    call_done(outcome, r[0], violation)
}

fn psci(op: &Op) -> Done {
    let mut r = [0u64; 14];
    r[..4].copy_from_slice(&op.args[..4]);
    if gen::smc_fid_is_dangerous(r[0]) && op.kind == 0 {
        return call_done(
            Outcome::Error,
            0,
            Some("generator: dangerous PSCI function"),
        );
    }
    if op.kind == 1 && r[2] != op.args[2] {
        return call_done(Outcome::Error, 0, Some("generator: CPU_ON entry"));
    }
    if let Some(e) = smc(&mut r) {
        return exc_done(e, Some("a PSCI call took an exception"));
    }
    call_done(gen::classify_psci(r[0]), r[0], None)
}

fn raw_smc(op: &Op) -> Done {
    if gen::smc_fid_is_dangerous(op.args[0]) {
        return call_done(Outcome::Error, 0, Some("generator: dangerous SMC"));
    }
    if op.kind == 0 {
        let mut r = [0u64; 14];
        r[..8].copy_from_slice(&op.args);
        for (i, v) in r[8..].iter_mut().enumerate() {
            *v = op.args[i].wrapping_mul(0x9E37_79B9);
        }
        if let Some(e) = smc(&mut r) {
            return exc_done(e, Some("an SMC took an exception"));
        }
        return call_done(gen::classify_psci(r[0]), r[0], None);
    }
    let mut r = op.args;
    let s = addr(fuzz_smc_stubs) + 8 * u64::from(op.kind - 1);
    match stub(s, &mut r) {
        Some(e) => exc_done(e, Some("an SMC with an immediate took an exception")),
        None => call_done(gen::classify_psci(r[0]), r[0], None),
    }
}

fn imm_stub(table: u64, op: &Op, expect: Outcome, what: &'static str) -> Done {
    let mut r = op.args;
    let i = u64::from(op.kind) % gen::IMM_STUBS;
    match stub(table + 8 * i, &mut r) {
        Some(e) => {
            let d = exc_done(e, None);
            let violation = (d.outcome != expect).then_some(what);
            Done { violation, ..d }
        }
        None => call_done(Outcome::Ok, r[0], Some(what)),
    }
}

/// The repairs after a system register write: everything the realm's own interrupt
/// delivery and later probes rely on, back to the payload's values.
fn repair_sysregs() {
    // SAFETY: these writes restore the payload's own EL1 state (GIC CPU interface, timers,
    // FP control, PSTATE.PAN/UAO, debug control); none touches its memory or translation.
    unsafe {
        write_sysreg!(s3_0_c4_c6_0, 0xffu64); // ICC_PMR_EL1
        write_sysreg!(s3_0_c12_c12_4, 0u64); // ICC_CTLR_EL1
        write_sysreg!(s3_0_c12_c9_0, 0u64); // ICC_AP1R0_EL1
        write_sysreg!(s3_0_c12_c8_4, 0u64); // ICC_AP0R0_EL1
        write_sysreg!(s3_0_c12_c12_3, 0u64); // ICC_BPR1_EL1
        write_sysreg!(s3_0_c12_c12_7, 1u64); // ICC_IGRPEN1_EL1
        write_sysreg!(cntv_ctl_el0, 0u64);
        write_sysreg!(cntp_ctl_el0, 0u64);
        write_sysreg!(s3_3_c4_c4_0, 0u64); // FPCR
        write_sysreg!(s3_0_c4_c2_3, 0u64); // PAN
        write_sysreg!(s3_0_c4_c2_4, 0u64); // UAO
        write_sysreg!(mdscr_el1, 0u64);
        core::arch::asm!("isb", options(nostack));
    }
}

fn sysreg(op: &Op) -> Done {
    let i = op.kind as usize % SYSREGS.len();
    let (name, writable) = SYSREGS[i];
    let write = op.addr == 1 && writable;
    let mut r = op.args;
    let s = addr(fuzz_sysreg_stubs) + 16 * i as u64 + if write { 8 } else { 0 };
    let e = stub(s, &mut r);
    if write {
        repair_sysregs();
    } else if e.is_none() && name.starts_with("icc_iar") && r[2] & 0xff_ffff < 1020 {
        // An interrupt was acknowledged: end it.
        // SAFETY: ending an interrupt the probe acknowledged only changes the CPU interface.
        unsafe {
            write_sysreg!(s3_0_c12_c12_1, r[2] & 0xff_ffff);
            write_sysreg!(s3_0_c12_c11_1, r[2] & 0xff_ffff);
        }
        if r[2] & 0xff_ffff == 27 {
            // SAFETY: masking the virtual timer only affects its interrupt.
            unsafe { write_sysreg!(cntv_ctl_el0, 2u64) };
        }
    }
    match e {
        Some(e) => exc_done(e, None),
        None => ok(r[2]),
    }
}

fn is_load(k: u32) -> bool {
    matches!(
        k,
        mem::LDRB
            | mem::LDRH
            | mem::LDRW
            | mem::LDRX
            | mem::LDP
            | mem::LDAR
            | mem::LDAPR
            | mem::LDNP
            | mem::LDR_POST
            | mem::LDRSB
            | mem::LDRSW
            | mem::LD1
            | mem::LDRQ
    )
}

fn memory(op: &Op) -> Done {
    let w = gen::window_of(op.addr);
    if gen::mem::writes(op.kind) {
        let ok_target = match w {
            Some(w) => {
                let x = &WINDOWS[w];
                x.kind == gen::Kind::Memory
                    && (x.store || !x.writable)
                    && (op.kind != mem::DC_IVAC || x.store)
            }
            None => op.addr >= 0x0001_0000_0000_0000 && op.addr < gen::WINDOW_VA,
        };
        if !ok_target {
            return call_done(
                Outcome::Error,
                0,
                Some("generator: store outside the windows"),
            );
        }
    }
    let mut r = op.args;
    r[0] = op.addr;
    let s = addr(fuzz_mem_stubs) + 16 * u64::from(op.kind % mem::COUNT);
    match stub(s, &mut r) {
        Some(e) => {
            let d = exc_done(e, None);
            // Protected memory that is never RAM, and IPAs beyond the realm's space, must be
            // answered with an SEA (stage 1 maps them; nothing else can fault there but
            // alignment or the window's end).
            let violation = match w {
                Some(w) if WINDOWS[w].sea_or_zero && is_load(op.kind) => matches!(
                    d.outcome,
                    Outcome::Undef | Outcome::Permission | Outcome::OtherException
                )
                .then_some("an access to memory that is never RAM did not get an SEA"),
                _ => None,
            };
            Done { violation, ..d }
        }
        None => {
            let violation = match w {
                Some(w) if WINDOWS[w].sea_or_zero && is_load(op.kind) => {
                    Some("a load from memory that is never RAM completed")
                }
                // (The SIMD loads put their result in v0, not x2.)
                Some(win::XRAM)
                    if is_load(op.kind)
                        && !matches!(op.kind, mem::LD1 | mem::LDRQ)
                        && r[2] != 0 =>
                {
                    Some("memory no one wrote is not zero")
                }
                Some(win::UNPROT_NONE) | Some(win::UNPROT_EXEC)
                    if mem::emulatable(op.kind).is_some() && is_load(op.kind) && r[2] != 0 =>
                {
                    Some("a read where the host has no device is not zero")
                }
                _ => None,
            };
            call_done(Outcome::Ok, r[2], violation)
        }
    }
}

fn fetch(op: &Op) -> Done {
    let w = gen::window_of(op.addr);
    let Some(wi) = w else {
        return call_done(
            Outcome::Error,
            0,
            Some("generator: fetch outside the windows"),
        );
    };
    let x = &WINDOWS[wi];
    if x.executable && !x.fetch {
        return call_done(
            Outcome::Error,
            0,
            Some("generator: fetch from a window that may run"),
        );
    }
    if wi == win::XRAM {
        // Only ever zero (UDF) or faulting: check the word first, skip the fetch if the
        // memory holds anything (that would itself be a finding).
        let mut r = [0u64; 8];
        r[0] = op.addr & !3;
        if stub(addr(fuzz_mem_stubs) + 16 * u64::from(mem::LDRW), &mut r).is_none() && r[2] != 0 {
            return call_done(
                Outcome::Error,
                r[2],
                Some("memory no one wrote is not zero"),
            );
        }
    }
    let s = slot().resume.as_ptr();
    // SAFETY: the target is in a window whose contents never run (gen.rs: fetch windows),
    // so the branch faults (or executes UDF) and resumes at label 9.
    let e = unsafe {
        core::arch::asm!(
            "adr x16, 9f",
            "str x16, [{s}]",
            "blr x0",
            "9:",
            out("x16") _,
            s = in(reg) s,
            inout("x0") op.addr => _,
            clobber_abi("C"),
        );
        take()
    };
    match e {
        Some(e) => exc_done(e, None),
        None => call_done(Outcome::Ok, 0, Some("an instruction fetch completed")),
    }
}

const CPACR_FP: u64 = 3 << 20;

fn with_cpacr(v: u64, f: impl FnOnce() -> Done) -> Done {
    // SAFETY: CPACR_EL1 only controls traps of FP/SIMD, SVE and SME at EL1 and EL0, which
    // this soft-float image does not use; the payload's value is restored.
    unsafe {
        write_sysreg!(cpacr_el1, v);
        core::arch::asm!("isb", options(nostack));
    }
    let d = f();
    // SAFETY: as above.
    unsafe {
        write_sysreg!(cpacr_el1, CPACR_FP);
        core::arch::asm!("isb", options(nostack));
    }
    d
}

fn fp_stub(i: u64, op: &Op) -> Done {
    let mut r = op.args;
    match stub(addr(fuzz_fp_stubs) + 16 * i, &mut r) {
        Some(e) => exc_done(e, None),
        None => ok(r[2]),
    }
}

/// FP/SIMD registers d0-d7 hold a pattern across an exit (MMIO to the host, an RSI call
/// the RMM hashes for, or a host call): anything else is a leak or a corruption.
fn fp_integrity(ctx: &Ctx, op: &Op) -> Done {
    let pattern = op.args[0] | 1;
    let mut back = [0u64; 8];
    let how = op.args[1] % 3;
    let x0 = match how {
        0 => gen::window_va(win::UNPROT_NONE),
        1 => u64::from(fid::RSI_VERSION) + 3, // RSI_MEASUREMENT_EXTEND
        _ => u64::from(fid::RSI_HOST_CALL),
    };
    let x1 = if how == 1 { 1 } else { ctx.scratch_ipa };
    if how == 2 {
        let mut words = [0u64; 32];
        words[0] = 0xCCB1;
        scratch_write(ctx, ctx.scratch_ipa, &words);
    }
    let s = slot().resume.as_ptr();
    // SAFETY: the FP registers are not used by this image; the load is from the unprotected
    // window with nothing there (the host reads it as zero), the SMCs are RSI calls with
    // arguments in the scratch buffer. An exception resumes at label 9.
    unsafe {
        core::arch::asm!(
            "adr x16, 9f",
            "str x16, [{s}]",
            ".inst 0x9E670060", // fmov d0, x3
            "add x3, x3, #1",
            ".inst 0x9E670061", // fmov d1, x3
            "add x3, x3, #1",
            ".inst 0x9E670062",
            "add x3, x3, #1",
            ".inst 0x9E670063",
            "add x3, x3, #1",
            ".inst 0x9E670064",
            "add x3, x3, #1",
            ".inst 0x9E670065",
            "add x3, x3, #1",
            ".inst 0x9E670066",
            "add x3, x3, #1",
            ".inst 0x9E670067", // fmov d7, x3
            "cbz x4, 1f",
            "mov x2, #32",
            "smc #0",
            "b 2f",
            "1:",
            "ldr x5, [x0]",
            "2:",
            ".inst 0x9E660008", // fmov x8, d0
            ".inst 0x9E660029",
            ".inst 0x9E66004A",
            ".inst 0x9E66006B",
            ".inst 0x9E66008C",
            ".inst 0x9E6600AD",
            ".inst 0x9E6600CE",
            ".inst 0x9E6600EF", // fmov x15, d7
            "9:",
            out("x16") _,
            s = in(reg) s,
            inout("x0") x0 => _,
            inout("x1") x1 => _,
            inout("x3") pattern => _,
            inout("x4") how => _,
            out("x8") back[0],
            out("x9") back[1],
            out("x10") back[2],
            out("x11") back[3],
            out("x12") back[4],
            out("x13") back[5],
            out("x14") back[6],
            out("x15") back[7],
            clobber_abi("C"),
        );
    }
    if let Some(e) = take() {
        return exc_done(e, Some("the FP check took an exception"));
    }
    let intact = back
        .iter()
        .enumerate()
        .all(|(i, v)| *v == pattern.wrapping_add(i as u64));
    call_done(
        Outcome::Ok,
        back[0],
        (!intact).then_some("FP/SIMD registers changed across an exit"),
    )
}

fn fp(ctx: &Ctx, op: &Op) -> Done {
    match op.kind {
        0 => fp_stub(0, op),
        1 => fp_integrity(ctx, op),
        // FP disabled at EL1: the PE traps to EL1.
        2 => with_cpacr(0, || fp_stub(if op.args[2] & 1 == 0 { 0 } else { 6 }, op)),
        // SVE: trapped at EL1 (ZEN = 0), or enabled at EL1 and trapped by the RMM.
        3 => with_cpacr(CPACR_FP, || fp_stub(1 + op.args[2] % 2, op)),
        4 => with_cpacr(CPACR_FP | (3 << 16), || fp_stub(1 + op.args[2] % 2, op)),
        // SME: the same with SMEN.
        5 => with_cpacr(CPACR_FP, || fp_stub(3 + op.args[2] % 2, op)),
        6 => with_cpacr(CPACR_FP | (3 << 24) | (3 << 16), || {
            let d = fp_stub(3 + op.args[2] % 3, op);
            let _ = fp_stub(5, op); // SMSTOP, whatever SMSTART did
            let _ = fp_stub(8, op);
            d
        }),
        _ => fp_stub(6 + op.args[2] % 4, op),
    }
}

fn debug(op: &Op) -> Done {
    let i = op.args[7];
    let mut r = op.args;
    let (s, expect) = match op.kind {
        0 => (
            addr(fuzz_brk_stubs) + 8 * (i % gen::IMM_STUBS),
            Some(Outcome::Debug),
        ),
        1 => (addr(fuzz_hlt_stubs) + 8 * (i % gen::IMM_STUBS), None),
        2 => (
            addr(fuzz_udf_stubs) + 8 * (i % gen::IMM_STUBS),
            Some(Outcome::Undef),
        ),
        3 => (
            addr(fuzz_misc_stubs) + 16 * (6 + i % 3),
            Some(Outcome::Undef),
        ),
        4 => (addr(fuzz_hint_stubs) + 8 * (i % gen::HINT_STUBS), None),
        _ => (addr(fuzz_misc_stubs) + 16 * (i % 12), None),
    };
    match stub(s, &mut r) {
        Some(e) => {
            let d = exc_done(e, None);
            let violation = expect
                .is_some_and(|x| x != d.outcome)
                .then_some("BRK/UDF/DCPS did not take its exception");
            Done { violation, ..d }
        }
        None => {
            let violation = expect.is_some().then_some("BRK/UDF/DCPS completed");
            call_done(Outcome::Ok, r[2], violation)
        }
    }
}

/// Arms the virtual timer `ticks` from now (its interrupt wakes WFI).
fn arm_timer(ticks: u64) {
    // SAFETY: programming the EL1 virtual timer only affects its interrupt, which the fuzz
    // IRQ handler takes and masks.
    unsafe {
        write_sysreg!(s3_0_c4_c6_0, 0xffu64); // ICC_PMR_EL1
        write_sysreg!(s3_0_c12_c12_7, 1u64); // ICC_IGRPEN1_EL1
        write_sysreg!(cntv_ctl_el0, 0u64);
        write_sysreg!(cntv_tval_el0, ticks);
        write_sysreg!(cntv_ctl_el0, 1u64);
        core::arch::asm!("isb", options(nostack));
    }
}

/// Lets a pending IRQ in for a moment.
fn irq_window() {
    // SAFETY: IRQs are taken by the fuzz vectors' handler, which only touches the GIC CPU
    // interface, the timer and counters.
    unsafe {
        core::arch::asm!(
            "msr daifclr, #2",
            "isb",
            "msr daifset, #2",
            options(nostack)
        )
    };
}

fn timer_ticks() -> u64 {
    (read_sysreg!(cntfrq_el0) / 20_000).max(100)
}

fn wait_for_timer(what: u32, op: &Op) -> Done {
    let before = TIMER_IRQS.load(Ordering::Relaxed);
    arm_timer(timer_ticks());
    let mut tries = 0u64;
    let mut e = None;
    while TIMER_IRQS.load(Ordering::Relaxed) == before && tries < 64 {
        tries += 1;
        let deadline = read_sysreg!(cntvct_el0).wrapping_add(timer_ticks() * 2);
        let s = slot().resume.as_ptr();
        // SAFETY: WFI/WFIT/WFET/CPU_SUSPEND wait for the armed timer's interrupt (or return
        // at once); they touch no memory. An exception (WFxT undefined) resumes at label 9.
        unsafe {
            core::arch::asm!(
                "adr x16, 9f",
                "str x16, [{s}]",
                "cmp x4, #0",
                "b.ne 1f",
                "wfi",
                "b 9f",
                "1: cmp x4, #1",
                "b.ne 2f",
                ".inst 0xD5031020", // wfit x0
                "b 9f",
                "2: cmp x4, #2",
                "b.ne 3f",
                ".inst 0xD5031000", // wfet x0
                "b 9f",
                "3: mov x0, x5",
                "smc #0",
                "9:",
                out("x16") _,
                s = in(reg) s,
                inout("x0") deadline => _,
                inout("x1") op.args[1] & 0xffff => _,
                inout("x2") 0u64 => _,
                inout("x3") 0u64 => _,
                inout("x4") u64::from(what) => _,
                inout("x5") 0xC400_0001u64 => _, // PSCI CPU_SUSPEND (64): a standby state
                clobber_abi("C"),
            );
        }
        if let Some(x) = take() {
            e = Some(x);
            break;
        }
        irq_window();
    }
    // SAFETY: the timer is switched off again.
    unsafe { write_sysreg!(cntv_ctl_el0, 0u64) };
    irq_window();
    match e {
        Some(x) => exc_done(x, None),
        None => call_done(Outcome::Ok, tries, None),
    }
}

fn wfx(op: &Op) -> Done {
    let n = op.args[0].clamp(1, 16);
    match op.kind {
        0 | 1 => {
            for _ in 0..n {
                // SAFETY: WFE/SEVL only wait for or send events.
                unsafe {
                    if op.kind == 1 {
                        core::arch::asm!("sevl", "wfe", "wfe", options(nostack));
                    } else {
                        core::arch::asm!("wfe", options(nostack));
                    }
                }
            }
            ok(n)
        }
        2 => wait_for_timer(0, op),
        3 => wait_for_timer(1, op),
        4 => wait_for_timer(2, op),
        5 => wait_for_timer(3, op),
        _ => {
            for _ in 0..n {
                // SAFETY: YIELD is a hint.
                unsafe { core::arch::asm!("yield", options(nostack)) };
            }
            ok(n)
        }
    }
}

/// The repairs after an MMIO write to a device: what the payload's console and its timer
/// interrupt need, back to the payload's values (plain 32-bit accesses the host emulates).
fn repair_device(w: usize) {
    let base = gen::window_va(w);
    let put = |off: u64, v: u64, byte: bool| {
        let mut r = [0u64; 8];
        r[0] = base + off;
        r[1] = v;
        let k = if byte { mem::STRB } else { mem::STRW };
        let _ = stub(addr(fuzz_mem_stubs) + 16 * u64::from(k), &mut r);
    };
    match w {
        win::PL011 => {
            put(0x30, 0x0301, false); // UARTCR: enabled, TX and RX, no loopback
            put(0x38, 0, false); // UARTIMSC
            put(0x44, 0x7ff, false); // UARTICR
        }
        win::UART16550 => {
            put(3, 3, true); // LCR: 8N1, DLAB clear
            put(1, 0, true); // IER
            put(4, 0, true); // MCR: no loopback
        }
        win::GICD => {
            put(0, 2, false); // CTLR: EnableGrp1
            put(0x184, 0xffff_ffff, false); // ICENABLER1: SPIs off
        }
        win::GICR0 | win::GICR1 => put(0x14, 0, false), // WAKER: awake
        win::GICR0_SGI => {
            put(0x80, 0xffff_ffff, false); // IGROUPR0: Group 1
            put(0x180, !(1u64 << 27) & 0xffff_ffff, false); // ICENABLER0: all but the timer
            put(0x100, 1 << 27, false); // ISENABLER0: the timer
            put(0x418, 0, false); // IPRIORITYR6: INTIDs 24..27 at priority 0
            put(0x380, 0xffff_ffff, false); // ICACTIVER0
        }
        _ => {}
    }
}

fn mmio(op: &Op) -> Done {
    let Some(w) = gen::window_of(op.addr) else {
        return call_done(
            Outcome::Error,
            0,
            Some("generator: MMIO outside the windows"),
        );
    };
    let mut r = op.args;
    r[0] = op.addr;
    r[1] = op.args[0];
    let e = stub(
        addr(fuzz_mem_stubs) + 16 * u64::from(op.kind % mem::COUNT),
        &mut r,
    );
    if mem::writes(op.kind) {
        repair_device(w);
    }
    match e {
        Some(e) => exc_done(e, None),
        None => {
            let violation = (w == win::UNPROT_NONE
                && mem::emulatable(op.kind).is_some()
                && is_load(op.kind)
                && r[2] != 0)
                .then_some("a read where the host has no device is not zero");
            call_done(Outcome::Ok, r[2], violation)
        }
    }
}

fn el0(op: &Op) -> Done {
    let entry = gen::window_va(win::EL0_CODE) + 16 * (u64::from(op.kind) % gen::EL0_STUBS);
    let s = slot().resume.as_ptr();
    let mut x2 = 0u64;
    // SAFETY: EL0 runs one stub of the EL0 code page (a few instructions, then SVC) with
    // D, A, I, F masked; every way back is an exception the fuzz vectors resume at label 9.
    // EL0 can reach only what stage 1 gives it (its code page and the EL0 scratch window).
    unsafe {
        core::arch::asm!(
            "adr x16, 9f",
            "str x16, [{s}]",
            "msr elr_el1, {entry}",
            "mov x16, #0x3c0",
            "msr spsr_el1, x16",
            "msr sp_el0, xzr",
            "eret",
            "9:",
            out("x16") _,
            s = in(reg) s,
            entry = in(reg) entry,
            inout("x0") op.addr => _,
            inout("x1") op.args[0] => _,
            inout("x2") x2,
            clobber_abi("C"),
        );
    }
    match take() {
        Some(e) => {
            let d = exc_done(e, None);
            let violation = (!e.el0).then_some("an EL0 stub's exception was taken from EL1");
            Done {
                violation,
                value: x2,
                ..d
            }
        }
        None => call_done(
            Outcome::Ok,
            0,
            Some("EL0 code returned without an exception"),
        ),
    }
}

fn eret(op: &Op) -> Done {
    let spsr = op.args[0];
    if !gen::eret_spsr_is_safe(spsr) {
        return call_done(Outcome::Error, 0, Some("generator: unsafe SPSR"));
    }
    let s = slot().resume.as_ptr();
    // SAFETY: ERET returns to label 9 (this code), with a mode the generator allows: EL0
    // (label 9 is not EL0-executable: an instruction abort), EL1h (continues here with
    // D, A, I, F masked) or an illegal return (an Illegal State exception at label 9). Every
    // exception resumes at label 9 at EL1h.
    unsafe {
        core::arch::asm!(
            "adr x16, 9f",
            "str x16, [{s}]",
            "msr spsr_el1, {spsr}",
            "msr elr_el1, x16",
            "eret",
            "9:",
            out("x16") _,
            s = in(reg) s,
            spsr = in(reg) spsr,
            clobber_abi("C"),
        );
        // Whatever PSTATE the return left: masked again, PAN off.
        core::arch::asm!("msr daifset, #0xf", ".inst 0xD500409F", options(nostack));
        // PAN = 0
    }
    match take() {
        Some(e) => exc_done(e, None),
        None => ok(spsr),
    }
}

fn cache(op: &Op) -> Done {
    let mut r = op.args;
    r[0] = op.addr;
    r[1] = op.args[1] & 0xffff_fffe;
    let i = u64::from(op.kind) % 12;
    match stub(addr(fuzz_cache_stubs) + 16 * i, &mut r) {
        Some(e) => exc_done(e, None),
        None => ok(0),
    }
}

/// Runs one operation.
pub fn run(ctx: &Ctx, op: &Op) -> Done {
    match op.class {
        Class::Rsi => rsi(ctx, op),
        Class::Psci => psci(op),
        Class::Smc => raw_smc(op),
        Class::Hvc => imm_stub(
            addr(fuzz_hvc_stubs),
            op,
            Outcome::Undef,
            "an HVC was not answered with an UNDEF",
        ),
        Class::Svc => imm_stub(
            addr(fuzz_svc_stubs),
            op,
            Outcome::Call,
            "an SVC at EL1 was not taken at EL1",
        ),
        Class::SysReg => sysreg(op),
        Class::Mem => memory(op),
        Class::Fetch => fetch(op),
        Class::Fp => fp(ctx, op),
        Class::Debug => debug(op),
        Class::Wfx => wfx(op),
        Class::Mmio => mmio(op),
        Class::El0 => el0(op),
        Class::Eret => eret(op),
        Class::Cache => cache(op),
    }
}

/// The fuzzer's own windows' IPAs known only at run time.
pub fn runtime_ipa(w: usize, ctx: &Ctx) -> u64 {
    match w {
        win::SCRATCH | win::SCRATCH_EL0 => ctx.scratch_ipa,
        win::EL0_CODE => addr(fuzz_el0_page),
        _ => 0,
    }
}
