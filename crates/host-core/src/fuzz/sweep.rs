//! The end of a run: every object any call created is torn down, every granule undelegated,
//! and the host checks that each comes back scrubbed and that the RMM keeps nothing.

use super::{FuzzHw, Fuzzer, Io, Tracker, EVER, EXPECT_ZERO, PATTERN};
use crate::rmi::{Conduit, HostMem};
use cca_abi::rmi::{map_flags, mem_req, BlockSize, DonateReq, RmiFid, RmiReturn, RmiStatus};
use cca_abi::GRANULE_SIZE as G;

/// What the sweep found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Realms destroyed.
    pub realms: u64,
    /// RECs destroyed.
    pub recs: u64,
    /// Operations driven to their end.
    pub operations: u64,
    /// RTTs destroyed.
    pub rtts: u64,
    /// Granules undelegated.
    pub undelegated: u64,
    /// Granules read back whole and found scrubbed.
    pub scrubbed: u64,
    /// Realms that could not be destroyed.
    pub stuck_realms: u64,
    /// Granules that could not be undelegated.
    pub stuck_granules: u64,
}

/// Bytes an entry at `level` maps.
const fn entry_size(level: u64) -> u64 {
    1 << (12 + 9 * (3 - level))
}

impl Fuzzer {
    fn rmi_call<C: Conduit, M: HostMem, H: FuzzHw>(
        &mut self,
        io: &mut Io<'_, C, M, H>,
        fid: RmiFid,
        args: &[u64],
    ) -> [u64; 8] {
        let mut regs = [0u64; 8];
        regs[0] = u64::from(fid.fid());
        regs[1..=args.len()].copy_from_slice(args);
        self.call(io, regs)
    }

    /// Unmaps `[base, top)` of the realm at `rd`, widening the range to the entry the walk
    /// reports when the range starts inside a larger one.
    fn unmap_all<C: Conduit, M: HostMem, H: FuzzHw>(
        &mut self,
        io: &mut Io<'_, C, M, H>,
        rd: u64,
        base: u64,
        top: u64,
        protected: bool,
    ) {
        let fid = if protected {
            RmiFid::RTT_DATA_UNMAP
        } else {
            RmiFid::RTT_UNPROT_UNMAP
        };
        let mut next = base & !(G - 1);
        let top = top.max(next.saturating_add(G));
        for _ in 0..256 {
            if next >= top {
                return;
            }
            let r = self.rmi_call(io, fid, &[rd, next, top, map_flags::ADDR_TYPE_NONE, 0]);
            if r[0] == 0 && r[1] > next {
                next = r[1];
                continue;
            }
            if r[0] & 0xff != RmiStatus::ErrorRtt as u64 {
                return;
            }
            let level = (r[0] >> 8) & 0xff;
            if level > 3 {
                return;
            }
            // The walk stopped at `level`: unmap that whole entry, then go on after it.
            let size = entry_size(level);
            let start = next & !(size - 1);
            let end = start.saturating_add(size);
            let r = self.rmi_call(io, fid, &[rd, start, end, map_flags::ADDR_TYPE_NONE, 0]);
            next = if r[0] == 0 && r[1] > next { r[1] } else { end };
        }
    }

    /// Drives the operation `handle` to its end from its last `INCOMPLETE` answer
    /// (`x0`, `x2`: what it waits for).
    fn finish_operation<C: Conduit, M: HostMem, H: FuzzHw>(
        &mut self,
        io: &mut Io<'_, C, M, H>,
        handle: u64,
        x0: u64,
        x2: u64,
        report: bool,
    ) -> bool {
        // The last answer seen may be stale (handles are reused, and the other CPU may
        // have moved the operation on): if the operation does not take what it said, try
        // each thing an operation can wait for.
        let incomplete = |req: u8| RmiReturn::with_index(RmiStatus::Incomplete, req).to_reg();
        let donate16 = DonateReq {
            size: BlockSize::L3_4K,
            count: 16,
            contig: false,
            undelegated: false,
        }
        .encode();
        for (a, b) in [
            (x0, x2),
            (incomplete(mem_req::NONE), 0),
            (incomplete(mem_req::RECLAIM), 0),
            (incomplete(mem_req::DONATE), donate16),
        ] {
            let done = self.drive_sro(io, [a, handle, b, 0, 0, 0, 0, 0]);

            if done[0] == 0 {
                return true;
            }
            if done[0] != RmiStatus::ErrorInput as u64 {
                if report && done[0] & 0xff == RmiStatus::Incomplete as u64 {
                    self.finding(
                        "the sweep could not give an operation what it asked for",
                        [0, handle, 0, 0, 0, 0, 0, 0],
                        done,
                    );
                }
                return false;
            }
        }
        false
    }

    /// Tears down the objects of `all` (skipping the realm `keep` and its RECs), in passes:
    /// each gives back the granules that are merely delegated, drives the operations in
    /// flight, terminates the realms, destroys RECs, unmaps, destroys RTTs deepest first
    /// and destroys the realms; a pass frees granules the next one may need. With
    /// `report`, a realm that cannot be destroyed at the end is a finding. Returns the
    /// counts and leaves in `all` what is left.
    fn teardown<C: Conduit, M: HostMem, H: FuzzHw>(
        &mut self,
        io: &mut Io<'_, C, M, H>,
        all: &mut Tracker,
        keep: (u64, [u64; 2]),
        report: bool,
        release_max: u64,
    ) -> SweepReport {
        let mut rep = SweepReport::default();
        all.rds.retain(|&r| r != keep.0 || keep.0 == 0);
        all.recs.retain(|&r| !keep.1.contains(&r) || r == 0);
        all.rtts.retain(|&(r, _, _)| r != keep.0 || keep.0 == 0);
        all.maps.retain(|&(r, _, _, _)| r != keep.0 || keep.0 == 0);
        const PASSES: u32 = 8;
        let mut stalled = false;
        for pass in 0..PASSES {
            let progress_before = (rep.operations, rep.recs, rep.rtts, rep.realms);
            let released = self.release_delegated(io, release_max);
            let last = stalled || pass == PASSES - 1;
            let handles = core::mem::take(&mut all.handles);
            for &(h, x0, x2) in &handles {
                if self.finish_operation(io, h, x0, x2, report && last) {
                    rep.operations += 1;
                } else {
                    all.handles.push((h, x0, x2));
                }
            }
            for &rd in &all.rds {
                self.rmi_call(io, RmiFid::REALM_TERMINATE, &[rd]);
            }
            let recs = core::mem::take(&mut all.recs);
            for &rec in &recs {
                let first = self.rmi_call(io, RmiFid::REC_DESTROY, &[rec]);
                let done = self.drive_sro(io, first);
                if done[0] == 0 {
                    rep.recs += 1;
                } else if done[0] & 0xff != RmiStatus::ErrorInput as u64 {
                    // Busy or running: try again in the next pass.
                    all.recs.push(rec);
                } else if pass < 2 && all.handles.iter().any(|_| true) {
                    // It may still be PARTIAL: an operation not finished yet.
                    all.recs.push(rec);
                }
            }
            for &(rd, base, top, protected) in &all.maps {
                self.unmap_all(io, rd, base, top, protected);
            }
            // Deepest tables first; a table whose children were created later may need
            // another round.
            all.rtts.sort_by_key(|r| core::cmp::Reverse(r.2));
            for _ in 0..4 {
                let before = all.rtts.len();
                let rtts = core::mem::take(&mut all.rtts);
                for &(rd, ipa, level) in &rtts {
                    let r = self.rmi_call(io, RmiFid::RTT_DESTROY, &[rd, ipa, level]);
                    if r[0] == 0 {
                        rep.rtts += 1;
                    } else if r[0] & 0xff != RmiStatus::ErrorInput as u64 {
                        all.rtts.push((rd, ipa, level));
                    }
                }
                if all.rtts.is_empty() || all.rtts.len() == before {
                    break;
                }
            }
            let rds = core::mem::take(&mut all.rds);
            for &rd in &rds {
                let r = self.rmi_call(io, RmiFid::REALM_DESTROY, &[rd]);
                if r[0] == 0 {
                    rep.realms += 1;
                    all.maps.retain(|&(x, _, _, _)| x != rd);
                } else if r[0] & 0xff != RmiStatus::ErrorInput as u64 {
                    // ERROR_INPUT: not (any more) a realm; anything else: it still holds
                    // something.
                    all.rds.push(rd);
                }
            }
            if all.rds.is_empty() && all.handles.is_empty() && all.recs.is_empty() {
                break;
            }
            if last {
                break;
            }
            // A pass that destroyed and gave back nothing: one more, which reports.
            stalled = released == 0
                && progress_before == (rep.operations, rep.recs, rep.rtts, rep.realms);
        }
        if report {
            for &rd in &all.rds.clone() {
                rep.stuck_realms += 1;
                let r = self.rmi_call(io, RmiFid::REALM_DESTROY, &[rd]);
                self.finding(
                    "a realm could not be destroyed after every object it had was torn down",
                    [u64::from(RmiFid::REALM_DESTROY.fid()), rd, 0, 0, 0, 0, 0, 0],
                    r,
                );
            }
        }
        rep
    }

    /// Tears down every object any call of this fuzzer or of `others` created, then
    /// undelegates every granule of this fuzzer's pool and of `others`' pools, and checks
    /// what comes back. Findings go to this fuzzer.
    pub fn finish<C: Conduit, M: HostMem, H: FuzzHw>(
        &mut self,
        io: &mut Io<'_, C, M, H>,
        others: &mut [&mut Fuzzer],
    ) -> SweepReport {
        let mut all = self.tracker.clone();
        for o in others.iter() {
            all.merge(&o.tracker);
        }
        if self.life.rd != 0 {
            Tracker::add(&mut all.rds, self.life.rd);
        }
        for o in others.iter_mut() {
            o.release_delegated(io, u64::MAX);
        }
        let mut rep = self.teardown(io, &mut all, (0, [0; 2]), true, u64::MAX);
        self.tracker = Tracker::default();
        for o in others.iter_mut() {
            o.tracker = Tracker::default();
            let r = o.release_pool(io);
            rep.undelegated += r.0;
            rep.scrubbed += r.1;
            rep.stuck_granules += r.2;
            // Those it did not keep the registers of count too.
            let unkept = o.findings_total.saturating_sub(o.findings.len() as u64);
            for f in o.findings.clone() {
                self.finding(f.what, f.regs, f.got);
            }
            self.findings_total = self.findings_total.saturating_add(unkept);
            o.findings.clear();
            o.findings_total = 0;
        }
        let r = self.release_pool(io);
        rep.undelegated += r.0;
        rep.scrubbed += r.1;
        rep.stuck_granules += r.2;
        self.check_canaries(io);
        rep
    }

    /// Tries to undelegate up to `max` delegated granules of the pool (those a realm owns
    /// stay); returns how many went back.
    pub(crate) fn release_delegated<C: Conduit, M: HostMem, H: FuzzHw>(
        &mut self,
        io: &mut Io<'_, C, M, H>,
        max: u64,
    ) -> u64 {
        let pool = self.plan.pool;
        let mut n = 0;
        let start = self.rng.below(pool.granules);
        for k in 0..pool.granules {
            if n >= max {
                break;
            }
            let g = pool.granule((start + k) % pool.granules);
            if self.shadow.delegated(g) && self.free(io, g) {
                n += 1;
            }
        }
        n
    }

    /// Keeps a long run going: tears down what this fuzzer's calls created (except the
    /// realm of the lifecycle in progress) and gives back what it delegated. The RMM has a
    /// fixed number of operation contexts, and garbage leaves operations half done and
    /// realms half built.
    pub(crate) fn tidy<C: Conduit, M: HostMem, H: FuzzHw>(&mut self, io: &mut Io<'_, C, M, H>) {
        self.stats.tidies += 1;
        let mut all = core::mem::take(&mut self.tracker);
        let keep = (self.life.rd, self.life.recs);
        let kept_rtts: alloc::vec::Vec<_> = all
            .rtts
            .iter()
            .copied()
            .filter(|e| e.0 == keep.0 && keep.0 != 0)
            .collect();
        let kept_maps: alloc::vec::Vec<_> = all
            .maps
            .iter()
            .copied()
            .filter(|e| e.0 == keep.0 && keep.0 != 0)
            .collect();
        let some = (self.plan.pool.granules / 16).max(16);
        self.teardown(io, &mut all, keep, false, some);
        // What could not be torn down (and the lifecycle's) stays tracked.
        all.rtts.extend(kept_rtts);
        all.maps.extend(kept_maps);
        if keep.0 != 0 {
            Tracker::add(&mut all.rds, keep.0);
            for r in keep.1 {
                if r != 0 {
                    Tracker::add(&mut all.recs, r);
                }
            }
        }
        let mut merged = core::mem::take(&mut self.tracker);
        merged.merge(&all);
        self.tracker = merged;
    }

    /// Undelegates every granule of the pool that is delegated, then reads every granule of
    /// the pool back: each must be NS, and each that was ever delegated must be zero unless
    /// the RMM was asked to write it. Returns (undelegated, scrubbed, stuck).
    pub(crate) fn release_pool<C: Conduit, M: HostMem, H: FuzzHw>(
        &mut self,
        io: &mut Io<'_, C, M, H>,
    ) -> (u64, u64, u64) {
        let pool = self.plan.pool;
        let (mut undelegated, mut scrubbed, mut stuck) = (0, 0, 0);
        for i in 0..pool.granules {
            let g = pool.granule(i);
            if !self.shadow.delegated(g) {
                continue;
            }
            if self.free(io, g) {
                undelegated += 1;
            } else {
                stuck += 1;
                self.finding(
                    "a granule stayed with the RMM after the sweep",
                    [
                        u64::from(RmiFid::GRANULE_RANGE_UNDELEGATE.fid()),
                        g,
                        g + G,
                        0,
                        0,
                        0,
                        0,
                        0,
                    ],
                    [g, 0, 0, 0, 0, 0, 0, 0],
                );
            }
        }
        let mut page = [0u8; G as usize];
        for i in 0..pool.granules {
            let g = pool.granule(i);
            let flags = self.shadow.flags[i as usize];
            if flags & super::DELEGATED != 0 {
                continue;
            }
            if io.mem.probe_read(g).is_none() {
                self.finding(
                    "a granule the host owns faults after the sweep",
                    [0; 8],
                    [g, 0, 0, 0, 0, 0, 0, 0],
                );
                continue;
            }
            io.mem.read(g, &mut page);
            if flags & EVER != 0 && flags & EXPECT_ZERO != 0 {
                if page.iter().any(|&b| b != 0) {
                    self.finding(
                        "a granule came back from the RMM without being scrubbed",
                        [0; 8],
                        [g, 0, 0, 0, 0, 0, 0, 0],
                    );
                } else {
                    scrubbed += 1;
                }
            }
        }
        (undelegated, scrubbed, stuck)
    }

    /// Every word of every watched page must still be the pattern. A page that changed is
    /// reported with its first changed word's address and value and how many words changed.
    pub(crate) fn check_canaries<C: Conduit, M: HostMem, H: FuzzHw>(
        &mut self,
        io: &mut Io<'_, C, M, H>,
    ) {
        let c = self.plan.canaries;
        let mut page = [0u8; G as usize];
        for i in 0..c.granules {
            io.mem.read(c.granule(i), &mut page);
            let mut changed = page
                .chunks_exact(8)
                .enumerate()
                .map(|(n, w)| {
                    let v = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
                    (n as u64 * 8, v)
                })
                .filter(|&(_, v)| v != PATTERN);
            if let Some((off, v)) = changed.next() {
                let words = 1 + changed.count() as u64;
                self.finding(
                    "a watched NS page changed",
                    [0; 8],
                    [c.granule(i) + off, v, words, 0, 0, 0, 0, 0],
                );
            }
        }
    }
}
