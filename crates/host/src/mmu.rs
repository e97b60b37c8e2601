//! The host's stage 1: an identity map of its DRAM, the console, the RTC and the GIC.

use aarch64_paging::descriptor::El23Attributes;
use aarch64_paging::paging::{El2, PageTable};
use fw_support::mmu;
use fw_support::once::TakeOnce;
use fw_support::write_sysreg;
use spin::Once;

const POOL_PAGES: usize = 16;
static POOL: TakeOnce<[PageTable<El23Attributes>; POOL_PAGES]> =
    TakeOnce::new([PageTable::EMPTY; POOL_PAGES]);
static REGS: Once<(u64, u64)> = Once::new();

unsafe extern "C" {
    static __text_end: u8;
    static __host_end: u8;
}

const IMAGE_BASE: u64 = 0x6000_0000;

/// The GIC (distributor, ITS, redistributors) on QEMU `virt`.
pub const GIC_WINDOW: (u64, u64) = (0x0800_0000, 0x0900_0000);
/// UART0, the console.
pub const UART0: u64 = 0x0900_0000;
/// The PL031 real-time clock.
pub const PL031: u64 = 0x0901_0000;

/// Builds the identity map of DRAM `[dram_base, dram_end)` and the devices the host uses,
/// and turns the MMU on for the boot CPU.
pub fn init(dram_base: u64, dram_end: u64) {
    let text_end = (&raw const __text_end) as u64;
    let end = (&raw const __host_end) as u64;
    let regions = [
        (dram_base, IMAGE_BASE, mmu::RW_DATA),
        (IMAGE_BASE, text_end, mmu::RX_CODE),
        (text_end, end, mmu::RW_DATA),
        (end, dram_end, mmu::RW_DATA),
        (UART0, UART0 + 0x1000, mmu::DEVICE),
        (PL031, PL031 + 0x1000, mmu::DEVICE),
        (GIC_WINDOW.0, GIC_WINDOW.1, mmu::DEVICE),
    ];
    let tables = POOL.take().expect("host page tables built once");
    let ttbr = mmu::build(
        tables,
        El2,
        "host",
        regions.map(|(start, stop, attrs)| (start, stop, start, attrs)),
    );
    let id = fw_support::sysreg::CpuId::read();
    REGS.call_once(|| (ttbr, mmu::tcr(id.pa_range().min(5))));
    enable_shared();
}

/// Turns the MMU on with the boot CPU's tables (for secondary CPUs).
pub fn enable_shared() {
    let (ttbr, tcr) = *REGS.get().expect("boot CPU built the tables");
    // SAFETY: the map is an identity map of the host image, its stacks and DRAM, so execution
    // continues at the same addresses; HCR_EL2.E2H = 0 selects the EL2 regime used here.
    unsafe {
        write_sysreg!(hcr_el2, 1u64 << 31);
        write_sysreg!(mair_el2, mmu::MAIR);
        write_sysreg!(tcr_el2, tcr);
        write_sysreg!(ttbr0_el2, ttbr);
        core::arch::asm!("dsb ish", "tlbi alle2", "dsb ish", "isb", options(nostack));
        write_sysreg!(
            sctlr_el2,
            0x30C5_0830u64 | 1 | (1 << 2) | (1 << 3) | (1 << 12)
        );
        core::arch::asm!("isb", options(nostack));
    }
}
