//! Realm Services Interface (RSI) 1.x: a realm's calls into the RMM.

/// RSI 1.0.
pub const RSI_VERSION_1_0: u64 = crate::version(1, 0);
/// RSI 1.1, the highest revision TF-RMM main reports.
pub const RSI_VERSION_1_1: u64 = crate::version(1, 1);

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
