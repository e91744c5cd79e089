//! The field and text index files, and filters evaluated against them.

#[allow(unused_imports)]
use super::*;

/// Filters over the field names and values of the seeds.
fn sample_filters() -> Vec<Filter> {
    vec![
        Filter::eq("lang", "en"),
        Filter::eq("year", 2021),
        Filter::eq("score", 0.5),
        Filter::eq("draft", true),
        Filter::any_of("tags", ["a", "b"]),
        Filter::range("year").gte(2000).lt(2022),
        Filter::range("score").gt(-1.0),
        Filter::exists("tags").not(),
        Filter::has_term("red").or(Filter::eq("lang", "de")),
    ]
}

/// One source's indexes, as a filter sees them.
struct FuzzIndexes<'a> {
    rows: u32,
    fields: &'a FieldIndex,
    text: &'a TextIndex,
}

impl Indexes for FuzzIndexes<'_> {
    type Fields<'b>
        = &'b FieldIndex
    where
        Self: 'b;
    type Text<'b>
        = &'b TextIndex
    where
        Self: 'b;
    fn rows(&self) -> usize {
        self.rows as usize
    }
    fn fields(&self) -> Result<&FieldIndex> {
        Ok(self.fields)
    }
    fn text(&self) -> Result<&TextIndex> {
        Ok(self.text)
    }
}

pub(super) fn exercise_indexes(fields: &FieldIndex, text: Option<&TextIndex>, rows: u32) {
    let empty = TextIndex::new();
    let analyzer = Analyzer::new(&TextConfig::default());
    let idx = FuzzIndexes {
        rows,
        fields,
        text: text.unwrap_or(&empty),
    };
    for f in sample_filters() {
        let _ = evaluate(&f, &idx, &analyzer);
    }
    if let Some(text) = text {
        exercise_text(text);
    }
}

pub(super) fn exercise_text(text: &TextIndex) {
    let mut terms: Vec<String> = text.terms().take(8).map(|(t, _)| t.to_owned()).collect();
    terms.push("red".into());
    for t in &terms {
        if let Some(p) = text.postings(t) {
            for &(row, _) in p.as_slice().iter().take(8) {
                assert!(row < text.rows(), "posting of row {row} of {}", text.rows());
                p.tf(row);
                text.doc_len(row);
            }
        }
    }
    let dead: RoaringBitmap = (0..text.rows().min(64)).step_by(3).collect();
    let sources = [Source {
        index: text,
        dead: Some(&dead),
        allow: None,
        live: None,
    }];
    bm25::stats(&sources, &terms);
    bm25::search_keyed(&sources, &terms, 10, |_, row| u64::from(row));
}

/// Splits an index target's input: a flags byte, then the file; with [`FIX_CHECKSUMS`] the
/// segment's row count (u32 LE) and the body, which gets a correct header for segment 1.
/// Returns the file, its segment id and its row count.
fn index_file(data: &[u8], kind: FileKind) -> Option<(Vec<u8>, u64, u64)> {
    let (&flags, rest) = data.split_first()?;
    if flags & FIX_CHECKSUMS != 0 {
        let rows = u64::from(u32_at(rest.get(..4)?, 0));
        Some((with_header(kind, rows, 1, &rest[4..]), 1, rows))
    } else {
        // Belonging to the segment is checked elsewhere: take the header's word for it.
        let (id, rows) = match rest.get(..HEADER_LEN) {
            Some(h) => (u64_at(h, 40), u64_at(h, 16)),
            None => (0, 0),
        };
        Some((rest.to_vec(), id, rows))
    }
}

/// A segment's `fields` file (input as described for [`text_index`]). What decodes must
/// answer filters, and re-encode to a file that decodes and encodes to the same bytes.
pub fn fields(data: &[u8]) -> Result<()> {
    let Some((bytes, id, rows)) = index_file(data, FileKind::Fields) else {
        return Ok(());
    };
    let rows = usize::try_from(rows).unwrap_or(usize::MAX);
    let path = Path::new("fields");
    let idx = FieldIndex::decode(&bytes, path, id, rows)?;
    exercise_indexes(&idx, None, rows as u32);
    let once = idx.clone().encode(id);
    let again = FieldIndex::decode(&once, path, id, rows)
        .expect("a decoded field index encodes to a valid file");
    assert!(
        again.encode(id) == once,
        "field index changed in a round trip"
    );
    let decoded = FieldIndex::decode(&once, path, id, rows).expect("decoded above");
    let (empty, analyzer) = (TextIndex::new(), Analyzer::new(&TextConfig::default()));
    let index = |fields| FuzzIndexes {
        rows: rows as u32,
        fields,
        text: &empty,
    };
    let (a, b) = (index(&idx), index(&decoded));
    for f in sample_filters() {
        assert_eq!(
            evaluate(&f, &a, &analyzer).ok(),
            evaluate(&f, &b, &analyzer).ok(),
            "{f}: a re-encoded index answers differently"
        );
    }
    Ok(())
}

/// A segment's `text` file: a flags byte, then the file; with [`FIX_CHECKSUMS`] the row count
/// (u32 LE) and the body, which gets a correct header. What decodes must answer BM25 queries
/// and re-encode to an equal index.
pub fn text_index(data: &[u8]) -> Result<()> {
    let Some((bytes, id, _)) = index_file(data, FileKind::Text) else {
        return Ok(());
    };
    let idx = TextIndex::decode(&bytes, Path::new("text"), id)?;
    exercise_text(&idx);
    let again = TextIndex::decode(&idx.encode(id), Path::new("text"), id)
        .expect("a decoded text index encodes to a valid file");
    assert_eq!(again, idx, "text index changed in a round trip");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Filters

/// The filter text syntax, or the JSON form when the input starts with `{`: `data` as UTF-8
/// (invalid input is ignored). A JSON filter that reads must write as JSON that reads back to
/// the same filter. What parses must print as text that parses back to the same filter, and
/// its index evaluation must agree with the reference matcher on a few payloads.
pub fn filter(data: &[u8]) -> Result<()> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let f = if text.trim_start().starts_with('{') {
        let f = Filter::from_json(text)?;
        let json = f.to_json().expect("a valid filter writes as JSON");
        match Filter::from_json(&json) {
            Ok(back) => assert_eq!(back, f, "{text:?} written as {json:?}"),
            Err(e) => panic!("{text:?} written as {json:?}, which does not read: {e}"),
        }
        f
    } else {
        Filter::parse(text)?
    };
    let printed = f.to_string();
    match Filter::parse(&printed) {
        Ok(back) => assert_eq!(back, f, "{text:?} printed as {printed:?}"),
        Err(e) => panic!("{text:?} printed as {printed:?}, which does not parse: {e}"),
    }
    let payloads = sample_payloads();
    let mut fields = FieldIndex::new();
    for (row, p) in payloads.iter().enumerate() {
        fields.push(row as u32, p);
    }
    let rows = payloads.len() as u32;
    fields.set_rows(rows);
    let want: RoaringBitmap = payloads
        .iter()
        .enumerate()
        .filter(|(_, p)| f.matches(p, &|_| false))
        .map(|(i, _)| i as u32)
        .collect();
    for fields in [
        fields.clone(),
        FieldIndex::decode(&fields.encode(1), Path::new("fields"), 1, rows as usize)
            .expect("a fresh field index decodes"),
    ] {
        let (empty, analyzer) = (TextIndex::new(), Analyzer::new(&TextConfig::default()));
        let idx = FuzzIndexes {
            rows,
            fields: &fields,
            text: &empty,
        };
        assert_eq!(
            evaluate(&f, &idx, &analyzer)?,
            want,
            "{f}: index and matcher disagree"
        );
    }
    Ok(())
}

fn sample_payloads() -> Vec<Payload> {
    let mut out = Vec::new();
    for i in 0..6i64 {
        let mut p = Payload::new();
        p.insert(
            "lang".into(),
            Value::from(["en", "de", "fr"][i as usize % 3]),
        );
        p.insert("year".into(), Value::Int(2018 + i));
        if i % 2 == 0 {
            p.insert("score".into(), Value::Float(i as f64 / 4.0 - 0.5));
            p.insert(
                "tags".into(),
                Value::from(vec!["a".to_owned(), format!("t{i}")]),
            );
        } else {
            p.insert("draft".into(), Value::Bool(i % 3 == 0));
            p.insert("x".into(), Value::Float(-0.0));
        }
        out.push(p);
    }
    out.push(Payload::new());
    out
}
