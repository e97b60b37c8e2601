//! Device access to the guest memory the realm shares with the host: IPAs (with or without
//! the alias bit) translated page by page to the NS granules mapped at the alias, and refused
//! for anything else, so a device model never reads or writes memory the host did not map for
//! the realm.

use super::memory::GuestMemory;
use crate::devices::{DmaError, GuestDma};
use crate::rmi::HostMem;
use cca_abi::GRANULE_SIZE as G;

/// The shared pages of one VM's memory.
pub struct SharedMemory<'a, M: HostMem> {
    /// Guest RAM and its page states.
    pub memory: &'a GuestMemory,
    /// The host's view of its memory.
    pub mem: &'a mut M,
    /// The realm's unprotected-alias bit.
    pub shared_bit: u64,
}

impl<M: HostMem> SharedMemory<'_, M> {
    /// Calls `f(host_pa, offset in the range, length)` for each page-sized piece of
    /// `[ipa, ipa + len)`, after checking that every page is shared.
    fn each(
        &mut self,
        ipa: u64,
        len: usize,
        mut f: impl FnMut(&mut M, u64, usize, usize),
    ) -> Result<(), DmaError> {
        let len64 = len as u64;
        let end = (ipa & !self.shared_bit)
            .checked_add(len64)
            .ok_or(DmaError::Overflow)?;
        let start = ipa & !self.shared_bit;
        let mut at = start;
        while at < end {
            self.memory
                .shared_pa(at, self.shared_bit)
                .ok_or(DmaError::NotShared { ipa: at })?;
            at = (at & !(G - 1)) + G;
        }
        let mut at = start;
        while at < end {
            let chunk = ((at & !(G - 1)) + G).min(end) - at;
            let pa = self
                .memory
                .shared_pa(at, self.shared_bit)
                .ok_or(DmaError::NotShared { ipa: at })?;
            f(self.mem, pa, (at - start) as usize, chunk as usize);
            at += chunk;
        }
        Ok(())
    }
}

impl<M: HostMem> GuestDma for SharedMemory<'_, M> {
    fn read(&mut self, ipa: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        let len = buf.len();
        self.each(ipa, len, |mem, pa, off, n| {
            mem.read(pa, &mut buf[off..off + n])
        })
    }

    fn write(&mut self, ipa: u64, data: &[u8]) -> Result<(), DmaError> {
        self.each(ipa, data.len(), |mem, pa, off, n| {
            mem.write(pa, &data[off..off + n])
        })
    }
}
