//! Every bad argument of the Normal world's PSCI calls, through [`crate::psci::dispatch`].

use crate::memmap::{MemoryMap, Region};
use crate::psci::{
    check_entry, dispatch, CpuStates, PowerState, PsciAction, AFFINITY_ON_PENDING, IMPLEMENTED,
    MIGRATE_NONE,
};
use cca_abi::psci::{self, PsciStatus};

const MAP: MemoryMap = MemoryMap {
    dram: Region::new(0x4000_0000, 0x8000_0000),
    carveout: Region::new(0x4010_0000, 0x0180_0000),
    root: Region::new(0x0e00_0000, 0x0100_0000),
};
const ENTRY: u64 = 0x6000_1000;

/// Two CPUs, CPU 0 on.
fn two_cpus() -> CpuStates<8> {
    let mut s = CpuStates::new();
    s.set_count(2);
    s.set_on(0);
    s
}

fn ret(s: PsciStatus) -> PsciAction {
    PsciAction::Return(s.to_reg())
}

#[test]
fn cpu_on_of_a_cpu_that_is_on_or_pending() {
    let s = two_cpus();
    assert_eq!(
        dispatch(&s, &MAP, psci::CPU_ON_64, [0, ENTRY, 7]),
        ret(PsciStatus::AlreadyOn)
    );
    assert_eq!(
        dispatch(&s, &MAP, psci::CPU_ON_64, [1, ENTRY, 7]),
        PsciAction::CpuOn {
            idx: 1,
            entry: ENTRY,
            context: 7
        }
    );
    assert_eq!(s.get(1), PowerState::OnPending);
    assert_eq!(
        dispatch(&s, &MAP, psci::CPU_ON_64, [1, ENTRY, 7]),
        ret(PsciStatus::OnPending)
    );
    assert_eq!(
        dispatch(&s, &MAP, psci::AFFINITY_INFO_64, [1, 0, 0]),
        PsciAction::Return(AFFINITY_ON_PENDING)
    );
    s.set_on(1);
    assert_eq!(
        dispatch(&s, &MAP, psci::CPU_ON_32, [1, ENTRY, 7]),
        ret(PsciStatus::AlreadyOn)
    );
}

#[test]
fn cpu_on_of_a_cpu_that_does_not_exist() {
    let s = two_cpus();
    for mpidr in [
        2u64,          // a third CPU on a two-CPU machine
        0x10,          // Aff0 16: QEMU has at most 16 per cluster
        0x100,         // CPU 16 (cluster 1)
        0x1_0000,      // Aff2
        0x1_0000_0000, // Aff3
        0xff_00ff_ffff,
        u64::MAX,
    ] {
        assert_eq!(
            dispatch(&s, &MAP, psci::CPU_ON_64, [mpidr, ENTRY, 0]),
            ret(PsciStatus::InvalidParameters),
            "{mpidr:#x}"
        );
    }
    assert_eq!(s.get(1), PowerState::Off, "nothing was claimed");
    // The bits outside the affinity fields (MT, U) are not part of the target, as in TF-A.
    assert!(matches!(
        dispatch(&s, &MAP, psci::CPU_ON_64, [0x8100_0001, ENTRY, 0]),
        PsciAction::CpuOn { idx: 1, .. }
    ));
}

#[test]
fn cpu_on_with_a_bad_entry_point() {
    let s = two_cpus();
    for entry in [
        0u64,
        ENTRY + 1,
        ENTRY + 2,
        0x0900_0000, // UART
        0x0e00_0000, // EL3's memory
        0x4010_0000, // the RMM's image
        0x418f_f000, // the EL3-RMM shared page
        0xc000_0000, // past DRAM
        1 << 40,
        !3,
    ] {
        assert_eq!(
            dispatch(&s, &MAP, psci::CPU_ON_64, [1, entry, 0]),
            ret(PsciStatus::InvalidAddress),
            "{entry:#x}"
        );
        assert_eq!(check_entry(&MAP, entry), Err(PsciStatus::InvalidAddress));
    }
    assert_eq!(s.get(1), PowerState::Off, "a refused CPU_ON claims nothing");
    // The target is checked before the entry point (TF-A's order).
    assert_eq!(
        dispatch(&s, &MAP, psci::CPU_ON_64, [5, 0, 0]),
        ret(PsciStatus::InvalidParameters)
    );
    // ...and the entry point before the target's state.
    assert_eq!(
        dispatch(&s, &MAP, psci::CPU_ON_64, [0, 0, 0]),
        ret(PsciStatus::InvalidAddress)
    );
}

#[test]
fn smc32_calls_use_the_low_halves_of_their_arguments() {
    let s = two_cpus();
    assert_eq!(
        dispatch(
            &s,
            &MAP,
            psci::CPU_ON_32,
            [
                0xdead_0000_0000_0001,
                0xffff_ffff_0000_0000 | ENTRY,
                0x1234_5678_9abc_def0
            ]
        ),
        PsciAction::CpuOn {
            idx: 1,
            entry: ENTRY,
            context: 0x9abc_def0
        }
    );
    assert_eq!(
        dispatch(
            &s,
            &MAP,
            psci::AFFINITY_INFO_32,
            [0xffff_0000_0000_0001, 0xffff_0000_0000_0000, 0]
        ),
        PsciAction::Return(AFFINITY_ON_PENDING)
    );
    // SMC64 sees all of them.
    assert_eq!(
        dispatch(
            &s,
            &MAP,
            psci::AFFINITY_INFO_64,
            [0xffff_0000_0000_0001, 0, 0]
        ),
        PsciAction::Return(AFFINITY_ON_PENDING),
        "bits above Aff3 are not part of the target"
    );
    assert_eq!(
        dispatch(&s, &MAP, psci::AFFINITY_INFO_64, [1, 1 << 32, 0]),
        ret(PsciStatus::InvalidParameters)
    );
}

#[test]
fn affinity_info_bad_arguments() {
    let s = two_cpus();
    assert_eq!(
        dispatch(&s, &MAP, psci::AFFINITY_INFO_64, [0, 0, 0]),
        PsciAction::Return(psci::AFFINITY_ON)
    );
    assert_eq!(
        dispatch(&s, &MAP, psci::AFFINITY_INFO_64, [1, 0, 0]),
        PsciAction::Return(psci::AFFINITY_OFF)
    );
    for level in [1u64, 2, 3, u64::MAX] {
        assert_eq!(
            dispatch(&s, &MAP, psci::AFFINITY_INFO_64, [0, level, 0]),
            ret(PsciStatus::InvalidParameters),
            "level {level}"
        );
    }
    assert_eq!(
        dispatch(&s, &MAP, psci::AFFINITY_INFO_64, [2, 0, 0]),
        ret(PsciStatus::InvalidParameters)
    );
}

#[test]
fn features_version_and_the_rest() {
    let s = two_cpus();
    assert_eq!(
        dispatch(&s, &MAP, psci::VERSION, [9, 9, 9]),
        PsciAction::Return(psci::PSCI_VERSION_1_1)
    );
    for f in IMPLEMENTED {
        assert_eq!(
            dispatch(&s, &MAP, psci::FEATURES, [u64::from(f), 0, 0]),
            PsciAction::Return(0)
        );
        assert_eq!(
            dispatch(
                &s,
                &MAP,
                psci::FEATURES,
                [0xffff_ffff_0000_0000 | u64::from(f), 0, 0]
            ),
            PsciAction::Return(0),
            "PSCI_FEATURES is SMC32: the queried ID is w1"
        );
    }
    for f in [
        psci::CPU_SUSPEND_32,
        psci::CPU_SUSPEND_64,
        0x8400_0005, // MIGRATE
        0x8400_0007, // MIGRATE_INFO_UP_CPU
        0x8400_000B, // CPU_FREEZE
        0xC400_0012, // SYSTEM_RESET2
        0,
        u32::MAX,
    ] {
        assert_eq!(
            dispatch(&s, &MAP, psci::FEATURES, [u64::from(f), 0, 0]),
            ret(PsciStatus::NotSupported),
            "{f:#x}"
        );
    }
    for f in [psci::CPU_SUSPEND_64, 0x8400_0005, 0x8400_001F, 0xC400_0012] {
        assert_eq!(
            dispatch(&s, &MAP, f, [0, 0, 0]),
            ret(PsciStatus::NotSupported)
        );
    }
    assert_eq!(
        dispatch(&s, &MAP, psci::MIGRATE_INFO_TYPE, [0, 0, 0]),
        PsciAction::Return(MIGRATE_NONE)
    );
    assert_eq!(
        dispatch(&s, &MAP, psci::CPU_OFF, [1, 2, 3]),
        PsciAction::CpuOff
    );
    assert_eq!(
        dispatch(&s, &MAP, psci::SYSTEM_OFF, [u64::MAX; 3]),
        PsciAction::SystemOff,
        "SYSTEM_OFF ignores its arguments and whatever the other CPUs run"
    );
    assert_eq!(
        dispatch(&s, &MAP, psci::SYSTEM_RESET, [1, 2, 3]),
        PsciAction::SystemReset
    );
}

proptest::proptest! {
    /// Random CPU_ONs on a four-CPU machine: every answer is one of the defined ones, a CPU
    /// is claimed only when it was off and the call succeeded, and never twice.
    #[test]
    fn random_cpu_on_streams(calls in proptest::collection::vec(
        (0u64..6, proptest::prop_oneof![
            proptest::strategy::Just(ENTRY),
            proptest::num::u64::ANY,
            0x4000_0000u64..0xc000_0000u64
        ], proptest::bool::ANY),
        1..40,
    )) {
        let mut s = CpuStates::<8>::new();
        s.set_count(4);
        s.set_on(0);
        for (mpidr, entry, smc32) in calls {
            let fid = if smc32 { psci::CPU_ON_32 } else { psci::CPU_ON_64 };
            let before: std::vec::Vec<_> = (0..4).map(|i| s.get(i)).collect();
            let e = if smc32 { entry & 0xffff_ffff } else { entry };
            let a = dispatch(&s, &MAP, fid, [mpidr, entry, 0]);
            let expected = if mpidr >= 4 {
                ret(PsciStatus::InvalidParameters)
            } else if check_entry(&MAP, e).is_err() {
                ret(PsciStatus::InvalidAddress)
            } else {
                match before[mpidr as usize] {
                    PowerState::On => ret(PsciStatus::AlreadyOn),
                    PowerState::OnPending => ret(PsciStatus::OnPending),
                    PowerState::Off => PsciAction::CpuOn { idx: mpidr as usize, entry: e, context: 0 },
                }
            };
            proptest::prop_assert_eq!(a, expected);
            for (i, &was) in before.iter().enumerate().take(4) {
                let now = s.get(i);
                if matches!(a, PsciAction::CpuOn { idx, .. } if idx == i) {
                    proptest::prop_assert_eq!(now, PowerState::OnPending);
                } else {
                    proptest::prop_assert_eq!(now, was);
                }
            }
        }
    }
}
