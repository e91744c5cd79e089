//! `cairn export --format parquet|arrow|jsonl`: a collection's records written as they are
//! scanned, one batch at a time (bounded memory).
//!
//! Parquet and Arrow IPC files have the columns
//!
//! - `id`: `UInt64` (integer ids) or `Utf8` (string ids), not null;
//! - `vector`: `FixedSizeList<Float32>` of the collection's dimension, not null (left out
//!   with `--no-vectors`);
//! - `text`: `Utf8`, null for a record without text;
//! - `payload`: `Utf8`, the payload as one JSON object text (null when empty). One column
//!   rather than a column per key: payloads need not share keys or types, JSON keeps integers
//!   and floats apart, and the file is written as it is scanned. DuckDB reads fields with
//!   `payload->>'lang'`, polars with `pl.col("payload").str.json_decode()`.
//!
//! `cairn import` reads such a file back as it was (the `payload` column is spread).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{StringBuilder, UInt64Builder};
use arrow_array::{ArrayRef, FixedSizeListArray, Float32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use cairndb::{Id, IdType, Record};

use crate::util::{CliError, CliResult, fail};

/// The output formats of `cairn export`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// One record per line: {"id", "vector", "text", "payload"}, as `cairn import` reads.
    Jsonl,
    /// Apache Parquet (Snappy-compressed): columns id, vector, text, payload.
    Parquet,
    /// Arrow IPC file format (Feather v2): columns id, vector, text, payload.
    Arrow,
}

impl ExportFormat {
    /// The format an output file's extension names (JSONL for any other).
    pub fn of_path(path: &Path) -> ExportFormat {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("parquet" | "pq") => ExportFormat::Parquet,
            Some("arrow" | "ipc" | "feather") => ExportFormat::Arrow,
            _ => ExportFormat::Jsonl,
        }
    }
}

/// The Arrow schema of an export.
pub fn schema(id_type: IdType, dim: usize, vectors: bool) -> SchemaRef {
    let id = match id_type {
        IdType::Int => DataType::UInt64,
        IdType::Str => DataType::Utf8,
    };
    let mut fields = vec![Field::new("id", id, false)];
    if vectors {
        fields.push(Field::new(
            "vector",
            DataType::FixedSizeList(
                Arc::new(Field::new_list_field(DataType::Float32, true)),
                dim as i32,
            ),
            false,
        ));
    }
    fields.push(Field::new("text", DataType::Utf8, true));
    fields.push(Field::new("payload", DataType::Utf8, true));
    Arc::new(Schema::new(fields))
}

/// One batch of records as an Arrow record batch of `schema`.
pub fn to_batch(
    records: &[Record],
    schema: &SchemaRef,
    dim: usize,
    vectors: bool,
) -> CliResult<RecordBatch> {
    let id: ArrayRef = match schema.field(0).data_type() {
        DataType::UInt64 => {
            let mut b = UInt64Builder::with_capacity(records.len());
            for r in records {
                match &r.id {
                    Id::Int(n) => b.append_value(*n),
                    Id::Str(_) => return Err(fail("a string id in a collection of integer ids")),
                }
            }
            Arc::new(b.finish())
        }
        _ => {
            let mut b = StringBuilder::new();
            for r in records {
                match &r.id {
                    Id::Str(s) => b.append_value(s),
                    Id::Int(n) => b.append_value(n.to_string()),
                }
            }
            Arc::new(b.finish())
        }
    };
    let mut columns = vec![id];
    if vectors {
        let mut flat = Vec::with_capacity(records.len() * dim);
        for r in records {
            if r.vector.len() != dim {
                return Err(fail(format_args!(
                    "record {} has a vector of {} values, expected {dim}",
                    crate::ids::show(&r.id),
                    r.vector.len()
                )));
            }
            flat.extend_from_slice(&r.vector);
        }
        let item = Arc::new(Field::new_list_field(DataType::Float32, true));
        let list =
            FixedSizeListArray::try_new(item, dim as i32, Arc::new(Float32Array::from(flat)), None)
                .map_err(|e| fail(format_args!("cannot build the vector column: {e}")))?;
        columns.push(Arc::new(list));
    }
    let mut text = StringBuilder::new();
    let mut payload = StringBuilder::new();
    for r in records {
        text.append_option(r.text.as_deref());
        if r.payload.is_empty() {
            payload.append_null();
        } else {
            let j = serde_json::to_string(&r.payload).map_err(|e| {
                fail(format_args!(
                    "record {}: cannot write its payload as JSON: {e}",
                    crate::ids::show(&r.id)
                ))
            })?;
            payload.append_value(j);
        }
    }
    columns.push(Arc::new(text.finish()));
    columns.push(Arc::new(payload.finish()));
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| fail(format_args!("cannot build a record batch: {e}")))
}

/// Where export batches go.
pub enum Sink<W: Write + Send> {
    Jsonl(W),
    Parquet(Box<parquet::arrow::ArrowWriter<W>>),
    Arrow(Box<arrow_ipc::writer::FileWriter<W>>),
}

/// An output error: a closed pipe, a full disk…
fn io_err(e: impl std::fmt::Display) -> CliError {
    let m = e.to_string();
    if m.contains("Broken pipe") {
        CliError::OutputClosed
    } else {
        fail(format_args!("writing the output failed: {m}"))
    }
}

impl<W: Write + Send> Sink<W> {
    pub fn new(format: ExportFormat, out: W, schema: &SchemaRef, dim: usize) -> CliResult<Self> {
        Ok(match format {
            ExportFormat::Jsonl => Sink::Jsonl(out),
            ExportFormat::Parquet => {
                use parquet::basic::Compression;
                use parquet::file::properties::WriterProperties;
                // A row group is buffered in memory until written: about 64 MiB of vectors.
                let rows = ((64 << 20) / (dim.max(1) * 4)).clamp(1024, 1 << 20);
                let props = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_max_row_group_row_count(Some(rows))
                    .build();
                Sink::Parquet(Box::new(
                    parquet::arrow::ArrowWriter::try_new(out, schema.clone(), Some(props))
                        .map_err(io_err)?,
                ))
            }
            ExportFormat::Arrow => Sink::Arrow(Box::new(
                arrow_ipc::writer::FileWriter::try_new(out, schema).map_err(io_err)?,
            )),
        })
    }

    /// Writes a batch of records.
    pub fn write(
        &mut self,
        records: &[Record],
        schema: &SchemaRef,
        dim: usize,
        vectors: bool,
    ) -> CliResult<()> {
        match self {
            Sink::Jsonl(out) => {
                for r in records {
                    serde_json::to_writer(&mut *out, r).map_err(|e| match e.io_error_kind() {
                        Some(_) => CliError::output(e.into()),
                        None => fail(format_args!(
                            "record {}: cannot write JSON: {e}",
                            crate::ids::show(&r.id)
                        )),
                    })?;
                    out.write_all(b"\n").map_err(CliError::output)?;
                }
                Ok(())
            }
            Sink::Parquet(w) => w
                .write(&to_batch(records, schema, dim, vectors)?)
                .map_err(io_err),
            Sink::Arrow(w) => w
                .write(&to_batch(records, schema, dim, vectors)?)
                .map_err(io_err),
        }
    }

    /// Finishes the file (footers) and returns the writer, flushed.
    pub fn finish(self) -> CliResult<W> {
        let mut out = match self {
            Sink::Jsonl(out) => out,
            Sink::Parquet(w) => w.into_inner().map_err(io_err)?,
            Sink::Arrow(mut w) => {
                w.finish().map_err(io_err)?;
                w.into_inner().map_err(io_err)?
            }
        };
        out.flush().map_err(CliError::output)?;
        Ok(out)
    }
}
