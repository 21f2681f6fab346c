//! Inputs that once broke the crate, found by the fuzz targets (`fuzz/`, run with
//! `scripts/fuzz.sh`) and by the fault suite. Each test replays the exact input through the
//! same property its finder checked, so the bug cannot come back unnoticed. The inputs that
//! are bytes live in `tests/regressions/` under the name of the target that found them.

use refusal_guard::wire::{ErrorPosition, ProviderError};

fn input(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/regressions")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// All the strings of a provider error that may be logged or shown.
fn texts(e: &ProviderError) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            serde_json::Value::Object(map) => map.values().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = vec![e.message.clone(), e.to_string()];
    out.extend([&e.code, &e.kind, &e.request_id].into_iter().flatten().cloned());
    walk(&e.raw, &mut out);
    out
}

/// wire_types, crash-6adec88c: the body `ed>M","\xefM","\x99b\x01ec ` read as an error,
/// then its first 8 characters redacted. `<redacted>` followed by the rest of the text
/// spelled the secret again (`<redact` + `ed>M","�`). Fixed by choosing a marker that
/// cannot re-form the secret.
#[test]
fn redaction_marker_cannot_spell_the_secret_again() {
    let body = input("wire_types-redact-marker-reforms-secret.bin");
    let error = ProviderError::from_body(
        "fuzz",
        400,
        &body,
        ErrorPosition::StreamAfterContent { chars_streamed: 7 },
    );
    let (i, _) = error.message.char_indices().nth(8).unwrap();
    let secret = error.message[..i].to_string();
    let mut redacted = error.clone();
    redacted.redact(&secret);
    for t in texts(&redacted) {
        assert!(!t.contains(&secret), "{secret:?} left in {t:?}");
    }
    // Secrets that are the marker itself, or hold its brackets, are removed too.
    for secret in ["redacted", "<redacted>", "ab>cdefgh", "<redact#*~%@^|_-xX0"] {
        let mut e = ProviderError::from_body(
            "p",
            401,
            format!(r#"{{"error":{{"message":"key <{secret}> and {secret}{secret}"}}}}"#).as_bytes(),
            ErrorPosition::Response,
        );
        e.redact(secret);
        for t in texts(&e) {
            assert!(!t.contains(secret), "{secret:?} left in {t:?}");
        }
    }
    // An ordinary key still reads as before.
    let mut e = ProviderError::from_body(
        "p",
        401,
        br#"{"error":{"message":"Incorrect API key provided: sk-abcdef123456."}}"#,
        ErrorPosition::Response,
    );
    e.redact("sk-abcdef123456");
    assert_eq!(e.message, "Incorrect API key provided: <redacted>.");
}

/// wire_types, crash-ad339a45: the body `9999…91` (88 digits) read as an error keeps the
/// number as `raw`; serialised (`1.0000000000000001e+88`) and parsed again it came back
/// as `1e88`, a different value. serde_json's default float parsing may be off by one unit
/// in the last place, so any float a provider sends (a logprob, a temperature) could
/// change on its way through the gateway. Fixed by serde_json's `float_roundtrip`.
#[test]
fn floats_survive_a_round_trip() {
    use refusal_guard::wire::{ChatCompletionChunk, ChatRequest};

    let body = input("wire_types-float-round-trip.bin");
    let error = ProviderError::from_body("fuzz", 400, &body, ErrorPosition::Response);
    let json = serde_json::to_string(&error).unwrap();
    assert_eq!(
        serde_json::from_str::<ProviderError>(&json).unwrap(),
        error,
        "{json}"
    );

    // Values that the default parser reads one unit off (seen while checking the fix).
    for x in [
        "6.162599865641032e196",
        "-1.0498824276453545e74",
        "-1.490143767845386e129",
    ] {
        let request: ChatRequest =
            serde_json::from_str(&format!(r#"{{"model":"m","messages":[],"temperature":{x}}}"#)).unwrap();
        let back: ChatRequest = serde_json::from_str(&serde_json::to_string(&request).unwrap()).unwrap();
        assert_eq!(back, request);
        let chunk: ChatCompletionChunk = serde_json::from_str(&format!(
            r#"{{"choices":[{{"delta":{{"content":"a"}},"logprobs":{{"content":[{{"token":"a","logprob":{x}}}]}}}}]}}"#
        ))
        .unwrap();
        assert_eq!(
            chunk.token_logprobs()[0].logprob,
            x.parse::<f64>().unwrap(),
            "parsed exactly"
        );
        let back: ChatCompletionChunk =
            serde_json::from_str(&serde_json::to_string(&chunk).unwrap()).unwrap();
        assert_eq!(back, chunk);
    }
}
