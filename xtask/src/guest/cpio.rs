//! A writer for the `newc` cpio format (the SVR4 "new ASCII" format, magic `070701`) the
//! Linux kernel unpacks as an initramfs.
//!
//! Each entry is a 110-byte ASCII header (the magic and 13 fields of 8 hexadecimal digits),
//! the NUL-terminated path padded to a multiple of 4 bytes, then the data padded to a
//! multiple of 4 bytes. The archive ends with an entry named `TRAILER!!!`. The output is
//! deterministic: mtime 0, uid and gid 0, inode numbers counting from 1 in the order the
//! entries are added.

use anyhow::{bail, Result};
use std::collections::BTreeSet;

/// The `newc` magic.
pub const MAGIC: &[u8; 6] = b"070701";
/// Size of an entry header.
pub const HEADER_LEN: usize = 110;
/// Name of the last entry.
pub const TRAILER: &str = "TRAILER!!!";

/// File type bits of `c_mode`.
pub const S_IFDIR: u32 = 0o040_000;
/// Regular file.
pub const S_IFREG: u32 = 0o100_000;
/// Symbolic link.
pub const S_IFLNK: u32 = 0o120_000;
/// Character device.
pub const S_IFCHR: u32 = 0o020_000;

/// An archive being written.
#[derive(Debug, Default)]
pub struct CpioWriter {
    out: Vec<u8>,
    next_ino: u32,
    names: BTreeSet<String>,
}

/// The header fields of one entry, in `newc` order (after the magic).
struct Header {
    ino: u32,
    mode: u32,
    nlink: u32,
    filesize: u32,
    rdevmajor: u32,
    rdevminor: u32,
}

impl CpioWriter {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory with permission bits `perm` (for example `0o755`).
    pub fn dir(&mut self, path: &str, perm: u32) -> Result<()> {
        self.entry(path, S_IFDIR, perm, 2, &[], (0, 0))
    }

    /// Adds a regular file.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> Result<()> {
        self.entry(path, S_IFREG, perm, 1, data, (0, 0))
    }

    /// Adds a symbolic link to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        if target.is_empty() || target.contains('\0') {
            bail!("cpio: invalid symlink target {target:?} for {path:?}");
        }
        self.entry(path, S_IFLNK, 0o777, 1, target.as_bytes(), (0, 0))
    }

    /// Adds a character device node `major:minor`.
    pub fn char_device(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> Result<()> {
        self.entry(path, S_IFCHR, perm, 1, &[], (major, minor))
    }

    /// Whether `path` (normalised as the entry methods do) is already in the archive.
    pub fn contains(&self, path: &str) -> bool {
        normalise(path).is_ok_and(|p| self.names.contains(&p))
    }

    /// Appends the trailer and returns the archive.
    pub fn finish(mut self) -> Vec<u8> {
        let trailer = Header {
            ino: 0,
            mode: 0,
            nlink: 1,
            filesize: 0,
            rdevmajor: 0,
            rdevminor: 0,
        };
        // The trailer's name is short and valid: this cannot fail.
        push_header(&mut self.out, &trailer, TRAILER);
        self.out
    }

    fn entry(
        &mut self,
        path: &str,
        kind: u32,
        perm: u32,
        nlink: u32,
        data: &[u8],
        rdev: (u32, u32),
    ) -> Result<()> {
        let name = normalise(path)?;
        if perm > 0o7777 {
            bail!("cpio: permission bits {perm:#o} of {name:?} exceed 0o7777");
        }
        let Ok(filesize) = u32::try_from(data.len()) else {
            bail!("cpio: {name:?} is larger than 4 GiB");
        };
        if self.names.contains(&name) {
            bail!("cpio: {name:?} is added twice");
        }
        let Some(ino) = self.next_ino.checked_add(1) else {
            bail!("cpio: too many entries");
        };
        self.next_ino = ino;
        let h = Header {
            ino,
            mode: kind | perm,
            nlink,
            filesize,
            rdevmajor: rdev.0,
            rdevminor: rdev.1,
        };
        push_header(&mut self.out, &h, &name);
        self.out.extend_from_slice(data);
        pad4(&mut self.out);
        self.names.insert(name);
        Ok(())
    }
}

/// Strips a leading `/` and rejects paths the kernel would refuse or misplace.
fn normalise(path: &str) -> Result<String> {
    let p = path.strip_prefix('/').unwrap_or(path);
    if p.is_empty()
        || p.contains('\0')
        || p.split('/').any(|c| c.is_empty() || c == "." || c == "..")
        || p == TRAILER
    {
        bail!("cpio: invalid path {path:?}");
    }
    // The kernel's initramfs unpacker accepts names up to PATH_MAX (4096) bytes.
    if p.len() >= 4096 {
        bail!("cpio: path {path:?} is too long");
    }
    Ok(p.to_string())
}

fn push_header(out: &mut Vec<u8>, h: &Header, name: &str) {
    // `name` is at most 4095 bytes (checked by `normalise`), so the size fits.
    let namesize = name.len() + 1;
    let fields = [
        h.ino,
        h.mode,
        0, // uid
        0, // gid
        h.nlink,
        0, // mtime
        h.filesize,
        0, // devmajor
        0, // devminor
        h.rdevmajor,
        h.rdevminor,
        namesize as u32,
        0, // check
    ];
    out.extend_from_slice(MAGIC);
    for f in fields {
        out.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One entry read back from an archive.
    #[derive(Debug, PartialEq, Eq)]
    pub(crate) struct Entry {
        pub fields: [u32; 13],
        pub name: String,
        pub data: Vec<u8>,
    }

    impl Entry {
        pub fn ino(&self) -> u32 {
            self.fields[0]
        }
        pub fn mode(&self) -> u32 {
            self.fields[1]
        }
    }

    /// A strict reader of our own output: checks the magic, every field's hex digits, the
    /// NUL after the name, zero padding at every 4-byte boundary, and that the trailer is the
    /// last entry and ends the archive.
    pub(crate) fn parse(mut buf: &[u8]) -> Result<Vec<Entry>, String> {
        let total = buf.len();
        let mut entries = Vec::new();
        loop {
            let at = total - buf.len();
            if at % 4 != 0 {
                return Err(format!("entry at {at} not aligned"));
            }
            if buf.len() < HEADER_LEN {
                return Err(format!("truncated header at {at}"));
            }
            if &buf[..6] != MAGIC {
                return Err(format!("bad magic at {at}"));
            }
            let mut fields = [0u32; 13];
            for (i, f) in fields.iter_mut().enumerate() {
                let s =
                    std::str::from_utf8(&buf[6 + 8 * i..14 + 8 * i]).map_err(|e| e.to_string())?;
                if !s.bytes().all(|c| c.is_ascii_hexdigit()) {
                    return Err(format!("field {i} not hex: {s:?}"));
                }
                *f = u32::from_str_radix(s, 16).map_err(|e| e.to_string())?;
            }
            let namesize = fields[11] as usize;
            let filesize = fields[6] as usize;
            let name_end = HEADER_LEN + namesize;
            let data_start = name_end.next_multiple_of(4);
            let data_end = data_start + filesize;
            let next = data_end.next_multiple_of(4);
            if buf.len() < next || namesize == 0 {
                return Err(format!("truncated entry at {at}"));
            }
            if buf[name_end - 1] != 0 {
                return Err("name not NUL-terminated".into());
            }
            let name = std::str::from_utf8(&buf[HEADER_LEN..name_end - 1])
                .map_err(|e| e.to_string())?
                .to_string();
            if buf[name_end..data_start].iter().any(|&b| b != 0)
                || buf[data_end..next].iter().any(|&b| b != 0)
            {
                return Err(format!("non-zero padding in {name}"));
            }
            let data = buf[data_start..data_end].to_vec();
            buf = &buf[next..];
            let last = name == TRAILER;
            entries.push(Entry { fields, name, data });
            if last {
                if !buf.is_empty() {
                    return Err("bytes after the trailer".into());
                }
                return Ok(entries);
            }
        }
    }

    #[test]
    fn header_fields_padding_and_trailer() {
        let mut w = CpioWriter::new();
        w.dir("dev", 0o755).unwrap();
        w.char_device("/dev/console", 0o600, 5, 1).unwrap();
        w.symlink("/dev/stdin", "/proc/self/fd/0").unwrap();
        let out = w.finish();
        let e = parse(&out).unwrap();
        assert_eq!(e.len(), 4);
        assert_eq!(e[0].name, "dev");
        assert_eq!(e[0].mode(), S_IFDIR | 0o755);
        assert_eq!(e[0].fields[4], 2, "directory nlink");
        assert_eq!(e[1].name, "dev/console");
        assert_eq!(e[1].mode(), S_IFCHR | 0o600);
        assert_eq!((e[1].fields[9], e[1].fields[10]), (5, 1), "rdev 5:1");
        assert_eq!(e[2].mode(), S_IFLNK | 0o777);
        assert_eq!(e[2].data, b"/proc/self/fd/0");
        assert_eq!(e[3].name, TRAILER);
        assert_eq!(e[3].fields[4], 1);
        assert_eq!(e.iter().map(Entry::ino).collect::<Vec<_>>(), [1, 2, 3, 0]);
        for x in &e {
            assert_eq!(x.fields[2..4], [0, 0], "uid/gid of {}", x.name);
            assert_eq!(x.fields[5], 0, "mtime of {}", x.name);
            assert_eq!(x.fields[12], 0, "check of {}", x.name);
            assert_eq!(x.fields[11] as usize, x.name.len() + 1);
            assert_eq!(x.fields[6] as usize, x.data.len());
        }
    }

    #[test]
    fn exact_bytes_of_one_file() {
        let mut w = CpioWriter::new();
        w.file("/a", 0o644, b"xyz").unwrap();
        let out = w.finish();
        let mut want = Vec::new();
        want.extend_from_slice(b"070701");
        for f in [1, 0o100644, 0, 0, 1, 0, 3, 0, 0, 0, 0, 2, 0] {
            want.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        // 110 + "a\0" = 112: aligned, so no name padding; data "xyz" + 1 byte of padding.
        want.extend_from_slice(b"a\0xyz\0");
        want.extend_from_slice(b"070701");
        for f in [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 11, 0] {
            want.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        want.extend_from_slice(b"TRAILER!!!\0");
        want.extend_from_slice(&[0; 3]); // 116 + 110 + 11 = 237 -> 240
        assert_eq!(out, want);
        assert_eq!(&out[6..22], b"00000001000081A4", "ino 1, mode 0100644");
    }

    #[test]
    fn name_padding_for_every_length() {
        for len in 1..=9 {
            let name: String = "n".repeat(len);
            let mut w = CpioWriter::new();
            w.file(&name, 0o600, &vec![7u8; len]).unwrap();
            let out = w.finish();
            let e = parse(&out).unwrap();
            assert_eq!(e[0].name, name);
            assert_eq!(e[0].data, vec![7u8; len]);
        }
    }

    #[test]
    fn deterministic() {
        let build = || {
            let mut w = CpioWriter::new();
            w.dir("bin", 0o755).unwrap();
            w.file("bin/x", 0o755, b"abc").unwrap();
            w.finish()
        };
        assert_eq!(build(), build());
    }

    #[test]
    fn rejects_bad_entries() {
        let mut w = CpioWriter::new();
        for bad in [
            "",
            "/",
            "a//b",
            "a/./b",
            "../x",
            "a/..",
            "x\0y",
            "TRAILER!!!",
            "/TRAILER!!!",
        ] {
            assert!(w.file(bad, 0o644, b"").is_err(), "{bad:?}");
        }
        assert!(w.file(&"x".repeat(4096), 0o644, b"").is_err());
        assert!(w.file("big-mode", 0o10000, b"").is_err());
        w.file("/dup", 0o644, b"").unwrap();
        assert!(w.contains("dup") && w.contains("/dup") && !w.contains("other"));
        assert!(w.file("dup", 0o644, b"").is_err(), "duplicate");
        assert!(w.dir("/dup", 0o755).is_err(), "duplicate of another kind");
        assert!(w.symlink("l", "").is_err());
        // Rejected entries leave nothing behind: the archive holds one file and the trailer.
        let e = parse(&w.finish()).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].ino(), 1);
    }

    #[test]
    fn the_reader_catches_corruption() {
        let mut w = CpioWriter::new();
        w.file("f", 0o644, b"abcde").unwrap();
        let good = w.finish();
        assert!(parse(&good).is_ok());
        let mut bad = good.clone();
        bad[0] = b'1';
        assert!(parse(&bad).is_err(), "magic");
        let mut bad = good.clone();
        bad[HEADER_LEN + 2 + 5] = 1; // the padding after the 5 data bytes
        assert!(parse(&bad).is_err(), "padding");
        assert!(parse(&good[..good.len() - 4]).is_err(), "truncated trailer");
        let mut bad = good.clone();
        bad.extend_from_slice(&[0; 4]);
        assert!(parse(&bad).is_err(), "trailing bytes");
    }
}
