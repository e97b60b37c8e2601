//! What the host checks after each call, and what it learns from the results (the granules
//! it delegated, the objects the calls created).

use super::{FuzzHw, Fuzzer, Io, Tracker, PATTERN};
use crate::rmi::{Conduit, HostMem};
use cca_abi::rmi::{RmiClass, RmiFid, RmiReturn, RmiStatus, RMI_VERSION_2_0};
use cca_abi::smccc::{SMC_UNKNOWN, SVE_HINT};
use cca_abi::GRANULE_SIZE as G;

/// The RMI command x0 names (the SVE hint ignored), if any; `None` when bits above 31 are
/// set or the number is no command.
pub(crate) fn fid_of(x0: u64) -> Option<RmiFid> {
    if x0 >> 32 != 0 {
        return None;
    }
    RmiFid::from_fid(x0 as u32 & !SVE_HINT)
}

/// True for the commands that write Non-secure memory the host names.
pub(crate) fn writes_ns(fid: RmiFid) -> bool {
    matches!(
        fid,
        RmiFid::RMM_CONFIG_GET
            | RmiFid::REC_ENTER
            | RmiFid::RTT_DATA_UNMAP
            | RmiFid::RTT_UNPROT_UNMAP
            | RmiFid::OP_MEM_RECLAIM
    )
}

/// The register positions of a command's Non-secure output address.
fn ns_outputs(fid: RmiFid) -> &'static [usize] {
    match fid {
        RmiFid::RMM_CONFIG_GET => &[1],
        RmiFid::REC_ENTER | RmiFid::OP_MEM_RECLAIM => &[2],
        RmiFid::RTT_DATA_UNMAP | RmiFid::RTT_UNPROT_UNMAP => &[5],
        _ => &[],
    }
}

/// The register positions a command needs to hold a granule the RMM tracks (an object, or
/// a delegated granule to make one), and those that must be the host's NS pages: a call
/// with a never-valid address in any of them cannot succeed.
fn addr_positions(fid: RmiFid) -> (&'static [usize], &'static [usize]) {
    match fid {
        RmiFid::REALM_CREATE => (&[1], &[2]),
        RmiFid::REALM_ACTIVATE
        | RmiFid::REALM_TERMINATE
        | RmiFid::REALM_DESTROY
        | RmiFid::RTT_DESTROY
        | RmiFid::RTT_FOLD
        | RmiFid::RTT_READ_ENTRY
        | RmiFid::RTT_INIT_RIPAS
        | RmiFid::RTT_DATA_MAP
        | RmiFid::RTT_UNPROT_MAP
        | RmiFid::RTT_DATA_UNMAP
        | RmiFid::RTT_UNPROT_UNMAP
        | RmiFid::REC_DESTROY => (&[1], &[]),
        RmiFid::RTT_CREATE | RmiFid::RTT_SET_RIPAS | RmiFid::PSCI_COMPLETE => (&[1, 2], &[]),
        RmiFid::RTT_DATA_MAP_INIT => (&[1, 2], &[4]),
        RmiFid::REC_CREATE => (&[1, 2], &[3]),
        RmiFid::REC_ENTER => (&[1], &[2]),
        RmiFid::RMM_CONFIG_GET => (&[], &[1]),
        _ => (&[], &[]),
    }
}

/// Bytes an RTT at `level` covers (what its parent entry maps).
fn rtt_span(level: u64) -> Option<u64> {
    (1..=3)
        .contains(&level)
        .then(|| 1u64 << (12 + 9 * (4 - level)))
}

const INPUT: u64 = RmiStatus::ErrorInput as u64;

impl Fuzzer {
    /// The checks after one call (`regs` in, `got` out).
    pub(crate) fn check<C: Conduit, M: HostMem, H: FuzzHw>(
        &mut self,
        io: &mut Io<'_, C, M, H>,
        regs: &[u64; 8],
        got: &[u64; 8],
    ) {
        self.check_answer(regs, got);
        // A range (un)delegation checks memory once the shadow knows what it moved.
        if !matches!(
            fid_of(regs[0]),
            Some(RmiFid::GRANULE_RANGE_DELEGATE | RmiFid::GRANULE_RANGE_UNDELEGATE)
        ) {
            self.check_memory(io, regs, got);
        }
    }

    fn check_answer(&mut self, regs: &[u64; 8], got: &[u64; 8]) {
        let x0 = got[0];
        let defined = x0 == SMC_UNKNOWN || RmiReturn::from_reg(x0).is_some();
        if !defined {
            self.finding("x0 is neither an RMI status nor SMC_UNKNOWN", *regs, *got);
            return;
        }
        let Some(fid) = fid_of(regs[0]) else {
            if x0 != SMC_UNKNOWN && (regs[0] >> 32 != 0 || (regs[0] as u32) >> 24 == 0xC4) {
                self.finding(
                    "a function identifier no command has did not get SMC_UNKNOWN",
                    *regs,
                    *got,
                );
            }
            return;
        };
        let exact = match fid.class() {
            RmiClass::Unimplemented => Some(SMC_UNKNOWN),
            RmiClass::DeviceAssignment | RmiClass::Planes => {
                Some(RmiStatus::ErrorNotSupported as u64)
            }
            RmiClass::Core => match fid {
                RmiFid::FEATURES => Some(0),
                RmiFid::RMM_CONFIG_SET | RmiFid::RMM_ACTIVATE => {
                    Some(RmiStatus::ErrorGlobal as u64)
                }
                RmiFid::GPT_L1_CREATE => Some(if regs[1] % (1 << 30) == 0 {
                    RmiStatus::ErrorGpt as u64
                } else {
                    INPUT
                }),
                RmiFid::VERSION => {
                    let v = RMI_VERSION_2_0;
                    let want = if regs[1] == v { 0 } else { INPUT };
                    if got[..3] != [want, v, v] {
                        self.finding("RMI_VERSION gave another answer", *regs, *got);
                    }
                    None
                }
                _ => None,
            },
        };
        if let Some(want) = exact {
            if x0 != want {
                self.finding("a command whose answer is fixed gave another", *regs, *got);
            }
            return;
        }
        let progressed = x0 == 0 || x0 & 0xff == RmiStatus::Incomplete as u64;
        if !progressed {
            return;
        }
        let (objects, pages) = if fid == RmiFid::REC_CREATE && x0 != 0 {
            // REC_CREATE starts its operation once the REC granule is locked; the RD and
            // the parameters are read when the operation continues.
            (&[2usize][..], &[][..])
        } else {
            addr_positions(fid)
        };
        let h = self.plan.hostile;
        if objects.iter().any(|&i| h.never_valid(regs[i])) {
            self.finding(
                "a command naming memory that is never a granule (carve-out, Root, MMIO, \
                 unbacked, unaligned) succeeded",
                *regs,
                *got,
            );
        }
        if pages
            .iter()
            .any(|&i| h.never_valid(regs[i]) || self.shadow.delegated(regs[i]))
        {
            self.finding(
                "a command read or wrote an NS page that is not the host's (never valid, or \
                 delegated) and succeeded",
                *regs,
                *got,
            );
        }
    }

    /// One watched word, one granule of the pool: what the host reads must be what it
    /// expects.
    fn check_memory<C: Conduit, M: HostMem, H: FuzzHw>(
        &mut self,
        io: &mut Io<'_, C, M, H>,
        regs: &[u64; 8],
        got: &[u64; 8],
    ) {
        let c = self.plan.canaries;
        if c.granules > 0 {
            let k = self.canary_cursor;
            self.canary_cursor = k.wrapping_add(1);
            let pa = c.granule(k % c.granules) + (k / c.granules * 8) % G;
            let read = io.mem.probe_read(pa);
            if read != Some(PATTERN) {
                // got: the word's address, what it holds (and 1 in x2 if reading it faulted).
                self.finding(
                    "a watched NS page changed",
                    *regs,
                    [
                        pa,
                        read.unwrap_or(0),
                        u64::from(read.is_none()),
                        0,
                        0,
                        0,
                        0,
                        got[0],
                    ],
                );
            }
        }
        let pool = self.plan.pool;
        let pa = pool.granule(self.rng.below(pool.granules)) + self.rng.below(G / 8) * 8;
        let i = (pa - pool.base) / G;
        let flags = self.shadow.flags[i as usize];
        let read = io.mem.probe_read(pa);
        if flags & super::DELEGATED != 0 {
            if read.is_some() {
                self.finding(
                    "the host read a delegated granule",
                    *regs,
                    [pa, 0, 0, 0, 0, 0, 0, got[0]],
                );
            }
        } else {
            match read {
                None => self.finding(
                    "an NS granule faulted",
                    *regs,
                    [pa, 0, 0, 0, 0, 0, 0, got[0]],
                ),
                Some(v) if flags & super::EXPECT_ZERO != 0 && v != 0 => self.finding(
                    "an undelegated granule was not scrubbed",
                    *regs,
                    [pa, v, 0, 0, 0, 0, 0, got[0]],
                ),
                Some(v)
                    if flags & super::EVER == 0
                        && v != PATTERN
                        && !self.shadow.maybe_written(pa) =>
                {
                    self.finding(
                        "an NS granule the RMM had no reason to write changed",
                        *regs,
                        [pa, v, 0, 0, 0, 0, 0, got[0]],
                    )
                }
                Some(_) => {}
            }
        }
    }

    /// Learns from a call's result: the objects it created or destroyed, the NS pages it
    /// may have written.
    pub(crate) fn track(&mut self, regs: &[u64; 8], got: &[u64; 8]) {
        let Some(fid) = fid_of(regs[0]) else {
            return;
        };
        for &i in ns_outputs(fid) {
            self.shadow.dirty(regs[i] & !(G - 1));
        }
        let t = &mut self.tracker;
        let ok = got[0] == 0;
        let incomplete = got[0] & 0xff == RmiStatus::Incomplete as u64 && got[0] >> 16 == 0;
        let mut full = false;
        match fid {
            RmiFid::REALM_CREATE if ok => full |= !Tracker::add(&mut t.rds, regs[1]),
            RmiFid::REALM_DESTROY if ok => {
                let rd = regs[1];
                t.rds.retain(|&r| r != rd);
                t.rtts.retain(|&(r, _, _)| r != rd);
                t.maps.retain(|&(r, _, _, _)| r != rd);
            }
            RmiFid::RTT_CREATE if ok => {
                if let Some(span) = rtt_span(regs[4]) {
                    full |= !Tracker::add(&mut t.rtts, (regs[1], regs[3] & !(span - 1), regs[4]));
                }
            }
            RmiFid::RTT_DESTROY | RmiFid::RTT_FOLD if ok => {
                if let Some(span) = rtt_span(regs[3]) {
                    let key = (regs[1], regs[2] & !(span - 1), regs[3]);
                    t.rtts.retain(|&r| r != key);
                }
            }
            RmiFid::RTT_DATA_MAP_INIT if ok => {
                full |= !Tracker::add(
                    &mut t.maps,
                    (regs[1], regs[3], regs[3].wrapping_add(G), true),
                )
            }
            RmiFid::RTT_DATA_MAP | RmiFid::RTT_UNPROT_MAP if ok => {
                let protected = fid == RmiFid::RTT_DATA_MAP;
                full |= !Tracker::add(&mut t.maps, (regs[1], regs[2], got[1], protected));
            }
            RmiFid::REC_CREATE if incomplete => {
                full |= !Tracker::add(&mut t.recs, regs[2]);
                full |= !t.note_op(got[1], got[0], got[2]);
            }
            RmiFid::REC_DESTROY if incomplete => full |= !t.note_op(got[1], got[0], got[2]),
            RmiFid::OP_MEM_DONATE | RmiFid::OP_MEM_RECLAIM | RmiFid::OP_CONTINUE
                if incomplete && t.handles.iter().any(|e| e.0 == regs[1]) =>
            {
                // The operation goes on; it now waits for what this answer says.
                t.note_op(regs[1], got[0], got[2]);
            }
            RmiFid::OP_CONTINUE | RmiFid::OP_CANCEL if ok => {
                let h = regs[1];
                t.handles.retain(|e| e.0 != h);
            }
            _ => {}
        }
        if full {
            self.finding(
                "the fuzzer's object list is full: the sweep may miss objects",
                *regs,
                *got,
            );
        }
    }

    /// A range (un)delegation of `[regs[1], regs[2])`, predicted from the host's shadow of
    /// its pool: where the first granule is not the host's to move (or never valid) the call
    /// fails at the base; otherwise it moves granules from the base on and never one the
    /// host did not own. The moved granules fault (delegated) or read back scrubbed.
    pub(crate) fn range_call<C: Conduit, M: HostMem, H: FuzzHw>(
        &mut self,
        io: &mut Io<'_, C, M, H>,
        delegate: bool,
        regs: [u64; 8],
    ) -> [u64; 8] {
        let got = self.call(io, regs);
        self.range_outcome(io, delegate, regs, got);
        // The shadow knows what moved: now the usual memory checks.
        self.check_memory(io, &regs, &got);
        got
    }

    fn range_outcome<C: Conduit, M: HostMem, H: FuzzHw>(
        &mut self,
        io: &mut Io<'_, C, M, H>,
        delegate: bool,
        regs: [u64; 8],
        got: [u64; 8],
    ) {
        let (base, top) = (regs[1], regs[2]);
        let pool = self.plan.pool;
        let well_formed =
            base % G == 0 && top % G == 0 && base.checked_add(G).is_some_and(|m| top >= m);
        let owned = well_formed && pool.contains(base) && top <= pool.end();
        // Granules from `base` the call may move: up to the first one in the wrong state.
        let limit = if owned {
            let mut a = base;
            while a < top && self.shadow.delegated(a) != delegate {
                a += G;
            }
            a
        } else {
            base
        };
        if got[0] != 0 {
            // Undelegation of a granule a realm owns fails too; delegation of an NS one
            // the host owns cannot.
            let may_fail = !owned || limit == base || !delegate;
            if got[1] != base || got[0] != INPUT || !may_fail {
                self.finding(
                    "a range (un)delegation failed in an undefined way",
                    regs,
                    got,
                );
            }
            return;
        }
        let next = got[1];
        if !owned || next <= base || next > limit || next % G != 0 {
            self.finding(
                "a range (un)delegation moved granules the host does not own, or reported \
                 progress it cannot have made",
                regs,
                got,
            );
            return;
        }
        let n = (next - base) / G;
        let mut a = base;
        while a < next {
            self.shadow.set(a, delegate);
            a += G;
        }
        if delegate {
            self.stats.delegated += n;
        } else {
            self.stats.undelegated += n;
        }
        // The first and the last granule moved: delegated ones fault, undelegated ones are
        // scrubbed (every word of them).
        for g in [base, next - G] {
            if delegate {
                if io.mem.probe_read(g).is_some() || io.mem.probe_read(g + G - 8).is_some() {
                    self.finding(
                        "the host read a granule it just delegated",
                        regs,
                        [g, 0, 0, 0, 0, 0, 0, got[0]],
                    );
                }
            } else {
                let mut page = [0u8; G as usize];
                io.mem.read(g, &mut page);
                if page.iter().any(|&b| b != 0) {
                    self.finding(
                        "a granule came back from the RMM without being scrubbed",
                        regs,
                        [g, 0, 0, 0, 0, 0, 0, got[0]],
                    );
                }
            }
        }
    }
}
