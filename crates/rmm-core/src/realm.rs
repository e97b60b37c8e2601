//! Realms: the realm descriptor (RD) and `REALM_CREATE`, `REALM_ACTIVATE`,
//! `REALM_TERMINATE`, `REALM_DESTROY`.
//!
//! The RD lives in the RD granule itself: [`Rd`] is read and written through
//! [`crate::PhysMem::realm_read`] / [`crate::PhysMem::realm_write`] while the RD granule is
//! locked. The RD granule's reference count is the number of RECs of the realm; the
//! starting-level RTTs' reference counts are their live entries (see [`crate::s2tt`]).
//!
//! VMIDs are allocated by the RMM from an 8-bit bitmap (256 realms at a time, VMID 0
//! included, as TF-RMM without FEAT_VMID16); exhaustion is `RMI_ERROR_GLOBAL`.

use core::sync::atomic::{AtomicU64, Ordering};

use cca_abi::rmi::{feat0, realm_flags, HashAlgorithm, RealmParams, RealmState, RmiStatus};
use cca_abi::GRANULE_SIZE;
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::dispatch::Regs;
use crate::error::{Reason, RmiError};
use crate::granule::{GranuleState, LockedGranule};
use crate::pa::Pa;
use crate::platform::Platform;
use crate::rmm::Rmm;
use crate::s2tt;

/// Number of VMIDs the allocator hands out (8-bit VMIDs).
pub const NUM_VMIDS: usize = 256;
/// Words of the VMID bitmap.
pub(crate) const VMID_WORDS: usize = NUM_VMIDS / 64;

/// Smallest IPA width a realm may ask for.
pub const MIN_IPA_BITS: u32 = 32;

/// The realm descriptor, as stored at the start of the RD granule (the rest is zero).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Rd {
    /// `RmiRealmState` ([`RealmState`] as a number).
    pub state: u64,
    /// RECs currently running (REC_ENTER increments, exit decrements). `REALM_TERMINATE`
    /// fails while it is not zero.
    pub active_recs: u64,
    /// RECs created so far: the index the next REC must have.
    pub rec_count: u64,
    /// IPA width in bits.
    pub ipa_bits: u64,
    /// Starting level of stage 2 translation (-1..=3).
    pub start_level: i64,
    /// Number of concatenated starting-level RTTs.
    pub num_root_rtts: u64,
    /// PA of the first starting-level RTT.
    pub rtt_base: u64,
    /// The stage 2 VMID.
    pub vmid: u64,
    /// 1 when the realm uses LPA2 (52-bit IPAs and PAs in descriptors).
    pub lpa2: u64,
    /// `RmiHashAlgorithm`.
    pub hash_algo: u64,
    /// `RmiRealmParams.flags0` as given.
    pub flags0: u64,
    /// SVE vector length (VQ - 1) when SVE is enabled.
    pub sve_vl: u64,
    /// Breakpoints (count - 1).
    pub num_bps: u64,
    /// Watchpoints (count - 1).
    pub num_wps: u64,
    /// PMU counters.
    pub pmu_num_ctrs: u64,
    /// Auxiliary granules each REC needs.
    pub num_rec_aux: u64,
    /// Realm Personalisation Value.
    pub rpv: [u8; 64],
    /// Realm Initial Measurement (the hash at the front, zeros after it).
    pub rim: [u8; 64],
    /// Realm Extensible Measurements 1..=4.
    pub rem: [[u8; 64]; 4],
    /// The Realm Instance ID (attestation claim 256): 0x01 (UEID type RAND) and 32 random
    /// bytes made at `REALM_CREATE`; the rest is zero.
    pub instance_id: [u8; 64],
}
const _: () = assert!(core::mem::size_of::<Rd>() == 0x240);
const _: () = assert!(core::mem::offset_of!(Rd, rpv) == 0x80);
const _: () = assert!(core::mem::offset_of!(Rd, rim) == 0xC0);

impl Rd {
    /// The realm state.
    pub fn realm_state(&self) -> RealmState {
        RealmState::from_u64(self.state).unwrap_or(RealmState::Zombie)
    }

    /// The realm's hash algorithm.
    pub fn algorithm(&self) -> HashAlgorithm {
        Self::algorithm_of(self.hash_algo)
    }

    /// The hash algorithm a `hash_algo` field value stands for (see [`Rd::algorithm`]).
    pub fn algorithm_of(hash_algo: u64) -> HashAlgorithm {
        match hash_algo {
            0 => HashAlgorithm::Sha256,
            1 => HashAlgorithm::Sha512,
            _ => HashAlgorithm::Sha384,
        }
    }

    /// The stage 2 translation context.
    pub fn s2(&self) -> S2Ctx {
        S2Ctx {
            root: Pa::new(self.rtt_base),
            ipa_bits: self.ipa_bits as u32,
            start_level: self.start_level as i8,
            num_root_rtts: self.num_root_rtts as u32,
            vmid: self.vmid as u16,
            lpa2: self.lpa2 != 0,
        }
    }
}

/// What a stage 2 walk needs to know about a realm (copied out of the RD).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct S2Ctx {
    /// First starting-level RTT.
    pub root: Pa,
    /// IPA width.
    pub ipa_bits: u32,
    /// Starting level.
    pub start_level: i8,
    /// Concatenated starting-level RTTs.
    pub num_root_rtts: u32,
    /// VMID.
    pub vmid: u16,
    /// LPA2 descriptors.
    pub lpa2: bool,
}

impl S2Ctx {
    /// Size of the IPA space.
    pub fn ipa_size(&self) -> u64 {
        1u64 << self.ipa_bits
    }

    /// Size of the protected half (the PAR).
    pub fn par_size(&self) -> u64 {
        self.ipa_size() >> 1
    }

    /// Returns true when `addr` is in the protected half.
    pub fn in_par(&self, addr: u64) -> bool {
        addr < self.par_size()
    }

    /// TF-RMM's `validate_map_addr`: inside the IPA space and aligned to `level`.
    pub fn valid_map_addr(&self, addr: u64, level: i8) -> bool {
        addr < self.ipa_size() && s2tt::addr_level_aligned(addr, level, self.lpa2)
    }

    /// `VTCR_EL2` for this realm (T0SZ, SL0/SL2, TG0 4K, inner shareable write-back
    /// walks, PS from the CPU's PA width, DS with LPA2). The VS bit (16-bit VMIDs) is clear.
    pub fn vtcr(&self, pa_width: u8) -> u64 {
        let t0sz = 64 - u64::from(self.ipa_bits);
        let sl0: u64 = match self.start_level {
            -1 | 2 => 0,
            1 => 1,
            0 => 2,
            _ => 3,
        };
        let ps: u64 = match pa_width {
            36 => 1,
            40 => 2,
            42 => 3,
            44 => 4,
            48 => 5,
            52 => 6,
            _ => 0,
        };
        // IRGN0 = ORGN0 = write-back RA WA, SH0 = inner shareable, TG0 = 4 KiB, RES1 bit 31.
        let mut v = t0sz | (sl0 << 6) | (1 << 8) | (1 << 10) | (3 << 12) | (ps << 16) | (1 << 31);
        if self.lpa2 {
            v |= 1 << 32;
            if self.start_level == -1 {
                v |= 1 << 33;
            }
        }
        v
    }

    /// `VTTBR_EL2` for this realm: the first starting-level RTT and the VMID.
    pub fn vttbr(&self) -> u64 {
        let mut baddr = self.root.get() & ((1 << 48) - 1) & !0x1;
        if self.lpa2 {
            baddr = (baddr & !(0xF << 2)) | (((self.root.get() >> 48) & 0xF) << 2);
        }
        baddr | (u64::from(self.vmid) << 48)
    }
}

/// Validated realm parameters.
struct Validated {
    ipa_bits: u32,
    start_level: i8,
    num_root_rtts: u32,
    lpa2: bool,
}

/// TF-RMM's `s2_inconsistent_sl` negated, plus the range checks of
/// `validate_ipa_bits_and_sl`.
fn ipa_bits_and_sl_valid(ipa_bits: u32, sl: i64, lpa2: bool, pa_width: u8) -> bool {
    let (max_ipa, min_sl) = if lpa2 { (52, -1) } else { (48, 0) };
    if !(MIN_IPA_BITS..=max_ipa).contains(&ipa_bits) || sl < min_sl || sl > 3 {
        return false;
    }
    if sl == 0 && pa_width < 44 {
        return false;
    }
    let levels = (3 - sl) as u32;
    let min_bits = levels * s2tt::STRIDE + 12 + 1;
    let mut max_bits = if sl == -1 && lpa2 {
        min_bits + 3
    } else {
        min_bits + s2tt::STRIDE - 1
    };
    if sl > 0 || (sl == 0 && lpa2) {
        max_bits += 4;
    }
    (min_bits..=max_bits).contains(&ipa_bits)
}

/// Number of concatenated starting-level tables for `ipa_bits` and `sl` (both valid).
pub fn num_root_rtts(ipa_bits: u32, sl: i8) -> u32 {
    let levels = (3 - i32::from(sl)) as u32;
    let sl_bits = levels * s2tt::STRIDE + 12 + s2tt::STRIDE;
    if sl_bits >= ipa_bits {
        1
    } else {
        1 << (ipa_bits - sl_bits)
    }
}

fn field(reg: u64, shift: u32, bits: u32) -> u64 {
    (reg >> shift) & ((1 << bits) - 1)
}

impl<'a, P: Platform> Rmm<'a, P> {
    /// Reads the RD of a locked RD granule.
    pub(crate) fn rd_read(&self, g: &LockedGranule<'_>) -> Rd {
        let mut buf = [0u8; core::mem::size_of::<Rd>()];
        self.platform.realm_read(g.pa(), &mut buf);
        match Rd::read_from_bytes(&buf) {
            Ok(rd) => rd,
            // The buffer has exactly the size of an Rd.
            Err(_) => unreachable!("RD buffer size"),
        }
    }

    /// Writes the RD of a locked RD granule.
    pub(crate) fn rd_write(&self, g: &LockedGranule<'_>, rd: &Rd) {
        self.platform.realm_write(g.pa(), rd.as_bytes());
    }

    /// Reads `buf.len()` bytes of a locked RD from byte `offset` (fields, by `offset_of!`),
    /// for calls that need a few fields and not the whole descriptor.
    pub(crate) fn rd_read_at(&self, g: &LockedGranule<'_>, offset: usize, buf: &mut [u8]) {
        debug_assert!(offset + buf.len() <= core::mem::size_of::<Rd>());
        self.platform
            .realm_read(Pa::new(g.pa().get() + offset as u64), buf);
    }

    /// Writes `data` into a locked RD at byte `offset` (see [`Self::rd_read_at`]).
    pub(crate) fn rd_write_at(&self, g: &LockedGranule<'_>, offset: usize, data: &[u8]) {
        debug_assert!(offset + data.len() <= core::mem::size_of::<Rd>());
        self.platform
            .realm_write(Pa::new(g.pa().get() + offset as u64), data);
    }

    /// A `u64` field of a locked RD at byte `offset` (see [`Self::rd_read_at`]).
    pub(crate) fn rd_u64_at(&self, g: &LockedGranule<'_>, offset: usize) -> u64 {
        let mut b = [0u8; 8];
        self.rd_read_at(g, offset, &mut b);
        u64::from_le_bytes(b)
    }

    /// Locks the RD at `addr` (ERROR_INPUT if it is not an RD).
    pub(crate) fn lock_rd(&self, addr: u64) -> Result<LockedGranule<'_>, RmiError> {
        let pa = Pa::new(addr);
        self.granules
            .lock(pa, GranuleState::Rd)
            .map_err(|e| RmiError::input_lock(pa, GranuleState::Rd, e))
    }

    /// Scrubs a locked granule and returns it to DELEGATED.
    pub(crate) fn scrub_to_delegated(&self, g: &mut LockedGranule<'_>) {
        self.platform.realm_zero(g.pa());
        g.set_state(GranuleState::Delegated);
    }

    fn vmid_alloc(&self) -> Option<u16> {
        for (w, word) in self.vmids.iter().enumerate() {
            loop {
                let cur = word.load(Ordering::Acquire);
                if cur == u64::MAX {
                    break;
                }
                let bit = (!cur).trailing_zeros();
                if word
                    .compare_exchange(cur, cur | (1 << bit), Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return Some((w * 64) as u16 + bit as u16);
                }
            }
        }
        None
    }

    fn vmid_free(&self, vmid: u16) {
        let (w, bit) = (usize::from(vmid) / 64, u32::from(vmid) % 64);
        if let Some(word) = self.vmids.get(w) {
            word.fetch_and(!(1 << bit), Ordering::AcqRel);
        }
    }

    /// Returns the number of VMIDs in use.
    pub fn vmids_in_use(&self) -> u32 {
        self.vmids
            .iter()
            .map(|w| w.load(Ordering::Acquire).count_ones())
            .sum()
    }

    /// Validates `RmiRealmParams` in TF-RMM's `validate_realm_params` order; every failure
    /// is ERROR_INPUT.
    fn validate_realm_params(&self, p: &RealmParams) -> Result<Validated, RmiError> {
        let f0 = self.features[0];
        let f2 = self.features[2];
        let f3 = self.features[3];
        let bad = |field: &'static str, value: u64, accepted: &'static str| {
            RmiError::new(
                RmiStatus::ErrorInput,
                Reason::BadValue {
                    field,
                    value,
                    accepted,
                },
            )
        };
        let lpa2 = p.flags0 & realm_flags::LPA2 != 0;
        if lpa2 && f0 & feat0::LPA2 == 0 {
            return Err(RmiError::input("LPA2 requested but not supported"));
        }
        let s2sz = p.s2sz as u32;
        if s2sz < MIN_IPA_BITS || u64::from(s2sz) > field(f0, feat0::S2SZ_SHIFT, 8) {
            return Err(bad("s2sz", s2sz.into(), "32 to the S2SZ feature"));
        }
        let (bps, wps) = (p.num_bps as u32, p.num_wps as u32);
        if bps == 0
            || u64::from(bps) > field(f0, feat0::NUM_BPS_SHIFT, 6)
            || wps == 0
            || u64::from(wps) > field(f0, feat0::NUM_WPS_SHIFT, 6)
        {
            return Err(RmiError::input(
                "num_bps and num_wps must be 1 to the NUM_BPS/NUM_WPS features",
            ));
        }
        if p.flags0 & realm_flags::SVE != 0 {
            if f0 & feat0::SVE_EN == 0 {
                return Err(RmiError::input("SVE requested but not supported"));
            }
            if u64::from(p.sve_vl as u32) > field(f0, feat0::SVE_VL_SHIFT, 4) {
                return Err(bad("sve_vl", (p.sve_vl as u32).into(), "up to SVE_VL"));
            }
        }
        if p.flags0 & realm_flags::PMU != 0 {
            let ctrs = p.pmu_num_ctrs as u32;
            if u64::from(ctrs) > field(f0, feat0::PMU_NUM_CTRS_SHIFT, 5) {
                return Err(bad("pmu_num_ctrs", ctrs.into(), "up to PMU_NUM_CTRS"));
            }
            // Zero counters needs FEAT_HPMN0, which this RMM does not use.
            if ctrs == 0 {
                return Err(RmiError::input("a PMU with 0 counters needs FEAT_HPMN0"));
            }
        }
        if p.flags0 & realm_flags::DA != 0 && f2 & 1 == 0 {
            return Err(RmiError::input(
                "device assignment requested but not supported",
            ));
        }
        let mec = (p.flags0 >> realm_flags::MEC_POLICY_SHIFT) & realm_flags::MEC_POLICY_MASK;
        if mec != realm_flags::MEC_POLICY_SHARED && mec != realm_flags::MEC_POLICY_PRIVATE {
            return Err(bad("MEC policy", mec, "0 (shared) or 1 (private)"));
        }
        let sl = p.rtt_level_start;
        if !ipa_bits_and_sl_valid(s2sz, sl, lpa2, self.cpu.pa_width) {
            return Err(RmiError::input_value(
                "rtt_level_start is inconsistent with s2sz",
                sl as u64,
            ));
        }
        let start_level = sl as i8;
        let num = num_root_rtts(s2sz, start_level);
        if num != p.rtt_num_start {
            return Err(RmiError::input_value(
                "rtt_num_start must be the number of concatenated starting-level RTTs",
                p.rtt_num_start.into(),
            ));
        }
        let aux_planes = u64::from(p.num_aux_planes as u32);
        if aux_planes > field(f3, 0, 4) {
            return Err(bad("num_aux_planes", aux_planes, "0 (no planes)"));
        }
        if p.ats_plane > aux_planes {
            return Err(bad("ats_plane", p.ats_plane, "up to num_aux_planes"));
        }
        if p.flags1 & realm_flags::S2AP_INDIRECT != 0 && f3 & (1 << 6) == 0 {
            return Err(RmiError::input(
                "indirect S2AP encoding requested but not supported",
            ));
        }
        if p.rtt_base & (u64::from(num) * GRANULE_SIZE - 1) != 0 {
            return Err(RmiError::input_value(
                "rtt_base is not aligned to rtt_num_start granules",
                p.rtt_base,
            ));
        }
        if p.hash_algo > 2 {
            return Err(bad(
                "hash_algo",
                p.hash_algo.into(),
                "0 (SHA-256), 1 (SHA-512), 2 (SHA-384)",
            ));
        }
        Ok(Validated {
            ipa_bits: s2sz,
            start_level,
            num_root_rtts: num,
            lpa2,
        })
    }

    /// Reads a 4 KiB NS page whose granule is tracked and (unlocked) NS, as TF-RMM's
    /// `get_realm_params`; the lock is held during the copy so the page cannot be delegated
    /// meanwhile.
    pub(crate) fn read_ns_page(&self, addr: u64, buf: &mut [u8]) -> Result<(), RmiError> {
        let pa = Pa::new(addr);
        let g = self
            .granules
            .lock_while_state(pa, GranuleState::Ns)
            .map_err(|e| RmiError::input_lock(pa, GranuleState::Ns, e))?;
        let r = self
            .platform
            .ns_read(pa, buf)
            .map_err(|_| RmiError::new(RmiStatus::ErrorInput, Reason::NsFault(pa)));
        drop(g);
        r
    }

    /// `REALM_CREATE(rd, params)`.
    pub(crate) fn cmd_realm_create(&self, regs: &Regs, _out: &mut Regs) -> Result<(), RmiError> {
        let (rd_addr, params_addr) = (regs[1], regs[2]);
        let mut p = RealmParams::new_zeroed();
        self.read_ns_page(params_addr, p.as_mut_bytes())?;
        let v = self.validate_realm_params(&p)?;
        let rim = cca_measure::Measurement::realm_create(&p).ok_or(RmiError::input("hash_algo"))?;
        // TF-RMM: the Realm Instance ID is made before any resource is taken; no random
        // number is RMI_ERROR_GLOBAL.
        let mut instance_id = [0u8; 64];
        instance_id[0] = 0x01;
        if !crate::attest::random(&mut instance_id[1..crate::token::INSTANCE_ID_LEN]) {
            return Err(RmiError::global(
                "no random number for the Realm Instance ID",
            ));
        }

        let vmid = self
            .vmid_alloc()
            .ok_or(RmiError::global("no free VMID (256 realms exist)"))?;

        // Starting-level RTTs: DELEGATED -> RTT, one at a time (reverted on failure).
        let base = Pa::new(p.rtt_base);
        for i in 0..v.num_root_rtts {
            let pa = base.add_granules(i.into()).unwrap_or(Pa::new(u64::MAX));
            match self.granules.lock(pa, GranuleState::Delegated) {
                Ok(mut g) => g.set_state(GranuleState::Rtt),
                Err(e) => {
                    self.revert_roots(base, i);
                    self.vmid_free(vmid);
                    return Err(RmiError::input_lock(pa, GranuleState::Delegated, e));
                }
            }
        }
        let rd_pa = Pa::new(rd_addr);
        let mut g_rd = match self.granules.lock(rd_pa, GranuleState::Delegated) {
            Ok(g) => g,
            Err(e) => {
                self.revert_roots(base, v.num_root_rtts);
                self.vmid_free(vmid);
                return Err(RmiError::input_lock(rd_pa, GranuleState::Delegated, e));
            }
        };

        let mut rd = Rd {
            state: RealmState::New as u64,
            active_recs: 0,
            rec_count: 0,
            ipa_bits: v.ipa_bits.into(),
            start_level: v.start_level.into(),
            num_root_rtts: v.num_root_rtts.into(),
            rtt_base: p.rtt_base,
            vmid: vmid.into(),
            lpa2: v.lpa2.into(),
            hash_algo: p.hash_algo.into(),
            flags0: p.flags0,
            sve_vl: if p.flags0 & realm_flags::SVE != 0 {
                u64::from(p.sve_vl as u32)
            } else {
                0
            },
            num_bps: u64::from(p.num_bps as u32),
            num_wps: u64::from(p.num_wps as u32),
            pmu_num_ctrs: u64::from(p.pmu_num_ctrs as u32),
            num_rec_aux: cca_abi::rmi::REC_AUX_GRANULES as u64,
            rpv: p.rpv,
            rim: [0; 64],
            rem: [[0; 64]; 4],
            instance_id,
        };
        rd.rim = rim.slot;
        self.init_roots(&rd.s2());
        self.platform.realm_zero(rd_pa);
        self.rd_write(&g_rd, &rd);
        g_rd.set_state(GranuleState::Rd);
        Ok(())
    }

    /// Returns the first `n` starting-level RTTs at `base` to DELEGATED.
    fn revert_roots(&self, base: Pa, n: u32) {
        for i in 0..n {
            if let Some(pa) = base.add_granules(i.into()) {
                if let Ok(mut g) = self.granules.lock(pa, GranuleState::Rtt) {
                    self.scrub_to_delegated(&mut g);
                }
            }
        }
    }

    /// Fills the starting-level RTTs: unassigned_empty in the protected half, unassigned_ns
    /// in the unprotected half, zeros past the end of the IPA space. Each table is at most
    /// three runs of one value, written with [`crate::PhysMem::realm_fill_words`].
    fn init_roots(&self, s2: &S2Ctx) {
        let per_table = s2tt::entries(s2.start_level) as u64;
        let entry_size = s2tt::map_size(s2.start_level);
        // Entries (counted from the first table) that start below each boundary.
        let par_entries = s2.par_size().div_ceil(entry_size);
        let ipa_entries = s2.ipa_size().div_ceil(entry_size);
        for i in 0..s2.num_root_rtts {
            let Some(pa) = s2.root.add_granules(i.into()) else {
                return;
            };
            let Ok(g) = self.granules.lock(pa, GranuleState::Rtt) else {
                return;
            };
            let first = u64::from(i) * per_table;
            let clamp = |n: u64| n.saturating_sub(first).min(per_table);
            let (empty, ns) = (clamp(par_entries), clamp(ipa_entries));
            let runs = [
                (0, empty, s2tt::unassigned(cca_abi::rmi::Ripas::Empty)),
                (empty, ns, s2tt::unassigned_ns()),
                (ns, s2tt::ENTRIES as u64, 0),
            ];
            for (from, to, value) in runs {
                if to > from {
                    self.platform.realm_fill_words(
                        Pa::new(g.pa().get() + 8 * from),
                        (to - from) as usize,
                        value,
                        0,
                    );
                }
            }
        }
    }

    /// `REALM_ACTIVATE(rd)`: NEW to ACTIVE.
    pub(crate) fn cmd_realm_activate(&self, regs: &Regs, _out: &mut Regs) -> Result<(), RmiError> {
        let g = self.lock_rd(regs[1])?;
        let mut rd = self.rd_read(&g);
        if rd.realm_state() != RealmState::New {
            return Err(RmiError::realm("the realm is not NEW"));
        }
        rd.state = RealmState::Active as u64;
        self.rd_write(&g, &rd);
        let len = if rd.hash_algo == 1 {
            64
        } else if rd.hash_algo == 2 {
            48
        } else {
            32
        };
        log::info!(
            "realm {:#x} (VMID {}) is ACTIVE; RIM = {}",
            regs[1],
            rd.vmid,
            Hex(&rd.rim[..len])
        );
        Ok(())
    }

    /// `REALM_TERMINATE(rd)`: any state to ZOMBIE, unless a REC is running.
    pub(crate) fn cmd_realm_terminate(&self, regs: &Regs, _out: &mut Regs) -> Result<(), RmiError> {
        let g = self.lock_rd(regs[1])?;
        let mut rd = self.rd_read(&g);
        if rd.active_recs != 0 {
            return Err(RmiError::realm("a REC of the realm is running"));
        }
        rd.state = RealmState::Zombie as u64;
        self.rd_write(&g, &rd);
        Ok(())
    }

    /// `REALM_DESTROY(rd)`: a ZOMBIE realm without RECs or RTTs below the starting level.
    pub(crate) fn cmd_realm_destroy(&self, regs: &Regs, _out: &mut Regs) -> Result<(), RmiError> {
        let mut g_rd = self.lock_rd(regs[1])?;
        if g_rd.refcount() != 0 {
            return Err(RmiError::realm("the realm still has RECs"));
        }
        let rd = self.rd_read(&g_rd);
        if rd.realm_state() != RealmState::Zombie {
            return Err(RmiError::realm(
                "the realm is not ZOMBIE (call REALM_TERMINATE)",
            ));
        }
        let s2 = rd.s2();
        let mut refs = 0u32;
        for i in 0..s2.num_root_rtts {
            if let Some(g) = s2
                .root
                .add_granules(i.into())
                .and_then(|pa| self.granules.lock(pa, GranuleState::Rtt).ok())
            {
                refs += u32::from(g.refcount());
            }
        }
        if refs != 0 {
            return Err(RmiError::realm(
                "the starting-level RTTs still have live entries",
            ));
        }
        for i in 0..s2.num_root_rtts {
            if let Some(mut g) = s2
                .root
                .add_granules(i.into())
                .and_then(|pa| self.granules.lock(pa, GranuleState::Rtt).ok())
            {
                self.scrub_to_delegated(&mut g);
            }
        }
        // NS mappings do not count as live entries; drop whatever the TLBs hold before the
        // VMID can be reused.
        self.platform.tlbi_vmid(s2.vmid);
        self.vmid_free(s2.vmid);
        self.scrub_to_delegated(&mut g_rd);
        Ok(())
    }
}

/// A VMID bitmap with every VMID free.
pub(crate) fn new_vmid_bitmap() -> [AtomicU64; VMID_WORDS] {
    [const { AtomicU64::new(0) }; VMID_WORDS]
}

/// Formats bytes as lowercase hex.
struct Hex<'a>(&'a [u8]);

impl core::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipa_and_start_level_rules() {
        // Non-LPA2, PA width 48.
        assert!(ipa_bits_and_sl_valid(48, 0, false, 48));
        assert!(
            !ipa_bits_and_sl_valid(48, 0, false, 40),
            "SL 0 needs 44-bit PAs"
        );
        assert!(ipa_bits_and_sl_valid(40, 0, false, 48));
        assert!(!ipa_bits_and_sl_valid(39, 0, false, 48));
        assert!(ipa_bits_and_sl_valid(43, 1, false, 48));
        assert!(!ipa_bits_and_sl_valid(44, 1, false, 48));
        assert!(ipa_bits_and_sl_valid(32, 1, false, 48));
        assert!(ipa_bits_and_sl_valid(32, 2, false, 48));
        assert!(!ipa_bits_and_sl_valid(48, -1, false, 48));
        assert!(!ipa_bits_and_sl_valid(31, 2, false, 48));
        assert!(!ipa_bits_and_sl_valid(49, 0, false, 48));
        // LPA2.
        assert!(ipa_bits_and_sl_valid(52, -1, true, 52));
        assert!(ipa_bits_and_sl_valid(49, -1, true, 52));
        assert!(!ipa_bits_and_sl_valid(48, -1, true, 52));
        assert!(ipa_bits_and_sl_valid(52, 0, true, 52));
        assert_eq!(num_root_rtts(48, 0), 1);
        assert_eq!(num_root_rtts(40, 1), 2);
        assert_eq!(num_root_rtts(43, 1), 16);
        assert_eq!(num_root_rtts(32, 1), 1);
        assert_eq!(num_root_rtts(34, 2), 16);
        assert_eq!(num_root_rtts(33, 2), 8);
        assert_eq!(num_root_rtts(52, 0), 16);
        assert_eq!(num_root_rtts(52, -1), 1);
    }

    #[test]
    fn vtcr_and_vttbr() {
        let s2 = S2Ctx {
            root: Pa::new(0x8000_4000),
            ipa_bits: 40,
            start_level: 1,
            num_root_rtts: 2,
            vmid: 7,
            lpa2: false,
        };
        let v = s2.vtcr(48);
        assert_eq!(v & 0x3f, 24);
        assert_eq!((v >> 6) & 3, 1);
        assert_eq!((v >> 16) & 7, 5);
        assert_eq!(s2.vttbr(), 0x8000_4000 | (7 << 48));
    }
}
