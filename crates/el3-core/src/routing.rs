//! What an SMC means, given the world that made it.

use cca_abi::{el3, psci, rmi, smccc};

/// The lower worlds EL3 switches between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum World {
    /// Normal world (the host at NS-EL2).
    NonSecure,
    /// Realm world (the RMM at R-EL2).
    Realm,
}

/// The action for an SMC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// An RMI call from the host: forward x0..x7 to the RMM.
    ForwardRmi,
    /// The RMM finished an RMI call: return x1..x8 to the host as x0..x7.
    RmiComplete,
    /// The RMM finished booting on this CPU.
    BootComplete,
    /// Delegate one granule (NS to Realm).
    GtsiDelegate,
    /// Undelegate one granule (Realm to NS).
    GtsiUndelegate,
    /// Allocate memory from the Realm carve-out.
    ReserveMemory,
    /// An attestation call (realm key, platform token) that this EL3 does not serve yet.
    Attestation,
    /// `RMM_EL3_FEATURES`.
    El3Features,
    /// A PSCI call from the host.
    Psci,
    /// `SMCCC_VERSION`.
    SmcccVersion,
    /// `SMCCC_ARCH_FEATURES`.
    SmcccArchFeatures,
    /// `SMCCC_ARCH_FEATURE_AVAILABILITY`.
    SmcccFeatureAvailability,
    /// This stack's `CCA_SIP_EXIT`.
    SipExit,
    /// This stack's `CCA_SIP_TEST_HOOK` (served only by an image whose hooks are enabled).
    TestHook,
    /// Anything else: `SMC_UNKNOWN`.
    Unknown,
}

/// `CCA_SIP_TEST_HOOK(kind, pa)`: the deliberate faults of the fatal-fault tests. An EL3
/// image answers it only when its hook word is set (see the `el3` image's monitor);
/// otherwise it is `SMC_UNKNOWN` like any unknown call.
pub const SIP_TEST_HOOK: u32 = 0xC200_00F0;

/// Decides what to do with an SMC whose syndrome (ESR_EL3) is `esr` and whose x0 is `x0`,
/// made from `world`. SMCCC reserves every immediate but 0 (`SMC #0`): any other is
/// `SMC_UNKNOWN`, whatever x0 says.
pub fn route_smc(world: World, esr: u64, x0: u64) -> Route {
    if esr & 0xffff != 0 {
        return Route::Unknown;
    }
    route(world, x0)
}

/// Decides what to do with an SMC #0 whose x0 is `x0`, made from `world`.
pub fn route(world: World, x0: u64) -> Route {
    if x0 >> 32 != 0 {
        return Route::Unknown;
    }
    let fid = smccc::normalize(x0);
    match (world, fid) {
        (_, smccc::SMCCC_VERSION) => Route::SmcccVersion,
        (_, smccc::SMCCC_ARCH_FEATURES) => Route::SmcccArchFeatures,
        (_, smccc::SMCCC_ARCH_FEATURE_AVAILABILITY) => Route::SmcccFeatureAvailability,
        (World::NonSecure, f) if rmi::is_rmi_fid(f) => Route::ForwardRmi,
        (World::NonSecure, f) if psci::name(f).is_some() => Route::Psci,
        (World::NonSecure, el3::sip::EXIT) => Route::SipExit,
        (World::NonSecure, SIP_TEST_HOOK) => Route::TestHook,
        (World::Realm, el3::RMM_RMI_REQ_COMPLETE) => Route::RmiComplete,
        (World::Realm, el3::RMM_BOOT_COMPLETE) => Route::BootComplete,
        (World::Realm, el3::RMM_GTSI_DELEGATE) => Route::GtsiDelegate,
        (World::Realm, el3::RMM_GTSI_UNDELEGATE) => Route::GtsiUndelegate,
        (World::Realm, el3::RMM_RESERVE_MEMORY) => Route::ReserveMemory,
        (World::Realm, el3::RMM_ATTEST_GET_REALM_KEY | el3::RMM_ATTEST_GET_PLAT_TOKEN) => {
            Route::Attestation
        }
        (World::Realm, el3::RMM_EL3_FEATURES) => Route::El3Features,
        _ => Route::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ns_calls() {
        assert_eq!(route(World::NonSecure, 0xC400_0150), Route::ForwardRmi);
        assert_eq!(
            route(World::NonSecure, 0xC401_01F1),
            Route::ForwardRmi,
            "SVE hint ignored"
        );
        assert_eq!(route(World::NonSecure, 0xC400_0202), Route::ForwardRmi);
        assert_eq!(
            route(World::NonSecure, 0xC400_0190),
            Route::Unknown,
            "RSI is not for the host"
        );
        assert_eq!(
            route(World::NonSecure, 0xC400_01B0),
            Route::Unknown,
            "RMM-EL3 calls are Realm-only"
        );
        assert_eq!(
            route(World::NonSecure, 0xC400_018F),
            Route::ForwardRmi,
            "inside the first RMI range"
        );
        assert_eq!(route(World::NonSecure, 0x8400_0008), Route::Psci);
        assert_eq!(route(World::NonSecure, 0xC200_0001), Route::SipExit);
        assert_eq!(route(World::NonSecure, 0xC200_00F0), Route::TestHook);
        assert_eq!(route(World::Realm, 0xC200_00F0), Route::Unknown);
        assert_eq!(route(World::NonSecure, 0xC200_00F1), Route::Unknown);
        assert_eq!(route(World::NonSecure, 0x1_C400_0150), Route::Unknown);
    }

    #[test]
    fn smc_immediates_other_than_zero_are_unknown() {
        let smc = 0x17 << 26 | 1 << 25;
        assert_eq!(
            route_smc(World::NonSecure, smc, 0xC400_0150),
            Route::ForwardRmi
        );
        assert_eq!(
            route_smc(World::NonSecure, smc | 1, 0xC400_0150),
            Route::Unknown
        );
        assert_eq!(
            route_smc(World::NonSecure, smc | 0xffff, 0x8400_0000),
            Route::Unknown
        );
        assert_eq!(
            route_smc(World::Realm, smc | 0x8000, 0xC400_018F),
            Route::Unknown
        );
        assert_eq!(
            route_smc(World::Realm, smc, 0xC400_018F),
            Route::RmiComplete
        );
    }

    #[test]
    fn realm_calls() {
        assert_eq!(route(World::Realm, 0xC400_018F), Route::RmiComplete);
        assert_eq!(route(World::Realm, 0xC400_01CF), Route::BootComplete);
        assert_eq!(route(World::Realm, 0xC400_01B0), Route::GtsiDelegate);
        assert_eq!(route(World::Realm, 0xC400_01B1), Route::GtsiUndelegate);
        assert_eq!(route(World::Realm, 0xC400_01BB), Route::ReserveMemory);
        assert_eq!(route(World::Realm, 0xC400_01B2), Route::Attestation);
        assert_eq!(route(World::Realm, 0xC400_0400), Route::Unknown, "no FIRME");
        assert_eq!(
            route(World::Realm, 0x8400_0008),
            Route::Unknown,
            "PSCI is the host's"
        );
        assert_eq!(route(World::Realm, 0xC400_0150), Route::Unknown);
        assert_eq!(route(World::Realm, 0x8000_0000), Route::SmcccVersion);
        assert_eq!(
            route(World::Realm, 0xC000_0003),
            Route::SmcccFeatureAvailability
        );
    }
}
