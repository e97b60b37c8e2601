//! The split virtqueue (virtio 1.x §2.7) as a device sees it: descriptor table, driver
//! ("available") ring and device ("used") ring in guest memory, reached only through
//! [`GuestDma`].
//!
//! Everything in guest memory is untrusted. [`Virtqueue::pop`] walks one descriptor chain and
//! refuses, with a [`QueueError`], a driver index that moved more than the queue size, head
//! or `next` indices outside the table, chains longer than the queue (which is how a loop
//! shows), indirect tables that are empty, not whole descriptors, larger than the queue,
//! nested, combined with `NEXT` or not negotiated, device-readable descriptors after
//! device-writable ones, buffers whose end wraps or whose total exceeds `u32::MAX`, and any
//! ring or table that is not in shared memory. Buffer addresses are not checked until the
//! device uses them (through [`Chain::read`] and [`Chain::write`]), so a buffer outside the
//! shared set is an error at that point, never an access.

use crate::devices::{DmaError, GuestDma};
use alloc::vec::Vec;

/// `VIRTQ_DESC_F_NEXT`: the chain continues at `next`.
pub const DESC_F_NEXT: u16 = 1;
/// `VIRTQ_DESC_F_WRITE`: the buffer is device-writable.
pub const DESC_F_WRITE: u16 = 2;
/// `VIRTQ_DESC_F_INDIRECT`: the buffer is a table of descriptors.
pub const DESC_F_INDIRECT: u16 = 4;
/// `VIRTQ_AVAIL_F_NO_INTERRUPT`: the driver does not want used-buffer notifications.
pub const AVAIL_F_NO_INTERRUPT: u16 = 1;
/// Size of one descriptor.
pub const DESC_SIZE: u64 = 16;

/// Why a queue cannot be used (the device then needs a reset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// A ring, table or buffer is not in memory the realm shares with the host.
    Dma(DmaError),
    /// The driver's index moved more than the queue size past what the device consumed.
    AvailIndex {
        /// Entries the device consumed so far (mod 2^16).
        consumed: u16,
        /// The driver's index.
        idx: u16,
    },
    /// A head index in the driver ring is outside the descriptor table.
    HeadIndex(u16),
    /// A `next` index is outside its table.
    NextIndex(u16),
    /// A chain visits more descriptors than its table holds (a loop, or simply too long).
    ChainTooLong,
    /// A buffer's end wraps around the address space, or the chain's total length exceeds
    /// `u32::MAX`.
    LengthOverflow,
    /// An indirect descriptor although `VIRTIO_F_INDIRECT_DESC` was not negotiated.
    IndirectNotNegotiated,
    /// An indirect descriptor inside an indirect table.
    NestedIndirect,
    /// An indirect descriptor with `NEXT` set.
    IndirectWithNext,
    /// An indirect table that is empty, not a whole number of descriptors, or larger than
    /// the queue.
    BadIndirectTable {
        /// Its length in bytes.
        len: u32,
    },
    /// A device-readable descriptor after a device-writable one.
    ReadableAfterWritable,
    /// A request is shorter than its format needs (device-specific parsing).
    Malformed(&'static str),
    /// The queue is not enabled.
    NotReady,
}

impl From<DmaError> for QueueError {
    fn from(e: DmaError) -> Self {
        Self::Dma(e)
    }
}

impl core::fmt::Display for QueueError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Dma(DmaError::NotShared { ipa }) => {
                write!(f, "IPA {ipa:#x} is not memory the realm shares")
            }
            Self::Dma(DmaError::Overflow) => write!(f, "a DMA range wraps"),
            Self::AvailIndex { consumed, idx } => write!(
                f,
                "the driver index {idx} is more than the queue size past {consumed}"
            ),
            Self::HeadIndex(i) => write!(f, "head index {i} outside the descriptor table"),
            Self::NextIndex(i) => write!(f, "next index {i} outside its table"),
            Self::ChainTooLong => write!(f, "a descriptor chain loops or is too long"),
            Self::LengthOverflow => write!(f, "a buffer length overflows"),
            Self::IndirectNotNegotiated => {
                write!(f, "an indirect descriptor without VIRTIO_F_INDIRECT_DESC")
            }
            Self::NestedIndirect => write!(f, "an indirect descriptor in an indirect table"),
            Self::IndirectWithNext => write!(f, "an indirect descriptor with NEXT"),
            Self::BadIndirectTable { len } => write!(f, "an indirect table of {len} bytes"),
            Self::ReadableAfterWritable => {
                write!(f, "a device-readable buffer after a device-writable one")
            }
            Self::Malformed(what) => write!(f, "malformed request: {what}"),
            Self::NotReady => write!(f, "the queue is not enabled"),
        }
    }
}

/// One buffer of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Guest address (with or without the alias bit).
    pub addr: u64,
    /// Length in bytes.
    pub len: u32,
}

/// One descriptor chain the driver made available: its device-readable buffers, then its
/// device-writable ones, each seen as one stream of bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    /// The head's index (what the used ring reports back).
    pub head: u16,
    /// Device-readable buffers, in order.
    pub readable: Vec<Segment>,
    /// Device-writable buffers, in order.
    pub writable: Vec<Segment>,
}

fn stream_len(segs: &[Segment]) -> u64 {
    segs.iter().map(|s| u64::from(s.len)).sum()
}

/// Calls `f(address, range in the caller's buffer)` for each piece of `[offset, offset +
/// len)` of the stream `segs`.
fn each_piece(
    segs: &[Segment],
    offset: u64,
    len: usize,
    mut f: impl FnMut(u64, core::ops::Range<usize>) -> Result<(), DmaError>,
) -> Result<(), QueueError> {
    let end = offset
        .checked_add(len as u64)
        .ok_or(QueueError::LengthOverflow)?;
    if end > stream_len(segs) {
        return Err(QueueError::Malformed(
            "a buffer is shorter than the request",
        ));
    }
    let mut seg_start = 0u64;
    let mut pos = offset;
    let mut done = 0usize;
    for s in segs {
        let seg_end = seg_start + u64::from(s.len);
        if done < len && (seg_start..seg_end).contains(&pos) {
            let from = pos - seg_start;
            let n = ((seg_end - pos) as usize).min(len - done);
            // `from` is below the segment's length, whose end was checked not to wrap.
            f(s.addr + from, done..done + n)?;
            done += n;
            pos += n as u64;
        }
        seg_start = seg_end;
    }
    Ok(())
}

impl Chain {
    /// Bytes in the device-readable buffers.
    pub fn readable_len(&self) -> u64 {
        stream_len(&self.readable)
    }

    /// Bytes in the device-writable buffers.
    pub fn writable_len(&self) -> u64 {
        stream_len(&self.writable)
    }

    /// Reads `buf.len()` bytes at `offset` of the device-readable stream.
    pub fn read(
        &self,
        dma: &mut dyn GuestDma,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<(), QueueError> {
        each_piece(&self.readable, offset, buf.len(), |addr, r| {
            dma.read(addr, &mut buf[r])
        })
    }

    /// Writes `data` at `offset` of the device-writable stream.
    pub fn write(
        &self,
        dma: &mut dyn GuestDma,
        offset: u64,
        data: &[u8],
    ) -> Result<(), QueueError> {
        each_piece(&self.writable, offset, data.len(), |addr, r| {
            dma.write(addr, &data[r])
        })
    }
}

/// One descriptor as it is in guest memory.
#[derive(Clone, Copy, Debug)]
struct Desc {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

/// A split virtqueue's device-side state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Virtqueue {
    /// The largest size the device allows (a power of two).
    pub max_size: u16,
    /// The size the driver chose (valid once enabled).
    pub size: u16,
    /// Whether the driver enabled it.
    pub ready: bool,
    /// Descriptor table address.
    pub desc_addr: u64,
    /// Driver ring address.
    pub avail_addr: u64,
    /// Device ring address.
    pub used_addr: u64,
    /// Whether `VIRTIO_F_INDIRECT_DESC` was negotiated.
    pub indirect: bool,
    last_avail: u16,
    used_idx: u16,
    /// Used buffers were added since the transport last looked.
    pub(crate) used_added: bool,
}

impl Virtqueue {
    /// A queue in its reset state, at most `max_size` entries (a power of two).
    pub fn new(max_size: u16) -> Self {
        Self {
            max_size,
            size: max_size,
            ready: false,
            desc_addr: 0,
            avail_addr: 0,
            used_addr: 0,
            indirect: false,
            last_avail: 0,
            used_idx: 0,
            used_added: false,
        }
    }

    /// Back to the reset state.
    pub fn reset(&mut self) {
        *self = Self::new(self.max_size);
    }

    /// Whether the driver's configuration can be enabled: a power-of-two size up to the
    /// maximum, and rings aligned as the specification requires (16, 2 and 4 bytes) and not
    /// wrapping around the address space.
    pub fn valid_config(&self) -> bool {
        let n = u64::from(self.size);
        self.size != 0
            && self.size <= self.max_size
            && self.size.is_power_of_two()
            && self.desc_addr % 16 == 0
            && self.avail_addr % 2 == 0
            && self.used_addr % 4 == 0
            && self.desc_addr.checked_add(n * DESC_SIZE).is_some()
            && self.avail_addr.checked_add(6 + 2 * n).is_some()
            && self.used_addr.checked_add(6 + 8 * n).is_some()
    }

    /// Chains the device has taken so far (mod 2^16).
    pub fn consumed(&self) -> u16 {
        self.last_avail
    }

    fn read_u16(dma: &mut dyn GuestDma, addr: u64) -> Result<u16, QueueError> {
        let mut b = [0u8; 2];
        dma.read(addr, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    fn desc(dma: &mut dyn GuestDma, table: u64, index: u16) -> Result<Desc, QueueError> {
        let at = table
            .checked_add(u64::from(index) * DESC_SIZE)
            .ok_or(QueueError::LengthOverflow)?;
        let mut b = [0u8; 16];
        dma.read(at, &mut b)?;
        Ok(Desc {
            addr: u64::from_le_bytes(b[0..8].try_into().unwrap_or_default()),
            len: u32::from_le_bytes(b[8..12].try_into().unwrap_or_default()),
            flags: u16::from_le_bytes([b[12], b[13]]),
            next: u16::from_le_bytes([b[14], b[15]]),
        })
    }

    /// The driver ring's flags.
    pub fn avail_flags(&self, dma: &mut dyn GuestDma) -> Result<u16, QueueError> {
        Self::read_u16(dma, self.avail_addr)
    }

    /// Whether the driver has chains the device has not taken.
    pub fn has_available(&self, dma: &mut dyn GuestDma) -> Result<bool, QueueError> {
        if !self.ready {
            return Ok(false);
        }
        let idx = Self::read_u16(dma, self.avail_addr + 2)?;
        Ok(idx != self.last_avail)
    }

    /// Takes the next available chain, if any.
    pub fn pop(&mut self, dma: &mut dyn GuestDma) -> Result<Option<Chain>, QueueError> {
        if !self.ready {
            return Err(QueueError::NotReady);
        }
        let idx = Self::read_u16(dma, self.avail_addr + 2)?;
        let pending = idx.wrapping_sub(self.last_avail);
        if pending == 0 {
            return Ok(None);
        }
        if pending > self.size {
            return Err(QueueError::AvailIndex {
                consumed: self.last_avail,
                idx,
            });
        }
        let slot = u64::from(self.last_avail % self.size);
        let head = Self::read_u16(dma, self.avail_addr + 4 + 2 * slot)?;
        if head >= self.size {
            return Err(QueueError::HeadIndex(head));
        }
        let chain = self.walk(dma, head)?;
        self.last_avail = self.last_avail.wrapping_add(1);
        Ok(Some(chain))
    }

    fn walk(&self, dma: &mut dyn GuestDma, head: u16) -> Result<Chain, QueueError> {
        let mut chain = Chain {
            head,
            ..Chain::default()
        };
        let mut table = self.desc_addr;
        let mut entries = u32::from(self.size);
        let mut in_indirect = false;
        let mut visited = 0u32;
        let mut index = head;
        let mut total = 0u64;
        loop {
            if visited >= entries {
                return Err(QueueError::ChainTooLong);
            }
            visited += 1;
            let d = Self::desc(dma, table, index)?;
            if d.flags & DESC_F_INDIRECT != 0 {
                if !self.indirect {
                    return Err(QueueError::IndirectNotNegotiated);
                }
                if in_indirect {
                    return Err(QueueError::NestedIndirect);
                }
                if d.flags & DESC_F_NEXT != 0 {
                    return Err(QueueError::IndirectWithNext);
                }
                let n = d.len / DESC_SIZE as u32;
                if d.len == 0 || d.len % DESC_SIZE as u32 != 0 || n > u32::from(self.size) {
                    return Err(QueueError::BadIndirectTable { len: d.len });
                }
                if d.addr.checked_add(u64::from(d.len)).is_none() {
                    return Err(QueueError::LengthOverflow);
                }
                table = d.addr;
                entries = n;
                in_indirect = true;
                visited = 0;
                index = 0;
                continue;
            }
            if d.addr.checked_add(u64::from(d.len)).is_none() {
                return Err(QueueError::LengthOverflow);
            }
            total += u64::from(d.len);
            if total > u64::from(u32::MAX) {
                return Err(QueueError::LengthOverflow);
            }
            let seg = Segment {
                addr: d.addr,
                len: d.len,
            };
            if d.flags & DESC_F_WRITE != 0 {
                chain.writable.push(seg);
            } else if chain.writable.is_empty() {
                chain.readable.push(seg);
            } else {
                return Err(QueueError::ReadableAfterWritable);
            }
            if d.flags & DESC_F_NEXT == 0 {
                return Ok(chain);
            }
            if u32::from(d.next) >= entries {
                return Err(QueueError::NextIndex(d.next));
            }
            index = d.next;
        }
    }

    /// Returns the chain with head `head` to the driver, `len` bytes written into it.
    pub fn push_used(
        &mut self,
        dma: &mut dyn GuestDma,
        head: u16,
        len: u32,
    ) -> Result<(), QueueError> {
        if !self.ready {
            return Err(QueueError::NotReady);
        }
        let slot = u64::from(self.used_idx % self.size);
        let mut elem = [0u8; 8];
        elem[..4].copy_from_slice(&u32::from(head).to_le_bytes());
        elem[4..].copy_from_slice(&len.to_le_bytes());
        dma.write(self.used_addr + 4 + 8 * slot, &elem)?;
        let next = self.used_idx.wrapping_add(1);
        dma.write(self.used_addr + 2, &next.to_le_bytes())?;
        self.used_idx = next;
        self.used_added = true;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::collections::BTreeSet;
    use alloc::vec;

    /// Guest memory for tests: RAM at `base`, of which only `shared` pages may be touched,
    /// with or without `alias`. Every access is logged.
    pub struct FakeDma {
        pub base: u64,
        pub mem: Vec<u8>,
        pub shared: BTreeSet<u64>,
        pub alias: u64,
        pub reads: u64,
        pub writes: u64,
    }

    impl FakeDma {
        /// `pages` pages at `base`, all shared.
        pub fn new(base: u64, pages: u64) -> Self {
            Self {
                base,
                mem: vec![0; (pages * 4096) as usize],
                shared: (0..pages).map(|p| base + p * 4096).collect(),
                alias: 1 << 32,
                reads: 0,
                writes: 0,
            }
        }

        fn check(&self, ipa: u64, len: usize) -> Result<usize, DmaError> {
            let start = ipa & !self.alias;
            let end = start.checked_add(len as u64).ok_or(DmaError::Overflow)?;
            let mut p = start & !0xfff;
            while p < end {
                if !self.shared.contains(&p) {
                    return Err(DmaError::NotShared { ipa: p.max(start) });
                }
                p += 4096;
            }
            Ok((start - self.base) as usize)
        }

        pub fn put(&mut self, ipa: u64, data: &[u8]) {
            let o = (ipa - self.base) as usize;
            self.mem[o..o + data.len()].copy_from_slice(data);
        }

        pub fn get(&self, ipa: u64, len: usize) -> &[u8] {
            let o = (ipa - self.base) as usize;
            &self.mem[o..o + len]
        }

        pub fn u16_at(&self, ipa: u64) -> u16 {
            u16::from_le_bytes(self.get(ipa, 2).try_into().unwrap())
        }

        pub fn u32_at(&self, ipa: u64) -> u32 {
            u32::from_le_bytes(self.get(ipa, 4).try_into().unwrap())
        }
    }

    impl GuestDma for FakeDma {
        fn read(&mut self, ipa: u64, buf: &mut [u8]) -> Result<(), DmaError> {
            let o = self.check(ipa, buf.len())?;
            buf.copy_from_slice(&self.mem[o..o + buf.len()]);
            self.reads += 1;
            Ok(())
        }
        fn write(&mut self, ipa: u64, data: &[u8]) -> Result<(), DmaError> {
            let o = self.check(ipa, data.len())?;
            self.mem[o..o + data.len()].copy_from_slice(data);
            self.writes += 1;
            Ok(())
        }
    }

    /// A driver's view of one split ring in a [`FakeDma`]: descriptor table at `base`, driver
    /// ring after it, device ring on the next page.
    pub struct Driver {
        pub size: u16,
        pub desc: u64,
        pub avail: u64,
        pub used: u64,
        pub avail_idx: u16,
    }

    pub const RAM: u64 = 0x8000_0000;

    impl Driver {
        pub fn new(size: u16, base: u64) -> Self {
            Self {
                size,
                desc: base,
                avail: base + u64::from(size) * 16,
                used: base + 0x1000 * (1 + u64::from(size) * 16 / 0x1000),
                avail_idx: 0,
            }
        }

        pub fn queue(&self, q: &mut Virtqueue) {
            q.size = self.size;
            q.desc_addr = self.desc;
            q.avail_addr = self.avail;
            q.used_addr = self.used;
            q.ready = true;
        }

        pub fn set_desc(
            &self,
            m: &mut FakeDma,
            i: u16,
            addr: u64,
            len: u32,
            flags: u16,
            next: u16,
        ) {
            Self::set_desc_at(m, self.desc, i, addr, len, flags, next);
        }

        pub fn set_desc_at(
            m: &mut FakeDma,
            table: u64,
            i: u16,
            addr: u64,
            len: u32,
            flags: u16,
            next: u16,
        ) {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&addr.to_le_bytes());
            b[8..12].copy_from_slice(&len.to_le_bytes());
            b[12..14].copy_from_slice(&flags.to_le_bytes());
            b[14..].copy_from_slice(&next.to_le_bytes());
            m.put(table + u64::from(i) * 16, &b);
        }

        /// Makes the chain at `head` available.
        pub fn offer(&mut self, m: &mut FakeDma, head: u16) {
            let slot = u64::from(self.avail_idx % self.size);
            m.put(self.avail + 4 + 2 * slot, &head.to_le_bytes());
            self.avail_idx = self.avail_idx.wrapping_add(1);
            m.put(self.avail + 2, &self.avail_idx.to_le_bytes());
        }

        pub fn used_idx(&self, m: &FakeDma) -> u16 {
            m.u16_at(self.used + 2)
        }

        /// `(id, len)` of used entry `n`.
        pub fn used_elem(&self, m: &FakeDma, n: u16) -> (u32, u32) {
            let at = self.used + 4 + 8 * u64::from(n % self.size);
            (m.u32_at(at), m.u32_at(at + 4))
        }
    }

    fn setup(size: u16) -> (FakeDma, Driver, Virtqueue) {
        let m = FakeDma::new(RAM, 16);
        let d = Driver::new(size, RAM);
        let mut q = Virtqueue::new(size);
        d.queue(&mut q);
        (m, d, q)
    }

    const BUF: u64 = RAM + 0x8000;

    #[test]
    fn a_chain_is_read_in_order_and_returned() {
        let (mut m, mut d, mut q) = setup(8);
        d.set_desc(&mut m, 3, BUF, 16, DESC_F_NEXT, 5);
        d.set_desc(&mut m, 5, BUF + 0x100, 512, DESC_F_NEXT | DESC_F_WRITE, 1);
        d.set_desc(&mut m, 1, BUF + 0x400, 1, DESC_F_WRITE, 0);
        assert_eq!(q.pop(&mut m).unwrap(), None, "nothing offered yet");
        d.offer(&mut m, 3);
        assert!(q.has_available(&mut m).unwrap());
        let c = q.pop(&mut m).unwrap().unwrap();
        assert_eq!(c.head, 3);
        assert_eq!(c.readable, [Segment { addr: BUF, len: 16 }]);
        assert_eq!(
            c.writable,
            [
                Segment {
                    addr: BUF + 0x100,
                    len: 512
                },
                Segment {
                    addr: BUF + 0x400,
                    len: 1
                }
            ]
        );
        assert_eq!((c.readable_len(), c.writable_len()), (16, 513));
        assert_eq!(q.pop(&mut m).unwrap(), None);
        q.push_used(&mut m, c.head, 513).unwrap();
        assert_eq!(d.used_idx(&m), 1);
        assert_eq!(d.used_elem(&m, 0), (3, 513));
        assert!(q.used_added);
        assert_eq!(q.consumed(), 1);
    }

    #[test]
    fn streams_span_segments() {
        let (mut m, _, _) = setup(8);
        let c = Chain {
            head: 0,
            readable: vec![
                Segment { addr: BUF, len: 3 },
                Segment {
                    addr: BUF + 0x10,
                    len: 0,
                },
                Segment {
                    addr: BUF + 0x20,
                    len: 5,
                },
            ],
            writable: vec![
                Segment {
                    addr: BUF + 0x100,
                    len: 2,
                },
                Segment {
                    addr: BUF + 0x200,
                    len: 4,
                },
            ],
        };
        m.put(BUF, b"abc");
        m.put(BUF + 0x20, b"defgh");
        let mut b = [0u8; 6];
        c.read(&mut m, 1, &mut b).unwrap();
        assert_eq!(&b, b"bcdefg");
        assert!(c.read(&mut m, 3, &mut [0u8; 6]).is_err(), "past the end");
        c.write(&mut m, 1, b"WXYZ").unwrap();
        assert_eq!(m.get(BUF + 0x100, 2), b"\0W");
        assert_eq!(m.get(BUF + 0x200, 4), b"XYZ\0");
        assert!(c.write(&mut m, 0, &[0; 7]).is_err());
        assert_eq!(
            c.read(&mut m, u64::MAX, &mut [0u8; 2]),
            Err(QueueError::LengthOverflow)
        );
        c.read(&mut m, 8, &mut []).unwrap();
    }

    #[test]
    fn alias_addresses_and_wrapping_indices() {
        let (mut m, mut d, mut q) = setup(4);
        // The rings at their alias (as newer Linux passes them).
        q.desc_addr |= m.alias;
        q.avail_addr |= m.alias;
        q.used_addr |= m.alias;
        let alias = m.alias;
        for round in 0..70_000u32 {
            let i = (round % 4) as u16;
            d.set_desc(&mut m, i, BUF | alias, 4, DESC_F_WRITE, 0);
            d.offer(&mut m, i);
            let c = q.pop(&mut m).unwrap().unwrap();
            assert_eq!(c.head, i);
            c.write(&mut m, 0, &round.to_le_bytes()).unwrap();
            q.push_used(&mut m, c.head, 4).unwrap();
        }
        assert_eq!(d.used_idx(&m), (70_000u32 % 65536) as u16);
        assert_eq!(m.u32_at(BUF), 69_999);
    }

    #[test]
    fn indirect_tables() {
        let (mut m, mut d, mut q) = setup(8);
        let table = RAM + 0x6000;
        Driver::set_desc_at(&mut m, table, 0, BUF, 16, DESC_F_NEXT, 2);
        Driver::set_desc_at(&mut m, table, 2, BUF + 0x100, 8, DESC_F_WRITE, 0);
        d.set_desc(&mut m, 0, table, 3 * 16, DESC_F_INDIRECT, 0);
        d.offer(&mut m, 0);
        assert_eq!(q.pop(&mut m), Err(QueueError::IndirectNotNegotiated));
        let (mut m2, mut d2, mut q2) = setup(8);
        q2.indirect = true;
        m2.mem.copy_from_slice(&m.mem);
        d2.offer(&mut m2, 0);
        let c = q2.pop(&mut m2).unwrap().unwrap();
        assert_eq!(c.readable.len(), 1);
        assert_eq!(
            c.writable,
            [Segment {
                addr: BUF + 0x100,
                len: 8
            }]
        );
        let _ = d;
    }

    /// Sets up a queue with indirect descriptors negotiated, lets `build` write descriptors,
    /// offers head 0 and returns what `pop` says.
    fn pop_with(build: impl FnOnce(&mut FakeDma, &Driver)) -> Result<Option<Chain>, QueueError> {
        let (mut m, mut d, mut q) = setup(8);
        q.indirect = true;
        build(&mut m, &d);
        d.offer(&mut m, 0);
        q.pop(&mut m)
    }

    #[test]
    fn every_malformed_ring_is_refused() {
        let table = RAM + 0x6000;
        // A loop: 0 -> 1 -> 0.
        assert_eq!(
            pop_with(|m, d| {
                d.set_desc(m, 0, BUF, 1, DESC_F_NEXT, 1);
                d.set_desc(m, 1, BUF, 1, DESC_F_NEXT, 0);
            }),
            Err(QueueError::ChainTooLong)
        );
        // A self loop.
        assert_eq!(
            pop_with(|m, d| d.set_desc(m, 0, BUF, 1, DESC_F_NEXT, 0)),
            Err(QueueError::ChainTooLong)
        );
        // A loop inside an indirect table.
        assert_eq!(
            pop_with(|m, d| {
                Driver::set_desc_at(m, table, 0, BUF, 1, DESC_F_NEXT, 1);
                Driver::set_desc_at(m, table, 1, BUF, 1, DESC_F_NEXT, 0);
                d.set_desc(m, 0, table, 32, DESC_F_INDIRECT, 0);
            }),
            Err(QueueError::ChainTooLong)
        );
        // next outside the table, direct and indirect.
        assert_eq!(
            pop_with(|m, d| d.set_desc(m, 0, BUF, 1, DESC_F_NEXT, 8)),
            Err(QueueError::NextIndex(8))
        );
        assert_eq!(
            pop_with(|m, d| {
                Driver::set_desc_at(m, table, 0, BUF, 1, DESC_F_NEXT, 2);
                d.set_desc(m, 0, table, 32, DESC_F_INDIRECT, 0);
            }),
            Err(QueueError::NextIndex(2))
        );
        // Lengths that overflow: a buffer wrapping the address space, a total beyond u32.
        assert_eq!(
            pop_with(|m, d| d.set_desc(m, 0, u64::MAX - 2, 4, 0, 0)),
            Err(QueueError::LengthOverflow)
        );
        assert_eq!(
            pop_with(|m, d| {
                d.set_desc(m, 0, BUF, u32::MAX, DESC_F_NEXT, 1);
                d.set_desc(m, 1, BUF, 1, 0, 0);
            }),
            Err(QueueError::LengthOverflow)
        );
        assert_eq!(
            pop_with(|m, d| d.set_desc(m, 0, u64::MAX - 15, 32, DESC_F_INDIRECT, 0)),
            Err(QueueError::LengthOverflow)
        );
        // Indirect misuse.
        for len in [0, 17, 9 * 16] {
            assert_eq!(
                pop_with(|m, d| d.set_desc(m, 0, table, len, DESC_F_INDIRECT, 0)),
                Err(QueueError::BadIndirectTable { len })
            );
        }
        assert_eq!(
            pop_with(|m, d| {
                d.set_desc(m, 0, table, 16, DESC_F_INDIRECT | DESC_F_NEXT, 1);
            }),
            Err(QueueError::IndirectWithNext)
        );
        assert_eq!(
            pop_with(|m, d| {
                Driver::set_desc_at(m, table, 0, table, 16, DESC_F_INDIRECT, 0);
                d.set_desc(m, 0, table, 16, DESC_F_INDIRECT, 0);
            }),
            Err(QueueError::NestedIndirect)
        );
        // Readable after writable.
        assert_eq!(
            pop_with(|m, d| {
                d.set_desc(m, 0, BUF, 1, DESC_F_WRITE | DESC_F_NEXT, 1);
                d.set_desc(m, 1, BUF, 1, 0, 0);
            }),
            Err(QueueError::ReadableAfterWritable)
        );
        // An indirect table outside shared memory.
        assert_eq!(
            pop_with(|m, d| d.set_desc(m, 0, RAM + 0x10_0000, 16, DESC_F_INDIRECT, 0)),
            Err(QueueError::Dma(DmaError::NotShared {
                ipa: RAM + 0x10_0000
            }))
        );
        // A chain of exactly the queue size is fine, the same chain in a smaller queue is not.
        assert!(pop_with(|m, d| {
            for i in 0..8 {
                d.set_desc(m, i, BUF, 1, if i < 7 { DESC_F_NEXT } else { 0 }, i + 1);
            }
        })
        .unwrap()
        .is_some_and(|c| c.readable.len() == 8));
    }

    #[test]
    fn bad_driver_ring_indices() {
        let (mut m, d, mut q) = setup(8);
        m.put(d.avail + 2, &9u16.to_le_bytes());
        assert_eq!(
            q.pop(&mut m),
            Err(QueueError::AvailIndex {
                consumed: 0,
                idx: 9
            })
        );
        let (mut m, mut d, mut q) = setup(8);
        d.offer(&mut m, 8);
        assert_eq!(q.pop(&mut m), Err(QueueError::HeadIndex(8)));
        let (mut m, mut d, mut q) = setup(8);
        d.offer(&mut m, 0xffff);
        assert_eq!(q.pop(&mut m), Err(QueueError::HeadIndex(0xffff)));
    }

    #[test]
    fn rings_and_buffers_outside_shared_memory() {
        let (mut m, mut d, mut q) = setup(8);
        d.set_desc(&mut m, 0, BUF, 8, DESC_F_WRITE, 0);
        d.offer(&mut m, 0);
        // The device ring's page is taken back by the realm.
        m.shared.remove(&d.used);
        let c = q.pop(&mut m).unwrap().unwrap();
        assert_eq!(
            q.push_used(&mut m, c.head, 0),
            Err(QueueError::Dma(DmaError::NotShared { ipa: d.used + 4 }))
        );
        // The buffer itself: refused when used, nothing written.
        m.shared.remove(&BUF);
        let before = m.writes;
        assert_eq!(
            c.write(&mut m, 0, &[1; 8]),
            Err(QueueError::Dma(DmaError::NotShared { ipa: BUF }))
        );
        assert_eq!(m.writes, before);
        // Rings in protected memory or MMIO (not shared) from the start.
        let mut q2 = Virtqueue::new(8);
        q2.ready = true;
        q2.size = 8;
        q2.avail_addr = 0x0900_0000;
        assert!(matches!(q2.pop(&mut m), Err(QueueError::Dma(_))));
        let mut q3 = Virtqueue::new(8);
        assert_eq!(q3.pop(&mut m), Err(QueueError::NotReady));
        assert_eq!(q3.push_used(&mut m, 0, 0), Err(QueueError::NotReady));
        assert!(!q3.has_available(&mut m).unwrap());
    }

    #[test]
    fn queue_configuration_checks() {
        let mut q = Virtqueue::new(128);
        assert!(q.valid_config());
        for (size, ok) in [(0, false), (3, false), (64, true), (256, false)] {
            q.size = size;
            assert_eq!(q.valid_config(), ok, "size {size}");
        }
        q.size = 64;
        q.desc_addr = 8;
        assert!(!q.valid_config(), "descriptor table alignment");
        q.desc_addr = 0;
        q.avail_addr = 1;
        assert!(!q.valid_config());
        q.avail_addr = 0;
        q.used_addr = 2;
        assert!(!q.valid_config());
        q.used_addr = u64::MAX - 3;
        assert!(!q.valid_config(), "wraps");
        q.used_addr = 0;
        q.ready = true;
        q.reset();
        assert_eq!(q, Virtqueue::new(128));
    }

    mod random {
        use super::*;
        use proptest::prelude::*;

        /// Scribbles of a hostile driver: `(offset into the ring pages, bytes)`.
        fn scribble() -> impl Strategy<Value = (u16, Vec<u8>)> {
            (0u16..0x3000, proptest::collection::vec(any::<u8>(), 1..64))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Whatever the driver leaves in its descriptor table, driver ring and indirect
            /// tables (random bytes over plausible chains), `pop` never panics, never hands
            /// out more chains than the driver ring's index says, and every chain it returns
            /// is well formed: head in range, at most the queue size of descriptors per
            /// table, readable before writable, lengths that neither wrap nor pass 4 GiB.
            #[test]
            fn random_rings_give_well_formed_chains_or_errors(
                size_log in 0u32..6,
                indirect in any::<bool>(),
                descs in proptest::collection::vec(
                    (0u64..0x1_0000, any::<u32>(), 0u16..8, 0u16..40), 0..40),
                heads in proptest::collection::vec(0u16..40, 0..40),
                avail_idx in any::<u16>(),
                scribbles in proptest::collection::vec(scribble(), 0..8),
                unshared in proptest::collection::vec(0u64..16, 0..3),
            ) {
                let size = 1u16 << size_log;
                let (mut m, mut d, mut q) = setup(size);
                q.indirect = indirect;
                for (i, &(off, len, flags, next)) in descs.iter().enumerate() {
                    // Descriptor i of the ring (i < size) or of an indirect table at BUF.
                    let (table, at) = if (i as u16) < size {
                        (d.desc, i as u16)
                    } else {
                        (BUF, i as u16 - size)
                    };
                    let addr = if off & 1 == 0 { BUF + off } else { off << 20 };
                    let len = if flags & DESC_F_INDIRECT != 0 { len % 0x400 } else { len };
                    Driver::set_desc_at(&mut m, table, at, addr, len, flags, next);
                }
                for &h in &heads {
                    d.offer(&mut m, h);
                }
                m.put(d.avail + 2, &avail_idx.to_le_bytes());
                for (off, bytes) in &scribbles {
                    let at = RAM + u64::from(*off);
                    m.put(at, bytes);
                }
                for p in &unshared {
                    m.shared.remove(&(RAM + p * 4096));
                }
                let pending = avail_idx;
                let mut popped = 0u32;
                for _ in 0..2 * u32::from(size) + 2 {
                    match q.pop(&mut m) {
                        Ok(None) | Err(_) => break,
                        Ok(Some(c)) => {
                            popped += 1;
                            prop_assert!(c.head < size);
                            prop_assert!(c.readable.len() + c.writable.len() <= 2 * usize::from(size));
                            let total = stream_len(&c.readable) + stream_len(&c.writable);
                            prop_assert!(total <= u64::from(u32::MAX));
                            for s in c.readable.iter().chain(&c.writable) {
                                prop_assert!(s.addr.checked_add(u64::from(s.len)).is_some());
                            }
                            // The used ring may be unshared too: an error, not a panic.
                            let _ = q.push_used(&mut m, c.head, 0);
                        }
                    }
                }
                prop_assert!(popped <= u32::from(pending), "{popped} chains, index {pending}");
                prop_assert!(popped <= u32::from(size), "more than a ring of chains at once");
            }
        }
    }
}
