//! The launch description: what the launcher (`cargo xtask run`) tells the bare-metal host to
//! run, as text in one page of memory.
//!
//! # Text format, version 1
//!
//! UTF-8, at most [`MAX_TEXT`] bytes, lines separated by `\n`. The first line is exactly
//! `cca-launch 1`. Every other line is `key=value` (split at the first `=`), a comment starting
//! with `#`, or empty. Each key appears at most once; unknown keys are errors.
//!
//! | key | value | |
//! |---|---|---|
//! | `kernel` | `PA,SIZE`: a Linux arm64 `Image` in host memory | one of `kernel`, `firmware` |
//! | `firmware` | `PA,SIZE`: firmware in `Image` format (edk2) | |
//! | `initrd` | `PA,SIZE` | optional, with `kernel` only |
//! | `mem` | realm RAM in MiB: even (whole 2 MiB blocks), 2 ..= [`MAX_MEM_MIB`] | required |
//! | `cpus` | vCPUs, 1 ..= the limit | required |
//! | `hash` | `sha256` or `sha512` | default `sha256` |
//! | `rpv` | the Realm Personalisation Value: up to 128 hex digits (64 bytes, an even count), zero-padded on the right to 64 bytes | default zero |
//! | `measure_initrd` | `yes` or `no`: whether the initrd is measured into the RIM | default `yes` |
//! | `num_bps`, `num_wps` | breakpoints, watchpoints: 1 ..= the limit | default 2 each |
//! | `disk` | `PA,SIZE,ro` or `PA,SIZE,rw`: a disk image, SIZE a multiple of 512 | optional |
//! | `bootargs` | the rest of the line (spaces and `=` included), at most [`MAX_BOOTARGS`] bytes, no control characters | optional |
//!
//! Numbers are decimal or `0x` hexadecimal. Every PA is 4 KiB-aligned (so the host can hand
//! the file's pages to `RMI_DATA_CREATE` as source granules), every SIZE non-zero, no range
//! wraps and no two ranges overlap. [`LaunchDesc::to_text`] writes every field, in the order
//! of the table; [`parse`] of its output gives the same description back.
//!
//! # In memory
//!
//! One 4 KiB page ([`LAUNCH_PAGE_SIZE`]): the magic [`PAGE_MAGIC`] (u64, little-endian), the
//! text's length (u64, little-endian, at most [`MAX_TEXT`]), the text, zeros.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use super::dtb::MAX_BOOTARGS as DTB_MAX_BOOTARGS;
use super::platform::{ipa_bits, RAM_BASE};
use cca_abi::rmi::{feat0, feat1, HashAlgorithm};

/// The first line of a version 1 description.
pub const HEADER: &str = "cca-launch 1";
/// The page the description sits in.
pub const LAUNCH_PAGE_SIZE: usize = 4096;
/// The page's magic: `"CCA-LNCH"` as a little-endian u64.
pub const PAGE_MAGIC: u64 = u64::from_le_bytes(*b"CCA-LNCH");
/// The longest text a page holds.
pub const MAX_TEXT: usize = LAUNCH_PAGE_SIZE - 16;
/// The longest `bootargs`: what the device tree takes (Linux's `COMMAND_LINE_SIZE` − 1).
pub const MAX_BOOTARGS: usize = DTB_MAX_BOOTARGS;
/// The most RAM a description asks for (1 TiB).
pub const MAX_MEM_MIB: u64 = 1 << 20;
/// The RPV's size.
pub const RPV_SIZE: usize = 64;
/// The breakpoint and watchpoint counts used when the text does not give them.
pub const DEFAULT_BPS_WPS: u32 = 2;
/// Alignment of every host PA.
const PA_ALIGN: u64 = 4096;
/// Disk sizes are whole sectors.
const SECTOR: u64 = 512;

/// The realm's measurement algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlgo {
    /// SHA-256.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl HashAlgo {
    /// Its name in the text.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    /// The `RmiHashAlgorithm` for `REALM_CREATE`.
    pub const fn to_rmi(self) -> HashAlgorithm {
        match self {
            Self::Sha256 => HashAlgorithm::Sha256,
            Self::Sha512 => HashAlgorithm::Sha512,
        }
    }
}

/// A file in host (Normal world) physical memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostBlob {
    /// Its physical address (4 KiB-aligned).
    pub pa: u64,
    /// Its length in bytes (non-zero).
    pub size: u64,
}

/// A disk image in host memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disk {
    /// Its physical address (4 KiB-aligned).
    pub pa: u64,
    /// Its length in bytes (a non-zero multiple of 512).
    pub size: u64,
    /// The guest may not write it.
    pub read_only: bool,
}

/// A parsed launch description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchDesc {
    /// The Linux kernel `Image` (exclusive with `firmware`).
    pub kernel: Option<HostBlob>,
    /// The initrd (with a kernel only).
    pub initrd: Option<HostBlob>,
    /// Firmware in `Image` format (exclusive with `kernel`).
    pub firmware: Option<HostBlob>,
    /// Realm RAM in MiB.
    pub mem_mib: u64,
    /// Number of vCPUs.
    pub cpus: u32,
    /// Measurement algorithm.
    pub hash: HashAlgo,
    /// Realm Personalisation Value.
    pub rpv: [u8; RPV_SIZE],
    /// Kernel command line (`/chosen/bootargs`).
    pub bootargs: Option<String>,
    /// Whether the initrd is measured into the RIM (else populated unmeasured).
    pub measure_initrd: bool,
    /// Breakpoints the realm gets.
    pub num_bps: u32,
    /// Watchpoints the realm gets.
    pub num_wps: u32,
    /// A disk image.
    pub disk: Option<Disk>,
}

/// What the RMM (or the format itself) allows; see [`LaunchLimits::from_features`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchLimits {
    /// Most vCPUs (RECs).
    pub max_cpus: u32,
    /// Most breakpoints.
    pub max_bps: u32,
    /// Most watchpoints.
    pub max_wps: u32,
    /// Widest realm IPA space (the RAM's top plus the shared bit must fit).
    pub max_ipa_bits: u32,
    /// SHA-256 is available.
    pub sha256: bool,
    /// SHA-512 is available.
    pub sha512: bool,
}

impl LaunchLimits {
    /// What the format allows, whatever the RMM: what [`parse`] checks and what a launcher
    /// that has not asked the RMM can check.
    pub const FORMAT: Self = Self {
        max_cpus: super::dtb::MAX_CPUS as u32,
        max_bps: 63,
        max_wps: 63,
        max_ipa_bits: super::dtb::MAX_IPA_BITS,
        sha256: true,
        sha512: true,
    };

    /// The limits from the RMM's feature registers 0 and 1 (`RMI_FEATURES`): S2SZ, NUM_BPS
    /// and NUM_WPS (compared as the RMM compares them), the hash algorithms, and
    /// `2^MAX_RECS_ORDER − 1` RECs; each also within [`Self::FORMAT`].
    pub fn from_features(feat0_value: u64, feat1_value: u64) -> Self {
        let field = |v: u64, shift: u32, bits: u32| ((v >> shift) & ((1 << bits) - 1)) as u32;
        let order = field(feat1_value, feat1::MAX_RECS_ORDER_SHIFT, 4);
        let f = Self::FORMAT;
        Self {
            max_cpus: ((1u32 << order) - 1).min(f.max_cpus),
            max_bps: field(feat0_value, feat0::NUM_BPS_SHIFT, 6).min(f.max_bps),
            max_wps: field(feat0_value, feat0::NUM_WPS_SHIFT, 6).min(f.max_wps),
            max_ipa_bits: field(feat0_value, feat0::S2SZ_SHIFT, 8).min(f.max_ipa_bits),
            sha256: feat1_value & feat1::HASH_SHA_256 != 0,
            sha512: feat1_value & feat1::HASH_SHA_512 != 0,
        }
    }
}

/// Why a launch description (or its page) is not usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LaunchError {
    /// The page is shorter than its 16-byte header.
    PageTooShort {
        /// Bytes given.
        len: usize,
    },
    /// The page does not start with [`PAGE_MAGIC`].
    BadPageMagic {
        /// The value found.
        found: u64,
    },
    /// The page's length field is larger than [`MAX_TEXT`] or than the bytes given.
    BadPageLength {
        /// The length field.
        len: u64,
    },
    /// The text is longer than a page holds.
    TextTooLong {
        /// Its length.
        len: usize,
    },
    /// The text is not UTF-8.
    NotUtf8 {
        /// The line (1-based) with the first bad byte.
        line: usize,
    },
    /// The first line is not `cca-launch <version>`.
    BadHeader,
    /// The first line names a version this host does not read.
    UnsupportedVersion {
        /// The version given.
        version: String,
    },
    /// A line is neither `key=value`, a comment nor empty.
    Syntax {
        /// Its number (1-based).
        line: usize,
    },
    /// A key this version does not define.
    UnknownKey {
        /// Its line.
        line: usize,
        /// The key (at most 32 characters of it).
        key: String,
    },
    /// A key given twice.
    DuplicateKey {
        /// The second occurrence's line.
        line: usize,
        /// The key.
        key: &'static str,
    },
    /// A value that does not parse.
    BadValue {
        /// Its line.
        line: usize,
        /// The key.
        key: &'static str,
        /// What the value must look like.
        expected: &'static str,
    },
    /// A required key is missing.
    Missing {
        /// The key (or `"kernel or firmware"`).
        key: &'static str,
    },
    /// Both `kernel` and `firmware` are given.
    KernelAndFirmware,
    /// `initrd` without `kernel`.
    InitrdWithoutKernel,
    /// A size of 0.
    ZeroSize {
        /// The key.
        key: &'static str,
    },
    /// A PA that is not 4 KiB-aligned.
    Misaligned {
        /// The key.
        key: &'static str,
        /// The PA.
        pa: u64,
    },
    /// PA + SIZE wraps.
    Overflow {
        /// The key.
        key: &'static str,
    },
    /// Two host ranges overlap.
    Overlap {
        /// One key.
        first: &'static str,
        /// The other.
        second: &'static str,
    },
    /// The disk size is not a whole number of 512-byte sectors.
    DiskNotSectors {
        /// Its size.
        size: u64,
    },
    /// `mem` is 0, odd, or above [`MAX_MEM_MIB`].
    BadMem {
        /// The value.
        mib: u64,
    },
    /// RAM of that size does not fit the IPA width allowed.
    MemBeyondIpa {
        /// The value.
        mib: u64,
        /// The IPA width it needs.
        needs: u32,
        /// The width allowed.
        max: u32,
    },
    /// `cpus` is 0 or above the limit.
    BadCpus {
        /// The value.
        cpus: u32,
        /// The limit.
        max: u32,
    },
    /// `num_bps` is 0 or above the limit.
    BadBps {
        /// The value.
        value: u32,
        /// The limit.
        max: u32,
    },
    /// `num_wps` is 0 or above the limit.
    BadWps {
        /// The value.
        value: u32,
        /// The limit.
        max: u32,
    },
    /// The algorithm is not one the RMM offers.
    UnsupportedHash {
        /// The algorithm.
        hash: HashAlgo,
    },
    /// The RPV is longer than 64 bytes.
    RpvTooLong {
        /// Hex digits given.
        digits: usize,
    },
    /// The RPV is not an even number of hex digits.
    RpvNotHex {
        /// Its line.
        line: usize,
    },
    /// `bootargs` is longer than [`MAX_BOOTARGS`].
    BootargsTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// `bootargs` contains a control character (NUL, tab, CR, ...).
    BootargsControl,
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PageTooShort { len } => write!(
                f,
                "launch page: {len} bytes, shorter than its 16-byte header"
            ),
            Self::BadPageMagic { found } => write!(
                f,
                "launch page: magic {found:#018x} is not \"CCA-LNCH\" ({PAGE_MAGIC:#018x}); \
                 the launcher did not write a description there"
            ),
            Self::BadPageLength { len } => write!(
                f,
                "launch page: text length {len} is more than the page holds ({MAX_TEXT})"
            ),
            Self::TextTooLong { len } => write!(
                f,
                "launch description of {len} bytes does not fit a page ({MAX_TEXT} at most); \
                 shorten bootargs"
            ),
            Self::NotUtf8 { line } => write!(f, "line {line}: not UTF-8 text"),
            Self::BadHeader => write!(f, "line 1 must be \"{HEADER}\""),
            Self::UnsupportedVersion { version } => write!(
                f,
                "launch description version {version:?}: this host reads version 1; rebuild \
                 the launcher and the host together"
            ),
            Self::Syntax { line } => write!(
                f,
                "line {line}: expected key=value, a # comment or an empty line"
            ),
            Self::UnknownKey { line, key } => write!(
                f,
                "line {line}: unknown key {key:?} (known: kernel, initrd, firmware, mem, cpus, \
                 hash, rpv, measure_initrd, num_bps, num_wps, disk, bootargs)"
            ),
            Self::DuplicateKey { line, key } => {
                write!(f, "line {line}: {key} is given a second time")
            }
            Self::BadValue {
                line,
                key,
                expected,
            } => write!(f, "line {line}: {key} must be {expected}"),
            Self::Missing { key } => write!(f, "the description gives no {key}"),
            Self::KernelAndFirmware => write!(
                f,
                "kernel and firmware are both given; a realm boots one of them"
            ),
            Self::InitrdWithoutKernel => {
                write!(f, "an initrd is given without a kernel to pass it to")
            }
            Self::ZeroSize { key } => write!(f, "{key} has size 0"),
            Self::Misaligned { key, pa } => {
                write!(f, "{key} at {pa:#x} is not at a 4 KiB-aligned address")
            }
            Self::Overflow { key } => write!(f, "{key}: address + size is beyond 2^64"),
            Self::Overlap { first, second } => {
                write!(f, "{first} and {second} overlap in host memory")
            }
            Self::DiskNotSectors { size } => {
                write!(f, "the disk's {size} bytes are not whole 512-byte sectors")
            }
            Self::BadMem { mib } => write!(
                f,
                "mem={mib}: realm RAM must be an even number of MiB (whole 2 MiB blocks), \
                 2 to {MAX_MEM_MIB}"
            ),
            Self::MemBeyondIpa { mib, needs, max } => write!(
                f,
                "mem={mib}: RAM at {RAM_BASE:#x} needs a {needs}-bit IPA space, the RMM \
                 offers {max} bits"
            ),
            Self::BadCpus { cpus, max } => {
                write!(f, "cpus={cpus}: a realm has 1 to {max} vCPUs here")
            }
            Self::BadBps { value, max } => {
                write!(f, "num_bps={value}: the RMM allows 1 to {max} breakpoints")
            }
            Self::BadWps { value, max } => {
                write!(f, "num_wps={value}: the RMM allows 1 to {max} watchpoints")
            }
            Self::UnsupportedHash { hash } => write!(
                f,
                "hash={}: the RMM does not offer this algorithm",
                hash.name()
            ),
            Self::RpvTooLong { digits } => write!(
                f,
                "rpv has {digits} hex digits; the RPV is at most 64 bytes (128 digits)"
            ),
            Self::RpvNotHex { line } => write!(
                f,
                "line {line}: rpv must be an even number of hex digits (0-9, a-f)"
            ),
            Self::BootargsTooLong { len } => write!(
                f,
                "bootargs is {len} bytes; Linux takes at most {MAX_BOOTARGS}"
            ),
            Self::BootargsControl => write!(f, "bootargs contains a control character"),
        }
    }
}

/// The keys, in [`LaunchDesc::to_text`]'s order.
const KEYS: [&str; 12] = [
    "kernel",
    "initrd",
    "firmware",
    "mem",
    "cpus",
    "hash",
    "rpv",
    "measure_initrd",
    "num_bps",
    "num_wps",
    "disk",
    "bootargs",
];

fn parse_u64(s: &str) -> Option<u64> {
    let (digits, radix) = match s.strip_prefix("0x") {
        Some(h) => (h, 16),
        None => (s, 10),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

fn parse_u32(s: &str) -> Option<u32> {
    parse_u64(s).and_then(|v| u32::try_from(v).ok())
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The first `max` characters of `s`.
fn truncated(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

impl LaunchDesc {
    /// A description booting `kernel` with `mem_mib` MiB and `cpus` vCPUs, everything else at
    /// its default.
    pub fn with_kernel(kernel: HostBlob, mem_mib: u64, cpus: u32) -> Self {
        Self {
            kernel: Some(kernel),
            ..Self::defaults(mem_mib, cpus)
        }
    }

    /// A description booting `firmware`, everything else at its default.
    pub fn with_firmware(firmware: HostBlob, mem_mib: u64, cpus: u32) -> Self {
        Self {
            firmware: Some(firmware),
            ..Self::defaults(mem_mib, cpus)
        }
    }

    /// Every optional field at its default, and nothing to boot.
    fn defaults(mem_mib: u64, cpus: u32) -> Self {
        Self {
            kernel: None,
            initrd: None,
            firmware: None,
            mem_mib,
            cpus,
            hash: HashAlgo::Sha256,
            rpv: [0; RPV_SIZE],
            bootargs: None,
            measure_initrd: true,
            num_bps: DEFAULT_BPS_WPS,
            num_wps: DEFAULT_BPS_WPS,
            disk: None,
        }
    }

    /// Realm RAM in bytes (`mem_mib` is bounded by validation, so this does not overflow for
    /// a valid description; it saturates otherwise).
    pub fn mem_bytes(&self) -> u64 {
        self.mem_mib.saturating_mul(1 << 20)
    }

    /// Checks every rule of the format and the RMM's `limits`; [`parse`] has checked the
    /// format's own ([`LaunchLimits::FORMAT`]).
    pub fn validate(&self, limits: &LaunchLimits) -> Result<(), LaunchError> {
        match (&self.kernel, &self.firmware) {
            (Some(_), Some(_)) => return Err(LaunchError::KernelAndFirmware),
            (None, None) => {
                return Err(LaunchError::Missing {
                    key: "kernel or firmware",
                })
            }
            _ => {}
        }
        if self.initrd.is_some() && self.kernel.is_none() {
            return Err(LaunchError::InitrdWithoutKernel);
        }
        let mut ranges: Vec<(&'static str, u64, u64)> = Vec::with_capacity(4);
        let blobs = [
            ("kernel", self.kernel),
            ("initrd", self.initrd),
            ("firmware", self.firmware),
            (
                "disk",
                self.disk.map(|d| HostBlob {
                    pa: d.pa,
                    size: d.size,
                }),
            ),
        ];
        for (key, blob) in blobs {
            let Some(b) = blob else { continue };
            if b.size == 0 {
                return Err(LaunchError::ZeroSize { key });
            }
            if b.pa % PA_ALIGN != 0 {
                return Err(LaunchError::Misaligned { key, pa: b.pa });
            }
            let end =
                b.pa.checked_add(b.size)
                    .ok_or(LaunchError::Overflow { key })?;
            if let Some(&(first, _, _)) = ranges.iter().find(|&&(_, s, e)| b.pa < e && s < end) {
                return Err(LaunchError::Overlap { first, second: key });
            }
            ranges.push((key, b.pa, end));
        }
        if let Some(d) = self.disk {
            if d.size % SECTOR != 0 {
                return Err(LaunchError::DiskNotSectors { size: d.size });
            }
        }

        let mib = self.mem_mib;
        if mib == 0 || mib % 2 != 0 || mib > MAX_MEM_MIB {
            return Err(LaunchError::BadMem { mib });
        }
        let needs = ipa_bits(RAM_BASE, self.mem_bytes()).unwrap_or(u32::MAX);
        let max_ipa = limits.max_ipa_bits.min(LaunchLimits::FORMAT.max_ipa_bits);
        if needs > max_ipa {
            return Err(LaunchError::MemBeyondIpa {
                mib,
                needs,
                max: max_ipa,
            });
        }
        let max_cpus = limits.max_cpus.min(LaunchLimits::FORMAT.max_cpus);
        if self.cpus == 0 || self.cpus > max_cpus {
            return Err(LaunchError::BadCpus {
                cpus: self.cpus,
                max: max_cpus,
            });
        }
        let max_bps = limits.max_bps.min(LaunchLimits::FORMAT.max_bps);
        if self.num_bps == 0 || self.num_bps > max_bps {
            return Err(LaunchError::BadBps {
                value: self.num_bps,
                max: max_bps,
            });
        }
        let max_wps = limits.max_wps.min(LaunchLimits::FORMAT.max_wps);
        if self.num_wps == 0 || self.num_wps > max_wps {
            return Err(LaunchError::BadWps {
                value: self.num_wps,
                max: max_wps,
            });
        }
        let offered = match self.hash {
            HashAlgo::Sha256 => limits.sha256,
            HashAlgo::Sha512 => limits.sha512,
        };
        if !offered {
            return Err(LaunchError::UnsupportedHash { hash: self.hash });
        }
        if let Some(args) = &self.bootargs {
            if args.len() > MAX_BOOTARGS {
                return Err(LaunchError::BootargsTooLong { len: args.len() });
            }
            if args.chars().any(char::is_control) {
                return Err(LaunchError::BootargsControl);
            }
        }
        Ok(())
    }

    /// The text of this description (every field, in the format's order). For a valid
    /// description it is at most [`MAX_TEXT`] bytes and [`parse`] returns `self` from it.
    pub fn to_text(&self) -> String {
        let mut s = String::with_capacity(512);
        // Writing into a String cannot fail.
        let _ = self.write_text(&mut s);
        s
    }

    fn write_text(&self, s: &mut String) -> fmt::Result {
        writeln!(s, "{HEADER}")?;
        for (key, blob) in [
            ("kernel", self.kernel),
            ("initrd", self.initrd),
            ("firmware", self.firmware),
        ] {
            if let Some(b) = blob {
                writeln!(s, "{key}={:#x},{}", b.pa, b.size)?;
            }
        }
        writeln!(s, "mem={}", self.mem_mib)?;
        writeln!(s, "cpus={}", self.cpus)?;
        writeln!(s, "hash={}", self.hash.name())?;
        s.push_str("rpv=");
        for b in self.rpv {
            write!(s, "{b:02x}")?;
        }
        s.push('\n');
        let yes_no = if self.measure_initrd { "yes" } else { "no" };
        writeln!(s, "measure_initrd={yes_no}")?;
        writeln!(s, "num_bps={}", self.num_bps)?;
        writeln!(s, "num_wps={}", self.num_wps)?;
        if let Some(d) = self.disk {
            let mode = if d.read_only { "ro" } else { "rw" };
            writeln!(s, "disk={:#x},{},{mode}", d.pa, d.size)?;
        }
        if let Some(args) = &self.bootargs {
            writeln!(s, "bootargs={args}")?;
        }
        Ok(())
    }
}

/// Parses `PA,SIZE`.
fn parse_blob(value: &str, line: usize, key: &'static str) -> Result<HostBlob, LaunchError> {
    let bad = LaunchError::BadValue {
        line,
        key,
        expected: "PA,SIZE (decimal or 0x hex)",
    };
    let (pa, size) = value.split_once(',').ok_or(bad.clone())?;
    Ok(HostBlob {
        pa: parse_u64(pa).ok_or(bad.clone())?,
        size: parse_u64(size).ok_or(bad)?,
    })
}

fn parse_rpv(value: &str, line: usize) -> Result<[u8; RPV_SIZE], LaunchError> {
    let digits = value.as_bytes();
    if digits.len() > 2 * RPV_SIZE {
        return Err(LaunchError::RpvTooLong {
            digits: digits.len(),
        });
    }
    if digits.len() % 2 != 0 {
        return Err(LaunchError::RpvNotHex { line });
    }
    let mut rpv = [0u8; RPV_SIZE];
    for (out, pair) in rpv.iter_mut().zip(digits.chunks_exact(2)) {
        let (Some(hi), Some(lo)) = (hex_digit(pair[0]), hex_digit(pair[1])) else {
            return Err(LaunchError::RpvNotHex { line });
        };
        *out = hi << 4 | lo;
    }
    Ok(rpv)
}

/// Parses and validates (against [`LaunchLimits::FORMAT`]) a description.
pub fn parse(text: &[u8]) -> Result<LaunchDesc, LaunchError> {
    if text.len() > MAX_TEXT {
        return Err(LaunchError::TextTooLong { len: text.len() });
    }
    let text = core::str::from_utf8(text).map_err(|e| {
        let before = text.get(..e.valid_up_to()).unwrap_or_default();
        LaunchError::NotUtf8 {
            line: 1 + before.iter().filter(|&&b| b == b'\n').count(),
        }
    })?;
    let mut lines = text.split('\n');
    let first = lines.next().unwrap_or_default();
    let version = first
        .strip_prefix("cca-launch ")
        .ok_or(LaunchError::BadHeader)?;
    if version != "1" {
        if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
            return Err(LaunchError::BadHeader);
        }
        return Err(LaunchError::UnsupportedVersion {
            version: truncated(version, 16),
        });
    }

    let mut desc = LaunchDesc::defaults(0, 0);
    let mut seen = [false; KEYS.len()];
    let (mut mem, mut cpus) = (None, None);
    for (i, l) in lines.enumerate() {
        let line = i + 2;
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let (key, value) = l.split_once('=').ok_or(LaunchError::Syntax { line })?;
        let Some(k) = KEYS.iter().position(|&k| k == key) else {
            return Err(LaunchError::UnknownKey {
                line,
                key: truncated(key, 32),
            });
        };
        let key = KEYS[k];
        if core::mem::replace(&mut seen[k], true) {
            return Err(LaunchError::DuplicateKey { line, key });
        }
        let bad = |expected| LaunchError::BadValue {
            line,
            key,
            expected,
        };
        match key {
            "kernel" => desc.kernel = Some(parse_blob(value, line, key)?),
            "initrd" => desc.initrd = Some(parse_blob(value, line, key)?),
            "firmware" => desc.firmware = Some(parse_blob(value, line, key)?),
            "mem" => mem = Some(parse_u64(value).ok_or(bad("a number of MiB"))?),
            "cpus" => cpus = Some(parse_u32(value).ok_or(bad("a number of vCPUs"))?),
            "hash" => {
                desc.hash = match value {
                    "sha256" => HashAlgo::Sha256,
                    "sha512" => HashAlgo::Sha512,
                    _ => return Err(bad("sha256 or sha512")),
                }
            }
            "rpv" => desc.rpv = parse_rpv(value, line)?,
            "measure_initrd" => {
                desc.measure_initrd = match value {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(bad("yes or no")),
                }
            }
            "num_bps" => desc.num_bps = parse_u32(value).ok_or(bad("a number"))?,
            "num_wps" => desc.num_wps = parse_u32(value).ok_or(bad("a number"))?,
            "disk" => {
                let expected = "PA,SIZE,ro or PA,SIZE,rw";
                let (blob, mode) = value.rsplit_once(',').ok_or(bad(expected))?;
                let read_only = match mode {
                    "ro" => true,
                    "rw" => false,
                    _ => return Err(bad(expected)),
                };
                let b = parse_blob(blob, line, key).map_err(|_| bad(expected))?;
                desc.disk = Some(Disk {
                    pa: b.pa,
                    size: b.size,
                    read_only,
                });
            }
            _ => desc.bootargs = Some(String::from(value)),
        }
    }
    desc.mem_mib = mem.ok_or(LaunchError::Missing { key: "mem" })?;
    desc.cpus = cpus.ok_or(LaunchError::Missing { key: "cpus" })?;
    desc.validate(&LaunchLimits::FORMAT)?;
    Ok(desc)
}

/// The description's text in its page: `bytes` is the page (or more); returns the text.
pub fn decode_page(bytes: &[u8]) -> Result<&[u8], LaunchError> {
    let (Some(magic), Some(len)) = (bytes.get(0..8), bytes.get(8..16)) else {
        return Err(LaunchError::PageTooShort { len: bytes.len() });
    };
    let mut m = [0u8; 8];
    m.copy_from_slice(magic);
    let found = u64::from_le_bytes(m);
    if found != PAGE_MAGIC {
        return Err(LaunchError::BadPageMagic { found });
    }
    let mut l = [0u8; 8];
    l.copy_from_slice(len);
    let len = u64::from_le_bytes(l);
    usize::try_from(len)
        .ok()
        .filter(|&n| n <= MAX_TEXT)
        .and_then(|n| bytes.get(16..16 + n))
        .ok_or(LaunchError::BadPageLength { len })
}

/// The page holding `text`: [`LAUNCH_PAGE_SIZE`] bytes.
pub fn encode_page(text: &[u8]) -> Result<Vec<u8>, LaunchError> {
    if text.len() > MAX_TEXT {
        return Err(LaunchError::TextTooLong { len: text.len() });
    }
    let mut page = Vec::with_capacity(LAUNCH_PAGE_SIZE);
    page.extend_from_slice(&PAGE_MAGIC.to_le_bytes());
    page.extend_from_slice(&(text.len() as u64).to_le_bytes());
    page.extend_from_slice(text);
    page.resize(LAUNCH_PAGE_SIZE, 0);
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;
    use proptest::prelude::*;

    const KERNEL: HostBlob = HostBlob {
        pa: 0x9000_0000,
        size: 41_795_520,
    };
    const INITRD: HostBlob = HostBlob {
        pa: 0x9300_0000,
        size: 1_030_891,
    };

    /// A description with every field away from its default.
    fn full() -> LaunchDesc {
        let mut rpv = [0u8; RPV_SIZE];
        rpv[..4].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        rpv[63] = 0x01;
        LaunchDesc {
            initrd: Some(INITRD),
            hash: HashAlgo::Sha512,
            rpv,
            bootargs: Some(String::from(
                "console=ttyS0 earlycon=uart,mmio,0x101000000 root=/dev/vda a==b  x",
            )),
            measure_initrd: false,
            num_bps: 6,
            num_wps: 4,
            disk: Some(Disk {
                pa: 0xA000_0000,
                size: 64 << 20,
                read_only: true,
            }),
            ..LaunchDesc::with_kernel(KERNEL, 256, 2)
        }
    }

    /// `base` with `line` in place of the line starting with `key=` (or appended).
    fn with_line(base: &str, key: &str, line: Option<&str>) -> String {
        let prefix = format!("{key}=");
        let mut out = String::new();
        let mut replaced = false;
        for l in base.lines() {
            if l.starts_with(&prefix) {
                replaced = true;
                if let Some(n) = line {
                    out.push_str(n);
                    out.push('\n');
                }
            } else {
                out.push_str(l);
                out.push('\n');
            }
        }
        if !replaced {
            if let Some(n) = line {
                out.push_str(n);
                out.push('\n');
            }
        }
        out
    }

    fn minimal() -> String {
        String::from("cca-launch 1\nkernel=0x90000000,4096\nmem=128\ncpus=1\n")
    }

    fn err(text: &str) -> LaunchError {
        parse(text.as_bytes()).expect_err(text)
    }

    #[test]
    fn round_trip() {
        let d = full();
        let text = d.to_text();
        let rpv = format!("deadbeef{}01", "0".repeat(118));
        assert_eq!(rpv.len(), 128);
        assert_eq!(
            text,
            format!(
                "cca-launch 1\n\
                 kernel=0x90000000,41795520\n\
                 initrd=0x93000000,1030891\n\
                 mem=256\n\
                 cpus=2\n\
                 hash=sha512\n\
                 rpv={rpv}\n\
                 measure_initrd=no\n\
                 num_bps=6\n\
                 num_wps=4\n\
                 disk=0xa0000000,67108864,ro\n\
                 bootargs=console=ttyS0 earlycon=uart,mmio,0x101000000 root=/dev/vda a==b  x\n"
            )
        );
        assert_eq!(parse(text.as_bytes()).unwrap(), d);

        let fw = LaunchDesc::with_firmware(
            HostBlob {
                pa: 0x9000_0000,
                size: 2 << 20,
            },
            512,
            1,
        );
        assert_eq!(parse(fw.to_text().as_bytes()).unwrap(), fw);
        let rw = LaunchDesc {
            disk: Some(Disk {
                pa: 0xB000_0000,
                size: 512,
                read_only: false,
            }),
            bootargs: Some(String::new()),
            ..fw
        };
        assert!(rw.to_text().contains("disk=0xb0000000,512,rw\n"));
        assert!(rw.to_text().ends_with("bootargs=\n"));
        assert_eq!(parse(rw.to_text().as_bytes()).unwrap(), rw);
    }

    #[test]
    fn defaults_comments_order_and_number_forms() {
        let d = parse(minimal().as_bytes()).unwrap();
        assert_eq!(
            d,
            LaunchDesc::with_kernel(
                HostBlob {
                    pa: 0x9000_0000,
                    size: 4096
                },
                128,
                1
            )
        );
        assert_eq!(d.hash, HashAlgo::Sha256);
        assert_eq!(d.rpv, [0; 64]);
        assert!(d.measure_initrd);
        assert_eq!((d.num_bps, d.num_wps), (2, 2));
        assert_eq!(
            (d.bootargs.as_deref(), d.disk, d.initrd),
            (None, None, None)
        );
        assert_eq!(d.mem_bytes(), 128 << 20);

        let text = "cca-launch 1\n# a comment\n\ncpus=0x2\nmem=0x100\n\
                    kernel=2415919104,0x1000\nrpv=0A\nbootargs= =x= \n";
        let d = parse(text.as_bytes()).unwrap();
        assert_eq!((d.cpus, d.mem_mib), (2, 256));
        assert_eq!(d.kernel.unwrap().pa, 0x9000_0000);
        assert_eq!(d.rpv[0], 0x0a);
        assert!(
            d.rpv[1..].iter().all(|&b| b == 0),
            "zero-padded on the right"
        );
        assert_eq!(d.bootargs.as_deref(), Some(" =x= "));
        // No final newline.
        assert!(parse(minimal().trim_end().as_bytes()).is_ok());
        // 64 bytes of RPV exactly.
        let rpv = "ab".repeat(64);
        let d =
            parse(with_line(&minimal(), "rpv", Some(&format!("rpv={rpv}"))).as_bytes()).unwrap();
        assert_eq!(d.rpv, [0xab; 64]);
        assert_eq!(HashAlgo::Sha512.to_rmi(), HashAlgorithm::Sha512);
        assert_eq!(HashAlgo::Sha256.to_rmi(), HashAlgorithm::Sha256);
    }

    #[test]
    fn header_and_syntax_errors() {
        assert_eq!(err(""), LaunchError::BadHeader);
        assert_eq!(err("cca-launch\nmem=2\n"), LaunchError::BadHeader);
        assert_eq!(err("cca-launch 1 \n"), LaunchError::BadHeader);
        assert_eq!(err("# c\ncca-launch 1\n"), LaunchError::BadHeader);
        assert_eq!(
            err("cca-launch 2\n"),
            LaunchError::UnsupportedVersion {
                version: String::from("2")
            }
        );
        let m = minimal();
        assert_eq!(err(&format!("{m}mem\n")), LaunchError::Syntax { line: 5 });
        assert_eq!(
            err(&format!("{m}memory=2\n")),
            LaunchError::UnknownKey {
                line: 5,
                key: String::from("memory")
            }
        );
        assert_eq!(
            err(&format!("{m}{}=1\n", "k".repeat(100))),
            LaunchError::UnknownKey {
                line: 5,
                key: "k".repeat(32)
            }
        );
        assert_eq!(
            err(&format!("{m}cpus=2\n")),
            LaunchError::DuplicateKey {
                line: 5,
                key: "cpus"
            }
        );
        assert_eq!(
            err(&format!("{m}bootargs=a\nbootargs=b\n")),
            LaunchError::DuplicateKey {
                line: 6,
                key: "bootargs"
            }
        );
        assert_eq!(
            err(&with_line(&m, "mem", None)),
            LaunchError::Missing { key: "mem" }
        );
        assert_eq!(
            err(&with_line(&m, "cpus", None)),
            LaunchError::Missing { key: "cpus" }
        );
        assert_eq!(
            err(&with_line(&m, "kernel", None)),
            LaunchError::Missing {
                key: "kernel or firmware"
            }
        );
        let mut bad = m.clone().into_bytes();
        bad.extend_from_slice(b"bootargs=\xff\n");
        assert_eq!(parse(&bad), Err(LaunchError::NotUtf8 { line: 5 }));
        let long = format!("{m}bootargs={}\n", "x".repeat(MAX_TEXT));
        assert_eq!(err(&long), LaunchError::TextTooLong { len: long.len() });
    }

    #[test]
    fn value_errors() {
        let m = minimal();
        let cases: &[(&str, &str, &str)] = &[
            ("kernel", "kernel=0x90000000", "PA,SIZE (decimal or 0x hex)"),
            (
                "kernel",
                "kernel=0x9000000g,1",
                "PA,SIZE (decimal or 0x hex)",
            ),
            ("kernel", "kernel=1,", "PA,SIZE (decimal or 0x hex)"),
            ("kernel", "kernel=0x,1", "PA,SIZE (decimal or 0x hex)"),
            ("kernel", "kernel=-4096,1", "PA,SIZE (decimal or 0x hex)"),
            (
                "kernel",
                "kernel=4096,18446744073709551616",
                "PA,SIZE (decimal or 0x hex)",
            ),
            ("mem", "mem=12a", "a number of MiB"),
            ("mem", "mem= 2", "a number of MiB"),
            ("cpus", "cpus=4294967296", "a number of vCPUs"),
            ("hash", "hash=sha384", "sha256 or sha512"),
            ("hash", "hash=SHA256", "sha256 or sha512"),
            ("measure_initrd", "measure_initrd=true", "yes or no"),
            ("num_bps", "num_bps=", "a number"),
            ("num_wps", "num_wps=two", "a number"),
            ("disk", "disk=0xa0000000,512", "PA,SIZE,ro or PA,SIZE,rw"),
            ("disk", "disk=0xa0000000,512,rx", "PA,SIZE,ro or PA,SIZE,rw"),
            ("disk", "disk=0xa0000000,ro", "PA,SIZE,ro or PA,SIZE,rw"),
        ];
        for &(key, line, expected) in cases {
            let text = with_line(&m, key, Some(line));
            let n = 1 + text.lines().position(|l| l == line).unwrap();
            let e = err(&text);
            assert_eq!(
                e,
                LaunchError::BadValue {
                    line: n,
                    key: KEYS.iter().find(|&&k| k == key).unwrap(),
                    expected
                },
                "{line}"
            );
            assert!(e.to_string().contains(expected));
        }
        let rpv_cases: &[(&str, LaunchError)] = &[
            ("rpv=abc", LaunchError::RpvNotHex { line: 5 }),
            ("rpv=0g", LaunchError::RpvNotHex { line: 5 }),
            ("rpv=0x00", LaunchError::RpvNotHex { line: 5 }),
            ("rpv= 0", LaunchError::RpvNotHex { line: 5 }),
        ];
        for (line, e) in rpv_cases {
            assert_eq!(&err(&format!("{m}{line}\n")), e, "{line}");
        }
        let long = format!("{m}rpv={}\n", "0".repeat(130));
        assert_eq!(err(&long), LaunchError::RpvTooLong { digits: 130 });
    }

    #[test]
    fn semantic_errors() {
        let m = minimal();
        let cases: &[(&str, &str, LaunchError)] = &[
            ("mem", "mem=0", LaunchError::BadMem { mib: 0 }),
            ("mem", "mem=3", LaunchError::BadMem { mib: 3 }),
            (
                "mem",
                "mem=2097152",
                LaunchError::BadMem {
                    mib: MAX_MEM_MIB * 2,
                },
            ),
            ("cpus", "cpus=0", LaunchError::BadCpus { cpus: 0, max: 256 }),
            (
                "cpus",
                "cpus=257",
                LaunchError::BadCpus {
                    cpus: 257,
                    max: 256,
                },
            ),
            (
                "num_bps",
                "num_bps=0",
                LaunchError::BadBps { value: 0, max: 63 },
            ),
            (
                "num_wps",
                "num_wps=64",
                LaunchError::BadWps { value: 64, max: 63 },
            ),
            (
                "kernel",
                "kernel=0x90000000,0",
                LaunchError::ZeroSize { key: "kernel" },
            ),
            (
                "kernel",
                "kernel=0x90000800,1",
                LaunchError::Misaligned {
                    key: "kernel",
                    pa: 0x9000_0800,
                },
            ),
            (
                "kernel",
                "kernel=0xfffffffffffff000,0x1001",
                LaunchError::Overflow { key: "kernel" },
            ),
            (
                "initrd",
                "initrd=0x90000000,1",
                LaunchError::Overlap {
                    first: "kernel",
                    second: "initrd",
                },
            ),
            (
                "disk",
                "disk=0x8ffff000,0x1001,rw",
                LaunchError::Overlap {
                    first: "kernel",
                    second: "disk",
                },
            ),
            (
                "disk",
                "disk=0xa0000000,1000,ro",
                LaunchError::DiskNotSectors { size: 1000 },
            ),
            (
                "disk",
                "disk=0xa0000000,0,ro",
                LaunchError::ZeroSize { key: "disk" },
            ),
            (
                "firmware",
                "firmware=0xa0000000,4096",
                LaunchError::KernelAndFirmware,
            ),
            ("bootargs", "bootargs=a\tb", LaunchError::BootargsControl),
            ("bootargs", "bootargs=a\rb", LaunchError::BootargsControl),
        ];
        for (key, line, e) in cases {
            assert_eq!(&err(&with_line(&m, key, Some(line))), e, "{line}");
        }
        // Adjacent ranges are fine, and so is a range ending just below 2^64; one ending at
        // 2^64 is not.
        assert!(parse(with_line(&m, "initrd", Some("initrd=0x90001000,1")).as_bytes()).is_ok());
        let top = with_line(&m, "kernel", Some("kernel=0xffffffffffffe000,0x1fff"));
        assert!(parse(top.as_bytes()).is_ok());
        let wraps = with_line(&m, "kernel", Some("kernel=0xfffffffffffff000,0x1000"));
        assert_eq!(err(&wraps), LaunchError::Overflow { key: "kernel" });
        let long = format!("bootargs={}", "b".repeat(MAX_BOOTARGS + 1));
        assert_eq!(
            err(&with_line(&m, "bootargs", Some(&long))),
            LaunchError::BootargsTooLong {
                len: MAX_BOOTARGS + 1
            }
        );
        let longest = format!("bootargs={}", "b".repeat(MAX_BOOTARGS));
        assert!(parse(with_line(&m, "bootargs", Some(&longest)).as_bytes()).is_ok());
        // Initrd with firmware.
        let fw = "cca-launch 1\nfirmware=0x90000000,4096\ninitrd=0x91000000,4096\nmem=2\ncpus=1\n";
        assert_eq!(err(fw), LaunchError::InitrdWithoutKernel);
        // The largest RAM.
        let big = with_line(&m, "mem", Some("mem=1048576"));
        assert_eq!(parse(big.as_bytes()).unwrap().mem_bytes(), 1 << 40);
    }

    #[test]
    fn limits_from_the_rmm() {
        // Our RMM on QEMU max: S2SZ 48, 6 BPs and 4 WPs (as the RMM compares them), SHA-256
        // and SHA-512, MAX_RECS_ORDER 10.
        let f0 = 48 | 6 << feat0::NUM_BPS_SHIFT | 4 << feat0::NUM_WPS_SHIFT;
        let f1 = feat1::GRAN_SZ_4K
            | feat1::HASH_SHA_256
            | feat1::HASH_SHA_512
            | 10 << feat1::MAX_RECS_ORDER_SHIFT;
        let l = LaunchLimits::from_features(f0, f1);
        assert_eq!(
            l,
            LaunchLimits {
                max_cpus: 256,
                max_bps: 6,
                max_wps: 4,
                max_ipa_bits: 48,
                sha256: true,
                sha512: true,
            }
        );
        let l3 = LaunchLimits::from_features(f0, feat1::HASH_SHA_256 | 2 << 6);
        assert_eq!(l3.max_cpus, 3);
        assert!(!l3.sha512);

        let mut d = full();
        assert_eq!(d.validate(&l), Ok(()));
        d.cpus = 4;
        assert_eq!(
            d.validate(&l3),
            Err(LaunchError::BadCpus { cpus: 4, max: 3 })
        );
        d.cpus = 3;
        assert_eq!(
            d.validate(&l3),
            Err(LaunchError::UnsupportedHash {
                hash: HashAlgo::Sha512
            })
        );
        d.hash = HashAlgo::Sha256;
        assert_eq!(d.validate(&l3), Ok(()));
        d.num_bps = 7;
        assert_eq!(
            d.validate(&l),
            Err(LaunchError::BadBps { value: 7, max: 6 })
        );
        d.num_bps = 6;
        d.num_wps = 5;
        assert_eq!(
            d.validate(&l),
            Err(LaunchError::BadWps { value: 5, max: 4 })
        );
        d.num_wps = 4;
        let l33 = LaunchLimits {
            max_ipa_bits: 33,
            ..l
        };
        d.mem_mib = 2048;
        assert_eq!(d.validate(&l33), Ok(()), "0x8000_0000 + 2 GiB: 33 bits");
        d.mem_mib = 2050;
        assert_eq!(
            d.validate(&l33),
            Err(LaunchError::MemBeyondIpa {
                mib: 2050,
                needs: 34,
                max: 33
            })
        );
        // Limits above the format's are capped by it.
        let huge = LaunchLimits {
            max_cpus: u32::MAX,
            ..l
        };
        d.cpus = 300;
        assert_eq!(
            d.validate(&huge),
            Err(LaunchError::BadCpus {
                cpus: 300,
                max: 256
            })
        );
    }

    #[test]
    fn messages_say_what_to_do() {
        let m = minimal();
        for (text, needle) in [
            (with_line(&m, "mem", Some("mem=3")), "whole 2 MiB blocks"),
            (with_line(&m, "cpus", Some("cpus=0")), "1 to 256 vCPUs"),
            (format!("{m}rpv={}\n", "0".repeat(130)), "at most 64 bytes"),
            (format!("{m}colour=red\n"), "unknown key \"colour\""),
            (format!("{m}mem=4\n"), "line 5: mem is given a second time"),
            (String::from("cca-launch 7\n"), "this host reads version 1"),
            (
                with_line(&m, "kernel", Some("kernel=0x1001,1")),
                "4 KiB-aligned",
            ),
        ] {
            let msg = err(&text).to_string();
            assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
        }
        let msg = LaunchError::BadPageMagic { found: 0 }.to_string();
        assert!(msg.contains("CCA-LNCH"), "{msg}");
    }

    #[test]
    fn page_round_trip_and_errors() {
        let text = full().to_text();
        let page = encode_page(text.as_bytes()).unwrap();
        assert_eq!(page.len(), LAUNCH_PAGE_SIZE);
        assert_eq!(&page[..8], b"CCA-LNCH");
        assert_eq!(
            u64::from_le_bytes(page[8..16].try_into().unwrap()),
            text.len() as u64
        );
        assert!(page[16 + text.len()..].iter().all(|&b| b == 0));
        assert_eq!(decode_page(&page).unwrap(), text.as_bytes());
        assert_eq!(parse(decode_page(&page).unwrap()).unwrap(), full());
        // The page plus whatever follows it in memory.
        let mut more = page.clone();
        more.extend_from_slice(&[0xff; 100]);
        assert_eq!(decode_page(&more).unwrap(), text.as_bytes());

        assert_eq!(
            decode_page(&page[..15]),
            Err(LaunchError::PageTooShort { len: 15 })
        );
        let mut bad = page.clone();
        bad[0] = b'X';
        assert!(matches!(
            decode_page(&bad),
            Err(LaunchError::BadPageMagic { .. })
        ));
        let mut bad = page.clone();
        bad[8..16].copy_from_slice(&(MAX_TEXT as u64 + 1).to_le_bytes());
        assert_eq!(
            decode_page(&bad),
            Err(LaunchError::BadPageLength {
                len: MAX_TEXT as u64 + 1
            })
        );
        bad[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            decode_page(&bad),
            Err(LaunchError::BadPageLength { len: u64::MAX })
        );
        // A length within MAX_TEXT but past the bytes given.
        assert_eq!(
            decode_page(&page[..20]),
            Err(LaunchError::BadPageLength {
                len: text.len() as u64
            })
        );
        assert_eq!(decode_page(&encode_page(b"").unwrap()).unwrap(), b"");
        assert_eq!(
            encode_page(&[b'a'; MAX_TEXT + 1]),
            Err(LaunchError::TextTooLong { len: MAX_TEXT + 1 })
        );
        assert!(encode_page(&[b'a'; MAX_TEXT]).is_ok());
    }

    #[test]
    fn the_longest_description_fits_a_page() {
        let d = LaunchDesc {
            kernel: Some(HostBlob {
                pa: 0xffff_ffff_ffff_0000,
                size: 0xffff,
            }),
            initrd: Some(HostBlob {
                pa: 0xffff_0000_0000_0000,
                size: 0xffff_0000_0000,
            }),
            rpv: [0xff; 64],
            bootargs: Some("w".repeat(MAX_BOOTARGS)),
            disk: Some(Disk {
                pa: 0x7fff_ff00_0000_0000,
                size: 0xff_0000_0000,
                read_only: false,
            }),
            num_bps: 63,
            num_wps: 63,
            ..LaunchDesc::with_kernel(KERNEL, MAX_MEM_MIB, 256)
        };
        let text = d.to_text();
        assert!(text.len() <= MAX_TEXT, "{}", text.len());
        assert_eq!(parse(text.as_bytes()).unwrap(), d);
    }

    fn blob(slot: u64) -> impl Strategy<Value = HostBlob> {
        // Four disjoint 1 TiB slots, so that random blobs never overlap.
        (0u64..(1 << 16), 0u64..(1 << 30)).prop_map(move |(page, sectors)| HostBlob {
            pa: (slot << 40) + page * 4096,
            size: (sectors + 1) * 512,
        })
    }

    fn desc() -> impl Strategy<Value = LaunchDesc> {
        (
            prop_oneof![
                (blob(1), proptest::option::of(blob(2))).prop_map(|(k, i)| (Some(k), i, None)),
                blob(3).prop_map(|f| (None, None, Some(f))),
            ],
            (1u64..=MAX_MEM_MIB / 2).prop_map(|m| m * 2),
            1u32..=256,
            any::<bool>(),
            proptest::array::uniform32(any::<u8>()),
            proptest::option::of("[ -~]{0,200}"),
            any::<bool>(),
            (1u32..=63, 1u32..=63),
            proptest::option::of((blob(4), any::<bool>())),
        )
            .prop_map(
                |(
                    (kernel, initrd, firmware),
                    mem_mib,
                    cpus,
                    sha512,
                    rpv,
                    args,
                    measure,
                    bw,
                    disk,
                )| {
                    let mut r = [0u8; 64];
                    r[16..48].copy_from_slice(&rpv);
                    LaunchDesc {
                        kernel,
                        initrd,
                        firmware,
                        mem_mib,
                        cpus,
                        hash: if sha512 {
                            HashAlgo::Sha512
                        } else {
                            HashAlgo::Sha256
                        },
                        rpv: r,
                        bootargs: args,
                        measure_initrd: measure,
                        num_bps: bw.0,
                        num_wps: bw.1,
                        disk: disk.map(|(b, ro)| Disk {
                            pa: b.pa,
                            size: b.size,
                            read_only: ro,
                        }),
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn valid_descriptions_round_trip(d in desc()) {
            prop_assert_eq!(d.validate(&LaunchLimits::FORMAT), Ok(()));
            let text = d.to_text();
            prop_assert_eq!(parse(text.as_bytes()), Ok(d.clone()));
            let page = encode_page(text.as_bytes()).unwrap();
            prop_assert_eq!(decode_page(&page), Ok(text.as_bytes()));
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&bytes);
            let _ = decode_page(&bytes);
            let mut t = b"cca-launch 1\n".to_vec();
            t.extend_from_slice(&bytes);
            if let Ok(d) = parse(&t) {
                prop_assert_eq!(parse(d.to_text().as_bytes()), Ok(d));
            }
        }

        #[test]
        fn mutations_never_panic(
            d in desc(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
        ) {
            let mut t = d.to_text().into_bytes();
            for (at, byte, op) in edits {
                let i = at.index(t.len() + 1);
                match op {
                    0 if i < t.len() => t[i] = byte,
                    1 => t.insert(i, byte),
                    _ if i < t.len() => { t.remove(i); }
                    _ => t.push(byte),
                }
            }
            if let Ok(p) = parse(&t) {
                prop_assert_eq!(p.validate(&LaunchLimits::FORMAT), Ok(()));
                prop_assert_eq!(parse(p.to_text().as_bytes()), Ok(p));
            }
            let page = encode_page(&t);
            if let Ok(page) = page {
                let mut page = page;
                let i = t.len() % 16;
                page[i] ^= 0x5a;
                let _ = decode_page(&page);
            }
        }
    }
}
