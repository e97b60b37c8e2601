//! Granule tracking: one 16-bit descriptor per 4 KiB granule of every DRAM bank.
//!
//! The table is built once at boot from the boot manifest's DRAM banks, over storage the
//! caller provides (the firmware passes a static array; tests pass a `Vec`). Each descriptor
//! packs, like TF-RMM's:
//!
//! | bits    | field                                       |
//! |---------|---------------------------------------------|
//! | 15      | spin bit-lock                               |
//! | [14:10] | [`GranuleState`]                            |
//! | [9:0]   | reference count (at most [`REFCOUNT_MAX`])  |
//!
//! # Rules
//!
//! * A granule's state changes only while its lock is held ([`LockedGranule::set_state`]),
//!   except for the moves into and out of a transient state, which are each one
//!   compare-and-swap of the whole unlocked descriptor ([`Granule::try_start_transient`],
//!   [`Granule::try_finish_transient`]): the same change as lock, check, set, unlock.
//! * Granules named directly by RMI arguments ("external" ones: NS, DELEGATED, RD, REC) are
//!   locked in ascending PA order ([`GranuleTable::lock_two`] does this for two of them);
//!   internal ones (RTT, DATA, REC_AUX) after them, in the order their owner documents.
//! * No granule lock is held across a call to EL3. A command that needs EL3 moves the granule
//!   to a transient state ([`GranuleState::Delegating`], [`GranuleState::Undelegating`]) under
//!   the lock, unlocks, calls EL3, then locks again to set the final state. Other commands see
//!   the transient state as "wrong state".
//! * An unlocked [`GranuleState::Delegated`] granule contains only zeroes.

use core::fmt;
use core::hint::spin_loop;
use core::sync::atomic::{AtomicU16, Ordering};

use cca_abi::el3::MemoryBank;
use cca_abi::GRANULE_SHIFT;

use crate::pa::Pa;

/// The most DRAM banks the table accepts from the boot manifest.
pub const MAX_DRAM_BANKS: usize = 8;

/// Bytes of descriptor storage needed per GiB of tracked DRAM (2 bytes per 4 KiB granule).
pub const DESCRIPTOR_BYTES_PER_GIB: usize = ((1usize << 30) >> GRANULE_SHIFT) * 2;

const LOCK_BIT: u16 = 1 << 15;
const STATE_SHIFT: u32 = 10;
const STATE_MASK: u16 = 0x1f << STATE_SHIFT;
/// Width in bits of a descriptor's reference count.
pub const REFCOUNT_BITS: u32 = 10;
const REFCOUNT_MASK: u16 = (1 << REFCOUNT_BITS) - 1;
/// The largest reference count a descriptor holds.
pub const REFCOUNT_MAX: u16 = REFCOUNT_MASK;

/// The state of a tracked granule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum GranuleState {
    /// Non-secure: owned by the host, in the NS PAS.
    Ns = 0,
    /// Delegated: in the Realm PAS, unused, all zeroes.
    Delegated = 1,
    /// A realm descriptor.
    Rd = 2,
    /// A realm execution context.
    Rec = 3,
    /// An auxiliary granule of a REC.
    RecAux = 4,
    /// Realm data.
    Data = 5,
    /// A realm translation table.
    Rtt = 6,
    /// The object granule of a stateful operation in flight (a REC being created or
    /// destroyed).
    Partial = 11,
    /// Transient: moving from NS to DELEGATED (EL3 is changing its PAS).
    Delegating = 16,
    /// Transient: moving from DELEGATED to NS (being scrubbed, EL3 is changing its PAS).
    Undelegating = 17,
}

impl GranuleState {
    /// Every state.
    pub const ALL: [GranuleState; 10] = [
        Self::Ns,
        Self::Delegated,
        Self::Rd,
        Self::Rec,
        Self::RecAux,
        Self::Data,
        Self::Rtt,
        Self::Partial,
        Self::Delegating,
        Self::Undelegating,
    ];

    /// Decodes the state field of a descriptor.
    pub const fn from_bits(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Ns,
            1 => Self::Delegated,
            2 => Self::Rd,
            3 => Self::Rec,
            4 => Self::RecAux,
            5 => Self::Data,
            6 => Self::Rtt,
            11 => Self::Partial,
            16 => Self::Delegating,
            17 => Self::Undelegating,
            _ => return None,
        })
    }

    /// Returns the name used in log messages.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ns => "NS",
            Self::Delegated => "DELEGATED",
            Self::Rd => "RD",
            Self::Rec => "REC",
            Self::RecAux => "REC_AUX",
            Self::Data => "DATA",
            Self::Rtt => "RTT",
            Self::Partial => "PARTIAL",
            Self::Delegating => "DELEGATING (a delegation is in progress)",
            Self::Undelegating => "UNDELEGATING (an undelegation is in progress)",
        }
    }

    /// Returns true for the states only seen while a command is moving the granule.
    pub const fn is_transient(self) -> bool {
        matches!(self, Self::Delegating | Self::Undelegating)
    }
}

impl fmt::Display for GranuleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a DRAM bank list or the descriptor storage was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// The manifest lists no DRAM bank.
    NoBanks,
    /// The manifest lists more than [`MAX_DRAM_BANKS`] banks.
    TooManyBanks {
        /// Number of banks listed.
        count: usize,
    },
    /// Bank `bank` starts at PA 0 (TF-RMM rejects this too: 0 means "no address" in RMI).
    ZeroBase {
        /// Index of the bank.
        bank: usize,
    },
    /// Bank `bank`'s base or size is not granule aligned.
    Misaligned {
        /// Index of the bank.
        bank: usize,
    },
    /// Bank `bank` has size zero.
    Empty {
        /// Index of the bank.
        bank: usize,
    },
    /// Bank `bank`'s base plus size overflows.
    Overflow {
        /// Index of the bank.
        bank: usize,
    },
    /// Bank `bank` starts below the end of the previous bank (banks must ascend and not
    /// overlap).
    NotAscending {
        /// Index of the bank.
        bank: usize,
    },
    /// The storage holds fewer descriptors than the banks have granules.
    StorageTooSmall {
        /// Descriptors needed.
        needed: usize,
        /// Descriptors provided.
        provided: usize,
    },
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NoBanks => write!(f, "the boot manifest lists no DRAM bank"),
            Self::TooManyBanks { count } => {
                write!(
                    f,
                    "{count} DRAM banks listed, at most {MAX_DRAM_BANKS} supported"
                )
            }
            Self::ZeroBase { bank } => write!(f, "DRAM bank {bank} starts at PA 0"),
            Self::Misaligned { bank } => {
                write!(f, "DRAM bank {bank} base or size is not 4 KiB aligned")
            }
            Self::Empty { bank } => write!(f, "DRAM bank {bank} is empty"),
            Self::Overflow { bank } => write!(f, "DRAM bank {bank} base + size overflows"),
            Self::NotAscending { bank } => {
                write!(f, "DRAM bank {bank} overlaps or precedes the previous bank")
            }
            Self::StorageTooSmall { needed, provided } => write!(
                f,
                "granule descriptor storage holds {provided} entries, {needed} needed"
            ),
        }
    }
}

/// One validated DRAM bank: `[base, top)` and the index of its first descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Bank {
    base: u64,
    top: u64,
    first: usize,
}

/// The granule descriptors of every tracked DRAM granule.
#[derive(Debug)]
pub struct GranuleTable<'a> {
    banks: [Bank; MAX_DRAM_BANKS],
    num_banks: usize,
    entries: &'a [AtomicU16],
}

/// Why a granule could not be locked in an expected state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockError {
    /// The address is not granule aligned or lies outside every DRAM bank.
    Untracked,
    /// The granule is in another state (the state found is given).
    WrongState(GranuleState),
    /// Both addresses given to [`GranuleTable::lock_two`] name the same granule.
    SameGranule,
}

/// The error of [`GranuleTable::lock_two`]: which argument (0 or 1) failed, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockTwoError {
    /// Position of the failing granule in the call's arguments (0 = first).
    pub which: usize,
    /// The reason.
    pub error: LockError,
}

impl<'a> GranuleTable<'a> {
    /// Validates a DRAM bank list and returns the number of descriptors it needs.
    ///
    /// Banks must be non-empty, granule aligned, not start at 0, not overflow, and ascend
    /// without overlapping; at most [`MAX_DRAM_BANKS`] of them.
    pub fn entries_needed(banks: &[MemoryBank]) -> Result<usize, TableError> {
        if banks.is_empty() {
            return Err(TableError::NoBanks);
        }
        if banks.len() > MAX_DRAM_BANKS {
            return Err(TableError::TooManyBanks { count: banks.len() });
        }
        let mut total: usize = 0;
        let mut prev_top: u64 = 0;
        for (i, b) in banks.iter().enumerate() {
            if b.base == 0 {
                return Err(TableError::ZeroBase { bank: i });
            }
            if !cca_abi::granule_aligned(b.base) || !cca_abi::granule_aligned(b.size) {
                return Err(TableError::Misaligned { bank: i });
            }
            if b.size == 0 {
                return Err(TableError::Empty { bank: i });
            }
            let top = b
                .base
                .checked_add(b.size)
                .ok_or(TableError::Overflow { bank: i })?;
            if b.base < prev_top {
                return Err(TableError::NotAscending { bank: i });
            }
            prev_top = top;
            let n = usize::try_from(b.size >> GRANULE_SHIFT)
                .map_err(|_| TableError::Overflow { bank: i })?;
            total = total
                .checked_add(n)
                .ok_or(TableError::Overflow { bank: i })?;
        }
        Ok(total)
    }

    /// Builds the table for `banks` over `storage`, and resets every used descriptor to
    /// unlocked NS with refcount 0.
    ///
    /// `storage` needs [`GranuleTable::entries_needed`] entries; extra entries are unused.
    pub fn new(banks: &[MemoryBank], storage: &'a [AtomicU16]) -> Result<Self, TableError> {
        let table = Self::over_zeroed(banks, storage)?;
        for e in table.entries {
            e.store(0, Ordering::Relaxed);
        }
        Ok(table)
    }

    /// [`GranuleTable::new`] over storage whose entries are all zero already (unlocked NS,
    /// refcount 0), which is not written: for a zero-initialised static nothing has touched
    /// yet, as the RMM's cold boot has (clearing a million descriptors one store at a time
    /// cost the boot about two million instructions). Entries that are not zero keep their
    /// value, so storage that was used before must go through [`GranuleTable::new`].
    pub fn over_zeroed(banks: &[MemoryBank], storage: &'a [AtomicU16]) -> Result<Self, TableError> {
        let needed = Self::entries_needed(banks)?;
        if storage.len() < needed {
            return Err(TableError::StorageTooSmall {
                needed,
                provided: storage.len(),
            });
        }
        let mut table = Self {
            banks: [Bank::default(); MAX_DRAM_BANKS],
            num_banks: banks.len(),
            entries: &storage[..needed],
        };
        let mut first = 0usize;
        for (slot, b) in table.banks.iter_mut().zip(banks) {
            // Cannot overflow: entries_needed checked every sum.
            *slot = Bank {
                base: b.base,
                top: b.base + b.size,
                first,
            };
            first += (b.size >> GRANULE_SHIFT) as usize;
        }
        Ok(table)
    }

    /// Returns the number of tracked granules.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Returns true when no granule is tracked (never the case for a valid table).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Returns the tracked DRAM banks.
    pub fn banks(&self) -> impl Iterator<Item = MemoryBank> + '_ {
        self.banks[..self.num_banks].iter().map(|b| MemoryBank {
            base: b.base,
            size: b.top - b.base,
        })
    }

    /// Returns the end (exclusive) of the highest bank.
    pub fn top(&self) -> Pa {
        Pa::new(self.banks[self.num_banks - 1].top)
    }

    /// Returns the descriptor index of `pa`, or `None` if `pa` is unaligned or untracked.
    fn index_of(&self, pa: Pa) -> Option<usize> {
        if !pa.is_granule_aligned() {
            return None;
        }
        let a = pa.get();
        let bank = self.banks[..self.num_banks]
            .iter()
            .find(|b| a >= b.base && a < b.top)?;
        // Cannot overflow: the offset is below the bank size, whose granule count fits.
        Some(bank.first + ((a - bank.base) >> GRANULE_SHIFT) as usize)
    }

    /// Returns the PA of descriptor `index`.
    fn pa_of(&self, index: usize) -> Pa {
        let bank = self.banks[..self.num_banks]
            .iter()
            .rev()
            .find(|b| index >= b.first)
            .expect("descriptor index below the first bank");
        Pa::new(bank.base + (((index - bank.first) as u64) << GRANULE_SHIFT))
    }

    /// Returns true when `pa` is an aligned address inside a DRAM bank.
    pub fn is_tracked(&self, pa: Pa) -> bool {
        self.index_of(pa).is_some()
    }

    /// Looks up the granule at `pa`; `None` if `pa` is unaligned or untracked.
    pub fn granule(&self, pa: Pa) -> Option<Granule<'_>> {
        self.index_of(pa).map(|i| Granule {
            entry: &self.entries[i],
            pa,
        })
    }

    /// Iterates over every tracked granule in PA order.
    pub fn iter(&self) -> impl Iterator<Item = Granule<'_>> + '_ {
        self.entries.iter().enumerate().map(|(i, entry)| Granule {
            entry,
            pa: self.pa_of(i),
        })
    }

    /// Looks up and locks the granule at `pa` if it is in state `expected`, with
    /// [`Granule::lock_while_state`] (for granules taken while other locks are held).
    pub fn lock_while_state(
        &self,
        pa: Pa,
        expected: GranuleState,
    ) -> Result<LockedGranule<'_>, LockError> {
        self.granule(pa)
            .ok_or(LockError::Untracked)?
            .lock_while_state(expected)
    }

    /// Looks up and locks the granule at `pa` if it is in state `expected`.
    pub fn lock(&self, pa: Pa, expected: GranuleState) -> Result<LockedGranule<'_>, LockError> {
        self.granule(pa)
            .ok_or(LockError::Untracked)?
            .lock_if(expected)
    }

    /// Locks two distinct granules, each in an expected state, taking the locks in ascending
    /// PA order. Returns the guards in argument order. On failure no lock is held.
    pub fn lock_two(
        &self,
        first: (Pa, GranuleState),
        second: (Pa, GranuleState),
    ) -> Result<(LockedGranule<'_>, LockedGranule<'_>), LockTwoError> {
        let fail = |which, error| LockTwoError { which, error };
        let g0 = self
            .granule(first.0)
            .ok_or_else(|| fail(0, LockError::Untracked))?;
        let g1 = self
            .granule(second.0)
            .ok_or_else(|| fail(1, LockError::Untracked))?;
        if first.0 == second.0 {
            return Err(fail(1, LockError::SameGranule));
        }
        if first.0 < second.0 {
            let l0 = g0.lock_if(first.1).map_err(|e| fail(0, e))?;
            let l1 = g1.lock_if(second.1).map_err(|e| fail(1, e))?;
            Ok((l0, l1))
        } else {
            let l1 = g1.lock_if(second.1).map_err(|e| fail(1, e))?;
            let l0 = g0.lock_if(first.1).map_err(|e| fail(0, e))?;
            Ok((l0, l1))
        }
    }
}

/// The state bits of a descriptor in `state`.
const fn state_bits(state: GranuleState) -> u16 {
    ((state as u16) << STATE_SHIFT) & STATE_MASK
}

fn decode_state(desc: u16) -> GranuleState {
    let bits = ((desc & STATE_MASK) >> STATE_SHIFT) as u8;
    match GranuleState::from_bits(bits) {
        Some(s) => s,
        // Only this module writes descriptors; an unknown value is memory corruption.
        None => panic!("granule descriptor {desc:#06x} holds an unknown state {bits}"),
    }
}

/// A tracked granule: its address and its descriptor. Holding one grants nothing; lock it to
/// inspect or change its state.
#[derive(Clone, Copy, Debug)]
pub struct Granule<'t> {
    entry: &'t AtomicU16,
    pa: Pa,
}

impl<'t> Granule<'t> {
    /// Returns the granule's address.
    pub fn pa(&self) -> Pa {
        self.pa
    }

    /// Returns the state without taking the lock. The value may be stale by the time the
    /// caller looks at it; use it only for reporting or for NS-only decisions.
    pub fn state_unlocked(&self) -> GranuleState {
        decode_state(self.entry.load(Ordering::Acquire))
    }

    /// Returns true while some CPU holds the granule's lock.
    pub fn is_locked(&self) -> bool {
        self.entry.load(Ordering::Relaxed) & LOCK_BIT != 0
    }

    /// One compare-and-swap of the whole descriptor from exactly `from` (unlocked, reference
    /// count 0) to `to`.
    fn swap_unlocked(&self, from: GranuleState, to: GranuleState) -> bool {
        self.entry
            .compare_exchange(
                state_bits(from),
                state_bits(to),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Moves the granule from the stable state `from` to the transient state `to` with one
    /// compare-and-swap of the whole descriptor, which must be exactly `from`, unlocked,
    /// reference count 0: the same change as locking it, finding `from`, setting `to` and
    /// unlocking, in one atomic step. Returns false and changes nothing otherwise (locked by
    /// another CPU, another state, references held): the caller then takes the lock, which
    /// also tells it why.
    pub fn try_start_transient(&self, from: GranuleState, to: GranuleState) -> bool {
        debug_assert!(to.is_transient());
        self.swap_unlocked(from, to)
    }

    /// Moves the granule from the transient state `from` to `to` with one compare-and-swap
    /// of the whole descriptor, which must be exactly `from`, unlocked, reference count 0
    /// (what the CPU that set `from` left). Returns false and changes nothing otherwise, for
    /// example while another CPU holds the lock to look at the state: the caller then takes
    /// the lock. Only the CPU that set a transient state may call this.
    pub fn try_finish_transient(&self, from: GranuleState, to: GranuleState) -> bool {
        debug_assert!(from.is_transient());
        self.swap_unlocked(from, to)
    }

    /// Takes the lock, spinning while another CPU holds it.
    pub fn lock(&self) -> LockedGranule<'t> {
        loop {
            let old = self.entry.fetch_or(LOCK_BIT, Ordering::Acquire);
            if old & LOCK_BIT == 0 {
                return LockedGranule { g: *self };
            }
            while self.entry.load(Ordering::Relaxed) & LOCK_BIT != 0 {
                spin_loop();
            }
        }
    }

    /// Returns the reference count without taking the lock (for reporting and tests).
    pub fn refcount_unlocked(&self) -> u16 {
        self.entry.load(Ordering::Acquire) & REFCOUNT_MASK
    }

    /// Takes the lock if the granule is in state `expected`, without ever waiting on a
    /// granule in another state.
    ///
    /// Used for granules a command acquires while it already holds other locks (RTTs): while
    /// the granule is locked by another CPU its state is re-read on every spin, and the call
    /// fails as soon as it is not `expected`. No CPU holds a granule in the states this is
    /// used with (DELEGATED, DATA, NS) while waiting for another lock, so this never
    /// deadlocks, even when the host names a granule the caller itself holds.
    pub fn lock_while_state(&self, expected: GranuleState) -> Result<LockedGranule<'t>, LockError> {
        loop {
            let found = self.state_unlocked();
            if found != expected {
                return Err(LockError::WrongState(found));
            }
            let old = self.entry.fetch_or(LOCK_BIT, Ordering::Acquire);
            if old & LOCK_BIT == 0 {
                let l = LockedGranule { g: *self };
                let found = l.state();
                return if found == expected {
                    Ok(l)
                } else {
                    Err(LockError::WrongState(found))
                };
            }
            spin_loop();
        }
    }

    /// Takes the lock and keeps it only if the granule is in state `expected`.
    pub fn lock_if(&self, expected: GranuleState) -> Result<LockedGranule<'t>, LockError> {
        let l = self.lock();
        if l.is_in(expected) {
            Ok(l)
        } else {
            Err(LockError::WrongState(l.state()))
        }
    }
}

/// A locked granule; the lock is released when the guard is dropped.
#[derive(Debug)]
pub struct LockedGranule<'t> {
    g: Granule<'t>,
}

impl<'t> LockedGranule<'t> {
    /// Returns the granule's address.
    pub fn pa(&self) -> Pa {
        self.g.pa
    }

    /// Returns the granule (for example to lock it again later).
    pub fn granule(&self) -> Granule<'t> {
        self.g
    }

    /// Returns the state.
    pub fn state(&self) -> GranuleState {
        decode_state(self.g.entry.load(Ordering::Relaxed))
    }

    /// True when the granule is in `state` (the descriptor's state bits compared as they are,
    /// without decoding them).
    pub fn is_in(&self, state: GranuleState) -> bool {
        self.g.entry.load(Ordering::Relaxed) & STATE_MASK == state_bits(state)
    }

    /// Sets the state. The refcount and lock bits are left alone (the refcount may change
    /// concurrently without the lock, so the update is one atomic XOR of the state bits).
    pub fn set_state(&mut self, state: GranuleState) {
        let old = self.g.entry.load(Ordering::Relaxed) & STATE_MASK;
        self.g
            .entry
            .fetch_xor(old ^ state_bits(state), Ordering::Relaxed);
    }

    /// Returns the reference count.
    pub fn refcount(&self) -> u16 {
        self.g.entry.load(Ordering::Acquire) & REFCOUNT_MASK
    }

    /// Adds `n` to the reference count.
    ///
    /// # Panics
    ///
    /// If the count would exceed [`REFCOUNT_MAX`]: callers bound their counts (for example
    /// the number of RECs per realm), so this is an RMM bug.
    pub fn refcount_add(&mut self, n: u16) {
        let old = self.g.entry.fetch_add(n, Ordering::Relaxed) & REFCOUNT_MASK;
        assert!(
            u32::from(old) + u32::from(n) <= u32::from(REFCOUNT_MAX),
            "refcount overflow on granule {}",
            self.g.pa
        );
    }

    /// Subtracts `n` from the reference count.
    ///
    /// # Panics
    ///
    /// If the count is below `n` (an RMM bug).
    pub fn refcount_sub(&mut self, n: u16) {
        let old = self.g.entry.fetch_sub(n, Ordering::Relaxed) & REFCOUNT_MASK;
        assert!(old >= n, "refcount underflow on granule {}", self.g.pa);
    }
}

impl Drop for LockedGranule<'_> {
    fn drop(&mut self) {
        let old = self.g.entry.fetch_and(!LOCK_BIT, Ordering::Release);
        debug_assert!(old & LOCK_BIT != 0, "granule {} unlocked twice", self.g.pa);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn bank(base: u64, size: u64) -> MemoryBank {
        MemoryBank { base, size }
    }

    fn storage(n: usize) -> Vec<AtomicU16> {
        (0..n).map(|_| AtomicU16::new(0xffff)).collect()
    }

    const B0: u64 = 0x8000_0000;
    const B1: u64 = 0x9000_0000;

    #[test]
    fn table_rejects_no_banks() {
        assert_eq!(GranuleTable::entries_needed(&[]), Err(TableError::NoBanks));
    }

    #[test]
    fn table_rejects_too_many_banks() {
        let banks: Vec<_> = (0..9u64)
            .map(|i| bank(0x1000_0000 * (i + 1), 0x1000))
            .collect();
        assert_eq!(
            GranuleTable::entries_needed(&banks),
            Err(TableError::TooManyBanks { count: 9 })
        );
    }

    #[test]
    fn table_rejects_zero_base() {
        assert_eq!(
            GranuleTable::entries_needed(&[bank(0, 0x1000)]),
            Err(TableError::ZeroBase { bank: 0 })
        );
    }

    #[test]
    fn table_rejects_misaligned_bank() {
        assert_eq!(
            GranuleTable::entries_needed(&[bank(B0 + 0x10, 0x1000)]),
            Err(TableError::Misaligned { bank: 0 })
        );
        assert_eq!(
            GranuleTable::entries_needed(&[bank(B0, 0x1000), bank(B1, 0x1800)]),
            Err(TableError::Misaligned { bank: 1 })
        );
    }

    #[test]
    fn table_rejects_empty_bank() {
        assert_eq!(
            GranuleTable::entries_needed(&[bank(B0, 0)]),
            Err(TableError::Empty { bank: 0 })
        );
    }

    #[test]
    fn table_rejects_overflowing_bank() {
        assert_eq!(
            GranuleTable::entries_needed(&[bank(0xFFFF_FFFF_FFFF_F000, 0x2000)]),
            Err(TableError::Overflow { bank: 0 })
        );
    }

    #[test]
    fn table_rejects_overlapping_or_descending_banks() {
        assert_eq!(
            GranuleTable::entries_needed(&[bank(B0, 0x2000), bank(B0 + 0x1000, 0x1000)]),
            Err(TableError::NotAscending { bank: 1 })
        );
        assert_eq!(
            GranuleTable::entries_needed(&[bank(B1, 0x1000), bank(B0, 0x1000)]),
            Err(TableError::NotAscending { bank: 1 })
        );
        // Adjacent banks are fine.
        assert_eq!(
            GranuleTable::entries_needed(&[bank(B0, 0x1000), bank(B0 + 0x1000, 0x1000)]),
            Ok(2)
        );
    }

    #[test]
    fn table_rejects_small_storage() {
        let s = storage(3);
        let e = GranuleTable::new(&[bank(B0, 0x4000)], &s).unwrap_err();
        assert_eq!(
            e,
            TableError::StorageTooSmall {
                needed: 4,
                provided: 3
            }
        );
    }

    #[test]
    fn table_lookup_and_reset() {
        let s = storage(10);
        let t = GranuleTable::new(&[bank(B0, 0x3000), bank(B1, 0x2000)], &s).unwrap();
        assert_eq!(t.len(), 5);
        assert_eq!(t.top(), Pa::new(B1 + 0x2000));
        assert!(t.is_tracked(Pa::new(B0)));
        assert!(t.is_tracked(Pa::new(B0 + 0x2000)));
        assert!(!t.is_tracked(Pa::new(B0 + 0x3000)));
        assert!(!t.is_tracked(Pa::new(B0 + 0x10)));
        assert!(t.is_tracked(Pa::new(B1 + 0x1000)));
        assert!(!t.is_tracked(Pa::new(B1 - 0x1000)));
        assert!(!t.is_tracked(Pa::new(0xFFFF_FFFF_FFFF_F000u64)));
        let pas: Vec<u64> = t.iter().map(|g| g.pa().get()).collect();
        assert_eq!(pas, [B0, B0 + 0x1000, B0 + 0x2000, B1, B1 + 0x1000]);
        assert!(t
            .iter()
            .all(|g| g.state_unlocked() == GranuleState::Ns && !g.is_locked()));
        // Unused storage is left alone.
        assert_eq!(s[5].load(Ordering::Relaxed), 0xffff);
        assert_eq!(
            t.banks().collect::<Vec<_>>(),
            [bank(B0, 0x3000), bank(B1, 0x2000)]
        );
    }

    #[test]
    fn a_table_over_zeroed_storage_is_the_reset_table_and_writes_nothing() {
        let banks = [bank(B0, 0x3000), bank(B1, 0x2000)];
        let zeroed: Vec<AtomicU16> = (0..10).map(|_| AtomicU16::new(0)).collect();
        let used = storage(10);
        let a = GranuleTable::over_zeroed(&banks, &zeroed).unwrap();
        let b = GranuleTable::new(&banks, &used).unwrap();
        assert_eq!(a.len(), b.len());
        assert_eq!(a.banks().collect::<Vec<_>>(), b.banks().collect::<Vec<_>>());
        for (x, y) in a.iter().zip(b.iter()) {
            assert_eq!(x.pa(), y.pa());
            assert_eq!(x.state_unlocked(), y.state_unlocked());
            assert_eq!(x.is_locked(), y.is_locked());
        }
        // Nothing is cleared: a non-zero entry stays as it was (why used storage needs `new`).
        let dirty = storage(10);
        let _ = GranuleTable::over_zeroed(&banks, &dirty).unwrap();
        assert!(dirty.iter().all(|e| e.load(Ordering::Relaxed) == 0xffff));
        assert_eq!(
            GranuleTable::over_zeroed(&banks, &zeroed[..4]).unwrap_err(),
            TableError::StorageTooSmall {
                needed: 5,
                provided: 4
            }
        );
    }

    #[test]
    fn descriptor_storage_per_gib() {
        assert_eq!(DESCRIPTOR_BYTES_PER_GIB, 512 * 1024);
    }

    #[test]
    fn state_and_refcount_round_trip() {
        let s = storage(1);
        let t = GranuleTable::new(&[bank(B0, 0x1000)], &s).unwrap();
        for st in GranuleState::ALL {
            assert_eq!(GranuleState::from_bits(st as u8), Some(st));
            let mut l = t.granule(Pa::new(B0)).unwrap().lock();
            l.refcount_add(REFCOUNT_MAX);
            l.set_state(st);
            assert_eq!(l.state(), st);
            for other in GranuleState::ALL {
                assert_eq!(l.is_in(other), other == st, "{st} is_in {other}");
            }
            assert!(l.granule().is_locked(), "set_state keeps the lock bit");
            assert_eq!(l.refcount(), REFCOUNT_MAX);
            l.refcount_sub(REFCOUNT_MAX);
            assert_eq!(l.refcount(), 0);
        }
        assert!(!t.granule(Pa::new(B0)).unwrap().is_locked());
    }

    #[test]
    fn a_transient_state_is_left_by_one_swap_only_when_unlocked_and_as_set() {
        let s = storage(1);
        let t = GranuleTable::new(&[bank(B0, 0x1000)], &s).unwrap();
        let g = t.granule(Pa::new(B0)).unwrap();
        g.lock().set_state(GranuleState::Delegating);
        {
            let _held = g.lock();
            assert!(!g.try_finish_transient(GranuleState::Delegating, GranuleState::Delegated));
        }
        assert_eq!(
            g.state_unlocked(),
            GranuleState::Delegating,
            "nothing changed"
        );
        assert!(!g.try_finish_transient(GranuleState::Undelegating, GranuleState::Ns));
        assert!(g.try_finish_transient(GranuleState::Delegating, GranuleState::Delegated));
        assert_eq!(g.state_unlocked(), GranuleState::Delegated);
        assert!(!g.is_locked());
        assert_eq!(g.refcount_unlocked(), 0);
    }

    #[test]
    fn a_transient_state_is_entered_by_one_swap_only_from_the_state_unlocked_and_unreferenced() {
        let s = storage(1);
        let t = GranuleTable::new(&[bank(B0, 0x1000)], &s).unwrap();
        let g = t.granule(Pa::new(B0)).unwrap();
        {
            let _held = g.lock();
            assert!(!g.try_start_transient(GranuleState::Ns, GranuleState::Delegating));
        }
        assert!(!g.try_start_transient(GranuleState::Delegated, GranuleState::Undelegating));
        g.lock().refcount_add(1);
        assert!(!g.try_start_transient(GranuleState::Ns, GranuleState::Delegating));
        g.lock().refcount_sub(1);
        assert_eq!(g.state_unlocked(), GranuleState::Ns, "nothing changed");
        assert!(g.try_start_transient(GranuleState::Ns, GranuleState::Delegating));
        assert_eq!(g.state_unlocked(), GranuleState::Delegating);
        assert!(!g.is_locked());
        assert_eq!(g.refcount_unlocked(), 0);
    }

    #[test]
    #[should_panic(expected = "refcount overflow")]
    fn refcount_overflow_panics() {
        let s = storage(1);
        let t = GranuleTable::new(&[bank(B0, 0x1000)], &s).unwrap();
        let mut l = t.granule(Pa::new(B0)).unwrap().lock();
        l.refcount_add(REFCOUNT_MAX);
        l.refcount_add(1);
    }

    #[test]
    fn lock_if_checks_state_and_releases_on_mismatch() {
        let s = storage(1);
        let t = GranuleTable::new(&[bank(B0, 0x1000)], &s).unwrap();
        let pa = Pa::new(B0);
        assert_eq!(
            t.lock(pa, GranuleState::Delegated).unwrap_err(),
            LockError::WrongState(GranuleState::Ns)
        );
        assert!(!t.granule(pa).unwrap().is_locked());
        let l = t.lock(pa, GranuleState::Ns).unwrap();
        assert!(l.granule().is_locked());
        drop(l);
        assert_eq!(
            t.lock(Pa::new(B0 + 0x1000), GranuleState::Ns).unwrap_err(),
            LockError::Untracked
        );
    }

    #[test]
    fn lock_two_orders_and_validates() {
        let s = storage(4);
        let t = GranuleTable::new(&[bank(B0, 0x4000)], &s).unwrap();
        let (a, b) = (Pa::new(B0 + 0x3000), Pa::new(B0 + 0x1000));
        let (la, lb) = t
            .lock_two((a, GranuleState::Ns), (b, GranuleState::Ns))
            .unwrap();
        assert_eq!((la.pa(), lb.pa()), (a, b));
        drop((la, lb));
        let e = t
            .lock_two((a, GranuleState::Ns), (a, GranuleState::Ns))
            .unwrap_err();
        assert_eq!(
            e,
            LockTwoError {
                which: 1,
                error: LockError::SameGranule
            }
        );
        let e = t
            .lock_two((a, GranuleState::Ns), (Pa::new(0x10), GranuleState::Ns))
            .unwrap_err();
        assert_eq!(
            e,
            LockTwoError {
                which: 1,
                error: LockError::Untracked
            }
        );
        let e = t
            .lock_two((a, GranuleState::Rd), (b, GranuleState::Ns))
            .unwrap_err();
        assert_eq!(
            e,
            LockTwoError {
                which: 0,
                error: LockError::WrongState(GranuleState::Ns)
            }
        );
        let e = t
            .lock_two((a, GranuleState::Ns), (b, GranuleState::Rec))
            .unwrap_err();
        assert_eq!(
            e,
            LockTwoError {
                which: 1,
                error: LockError::WrongState(GranuleState::Ns)
            }
        );
        assert!(
            t.iter().all(|g| !g.is_locked()),
            "a failed lock_two left a lock held"
        );
    }

    #[test]
    fn lock_two_in_opposite_orders_does_not_deadlock() {
        let s = storage(2);
        let t = GranuleTable::new(&[bank(B0, 0x2000)], &s[..]).unwrap();
        let (p0, p1) = (Pa::new(B0), Pa::new(B0 + 0x1000));
        std::thread::scope(|sc| {
            for i in 0..2 {
                let t = &t;
                sc.spawn(move || {
                    for _ in 0..5000 {
                        let (x, y) = if i == 0 { (p0, p1) } else { (p1, p0) };
                        let (mut a, _b) = t
                            .lock_two((x, GranuleState::Ns), (y, GranuleState::Ns))
                            .unwrap();
                        a.refcount_add(1);
                        a.refcount_sub(1);
                    }
                });
            }
        });
        assert!(t.iter().all(|g| !g.is_locked()));
    }
}
