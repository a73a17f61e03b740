//! `sensor replay`'s input: JSON lines, each read as a record or counted as
//! malformed, every record through the built-in rules as `--events` runs
//! them. Whatever is read, and every alert it raises, must encode in every
//! format and read back.
#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use sensor::{
    event::Record,
    pipeline::{Detection, write_and_detect},
    rules::{RuleSet, RuleSource, engine::Engine},
};
use sensor_fuzz::CheckingSink;

static BUILTIN: LazyLock<Arc<RuleSet>> =
    LazyLock::new(|| Arc::new(RuleSource::Builtin.load().expect("the built-in rules load")));

fuzz_target!(|input: &[u8]| {
    // A fresh engine per input: sequence progress from an earlier input
    // would make a crash depend on what ran before it.
    let mut detection = Detection::new(Engine::new(BUILTIN.clone()));
    for line in input.split(|&b| b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if let Ok(record) = serde_json::from_slice::<Record>(line) {
            write_and_detect(&mut CheckingSink, Some(&mut detection), &record)
                .expect("the checking sink does not fail");
        }
    }
});
