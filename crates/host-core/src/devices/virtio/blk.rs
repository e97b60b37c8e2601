//! virtio-blk (virtio 1.x §5.2) over a [`BlockBackend`]: reads, writes, flushes and the
//! device ID, one request queue.
//!
//! Offered features: `SEG_MAX` (queue size − 2 segments), `BLK_SIZE` (512), `FLUSH`, and `RO`
//! for a read-only backend. A request's header is the first 16 device-readable bytes and its
//! status the last device-writable byte, whatever the descriptor layout. Requests the device
//! can answer are answered: a sector range beyond the disk, a length that is not whole
//! sectors, a write to a read-only disk or a failing backend give `VIRTIO_BLK_S_IOERR`, an
//! unknown type `VIRTIO_BLK_S_UNSUPP`. A chain without room for the header or the status,
//! or with a buffer outside shared memory, cannot be answered: the device needs a reset.

use super::queue::{Chain, QueueError, Virtqueue};
use super::{device_type, DeviceStats, VirtioDevice};
use crate::devices::{DeviceCtx, GuestDma};
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

/// Bytes per sector.
pub const SECTOR: u64 = 512;
/// `VIRTIO_BLK_F_SEG_MAX`.
pub const F_SEG_MAX: u64 = 1 << 2;
/// `VIRTIO_BLK_F_RO`.
pub const F_RO: u64 = 1 << 5;
/// `VIRTIO_BLK_F_BLK_SIZE`.
pub const F_BLK_SIZE: u64 = 1 << 6;
/// `VIRTIO_BLK_F_FLUSH`.
pub const F_FLUSH: u64 = 1 << 9;

/// Request types.
pub mod req {
    /// Read.
    pub const IN: u32 = 0;
    /// Write.
    pub const OUT: u32 = 1;
    /// Make earlier writes durable.
    pub const FLUSH: u32 = 4;
    /// The device's ID string (20 bytes).
    pub const GET_ID: u32 = 8;
}

/// Request status values.
pub mod status {
    /// Done.
    pub const OK: u8 = 0;
    /// Failed.
    pub const IOERR: u8 = 1;
    /// Not supported.
    pub const UNSUPP: u8 = 2;
}

/// The queue size the device offers.
pub const QUEUE_SIZE: u16 = 128;
/// Segments a request may have besides its header and status.
pub const SEG_MAX: u32 = QUEUE_SIZE as u32 - 2;
/// Length of the ID string.
pub const ID_LEN: usize = 20;
/// Bytes moved per backend call.
const CHUNK: usize = 64 << 10;

/// A backend failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockError;

/// Where a disk's bytes live.
pub trait BlockBackend {
    /// Its size in bytes (a multiple of [`SECTOR`]).
    fn len(&self) -> u64;
    /// True when it has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether it refuses writes.
    fn read_only(&self) -> bool;
    /// Reads `buf.len()` bytes at byte `offset` (inside the disk).
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError>;
    /// Writes `data` at byte `offset` (inside the disk; never called when read-only).
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError>;
    /// Makes every completed write durable.
    fn flush(&mut self) -> Result<(), BlockError>;
}

/// A disk in a vector (tests, and a model of what a flush must keep).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VecDisk {
    /// The bytes as the guest sees them.
    pub data: Vec<u8>,
    /// The bytes as of the last flush.
    pub durable: Vec<u8>,
    /// Refuses writes.
    pub read_only: bool,
    /// Makes every backend call fail.
    pub broken: bool,
}

impl VecDisk {
    /// A disk holding `data`.
    pub fn new(data: Vec<u8>, read_only: bool) -> Self {
        Self {
            durable: data.clone(),
            data,
            read_only,
            broken: false,
        }
    }
}

impl BlockBackend for VecDisk {
    fn len(&self) -> u64 {
        self.data.len() as u64
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let o = usize::try_from(offset).map_err(|_| BlockError)?;
        let src = self
            .data
            .get(o..o.checked_add(buf.len()).ok_or(BlockError)?)
            .filter(|_| !self.broken)
            .ok_or(BlockError)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError> {
        let o = usize::try_from(offset).map_err(|_| BlockError)?;
        if self.read_only || self.broken {
            return Err(BlockError);
        }
        self.data
            .get_mut(o..o.checked_add(data.len()).ok_or(BlockError)?)
            .ok_or(BlockError)?
            .copy_from_slice(data);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        if self.broken {
            return Err(BlockError);
        }
        self.durable.clone_from(&self.data);
        Ok(())
    }
}

/// Which chunks of a disk were written since the last flush, for backends that keep the
/// disk in memory and write it back on flush.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirtyChunks {
    chunk: u64,
    len: u64,
    bits: Vec<u64>,
}

impl DirtyChunks {
    /// Nothing dirty on a disk of `len` bytes tracked in chunks of `chunk` bytes (non-zero).
    pub fn new(len: u64, chunk: u64) -> Self {
        let chunk = chunk.max(1);
        let n = len.div_ceil(chunk).div_ceil(64);
        Self {
            chunk,
            len,
            bits: vec![0; usize::try_from(n).unwrap_or(0)],
        }
    }

    /// Marks `[offset, offset + len)` (clipped to the disk) dirty.
    pub fn mark(&mut self, offset: u64, len: u64) {
        let end = offset.saturating_add(len).min(self.len);
        if offset >= end {
            return;
        }
        for c in offset / self.chunk..=(end - 1) / self.chunk {
            if let Some(w) = self.bits.get_mut((c / 64) as usize) {
                *w |= 1 << (c % 64);
            }
        }
    }

    fn is_dirty(&self, c: u64) -> bool {
        self.bits
            .get((c / 64) as usize)
            .is_some_and(|w| w & 1 << (c % 64) != 0)
    }

    /// The dirty byte ranges `(offset, len)`, adjacent chunks merged, in order.
    pub fn runs(&self) -> Vec<(u64, u64)> {
        let chunks = self.len.div_ceil(self.chunk);
        let mut out = Vec::new();
        let mut c = 0;
        while c < chunks {
            if !self.is_dirty(c) {
                c += 1;
                continue;
            }
            let start = c;
            while c < chunks && self.is_dirty(c) {
                c += 1;
            }
            let off = start * self.chunk;
            out.push((off, (c * self.chunk).min(self.len) - off));
        }
        out
    }

    /// Nothing dirty any more.
    pub fn clear(&mut self) {
        self.bits.fill(0);
    }
}

/// The block device.
pub struct VirtioBlk {
    disk: Box<dyn BlockBackend>,
    id: [u8; ID_LEN],
    buf: Vec<u8>,
}

impl VirtioBlk {
    /// A device over `disk` whose ID string is `id` (at most 20 bytes are used).
    pub fn new(disk: Box<dyn BlockBackend>, id: &str) -> Self {
        let mut b = [0u8; ID_LEN];
        let n = id.len().min(ID_LEN);
        b[..n].copy_from_slice(&id.as_bytes()[..n]);
        Self {
            disk,
            id: b,
            buf: vec![0; CHUNK],
        }
    }

    /// The disk's capacity in sectors.
    pub fn sectors(&self) -> u64 {
        self.disk.len() / SECTOR
    }

    fn in_range(&self, sector: u64, len: u64) -> bool {
        sector
            .checked_mul(SECTOR)
            .and_then(|o| o.checked_add(len))
            .is_some_and(|end| end <= self.disk.len())
    }

    /// Carries out one request; returns the bytes written into the chain.
    fn request(
        &mut self,
        chain: &Chain,
        dma: &mut dyn GuestDma,
        stats: &mut DeviceStats,
    ) -> Result<u32, QueueError> {
        let wlen = chain.writable_len();
        if wlen == 0 {
            return Err(QueueError::Malformed(
                "a block request without a status byte",
            ));
        }
        let mut hdr = [0u8; 16];
        if chain.readable_len() < 16 {
            return Err(QueueError::Malformed("a block request without a header"));
        }
        chain.read(dma, 0, &mut hdr)?;
        let kind = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let sector = u64::from_le_bytes(hdr[8..16].try_into().unwrap_or_default());
        let (st, data) = match kind {
            req::IN => {
                stats.reads += 1;
                self.read(chain, dma, sector, wlen - 1, stats)?
            }
            req::OUT => {
                stats.writes += 1;
                self.write(chain, dma, sector, chain.readable_len() - 16, stats)?
            }
            req::FLUSH => {
                stats.flushes += 1;
                let ok = self.disk.read_only() || self.disk.flush().is_ok();
                (if ok { status::OK } else { status::IOERR }, 0)
            }
            req::GET_ID => {
                let n = (ID_LEN as u64).min(wlen - 1);
                chain.write(dma, 0, &self.id[..n as usize])?;
                (status::OK, n)
            }
            _ => (status::UNSUPP, 0),
        };
        if st != status::OK {
            stats.refused += 1;
        }
        chain.write(dma, wlen - 1, &[st])?;
        // The chain's total was checked to fit in 32 bits.
        Ok(u32::try_from(data + 1).unwrap_or(u32::MAX))
    }

    fn read(
        &mut self,
        chain: &Chain,
        dma: &mut dyn GuestDma,
        sector: u64,
        len: u64,
        stats: &mut DeviceStats,
    ) -> Result<(u8, u64), QueueError> {
        if len % SECTOR != 0 || !self.in_range(sector, len) {
            return Ok((status::IOERR, 0));
        }
        let base = sector * SECTOR;
        let mut off = 0u64;
        while off < len {
            let n = (len - off).min(CHUNK as u64) as usize;
            if self.disk.read(base + off, &mut self.buf[..n]).is_err() {
                return Ok((status::IOERR, off));
            }
            chain.write(dma, off, &self.buf[..n])?;
            stats.bytes_to_guest += n as u64;
            off += n as u64;
        }
        Ok((status::OK, len))
    }

    fn write(
        &mut self,
        chain: &Chain,
        dma: &mut dyn GuestDma,
        sector: u64,
        len: u64,
        stats: &mut DeviceStats,
    ) -> Result<(u8, u64), QueueError> {
        if self.disk.read_only() || len % SECTOR != 0 || !self.in_range(sector, len) {
            return Ok((status::IOERR, 0));
        }
        let base = sector * SECTOR;
        let mut off = 0u64;
        while off < len {
            let n = (len - off).min(CHUNK as u64) as usize;
            chain.read(dma, 16 + off, &mut self.buf[..n])?;
            stats.bytes_from_guest += n as u64;
            if self.disk.write(base + off, &self.buf[..n]).is_err() {
                return Ok((status::IOERR, 0));
            }
            off += n as u64;
        }
        Ok((status::OK, 0))
    }
}

impl VirtioDevice for VirtioBlk {
    fn name(&self) -> &'static str {
        "virtio-blk"
    }
    fn device_type(&self) -> u16 {
        device_type::BLOCK
    }
    fn class_code(&self) -> u32 {
        // Mass storage, other.
        0x01_80_00
    }
    fn device_features(&self) -> u64 {
        F_SEG_MAX | F_BLK_SIZE | F_FLUSH | if self.disk.read_only() { F_RO } else { 0 }
    }
    fn num_queues(&self) -> u16 {
        1
    }
    fn max_queue_size(&self) -> u16 {
        QUEUE_SIZE
    }
    fn config_len(&self) -> u64 {
        0x40
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let mut cfg = [0u8; 0x40];
        cfg[0..8].copy_from_slice(&self.sectors().to_le_bytes());
        cfg[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
        cfg[20..24].copy_from_slice(&(SECTOR as u32).to_le_bytes());
        super::read_bytes(&cfg, offset, data);
    }
    fn reset(&mut self) {}
    fn process(
        &mut self,
        q: usize,
        queues: &mut [Virtqueue],
        ctx: &mut DeviceCtx<'_>,
        stats: &mut DeviceStats,
    ) -> Result<(), QueueError> {
        let Some(queue) = queues.get_mut(q).filter(|q| q.ready) else {
            return Ok(());
        };
        while let Some(chain) = queue.pop(ctx.dma)? {
            let n = self.request(&chain, ctx.dma, stats)?;
            queue.push_used(ctx.dma, chain.head, n)?;
            stats.requests += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::queue::tests::{Driver, FakeDma, RAM};
    use super::super::queue::{DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE};
    use super::*;
    use crate::devices::test_util::Captured;
    use crate::devices::DmaError;
    use crate::vgic::Vgic;
    use alloc::rc::Rc;
    use core::cell::RefCell;

    const HDR: u64 = RAM + 0x8000;
    const DATA: u64 = RAM + 0x9000;
    const STATUS: u64 = RAM + 0x7ff0;

    /// A disk the test can still look at.
    struct SharedDisk(Rc<RefCell<VecDisk>>);

    impl BlockBackend for SharedDisk {
        fn len(&self) -> u64 {
            self.0.borrow().len()
        }
        fn read_only(&self) -> bool {
            self.0.borrow().read_only()
        }
        fn read(&mut self, o: u64, b: &mut [u8]) -> Result<(), BlockError> {
            self.0.borrow_mut().read(o, b)
        }
        fn write(&mut self, o: u64, d: &[u8]) -> Result<(), BlockError> {
            self.0.borrow_mut().write(o, d)
        }
        fn flush(&mut self) -> Result<(), BlockError> {
            self.0.borrow_mut().flush()
        }
    }

    struct Env {
        disk: Rc<RefCell<VecDisk>>,
        m: FakeDma,
        d: Driver,
        queues: [Virtqueue; 1],
        blk: VirtioBlk,
        stats: DeviceStats,
        gic: Vgic,
        out: Captured,
    }

    impl Env {
        fn new(disk: VecDisk) -> Self {
            let m = FakeDma::new(RAM, 32);
            let d = Driver::new(8, RAM);
            let mut q = Virtqueue::new(QUEUE_SIZE);
            d.queue(&mut q);
            q.indirect = true;
            let disk = Rc::new(RefCell::new(disk));
            Self {
                disk: disk.clone(),
                m,
                d,
                queues: [q],
                blk: VirtioBlk::new(Box::new(SharedDisk(disk)), "cca-disk-0"),
                stats: DeviceStats::default(),
                gic: Vgic::new(&[0], 32),
                out: Captured::default(),
            }
        }

        fn header(&mut self, kind: u32, sector: u64) {
            let mut h = [0u8; 16];
            h[..4].copy_from_slice(&kind.to_le_bytes());
            h[8..].copy_from_slice(&sector.to_le_bytes());
            self.m.put(HDR, &h);
            self.m.put(STATUS, &[0xff]);
        }

        /// A three-descriptor request: header, `len` data bytes (device-writable if
        /// `to_guest`), status.
        fn submit(
            &mut self,
            kind: u32,
            sector: u64,
            len: u32,
            to_guest: bool,
        ) -> Result<(), QueueError> {
            self.header(kind, sector);
            let w = if to_guest { DESC_F_WRITE } else { 0 };
            self.d.set_desc(&mut self.m, 0, HDR, 16, DESC_F_NEXT, 1);
            self.d
                .set_desc(&mut self.m, 1, DATA, len, DESC_F_NEXT | w, 2);
            self.d.set_desc(&mut self.m, 2, STATUS, 1, DESC_F_WRITE, 0);
            self.d.offer(&mut self.m, 0);
            self.run()
        }

        fn run(&mut self) -> Result<(), QueueError> {
            let mut ctx = DeviceCtx {
                gic: &mut self.gic,
                console: &mut self.out,
                unix_time: 0,
                dma: &mut self.m,
            };
            self.blk
                .process(0, &mut self.queues, &mut ctx, &mut self.stats)
        }

        fn status(&self) -> u8 {
            self.m.get(STATUS, 1)[0]
        }

        fn last_used(&self) -> (u32, u32) {
            let n = self.d.used_idx(&self.m).wrapping_sub(1);
            self.d.used_elem(&self.m, n)
        }
    }

    fn disk(sectors: usize) -> VecDisk {
        VecDisk::new(
            (0..sectors * 512)
                .map(|i| (i / 512) as u8 ^ i as u8)
                .collect(),
            false,
        )
    }

    #[test]
    fn identity_features_and_config() {
        let e = Env::new(disk(64));
        assert_eq!(e.blk.device_type(), 2);
        assert_eq!(e.blk.device_features(), F_SEG_MAX | F_BLK_SIZE | F_FLUSH);
        let ro = VirtioBlk::new(Box::new(VecDisk::new(vec![0; 512], true)), "");
        assert_ne!(ro.device_features() & F_RO, 0, "read-only disks say so");
        let mut cfg = [0u8; 24];
        e.blk.read_config(0, &mut cfg);
        assert_eq!(u64::from_le_bytes(cfg[..8].try_into().unwrap()), 64);
        assert_eq!(u32::from_le_bytes(cfg[12..16].try_into().unwrap()), SEG_MAX);
        assert_eq!(u32::from_le_bytes(cfg[20..24].try_into().unwrap()), 512);
    }

    #[test]
    fn reads_and_writes_reach_the_disk() {
        let mut e = Env::new(disk(64));
        e.submit(req::IN, 3, 1024, true).unwrap();
        assert_eq!(e.status(), status::OK);
        assert_eq!(e.last_used(), (0, 1025));
        let want: Vec<u8> = (3 * 512..5 * 512)
            .map(|i| (i / 512) as u8 ^ i as u8)
            .collect();
        assert_eq!(e.m.get(DATA, 1024), &want[..]);
        assert_eq!(e.stats.bytes_to_guest, 1024);
        // Write 512 bytes of 0xab at sector 10, read them back.
        e.m.put(DATA, &[0xab; 512]);
        e.submit(req::OUT, 10, 512, false).unwrap();
        assert_eq!(e.status(), status::OK);
        assert_eq!(e.last_used(), (0, 1));
        e.m.put(DATA, &[0; 512]);
        e.submit(req::IN, 10, 512, true).unwrap();
        assert_eq!(e.m.get(DATA, 512), &[0xab; 512]);
        assert_eq!((e.stats.reads, e.stats.writes, e.stats.requests), (2, 1, 3));
        assert_eq!(e.stats.bytes_from_guest, 512);
        // The last sector is reachable, the one after it is not.
        e.submit(req::IN, 63, 512, true).unwrap();
        assert_eq!(e.status(), status::OK);
        e.submit(req::IN, 63, 1024, true).unwrap();
        assert_eq!(e.status(), status::IOERR);
        e.submit(req::IN, u64::MAX / 256, 512, true).unwrap();
        assert_eq!(e.status(), status::IOERR, "sector * 512 overflows");
        e.submit(req::OUT, 64, 512, false).unwrap();
        assert_eq!(e.status(), status::IOERR);
        // Not whole sectors.
        e.submit(req::IN, 0, 100, true).unwrap();
        assert_eq!(e.status(), status::IOERR);
        e.submit(req::OUT, 0, 513, false).unwrap();
        assert_eq!(e.status(), status::IOERR);
        assert_eq!(e.stats.refused, 5);
    }

    #[test]
    fn flush_makes_writes_durable() {
        let mut e = Env::new(disk(8));
        e.m.put(DATA, &[7; 512]);
        e.submit(req::OUT, 1, 512, false).unwrap();
        assert_eq!(e.disk.borrow().data[512..1024], [7; 512]);
        assert_ne!(
            e.disk.borrow().durable[512..1024],
            [7; 512],
            "not durable yet"
        );
        e.header(req::FLUSH, 0);
        e.d.set_desc(&mut e.m, 0, HDR, 16, DESC_F_NEXT, 2);
        e.d.set_desc(&mut e.m, 2, STATUS, 1, DESC_F_WRITE, 0);
        e.d.offer(&mut e.m, 0);
        e.run().unwrap();
        assert_eq!(e.status(), status::OK);
        assert_eq!(e.stats.flushes, 1);
        assert_eq!(e.disk.borrow().durable[512..1024], [7; 512], "durable");
    }

    #[test]
    fn a_broken_backend_gives_ioerr() {
        let mut d = disk(8);
        d.broken = true;
        let mut e = Env::new(d);
        e.submit(req::IN, 0, 512, true).unwrap();
        assert_eq!(e.status(), status::IOERR);
        e.submit(req::OUT, 0, 512, false).unwrap();
        assert_eq!(e.status(), status::IOERR);
        e.header(req::FLUSH, 0);
        e.d.set_desc(&mut e.m, 0, HDR, 16, DESC_F_NEXT, 2);
        e.d.set_desc(&mut e.m, 2, STATUS, 1, DESC_F_WRITE, 0);
        e.d.offer(&mut e.m, 0);
        e.run().unwrap();
        assert_eq!(e.status(), status::IOERR);
    }

    #[test]
    fn read_only_disks_refuse_writes() {
        let mut e = Env::new(VecDisk::new(vec![5; 4096], true));
        e.m.put(DATA, &[1; 512]);
        e.submit(req::OUT, 0, 512, false).unwrap();
        assert_eq!(e.status(), status::IOERR);
        e.submit(req::IN, 0, 512, true).unwrap();
        assert_eq!(e.m.get(DATA, 512), &[5; 512], "unchanged");
        assert_eq!(e.stats.refused, 1);
    }

    #[test]
    fn get_id_and_unknown_requests() {
        let mut e = Env::new(disk(8));
        e.submit(req::GET_ID, 0, 20, true).unwrap();
        assert_eq!(e.status(), status::OK);
        assert_eq!(&e.m.get(DATA, 20)[..10], b"cca-disk-0");
        assert_eq!(e.last_used(), (0, 21));
        e.submit(99, 0, 512, true).unwrap();
        assert_eq!(e.status(), status::UNSUPP);
        assert_eq!(e.last_used(), (0, 1));
    }

    #[test]
    fn any_descriptor_layout_and_indirect() {
        let mut e = Env::new(disk(8));
        // Header split over two descriptors, data and status in one, through an indirect
        // table.
        let table = RAM + 0x6000;
        e.header(req::IN, 2);
        Driver::set_desc_at(&mut e.m, table, 0, HDR, 10, DESC_F_NEXT, 1);
        Driver::set_desc_at(&mut e.m, table, 1, HDR + 10, 6, DESC_F_NEXT, 2);
        Driver::set_desc_at(&mut e.m, table, 2, DATA, 513, DESC_F_WRITE, 0);
        e.d.set_desc(&mut e.m, 5, table, 48, DESC_F_INDIRECT, 0);
        e.d.offer(&mut e.m, 5);
        e.run().unwrap();
        assert_eq!(e.m.get(DATA + 512, 1), [status::OK]);
        assert_eq!(e.m.get(DATA, 1)[0], 2, "sector 2's first byte");
        assert_eq!(e.last_used(), (5, 513));
    }

    #[test]
    fn unanswerable_requests_need_a_reset() {
        let mut e = Env::new(disk(8));
        e.d.set_desc(&mut e.m, 0, HDR, 16, 0, 0);
        e.d.offer(&mut e.m, 0);
        assert!(
            matches!(e.run(), Err(QueueError::Malformed(_))),
            "no status"
        );
        let mut e = Env::new(disk(8));
        e.d.set_desc(&mut e.m, 0, HDR, 8, DESC_F_NEXT, 1);
        e.d.set_desc(&mut e.m, 1, STATUS, 1, DESC_F_WRITE, 0);
        e.d.offer(&mut e.m, 0);
        assert!(
            matches!(e.run(), Err(QueueError::Malformed(_))),
            "short header"
        );
        // A data buffer in memory the realm took back: nothing is written to it.
        let mut e = Env::new(disk(8));
        e.m.shared.remove(&DATA);
        let before = e.m.writes;
        assert_eq!(
            e.submit(req::IN, 0, 512, true),
            Err(QueueError::Dma(DmaError::NotShared { ipa: DATA }))
        );
        assert_eq!(e.m.writes, before);
        // Nor read from.
        let mut e = Env::new(disk(8));
        e.m.shared.remove(&DATA);
        assert!(e.submit(req::OUT, 0, 512, false).is_err());
        assert_eq!(e.disk.borrow().data[1], 1, "the disk is unchanged");
        // A disabled queue is left alone.
        let mut e = Env::new(disk(8));
        e.queues[0].ready = false;
        e.run().unwrap();
    }

    #[test]
    fn dirty_chunks_merge_into_runs() {
        let mut d = DirtyChunks::new(10 * 4096 + 100, 4096);
        assert!(d.runs().is_empty());
        d.mark(4096, 1);
        d.mark(8191, 2);
        d.mark(5 * 4096, 0);
        d.mark(10 * 4096 + 50, 1000);
        assert_eq!(
            d.runs(),
            [(4096, 2 * 4096), (10 * 4096, 100)],
            "chunks 1 and 2 merged, the short last chunk clipped"
        );
        d.mark(u64::MAX - 1, 10);
        d.mark(11 * 4096, 1);
        assert_eq!(d.runs().len(), 2, "beyond the disk: ignored");
        d.clear();
        assert!(d.runs().is_empty());
        let mut w = DirtyChunks::new(200 * 512, 512);
        w.mark(0, 200 * 512);
        assert_eq!(w.runs(), [(0, 200 * 512)], "across bitmap words");
        assert!(DirtyChunks::new(0, 0).runs().is_empty());
    }

    #[test]
    fn vec_disk_bounds() {
        let mut d = VecDisk::new(vec![0; 1024], false);
        assert!(!d.is_empty());
        assert_eq!(d.read(1000, &mut [0; 100]), Err(BlockError));
        assert_eq!(d.write(u64::MAX, &[0; 2]), Err(BlockError));
        d.write(0, &[1]).unwrap();
        assert_eq!(d.durable[0], 0);
        d.flush().unwrap();
        assert_eq!(d.durable[0], 1);
    }
}
