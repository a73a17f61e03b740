//! A configuration file's text as `sensor config check` reads it: keys and
//! value shapes from the YAML, each value through its flag's own parser,
//! all of them together for conflicts. Errors are collected, never a panic.
#![no_main]

use std::sync::LazyLock;

use clap::CommandFactory as _;
use libfuzzer_sys::fuzz_target;

// The binary's own command line, compiled as it is: the configuration's
// keys and parsers are its options, so no copy of them can drift. Only the
// definition is used here, not the fields the binary reads.
#[allow(dead_code)]
#[path = "../../sensor/src/bin/sensor/args.rs"]
mod args;

static CLI: LazyLock<clap::Command> = LazyLock::new(args::Cli::command);

fuzz_target!(|text: &[u8]| {
    // The file is read as a string: other bytes never reach the parser.
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let (_, errors) = sensor::config::checked_text(&CLI, "fuzz.yaml", text);
    // Every error is in file order and points into the file, or just past
    // it: the YAML scanner reports an error at the end of a file without a
    // final newline on the line after its last. YAML breaks lines at more
    // than '\n'; counting every such character bounds its lines.
    let breaks = ['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'];
    let last = text.chars().filter(|c| breaks.contains(c)).count() + 2;
    assert!(
        errors
            .windows(2)
            .all(|w| (w[0].line, w[0].col) <= (w[1].line, w[1].col)),
        "errors out of order: {errors:?}"
    );
    for e in &errors {
        assert!(e.line <= last, "{e} is past the end (line {last} at most)");
    }
});
