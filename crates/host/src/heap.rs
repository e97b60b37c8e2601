//! The host's heap: a linked-list allocator over a static region of the image's `.bss`, for
//! the VMM's objects (vCPUs, page states, the device bus, the device tree it generates).

use linked_list_allocator::LockedHeap;

/// Size of the heap.
const HEAP_SIZE: usize = 8 << 20;

#[repr(C, align(4096))]
struct HeapMemory([u8; HEAP_SIZE]);

static mut HEAP_MEMORY: HeapMemory = HeapMemory([0; HEAP_SIZE]);

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
