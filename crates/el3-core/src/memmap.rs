//! The physical memory facts EL3's services decide with: where DRAM is, which part of it is
//! the Realm carve-out EL3 gave the RMM, and where EL3's own (Root) memory is.

/// A physical address range `[base, base + size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
}

impl Region {
    /// The range `[base, base + size)`.
    pub const fn new(base: u64, size: u64) -> Self {
        Self { base, size }
    }

    /// True when `pa` is inside the range (an empty or wrapping range contains nothing past
    /// the top of the address space).
    pub const fn contains(&self, pa: u64) -> bool {
        pa >= self.base && pa - self.base < self.size
    }
}

/// The platform's memory as EL3 sees it after cold boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryMap {
    /// DRAM (the one bank the device tree reports).
    pub dram: Region,
    /// The Realm carve-out: the RMM image, its memory and the EL3-RMM shared page. It stays
    /// in the Realm PAS for the whole run.
    pub carveout: Region,
    /// EL3's own memory (Root PAS): code, data, stacks and the granule protection tables.
    pub root: Region,
}

impl MemoryMap {
    /// True when `pa` is DRAM that belongs to the Normal world's pool: inside DRAM and outside
    /// the carve-out and EL3's memory. Only such granules change PAS, and only such addresses
    /// are valid Normal-world entry points.
    pub const fn is_ns_dram(&self, pa: u64) -> bool {
        self.dram.contains(pa) && !self.carveout.contains(pa) && !self.root.contains(pa)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions() {
        let r = Region::new(0x1000, 0x2000);
        assert!(!r.contains(0xfff));
        assert!(r.contains(0x1000));
        assert!(r.contains(0x2fff));
        assert!(!r.contains(0x3000));
        assert!(!Region::new(0x1000, 0).contains(0x1000));
        let top = Region::new(u64::MAX - 0xfff, 0x1000);
        assert!(top.contains(u64::MAX));
        assert!(!top.contains(0));
    }

    #[test]
    fn ns_dram_excludes_the_carveout_and_root() {
        let m = MemoryMap {
            dram: Region::new(0x4000_0000, 0x8000_0000),
            carveout: Region::new(0x4010_0000, 0x180_0000),
            root: Region::new(0x0e00_0000, 0x100_0000),
        };
        assert!(m.is_ns_dram(0x4000_0000));
        assert!(m.is_ns_dram(0x400f_f000));
        assert!(!m.is_ns_dram(0x4010_0000));
        assert!(!m.is_ns_dram(0x418f_f000));
        assert!(m.is_ns_dram(0x4190_0000));
        assert!(m.is_ns_dram(0xbfff_ffff));
        assert!(!m.is_ns_dram(0xc000_0000));
        assert!(!m.is_ns_dram(0x0e00_0000));
        assert!(!m.is_ns_dram(0));
        assert!(!m.is_ns_dram(u64::MAX));
    }
}
