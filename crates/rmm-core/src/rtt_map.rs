//! Mapping memory into a realm: `RTT_DATA_MAP_INIT`, `RTT_DATA_MAP`, `RTT_UNPROT_MAP`
//! (TF-RMM's `rtt_map.c`), and the unmap commands `RTT_DATA_UNMAP`, `RTT_UNPROT_UNMAP`
//! (`rtt_unmap.c`).
//!
//! The range commands work on one leaf RTT per call, at the level of the first block
//! descriptor (map) or at the level the walk reaches (unmap), and return x1 = the first IPA
//! not processed; progress followed by a failure is SUCCESS with x1 < top. `RTT_DATA_MAP`,
//! `RTT_DATA_UNMAP` and `RTT_UNPROT_UNMAP` reserve an SRO context for the duration of the
//! call, as TF-RMM does (so they can return `RMI_BLOCKED` or `RMI_BUSY`), but never yield:
//! like TF-RMM's default build they complete synchronously.

use cca_abi::rmi::{data_flags, map_flags, RealmState, Ripas, RmiFid, RmiStatus};
use cca_abi::GRANULE_SIZE;

use crate::addr_list::{InList, OutList, MAX_RANGES};
use crate::dispatch::Regs;
use crate::error::{Reason, RmiError};
use crate::granule::GranuleState;
use crate::pa::Pa;
use crate::platform::Platform;
use crate::realm::{Rd, S2Ctx};
use crate::rmm::Rmm;
use crate::s2tt::{self, Entry};

/// Which range map command runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MapKind {
    Data,
    Unprot,
}

/// The validated inputs of a range map.
struct MapInputs {
    list: InList,
    level: i8,
    size: u64,
}

impl<'a, P: Platform> Rmm<'a, P> {
    /// `RTT_DATA_MAP_INIT(rd, data, ipa, src, flags)`.
    pub(crate) fn cmd_data_map_init(&self, regs: &Regs, _out: &mut Regs) -> Result<(), RmiError> {
        let (rd_addr, data_addr, ipa, src_addr, flags) =
            (regs[1], regs[2], regs[3], regs[4], regs[5]);
        if flags != data_flags::NO_MEASURE_CONTENT && flags != data_flags::MEASURE_CONTENT {
            return Err(RmiError::input_value("flags must be 0 or 1", flags));
        }
        if data_addr == rd_addr {
            return Err(RmiError::input("the data granule is the RD"));
        }
        let src = Pa::new(src_addr);
        let ns_ok = self
            .granules
            .granule(src)
            .is_some_and(|g| g.state_unlocked() == GranuleState::Ns);
        if !ns_ok {
            return Err(RmiError::input_value(
                "the source is not a tracked NS granule",
                src_addr,
            ));
        }
        let g_rd = self.lock_rd(rd_addr)?;
        let mut rd = self.rd_read(&g_rd);
        if rd.realm_state() != RealmState::New {
            return Err(RmiError::realm("the realm is not NEW"));
        }
        let s2 = rd.s2();
        if !s2.in_par(ipa) || !s2.valid_map_addr(ipa, s2tt::PAGE_LEVEL) {
            return Err(RmiError::input_value(
                "the IPA is not a 4 KiB aligned protected address",
                ipa,
            ));
        }
        if !s2.lpa2 && data_addr >= 1 << 48 {
            return Err(RmiError::input_value(
                "the data granule is above 48 bits in a realm without LPA2",
                data_addr,
            ));
        }
        let mut w = self.walk(&s2, self.lock_root(&s2), ipa, s2tt::PAGE_LEVEL);
        if w.level != s2tt::PAGE_LEVEL {
            return Err(RmiError::rtt(
                w.level,
                "there is no level 3 RTT for the IPA",
            ));
        }
        let e = Entry::decode(self.rtt_read(&w.table, w.index), w.level, s2.lpa2);
        if !e.is_unassigned() {
            return Err(RmiError::rtt(
                s2tt::PAGE_LEVEL,
                "the entry is not unassigned",
            ));
        }
        let data = Pa::new(data_addr);
        let mut g_data = self
            .granules
            .lock_while_state(data, GranuleState::Delegated)
            .map_err(|err| RmiError::input_lock(data, GranuleState::Delegated, err))?;
        // The source is copied straight into the data granule under the source's lock (a
        // failure is reported here, after the RTT checks, where TF-RMM reads it), then
        // measured from there, so what is measured is what the realm gets.
        self.copy_ns_page_to(data, src)?;
        let mut m = cca_measure::Measurement {
            algo: rd.algorithm(),
            slot: rd.rim,
        };
        self.platform
            .realm_inspect(data, GRANULE_SIZE as usize, &mut |bytes| {
                if let Ok(page) = <&[u8; GRANULE_SIZE as usize]>::try_from(bytes) {
                    m.extend_data(ipa, flags, page);
                }
            });
        rd.rim = m.slot;
        self.rtt_write(
            &w.table,
            w.index,
            s2tt::assigned(data_addr, s2tt::PAGE_LEVEL, Ripas::Ram, s2.lpa2),
        );
        w.table.refcount_add(1);
        g_data.set_state(GranuleState::Data);
        self.rd_write(&g_rd, &rd);
        Ok(())
    }

    /// Copies the NS granule `src` into the locked DELEGATED granule `data` while holding the
    /// source's lock (it must still be NS). On a fault the partly written granule is scrubbed
    /// (DELEGATED granules hold nothing of the host's after a failed command).
    fn copy_ns_page_to(&self, data: Pa, src: Pa) -> Result<(), RmiError> {
        let g = self
            .granules
            .lock_while_state(src, GranuleState::Ns)
            .map_err(|e| RmiError::input_lock(src, GranuleState::Ns, e))?;
        let r = self.platform.ns_to_realm(data, src);
        drop(g);
        r.map_err(|_| {
            self.platform.realm_zero(data);
            RmiError::new(RmiStatus::ErrorInput, Reason::NsFault(src))
        })
    }

    /// TF-RMM's `validate_map_inputs_common`.
    fn validate_map_inputs(
        &self,
        rd: &Rd,
        base: u64,
        top: u64,
        flags: u64,
        oaddr: u64,
        kind: MapKind,
    ) -> Result<MapInputs, RmiError> {
        let state = rd.realm_state();
        if state != RealmState::New && state != RealmState::Active {
            return Err(RmiError::realm("the realm is not NEW or ACTIVE"));
        }
        if top <= base {
            return Err(RmiError::input("top must be above base"));
        }
        let list = match flags & map_flags::ADDR_TYPE_MASK {
            map_flags::ADDR_TYPE_SINGLE => InList::single(oaddr),
            map_flags::ADDR_TYPE_LIST => {
                let offset = oaddr & (GRANULE_SIZE - 1);
                if offset % 8 != 0 {
                    return Err(RmiError::input_value(
                        "the list is not 8-byte aligned",
                        oaddr,
                    ));
                }
                let remaining = (GRANULE_SIZE - offset) / 8;
                let count = ((flags >> map_flags::LIST_COUNT_SHIFT) & map_flags::LIST_COUNT_MASK)
                    .min(remaining);
                if count == 0 {
                    return Err(RmiError::input("the list count is 0"));
                }
                self.read_host_list(oaddr, count as usize)?
            }
            _ => {
                return Err(RmiError::input_value(
                    "the address type must be SINGLE or LIST",
                    flags & map_flags::ADDR_TYPE_MASK,
                ))
            }
        };
        let first = list.first().ok_or_else(|| RmiError::input("empty list"))?;
        let level = 3 - first.size as i8;
        if kind == MapKind::Data && first.undelegated {
            return Err(RmiError::input("the descriptors must be DELEGATED"));
        }
        let size = s2tt::map_size(level);
        let s2 = rd.s2();
        let last = top.wrapping_sub(GRANULE_SIZE);
        let in_par = s2.in_par(base) && s2.in_par(last);
        if !(s2tt::MIN_BLOCK_LEVEL..=s2tt::PAGE_LEVEL).contains(&level)
            || !s2.valid_map_addr(base, level)
            || !s2.valid_map_addr(last, s2tt::PAGE_LEVEL)
            || in_par != (kind == MapKind::Data)
        {
            return Err(RmiError::input(
                "the range or the block size is invalid for this realm",
            ));
        }
        if top - base < size {
            return Err(RmiError::rtt(level, "the range is smaller than one block"));
        }
        Ok(MapInputs { list, level, size })
    }

    /// The per-block checks of TF-RMM's `map_pop_next_block`.
    fn pop_block(
        list: &mut InList,
        s2: &S2Ctx,
        inp: (i8, u64),
        check_state: bool,
        out_top: u64,
        top: u64,
    ) -> Result<u64, RmiError> {
        let (level, size) = inp;
        let (pa, desc_level, undelegated) = list
            .pop_block()
            .ok_or_else(|| RmiError::input("the descriptors are exhausted"))?;
        if check_state && undelegated {
            return Err(RmiError::input("a descriptor is not DELEGATED"));
        }
        if desc_level != level {
            return Err(RmiError::rtt(level, "a descriptor has another block size"));
        }
        if out_top.checked_add(size).is_none_or(|e| e > top) {
            return Err(RmiError::rtt(
                level,
                "the next block does not fit below top",
            ));
        }
        if pa & (size - 1) != 0 {
            return Err(RmiError::input_value(
                "a block is not aligned to its size",
                pa,
            ));
        }
        if !s2.lpa2 && pa.checked_add(size).is_none_or(|e| e > 1 << 48) {
            return Err(RmiError::input_value(
                "a block is above 48 bits in a realm without LPA2",
                pa,
            ));
        }
        Ok(pa)
    }

    /// `RTT_DATA_MAP(rd, base, top, flags, oaddr)`: x1 = the first IPA not mapped.
    pub(crate) fn cmd_data_map(&self, regs: &Regs, out: &mut Regs) -> Result<(), RmiError> {
        let (rd_addr, base, top, flags, oaddr) = (regs[1], regs[2], regs[3], regs[4], regs[5]);
        let _sro = self.sro_reserve(RmiFid::RTT_DATA_MAP, 0, RmiFid::OP_CONTINUE)?;
        let g_rd = self.lock_rd(rd_addr)?;
        let rd = self.rd_read(&g_rd);
        let MapInputs {
            mut list,
            level,
            size,
        } = self.validate_map_inputs(&rd, base, top, flags, oaddr, MapKind::Data)?;
        let s2 = rd.s2();
        let root = self.lock_root(&s2);
        drop(g_rd);
        let mut w = self.walk(&s2, root, base, level);
        if w.level != level {
            return Err(RmiError::rtt(
                w.level,
                "the walk ended above the block level",
            ));
        }
        let mut out_top = base;
        let mut err = None;
        for idx in w.index..s2tt::entries(level) {
            let pa = match Self::pop_block(&mut list, &s2, (level, size), true, out_top, top) {
                Ok(pa) => pa,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            };
            let e = Entry::decode(self.rtt_read(&w.table, idx), level, s2.lpa2);
            match e {
                Entry::AssignedRam(old)
                | Entry::AssignedEmpty(old)
                | Entry::AssignedDestroyed(old) => {
                    if old != pa {
                        err = Some(RmiError::rtt(level, "the entry maps another PA"));
                        break;
                    }
                }
                e if e.is_unassigned() => {
                    if let Err(x) = self.claim_block(pa, size) {
                        err = Some(x);
                        break;
                    }
                    self.rtt_write(&w.table, idx, s2tt::assigned(pa, level, e.ripas(), s2.lpa2));
                    w.table.refcount_add(1);
                }
                _ => {
                    err = Some(RmiError::rtt(level, "the entry is not unassigned"));
                    break;
                }
            }
            out_top += size;
        }
        Self::finish_map(out, base, out_top, err)
    }

    /// Moves the granules of a block DELEGATED -> DATA, zeroing each; on failure returns the
    /// ones already moved to DELEGATED and fails with ERROR_INPUT.
    fn claim_block(&self, pa: u64, size: u64) -> Result<(), RmiError> {
        let n = size / GRANULE_SIZE;
        for i in 0..n {
            let g = Pa::new(pa + i * GRANULE_SIZE);
            match self.granules.lock_while_state(g, GranuleState::Delegated) {
                Ok(mut l) => {
                    self.platform.realm_zero(g);
                    l.set_state(GranuleState::Data);
                }
                Err(e) => {
                    for j in (0..i).rev() {
                        let b = Pa::new(pa + j * GRANULE_SIZE);
                        if let Ok(mut l) = self.granules.lock(b, GranuleState::Data) {
                            self.scrub_to_delegated(&mut l);
                        }
                    }
                    return Err(RmiError::input_lock(g, GranuleState::Delegated, e));
                }
            }
        }
        Ok(())
    }

    /// TF-RMM's `map_partial_progress_finalize`.
    fn finish_map(
        out: &mut Regs,
        base: u64,
        out_top: u64,
        err: Option<RmiError>,
    ) -> Result<(), RmiError> {
        match err {
            Some(e) if out_top == base => Err(e),
            Some(e) => {
                log::trace!("range map stopped at {out_top:#x} after progress: {e}");
                out[1] = out_top;
                Ok(())
            }
            None => {
                out[1] = out_top;
                Ok(())
            }
        }
    }

    /// `RTT_UNPROT_MAP(rd, base, top, flags, oaddr)`: x1 = the first IPA not mapped.
    pub(crate) fn cmd_unprot_map(&self, regs: &Regs, out: &mut Regs) -> Result<(), RmiError> {
        let (rd_addr, base, top, flags, oaddr) = (regs[1], regs[2], regs[3], regs[4], regs[5]);
        let g_rd = self.lock_rd(rd_addr)?;
        let rd = self.rd_read(&g_rd);
        let MapInputs {
            mut list,
            level,
            size,
        } = self.validate_map_inputs(&rd, base, top, flags, oaddr, MapKind::Unprot)?;
        let memattr = (flags >> map_flags::MEMATTR_SHIFT) & map_flags::MEMATTR_MASK;
        let s2ap = (flags >> map_flags::S2AP_SHIFT) & map_flags::S2AP_MASK;
        if s2ap & !(map_flags::S2AP_DIRECT_READ | map_flags::S2AP_DIRECT_WRITE) != 0 {
            return Err(RmiError::input_value("S2AP has undefined bits set", s2ap));
        }
        let mut attrs = memattr << 2;
        if s2ap & map_flags::S2AP_DIRECT_READ != 0 {
            attrs |= 1 << 6;
        }
        if s2ap & map_flags::S2AP_DIRECT_WRITE != 0 {
            attrs |= 1 << 7;
        }
        let s2 = rd.s2();
        let root = self.lock_root(&s2);
        drop(g_rd);
        let w = self.walk(&s2, root, base, level);
        if w.level != level {
            return Err(RmiError::rtt(
                w.level,
                "the walk ended above the block level",
            ));
        }
        let mut out_top = base;
        let mut err = None;
        for idx in w.index..s2tt::entries(level) {
            let pa = match Self::pop_block(&mut list, &s2, (level, size), false, out_top, top) {
                Ok(pa) => pa,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            };
            let host = pa | attrs;
            if !s2tt::host_ns_valid(host, level, s2.lpa2) {
                err = Some(RmiError::input_value(
                    "invalid NS attributes (MemAttr)",
                    host,
                ));
                break;
            }
            let new = s2tt::assigned_ns(host, level, s2.lpa2);
            let cur = self.rtt_read(&w.table, idx);
            match Entry::decode(cur, level, s2.lpa2) {
                Entry::UnassignedNs => self.rtt_write(&w.table, idx, new),
                Entry::AssignedNs(_) if cur == new => {}
                _ => {
                    err = Some(RmiError::rtt(level, "the entry is not unassigned_ns"));
                    break;
                }
            }
            out_top += size;
        }
        Self::finish_map(out, base, out_top, err)
    }

    /// `RTT_DATA_UNMAP(rd, base, top, flags, oaddr)`.
    pub(crate) fn cmd_data_unmap(&self, regs: &Regs, out: &mut Regs) -> Result<(), RmiError> {
        self.unmap(regs, out, MapKind::Data)
    }

    /// `RTT_UNPROT_UNMAP(rd, base, top, flags, oaddr)`.
    pub(crate) fn cmd_unprot_unmap(&self, regs: &Regs, out: &mut Regs) -> Result<(), RmiError> {
        self.unmap(regs, out, MapKind::Unprot)
    }

    /// The unmap commands: x1 = the first IPA not processed, x2 = the freed range (SINGLE),
    /// x3 = descriptors written (LIST).
    fn unmap(&self, regs: &Regs, out: &mut Regs, kind: MapKind) -> Result<(), RmiError> {
        let (rd_addr, base, top, flags, oaddr) = (regs[1], regs[2], regs[3], regs[4], regs[5]);
        let fid = if kind == MapKind::Data {
            RmiFid::RTT_DATA_UNMAP
        } else {
            RmiFid::RTT_UNPROT_UNMAP
        };
        let _sro = self.sro_reserve(fid, 0, RmiFid::OP_CONTINUE)?;
        let g_rd = self.lock_rd(rd_addr)?;
        let rd = self.rd_read(&g_rd);
        let s2 = rd.s2();
        // TF-RMM's validate_unmap_inputs.
        if !cca_abi::granule_aligned(base) || !cca_abi::granule_aligned(top) || top <= base {
            return Err(RmiError::input(
                "base and top must be 4 KiB aligned, top above base",
            ));
        }
        let last = top - GRANULE_SIZE;
        if !s2.valid_map_addr(base, 3) || !s2.valid_map_addr(last, 3) {
            return Err(RmiError::input("the range is outside the IPA space"));
        }
        let protected = kind == MapKind::Data;
        if protected && (!s2.in_par(base) || !s2.in_par(last)) {
            return Err(RmiError::input(
                "the range is not inside the protected IPA range",
            ));
        }
        if !protected && (s2.in_par(base) || s2.in_par(last)) {
            return Err(RmiError::input(
                "the range is not inside the unprotected IPA range",
            ));
        }
        let addr_type = flags & map_flags::ADDR_TYPE_MASK;
        let list_count = (flags >> map_flags::LIST_COUNT_SHIFT) & map_flags::LIST_COUNT_MASK;
        let max = match addr_type {
            map_flags::ADDR_TYPE_NONE | map_flags::ADDR_TYPE_SINGLE => {
                if oaddr != 0 || list_count != 0 {
                    return Err(RmiError::input(
                        "oaddr and the list count must be 0 unless the type is LIST",
                    ));
                }
                if addr_type == map_flags::ADDR_TYPE_SINGLE {
                    1
                } else {
                    MAX_RANGES
                }
            }
            map_flags::ADDR_TYPE_LIST => {
                if list_count == 0 {
                    return Err(RmiError::input("the list count is 0"));
                }
                if oaddr % 8 != 0 {
                    return Err(RmiError::input_value(
                        "the list is not 8-byte aligned",
                        oaddr,
                    ));
                }
                let page = Pa::new(oaddr & !(GRANULE_SIZE - 1));
                let ok = self
                    .granules
                    .granule(page)
                    .is_some_and(|g| g.state_unlocked() == GranuleState::Ns);
                if !ok {
                    return Err(RmiError::input_value(
                        "the output list is not in a tracked NS granule",
                        oaddr,
                    ));
                }
                let remaining = MAX_RANGES - ((oaddr & (GRANULE_SIZE - 1)) / 8) as usize;
                (list_count as usize).min(MAX_RANGES).min(remaining)
            }
            _ => return Err(RmiError::input_value("unknown address type", addr_type)),
        };
        let root = self.lock_root(&s2);
        drop(g_rd);
        let mut w = self.walk(&s2, root, base, s2tt::PAGE_LEVEL);
        let level = w.level;
        let size = s2tt::map_size(level);
        if base & (size - 1) != 0 {
            return Err(RmiError::rtt(level, "base is inside a larger entry"));
        }
        let mut list = OutList::<MAX_RANGES>::new(max);
        let mut addr = base;
        let mut idx = w.index;
        let mut prev_pa: Option<u64> = None;
        let first = w.index;
        while idx < s2tt::entries(level) {
            let e = Entry::decode(self.rtt_read(&w.table, idx), level, s2.lpa2);
            let fits = addr.checked_add(size).is_some_and(|end| end <= top);
            if !e.is_live() {
                if !fits {
                    if idx == first {
                        return Err(RmiError::rtt(level, "the entry is larger than the range"));
                    }
                    break;
                }
                idx += 1;
                addr += size;
                continue;
            }
            if let Entry::Table(_) = e {
                if idx == first {
                    return Err(RmiError::rtt(level, "the entry is a table"));
                }
                break;
            }
            if !fits {
                if idx == first {
                    return Err(RmiError::rtt(level, "the entry is larger than the range"));
                }
                break;
            }
            let pa = match (kind, e) {
                (
                    MapKind::Data,
                    Entry::AssignedRam(pa)
                    | Entry::AssignedEmpty(pa)
                    | Entry::AssignedDestroyed(pa),
                ) => pa,
                (MapKind::Unprot, Entry::AssignedNs(d)) => s2tt::desc_pa(d, level, s2.lpa2),
                _ => {
                    if idx == first {
                        return Err(RmiError::rtt(level, "the entry is not of this kind"));
                    }
                    break;
                }
            };
            if addr_type == map_flags::ADDR_TYPE_SINGLE && prev_pa.is_some_and(|p| pa != p + size) {
                break;
            }
            if !list.add_block(pa, level, kind == MapKind::Unprot) {
                break;
            }
            let new = match e {
                Entry::AssignedEmpty(_) => s2tt::unassigned(Ripas::Empty),
                Entry::AssignedNs(_) => s2tt::unassigned_ns(),
                _ => s2tt::unassigned(Ripas::Destroyed),
            };
            self.rtt_write(&w.table, idx, new);
            // Invalidate what the MMU may hold before the memory is released.
            if e.is_valid() {
                self.tlbi_entry(&s2, addr, level);
            }
            if e.holds_ref() {
                w.table.refcount_sub(1);
                for k in 0..size / GRANULE_SIZE {
                    let g = Pa::new(pa + k * GRANULE_SIZE);
                    match self.granules.lock_while_state(g, GranuleState::Data) {
                        Ok(mut l) => self.scrub_to_delegated(&mut l),
                        Err(_) => panic!("mapped data granule {g} is not DATA"),
                    }
                }
            }
            prev_pa = Some(pa);
            idx += 1;
            addr += size;
        }
        drop(w);
        out[1] = addr;
        out[2] = 0;
        out[3] = 0;
        if !list.is_empty() {
            match addr_type {
                map_flags::ADDR_TYPE_SINGLE => out[2] = Self::desc_without_state(list.descs()[0]),
                map_flags::ADDR_TYPE_LIST => {
                    let cap = list.len();
                    out[3] = self.write_host_list(&mut list, oaddr, cap).unwrap_or(0) as u64;
                }
                _ => {}
            }
        }
        Ok(())
    }
}
