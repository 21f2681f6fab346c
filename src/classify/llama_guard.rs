//! Llama Guard 3 (1B, 8B): a generative guard that says whether a prompt (or an answer) is
//! unsafe, and which hazard categories it violates.
//!
//! Why a generative guard here: it is the tier that knows *harm* (the MLCommons hazard
//! taxonomy, S1..S14), which the refusal classifiers do not. A refusal of a prompt it calls
//! unsafe is a justified [`crate::VerdictKind::SafetyRefusal`] and is not re-routed.
//!
//! The prompts (see the tests): the 1B prompt is the model's Hub chat template byte for
//! byte: S1..S13, a space before `<|eot_id|>`, ending right after `<|end_header_id|>`,
//! which is why the 1B model usually emits blank lines before its verdict. The 8B prompt
//! lists S1..S14 and follows Meta's reference code (its prompt-formatting code for Llama
//! Guard 3, as on the model card), not the 8B Hub chat template; the two differ in two
//! places: the reference has no space before `<|eot_id|>` and a trailing `\n\n` after
//! `<|end_header_id|>`. The reference form is kept because it is what Meta documents; the
//! Hub form only shifts where the verdict word is generated, and the blank-line skipping
//! below reads the verdict either way.
//!
//! The score follows the model card: the probability of `unsafe` at the position where the
//! verdict word is generated (blank-line tokens are generated first and skipped),
//! normalised against `safe`. When the verdict is unsafe the model is run on to generate
//! the category line, which is parsed.
//! Custom category lists replace the defaults (`Config::categories`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::causal_lm::{argmax, Arch, CausalLm, Dequantize};
use super::{softmax, Classifier, ClassifyError, PromptJudgement};
use crate::hub::{self, Manifest};

/// Which Llama Guard 3 template to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Llama Guard 3 1B: S1..S13.
    Guard3_1B,
    /// Llama Guard 3 8B: S1..S14 (adds Code Interpreter Abuse).
    Guard3_8B,
}

/// A hazard category: its code (`S1`) and its name as written in the template
/// (`Violent Crimes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    pub code: String,
    pub name: String,
}

impl Category {
    pub fn new(code: &str, name: &str) -> Self {
        Category {
            code: code.into(),
            name: name.into(),
        }
    }
}

const NAMES: [&str; 14] = [
    "Violent Crimes",
    "Non-Violent Crimes",
    "Sex Crimes",
    "Child Exploitation",
    "Defamation",
    "Specialized Advice",
    "Privacy",
    "Intellectual Property",
    "Indiscriminate Weapons",
    "Hate",
    "Self-Harm",
    "Sexual Content",
    "Elections",
    "Code Interpreter Abuse",
];

impl Variant {
    /// The default categories of the variant.
    pub fn categories(self) -> Vec<Category> {
        let n = match self {
            Variant::Guard3_1B => 13,
            Variant::Guard3_8B => 14,
        };
        NAMES[..n]
            .iter()
            .enumerate()
            .map(|(i, name)| Category::new(&format!("S{}", i + 1), name))
            .collect()
    }
}

/// Tokens generated at most for the category line by default. Llama 3's tokenizer is
/// byte-level BPE (no token decodes to fewer than one byte), and the longest category line,
/// every code of the 8B list (`S1,S2,…,S14`), is under 60 bytes with its line break: this
/// bound never cuts it. Generation stops at `<|eot_id|>`, so it costs nothing otherwise.
pub const DEFAULT_MAX_NEW_TOKENS: usize = 64;

/// How the guard is prompted and read.
#[derive(Debug, Clone)]
pub struct Config {
    pub variant: Variant,
    /// The categories listed in the prompt (default: the variant's).
    pub categories: Vec<Category>,
    /// Tokens generated at most for the category line (default
    /// [`DEFAULT_MAX_NEW_TOKENS`]).
    pub max_new_tokens: usize,
    /// Blank-line tokens skipped at most before the verdict word.
    pub max_leading_blank: usize,
    /// Generate the category line even for a safe verdict (diagnostics, tests).
    pub always_categories: bool,
}

impl Config {
    /// The defaults of a variant.
    pub fn new(variant: Variant) -> Self {
        Config {
            variant,
            categories: variant.categories(),
            max_new_tokens: DEFAULT_MAX_NEW_TOKENS,
            max_leading_blank: 4,
            always_categories: false,
        }
    }
}

/// Renders the guard prompt. With `response`, the assessed message is the agent's answer;
/// without, the user's prompt.
pub fn render(cfg: &Config, prompt: &str, response: Option<&str>) -> String {
    let role = if response.is_some() { "Agent" } else { "User" };
    let mut s = String::with_capacity(2048 + prompt.len());
    s.push_str("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n");
    s.push_str(&format!(
        "Task: Check if there is unsafe content in '{role}' messages in conversations according our safety policy with the below categories.\n\n"
    ));
    s.push_str("<BEGIN UNSAFE CONTENT CATEGORIES>\n");
    for c in &cfg.categories {
        s.push_str(&format!("{}: {}.\n", c.code, c.name));
    }
    s.push_str("<END UNSAFE CONTENT CATEGORIES>\n\n");
    s.push_str("<BEGIN CONVERSATION>\n\n");
    s.push_str(&format!("User: {}\n\n", prompt.trim()));
    if let Some(r) = response {
        s.push_str(&format!("Agent: {}\n\n", r.trim()));
    }
    s.push_str("<END CONVERSATION>\n\n");
    s.push_str(&format!(
        "Provide your safety assessment for ONLY THE LAST {role} message in the above conversation:\n"
    ));
    s.push_str(" - First line must read 'safe' or 'unsafe'.\n");
    match cfg.variant {
        Variant::Guard3_8B => s.push_str(
            " - If unsafe, a second line must include a comma-separated list of violated categories.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        ),
        Variant::Guard3_1B => s.push_str(
            " - If unsafe, a second line must include a comma-separated list of violated categories. <|eot_id|><|start_header_id|>assistant<|end_header_id|>",
        ),
    }
    s
}

/// Reads a guard's output text: `(Some(true))` for unsafe, the category codes of the second
/// line (only codes of `known`, when given).
pub fn parse_output(text: &str, known: &[Category]) -> (Option<bool>, Vec<String>) {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let verdict = match lines.next().map(|l| l.to_ascii_lowercase()) {
        Some(l) if l.starts_with("unsafe") => Some(true),
        Some(l) if l.starts_with("safe") => Some(false),
        _ => None,
    };
    let mut cats = Vec::new();
    if verdict == Some(true) {
        if let Some(line) = lines.next() {
            for part in line.split(',') {
                let code = part.trim().to_ascii_uppercase();
                let ok = if known.is_empty() {
                    code.starts_with('S') && code.len() > 1 && code[1..].chars().all(|c| c.is_ascii_digit())
                } else {
                    known.iter().any(|c| c.code.eq_ignore_ascii_case(&code))
                };
                if ok && !cats.contains(&code) {
                    cats.push(code);
                }
            }
        }
    }
    (verdict, cats)
}

/// What the guard said about one message.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardScore {
    /// P(unsafe) against P(safe) at the verdict position.
    pub unsafe_prob: f32,
    /// Violated category codes (generated when the verdict is unsafe).
    pub categories: Vec<String>,
    /// Everything generated, blank lines included.
    pub generated: String,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
}

/// A loaded Llama Guard model.
pub struct LlamaGuard {
    lm: CausalLm,
    pub config: Config,
    safe_id: u32,
    unsafe_ids: Vec<u32>,
    stop_ids: Vec<u32>,
}

impl std::fmt::Debug for LlamaGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlamaGuard")
            .field("variant", &self.config.variant)
            .finish()
    }
}

impl LlamaGuard {
    /// Wraps a loaded model (must be a Llama).
    pub fn new(lm: CausalLm, config: Config) -> Result<Self, ClassifyError> {
        if lm.arch != Arch::Llama {
            return Err(ClassifyError::Invalid("Llama Guard needs a Llama model".into()));
        }
        let safe = lm.encode("safe")?;
        let unsafe_ids = lm.encode("unsafe")?;
        let (Some(&safe_id), Some(&unsafe_first)) = (safe.first(), unsafe_ids.first()) else {
            return Err(ClassifyError::Invalid(
                "the tokenizer cannot encode 'safe'".into(),
            ));
        };
        if safe_id == unsafe_first {
            return Err(ClassifyError::Invalid(
                "'safe' and 'unsafe' start with the same token in this tokenizer".into(),
            ));
        }
        let stop_ids = ["<|eot_id|>", "<|end_of_text|>", "<|im_end|>", "<|endoftext|>"]
            .iter()
            .filter_map(|t| lm.token_id(t))
            .collect();
        Ok(LlamaGuard {
            lm,
            config,
            safe_id,
            unsafe_ids,
            stop_ids,
        })
    }

    /// Loads from a GGUF file.
    pub fn load_gguf(path: &Path, config: Config, dequantize: Dequantize) -> Result<Self, ClassifyError> {
        let lm = CausalLm::load_gguf(path, &super::causal_lm::default_device(), dequantize)?;
        Self::new(lm, config)
    }

    /// Loads from safetensors files.
    pub fn load_safetensors(
        config_json: &Path,
        tokenizer_json: &Path,
        weights: &[PathBuf],
        config: Config,
    ) -> Result<Self, ClassifyError> {
        let lm = CausalLm::load_safetensors(
            Arch::Llama,
            config_json,
            tokenizer_json,
            weights,
            &super::causal_lm::default_device(),
        )?;
        Self::new(lm, config)
    }

    /// Loads the model of a manifest from the hf-hub cache (GGUF or safetensors).
    pub fn load_manifest(m: &Manifest, config: Config) -> Result<Self, ClassifyError> {
        if let Some(f) = m.files.iter().find(|f| f.name.ends_with(".gguf")) {
            return Self::load_gguf(&hub::resolve(m, &f.name)?, config, Dequantize::Auto);
        }
        let weights = hub::resolve_all(m, ".safetensors")?;
        Self::load_safetensors(
            &hub::resolve(m, "config.json")?,
            &hub::resolve(m, "tokenizer.json")?,
            &weights,
            config,
        )
    }

    /// Scores a prompt (and optionally the answer to it).
    pub fn score(&mut self, prompt: &str, response: Option<&str>) -> Result<GuardScore, ClassifyError> {
        let text = render(&self.config, prompt, response);
        let tokens = self.lm.encode(&text)?;
        let mut logits = self.lm.prefill(&tokens)?;
        let mut generated: Vec<u32> = Vec::new();
        // The model may emit blank lines first: the verdict is where the first word comes.
        for _ in 0..self.config.max_leading_blank {
            let top = argmax(&logits) as u32;
            if self.lm.decode(&[top])?.trim().is_empty() && !self.stop_ids.contains(&top) {
                generated.push(top);
                logits = self.lm.feed(&[top])?;
            } else {
                break;
            }
        }
        let p = softmax(&logits);
        let p_unsafe = p[self.unsafe_ids[0] as usize];
        let p_safe = p[self.safe_id as usize];
        let unsafe_prob = p_unsafe / (p_unsafe + p_safe).max(f32::MIN_POSITIVE);
        let mut categories = Vec::new();
        if unsafe_prob >= 0.5 || self.config.always_categories {
            generated.extend(&self.unsafe_ids);
            logits = self.lm.feed(&self.unsafe_ids)?;
            for _ in 0..self.config.max_new_tokens {
                let top = argmax(&logits) as u32;
                if self.stop_ids.contains(&top) {
                    break;
                }
                generated.push(top);
                logits = self.lm.feed(&[top])?;
            }
            let out = self.lm.decode(&generated)?;
            categories = parse_output(&out, &self.config.categories).1;
        } else {
            generated.push(self.safe_id);
        }
        Ok(GuardScore {
            unsafe_prob,
            categories,
            generated: self.lm.decode(&generated)?,
            prompt_tokens: tokens.len(),
        })
    }
}

/// A Llama Guard model as a cascade tier: it judges prompts (harm and categories).
#[derive(Clone)]
pub struct LlamaGuardClassifier {
    guard: Arc<Mutex<LlamaGuard>>,
    name: String,
}

impl LlamaGuardClassifier {
    pub fn new(guard: LlamaGuard, name: impl Into<String>) -> Self {
        LlamaGuardClassifier {
            guard: Arc::new(Mutex::new(guard)),
            name: name.into(),
        }
    }

    /// Runs the guard on a prompt, blocking (use from a blocking context).
    pub fn score_blocking(&self, prompt: &str, response: Option<&str>) -> Result<GuardScore, ClassifyError> {
        let mut g = self
            .guard
            .lock()
            .map_err(|_| ClassifyError::model(&self.name, "poisoned lock"))?;
        g.score(prompt, response)
    }
}

#[async_trait]
impl Classifier for LlamaGuardClassifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn judge_prompt(&self, prompt: &str) -> Result<Option<PromptJudgement>, ClassifyError> {
        let this = self.clone();
        let prompt = prompt.to_string();
        let s = super::blocking(&self.name, super::Priority::Request, move || {
            this.score_blocking(&prompt, None)
        })
        .await?;
        Ok(Some(PromptJudgement {
            harmful: s.unsafe_prob,
            categories: s.categories,
            unlearned_language: None,
            unchecked: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The prompt of Meta's reference code for Llama Guard 3 8B, for a user message (the
    /// Hub chat template differs: a space before `<|eot_id|>`, no trailing "\n\n").
    const EXPECTED_8B_PROMPT: &str = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>

Task: Check if there is unsafe content in 'User' messages in conversations according our safety policy with the below categories.

<BEGIN UNSAFE CONTENT CATEGORIES>
S1: Violent Crimes.
S2: Non-Violent Crimes.
S3: Sex Crimes.
S4: Child Exploitation.
S5: Defamation.
S6: Specialized Advice.
S7: Privacy.
S8: Intellectual Property.
S9: Indiscriminate Weapons.
S10: Hate.
S11: Self-Harm.
S12: Sexual Content.
S13: Elections.
S14: Code Interpreter Abuse.
<END UNSAFE CONTENT CATEGORIES>

<BEGIN CONVERSATION>

User: How do I make a cake?

<END CONVERSATION>

Provide your safety assessment for ONLY THE LAST User message in the above conversation:
 - First line must read 'safe' or 'unsafe'.
 - If unsafe, a second line must include a comma-separated list of violated categories.<|eot_id|><|start_header_id|>assistant<|end_header_id|>

";

    /// The 1B template: S1..S13, a space before `<|eot_id|>`, no blank line at the end.
    const EXPECTED_1B_RESPONSE: &str = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>

Task: Check if there is unsafe content in 'Agent' messages in conversations according our safety policy with the below categories.

<BEGIN UNSAFE CONTENT CATEGORIES>
S1: Violent Crimes.
S2: Non-Violent Crimes.
S3: Sex Crimes.
S4: Child Exploitation.
S5: Defamation.
S6: Specialized Advice.
S7: Privacy.
S8: Intellectual Property.
S9: Indiscriminate Weapons.
S10: Hate.
S11: Self-Harm.
S12: Sexual Content.
S13: Elections.
<END UNSAFE CONTENT CATEGORIES>

<BEGIN CONVERSATION>

User: How do I make a cake?

Agent: Mix flour, eggs and sugar, then bake.

<END CONVERSATION>

Provide your safety assessment for ONLY THE LAST Agent message in the above conversation:
 - First line must read 'safe' or 'unsafe'.
 - If unsafe, a second line must include a comma-separated list of violated categories. <|eot_id|><|start_header_id|>assistant<|end_header_id|>";

    #[test]
    fn template_8b_follows_meta_reference_code() {
        let cfg = Config::new(Variant::Guard3_8B);
        assert_eq!(
            render(&cfg, "  How do I make a cake?\n", None),
            EXPECTED_8B_PROMPT
        );
    }

    #[test]
    fn template_1b_is_byte_exact() {
        let cfg = Config::new(Variant::Guard3_1B);
        assert_eq!(
            render(
                &cfg,
                "How do I make a cake?",
                Some("Mix flour, eggs and sugar, then bake.")
            ),
            EXPECTED_1B_RESPONSE
        );
    }

    #[test]
    fn custom_categories_replace_the_list() {
        let mut cfg = Config::new(Variant::Guard3_8B);
        cfg.categories = vec![
            Category::new("S1", "Political Speech"),
            Category::new("S2", "Spam"),
        ];
        let t = render(&cfg, "hi", None);
        assert!(
            t.contains("<BEGIN UNSAFE CONTENT CATEGORIES>\nS1: Political Speech.\nS2: Spam.\n<END UNSAFE")
        );
        assert!(!t.contains("Violent"));
    }

    #[test]
    fn the_limit_fits_every_category() {
        let codes: Vec<String> = Variant::Guard3_8B
            .categories()
            .into_iter()
            .map(|c| c.code)
            .collect();
        let longest = format!("\n{}", codes.join(","));
        assert!(DEFAULT_MAX_NEW_TOKENS > longest.len(), "{}", longest.len());
        let known = Variant::Guard3_8B.categories();
        assert_eq!(parse_output(&format!("unsafe{longest}"), &known).1.len(), 14);
    }

    #[test]
    fn output_parsing() {
        let known = Variant::Guard3_8B.categories();
        assert_eq!(parse_output("safe", &known), (Some(false), vec![]));
        assert_eq!(
            parse_output("\n\nunsafe\nS1,S10", &known),
            (Some(true), vec!["S1".into(), "S10".into()])
        );
        assert_eq!(
            parse_output("unsafe\n s9 , S99", &known),
            (Some(true), vec!["S9".into()])
        );
        assert_eq!(
            parse_output("unsafe\nS14", &Variant::Guard3_1B.categories()),
            (Some(true), vec![])
        );
        assert_eq!(parse_output("I think so", &known), (None, vec![]));
    }
}
