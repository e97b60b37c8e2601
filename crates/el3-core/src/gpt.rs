//! Granule protection tables (RME): a two-level GPT with 4 KiB physical granules.
//!
//! The level 0 table has one entry per `2^l0gptsz` bytes (1 GiB on QEMU). An entry is either
//! a block descriptor giving one GPI to the whole region, or a table descriptor pointing to a
//! level 1 table in which each 64-bit word holds sixteen 4-bit GPIs, one per 4 KiB granule.
//! Regions that hold DRAM the RMM may delegate get level 1 tables; everything else is a block.

/// A Granule Protection Information value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Gpi {
    /// No access from any PAS.
    NoAccess = 0x0,
    /// Secure PAS.
    Secure = 0x8,
    /// Non-secure PAS.
    NonSecure = 0x9,
    /// Root PAS.
    Root = 0xA,
    /// Realm PAS.
    Realm = 0xB,
    /// Accessible from any PAS.
    Any = 0xF,
}

impl Gpi {
    /// Decodes a 4-bit GPI.
    pub const fn from_bits(v: u64) -> Option<Self> {
        Some(match v & 0xf {
            0x0 => Self::NoAccess,
            0x8 => Self::Secure,
            0x9 => Self::NonSecure,
            0xA => Self::Root,
            0xB => Self::Realm,
            0xF => Self::Any,
            _ => return None,
        })
    }
}

/// Errors building or changing the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GptError {
    /// The address is outside the protected space, unaligned, or in a region without a
    /// level 1 table.
    BadAddr,
    /// The granule is not in the expected PAS.
    BadPas,
    /// There is no space left for another level 1 table.
    NoL1Space,
    /// A block-mapped region was asked to hold mixed GPIs.
    NotGranular,
}

/// Size of one physical granule tracked by the GPT.
pub const PGS: u64 = 4096;
/// Bytes of physical memory covered by one level 1 word (16 granules).
const L1_WORD_SPAN: u64 = 16 * PGS;

/// The geometry of the protected physical space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GptGeometry {
    /// Protected physical address size in bits (GPCCR_EL3.PPS), e.g. 40.
    pub pps_bits: u32,
    /// Bits of address covered by one level 0 entry (GPCCR_EL3.L0GPTSZ + 30), e.g. 30.
    pub l0gptsz_bits: u32,
}

impl GptGeometry {
    /// Number of level 0 entries.
    pub const fn l0_entries(&self) -> usize {
        1 << (self.pps_bits - self.l0gptsz_bits)
    }

    /// Bytes of one level 0 region.
    pub const fn l0_region_size(&self) -> u64 {
        1 << self.l0gptsz_bits
    }

    /// Number of 64-bit words in one level 1 table.
    pub const fn l1_words(&self) -> usize {
        (self.l0_region_size() / L1_WORD_SPAN) as usize
    }

    /// The GPCCR_EL3.PPS encoding of `pps_bits`.
    pub const fn pps_field(&self) -> u64 {
        match self.pps_bits {
            32 => 0,
            36 => 1,
            40 => 2,
            42 => 3,
            44 => 4,
            48 => 5,
            _ => 6,
        }
    }

    /// GPCCR_EL3 with table walks inner/outer write-back cacheable, inner shareable, 4 KiB
    /// granules, and the checks enabled if `enable`.
    pub const fn gpccr(&self, enable: bool) -> u64 {
        let irgn = 1 << 8;
        let orgn = 1 << 10;
        let sh = 3 << 12;
        self.pps_field() | irgn | orgn | sh | ((enable as u64) << 16)
    }
}

/// Level 0 block descriptor with a GPI.
const fn l0_block(gpi: Gpi) -> u64 {
    ((gpi as u64) << 4) | 0b0001
}

/// Level 0 table descriptor pointing at a level 1 table.
const fn l0_table(l1_pa: u64) -> u64 {
    (l1_pa & 0x000F_FFFF_FFFF_F000) | 0b0011
}

/// A level 1 word with every granule set to `gpi`.
const fn l1_fill(gpi: Gpi) -> u64 {
    (gpi as u64) * 0x1111_1111_1111_1111
}

/// The tables, over memory supplied by the caller (at known physical addresses).
pub struct Gpt<'a> {
    geo: GptGeometry,
    l0: &'a mut [u64],
    l1: &'a mut [u64],
    l1_pa: u64,
    l1_used: usize,
}

impl<'a> Gpt<'a> {
    /// Creates tables with every region a block of `default`.
    ///
    /// `l0` must have `geo.l0_entries()` words; `l1` is the space for level 1 tables (a
    /// multiple of `geo.l1_words()`), located at physical address `l1_pa`.
    pub fn new(
        geo: GptGeometry,
        l0: &'a mut [u64],
        l1: &'a mut [u64],
        l1_pa: u64,
        default: Gpi,
    ) -> Self {
        assert_eq!(l0.len(), geo.l0_entries(), "level 0 table size");
        l0.fill(l0_block(default));
        Self {
            geo,
            l0,
            l1,
            l1_pa,
            l1_used: 0,
        }
    }

    /// The geometry.
    pub fn geometry(&self) -> GptGeometry {
        self.geo
    }

    /// The level 0 table.
    pub fn l0(&self) -> &[u64] {
        self.l0
    }

    fn l0_index(&self, pa: u64) -> Result<usize, GptError> {
        if pa >> self.geo.pps_bits != 0 {
            return Err(GptError::BadAddr);
        }
        Ok((pa >> self.geo.l0gptsz_bits) as usize)
    }

    /// Returns the level 1 table of a region, if it has one.
    fn l1_table_of(&self, idx: usize) -> Option<usize> {
        let d = self.l0[idx];
        if d & 0b11 != 0b11 {
            return None;
        }
        let pa = d & 0x000F_FFFF_FFFF_F000;
        let words = self.geo.l1_words() as u64;
        let slot = (pa - self.l1_pa) / (words * 8);
        Some(slot as usize)
    }

    /// Gives the region containing `pa` a level 1 table initialised from its current GPI,
    /// so that its granules can be changed one by one.
    pub fn make_granular(&mut self, pa: u64) -> Result<(), GptError> {
        let idx = self.l0_index(pa)?;
        if self.l1_table_of(idx).is_some() {
            return Ok(());
        }
        let words = self.geo.l1_words();
        let start = self.l1_used * words;
        let end = start + words;
        if end > self.l1.len() {
            return Err(GptError::NoL1Space);
        }
        let gpi = Gpi::from_bits(self.l0[idx] >> 4).unwrap_or(Gpi::NoAccess);
        self.l1[start..end].fill(l1_fill(gpi));
        self.l0[idx] = l0_table(self.l1_pa + (start as u64) * 8);
        self.l1_used += 1;
        Ok(())
    }

    /// Sets the GPI of `[base, base + size)`. Whole block-mapped regions become blocks;
    /// partial ones must already be granular.
    pub fn set_range(&mut self, base: u64, size: u64, gpi: Gpi) -> Result<(), GptError> {
        let end = base.checked_add(size).ok_or(GptError::BadAddr)?;
        if base % PGS != 0 || end % PGS != 0 || (end > 0 && self.l0_index(end - 1).is_err()) {
            return Err(GptError::BadAddr);
        }
        let region = self.geo.l0_region_size();
        let mut pa = base;
        while pa < end {
            let idx = self.l0_index(pa)?;
            let region_end = (idx as u64 + 1) * region;
            let chunk_end = end.min(region_end);
            match self.l1_table_of(idx) {
                None if pa % region == 0 && chunk_end == region_end => self.l0[idx] = l0_block(gpi),
                None => return Err(GptError::NotGranular),
                Some(slot) => self.set_granules(slot, pa, chunk_end, gpi),
            }
            pa = chunk_end;
        }
        Ok(())
    }

    /// Sets `[pa, end)` (granule aligned, inside the region of level 1 table `slot`): whole
    /// level 1 words (16 granules) at a time, one granule at a time only at unaligned edges,
    /// so a uniform GiB costs 16 Ki word stores rather than 256 Ki read-modify-writes.
    fn set_granules(&mut self, slot: usize, pa: u64, end: u64, gpi: Gpi) {
        let set_one = |t: &mut Self, g: u64| {
            let (word, shift) = t.l1_position(slot, g);
            t.l1[word] = (t.l1[word] & !(0xf << shift)) | ((gpi as u64) << shift);
        };
        let mut g = pa;
        while g < end && g % L1_WORD_SPAN != 0 {
            set_one(self, g);
            g += PGS;
        }
        let whole_end = end - (end - g.min(end)) % L1_WORD_SPAN;
        if g < whole_end {
            let (first, _) = self.l1_position(slot, g);
            let n = ((whole_end - g) / L1_WORD_SPAN) as usize;
            self.l1[first..first + n].fill(l1_fill(gpi));
            g = whole_end;
        }
        while g < end {
            set_one(self, g);
            g += PGS;
        }
    }

    /// Returns the GPI of the granule at `pa`.
    pub fn get(&self, pa: u64) -> Result<Gpi, GptError> {
        let idx = self.l0_index(pa)?;
        match self.l1_table_of(idx) {
            None => Gpi::from_bits(self.l0[idx] >> 4).ok_or(GptError::BadAddr),
            Some(slot) => {
                let (word, shift) = self.l1_position(slot, pa);
                Gpi::from_bits(self.l1[word] >> shift).ok_or(GptError::BadAddr)
            }
        }
    }

    fn l1_position(&self, slot: usize, pa: u64) -> (usize, u32) {
        let offset = pa & (self.geo.l0_region_size() - 1);
        let word = slot * self.geo.l1_words() + (offset / L1_WORD_SPAN) as usize;
        let shift = (((pa / PGS) & 0xf) * 4) as u32;
        (word, shift)
    }

    /// Writes one granule's GPI; the region must have a level 1 table. Returns the physical
    /// address of the level 1 word that changed (for cache maintenance).
    pub fn write_granule(&mut self, pa: u64, gpi: Gpi) -> Result<u64, GptError> {
        if pa % PGS != 0 {
            return Err(GptError::BadAddr);
        }
        let idx = self.l0_index(pa)?;
        let slot = self.l1_table_of(idx).ok_or(GptError::BadAddr)?;
        let (word, shift) = self.l1_position(slot, pa);
        self.l1[word] = (self.l1[word] & !(0xf << shift)) | ((gpi as u64) << shift);
        Ok(self.l1_pa + word as u64 * 8)
    }

    /// Checks that a granule may move from `from` to another PAS: it must be aligned, in a
    /// granular region, and currently `from`.
    pub fn check_transition(&self, pa: u64, from: Gpi) -> Result<(), GptError> {
        if pa % PGS != 0 {
            return Err(GptError::BadAddr);
        }
        let idx = self.l0_index(pa)?;
        if self.l1_table_of(idx).is_none() {
            return Err(GptError::BadAddr);
        }
        if self.get(pa)? != from {
            return Err(GptError::BadPas);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec;

    const GEO: GptGeometry = GptGeometry {
        pps_bits: 40,
        l0gptsz_bits: 30,
    };
    const GIB: u64 = 1 << 30;

    #[test]
    fn geometry_matches_tf_a_on_qemu() {
        assert_eq!(GEO.l0_entries(), 1024);
        assert_eq!(GEO.l0_entries() * 8, 8192);
        assert_eq!(GEO.l1_words() * 8, 128 * 1024);
        assert_eq!(GEO.gpccr(false), 0x3502);
        assert_eq!(GEO.gpccr(true), 0x13502);
    }

    #[test]
    fn qemu_layout() {
        let mut l0 = vec![0; GEO.l0_entries()];
        let mut l1 = vec![0; GEO.l1_words() * 3];
        let l1_pa = 0x0ef0_0000;
        let mut g = Gpt::new(GEO, &mut l0, &mut l1, l1_pa, Gpi::Any);
        g.make_granular(0x0e00_0000).unwrap();
        g.make_granular(0x4000_0000).unwrap();
        g.make_granular(0x8000_0000).unwrap();
        g.set_range(0x0e00_0000, 0x100_0000, Gpi::Root).unwrap();
        g.set_range(0x4000_0000, 2 * GIB, Gpi::NonSecure).unwrap();
        g.set_range(0x4010_0000, 0x180_0000, Gpi::Realm).unwrap();
        assert_eq!(g.get(0).unwrap(), Gpi::Any);
        assert_eq!(g.get(0x0900_0000).unwrap(), Gpi::Any);
        assert_eq!(g.get(0x0e00_1000).unwrap(), Gpi::Root);
        assert_eq!(g.get(0x400f_f000).unwrap(), Gpi::NonSecure);
        assert_eq!(g.get(0x4010_0000).unwrap(), Gpi::Realm);
        assert_eq!(g.get(0x418f_f000).unwrap(), Gpi::Realm);
        assert_eq!(g.get(0x4190_0000).unwrap(), Gpi::NonSecure);
        assert_eq!(g.get(0xbfff_f000).unwrap(), Gpi::NonSecure);
        assert_eq!(g.get(0xc000_0000).unwrap(), Gpi::Any);
        assert_eq!(g.l0()[1] & 0b11, 0b11);
        assert_eq!(g.l0()[3], 0xF1);
        assert_eq!(g.get(1 << 40), Err(GptError::BadAddr));
    }

    #[test]
    fn transitions() {
        let mut l0 = vec![0; GEO.l0_entries()];
        let mut l1 = vec![0; GEO.l1_words()];
        let mut g = Gpt::new(GEO, &mut l0, &mut l1, 0x1000_0000, Gpi::Any);
        g.make_granular(0x4000_0000).unwrap();
        g.set_range(0x4000_0000, GIB, Gpi::NonSecure).unwrap();
        assert_eq!(g.check_transition(0x4000_1000, Gpi::NonSecure), Ok(()));
        assert_eq!(
            g.check_transition(0x4000_1001, Gpi::NonSecure),
            Err(GptError::BadAddr)
        );
        assert_eq!(
            g.check_transition(0x4000_1000, Gpi::Realm),
            Err(GptError::BadPas)
        );
        assert_eq!(
            g.check_transition(0x8000_0000, Gpi::Any),
            Err(GptError::BadAddr),
            "block region"
        );
        let word = g.write_granule(0x4000_1000, Gpi::Realm).unwrap();
        assert_eq!(word, 0x1000_0000);
        assert_eq!(g.get(0x4000_1000).unwrap(), Gpi::Realm);
        assert_eq!(g.get(0x4000_0000).unwrap(), Gpi::NonSecure);
        assert_eq!(g.get(0x4000_2000).unwrap(), Gpi::NonSecure);
        assert_eq!(
            g.write_granule(0x4001_0000, Gpi::Realm).unwrap(),
            0x1000_0008
        );
    }

    #[test]
    fn errors() {
        let mut l0 = vec![0; GEO.l0_entries()];
        let mut l1 = vec![0; GEO.l1_words()];
        let mut g = Gpt::new(GEO, &mut l0, &mut l1, 0x1000_0000, Gpi::Any);
        assert_eq!(
            g.set_range(0x4000_0000, 0x1000, Gpi::Realm),
            Err(GptError::NotGranular)
        );
        assert_eq!(
            g.set_range(0x4000_0800, 0x1000, Gpi::Realm),
            Err(GptError::BadAddr)
        );
        assert_eq!(
            g.set_range(u64::MAX - 0xfff, 0x2000, Gpi::Realm),
            Err(GptError::BadAddr)
        );
        g.make_granular(0).unwrap();
        assert_eq!(g.make_granular(GIB), Err(GptError::NoL1Space));
        g.set_range(GIB, GIB, Gpi::NonSecure).unwrap();
        assert_eq!(g.get(GIB + 5 * PGS).unwrap(), Gpi::NonSecure);
    }

    proptest::proptest! {
        #[test]
        fn write_then_read(gran in 0u64..(2 * 262_144), realm in proptest::bool::ANY) {
            let mut l0 = vec![0; GEO.l0_entries()];
            let mut l1 = vec![0; GEO.l1_words() * 2];
            let mut g = Gpt::new(GEO, &mut l0, &mut l1, 0x1000_0000, Gpi::Any);
            g.make_granular(0x4000_0000).unwrap();
            g.make_granular(0x8000_0000).unwrap();
            g.set_range(0x4000_0000, 2 * GIB, Gpi::NonSecure).unwrap();
            let pa = 0x4000_0000 + gran * PGS;
            let gpi = if realm { Gpi::Realm } else { Gpi::Root };
            g.write_granule(pa, gpi).unwrap();
            proptest::prop_assert_eq!(g.get(pa).unwrap(), gpi);
            if pa > 0x4000_0000 {
                proptest::prop_assert_eq!(g.get(pa - PGS).unwrap(), Gpi::NonSecure);
            }
            if pa + PGS < 0xC000_0000 {
                proptest::prop_assert_eq!(g.get(pa + PGS).unwrap(), Gpi::NonSecure);
            }
        }
    }

    proptest::proptest! {
        /// Word-at-a-time ranges equal granule-at-a-time writes, at any alignment, across
        /// the boundary of two granular regions.
        #[test]
        fn ranges_equal_granule_writes(start in 0u64..600, len in 0u64..600, realm in proptest::bool::ANY) {
            let base_pa = 0x8000_0000 - 300 * PGS;
            let (mut l0a, mut l1a) = (vec![0; GEO.l0_entries()], vec![0; GEO.l1_words() * 2]);
            let (mut l0b, mut l1b) = (vec![0; GEO.l0_entries()], vec![0; GEO.l1_words() * 2]);
            let mut a = Gpt::new(GEO, &mut l0a, &mut l1a, 0x1000_0000, Gpi::Any);
            let mut b = Gpt::new(GEO, &mut l0b, &mut l1b, 0x1000_0000, Gpi::Any);
            for g in [&mut a, &mut b] {
                g.make_granular(0x4000_0000).unwrap();
                g.make_granular(0x8000_0000).unwrap();
                g.set_range(0x4000_0000, 2 * GIB, Gpi::NonSecure).unwrap();
            }
            let gpi = if realm { Gpi::Realm } else { Gpi::Root };
            let base = base_pa + start * PGS;
            a.set_range(base, len * PGS, gpi).unwrap();
            for k in 0..len {
                b.write_granule(base + k * PGS, gpi).unwrap();
            }
            proptest::prop_assert_eq!(a.l1, b.l1);
            proptest::prop_assert_eq!(a.l0, b.l0);
        }
    }
}
