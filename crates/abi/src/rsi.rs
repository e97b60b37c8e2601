//! Realm Services Interface (RSI) 1.x: a realm's calls into the RMM.
//!
//! Function identifiers, status codes, enumerations and the structures a realm shares with
//! the RMM (`RsiRealmConfig`, `RsiHostCall`), as TF-RMM main defines them in
//! `lib/smc/include/smc-rsi.h` (RSI 1.1, structures at 2.0-bet0-rc1).

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// RSI 1.0.
pub const RSI_VERSION_1_0: u64 = crate::version(1, 0);
/// RSI 1.1, the highest revision TF-RMM main reports.
pub const RSI_VERSION_1_1: u64 = crate::version(1, 1);

/// First function number of the RSI range (`0xC4000190`).
pub const FNUM_MIN: u32 = 0x190;
/// Last function number of the RSI range (`0xC40001AF`).
pub const FNUM_MAX: u32 = 0x1AF;

/// `RSI_VERSION`.
pub const VERSION: u32 = 0xC400_0190;
/// `RSI_FEATURES`.
pub const FEATURES: u32 = 0xC400_0191;
/// `RSI_MEASUREMENT_READ`.
pub const MEASUREMENT_READ: u32 = 0xC400_0192;
/// `RSI_MEASUREMENT_EXTEND`.
pub const MEASUREMENT_EXTEND: u32 = 0xC400_0193;
/// `RSI_ATTESTATION_TOKEN_INIT`.
pub const ATTESTATION_TOKEN_INIT: u32 = 0xC400_0194;
/// `RSI_ATTESTATION_TOKEN_CONTINUE`.
pub const ATTESTATION_TOKEN_CONTINUE: u32 = 0xC400_0195;
/// `RSI_REALM_CONFIG`.
pub const REALM_CONFIG: u32 = 0xC400_0196;
/// `RSI_IPA_STATE_SET`.
pub const IPA_STATE_SET: u32 = 0xC400_0197;
/// `RSI_IPA_STATE_GET`.
pub const IPA_STATE_GET: u32 = 0xC400_0198;
/// `RSI_HOST_CALL`.
pub const HOST_CALL: u32 = 0xC400_0199;

/// Returns true when `fid` (SVE hint cleared) is in the SMC64 RSI range
/// `0xC4000190..=0xC40001AF`.
pub const fn is_rsi_fid(fid: u32) -> bool {
    let fnum = fid & 0xffff;
    fid & 0xffff_0000 == 0xC400_0000 && fnum >= FNUM_MIN && fnum <= FNUM_MAX
}

/// Returns the name of an RSI 1.x function identifier this stack knows.
pub const fn name(fid: u32) -> Option<&'static str> {
    Some(match fid {
        VERSION => "RSI_VERSION",
        FEATURES => "RSI_FEATURES",
        MEASUREMENT_READ => "RSI_MEASUREMENT_READ",
        MEASUREMENT_EXTEND => "RSI_MEASUREMENT_EXTEND",
        ATTESTATION_TOKEN_INIT => "RSI_ATTESTATION_TOKEN_INIT",
        ATTESTATION_TOKEN_CONTINUE => "RSI_ATTESTATION_TOKEN_CONTINUE",
        REALM_CONFIG => "RSI_REALM_CONFIG",
        IPA_STATE_SET => "RSI_IPA_STATE_SET",
        IPA_STATE_GET => "RSI_IPA_STATE_GET",
        HOST_CALL => "RSI_HOST_CALL",
        _ => return None,
    })
}

/// RSI status codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum RsiStatus {
    /// The call succeeded.
    Success = 0,
    /// An input argument was invalid.
    ErrorInput = 1,
    /// The realm or REC state does not allow the call.
    ErrorState = 2,
    /// The operation is incomplete; call again.
    Incomplete = 3,
    /// An unknown error.
    ErrorUnknown = 4,
    /// A device error.
    ErrorDevice = 5,
}

impl RsiStatus {
    /// Returns the status as the register value the realm sees in x0.
    pub const fn to_reg(self) -> u64 {
        self as u64
    }

    /// Decodes x0, if it holds an RSI status (`SMC_UNKNOWN` does not).
    pub const fn from_reg(v: u64) -> Option<Self> {
        Some(match v {
            0 => Self::Success,
            1 => Self::ErrorInput,
            2 => Self::ErrorState,
            3 => Self::Incomplete,
            4 => Self::ErrorUnknown,
            5 => Self::ErrorDevice,
            _ => return None,
        })
    }

    /// Returns the status name as the specification writes it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Success => "RSI_SUCCESS",
            Self::ErrorInput => "RSI_ERROR_INPUT",
            Self::ErrorState => "RSI_ERROR_STATE",
            Self::Incomplete => "RSI_INCOMPLETE",
            Self::ErrorUnknown => "RSI_ERROR_UNKNOWN",
            Self::ErrorDevice => "RSI_ERROR_DEVICE",
        }
    }
}

/// `RsiRipas` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Ripas {
    /// No memory is mapped; accesses fault into the realm.
    Empty = 0,
    /// Protected RAM.
    Ram = 1,
    /// Destroyed by the host; accesses fault into the realm.
    Destroyed = 2,
    /// Device memory.
    Dev = 3,
}

impl Ripas {
    /// Decodes a RIPAS value from a register (`RSI_IPA_STATE_GET` x2, `RecExit.ripas_value`).
    pub const fn from_reg(v: u64) -> Option<Self> {
        Some(match v {
            0 => Self::Empty,
            1 => Self::Ram,
            2 => Self::Destroyed,
            3 => Self::Dev,
            _ => return None,
        })
    }
}

/// `RsiResponse`: whether the host accepted a realm's request (x2 of `RSI_IPA_STATE_SET`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum RsiResponse {
    /// The host accepted the request.
    Accept = 0,
    /// The host rejected the request.
    Reject = 1,
}

impl RsiResponse {
    /// Decodes a response register value.
    pub const fn from_reg(v: u64) -> Option<Self> {
        match v {
            0 => Some(Self::Accept),
            1 => Some(Self::Reject),
            _ => None,
        }
    }
}

/// `RsiRipasChangeDestroyed`: a RIPAS change must not touch DESTROYED entries (x4 of
/// `RSI_IPA_STATE_SET`).
pub const NO_CHANGE_DESTROYED: u64 = 0;
/// `RsiRipasChangeDestroyed`: a RIPAS change may turn DESTROYED entries into the new RIPAS.
pub const CHANGE_DESTROYED: u64 = 1;

/// `RsiHashAlgorithm`: SHA-256.
pub const HASH_SHA_256: u8 = 0;
/// `RsiHashAlgorithm`: SHA-512.
pub const HASH_SHA_512: u8 = 1;
/// `RsiHashAlgorithm`: SHA-384.
pub const HASH_SHA_384: u8 = 2;

/// Index of `RsiFeatureRegister0`, the only feature register `RSI_FEATURES` defines.
pub const FEATURE_REGISTER_0: u64 = 0;
/// `RsiFeatureRegister0.DA` (bit 0): the realm may use device assignment.
pub const FEATURE0_DA: u64 = 1 << 0;
/// `RsiFeatureRegister0.MRO` (bit 1): memory region operations.
pub const FEATURE0_MRO: u64 = 1 << 1;
/// `RsiFeatureRegister0.ATS` (bit 2): address translation services.
pub const FEATURE0_ATS: u64 = 1 << 2;

/// Number of measurement slots: the RIM (index 0) and four REMs (indices 1..=4).
pub const MEASUREMENT_SLOTS: u64 = 5;
/// Measurement index of the Realm Initial Measurement.
pub const RIM_INDEX: u64 = 0;
/// Size of a measurement value in `RSI_MEASUREMENT_READ` (x1..x8) and of the largest
/// `RSI_MEASUREMENT_EXTEND` value (x3..x10).
pub const MEASUREMENT_SIZE: usize = 64;
/// Size of an attestation challenge (`RSI_ATTESTATION_TOKEN_INIT` x1..x8).
pub const CHALLENGE_SIZE: usize = 64;
/// Size of the Realm Personalisation Value.
pub const RPV_SIZE: usize = 64;
/// Number of general-purpose registers in `RsiHostCall`.
pub const HOST_CALL_NR_GPRS: usize = 31;

/// `RsiRealmConfig`: the 4 KiB structure `RSI_REALM_CONFIG` writes to a granule of the realm
/// (its IPA must be 4 KiB-aligned and in the protected range).
///
/// TF-RMM writes only the named fields; the padding keeps what the realm left there.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, align(4096))]
pub struct RsiRealmConfig {
    /// IPA width in bits (the realm's `s2sz`); the top IPA bit selects the unprotected half.
    pub ipa_width: u64,
    /// `RsiHashAlgorithm` of the realm's measurements.
    pub hash_algo: u8,
    _pad0: [u8; 7],
    /// Number of auxiliary planes.
    pub num_aux_planes: u64,
    /// `ICH_VTR_EL2` as the RMM reports it.
    pub gicv3_vtr: u32,
    _pad1: [u8; 4],
    /// Plane whose stage 2 translation ATS requests use.
    pub ats_plane: u64,
    _pad2: [u8; 0x200 - 0x28],
    /// Realm Personalisation Value.
    pub rpv: [u8; RPV_SIZE],
    _pad3: [u8; 0x1000 - 0x240],
}
const _: () = assert!(size_of::<RsiRealmConfig>() == 0x1000);
const _: () = assert!(core::mem::align_of::<RsiRealmConfig>() == 0x1000);
const _: () = assert!(offset_of!(RsiRealmConfig, ipa_width) == 0x0);
const _: () = assert!(offset_of!(RsiRealmConfig, hash_algo) == 0x8);
const _: () = assert!(offset_of!(RsiRealmConfig, num_aux_planes) == 0x10);
const _: () = assert!(offset_of!(RsiRealmConfig, gicv3_vtr) == 0x18);
const _: () = assert!(offset_of!(RsiRealmConfig, ats_plane) == 0x20);
const _: () = assert!(offset_of!(RsiRealmConfig, rpv) == 0x200);

impl RsiRealmConfig {
    /// A structure of zeros.
    pub const ZEROED: Self = Self {
        ipa_width: 0,
        hash_algo: 0,
        _pad0: [0; 7],
        num_aux_planes: 0,
        gicv3_vtr: 0,
        _pad1: [0; 4],
        ats_plane: 0,
        _pad2: [0; 0x200 - 0x28],
        rpv: [0; RPV_SIZE],
        _pad3: [0; 0x1000 - 0x240],
    };
}

/// `RsiHostCall`: the 256-byte structure `RSI_HOST_CALL` names by IPA (256-byte aligned, so
/// it never crosses a granule).
///
/// The RMM copies `imm` and `gprs` into `RmiRecExit.imm`/`gprs` on the exit, and on the next
/// `REC_ENTER` copies `RmiRecEnter.gprs` back into `gprs` (`imm` is not written back).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, align(256))]
pub struct RsiHostCall {
    /// The immediate the host sees (16 bits in the specification; TF-RMM stores it in a
    /// 32-bit field whose upper half is this structure's zero padding).
    pub imm: u16,
    _pad0: [u8; 6],
    /// x0..x30 passed to the host and returned by it.
    pub gprs: [u64; HOST_CALL_NR_GPRS],
}
const _: () = assert!(size_of::<RsiHostCall>() == 0x100);
const _: () = assert!(core::mem::align_of::<RsiHostCall>() == 0x100);
const _: () = assert!(offset_of!(RsiHostCall, imm) == 0x0);
const _: () = assert!(offset_of!(RsiHostCall, gprs) == 0x8);

impl RsiHostCall {
    /// A host call with immediate `imm` and registers `gprs`.
    pub const fn new(imm: u16, gprs: [u64; HOST_CALL_NR_GPRS]) -> Self {
        Self {
            imm,
            _pad0: [0; 6],
            gprs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::{FromZeros, IntoBytes};

    #[test]
    fn fids_are_in_the_rsi_range_and_named() {
        let all = [
            VERSION,
            FEATURES,
            MEASUREMENT_READ,
            MEASUREMENT_EXTEND,
            ATTESTATION_TOKEN_INIT,
            ATTESTATION_TOKEN_CONTINUE,
            REALM_CONFIG,
            IPA_STATE_SET,
            IPA_STATE_GET,
            HOST_CALL,
        ];
        for (i, &f) in all.iter().enumerate() {
            assert_eq!(f, 0xC400_0190 + i as u32);
            assert!(is_rsi_fid(f));
            assert!(name(f).is_some_and(|n| n.starts_with("RSI_")));
        }
        assert!(is_rsi_fid(0xC400_01AF));
        assert!(!is_rsi_fid(0xC400_01B0), "RMM-EL3 range");
        assert!(!is_rsi_fid(0xC400_018F), "RMI range");
        assert!(!is_rsi_fid(0x8400_0190), "SMC32");
        assert_eq!(name(0xC400_019A), None);
    }

    #[test]
    fn status_round_trip() {
        for v in 0..6 {
            let s = RsiStatus::from_reg(v).unwrap();
            assert_eq!(s.to_reg(), v);
            assert!(s.name().starts_with("RSI_"));
        }
        assert_eq!(RsiStatus::from_reg(6), None);
        assert_eq!(RsiStatus::from_reg(u64::MAX), None, "SMC_UNKNOWN");
        assert_eq!(RsiStatus::ErrorInput.to_reg(), 1);
        assert_eq!(RsiStatus::Incomplete.to_reg(), 3);
    }

    #[test]
    fn ripas_and_response_decoding() {
        assert_eq!(Ripas::from_reg(0), Some(Ripas::Empty));
        assert_eq!(Ripas::from_reg(1), Some(Ripas::Ram));
        assert_eq!(Ripas::from_reg(2), Some(Ripas::Destroyed));
        assert_eq!(Ripas::from_reg(3), Some(Ripas::Dev));
        assert_eq!(Ripas::from_reg(4), None);
        assert_eq!(Ripas::Ram as u64, 1);
        assert_eq!(RsiResponse::from_reg(0), Some(RsiResponse::Accept));
        assert_eq!(RsiResponse::from_reg(1), Some(RsiResponse::Reject));
        assert_eq!(RsiResponse::from_reg(2), None);
        assert_eq!(RsiResponse::Reject as u64, 1);
        assert_eq!((NO_CHANGE_DESTROYED, CHANGE_DESTROYED), (0, 1));
        assert_eq!((HASH_SHA_256, HASH_SHA_512, HASH_SHA_384), (0, 1, 2));
    }

    #[test]
    fn realm_config_bytes() {
        let mut c = RsiRealmConfig::new_zeroed();
        c.ipa_width = 40;
        c.hash_algo = HASH_SHA_512;
        c.num_aux_planes = 3;
        c.gicv3_vtr = 0x9050_0003;
        c.ats_plane = 2;
        c.rpv[0] = 0xAB;
        c.rpv[63] = 0xCD;
        let b = c.as_bytes();
        assert_eq!(b.len(), 4096);
        assert_eq!(&b[0..8], &40u64.to_le_bytes());
        assert_eq!(b[8], 1);
        assert_eq!(&b[0x10..0x18], &3u64.to_le_bytes());
        assert_eq!(&b[0x18..0x1c], &0x9050_0003u32.to_le_bytes());
        assert_eq!(&b[0x20..0x28], &2u64.to_le_bytes());
        assert_eq!((b[0x200], b[0x23f]), (0xAB, 0xCD));
        assert!(RsiRealmConfig::ZEROED.as_bytes().iter().all(|&x| x == 0));
    }

    #[test]
    fn host_call_bytes() {
        let mut gprs = [0u64; HOST_CALL_NR_GPRS];
        gprs[0] = 0x1111;
        gprs[30] = 0x3030;
        let h = RsiHostCall::new(0xCCA0, gprs);
        let b = h.as_bytes();
        assert_eq!(b.len(), 256);
        assert_eq!(&b[0..8], &[0xA0, 0xCC, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[8..16], &0x1111u64.to_le_bytes());
        assert_eq!(&b[0xF8..0x100], &0x3030u64.to_le_bytes());
        // TF-RMM reads `imm` as a 32-bit field: the padding keeps the upper half zero.
        assert_eq!(u32::from_le_bytes(b[0..4].try_into().unwrap()), 0xCCA0);
    }
}
