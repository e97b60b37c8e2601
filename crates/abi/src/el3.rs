//! The RMM-EL3 communication interface 2.0 (TF-A's `rmm-el3-comms-spec`), the boot manifest
//! v0.5, and this stack's own SiP calls into EL3.

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// RMM-EL3 interface version 2.0, passed to the RMM in x1 at cold boot.
pub const RMM_EL3_IFC_VERSION: u64 = crate::version(2, 0);
/// Boot manifest version 0.5.
pub const MANIFEST_VERSION: u32 = crate::version(0, 5) as u32;
/// Oldest boot manifest minor version the RMM accepts (major must be 0).
pub const MANIFEST_MIN_MINOR: u16 = 3;

/// `RMM_RMI_REQ_COMPLETE`: the RMM returns an RMI result (x1..x8 become the host's x0..x7).
pub const RMM_RMI_REQ_COMPLETE: u32 = 0xC400_018F;
/// `RMM_GTSI_DELEGATE`: move one granule from NS to Realm PAS.
pub const RMM_GTSI_DELEGATE: u32 = 0xC400_01B0;
/// `RMM_GTSI_UNDELEGATE`: move one granule from Realm to NS PAS.
pub const RMM_GTSI_UNDELEGATE: u32 = 0xC400_01B1;
/// `RMM_ATTEST_GET_REALM_KEY`.
pub const RMM_ATTEST_GET_REALM_KEY: u32 = 0xC400_01B2;
/// `RMM_ATTEST_GET_PLAT_TOKEN`.
pub const RMM_ATTEST_GET_PLAT_TOKEN: u32 = 0xC400_01B3;
/// `RMM_EL3_FEATURES`.
pub const RMM_EL3_FEATURES: u32 = 0xC400_01B4;
/// `RMM_EL3_TOKEN_SIGN`.
pub const RMM_EL3_TOKEN_SIGN: u32 = 0xC400_01B5;
/// `RMM_MEC_REFRESH`.
pub const RMM_MEC_REFRESH: u32 = 0xC400_01B6;
/// `RMM_RESERVE_MEMORY`: allocate memory from EL3's Realm carve-out.
pub const RMM_RESERVE_MEMORY: u32 = 0xC400_01BB;
/// `RMM_BOOT_COMPLETE`: the RMM finished cold or warm boot (x1 = status, x2 = token).
pub const RMM_BOOT_COMPLETE: u32 = 0xC400_01CF;

/// First function number of the RMM-EL3 range.
pub const FNUM_MIN: u32 = 0x1B0;
/// Last function number of the RMM-EL3 range.
pub const FNUM_MAX: u32 = 0x1CF;

/// FIRME `BASE_VERSION` (FIRME is not offered by this EL3; it answers `SMC_UNKNOWN`).
pub const FIRME_BASE_VERSION: u32 = 0xC400_0400;
/// FIRME `BASE_FEATURES`.
pub const FIRME_BASE_FEATURES: u32 = 0xC400_0401;
/// FIRME `GM_GPI_SET`.
pub const FIRME_GM_GPI_SET: u32 = 0xC400_0402;

/// `RMM_RESERVE_MEMORY` flag (x2 bit 0): the memory is for the calling CPU only.
pub const RESERVE_LOCAL: u64 = 1;
/// `RMM_RESERVE_MEMORY` alignment field shift (x2 bits [63:56] hold log2 of the alignment).
pub const RESERVE_ALIGN_SHIFT: u32 = 56;

/// Error codes of the RMM-EL3 runtime interface (`E_RMM_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i64)]
pub enum El3Error {
    /// Unknown or unsupported call.
    Unknown = -1,
    /// The address is invalid.
    BadAddr = -2,
    /// The granule is in the wrong PAS.
    BadPas = -3,
    /// Not enough memory.
    NoMem = -4,
    /// An argument is invalid.
    Inval = -5,
    /// The resource is busy; try again.
    Again = -6,
}

impl El3Error {
    /// The register value of the error.
    pub const fn to_reg(self) -> u64 {
        self as i64 as u64
    }

    /// Decodes a non-zero register value.
    pub const fn from_reg(v: u64) -> Option<Self> {
        Some(match v as i64 {
            -1 => Self::Unknown,
            -2 => Self::BadAddr,
            -3 => Self::BadPas,
            -4 => Self::NoMem,
            -5 => Self::Inval,
            -6 => Self::Again,
            _ => return None,
        })
    }
}

/// Status codes the RMM reports in x1 of `RMM_BOOT_COMPLETE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i64)]
pub enum BootError {
    /// Boot succeeded.
    Success = 0,
    /// Unknown error.
    Unknown = -1,
    /// The RMM-EL3 interface version is not supported.
    VersionMismatch = -2,
    /// The number of CPUs is out of range.
    CpusOutOfRange = -3,
    /// The CPU index is out of range.
    CpuIdOutOfRange = -4,
    /// The shared buffer is invalid.
    InvalidSharedBuffer = -5,
    /// The boot manifest version is not supported.
    ManifestVersionNotSupported = -6,
    /// The boot manifest data is invalid.
    ManifestDataError = -7,
    /// The RMM ran out of memory.
    NoMemory = -8,
}

impl BootError {
    /// The register value of the status.
    pub const fn to_reg(self) -> u64 {
        self as i64 as u64
    }

    /// Decodes a register value.
    pub const fn from_reg(v: u64) -> Option<Self> {
        Some(match v as i64 {
            0 => Self::Success,
            -1 => Self::Unknown,
            -2 => Self::VersionMismatch,
            -3 => Self::CpusOutOfRange,
            -4 => Self::CpuIdOutOfRange,
            -5 => Self::InvalidSharedBuffer,
            -6 => Self::ManifestVersionNotSupported,
            -7 => Self::ManifestDataError,
            -8 => Self::NoMemory,
            _ => return None,
        })
    }
}

/// A list in the boot manifest: `{num, ptr, checksum}`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct ManifestList {
    /// Number of entries.
    pub num: u64,
    /// PA of the first entry.
    pub ptr: u64,
    /// Makes `num + ptr + checksum + every word of the entries` wrap to zero.
    pub checksum: u64,
}

/// The root complex list: `{num, rc_info_version, pad, ptr, checksum}`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct RootComplexList {
    /// Number of entries.
    pub num: u64,
    /// Version of the root complex entries.
    pub rc_info_version: u32,
    _pad: u32,
    /// PA of the first entry.
    pub ptr: u64,
    /// Checksum, as for [`ManifestList`].
    pub checksum: u64,
}

impl RootComplexList {
    /// An empty list with the given entry version.
    pub const fn empty(rc_info_version: u32, ptr: u64) -> Self {
        Self {
            num: 0,
            rc_info_version,
            _pad: 0,
            ptr,
            checksum: 0,
        }
    }
}

/// `struct rmm_manifest` (boot manifest v0.5), at the start of the shared buffer.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct BootManifest {
    /// Manifest version (`major << 16 | minor`).
    pub version: u32,
    _pad: u32,
    /// Platform data pointer.
    pub plat_data: u64,
    /// DRAM banks ([`MemoryBank`] entries).
    pub plat_dram: ManifestList,
    /// Consoles ([`ConsoleInfo`] entries).
    pub plat_console: ManifestList,
    /// Non-coherent device memory regions.
    pub plat_ncoh_region: ManifestList,
    /// Coherent device memory regions.
    pub plat_coh_region: ManifestList,
    /// SMMUs.
    pub plat_smmu: ManifestList,
    /// PCIe root complexes.
    pub plat_root_complex: RootComplexList,
}
const _: () = assert!(size_of::<BootManifest>() == 0xA8);
const _: () = assert!(offset_of!(BootManifest, plat_dram) == 16);
const _: () = assert!(offset_of!(BootManifest, plat_console) == 40);
const _: () = assert!(offset_of!(BootManifest, plat_ncoh_region) == 64);
const _: () = assert!(offset_of!(BootManifest, plat_coh_region) == 88);
const _: () = assert!(offset_of!(BootManifest, plat_smmu) == 112);
const _: () = assert!(offset_of!(BootManifest, plat_root_complex) == 136);

impl BootManifest {
    /// A manifest of the given version with every list empty.
    pub const fn new(version: u32) -> Self {
        Self {
            version,
            _pad: 0,
            plat_data: 0,
            plat_dram: ManifestList {
                num: 0,
                ptr: 0,
                checksum: 0,
            },
            plat_console: ManifestList {
                num: 0,
                ptr: 0,
                checksum: 0,
            },
            plat_ncoh_region: ManifestList {
                num: 0,
                ptr: 0,
                checksum: 0,
            },
            plat_coh_region: ManifestList {
                num: 0,
                ptr: 0,
                checksum: 0,
            },
            plat_smmu: ManifestList {
                num: 0,
                ptr: 0,
                checksum: 0,
            },
            plat_root_complex: RootComplexList::empty(0, 0),
        }
    }
}

/// A DRAM bank or device region: `{base, size}`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct MemoryBank {
    /// Base PA.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
}
const _: () = assert!(size_of::<MemoryBank>() == 16);

/// A console: `{base, map_pages, name[8], clk_in_hz, baud_rate, flags}`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct ConsoleInfo {
    /// MMIO base PA.
    pub base: u64,
    /// Number of pages to map.
    pub map_pages: u64,
    /// NUL-padded driver name (`"pl011"`).
    pub name: [u8; 8],
    /// UART input clock in Hz.
    pub clk_in_hz: u64,
    /// Baud rate.
    pub baud_rate: u64,
    /// Flags.
    pub flags: u64,
}
const _: () = assert!(size_of::<ConsoleInfo>() == 48);
const _: () = assert!(offset_of!(ConsoleInfo, clk_in_hz) == 24);

/// Computes the checksum word of a manifest list: the value that makes
/// `num + ptr + checksum + sum(words)` wrap to zero.
pub fn manifest_checksum(num: u64, ptr: u64, words: impl IntoIterator<Item = u64>) -> u64 {
    let sum = words
        .into_iter()
        .fold(num.wrapping_add(ptr), u64::wrapping_add);
    sum.wrapping_neg()
}

/// Returns true when a list's checksum is consistent with its entries.
pub fn manifest_checksum_ok(list: &ManifestList, words: impl IntoIterator<Item = u64>) -> bool {
    manifest_checksum(list.num, list.ptr, words) == list.checksum
}

/// This stack's SiP calls into EL3 (owning entity 2).
pub mod sip {
    /// `CCA_SIP_EXIT(status)`: power the platform off, reporting `status` (x1) to the
    /// emulator as its exit status. Used by test payloads to end a run with a verdict.
    pub const EXIT: u32 = 0xC200_0001;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_tf_a_dump() {
        // The QEMU virt manifest TF-A builds: one bank {0x4000_0000, 0xC000_0000} at 0x418ff0a8.
        let c = manifest_checksum(1, 0x418f_f0a8, [0x4000_0000, 0xC000_0000]);
        assert_eq!(c, 0xffff_fffe_be70_0f57);
        let l = ManifestList {
            num: 1,
            ptr: 0x418f_f0a8,
            checksum: c,
        };
        assert!(manifest_checksum_ok(&l, [0x4000_0000, 0xC000_0000]));
        assert!(!manifest_checksum_ok(&l, [0x4000_0000, 0x8000_0000]));
    }

    #[test]
    fn error_codes() {
        assert_eq!(
            El3Error::from_reg(El3Error::BadPas.to_reg()),
            Some(El3Error::BadPas)
        );
        assert_eq!(
            BootError::from_reg((-8i64) as u64),
            Some(BootError::NoMemory)
        );
        assert_eq!(BootError::from_reg(3), None);
    }
}
