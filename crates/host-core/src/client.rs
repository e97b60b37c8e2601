//! The typed RMI client: one method per command, each returning `Result` with the decoded
//! outputs, on top of the printing [`Rmi`] conduit wrapper.
//!
//! Structures the RMM reads (`RmiRealmParams`, `RmiRecParams`, `RmiRecRun`, address lists)
//! live in Non-secure pages the caller owns; the methods that need them take the page's PA and
//! a [`HostMem`] to write the typed structure through, so no caller touches raw offsets.

use crate::rmi::{status_name, Conduit, HostMem, Outcome, Rmi};
use cca_abi::psci::PsciStatus;
use cca_abi::rmi::{
    mem_req, AddrRangeDesc, BlockSize, DonateReq, RealmParams, RecEnter, RecExit, RecParams,
    RecRun, RmiFid, RmiStatus, REC_ENTER_READ_SIZE,
};
use cca_abi::GRANULE_SIZE as G;
use core::fmt;
use zerocopy::{FromZeros, IntoBytes};

/// A command the RMM rejected (or an answer the client could not make sense of).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RmiError {
    /// The command.
    pub fid: RmiFid,
    /// x0 as returned.
    pub x0: u64,
    /// x1 as returned; for the range loops ([`Rmi::range`]), the first address not done.
    pub x1: u64,
    /// What the client expected instead, when the status was a success it cannot use.
    pub unexpected: Option<&'static str>,
}

impl RmiError {
    fn from_outcome(fid: RmiFid, r: &Outcome) -> Self {
        Self {
            fid,
            x0: r.regs[0],
            x1: r.regs[1],
            unexpected: None,
        }
    }

    /// The decoded status (`None` for `SMC_UNKNOWN` or an invalid x0).
    pub fn status(&self) -> Option<RmiStatus> {
        Outcome {
            regs: [self.x0, 0, 0, 0, 0, 0, 0, 0],
        }
        .status()
    }

    /// The index field of x0 (the RTT level an `ERROR_RTT` walk reached).
    pub fn index(&self) -> u8 {
        (self.x0 >> 8) as u8
    }

    /// For `ERROR_RTT`: the level the walk reached.
    pub fn rtt_level(&self) -> Option<u8> {
        (self.status() == Some(RmiStatus::ErrorRtt)).then_some(self.index())
    }
}

impl fmt::Display for RmiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.fid.name(), status_name(self.x0))?;
        if self.status() == Some(RmiStatus::ErrorRtt) || self.index() != 0 {
            write!(f, " (index {})", self.index())?;
        }
        if let Some(what) = self.unexpected {
            write!(f, ": {what} (x1 = {:#x})", self.x1)?;
        }
        Ok(())
    }
}

/// The result of a typed RMI call.
pub type RmiResult<T> = Result<T, RmiError>;

/// The outputs of an unmap range command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unmapped {
    /// The first IPA not processed.
    pub next: u64,
    /// The granules freed (one descriptor), if any.
    pub freed: Option<AddrRangeDesc>,
}

/// Supplies the granules a stateful operation asks for and takes back the ones it returns.
pub trait SroMemory<C: Conduit> {
    /// Delegated granules for a `DONATE` request: returns the PA of `count` contiguous
    /// granules (delegated through `rmi`), or `None` when there is no memory left.
    fn donate(&mut self, rmi: &mut Rmi<'_, C>, req: DonateReq) -> Option<u64>;
    /// Granules the RMM handed back (`RECLAIM`); they are still delegated.
    fn reclaimed(&mut self, rmi: &mut Rmi<'_, C>, desc: AddrRangeDesc);
}

fn check(fid: RmiFid, r: Outcome) -> RmiResult<Outcome> {
    if r.status() == Some(RmiStatus::Success) {
        Ok(r)
    } else {
        Err(RmiError::from_outcome(fid, &r))
    }
}

fn unexpected(fid: RmiFid, r: &Outcome, what: &'static str) -> RmiError {
    RmiError {
        unexpected: Some(what),
        ..RmiError::from_outcome(fid, r)
    }
}

/// Most list entries an SRO donation uses (one NS page holds 512).
const DONATE_LIST_MAX: u64 = 16;

impl<C: Conduit> Rmi<'_, C> {
    fn ok(&mut self, fid: RmiFid, args: &[u64]) -> RmiResult<Outcome> {
        let r = self.call(fid, args);
        check(fid, r)
    }

    /// `RMI_VERSION(requested)`: `(lower, higher)` revisions the RMM implements.
    pub fn version(&mut self, requested: u64) -> RmiResult<(u64, u64)> {
        let r = self.ok(RmiFid::VERSION, &[requested])?;
        Ok((r.regs[1], r.regs[2]))
    }

    /// `RMI_FEATURES(index)`.
    pub fn features(&mut self, index: u64) -> RmiResult<u64> {
        Ok(self.ok(RmiFid::FEATURES, &[index])?.regs[1])
    }

    /// `RMM_CONFIG_SET(config_pa)`.
    pub fn rmm_config_set(&mut self, config: u64) -> RmiResult<()> {
        self.ok(RmiFid::RMM_CONFIG_SET, &[config]).map(drop)
    }

    /// `RMM_ACTIVATE`.
    pub fn rmm_activate(&mut self) -> RmiResult<()> {
        self.ok(RmiFid::RMM_ACTIVATE, &[]).map(drop)
    }

    /// Calls a range command (`GRANULE_RANGE_DELEGATE`/`UNDELEGATE`) from `base` until it
    /// reports `top`, quietly; returns the number of calls.
    pub fn range(&mut self, fid: RmiFid, base: u64, top: u64) -> RmiResult<u64> {
        let verbose = core::mem::replace(&mut self.verbose, false);
        let mut next = base;
        let mut calls = 0;
        let result = loop {
            if next >= top {
                break Ok(calls);
            }
            let r = self.call(fid, &[next, top]);
            calls += 1;
            if r.status() != Some(RmiStatus::Success) {
                break Err(RmiError {
                    x1: next,
                    ..RmiError::from_outcome(fid, &r)
                });
            }
            if r.regs[1] <= next || r.regs[1] > top {
                break Err(RmiError {
                    x1: next,
                    ..unexpected(fid, &r, "no progress or beyond top")
                });
            }
            next = r.regs[1];
        };
        self.verbose = verbose;
        result
    }

    /// Delegates `[base, base + n granules)`.
    pub fn delegate(&mut self, base: u64, n: u64) -> RmiResult<()> {
        let top = base.saturating_add(n.saturating_mul(G));
        self.range(RmiFid::GRANULE_RANGE_DELEGATE, base, top)
            .map(drop)
    }

    /// Undelegates `[base, base + n granules)` (the RMM scrubs them).
    pub fn undelegate(&mut self, base: u64, n: u64) -> RmiResult<()> {
        let top = base.saturating_add(n.saturating_mul(G));
        self.range(RmiFid::GRANULE_RANGE_UNDELEGATE, base, top)
            .map(drop)
    }

    /// `REALM_CREATE(rd, params)`: writes `params` to the NS page `params_pa` first.
    pub fn realm_create<M: HostMem>(
        &mut self,
        mem: &mut M,
        rd: u64,
        params_pa: u64,
        params: &RealmParams,
    ) -> RmiResult<()> {
        mem.write(params_pa, params.as_bytes());
        self.ok(RmiFid::REALM_CREATE, &[rd, params_pa]).map(drop)
    }

    /// `REALM_ACTIVATE(rd)`.
    pub fn realm_activate(&mut self, rd: u64) -> RmiResult<()> {
        self.ok(RmiFid::REALM_ACTIVATE, &[rd]).map(drop)
    }

    /// `REALM_TERMINATE(rd)`.
    pub fn realm_terminate(&mut self, rd: u64) -> RmiResult<()> {
        self.ok(RmiFid::REALM_TERMINATE, &[rd]).map(drop)
    }

    /// `REALM_DESTROY(rd)`.
    pub fn realm_destroy(&mut self, rd: u64) -> RmiResult<()> {
        self.ok(RmiFid::REALM_DESTROY, &[rd]).map(drop)
    }

    /// `RTT_CREATE(rd, rtt, ipa, level)`.
    pub fn rtt_create(&mut self, rd: u64, rtt: u64, ipa: u64, level: i64) -> RmiResult<()> {
        self.ok(RmiFid::RTT_CREATE, &[rd, rtt, ipa, level as u64])
            .map(drop)
    }

    /// `RTT_DESTROY(rd, ipa, level)`: the destroyed RTT's PA.
    pub fn rtt_destroy(&mut self, rd: u64, ipa: u64, level: i64) -> RmiResult<u64> {
        Ok(self.ok(RmiFid::RTT_DESTROY, &[rd, ipa, level as u64])?.regs[1])
    }

    /// `RTT_FOLD(rd, ipa, level)`: the folded RTT's PA.
    pub fn rtt_fold(&mut self, rd: u64, ipa: u64, level: i64) -> RmiResult<u64> {
        Ok(self.ok(RmiFid::RTT_FOLD, &[rd, ipa, level as u64])?.regs[1])
    }

    /// `RTT_INIT_RIPAS(rd, base, top)`: how far the RIPAS became RAM.
    pub fn rtt_init_ripas(&mut self, rd: u64, base: u64, top: u64) -> RmiResult<u64> {
        let r = self.ok(RmiFid::RTT_INIT_RIPAS, &[rd, base, top])?;
        progress(RmiFid::RTT_INIT_RIPAS, &r, base, top)
    }

    /// `RTT_SET_RIPAS(rd, rec, base, top)`: how far the REC's RIPAS change got.
    pub fn rtt_set_ripas(&mut self, rd: u64, rec: u64, base: u64, top: u64) -> RmiResult<u64> {
        let r = self.ok(RmiFid::RTT_SET_RIPAS, &[rd, rec, base, top])?;
        progress(RmiFid::RTT_SET_RIPAS, &r, base, top)
    }

    /// `RTT_DATA_MAP_INIT(rd, data, ipa, src, flags)`.
    pub fn data_map_init(
        &mut self,
        rd: u64,
        data: u64,
        ipa: u64,
        src: u64,
        flags: u64,
    ) -> RmiResult<()> {
        self.ok(RmiFid::RTT_DATA_MAP_INIT, &[rd, data, ipa, src, flags])
            .map(drop)
    }

    /// `RTT_DATA_MAP(rd, base, top, SINGLE, desc)`: maps the delegated granules `desc`
    /// names at `[base, top)`; returns the first IPA not mapped.
    pub fn data_map(
        &mut self,
        rd: u64,
        base: u64,
        top: u64,
        desc: AddrRangeDesc,
    ) -> RmiResult<u64> {
        let flags = cca_abi::rmi::map_flags::ADDR_TYPE_SINGLE;
        let r = self.ok(RmiFid::RTT_DATA_MAP, &[rd, base, top, flags, desc.encode()])?;
        progress(RmiFid::RTT_DATA_MAP, &r, base, top)
    }

    /// `RTT_DATA_UNMAP(rd, base, top, SINGLE, 0)`.
    pub fn data_unmap(&mut self, rd: u64, base: u64, top: u64) -> RmiResult<Unmapped> {
        self.unmap(RmiFid::RTT_DATA_UNMAP, rd, base, top)
    }

    /// `RTT_UNPROT_MAP(rd, base, top, flags, desc)`: maps NS memory (read-write, normal
    /// write-back) at the unprotected IPAs `[base, top)`; returns the first IPA not mapped.
    pub fn unprot_map(
        &mut self,
        rd: u64,
        base: u64,
        top: u64,
        ns: AddrRangeDesc,
    ) -> RmiResult<u64> {
        use cca_abi::rmi::map_flags as mf;
        let flags = mf::ADDR_TYPE_SINGLE
            | (UNPROT_MEMATTR_NORMAL_WB << mf::MEMATTR_SHIFT)
            | ((mf::S2AP_DIRECT_READ | mf::S2AP_DIRECT_WRITE) << mf::S2AP_SHIFT);
        let r = self.ok(RmiFid::RTT_UNPROT_MAP, &[rd, base, top, flags, ns.encode()])?;
        progress(RmiFid::RTT_UNPROT_MAP, &r, base, top)
    }

    /// `RTT_UNPROT_UNMAP(rd, base, top, SINGLE, 0)`.
    pub fn unprot_unmap(&mut self, rd: u64, base: u64, top: u64) -> RmiResult<Unmapped> {
        self.unmap(RmiFid::RTT_UNPROT_UNMAP, rd, base, top)
    }

    fn unmap(&mut self, fid: RmiFid, rd: u64, base: u64, top: u64) -> RmiResult<Unmapped> {
        let flags = cca_abi::rmi::map_flags::ADDR_TYPE_SINGLE;
        let r = self.ok(fid, &[rd, base, top, flags, 0])?;
        let next = progress(fid, &r, base, top)?;
        let freed = (r.regs[2] != 0).then(|| AddrRangeDesc::decode(r.regs[2]));
        Ok(Unmapped { next, freed })
    }

    /// `REC_CREATE(rd, rec, params)` driven to completion: the auxiliary granules come from
    /// `sro`. `pages` = (params page, address list page), both NS.
    pub fn rec_create<M: HostMem>(
        &mut self,
        mem: &mut M,
        rd: u64,
        rec: u64,
        params: &RecParams,
        pages: (u64, u64),
        sro: &mut dyn SroMemory<C>,
    ) -> RmiResult<()> {
        mem.write(pages.0, params.as_bytes());
        let first = self.call(RmiFid::REC_CREATE, &[rd, rec, pages.0]);
        self.drive_sro(mem, RmiFid::REC_CREATE, first, pages.1, sro)
    }

    /// `REC_DESTROY(rec)` driven to completion; the auxiliary granules it reclaims go to
    /// `sro`. The REC granule itself is still delegated afterwards.
    pub fn rec_destroy<M: HostMem>(
        &mut self,
        mem: &mut M,
        rec: u64,
        list_page: u64,
        sro: &mut dyn SroMemory<C>,
    ) -> RmiResult<()> {
        let first = self.call(RmiFid::REC_DESTROY, &[rec]);
        self.drive_sro(mem, RmiFid::REC_DESTROY, first, list_page, sro)
    }

    /// Runs a stateful operation until it no longer answers `INCOMPLETE`.
    pub fn drive_sro<M: HostMem>(
        &mut self,
        mem: &mut M,
        fid: RmiFid,
        first: Outcome,
        list_page: u64,
        sro: &mut dyn SroMemory<C>,
    ) -> RmiResult<()> {
        let mut r = first;
        let handle = r.regs[1];
        // Every step either makes progress or fails; the bound catches an RMM that loops.
        for _ in 0..4096 {
            match r.status() {
                Some(RmiStatus::Success) => return Ok(()),
                Some(RmiStatus::Incomplete) => {}
                _ => return Err(RmiError::from_outcome(fid, &r)),
            }
            let req = ((r.regs[0] >> 8) & 3) as u8;
            r = match req {
                mem_req::DONATE => {
                    let want = DonateReq::decode(r.regs[2]);
                    if want.undelegated || want.count == 0 {
                        return Err(unexpected(fid, &r, "a donation this host cannot make"));
                    }
                    let granules = want.bytes() / G;
                    let n = granules.min(DONATE_LIST_MAX);
                    let Some(base) = sro.donate(
                        self,
                        DonateReq {
                            size: BlockSize::L3_4K,
                            count: n as u16,
                            ..want
                        },
                    ) else {
                        return Err(unexpected(fid, &r, "out of memory to donate"));
                    };
                    let mut list = [0u64; DONATE_LIST_MAX as usize];
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
                    self.call(RmiFid::OP_MEM_DONATE, &[handle, list_page, n])
                }
                mem_req::RECLAIM => {
                    let r2 = self.call(
                        RmiFid::OP_MEM_RECLAIM,
                        &[handle, list_page, DONATE_LIST_MAX],
                    );
                    if matches!(
                        r2.status(),
                        Some(RmiStatus::Success) | Some(RmiStatus::Incomplete)
                    ) {
                        let got = r2.regs[1].min(DONATE_LIST_MAX) as usize;
                        let mut raw = [0u64; DONATE_LIST_MAX as usize];
                        mem.read(list_page, raw[..got].as_mut_bytes());
                        for d in &raw[..got] {
                            sro.reclaimed(self, AddrRangeDesc::decode(*d));
                        }
                    }
                    r2
                }
                _ => self.call(RmiFid::OP_CONTINUE, &[handle, 0]),
            };
        }
        Err(unexpected(fid, &r, "the operation did not finish"))
    }

    /// `REC_ENTER(rec, run)`: writes the host-owned part of `RmiRecRun` from `enter`, enters,
    /// and returns the exit the RMM wrote.
    pub fn rec_enter<M: HostMem>(
        &mut self,
        mem: &mut M,
        rec: u64,
        run_pa: u64,
        enter: &RecEnter,
    ) -> RmiResult<RecExit> {
        mem.write(run_pa, &enter.as_bytes()[..REC_ENTER_READ_SIZE]);
        let r = self.call(RmiFid::REC_ENTER, &[rec, run_pa]);
        check(RmiFid::REC_ENTER, r)?;
        let mut exit = RecExit::new_zeroed();
        mem.read(
            run_pa + core::mem::offset_of!(RecRun, exit) as u64,
            exit.as_mut_bytes(),
        );
        Ok(exit)
    }

    /// `PSCI_COMPLETE(caller, target, status)`.
    pub fn psci_complete(&mut self, caller: u64, target: u64, status: PsciStatus) -> RmiResult<()> {
        self.ok(RmiFid::PSCI_COMPLETE, &[caller, target, status.to_reg()])
            .map(drop)
    }
}

/// Stage 2 MemAttr (FWB encoding) the host gives unprotected RAM: normal write-back.
pub const UNPROT_MEMATTR_NORMAL_WB: u64 = 6;

fn progress(fid: RmiFid, r: &Outcome, base: u64, top: u64) -> RmiResult<u64> {
    let next = r.regs[1];
    if next <= base || next > top {
        Err(unexpected(fid, r, "no progress or beyond top"))
    } else {
        Ok(next)
    }
}
