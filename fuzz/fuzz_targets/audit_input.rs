//! The audit's readers over arbitrary input: one JSON Lines row (`item::from_json_line`,
//! what `refusal-guard audit` does with each line), one `.json` document
//! (`item::from_value`) and one recorded `.sse` transcript (`item::from_sse`). A bad row
//! must come back as an error for that row, never a panic that costs the whole run; what
//! reads must give an observation the detectors can judge.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use refusal_guard::audit::{item, Item, Location};
use refusal_guard::detect::patterns::Patterns;

fn look(item: &Item) {
    let observation = item.observation();
    let _ = Patterns::builtin().scan_with(observation.text, observation.completeness);
    let _ = item.record.label_key();
    if let Some(e) = &item.error {
        let _ = e.to_string();
    }
}

fuzz_target!(|data: &[u8]| {
    let at = |line| Location {
        file: Arc::from("fuzz.jsonl"),
        line,
    };
    for (n, line) in data.split(|b| *b == b'\n').enumerate() {
        if let Ok(line) = std::str::from_utf8(line) {
            if let Ok(item) = item::from_json_line(line, &at(Some(n as u64 + 1))) {
                look(&item);
            }
        }
    }
    if let Ok(value) = serde_json::from_slice(data) {
        if let Ok(item) = item::from_value(value, &at(None), None) {
            look(&item);
        }
    }
    if let Ok(item) = item::from_sse(data.to_vec(), &at(None), None) {
        look(&item);
    }
});
