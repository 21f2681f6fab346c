//! Provider errors, read into one typed shape.
//!
//! OpenAI-compatible providers all answer errors as `{"error":{…}}`, but they fill it
//! differently: DashScope puts `data_inspection_failed` in `code` and `type` and the
//! request id beside the error, its native API says `DataInspectionFailed`, Azure hides the
//! content filter under `innererror`, and aggregators such as OpenRouter wrap the upstream
//! provider's raw body as a string under `metadata.raw`. [`ProviderError::from_body`] reads
//! all of these, and [`Moderation`] says whether the provider's own moderation stopped the
//! request, and at which stage. The same reading applies to an error that arrives as an
//! SSE `data: {"error":…}` event in the middle of a stream.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which side of the exchange a provider's moderation objected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModerationStage {
    /// The prompt (or the conversation history) was flagged: the same request will be
    /// flagged again.
    Input,
    /// The generated answer was flagged: the answer was withheld or cut.
    Output,
}

/// Where in the exchange an error was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "at")]
pub enum ErrorPosition {
    /// As the HTTP response itself (non-2xx status).
    Response,
    /// As an SSE error event before any content was streamed.
    StreamBeforeContent,
    /// As an SSE error event after some content had been streamed: the answer is cut.
    StreamAfterContent {
        /// How many content characters had been streamed before the error.
        chars_streamed: usize,
    },
}

/// A provider-side content block recognised in an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moderation {
    /// The stage the provider named, or the one implied by where the error arrived.
    pub stage: ModerationStage,
    /// Whether `stage` was read from the provider's own words (`true`) or inferred
    /// from where the error arrived (`false`).
    pub stage_stated: bool,
    /// The marker that identified the block (`data_inspection_failed`, `content_filter`, …).
    pub marker: String,
}

/// An error answered by a provider, as a typed value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderError {
    /// The provider's configured name (`dashscope-intl`, `openai`, …).
    pub provider: String,
    /// The HTTP status; for an error inside a stream, the stream's status (200).
    pub status: u16,
    pub code: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub message: String,
    pub request_id: Option<String>,
    pub position: ErrorPosition,
    /// Set when the provider's moderation stopped the request.
    pub moderation: Option<Moderation>,
    /// The body as received (parsed JSON, or a string when it was not JSON).
    pub raw: Value,
    /// The provider's `Retry-After` header, as sent, on a 429 or 503: the gateway hands it
    /// on so that a client backs off as long as the provider asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<String>,
}

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "provider {} answered {}", self.provider, self.status)?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(m) = &self.moderation {
            write!(f, " [moderation, {:?} stage]", m.stage)?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " [request id {id}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for ProviderError {}

/// Whether a JSON body or SSE event is an error: it carries a non-null top-level
/// `error`, with or without `choices` (OpenRouter reports mid-stream failures as a chunk
/// with both).
pub fn is_error_body(v: &Value) -> bool {
    v.get("error").is_some_and(|e| !e.is_null())
}

impl ProviderError {
    /// Reads an error body. Never fails: a body that is not JSON, or JSON of an unknown
    /// shape, still yields an error carrying the status and the text.
    pub fn from_body(provider: &str, status: u16, body: &[u8], position: ErrorPosition) -> Self {
        let raw: Value = serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
        Self::from_value(provider, status, raw, position)
    }

    /// Reads an already parsed error body (for example an SSE error event).
    pub fn from_value(provider: &str, status: u16, raw: Value, position: ErrorPosition) -> Self {
        let fields = ErrorFields::read(&raw);
        let moderation = read_moderation(&fields, position);
        ProviderError {
            provider: provider.to_string(),
            status,
            code: fields.code,
            kind: fields.kind,
            message: fields.message.unwrap_or_else(|| match &raw {
                Value::String(s) if !s.is_empty() => truncate(s, 500),
                _ => format!("HTTP {status} with no error message"),
            }),
            request_id: fields.request_id,
            position,
            moderation,
            raw,
            retry_after: None,
        }
    }

    /// How long from `now` the provider asked to be left alone, by its `Retry-After`
    /// header (RFC 9110 §10.2.3: whole seconds, or an HTTP date; a date already past is
    /// zero). `None` where it sent none, or one that is neither: an unreadable header asks
    /// for nothing rather than for a guessed pause.
    pub fn retry_after_in(&self, now: std::time::SystemTime) -> Option<std::time::Duration> {
        let value = self.retry_after.as_deref()?.trim();
        if let Ok(secs) = value.parse::<u64>() {
            return Some(std::time::Duration::from_secs(secs));
        }
        let at = httpdate::parse_http_date(value).ok()?;
        Some(at.duration_since(now).unwrap_or_default())
    }

    /// Whether the same request could succeed if sent again: rate limits, overload and
    /// server errors. A moderation block never is: the provider will flag it again.
    pub fn is_retryable(&self) -> bool {
        if self.moderation.is_some() {
            return false;
        }
        matches!(self.status, 408 | 409 | 425 | 429 | 500..=599)
            || matches!(
                self.code.as_deref(),
                Some("rate_limit_exceeded" | "Throttling" | "ServiceUnavailable" | "server_error")
            )
    }

    /// Replaces every occurrence of `secret` in the message and the raw body with
    /// `<redacted>`. Some providers and proxies quote the credential they rejected
    /// ("Incorrect API key provided: sk-…"); clients call this with their key so that an
    /// error can be logged and displayed safely. Secrets shorter than 8 bytes are left
    /// alone (they would match ordinary words).
    pub fn redact(&mut self, secret: &str) {
        if secret.len() < 8 {
            return;
        }
        let marker = redaction_marker(secret);
        if self.message.contains(secret) {
            self.message = self.message.replace(secret, &marker);
        }
        redact_value(&mut self.raw, secret, &marker);
        for field in [&mut self.code, &mut self.kind, &mut self.request_id]
            .into_iter()
            .flatten()
        {
            if field.contains(secret) {
                *field = field.replace(secret, &marker);
            }
        }
    }

    /// Whether this is a provider moderation block.
    pub fn is_moderation(&self) -> bool {
        self.moderation.is_some()
    }
}

/// What replaces a secret: `<redacted>`, unless that marker could spell the secret again
/// with the text around it (a secret that holds `<` or `>`, or that is part of the marker:
/// `ed>sk-…` after `<redact` would be the secret once more; found by the `wire_types` fuzz
/// target). Then a run of a character the secret does not hold: any occurrence of the
/// secret that overlapped a marker would have to contain that character, so none can.
fn redaction_marker(secret: &str) -> String {
    const MARKER: &str = "<redacted>";
    if !secret.contains(['<', '>']) && !MARKER.contains(secret) {
        return MARKER.to_string();
    }
    let c = ['#', '*', '~', '%', '@', '^', '|', '_', '-', 'x', 'X', '0']
        .into_iter()
        .find(|c| !secret.contains(*c))
        .or_else(|| ('\u{2400}'..).find(|c| !secret.contains(*c)))
        .expect("a secret cannot hold every character");
    std::iter::repeat_n(c, 3).collect()
}

fn redact_value(v: &mut Value, secret: &str, marker: &str) {
    match v {
        Value::String(s) if s.contains(secret) => *s = s.replace(secret, marker),
        Value::Array(items) => items.iter_mut().for_each(|i| redact_value(i, secret, marker)),
        Value::Object(map) => map.values_mut().for_each(|i| redact_value(i, secret, marker)),
        _ => {}
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The fields of interest, gathered from whichever shape the body has.
#[derive(Default)]
struct ErrorFields {
    code: Option<String>,
    kind: Option<String>,
    message: Option<String>,
    request_id: Option<String>,
    /// Every string that may name a moderation marker or a stage: codes, types,
    /// messages, Azure's inner codes, an aggregator's nested raw body.
    texts: Vec<String>,
}

impl ErrorFields {
    fn read(raw: &Value) -> Self {
        let mut f = ErrorFields::default();
        f.collect(raw, 0);
        f
    }

    fn collect(&mut self, v: &Value, depth: usize) {
        if depth > 4 {
            return;
        }
        match v {
            Value::String(s) => {
                // An aggregator may nest the upstream body as a JSON string.
                if let Ok(inner @ Value::Object(_)) = serde_json::from_str::<Value>(s) {
                    self.collect(&inner, depth + 1);
                } else {
                    self.texts.push(s.clone());
                }
            }
            Value::Object(map) => {
                let err = map.get("error").filter(|e| e.is_object());
                let body = err.unwrap_or(v);
                if let Some(o) = body.as_object() {
                    // The outermost layer names the error; inner layers only add evidence.
                    let take = |k: &str| o.get(k).and_then(value_as_string);
                    if self.code.is_none() {
                        self.code = take("code");
                    }
                    if self.kind.is_none() {
                        self.kind = take("type");
                    }
                    if self.message.is_none() {
                        self.message = take("message");
                    }
                    for k in ["code", "type", "message"] {
                        if let Some(s) = take(k) {
                            self.texts.push(s);
                        }
                    }
                    if let Some(inner) = o.get("innererror") {
                        self.collect(inner, depth + 1);
                    }
                    if let Some(meta) = o.get("metadata") {
                        if let Some(raw) = meta.get("raw") {
                            self.collect(raw, depth + 1);
                        }
                        if let Some(reasons) = meta.get("reasons") {
                            self.collect(reasons, depth + 1);
                        }
                    }
                }
                if self.request_id.is_none() {
                    self.request_id = ["request_id", "requestId", "RequestId"]
                        .iter()
                        .find_map(|k| map.get(*k).and_then(value_as_string));
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.collect(item, depth + 1);
                }
            }
            _ => {}
        }
    }
}

fn value_as_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Markers of a provider's moderation, lower-cased, with the stage they imply if any.
const MODERATION_MARKERS: &[(&str, Option<ModerationStage>)] = &[
    ("data_inspection_failed", None),
    ("datainspectionfailed", None),
    ("inappropriate content", None),
    ("content_filter", None),
    ("content_policy_violation", None),
    ("responsibleaipolicyviolation", Some(ModerationStage::Input)),
    ("content management policy", None),
    ("flagged as potentially violating", Some(ModerationStage::Input)),
    ("sensitive_words_detected", None),
    ("sensitive content", None),
    ("contentpolicyviolation", None),
];

fn read_moderation(fields: &ErrorFields, position: ErrorPosition) -> Option<Moderation> {
    let lowered: Vec<String> = fields.texts.iter().map(|t| t.to_lowercase()).collect();
    let (marker, implied) = MODERATION_MARKERS
        .iter()
        .find(|(m, _)| lowered.iter().any(|t| t.contains(m)))?;
    let stated = lowered.iter().find_map(|t| stated_stage(t)).or(*implied);
    let stage = stated.unwrap_or(match position {
        ErrorPosition::StreamAfterContent { .. } => ModerationStage::Output,
        _ => ModerationStage::Input,
    });
    Some(Moderation {
        stage,
        stage_stated: stated.is_some(),
        marker: marker.to_string(),
    })
}

/// The stage a moderation message names: "Input data may contain…", "Output data…",
/// Azure's "The response was filtered due to the prompt triggering…" (the prompt is what
/// was flagged, so input words win over output words).
fn stated_stage(lowered: &str) -> Option<ModerationStage> {
    const INPUT: &[&str] = &["input data", "input text", "input image", "prompt"];
    const OUTPUT: &[&str] = &[
        "output data",
        "output text",
        "response was filtered",
        "completion",
    ];
    if INPUT.iter().any(|n| lowered.contains(n)) {
        Some(ModerationStage::Input)
    } else if OUTPUT.iter().any(|n| lowered.contains(n)) {
        Some(ModerationStage::Output)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn asking(value: &str) -> ProviderError {
        let mut e = ProviderError::from_body("p", 429, b"{}", ErrorPosition::Response);
        e.retry_after = Some(value.to_string());
        e
    }

    /// `Retry-After` in whole seconds or as an HTTP date; a date past is zero, anything else
    /// asks for nothing.
    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            asking(" 120 ").retry_after_in(now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            asking("Sun, 06 Nov 1994 08:50:07 GMT").retry_after_in(now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            asking("Sun, 06 Nov 1994 08:00:00 GMT").retry_after_in(now),
            Some(Duration::ZERO)
        );
        for unreadable in ["soon", "-5", "1.5", ""] {
            assert_eq!(asking(unreadable).retry_after_in(now), None, "{unreadable:?}");
        }
        let mut none = asking("1");
        none.retry_after = None;
        assert_eq!(none.retry_after_in(now), None);
    }
}
