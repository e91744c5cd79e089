//! Input formats: JSONL records, `.fvecs` vectors, and a query vector given as JSON.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

use cairndb::{MAX_DIM, Record};

use crate::util::{CliResult, fail};

/// Whether `path` names an `.fvecs` file (by its extension).
pub fn is_fvecs(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("fvecs"))
}

/// Opens an input file, with the path in the error.
pub fn open_input(path: &Path) -> CliResult<File> {
    File::open(path).map_err(|e| fail(format_args!("cannot open {}: {e}", path.display())))
}

/// Parses a query vector written as a JSON array of numbers.
pub fn parse_vector(json: &str) -> CliResult<Vec<f32>> {
    let v: Vec<f32> = serde_json::from_str(json).map_err(|e| {
        fail(format_args!(
            "--vector must be a JSON array of numbers such as '[0.1, 0.2]': {e}"
        ))
    })?;
    if v.is_empty() {
        return Err(fail("--vector is empty"));
    }
    Ok(v)
}

/// One record read from an input file, with where it came from.
pub struct Item {
    /// Line number (JSONL, from 1) or row number (fvecs, from 0).
    pub at: usize,
    pub record: Record,
}

/// Reads the rows of an `.fvecs` file: for each row an int32 (LE) dimension then that many
/// float32 (LE). Every row must have the dimension of the first.
pub struct FvecsReader<R> {
    inner: R,
    path: PathBuf,
    row: usize,
    dim: Option<usize>,
    /// Bytes consumed so far.
    pub bytes: u64,
    done: bool,
}

impl FvecsReader<BufReader<File>> {
    pub fn open(path: &Path) -> CliResult<Self> {
        let f = open_input(path)?;
        Ok(FvecsReader::new(BufReader::with_capacity(1 << 20, f), path))
    }
}

impl<R: Read> FvecsReader<R> {
    pub fn new(inner: R, path: &Path) -> Self {
        FvecsReader {
            inner,
            path: path.to_owned(),
            row: 0,
            dim: None,
            bytes: 0,
            done: false,
        }
    }

    /// Reads as much of `buf` as the file holds; returns the count read.
    fn fill(&mut self, buf: &mut [u8]) -> CliResult<usize> {
        let mut n = 0;
        while n < buf.len() {
            match self.inner.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(fail(format_args!(
                        "reading {} failed: {e}",
                        self.path.display()
                    )));
                }
            }
        }
        self.bytes += n as u64;
        Ok(n)
    }

    fn truncated(&self) -> CliResult<Option<Vec<f32>>> {
        Err(fail(format_args!(
            "truncated fvecs file at row {} ({})",
            self.row,
            self.path.display()
        )))
    }

    fn next_row(&mut self) -> CliResult<Option<Vec<f32>>> {
        let mut head = [0u8; 4];
        match self.fill(&mut head)? {
            0 => return Ok(None),
            4 => {}
            _ => return self.truncated(),
        }
        let d = i32::from_le_bytes(head);
        if d <= 0 || d as usize > MAX_DIM {
            return Err(fail(format_args!(
                "invalid fvecs file {}: row {} has dimension {d} (expected 1 to {MAX_DIM})",
                self.path.display(),
                self.row
            )));
        }
        let d = d as usize;
        match self.dim {
            Some(first) if first != d => {
                return Err(fail(format_args!(
                    "invalid fvecs file {}: row {} has dimension {d}, but row 0 has {first}",
                    self.path.display(),
                    self.row
                )));
            }
            _ => self.dim = Some(d),
        }
        let mut body = vec![0u8; d * 4];
        if self.fill(&mut body)? != body.len() {
            return self.truncated();
        }
        let v = body
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        self.row += 1;
        Ok(Some(v))
    }
}

impl<R: Read> Iterator for FvecsReader<R> {
    type Item = CliResult<Vec<f32>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.next_row().transpose();
        if !matches!(r, Some(Ok(_))) {
            self.done = true;
        }
        r
    }
}

/// The dimension of the first row of an `.fvecs` file, if it can be read.
pub fn fvecs_dim(path: &Path) -> Option<usize> {
    let mut head = [0u8; 4];
    File::open(path).ok()?.read_exact(&mut head).ok()?;
    let d = i32::from_le_bytes(head);
    (d > 0 && d as usize <= MAX_DIM).then_some(d as usize)
}

/// Reads every row of an `.fvecs` file.
pub fn read_fvecs(path: &Path) -> CliResult<Vec<Vec<f32>>> {
    FvecsReader::open(path)?.collect()
}

/// Records read from a file, with the bytes consumed so far (for a progress bar).
pub trait Source: Iterator<Item = CliResult<Item>> {
    fn bytes(&self) -> u64;
    /// Names a position: `line 7` (JSONL) or `row 7` (fvecs).
    fn place(&self, at: usize) -> String;
}

/// `.fvecs` rows as records whose ids are the row numbers.
pub struct FvecsRecords(pub FvecsReader<BufReader<File>>);

impl Iterator for FvecsRecords {
    type Item = CliResult<Item>;

    fn next(&mut self) -> Option<Self::Item> {
        let row = self.0.row;
        self.0.next().map(|v| {
            v.map(|vector| Item {
                at: row,
                record: Record::new(row as u64, vector),
            })
        })
    }
}

impl Source for FvecsRecords {
    fn bytes(&self) -> u64 {
        self.0.bytes
    }
    fn place(&self, at: usize) -> String {
        format!("row {at}")
    }
}

impl<R: BufRead> Source for JsonlReader<R> {
    fn bytes(&self) -> u64 {
        self.bytes
    }
    fn place(&self, at: usize) -> String {
        format!("line {at}")
    }
}

/// Reads JSONL records, one per line; blank lines are skipped.
pub struct JsonlReader<R> {
    inner: R,
    path: PathBuf,
    line: usize,
    buf: String,
    /// Bytes consumed so far.
    pub bytes: u64,
    done: bool,
}

impl JsonlReader<BufReader<File>> {
    pub fn open(path: &Path) -> CliResult<Self> {
        let f = open_input(path)?;
        Ok(JsonlReader::new(BufReader::with_capacity(1 << 20, f), path))
    }
}

impl<R: BufRead> JsonlReader<R> {
    pub fn new(inner: R, path: &Path) -> Self {
        JsonlReader {
            inner,
            path: path.to_owned(),
            line: 0,
            buf: String::new(),
            bytes: 0,
            done: false,
        }
    }

    fn next_item(&mut self) -> CliResult<Option<Item>> {
        loop {
            self.buf.clear();
            self.line += 1;
            let n = self.inner.read_line(&mut self.buf).map_err(|e| {
                fail(format_args!(
                    "{} line {}: cannot read: {e}",
                    self.path.display(),
                    self.line
                ))
            })?;
            if n == 0 {
                return Ok(None);
            }
            self.bytes += n as u64;
            let text = self.buf.trim();
            if text.is_empty() {
                continue;
            }
            return match serde_json::from_str::<Record>(text) {
                Ok(record) => Ok(Some(Item {
                    at: self.line,
                    record,
                })),
                Err(e) => Err(fail(format_args!(
                    "{} line {}: invalid record: {e}",
                    self.path.display(),
                    self.line
                ))),
            };
        }
    }
}

impl<R: BufRead> Iterator for JsonlReader<R> {
    type Item = CliResult<Item>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.next_item().transpose();
        if !matches!(r, Some(Ok(_))) {
            self.done = true;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fvecs(rows: &[&[f32]]) -> Vec<u8> {
        let mut b = Vec::new();
        for r in rows {
            b.extend_from_slice(&(r.len() as i32).to_le_bytes());
            for x in *r {
                b.extend_from_slice(&x.to_le_bytes());
            }
        }
        b
    }

    fn msg(e: CliResult<Vec<Vec<f32>>>) -> String {
        match e {
            Err(crate::util::CliError::Failed(m)) => m,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn fvecs_rows_and_errors() {
        let p = Path::new("x.fvecs");
        let ok = fvecs(&[&[1.0, 2.0], &[3.0, 4.0]]);
        let rows: Vec<Vec<f32>> = FvecsReader::new(&ok[..], p)
            .collect::<CliResult<_>>()
            .unwrap();
        assert_eq!(rows, vec![vec![1.0, 2.0], vec![3.0, 4.0]]);

        let cut = &ok[..ok.len() - 2];
        let m = msg(FvecsReader::new(cut, p).collect());
        assert!(m.contains("truncated fvecs file at row 1"), "{m}");

        let mixed = fvecs(&[&[1.0, 2.0], &[3.0]]);
        let m = msg(FvecsReader::new(&mixed[..], p).collect());
        assert!(m.contains("row 1 has dimension 1, but row 0 has 2"), "{m}");
    }

    #[test]
    fn jsonl_lines_and_errors() {
        let text =
            "{\"id\":1,\"vector\":[1,2]}\n\n{\"id\":2,\"vector\":[3,4],\"text\":\"t\"}\nnope\n";
        let mut r = JsonlReader::new(text.as_bytes(), Path::new("f.jsonl"));
        assert_eq!(r.next().unwrap().ok().unwrap().record.id, 1);
        let second = r.next().unwrap().ok().unwrap();
        assert_eq!((second.at, second.record.text.as_deref()), (3, Some("t")));
        match r.next() {
            Some(Err(crate::util::CliError::Failed(m))) => assert!(m.contains("line 4"), "{m}"),
            _ => panic!("expected an error"),
        }
        assert!(r.next().is_none());
    }

    #[test]
    fn vectors_from_json() {
        assert_eq!(parse_vector("[1, 2.5]").unwrap(), vec![1.0, 2.5]);
        assert!(parse_vector("[1, \"a\"]").is_err());
        assert!(parse_vector("[]").is_err());
    }
}
