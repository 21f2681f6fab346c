//! Every error shape a provider answers, read into `ProviderError` and its moderation.

use refusal_guard::wire::{ErrorPosition, ModerationStage, ProviderError};
use refusal_guard::Error;
use serde_json::{json, Value};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("fixtures/wire/{name}")).unwrap()
}

fn read(name: &str, status: u16) -> ProviderError {
    ProviderError::from_body("dashscope-intl", status, &fixture(name), ErrorPosition::Response)
}

#[test]
fn dashscope_input_block() {
    let e = read("dashscope_input_block.json", 400);
    assert_eq!(e.status, 400);
    assert_eq!(e.code.as_deref(), Some("data_inspection_failed"));
    assert_eq!(e.kind.as_deref(), Some("data_inspection_failed"));
    assert_eq!(e.message, "Input data may contain inappropriate content.");
    assert_eq!(
        e.request_id.as_deref(),
        Some("3b7f0e52-91c4-9a6d-a1e2-5c0d7f4e8a19")
    );
    let m = e.moderation.as_ref().unwrap();
    assert_eq!(
        (m.stage, m.stage_stated, m.marker.as_str()),
        (ModerationStage::Input, true, "data_inspection_failed")
    );
    assert!(e.is_moderation());
    assert!(!e.is_retryable());
    let shown = e.to_string();
    assert!(
        shown.contains("dashscope-intl") && shown.contains("400") && shown.contains("data_inspection_failed")
    );
    assert!(
        shown.contains("Input") && shown.contains("3b7f0e52-91c4-9a6d-a1e2-5c0d7f4e8a19"),
        "{shown}"
    );
}

#[test]
fn dashscope_output_block() {
    let e = read("dashscope_output_block.json", 400);
    let m = e.moderation.unwrap();
    assert_eq!((m.stage, m.stage_stated), (ModerationStage::Output, true));
    assert_eq!(
        e.request_id.as_deref(),
        Some("a0c4d2e8-5f61-9b37-8e0a-7d2b1c9f3e64")
    );
}

#[test]
fn dashscope_native_message() {
    let e = read("dashscope_native_block.json", 400);
    assert!(e
        .message
        .starts_with("<400> InternalError.Algo.DataInspectionFailed"));
    let m = e.moderation.unwrap();
    assert_eq!((m.stage, m.stage_stated), (ModerationStage::Input, true));

    // The native text alone, as a plain-text body, is recognised too.
    let text =
        b"<400> InternalError.Algo.DataInspectionFailed: Output text data may contain inappropriate content.";
    let e = ProviderError::from_body("dashscope", 400, text, ErrorPosition::Response);
    let m = e.moderation.unwrap();
    assert_eq!(
        (m.stage, m.stage_stated, m.marker.as_str()),
        (ModerationStage::Output, true, "datainspectionfailed")
    );
}

#[test]
fn openrouter_wrapped_alibaba_block() {
    let e = ProviderError::from_body(
        "openrouter",
        400,
        &fixture("openrouter_wrapped_alibaba_block.json"),
        ErrorPosition::Response,
    );
    // The outer layer names the error; the nested DashScope body says what it was.
    assert_eq!(e.message, "Provider returned error");
    assert_eq!(e.code.as_deref(), Some("400"));
    assert_eq!(
        e.request_id.as_deref(),
        Some("77c1d0aa-2b3c-9d4e-a5f6-0718293a4b5c")
    );
    let m = e.moderation.unwrap();
    assert_eq!((m.stage, m.stage_stated), (ModerationStage::Output, true));
    assert_eq!(m.marker, "data_inspection_failed");
    assert!(
        !e.raw["error"]["metadata"]["raw"].as_str().unwrap().is_empty(),
        "raw kept as received"
    );
}

#[test]
fn azure_content_filter_error() {
    let e = read("azure_content_filter_error.json", 400);
    assert_eq!(e.code.as_deref(), Some("content_filter"));
    let m = e.moderation.unwrap();
    // "The response was filtered due to the prompt…": the prompt is what was flagged.
    assert_eq!((m.stage, m.stage_stated), (ModerationStage::Input, true));
    assert_eq!(m.marker, "content_filter");
    assert_eq!(
        e.raw["error"]["innererror"]["content_filter_result"]["jailbreak"]["filtered"],
        true
    );
}

#[test]
fn openai_moderation_flag_message() {
    let body = json!({"error": {"message": "Your request was rejected as a result of our safety system. Your prompt may contain text that is not allowed by our safety system.", "type": "invalid_request_error", "param": null, "code": "content_policy_violation"}});
    let e = ProviderError::from_value("openai", 400, body, ErrorPosition::Response);
    let m = e.moderation.unwrap();
    assert_eq!(
        (m.stage, m.marker.as_str()),
        (ModerationStage::Input, "content_policy_violation")
    );
}

#[test]
fn stage_is_inferred_from_position_when_unstated() {
    let body = json!({"error": {"code": "data_inspection_failed", "message": "blocked"}});
    let cases = [
        (ErrorPosition::Response, ModerationStage::Input),
        (ErrorPosition::StreamBeforeContent, ModerationStage::Input),
        (
            ErrorPosition::StreamAfterContent { chars_streamed: 12 },
            ModerationStage::Output,
        ),
    ];
    for (position, stage) in cases {
        let e = ProviderError::from_value("p", 200, body.clone(), position);
        let m = e.moderation.unwrap();
        assert_eq!((m.stage, m.stage_stated), (stage, false), "{position:?}");
        assert_eq!(e.position, position);
    }
    // A stated stage wins over the position.
    let stated = json!({"error": {"code": "data_inspection_failed", "message": "Input data may contain inappropriate content."}});
    let e = ProviderError::from_value(
        "p",
        200,
        stated,
        ErrorPosition::StreamAfterContent { chars_streamed: 3 },
    );
    assert_eq!(e.moderation.unwrap().stage, ModerationStage::Input);
}

#[test]
fn non_json_bodies() {
    let e = ProviderError::from_body(
        "p",
        502,
        b"<html><body>Bad Gateway</body></html>",
        ErrorPosition::Response,
    );
    assert_eq!(e.message, "<html><body>Bad Gateway</body></html>");
    assert_eq!(
        e.raw,
        Value::String("<html><body>Bad Gateway</body></html>".into())
    );
    assert!(e.moderation.is_none());
    assert!(e.is_retryable());

    let long = "x".repeat(2000);
    let e = ProviderError::from_body("p", 500, long.as_bytes(), ErrorPosition::Response);
    assert_eq!(e.message.chars().count(), 501, "500 characters and an ellipsis");
    assert!(e.message.ends_with('…'));

    let e = ProviderError::from_body("p", 504, b"", ErrorPosition::Response);
    assert_eq!(e.message, "HTTP 504 with no error message");

    let e = ProviderError::from_body("p", 400, b"{\"unexpected\": [1, 2]}", ErrorPosition::Response);
    assert_eq!(e.message, "HTTP 400 with no error message");
    assert_eq!(e.raw, json!({"unexpected": [1, 2]}));
}

#[test]
fn retryable_and_not() {
    let rate = json!({"error": {"message": "Requests rate limit exceeded, please try again later.", "type": "limit_requests", "code": "limit_requests"}});
    assert!(ProviderError::from_value("p", 429, rate, ErrorPosition::Response).is_retryable());
    let throttled = json!({"error": {"message": "Too many requests", "code": "Throttling"}});
    assert!(
        ProviderError::from_value("p", 400, throttled, ErrorPosition::Response).is_retryable(),
        "the code says throttling even with a 400"
    );
    let overloaded =
        json!({"error": {"message": "The engine is currently overloaded", "type": "server_error"}});
    assert!(ProviderError::from_value("p", 503, overloaded, ErrorPosition::Response).is_retryable());
    let bad = json!({"error": {"message": "Invalid API key", "code": "invalid_api_key"}});
    assert!(!ProviderError::from_value("p", 401, bad, ErrorPosition::Response).is_retryable());
    // A moderation block is never retryable, whatever its status.
    let blocked_500 = json!({"error": {"code": "data_inspection_failed", "message": "Output data may contain inappropriate content."}});
    let e = ProviderError::from_value("p", 500, blocked_500, ErrorPosition::Response);
    assert!(e.is_moderation() && !e.is_retryable());
    // Through the crate error.
    let err: Error = read("dashscope_input_block.json", 400).into();
    assert!(!err.is_retryable());
    assert!(err.as_provider().is_some());
    let err: Error = ProviderError::from_body("p", 429, b"{}", ErrorPosition::Response).into();
    assert!(err.is_retryable());
}

#[test]
fn ordinary_errors_are_not_moderation() {
    for body in [
        json!({"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error", "code": "invalid_api_key"}}),
        json!({"error": {"message": "The model `qwen-foo` does not exist", "code": "model_not_found"}}),
        json!({"error": {"message": "Range of input length should be [1, 30720]", "code": "InvalidParameter"}}),
    ] {
        let e = ProviderError::from_value("p", 400, body, ErrorPosition::Response);
        assert!(e.moderation.is_none(), "{}", e.message);
    }
}

#[test]
fn request_id_spellings() {
    for key in ["request_id", "requestId", "RequestId"] {
        let mut body = json!({"error": {"message": "m"}});
        body[key] = json!("rid-9");
        let e = ProviderError::from_value("p", 400, body, ErrorPosition::Response);
        assert_eq!(e.request_id.as_deref(), Some("rid-9"), "{key}");
    }
}

#[test]
fn redact_scrubs_a_quoted_secret() {
    let key = "sk-live-abcdef0123456789";
    let body = json!({"error": {"message": format!("Incorrect API key provided: {key}."), "code": "invalid_api_key", "details": [format!("key={key}")]}});
    let mut e = ProviderError::from_value("p", 401, body, ErrorPosition::Response);
    e.redact(key);
    assert_eq!(e.message, "Incorrect API key provided: <redacted>.");
    let shown = format!("{e} {e:?} {}", e.raw);
    assert!(!shown.contains(key), "{shown}");
    assert!(shown.contains("<redacted>"));
    // Too short to be a key: nothing is replaced.
    let mut e = ProviderError::from_value(
        "p",
        400,
        json!({"error": {"message": "bad request"}}),
        ErrorPosition::Response,
    );
    e.redact("bad");
    assert_eq!(e.message, "bad request");
}
