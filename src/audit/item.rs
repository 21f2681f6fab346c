//! One answer to judge, whatever shape it was logged in.
//!
//! Three shapes reach an audit:
//! - a dataset row ([`Record`]: `prompt`, `response`, `label`, `lang`, `model`, `meta`),
//!   possibly with the provider's error beside a partial answer, as `error` or as
//!   `meta.api_error` (the shared datasets' form), possibly wrapped by an aggregator
//!   (OpenRouter's "Upstream error from Alibaba" with the raw body under `metadata.raw`);
//! - a raw response body: a `chat.completion` or an `{"error":…}` body, as a line of a
//!   JSON Lines file or as a `.json` file;
//! - a recorded SSE transcript, decoded by the same [`ChunkDecoder`] the client uses, so
//!   an error event after content reads as a cut answer exactly as it does live.
//!
//! Each becomes an [`Item`]: a [`Record`] (the dataset schema is the one schema; documents
//! and transcripts take their id, language, label and model from a `NAME.meta.json`
//! [`Sidecar`]) plus what the wire said (the provider error, the finish reason, the token
//! log-probabilities, whether the stream was cut). [`Item::observation`] is what the
//! detectors see. Errors are read with [`ProviderError::from_value`], which looks through
//! aggregator nesting, and fed to the detectors: a moderation block is a fact the text
//! alone cannot show.
//!
//! A line of the gateway's verdict log ([`crate::observe::verdict_log`]) is a record with
//! the gateway's verdict beside it (`verdict`, `confidence`, `evidence`, `stage`,
//! `categories`) and its time as `time`: [`Item::logged`] carries that verdict, which the
//! audit counts as it is (the log usually holds no text to judge again).

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Map, Value};

use super::input::Location;
use crate::dataset::{is_blank, read_provider_error, Record};
use crate::detect::{Completeness, Observation};
use crate::error::Error;
use crate::verdict::{Evidence, ModerationStage, Verdict, VerdictClass, VerdictKind};
use crate::wire::sse::ChunkDecoder;
use crate::wire::{ChatCompletion, FinishReason, ProviderError, TokenLogprob};

/// The metadata of a `.json` document or `.sse` transcript: the fields of a [`Record`]
/// other than its `response` (`id`, `lang`, `label`, `model`, `prompt`, `meta`), read from
/// `NAME.meta.json`. `meta.provider` names the provider, `meta.status` the HTTP status of
/// an error body, `meta.timestamp` the time.
pub type Sidecar = Map<String, Value>;

/// One answer, ready to judge.
#[derive(Debug, Clone)]
pub struct Item {
    /// The answer as a dataset record; `response` holds the answer text (for a stream, the
    /// content that arrived).
    pub record: Record,
    /// Who served it: `meta.provider`, else the vendor prefix of the model
    /// (`anthropic/claude-…` → `anthropic`), else `unknown`.
    pub provider: String,
    /// The provider error that ended the exchange, before or after content.
    pub error: Option<ProviderError>,
    pub finish_reason: Option<FinishReason>,
    pub tokens: Vec<TokenLogprob>,
    pub completeness: Completeness,
    /// When it happened, in Unix seconds (UTC), if the log says.
    pub timestamp: Option<i64>,
    /// The verdict the gateway logged with it, when the row is a verdict-log line.
    pub logged: Option<Verdict>,
}

impl Item {
    /// What the detectors see.
    pub fn observation(&self) -> Observation<'_> {
        Observation {
            prompt: (!self.record.prompt.is_empty()).then_some(self.record.prompt.as_str()),
            text: &self.record.response,
            tokens: &self.tokens,
            finish_reason: self.finish_reason.as_ref(),
            error: self.error.as_ref(),
            completeness: self.completeness,
        }
    }
}

/// Reads one line of a JSON Lines file (its line ending, if kept, is not part of the value:
/// serde would place an error in a cut-short line at "line 2 column 0", after it).
pub fn from_json_line(line: &str, at: &Location) -> Result<Item, String> {
    let line = line.trim_end_matches(['\n', '\r']);
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    from_value(value, at, None)
}

/// Reads one JSON value: a dataset record, a `chat.completion` or an error body.
pub fn from_value(value: Value, at: &Location, sidecar: Option<&Sidecar>) -> Result<Item, String> {
    let Value::Object(mut map) = value else {
        return Err(format!("expected a JSON object, found {}", type_name(&value)));
    };
    if map.contains_key("choices") {
        return from_completion(map, at, sidecar);
    }
    if !map.contains_key("response") {
        // `{"error":{…}}` (OpenAI-compatible), or DashScope's native `{"code","message"}`.
        let native = map.contains_key("code") && map.contains_key("message");
        if map.contains_key("error") || native {
            return from_error_body(map, at, sidecar);
        }
        return Err(
            "neither a record (no \"response\"), a chat.completion (no \"choices\") \
                    nor an error body (no \"error\")"
                .into(),
        );
    }
    // A dataset record. The wire-level fields beside it are taken out before the record is
    // read, so that the Record stays the datasets' schema.
    let error = map.remove("error");
    let finish = map.remove("finish_reason");
    let created = map.remove("created");
    let timestamp = map.remove("timestamp");
    let status = map.remove("status");
    let provider = map.remove("provider");
    let time = map.remove("time");
    let logged = LoggedVerdict {
        verdict: map.remove("verdict"),
        confidence: map.remove("confidence"),
        evidence: map.remove("evidence"),
        stage: map.remove("stage"),
        categories: map.remove("categories"),
    };
    if map.get("response").is_some_and(Value::is_null) {
        map.insert("response".into(), Value::String(String::new()));
    }
    let record = record_from(map, at, sidecar)?;
    let provider = provider
        .as_ref()
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| provider_of(&record));
    let status = status
        .as_ref()
        .and_then(as_status)
        .or_else(|| record.meta.get("status").and_then(as_status));
    let error = error
        .filter(|e| !is_blank(e))
        .or_else(|| record.meta.get("api_error").filter(|e| !is_blank(e)).cloned())
        .map(|raw| read_provider_error(raw, &provider, status, &record.response));
    let finish_reason = finish
        .as_ref()
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_value(Value::String(s.into())).ok())
        .or_else(|| record.finish_reason());
    let logged = logged.read(error.as_ref(), &record.response)?;
    let timestamp = [created.as_ref(), timestamp.as_ref(), time.as_ref()]
        .into_iter()
        .flatten()
        .chain(
            ["timestamp", "created", "time"]
                .iter()
                .filter_map(|k| record.meta.get(*k)),
        )
        .find_map(unix_seconds);
    Ok(Item {
        provider,
        error,
        finish_reason,
        tokens: Vec::new(),
        completeness: Completeness::Complete,
        timestamp,
        logged,
        record,
    })
}

/// The verdict fields of a verdict-log line, before they are read.
struct LoggedVerdict {
    verdict: Option<Value>,
    confidence: Option<Value>,
    evidence: Option<Value>,
    stage: Option<Value>,
    categories: Option<Value>,
}

impl LoggedVerdict {
    /// The logged verdict, `None` when the row has none. A verdict logged without a
    /// confidence (an earlier attempt, which the re-route layer records by class only)
    /// counts as certain: the gateway acted on it. A block's stage, when not logged, is
    /// the input's when nothing was answered and the output's otherwise.
    fn read(self, error: Option<&ProviderError>, response: &str) -> Result<Option<Verdict>, String> {
        let Some(verdict) = self.verdict.filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let class: VerdictClass = verdict
            .as_str()
            .ok_or_else(|| format!("\"verdict\" is {verdict}, not a verdict class name"))?
            .parse()?;
        let confidence = match self.confidence {
            None | Some(Value::Null) => 1.0,
            Some(v) => v
                .as_f64()
                .filter(|c| (0.0..=1.0).contains(c))
                .ok_or_else(|| format!("\"confidence\" is {v}, not a number from 0 to 1"))?
                as f32,
        };
        let evidence: Vec<Evidence> = match self.evidence {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => serde_json::from_value(v).map_err(|e| format!("\"evidence\": {e}"))?,
        };
        let stage: Option<ModerationStage> = match self.stage {
            None | Some(Value::Null) => None,
            Some(v) => Some(serde_json::from_value(v).map_err(|e| format!("\"stage\": {e}"))?),
        };
        let categories: Vec<String> = match self.categories {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => serde_json::from_value(v).map_err(|e| format!("\"categories\": {e}"))?,
        };
        let kind = match class {
            VerdictClass::Answer => VerdictKind::Answer,
            VerdictClass::PolicyRefusal => VerdictKind::PolicyRefusal,
            VerdictClass::Evasion => VerdictKind::Evasion,
            VerdictClass::SafetyRefusal => VerdictKind::SafetyRefusal { categories },
            VerdictClass::Inability => VerdictKind::Inability,
            VerdictClass::ProviderBlock => VerdictKind::ProviderBlock {
                stage: stage
                    .or_else(|| error.and_then(|e| e.moderation.as_ref()).map(|m| m.stage))
                    .unwrap_or(if response.is_empty() {
                        ModerationStage::Input
                    } else {
                        ModerationStage::Output
                    }),
            },
            VerdictClass::Empty => VerdictKind::Empty,
        };
        let mut verdict = Verdict::new(kind, confidence);
        verdict.evidence = evidence;
        Ok(Some(verdict))
    }
}

/// A `chat.completion` body.
fn from_completion(
    map: Map<String, Value>,
    at: &Location,
    sidecar: Option<&Sidecar>,
) -> Result<Item, String> {
    let completion: ChatCompletion =
        serde_json::from_value(Value::Object(map)).map_err(|e| format!("not a chat.completion: {e}"))?;
    let mut fields = sidecar.cloned().unwrap_or_default();
    fields.insert("response".into(), Value::String(completion.text()));
    if let (Some(id), false) = (&completion.id, fields.contains_key("id")) {
        fields.insert("id".into(), Value::String(id.clone()));
    }
    if let (Some(model), false) = (&completion.model, fields.contains_key("model")) {
        fields.insert("model".into(), Value::String(model.clone()));
    }
    let record = record_from(fields, at, None)?;
    let timestamp = completion
        .created
        .and_then(|c| i64::try_from(c).ok())
        .or_else(|| meta_time(&record));
    Ok(Item {
        provider: provider_of(&record),
        error: None,
        finish_reason: completion.finish_reason().cloned(),
        tokens: completion.token_logprobs().to_vec(),
        completeness: Completeness::Complete,
        timestamp,
        logged: None,
        record,
    })
}

/// An `{"error":…}` body (the whole body is the error; nothing was answered).
fn from_error_body(
    map: Map<String, Value>,
    at: &Location,
    sidecar: Option<&Sidecar>,
) -> Result<Item, String> {
    let mut fields = sidecar.cloned().unwrap_or_default();
    fields.insert("response".into(), Value::String(String::new()));
    if !fields.contains_key("id") {
        if let Some(id) = map.get("id").and_then(Value::as_str) {
            fields.insert("id".into(), Value::String(id.to_string()));
        }
    }
    let record = record_from(fields, at, None)?;
    let provider = provider_of(&record);
    let status = map
        .get("status")
        .or_else(|| map.get("status_code"))
        .and_then(as_status)
        .or_else(|| record.meta.get("status").and_then(as_status));
    let timestamp = map
        .get("created")
        .and_then(unix_seconds)
        .or_else(|| meta_time(&record));
    Ok(Item {
        error: Some(read_provider_error(Value::Object(map), &provider, status, "")),
        provider,
        finish_reason: None,
        tokens: Vec::new(),
        completeness: Completeness::Complete,
        timestamp,
        logged: None,
        record,
    })
}

/// Reads a recorded SSE transcript.
pub fn from_sse(bytes: Vec<u8>, at: &Location, sidecar: Option<&Sidecar>) -> Result<Item, String> {
    let mut fields = sidecar.cloned().unwrap_or_default();
    let hinted = record_from(fields.clone(), at, None)?;
    let provider = provider_of(&hinted);
    let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(bytes))]);
    let mut decoder = ChunkDecoder::new(Arc::from(provider.as_str()), 200, body);
    let mut text = String::new();
    let mut tokens = Vec::new();
    let (mut finish_reason, mut error, mut model, mut created, mut id) = (None, None, None, None, None);
    let mut completeness = Completeness::Complete;
    // The decoder never waits: its bytes are all in memory.
    futures::executor::block_on(async {
        while let Some(next) = decoder.next().await {
            match next {
                Ok(chunk) => {
                    text.push_str(chunk.content());
                    tokens.extend_from_slice(chunk.token_logprobs());
                    if let Some(f) = chunk.finish_reason() {
                        finish_reason = Some(f.clone());
                    }
                    model = model.take().or(chunk.model);
                    created = created.take().or(chunk.created);
                    id = id.take().or(chunk.id);
                }
                Err(Error::Provider(e)) => error = Some(*e),
                Err(Error::Truncated { .. }) => completeness = Completeness::Truncated,
                Err(other) => return Err(other.to_string()),
            }
        }
        Ok(())
    })?;
    fields.insert("response".into(), Value::String(text));
    if let (Some(id), false) = (id, fields.contains_key("id")) {
        fields.insert("id".into(), Value::String(id));
    }
    if let (Some(model), false) = (model, fields.contains_key("model")) {
        fields.insert("model".into(), Value::String(model));
    }
    let record = record_from(fields, at, None)?;
    let timestamp = created
        .and_then(|c| i64::try_from(c).ok())
        .or_else(|| meta_time(&record));
    Ok(Item {
        provider: provider_of(&record),
        error,
        finish_reason,
        tokens,
        completeness,
        timestamp,
        logged: None,
        record,
    })
}

/// Reads a [`Record`], filling what the datasets always have but logs may not: a missing
/// id becomes the location (`file:line`), a missing label none, a numeric id text.
fn record_from(
    mut map: Map<String, Value>,
    at: &Location,
    sidecar: Option<&Sidecar>,
) -> Result<Record, String> {
    if let Some(extra) = sidecar {
        for (k, v) in extra {
            map.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    match map.get("id") {
        None | Some(Value::Null) => {
            map.insert("id".into(), Value::String(at.to_string()));
        }
        Some(Value::Number(n)) => {
            let n = n.to_string();
            map.insert("id".into(), Value::String(n));
        }
        _ => {}
    }
    map.entry("label").or_insert(Value::Null);
    serde_json::from_value(Value::Object(map)).map_err(|e| format!("not a record: {e}"))
}

/// `meta.provider`, else the model's vendor prefix, else `unknown`.
fn provider_of(record: &Record) -> String {
    if let Some(p) = record.meta.get("provider").and_then(Value::as_str) {
        return p.to_string();
    }
    match record.model.split_once('/') {
        Some((vendor, _)) if !vendor.is_empty() => vendor.to_string(),
        _ => "unknown".to_string(),
    }
}

fn meta_time(record: &Record) -> Option<i64> {
    ["timestamp", "created", "time"]
        .iter()
        .filter_map(|k| record.meta.get(*k))
        .find_map(unix_seconds)
}

/// A time as Unix seconds: a number (seconds, or milliseconds when it is too large to be
/// seconds), an RFC 3339 timestamp, or a civil date-time or date taken as UTC.
pub fn unix_seconds(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => {
            let secs = n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))?;
            Some(if secs > 100_000_000_000 { secs / 1000 } else { secs })
        }
        Value::String(s) => {
            let s = s.trim();
            if let Ok(ts) = s.parse::<jiff::Timestamp>() {
                return Some(ts.as_second());
            }
            if let Ok(dt) = s.parse::<jiff::civil::DateTime>() {
                return dt
                    .to_zoned(jiff::tz::TimeZone::UTC)
                    .ok()
                    .map(|z| z.timestamp().as_second());
            }
            if let Ok(n) = s.parse::<i64>() {
                return unix_seconds(&Value::from(n));
            }
            None
        }
        _ => None,
    }
}

fn as_status(v: &Value) -> Option<u16> {
    v.as_u64().and_then(|s| u16::try_from(s).ok())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ModerationStage;
    use serde_json::json;

    fn at() -> Location {
        Location {
            file: Arc::from("t.jsonl"),
            line: Some(3),
        }
    }

    #[test]
    fn a_record_without_id_or_label_takes_its_location() {
        let item = from_json_line(r#"{"response":"Sure."}"#, &at()).unwrap();
        assert_eq!(item.record.id, "t.jsonl:3");
        assert_eq!(item.record.label, "");
    }

    #[test]
    fn an_openrouter_wrapped_error_beside_a_partial_answer_is_an_output_block() {
        let raw = json!({"error": {"code": 400, "message": "Upstream error from Alibaba: Output data may contain inappropriate content.",
            "metadata": {"provider_name": "Alibaba", "raw": "{\"error\":{\"code\":\"data_inspection_failed\",\"message\":\"Output data may contain inappropriate content.\"}}"}}});
        let line = json!({"id": "x", "response": "The events of", "error": raw, "model": "qwen/qwen-max"});
        let item = from_json_line(&line.to_string(), &at()).unwrap();
        let err = item.error.expect("error read");
        let m = err.moderation.expect("moderation");
        assert_eq!(m.stage, ModerationStage::Output);
        assert_eq!(item.provider, "qwen");
    }

    #[test]
    fn timestamps_read_in_several_forms() {
        assert_eq!(unix_seconds(&json!(1_700_000_000)), Some(1_700_000_000));
        assert_eq!(unix_seconds(&json!(1_700_000_000_123_i64)), Some(1_700_000_000));
        assert_eq!(unix_seconds(&json!("2023-11-14T22:13:20Z")), Some(1_700_000_000));
        assert_eq!(unix_seconds(&json!("2023-11-14T22:13:20")), Some(1_700_000_000));
        assert_eq!(unix_seconds(&json!("yesterday")), None);
    }

    #[test]
    fn a_verdict_log_line_carries_the_gateways_verdict() {
        let line = json!({"id": "rg-1.1", "time": "2026-12-01T10:00:00Z", "provider": "qwen", "model": "qwen-plus",
            "lang": "en", "verdict": "policy_refusal", "confidence": 0.9, "response": "", "attempt": 1, "attempts": 2});
        let item = from_json_line(&line.to_string(), &at()).unwrap();
        let v = item.logged.expect("logged verdict");
        assert_eq!(v.class(), VerdictClass::PolicyRefusal);
        assert!((v.confidence - 0.9).abs() < 1e-6);
        assert_eq!(item.provider, "qwen");
        assert_eq!(item.record.lang, "en");
        assert_eq!(item.timestamp, Some(1_796_119_200));

        let block = json!({"id": "b", "verdict": "provider_block", "response": ""});
        let v = from_json_line(&block.to_string(), &at()).unwrap().logged.unwrap();
        assert_eq!(
            v.kind,
            VerdictKind::ProviderBlock {
                stage: ModerationStage::Input
            }
        );
        assert_eq!(v.confidence, 1.0, "no confidence logged: the gateway acted on it");

        let bad = json!({"id": "c", "verdict": "maybe", "response": ""});
        let e = from_json_line(&bad.to_string(), &at()).unwrap_err();
        assert!(e.contains("maybe"), "{e}");
        assert!(from_json_line(r#"{"response":"x"}"#, &at())
            .unwrap()
            .logged
            .is_none());
    }

    #[test]
    fn shapes_that_are_not_answers_are_refused() {
        assert!(from_json_line("[1,2]", &at())
            .unwrap_err()
            .contains("JSON object"));
        assert!(from_json_line(r#"{"foo":1}"#, &at())
            .unwrap_err()
            .contains("neither"));
        // A line cut short, read with its line ending: the error is placed in the line.
        let e = from_json_line("{\"id\": \"bad\", \"response\": \r\n", &at()).unwrap_err();
        assert!(e.contains("line 1 column 26"), "{e}");
        assert!(from_json_line("{oops", &at())
            .unwrap_err()
            .starts_with("not JSON"));
    }
}
