//! `cairn import` and `cairn export` in the formats people have: Parquet, Arrow IPC (file and
//! stream), CSV with a vector column, `.npy` and `.fvecs` rows numbered with `--id-start`,
//! and JSONL mapped with `--id-field --vector-field --text-field --payload-fields`. The test
//! files are written with the same `arrow-*`/`parquet` crates the tool reads them with.

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, FixedSizeListBuilder, Float32Builder, Float64Builder, LargeListBuilder,
    ListBuilder, StringBuilder, StringDictionaryBuilder,
};
use arrow_array::types::Int32Type;
use arrow_array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, StructArray, UInt64Array,
};
use arrow_schema::{DataType, Field};
use cairndb::Record;
use serde_json::{Value, json};

use common::{cairn, ok, s};

fn fails(args: &[&str]) -> String {
    let o = cairn(args);
    assert!(!o.status.success(), "cairn {args:?} succeeded");
    let e = String::from_utf8(o.stderr).expect("UTF-8 errors");
    assert!(!e.contains("panicked"), "{e}");
    e
}

/// The records of a collection, as `cairn export` writes them (JSONL), sorted by id.
fn records(db: &str, c: &str) -> Vec<Record> {
    let mut v: Vec<Record> = ok(&["export", db, c])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

fn count(db: &str, c: &str) -> u64 {
    ok(&["count", db, c]).trim().parse().unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn write_parquet(path: &Path, batch: &RecordBatch) {
    let f = fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

fn write_ipc_file(path: &Path, batch: &RecordBatch) {
    let f = fs::File::create(path).unwrap();
    let mut w = arrow_ipc::writer::FileWriter::try_new(f, &batch.schema()).unwrap();
    w.write(batch).unwrap();
    w.finish().unwrap();
}

fn write_ipc_stream(path: &Path, batch: &RecordBatch) {
    let f = fs::File::create(path).unwrap();
    let mut w = arrow_ipc::writer::StreamWriter::try_new(f, &batch.schema()).unwrap();
    w.write(batch).unwrap();
    w.finish().unwrap();
}

fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(cols).unwrap()
}

/// Records of both id kinds with text and JSON payloads of every kind; vectors with values
/// that a decimal round trip would not keep.
fn sample(strings: bool) -> Vec<Value> {
    (0..7u64)
        .map(|i| {
            let id = if strings {
                json!(format!("doc/{i} \"é\" #{}", 7 - i))
            } else {
                json!(i * 1_000_000_007 + u64::from(i == 6) * (u64::MAX - 6_000_000_042))
            };
            let mut r = json!({
                "id": id,
                "vector": [0.1f32 * i as f32, -1e-38f32, 3.4e8f32 / (i + 1) as f32, 1.0 / 3.0],
            });
            if i % 2 == 0 {
                r["text"] = json!(format!("text {i} ünïcode 🦀"));
            }
            if i % 3 != 2 {
                r["payload"] = json!({
                    "n": i, "f": 0.5 + i as f64, "big": u64::MAX, "neg": -3, "b": i % 2 == 0,
                    "s": "x", "list": [1, "two", null, [3.5]], "obj": {"a": {"b": [true]}},
                    "null": null
                });
            }
            r
        })
        .collect()
}

fn write_jsonl(path: &Path, recs: &[Value]) {
    let text: String = recs.iter().map(|r| format!("{r}\n")).collect();
    fs::write(path, text).unwrap();
}

fn assert_same(a: &[Record], b: &[Record]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x, y);
        assert_eq!(bits(&x.vector), bits(&y.vector), "{:?}", x.id);
    }
}

/// JSONL → import → export Parquet (and Arrow) → import into a new collection → the same
/// records: ids, vectors bit for bit, text and JSON payloads, for both id kinds.
#[test]
fn parquet_and_arrow_exports_import_back_exactly() {
    for strings in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let db = s(&db);
        let src = dir.path().join("in.jsonl");
        write_jsonl(&src, &sample(strings));
        let id_type = if strings { "str" } else { "int" };
        for c in ["a", "from_parquet", "from_arrow"] {
            ok(&[
                "create",
                db,
                c,
                "--dim",
                "4",
                "--metric",
                "dot",
                "--id-type",
                id_type,
            ]);
        }
        ok(&["import", db, "a", s(&src)]);
        let original = records(db, "a");
        assert_eq!(original.len(), 7);

        let pq = dir.path().join("out.parquet");
        ok(&["export", db, "a", "--format", "parquet", "--output", s(&pq)]);
        let arrow = dir.path().join("out.arrow");
        // To standard output, by --format.
        let o = cairn(&["export", db, "a", "--format", "arrow"]);
        assert!(o.status.success());
        fs::write(&arrow, &o.stdout).unwrap();

        // The Parquet schema is the documented one.
        let f = fs::File::open(&pq).unwrap();
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).unwrap();
        let schema = r.schema().clone();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["id", "vector", "text", "payload"]);
        let want_id = if strings {
            DataType::Utf8
        } else {
            DataType::UInt64
        };
        assert_eq!(schema.field(0).data_type(), &want_id);
        assert!(
            matches!(schema.field(1).data_type(), DataType::FixedSizeList(item, 4)
                if item.data_type() == &DataType::Float32),
            "{:?}",
            schema.field(1)
        );
        assert_eq!(schema.field(3).data_type(), &DataType::Utf8);
        let rows: usize = r.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 7);

        ok(&["import", db, "from_parquet", s(&pq)]);
        ok(&["import", db, "from_arrow", s(&arrow)]);
        assert_same(&original, &records(db, "from_parquet"));
        assert_same(&original, &records(db, "from_arrow"));
        // And a filter selects what is exported.
        let some = dir.path().join("some.parquet");
        ok(&[
            "export",
            db,
            "a",
            "--filter",
            "b = true",
            "--output",
            s(&some),
        ]);
        ok(&["create", db, "some", "--dim", "4", "--id-type", id_type]);
        ok(&["import", db, "some", s(&some)]);
        assert_eq!(count(db, "some"), 3, "records 0, 4 and 6 have b = true");
    }
}

/// Every vector column type imports: FixedSizeList, List and LargeList of Float32 and
/// Float64 (converted), from Parquet, an Arrow IPC file and an Arrow IPC stream.
#[test]
fn each_vector_column_type_imports() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = s(&db);
    let rows: [[f64; 3]; 3] = [[1.5, -2.0, 0.25], [0.1, 0.2, 0.3], [1e-3, 7.0, -8.5]];
    let fsl32 = {
        let mut b = FixedSizeListBuilder::new(Float32Builder::new(), 3);
        for r in &rows {
            for x in r {
                b.values().append_value(*x as f32);
            }
            b.append(true);
        }
        Arc::new(b.finish()) as ArrayRef
    };
    let fsl64 = {
        let mut b = FixedSizeListBuilder::new(Float64Builder::new(), 3);
        for r in &rows {
            for x in r {
                b.values().append_value(*x);
            }
            b.append(true);
        }
        Arc::new(b.finish()) as ArrayRef
    };
    let list32 = {
        let mut b = ListBuilder::new(Float32Builder::new());
        for r in &rows {
            for x in r {
                b.values().append_value(*x as f32);
            }
            b.append(true);
        }
        Arc::new(b.finish()) as ArrayRef
    };
    let list64 = {
        let mut b = ListBuilder::new(Float64Builder::new());
        for r in &rows {
            for x in r {
                b.values().append_value(*x);
            }
            b.append(true);
        }
        Arc::new(b.finish()) as ArrayRef
    };
    let large32 = {
        let mut b = LargeListBuilder::new(Float32Builder::new());
        for r in &rows {
            for x in r {
                b.values().append_value(*x as f32);
            }
            b.append(true);
        }
        Arc::new(b.finish()) as ArrayRef
    };
    let large64 = {
        let mut b = LargeListBuilder::new(Float64Builder::new());
        for r in &rows {
            for x in r {
                b.values().append_value(*x);
            }
            b.append(true);
        }
        Arc::new(b.finish()) as ArrayRef
    };
    let want: Vec<Vec<f32>> = rows
        .iter()
        .map(|r| r.iter().map(|&x| x as f32).collect())
        .collect();
    let mut n = 0;
    for (kind, vectors) in [
        ("fsl32", fsl32),
        ("fsl64", fsl64),
        ("list32", list32),
        ("list64", list64),
        ("large32", large32),
        ("large64", large64),
    ] {
        let b = batch(vec![
            (
                "id",
                Arc::new(UInt64Array::from(vec![10, 11, 12])) as ArrayRef,
            ),
            ("vector", vectors),
        ]);
        for (ext, write) in [
            ("parquet", write_parquet as fn(&Path, &RecordBatch)),
            ("arrow", write_ipc_file),
            ("arrows", write_ipc_stream),
        ] {
            n += 1;
            let c = format!("c{n}");
            let file = dir.path().join(format!("{kind}.{ext}"));
            write(&file, &b);
            ok(&["create", db, &c, "--dim", "3", "--metric", "l2"]);
            ok(&["import", db, &c, s(&file)]);
            let got = records(db, &c);
            let ids: Vec<u64> = got.iter().map(|r| r.id.as_u64().unwrap()).collect();
            assert_eq!(ids, [10, 11, 12], "{kind}.{ext}");
            for (r, w) in got.iter().zip(&want) {
                assert_eq!(bits(&r.vector), bits(w), "{kind}.{ext}");
            }
        }
    }
    // A stream file named .ipc, and one told by --format whatever its name.
    let b = batch(vec![
        ("id", Arc::new(UInt64Array::from(vec![1])) as ArrayRef),
        ("vector", {
            let mut l = ListBuilder::new(Float32Builder::new());
            l.values().append_slice(&[1.0, 2.0, 3.0]);
            l.append(true);
            Arc::new(l.finish()) as ArrayRef
        }),
    ]);
    let odd = dir.path().join("vectors.bin");
    write_ipc_stream(&odd, &b);
    ok(&["create", db, "odd", "--dim", "3"]);
    ok(&["import", db, "odd", s(&odd), "--format", "arrow"]);
    assert_eq!(count(db, "odd"), 1);
}

/// A Hugging Face-style Parquet file: string ids under another name, an embedding column of
/// float64 lists, a text column, and payload columns of every type that maps to JSON; the
/// flags name them and --payload-fields picks some.
#[test]
fn hugging_face_style_parquet_with_mapped_columns() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = s(&db);
    let mut emb = ListBuilder::new(Float64Builder::new());
    for i in 0..3 {
        emb.values().append_slice(&[i as f64, 1.0, 0.5]);
        emb.append(true);
    }
    let mut tags = ListBuilder::new(StringBuilder::new());
    tags.values().append_value("a");
    tags.values().append_value("b");
    tags.append(true);
    tags.append(false);
    tags.append(true);
    let mut flag = BooleanBuilder::new();
    flag.append_value(true);
    flag.append_null();
    flag.append_value(false);
    let mut dict = StringDictionaryBuilder::<Int32Type>::new();
    dict.append_value("en");
    dict.append_value("fr");
    dict.append_value("en");
    let meta = StructArray::from(vec![
        (
            Arc::new(Field::new("year", DataType::Int64, true)),
            Arc::new(Int64Array::from(vec![Some(2020), None, Some(-1)])) as ArrayRef,
        ),
        (
            Arc::new(Field::new("score", DataType::Float64, true)),
            Arc::new(Float64Array::from(vec![0.5, 1.25, 2.0])) as ArrayRef,
        ),
    ]);
    let b = batch(vec![
        (
            "_id",
            Arc::new(StringArray::from(vec!["q1", "q2", "q3"])) as ArrayRef,
        ),
        ("embedding", Arc::new(emb.finish()) as ArrayRef),
        (
            "passage",
            Arc::new(StringArray::from(vec![Some("first"), None, Some("third")])) as ArrayRef,
        ),
        ("tags", Arc::new(tags.finish()) as ArrayRef),
        ("flag", Arc::new(flag.finish()) as ArrayRef),
        ("lang", Arc::new(dict.finish()) as ArrayRef),
        ("meta", Arc::new(meta) as ArrayRef),
        (
            "unused",
            Arc::new(Float64Array::from(vec![f64::NAN, 1.0, 2.0])) as ArrayRef,
        ),
    ]);
    let file = dir.path().join("train-00000-of-00001.parquet");
    write_parquet(&file, &b);
    let mapped = [
        "--id-field",
        "_id",
        "--vector-field",
        "embedding",
        "--text-field",
        "passage",
    ];
    for c in ["hf", "hf2"] {
        ok(&[
            "create",
            db,
            c,
            "--dim",
            "3",
            "--metric",
            "l2",
            "--id-type",
            "str",
        ]);
    }
    // Without --payload-fields every other column is payload, and `unused` holds a NaN.
    let mut args = vec!["import", db, "hf", s(&file)];
    args.extend(mapped);
    let e = fails(&args);
    assert!(
        e.contains("row 0") && e.contains("column `unused`") && e.contains("NaN"),
        "{e}"
    );
    assert!(!e.contains("committed"), "{e}");
    args.extend(["--payload-fields", "tags,flag,lang,meta"]);
    ok(&args);
    let got = records(db, "hf");
    let j: Vec<Value> = got
        .iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect();
    assert_eq!(
        j[0],
        json!({"id": "q1", "vector": [0.0, 1.0, 0.5], "text": "first", "payload": {
            "tags": ["a", "b"], "flag": true, "lang": "en", "meta": {"year": 2020, "score": 0.5}}})
    );
    assert_eq!(
        j[1],
        json!({"id": "q2", "vector": [1.0, 1.0, 0.5], "payload": {
            "lang": "fr", "meta": {"score": 1.25}}})
    );
    assert_eq!(j[2]["payload"]["meta"], json!({"year": -1, "score": 2.0}));
    // `meta.*` spreads the struct's fields into the payload.
    args.pop();
    args.push("lang,meta.*");
    args[2] = "hf2";
    ok(&args);
    let r: Value = serde_json::from_str(&ok(&["get", db, "hf2", "q1"])).unwrap();
    assert_eq!(
        r["payload"],
        json!({"lang": "en", "year": 2020, "score": 0.5})
    );
    // A filter on an imported payload field works.
    let n = ok(&["count", db, "hf2", "--filter", "year >= 0"]);
    assert_eq!(n.trim(), "1");
}

/// Chroma-style JSONL (`embedding`, `document`, `metadata`) imports with the flags; rows
/// without ids are numbered with --id-start.
#[test]
fn chroma_style_jsonl_with_flags() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = s(&db);
    let file = dir.path().join("chroma.jsonl");
    fs::write(
        &file,
        "{\"id\": \"a\", \"embedding\": [1, 0], \"document\": \"hello\", \"metadata\": {\"k\": 1}}\n\
         {\"id\": \"b\", \"embedding\": [0, 1], \"document\": null, \"metadata\": {\"k\": 2, \"s\": \"x\"}}\n\
         {\"id\": \"c\", \"embedding\": [1, 0]}\n",
    )
    .unwrap();
    let flags = [
        "--vector-field",
        "embedding",
        "--text-field",
        "document",
        "--payload-fields",
        "metadata.*",
    ];
    let mut args = vec!["import", db, "ch", s(&file)];
    args.extend(flags);
    ok(&args);
    let got = records(db, "ch");
    assert_eq!(
        serde_json::to_value(&got).unwrap(),
        json!([
            {"id": "a", "vector": [1.0, 0.0], "text": "hello", "payload": {"k": 1}},
            {"id": "b", "vector": [0.0, 1.0], "payload": {"k": 2, "s": "x"}},
            {"id": "c", "vector": [1.0, 0.0]},
        ])
    );
    // Without the flags the file is Cairn's own format, and the message says what is wrong.
    let e = fails(&["import", db, "ch2", s(&file)]);
    assert!(e.contains("line 1"), "{e}");
    // No ids: numbered from --id-start.
    let noid = dir.path().join("noid.jsonl");
    fs::write(
        &noid,
        "{\"embedding\": [1, 0]}\n\n{\"embedding\": [0, 1], \"x\": 5}\n",
    )
    .unwrap();
    ok(&[
        "import",
        db,
        "num",
        s(&noid),
        "--vector-field",
        "embedding",
        "--id-start",
        "100",
    ]);
    let ids: Vec<u64> = records(db, "num")
        .iter()
        .map(|r| r.id.as_u64().unwrap())
        .collect();
    assert_eq!(ids, [100, 101]);
    let e = fails(&[
        "import",
        db,
        "num2",
        s(&noid),
        "--vector-field",
        "embedding",
    ]);
    assert!(
        e.contains("line 1") && e.contains("no id field `id`") && e.contains("--id-start"),
        "{e}"
    );
}

/// CSV: a header line, the vector cell a JSON array string, ids by the collection's type,
/// the other columns payload (empty cells leave the key out).
#[test]
fn csv_with_a_json_array_vector_column() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = s(&db);
    let file = dir.path().join("data.csv");
    fs::write(
        &file,
        "id,vector,text,year,lang\n\
         1,\"[0.5, 1.5, -2]\",hello,2020,en\n\
         2,\"[1,2,3]\",,,fr\n",
    )
    .unwrap();
    ok(&["create", db, "c", "--dim", "3", "--metric", "l2"]);
    ok(&["import", db, "c", s(&file)]);
    assert_eq!(
        serde_json::to_value(records(db, "c")).unwrap(),
        json!([
            {"id": 1, "vector": [0.5, 1.5, -2.0], "text": "hello", "payload": {"year": 2020, "lang": "en"}},
            {"id": 2, "vector": [1.0, 2.0, 3.0], "payload": {"lang": "fr"}},
        ])
    );
    // Into a collection of string ids the same digits are string ids.
    ok(&["create", db, "s", "--dim", "3", "--id-type", "str"]);
    ok(&["import", db, "s", s(&file)]);
    let r: Value = serde_json::from_str(&ok(&["get", db, "s", "1"])).unwrap();
    assert_eq!(r["id"], json!("1"));
    // A cell that is no JSON array names its row and column.
    let bad = dir.path().join("bad.csv");
    fs::write(&bad, "id,vector\n1,\"[1,2,3]\"\n2,oops\n").unwrap();
    let e = fails(&["import", db, "c", s(&bad)]);
    assert!(
        e.contains("row 1, column `vector`") && e.contains("JSON array"),
        "{e}"
    );
}

fn write_npy(path: &Path, rows: &[[f32; 2]]) {
    let mut h = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, 2), }}",
        rows.len()
    );
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(h.len() as u16).to_le_bytes());
    b.extend_from_slice(h.as_bytes());
    for r in rows {
        for x in r {
            b.extend_from_slice(&x.to_le_bytes());
        }
    }
    fs::write(path, b).unwrap();
}

fn write_fvecs(path: &Path, rows: &[[f32; 2]]) {
    let mut b = Vec::new();
    for r in rows {
        b.extend_from_slice(&2i32.to_le_bytes());
        for x in r {
            b.extend_from_slice(&x.to_le_bytes());
        }
    }
    fs::write(path, b).unwrap();
}

/// `.npy` and `.fvecs` rows have no ids: numbered from 0 into an empty collection, and a
/// second file into a collection with records is refused unless --id-start says where its
/// ids start (it used to replace the first file's records silently).
#[test]
fn vector_files_are_numbered_and_never_silently_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = s(&db);
    let a = dir.path().join("a.npy");
    let b = dir.path().join("b.npy");
    write_npy(&a, &[[1.0, 0.0], [0.0, 1.0]]);
    write_npy(&b, &[[3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]);
    ok(&["create", db, "n", "--dim", "2", "--metric", "l2"]);
    ok(&["import", db, "n", s(&a)]);
    let e = fails(&["import", db, "n", s(&b)]);
    assert!(
        e.contains("has 2 records") && e.contains("--id-start"),
        "{e}"
    );
    assert_eq!(count(db, "n"), 2, "nothing written");
    ok(&["import", db, "n", s(&b), "--id-start", "2"]);
    let got = records(db, "n");
    let ids: Vec<u64> = got.iter().map(|r| r.id.as_u64().unwrap()).collect();
    assert_eq!(ids, [0, 1, 2, 3, 4]);
    assert_eq!(got[0].vector, [1.0, 0.0], "the first file's rows stay");
    assert_eq!(got[4].vector, [7.0, 8.0]);

    let f1 = dir.path().join("a.fvecs");
    write_fvecs(&f1, &[[1.0, 2.0], [3.0, 4.0]]);
    ok(&["create", db, "f", "--dim", "2", "--metric", "l2"]);
    ok(&["import", db, "f", s(&f1)]);
    let e = fails(&["import", db, "f", s(&f1)]);
    assert!(
        e.contains("has 2 records") && e.contains("--id-start"),
        "{e}"
    );
    ok(&["import", db, "f", s(&f1), "--id-start", "1000"]);
    assert_eq!(count(db, "f"), 4);
    // --id-start 0 replaces on purpose.
    ok(&["import", db, "f", s(&f1), "--id-start", "0"]);
    assert_eq!(count(db, "f"), 4);
    // Ids past u64::MAX are refused, naming the row.
    let e = fails(&[
        "import",
        db,
        "f",
        s(&f1),
        "--id-start",
        &u64::MAX.to_string(),
    ]);
    assert!(e.contains("row 1"), "{e}");
    // The mapping flags are for tables.
    let e = fails(&["import", db, "n", s(&a), "--id-field", "x"]);
    assert!(e.contains("vectors only"), "{e}");
}

/// A table without an id column needs --id-start (or --id-field); with it, rows are numbered.
#[test]
fn a_table_without_ids_needs_id_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = s(&db);
    let mut l = FixedSizeListBuilder::new(Float32Builder::new(), 2);
    for i in 0..3 {
        l.values().append_slice(&[i as f32, 1.0]);
        l.append(true);
    }
    let b = batch(vec![
        ("vector", Arc::new(l.finish()) as ArrayRef),
        (
            "doc_id",
            Arc::new(StringArray::from(vec!["x", "y", "z"])) as ArrayRef,
        ),
    ]);
    let file = dir.path().join("noid.parquet");
    write_parquet(&file, &b);
    let e = fails(&["import", db, "c", s(&file)]);
    assert!(
        e.contains("no id column `id`")
            && e.contains("`doc_id`")
            && e.contains("--id-field")
            && e.contains("--id-start"),
        "{e}"
    );
    assert!(
        !cairn(&["count", db, "c"]).status.success(),
        "no collection was created"
    );
    ok(&["import", db, "c", s(&file), "--id-start", "5"]);
    let ids: Vec<u64> = records(db, "c")
        .iter()
        .map(|r| r.id.as_u64().unwrap())
        .collect();
    assert_eq!(ids, [5, 6, 7]);
    let r: Value = serde_json::from_str(&ok(&["get", db, "c", "6"])).unwrap();
    assert_eq!(r["payload"], json!({"doc_id": "y"}));
    // Or the ids come from another column.
    ok(&["import", db, "s", s(&file), "--id-field", "doc_id"]);
    let r: Value = serde_json::from_str(&ok(&["get", db, "s", "z"])).unwrap();
    assert_eq!(r["vector"].as_array().unwrap().len(), 2);
    // --id-start with an id column is a mistake, said as such.
    let e = fails(&[
        "import",
        db,
        "s",
        s(&file),
        "--id-field",
        "doc_id",
        "--id-start",
        "1",
    ]);
    assert!(e.contains("exclude each other"), "{e}");
}

/// Hostile files: truncated or garbage Parquet (a clear error, nothing written), a row of the
/// wrong dimension (named), a null vector, a null element, a negative id, a huge string.
#[test]
fn hostile_tables_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = s(&db);
    let mut l = ListBuilder::new(Float32Builder::new());
    for i in 0..5 {
        l.values().append_slice(&[i as f32, 1.0]);
        l.append(true);
    }
    let good = batch(vec![
        (
            "id",
            Arc::new(UInt64Array::from(vec![0, 1, 2, 3, 4])) as ArrayRef,
        ),
        ("vector", Arc::new(l.finish()) as ArrayRef),
    ]);
    let file = dir.path().join("good.parquet");
    write_parquet(&file, &good);
    let bytes = fs::read(&file).unwrap();
    for (name, body) in [
        ("cut.parquet", bytes[..bytes.len() / 2].to_vec()),
        ("tail.parquet", bytes[..bytes.len() - 3].to_vec()),
        (
            "garbage.parquet",
            b"PAR1 this is not parquet at all".to_vec(),
        ),
        ("empty.parquet", Vec::new()),
        ("text.parquet", b"{\"id\": 1}\n".to_vec()),
    ] {
        let bad = dir.path().join(name);
        fs::write(&bad, body).unwrap();
        let e = fails(&["import", db, "c", s(&bad)]);
        assert!(
            e.contains("cannot read") && e.contains(name) && e.contains("Parquet"),
            "{name}: {e}"
        );
        assert!(!e.contains("committed"), "{name}: {e}");
        assert!(
            !cairn(&["count", db, "c"]).status.success(),
            "{name}: no collection was created"
        );
    }
    // Garbage in the middle of the data pages: an error naming the file, nothing half written.
    let mut mid = bytes.clone();
    for b in &mut mid[8..40] {
        *b = 0xAB;
    }
    let bad = dir.path().join("mid.parquet");
    fs::write(&bad, &mid).unwrap();
    let o = cairn(&["import", db, "m", s(&bad)]);
    if !o.status.success() {
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("mid.parquet") && !e.contains("panicked"), "{e}");
    }

    // Row 3 has the wrong dimension: with batches of 2, rows 0-1 are committed, rows 2-3 not.
    let mut l = ListBuilder::new(Float32Builder::new());
    for i in 0..5 {
        let n = if i == 3 { 3 } else { 2 };
        for _ in 0..n {
            l.values().append_value(i as f32 + 1.0);
        }
        l.append(true);
    }
    let b = batch(vec![
        (
            "id",
            Arc::new(UInt64Array::from(vec![0, 1, 2, 3, 4])) as ArrayRef,
        ),
        ("vector", Arc::new(l.finish()) as ArrayRef),
    ]);
    let wrong = dir.path().join("wrong.parquet");
    write_parquet(&wrong, &b);
    ok(&["create", db, "w", "--dim", "2"]);
    let e = fails(&["import", db, "w", s(&wrong), "--batch", "2"]);
    assert!(
        e.contains("row 3") && e.contains("dimension") && e.contains("2 records committed"),
        "{e}"
    );
    assert_eq!(count(db, "w"), 2);

    // A null vector, a null element, a negative id, each named by row and column.
    let mut l = ListBuilder::new(Float32Builder::new());
    l.values().append_slice(&[1.0, 2.0]);
    l.append(true);
    l.append(false);
    let b = batch(vec![
        ("id", Arc::new(UInt64Array::from(vec![0, 1])) as ArrayRef),
        ("vector", Arc::new(l.finish()) as ArrayRef),
    ]);
    let f = dir.path().join("nullvec.arrow");
    write_ipc_file(&f, &b);
    let e = fails(&["import", db, "nv", s(&f)]);
    assert!(
        e.contains("row 1, column `vector`: the vector is null"),
        "{e}"
    );
    let mut l = ListBuilder::new(Float32Builder::new());
    l.values().append_value(1.0);
    l.values().append_null();
    l.append(true);
    let b = batch(vec![
        ("id", Arc::new(Int64Array::from(vec![0])) as ArrayRef),
        ("vector", Arc::new(l.finish()) as ArrayRef),
    ]);
    let f = dir.path().join("nullelem.parquet");
    write_parquet(&f, &b);
    let e = fails(&["import", db, "ne", s(&f)]);
    assert!(
        e.contains("row 0, column `vector`: element 1 is null"),
        "{e}"
    );
    let mut l = ListBuilder::new(Float32Builder::new());
    l.values().append_value(1.0);
    l.append(true);
    let b = batch(vec![
        ("id", Arc::new(Int64Array::from(vec![-4])) as ArrayRef),
        ("vector", Arc::new(l.finish()) as ArrayRef),
    ]);
    let f = dir.path().join("neg.parquet");
    write_parquet(&f, &b);
    let e = fails(&["import", db, "neg", s(&f)]);
    assert!(
        e.contains("row 0, column `id`") && e.contains("negative"),
        "{e}"
    );
    // A vector column of the wrong type is named before anything is read.
    let b = batch(vec![
        ("id", Arc::new(Int64Array::from(vec![0])) as ArrayRef),
        ("vector", Arc::new(Int64Array::from(vec![3])) as ArrayRef),
    ]);
    let f = dir.path().join("inttype.parquet");
    write_parquet(&f, &b);
    let e = fails(&["import", db, "it", s(&f)]);
    assert!(e.contains("column `vector` is Int64"), "{e}");

    // A huge string: 4 MiB of text imports whole; a 2000-byte string id is refused by row.
    let huge = "é".repeat(2 << 20);
    let long_id = "x".repeat(2000);
    let mut l = ListBuilder::new(Float32Builder::new());
    for _ in 0..2 {
        l.values().append_slice(&[1.0, 1.0]);
        l.append(true);
    }
    let vectors: ArrayRef = Arc::new(l.finish());
    let b = batch(vec![
        (
            "id",
            Arc::new(StringArray::from(vec!["big", long_id.as_str()])) as ArrayRef,
        ),
        ("vector", vectors),
        (
            "text",
            Arc::new(StringArray::from(vec![huge.as_str(), "small"])) as ArrayRef,
        ),
    ]);
    let f = dir.path().join("huge.parquet");
    write_parquet(&f, &b);
    ok(&["create", db, "h", "--dim", "2", "--id-type", "str"]);
    let e = fails(&["import", db, "h", s(&f), "--batch", "1"]);
    assert!(e.contains("row 1") && e.contains("2000 bytes"), "{e}");
    let r: Value = serde_json::from_str(&ok(&["get", db, "h", "big"])).unwrap();
    assert_eq!(r["text"].as_str().map(str::len), Some(huge.len()));
}

/// `--no-vectors` leaves the vector column out; a binary format is not written to a terminal
/// (not testable here) but is to a pipe; --output is complete or absent.
#[test]
fn export_options() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = s(&db);
    let src = dir.path().join("in.jsonl");
    write_jsonl(&src, &sample(false));
    ok(&["import", db, "a", s(&src)]);
    let out = dir.path().join("nv.parquet");
    ok(&["export", db, "a", "--no-vectors", "--output", s(&out)]);
    let f = fs::File::open(&out).unwrap();
    let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).unwrap();
    let names: Vec<String> = r
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["id", "text", "payload"]);
    // The payload column is JSON text that parses back to each record's payload.
    let b = r.build().unwrap().next().unwrap().unwrap();
    let p = b.column(2).as_any().downcast_ref::<StringArray>().unwrap();
    let first: Value = serde_json::from_str(p.value(0)).unwrap();
    assert_eq!(first["list"], json!([1, "two", null, [3.5]]));
    assert!(p.is_null(2), "record 2 has no payload");
    // JSONL to a file, by default format.
    let j = dir.path().join("all.jsonl");
    ok(&["export", db, "a", "--output", s(&j)]);
    assert_eq!(fs::read_to_string(&j).unwrap(), ok(&["export", db, "a"]));
    // An export that fails leaves no file.
    let missing = dir.path().join("x.parquet");
    fails(&["export", db, "nope", "--output", s(&missing)]);
    assert!(!missing.exists());
    fails(&["export", db, "a", "--filter", "((", "--output", s(&missing)]);
    assert!(!missing.exists());
}

/// Dictionary-encoded columns (pandas categoricals, polars `Categorical`) are read as their
/// values: ids, text and payload.
#[test]
fn dictionary_encoded_columns_are_read_as_values() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = s(&db);
    let dict = |v: &[&str]| {
        let mut b = StringDictionaryBuilder::<Int32Type>::new();
        for x in v {
            b.append_value(x);
        }
        Arc::new(b.finish()) as ArrayRef
    };
    let mut l = FixedSizeListBuilder::new(Float32Builder::new(), 2);
    for i in 0..3 {
        l.values().append_slice(&[i as f32 + 1.0, 1.0]);
        l.append(true);
    }
    let b = batch(vec![
        ("id", dict(&["a", "b", "c"])),
        ("vector", Arc::new(l.finish()) as ArrayRef),
        ("text", dict(&["same", "same", "other"])),
        ("kind", dict(&["x", "y", "x"])),
    ]);
    let f = dir.path().join("dict.arrow");
    write_ipc_file(&f, &b);
    ok(&[
        "create",
        db,
        "d",
        "--dim",
        "2",
        "--metric",
        "l2",
        "--id-type",
        "str",
    ]);
    ok(&["import", db, "d", s(&f)]);
    let r: Value = serde_json::from_str(&ok(&["get", db, "d", "c"])).unwrap();
    assert_eq!(
        r,
        json!({"id": "c", "vector": [3.0, 1.0], "text": "other", "payload": {"kind": "x"}})
    );
}
