//! Helpers for the QEMU end-to-end tests.
//!
//! The tests need the firmware images that `cargo xtask test` builds; it passes their
//! directory in `CCA_IMAGES`. Run them with `cargo xtask test --qemu-only`.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;
pub use xtask::qemu::Outcome;

/// The directory holding `el3.bin`, `rmm.bin`, `host.bin` and `realm.bin`.
pub fn images_dir() -> PathBuf {
    match std::env::var_os("CCA_IMAGES") {
        Some(d) => PathBuf::from(d),
        None => panic!("CCA_IMAGES is not set: run the end-to-end tests with `cargo xtask test`"),
    }
}

/// Boots the stack with our images (and the realm payload the host runs) and returns how the
/// run ended.
pub fn boot(icount: bool) -> Outcome {
    boot_images(icount, true)
}

/// Boots the stack, with or without the realm payload, and returns how the run ended.
pub fn boot_images(icount: bool, payload: bool) -> Outcome {
    let dir = images_dir();
    let realm = dir.join("realm.bin");
    let mut cmd = xtask::qemu::command(
        &dir.join("el3.bin"),
        &dir.join("rmm.bin"),
        &dir.join("host.bin"),
        payload.then_some(realm.as_path()),
        icount,
    );
    let out =
        xtask::qemu::run_command(&mut cmd, Duration::from_secs(180), false).expect("QEMU runs");
    if !out.passed() {
        eprintln!(
            "---- QEMU output ----\n{}\n---- end ----",
            out.lines.join("\n")
        );
    }
    out
}

/// One shared boot for the tests of a test binary.
pub fn shared_boot() -> &'static Outcome {
    static RUN: OnceLock<Outcome> = OnceLock::new();
    RUN.get_or_init(|| boot(false))
}

/// Lines printed by one world (`EL3`, `RMM`, `HOST`), without the label.
pub fn world_lines<'a>(out: &'a Outcome, world: &str) -> Vec<&'a str> {
    let tag = format!("[{world}] ");
    out.lines
        .iter()
        .filter_map(|l| l.strip_prefix(tag.as_str()))
        .collect()
}
