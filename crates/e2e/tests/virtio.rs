//! Realm I/O through shared memory: Debian's Linux in a realm finds virtio-blk and
//! virtio-console on the host's PCI bus, loads `virtio_blk` from its initramfs, mounts an
//! ext4 root from `/dev/vda` and switches root to it; a write it flushed is in the image file
//! after power-off and read back by the next boot; a read-only disk refuses writes and its
//! file stays unchanged; `hvc0` carries output and typed input; and the traffic really goes
//! through pages the realm shared (the host counts `RTT_UNPROT_MAP`s and bytes moved).

use e2e::images_dir;
use std::path::{Path, PathBuf};
use xtask::guest::{guest_packages, InitramfsFile};
use xtask::images::Images;
use xtask::launch::disk::{self, RootfsSpec};
use xtask::launch::{boot_linux, LaunchArgs, LinuxRun};

fn images() -> Images {
    let dir = images_dir();
    Images {
        el3: dir.join("el3.bin"),
        rmm: dir.join("rmm.bin"),
        host: dir.join("host.bin"),
        dir,
    }
}

fn out_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// A fresh root filesystem image holding `token` in `/persist/token` (if given).
fn rootfs(name: &str, token: Option<&str>) -> PathBuf {
    let dir = out_dir(name);
    std::fs::create_dir_all(&dir).unwrap();
    let pkgs = guest_packages().expect("the guest packages");
    let files = token
        .map(|t| InitramfsFile {
            path: "/persist/token".into(),
            mode: 0o644,
            data: format!("{t}\n").into_bytes(),
        })
        .into_iter()
        .collect();
    let img = dir.join("root.img");
    disk::build_rootfs(
        &RootfsSpec {
            busybox: pkgs.busybox.clone(),
            init: disk::DISK_INIT.to_string(),
            files,
            size_mib: 32,
        },
        &img,
    )
    .expect("the root filesystem is built");
    img
}

/// Boots with root on `image` (`read_only` for `,ro`), the token `cca.token=...` on the
/// command line, and a line typed on `hvc0` when the guest asks.
fn boot(image: &Path, read_only: bool, token: &str, name: &str) -> LinuxRun {
    let mut a = LaunchArgs::new(256, 2);
    // CCA_VIRTIO_TIMEOUT shortens a hung boot when debugging.
    a.timeout = std::env::var("CCA_VIRTIO_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(900);
    a.params = format!("cca.token={token}");
    a.disk = Some(format!(
        "{}{}",
        image.display(),
        if read_only { ",ro" } else { "" }
    ));
    let run = boot_linux(
        &images(),
        &a,
        disk::switch_root_init(read_only),
        &["virtio_blk"],
        &out_dir(name),
        false,
        &[("CCA-INIT: hvc0: type a line", "typed-on-hvc0\n")],
    )
    .expect("the launch is prepared");
    if !run.passed() {
        eprintln!(
            "---- QEMU output ----\n{}\n---- end ----",
            run.outcome.lines.join("\n")
        );
    }
    for l in &run.outcome.lines {
        let host = l.strip_prefix("[HOST] ").unwrap_or("");
        let realm = l
            .strip_prefix("[REALM] ")
            .or_else(|| l.strip_prefix("[HVC0] "))
            .unwrap_or("");
        if host.contains("exits:")
            || (host.starts_with("   ") && host.contains(": ") && !host.contains("RMI"))
            || realm.contains("CCA-INIT:")
        {
            eprintln!("{name}: {l}");
        }
    }
    run
}

/// The value of `key=` in the host's `STAT <dev>` line.
fn stat(run: &LinuxRun, dev: &str, key: &str) -> u64 {
    let prefix = format!("[HOST] STAT {dev} ");
    let line = run
        .outcome
        .lines
        .iter()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no STAT {dev} line"));
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in STAT {dev}: {line}"))
}

/// What the guest wrote on `hvc0` (the host labels it `[HVC0]`).
fn hvc0(run: &LinuxRun) -> String {
    run.outcome
        .lines
        .iter()
        .filter_map(|l| l.strip_prefix("[HVC0] "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The value after `CCA-INIT: key: ` on the realm's 16550 console or on `hvc0`.
fn evidence(run: &LinuxRun, key: &str) -> Option<String> {
    let marker = format!("CCA-INIT: {key}: ");
    (run.realm_console() + &hvc0(run))
        .lines()
        .find_map(|l| l.split(&marker).nth(1).map(|v| v.trim().to_string()))
}

fn check_io(run: &LinuxRun) {
    assert!(run.passed(), "the Linux realm did not pass");
    let e = &run.evidence;
    assert_eq!(e.insmod, [("virtio_blk".to_string(), 0)], "{e:?}");
    assert_eq!(
        evidence(run, "hvc0-read").as_deref(),
        Some("typed-on-hvc0"),
        "a line typed on the host's console reached the shell's read on hvc0"
    );
    assert!(
        hvc0(run).contains("CCA-INIT: hvc0: hello over virtio-console"),
        "hvc0 output, labelled apart from the 16550's"
    );
    assert!(!run.realm_console().contains("hello over virtio-console"));
    assert!(stat(run, "virtio_console", "bytes") >= 40, "hvc0 bytes");
    assert!(stat(run, "virtio_console", "in") >= 14, "hvc0 input bytes");
    assert_eq!(stat(run, "virtio_blk", "errors"), 0);
    assert_eq!(stat(run, "virtio_console", "errors"), 0);
    // The bounce buffers: the realm shared pages (swiotlb and the rings) and the devices
    // moved data through them.
    assert!(stat(run, "shared", "unprot_map") > 0, "no page was shared");
    assert!(stat(run, "virtio_blk", "to_guest") > 1 << 20, "disk reads");
    assert!(stat(run, "virtio_blk", "reads") > 10);
}

#[test]
fn root_on_virtio_blk_and_a_flushed_write_survives_power_off() {
    let img = rootfs("virtio-rw", None);
    let first = boot(&img, false, "first-b00t", "virtio-rw-1");
    check_io(&first);
    assert_eq!(
        evidence(&first, "root mounted").as_deref(),
        Some("/dev/vda (rw)")
    );
    assert!(evidence(&first, "stage2").is_some_and(|s| s.starts_with("/dev/vda / ext4 rw")));
    assert_eq!(evidence(&first, "vda-ro").as_deref(), Some("0"));
    assert_eq!(evidence(&first, "token-old").as_deref(), Some("none"));
    assert_eq!(
        evidence(&first, "token-written").as_deref(),
        Some("first-b00t")
    );
    assert!(stat(&first, "virtio_blk", "writes") > 0);
    assert!(stat(&first, "virtio_blk", "flushes") > 0, "sync flushed");
    assert!(stat(&first, "virtio_blk", "from_guest") > 0);
    // The file on the build machine has it after power-off.
    assert_eq!(
        disk::read_from_image(&img, "/persist/token").unwrap(),
        Some(b"first-b00t\n".to_vec())
    );
    let second = boot(&img, false, "second-b00t", "virtio-rw-2");
    check_io(&second);
    assert_eq!(
        evidence(&second, "token-old").as_deref(),
        Some("first-b00t"),
        "the next boot reads the write back"
    );
    assert_eq!(
        disk::read_from_image(&img, "/persist/token").unwrap(),
        Some(b"second-b00t\n".to_vec())
    );
}

#[test]
fn a_read_only_disk_refuses_writes_and_its_file_is_unchanged() {
    let img = rootfs("virtio-ro", Some("seeded"));
    let before = std::fs::read(&img).unwrap();
    let run = boot(&img, true, "must-not-land", "virtio-ro-1");
    check_io(&run);
    assert_eq!(
        evidence(&run, "vda-ro").as_deref(),
        Some("1"),
        "VIRTIO_BLK_F_RO"
    );
    assert_eq!(evidence(&run, "token-old").as_deref(), Some("seeded"));
    assert!(
        run.realm_console().contains("CCA-INIT: token-write-failed"),
        "the read-only root refused the write"
    );
    assert_eq!(evidence(&run, "raw-write").as_deref(), Some("refused"));
    assert_eq!(stat(&run, "virtio_blk", "writes"), 0);
    assert!(
        std::fs::read(&img).unwrap() == before,
        "the image file changed"
    );
}
