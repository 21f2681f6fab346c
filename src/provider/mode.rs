//! A provider's answer in the mode the caller asked for.
//!
//! A caller that asks for a stream reads only SSE; one that asks for a complete answer
//! reads only JSON. Some providers ignore `stream` (a proxy that buffers, a model server
//! without streaming) and answer in the other mode. Passed through, a complete answer to a
//! streamed request is read by the OpenAI SDK as a stream of no chunks: the whole answer
//! silently lost. So the client turns each answer into the mode asked for: a complete
//! answer into one chunk per choice, a stream into the complete answer it adds up to.

use futures::StreamExt;
use serde_json::Value;

use super::{ChatResponse, ResponseBody};
use crate::error::Error;
use crate::wire::{
    ChatCompletion, ChatCompletionChunk, Choice, ChunkChoice, Delta, FunctionCall, Logprobs, Message,
    MessageContent, Role, ToolCall,
};

/// `response` as a stream when `stream` is asked for, else as a complete answer. A stream
/// read whole ends in the first error it yields.
pub async fn in_mode(mut response: ChatResponse, stream: bool) -> Result<ChatResponse, Error> {
    let body = std::mem::replace(
        &mut response.body,
        ResponseBody::Stream(Box::pin(futures::stream::empty())),
    );
    response.body = match (body, stream) {
        (ResponseBody::Complete(c), true) => {
            let chunks = as_chunks(c).into_iter().map(Ok);
            ResponseBody::Stream(Box::pin(futures::stream::iter(chunks)))
        }
        (ResponseBody::Stream(mut s), false) => {
            let mut chunks = Vec::new();
            while let Some(chunk) = s.next().await {
                chunks.push(chunk?);
            }
            ResponseBody::Complete(from_chunks(chunks))
        }
        (body, _) => body,
    };
    Ok(response)
}

/// A complete answer as the chunks of a stream: one per choice with its whole message,
/// finish reason and logprobs; the usage on the last.
pub fn as_chunks(c: ChatCompletion) -> Vec<ChatCompletionChunk> {
    let n = c.choices.len();
    let mut chunks: Vec<ChatCompletionChunk> = c
        .choices
        .into_iter()
        .map(|choice| ChatCompletionChunk {
            id: c.id.clone(),
            object: Some("chat.completion.chunk".into()),
            created: c.created,
            model: c.model.clone(),
            choices: vec![ChunkChoice {
                index: choice.index,
                delta: Delta {
                    role: Some(choice.message.role),
                    content: choice.message.content.map(|m| m.text()),
                    refusal: choice.message.refusal,
                    tool_calls: choice.message.tool_calls.map(|calls| {
                        calls
                            .into_iter()
                            .enumerate()
                            .map(|(i, mut call)| {
                                call.index = call.index.or(Some(i as u32));
                                call
                            })
                            .collect()
                    }),
                    extra: choice.message.extra,
                    ..Default::default()
                },
                finish_reason: choice.finish_reason,
                logprobs: choice.logprobs,
                extra: choice.extra,
            }],
            ..Default::default()
        })
        .collect();
    if n == 0 {
        chunks.push(ChatCompletionChunk {
            id: c.id,
            object: Some("chat.completion.chunk".into()),
            created: c.created,
            model: c.model,
            ..Default::default()
        });
    }
    if let Some(last) = chunks.last_mut() {
        last.usage = c.usage;
    }
    chunks
}

/// The complete answer a stream adds up to: per choice, the content and reasoning joined,
/// tool calls assembled by their index (name and id from the first fragment, arguments
/// joined), the last finish reason, every logprob; the usage of any chunk that has one.
pub fn from_chunks(chunks: Vec<ChatCompletionChunk>) -> ChatCompletion {
    let mut out = ChatCompletion {
        object: Some("chat.completion".into()),
        ..Default::default()
    };
    let mut choices: Vec<Choice> = Vec::new();
    for chunk in chunks {
        out.id = out.id.or(chunk.id);
        out.created = out.created.or(chunk.created);
        out.model = out.model.or(chunk.model);
        if chunk.usage.is_some() {
            out.usage = chunk.usage;
        }
        for part in chunk.choices {
            let at = match choices.iter().position(|c| c.index == part.index) {
                Some(at) => at,
                None => {
                    choices.push(Choice {
                        index: part.index,
                        message: Message {
                            content: None,
                            ..Message::new(Role::Assistant, "")
                        },
                        finish_reason: None,
                        logprobs: None,
                        extra: Default::default(),
                    });
                    choices.len() - 1
                }
            };
            add(&mut choices[at], part);
        }
    }
    choices.sort_by_key(|c| c.index);
    out.choices = choices;
    out
}

/// Adds one chunk's part of a choice to what came before it.
fn add(choice: &mut Choice, part: ChunkChoice) {
    let message = &mut choice.message;
    let delta = part.delta;
    if let Some(role) = delta.role {
        message.role = role;
    }
    if let Some(text) = delta.content {
        let mut joined = message.content.take().map(|c| c.text()).unwrap_or_default();
        joined.push_str(&text);
        message.content = Some(MessageContent::Text(joined));
    }
    if let Some(text) = delta.refusal {
        message.refusal.get_or_insert_with(String::new).push_str(&text);
    }
    if let Some(text) = delta.reasoning_content {
        let slot = message
            .extra
            .entry("reasoning_content")
            .or_insert_with(|| Value::String(String::new()));
        if let Value::String(s) = slot {
            s.push_str(&text);
        }
    }
    for fragment in delta.tool_calls.into_iter().flatten() {
        let calls = message.tool_calls.get_or_insert_with(Vec::new);
        let index = fragment.index.unwrap_or(calls.len().saturating_sub(1) as u32);
        match calls.iter_mut().find(|c| c.index == Some(index)) {
            Some(call) => {
                let args = fragment.function.and_then(|f| f.arguments).unwrap_or_default();
                let function = call.function.get_or_insert_with(FunctionCall::default);
                function.arguments.get_or_insert_with(String::new).push_str(&args);
            }
            None => calls.push(ToolCall {
                index: Some(index),
                ..fragment
            }),
        }
    }
    if part.finish_reason.is_some() {
        choice.finish_reason = part.finish_reason;
    }
    if let Some(lp) = part.logprobs {
        let all = choice.logprobs.get_or_insert_with(Logprobs::default);
        if let Some(content) = lp.content {
            all.content.get_or_insert_with(Vec::new).extend(content);
        }
    }
    choice.extra.extend(part.extra);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::FinishReason;
    use serde_json::json;

    fn chunk(v: Value) -> ChatCompletionChunk {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_stream_adds_up_to_its_complete_answer() {
        let chunks = vec![
            chunk(
                json!({"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "Think"}}]}),
            ),
            chunk(
                json!({"choices": [{"index": 0, "delta": {"content": "Par"}}, {"index": 1, "delta": {"content": "Lon"}}]}),
            ),
            chunk(
                json!({"choices": [{"index": 0, "delta": {"content": "is"}}, {"index": 1, "delta": {"content": "don"}, "finish_reason": "stop"}]}),
            ),
            chunk(
                json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\""}}]}}]}),
            ),
            chunk(
                json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}, "finish_reason": "tool_calls"}]}),
            ),
            chunk(
                json!({"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7}}),
            ),
        ];
        let c = from_chunks(chunks);
        assert_eq!(c.id.as_deref(), Some("c1"));
        assert_eq!(c.choices.len(), 2);
        let first = &c.choices[0];
        assert_eq!(c.text(), "Paris");
        assert_eq!(first.message.extra["reasoning_content"], "Think");
        let call = &first.message.tool_calls.as_ref().unwrap()[0];
        assert_eq!(call.id.as_deref(), Some("call_1"));
        let function = call.function.as_ref().unwrap();
        assert_eq!(
            (function.name.as_deref(), function.arguments.as_deref()),
            (Some("f"), Some("{\"a\": 1}"))
        );
        assert_eq!(first.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(c.choices[1].message.content.as_ref().unwrap().text(), "London");
        assert_eq!(c.usage.unwrap().total_tokens, 7);
    }

    #[test]
    fn a_complete_answer_streams_as_one_chunk_per_choice_and_back() {
        let complete: ChatCompletion = serde_json::from_value(json!({
            "id": "x", "model": "m", "created": 3,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"},
                {"index": 1, "message": {"role": "assistant", "content": null, "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, "finish_reason": "tool_calls"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
        }))
        .unwrap();
        let chunks = as_chunks(complete.clone());
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].content(), "Paris.");
        assert_eq!(
            chunks[1].choices[0].delta.tool_calls.as_ref().unwrap()[0].index,
            Some(0)
        );
        assert!(chunks[1].usage.is_some());
        let back = from_chunks(chunks);
        assert_eq!(back.text(), complete.text());
        assert_eq!(
            back.choices[1].message.tool_calls.as_ref().unwrap()[0].function,
            complete.choices[1].message.tool_calls.as_ref().unwrap()[0].function
        );
        assert_eq!(back.usage, complete.usage);
    }
}
