//! Builds the firmware images and turns their ELF files into raw images QEMU can load.

use crate::setup::{step, Toolchain, FW_TARGET};
use anyhow::{bail, Context, Result};
use object::{Object, ObjectSegment};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The images of one build.
#[derive(Clone, Debug)]
pub struct Images {
    /// Directory holding the raw images.
    pub dir: PathBuf,
    /// EL3 monitor, run from flash at 0.
    pub el3: PathBuf,
    /// RMM, loaded at 0x4010_0000.
    pub rmm: PathBuf,
    /// Normal-world host, loaded at 0x6000_0000.
    pub host: PathBuf,
}

impl Images {
    /// The realm payload, loaded at [`crate::qemu::PAYLOAD_ADDR`] for the host to run in a
    /// realm (`realm.bin` next to the other images).
    pub fn realm(&self) -> PathBuf {
        self.dir.join("realm.bin")
    }
}

/// The firmware images: `(package, binary)`; each binary becomes `<binary>.bin`.
const FIRMWARE: [(&str, &str); 4] = [
    ("el3", "el3"),
    ("rmm", "rmm"),
    ("host", "host"),
    ("realm-payload", "realm"),
];

/// Builds every firmware image (release profile) and writes `target/images/*.bin`.
pub fn build_all(root: &Path, tc: &Toolchain) -> Result<Images> {
    let how = match tc {
        Toolchain::Rustup => "rustup's prebuilt target".to_string(),
        Toolchain::BuildStd { rustc } => format!("{} with -Zbuild-std", rustc.display()),
    };
    step(&format!("building firmware images for {FW_TARGET} ({how})"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root).args([
        "build",
        "--release",
        "--target",
        FW_TARGET,
        "--target-dir",
        "target/fw",
    ]);
    for (package, _) in FIRMWARE {
        cmd.args(["-p", package]);
    }
    cmd.env("RUSTFLAGS", firmware_rustflags());
    if let Toolchain::BuildStd { rustc } = tc {
        cmd.env("RUSTC", rustc).env("RUSTC_BOOTSTRAP", "1");
        cmd.args([
            "-Zbuild-std=core,alloc,compiler_builtins",
            "-Zbuild-std-features=compiler-builtins-mem",
        ]);
    }
    let status = cmd
        .status()
        .context("running cargo build for the firmware")?;
    if !status.success() {
        bail!("building the firmware images failed");
    }
    let elf_dir = root.join("target/fw").join(FW_TARGET).join("release");
    let dir = root.join("target/images");
    std::fs::create_dir_all(&dir)?;
    let mut out = Vec::new();
    for (_, name) in FIRMWARE {
        let bin = dir.join(format!("{name}.bin"));
        let size = elf_to_raw(&elf_dir.join(name), &bin)?;
        eprintln!("    {name:<5} {:>8} bytes  {}", size, bin.display());
        out.push(bin);
    }
    Ok(Images {
        dir,
        el3: out[0].clone(),
        rmm: out[1].clone(),
        host: out[2].clone(),
    })
}

/// The firmware's code-generation flags: the user's `RUSTFLAGS`, then FEAT_LSE
/// (`+lse`). Every image runs on a CPU with FEAT_RME, an Armv9.2 feature, and Armv8.1 made
/// the LSE atomics mandatory, so the single-instruction atomics (`ldset`, `ldclr`, `cas`) may
/// replace the exclusive-load/store loops in the granule locks, reference counts and spin
/// locks.
pub fn firmware_rustflags() -> String {
    let user = std::env::var("RUSTFLAGS").unwrap_or_default();
    let lse = "-C target-feature=+lse";
    if user.trim().is_empty() {
        lse.to_string()
    } else {
        format!("{user} {lse}")
    }
}

/// Writes the loadable segments of an ELF file as one raw image starting at the lowest load
/// address, returning its size. A file that is not ELF is copied unchanged.
pub fn elf_to_raw(elf: &Path, out: &Path) -> Result<usize> {
    let data = std::fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
    let file = match object::File::parse(&*data) {
        Ok(f) => f,
        Err(_) => {
            std::fs::write(out, &data)?;
            return Ok(data.len());
        }
    };
    let segs: Vec<_> = file
        .segments()
        .filter_map(|s| {
            let (off, len) = s.file_range();
            (len > 0).then(|| {
                let (paddr, _) = segment_paddr(&file, &s);
                (paddr, &data[off as usize..(off + len) as usize])
            })
        })
        .collect();
    let Some(base) = segs.iter().map(|(a, _)| *a).min() else {
        bail!("{} has no loadable segments", elf.display());
    };
    let end = segs
        .iter()
        .map(|(a, d)| a + d.len() as u64)
        .max()
        .unwrap_or(base);
    let mut img = vec![0u8; (end - base) as usize];
    for (a, d) in segs {
        let o = (a - base) as usize;
        img[o..o + d.len()].copy_from_slice(d);
    }
    std::fs::write(out, &img)?;
    Ok(img.len())
}

/// The physical (load) address of a segment: the ELF program header's `p_paddr`.
fn segment_paddr(file: &object::File, seg: &object::Segment) -> (u64, u64) {
    use object::read::elf::ProgramHeader;
    if let object::File::Elf64(elf) = file {
        let endian = elf.endian();
        for ph in elf.elf_program_headers() {
            if ph.p_vaddr(endian) == seg.address() && ph.p_filesz(endian) > 0 {
                return (ph.p_paddr(endian), ph.p_filesz(endian));
            }
        }
    }
    (seg.address(), seg.size())
}
