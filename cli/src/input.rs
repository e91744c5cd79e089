//! Input formats: JSONL records, `.fvecs` / `.bvecs` / `.ivecs` rows, `.npy` float32 arrays
//! (read by `npy.rs`), and a query vector given as JSON.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

use cairndb::{MAX_DIM, Record};

use crate::npy::NpyReader;
use crate::util::{CliResult, fail};

/// Most columns an `.ivecs` row may have.
const MAX_IVECS_COLS: usize = 1 << 20;

/// Opens an input file, with the path in the error.
pub fn open_input(path: &Path) -> CliResult<File> {
    File::open(path).map_err(|e| fail(format_args!("cannot open {}: {e}", path.display())))
}

/// Parses a query vector written as a JSON array of numbers.
pub fn parse_vector(json: &str) -> CliResult<Vec<f32>> {
    let v: Vec<f32> = serde_json::from_str(json).map_err(|e| {
        fail(format_args!(
            "--vector must be a JSON array of numbers such as '[0.1, 0.2]': {}",
            crate::jsonl::humanize(&e)
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

/// The element type of a `*vecs` file: `.fvecs` (float32), `.ivecs` (int32), `.bvecs` (u8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    F32,
    I32,
    U8,
}

impl Elem {
    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            Elem::U8 => 1,
            Elem::F32 | Elem::I32 => 4,
        }
    }

    /// The file extension, for messages.
    pub fn ext(self) -> &'static str {
        match self {
            Elem::F32 => "fvecs",
            Elem::I32 => "ivecs",
            Elem::U8 => "bvecs",
        }
    }
}

/// Reads the rows of an `.fvecs` file: for each row an int32 (LE) dimension then that many
/// float32 (LE). Every row must have the dimension of the first. The same layout with u8
/// values (`.bvecs`) or int32 values (`.ivecs`) is read with [`FvecsReader::with_elem`].
pub struct FvecsReader<R> {
    inner: R,
    path: PathBuf,
    elem: Elem,
    row: usize,
    dim: Option<usize>,
    /// Bytes consumed so far.
    pub bytes: u64,
    done: bool,
}

impl FvecsReader<BufReader<File>> {
    pub fn open(path: &Path) -> CliResult<Self> {
        FvecsReader::open_as(path, Elem::F32)
    }

    /// Opens a `*vecs` file of the given element type.
    pub fn open_as(path: &Path, elem: Elem) -> CliResult<Self> {
        let f = open_input(path)?;
        Ok(FvecsReader::with_elem(
            BufReader::with_capacity(1 << 20, f),
            path,
            elem,
        ))
    }
}

impl<R: Read> FvecsReader<R> {
    #[cfg(test)]
    pub fn new(inner: R, path: &Path) -> Self {
        FvecsReader::with_elem(inner, path, Elem::F32)
    }

    pub fn with_elem(inner: R, path: &Path, elem: Elem) -> Self {
        FvecsReader {
            inner,
            path: path.to_owned(),
            elem,
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

    fn truncated<T>(&self) -> CliResult<T> {
        Err(fail(format_args!(
            "truncated {} file at row {} ({})",
            self.elem.ext(),
            self.row,
            self.path.display()
        )))
    }

    /// The raw little-endian values of the next row.
    fn next_raw(&mut self) -> CliResult<Option<Vec<u8>>> {
        let mut head = [0u8; 4];
        match self.fill(&mut head)? {
            0 => return Ok(None),
            4 => {}
            _ => return self.truncated(),
        }
        let ext = self.elem.ext();
        let d = i32::from_le_bytes(head);
        // Ground-truth files may list more neighbours than a vector has dimensions.
        let max = if self.elem == Elem::I32 {
            MAX_IVECS_COLS
        } else {
            MAX_DIM
        };
        if d <= 0 || d as usize > max {
            return Err(fail(format_args!(
                "invalid {ext} file {}: row {} has dimension {d} (expected 1 to {max})",
                self.path.display(),
                self.row
            )));
        }
        let d = d as usize;
        match self.dim {
            Some(first) if first != d => {
                return Err(fail(format_args!(
                    "invalid {ext} file {}: row {} has dimension {d}, but row 0 has {first}",
                    self.path.display(),
                    self.row
                )));
            }
            _ => self.dim = Some(d),
        }
        let mut body = vec![0u8; d * self.elem.size()];
        if self.fill(&mut body)? != body.len() {
            return self.truncated();
        }
        self.row += 1;
        Ok(Some(body))
    }

    fn next_row(&mut self) -> CliResult<Option<Vec<f32>>> {
        let Some(body) = self.next_raw()? else {
            return Ok(None);
        };
        let v = match self.elem {
            Elem::F32 => body
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Elem::I32 => body
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
                .collect(),
            Elem::U8 => body.iter().map(|&b| f32::from(b)).collect(),
        };
        Ok(Some(v))
    }

    /// The next row of an `.ivecs` file, as integers.
    pub fn next_ints(&mut self) -> CliResult<Option<Vec<i32>>> {
        let Some(body) = self.next_raw()? else {
            return Ok(None);
        };
        Ok(Some(
            body.chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ))
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

/// Reads every row of an `.ivecs` file (e.g. the ids of each query's true nearest neighbours).
pub fn read_ivecs(path: &Path) -> CliResult<Vec<Vec<i32>>> {
    if !has_ext(path, "ivecs") {
        return Err(fail(format_args!(
            "{}: expected an .ivecs file (int32 dimension then that many int32 per row)",
            path.display()
        )));
    }
    let mut r = FvecsReader::open_as(path, Elem::I32)?;
    let mut rows = Vec::new();
    while let Some(row) = r.next_ints()? {
        rows.push(row);
    }
    Ok(rows)
}

fn has_ext(path: &Path, ext: &str) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// A file of float vectors: `.fvecs`, `.bvecs` (u8 values, converted to float) or `.npy`
/// (a 2-D little-endian float32 array in C order). Yields one row at a time.
pub enum VectorFile {
    Vecs(FvecsReader<BufReader<File>>),
    Npy(NpyReader<BufReader<File>>),
}

/// What [`VectorFile::open`] learned before reading any row.
#[derive(Debug, Clone, Copy)]
pub struct VectorShape {
    /// The dimension (of the first row); `None` for an empty `*vecs` file.
    pub dim: Option<usize>,
    /// The number of rows, from the header (`.npy`) or the file size (`*vecs`).
    pub rows: usize,
}

impl VectorFile {
    /// Opens a vector file by its extension and reads its shape.
    pub fn open(path: &Path) -> CliResult<(VectorFile, VectorShape)> {
        let elem = if has_ext(path, "fvecs") {
            Some(Elem::F32)
        } else if has_ext(path, "bvecs") {
            Some(Elem::U8)
        } else if has_ext(path, "npy") {
            None
        } else {
            return Err(fail(format_args!(
                "{}: unsupported vector file; expected .fvecs, .bvecs or .npy",
                path.display()
            )));
        };
        let f = open_input(path)?;
        let len = f
            .metadata()
            .map_err(|e| fail(format_args!("cannot read {}: {e}", path.display())))?
            .len();
        let inner = BufReader::with_capacity(1 << 20, f);
        match elem {
            Some(elem) => {
                let dim = fvecs_dim(path);
                let rows = dim.map_or(0, |d| (len / (4 + (d * elem.size()) as u64)) as usize);
                Ok((
                    VectorFile::Vecs(FvecsReader::with_elem(inner, path, elem)),
                    VectorShape { dim, rows },
                ))
            }
            None => {
                let r = NpyReader::new(inner, path, len)?;
                let shape = VectorShape {
                    dim: Some(r.dim),
                    rows: r.rows,
                };
                Ok((VectorFile::Npy(r), shape))
            }
        }
    }
}

impl Iterator for VectorFile {
    type Item = CliResult<Vec<f32>>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            VectorFile::Vecs(r) => r.next(),
            VectorFile::Npy(r) => r.next(),
        }
    }
}

/// Reads every row of a vector file; returns the rows and their dimension (`None` when empty).
pub fn read_vectors(path: &Path) -> CliResult<(Vec<Vec<f32>>, Option<usize>)> {
    let (file, shape) = VectorFile::open(path)?;
    let rows = file.collect::<CliResult<Vec<_>>>()?;
    Ok((rows, shape.dim))
}

/// Records read from a file, with the bytes consumed so far (for a progress bar).
pub trait Source: Iterator<Item = CliResult<Item>> {
    fn bytes(&self) -> u64;
    /// Names a position: `line 7` (JSONL) or `row 7` (fvecs).
    fn place(&self, at: usize) -> String;
    /// The number of rows, when the file says it ahead (Parquet, `.npy`): the progress bar
    /// then counts rows instead of bytes.
    fn total_rows(&self) -> Option<u64> {
        None
    }
}

/// The id of row `row` of a file without ids whose rows are numbered from `start`.
fn row_id(start: u64, row: usize, path: &Path) -> CliResult<u64> {
    start.checked_add(row as u64).ok_or_else(|| {
        fail(format_args!(
            "{} row {row}: --id-start {start} plus the row number is above {}",
            path.display(),
            u64::MAX
        ))
    })
}

/// `.fvecs` rows as records whose ids are the row numbers plus a start (`--id-start`).
pub struct FvecsRecords(pub FvecsReader<BufReader<File>>, pub u64);

impl Iterator for FvecsRecords {
    type Item = CliResult<Item>;

    fn next(&mut self) -> Option<Self::Item> {
        let row = self.0.row;
        self.0.next().map(|v| {
            let id = row_id(self.1, row, &self.0.path)?;
            v.map(|vector| Item {
                at: row,
                record: Record::new(id, vector),
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

/// `.npy` rows as records whose ids are the row numbers plus a start (`--id-start`).
pub struct NpyRecords {
    reader: NpyReader<BufReader<File>>,
    path: PathBuf,
    start: u64,
    row: usize,
}

impl NpyRecords {
    pub fn open(path: &Path, start: u64) -> CliResult<NpyRecords> {
        let f = open_input(path)?;
        let len = f
            .metadata()
            .map_err(|e| fail(format_args!("cannot read {}: {e}", path.display())))?
            .len();
        let reader = NpyReader::new(BufReader::with_capacity(1 << 20, f), path, len)?;
        Ok(NpyRecords {
            reader,
            path: path.to_owned(),
            start,
            row: 0,
        })
    }
}

impl NpyRecords {
    /// The dimension, from the header.
    pub fn dim(&self) -> usize {
        self.reader.dim
    }
}

impl Iterator for NpyRecords {
    type Item = CliResult<Item>;

    fn next(&mut self) -> Option<Self::Item> {
        let row = self.row;
        let v = self.reader.next()?;
        self.row += 1;
        Some(v.and_then(|vector| {
            Ok(Item {
                at: row,
                record: Record::new(row_id(self.start, row, &self.path)?, vector),
            })
        }))
    }
}

impl Source for NpyRecords {
    fn bytes(&self) -> u64 {
        self.reader.bytes
    }
    fn total_rows(&self) -> Option<u64> {
        Some(self.reader.rows as u64)
    }
    fn place(&self, at: usize) -> String {
        format!("row {at}")
    }
}

impl<R: BufRead> Source for JsonlReader<R> {
    fn bytes(&self) -> u64 {
        self.lines.bytes
    }
    fn place(&self, at: usize) -> String {
        format!("line {at}")
    }
}

/// The non-blank lines of a text file, trimmed and numbered from 1, with the bytes read so
/// far (what the JSONL readers share).
pub struct Lines<R> {
    inner: R,
    path: PathBuf,
    line: usize,
    buf: String,
    /// Bytes consumed so far.
    pub bytes: u64,
}

impl<R: BufRead> Lines<R> {
    pub fn new(inner: R, path: &Path) -> Self {
        Lines {
            inner,
            path: path.to_owned(),
            line: 0,
            buf: String::new(),
            bytes: 0,
        }
    }

    /// The next non-blank line and its number, `None` at the end.
    pub fn next_line(&mut self) -> CliResult<Option<(usize, &str)>> {
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
            if !self.buf.trim().is_empty() {
                return Ok(Some((self.line, self.buf.trim())));
            }
        }
    }

    /// An error about line `line` of the file.
    pub fn error(&self, line: usize, e: impl std::fmt::Display) -> crate::util::CliError {
        fail(format_args!("{} line {line}: {e}", self.path.display()))
    }
}

/// Reads JSONL records, one per line; blank lines are skipped.
pub struct JsonlReader<R> {
    lines: Lines<R>,
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
            lines: Lines::new(inner, path),
            done: false,
        }
    }

    fn next_item(&mut self) -> CliResult<Option<Item>> {
        let Some((at, text)) = self.lines.next_line()? else {
            return Ok(None);
        };
        match crate::jsonl::parse_record(text) {
            Ok(record) => Ok(Some(Item { at, record })),
            Err(e) => Err(self.lines.error(at, e)),
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
    fn bvecs_and_ivecs_rows() {
        let p = Path::new("x.bvecs");
        let mut b = Vec::new();
        for row in [[1u8, 2, 255], [0, 7, 9]] {
            b.extend_from_slice(&3i32.to_le_bytes());
            b.extend_from_slice(&row);
        }
        let rows: Vec<Vec<f32>> = FvecsReader::with_elem(&b[..], p, Elem::U8)
            .collect::<CliResult<_>>()
            .unwrap();
        assert_eq!(rows, vec![vec![1.0, 2.0, 255.0], vec![0.0, 7.0, 9.0]]);
        let m = msg(FvecsReader::with_elem(&b[..b.len() - 1], p, Elem::U8).collect());
        assert!(m.contains("truncated bvecs file at row 1"), "{m}");

        let ints = fvecs(&[&[0.0, 0.0]]); // any 4-byte values
        let mut r = FvecsReader::with_elem(&ints[..], Path::new("g.ivecs"), Elem::I32);
        assert_eq!(r.next_ints().unwrap(), Some(vec![0, 0]));
        assert_eq!(r.next_ints().unwrap(), None);
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
