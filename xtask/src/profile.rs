//! `cargo xtask bench --profile OP`: where the instructions of a benchmarked operation go.
//!
//! The benchmark run is repeated with a QEMU TCG plugin (`profile_plugin.rs`, compiled here
//! with `rustc`) that counts every instruction executed between the host's
//! `host_core::bench::region_start` and `region_end`, per translation block. Each block is
//! attributed to the function containing it, using the symbol tables of the EL3, RMM and host
//! ELF files (blocks in RAM by physical address, the EL3 monitor in flash by virtual address);
//! code without a symbol (the realm payload) is reported as `realm/other`. The host prints
//! `REGION <n> <name> <ops>` for every window, so the windows of one operation are summed and
//! divided by its count.

use anyhow::{bail, Context, Result};
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;
use xtask::images::Images;
use xtask::qemu::{command, run_command};
use xtask::setup::step;

/// Which image a function belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    /// The EL3 monitor.
    El3,
    /// The RMM.
    Rmm,
    /// The Normal-world host.
    Host,
    /// Anything without a symbol: the realm payload, or another RMM's code.
    Other,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::El3 => "EL3",
            Part::Rmm => "RMM",
            Part::Host => "host",
            Part::Other => "realm/other",
        }
    }
}

/// A function: where it is and what it is called (demangled).
#[derive(Clone, Debug)]
struct Function {
    start: u64,
    end: u64,
    name: String,
}

/// Demangles a legacy Rust symbol (`_ZN...E`): the path without the hash, with the escapes
/// undone. Other names are returned unchanged.
pub fn demangle(sym: &str) -> String {
    let Some(mut rest) = sym.strip_prefix("_ZN") else {
        return sym.to_string();
    };
    let mut parts = Vec::new();
    while let Some(c) = rest.chars().next() {
        if !c.is_ascii_digit() {
            break;
        }
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        let Ok(len) = rest[..digits].parse::<usize>() else {
            break;
        };
        let Some(part) = rest.get(digits..digits + len) else {
            break;
        };
        // A component that would start with `$` is prefixed with `_`.
        parts.push(part.strip_prefix("_$").map_or(part, |_| &part[1..]));
        rest = &rest[digits + len..];
    }
    if parts.is_empty() {
        return sym.to_string();
    }
    if parts
        .last()
        .is_some_and(|h| h.len() == 17 && h.starts_with('h'))
    {
        parts.pop();
    }
    let mut out = parts.join("::");
    for (from, to) in [
        ("$LT$", "<"),
        ("$GT$", ">"),
        ("$u20$", " "),
        ("$C$", ","),
        ("$RF$", "&"),
        ("$BP$", "*"),
        ("$u7b$", "{"),
        ("$u7d$", "}"),
        ("$u27$", "'"),
        ("$u5b$", "["),
        ("$u5d$", "]"),
        ("$u3b$", ";"),
        ("..", "::"),
    ] {
        out = out.replace(from, to);
    }
    out.trim_start_matches('_').to_string()
}

fn functions(elf: &Path) -> Result<Vec<Function>> {
    let data = std::fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
    let file = object::File::parse(&*data).with_context(|| format!("parsing {}", elf.display()))?;
    // Functions, and the labels of global assembly (no type); not the `$x`/`$d` mapping
    // symbols or data.
    let mut f: Vec<Function> = file
        .symbols()
        .filter(|s| {
            matches!(
                s.kind(),
                SymbolKind::Text | SymbolKind::Unknown | SymbolKind::Label
            )
        })
        .filter(|s| {
            s.address() != 0 && s.name().is_ok_and(|n| !n.starts_with('$') && !n.is_empty())
        })
        .filter(|s| {
            s.section_index()
                .and_then(|i| file.section_by_index(i).ok())
                .is_some_and(|sec| sec.kind() == object::SectionKind::Text)
        })
        .filter_map(|s| {
            Some(Function {
                start: s.address(),
                end: s.address() + s.size().max(4),
                name: demangle(s.name().ok()?),
            })
        })
        .collect();
    f.sort_by_key(|f| f.start);
    Ok(f)
}

fn lookup(fs: &[Function], addr: u64) -> Option<&Function> {
    let i = fs.partition_point(|f| f.start <= addr);
    let f = fs.get(i.checked_sub(1)?)?;
    // A symbol without a size (assembly) extends to the next one.
    let end = if f.end - f.start <= 4 {
        fs.get(i).map_or(f.end, |n| n.start)
    } else {
        f.end
    };
    (addr < end).then_some(f)
}

/// The symbols of the three images.
pub struct Symbols {
    el3: Vec<Function>,
    rmm: Vec<Function>,
    host: Vec<Function>,
}

impl Symbols {
    /// Reads the ELF files the raw images were made from.
    pub fn load(root: &Path) -> Result<Self> {
        let dir = root
            .join("target/fw")
            .join(xtask::setup::FW_TARGET)
            .join("release");
        Ok(Self {
            el3: functions(&dir.join("el3"))?,
            rmm: functions(&dir.join("rmm"))?,
            host: functions(&dir.join("host"))?,
        })
    }

    /// The function at `addr`: `p` addresses are physical (RAM), `v` virtual (flash).
    fn find(&self, space: char, addr: u64) -> (Part, String) {
        if space == 'v' {
            // Only the EL3 monitor runs outside RAM (from flash).
            return match lookup(&self.el3, addr) {
                Some(f) => (Part::El3, f.name.clone()),
                None => (Part::El3, format!("(EL3 code at {addr:#x})")),
            };
        } else {
            if let Some(f) = lookup(&self.rmm, addr) {
                return (Part::Rmm, f.name.clone());
            }
            if let Some(f) = lookup(&self.host, addr) {
                return (Part::Host, f.name.clone());
            }
        }
        (Part::Other, format!("(no symbol, {space}:{addr:#x})"))
    }

    fn host_symbol(&self, needle: &str) -> Result<u64> {
        self.host
            .iter()
            .find(|f| f.name.ends_with(needle))
            .map(|f| f.start)
            .with_context(|| format!("no {needle} in the host image"))
    }

    fn el3_symbol(&self, needle: &str) -> Result<u64> {
        self.el3
            .iter()
            .find(|f| f.name.ends_with(needle))
            .map(|f| f.start)
            .with_context(|| format!("no {needle} in the EL3 image"))
    }

    fn rmm_symbol(&self, needle: &str) -> Result<u64> {
        self.rmm
            .iter()
            .find(|f| f.name.ends_with(needle))
            .map(|f| f.start)
            .with_context(|| format!("no {needle} in the RMM image"))
    }
}

/// Where the RMM's instructions go, by kind (from the function names).
fn rmm_kind(name: &str) -> &'static str {
    let n = name.to_ascii_lowercase();
    if n.contains("sha2") || n.contains("sha512") || n.contains("sha256") || n.contains("hasher") {
        "hashing"
    } else if n.contains("memcpy")
        || n.contains("memmove")
        || n.contains("ns_copy")
        || n.contains("realm_read")
        || n.contains("realm_write")
        || n.contains("rec_read")
        || n.contains("rec_write")
        || n.contains("rd_read")
        || n.contains("rd_write")
    {
        "copies"
    } else if n.contains("memset") || n.contains("realm_zero") || n.contains("scrub") {
        "zeroing/scrubs"
    } else if n.contains("boot_complete")
        || n.contains("handle_rmi")
        || n.contains("smccc")
        || n.contains("rmm::smc")
        || n.contains("realm::leave")
    {
        "RMM entry/exit"
    } else if n.contains("realm::run")
        || n.contains("save_state")
        || n.contains("restore_state")
        || n.contains("fp_save")
        || n.contains("fp_restore")
        || n.contains("realm_enter")
        || n.contains("realm_exit")
    {
        "realm world switch"
    } else {
        "command"
    }
}

/// The counts of one run: window -> (function -> instructions), and the regions' names.
pub struct Profile {
    /// (part, function) -> instructions, per window.
    windows: HashMap<u64, HashMap<(Part, String), u64>>,
    /// Window -> (name, ops).
    regions: HashMap<u64, (String, u64)>,
}

impl Profile {
    /// Reads the plugin's output and the host's `REGION` lines.
    pub fn parse(counts: &str, lines: &[String], syms: &Symbols) -> Self {
        let mut windows: HashMap<u64, HashMap<(Part, String), u64>> = HashMap::new();
        for l in counts.lines() {
            let w: Vec<&str> = l.split_whitespace().collect();
            let [win, space, addr, insns, execs] = w[..] else {
                continue;
            };
            let (Ok(win), Ok(addr), Ok(insns), Ok(execs)) = (
                win.parse::<u64>(),
                u64::from_str_radix(addr, 16),
                insns.parse::<u64>(),
                execs.parse::<u64>(),
            ) else {
                continue;
            };
            let key = syms.find(space.chars().next().unwrap_or('p'), addr);
            *windows.entry(win).or_default().entry(key).or_default() += insns * execs;
        }
        let regions = lines
            .iter()
            .filter_map(|l| l.strip_prefix("[HOST] REGION "))
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                Some((
                    w.next()?.parse().ok()?,
                    (w.next()?.to_string(), w.next()?.parse().ok()?),
                ))
            })
            .collect();
        Self { windows, regions }
    }

    /// The names of the profiled operations, in window order.
    pub fn operations(&self) -> Vec<String> {
        let mut w: Vec<(&u64, &(String, u64))> = self.regions.iter().collect();
        w.sort();
        let mut names: Vec<String> = Vec::new();
        for (_, (n, _)) in w {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        names
    }

    /// Instructions per operation by function for `op` (all its windows), and the count.
    fn per_op(&self, op: &str) -> (HashMap<(Part, String), u64>, u64) {
        let mut sum: HashMap<(Part, String), u64> = HashMap::new();
        let mut ops = 0;
        for (w, (name, n)) in &self.regions {
            if name != op {
                continue;
            }
            ops += n;
            for (k, v) in self.windows.get(w).into_iter().flatten() {
                *sum.entry(k.clone()).or_default() += v;
            }
        }
        (sum, ops)
    }

    /// The breakdown of `op`: by part (and the RMM's by kind), then the top functions.
    pub fn report(&self, op: &str, top: usize) -> Result<String> {
        let (sum, ops) = self.per_op(op);
        if ops == 0 {
            bail!(
                "no benchmark region named {op}; the regions are: {}",
                self.operations().join(", ")
            );
        }
        let per = |v: u64| v as f64 / ops as f64;
        let total: u64 = sum.values().sum();
        let mut t = String::new();
        let _ = writeln!(
            t,
            "{op}: {ops} operations, {:.0} instructions per operation",
            per(total)
        );
        let mut parts: HashMap<Part, u64> = HashMap::new();
        let mut kinds: HashMap<&str, u64> = HashMap::new();
        for ((part, name), v) in &sum {
            *parts.entry(*part).or_default() += v;
            if *part == Part::Rmm {
                *kinds.entry(rmm_kind(name)).or_default() += v;
            }
        }
        let mut parts: Vec<_> = parts.into_iter().collect();
        parts.sort();
        for (part, v) in parts {
            let _ = writeln!(t, "  {:<24} {:>12.0}", part.name(), per(v));
            if part == Part::Rmm {
                let mut k: Vec<_> = kinds.iter().collect();
                k.sort_by(|a, b| b.1.cmp(a.1));
                for (kind, v) in k {
                    let _ = writeln!(t, "    {kind:<22} {:>12.0}", per(*v));
                }
            }
        }
        let _ = writeln!(t, "  top functions (instructions per operation):");
        let mut f: Vec<_> = sum.into_iter().collect();
        f.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for ((part, name), v) in f.into_iter().take(top) {
            let mut name = name;
            if name.len() > 100 {
                name.truncate(100);
            }
            let _ = writeln!(t, "  {:>12.1}  {:<5} {name}", per(v), part.name());
        }
        Ok(t)
    }
}

/// Compiles the plugin into `target/profile`.
fn build_plugin(root: &Path) -> Result<PathBuf> {
    let dir = root.join("target/profile");
    std::fs::create_dir_all(&dir)?;
    let out = dir.join("libcca_profile.so");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let status = std::process::Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "--crate-type",
            "cdylib",
            "-C",
            "opt-level=2",
            "-o",
        ])
        .arg(&out)
        .arg(root.join("xtask/src/profile_plugin.rs"))
        .status()
        .context("running rustc for the profile plugin")?;
    if !status.success() {
        bail!("building the profile plugin failed");
    }
    Ok(out)
}

/// The name `cargo xtask bench --profile` gives every `REC_ENTER` of the payload run: from
/// the RMM's `cmd_rec_enter` to its next SMC to EL3 (the answer to the host), so the realm's
/// own instructions, its RSI calls and the exits the RMM handles are included, EL3 and the
/// host are not.
pub const REC_ENTER: &str = "rec_enter";

/// The name `cargo xtask bench --profile` gives the windows of every exit from the payload
/// realm to the RMM: from the RMM's synchronous lower-EL vector (`rmm_realm_sync`) to its next
/// entry into a realm (`rmm_realm_enter`), i.e. the RMM's handling of one realm exit. Windows
/// that executed exactly the same instructions per function are one class, named
/// `realm_exit_<rank>` by how often it occurred (`realm_exit_1` the most frequent).
pub const REALM_EXIT: &str = "realm_exit";

/// What `--profile` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The host's timed benchmark regions.
    Regions,
    /// Every `REC_ENTER` ([`REC_ENTER`]).
    RecEnter,
    /// Every realm exit the RMM handles ([`REALM_EXIT`]).
    RealmExit,
}

impl Mode {
    /// The mode `--profile OP` asks for.
    pub fn of(op: &str) -> Self {
        match op {
            REC_ENTER => Self::RecEnter,
            o if o == REALM_EXIT || o.starts_with("realm_exit_") => Self::RealmExit,
            _ => Self::Regions,
        }
    }
}

/// A function of one image.
type Key = (Part, String);
/// Instructions per function in one window.
type Counts = HashMap<Key, u64>;

/// The offset of the "lower EL using AArch64, synchronous" entry in a vector table.
const LOWER_EL_SYNC: u64 = 0x400;

/// Runs the benchmark with the plugin and returns the profile: of the host's timed regions,
/// of every `REC_ENTER` ([`REC_ENTER`]), or of every realm exit ([`REALM_EXIT`]).
pub fn run(root: &Path, imgs: &Images, mode: Mode) -> Result<Profile> {
    let plugin = build_plugin(root)?;
    let syms = Symbols::load(root)?;
    let (open, close) = match mode {
        // To the RMM's answer: its SMC to EL3 enters EL3's lower-EL synchronous vector.
        Mode::RecEnter => (
            syms.rmm_symbol(">::cmd_rec_enter")?,
            syms.el3_symbol("el3_vectors")? + LOWER_EL_SYNC,
        ),
        Mode::RealmExit => (
            syms.rmm_symbol("rmm_realm_sync")?,
            syms.rmm_symbol("rmm_realm_enter")?,
        ),
        Mode::Regions => (
            syms.host_symbol("host_core::bench::region_start")?,
            syms.host_symbol("host_core::bench::region_end")?,
        ),
    };
    let counts = root.join("target/profile/counts.txt");
    let _ = std::fs::remove_file(&counts);
    let realm = imgs.realm();
    let mut cmd = command(&imgs.el3, &imgs.rmm, &imgs.host, Some(&realm), true);
    cmd.arg("-device")
        .arg(xtask::qemu::BENCH_FLAG)
        .arg("-plugin")
        .arg(format!(
            "{},open={open:x},close={close:x},ram=40000000,out={}",
            plugin.display(),
            counts.display()
        ));
    step("profiling the benchmark on QEMU with -icount shift=0 and a counting plugin");
    let out = run_command(&mut cmd, Duration::from_secs(1800), false)?;
    if !out.passed() {
        for l in &out.lines {
            eprintln!("{l}");
        }
        bail!("the profiled benchmark run failed");
    }
    let text = std::fs::read_to_string(&counts)
        .with_context(|| format!("reading {}", counts.display()))?;
    let mut p = Profile::parse(&text, &out.lines, &syms);
    match mode {
        Mode::RecEnter => {
            p.regions = p
                .windows
                .keys()
                .map(|w| (*w, (REC_ENTER.to_string(), 1)))
                .collect();
        }
        Mode::RealmExit => p.regions = exit_classes(&p.windows),
        Mode::Regions => {}
    }
    Ok(p)
}

/// Names every window by its class (see [`REALM_EXIT`]): windows whose instructions per
/// function are identical are one class; classes are ranked by how many windows they have
/// (then by their first window), `realm_exit_1` first.
fn exit_classes(windows: &HashMap<u64, Counts>) -> HashMap<u64, (String, u64)> {
    let mut classes: HashMap<Vec<(Key, u64)>, Vec<u64>> = HashMap::new();
    for (w, funcs) in windows {
        let mut sig: Vec<(Key, u64)> = funcs.iter().map(|(k, v)| (k.clone(), *v)).collect();
        sig.sort();
        classes.entry(sig).or_default().push(*w);
    }
    let mut ranked: Vec<Vec<u64>> = classes.into_values().collect();
    for ws in &mut ranked {
        ws.sort_unstable();
    }
    ranked.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    let mut regions = HashMap::new();
    for (rank, ws) in ranked.iter().enumerate() {
        for w in ws {
            regions.insert(*w, (format!("{REALM_EXIT}_{}", rank + 1), 1));
        }
    }
    regions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_with_the_same_counts_are_one_class_ranked_by_frequency() {
        let key = |n: &str| (Part::Rmm, n.to_string());
        let mut windows: HashMap<u64, HashMap<(Part, String), u64>> = HashMap::new();
        for w in 0..5u64 {
            // Windows 0, 2, 4: one path; 1 and 3: another (more instructions in `b`).
            let b = if w % 2 == 0 { 10 } else { 30 };
            windows.insert(w, HashMap::from([(key("a"), 5), (key("b"), b)]));
        }
        windows.insert(9, HashMap::from([(key("c"), 1)]));
        let r = exit_classes(&windows);
        assert_eq!(r[&0].0, "realm_exit_1");
        assert_eq!(r[&2].0, "realm_exit_1");
        assert_eq!(r[&1].0, "realm_exit_2");
        assert_eq!(r[&9].0, "realm_exit_3");
        assert!(r.values().all(|(_, ops)| *ops == 1));
        assert_eq!(Mode::of("realm_exit"), Mode::RealmExit);
        assert_eq!(Mode::of("realm_exit_2"), Mode::RealmExit);
        assert_eq!(Mode::of("rec_enter"), Mode::RecEnter);
        assert_eq!(Mode::of("rec_create_sro"), Mode::Regions);
    }

    #[test]
    fn legacy_symbols_are_demangled() {
        assert_eq!(
            demangle("_ZN8rmm_core3rtt45_$LT$impl$u20$rmm_core..rmm..Rmm$LT$P$GT$$GT$14cmd_rtt_create17h20147d5deb50a5c2E"),
            "rmm_core::rtt::<impl rmm_core::rmm::Rmm<P>>::cmd_rtt_create"
        );
        assert_eq!(demangle("memcpy"), "memcpy");
        assert_eq!(demangle("_ZNbad"), "_ZNbad");
        assert_eq!(
            demangle("_ZN3rmm4boot4cold17h0123456789abcdefE"),
            "rmm::boot::cold"
        );
    }

    fn syms() -> Symbols {
        let f = |start, end, name: &str| Function {
            start,
            end,
            name: name.to_string(),
        };
        Symbols {
            el3: vec![f(0x100, 0x200, "el3_switch")],
            rmm: vec![
                f(0x4010_0000, 0x4010_0004, "rmm_ns_copy"),
                f(0x4010_0100, 0x4010_0200, "rmm_core::rtt::cmd_rtt_create"),
            ],
            host: vec![f(
                0x6000_0000,
                0x6000_0100,
                "host_core::bench::region_start",
            )],
        }
    }

    #[test]
    fn blocks_are_attributed_and_summed_per_operation() {
        let s = syms();
        assert_eq!(s.find('v', 0x180).0, Part::El3);
        assert_eq!(
            s.find('p', 0x180).0,
            Part::Other,
            "RAM address without a symbol"
        );
        // An assembly symbol without a size reaches the next symbol.
        assert_eq!(s.find('p', 0x4010_0080).1, "rmm_ns_copy");
        assert_eq!(s.find('p', 0x4010_0300).0, Part::Other);
        assert!(s.host_symbol("bench::region_start").is_ok());
        assert!(s.host_symbol("nothing").is_err());
        let counts = "0 p 40100100 10 3\n0 v 100 4 2\n1 p 40100100 10 1\n2 p 8000 5 2\nbad line\n";
        let lines: Vec<String> = [
            "[HOST] REGION 0 rtt_create_level3 2",
            "[HOST] REGION 1 rtt_create_level3 2",
            "[HOST] REGION 2 realm_create 1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let p = Profile::parse(counts, &lines, &s);
        assert_eq!(p.operations(), ["rtt_create_level3", "realm_create"]);
        let r = p.report("rtt_create_level3", 5).unwrap();
        // (30 + 8 + 10) instructions over 4 operations.
        assert!(
            r.starts_with("rtt_create_level3: 4 operations, 12 instructions"),
            "{r}"
        );
        assert!(r.contains("EL3") && r.contains("command"), "{r}");
        let r = p.report("realm_create", 5).unwrap();
        assert!(r.contains("realm/other"), "{r}");
        assert!(p.report("missing", 5).is_err());
    }
}
