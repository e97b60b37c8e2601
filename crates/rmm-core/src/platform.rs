//! The hardware seams: what the firmware (or the simulator) provides to the RMM core.
//!
//! The core never touches memory or issues SMCs itself. It asks a [`Platform`] to
//!
//! * copy bytes to and from **NS** memory ([`PhysMem::ns_read`], [`PhysMem::ns_write`]). These
//!   may fault (the host can hand over a page EL3 gave to another world); the firmware must
//!   catch the Granule Protection Fault and return [`NsFault`], which the core turns into
//!   `RMI_ERROR_INPUT`;
//! * copy bytes to and from, or zero, a granule in the **Realm** PAS ([`PhysMem::realm_read`],
//!   [`PhysMem::realm_write`], [`PhysMem::realm_zero`]). The core only does this for granules
//!   it tracks as Realm-owned, so a fault there is an RMM bug and the firmware should halt;
//! * ask EL3 to move a granule between the NS and Realm PAS ([`El3::gtsi_delegate`],
//!   [`El3::gtsi_undelegate`]);
//! * invalidate stage 2 TLB entries after it invalidated or replaced a valid RTT entry
//!   ([`Platform::tlbi_ipa`], [`Platform::tlbi_ipa_range`], [`Platform::tlbi_vmid`]).
//!
//! # Realm translation tables
//!
//! The core writes RTT entries with [`PhysMem::realm_write`] (8 bytes, naturally aligned, in
//! one access: the firmware must not split it). To break a valid entry it writes the invalid
//! descriptor and then calls one of the TLBI methods, which must first make the write visible
//! to every CPU's table walker (`DSB ISH`), then invalidate broadcast (inner shareable), then
//! wait for completion (`DSB ISH`) before returning; only then does the core write the new
//! entry (break-before-make).
//!
//! Every access stays inside one 4 KiB granule: `pa` plus the buffer length never crosses a
//! granule boundary. Implementations may rely on this (one slot mapping per access).

use cca_abi::el3::El3Error;

use crate::features::CpuFeatures;
use crate::idregs::IdRegs;
use crate::pa::Pa;
use crate::run::{RealmContext, RealmExit};

/// An NS access faulted: the granule is not in the NS PAS (a Granule Protection Fault).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NsFault;

/// Access to physical memory through a given physical address space.
pub trait PhysMem {
    /// Copies `buf.len()` bytes of NS memory at `pa` into `buf`.
    fn ns_read(&self, pa: Pa, buf: &mut [u8]) -> Result<(), NsFault>;

    /// Copies `data` to NS memory at `pa`.
    fn ns_write(&self, pa: Pa, data: &[u8]) -> Result<(), NsFault>;

    /// Copies `buf.len()` bytes of Realm memory at `pa` into `buf`.
    fn realm_read(&self, pa: Pa, buf: &mut [u8]);

    /// Copies `data` to Realm memory at `pa`.
    fn realm_write(&self, pa: Pa, data: &[u8]);

    /// Zeroes the whole granule at `pa` (granule aligned) through the Realm PAS.
    fn realm_zero(&self, pa: Pa);

    /// Writes `count` consecutive 8-byte words of Realm memory at `pa` (8-byte aligned, all
    /// inside one granule), word `i` being `first + i * step` (wrapping): RTTs are filled with
    /// it. The default goes through [`PhysMem::realm_write`] 64 words at a time; the firmware
    /// stores the words directly.
    fn realm_fill_words(&self, pa: Pa, count: usize, first: u64, step: u64) {
        use zerocopy::IntoBytes;
        let mut buf = [0u64; 64];
        let mut done = 0usize;
        let mut v = first;
        while done < count {
            let n = (count - done).min(buf.len());
            for w in &mut buf[..n] {
                *w = v;
                v = v.wrapping_add(step);
            }
            self.realm_write(Pa::new(pa.get() + 8 * done as u64), buf[..n].as_bytes());
            done += n;
        }
    }

    /// Copies the whole NS granule at `src` into the Realm granule at `dst` (both granule
    /// aligned). On a fault part of `dst` may have been written. The default goes through a
    /// buffer ([`PhysMem::ns_read`], [`PhysMem::realm_write`]); the firmware copies directly.
    fn ns_to_realm(&self, dst: Pa, src: Pa) -> Result<(), NsFault> {
        let mut page = [0u8; GRANULE_BYTES];
        self.ns_read(src, &mut page)?;
        self.realm_write(dst, &page);
        Ok(())
    }

    /// Calls `f` with the `len` bytes of Realm memory at `pa` (inside one granule), in place
    /// where the firmware can (it must not change while `f` runs: the core holds the granule);
    /// the default copies them into a buffer first.
    fn realm_inspect(&self, pa: Pa, len: usize, f: &mut dyn FnMut(&[u8])) {
        let mut page = [0u8; GRANULE_BYTES];
        let len = len.min(GRANULE_BYTES);
        self.realm_read(pa, &mut page[..len]);
        f(&page[..len]);
    }
}

/// The size of a granule, as a buffer length.
const GRANULE_BYTES: usize = cca_abi::GRANULE_SIZE as usize;

/// The RMM-EL3 runtime calls the core needs.
pub trait El3 {
    /// `RMM_GTSI_DELEGATE`: moves the granule at `pa` from the NS to the Realm PAS.
    fn gtsi_delegate(&self, pa: Pa) -> Result<(), El3Error>;

    /// `RMM_GTSI_UNDELEGATE`: moves the granule at `pa` from the Realm to the NS PAS.
    fn gtsi_undelegate(&self, pa: Pa) -> Result<(), El3Error>;
}

/// Everything the RMM core needs from the machine it runs on.
pub trait Platform: PhysMem + El3 {
    /// Returns the CPU features the RMM reports through `RMI_FEATURES` (read once at boot).
    fn cpu_features(&self) -> CpuFeatures;

    /// Returns the CPU's ID registers as EL2 reads them (read once at boot): the core
    /// computes the realms' view of them ([`crate::idregs::realm_view`]). Called once, by
    /// [`crate::Rmm::new`].
    fn id_regs(&self) -> IdRegs;

    /// Invalidates, for stage 2 VMID `vmid`, the TLB entries (leaf and walk caches) of the
    /// single RTT entry at `level` (-1..=3) that translates `ipa`, then the stage 1 entries of
    /// that VMID, broadcast to the inner shareable domain.
    ///
    /// `ipa` is aligned to the size `level` maps. The firmware does, with `VTTBR_EL2.VMID`
    /// temporarily set to `vmid`: `DSB ISH; TLBI IPAS2E1IS, ipa >> 12` (a `TTL` hint of
    /// `level` is allowed); `DSB ISH; TLBI VMALLE1IS; DSB ISH; ISB`; and restores VTTBR_EL2.
    fn tlbi_ipa(&self, vmid: u16, ipa: u64, level: i8);

    /// Like [`Platform::tlbi_ipa`] for every entry translating an IPA in
    /// `[base, base + size)` (used when a table whose entries may be valid is replaced or
    /// removed). `base` and `size` are 4 KiB aligned and `size` is a power of two of at least
    /// 4 KiB. With FEAT_TLBIRANGE the firmware may use `TLBI RIPAS2E1IS`; without it, one
    /// `TLBI IPAS2E1IS` per 4 KiB, or `TLBI VMALLS12E1IS` for large ranges.
    fn tlbi_ipa_range(&self, vmid: u16, base: u64, size: u64);

    /// Invalidates every stage 1 and stage 2 TLB entry of `vmid` (`TLBI VMALLS12E1IS` with
    /// `VTTBR_EL2.VMID = vmid`, between `DSB ISH`s), before the VMID is given to another realm.
    fn tlbi_vmid(&self, vmid: u16);

    /// Gives a REC that has never run its architectural reset state in `ctx.arch` (EL1
    /// system registers with the MMU off, timers disabled, FP/SIMD zero). Called at
    /// `REC_CREATE` and when `PSCI_COMPLETE` resets a REC for `CPU_ON`.
    fn reset_arch_state(&self, ctx: &mut RealmContext);

    /// Hears of a function ID in the RMI range that names no command, before it is answered
    /// `SMC_UNKNOWN`: the firmware's fatal-fault test hook (an image with its hooks enabled
    /// panics on [`cca_abi::rmi::TEST_HOOK_PANIC`]); nothing by default.
    fn unknown_rmi(&self, _x0: u64) {}

    /// Checks the GIC virtual CPU interface state the host programmed before `REC_ENTER`:
    /// every list register that is not invalid must have HW = 0, and no two may hold the same
    /// vINTID. Returns false if the host's state must be refused (`RMI_ERROR_REC`).
    fn gic_host_state_valid(&self) -> bool;

    /// Enters Realm EL1 with `ctx` on this CPU and runs until the realm takes an exception to
    /// EL2; saves the realm's state back into `ctx` and reports the exit.
    ///
    /// See [`crate::run`] for the conventions: `ctx.pc` is `ELR_EL2` as the hardware set it
    /// (for a trapped SMC, WFI/WFE or MSR/MRS that is the trapping instruction itself: the
    /// core advances it), `ctx.pstate` is `SPSR_EL2`, `ctx.traps` holds the HCR_EL2 bits of
    /// [`crate::run::trap`] to add for this entry.
    fn run_realm(&self, ctx: &mut RealmContext) -> RealmExit;

    /// The core is done running `ctx` for this `REC_ENTER` (the REC goes back into its
    /// granule next). Called once after the last [`Platform::run_realm`] of a `REC_ENTER`. A
    /// firmware that leaves the realm's EL1 and FP/SIMD state in the registers across the
    /// exits the RMM handles itself (so that an RSI call does not save and restore it) saves
    /// it into `ctx.arch` here. The default does nothing (the state is in `ctx` already).
    fn park_realm(&self, _ctx: &mut RealmContext) {}

    /// Makes the realm take a synchronous exception to EL1 at its next entry, as the
    /// architecture's `TakeException` would, with syndrome `esr` and fault address `far`.
    ///
    /// The core computes `esr` (an SEA after an abort: the abort's syndrome with EC, FSC, EA
    /// adjusted; an UNDEF: `IL | EC 0`). The firmware, in `ctx.arch`, sets `ESR_EL1 = esr`,
    /// `FAR_EL1 = far`, `ELR_EL1 = ctx.pc`, `SPSR_EL1 = ctx.pstate`; then sets `ctx.pc` to
    /// the vector: `VBAR_EL1` + 0x200 if `ctx.pstate` is EL1h, + 0x0 if EL1t, + 0x400 if EL0
    /// AArch64, + 0x600 if EL0 AArch32, plus 0x180 more when `SCTLR2_EL1.EASE` is set and
    /// `esr` is a synchronous external abort (EC 0x20, 0x21, 0x24 or 0x25 with EA set); and
    /// `ctx.pstate` to the PSTATE of the handler: EL1h, D, A, I, F set, PAN set unless
    /// `SCTLR_EL1.SPAN`, SSBS from `SCTLR_EL1.DSSBS` with FEAT_SSBS, TCO with FEAT_MTE2,
    /// NZCV and DIT kept, IL, SS, BTYPE and UAO cleared (TF-RMM's `calc_spsr`).
    fn inject_sync_exception(&self, ctx: &mut RealmContext, esr: u64, far: u64);

    /// `ICH_VTR_EL2` of this machine's GIC CPU interface, as `RSI_REALM_CONFIG` reports it
    /// (`gicv3_vtr`, the low 32 bits).
    fn gic_vtr(&self) -> u64;
}

impl<T: PhysMem + ?Sized> PhysMem for &T {
    fn ns_read(&self, pa: Pa, buf: &mut [u8]) -> Result<(), NsFault> {
        (**self).ns_read(pa, buf)
    }
    fn ns_write(&self, pa: Pa, data: &[u8]) -> Result<(), NsFault> {
        (**self).ns_write(pa, data)
    }
    fn realm_read(&self, pa: Pa, buf: &mut [u8]) {
        (**self).realm_read(pa, buf)
    }
    fn realm_write(&self, pa: Pa, data: &[u8]) {
        (**self).realm_write(pa, data)
    }
    fn realm_zero(&self, pa: Pa) {
        (**self).realm_zero(pa)
    }
    fn realm_fill_words(&self, pa: Pa, count: usize, first: u64, step: u64) {
        (**self).realm_fill_words(pa, count, first, step)
    }
    fn ns_to_realm(&self, dst: Pa, src: Pa) -> Result<(), NsFault> {
        (**self).ns_to_realm(dst, src)
    }
    fn realm_inspect(&self, pa: Pa, len: usize, f: &mut dyn FnMut(&[u8])) {
        (**self).realm_inspect(pa, len, f)
    }
}

impl<T: El3 + ?Sized> El3 for &T {
    fn gtsi_delegate(&self, pa: Pa) -> Result<(), El3Error> {
        (**self).gtsi_delegate(pa)
    }
    fn gtsi_undelegate(&self, pa: Pa) -> Result<(), El3Error> {
        (**self).gtsi_undelegate(pa)
    }
}

impl<T: Platform + ?Sized> Platform for &T {
    fn cpu_features(&self) -> CpuFeatures {
        (**self).cpu_features()
    }
    fn id_regs(&self) -> IdRegs {
        (**self).id_regs()
    }
    fn tlbi_ipa(&self, vmid: u16, ipa: u64, level: i8) {
        (**self).tlbi_ipa(vmid, ipa, level)
    }
    fn tlbi_ipa_range(&self, vmid: u16, base: u64, size: u64) {
        (**self).tlbi_ipa_range(vmid, base, size)
    }
    fn tlbi_vmid(&self, vmid: u16) {
        (**self).tlbi_vmid(vmid)
    }
    fn unknown_rmi(&self, x0: u64) {
        (**self).unknown_rmi(x0)
    }
    fn reset_arch_state(&self, ctx: &mut RealmContext) {
        (**self).reset_arch_state(ctx)
    }
    fn gic_host_state_valid(&self) -> bool {
        (**self).gic_host_state_valid()
    }
    fn run_realm(&self, ctx: &mut RealmContext) -> RealmExit {
        (**self).run_realm(ctx)
    }
    fn park_realm(&self, ctx: &mut RealmContext) {
        (**self).park_realm(ctx)
    }
    fn inject_sync_exception(&self, ctx: &mut RealmContext, esr: u64, far: u64) {
        (**self).inject_sync_exception(ctx, esr, far)
    }
    fn gic_vtr(&self) -> u64 {
        (**self).gic_vtr()
    }
}
