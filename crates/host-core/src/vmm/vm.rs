//! A VM: a realm with its guest memory, vCPUs, virtual GIC and device bus, built from a
//! [`VmSpec`], run until the guest powers off, and torn down with every granule returned.

use super::error::{VmError, VmResult};
use super::granules::GranulePool;
use super::memory::GuestMemory;
use super::realm::Realm;
use super::stats::ExitStats;
use super::vcpu::{Vcpu, VcpuState};
use crate::client::SroMemory;
use crate::devices::Bus;
use crate::rmi::{Conduit, HostMem, Rmi};
use crate::vgic::Vgic;
use alloc::vec::Vec;
use cca_abi::rmi::{AddrRangeDesc, DonateReq, RealmParams, RecParams, REC_PARAMS_FLAG_RUNNABLE};
use cca_abi::GRANULE_SIZE as G;

/// One piece of the initial image: `len` bytes of host memory at `src` (page aligned) copied
/// to the IPAs from `ipa` (page aligned) with `RTT_DATA_MAP_INIT`. A partial last page is
/// zero-padded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    /// First IPA.
    pub ipa: u64,
    /// Host PA of the first byte.
    pub src: u64,
    /// Length in bytes.
    pub len: u64,
    /// Whether the contents are measured (the IPA and flags always are).
    pub measured: bool,
}

/// What to build.
#[derive(Clone, Copy)]
pub struct VmSpec<'a> {
    /// The realm parameters (IPA width, hash algorithm, RPV, debug and PMU settings); the
    /// RTT fields are filled in by the VM.
    pub params: RealmParams,
    /// Guest RAM `(IPA base, size)`, whole 2 MiB blocks.
    pub ram: (u64, u64),
    /// The part of RAM `(IPA base, size)` that is RIPAS RAM from the start (all of it for
    /// Linux); the rest starts EMPTY.
    pub initial_ram: (u64, u64),
    /// One `RmiRecParams` per vCPU, in vCPU order (`mpidr` must be the index's).
    pub recs: &'a [RecParams],
    /// The initial image, loaded in this order (the order is part of the measurement).
    pub loads: &'a [Load],
    /// `ICH_VMCR_EL2` a vCPU starts with.
    pub initial_vmcr: u64,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The guest called PSCI `SYSTEM_OFF`.
    SystemOff,
    /// The guest called PSCI `SYSTEM_RESET`.
    SystemReset,
    /// The run made as many exits as it was allowed.
    ExitLimit,
}

/// What teardown found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Teardown {
    /// RECs destroyed.
    pub recs: u64,
    /// Auxiliary granules the RECs gave back.
    pub aux_reclaimed: u64,
    /// RTTs destroyed.
    pub rtts: u64,
    /// Granules still delegated afterwards (0 unless something went wrong).
    pub still_delegated: u64,
    /// Granules the host read back after undelegation that were not zero (0 when scrubbed).
    pub not_scrubbed: u64,
}

/// A VM.
pub struct Vm {
    /// The host memory it lives in.
    pub pool: GranulePool,
    /// The realm.
    pub realm: Realm,
    /// Guest RAM.
    pub memory: GuestMemory,
    /// The vCPUs.
    pub vcpus: Vec<Vcpu>,
    /// The virtual GIC.
    pub vgic: Vgic,
    /// The emulated devices.
    pub bus: Bus,
    /// Exits by class.
    pub stats: ExitStats,
    /// A zeroed NS page for partial image pages.
    scratch: u64,
    /// Granules the RECs got as auxiliary memory.
    aux_granules: u64,
}

/// Donates pool granules to stateful operations and takes them back. Donations come first
/// from `reserve`, delegated granules set aside before the operation started, so that an
/// operation this RMM cannot cancel never runs out of memory half-way.
struct PoolSro<'a> {
    pool: &'a mut GranulePool,
    /// `(first granule, count)` of the reservation not donated yet.
    reserve: (u64, u64),
    given: u64,
    reclaimed: u64,
    error: Option<VmError>,
}

impl<'a> PoolSro<'a> {
    fn new(pool: &'a mut GranulePool, reserve: (u64, u64)) -> Self {
        Self {
            pool,
            reserve,
            given: 0,
            reclaimed: 0,
            error: None,
        }
    }

    /// Returns what is left of the reservation to the pool.
    fn release<C: Conduit>(&mut self, rmi: &mut Rmi<'_, C>) -> VmResult<()> {
        let (base, n) = self.reserve;
        self.reserve = (base, 0);
        if n > 0 {
            self.pool.free_delegated(rmi, base, n)?;
        }
        Ok(())
    }
}

impl<C: Conduit> SroMemory<C> for PoolSro<'_> {
    fn donate(&mut self, rmi: &mut Rmi<'_, C>, req: DonateReq) -> Option<u64> {
        let n = u64::from(req.count) * (req.size.bytes() / G);
        let (base, left) = self.reserve;
        if n <= left {
            self.reserve = (base + n * G, left - n);
            self.given += n;
            return Some(base);
        }
        match self
            .pool
            .alloc_delegated(rmi, n, G, "REC auxiliary granules")
        {
            Ok(pa) => {
                self.given += n;
                Some(pa)
            }
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }

    fn reclaimed(&mut self, rmi: &mut Rmi<'_, C>, desc: AddrRangeDesc) {
        let n = u64::from(desc.count) * (desc.size.bytes() / G);
        match self.pool.free_delegated(rmi, desc.addr, n) {
            Ok(()) => self.reclaimed += n,
            Err(e) => self.error = Some(e),
        }
    }
}

impl Vm {
    /// Builds the realm of `spec` in `pool`: RD and RTTs, RAM with RIPAS RAM, the initial
    /// image, one REC per vCPU, activation. On failure everything built so far is torn down
    /// again before the error is returned.
    pub fn build<C: Conduit, M: HostMem>(
        rmi: &mut Rmi<'_, C>,
        mem: &mut M,
        mut pool: GranulePool,
        spec: &VmSpec<'_>,
        vgic: Vgic,
        bus: Bus,
    ) -> VmResult<Self> {
        if spec.recs.is_empty() || spec.recs.len() != vgic.nr_vcpus() {
            return Err(VmError::Config("one REC per vCPU of the GIC is needed"));
        }
        let realm = Realm::create(rmi, mem, &mut pool, spec.params)?;
        let mut vm = Self {
            memory: match GuestMemory::new(&mut pool, spec.ram.0, spec.ram.1) {
                Ok(m) => m,
                Err(e) => {
                    let mut realm = realm;
                    realm.destroy(rmi, &mut pool)?;
                    return Err(e);
                }
            },
            pool,
            realm,
            vcpus: Vec::new(),
            vgic,
            bus,
            stats: ExitStats::default(),
            scratch: 0,
            aux_granules: 0,
        };
        match vm.populate(rmi, mem, spec) {
            Ok(()) => Ok(vm),
            Err(e) => {
                let _ = writeln!(rmi.out(), "building the realm failed: {e}; tearing it down");
                vm.destroy(rmi, mem)?;
                Err(e)
            }
        }
    }

    fn populate<C: Conduit, M: HostMem>(
        &mut self,
        rmi: &mut Rmi<'_, C>,
        mem: &mut M,
        spec: &VmSpec<'_>,
    ) -> VmResult<()> {
        self.scratch = self.pool.alloc(1, G, "a scratch page")?;
        let (b, n) = spec.initial_ram;
        let top = b
            .checked_add(n)
            .ok_or(VmError::Config("the initial RAM range wraps"))?;
        self.memory
            .init_ripas(rmi, &mut self.pool, &mut self.realm, b, top)?;
        let verbose = core::mem::replace(&mut rmi.verbose, false);
        let r = self.load_all(rmi, mem, spec.loads);
        rmi.verbose = verbose;
        r?;
        for (i, p) in spec.recs.iter().enumerate() {
            if p.mpidr != cca_abi::rmi::rec_mpidr::from_index(i as u64) {
                return Err(VmError::Config("a REC's MPIDR does not match its index"));
            }
            let rec = self.pool.alloc_delegated(rmi, 1, G, "a REC")?;
            let run = match self.pool.alloc(1, G, "a REC run page") {
                Ok(r) => r,
                Err(e) => {
                    self.pool.free_delegated(rmi, rec, 1)?;
                    return Err(e);
                }
            };
            let aux = cca_abi::rmi::REC_AUX_GRANULES as u64;
            let reserve = match self
                .pool
                .alloc_delegated(rmi, aux, G, "REC auxiliary granules")
            {
                Ok(r) => r,
                Err(e) => {
                    self.pool.free_delegated(rmi, rec, 1)?;
                    self.pool.free(run, 1)?;
                    return Err(e);
                }
            };
            let mut sro = PoolSro::new(&mut self.pool, (reserve, aux));
            let pages = (self.realm.params_page, self.realm.list_page);
            let r = rmi.rec_create(mem, self.realm.rd, rec, p, pages, &mut sro);
            sro.release(rmi)?;
            self.aux_granules += sro.given - sro.reclaimed;
            if let Some(e) = sro.error.take() {
                return Err(e);
            }
            if let Err(e) = r {
                self.pool.free_delegated(rmi, rec, 1)?;
                self.pool.free(run, 1)?;
                return Err(VmError::Rmi {
                    doing: "creating a REC",
                    err: e,
                });
            }
            let mut v = Vcpu::new(i, rec, run, p.flags & REC_PARAMS_FLAG_RUNNABLE != 0);
            v.vmcr = spec.initial_vmcr;
            v.initial_vmcr = spec.initial_vmcr;
            self.vcpus.push(v);
        }
        self.realm.activate(rmi)
    }

    fn load_all<C: Conduit, M: HostMem>(
        &mut self,
        rmi: &mut Rmi<'_, C>,
        mem: &mut M,
        loads: &[Load],
    ) -> VmResult<()> {
        for l in loads {
            if l.ipa % G != 0 || l.src % G != 0 || !self.memory.contains_range(l.ipa, l.len) {
                return Err(VmError::Config(
                    "an image is unaligned or does not fit in guest RAM",
                ));
            }
            let pages = l.len.div_ceil(G);
            for k in 0..pages {
                let off = k * G;
                let left = l.len - off;
                let src = if left >= G {
                    l.src + off
                } else {
                    let mut page = [0u8; G as usize];
                    mem.read(l.src + off, &mut page[..left as usize]);
                    mem.write(self.scratch, &page);
                    self.scratch
                };
                self.memory.load_page(
                    rmi,
                    &mut self.pool,
                    &mut self.realm,
                    l.ipa + off,
                    src,
                    l.measured,
                )?;
            }
        }
        Ok(())
    }

    /// The vCPU a realm's PSCI call names with `mpidr`, resolved as the RMM resolves it
    /// (TF-RMM `mpidr_to_rec_idx`: the REC index is Aff3:Aff2:Aff1:Aff0[3:0], every other
    /// bit ignored), so that the host completes the request for the REC the RMM chose.
    pub fn vcpu_by_mpidr(&self, mpidr: u64) -> Option<usize> {
        let rec_index = |m: u64| {
            (m & 0xF) | ((m >> 4) & 0xFF0) | ((m >> 4) & 0xF_F000) | ((m >> 12) & 0xFF0_0000)
        };
        let idx = rec_index(mpidr);
        self.vcpus.iter().position(|v| rec_index(v.mpidr()) == idx)
    }

    /// Tears the VM down: terminates the realm, destroys the RECs (reclaiming their
    /// auxiliary granules), unmaps guest RAM, destroys the RTTs and the realm, undelegates
    /// everything (the RMM scrubs it) and checks that nothing stayed delegated and that a
    /// sample of the returned granules reads as zero.
    pub fn destroy<C: Conduit, M: HostMem>(
        &mut self,
        rmi: &mut Rmi<'_, C>,
        mem: &mut M,
    ) -> VmResult<Teardown> {
        let mut t = Teardown::default();
        let verbose = core::mem::replace(&mut rmi.verbose, false);
        let r = self.destroy_quiet(rmi, mem, &mut t);
        rmi.verbose = verbose;
        r.map(|()| t)
    }

    fn destroy_quiet<C: Conduit, M: HostMem>(
        &mut self,
        rmi: &mut Rmi<'_, C>,
        mem: &mut M,
        t: &mut Teardown,
    ) -> VmResult<()> {
        self.realm.terminate(rmi)?;
        let mut samples: Vec<u64> = Vec::new();
        for v in self.vcpus.drain(..) {
            let mut sro = PoolSro::new(&mut self.pool, (0, 0));
            let r = rmi.rec_destroy(mem, v.rec, self.realm.list_page, &mut sro);
            t.aux_reclaimed += sro.reclaimed;
            if let Some(e) = sro.error.take() {
                return Err(e);
            }
            r.map_err(VmError::rmi("destroying a REC"))?;
            self.pool.free_delegated(rmi, v.rec, 1)?;
            self.pool.free(v.run, 1)?;
            samples.push(v.rec);
            t.recs += 1;
        }
        self.aux_granules = self.aux_granules.saturating_sub(t.aux_reclaimed);
        if let Some(pa) = self.memory.backing_of(self.memory.range().0) {
            samples.push(pa);
        }
        self.memory.release(rmi, &mut self.pool, &mut self.realm)?;
        samples.push(self.realm.rd);
        t.rtts = self.realm.destroy(rmi, &mut self.pool)?;
        if self.scratch != 0 {
            self.pool.free(self.scratch, 1)?;
            self.scratch = 0;
        }
        t.still_delegated = self.pool.delegated_granules();
        for pa in samples {
            let mut page = [0u8; G as usize];
            mem.read(pa, &mut page);
            if page.iter().any(|&b| b != 0) {
                t.not_scrubbed += 1;
            }
        }
        Ok(())
    }

    /// True when every vCPU is off.
    pub fn all_off(&self) -> bool {
        self.vcpus.iter().all(|v| v.state == VcpuState::Off)
    }
}
