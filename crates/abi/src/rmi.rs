//! Realm Management Interface (RMI) 2.0: the host's calls into the RMM.
//!
//! Function identifiers, status codes and structures follow TF-RMM main (RMM spec 2.0 beta).

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The RMI revision this stack implements (2.0).
pub const RMI_VERSION_2_0: u64 = crate::version(2, 0);

/// First function number of the RMI range (`0xC4000150`).
pub const FNUM_MIN: u32 = 0x150;
/// Last function number the RMM dispatches (`0xC400020A`).
pub const FNUM_MAX: u32 = 0x20A;

macro_rules! rmi_fids {
    ($( $(#[$doc:meta])* $name:ident = $fnum:expr, $args:expr, $rets:expr, $class:ident; )*) => {
        /// An RMI command, decoded from its function identifier.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[allow(non_camel_case_types)]
        pub enum RmiFid {
            $( $(#[$doc])* $name, )*
        }

        impl RmiFid {
            /// Every RMI command this ABI knows.
            pub const ALL: &'static [RmiFid] = &[$(RmiFid::$name,)*];

            /// Decodes a function identifier (the SVE hint must already be cleared).
            pub const fn from_fid(fid: u32) -> Option<Self> {
                match fid {
                    $( x if x == 0xC400_0000 | $fnum => Some(RmiFid::$name), )*
                    _ => None,
                }
            }

            /// Returns the 32-bit function identifier.
            pub const fn fid(self) -> u32 {
                match self { $( RmiFid::$name => 0xC400_0000 | $fnum, )* }
            }

            /// Returns the command name as the specification writes it.
            pub const fn name(self) -> &'static str {
                match self { $( RmiFid::$name => stringify!($name), )* }
            }

            /// Returns the number of argument registers (x1..) the command reads.
            pub const fn num_args(self) -> usize {
                match self { $( RmiFid::$name => $args, )* }
            }

            /// Returns the number of result registers (x0..) the command writes.
            pub const fn num_rets(self) -> usize {
                match self { $( RmiFid::$name => $rets, )* }
            }

            /// Returns the feature group the command belongs to.
            pub const fn class(self) -> RmiClass {
                match self { $( RmiFid::$name => RmiClass::$class, )* }
            }
        }
    };
}

/// Feature groups of RMI commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RmiClass {
    /// Core realm management, implemented by this RMM.
    Core,
    /// Device assignment (not implemented: answered with `ERROR_NOT_SUPPORTED` after the
    /// activation gate; TF-RMM main implements them).
    DeviceAssignment,
    /// Planes and auxiliary RTTs (not implemented: answered with `ERROR_NOT_SUPPORTED` after
    /// the activation gate; TF-RMM main implements them).
    Planes,
    /// A function identifier the specification defines but TF-RMM main leaves unimplemented.
    Unimplemented,
}

rmi_fids! {
    /// Negotiates the interface revision.
    VERSION = 0x150, 1, 3, Core;
    /// Creates a data granule with contents copied from NS memory (optionally measured).
    RTT_DATA_MAP_INIT = 0x153, 5, 1, Core;
    /// Activates a realm.
    REALM_ACTIVATE = 0x157, 1, 1, Core;
    /// Creates a realm.
    REALM_CREATE = 0x158, 2, 1, Core;
    /// Destroys a realm.
    REALM_DESTROY = 0x159, 1, 1, Core;
    /// Creates a REC (a stateful operation).
    REC_CREATE = 0x15A, 3, 3, Core;
    /// Destroys a REC (a stateful operation).
    REC_DESTROY = 0x15B, 1, 3, Core;
    /// Enters a REC.
    REC_ENTER = 0x15C, 2, 1, Core;
    /// Creates an RTT.
    RTT_CREATE = 0x15D, 4, 1, Core;
    /// Destroys an RTT.
    RTT_DESTROY = 0x15E, 3, 3, Core;
    /// Reads an RTT entry.
    RTT_READ_ENTRY = 0x161, 3, 5, Core;
    /// Validates a device mapping.
    RTT_DEV_VALIDATE = 0x163, 4, 2, DeviceAssignment;
    /// Completes a pending realm PSCI request.
    PSCI_COMPLETE = 0x164, 3, 1, Core;
    /// Reads a feature register.
    FEATURES = 0x165, 1, 2, Core;
    /// Folds an RTT into a block.
    RTT_FOLD = 0x166, 3, 2, Core;
    /// Sets the initial RIPAS of a range (realm NEW).
    RTT_INIT_RIPAS = 0x168, 3, 2, Core;
    /// Completes a realm's RIPAS change request.
    RTT_SET_RIPAS = 0x169, 4, 2, Core;
    /// Creates a virtual SMMU.
    VSMMU_CREATE = 0x16A, 0, 1, Unimplemented;
    /// Destroys a virtual SMMU.
    VSMMU_DESTROY = 0x16B, 0, 1, Unimplemented;
    /// Maps a virtual SMMU.
    VSMMU_MAP = 0x16C, 0, 1, Unimplemented;
    /// Unmaps a virtual SMMU.
    VSMMU_UNMAP = 0x16D, 0, 1, Unimplemented;
    /// Sets the RMM configuration (before activation).
    RMM_CONFIG_SET = 0x16E, 1, 1, Core;
    /// Notifies a physical SMMU interrupt.
    PSMMU_IRQ_NOTIFY = 0x16F, 0, 1, Unimplemented;
    /// Aborts a PDEV operation.
    PDEV_ABORT = 0x174, 1, 1, DeviceAssignment;
    /// Communicates with a PDEV.
    PDEV_COMMUNICATE = 0x175, 2, 1, DeviceAssignment;
    /// Creates a PDEV.
    PDEV_CREATE = 0x176, 2, 1, DeviceAssignment;
    /// Destroys a PDEV.
    PDEV_DESTROY = 0x177, 1, 1, DeviceAssignment;
    /// Reads a PDEV's state.
    PDEV_GET_STATE = 0x178, 1, 2, DeviceAssignment;
    /// Refreshes PDEV stream keys.
    PDEV_STREAM_KEY_REFRESH = 0x17A, 3, 1, DeviceAssignment;
    /// Sets a PDEV public key.
    PDEV_SET_PUBKEY = 0x17B, 2, 1, DeviceAssignment;
    /// Stops a PDEV.
    PDEV_STOP = 0x17C, 1, 1, DeviceAssignment;
    /// Creates an auxiliary RTT.
    RTT_AUX_CREATE = 0x17D, 5, 1, Planes;
    /// Destroys an auxiliary RTT.
    RTT_AUX_DESTROY = 0x17E, 4, 3, Planes;
    /// Folds an auxiliary RTT.
    RTT_AUX_FOLD = 0x17F, 4, 2, Planes;
    /// Maps protected memory in an auxiliary RTT.
    RTT_AUX_MAP_PROTECTED = 0x180, 3, 5, Planes;
    /// Maps unprotected memory in an auxiliary RTT.
    RTT_AUX_MAP_UNPROTECTED = 0x181, 3, 4, Planes;
    /// Unmaps protected memory from an auxiliary RTT.
    RTT_AUX_UNMAP_PROTECTED = 0x183, 3, 2, Planes;
    /// Unmaps unprotected memory from an auxiliary RTT.
    RTT_AUX_UNMAP_UNPROTECTED = 0x184, 3, 3, Planes;
    /// Aborts a VDEV operation.
    VDEV_ABORT = 0x185, 3, 1, DeviceAssignment;
    /// Communicates with a VDEV.
    VDEV_COMMUNICATE = 0x186, 4, 1, DeviceAssignment;
    /// Creates a VDEV.
    VDEV_CREATE = 0x187, 4, 1, DeviceAssignment;
    /// Destroys a VDEV.
    VDEV_DESTROY = 0x188, 3, 1, DeviceAssignment;
    /// Reads a VDEV's state.
    VDEV_GET_STATE = 0x189, 1, 2, DeviceAssignment;
    /// Unlocks a VDEV.
    VDEV_UNLOCK = 0x18A, 3, 2, DeviceAssignment;
    /// Completes a realm's S2AP change request.
    RTT_SET_S2AP = 0x18B, 4, 2, Planes;
    /// Completes a realm's VDEV request.
    VDEV_COMPLETE = 0x18E, 2, 1, DeviceAssignment;
    /// Gets a VDEV interface report.
    VDEV_GET_INTERFACE_REPORT = 0x1D0, 3, 1, DeviceAssignment;
    /// Gets VDEV measurements.
    VDEV_GET_MEASUREMENTS = 0x1D1, 4, 1, DeviceAssignment;
    /// Locks a VDEV.
    VDEV_LOCK = 0x1D2, 3, 1, DeviceAssignment;
    /// Starts a VDEV.
    VDEV_START = 0x1D3, 3, 1, DeviceAssignment;
    /// Activates a physical SMMU.
    PSMMU_ACTIVATE = 0x1D7, 2, 1, DeviceAssignment;
    /// Deactivates a physical SMMU.
    PSMMU_DEACTIVATE = 0x1D8, 1, 1, DeviceAssignment;
    /// Creates a physical SMMU stream table L2.
    PSMMU_ST_L2_CREATE = 0x1DB, 2, 1, DeviceAssignment;
    /// Destroys a physical SMMU stream table L2.
    PSMMU_ST_L2_DESTROY = 0x1DC, 2, 1, DeviceAssignment;
    /// Reads the tracking state of a memory range.
    GRANULE_TRACKING_GET = 0x1E1, 2, 4, Core;
    /// Changes the tracking state of a memory range.
    GRANULE_TRACKING_SET = 0x1E3, 3, 1, Unimplemented;
    /// Reads the RMM configuration.
    RMM_CONFIG_GET = 0x1EC, 1, 1, Core;
    /// Delegates a range of granules to the Realm PAS.
    GRANULE_RANGE_DELEGATE = 0x1F1, 2, 2, Core;
    /// Undelegates a range of granules back to the NS PAS.
    GRANULE_RANGE_UNDELEGATE = 0x1F2, 2, 2, Core;
    /// Creates a level 1 GPT.
    GPT_L1_CREATE = 0x1F3, 1, 1, Core;
    /// Destroys a level 1 GPT.
    GPT_L1_DESTROY = 0x1F4, 1, 1, Unimplemented;
    /// Maps delegated granules as realm data.
    RTT_DATA_MAP = 0x1F5, 5, 2, Core;
    /// Unmaps realm data.
    RTT_DATA_UNMAP = 0x1F6, 5, 4, Core;
    /// Maps device memory.
    RTT_DEV_MAP = 0x1F7, 6, 2, DeviceAssignment;
    /// Unmaps device memory.
    RTT_DEV_UNMAP = 0x1F8, 5, 4, DeviceAssignment;
    /// Maps NS memory at unprotected IPAs.
    RTT_UNPROT_MAP = 0x1FB, 5, 2, Core;
    /// Unmaps NS memory from unprotected IPAs.
    RTT_UNPROT_UNMAP = 0x1FC, 5, 4, Core;
    /// Moves a realm to the ZOMBIE state.
    REALM_TERMINATE = 0x201, 1, 1, Core;
    /// Activates the RMM (INIT to ACTIVE).
    RMM_ACTIVATE = 0x202, 0, 1, Core;
    /// Continues a stateful operation.
    OP_CONTINUE = 0x203, 2, 3, Core;
    /// Connects a PDEV stream.
    PDEV_STREAM_CONNECT = 0x204, 1, 2, DeviceAssignment;
    /// Disconnects a PDEV stream.
    PDEV_STREAM_DISCONNECT = 0x205, 3, 1, DeviceAssignment;
    /// Completes a PDEV stream operation.
    PDEV_STREAM_COMPLETE = 0x206, 3, 1, DeviceAssignment;
    /// Purges PDEV stream keys.
    PDEV_STREAM_KEY_PURGE = 0x207, 3, 1, DeviceAssignment;
    /// Donates memory to a stateful operation.
    OP_MEM_DONATE = 0x208, 3, 3, Core;
    /// Reclaims memory from a stateful operation.
    OP_MEM_RECLAIM = 0x209, 3, 2, Core;
    /// Cancels a stateful operation.
    OP_CANCEL = 0x20A, 1, 1, Core;
}

/// Returns true when `fid` lies in one of the two ranges EL3 forwards to the RMM
/// (`0x150..=0x18F` and `0x1D0..=0x2CF`, fast SMC64, standard service).
pub const fn is_rmi_fid(fid: u32) -> bool {
    if fid & 0xFFFF_0000 != 0xC400_0000 {
        return false;
    }
    let fnum = fid & 0xFFFF;
    (fnum >= 0x150 && fnum <= 0x18F) || (fnum >= 0x1D0 && fnum <= 0x2CF)
}

/// Not an RMI command: the function ID (inside the forwarded range, assigned to no command)
/// with which the fatal-fault tests make an RMM image whose test hooks are enabled panic
/// (`cargo xtask fuzz fault --kind rmm-panic`). Any other RMM answers it `SMC_UNKNOWN`.
pub const TEST_HOOK_PANIC: u32 = 0xC400_02CF;

/// RMI command status codes (x0 bits [7:0]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RmiStatus {
    /// The command succeeded.
    Success = 0,
    /// An input argument was invalid.
    ErrorInput = 1,
    /// A realm attribute or state was wrong.
    ErrorRealm = 2,
    /// A REC attribute or state was wrong.
    ErrorRec = 3,
    /// An RTT walk or entry state was wrong (index = level).
    ErrorRtt = 4,
    /// The feature is not supported.
    ErrorNotSupported = 5,
    /// A device attribute or state was wrong.
    ErrorDevice = 6,
    /// An auxiliary RTT was wrong.
    ErrorRttAux = 7,
    /// A physical SMMU stream table was wrong.
    ErrorPsmmuSt = 8,
    /// A device permission table was wrong.
    ErrorDpt = 9,
    /// A transient condition: nothing changed, retry.
    Busy = 10,
    /// The RMM's global state does not allow the command.
    ErrorGlobal = 11,
    /// The granule tracking state is wrong.
    ErrorTracking = 12,
    /// A stateful operation is in progress.
    Incomplete = 13,
    /// Every stateful operation context is sealed.
    Blocked = 14,
    /// A GPT operation failed.
    ErrorGpt = 15,
    /// A granule state is wrong.
    ErrorGranule = 16,
}

impl RmiStatus {
    /// Every status, in numeric order.
    pub const ALL: [RmiStatus; 17] = [
        Self::Success,
        Self::ErrorInput,
        Self::ErrorRealm,
        Self::ErrorRec,
        Self::ErrorRtt,
        Self::ErrorNotSupported,
        Self::ErrorDevice,
        Self::ErrorRttAux,
        Self::ErrorPsmmuSt,
        Self::ErrorDpt,
        Self::Busy,
        Self::ErrorGlobal,
        Self::ErrorTracking,
        Self::Incomplete,
        Self::Blocked,
        Self::ErrorGpt,
        Self::ErrorGranule,
    ];

    /// Decodes bits [7:0] of x0.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(code as usize).copied()
    }

    /// Returns the specification's name for the status.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Success => "RMI_SUCCESS",
            Self::ErrorInput => "RMI_ERROR_INPUT",
            Self::ErrorRealm => "RMI_ERROR_REALM",
            Self::ErrorRec => "RMI_ERROR_REC",
            Self::ErrorRtt => "RMI_ERROR_RTT",
            Self::ErrorNotSupported => "RMI_ERROR_NOT_SUPPORTED",
            Self::ErrorDevice => "RMI_ERROR_DEVICE",
            Self::ErrorRttAux => "RMI_ERROR_RTT_AUX",
            Self::ErrorPsmmuSt => "RMI_ERROR_PSMMU_ST",
            Self::ErrorDpt => "RMI_ERROR_DPT",
            Self::Busy => "RMI_BUSY",
            Self::ErrorGlobal => "RMI_ERROR_GLOBAL",
            Self::ErrorTracking => "RMI_ERROR_TRACKING",
            Self::Incomplete => "RMI_INCOMPLETE",
            Self::Blocked => "RMI_BLOCKED",
            Self::ErrorGpt => "RMI_ERROR_GPT",
            Self::ErrorGranule => "RMI_ERROR_GRANULE",
        }
    }
}

/// A packed RMI return code: status in bits [7:0], index in bits [15:8].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RmiReturn {
    /// The status.
    pub status: RmiStatus,
    /// The index (the RTT level for `ERROR_RTT`, the memory request for `INCOMPLETE`).
    pub index: u8,
}

impl RmiReturn {
    /// A return code with index 0.
    pub const fn new(status: RmiStatus) -> Self {
        Self { status, index: 0 }
    }

    /// A return code with an index.
    pub const fn with_index(status: RmiStatus, index: u8) -> Self {
        Self { status, index }
    }

    /// Packs the code into x0.
    pub const fn to_reg(self) -> u64 {
        (self.status as u64) | ((self.index as u64) << 8)
    }

    /// Unpacks x0; `None` when x0 is not an RMI status (for example `SMC_UNKNOWN`).
    pub fn from_reg(x0: u64) -> Option<Self> {
        if x0 >> 16 != 0 {
            return None;
        }
        Some(Self {
            status: RmiStatus::from_code(x0 as u8)?,
            index: (x0 >> 8) as u8,
        })
    }
}

/// The RMM's global state (RMI 2.0 activation gate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RmmState {
    /// Booted, not yet activated: only configuration commands are accepted.
    Init,
    /// Activated: all commands are accepted.
    Active,
}

/// Feature register 0 fields.
pub mod feat0 {
    /// S2SZ, bits [7:0].
    pub const S2SZ_SHIFT: u32 = 0;
    /// LPA2 support, bit 8.
    pub const LPA2: u64 = 1 << 8;
    /// SVE support, bit 9.
    pub const SVE_EN: u64 = 1 << 9;
    /// SVE vector length (VQ - 1), bits [13:10].
    pub const SVE_VL_SHIFT: u32 = 10;
    /// Number of breakpoints minus one, bits [19:14].
    pub const NUM_BPS_SHIFT: u32 = 14;
    /// Number of watchpoints minus one, bits [25:20].
    pub const NUM_WPS_SHIFT: u32 = 20;
    /// PMU support, bit 26.
    pub const PMU_EN: u64 = 1 << 26;
    /// Number of PMU counters, bits [31:27].
    pub const PMU_NUM_CTRS_SHIFT: u32 = 27;
}

/// Feature register 1 fields.
pub mod feat1 {
    /// 4 KiB RMI granules supported, bit 0.
    pub const GRAN_SZ_4K: u64 = 1 << 0;
    /// SHA-256 supported, bit 3.
    pub const HASH_SHA_256: u64 = 1 << 3;
    /// SHA-384 supported, bit 4.
    pub const HASH_SHA_384: u64 = 1 << 4;
    /// SHA-512 supported, bit 5.
    pub const HASH_SHA_512: u64 = 1 << 5;
    /// log2 of the maximum number of RECs per realm, bits [9:6].
    pub const MAX_RECS_ORDER_SHIFT: u32 = 6;
    /// L0GPTSZ encoding, bits [13:10] (0 = 30 bits).
    pub const L0GPTSZ_SHIFT: u32 = 10;
    /// PPS encoding, bits [16:14] (5 = 48 bits).
    pub const PPS_SHIFT: u32 = 14;
    /// L0GPTSZ value for 1 GiB level 0 entries.
    pub const L0GPTSZ_30BITS: u64 = 0;
    /// PPS value for a 48-bit protected physical space.
    pub const PPS_48BITS: u64 = 5;
}

/// `RmiRmmConfig`: the global configuration passed to `RMM_CONFIG_SET`/`GET`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct RmmConfig {
    /// Tracking region size (0 = 1 GiB for 4 KiB granules).
    pub tracking_region_size: u64,
    /// RMI granule size (0 = 4 KiB).
    pub rmi_granule_size: u64,
}
const _: () = assert!(size_of::<RmmConfig>() == 16);
const _: () = assert!(offset_of!(RmmConfig, rmi_granule_size) == 0x8);

/// `RmiGranuleSize`: 4 KiB.
pub const GRANULE_SIZE_4K: u64 = 0;
/// `RmiTrackingRegionSize` for 4 KiB granules: 1 GiB.
pub const TRACKING_REGION_1G: u64 = 0;
/// Size in bytes of a tracking region (and of a level 0 GPT entry).
pub const TRACKING_REGION_BYTES: u64 = 1 << 30;

/// `RmiMemCategory`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum MemCategory {
    /// Conventional memory.
    Conventional = 0,
    /// Non-coherent device memory.
    DevNcoh = 1,
    /// Coherent device memory.
    DevCoh = 2,
}

/// `RmiTrackingRegionState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum TrackingState {
    /// Reserved.
    Reserved = 0,
    /// Not tracked by the RMM.
    None = 1,
    /// Tracked at granule granularity.
    Fine = 2,
    /// Tracked at region granularity.
    Coarse = 3,
}

/// `RmiHashAlgorithm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum HashAlgorithm {
    /// SHA-256.
    Sha256 = 0,
    /// SHA-512.
    Sha512 = 1,
    /// SHA-384.
    Sha384 = 2,
}

/// `RmiRealmParams`: one 4 KiB NS page read by `REALM_CREATE`.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct RealmParams {
    /// Flags: bit 0 LPA2, bit 1 SVE, bit 2 PMU, bit 3 DA, bits [8:7] MEC policy.
    pub flags0: u64,
    /// IPA width in bits.
    pub s2sz: u64,
    /// SVE vector length.
    pub sve_vl: u64,
    /// Number of breakpoints.
    pub num_bps: u64,
    /// Number of watchpoints.
    pub num_wps: u64,
    /// Number of PMU counters.
    pub pmu_num_ctrs: u64,
    /// Hash algorithm (`RmiHashAlgorithm`).
    pub hash_algo: u8,
    _pad0: [u8; 7],
    /// Number of auxiliary planes.
    pub num_aux_planes: u64,
    _pad1: [u8; 0x400 - 0x40],
    /// Realm Personalisation Value.
    pub rpv: [u8; 64],
    /// Plane used for ATS.
    pub ats_plane: u64,
    _pad2: [u8; 0x808 - 0x448],
    /// PA of the first starting-level RTT.
    pub rtt_base: u64,
    /// RTT starting level (signed).
    pub rtt_level_start: i64,
    /// Number of starting-level RTTs.
    pub rtt_num_start: u32,
    _pad3: [u8; 4],
    /// Flags: bit 0 RTT tree per plane, bit 1 S2AP indirect encoding.
    pub flags1: u64,
    _pad4: [u8; 0xF80 - 0x828],
    /// PAs of the auxiliary starting-level RTTs.
    pub aux_rtt_base: [u64; 3],
    _pad5: [u8; 0x1000 - 0xF98],
}
const _: () = assert!(size_of::<RealmParams>() == 0x1000);
const _: () = assert!(offset_of!(RealmParams, s2sz) == 0x8);
const _: () = assert!(offset_of!(RealmParams, hash_algo) == 0x30);
const _: () = assert!(offset_of!(RealmParams, num_aux_planes) == 0x38);
const _: () = assert!(offset_of!(RealmParams, rpv) == 0x400);
const _: () = assert!(offset_of!(RealmParams, ats_plane) == 0x440);
const _: () = assert!(offset_of!(RealmParams, rtt_base) == 0x808);
const _: () = assert!(offset_of!(RealmParams, rtt_level_start) == 0x810);
const _: () = assert!(offset_of!(RealmParams, rtt_num_start) == 0x818);
const _: () = assert!(offset_of!(RealmParams, flags1) == 0x820);
const _: () = assert!(offset_of!(RealmParams, aux_rtt_base) == 0xF80);

/// `RmiRecParams`: one 4 KiB NS page read by `REC_CREATE`.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct RecParams {
    /// Flags: bit 0 RUNNABLE.
    pub flags: u64,
    _pad0: [u8; 0x100 - 0x8],
    /// `RmiRecMpidr`.
    pub mpidr: u64,
    _pad1: [u8; 0x200 - 0x108],
    /// Initial program counter.
    pub pc: u64,
    _pad2: [u8; 0x300 - 0x208],
    /// Initial x0..x7.
    pub gprs: [u64; 8],
    _pad3: [u8; 0x1000 - 0x340],
}
const _: () = assert!(size_of::<RecParams>() == 0x1000);
const _: () = assert!(offset_of!(RecParams, mpidr) == 0x100);
const _: () = assert!(offset_of!(RecParams, pc) == 0x200);
const _: () = assert!(offset_of!(RecParams, gprs) == 0x300);

/// `RmiRecEnter`: the host-written half of `RmiRecRun`.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct RecEnter {
    /// Entry flags (`rec_enter_flags`).
    pub flags: u64,
    _pad0: [u8; 0x200 - 0x8],
    /// x0..x30 values supplied by the host.
    pub gprs: [u64; 31],
    _pad1: [u8; 0x800 - 0x2F8],
}
const _: () = assert!(size_of::<RecEnter>() == 0x800);
const _: () = assert!(offset_of!(RecEnter, gprs) == 0x200);

/// `RmiRecExit`: the RMM-written half of `RmiRecRun`.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct RecExit {
    /// Exit reason.
    pub exit_reason: u64,
    _pad0: [u8; 0x100 - 0x8],
    /// Sanitised ESR_EL2.
    pub esr: u64,
    /// Sanitised FAR_EL2.
    pub far: u64,
    /// Sanitised HPFAR_EL2.
    pub hpfar: u64,
    /// Index of the active stage 2 translation tree.
    pub rtt_tree: u64,
    /// RTT level of a fault.
    pub rtt_level: u64,
    _pad1: [u8; 0x200 - 0x128],
    /// x0..x30 values exposed to the host.
    pub gprs: [u64; 31],
    _pad2: [u8; 0x400 - 0x2F8],
    /// CNTP_CTL_EL0.
    pub cntp_ctl: u64,
    /// CNTP_CVAL_EL0.
    pub cntp_cval: u64,
    /// CNTV_CTL_EL0.
    pub cntv_ctl: u64,
    /// CNTV_CVAL_EL0.
    pub cntv_cval: u64,
    _pad3: [u8; 0x500 - 0x420],
    /// Base of a requested RIPAS change.
    pub ripas_base: u64,
    /// Top of a requested RIPAS change.
    pub ripas_top: u64,
    /// Requested RIPAS value.
    pub ripas_value: u8,
    _pad4: [u8; 0x520 - 0x511],
    /// Base of a requested S2AP change.
    pub s2ap_base: u64,
    /// Top of a requested S2AP change.
    pub s2ap_top: u64,
    /// First VDEV identifier.
    pub vdev_id_1: u64,
    /// Second VDEV identifier.
    pub vdev_id_2: u64,
    /// Base of a device memory mapping request.
    pub dev_mem_base: u64,
    /// Top of a device memory mapping request.
    pub dev_mem_top: u64,
    /// PA of a device memory mapping request.
    pub dev_mem_pa: u64,
    _pad5: [u8; 0x600 - 0x558],
    /// Host call immediate.
    pub imm: u32,
    _pad6: [u8; 4],
    /// Plane that made the host call.
    pub plane: u64,
    _pad7: [u8; 0x700 - 0x610],
    /// PMU overflow status.
    pub pmu_ovf_status: u64,
    _pad8: [u8; 0x800 - 0x708],
}
const _: () = assert!(size_of::<RecExit>() == 0x800);
const _: () = assert!(offset_of!(RecExit, esr) == 0x100);
const _: () = assert!(offset_of!(RecExit, rtt_level) == 0x120);
const _: () = assert!(offset_of!(RecExit, gprs) == 0x200);
const _: () = assert!(offset_of!(RecExit, cntp_ctl) == 0x400);
const _: () = assert!(offset_of!(RecExit, cntv_cval) == 0x418);
const _: () = assert!(offset_of!(RecExit, ripas_base) == 0x500);
const _: () = assert!(offset_of!(RecExit, ripas_value) == 0x510);
const _: () = assert!(offset_of!(RecExit, s2ap_base) == 0x520);
const _: () = assert!(offset_of!(RecExit, dev_mem_pa) == 0x550);
const _: () = assert!(offset_of!(RecExit, imm) == 0x600);
const _: () = assert!(offset_of!(RecExit, plane) == 0x608);
const _: () = assert!(offset_of!(RecExit, pmu_ovf_status) == 0x700);

/// `RmiRecRun`: the 4 KiB NS page passed to `REC_ENTER`.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct RecRun {
    /// Host to RMM.
    pub enter: RecEnter,
    /// RMM to host.
    pub exit: RecExit,
}
const _: () = assert!(size_of::<RecRun>() == 0x1000);
const _: () = assert!(offset_of!(RecRun, exit) == 0x800);

/// Block size codes of an address range descriptor (bits [1:0]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockSize {
    /// 4 KiB (level 3).
    L3_4K = 0,
    /// 2 MiB (level 2).
    L2_2M = 1,
    /// 1 GiB (level 1).
    L1_1G = 2,
    /// 512 GiB (level 0).
    L0_512G = 3,
}

impl BlockSize {
    /// Size in bytes of one block.
    pub const fn bytes(self) -> u64 {
        match self {
            Self::L3_4K => 1 << 12,
            Self::L2_2M => 1 << 21,
            Self::L1_1G => 1 << 30,
            Self::L0_512G => 1 << 39,
        }
    }

    /// Decodes bits [1:0].
    pub const fn from_bits(v: u64) -> Self {
        match v & 3 {
            0 => Self::L3_4K,
            1 => Self::L2_2M,
            2 => Self::L1_1G,
            _ => Self::L0_512G,
        }
    }
}

/// `RmiAddrRangeDesc4KB`: a run of `count` blocks at `addr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrRangeDesc {
    /// Block size.
    pub size: BlockSize,
    /// Number of blocks (1..=1023).
    pub count: u16,
    /// PA of the first block.
    pub addr: u64,
    /// True when the granules are undelegated (bit 63).
    pub undelegated: bool,
}

impl AddrRangeDesc {
    /// Decodes a descriptor.
    pub const fn decode(v: u64) -> Self {
        Self {
            size: BlockSize::from_bits(v),
            count: ((v >> 2) & 0x3ff) as u16,
            addr: v & 0x000F_FFFF_FFFF_F000,
            undelegated: v >> 63 != 0,
        }
    }

    /// Encodes the descriptor.
    pub const fn encode(self) -> u64 {
        (self.size as u64)
            | ((self.count as u64 & 0x3ff) << 2)
            | (self.addr & 0x000F_FFFF_FFFF_F000)
            | ((self.undelegated as u64) << 63)
    }
}

/// Memory request codes carried in x0 bits [9:8] of an `INCOMPLETE` result.
pub mod mem_req {
    /// No memory request.
    pub const NONE: u8 = 0;
    /// The RMM asks the host to donate memory.
    pub const DONATE: u8 = 1;
    /// The RMM asks the host to reclaim memory.
    pub const RECLAIM: u8 = 2;
    /// Bit 10: the operation can be cancelled.
    pub const CAN_CANCEL: u8 = 1 << 2;
}

/// `RmiRealmState`: the lifecycle state of a realm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RealmState {
    /// Created, being populated.
    New = 0,
    /// Activated: RECs may run.
    Active = 1,
    /// The realm called PSCI SYSTEM_OFF or SYSTEM_RESET.
    SystemOff = 2,
    /// Terminated: only teardown commands apply.
    Zombie = 3,
}

impl RealmState {
    /// Decodes a state value.
    pub const fn from_u64(v: u64) -> Option<Self> {
        match v {
            0 => Some(Self::New),
            1 => Some(Self::Active),
            2 => Some(Self::SystemOff),
            3 => Some(Self::Zombie),
            _ => None,
        }
    }
}

/// `RmiRealmFlags0` and `RmiRealmFlags1` fields of [`RealmParams`].
pub mod realm_flags {
    /// flags0 bit 0: LPA2 (52-bit IPAs with 4 KiB granules).
    pub const LPA2: u64 = 1 << 0;
    /// flags0 bit 1: SVE.
    pub const SVE: u64 = 1 << 1;
    /// flags0 bit 2: PMU.
    pub const PMU: u64 = 1 << 2;
    /// flags0 bit 3: device assignment.
    pub const DA: u64 = 1 << 3;
    /// flags0 bits [8:7]: MEC policy.
    pub const MEC_POLICY_SHIFT: u32 = 7;
    /// Mask of the MEC policy field (after shifting).
    pub const MEC_POLICY_MASK: u64 = 0x3;
    /// MEC policy: shared MECID.
    pub const MEC_POLICY_SHARED: u64 = 0;
    /// MEC policy: private MECID.
    pub const MEC_POLICY_PRIVATE: u64 = 1;
    /// flags1 bit 0: one RTT tree per plane.
    pub const RTT_TREE_PP: u64 = 1 << 0;
    /// flags1 bit 1: S2AP indirect encoding.
    pub const S2AP_INDIRECT: u64 = 1 << 1;
}

/// `RmiRttEntryState`: the state of an RTT entry as `RTT_READ_ENTRY` reports it.
pub mod rtt_entry_state {
    /// Unassigned.
    pub const UNASSIGNED: u64 = 0;
    /// Assigned (data, or NS memory outside the PAR).
    pub const ASSIGNED: u64 = 1;
    /// A table.
    pub const TABLE: u64 = 2;
    /// Assigned device memory.
    pub const ASSIGNED_DEV: u64 = 3;
}

/// `RmiRipas`: the realm IPA state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Ripas {
    /// No realm resources mapped.
    Empty = 0,
    /// Private realm memory.
    Ram = 1,
    /// Made inaccessible by the host.
    Destroyed = 2,
    /// Device memory.
    Dev = 3,
}

/// `RmiDataMeasureContent` values of `RTT_DATA_MAP_INIT`'s flags.
pub mod data_flags {
    /// Measure only the IPA and flags.
    pub const NO_MEASURE_CONTENT: u64 = 0;
    /// Also measure the contents.
    pub const MEASURE_CONTENT: u64 = 1;
}

/// `RmiAddrType` and the flags words of the range map and unmap commands
/// (`RmiRttProtMapFlags`, `RmiRttUnprotMapFlags`, `RmiRttUnmapFlags`).
pub mod map_flags {
    /// No output address.
    pub const ADDR_TYPE_NONE: u64 = 0;
    /// `oaddr` is one `RmiAddrRangeDesc4KB`.
    pub const ADDR_TYPE_SINGLE: u64 = 1;
    /// `oaddr` is the PA of an NS list of descriptors.
    pub const ADDR_TYPE_LIST: u64 = 2;
    /// Mask of the address type, bits [1:0].
    pub const ADDR_TYPE_MASK: u64 = 0x3;
    /// Shift of the list count, bits [15:2].
    pub const LIST_COUNT_SHIFT: u32 = 2;
    /// Mask of the list count (after shifting).
    pub const LIST_COUNT_MASK: u64 = (1 << 14) - 1;
    /// `RTT_UNPROT_MAP`: shift of MEMATTR, bits [18:16] (stage 2 MemAttr[2:0], FWB encoding).
    pub const MEMATTR_SHIFT: u32 = 16;
    /// Mask of MEMATTR (after shifting).
    pub const MEMATTR_MASK: u64 = 0x7;
    /// `RTT_UNPROT_MAP`: shift of S2AP, bits [22:19].
    pub const S2AP_SHIFT: u32 = 19;
    /// Mask of S2AP (after shifting).
    pub const S2AP_MASK: u64 = 0xf;
    /// Direct S2AP encoding: write permission.
    pub const S2AP_DIRECT_WRITE: u64 = 1 << 0;
    /// Direct S2AP encoding: read permission.
    pub const S2AP_DIRECT_READ: u64 = 1 << 1;

    /// Builds a flags word with an address type and a list count.
    pub const fn with_list(addr_type: u64, count: u64) -> u64 {
        (addr_type & ADDR_TYPE_MASK) | ((count & LIST_COUNT_MASK) << LIST_COUNT_SHIFT)
    }
}

/// `RmiOpMemDonateReq`: the memory request of an `INCOMPLETE | DONATE` result (x2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DonateReq {
    /// Block size of the requested blocks.
    pub size: BlockSize,
    /// Number of blocks (14 bits).
    pub count: u16,
    /// The blocks must form one contiguous, naturally aligned range.
    pub contig: bool,
    /// The blocks are undelegated (false: delegated).
    pub undelegated: bool,
}

impl DonateReq {
    /// Decodes x2.
    pub const fn decode(v: u64) -> Self {
        Self {
            size: BlockSize::from_bits(v),
            count: ((v >> 2) & 0x3fff) as u16,
            contig: (v >> 16) & 1 != 0,
            undelegated: (v >> 17) & 1 != 0,
        }
    }

    /// Encodes x2.
    pub const fn encode(self) -> u64 {
        (self.size as u64)
            | ((self.count as u64 & 0x3fff) << 2)
            | ((self.contig as u64) << 16)
            | ((self.undelegated as u64) << 17)
    }

    /// Total bytes requested.
    pub const fn bytes(self) -> u64 {
        self.size.bytes() * self.count as u64
    }
}

/// `RmiRecParams.flags` bit 0: the REC is runnable.
pub const REC_PARAMS_FLAG_RUNNABLE: u64 = 1;

/// Number of auxiliary granules every REC needs (donated through the `REC_CREATE` operation).
pub const REC_AUX_GRANULES: usize = 16;

/// `RmiRecMpidr` fields: Aff0 in bits [3:0], Aff1 [15:8], Aff2 [23:16], Aff3 [31:24].
pub mod rec_mpidr {
    /// The bits a valid `RmiRecMpidr` may have set.
    pub const VALID_MASK: u64 = 0xF | (0xFF << 8) | (0xFF << 16) | (0xFF << 24);

    /// Returns true when only the affinity fields are set.
    pub const fn is_valid(mpidr: u64) -> bool {
        mpidr & !VALID_MASK == 0
    }

    /// The REC index: Aff3:Aff2:Aff1:Aff0[3:0].
    pub const fn to_index(mpidr: u64) -> u64 {
        (mpidr & 0xF)
            | ((mpidr >> 4) & (0xFF << 4))
            | ((mpidr >> 4) & (0xFF << 12))
            | ((mpidr >> 4) & (0xFF << 20))
    }

    /// The `RmiRecMpidr` of REC index `idx` (inverse of [`to_index`]).
    pub const fn from_index(idx: u64) -> u64 {
        (idx & 0xF)
            | ((idx & (0xFF << 4)) << 4)
            | ((idx & (0xFF << 12)) << 4)
            | ((idx & (0xFF << 20)) << 4)
    }

    /// The `MPIDR_EL1` layout of the same affinities (Aff3 moves to bits [39:32]).
    pub const fn to_mpidr_el1(mpidr: u64) -> u64 {
        (mpidr & 0xFF_FFFF) | ((mpidr & (0xFF << 24)) << 8)
    }
}

/// `RmiRecEnterFlags`: the bits of `RmiRecEnter.flags`. Each one answers the exit just
/// reported and is consumed by the next `REC_ENTER`.
pub mod rec_enter_flags {
    /// Complete the emulated MMIO access of the last exit (a data abort at an unprotected IPA
    /// with ISV set): for a read, `enter.gprs[0]` goes to the target register; the PC moves
    /// past the access.
    pub const EMUL_MMIO: u64 = 1 << 0;
    /// Inject a synchronous external abort for the last exit (a data abort at an unprotected
    /// IPA). Takes precedence over `EMUL_MMIO`.
    pub const INJECT_SEA: u64 = 1 << 1;
    /// Trap WFI while the REC runs.
    pub const TRAP_WFI: u64 = 1 << 2;
    /// Trap WFE while the REC runs.
    pub const TRAP_WFE: u64 = 1 << 3;
    /// Answer to a RIPAS change request: 0 accept, 1 reject.
    pub const RIPAS_RESPONSE: u64 = 1 << 4;
    /// Answer to an S2AP change request (planes; ignored by this RMM).
    pub const S2AP_RESPONSE: u64 = 1 << 5;
    /// Answer to a device memory mapping request (device assignment; ignored by this RMM).
    pub const DEV_MEM_RESPONSE: u64 = 1 << 6;
    /// Return to plane 0 (planes; ignored by this RMM).
    pub const FORCE_P0: u64 = 1 << 7;
}

/// Bytes of `RmiRecRun` the RMM reads at `REC_ENTER`: TF-RMM's `struct rmi_rec_enter`
/// (`flags` at 0x0, `gprs` at 0x200..0x2F8).
pub const REC_ENTER_READ_SIZE: usize = 0x300;

/// `RmiRecExitFlags` bit 0 (`RIPAS_DEV_SHARED`): defined, never set by TF-RMM main.
pub const REC_EXIT_FLAG_RIPAS_DEV_SHARED: u64 = 1 << 0;

/// REC exit reasons.
pub mod exit_reason {
    /// Synchronous exception.
    pub const SYNC: u64 = 0;
    /// IRQ.
    pub const IRQ: u64 = 1;
    /// FIQ.
    pub const FIQ: u64 = 2;
    /// PSCI call.
    pub const PSCI: u64 = 3;
    /// RIPAS change request.
    pub const RIPAS_CHANGE: u64 = 4;
    /// Host call.
    pub const HOST_CALL: u64 = 5;
    /// SError.
    pub const SERROR: u64 = 6;
    /// S2AP change request (planes).
    pub const S2AP_CHANGE: u64 = 7;
    /// VDEV request (device assignment).
    pub const VDEV_REQUEST: u64 = 8;
    /// Device memory mapping request (device assignment).
    pub const DEV_MEM_MAP: u64 = 9;
    /// VDEV peer-to-peer binding request (device assignment).
    pub const VDEV_P2P_BINDING: u64 = 10;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fids_round_trip_and_are_in_forwarded_ranges() {
        for &f in RmiFid::ALL {
            assert_eq!(RmiFid::from_fid(f.fid()), Some(f), "{}", f.name());
            assert!(
                is_rmi_fid(f.fid()),
                "{} outside the forwarded ranges",
                f.name()
            );
            let fnum = f.fid() & 0xffff;
            assert!((FNUM_MIN..=FNUM_MAX).contains(&fnum));
            assert!(f.num_args() <= 6 && f.num_rets() <= 8);
        }
    }

    #[test]
    fn known_fids() {
        assert!(is_rmi_fid(TEST_HOOK_PANIC) && RmiFid::from_fid(TEST_HOOK_PANIC).is_none());
        assert_eq!(RmiFid::VERSION.fid(), 0xC400_0150);
        assert_eq!(RmiFid::GRANULE_RANGE_DELEGATE.fid(), 0xC400_01F1);
        assert_eq!(RmiFid::RMM_ACTIVATE.fid(), 0xC400_0202);
        assert_eq!(RmiFid::REALM_TERMINATE.fid(), 0xC400_0201);
        assert_eq!(
            RmiFid::from_fid(0xC400_0151),
            None,
            "GRANULE_DELEGATE was removed in 2.0"
        );
        assert!(
            !is_rmi_fid(0xC400_0190),
            "RSI range is not forwarded from NS"
        );
        assert!(
            !is_rmi_fid(0xC400_01B0),
            "RMM-EL3 range is not forwarded from NS"
        );
        assert!(is_rmi_fid(0xC400_02CF));
        assert!(!is_rmi_fid(0x8400_0150));
    }

    #[test]
    fn return_code_packing() {
        let r = RmiReturn::with_index(RmiStatus::ErrorRtt, 2);
        assert_eq!(r.to_reg(), 0x204);
        assert_eq!(RmiReturn::from_reg(0x204), Some(r));
        assert_eq!(
            RmiReturn::from_reg(0x10D).unwrap().status,
            RmiStatus::Incomplete
        );
        assert_eq!(RmiReturn::from_reg(u64::MAX), None);
        assert_eq!(RmiReturn::from_reg(17), None);
        for (i, s) in RmiStatus::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
    }

    #[test]
    fn donate_request_and_mpidr() {
        let r = DonateReq {
            size: BlockSize::L3_4K,
            count: 16,
            contig: false,
            undelegated: false,
        };
        assert_eq!(r.encode(), 0x40);
        assert_eq!(DonateReq::decode(0x40), r);
        assert_eq!(r.bytes(), 16 * 4096);
        assert!(DonateReq::decode(3 << 16).undelegated);
        assert_eq!(rec_mpidr::to_index(0x0302_0105), 0x302015);
        assert_eq!(rec_mpidr::from_index(0x302015), 0x0302_0105);
        assert!(!rec_mpidr::is_valid(0x10));
        assert!(rec_mpidr::is_valid(0xFFFF_FF0F));
        assert_eq!(rec_mpidr::to_mpidr_el1(0x0400_0001), 0x04_0000_0001);
        assert_eq!(map_flags::with_list(2, 5), 2 | (5 << 2));
        assert_eq!(RealmState::from_u64(3), Some(RealmState::Zombie));
        assert_eq!(RealmState::from_u64(4), None);
    }

    #[test]
    fn rec_run_flags_and_reasons() {
        use rec_enter_flags::*;
        let all = [
            EMUL_MMIO,
            INJECT_SEA,
            TRAP_WFI,
            TRAP_WFE,
            RIPAS_RESPONSE,
            S2AP_RESPONSE,
            DEV_MEM_RESPONSE,
            FORCE_P0,
        ];
        for (i, f) in all.iter().enumerate() {
            assert_eq!(*f, 1 << i);
        }
        assert_eq!(REC_ENTER_READ_SIZE, offset_of!(RecEnter, gprs) + 31 * 8 + 8);
        assert_eq!(
            [
                exit_reason::SYNC,
                exit_reason::IRQ,
                exit_reason::FIQ,
                exit_reason::PSCI,
                exit_reason::RIPAS_CHANGE,
                exit_reason::HOST_CALL,
                exit_reason::SERROR,
                exit_reason::S2AP_CHANGE,
                exit_reason::VDEV_REQUEST,
                exit_reason::DEV_MEM_MAP,
                exit_reason::VDEV_P2P_BINDING
            ],
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
        );
    }

    #[test]
    fn range_descriptor() {
        let d = AddrRangeDesc {
            size: BlockSize::L2_2M,
            count: 3,
            addr: 0x8020_0000,
            undelegated: false,
        };
        assert_eq!(d.encode(), 0x8020_0000 | (3 << 2) | 1);
        assert_eq!(AddrRangeDesc::decode(d.encode()), d);
        assert!(AddrRangeDesc::decode(1 << 63).undelegated);
    }
}
