//! The RMM's completions out of phase, and `RMM_EL3_FEATURES` with a bad index.

use crate::routing::{route, Route, World};
use crate::session::{el3_features, Phase, RealmVerdict, Session};
use cca_abi::el3::{self, El3Error};
use cca_abi::smccc::SMC_UNKNOWN;

fn realm(s: &mut Session, fid: u32) -> RealmVerdict {
    s.realm_call(route(World::Realm, u64::from(fid)))
}

#[test]
fn boot_then_rmi_round_trips() {
    let mut s = Session::booting();
    assert_eq!(s.phase(), Phase::Booting);
    // Service calls during boot do not end it.
    for fid in [
        el3::RMM_RESERVE_MEMORY,
        el3::RMM_GTSI_DELEGATE,
        el3::RMM_EL3_FEATURES,
    ] {
        assert_eq!(realm(&mut s, fid), RealmVerdict::Serve);
        assert_eq!(s.phase(), Phase::Booting);
    }
    assert_eq!(realm(&mut s, el3::RMM_BOOT_COMPLETE), RealmVerdict::Serve);
    assert_eq!(s.phase(), Phase::HostRunning);
    for _ in 0..3 {
        assert!(s.host_rmi());
        assert_eq!(s.phase(), Phase::InRmi);
        assert_eq!(realm(&mut s, el3::RMM_GTSI_UNDELEGATE), RealmVerdict::Serve);
        assert_eq!(
            realm(&mut s, el3::RMM_RMI_REQ_COMPLETE),
            RealmVerdict::Serve
        );
        assert_eq!(s.phase(), Phase::HostRunning);
    }
}

#[test]
fn a_second_boot_complete_is_unknown_and_the_rmm_keeps_running() {
    let mut s = Session::booting();
    assert_eq!(realm(&mut s, el3::RMM_BOOT_COMPLETE), RealmVerdict::Serve);
    assert!(s.host_rmi());
    assert_eq!(
        realm(&mut s, el3::RMM_BOOT_COMPLETE),
        RealmVerdict::Refuse(SMC_UNKNOWN)
    );
    assert_eq!(s.phase(), Phase::InRmi, "still serving the host's call");
    assert_eq!(
        realm(&mut s, el3::RMM_RMI_REQ_COMPLETE),
        RealmVerdict::Serve
    );
}

#[test]
fn a_request_complete_while_booting_is_unknown() {
    let mut s = Session::booting();
    assert_eq!(
        realm(&mut s, el3::RMM_RMI_REQ_COMPLETE),
        RealmVerdict::Refuse(SMC_UNKNOWN)
    );
    assert_eq!(s.phase(), Phase::Booting);
    assert_eq!(realm(&mut s, el3::RMM_BOOT_COMPLETE), RealmVerdict::Serve);
}

#[test]
fn the_host_cannot_enter_an_rmm_that_is_not_idle() {
    let mut s = Session::booting();
    assert!(!s.host_rmi(), "the RMM has not finished booting");
    assert_eq!(s.phase(), Phase::Booting);
    assert_eq!(realm(&mut s, el3::RMM_BOOT_COMPLETE), RealmVerdict::Serve);
    assert!(s.host_rmi());
    assert!(!s.host_rmi(), "one RMI call at a time per CPU");
    assert_eq!(s.phase(), Phase::InRmi);
}

#[test]
fn unknown_and_host_calls_from_the_rmm_do_not_change_the_phase() {
    let mut s = Session::booting();
    for x0 in [0xC400_0150u64, 0x8400_0008, 0xC400_01FF, 0x1_C400_018F] {
        assert_eq!(route(World::Realm, x0), Route::Unknown, "{x0:#x}");
        assert_eq!(s.realm_call(Route::Unknown), RealmVerdict::Serve);
        assert_eq!(s.phase(), Phase::Booting);
    }
}

#[test]
fn el3_features_has_one_register() {
    assert_eq!(el3_features(0, false), Ok(0));
    assert_eq!(el3_features(0, true), Ok(1));
    for i in [1, 2, 0xff, u64::MAX] {
        assert_eq!(el3_features(i, false), Err(El3Error::Inval), "index {i}");
    }
}
