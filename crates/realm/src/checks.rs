//! The checks REC 0 runs, in order, each printing `ok: …` or `FAILED: …`.

use crate::console::{self, UARTDR, UARTFR};
use crate::layout::*;
use crate::println;
use cca_abi::psci::{self, PsciStatus};
use cca_abi::rmi::HashAlgorithm;
use cca_abi::rsi::{
    self, RsiStatus, HOST_CALL_NR_GPRS, MEASUREMENT_SIZE, RSI_VERSION_1_0, RSI_VERSION_1_1,
};
use cca_measure::Measurement;
use cca_rsi::{
    hash_algorithm, AffinityState, Conduit, Error, Granule, PsciError, Ripas, Rsi, RsiHostCall,
    RsiRealmConfig, RsiResponse, SetRipas, Smc, TokenStep, VersionError,
};
use core::fmt::{self, Display as _};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use fw_support::read_sysreg;

static PASSED: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);

/// Checks passed so far.
pub fn passed() -> u64 {
    PASSED.load(Ordering::Relaxed)
}

/// Checks failed so far.
pub fn failed() -> u64 {
    FAILED.load(Ordering::Relaxed)
}

/// Records and prints one check.
pub fn check(ok: bool, what: fmt::Arguments) {
    if ok {
        PASSED.fetch_add(1, Ordering::Relaxed);
        println!("  ok: {what}");
    } else {
        FAILED.fetch_add(1, Ordering::Relaxed);
        println!("  FAILED: {what}");
    }
}

/// Prints a section heading.
pub fn section(name: &str) {
    println!("-- {name}");
}

/// `major.minor` of an interface version.
struct V(u64);

impl fmt::Display for V {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, minor) = cca_abi::version_parts(self.0);
        write!(f, "{major}.{minor}")
    }
}

/// Bytes as hex.
struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// x0 of a raw call, decoded for printing.
struct Status(u64);

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match RsiStatus::from_reg(self.0) {
            Some(s) => f.write_str(s.name()),
            None if self.0 == u64::MAX => f.write_str("SMC_UNKNOWN"),
            None => write!(f, "{:#x}", self.0),
        }
    }
}

/// Formats with a closure.
struct Fmt<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result>(F);

impl<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result> fmt::Display for Fmt<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.0)(f)
    }
}

/// A value result as `0x…` or the error.
fn hex_or_error(r: cca_rsi::Result<u64>) -> impl fmt::Display {
    Fmt(move |f| match r {
        Ok(v) => write!(f, "{v:#x}"),
        Err(e) => e.fmt(f),
    })
}

fn ripas_name(r: Ripas) -> &'static str {
    match r {
        Ripas::Empty => "EMPTY",
        Ripas::Ram => "RAM",
        Ripas::Destroyed => "DESTROYED",
        Ripas::Dev => "DEV",
    }
}

/// The RIPAS of a range as `uniform_ripas` found it.
fn uniform_name(r: cca_rsi::Result<Option<Ripas>>) -> impl fmt::Display {
    Fmt(move |f| match r {
        Ok(Some(r)) => f.write_str(ripas_name(r)),
        Ok(None) => f.write_str("mixed RIPAS"),
        Err(e) => e.fmt(f),
    })
}

/// `AFFINITY_INFO` results by name.
fn affinity_name(r: Result<AffinityState, PsciError>) -> impl fmt::Display {
    Fmt(move |f| match r {
        Ok(AffinityState::On) => f.write_str("ON"),
        Ok(AffinityState::Off) => f.write_str("OFF"),
        Ok(AffinityState::OnPending) => f.write_str("ON_PENDING"),
        Err(e) => f.write_str(psci_name(Err(e))),
    })
}

/// What REC 1 reports to REC 0 (written by REC 1 before `CPU_OFF`).
static REC1_RAN: AtomicBool = AtomicBool::new(false);
static REC1_SEEN_CONTEXT: AtomicU64 = AtomicU64::new(0);
static REC1_SEEN_MPIDR: AtomicU64 = AtomicU64::new(u64::MAX);
static REC1_VERSION_X0: AtomicU64 = AtomicU64::new(u64::MAX);

/// The granule `RSI_REALM_CONFIG` fills.
static CONFIG: spin::Mutex<RsiRealmConfig> = spin::Mutex::new(RsiRealmConfig::ZEROED);

/// Buffer for the attestation token.
static TOKEN: spin::Mutex<[Granule; 4]> = spin::Mutex::new([Granule::ZEROED; 4]);

/// The affinity fields of an MPIDR (Aff3, Aff2, Aff1, Aff0).
fn affinity(mpidr: u64) -> u64 {
    mpidr & 0xff_00ff_ffff
}

/// Runs every check on REC 0. `x0` is x0 at the realm's entry.
pub fn run(x0: u64) {
    let mut rsi = Rsi::new(Smc);
    section("entry state");
    let mpidr = read_sysreg!(mpidr_el1);
    check(
        x0 == 0 && affinity(mpidr) == REC0_MPIDR,
        format_args!("REC 0 entered at IPA 0 with x0 = {x0:#x}, MPIDR_EL1 = {mpidr:#x}"),
    );
    version_and_features(&mut rsi);
    let algo = realm_config(&mut rsi);
    measurements(&mut rsi, algo);
    ripas(&mut rsi);
    host_call(&mut rsi);
    attestation(&mut rsi, algo);
    psci_checks(&mut rsi);
    crate::gic::timer_check();
    mmio();
}

#[inline(never)]
fn version_and_features(rsi: &mut Rsi<Smc>) {
    section("RSI version and features");
    match rsi.version(RSI_VERSION_1_1) {
        Ok(r) => check(
            r.lower == RSI_VERSION_1_1 && r.higher == RSI_VERSION_1_1,
            format_args!(
                "RSI_VERSION(1.1) -> SUCCESS, x1 = {}, x2 = {}",
                V(r.lower),
                V(r.higher)
            ),
        ),
        Err(e) => check(false, format_args!("RSI_VERSION(1.1) -> {e}")),
    }
    match rsi.version(cca_abi::version(2, 0)) {
        Err(VersionError::Unsupported(r)) => check(
            r.lower == RSI_VERSION_1_1 && r.higher == RSI_VERSION_1_1,
            format_args!(
                "RSI_VERSION(2.0) -> ERROR_INPUT, x1 = {}, x2 = {} (the highest)",
                V(r.lower),
                V(r.higher)
            ),
        ),
        Ok(r) => check(
            false,
            format_args!(
                "RSI_VERSION(2.0) -> SUCCESS ({}, {})",
                V(r.lower),
                V(r.higher)
            ),
        ),
        Err(e) => check(false, format_args!("RSI_VERSION(2.0) -> {e}")),
    }
    match rsi.version(RSI_VERSION_1_0) {
        Ok(r) => check(
            r.lower == RSI_VERSION_1_0 && r.higher == RSI_VERSION_1_1,
            format_args!(
                "RSI_VERSION(1.0) -> SUCCESS, x1 = {}, x2 = {}",
                V(r.lower),
                V(r.higher)
            ),
        ),
        Err(e) => check(false, format_args!("RSI_VERSION(1.0) -> {e}")),
    }
    let f0 = rsi.features(rsi::FEATURE_REGISTER_0);
    check(
        f0 == Ok(0),
        format_args!(
            "RSI_FEATURES(0) -> {} (no DA, MRO or ATS in this realm)",
            hex_or_error(f0)
        ),
    );
    let f1 = rsi.features(1);
    let fx = rsi.features(0xffff);
    check(
        f1 == Ok(0) && fx == Ok(0),
        format_args!(
            "RSI_FEATURES(1) -> {}, RSI_FEATURES(0xffff) -> {} (undefined: 0)",
            hex_or_error(f1),
            hex_or_error(fx)
        ),
    );
    result_registers(
        u64::from(rsi::VERSION),
        RSI_VERSION_1_0,
        RSI_VERSION_1_1,
        "RSI_VERSION(1.0)",
    );
    result_registers(u64::from(rsi::FEATURES), 0, 0, "RSI_FEATURES(0)");
}

/// The whole register file of a call the RMM may answer on its vector's fast path: x0 =
/// SUCCESS, x1 and x2 the results, x3 = 0, x4..x17 as they were (each with its own value).
fn result_registers(fid: u64, x1: u64, x2: u64, what: &str) {
    let mut regs = [0u64; cca_rsi::NUM_REGS];
    regs[0] = fid;
    regs[1] = x1;
    for (i, r) in regs.iter_mut().enumerate().skip(2) {
        *r = 0x5a5a_0000_0000_0000 | (i as u64) << 8 | i as u64;
    }
    let out = Smc.smc(regs);
    let kept = (4..cca_rsi::NUM_REGS).all(|i| out[i] == regs[i]);
    check(
        out[0] == RsiStatus::Success.to_reg()
            && out[1] == x1
            && out[2] == x2
            && out[3] == 0
            && kept,
        format_args!(
            "{what}: x0..x3 = {:#x} {:#x} {:#x} {:#x}, x4..x17 {}",
            out[0],
            out[1],
            out[2],
            out[3],
            if kept { "kept" } else { "changed" }
        ),
    );
}

/// Returns the realm's hash algorithm (SHA-256 if `REALM_CONFIG` failed).
#[inline(never)]
fn realm_config(rsi: &mut Rsi<Smc>) -> HashAlgorithm {
    section("RSI_REALM_CONFIG");
    let mut cfg = CONFIG.lock();
    // Fields the RMM must write start as values it never writes.
    cfg.ipa_width = u64::MAX;
    cfg.hash_algo = 0xff;
    let mut algo = HashAlgorithm::Sha256;
    match rsi.realm_config(&mut cfg) {
        Ok(()) => {
            let a = hash_algorithm(cfg.hash_algo);
            check(
                cfg.ipa_width == IPA_WIDTH && a == Some(HashAlgorithm::Sha256),
                format_args!(
                    "REALM_CONFIG -> SUCCESS: ipa_width = {}, hash_algo = {} ({})",
                    cfg.ipa_width,
                    cfg.hash_algo,
                    match a {
                        Some(HashAlgorithm::Sha256) => "SHA-256",
                        Some(HashAlgorithm::Sha384) => "SHA-384",
                        Some(HashAlgorithm::Sha512) => "SHA-512",
                        None => "undefined",
                    }
                ),
            );
            algo = a.unwrap_or(algo);
            println!(
                "     num_aux_planes = {}, gicv3_vtr = {:#x}, ats_plane = {}, rpv = {}",
                cfg.num_aux_planes,
                cfg.gicv3_vtr,
                cfg.ats_plane,
                Hex(&cfg.rpv[..16])
            );
        }
        Err(e) => check(false, format_args!("REALM_CONFIG(aligned) -> {e}")),
    }
    let ipa = rsi.conduit().ipa_of(core::ptr::from_mut(&mut cfg) as usize);
    let x0 = rsi.call(rsi::REALM_CONFIG, &[ipa + 8])[0];
    check(
        x0 == RsiStatus::ErrorInput.to_reg(),
        format_args!(
            "REALM_CONFIG(unaligned IPA {:#x}) -> {}",
            ipa + 8,
            Status(x0)
        ),
    );
    let x0 = rsi.call(rsi::REALM_CONFIG, &[UNPROTECTED])[0];
    check(
        x0 == RsiStatus::ErrorInput.to_reg(),
        format_args!(
            "REALM_CONFIG(IPA {UNPROTECTED:#x}, outside the protected range) -> {}",
            Status(x0)
        ),
    );
    algo
}

#[inline(never)]
fn measurements(rsi: &mut Rsi<Smc>, algo: HashAlgorithm) {
    section("measurements");
    let len = cca_measure::hash_len(algo);
    match rsi.measurement_read(rsi::RIM_INDEX) {
        Ok(rim) => check(
            rim[..len].iter().any(|&b| b != 0) && rim[len..].iter().all(|&b| b == 0),
            format_args!(
                "MEASUREMENT_READ(0) -> RIM {} (zeros after the hash)",
                Hex(&rim[..len])
            ),
        ),
        Err(e) => check(false, format_args!("MEASUREMENT_READ(0) -> {e}")),
    }
    let r = rsi.measurement_read(5);
    check(
        r == Err(Error::Status(RsiStatus::ErrorInput)),
        format_args!("MEASUREMENT_READ(5) -> {}", Res(r.map(|_| ()))),
    );

    let value: [u8; 32] = *b"cca realm payload: REM[1] value!";
    let before = match rsi.measurement_read(1) {
        Ok(m) => m.0,
        Err(e) => {
            check(false, format_args!("MEASUREMENT_READ(1) -> {e}"));
            return;
        }
    };
    let mut expected = Measurement { algo, slot: before };
    expected.extend_rem(&value);
    let r = rsi.measurement_extend(1, &value);
    let after = rsi.measurement_read(1).map(|m| m.0);
    check(
        r.is_ok() && after == Ok(expected.slot),
        format_args!(
            "MEASUREMENT_EXTEND(1, 32 bytes) -> {}, then REM[1] = H(REM[1] || value) = {}",
            Res(r),
            match &after {
                Ok(m) => Hex(&m[..len]),
                Err(_) => Hex(&[]),
            }
        ),
    );
    let r = rsi.measurement_extend(0, &value);
    check(
        r == Err(Error::Status(RsiStatus::ErrorInput)),
        format_args!("MEASUREMENT_EXTEND(0 = the RIM) -> {}", Res(r)),
    );
    let mut args = [0u64; 10];
    args[0] = 1;
    args[1] = MEASUREMENT_SIZE as u64 + 1;
    let x0 = rsi.call(rsi::MEASUREMENT_EXTEND, &args)[0];
    check(
        x0 == RsiStatus::ErrorInput.to_reg(),
        format_args!("MEASUREMENT_EXTEND(1, size 65) -> {}", Status(x0)),
    );
    let again = rsi.measurement_read(1).map(|m| m.0);
    check(
        again == Ok(expected.slot),
        format_args!("REM[1] unchanged by the rejected extends"),
    );
}

/// A unit result, printed as `SUCCESS` or the error.
struct Res(cca_rsi::Result<()>);

impl fmt::Display for Res {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Ok(()) => f.write_str("RSI_SUCCESS"),
            Err(e) => e.fmt(f),
        }
    }
}

/// The RIPAS of `[base, top)` if it is uniform (`None` if it is mixed), with as many
/// `IPA_STATE_GET` calls as the RMM needs.
fn uniform_ripas(rsi: &mut Rsi<Smc>, base: u64, top: u64) -> cca_rsi::Result<Option<Ripas>> {
    let mut at = base;
    let mut ripas = None;
    while at < top {
        let region = rsi.ipa_state_get(at, top)?;
        match ripas {
            None => ripas = Some(region.ripas),
            Some(r) if r != region.ripas => return Ok(None),
            Some(_) => {}
        }
        at = region.top;
    }
    Ok(ripas)
}

fn ripas_check(rsi: &mut Rsi<Smc>, (base, top): (u64, u64), want: Ripas, why: &str) -> bool {
    let r = uniform_ripas(rsi, base, top);
    let ok = r == Ok(Some(want));
    check(
        ok,
        format_args!(
            "IPA_STATE_GET [{base:#x}, {top:#x}) -> {} ({why})",
            uniform_name(r)
        ),
    );
    ok
}

#[inline(never)]
fn ripas(rsi: &mut Rsi<Smc>) {
    section("RIPAS");
    ripas_check(rsi, PROTECTED_RAM, Ripas::Ram, "the image's RAM");
    ripas_check(rsi, EMPTY_RAM, Ripas::Empty, "nothing there yet");

    let (base, top) = NEW_RAM;
    let r = rsi.set_ripas(base, top, Ripas::Ram, false);
    check(
        r == Ok(SetRipas::Done),
        format_args!(
            "IPA_STATE_SET [{base:#x}, {top:#x}) to RAM -> {} (the host accepts)",
            Fmt(|f| match r {
                Ok(SetRipas::Done) => f.write_str("ACCEPT, whole range changed"),
                Ok(SetRipas::Rejected { at }) => write!(f, "REJECT at {at:#x}"),
                Err(e) => e.fmt(f),
            })
        ),
    );
    if ripas_check(rsi, NEW_RAM, Ripas::Ram, "after the change") {
        new_ram_check();
    } else {
        check(
            false,
            format_args!("new RAM not accessed: its RIPAS is not RAM"),
        );
    }

    let (base, top) = REJECTED_RAM;
    let r = rsi.ipa_state_set(base, top, Ripas::Ram, false);
    check(
        matches!(r, Ok(c) if c.response == RsiResponse::Reject && c.next == base),
        format_args!(
            "IPA_STATE_SET [{base:#x}, {top:#x}) to RAM -> {} (the host rejects)",
            Fmt(|f| match r {
                Ok(c) => write!(
                    f,
                    "x1 = {:#x}, x2 = {}",
                    c.next,
                    match c.response {
                        RsiResponse::Accept => "ACCEPT",
                        RsiResponse::Reject => "REJECT",
                    }
                ),
                Err(e) => e.fmt(f),
            })
        ),
    );
    ripas_check(
        rsi,
        REJECTED_RAM,
        Ripas::Empty,
        "unchanged by the rejected request",
    );

    let r = rsi.ipa_state_set(NEW_RAM.1, NEW_RAM.0, Ripas::Ram, false);
    check(
        r == Err(Error::Status(RsiStatus::ErrorInput)),
        format_args!(
            "IPA_STATE_SET with base {:#x} > top {:#x} -> {}",
            NEW_RAM.1,
            NEW_RAM.0,
            Res(r.map(|_| ()))
        ),
    );
}

/// Reads the memory that just became RAM (zeros), writes a pattern and reads it back.
#[inline(never)]
fn new_ram_check() {
    let (base, top) = NEW_RAM;
    let words = ((top - base) / 8) as usize;
    let pattern = |i: usize| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xCCA0;
    let p = base as *mut u64;
    let mut zero = true;
    let mut same = true;
    for i in 0..words {
        // SAFETY: [2 MiB, 2 MiB + 64 KiB) is mapped read-write in stage 1, its RIPAS is RAM
        // (checked by the caller) and no Rust object lives there.
        unsafe {
            zero &= p.add(i).read_volatile() == 0;
            p.add(i).write_volatile(pattern(i));
        }
    }
    for i in 0..words {
        // SAFETY: as above.
        same &= unsafe { p.add(i).read_volatile() } == pattern(i);
    }
    check(
        zero && same,
        format_args!(
            "new RAM [{base:#x}, {top:#x}): read as zeros ({zero}), holds a written pattern ({same})"
        ),
    );
}

#[inline(never)]
fn host_call(rsi: &mut Rsi<Smc>) {
    section("RSI_HOST_CALL");
    let mut gprs = [0u64; HOST_CALL_NR_GPRS];
    for (i, g) in gprs.iter_mut().enumerate() {
        *g = 0xCCA1_0000_0000_0000 | ((i as u64) << 8);
    }
    gprs[HOST_CALL_NR_GPRS - 1] = u64::MAX;
    let mut call = RsiHostCall::new(HOST_CALL_ECHO, gprs);
    let r = rsi.host_call(&mut call);
    let echoed = call
        .gprs
        .iter()
        .zip(gprs)
        .all(|(&got, sent)| got == sent.wrapping_add(1));
    check(
        r.is_ok() && echoed && call.imm == HOST_CALL_ECHO,
        format_args!(
            "HOST_CALL(imm {HOST_CALL_ECHO:#x}, 31 gprs) -> {}, host answered each gpr + 1 \
             (gprs[0] = {:#x}, gprs[30] = {:#x})",
            Res(r),
            call.gprs[0],
            call.gprs[30]
        ),
    );
}

/// `RSI_HOST_CALL` immediate: one chunk of the attestation token for the host. `gprs[0]` =
/// the token's length, `gprs[1]` = this chunk's offset, `gprs[2]` = its length (at most
/// [`TOKEN_CHUNK`]), `gprs[3..31]` = its bytes, little-endian. The host answers `gprs[0]` =
/// the bytes it holds in order.
pub const HOST_CALL_TOKEN: u16 = 0xCCA3;
/// Token bytes per host call.
pub const TOKEN_CHUNK: usize = 28 * 8;

/// Counter ticks of the last token: INIT, the CONTINUEs that only signed, all CONTINUEs.
static TOKEN_TICKS: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];

/// The counter ticks of the payload's attestation token: `(INIT, signing, INIT + every
/// CONTINUE)`, reported to the host with the RSI timings.
pub fn token_ticks() -> [u64; 3] {
    core::array::from_fn(|i| TOKEN_TICKS[i].load(Ordering::Relaxed))
}

/// A challenge nobody can have asked for before: SHA-512 of the counter and this realm's
/// RIM.
fn fresh_challenge(rim: &[u8; 64]) -> [u8; 64] {
    let mut h = cca_measure::Hasher::new(HashAlgorithm::Sha512);
    h.update(b"cca-rs realm payload challenge");
    h.update(&counter().to_le_bytes());
    h.update(rim);
    h.finalize()
}

/// The byte at `i` of the token buffer.
fn token_byte(buf: &[Granule], i: usize) -> u8 {
    buf[i / 4096].0[i % 4096]
}

/// True when `needle` occurs in the first `len` bytes of the token buffer.
fn token_contains(buf: &[Granule], len: usize, needle: &[u8]) -> bool {
    (0..=len.saturating_sub(needle.len())).any(|i| {
        needle
            .iter()
            .enumerate()
            .all(|(j, &b)| token_byte(buf, i + j) == b)
    })
}

/// INIT then CONTINUE granule after granule, timing both; the token's length.
fn fetch_token(
    rsi: &mut Rsi<Smc>,
    challenge: &[u8; 64],
    buf: &mut [Granule],
) -> cca_rsi::Result<usize> {
    let t0 = counter();
    rsi.attestation_token_init(challenge)?;
    let t1 = counter();
    let mut signing = 0;
    let mut total = 0;
    for granule in buf.iter_mut() {
        let mut offset = 0;
        while offset < 4096 {
            let t = counter();
            let step = rsi.attestation_token_continue(granule, offset, 4096 - offset)?;
            let (done, written) = match step {
                TokenStep::Done { written } => (true, written),
                TokenStep::Incomplete { written } => (false, written),
            };
            if total == 0 && written == 0 {
                signing += counter() - t;
            }
            offset += written;
            total += written;
            if done {
                let t2 = counter();
                TOKEN_TICKS[0].store(t1 - t0, Ordering::Relaxed);
                TOKEN_TICKS[1].store(signing, Ordering::Relaxed);
                TOKEN_TICKS[2].store(t2 - t0, Ordering::Relaxed);
                return Ok(total);
            }
        }
    }
    Err(Error::BufferTooSmall)
}

/// Hands the token to the host, [`TOKEN_CHUNK`] bytes per host call; true if the host
/// acknowledged all of it.
fn hand_to_host(rsi: &mut Rsi<Smc>, buf: &[Granule], len: usize) -> (bool, usize) {
    let mut calls = 0;
    let mut acked = 0;
    let mut off = 0;
    while off < len {
        let n = TOKEN_CHUNK.min(len - off);
        let mut gprs = [0u64; HOST_CALL_NR_GPRS];
        gprs[0] = len as u64;
        gprs[1] = off as u64;
        gprs[2] = n as u64;
        for i in 0..n {
            gprs[3 + i / 8] |= u64::from(token_byte(buf, off + i)) << (8 * (i % 8));
        }
        let mut call = RsiHostCall::new(HOST_CALL_TOKEN, gprs);
        calls += 1;
        if rsi.host_call(&mut call).is_err() {
            return (false, calls);
        }
        acked = call.gprs[0];
        off += n;
    }
    (acked == len as u64, calls)
}

#[inline(never)]
fn attestation(rsi: &mut Rsi<Smc>, algo: HashAlgorithm) {
    section("attestation");
    let rim = rsi
        .measurement_read(rsi::RIM_INDEX)
        .map_or([0; 64], |m| m.0);
    let challenge = fresh_challenge(&rim);
    let bound = match rsi.attestation_token_init(&challenge) {
        Ok(b) => b,
        Err(e) => {
            check(false, format_args!("ATTESTATION_TOKEN_INIT -> {e}"));
            return;
        }
    };
    check(
        bound == 4096,
        format_args!("ATTESTATION_TOKEN_INIT(fresh challenge) -> SUCCESS, at most {bound} bytes"),
    );
    let mut buf = TOKEN.lock();
    let base = buf.as_ptr() as u64;
    let r = rsi.call(rsi::ATTESTATION_TOKEN_CONTINUE, &[base + 8, 0, 8]);
    let r2 = rsi.call(rsi::ATTESTATION_TOKEN_CONTINUE, &[base, 4000, 97]);
    check(
        r[0] == RsiStatus::ErrorInput.to_reg() && r2[0] == RsiStatus::ErrorInput.to_reg(),
        format_args!(
            "ATTESTATION_TOKEN_CONTINUE at an unaligned IPA -> {}, past the granule -> {}",
            Status(r[0]),
            Status(r2[0])
        ),
    );
    let n = match fetch_token(rsi, &challenge, &mut buf[..]) {
        Ok(n) => n,
        Err(e) => {
            check(
                false,
                format_args!("ATTESTATION_TOKEN_CONTINUE loop -> {e}"),
            );
            return;
        }
    };
    let len = cca_measure::hash_len(algo);
    let mut tagged_challenge = [0u8; 66];
    tagged_challenge[..2].copy_from_slice(&[0x58, 0x40]);
    tagged_challenge[2..].copy_from_slice(&challenge);
    let mut tagged_rim = [0u8; 66];
    tagged_rim[..2].copy_from_slice(&[0x58, len as u8]);
    tagged_rim[2..2 + len].copy_from_slice(&rim[..len]);
    let tag = [
        token_byte(&buf[..], 0),
        token_byte(&buf[..], 1),
        token_byte(&buf[..], 2),
    ];
    println!("  attestation challenge: {}", Hex(&challenge));
    check(
        n > 0
            && n as u64 <= bound
            && (tag == [0xD9, 0x03, 0x8B] || tag == [0xD9, 0x01, 0x8F])
            && token_contains(&buf[..], n, &tagged_challenge)
            && token_contains(&buf[..], n, &tagged_rim[..2 + len]),
        format_args!(
            "token: {n} bytes (bound {bound}), CCA collection tag {}, holding the RIM and the \
             challenge",
            if tag == [0xD9, 0x01, 0x8F] {
                "399"
            } else {
                "907"
            }
        ),
    );
    let r = rsi.attestation_token_continue(&mut buf[0], 0, 4096);
    check(
        r == Err(Error::Status(RsiStatus::ErrorState)),
        format_args!(
            "ATTESTATION_TOKEN_CONTINUE after the last byte -> {}",
            Res(r.map(|_| ()))
        ),
    );
    let (acked, calls) = hand_to_host(rsi, &buf[..], n);
    check(
        acked,
        format_args!(
            "HOST_CALL(imm {HOST_CALL_TOKEN:#x}) x {calls}: the host holds the {n}-byte token"
        ),
    );
}

/// A PSCI result printed as its name.
fn psci_name(r: Result<(), PsciError>) -> &'static str {
    match r {
        Ok(()) => "SUCCESS",
        Err(PsciError::Status(PsciStatus::NotSupported)) => "NOT_SUPPORTED",
        Err(PsciError::Status(PsciStatus::InvalidParameters)) => "INVALID_PARAMETERS",
        Err(PsciError::Status(PsciStatus::Denied)) => "DENIED",
        Err(PsciError::Status(PsciStatus::AlreadyOn)) => "ALREADY_ON",
        Err(PsciError::Status(PsciStatus::InvalidAddress)) => "INVALID_ADDRESS",
        Err(PsciError::Status(_)) => "another PSCI error",
        Err(PsciError::Unknown(_)) => "an undefined value",
    }
}

#[inline(never)]
fn psci_checks(rsi: &mut Rsi<Smc>) {
    section("PSCI");
    let v = rsi.smccc_version();
    check(
        matches!(v, Ok(v) if v >= cca_abi::version(1, 2)),
        format_args!(
            "SMCCC_VERSION -> {} (1.2 or later: x0-x17 carry arguments and results)",
            V(v.unwrap_or(0))
        ),
    );
    let v = rsi.psci_version();
    check(
        v == Ok(psci::PSCI_VERSION_1_1),
        format_args!("PSCI_VERSION -> {}", V(v.unwrap_or(0))),
    );
    let supported = [
        psci::CPU_ON_64,
        psci::CPU_OFF,
        psci::AFFINITY_INFO_64,
        psci::SYSTEM_OFF,
        psci::SYSTEM_RESET,
        psci::FEATURES,
    ];
    let all = supported.iter().all(|&f| rsi.psci_features(f).is_ok());
    check(
        all,
        format_args!(
            "PSCI_FEATURES -> SUCCESS for CPU_ON, CPU_OFF, AFFINITY_INFO, SYSTEM_OFF, \
             SYSTEM_RESET, PSCI_FEATURES"
        ),
    );
    let r = rsi.psci_features(psci::MIGRATE_INFO_TYPE).map(|_| ());
    check(
        r == Err(PsciError::Status(PsciStatus::NotSupported)),
        format_args!("PSCI_FEATURES(MIGRATE_INFO_TYPE) -> {}", psci_name(r)),
    );

    let a = rsi.affinity_info(REC0_MPIDR, 0);
    check(
        a == Ok(AffinityState::On),
        format_args!("AFFINITY_INFO(REC 0 = itself) -> {}", affinity_name(a)),
    );
    let a = rsi.affinity_info(REC1_MPIDR, 0);
    check(
        a == Ok(AffinityState::Off),
        format_args!("AFFINITY_INFO(REC 1) before CPU_ON -> {}", affinity_name(a)),
    );
    let entry = crate::entry::secondary_entry();
    let r = rsi.cpu_on(NO_REC_MPIDR, entry, REC1_CONTEXT);
    check(
        r == Err(PsciError::Status(PsciStatus::InvalidParameters)),
        format_args!(
            "CPU_ON(MPIDR {NO_REC_MPIDR}, no such REC) -> {}",
            psci_name(r)
        ),
    );
    let r = rsi.cpu_on(REC1_MPIDR, UNPROTECTED, REC1_CONTEXT);
    check(
        r == Err(PsciError::Status(PsciStatus::InvalidAddress)),
        format_args!(
            "CPU_ON(REC 1, entry {UNPROTECTED:#x} outside the protected range) -> {}",
            psci_name(r)
        ),
    );
    let r = rsi.cpu_on(REC0_MPIDR, entry, REC1_CONTEXT);
    check(
        r == Err(PsciError::Status(PsciStatus::AlreadyOn)),
        format_args!("CPU_ON(REC 0 = itself) -> {}", psci_name(r)),
    );

    let r = rsi.cpu_on(REC1_MPIDR, entry, REC1_CONTEXT);
    check(
        r.is_ok(),
        format_args!(
            "CPU_ON(REC 1, entry {entry:#x}, context {REC1_CONTEXT:#x}) -> {}",
            psci_name(r)
        ),
    );
    if r.is_err() {
        return;
    }
    // REC 1 prints while REC 0 polls silently: REC 0 never holds the console lock here.
    let freq = read_sysreg!(cntfrq_el0).max(1);
    let deadline = crate::gic::counter().saturating_add(freq * 10);
    let mut polls = 0u64;
    let state = loop {
        polls += 1;
        match rsi.affinity_info(REC1_MPIDR, 0) {
            Ok(AffinityState::Off) => break Ok(AffinityState::Off),
            Ok(_) if crate::gic::counter() < deadline => {
                // About 100 us between polls: each one is an exit to the host.
                let until = crate::gic::counter() + freq / 10_000;
                while crate::gic::counter() < until {
                    core::hint::spin_loop();
                }
            }
            other => break other,
        }
    };
    check(
        state == Ok(AffinityState::Off),
        format_args!(
            "AFFINITY_INFO(REC 1) polled until OFF: {} after {polls} calls",
            affinity_name(state)
        ),
    );
    let ran = REC1_RAN.load(Ordering::Acquire);
    let ctx = REC1_SEEN_CONTEXT.load(Ordering::Relaxed);
    let mpidr = REC1_SEEN_MPIDR.load(Ordering::Relaxed);
    let x0 = REC1_VERSION_X0.load(Ordering::Relaxed);
    check(
        ran && ctx == REC1_CONTEXT
            && affinity(mpidr) == REC1_MPIDR
            && x0 == RsiStatus::Success.to_reg(),
        format_args!(
            "REC 1 ran (context {ctx:#x}, MPIDR_EL1 {mpidr:#x}, RSI_VERSION(1.1) -> {}) and \
             powered itself off",
            Status(x0)
        ),
    );
}

#[inline(never)]
fn mmio() {
    section("MMIO (emulated by the host)");
    let fr = console::read(UARTFR);
    let dr = console::read(UARTDR);
    check(
        fr & (1 << 5) == 0,
        format_args!(
            "UART reads: UARTFR = {fr:#x} (TXFF clear), UARTDR = {dr:#x}; every line here is \
             UARTDR writes"
        ),
    );
}

/// What REC 1 does after `CPU_ON`: report, `RSI_VERSION`, `CPU_OFF`.
pub fn secondary(context: u64) -> ! {
    let mut rsi = Rsi::new(Smc);
    let mpidr = read_sysreg!(mpidr_el1);
    REC1_SEEN_CONTEXT.store(context, Ordering::Relaxed);
    REC1_SEEN_MPIDR.store(mpidr, Ordering::Relaxed);
    println!("REC 1 up at EL1: MPIDR_EL1 = {mpidr:#x}, context id = {context:#x}");
    let x0 = rsi.call(rsi::VERSION, &[RSI_VERSION_1_1])[0];
    REC1_VERSION_X0.store(x0, Ordering::Relaxed);
    println!(
        "REC 1: RSI_VERSION(1.1) -> {}; calling PSCI CPU_OFF",
        Status(x0)
    );
    REC1_RAN.store(true, Ordering::Release);
    let r = rsi.cpu_off();
    crate::fatal::report(format_args!("CPU_OFF returned on REC 1 ({r:?})"))
}

fn counter() -> u64 {
    // SAFETY: ISB orders the counter read after the preceding calls; no memory effects.
    unsafe { core::arch::asm!("isb", options(nostack)) };
    read_sysreg!(cntvct_el0)
}

/// The fewest counter ticks `round` took in [`TIMING_ROUNDS`] runs: a round that contains an
/// exit to the host (its quantum timer, an interrupt) costs that exit too, and is not the
/// fewest, so the result is the calls' own cost, the same from run to run.
fn fewest_ticks(mut round: impl FnMut()) -> u64 {
    let mut best = u64::MAX;
    for _ in 0..TIMING_ROUNDS {
        let t0 = counter();
        round();
        best = best.min(counter().wrapping_sub(t0));
    }
    best
}

/// Rounds of each RSI timing (see [`fewest_ticks`]).
const TIMING_ROUNDS: u32 = 8;

/// Times RSI calls the RMM answers without leaving the Realm world (64 calls a round, the
/// fastest of [`TIMING_ROUNDS`] rounds) and reports the counts and counter ticks to the host
/// (host call 0xCCA2), which turns them into instructions per call under `-icount`.
fn report_rsi_timing() {
    const N: u64 = 64;
    let mut rsi = Rsi::new(Smc);
    let version = fewest_ticks(|| {
        for _ in 0..N {
            let _ = rsi.version(cca_abi::rsi::RSI_VERSION_1_1);
        }
    });
    let ipa_state = fewest_ticks(|| {
        for _ in 0..N {
            let _ = rsi.ipa_state_get(0, 0x1000);
        }
    });
    let config = {
        let mut cfg = CONFIG.lock();
        fewest_ticks(|| {
            for _ in 0..N {
                let _ = rsi.realm_config(&mut cfg);
            }
        })
    };
    let read = fewest_ticks(|| {
        for _ in 0..N {
            let _ = rsi.measurement_read(rsi::RIM_INDEX);
        }
    });
    // REM 3 (index 4): no check of this payload or of the host reads it, and the token was
    // taken before (`attestation`). A 32-byte value, the size of a SHA-256 digest.
    let mut i = 0u8;
    let extend = fewest_ticks(|| {
        for _ in 0..N {
            let _ = rsi.measurement_extend(4, &[i; 32]);
            i = i.wrapping_add(1);
        }
    });
    let mut gprs = [0u64; cca_abi::rsi::HOST_CALL_NR_GPRS];
    let freq = read_sysreg!(cntfrq_el0);
    gprs[..6].copy_from_slice(&[N, version, freq, N, ipa_state, freq]);
    // The attestation token: the whole of it (INIT and every CONTINUE), the CONTINUEs that
    // only signed, INIT alone.
    let [init, sign, whole] = token_ticks();
    gprs[6..15].copy_from_slice(&[1, whole, freq, 1, sign, freq, 1, init, freq]);
    // REALM_CONFIG, MEASUREMENT_READ (the RIM), MEASUREMENT_EXTEND (32 bytes).
    gprs[15..24].copy_from_slice(&[N, config, freq, N, read, freq, N, extend, freq]);
    let mut call = RsiHostCall::new(crate::layout::HOST_CALL_TIMING, gprs);
    let _ = rsi.host_call(&mut call);
}

/// Prints the verdict, tells the host and powers the realm off.
pub fn finish() -> ! {
    report_rsi_timing();
    let (p, f) = (passed(), failed());
    if f == 0 {
        println!("REALM RESULT: PASS ({p} checks)");
    } else {
        println!("REALM RESULT: FAIL ({f} of {} checks failed)", p + f);
    }
    crate::fatal::end(p, f)
}
