//! `eval --stream-window N`: how early the guard decides inside a stream.
//!
//! Each answer is replayed as a stream of token-sized chunks (words with their leading
//! space, one chunk per CJK character: the mock provider's split) through the real
//! [`RefusalGuardLayer`] with a window of N tokens and no time limit. For non-answers
//! (refusals and evasions by the label) it counts how many the guard stopped inside the
//! window, and after how many tokens; for answers, how many it stopped wrongly. This is
//! the figure behind the streaming target ("a refusal decided within the first 16 tokens
//! for at least 90% of refusals") and behind the default window.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tower::{Layer, ServiceExt};

use crate::dataset::{read_records, Gold, LabelMap, Record, Split};
use crate::detect::Detectors;
use crate::layer::RefusalGuardLayer;
use crate::mock::split_pieces;
use crate::provider::ChatResponse;
use crate::wire::{ChatCompletionChunk, ChatRequest, ChunkChoice, Delta, Message};

/// Streaming figures of one group of records.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamTally {
    /// Non-answers by the label (refusals and evasions; inabilities are released by design).
    pub non_answers: usize,
    /// Of those, stopped inside the window.
    pub stopped: usize,
    /// Tokens seen when each stop was decided, summed (for the mean).
    pub tokens_at_stop: usize,
    /// Of those stopped, decided within 8 tokens.
    pub stopped_within_8: usize,
    /// Answers by the label.
    pub answers: usize,
    /// Answers the guard stopped: what a caller would lose to a false alarm.
    pub false_stops: usize,
}

impl StreamTally {
    fn add(&mut self, other: &StreamTally) {
        self.non_answers += other.non_answers;
        self.stopped += other.stopped;
        self.tokens_at_stop += other.tokens_at_stop;
        self.stopped_within_8 += other.stopped_within_8;
        self.answers += other.answers;
        self.false_stops += other.false_stops;
    }
}

/// The streaming report: per file and language, and pooled per language.
#[derive(Debug, Clone, Serialize)]
pub struct StreamReport {
    pub window_tokens: usize,
    pub files: BTreeMap<String, BTreeMap<String, StreamTally>>,
    pub pooled_by_lang: BTreeMap<String, StreamTally>,
}

fn chunk(text: &str) -> ChatCompletionChunk {
    ChatCompletionChunk {
        choices: vec![ChunkChoice {
            delta: Delta {
                content: Some(text.to_string()),
                ..Default::default()
            },
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Whether the guard stopped the replayed record, and after how many tokens.
async fn replay(guard: &RefusalGuardLayer, record: &Record) -> Option<usize> {
    let pieces: Vec<ChatCompletionChunk> = split_pieces(&record.response).iter().map(|p| chunk(p)).collect();
    let prompt = record.prompt.clone();
    let upstream = tower::service_fn(move |_req: ChatRequest| {
        let stream = futures::stream::iter(pieces.clone().into_iter().map(Ok));
        async move { Ok::<_, crate::Error>(ChatResponse::stream(Box::pin(stream))) }
    });
    let mut request = ChatRequest::new("replay", vec![Message::user(prompt)]);
    request.stream = Some(true);
    match guard.layer(upstream).oneshot(request).await {
        Err(e) => e
            .as_refusal()
            .map(|r| r.held.iter().map(|c| c.token_count()).sum()),
        Ok(_released) => None,
    }
}

/// Replays the records of `files` through a guard with a window of `window` tokens.
pub fn evaluate(
    files: &[std::path::PathBuf],
    split: Split,
    map: &LabelMap,
    detectors: &Detectors,
    window: usize,
) -> Result<StreamReport, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let guard = RefusalGuardLayer::new()
        .detectors(detectors.clone())
        .window_tokens(window)
        .window_duration(Duration::from_secs(3600));
    let mut report = StreamReport {
        window_tokens: window,
        files: BTreeMap::new(),
        pooled_by_lang: BTreeMap::new(),
    };
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let mut by_lang: BTreeMap<String, StreamTally> = BTreeMap::new();
        for record in read_records(path)?.into_iter().filter(|r| split.contains(&r.id)) {
            let gold = map.gold(&record);
            let is_refusal = matches!(gold, Gold::Refusal | Gold::Evasion);
            let is_answer = matches!(gold, Gold::Answer | Gold::AnswerWithCaveats);
            if !(is_refusal || is_answer) || record.response.trim().is_empty() {
                continue;
            }
            let stopped = runtime.block_on(replay(&guard, &record));
            let t = by_lang.entry(record.lang.clone()).or_default();
            if is_refusal {
                t.non_answers += 1;
                if let Some(tokens) = stopped {
                    t.stopped += 1;
                    t.tokens_at_stop += tokens;
                    t.stopped_within_8 += usize::from(tokens <= 8);
                }
            } else {
                t.answers += 1;
                t.false_stops += usize::from(stopped.is_some());
            }
        }
        for (lang, t) in &by_lang {
            report.pooled_by_lang.entry(lang.clone()).or_default().add(t);
        }
        report.files.insert(name, by_lang);
    }
    Ok(report)
}

/// The report as text.
pub fn render(report: &StreamReport) -> String {
    let mut out = format!(
        "\nstreaming: the guard with a {}-token window, replaying each answer token by token\n",
        report.window_tokens
    );
    let pct = |a: usize, b: usize| if b == 0 { 0.0 } else { 100.0 * a as f64 / b as f64 };
    let mut line = |scope: &str, lang: &str, t: &StreamTally| {
        out.push_str(&format!(
            "  {scope:<36} {lang:<3} non-answers stopped in window {:>5}/{:<5} ({:>5.1}%), mean {:>4.1} tokens, within 8: {:>5.1}%; answers stopped {:>4}/{:<5} ({:>4.1}%)\n",
            t.stopped,
            t.non_answers,
            pct(t.stopped, t.non_answers),
            if t.stopped == 0 { 0.0 } else { t.tokens_at_stop as f64 / t.stopped as f64 },
            pct(t.stopped_within_8, t.stopped),
            t.false_stops,
            t.answers,
            pct(t.false_stops, t.answers),
        ));
    };
    for (file, langs) in &report.files {
        for (lang, t) in langs {
            line(file, lang, t);
        }
    }
    for (lang, t) in &report.pooled_by_lang {
        line("all files", lang, t);
    }
    out
}
