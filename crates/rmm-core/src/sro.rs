//! Stateful RMI operations (SROs): the context pool and `OP_CONTINUE`, `OP_MEM_DONATE`,
//! `OP_MEM_RECLAIM`, `OP_CANCEL`, as TF-RMM main implements them.
//!
//! A context is FREE, RESERVED (owned by the CPU running a handler) or SEALED (parked between
//! host calls; its index is the handle the host holds). Reserving fails with `RMI_BLOCKED`
//! when every context is sealed and with `RMI_BUSY` when none is free but some are reserved.
//! A sealed context records the FID the host must call next; any other `OP_*` call on it is
//! `ERROR_INPUT` and leaves it sealed.
//!
//! The pool is one spin lock around an array; it is a leaf lock (nothing else is locked
//! while it is held) and a handler copies its context out while it runs.

use cca_abi::rmi::{mem_req, AddrRangeDesc, BlockSize, DonateReq, RmiFid, RmiReturn, RmiStatus};
use cca_abi::GRANULE_SIZE;

use crate::addr_list::{InList, OutList, MAX_RANGES};
use crate::dispatch::Regs;
use crate::error::RmiError;
use crate::platform::Platform;
use crate::rmm::Rmm;

/// Number of SRO contexts (TF-RMM has 10 per CPU).
pub const SRO_CONTEXTS: usize = 40;

/// Most auxiliary granules one operation transfers.
pub const MAX_AUX: usize = cca_abi::rmi::REC_AUX_GRANULES;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    Free,
    Reserved,
    Sealed,
}

/// The next step of an object (REC) operation, chosen by the last callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Waiting for `OP_MEM_DONATE`.
    MemDonate,
    /// Waiting for `OP_MEM_RECLAIM`.
    MemReclaim,
    /// All memory donated: `OP_CONTINUE` builds the object.
    CreateContinue,
    /// All memory reclaimed: `OP_CONTINUE` frees the object granule and returns the result.
    DestroyFinish,
}

/// The state of one operation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SroCtx {
    /// The command that started it.
    pub init_command: RmiFid,
    /// The `OP_*` call the host must make next.
    pub expected_fid: RmiFid,
    /// Whether `OP_CANCEL` applies (never, in this RMM).
    pub can_cancel: bool,
    /// Whether donated memory must be one contiguous block.
    pub is_contig: bool,
    /// Whether donated memory must be undelegated (false: delegated).
    pub mem_undelegated: bool,
    /// Bytes still to transfer.
    pub transfer_req: u64,
    /// The result to give once pending reclaim descriptors are all copied.
    pub reclaim_res: u64,
    /// The expected FID once they are.
    pub prev_exp_fid: RmiFid,
    /// The host's list capacity of the current reclaim.
    pub range_desc_count: u64,
    /// Reclaimed descriptors not yet copied to the host.
    pub out: OutList<MAX_AUX>,
    /// Whether `out` is the current reclaim list (TF-RMM: the list is of type OUTPUT).
    pub out_active: bool,
    /// Next step of the object operation.
    pub stage: Stage,
    /// The object granule (the REC).
    pub obj_addr: u64,
    /// The final result of a failed create (None: success).
    pub ret_err: Option<RmiError>,
    /// The auxiliary granules transferred.
    pub aux: [u64; MAX_AUX],
    /// Granules requested (to donate or to reclaim).
    pub requested: u64,
    /// Granules transferred so far.
    pub transferred: u64,
    /// `REC_CREATE`: the RD.
    pub rd_addr: u64,
    /// `REC_CREATE`: the NS page of `RmiRecParams`.
    pub params_addr: u64,
}

impl SroCtx {
    const fn new(init_command: RmiFid, xfer: u64, expected: RmiFid) -> Self {
        Self {
            init_command,
            expected_fid: expected,
            can_cancel: false,
            is_contig: false,
            mem_undelegated: false,
            transfer_req: xfer,
            reclaim_res: u64::MAX,
            prev_exp_fid: expected,
            range_desc_count: 0,
            out: OutList::new(MAX_AUX),
            out_active: false,
            stage: Stage::MemDonate,
            obj_addr: 0,
            ret_err: None,
            aux: [0; MAX_AUX],
            requested: 0,
            transferred: 0,
            rd_addr: 0,
            params_addr: 0,
        }
    }
}

#[derive(Clone, Copy)]
struct Slot {
    state: SlotState,
    ctx: SroCtx,
}

/// Memory for the SRO context pool, supplied by the caller of [`Rmm::new`] (a `static` in
/// the firmware) so that the RMM object itself stays small.
pub struct SroStorage(pub(crate) spin::Mutex<SroPool>);

impl SroStorage {
    /// A pool with every context free.
    pub const fn new() -> Self {
        Self(spin::Mutex::new(SroPool::new()))
    }
}

impl Default for SroStorage {
    fn default() -> Self {
        Self::new()
    }
}

/// The context pool.
pub(crate) struct SroPool {
    slots: [Slot; SRO_CONTEXTS],
}

impl SroPool {
    /// A pool with every context free.
    pub(crate) const fn new() -> Self {
        Self {
            slots: [Slot {
                state: SlotState::Free,
                ctx: SroCtx::new(RmiFid::OP_CONTINUE, 0, RmiFid::OP_CONTINUE),
            }; SRO_CONTEXTS],
        }
    }
}

/// An operation in flight, as [`Rmm::for_each_sro`] reports it.
#[derive(Clone, Copy, Debug)]
pub struct SroInfo {
    /// The handle.
    pub handle: usize,
    /// Sealed (waiting for the host) rather than reserved by a running command.
    pub sealed: bool,
    /// The command that started it.
    pub command: RmiFid,
    /// The object granule (the REC), 0 if none.
    pub object: u64,
    /// The auxiliary granules the operation holds in state REC_AUX: `aux[..aux_held]`.
    pub aux: [u64; MAX_AUX],
    /// How many.
    pub aux_held: usize,
}

/// A reserved context, released when dropped unless sealed.
pub(crate) struct Reserved<'r> {
    pool: &'r spin::Mutex<SroPool>,
    /// The handle.
    pub handle: usize,
    /// The context (the pool's copy is updated on seal).
    pub ctx: SroCtx,
    done: bool,
}

impl Reserved<'_> {
    /// Seals the context (parks it for the host) and returns its handle.
    pub fn seal(mut self) -> u64 {
        let mut pool = self.pool.lock();
        let slot = &mut pool.slots[self.handle];
        slot.state = SlotState::Sealed;
        slot.ctx = self.ctx;
        self.done = true;
        self.handle as u64
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.pool.lock().slots[self.handle].state = SlotState::Free;
        }
    }
}

/// x0 of an `INCOMPLETE` result with memory request `req`.
pub(crate) fn incomplete(req: u8, can_cancel: bool) -> u64 {
    let cancel = if can_cancel { mem_req::CAN_CANCEL } else { 0 };
    RmiReturn::with_index(RmiStatus::Incomplete, req | cancel).to_reg()
}

fn status_of(x0: u64) -> Option<RmiStatus> {
    RmiReturn::from_reg(x0).map(|r| r.status)
}

impl<'a, P: Platform> Rmm<'a, P> {
    /// Reserves a context for `command` (TF-RMM's `sro_ctx_reserve`).
    pub(crate) fn sro_reserve(
        &self,
        command: RmiFid,
        xfer: u64,
        expected: RmiFid,
    ) -> Result<Reserved<'_>, RmiError> {
        let mut pool = self.sro.0.lock();
        let mut sealed = 0;
        for (i, slot) in pool.slots.iter_mut().enumerate() {
            match slot.state {
                SlotState::Free => {
                    slot.state = SlotState::Reserved;
                    return Ok(Reserved {
                        pool: &self.sro.0,
                        handle: i,
                        ctx: SroCtx::new(command, xfer, expected),
                        done: false,
                    });
                }
                SlotState::Sealed => sealed += 1,
                SlotState::Reserved => {}
            }
        }
        if sealed == SRO_CONTEXTS {
            Err(RmiError::new(
                RmiStatus::Blocked,
                crate::error::Reason::Text("every SRO context is sealed: finish an operation"),
            ))
        } else {
            Err(RmiError::new(
                RmiStatus::Busy,
                crate::error::Reason::Text("no free SRO context right now"),
            ))
        }
    }

    /// Takes the sealed context `handle` (TF-RMM's `sro_ctx_find`).
    fn sro_find(&self, handle: u64) -> Result<Reserved<'_>, RmiError> {
        let mut pool = self.sro.0.lock();
        let slot = usize::try_from(handle)
            .ok()
            .and_then(|h| pool.slots.get_mut(h).map(|s| (h, s)));
        match slot {
            Some((h, s)) if s.state == SlotState::Sealed => {
                s.state = SlotState::Reserved;
                Ok(Reserved {
                    pool: &self.sro.0,
                    handle: h,
                    ctx: s.ctx,
                    done: false,
                })
            }
            _ => Err(RmiError::input_value(
                "no operation in progress has this handle",
                handle,
            )),
        }
    }

    /// Calls `f` for every operation in flight (reserved or sealed), for tests and
    /// debugging.
    pub fn for_each_sro(&self, mut f: impl FnMut(&SroInfo)) {
        let pool = self.sro.0.lock();
        for (i, s) in pool.slots.iter().enumerate() {
            if s.state == SlotState::Free {
                continue;
            }
            let c = &s.ctx;
            let (first, n) = match c.stage {
                Stage::MemReclaim => (c.transferred, c.requested),
                Stage::MemDonate | Stage::CreateContinue => (0, c.transferred),
                Stage::DestroyFinish => (0, 0),
            };
            let mut aux = [0u64; MAX_AUX];
            let n = (n as usize).min(MAX_AUX);
            for (k, a) in aux.iter_mut().enumerate().take(n) {
                *a = c.aux.get(first as usize + k).copied().unwrap_or(0);
            }
            f(&SroInfo {
                handle: i,
                sealed: s.state == SlotState::Sealed,
                command: c.init_command,
                object: c.obj_addr,
                aux,
                aux_held: n,
            });
        }
    }

    /// Runs the operation's callback for `fid` and updates the context from the result
    /// (TF-RMM's `rmi_op_dispatch`). Returns x0.
    fn sro_dispatch(
        &self,
        fid: RmiFid,
        r: &mut Reserved<'_>,
        list: Option<&mut InList>,
        out: &mut Regs,
    ) -> Result<(), RmiError> {
        let res = match r.ctx.init_command {
            RmiFid::REC_CREATE | RmiFid::REC_DESTROY => {
                self.rec_op_callback(fid, &mut r.ctx, list, out)
            }
            _ => Err(RmiError::input("this operation has nothing to continue")),
        };
        let x0 = match &res {
            Ok(()) => out[0],
            Err(e) => e.to_reg(),
        };
        let ctx = &mut r.ctx;
        if status_of(x0) == Some(RmiStatus::Incomplete) {
            let req = ((x0 >> 8) & 3) as u8;
            ctx.can_cancel = (x0 >> 10) & 1 != 0;
            if req == mem_req::DONATE {
                let d = DonateReq::decode(out[2]);
                ctx.transfer_req = d.bytes();
                ctx.is_contig = d.contig;
                ctx.mem_undelegated = d.undelegated;
            }
            ctx.expected_fid = match req {
                mem_req::DONATE => RmiFid::OP_MEM_DONATE,
                mem_req::RECLAIM => RmiFid::OP_MEM_RECLAIM,
                _ => RmiFid::OP_CONTINUE,
            };
            if req == mem_req::RECLAIM || (fid == RmiFid::OP_MEM_RECLAIM && out[1] > 0) {
                ctx.reclaim_res = x0;
                ctx.prev_exp_fid = ctx.expected_fid;
            }
        } else {
            ctx.expected_fid = RmiFid::OP_CONTINUE;
        }
        res
    }

    /// Seals `r` when x0 is INCOMPLETE or BUSY, else frees it (end of `OP_CONTINUE`).
    fn sro_finish(r: Reserved<'_>, res: &Result<(), RmiError>, out: &Regs) {
        let x0 = match res {
            Ok(()) => out[0],
            Err(e) => e.to_reg(),
        };
        if matches!(
            status_of(x0),
            Some(RmiStatus::Incomplete) | Some(RmiStatus::Busy)
        ) {
            r.seal();
        }
    }

    /// `OP_CONTINUE(handle, flags)`.
    pub(crate) fn cmd_op_continue(&self, regs: &Regs, out: &mut Regs) -> Result<(), RmiError> {
        let mut r = self.sro_find(regs[1])?;
        if r.ctx.expected_fid != RmiFid::OP_CONTINUE {
            let e = RmiError::input_value(
                "the operation expects another call first (its memory request)",
                regs[1],
            );
            r.seal();
            return Err(e);
        }
        let res = self.sro_dispatch(RmiFid::OP_CONTINUE, &mut r, None, out);
        Self::sro_finish(r, &res, out);
        res
    }

    /// `OP_MEM_DONATE(handle, list, count)`: x1 = granules taken, x2 = the next request.
    pub(crate) fn cmd_op_mem_donate(&self, regs: &Regs, out: &mut Regs) -> Result<(), RmiError> {
        let (handle, list_addr, count) = (regs[1], regs[2], regs[3]);
        let mut r = self.sro_find(handle)?;
        let res = self.donate(&mut r, list_addr, count, out);
        r.seal();
        res
    }

    fn donate(
        &self,
        r: &mut Reserved<'_>,
        list_addr: u64,
        count: u64,
        out: &mut Regs,
    ) -> Result<(), RmiError> {
        if r.ctx.expected_fid != RmiFid::OP_MEM_DONATE {
            return Err(RmiError::input("the operation does not expect a donation"));
        }
        if list_addr % 8 != 0 {
            return Err(RmiError::input_value(
                "the list is not 8-byte aligned",
                list_addr,
            ));
        }
        let offset = (list_addr & (GRANULE_SIZE - 1)) / 8;
        let mut n = count.min(MAX_RANGES as u64);
        if n + offset > MAX_RANGES as u64 {
            n = MAX_RANGES as u64 - offset;
        }
        let mut list = InList::empty();
        self.read_host_list_into(list_addr, n as usize, &mut list)?;
        let mut total = 0u64;
        let mut valid = 0;
        for d in list.descs() {
            if d.count == 0 {
                continue;
            }
            valid += 1;
            let bytes = d.size.bytes();
            if r.ctx.is_contig && valid > 1 {
                return Err(RmiError::input(
                    "a contiguous donation needs one descriptor",
                ));
            }
            if d.addr & (bytes - 1) != 0 {
                return Err(RmiError::input_value(
                    "a descriptor's address is not aligned to its block size",
                    d.addr,
                ));
            }
            if d.undelegated != r.ctx.mem_undelegated {
                return Err(RmiError::input_value(
                    "a descriptor has the wrong delegation state",
                    d.encode(),
                ));
            }
            let span = bytes * u64::from(d.count);
            if r.ctx.is_contig && (!span.is_power_of_two() || d.addr & (span - 1) != 0) {
                return Err(RmiError::input(
                    "a contiguous donation must be a naturally aligned power of two",
                ));
            }
            total = total.saturating_add(span);
        }
        if total > r.ctx.transfer_req {
            return Err(RmiError::input_value(
                "the list holds more memory than requested",
                total,
            ));
        }
        if r.ctx.is_contig && total != 0 && total != r.ctx.transfer_req {
            return Err(RmiError::input("a contiguous donation must be complete"));
        }
        r.ctx.range_desc_count = n;
        self.sro_dispatch(RmiFid::OP_MEM_DONATE, r, Some(&mut list), out)
    }

    /// `OP_MEM_RECLAIM(handle, list, capacity)`: x1 = descriptors written.
    pub(crate) fn cmd_op_mem_reclaim(&self, regs: &Regs, out: &mut Regs) -> Result<(), RmiError> {
        let (handle, list_addr, count) = (regs[1], regs[2], regs[3]);
        let offset = (list_addr & (GRANULE_SIZE - 1)) / 8;
        let mut n = count.min(MAX_RANGES as u64);
        if n + offset > MAX_RANGES as u64 {
            n = MAX_RANGES as u64 - offset;
        }
        let mut r = self.sro_find(handle)?;
        let res = self.reclaim(&mut r, list_addr, n, out);
        r.seal();
        res
    }

    fn reclaim(
        &self,
        r: &mut Reserved<'_>,
        list_addr: u64,
        n: u64,
        out: &mut Regs,
    ) -> Result<(), RmiError> {
        if list_addr % 8 != 0 {
            return Err(RmiError::input_value(
                "the list is not 8-byte aligned",
                list_addr,
            ));
        }
        if r.ctx.expected_fid != RmiFid::OP_MEM_RECLAIM {
            return Err(RmiError::input("the operation does not expect a reclaim"));
        }
        if n == 0 {
            out[0] = incomplete(mem_req::RECLAIM, r.ctx.can_cancel);
            out[1] = 0;
            return Ok(());
        }
        if r.ctx.out.is_empty() || !r.ctx.out_active {
            r.ctx.range_desc_count = n;
            r.ctx.out = OutList::new(MAX_AUX);
            r.ctx.out_active = true;
            // The callback's own result is replaced below once the list is copied.
            let _ = self.sro_dispatch(RmiFid::OP_MEM_RECLAIM, r, None, out);
        }
        if !r.ctx.out.is_empty() {
            r.ctx.expected_fid = RmiFid::OP_MEM_RECLAIM;
            let Some(copied) = self.write_host_list(&mut r.ctx.out, list_addr, n as usize) else {
                out[1] = 0;
                return Err(RmiError::input_value(
                    "the output list is not a writable NS page",
                    list_addr,
                ));
            };
            out[1] = copied as u64;
            if r.ctx.out.is_empty() {
                out[0] = r.ctx.reclaim_res;
                r.ctx.expected_fid = r.ctx.prev_exp_fid;
            } else {
                out[0] = incomplete(mem_req::RECLAIM, r.ctx.can_cancel);
            }
        }
        Ok(())
    }

    /// `OP_CANCEL(handle)`: no operation of this RMM can be cancelled.
    pub(crate) fn cmd_op_cancel(&self, regs: &Regs, _out: &mut Regs) -> Result<(), RmiError> {
        let r = self.sro_find(regs[1])?;
        // TF-RMM: only a cancellable operation reaches its callback, and none is.
        r.seal();
        Err(RmiError::input("the operation cannot be cancelled"))
    }

    /// Starts the reclaim of `num` auxiliary granules (TF-RMM's `sro_aux_op_start_reclaim`):
    /// x0 = INCOMPLETE | RECLAIM, x1 = x2 = 0.
    pub(crate) fn start_reclaim(
        ctx: &mut SroCtx,
        obj: u64,
        err: Option<RmiError>,
        num: u64,
        out: &mut Regs,
    ) {
        ctx.obj_addr = obj;
        ctx.stage = Stage::MemReclaim;
        ctx.ret_err = err;
        ctx.requested = num;
        ctx.transferred = 0;
        out[0] = incomplete(mem_req::RECLAIM, ctx.can_cancel);
        out[1] = 0;
        out[2] = 0;
    }

    /// Encodes a request for `n` more delegated 4 KiB granules.
    pub(crate) fn donate_request(n: u64) -> u64 {
        DonateReq {
            size: BlockSize::L3_4K,
            count: n as u16,
            contig: false,
            undelegated: false,
        }
        .encode()
    }

    /// Single output descriptor encoding of TF-RMM's unmap result (no state bit).
    pub(crate) fn desc_without_state(d: u64) -> u64 {
        let mut a = AddrRangeDesc::decode(d);
        a.undelegated = false;
        a.encode()
    }
}
