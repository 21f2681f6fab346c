//! Continuing a cut stream on another provider.
//!
//! When content has already reached the caller and the upstream is then cut (an
//! output-stage block, a refusal turn, a dropped connection), the next provider is sent
//! the conversation with the text already released as the assistant's partial answer,
//! and asked to continue. Its answer is streamed on after what was released. Models do
//! not always obey "do not repeat": the head of the continuation is compared with the
//! tail of the released text, and an overlap is dropped, so the caller sees one answer
//! with nothing repeated.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::wire::{ChatRequest, Message};

/// The default instruction that asks a fallback to continue a partial answer.
pub const DEFAULT_CONTINUE_INSTRUCTION: &str = "Continue your previous answer exactly where it stops. \
Do not repeat any of it, do not add a preface, and do not mention that it was interrupted.";

/// How a continuation is asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContinuationStyle {
    /// The partial answer as an assistant message, then a user message with this
    /// instruction. Works with every chat model.
    Instruction(String),
    /// The partial answer as an assistant message carrying this boolean field, which the
    /// provider reads as "extend this prefix" (DashScope: `partial`, DeepSeek: `prefix`).
    PrefixField(String),
}

impl Default for ContinuationStyle {
    fn default() -> Self {
        ContinuationStyle::Instruction(DEFAULT_CONTINUE_INSTRUCTION.to_string())
    }
}

/// The request that asks a provider to continue `released`; with nothing released (a
/// stream that failed before its first word), the request itself, asked anew.
pub fn continuation_request(
    original: &ChatRequest,
    released: &str,
    style: &ContinuationStyle,
) -> ChatRequest {
    let mut request = original.clone();
    if released.is_empty() {
        request.seed = None;
        return request;
    }
    let mut partial = Message::assistant(released);
    match style {
        ContinuationStyle::Instruction(instruction) => {
            request.messages.push(partial);
            request.messages.push(Message::user(instruction.clone()));
        }
        ContinuationStyle::PrefixField(field) => {
            partial.extra.insert(field.clone(), Value::Bool(true));
            request.messages.push(partial);
        }
    }
    // A fixed seed would make the fallback repeat whatever the primary was cut on.
    request.seed = None;
    request
}

/// The request text a guard judges: the last user message, except that the re-route
/// layer's own [`DEFAULT_CONTINUE_INSTRUCTION`] is passed over for the question before
/// it. Judged as the request, "continue your previous answer" would turn a fallback's
/// refusal of a benign question into a safety refusal. (An operator's own instruction
/// text is judged as it is.)
pub fn judged_prompt(request: &ChatRequest) -> Option<String> {
    let last = request.last_user_text()?;
    if last != DEFAULT_CONTINUE_INSTRUCTION {
        return Some(last);
    }
    let at = request
        .messages
        .iter()
        .rposition(|m| m.role == crate::wire::Role::User)?;
    crate::wire::last_user_text(&request.messages[..at])
}

/// How many bytes at the start of `continuation` repeat the end of `released`: the
/// longest prefix of `continuation` (at least `min_overlap` bytes, at most 512) that
/// `released` ends with. Shorter coincidences ("the", a space) are not trimmed. A
/// continuation that repeats the whole released text is trimmed whatever the lengths: a
/// model asked to continue often starts the answer over.
pub fn overlap(released: &str, continuation: &str, min_overlap: usize) -> usize {
    if !released.is_empty() && continuation.starts_with(released) {
        return released.len();
    }
    let max = continuation.len().min(released.len()).min(512);
    (min_overlap.max(1)..=max)
        .rev()
        .filter(|&k| continuation.is_char_boundary(k))
        .find(|&k| released.ends_with(&continuation[..k]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_found_only_when_long_enough() {
        let released = "Tiananmen Square is a large public square in the centre of Beijing";
        assert_eq!(
            overlap(released, " the centre of Beijing, China.", 8),
            " the centre of Beijing".len()
        );
        assert_eq!(overlap(released, ", China.", 8), 0);
        assert_eq!(
            overlap(released, "Beijing is", 8),
            0,
            "7 bytes is a coincidence, not a repeat"
        );
        assert_eq!(
            overlap("天安门广场位于北京市中心", "北京市中心，是世界上", 6),
            "北京市中心".len()
        );
        assert_eq!(
            overlap("In", "In 1989, students", 8),
            2,
            "a restart repeats all of a short prefix"
        );
        let long = "word ".repeat(200);
        assert_eq!(
            overlap(&long, &format!("{long}and more"), 8),
            long.len(),
            "a restart repeats all of a long prefix (found by tests/faults.rs)"
        );
    }

    #[test]
    fn the_judged_prompt_of_a_continuation_is_the_question_it_continues() {
        let original = ChatRequest::new("qwen-plus", vec![Message::user("Tell me about 1989.")]);
        let asked = continuation_request(&original, "In 1989,", &ContinuationStyle::default());
        assert_eq!(judged_prompt(&asked).as_deref(), Some("Tell me about 1989."));
        assert_eq!(judged_prompt(&original).as_deref(), Some("Tell me about 1989."));
        let own = continuation_request(
            &original,
            "In 1989,",
            &ContinuationStyle::Instruction("Go on.".into()),
        );
        assert_eq!(judged_prompt(&own).as_deref(), Some("Go on."));
    }

    #[test]
    fn instruction_style_appends_partial_answer_and_instruction() {
        let original = ChatRequest::new("qwen-plus", vec![Message::user("Tell me about 1989.")]);
        let req = continuation_request(&original, "In 1989,", &ContinuationStyle::default());
        assert_eq!(req.messages.len(), 3);
        assert_eq!(req.messages[1], Message::assistant("In 1989,"));
        let prefix = continuation_request(
            &original,
            "In 1989,",
            &ContinuationStyle::PrefixField("partial".into()),
        );
        assert_eq!(prefix.messages.len(), 2);
        assert_eq!(prefix.messages[1].extra.get("partial"), Some(&Value::Bool(true)));
    }
}
