//! The arm64 Linux `Image` header and where the kernel (or firmware), DTB and initrd go in
//! realm RAM.
//!
//! # The header (Linux `Documentation/arch/arm64/booting.rst`)
//!
//! The first 64 bytes of an `Image`, little-endian:
//!
//! | offset | field |
//! |---|---|
//! | 0x00 | `code0`, `code1` (executable) |
//! | 0x08 | `text_offset`: load offset from a 2 MiB-aligned base |
//! | 0x10 | `image_size`: bytes the kernel occupies from its load address, BSS included |
//! | 0x18 | `flags`: bit 0 big-endian, bits \[2:1\] page size, bit 3 placement |
//! | 0x20 | reserved (3 × u64) |
//! | 0x38 | `magic` = `"ARM\x64"` |
//! | 0x3C | reserved (PE/COFF header offset) |
//!
//! An `image_size` of 0 means a kernel older than 3.17: its `text_offset` is 0x80000 (in the
//! kernel's endianness, so the field is not read) and its flags are not defined. Such a kernel
//! wants as much free memory as possible after its image; the layout below keeps everything
//! else at the top of the low RAM window, which is what booting.rst asks.
//!
//! # The layout (kvmtool's `kvm__arch_load_kernel_image`, and the CCA fork's firmware loader)
//!
//! Linux (`plan`):
//! * the kernel at RAM base (2 MiB-aligned) + `text_offset`; `pc` is that address;
//! * the DTB window (`dtb_max` bytes) at `ALIGN_UP(base + min(RAM, 256 MiB) − 1 − dtb_max −
//!   2 MiB, 2 MiB)`, near the top of the low 256 MiB Linux needs it in; `x0` is its address;
//! * the initrd just below the DTB, its start aligned down to 4 KiB;
//! * the kernel's extent (`max(image_size, file length)`, rounded up to 4 KiB) must end at or
//!   below the initrd (or the DTB). kvmtool checks only the kernel file against them; this
//!   also keeps the BSS clear.
//!
//! Firmware (`plan_firmware`, edk2's realm firmware, also an `Image`): loaded at the RAM base
//! (its `text_offset` is not used, as kvmtool does), `pc` = RAM base, the DTB window at
//! `ALIGN_UP(RAM end − dtb_max − 2 MiB, 2 MiB)` (kvmtool-cca; 0x9FE0_0000 for 512 MiB at
//! 0x8000_0000), clear of the firmware's extent.
//!
//! Every region starts on a 4 KiB granule and no two share one, so each can be populated (and
//! measured) granule by granule.

use alloc::vec::Vec;
use core::fmt;

/// Size of the `Image` header.
pub const HEADER_SIZE: usize = 64;
/// The header's magic, `"ARM\x64"` read as a little-endian u32.
pub const IMAGE_MAGIC: u32 = 0x644d_5241;
/// Offset of the magic in the header.
pub const MAGIC_OFFSET: usize = 0x38;
/// `text_offset` of kernels whose `image_size` is 0 (before Linux 3.17).
pub const LEGACY_TEXT_OFFSET: u64 = 0x8_0000;
/// Alignment of the base a kernel is loaded above, and of the DTB window.
pub const BLOCK_2M: u64 = 2 << 20;
/// The low RAM window the kernel, initrd and DTB go in (Linux maps them from there).
pub const LOW_RAM_WINDOW: u64 = 256 << 20;
/// The granule every region is aligned to (the RMM's).
pub const GRANULE: u64 = 4096;
/// The largest DTB window: booting.rst limits a DTB to 2 MiB.
pub const MAX_DTB_WINDOW: u64 = 2 << 20;

/// `flags` bit 0: the kernel is big-endian.
pub const FLAG_BE: u64 = 1 << 0;
/// `flags` bits \[2:1\]: the kernel's page size.
pub const FLAG_PAGE_SIZE_SHIFT: u32 = 1;
/// `flags` bit 3: the kernel may be placed anywhere in RAM (else as close to its base as
/// possible).
pub const FLAG_PLACE_ANYWHERE: u64 = 1 << 3;

/// The kernel's page size, from `flags` bits \[2:1\].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSize {
    /// Not stated (0; also every pre-3.17 kernel).
    Unspecified,
    /// 4 KiB.
    K4,
    /// 16 KiB.
    K16,
    /// 64 KiB.
    K64,
}

/// A parsed, validated `Image` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    /// The load offset from the 2 MiB-aligned base: the header's, or
    /// [`LEGACY_TEXT_OFFSET`] when `image_size` is 0.
    pub text_offset: u64,
    /// The header's `image_size` (0: not stated).
    pub image_size: u64,
    /// The header's `flags` (0 when `image_size` is 0: the field did not exist).
    pub flags: u64,
    /// The page size `flags` states.
    pub page_size: PageSize,
    /// `flags` bit 3: may be placed anywhere in RAM.
    pub place_anywhere: bool,
}

/// What a file looks like when it is not an arm64 `Image`, to say so in the error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotImage {
    /// gzip data (e.g. an `Image.gz`): decompress it first.
    Gzip,
    /// An EFI zboot image (`vmlinuz.efi`, compressed): decompress the payload first.
    EfiZboot,
    /// An ELF file (`vmlinux`): use the `Image` the build makes from it.
    Elf,
    /// Nothing recognisable.
    Unknown,
}

/// What [`Layout`] loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    /// A Linux kernel `Image`.
    Kernel,
    /// Firmware in `Image` format (edk2's realm firmware).
    Firmware,
}

/// Why an image could not be parsed or placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The file is shorter than the 64-byte header.
    TooShort {
        /// Its length.
        len: u64,
    },
    /// The magic at 0x38 is not `"ARM\x64"`.
    NotArm64Image(NotImage),
    /// `flags` bit 0 says big-endian; realms run little-endian here.
    BigEndian,
    /// `text_offset` is not a multiple of 4 KiB, so the image cannot start on a granule.
    MisalignedTextOffset {
        /// The header's value.
        text_offset: u64,
    },
    /// RAM is empty, wraps, does not start on 2 MiB or is not whole 4 KiB granules.
    BadRam {
        /// Its IPA.
        base: u64,
        /// Its size.
        size: u64,
    },
    /// The DTB window is 0, over 2 MiB or not whole 4 KiB granules.
    BadDtbWindow {
        /// The size asked for.
        size: u64,
    },
    /// An initrd of 0 bytes.
    EmptyInitrd,
    /// The pieces do not fit in RAM without overlapping.
    TooSmall {
        /// What is loaded.
        payload: Payload,
        /// Bytes of RAM.
        ram_size: u64,
        /// The window they must fit in (the low 256 MiB for a kernel, all RAM for firmware).
        window: u64,
        /// Where the image starts in RAM (the kernel's `text_offset`; 0 for firmware).
        offset: u64,
        /// The image's extent (`max(image_size, file length)`).
        extent: u64,
        /// Bytes of initrd.
        initrd: Option<u64>,
        /// Bytes of DTB window.
        dtb: u64,
    },
}

/// Writes a byte count as MiB when it is whole MiB, else as bytes.
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 % (1 << 20) == 0 {
            write!(f, "{} MiB", self.0 >> 20)
        } else {
            write!(f, "{} bytes", self.0)
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooShort { len } => write!(
                f,
                "the file is {len} bytes, shorter than the {HEADER_SIZE}-byte arm64 Image header"
            ),
            Self::NotArm64Image(kind) => {
                write!(f, "not an arm64 Image (no \"ARM\\x64\" magic at 0x38)")?;
                match kind {
                    NotImage::Gzip => write!(f, ": it is gzip data; decompress it first"),
                    NotImage::EfiZboot => write!(
                        f,
                        ": it is a compressed EFI zboot image; extract the Image first"
                    ),
                    NotImage::Elf => {
                        write!(
                            f,
                            ": it is an ELF file (vmlinux); use arch/arm64/boot/Image"
                        )
                    }
                    NotImage::Unknown => Ok(()),
                }
            }
            Self::BigEndian => write!(
                f,
                "the Image is a big-endian kernel; realms need little-endian"
            ),
            Self::MisalignedTextOffset { text_offset } => write!(
                f,
                "the Image's text_offset {text_offset:#x} is not a multiple of 4 KiB"
            ),
            Self::BadRam { base, size } => write!(
                f,
                "RAM [{base:#x}, +{size:#x}) must be non-empty, start on 2 MiB and be whole \
                 4 KiB granules"
            ),
            Self::BadDtbWindow { size } => write!(
                f,
                "a DTB window of {size:#x} bytes: it must be 4 KiB granules, at most 2 MiB"
            ),
            Self::EmptyInitrd => write!(f, "the initrd is empty"),
            Self::TooSmall {
                payload,
                ram_size,
                window,
                offset,
                extent,
                initrd,
                dtb,
            } => {
                let what = match payload {
                    Payload::Kernel => "kernel",
                    Payload::Firmware => "firmware",
                };
                write!(
                    f,
                    "RAM of {} is too small for {what} (image_size {extent:#x} at offset \
                     {offset:#x})",
                    Size(ram_size)
                )?;
                if let Some(i) = initrd {
                    write!(f, " + initrd ({i:#x})")?;
                }
                write!(f, " + DTB ({dtb:#x}) in its first {}", Size(window))
            }
        }
    }
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        v.copy_from_slice(s);
    }
    u64::from_le_bytes(v)
}

fn classify(bytes: &[u8]) -> NotImage {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        NotImage::Gzip
    } else if bytes.starts_with(b"MZ") && bytes.get(4..8) == Some(b"zimg") {
        NotImage::EfiZboot
    } else if bytes.starts_with(b"\x7fELF") {
        NotImage::Elf
    } else {
        NotImage::Unknown
    }
}

impl ImageHeader {
    /// Parses and validates the header at the start of `file` (at least its first 64 bytes).
    pub fn parse(file: &[u8]) -> Result<Self, LoadError> {
        let Some(h) = file.get(..HEADER_SIZE) else {
            return Err(LoadError::TooShort {
                len: file.len() as u64,
            });
        };
        let magic = u32::from_le_bytes([
            h[MAGIC_OFFSET],
            h[MAGIC_OFFSET + 1],
            h[MAGIC_OFFSET + 2],
            h[MAGIC_OFFSET + 3],
        ]);
        if magic != IMAGE_MAGIC {
            return Err(LoadError::NotArm64Image(classify(file)));
        }
        let image_size = le64(h, 0x10);
        if image_size == 0 {
            return Ok(Self {
                text_offset: LEGACY_TEXT_OFFSET,
                image_size: 0,
                flags: 0,
                page_size: PageSize::Unspecified,
                place_anywhere: false,
            });
        }
        let text_offset = le64(h, 0x08);
        let flags = le64(h, 0x18);
        if flags & FLAG_BE != 0 {
            return Err(LoadError::BigEndian);
        }
        if text_offset % GRANULE != 0 {
            return Err(LoadError::MisalignedTextOffset { text_offset });
        }
        let page_size = match (flags >> FLAG_PAGE_SIZE_SHIFT) & 3 {
            0 => PageSize::Unspecified,
            1 => PageSize::K4,
            2 => PageSize::K16,
            _ => PageSize::K64,
        };
        Ok(Self {
            text_offset,
            image_size,
            flags,
            page_size,
            place_anywhere: flags & FLAG_PLACE_ANYWHERE != 0,
        })
    }

    /// The bytes the image occupies from its load address: `image_size`, or the file's length
    /// when that is larger (or `image_size` is 0).
    pub fn extent(&self, file_len: u64) -> u64 {
        self.image_size.max(file_len)
    }
}

/// A range of realm IPA space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First IPA (4 KiB-aligned in a [`Layout`]).
    pub base: u64,
    /// Bytes.
    pub size: u64,
}

impl Region {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }

    /// The end rounded up to a granule: the granules the region touches end here.
    pub fn granule_end(&self) -> u64 {
        align_up(self.end(), GRANULE).unwrap_or(u64::MAX)
    }
}

/// A part of a [`Layout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The kernel or firmware file.
    Image,
    /// The initrd.
    Initrd,
    /// The DTB window.
    Dtb,
}

/// Where everything goes, and how vCPU 0 starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// What is loaded.
    pub payload: Payload,
    /// The image file: `base` = load IPA, `size` = file length (the bytes to copy).
    pub image: Region,
    /// What the image owns from its load address, BSS included: its extent rounded up to
    /// 4 KiB (the part past the file must be zero RAM).
    pub image_extent: Region,
    /// The initrd: `size` = its length (the DT's `linux,initrd-end` is [`Region::end`]).
    pub initrd: Option<Region>,
    /// The DTB window (`dtb_max` bytes): the DTB goes at its start.
    pub dtb: Region,
    /// vCPU 0's entry point.
    pub pc: u64,
    /// vCPU 0's x0: the DTB's IPA.
    pub x0: u64,
}

impl Layout {
    /// The regions with content to populate, in address order (the order kvmtool measures
    /// them in): the image file, the initrd, the DTB window.
    pub fn in_address_order(&self) -> Vec<(Part, Region)> {
        let mut v = Vec::with_capacity(3);
        v.push((Part::Image, self.image));
        if let Some(i) = self.initrd {
            v.push((Part::Initrd, i));
        }
        v.push((Part::Dtb, self.dtb));
        v.sort_by_key(|(_, r)| r.base);
        v
    }
}

fn align_up(v: u64, a: u64) -> Option<u64> {
    Some(v.checked_add(a - 1)? & !(a - 1))
}

const fn align_down(v: u64, a: u64) -> u64 {
    v & !(a - 1)
}

fn check_ram(base: u64, size: u64) -> Result<u64, LoadError> {
    match base.checked_add(size) {
        Some(end) if size != 0 && base % BLOCK_2M == 0 && size % GRANULE == 0 => Ok(end),
        _ => Err(LoadError::BadRam { base, size }),
    }
}

fn check_dtb_window(dtb_max: u64) -> Result<(), LoadError> {
    if dtb_max == 0 || dtb_max > MAX_DTB_WINDOW || dtb_max % GRANULE != 0 {
        return Err(LoadError::BadDtbWindow { size: dtb_max });
    }
    Ok(())
}

/// Places a Linux kernel `Image`, its initrd and the DTB in RAM `[ram_base, + ram_size)` as
/// kvmtool does (see the module documentation). `kernel_file_len` is the `Image` file's length
/// (at least the header), `initrd_len` the initrd's, `dtb_max` the DTB window's (e.g.
/// [`super::dtb::DTB_MAX_SIZE`]).
pub fn plan(
    ram_base: u64,
    ram_size: u64,
    kernel: &ImageHeader,
    kernel_file_len: u64,
    initrd_len: Option<u64>,
    dtb_max: u64,
) -> Result<Layout, LoadError> {
    check_ram(ram_base, ram_size)?;
    check_dtb_window(dtb_max)?;
    if kernel_file_len < HEADER_SIZE as u64 {
        return Err(LoadError::TooShort {
            len: kernel_file_len,
        });
    }
    if initrd_len == Some(0) {
        return Err(LoadError::EmptyInitrd);
    }
    if kernel.text_offset % GRANULE != 0 {
        return Err(LoadError::MisalignedTextOffset {
            text_offset: kernel.text_offset,
        });
    }
    let window = ram_size.min(LOW_RAM_WINDOW);
    let extent = kernel.extent(kernel_file_len);
    let too_small = LoadError::TooSmall {
        payload: Payload::Kernel,
        ram_size,
        window,
        offset: kernel.text_offset,
        extent,
        initrd: initrd_len,
        dtb: dtb_max,
    };

    // Offsets from the RAM base, all below `window`.
    let dtb_rel = (window - 1)
        .checked_sub(dtb_max + BLOCK_2M)
        .and_then(|p| align_up(p, BLOCK_2M))
        .ok_or(too_small)?;
    let initrd_rel = match initrd_len {
        Some(len) => Some(align_down(
            dtb_rel.checked_sub(len).ok_or(too_small)?,
            GRANULE,
        )),
        None => None,
    };
    let lowest_rel = initrd_rel.unwrap_or(dtb_rel);
    let extent_rel_end = align_up(extent, GRANULE)
        .and_then(|e| e.checked_add(kernel.text_offset))
        .ok_or(too_small)?;
    if extent_rel_end > lowest_rel {
        return Err(too_small);
    }

    // Every offset is below `window` ≤ `ram_size`, and `ram_base + ram_size` does not wrap.
    let load = ram_base + kernel.text_offset;
    let dtb = ram_base + dtb_rel;
    Ok(Layout {
        payload: Payload::Kernel,
        image: Region {
            base: load,
            size: kernel_file_len,
        },
        image_extent: Region {
            base: load,
            size: extent_rel_end - kernel.text_offset,
        },
        initrd: initrd_rel.zip(initrd_len).map(|(rel, len)| Region {
            base: ram_base + rel,
            size: len,
        }),
        dtb: Region {
            base: dtb,
            size: dtb_max,
        },
        pc: load,
        x0: dtb,
    })
}

/// Places firmware in `Image` format (edk2's realm firmware) at the RAM base and the DTB
/// window near the top of RAM, as kvmtool-cca does for `--firmware` (see the module
/// documentation).
pub fn plan_firmware(
    ram_base: u64,
    ram_size: u64,
    firmware: &ImageHeader,
    firmware_file_len: u64,
    dtb_max: u64,
) -> Result<Layout, LoadError> {
    check_ram(ram_base, ram_size)?;
    check_dtb_window(dtb_max)?;
    if firmware_file_len < HEADER_SIZE as u64 {
        return Err(LoadError::TooShort {
            len: firmware_file_len,
        });
    }
    let extent = firmware.extent(firmware_file_len);
    let too_small = LoadError::TooSmall {
        payload: Payload::Firmware,
        ram_size,
        window: ram_size,
        offset: 0,
        extent,
        initrd: None,
        dtb: dtb_max,
    };
    let dtb_rel = ram_size
        .checked_sub(dtb_max + BLOCK_2M)
        .and_then(|p| align_up(p, BLOCK_2M))
        .ok_or(too_small)?;
    let extent_end = align_up(extent, GRANULE).ok_or(too_small)?;
    if extent_end > dtb_rel {
        return Err(too_small);
    }
    let dtb = ram_base + dtb_rel;
    Ok(Layout {
        payload: Payload::Firmware,
        image: Region {
            base: ram_base,
            size: firmware_file_len,
        },
        image_extent: Region {
            base: ram_base,
            size: extent_end,
        },
        initrd: None,
        dtb: Region {
            base: dtb,
            size: dtb_max,
        },
        pc: ram_base,
        x0: dtb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: u64 = 1 << 20;
    const RAM: u64 = 0x8000_0000;
    const DTB: u64 = 0x1_0000;

    /// A header with these fields (and the magic unless `magic` is false).
    fn header(text_offset: u64, image_size: u64, flags: u64) -> [u8; 64] {
        let mut h = [0u8; 64];
        h[0..4].copy_from_slice(&0x9100_0000u32.to_le_bytes());
        h[8..16].copy_from_slice(&text_offset.to_le_bytes());
        h[16..24].copy_from_slice(&image_size.to_le_bytes());
        h[24..32].copy_from_slice(&flags.to_le_bytes());
        h[0x38..0x3c].copy_from_slice(b"ARM\x64");
        h
    }

    /// Debian 7.3.4 cloud: text_offset 0, 4 KiB pages, anywhere, image_size 42,795,008.
    fn debian() -> ImageHeader {
        ImageHeader::parse(&header(0, 42_795_008, 0xa)).unwrap()
    }

    #[test]
    fn parses_a_modern_header() {
        let h = debian();
        assert_eq!(
            h,
            ImageHeader {
                text_offset: 0,
                image_size: 42_795_008,
                flags: 0xa,
                page_size: PageSize::K4,
                place_anywhere: true,
            }
        );
        assert_eq!(h.extent(41_795_520), 42_795_008);
        assert_eq!(
            h.extent(50_000_000),
            50_000_000,
            "a file longer than image_size"
        );
        for (flags, ps) in [
            (0, PageSize::Unspecified),
            (2, PageSize::K4),
            (4, PageSize::K16),
            (6, PageSize::K64),
        ] {
            let h = ImageHeader::parse(&header(0x8_0000, 1 << 20, flags)).unwrap();
            assert_eq!(h.page_size, ps);
            assert!(!h.place_anywhere);
            assert_eq!(h.text_offset, 0x8_0000);
        }
    }

    #[test]
    fn image_size_zero_is_a_legacy_kernel() {
        // The text_offset and flags fields are not read: 0x80000, no flags.
        let h = ImageHeader::parse(&header(0x1234_5678, 0, FLAG_BE | 7)).unwrap();
        assert_eq!(h.text_offset, LEGACY_TEXT_OFFSET);
        assert_eq!(h.flags, 0);
        assert_eq!(h.page_size, PageSize::Unspecified);
        assert_eq!(h.extent(5 * MIB), 5 * MIB, "the file is the extent");
    }

    #[test]
    fn rejects_what_is_not_an_arm64_image() {
        assert_eq!(
            ImageHeader::parse(&[0u8; 63]),
            Err(LoadError::TooShort { len: 63 })
        );
        assert_eq!(ImageHeader::parse(&[]), Err(LoadError::TooShort { len: 0 }));
        let mut gz = [0u8; 64];
        gz[..3].copy_from_slice(&[0x1f, 0x8b, 8]);
        assert_eq!(
            ImageHeader::parse(&gz),
            Err(LoadError::NotArm64Image(NotImage::Gzip))
        );
        let mut zboot = [0u8; 64];
        zboot[..8].copy_from_slice(b"MZ\0\0zimg");
        assert_eq!(
            ImageHeader::parse(&zboot),
            Err(LoadError::NotArm64Image(NotImage::EfiZboot))
        );
        let mut elf = [0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        assert_eq!(
            ImageHeader::parse(&elf),
            Err(LoadError::NotArm64Image(NotImage::Elf))
        );
        let mut bad = header(0, 1 << 20, 0);
        bad[0x3b] = 0x65;
        assert_eq!(
            ImageHeader::parse(&bad),
            Err(LoadError::NotArm64Image(NotImage::Unknown))
        );
        assert_eq!(
            ImageHeader::parse(&header(0, 1 << 20, 0xb)),
            Err(LoadError::BigEndian)
        );
        assert_eq!(
            ImageHeader::parse(&header(0x8_0800, 1 << 20, 0xa)),
            Err(LoadError::MisalignedTextOffset {
                text_offset: 0x8_0800
            })
        );
        let msg = LoadError::NotArm64Image(NotImage::Gzip).to_string();
        assert!(
            msg.contains("not an arm64 Image") && msg.contains("gzip"),
            "{msg}"
        );
    }

    #[test]
    fn kernel_layout_follows_kvmtool() {
        let l = plan(RAM, 256 * MIB, &debian(), 41_795_520, Some(1_030_891), DTB).unwrap();
        assert_eq!(l.payload, Payload::Kernel);
        assert_eq!(l.pc, RAM);
        assert_eq!(
            l.image,
            Region {
                base: RAM,
                size: 41_795_520
            }
        );
        assert_eq!(
            l.image_extent,
            Region {
                base: RAM,
                size: 42_795_008 // already whole granules
            }
        );
        // limit 0x8FFF_FFFF - 0x1_0000 - 2 MiB = 0x8FDE_FFFF → up to 2 MiB: 0x8FE0_0000.
        assert_eq!(
            l.dtb,
            Region {
                base: 0x8FE0_0000,
                size: DTB
            }
        );
        assert_eq!(l.x0, 0x8FE0_0000);
        let initrd = l.initrd.unwrap();
        assert_eq!(initrd.base, align_down(0x8FE0_0000 - 1_030_891, GRANULE));
        assert_eq!(initrd.size, 1_030_891);
        assert!(initrd.granule_end() <= l.dtb.base);
        assert_eq!(
            l.in_address_order()
                .iter()
                .map(|(p, _)| *p)
                .collect::<Vec<_>>(),
            [Part::Image, Part::Initrd, Part::Dtb]
        );

        // More than 256 MiB: the same places (the low window).
        let big = plan(RAM, 1 << 30, &debian(), 41_795_520, Some(1_030_891), DTB).unwrap();
        assert_eq!(big, l);

        // 128 MiB: the top of 128 MiB.
        let small = plan(RAM, 128 * MIB, &debian(), 41_795_520, None, DTB).unwrap();
        assert_eq!(small.dtb.base, 0x87E0_0000);
        assert_eq!(small.initrd, None);
        assert_eq!(small.in_address_order().len(), 2);
    }

    #[test]
    fn text_offset_and_legacy_kernels() {
        let h = ImageHeader::parse(&header(0x8_0000, 3 * MIB + 1, 0x2)).unwrap();
        let l = plan(RAM, 64 * MIB, &h, 3 * MIB, None, DTB).unwrap();
        assert_eq!(l.pc, RAM + 0x8_0000);
        assert_eq!(l.image.base, RAM + 0x8_0000);
        assert_eq!(
            l.image_extent.size,
            3 * MIB + GRANULE,
            "rounded up to a granule"
        );

        let old = ImageHeader::parse(&header(0, 0, 0)).unwrap();
        let l = plan(RAM, 64 * MIB, &old, 10 * MIB, None, DTB).unwrap();
        assert_eq!(l.pc, RAM + LEGACY_TEXT_OFFSET);
        assert_eq!(l.image_extent.size, 10 * MIB);
    }

    #[test]
    fn what_does_not_fit_is_named() {
        // 48 MiB: the DTB at +46 MiB, a 6 MiB initrd at +40 MiB, below the kernel's end
        // (+40.8 MiB).
        let e = plan(RAM, 48 * MIB, &debian(), 41_795_520, Some(6 * MIB), DTB).unwrap_err();
        assert_eq!(
            e,
            LoadError::TooSmall {
                payload: Payload::Kernel,
                ram_size: 48 * MIB,
                window: 48 * MIB,
                offset: 0,
                extent: 42_795_008,
                initrd: Some(6 * MIB),
                dtb: DTB,
            }
        );
        assert_eq!(
            e.to_string(),
            "RAM of 48 MiB is too small for kernel (image_size 0x28d0000 at offset 0x0) + \
             initrd (0x600000) + DTB (0x10000) in its first 48 MiB"
        );
        // A 5 MiB initrd (at +41 MiB) fits, and so does none.
        let l = plan(RAM, 48 * MIB, &debian(), 41_795_520, Some(5 * MIB), DTB).unwrap();
        assert_eq!(l.initrd.unwrap().base, RAM + 41 * MIB);
        assert_eq!(l.dtb.base, RAM + 46 * MIB);
        assert!(plan(RAM, 48 * MIB, &debian(), 41_795_520, None, DTB).is_ok());
        // The smallest RAM that holds a DTB window: 2 MiB + 64 KiB + 1 byte → 4 MiB here.
        assert!(plan(RAM, 2 * MIB, &debian(), 64, None, DTB).is_err());
        let tiny = ImageHeader::parse(&header(0, 4096, 0)).unwrap();
        let l = plan(RAM, 4 * MIB, &tiny, 64, None, DTB).unwrap();
        assert_eq!(l.dtb.base, RAM + 2 * MIB);
        // Huge sizes are errors, not overflows.
        let huge = ImageHeader::parse(&header(0, u64::MAX, 0)).unwrap();
        assert!(matches!(
            plan(RAM, 256 * MIB, &huge, 64, None, DTB),
            Err(LoadError::TooSmall { .. })
        ));
        assert!(matches!(
            plan(RAM, 256 * MIB, &tiny, 64, Some(u64::MAX), DTB),
            Err(LoadError::TooSmall { .. })
        ));
        let far = ImageHeader {
            text_offset: !(GRANULE - 1),
            ..tiny
        };
        assert!(matches!(
            plan(RAM, 256 * MIB, &far, 64, None, DTB),
            Err(LoadError::TooSmall { .. })
        ));
    }

    #[test]
    fn bad_arguments() {
        let h = debian();
        for (base, size) in [
            (RAM, 0),
            (RAM + 4096, 256 * MIB),
            (RAM, 256 * MIB + 1),
            (!(BLOCK_2M - 1), 4 * MIB),
        ] {
            assert_eq!(
                plan(base, size, &h, 64, None, DTB),
                Err(LoadError::BadRam { base, size })
            );
            assert_eq!(
                plan_firmware(base, size, &h, 64, DTB),
                Err(LoadError::BadRam { base, size })
            );
        }
        for size in [0, 100, MAX_DTB_WINDOW + GRANULE] {
            assert_eq!(
                plan(RAM, 256 * MIB, &h, 64, None, size),
                Err(LoadError::BadDtbWindow { size })
            );
            assert_eq!(
                plan_firmware(RAM, 256 * MIB, &h, 64, size),
                Err(LoadError::BadDtbWindow { size })
            );
        }
        assert!(plan(RAM, 256 * MIB, &h, 64, None, MAX_DTB_WINDOW).is_ok());
        assert_eq!(
            plan(RAM, 256 * MIB, &h, 63, None, DTB),
            Err(LoadError::TooShort { len: 63 })
        );
        assert_eq!(
            plan_firmware(RAM, 256 * MIB, &h, 0, DTB),
            Err(LoadError::TooShort { len: 0 })
        );
        assert_eq!(
            plan(RAM, 256 * MIB, &h, 64, Some(0), DTB),
            Err(LoadError::EmptyInitrd)
        );
        let odd = ImageHeader {
            text_offset: 0x100,
            ..h
        };
        assert_eq!(
            plan(RAM, 256 * MIB, &odd, 64, None, DTB),
            Err(LoadError::MisalignedTextOffset { text_offset: 0x100 })
        );
    }

    #[test]
    fn firmware_layout_follows_kvmtool_cca() {
        // edk2's KVMTOOL_EFI.fd: text_offset 0x80000, image_size 2 MiB, a 2 MiB file.
        let fw = ImageHeader::parse(&header(0x8_0000, 2 * MIB, 0)).unwrap();
        let l = plan_firmware(RAM, 512 * MIB, &fw, 2 * MIB, DTB).unwrap();
        assert_eq!(l.payload, Payload::Firmware);
        assert_eq!(l.pc, RAM, "at the RAM base, not + text_offset");
        assert_eq!(
            l.image,
            Region {
                base: RAM,
                size: 2 * MIB
            }
        );
        assert_eq!(
            l.image_extent,
            Region {
                base: RAM,
                size: 2 * MIB
            }
        );
        assert_eq!(
            l.dtb,
            Region {
                base: 0x9FE0_0000,
                size: DTB
            }
        );
        assert_eq!(l.x0, 0x9FE0_0000);
        assert_eq!(l.initrd, None);
        // 256 MiB: 0x8FE0_0000 (the same formula over all RAM).
        assert_eq!(
            plan_firmware(RAM, 256 * MIB, &fw, 2 * MIB, DTB)
                .unwrap()
                .dtb
                .base,
            0x8FE0_0000
        );
        // 4 MiB: the DTB at +2 MiB, just clear of the 2 MiB image.
        assert_eq!(
            plan_firmware(RAM, 4 * MIB, &fw, 2 * MIB, DTB)
                .unwrap()
                .dtb
                .base,
            RAM + 2 * MIB
        );
        let e = plan_firmware(RAM, 2 * MIB, &fw, 2 * MIB, DTB).unwrap_err();
        assert_eq!(
            e.to_string(),
            "RAM of 2 MiB is too small for firmware (image_size 0x200000 at offset 0x0) + DTB \
             (0x10000) in its first 2 MiB"
        );
        let big = ImageHeader::parse(&header(0, 3 * MIB, 0)).unwrap();
        assert!(matches!(
            plan_firmware(RAM, 4 * MIB, &big, 64, DTB),
            Err(LoadError::TooSmall { .. })
        ));
    }

    fn check_layout(l: &Layout, ram_base: u64, ram_size: u64, dtb_max: u64) {
        let ram_end = ram_base + ram_size;
        let parts = l.in_address_order();
        for (_, r) in &parts {
            assert_eq!(r.base % GRANULE, 0, "{l:?}");
            assert!(r.base >= ram_base && r.granule_end() <= ram_end, "{l:?}");
        }
        for w in parts.windows(2) {
            assert!(w[0].1.granule_end() <= w[1].1.base, "overlap in {l:?}");
        }
        assert!(l.image_extent.granule_end() <= parts[1].1.base, "{l:?}");
        assert_eq!(l.image_extent.size % GRANULE, 0);
        assert!(l.image_extent.size >= l.image.size);
        assert_eq!(l.dtb.base % BLOCK_2M, 0);
        assert_eq!(l.dtb.size, dtb_max);
        assert_eq!(l.x0, l.dtb.base);
        assert_eq!(l.pc, l.image.base);
        if l.payload == Payload::Kernel {
            assert!(l.dtb.end() <= ram_base + ram_size.min(LOW_RAM_WINDOW));
        }
    }

    proptest! {
        #[test]
        fn layouts_never_overlap(
            base_blocks in 0x400u64..0x800,
            ram_granules in 1u64..0x4_0000,
            text_granules in 0u64..0x200,
            image_size in prop_oneof![Just(0u64), 0u64..(512 << 20), any::<u64>()],
            file_len in 0u64..(300 << 20),
            initrd in proptest::option::of(prop_oneof![0u64..(300 << 20), any::<u64>()]),
            dtb_granules in 0u64..0x300,
        ) {
            let (ram_base, ram_size) = (base_blocks * BLOCK_2M, ram_granules * GRANULE);
            let dtb_max = dtb_granules * GRANULE;
            let h = ImageHeader {
                text_offset: text_granules * GRANULE,
                image_size,
                flags: 0,
                page_size: PageSize::Unspecified,
                place_anywhere: false,
            };
            if let Ok(l) = plan(ram_base, ram_size, &h, file_len, initrd, dtb_max) {
                check_layout(&l, ram_base, ram_size, dtb_max);
                prop_assert_eq!(l.image.size, file_len);
                prop_assert_eq!(l.initrd.map(|r| r.size), initrd);
            }
            if let Ok(l) = plan_firmware(ram_base, ram_size, &h, file_len, dtb_max) {
                check_layout(&l, ram_base, ram_size, dtb_max);
                prop_assert_eq!(l.image.base, ram_base);
            }
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = ImageHeader::parse(&bytes);
        }
    }
}
