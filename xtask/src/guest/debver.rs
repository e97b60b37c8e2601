//! Debian package versions (`[epoch:]upstream[-revision]`) and their ordering, as Debian
//! Policy §5.6.12 defines it: epochs compare numerically, then the upstream part and the
//! revision compare by alternating non-digit runs (where `~` sorts before everything, even
//! the end of the string, and letters sort before other characters) and digit runs (compared
//! as numbers).

use std::cmp::Ordering;
use std::fmt;

/// A parsed Debian version.
#[derive(Clone, Debug)]
pub struct DebVersion {
    text: String,
    epoch: u64,
    /// Byte range of the upstream part in `text`.
    upstream: (usize, usize),
    /// Byte range of the revision in `text` (empty when there is none).
    revision: (usize, usize),
}

/// Why a version string is not a valid Debian version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionError(String);

impl fmt::Display for VersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for VersionError {}

impl DebVersion {
    /// Parses `s`. It must be `[epoch:]upstream[-revision]` with a numeric epoch, an upstream
    /// part that starts with a digit and holds only letters, digits and `.+~-`, and a non-empty
    /// revision of letters, digits and `.+~`.
    pub fn parse(s: &str) -> Result<Self, VersionError> {
        let err = |why: &str| VersionError(format!("invalid Debian version {s:?}: {why}"));
        if s.is_empty() {
            return Err(err("empty"));
        }
        let (epoch, rest_start) = match s.find(':') {
            Some(i) => {
                let e = &s[..i];
                if e.is_empty() || !e.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(err("the epoch is not a number"));
                }
                let epoch = e
                    .parse::<u64>()
                    .map_err(|_| err("the epoch is too large"))?;
                (epoch, i + 1)
            }
            None => (0, 0),
        };
        let rest = &s[rest_start..];
        let (up_end, revision) = match rest.rfind('-') {
            Some(i) => {
                let rev = (rest_start + i + 1, s.len());
                if rev.0 == rev.1 {
                    return Err(err("the revision after '-' is empty"));
                }
                (rest_start + i, rev)
            }
            None => (s.len(), (s.len(), s.len())),
        };
        let upstream = (rest_start, up_end);
        let up = &s[upstream.0..upstream.1];
        if !up.bytes().next().is_some_and(|c| c.is_ascii_digit()) {
            return Err(err("the upstream version does not start with a digit"));
        }
        if !up
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b".+~-".contains(&c))
        {
            return Err(err(
                "the upstream version holds a character other than A-Za-z0-9.+~-",
            ));
        }
        if !s[revision.0..revision.1]
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b".+~".contains(&c))
        {
            return Err(err(
                "the revision holds a character other than A-Za-z0-9.+~",
            ));
        }
        Ok(Self {
            text: s.to_string(),
            epoch,
            upstream,
            revision,
        })
    }

    /// The version as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The epoch (0 when none is written).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The upstream part (between the epoch and the last `-`).
    pub fn upstream(&self) -> &str {
        &self.text[self.upstream.0..self.upstream.1]
    }

    /// The Debian revision (after the last `-`; empty when there is none).
    pub fn revision(&self) -> &str {
        &self.text[self.revision.0..self.revision.1]
    }
}

impl fmt::Display for DebVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for DebVersion {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, VersionError> {
        Self::parse(s)
    }
}

impl Ord for DebVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| compare_part(self.upstream(), other.upstream()))
            .then_with(|| compare_part(self.revision(), other.revision()))
    }
}

impl PartialOrd for DebVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Equality is the ordering's: `1.0-1` equals `1.0-01`.
impl PartialEq for DebVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for DebVersion {}

/// The weight of one character of a non-digit run; `None` is the end of the run.
fn weight(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

/// Compares an upstream part or a revision.
fn compare_part(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // A non-digit run: character by character until both reach a digit (or the end).
        while a.get(i).is_some_and(|c| !c.is_ascii_digit())
            || b.get(j).is_some_and(|c| !c.is_ascii_digit())
        {
            let (wa, wb) = (weight(a.get(i).copied()), weight(b.get(j).copied()));
            if wa != wb {
                return wa.cmp(&wb);
            }
            i += 1;
            j += 1;
        }
        // A digit run: as numbers, of any length (leading zeros do not count).
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let da = a[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        let db = b[j..].iter().take_while(|c| c.is_ascii_digit()).count();
        let by_value = da.cmp(&db).then_with(|| a[i..i + da].cmp(&b[j..j + db]));
        if by_value != Ordering::Equal {
            return by_value;
        }
        i += da;
        j += db;
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> DebVersion {
        DebVersion::parse(s).unwrap()
    }

    fn assert_lt(a: &str, b: &str) {
        assert_eq!(v(a).cmp(&v(b)), Ordering::Less, "{a} < {b}");
        assert_eq!(v(b).cmp(&v(a)), Ordering::Greater, "{b} > {a}");
    }

    #[test]
    fn parts() {
        let x = v("1:7.3.4-1~bpo13+1");
        assert_eq!(
            (x.epoch(), x.upstream(), x.revision()),
            (1, "7.3.4", "1~bpo13+1")
        );
        let y = v("2.0-rc1-3");
        assert_eq!((y.epoch(), y.upstream(), y.revision()), (0, "2.0-rc1", "3"));
        let z = v("6.13");
        assert_eq!((z.upstream(), z.revision()), ("6.13", ""));
        assert_eq!(z.as_str(), "6.13");
        assert_eq!(z.to_string(), "6.13");
        assert_eq!("1.0".parse::<DebVersion>().unwrap(), v("1.0"));
    }

    #[test]
    fn numeric_runs() {
        assert_lt("1.0", "1.1");
        assert_lt("1.9", "1.10");
        assert_lt("6.12.117-1", "6.13");
        assert_lt("7.2.13-1", "7.3.4-1~bpo13+1");
        assert_lt("7.2.12-1", "7.2.13-1");
        // Longer than any integer type: still compared as numbers.
        assert_lt("99999999999999999999999", "100000000000000000000000");
        assert_eq!(v("1.01"), v("1.1"));
        assert_eq!(v("1.0-1"), v("1.0-01"));
        assert_eq!(v("1.0"), v("1.0-0"));
    }

    #[test]
    fn epochs() {
        assert_lt("9.9", "1:0.1");
        assert_lt("1:1.37.0-6+b9", "1:1.38.0-3+b1");
        assert_lt("1:2.0", "2:1.0");
        assert_eq!(v("0:1.0"), v("1.0"));
    }

    #[test]
    fn tilde_sorts_before_everything() {
        assert_lt("1.0~rc1", "1.0");
        assert_lt("1.0~~", "1.0~");
        assert_lt("1.0~", "1.0");
        assert_lt("1.0~rc1", "1.0~rc2");
        assert_lt("7.3.4-1~bpo13+1", "7.3.4-1");
        assert_lt("7.3~rc7-1~exp1", "7.3.4-1~bpo13+1");
        assert_lt("6.13~rc1", "6.13");
    }

    #[test]
    fn letters_before_other_characters() {
        assert_lt("1.0", "1.0a");
        assert_lt("1.0a", "1.0b");
        assert_lt("1.0a", "1.0+");
        assert_lt("1.0+", "1.0.");
        assert_lt("1.0", "1.0+b1");
        assert_lt("1.0-1", "1.0-1+b1");
        assert_lt("1.0Z", "1.0a");
    }

    #[test]
    fn max_picks_the_newest() {
        let all = ["6.12.117-1", "7.2.12-1", "7.3.4-1~bpo13+1", "7.2.13-1"];
        let newest = all.iter().map(|s| v(s)).max().unwrap();
        assert_eq!(newest.as_str(), "7.3.4-1~bpo13+1");
    }

    #[test]
    fn invalid_versions_are_errors() {
        for bad in [
            "",
            ":1.0",
            "a:1.0",
            "1:",
            "1.0-",
            "-1",
            "a1.0",
            "1.0 beta",
            "1.0\n",
            "1:1:1.0",
            "1.0-1:2",
            "1.0-a_b",
            "99999999999999999999999:1.0",
            "1.0/2",
        ] {
            assert!(DebVersion::parse(bad).is_err(), "{bad:?} must be rejected");
        }
        let e = DebVersion::parse("1.0-").unwrap_err();
        assert!(e.to_string().contains("revision"), "{e}");
    }
}
