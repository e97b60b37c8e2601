//! `cargo xtask token …` and `cargo xtask measure`: attestation tokens on the build machine.
//!
//! * `token verify FILE`: decodes a CCA token, verifies both signatures (the platform's with
//!   the CPAK of `trust-anchors.json`, the realm's with the RAK it carries), the binding,
//!   every mandatory claim and the profiles, compares the platform with its reference values
//!   and the realm with the values predicted for it (its challenge, RIM, REMs, RPV and hash
//!   algorithm: given as options, or with `--linux` computed from the same launch options as
//!   `cargo xtask run`), prints the claims as JSON and a one-line verdict, and fails with the
//!   reason on any mismatch.
//! * `token endorse`: writes the platform's endorsements (`trust-anchors.json`,
//!   `platform-reference-values.json`) into `target/attestation/` from the build's
//!   development CPAK and the images in `target/images/`.
//! * `token demo`: the chain end to end: boots the payload realm and a Linux realm (whose
//!   init script fetches a token through configfs-tsm), keeps both tokens in
//!   `target/attestation/` with their reference values, and verifies them.
//! * `measure`: prints the RIM a launch description produces, for SHA-256 and SHA-512.

use anyhow::{bail, Context, Result};
use cca_attest::endorse::{DevPlatform, ReferenceValues, TrustAnchors};
use cca_attest::{hex, HashAlgo, Predicted};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use xtask::launch::{self, LaunchArgs};

/// `cargo xtask token` subcommands.
#[derive(Subcommand)]
pub enum TokenCmd {
    /// Verify a CCA attestation token (raw CBOR) and print its claims as JSON.
    Verify(Box<VerifyArgs>),
    /// Write the platform's endorsements (trust anchors, reference values) next to the images.
    Endorse {
        /// The images (el3.bin, rmm.bin, host.bin).
        #[arg(long, default_value = "target/images")]
        images: PathBuf,
        /// Where to write them.
        #[arg(long, default_value = "target/attestation")]
        out: PathBuf,
    },
    /// Boot the payload realm and a Linux realm, fetch their tokens and verify them.
    Demo,
}

/// Options of `cargo xtask token verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The token (raw CBOR, as `outblob` or the realm's RSI calls give it).
    pub file: PathBuf,
    /// Trust anchors (JSON; default: the build's, target/attestation/trust-anchors.json).
    #[arg(long)]
    pub anchors: Option<PathBuf>,
    /// Reference values (JSON; default: target/attestation/platform-reference-values.json).
    #[arg(long)]
    pub reference_values: Option<PathBuf>,
    /// The challenge the realm was given (hex, up to 64 bytes, zero-padded).
    #[arg(long)]
    pub challenge: Option<String>,
    /// The RIM expected (hex).
    #[arg(long)]
    pub rim: Option<String>,
    /// Expected REMs as `INDEX=HEX` (0..3); with --linux the REMs not given must be zero.
    #[arg(long = "rem", value_name = "INDEX=HEX")]
    pub rems: Vec<String>,
    /// Expected realm hash algorithm (sha-256, sha-384, sha-512).
    #[arg(long)]
    pub hash: Option<String>,
    /// Predict the RIM, the RPV and the hash algorithm from the launch options (those of
    /// `cargo xtask run`) and expect REMs of zero unless --rem says otherwise.
    #[arg(long)]
    pub linux: bool,
    /// The launch description, used with --linux.
    #[command(flatten)]
    pub launch: LaunchArgs,
}

fn root() -> PathBuf {
    xtask::workspace_root()
}

/// The development CPAK file the EL3 image is built with.
pub fn cpak_file() -> PathBuf {
    std::env::var_os("CCA_DEV_CPAK")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/attestation/dev-cpak.key"))
}

/// Writes `trust-anchors.json` and `platform-reference-values.json` into `out` from the
/// development CPAK and the images in `images`.
pub fn endorse(images: &Path, out: &Path) -> Result<DevPlatform> {
    let p = DevPlatform::from_build(&cpak_file(), images)?;
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("trust-anchors.json"), p.anchors().to_json())?;
    std::fs::write(
        out.join("platform-reference-values.json"),
        p.reference_values().to_json(),
    )?;
    Ok(p)
}

fn hex_arg(what: &str, s: &str) -> Result<Vec<u8>> {
    hex::decode(s).with_context(|| format!("{what} is not hex: {s:?}"))
}

fn predicted(a: &VerifyArgs) -> Result<Predicted> {
    let mut p = Predicted {
        challenge: a
            .challenge
            .as_deref()
            .map(|c| hex_arg("--challenge", c))
            .transpose()?,
        rim: a.rim.as_deref().map(|r| hex_arg("--rim", r)).transpose()?,
        ..Predicted::default()
    };
    if let Some(h) = &a.hash {
        p.hash_algo = Some(HashAlgo::from_name(h).with_context(|| format!("--hash {h:?}"))?);
    }
    let mut rems: Option<[Vec<u8>; 4]> = None;
    if a.linux {
        let (kernel, initrd) =
            launch::guest_files(&a.launch, xtask::guest::InitScript::Shell, &[])?;
        let prep = launch::prepare(
            &a.launch,
            &kernel,
            initrd.as_deref(),
            &root().join("target/launch"),
        )?;
        let algo = match a.launch.measurement_algo.as_str() {
            "sha512" => HashAlgo::Sha512,
            _ => HashAlgo::Sha256,
        };
        p.hash_algo.get_or_insert(algo);
        p.rim
            .get_or_insert(hex_arg("the predicted RIM", &prep.rim)?);
        p.rpv = Some(prep.desc.rpv.to_vec());
        let z = vec![0u8; algo.digest_len()];
        rems = Some([z.clone(), z.clone(), z.clone(), z]);
    }
    for r in &a.rems {
        let (i, v) = r
            .split_once('=')
            .with_context(|| format!("--rem {r:?} is not INDEX=HEX"))?;
        let i: usize = i
            .parse()
            .ok()
            .filter(|i| *i < 4)
            .context("--rem index 0..3")?;
        let len = p.hash_algo.map_or(32, HashAlgo::digest_len);
        let set = rems.get_or_insert_with(|| core::array::from_fn(|_| vec![0; len]));
        set[i] = hex_arg("--rem", v)?;
    }
    p.rems = rems;
    Ok(p)
}

/// `cargo xtask token verify`: prints the claims and the verdict; an error on failure.
pub fn verify(a: &VerifyArgs) -> Result<()> {
    let token = std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let dir = root().join("target/attestation");
    let anchors_path = a
        .anchors
        .clone()
        .unwrap_or_else(|| dir.join("trust-anchors.json"));
    if a.anchors.is_none() && !anchors_path.exists() {
        endorse(&root().join("target/images"), &dir)
            .context("no trust anchors: writing the build's endorsements failed")?;
    }
    let anchors = TrustAnchors::from_json(
        &std::fs::read_to_string(&anchors_path)
            .with_context(|| format!("reading {}", anchors_path.display()))?,
    )?;
    let refs_path = a
        .reference_values
        .clone()
        .unwrap_or_else(|| dir.join("platform-reference-values.json"));
    let refs = match std::fs::read_to_string(&refs_path) {
        Ok(t) => Some(ReferenceValues::from_json(&t)?),
        Err(_) if a.reference_values.is_none() => None,
        Err(e) => bail!("reading {}: {e}", refs_path.display()),
    };
    let predicted = predicted(a)?;
    let decoded = cca_attest::Evidence::decode(&token);
    if let Ok(ev) = &decoded {
        println!(
            "{}",
            serde_json::to_string_pretty(&cca_attest::json::claims(ev)).unwrap_or_default()
        );
    }
    match cca_attest::check(&token, &anchors, refs.as_ref(), &predicted) {
        Ok(ev) => {
            println!(
                "VERDICT: PASS: {} ({} bytes): both signatures, the binding, the claims and \
                 profiles{}{} check out; RIM {}",
                a.file.display(),
                token.len(),
                if refs.is_some() {
                    ", the platform's reference values"
                } else {
                    ""
                },
                if predicted == Predicted::default() {
                    ""
                } else {
                    ", the predicted realm values"
                },
                hex::encode(&ev.realm.rim)
            );
            Ok(())
        }
        Err(e) => {
            println!("VERDICT: FAIL: {}: {e}", a.file.display());
            bail!("the token does not verify: {e}")
        }
    }
}

/// The development platform whose images a run booted: the build's CPAK and `el3.bin`, with
/// `rmm` and `host` (raw images as QEMU loaded them) in place of `rmm.bin` and `host.bin` of
/// `images` when given.
pub fn platform_of(images: &Path, rmm: Option<&Path>, host: Option<&Path>) -> Result<DevPlatform> {
    let key_file = cpak_file();
    let text = std::fs::read_to_string(&key_file)
        .with_context(|| format!("reading the development CPAK {}", key_file.display()))?;
    let key: [u8; 48] = hex::decode(&text)
        .and_then(|k| k.try_into().ok())
        .with_context(|| format!("{} must hold 96 hex digits", key_file.display()))?;
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    Ok(DevPlatform::new(
        &key,
        &read(&images.join("el3.bin"))?,
        &read(rmm.unwrap_or(&images.join("rmm.bin")))?,
        &read(host.unwrap_or(&images.join("host.bin")))?,
    )?)
}

/// Keeps `token` as `target/attestation/<name>.cbor` with the platform's endorsements
/// (`trust-anchors.json`, `platform-reference-values.json`), the values predicted for the
/// realm (`<name>.reference-values.json`, with the platform's) and its challenge
/// (`<name>.challenge`), verifies it and prints the verdict (`attestation VERDICT: PASS: …`
/// or `… FAIL: <reason>`); the verified evidence, or an error if it does not verify.
pub fn keep_and_verify(
    name: &str,
    token: &[u8],
    p: &DevPlatform,
    pred: &Predicted,
) -> Result<cca_attest::Evidence> {
    let dir = root().join("target/attestation");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("trust-anchors.json"), p.anchors().to_json())?;
    std::fs::write(
        dir.join("platform-reference-values.json"),
        p.reference_values().to_json(),
    )?;
    std::fs::write(dir.join(format!("{name}.cbor")), token)?;
    let len = pred.hash_algo.map_or(32, HashAlgo::digest_len);
    let mut refs = p.reference_values();
    refs.realm.push(cca_attest::endorse::RealmReference {
        rim: pred.rim.clone().unwrap_or_default(),
        rak_hash_algo: "sha-256".into(),
        rems: pred
            .rems
            .clone()
            .unwrap_or_else(|| core::array::from_fn(|_| vec![0; len])),
        rpv: pred.rpv.clone().unwrap_or_else(|| vec![0; 64]),
    });
    std::fs::write(
        dir.join(format!("{name}.reference-values.json")),
        refs.to_json(),
    )?;
    if let Some(c) = &pred.challenge {
        std::fs::write(dir.join(format!("{name}.challenge")), hex::encode(c))?;
    }
    match cca_attest::check(token, &p.anchors(), Some(&refs), pred) {
        Ok(ev) => {
            eprintln!(
                "    attestation VERDICT: PASS: the {name} realm's token ({} bytes, \
                 target/attestation/{name}.cbor): CPAK and RAK signatures, binding, claims and \
                 profiles, platform measurements, challenge, RIM {}, REMs, RPV",
                token.len(),
                hex::encode(&ev.realm.rim)
            );
            Ok(ev)
        }
        Err(e) => {
            eprintln!("    attestation VERDICT: FAIL: the {name} realm's token: {e}");
            bail!("the {name} realm's token does not verify: {e}")
        }
    }
}

/// The payload's REMs: it extends REM 0 once with a known value; the others stay zero.
pub fn payload_rems() -> [Vec<u8>; 4] {
    let mut rem0 = vec![0u8; 32];
    rem0.extend_from_slice(b"cca realm payload: REM[1] value!");
    [
        HashAlgo::Sha256.hash(&rem0),
        vec![0; 32],
        vec![0; 32],
        vec![0; 32],
    ]
}

/// The payload realm's token in a run's console (the host prints it in base64), kept and
/// verified with [`keep_and_verify`] against the RIM the host predicted, the challenge the
/// payload printed, its REMs and RPV, on platform `p`.
pub fn payload_token(lines: &[String], p: &DevPlatform) -> Result<()> {
    let host: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("[HOST] "))
        .collect();
    let b64: String = host
        .iter()
        .filter_map(|l| l.strip_prefix(host_core::payload::TOKEN_LINE))
        .collect();
    let token = cca_attest::b64::decode(&b64)
        .filter(|t| !t.is_empty())
        .context("the host printed no attestation token")?;
    let rim = host
        .iter()
        .find_map(|l| l.strip_prefix("payload realm RIM (predicted by the host) = "))
        .context("the host printed no RIM prediction")?;
    let challenge = lines
        .iter()
        .filter_map(|l| l.strip_prefix("[REALM] "))
        .find_map(|l| l.trim().strip_prefix("attestation challenge: "))
        .context("the payload printed no challenge")?;
    let mut rpv = b"cca-demo".to_vec();
    rpv.resize(64, 0);
    let pred = Predicted {
        challenge: Some(hex_arg("the challenge", challenge)?),
        hash_algo: Some(HashAlgo::Sha256),
        rim: Some(hex_arg("the RIM", rim)?),
        rems: Some(payload_rems()),
        rpv: Some(rpv),
    };
    keep_and_verify("payload", &token, p, &pred).map(|_| ())
}

/// The challenge the demonstrations give a Linux realm (64 bytes).
pub fn linux_challenge() -> Vec<u8> {
    (0..64u8).map(|i| i.wrapping_mul(97) ^ 0xC5).collect()
}

/// The token a Linux realm booted with [`xtask::guest::InitScript::Attest`] printed (read
/// through configfs-tsm), kept as `target/attestation/linux.cbor` and verified with
/// [`keep_and_verify`] against `challenge` and the launch's predicted RIM, RPV and hash
/// algorithm (REMs zero), on platform `p`; the verified evidence.
pub fn linux_token(
    run: &launch::LinuxRun,
    challenge: &[u8],
    p: &DevPlatform,
) -> Result<cca_attest::Evidence> {
    let e = &run.evidence;
    let token = e.token().with_context(|| {
        format!(
            "the Linux realm printed no token (TSM provider {:?}, outblob read status {:?})",
            e.tsm_provider, e.token_rc
        )
    })?;
    let algo = match run.prepared.desc.hash {
        host_core::vmm::launch::HashAlgo::Sha256 => HashAlgo::Sha256,
        host_core::vmm::launch::HashAlgo::Sha512 => HashAlgo::Sha512,
    };
    let z = vec![0u8; algo.digest_len()];
    let pred = Predicted {
        challenge: Some(challenge.to_vec()),
        hash_algo: Some(algo),
        rim: Some(hex_arg("the predicted RIM", &run.prepared.rim)?),
        rems: Some([z.clone(), z.clone(), z.clone(), z]),
        rpv: Some(run.prepared.desc.rpv.to_vec()),
    };
    keep_and_verify("linux", &token, p, &pred)
}

/// The modules a Linux realm's initramfs loads to fetch a token through configfs-tsm.
pub const TSM_MODULES: [&str; 3] = ["configfs", "tsm_report", "arm-cca-guest"];

/// `cargo xtask token …`.
pub fn run(cmd: &TokenCmd) -> Result<()> {
    match cmd {
        TokenCmd::Verify(a) => verify(a),
        TokenCmd::Demo => {
            let tc = xtask::setup::ensure_all()?;
            let imgs = xtask::images::build_all(&root(), &tc)?;
            let args = xtask::RunArgs {
                rmm: None,
                host: None,
                icount: false,
                timeout: 180,
            };
            let out = xtask::qemu::run(&root(), &imgs, &args)?;
            if !out.passed() {
                bail!("the payload demonstration did not pass");
            }
            let p = platform_of(&imgs.dir, None, None)?;
            payload_token(&out.lines, &p)?;
            let challenge = linux_challenge();
            let mut la = LaunchArgs::new(256, 2);
            la.timeout = 900;
            let run = launch::boot_linux(
                &imgs,
                &la,
                xtask::guest::InitScript::Attest {
                    challenge: challenge.clone(),
                },
                &TSM_MODULES,
                &root().join("target/launch-attest"),
                false,
                &[],
            )?;
            linux_token(&run, &challenge, &p).map(|_| ())
        }
        TokenCmd::Endorse { images, out } => {
            let p = endorse(&root().join(images), &root().join(out))?;
            println!(
                "platform instance ID {}; endorsements written to {}",
                hex::encode(&p.anchor.instance_id),
                root().join(out).display()
            );
            Ok(())
        }
    }
}

/// `cargo xtask measure`: the RIM of a launch with each measurement algorithm.
pub fn measure(args: &LaunchArgs) -> Result<()> {
    let (kernel, initrd) = launch::guest_files(args, xtask::guest::InitScript::Shell, &[])?;
    for algo in ["sha256", "sha512"] {
        let mut a = args.clone();
        a.measurement_algo = algo.into();
        let p = launch::prepare(
            &a,
            &kernel,
            initrd.as_deref(),
            &root().join("target/launch"),
        )?;
        println!("RIM ({algo}): {}", p.rim);
    }
    Ok(())
}
