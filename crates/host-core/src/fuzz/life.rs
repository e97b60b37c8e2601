//! The valid realm lifecycles the fuzzer interleaves with its garbage: a realm built the way
//! a hypervisor builds one (RD, RTTs, RIPAS, measured and unmeasured data, an unprotected
//! mapping, two RECs through stateful operations), activated, entered on its RECs a few
//! times, and torn down with every granule undelegated. A step that does not succeed (the
//! garbage got in the way) breaks the lifecycle: it is torn down as far as it goes, and the
//! sweep gets the rest.

use super::gen::UNPROT;
use super::{page, slot, FuzzHw, Fuzzer, Io};
use crate::rmi::{Conduit, HostMem};
use cca_abi::rmi::{
    exit_reason, map_flags, mem_req, rec_enter_flags, AddrRangeDesc, BlockSize, DonateReq,
    RealmParams, RecParams, RmiFid, RmiStatus, REC_PARAMS_FLAG_RUNNABLE,
};
use cca_abi::GRANULE_SIZE as G;
use zerocopy::{FromZeros, IntoBytes};

/// `ldr x0, [x1]`: a load from an unprotected IPA that is not mapped, which exits to the
/// host (an MMIO read the host may emulate).
const LDR_X0_X1: u32 = 0xF940_0020;
/// `b .-4`.
const B_BACK: u32 = 0x17FF_FFFF;

/// The realm's code: at its entry point and at every exception vector, a load that exits
/// to the host followed by a branch back to it. Whatever the realm is made to do (an MMIO
/// completion, an injected abort, an interrupt), it exits again; if the garbage mapped an
/// NS page at the IPA it loads from, it spins until the host's timer takes it out.
///
/// The realm never stores: any NS page the garbage maps into it (`RTT_UNPROT_MAP` may name
/// a watched page, another fuzzer's pool or the host's own memory) is legitimately writable
/// by the realm, and a store there would be the realm's doing, not the RMM's. With a realm
/// that only reads, a watched page that changes can only have been written by the RMM or
/// EL3.
pub(crate) fn code_page() -> [u8; G as usize] {
    let mut p = [0u8; G as usize];
    for off in (0..0x800).step_by(0x80) {
        p[off..off + 4].copy_from_slice(&LDR_X0_X1.to_le_bytes());
        p[off + 4..off + 8].copy_from_slice(&B_BACK.to_le_bytes());
    }
    p
}

/// The lifecycle realm's parameters: 40-bit IPAs, two concatenated level 1 starting tables
/// at `root`, SHA-256, one breakpoint and one watchpoint.
pub(crate) fn realm_params(root: u64) -> RealmParams {
    let mut p = RealmParams::new_zeroed();
    p.s2sz = 40;
    p.num_bps = 1;
    p.num_wps = 1;
    p.rtt_base = root;
    p.rtt_level_start = 1;
    p.rtt_num_start = 2;
    p.rpv[..8].copy_from_slice(b"hostile!");
    p
}

/// REC `index`: runnable, entering at IPA 0 with x1 an unmapped unprotected IPA.
pub(crate) fn rec_params(index: u64) -> RecParams {
    let mut p = RecParams::new_zeroed();
    p.flags = REC_PARAMS_FLAG_RUNNABLE;
    p.mpidr = cca_abi::rmi::rec_mpidr::from_index(index);
    p.pc = 0;
    p.gprs[0] = 0x1234_5678;
    p.gprs[1] = UNPROT + 0x10_0000;
    p
}

/// A descriptor of the one delegated granule at `pa`.
fn single(pa: u64) -> u64 {
    AddrRangeDesc {
        size: BlockSize::L3_4K,
        count: 1,
        addr: pa,
        undelegated: false,
    }
    .encode()
}

/// Where a lifecycle is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    #[default]
    Create,
    Tables,
    Ripas,
    DataInit,
    DataMap,
    Unprot,
    Recs,
    Activate,
    Enter,
    Terminate,
    DestroyRecs,
    Unmap,
    DestroyTables,
    Destroy,
}

/// One lifecycle's granules.
#[derive(Clone, Debug, Default)]
pub(crate) struct Life {
    stage: Stage,
    broken: bool,
    pub(crate) rd: u64,
    root: u64,
    rtts: [u64; 4],
    data: [u64; 3],
    pub(crate) recs: [u64; 2],
    enters: u32,
}

/// The lifecycle's tables: (IPA, level), parents first.
const TABLES: [(u64, u64); 4] = [(0, 2), (0, 3), (UNPROT, 2), (UNPROT, 3)];

impl Fuzzer {
    /// Delegates `n` granules of the pool that are NS, aligned to `align` granules.
    pub(crate) fn alloc<C: Conduit, M: HostMem, H: FuzzHw>(
        &mut self,
        io: &mut Io<'_, C, M, H>,
        n: u64,
        align: u64,
    ) -> Option<u64> {
        let pool = self.plan.pool;
        let align = align.max(1);
        let start = self.rng.below(pool.granules) / align * align;
        let mut i = start;
        for _ in 0..pool.granules / align + 1 {
            if i + n > pool.granules {
                i = 0;
            }
            if (0..n).all(|k| !self.shadow.delegated(pool.granule(i + k))) {
                let base = pool.granule(i);
                let top = base + n * G;
                let mut next = base;
                while next < top {
                    let regs = [
                        u64::from(RmiFid::GRANULE_RANGE_DELEGATE.fid()),
                        next,
                        top,
                        0,
                        0,
                        0,
                        0,
                        0,
                    ];
                    let got = self.range_call(io, true, regs);
                    if got[0] != 0 || got[1] <= next {
                        return None;
                    }
                    next = got[1];
                }
                return Some(base);
            }
            i += align;
        }
        None
    }

    /// Undelegates one granule of the pool (if it is delegated); true when it is NS after.
    pub(crate) fn free<C: Conduit, M: HostMem, H: FuzzHw>(
        &mut self,
        io: &mut Io<'_, C, M, H>,
        pa: u64,
    ) -> bool {
        if !self.plan.pool.contains(pa) || !self.shadow.delegated(pa) {
            return !self.shadow.delegated(pa);
        }
        let regs = [
            u64::from(RmiFid::GRANULE_RANGE_UNDELEGATE.fid()),
            pa,
            pa + G,
            0,
            0,
            0,
            0,
            0,
        ];
        self.range_call(io, false, regs)[0] == 0
    }

    fn rmi<C: Conduit, M: HostMem, H: FuzzHw>(
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

    /// Drives a stateful operation from its first result to the end: donates delegated
    /// granules of the pool when asked, reclaims (and undelegates) when asked, continues
    /// otherwise. Returns the last result.
    pub(crate) fn drive_sro<C: Conduit, M: HostMem, H: FuzzHw>(
        &mut self,
        io: &mut Io<'_, C, M, H>,
        first: [u64; 8],
    ) -> [u64; 8] {
        let mut r = first;
        let handle = r[1];
        for _ in 0..64 {
            if r[0] & 0xff != RmiStatus::Incomplete as u64 || r[0] >> 16 != 0 {
                return r;
            }
            let req = ((r[0] >> 8) & 3) as u8;
            r = match req {
                mem_req::DONATE => {
                    let want = DonateReq::decode(r[2]);
                    let n = u64::from(want.count).clamp(1, 16);
                    let mut given = [0u64; 16];
                    if want.contig {
                        let Some(base) = self.alloc(io, n, n) else {
                            return r;
                        };
                        for (k, g) in given.iter_mut().enumerate().take(n as usize) {
                            *g = base + k as u64 * G;
                        }
                    } else {
                        for k in 0..n as usize {
                            let Some(g) = self.alloc(io, 1, 1) else {
                                self.give_back(io, &given[..k]);
                                return r;
                            };
                            given[k] = g;
                        }
                    }
                    let mut list = [0u64; 16];
                    for (d, &g) in list.iter_mut().zip(&given[..n as usize]) {
                        *d = single(g);
                    }
                    let lp = self.plan.scratch_page(page::LIST_IN);
                    io.mem.write(lp, list[..n as usize].as_bytes());
                    let r2 = self.rmi(io, RmiFid::OP_MEM_DONATE, &[handle, lp, n]);
                    // What the operation did not take (all of it when the call failed:
                    // a stale handle, or an operation that moved on) goes back to the
                    // host, or a sweep feeding stale handles drains the pool.
                    let taken = if r2[0] & 0xff == RmiStatus::Incomplete as u64 || r2[0] == 0 {
                        r2[1].min(n)
                    } else {
                        0
                    };
                    self.give_back(io, &given[taken as usize..n as usize]);
                    r2
                }
                mem_req::RECLAIM => {
                    let lp = self.plan.scratch_page(page::LIST_OUT);
                    let r2 = self.rmi(io, RmiFid::OP_MEM_RECLAIM, &[handle, lp, 16]);
                    let got = r2[1].min(16) as usize;
                    let mut raw = [0u8; 128];
                    io.mem.read(lp, &mut raw[..got * 8]);
                    for k in 0..got {
                        let mut w = [0u8; 8];
                        w.copy_from_slice(&raw[k * 8..k * 8 + 8]);
                        let d = AddrRangeDesc::decode(u64::from_le_bytes(w));
                        let n = u64::from(d.count) * (d.size.bytes() / G);
                        for j in 0..n.min(512) {
                            self.free(io, d.addr + j * G);
                        }
                    }
                    r2
                }
                _ => self.rmi(io, RmiFid::OP_CONTINUE, &[handle, 0]),
            };
        }
        r
    }

    /// Undelegates granules a donation did not take.
    fn give_back<C: Conduit, M: HostMem, H: FuzzHw>(
        &mut self,
        io: &mut Io<'_, C, M, H>,
        granules: &[u64],
    ) {
        for &g in granules {
            self.free(io, g);
        }
    }

    fn life_ok(&mut self, ok: bool) {
        if !ok {
            self.life.broken = true;
        }
    }

    /// One step of the current lifecycle.
    pub(crate) fn life_step<C: Conduit, M: HostMem, H: FuzzHw>(
        &mut self,
        io: &mut Io<'_, C, M, H>,
    ) {
        let stage = self.life.stage;
        let next = match stage {
            Stage::Create => {
                let (Some(rd), Some(root)) = (self.alloc(io, 1, 1), self.alloc(io, 2, 2)) else {
                    self.life.broken = true;
                    self.life.stage = Stage::Destroy;
                    return;
                };
                self.life.rd = rd;
                self.life.root = root;
                let pp = self.plan.scratch_page(page::REALM_PARAMS);
                io.mem.write(pp, realm_params(root).as_bytes());
                let r = self.rmi(io, RmiFid::REALM_CREATE, &[rd, pp]);
                if r[0] != 0 {
                    for g in [rd, root, root + G] {
                        self.free(io, g);
                    }
                    self.life.rd = 0;
                    self.life.broken = true;
                    self.life.stage = Stage::Destroy;
                    return;
                }
                Stage::Tables
            }
            Stage::Tables => {
                let rd = self.life.rd;
                let mut ok = true;
                for (k, (ipa, level)) in TABLES.iter().enumerate() {
                    let Some(t) = self.alloc(io, 1, 1) else {
                        ok = false;
                        break;
                    };
                    self.life.rtts[k] = t;
                    ok &= self.rmi(io, RmiFid::RTT_CREATE, &[rd, t, *ipa, *level])[0] == 0;
                }
                self.life_ok(ok);
                Stage::Ripas
            }
            Stage::Ripas => {
                let rd = self.life.rd;
                let mut next = 0;
                for _ in 0..4 {
                    let r = self.rmi(io, RmiFid::RTT_INIT_RIPAS, &[rd, next, 0x20_0000]);
                    if r[0] != 0 || r[1] <= next {
                        break;
                    }
                    next = r[1];
                    if next >= 0x20_0000 {
                        break;
                    }
                }
                self.life_ok(next == 0x20_0000);
                Stage::DataInit
            }
            Stage::DataInit => {
                let rd = self.life.rd;
                let src = self.plan.scratch_page(page::CODE);
                let mut ok = true;
                for (k, flags) in [1u64, 0].iter().enumerate() {
                    let Some(d) = self.alloc(io, 1, 1) else {
                        ok = false;
                        break;
                    };
                    self.life.data[k] = d;
                    let ipa = k as u64 * G;
                    ok &=
                        self.rmi(io, RmiFid::RTT_DATA_MAP_INIT, &[rd, d, ipa, src, *flags])[0] == 0;
                }
                self.life_ok(ok);
                Stage::DataMap
            }
            Stage::DataMap => {
                let rd = self.life.rd;
                let ok = match self.alloc(io, 2, 1) {
                    Some(d) => {
                        self.life.data[2] = d;
                        let desc = AddrRangeDesc {
                            size: BlockSize::L3_4K,
                            count: 2,
                            addr: d,
                            undelegated: false,
                        }
                        .encode();
                        let r = self.rmi(
                            io,
                            RmiFid::RTT_DATA_MAP,
                            &[rd, 2 * G, 4 * G, map_flags::ADDR_TYPE_SINGLE, desc],
                        );
                        r[0] == 0 && r[1] == 4 * G
                    }
                    None => false,
                };
                self.life_ok(ok);
                Stage::Unprot
            }
            Stage::Unprot => {
                let rd = self.life.rd;
                let shared = self.plan.scratch_page(page::SHARED);
                let desc = AddrRangeDesc {
                    size: BlockSize::L3_4K,
                    count: 1,
                    addr: shared,
                    undelegated: true,
                }
                .encode();
                let flags = map_flags::ADDR_TYPE_SINGLE
                    | (6 << map_flags::MEMATTR_SHIFT)
                    | (3 << map_flags::S2AP_SHIFT);
                let r = self.rmi(
                    io,
                    RmiFid::RTT_UNPROT_MAP,
                    &[rd, UNPROT + G, UNPROT + 2 * G, flags, desc],
                );
                self.life_ok(r[0] == 0);
                Stage::Recs
            }
            Stage::Recs => {
                let rd = self.life.rd;
                let mut ok = true;
                for k in 0..2 {
                    let Some(rec) = self.alloc(io, 1, 1) else {
                        ok = false;
                        break;
                    };
                    self.life.recs[k] = rec;
                    let pp = self.plan.scratch_page(page::REC_PARAMS);
                    io.mem.write(pp, rec_params(k as u64).as_bytes());
                    let first = self.rmi(io, RmiFid::REC_CREATE, &[rd, rec, pp]);
                    let done = self.drive_sro(io, first);
                    ok &= done[0] == 0;
                }
                self.life_ok(ok);
                Stage::Activate
            }
            Stage::Activate => {
                let rd = self.life.rd;
                let ok = self.rmi(io, RmiFid::REALM_ACTIVATE, &[rd])[0] == 0;
                self.life_ok(ok);
                if ok {
                    io.shared.publish(slot::RD, rd);
                    io.shared.publish(slot::REC0, self.life.recs[0]);
                    io.shared.publish(slot::REC1, self.life.recs[1]);
                }
                self.life.enters = 2 + self.rng.below(6) as u32;
                Stage::Enter
            }
            Stage::Enter => {
                let rec = self.life.recs[self.life.enters as usize % 2];
                let run = self.plan.scratch_page(page::RUN);
                let flags = self.rng.pick(&[
                    0,
                    rec_enter_flags::EMUL_MMIO,
                    rec_enter_flags::EMUL_MMIO,
                    rec_enter_flags::INJECT_SEA,
                    rec_enter_flags::TRAP_WFI | rec_enter_flags::TRAP_WFE,
                    rec_enter_flags::RIPAS_RESPONSE,
                ]);
                let mut enter = [0u64; 0x300 / 8];
                enter[0] = flags;
                enter[0x200 / 8] = self.rng.bits();
                io.mem.write(run, enter.as_bytes());
                let r = self.rmi(io, RmiFid::REC_ENTER, &[rec, run]);
                if r[0] == 0 {
                    self.stats.entered += 1;
                    let mut reason = [0u8; 8];
                    io.mem.read(run + 0x800, &mut reason);
                    let reason = u64::from_le_bytes(reason);
                    if reason > exit_reason::VDEV_P2P_BINDING {
                        self.finding(
                            "REC_ENTER reported an undefined exit reason",
                            [0, rec, run, 0, 0, 0, 0, 0],
                            r,
                        );
                    }
                } else {
                    self.life_ok(false);
                }
                self.life.enters = self.life.enters.saturating_sub(1);
                if self.life.enters == 0 || self.life.broken {
                    Stage::Terminate
                } else {
                    Stage::Enter
                }
            }
            Stage::Terminate => {
                for s in [slot::RD, slot::REC0, slot::REC1] {
                    io.shared.publish(s, 0);
                }
                let rd = self.life.rd;
                let r = self.rmi(io, RmiFid::REALM_TERMINATE, &[rd]);
                self.life_ok(r[0] == 0);
                Stage::DestroyRecs
            }
            Stage::DestroyRecs => {
                let mut ok = true;
                for k in 0..2 {
                    let rec = self.life.recs[k];
                    if rec == 0 {
                        continue;
                    }
                    let first = self.rmi(io, RmiFid::REC_DESTROY, &[rec]);
                    let done = self.drive_sro(io, first);
                    ok &= done[0] == 0;
                    if done[0] == 0 {
                        self.tracker.recs.retain(|&r| r != rec);
                        ok &= self.free(io, rec);
                        self.life.recs[k] = 0;
                    }
                }
                self.life_ok(ok);
                Stage::Unmap
            }
            Stage::Unmap => {
                let rd = self.life.rd;
                let mut ok = true;
                let r = self.rmi(
                    io,
                    RmiFid::RTT_DATA_UNMAP,
                    &[rd, 0, 2 * G, map_flags::ADDR_TYPE_NONE, 0],
                );
                ok &= r[0] == 0;
                let r = self.rmi(
                    io,
                    RmiFid::RTT_DATA_UNMAP,
                    &[rd, 2 * G, 4 * G, map_flags::ADDR_TYPE_NONE, 0],
                );
                ok &= r[0] == 0;
                let r = self.rmi(
                    io,
                    RmiFid::RTT_UNPROT_UNMAP,
                    &[rd, UNPROT + G, UNPROT + 2 * G, map_flags::ADDR_TYPE_NONE, 0],
                );
                ok &= r[0] == 0;
                if ok {
                    self.tracker.maps.retain(|&(r, _, _, _)| r != rd);
                }
                for k in 0..3 {
                    let d = self.life.data[k];
                    let n = if k == 2 { 2 } else { 1 };
                    for j in 0..n {
                        if d != 0 {
                            ok &= self.free(io, d + j * G);
                        }
                    }
                    self.life.data[k] = 0;
                }
                self.life_ok(ok);
                Stage::DestroyTables
            }
            Stage::DestroyTables => {
                let rd = self.life.rd;
                let mut ok = true;
                for k in (0..4).rev() {
                    let t = self.life.rtts[k];
                    if t == 0 {
                        continue;
                    }
                    let (ipa, level) = TABLES[k];
                    let r = self.rmi(io, RmiFid::RTT_DESTROY, &[rd, ipa, level]);
                    ok &= r[0] == 0;
                    if r[0] == 0 {
                        ok &= self.free(io, t);
                        self.life.rtts[k] = 0;
                    }
                }
                self.life_ok(ok);
                Stage::Destroy
            }
            Stage::Destroy => {
                let rd = self.life.rd;
                let mut ok = !self.life.broken;
                if rd != 0 {
                    let r = self.rmi(io, RmiFid::REALM_DESTROY, &[rd]);
                    ok &= r[0] == 0;
                    if r[0] == 0 {
                        ok &= self.free(io, rd);
                        for g in [self.life.root, self.life.root + G] {
                            ok &= self.free(io, g);
                        }
                    }
                }
                if ok {
                    self.stats.lifecycles += 1;
                } else {
                    self.stats.lifecycles_broken += 1;
                }
                // Whatever could not be freed is the sweep's.
                self.life = Life::default();
                return;
            }
        };
        // A broken build goes straight to the teardown.
        self.life.stage = if self.life.broken && next < Stage::Terminate {
            Stage::Terminate
        } else {
            next
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_realm_code_never_writes_memory() {
        let page = code_page();
        let words: Vec<u32> = page
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        for (i, &w) in words.iter().enumerate() {
            // Only 64-bit loads (unsigned offset), unconditional branches, or zero.
            let load = w & 0xFFC0_0000 == 0xF940_0000;
            let branch = w >> 26 == 0b00_0101;
            assert!(
                w == 0 || load || branch,
                "word {i:#x} ({w:#010x}) is neither a load nor a branch"
            );
        }
        // The entry point and every one of the 16 vectors starts with the load.
        for v in 0..16 {
            assert_eq!(words[v * 0x20], LDR_X0_X1, "vector {v}");
            assert_eq!(words[v * 0x20 + 1], B_BACK, "vector {v}");
        }
    }
}
