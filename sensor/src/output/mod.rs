//! Where records go. Sinks know nothing of collectors.
use std::{
    fs::OpenOptions,
    io::{self, BufWriter, Write},
    path::Path,
};

use crate::event::Record;

/// A destination for records.
pub trait Sink {
    /// Writes one record.
    fn write(&mut self, record: &Record) -> io::Result<()>;
    /// Pushes buffered records out.
    fn flush(&mut self) -> io::Result<()>;
}

/// JSON Lines: one record per line, UTF-8, `\n` terminated.
pub struct JsonLines<W: Write> {
    out: BufWriter<W>,
    /// `{"node":"<name>",`, opening every line when a node is named.
    node: Option<Vec<u8>>,
    scratch: Vec<u8>,
}

impl<W: Write> JsonLines<W> {
    /// Wraps a writer.
    pub fn new(out: W) -> Self {
        Self {
            out: BufWriter::with_capacity(256 << 10, out),
            node: None,
            scratch: Vec::new(),
        }
    }

    /// Names the node (machine) on every line, as `node`: where the
    /// records of a fleet meet, each says where it came from. Written by
    /// the output rather than kept in every record in memory.
    pub fn with_node(mut self, node: &str) -> Self {
        let name = serde_json::to_string(node).expect("a string serializes");
        self.node = Some(format!("{{\"node\":{name},").into_bytes());
        self
    }
}

impl<W: Write> Sink for JsonLines<W> {
    fn write(&mut self, record: &Record) -> io::Result<()> {
        match &self.node {
            None => serde_json::to_writer(&mut self.out, record)?,
            Some(prefix) => {
                self.scratch.clear();
                serde_json::to_writer(&mut self.scratch, record)?;
                // A record is an object: `{` followed by at least `"schema"`.
                self.out.write_all(prefix)?;
                self.out.write_all(&self.scratch[1..])?;
            }
        }
        self.out.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Opens `-` (stdout) or a file (appended to, created 0600: events are
/// sensitive), naming `node` on every line if given.
pub fn open(target: &Path, node: Option<&str>) -> io::Result<Box<dyn Sink + Send>> {
    fn lines<W: Write + Send + 'static>(out: W, node: Option<&str>) -> Box<dyn Sink + Send> {
        let sink = JsonLines::new(out);
        Box::new(match node {
            Some(n) => sink.with_node(n),
            None => sink,
        })
    }
    if target == Path::new("-") {
        return Ok(lines(io::stdout(), node));
    }
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    // Elsewhere the file inherits its directory's ACL.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    Ok(lines(options.open(target)?, node))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_opens_every_line_and_is_escaped() {
        let record: Record = serde_json::from_str(
            r#"{"schema": 1, "time": "2026-12-03T00:00:00Z", "boot_ns": 1, "kind": "loss",
                "loss": {"ring_full": {}, "kernel_error": {}, "ring_full_by_cpu": {},
                         "malformed": 0, "total_since_start": 0}}"#,
        )
        .unwrap();
        let mut sink = JsonLines::new(Vec::new()).with_node("node \"7\"\n");
        sink.write(&record).unwrap();
        sink.write(&record).unwrap();
        let text = String::from_utf8(sink.out.into_inner().unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        for line in lines {
            assert!(
                line.starts_with(r#"{"node":"node \"7\"\n","schema":1,"#),
                "{line}"
            );
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["kind"], "loss");
        }
    }
}
