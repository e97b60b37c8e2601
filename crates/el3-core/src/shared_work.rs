//! Work that any CPU may help with: a byte range cut into chunks that CPUs take one at a
//! time ([`Chunks`]). EL3's boot uses it to clear the host's load window: the boot CPU takes
//! chunks while it waits for the RMM's measurement, the boot helper after hashing the host's
//! image, and whichever CPU enters the host first finishes what is left and waits for the
//! chunks others are still clearing.

use core::ops::Range;
use core::sync::atomic::{AtomicUsize, Ordering};

/// A range of `len` bytes from `start` in chunks of `chunk` bytes (the last one shorter).
/// Each chunk is handed out once ([`Chunks::take`]); its taker reports it done
/// ([`Chunks::done`]).
#[derive(Debug)]
pub struct Chunks {
    start: usize,
    len: usize,
    chunk: usize,
    count: usize,
    next: AtomicUsize,
    finished: AtomicUsize,
}

impl Chunks {
    /// `[start, start + len)` in chunks of `chunk` bytes (`chunk` 0 is taken as one chunk
    /// for the whole range). Fails if the range overflows the address space.
    pub fn new(start: usize, len: usize, chunk: usize) -> Option<Self> {
        start.checked_add(len)?;
        let chunk = if chunk == 0 { len.max(1) } else { chunk };
        Some(Self {
            start,
            len,
            chunk,
            count: len.div_ceil(chunk),
            next: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
        })
    }

    /// The number of chunks.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The next chunk nobody has taken (its byte range), or `None` when all are taken.
    pub fn take(&self) -> Option<Range<usize>> {
        // Bounded: `next` stops one past `count` for every CPU that looks once it is there.
        let i = self
            .next
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |i| {
                (i < self.count).then_some(i + 1)
            })
            .ok()?;
        let from = self.start + i * self.chunk;
        let to = self.start + self.len.min((i + 1) * self.chunk);
        Some(from..to)
    }

    /// Reports a taken chunk done.
    pub fn done(&self) {
        self.finished.fetch_add(1, Ordering::Release);
    }

    /// True once every chunk is reported done.
    pub fn all_done(&self) -> bool {
        self.finished.load(Ordering::Acquire) >= self.count
    }

    /// Takes and does chunks with `work` until none is left or `stop` says so (asked before
    /// each chunk); returns how many this caller did.
    pub fn help(&self, mut work: impl FnMut(Range<usize>), stop: impl Fn() -> bool) -> usize {
        let mut n = 0;
        while !stop() {
            let Some(r) = self.take() else {
                break;
            };
            work(r);
            self.done();
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::sync::Arc;
    use std::vec::Vec;

    #[test]
    fn chunks_cover_the_range_once() {
        let c = Chunks::new(0x1000, 10_000, 4096).unwrap();
        assert_eq!(c.count(), 3);
        assert_eq!(c.take(), Some(0x1000..0x2000));
        assert_eq!(c.take(), Some(0x2000..0x3000));
        assert_eq!(c.take(), Some(0x3000..0x1000 + 10_000));
        assert_eq!(c.take(), None);
        assert_eq!(c.take(), None);
        assert!(!c.all_done());
        (0..3).for_each(|_| c.done());
        assert!(c.all_done());
    }

    #[test]
    fn empty_and_odd_ranges() {
        let c = Chunks::new(0, 0, 4096).unwrap();
        assert_eq!(c.count(), 0);
        assert_eq!(c.take(), None);
        assert!(c.all_done());
        let c = Chunks::new(8, 100, 0).unwrap();
        assert_eq!(c.take(), Some(8..108));
        assert_eq!(c.take(), None);
        assert!(Chunks::new(usize::MAX - 4, 8, 4).is_none());
    }

    #[test]
    fn help_stops_when_asked() {
        let c = Chunks::new(0, 64, 8).unwrap();
        let mut seen = Vec::new();
        assert_eq!(c.help(|r| seen.push(r), || false), 8);
        assert_eq!(seen.first(), Some(&(0..8)));
        assert!(c.all_done());
        let c = Chunks::new(0, 64, 8).unwrap();
        let count = core::cell::Cell::new(0);
        let n = c.help(|_| count.set(count.get() + 1), || count.get() == 3);
        assert_eq!(n, 3);
        assert!(!c.all_done());
        assert_eq!(c.help(|_| {}, || false), 5);
        assert!(c.all_done());
    }

    #[test]
    fn cpus_helping_at_once_do_each_chunk_once() {
        let c = Arc::new(Chunks::new(0, 1 << 20, 4096).unwrap());
        let hits: Arc<Vec<AtomicUsize>> = Arc::new((0..256).map(|_| AtomicUsize::new(0)).collect());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (c, hits) = (c.clone(), hits.clone());
                std::thread::spawn(move || {
                    c.help(
                        |r| {
                            hits[r.start / 4096].fetch_add(1, Ordering::Relaxed);
                        },
                        || false,
                    )
                })
            })
            .collect();
        let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(total, 256);
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        assert!(c.all_done());
    }
}
