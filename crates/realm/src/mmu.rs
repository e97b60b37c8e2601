//! The realm's stage 1 (EL1&0 regime, `TTBR0_EL1`): an identity map, VA = IPA, of exactly
//! what the payload touches.
//!
//! | VA = IPA | what | attributes |
//! |---|---|---|
//! | `0 .. __text_end` | code | normal, read-only, executable |
//! | `__text_end .. __rodata_end` | read-only data | normal, read-only |
//! | `__rodata_end .. __stacks_start` | data, `.bss`, page tables | normal, read-write |
//! | each 64 KiB stack slot but its lowest page | a REC's stack | normal, read-write |
//! | `[2 MiB, 2 MiB + 64 KiB)` | memory the payload turns RIPAS RAM | normal, read-write |
//! | `2^39 + 0x0900_0000` (4 KiB) | the PL011 the host emulates (unprotected) | device nGnRE |
//!
//! Nothing else is mapped, so a stray access or a stack overflow (into the unmapped guard
//! page under each stack) faults at stage 1 with a clear report instead of corrupting data
//! or reaching protected memory that is RIPAS EMPTY (which the RMM answers with an SEA).

use crate::entry::{MAX_RECS, STACK_GUARD, STACK_SLOT};
use crate::layout::{NEW_RAM, UART_BASE};
use aarch64_paging::descriptor::{El1Attributes, PhysicalAddress};
use aarch64_paging::paging::{Constraints, El1And0, MemoryRegion, PageTable, Translation, VaRange};
use aarch64_paging::Mapping;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};
use fw_support::once::TakeOnce;

/// MAIR index 0: Device-nGnRE.
const ATTR_DEVICE: El1Attributes = El1Attributes::ATTRIBUTE_INDEX_0;
/// MAIR index 1: Normal, inner/outer write-back, read/write-allocate.
const ATTR_NORMAL: El1Attributes = El1Attributes::ATTRIBUTE_INDEX_1;
/// `MAIR_EL1` for [`ATTR_DEVICE`] and [`ATTR_NORMAL`].
pub const MAIR: u64 = 0x04 | (0xff << 8);

const NORMAL: El1Attributes = El1Attributes::VALID
    .union(ATTR_NORMAL)
    .union(El1Attributes::INNER_SHAREABLE)
    .union(El1Attributes::ACCESSED);
/// Normal memory, read-only, executable at EL1.
const RX_CODE: El1Attributes = NORMAL
    .union(El1Attributes::READ_ONLY)
    .union(El1Attributes::UXN);
/// Normal memory, read-only, not executable.
const RO_DATA: El1Attributes = RX_CODE.union(El1Attributes::PXN);
/// Normal memory, read-write, not executable.
const RW_DATA: El1Attributes = NORMAL.union(El1Attributes::PXN).union(El1Attributes::UXN);
/// Device memory, not executable.
const DEVICE: El1Attributes = El1Attributes::VALID
    .union(ATTR_DEVICE)
    .union(El1Attributes::ACCESSED)
    .union(El1Attributes::PXN)
    .union(El1Attributes::UXN);

/// `TCR_EL1`: 48-bit VA in TTBR0 (T0SZ 16), 4 KiB granule, inner-shareable write-back table
/// walks, TTBR1 walks disabled (EPD1, TG1 4 KiB), IPS 40 bits (the realm's IPA width).
pub const TCR: u64 = 16
    | (0b01 << 8)
    | (0b01 << 10)
    | (0b11 << 12)
    | (16 << 16)
    | (1 << 23)
    | (0b10 << 30)
    | (0b010 << 32);

/// `SCTLR_EL1`: the RES1 bits of Armv8.0 (EOS, TSCXT, EIS, SPAN, nTLSMD, LSMAOE) plus M, C,
/// SA and I: MMU and caches on, SP alignment checks, little-endian, WXN off.
pub const SCTLR: u64 = 0x30D0_0800 | 1 | (1 << 2) | (1 << 3) | (1 << 12);

/// `CPACR_EL1.FPEN` = 0b11: FP/SIMD does not trap (nothing here uses it; the soft-float
/// target never emits it).
pub const CPACR: u64 = 3 << 20;

/// The boot map's level 2 entry: a 2 MiB block at IPA 0, normal memory (MAIR index 1),
/// inner-shareable, accessed, EL1 read-write and executable, UXN.
pub const BOOT_BLOCK: u64 = 0b01 | (1 << 2) | (0b11 << 8) | (1 << 10) | (1 << 54);

/// The boot map the entry code writes (levels 0, 1 and 2) and runs `realm_main` on.
#[repr(C, align(4096))]
pub struct BootTables([AtomicU64; 3 * 512]);

/// The boot map's tables; only the entry code writes them.
#[unsafe(no_mangle)]
pub static REALM_BOOT_TABLES: BootTables = BootTables([const { AtomicU64::new(0) }; 3 * 512]);

/// `TTBR0_EL1`, `TCR_EL1`, `MAIR_EL1`, `SCTLR_EL1` for the other RECs' entry code, which
/// reads them with its MMU off: REC 0 cleans them to the point of coherency after writing.
#[unsafe(no_mangle)]
pub static REALM_MMU_REGS: MmuRegs = MmuRegs([const { AtomicU64::new(0) }; 4]);

/// Four registers in one cache line.
#[repr(C, align(64))]
pub struct MmuRegs([AtomicU64; 4]);

const POOL_PAGES: usize = 16;
static POOL: TakeOnce<[PageTable<El1Attributes>; POOL_PAGES]> =
    TakeOnce::new([PageTable::EMPTY; POOL_PAGES]);

/// Translation tables from a static pool in the identity-mapped image.
struct TablePool {
    tables: &'static mut [PageTable<El1Attributes>; POOL_PAGES],
    used: usize,
}

impl Translation<El1Attributes> for TablePool {
    fn allocate_table(&mut self) -> (NonNull<PageTable<El1Attributes>>, PhysicalAddress) {
        let Some(t) = self.tables.get_mut(self.used) else {
            panic!("translation table pool of {POOL_PAGES} pages exhausted");
        };
        self.used += 1;
        let ptr = NonNull::from(t);
        (ptr, PhysicalAddress(ptr.as_ptr() as usize))
    }

    unsafe fn deallocate_table(&mut self, _page_table: NonNull<PageTable<El1Attributes>>) {
        // The map is built once and never changes.
    }

    fn physical_to_virtual(&self, pa: PhysicalAddress) -> NonNull<PageTable<El1Attributes>> {
        NonNull::new(pa.0 as *mut PageTable<El1Attributes>).expect("null table address")
    }
}

/// Builds the real map and switches REC 0 to it from the boot map, then publishes the
/// registers for the other RECs.
pub fn init() {
    let l = crate::entry::layout();
    let pool = TablePool {
        tables: POOL.take().expect("stage 1 tables built once"),
        used: 0,
    };
    let mut map = Mapping::with_asid_and_va_range(pool, 0, 0, El1And0, VaRange::Lower);
    let stacks = (0..MAX_RECS as u64).map(|i| {
        let slot = l.stacks_start + i * STACK_SLOT as u64;
        (slot + STACK_GUARD as u64, slot + STACK_SLOT as u64, RW_DATA)
    });
    let regions = [
        (0, l.text_end, RX_CODE),
        (l.text_end, l.rodata_end, RO_DATA),
        (l.rodata_end, l.stacks_start, RW_DATA),
        (NEW_RAM.0, NEW_RAM.1, RW_DATA),
        (UART_BASE, UART_BASE + 0x1000, DEVICE),
    ];
    for (start, end, attrs) in regions.into_iter().chain(stacks) {
        let range = MemoryRegion::new(start as usize, end as usize);
        if let Err(e) = map.map_range(
            &range,
            PhysicalAddress(start as usize),
            attrs,
            Constraints::empty(),
        ) {
            panic!("stage 1 map of {start:#x}..{end:#x} failed: {e:?}");
        }
    }
    let ttbr = map.root_address().0 as u64;
    // The tables are static and stay in use for the rest of the run.
    core::mem::forget(map);
    // SAFETY: both maps are identity maps of the code and the stack, so execution continues
    // at the same addresses through the switch. The MMU is off while TTBR0 changes and the
    // TLBs are invalidated, so entries of the boot map (a 2 MiB block) never meet entries of
    // the real map (pages) in the TLB; no memory is accessed while it is off. The tables
    // were written through the cacheable boot map, and the walks are cacheable.
    unsafe {
        core::arch::asm!(
            "dsb ish",
            "msr sctlr_el1, {off}",
            "isb",
            "msr ttbr0_el1, {ttbr}",
            "isb",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            "msr sctlr_el1, {on}",
            "isb",
            off = in(reg) SCTLR & !1,
            on = in(reg) SCTLR,
            ttbr = in(reg) ttbr,
            options(nostack)
        );
    }
    for (slot, v) in REALM_MMU_REGS.0.iter().zip([ttbr, TCR, MAIR, SCTLR]) {
        slot.store(v, Ordering::Relaxed);
    }
    // SAFETY: cleaning cache lines to the point of coherency does not change memory contents.
    unsafe {
        core::arch::asm!(
            "dc cvac, {p}",
            "dsb sy",
            p = in(reg) REALM_MMU_REGS.0.as_ptr(),
            options(nostack)
        );
    }
}
