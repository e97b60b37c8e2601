//! Per-world CPU context: the registers EL3 saves and restores when it switches between the
//! Normal and Realm worlds (RMM-EL3 interface 2.0: GPRs, SP_EL0, the EL2 system registers
//! both worlds use, and the pointer authentication keys). EL2 timers, ZCR_EL2, the GIC EL2
//! registers, FP/SIMD and EL1 state belong to the RMM, which switches them itself.

use crate::entry::{run_lower, ExitKind};
use el3_core::routing::World;
use fw_support::sysreg::CpuId;
use fw_support::{read_sysreg, write_sysreg};

/// SPSR for entering EL2h with all exceptions masked.
pub const SPSR_EL2H_MASKED: u64 = 0x3c9;

/// SCR_EL3 bits.
mod scr {
    pub const NS: u64 = 1 << 0;
    pub const RES1: u64 = (1 << 4) | (1 << 5);
    pub const SIF: u64 = 1 << 9;
    pub const HCE: u64 = 1 << 8;
    pub const RW: u64 = 1 << 10;
    pub const APK: u64 = 1 << 16;
    pub const API: u64 = 1 << 17;
    pub const ENSCXT: u64 = 1 << 25;
    pub const ENTP2: u64 = 1 << 41;
    pub const FGTEN: u64 = 1 << 27;
    pub const ECVEN: u64 = 1 << 28;
    pub const HXEN: u64 = 1 << 38;
    pub const TCR2EN: u64 = 1 << 43;
    pub const SCTLR2EN: u64 = 1 << 44;
    pub const PIEN: u64 = 1 << 45;
    pub const NSE: u64 = 1 << 62;
}

/// The SCR_EL3 value for a world on a CPU with features `id`.
pub fn scr_for(world: World, id: &CpuId) -> u64 {
    let mut v = scr::RES1 | scr::SIF | scr::HCE | scr::RW | scr::NS;
    if world == World::Realm {
        v |= scr::NSE;
    }
    if id.pauth() {
        v |= scr::APK | scr::API;
    }
    if id.csv2_2() {
        v |= scr::ENSCXT;
    }
    if id.sme() {
        v |= scr::ENTP2;
    }
    if id.fgt() {
        v |= scr::FGTEN;
    }
    if id.ecv2() {
        v |= scr::ECVEN;
    }
    if id.hcx() {
        v |= scr::HXEN;
    }
    if id.tcr2() {
        v |= scr::TCR2EN;
    }
    if id.sctlr2() {
        v |= scr::SCTLR2EN;
    }
    if id.s1pie() {
        v |= scr::PIEN;
    }
    v
}

/// EL2 system registers saved per world.
#[derive(Clone, Copy, Debug, Default)]
struct El2Regs {
    sctlr: u64,
    actlr: u64,
    hcr: u64,
    mdcr: u64,
    cptr: u64,
    hstr: u64,
    hacr: u64,
    tcr: u64,
    ttbr0: u64,
    ttbr1: u64,
    mair: u64,
    amair: u64,
    vbar: u64,
    vtcr: u64,
    vttbr: u64,
    esr: u64,
    far: u64,
    hpfar: u64,
    elr: u64,
    spsr: u64,
    afsr0: u64,
    afsr1: u64,
    tpidr: u64,
    contextidr: u64,
    cnthctl: u64,
    cntvoff: u64,
    vpidr: u64,
    vmpidr: u64,
    sp: u64,
    hcrx: u64,
    hfgrtr: u64,
    hfgwtr: u64,
    hfgitr: u64,
    hdfgrtr: u64,
    hdfgwtr: u64,
    hafgrtr: u64,
    tcr2: u64,
    sctlr2: u64,
    pir: u64,
    pire0: u64,
    s2pir: u64,
    cntpoff: u64,
    apkeys: [u64; 10],
}

macro_rules! save {
    ($r:ident . $f:ident = $reg:tt) => {
        $r.$f = read_sysreg!($reg)
    };
}

macro_rules! restore {
    ($r:ident . $f:ident => $reg:tt) => {
        // SAFETY: restores the value this world had when EL3 last switched away from it; EL2
        // registers do not affect EL3's own execution.
        unsafe { write_sysreg!($reg, $r.$f) }
    };
}

impl El2Regs {
    fn save(&mut self, id: &CpuId) {
        save!(self.sctlr = sctlr_el2);
        save!(self.actlr = actlr_el2);
        save!(self.hcr = hcr_el2);
        save!(self.mdcr = mdcr_el2);
        save!(self.cptr = cptr_el2);
        save!(self.hstr = hstr_el2);
        save!(self.hacr = hacr_el2);
        save!(self.tcr = tcr_el2);
        save!(self.ttbr0 = ttbr0_el2);
        save!(self.mair = mair_el2);
        save!(self.amair = amair_el2);
        save!(self.vbar = vbar_el2);
        save!(self.vtcr = vtcr_el2);
        save!(self.vttbr = vttbr_el2);
        save!(self.esr = esr_el2);
        save!(self.far = far_el2);
        save!(self.hpfar = hpfar_el2);
        save!(self.elr = elr_el2);
        save!(self.spsr = spsr_el2);
        save!(self.afsr0 = afsr0_el2);
        save!(self.afsr1 = afsr1_el2);
        save!(self.tpidr = tpidr_el2);
        save!(self.cnthctl = cnthctl_el2);
        save!(self.cntvoff = cntvoff_el2);
        save!(self.vpidr = vpidr_el2);
        save!(self.vmpidr = vmpidr_el2);
        save!(self.sp = sp_el2);
        if id.vhe() {
            save!(self.ttbr1 = s3_4_c2_c0_1);
            save!(self.contextidr = s3_4_c13_c0_1);
        }
        if id.hcx() {
            save!(self.hcrx = s3_4_c1_c2_2);
        }
        if id.fgt() {
            save!(self.hfgrtr = s3_4_c1_c1_4);
            save!(self.hfgwtr = s3_4_c1_c1_5);
            save!(self.hfgitr = s3_4_c1_c1_6);
            save!(self.hdfgrtr = s3_4_c3_c1_4);
            save!(self.hdfgwtr = s3_4_c3_c1_5);
            if id.amu() {
                save!(self.hafgrtr = s3_4_c3_c1_6);
            }
        }
        if id.tcr2() {
            save!(self.tcr2 = s3_4_c2_c0_3);
        }
        if id.sctlr2() {
            save!(self.sctlr2 = s3_4_c1_c0_3);
        }
        if id.s1pie() {
            save!(self.pir = s3_4_c10_c2_3);
            save!(self.pire0 = s3_4_c10_c2_2);
        }
        if id.s2pie() {
            save!(self.s2pir = s3_4_c10_c2_5);
        }
        if id.ecv2() {
            save!(self.cntpoff = s3_4_c14_c0_6);
        }
        if id.pauth() {
            self.apkeys = [
                read_sysreg!(s3_0_c2_c1_0),
                read_sysreg!(s3_0_c2_c1_1),
                read_sysreg!(s3_0_c2_c1_2),
                read_sysreg!(s3_0_c2_c1_3),
                read_sysreg!(s3_0_c2_c2_0),
                read_sysreg!(s3_0_c2_c2_1),
                read_sysreg!(s3_0_c2_c2_2),
                read_sysreg!(s3_0_c2_c2_3),
                read_sysreg!(s3_0_c2_c3_0),
                read_sysreg!(s3_0_c2_c3_1),
            ];
        }
    }

    fn restore(&self, id: &CpuId) {
        restore!(self.sctlr => sctlr_el2);
        restore!(self.actlr => actlr_el2);
        restore!(self.hcr => hcr_el2);
        restore!(self.mdcr => mdcr_el2);
        restore!(self.cptr => cptr_el2);
        restore!(self.hstr => hstr_el2);
        restore!(self.hacr => hacr_el2);
        restore!(self.tcr => tcr_el2);
        restore!(self.ttbr0 => ttbr0_el2);
        restore!(self.mair => mair_el2);
        restore!(self.amair => amair_el2);
        restore!(self.vbar => vbar_el2);
        restore!(self.vtcr => vtcr_el2);
        restore!(self.vttbr => vttbr_el2);
        restore!(self.esr => esr_el2);
        restore!(self.far => far_el2);
        restore!(self.hpfar => hpfar_el2);
        restore!(self.elr => elr_el2);
        restore!(self.spsr => spsr_el2);
        restore!(self.afsr0 => afsr0_el2);
        restore!(self.afsr1 => afsr1_el2);
        restore!(self.tpidr => tpidr_el2);
        restore!(self.cnthctl => cnthctl_el2);
        restore!(self.cntvoff => cntvoff_el2);
        restore!(self.vpidr => vpidr_el2);
        restore!(self.vmpidr => vmpidr_el2);
        restore!(self.sp => sp_el2);
        if id.vhe() {
            restore!(self.ttbr1 => s3_4_c2_c0_1);
            restore!(self.contextidr => s3_4_c13_c0_1);
        }
        if id.hcx() {
            restore!(self.hcrx => s3_4_c1_c2_2);
        }
        if id.fgt() {
            restore!(self.hfgrtr => s3_4_c1_c1_4);
            restore!(self.hfgwtr => s3_4_c1_c1_5);
            restore!(self.hfgitr => s3_4_c1_c1_6);
            restore!(self.hdfgrtr => s3_4_c3_c1_4);
            restore!(self.hdfgwtr => s3_4_c3_c1_5);
            if id.amu() {
                restore!(self.hafgrtr => s3_4_c3_c1_6);
            }
        }
        if id.tcr2() {
            restore!(self.tcr2 => s3_4_c2_c0_3);
        }
        if id.sctlr2() {
            restore!(self.sctlr2 => s3_4_c1_c0_3);
        }
        if id.s1pie() {
            restore!(self.pir => s3_4_c10_c2_3);
            restore!(self.pire0 => s3_4_c10_c2_2);
        }
        if id.s2pie() {
            restore!(self.s2pir => s3_4_c10_c2_5);
        }
        if id.ecv2() {
            restore!(self.cntpoff => s3_4_c14_c0_6);
        }
        if id.pauth() {
            let k = &self.apkeys;
            // SAFETY: the keys only affect pointer authentication in the lower ELs, and EL3
            // is built without pointer authentication.
            unsafe {
                write_sysreg!(s3_0_c2_c1_0, k[0]);
                write_sysreg!(s3_0_c2_c1_1, k[1]);
                write_sysreg!(s3_0_c2_c1_2, k[2]);
                write_sysreg!(s3_0_c2_c1_3, k[3]);
                write_sysreg!(s3_0_c2_c2_0, k[4]);
                write_sysreg!(s3_0_c2_c2_1, k[5]);
                write_sysreg!(s3_0_c2_c2_2, k[6]);
                write_sysreg!(s3_0_c2_c2_3, k[7]);
                write_sysreg!(s3_0_c2_c3_0, k[8]);
                write_sysreg!(s3_0_c2_c3_1, k[9]);
            }
        }
    }
}

/// The saved state of one lower world on one CPU.
pub struct WorldCtx {
    /// x0..x30.
    pub x: [u64; 31],
    /// Return address (ELR_EL3).
    pub elr: u64,
    /// Saved PSTATE (SPSR_EL3).
    pub spsr: u64,
    sp_el0: u64,
    scr: u64,
    el2: El2Regs,
}

impl WorldCtx {
    /// A context that starts at `entry` in EL2h with exceptions masked.
    pub fn new(world: World, id: &CpuId, entry: u64) -> Self {
        // The RMM and the host program the rest of EL2 themselves; SCTLR_EL2 starts with the
        // MMU and caches off and its RES1 bits set.
        let el2 = El2Regs {
            sctlr: 0x30C5_0830,
            ..El2Regs::default()
        };
        Self {
            x: [0; 31],
            elr: entry,
            spsr: SPSR_EL2H_MASKED,
            sp_el0: 0,
            scr: scr_for(world, id),
            el2,
        }
    }

    /// The SCR_EL3 value this world runs with.
    pub fn scr(&self) -> u64 {
        self.scr
    }

    /// Restores this world, runs it until it traps to EL3, and saves it again.
    pub fn run(&mut self, id: &CpuId) -> ExitKind {
        self.el2.restore(id);
        // SAFETY: SCR_EL3, ELR_EL3, SPSR_EL3 and SP_EL0 describe this world's context and
        // only take effect at the ERET into it.
        unsafe {
            write_sysreg!(scr_el3, self.scr);
            write_sysreg!(elr_el3, self.elr);
            write_sysreg!(spsr_el3, self.spsr);
            write_sysreg!(sp_el0, self.sp_el0);
        }
        fw_support::isb();
        // SAFETY: the registers above and the restored EL2 state form a valid lower context.
        let kind = unsafe { run_lower(&mut self.x) };
        self.elr = read_sysreg!(elr_el3);
        self.spsr = read_sysreg!(spsr_el3);
        self.sp_el0 = read_sysreg!(sp_el0);
        self.el2.save(id);
        kind
    }

    /// Sets the call results x0..x(n-1); x0..x3 not given become zero, x4 and up are preserved
    /// unless given (SMCCC).
    pub fn ret(&mut self, vals: &[u64]) {
        self.x[..4].fill(0);
        self.x[..vals.len()].copy_from_slice(vals);
    }
}
