//! Statics handed out once as `&'static mut`, for memory the firmware owns exclusively after
//! boot (translation tables, granule protection tables).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// A value that can be borrowed mutably exactly once, for the rest of the program.
pub struct TakeOnce<T> {
    value: UnsafeCell<T>,
    taken: AtomicBool,
}

// SAFETY: the value is only reachable through `take`, which hands out at most one reference
// over the program's lifetime, so there is never shared access from two CPUs.
unsafe impl<T: Send> Sync for TakeOnce<T> {}

impl<T> TakeOnce<T> {
    /// Wraps a value.
    pub const fn new(value: T) -> Self {
        Self {
            value: UnsafeCell::new(value),
            taken: AtomicBool::new(false),
        }
    }

    /// Returns the only mutable reference to the value, or `None` if it was taken before.
    // `taken` makes this the only reference ever created, which is what makes it sound.
    #[allow(clippy::mut_from_ref)]
    pub fn take(&'static self) -> Option<&'static mut T> {
        if self.taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: `taken` guarantees this is the first and only time a reference is created.
        Some(unsafe { &mut *self.value.get() })
    }

    /// The address of the value (e.g. a table's physical address in an identity map).
    pub fn addr(&self) -> usize {
        self.value.get() as usize
    }
}
