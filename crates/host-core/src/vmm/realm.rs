//! The realm object: its descriptor (RD), starting-level RTTs, the RTT manager and the NS
//! pages the host uses to pass structures to the RMM; creation, activation and destruction.

use super::error::{VmError, VmResult};
use super::granules::GranulePool;
use super::rtt::{start_level, Rtts};
use crate::rmi::{Conduit, HostMem, Rmi};
use cca_abi::rmi::RealmParams;
use cca_abi::GRANULE_SIZE as G;

/// Where a realm is in its life, as the host sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RealmLife {
    /// Created, being populated.
    New,
    /// Activated: its RECs may run.
    Active,
    /// Terminated: only teardown remains.
    Terminated,
    /// Destroyed: every granule is back with the host.
    Destroyed,
}

/// A realm the host created.
#[derive(Debug)]
pub struct Realm {
    /// The RD granule.
    pub rd: u64,
    /// The first starting-level RTT and how many there are.
    pub root: (u64, u32),
    /// The parameters it was created with (`rtt_base` included).
    pub params: RealmParams,
    /// IPA width.
    pub ipa_bits: u32,
    /// Its RTTs below the starting level.
    pub rtts: Rtts,
    /// Its state.
    pub life: RealmLife,
    /// An NS page for structures passed by address (params).
    pub params_page: u64,
    /// An NS page for SRO address lists.
    pub list_page: u64,
}

impl Realm {
    /// Creates a realm from `params` (its `s2sz` decides the starting level; `rtt_base`,
    /// `rtt_level_start` and `rtt_num_start` are filled in here): delegates the RD and the
    /// starting tables from `pool` and calls `REALM_CREATE`.
    pub fn create<C: Conduit, M: HostMem>(
        rmi: &mut Rmi<'_, C>,
        mem: &mut M,
        pool: &mut GranulePool,
        mut params: RealmParams,
    ) -> VmResult<Self> {
        let ipa_bits = u32::try_from(params.s2sz).map_err(|_| VmError::Config("s2sz"))?;
        if !(32..=48).contains(&ipa_bits) {
            return Err(VmError::Config("the IPA width must be 32 to 48 bits"));
        }
        let (level, num) = start_level(ipa_bits);
        let params_page = pool.alloc(1, G, "the realm's parameter page")?;
        let list_page = match pool.alloc(1, G, "the realm's address-list page") {
            Ok(p) => p,
            Err(e) => {
                pool.free(params_page, 1)?;
                return Err(e);
            }
        };
        let free_pages = |pool: &mut GranulePool| -> VmResult<()> {
            pool.free(params_page, 1)?;
            pool.free(list_page, 1)
        };
        let rd = match pool.alloc_delegated(rmi, 1, G, "the RD") {
            Ok(rd) => rd,
            Err(e) => {
                free_pages(pool)?;
                return Err(e);
            }
        };
        let root = match pool.alloc_delegated(
            rmi,
            u64::from(num),
            u64::from(num) * G,
            "the starting RTTs",
        ) {
            Ok(root) => root,
            Err(e) => {
                pool.free_delegated(rmi, rd, 1)?;
                free_pages(pool)?;
                return Err(e);
            }
        };
        params.rtt_base = root;
        params.rtt_level_start = level;
        params.rtt_num_start = num;
        if let Err(e) = rmi.realm_create(mem, rd, params_page, &params) {
            pool.free_delegated(rmi, root, u64::from(num))?;
            pool.free_delegated(rmi, rd, 1)?;
            free_pages(pool)?;
            return Err(VmError::Rmi {
                doing: "creating the realm",
                err: e,
            });
        }
        Ok(Self {
            rd,
            root: (root, num),
            params,
            ipa_bits,
            rtts: Rtts::new(level),
            life: RealmLife::New,
            params_page,
            list_page,
        })
    }

    /// The unprotected-alias bit.
    pub fn shared_bit(&self) -> u64 {
        1 << (self.ipa_bits - 1)
    }

    /// `REALM_ACTIVATE`.
    pub fn activate<C: Conduit>(&mut self, rmi: &mut Rmi<'_, C>) -> VmResult<()> {
        rmi.realm_activate(self.rd)
            .map_err(VmError::rmi("activating the realm"))?;
        self.life = RealmLife::Active;
        Ok(())
    }

    /// `REALM_TERMINATE` (also of a realm never activated, so that it can be destroyed).
    pub fn terminate<C: Conduit>(&mut self, rmi: &mut Rmi<'_, C>) -> VmResult<()> {
        if matches!(self.life, RealmLife::New | RealmLife::Active) {
            rmi.realm_terminate(self.rd)
                .map_err(VmError::rmi("terminating the realm"))?;
        }
        if self.life != RealmLife::Destroyed {
            self.life = RealmLife::Terminated;
        }
        Ok(())
    }

    /// Destroys the RTTs and the realm and returns the RD, the starting tables and the NS
    /// pages to `pool`. Data and RECs must be gone already. Returns the RTTs destroyed.
    pub fn destroy<C: Conduit>(
        &mut self,
        rmi: &mut Rmi<'_, C>,
        pool: &mut GranulePool,
    ) -> VmResult<u64> {
        self.terminate(rmi)?;
        let n = self.rtts.destroy_all(rmi, pool, self.rd)?;
        rmi.realm_destroy(self.rd)
            .map_err(VmError::rmi("destroying the realm"))?;
        pool.free_delegated(rmi, self.root.0, u64::from(self.root.1))?;
        pool.free_delegated(rmi, self.rd, 1)?;
        pool.free(self.params_page, 1)?;
        pool.free(self.list_page, 1)?;
        self.life = RealmLife::Destroyed;
        Ok(n)
    }
}
