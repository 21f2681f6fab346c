//! The pattern detector over arbitrary UTF-8: it must not panic, whatever the text and
//! however complete it claims to be, and every span it reports must be a byte range of
//! the input on character boundaries whose text is what the span says (or its truncated
//! prefix, for long spans).
#![no_main]

use libfuzzer_sys::fuzz_target;
use refusal_guard::detect::patterns::Patterns;
use refusal_guard::detect::Completeness;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let patterns = Patterns::builtin();
    for completeness in [
        Completeness::Complete,
        Completeness::Partial,
        Completeness::Truncated,
    ] {
        for evidence in patterns.scan_with(text, completeness) {
            assert!(
                (0.0..=1.0).contains(&evidence.score),
                "score {} out of range",
                evidence.score
            );
            let Some(span) = evidence.span else { continue };
            assert!(span.start <= span.end, "{span:?}");
            assert!(
                span.end <= text.len(),
                "{span:?} past the end of {} bytes",
                text.len()
            );
            assert!(
                text.is_char_boundary(span.start),
                "{span:?} start inside a character"
            );
            assert!(text.is_char_boundary(span.end), "{span:?} end inside a character");
            let covered = &text[span.start..span.end];
            let shown = span.text.strip_suffix('…').unwrap_or(&span.text);
            assert!(
                covered == span.text || covered.starts_with(shown),
                "span text {:?} is not the text it covers {covered:?}",
                span.text
            );
        }
    }
});
