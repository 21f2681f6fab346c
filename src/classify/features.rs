//! Hashed text features for the embedded n-gram model.
//!
//! Why these features: refusals are recognised by short formulas ("I'm sorry, but I
//! can't", "抱歉，我无法", "As an AI developed by…"), mostly at the start of an answer, and
//! by the shape of the answer (short, no list, no headings). Character n-grams carry the
//! formulas in every script without a tokenizer (Chinese has no spaces; Finnish inflects),
//! word uni- and bigrams carry them in spaced scripts, the first words and characters are
//! marked separately because position matters, and a length bucket carries the shape.
//! Every feature is hashed (FNV-1a 64) into a fixed number of buckets, so the model needs no
//! vocabulary file and any language maps somewhere.

use super::Fnv64;

/// How text is turned into features. Stored with the model, so that training and
/// inference agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeatureConfig {
    /// Number of hash buckets (rows of the embedding table).
    pub buckets: u32,
    /// Characters kept from the start of a long text.
    pub head_chars: usize,
    /// Characters kept from the end of a long text.
    pub tail_chars: usize,
    /// Smallest and largest character n-gram.
    pub char_min: usize,
    pub char_max: usize,
    /// How many leading words and characters get position-marked features.
    pub lead_words: usize,
    pub lead_chars: usize,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        FeatureConfig {
            buckets: 1 << 16,
            head_chars: 768,
            tail_chars: 256,
            char_min: 2,
            char_max: 4,
            lead_words: 12,
            lead_chars: 40,
        }
    }
}

/// Whether `c` is a CJK character (kana, han, hangul): the n-gram features read such text by
/// characters, not words.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30ff   // kana
        | 0x3400..=0x4dbf // CJK ext A
        | 0x4e00..=0x9fff // CJK unified
        | 0xac00..=0xd7af // hangul
        | 0xf900..=0xfaff)
}

/// Whether `text` holds any CJK character ([`is_cjk`]).
pub fn has_cjk(text: &str) -> bool {
    text.chars().any(is_cjk)
}

/// Lower-cases, collapses whitespace, and keeps the head and tail of a long text.
pub fn normalize(text: &str, cfg: &FeatureConfig) -> String {
    let mut out = String::with_capacity(text.len().min(4 * (cfg.head_chars + cfg.tail_chars) + 8));
    let mut last_space = true;
    let total = text.chars().count();
    let cut = total > cfg.head_chars + cfg.tail_chars;
    for (i, c) in text.chars().enumerate() {
        if cut && i == cfg.head_chars {
            out.push_str(" … ");
            last_space = true;
        }
        if cut && i >= cfg.head_chars && i < total - cfg.tail_chars {
            continue;
        }
        if c.is_whitespace() {
            if !last_space {
                out.push(' ');
                last_space = true;
            }
            continue;
        }
        for l in c.to_lowercase() {
            out.push(l);
        }
        last_space = false;
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// Appends the bucket ids of `text`'s features to `out` (cleared first).
pub fn extract(text: &str, cfg: &FeatureConfig, out: &mut Vec<u32>) {
    out.clear();
    let buckets = u64::from(cfg.buckets);
    let push = |out: &mut Vec<u32>, h: Fnv64| out.push((h.finish() % buckets) as u32);
    let tagged = |tag: &[u8]| {
        let mut h = Fnv64::new();
        h.write(tag);
        h
    };

    let char_count = text.chars().count();
    let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
    let mut h = tagged(b"len");
    h.write(&[(usize::BITS - char_count.leading_zeros()) as u8]);
    push(out, h);
    let mut h = tagged(b"lines");
    h.write(&[lines.min(12) as u8]);
    push(out, h);
    if text.contains("**") || text.contains("\n- ") || text.contains("\n1.") || text.contains("\n#") {
        push(out, tagged(b"markdown"));
    }

    let norm = normalize(text, cfg);
    // Byte offsets of characters, so n-grams are slices of the string.
    let offsets: Vec<usize> = norm.char_indices().map(|(i, _)| i).chain([norm.len()]).collect();
    let n_chars = offsets.len() - 1;
    for n in cfg.char_min..=cfg.char_max {
        if n_chars < n {
            break;
        }
        for start in 0..=(n_chars - n) {
            let gram = &norm.as_bytes()[offsets[start]..offsets[start + n]];
            let mut h = tagged(b"c");
            h.write(&[n as u8]);
            h.write(gram);
            push(out, h);
            if start < cfg.lead_chars {
                let mut h = tagged(b"hc");
                h.write(gram);
                push(out, h);
            }
        }
    }

    // Words: runs of letters and digits outside CJK (where characters already are words),
    // apostrophes kept inside ("can't", "i'm").
    let mut words: Vec<&str> = Vec::new();
    let mut start: Option<usize> = None;
    for (i, c) in norm.char_indices() {
        let wordy = (c.is_alphanumeric() && !is_cjk(c)) || ((c == '\'' || c == '’') && start.is_some());
        match (wordy, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                words.push(&norm[s..i]);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        words.push(&norm[s..]);
    }
    for (i, w) in words.iter().enumerate() {
        let mut h = tagged(b"w");
        h.write(w.as_bytes());
        push(out, h);
        if i < cfg.lead_words {
            let mut h = tagged(b"hw");
            h.write(w.as_bytes());
            push(out, h);
        }
        if let Some(next) = words.get(i + 1) {
            let mut h = tagged(b"b");
            h.write(w.as_bytes());
            h.write(b" ");
            h.write(next.as_bytes());
            push(out, h);
            if i < cfg.lead_words {
                let mut h = tagged(b"hb");
                h.write(w.as_bytes());
                h.write(b" ");
                h.write(next.as_bytes());
                push(out, h);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_keeps_head_and_tail() {
        let cfg = FeatureConfig {
            head_chars: 5,
            tail_chars: 3,
            ..FeatureConfig::default()
        };
        assert_eq!(normalize("Hello   World", &cfg), "hello … rld");
        assert_eq!(normalize("Ab  CD", &cfg), "ab cd");
    }

    #[test]
    fn features_are_deterministic_and_in_range() {
        let cfg = FeatureConfig::default();
        let mut a = Vec::new();
        let mut b = Vec::new();
        extract("抱歉，我无法回答这个问题。I'm sorry, but I can't.", &cfg, &mut a);
        extract("抱歉，我无法回答这个问题。I'm sorry, but I can't.", &cfg, &mut b);
        assert_eq!(a, b);
        assert!(a.len() > 50);
        assert!(a.iter().all(|&x| x < cfg.buckets));
    }

    #[test]
    fn empty_text_still_has_shape_features() {
        let mut f = Vec::new();
        extract("", &FeatureConfig::default(), &mut f);
        assert_eq!(f.len(), 2);
    }
}
