//! Which opens the loaded rules could ever match, as the kernel's open
//! filter ([`sensor_common::OpenInterest`]): opens outside it are dropped
//! before their path is sent, so nobody pays for records no rule reads.
//!
//! Each condition is over-approximated by what the kernel can test cheaply:
//! whether the open failed, whether it writes, and for a successful read,
//! one path component's name or the file name's suffix. `open.path contains
//! /Maildir/` keeps reads with a component `Maildir`; `open.name endswith
//! .pst` keeps reads whose name ends in `.pst`; a glob, a regex or any test
//! the kernel cannot mirror keeps every read. Over-approximating is the
//! safe direction: an extra record costs a little, a missing one an alert.
//! The engine applies the same filter to the opens that still arrive
//! (`--capture-opens all`, io_uring, the polling collector), so they skip
//! evaluation.
use std::{collections::BTreeSet, fmt};

use sensor_common::{INTEREST_NAMES, OpenInterest, name_key, open_mode};

use super::{
    RuleSet,
    compile::{Matcher, Pred, kind_bit},
    fields::Field,
};
use crate::event::OpenData;

/// The opens a condition can match, by category.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenFilter {
    /// Failed opens are kept.
    pub failed: bool,
    /// Successful opens for writing are kept.
    pub writes: bool,
    /// Which successful read-only opens are kept.
    pub reads: Reads,
}

/// Successful read-only opens kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reads {
    /// Every one.
    All,
    /// Those with a component named one of `names` or a file name ending
    /// in one of `suffixes` (both empty: none).
    Matching {
        /// Path component names.
        names: BTreeSet<Vec<u8>>,
        /// File name suffixes.
        suffixes: BTreeSet<Vec<u8>>,
    },
}

impl Reads {
    fn none() -> Self {
        Self::Matching {
            names: BTreeSet::new(),
            suffixes: BTreeSet::new(),
        }
    }

    fn size(&self) -> usize {
        match self {
            Self::All => usize::MAX,
            Self::Matching { names, suffixes } => names.len() + suffixes.len(),
        }
    }

    fn join(self, other: Self) -> Self {
        match (self, other) {
            (Self::All, _) | (_, Self::All) => Self::All,
            (
                Self::Matching { names, suffixes },
                Self::Matching {
                    names: n2,
                    suffixes: s2,
                },
            ) => Self::Matching {
                names: names.union(&n2).cloned().collect(),
                suffixes: suffixes.union(&s2).cloned().collect(),
            },
        }
    }

    /// Both must hold: either one alone is a sound bound, the smaller the
    /// tighter.
    fn meet(self, other: Self) -> Self {
        if other.size() < self.size() {
            other
        } else {
            self
        }
    }
}

impl OpenFilter {
    /// Every open.
    pub fn all() -> Self {
        Self {
            failed: true,
            writes: true,
            reads: Reads::All,
        }
    }

    /// No open.
    pub fn none() -> Self {
        Self {
            failed: false,
            writes: false,
            reads: Reads::none(),
        }
    }

    fn join(self, other: Self) -> Self {
        Self {
            failed: self.failed || other.failed,
            writes: self.writes || other.writes,
            reads: self.reads.join(other.reads),
        }
    }

    fn meet(self, other: Self) -> Self {
        Self {
            failed: self.failed && other.failed,
            writes: self.writes && other.writes,
            reads: self.reads.meet(other.reads),
        }
    }

    /// The opens any rule or sequence step of `set` could match.
    pub fn of_rules(set: &RuleSet) -> Self {
        let open = kind_bit("open").expect("open is a kind");
        set.conditions()
            .filter(|p| p.kinds() & open != 0)
            .map(of_pred)
            .fold(Self::none(), Self::join)
    }

    /// Whether `open` falls inside: the kernel's tests, made exactly (a
    /// component equal to a name, not a fingerprint).
    pub fn keeps(&self, open: &OpenData) -> bool {
        if !open.succeeded() {
            return self.failed;
        }
        if open.writes() || open.creates() {
            return self.writes;
        }
        let Reads::Matching { names, suffixes } = &self.reads else {
            return true;
        };
        let mut parts = open
            .path
            .as_bytes()
            .split(|b| *b == b'/')
            .filter(|c| !c.is_empty());
        let leaf = parts.clone().next_back().unwrap_or_default();
        suffixes.iter().any(|s| leaf.ends_with(s)) || parts.any(|c| names.contains(c))
    }

    /// The kernel's form: the `OPEN_INTEREST` entry and the `OPEN_NAMES`
    /// keys. Reads fall back to all when the names or suffixes do not fit.
    pub fn to_kernel(&self) -> (OpenInterest, Vec<u64>) {
        let mut k = OpenInterest::default();
        if !self.failed {
            k.mode |= open_mode::DROP_FAILED;
        }
        if !self.writes {
            k.mode |= open_mode::DROP_WRITES;
        }
        let mut keys = Vec::new();
        if let Reads::Matching { names, suffixes } = &self.reads {
            keys = names.iter().map(|n| name_key(n)).collect();
            keys.sort_unstable();
            keys.dedup();
            let fits = keys.len() <= INTEREST_NAMES && suffixes.iter().all(|s| k.add_suffix(s));
            if fits {
                k.mode |= open_mode::MATCH_READS;
                keys.iter().for_each(|key| k.add_name(*key));
            } else {
                keys.clear();
                k.suffix_count = 0;
            }
        }
        (k, keys)
    }
}

impl fmt::Display for OpenFilter {
    /// One line for the startup log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes = |b| if b { "all" } else { "none" };
        write!(
            f,
            "failed={} writes={} reads=",
            yes(self.failed),
            yes(self.writes)
        )?;
        match &self.reads {
            Reads::All => write!(f, "all"),
            Reads::Matching { names, suffixes } if names.is_empty() && suffixes.is_empty() => {
                write!(f, "none")
            }
            Reads::Matching { names, suffixes } => {
                let show = |set: &BTreeSet<Vec<u8>>| {
                    set.iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect::<Vec<_>>()
                        .join(",")
                };
                write!(
                    f,
                    "matching(components=[{}] suffixes=[{}])",
                    show(names),
                    show(suffixes)
                )
            }
        }
    }
}

fn of_pred(p: &Pred) -> OpenFilter {
    match p {
        Pred::And(v) => v
            .iter()
            .map(of_pred)
            .fold(OpenFilter::all(), OpenFilter::meet),
        Pred::Or(v) => v
            .iter()
            .map(of_pred)
            .fold(OpenFilter::none(), OpenFilter::join),
        Pred::Not(inner) => match &**inner {
            Pred::Test(field @ (Field::OpenWrite | Field::OpenSuccess), Matcher::Bool(b)) => {
                of_test(*field, &Matcher::Bool(!b))
            }
            _ => OpenFilter::all(),
        },
        Pred::Test(field, m) => of_test(*field, m),
        // Rules that cannot match opens are left out before this.
        Pred::Kind(_) => OpenFilter::all(),
        Pred::Memo(_, inner) => of_pred(inner),
    }
}

fn of_test(field: Field, m: &Matcher) -> OpenFilter {
    let any = OpenFilter::all();
    match (field, m) {
        (Field::OpenWrite, Matcher::Bool(true)) | (Field::OpenCreate, Matcher::Bool(true)) => {
            OpenFilter {
                reads: Reads::none(),
                ..any
            }
        }
        (Field::OpenWrite, Matcher::Bool(false)) => OpenFilter {
            writes: false,
            ..any
        },
        (Field::OpenSuccess, Matcher::Bool(true)) => OpenFilter {
            failed: false,
            ..any
        },
        // Only a failed open has an errno.
        (Field::OpenSuccess, Matcher::Bool(false)) | (Field::OpenError, _) => OpenFilter {
            failed: true,
            ..OpenFilter::none()
        },
        (Field::OpenPath | Field::OpenDir | Field::OpenName, _) => OpenFilter {
            reads: path_reads(field, m).unwrap_or(Reads::All),
            ..any
        },
        _ => any,
    }
}

/// Reads a path test can match, when every pattern names something the
/// kernel can look for.
fn path_reads(field: Field, m: &Matcher) -> Option<Reads> {
    let mut names = BTreeSet::new();
    let mut suffixes = BTreeSet::new();
    let patterns: Vec<&[u8]> = match m {
        Matcher::StrIn(v) => v.iter().map(|p| &**p).collect(),
        Matcher::Prefix(v) | Matcher::Suffix(v) => v.iter().map(|p| &**p).collect(),
        Matcher::Contains(v) => v.iter().map(|p| &**p).collect(),
        _ => return None,
    };
    for p in patterns {
        match (field, m) {
            (Field::OpenName, Matcher::StrIn(_)) if !p.is_empty() => {
                names.insert(p.to_vec());
            }
            (Field::OpenName, Matcher::Suffix(_)) if !p.is_empty() => {
                suffixes.insert(p.to_vec());
            }
            (Field::OpenName, _) => return None,
            // A path or directory: a component the pattern spells whole.
            (_, Matcher::Suffix(_)) if !p.contains(&b'/') && field == Field::OpenPath => {
                if p.is_empty() {
                    return None;
                }
                suffixes.insert(p.to_vec());
            }
            (_, matcher) => {
                let (start, end) = match matcher {
                    Matcher::StrIn(_) => (true, true),
                    Matcher::Prefix(_) => (true, false),
                    Matcher::Suffix(_) => (false, true),
                    _ => (false, false),
                };
                names.insert(whole_component(p, start, end)?.to_vec());
            }
        }
    }
    Some(Reads::Matching { names, suffixes })
}

/// The longest component `pattern` spells whole: '/' on both sides, or the
/// pattern's end where it is anchored there (a path starts with '/').
fn whole_component(pattern: &[u8], anchored_start: bool, anchored_end: bool) -> Option<&[u8]> {
    let pieces: Vec<&[u8]> = pattern.split(|b| *b == b'/').collect();
    let last = pieces.len() - 1;
    pieces
        .iter()
        .enumerate()
        .filter(|(i, piece)| {
            let open_left = *i > 0 || (anchored_start && piece.is_empty());
            let closed_right = *i < last || anchored_end;
            !piece.is_empty() && open_left && closed_right
        })
        .map(|(_, piece)| *piece)
        .max_by_key(|piece| piece.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{RuleSource, compile_files};

    fn filter_of(condition: &str) -> OpenFilter {
        let yaml = format!(
            "pack: p\ntechnique: {{id: T1, name: n, tactic: t}}\nrules:\n  - id: r\n    title: t\n    severity: low\n    description: d\n    condition: {condition}\n"
        );
        let set = compile_files(vec![("t.yaml".into(), yaml)], "test").unwrap();
        OpenFilter::of_rules(&set)
    }

    fn matching(names: &[&str], suffixes: &[&str]) -> Reads {
        Reads::Matching {
            names: names.iter().map(|s| s.as_bytes().to_vec()).collect(),
            suffixes: suffixes.iter().map(|s| s.as_bytes().to_vec()).collect(),
        }
    }

    #[test]
    fn components_are_taken_only_when_spelled_whole() {
        assert_eq!(
            whole_component(b"/var/mail/", true, false),
            Some(&b"mail"[..])
        );
        assert_eq!(whole_component(b"/var/ma", true, false), Some(&b"var"[..]));
        assert_eq!(
            whole_component(b"/mail/inbox", false, false),
            Some(&b"mail"[..])
        );
        assert_eq!(whole_component(b"Maildir/", false, false), None);
        assert_eq!(whole_component(b"/tmp", true, true), Some(&b"tmp"[..]));
        assert_eq!(whole_component(b"/", true, false), None);
        assert_eq!(
            whole_component(b"/.local/share/evolution/mail/", false, false),
            Some(&b"evolution"[..])
        );
    }

    #[test]
    fn writes_reads_and_failures_follow_the_condition() {
        let f = filter_of("evt.type = open and open.write = true and open.success = true");
        assert_eq!(
            f,
            OpenFilter {
                failed: false,
                writes: true,
                reads: Reads::none()
            }
        );
        let f = filter_of(
            "evt.type = open and open.success = true and (open.path startswith (/var/mail/) or open.name endswith (.pst))",
        );
        assert_eq!(f.reads, matching(&["mail"], &[".pst"]));
        assert!(f.writes && !f.failed);
        // A glob keeps every read; so does a test on another field alone.
        assert_eq!(
            filter_of("evt.type = open and open.path glob '/x/*'").reads,
            Reads::All
        );
        assert_eq!(filter_of("proc.name = cat").reads, Reads::All);
        // Only failures carry an errno.
        let f = filter_of("evt.type = open and open.error = EACCES");
        assert!(f.failed && !f.writes && f.reads == Reads::none());
        // Negated booleans flip; other negations keep everything.
        assert!(!filter_of("evt.type = open and not open.write = true").writes);
        assert_eq!(
            filter_of("evt.type = open and not open.path startswith /usr").reads,
            Reads::All
        );
        // Rules that cannot match an open ask for none.
        assert_eq!(filter_of("evt.type = exec"), OpenFilter::none());
    }

    #[test]
    fn shipped_rules_keep_writes_and_mail_reads_only() {
        let set = RuleSource::Builtin.load().unwrap();
        let f = OpenFilter::of_rules(&set);
        assert!(!f.failed, "{f}");
        assert!(f.writes, "{f}");
        let Reads::Matching { names, suffixes } = &f.reads else {
            panic!("every read kept: {f}");
        };
        for n in ["mail", "Maildir", ".thunderbird"] {
            assert!(names.contains(n.as_bytes()), "{f}");
        }
        assert!(suffixes.contains(&b".pst"[..]), "{f}");
        let (k, names) = f.to_kernel();
        assert_ne!(k.mode & open_mode::MATCH_READS, 0, "does not fit: {f}");
        // Every validation path the T1114 pack alerts on is kept; system
        // reads are not.
        for path in [
            "/var/mail/root",
            "/var/spool/mail/alice",
            "/home/a/Maildir/cur/1",
            "/home/a/.thunderbird/x/Mail/Local Folders/Inbox",
            "/home/a/.local/share/evolution/mail/local/x",
            "/srv/export/Outlook.PST",
        ] {
            assert!(k.captures(&names, path.as_bytes(), 0, true), "{path}: {f}");
        }
        for path in [
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            "/etc/passwd",
            "/proc/1/stat",
        ] {
            assert!(!k.captures(&names, path.as_bytes(), 0, true), "{path}: {f}");
        }
        assert!(k.captures(&names, b"/usr/lib/x", 0o1, true));
        assert!(!k.captures(&names, b"/nope", 0, false));
        // The kernel's screen passes every wanted name, and spares the hash
        // lookup for the components of everyday paths.
        assert!(names.iter().all(|n| k.may_name(*n)));
        let common = [
            "usr",
            "lib",
            "lib64",
            "bin",
            "sbin",
            "etc",
            "passwd",
            "tmp",
            "var",
            "proc",
            "sys",
            "dev",
            "run",
            "home",
            "root",
            "x86_64-linux-gnu",
            "libc.so.6",
            "share",
            "local",
            "python3",
            "site-packages",
            "node_modules",
            "src",
            "build",
            "target",
        ];
        let screened = common
            .iter()
            .filter(|c| !k.may_name(sensor_common::name_key(c.as_bytes())))
            .count();
        assert!(
            screened >= common.len() - 2,
            "{screened} of {}",
            common.len()
        );
    }
}
