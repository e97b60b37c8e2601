//! A private APT configuration for Debian's arm64 packages, and readers for what `apt-cache`
//! prints. It never touches the machine's APT state: its sources, indexes, package caches
//! and dpkg status all live under the cache directory, and the machine's sources and pins
//! are not read. `apt-get update` verifies the indexes' signatures against Debian's archive
//! keyring (nothing here marks a source trusted).

use super::debver::DebVersion;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The suites searched, oldest first.
pub const SUITES: [&str; 4] = ["trixie", "trixie-backports", "forky", "sid"];
/// The keyring that signs Debian's archive.
pub const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// The architecture of the packages.
pub const ARCH: &str = "arm64";

/// The private APT state under `<cache>/apt`.
#[derive(Clone, Debug)]
pub struct Apt {
    dir: PathBuf,
    sandbox_root: bool,
}

/// The sources file: one line per suite, `main` only, package indexes only.
pub fn sources_list(mirror: &str) -> Result<String> {
    if mirror.is_empty()
        || mirror.contains(|c: char| c.is_whitespace() || c == '[' || c == ']' || c == '#')
        || !mirror.contains(':')
    {
        bail!("{mirror:?} is not a usable APT mirror URI");
    }
    Ok(SUITES
        .iter()
        .map(|s| {
            format!("deb [arch={ARCH} signed-by={KEYRING} target=Packages] {mirror} {s} main\n")
        })
        .collect())
}

impl Apt {
    /// Creates the directories and files of the private state under `<cache>/apt`.
    pub fn new(cache: &Path, mirror: &str, sandbox_root: bool) -> Result<Self> {
        let dir = cache.join("apt");
        for d in ["lists/partial", "cache/archives/partial", "preferences.d"] {
            std::fs::create_dir_all(dir.join(d))
                .with_context(|| format!("creating {}", dir.join(d).display()))?;
        }
        let write = |name: &str, text: &str| {
            std::fs::write(dir.join(name), text)
                .with_context(|| format!("writing {}", dir.join(name).display()))
        };
        write("sources.list", &sources_list(mirror)?)?;
        // dpkg's status: empty, so nothing counts as installed.
        write("status", "")?;
        Ok(Self { dir, sandbox_root })
    }

    /// The `-o` options every apt-get and apt-cache call gets.
    pub fn options(&self) -> Vec<String> {
        let d = |p: &str| self.dir.join(p).display().to_string();
        let mut o = vec![
            format!("Dir::Etc::sourcelist={}", d("sources.list")),
            "Dir::Etc::sourceparts=-".to_string(),
            format!("Dir::Etc::preferences={}", d("preferences")),
            format!("Dir::Etc::preferencesparts={}", d("preferences.d")),
            format!("Dir::State::Lists={}", d("lists")),
            format!("Dir::State::status={}", d("status")),
            format!("Dir::State::extended_states={}", d("extended_states")),
            format!("Dir::Cache={}", d("cache")),
            format!("APT::Architecture={ARCH}"),
            format!("APT::Architectures={ARCH}"),
        ];
        if self.sandbox_root {
            // As root, downloads into a folder the `_apt` user cannot enter run as root
            // anyway (apt warns); say so up front. Signatures and hashes are checked either way.
            o.push("APT::Sandbox::User=root".to_string());
        }
        o.into_iter().flat_map(|x| ["-o".to_string(), x]).collect()
    }

    /// The directory holding the private state.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A command line a user can run to see apt's own messages.
    pub fn command_line(&self, tool: &str, args: &str) -> String {
        format!("{tool} {} {args}", self.options().join(" "))
    }

    fn command(&self, tool: &str) -> Command {
        let mut c = Command::new(tool);
        c.args(self.options())
            .env("DEBIAN_FRONTEND", "noninteractive");
        c
    }

    /// `apt-get update`, with apt's progress on the terminal.
    pub fn update(&self) -> Result<()> {
        let status = self
            .command("apt-get")
            .arg("update")
            .status()
            .context("running apt-get update")?;
        if !status.success() {
            bail!("apt-get update failed ({status})");
        }
        Ok(())
    }

    /// Whether a previous update left package indexes behind.
    pub fn has_indexes(&self) -> bool {
        std::fs::read_dir(self.dir.join("lists")).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().contains("_Packages"))
        })
    }

    fn query(&self, args: &[&str]) -> Result<String> {
        let out = self
            .command("apt-cache")
            .args(args)
            .output()
            .context("running apt-cache")?;
        if !out.status.success() {
            bail!(
                "apt-cache {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Every version of `package` the indexes hold, with the suite of each.
    pub fn versions(&self, package: &str) -> Result<Vec<Available>> {
        parse_madison(&self.query(&["madison", package])?, package)
    }

    /// The index record of `package` at `version`.
    pub fn show(&self, package: &str, version: &str) -> Result<Stanza> {
        let text = self.query(&["show", &format!("{package}={version}")])?;
        let s = Stanza::parse_first(&text);
        if s.get("Package") != Some(package) || s.get("Version") != Some(version) {
            bail!("apt-cache show {package}={version} printed no record for it");
        }
        Ok(s)
    }

    /// `apt-get download` of `name=version` pairs into `dir`, with apt's progress on the
    /// terminal.
    pub fn download(&self, dir: &Path, packages: &[(String, String)]) -> Result<()> {
        let names: Vec<String> = packages.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let status = self
            .command("apt-get")
            .arg("download")
            .args(&names)
            .current_dir(dir)
            .status()
            .context("running apt-get download")?;
        if !status.success() {
            bail!("apt-get download {} failed ({status})", names.join(" "));
        }
        Ok(())
    }
}

/// One version of a package in the indexes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Available {
    /// The version.
    pub version: DebVersion,
    /// The suite it comes from (`trixie-backports`, ...).
    pub suite: String,
}

/// Reads `apt-cache madison` output: `name | version | URI suite/component arch Packages`.
/// Lines for other packages or for source indexes are skipped; a malformed version is an
/// error.
pub fn parse_madison(text: &str, package: &str) -> Result<Vec<Available>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        let [name, version, source] = cols[..] else {
            continue;
        };
        if name != package || !source.ends_with("Packages") {
            continue;
        }
        let version = DebVersion::parse(version)
            .with_context(|| format!("apt-cache madison {package}: {line:?}"))?;
        let suite = source
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.split('/').next())
            .unwrap_or("?")
            .to_string();
        out.push(Available { version, suite });
    }
    Ok(out)
}

/// The newest of `available` that is at least `min`.
pub fn newest<'a>(available: &'a [Available], min: Option<&DebVersion>) -> Option<&'a Available> {
    available
        .iter()
        .filter(|a| min.is_none_or(|m| a.version >= *m))
        .max_by(|a, b| a.version.cmp(&b.version))
}

/// One deb822 record (`Field: value`, continuation lines start with a space).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stanza {
    fields: Vec<(String, String)>,
}

impl Stanza {
    /// The first record of `text` (up to the first blank line).
    pub fn parse_first(text: &str) -> Self {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            if line.trim().is_empty() {
                if fields.is_empty() {
                    continue;
                }
                break;
            }
            if line.starts_with([' ', '\t']) {
                if let Some((_, v)) = fields.last_mut() {
                    v.push('\n');
                    v.push_str(line.trim());
                }
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        Self { fields }
    }

    /// A field's value (field names compare case-insensitively, as in deb822).
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(field))
            .map(|(_, v)| v.as_str())
    }

    /// Like [`Stanza::get`], but a missing field is an error naming the record.
    pub fn require(&self, field: &str) -> Result<&str> {
        self.get(field).with_context(|| {
            format!(
                "the index record of {} {} has no {field} field",
                self.get("Package").unwrap_or("?"),
                self.get("Version").unwrap_or("?")
            )
        })
    }
}

/// One alternative of a dependency: `name[:arch] [(op version)]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dep {
    /// The package name.
    pub name: String,
    /// The relation and version, e.g. `("=", "7.3.4-1")`.
    pub relation: Option<(String, String)>,
}

/// Reads a `Depends` value: comma-separated dependencies, each a `|`-separated list of
/// alternatives. Architecture lists (`[...]`) and build profiles (`<...>`) are dropped.
pub fn parse_depends(value: &str) -> Vec<Vec<Dep>> {
    value
        .split(',')
        .map(|dep| {
            dep.split('|')
                .filter_map(|alt| {
                    let alt = alt.split(['[', '<']).next().unwrap_or("").trim();
                    let (name, relation) = match alt.split_once('(') {
                        Some((n, r)) => {
                            let r = r.trim_end_matches(')').trim();
                            let split = r.find(|c: char| !"<>=".contains(c)).unwrap_or(r.len());
                            let (op, ver) = r.split_at(split);
                            (n.trim(), Some((op.to_string(), ver.trim().to_string())))
                        }
                        None => (alt, None),
                    };
                    let name = name.split(':').next().unwrap_or("").trim();
                    (!name.is_empty()).then(|| Dep {
                        name: name.to_string(),
                        relation,
                    })
                })
                .collect::<Vec<_>>()
        })
        .filter(|alts| !alts.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MADISON: &str = "\
linux-image-cloud-arm64 | 7.3.4-1~bpo13+1 | http://deb.debian.org/debian trixie-backports/main arm64 Packages
linux-image-cloud-arm64 |   7.2.13-1 | http://deb.debian.org/debian sid/main arm64 Packages
linux-image-cloud-arm64 |   7.2.12-1 | http://deb.debian.org/debian forky/main arm64 Packages
linux-image-cloud-arm64 | 6.12.117-1 | http://deb.debian.org/debian trixie/main arm64 Packages
linux-signed-arm64 | 7.2.13-1 | http://deb.debian.org/debian sid/main Sources
other-package | 99.0 | http://deb.debian.org/debian sid/main arm64 Packages
";

    #[test]
    fn madison_and_the_newest_version() {
        let all = parse_madison(MADISON, "linux-image-cloud-arm64").unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(all[1].suite, "sid");
        let min = DebVersion::parse("6.13").unwrap();
        let best = newest(&all, Some(&min)).unwrap();
        assert_eq!(best.version.as_str(), "7.3.4-1~bpo13+1");
        assert_eq!(best.suite, "trixie-backports");
        // Only trixie's 6.12: nothing qualifies.
        let old =
            parse_madison(MADISON.lines().nth(3).unwrap(), "linux-image-cloud-arm64").unwrap();
        assert_eq!(old.len(), 1);
        assert!(newest(&old, Some(&min)).is_none());
        assert_eq!(newest(&old, None).unwrap().version.as_str(), "6.12.117-1");
        assert!(newest(&[], None).is_none());
        assert!(parse_madison("x | not a version | u trixie/main arm64 Packages", "x").is_err());
        assert!(parse_madison("garbage\n\n", "x").unwrap().is_empty());
    }

    #[test]
    fn stanza_fields_and_continuations() {
        let text =
            "\n\nPackage: busybox-static\nVersion: 1:1.38.0-3+b1\nDescription: tiny\n more text\n\
                    SHA256: 968d\n\nPackage: second\n";
        let s = Stanza::parse_first(text);
        assert_eq!(s.get("package"), Some("busybox-static"));
        assert_eq!(s.get("Description"), Some("tiny\nmore text"));
        assert_eq!(s.get("SHA256"), Some("968d"));
        assert_eq!(s.get("Nope"), None);
        assert!(s.require("Filename").is_err());
        assert_eq!(Stanza::parse_first(""), Stanza::default());
    }

    #[test]
    fn depends() {
        let d = parse_depends(
            "dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, \
             linux-base-7.3.4+deb13-cloud-arm64 (= 7.3.4-1~bpo13+1), kmod:any, foo [arm64] <!nocheck>, ,",
        );
        assert_eq!(d.len(), 4);
        assert_eq!(d[0].len(), 3);
        assert_eq!(
            d[0][1],
            Dep {
                name: "initramfs-tools".into(),
                relation: Some((">=".into(), "0.120+deb8u2".into()))
            }
        );
        assert_eq!(d[1][0].name, "linux-base-7.3.4+deb13-cloud-arm64");
        assert_eq!(
            d[1][0].relation,
            Some(("=".into(), "7.3.4-1~bpo13+1".into()))
        );
        assert_eq!(d[2][0].name, "kmod");
        assert_eq!(
            d[3][0],
            Dep {
                name: "foo".into(),
                relation: None
            }
        );
        assert!(parse_depends("").is_empty());
    }

    #[test]
    fn sources_and_options() {
        let s = sources_list("http://mirror.example/debian").unwrap();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 4);
        for (l, suite) in lines.iter().zip(SUITES) {
            assert_eq!(
                *l,
                format!("deb [arch=arm64 signed-by={KEYRING} target=Packages] http://mirror.example/debian {suite} main")
            );
        }
        assert!(!s.contains("trusted"));
        for bad in ["", "http://a b", "[trusted=yes] http://x", "nocolon"] {
            assert!(sources_list(bad).is_err(), "{bad:?}");
        }
        let tmp = std::env::temp_dir().join(format!("cca-apt-test-{}", std::process::id()));
        let apt = Apt::new(&tmp, "http://mirror.example/debian", false).unwrap();
        let o = apt.options();
        assert!(o.chunks(2).all(|p| p[0] == "-o"));
        let vals: Vec<&str> = o.iter().skip(1).step_by(2).map(String::as_str).collect();
        let root = tmp.join("apt");
        for want in [
            format!(
                "Dir::Etc::sourcelist={}",
                root.join("sources.list").display()
            ),
            "Dir::Etc::sourceparts=-".to_string(),
            format!("Dir::State::Lists={}", root.join("lists").display()),
            format!("Dir::State::status={}", root.join("status").display()),
            format!("Dir::Cache={}", root.join("cache").display()),
            "APT::Architecture=arm64".to_string(),
            "APT::Architectures=arm64".to_string(),
        ] {
            assert!(vals.contains(&want.as_str()), "missing {want}");
        }
        assert!(!vals.iter().any(|v| v.contains("Sandbox")));
        assert!(!o.iter().any(|v| v.contains("allow-unauthenticated")));
        assert_eq!(std::fs::read(root.join("status")).unwrap(), b"");
        assert!(root.join("lists/partial").is_dir());
        assert!(!apt.has_indexes());
        let as_root = Apt::new(&tmp, "http://mirror.example/debian", true).unwrap();
        assert!(as_root
            .options()
            .iter()
            .any(|v| v == "APT::Sandbox::User=root"));
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
