//! `REC_ENTER`: running a REC until something needs the host (TF-RMM `runtime/rmi/run.c`,
//! `runtime/core/run.c`, `runtime/core/exit.c`, `runtime/core/sysregs.c`).
//!
//! # Failure conditions, in TF-RMM's order
//!
//! | check | status |
//! |---|---|
//! | the `RecRun` address is not a tracked granule, or not NS | `RMI_ERROR_INPUT` |
//! | the REC address is not a tracked granule in state REC | `RMI_ERROR_INPUT` |
//! | the REC is running on another CPU (its reference count is not 0) | `RMI_ERROR_REC` |
//! | reading `RecRun.enter` faults (the page left the NS PAS) | `RMI_ERROR_INPUT` |
//! | the realm is not ACTIVE (NEW, SYSTEM_OFF, ZOMBIE) | `RMI_ERROR_REALM` |
//! | the REC is not runnable | `RMI_ERROR_REC` |
//! | a PSCI request of the REC waits for `PSCI_COMPLETE` | `RMI_ERROR_REC` |
//! | [`Platform::gic_host_state_valid`] is false | `RMI_ERROR_REC` |
//! | `INJECT_SEA`, but the last exit was not a data abort at an unprotected IPA | `RMI_ERROR_REC` |
//! | `EMUL_MMIO` without `INJECT_SEA`, but the last exit was not an emulatable data abort | `RMI_ERROR_REC` |
//! | writing `RecRun.exit` faults | `RMI_ERROR_INPUT` (the REC ran) |
//!
//! As in TF-RMM, `RIPAS_RESPONSE` without a pending RIPAS change is ignored, not refused.
//!
//! # What happens
//!
//! The REC's reference count goes to 1 under its lock (the lock is then dropped), the 0x300
//! bytes of `RmiRecEnter` are read once into RMM memory, and the realm's running-REC count
//! ([`crate::Rd::active_recs`]) is incremented under the RD lock if the realm is ACTIVE; both
//! are undone when the call returns. No lock is held while the realm runs.
//!
//! Then the entry completes what the last exit asked of the host: `INJECT_SEA` (an SEA into
//! the realm), `EMUL_MMIO` (the read value into Rt, sign-extended per SAS/SSE/SF, and PC + 4),
//! the host call results (into the realm's `RsiHostCall`; if its page is no longer mapped
//! the REC does not run and the exit is a stage 2 data abort on it), the RIPAS change
//! answer (x0 = SUCCESS, x1 = next address, x2 = ACCEPT or REJECT), a trapped sysreg read
//! (`enter.gprs[0]` into Rt). `TRAP_WFI`/`TRAP_WFE` become [`crate::run::trap`] bits in
//! `RealmContext.traps`.
//!
//! The REC then runs ([`Platform::run_realm`]) until an exit the RMM cannot handle itself:
//! RSI and PSCI calls answered locally, SEAs and UNDEFs injected, ID register reads (the
//! realm's view, [`crate::idregs`]) and other trapped sysreg accesses emulated all re-enter
//! the realm directly. The exit is reported in a zero-filled
//! `RmiRecExit` (all 0x800 bytes written), with the realm's timers.

use cca_abi::rmi::{
    exit_reason, rec_enter_flags as flags, RecEnter, RecExit, RecRun, Ripas, REC_ENTER_READ_SIZE,
};
use cca_abi::rsi::{RsiResponse, RsiStatus};
use core::mem::offset_of;
use zerocopy::{FromZeros, IntoBytes};

use crate::dispatch::Regs;
use crate::error::{Reason, RmiError};
use crate::esr::{self, ec};
use crate::granule::{GranuleState, LockedGranule};
use crate::idregs;
use crate::pa::Pa;
use crate::platform::Platform;
use crate::realm::{Rd, S2Ctx};
use crate::rec::{Rec, PENDING_PSCI, PENDING_RIPAS};
use crate::rmm::Rmm;
use crate::rsi::IpaLookup;
use crate::run::{trap, ExitKind, RealmExit};
use cca_abi::rmi::{RealmState, RmiStatus};

/// Offset of `RmiRecExit` in `RmiRecRun`.
const EXIT_OFFSET: u64 = offset_of!(RecRun, exit) as u64;

impl<'a, P: Platform> Rmm<'a, P> {
    /// `REC_ENTER(rec, run)`.
    pub(crate) fn cmd_rec_enter(&self, regs: &Regs, _out: &mut Regs) -> Result<(), RmiError> {
        let (rec_addr, run_addr) = (regs[1], regs[2]);
        let run_pa = Pa::new(run_addr);
        let Some(g_run) = self.granules.granule(run_pa) else {
            return Err(RmiError::new(
                RmiStatus::ErrorInput,
                Reason::Untracked(run_pa),
            ));
        };
        let found = g_run.state_unlocked();
        if found != GranuleState::Ns {
            return Err(RmiError::new(
                RmiStatus::ErrorInput,
                Reason::WrongState {
                    pa: run_pa,
                    found,
                    expected: GranuleState::Ns,
                },
            ));
        }
        let rec_pa = Pa::new(rec_addr);
        let mut rec = {
            let mut g = self
                .granules
                .lock(rec_pa, GranuleState::Rec)
                .map_err(|e| RmiError::input_lock(rec_pa, GranuleState::Rec, e))?;
            if g.refcount() != 0 {
                return Err(RmiError::rec("the REC is running on another CPU"));
            }
            g.refcount_add(1);
            self.rec_read(&g)
        };
        let result = self.rec_enter_claimed(&mut rec, run_pa);
        // The reference kept the REC a REC: write it back and drop the reference.
        let Some(g) = self.granules.granule(rec_pa) else {
            unreachable!("a REC granule is tracked");
        };
        let mut g = g.lock();
        self.rec_write(&g, &rec);
        g.refcount_sub(1);
        result
    }

    /// The part of `REC_ENTER` that runs with the REC claimed.
    fn rec_enter_claimed(&self, rec: &mut Rec, run_pa: Pa) -> Result<(), RmiError> {
        // Words, not bytes: aligned copies and reads (the RMM is built for strict alignment).
        let mut buf = [0u64; REC_ENTER_READ_SIZE / 8];
        self.read_ns_page(run_pa.get(), buf.as_mut_bytes())?;
        let entry_flags = u64::from_le(buf[offset_of!(RecEnter, flags) / 8]);
        let g = offset_of!(RecEnter, gprs) / 8;
        let gprs: [u64; 31] = core::array::from_fn(|i| u64::from_le(buf[g + i]));
        self.realm_running_inc(rec)?;
        let result = self.rec_enter_counted(rec, entry_flags, &gprs, run_pa);
        self.realm_running_dec(rec);
        result
    }

    /// Counts the REC as running in its RD if the realm is ACTIVE (RD lock held briefly).
    /// Only the RD's first two words (state, running count) are read and the count written.
    fn realm_running_inc(&self, rec: &Rec) -> Result<(), RmiError> {
        let g = self.lock_rec_rd(rec);
        let [state, running] = self.rd_state_and_running(&g);
        if RealmState::from_u64(state) != Some(RealmState::Active) {
            return Err(RmiError::new(
                RmiStatus::ErrorRealm,
                Reason::Value("the realm is not ACTIVE; its state is", state),
            ));
        }
        let running = running
            .checked_add(1)
            .ok_or_else(|| RmiError::realm("the running-REC count overflows"))?;
        self.rd_set_running(&g, running);
        Ok(())
    }

    /// Undoes [`Self::realm_running_inc`].
    fn realm_running_dec(&self, rec: &Rec) {
        let g = self.lock_rec_rd(rec);
        let [_, running] = self.rd_state_and_running(&g);
        debug_assert!(running != 0, "running-REC count underflow");
        self.rd_set_running(&g, running.saturating_sub(1));
    }

    /// `Rd::state` and `Rd::active_recs` of a locked RD.
    fn rd_state_and_running(&self, g: &LockedGranule<'_>) -> [u64; 2] {
        const _: () = assert!(core::mem::offset_of!(Rd, active_recs) == 8);
        let mut w = [0u64; 2];
        self.platform.realm_read(g.pa(), w.as_mut_bytes());
        w
    }

    /// Writes `Rd::active_recs` of a locked RD.
    fn rd_set_running(&self, g: &LockedGranule<'_>, running: u64) {
        self.platform.realm_write(
            Pa::new(g.pa().get() + core::mem::offset_of!(Rd, active_recs) as u64),
            &running.to_le_bytes(),
        );
    }

    /// The part of `REC_ENTER` that runs with the REC counted as running.
    fn rec_enter_counted(
        &self,
        rec: &mut Rec,
        entry_flags: u64,
        enter_gprs: &[u64; 31],
        run_pa: Pa,
    ) -> Result<(), RmiError> {
        if rec.runnable == 0 {
            return Err(RmiError::rec("the REC is not runnable"));
        }
        if rec.pending == PENDING_PSCI {
            return Err(RmiError::rec(
                "a PSCI request of the REC waits for PSCI_COMPLETE",
            ));
        }
        if !self.platform.gic_host_state_valid() {
            return Err(RmiError::rec(
                "the GIC list registers are invalid (HW set, or a vINTID twice)",
            ));
        }
        self.complete_sea(rec, entry_flags)?;
        self.complete_mmio(rec, entry_flags, enter_gprs[0])?;
        let mut exit = RecExit::new_zeroed();
        if self.complete_host_call(rec, enter_gprs, &mut exit) {
            complete_ripas(rec, entry_flags);
            complete_sysreg(rec, enter_gprs[0]);
            rec.last_esr = 0;
            rec.ctx.traps = 0;
            if entry_flags & flags::TRAP_WFI != 0 {
                rec.ctx.traps |= trap::WFI;
            }
            if entry_flags & flags::TRAP_WFE != 0 {
                rec.ctx.traps |= trap::WFE;
            }
            self.run_loop(rec, &mut exit);
        }
        self.write_rec_exit(run_pa, &exit)
    }

    /// Writes `RmiRecExit` (0x800 bytes) to the `RecRun` page, which must still be NS.
    fn write_rec_exit(&self, run_pa: Pa, exit: &RecExit) -> Result<(), RmiError> {
        let g = self
            .granules
            .lock_while_state(run_pa, GranuleState::Ns)
            .map_err(|e| RmiError::input_lock(run_pa, GranuleState::Ns, e))?;
        let r = self
            .platform
            .ns_write(Pa::new(run_pa.get() + EXIT_OFFSET), exit.as_bytes())
            .map_err(|_| RmiError::new(RmiStatus::ErrorInput, Reason::NsFault(run_pa)));
        drop(g);
        r
    }

    /// `INJECT_SEA` (TF-RMM `complete_sea_insertion`).
    fn complete_sea(&self, rec: &mut Rec, entry_flags: u64) -> Result<(), RmiError> {
        if entry_flags & flags::INJECT_SEA == 0 {
            return Ok(());
        }
        if esr::class(rec.last_esr) != ec::DABT_LOW {
            return Err(RmiError::rec(
                "INJECT_SEA, but the last exit was not a data abort",
            ));
        }
        if rec.s2().in_par(esr::hpfar_ipa(rec.last_hpfar)) {
            return Err(RmiError::rec(
                "INJECT_SEA, but the last data abort was in the protected half",
            ));
        }
        self.inject_sea(rec, rec.last_esr, rec.last_far);
        Ok(())
    }

    /// `EMUL_MMIO` (TF-RMM `complete_mmio_emulation`).
    fn complete_mmio(&self, rec: &mut Rec, entry_flags: u64, value: u64) -> Result<(), RmiError> {
        if entry_flags & flags::EMUL_MMIO == 0 || entry_flags & flags::INJECT_SEA != 0 {
            return Ok(());
        }
        let e = rec.last_esr;
        if esr::class(e) != ec::DABT_LOW || e & esr::ISV == 0 {
            return Err(RmiError::rec(
                "EMUL_MMIO, but the last exit was not an emulatable data abort",
            ));
        }
        let rt = esr::srt(e);
        if !esr::is_write(e) && rt != 31 {
            rec.ctx.gprs[rt] = esr::mmio_load_value(e, value);
        }
        rec.ctx.pc = rec.ctx.pc.wrapping_add(4);
        Ok(())
    }

    /// Injects a synchronous external abort after the abort `esr_el2` at `far`.
    fn inject_sea(&self, rec: &mut Rec, esr_el2: u64, far: u64) {
        let e = esr::esr_el1_for_abort(esr_el2, rec.ctx.pstate, esr::FSC_SEA);
        log::debug!(
            "REC {} of realm {:#x}: SEA injected at pc {:#x} (ESR_EL1 {e:#x}, FAR {far:#x})",
            rec.rec_idx,
            rec.rd,
            rec.ctx.pc
        );
        self.platform.inject_sync_exception(&mut rec.ctx, e, far);
    }

    /// Injects an UNDEF at the realm's current PC.
    fn inject_undef(&self, rec: &mut Rec) {
        log::debug!(
            "REC {} of realm {:#x}: UNDEF injected at pc {:#x}",
            rec.rec_idx,
            rec.rd,
            rec.ctx.pc
        );
        self.platform
            .inject_sync_exception(&mut rec.ctx, esr::ESR_EL1_UNDEF, 0);
    }

    /// Runs the REC until an exit that needs the host; `exit` (all zero on entry) then
    /// describes it. An exit the RMM handles itself (an RSI call answered in the realm, an
    /// emulated ID register, an injected exception) writes nothing into `exit` but its
    /// `exit_reason`, so only that is cleared before the realm runs again: `RecExit` is
    /// zeroed once per `REC_ENTER`, not once per exit.
    fn run_loop(&self, rec: &mut Rec, exit: &mut RecExit) {
        loop {
            let e = self.platform.run_realm(&mut rec.ctx);
            if self.handle_exit(rec, &e, exit) {
                self.platform.park_realm(&mut rec.ctx);
                exit.cntp_ctl = e.timers.cntp_ctl;
                exit.cntp_cval = e.timers.cntp_cval;
                exit.cntv_ctl = e.timers.cntv_ctl;
                exit.cntv_cval = e.timers.cntv_cval;
                return;
            }
            exit.exit_reason = 0;
            debug_assert!(
                exit.as_bytes().iter().all(|&b| b == 0),
                "an exit handled inside the realm wrote into RecExit"
            );
        }
    }

    /// TF-RMM `handle_realm_exit`: true to return to the host.
    fn handle_exit(&self, rec: &mut Rec, e: &RealmExit, exit: &mut RecExit) -> bool {
        match e.kind {
            ExitKind::Sync => {
                exit.exit_reason = exit_reason::SYNC;
                let to_host = self.handle_sync(rec, e, exit);
                if to_host {
                    // ISV stays only if the host was shown an emulatable abort, so that
                    // EMUL_MMIO is refused otherwise.
                    rec.last_esr = if exit.esr & esr::ISV == 0 {
                        e.esr & !esr::ISV
                    } else {
                        e.esr
                    };
                    rec.last_far = e.far;
                    rec.last_hpfar = e.hpfar;
                }
                to_host
            }
            ExitKind::Irq => {
                exit.exit_reason = exit_reason::IRQ;
                true
            }
            ExitKind::Fiq => {
                exit.exit_reason = exit_reason::FIQ;
                true
            }
            ExitKind::SError => {
                exit.exit_reason = exit_reason::SERROR;
                self.handle_serror(rec, e.esr, exit);
                rec.last_esr = e.esr;
                rec.last_far = e.far;
                rec.last_hpfar = e.hpfar;
                true
            }
        }
    }

    /// TF-RMM `handle_exception_sync`: true to return to the host.
    fn handle_sync(&self, rec: &mut Rec, e: &RealmExit, exit: &mut RecExit) -> bool {
        match esr::class(e.esr) {
            ec::WFX => {
                exit.esr = e.esr & (esr::EC_MASK | esr::WFX_TI);
                rec.ctx.pc = rec.ctx.pc.wrapping_add(4);
                true
            }
            ec::HVC => {
                // The SMC conduit is the only one for realms.
                self.inject_undef(rec);
                false
            }
            ec::SMC => self.handle_realm_smc(rec, exit),
            ec::SYSREG => self.handle_sysreg(rec, e.esr, exit),
            ec::IABT_LOW => self.handle_instruction_abort(rec, e, exit),
            ec::DABT_LOW => self.handle_data_abort(rec, e, exit),
            ec::SVE | ec::SME => {
                // SVE and SME are not offered to realms by this RMM.
                self.inject_undef(rec);
                false
            }
            other => {
                log::debug!(
                    "REC {} of realm {:#x}: unhandled synchronous exit, ESR {:#x} (EC {other:#x}): reported with an empty syndrome",
                    rec.rec_idx,
                    rec.rd,
                    e.esr
                );
                true
            }
        }
    }

    /// True when `ipa` is in the protected half and has RIPAS EMPTY (TF-RMM `ipa_is_empty`).
    fn ipa_is_empty(&self, s2: &S2Ctx, ipa: u64) -> bool {
        if !s2.in_par(ipa) {
            return false;
        }
        matches!(
            self.ipa_lookup(s2, ipa),
            IpaLookup::Unmapped {
                ripas: Ripas::Empty,
                ..
            }
        )
    }

    /// TF-RMM `handle_sync_external_abort`: true (exit to the host) for an external abort.
    fn handle_sync_external_abort(&self, rec: &mut Rec, e: &RealmExit, exit: &mut RecExit) -> bool {
        if !esr::fsc_is_external_abort(e.esr & esr::FSC_MASK) {
            return false;
        }
        match (e.esr & esr::SET_MASK) >> esr::SET_SHIFT {
            esr::SET_UER => {
                // Recoverable: the realm takes the SEA, the host is told.
                self.inject_sea(rec, e.esr, e.far);
                exit.esr = e.esr & esr::NONEMULATED_ABORT_MASK;
            }
            esr::SET_UEO => {
                // Restartable: the realm runs the instruction again.
                exit.esr = e.esr & esr::NONEMULATED_ABORT_MASK;
            }
            _ => panic!(
                "uncontainable synchronous external abort in realm {:#x}: ESR_EL2 {:#x}",
                rec.rd, e.esr
            ),
        }
        true
    }

    /// TF-RMM `handle_data_abort`: true to return to the host.
    fn handle_data_abort(&self, rec: &mut Rec, e: &RealmExit, exit: &mut RecExit) -> bool {
        if self.handle_sync_external_abort(rec, e, exit) {
            return true;
        }
        let s2 = rec.s2();
        let fipa = esr::hpfar_ipa(e.hpfar);
        if self.ipa_is_empty(&s2, fipa) || fipa >= s2.ipa_size() {
            self.inject_sea(rec, e.esr, e.far);
            return false;
        }
        let mut syndrome = e.esr;
        let mut far = 0;
        let mut write_val = 0;
        if rec.ctx.pstate & esr::SPSR_NRW != 0 {
            // MMIO emulation of AArch32 accesses is not supported.
            syndrome &= !esr::ISV & esr::NONEMULATED_ABORT_MASK;
        } else if s2.in_par(fipa) {
            syndrome &= esr::NONEMULATED_ABORT_MASK;
        } else if syndrome & esr::ISV == 0 {
            syndrome &= esr::NONEMULATED_ABORT_MASK | esr::IL;
        } else {
            if esr::is_write(syndrome) {
                let rt = esr::srt(syndrome);
                if rt != 31 {
                    write_val = rec.ctx.gprs[rt] & esr::access_mask(syndrome);
                }
            }
            // The page offset only: the page is in HPFAR (TF-RMM `far & ~GRANULE_MASK`).
            far = e.far & (cca_abi::GRANULE_SIZE - 1);
            syndrome &= esr::EMULATED_ABORT_MASK;
        }
        exit.esr = syndrome;
        exit.far = far;
        exit.hpfar = e.hpfar;
        exit.gprs[0] = write_val;
        exit.rtt_tree = 0;
        true
    }

    /// TF-RMM `handle_instruction_abort`: true to return to the host.
    fn handle_instruction_abort(&self, rec: &mut Rec, e: &RealmExit, exit: &mut RecExit) -> bool {
        if self.handle_sync_external_abort(rec, e, exit) {
            return true;
        }
        let s2 = rec.s2();
        let fipa = esr::hpfar_ipa(e.hpfar);
        let fsc = e.esr & esr::FSC_MASK;
        if esr::fsc_is_permission_fault(fsc) || !s2.in_par(fipa) || self.ipa_is_empty(&s2, fipa) {
            self.inject_sea(rec, e.esr, e.far);
            return false;
        }
        if fsc & !0x3 != esr::FSC_TRANSLATION_L0 {
            log::warn!(
                "REC {} of realm {:#x}: unexpected instruction abort, FSC {fsc:#x}, FAR {:#x}, HPFAR {:#x}",
                rec.rec_idx,
                rec.rd,
                e.far,
                e.hpfar
            );
        }
        exit.hpfar = e.hpfar;
        exit.esr = e.esr & esr::NONEMULATED_ABORT_MASK;
        exit.rtt_tree = 0;
        true
    }

    /// TF-RMM `handle_sysreg_access_trap`: true to return to the host.
    fn handle_sysreg(&self, rec: &mut Rec, syndrome: u64, exit: &mut RecExit) -> bool {
        let enc = syndrome & esr::SYSREG_MASK;
        let rt = esr::sysreg_rt(syndrome);
        let read = syndrome & esr::SYSREG_READ != 0;
        if enc & esr::SYSREG_ID_MASK == esr::SYSREG_ID {
            self.handle_id_sysreg(rec, syndrome);
            return false;
        }
        if enc & esr::SYSREG_ICC_EL1_MASK == esr::SYSREG_ICC_EL1 || enc == esr::SYSREG_ICC_PMR_EL1 {
            // GIC CPU interface registers: the host emulates them. A write's value is in
            // gprs[0]; a read's comes back in enter.gprs[0] and the next REC_ENTER puts it
            // in Rt (hidden from the host).
            if !read && rt != 31 {
                exit.gprs[0] = rec.ctx.gprs[rt];
            }
            exit.esr = syndrome & !esr::SYSREG_RT_MASK;
            rec.ctx.pc = rec.ctx.pc.wrapping_add(4);
            return true;
        }
        if enc & esr::SYSREG_BRBE_MASK == esr::SYSREG_BRBE
            || enc & esr::SYSREG_MPAM_MASK == esr::SYSREG_MPAM
            || enc == esr::SYSREG_S2POR_EL1
        {
            self.inject_undef(rec);
            return false;
        }
        // Anything else (the debug, trace, PMU, RAS error record, SCXTNUM, TCR2, SCTLR2,
        // PIE/POE registers the firmware traps, see `idregs::RealmTraps`): RAZ/WI.
        log::debug!(
            "REC {} of realm {:#x}: {} of system register {enc:#x} trapped: RAZ/WI",
            rec.rec_idx,
            rec.rd,
            if read { "read" } else { "write" }
        );
        if read && rt != 31 {
            rec.ctx.gprs[rt] = 0;
        }
        rec.ctx.pc = rec.ctx.pc.wrapping_add(4);
        false
    }

    /// A trapped access to the ID register space, op0 3, op1 0, CRn 0 (TF-RMM
    /// `handle_id_sysreg_trap`; `HCR_EL2.TID3` traps the reads): a read gets the realm's
    /// view of the register ([`idregs::realm_view`], 0 for reserved encodings) and the PC
    /// moves past the MRS; a write is an MSR to a read-only register, which is UNDEFINED,
    /// so the realm takes an UNDEF at the MSR. The realm is re-entered either way.
    fn handle_id_sysreg(&self, rec: &mut Rec, syndrome: u64) {
        if syndrome & esr::SYSREG_READ == 0 {
            self.inject_undef(rec);
            return;
        }
        let rt = esr::sysreg_rt(syndrome);
        if rt != 31 {
            rec.ctx.gprs[rt] = idregs::realm_view(
                &self.id_regs,
                &rec.realm_cpu(),
                esr::sysreg_crm(syndrome),
                esr::sysreg_op2(syndrome),
                rec.ctx.vmpidr,
            );
        }
        rec.ctx.pc = rec.ctx.pc.wrapping_add(4);
    }

    /// TF-RMM `handle_exception_serror_lel`: the host always sees the SError. Uncontainable
    /// or unrecognised errors stop the machine, as TF-RMM's `system_abort`.
    fn handle_serror(&self, rec: &Rec, syndrome: u64, exit: &mut RecExit) {
        if syndrome & esr::SERROR_IDS != 0 {
            panic!(
                "SError with an implementation-defined syndrome in realm {:#x}: ESR_EL2 {syndrome:#x}",
                rec.rd
            );
        }
        if syndrome & esr::SERROR_DFSC_MASK != esr::SERROR_DFSC_ASYNC {
            panic!(
                "SError with an uncategorised fault status in realm {:#x}: ESR_EL2 {syndrome:#x}",
                rec.rd
            );
        }
        match (syndrome & esr::SERROR_AET_MASK) >> esr::SERROR_AET_SHIFT {
            esr::AET_UEU | esr::AET_UER => {
                // TF-RMM also injects a virtual SError into the realm here; this RMM cannot
                // inject SErrors yet.
                log::warn!(
                    "REC {} of realm {:#x}: unrecoverable SError (ESR_EL2 {syndrome:#x}) not injected into the realm",
                    rec.rec_idx,
                    rec.rd
                );
            }
            esr::AET_CE | esr::AET_UEO => {}
            _ => panic!(
                "uncontainable SError in realm {:#x}: ESR_EL2 {syndrome:#x}",
                rec.rd
            ),
        }
        exit.esr = syndrome & esr::SERROR_MASK;
    }
}

/// The RIPAS change answer (TF-RMM `complete_set_ripas`): x0 = SUCCESS, x1 = the next
/// address, x2 = REJECT only for a RAM request the host stopped short of and rejected.
fn complete_ripas(rec: &mut Rec, entry_flags: u64) {
    if rec.pending != PENDING_RIPAS {
        return;
    }
    let reject = entry_flags & flags::RIPAS_RESPONSE != 0;
    let rejected =
        rec.ripas_value == Ripas::Ram as u64 && rec.ripas_addr != rec.ripas_top && reject;
    rec.ctx.gprs[0] = RsiStatus::Success.to_reg();
    rec.ctx.gprs[1] = rec.ripas_addr;
    rec.ctx.gprs[2] = if rejected {
        RsiResponse::Reject as u64
    } else {
        RsiResponse::Accept as u64
    };
    rec.clear_ripas_request();
}

/// A trapped sysreg read the host emulated (TF-RMM `complete_sysreg_emulation`).
fn complete_sysreg(rec: &mut Rec, value: u64) {
    let e = rec.last_esr;
    if esr::class(e) != ec::SYSREG || e & esr::SYSREG_READ == 0 {
        return;
    }
    let rt = esr::sysreg_rt(e);
    if rt != 31 {
        rec.ctx.gprs[rt] = value;
    }
}
