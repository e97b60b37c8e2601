//! Stage 1 translation tables for the firmware images, built with `aarch64-paging` from a
//! static pool of table pages, and the register set-up that turns the MMU on.

use aarch64_paging::descriptor::{El23Attributes, PhysicalAddress};
use aarch64_paging::paging::{
    Constraints, MemoryRegion, PageTable, Translation, TranslationRegime,
};
use aarch64_paging::Mapping;
use core::ptr::NonNull;

/// MAIR index 0: Device-nGnRE.
pub const ATTR_DEVICE: El23Attributes = El23Attributes::ATTRIBUTE_INDEX_0;
/// MAIR index 1: Normal, inner/outer write-back, read/write-allocate.
pub const ATTR_NORMAL: El23Attributes = El23Attributes::ATTRIBUTE_INDEX_1;
/// The MAIR value matching [`ATTR_DEVICE`] and [`ATTR_NORMAL`].
pub const MAIR: u64 = 0x04 | (0xff << 8);

/// Normal memory, read-write, not executable.
pub const RW_DATA: El23Attributes = El23Attributes::VALID
    .union(ATTR_NORMAL)
    .union(El23Attributes::INNER_SHAREABLE)
    .union(El23Attributes::ACCESSED)
    .union(El23Attributes::XN);
/// Normal memory, read-only, executable.
pub const RX_CODE: El23Attributes = El23Attributes::VALID
    .union(ATTR_NORMAL)
    .union(El23Attributes::INNER_SHAREABLE)
    .union(El23Attributes::ACCESSED)
    .union(El23Attributes::READ_ONLY);
/// Normal memory, read-only, not executable.
pub const RO_DATA: El23Attributes = RX_CODE.union(El23Attributes::XN);
/// Device memory.
pub const DEVICE: El23Attributes = El23Attributes::VALID
    .union(ATTR_DEVICE)
    .union(El23Attributes::ACCESSED)
    .union(El23Attributes::XN);

/// A fixed pool of zeroed, page-aligned translation tables, identity-mapped.
pub struct TablePool<const N: usize> {
    tables: &'static mut [PageTable<El23Attributes>; N],
    used: usize,
}

impl<const N: usize> TablePool<N> {
    /// Wraps a static array of tables. The array must live in identity-mapped memory.
    pub fn new(tables: &'static mut [PageTable<El23Attributes>; N]) -> Self {
        Self { tables, used: 0 }
    }

    /// Number of tables handed out.
    pub fn used(&self) -> usize {
        self.used
    }
}

impl<const N: usize> Translation<El23Attributes> for TablePool<N> {
    fn allocate_table(&mut self) -> (NonNull<PageTable<El23Attributes>>, PhysicalAddress) {
        let Some(t) = self.tables.get_mut(self.used) else {
            panic!("translation table pool of {N} pages exhausted");
        };
        self.used += 1;
        let ptr = NonNull::from(t);
        (ptr, PhysicalAddress(ptr.as_ptr() as usize))
    }

    unsafe fn deallocate_table(&mut self, _page_table: NonNull<PageTable<El23Attributes>>) {
        // Tables are never freed: the firmware's maps are built once at boot.
    }

    fn physical_to_virtual(&self, pa: PhysicalAddress) -> NonNull<PageTable<El23Attributes>> {
        NonNull::new(pa.0 as *mut PageTable<El23Attributes>).expect("null table address")
    }
}

/// TCR value for a 48-bit VA, 4 KiB granule, write-back cacheable inner-shareable walks, for
/// the EL2 (non-VHE) and EL3 formats (which are the same), with `ps` as the PA size field.
pub const fn tcr(ps: u64) -> u64 {
    let t0sz = 16;
    (1 << 31) | (1 << 23) | (ps << 16) | (0b11 << 12) | (0b01 << 10) | (0b01 << 8) | t0sz
}

/// One mapping: `(va_start, va_end, pa_start, attributes)`.
pub type Region = (u64, u64, u64, El23Attributes);

/// Builds translation tables for `regions` in `regime` (a 48-bit, level 0 rooted regime without
/// ASIDs: EL2 or EL3) from the static `tables`, and returns the root's address for TTBR0. The
/// tables live for the rest of the program. A region that cannot be mapped is a firmware bug:
/// `what` names the image in the panic.
pub fn build<R, const N: usize>(
    tables: &'static mut [PageTable<El23Attributes>; N],
    regime: R,
    what: &str,
    regions: impl IntoIterator<Item = Region>,
) -> u64
where
    R: TranslationRegime<Attributes = El23Attributes, Asid = (), VaRange = ()>,
{
    let mut map = Mapping::new(TablePool::new(tables), 0, regime);
    for (va, va_end, pa, attrs) in regions {
        let range = MemoryRegion::new(va as usize, va_end as usize);
        if let Err(e) = map.map_range(
            &range,
            PhysicalAddress(pa as usize),
            attrs,
            Constraints::empty(),
        ) {
            panic!("{what}: mapping {va:#x}..{va_end:#x} failed: {e:?}");
        }
    }
    let root = map.root_address().0 as u64;
    // The tables are static and stay in use; dropping the mapping would deactivate it.
    core::mem::forget(map);
    root
}
