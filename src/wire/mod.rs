//! Wire types: what OpenAI-compatible providers (DashScope, OpenAI, OpenRouter,
//! DeepSeek, Mistral, …) send and receive on `/chat/completions`.
//!
//! Requests, complete answers and stream chunks are plain serde structs that keep
//! unknown fields; errors are read into [`ProviderError`] with a [`Moderation`] reading;
//! [`sse`] turns bytes into chunks and back.

mod error;
mod request;
mod response;
pub mod sse;

pub use error::{is_error_body, ErrorPosition, Moderation, ModerationStage, ProviderError};
pub use request::{
    last_user_text, ChatRequest, ContentPart, FunctionCall, FunctionDef, ImageUrl, ImageUrlTag, Message,
    MessageContent, Role, StreamOptions, TextTag, Tool, ToolCall,
};
pub use response::{
    ChatCompletion, ChatCompletionChunk, Choice, ChunkChoice, Delta, FinishReason, Logprobs,
    PromptTokensDetails, TokenLogprob, TopLogprob, Usage,
};
