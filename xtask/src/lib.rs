//! The library behind `cargo xtask`: tool set-up, image builds and QEMU runs, shared with the
//! end-to-end test crate.

pub mod guest;
pub mod images;
pub mod launch;
pub mod qemu;
pub mod setup;

use clap::Args;
use std::path::PathBuf;

/// Options for a QEMU run.
#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    /// Use this RMM image instead of ours (ELF or raw, loaded at 0x40100000; e.g. TF-RMM's rmm.img).
    #[arg(long)]
    pub rmm: Option<PathBuf>,
    /// Use this Normal-world image instead of our host (ELF or raw, loaded at 0x60000000).
    #[arg(long)]
    pub host: Option<PathBuf>,
    /// Run QEMU with `-icount shift=0` so the virtual counter counts instructions.
    #[arg(long)]
    pub icount: bool,
    /// Kill QEMU if it has not finished after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}
