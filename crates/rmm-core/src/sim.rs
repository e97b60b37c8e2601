//! A simulated machine for running the RMM core in a test process (cargo feature `sim`).
//!
//! [`SimPlatform`] models the DRAM banks granule by granule, each with its contents and its
//! physical address space (PAS) in a simulated GPT, plus EL3's GTSI calls. It checks every
//! access the RMM makes and **panics** when the RMM touches memory through the wrong PAS:
//!
//! * reading or writing an NS page that the GPT says is Realm (the RMM's tracking and the GPT
//!   disagree: realm data would reach the host);
//! * reading, writing or zeroing through the Realm PAS a granule that is not Realm (for
//!   example scrubbing a granule EL3 has not delegated yet);
//! * any access outside the simulated DRAM, or crossing a granule boundary.
//!
//! An NS access to a Secure or Root granule is not an RMM bug (the host may name such a page)
//! and returns [`NsFault`], like the firmware's fault-tolerant copy routines.
//!
//! The host side of a test uses [`SimPlatform::host_read`] and [`SimPlatform::host_write`],
//! which fault on anything not NS, as the hardware would. Faults can be injected into EL3
//! ([`SimPlatform::refuse_delegate`], [`SimPlatform::fail_undelegate`]), and a hook can watch
//! every EL3 call ([`SimPlatform::set_el3_hook`]).

extern crate std;

use std::boxed::Box;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::vec::Vec;

use cca_abi::el3::{El3Error, MemoryBank};
use cca_abi::{GRANULE_SHIFT, GRANULE_SIZE};

use crate::features::CpuFeatures;
use crate::granule::GranuleTable;
use crate::idregs::{IdReg, IdRegs};
use crate::pa::Pa;
use crate::platform::{El3, NsFault, PhysMem, Platform};

/// Physical address spaces of the simulated GPT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pas {
    /// Non-secure: the host's.
    NonSecure,
    /// Realm: the RMM's and the realms'.
    Realm,
    /// Secure: EL3 gave it to the secure world.
    Secure,
    /// Root: EL3's own.
    Root,
}

/// Default CPU features of the simulator: 48-bit PAs, no LPA2, no SVE, 6 breakpoints and
/// 4 watchpoints.
pub const SIM_CPU: CpuFeatures = CpuFeatures {
    pa_width: 48,
    lpa2: false,
    sve_vq: None,
    dfr0_brps: 5,
    dfr0_wrps: 3,
    dfr1_brps: 0,
    dfr1_wrps: 0,
};

/// The ID registers of the simulated CPU before [`sim_id_regs`] adapts them to a
/// [`CpuFeatures`]: QEMU 10's `-cpu max,x-rme=on`, plus every feature realms must not see
/// that QEMU lacks (MPAM, AMU, MTE, SME, GCS, THE, LS64, TME, HAFT, D128, FPMR, BRBE, SPE,
/// TRBE, trace, LOR...), so that the tests show each one hidden.
pub const SIM_ID_REGS_BASE: [(IdReg, u64); 42] = [
    (IdReg::ID_PFR0, 0x2112_0131),
    (IdReg::ID_PFR1, 0x1001_0000),
    (IdReg::ID_DFR0, 0x1601_1099),
    (IdReg::ID_AFR0, 0x1),
    (IdReg::ID_MMFR0, 0x1020_1105),
    (IdReg::ID_MMFR1, 0x4000_0000),
    (IdReg::ID_MMFR2, 0x0126_0000),
    (IdReg::ID_MMFR3, 0x0212_2211),
    (IdReg::ID_ISAR0, 0x0210_1110),
    (IdReg::ID_ISAR1, 0x1311_2111),
    (IdReg::ID_ISAR2, 0x2123_2042),
    (IdReg::ID_ISAR3, 0x0111_2131),
    (IdReg::ID_ISAR4, 0x0001_0142),
    (IdReg::ID_ISAR5, 0x1101_1121),
    (IdReg::ID_MMFR4, 0x2102_1110),
    (IdReg::ID_ISAR6, 0x0111_1111),
    (IdReg::MVFR0, 0x1011_0222),
    (IdReg::MVFR1, 0x1321_1111),
    (IdReg::MVFR2, 0x43),
    (IdReg::ID_PFR2, 0x11),
    (IdReg::ID_DFR1, 0x11),
    (IdReg::ID_MMFR5, 0x1),
    (IdReg::AA64PFR0, 0x1311_1111_2111_2222),
    (IdReg::AA64PFR1, 0x1111_1010_1201_1321),
    (IdReg::AA64PFR2, 0x1_0001_0111),
    (IdReg::AA64ZFR0, 0x0110_1101_0121_0022),
    (IdReg::AA64SMFR0, 0x8FF1_5C8F_0000_0000),
    (IdReg::AA64FPFR0, 0x8000_0003),
    (IdReg::AA64DFR0, 0x1111_1101_1131_561A),
    (IdReg::AA64DFR1, 0x0111_1111_0000_0001),
    (IdReg::AA64DFR2, 0x11),
    (IdReg::AA64AFR0, 0x1),
    (IdReg::AA64AFR1, 0x1),
    (IdReg::AA64ISAR0, 0x1221_1111_1131_2120),
    (IdReg::AA64ISAR1, 0x1111_2111_0121_1152),
    (IdReg::AA64ISAR2, 0x1010_0011_0011_0012),
    (IdReg::AA64ISAR3, 0x1111_1111),
    (IdReg::AA64MMFR0, 0x2100_0222_0010_1125),
    (IdReg::AA64MMFR1, 0x0110_1120_1031_2123),
    (IdReg::AA64MMFR2, 0x1221_0111_1201_1011),
    (IdReg::AA64MMFR3, 0x1110_1111_1111_1111),
    (IdReg::AA64MMFR4, 0x10_0001_1110),
];

/// `MIDR_EL1` of the simulated CPU (QEMU's `max`: implementer 0, architecture 0xF, part 'Q').
pub const SIM_MIDR: u64 = 0x000F_0510;

/// The simulated CPU's ID registers for `cpu`: [`SIM_ID_REGS_BASE`] with the PARange and
/// the breakpoint and watchpoint counts of `cpu`. SVE stays in the ID registers whatever
/// `cpu.sve_vq` says, as on QEMU, whose CPU has SVE that the firmware does not offer.
pub fn sim_id_regs(cpu: &CpuFeatures) -> IdRegs {
    let mut ids = IdRegs::ZERO;
    ids.midr = SIM_MIDR;
    for (reg, v) in SIM_ID_REGS_BASE {
        ids.set(reg, v);
    }
    let parange = [32u8, 36, 40, 42, 44, 48, 52]
        .iter()
        .position(|&b| b == cpu.pa_width)
        .unwrap_or(5) as u64;
    ids.with_field(IdReg::AA64MMFR0, 0, 4, parange)
        .with_field(IdReg::AA64DFR0, 12, 4, cpu.dfr0_brps.into())
        .with_field(IdReg::AA64DFR0, 20, 4, cpu.dfr0_wrps.into())
        .with_field(IdReg::AA64DFR1, 8, 8, cpu.dfr1_brps.into())
        .with_field(IdReg::AA64DFR1, 16, 8, cpu.dfr1_wrps.into())
}

struct SimGranule {
    pas: Pas,
    /// `None` means all zeroes.
    data: Option<Box<[u8; GRANULE_SIZE as usize]>>,
    /// The contents are still what the host left there when it delegated the granule: the
    /// RMM has not written it through the Realm PAS since.
    host_data: bool,
}

/// A hook called before every EL3 call, with the call's name and the granule.
pub type El3Hook = Box<dyn Fn(&'static str, Pa) + Send + Sync>;

/// A TLB invalidation the RMM asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tlbi {
    /// [`Platform::tlbi_ipa`]: one RTT entry.
    Ipa {
        /// The VMID.
        vmid: u16,
        /// The IPA.
        ipa: u64,
        /// The level of the entry.
        level: i8,
    },
    /// [`Platform::tlbi_ipa_range`].
    Range {
        /// The VMID.
        vmid: u16,
        /// Base IPA.
        base: u64,
        /// Size in bytes.
        size: u64,
    },
    /// [`Platform::tlbi_vmid`].
    Vmid(u16),
}

impl Tlbi {
    /// Returns true when this invalidation removes TLB entries of `vmid` translating any
    /// IPA in `[base, base + size)`.
    pub fn covers(&self, vmid_: u16, base_: u64, size_: u64) -> bool {
        let overlaps =
            |b: u64, s: u64| b < base_.saturating_add(size_) && base_ < b.saturating_add(s);
        match *self {
            Self::Ipa { vmid, ipa, .. } => vmid == vmid_ && overlaps(ipa, 1),
            Self::Range { vmid, base, size } => vmid == vmid_ && overlaps(base, size),
            Self::Vmid(vmid) => vmid == vmid_,
        }
    }
}

/// A simulated machine: DRAM, GPT and EL3.
pub struct SimPlatform {
    banks: Vec<(u64, u64, usize)>,
    granules: Vec<Mutex<SimGranule>>,
    cpu: CpuFeatures,
    id_regs: IdRegs,
    refused: Mutex<HashMap<u64, El3Error>>,
    failing_undelegate: Mutex<HashMap<u64, El3Error>>,
    hook: Mutex<Option<El3Hook>>,
    delegate_calls: AtomicUsize,
    undelegate_calls: AtomicUsize,
    tlbis: Mutex<Vec<Tlbi>>,
    realm_script: Mutex<std::collections::VecDeque<RealmStep>>,
    gic_valid: std::sync::atomic::AtomicBool,
    injections: Mutex<Vec<Injection>>,
    /// Realm runs since the core last parked a REC ([`Platform::park_realm`]).
    unparked_runs: AtomicUsize,
    arch_resets: AtomicUsize,
}

/// A synchronous exception the RMM injected into a realm
/// ([`Platform::inject_sync_exception`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Injection {
    /// `ESR_EL1`.
    pub esr: u64,
    /// `FAR_EL1`.
    pub far: u64,
    /// `ELR_EL1`: the PC the realm had.
    pub elr: u64,
    /// `SPSR_EL1`: the PSTATE the realm had.
    pub spsr: u64,
}

/// Index in `RealmContext.arch` of the simulated `VBAR_EL1` (a realm step may set it).
pub const SIM_ARCH_VBAR: usize = 1;

/// The `ICH_VTR_EL2` the simulator reports (4 list registers, 5 priority bits, 16-bit IDs).
pub const SIM_ICH_VTR: u64 = 0x9040_0003;

/// One scripted run of a realm: it receives the context the RMM enters with, may change it
/// (as the realm's instructions would) and returns how the realm exits to EL2.
pub type RealmStep = Box<dyn FnMut(&mut crate::run::RealmContext) -> crate::run::RealmExit + Send>;

impl core::fmt::Debug for SimPlatform {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SimPlatform")
            .field("granules", &self.granules.len())
            .field("cpu", &self.cpu)
            .finish_non_exhaustive()
    }
}

/// Returns zeroed descriptor storage for a [`GranuleTable`] over `banks`.
///
/// # Panics
///
/// If the banks are invalid.
pub fn granule_storage(banks: &[MemoryBank]) -> Vec<AtomicU16> {
    let n = GranuleTable::entries_needed(banks).expect("invalid DRAM banks");
    (0..n).map(|_| AtomicU16::new(0)).collect()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in another test thread must not hide this thread's own result.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SimPlatform {
    /// A machine whose DRAM is `banks`, all NS and zero, with [`SIM_CPU`].
    pub fn new(banks: &[MemoryBank]) -> Self {
        Self::with_cpu(banks, SIM_CPU)
    }

    /// A machine whose DRAM is `banks`, all NS and zero, with the given CPU features (and
    /// the ID registers [`sim_id_regs`] gives for them).
    pub fn with_cpu(banks: &[MemoryBank], cpu: CpuFeatures) -> Self {
        Self::with_id_regs(banks, cpu, sim_id_regs(&cpu))
    }

    /// A machine whose DRAM is `banks`, all NS and zero, with the given CPU features and ID
    /// registers.
    pub fn with_id_regs(banks: &[MemoryBank], cpu: CpuFeatures, id_regs: IdRegs) -> Self {
        let mut layout = Vec::new();
        let mut n = 0usize;
        for b in banks {
            let count = usize::try_from(b.size >> GRANULE_SHIFT).expect("bank too large");
            layout.push((b.base, b.base + b.size, n));
            n += count;
        }
        Self {
            banks: layout,
            granules: (0..n)
                .map(|_| {
                    Mutex::new(SimGranule {
                        pas: Pas::NonSecure,
                        data: None,
                        host_data: false,
                    })
                })
                .collect(),
            cpu,
            id_regs,
            refused: Mutex::new(HashMap::new()),
            failing_undelegate: Mutex::new(HashMap::new()),
            hook: Mutex::new(None),
            delegate_calls: AtomicUsize::new(0),
            undelegate_calls: AtomicUsize::new(0),
            tlbis: Mutex::new(Vec::new()),
            realm_script: Mutex::new(std::collections::VecDeque::new()),
            gic_valid: std::sync::atomic::AtomicBool::new(true),
            injections: Mutex::new(Vec::new()),
            unparked_runs: AtomicUsize::new(0),
            arch_resets: AtomicUsize::new(0),
        }
    }

    fn slot(&self, pa: u64) -> Option<&Mutex<SimGranule>> {
        let &(base, _, first) = self.banks.iter().find(|(b, t, _)| pa >= *b && pa < *t)?;
        self.granules
            .get(first + ((pa - base) >> GRANULE_SHIFT) as usize)
    }

    /// Returns the granule containing `pa` and the offset of `pa` in it, checking that
    /// `len` bytes from `pa` stay inside the granule.
    fn granule_for(&self, who: &str, pa: Pa, len: usize) -> (MutexGuard<'_, SimGranule>, usize) {
        let off = (pa.get() & (GRANULE_SIZE - 1)) as usize;
        assert!(
            off + len <= GRANULE_SIZE as usize,
            "{who}: access of {len} bytes at {pa} crosses a granule boundary"
        );
        let slot = self
            .slot(pa.get())
            .unwrap_or_else(|| panic!("{who}: access to {pa}, outside the simulated DRAM"));
        (lock(slot), off)
    }

    /// Returns true when `pa` lies in the simulated DRAM.
    pub fn contains(&self, pa: Pa) -> bool {
        self.slot(pa.get()).is_some()
    }

    /// Returns the PAS of the granule containing `pa`.
    pub fn pas(&self, pa: Pa) -> Pas {
        self.granule_for("test", pa, 0).0.pas
    }

    /// Sets the PAS of the granule containing `pa`, as EL3 would when it hands memory to
    /// another world (for example [`Pas::Secure`] to model a secure carve-out).
    pub fn set_pas(&self, pa: Pa, pas: Pas) {
        self.granule_for("test", pa, 0).0.pas = pas;
    }

    /// Returns true when the granule containing `pa` holds only zeroes (whatever its PAS).
    /// True when the granule containing `pa` holds no realm data: it is zero, or still
    /// holds exactly what the host left in it when it was delegated. A DELEGATED granule
    /// must always satisfy this (undelegation scrubs, and every object the RMM frees is
    /// scrubbed before it is DELEGATED again).
    pub fn holds_no_realm_data(&self, pa: Pa) -> bool {
        self.granule_for("test", pa, 0).0.host_data || self.is_zero(pa)
    }

    /// Realm runs since the core last parked a REC: 0 whenever a `REC_ENTER` has returned
    /// (the core must park the REC it ran before putting it back into its granule).
    pub fn unparked_runs(&self) -> usize {
        self.unparked_runs.load(Ordering::Relaxed)
    }

    /// True when the granule containing `pa` is all zero.
    pub fn is_zero(&self, pa: Pa) -> bool {
        self.granule_for("test", pa, 0)
            .0
            .data
            .as_ref()
            .is_none_or(|d| d.iter().all(|&b| b == 0))
    }

    /// Returns a copy of the granule containing `pa`, whatever its PAS (a test's view from
    /// outside the machine).
    pub fn peek(&self, pa: Pa) -> Box<[u8; GRANULE_SIZE as usize]> {
        let g = self.granule_for("test", pa, 0).0;
        g.data
            .clone()
            .unwrap_or_else(|| Box::new([0; GRANULE_SIZE as usize]))
    }

    fn copy_out(g: &SimGranule, off: usize, buf: &mut [u8]) {
        match &g.data {
            Some(d) => buf.copy_from_slice(&d[off..off + buf.len()]),
            None => buf.fill(0),
        }
    }

    fn copy_in(g: &mut SimGranule, off: usize, data: &[u8]) {
        if g.data.is_none() && data.iter().all(|&b| b == 0) {
            return;
        }
        let d = g
            .data
            .get_or_insert_with(|| Box::new([0; GRANULE_SIZE as usize]));
        d[off..off + data.len()].copy_from_slice(data);
    }

    /// The host reads NS memory: faults unless the granule is in the NS PAS.
    pub fn host_read(&self, pa: Pa, buf: &mut [u8]) -> Result<(), NsFault> {
        let (g, off) = self.granule_for("host", pa, buf.len());
        if g.pas != Pas::NonSecure {
            return Err(NsFault);
        }
        Self::copy_out(&g, off, buf);
        Ok(())
    }

    /// The host writes NS memory: faults unless the granule is in the NS PAS.
    pub fn host_write(&self, pa: Pa, data: &[u8]) -> Result<(), NsFault> {
        let (mut g, off) = self.granule_for("host", pa, data.len());
        if g.pas != Pas::NonSecure {
            return Err(NsFault);
        }
        Self::copy_in(&mut g, off, data);
        Ok(())
    }

    /// Makes EL3 refuse to delegate the granule at `pa` with `error`.
    pub fn refuse_delegate(&self, pa: Pa, error: El3Error) {
        lock(&self.refused).insert(pa.get(), error);
    }

    /// Makes EL3 fail to undelegate the granule at `pa` with `error`.
    pub fn fail_undelegate(&self, pa: Pa, error: El3Error) {
        lock(&self.failing_undelegate).insert(pa.get(), error);
    }

    /// Installs a hook called before every EL3 call.
    pub fn set_el3_hook(&self, hook: El3Hook) {
        *lock(&self.hook) = Some(hook);
    }

    /// Number of `GTSI_DELEGATE` calls so far.
    pub fn delegate_calls(&self) -> usize {
        self.delegate_calls.load(Ordering::Relaxed)
    }

    /// Number of `GTSI_UNDELEGATE` calls so far.
    pub fn undelegate_calls(&self) -> usize {
        self.undelegate_calls.load(Ordering::Relaxed)
    }

    /// Returns and forgets the TLB invalidations the RMM asked for so far.
    pub fn take_tlbis(&self) -> Vec<Tlbi> {
        core::mem::take(&mut *lock(&self.tlbis))
    }

    fn run_hook(&self, call: &'static str, pa: Pa) {
        if let Some(h) = lock(&self.hook).as_ref() {
            h(call, pa);
        }
    }
}

impl PhysMem for SimPlatform {
    fn ns_read(&self, pa: Pa, buf: &mut [u8]) -> Result<(), NsFault> {
        let (g, off) = self.granule_for("RMM ns_read", pa, buf.len());
        match g.pas {
            Pas::NonSecure => {
                Self::copy_out(&g, off, buf);
                Ok(())
            }
            Pas::Realm => panic!("RMM read NS page {pa}, which is in the Realm PAS"),
            Pas::Secure | Pas::Root => Err(NsFault),
        }
    }

    fn ns_write(&self, pa: Pa, data: &[u8]) -> Result<(), NsFault> {
        let (mut g, off) = self.granule_for("RMM ns_write", pa, data.len());
        match g.pas {
            Pas::NonSecure => {
                Self::copy_in(&mut g, off, data);
                Ok(())
            }
            Pas::Realm => panic!("RMM wrote NS page {pa}, which is in the Realm PAS"),
            Pas::Secure | Pas::Root => Err(NsFault),
        }
    }

    fn realm_read(&self, pa: Pa, buf: &mut [u8]) {
        let (g, off) = self.granule_for("RMM realm_read", pa, buf.len());
        assert!(
            g.pas == Pas::Realm,
            "RMM read {pa} through the Realm PAS, but it is {:?}",
            g.pas
        );
        Self::copy_out(&g, off, buf);
    }

    fn realm_write(&self, pa: Pa, data: &[u8]) {
        let (mut g, off) = self.granule_for("RMM realm_write", pa, data.len());
        assert!(
            g.pas == Pas::Realm,
            "RMM wrote {pa} through the Realm PAS, but it is {:?}",
            g.pas
        );
        g.host_data = false;
        Self::copy_in(&mut g, off, data);
    }

    fn realm_zero(&self, pa: Pa) {
        assert!(pa.is_granule_aligned(), "RMM zeroed unaligned address {pa}");
        let (mut g, _) = self.granule_for("RMM realm_zero", pa, GRANULE_SIZE as usize);
        assert!(
            g.pas == Pas::Realm,
            "RMM zeroed {pa} through the Realm PAS, but it is {:?}",
            g.pas
        );
        g.data = None;
        g.host_data = false;
    }
}

impl El3 for SimPlatform {
    fn gtsi_delegate(&self, pa: Pa) -> Result<(), El3Error> {
        self.run_hook("GTSI_DELEGATE", pa);
        self.delegate_calls.fetch_add(1, Ordering::Relaxed);
        if let Some(&e) = lock(&self.refused).get(&pa.get()) {
            return Err(e);
        }
        if !pa.is_granule_aligned() {
            return Err(El3Error::Inval);
        }
        let Some(slot) = self.slot(pa.get()) else {
            return Err(El3Error::BadAddr);
        };
        let mut g = lock(slot);
        if g.pas != Pas::NonSecure {
            return Err(El3Error::BadPas);
        }
        // Like the hardware, the contents stay as they are.
        g.pas = Pas::Realm;
        g.host_data = g.data.is_some();
        Ok(())
    }

    fn gtsi_undelegate(&self, pa: Pa) -> Result<(), El3Error> {
        self.run_hook("GTSI_UNDELEGATE", pa);
        self.undelegate_calls.fetch_add(1, Ordering::Relaxed);
        if let Some(&e) = lock(&self.failing_undelegate).get(&pa.get()) {
            return Err(e);
        }
        if !pa.is_granule_aligned() {
            return Err(El3Error::Inval);
        }
        let Some(slot) = self.slot(pa.get()) else {
            return Err(El3Error::BadAddr);
        };
        let mut g = lock(slot);
        if g.pas != Pas::Realm {
            return Err(El3Error::BadPas);
        }
        g.pas = Pas::NonSecure;
        Ok(())
    }
}

impl SimPlatform {
    /// Queues what the realm does the next time the RMM runs it.
    pub fn push_realm_step(&self, step: RealmStep) {
        lock(&self.realm_script).push_back(step);
    }

    /// Number of queued realm steps not run yet.
    pub fn pending_realm_steps(&self) -> usize {
        lock(&self.realm_script).len()
    }

    /// Forgets the queued realm steps (for example after a `REC_ENTER` that failed before
    /// running the realm).
    pub fn clear_realm_steps(&self) {
        lock(&self.realm_script).clear();
    }

    /// Number of [`Platform::reset_arch_state`] calls so far.
    pub fn arch_resets(&self) -> usize {
        self.arch_resets.load(Ordering::Relaxed)
    }

    /// Returns and forgets the exceptions the RMM injected into realms so far.
    pub fn take_injections(&self) -> Vec<Injection> {
        core::mem::take(&mut *lock(&self.injections))
    }

    /// Makes [`Platform::gic_host_state_valid`] report `valid`.
    pub fn set_gic_host_state_valid(&self, valid: bool) {
        self.gic_valid
            .store(valid, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Platform for SimPlatform {
    fn cpu_features(&self) -> CpuFeatures {
        self.cpu
    }

    fn id_regs(&self) -> IdRegs {
        self.id_regs
    }

    fn tlbi_ipa(&self, vmid: u16, ipa: u64, level: i8) {
        assert!(
            (-1..=3).contains(&level),
            "TLBI of IPA {ipa:#x} at level {level}"
        );
        let shift = (3 - i32::from(level)) * 9 + 12;
        assert!(
            shift >= 64 || ipa & ((1u64 << shift) - 1) == 0,
            "TLBI of IPA {ipa:#x} not aligned to level {level}"
        );
        lock(&self.tlbis).push(Tlbi::Ipa { vmid, ipa, level });
    }

    fn tlbi_ipa_range(&self, vmid: u16, base: u64, size: u64) {
        assert!(
            size >= GRANULE_SIZE && size.is_power_of_two() && base % GRANULE_SIZE == 0,
            "TLBI range {base:#x} + {size:#x}"
        );
        lock(&self.tlbis).push(Tlbi::Range { vmid, base, size });
    }

    fn tlbi_vmid(&self, vmid: u16) {
        lock(&self.tlbis).push(Tlbi::Vmid(vmid));
    }

    fn reset_arch_state(&self, ctx: &mut crate::run::RealmContext) {
        // The simulator's "architecture" only records that a reset happened.
        self.arch_resets.fetch_add(1, Ordering::Relaxed);
        ctx.arch = [0; crate::run::ARCH_STATE_WORDS];
        ctx.arch[0] = 1;
    }

    fn gic_host_state_valid(&self) -> bool {
        self.gic_valid.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn run_realm(&self, ctx: &mut crate::run::RealmContext) -> crate::run::RealmExit {
        let step = lock(&self.realm_script).pop_front();
        let Some(mut step) = step else {
            panic!(
                "the RMM entered a realm at pc {:#x} but the test scripted no step",
                ctx.pc
            );
        };
        self.unparked_runs.fetch_add(1, Ordering::Relaxed);
        step(ctx)
    }

    fn park_realm(&self, _ctx: &mut crate::run::RealmContext) {
        self.unparked_runs.store(0, Ordering::Relaxed);
    }

    fn inject_sync_exception(&self, ctx: &mut crate::run::RealmContext, esr: u64, far: u64) {
        lock(&self.injections).push(Injection {
            esr,
            far,
            elr: ctx.pc,
            spsr: ctx.pstate,
        });
        let offset = match ctx.pstate & 0x1F {
            0x5 => 0x200,
            0x4 => 0x0,
            0x0 => 0x400,
            _ => 0x600,
        };
        ctx.pc = ctx.arch[SIM_ARCH_VBAR].wrapping_add(offset);
        ctx.pstate = crate::rec::PSTATE_INIT;
    }

    fn gic_vtr(&self) -> u64 {
        SIM_ICH_VTR
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: u64 = 0x8000_0000;

    fn sim() -> SimPlatform {
        SimPlatform::new(&[MemoryBank {
            base: B,
            size: 4 * GRANULE_SIZE,
        }])
    }

    #[test]
    fn host_sees_only_ns_memory() {
        let s = sim();
        s.host_write(Pa::new(B), &[1, 2, 3]).unwrap();
        let mut b = [0u8; 3];
        s.host_read(Pa::new(B), &mut b).unwrap();
        assert_eq!(b, [1, 2, 3]);
        s.gtsi_delegate(Pa::new(B)).unwrap();
        assert_eq!(s.host_read(Pa::new(B), &mut b), Err(NsFault));
        assert_eq!(s.host_write(Pa::new(B), &b), Err(NsFault));
        // Delegation keeps the contents, as the hardware does.
        assert!(!s.is_zero(Pa::new(B)));
        s.realm_zero(Pa::new(B));
        assert!(s.is_zero(Pa::new(B)));
    }

    #[test]
    fn el3_checks_the_pas() {
        let s = sim();
        let p = Pa::new(B + GRANULE_SIZE);
        assert_eq!(s.gtsi_undelegate(p), Err(El3Error::BadPas));
        s.gtsi_delegate(p).unwrap();
        assert_eq!(s.pas(p), Pas::Realm);
        assert_eq!(s.gtsi_delegate(p), Err(El3Error::BadPas));
        s.gtsi_undelegate(p).unwrap();
        assert_eq!(s.pas(p), Pas::NonSecure);
        assert_eq!(
            s.gtsi_delegate(Pa::new(B - GRANULE_SIZE)),
            Err(El3Error::BadAddr)
        );
        assert_eq!(s.gtsi_delegate(Pa::new(B + 8)), Err(El3Error::Inval));
        s.set_pas(p, Pas::Secure);
        assert_eq!(s.gtsi_delegate(p), Err(El3Error::BadPas));
        assert_eq!(s.ns_read(p, &mut [0u8; 4]), Err(NsFault));
        assert_eq!((s.delegate_calls(), s.undelegate_calls()), (5, 2));
    }

    #[test]
    #[should_panic(expected = "RMM read NS page 0x80000000, which is in the Realm PAS")]
    fn rmm_reading_realm_memory_as_ns_fails_the_test() {
        let s = sim();
        s.gtsi_delegate(Pa::new(B)).unwrap();
        let _ = s.ns_read(Pa::new(B), &mut [0u8; 8]);
    }

    #[test]
    #[should_panic(expected = "RMM wrote NS page")]
    fn rmm_writing_realm_memory_as_ns_fails_the_test() {
        let s = sim();
        s.gtsi_delegate(Pa::new(B)).unwrap();
        let _ = s.ns_write(Pa::new(B), &[0u8; 8]);
    }

    #[test]
    #[should_panic(expected = "RMM zeroed 0x80000000 through the Realm PAS, but it is NonSecure")]
    fn rmm_zeroing_an_ns_granule_fails_the_test() {
        sim().realm_zero(Pa::new(B));
    }

    #[test]
    #[should_panic(expected = "through the Realm PAS, but it is NonSecure")]
    fn rmm_reading_ns_memory_as_realm_fails_the_test() {
        sim().realm_read(Pa::new(B), &mut [0u8; 8]);
    }

    #[test]
    #[should_panic(expected = "crosses a granule boundary")]
    fn rmm_access_across_granules_fails_the_test() {
        let _ = sim().ns_read(Pa::new(B + GRANULE_SIZE - 4), &mut [0u8; 8]);
    }

    #[test]
    #[should_panic(expected = "outside the simulated DRAM")]
    fn rmm_access_outside_dram_fails_the_test() {
        let _ = sim().ns_read(Pa::new(B - GRANULE_SIZE), &mut [0u8; 8]);
    }
}
