//! The launch's disk: the image QEMU loaded into host memory (the launch description's
//! `disk=PA,SIZE,ro|rw`, inside the file window), served from there, and kept in step with
//! the image file on the build machine through Arm semihosting.
//!
//! Reads and writes are copies within host DRAM; a write marks its 4 KiB chunks dirty. A
//! flush writes every dirty run back to the file (`SYS_SEEK`, `SYS_WRITE` straight from the
//! image in memory) and clears the marks, so what the guest flushed is in the file when QEMU
//! exits, whatever happens to the realm afterwards; what it did not flush is lost, as with a
//! volatile write cache. The file's name comes from the semihosting command line
//! (`-semihosting-config ...,arg=FILE`, which the launcher adds), read with
//! `SYS_GET_CMDLINE`; the file is opened once (`SYS_OPEN`, "r+b") and its length checked
//! against the description. A read-only disk never opens the file.
//!
//! Semihosting is QEMU's `HLT #0xF000` from the host at NS-EL2: QEMU handles it before any
//! exception is taken, so EL3 plays no part. Its costs: the image lives in host DRAM (the
//! file window, about 400 MiB less the kernel and initrd), QEMU loads all of it at start,
//! each dirty run costs two semihosting calls at a flush (a host `lseek` and `write`, a
//! single instruction under `-icount`), and there is no `fsync`: the data is in the build
//! machine's page cache, safe from the guest and from QEMU exiting, not from the build
//! machine losing power.

extern crate alloc;

use crate::Dram;
use alloc::string::String;
use alloc::vec;
use host_core::devices::virtio::blk::{BlockBackend, BlockError, DirtyChunks};
use host_core::vmm::launch::Disk;
use host_core::HostMem;

const SYS_OPEN: u64 = 0x01;
const SYS_CLOSE: u64 = 0x02;
const SYS_WRITE: u64 = 0x05;
const SYS_SEEK: u64 = 0x0a;
const SYS_FLEN: u64 = 0x0c;
const SYS_GET_CMDLINE: u64 = 0x15;
/// `SYS_OPEN` mode 3: "r+b".
const MODE_RW_BINARY: u64 = 3;
/// The dirty-tracking granule.
const CHUNK: u64 = 4096;

/// One semihosting call: `op` with the parameter block `block` (which the call may update).
fn semihost(op: u64, block: &mut [u64]) -> i64 {
    let ret: u64;
    // SAFETY: semihosting reads (and for SYS_GET_CMDLINE writes) the parameter block and
    // the buffers it names, all of which are live, identity-mapped host memory owned by the
    // caller; the instruction changes no other state the compiler knows about.
    unsafe {
        core::arch::asm!(
            "hlt #0xf000",
            inout("x0") op => ret,
            in("x1") block.as_mut_ptr(),
            options(nostack)
        );
    }
    ret as i64
}

/// The semihosting command line (the disk file's name), if there is one.
fn command_line() -> Option<String> {
    let mut buf = vec![0u8; 4096];
    let mut block = [buf.as_mut_ptr() as u64, buf.len() as u64];
    if semihost(SYS_GET_CMDLINE, &mut block) != 0 {
        return None;
    }
    let len = usize::try_from(block[1]).ok()?.min(buf.len());
    buf.truncate(len);
    let s = String::from_utf8(buf).ok()?;
    (!s.is_empty()).then_some(s)
}

/// A disk image in host memory, written back to its file on flush.
pub struct HostDisk {
    pa: u64,
    size: u64,
    read_only: bool,
    /// The [`CHUNK`]s written since the last flush.
    dirty: DirtyChunks,
    /// The semihosting handle of the image file (read-write disks only).
    handle: Option<u64>,
    /// The file's name.
    pub path: String,
}

impl HostDisk {
    /// The disk of a launch. A writable one needs its file: it is opened now, and must be
    /// exactly as long as the image in memory.
    pub fn open(d: &Disk) -> Result<Self, String> {
        let path = command_line().unwrap_or_default();
        let mut disk = Self {
            pa: d.pa,
            size: d.size,
            read_only: d.read_only,
            dirty: DirtyChunks::new(d.size, CHUNK),
            handle: None,
            path,
        };
        if d.read_only {
            return Ok(disk);
        }
        if disk.path.is_empty() {
            return Err(String::from(
                "the disk is writable but the semihosting command line names no file",
            ));
        }
        let mut name = disk.path.clone().into_bytes();
        name.push(0);
        let mut block = [
            name.as_ptr() as u64,
            MODE_RW_BINARY,
            (name.len() - 1) as u64,
        ];
        let h = semihost(SYS_OPEN, &mut block);
        if h < 0 {
            return Err(alloc::format!(
                "semihosting cannot open {} for writing",
                disk.path
            ));
        }
        disk.handle = Some(h as u64);
        let len = semihost(SYS_FLEN, &mut [h as u64]);
        if u64::try_from(len).ok() != Some(d.size) {
            return Err(alloc::format!(
                "{} is {len} bytes, the image in memory {}",
                disk.path,
                d.size
            ));
        }
        Ok(disk)
    }

    fn range(&self, offset: u64, len: usize) -> Result<u64, BlockError> {
        let end = offset.checked_add(len as u64).ok_or(BlockError)?;
        if end > self.size {
            return Err(BlockError);
        }
        Ok(self.pa + offset)
    }

    /// Writes `[offset, offset + len)` of the image back to the file.
    fn write_back(&self, h: u64, offset: u64, len: u64) -> Result<(), BlockError> {
        if semihost(SYS_SEEK, &mut [h, offset]) != 0 {
            return Err(BlockError);
        }
        // SYS_WRITE returns the number of bytes it did not write.
        if semihost(SYS_WRITE, &mut [h, self.pa + offset, len]) != 0 {
            return Err(BlockError);
        }
        Ok(())
    }
}

impl BlockBackend for HostDisk {
    fn len(&self) -> u64 {
        self.size
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let pa = self.range(offset, buf.len())?;
        Dram.read(pa, buf);
        Ok(())
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError);
        }
        let pa = self.range(offset, data.len())?;
        Dram.write(pa, data);
        self.dirty.mark(offset, data.len() as u64);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        let Some(h) = self.handle else {
            return Ok(());
        };
        for (off, len) in self.dirty.runs() {
            self.write_back(h, off, len)?;
        }
        self.dirty.clear();
        Ok(())
    }
}

impl Drop for HostDisk {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            semihost(SYS_CLOSE, &mut [h]);
        }
    }
}
