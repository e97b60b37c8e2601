//! Passes the EL3 linker script to the linker, and provides the development CPAK.
//!
//! The CPAK (the platform attestation key EL3 signs platform tokens with) of this development
//! platform is made by the build: 48 random bytes from the build machine, kept as hex in
//! `target/attestation/dev-cpak.key` (or the file `CCA_DEV_CPAK` names) and reused by every
//! later build, so the endorsements written from it stay valid. It is a development identity:
//! anyone who can read that file can sign platform tokens.
use std::io::Read;
use std::path::PathBuf;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-env-changed=CCA_DEV_CPAK");
    let path = match std::env::var_os("CCA_DEV_CPAK") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(&dir).join("../../target/attestation/dev-cpak.key"),
    };
    if !path.exists() {
        let mut d = [0u8; 48];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut d))
            .expect("48 random bytes for the development CPAK");
        // 2^382 <= d < 2^383: a valid P-384 scalar (below the group order, not zero).
        d[0] = (d[0] & 0x7f) | 0x40;
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("{hex}\n")).expect("writing the development CPAK");
    }
    println!("cargo:rerun-if-changed={}", path.display());
    let text = std::fs::read_to_string(&path).expect("reading the development CPAK");
    let hex = text.trim();
    assert!(
        hex.len() == 96 && hex.bytes().all(|c| c.is_ascii_hexdigit()),
        "{} must hold 96 hex digits (a P-384 private scalar)",
        path.display()
    );
    let key: Vec<u8> = (0..48)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let scalar: [u8; 48] = key.as_slice().try_into().unwrap();
    // The public key too, so that EL3 does not derive it at every cold boot.
    let public = el3_core::attest::public_key(&scalar)
        .unwrap_or_else(|_| panic!("{} is not a valid P-384 private scalar", path.display()));
    std::fs::write(out.join("dev-cpak.bin"), key).unwrap();
    std::fs::write(out.join("dev-cpak-public.bin"), public).unwrap();
}
