//! `sensor replay`: recorded events (JSON lines) through the same rules and
//! the same write-then-detect step as a running sensor; alerts, and with
//! `--events` the events too, to stdout in the `--format` chosen.
use std::io::{BufRead as _, BufReader};

use anyhow::Context as _;
use sensor::{
    event::Record,
    output::{Encoder, Format, Outputs, Sink as _},
    pipeline::{Detection, write_and_detect},
};
use tracing::{info, warn};

use crate::args::ReplayArgs;

pub(crate) fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let mut detection = match args.rules.source() {
        Some(source) => Some(Detection::new(crate::run::load_engine(&source)?)),
        None => None,
    };
    let input: Box<dyn std::io::Read> = if args.file.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(&args.file)
                .with_context(|| format!("opening {}", args.file.display()))?,
        )
    };
    let encoder = match (args.format, &args.node_name) {
        (Format::Native, None) => Encoder::plain(),
        (format, node) => Encoder::new(format, node.as_deref().unwrap_or("unknown")),
    };
    let mut sink = Outputs::writer(Box::new(std::io::stdout()), encoder);
    let (mut records, mut malformed, mut alerts) = (0u64, 0u64, 0u64);
    for (n, line) in BufReader::new(input).split(b'\n').enumerate() {
        let line = line.with_context(|| format!("reading {}", args.file.display()))?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let record: Record = match serde_json::from_slice(&line) {
            Ok(r) => r,
            Err(e) => {
                malformed += 1;
                warn!(line = n + 1, error = %e, "malformed record skipped");
                continue;
            }
        };
        records += 1;
        alerts += match (&mut detection, args.events) {
            (d, true) => write_and_detect(&mut sink, d.as_mut(), &record)?,
            // Alerts only: the recorded events are already on record.
            (Some(d), false) => d.check(&mut sink, &record)?,
            (None, false) => 0,
        };
    }
    sink.flush()?;
    info!(records, alerts, malformed, "replay done");
    Ok(())
}
