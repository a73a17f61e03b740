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
//!
//! Connects are filtered the same way, more coarsely: by the destination's
//! family (unix, inet/inet6, other) and by whether the connect failed,
//! which is what separates the records the shipped rules read (successful
//! inet connects) from the most frequent others (local unix sockets).
//! Ports and addresses are not screened: the shipped rules' `unusual_egress`
//! wants any port to an outside address.
use std::{collections::BTreeSet, fmt};

use sensor_common::{INTEREST_NAMES, OpenInterest, connect_mode, name_key, open_mode};

use super::{
    RuleSet,
    compile::{Matcher, Pred},
    fields::Field,
};
use crate::event::{Kind, OpenData};

/// What the kernel can be told to keep of one record kind: an
/// over-approximation of the records a condition can match, built from the
/// tests the kernel can mirror. `and` keeps what every part keeps (or more),
/// `or` what any part keeps, and anything the kernel cannot mirror keeps
/// everything: an extra record costs a little, a missing one an alert.
pub trait KernelFilter: Sized {
    /// The record kind it filters.
    const KIND: Kind;
    /// Every record.
    fn all() -> Self;
    /// No record.
    fn none() -> Self;
    /// What either keeps.
    fn join(self, other: Self) -> Self;
    /// What both keep, or a sound bound of it.
    fn meet(self, other: Self) -> Self;
    /// One test of one field.
    fn of_test(field: Field, m: &Matcher) -> Self;
    /// A negated condition: flipped where the kernel mirrors it exactly.
    fn of_negated(inner: &Pred) -> Self;

    /// What any rule or sequence step of `set` could match.
    fn of_rules(set: &RuleSet) -> Self {
        let bit = Self::KIND.bit();
        set.conditions()
            .filter(|p| p.kinds() & bit != 0)
            .map(|p| of_pred(p, bit))
            .fold(Self::none(), Self::join)
    }

    /// What the kernel keeps: the rules' records when it follows them
    /// (none without rules), else every record.
    fn wanted(rules: Option<&RuleSet>, follow_rules: bool) -> Self {
        match rules {
            Some(set) if follow_rules => Self::of_rules(set),
            None if follow_rules => Self::none(),
            _ => Self::all(),
        }
    }
}

fn of_pred<F: KernelFilter>(p: &Pred, kind: u32) -> F {
    match p {
        Pred::And(v) => v.iter().map(|p| of_pred(p, kind)).fold(F::all(), F::meet),
        Pred::Or(v) => v.iter().map(|p| of_pred(p, kind)).fold(F::none(), F::join),
        Pred::Not(inner) => F::of_negated(inner),
        Pred::Test(field, m) => F::of_test(*field, m),
        Pred::Kind(kinds) if kinds & kind == 0 => F::none(),
        Pred::Kind(_) => F::all(),
        Pred::Memo(_, inner) => of_pred(inner, kind),
    }
}

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

impl KernelFilter for OpenFilter {
    const KIND: Kind = Kind::Open;

    fn all() -> Self {
        Self {
            failed: true,
            writes: true,
            reads: Reads::All,
        }
    }

    fn none() -> Self {
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

    fn of_test(field: Field, m: &Matcher) -> Self {
        open_of_test(field, m)
    }

    fn of_negated(inner: &Pred) -> Self {
        match inner {
            Pred::Test(field @ (Field::OpenWrite | Field::OpenSuccess), Matcher::Bool(b)) => {
                open_of_test(*field, &Matcher::Bool(!b))
            }
            _ => Self::all(),
        }
    }
}

impl OpenFilter {
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

/// The connects a condition can match: a result and a family category
/// each, as the kernel tells them apart ([`sensor_common::connect_drop_bits`]).
/// Successful connects are always kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectFilter {
    /// Failed connects are kept.
    pub failed: bool,
    /// Connects to AF_UNIX addresses are kept.
    pub unix: bool,
    /// Connects to AF_INET/AF_INET6 addresses are kept.
    pub inet: bool,
    /// Connects to any other family are kept.
    pub other: bool,
}

impl KernelFilter for ConnectFilter {
    const KIND: Kind = Kind::Connect;

    fn all() -> Self {
        Self {
            failed: true,
            unix: true,
            inet: true,
            other: true,
        }
    }

    fn none() -> Self {
        Self {
            failed: false,
            unix: false,
            inet: false,
            other: false,
        }
    }

    fn join(self, o: Self) -> Self {
        Self {
            failed: self.failed || o.failed,
            unix: self.unix || o.unix,
            inet: self.inet || o.inet,
            other: self.other || o.other,
        }
    }

    fn meet(self, o: Self) -> Self {
        Self {
            failed: self.failed && o.failed,
            unix: self.unix && o.unix,
            inet: self.inet && o.inet,
            other: self.other && o.other,
        }
    }

    fn of_test(field: Field, m: &Matcher) -> Self {
        connect_of_test(field, m)
    }

    fn of_negated(inner: &Pred) -> Self {
        match inner {
            Pred::Test(Field::ConnectSuccess, Matcher::Bool(b)) => {
                connect_of_test(Field::ConnectSuccess, &Matcher::Bool(!b))
            }
            _ => Self::all(),
        }
    }
}

impl ConnectFilter {
    fn families(unix: bool, inet: bool, other: bool) -> Self {
        Self {
            unix,
            inet,
            other,
            ..Self::all()
        }
    }

    /// The kernel's form: `CONNECT_INTEREST`'s [`connect_mode`] bits.
    pub fn to_kernel(&self) -> u32 {
        [
            (self.failed, connect_mode::DROP_FAILED),
            (self.unix, connect_mode::DROP_UNIX),
            (self.inet, connect_mode::DROP_INET),
            (self.other, connect_mode::DROP_OTHER),
        ]
        .iter()
        .filter(|(kept, _)| !kept)
        .fold(0, |bits, (_, bit)| bits | bit)
    }
}

impl fmt::Display for ConnectFilter {
    /// One line for the startup log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes = |b| if b { "all" } else { "none" };
        write!(
            f,
            "failed={} unix={} inet={} other={}",
            yes(self.failed),
            yes(self.unix),
            yes(self.inet),
            yes(self.other)
        )
    }
}

fn connect_of_test(field: Field, m: &Matcher) -> ConnectFilter {
    match (field, m) {
        (Field::ConnectSuccess, Matcher::Bool(true)) => ConnectFilter {
            failed: false,
            ..ConnectFilter::all()
        },
        (Field::ConnectFamily, Matcher::StrIn(names)) => {
            let (mut unix, mut inet, mut other) = (false, false, false);
            for n in names.iter() {
                match &**n {
                    b"unix" => unix = true,
                    b"inet" | b"inet6" => inet = true,
                    _ => other = true,
                }
            }
            ConnectFilter::families(unix, inet, other)
        }
        // Only a unix destination has a path; only inet ones an address
        // and a port.
        (Field::ConnectUnixPath, _) => ConnectFilter::families(true, false, false),
        (Field::ConnectAddress | Field::ConnectPort, _) => {
            ConnectFilter::families(false, true, false)
        }
        _ => ConnectFilter::all(),
    }
}

fn open_of_test(field: Field, m: &Matcher) -> OpenFilter {
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

    fn rules_of(condition: &str) -> RuleSet {
        let yaml = format!(
            "pack: p\ntechnique: {{id: T1, name: n, tactic: t}}\nrules:\n  - id: r\n    title: t\n    severity: low\n    description: d\n    condition: {condition}\n"
        );
        compile_files(vec![("t.yaml".into(), yaml)], "test").unwrap()
    }

    fn filter_of(condition: &str) -> OpenFilter {
        OpenFilter::of_rules(&rules_of(condition))
    }

    fn connects_of(condition: &str) -> ConnectFilter {
        ConnectFilter::of_rules(&rules_of(condition))
    }

    fn connects(failed: bool, unix: bool, inet: bool, other: bool) -> ConnectFilter {
        ConnectFilter {
            failed,
            unix,
            inet,
            other,
        }
    }

    #[test]
    fn connects_are_kept_by_family_and_result() {
        assert_eq!(
            connects_of(
                "evt.type = connect and connect.success = true and connect.family in (inet, inet6)"
            ),
            connects(false, false, true, false)
        );
        assert_eq!(
            connects_of("evt.type = connect and connect.unix_path startswith /run/"),
            connects(true, true, false, false)
        );
        assert_eq!(
            connects_of("evt.type = connect and connect.port >= 1024"),
            connects(true, false, true, false)
        );
        assert_eq!(
            connects_of("evt.type = connect and connect.family = netlink"),
            connects(true, false, false, true)
        );
        // Or joins, and negated results flip.
        assert_eq!(
            connects_of(
                "evt.type = connect and not connect.success = false and (connect.unix_path exists or connect.port = 25)"
            ),
            connects(false, true, true, false)
        );
        // Other negations, and tests of other fields alone, keep everything.
        assert_eq!(
            connects_of("evt.type = connect and not connect.family = unix"),
            ConnectFilter::all()
        );
        assert_eq!(connects_of("proc.name = nc"), ConnectFilter::all());
        // Rules that cannot match a connect ask for none.
        assert_eq!(connects_of("evt.type = exec"), ConnectFilter::none());
        assert_eq!(
            connects_of("evt.type = exec or (evt.type = connect and connect.family = unix)"),
            connects(true, true, false, false)
        );
    }

    #[test]
    fn shipped_rules_keep_successful_inet_connects_only() {
        let f = ConnectFilter::of_rules(&RuleSource::Builtin.load().unwrap());
        assert_eq!(f, connects(false, false, true, false), "{f}");
        assert_eq!(
            f.to_kernel(),
            connect_mode::DROP_FAILED | connect_mode::DROP_UNIX | connect_mode::DROP_OTHER
        );
        assert_eq!(ConnectFilter::all().to_kernel(), 0);
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
