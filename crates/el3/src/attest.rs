//! EL3's attestation services: measured boot of the three images, the Realm Attestation Key
//! made from `RNDR`, and the RMM-EL3 calls `RMM_ATTEST_GET_REALM_KEY` and
//! `RMM_ATTEST_GET_PLAT_TOKEN` (the logic is `el3_core::attest`).
//!
//! Measured boot, before the RMM or the host runs ([`el3_core::attest::measure_image`]):
//! `BL31` is this monitor's flash image (code, read-only data and the initial data, up to
//! `__data_lma` + the size of `.data`), `RMM` the 16 MiB load window at `RMM_BASE`, `BL33`
//! the 16 MiB window at the host's entry point: each as far as the arm64 image header at its
//! start declares, the rest of the window cleared ([`past_image`], [`cleared`]), or without a
//! header up to the window's last non-zero byte ([`measure_image_in`]). The CPAK is the
//! build's development key (`build.rs`).
//!
//! Who does the work: the boot helper CPU ([`monitor::BOOT_HELPER`]) hashes, from the moment
//! the boot CPU's MMU is on ([`init`], [`boot_job`]), while the boot CPU builds the GPT,
//! clears the two load windows past their images and boots the RMM. Every part is a
//! [`Once`], so a CPU that needs a part first does it and one that finds it in progress
//! waits: the RMM's measurement and window before the RMM is entered ([`measure_rmm`]), the
//! host's before the host runs ([`host_ready`]), EL3's own measurement, the RAK at
//! `GET_REALM_KEY` and the platform token (signed ahead for the SHA-256 challenge) at
//! `GET_PLAT_TOKEN`, which our RMM makes when a realm first asks for a token; the helper
//! makes those three once the host runs ([`attestation_setup`]). With one CPU the boot CPU
//! does each part at those points. EL3's own image may be measured after the host has
//! started: it is the code EL3 runs from, so a change made to it before it is measured shows
//! in the measurement and one made after would go unseen whenever it was measured; measuring
//! it later loses nothing.

use crate::context::WorldCtx;
use crate::monitor::{self, BootJob};
use crate::platform::{NS_ENTRY, RMM_BASE, RMM_RESERVE_LOW, RMM_SHARED};
use core::sync::atomic::{AtomicBool, Ordering};

// The RMM's load window ends where EL3 starts handing out reserved memory.
const _: () = assert!(RMM_BASE + LOAD_WINDOW as u64 == RMM_RESERVE_LOW);
use cca_abi::el3::{El3Error, RMM_ATTEST_GET_PLAT_TOKEN, RMM_ATTEST_GET_REALM_KEY};
use el3_core::attest::{
    declared_len, measure_image_parts, public_key, Component, PlatformAttestation, RealmKey,
    COMPONENT_TYPES, IMAGE_HEADER_LEN, LOAD_WINDOW,
};
use el3_core::shared_work::Chunks;
use fw_support::println;
use fw_support::sysreg::CpuId;
use spin::{Mutex, Once};
use zerocopy::IntoBytes;

/// The development CPAK (see `build.rs`).
const CPAK: [u8; 48] = *include_bytes!(concat!(env!("OUT_DIR"), "/dev-cpak.bin"));
/// Its uncompressed SEC1 public key, derived by the build.
const CPAK_PUBLIC: [u8; 97] = *include_bytes!(concat!(env!("OUT_DIR"), "/dev-cpak-public.bin"));
/// Size of the host's measured load window.
const HOST_WINDOW: u64 = LOAD_WINDOW as u64;

/// The platform token's state ([`platform_attestation`]).
static ATTEST: Mutex<Option<PlatformAttestation>> = Mutex::new(None);
/// The RAK until the RMM has taken it ([`realm_key`]).
static KEY: Mutex<Option<RealmKey>> = Mutex::new(None);

unsafe extern "C" {
    static __data_lma: u8;
    static __data_start: u8;
    static __data_end: u8;
}

/// Bytes as hex.
struct Hex<'a>(&'a [u8]);

impl core::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Reads `RNDR`: `None` if the generator failed this time.
fn rndr() -> Option<u64> {
    let v: u64;
    let nzcv: u64;
    // SAFETY: RNDR (s3_3_c2_c4_0) reads the generator and sets NZCV; FEAT_RNG was checked.
    unsafe {
        core::arch::asm!(
            "mrs {v}, s3_3_c2_c4_0",
            "mrs {f}, nzcv",
            v = out(reg) v,
            f = out(reg) nzcv,
            options(nomem, nostack)
        );
    }
    (nzcv & (1 << 30) == 0).then_some(v)
}

fn random_scalar() -> Option<[u8; 48]> {
    let mut d = [0u8; 48];
    for chunk in d.chunks_mut(8) {
        let v = (0..64).find_map(|_| rndr())?;
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    Some(d)
}

/// The hashing engine in use ([`fw_support::sha2::init`], once).
static ENGINE: Once<&'static str> = Once::new();
static RMM_MEASUREMENT: Once<[u8; 32]> = Once::new();
static BL31_MEASUREMENT: Once<[u8; 32]> = Once::new();
static BL33_MEASUREMENT: Once<[u8; 32]> = Once::new();
/// The RMM's window past its image ([`rmm_clear_chunks`]).
static RMM_CLEAR: Once<Chunks> = Once::new();
/// The host's window past its image, in chunks any CPU may clear ([`bl33_clear_chunks`]).
static BL33_CLEAR: Once<Chunks> = Once::new();
/// Bytes per chunk of [`BL33_CLEAR`].
const CLEAR_CHUNK: usize = 1 << 20;
/// The RAK's public key, once the RAK is in [`KEY`] (`None`: there is no RAK).
static RAK_PUBLIC: Once<Option<[u8; 97]>> = Once::new();
/// Why there is no platform attestation state, once [`ATTEST`] is set up (`None`: it is).
static PREPARED: Once<Option<&'static str>> = Once::new();
/// Set once [`host_ready`] has run (at the RMM's cold boot; warm boots find it set).
static HOST_READY: Once<()> = Once::new();
/// Set once [`platform_ready`] has reported the attestation state.
static REPORTED: Once<()> = Once::new();

/// Set when there is a boot helper ([`init`]).
static HELPER: AtomicBool = AtomicBool::new(false);

/// Cold boot on the boot CPU, MMU on, before the GPT is built: offers the measured boot
/// ([`measure`]) to the boot helper CPU when there is one (`helper`), which does it while
/// this CPU builds the GPT and boots the RMM. Each part is a [`Once`]: a CPU that needs a
/// part the helper has not started does it itself, one the helper is doing waits.
pub fn init(helper: bool) {
    HELPER.store(helper, Ordering::Relaxed);
    if helper {
        monitor::offer_boot_job(BootJob::Measure);
    }
}

/// Runs a boot helper job.
pub fn boot_job(job: BootJob, id: &CpuId) {
    match job {
        BootJob::Measure => measure(id),
        BootJob::Attest => attestation_setup(id),
    }
}

/// The boot helper's measured boot, the hashing in the order it is needed: the RMM's image
/// (before the RMM runs, [`measure_rmm`]), then the host's (before the host runs,
/// [`host_ready`]) and the chunks of the host's window the boot CPU has not cleared. The
/// boot CPU clears the RMM's window past its image meanwhile and then chunks of the host's
/// ([`measure_rmm`]). The helper prints nothing: the boot CPU prints meanwhile, on the same
/// UART; [`measure_rmm`], [`host_ready`] and [`platform_ready`] report.
fn measure(id: &CpuId) {
    rmm_measurement(id);
    bl33_measurement(id);
    clear_help(bl33_clear_chunks(), id, || false);
}

/// What only the platform token needs, which [`host_ready`] offers the helper once the host
/// is about to run (so that, under QEMU, it takes no host core from the boot CPU's path):
/// EL3's own measurement, the RAK and the platform token signed ahead for the RMM's SHA-256
/// challenge. The RMM's attestation calls ([`serve`]; our RMM makes them when a realm first
/// asks for a token, TF-RMM at its cold boot) do whatever of it the helper has not done.
fn attestation_setup(id: &CpuId) {
    bl31_measurement(id);
    realm_key(id);
    platform_attestation(id);
}

/// The SHA-2 engine: the CPU's SHA-2 instructions when it has them (checked with known
/// answers first), as the RMM uses them for realm measurements.
fn engine(id: &CpuId) -> &'static str {
    ENGINE.call_once(|| fw_support::sha2::init(id.isar0, id.pfr0))
}

fn rmm_measurement(id: &CpuId) -> &'static [u8; 32] {
    RMM_MEASUREMENT.call_once(|| {
        engine(id);
        // SAFETY: the Realm carve-out is mapped read-write Normal memory in EL3's map, and
        // the RMM does not run until the boot CPU has this measurement and has cleared the
        // rest of the window ([`rmm_clear_chunks`], only words past the image).
        unsafe { measure_image_in(RMM_BASE, LOAD_WINDOW as u64) }
    })
}

fn bl31_measurement(id: &CpuId) -> &'static [u8; 32] {
    BL31_MEASUREMENT.call_once(|| {
        engine(id);
        let el3_end = (&raw const __data_lma) as u64 + (&raw const __data_end) as u64
            - (&raw const __data_start) as u64;
        let (first, rest) = flash(el3_end);
        measure_image_parts(&[&[first], rest])
    })
}

fn bl33_measurement(id: &CpuId) -> &'static [u8; 32] {
    BL33_MEASUREMENT.call_once(|| {
        engine(id);
        // SAFETY: the host's window is mapped read-write Normal memory in EL3's map, and the
        // host does not run until `host_ready` returns, which has cleared the rest of the window
        // ([`bl33_clear_chunks`], only words past the image).
        unsafe { measure_image_in(NS_ENTRY, HOST_WINDOW) }
    })
}

/// The RMM's window past its image, one chunk (only the boot CPU clears it, [`measure_rmm`]).
fn rmm_clear_chunks() -> &'static Chunks {
    // SAFETY: as in `rmm_measurement`.
    RMM_CLEAR.call_once(|| unsafe { past_image(RMM_BASE, LOAD_WINDOW as u64, 0) })
}

/// The host's window past its image, in chunks both CPUs take.
fn bl33_clear_chunks() -> &'static Chunks {
    // SAFETY: as in `bl33_measurement`.
    BL33_CLEAR.call_once(|| unsafe { past_image(NS_ENTRY, HOST_WINDOW, CLEAR_CHUNK) })
}

/// Clears chunks of a window past its image until none is left or `stop` says so (the other
/// half of the image's measurement, which the CPU that is not hashing the image does).
fn clear_help(chunks: &Chunks, id: &CpuId, stop: impl Fn() -> bool) {
    chunks.help(
        |r| {
            // SAFETY: the chunk is part of a load window past its image ([`past_image`]),
            // which no reference covers and nothing else reads or writes before the image
            // runs (the hashing in `measure_image_in` touches only words of the image); each
            // chunk is handed to one CPU.
            unsafe { fw_support::clear::clear(r.start as *mut u8, r.len(), id.mops()) }
        },
        stop,
    );
}

/// A window cleared past its image: helps with the chunks left, then waits for those other
/// CPUs are clearing.
fn cleared(chunks: &Chunks, id: &CpuId) {
    clear_help(chunks, id, || false);
    while !chunks.all_done() {
        core::hint::spin_loop();
    }
}

/// Makes the RAK from `RNDR` (without FEAT_RNG, or if it fails, there is none), puts it
/// into [`KEY`] and returns its public key (one P-384 multiplication).
fn realm_key(id: &CpuId) -> Option<[u8; 97]> {
    *RAK_PUBLIC.call_once(|| {
        if !id.rng() {
            return None;
        }
        let (d, public) = (0..8)
            .filter_map(|_| random_scalar())
            .find_map(|d| public_key(&d).ok().map(|p| (d, p)))?;
        *KEY.lock() = Some(RealmKey::new(&d).ok()?);
        Some(public)
    })
}

/// Sets up [`ATTEST`] with every measurement and the RAK's public key, and signs the
/// platform token for the RMM's SHA-256 challenge ahead
/// ([`PlatformAttestation::presign`]). Returns why there is no state, if there is none.
fn platform_attestation(id: &CpuId) -> Option<&'static str> {
    *PREPARED.call_once(|| {
        let components = [
            (0, *bl31_measurement(id)),
            (1, *rmm_measurement(id)),
            (2, *bl33_measurement(id)),
        ]
        .map(|(i, measurement)| Component {
            kind: COMPONENT_TYPES[i],
            measurement,
        });
        let Some(rak_public) = realm_key(id) else {
            return Some("no realm attestation key (no FEAT_RNG, or RNDR failed)");
        };
        let Ok(mut a) =
            PlatformAttestation::with_public_keys(&CPAK, CPAK_PUBLIC, rak_public, components)
        else {
            return Some("the development CPAK was refused");
        };
        let signed = a.presign();
        *ATTEST.lock() = Some(a);
        signed
            .err()
            .map(|_| "the platform token could not be signed")
    })
}

/// On the boot CPU before the RMM first runs: clears the RMM's load window past its image
/// while the helper hashes the image, then the host's window a chunk at a time until the
/// RMM's measurement is there (the helper clears what is left after hashing the host's
/// image), then waits for the RMM's measurement (the helper's, or made here) and reports it
/// with the engine that made it.
pub fn measure_rmm(id: &CpuId) {
    cleared(rmm_clear_chunks(), id);
    clear_help(bl33_clear_chunks(), id, || RMM_MEASUREMENT.is_completed());
    let m = rmm_measurement(id);
    println!("measured boot hashing: {}", engine(id));
    println!("measured boot: {} sha-256 {}", COMPONENT_TYPES[1], Hex(m));
}

/// Before the host first runs: takes the helper's job back if it has not started it, makes
/// sure the host's window is cleared past its image and the image measured (waiting for the
/// helper, or doing it here), reports the host's measurement and offers the helper the rest
/// ([`attestation_setup`]). EL3's own measurement, the RAK and the platform token are not
/// waited for: the RMM asks for the last two when a realm first wants a token
/// ([`platform_ready`], which reports EL3's measurement). Runs once: the warm boots of the
/// other CPUs call it too.
pub fn host_ready() {
    HOST_READY.call_once(|| {
        // Whatever of the measured boot the helper has not started is done here.
        monitor::take_boot_job();
        let id = CpuId::read();
        cleared(bl33_clear_chunks(), &id);
        println!(
            "measured boot: {} sha-256 {}",
            COMPONENT_TYPES[2],
            Hex(bl33_measurement(&id))
        );
        if HELPER.load(Ordering::Relaxed) {
            monitor::offer_boot_job(BootJob::Attest);
        }
    });
}

/// The platform attestation state, made here if the helper has not (waiting for it if the
/// helper is at it), reported the first time.
fn platform_ready() {
    REPORTED.call_once(|| {
        let id = CpuId::read();
        let refused = platform_attestation(&id);
        println!(
            "measured boot: {} sha-256 {}",
            COMPONENT_TYPES[0],
            Hex(bl31_measurement(&id))
        );
        match (refused, ATTEST.lock().as_ref()) {
            (None, Some(a)) => println!(
                "attestation: platform instance ID {} (development CPAK), fresh RAK, platform token signed",
                Hex(&a.instance_id())
            ),
            (why, _) => println!(
                "{}: the attestation calls will fail",
                why.unwrap_or("no attestation state")
            ),
        }
    });
}

/// The `image_size` the image at the start of the window declares in its arm64 image header
/// ([`declared_len`]), `None` without a header.
///
/// # Safety
///
/// The window's first 64 bytes must be mapped and not written meanwhile.
unsafe fn declared_size(base: u64, len: u64) -> Option<usize> {
    // SAFETY: the header's 64 bytes are the start of the window (the caller's promise).
    let head = unsafe { core::slice::from_raw_parts(base as *const u64, IMAGE_HEADER_LEN / 8) };
    declared_len(head.as_bytes(), len as usize)
}

/// The measurement of the image in the load window of `len` bytes at `base`. An image that
/// starts with an arm64 image header is measured over the `image_size` it declares; the
/// bytes from there to the next whole word are cleared here, the rest of the window by
/// [`clear_help`] over [`past_image`], which may run at the same time on another CPU (the two write
/// disjoint words) and must be done before the image runs: whatever a loader put past the
/// declared bytes (the rest of a file longer than it says, or another file) would otherwise
/// sit unmeasured in memory the image owns. An image without the header (TF-RMM's) is
/// measured up to the window's last non-zero byte. Either way the window then holds the
/// measured bytes followed by zeros.
///
/// # Safety
///
/// The window must be page aligned, at least a page long, mapped read-write as Normal memory
/// in EL3's map and used by nothing else until the image runs, except by
/// [`clear_help`].
unsafe fn measure_image_in(base: u64, len: u64) -> [u8; 32] {
    // SAFETY: the caller's promise.
    let Some(size) = (unsafe { declared_size(base, len) }) else {
        // SAFETY: the whole window, only read here; it starts page aligned and is whole words
        // long, so it is read as words (the firmware is built for strict alignment, where a
        // byte slice is read a byte at a time).
        let window = unsafe { core::slice::from_raw_parts(base as *const u64, len as usize / 8) };
        return measure_image_parts(&[trim_zero_blocks(window).as_bytes()]);
    };
    let words = size.div_ceil(8);
    // SAFETY: `[size, 8 * words)` is the end of the last word the image touches, inside the
    // window (`size <= len`, a multiple of 8), and [`past_image`] starts past it.
    unsafe { core::ptr::write_bytes((base as usize + size) as *mut u8, 0, 8 * words - size) };
    // SAFETY: the declared bytes rounded up to whole words (the bytes past `size` in the last
    // word are now zero, which the measurement drops), only read.
    let image = unsafe { core::slice::from_raw_parts(base as *const u64, words) };
    measure_image_parts(&[trim_zero_blocks(image).as_bytes()])
}

/// The load window of `len` bytes at `base` from the first whole word past the `image_size`
/// its image's header declares (empty without a header; see [`measure_image_in`]), in chunks
/// of `chunk` bytes (0: one chunk).
///
/// # Safety
///
/// The window's first 64 bytes must be mapped and not written meanwhile.
unsafe fn past_image(base: u64, len: u64, chunk: usize) -> Chunks {
    // SAFETY: the caller's promise.
    let from =
        unsafe { declared_size(base, len) }.map_or(len as usize, |size| size.div_ceil(8) * 8);
    // `from <= len` (a multiple of 8 no smaller than `size <= len`, or `len`).
    Chunks::new(base as usize + from, len as usize - from, chunk)
        .expect("the load windows are inside the address space")
}

/// Bytes per block of [`trim_zero_blocks`].
const ZERO_BLOCK: usize = 256;

core::arch::global_asm!(
    r#"
.arch_extension fp
.arch_extension simd
/* el3_nonzero_blocks(x0 = base, 16-byte aligned; x1 = number of 256-byte blocks) -> x0 = the
 * number of blocks up to and including the last one holding a non-zero byte (0 if all are
 * zero). Scans backwards, eight 32-byte pair loads OR-ed together per block. Uses q0-q7,
 * which no EL3 code uses (the monitor is built soft-float) and which hold nothing at cold
 * boot, when this runs. */
.section .text.el3_nonzero_blocks, "ax"
.global el3_nonzero_blocks
el3_nonzero_blocks:
    add     x2, x0, x1, lsl #8
1:  cbz     x1, 2f
    ldp     q0, q1, [x2, #-256]
    ldp     q2, q3, [x2, #-224]
    ldp     q4, q5, [x2, #-192]
    ldp     q6, q7, [x2, #-160]
    orr     v0.16b, v0.16b, v1.16b
    orr     v2.16b, v2.16b, v3.16b
    orr     v4.16b, v4.16b, v5.16b
    orr     v6.16b, v6.16b, v7.16b
    ldp     q1, q3, [x2, #-128]
    ldp     q5, q7, [x2, #-96]
    orr     v0.16b, v0.16b, v2.16b
    orr     v4.16b, v4.16b, v6.16b
    orr     v1.16b, v1.16b, v3.16b
    orr     v5.16b, v5.16b, v7.16b
    ldp     q2, q3, [x2, #-64]
    ldp     q6, q7, [x2, #-32]
    orr     v0.16b, v0.16b, v4.16b
    orr     v1.16b, v1.16b, v5.16b
    orr     v2.16b, v2.16b, v3.16b
    orr     v6.16b, v6.16b, v7.16b
    orr     v0.16b, v0.16b, v1.16b
    orr     v2.16b, v2.16b, v6.16b
    orr     v0.16b, v0.16b, v2.16b
    umaxv   s0, v0.4s
    fmov    w3, s0
    cbnz    w3, 2f
    sub     x2, x2, #256
    sub     x1, x1, #1
    b       1b
2:  mov     x0, x1
    ret
"#
);

unsafe extern "C" {
    fn el3_nonzero_blocks(base: *const u64, blocks: usize) -> usize;
}

/// `words` without its trailing all-zero 256-byte blocks (the 16 MiB load windows are mostly
/// zeros, and `measure_image_parts` drops trailing zeros a word at a time). The measurement is
/// the same: only zero bytes are cut, and `measure_image_parts` still finds the image's last
/// non-zero byte in what is left.
fn trim_zero_blocks(words: &[u64]) -> &[u64] {
    const WORDS: usize = ZERO_BLOCK / 8;
    let body = words.len() - words.len() % WORDS;
    if words[body..].iter().any(|&w| w != 0) {
        return words;
    }
    if words.as_ptr() as usize % 16 != 0 {
        // Not aligned for the pair loads (never for the page-aligned windows): word by word.
        let end = words.iter().rposition(|&w| w != 0).map_or(0, |i| i + 1);
        return &words[..end];
    }
    // SAFETY: the routine reads `body / WORDS` whole 256-byte blocks from the start of
    // `words`, all inside the slice, 16-byte aligned (checked above); it writes no memory.
    let kept = unsafe { el3_nonzero_blocks(words.as_ptr(), body / WORDS) };
    &words[..kept * WORDS]
}

/// EL3's own image in flash, `[0, end)`: its first byte and the rest (a Rust slice cannot
/// start at address 0).
fn flash(end: u64) -> (u8, &'static [u8]) {
    let first: u32;
    // SAFETY: address 0 is the start of the flash image, mapped read-only in EL3's map.
    unsafe {
        core::arch::asm!(
            "mov {a}, xzr",
            "ldrb {v:w}, [{a}]",
            a = out(reg) _,
            v = out(reg) first,
            options(readonly, nostack)
        );
    }
    // SAFETY: `[1, end)` is the rest of the flash image, mapped read-only and never written.
    let rest = unsafe {
        core::slice::from_raw_parts(
            core::ptr::with_exposed_provenance::<u8>(1),
            end as usize - 1,
        )
    };
    (first as u8, rest)
}

/// Serves `RMM_ATTEST_GET_REALM_KEY` and `RMM_ATTEST_GET_PLAT_TOKEN` from the RMM.
pub fn serve(realm: &mut WorldCtx) {
    let x = realm.x;
    let fid = cca_abi::smccc::normalize(x[0]);
    // SAFETY: the shared buffer is a page of the Realm carve-out mapped RW in EL3's map; the
    // RMM is stopped in this SMC, so nothing else touches it meanwhile.
    let page = unsafe { core::slice::from_raw_parts_mut(RMM_SHARED as *mut u8, 4096) };
    match fid {
        RMM_ATTEST_GET_REALM_KEY => {
            // Only the RAK is needed: the helper may still be measuring and signing.
            realm_key(&CpuId::read());
            let result = match KEY.lock().as_mut() {
                Some(k) => k.get_realm_key(page, RMM_SHARED, x[1], x[2], x[3]),
                None => Err(El3Error::Unknown),
            };
            match result {
                Ok(len) => realm.ret(&[0, len]),
                Err(e) => {
                    println!(
                        "RMM_ATTEST_GET_REALM_KEY({:#x}, {:#x}, {}) -> {e:?}",
                        x[1], x[2], x[3]
                    );
                    realm.ret(&[e.to_reg(), 0]);
                }
            }
        }
        RMM_ATTEST_GET_PLAT_TOKEN => {
            platform_ready();
            let result = match ATTEST.lock().as_mut() {
                Some(a) => a.get_platform_token(page, RMM_SHARED, x[1], x[2], x[3]),
                None => Err(El3Error::Unknown),
            };
            match result {
                Ok((chunk, remaining)) => realm.ret(&[0, chunk, remaining]),
                Err(e) => {
                    println!(
                        "RMM_ATTEST_GET_PLAT_TOKEN({:#x}, {:#x}, {}) -> {e:?}",
                        x[1], x[2], x[3]
                    );
                    realm.ret(&[e.to_reg(), 0, 0]);
                }
            }
        }
        _ => realm.ret(&[El3Error::Unknown.to_reg()]),
    }
}
