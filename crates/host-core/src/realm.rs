//! Building a realm over RMI the way a hypervisor does (KVM's order, TF-RMM main's ABI), then
//! tearing it down: RD and starting-level RTTs, an RTT tree, initial RIPAS, measured and
//! unmeasured data, range maps and unmaps (protected and unprotected, 4 KiB and 2 MiB), RECs
//! created and destroyed through stateful operations, activation, and full teardown with every
//! granule undelegated. Deliberate mistakes show the RMM's rejections. The host predicts the
//! RIM with `cca-measure` as it goes.

use crate::boot::{Checker, Tally};
use crate::rmi::{Conduit, HostMem, Outcome, Rmi};
use cca_abi::rmi::{mem_req, AddrRangeDesc, BlockSize, RealmParams, RecParams, RmiFid, RmiStatus};
use cca_abi::GRANULE_SIZE as G;
use cca_measure::Measurement;
use zerocopy::{FromZeros, IntoBytes};

/// IPA width of the demonstration realm (protected half below 2^39).
pub const S2SZ: u64 = 40;
/// First unprotected IPA.
pub const UNPROTECTED: u64 = 1 << (S2SZ - 1);
/// `RmiRttEntryState` values.
pub mod entry_state {
    /// Unassigned.
    pub const UNASSIGNED: u64 = 0;
    /// Assigned.
    pub const ASSIGNED: u64 = 1;
    /// Table.
    pub const TABLE: u64 = 2;
}

/// Host memory the sequence may use.
#[derive(Clone, Copy, Debug)]
pub struct RealmPlan {
    /// Start of a Non-secure region used for granules (2 MiB aligned).
    pub pool_base: u64,
    /// Size of that region (at least 8 MiB).
    pub pool_size: u64,
}

/// A bump allocator over the host's region, handing out granules it delegates.
pub(crate) struct Pool {
    pub(crate) next: u64,
    pub(crate) end: u64,
}

impl Pool {
    pub(crate) fn take(&mut self, n: u64, align: u64) -> u64 {
        let base = (self.next + align - 1) & !(align - 1);
        let end = base + n * G;
        assert!(end <= self.end, "host granule pool exhausted");
        self.next = end;
        base
    }
}

/// Predicted and actual realm state the sequence keeps.
struct Realm {
    rtts: [(u64, u64, u64); 4],
    rim: Measurement,
}

pub(crate) fn delegate<C: Conduit>(c: &mut Checker<'_, '_, C>, base: u64, n: u64) -> bool {
    let r = crate::boot::range_loop(c.rmi, RmiFid::GRANULE_RANGE_DELEGATE, base, base + n * G);
    c.check(
        r.is_ok(),
        format_args!("delegated {n} granule(s) at {base:#x}"),
    )
}

pub(crate) fn undelegate<C: Conduit>(c: &mut Checker<'_, '_, C>, base: u64, n: u64) -> bool {
    let r = crate::boot::range_loop(c.rmi, RmiFid::GRANULE_RANGE_UNDELEGATE, base, base + n * G);
    c.check(
        r.is_ok(),
        format_args!("undelegated {n} granule(s) at {base:#x}"),
    )
}

/// Runs one SRO to completion: donates or reclaims as the RMM asks, then continues.
/// Returns the final outcome (not INCOMPLETE) or the first unexpected one.
pub(crate) fn drive_sro<C: Conduit, M: HostMem>(
    c: &mut Checker<'_, '_, C>,
    mem: &mut M,
    first: Outcome,
    list_page: u64,
    aux: &mut impl FnMut(&mut Checker<'_, '_, C>, u64) -> u64,
    reclaimed: &mut u64,
) -> Outcome {
    let mut r = first;
    let handle = r.regs[1];
    for _ in 0..64 {
        if r.status() != Some(RmiStatus::Incomplete) {
            return r;
        }
        let req = ((r.regs[0] >> 8) & 3) as u8;
        r = match req {
            mem_req::DONATE => {
                let want = (r.regs[2] >> 2) & 0x3fff;
                let base = aux(c, want);
                let mut list = [0u64; 16];
                let n = want.min(16);
                for (i, d) in list.iter_mut().enumerate().take(n as usize) {
                    *d = AddrRangeDesc {
                        size: BlockSize::L3_4K,
                        count: 1,
                        addr: base + i as u64 * G,
                        undelegated: false,
                    }
                    .encode();
                }
                mem.write(list_page, list[..n as usize].as_bytes());
                c.rmi.call(RmiFid::OP_MEM_DONATE, &[handle, list_page, n])
            }
            mem_req::RECLAIM => {
                let r2 = c.rmi.call(RmiFid::OP_MEM_RECLAIM, &[handle, list_page, 16]);
                let got = r2.regs[1].min(16);
                let mut raw = [0u8; 128];
                mem.read(list_page, &mut raw[..(got * 8) as usize]);
                for i in 0..got as usize {
                    let d = AddrRangeDesc::decode(u64::from_le_bytes(
                        raw[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]),
                    ));
                    let n = u64::from(d.count) * (d.size.bytes() / G);
                    undelegate(c, d.addr, n);
                    *reclaimed += n;
                }
                r2
            }
            _ => c.rmi.call(RmiFid::OP_CONTINUE, &[handle, 0]),
        };
    }
    r
}

/// The parameters of a realm with this crate's layout: `S2SZ`-bit IPAs, the RMM's
/// breakpoint and watchpoint counts from feature register 0, SHA-256, and two concatenated
/// level 1 starting tables at `root`.
pub(crate) fn realm_params(feat0: u64, root: u64) -> RealmParams {
    let mut p = RealmParams::new_zeroed();
    p.s2sz = S2SZ;
    p.num_bps = (feat0 >> 14) & 0x3f;
    p.num_wps = (feat0 >> 20) & 0x3f;
    p.hash_algo = 0;
    p.rpv[..8].copy_from_slice(b"cca-demo");
    p.rtt_base = root;
    p.rtt_level_start = 1;
    p.rtt_num_start = 2;
    p
}

/// Delegates a granule from `pool` and makes it the RTT at `level` covering `ipa`.
/// Returns its address, or `None` (with the granule undelegated again) if `RTT_CREATE`
/// did not succeed.
pub(crate) fn create_rtt<C: Conduit>(
    c: &mut Checker<'_, '_, C>,
    pool: &mut Pool,
    rd: u64,
    ipa: u64,
    level: u64,
) -> Option<u64> {
    let t = pool.take(1, G);
    delegate(c, t, 1);
    let r = c.expect(RmiFid::RTT_CREATE, &[rd, t, ipa, level], RmiStatus::Success);
    if r.status() == Some(RmiStatus::Success) {
        Some(t)
    } else {
        undelegate(c, t, 1);
        None
    }
}

/// Sets the RIPAS of `[base, top)` to RAM with `RTT_INIT_RIPAS`, calling again from where
/// each call stopped. Returns true when the whole range was covered.
pub(crate) fn init_ripas<C: Conduit>(
    c: &mut Checker<'_, '_, C>,
    rd: u64,
    base: u64,
    top: u64,
) -> bool {
    let mut next = base;
    for _ in 0..8 {
        let r = c.expect(RmiFid::RTT_INIT_RIPAS, &[rd, next, top], RmiStatus::Success);
        if r.status() != Some(RmiStatus::Success) || r.regs[1] <= next {
            break;
        }
        next = r.regs[1];
        if next >= top {
            break;
        }
    }
    c.check(
        next == top,
        format_args!("RIPAS of [{base:#x}, {top:#x}) initialised to RAM"),
    )
}

/// Creates REC `index` of `rd` in the delegated granule `rec` from `params` through the
/// `REC_CREATE` stateful operation, donating the auxiliary granules `aux` hands out.
/// `scratch` and `list_page` are Non-secure pages for the parameters and address lists.
#[allow(clippy::too_many_arguments)]
pub(crate) fn create_rec<C: Conduit, M: HostMem>(
    c: &mut Checker<'_, '_, C>,
    mem: &mut M,
    rd: u64,
    rec: u64,
    params: &RecParams,
    index: usize,
    pages: (u64, u64),
    aux: &mut impl FnMut(&mut Checker<'_, '_, C>, u64) -> u64,
) -> bool {
    let (scratch, list_page) = pages;
    mem.write(scratch, params.as_bytes());
    let first = c.rmi.call(RmiFid::REC_CREATE, &[rd, rec, scratch]);
    c.check(
        first.status() == Some(RmiStatus::Incomplete)
            && (first.regs[0] >> 8) & 3 == u64::from(mem_req::DONATE),
        format_args!("REC_CREATE starts an SRO asking for memory"),
    );
    let mut reclaimed = 0;
    let done = drive_sro(c, mem, first, list_page, aux, &mut reclaimed);
    let runnable = params.flags & cca_abi::rmi::REC_PARAMS_FLAG_RUNNABLE != 0;
    c.check(
        done.status() == Some(RmiStatus::Success),
        format_args!(
            "REC {index} created (mpidr {}, runnable {runnable})",
            params.mpidr
        ),
    )
}

/// Destroys the REC at `rec` through the `REC_DESTROY` stateful operation, undelegating the
/// auxiliary granules it reclaims (counted in `reclaimed`), then undelegates the REC granule.
pub(crate) fn destroy_rec<C: Conduit, M: HostMem>(
    c: &mut Checker<'_, '_, C>,
    mem: &mut M,
    rec: u64,
    list_page: u64,
    reclaimed: &mut u64,
) -> bool {
    let mut nothing = |_: &mut Checker<'_, '_, C>, _: u64| 0u64;
    let first = c.rmi.call(RmiFid::REC_DESTROY, &[rec]);
    let done = drive_sro(c, mem, first, list_page, &mut nothing, reclaimed);
    let ok = c.check(
        done.status() == Some(RmiStatus::Success),
        format_args!("REC at {rec:#x} destroyed"),
    );
    ok && undelegate(c, rec, 1)
}

/// Builds, runs the checks on, and tears down a realm. Returns the tally.
pub fn run<C: Conduit, M: HostMem>(rmi: &mut Rmi<'_, C>, mem: &mut M, plan: &RealmPlan) -> Tally {
    let mut c = Checker::new(rmi);
    let mut pool = Pool {
        next: plan.pool_base,
        end: plan.pool_base + plan.pool_size,
    };
    let scratch = pool.take(1, G); // NS page for structures
    let list_page = pool.take(1, G); // NS page for address lists
    let feat0 = c.rmi.call(RmiFid::FEATURES, &[0]).regs[1];

    c.say(format_args!("-- realm creation"));
    let rd = pool.take(1, G);
    let root = pool.take(2, 2 * G);
    delegate(&mut c, rd, 1);
    delegate(&mut c, root, 2);
    let mut p = realm_params(feat0, root);
    p.rtt_num_start = 1;
    mem.write(scratch, p.as_bytes());
    c.expect(RmiFid::REALM_CREATE, &[rd, scratch], RmiStatus::ErrorInput);
    p.rtt_num_start = 2;
    p.s2sz = 60;
    mem.write(scratch, p.as_bytes());
    c.expect(RmiFid::REALM_CREATE, &[rd, scratch], RmiStatus::ErrorInput);
    p.s2sz = S2SZ;
    mem.write(scratch, p.as_bytes());
    c.expect(RmiFid::REALM_CREATE, &[rd, scratch], RmiStatus::Success);
    let Some(rim) = Measurement::realm_create(&p) else {
        c.check(false, format_args!("hash algorithm"));
        return c.tally;
    };
    let mut realm = Realm {
        rtts: [(0, 0, 0); 4],
        rim,
    };
    c.say(format_args!(
        "   predicted RIM after REALM_CREATE: {}",
        realm.rim
    ));

    c.say(format_args!("-- stage 2 tables"));
    let tables = [(0u64, 2u64), (0, 3), (UNPROTECTED, 2), (UNPROTECTED, 3)];
    for (i, (ipa, level)) in tables.iter().enumerate() {
        let t = create_rtt(&mut c, &mut pool, rd, *ipa, *level).unwrap_or(0);
        realm.rtts[i] = (t, *ipa, *level);
    }
    let t = pool.take(1, G);
    delegate(&mut c, t, 1);
    let r = c.expect(
        RmiFid::RTT_CREATE,
        &[rd, t, 0x4000_0000, 3],
        RmiStatus::ErrorRtt,
    );
    c.check(
        (r.regs[0] >> 8) & 0xff == 1,
        format_args!("the walk for a level 3 table without its level 2 parent stops at level 1"),
    );
    c.expect(RmiFid::RTT_CREATE, &[rd, t, 0, 2], RmiStatus::ErrorRtt);
    undelegate(&mut c, t, 1);
    let r = c.expect(RmiFid::RTT_READ_ENTRY, &[rd, 0, 2], RmiStatus::Success);
    c.check(
        r.regs[1] == 2 && r.regs[2] == entry_state::TABLE,
        format_args!("RTT_READ_ENTRY(0, level 2) is a TABLE"),
    );

    c.say(format_args!("-- initial RIPAS and measured data"));
    init_ripas(&mut c, rd, 0, 0x20_0000);
    let data = pool.take(3, G);
    delegate(&mut c, data, 3);
    let src = pool.take(1, G);
    for (i, flags) in [1u64, 1, 0].iter().enumerate() {
        let mut page = [0u8; 4096];
        for (j, b) in page.iter_mut().enumerate() {
            *b = ((i * 4096 + j) % 251) as u8;
        }
        mem.write(src, &page);
        let ipa = i as u64 * G;
        c.expect(
            RmiFid::RTT_DATA_MAP_INIT,
            &[rd, data + ipa, ipa, src, *flags],
            RmiStatus::Success,
        );
        realm.rim.extend_data(ipa, *flags, &page);
    }
    let r = c.expect(
        RmiFid::RTT_DATA_MAP_INIT,
        &[rd, data, 0x1000, src, 1],
        RmiStatus::ErrorRtt,
    );
    c.check(
        (r.regs[0] >> 8) & 0xff == 3,
        format_args!("mapping an assigned IPA again fails at level 3"),
    );
    c.expect(
        RmiFid::RTT_DATA_MAP_INIT,
        &[rd, data, 0x6000, src, 1],
        RmiStatus::ErrorInput,
    );
    let r = c.expect(RmiFid::RTT_READ_ENTRY, &[rd, 0x1000, 3], RmiStatus::Success);
    c.check(
        r.regs[2] == entry_state::ASSIGNED && r.regs[3] == data + G && r.regs[4] == 1,
        format_args!("IPA 0x1000 is ASSIGNED to {:#x} with RIPAS RAM", data + G),
    );
    c.say(format_args!(
        "   predicted RIM after measured data: {}",
        realm.rim
    ));

    c.say(format_args!(
        "-- range maps: 4 KiB and 2 MiB protected, 4 KiB unprotected"
    ));
    let pages = pool.take(2, G);
    delegate(&mut c, pages, 2);
    let single = AddrRangeDesc {
        size: BlockSize::L3_4K,
        count: 2,
        addr: pages,
        undelegated: false,
    }
    .encode();
    let r = c.expect(
        RmiFid::RTT_DATA_MAP,
        &[rd, 0x3000, 0x5000, 1, single],
        RmiStatus::Success,
    );
    c.check(
        r.regs[1] == 0x5000,
        format_args!("DATA_MAP covered [0x3000, 0x5000)"),
    );
    let block = pool.take(512, 0x20_0000);
    delegate(&mut c, block, 512);
    let desc = AddrRangeDesc {
        size: BlockSize::L2_2M,
        count: 1,
        addr: block,
        undelegated: false,
    }
    .encode();
    let r = c.expect(
        RmiFid::RTT_DATA_MAP,
        &[rd, 0x20_0000, 0x40_0000, 1, desc],
        RmiStatus::Success,
    );
    c.check(
        r.regs[1] == 0x40_0000,
        format_args!("DATA_MAP mapped a 2 MiB block at 0x200000"),
    );
    let r = c.expect(
        RmiFid::RTT_READ_ENTRY,
        &[rd, 0x20_0000, 2],
        RmiStatus::Success,
    );
    c.check(
        r.regs[1] == 2 && r.regs[2] == entry_state::ASSIGNED && r.regs[3] == block,
        format_args!("0x200000 is a level 2 block"),
    );
    let ns_page = pool.take(1, G);
    mem.write(ns_page, b"shared with the host");
    let unprot = AddrRangeDesc {
        size: BlockSize::L3_4K,
        count: 1,
        addr: ns_page,
        undelegated: true,
    }
    .encode();
    let flags = 1 | (6 << 16) | (3 << 19);
    let ipa = UNPROTECTED + 0x1000;
    let r = c.expect(
        RmiFid::RTT_UNPROT_MAP,
        &[rd, ipa, ipa + G, flags, unprot],
        RmiStatus::Success,
    );
    c.check(
        r.regs[1] == ipa + G,
        format_args!("UNPROT_MAP mapped an NS page at {ipa:#x}"),
    );
    c.expect(
        RmiFid::RTT_UNPROT_MAP,
        &[rd, 0x6000, 0x7000, flags, unprot],
        RmiStatus::ErrorInput,
    );
    let r = c.expect(RmiFid::RTT_READ_ENTRY, &[rd, ipa, 3], RmiStatus::Success);
    c.check(
        r.regs[2] == entry_state::ASSIGNED,
        format_args!("the unprotected IPA is ASSIGNED"),
    );
    let r = c.expect(
        RmiFid::RTT_UNPROT_UNMAP,
        &[rd, ipa, ipa + G, 1, 0],
        RmiStatus::Success,
    );
    c.check(
        r.regs[1] == ipa + G,
        format_args!("UNPROT_UNMAP removed it"),
    );
    let r = c.expect(
        RmiFid::RTT_DATA_UNMAP,
        &[rd, 0x3000, 0x5000, 1, 0],
        RmiStatus::Success,
    );
    let d = AddrRangeDesc::decode(r.regs[2]);
    c.check(
        r.regs[1] == 0x5000 && d.addr == pages && d.count == 2,
        format_args!("DATA_UNMAP returned the 2 granules at {pages:#x}"),
    );
    undelegate(&mut c, pages, 2);

    c.say(format_args!("-- RECs through stateful operations"));
    let recs = [pool.take(1, G), pool.take(1, G)];
    let mut aux_alloc = |c: &mut Checker<'_, '_, C>, n: u64| {
        let base = pool.take(n, G);
        delegate(c, base, n);
        base
    };
    for (i, rec) in recs.iter().enumerate() {
        delegate(&mut c, *rec, 1);
        let mut rp = RecParams::new_zeroed();
        rp.flags = u64::from(i == 0);
        rp.mpidr = i as u64;
        rp.pc = 0;
        rp.gprs[0] = 0x1000;
        create_rec(
            &mut c,
            mem,
            rd,
            *rec,
            &rp,
            i,
            (scratch, list_page),
            &mut aux_alloc,
        );
        realm.rim.extend_rec(&rp);
    }
    c.expect(RmiFid::REALM_ACTIVATE, &[rd], RmiStatus::Success);
    c.expect(RmiFid::REALM_ACTIVATE, &[rd], RmiStatus::ErrorRealm);
    c.expect(
        RmiFid::RTT_DATA_MAP_INIT,
        &[rd, data, 0x5000, src, 1],
        RmiStatus::ErrorRealm,
    );
    c.say(format_args!("RIM (predicted by the host) = {}", realm.rim));

    c.say(format_args!("-- teardown"));
    c.expect(RmiFid::REALM_DESTROY, &[rd], RmiStatus::ErrorRealm);
    c.expect(RmiFid::REALM_TERMINATE, &[rd], RmiStatus::Success);
    let mut reclaimed = 0;
    for rec in recs {
        destroy_rec(&mut c, mem, rec, list_page, &mut reclaimed);
    }
    c.check(
        reclaimed == 32,
        format_args!("32 auxiliary granules reclaimed and undelegated ({reclaimed})"),
    );
    let r = c.expect(
        RmiFid::RTT_DATA_UNMAP,
        &[rd, 0, 0x3000, 1, 0],
        RmiStatus::Success,
    );
    c.check(
        r.regs[1] == 0x3000,
        format_args!("unmapped the measured data"),
    );
    let r = c.expect(
        RmiFid::RTT_DATA_UNMAP,
        &[rd, 0x20_0000, 0x40_0000, 1, 0],
        RmiStatus::Success,
    );
    c.check(
        r.regs[1] == 0x40_0000,
        format_args!("unmapped the 2 MiB block"),
    );
    undelegate(&mut c, data, 3);
    undelegate(&mut c, block, 512);
    for &(t, ipa, level) in realm.rtts.iter().rev() {
        let r = c.expect(RmiFid::RTT_DESTROY, &[rd, ipa, level], RmiStatus::Success);
        c.check(
            r.regs[1] == t,
            format_args!("RTT at {t:#x} (level {level}) destroyed"),
        );
        undelegate(&mut c, t, 1);
    }
    c.expect(RmiFid::REALM_DESTROY, &[rd], RmiStatus::Success);
    undelegate(&mut c, rd, 1);
    undelegate(&mut c, root, 2);
    let mut clean = true;
    for pa in [rd, root, data, block] {
        let mut w = [0u8; 8];
        mem.read(pa, &mut w);
        clean &= w == [0; 8];
    }
    c.check(clean, format_args!("every returned granule is scrubbed"));
    c.tally
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::tests::{Direct, Mem};
    use cca_abi::el3::MemoryBank;
    use rmm_core::sim::SimPlatform;
    use rmm_core::{GranuleTable, Rmm};

    #[test]
    fn realm_lifecycle_passes_against_the_rmm_core() {
        let banks = [MemoryBank {
            base: 0x8000_0000,
            size: 0x0200_0000,
        }];
        let sim = SimPlatform::new(&banks);
        let storage = rmm_core::sim::granule_storage(&banks);
        let sro = rmm_core::SroStorage::new();
        let rmm = Rmm::new(&sim, GranuleTable::new(&banks, &storage).unwrap(), &sro).unwrap();
        let mut out = String::new();
        let mut rmi = Rmi::new(Direct(&rmm), &mut out);
        assert_eq!(
            rmi.call(RmiFid::RMM_ACTIVATE, &[]).status(),
            Some(RmiStatus::Success)
        );
        let plan = RealmPlan {
            pool_base: 0x8000_0000,
            pool_size: 0x0200_0000,
        };
        let tally = run(&mut rmi, &mut Mem(&sim), &plan);
        println!("{out}");
        assert_eq!(tally.failed, 0, "{out}");
        assert!(tally.passed > 60, "{}", tally.passed);
    }
}
