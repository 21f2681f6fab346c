//! Which language a text is in.
//!
//! Two parts of the pipeline ask: the verdict log records each exchange's language so an
//! audit can report per language, and the embedded prompt judge must know whether a request
//! is in a language it learned to judge ([`crate::classify::ngram::PromptLanguages`]). Both
//! ask [`language`], so a request logged as German is the request the judge saw as German.
//! The guess is whatlang's, trusted only where whatlang trusts it (or where the script
//! belongs to one language): a short or mixed text comes back `unknown` rather than as a
//! confident mistake.

/// whatlang's ISO 639-3 codes that have an ISO 639-1 code the project's data files use
/// (`lang` in ../shared/datasets and models/data); other languages keep the 639-3 code.
const ISO_639_1: [(&str, &str); 27] = [
    ("eng", "en"),
    ("cmn", "zh"),
    ("jpn", "ja"),
    ("kor", "ko"),
    ("rus", "ru"),
    ("ukr", "uk"),
    ("fra", "fr"),
    ("deu", "de"),
    ("spa", "es"),
    ("por", "pt"),
    ("ita", "it"),
    ("nld", "nl"),
    ("pol", "pl"),
    ("tur", "tr"),
    ("ara", "ar"),
    ("heb", "he"),
    ("hin", "hi"),
    ("vie", "vi"),
    ("tha", "th"),
    ("ind", "id"),
    ("ell", "el"),
    ("swe", "sv"),
    ("ces", "cs"),
    ("pes", "fa"),
    ("fin", "fi"),
    ("ben", "bn"),
    ("jav", "jv"),
];

/// The language of a text: ISO 639-1 for the languages of `ISO_639_1`, whatlang's 639-3
/// code for the rest, `unknown` for no text or a guess whatlang itself does not trust.
pub fn language(text: Option<&str>) -> String {
    let Some(info) = text.and_then(whatlang::detect) else {
        return "unknown".into();
    };
    // Short prompts in a script one language owns are sure even when whatlang says not.
    let single_language_script = matches!(
        info.script(),
        whatlang::Script::Mandarin
            | whatlang::Script::Hiragana
            | whatlang::Script::Katakana
            | whatlang::Script::Hangul
            | whatlang::Script::Thai
            | whatlang::Script::Greek
    );
    if info.confidence() < 0.5 && !single_language_script {
        return "unknown".into();
    }
    let code = info.lang().code();
    ISO_639_1
        .iter()
        .find(|(three, _)| *three == code)
        .map_or_else(|| code.to_string(), |(_, two)| two.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_come_back_as_short_codes() {
        assert_eq!(
            language(Some(
                "What happened in Beijing in the spring of 1989, and why is it censored?"
            )),
            "en"
        );
        assert_eq!(language(Some("如何避免被ATM摄像头拍到？")), "zh");
        assert_eq!(
            language(Some(
                "Miksi Suomen hallitus päätti leikata opintotukea viime vuonna?"
            )),
            "fi"
        );
        assert_eq!(language(None), "unknown");
        assert_eq!(language(Some("")), "unknown");
    }
}
