//! `cairn import` from tables: Parquet, Arrow IPC (file and stream), CSV, and JSONL whose
//! fields are mapped with `--id-field --vector-field --text-field --payload-fields`; and the
//! rows of vector-only files (`.fvecs`, `.npy`) numbered from `--id-start`.
//!
//! Every table is read as Arrow record batches (the `arrow-*` and `parquet` crates), one batch
//! at a time, and each row becomes a [`Record`]:
//!
//! - id: the id column (`id`, or `--id-field`): unsigned or non-negative signed integers for
//!   a collection of integer ids, strings for string ids; or, without an id column, the row
//!   number plus `--id-start`.
//! - vector: `FixedSizeList`, `List` or `LargeList` of `Float32` or `Float64` (converted), or
//!   a string holding a JSON array of numbers (CSV cells).
//! - text: a string column, optional (null: no text).
//! - payload: every other column (or those of `--payload-fields`), each a payload key named
//!   after its column; a null cell leaves the key out. A column named `payload` that holds
//!   objects (a struct, or a string of JSON object text, as `cairn export` writes it) and a
//!   field listed as `NAME.*` are spread: their keys become payload keys.
//!
//! Rows are numbered from 0 in messages (`row 17, column `vector``).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use cairndb::{Id, Payload, Record, Value};

use crate::input::{Item, Source};
use crate::util::{CliResult, fail};

/// The formats `cairn import` reads.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportFormat {
    /// One JSON record per line.
    Jsonl,
    /// Apache Parquet.
    Parquet,
    /// Arrow IPC, the file format (`.arrow`, Feather v2) or the stream format.
    Arrow,
    /// Comma-separated values with a header line; the vector cell is a JSON array.
    Csv,
    /// A 2-D NumPy array of float32 (or float64), one row per record.
    Npy,
    /// `.fvecs`: int32 dimension then that many float32 per row.
    Fvecs,
}

impl ImportFormat {
    /// The format a file's extension names, or failing that its first bytes; JSONL otherwise.
    pub fn detect(path: &Path) -> ImportFormat {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        match ext.as_str() {
            "parquet" | "pq" => return ImportFormat::Parquet,
            "arrow" | "ipc" | "feather" | "arrows" => return ImportFormat::Arrow,
            "csv" => return ImportFormat::Csv,
            "npy" => return ImportFormat::Npy,
            "fvecs" => return ImportFormat::Fvecs,
            "jsonl" | "ndjson" | "json" => return ImportFormat::Jsonl,
            _ => {}
        }
        let mut head = [0u8; 8];
        let n = File::open(path)
            .and_then(|mut f| f.read(&mut head))
            .unwrap_or(0);
        let head = &head[..n];
        if head.starts_with(b"PAR1") {
            ImportFormat::Parquet
        } else if head.starts_with(b"ARROW1") || head.starts_with(&[0xff, 0xff, 0xff, 0xff]) {
            ImportFormat::Arrow
        } else if head.starts_with(b"\x93NUMPY") {
            ImportFormat::Npy
        } else {
            ImportFormat::Jsonl
        }
    }

    /// Whether a file of this format has no ids (its rows are numbered).
    pub fn has_no_ids(self) -> bool {
        matches!(self, ImportFormat::Npy | ImportFormat::Fvecs)
    }
}

/// Which fields of a table make a record: `--id-field`, `--vector-field`, `--text-field`,
/// `--payload-fields`, `--id-start`.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    pub id: Option<String>,
    pub vector: Option<String>,
    pub text: Option<String>,
    pub payload: Option<Vec<String>>,
    pub id_start: Option<u64>,
}

impl Mapping {
    /// Whether nothing was mapped (JSONL is then read as Cairn's own format).
    pub fn is_default(&self) -> bool {
        self.id.is_none()
            && self.vector.is_none()
            && self.text.is_none()
            && self.payload.is_none()
            && self.id_start.is_none()
    }
    fn vector_name(&self) -> &str {
        self.vector.as_deref().unwrap_or("vector")
    }
    fn text_name(&self) -> &str {
        self.text.as_deref().unwrap_or("text")
    }
}

/// One payload source: a column and whether its objects are spread into the payload.
#[derive(Debug, Clone)]
struct PayloadCol {
    name: String,
    spread: bool,
}

/// The columns of a table that make a record, resolved against its schema.
#[derive(Debug, Clone)]
struct Columns {
    id: Option<String>,
    vector: String,
    text: Option<String>,
    payload: Vec<PayloadCol>,
}

fn list_columns(names: &[&str]) -> String {
    let shown: Vec<String> = names.iter().take(20).map(|n| format!("`{n}`")).collect();
    let more = if names.len() > 20 {
        format!(" and {} more", names.len() - 20)
    } else {
        String::new()
    };
    format!("{}{more}", shown.join(", "))
}

/// Resolves the mapping against the column names of a table (or the fields of a JSONL line,
/// for `names` = None, where nothing can be checked ahead).
fn resolve(m: &Mapping, names: &[&str], what: &str) -> Result<Columns, String> {
    let has = |n: &str| names.contains(&n);
    let missing = |flag: &str, n: &str| {
        format!(
            "no {what} `{n}` (it has {}); name the right one with {flag}",
            list_columns(names)
        )
    };
    let id = match (&m.id, m.id_start) {
        (Some(_), Some(_)) => {
            return Err(
                "--id-field and --id-start exclude each other: --id-start numbers \
                        the rows of a file without ids"
                    .into(),
            );
        }
        (None, Some(_)) if has("id") => {
            return Err(format!(
                "there is an id {what} `id`, and --id-start numbers the rows of a file without \
                 ids (leave it out to use the ids)"
            ));
        }
        (_, Some(_)) => None,
        (Some(n), None) if has(n) => Some(n.clone()),
        (Some(n), None) => return Err(missing("--id-field", n)),
        (None, None) if has("id") => Some("id".to_owned()),
        (None, None) => {
            return Err(format!(
                "no id {what} `id` (it has {}); name it with --id-field NAME, or number the \
                 rows with --id-start N (ids N, N+1, …)",
                list_columns(names)
            ));
        }
    };
    let vector = m.vector_name().to_owned();
    if !has(&vector) {
        return Err(missing("--vector-field", &vector));
    }
    // A JSONL line may leave out its text or a payload field (as null would); a table's
    // columns are all there or a flag names the wrong one.
    let lenient = what == "field";
    let text = match &m.text {
        Some(n) if has(n) => Some(n.clone()),
        Some(_) if lenient => None,
        Some(n) => return Err(missing("--text-field", n)),
        None => has("text").then(|| "text".to_owned()),
    };
    let taken = |n: &str| Some(n) == id.as_deref() || n == vector || Some(n) == text.as_deref();
    let payload = match &m.payload {
        Some(list) => {
            let mut out = Vec::new();
            for raw in list {
                let (name, spread) = match raw.strip_suffix(".*") {
                    Some(n) => (n, true),
                    None => (raw.as_str(), raw == "payload"),
                };
                if !has(name) {
                    if lenient {
                        continue;
                    }
                    return Err(missing("--payload-fields", name));
                }
                if taken(name) {
                    return Err(format!(
                        "--payload-fields: `{name}` is the id, vector or text {what}"
                    ));
                }
                out.push(PayloadCol {
                    name: name.to_owned(),
                    spread,
                });
            }
            out
        }
        None => names
            .iter()
            .filter(|n| !taken(n))
            .map(|n| PayloadCol {
                name: (*n).to_owned(),
                spread: *n == "payload",
            })
            .collect(),
    };
    Ok(Columns {
        id,
        vector,
        text,
        payload,
    })
}

// ---------------------------------------------------------------------------------------
// Cells to record parts.

/// The id in row `i` of an id column.
fn id_at(a: &dyn Array, i: usize) -> Result<Id, String> {
    if a.is_null(i) {
        return Err("the id is null".into());
    }
    let signed = |v: i64| {
        u64::try_from(v)
            .map(Id::Int)
            .map_err(|_| format!("the id {v} is negative; integer ids are 0 to {}", u64::MAX))
    };
    Ok(match a.data_type() {
        DataType::UInt8 => Id::Int(a.as_primitive::<UInt8Type>().value(i).into()),
        DataType::UInt16 => Id::Int(a.as_primitive::<UInt16Type>().value(i).into()),
        DataType::UInt32 => Id::Int(a.as_primitive::<UInt32Type>().value(i).into()),
        DataType::UInt64 => Id::Int(a.as_primitive::<UInt64Type>().value(i)),
        DataType::Int8 => signed(a.as_primitive::<Int8Type>().value(i).into())?,
        DataType::Int16 => signed(a.as_primitive::<Int16Type>().value(i).into())?,
        DataType::Int32 => signed(a.as_primitive::<Int32Type>().value(i).into())?,
        DataType::Int64 => signed(a.as_primitive::<Int64Type>().value(i))?,
        DataType::Utf8 => Id::Str(a.as_string::<i32>().value(i).to_owned()),
        DataType::LargeUtf8 => Id::Str(a.as_string::<i64>().value(i).to_owned()),
        DataType::Utf8View => Id::Str(a.as_string_view().value(i).to_owned()),
        other => return Err(format!("ids are integers or strings, not {other}")),
    })
}

fn id_type_ok(t: &DataType) -> bool {
    matches!(
        t,
        DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
    )
}

fn float_list_ok(item: &DataType) -> bool {
    matches!(item, DataType::Float32 | DataType::Float64)
}

fn vector_type_ok(t: &DataType) -> bool {
    match t {
        DataType::FixedSizeList(f, _) | DataType::List(f) | DataType::LargeList(f) => {
            float_list_ok(f.data_type())
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        _ => false,
    }
}

/// The floats of one list value (a sliced array of Float32 or Float64).
fn floats(values: &dyn Array) -> Result<Vec<f32>, String> {
    if let Some(k) = (0..values.len()).find(|&k| values.is_null(k)) {
        return Err(format!("element {k} is null"));
    }
    match values.data_type() {
        DataType::Float32 => Ok(values.as_primitive::<Float32Type>().values().to_vec()),
        DataType::Float64 => Ok(values
            .as_primitive::<Float64Type>()
            .values()
            .iter()
            .map(|&x| x as f32)
            .collect()),
        other => Err(format!("elements are {other}, expected Float32 or Float64")),
    }
}

/// A JSON array of numbers in a string cell.
fn json_vector(s: &str) -> Result<Vec<f32>, String> {
    serde_json::from_str::<Vec<f32>>(s).map_err(|e| {
        format!(
            "expected a JSON array of numbers such as [0.1, 0.2]: {}",
            crate::jsonl::humanize(&e)
        )
    })
}

/// The vector in row `i` of a vector column.
fn vector_at(a: &dyn Array, i: usize) -> Result<Vec<f32>, String> {
    if a.is_null(i) {
        return Err("the vector is null".into());
    }
    match a.data_type() {
        DataType::FixedSizeList(..) => floats(&a.as_fixed_size_list().value(i)),
        DataType::List(_) => floats(&a.as_list::<i32>().value(i)),
        DataType::LargeList(_) => floats(&a.as_list::<i64>().value(i)),
        DataType::Utf8 => json_vector(a.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => json_vector(a.as_string::<i64>().value(i)),
        DataType::Utf8View => json_vector(a.as_string_view().value(i)),
        other => Err(format!(
            "a vector column is a list of Float32 or Float64, not {other}"
        )),
    }
}

fn text_type_ok(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
    )
}

fn text_at(a: &dyn Array, i: usize) -> Option<String> {
    if a.is_null(i) {
        return None;
    }
    Some(match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().value(i).to_owned(),
        DataType::LargeUtf8 => a.as_string::<i64>().value(i).to_owned(),
        DataType::Utf8View => a.as_string_view().value(i).to_owned(),
        _ => return None,
    })
}

/// Why a payload column of this type cannot be read, if it cannot.
fn payload_type_problem(t: &DataType) -> Option<String> {
    match t {
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => Some(format!("{t} has no JSON form")),
        DataType::Union(..) | DataType::Map(..) | DataType::RunEndEncoded(..) => {
            Some(format!("{t} is not supported"))
        }
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::FixedSizeList(f, _)
        | DataType::ListView(f)
        | DataType::LargeListView(f) => payload_type_problem(f.data_type()),
        DataType::Struct(fields) => fields
            .iter()
            .find_map(|f| payload_type_problem(f.data_type())),
        DataType::Dictionary(_, v) => payload_type_problem(v),
        _ => None,
    }
}

fn finite(x: f64) -> Result<Value, String> {
    if x.is_finite() {
        Ok(Value::Float(x))
    } else {
        Err(format!(
            "{x} is not a value a payload can hold (JSON has no NaN or infinity)"
        ))
    }
}

/// The JSON value of row `i` of a payload column (`None` for null).
fn value_at(a: &dyn Array, i: usize) -> Result<Option<Value>, String> {
    if a.is_null(i) {
        return Ok(None);
    }
    let list = |v: ArrayRef| -> Result<Option<Value>, String> {
        let mut out = Vec::with_capacity(v.len());
        for k in 0..v.len() {
            out.push(
                value_at(&v, k)
                    .map_err(|e| format!("element {k}: {e}"))?
                    .unwrap_or(Value::Null),
            );
        }
        Ok(Some(Value::List(out)))
    };
    let v = match a.data_type() {
        DataType::Null => return Ok(None),
        DataType::Boolean => Value::Bool(a.as_boolean().value(i)),
        DataType::Int8 => Value::Int(a.as_primitive::<Int8Type>().value(i).into()),
        DataType::Int16 => Value::Int(a.as_primitive::<Int16Type>().value(i).into()),
        DataType::Int32 => Value::Int(a.as_primitive::<Int32Type>().value(i).into()),
        DataType::Int64 => Value::Int(a.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => Value::Int(a.as_primitive::<UInt8Type>().value(i).into()),
        DataType::UInt16 => Value::Int(a.as_primitive::<UInt16Type>().value(i).into()),
        DataType::UInt32 => Value::Int(a.as_primitive::<UInt32Type>().value(i).into()),
        DataType::UInt64 => Value::from_u64(a.as_primitive::<UInt64Type>().value(i)),
        // A float32 becomes the float64 its shortest decimal form names (0.1f32 -> 0.1).
        DataType::Float32 => {
            let x = a.as_primitive::<Float32Type>().value(i);
            finite(x.to_string().parse::<f64>().unwrap_or(f64::from(x)))?
        }
        DataType::Float64 => finite(a.as_primitive::<Float64Type>().value(i))?,
        DataType::Utf8 => Value::Str(a.as_string::<i32>().value(i).to_owned()),
        DataType::LargeUtf8 => Value::Str(a.as_string::<i64>().value(i).to_owned()),
        DataType::Utf8View => Value::Str(a.as_string_view().value(i).to_owned()),
        DataType::List(_) => return list(a.as_list::<i32>().value(i)),
        DataType::LargeList(_) => return list(a.as_list::<i64>().value(i)),
        DataType::FixedSizeList(..) => return list(a.as_fixed_size_list().value(i)),
        DataType::Struct(fields) => {
            let s = a.as_struct();
            let mut out = BTreeMap::new();
            for (f, col) in fields.iter().zip(s.columns()) {
                if let Some(v) =
                    value_at(col, i).map_err(|e| format!("field `{}`: {e}", f.name()))?
                {
                    out.insert(f.name().clone(), v);
                }
            }
            Value::Object(out)
        }
        DataType::Dictionary(..) => {
            let d = a.as_any_dictionary();
            let key = d.normalized_keys()[i];
            return value_at(d.values(), key);
        }
        // Dates, times, timestamps, decimals, durations: their text form.
        _ => {
            Value::Str(arrow_cast::display::array_value_to_string(a, i).map_err(|e| e.to_string())?)
        }
    };
    Ok(Some(v))
}

/// Builds the record of row `i` of a batch.
fn record_at(
    batch: &RecordBatch,
    cols: &Columns,
    i: usize,
    row: usize,
    id_start: Option<u64>,
) -> Result<Record, String> {
    let col = |n: &str| {
        batch
            .column_by_name(n)
            .ok_or_else(|| format!("column `{n}` is missing from this batch"))
    };
    fn in_col(n: &str) -> impl Fn(String) -> String + '_ {
        move |e| format!("column `{n}`: {e}")
    }
    let id = match (&cols.id, id_start) {
        (Some(n), _) => id_at(col(n)?, i).map_err(in_col(n))?,
        (None, Some(start)) => Id::Int(start.checked_add(row as u64).ok_or_else(|| {
            format!(
                "--id-start {start} plus the row number is above {}",
                u64::MAX
            )
        })?),
        (None, None) => return Err("no id column".into()),
    };
    let vector = vector_at(col(&cols.vector)?, i).map_err(in_col(&cols.vector))?;
    let text = match &cols.text {
        Some(n) => text_at(col(n)?, i),
        None => None,
    };
    let mut payload = Payload::new();
    for p in &cols.payload {
        let a = col(&p.name)?;
        if p.spread && matches!(a.data_type(), DataType::Utf8 | DataType::LargeUtf8) {
            if let Some(Value::Str(s)) = &value_at(a, i).map_err(in_col(&p.name))? {
                let obj: Payload = serde_json::from_str(s).map_err(|e| {
                    format!(
                        "column `{}`: expected a JSON object of payload fields: {}",
                        p.name,
                        crate::jsonl::humanize(&e)
                    )
                })?;
                spread(&mut payload, obj, &p.name)?;
            }
            continue;
        }
        if let Some(v) = value_at(a, i).map_err(in_col(&p.name))? {
            put(&mut payload, &p.name, p.spread, v)?;
        }
    }
    Ok(Record {
        id,
        vector,
        text,
        payload,
    })
}

/// Puts the value of column `name` into the payload: under its name, or its keys when it is
/// an object to spread.
fn put(payload: &mut Payload, name: &str, spread_it: bool, mut v: Value) -> Result<(), String> {
    if spread_it && let Value::Object(o) = &mut v {
        return spread(payload, std::mem::take(o), name);
    }
    if payload.insert(name.to_owned(), v).is_some() {
        return Err(format!("payload key `{name}` is given twice"));
    }
    Ok(())
}

fn spread(payload: &mut Payload, obj: BTreeMap<String, Value>, from: &str) -> Result<(), String> {
    for (k, v) in obj {
        if payload.insert(k.clone(), v).is_some() {
            return Err(format!("payload key `{k}` (from `{from}`) is given twice"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Tables: Parquet, Arrow IPC, CSV.

type Batches = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>>>;

/// The records of a table, read one record batch at a time.
pub struct TableRecords {
    batches: Batches,
    path: PathBuf,
    cols: Columns,
    id_start: Option<u64>,
    batch: Option<RecordBatch>,
    /// The next row within `batch`, and the number of rows before `batch`.
    i: usize,
    base: usize,
    total: Option<u64>,
    done: bool,
    str_ids: bool,
}

/// Rows per record batch read from a file.
const READ_BATCH: usize = 4096;

impl TableRecords {
    /// Opens a Parquet, Arrow IPC or CSV file and checks its columns against the mapping.
    pub fn open(format: ImportFormat, path: &Path, m: &Mapping) -> CliResult<TableRecords> {
        let bad = |e: &dyn std::fmt::Display| {
            fail(format_args!(
                "cannot read {} as {}: {e}",
                path.display(),
                match format {
                    ImportFormat::Parquet => "Parquet",
                    ImportFormat::Arrow => "Arrow IPC",
                    _ => "CSV",
                }
            ))
        };
        let file = crate::input::open_input(path)?;
        let (schema, batches, total): (SchemaRef, Batches, Option<u64>) = match format {
            ImportFormat::Parquet => {
                use parquet::arrow::ProjectionMask;
                use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
                let b = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| bad(&e))?;
                let schema = b.schema().clone();
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                let cols = resolve(m, &names, "column")
                    .map_err(|e| fail(format_args!("{}: {e}", path.display())))?;
                // Read only the columns that make records.
                let wanted: Vec<usize> = schema
                    .fields()
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| cols.uses(f.name()))
                    .map(|(k, _)| k)
                    .collect();
                let mask = ProjectionMask::roots(b.parquet_schema(), wanted);
                let total = u64::try_from(b.metadata().file_metadata().num_rows()).ok();
                let r = b
                    .with_batch_size(READ_BATCH)
                    .with_projection(mask)
                    .build()
                    .map_err(|e| bad(&e))?;
                (schema, Box::new(r), total)
            }
            ImportFormat::Arrow => {
                let mut f = BufReader::with_capacity(1 << 20, file);
                let mut magic = [0u8; 6];
                let is_file = f.read_exact(&mut magic).is_ok() && &magic == b"ARROW1";
                f.seek(SeekFrom::Start(0)).map_err(|e| bad(&e))?;
                if is_file {
                    let r = arrow_ipc::reader::FileReader::try_new(f, None).map_err(|e| bad(&e))?;
                    (r.schema(), Box::new(r), None)
                } else {
                    let r =
                        arrow_ipc::reader::StreamReader::try_new(f, None).map_err(|e| bad(&e))?;
                    (r.schema(), Box::new(r), None)
                }
            }
            _ => {
                let fmt = arrow_csv::reader::Format::default().with_header(true);
                let mut f = BufReader::with_capacity(1 << 20, file);
                let (inferred, _) = fmt.infer_schema(&mut f, Some(1000)).map_err(|e| bad(&e))?;
                f.seek(SeekFrom::Start(0)).map_err(|e| bad(&e))?;
                // Vectors (JSON arrays) and text are read as text whatever they look like.
                let as_text = [m.vector_name(), m.text_name()];
                let fields: Vec<Field> = inferred
                    .fields()
                    .iter()
                    .map(|f| {
                        if as_text.contains(&f.name().as_str()) {
                            Field::new(f.name(), DataType::Utf8, true)
                        } else {
                            f.as_ref().clone()
                        }
                    })
                    .collect();
                let schema = Arc::new(Schema::new(fields));
                let r = arrow_csv::ReaderBuilder::new(schema.clone())
                    .with_header(true)
                    .with_batch_size(READ_BATCH)
                    .build(f)
                    .map_err(|e| bad(&e))?;
                (schema, Box::new(r), None)
            }
        };
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let cols = resolve(m, &names, "column")
            .map_err(|e| fail(format_args!("{}: {e}", path.display())))?;
        // A dictionary-encoded column is read as its values (see `undictionary`).
        let typ = |n: &str| match schema.field_with_name(n).map(|f| f.data_type()) {
            Ok(DataType::Dictionary(_, v)) => (**v).clone(),
            Ok(t) => t.clone(),
            Err(_) => DataType::Null,
        };
        let wrong = |n: &str, t: &DataType, want: &str| {
            fail(format_args!(
                "{}: column `{n}` is {t}; {want}",
                path.display()
            ))
        };
        if let Some(n) = &cols.id {
            let t = typ(n);
            if !id_type_ok(&t) {
                return Err(wrong(n, &t, "an id column holds integers or strings"));
            }
        }
        let t = typ(&cols.vector);
        if !vector_type_ok(&t) {
            return Err(wrong(
                &cols.vector,
                &t,
                "a vector column is a FixedSizeList, List or LargeList of Float32 or Float64 \
                 (or a string of JSON arrays)",
            ));
        }
        if let Some(n) = &cols.text {
            let t = typ(n);
            if !text_type_ok(&t) {
                return Err(wrong(n, &t, "a text column holds strings"));
            }
        }
        for p in &cols.payload {
            if let Some(why) = payload_type_problem(&typ(&p.name)) {
                return Err(fail(format_args!(
                    "{}: payload column `{}`: {why}; leave it out with --payload-fields",
                    path.display(),
                    p.name
                )));
            }
        }
        Ok(TableRecords {
            batches,
            path: path.to_owned(),
            cols,
            id_start: m.id_start,
            batch: None,
            i: 0,
            base: 0,
            total,
            done: false,
            str_ids: false,
        })
    }

    /// Reads integer ids as their decimal strings (CSV into a collection of string ids).
    pub fn ids_as_strings(&mut self) {
        self.str_ids = true;
    }

    /// Whether the rows are numbered (`--id-start`) rather than read with their ids.
    pub fn numbers_rows(&self) -> bool {
        self.cols.id.is_none()
    }

    fn next_item(&mut self) -> CliResult<Option<Item>> {
        loop {
            if let Some(b) = &self.batch {
                if self.i < b.num_rows() {
                    let row = self.base + self.i;
                    let mut rec =
                        record_at(b, &self.cols, self.i, row, self.id_start).map_err(|e| {
                            fail(format_args!("{} row {row}, {e}", self.path.display()))
                        })?;
                    if self.str_ids
                        && let Id::Int(n) = rec.id
                    {
                        rec.id = Id::Str(n.to_string());
                    }
                    self.i += 1;
                    return Ok(Some(Item {
                        at: row,
                        record: rec,
                    }));
                }
                self.base += b.num_rows();
            }
            self.batch = None;
            self.i = 0;
            match self.batches.next() {
                None => return Ok(None),
                Some(Ok(b)) => {
                    self.batch = Some(undictionary(b).map_err(|e| {
                        fail(format_args!(
                            "cannot read {} after row {}: {e}",
                            self.path.display(),
                            self.base
                        ))
                    })?)
                }
                Some(Err(e)) => {
                    return Err(fail(format_args!(
                        "cannot read {} after row {}: {e}",
                        self.path.display(),
                        self.base
                    )));
                }
            }
        }
    }
}

/// The batch with its dictionary-encoded columns (pandas categoricals, polars `Categorical`)
/// decoded to their value type, so that each cell is read in constant time.
fn undictionary(b: RecordBatch) -> Result<RecordBatch, ArrowError> {
    let schema = b.schema();
    if !schema
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Dictionary(..)))
    {
        return Ok(b);
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(fields.capacity());
    for (f, c) in schema.fields().iter().zip(b.columns()) {
        match f.data_type() {
            DataType::Dictionary(_, v) => {
                columns.push(arrow_cast::cast(c, v)?);
                fields.push(Field::new(f.name(), (**v).clone(), true));
            }
            _ => {
                columns.push(c.clone());
                fields.push(f.as_ref().clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

impl Columns {
    fn uses(&self, name: &str) -> bool {
        Some(name) == self.id.as_deref()
            || name == self.vector
            || Some(name) == self.text.as_deref()
            || self.payload.iter().any(|p| p.name == name)
    }
}

impl Iterator for TableRecords {
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

impl Source for TableRecords {
    fn bytes(&self) -> u64 {
        0
    }
    fn place(&self, at: usize) -> String {
        format!("row {at}")
    }
    fn total_rows(&self) -> Option<u64> {
        self.total
    }
}

// ---------------------------------------------------------------------------------------
// JSONL with mapped fields.

/// JSONL records whose fields are named by a [`Mapping`] (Chroma's `embedding`, `document`,
/// `metadata`…): each line is a JSON object.
pub struct JsonlMapped {
    lines: crate::input::Lines<BufReader<File>>,
    m: Mapping,
    /// Records read so far (the row number for `--id-start`).
    rows: usize,
    done: bool,
}

impl JsonlMapped {
    pub fn open(path: &Path, m: &Mapping) -> CliResult<JsonlMapped> {
        if m.id.is_some() && m.id_start.is_some() {
            return Err(fail(
                "--id-field and --id-start exclude each other: --id-start numbers the rows of \
                 a file without ids",
            ));
        }
        let f = crate::input::open_input(path)?;
        Ok(JsonlMapped {
            lines: crate::input::Lines::new(BufReader::with_capacity(1 << 20, f), path),
            m: m.clone(),
            rows: 0,
            done: false,
        })
    }

    fn record(m: &Mapping, rows: usize, text: &str) -> Result<Record, String> {
        let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
            .map_err(|e| format!("expected a JSON object: {}", crate::jsonl::humanize(&e)))?;
        let names: Vec<&str> = obj.keys().map(String::as_str).collect();
        let cols = resolve(m, &names, "field")?;
        let field = |n: &str| format!("field `{n}`");
        let id = match &cols.id {
            Some(n) => serde_json::from_value::<Id>(obj[n].clone())
                .map_err(|_| format!("{}: expected a whole number or a string", field(n)))?,
            None => {
                let start = m.id_start.unwrap_or(0);
                Id::Int(start.checked_add(rows as u64).ok_or_else(|| {
                    format!(
                        "--id-start {start} plus the row number is above {}",
                        u64::MAX
                    )
                })?)
            }
        };
        let vector = serde_json::from_value::<Vec<f32>>(obj[&cols.vector].clone())
            .map_err(|e| format!("{}: {}", field(&cols.vector), crate::jsonl::humanize(&e)))?;
        let text = match cols.text.as_ref().map(|n| (n, &obj[n])) {
            None | Some((_, serde_json::Value::Null)) => None,
            Some((_, serde_json::Value::String(s))) => Some(s.clone()),
            Some((n, _)) => return Err(format!("{}: expected a string", field(n))),
        };
        let mut payload = Payload::new();
        for p in &cols.payload {
            let raw = &obj[&p.name];
            if raw.is_null() {
                continue;
            }
            let v: Value = serde_json::from_value(raw.clone()).map_err(|e| {
                format!(
                    "{}: not a value a payload can hold: {}",
                    field(&p.name),
                    crate::jsonl::humanize(&e)
                )
            })?;
            put(&mut payload, &p.name, p.spread, v)?;
        }
        Ok(Record {
            id,
            vector,
            text,
            payload,
        })
    }

    fn next_item(&mut self) -> CliResult<Option<Item>> {
        let Some((at, text)) = self.lines.next_line()? else {
            return Ok(None);
        };
        let record = Self::record(&self.m, self.rows, text).map_err(|e| self.lines.error(at, e))?;
        self.rows += 1;
        Ok(Some(Item { at, record }))
    }

    /// Whether the rows are numbered (no id field).
    pub fn numbers_rows(&self) -> bool {
        self.m.id_start.is_some()
    }
}

impl Iterator for JsonlMapped {
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

impl Source for JsonlMapped {
    fn bytes(&self) -> u64 {
        self.lines.bytes
    }
    fn place(&self, at: usize) -> String {
        format!("line {at}")
    }
}
