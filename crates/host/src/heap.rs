//! The host's heap: a linked-list allocator over a static region of the image, for the VMM's
//! objects (vCPUs, page states, the device bus, the device tree it generates).
//!
//! The region is uninitialised memory in its own `.heap` section, after `.bss`, which the
//! entry code does not zero: zeroing 8 MiB with the MMU off (Device memory, one 16-byte
//! store per iteration) was most of the time from EL3's entry into the host to the host's
//! first line. The allocator never assumes zeroed memory, and `alloc_zeroed` zeroes.

use core::mem::MaybeUninit;
use linked_list_allocator::LockedHeap;

/// Size of the heap.
const HEAP_SIZE: usize = 8 << 20;

#[repr(C, align(4096))]
struct HeapMemory(MaybeUninit<[u8; HEAP_SIZE]>);

#[unsafe(link_section = ".heap")]
static mut HEAP_MEMORY: HeapMemory = HeapMemory(MaybeUninit::uninit());

#[global_allocator]
static ALLOCATOR: LockedHeap = LockedHeap::empty();

/// Hands the heap region to the allocator. Called once, on the boot CPU, before anything
/// allocates.
pub fn init() {
    // SAFETY: called once before any allocation; the static region is used by nothing but
    // the allocator from here on, and taking its address does not create a reference.
    unsafe {
        ALLOCATOR
            .lock()
            .init((&raw mut HEAP_MEMORY).cast::<u8>(), HEAP_SIZE);
    }
}
