//! Errors in the files an operator writes (rule packs, the configuration
//! file), each at its place: both print as `file:line:col: message`, and
//! both read YAML with positions (marked-yaml).
use std::fmt;

use marked_yaml::Marker;

/// One problem in a file, where it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocatedError {
    /// File name as given.
    pub file: String,
    /// 1-based line; 0 when the file as a whole is at fault.
    pub line: usize,
    /// 1-based column; 0 when the file as a whole is at fault.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

impl LocatedError {
    /// An error at a YAML position of `file`.
    pub fn at(file: &str, at: Marker, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line: at.line(),
            col: at.column(),
            message: message.into(),
        }
    }

    /// An error about `file` as a whole (it cannot be read, say).
    pub fn file(file: &str, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line: 0,
            col: 0,
            message: message.into(),
        }
    }

    /// Where a YAML document of `file` failed to load, and why.
    pub fn yaml(file: &str, e: &marked_yaml::LoadError) -> Self {
        use marked_yaml::LoadError as L;
        let (at, message) = match e {
            L::TopLevelMustBeMapping(m) => (*m, "the file must be a mapping".to_owned()),
            L::TopLevelMustBeSequence(m) => (*m, "expected a list".to_owned()),
            L::UnexpectedAnchor(m) => (*m, "YAML anchors are not supported".to_owned()),
            L::MappingKeyMustBeScalar(m) => (*m, "mapping keys must be strings".to_owned()),
            L::UnexpectedTag(m) => (*m, "YAML tags are not supported".to_owned()),
            L::ScanError(m, s) => (*m, format!("YAML syntax: {}", s.info())),
            L::DuplicateKey(d) => (
                d.key.span().start().copied().unwrap_or_else(first_char),
                format!(
                    "duplicate key '{}' (first at line {})",
                    d.key.as_str(),
                    d.prev_key.span().start().map_or(0, |m| m.line())
                ),
            ),
        };
        Self::at(file, at, message)
    }
}

/// Where a YAML node's span starts (its file's first character if the
/// span has no start).
pub fn start(span: &marked_yaml::Span) -> Marker {
    span.start().copied().unwrap_or_else(first_char)
}

fn first_char() -> Marker {
    Marker::new(0, 0, 1, 1)
}

impl fmt::Display for LocatedError {
    /// `file:line:col: message`, or `file: message` for the file as a
    /// whole: the forms editors and CI annotators jump to.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            return write!(f, "{}: {}", self.file, self.message);
        }
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_file_errors_have_no_position() {
        assert_eq!(
            LocatedError::file("r.yaml", "cannot read: denied").to_string(),
            "r.yaml: cannot read: denied"
        );
        assert_eq!(
            LocatedError::at("r.yaml", Marker::new(0, 0, 2, 3), "bad").to_string(),
            "r.yaml:2:3: bad"
        );
    }
}
