//! Generates the table of generator multiples `j · 16^i · G` (`i` in 0..97, `j` in 1..=8) as
//! affine coordinates, 64-bit words least significant first (`U384::from_words` order), into
//! `$OUT_DIR/table.rs`.

use p384::elliptic_curve::sec1::ToEncodedPoint;
use p384::elliptic_curve::Group;
use p384::ProjectivePoint;
use std::fmt::Write as _;

/// Windows of 4 bits: 96 for the 384-bit scalar and one for the last carry.
const WINDOWS: usize = 97;
/// Multiples per window (signed digits -8..=8 need 1..=8).
const ENTRIES: usize = 8;

fn words(bytes: &[u8]) -> String {
    bytes
        .rchunks(8)
        .map(|c| {
            format!(
                "0x{:016x}",
                u64::from_be_bytes(c.try_into().expect("8-byte chunk"))
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn main() {
    let mut out = String::new();
    writeln!(
        out,
        "/// `TABLE[i][j - 1]` = j · 16^i · G: x then y, 64-bit words least significant first."
    )
    .unwrap();
    writeln!(
        out,
        "pub(crate) static TABLE: [[[u64; 12]; {ENTRIES}]; {WINDOWS}] = ["
    )
    .unwrap();
    let mut base = ProjectivePoint::GENERATOR;
    for _ in 0..WINDOWS {
        out.push('[');
        let mut p = base;
        for _ in 0..ENTRIES {
            let e = p.to_affine().to_encoded_point(false);
            let (x, y) = (e.x().expect("not infinity"), e.y().expect("uncompressed"));
            write!(out, "[{},{}],", words(x), words(y)).unwrap();
            p += base;
        }
        out.push_str("],\n");
        for _ in 0..4 {
            base = base.double();
        }
    }
    out.push_str("];\n");
    let dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(format!("{dir}/table.rs"), out).expect("write the table");
    println!("cargo::rerun-if-changed=build.rs");
}
