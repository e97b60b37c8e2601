//! EL3's attestation services: measured boot of the three images, the Realm Attestation Key
//! made from `RNDR`, and the RMM-EL3 calls `RMM_ATTEST_GET_REALM_KEY` and
//! `RMM_ATTEST_GET_PLAT_TOKEN` (the logic is `el3_core::attest`).
//!
//! Measured boot, before the RMM or the host runs ([`el3_core::attest::measure_image`]):
//! `BL31` is this monitor's flash image (code, read-only data and the initial data, up to
//! `__data_lma` + the size of `.data`), `RMM` the 16 MiB load window at `RMM_BASE`, `BL33`
//! the 16 MiB window at the host's entry point. The CPAK is the build's development key
//! (`build.rs`).

use crate::context::WorldCtx;
use crate::platform::{NS_ENTRY, RMM_BASE, RMM_RESERVE_LOW, RMM_SHARED};
use cca_abi::el3::{El3Error, RMM_ATTEST_GET_PLAT_TOKEN, RMM_ATTEST_GET_REALM_KEY};
use el3_core::attest::{measure_image_parts, Component, PlatformAttestation, COMPONENT_TYPES};
use fw_support::println;
use fw_support::sysreg::CpuId;
use spin::Mutex;
use zerocopy::IntoBytes;

/// The development CPAK (see `build.rs`).
const CPAK: [u8; 48] = *include_bytes!(concat!(env!("OUT_DIR"), "/dev-cpak.bin"));
/// Its uncompressed SEC1 public key, derived by the build.
const CPAK_PUBLIC: [u8; 97] = *include_bytes!(concat!(env!("OUT_DIR"), "/dev-cpak-public.bin"));
/// Size of the host's measured load window.
const HOST_WINDOW: u64 = 16 << 20;

static ATTEST: Mutex<Option<PlatformAttestation>> = Mutex::new(None);

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

/// Measures the images and makes the RAK (cold boot, MMU on, before the RMM starts).
pub fn init(id: &CpuId) {
    // The CPU's SHA-2 instructions for the measured boot when it has them (checked against
    // the software engine first), as the RMM uses them for realm measurements.
    let engine = fw_support::sha2::init(id.isar0, id.pfr0);
    println!("measured boot hashing: {engine}");
    let el3_end = (&raw const __data_lma) as u64 + (&raw const __data_end) as u64
        - (&raw const __data_start) as u64;
    // SAFETY: EL3's map covers the Realm carve-out and the host's window read-write; nothing
    // else runs yet, and the images are only read. Both windows start page aligned and are
    // whole words long, so they are read as words (the firmware is built for strict
    // alignment, where a byte slice is read a byte at a time).
    let (rmm, host) = unsafe {
        (
            core::slice::from_raw_parts(
                RMM_BASE as *const u64,
                (RMM_RESERVE_LOW - RMM_BASE) as usize / 8,
            ),
            core::slice::from_raw_parts(NS_ENTRY as *const u64, HOST_WINDOW as usize / 8),
        )
    };
    let (first, rest) = flash(el3_end);
    let components = [
        Component {
            kind: COMPONENT_TYPES[0],
            measurement: measure_image_parts(&[&[first], rest]),
        },
        Component {
            kind: COMPONENT_TYPES[1],
            measurement: measure_image_parts(&[trim_zero_blocks(rmm).as_bytes()]),
        },
        Component {
            kind: COMPONENT_TYPES[2],
            measurement: measure_image_parts(&[trim_zero_blocks(host).as_bytes()]),
        },
    ];
    for c in &components {
        println!("measured boot: {} sha-256 {}", c.kind, Hex(&c.measurement));
    }
    if !id.rng() {
        println!("no FEAT_RNG: no realm attestation key; the attestation calls will fail");
        return;
    }
    for _ in 0..8 {
        let Some(rak) = random_scalar() else {
            continue;
        };
        if let Ok(a) = PlatformAttestation::with_cpak_public(&CPAK, CPAK_PUBLIC, &rak, components) {
            println!(
                "attestation: platform instance ID {} (development CPAK), fresh RAK",
                Hex(&a.instance_id())
            );
            *ATTEST.lock() = Some(a);
            return;
        }
    }
    println!("RNDR gave no usable realm attestation key; the attestation calls will fail");
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
    let mut guard = ATTEST.lock();
    let Some(a) = guard.as_mut() else {
        realm.ret(&[El3Error::Unknown.to_reg(), 0, 0]);
        return;
    };
    // SAFETY: the shared buffer is a page of the Realm carve-out mapped RW in EL3's map; the
    // RMM is stopped in this SMC, so nothing else touches it meanwhile.
    let page = unsafe { core::slice::from_raw_parts_mut(RMM_SHARED as *mut u8, 4096) };
    match fid {
        RMM_ATTEST_GET_REALM_KEY => match a.get_realm_key(page, RMM_SHARED, x[1], x[2], x[3]) {
            Ok(len) => realm.ret(&[0, len]),
            Err(e) => {
                println!(
                    "RMM_ATTEST_GET_REALM_KEY({:#x}, {:#x}, {}) -> {e:?}",
                    x[1], x[2], x[3]
                );
                realm.ret(&[e.to_reg(), 0]);
            }
        },
        RMM_ATTEST_GET_PLAT_TOKEN => {
            match a.get_platform_token(page, RMM_SHARED, x[1], x[2], x[3]) {
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
