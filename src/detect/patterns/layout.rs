//! Where the answer proper is, and which parts of it are quoted.
//!
//! A refusal phrase only means a refusal when the model says it in its own voice at the
//! start of its answer. So before weighing matches the scanner needs to know: where the
//! answer starts (after a reasoning block such as `<think>…</think>` or `◁think▷…◁/think▷`,
//! and after leading markup), which byte ranges are code (fenced or inline) or quotation,
//! and how long things are. Length is counted in *units* rather than bytes so that Chinese,
//! Japanese and Korean text, which says in one character what English says in three or
//! four letters, weighs about the same as English.

/// The shape of one answer text.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// Byte offset where the answer proper starts.
    pub start: usize,
    /// The text is only reasoning: a thinking block opened and never closed.
    pub reasoning_only: bool,
    /// Byte ranges of code (fenced blocks and inline spans) after the opening.
    pub code: Vec<(usize, usize)>,
}

const THINK_OPEN: [&str; 2] = ["<think>", "◁think▷"];
const THINK_CLOSE: [&str; 2] = ["</think>", "◁/think▷"];

impl Layout {
    /// Reads the layout of `text`.
    pub fn of(text: &str) -> Layout {
        let mut start = 0;
        let mut reasoning_only = false;
        if let Some(end) = THINK_CLOSE
            .iter()
            .filter_map(|c| text.rfind(c).map(|i| i + c.len()))
            .max()
        {
            start = end;
        } else if THINK_OPEN
            .iter()
            .any(|o| text.get(..64.min(text.len())).is_some_and(|h| h.contains(o)) || text.starts_with(o))
        {
            reasoning_only = true;
            start = text.len();
        }
        start = skip_preamble(text, start);
        let code = code_ranges(text, start);
        Layout {
            start,
            reasoning_only,
            code,
        }
    }

    /// Whether byte `at` lies in code.
    pub fn in_code(&self, at: usize) -> bool {
        self.code.iter().any(|&(s, e)| s <= at && at < e)
    }
}

/// Skips white space and the markup that may open an answer (`\boxed{`, a fence that
/// wraps the whole answer, headings, emphasis, quotes) so "the opening" means the first
/// words.
fn skip_preamble(text: &str, mut at: usize) -> usize {
    loop {
        let rest = &text[at..];
        let trimmed = rest.trim_start_matches(|c: char| {
            c.is_whitespace() || matches!(c, '#' | '*' | '_' | '>' | '"' | '“' | '「' | '-' | '{' | '}')
        });
        at += rest.len() - trimmed.len();
        if let Some(r) = trimmed.strip_prefix("\\boxed") {
            at += trimmed.len() - r.len();
            continue;
        }
        if trimmed.starts_with("```") {
            // A fence at the very start wraps the whole answer; it is not a quotation.
            at += trimmed.find('\n').map(|i| i + 1).unwrap_or(trimmed.len());
            continue;
        }
        return at;
    }
}

/// Byte ranges of fenced code blocks and inline code spans after `from`.
fn code_ranges(text: &str, from: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = from;
    let mut fence_open: Option<usize> = None;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"```") {
            match fence_open.take() {
                Some(s) => {
                    out.push((s, i + 3));
                }
                None => fence_open = Some(i),
            }
            i += 3;
            continue;
        }
        if fence_open.is_none() && bytes[i] == b'`' {
            // Inline code: up to the next backtick on the same line.
            let line_end = text[i + 1..].find('\n').map(|n| i + 1 + n).unwrap_or(text.len());
            if let Some(n) = text[i + 1..line_end].find('`') {
                out.push((i, i + 1 + n + 1));
                i += n + 2;
                continue;
            }
        }
        i += 1;
    }
    if let Some(s) = fence_open {
        out.push((s, text.len()));
    }
    out
}

/// Length in units: one per ASCII character, three per CJK / kana / Hangul character,
/// one per other character.
pub fn units(s: &str) -> usize {
    if s.is_ascii() {
        return s.len();
    }
    s.chars()
        .map(|c| match c as u32 {
            0..=0x7f => 1,
            0x2e80..=0x9fff | 0xac00..=0xd7af | 0xf900..=0xfaff | 0xff00..=0xffef => 3,
            _ => 1,
        })
        .sum()
}

/// Whether the match at `at` sits right after an opening quotation mark (the phrase is
/// being quoted, not said). Finnish and Swedish open a quotation with `”` or `»`, German
/// with `„`, French and Russian with `«`, so each of those counts as an opening mark too.
pub fn quoted(text: &str, at: usize) -> bool {
    let before = text[..at].trim_end_matches([' ', '*', '_']);
    before.ends_with(['"', '“', '「', '『', '‘', '”', '„', '«', '»'])
}

/// The end of the sentence that contains byte `at`: the next terminator after it.
pub fn sentence_end(text: &str, at: usize) -> usize {
    text[at..]
        .find(['.', '。', '!', '！', '?', '？', '\n'])
        .map(|i| {
            let c = text[at + i..].chars().next().map(char::len_utf8).unwrap_or(1);
            at + i + c
        })
        .unwrap_or(text.len())
}
