//! The realm platform: kvmtool's arm64 memory map, the one Linux realm guests and edk2's
//! kvmtool realm firmware expect (`arm/include/arm-common/kvm-arch.h` in kvmtool).
//!
//! | IPA | what |
//! |---|---|
//! | `0x0100_0000` | 16550 UART (8 bytes), SPI 0 = INTID 32, level-high |
//! | `0x0100_1000`, `0x0100_2000`, `0x0100_3000` | firmware boots only: kvmtool's UARTs 1–3 (16550s, SPIs 31, 30, 29) |
//! | `0x0101_0000` | MC146818 RTC (2 bytes: index, data) |
//! | `GICD_BASE - n × 128 KiB` .. `GICD_BASE` | GICv3 redistributors, one 128 KiB frame pair per vCPU |
//! | `0x3FFF_0000` | GICv3 distributor (64 KiB) |
//! | `0x4000_0000` | PCI ECAM (256 MiB, bus 0) |
//! | `0x5000_0000`–`0x8000_0000` | PCI 32-bit MMIO window |
//! | `0x8000_0000` | RAM (one range) |
//!
//! Every device address is in the protected half of the IPA space; a realm reaches the
//! emulated ones through the unprotected alias (`ipa | 1 << (ipa_bits - 1)`), which the VMM
//! strips before it asks the device bus.

/// The 16550 UART.
pub const UART_BASE: u64 = 0x0100_0000;
/// Its register window.
pub const UART_SIZE: u64 = 8;
/// Its interrupt: SPI 0.
pub const UART_SPI: u32 = 0;
/// Its input clock (Hz), as the device tree states it.
pub const UART_CLOCK_HZ: u32 = 1_843_200;
/// kvmtool's UARTs 1 to 3 (16550s, `(base, SPI)`), in firmware boots only: edk2's ACPI
/// generator makes the first serial port that is not the console the DBG2 debug port and the
/// others the SSDT's generic serial ports, and stops building tables (MCFG and the PCI SSDT
/// among them) at the first of those it has nothing for. Their SPIs are the last ones
/// (kvmtool's SPIs 1 to 3 are PCI INTx here).
pub const EXTRA_UARTS: [(u64, u32); 3] = [
    (0x0100_1000, NR_SPIS - 1),
    (0x0100_2000, NR_SPIS - 2),
    (0x0100_3000, NR_SPIS - 3),
];
/// The first of them, which edk2 makes the ACPI DBG2 port.
pub const DEBUG_UART_BASE: u64 = EXTRA_UARTS[0].0;
/// Its interrupt.
pub const DEBUG_UART_SPI: u32 = EXTRA_UARTS[0].1;
/// The MC146818 RTC.
pub const RTC_BASE: u64 = 0x0101_0000;
/// Its register window (index, data).
pub const RTC_SIZE: u64 = 2;
/// The GICv3 distributor.
pub const GICD_BASE: u64 = 0x3FFF_0000;
/// Its register window.
pub const GICD_SIZE: u64 = 0x1_0000;
/// The window of one redistributor (RD_base and SGI_base frames).
pub const GICR_FRAME_SIZE: u64 = 0x2_0000;
/// PCI configuration space (ECAM), bus 0 only.
pub const PCI_ECAM_BASE: u64 = 0x4000_0000;
/// Its size.
pub const PCI_ECAM_SIZE: u64 = 0x1000_0000;
/// The PCI 32-bit memory window.
pub const PCI_MMIO_BASE: u64 = 0x5000_0000;
/// Its size.
pub const PCI_MMIO_SIZE: u64 = 0x3000_0000;
/// Guest RAM starts here.
pub const RAM_BASE: u64 = 0x8000_0000;
/// Number of SPIs the distributor implements (INTIDs 32..64: `GICD_TYPER.ITLinesNumber` 1).
pub const NR_SPIS: u32 = 32;

/// INTID of the first SPI.
pub const SPI_BASE: u32 = 32;
/// The GIC maintenance interrupt (PPI 9).
pub const MAINTENANCE_INTID: u32 = 25;
/// The EL2 physical timer (PPI 10).
pub const HYP_TIMER_INTID: u32 = 26;
/// The EL1 virtual timer (PPI 11): the one Linux and edk2 use in a realm.
pub const VTIMER_INTID: u32 = 27;
/// The EL3 (secure) physical timer (PPI 13).
pub const SECURE_TIMER_INTID: u32 = 29;
/// The EL1 physical timer (PPI 14).
pub const PTIMER_INTID: u32 = 30;

/// Base of the redistributor window of `nr_vcpus` vCPUs (just below the distributor).
pub const fn gicr_base(nr_vcpus: u64) -> u64 {
    GICD_BASE - nr_vcpus * GICR_FRAME_SIZE
}

/// The realm's IPA width for RAM `[base, base + size)`, as kvmtool chooses it: enough bits for
/// the last RAM address (at least 32), plus one for the unprotected alias. `None` if the range
/// is empty or wraps.
pub const fn ipa_bits(base: u64, size: u64) -> Option<u32> {
    if size == 0 {
        return None;
    }
    let Some(top) = base.checked_add(size - 1) else {
        return None;
    };
    let bits = 64 - top.leading_zeros();
    Some(if bits < 32 { 33 } else { bits + 1 })
}

/// The unprotected-alias bit of a realm with `ipa_bits`-bit IPAs.
pub const fn shared_bit(ipa_bits: u32) -> u64 {
    1 << (ipa_bits - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipa_width_follows_kvmtool() {
        assert_eq!(ipa_bits(RAM_BASE, 256 << 20), Some(33));
        assert_eq!(ipa_bits(RAM_BASE, 2 << 30), Some(33), "top 0xFFFF_FFFF");
        assert_eq!(ipa_bits(RAM_BASE, (2 << 30) + 4096), Some(34));
        assert_eq!(ipa_bits(0, 4 << 20), Some(33));
        assert_eq!(ipa_bits(RAM_BASE, 0), None);
        assert_eq!(ipa_bits(u64::MAX, 2), None);
        assert_eq!(shared_bit(33), 0x1_0000_0000);
        assert_eq!(gicr_base(2), 0x3FFB_0000);
    }
}
