//! RMI dispatch: decode the function identifier, apply the activation gate, run the handler
//! and build the result registers, in TF-RMM's `handle_ns_smc` order.

use core::fmt;

use cca_abi::rmi::{RmiClass, RmiFid, RmiStatus, RmmState};
use cca_abi::smccc::{self, SMC_UNKNOWN};

use crate::error::{Reason, RmiError};
use crate::platform::Platform;
use crate::rmm::Rmm;

/// The register file of an RMI call: x0..x7.
pub type Regs = [u64; 8];

/// A command handler. It reads its arguments from `regs[1..]` (x1..x7) and writes results to
/// `out[1..]`; the dispatcher writes x0. On failure a handler may still set result registers
/// the command defines for errors (for example x1 of `GRANULE_RANGE_DELEGATE`).
pub(crate) type Handler<'a, P> = fn(&Rmm<'a, P>, &Regs, &mut Regs) -> Result<(), RmiError>;

/// When the activation gate lets a command through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// In both states.
    Always,
    /// Only before `RMM_ACTIVATE`.
    BeforeActivation,
    /// Only after `RMM_ACTIVATE`.
    AfterActivation,
}

/// Returns the activation-gate class of a command (RMI 2.0).
pub const fn gate(fid: RmiFid) -> Gate {
    match fid {
        RmiFid::VERSION
        | RmiFid::FEATURES
        | RmiFid::RMM_CONFIG_GET
        | RmiFid::GRANULE_TRACKING_GET => Gate::Always,
        RmiFid::RMM_CONFIG_SET | RmiFid::RMM_ACTIVATE => Gate::BeforeActivation,
        _ => Gate::AfterActivation,
    }
}

/// The command table. A command is added by adding an arm here.
fn handler_for<'a, P: Platform>(fid: RmiFid) -> Option<Handler<'a, P>> {
    Some(match fid {
        RmiFid::VERSION => Rmm::cmd_version,
        RmiFid::FEATURES => Rmm::cmd_features,
        RmiFid::RMM_CONFIG_SET => Rmm::cmd_config_set,
        RmiFid::RMM_CONFIG_GET => Rmm::cmd_config_get,
        RmiFid::RMM_ACTIVATE => Rmm::cmd_activate,
        RmiFid::GRANULE_TRACKING_GET => Rmm::cmd_tracking_get,
        RmiFid::GPT_L1_CREATE => Rmm::cmd_gpt_l1_create,
        RmiFid::GRANULE_RANGE_DELEGATE => Rmm::cmd_range_delegate,
        RmiFid::GRANULE_RANGE_UNDELEGATE => Rmm::cmd_range_undelegate,
        RmiFid::REALM_CREATE => Rmm::cmd_realm_create,
        RmiFid::REALM_ACTIVATE => Rmm::cmd_realm_activate,
        RmiFid::REALM_TERMINATE => Rmm::cmd_realm_terminate,
        RmiFid::REALM_DESTROY => Rmm::cmd_realm_destroy,
        RmiFid::RTT_CREATE => Rmm::cmd_rtt_create,
        RmiFid::RTT_DESTROY => Rmm::cmd_rtt_destroy,
        RmiFid::RTT_FOLD => Rmm::cmd_rtt_fold,
        RmiFid::RTT_READ_ENTRY => Rmm::cmd_rtt_read_entry,
        RmiFid::RTT_INIT_RIPAS => Rmm::cmd_rtt_init_ripas,
        RmiFid::RTT_SET_RIPAS => Rmm::cmd_rtt_set_ripas,
        RmiFid::RTT_DATA_MAP_INIT => Rmm::cmd_data_map_init,
        RmiFid::RTT_DATA_MAP => Rmm::cmd_data_map,
        RmiFid::RTT_DATA_UNMAP => Rmm::cmd_data_unmap,
        RmiFid::RTT_UNPROT_MAP => Rmm::cmd_unprot_map,
        RmiFid::RTT_UNPROT_UNMAP => Rmm::cmd_unprot_unmap,
        RmiFid::REC_CREATE => Rmm::cmd_rec_create,
        RmiFid::REC_DESTROY => Rmm::cmd_rec_destroy,
        RmiFid::REC_ENTER => Rmm::cmd_rec_enter,
        RmiFid::PSCI_COMPLETE => Rmm::cmd_psci_complete,
        RmiFid::OP_CONTINUE => Rmm::cmd_op_continue,
        RmiFid::OP_MEM_DONATE => Rmm::cmd_op_mem_donate,
        RmiFid::OP_MEM_RECLAIM => Rmm::cmd_op_mem_reclaim,
        RmiFid::OP_CANCEL => Rmm::cmd_op_cancel,
        f if matches!(f.class(), RmiClass::DeviceAssignment | RmiClass::Planes) => {
            Rmm::cmd_not_supported
        }
        _ => return None,
    })
}

/// Formats a command's arguments as `0x1, 0x2`.
struct ArgList<'r>(&'r [u64]);

impl fmt::Display for ArgList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i != 0 {
                f.write_str(", ")?;
            }
            write!(f, "{a:#x}")?;
        }
        Ok(())
    }
}

impl<'a, P: Platform> Rmm<'a, P> {
    /// Handles one RMI call.
    ///
    /// `regs[0]` is x0 as received from EL3 (the function identifier; its upper 32 bits and
    /// the SVE hint, bit 16, are ignored) and `regs[1..8]` are x1..x7. Returns x0..x7 for the
    /// host: x0..x3 start at zero, x4..x7 keep their input values unless the command defines
    /// them (SMCCC 1.2), and x0 is the status, or `SMC_UNKNOWN` for a function identifier
    /// this RMM does not implement.
    ///
    /// Order of checks: unknown or unimplemented identifier, then the activation gate, then
    /// the command's own checks. Every rejection logs one `debug` line naming the command, its
    /// arguments, the status and the failed check.
    pub fn handle_rmi(&self, regs: &Regs) -> Regs {
        let mut out: Regs = [0, 0, 0, 0, regs[4], regs[5], regs[6], regs[7]];
        let fid_bits = smccc::normalize(regs[0]);
        let Some(fid) = RmiFid::from_fid(fid_bits) else {
            self.platform.unknown_rmi(regs[0]);
            log::debug!("RMI {:#x} -> SMC_UNKNOWN: no such RMI command", regs[0]);
            out[0] = SMC_UNKNOWN;
            return out;
        };
        let Some(handler) = handler_for::<P>(fid) else {
            log::debug!(
                "{} -> SMC_UNKNOWN: command not implemented by this RMM",
                fid.name()
            );
            out[0] = SMC_UNKNOWN;
            return out;
        };
        let result = self
            .check_gate(fid)
            .and_then(|()| handler(self, regs, &mut out));
        match result {
            // x0 starts at SUCCESS; operations that return INCOMPLETE set it themselves.
            Ok(()) => {}
            Err(e) => {
                out[0] = e.to_reg();
                let nargs = fid.num_args().min(7);
                log::debug!("{}({}) -> {}", fid.name(), ArgList(&regs[1..=nargs]), e);
            }
        }
        out
    }

    /// Returns true when this RMM implements `fid`. Others answer `SMC_UNKNOWN`, as TF-RMM
    /// does for a function identifier without a handler.
    pub fn implements(fid: RmiFid) -> bool {
        handler_for::<P>(fid).is_some()
    }

    /// Device assignment and planes commands: defined, and implemented by TF-RMM main, but
    /// not by this RMM (`RMI_FEATURES` reports neither).
    fn cmd_not_supported(&self, _regs: &Regs, _out: &mut Regs) -> Result<(), RmiError> {
        Err(RmiError::new(
            RmiStatus::ErrorNotSupported,
            Reason::Text("device assignment and planes are not supported by this RMM"),
        ))
    }

    fn check_gate(&self, fid: RmiFid) -> Result<(), RmiError> {
        let state = self.state();
        let text = match (gate(fid), state) {
            (Gate::Always, _)
            | (Gate::BeforeActivation, RmmState::Init)
            | (Gate::AfterActivation, RmmState::Active) => return Ok(()),
            (Gate::BeforeActivation, RmmState::Active) => {
                "the RMM is already active (RMM_ACTIVATE was called)"
            }
            (Gate::AfterActivation, RmmState::Init) => {
                "the RMM is not active yet (call RMM_ACTIVATE first)"
            }
        };
        Err(RmiError::new(RmiStatus::ErrorGlobal, Reason::Text(text)))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::test_util::*;
    use cca_abi::smccc::SVE_HINT;
    use std::vec::Vec;

    /// Whether this RMM has a handler: every core command, plus the device-assignment and
    /// planes commands (ERROR_NOT_SUPPORTED).
    fn implemented(fid: RmiFid) -> bool {
        match fid.class() {
            RmiClass::Core => true,
            RmiClass::DeviceAssignment | RmiClass::Planes => true,
            RmiClass::Unimplemented => false,
        }
    }

    type R<'f> = Rmm<'f, &'f crate::sim::SimPlatform>;

    #[test]
    fn implemented_commands() {
        for &fid in RmiFid::ALL {
            assert_eq!(R::implements(fid), implemented(fid), "{}", fid.name());
        }
    }

    #[test]
    fn unknown_fid_is_smc_unknown() {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        // GRANULE_DELEGATE (removed in 2.0), an RSI, an RMM-EL3 call, PSCI, 0, all ones.
        for x0 in [
            0xC400_0151u64,
            0xC400_0190,
            0xC400_01B0,
            0x8400_0000,
            0,
            0xFFFF_FFFF,
            0xC400_020B,
        ] {
            let out = rmm.handle_rmi(&[x0, B0, B0 + G, 0, 4, 5, 6, 7]);
            assert_eq!(out, [SMC_UNKNOWN, 0, 0, 0, 4, 5, 6, 7], "{x0:#x}");
        }
    }

    #[test]
    fn unimplemented_known_fid_is_smc_unknown_in_both_states() {
        let f = Fixture::new();
        let rmm = f.rmm();
        let others: Vec<RmiFid> = RmiFid::ALL
            .iter()
            .copied()
            .filter(|&f| !implemented(f))
            .collect();
        assert!(!others.contains(&RmiFid::REC_ENTER) && !others.contains(&RmiFid::PSCI_COMPLETE));
        assert!(others.contains(&RmiFid::VSMMU_CREATE));
        for &fid in &others {
            // Before activation the identifier check comes first: SMC_UNKNOWN, not ERROR_GLOBAL.
            assert_eq!(
                call(&rmm, fid, &[1, 2, 3])[0],
                SMC_UNKNOWN,
                "{}",
                fid.name()
            );
        }
        assert_eq!(call(&rmm, RmiFid::RMM_ACTIVATE, &[])[0], 0);
        for &fid in &others {
            assert_eq!(
                call(&rmm, fid, &[1, 2, 3])[0],
                SMC_UNKNOWN,
                "{}",
                fid.name()
            );
        }
    }

    #[test]
    fn device_assignment_and_planes_are_not_supported_after_the_gate() {
        let f = Fixture::new();
        let rmm = f.rmm();
        let das: Vec<RmiFid> = RmiFid::ALL
            .iter()
            .copied()
            .filter(|f| matches!(f.class(), RmiClass::DeviceAssignment | RmiClass::Planes))
            .collect();
        assert!(das.contains(&RmiFid::PDEV_CREATE) && das.contains(&RmiFid::RTT_AUX_CREATE));
        for &fid in &das {
            assert_eq!(
                call(&rmm, fid, &[1, 2, 3])[0],
                RmiStatus::ErrorGlobal as u64,
                "{}",
                fid.name()
            );
        }
        assert_eq!(call(&rmm, RmiFid::RMM_ACTIVATE, &[])[0], 0);
        for &fid in &das {
            assert_eq!(
                call(&rmm, fid, &[1, 2, 3])[..2],
                [RmiStatus::ErrorNotSupported as u64, 0],
                "{}",
                fid.name()
            );
        }
    }

    #[test]
    fn sve_hint_bit_is_masked() {
        let f = Fixture::new();
        let rmm = f.rmm();
        let x0 = u64::from(RmiFid::VERSION.fid() | SVE_HINT);
        let out = rmm.handle_rmi(&[x0, 0x20000, 0, 0, 0, 0, 0, 0]);
        assert_eq!(out[..3], [0, 0x20000, 0x20000]);
        let x0 = u64::from(RmiFid::RMM_ACTIVATE.fid() | SVE_HINT);
        assert_eq!(rmm.handle_rmi(&[x0, 0, 0, 0, 0, 0, 0, 0])[0], 0);
        assert_eq!(rmm.state(), RmmState::Active);
    }

    #[test]
    fn upper_half_of_x0_is_ignored() {
        // The function identifier is W0 (SMCCC); TF-RMM takes it as a 32-bit value.
        let f = Fixture::new();
        let rmm = f.rmm();
        let x0 = 0xDEAD_BEEF_0000_0000 | u64::from(RmiFid::VERSION.fid());
        assert_eq!(rmm.handle_rmi(&[x0, 0x20000, 0, 0, 0, 0, 0, 0])[0], 0);
    }

    #[test]
    fn x0_to_x3_are_zeroed_and_x4_to_x7_preserved() {
        let f = Fixture::new();
        let rmm = f.rmm();
        let tail = [0x44, 0x55, 0x66, 0x77];
        let with = |fid: u32, x1: u64, x2: u64, x3: u64| {
            let r = [
                u64::from(fid),
                x1,
                x2,
                x3,
                tail[0],
                tail[1],
                tail[2],
                tail[3],
            ];
            rmm.handle_rmi(&r)
        };
        // Success that writes only x1.
        let out = with(RmiFid::FEATURES.fid(), 1, 0x22, 0x33);
        assert_eq!((out[0], out[2], out[3]), (0, 0, 0));
        assert_eq!(out[4..], tail);
        // Failure.
        let out = with(RmiFid::GPT_L1_CREATE.fid(), 0x1000, 0x22, 0x33);
        assert_eq!(out[..4], [RmiStatus::ErrorGlobal as u64, 0, 0, 0]);
        assert_eq!(out[4..], tail);
        // Unknown identifier.
        let out = with(0xC400_0151, 0x11, 0x22, 0x33);
        assert_eq!(out, [SMC_UNKNOWN, 0, 0, 0, 0x44, 0x55, 0x66, 0x77]);
        // A command writing x3.
        let out = with(RmiFid::GRANULE_TRACKING_GET.fid(), B0, B0 + G, 0x33);
        assert_eq!(out, [0, 0, 2, B0 + G, 0x44, 0x55, 0x66, 0x77]);
    }

    #[test]
    fn gate_classes_match_rmi_2_0() {
        for &fid in RmiFid::ALL {
            let expected = match fid {
                RmiFid::VERSION
                | RmiFid::FEATURES
                | RmiFid::RMM_CONFIG_GET
                | RmiFid::GRANULE_TRACKING_GET => Gate::Always,
                RmiFid::RMM_CONFIG_SET | RmiFid::RMM_ACTIVATE => Gate::BeforeActivation,
                _ => Gate::AfterActivation,
            };
            assert_eq!(gate(fid), expected, "{}", fid.name());
        }
    }

    #[test]
    fn before_activation_only_boot_commands_run() {
        let f = Fixture::new();
        let rmm = f.rmm();
        assert_eq!(
            status(&call(&rmm, RmiFid::VERSION, &[0x20000])),
            RmiStatus::Success
        );
        assert_eq!(
            status(&call(&rmm, RmiFid::FEATURES, &[0])),
            RmiStatus::Success
        );
        assert_eq!(
            status(&call(&rmm, RmiFid::RMM_CONFIG_GET, &[B0])),
            RmiStatus::Success
        );
        assert_eq!(
            status(&call(&rmm, RmiFid::GRANULE_TRACKING_GET, &[B0, B0 + G])),
            RmiStatus::Success
        );
        assert_eq!(
            status(&call(&rmm, RmiFid::RMM_CONFIG_SET, &[B0])),
            RmiStatus::Success
        );
        for fid in [
            RmiFid::GRANULE_RANGE_DELEGATE,
            RmiFid::GRANULE_RANGE_UNDELEGATE,
            RmiFid::GPT_L1_CREATE,
        ] {
            let out = call(&rmm, fid, &[B0, B0 + G]);
            assert_eq!(
                out[..4],
                [RmiStatus::ErrorGlobal as u64, 0, 0, 0],
                "{}",
                fid.name()
            );
        }
        assert!(f.sim.delegate_calls() == 0, "a gated command reached EL3");
    }

    #[test]
    fn gate_is_checked_before_command_arguments() {
        let f = Fixture::new();
        let rmm = f.rmm();
        // Arguments that would fail the command's own checks still get ERROR_GLOBAL.
        let out = call(&rmm, RmiFid::GRANULE_RANGE_DELEGATE, &[0x123, 0]);
        assert_eq!(
            out[..2],
            [RmiStatus::ErrorGlobal as u64, 0],
            "x1 is not set by a gated call"
        );
    }

    #[test]
    fn config_set_after_activation_is_error_global() {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        assert_eq!(
            status(&call(&rmm, RmiFid::RMM_CONFIG_SET, &[B0])),
            RmiStatus::ErrorGlobal
        );
    }

    #[test]
    fn activate_twice_is_error_global() {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        assert_eq!(
            status(&call(&rmm, RmiFid::RMM_ACTIVATE, &[])),
            RmiStatus::ErrorGlobal
        );
        assert_eq!(rmm.state(), RmmState::Active);
    }

    #[test]
    fn boot_queries_still_work_after_activation() {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        assert_eq!(
            status(&call(&rmm, RmiFid::VERSION, &[0x20000])),
            RmiStatus::Success
        );
        assert_eq!(
            status(&call(&rmm, RmiFid::FEATURES, &[1])),
            RmiStatus::Success
        );
        assert_eq!(
            status(&call(&rmm, RmiFid::RMM_CONFIG_GET, &[B0])),
            RmiStatus::Success
        );
        assert_eq!(
            status(&call(&rmm, RmiFid::GRANULE_TRACKING_GET, &[B0, B0 + G])),
            RmiStatus::Success
        );
    }

    #[test]
    fn rejection_logs_one_line_with_command_arguments_status_and_reason() {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        take_debug_logs();
        assert_eq!(
            call(&rmm, RmiFid::GRANULE_RANGE_DELEGATE, &[B0, B0 + G])[0],
            0
        );
        assert!(
            take_debug_logs().is_empty(),
            "success is not logged at debug level"
        );
        call(&rmm, RmiFid::GRANULE_RANGE_DELEGATE, &[B0, B0 + G]);
        assert_eq!(
            take_debug_logs(),
            ["GRANULE_RANGE_DELEGATE(0x80000000, 0x80001000) -> RMI_ERROR_INPUT: granule 0x80000000 is DELEGATED, expected NS"]
        );
        call(&rmm, RmiFid::RMM_ACTIVATE, &[]);
        assert_eq!(
            take_debug_logs(),
            ["RMM_ACTIVATE() -> RMI_ERROR_GLOBAL: the RMM is already active (RMM_ACTIVATE was called)"]
        );
        rmm.handle_rmi(&[0xC400_0151, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            take_debug_logs(),
            ["RMI 0xc4000151 -> SMC_UNKNOWN: no such RMI command"]
        );
        call(&rmm, RmiFid::VSMMU_CREATE, &[B0, B0 + G]);
        assert_eq!(
            take_debug_logs(),
            ["VSMMU_CREATE -> SMC_UNKNOWN: command not implemented by this RMM"]
        );
        call(&rmm, RmiFid::REC_ENTER, &[B0, B0 + G]);
        assert_eq!(
            take_debug_logs(),
            ["REC_ENTER(0x80000000, 0x80001000) -> RMI_ERROR_INPUT: granule 0x80000000 is DELEGATED, expected REC"]
        );
        call(&rmm, RmiFid::RTT_DATA_MAP_INIT, &[B0, B0, 0, 0, 7]);
        assert_eq!(
            take_debug_logs(),
            ["RTT_DATA_MAP_INIT(0x80000000, 0x80000000, 0x0, 0x0, 0x7) -> RMI_ERROR_INPUT: flags must be 0 or 1 (0x7)"]
        );
    }

    #[test]
    fn concurrent_activations_succeed_exactly_once() {
        for _ in 0..20 {
            let f = Fixture::new();
            let rmm = f.rmm();
            let wins: usize = std::thread::scope(|s| {
                let hs: Vec<_> = (0..4)
                    .map(|_| s.spawn(|| usize::from(call(&rmm, RmiFid::RMM_ACTIVATE, &[])[0] == 0)))
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).sum()
            });
            assert_eq!(wins, 1);
        }
    }
}
