//! The RMM's attestation hardware and its EL3 calls: the CPU's random number generator
//! (`RNDR`), the pending-interrupt test (`ISR_EL1`) the signing loop uses, and the Realm
//! Attestation Key and the platform token from EL3 (RMM-EL3 interface
//! `RMM_ATTEST_GET_REALM_KEY`, `RMM_ATTEST_GET_PLAT_TOKEN`), which TF-RMM's attestation
//! initialisation gets at cold boot and this RMM when a realm first asks for a token.
//!
//! Both EL3 calls go through the shared buffer (a page of Realm PAS only EL3 and the RMM
//! map). The key's private scalar is wiped from it as soon as it is copied; the platform
//! token is fetched in as many chunks as EL3 makes (x2 = bytes remaining), retrying on
//! `E_RMM_AGAIN`. If EL3 serves neither call (TF-A without a platform port, an older EL3),
//! realms get `RSI_ERROR_UNKNOWN` from `RSI_ATTESTATION_TOKEN_INIT` (the first one logs why).

use crate::smc;
use cca_abi::el3::{El3Error, RMM_ATTEST_GET_PLAT_TOKEN, RMM_ATTEST_GET_REALM_KEY};
use fw_support::println;
use rmm_core::attest::{AttestServices, Material, MaterialSource, Rak};
use rmm_core::token::{TokenFormat, MAX_PLATFORM_TOKEN_LEN};

/// `RMM_ATTEST_GET_REALM_KEY` curve: ECC SECP384R1.
const CURVE_P384: u64 = 0;
/// `E_RMM_AGAIN` retries before giving up on the platform token.
const AGAIN_RETRIES: u32 = 1000;
/// The collection format this image makes.
const FORMAT: TokenFormat = if cfg!(feature = "legacy-token") {
    TokenFormat::Legacy
} else {
    TokenFormat::Cmw
};

/// `RNDR` and `ISR_EL1`.
struct Hw {
    rndr: bool,
}

/// Reads `RNDR` once: `None` if the generator could not deliver (PSTATE.Z set).
fn rndr() -> Option<u64> {
    let v: u64;
    let nzcv: u64;
    // SAFETY: RNDR (s3_3_c2_c4_0) only reads the generator and sets NZCV; FEAT_RNG was
    // checked before this is called.
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

impl AttestServices for Hw {
    fn random(&self, buf: &mut [u8]) -> bool {
        if !self.rndr {
            return false;
        }
        for chunk in buf.chunks_mut(8) {
            // The architecture allows a transient failure: retry a few times.
            let Some(v) = (0..16).find_map(|_| rndr()) else {
                return false;
            };
            chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]);
        }
        true
    }

    fn irq_pending(&self) -> bool {
        fw_support::read_sysreg!(isr_el1) != 0
    }
}

static HW: spin::Once<Hw> = spin::Once::new();
static SOURCE: spin::Once<El3Source> = spin::Once::new();

/// EL3's attestation calls through the shared buffer at `shared`.
struct El3Source {
    shared: u64,
}

impl MaterialSource for El3Source {
    fn fetch(&self) -> Option<Material> {
        match fetch(self.shared) {
            Ok(m) => {
                println!(
                    "attestation: realm key and a {}-byte platform token from EL3 ({} collection)",
                    m.platform_token().len(),
                    match FORMAT {
                        TokenFormat::Cmw => "CMW 907",
                        TokenFormat::Legacy => "legacy 399",
                    }
                );
                Some(m)
            }
            Err(why) => {
                println!("attestation unavailable: {why}");
                None
            }
        }
    }
}

/// Installs the services and where the attestation material comes from (cold boot, MMU on,
/// the shared buffer at `shared` mapped). The material itself is fetched from EL3 when a
/// realm first asks for a token ([`rmm_core::attest::install_source`]).
pub fn init(shared: u64, rng: bool) {
    let hw = HW.call_once(|| Hw { rndr: rng });
    rmm_core::attest::install_services(hw);
    if !rng {
        println!("no FEAT_RNG: REALM_CREATE will fail (no Realm Instance IDs)");
    }
    rmm_core::attest::install_source(SOURCE.call_once(|| El3Source { shared }));
}

/// The shared buffer as bytes.
fn shared_page(shared: u64) -> &'static mut [u8] {
    // SAFETY: the shared buffer is a 4 KiB Realm page mapped RW in the RMM's stage 1. After
    // cold boot (the manifest) only attestation uses it, and only here: the material is
    // fetched once, by one CPU while any other waits (`MaterialCell`), and EL3 touches the
    // page only during this CPU's SMCs below.
    unsafe { core::slice::from_raw_parts_mut(shared as *mut u8, 4096) }
}

fn el3_error(x0: u64) -> &'static str {
    match El3Error::from_reg(x0) {
        Some(El3Error::Unknown) => "E_RMM_UNK",
        Some(El3Error::BadAddr) => "E_RMM_BAD_ADDR",
        Some(El3Error::BadPas) => "E_RMM_BAD_PAS",
        Some(El3Error::NoMem) => "E_RMM_NOMEM",
        Some(El3Error::Inval) => "E_RMM_INVAL",
        Some(El3Error::Again) => "E_RMM_AGAIN",
        None => "an undefined status",
    }
}

/// Gets the key and the platform token.
fn fetch(shared: u64) -> Result<Material, &'static str> {
    let page = shared_page(shared);
    page.fill(0);
    let r = smc(RMM_ATTEST_GET_REALM_KEY, &[shared, 4096, CURVE_P384]);
    let key_len = r[1] as usize;
    let rak = if r[0] != 0 {
        println!("RMM_ATTEST_GET_REALM_KEY -> {}", el3_error(r[0]));
        Err("EL3 gave no realm attestation key")
    } else if key_len != 48 {
        Err("EL3's realm attestation key is not a 48-byte P-384 scalar")
    } else {
        let mut d = [0u8; 48];
        d.copy_from_slice(&page[..48]);
        let rak = Rak::new(&d).map_err(|_| "EL3's realm attestation key is not a valid scalar");
        d.fill(0);
        rak
    };
    // The private key leaves the shared buffer whatever happened.
    page.fill(0);
    let rak = rak?;
    let hash = rak.binding_hash();
    let mut token = [0u8; MAX_PLATFORM_TOKEN_LEN];
    let mut len = 0usize;
    let mut first = true;
    let mut again = 0;
    loop {
        if first {
            page[..32].copy_from_slice(&hash);
        }
        let hash_size = if first { 32 } else { 0 };
        let r = smc(RMM_ATTEST_GET_PLAT_TOKEN, &[shared, 4096, hash_size]);
        if r[0] == El3Error::Again.to_reg() && again < AGAIN_RETRIES {
            again += 1;
            continue;
        }
        if r[0] != 0 {
            println!("RMM_ATTEST_GET_PLAT_TOKEN -> {}", el3_error(r[0]));
            return Err("EL3 gave no platform token");
        }
        first = false;
        let (chunk, remaining) = (r[1] as usize, r[2]);
        let end = len
            .checked_add(chunk)
            .filter(|&e| e <= token.len() && chunk <= page.len())
            .ok_or("the platform token is larger than this RMM accepts")?;
        token[len..end].copy_from_slice(&page[..chunk]);
        len = end;
        if remaining == 0 {
            break;
        }
        if chunk == 0 {
            return Err("EL3 returned an empty chunk of the platform token");
        }
    }
    page.fill(0);
    Material::new(rak, &token[..len], FORMAT).map_err(|_| "the platform token was refused (size)")
}
