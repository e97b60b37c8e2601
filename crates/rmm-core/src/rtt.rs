//! Realm translation tables: table access, the hand-over-hand walk, and `RTT_CREATE`,
//! `RTT_DESTROY`, `RTT_FOLD`, `RTT_READ_ENTRY`, `RTT_INIT_RIPAS`, `RTT_SET_RIPAS`.
//!
//! # Locking
//!
//! A command locks the RD, then the (first) starting-level RTT. The walk locks each
//! next-level table before releasing its parent, so only the last table reached stays locked
//! (a concatenated starting-level table is locked after the first one and replaces it).
//! Granules a command takes while it holds RTT locks (the new RTT of `RTT_CREATE`, data
//! granules) are locked with [`crate::Granule::lock_while_state`], so a host naming a granule
//! the command already holds gets an error, never a deadlock. No lock is ever held across
//! an EL3 call (none of these commands calls EL3).

use cca_abi::rmi::{RealmState, Ripas, RmiStatus};
use cca_abi::GRANULE_SIZE;

use crate::dispatch::Regs;
use crate::error::RmiError;
use crate::granule::{GranuleState, LockedGranule};
use crate::pa::Pa;
use crate::platform::Platform;
use crate::realm::S2Ctx;
use crate::rmm::Rmm;
use crate::s2tt::{self, Entry};
use zerocopy::IntoBytes;

/// The end of a walk: the last table reached (locked), its level and the entry index.
pub(crate) struct Walk<'t> {
    /// The table, locked.
    pub table: LockedGranule<'t>,
    /// Its level.
    pub level: i8,
    /// Index of the entry translating the walked address.
    pub index: usize,
}

impl<'a, P: Platform> Rmm<'a, P> {
    /// Reads entry `idx` of a locked RTT.
    pub(crate) fn rtt_read(&self, t: &LockedGranule<'_>, idx: usize) -> u64 {
        let mut b = [0u8; 8];
        self.platform
            .realm_read(Pa::new(t.pa().get() + idx as u64 * 8), &mut b);
        u64::from_le_bytes(b)
    }

    /// Writes entry `idx` of a locked RTT.
    pub(crate) fn rtt_write(&self, t: &LockedGranule<'_>, idx: usize, v: u64) {
        self.platform
            .realm_write(Pa::new(t.pa().get() + idx as u64 * 8), &v.to_le_bytes());
    }

    /// Reads a whole locked RTT.
    pub(crate) fn rtt_read_all(&self, t: &LockedGranule<'_>) -> [u64; s2tt::ENTRIES] {
        let mut out = [0u64; s2tt::ENTRIES];
        self.platform.realm_read(t.pa(), out.as_mut_bytes());
        out
    }

    /// Writes a whole locked RTT.
    pub(crate) fn rtt_write_all(&self, t: &LockedGranule<'_>, entries: &[u64; s2tt::ENTRIES]) {
        self.platform.realm_write(t.pa(), entries.as_bytes());
    }

    /// Fills a whole locked RTT with the entries `entry(0..512)`. When they form an
    /// arithmetic sequence (one value, or output addresses a fixed size apart, which is what
    /// RTT_CREATE writes) the platform stores them directly.
    pub(crate) fn rtt_fill(&self, t: &LockedGranule<'_>, entry: impl Fn(u64) -> u64) {
        let first = entry(0);
        let step = entry(1).wrapping_sub(first);
        let last = s2tt::ENTRIES as u64 - 1;
        if entry(last) == first.wrapping_add(step.wrapping_mul(last)) {
            self.platform
                .realm_fill_words(t.pa(), s2tt::ENTRIES, first, step);
        } else {
            let table: [u64; s2tt::ENTRIES] = core::array::from_fn(|i| entry(i as u64));
            self.rtt_write_all(t, &table);
        }
    }

    /// Locks the first starting-level RTT of a realm.
    pub(crate) fn lock_root(&self, s2: &S2Ctx) -> LockedGranule<'_> {
        match self.granules.granule(s2.root) {
            Some(g) => g.lock(),
            None => panic!("realm root RTT {} is not a tracked granule", s2.root),
        }
    }

    /// Locks the RTT a table entry points to.
    fn lock_child(&self, pa: u64) -> LockedGranule<'_> {
        match self.granules.granule(Pa::new(pa)) {
            Some(g) => {
                let l = g.lock();
                assert!(
                    l.state() == GranuleState::Rtt,
                    "a table entry points at {}, which is {}",
                    l.pa(),
                    l.state()
                );
                l
            }
            None => panic!("a table entry points at untracked {pa:#x}"),
        }
    }

    /// Walks from the locked first root towards `level` for `ipa` (< the IPA size),
    /// hand over hand, stopping early at a non-table entry.
    pub(crate) fn walk<'g>(
        &'g self,
        s2: &S2Ctx,
        root: LockedGranule<'g>,
        ipa: u64,
        level: i8,
    ) -> Walk<'g> {
        let sl = s2.start_level;
        let lsb = (3 - i32::from(sl)) as u32 * s2tt::STRIDE + 12;
        let sl_idx = (ipa & (s2.ipa_size() - 1)) >> lsb;
        let mut table = root;
        if sl_idx >= s2tt::entries(sl) as u64 {
            let n = sl_idx >> s2tt::STRIDE;
            let pa = s2
                .root
                .add_granules(n)
                .filter(|_| n < u64::from(s2.num_root_rtts))
                .unwrap_or_else(|| panic!("IPA {ipa:#x} beyond the concatenated RTTs"));
            let next = self.lock_child(pa.get());
            table = next;
        }
        let mut cur = sl;
        while cur < level {
            let idx = s2tt::index(ipa, cur);
            match Entry::decode(self.rtt_read(&table, idx), cur, s2.lpa2) {
                Entry::Table(pa) => {
                    let next = self.lock_child(pa);
                    table = next;
                    cur += 1;
                }
                _ => break,
            }
        }
        Walk {
            index: s2tt::index(ipa, cur),
            table,
            level: cur,
        }
    }

    /// TF-RMM's `s2tt_skip_non_live_entries`: `addr` if the walked entry is live, else the
    /// address after the run of non-live entries that follows it in the same table.
    fn skip_non_live(&self, w: &Walk<'_>, addr: u64, lpa2: bool) -> u64 {
        let level = w.level;
        if Entry::decode(self.rtt_read(&w.table, w.index), level, lpa2).is_live() {
            return addr;
        }
        let size = s2tt::map_size(level);
        let base = addr & !(size - 1);
        let mut i = w.index + 1;
        while i < s2tt::entries(level)
            && !Entry::decode(self.rtt_read(&w.table, i), level, lpa2).is_live()
        {
            i += 1;
        }
        base.saturating_add((i - w.index) as u64 * size)
    }

    /// Checks the level and IPA of a structure command (create, destroy, fold): level in
    /// `[start + 1, 3]` and the IPA inside the IPA space, aligned to `level - 1`.
    fn check_structure_args(s2: &S2Ctx, ipa: u64, level: i64) -> Result<i8, RmiError> {
        if level < i64::from(s2.start_level) + 1 || level > i64::from(s2tt::PAGE_LEVEL) {
            return Err(RmiError::input_value(
                "the level must be from the starting level + 1 to 3",
                level as u64,
            ));
        }
        let level = level as i8;
        if !s2.valid_map_addr(ipa, level - 1) {
            return Err(RmiError::input_value(
                "the IPA is outside the realm or not aligned to the parent level",
                ipa,
            ));
        }
        Ok(level)
    }

    /// Invalidates one entry of the realm's stage 2.
    pub(crate) fn tlbi_entry(&self, s2: &S2Ctx, ipa: u64, level: i8) {
        self.platform
            .tlbi_ipa(s2.vmid, ipa & !(s2tt::map_size(level) - 1), level);
    }

    /// `RTT_CREATE(rd, rtt, ipa, level)`.
    pub(crate) fn cmd_rtt_create(&self, regs: &Regs, _out: &mut Regs) -> Result<(), RmiError> {
        let (rd_addr, rtt_addr, ipa, level) = (regs[1], regs[2], regs[3], regs[4] as i64);
        let rtt_pa = Pa::new(rtt_addr);
        // TF-RMM locks the RTT and the RD together; both failures are ERROR_INPUT. The new
        // RTT is checked here and locked only after the walk (see the module docs).
        let g = self.granules.granule(rtt_pa).ok_or_else(|| {
            RmiError::input_lock(
                rtt_pa,
                GranuleState::Delegated,
                crate::granule::LockError::Untracked,
            )
        })?;
        let found = g.state_unlocked();
        if found != GranuleState::Delegated {
            return Err(RmiError::input_lock(
                rtt_pa,
                GranuleState::Delegated,
                crate::granule::LockError::WrongState(found),
            ));
        }
        let g_rd = self.lock_rd(rd_addr)?;
        let rd = self.rd_read(&g_rd);
        let s2 = rd.s2();
        let level = Self::check_structure_args(&s2, ipa, level)?;
        if !s2.lpa2 && rtt_addr >= 1 << 48 {
            return Err(RmiError::input_value(
                "the RTT is above 48 bits in a realm without LPA2",
                rtt_addr,
            ));
        }
        let w = self.walk(&s2, self.lock_root(&s2), ipa, level - 1);
        if w.level < level - 1 {
            return Err(RmiError::rtt(
                w.level,
                "the walk ended above the parent level",
            ));
        }
        let parent = self.rtt_read(&w.table, w.index);
        let pe = Entry::decode(parent, level - 1, s2.lpa2);
        if let Entry::Table(_) = pe {
            return Err(RmiError::rtt(
                level - 1,
                "the parent entry is already a table",
            ));
        }
        let mut g_rtt = g
            .lock_while_state(GranuleState::Delegated)
            .map_err(|e| RmiError::input_lock(rtt_pa, GranuleState::Delegated, e))?;
        let size = s2tt::map_size(level);
        let mut parent_ref = true;
        match pe {
            Entry::UnassignedEmpty => self.rtt_fill(&g_rtt, |_| s2tt::unassigned(Ripas::Empty)),
            Entry::UnassignedRam => self.rtt_fill(&g_rtt, |_| s2tt::unassigned(Ripas::Ram)),
            Entry::UnassignedDestroyed => {
                self.rtt_fill(&g_rtt, |_| s2tt::unassigned(Ripas::Destroyed))
            }
            Entry::UnassignedNs => self.rtt_fill(&g_rtt, |_| s2tt::unassigned_ns()),
            Entry::AssignedEmpty(pa) | Entry::AssignedDestroyed(pa) | Entry::AssignedRam(pa) => {
                let ripas = pe.ripas();
                if let Entry::AssignedRam(_) = pe {
                    // Break before make.
                    self.rtt_write(&w.table, w.index, 0);
                    self.tlbi_entry(&s2, ipa, level - 1);
                }
                self.rtt_fill(&g_rtt, |i| {
                    s2tt::assigned(pa + i * size, level, ripas, s2.lpa2)
                });
                g_rtt.refcount_add(s2tt::ENTRIES as u16);
                parent_ref = false;
            }
            Entry::AssignedNs(desc) => {
                let attrs = s2tt::ns_attrs(desc);
                let pa = s2tt::desc_pa(desc, level - 1, s2.lpa2);
                self.rtt_write(&w.table, w.index, 0);
                self.tlbi_entry(&s2, ipa, level - 1);
                self.rtt_fill(&g_rtt, |i| {
                    s2tt::assigned_ns((pa + i * size) | attrs, level, s2.lpa2)
                });
            }
            Entry::Table(_) | Entry::Invalid => {
                return Err(RmiError::rtt(level - 1, "the parent entry is corrupt"));
            }
        }
        g_rtt.set_state(GranuleState::Rtt);
        if parent_ref {
            let mut t = w.table;
            t.refcount_add(1);
            self.rtt_write(&t, w.index, s2tt::table(rtt_addr, s2.lpa2));
        } else {
            self.rtt_write(&w.table, w.index, s2tt::table(rtt_addr, s2.lpa2));
        }
        drop(g_rd);
        Ok(())
    }

    /// `RTT_DESTROY(rd, ipa, level)`: x1 = the RTT, x2 = the top of the non-live range.
    pub(crate) fn cmd_rtt_destroy(&self, regs: &Regs, out: &mut Regs) -> Result<(), RmiError> {
        let (rd_addr, ipa, level) = (regs[1], regs[2], regs[3] as i64);
        let g_rd = self.lock_rd(rd_addr)?;
        let rd = self.rd_read(&g_rd);
        let s2 = rd.s2();
        let level = Self::check_structure_args(&s2, ipa, level)?;
        let mut w = self.walk(&s2, self.lock_root(&s2), ipa, level - 1);
        let parent = self.rtt_read(&w.table, w.index);
        let pe = Entry::decode(parent, w.level, s2.lpa2);
        let rtt_pa = match pe {
            Entry::Table(pa) if w.level == level - 1 => pa,
            _ => {
                out[2] = self.skip_non_live(&w, ipa, s2.lpa2);
                return Err(RmiError::rtt(w.level, "there is no RTT at this level"));
            }
        };
        let mut child = self.lock_child(rtt_pa);
        if child.refcount() != 0 {
            out[2] = ipa;
            return Err(RmiError::rtt(level, "the RTT has live entries"));
        }
        let in_par = s2.in_par(ipa);
        let new = if in_par {
            s2tt::unassigned(Ripas::Destroyed)
        } else {
            s2tt::unassigned_ns()
        };
        w.table.refcount_sub(1);
        self.rtt_write(&w.table, w.index, 0);
        if in_par {
            // Every entry of a protected RTT without references is invalid.
            self.tlbi_entry(&s2, ipa, level - 1);
        } else {
            // An unprotected RTT may still hold valid NS mappings.
            self.platform
                .tlbi_ipa_range(s2.vmid, ipa, s2tt::map_size(level - 1));
        }
        self.rtt_write(&w.table, w.index, new);
        self.scrub_to_delegated(&mut child);
        drop(child);
        out[1] = rtt_pa;
        out[2] = self.skip_non_live(&w, ipa, s2.lpa2);
        drop(g_rd);
        Ok(())
    }

    /// `RTT_FOLD(rd, ipa, level)`: x1 = the RTT folded into its parent entry.
    pub(crate) fn cmd_rtt_fold(&self, regs: &Regs, out: &mut Regs) -> Result<(), RmiError> {
        let (rd_addr, ipa, level) = (regs[1], regs[2], regs[3] as i64);
        let g_rd = self.lock_rd(rd_addr)?;
        let rd = self.rd_read(&g_rd);
        let s2 = rd.s2();
        let level = Self::check_structure_args(&s2, ipa, level)?;
        let mut w = self.walk(&s2, self.lock_root(&s2), ipa, level - 1);
        if w.level < level - 1 {
            return Err(RmiError::rtt(
                w.level,
                "the walk ended above the parent level",
            ));
        }
        let rtt_pa = match Entry::decode(self.rtt_read(&w.table, w.index), level - 1, s2.lpa2) {
            Entry::Table(pa) => pa,
            _ => return Err(RmiError::rtt(level - 1, "the parent entry is not a table")),
        };
        let mut child = self.lock_child(rtt_pa);
        let t = self.rtt_read_all(&child);
        let lpa2 = s2.lpa2;
        let first = Entry::decode(t[0], level, lpa2);
        let all = |f: &dyn Fn(Entry) -> bool| t.iter().all(|&d| f(Entry::decode(d, level, lpa2)));
        let size = s2tt::map_size(level);
        let contiguous = |base: u64| {
            s2tt::addr_level_aligned(base, level - 1, lpa2)
                && t.iter().enumerate().all(|(i, &d)| {
                    Entry::decode(d, level, lpa2).pa().or_else(|| {
                        match Entry::decode(d, level, lpa2) {
                            Entry::AssignedNs(x) => Some(s2tt::desc_pa(x, level, lpa2)),
                            _ => None,
                        }
                    }) == Some(base + i as u64 * size)
                })
        };
        let new;
        match child.refcount() {
            0 => {
                new = if all(&|e| e == Entry::UnassignedDestroyed) {
                    s2tt::unassigned(Ripas::Destroyed)
                } else if all(&|e| e == Entry::UnassignedEmpty) {
                    s2tt::unassigned(Ripas::Empty)
                } else if all(&|e| e == Entry::UnassignedRam) {
                    s2tt::unassigned(Ripas::Ram)
                } else if all(&|e| e == Entry::UnassignedNs) {
                    s2tt::unassigned_ns()
                } else if let Entry::AssignedNs(d0) = first {
                    let attrs = s2tt::ns_attrs(d0);
                    let same = t.iter().all(|&d| {
                        matches!(Entry::decode(d, level, lpa2), Entry::AssignedNs(x) if s2tt::ns_attrs(x) == attrs)
                    });
                    if !(same && contiguous(s2tt::desc_pa(d0, level, lpa2))) {
                        return Err(RmiError::rtt(level, "the RTT's entries cannot be folded"));
                    }
                    if level <= s2tt::MIN_BLOCK_LEVEL {
                        return Err(RmiError::rtt(
                            w.level,
                            "NS blocks are not allowed at level 0",
                        ));
                    }
                    s2tt::assigned_ns_fold(d0, level, lpa2)
                } else {
                    return Err(RmiError::rtt(level, "the RTT's entries cannot be folded"));
                };
                w.table.refcount_sub(1);
            }
            n if usize::from(n) == s2tt::ENTRIES => {
                if level <= s2tt::MIN_BLOCK_LEVEL {
                    return Err(RmiError::rtt(
                        w.level,
                        "blocks of realm memory are not allowed at level 0",
                    ));
                }
                let Some(base) = first.pa() else {
                    return Err(RmiError::rtt(level, "the RTT's entries cannot be folded"));
                };
                let kind = core::mem::discriminant(&first);
                let same = t
                    .iter()
                    .all(|&d| core::mem::discriminant(&Entry::decode(d, level, lpa2)) == kind);
                if matches!(first, Entry::Table(_)) || !same || !contiguous(base) {
                    return Err(RmiError::rtt(level, "the RTT's entries cannot be folded"));
                }
                new = s2tt::assigned(base, level - 1, first.ripas(), lpa2);
                child.refcount_sub(s2tt::ENTRIES as u16);
            }
            _ => return Err(RmiError::rtt(level, "the RTT holds a mix of entries")),
        }
        // Break before make.
        self.rtt_write(&w.table, w.index, 0);
        let parent_size = s2tt::map_size(level - 1);
        let block_base = ipa & !(parent_size - 1);
        match Entry::decode(new, level - 1, lpa2) {
            Entry::AssignedRam(_) | Entry::AssignedNs(_) => {
                self.platform
                    .tlbi_ipa_range(s2.vmid, block_base, parent_size)
            }
            _ => self.tlbi_entry(&s2, ipa, level - 1),
        }
        self.rtt_write(&w.table, w.index, new);
        self.scrub_to_delegated(&mut child);
        out[1] = rtt_pa;
        drop(g_rd);
        Ok(())
    }

    /// `RTT_READ_ENTRY(rd, ipa, level)`: x1 = level reached, x2 = state, x3 = address or NS
    /// attributes, x4 = RIPAS.
    pub(crate) fn cmd_rtt_read_entry(&self, regs: &Regs, out: &mut Regs) -> Result<(), RmiError> {
        let (rd_addr, ipa, level) = (regs[1], regs[2], regs[3] as i64);
        let g_rd = self.lock_rd(rd_addr)?;
        let s2 = self.rd_read(&g_rd).s2();
        if level < i64::from(s2.start_level)
            || level > i64::from(s2tt::PAGE_LEVEL)
            || !s2.valid_map_addr(ipa, level as i8)
        {
            return Err(RmiError::input_value(
                "the level or the IPA is invalid for this realm",
                ipa,
            ));
        }
        let root = self.lock_root(&s2);
        drop(g_rd);
        let w = self.walk(&s2, root, ipa, level as i8);
        let desc = self.rtt_read(&w.table, w.index);
        let e = Entry::decode(desc, w.level, s2.lpa2);
        out[1] = w.level as i64 as u64;
        out[2] = e.rmi_state();
        out[3] = match e {
            Entry::AssignedNs(d) => s2tt::host_ns_bits(d, w.level, s2.lpa2),
            _ => e.pa().unwrap_or(0),
        };
        out[4] = e.ripas() as u64;
        Ok(())
    }

    /// `RTT_INIT_RIPAS(rd, base, top)`: x1 = how far the RIPAS was set to RAM.
    pub(crate) fn cmd_rtt_init_ripas(&self, regs: &Regs, out: &mut Regs) -> Result<(), RmiError> {
        let (rd_addr, base, top) = (regs[1], regs[2], regs[3]);
        if top <= base {
            return Err(RmiError::input("top must be above base"));
        }
        let g_rd = self.lock_rd(rd_addr)?;
        let rd = self.rd_read(&g_rd);
        let s2 = rd.s2();
        if !s2.valid_map_addr(base, 3)
            || !s2.valid_map_addr(top, 3)
            || !s2.in_par(base)
            || !s2.in_par(top - GRANULE_SIZE)
        {
            return Err(RmiError::input(
                "the range must be 4 KiB aligned and inside the protected IPA range",
            ));
        }
        if rd.realm_state() != RealmState::New {
            return Err(RmiError::realm("the realm is not NEW"));
        }
        let w = self.walk(&s2, self.lock_root(&s2), base, s2tt::PAGE_LEVEL);
        let size = s2tt::map_size(w.level);
        let mut addr = base & !(size - 1);
        if addr != base {
            return Err(RmiError::rtt(w.level, "base is inside a larger entry"));
        }
        for idx in w.index..s2tt::entries(w.level) {
            let next = addr + size;
            if next > top {
                break;
            }
            let d = self.rtt_read(&w.table, idx);
            match Entry::decode(d, w.level, s2.lpa2) {
                Entry::UnassignedEmpty => {
                    self.rtt_write(&w.table, idx, s2tt::unassigned(Ripas::Ram))
                }
                Entry::AssignedEmpty(pa) => self.rtt_write(
                    &w.table,
                    idx,
                    s2tt::assigned(pa, w.level, Ripas::Ram, s2.lpa2),
                ),
                Entry::AssignedRam(_) | Entry::UnassignedRam => {}
                _ => break,
            }
            addr = next;
        }
        if addr > base {
            out[1] = addr;
            Ok(())
        } else {
            Err(RmiError::rtt(w.level, "the first entry cannot become RAM"))
        }
    }

    /// `RTT_SET_RIPAS(rd, rec, base, top)`: completes part of a REC's pending RIPAS change
    /// request; x1 = how far it got.
    pub(crate) fn cmd_rtt_set_ripas(&self, regs: &Regs, out: &mut Regs) -> Result<(), RmiError> {
        let (rd_addr, rec_addr, base, top) = (regs[1], regs[2], regs[3], regs[4]);
        if top <= base || !cca_abi::granule_aligned(top) {
            return Err(RmiError::input("top must be 4 KiB aligned and above base"));
        }
        let (g_rd, g_rec) = self
            .granules
            .lock_two(
                (Pa::new(rd_addr), GranuleState::Rd),
                (Pa::new(rec_addr), GranuleState::Rec),
            )
            .map_err(|e| {
                let (pa, st) = if e.which == 0 {
                    (Pa::new(rd_addr), GranuleState::Rd)
                } else {
                    (Pa::new(rec_addr), GranuleState::Rec)
                };
                RmiError::input_lock(pa, st, e.error)
            })?;
        if g_rec.refcount() != 0 {
            return Err(RmiError::rec("the REC is running"));
        }
        let mut rec = self.rec_read(&g_rec);
        if rec.rd != rd_addr {
            return Err(RmiError::rec("the REC belongs to another realm"));
        }
        if base != rec.ripas_addr || top > rec.ripas_top {
            return Err(RmiError::new(
                RmiStatus::ErrorInput,
                crate::error::Reason::Value(
                    "base is not the next address of the REC's RIPAS change request, or top is beyond it",
                    base,
                ),
            ));
        }
        let ripas = match rec.ripas_value {
            1 => Ripas::Ram,
            _ => Ripas::Empty,
        };
        let change_destroyed = rec.ripas_change_destroyed != 0;
        let s2 = self.rd_read(&g_rd).s2();
        let w = self.walk(&s2, self.lock_root(&s2), base, s2tt::PAGE_LEVEL);
        if !s2.valid_map_addr(base, w.level) {
            return Err(RmiError::rtt(w.level, "base is inside a larger entry"));
        }
        let size = s2tt::map_size(w.level);
        let mut addr = base;
        for idx in w.index..s2tt::entries(w.level) {
            if addr + size > top {
                break;
            }
            let e = Entry::decode(self.rtt_read(&w.table, idx), w.level, s2.lpa2);
            let (new, tlbi) = match (ripas, e) {
                (
                    _,
                    Entry::UnassignedNs | Entry::AssignedNs(_) | Entry::Table(_) | Entry::Invalid,
                ) => break,
                (Ripas::Ram, Entry::UnassignedEmpty) => (Some(s2tt::unassigned(Ripas::Ram)), false),
                (Ripas::Ram, Entry::UnassignedDestroyed) if change_destroyed => {
                    (Some(s2tt::unassigned(Ripas::Ram)), false)
                }
                (Ripas::Ram, Entry::AssignedEmpty(pa)) => (
                    Some(s2tt::assigned(pa, w.level, Ripas::Ram, s2.lpa2)),
                    false,
                ),
                (Ripas::Ram, Entry::AssignedDestroyed(pa)) if change_destroyed => (
                    Some(s2tt::assigned(pa, w.level, Ripas::Ram, s2.lpa2)),
                    false,
                ),
                (Ripas::Ram, Entry::UnassignedDestroyed | Entry::AssignedDestroyed(_)) => break,
                (Ripas::Ram, _) => (None, false),
                (_, Entry::UnassignedRam | Entry::UnassignedDestroyed) => {
                    (Some(s2tt::unassigned(Ripas::Empty)), false)
                }
                (_, Entry::AssignedRam(pa) | Entry::AssignedDestroyed(pa)) => (
                    Some(s2tt::assigned(pa, w.level, Ripas::Empty, s2.lpa2)),
                    true,
                ),
                (_, _) => (None, false),
            };
            if let Some(d) = new {
                self.rtt_write(&w.table, idx, d);
                if tlbi {
                    self.tlbi_entry(&s2, addr, w.level);
                }
            }
            addr += size;
        }
        if addr > base {
            rec.ripas_addr = addr;
            self.rec_write(&g_rec, &rec);
            out[1] = addr;
            Ok(())
        } else {
            Err(RmiError::rtt(
                w.level,
                "the first entry cannot change RIPAS",
            ))
        }
    }
}
