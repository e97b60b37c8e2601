//! The host's granule pool: Non-secure memory the VMM hands to realms, and which of it is
//! currently delegated to the Realm world.
//!
//! A bitmap over one contiguous range of host DRAM. Allocation is first fit with an
//! alignment; every granule is either free, allocated to the host (NS) or allocated and
//! delegated. Teardown checks that nothing is left delegated.

use super::error::{VmError, VmResult};
use crate::rmi::{Conduit, Rmi};
use alloc::vec;
use alloc::vec::Vec;
use cca_abi::GRANULE_SIZE as G;

/// A bitmap of `n` bits.
#[derive(Clone, Debug)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: u64) -> Self {
        Self(vec![0; n.div_ceil(64) as usize])
    }
    fn get(&self, i: u64) -> bool {
        self.0[(i / 64) as usize] & (1 << (i % 64)) != 0
    }
    fn set(&mut self, i: u64, v: bool) {
        let w = &mut self.0[(i / 64) as usize];
        if v {
            *w |= 1 << (i % 64);
        } else {
            *w &= !(1 << (i % 64));
        }
    }
    fn count(&self) -> u64 {
        self.0.iter().map(|w| u64::from(w.count_ones())).sum()
    }
}

/// Granules of host memory for realms.
#[derive(Clone, Debug)]
pub struct GranulePool {
    base: u64,
    granules: u64,
    used: Bits,
    delegated: Bits,
}

impl GranulePool {
    /// A pool over `[base, base + size)`; both are rounded inwards to granules.
    pub fn new(base: u64, size: u64) -> VmResult<Self> {
        let start = base
            .checked_add(G - 1)
            .ok_or(VmError::Config("the granule pool wraps"))?
            & !(G - 1);
        let end = base
            .checked_add(size)
            .ok_or(VmError::Config("the granule pool wraps"))?
            & !(G - 1);
        if end <= start {
            return Err(VmError::Config("the granule pool is empty"));
        }
        let granules = (end - start) / G;
        Ok(Self {
            base: start,
            granules,
            used: Bits::new(granules),
            delegated: Bits::new(granules),
        })
    }

    /// The pool's range.
    pub fn range(&self) -> (u64, u64) {
        (self.base, self.base + self.granules * G)
    }

    /// Granules not allocated.
    pub fn free_granules(&self) -> u64 {
        self.granules - self.used.count()
    }

    /// Granules currently delegated.
    pub fn delegated_granules(&self) -> u64 {
        self.delegated.count()
    }

    fn index(&self, pa: u64, n: u64) -> Option<u64> {
        let i = pa.checked_sub(self.base)? / G;
        (pa % G == 0 && i.checked_add(n)? <= self.granules).then_some(i)
    }

    /// True when `[pa, pa + n granules)` lies in the pool.
    pub fn contains(&self, pa: u64, n: u64) -> bool {
        self.index(pa, n).is_some()
    }

    /// Allocates `n` contiguous granules whose first PA is `align`-aligned (a power of two,
    /// at least 4 KiB). They stay Non-secure.
    pub fn alloc(&mut self, n: u64, align: u64, what: &'static str) -> VmResult<u64> {
        let oom = VmError::OutOfMemory { what, granules: n };
        if n == 0 || !align.is_power_of_two() {
            return Err(VmError::Config("bad allocation request"));
        }
        let step = (align / G).max(1);
        // The aligned candidates are `first + m * step`.
        let first = (self.base.div_ceil(align) * align - self.base) / G;
        let mut i = first;
        while i.checked_add(n).is_some_and(|e| e <= self.granules) {
            match (i..i + n).rev().find(|&k| self.used.get(k)) {
                None => {
                    for k in i..i + n {
                        self.used.set(k, true);
                    }
                    return Ok(self.base + i * G);
                }
                // The next candidate that starts past the last busy granule of this run.
                Some(busy) => i = first + ((busy - first) / step + 1) * step,
            }
        }
        Err(oom)
    }

    /// Returns granules to the pool. They must not be delegated.
    pub fn free(&mut self, pa: u64, n: u64) -> VmResult<()> {
        let i = self
            .index(pa, n)
            .ok_or(VmError::Config("freeing granules outside the pool"))?;
        if (i..i + n).any(|k| self.delegated.get(k)) {
            return Err(VmError::Config("freeing granules that are still delegated"));
        }
        for k in i..i + n {
            self.used.set(k, false);
        }
        Ok(())
    }

    /// Delegates allocated granules `[pa, pa + n)` through the RMM. If the RMM stops part of
    /// the way, the granules it did delegate are recorded as delegated (so that teardown
    /// returns them) and the error is returned.
    pub fn delegate<C: Conduit>(&mut self, rmi: &mut Rmi<'_, C>, pa: u64, n: u64) -> VmResult<()> {
        let i = self
            .index(pa, n)
            .ok_or(VmError::Config("delegating granules outside the pool"))?;
        let (done, result) = match rmi.delegate(pa, n) {
            Ok(()) => (n, Ok(())),
            Err(e) => (
                (e.x1.clamp(pa, pa + n * G) - pa) / G,
                Err(VmError::Rmi {
                    doing: "delegating granules",
                    err: e,
                }),
            ),
        };
        for k in i..i + done {
            self.delegated.set(k, true);
        }
        result
    }

    /// Undelegates `[pa, pa + n)` (the RMM scrubs them); they stay allocated.
    pub fn undelegate<C: Conduit>(
        &mut self,
        rmi: &mut Rmi<'_, C>,
        pa: u64,
        n: u64,
    ) -> VmResult<()> {
        let i = self
            .index(pa, n)
            .ok_or(VmError::Config("undelegating granules outside the pool"))?;
        rmi.undelegate(pa, n)
            .map_err(VmError::rmi("undelegating granules"))?;
        for k in i..i + n {
            self.delegated.set(k, false);
        }
        Ok(())
    }

    /// True when the granule at `pa` is delegated.
    pub fn is_delegated(&self, pa: u64) -> bool {
        self.index(pa, 1).is_some_and(|i| self.delegated.get(i))
    }

    /// Allocates and delegates `n` granules.
    pub fn alloc_delegated<C: Conduit>(
        &mut self,
        rmi: &mut Rmi<'_, C>,
        n: u64,
        align: u64,
        what: &'static str,
    ) -> VmResult<u64> {
        let pa = self.alloc(n, align, what)?;
        if let Err(e) = self.delegate(rmi, pa, n) {
            // Give back the part that was delegated, then the allocation.
            let first = self.index(pa, n).unwrap_or(0);
            let done = (first..first + n)
                .take_while(|&k| self.delegated.get(k))
                .count() as u64;
            if done > 0 {
                self.undelegate(rmi, pa, done)?;
            }
            self.free(pa, n)?;
            return Err(e);
        }
        Ok(pa)
    }

    /// Undelegates and frees `n` granules.
    pub fn free_delegated<C: Conduit>(
        &mut self,
        rmi: &mut Rmi<'_, C>,
        pa: u64,
        n: u64,
    ) -> VmResult<()> {
        self.undelegate(rmi, pa, n)?;
        self.free(pa, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_fit_with_alignment() {
        let mut p = GranulePool::new(0x8000_1000, 0x40_0000).unwrap();
        assert_eq!(p.range(), (0x8000_1000, 0x8040_1000));
        let a = p.alloc(1, G, "t").unwrap();
        assert_eq!(a, 0x8000_1000);
        let b = p.alloc(2, 2 * G, "t").unwrap();
        assert_eq!(b, 0x8000_2000);
        let c = p.alloc(512, 0x20_0000, "t").unwrap();
        assert_eq!(c, 0x8020_0000);
        assert_eq!(
            p.alloc(512, 0x20_0000, "t").unwrap_err(),
            VmError::OutOfMemory {
                what: "t",
                granules: 512
            }
        );
        let d = p.alloc(3, G, "t").unwrap();
        assert_eq!(d, 0x8000_4000);
        p.free(b, 2).unwrap();
        assert_eq!(p.alloc(2, G, "t").unwrap(), b);
        assert_eq!(p.free_granules(), 1024 - 1 - 2 - 512 - 3);
        assert!(p.free(0x9000_0000, 1).is_err());
        assert!(p.free(0x8000_1001, 1).is_err());
        assert!(p.alloc(0, G, "t").is_err());
        assert!(p.alloc(1, 3 * G, "t").is_err());
        assert!(GranulePool::new(u64::MAX - 10, 100).is_err());
        assert!(GranulePool::new(0x1000, 0x800).is_err());
    }

    #[test]
    fn aligned_search_skips_busy_runs() {
        let mut p = GranulePool::new(0, 0x80_0000).unwrap();
        p.alloc(1, G, "t").unwrap();
        // The first 2 MiB block is busy at granule 0: the next aligned block is at 2 MiB.
        assert_eq!(p.alloc(512, 0x20_0000, "t").unwrap(), 0x20_0000);
        assert_eq!(p.alloc(512, 0x20_0000, "t").unwrap(), 0x40_0000);
        assert_eq!(p.alloc(1, 0x20_0000, "t").unwrap(), 0x60_0000);
        assert!(p.alloc(512, 0x20_0000, "t").is_err());
    }
}
