//! Where things sit in the host machine's memory when the host runs a launch: the contract
//! between the launcher (which tells QEMU what to load where and how much DRAM to give) and
//! the bare-metal host.
//!
//! | host PA | what |
//! |---|---|
//! | `0x4000_0000` | DRAM base (QEMU `virt`): its device tree, then EL3's Realm carve-out for the RMM |
//! | [`LAUNCH_PAGE`] | the launch description page |
//! | [`FILES_BASE`]..[`FILES_END`] | the files it names (kernel, initrd, firmware), 4 KiB aligned |
//! | `0x6000_0000` | the host image (16 MiB) |
//! | [`POOL_BASE`]..end of DRAM | the granule pool the VM is built from |

/// DRAM base on QEMU `virt`.
pub const DRAM_BASE: u64 = 0x4000_0000;
/// The launch description page.
pub const LAUNCH_PAGE: u64 = 0x4200_0000;
/// The first file goes here (2 MiB aligned).
pub const FILES_BASE: u64 = 0x4220_0000;
/// Files must end at or below this (the host image starts here).
pub const FILES_END: u64 = 0x6000_0000;
/// The VM's pool starts after the host image.
pub const POOL_BASE: u64 = 0x6100_0000;
/// Host memory a VM needs beyond its RAM (RD, RTTs, RECs and their auxiliary granules, run
/// pages, the device tree, alignment).
pub const VM_OVERHEAD: u64 = 32 << 20;
/// The least DRAM EL3 accepts.
pub const MIN_DRAM: u64 = 1 << 30;

/// The DRAM size (bytes) QEMU must give the machine for a guest with `ram` bytes of RAM:
/// the pool above [`POOL_BASE`] holds RAM plus [`VM_OVERHEAD`], rounded up to 64 MiB, and
/// never less than [`MIN_DRAM`]. `None` if it overflows.
pub fn machine_dram(ram: u64) -> Option<u64> {
    let top = POOL_BASE.checked_add(ram)?.checked_add(VM_OVERHEAD)?;
    let size = (top - DRAM_BASE).checked_add((64 << 20) - 1)? & !((64 << 20) - 1);
    Some(size.max(MIN_DRAM))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dram_for_a_guest() {
        assert_eq!(machine_dram(256 << 20), Some(MIN_DRAM));
        assert_eq!(machine_dram(1 << 30), Some(1600 << 20));
        assert_eq!(machine_dram(u64::MAX), None);
        const {
            assert!(
                FILES_BASE > LAUNCH_PAGE && FILES_END <= 0x6000_0000 && POOL_BASE >= 0x6100_0000
            )
        };
    }
}
