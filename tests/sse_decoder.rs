//! `ChunkDecoder` over hand-made byte streams: framing edge cases, error events before
//! and after content, malformed chunks, truncation and the byte limit.

use std::sync::Arc;

use bytes::Bytes;
use futures::executor::block_on;
use futures::stream::{self, StreamExt};
use refusal_guard::mock::Script;
use refusal_guard::wire::sse::{encode_data, encode_done, encode_raw_data, ChunkDecoder};
use refusal_guard::wire::{
    ChatCompletionChunk, ChatRequest, ErrorPosition, FinishReason, Message, ModerationStage,
};
use refusal_guard::Error;
use serde_json::json;

type Items = Vec<Result<ChatCompletionChunk, Error>>;

fn decode_parts(parts: Vec<Bytes>) -> Items {
    decode_with_limit(parts, usize::MAX)
}

fn decode_with_limit(parts: Vec<Bytes>, limit: usize) -> Items {
    let s = stream::iter(parts.into_iter().map(Ok::<_, std::io::Error>));
    block_on(ChunkDecoder::with_limit(Arc::from("test"), 200, s, limit).collect())
}

fn decode(body: &[u8]) -> Items {
    decode_parts(vec![Bytes::copy_from_slice(body)])
}

/// Chunks up to the first error, and that error.
fn split(items: Items) -> (Vec<ChatCompletionChunk>, Option<Error>) {
    let mut chunks = Vec::new();
    let mut iter = items.into_iter();
    for item in iter.by_ref() {
        match item {
            Ok(c) => chunks.push(c),
            Err(e) => {
                assert!(iter.next().is_none(), "nothing after an error");
                return (chunks, Some(e));
            }
        }
    }
    (chunks, None)
}

fn text(chunks: &[ChatCompletionChunk]) -> String {
    chunks.iter().map(|c| c.content()).collect()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("fixtures/wire/{name}")).unwrap()
}

fn chunk(content: &str) -> Bytes {
    encode_data(
        &json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]}),
    )
}

fn body_of(parts: &[Bytes]) -> Vec<u8> {
    parts.concat()
}

fn assert_same(a: &Items, b: &Items) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        match (x, y) {
            (Ok(x), Ok(y)) => assert_eq!(x, y),
            (Err(x), Err(y)) => assert_eq!(x.to_string(), y.to_string()),
            _ => panic!("{x:?} vs {y:?}"),
        }
    }
}

#[test]
fn crlf_fixture_with_comment_logprobs_usage_and_done() {
    let raw = fixture("stream_with_logprobs.sse");
    assert!(raw.windows(2).any(|w| w == b"\r\n"), "the fixture uses CRLF");
    assert!(raw.starts_with(b": "), "and starts with a comment");
    let (chunks, err) = split(decode(&raw));
    assert!(err.is_none(), "{err:?}");
    assert_eq!(chunks.len(), 14, "role, 11 tokens, finish, usage");
    assert_eq!(text(&chunks), "I'm sorry, but I cannot discuss that.");
    let lps: Vec<_> = chunks.iter().flat_map(|c| c.token_logprobs()).collect();
    assert_eq!(lps.len(), 11);
    assert_eq!(lps[8].token, " discuss");
    assert_eq!(lps[8].top_logprobs.as_ref().unwrap()[1].token, " help");
    assert_eq!(chunks[12].finish_reason(), Some(&FinishReason::Stop));
    let usage = chunks[13].usage.as_ref().unwrap();
    assert!(chunks[13].choices.is_empty());
    assert_eq!(
        usage.prompt_tokens_details.as_ref().unwrap().cached_tokens,
        Some(0)
    );
}

#[test]
fn events_split_at_every_byte_boundary() {
    for raw in [
        fixture("stream_with_logprobs.sse"),
        fixture("stream_error_after_content.sse"),
    ] {
        let whole = decode(&raw);
        assert!(whole.len() > 5);
        for i in 0..=raw.len() {
            let parts = vec![
                Bytes::copy_from_slice(&raw[..i]),
                Bytes::copy_from_slice(&raw[i..]),
            ];
            assert_same(&whole, &decode_parts(parts));
        }
        // And one byte at a time (splits CRLF pairs and multi-byte UTF-8 too).
        let bytes: Vec<Bytes> = raw.iter().map(|b| Bytes::copy_from_slice(&[*b])).collect();
        assert_same(&whole, &decode_parts(bytes));
    }
}

#[test]
fn comments_metadata_and_empty_events_are_skipped() {
    let mut body = Vec::new();
    body.extend_from_slice(b": OPENROUTER PROCESSING\n\n");
    body.extend_from_slice(&chunk("a"));
    body.extend_from_slice(b"event: ping\n\n");
    body.extend_from_slice(b"id: 7\nretry: 3000\n\n");
    body.extend_from_slice(b"data:\n\n");
    body.extend_from_slice(b"data:   \n\n");
    body.extend_from_slice(&chunk("b"));
    body.extend_from_slice(&encode_done());
    let (chunks, err) = split(decode(&body));
    assert!(err.is_none(), "{err:?}");
    assert_eq!(text(&chunks), "ab");
}

#[test]
fn data_split_over_several_lines_is_joined() {
    let body =
        b"data: {\"choices\": [{\"index\": 0,\ndata: \"delta\": {\"content\": \"hi\"}}]}\n\ndata: [DONE]\n\n";
    let (chunks, err) = split(decode(body));
    assert!(err.is_none());
    assert_eq!(text(&chunks), "hi");
}

#[test]
fn nothing_is_read_after_done() {
    let mut body = chunk("a").to_vec();
    body.extend_from_slice(&encode_done());
    body.extend_from_slice(b"data: {not json\n\n");
    let (chunks, err) = split(decode(&body));
    assert!(err.is_none());
    assert_eq!(chunks.len(), 1);
}

#[test]
fn error_event_before_content() {
    let role = encode_data(
        &json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]}),
    );
    let error = fixture("dashscope_input_block.json");
    let mut body = role.to_vec();
    body.extend_from_slice(&encode_raw_data(String::from_utf8(error).unwrap().trim()));
    body.extend_from_slice(&chunk("never"));
    let (chunks, err) = split(decode(&body));
    assert_eq!(chunks.len(), 1, "the role chunk");
    let err = err.unwrap();
    let p = err.as_provider().unwrap();
    assert_eq!(p.position, ErrorPosition::StreamBeforeContent);
    assert_eq!(p.status, 200);
    assert_eq!(p.moderation.as_ref().unwrap().stage, ModerationStage::Input);
    assert_eq!(
        p.request_id.as_deref(),
        Some("3b7f0e52-91c4-9a6d-a1e2-5c0d7f4e8a19")
    );
}

#[test]
fn error_event_after_content_counts_characters() {
    let (chunks, err) = split(decode(&fixture("stream_error_after_content.sse")));
    assert_eq!(text(&chunks), "1989年春天，北京");
    let err = err.unwrap();
    let p = err.as_provider().unwrap();
    assert_eq!(
        p.position,
        ErrorPosition::StreamAfterContent {
            chars_streamed: "1989年春天，北京".chars().count()
        }
    );
    let m = p.moderation.as_ref().unwrap();
    assert_eq!((m.stage, m.stage_stated), (ModerationStage::Output, true));
}

#[test]
fn openrouter_mid_stream_error_with_choices() {
    // OpenRouter ends a failing stream with a chunk that has both `choices`
    // (finish_reason "error") and a top-level `error`.
    let mut body = chunk("Once upon").to_vec();
    body.extend_from_slice(&encode_data(&json!({
        "id": "gen-1", "object": "chat.completion.chunk", "created": 1, "model": "qwen/qwen-max",
        "provider": "Alibaba",
        "error": {"code": 502, "message": "Provider disconnected unexpectedly"},
        "choices": [{"index": 0, "delta": {"content": " a"}, "finish_reason": "error"}]
    })));
    let (chunks, err) = split(decode(&body));
    assert_eq!(text(&chunks), "Once upon");
    let err = err.expect("an error event, not a chunk");
    let p = err.as_provider().unwrap();
    assert_eq!(p.status, 502);
    assert_eq!(
        p.position,
        ErrorPosition::StreamAfterContent { chars_streamed: 11 }
    );
    assert!(err.is_retryable());
}

#[test]
fn null_error_field_is_not_an_error() {
    let body = [
        encode_data(
            &json!({"error": null, "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": null}]}),
        ),
        encode_done(),
    ];
    let (chunks, err) = split(decode(&body_of(&body)));
    assert!(err.is_none());
    assert_eq!(text(&chunks), "ok");
}

#[test]
fn malformed_chunks() {
    let mut body = chunk("a").to_vec();
    body.extend_from_slice(b"data: {\"choices\": [{\"delta\"\n\n");
    let (chunks, err) = split(decode(&body));
    assert_eq!(chunks.len(), 1);
    assert!(
        matches!(
            err,
            Some(Error::Malformed {
                what: "stream chunk",
                ..
            })
        ),
        "{err:?}"
    );

    // Valid JSON of the wrong shape.
    let (_, err) = split(decode(b"data: {\"choices\": \"none\"}\n\n"));
    assert!(
        matches!(
            err,
            Some(Error::Malformed {
                what: "stream chunk",
                ..
            })
        ),
        "{err:?}"
    );

    // Invalid UTF-8 is a framing error.
    let (_, err) = split(decode(b"data: \xff\xfe\n\n"));
    assert!(
        matches!(
            err,
            Some(Error::Malformed {
                what: "SSE framing",
                ..
            })
        ),
        "{err:?}"
    );
}

#[test]
fn ending_without_done_is_truncated() {
    let (chunks, err) = split(decode(&fixture("stream_no_done.sse")));
    assert_eq!(text(&chunks), "The capital of France is");
    match err {
        Some(Error::Truncated { chunks, provider }) => assert_eq!((chunks, provider.as_str()), (6, "test")),
        other => panic!("expected Truncated, got {other:?}"),
    }
    assert!(!Error::Truncated {
        provider: "p".into(),
        chunks: 1
    }
    .is_retryable());

    let (chunks, err) = split(decode(b""));
    assert!(chunks.is_empty());
    assert!(matches!(err, Some(Error::Truncated { chunks: 0, .. })));
}

#[test]
fn a_stream_whose_choices_all_finished_is_whole_without_done() {
    let finish = |index: u32| {
        encode_data(&json!({"choices": [{"index": index, "delta": {}, "finish_reason": "stop"}]}))
    };
    let two = |index: u32, content: &str| {
        encode_data(&json!({"choices": [{"index": index, "delta": {"content": content}}]}))
    };
    // The body ends after the finish chunk (and a usage chunk): whole, no error.
    let usage = encode_data(
        &json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}),
    );
    let (chunks, err) = split(decode_parts(vec![chunk("Paris."), finish(0), usage]));
    assert!(err.is_none(), "{err:?}");
    assert_eq!((text(&chunks).as_str(), chunks.len()), ("Paris.", 3));
    // `[DONE]` without its blank line is never dispatched; the answer is still whole.
    let mut body = body_of(&[chunk("Paris."), finish(0)]);
    body.extend_from_slice(b"data: [DONE]");
    let (_, err) = split(decode(&body));
    assert!(err.is_none(), "{err:?}");
    // The connection drops after the finish chunk: whole; before it: cut.
    let reset = |parts: Vec<Bytes>| {
        let items = parts
            .into_iter()
            .map(Ok)
            .chain([Err(std::io::Error::other("connection reset"))]);
        block_on(ChunkDecoder::new(Arc::from("test"), 200, stream::iter(items)).collect::<Items>())
    };
    let (chunks, err) = split(reset(vec![chunk("Paris."), finish(0)]));
    assert!(err.is_none(), "{err:?}");
    assert_eq!(chunks.len(), 2);
    let (_, err) = split(reset(vec![chunk("Paris.")]));
    assert!(matches!(err, Some(Error::Transport { .. })), "{err:?}");
    // With n = 2, one choice unfinished: still cut.
    let (_, err) = split(decode_parts(vec![two(0, "a"), two(1, "b"), finish(0)]));
    assert!(matches!(err, Some(Error::Truncated { .. })), "{err:?}");
    let (_, err) = split(decode_parts(vec![two(0, "a"), two(1, "b"), finish(0), finish(1)]));
    assert!(err.is_none(), "{err:?}");
    // OpenRouter's `error` finish reason is a failure, not an end.
    let failed = encode_data(&json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "error"}]}));
    let (_, err) = split(decode_parts(vec![chunk("Par"), failed]));
    assert!(matches!(err, Some(Error::Truncated { .. })), "{err:?}");
}

#[test]
fn byte_limit() {
    let request = ChatRequest::new("qwen-plus", vec![Message::user("hi")]);
    let body = Script::answer("a fairly ordinary answer of some words").render_stream(&request);
    let parts: Vec<Bytes> = body.chunks(64).map(Bytes::copy_from_slice).collect();
    let (_, err) = split(decode_with_limit(parts.clone(), body.len()));
    assert!(err.is_none(), "exactly at the limit is fine: {err:?}");
    let (chunks, err) = split(decode_with_limit(parts, body.len() - 1));
    assert!(!chunks.is_empty(), "chunks before the limit were delivered");
    match err {
        Some(Error::TooLarge { limit, what, .. }) => assert_eq!((limit, what), (body.len() - 1, "stream")),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn broken_connection_is_a_transport_error() {
    let parts: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(chunk("a")),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by peer",
        )),
    ];
    let items: Items = block_on(ChunkDecoder::new(Arc::from("test"), 200, stream::iter(parts)).collect());
    let (chunks, err) = split(items);
    assert_eq!(chunks.len(), 1);
    match err {
        Some(
            e @ Error::Transport {
                mid_response: true, ..
            },
        ) => {
            assert!(e.to_string().contains("connection reset by peer"), "{e}");
            assert!(!e.is_retryable());
        }
        other => panic!("expected Transport, got {other:?}"),
    }
}

#[test]
fn mock_transcript_decodes_to_its_script() {
    let mut request = ChatRequest::new("qwen-plus", vec![Message::user("hi")]);
    request.logprobs = Some(true);
    request.top_logprobs = Some(2);
    let script = Script::answer("抱歉，我不能 discuss that.").with_logprobs(-0.2);
    let (chunks, err) = split(decode(&script.render_stream(&request)));
    assert!(err.is_none());
    assert_eq!(text(&chunks), "抱歉，我不能 discuss that.");
    assert_eq!(
        chunks.iter().map(|c| c.token_count()).sum::<usize>(),
        script.pieces().len()
    );
    let blocked = Script::answer("a b c").error_after(2).render_stream(&request);
    let (chunks, err) = split(decode(&blocked));
    assert_eq!(text(&chunks), "a b");
    let err = err.unwrap();
    assert_eq!(
        err.as_provider().unwrap().position,
        ErrorPosition::StreamAfterContent { chars_streamed: 3 }
    );
}
