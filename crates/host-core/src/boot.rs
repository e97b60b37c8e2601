//! The boot-time RMI sequence a hypervisor runs before it creates realms (KVM's and Xen's
//! order, adapted to TF-RMM main), with deliberate bad calls that show how the RMM rejects
//! them. Each step states what it expects; the sequence counts passes and failures.

use crate::rmi::{Conduit, HostMem, Outcome, Rmi};
use cca_abi::rmi::{
    feat0, feat1, RmiFid, RmiStatus, RmmConfig, GRANULE_SIZE_4K, RMI_VERSION_2_0,
    TRACKING_REGION_1G,
};
use cca_abi::smccc::SMC_UNKNOWN;
use zerocopy::IntoBytes;

/// The memory the sequence may use, all in the host's DRAM.
#[derive(Clone, Copy, Debug)]
pub struct BootPlan {
    /// A Non-secure page for `RmiRmmConfig`.
    pub config_page: u64,
    /// Base of the range to delegate and undelegate (1 GiB aligned for `GPT_L1_CREATE`).
    pub pool_base: u64,
    /// Number of granules in that range.
    pub pool_granules: u64,
    /// A granule-aligned address outside DRAM (MMIO).
    pub untracked_pa: u64,
    /// A granule EL3 keeps in the Realm PAS for the RMM itself (the carve-out).
    pub rmm_carveout_pa: u64,
    /// Whether the host can take a fault on a delegated page and recover (firmware: yes).
    pub probe_delegated: bool,
}

/// Pass/fail counts of a sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Checks that held.
    pub passed: u32,
    /// Checks that failed.
    pub failed: u32,
}

/// Runs checks and keeps the tally.
pub struct Checker<'r, 'o, C: Conduit> {
    /// The RMI client.
    pub rmi: &'r mut Rmi<'o, C>,
    /// The tally.
    pub tally: Tally,
    /// Print only failed checks.
    pub quiet: bool,
}

impl<'r, 'o, C: Conduit> Checker<'r, 'o, C> {
    /// Wraps an RMI client.
    pub fn new(rmi: &'r mut Rmi<'o, C>) -> Self {
        Self {
            rmi,
            tally: Tally::default(),
            quiet: false,
        }
    }

    /// Records a check.
    pub fn check(&mut self, ok: bool, what: core::fmt::Arguments) -> bool {
        if ok {
            self.tally.passed += 1;
            if !self.quiet {
                let _ = writeln!(self.rmi.out(), "  ok: {what}");
            }
        } else {
            self.tally.failed += 1;
            let _ = writeln!(self.rmi.out(), "  FAILED: {what}");
        }
        ok
    }

    /// Calls a command and checks its status.
    pub fn expect(&mut self, fid: RmiFid, args: &[u64], want: RmiStatus) -> Outcome {
        let r = self.rmi.call(fid, args);
        self.check(
            r.status() == Some(want),
            format_args!("{} returns {}", fid.name(), want.name()),
        );
        r
    }

    /// Prints a line.
    pub fn say(&mut self, what: core::fmt::Arguments) {
        let _ = writeln!(self.rmi.out(), "{what}");
    }
}

/// Delegates (or undelegates) `[base, top)` by calling until the RMM reports it reached `top`.
/// Returns the number of calls, or the failing outcome.
pub fn range_loop<C: Conduit>(
    rmi: &mut Rmi<'_, C>,
    fid: RmiFid,
    base: u64,
    top: u64,
) -> Result<u64, Outcome> {
    let verbose = rmi.verbose;
    rmi.verbose = false;
    let mut next = base;
    let mut calls = 0;
    let result = loop {
        if next >= top {
            break Ok(calls);
        }
        let r = rmi.call(fid, &[next, top]);
        calls += 1;
        if r.status() != Some(RmiStatus::Success) || r.regs[1] <= next || r.regs[1] > top {
            break Err(r);
        }
        next = r.regs[1];
    };
    rmi.verbose = verbose;
    result
}

/// Runs the boot-time sequence and returns the tally.
pub fn run<C: Conduit, M: HostMem>(rmi: &mut Rmi<'_, C>, mem: &mut M, plan: &BootPlan) -> Tally {
    let mut c = Checker::new(rmi);
    let g = cca_abi::GRANULE_SIZE;

    c.say(format_args!("-- version negotiation and features"));
    let r = c.expect(RmiFid::VERSION, &[RMI_VERSION_2_0], RmiStatus::Success);
    c.check(
        r.regs[1] == RMI_VERSION_2_0 && r.regs[2] == RMI_VERSION_2_0,
        format_args!("RMM implements RMI 2.0 (lower/higher)"),
    );
    let r = c.expect(
        RmiFid::VERSION,
        &[cca_abi::version(1, 0)],
        RmiStatus::ErrorInput,
    );
    c.check(
        r.regs[2] == RMI_VERSION_2_0,
        format_args!("a 1.0 request is refused and 2.0 offered instead"),
    );
    let f0 = c.expect(RmiFid::FEATURES, &[0], RmiStatus::Success).regs[1];
    let f1 = c.expect(RmiFid::FEATURES, &[1], RmiStatus::Success).regs[1];
    c.say(format_args!(
        "   feature 0: S2SZ {} bits, LPA2 {}, SVE {}, {} breakpoints, {} watchpoints",
        f0 & 0xff,
        f0 & feat0::LPA2 != 0,
        f0 & feat0::SVE_EN != 0,
        ((f0 >> feat0::NUM_BPS_SHIFT) & 0x3f) + 1,
        ((f0 >> feat0::NUM_WPS_SHIFT) & 0x3f) + 1
    ));
    c.say(format_args!(
        "   feature 1: 4K granules {}, SHA-256 {}, SHA-512 {}, max RECs 2^{}",
        f1 & feat1::GRAN_SZ_4K != 0,
        f1 & feat1::HASH_SHA_256 != 0,
        f1 & feat1::HASH_SHA_512 != 0,
        (f1 >> feat1::MAX_RECS_ORDER_SHIFT) & 0xf
    ));
    c.check(
        f1 & feat1::GRAN_SZ_4K != 0 && f1 & feat1::HASH_SHA_256 != 0,
        format_args!("4 KiB granules and SHA-256 are offered"),
    );
    let r = c.expect(RmiFid::FEATURES, &[7], RmiStatus::Success);
    c.check(
        r.regs[1] == 0,
        format_args!("an undefined feature register reads as zero"),
    );

    c.say(format_args!("-- configuration and activation"));
    let pool_top = plan.pool_base + plan.pool_granules * g;
    c.expect(
        RmiFid::GRANULE_RANGE_DELEGATE,
        &[plan.pool_base, plan.pool_base + g],
        RmiStatus::ErrorGlobal,
    );
    c.expect(
        RmiFid::RMM_CONFIG_GET,
        &[plan.config_page],
        RmiStatus::Success,
    );
    let mut cfg = RmmConfig::default();
    mem.read(plan.config_page, cfg.as_mut_bytes());
    c.check(
        cfg.rmi_granule_size == GRANULE_SIZE_4K && cfg.tracking_region_size == TRACKING_REGION_1G,
        format_args!("RMM_CONFIG_GET reports 4 KiB granules and 1 GiB tracking regions"),
    );
    let bad = RmmConfig {
        rmi_granule_size: 1,
        ..cfg
    };
    mem.write(plan.config_page, bad.as_bytes());
    c.expect(
        RmiFid::RMM_CONFIG_SET,
        &[plan.config_page],
        RmiStatus::ErrorInput,
    );
    mem.write(plan.config_page, cfg.as_bytes());
    // A config that is not granule aligned.
    c.expect(
        RmiFid::RMM_CONFIG_SET,
        &[plan.config_page + 8],
        RmiStatus::ErrorInput,
    );
    c.expect(
        RmiFid::RMM_CONFIG_SET,
        &[plan.config_page],
        RmiStatus::Success,
    );
    c.expect(RmiFid::RMM_ACTIVATE, &[], RmiStatus::Success);
    c.expect(RmiFid::RMM_ACTIVATE, &[], RmiStatus::ErrorGlobal);
    c.expect(
        RmiFid::RMM_CONFIG_SET,
        &[plan.config_page],
        RmiStatus::ErrorGlobal,
    );

    c.say(format_args!("-- memory tracking and GPT"));
    let r = c.expect(
        RmiFid::GRANULE_TRACKING_GET,
        &[plan.pool_base, pool_top],
        RmiStatus::Success,
    );
    c.check(
        r.regs[1] == 0 && r.regs[2] == 2 && r.regs[3] == pool_top,
        format_args!("DRAM is conventional memory tracked at granule level (FINE)"),
    );
    let r = c.expect(
        RmiFid::GRANULE_TRACKING_GET,
        &[plan.untracked_pa, plan.untracked_pa + g],
        RmiStatus::Success,
    );
    c.check(r.regs[2] == 1, format_args!("MMIO is not tracked (NONE)"));
    c.expect(
        RmiFid::GRANULE_TRACKING_GET,
        &[plan.pool_base + 1, pool_top],
        RmiStatus::ErrorInput,
    );
    let l1 = plan.pool_base & !((1 << 30) - 1);
    c.expect(RmiFid::GPT_L1_CREATE, &[l1], RmiStatus::ErrorGpt);
    c.expect(RmiFid::GPT_L1_CREATE, &[l1 + g], RmiStatus::ErrorInput);

    c.say(format_args!(
        "-- delegation of {} granules at {:#x}",
        plan.pool_granules, plan.pool_base
    ));
    for i in 0..plan.pool_granules {
        mem.write(
            plan.pool_base + i * g,
            &(0xC0FF_EE00_0000_0000 | i).to_le_bytes(),
        );
    }
    c.expect(
        RmiFid::GRANULE_RANGE_DELEGATE,
        &[plan.pool_base + 8, pool_top],
        RmiStatus::ErrorInput,
    );
    c.expect(
        RmiFid::GRANULE_RANGE_DELEGATE,
        &[plan.pool_base, plan.pool_base],
        RmiStatus::ErrorInput,
    );
    c.expect(
        RmiFid::GRANULE_RANGE_DELEGATE,
        &[plan.untracked_pa, plan.untracked_pa + g],
        RmiStatus::ErrorInput,
    );
    c.expect(
        RmiFid::GRANULE_RANGE_DELEGATE,
        &[plan.rmm_carveout_pa, plan.rmm_carveout_pa + g],
        RmiStatus::ErrorInput,
    );
    match range_loop(
        c.rmi,
        RmiFid::GRANULE_RANGE_DELEGATE,
        plan.pool_base,
        pool_top,
    ) {
        Ok(calls) => {
            c.check(
                true,
                format_args!("delegated {} granules in {calls} calls", plan.pool_granules),
            );
        }
        Err(r) => {
            c.check(
                false,
                format_args!(
                    "delegation loop stopped: x0={:#x} x1={:#x}",
                    r.regs[0], r.regs[1]
                ),
            );
        }
    }
    let r = c.expect(
        RmiFid::GRANULE_RANGE_DELEGATE,
        &[plan.pool_base, pool_top],
        RmiStatus::ErrorInput,
    );
    c.check(
        r.regs[1] == plan.pool_base,
        format_args!("re-delegating reports no progress (x1 = base)"),
    );
    if plan.probe_delegated {
        let v = mem.probe_read(plan.pool_base);
        c.check(
            v.is_none(),
            format_args!("the host cannot read a delegated granule (granule protection fault)"),
        );
    }

    c.say(format_args!("-- undelegation"));
    match range_loop(
        c.rmi,
        RmiFid::GRANULE_RANGE_UNDELEGATE,
        plan.pool_base,
        pool_top,
    ) {
        Ok(calls) => {
            c.check(
                true,
                format_args!(
                    "undelegated {} granules in {calls} calls",
                    plan.pool_granules
                ),
            );
        }
        Err(r) => {
            c.check(
                false,
                format_args!(
                    "undelegation loop stopped: x0={:#x} x1={:#x}",
                    r.regs[0], r.regs[1]
                ),
            );
        }
    }
    c.expect(
        RmiFid::GRANULE_RANGE_UNDELEGATE,
        &[plan.pool_base, pool_top],
        RmiStatus::ErrorInput,
    );
    let mut scrubbed = true;
    for i in 0..plan.pool_granules {
        let mut w = [0u8; 8];
        mem.read(plan.pool_base + i * g, &mut w);
        scrubbed &= w == [0; 8];
    }
    c.check(
        scrubbed,
        format_args!("undelegated granules come back scrubbed (the host's pattern is gone)"),
    );

    c.say(format_args!(
        "-- function identifiers the RMM does not serve"
    ));
    let r = c.rmi.call_raw(0xC400_0151, &[plan.pool_base]);
    c.check(
        r.regs[0] == SMC_UNKNOWN,
        format_args!("RMI 1.0 GRANULE_DELEGATE (0xC4000151) is SMC_UNKNOWN"),
    );
    let r = c.rmi.call_raw(0xC400_01FF, &[]);
    c.check(
        r.regs[0] == SMC_UNKNOWN,
        format_args!("an unassigned RMI function number is SMC_UNKNOWN"),
    );
    let r = c.rmi.call_raw(0xC401_0150, &[RMI_VERSION_2_0]);
    c.check(
        r.status() == Some(RmiStatus::Success),
        format_args!("the SVE hint bit in the FID is ignored"),
    );
    c.tally
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use cca_abi::el3::MemoryBank;
    use rmm_core::sim::SimPlatform;
    use rmm_core::{GranuleTable, Pa, Rmm};

    pub(crate) struct Direct<'a, 'b>(pub(crate) &'a Rmm<'b, &'a SimPlatform>);
    impl Conduit for Direct<'_, '_> {
        fn smc(&mut self, regs: [u64; 8]) -> [u64; 8] {
            self.0.handle_rmi(&regs)
        }
    }

    pub(crate) struct Mem<'a>(pub(crate) &'a SimPlatform);
    impl HostMem for Mem<'_> {
        fn write(&mut self, pa: u64, data: &[u8]) {
            self.0
                .host_write(Pa::new(pa), data)
                .expect("host write to NS memory");
        }
        fn read(&mut self, pa: u64, buf: &mut [u8]) {
            self.0
                .host_read(Pa::new(pa), buf)
                .expect("host read of NS memory");
        }
        fn probe_read(&mut self, pa: u64) -> Option<u64> {
            let mut w = [0u8; 8];
            self.0
                .host_read(Pa::new(pa), &mut w)
                .ok()
                .map(|()| u64::from_le_bytes(w))
        }
    }

    #[test]
    fn boot_sequence_passes_against_the_rmm_core() {
        let banks = [MemoryBank {
            base: 0x8000_0000,
            size: 0x0100_0000,
        }];
        let sim = SimPlatform::new(&banks);
        sim.set_pas(Pa::new(0x8080_0000), cca_abi_pas_realm());
        let storage = rmm_core::sim::granule_storage(&banks);
        let sro = rmm_core::SroStorage::new();
        let rmm = Rmm::new(&sim, GranuleTable::new(&banks, &storage).unwrap(), &sro).unwrap();
        let mut out = String::new();
        let mut rmi = Rmi::new(Direct(&rmm), &mut out);
        let plan = BootPlan {
            config_page: 0x8000_0000,
            pool_base: 0x8000_1000,
            pool_granules: 700,
            untracked_pa: 0x0900_0000,
            rmm_carveout_pa: 0x8080_0000,
            probe_delegated: true,
        };
        let tally = run(&mut rmi, &mut Mem(&sim), &plan);
        let calls = rmi.calls;
        println!("{out}");
        assert_eq!(tally.failed, 0, "{out}");
        assert!(tally.passed > 30);
        assert!(calls >= 30);
    }

    fn cca_abi_pas_realm() -> rmm_core::sim::Pas {
        rmm_core::sim::Pas::Realm
    }
}
