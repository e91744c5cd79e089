//! Text analysis: the one place that turns a string into index terms.
//!
//! Documents and queries go through the same [`Analyzer`], so a query term matches a document
//! term exactly when both came from words that analyze alike:
//!
//! ```text
//! "The Runners' running!"  ──unicode_words──▶ The | Runners | running
//!                          ──lowercase──────▶ the | runners | running
//!                          ──stop words─────▶       runners | running     (if configured)
//!                          ──stemming───────▶       runner  | run         (if configured)
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use rust_stemmers::{Algorithm, Stemmer};
use unicode_segmentation::UnicodeSegmentation;

pub use crate::model::config::TextConfig;

/// Terms longer than this many bytes (after lowercasing and stemming) are dropped: they are
/// almost always noise (base64, hashes, URLs without spaces) and would bloat the dictionary.
pub const MAX_TERM_BYTES: usize = 255;

/// The English stop words dropped when [`TextConfig::stop_words`] is set: Lucene's
/// `EnglishAnalyzer.ENGLISH_STOP_WORDS_SET` (33 words), sorted.
pub const ENGLISH_STOP_WORDS: [&str; 33] = [
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

/// Turns text into terms according to a [`TextConfig`]. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Analyzer {
    stemmer: Option<Arc<Stemmer>>,
    stop_words: bool,
}

impl fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Analyzer")
            .field("stem", &self.stemmer.is_some())
            .field("stop_words", &self.stop_words)
            .finish()
    }
}

impl Analyzer {
    /// An analyzer for `cfg`.
    pub fn new(cfg: &TextConfig) -> Self {
        Analyzer {
            stemmer: cfg
                .stem
                .then(|| Arc::new(Stemmer::create(Algorithm::English))),
            stop_words: cfg.stop_words,
        }
    }

    /// The terms of `text`, in order, duplicates kept: [`for_each_term`](Self::for_each_term)
    /// collected (one `String` a token: for queries and short texts).
    pub fn terms(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.for_each_term(text, |t| out.push(t.to_owned()));
        out
    }

    /// Calls `f` with each term of `text`, in order, duplicates kept, without keeping any:
    /// the memory used is one word's, whatever the length of the text.
    ///
    /// 1. Words by Unicode word segmentation (`unicode_words`: UAX #29 word boundaries, keeping
    ///    the segments that contain a letter or digit; "don't" and "3.14" stay one word,
    ///    punctuation and whitespace go).
    /// 2. Lowercased (`str::to_lowercase`; no Unicode normalization or accent folding).
    /// 3. English stop words dropped, if configured (checked before stemming, as Lucene does).
    /// 4. English Snowball stemming, if configured.
    /// 5. Terms longer than [`MAX_TERM_BYTES`] bytes dropped.
    pub fn for_each_term(&self, text: &str, mut f: impl FnMut(&str)) {
        // One buffer for every ASCII word (most of them); other words allocate their own
        // lowercase form, which `str::to_lowercase` gets right (a final sigma, say).
        let mut buf = String::new();
        for word in text.unicode_words() {
            let other;
            let lower: &str = if word.is_ascii() {
                buf.clear();
                buf.push_str(word);
                buf.make_ascii_lowercase();
                &buf
            } else {
                other = word.to_lowercase();
                &other
            };
            if self.stop_words && is_stop_word(lower) {
                continue;
            }
            let term = match &self.stemmer {
                Some(s) => s.stem(lower),
                None => Cow::Borrowed(lower),
            };
            if !term.is_empty() && term.len() <= MAX_TERM_BYTES {
                f(&term);
            }
        }
    }
}

fn is_stop_word(word: &str) -> bool {
    ENGLISH_STOP_WORDS.binary_search(&word).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn plain() -> Analyzer {
        Analyzer::new(&TextConfig::default())
    }

    #[test]
    fn default_config_is_plain() {
        let c = TextConfig::default();
        assert!(!c.stem && !c.stop_words);
        let parsed: TextConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(parsed, c);
        let parsed: TextConfig = serde_json::from_str(r#"{"stem":true}"#).unwrap();
        assert_eq!(parsed, TextConfig::default().stem(true));
    }

    #[test]
    fn punctuation_and_whitespace_split_words() {
        assert_eq!(
            plain().terms("Hello, world!  (tabs\tand\nnewlines) -- e-mail; end."),
            [
                "hello", "world", "tabs", "and", "newlines", "e", "mail", "end"
            ]
        );
        assert_eq!(
            plain().terms("don't stop 3.14 ok"),
            ["don't", "stop", "3.14", "ok"]
        );
        assert!(plain().terms("  ,.;!? -- ").is_empty());
        assert!(plain().terms("").is_empty());
    }

    #[test]
    fn lowercases_unicode_and_keeps_non_latin_words() {
        assert_eq!(
            plain().terms("CAFÉ Straße ÉCOLE"),
            ["café", "straße", "école"]
        );
        assert_eq!(plain().terms("Привет, МИР"), ["привет", "мир"]);
        // Ideographs are one word each under UAX #29.
        assert_eq!(plain().terms("東京タワー"), ["東", "京", "タワー"]);
        assert_eq!(plain().terms("ΣΟΦΙΑ"), ["σοφια"]);
    }

    #[test]
    fn duplicates_and_order_are_kept() {
        assert_eq!(plain().terms("b a b A"), ["b", "a", "b", "a"]);
    }

    #[test]
    fn stemming_is_english_snowball() {
        let a = Analyzer::new(&TextConfig::default().stem(true));
        assert_eq!(
            a.terms("Running runs RUN easily connection connected"),
            ["run", "run", "run", "easili", "connect", "connect"]
        );
        // Without stemming the words stay apart.
        assert_eq!(plain().terms("running runs"), ["running", "runs"]);
    }

    #[test]
    fn stop_words_are_dropped_only_when_configured() {
        let text = "The cat and THE hat are in it";
        assert_eq!(
            plain().terms(text),
            ["the", "cat", "and", "the", "hat", "are", "in", "it"]
        );
        let a = Analyzer::new(&TextConfig::default().stop_words(true));
        assert_eq!(a.terms(text), ["cat", "hat"]);
        assert!(ENGLISH_STOP_WORDS.is_sorted());
        for w in ENGLISH_STOP_WORDS {
            assert!(a.terms(w).is_empty(), "{w}");
        }
    }

    #[test]
    fn stop_words_are_checked_before_stemming() {
        let a = Analyzer::new(&TextConfig::default().stem(true).stop_words(true));
        assert_eq!(a.terms("the running is fast"), ["run", "fast"]);
    }

    #[test]
    fn overlong_terms_are_dropped() {
        let long = "x".repeat(MAX_TERM_BYTES + 1);
        let edge = "y".repeat(MAX_TERM_BYTES);
        let text = format!("a {long} {edge} b");
        assert_eq!(
            plain().terms(&text),
            ["a".to_string(), edge, "b".to_string()]
        );
        // The limit is in bytes: 128 two-byte letters are 256 bytes.
        assert!(plain().terms(&"é".repeat(128)).is_empty());
    }

    #[test]
    fn analyzer_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Analyzer>();
        check::<TextConfig>();
    }

    proptest! {
        /// Any text, with every option: no panic (the stemmer slices multi-byte text), and
        /// every term is non-empty and within the length cap.
        #[test]
        fn any_text_analyzes(text in "\\PC{0,60}", stem: bool, stop: bool) {
            let a = Analyzer::new(&TextConfig { stem, stop_words: stop });
            for t in a.terms(&text) {
                prop_assert!(!t.is_empty() && t.len() <= MAX_TERM_BYTES);
            }
        }
    }
}
