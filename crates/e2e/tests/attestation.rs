//! Attestation end to end on QEMU: the tokens realms obtain from our RMM, with the platform
//! token our EL3 signed, verified off-line by `cca-attest` (what `cargo xtask token verify`
//! runs): both signatures, the binding, the claims and profiles, the platform's measured boot
//! against the endorsements of this build, and the realm's challenge, RIM, REMs, RPV and hash
//! algorithm against the values predicted for it.
//!
//! * the payload realm: a token for its own fresh challenge, handed to the host (host call
//!   `0xCCA3`) and printed by it in base64;
//! * Debian's Linux as a realm: `configfs`, `tsm_report` and `arm-cca-guest` loaded from the
//!   initramfs, a challenge written to `/sys/kernel/config/tsm/report/r0/inblob`, `outblob`
//!   printed in base64 on the console; the RIM expected is the one the launcher predicts.
//!
//! Every token is written to `target/attestation/` as raw CBOR, with its reference values
//! (`<name>.reference-values.json`: the platform's and the realm's, in `ccatoken`'s form) and
//! its challenge (`<name>.challenge`), next to `trust-anchors.json`.

use cca_attest::endorse::{DevPlatform, RealmReference, ReferenceValues};
use cca_attest::{hex, HashAlgo, Predicted};
use e2e::{images_dir, world_lines};
use std::path::PathBuf;
use xtask::images::Images;
use xtask::launch::{boot_linux, LaunchArgs};

/// `target/attestation` of the workspace.
fn out_dir() -> PathBuf {
    xtask::workspace_root().join("target/attestation")
}

/// The development platform of the images under test, its endorsements written.
fn platform() -> DevPlatform {
    let key = std::env::var_os("CCA_DEV_CPAK")
        .map(PathBuf::from)
        .unwrap_or_else(|| out_dir().join("dev-cpak.key"));
    let p = DevPlatform::from_build(&key, &images_dir()).expect("the build's CPAK and images");
    let dir = out_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("trust-anchors.json"), p.anchors().to_json()).unwrap();
    std::fs::write(
        dir.join("platform-reference-values.json"),
        p.reference_values().to_json(),
    )
    .unwrap();
    p
}

/// Writes a token with its reference values and challenge, verifies it and returns the
/// evidence (panicking with the reason if it does not verify).
fn verify_and_keep(
    name: &str,
    token: &[u8],
    p: &DevPlatform,
    pred: &Predicted,
) -> cca_attest::Evidence {
    let dir = out_dir();
    std::fs::write(dir.join(format!("{name}.cbor")), token).unwrap();
    let mut refs = p.reference_values();
    let z = || vec![0u8; pred.hash_algo.map_or(32, HashAlgo::digest_len)];
    refs.realm.push(RealmReference {
        rim: pred.rim.clone().unwrap_or_default(),
        rak_hash_algo: "sha-256".into(),
        rems: pred.rems.clone().unwrap_or_else(|| [z(), z(), z(), z()]),
        rpv: pred.rpv.clone().unwrap_or_else(|| vec![0; 64]),
    });
    std::fs::write(
        dir.join(format!("{name}.reference-values.json")),
        refs.to_json(),
    )
    .unwrap();
    if let Some(c) = &pred.challenge {
        std::fs::write(dir.join(format!("{name}.challenge")), hex::encode(c)).unwrap();
    }
    // The files read back are what `cargo xtask token verify` uses.
    let anchors = cca_attest::TrustAnchors::from_json(
        &std::fs::read_to_string(dir.join("trust-anchors.json")).unwrap(),
    )
    .unwrap();
    let refs = ReferenceValues::from_json(
        &std::fs::read_to_string(dir.join(format!("{name}.reference-values.json"))).unwrap(),
    )
    .unwrap();
    match cca_attest::check(token, &anchors, Some(&refs), pred) {
        Ok(ev) => ev,
        Err(e) => panic!("the {name} token does not verify: {e}"),
    }
}

/// The payload's REMs: it extends REM 0 once with a known value; the others stay zero.
fn payload_rems() -> [Vec<u8>; 4] {
    let mut rem0 = vec![0u8; 32];
    rem0.extend_from_slice(b"cca realm payload: REM[1] value!");
    [
        HashAlgo::Sha256.hash(&rem0),
        vec![0; 32],
        vec![0; 32],
        vec![0; 32],
    ]
}

#[test]
fn the_payload_realms_token_verifies() {
    let out = e2e::shared_boot();
    assert!(out.passed(), "the demonstration did not pass");
    let host = world_lines(out, "HOST");
    let realm = world_lines(out, "REALM");
    let b64: String = host
        .iter()
        .filter_map(|l| l.strip_prefix(host_core::payload::TOKEN_LINE))
        .collect();
    let token = cca_attest::b64::decode(&b64).expect("the host printed the token in base64");
    let announced = host
        .iter()
        .find_map(|l| l.strip_prefix(host_core::payload::TOKEN_BEGIN))
        .expect("the host announced the token");
    assert_eq!(announced.trim(), format!("{} bytes", token.len()));
    let rim = host
        .iter()
        .find_map(|l| l.strip_prefix("payload realm RIM (predicted by the host) = "))
        .expect("the host's RIM prediction");
    let challenge = realm
        .iter()
        .find_map(|l| l.trim().strip_prefix("attestation challenge: "))
        .expect("the payload printed its challenge");
    let mut rpv = b"cca-demo".to_vec();
    rpv.resize(64, 0);
    let pred = Predicted {
        challenge: Some(hex::decode(challenge).unwrap()),
        hash_algo: Some(HashAlgo::Sha256),
        rim: Some(hex::decode(rim).unwrap()),
        rems: Some(payload_rems()),
        rpv: Some(rpv),
    };
    let p = platform();
    let ev = verify_and_keep("payload", &token, &p, &pred);
    assert_eq!(ev.format, cca_attest::Format::Cmw);
    assert_eq!(ev.platform.sw_components.len(), 3);
    // EL3's measured boot matches the image files: the platform reference values passed.
    // The realm instance ID is random, the RAK fresh.
    assert_eq!(ev.realm.instance_id.as_ref().map(|i| i[0]), Some(1));
    // A wrong challenge or RIM is refused.
    let mut wrong = pred.clone();
    wrong.challenge = Some(vec![0; 64]);
    assert!(cca_attest::check(&token, &p.anchors(), None, &wrong).is_err());
    let mut wrong = pred.clone();
    wrong.rim = Some(vec![0; 32]);
    assert!(cca_attest::check(&token, &p.anchors(), None, &wrong).is_err());
    // Another platform's trust anchors do not verify it.
    let other = DevPlatform::new(&[0x42; 48], b"a", b"b", b"c").unwrap();
    assert!(cca_attest::check(&token, &other.anchors(), None, &Predicted::default()).is_err());
    // The RMM logged the platform token it got; EL3 logged what it measured.
    let el3 = world_lines(out, "EL3");
    for kind in ["BL31", "RMM", "BL33"] {
        let reports = el3
            .iter()
            .filter(|l| l.starts_with(&format!("measured boot: {kind} sha-256 ")))
            .count();
        assert_eq!(reports, 1, "EL3 reported measuring {kind} {reports} times");
    }
    assert!(world_lines(out, "RMM")
        .iter()
        .any(|l| l.starts_with("attestation: realm key and a")));
}

fn images() -> Images {
    let dir = images_dir();
    Images {
        el3: dir.join("el3.bin"),
        rmm: dir.join("rmm.bin"),
        host: dir.join("host.bin"),
        dir,
    }
}

#[test]
fn a_linux_realms_token_through_configfs_tsm_verifies() {
    // 48 bytes: the driver zero-pads inblob to 64.
    let challenge: Vec<u8> = (0..48u8).map(|i| i.wrapping_mul(37) ^ 0x5A).collect();
    let mut args = LaunchArgs::new(256, 2);
    args.timeout = 900;
    args.realm_pv = Some("0x5265616c6d205056".into());
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("attest-linux");
    let run = boot_linux(
        &images(),
        &args,
        xtask::guest::InitScript::Attest {
            challenge: challenge.clone(),
        },
        &["configfs", "tsm_report", "arm-cca-guest"],
        &tmp,
        false,
        &[],
    )
    .expect("the launch is prepared");
    if !run.passed() {
        eprintln!(
            "---- QEMU output ----\n{}\n---- end ----",
            run.outcome.lines.join("\n")
        );
    }
    assert!(run.passed(), "the Linux realm did not pass");
    let e = &run.evidence;
    assert!(
        e.insmod.iter().all(|(_, rc)| *rc == 0) && e.insmod.len() == 3,
        "modules: {:?}",
        e.insmod
    );
    assert_eq!(e.tsm_provider.as_deref(), Some("arm_cca_guest"), "{e:?}");
    assert_eq!(e.token_rc, Some(0), "reading outblob failed: {e:?}");
    let token = e.token().expect("the init script printed the token");
    let mut rpv = hex::decode("5265616c6d205056").unwrap();
    rpv.resize(64, 0);
    let pred = Predicted {
        challenge: Some(challenge),
        hash_algo: Some(HashAlgo::Sha256),
        rim: Some(hex::decode(&run.prepared.rim).unwrap()),
        rems: Some([vec![0; 32], vec![0; 32], vec![0; 32], vec![0; 32]]),
        rpv: Some(rpv),
    };
    assert_eq!(
        run.measured_rim().as_deref(),
        Some(run.prepared.rim.as_str()),
        "RIM measured by the RMM != RIM predicted by the launcher"
    );
    let ev = verify_and_keep("linux", &token, &platform(), &pred);
    assert_eq!(ev.realm.rim, hex::decode(&run.prepared.rim).unwrap());
}

/// The CBOR map, array or tag that `b` holds exactly (all of it), if it does.
fn nested_cbor(b: &[u8]) -> Option<ciborium::Value> {
    let mut rest = b;
    let v: ciborium::Value = ciborium::from_reader(&mut rest).ok()?;
    let structured = matches!(
        v,
        ciborium::Value::Map(_) | ciborium::Value::Array(_) | ciborium::Value::Tag(..)
    );
    (rest.is_empty() && structured).then_some(v)
}

/// The same shape: keys, order, types, lengths; byte strings may differ only where a value
/// changes from run to run (challenges, hashes, keys, signatures, instance IDs), `path`
/// naming where in the token it is.
fn same_shape(a: &ciborium::Value, b: &ciborium::Value, path: &str) {
    use ciborium::Value as V;
    match (a, b) {
        (V::Map(x), V::Map(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: map sizes");
            for ((ka, va), (kb, vb)) in x.iter().zip(y) {
                assert_eq!(ka, kb, "{path}: keys in the same order");
                same_shape(va, vb, &format!("{path}/{ka:?}"));
            }
        }
        (V::Array(x), V::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: array lengths");
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                same_shape(va, vb, &format!("{path}[{i}]"));
            }
        }
        (V::Tag(ta, x), V::Tag(tb, y)) => {
            assert_eq!(ta, tb, "{path}: tags");
            same_shape(x, y, path);
        }
        (V::Bytes(x), V::Bytes(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: byte string lengths");
            // Nested CBOR (the tokens, their payloads, the COSE_Key) is compared inside.
            match (nested_cbor(x), nested_cbor(y)) {
                (Some(pa), Some(pb)) => same_shape(&pa, &pb, &format!("{path}<cbor>")),
                (None, None) => {}
                _ => panic!("{path}: nested CBOR in only one of them"),
            }
        }
        (V::Text(x), V::Text(y)) => assert_eq!(x, y, "{path}: texts"),
        (V::Integer(x), V::Integer(y)) => assert_eq!(x, y, "{path}: integers"),
        (x, y) => assert_eq!(x, y, "{path}"),
    }
}

/// TF-RMM main (`CCA_TFRMM_IMAGE`, its `rmm.img`, see docs/interop.md) under our EL3 and host:
/// the payload's token verifies with the platform endorsements of that image set, and has
/// exactly the shape of ours (same claims, order, types and lengths). Skipped without the
/// image.
#[test]
fn tf_rmm_tokens_verify_and_have_our_shape() {
    let Some(tfrmm) = std::env::var_os("CCA_TFRMM_IMAGE").map(PathBuf::from) else {
        eprintln!("CCA_TFRMM_IMAGE is not set: TF-RMM interoperability not checked");
        return;
    };
    let dir = images_dir();
    let mut cmd = xtask::qemu::command(
        &dir.join("el3.bin"),
        &tfrmm,
        &dir.join("host.bin"),
        Some(&dir.join("realm.bin")),
        false,
    );
    let out = xtask::qemu::run_command(&mut cmd, std::time::Duration::from_secs(240), false)
        .expect("QEMU runs");
    assert!(
        out.passed(),
        "TF-RMM under our EL3 did not pass:\n{}",
        out.lines.join("\n")
    );
    // TF-RMM got its RAK and platform token from our EL3 at cold boot.
    assert!(
        !out.lines
            .iter()
            .any(|l| l.contains("Failed to get realm attestation key")
                || l.contains("Attestation init failed")),
        "TF-RMM's attestation init failed under our EL3"
    );
    let host = world_lines(&out, "HOST");
    let b64: String = host
        .iter()
        .filter_map(|l| l.strip_prefix(host_core::payload::TOKEN_LINE))
        .collect();
    let theirs = cca_attest::b64::decode(&b64).expect("a token from TF-RMM");
    let rim = host
        .iter()
        .find_map(|l| l.strip_prefix("payload realm RIM (predicted by the host) = "))
        .unwrap();
    let key = std::env::var_os("CCA_DEV_CPAK")
        .map(PathBuf::from)
        .unwrap_or_else(|| out_dir().join("dev-cpak.key"));
    let el3 = std::fs::read(dir.join("el3.bin")).unwrap();
    let rmm = std::fs::read(&tfrmm).unwrap();
    let hostimg = std::fs::read(dir.join("host.bin")).unwrap();
    let text = std::fs::read_to_string(&key).unwrap();
    let cpak: [u8; 48] = hex::decode(&text).unwrap().try_into().unwrap();
    let p = DevPlatform::new(&cpak, &el3, &rmm, &hostimg).unwrap();
    let pred = Predicted {
        rim: Some(hex::decode(rim).unwrap()),
        hash_algo: Some(HashAlgo::Sha256),
        rems: Some(payload_rems()),
        ..Predicted::default()
    };
    verify_and_keep("tf-rmm-payload", &theirs, &p, &pred);
    // Ours, from the shared boot of this binary.
    let ours_out = e2e::shared_boot();
    let ours: String = world_lines(ours_out, "HOST")
        .iter()
        .filter_map(|l| l.strip_prefix(host_core::payload::TOKEN_LINE))
        .collect();
    let ours = cca_attest::b64::decode(&ours).unwrap();
    assert_eq!(ours.len(), theirs.len(), "the same token length");
    let (a, b): (ciborium::Value, ciborium::Value) = (
        ciborium::from_reader(&ours[..]).unwrap(),
        ciborium::from_reader(&theirs[..]).unwrap(),
    );
    same_shape(&a, &b, "token");
}
