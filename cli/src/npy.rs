//! `.npy` files: a 2-D little-endian float32 (or float64, converted) array in C order, read
//! row by row.
//!
//! Hand-written rather than a crate: the maintained `.npy` crates (npyz, ndarray-npy) parse
//! the header with a Python-literal parser (py_literal: pest, num-bigint) or bring ndarray,
//! while the two header fields read here take a few lines; the reader is tested below and
//! through `cairn import`/`cairn bench`. (Checked again on 2026-12-03: npyz 0.9.1, the newest,
//! still depends on py_literal 0.4 and num-bigint 0.4 unconditionally; ndarray-npy is built on
//! ndarray. numpy writes the header as a Python dict literal, but only `descr`, `fortran_order`
//! and `shape` matter for a 2-D float array, and the reader refuses anything else by name.)

use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use cairndb::MAX_DIM;

use crate::util::{CliResult, fail};

/// Reads a `.npy` file holding a 2-D little-endian float32 or float64 array in C order.
pub struct NpyReader<R> {
    inner: R,
    path: PathBuf,
    /// Bytes per value: 4 (float32) or 8 (float64, converted to float32).
    elem: usize,
    /// Rows and columns, from the header.
    pub rows: usize,
    pub dim: usize,
    row: usize,
    /// Bytes consumed so far.
    pub bytes: u64,
}

impl<R: Read> NpyReader<R> {
    /// Reads and checks the header; `len` is the file size, to detect a truncated file early.
    pub fn new(mut inner: R, path: &Path, len: u64) -> CliResult<Self> {
        let bad = |what: &str| fail(format_args!("invalid npy file {}: {what}", path.display()));
        let read_err = |e: std::io::Error| {
            if e.kind() == ErrorKind::UnexpectedEof {
                bad("the file ends inside its header")
            } else {
                fail(format_args!("reading {} failed: {e}", path.display()))
            }
        };
        let mut pre = [0u8; 8];
        inner.read_exact(&mut pre).map_err(read_err)?;
        if &pre[..6] != b"\x93NUMPY" {
            return Err(bad("it does not start with the .npy magic string"));
        }
        let (header_len, prefix) = match pre[6] {
            1 => {
                let mut b = [0u8; 2];
                inner.read_exact(&mut b).map_err(read_err)?;
                (u16::from_le_bytes(b) as usize, 10)
            }
            2 | 3 => {
                let mut b = [0u8; 4];
                inner.read_exact(&mut b).map_err(read_err)?;
                (u32::from_le_bytes(b) as usize, 12)
            }
            v => return Err(bad(&format!("unsupported format version {v}"))),
        };
        if header_len > 1 << 20 {
            return Err(bad("header too large"));
        }
        let mut header = vec![0u8; header_len];
        inner.read_exact(&mut header).map_err(read_err)?;
        let header = String::from_utf8_lossy(&header);
        let (rows, dim, elem) = parse_npy_header(&header).map_err(|w| bad(&w))?;
        if dim == 0 || dim > MAX_DIM {
            return Err(bad(&format!(
                "rows have {dim} columns (expected 1 to {MAX_DIM})"
            )));
        }
        let data = (rows as u64)
            .checked_mul(dim as u64)
            .and_then(|n| n.checked_mul(elem as u64))
            .unwrap_or(u64::MAX);
        let start = (prefix + header_len) as u64;
        if len < start.saturating_add(data) {
            return Err(fail(format_args!(
                "truncated npy file {}: its header says {rows} × {dim} float{} ({data} bytes) \
                 but it holds {} bytes of data",
                path.display(),
                elem * 8,
                len.saturating_sub(start)
            )));
        }
        Ok(NpyReader {
            inner,
            path: path.to_owned(),
            elem,
            rows,
            dim,
            row: 0,
            bytes: start,
        })
    }

    fn next_row(&mut self) -> CliResult<Option<Vec<f32>>> {
        if self.row == self.rows {
            return Ok(None);
        }
        let mut body = vec![0u8; self.dim * self.elem];
        self.inner.read_exact(&mut body).map_err(|e| {
            if e.kind() == ErrorKind::UnexpectedEof {
                fail(format_args!(
                    "truncated npy file at row {} ({})",
                    self.row,
                    self.path.display()
                ))
            } else {
                fail(format_args!("reading {} failed: {e}", self.path.display()))
            }
        })?;
        self.bytes += body.len() as u64;
        self.row += 1;
        Ok(Some(if self.elem == 8 {
            body.chunks_exact(8)
                .map(|c| {
                    f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect()
        } else {
            body.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        }))
    }
}

impl<R: Read> Iterator for NpyReader<R> {
    type Item = CliResult<Vec<f32>>;

    fn next(&mut self) -> Option<Self::Item> {
        let r = self.next_row().transpose();
        if matches!(r, Some(Err(_))) {
            self.row = self.rows;
        }
        r
    }
}

/// The string value of `'key': '...'` in a `.npy` header dictionary.
fn npy_field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    Some(rest)
}

/// Rows, columns and bytes per value from a `.npy` header such as
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 128), }`.
fn parse_npy_header(header: &str) -> Result<(usize, usize, usize), String> {
    let descr = npy_field(header, "descr")
        .and_then(|r| {
            let q = r.chars().next().filter(|c| *c == '\'' || *c == '"')?;
            r[1..].split(q).next()
        })
        .ok_or("its header has no 'descr'")?;
    let elem = match descr {
        "<f4" => 4,
        "<f8" => 8,
        _ => {
            return Err(format!(
                "the array holds '{descr}'; only little-endian float32 ('<f4') and float64 \
                 ('<f8') are supported"
            ));
        }
    };
    let fortran = npy_field(header, "fortran_order").ok_or("its header has no 'fortran_order'")?;
    if !fortran.starts_with("False") {
        return Err("the array is in Fortran order; only C order is supported".into());
    }
    let shape = npy_field(header, "shape")
        .and_then(|r| r.strip_prefix('('))
        .and_then(|r| r.split(')').next())
        .ok_or("its header has no 'shape'")?;
    let dims = shape
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.parse::<usize>()
                .map_err(|_| format!("bad shape ({shape})"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    match dims[..] {
        [rows, dim] => Ok((rows, dim, elem)),
        _ => Err(format!(
            "the array has shape ({shape}); a 2-D array (rows, dimension) is needed"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, values: &[f32]) -> Vec<u8> {
        let mut h = header.to_owned();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(h.len() as u16).to_le_bytes());
        b.extend_from_slice(h.as_bytes());
        for v in values {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b
    }

    #[test]
    fn npy_rows_and_errors() {
        let p = Path::new("x.npy");
        let ok = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        );
        let r = NpyReader::new(&ok[..], p, ok.len() as u64).unwrap();
        assert_eq!((r.rows, r.dim), (2, 3));
        let rows: Vec<Vec<f32>> = r.collect::<CliResult<_>>().unwrap();
        assert_eq!(rows, vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]]);

        let err = |bytes: &[u8]| match NpyReader::new(bytes, p, bytes.len() as u64) {
            Err(crate::util::CliError::Failed(m)) => m,
            _ => panic!("expected an error"),
        };
        assert!(err(&ok[..ok.len() - 4]).contains("truncated npy file"));
        // float64 rows are converted (two f32 words hold the f64 1.5's bytes here).
        let f8 = npy(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }",
            &[0.0, 1.9375],
        );
        let rows: Vec<Vec<f32>> = NpyReader::new(&f8[..], p, f8.len() as u64)
            .unwrap()
            .collect::<CliResult<_>>()
            .unwrap();
        assert_eq!(rows, vec![vec![1.5f32]]);
        assert!(err(&f8[..f8.len() - 1]).contains("truncated npy file"));
        let i4 = npy(
            "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 1), }",
            &[0.0],
        );
        assert!(err(&i4).contains("only little-endian float32"));
        let one_d = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
            &[0.0; 3],
        );
        assert!(err(&one_d).contains("2-D"));
        assert!(err(b"not an npy file").contains("magic"));
    }
}
