//! The wire types over arbitrary JSON: a parse that succeeds must re-serialise and
//! re-parse to the same value, for requests, complete answers, chunks and provider
//! errors. `ProviderError::from_body` must accept any bytes, and reading the body of an
//! error twice must give the same error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use refusal_guard::wire::{ChatCompletion, ChatCompletionChunk, ChatRequest, ErrorPosition, ProviderError};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn round_trip<T>(data: &[u8])
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let Ok(value) = serde_json::from_slice::<T>(data) else {
        return;
    };
    let json = serde_json::to_string(&value).expect("a parsed value serialises");
    let back: T = serde_json::from_str(&json).unwrap_or_else(|e| panic!("re-parse of {json} failed: {e}"));
    assert_eq!(back, value, "round trip through {json}");
}

fuzz_target!(|data: &[u8]| {
    round_trip::<ChatRequest>(data);
    round_trip::<ChatCompletion>(data);
    round_trip::<ChatCompletionChunk>(data);
    if let Ok(request) = serde_json::from_slice::<ChatRequest>(data) {
        let _ = request.last_user_text();
        let _ = request.is_stream();
    }
    if let Ok(completion) = serde_json::from_slice::<ChatCompletion>(data) {
        let _ = completion.text();
        let _ = completion.token_logprobs();
    }
    if let Ok(chunk) = serde_json::from_slice::<ChatCompletionChunk>(data) {
        let _ = chunk.content();
        let _ = chunk.token_count();
    }

    let position = match data.first().map(|b| b % 3) {
        Some(0) => ErrorPosition::Response,
        Some(1) => ErrorPosition::StreamBeforeContent,
        _ => ErrorPosition::StreamAfterContent { chars_streamed: 7 },
    };
    let error = ProviderError::from_body("fuzz", 400, data, position);
    let again = ProviderError::from_body("fuzz", 400, data, position);
    assert_eq!(error, again, "reading an error body is deterministic");
    let _ = error.to_string();
    let _ = error.is_retryable();
    let json = serde_json::to_string(&error).expect("a provider error serialises");
    let back: ProviderError =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("re-parse of {json} failed: {e}"));
    assert_eq!(back, error, "round trip through {json}");
    // Reading the raw body it kept gives the same reading.
    let reread = ProviderError::from_value("fuzz", 400, error.raw.clone(), position);
    assert_eq!(reread, error, "re-reading the kept raw body");
    // Redacting any part of the message must not panic, and leaves it nowhere.
    if let Some((i, _)) = error.message.char_indices().nth(8) {
        let secret = error.message[..i].to_string();
        let mut redacted = error.clone();
        redacted.redact(&secret);
        let mut texts = vec![redacted.message.clone()];
        texts.extend(
            [&redacted.code, &redacted.kind, &redacted.request_id]
                .into_iter()
                .flatten()
                .cloned(),
        );
        strings(&redacted.raw, &mut texts);
        for t in texts {
            assert!(!t.contains(&secret), "{secret:?} left in {t:?}");
        }
    }
});

fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
        serde_json::Value::Object(map) => map.values().for_each(|i| strings(i, out)),
        _ => {}
    }
}
