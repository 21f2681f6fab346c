//! What a stream token is: the unit a stream's hold-back window counts, and how a logged
//! answer is cut into tokens to replay it as a stream.
//!
//! The streaming target is "decided within the first 16 tokens", and a token is the
//! provider's: Qwen's tokenizer puts about 1.4 Chinese characters in a token, and cuts an
//! English word into 1.2 to 1.4 tokens and a Finnish one into about 3. Counting a word or a
//! CJK character as one token (the mock provider's split, [`split_pieces`]) gives a 16-token
//! window roughly 12 English words of Qwen's, 5 Finnish words, or 22 Chinese characters, so
//! figures in those units overstate English and Finnish and understate Chinese.
//!
//! [`TokenSplit::Qwen`] is Qwen's own byte-level BPE (151,643 merges, tiktoken format: the
//! vocabulary Qwen, Qwen2, Qwen2.5 and Qwen3 share), read from `qwen.tiktoken` as the
//! DashScope SDK wheel ships it (`dashscope==2.0.2`, Apache-2.0, whose `dashscope.tokenizers`
//! counts tokens with it). `scripts/setup-models.sh` imports it into the hf-hub cache, pinned
//! by sha256 in models/qwen-tokenizer.toml. [`TokenSplit::Pieces`] is the fallback where it
//! is not installed. The BPE itself is `tiktoken-rs`, the maintained Rust port of OpenAI's
//! tiktoken; this module only reads the rank file and makes each piece valid UTF-8.
//!
//! ```no_run
//! use refusal_guard::tokens::TokenSplit;
//!
//! let (split, notice) = TokenSplit::best_installed();
//! if let Some(n) = notice {
//!     eprintln!("{n}");
//! }
//! let chunks = split.chunks("抱歉，我无法回答这个问题。");
//! assert_eq!(chunks.iter().map(|(piece, _)| piece.as_str()).collect::<String>(), "抱歉，我无法回答这个问题。");
//! let tokens: usize = chunks.iter().map(|(_, n)| n).sum();
//! println!("{tokens} tokens of {}", split.unit());
//! ```

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use tiktoken_rs::{CoreBPE, Rank};

use crate::classify::ClassifyError;
pub use crate::mock::split_pieces;

/// The manifest name of Qwen's tokenizer (models/qwen-tokenizer.toml).
pub const QWEN_TOKENIZER: &str = "qwen-tokenizer";

/// Qwen's pre-tokenisation pattern, as the DashScope SDK's `qwen_tokenizer.py` and Qwen2's
/// `tokenizer.json` give it: words with one leading non-letter, single digits, runs of
/// punctuation, and whitespace.
const QWEN_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How many ranks Qwen's file holds: a file with another count is not Qwen's.
const QWEN_RANKS: usize = 151_643;

/// Qwen's byte-level BPE.
pub struct QwenBpe {
    bpe: CoreBPE,
}

impl std::fmt::Debug for QwenBpe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QwenBpe")
    }
}

impl QwenBpe {
    /// Reads a tiktoken rank file (`base64-token rank` per line).
    pub fn load(path: &Path) -> Result<Self, ClassifyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ClassifyError::Invalid(format!("cannot read {}: {e}", path.display())))?;
        Self::from_ranks(&text).map_err(|e| ClassifyError::Invalid(format!("{}: {e}", path.display())))
    }

    /// Parses the rank file's text.
    fn from_ranks(text: &str) -> Result<Self, String> {
        let mut ranks = Vec::with_capacity(QWEN_RANKS);
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let bad = || format!("line {} is not `base64-token rank`", n + 1);
            let (token, rank) = line.split_once(' ').ok_or_else(bad)?;
            let token = base64::engine::general_purpose::STANDARD
                .decode(token)
                .map_err(|_| bad())?;
            let rank: Rank = rank.trim().parse().map_err(|_| bad())?;
            ranks.push((token, rank));
        }
        if ranks.len() != QWEN_RANKS {
            return Err(format!(
                "{} ranks, Qwen's tokenizer has {QWEN_RANKS}",
                ranks.len()
            ));
        }
        let bpe = CoreBPE::new(ranks.into_iter().collect(), Default::default(), QWEN_PATTERN)
            .map_err(|e| e.to_string())?;
        Ok(Self { bpe })
    }

    /// Reads it from the hf-hub cache, where `scripts/setup-models.sh` imports it.
    pub fn from_cache() -> Result<Self, ClassifyError> {
        let manifest = crate::hub::find_manifest(QWEN_TOKENIZER)?;
        Self::load(&crate::hub::resolve(&manifest, "qwen.tiktoken")?)
    }

    /// The token ids of `text`.
    pub fn encode(&self, text: &str) -> Vec<Rank> {
        self.bpe.encode_ordinary(text)
    }

    /// `text` cut into Qwen's tokens, each piece the text of one token, or of the few
    /// tokens that together make one character a single token does not (a rare CJK
    /// character is two or three byte-level tokens; a stream cannot send half of it).
    /// Joining the pieces gives the text back. With each piece, how many tokens it holds.
    pub fn pieces(&self, text: &str) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        let mut bytes = Vec::new();
        let mut held = 0usize;
        for rank in self.encode(text) {
            // Every rank came from the encoder, so decoding cannot fail.
            bytes.extend(self.bpe.decode_bytes(&[rank]).unwrap_or_default());
            held += 1;
            if let Ok(piece) = std::str::from_utf8(&bytes) {
                out.push((piece.to_string(), held));
                bytes.clear();
                held = 0;
            }
        }
        if !bytes.is_empty() {
            out.push((String::from_utf8_lossy(&bytes).into_owned(), held));
        }
        out
    }
}

/// The unit a `--stream-tokens` flag asks for (`eval`, `train`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StreamTokens {
    /// Qwen's own BPE: the provider's tokens, what the gateway's guard counts.
    Qwen,
    /// A word with its leading space, or one CJK character.
    Words,
}

/// How an answer is cut into stream tokens.
#[derive(Debug, Clone)]
pub enum TokenSplit {
    /// Qwen's tokens.
    Qwen(Arc<QwenBpe>),
    /// A word with its leading space, or one CJK character ([`split_pieces`]): the mock
    /// provider's split, and the fallback without Qwen's tokenizer.
    Pieces,
}

impl TokenSplit {
    /// Qwen's tokens where the tokenizer is installed, else [`TokenSplit::Pieces`] with a
    /// one-line notice that says so and how to install it.
    pub fn best_installed() -> (Self, Option<String>) {
        match QwenBpe::from_cache() {
            Ok(bpe) => (Self::Qwen(Arc::new(bpe)), None),
            Err(e) => (
                Self::Pieces,
                Some(format!(
                    "note: Qwen's tokenizer is not installed, so stream windows count words and CJK \
                     characters as tokens ({e})"
                )),
            ),
        }
    }

    /// The split a `--stream-tokens` flag names: Qwen's (an error where its tokenizer is not
    /// installed), words, or, unset, [`TokenSplit::best_installed`] with its notice.
    pub fn from_flag(flag: Option<StreamTokens>) -> Result<(Self, Option<String>), String> {
        match flag {
            None => Ok(Self::best_installed()),
            Some(StreamTokens::Qwen) => QwenBpe::from_cache()
                .map(|b| (Self::Qwen(Arc::new(b)), None))
                .map_err(|e| format!("--stream-tokens qwen: {e}")),
            Some(StreamTokens::Words) => Ok((Self::Pieces, None)),
        }
    }

    /// What one token is, for reports.
    pub fn unit(&self) -> &'static str {
        match self {
            Self::Qwen(_) => "Qwen's tokens",
            Self::Pieces => "words and CJK characters",
        }
    }

    /// `text` cut into stream chunks, each with the tokens it holds; the chunks join to the
    /// text.
    pub fn chunks(&self, text: &str) -> Vec<(String, usize)> {
        match self {
            Self::Qwen(bpe) => bpe.pieces(text),
            Self::Pieces => split_pieces(text).into_iter().map(|p| (p, 1)).collect(),
        }
    }

    /// The first `tokens` tokens of `text`: a stream window's opening, as `train` cuts its
    /// window rows. In words it is [`crate::judge::features::window`]'s cut, the one the
    /// shipped models were trained with: a word starts at a letter or digit after anything
    /// else and punctuation standing alone counts for nothing, where [`split_pieces`]
    /// (the mock's stream chunks) makes a lone dash or ellipsis a piece. Cutting windows by
    /// the pieces instead moved 26 window rows of the shipped training data and changed
    /// every model a full `train` writes (found 2026-12-07).
    pub fn opening(&self, text: &str, tokens: usize) -> String {
        if let Self::Pieces = self {
            return crate::judge::features::window(text, tokens).to_string();
        }
        let mut out = String::new();
        let mut count = 0;
        for (piece, n) in self.chunks(text) {
            if count + n > tokens {
                break;
            }
            count += n;
            out.push_str(&piece);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_join_to_the_text_and_count_one_each() {
        let text = "Sorry, I can't help. 抱歉，我不能。";
        let chunks = TokenSplit::Pieces.chunks(text);
        assert_eq!(chunks.iter().map(|(p, _)| p.as_str()).collect::<String>(), text);
        assert!(chunks.iter().all(|(_, n)| *n == 1));
        assert_eq!(TokenSplit::Pieces.opening(text, 2), "Sorry, I ");
    }

    #[test]
    fn a_window_in_words_counts_words_not_lone_punctuation() {
        // The cut the shipped models were trained with: the dash is no word. As stream
        // pieces it would be one, and the window would end at "No —".
        let text = "No — not that. 不行。";
        assert_eq!(TokenSplit::Pieces.opening(text, 2), "No — not ");
        assert_eq!(TokenSplit::Pieces.opening(text, 4), "No — not that. 不");
        assert_eq!(TokenSplit::Pieces.opening(text, 40), text);
    }

    #[test]
    fn a_rank_file_of_the_wrong_size_or_shape_is_refused_by_name() {
        let err = QwenBpe::from_ranks("IQ== 0\nIg== 1\n").unwrap_err();
        assert!(err.contains("2 ranks") && err.contains("151643"), "{err}");
        let err = QwenBpe::from_ranks("IQ==0\n").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
        let err = QwenBpe::from_ranks("!!! 0\n").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
    }
}
