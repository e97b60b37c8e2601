//! Guest RAM: one range of protected IPAs backed by one contiguous range of host memory
//! (IPA `base + x` is backed by host PA `backing + x`), and its unprotected alias.
//!
//! Every 4 KiB page is in one of four states:
//!
//! | state | RIPAS | stage 2 | host backing granule |
//! |---|---|---|---|
//! | `Ram` | RAM | unassigned | NS, not used |
//! | `Private` | RAM | assigned (protected) | delegated, the realm's |
//! | `Empty` | EMPTY | unassigned | NS, not used |
//! | `Shared` | EMPTY | the alias `ipa \| shared bit` maps the backing granule | NS, shared with the host |
//!
//! Private memory is mapped on first touch: a whole 2 MiB block with one `RTT_DATA_MAP` when
//! nothing in the block is mapped at page granularity, otherwise the page; a level 3 table
//! whose pages all became private is folded back into a block. When the realm turns pages
//! EMPTY (`RSI_IPA_STATE_SET`) the host changes their RIPAS, unmaps them (`RTT_DATA_UNMAP`)
//! and undelegates the granules, which the RMM scrubs; when the realm then touches a page
//! through the alias the host maps the same, now Non-secure, granule there
//! (`RTT_UNPROT_MAP`). A page turned back into RAM is unmapped from the alias first
//! (`RTT_UNPROT_UNMAP`), so no device model ever touches it again.

use super::error::{VmError, VmResult};
use super::granules::GranulePool;
use super::realm::Realm;
use super::rtt::entry_size;
use crate::rmi::{Conduit, Rmi};
use alloc::vec;
use alloc::vec::Vec;
use cca_abi::rmi::{data_flags, AddrRangeDesc, BlockSize};
use cca_abi::GRANULE_SIZE as G;

const BLOCK: u64 = entry_size(2);
const PAGES_PER_BLOCK: u64 = BLOCK / G;

/// The state of one page of guest RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PageState {
    /// RIPAS RAM, not mapped yet.
    Ram = 0,
    /// RIPAS RAM, mapped to its delegated backing granule.
    Private = 1,
    /// RIPAS EMPTY, nothing mapped.
    Empty = 2,
    /// RIPAS EMPTY, the backing granule mapped at the unprotected alias.
    Shared = 3,
}

/// Counters of what guest memory did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Pages loaded with `RTT_DATA_MAP_INIT` (measured or not).
    pub loaded: u64,
    /// 2 MiB blocks mapped on first touch.
    pub blocks_mapped: u64,
    /// 4 KiB pages mapped on first touch.
    pub pages_mapped: u64,
    /// Level 3 tables folded back into a block.
    pub folds: u64,
    /// Pages unmapped because the realm made them EMPTY.
    pub pages_unmapped: u64,
    /// Pages mapped at the unprotected alias (`RTT_UNPROT_MAP`).
    pub shared_mapped: u64,
    /// Pages unmapped from the alias (`RTT_UNPROT_UNMAP`).
    pub shared_unmapped: u64,
}

/// A guest's RAM.
#[derive(Debug)]
pub struct GuestMemory {
    base: u64,
    size: u64,
    backing: u64,
    pages: Vec<PageState>,
    /// Private pages per 2 MiB block (for folding).
    private_in_block: Vec<u16>,
    /// What happened.
    pub stats: MemoryStats,
}

impl GuestMemory {
    /// RAM at IPAs `[base, base + size)` (both 2 MiB aligned) backed by `size` bytes of host
    /// memory allocated from `pool`, all pages `Ram` (the caller sets the RIPAS).
    pub fn new(pool: &mut GranulePool, base: u64, size: u64) -> VmResult<Self> {
        if base % BLOCK != 0 || size % BLOCK != 0 || size == 0 || base.checked_add(size).is_none() {
            return Err(VmError::Config(
                "guest RAM must be a non-empty range of whole 2 MiB blocks",
            ));
        }
        let backing = pool.alloc(size / G, BLOCK, "guest RAM")?;
        Ok(Self {
            base,
            size,
            backing,
            pages: vec![PageState::Ram; (size / G) as usize],
            private_in_block: vec![0; (size / BLOCK) as usize],
            stats: MemoryStats::default(),
        })
    }

    /// `(base, size)` in IPA space.
    pub fn range(&self) -> (u64, u64) {
        (self.base, self.size)
    }

    /// The host PA backing the page at `ipa`, if it is guest RAM.
    pub fn backing_of(&self, ipa: u64) -> Option<u64> {
        self.contains(ipa).then(|| self.backing + (ipa - self.base))
    }

    /// True when `ipa` is guest RAM.
    pub fn contains(&self, ipa: u64) -> bool {
        ipa >= self.base && ipa - self.base < self.size
    }

    /// True when `[ipa, ipa + len)` is guest RAM.
    pub fn contains_range(&self, ipa: u64, len: u64) -> bool {
        len > 0
            && ipa >= self.base
            && ipa
                .checked_add(len)
                .is_some_and(|end| end <= self.base + self.size)
    }

    /// The state of the page at `ipa`.
    pub fn state(&self, ipa: u64) -> Option<PageState> {
        self.contains(ipa).then(|| self.pages[self.page(ipa)])
    }

    fn page(&self, ipa: u64) -> usize {
        ((ipa - self.base) / G) as usize
    }

    fn set(&mut self, ipa: u64, s: PageState) {
        let i = self.page(ipa);
        let block = i / PAGES_PER_BLOCK as usize;
        let was = self.pages[i];
        if was == PageState::Private && s != PageState::Private {
            self.private_in_block[block] -= 1;
        } else if was != PageState::Private && s == PageState::Private {
            self.private_in_block[block] += 1;
        }
        self.pages[i] = s;
    }

    /// Pages in each state: `[Ram, Private, Empty, Shared]`.
    pub fn census(&self) -> [u64; 4] {
        let mut n = [0u64; 4];
        for p in &self.pages {
            n[*p as usize] += 1;
        }
        n
    }

    /// Sets the RIPAS of `[base, top)` (inside RAM, granule aligned) to RAM before
    /// activation (`RTT_INIT_RIPAS`); every other page of RAM becomes `Empty`.
    pub fn init_ripas<C: Conduit>(
        &mut self,
        rmi: &mut Rmi<'_, C>,
        pool: &mut GranulePool,
        realm: &mut Realm,
        base: u64,
        top: u64,
    ) -> VmResult<()> {
        if base % G != 0 || top % G != 0 || top <= base || !self.contains_range(base, top - base) {
            return Err(VmError::Config(
                "the initial RAM range must be whole granules inside guest RAM",
            ));
        }
        for ipa in (self.base..self.base + self.size).step_by(G as usize) {
            if ipa < base || ipa >= top {
                self.set(ipa, PageState::Empty);
            }
        }
        let mut next = base;
        while next < top {
            let at = next;
            next = realm
                .rtts
                .with_tables(rmi, pool, realm.rd, (at, 3), "RTT_INIT_RIPAS", |r| {
                    r.rtt_init_ripas(realm.rd, at, top)
                })?;
        }
        Ok(())
    }

    /// Loads one page before activation: delegates its backing granule and copies `src` (an
    /// NS page) into it with `RTT_DATA_MAP_INIT`, measuring the contents if `measured`.
    pub fn load_page<C: Conduit>(
        &mut self,
        rmi: &mut Rmi<'_, C>,
        pool: &mut GranulePool,
        realm: &mut Realm,
        ipa: u64,
        src: u64,
        measured: bool,
    ) -> VmResult<()> {
        if ipa % G != 0 || self.state(ipa) != Some(PageState::Ram) {
            return Err(VmError::Config(
                "an image page outside RAM, unaligned or loaded twice",
            ));
        }
        let data = self.backing + (ipa - self.base);
        pool.delegate(rmi, data, 1)?;
        let flags = if measured {
            data_flags::MEASURE_CONTENT
        } else {
            data_flags::NO_MEASURE_CONTENT
        };
        let rd = realm.rd;
        let r = realm
            .rtts
            .with_tables(rmi, pool, rd, (ipa, 3), "RTT_DATA_MAP_INIT", |r| {
                r.data_map_init(rd, data, ipa, src, flags)
            });
        if let Err(e) = r {
            pool.undelegate(rmi, data, 1)?;
            return Err(e);
        }
        self.set(ipa, PageState::Private);
        self.stats.loaded += 1;
        Ok(())
    }

    /// A protected access at `ipa` faulted: maps it (its block, or the page). Returns false
    /// if `ipa` is not RAM the realm may use (not guest RAM, or not RIPAS RAM).
    pub fn map_on_fault<C: Conduit>(
        &mut self,
        rmi: &mut Rmi<'_, C>,
        pool: &mut GranulePool,
        realm: &mut Realm,
        ipa: u64,
    ) -> VmResult<bool> {
        let page = ipa & !(G - 1);
        match self.state(page) {
            Some(PageState::Ram) => {}
            Some(PageState::Private) => {
                return Err(VmError::Guest(alloc::format!(
                    "stage 2 fault at IPA {ipa:#x}, which the host mapped"
                )))
            }
            _ => return Ok(false),
        }
        let block = page & !(BLOCK - 1);
        let first = self.page(block);
        let whole_block_free = realm.rtts.get(block, 3).is_none()
            && self.pages[first..first + PAGES_PER_BLOCK as usize]
                .iter()
                .all(|p| *p == PageState::Ram);
        let rd = realm.rd;
        if whole_block_free {
            let pa = self.backing + (block - self.base);
            pool.delegate(rmi, pa, PAGES_PER_BLOCK)?;
            let desc = AddrRangeDesc {
                size: BlockSize::L2_2M,
                count: 1,
                addr: pa,
                undelegated: false,
            };
            let r =
                realm
                    .rtts
                    .with_tables(rmi, pool, rd, (block, 2), "RTT_DATA_MAP (2 MiB)", |r| {
                        r.data_map(rd, block, block + BLOCK, desc)
                    });
            if let Err(e) = r {
                pool.undelegate(rmi, pa, PAGES_PER_BLOCK)?;
                return Err(e);
            }
            for k in 0..PAGES_PER_BLOCK {
                self.set(block + k * G, PageState::Private);
            }
            self.stats.blocks_mapped += 1;
            return Ok(true);
        }
        let pa = self.backing + (page - self.base);
        pool.delegate(rmi, pa, 1)?;
        let desc = AddrRangeDesc {
            size: BlockSize::L3_4K,
            count: 1,
            addr: pa,
            undelegated: false,
        };
        let r = realm
            .rtts
            .with_tables(rmi, pool, rd, (page, 3), "RTT_DATA_MAP", |r| {
                r.data_map(rd, page, page + G, desc)
            });
        if let Err(e) = r {
            pool.undelegate(rmi, pa, 1)?;
            return Err(e);
        }
        self.set(page, PageState::Private);
        self.stats.pages_mapped += 1;
        let b = first / PAGES_PER_BLOCK as usize;
        if u64::from(self.private_in_block[b]) == PAGES_PER_BLOCK
            && realm.rtts.fold(rmi, pool, rd, block, 3)?
        {
            self.stats.folds += 1;
        }
        Ok(true)
    }

    /// The realm asked for `[base, top)` (the range) to become RAM (`ram`) or EMPTY; `rec` is the REC
    /// that asked. Carries it out and returns the first address not changed (the caller
    /// reports it; it equals `top` unless the range leaves guest RAM, where a RAM request
    /// stops). EMPTY requests outside RAM are carried out as the RMM allows.
    pub fn change_ripas<C: Conduit>(
        &mut self,
        rmi: &mut Rmi<'_, C>,
        pool: &mut GranulePool,
        realm: &mut Realm,
        rec: u64,
        (base, top): (u64, u64),
        ram: bool,
    ) -> VmResult<u64> {
        if base % G != 0 || top % G != 0 || top <= base {
            return Err(VmError::Guest(alloc::format!(
                "RIPAS change of an unaligned or empty range [{base:#x}, {top:#x})"
            )));
        }
        // Only the part inside guest RAM is ours to change to RAM.
        let ram_top = self.base + self.size;
        let top = if ram {
            if !self.contains(base) {
                return Ok(base);
            }
            top.min(ram_top)
        } else {
            top
        };
        let shared = realm.shared_bit();
        let rd = realm.rd;
        if ram {
            // Take the shared pages out of the alias first.
            let mut ipa = base;
            while ipa < top {
                if self.state(ipa) != Some(PageState::Shared) {
                    ipa += G;
                    continue;
                }
                let mut end = ipa;
                while end < top && self.state(end) == Some(PageState::Shared) {
                    end += G;
                }
                let mut at = ipa;
                while at < end {
                    let u = rmi
                        .unprot_unmap(rd, at | shared, end | shared)
                        .map_err(VmError::rmi("RTT_UNPROT_UNMAP"))?;
                    let next = u.next & !shared;
                    for p in (at..next).step_by(G as usize) {
                        self.set(p, PageState::Empty);
                        self.stats.shared_unmapped += 1;
                    }
                    at = next;
                }
                ipa = end;
            }
        }
        let mut next = base;
        while next < top {
            let at = next;
            next = realm
                .rtts
                .with_tables(rmi, pool, rd, (at, 3), "RTT_SET_RIPAS", |r| {
                    r.rtt_set_ripas(rd, rec, at, top)
                })?;
        }
        if ram {
            for p in (base..top).step_by(G as usize) {
                if self.state(p) == Some(PageState::Empty) {
                    self.set(p, PageState::Ram);
                }
            }
            return Ok(top);
        }
        // EMPTY: unmap what was private and give the granules back (scrubbed by the RMM).
        let lo = base.max(self.base);
        let hi = top.min(ram_top);
        let mut ipa = lo;
        while ipa < hi {
            if self.state(ipa) != Some(PageState::Private) {
                if self.state(ipa) == Some(PageState::Ram) {
                    self.set(ipa, PageState::Empty);
                }
                ipa += G;
                continue;
            }
            let mut end = ipa;
            while end < hi && self.state(end) == Some(PageState::Private) {
                end += G;
            }
            self.unmap_private(rmi, pool, realm, ipa, end, PageState::Empty)?;
            ipa = end;
        }
        Ok(top)
    }

    /// Unmaps the private pages `[ipa, end)` (all `Private`), undelegates their granules and
    /// marks them `then`.
    fn unmap_private<C: Conduit>(
        &mut self,
        rmi: &mut Rmi<'_, C>,
        pool: &mut GranulePool,
        realm: &mut Realm,
        ipa: u64,
        end: u64,
        then: PageState,
    ) -> VmResult<()> {
        let rd = realm.rd;
        let mut at = ipa;
        while at < end {
            let cur = at;
            let u = realm
                .rtts
                .with_tables(rmi, pool, rd, (cur, 3), "RTT_DATA_UNMAP", |r| {
                    r.data_unmap(rd, cur, end)
                })?;
            if let Some(d) = u.freed {
                let n = u64::from(d.count) * (d.size.bytes() / G);
                if d.addr != self.backing + (cur - self.base) || cur + n * G != u.next {
                    return Err(VmError::Config(
                        "RTT_DATA_UNMAP returned granules the host did not map there",
                    ));
                }
                pool.undelegate(rmi, d.addr, n)?;
            }
            for p in (cur..u.next).step_by(G as usize) {
                self.set(p, then);
                self.stats.pages_unmapped += 1;
            }
            at = u.next;
        }
        Ok(())
    }

    /// An access at the unprotected alias of `ipa` (already stripped of the shared bit)
    /// faulted. If the page is EMPTY guest RAM, maps its backing granule there and returns
    /// true; false if the page is not EMPTY RAM (the caller decides what the access is).
    pub fn share_on_fault<C: Conduit>(
        &mut self,
        rmi: &mut Rmi<'_, C>,
        pool: &mut GranulePool,
        realm: &mut Realm,
        ipa: u64,
    ) -> VmResult<bool> {
        let page = ipa & !(G - 1);
        if self.state(page) != Some(PageState::Empty) {
            return Ok(false);
        }
        let pa = self.backing + (page - self.base);
        let alias = page | realm.shared_bit();
        let desc = AddrRangeDesc {
            size: BlockSize::L3_4K,
            count: 1,
            addr: pa,
            undelegated: true,
        };
        let rd = realm.rd;
        realm
            .rtts
            .with_tables(rmi, pool, rd, (alias, 3), "RTT_UNPROT_MAP", |r| {
                r.unprot_map(rd, alias, alias + G, desc)
            })?;
        self.set(page, PageState::Shared);
        self.stats.shared_mapped += 1;
        Ok(true)
    }

    /// The host PA of the shared page at `ipa` (with or without the shared bit), for device
    /// models: `None` unless the page is `Shared` or `Empty` right now.
    ///
    /// An `Empty` page is one the realm gave up (RIPAS EMPTY): its granule is Non-secure and
    /// not mapped for the realm, and it becomes the realm's view at the alias when the realm
    /// first touches it there (`share_on_fault` maps this same granule). A device may use it
    /// before that: edk2's IOMMU driver shares a bounce buffer and hands it to virtio-blk to
    /// fill before the firmware reads it through the alias.
    pub fn shared_pa(&self, ipa: u64, shared_bit: u64) -> Option<u64> {
        let ipa = ipa & !shared_bit;
        matches!(
            self.state(ipa),
            Some(PageState::Shared) | Some(PageState::Empty)
        )
        .then(|| self.backing + (ipa - self.base))
    }

    /// Unmaps every private page (the realm must be terminated), undelegates and frees the
    /// backing. Shared pages need no unmapping: destroying the RTTs drops those mappings.
    pub fn release<C: Conduit>(
        &mut self,
        rmi: &mut Rmi<'_, C>,
        pool: &mut GranulePool,
        realm: &mut Realm,
    ) -> VmResult<()> {
        let top = self.base + self.size;
        let mut ipa = self.base;
        while ipa < top {
            if self.state(ipa) != Some(PageState::Private) {
                ipa += G;
                continue;
            }
            let mut end = ipa;
            while end < top && self.state(end) == Some(PageState::Private) {
                end += G;
            }
            self.unmap_private(rmi, pool, realm, ipa, end, PageState::Ram)?;
            ipa = end;
        }
        pool.free(self.backing, self.size / G)
    }
}
