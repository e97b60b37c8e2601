//! Targeted races: a fuzzer without lifecycles of its own (the second CPU's) aims valid
//! calls at the realm another fuzzer published while that one runs it, so that the RMM
//! sees, from two CPUs at the same time: both RECs of one realm running, `REC_ENTER` on one
//! CPU while the other creates, destroys or folds that realm's RTTs or destroys its other
//! REC, and RTT creation and destruction racing the owner's own at the same IPAs.
//!
//! Every call goes through [`Fuzzer::call`], so the usual checks apply and whatever it
//! creates is tracked for the sweep.

use super::gen::UNPROT;
use super::{page, slot, FuzzHw, Fuzzer, Io};
use crate::rmi::{Conduit, HostMem};
use cca_abi::rmi::RmiFid;

/// IPAs inside and next to the lifecycle realm's mappings (its code at 0, its shared page
/// in the unprotected half), with the RTT levels worth creating, destroying or folding
/// there.
const TARGETS: [(u64, u64); 8] = [
    (0, 3),
    (0, 2),
    (0x20_0000, 3),
    (0x40_0000, 3),
    (1 << 30, 2),
    (UNPROT, 3),
    (UNPROT, 2),
    (UNPROT + 0x20_0000, 3),
];

impl Fuzzer {
    /// A delegated granule of this fuzzer's own pool (a few tries), or 0.
    fn delegated_granule(&mut self) -> u64 {
        let pool = self.plan.pool;
        for _ in 0..16 {
            let g = pool.granule(self.rng.below(pool.granules));
            if self.shadow.delegated(g) {
                return g;
            }
        }
        0
    }

    /// One targeted race against the published realm; returns false (nothing done) when
    /// no realm is published.
    pub(crate) fn race<C: Conduit, M: HostMem, H: FuzzHw>(
        &mut self,
        io: &mut Io<'_, C, M, H>,
    ) -> bool {
        let rd = io.shared.get(slot::RD);
        if rd == 0 {
            return false;
        }
        self.stats.races += 1;
        let recs = [io.shared.get(slot::REC0), io.shared.get(slot::REC1)];
        let (ipa, level) = self.rng.pick(&TARGETS);
        let fid = |f: RmiFid| u64::from(f.fid());
        match self.rng.below(100) {
            // Run one of its RECs here while its owner runs them on the other CPU.
            0..=44 => {
                let rec = self.rng.pick(&recs);
                let run = self.plan.scratch_page(page::RUN);
                io.mem.write(run, &[0u8; 0x300]);
                let got = self.call(io, [fid(RmiFid::REC_ENTER), rec, run, 0, 0, 0, 0, 0]);
                if got[0] == 0 {
                    self.stats.race_entered += 1;
                }
            }
            // A table of ours in its tree, at its IPAs.
            45..=69 => {
                let rtt = self.delegated_granule();
                if rtt != 0 {
                    let got =
                        self.call(io, [fid(RmiFid::RTT_CREATE), rd, rtt, ipa, level, 0, 0, 0]);
                    if got[0] == 0 {
                        self.stats.race_rtts += 1;
                    }
                }
            }
            // Take a table out again (ours or its owner's), or fold one.
            70..=84 => {
                self.call(io, [fid(RmiFid::RTT_DESTROY), rd, ipa, level, 0, 0, 0, 0]);
            }
            85..=97 => {
                self.call(io, [fid(RmiFid::RTT_FOLD), rd, ipa, level, 0, 0, 0, 0]);
            }
            // Destroy its other REC under it (rarely: it ends that lifecycle).
            _ => {
                let rec = recs[1];
                let first = self.call(io, [fid(RmiFid::REC_DESTROY), rec, 0, 0, 0, 0, 0, 0]);
                self.drive_sro(io, first);
            }
        }
        true
    }
}
