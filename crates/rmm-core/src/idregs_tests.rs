//! Tests of the realm's ID register view and the EL2 traps that go with it
//! ([`crate::idregs`]). The REC_ENTER path (trapped reads answered from the view) is tested
//! in `run_tests.rs`.

extern crate std;

use std::vec::Vec;

use crate::esr;
use crate::idregs::{cptr, hcr, hcrx, mdcr, realm_view, IdReg, IdRegs, RealmCpu, RealmTraps};
use crate::sim::{sim_id_regs, SIM_CPU, SIM_MIDR};

/// How a field of the realm's view relates to the CPU's.
#[derive(Clone, Copy, Debug)]
enum E {
    /// As the CPU has it.
    Cpu,
    /// Always 0.
    Zero,
    /// The CPU's value, at most this.
    Cap(u64),
    /// As the CPU when the realm has SVE, else 0.
    Sve,
    /// As the CPU when the realm has a PMU, else 0.
    Pmu,
    /// As the CPU when the CPU has FEAT_HCX (`ID_AA64MMFR1.HCX`), else 0.
    Hcx,
    /// A debug count, computed from the realm's parameters (tested on its own).
    Count,
}
use E::*;

/// One field of the policy: register, name, lowest bit, width, rule. Every field the
/// architecture defines in the registers the view shows is listed; the bits not listed
/// (RES0 today) must read 0.
type Field = (IdReg, &'static str, u32, u32, E);

#[rustfmt::skip]
const POLICY: &[Field] = &[
    (IdReg::AA64PFR0, "EL0", 0, 4, Cpu), (IdReg::AA64PFR0, "EL1", 4, 4, Cpu),
    (IdReg::AA64PFR0, "EL2", 8, 4, Cpu), (IdReg::AA64PFR0, "EL3", 12, 4, Cpu),
    (IdReg::AA64PFR0, "FP", 16, 4, Cpu), (IdReg::AA64PFR0, "AdvSIMD", 20, 4, Cpu),
    (IdReg::AA64PFR0, "GIC", 24, 4, Cpu), (IdReg::AA64PFR0, "RAS", 28, 4, Cpu),
    (IdReg::AA64PFR0, "SVE", 32, 4, Sve), (IdReg::AA64PFR0, "SEL2", 36, 4, Cpu),
    (IdReg::AA64PFR0, "MPAM", 40, 4, Zero), (IdReg::AA64PFR0, "AMU", 44, 4, Zero),
    (IdReg::AA64PFR0, "DIT", 48, 4, Cpu), (IdReg::AA64PFR0, "RME", 52, 4, Cpu),
    (IdReg::AA64PFR0, "CSV2", 56, 4, Cap(1)), (IdReg::AA64PFR0, "CSV3", 60, 4, Cpu),
    (IdReg::AA64PFR1, "BT", 0, 4, Cpu), (IdReg::AA64PFR1, "SSBS", 4, 4, Cpu),
    (IdReg::AA64PFR1, "MTE", 8, 4, Zero), (IdReg::AA64PFR1, "RAS_frac", 12, 4, Cpu),
    (IdReg::AA64PFR1, "MPAM_frac", 16, 4, Zero), (IdReg::AA64PFR1, "SME", 24, 4, Zero),
    (IdReg::AA64PFR1, "RNDR_trap", 28, 4, Cpu), (IdReg::AA64PFR1, "CSV2_frac", 32, 4, Cap(1)),
    (IdReg::AA64PFR1, "NMI", 36, 4, Zero), (IdReg::AA64PFR1, "MTE_frac", 40, 4, Zero),
    (IdReg::AA64PFR1, "GCS", 44, 4, Zero), (IdReg::AA64PFR1, "THE", 48, 4, Zero),
    (IdReg::AA64PFR1, "MTEX", 52, 4, Zero), (IdReg::AA64PFR1, "DF2", 56, 4, Zero),
    (IdReg::AA64PFR1, "PFAR", 60, 4, Zero),
    (IdReg::AA64PFR2, "MTEPERM", 0, 4, Zero), (IdReg::AA64PFR2, "MTESTOREONLY", 4, 4, Zero),
    (IdReg::AA64PFR2, "MTEFAR", 8, 4, Zero), (IdReg::AA64PFR2, "UINJ", 16, 4, Zero),
    (IdReg::AA64PFR2, "FPMR", 32, 4, Zero),
    (IdReg::AA64ZFR0, "(all)", 0, 64, Sve),
    (IdReg::AA64SMFR0, "(all)", 0, 64, Zero),
    (IdReg::AA64FPFR0, "(all)", 0, 64, Zero),
    (IdReg::AA64DFR0, "DebugVer", 0, 4, Cpu), (IdReg::AA64DFR0, "TraceVer", 4, 4, Zero),
    (IdReg::AA64DFR0, "PMUVer", 8, 4, Pmu), (IdReg::AA64DFR0, "BRPs", 12, 4, Count),
    (IdReg::AA64DFR0, "PMSS", 16, 4, Pmu), (IdReg::AA64DFR0, "WRPs", 20, 4, Count),
    (IdReg::AA64DFR0, "SEBEP", 24, 4, Pmu), (IdReg::AA64DFR0, "CTX_CMPs", 28, 4, Count),
    (IdReg::AA64DFR0, "PMSVer", 32, 4, Zero), (IdReg::AA64DFR0, "DoubleLock", 36, 4, Cpu),
    (IdReg::AA64DFR0, "TraceFilt", 40, 4, Zero), (IdReg::AA64DFR0, "TraceBuffer", 44, 4, Zero),
    (IdReg::AA64DFR0, "MTPMU", 48, 4, Pmu), (IdReg::AA64DFR0, "BRBE", 52, 4, Zero),
    (IdReg::AA64DFR0, "ExtTrcBuff", 56, 4, Zero), (IdReg::AA64DFR0, "HPMN0", 60, 4, Pmu),
    (IdReg::AA64DFR1, "SYSPMUID", 0, 8, Zero), (IdReg::AA64DFR1, "BRPs", 8, 8, Count),
    (IdReg::AA64DFR1, "WRPs", 16, 8, Count), (IdReg::AA64DFR1, "CTX_CMPs", 24, 8, Count),
    (IdReg::AA64DFR1, "SPMU", 32, 4, Zero), (IdReg::AA64DFR1, "PMICNTR", 36, 4, Pmu),
    (IdReg::AA64DFR1, "ABLE", 40, 4, Zero), (IdReg::AA64DFR1, "ITE", 44, 4, Zero),
    (IdReg::AA64DFR1, "EBEP", 48, 4, Pmu), (IdReg::AA64DFR1, "DPFZS", 52, 4, Pmu),
    (IdReg::AA64DFR1, "ABL_CMPs", 56, 8, Zero),
    (IdReg::AA64DFR2, "(all)", 0, 64, Zero),
    (IdReg::AA64AFR0, "(all)", 0, 64, Zero),
    (IdReg::AA64AFR1, "(all)", 0, 64, Zero),
    (IdReg::AA64ISAR0, "AES", 4, 4, Cpu), (IdReg::AA64ISAR0, "SHA1", 8, 4, Cpu),
    (IdReg::AA64ISAR0, "SHA2", 12, 4, Cpu), (IdReg::AA64ISAR0, "CRC32", 16, 4, Cpu),
    (IdReg::AA64ISAR0, "ATOMIC", 20, 4, Cpu), (IdReg::AA64ISAR0, "TME", 24, 4, Zero),
    (IdReg::AA64ISAR0, "RDM", 28, 4, Cpu), (IdReg::AA64ISAR0, "SHA3", 32, 4, Cpu),
    (IdReg::AA64ISAR0, "SM3", 36, 4, Cpu), (IdReg::AA64ISAR0, "SM4", 40, 4, Cpu),
    (IdReg::AA64ISAR0, "DP", 44, 4, Cpu), (IdReg::AA64ISAR0, "FHM", 48, 4, Cpu),
    (IdReg::AA64ISAR0, "TS", 52, 4, Cpu), (IdReg::AA64ISAR0, "TLB", 56, 4, Cpu),
    (IdReg::AA64ISAR0, "RNDR", 60, 4, Cpu),
    (IdReg::AA64ISAR1, "DPB", 0, 4, Cpu), (IdReg::AA64ISAR1, "APA", 4, 4, Cpu),
    (IdReg::AA64ISAR1, "API", 8, 4, Cpu), (IdReg::AA64ISAR1, "JSCVT", 12, 4, Cpu),
    (IdReg::AA64ISAR1, "FCMA", 16, 4, Cpu), (IdReg::AA64ISAR1, "LRCPC", 20, 4, Cpu),
    (IdReg::AA64ISAR1, "GPA", 24, 4, Cpu), (IdReg::AA64ISAR1, "GPI", 28, 4, Cpu),
    (IdReg::AA64ISAR1, "FRINTTS", 32, 4, Cpu), (IdReg::AA64ISAR1, "SB", 36, 4, Cpu),
    (IdReg::AA64ISAR1, "SPECRES", 40, 4, Cpu), (IdReg::AA64ISAR1, "BF16", 44, 4, Cpu),
    (IdReg::AA64ISAR1, "DGH", 48, 4, Cpu), (IdReg::AA64ISAR1, "I8MM", 52, 4, Cpu),
    (IdReg::AA64ISAR1, "XS", 56, 4, Cpu), (IdReg::AA64ISAR1, "LS64", 60, 4, Zero),
    (IdReg::AA64ISAR2, "WFxT", 0, 4, Cpu), (IdReg::AA64ISAR2, "RPRES", 4, 4, Cpu),
    (IdReg::AA64ISAR2, "GPA3", 8, 4, Cpu), (IdReg::AA64ISAR2, "APA3", 12, 4, Cpu),
    (IdReg::AA64ISAR2, "MOPS", 16, 4, Hcx), (IdReg::AA64ISAR2, "BC", 20, 4, Cpu),
    (IdReg::AA64ISAR2, "PAC_frac", 24, 4, Cpu), (IdReg::AA64ISAR2, "CLRBHB", 28, 4, Cpu),
    (IdReg::AA64ISAR2, "SYSREG_128", 32, 4, Zero),
    (IdReg::AA64ISAR2, "SYSINSTR_128", 36, 4, Zero),
    (IdReg::AA64ISAR2, "PRFMSLC", 40, 4, Cpu), (IdReg::AA64ISAR2, "PCDPHINT", 44, 4, Cpu),
    (IdReg::AA64ISAR2, "RPRFM", 48, 4, Cpu), (IdReg::AA64ISAR2, "CSSC", 52, 4, Cpu),
    (IdReg::AA64ISAR2, "LUT", 56, 4, Cpu), (IdReg::AA64ISAR2, "ATS1A", 60, 4, Cpu),
    (IdReg::AA64ISAR3, "CPA", 0, 4, Zero), (IdReg::AA64ISAR3, "FAMINMAX", 4, 4, Cpu),
    (IdReg::AA64ISAR3, "TLBIW", 8, 4, Cpu), (IdReg::AA64ISAR3, "PACM", 12, 4, Cpu),
    (IdReg::AA64ISAR3, "LSFE", 16, 4, Cpu), (IdReg::AA64ISAR3, "OCCMO", 20, 4, Cpu),
    (IdReg::AA64ISAR3, "LSUI", 24, 4, Cpu), (IdReg::AA64ISAR3, "FPRCVT", 28, 4, Cpu),
    (IdReg::AA64MMFR0, "PARange", 0, 4, Cpu), (IdReg::AA64MMFR0, "ASIDBits", 4, 4, Cpu),
    (IdReg::AA64MMFR0, "BigEnd", 8, 4, Cpu), (IdReg::AA64MMFR0, "SNSMem", 12, 4, Cpu),
    (IdReg::AA64MMFR0, "BigEndEL0", 16, 4, Cpu), (IdReg::AA64MMFR0, "TGran16", 20, 4, Cpu),
    (IdReg::AA64MMFR0, "TGran64", 24, 4, Cpu), (IdReg::AA64MMFR0, "TGran4", 28, 4, Cpu),
    (IdReg::AA64MMFR0, "TGran16_2", 32, 4, Cpu), (IdReg::AA64MMFR0, "TGran64_2", 36, 4, Cpu),
    (IdReg::AA64MMFR0, "TGran4_2", 40, 4, Cpu), (IdReg::AA64MMFR0, "ExS", 44, 4, Cpu),
    (IdReg::AA64MMFR0, "FGT", 56, 4, Cpu), (IdReg::AA64MMFR0, "ECV", 60, 4, Cpu),
    (IdReg::AA64MMFR1, "HAFDBS", 0, 4, Cap(2)), (IdReg::AA64MMFR1, "VMIDBits", 4, 4, Cpu),
    (IdReg::AA64MMFR1, "VH", 8, 4, Cpu), (IdReg::AA64MMFR1, "HPDS", 12, 4, Cpu),
    (IdReg::AA64MMFR1, "LO", 16, 4, Zero), (IdReg::AA64MMFR1, "PAN", 20, 4, Cpu),
    (IdReg::AA64MMFR1, "SpecSEI", 24, 4, Cpu), (IdReg::AA64MMFR1, "XNX", 28, 4, Cpu),
    (IdReg::AA64MMFR1, "TWED", 32, 4, Cpu), (IdReg::AA64MMFR1, "ETS", 36, 4, Cpu),
    (IdReg::AA64MMFR1, "HCX", 40, 4, Cpu), (IdReg::AA64MMFR1, "AFP", 44, 4, Cpu),
    (IdReg::AA64MMFR1, "nTLBPA", 48, 4, Cpu), (IdReg::AA64MMFR1, "TIDCP1", 52, 4, Cpu),
    (IdReg::AA64MMFR1, "CMOW", 56, 4, Cpu), (IdReg::AA64MMFR1, "ECBHB", 60, 4, Cpu),
    (IdReg::AA64MMFR2, "CnP", 0, 4, Cpu), (IdReg::AA64MMFR2, "UAO", 4, 4, Cpu),
    (IdReg::AA64MMFR2, "LSM", 8, 4, Cpu), (IdReg::AA64MMFR2, "IESB", 12, 4, Cpu),
    (IdReg::AA64MMFR2, "VARange", 16, 4, Cpu), (IdReg::AA64MMFR2, "CCIDX", 20, 4, Cpu),
    (IdReg::AA64MMFR2, "NV", 24, 4, Cpu), (IdReg::AA64MMFR2, "ST", 28, 4, Cpu),
    (IdReg::AA64MMFR2, "AT", 32, 4, Cpu), (IdReg::AA64MMFR2, "IDS", 36, 4, Cpu),
    (IdReg::AA64MMFR2, "FWB", 40, 4, Cpu), (IdReg::AA64MMFR2, "TTL", 48, 4, Cpu),
    (IdReg::AA64MMFR2, "BBM", 52, 4, Cpu), (IdReg::AA64MMFR2, "EVT", 56, 4, Cpu),
    (IdReg::AA64MMFR2, "E0PD", 60, 4, Cpu),
    (IdReg::AA64MMFR3, "TCRX", 0, 4, Zero), (IdReg::AA64MMFR3, "SCTLRX", 4, 4, Zero),
    (IdReg::AA64MMFR3, "S1PIE", 8, 4, Zero), (IdReg::AA64MMFR3, "S2PIE", 12, 4, Zero),
    (IdReg::AA64MMFR3, "S1POE", 16, 4, Zero), (IdReg::AA64MMFR3, "S2POE", 20, 4, Zero),
    (IdReg::AA64MMFR3, "AIE", 24, 4, Zero), (IdReg::AA64MMFR3, "MEC", 28, 4, Cpu),
    (IdReg::AA64MMFR3, "D128", 32, 4, Zero), (IdReg::AA64MMFR3, "D128_2", 36, 4, Zero),
    (IdReg::AA64MMFR3, "SNERR", 40, 4, Zero), (IdReg::AA64MMFR3, "ANERR", 44, 4, Zero),
    (IdReg::AA64MMFR3, "SDERR", 52, 4, Zero), (IdReg::AA64MMFR3, "ADERR", 56, 4, Zero),
    (IdReg::AA64MMFR3, "Spec_FPACC", 60, 4, Cpu),
    (IdReg::AA64MMFR4, "EIESB", 4, 4, Cpu), (IdReg::AA64MMFR4, "ASID2", 8, 4, Zero),
    (IdReg::AA64MMFR4, "HACDBS", 12, 4, Cpu), (IdReg::AA64MMFR4, "FGWTE3", 16, 4, Cpu),
    (IdReg::AA64MMFR4, "NV_frac", 20, 4, Cpu), (IdReg::AA64MMFR4, "E2H0", 24, 4, Cpu),
    (IdReg::AA64MMFR4, "RMEGDI", 28, 4, Cpu), (IdReg::AA64MMFR4, "E3DSE", 36, 4, Cpu),
];

/// The AArch32 registers' fields (shown only when EL0 can use AArch32).
#[rustfmt::skip]
const POLICY32: &[Field] = &[
    (IdReg::ID_PFR0, "State0-3", 0, 16, Cpu), (IdReg::ID_PFR0, "CSV2", 16, 4, Cap(1)),
    (IdReg::ID_PFR0, "AMU", 20, 4, Zero), (IdReg::ID_PFR0, "DIT", 24, 4, Cpu),
    (IdReg::ID_PFR0, "RAS", 28, 4, Cpu),
    (IdReg::ID_PFR1, "(all)", 0, 32, Cpu),
    (IdReg::ID_DFR0, "CopDbg", 0, 4, Cpu), (IdReg::ID_DFR0, "CopSDbg", 4, 4, Cpu),
    (IdReg::ID_DFR0, "MMapDbg", 8, 4, Cpu), (IdReg::ID_DFR0, "CopTrc", 12, 4, Zero),
    (IdReg::ID_DFR0, "MMapTrc", 16, 4, Zero), (IdReg::ID_DFR0, "MProfDbg", 20, 4, Cpu),
    (IdReg::ID_DFR0, "PerfMon", 24, 4, Pmu), (IdReg::ID_DFR0, "TraceFilt", 28, 4, Zero),
    (IdReg::ID_AFR0, "(all)", 0, 32, Zero),
    (IdReg::ID_MMFR0, "(all)", 0, 32, Cpu), (IdReg::ID_MMFR1, "(all)", 0, 32, Cpu),
    (IdReg::ID_MMFR2, "(all)", 0, 32, Cpu), (IdReg::ID_MMFR3, "(all)", 0, 32, Cpu),
    (IdReg::ID_ISAR0, "(all)", 0, 32, Cpu), (IdReg::ID_ISAR1, "(all)", 0, 32, Cpu),
    (IdReg::ID_ISAR2, "(all)", 0, 32, Cpu), (IdReg::ID_ISAR3, "(all)", 0, 32, Cpu),
    (IdReg::ID_ISAR4, "(all)", 0, 32, Cpu), (IdReg::ID_ISAR5, "(all)", 0, 32, Cpu),
    (IdReg::ID_MMFR4, "(all)", 0, 32, Cpu), (IdReg::ID_ISAR6, "(all)", 0, 32, Cpu),
    (IdReg::MVFR0, "(all)", 0, 32, Cpu), (IdReg::MVFR1, "(all)", 0, 32, Cpu),
    (IdReg::MVFR2, "(all)", 0, 32, Cpu), (IdReg::ID_PFR2, "(all)", 0, 32, Cpu),
    (IdReg::ID_DFR1, "MTPMU", 0, 4, Pmu), (IdReg::ID_DFR1, "HPMN0", 4, 4, Pmu),
    (IdReg::ID_MMFR5, "(all)", 0, 32, Cpu),
];

const fn mask(shift: u32, width: u32) -> u64 {
    if width == 64 {
        u64::MAX
    } else {
        ((1u64 << width) - 1) << shift
    }
}

fn fld(v: u64, shift: u32, width: u32) -> u64 {
    (v & mask(shift, width)) >> shift
}

const NO_SVE_NO_PMU: RealmCpu = RealmCpu {
    sve: false,
    pmu: false,
    num_bps: 1,
    num_wps: 1,
};

fn configs() -> [RealmCpu; 4] {
    let c = |sve, pmu| RealmCpu {
        sve,
        pmu,
        ..NO_SVE_NO_PMU
    };
    [
        c(false, false),
        c(true, false),
        c(false, true),
        c(true, true),
    ]
}

fn view(hw: &IdRegs, realm: &RealmCpu, reg: IdReg) -> u64 {
    realm_view(hw, realm, reg.crm, reg.op2, 0x8000_0000)
}

/// The value the policy tables give for `reg` (Count fields excluded).
fn expected(hw: &IdRegs, realm: &RealmCpu, reg: IdReg, table: &[Field]) -> u64 {
    let hcx = fld(hw.get(IdReg::AA64MMFR1), 40, 4) != 0;
    let mut v = 0;
    for &(r, _, shift, width, e) in table.iter().filter(|f| f.0 == reg) {
        let cpu = fld(hw.get(r), shift, width);
        let f = match e {
            Cpu => cpu,
            Zero | Count => 0,
            Cap(max) => cpu.min(max),
            Sve => cpu * u64::from(realm.sve),
            Pmu => cpu * u64::from(realm.pmu),
            Hcx => cpu * u64::from(hcx),
        };
        v |= f << shift;
    }
    v
}

/// The mask of the Count fields of `reg`.
fn count_mask(reg: IdReg) -> u64 {
    POLICY
        .iter()
        .filter(|f| f.0 == reg && matches!(f.4, Count))
        .fold(0, |m, f| m | mask(f.2, f.3))
}

/// Deterministic pseudo-random register values (xorshift64*).
fn random_regs(seed: u64) -> impl Iterator<Item = IdRegs> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    (0..300).map(move |_| {
        let mut ids = IdRegs::ZERO;
        for crm in 1..=7 {
            for op2 in 0..=7 {
                ids.set(IdReg::new(crm, op2), next());
            }
        }
        ids.midr = next();
        ids.revidr = next();
        ids
    })
}

/// CPUs to check the tables against: every field 0, 1, 0xF, the simulator's, random ones.
fn cpus() -> Vec<IdRegs> {
    let fill = |v: u64| {
        let mut ids = IdRegs::ZERO;
        for crm in 1..=7 {
            for op2 in 0..=7 {
                ids.set(IdReg::new(crm, op2), v);
            }
        }
        ids
    };
    let mut v = std::vec![
        IdRegs::ZERO,
        fill(0x1111_1111_1111_1111),
        fill(u64::MAX),
        sim_id_regs(&SIM_CPU),
    ];
    v.extend(random_regs(0x1D5E_ED00));
    v
}

#[test]
fn allocated_registers_have_their_own_slots_and_encodings() {
    let mut slots: Vec<usize> = IdReg::ALLOCATED.iter().map(|r| r.slot().unwrap()).collect();
    assert_eq!(slots.len(), 42);
    slots.sort_unstable();
    slots.dedup();
    assert_eq!(slots.len(), 42, "two registers share a slot");
    assert_eq!(IdReg::AA64PFR0.encoding(), esr::sysreg(3, 0, 0, 4, 0));
    assert_eq!(IdReg::AA64MMFR4.encoding(), esr::sysreg(3, 0, 0, 7, 4));
    assert_eq!(IdReg::ID_DFR1.slot(), Some(2 * 8 + 5));
    assert_eq!(IdReg::new(0, 0).slot(), None);
    assert_eq!(IdReg::new(8, 0).slot(), None);
    assert_eq!(IdReg::new(7, 8).slot(), None);
    assert_eq!(IdReg::new(7, 7).slot(), Some(55));
    // Every register the tables describe is allocated, and every allocated one described.
    for r in IdReg::ALLOCATED {
        assert!(
            POLICY.iter().chain(POLICY32).any(|f| f.0 == *r),
            "{r:?} has no policy"
        );
    }
}

#[test]
fn id_regs_get_set_and_with_field() {
    let mut ids = IdRegs::default();
    assert_eq!(ids, IdRegs::ZERO);
    ids.set(IdReg::AA64ISAR1, 7);
    assert_eq!(ids.get(IdReg::AA64ISAR1), 7);
    // Outside CRm 1..=7 nothing is stored and everything reads 0.
    ids.set(IdReg::new(0, 0), 9);
    ids.set(IdReg::new(9, 1), 9);
    assert_eq!(ids.get(IdReg::new(0, 0)), 0);
    assert_eq!(ids.get(IdReg::new(9, 1)), 0);
    let ids = ids
        .with_field(IdReg::AA64DFR1, 8, 8, 0x1FF)
        .with_field(IdReg::AA64ISAR1, 0, 4, 2);
    assert_eq!(
        ids.get(IdReg::AA64DFR1),
        0xFF << 8,
        "the value is cut to the field"
    );
    assert_eq!(ids.get(IdReg::AA64ISAR1), 2);
}

#[test]
fn every_field_follows_the_policy_and_unlisted_bits_read_zero() {
    for hw in cpus() {
        for realm in configs() {
            for crm in 4..=7 {
                for op2 in 0..=7 {
                    let reg = IdReg::new(crm, op2);
                    let got = view(&hw, &realm, reg) & !count_mask(reg);
                    let want = expected(&hw, &realm, reg, POLICY);
                    assert_eq!(got, want, "{reg:?} {realm:?} CPU {:#x}", hw.get(reg));
                }
            }
        }
    }
}

#[test]
fn aarch32_registers_follow_the_policy_when_el0_can_use_aarch32() {
    for hw in cpus() {
        let el0_aarch32 = fld(hw.get(IdReg::AA64PFR0), 0, 4) >= 2;
        for realm in configs() {
            for crm in 1..=3 {
                for op2 in 0..=7 {
                    let reg = IdReg::new(crm, op2);
                    let want = if el0_aarch32 {
                        expected(&hw, &realm, reg, POLICY32)
                    } else {
                        0
                    };
                    assert_eq!(view(&hw, &realm, reg), want, "{reg:?} {realm:?}");
                }
            }
        }
    }
    // The simulator's CPU has AArch32 at EL0; without it the registers read 0.
    let hw = sim_id_regs(&SIM_CPU);
    assert_eq!(view(&hw, &NO_SVE_NO_PMU, IdReg::MVFR0), 0x1011_0222);
    let no32 = hw.with_field(IdReg::AA64PFR0, 0, 4, 1);
    assert_eq!(view(&no32, &NO_SVE_NO_PMU, IdReg::MVFR0), 0);
    assert_eq!(view(&no32, &NO_SVE_NO_PMU, IdReg::ID_ISAR0), 0);
}

#[test]
fn reserved_encodings_and_crm_8_to_15_read_zero() {
    let hw = random_regs(7).next().unwrap();
    let reserved = [(3, 3), (3, 7), (4, 3), (4, 6), (5, 3), (5, 6), (5, 7)]
        .into_iter()
        .chain((4..=7).map(|op2| (6, op2)))
        .chain((5..=7).map(|op2| (7, op2)));
    for (crm, op2) in reserved {
        assert_ne!(
            hw.get(IdReg::new(crm, op2)),
            0,
            "the test CPU has a value there"
        );
        assert_eq!(
            realm_view(&hw, &NO_SVE_NO_PMU, crm, op2, 0),
            0,
            "{crm} {op2}"
        );
    }
    for crm in 8..=15 {
        for op2 in 0..=7 {
            assert_eq!(realm_view(&hw, &NO_SVE_NO_PMU, crm, op2, 0), 0);
        }
    }
    // CRm 0: MIDR, MPIDR (the REC's VMPIDR), REVIDR; the rest 0.
    assert_eq!(realm_view(&hw, &NO_SVE_NO_PMU, 0, 0, 5), hw.midr);
    assert_eq!(
        realm_view(&hw, &NO_SVE_NO_PMU, 0, 5, 0x8000_0102),
        0x8000_0102
    );
    assert_eq!(realm_view(&hw, &NO_SVE_NO_PMU, 0, 6, 5), hw.revidr);
    for op2 in [1, 2, 3, 4, 7] {
        assert_eq!(realm_view(&hw, &NO_SVE_NO_PMU, 0, op2, 5), 0);
    }
    // Out-of-range op2 values (never in an ISS) do not panic.
    assert_eq!(realm_view(&hw, &NO_SVE_NO_PMU, 4, 200, 5), 0);
    assert_eq!(realm_view(&hw, &NO_SVE_NO_PMU, 255, 255, 5), 0);
}

/// The simulator's CPU (QEMU `max` plus everything that must be hidden).
fn sim() -> IdRegs {
    sim_id_regs(&SIM_CPU)
}

#[test]
fn the_simulated_qemu_max_cpu_as_a_realm_sees_it() {
    let hw = sim();
    let r = NO_SVE_NO_PMU;
    // SVE, MPAM, AMU hidden, CSV2 3 -> 1; RME, GIC, RAS, FP, AdvSIMD, DIT, CSV3 kept.
    assert_eq!(hw.get(IdReg::AA64PFR0), 0x1311_1111_2111_2222);
    assert_eq!(view(&hw, &r, IdReg::AA64PFR0), 0x1111_0010_2111_2222);
    // BT, SSBS, RAS_frac, RNDR_trap only.
    assert_eq!(view(&hw, &r, IdReg::AA64PFR1), 0x1000_1021);
    assert_eq!(view(&hw, &r, IdReg::AA64PFR2), 0);
    assert_eq!(view(&hw, &r, IdReg::AA64ZFR0), 0);
    assert_eq!(view(&hw, &r, IdReg::AA64SMFR0), 0);
    assert_eq!(view(&hw, &r, IdReg::AA64FPFR0), 0);
    // DebugVer 0xA, BRPs/WRPs 1 (the realm's), CTX_CMPs 1; no PMU, SPE, trace, BRBE.
    assert_eq!(view(&hw, &r, IdReg::AA64DFR0), 0x1010_100A);
    assert_eq!(view(&hw, &r, IdReg::AA64DFR1), 0);
    assert_eq!(view(&hw, &r, IdReg::AA64DFR2), 0);
    assert_eq!(view(&hw, &r, IdReg::AA64AFR0), 0);
    // TME, LS64, SYSREG_128/SYSINSTR_128, CPA hidden; MOPS kept (FEAT_HCX).
    assert_eq!(view(&hw, &r, IdReg::AA64ISAR0), 0x1221_1111_1031_2120);
    assert_eq!(view(&hw, &r, IdReg::AA64ISAR1), 0x0111_2111_0121_1152);
    assert_eq!(view(&hw, &r, IdReg::AA64ISAR2), 0x1010_0000_0011_0012);
    assert_eq!(view(&hw, &r, IdReg::AA64ISAR3), 0x1111_1110);
    assert_eq!(view(&hw, &r, IdReg::AA64MMFR0), hw.get(IdReg::AA64MMFR0));
    // LO hidden, HAFDBS 3 (HAFT) -> 2.
    assert_eq!(view(&hw, &r, IdReg::AA64MMFR1), 0x0110_1120_1030_2122);
    assert_eq!(view(&hw, &r, IdReg::AA64MMFR2), hw.get(IdReg::AA64MMFR2));
    // Only MEC and Spec_FPACC of MMFR3; ASID2 hidden in MMFR4.
    assert_eq!(view(&hw, &r, IdReg::AA64MMFR3), 0x1000_0000_1000_0000);
    assert_eq!(view(&hw, &r, IdReg::AA64MMFR4), 0x10_0001_1010);
    // AArch32: AMU hidden and CSV2 2 -> 1 in ID_PFR0; trace and PerfMon hidden in ID_DFR0.
    assert_eq!(view(&hw, &r, IdReg::ID_PFR0), 0x2101_0131);
    assert_eq!(view(&hw, &r, IdReg::ID_DFR0), 0x0000_0099);
    assert_eq!(view(&hw, &r, IdReg::ID_DFR1), 0);
    assert_eq!(view(&hw, &r, IdReg::ID_AFR0), 0);
    assert_eq!(view(&hw, &r, IdReg::ID_MMFR5), 1);
    assert_eq!(realm_view(&hw, &r, 0, 0, 0), SIM_MIDR);
}

#[test]
fn aarch32_registers_drop_their_upper_half() {
    let hw = sim().with(IdReg::ID_ISAR0, 0xDEAD_0000_0210_1110);
    assert_eq!(view(&hw, &NO_SVE_NO_PMU, IdReg::ID_ISAR0), 0x0210_1110);
}

#[test]
fn sve_is_shown_only_to_a_realm_with_sve() {
    let hw = sim();
    let sve = RealmCpu {
        sve: true,
        ..NO_SVE_NO_PMU
    };
    assert_eq!(fld(view(&hw, &NO_SVE_NO_PMU, IdReg::AA64PFR0), 32, 4), 0);
    assert_eq!(fld(view(&hw, &sve, IdReg::AA64PFR0), 32, 4), 1);
    assert_eq!(view(&hw, &NO_SVE_NO_PMU, IdReg::AA64ZFR0), 0);
    assert_eq!(view(&hw, &sve, IdReg::AA64ZFR0), hw.get(IdReg::AA64ZFR0));
    // A CPU without SVE shows none even to an SVE realm.
    let no_sve = hw
        .with_field(IdReg::AA64PFR0, 32, 4, 0)
        .with(IdReg::AA64ZFR0, 0);
    assert_eq!(fld(view(&no_sve, &sve, IdReg::AA64PFR0), 32, 4), 0);
    assert_eq!(view(&no_sve, &sve, IdReg::AA64ZFR0), 0);
}

#[test]
fn sme_fpmr_mte_gcs_the_nmi_are_hidden_from_every_realm() {
    let hw = sim();
    for r in configs() {
        let pfr1 = view(&hw, &r, IdReg::AA64PFR1);
        for (name, shift) in [
            ("MTE", 8),
            ("SME", 24),
            ("NMI", 36),
            ("GCS", 44),
            ("THE", 48),
            ("MTEX", 52),
            ("DF2", 56),
            ("PFAR", 60),
        ] {
            assert_ne!(
                fld(hw.get(IdReg::AA64PFR1), shift, 4),
                0,
                "{name} on the CPU"
            );
            assert_eq!(fld(pfr1, shift, 4), 0, "{name} hidden");
        }
        // MTE_frac 0 means "asynchronous faults supported"; 0xF (none) must not become 0
        // either: the field reads 0 as RES0 does without MTE.
        let nf = hw.with_field(IdReg::AA64PFR1, 40, 4, 0xF);
        assert_eq!(fld(view(&nf, &r, IdReg::AA64PFR1), 40, 4), 0, "MTE_frac");
        assert_eq!(view(&hw, &r, IdReg::AA64SMFR0), 0);
        assert_eq!(
            view(&hw, &r, IdReg::AA64PFR2),
            0,
            "FPMR and the MTE refinements"
        );
        assert_eq!(view(&hw, &r, IdReg::AA64FPFR0), 0);
    }
}

#[test]
fn pmu_fields_need_the_realms_pmu_flag() {
    let hw = sim();
    let pmu = RealmCpu {
        pmu: true,
        ..NO_SVE_NO_PMU
    };
    let d0 = hw.get(IdReg::AA64DFR0);
    for (name, shift) in [
        ("PMUVer", 8),
        ("PMSS", 16),
        ("SEBEP", 24),
        ("MTPMU", 48),
        ("HPMN0", 60),
    ] {
        assert_eq!(
            fld(view(&hw, &NO_SVE_NO_PMU, IdReg::AA64DFR0), shift, 4),
            0,
            "{name}"
        );
        assert_eq!(
            fld(view(&hw, &pmu, IdReg::AA64DFR0), shift, 4),
            fld(d0, shift, 4),
            "{name}"
        );
    }
    assert_eq!(fld(view(&hw, &pmu, IdReg::AA64DFR0), 8, 4), 6, "PMUv3p5");
    let d1 = view(&hw, &pmu, IdReg::AA64DFR1);
    assert_eq!((fld(d1, 36, 4), fld(d1, 48, 4), fld(d1, 52, 4)), (1, 1, 1));
    assert_eq!(fld(view(&hw, &pmu, IdReg::ID_DFR0), 24, 4), 6, "PerfMon");
    assert_eq!(view(&hw, &pmu, IdReg::ID_DFR1), 0x11);
    assert_eq!(fld(view(&hw, &NO_SVE_NO_PMU, IdReg::ID_DFR0), 24, 4), 0);
}

#[test]
fn spe_trbe_brbe_trace_mpam_amu_are_hidden() {
    let hw = sim();
    for r in configs() {
        let d0 = view(&hw, &r, IdReg::AA64DFR0);
        for (name, shift) in [
            ("TraceVer", 4),
            ("PMSVer", 32),
            ("TraceFilt", 40),
            ("TraceBuffer", 44),
            ("BRBE", 52),
            ("ExtTrcBuff", 56),
        ] {
            assert_ne!(
                fld(hw.get(IdReg::AA64DFR0), shift, 4),
                0,
                "{name} on the CPU"
            );
            assert_eq!(fld(d0, shift, 4), 0, "{name}");
        }
        let p0 = view(&hw, &r, IdReg::AA64PFR0);
        assert_eq!((fld(p0, 40, 4), fld(p0, 44, 4)), (0, 0), "MPAM, AMU");
        assert_eq!(fld(view(&hw, &r, IdReg::AA64PFR1), 16, 4), 0, "MPAM_frac");
        assert_eq!(fld(view(&hw, &r, IdReg::ID_PFR0), 20, 4), 0, "AArch32 AMU");
        assert_eq!(view(&hw, &r, IdReg::AA64DFR2), 0);
    }
}

#[test]
fn tcr2_sctlr2_and_the_features_they_control_are_hidden() {
    let hw = sim();
    let m3 = view(&hw, &NO_SVE_NO_PMU, IdReg::AA64MMFR3);
    for (name, shift) in [
        ("TCRX", 0),
        ("SCTLRX", 4),
        ("S1PIE", 8),
        ("S2PIE", 12),
        ("S1POE", 16),
        ("S2POE", 20),
        ("AIE", 24),
        ("D128", 32),
        ("D128_2", 36),
    ] {
        assert_eq!(fld(m3, shift, 4), 0, "{name}");
    }
    assert_eq!(
        fld(view(&hw, &NO_SVE_NO_PMU, IdReg::AA64MMFR4), 8, 4),
        0,
        "ASID2"
    );
    assert_eq!(
        fld(view(&hw, &NO_SVE_NO_PMU, IdReg::AA64ISAR3), 0, 4),
        0,
        "CPA"
    );
    // HAFDBS: DBM (2) stays, HAFT (3) and HDBSS (4) need TCR2.
    for (cpu, realm) in [(0, 0), (1, 1), (2, 2), (3, 2), (4, 2), (0xF, 2)] {
        let hw = hw.with_field(IdReg::AA64MMFR1, 0, 4, cpu);
        assert_eq!(
            fld(view(&hw, &NO_SVE_NO_PMU, IdReg::AA64MMFR1), 0, 4),
            realm
        );
    }
}

#[test]
fn csv2_is_capped_at_1_because_scxtnum_is_not_switched() {
    for (cpu, realm) in [(0, 0), (1, 1), (2, 1), (3, 1)] {
        let hw = sim()
            .with_field(IdReg::AA64PFR0, 56, 4, cpu)
            .with_field(IdReg::AA64PFR1, 32, 4, cpu)
            .with_field(IdReg::ID_PFR0, 16, 4, cpu);
        assert_eq!(
            fld(view(&hw, &NO_SVE_NO_PMU, IdReg::AA64PFR0), 56, 4),
            realm
        );
        assert_eq!(
            fld(view(&hw, &NO_SVE_NO_PMU, IdReg::AA64PFR1), 32, 4),
            realm
        );
        assert_eq!(fld(view(&hw, &NO_SVE_NO_PMU, IdReg::ID_PFR0), 16, 4), realm);
    }
}

#[test]
fn rme_stays_visible() {
    for hw in [sim(), sim().with_field(IdReg::AA64PFR0, 52, 4, 2)] {
        for r in configs() {
            assert_eq!(
                fld(view(&hw, &r, IdReg::AA64PFR0), 52, 4),
                fld(hw.get(IdReg::AA64PFR0), 52, 4)
            );
        }
    }
    assert_eq!(fld(view(&sim(), &NO_SVE_NO_PMU, IdReg::AA64PFR0), 52, 4), 1);
}

#[test]
fn mops_is_shown_only_with_hcx() {
    let hw = sim();
    assert_eq!(fld(view(&hw, &NO_SVE_NO_PMU, IdReg::AA64ISAR2), 16, 4), 1);
    let no_hcx = hw.with_field(IdReg::AA64MMFR1, 40, 4, 0);
    assert_eq!(
        fld(view(&no_hcx, &NO_SVE_NO_PMU, IdReg::AA64ISAR2), 16, 4),
        0
    );
    assert_eq!(RealmTraps::for_cpu(&no_hcx).hcrx, None);
}

/// The breakpoint, watchpoint and context-aware breakpoint counts (minus one) a debugger
/// in the realm decodes from `ID_AA64DFR0/1`.
fn decoded_counts(hw: &IdRegs, realm: &RealmCpu) -> (u64, u64, u64) {
    let d0 = view(hw, realm, IdReg::AA64DFR0);
    let d1 = view(hw, realm, IdReg::AA64DFR1);
    let count = |s0: u32, s1: u32| {
        let (a, b) = (fld(d0, s0, 4), fld(d1, s1, 8));
        if a == 15 && b != 0 {
            b
        } else {
            a
        }
    };
    (count(12, 8), count(20, 16), count(28, 24))
}

#[test]
fn debug_counts_are_the_realms_num_bps_and_num_wps() {
    // The simulator's CPU: 6 breakpoints (BRPs 5), 4 watchpoints, 2 context-aware.
    let hw = sim();
    for (bps, wps) in [(1, 1), (2, 3), (5, 3)] {
        let r = RealmCpu {
            num_bps: bps,
            num_wps: wps,
            ..NO_SVE_NO_PMU
        };
        assert_eq!(decoded_counts(&hw, &r), (bps.into(), wps.into(), 1));
        assert_eq!(
            view(&hw, &r, IdReg::AA64DFR1),
            0,
            "no FEAT_Debugv8p9 counts"
        );
    }
    // Context-aware breakpoints never outnumber breakpoints.
    let hw4 = hw.with_field(IdReg::AA64DFR0, 28, 4, 4);
    let r = RealmCpu {
        num_bps: 2,
        ..NO_SVE_NO_PMU
    };
    assert_eq!(decoded_counts(&hw4, &r).2, 2);
    // A realm cannot be shown more than the CPU has.
    let r = RealmCpu {
        num_bps: 40,
        num_wps: 40,
        ..NO_SVE_NO_PMU
    };
    assert_eq!(decoded_counts(&hw, &r), (5, 3, 1));
}

#[test]
fn debug_counts_above_16_use_id_aa64dfr1() {
    // FEAT_Debugv8p9: 64 breakpoints, 32 watchpoints, 20 context-aware.
    let hw = sim()
        .with_field(IdReg::AA64DFR0, 12, 4, 15)
        .with_field(IdReg::AA64DFR0, 20, 4, 15)
        .with_field(IdReg::AA64DFR0, 28, 4, 15)
        .with_field(IdReg::AA64DFR1, 8, 8, 63)
        .with_field(IdReg::AA64DFR1, 16, 8, 31)
        .with_field(IdReg::AA64DFR1, 24, 8, 19);
    for (bps, wps, ctx) in [(40, 20, 19), (15, 15, 15), (3, 1, 3), (63, 31, 19)] {
        let r = RealmCpu {
            num_bps: bps,
            num_wps: wps,
            ..NO_SVE_NO_PMU
        };
        assert_eq!(decoded_counts(&hw, &r), (bps.into(), wps.into(), ctx));
        let d0 = view(&hw, &r, IdReg::AA64DFR0);
        let d1 = view(&hw, &r, IdReg::AA64DFR1);
        assert_eq!(fld(d0, 12, 4), u64::from(bps).min(15));
        assert_eq!(fld(d1, 8, 8), u64::from(bps), "DFR1 always has the count");
        assert_eq!(d1 & !0xFFFF_FF00, 0, "nothing else of DFR1");
    }
    // The count fields of every random CPU decode to the realm's value, or the CPU's.
    for hw in random_regs(99) {
        let r = RealmCpu {
            num_bps: 9,
            num_wps: 17,
            ..NO_SVE_NO_PMU
        };
        let d0 = hw.get(IdReg::AA64DFR0);
        let d1 = hw.get(IdReg::AA64DFR1);
        let cpu = |s0: u32, s1: u32| {
            let (a, b) = (fld(d0, s0, 4), fld(d1, s1, 8));
            if a == 15 && b != 0 {
                b
            } else {
                a
            }
        };
        let (b, w, c) = decoded_counts(&hw, &r);
        assert_eq!(b, cpu(12, 8).min(9));
        assert_eq!(w, cpu(20, 16).min(17));
        assert_eq!(c, cpu(28, 24).min(b));
    }
}

#[test]
fn traps_for_the_simulated_cpu() {
    let t = RealmTraps::for_cpu(&sim());
    assert_eq!(t.hcr, hcr::TID3 | hcr::TLOR | hcr::TERR);
    assert_eq!(
        t.mdcr,
        mdcr::TPM | mdcr::TPMCR | mdcr::TDA | mdcr::TDOSA | mdcr::TPMS | mdcr::TTRF
    );
    assert_eq!(t.cptr, cptr::TTA | cptr::TAM);
    assert_eq!(t.hcrx, Some(hcrx::MSCEN));
    assert_eq!(hcr::TID3, 1 << 18);
    assert_eq!(
        (mdcr::TDA, mdcr::TDOSA, mdcr::TPM, mdcr::TPMCR),
        (1 << 9, 1 << 10, 1 << 6, 1 << 5)
    );
}

#[test]
fn traps_without_optional_features_are_the_base_ones() {
    let t = RealmTraps::for_cpu(&IdRegs::ZERO);
    assert_eq!(t, RealmTraps::BASE);
    assert_eq!(t.hcr, hcr::TID3, "TID3 always");
    assert_eq!(t.cptr, cptr::TTA);
    assert_eq!(t.mdcr, mdcr::TPM | mdcr::TPMCR | mdcr::TDA | mdcr::TDOSA);
    assert_eq!(t.hcrx, None, "no HCRX_EL2 without FEAT_HCX");
    // One feature at a time.
    let one = |reg, shift| RealmTraps::for_cpu(&IdRegs::ZERO.with_field(reg, shift, 4, 1));
    assert_eq!(one(IdReg::AA64MMFR1, 16).hcr, hcr::TID3 | hcr::TLOR);
    assert_eq!(one(IdReg::AA64PFR0, 28).hcr, hcr::TID3 | hcr::TERR);
    assert_eq!(
        one(IdReg::AA64DFR0, 32).mdcr,
        RealmTraps::BASE.mdcr | mdcr::TPMS
    );
    assert_eq!(
        one(IdReg::AA64DFR0, 40).mdcr,
        RealmTraps::BASE.mdcr | mdcr::TTRF
    );
    assert_eq!(one(IdReg::AA64PFR0, 44).cptr, cptr::TTA | cptr::TAM);
    assert_eq!(
        one(IdReg::AA64MMFR1, 40).hcrx,
        Some(0),
        "FEAT_HCX without MOPS"
    );
    assert_eq!(
        one(IdReg::AA64ISAR2, 16).hcrx,
        None,
        "MOPS without FEAT_HCX"
    );
}
