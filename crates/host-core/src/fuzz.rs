//! A hostile host: structured-random RMI calls against the real RMM, each checked against
//! what the host can observe, then a sweep that must get every granule back, scrubbed.
//!
//! The [`Fuzzer`] is pure: it talks to the RMM through a [`Conduit`] (an SMC on the machine,
//! a direct call into `rmm-core` in tests), sees its memory through [`HostMem`] and the few
//! machine services it needs through [`FuzzHw`]. The host firmware runs one per CPU
//! (`cargo xtask fuzz host`); the tests run it against the RMM core in-process.
//!
//! What it throws (see `gen`): valid realm lifecycles (`life`) interleaved with garbage
//! calls of every RMI function identifier (and some that are not), whose address arguments
//! come from the granules it delegated, the objects its realms are made of, its own
//! Non-secure pages, the other CPU's granules, the RMM's carve-out, EL3's memory, MMIO,
//! unbacked and out-of-range space, unaligned and overflowing values; between calls it
//! corrupts the `RmiRealmParams`, `RmiRecParams`, `RmiRecRun` and address lists its pages
//! hold, and scrambles its own GIC list registers before `REC_ENTER`.
//!
//! What it checks after every call (see `check`): x0 is a defined answer; the commands
//! whose answer depends on nothing the fuzzer does not know give exactly that answer; a
//! command naming memory that can never be valid (carve-out, Root, MMIO, unbacked,
//! unaligned, delegated where NS is needed) does not succeed; range (un)delegation moves
//! exactly the granules its result says, never one the host did not own; delegated
//! granules fault when the host reads them, undelegated ones read back as zeroes, watched
//! Non-secure pages keep their contents, and the RMM keeps answering `RMI_VERSION`.
//!
//! At the end (see `sweep`) it terminates and destroys every realm, REC, operation, mapping
//! and table any call created, undelegates every granule and checks that each comes back
//! scrubbed and that nothing stayed with the RMM.

mod check;
mod gen;
mod life;
mod race;
mod sweep;
#[cfg(test)]
mod tests;

pub use sweep::SweepReport;

use crate::rmi::{Conduit, HostMem};
use alloc::vec;
use alloc::vec::Vec;
use cca_abi::GRANULE_SIZE as G;
use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};

/// A range of whole granules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// First byte (4 KiB aligned).
    pub base: u64,
    /// Number of granules.
    pub granules: u64,
}

impl Span {
    /// `granules` granules from `base`.
    pub const fn new(base: u64, granules: u64) -> Self {
        Self { base, granules }
    }

    /// One past the last byte.
    pub const fn end(&self) -> u64 {
        self.base.saturating_add(self.granules.saturating_mul(G))
    }

    /// True when `pa` (any byte) is inside.
    pub const fn contains(&self, pa: u64) -> bool {
        pa >= self.base && pa < self.end()
    }

    /// Index of the granule holding `pa`, if inside.
    pub const fn index(&self, pa: u64) -> Option<usize> {
        if self.contains(pa) {
            Some(((pa - self.base) / G) as usize)
        } else {
            None
        }
    }

    /// The granule with index `i`.
    pub const fn granule(&self, i: u64) -> u64 {
        self.base + i * G
    }
}

/// Memory no RMI command may ever accept as a granule or an NS page, with the platform's
/// DRAM bounds.
#[derive(Clone, Copy, Debug)]
pub struct Hostile {
    /// The Realm carve-out EL3 gave the RMM (its image, memory and shared page).
    pub carveout: Span,
    /// EL3's own memory (Root PAS).
    pub root: Span,
    /// Device and flash addresses.
    pub mmio: [u64; 8],
    /// Start of DRAM.
    pub dram_base: u64,
    /// One past the end of DRAM.
    pub dram_end: u64,
}

impl Hostile {
    /// True when `pa` is in memory that can never be a granule or an NS page of an RMI
    /// command: unaligned, outside DRAM, in the carve-out or in EL3's memory.
    pub fn never_valid(&self, pa: u64) -> bool {
        pa % G != 0
            || pa < self.dram_base
            || pa >= self.dram_end
            || self.carveout.contains(pa)
            || self.root.contains(pa)
    }
}

/// Number of Non-secure scratch pages each fuzzer owns.
pub const SCRATCH_PAGES: u64 = 8;

/// What each scratch page holds.
pub(crate) mod page {
    /// `RmiRealmParams`.
    pub const REALM_PARAMS: u64 = 0;
    /// `RmiRecParams`.
    pub const REC_PARAMS: u64 = 1;
    /// An input address list (donations, maps).
    pub const LIST_IN: u64 = 2;
    /// An output address list (reclaims, unmaps).
    pub const LIST_OUT: u64 = 3;
    /// The realm's code, copied in by `RTT_DATA_MAP_INIT`.
    pub const CODE: u64 = 4;
    /// `RmiRecRun`.
    pub const RUN: u64 = 5;
    /// A page shared with the realm through `RTT_UNPROT_MAP`.
    pub const SHARED: u64 = 6;
    /// Spare (`RmiRmmConfig` reads land anywhere the generator points them).
    pub const _SPARE: u64 = 7;
}

/// What one fuzzer may use and what it must avoid.
#[derive(Clone, Copy, Debug)]
pub struct FuzzPlan {
    /// Seed of the random stream.
    pub seed: u64,
    /// Non-secure DRAM this fuzzer delegates, builds realms from and undelegates (its own:
    /// no other fuzzer delegates or undelegates it).
    pub pool: Span,
    /// Another fuzzer's pool: named in realm commands, never (un)delegated by this one.
    pub other_pool: Span,
    /// [`SCRATCH_PAGES`] Non-secure pages of this fuzzer's own.
    pub scratch: u64,
    /// Non-secure pages the RMM must never write (shared by every fuzzer; read only).
    pub canaries: Span,
    /// Memory that is never valid.
    pub hostile: Hostile,
    /// The calls go through EL3 (which answers any x0 with bits above 31 set with
    /// `SMC_UNKNOWN`, and PSCI), so those may be thrown too.
    pub through_el3: bool,
    /// Build and tear down realms the valid way between the garbage (the boot CPU's
    /// fuzzer); without it the fuzzer only throws garbage at the realms others built.
    pub lifecycles: bool,
    /// Number of CPUs of the machine (for the bad PSCI calls).
    pub cpus: u64,
}

impl FuzzPlan {
    /// The address of scratch page `n`.
    pub(crate) const fn scratch_page(&self, n: u64) -> u64 {
        self.scratch + n * G
    }

    /// True when `pa` is one of this fuzzer's scratch pages.
    pub(crate) const fn is_scratch(&self, pa: u64) -> bool {
        pa >= self.scratch && pa < self.scratch + SCRATCH_PAGES * G
    }
}

/// The machine services the fuzzer needs.
pub trait FuzzHw {
    /// Arms the host's own timer to interrupt a running REC `ticks` from now, or disarms it.
    fn arm_timer(&mut self, ticks: Option<u64>);
    /// The counter.
    fn now(&mut self) -> u64;
    /// The counter's frequency in Hz.
    fn hz(&mut self) -> u64;
    /// Number of GIC list registers.
    fn num_lrs(&mut self) -> usize;
    /// Writes GIC list register `n` (the vGIC state the RMM reads at `REC_ENTER`).
    fn write_lr(&mut self, n: usize, value: u64);
}

/// Objects one fuzzer's realms published for the others to aim at (RD and REC addresses; 0
/// is an empty slot).
pub struct Shared {
    slots: [AtomicU64; 8],
}

impl Shared {
    /// No objects.
    pub const fn new() -> Self {
        Self {
            slots: [const { AtomicU64::new(0) }; 8],
        }
    }

    /// Publishes `pa` in slot `i` (0 clears it).
    pub fn publish(&self, i: usize, pa: u64) {
        if let Some(s) = self.slots.get(i) {
            s.store(pa, Ordering::Release);
        }
    }

    /// The object in slot `i`.
    pub fn get(&self, i: usize) -> u64 {
        self.slots.get(i).map_or(0, |s| s.load(Ordering::Acquire))
    }
}

impl Default for Shared {
    fn default() -> Self {
        Self::new()
    }
}

/// Slots of [`Shared`]: the lifecycle realm's RD and its two RECs.
pub(crate) mod slot {
    /// The RD.
    pub const RD: usize = 0;
    /// REC 0.
    pub const REC0: usize = 1;
    /// REC 1.
    pub const REC1: usize = 2;
}

/// Something the host observed that the RMM must never do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Number of the call (from 1).
    pub call: u64,
    /// What was wrong.
    pub what: &'static str,
    /// The registers passed.
    pub regs: [u64; 8],
    /// The registers returned (or, for memory checks, the address in `got[0]`).
    pub got: [u64; 8],
}

/// Counts of what a fuzzer did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Calls made.
    pub calls: u64,
    /// Calls answered with each RMI status (index: status code).
    pub by_status: [u64; 17],
    /// Calls answered with `SMC_UNKNOWN`.
    pub unknown: u64,
    /// Calls answered with anything else (PSCI results, INCOMPLETE counted by status).
    pub other: u64,
    /// Realm lifecycles completed (built, entered, torn down without a failed step).
    pub lifecycles: u64,
    /// Lifecycles interrupted by a step that did not succeed.
    pub lifecycles_broken: u64,
    /// `REC_ENTER`s that ran a realm (returned SUCCESS).
    pub entered: u64,
    /// Granules delegated.
    pub delegated: u64,
    /// Granules undelegated.
    pub undelegated: u64,
    /// Garbage calls.
    pub garbage: u64,
    /// Structure corruptions between calls.
    pub corruptions: u64,
    /// Times the fuzzer finished its operations and gave granules back to keep going.
    pub tidies: u64,
    /// Calls to EL3 (PSCI, SMCCC) rather than the RMM.
    pub el3_calls: u64,
    /// Targeted races against another fuzzer's published realm (see `race`).
    pub races: u64,
    /// Of those, `REC_ENTER`s of the other fuzzer's RECs that ran the realm.
    pub race_entered: u64,
    /// Of those, RTTs created in the other fuzzer's realm.
    pub race_rtts: u64,
}

/// Calls between two tidy-ups of a long run.
const TIDY_EVERY: u64 = 8192;

/// Most findings kept with their registers.
const MAX_FINDINGS: usize = 16;

/// Per-granule facts of the fuzzer's own pool.
const DELEGATED: u8 = 1 << 0;
/// The granule was undelegated and nothing may have written it since: it must read zero.
const EXPECT_ZERO: u8 = 1 << 1;
/// The granule was delegated at some point.
const EVER: u8 = 1 << 2;
/// A command the RMM may write NS memory with named the granule.
const WRITTEN: u8 = 1 << 3;

/// The host's knowledge of its own pool: which granules are in the Realm PAS (exact: only
/// range (un)delegation changes it, and only this fuzzer does that to its pool).
pub(crate) struct Shadow {
    span: Span,
    flags: Vec<u8>,
}

impl Shadow {
    fn new(span: Span) -> Self {
        Self {
            span,
            flags: vec![0; span.granules as usize],
        }
    }

    /// True when the granule at `pa` (in the pool) is delegated.
    pub(crate) fn delegated(&self, pa: u64) -> bool {
        self.span
            .index(pa)
            .is_some_and(|i| self.flags[i] & DELEGATED != 0)
    }

    fn set(&mut self, pa: u64, delegated: bool) {
        if let Some(i) = self.span.index(pa) {
            if delegated {
                self.flags[i] = (self.flags[i] | DELEGATED | EVER) & !EXPECT_ZERO;
            } else {
                self.flags[i] = (self.flags[i] & !DELEGATED) | EXPECT_ZERO;
            }
        }
    }

    /// Something may have written the NS page at `pa`.
    fn dirty(&mut self, pa: u64) {
        if let Some(i) = self.span.index(pa) {
            self.flags[i] = (self.flags[i] & !EXPECT_ZERO) | WRITTEN;
        }
    }

    /// True when a command that writes NS memory named the granule at `pa`.
    fn maybe_written(&self, pa: u64) -> bool {
        self.span
            .index(pa)
            .is_some_and(|i| self.flags[i] & WRITTEN != 0)
    }
}

/// Every object a call created that the sweep must destroy.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    /// Realm descriptors.
    pub rds: Vec<u64>,
    /// Granules a `REC_CREATE` started in.
    pub recs: Vec<u64>,
    /// RTTs: (RD, IPA aligned to what the table covers, level).
    pub rtts: Vec<(u64, u64, u64)>,
    /// Mapped ranges: (RD, base, top, protected).
    pub maps: Vec<(u64, u64, u64, bool)>,
    /// Stateful operations that have not completed: (handle, x0 and x2 of the last
    /// `INCOMPLETE` answer, which say what the operation waits for).
    pub handles: Vec<(u64, u64, u64)>,
}

/// Most entries each list of the tracker keeps (the sweep needs all of them, so a
/// fuller list is reported as a finding rather than silently truncated).
const TRACKER_CAP: usize = 4096;

impl Tracker {
    fn add<T: PartialEq>(list: &mut Vec<T>, v: T) -> bool {
        if list.contains(&v) {
            return true;
        }
        if list.len() >= TRACKER_CAP {
            return false;
        }
        list.push(v);
        true
    }

    /// Adds another tracker's objects.
    pub fn merge(&mut self, other: &Tracker) {
        for &r in &other.rds {
            Self::add(&mut self.rds, r);
        }
        for &r in &other.recs {
            Self::add(&mut self.recs, r);
        }
        for &r in &other.rtts {
            Self::add(&mut self.rtts, r);
        }
        for &r in &other.maps {
            Self::add(&mut self.maps, r);
        }
        for &(h, x0, x2) in &other.handles {
            self.note_op(h, x0, x2);
        }
    }

    /// Records the last `INCOMPLETE` answer of operation `handle`.
    fn note_op(&mut self, handle: u64, x0: u64, x2: u64) -> bool {
        if let Some(e) = self.handles.iter_mut().find(|e| e.0 == handle) {
            *e = (handle, x0, x2);
            return true;
        }
        Self::add(&mut self.handles, (handle, x0, x2))
    }
}

/// A small, fast deterministic random number generator (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.bits() % n
        }
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The machine the fuzzer works on, for one step.
pub struct Io<'a, C: Conduit, M: HostMem, H: FuzzHw> {
    /// The SMC conduit.
    pub conduit: &'a mut C,
    /// The host's memory.
    pub mem: &'a mut M,
    /// The machine services.
    pub hw: &'a mut H,
    /// Objects the fuzzers share.
    pub shared: &'a Shared,
}

/// The word the fuzzer writes over every page it watches (and the pool's NS granules).
const PATTERN: u64 = 0xC0FF_EE00_DEAD_BEEF;

/// One hostile host.
pub struct Fuzzer {
    plan: FuzzPlan,
    rng: Rng,
    shadow: Shadow,
    tracker: Tracker,
    life: life::Life,
    stats: Stats,
    findings: Vec<Finding>,
    findings_total: u64,
    canary_cursor: u64,
}

impl Fuzzer {
    /// A fuzzer for `plan`.
    pub fn new(plan: FuzzPlan) -> Self {
        Self {
            plan,
            rng: Rng::new(plan.seed),
            shadow: Shadow::new(plan.pool),
            tracker: Tracker::default(),
            life: life::Life::default(),
            stats: Stats::default(),
            findings: Vec::new(),
            findings_total: 0,
            canary_cursor: 0,
        }
    }

    /// The plan.
    pub fn plan(&self) -> &FuzzPlan {
        &self.plan
    }

    /// What it did so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The first findings (at most 16).
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// The number of findings.
    pub fn findings_total(&self) -> u64 {
        self.findings_total
    }

    /// The objects its calls created and did not destroy.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// Writes the pattern over the pool and (if `canaries`) the watched pages, and the
    /// realm's code into the code page. Every page must be Non-secure and the host's.
    pub fn prepare<M: HostMem>(&mut self, mem: &mut M, canaries: bool) {
        let mut page = [0u8; G as usize];
        for w in page.chunks_exact_mut(8) {
            w.copy_from_slice(&PATTERN.to_le_bytes());
        }
        for i in 0..self.plan.pool.granules {
            mem.write(self.plan.pool.granule(i), &page);
        }
        if canaries {
            for i in 0..self.plan.canaries.granules {
                mem.write(self.plan.canaries.granule(i), &page);
            }
        }
        for n in 0..SCRATCH_PAGES {
            mem.write(self.plan.scratch_page(n), &[0u8; G as usize]);
        }
        mem.write(self.plan.scratch_page(page::CODE), &life::code_page());
    }

    /// Records a finding.
    pub(crate) fn finding(&mut self, what: &'static str, regs: [u64; 8], got: [u64; 8]) {
        self.findings_total += 1;
        if self.findings.len() < MAX_FINDINGS {
            self.findings.push(Finding {
                call: self.stats.calls,
                what,
                regs,
                got,
            });
        }
    }

    /// One step: a lifecycle step, a garbage call, or a corruption of a structure.
    pub fn step<C: Conduit, M: HostMem, H: FuzzHw>(&mut self, io: &mut Io<'_, C, M, H>) {
        let roll = self.rng.below(100);
        if self.plan.lifecycles && roll < 30 {
            self.life_step(io);
        } else if !self.plan.lifecycles && roll < 25 && self.race(io) {
            // A targeted race against the realm the other fuzzer is running.
        } else if roll < 38 {
            self.corrupt(io);
        } else if self.plan.through_el3 && roll < 40 {
            self.el3_call(io);
        } else {
            self.garbage(io);
        }
        if self.stats.calls % 512 == 0 {
            self.liveness(io);
        }
        if self.stats.calls / TIDY_EVERY > self.stats.tidies {
            self.tidy(io);
        }
    }

    /// Steps until `calls` calls were made.
    pub fn run<C: Conduit, M: HostMem, H: FuzzHw>(&mut self, io: &mut Io<'_, C, M, H>, calls: u64) {
        while self.stats.calls < calls {
            self.step(io);
        }
    }

    /// Makes one call and checks what the host can observe afterwards.
    pub(crate) fn call<C: Conduit, M: HostMem, H: FuzzHw>(
        &mut self,
        io: &mut Io<'_, C, M, H>,
        regs: [u64; 8],
    ) -> [u64; 8] {
        let enter = check::fid_of(regs[0]) == Some(cca_abi::rmi::RmiFid::REC_ENTER);
        if enter {
            // A realm that never exits is interrupted by the host's timer after ~2 ms.
            let hz = io.hw.hz();
            io.hw.arm_timer(Some((hz / 500).max(1)));
            if self.rng.chance(10) {
                let n = io.hw.num_lrs();
                for i in 0..n {
                    let v = if self.rng.chance(50) {
                        0
                    } else {
                        self.rng.bits()
                    };
                    io.hw.write_lr(i, v);
                }
            }
        }
        let got = io.conduit.smc(regs);
        if enter {
            io.hw.arm_timer(None);
            let n = io.hw.num_lrs();
            for i in 0..n {
                io.hw.write_lr(i, 0);
            }
        }
        self.stats.calls += 1;
        self.count(&got);
        self.check(io, &regs, &got);
        self.track(&regs, &got);
        got
    }

    fn count(&mut self, got: &[u64; 8]) {
        if got[0] == cca_abi::smccc::SMC_UNKNOWN {
            self.stats.unknown += 1;
        } else if let Some(r) = cca_abi::rmi::RmiReturn::from_reg(got[0]) {
            self.stats.by_status[r.status as usize] += 1;
        } else {
            self.stats.other += 1;
        }
    }

    /// `RMI_VERSION(2.0)` must still succeed.
    fn liveness<C: Conduit, M: HostMem, H: FuzzHw>(&mut self, io: &mut Io<'_, C, M, H>) {
        let v = cca_abi::rmi::RMI_VERSION_2_0;
        let regs = [
            u64::from(cca_abi::rmi::RmiFid::VERSION.fid()),
            v,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        let got = self.call(io, regs);
        if got[..3] != [0, v, v] {
            self.finding("the RMM stopped answering RMI_VERSION(2.0)", regs, got);
        }
    }

    /// Prints the counts and the findings.
    pub fn report(&self, out: &mut dyn Write, label: &str) {
        let s = &self.stats;
        let _ = writeln!(
            out,
            "FUZZ {label}: {} calls ({} garbage, {} to EL3, {} corruptions), {} lifecycles \
             completed, {} interrupted, {} REC_ENTERs ran the realm, {} granules delegated, \
             {} undelegated, {} targeted races ({} REC_ENTERs ran a REC of the other CPU's \
             realm, {} RTTs created in it), {} findings",
            s.calls,
            s.garbage,
            s.el3_calls,
            s.corruptions,
            s.lifecycles,
            s.lifecycles_broken,
            s.entered,
            s.delegated,
            s.undelegated,
            s.races,
            s.race_entered,
            s.race_rtts,
            self.findings_total
        );
        let _ = write!(out, "FUZZ {label} statuses:");
        for st in cca_abi::rmi::RmiStatus::ALL {
            let n = s.by_status[st as usize];
            if n > 0 {
                let _ = write!(out, " {}={n}", st.name());
            }
        }
        let _ = writeln!(out, " SMC_UNKNOWN={} other={}", s.unknown, s.other);
        for f in &self.findings {
            let _ = writeln!(
                out,
                "FUZZ {label} FINDING at call {}: {}: x0..x7 = {:#x?} -> {:#x?}",
                f.call, f.what, f.regs, f.got
            );
        }
    }
}
