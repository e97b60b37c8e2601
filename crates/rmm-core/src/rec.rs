//! Realm execution contexts: the REC object and `REC_CREATE`, `REC_DESTROY` as stateful
//! operations (TF-RMM main).
//!
//! `REC_CREATE(rd, rec, params)` moves the REC granule to PARTIAL and asks for 16 delegated
//! auxiliary granules (`INCOMPLETE | DONATE`, x1 = handle, x2 = 0x40). After the host
//! donated them (`OP_MEM_DONATE`), `OP_CONTINUE` reads the parameters page **then**, checks
//! the realm and the MPIDR, builds the REC in its granule and measures it (runnable RECs
//! only). If that fails, the host reclaims the auxiliary granules first and the final
//! `OP_CONTINUE` returns the error. `REC_DESTROY(rec)` moves the REC to PARTIAL, drops the
//! RD reference and asks the host to reclaim the auxiliary granules; the final
//! `OP_CONTINUE` returns the REC granule to DELEGATED.
//!
//! The REC object ([`Rec`]) lives at the start of the REC granule, with the REC's whole
//! [`RealmContext`] (the firmware's architectural state included, which
//! [`Platform::reset_arch_state`] initialises at creation). Of its auxiliary granules, the
//! attestation context and token granules ([`crate::attest::AUX_CONTEXT`],
//! [`crate::attest::AUX_TOKEN`]) are zeroed at creation; the others are reserved for state
//! this RMM does not keep yet (SVE, PMU) and never read or written.

use cca_abi::rmi::{
    mem_req, rec_mpidr, RealmState, RecParams, RmiFid, REC_AUX_GRANULES, REC_PARAMS_FLAG_RUNNABLE,
};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::addr_list::InList;
use crate::dispatch::Regs;
use crate::error::RmiError;
use crate::granule::{GranuleState, LockedGranule, REFCOUNT_MAX};
use crate::pa::Pa;
use crate::platform::Platform;
use crate::realm::S2Ctx;
use crate::rmm::Rmm;
use crate::run::RealmContext;
use crate::sro::{incomplete, SroCtx, Stage};
use core::mem::offset_of;

/// How much of `RmiRecParams` `REC_CREATE` reads: up to the end of x0..x7 (the rest is
/// padding in RMM 2.0).
const PARAMS_READ: usize = offset_of!(RecParams, gprs) + 8 * 8;
const _: () = assert!(PARAMS_READ % 8 == 0 && PARAMS_READ <= core::mem::size_of::<RecParams>());

/// The `RmiRecParams` fields `REC_CREATE` uses.
struct UsedParams {
    flags: u64,
    mpidr: u64,
    pc: u64,
    gprs: [u64; 8],
}

/// No request pending.
pub const PENDING_NONE: u64 = 0;
/// The realm asked for a RIPAS change (`RSI_IPA_STATE_SET`); `RTT_SET_RIPAS` works on it and
/// the next `REC_ENTER` reports the result to the realm. Does not block `REC_ENTER`.
pub const PENDING_RIPAS: u64 = 1;
/// The realm made a PSCI request (`CPU_ON`, `AFFINITY_INFO`) that needs `PSCI_COMPLETE`;
/// `REC_ENTER` fails with `RMI_ERROR_REC` until then.
pub const PENDING_PSCI: u64 = 2;
/// The realm made a host call (`RSI_HOST_CALL`); the next `REC_ENTER` copies the host's
/// results into the realm's `RsiHostCall` structure.
pub const PENDING_HOST_CALL: u64 = 3;

/// `SPSR_EL2` of a new REC, and of a REC `PSCI_COMPLETE` turns on: EL1h, AArch64, D, A, I,
/// F masked.
pub const PSTATE_INIT: u64 = crate::esr::SPSR_MODE_EL1H | crate::esr::SPSR_DAIF;

/// The REC object, at the start of the REC granule.
///
/// While a REC runs (its granule's reference count is 1), the CPU running it owns this
/// object: it read it under the REC lock at `REC_ENTER` and writes it back under the lock
/// before dropping the reference. Every other command that reads or writes a REC does so
/// under the REC lock and only when the reference count is 0.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Rec {
    /// PA of the realm's RD.
    pub rd: u64,
    /// Index of the REC in its realm.
    pub rec_idx: u64,
    /// `RmiRecMpidr` given at creation.
    pub mpidr: u64,
    /// 1 when the REC may be entered.
    pub runnable: u64,
    /// Number of auxiliary granules.
    pub num_aux: u64,
    /// The auxiliary granules.
    pub aux: [u64; REC_AUX_GRANULES],
    /// The realm's `RmiHashAlgorithm`.
    pub hash_algo: u64,
    /// The realm's first starting-level RTT (stage 2 parameters are copied from the RD at
    /// creation, so RSI calls walk the RTTs without the RD lock).
    pub rtt_base: u64,
    /// The realm's IPA width.
    pub ipa_bits: u64,
    /// The realm's starting level.
    pub start_level: i64,
    /// The realm's number of concatenated starting-level RTTs.
    pub num_root_rtts: u64,
    /// The realm's VMID.
    pub vmid: u64,
    /// 1 when the realm uses LPA2 descriptors.
    pub lpa2: u64,
    /// What the REC waits for from the host ([`PENDING_NONE`], [`PENDING_RIPAS`], ...).
    pub pending: u64,
    /// RIPAS change request: next address to change.
    pub ripas_addr: u64,
    /// RIPAS change request: top of the range.
    pub ripas_top: u64,
    /// RIPAS change request: the RIPAS wanted (`RmiRipas`).
    pub ripas_value: u64,
    /// RIPAS change request: 1 if DESTROYED may change to RAM.
    pub ripas_change_destroyed: u64,
    /// PSCI request: the function identifier waiting for `PSCI_COMPLETE`.
    pub psci_fid: u64,
    /// PSCI request: the target MPIDR (`MPIDR_EL1` layout, as the realm passed it).
    pub psci_target: u64,
    /// PSCI `CPU_ON` request: the entry point.
    pub psci_entry: u64,
    /// PSCI `CPU_ON` request: the context identifier.
    pub psci_context: u64,
    /// Host call request: the IPA of the realm's `RsiHostCall`.
    pub host_call_ipa: u64,
    /// `ESR_EL2` of the last exit to the host (ISV cleared when the host was not shown an
    /// emulatable abort; 0 after an IRQ/FIQ exit or once `REC_ENTER` consumed it).
    pub last_esr: u64,
    /// `FAR_EL2` of the last exit to the host.
    pub last_far: u64,
    /// `HPFAR_EL2` of the last exit to the host.
    pub last_hpfar: u64,
    /// The realm's `RmiRealmParams.flags0` (SVE, PMU: the realm's CPU view depends on them).
    pub realm_flags0: u64,
    /// The realm's breakpoints minus one.
    pub num_bps: u64,
    /// The realm's watchpoints minus one.
    pub num_wps: u64,
    /// The realm's SVE vector length (VQ - 1) when it has SVE.
    pub sve_vl: u64,
    /// The realm's PMU counters when it has a PMU.
    pub pmu_num_ctrs: u64,
    /// Reserved; zero.
    pub reserved: [u64; 3],
    /// The REC's execution context: GPRs, PC, PSTATE, stage 2, traps and the firmware's
    /// architectural state.
    pub ctx: RealmContext,
}
const _: () = assert!(core::mem::size_of::<Rec>() <= cca_abi::GRANULE_SIZE as usize);
const _: () = assert!(core::mem::offset_of!(Rec, aux) == 0x28);
const _: () = assert!(core::mem::offset_of!(Rec, ctx) == 0x188);

impl Rec {
    /// The realm's stage 2 translation context.
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

    /// What the realm's CPU view depends on ([`crate::idregs::realm_view`]).
    pub fn realm_cpu(&self) -> crate::idregs::RealmCpu {
        use cca_abi::rmi::realm_flags;
        crate::idregs::RealmCpu {
            sve: self.realm_flags0 & realm_flags::SVE != 0,
            pmu: self.realm_flags0 & realm_flags::PMU != 0,
            num_bps: self.num_bps.min(u64::from(u8::MAX)) as u8,
            num_wps: self.num_wps.min(u64::from(u8::MAX)) as u8,
        }
    }

    /// Records a RIPAS change request (what `RSI_IPA_STATE_SET` does).
    pub fn set_ripas_request(
        &mut self,
        base: u64,
        top: u64,
        ripas: cca_abi::rmi::Ripas,
        change_destroyed: bool,
    ) {
        self.pending = PENDING_RIPAS;
        self.ripas_addr = base;
        self.ripas_top = top;
        self.ripas_value = ripas as u64;
        self.ripas_change_destroyed = change_destroyed.into();
    }

    /// Forgets a RIPAS change request.
    pub fn clear_ripas_request(&mut self) {
        self.pending = PENDING_NONE;
        self.ripas_addr = 0;
        self.ripas_top = 0;
        self.ripas_value = 0;
        self.ripas_change_destroyed = 0;
    }
}

impl<'a, P: Platform> Rmm<'a, P> {
    /// Reads the REC object of a locked REC granule.
    pub(crate) fn rec_read(&self, g: &LockedGranule<'_>) -> Rec {
        let mut r = Rec::new_zeroed();
        self.platform.realm_read(g.pa(), r.as_mut_bytes());
        r
    }

    /// Writes the REC object of a locked REC granule.
    pub(crate) fn rec_write(&self, g: &LockedGranule<'_>, rec: &Rec) {
        self.platform.realm_write(g.pa(), rec.as_bytes());
    }

    /// Records a RIPAS change request of the REC at `rec` (what `RSI_IPA_STATE_SET` does
    /// before the REC exits with `RMI_EXIT_RIPAS_CHANGE`); `RTT_SET_RIPAS` then completes
    /// it. Returns false if `rec` is not a REC.
    pub fn rec_request_ripas_change(
        &self,
        rec: Pa,
        base: u64,
        top: u64,
        ripas: cca_abi::rmi::Ripas,
        change_destroyed: bool,
    ) -> bool {
        let Ok(g) = self.granules.lock(rec, GranuleState::Rec) else {
            return false;
        };
        let mut r = self.rec_read(&g);
        r.set_ripas_request(base, top, ripas, change_destroyed);
        self.rec_write(&g, &r);
        true
    }

    /// `REC_CREATE(rd, rec, params)`: starts the operation.
    pub(crate) fn cmd_rec_create(&self, regs: &Regs, out: &mut Regs) -> Result<(), RmiError> {
        let (rd_addr, rec_addr, params_addr) = (regs[1], regs[2], regs[3]);
        let pa = Pa::new(rec_addr);
        let mut g = self
            .granules
            .lock(pa, GranuleState::Delegated)
            .map_err(|e| RmiError::input_lock(pa, GranuleState::Delegated, e))?;
        let mut r = self.sro_reserve(
            RmiFid::REC_CREATE,
            REC_AUX_GRANULES as u64 * cca_abi::GRANULE_SIZE,
            RmiFid::OP_MEM_DONATE,
        )?;
        g.set_state(GranuleState::Partial);
        drop(g);
        r.ctx.rd_addr = rd_addr;
        r.ctx.params_addr = params_addr;
        r.ctx.stage = Stage::MemDonate;
        r.ctx.requested = REC_AUX_GRANULES as u64;
        r.ctx.transferred = 0;
        r.ctx.obj_addr = rec_addr;
        out[0] = incomplete(mem_req::DONATE, false);
        out[2] = Self::donate_request(REC_AUX_GRANULES as u64);
        out[1] = r.seal();
        Ok(())
    }

    /// `REC_DESTROY(rec)`: starts the operation.
    pub(crate) fn cmd_rec_destroy(&self, regs: &Regs, out: &mut Regs) -> Result<(), RmiError> {
        let rec_addr = regs[1];
        let mut r = self.sro_reserve(RmiFid::REC_DESTROY, 0, RmiFid::OP_MEM_RECLAIM)?;
        let pa = Pa::new(rec_addr);
        let mut g = self
            .granules
            .lock(pa, GranuleState::Rec)
            .map_err(|e| RmiError::input_lock(pa, GranuleState::Rec, e))?;
        if g.refcount() != 0 {
            return Err(RmiError::rec("the REC is running"));
        }
        let rec = self.rec_read(&g);
        let n = (rec.num_aux as usize).min(REC_AUX_GRANULES);
        r.ctx.aux[..n].copy_from_slice(&rec.aux[..n]);
        g.set_state(GranuleState::Partial);
        drop(g);
        if let Some(rd) = self.granules.granule(Pa::new(rec.rd)) {
            let mut l = rd.lock();
            l.refcount_sub(1);
        }
        Self::start_reclaim(&mut r.ctx, rec_addr, None, n as u64, out);
        out[1] = r.seal();
        Ok(())
    }

    /// The callbacks of the REC operations, chosen by the stage.
    pub(crate) fn rec_op_callback(
        &self,
        fid: RmiFid,
        ctx: &mut SroCtx,
        list: Option<&mut InList>,
        out: &mut Regs,
    ) -> Result<(), RmiError> {
        match (ctx.stage, list) {
            (Stage::MemDonate, Some(list)) if fid == RmiFid::OP_MEM_DONATE => {
                self.donate_aux(ctx, list, out);
                Ok(())
            }
            (Stage::MemReclaim, _) if fid == RmiFid::OP_MEM_RECLAIM => {
                self.reclaim_aux(ctx, out);
                Ok(())
            }
            (Stage::CreateContinue, _) if fid == RmiFid::OP_CONTINUE => {
                self.rec_create_continue(ctx, out);
                Ok(())
            }
            (Stage::DestroyFinish, _) if fid == RmiFid::OP_CONTINUE => {
                if let Ok(mut g) = self
                    .granules
                    .lock(Pa::new(ctx.obj_addr), GranuleState::Partial)
                {
                    self.scrub_to_delegated(&mut g);
                }
                out[2] = 0;
                match ctx.ret_err {
                    None => Ok(()),
                    Some(e) => Err(e),
                }
            }
            _ => Err(RmiError::input("unexpected call for this operation")),
        }
    }

    /// Takes donated granules DELEGATED -> REC_AUX (TF-RMM's `sro_obj_memory_donate`).
    fn donate_aux(&self, ctx: &mut SroCtx, list: &mut InList, out: &mut Regs) {
        let mut donated = 0u64;
        while let Some((pa, _level, _st)) = list.pop_block() {
            let idx = (ctx.transferred + donated) as usize;
            let locked = if idx < REC_AUX_GRANULES {
                self.granules
                    .lock(Pa::new(pa), GranuleState::Delegated)
                    .ok()
            } else {
                None
            };
            let Some(mut g) = locked else {
                if donated == 0 {
                    log::debug!(
                        "OP_MEM_DONATE: granule {pa:#x} is not DELEGATED: the operation fails and the host must reclaim"
                    );
                    let n = ctx.transferred;
                    Self::start_reclaim(
                        ctx,
                        ctx.obj_addr,
                        Some(RmiError::input("a donated granule was not DELEGATED")),
                        n,
                        out,
                    );
                    return;
                }
                break;
            };
            g.set_state(GranuleState::RecAux);
            ctx.aux[idx] = pa;
            donated += 1;
        }
        ctx.transferred += donated;
        if ctx.transferred < ctx.requested {
            out[0] = incomplete(mem_req::DONATE, ctx.can_cancel);
            out[2] = Self::donate_request(ctx.requested - ctx.transferred);
            ctx.stage = Stage::MemDonate;
        } else {
            out[0] = incomplete(mem_req::NONE, ctx.can_cancel);
            out[2] = 0;
            ctx.stage = Stage::CreateContinue;
        }
        out[1] = donated;
    }

    /// Returns auxiliary granules to DELEGATED and lists them for the host (TF-RMM's
    /// `sro_obj_memory_reclaim`).
    fn reclaim_aux(&self, ctx: &mut SroCtx, out: &mut Regs) {
        let n = ctx.requested.min(ctx.range_desc_count);
        for i in 0..n {
            let pa = ctx.aux[(i + ctx.transferred) as usize];
            if let Ok(mut g) = self.granules.lock(Pa::new(pa), GranuleState::RecAux) {
                self.scrub_to_delegated(&mut g);
            }
            let added = ctx.out.add_block(pa, 3, false);
            debug_assert!(added);
        }
        ctx.requested -= n;
        ctx.transferred += n;
        if ctx.requested == 0 {
            out[0] = incomplete(mem_req::NONE, ctx.can_cancel);
            ctx.stage = Stage::DestroyFinish;
        } else {
            out[0] = incomplete(mem_req::RECLAIM, ctx.can_cancel);
            ctx.stage = Stage::MemReclaim;
        }
        out[1] = n;
        out[2] = 0;
    }

    /// Builds the REC once every auxiliary granule arrived (TF-RMM's `rec_create_continue`);
    /// on failure, starts the reclaim with the error as the final result.
    fn rec_create_continue(&self, ctx: &mut SroCtx, out: &mut Regs) {
        match self.build_rec(ctx) {
            Ok(()) => {
                out[0] = 0;
                out[1] = 0;
                out[2] = 0;
            }
            Err(e) => {
                log::debug!(
                    "REC_CREATE of {:#x} failed at OP_CONTINUE ({e}): the host must reclaim the auxiliary granules",
                    ctx.obj_addr
                );
                let n = ctx.transferred;
                Self::start_reclaim(ctx, ctx.obj_addr, Some(e), n, out);
            }
        }
    }

    fn build_rec(&self, ctx: &mut SroCtx) -> Result<(), RmiError> {
        // Only the fields up to the end of x0..x7 are used: those words are read, not the
        // whole 4 KiB page (read as words, so aligned; fields by their typed offsets).
        let mut words = [0u64; PARAMS_READ / 8];
        self.read_ns_page(ctx.params_addr, words.as_mut_bytes())?;
        let field = |off: usize| u64::from_le(words[off / 8]);
        let gprs_at = offset_of!(RecParams, gprs) / 8;
        let params = UsedParams {
            flags: field(offset_of!(RecParams, flags)),
            mpidr: field(offset_of!(RecParams, mpidr)),
            pc: field(offset_of!(RecParams, pc)),
            gprs: core::array::from_fn(|i| u64::from_le(words[gprs_at + i])),
        };
        let (rec_pa, rd_pa) = (Pa::new(ctx.obj_addr), Pa::new(ctx.rd_addr));
        let (mut g_rec, mut g_rd) = self
            .granules
            .lock_two((rec_pa, GranuleState::Partial), (rd_pa, GranuleState::Rd))
            .map_err(|e| {
                if e.which == 0 {
                    RmiError::input_lock(rec_pa, GranuleState::Partial, e.error)
                } else {
                    RmiError::input_lock(rd_pa, GranuleState::Rd, e.error)
                }
            })?;
        if g_rd.refcount() == REFCOUNT_MAX {
            return Err(RmiError::realm("the realm has the most RECs it can have"));
        }
        let mut rd = self.rd_read(&g_rd);
        if rd.realm_state() != RealmState::New {
            return Err(RmiError::realm("the realm is not NEW"));
        }
        let idx = rd.rec_count;
        if !rec_mpidr::is_valid(params.mpidr) || rec_mpidr::to_index(params.mpidr) != idx {
            return Err(RmiError::input_value(
                "the MPIDR is invalid or not the next REC index",
                params.mpidr,
            ));
        }
        if ctx.transferred != rd.num_rec_aux {
            return Err(RmiError::input("wrong number of auxiliary granules"));
        }
        let s2 = rd.s2();
        let mut rec = Rec::new_zeroed();
        rec.rd = ctx.rd_addr;
        rec.rec_idx = idx;
        rec.mpidr = params.mpidr;
        rec.runnable = u64::from(params.flags & REC_PARAMS_FLAG_RUNNABLE != 0);
        rec.num_aux = ctx.transferred;
        rec.aux = ctx.aux;
        rec.hash_algo = rd.hash_algo;
        rec.rtt_base = rd.rtt_base;
        rec.ipa_bits = rd.ipa_bits;
        rec.start_level = rd.start_level;
        rec.num_root_rtts = rd.num_root_rtts;
        rec.vmid = rd.vmid;
        rec.lpa2 = rd.lpa2;
        rec.realm_flags0 = rd.flags0;
        rec.num_bps = rd.num_bps;
        rec.num_wps = rd.num_wps;
        rec.sve_vl = rd.sve_vl;
        rec.pmu_num_ctrs = rd.pmu_num_ctrs;
        rec.pending = PENDING_NONE;
        rec.ctx.pc = params.pc;
        rec.ctx.pstate = PSTATE_INIT;
        rec.ctx.gprs[..8].copy_from_slice(&params.gprs);
        rec.ctx.vtcr = s2.vtcr(self.cpu.pa_width);
        rec.ctx.vttbr = s2.vttbr();
        rec.ctx.vmpidr = rec_mpidr::to_mpidr_el1(params.mpidr) | (1 << 31);
        self.platform.reset_arch_state(&mut rec.ctx);
        if rec.runnable != 0 {
            let mut m = cca_measure::Measurement {
                algo: rd.algorithm(),
                slot: rd.rim,
            };
            m.extend_rec_fields(params.flags, params.pc, &params.gprs);
            rd.rim = m.slot;
        }
        g_rd.refcount_add(1);
        // Only the auxiliary granules this RMM keeps state in are zeroed (the attestation
        // context, whose state a CONTINUE reads, and the token): the others are never read
        // or written, so they hold nothing but what the host left in them (undelegation
        // scrubs), and a future user of one must initialise it here.
        for i in [crate::attest::AUX_CONTEXT, crate::attest::AUX_TOKEN] {
            if let Some(&a) = ctx.aux[..ctx.transferred as usize].get(i) {
                self.platform.realm_zero(Pa::new(a));
            }
        }
        rd.rec_count = idx + 1;
        self.rd_write(&g_rd, &rd);
        self.platform.realm_zero(rec_pa);
        self.rec_write(&g_rec, &rec);
        g_rec.set_state(GranuleState::Rec);
        Ok(())
    }
}
