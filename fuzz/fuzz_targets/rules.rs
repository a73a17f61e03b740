//! A rule file's text as `sensor rules check` loads it: YAML, conditions,
//! lists and macros compiled, every error collected, never a panic. What
//! loads is used as `sensor run` uses it: the kernel filters are built and
//! must keep every open a rule matches, and the rules run over the
//! recorded events of tests/fixtures/replay.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use sensor::{
    event::{Body, Record},
    rules::{
        compile_files,
        engine::Engine,
        fields::Prepared,
        interest::{ConnectFilter, KernelFilter as _, OpenFilter},
    },
};
use sensor_fuzz::{RECORDED, check_record, open_of};

/// Paths the opens are tried on: the ones the rule text names (where its
/// conditions are likely to match), a file ending in each suffix it names
/// (`.zip`), then system paths.
fn paths(text: &str) -> Vec<String> {
    let named = text
        .split(|c: char| c.is_whitespace() || "\"'[](),=".contains(c))
        .filter_map(|t| {
            if t.contains('/') {
                Some(t.to_owned())
            } else {
                t.starts_with('.').then(|| format!("/tmp/x{t}"))
            }
        })
        .take(16);
    named
        .chain(["/etc/passwd", "/var/mail/root", "/tmp/x.zip"].map(String::from))
        .collect()
}

fuzz_target!(|text: &[u8]| {
    // Rule files are read as strings: other bytes never reach the parser.
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(set) = compile_files(vec![("fuzz.yaml".into(), text.into())], "fuzz") else {
        return;
    };
    // The filters as the collector writes them into the kernel's maps.
    let opens = OpenFilter::of_rules(&set);
    let _ = opens.to_kernel();
    let _ = ConnectFilter::of_rules(&set).to_kernel();

    // The kernel drops the opens the filter leaves out, and the engine
    // passes over them: sound only if no condition matches one. Tried on
    // the recorded opens and on opens of the paths above.
    let made: Vec<Record> = paths(text)
        .into_iter()
        .flat_map(|p| (0..3).map(move |shape| open_of(&p, shape)))
        .collect();
    let mut prepared = Prepared::new(set.memo_slots);
    for rec in RECORDED.iter().chain(&made) {
        let Body::Open(e) = &rec.body else {
            continue;
        };
        prepared.reset(rec.kind().bit(), rec);
        if set.conditions().any(|p| p.eval(rec, &prepared)) {
            assert!(
                opens.keeps(&e.data.open),
                "{:?} matches a condition, but the open filter ({opens}) drops it",
                String::from_utf8_lossy(&sensor_fuzz::native(rec))
            );
        }
    }

    let mut engine = Engine::new(Arc::new(set));
    for rec in RECORDED.iter() {
        engine.check(rec, &mut |alert| check_record(&alert));
    }
});
