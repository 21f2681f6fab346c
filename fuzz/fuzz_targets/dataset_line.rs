//! The dataset line reader over arbitrary lines: `Record::from_line` must not panic; a
//! record that parses must re-serialise and re-parse to the same record; and what the
//! readers do with a record (label key, gold class, split, the provider error and finish
//! reason kept in `meta`) must not panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use refusal_guard::dataset::{LabelMap, Record, Split};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A file is read line by line; the fuzzer's input may hold several.
    for line in text.lines() {
        let Ok(Some(record)) = Record::from_line(line) else {
            continue;
        };
        let json = serde_json::to_string(&record).expect("a record serialises");
        let back = Record::from_line(&json)
            .unwrap_or_else(|e| panic!("re-parse of {json} failed: {e}"))
            .expect("a serialised record is not blank");
        assert_eq!(back, record, "round trip through {json}");
        let _ = record.label_key();
        let _ = LabelMap::default().gold(&record);
        let _ = Split::Fit.contains(&record.id);
        if let Some(e) = record.provider_error() {
            let _ = e.to_string();
        }
        let _ = record.finish_reason();
    }
});
