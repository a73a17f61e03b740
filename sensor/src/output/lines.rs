//! Whole records or none: the buffered line writer under the file and
//! stdout outputs. A write that fails part-way (a full disk, a closed pipe)
//! is cut back to the last record boundary where the destination allows it
//! (files), or the torn record is ended with a newline before anything else
//! is written (streams), so every line a reader sees parses. While writing
//! fails, the output pauses: records are dropped and counted by reason, a
//! write is retried every [`RETRY`], and output resumes when one succeeds.
use std::{
    collections::BTreeMap,
    fs::File,
    io::{self, Write},
    time::{Duration, Instant},
};

use tracing::{info, warn};

/// How often a paused output tries again.
pub const RETRY: Duration = Duration::from_secs(1);

/// Bytes gathered before a write: the collector flushes once per loop.
const BUFFER: usize = 256 << 10;

/// Why an output dropped records (`sensor_output_dropped_total{reason}`,
/// and `output_dropped` in loss records).
pub mod reason {
    /// No space or quota left on the file's filesystem.
    pub const DISK_FULL: &str = "disk_full";
    /// The reader went away (EPIPE).
    pub const OUTPUT_CLOSED: &str = "output_closed";
    /// Any other write error.
    pub const WRITE_ERROR: &str = "write_error";
    /// An earlier run left a record cut short at the end of the file.
    pub const TORN_TAIL: &str = "torn_tail";
    /// Every reason, for labels.
    pub const ALL: [&str; 4] = [DISK_FULL, OUTPUT_CLOSED, WRITE_ERROR, TORN_TAIL];
}

fn reason_of(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(ENOSPC | EDQUOT) => reason::DISK_FULL,
        _ if e.kind() == io::ErrorKind::BrokenPipe => reason::OUTPUT_CLOSED,
        _ => reason::WRITE_ERROR,
    }
}

// Linux's numbers; elsewhere `kind()` would say StorageFull, but it is not
// stable on every platform the fallback builds for.
const ENOSPC: i32 = 28;
const EDQUOT: i32 = 122;

/// Where lines go: a destination that may or may not be cut back.
pub trait Destination: Write {
    /// Shortens the destination to `len` bytes, if it can.
    fn cut(&mut self, len: u64) -> io::Result<()>;
}

impl Destination for File {
    fn cut(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }
}

/// A stream cannot take bytes back.
pub struct Stream(pub Box<dyn Write + Send>);

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Destination for Stream {
    fn cut(&mut self, _: u64) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

/// Buffered whole lines to `D`, pausing while writes fail.
pub struct Lines<D: Destination> {
    out: D,
    /// Names the destination in logs.
    name: String,
    buf: Vec<u8>,
    /// Where each buffered line ends in `buf`.
    ends: Vec<usize>,
    /// Bytes of whole lines in the destination.
    written: u64,
    /// A line was cut short and could not be taken back: end it first.
    torn: bool,
    /// Writing failed: when to try again.
    retry_at: Option<Instant>,
    /// Why the last write failed: what drops count as while paused.
    last_reason: &'static str,
    dropped: BTreeMap<&'static str, u64>,
}

impl<D: Destination> Lines<D> {
    /// Lines to `out`, which already holds `written` bytes.
    pub fn new(out: D, name: String, written: u64) -> Self {
        Self {
            out,
            name,
            buf: Vec::with_capacity(BUFFER),
            ends: Vec::new(),
            written,
            torn: false,
            retry_at: None,
            last_reason: reason::WRITE_ERROR,
            dropped: BTreeMap::new(),
        }
    }

    /// The destination, for logs and metrics.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes in the destination plus those buffered.
    pub fn size(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    /// Whether writes are paused (a failed write, not yet retried).
    pub fn paused(&self) -> bool {
        self.retry_at.is_some_and(|at| Instant::now() < at)
    }

    /// Buffers `line` (ending in a newline), or counts it as dropped while
    /// paused.
    pub fn push(&mut self, line: &[u8]) {
        if self.paused() {
            *self.dropped.entry(self.last_reason).or_default() += 1;
            return;
        }
        self.buf.extend_from_slice(line);
        self.ends.push(self.buf.len());
        // A paused output tries again with its first line.
        if self.buf.len() >= BUFFER || self.retry_at.is_some() {
            self.flush();
        }
    }

    /// Counts `n` records dropped for `reason` (ones never pushed).
    pub fn count_dropped(&mut self, reason: &'static str, n: u64) {
        *self.dropped.entry(reason).or_default() += n;
    }

    /// Records dropped since the last call, by reason.
    pub fn take_dropped(&mut self) -> BTreeMap<&'static str, u64> {
        std::mem::take(&mut self.dropped)
    }

    /// Flushes, then writes to `out` (holding `written` bytes) instead.
    pub fn replace(&mut self, out: D, written: u64) -> D {
        self.flush();
        self.written = written;
        self.torn = false;
        std::mem::replace(&mut self.out, out)
    }

    /// Writes out what is buffered; on failure keeps only whole lines in
    /// the destination, drops the rest (counted) and pauses.
    pub fn flush(&mut self) {
        if self.torn {
            self.mend();
        }
        if self.torn {
            self.retry_at = Some(Instant::now() + RETRY);
            let n = self.ends.len() as u64;
            self.clear_buffer(n);
            return;
        }
        let mut done = 0;
        while done < self.buf.len() {
            match self.out.write(&self.buf[done..]) {
                Ok(0) => return self.failed(done, io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.failed(done, e),
            }
        }
        if let Err(e) = self.out.flush() {
            return self.failed(done, e);
        }
        self.written += done as u64;
        self.buf.clear();
        self.ends.clear();
        if self.retry_at.take().is_some() {
            info!(output = %self.name, "output writable again; resumed");
        }
    }

    /// Takes back or ends a line a failed write cut short.
    fn mend(&mut self) {
        let mended = self
            .out
            .cut(self.written)
            .or_else(|_| self.out.write_all(b"\n").map(|()| self.written += 1));
        self.torn = mended.is_err();
    }

    fn failed(&mut self, done: usize, e: io::Error) {
        let whole = self.ends.iter().take_while(|&&end| end <= done).count();
        let kept = whole.checked_sub(1).map_or(0, |i| self.ends[i]);
        self.written += kept as u64;
        if done > kept {
            self.torn = true;
            self.mend();
        }
        let reason = reason_of(&e);
        if self.retry_at.is_none() {
            warn!(output = %self.name, error = %e, reason, "output write failed: dropping records (counted) and retrying every second");
        }
        self.retry_at = Some(Instant::now() + RETRY);
        self.last_reason = reason;
        let lost = (self.ends.len() - whole) as u64;
        self.clear_buffer(lost);
    }

    fn clear_buffer(&mut self, lost: u64) {
        self.buf.clear();
        self.ends.clear();
        if lost > 0 {
            *self.dropped.entry(self.last_reason).or_default() += lost;
        }
    }
}

impl<D: Destination> Drop for Lines<D> {
    /// Nothing buffered leaves uncounted: what cannot be written now, and
    /// what no loss record has reported yet, is logged.
    fn drop(&mut self) {
        self.flush();
        if !self.dropped.is_empty() {
            warn!(output = %self.name, dropped = ?self.dropped, "records dropped and not yet in a loss record");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes `room` more bytes, then fails with ENOSPC; can be cut back
    /// when `cuttable`.
    struct Disk {
        data: Vec<u8>,
        room: usize,
        cuttable: bool,
    }

    impl Write for &mut Disk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::from_raw_os_error(ENOSPC));
            }
            let n = buf.len().min(self.room);
            self.data.extend_from_slice(&buf[..n]);
            self.room -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Destination for &mut Disk {
        fn cut(&mut self, len: u64) -> io::Result<()> {
            if !self.cuttable {
                return Err(io::ErrorKind::Unsupported.into());
            }
            self.room += self.data.len() - len as usize;
            self.data.truncate(len as usize);
            Ok(())
        }
    }

    fn text(d: &Disk) -> &str {
        std::str::from_utf8(&d.data).unwrap()
    }

    #[test]
    fn a_short_write_keeps_whole_lines_pauses_counts_and_resumes() {
        for cuttable in [true, false] {
            let mut disk = Disk {
                data: Vec::new(),
                room: 15,
                cuttable,
            };
            let mut lines = Lines::new(&mut disk, "t".into(), 0);
            // 15 bytes: the first line and half the second.
            for l in ["line-one\n", "line-two\n", "line-3\n"] {
                lines.push(l.as_bytes());
            }
            lines.flush();
            assert!(lines.paused());
            lines.push(b"while-paused\n");
            assert_eq!(
                lines.take_dropped(),
                BTreeMap::from([(reason::DISK_FULL, 3)]),
                "cuttable: {cuttable}"
            );
            // Space returns; the retry after the pause writes again.
            std::thread::sleep(RETRY + Duration::from_millis(50));
            lines.out.room = 100;
            lines.push(b"after\n");
            lines.flush();
            assert!(!lines.paused());
            drop(lines);
            let want = if cuttable {
                "line-one\nafter\n"
            } else {
                // The torn line is ended before anything else is written.
                "line-one\nline-t\nafter\n"
            };
            assert_eq!(text(&disk), want);
        }
    }

    #[test]
    fn a_closed_pipe_drops_by_its_own_reason() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut lines = Lines::new(Stream(Box::new(Closed)), "stdout".into(), 0);
        lines.push(b"a\n");
        lines.push(b"b\n");
        lines.flush();
        lines.push(b"c\n");
        assert_eq!(
            lines.take_dropped(),
            BTreeMap::from([(reason::OUTPUT_CLOSED, 3)])
        );
    }
}
