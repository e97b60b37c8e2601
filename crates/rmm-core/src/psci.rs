//! PSCI for realms: the calls a REC makes through the SMC conduit (TF-RMM
//! `runtime/rsi/psci.c`) and `RMI_PSCI_COMPLETE`, with which the host answers the ones that
//! name another REC (TF-RMM `runtime/rmi/rec.c` `smc_psci_complete`).
//!
//! | call | RMM behaviour |
//! |---|---|
//! | `PSCI_VERSION` | 1.1 |
//! | `PSCI_FEATURES` | SUCCESS for the calls below and `SMCCC_VERSION`, else NOT_SUPPORTED |
//! | `CPU_SUSPEND` | SUCCESS, and a PSCI exit (notification; x0 = FID) |
//! | `CPU_OFF` | the REC stops being runnable; SUCCESS; PSCI exit (notification) |
//! | `CPU_ON` | entry outside the protected half: INVALID_ADDRESS; target index not below the REC count: INVALID_PARAMETERS; the caller itself: ALREADY_ON; else PSCI exit (x0 = FID, x1 = target MPIDR) and the caller waits for `PSCI_COMPLETE` |
//! | `AFFINITY_INFO` | lowest level not 0: INVALID_PARAMETERS; bad target: INVALID_PARAMETERS; the caller itself: ON; else PSCI exit and `PSCI_COMPLETE` |
//! | `SYSTEM_OFF`, `SYSTEM_RESET` | the realm becomes SYSTEM_OFF; PSCI exit (x0 = FID) |
//! | anything else in the PSCI range | NOT_SUPPORTED |

use cca_abi::psci::{self, PsciStatus, PSCI_VERSION_1_1};
use cca_abi::rmi::{exit_reason, RealmState, RecExit};
use cca_abi::smccc::SMCCC_VERSION;

use crate::dispatch::Regs;
use crate::error::RmiError;
use crate::granule::GranuleState;
use crate::pa::Pa;
use crate::platform::Platform;
use crate::rec::{Rec, PENDING_NONE, PENDING_PSCI, PSTATE_INIT};
use crate::rmm::Rmm;
use crate::rsi::{mpidr_el1_to_rec_idx, RsiAction, RsiOut};

/// True for the function identifiers TF-RMM routes to its PSCI handler: function numbers
/// 0x0..=0x14 of the SMC32 and SMC64 standard service ranges.
pub const fn is_psci_fid(fid: u32) -> bool {
    (fid >= 0x8400_0000 && fid <= 0x8400_0014) || (fid >= 0xC400_0000 && fid <= 0xC400_0014)
}

/// Copies x0..x(count-1) of the realm into the exit (the rest stays zero).
fn forward_args(rec: &Rec, exit: &mut RecExit, count: usize) {
    exit.gprs[..count].copy_from_slice(&rec.ctx.gprs[..count]);
}

/// Logs a PSCI call the RMM answered with an error and returns the status register value.
fn psci_reject(rec: &Rec, fid: u32, status: PsciStatus, why: &str) -> u64 {
    log::debug!(
        "REC {} of realm {:#x}: PSCI {}({:#x}, {:#x}, {:#x}) -> {status:?}: {why}",
        rec.rec_idx,
        rec.rd,
        psci::name(fid).unwrap_or("call"),
        rec.ctx.gprs[1],
        rec.ctx.gprs[2],
        rec.ctx.gprs[3],
    );
    status.to_reg()
}

impl<'a, P: Platform> Rmm<'a, P> {
    /// Handles a PSCI call from the realm (`fid` in the PSCI range).
    pub(crate) fn handle_psci(
        &self,
        rec: &mut Rec,
        exit: &mut RecExit,
        out: &mut RsiOut,
        fid: u32,
    ) {
        let success = PsciStatus::Success.to_reg();
        match fid {
            psci::VERSION => out.x[0] = PSCI_VERSION_1_1,
            psci::CPU_SUSPEND_32 | psci::CPU_SUSPEND_64 => {
                // Every power state is a suspend request: a notification for the host.
                forward_args(rec, exit, 1);
                out.action = RsiAction::ReturnAndExit;
                out.x[0] = success;
            }
            psci::CPU_OFF => {
                rec.runnable = 0;
                forward_args(rec, exit, 1);
                out.action = RsiAction::ReturnAndExit;
                out.x[0] = success;
            }
            psci::CPU_ON_32 | psci::CPU_ON_64 => self.psci_cpu_on(rec, exit, out, fid),
            psci::AFFINITY_INFO_32 | psci::AFFINITY_INFO_64 => {
                self.psci_affinity_info(rec, exit, out, fid)
            }
            psci::SYSTEM_OFF | psci::SYSTEM_RESET => {
                // The RECs run without any RMM lock held, so taking the RD lock is safe.
                let g = self.lock_rec_rd(rec);
                let mut rd = self.rd_read(&g);
                rd.state = RealmState::SystemOff as u64;
                self.rd_write(&g, &rd);
                drop(g);
                log::info!(
                    "realm {:#x}: REC {} called {}: the realm is SYSTEM_OFF",
                    rec.rd,
                    rec.rec_idx,
                    psci::name(fid).unwrap_or("SYSTEM_OFF")
                );
                forward_args(rec, exit, 1);
                out.action = RsiAction::Exit;
            }
            psci::FEATURES => {
                let f = rec.ctx.gprs[1] as u32;
                out.x[0] = match f {
                    psci::CPU_SUSPEND_32
                    | psci::CPU_SUSPEND_64
                    | psci::CPU_OFF
                    | psci::CPU_ON_32
                    | psci::CPU_ON_64
                    | psci::AFFINITY_INFO_32
                    | psci::AFFINITY_INFO_64
                    | psci::SYSTEM_OFF
                    | psci::SYSTEM_RESET
                    | psci::FEATURES
                    | SMCCC_VERSION => success,
                    _ => PsciStatus::NotSupported.to_reg(),
                };
            }
            _ => {
                out.x[0] = psci_reject(
                    rec,
                    fid,
                    PsciStatus::NotSupported,
                    "PSCI function not implemented for realms",
                );
            }
        }
        if matches!(out.action, RsiAction::Exit | RsiAction::ReturnAndExit) {
            exit.exit_reason = exit_reason::PSCI;
        }
    }

    /// The realm's REC count (the valid target indices are below it).
    fn realm_rec_count(&self, rec: &Rec) -> u64 {
        self.rec_rd(rec).rec_count
    }

    fn psci_cpu_on(&self, rec: &mut Rec, exit: &mut RecExit, out: &mut RsiOut, fid: u32) {
        let g = rec.ctx.gprs;
        let (target, entry, context) = (g[1], g[2], g[3]);
        if !rec.s2().in_par(entry) {
            out.x[0] = psci_reject(
                rec,
                fid,
                PsciStatus::InvalidAddress,
                "the entry point is not in the protected half",
            );
            return;
        }
        let idx = mpidr_el1_to_rec_idx(target);
        if idx >= self.realm_rec_count(rec) {
            out.x[0] = psci_reject(
                rec,
                fid,
                PsciStatus::InvalidParameters,
                "no REC has this MPIDR",
            );
            return;
        }
        if idx == rec.rec_idx {
            out.x[0] = psci_reject(rec, fid, PsciStatus::AlreadyOn, "the caller itself");
            return;
        }
        rec.pending = PENDING_PSCI;
        rec.psci_fid = fid.into();
        rec.psci_target = target;
        rec.psci_entry = entry;
        rec.psci_context = context;
        forward_args(rec, exit, 2);
        out.action = RsiAction::Exit;
    }

    fn psci_affinity_info(&self, rec: &mut Rec, exit: &mut RecExit, out: &mut RsiOut, fid: u32) {
        let (target, lowest_level) = (rec.ctx.gprs[1], rec.ctx.gprs[2]);
        if lowest_level != 0 {
            out.x[0] = psci_reject(
                rec,
                fid,
                PsciStatus::InvalidParameters,
                "the lowest affinity level must be 0",
            );
            return;
        }
        let idx = mpidr_el1_to_rec_idx(target);
        if idx >= self.realm_rec_count(rec) {
            out.x[0] = psci_reject(
                rec,
                fid,
                PsciStatus::InvalidParameters,
                "no REC has this MPIDR",
            );
            return;
        }
        if idx == rec.rec_idx {
            out.x[0] = psci::AFFINITY_ON;
            return;
        }
        rec.pending = PENDING_PSCI;
        rec.psci_fid = fid.into();
        rec.psci_target = target;
        rec.psci_entry = 0;
        rec.psci_context = 0;
        forward_args(rec, exit, 2);
        out.action = RsiAction::Exit;
    }

    /// `PSCI_COMPLETE(calling_rec, target_rec, status)`.
    ///
    /// Failure conditions, in TF-RMM's order, all `RMI_ERROR_INPUT`: either address not
    /// granule aligned; either granule not a REC, or both the same (the two are locked in
    /// PA order); the calling REC is running; it has no pending PSCI request; the two RECs
    /// belong to different realms; the target's index is not the one the request named;
    /// `CPU_ON` with a status other than SUCCESS or DENIED; `AFFINITY_INFO` with a status
    /// other than SUCCESS. `CPU_ON` DENIED for a target that is already on also returns
    /// `RMI_ERROR_INPUT`, but (as TF-RMM) still completes the request with ALREADY_ON.
    ///
    /// `CPU_ON` SUCCESS for a target that is off resets it: PC = entry point, x0 = context
    /// identifier, PSTATE EL1h with D, A, I, F masked, [`Platform::reset_arch_state`] for
    /// the rest, runnable. The caller gets the PSCI result in x0 (x1..x3 = 0) the next time
    /// it runs.
    pub(crate) fn cmd_psci_complete(&self, regs: &Regs, _out: &mut Regs) -> Result<(), RmiError> {
        let (calling, target, status) = (regs[1], regs[2], regs[3]);
        if !cca_abi::granule_aligned(calling) {
            return Err(RmiError::input_value(
                "the calling REC address is not granule aligned",
                calling,
            ));
        }
        if !cca_abi::granule_aligned(target) {
            return Err(RmiError::input_value(
                "the target REC address is not granule aligned",
                target,
            ));
        }
        let (pc, pt) = (Pa::new(calling), Pa::new(target));
        let (g_c, g_t) = self
            .granules
            .lock_two((pc, GranuleState::Rec), (pt, GranuleState::Rec))
            .map_err(|e| {
                let pa = if e.which == 0 { pc } else { pt };
                RmiError::input_lock(pa, GranuleState::Rec, e.error)
            })?;
        if g_c.refcount() != 0 {
            return Err(RmiError::input(
                "the calling REC is running, it cannot have a pending PSCI request",
            ));
        }
        let mut c = self.rec_read(&g_c);
        let mut t = self.rec_read(&g_t);
        if c.pending != PENDING_PSCI {
            return Err(RmiError::input(
                "the calling REC has no pending PSCI request",
            ));
        }
        if c.rd != t.rd {
            return Err(RmiError::input("the two RECs belong to different realms"));
        }
        if mpidr_el1_to_rec_idx(c.psci_target) != t.rec_idx {
            return Err(RmiError::input_value(
                "the target REC is not the one the request names (MPIDR)",
                c.psci_target,
            ));
        }
        let denied = PsciStatus::Denied.to_reg();
        let target_on = g_t.refcount() != 0 || t.runnable != 0;
        let mut result = Ok(());
        let answer = match c.psci_fid as u32 {
            psci::CPU_ON_32 | psci::CPU_ON_64 => {
                if status != 0 && status != denied {
                    return Err(RmiError::input_value(
                        "CPU_ON status must be PSCI_SUCCESS or PSCI_DENIED",
                        status,
                    ));
                }
                if target_on {
                    if status == denied {
                        result = Err(RmiError::input(
                            "CPU_ON denied for a target that is already on",
                        ));
                    }
                    PsciStatus::AlreadyOn.to_reg()
                } else if status == denied {
                    denied
                } else {
                    t.ctx.pstate = PSTATE_INIT;
                    t.ctx.gprs[0] = c.psci_context;
                    t.ctx.pc = c.psci_entry;
                    self.platform.reset_arch_state(&mut t.ctx);
                    t.runnable = 1;
                    self.rec_write(&g_t, &t);
                    PsciStatus::Success.to_reg()
                }
            }
            psci::AFFINITY_INFO_32 | psci::AFFINITY_INFO_64 => {
                if status != 0 {
                    return Err(RmiError::input_value(
                        "AFFINITY_INFO status must be PSCI_SUCCESS",
                        status,
                    ));
                }
                if target_on {
                    psci::AFFINITY_ON
                } else {
                    psci::AFFINITY_OFF
                }
            }
            _ => {
                // Only CPU_ON and AFFINITY_INFO leave a request pending.
                return Err(RmiError::input_value(
                    "the pending PSCI request is not CPU_ON or AFFINITY_INFO",
                    c.psci_fid,
                ));
            }
        };
        c.ctx.gprs[0] = answer;
        c.ctx.gprs[1..4].fill(0);
        c.pending = PENDING_NONE;
        c.psci_fid = 0;
        c.psci_target = 0;
        c.psci_entry = 0;
        c.psci_context = 0;
        self.rec_write(&g_c, &c);
        result
    }
}
