//! Lists of `RmiAddrRangeDesc4KB` address range descriptors (TF-RMM's `addr_list`): input
//! lists the host gives (one descriptor in a register, or a list in an NS page) and output
//! lists the RMM fills (freed or reclaimed memory).

use cca_abi::rmi::{AddrRangeDesc, BlockSize};
use cca_abi::GRANULE_SIZE;

use crate::error::{Reason, RmiError};
use crate::granule::GranuleState;
use crate::pa::Pa;
use crate::platform::Platform;
use crate::rmm::Rmm;
use zerocopy::IntoBytes;

/// Descriptors that fit in one 4 KiB page.
pub const MAX_RANGES: usize = (GRANULE_SIZE / 8) as usize;

/// Largest block count of a descriptor.
const MAX_COUNT: u16 = 0x3ff;

/// Level of the blocks of a descriptor block size.
pub fn level_of(size: BlockSize) -> i8 {
    3 - size as i8
}

/// Block size of `level` (1..=3, or 0 for 512 GiB).
fn size_of_level(level: i8) -> BlockSize {
    BlockSize::from_bits((3 - level) as u64)
}

/// Normalises a descriptor as TF-RMM's `addr_list_add_desc` does (only the defined fields).
fn normalise(v: u64) -> u64 {
    AddrRangeDesc::decode(v).encode()
}

/// An input list: the descriptors the host gave, consumed block by block.
pub struct InList {
    descs: [u64; MAX_RANGES],
    count: usize,
    cur: usize,
}

impl InList {
    /// An empty list (no descriptors), to be filled by [`Rmm::read_host_list_into`].
    pub fn empty() -> Self {
        Self {
            descs: [0; MAX_RANGES],
            count: 0,
            cur: 0,
        }
    }

    /// A list holding the single descriptor `desc`.
    pub fn single(desc: u64) -> Self {
        let mut descs = [0; MAX_RANGES];
        descs[0] = normalise(desc);
        Self {
            descs,
            count: 1,
            cur: 0,
        }
    }

    /// Number of descriptors.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Returns true when the list holds no descriptor.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The first descriptor (whatever its count).
    pub fn first(&self) -> Option<AddrRangeDesc> {
        (self.count > 0).then(|| AddrRangeDesc::decode(self.descs[0]))
    }

    /// The descriptors.
    pub fn descs(&self) -> impl Iterator<Item = AddrRangeDesc> + '_ {
        self.descs[..self.count]
            .iter()
            .map(|&d| AddrRangeDesc::decode(d))
    }

    /// Takes the next block: its address, level and "undelegated" state bit.
    pub fn pop_block(&mut self) -> Option<(u64, i8, bool)> {
        while self.cur < self.count && AddrRangeDesc::decode(self.descs[self.cur]).count == 0 {
            self.cur += 1;
        }
        if self.cur == self.count {
            return None;
        }
        let mut d = AddrRangeDesc::decode(self.descs[self.cur]);
        let out = (d.addr, level_of(d.size), d.undelegated);
        d.addr = d.addr.wrapping_add(d.size.bytes());
        d.count -= 1;
        self.descs[self.cur] = d.encode();
        Some(out)
    }
}

/// An output list of at most `N` descriptors, merging contiguous blocks.
#[derive(Clone, Copy, Debug)]
pub struct OutList<const N: usize> {
    descs: [u64; N],
    count: usize,
    max: usize,
}

impl<const N: usize> OutList<N> {
    /// An empty list that accepts at most `max` (<= N) descriptors.
    pub const fn new(max: usize) -> Self {
        Self {
            descs: [0; N],
            count: 0,
            max: if max < N { max } else { N },
        }
    }

    /// Number of descriptors.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Returns true when empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The descriptors.
    pub fn descs(&self) -> &[u64] {
        &self.descs[..self.count]
    }

    /// Adds a block of `level` at `pa`: merged into an existing descriptor it extends at
    /// either end (same size and state, count below 1023), else a new descriptor if there is
    /// room. Returns false when the block cannot be added.
    pub fn add_block(&mut self, pa: u64, level: i8, undelegated: bool) -> bool {
        let size = size_of_level(level);
        let bytes = size.bytes();
        if pa & (bytes - 1) != 0 {
            return false;
        }
        for slot in self.descs[..self.count].iter_mut() {
            let mut d = AddrRangeDesc::decode(*slot);
            if d.size != size || d.undelegated != undelegated || d.count >= MAX_COUNT {
                continue;
            }
            if Some(pa) == d.addr.checked_sub(bytes) {
                d.addr = pa;
            } else if pa != d.addr + u64::from(d.count) * bytes {
                continue;
            }
            d.count += 1;
            *slot = d.encode();
            return true;
        }
        if self.count == self.max {
            return false;
        }
        self.descs[self.count] = AddrRangeDesc {
            size,
            count: 1,
            addr: pa,
            undelegated,
        }
        .encode();
        self.count += 1;
        true
    }

    /// Removes the first `n` descriptors.
    fn drop_front(&mut self, n: usize) {
        self.descs.copy_within(n..self.count, 0);
        self.count -= n;
    }
}

impl<'a, P: Platform> Rmm<'a, P> {
    /// Reads `count` descriptors from the NS page holding `addr` (8-byte aligned, the
    /// descriptors stay inside that page). The page must be a tracked NS granule.
    pub(crate) fn read_host_list(&self, addr: u64, count: usize) -> Result<InList, RmiError> {
        let mut list = InList::empty();
        self.read_host_list_into(addr, count, &mut list)?;
        Ok(list)
    }

    /// [`Self::read_host_list`] into `list` (its previous contents are replaced), so that a
    /// caller with a list of its own does not move 4 KiB of descriptors around.
    pub(crate) fn read_host_list_into(
        &self,
        addr: u64,
        count: usize,
        list: &mut InList,
    ) -> Result<(), RmiError> {
        let page = Pa::new(addr & !(GRANULE_SIZE - 1));
        let g = self
            .granules
            .lock_while_state(page, GranuleState::Ns)
            .map_err(|e| RmiError::input_lock(page, GranuleState::Ns, e))?;
        let n = count.min(MAX_RANGES);
        // Read straight into the (aligned) descriptor words: no byte buffer to convert.
        list.count = 0;
        list.cur = 0;
        self.platform
            .ns_read(Pa::new(addr), list.descs[..n].as_mut_bytes())
            .map_err(|_| {
                RmiError::new(cca_abi::rmi::RmiStatus::ErrorInput, Reason::NsFault(page))
            })?;
        drop(g);
        for d in &mut list.descs[..n] {
            *d = normalise(u64::from_le(*d));
        }
        list.count = n;
        Ok(())
    }

    /// Copies the first descriptors of `list` to the host's NS buffer at `addr` (at most
    /// `capacity`, and never past the end of that page), removes them from the list and
    /// returns how many were written. `None` when the page is not a tracked NS granule or
    /// the write faults (nothing is removed then).
    pub(crate) fn write_host_list<const N: usize>(
        &self,
        list: &mut OutList<N>,
        addr: u64,
        capacity: usize,
    ) -> Option<usize> {
        let offset = ((addr & (GRANULE_SIZE - 1)) / 8) as usize;
        let n = list.len().min(capacity).min(MAX_RANGES - offset);
        let page = Pa::new(addr & !(GRANULE_SIZE - 1));
        let g = self
            .granules
            .lock_while_state(page, GranuleState::Ns)
            .ok()?;
        let mut bytes = [0u8; GRANULE_SIZE as usize];
        for (c, d) in bytes.chunks_exact_mut(8).zip(&list.descs()[..n]) {
            c.copy_from_slice(&d.to_le_bytes());
        }
        self.platform
            .ns_write(Pa::new(addr), &bytes[..n * 8])
            .ok()?;
        drop(g);
        list.drop_front(n);
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_lists_merge_contiguous_blocks() {
        let mut l = OutList::<4>::new(2);
        assert!(l.add_block(0x8000_1000, 3, false));
        assert!(l.add_block(0x8000_2000, 3, false), "append");
        assert!(l.add_block(0x8000_0000, 3, false), "prepend");
        assert_eq!(l.len(), 1);
        assert_eq!(
            AddrRangeDesc::decode(l.descs()[0]),
            AddrRangeDesc {
                size: BlockSize::L3_4K,
                count: 3,
                addr: 0x8000_0000,
                undelegated: false
            }
        );
        assert!(l.add_block(0x9000_0000, 3, false));
        assert!(!l.add_block(0xA000_0000, 3, false), "full");
        assert!(
            !l.add_block(0x8000_0000 + 0x1000, 2, false),
            "unaligned block"
        );
        assert!(l.add_block(0x8000_3000, 3, false), "still merges when full");
        assert!(!l.add_block(0x8000_4000, 3, true), "another state");
        l.drop_front(1);
        assert_eq!(l.descs(), &[0x9000_0000 | (1 << 2)]);
    }

    #[test]
    fn input_lists_pop_blocks_in_order() {
        let d = AddrRangeDesc {
            size: BlockSize::L2_2M,
            count: 2,
            addr: 0x8020_0000,
            undelegated: true,
        };
        let mut l = InList::single(d.encode() | (0x7f << 52));
        assert_eq!(l.first(), Some(d));
        assert_eq!(l.pop_block(), Some((0x8020_0000, 2, true)));
        assert_eq!(l.pop_block(), Some((0x8040_0000, 2, true)));
        assert_eq!(l.pop_block(), None);
        let mut empty = InList::single(0x8000_0000);
        assert_eq!(empty.pop_block(), None, "count 0");
    }
}
