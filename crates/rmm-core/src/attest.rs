//! Realm attestation: `RSI_ATTESTATION_TOKEN_INIT` and `RSI_ATTESTATION_TOKEN_CONTINUE` as
//! TF-RMM main serves them (`runtime/rsi/realm_attest.c`), and what the RMM needs for them.
//!
//! # What the firmware provides
//!
//! * [`install_services`]: the CPU's random number generator (`RNDR`) and a "physical
//!   interrupt pending" test (`ISR_EL1`), used by `REALM_CREATE` (the Realm Instance ID) and
//!   by the signing loop;
//! * [`install_source`]: where the Realm Attestation Key EL3 hands over
//!   (`RMM_ATTEST_GET_REALM_KEY`, kept as a [`Rak`]) and the platform token EL3 makes for it
//!   (`RMM_ATTEST_GET_PLAT_TOKEN`, whose challenge is [`Rak::binding_hash`]) come from. The
//!   first `RSI_ATTESTATION_TOKEN_INIT` fetches them, once for every CPU (TF-RMM fetches
//!   them at cold boot; here the RAK's public key and the wait for EL3's token stay off the
//!   boot path). Without them every `RSI_ATTESTATION_TOKEN_INIT` answers
//!   `RSI_ERROR_UNKNOWN`, as TF-RMM does when its attestation initialisation failed.
//!
//! # The calls
//!
//! `INIT(challenge in x1..x8)` abandons whatever the REC had in progress, snapshots the
//! realm's RIM, REMs, hash algorithm, Realm Instance ID and RPV under the RD lock, encodes
//! the realm claims ([`crate::token`]) and answers `SUCCESS` with x1 =
//! [`CCA_TOKEN_BUFFER`], the bound on the token's size.
//!
//! `CONTINUE(ipa, offset, size)`, after TF-RMM's argument checks (`ERROR_INPUT`: the IPA not
//! granule aligned or outside the protected half, `offset >= 4096`, `offset + size > 4096`
//! or overflowing), starts the signature on the first call after `INIT` (hashes the
//! `Sig_structure` and derives the ECDSA nonce, RFC 6979 with 48 fresh random bytes, on the
//! SHA-2 engine: `ERROR_UNKNOWN` and the token abandoned without random bytes), then signs:
//! up to [`MAX_SLICES_PER_CALL`] slices of [`SLICE_BITS`] bits
//! of the scalar multiplication ([`crate::ecdsa`]); between slices, a pending physical
//! interrupt ends the call with `RSI_INCOMPLETE`, x1 = 0, the PC past the SMC and an
//! `RMI_EXIT_IRQ` to the host; so does the slice budget, without the exit. The realm calls
//! `CONTINUE` again and the signing resumes. Once signed, the realm token and the
//! collection are assembled (the token buffer holds at most [`CCA_TOKEN_BUFFER`] bytes:
//! `ERROR_INPUT` otherwise, as TF-RMM) and then every call copies `min(size, remaining)`
//! bytes to `ipa + offset`: x1 = bytes written, `INCOMPLETE` while bytes remain, `SUCCESS`
//! with the last ones, after which the REC is back to "no token" (`ERROR_STATE`). A buffer
//! with RIPAS EMPTY is `ERROR_INPUT`; unmapped RAM is a stage 2 abort exit (the host maps it
//! and the SMC runs again); `size = 0` is `INCOMPLETE` without a copy (TF-RMM's quirk).
//!
//! # Where the state lives
//!
//! Per REC, in two of its auxiliary granules (Realm PAS, never shared):
//! [`AUX_CONTEXT`] holds [`AttestCtx`] (the state, the claims, the signing state with the
//! nonce), [`AUX_TOKEN`] the finished token. Both are wiped when the token has been handed
//! over and when a new `INIT` starts; `REC_DESTROY` scrubs them with the other auxiliary
//! granules. The RAK itself stays in the RMM's memory ([`MaterialCell`]).

use cca_abi::rmi::{exit_reason, RecExit};
use cca_abi::rsi::RsiStatus;
use cca_abi::GRANULE_SIZE;
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::ecdsa::{self, Running, SignError, SignState, SCALAR_LEN};
use crate::pa::Pa;
use crate::platform::Platform;
use crate::rec::Rec;
use crate::rmm::Rmm;
use crate::rsi::{reject, IpaLookup, RsiAction, RsiOut};
use crate::token::{self, RealmClaims, TokenFormat, COSE_KEY_LEN, MAX_CLAIMS_LEN};

pub use crate::token::CCA_TOKEN_BUFFER;

/// Bits of the nonce one signing slice processes (10 of its 4-bit windows).
pub const SLICE_BITS: u64 = 40;
/// Slices one `RSI_ATTESTATION_TOKEN_CONTINUE` runs at most (the signature takes 10:
/// [`crate::ecdsa::WORK_BITS`] = 388).
pub const MAX_SLICES_PER_CALL: u64 = 4;
/// The REC auxiliary granule holding the attestation context.
pub const AUX_CONTEXT: usize = 14;
/// The REC auxiliary granule holding the finished token.
pub const AUX_TOKEN: usize = 15;

/// What the firmware offers the attestation code.
pub trait AttestServices: Sync {
    /// Fills `buf` from the CPU's random number generator; false if it could not.
    fn random(&self, buf: &mut [u8]) -> bool;
    /// True when a physical interrupt is pending on this CPU.
    fn irq_pending(&self) -> bool;
}

/// Where the attestation material comes from: EL3's calls, made when a realm first asks for
/// a token ([`install_source`]).
pub trait MaterialSource: Sync {
    /// Gets the RAK and the platform token; `None` if there are none (the source reports
    /// why). Called at most once, by the first CPU that needs the material; any other waits.
    fn fetch(&self) -> Option<Material>;
}

static SERVICES: spin::Once<&'static dyn AttestServices> = spin::Once::new();
/// The RMM's material and its source.
static MATERIAL: MaterialCell = MaterialCell::new();

/// The attestation material, installed or fetched from its source on first use.
pub struct MaterialCell {
    source: spin::Once<&'static dyn MaterialSource>,
    /// `None` inside: the source had none (or there was no source).
    material: spin::Once<Option<Material>>,
}

impl Default for MaterialCell {
    fn default() -> Self {
        Self::new()
    }
}

impl MaterialCell {
    /// Neither material nor source.
    pub const fn new() -> Self {
        Self {
            source: spin::Once::new(),
            material: spin::Once::new(),
        }
    }

    /// Installs the material itself (refused once there is material, or once a caller
    /// found there was none).
    pub fn install(&self, m: Material) -> Result<(), InstallError> {
        let mut installed = false;
        self.material.call_once(|| {
            installed = true;
            Some(m)
        });
        if installed {
            Ok(())
        } else {
            Err(InstallError::AlreadyInstalled)
        }
    }

    /// Installs the source (once; false if there was one).
    pub fn install_source(&self, s: &'static dyn MaterialSource) -> bool {
        let mut installed = false;
        self.source.call_once(|| {
            installed = true;
            s
        });
        installed
    }

    /// The material: installed, or fetched from the source by the first caller while any
    /// other waits; `None` if the source had none or there is no source. Either outcome
    /// is kept: the source is asked once.
    pub fn get(&self) -> Option<&Material> {
        self.material
            .call_once(|| self.source.get().and_then(|s| s.fetch()))
            .as_ref()
    }
}

/// Installs the firmware's services (once; false if some were installed already).
pub fn install_services(s: &'static dyn AttestServices) -> bool {
    let mut installed = false;
    SERVICES.call_once(|| {
        installed = true;
        s
    });
    installed
}

/// The Realm Attestation Key.
#[derive(Clone)]
pub struct Rak {
    d: [u8; SCALAR_LEN],
    cose_key: [u8; COSE_KEY_LEN],
}

impl core::fmt::Debug for Rak {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Rak").finish_non_exhaustive()
    }
}

impl Rak {
    /// The key with private scalar `d` (big-endian, as `RMM_ATTEST_GET_REALM_KEY` returns
    /// it). Fails unless `0 < d < n`.
    pub fn new(d: &[u8; SCALAR_LEN]) -> Result<Self, SignError> {
        let (x, y) = ecdsa::public_key(d)?;
        Ok(Self {
            d: *d,
            cose_key: token::cose_key_p384(&x, &y),
        })
    }

    /// The public key as the realm token carries it (claim 44237).
    pub fn cose_key(&self) -> &[u8; COSE_KEY_LEN] {
        &self.cose_key
    }

    /// SHA-256 of [`Rak::cose_key`]: the challenge the platform token must carry.
    pub fn binding_hash(&self) -> [u8; 32] {
        let h = cca_measure::hash(cca_abi::rmi::HashAlgorithm::Sha256, &self.cose_key);
        let mut b = [0u8; 32];
        b.copy_from_slice(&h[..32]);
        b
    }
}

/// Why [`Material::new`] or [`MaterialCell::install`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallError {
    /// The platform token is empty or larger than [`token::MAX_PLATFORM_TOKEN_LEN`].
    PlatformTokenSize(usize),
    /// Material was installed already.
    AlreadyInstalled,
}

/// The key, the platform token and the format, fixed at boot.
pub struct Material {
    rak: Rak,
    platform: [u8; token::MAX_PLATFORM_TOKEN_LEN],
    platform_len: usize,
    format: TokenFormat,
}

impl Material {
    /// Builds the material (checking the platform token's size).
    pub fn new(rak: Rak, platform_token: &[u8], format: TokenFormat) -> Result<Self, InstallError> {
        let n = platform_token.len();
        if n == 0 || n > token::MAX_PLATFORM_TOKEN_LEN {
            return Err(InstallError::PlatformTokenSize(n));
        }
        let mut platform = [0u8; token::MAX_PLATFORM_TOKEN_LEN];
        platform[..n].copy_from_slice(platform_token);
        Ok(Self {
            rak,
            platform,
            platform_len: n,
            format,
        })
    }

    /// The platform token.
    pub fn platform_token(&self) -> &[u8] {
        &self.platform[..self.platform_len]
    }

    /// The RAK.
    pub fn rak(&self) -> &Rak {
        &self.rak
    }

    /// The collection format.
    pub fn format(&self) -> TokenFormat {
        self.format
    }
}

/// Installs where the material comes from when a realm first asks for a token (once; false
/// if a source was installed already). The RMM boots without the material: the Realm
/// Attestation Key's public half (one P-384 multiplication) and EL3's platform token are
/// fetched by the first `RSI_ATTESTATION_TOKEN_INIT`, not on the cold boot's path.
pub fn install_source(s: &'static dyn MaterialSource) -> bool {
    MATERIAL.install_source(s)
}

/// The material ([`MaterialCell::get`]).
#[cfg(not(test))]
fn material() -> Option<&'static Material> {
    MATERIAL.get()
}

/// Random bytes from the installed services.
#[cfg(not(any(test, feature = "sim")))]
pub(crate) fn random(buf: &mut [u8]) -> bool {
    SERVICES.get().is_some_and(|s| s.random(buf))
}

/// Random bytes from the installed services or, in simulations without them, a
/// deterministic generator (SplitMix64).
#[cfg(all(feature = "sim", not(test)))]
pub(crate) fn random(buf: &mut [u8]) -> bool {
    match SERVICES.get() {
        Some(s) => s.random(buf),
        None => {
            sim_random(buf);
            true
        }
    }
}

#[cfg(any(test, feature = "sim"))]
fn sim_random(buf: &mut [u8]) {
    use core::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0x0005_EED0_FCCA);
    for chunk in buf.chunks_mut(8) {
        let mut z = STATE
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
    }
}

#[cfg(not(test))]
fn irq_pending() -> bool {
    SERVICES.get().is_some_and(|s| s.irq_pending())
}

/// Test hooks: per test thread, the material, a failing random source and a schedule of
/// pending interrupts (the installed globals are never used by the tests).
#[cfg(test)]
pub(crate) mod test_env {
    extern crate std;
    use super::{Material, MaterialCell, MaterialSource};
    use std::cell::{Cell, RefCell};

    std::thread_local! {
        pub(super) static MATERIAL: RefCell<&'static MaterialCell> = RefCell::new(leak(MaterialCell::new()));
        pub(super) static RANDOM_FAILS: Cell<bool> = const { Cell::new(false) };
        /// Slices to run before an interrupt is pending (none if `None`).
        pub(super) static IRQ_AFTER: Cell<Option<u32>> = const { Cell::new(None) };
        /// Interrupt tests made so far.
        pub(super) static IRQ_CHECKS: Cell<u32> = const { Cell::new(0) };
    }

    fn leak<T>(t: T) -> &'static T {
        std::boxed::Box::leak(std::boxed::Box::new(t))
    }

    /// Uses `m` on this thread (leaked: tests are short-lived).
    pub fn set_material(m: Option<Material>) {
        let cell = leak(MaterialCell::new());
        if let Some(m) = m {
            assert!(cell.install(m).is_ok());
        }
        MATERIAL.with(|c| *c.borrow_mut() = cell);
    }

    /// Uses a fresh cell fetching from `s` on this thread.
    pub fn set_source(s: &'static dyn MaterialSource) {
        let cell = leak(MaterialCell::new());
        assert!(cell.install_source(s));
        MATERIAL.with(|c| *c.borrow_mut() = cell);
    }

    /// Makes the random source fail or work.
    pub fn set_random_fails(f: bool) {
        RANDOM_FAILS.with(|c| c.set(f));
    }

    /// An interrupt becomes pending at the `n`-th test from now (and stays pending); `None`
    /// for never.
    pub fn irq_after(n: Option<u32>) {
        IRQ_AFTER.with(|c| c.set(n));
        IRQ_CHECKS.with(|c| c.set(0));
    }

    /// Interrupt tests made since the last [`irq_after`].
    pub fn irq_checks() -> u32 {
        IRQ_CHECKS.with(Cell::get)
    }
}

#[cfg(test)]
fn material() -> Option<&'static Material> {
    test_env::MATERIAL.with(|c| *c.borrow()).get()
}

#[cfg(test)]
pub(crate) fn random(buf: &mut [u8]) -> bool {
    if test_env::RANDOM_FAILS.with(core::cell::Cell::get) {
        return false;
    }
    sim_random(buf);
    true
}

#[cfg(test)]
fn irq_pending() -> bool {
    let n = test_env::IRQ_CHECKS.with(|c| {
        let n = c.get() + 1;
        c.set(n);
        n
    });
    test_env::IRQ_AFTER.with(|c| c.get().is_some_and(|after| n >= after))
}

/// No token in progress.
pub const STATE_IDLE: u64 = 0;
/// Claims made, signature in progress.
pub const STATE_SIGNING: u64 = 1;
/// Token made, being copied to the realm.
pub const STATE_COPYING: u64 = 2;
/// Claims made (the snapshot `INIT` took), signature not started.
pub const STATE_CLAIMS: u64 = 3;

/// A REC's attestation context, at the start of its [`AUX_CONTEXT`] granule.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct AttestCtx {
    /// [`STATE_IDLE`], [`STATE_CLAIMS`], [`STATE_SIGNING`] or [`STATE_COPYING`].
    pub state: u64,
    /// Length of `claims`.
    pub claims_len: u64,
    /// Length of the token in the [`AUX_TOKEN`] granule.
    pub token_len: u64,
    /// Bytes of it handed to the realm so far.
    pub copied: u64,
    /// The signature in progress.
    pub sign: SignState,
    /// The encoded realm claims (the COSE payload).
    pub claims: [u8; MAX_CLAIMS_LEN],
}
const _: () = assert!(core::mem::size_of::<AttestCtx>() <= GRANULE_SIZE as usize);

/// Reads 8 little-endian bytes of a register array into the challenge.
fn challenge_of(regs: &[u64]) -> [u8; token::CHALLENGE_LEN] {
    let mut c = [0u8; token::CHALLENGE_LEN];
    for (chunk, r) in c.chunks_exact_mut(8).zip(regs) {
        chunk.copy_from_slice(&r.to_le_bytes());
    }
    c
}

impl<'a, P: Platform> Rmm<'a, P> {
    /// The context and token granules of a REC, if it has them.
    fn attest_granules(rec: &Rec) -> Option<(Pa, Pa)> {
        let n = rec.num_aux as usize;
        if n <= AUX_TOKEN.max(AUX_CONTEXT) {
            return None;
        }
        Some((Pa::new(rec.aux[AUX_CONTEXT]), Pa::new(rec.aux[AUX_TOKEN])))
    }

    fn attest_ctx_read(&self, pa: Pa) -> AttestCtx {
        let mut ctx = AttestCtx::new_zeroed();
        self.platform.realm_read(pa, ctx.as_mut_bytes());
        ctx
    }

    fn attest_ctx_write(&self, pa: Pa, ctx: &AttestCtx) {
        self.platform.realm_write(pa, ctx.as_bytes());
    }

    /// Forgets any token of the REC: both granules zeroed (the nonce and the token gone).
    fn attest_wipe(&self, ctx_pa: Pa, token_pa: Pa) {
        self.platform.realm_zero(ctx_pa);
        self.platform.realm_zero(token_pa);
    }

    /// `RSI_ATTESTATION_TOKEN_INIT(challenge)`.
    pub(crate) fn rsi_token_init(&self, rec: &mut Rec, out: &mut RsiOut) {
        let Some((ctx_pa, token_pa)) = Self::attest_granules(rec) else {
            out.x[0] = reject(
                rec,
                RsiStatus::ErrorUnknown,
                "the REC has no attestation context",
            );
            return;
        };
        // Any operation in progress is abandoned, whatever happens next.
        self.attest_wipe(ctx_pa, token_pa);
        let Some(m) = material() else {
            out.x[0] = reject(
                rec,
                RsiStatus::ErrorUnknown,
                "no attestation key or platform token (EL3 provided none at boot)",
            );
            return;
        };
        let challenge = challenge_of(&rec.ctx.gprs[1..9]);
        let mut ctx = AttestCtx::new_zeroed();
        let encoded = {
            let g = self.lock_rec_rd(rec);
            let rd = self.rd_read(&g);
            drop(g);
            let mut id = [0u8; token::INSTANCE_ID_LEN];
            id.copy_from_slice(&rd.instance_id[..token::INSTANCE_ID_LEN]);
            let claims = RealmClaims {
                challenge: &challenge,
                instance_id: &id,
                rpv: &rd.rpv,
                rak: m.rak.cose_key(),
                algo: rd.algorithm(),
                rim: &rd.rim,
                rems: &rd.rem,
                // No FEAT_MEC: every realm shares the default MECID.
                mec_policy: 0,
            };
            token::encode_realm_claims(&claims, &mut ctx.claims)
        };
        let Ok(n) = encoded else {
            out.x[0] = reject(rec, RsiStatus::ErrorUnknown, "the realm claims do not fit");
            return;
        };
        // The claims are the snapshot; hashing them and deriving the nonce wait for the
        // first CONTINUE (as TF-RMM's do), so INIT itself stays short.
        ctx.claims_len = n as u64;
        ctx.state = STATE_CLAIMS;
        self.attest_ctx_write(ctx_pa, &ctx);
        out.x[0] = RsiStatus::Success.to_reg();
        out.x[1] = CCA_TOKEN_BUFFER as u64;
    }

    /// The first `CONTINUE` after `INIT`: hashes the `Sig_structure` of the claims and
    /// derives the ECDSA nonce (RFC 6979 with 48 fresh random bytes). Returns false (the
    /// token abandoned, `x0` set) if that fails.
    fn token_start_signing(
        &self,
        rec: &Rec,
        out: &mut RsiOut,
        ctx: &mut AttestCtx,
        ctx_pa: Pa,
        token_pa: Pa,
    ) -> bool {
        let fail = |out: &mut RsiOut, why| {
            self.abandon_token(rec, out, ctx_pa, token_pa, RsiStatus::ErrorUnknown, why)
        };
        let Some(m) = material() else {
            return fail(out, "no attestation key");
        };
        let n = (ctx.claims_len as usize).min(MAX_CLAIMS_LEN);
        let digest = token::sig_structure_digest(&ctx.claims[..n]);
        let mut entropy = [0u8; SCALAR_LEN];
        if !random(&mut entropy) {
            return fail(out, "no random bytes for the signature nonce");
        }
        match SignState::start(&m.rak.d, &digest, &entropy) {
            Ok(s) => ctx.sign = s,
            Err(_) => return fail(out, "the RAK is not usable"),
        }
        ctx.state = STATE_SIGNING;
        true
    }

    /// Abandons the token in progress (its context and buffer wiped) and answers `status`,
    /// logging why; returns false for the callers' early returns.
    fn abandon_token(
        &self,
        rec: &Rec,
        out: &mut RsiOut,
        ctx_pa: Pa,
        token_pa: Pa,
        status: RsiStatus,
        why: &'static str,
    ) -> bool {
        self.attest_wipe(ctx_pa, token_pa);
        out.x[0] = reject(rec, status, why);
        false
    }

    /// `RSI_ATTESTATION_TOKEN_CONTINUE(ipa, offset, size)`, after the argument checks.
    pub(crate) fn rsi_token_continue_checked(
        &self,
        rec: &mut Rec,
        exit: &mut RecExit,
        out: &mut RsiOut,
    ) {
        let Some((ctx_pa, token_pa)) = Self::attest_granules(rec) else {
            out.x[0] = reject(
                rec,
                RsiStatus::ErrorState,
                "no attestation token was initialised",
            );
            return;
        };
        let mut ctx = self.attest_ctx_read(ctx_pa);
        match ctx.state {
            STATE_CLAIMS => {
                if !self.token_start_signing(rec, out, &mut ctx, ctx_pa, token_pa)
                    || !self.token_sign(rec, exit, out, &mut ctx, ctx_pa, token_pa)
                {
                    return;
                }
            }
            STATE_SIGNING => {
                if !self.token_sign(rec, exit, out, &mut ctx, ctx_pa, token_pa) {
                    return;
                }
            }
            STATE_COPYING => {}
            _ => {
                out.x[0] = reject(
                    rec,
                    RsiStatus::ErrorState,
                    "no attestation token was initialised (or it was handed over)",
                );
                return;
            }
        }
        self.token_copy(rec, out, &mut ctx, ctx_pa, token_pa);
    }

    /// The signing part: returns true when the token is ready to copy (the context then is
    /// in [`STATE_COPYING`] in memory and in its granule).
    fn token_sign(
        &self,
        rec: &mut Rec,
        exit: &mut RecExit,
        out: &mut RsiOut,
        ctx: &mut AttestCtx,
        ctx_pa: Pa,
        token_pa: Pa,
    ) -> bool {
        let Some(m) = material() else {
            return self.abandon_token(
                rec,
                out,
                ctx_pa,
                token_pa,
                RsiStatus::ErrorUnknown,
                "no attestation key",
            );
        };
        let Ok(mut run) = Running::load(&ctx.sign) else {
            return self.abandon_token(
                rec,
                out,
                ctx_pa,
                token_pa,
                RsiStatus::ErrorUnknown,
                "the signing state is invalid",
            );
        };
        let mut slices = 0;
        loop {
            run.run(SLICE_BITS);
            slices += 1;
            if run.is_done() {
                break;
            }
            out.x[0] = RsiStatus::Incomplete.to_reg();
            out.x[1] = 0;
            if irq_pending() {
                run.save(&mut ctx.sign);
                self.attest_ctx_write(ctx_pa, ctx);
                exit.exit_reason = exit_reason::IRQ;
                out.action = RsiAction::ReturnAndExit;
                return false;
            }
            if slices >= MAX_SLICES_PER_CALL {
                run.save(&mut ctx.sign);
                self.attest_ctx_write(ctx_pa, ctx);
                return false;
            }
        }
        let sig = match run.finish(&ctx.sign, &m.rak.d) {
            Ok(s) => s,
            Err(_) => {
                return self.abandon_token(
                    rec,
                    out,
                    ctx_pa,
                    token_pa,
                    RsiStatus::ErrorUnknown,
                    "the signature failed",
                );
            }
        };
        let claims_len = (ctx.claims_len as usize).min(MAX_CLAIMS_LEN);
        let mut realm = [0u8; token::MAX_REALM_TOKEN_LEN];
        let Ok(realm_len) = token::encode_cose_sign1(&ctx.claims[..claims_len], &sig, &mut realm)
        else {
            return self.abandon_token(
                rec,
                out,
                ctx_pa,
                token_pa,
                RsiStatus::ErrorInput,
                "the realm token does not fit",
            );
        };
        let mut cca = [0u8; CCA_TOKEN_BUFFER];
        let Ok(len) =
            token::encode_collection(m.format, m.platform_token(), &realm[..realm_len], &mut cca)
        else {
            return self.abandon_token(
                rec,
                out,
                ctx_pa,
                token_pa,
                RsiStatus::ErrorInput,
                "the token does not fit in its buffer",
            );
        };
        self.platform.realm_write(token_pa, &cca[..len]);
        ctx.sign = SignState::zeroed();
        ctx.state = STATE_COPYING;
        ctx.token_len = len as u64;
        ctx.copied = 0;
        self.attest_ctx_write(ctx_pa, ctx);
        true
    }

    /// The copying part.
    fn token_copy(
        &self,
        rec: &mut Rec,
        out: &mut RsiOut,
        ctx: &mut AttestCtx,
        ctx_pa: Pa,
        token_pa: Pa,
    ) {
        let (ipa, offset, size) = (rec.ctx.gprs[1], rec.ctx.gprs[2], rec.ctx.gprs[3]);
        let s2 = rec.s2();
        match self.ipa_lookup(&s2, ipa) {
            IpaLookup::Ram { pa, _table } => {
                out.x[1] = 0;
                if size == 0 {
                    out.x[0] = RsiStatus::Incomplete.to_reg();
                    return;
                }
                let len = ctx.token_len.min(CCA_TOKEN_BUFFER as u64);
                let copied = ctx.copied.min(len);
                let n = size.min(len - copied) as usize;
                let mut buf = [0u8; CCA_TOKEN_BUFFER];
                self.platform
                    .realm_read(Pa::new(token_pa.get() + copied), &mut buf[..n]);
                self.platform.realm_write(Pa::new(pa + offset), &buf[..n]);
                ctx.copied = copied + n as u64;
                out.x[1] = n as u64;
                if ctx.copied < len {
                    out.x[0] = RsiStatus::Incomplete.to_reg();
                    self.attest_ctx_write(ctx_pa, ctx);
                } else {
                    out.x[0] = RsiStatus::Success.to_reg();
                    self.attest_wipe(ctx_pa, token_pa);
                }
            }
            IpaLookup::Unmapped { level, ripas } => {
                self.unmapped_result(rec, out, level, ripas, "RSI_ATTESTATION_TOKEN_CONTINUE");
            }
        }
    }
}
