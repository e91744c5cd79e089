//! The retrieval half of a RAG pipeline in Rust: the flow of `examples/rag/rag.py` without an
//! embedding model. It reads the Markdown files of a folder (default: this repository's
//! `docs/` and `README.md`), cuts them into sections by heading (long sections into 100-word
//! windows overlapping by 20), stores each chunk with its `source` and `section` as payload,
//! and answers a question with BM25 under an optional filter.
//!
//! ```sh
//! cargo run --release --example rag -- "what happens after a failed fsync?"
//! cargo run --release --example rag -- "default ef_construction" --filter 'source = "tuning.md"'
//! cargo run --release --example rag -- "hybrid fusion" --corpus ~/notes --k 3
//! ```
//!
//! Vectors: Cairn needs one per record; with no model at hand, each chunk gets a
//! deterministic stand-in (hashed words, normalized). Embed with a real model and search with
//! `SearchRequest::new(vector).text(question)` for hybrid retrieval, as the Python example
//! does.

use std::path::{Path, PathBuf};

use cairndb::{
    CollectionConfig, Database, Filter, Metric, Record, SearchRequest, TextConfig, Value,
};

const WORDS: usize = 100;
const OVERLAP: usize = 20;
const DIM: usize = 64;

struct Chunk {
    source: String,
    section: String,
    text: String,
}

/// Sections by Markdown heading (`#`…), each split into overlapping windows of words.
fn chunks_of(source: &str, text: &str) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut body = String::new();
    let flush = |path: &[String], body: &mut String, out: &mut Vec<Chunk>| {
        let words: Vec<&str> = body.split_whitespace().collect();
        let mut start = 0;
        while start < words.len() {
            let end = (start + WORDS).min(words.len());
            out.push(Chunk {
                source: source.to_owned(),
                section: path.join(" > "),
                text: words[start..end].join(" "),
            });
            if end == words.len() {
                break;
            }
            start = end - OVERLAP;
        }
        body.clear();
    };
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        let level = line.chars().take_while(|&c| c == '#').count();
        if !in_code && level > 0 && line[level..].starts_with(' ') {
            flush(&path, &mut body, &mut out);
            path.truncate(level - 1);
            path.push(line[level..].trim().to_owned());
        } else {
            body.push_str(line);
            body.push('\n');
        }
    }
    flush(&path, &mut body, &mut out);
    out
}

/// A deterministic stand-in vector: hashed words, normalized (not a semantic embedding).
fn stand_in_vector(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; DIM];
    for w in text.split_whitespace() {
        let h = w
            .to_lowercase()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
        v[(h % DIM as u64) as usize] += if h >> 63 == 0 { 1.0 } else { -1.0 };
    }
    if v.iter().all(|&x| x == 0.0) {
        v[0] = 1.0;
    }
    v
}

fn markdown_files(corpus: Option<&Path>) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    match corpus {
        None => {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            for e in std::fs::read_dir(root.join("docs"))? {
                let p = e?.path();
                if p.extension().is_some_and(|x| x == "md") {
                    files.push((p.file_name().unwrap().to_string_lossy().into_owned(), p));
                }
            }
            files.push(("README.md".into(), root.join("README.md")));
        }
        Some(dir) => {
            for e in std::fs::read_dir(dir)? {
                let p = e?.path();
                if p.extension().is_some_and(|x| x == "md" || x == "txt") {
                    files.push((p.file_name().unwrap().to_string_lossy().into_owned(), p));
                }
            }
        }
    }
    files.sort();
    Ok(files)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut question, mut filter, mut corpus, mut k) = (None, None, None, 5usize);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--filter" => filter = Some(Filter::parse(&args.next().ok_or("--filter EXPR")?)?),
            "--corpus" => corpus = Some(PathBuf::from(args.next().ok_or("--corpus DIR")?)),
            "--k" => k = args.next().ok_or("--k N")?.parse()?,
            _ => question = Some(a),
        }
    }
    let question = question.ok_or("usage: rag QUESTION [--filter EXPR] [--corpus DIR] [--k N]")?;

    let mut chunks = Vec::new();
    for (name, path) in markdown_files(corpus.as_deref())? {
        chunks.extend(chunks_of(&name, &std::fs::read_to_string(&path)?));
    }

    let dir = tempfile::tempdir()?;
    let db = Database::open(dir.path().join("rag-db"))?;
    let text = TextConfig::default().stem(true).stop_words(true);
    let col = db.create_collection(
        "chunks",
        CollectionConfig::new(DIM, Metric::Cosine).with_text(text),
    )?;
    let records: Vec<Record> = chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Record::new(i as u64, stand_in_vector(&c.text))
                .with_text(c.text.clone())
                .with_field("source", c.source.clone())
                .with_field("section", c.section.clone())
        })
        .collect();
    for batch in records.chunks(512) {
        col.upsert(batch.to_vec())?;
    }
    println!("{} chunks from {} files", chunks.len(), {
        let mut s: Vec<&str> = chunks.iter().map(|c| c.source.as_str()).collect();
        s.dedup();
        s.len()
    });

    let mut req = SearchRequest::by_text(question.clone())
        .k(k)
        .with_text(true)
        .with_payload(true);
    if let Some(f) = filter {
        req = req.filter(f);
    }
    let hits = col.search(&req)?;
    if hits.is_empty() {
        println!("no chunk matches {question:?}");
    }
    for (rank, h) in hits.iter().enumerate() {
        let p = h.payload.as_ref();
        let field = |name: &str| match p.and_then(|p| p.get(name)) {
            Some(Value::Str(s)) => s.clone(),
            _ => String::new(),
        };
        let text = h.text.as_deref().unwrap_or("");
        let short: String = text.chars().take(240).collect();
        println!(
            "\n{}. {:.3}  {} › {}\n   {}{}",
            rank + 1,
            h.score,
            field("source"),
            field("section"),
            short,
            if text.len() > short.len() { "…" } else { "" }
        );
    }
    Ok(())
}
