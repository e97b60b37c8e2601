//! The boot manifest EL3 hands to the RMM in the shared buffer (RMM-EL3 interface 2.0,
//! manifest v0.5), laid out as TF-A does: the manifest, then the DRAM banks, the consoles and
//! an empty root complex list, each list with its checksum.

use cca_abi::el3::{
    manifest_checksum, BootManifest, ConsoleInfo, ManifestList, MemoryBank, RootComplexList,
    MANIFEST_VERSION,
};
use core::mem::size_of;
use zerocopy::IntoBytes;

/// Errors writing the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestError {
    /// The shared buffer is too small for the manifest and its lists.
    TooLarge,
}

/// Writes the manifest into `buf`, the shared buffer at physical address `buf_pa`, and returns
/// the number of bytes used.
pub fn write(
    buf: &mut [u8],
    buf_pa: u64,
    banks: &[MemoryBank],
    consoles: &[ConsoleInfo],
) -> Result<usize, ManifestError> {
    let banks_off = size_of::<BootManifest>();
    let consoles_off = banks_off + core::mem::size_of_val(banks);
    let rc_off = consoles_off + core::mem::size_of_val(consoles);
    let used = rc_off;
    if used > buf.len() {
        return Err(ManifestError::TooLarge);
    }
    buf[..used].fill(0);

    let mut m = BootManifest::new(MANIFEST_VERSION);
    let banks_pa = buf_pa + banks_off as u64;
    m.plat_dram = ManifestList {
        num: banks.len() as u64,
        ptr: banks_pa,
        checksum: manifest_checksum(
            banks.len() as u64,
            banks_pa,
            banks.iter().flat_map(|b| [b.base, b.size]),
        ),
    };
    let consoles_pa = buf_pa + consoles_off as u64;
    m.plat_console = ManifestList {
        num: consoles.len() as u64,
        ptr: consoles_pa,
        checksum: manifest_checksum(
            consoles.len() as u64,
            consoles_pa,
            consoles.iter().flat_map(console_words),
        ),
    };
    let mut rc = RootComplexList::empty(1, buf_pa + rc_off as u64);
    rc.checksum = manifest_checksum(0, rc.ptr, [u64::from(rc.rc_info_version)]);
    m.plat_root_complex = rc;

    buf[..banks_off].copy_from_slice(m.as_bytes());
    buf[banks_off..consoles_off].copy_from_slice(banks.as_bytes());
    buf[consoles_off..rc_off].copy_from_slice(consoles.as_bytes());
    Ok(used)
}

fn console_words(c: &ConsoleInfo) -> [u64; 6] {
    [
        c.base,
        c.map_pages,
        u64::from_le_bytes(c.name),
        c.clk_in_hz,
        c.baud_rate,
        c.flags,
    ]
}

/// The PL011 console description for the manifest.
pub fn pl011(base: u64, clk_in_hz: u64, baud_rate: u64) -> ConsoleInfo {
    let mut name = [0u8; 8];
    name[..5].copy_from_slice(b"pl011");
    ConsoleInfo {
        base,
        map_pages: 1,
        name,
        clk_in_hz,
        baud_rate,
        flags: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cca_abi::el3::manifest_checksum_ok;
    use zerocopy::FromBytes;

    #[test]
    fn layout_and_checksums_match_tf_a() {
        let mut buf = [0u8; 4096];
        let banks = [MemoryBank {
            base: 0x4000_0000,
            size: 0xC000_0000,
        }];
        let consoles = [pl011(0x0900_0000, 1, 115_200)];
        let used = write(&mut buf, 0x418f_f000, &banks, &consoles).unwrap();
        assert_eq!(used, 0xA8 + 16 + 48);
        let m = BootManifest::read_from_bytes(&buf[..0xA8]).unwrap();
        assert_eq!(m.version, 5);
        // Values observed in TF-A's manifest on QEMU virt (see research notes).
        assert_eq!(m.plat_dram.ptr, 0x418f_f0a8);
        assert_eq!(m.plat_dram.checksum, 0xffff_fffe_be70_0f57);
        assert_eq!(m.plat_console.ptr, 0x418f_f0b8);
        assert_eq!(m.plat_console.checksum, 0xffff_ffce_843d_e0d5);
        assert!(manifest_checksum_ok(
            &m.plat_dram,
            [0x4000_0000, 0xC000_0000]
        ));
        let c = ConsoleInfo::read_from_bytes(&buf[0xB8..0xB8 + 48]).unwrap();
        assert_eq!(&c.name[..5], b"pl011");
        assert!(manifest_checksum_ok(&m.plat_console, console_words(&c)));
    }

    #[test]
    fn too_small() {
        let mut buf = [0u8; 64];
        assert_eq!(write(&mut buf, 0, &[], &[]), Err(ManifestError::TooLarge));
    }
}
