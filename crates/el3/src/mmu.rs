//! EL3's stage 1 translation: an identity map in which every region names its PAS
//! (Root for EL3's own memory and devices, Realm for the RMM carve-out, Non-secure for DRAM).

use aarch64_paging::descriptor::El23Attributes;
use aarch64_paging::paging::{El3, PageTable};
use fw_support::mmu;
use fw_support::once::TakeOnce;
use fw_support::write_sysreg;

/// In the EL3 regime with FEAT_RME, descriptor bit 11 is NSE; with NS (bit 5) it selects the
/// PAS: {NSE, NS} = 01 Non-secure, 10 Root, 11 Realm.
const NSE: El23Attributes = El23Attributes::NON_GLOBAL;
/// Root PAS.
pub const ROOT: El23Attributes = NSE;
/// Non-secure PAS.
pub const NONSECURE: El23Attributes = El23Attributes::NS;
/// Realm PAS.
pub const REALM: El23Attributes = NSE.union(El23Attributes::NS);

const POOL_PAGES: usize = 24;
static POOL: TakeOnce<[PageTable<El23Attributes>; POOL_PAGES]> =
    TakeOnce::new([PageTable::EMPTY; POOL_PAGES]);

/// The register values that enable the map on any CPU.
#[derive(Clone, Copy, Debug)]
pub struct MmuRegs {
    ttbr0: u64,
    tcr: u64,
}

/// Builds the map from `(start, end, attributes)` regions.
pub fn build(regions: &[(u64, u64, El23Attributes)], pa_range: u64) -> MmuRegs {
    let tables = POOL.take().expect("EL3 page tables built twice");
    let ttbr0 = mmu::build(
        tables,
        El3,
        "EL3",
        regions
            .iter()
            .map(|&(start, end, attrs)| (start, end, start, attrs)),
    );
    MmuRegs {
        ttbr0,
        tcr: mmu::tcr(pa_range.min(5)),
    }
}

/// Turns the MMU and caches on for EL3 on this CPU.
pub fn enable(regs: &MmuRegs) {
    // SAFETY: the tables identity-map EL3's code, data and stacks, so execution continues at
    // the same addresses once translation is on.
    unsafe {
        write_sysreg!(mair_el3, mmu::MAIR);
        write_sysreg!(tcr_el3, regs.tcr);
        write_sysreg!(ttbr0_el3, regs.ttbr0);
        core::arch::asm!("dsb ish", "tlbi alle3", "dsb ish", "isb", options(nostack));
        // RES1 bits, M, C, SA, I.
        write_sysreg!(
            sctlr_el3,
            0x30C5_0830u64 | 1 | (1 << 2) | (1 << 3) | (1 << 12)
        );
        core::arch::asm!("isb", options(nostack));
    }
}
