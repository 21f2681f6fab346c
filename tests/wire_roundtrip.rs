//! Wire types survive a round trip: what a caller or a provider sends comes out the same,
//! unknown fields included, at every level.
//!
//! One normalisation is by design: a *known* optional field sent as `null`
//! (`"logprobs": null`, `"refusal": null`) comes back omitted, which every
//! OpenAI-compatible reader treats the same. Unknown fields keep their `null`s.

use refusal_guard::wire::{
    ChatCompletion, ChatCompletionChunk, ChatRequest, ContentPart, FinishReason, MessageContent, Role,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

fn roundtrip<T: Serialize + DeserializeOwned>(v: &Value) -> (T, Value) {
    let typed: T = serde_json::from_value(v.clone()).expect("parses");
    let back = serde_json::to_value(&typed).expect("serialises");
    (typed, back)
}

/// Removes `null` values of the given known keys, at any depth.
fn drop_known_nulls(v: &mut Value, keys: &[&str]) {
    match v {
        Value::Object(map) => {
            map.retain(|k, val| !(val.is_null() && keys.contains(&k.as_str())));
            map.values_mut().for_each(|x| drop_known_nulls(x, keys));
        }
        Value::Array(items) => items.iter_mut().for_each(|x| drop_known_nulls(x, keys)),
        _ => {}
    }
}

#[test]
fn request_with_vendor_parameters_images_and_tools() {
    let body = json!({
        "model": "qwen-vl-max",
        "messages": [
            {"role": "system", "content": "You are helpful.", "x_cache_hint": {"ttl": 60}},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this picture?", "cache_control": {"type": "ephemeral"}},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP8=", "detail": "high", "min_pixels": 3136}, "x_part_extra": 1},
                {"type": "input_audio", "input_audio": {"data": "UklGRiQAAABXQVZF", "format": "wav"}}
            ]},
            {"role": "assistant", "tool_calls": [
                {"id": "call_0", "type": "function", "index": 0, "function": {"name": "get_weather", "arguments": "{\"city\":\"杭州\"}", "x_fn_extra": true}, "x_call_extra": "k"}
            ], "partial": false},
            {"role": "tool", "tool_call_id": "call_0", "content": "{\"temp\":21}", "name": "get_weather"},
            {"role": "user", "content": "And tomorrow?"}
        ],
        "temperature": 0.7,
        "top_p": 0.8,
        "seed": 1234,
        "max_tokens": 512,
        "stop": ["\n\n", "Observation:"],
        "n": 1,
        "stream": true,
        "stream_options": {"include_usage": true, "x_chunk_usage": "every"},
        "logprobs": true,
        "top_logprobs": 5,
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}, "strict": true}, "x_tool_extra": [1, 2]}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "enable_search": true,
        "search_options": {"forced_search": true},
        "repetition_penalty": 1.05,
        "top_k": 20,
        "enable_thinking": false,
        "vl_high_resolution_images": true,
        "translation_options": null
    });
    let (req, back): (ChatRequest, Value) = roundtrip(&body);
    assert_eq!(back, body);

    // The typed fields really are typed, and only the unknown ones land in `extra`.
    assert!(req.is_stream());
    assert_eq!(req.stream_options.as_ref().unwrap().include_usage, Some(true));
    assert_eq!(req.top_logprobs, Some(5));
    let mut extra: Vec<_> = req.extra.keys().cloned().collect();
    extra.sort();
    assert_eq!(
        extra,
        [
            "enable_search",
            "enable_thinking",
            "repetition_penalty",
            "search_options",
            "top_k",
            "translation_options",
            "vl_high_resolution_images"
        ]
    );
    let Some(MessageContent::Parts(parts)) = &req.messages[1].content else {
        panic!("array content")
    };
    assert!(
        matches!(&parts[0], ContentPart::Text { text, extra, .. } if text == "What is in this picture?" && extra.contains_key("cache_control"))
    );
    assert!(
        matches!(&parts[1], ContentPart::ImageUrl { image_url, .. } if image_url.url.starts_with("data:image/jpeg;base64,") && image_url.detail.as_deref() == Some("high") && image_url.extra["min_pixels"] == 3136)
    );
    assert!(matches!(&parts[2], ContentPart::Other(v) if v["type"] == "input_audio"));
    let call = &req.messages[2].tool_calls.as_ref().unwrap()[0];
    assert_eq!(
        call.function.as_ref().unwrap().name.as_deref(),
        Some("get_weather")
    );
    assert_eq!(req.messages[3].role, Role::Tool);
    assert_eq!(req.last_user_text().as_deref(), Some("And tomorrow?"));
    assert_eq!(
        req.tools.as_ref().unwrap()[0].function.as_ref().unwrap().extra["strict"],
        true
    );
}

#[test]
fn unknown_roles_and_single_stop_string_are_kept() {
    let body = json!({"model": "m", "messages": [{"role": "ipython", "content": "out"}], "stop": "END"});
    let (req, back): (ChatRequest, Value) = roundtrip(&body);
    assert_eq!(back, body);
    assert_eq!(req.messages[0].role, Role::Other("ipython".into()));
}

#[test]
fn chunk_with_reasoning_refusal_and_top_logprobs() {
    let chunk = json!({
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1718000000,
        "model": "qwen3-235b-a22b",
        "system_fingerprint": null,
        "x_chunk_extra": {"k": [1, null]},
        "choices": [{
            "index": 0,
            "delta": {"content": " cannot", "reasoning_content": "The user wants", "refusal": "I can't help with that.", "x_delta_extra": 7},
            "finish_reason": null,
            "logprobs": {
                "content": [{"token": " cannot", "logprob": -0.31, "bytes": [32, 99, 97, 110, 110, 111, 116],
                    "top_logprobs": [
                        {"token": " cannot", "logprob": -0.31, "bytes": [32, 99, 97, 110, 110, 111, 116], "x_top_extra": "t"},
                        {"token": " can", "logprob": -1.42, "bytes": [32, 99, 97, 110]}
                    ],
                    "x_token_extra": 0.5}],
                "refusal": [{"token": "I", "logprob": -0.01, "top_logprobs": []}],
                "x_logprobs_extra": true
            },
            "x_choice_extra": "c"
        }]
    });
    let (c, back): (ChatCompletionChunk, Value) = roundtrip(&chunk);
    assert_eq!(back, chunk);
    assert_eq!(c.content(), " cannot");
    assert_eq!(
        c.choices[0].delta.reasoning_content.as_deref(),
        Some("The user wants")
    );
    assert_eq!(
        c.choices[0].delta.refusal.as_deref(),
        Some("I can't help with that.")
    );
    assert_eq!(
        c.token_logprobs()[0].top_logprobs.as_ref().unwrap()[1].logprob,
        -1.42
    );
    assert_eq!(c.token_count(), 1);
}

#[test]
fn usage_only_final_chunk_with_cached_tokens() {
    let chunk = json!({
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1718000000,
        "model": "qwen-plus",
        "choices": [],
        "usage": {
            "prompt_tokens": 3019,
            "completion_tokens": 104,
            "total_tokens": 3123,
            "prompt_tokens_details": {"cached_tokens": 2048, "x_cache_creation": 0},
            "completion_tokens_details": {"reasoning_tokens": 80},
            "x_usage_extra": "u"
        }
    });
    let (c, back): (ChatCompletionChunk, Value) = roundtrip(&chunk);
    assert_eq!(back, chunk);
    assert!(c.choices.is_empty());
    assert_eq!(c.content(), "");
    assert_eq!(c.token_count(), 0);
    let usage = c.usage.unwrap();
    assert_eq!(usage.prompt_tokens_details.unwrap().cached_tokens, Some(2048));
}

#[test]
fn streamed_tool_call_fragments() {
    let chunk = json!({
        "id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1, "model": "qwen-plus",
        "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"ci"}}]}, "finish_reason": null}]
    });
    let (_, back): (ChatCompletionChunk, Value) = roundtrip(&chunk);
    assert_eq!(back, chunk);
}

#[test]
fn completion_with_tool_calls_and_unknown_fields() {
    let body = json!({
        "id": "chatcmpl-3", "object": "chat.completion", "created": 1718000000, "model": "qwen-plus",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}], "annotations": []},
            "finish_reason": "tool_calls",
            "x_choice": 1
        }],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        "service_tier": "default"
    });
    let (c, back): (ChatCompletion, Value) = roundtrip(&body);
    assert_eq!(back, body);
    assert_eq!(c.finish_reason(), Some(&FinishReason::ToolCalls));
}

#[test]
fn unknown_finish_reasons_are_kept() {
    let chunk = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "error"}]});
    let (c, back): (ChatCompletionChunk, Value) = roundtrip(&chunk);
    assert_eq!(back, chunk);
    assert_eq!(c.finish_reason(), Some(&FinishReason::Other("error".into())));
}

#[test]
fn known_nulls_normalise_and_unknown_nulls_stay() {
    // A DashScope chunk as sent: known fields null, plus an unknown null.
    let chunk = json!({
        "choices": [{"delta": {"content": "Hi", "role": "assistant", "refusal": null}, "index": 0, "logprobs": null, "finish_reason": null}],
        "object": "chat.completion.chunk", "usage": null, "created": 1718000000,
        "system_fingerprint": null, "model": "qwen-plus", "id": "chatcmpl-4"
    });
    let (_, back): (ChatCompletionChunk, Value) = roundtrip(&chunk);
    assert_ne!(back, chunk, "known nulls are dropped");
    assert_eq!(back["system_fingerprint"], Value::Null);
    assert!(back.as_object().unwrap().contains_key("system_fingerprint"));
    assert!(back["choices"][0]
        .as_object()
        .unwrap()
        .contains_key("finish_reason"));
    let mut expected = chunk;
    drop_known_nulls(&mut expected, &["refusal", "logprobs", "usage"]);
    assert_eq!(back, expected);
}

#[test]
fn openai_content_filter_fixture() {
    let raw = std::fs::read_to_string("fixtures/wire/openai_content_filter_completion.json").unwrap();
    let body: Value = serde_json::from_str(&raw).unwrap();
    let (c, back): (ChatCompletion, Value) = roundtrip(&body);
    let mut expected = body;
    drop_known_nulls(&mut expected, &["refusal", "logprobs"]);
    assert_eq!(back, expected);
    assert_eq!(c.finish_reason(), Some(&FinishReason::ContentFilter));
    assert!(c.text().starts_with("The events of that spring"));
    let usage = c.usage.unwrap();
    assert_eq!(usage.prompt_tokens_details.unwrap().cached_tokens, Some(0));
    assert_eq!(usage.completion_tokens_details.unwrap()["reasoning_tokens"], 0);
    assert_eq!(c.extra["service_tier"], "default");
}

#[test]
fn nulls_where_openai_omits_a_field_read_as_its_default() {
    // Found by a bug hunt: each of these ended a good stream as `upstream_malformed`.
    let chunk: ChatCompletionChunk = serde_json::from_value(json!({
        "id": "c", "created": 1_700_000_000.5, "choices": [{"index": null, "delta": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": null, "total_tokens": 3}
    }))
    .expect("parses");
    assert_eq!(chunk.created, Some(1_700_000_000));
    assert_eq!(chunk.choices[0].index, 0);
    assert_eq!(chunk.finish_reason(), Some(&FinishReason::Stop));
    assert_eq!(chunk.usage.as_ref().unwrap().completion_tokens, 0);
    let scored: ChatCompletionChunk = serde_json::from_value(json!({
        "choices": [{"index": 0, "delta": {"content": "a"}, "logprobs": {"content": [{"token": "a", "logprob": null}]}}]
    }))
    .expect("a null logprob parses");
    assert_eq!(scored.token_logprobs()[0].logprob, 0.0);
    let usage_only: ChatCompletionChunk = serde_json::from_value(json!({"choices": null})).unwrap();
    assert!(usage_only.choices.is_empty());
    let complete: ChatCompletion = serde_json::from_value(json!({"created": 5, "choices": null})).unwrap();
    assert_eq!((complete.created, complete.choices.len()), (Some(5), 0));
    // A time that is not a number is still an error, and says what it expected.
    let e = serde_json::from_value::<ChatCompletionChunk>(json!({"created": -3.0})).unwrap_err();
    assert!(e.to_string().contains("time in seconds"), "{e}");
}

#[tokio::test]
async fn an_event_stream_is_known_whatever_the_case_of_its_media_type() {
    use refusal_guard::provider::{read_response, BodyLimits, ResponseBody};
    let body = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
    for media in [
        "text/event-stream",
        "Text/Event-Stream; charset=UTF-8",
        "TEXT/EVENT-STREAM",
    ] {
        let response = http::Response::builder()
            .status(200)
            .header("content-type", media)
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let read = read_response(&std::sync::Arc::from("p"), response, BodyLimits::default())
            .await
            .unwrap_or_else(|e| panic!("{media}: {e}"));
        assert!(matches!(read.body, ResponseBody::Stream(_)), "{media}");
    }
}
