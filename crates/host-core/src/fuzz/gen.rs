//! What the fuzzer throws: garbage calls whose arguments are drawn from structured pools,
//! corruptions of the structures its pages hold, and bad calls to EL3.

use super::{page, FuzzHw, Fuzzer, Io};
use crate::rmi::{Conduit, HostMem};
use cca_abi::psci::{self, PsciStatus};
use cca_abi::rmi::{map_flags, AddrRangeDesc, BlockSize, RmiClass, RmiFid};
use cca_abi::smccc::{self, SMC_UNKNOWN, SVE_HINT};
use cca_abi::GRANULE_SIZE as G;

/// 2 MiB.
const M2: u64 = 0x20_0000;
/// The first unprotected IPA of the lifecycle realms (40-bit IPA space).
pub(crate) const UNPROT: u64 = 1 << 39;

/// IPAs worth aiming at: the lifecycle realm's mappings, block and table boundaries, both
/// halves of a 40-bit space, its edges and beyond.
const IPAS: [u64; 18] = [
    0,
    G,
    2 * G,
    3 * G,
    M2,
    M2 + G,
    2 * M2,
    1 << 30,
    (1 << 30) + G,
    UNPROT,
    UNPROT + G,
    UNPROT + 0x10_0000,
    UNPROT + M2,
    (1 << 40) - G,
    1 << 40,
    1 << 48,
    !(G - 1),
    0x8000_0000,
];

/// Values that overflow or are otherwise extreme.
const EXTREMES: [u64; 8] = [
    u64::MAX,
    u64::MAX - G + 1,
    1 << 63,
    (1 << 63) - G,
    0,
    1,
    0xFFFF_FFFF,
    1 << 52,
];

/// A hostile address: never a valid granule or NS page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bad {
    Carveout,
    Root,
    Mmio,
    Unbacked,
    Unaligned,
    Extreme,
}

impl Fuzzer {
    fn own_granule(&mut self) -> u64 {
        let n = self.plan.pool.granules;
        self.plan.pool.granule(self.rng.below(n))
    }

    /// An address that can never be a granule or an NS page of an RMI command.
    pub(crate) fn bad_addr(&mut self) -> u64 {
        let h = self.plan.hostile;
        let kind = self.rng.pick(&[
            Bad::Carveout,
            Bad::Root,
            Bad::Mmio,
            Bad::Unbacked,
            Bad::Unaligned,
            Bad::Extreme,
        ]);
        match kind {
            Bad::Carveout => {
                // Its first and last pages (the RMM's image and the shared page) or any.
                match self.rng.below(3) {
                    0 => h.carveout.base,
                    1 => h.carveout.end() - G,
                    _ => h.carveout.granule(self.rng.below(h.carveout.granules)),
                }
            }
            Bad::Root => h.root.granule(self.rng.below(h.root.granules)),
            Bad::Mmio => self.rng.pick(&h.mmio) + (self.rng.below(16) * G),
            Bad::Unbacked => match self.rng.below(5) {
                0 => h.dram_end,
                1 => h.dram_end + (self.rng.below(1 << 18) * G),
                2 => (1 << 40) + self.rng.below(1 << 20) * G,
                3 => (1 << 48) - G,
                _ => (self.rng.bits() | (1 << 56)) & !(G - 1),
            },
            Bad::Unaligned => {
                let base = if self.rng.chance(50) {
                    self.own_granule()
                } else {
                    self.plan.scratch_page(self.rng.below(super::SCRATCH_PAGES))
                };
                base + self.rng.pick(&[1, 8, 0x800, 0xff8, 0xfff, 4, 0x10])
            }
            Bad::Extreme => {
                let v = self.rng.pick(&EXTREMES);
                if v % G == 0 && v >= h.dram_base && v < h.dram_end {
                    v + 1
                } else {
                    v
                }
            }
        }
    }

    /// An object the fuzzers built (RD, REC), or a pool granule if there is none.
    fn object(&mut self, shared: &super::Shared) -> u64 {
        let t = &self.tracker;
        let published = [
            shared.get(super::slot::RD),
            shared.get(super::slot::REC0),
            shared.get(super::slot::REC1),
        ];
        let n_rd = t.rds.len() as u64;
        let n_rec = t.recs.len() as u64;
        match self.rng.below(4) {
            0 if n_rd > 0 => t.rds[self.rng.below(n_rd) as usize],
            1 if n_rec > 0 => t.recs[self.rng.below(n_rec) as usize],
            _ => {
                let p = self.rng.pick(&published);
                if p != 0 {
                    p
                } else {
                    self.own_granule()
                }
            }
        }
    }

    /// An address argument: mostly memory the fuzzers own or built, sometimes memory that
    /// is never valid, sometimes anything.
    pub(crate) fn addr(&mut self, shared: &super::Shared) -> u64 {
        match self.rng.below(20) {
            0..=4 => self.own_granule(),
            5..=6 if self.plan.other_pool.granules > 0 => {
                let o = self.plan.other_pool;
                o.granule(self.rng.below(o.granules))
            }
            7..=9 => self.object(shared),
            10..=11 => self.plan.scratch_page(self.rng.below(super::SCRATCH_PAGES)),
            12 if self.plan.canaries.granules > 0 => {
                let c = self.plan.canaries;
                c.granule(self.rng.below(c.granules))
            }
            13..=17 => self.bad_addr(),
            _ => self.rng.bits(),
        }
    }

    /// An IPA argument.
    pub(crate) fn ipa(&mut self) -> u64 {
        match self.rng.below(10) {
            0..=6 => self.rng.pick(&IPAS),
            7 => self.rng.below(1 << 28) * G,
            8 => self.rng.below(1 << 28) * G + self.rng.below(G),
            _ => self.rng.bits(),
        }
    }

    /// An RTT level argument.
    pub(crate) fn level(&mut self) -> u64 {
        match self.rng.below(10) {
            0..=7 => self.rng.below(4),
            8 => self
                .rng
                .pick(&[4, 5, 255, u64::MAX, (-1i64) as u64, 1 << 32]),
            _ => self.rng.bits(),
        }
    }

    /// The top of a range starting at `base`.
    pub(crate) fn top(&mut self, base: u64) -> u64 {
        match self.rng.below(10) {
            0..=4 => base.wrapping_add((1 + self.rng.below(8)) * G),
            5..=6 => base.wrapping_add((1 + self.rng.below(4)) * M2),
            7 => base.wrapping_add(self.rng.pick(&[0, G - 1, 1, G + 1])),
            8 => base.wrapping_sub(G),
            _ => self.rng.pick(&EXTREMES),
        }
    }

    /// A small value or flags word.
    pub(crate) fn small(&mut self) -> u64 {
        match self.rng.below(10) {
            0..=6 => self.rng.below(5),
            7 => 1 << self.rng.below(64),
            8 => self.rng.pick(&EXTREMES),
            _ => self.rng.bits(),
        }
    }

    /// An address range descriptor (or garbage in its place).
    pub(crate) fn desc(&mut self, shared: &super::Shared) -> u64 {
        if self.rng.chance(10) {
            return self.rng.bits();
        }
        let size = match self.rng.below(10) {
            0..=7 => BlockSize::L3_4K,
            8 => BlockSize::L2_2M,
            _ => BlockSize::from_bits(self.rng.below(4)),
        };
        let count = match self.rng.below(10) {
            0..=7 => 1 + self.rng.below(4) as u16,
            8 => 0,
            _ => self.rng.below(1024) as u16,
        };
        let addr = self.addr(shared);
        AddrRangeDesc {
            size,
            count,
            addr,
            undelegated: self.rng.chance(20),
        }
        .encode()
    }

    /// A flags word of the map and unmap commands.
    pub(crate) fn map_flags(&mut self) -> u64 {
        match self.rng.below(10) {
            0..=4 => map_flags::ADDR_TYPE_SINGLE,
            5..=6 => map_flags::with_list(map_flags::ADDR_TYPE_LIST, self.rng.below(5)),
            7 => {
                map_flags::ADDR_TYPE_SINGLE
                    | (self.rng.below(8) << map_flags::MEMATTR_SHIFT)
                    | (self.rng.below(16) << map_flags::S2AP_SHIFT)
            }
            8 => map_flags::ADDR_TYPE_NONE,
            _ => self.rng.bits(),
        }
    }

    /// A handle of a stateful operation.
    fn handle(&mut self) -> u64 {
        let n = self.tracker.handles.len() as u64;
        if n > 0 && self.rng.chance(80) {
            self.tracker.handles[self.rng.below(n) as usize].0
        } else {
            self.small()
        }
    }

    /// An address the RMM may write: this fuzzer's own pool or scratch, or never-valid
    /// memory (never the watched pages, another fuzzer's pool or the host's own memory).
    fn out_addr(&mut self, shared: &super::Shared) -> u64 {
        let a = self.addr(shared);
        let h = self.plan.hostile;
        let page = a & !(G - 1);
        let in_dram = page >= h.dram_base && page < h.dram_end;
        let own = self.plan.pool.contains(a) || self.plan.is_scratch(a);
        if own || !in_dram || h.carveout.contains(a) || h.root.contains(a) {
            a
        } else {
            self.plan.scratch_page(page::LIST_OUT)
        }
    }

    /// A function identifier: mostly the core RMI commands, with and without the SVE hint,
    /// sometimes the ones this RMM does not implement and numbers no command has.
    fn fid(&mut self) -> u64 {
        let all = RmiFid::ALL;
        let core = || all.iter().filter(|f| f.class() == RmiClass::Core);
        match self.rng.below(20) {
            0..=15 => {
                let n = core().count() as u64;
                let f = core().nth(self.rng.below(n) as usize).copied();
                let f = f.unwrap_or(RmiFid::VERSION).fid();
                u64::from(if self.rng.chance(10) { f | SVE_HINT } else { f })
            }
            16 => u64::from(all[self.rng.below(all.len() as u64) as usize].fid()),
            17 => 0xC400_0000 | (0x150 + self.rng.below(0x180)),
            18 if self.plan.through_el3 => self.rng.bits() | (1 << 32),
            _ => u64::from(RmiFid::VERSION.fid()),
        }
    }

    /// The registers of one garbage call.
    pub(crate) fn garbage_regs(&mut self, shared: &super::Shared) -> [u64; 8] {
        let x0 = self.fid();
        let mut r = [x0, 0, 0, 0, 0, 0, 0, 0];
        let Some(fid) = super::check::fid_of(x0) else {
            for v in r.iter_mut().skip(1) {
                *v = self.small();
            }
            return r;
        };
        let a = |s: &mut Self| s.addr(shared);
        match fid {
            RmiFid::VERSION => {
                r[1] = self
                    .rng
                    .pick(&[0x2_0000, 0x1_0000, 0x2_0001, 0x3_0000, u64::MAX])
            }
            RmiFid::FEATURES => r[1] = self.small(),
            RmiFid::RMM_CONFIG_GET => r[1] = self.out_addr(shared),
            RmiFid::RMM_CONFIG_SET | RmiFid::GPT_L1_CREATE => r[1] = a(self),
            RmiFid::GRANULE_TRACKING_GET => {
                r[1] = a(self);
                r[2] = self.top(r[1]);
            }
            RmiFid::GRANULE_RANGE_DELEGATE | RmiFid::GRANULE_RANGE_UNDELEGATE => {
                let (b, t) = self.range_args();
                r[1] = b;
                r[2] = t;
            }
            RmiFid::REALM_CREATE => {
                r[1] = a(self);
                r[2] = if self.rng.chance(60) {
                    self.plan.scratch_page(page::REALM_PARAMS)
                } else {
                    a(self)
                };
            }
            RmiFid::REALM_ACTIVATE | RmiFid::REALM_TERMINATE | RmiFid::REALM_DESTROY => {
                r[1] = self.object(shared)
            }
            RmiFid::RTT_CREATE => {
                r[1] = self.object(shared);
                r[2] = a(self);
                r[3] = self.ipa();
                r[4] = self.level();
            }
            RmiFid::RTT_DESTROY | RmiFid::RTT_FOLD | RmiFid::RTT_READ_ENTRY => {
                r[1] = self.object(shared);
                r[2] = self.ipa();
                r[3] = self.level();
            }
            RmiFid::RTT_INIT_RIPAS => {
                r[1] = self.object(shared);
                r[2] = self.ipa();
                r[3] = self.top(r[2]);
            }
            RmiFid::RTT_SET_RIPAS => {
                r[1] = self.object(shared);
                r[2] = self.object(shared);
                r[3] = self.ipa();
                r[4] = self.top(r[3]);
            }
            RmiFid::RTT_DATA_MAP_INIT => {
                r[1] = self.object(shared);
                r[2] = a(self);
                r[3] = self.ipa();
                r[4] = if self.rng.chance(50) {
                    self.plan.scratch_page(page::CODE)
                } else {
                    a(self)
                };
                r[5] = self.small();
            }
            RmiFid::RTT_DATA_MAP | RmiFid::RTT_UNPROT_MAP => {
                r[1] = self.object(shared);
                r[2] = self.ipa();
                r[3] = self.top(r[2]);
                r[4] = self.map_flags();
                r[5] = if r[4] & map_flags::ADDR_TYPE_MASK == map_flags::ADDR_TYPE_LIST {
                    if self.rng.chance(70) {
                        self.plan.scratch_page(page::LIST_IN)
                    } else {
                        a(self)
                    }
                } else {
                    self.desc(shared)
                };
            }
            RmiFid::RTT_DATA_UNMAP | RmiFid::RTT_UNPROT_UNMAP => {
                r[1] = self.object(shared);
                r[2] = self.ipa();
                r[3] = self.top(r[2]);
                r[4] = self.map_flags();
                let list = r[4] & map_flags::ADDR_TYPE_MASK == map_flags::ADDR_TYPE_LIST;
                r[5] = if list || self.rng.chance(30) {
                    self.out_addr(shared)
                } else {
                    0
                };
            }
            RmiFid::REC_CREATE => {
                r[1] = self.object(shared);
                r[2] = a(self);
                r[3] = if self.rng.chance(60) {
                    self.plan.scratch_page(page::REC_PARAMS)
                } else {
                    a(self)
                };
            }
            RmiFid::REC_DESTROY => r[1] = self.object(shared),
            RmiFid::REC_ENTER => {
                r[1] = self.object(shared);
                r[2] = if self.rng.chance(70) {
                    self.plan.scratch_page(page::RUN)
                } else {
                    self.out_addr(shared)
                };
            }
            RmiFid::PSCI_COMPLETE => {
                r[1] = self.object(shared);
                r[2] = self.object(shared);
                r[3] = self.rng.pick(&[
                    0,
                    PsciStatus::Denied.to_reg(),
                    PsciStatus::AlreadyOn.to_reg(),
                    5,
                    u64::MAX,
                ]);
            }
            RmiFid::OP_MEM_DONATE => {
                r[1] = self.handle();
                r[2] = if self.rng.chance(70) {
                    self.plan.scratch_page(page::LIST_IN)
                } else {
                    a(self)
                };
                r[3] = self.small();
            }
            RmiFid::OP_MEM_RECLAIM => {
                r[1] = self.handle();
                r[2] = self.out_addr(shared);
                r[3] = self.small();
            }
            RmiFid::OP_CONTINUE | RmiFid::OP_CANCEL => {
                r[1] = self.handle();
                r[2] = self.small();
            }
            _ => {
                for v in r.iter_mut().skip(1) {
                    *v = if self.rng.chance(50) {
                        a(self)
                    } else {
                        self.small()
                    };
                }
            }
        }
        // Sometimes one argument (never an output address) is replaced by anything at all.
        // Range (un)delegations keep their checked arguments: one that reached past the
        // pool would move granules the host did not mean to give away.
        let ranged = matches!(
            fid,
            RmiFid::GRANULE_RANGE_DELEGATE | RmiFid::GRANULE_RANGE_UNDELEGATE
        );
        if self.rng.chance(15) && !super::check::writes_ns(fid) && !ranged {
            let i = 1 + self.rng.below(7) as usize;
            r[i] = if self.rng.chance(50) {
                self.rng.bits()
            } else {
                self.bad_addr()
            };
        }
        r
    }

    /// A base and top for a range (un)delegation: a base in this fuzzer's pool with a top
    /// that stays inside it, or a base that can never be delegated.
    pub(crate) fn range_args(&mut self) -> (u64, u64) {
        let pool = self.plan.pool;
        if self.rng.chance(75) {
            let base = self.own_granule();
            let room = (pool.end() - base) / G;
            let top = match self.rng.below(10) {
                0..=6 => base + (1 + self.rng.below(room.min(8))) * G,
                7 => base + (1 + self.rng.below(room)) * G,
                8 => {
                    base + self
                        .rng
                        .pick(&[0, 1, G - 1, G + 1])
                        .min((room * G).saturating_sub(1))
                }
                _ => base.wrapping_sub(G),
            };
            (base, top)
        } else {
            let base = self.bad_addr();
            (base, self.top(base))
        }
    }

    /// One garbage call.
    pub(crate) fn garbage<C: Conduit, M: HostMem, H: FuzzHw>(&mut self, io: &mut Io<'_, C, M, H>) {
        self.stats.garbage += 1;
        let regs = self.garbage_regs(io.shared);
        match super::check::fid_of(regs[0]) {
            Some(RmiFid::GRANULE_RANGE_DELEGATE) => {
                self.range_call(io, true, regs);
            }
            Some(RmiFid::GRANULE_RANGE_UNDELEGATE) => {
                self.range_call(io, false, regs);
            }
            _ => {
                self.call(io, regs);
            }
        }
    }

    /// Overwrites one of the structures in the scratch pages with a corrupted one.
    pub(crate) fn corrupt<C: Conduit, M: HostMem, H: FuzzHw>(&mut self, io: &mut Io<'_, C, M, H>) {
        use zerocopy::IntoBytes;
        self.stats.corruptions += 1;
        let which = self.rng.pick(&[
            page::REALM_PARAMS,
            page::REC_PARAMS,
            page::LIST_IN,
            page::RUN,
        ]);
        let pa = self.plan.scratch_page(which);
        match which {
            page::REALM_PARAMS => {
                let mut p = super::life::realm_params(self.own_granule());
                for _ in 0..1 + self.rng.below(3) {
                    match self.rng.below(9) {
                        0 => {
                            p.s2sz = self
                                .rng
                                .pick(&[0, 31, 32, 39, 40, 41, 48, 52, 64, u64::MAX])
                        }
                        1 => p.rtt_base = self.addr(io.shared),
                        2 => p.rtt_level_start = self.rng.pick(&[-2, -1, 0, 1, 2, 3, 4, i64::MIN]),
                        3 => p.rtt_num_start = self.rng.pick(&[0, 1, 2, 3, 16, 17, u32::MAX]),
                        4 => p.hash_algo = self.rng.bits() as u8,
                        5 => p.flags0 = self.rng.bits(),
                        6 => {
                            p.num_bps = self.small();
                            p.num_wps = self.small();
                        }
                        7 => p.num_aux_planes = self.small(),
                        _ => p.flags1 = self.rng.bits(),
                    }
                }
                io.mem.write(pa, p.as_bytes());
            }
            page::REC_PARAMS => {
                let mut p = super::life::rec_params(0);
                match self.rng.below(5) {
                    0 => p.flags = self.rng.bits(),
                    1 => p.mpidr = self.small(),
                    2 => p.pc = self.rng.bits(),
                    3 => p.gprs[self.rng.below(8) as usize] = self.rng.bits(),
                    _ => p.mpidr = self.rng.bits(),
                }
                io.mem.write(pa, p.as_bytes());
            }
            page::LIST_IN => {
                let mut list = [0u64; 16];
                for d in list.iter_mut() {
                    *d = self.desc(io.shared);
                }
                io.mem.write(pa, list.as_bytes());
            }
            _ => {
                let mut run = [0u64; 0x300 / 8];
                run[0] = self.rng.bits() & 0xff;
                for g in run[0x200 / 8..].iter_mut() {
                    *g = if self.rng.chance(50) {
                        self.rng.bits()
                    } else {
                        0
                    };
                }
                io.mem.write(pa, run.as_bytes());
            }
        }
    }

    /// A call to EL3 with bad arguments, whose answer is defined exactly.
    pub(crate) fn el3_call<C: Conduit, M: HostMem, H: FuzzHw>(&mut self, io: &mut Io<'_, C, M, H>) {
        self.stats.el3_calls += 1;
        let cpus = self.plan.cpus;
        let (regs, want): ([u64; 8], Option<u64>) = match self.rng.below(8) {
            0 => {
                // CPU_ON of a CPU that does not exist.
                let mpidr = self
                    .rng
                    .pick(&[cpus, 16, 0x10, 0x100, 0x1_0000, 1 << 32, u64::MAX]);
                (
                    [
                        u64::from(psci::CPU_ON_64),
                        mpidr,
                        self.plan.scratch,
                        0,
                        0,
                        0,
                        0,
                        0,
                    ],
                    Some(PsciStatus::InvalidParameters.to_reg()),
                )
            }
            1 => {
                // CPU_ON of an existing CPU at an entry point that is never valid.
                let mpidr = self.rng.below(cpus);
                let entry = match self.rng.below(3) {
                    0 => 0,
                    1 => self.plan.scratch + self.rng.pick(&[1, 2, 3]),
                    _ => self.bad_addr() | 1,
                };
                (
                    [u64::from(psci::CPU_ON_64), mpidr, entry, 0, 0, 0, 0, 0],
                    Some(PsciStatus::InvalidAddress.to_reg()),
                )
            }
            2 => (
                // CPU_ON of the boot CPU, which is on.
                [
                    u64::from(psci::CPU_ON_64),
                    0,
                    self.plan.scratch,
                    0,
                    0,
                    0,
                    0,
                    0,
                ],
                Some(PsciStatus::AlreadyOn.to_reg()),
            ),
            3 => {
                let level = self.small();
                let mpidr = self.rng.pick(&[0, 1, cpus, 0x100, u64::MAX]);
                let want = if level != 0 || mpidr >= cpus {
                    Some(PsciStatus::InvalidParameters.to_reg())
                } else {
                    None
                };
                (
                    [
                        u64::from(psci::AFFINITY_INFO_64),
                        mpidr,
                        level,
                        0,
                        0,
                        0,
                        0,
                        0,
                    ],
                    want,
                )
            }
            4 => {
                let any = self.rng.bits() as u32 | 0x100;
                let q = self.rng.pick(&[
                    psci::CPU_SUSPEND_64,
                    0x8400_0005,
                    0x8400_000B,
                    0xC400_0012,
                    any,
                ]);
                (
                    [u64::from(psci::FEATURES), u64::from(q), 0, 0, 0, 0, 0, 0],
                    Some(PsciStatus::NotSupported.to_reg()),
                )
            }
            5 => (
                [
                    u64::from(smccc::SMCCC_ARCH_FEATURES),
                    self.rng.bits() | 0x8000_0100,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                ],
                Some(smccc::NOT_SUPPORTED),
            ),
            6 => {
                // Calls nobody serves: other SiP numbers, the RMM-EL3 range, OEM and
                // standard service numbers.
                let bases = [
                    (0xC200_0002, 0xE0),
                    (0xC400_01B0, 0x20),
                    (0x8300_0000, 0x100),
                    (0x8400_0050, 0x100),
                    (0xC500_0000, 0x100),
                ];
                let (b, n) = self.rng.pick(&bases);
                let fid = b + self.rng.below(n);
                (
                    [fid, self.small(), self.small(), 0, 0, 0, 0, 0],
                    Some(SMC_UNKNOWN),
                )
            }
            _ => (
                [
                    u64::from(psci::CPU_SUSPEND_64),
                    self.small(),
                    self.plan.scratch,
                    0,
                    0,
                    0,
                    0,
                    0,
                ],
                Some(PsciStatus::NotSupported.to_reg()),
            ),
        };
        let got = io.conduit.smc(regs);
        self.stats.calls += 1;
        self.stats.other += 1;
        let ok = match want {
            Some(w) => got[0] == w,
            None => matches!(got[0], psci::AFFINITY_ON | psci::AFFINITY_OFF | 2),
        };
        if !ok {
            self.finding(
                "EL3 did not give the defined answer to a bad call",
                regs,
                got,
            );
        }
    }
}
