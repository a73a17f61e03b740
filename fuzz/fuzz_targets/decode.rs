//! Ring records as the kernel's ring buffer hands them over (one item, its
//! length the ring's): `decode` refuses what is malformed with an error the
//! collector counts, never a panic, and what it accepts the sensor can
//! write in every format and read back.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sensor::{clock::BootClock, decode::decode};

static CLOCK: LazyLock<BootClock> = LazyLock::new(BootClock::new);

fuzz_target!(|item: &[u8]| {
    if let Ok(record) = decode(item, &CLOCK) {
        sensor_fuzz::check_record(&record);
    }
});
