//! Every way an `RMM_GTSI_DELEGATE` / `RMM_GTSI_UNDELEGATE` argument can be bad, against
//! tables laid out as the `el3` image lays them out on QEMU `virt` (2 GiB of DRAM).

extern crate std;

use crate::gpt::{Gpi, Gpt, GptGeometry, PGS};
use crate::gtsi::{apply, check, gpt_error, screen, Transition};
use crate::memmap::{MemoryMap, Region};
use cca_abi::el3::El3Error;
use proptest::strategy::Strategy;
use std::vec;
use std::vec::Vec;

const GEO: GptGeometry = GptGeometry {
    pps_bits: 40,
    l0gptsz_bits: 30,
};
const DRAM: Region = Region::new(0x4000_0000, 0x8000_0000);
const CARVEOUT: Region = Region::new(0x4010_0000, 0x0180_0000);
const SECURE_RAM: Region = Region::new(0x0e00_0000, 0x0100_0000);
const MAP: MemoryMap = MemoryMap {
    dram: DRAM,
    carveout: CARVEOUT,
    root: SECURE_RAM,
};
/// A DRAM granule the tests put in the Secure PAS (QEMU's layout has none, but EL3 must
/// refuse one whichever way it got there).
const SECURE_GRANULE: u64 = 0x9000_0000;

/// Level 0 and level 1 memory for the tables.
fn tables() -> (Vec<u64>, Vec<u64>) {
    (vec![0; GEO.l0_entries()], vec![0; GEO.l1_words() * 6])
}

/// The `el3` image's layout: everything `Any`; the GiB holding secure RAM and every GiB of
/// DRAM granular; secure RAM Root, DRAM Non-secure, the carve-out Realm.
fn qemu_gpt<'a>(l0: &'a mut [u64], l1: &'a mut [u64]) -> Gpt<'a> {
    let mut g = Gpt::new(GEO, l0, l1, 0x0e10_0000, Gpi::Any);
    g.make_granular(SECURE_RAM.base).unwrap();
    g.set_range(SECURE_RAM.base, SECURE_RAM.size, Gpi::Root)
        .unwrap();
    let mut pa = DRAM.base;
    while pa < DRAM.base + DRAM.size {
        g.make_granular(pa).unwrap();
        pa += GEO.l0_region_size();
    }
    g.set_range(DRAM.base, DRAM.size, Gpi::NonSecure).unwrap();
    g.set_range(CARVEOUT.base, CARVEOUT.size, Gpi::Realm)
        .unwrap();
    g.write_granule(SECURE_GRANULE, Gpi::Secure).unwrap();
    g
}

fn both(gpt: &Gpt<'_>, pa: u64) -> [Result<(), El3Error>; 2] {
    [
        check(&MAP, gpt, pa, Transition::Delegate),
        check(&MAP, gpt, pa, Transition::Undelegate),
    ]
}

#[test]
fn unaligned_addresses_are_bad_addr() {
    let (mut l0, mut l1) = tables();
    let g = qemu_gpt(&mut l0, &mut l1);
    for pa in [
        0x8000_0001,
        0x8000_0800,
        0x8000_0fff,
        0x8000_0008,
        0x4190_0004,
        u64::MAX,
    ] {
        assert_eq!(both(&g, pa), [Err(El3Error::BadAddr); 2], "{pa:#x}");
    }
}

#[test]
fn el3_root_memory_is_bad_addr() {
    let (mut l0, mut l1) = tables();
    let g = qemu_gpt(&mut l0, &mut l1);
    for pa in [
        SECURE_RAM.base,
        SECURE_RAM.base + 0x10_0000,
        SECURE_RAM.base + SECURE_RAM.size - PGS,
    ] {
        assert_eq!(g.get(pa).unwrap(), Gpi::Root);
        assert_eq!(both(&g, pa), [Err(El3Error::BadAddr); 2], "{pa:#x}");
    }
}

#[test]
fn mmio_flash_and_unbacked_space_are_bad_addr() {
    let (mut l0, mut l1) = tables();
    let g = qemu_gpt(&mut l0, &mut l1);
    for pa in [
        0,              // flash
        0x0800_0000,    // GIC distributor
        0x080a_0000,    // GIC redistributors
        0x0900_0000,    // UART0
        0x090b_0000,    // secure GPIO
        0x0a00_0000,    // virtio-mmio
        0x1000_0000,    // PCIe MMIO
        0x3eff_0000,    // PCIe I/O
        0x40_1000_0000, // PCIe ECAM (256 GiB)
        0x80_0000_0000, // PCIe high MMIO (512 GiB)
        0x0dff_f000,    // just below secure RAM, in its granular GiB
        0x0f00_0000,    // just above secure RAM
    ] {
        assert_eq!(both(&g, pa), [Err(El3Error::BadAddr); 2], "{pa:#x}");
    }
}

#[test]
fn out_of_range_addresses_are_bad_addr() {
    let (mut l0, mut l1) = tables();
    let g = qemu_gpt(&mut l0, &mut l1);
    for pa in [
        DRAM.base + DRAM.size,               // first byte after DRAM
        DRAM.base + DRAM.size + 0x1000_0000, // unbacked, block-mapped
        (1 << 40) - PGS,                     // last granule of the protected space
        1 << 40,                             // beyond the protected space
        1 << 48,
        1 << 52,
        !(PGS - 1),
    ] {
        assert_eq!(both(&g, pa), [Err(El3Error::BadAddr); 2], "{pa:#x}");
    }
}

#[test]
fn the_realm_carveout_never_changes_pas() {
    let (mut l0, mut l1) = tables();
    let mut g = qemu_gpt(&mut l0, &mut l1);
    for pa in [
        CARVEOUT.base, // the RMM image's first page
        CARVEOUT.base + 0x10_0000,
        0x418f_f000,                         // the EL3-RMM shared page
        CARVEOUT.base + CARVEOUT.size - PGS, // its last page
    ] {
        assert_eq!(g.get(pa).unwrap(), Gpi::Realm);
        assert_eq!(both(&g, pa), [Err(El3Error::BadAddr); 2], "{pa:#x}");
        assert_eq!(
            apply(&MAP, &mut g, pa, Transition::Undelegate),
            Err(El3Error::BadAddr)
        );
        assert_eq!(g.get(pa).unwrap(), Gpi::Realm, "{pa:#x} stays Realm");
    }
    // The granules on either side are ordinary NS DRAM.
    for pa in [CARVEOUT.base - PGS, CARVEOUT.base + CARVEOUT.size] {
        assert_eq!(both(&g, pa), [Ok(()), Err(El3Error::BadPas)], "{pa:#x}");
    }
}

#[test]
fn wrong_pas_is_bad_pas() {
    let (mut l0, mut l1) = tables();
    let mut g = qemu_gpt(&mut l0, &mut l1);
    let pa = 0x8000_0000;
    assert_eq!(
        check(&MAP, &g, pa, Transition::Undelegate),
        Err(El3Error::BadPas),
        "undelegate of an NS granule"
    );
    apply(&MAP, &mut g, pa, Transition::Delegate).unwrap();
    assert_eq!(
        apply(&MAP, &mut g, pa, Transition::Delegate),
        Err(El3Error::BadPas),
        "a second delegate"
    );
    assert_eq!(g.get(pa).unwrap(), Gpi::Realm);
    apply(&MAP, &mut g, pa, Transition::Undelegate).unwrap();
    assert_eq!(
        apply(&MAP, &mut g, pa, Transition::Undelegate),
        Err(El3Error::BadPas),
        "a second undelegate"
    );
    assert_eq!(g.get(pa).unwrap(), Gpi::NonSecure);
    assert_eq!(
        both(&g, SECURE_GRANULE),
        [Err(El3Error::BadPas); 2],
        "a Secure granule moves in neither direction"
    );
    assert_eq!(g.get(SECURE_GRANULE).unwrap(), Gpi::Secure);
}

#[test]
fn dram_edges_transition() {
    let (mut l0, mut l1) = tables();
    let mut g = qemu_gpt(&mut l0, &mut l1);
    for pa in [
        DRAM.base,
        0x7fff_f000,
        0x8000_0000, // the GiB boundary between two level 1 tables
        DRAM.base + DRAM.size - PGS,
    ] {
        let word = apply(&MAP, &mut g, pa, Transition::Delegate).unwrap();
        assert!(word >= 0x0e10_0000, "{pa:#x}: word {word:#x}");
        assert_eq!(g.get(pa).unwrap(), Gpi::Realm);
        if pa > DRAM.base {
            assert_eq!(g.get(pa - PGS).unwrap(), Gpi::NonSecure);
        }
        apply(&MAP, &mut g, pa, Transition::Undelegate).unwrap();
        assert_eq!(g.get(pa).unwrap(), Gpi::NonSecure);
    }
}

#[test]
fn screen_matches_the_memory_map() {
    assert_eq!(screen(&MAP, 0x8000_0000), Ok(()));
    assert_eq!(screen(&MAP, 0x8000_0001), Err(El3Error::BadAddr));
    assert_eq!(screen(&MAP, CARVEOUT.base), Err(El3Error::BadAddr));
    assert_eq!(screen(&MAP, SECURE_RAM.base), Err(El3Error::BadAddr));
    assert_eq!(gpt_error(crate::gpt::GptError::BadPas), El3Error::BadPas);
    for e in [
        crate::gpt::GptError::BadAddr,
        crate::gpt::GptError::NoL1Space,
        crate::gpt::GptError::NotGranular,
    ] {
        assert_eq!(gpt_error(e), El3Error::BadAddr);
    }
}

proptest::proptest! {
    /// Any address: the answer is the one the memory map and the current PAS give, and a
    /// refused transition changes no entry.
    #[test]
    fn any_address_gets_its_defined_answer(
        pa in proptest::prop_oneof![
            proptest::num::u64::ANY,
            (0u64..(1 << 41)),
            (DRAM.base..DRAM.base + DRAM.size).prop_map(|a| a & !0xfff),
            (CARVEOUT.base - 0x10_0000..CARVEOUT.base + CARVEOUT.size + 0x10_0000).prop_map(|a| a & !0xfff),
        ],
        undelegate in proptest::bool::ANY,
        delegate_first in proptest::bool::ANY,
    ) {
        let (mut l0, mut l1) = tables();
        let mut g = qemu_gpt(&mut l0, &mut l1);
        let ok_addr = pa % PGS == 0 && MAP.is_ns_dram(pa);
        if delegate_first && ok_addr {
            apply(&MAP, &mut g, pa, Transition::Delegate).unwrap();
        }
        let t = if undelegate { Transition::Undelegate } else { Transition::Delegate };
        let before = if pa >> 40 == 0 { g.get(pa & !0xfff).ok() } else { None };
        let expected = if !ok_addr {
            Err(El3Error::BadAddr)
        } else if before == Some(t.from()) {
            Ok(())
        } else {
            Err(El3Error::BadPas)
        };
        let got = apply(&MAP, &mut g, pa, t).map(|_| ());
        proptest::prop_assert_eq!(got, expected);
        let after = if pa >> 40 == 0 { g.get(pa & !0xfff).ok() } else { None };
        if got.is_ok() {
            proptest::prop_assert_eq!(after, Some(t.to()));
        } else {
            proptest::prop_assert_eq!(after, before);
        }
    }
}
