//! The Realm Services Interface: the SMCs a realm makes, handled inside `REC_ENTER`
//! (TF-RMM `runtime/core/exit.c` `handle_realm_rsi` and `runtime/rsi/*.c`).
//!
//! A realm SMC traps to EL2 (HCR_EL2.TSC) with `ELR_EL2` at the SMC itself. The function
//! identifier is W0 with the SVE hint (bit 16) cleared. The result registers start as x0..x3
//! = 0 and x4..x7 = the realm's own (SMCCC 1.2); a handler decides whether they are written
//! back, whether the PC moves past the SMC, and whether the REC exits to the host:
//!
//! | handler result        | registers | PC      | then            |
//! |-----------------------|-----------|---------|-----------------|
//! | `Return`        | written   | +4      | back to the realm |
//! | `ReturnAndExit` | written   | +4      | exit to the host  |
//! | `Exit`          | kept      | +4      | exit to the host (the answer comes at the next `REC_ENTER` or `PSCI_COMPLETE`) |
//! | `Stage2Abort`   | kept      | kept    | exit to the host with a synthesised stage 2 data abort on the IPA in x1, so the SMC runs again once the host mapped it |
//!
//! Arguments from the realm are never trusted: every check failure is an RSI status in x0
//! (with a `debug` log line), never a panic. Unknown function identifiers get `SMC_UNKNOWN`.

use cca_abi::rmi::{exit_reason, RecExit, Ripas};
use cca_abi::rsi::{self, RsiRealmConfig, RsiStatus};
use cca_abi::smccc::{self, SMC_UNKNOWN};
use cca_abi::GRANULE_SIZE;
use core::mem::{offset_of, size_of};
use zerocopy::IntoBytes;

use crate::esr;
use crate::granule::{GranuleState, LockedGranule};
use crate::pa::Pa;
use crate::platform::Platform;
use crate::realm::{Rd, S2Ctx};
use crate::rec::{Rec, PENDING_HOST_CALL};
use crate::rmm::Rmm;
use crate::s2tt::{self, Entry};

/// `SMCCC_VERSION` as the RMM answers it to realms: 1.2.
pub const SMCCC_VERSION_1_2: u64 = 0x1_0002;

/// The RSI revisions this RMM implements, ascending (TF-RMM main: 1.0 and 1.1).
pub const RSI_REVISIONS: [u64; 2] = [rsi::RSI_VERSION_1_0, rsi::RSI_VERSION_1_1];

/// What happens after an RSI handler ran (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RsiAction {
    /// Write the result registers, advance the PC, re-enter the realm.
    Return,
    /// Write the result registers, advance the PC, exit to the host.
    ReturnAndExit,
    /// Keep the registers, advance the PC, exit to the host.
    Exit,
    /// Keep registers and PC, exit with a stage 2 data abort at this RTT level.
    Stage2Abort(i8),
}

/// Number of result registers of [`RsiOut`]: x0..x3, all that every RSI and PSCI call
/// returns but `RSI_MEASUREMENT_READ`, which writes x4..x8 into the REC itself.
pub(crate) const RESULT_REGS: usize = 4;

/// A handler's result: the action and x0..x3.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RsiOut {
    /// What to do next.
    pub action: RsiAction,
    /// x0..x3 for the realm (used unless the action keeps the registers); they start as
    /// zero. x4 and up keep the realm's values unless a handler writes them itself.
    pub x: [u64; RESULT_REGS],
}

/// Where an IPA of the protected half leads.
pub(crate) enum IpaLookup<'g> {
    /// Assigned RAM at `pa` (the PA of the IPA itself); the last-level RTT stays locked so
    /// the mapping cannot change while the RMM uses it.
    Ram {
        /// The PA.
        pa: u64,
        /// The locked last-level table.
        _table: LockedGranule<'g>,
    },
    /// Not mapped RAM: the level the walk stopped at and the entry's RIPAS.
    Unmapped {
        /// RTT level of the entry.
        level: i8,
        /// Its RIPAS.
        ripas: Ripas,
    },
}

/// Reads 8 little-endian bytes.
/// Where measurement `idx` (0 = the RIM, 1..=4 = REM 0..3, checked by the caller) is in the
/// RD.
fn measurement_offset(idx: u64) -> usize {
    debug_assert!(idx < rsi::MEASUREMENT_SLOTS);
    match idx {
        0 => offset_of!(Rd, rim),
        i => offset_of!(Rd, rem) + (i as usize - 1) * rsi::MEASUREMENT_SIZE,
    }
}

/// The REC index an `MPIDR_EL1` value names (TF-RMM `mpidr_to_rec_idx`): Aff0[3:0],
/// Aff1[15:8], Aff2[23:16], Aff3[39:32]; other bits are ignored.
pub const fn mpidr_el1_to_rec_idx(mpidr: u64) -> u64 {
    (mpidr & 0xF)
        | ((mpidr & (0xFF << 8)) >> 4)
        | ((mpidr & (0xFF << 16)) >> 4)
        | ((mpidr & (0xFF << 32)) >> 12)
}

impl<'a, P: Platform> Rmm<'a, P> {
    /// Locks the RD of a REC. A REC's RD is an RD as long as the REC exists (the RD's
    /// reference count keeps it), so failing is an RMM bug.
    pub(crate) fn lock_rec_rd(&self, rec: &Rec) -> LockedGranule<'_> {
        match self.granules.lock(Pa::new(rec.rd), GranuleState::Rd) {
            Ok(g) => g,
            Err(e) => panic!("the RD {:#x} of a REC cannot be locked: {e:?}", rec.rd),
        }
    }

    /// Reads the RD of a REC under its lock (released on return).
    pub(crate) fn rec_rd(&self, rec: &Rec) -> Rd {
        let g = self.lock_rec_rd(rec);
        self.rd_read(&g)
    }

    /// TF-RMM `realm_ipa_to_pa`: walks the realm's RTTs for `ipa` (granule aligned, in the
    /// protected half).
    pub(crate) fn ipa_lookup(&self, s2: &S2Ctx, ipa: u64) -> IpaLookup<'_> {
        debug_assert!(s2.in_par(ipa) && cca_abi::granule_aligned(ipa));
        let w = self.walk(s2, self.lock_root(s2), ipa, s2tt::PAGE_LEVEL);
        let e = Entry::decode(self.rtt_read(&w.table, w.index), w.level, s2.lpa2);
        match e {
            Entry::AssignedRam(pa) => IpaLookup::Ram {
                pa: pa + (ipa & (s2tt::map_size(w.level) - 1)),
                _table: w.table,
            },
            other => IpaLookup::Unmapped {
                level: w.level,
                ripas: other.ripas(),
            },
        }
    }

    /// TF-RMM `realm_ipa_get_ripas`: the top of the run of entries, in the last-level table
    /// `start` leads to, that have one RIPAS, and that RIPAS; `None` if the first entry has
    /// no RIPAS. `start` and `end` are granule aligned and in the protected half.
    fn ipa_ripas_run(&self, s2: &S2Ctx, start: u64, end: u64) -> Option<(u64, Ripas)> {
        let w = self.walk(s2, self.lock_root(s2), start, s2tt::PAGE_LEVEL);
        let size = s2tt::map_size(w.level);
        let base = start & !(size - 1);
        let mut addr = base;
        let mut ripas = None;
        for idx in w.index..s2tt::entries(w.level) {
            let e = Entry::decode(self.rtt_read(&w.table, idx), w.level, s2.lpa2);
            if matches!(
                e,
                Entry::UnassignedNs | Entry::AssignedNs(_) | Entry::Table(_) | Entry::Invalid
            ) {
                break;
            }
            match ripas {
                None => ripas = Some(e.ripas()),
                Some(r) if r != e.ripas() => break,
                Some(_) => {}
            }
            addr = addr.saturating_add(size);
            if addr >= end {
                break;
            }
        }
        match ripas {
            Some(r) if addr != base => Some((addr, r)),
            _ => None,
        }
    }

    /// Handles an SMC from the realm. Returns true when the REC must exit to the host (with
    /// `exit` filled in).
    pub(crate) fn handle_realm_smc(&self, rec: &mut Rec, exit: &mut RecExit) -> bool {
        let x0 = rec.ctx.gprs[0];
        let fid = smccc::normalize(x0);
        let mut out = RsiOut {
            action: RsiAction::Return,
            x: [0; RESULT_REGS],
        };
        match fid {
            smccc::SMCCC_VERSION => out.x[0] = SMCCC_VERSION_1_2,
            f if crate::psci::is_psci_fid(f) => self.handle_psci(rec, exit, &mut out, f),
            rsi::VERSION => rsi_version(rec, &mut out),
            rsi::FEATURES => {
                // RsiFeatureRegister0: DA, MRO and ATS are not supported; other indices are 0.
                out.x[0] = RsiStatus::Success.to_reg();
                out.x[1] = 0;
            }
            rsi::MEASUREMENT_READ => self.rsi_measurement_read(rec, &mut out),
            rsi::MEASUREMENT_EXTEND => self.rsi_measurement_extend(rec, &mut out),
            rsi::ATTESTATION_TOKEN_INIT => self.rsi_token_init(rec, &mut out),
            rsi::ATTESTATION_TOKEN_CONTINUE => self.rsi_token_continue(rec, exit, &mut out),
            rsi::REALM_CONFIG => self.rsi_realm_config(rec, &mut out),
            rsi::IPA_STATE_SET => rsi_ipa_state_set(rec, exit, &mut out),
            rsi::IPA_STATE_GET => self.rsi_ipa_state_get(rec, &mut out),
            rsi::HOST_CALL => self.rsi_host_call(rec, exit, &mut out),
            _ => {
                log::debug!(
                    "REC {} of realm {:#x}: SMC {x0:#x} -> SMC_UNKNOWN: not an RSI, PSCI or SMCCC call this RMM implements",
                    rec.rec_idx,
                    rec.rd
                );
                out.x[0] = SMC_UNKNOWN;
            }
        }
        match out.action {
            RsiAction::Stage2Abort(level) => {
                emulate_stage2_data_abort(exit, level, rec.ctx.gprs[1]);
            }
            _ => rec.ctx.pc = rec.ctx.pc.wrapping_add(4),
        }
        if matches!(out.action, RsiAction::Return | RsiAction::ReturnAndExit) {
            rec.ctx.gprs[..RESULT_REGS].copy_from_slice(&out.x);
        }
        out.action != RsiAction::Return
    }

    /// `RSI_MEASUREMENT_READ(index)`: x1..x8 = the 64-byte slot (RIM or REM).
    fn rsi_measurement_read(&self, rec: &mut Rec, out: &mut RsiOut) {
        let idx = rec.ctx.gprs[1];
        if idx >= rsi::MEASUREMENT_SLOTS {
            out.x[0] = reject(rec, RsiStatus::ErrorInput, "the index must be 0 to 4");
            return;
        }
        // Straight into x1..x8 of the REC, as words: aligned copies (see `rsi_host_call`).
        let g = self.lock_rec_rd(rec);
        let value = &mut rec.ctx.gprs[1..1 + rsi::MEASUREMENT_SIZE / 8];
        self.rd_read_at(&g, measurement_offset(idx), value.as_mut_bytes());
        drop(g);
        for w in value.iter_mut() {
            *w = u64::from_le(*w);
        }
        // x1..x3 go back with the result, x4..x8 stay as written.
        out.x[0] = RsiStatus::Success.to_reg();
        out.x[1..].copy_from_slice(&rec.ctx.gprs[1..RESULT_REGS]);
    }

    /// `RSI_MEASUREMENT_EXTEND(index, size, value in x3..x10)`: REM = H(REM ‖ value), under
    /// the RD lock.
    fn rsi_measurement_extend(&self, rec: &mut Rec, out: &mut RsiOut) {
        let (idx, size) = (rec.ctx.gprs[1], rec.ctx.gprs[2]);
        let g = self.lock_rec_rd(rec);
        if idx == rsi::RIM_INDEX || idx >= rsi::MEASUREMENT_SLOTS {
            drop(g);
            out.x[0] = reject(rec, RsiStatus::ErrorInput, "the index must be 1 to 4");
            return;
        }
        let Some(len) = usize::try_from(size)
            .ok()
            .filter(|&n| n <= rsi::MEASUREMENT_SIZE)
        else {
            drop(g);
            out.x[0] = reject(rec, RsiStatus::ErrorInput, "the size must be at most 64");
            return;
        };
        let mut value = [0u8; rsi::MEASUREMENT_SIZE];
        for (i, r) in rec.ctx.gprs[3..11].iter().enumerate() {
            value[8 * i..8 * i + 8].copy_from_slice(&r.to_le_bytes());
        }
        // Only the algorithm and the slot are read, and the slot written back.
        let algo = Rd::algorithm_of(self.rd_u64_at(&g, offset_of!(Rd, hash_algo)));
        let at = measurement_offset(idx);
        let mut m = cca_measure::Measurement {
            algo,
            slot: [0; rsi::MEASUREMENT_SIZE],
        };
        self.rd_read_at(&g, at, &mut m.slot);
        m.extend_rem(&value[..len]);
        self.rd_write_at(&g, at, &m.slot);
        out.x[0] = RsiStatus::Success.to_reg();
    }

    /// `RSI_ATTESTATION_TOKEN_CONTINUE(ipa, offset, size)`: the arguments are checked as
    /// TF-RMM does, then [`crate::attest`] signs and copies.
    fn rsi_token_continue(&self, rec: &mut Rec, exit: &mut RecExit, out: &mut RsiOut) {
        let (ipa, offset, size) = (rec.ctx.gprs[1], rec.ctx.gprs[2], rec.ctx.gprs[3]);
        let end = offset.checked_add(size);
        if !cca_abi::granule_aligned(ipa)
            || offset >= GRANULE_SIZE
            || end.is_none_or(|e| e > GRANULE_SIZE)
        {
            out.x[0] = reject(
                rec,
                RsiStatus::ErrorInput,
                "the buffer must be a granule, offset + size inside it",
            );
        } else if !rec.s2().in_par(ipa) {
            out.x[0] = reject(
                rec,
                RsiStatus::ErrorInput,
                "the buffer is not in the protected half",
            );
        } else {
            self.rsi_token_continue_checked(rec, exit, out);
        }
    }

    /// `RSI_REALM_CONFIG(ipa)`: writes the `RsiRealmConfig` fields to the granule at `ipa`.
    fn rsi_realm_config(&self, rec: &mut Rec, out: &mut RsiOut) {
        let ipa = rec.ctx.gprs[1];
        let s2 = rec.s2();
        if !cca_abi::granule_aligned(ipa) || !s2.in_par(ipa) {
            out.x[0] = reject(
                rec,
                RsiStatus::ErrorInput,
                "the IPA must be granule aligned and in the protected half",
            );
            return;
        }
        // What the structure needs from the RD, read before the walk (RD before RTTs).
        let (ipa_bits, hash_algo, rpv) = {
            let g = self.lock_rec_rd(rec);
            let mut rpv = [0u8; 64];
            self.rd_read_at(&g, offset_of!(Rd, rpv), &mut rpv);
            (
                self.rd_u64_at(&g, offset_of!(Rd, ipa_bits)),
                self.rd_u64_at(&g, offset_of!(Rd, hash_algo)),
                rpv,
            )
        };
        match self.ipa_lookup(&s2, ipa) {
            IpaLookup::Ram { pa, _table } => {
                let w = |off: usize, b: &[u8]| {
                    self.platform.realm_write(Pa::new(pa + off as u64), b);
                };
                w(
                    offset_of!(RsiRealmConfig, ipa_width),
                    &ipa_bits.to_le_bytes(),
                );
                // TF-RMM reports SHA-384 as SHA-512 (a bug); this RMM reports the
                // algorithm (the RSI encoding equals the RMI one).
                w(offset_of!(RsiRealmConfig, hash_algo), &[hash_algo as u8]);
                w(
                    offset_of!(RsiRealmConfig, num_aux_planes),
                    &0u64.to_le_bytes(),
                );
                w(
                    offset_of!(RsiRealmConfig, gicv3_vtr),
                    &(self.platform.gic_vtr() as u32).to_le_bytes(),
                );
                w(offset_of!(RsiRealmConfig, ats_plane), &0u64.to_le_bytes());
                w(offset_of!(RsiRealmConfig, rpv), &rpv);
                out.x[0] = RsiStatus::Success.to_reg();
            }
            IpaLookup::Unmapped { level, ripas } => {
                self.unmapped_result(rec, out, level, ripas, "RSI_REALM_CONFIG");
            }
        }
    }

    /// TF-RMM `realm_mem_lock_map` failing: RIPAS EMPTY (or DEV) is the realm's mistake
    /// (`RSI_ERROR_INPUT`); anything else is the host's to fix (a stage 2 abort exit).
    pub(crate) fn unmapped_result(
        &self,
        rec: &Rec,
        out: &mut RsiOut,
        level: i8,
        ripas: Ripas,
        call: &str,
    ) {
        if ripas == Ripas::Empty {
            out.x[0] = reject(rec, RsiStatus::ErrorInput, "the IPA has RIPAS EMPTY");
        } else {
            log::debug!(
                "REC {} of realm {:#x}: {call}({:#x}) -> stage 2 abort at level {level}: the IPA is not mapped RAM",
                rec.rec_idx,
                rec.rd,
                rec.ctx.gprs[1]
            );
            out.action = RsiAction::Stage2Abort(level);
        }
    }

    /// `RSI_IPA_STATE_GET(base, top)`: x1 = top of the run with one RIPAS, x2 = the RIPAS.
    fn rsi_ipa_state_get(&self, rec: &mut Rec, out: &mut RsiOut) {
        let (start, end) = (rec.ctx.gprs[1], rec.ctx.gprs[2]);
        let s2 = rec.s2();
        if !cca_abi::granule_aligned(start)
            || !s2.in_par(start)
            || !cca_abi::granule_aligned(end)
            || !s2.in_par(end.wrapping_sub(1))
            || start >= end
        {
            out.x[0] = reject(
                rec,
                RsiStatus::ErrorInput,
                "base and top must be granule aligned, base < top, in the protected half",
            );
            return;
        }
        match self.ipa_ripas_run(&s2, start, end) {
            Some((top, ripas)) => {
                out.x[0] = RsiStatus::Success.to_reg();
                out.x[1] = top.min(end);
                out.x[2] = ripas as u64;
            }
            None => {
                out.x[0] = reject(rec, RsiStatus::ErrorInput, "the base has no RIPAS");
            }
        }
    }

    /// `RSI_HOST_CALL(ipa)`: exits with the realm's `RsiHostCall` (immediate and x0..x30).
    fn rsi_host_call(&self, rec: &mut Rec, exit: &mut RecExit, out: &mut RsiOut) {
        let ipa = rec.ctx.gprs[1];
        let size = core::mem::size_of::<rsi::RsiHostCall>() as u64;
        if ipa % size != 0 {
            out.x[0] = reject(
                rec,
                RsiStatus::ErrorInput,
                "the IPA is not 256-byte aligned",
            );
            return;
        }
        // With 256-byte alignment the structure never crosses a granule.
        if !rec.s2().in_par(ipa) {
            out.x[0] = reject(
                rec,
                RsiStatus::ErrorInput,
                "the IPA is not in the protected half",
            );
            return;
        }
        let s2 = rec.s2();
        let page = ipa & !(GRANULE_SIZE - 1);
        match self.ipa_lookup(&s2, page) {
            IpaLookup::Ram { pa, _table } => {
                // Words, so that the copy and the reads below are aligned (the RMM is built
                // for strict alignment, where byte buffers are read a byte at a time).
                let mut buf = [0u64; size_of::<rsi::RsiHostCall>() / 8];
                self.platform
                    .realm_read(Pa::new(pa + (ipa - page)), buf.as_mut_bytes());
                // TF-RMM reads `imm` as 32 bits.
                exit.imm = u64::from_le(buf[offset_of!(rsi::RsiHostCall, imm) / 8]) as u32;
                exit.plane = 0;
                let gprs = &buf[offset_of!(rsi::RsiHostCall, gprs) / 8..];
                for (g, w) in exit.gprs.iter_mut().zip(gprs) {
                    *g = u64::from_le(*w);
                }
                exit.exit_reason = exit_reason::HOST_CALL;
                rec.pending = PENDING_HOST_CALL;
                rec.host_call_ipa = ipa;
                out.action = RsiAction::Exit;
            }
            IpaLookup::Unmapped { level, ripas } => {
                self.unmapped_result(rec, out, level, ripas, "RSI_HOST_CALL");
            }
        }
    }

    /// The host call part of `REC_ENTER` (TF-RMM `complete_host_call`): copies
    /// `enter.gprs` into the realm's `RsiHostCall` and sets x0 = `RSI_SUCCESS`. Returns
    /// false, with a stage 2 abort in `exit`, if the structure's page is no longer mapped
    /// (the REC then does not run and the host call stays pending).
    pub(crate) fn complete_host_call(
        &self,
        rec: &mut Rec,
        enter_gprs: &[u64; 31],
        exit: &mut RecExit,
    ) -> bool {
        if rec.pending != PENDING_HOST_CALL {
            return true;
        }
        let ipa = rec.host_call_ipa;
        let s2 = rec.s2();
        let page = ipa & !(GRANULE_SIZE - 1);
        match self.ipa_lookup(&s2, page) {
            IpaLookup::Ram { pa, _table } => {
                let mut b = [0u8; 31 * 8];
                for (c, g) in b.chunks_exact_mut(8).zip(enter_gprs) {
                    c.copy_from_slice(&g.to_le_bytes());
                }
                let off = offset_of!(rsi::RsiHostCall, gprs) as u64;
                self.platform
                    .realm_write(Pa::new(pa + (ipa - page) + off), &b);
            }
            IpaLookup::Unmapped { level, ripas } if ripas != Ripas::Empty => {
                log::debug!(
                    "REC_ENTER of REC {} of realm {:#x}: the RsiHostCall at {ipa:#x} is not mapped: stage 2 abort at level {level}",
                    rec.rec_idx,
                    rec.rd
                );
                emulate_stage2_data_abort(exit, level, ipa);
                return false;
            }
            IpaLookup::Unmapped { .. } => {
                // TF-RMM: the realm made the page EMPTY meanwhile; the results are dropped
                // and the realm will fault if it reads the structure.
                log::debug!(
                    "REC_ENTER of REC {} of realm {:#x}: the RsiHostCall at {ipa:#x} has RIPAS EMPTY: results dropped",
                    rec.rec_idx,
                    rec.rd
                );
            }
        }
        rec.ctx.gprs[0] = RsiStatus::Success.to_reg();
        rec.pending = crate::rec::PENDING_NONE;
        rec.host_call_ipa = 0;
        true
    }
}

/// Logs a rejected RSI call and returns the status register value.
pub(crate) fn reject(rec: &Rec, status: RsiStatus, why: &str) -> u64 {
    let fid = smccc::normalize(rec.ctx.gprs[0]);
    let g = &rec.ctx.gprs;
    log::debug!(
        "REC {} of realm {:#x}: {}({:#x}, {:#x}, {:#x}, {:#x}) -> {}: {why}",
        rec.rec_idx,
        rec.rd,
        rsi::name(fid)
            .or_else(|| cca_abi::psci::name(fid))
            .unwrap_or("SMC"),
        g[1],
        g[2],
        g[3],
        g[4],
        status.name()
    );
    status.to_reg()
}

/// `RSI_VERSION(requested)`: SUCCESS with x1 = requested if it is implemented, else
/// ERROR_INPUT with x1 = the highest; x2 = the highest.
fn rsi_version(rec: &Rec, out: &mut RsiOut) {
    let req = rec.ctx.gprs[1];
    let highest = RSI_REVISIONS[RSI_REVISIONS.len() - 1];
    if RSI_REVISIONS.contains(&req) {
        out.x[0] = RsiStatus::Success.to_reg();
        out.x[1] = req;
    } else {
        out.x[0] = reject(
            rec,
            RsiStatus::ErrorInput,
            "revision not implemented (1.0 and 1.1 are)",
        );
        out.x[1] = highest;
    }
    out.x[2] = highest;
}

/// `RSI_IPA_STATE_SET(base, top, ripas, flags)`: records the request and exits with
/// `RMI_EXIT_RIPAS_CHANGE`; x0 = SUCCESS, x1 = top until the next `REC_ENTER` answers.
fn rsi_ipa_state_set(rec: &mut Rec, exit: &mut RecExit, out: &mut RsiOut) {
    let g = rec.ctx.gprs;
    let (base, top, ripas, flags) = (g[1], g[2], g[3], g[4]);
    let s2 = rec.s2();
    let ripas = match ripas {
        0 => Ripas::Empty,
        1 => Ripas::Ram,
        _ => {
            out.x[0] = reject(rec, RsiStatus::ErrorInput, "the RIPAS must be EMPTY or RAM");
            return;
        }
    };
    if !cca_abi::granule_aligned(base)
        || !cca_abi::granule_aligned(top)
        || top <= base
        || top > s2.par_size()
    {
        out.x[0] = reject(
            rec,
            RsiStatus::ErrorInput,
            "base and top must be granule aligned, base < top <= the protected half's size",
        );
        return;
    }
    // TF-RMM stores x4 as the RsiRipasChangeDestroyed value: only CHANGE_DESTROYED (1)
    // lets DESTROYED entries change.
    rec.set_ripas_request(base, top, ripas, flags == rsi::CHANGE_DESTROYED);
    exit.exit_reason = exit_reason::RIPAS_CHANGE;
    exit.ripas_base = base;
    exit.ripas_top = top;
    exit.ripas_value = ripas as u8;
    out.action = RsiAction::ReturnAndExit;
    out.x[0] = RsiStatus::Success.to_reg();
    out.x[1] = top;
}

/// TF-RMM `emulate_stage2_data_abort`: a data abort exit on `ipa` as a translation fault at
/// `level`, so the host maps the page (FAR 0, HPFAR = ipa >> 8).
pub(crate) fn emulate_stage2_data_abort(exit: &mut RecExit, level: i8, ipa: u64) {
    exit.exit_reason = exit_reason::SYNC;
    exit.esr = (esr::ec::DABT_LOW << esr::EC_SHIFT) | esr::translation_fault_fsc(level);
    exit.far = 0;
    exit.hpfar = ipa >> 8;
}
