//! Complete answers and streamed chunks (`chat.completion` and `chat.completion.chunk`).
//!
//! Both share the per-token log-probabilities, the usage block and the finish reason, so
//! they live together. As in the request types, unknown fields are kept in `extra`.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::request::{Message, Role, ToolCall};

/// A complete (non-streamed) answer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatCompletion {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole_number"
    )]
    pub created: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatCompletion {
    /// The text of the first choice ("" when there is none).
    pub fn text(&self) -> String {
        self.choices
            .first()
            .and_then(|c| c.message.content.as_ref())
            .map(|c| c.text())
            .unwrap_or_default()
    }

    /// The finish reason of the first choice.
    pub fn finish_reason(&self) -> Option<&FinishReason> {
        self.choices.first().and_then(|c| c.finish_reason.as_ref())
    }

    /// The token log-probabilities of the first choice, when the provider sent them.
    pub fn token_logprobs(&self) -> &[TokenLogprob] {
        self.choices
            .first()
            .and_then(|c| c.logprobs.as_ref())
            .and_then(|l| l.content.as_deref())
            .unwrap_or(&[])
    }
}

/// One choice of a complete answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    #[serde(default, deserialize_with = "null_as_default")]
    pub index: u32,
    pub message: Message,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Logprobs>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Why the model stopped. `content_filter` is the provider's output moderation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    FunctionCall,
    #[serde(untagged)]
    Other(String),
}

/// `logprobs` of a choice: one entry per generated token.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Logprobs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<TokenLogprob>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Vec<TokenLogprob>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A generated token with its log-probability and the most likely alternatives.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TokenLogprob {
    pub token: String,
    /// `null` (sent by some providers for a token they did not score) reads as 0.0, as if
    /// the model were sure of it: the logprob checks then find nothing in it, the cautious
    /// reading, where refusing the chunk would end a good stream.
    #[serde(deserialize_with = "null_as_default")]
    pub logprob: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<Vec<TopLogprob>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An alternative token at one position.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<Vec<u8>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Token counts. DashScope and OpenAI both report cached prompt tokens under
/// `prompt_tokens_details.cached_tokens`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default, deserialize_with = "null_as_default")]
    pub prompt_tokens: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub completion_tokens: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub total_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Details of the prompt tokens.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One server-sent event of a streamed answer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole_number"
    )]
    pub created: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Empty in the final usage chunk of `stream_options.include_usage`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub choices: Vec<ChunkChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatCompletionChunk {
    /// A chunk that only closes the first choice with `finish` (an empty delta), under the
    /// stream's `id`: for a stream that ends without its own finish chunk.
    pub fn closing(id: Option<String>, finish: FinishReason) -> Self {
        ChatCompletionChunk {
            id,
            object: Some("chat.completion.chunk".into()),
            choices: vec![ChunkChoice {
                delta: Delta::default(),
                finish_reason: Some(finish),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// The content text this chunk adds to the first choice ("" when none).
    pub fn content(&self) -> &str {
        self.choices
            .first()
            .and_then(|c| c.delta.content.as_deref())
            .unwrap_or("")
    }

    /// The finish reason of the first choice, if this chunk carries one.
    pub fn finish_reason(&self) -> Option<&FinishReason> {
        self.choices.first().and_then(|c| c.finish_reason.as_ref())
    }

    /// The token log-probabilities this chunk carries for the first choice.
    pub fn token_logprobs(&self) -> &[TokenLogprob] {
        self.choices
            .first()
            .and_then(|c| c.logprobs.as_ref())
            .and_then(|l| l.content.as_deref())
            .unwrap_or(&[])
    }

    /// How many tokens this chunk carries: the logprob entries when present,
    /// else one for any chunk that adds content (providers send about one token a chunk).
    pub fn token_count(&self) -> usize {
        let lp = self.token_logprobs().len();
        if lp > 0 {
            lp
        } else if self.content().is_empty() {
            0
        } else {
            1
        }
    }
}

/// One choice of a chunk.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChunkChoice {
    #[serde(default, deserialize_with = "null_as_default")]
    pub index: u32,
    #[serde(default, deserialize_with = "null_as_default")]
    pub delta: Delta,
    /// Serialised as `null` rather than omitted: OpenAI clients expect the key.
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Logprobs>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What a chunk adds to the assistant message.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Qwen / DeepSeek thinking text, streamed before the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `null` read as the field's default. OpenAI omits a field it has nothing for; some
/// compatible providers send `"delta": null`, `"index": null` or `"choices": null`
/// instead, and one such chunk must not end a good stream as malformed.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A timestamp that may come as a float (`1700000000.5`): its whole seconds.
fn whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    n.as_u64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f as u64)
        })
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("expected a time in seconds, got {n}")))
}
