//! Physical addresses.

use core::fmt;

use cca_abi::{GRANULE_SHIFT, GRANULE_SIZE};

/// A physical address, as the host passes it in an RMI argument.
///
/// The type says nothing about alignment or about which physical address space (PAS) the
/// address belongs to; it only keeps PAs apart from other `u64`s (IPAs, sizes, counts).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pa(u64);

impl Pa {
    /// Wraps a raw address.
    pub const fn new(addr: u64) -> Self {
        Self(addr)
    }

    /// Returns the raw address.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Returns true when the address is aligned to a 4 KiB granule.
    pub const fn is_granule_aligned(self) -> bool {
        cca_abi::granule_aligned(self.0)
    }

    /// Returns true when the address is aligned to `align`, which must be a power of two.
    pub const fn is_aligned_to(self, align: u64) -> bool {
        self.0 & (align - 1) == 0
    }

    /// Returns the address of the next granule, or `None` on overflow.
    pub const fn next_granule(self) -> Option<Self> {
        match self.0.checked_add(GRANULE_SIZE) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// Returns the address `n` granules further on, or `None` on overflow.
    pub const fn add_granules(self, n: u64) -> Option<Self> {
        let Some(bytes) = n.checked_mul(GRANULE_SIZE) else {
            return None;
        };
        match self.0.checked_add(bytes) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// Returns the granule frame number (`addr >> 12`).
    pub const fn granule_number(self) -> u64 {
        self.0 >> GRANULE_SHIFT
    }
}

impl fmt::Debug for Pa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pa({:#x})", self.0)
    }
}

impl fmt::Display for Pa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::LowerHex for Pa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(Pa::new(0x1000).next_granule(), Some(Pa::new(0x2000)));
        assert_eq!(Pa::new(0xFFFF_FFFF_FFFF_F000u64).next_granule(), None);
        assert_eq!(Pa::new(0).add_granules(u64::MAX), None);
        assert_eq!(Pa::new(0x1000).add_granules(2), Some(Pa::new(0x3000)));
        assert!(Pa::new(0x4000_0000).is_aligned_to(1 << 30));
        assert!(!Pa::new(0x4000_1000).is_aligned_to(1 << 30));
        assert!(!Pa::new(0x10).is_granule_aligned());
        assert_eq!(Pa::new(0x8000_0000).granule_number(), 0x80000);
    }

    #[test]
    fn formats_as_hex() {
        extern crate std;
        use std::format;
        assert_eq!(format!("{}", Pa::new(0x8000_0000)), "0x80000000");
        assert_eq!(format!("{:?}", Pa::new(0x10)), "Pa(0x10)");
    }
}
