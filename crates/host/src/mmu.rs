//! The host's stage 1: an identity map of its DRAM and the console.

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
const DRAM: (u64, u64) = (0x4000_0000, 0xC000_0000);

/// Builds the map and turns the MMU on for the boot CPU.
pub fn init() {
    let text_end = (&raw const __text_end) as u64;
    let end = (&raw const __host_end) as u64;
    let regions = [
        (DRAM.0, IMAGE_BASE, mmu::RW_DATA),
        (IMAGE_BASE, text_end, mmu::RX_CODE),
        (text_end, end, mmu::RW_DATA),
        (end, DRAM.1, mmu::RW_DATA),
        (0x0900_0000, 0x0900_1000, mmu::DEVICE),
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
