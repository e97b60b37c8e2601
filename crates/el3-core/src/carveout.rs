//! `RMM_RESERVE_MEMORY`: a top-down allocator over the unused part of the Realm carve-out.

use cca_abi::el3::{El3Error, RESERVE_ALIGN_SHIFT, RESERVE_LOCAL};

/// Hands out memory from `[low, high)`, highest addresses first. Memory is never returned.
#[derive(Clone, Copy, Debug)]
pub struct Carveout {
    low: u64,
    next_top: u64,
}

impl Carveout {
    /// An allocator over `[low, high)`.
    pub const fn new(low: u64, high: u64) -> Self {
        Self {
            low,
            next_top: high,
        }
    }

    /// Serves `RMM_RESERVE_MEMORY(size, flags)`: bits [63:56] of `flags` are log2 of the
    /// alignment (at least 4 KiB is used), bit 0 asks for CPU-local memory, and all other bits
    /// must be zero.
    pub fn reserve(&mut self, size: u64, flags: u64) -> Result<u64, El3Error> {
        let align_log2 = (flags >> RESERVE_ALIGN_SHIFT) as u32;
        let other = flags & !(RESERVE_LOCAL | (0xff << RESERVE_ALIGN_SHIFT));
        if other != 0 || align_log2 > 40 || size == 0 {
            return Err(El3Error::Inval);
        }
        let align = 1u64 << align_log2.max(12);
        let size = size.checked_add(0xfff).ok_or(El3Error::Inval)? & !0xfff;
        let base = self.next_top.checked_sub(size).ok_or(El3Error::NoMem)? & !(align - 1);
        if base < self.low {
            return Err(El3Error::NoMem);
        }
        self.next_top = base;
        Ok(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_cpu_regions_top_down() {
        let mut c = Carveout::new(0x4110_0000, 0x418f_f000);
        let a = c.reserve(0x9000, (12 << 56) | 1).unwrap();
        assert_eq!(a, 0x418f_6000);
        let b = c.reserve(0x9000, (12 << 56) | 1).unwrap();
        assert_eq!(b, 0x418e_d000);
        let big = c.reserve(0x1000, 21 << 56).unwrap();
        assert_eq!(big % (1 << 21), 0);
    }

    #[test]
    fn rejects() {
        let mut c = Carveout::new(0x4110_0000, 0x4120_0000);
        assert_eq!(c.reserve(0x1000, 1 << 5), Err(El3Error::Inval));
        assert_eq!(c.reserve(0, 0), Err(El3Error::Inval));
        assert_eq!(c.reserve(u64::MAX, 0), Err(El3Error::Inval));
        assert_eq!(c.reserve(0x20_0000, 0), Err(El3Error::NoMem));
        assert_eq!(c.reserve(0x10_0000, 0), Ok(0x4110_0000));
        assert_eq!(c.reserve(0x1000, 0), Err(El3Error::NoMem));
    }
}
