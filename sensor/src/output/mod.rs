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
}

impl<W: Write> JsonLines<W> {
    /// Wraps a writer.
    pub fn new(out: W) -> Self {
        Self {
            out: BufWriter::with_capacity(256 << 10, out),
        }
    }
}

impl<W: Write> Sink for JsonLines<W> {
    fn write(&mut self, record: &Record) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Opens `-` (stdout) or a file (appended to, created 0600: events are sensitive).
pub fn open(target: &Path) -> io::Result<Box<dyn Sink + Send>> {
    if target == Path::new("-") {
        return Ok(Box::new(JsonLines::new(io::stdout())));
    }
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    // Elsewhere the file inherits its directory's ACL.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    Ok(Box::new(JsonLines::new(options.open(target)?)))
}
