//! The demo's embedding: a deterministic lexical hashing embedding.
//!
//! No neural model ships with Cairn, so the demo turns text into vectors by feature hashing:
//! the text is lowercased and split into words; each word (minus a few stop words) adds its
//! own feature and its character trigrams (of `<word>`, so prefixes and suffixes count),
//! weighted by the word's inverse document frequency in the corpus; each feature is hashed
//! with FNV-1a into one of [`DIM`] buckets with a +1 or -1 sign, and the vector is
//! L2-normalized. Cosine similarity then measures shared words and word pieces:
//! "parser" matches "parsing" through `<pa`, `par`, `ars`, but "fast" never matches "quick".

use std::collections::HashMap;

/// Dimension of the embedding.
pub const DIM: usize = 256;

/// Weight of a whole-word feature; the trigrams of a word share [`TRIGRAM_WEIGHT`].
const WORD_WEIGHT: f32 = 1.0;
const TRIGRAM_WEIGHT: f32 = 1.0;

/// Words too common in package summaries to tell packages apart.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "into", "is", "it", "of",
    "on", "or", "that", "the", "this", "to", "with", "your", "you", "python", "package", "library",
    "module", "tool", "tools", "based", "using", "simple", "easy",
];

/// 64-bit FNV-1a.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    // Final avalanche so the low bits (the bucket) depend on every input byte.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

fn add(v: &mut [f32], kind: &[u8], feature: &[u8], weight: f32) {
    let h = fnv1a(&[kind, feature]);
    let bucket = (h % DIM as u64) as usize;
    let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
    v[bucket] += sign * weight;
}

fn add_word(v: &mut [f32], word: &str, weight: f32) {
    add(v, b"w:", word.as_bytes(), WORD_WEIGHT * weight);
    let chars: Vec<char> = std::iter::once('<')
        .chain(word.chars())
        .chain(std::iter::once('>'))
        .collect();
    let grams = chars.len().saturating_sub(2).max(1);
    let w = TRIGRAM_WEIGHT * weight / (grams as f32).sqrt();
    let mut buf = String::new();
    for g in chars.windows(3) {
        buf.clear();
        buf.extend(g);
        add(v, b"t:", buf.as_bytes(), w);
    }
}

/// Lowercased words of `text`.
fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The hashing embedding, with each word weighted by its inverse document frequency in a
/// corpus (rare words count more: "progress" outweighs "command").
pub struct Embedder {
    idf: HashMap<String, f32>,
    /// IDF of a word the corpus does not have.
    unseen: f32,
}

impl Embedder {
    /// Counts in how many of `texts` each word occurs.
    pub fn fit<'a>(texts: impl IntoIterator<Item = &'a str>) -> Embedder {
        let mut df: HashMap<String, u32> = HashMap::new();
        let mut n = 0u32;
        for t in texts {
            n += 1;
            let mut ws = words(t);
            ws.sort_unstable();
            ws.dedup();
            for w in ws {
                *df.entry(w).or_default() += 1;
            }
        }
        let idf = |d: u32| ((f64::from(n) + 1.0) / (f64::from(d) + 1.0)).ln() as f32 + 1.0;
        Embedder {
            idf: df.into_iter().map(|(w, d)| (w, idf(d))).collect(),
            unseen: idf(0),
        }
    }

    /// The embedding of `text`: [`DIM`] floats of unit length (never all zero).
    pub fn embed(&self, text: &str) -> Vec<f32> {
        let words = words(text);
        let weight = |w: &str| self.idf.get(w).copied().unwrap_or(self.unseen);
        let mut v = vec![0f32; DIM];
        for w in words.iter().filter(|w| !STOP_WORDS.contains(&w.as_str())) {
            add_word(&mut v, w, weight(w));
        }
        if v.iter().all(|&x| x == 0.0) {
            // Only stop words (or nothing): use them after all.
            for w in &words {
                add_word(&mut v, w, weight(w));
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm == 0.0 {
            v[0] = 1.0;
        } else {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn deterministic_unit_and_lexical() {
        let e = Embedder::fit(["a json parser", "charts", "fast charts"]);
        let embed = |t: &str| e.embed(t);
        let a = embed("Fast JSON parser");
        assert_eq!(a, embed("fast json parser"));
        assert!((cos(&a, &a) - 1.0).abs() < 1e-5);
        let near = embed("A JSON parsing library");
        let far = embed("Plot charts in the browser");
        assert!(cos(&a, &near) > cos(&a, &far) + 0.2);
        assert_eq!(embed("").len(), DIM);
        assert!(embed("the a of").iter().any(|&x| x != 0.0));
    }
}
