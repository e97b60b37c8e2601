//! Stage 2 translation table entries (RTT entries) in the Armv8-A VMSAv8-64 format with a
//! 4 KiB granule, as TF-RMM main encodes them.
//!
//! Valid entries are what the hardware walks (`VTCR_EL2.TG0` = 4 KiB, FWB memory attributes,
//! inner shareable unless LPA2). Invalid entries carry the RMM's software state:
//!
//! | bits    | field                                                           |
//! |---------|-----------------------------------------------------------------|
//! | 0       | valid (0)                                                       |
//! | [2:1]   | RIPAS: EMPTY 0, RAM 1, DESTROYED 2                              |
//! | [5:3]   | HIPAS: UNASSIGNED 0, ASSIGNED 1                                 |
//! | [7:6]   | S2AP (R, W) of protected entries, kept across state changes     |
//! | [47:12] | output address of ASSIGNED entries (LPA2: bits 51:50 in [9:8])   |
//! | 55      | NS: the entry is in the unprotected half of the IPA space        |
//!
//! Every protected entry carries the default access permissions TF-RMM gives plane 0
//! (read, write, execute: S2AP = 0b11, XN = 0b00). Entries are `u64`s read and written in
//! place in the RTT granules through [`crate::PhysMem`].

use cca_abi::rmi::{rtt_entry_state, Ripas};

/// log2 of the number of entries of a table (4 KiB granule).
pub const STRIDE: u32 = 9;
/// Entries in a table at levels 0..=3.
pub const ENTRIES: usize = 512;
/// Entries in a level -1 table (LPA2).
pub const ENTRIES_LM1: usize = 16;
/// The last level (pages).
pub const PAGE_LEVEL: i8 = 3;
/// The lowest level at which an RTT may hold a block of realm memory.
pub const MIN_BLOCK_LEVEL: i8 = 1;
/// Maximum number of concatenated starting-level tables.
pub const MAX_ROOT_RTTS: u64 = 16;

const VALID: u64 = 1;
const TYPE_MASK: u64 = 3;
const TYPE_TABLE: u64 = 3;
const TYPE_BLOCK: u64 = 1;
const TYPE_PAGE: u64 = 3;
const RIPAS_SHIFT: u32 = 1;
const RIPAS_MASK: u64 = 0x3 << RIPAS_SHIFT;
const HIPAS_SHIFT: u32 = 3;
const HIPAS_MASK: u64 = 0x7 << HIPAS_SHIFT;
const HIPAS_UNASSIGNED: u64 = 0;
const HIPAS_ASSIGNED: u64 = 1 << HIPAS_SHIFT;
/// The NS bit of stage 2 descriptors (RME): output address in the NS PAS.
pub const NS: u64 = 1 << 55;
const AF: u64 = 1 << 10;
/// MemAttr[2:0] (FWB encoding), bits [4:2].
pub const MEMATTR_MASK: u64 = 0x7 << 2;
/// The reserved FWB MemAttr value (0b100), rejected in host-provided NS attributes.
pub const MEMATTR_FWB_RESERVED: u64 = 0x4 << 2;
const MEMATTR_NORMAL_WB: u64 = 0x6 << 2;
const SH_IS: u64 = 3 << 8;
/// S2AP read (bit 6) and write (bit 7).
pub const AP_RW_MASK: u64 = 0x3 << 6;
const XN_MASK: u64 = 0x3 << 53;
const XN_NONE: u64 = 2 << 53;
/// The default S2AP of protected entries: read, write, execute.
pub const DEFAULT_AP: u64 = AP_RW_MASK;
const ATTRS: u64 = MEMATTR_NORMAL_WB | AF | SH_IS;
const ATTRS_LPA2: u64 = MEMATTR_NORMAL_WB | AF;
const LPA2_HI_IN_DESC_SHIFT: u32 = 8;
const LPA2_HI_MASK: u64 = 0x3 << 50;

/// Size in bytes of the IPA range one entry at `level` maps.
pub const fn map_size(level: i8) -> u64 {
    1u64 << ((3 - level as i32) as u32 * STRIDE + 12)
}

/// Number of entries of a table at `level`.
pub const fn entries(level: i8) -> usize {
    if level < 0 {
        ENTRIES_LM1
    } else {
        ENTRIES
    }
}

/// Returns true when `addr` is aligned to the size an entry at `level` maps and fits in the
/// output address width (48 bits, or 52 with LPA2).
pub const fn addr_level_aligned(addr: u64, level: i8, lpa2: bool) -> bool {
    let oa_bits = if lpa2 { 52 } else { 48 };
    let lsb = (3 - level as i32) as u32 * STRIDE + 12;
    if lsb >= oa_bits {
        return addr == 0;
    }
    let mask = ((1u64 << oa_bits) - 1) & !((1u64 << lsb) - 1);
    addr & !mask == 0
}

/// Index of the entry translating `ipa` in a (non-concatenated) table at `level`.
pub const fn index(ipa: u64, level: i8) -> usize {
    let lsb = (3 - level as i32) as u32 * STRIDE + 12;
    let mask = entries(level) as u64 - 1;
    if lsb >= 64 {
        return 0;
    }
    ((ipa >> lsb) & mask) as usize
}

/// Mask of the output address bits of an entry at `level`.
fn oa_mask(level: i8, lpa2: bool) -> u64 {
    let lsb = (3 - i32::from(level)) as u32 * STRIDE + 12;
    if lsb >= 48 {
        return 0;
    }
    let mut m = ((1u64 << 48) - 1) & !((1u64 << lsb) - 1);
    if lpa2 {
        m |= (0x3 << LPA2_HI_IN_DESC_SHIFT) | (0x3 << 48);
    }
    m
}

/// Places `pa` in the output address field (LPA2 moves PA bits [51:50] to bits [9:8]).
fn pa_to_desc(pa: u64, lpa2: bool) -> u64 {
    if lpa2 {
        (pa & !LPA2_HI_MASK) | (((pa & LPA2_HI_MASK) >> 50) << LPA2_HI_IN_DESC_SHIFT)
    } else {
        pa
    }
}

/// Extracts the output address of an entry at `level`.
pub fn desc_pa(desc: u64, level: i8, lpa2: bool) -> u64 {
    let mut pa = desc & oa_mask(level, lpa2);
    if lpa2 {
        let hi = (pa >> LPA2_HI_IN_DESC_SHIFT) & 0x3;
        pa &= !(0x3 << LPA2_HI_IN_DESC_SHIFT);
        pa |= hi << 50;
    }
    pa
}

/// The decoded meaning of an RTT entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Unassigned, RIPAS EMPTY.
    UnassignedEmpty,
    /// Unassigned, RIPAS RAM.
    UnassignedRam,
    /// Unassigned, RIPAS DESTROYED.
    UnassignedDestroyed,
    /// Unassigned, unprotected IPA.
    UnassignedNs,
    /// Assigned to realm memory at the PA, RIPAS EMPTY (invalid).
    AssignedEmpty(u64),
    /// Assigned to realm memory at the PA, RIPAS RAM (a valid page or block).
    AssignedRam(u64),
    /// Assigned to realm memory at the PA, RIPAS DESTROYED (invalid).
    AssignedDestroyed(u64),
    /// A valid mapping of NS memory at an unprotected IPA (the whole descriptor).
    AssignedNs(u64),
    /// A table descriptor pointing at the next-level RTT.
    Table(u64),
    /// Anything else (never written by this RMM; treated as a corrupt entry).
    Invalid,
}

impl Entry {
    /// Decodes the entry `desc` found at `level`.
    pub fn decode(desc: u64, level: i8, lpa2: bool) -> Self {
        if desc & VALID != 0 {
            let ty = desc & TYPE_MASK;
            if level < PAGE_LEVEL && ty == TYPE_TABLE {
                return Self::Table(desc_pa(desc, PAGE_LEVEL, lpa2));
            }
            let leaf_ok = if level == PAGE_LEVEL {
                ty == TYPE_PAGE
            } else {
                level >= MIN_BLOCK_LEVEL && ty == TYPE_BLOCK
            };
            if !leaf_ok {
                return Self::Invalid;
            }
            return if desc & NS != 0 {
                Self::AssignedNs(desc)
            } else {
                Self::AssignedRam(desc_pa(desc, level, lpa2))
            };
        }
        let ripas = (desc & RIPAS_MASK) >> RIPAS_SHIFT;
        match desc & HIPAS_MASK {
            HIPAS_UNASSIGNED if desc & NS != 0 => Self::UnassignedNs,
            HIPAS_UNASSIGNED => match ripas {
                0 => Self::UnassignedEmpty,
                1 => Self::UnassignedRam,
                2 => Self::UnassignedDestroyed,
                _ => Self::Invalid,
            },
            HIPAS_ASSIGNED => {
                let pa = desc_pa(desc, level, lpa2);
                match ripas {
                    0 => Self::AssignedEmpty(pa),
                    2 => Self::AssignedDestroyed(pa),
                    _ => Self::Invalid,
                }
            }
            _ => Self::Invalid,
        }
    }

    /// Returns true for entries TF-RMM calls "live": those with an output address (valid
    /// entries, tables, and assigned invalid entries).
    pub fn is_live(self) -> bool {
        matches!(
            self,
            Self::AssignedEmpty(_)
                | Self::AssignedRam(_)
                | Self::AssignedDestroyed(_)
                | Self::AssignedNs(_)
                | Self::Table(_)
        )
    }

    /// Returns true when the entry holds a reference on its table (TF-RMM's RTT refcount:
    /// tables and assigned realm memory; NS mappings and unassigned entries do not).
    pub fn holds_ref(self) -> bool {
        matches!(
            self,
            Self::AssignedEmpty(_)
                | Self::AssignedRam(_)
                | Self::AssignedDestroyed(_)
                | Self::Table(_)
        )
    }

    /// Returns true for entries the MMU may have cached (valid leaf or table descriptors).
    pub fn is_valid(self) -> bool {
        matches!(
            self,
            Self::AssignedRam(_) | Self::AssignedNs(_) | Self::Table(_)
        )
    }

    /// Returns true for the unassigned states.
    pub fn is_unassigned(self) -> bool {
        matches!(
            self,
            Self::UnassignedEmpty
                | Self::UnassignedRam
                | Self::UnassignedDestroyed
                | Self::UnassignedNs
        )
    }

    /// The RIPAS an entry in the protected half has (NS entries and tables report EMPTY,
    /// as `RTT_READ_ENTRY` does).
    pub fn ripas(self) -> Ripas {
        match self {
            Self::UnassignedRam | Self::AssignedRam(_) => Ripas::Ram,
            Self::UnassignedDestroyed | Self::AssignedDestroyed(_) => Ripas::Destroyed,
            _ => Ripas::Empty,
        }
    }

    /// The `RmiRttEntryState` of the entry.
    pub fn rmi_state(self) -> u64 {
        match self {
            Self::AssignedEmpty(_)
            | Self::AssignedRam(_)
            | Self::AssignedDestroyed(_)
            | Self::AssignedNs(_) => rtt_entry_state::ASSIGNED,
            Self::Table(_) => rtt_entry_state::TABLE,
            _ => rtt_entry_state::UNASSIGNED,
        }
    }

    /// The output address of an assigned realm entry or a table.
    pub fn pa(self) -> Option<u64> {
        match self {
            Self::AssignedEmpty(pa)
            | Self::AssignedRam(pa)
            | Self::AssignedDestroyed(pa)
            | Self::Table(pa) => Some(pa),
            _ => None,
        }
    }
}

/// The unassigned entry with RIPAS `ripas` (protected half).
pub fn unassigned(ripas: Ripas) -> u64 {
    DEFAULT_AP | HIPAS_UNASSIGNED | ((ripas as u64 & 0x3) << RIPAS_SHIFT)
}

/// An unassigned entry of the unprotected half.
pub const fn unassigned_ns() -> u64 {
    NS | HIPAS_UNASSIGNED
}

/// An assigned entry for realm memory at `pa` mapped at `level` with RIPAS `ripas` (valid
/// for RAM, invalid otherwise).
pub fn assigned(pa: u64, level: i8, ripas: Ripas, lpa2: bool) -> u64 {
    let oa = pa_to_desc(pa, lpa2);
    match ripas {
        Ripas::Ram => {
            let attrs = if lpa2 { ATTRS_LPA2 } else { ATTRS };
            let ty = if level == PAGE_LEVEL {
                TYPE_PAGE
            } else {
                TYPE_BLOCK
            };
            oa | attrs | ty | DEFAULT_AP
        }
        _ => oa | HIPAS_ASSIGNED | ((ripas as u64 & 0x3) << RIPAS_SHIFT) | DEFAULT_AP,
    }
}

/// A table entry pointing at the RTT at `pa`.
pub fn table(pa: u64, lpa2: bool) -> u64 {
    pa_to_desc(pa, lpa2) | TYPE_TABLE
}

/// The host-controlled part of an NS mapping: output address, MemAttr and S2AP.
pub fn host_ns_mask(level: i8, lpa2: bool) -> u64 {
    oa_mask(level, lpa2) | MEMATTR_MASK | AP_RW_MASK
}

/// Checks the host-controlled part of an NS mapping at `level` (TF-RMM's
/// `host_ns_s2tte_is_valid`): no bits outside the output address, MemAttr and S2AP, and not
/// the reserved MemAttr.
pub fn host_ns_valid(host: u64, level: i8, lpa2: bool) -> bool {
    host & !host_ns_mask(level, lpa2) == 0 && host & MEMATTR_MASK != MEMATTR_FWB_RESERVED
}

/// The assigned NS entry at `level` built from the host-controlled bits `host`.
pub fn assigned_ns(host: u64, level: i8, lpa2: bool) -> u64 {
    let mut d = host & !TYPE_MASK;
    if !lpa2 {
        d |= SH_IS;
    }
    d = (d & !XN_MASK) | XN_NONE;
    let ty = if level == PAGE_LEVEL {
        TYPE_PAGE
    } else {
        TYPE_BLOCK
    };
    d | AF | NS | ty
}

/// The assigned NS entry at `level - 1` covering the same range as `first`, the first entry
/// of a table of NS mappings at `level` (RTT_FOLD).
pub fn assigned_ns_fold(first: u64, level: i8, lpa2: bool) -> u64 {
    assigned_ns(first, level - 1, lpa2)
}

/// The host-visible part of an assigned NS entry (`RTT_READ_ENTRY` x3).
pub fn host_ns_bits(desc: u64, level: i8, lpa2: bool) -> u64 {
    desc & host_ns_mask(level, lpa2)
}

/// The NS attributes two NS entries of a foldable table must share.
pub fn ns_attrs(desc: u64) -> u64 {
    desc & (MEMATTR_MASK | AP_RW_MASK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_tf_rmm() {
        assert_eq!(unassigned(Ripas::Empty), 0xC0);
        assert_eq!(unassigned(Ripas::Ram), 0xC2);
        assert_eq!(unassigned(Ripas::Destroyed), 0xC4);
        assert_eq!(unassigned_ns(), 1 << 55);
        assert_eq!(
            assigned(0x8000_1000, 3, Ripas::Ram, false),
            0x8000_1000 | 0x7DB
        );
        assert_eq!(
            assigned(0x8020_0000, 2, Ripas::Ram, false),
            0x8020_0000 | 0x7D9
        );
        assert_eq!(
            assigned(0x8000_1000, 3, Ripas::Empty, false),
            0x8000_1000 | 0xC8
        );
        assert_eq!(
            assigned(0x8000_1000, 3, Ripas::Destroyed, false),
            0x8000_1000 | 0xCC
        );
        assert_eq!(table(0x8000_2000, false), 0x8000_2003);
        let ns = assigned_ns(0x9000_0000 | (5 << 2) | (3 << 6), 3, false);
        assert_eq!(
            ns,
            0x9000_0000 | (5 << 2) | (3 << 6) | SH_IS | AF | NS | XN_NONE | 3
        );
    }

    #[test]
    fn decode_round_trips() {
        for level in 1..=3 {
            let pa = map_size(level) * 3;
            assert_eq!(
                Entry::decode(assigned(pa, level, Ripas::Ram, false), level, false),
                Entry::AssignedRam(pa)
            );
            assert_eq!(
                Entry::decode(assigned(pa, level, Ripas::Empty, false), level, false),
                Entry::AssignedEmpty(pa)
            );
            assert_eq!(
                Entry::decode(assigned(pa, level, Ripas::Destroyed, false), level, false),
                Entry::AssignedDestroyed(pa)
            );
        }
        assert_eq!(
            Entry::decode(table(0x8000_2000, false), 2, false),
            Entry::Table(0x8000_2000)
        );
        // A table descriptor's encoding at level 3 is a page.
        assert!(matches!(
            Entry::decode(table(0x8000_2000, false), 3, false),
            Entry::AssignedRam(0x8000_2000)
        ));
        assert_eq!(
            Entry::decode(unassigned_ns(), 1, false),
            Entry::UnassignedNs
        );
        assert_eq!(Entry::decode(0, 3, false), Entry::UnassignedEmpty);
        assert_eq!(
            Entry::decode(1, 0, false),
            Entry::Invalid,
            "a block at level 0"
        );
        // LPA2 moves PA[51:50] into bits [9:8].
        let pa = (3u64 << 50) | 0x1000;
        let d = assigned(pa, 3, Ripas::Ram, true);
        assert_eq!(d & (3 << 8), 3 << 8);
        assert_eq!(Entry::decode(d, 3, true), Entry::AssignedRam(pa));
    }

    #[test]
    fn level_arithmetic() {
        assert_eq!(map_size(3), 4096);
        assert_eq!(map_size(2), 2 << 20);
        assert_eq!(map_size(1), 1 << 30);
        assert_eq!(map_size(0), 1 << 39);
        assert_eq!(map_size(-1), 1 << 48);
        assert_eq!(entries(-1), 16);
        assert_eq!(index(0x4020_3000, 3), 3);
        assert_eq!(index(0x4020_3000, 2), 1);
        assert_eq!(index(0x4020_3000, 1), 1);
        assert!(addr_level_aligned(0x4000_0000, 1, false));
        assert!(!addr_level_aligned(0x4000_1000, 2, false));
        assert!(!addr_level_aligned(1 << 48, 3, false));
        assert!(addr_level_aligned(1 << 48, 3, true));
        assert!(host_ns_valid(0x9000_0000 | (1 << 2), 3, false));
        assert!(!host_ns_valid(0x9000_0000 | MEMATTR_FWB_RESERVED, 3, false));
        assert!(!host_ns_valid(0x9000_0000 | 1, 3, false));
        assert!(!host_ns_valid(0x9000_1000, 2, false), "unaligned block");
    }
}
