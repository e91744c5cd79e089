//! Python bindings for Cairn (`import cairndb`).
//!
//! The Python-facing API lives here; `cairndb/__init__.py` re-exports it and adds the
//! LangChain store. Conventions:
//! - Every Cairn error becomes a subclass of `cairndb.CairnError` with the same message.
//! - The GIL is released while Rust searches, ingests, compacts or waits for an fsync.
//! - Vectors come in as numpy arrays (float32 is read in place; float64 is converted) or as
//!   lists; a wrong dtype or shape is a `TypeError`/`ValueError` that names what was expected.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

use cairndb::{
    Collection, CollectionConfig, Database, Durability, Error, Filter, Fusion, Hit, Id, IdType,
    Legs, Metric, Options, Payload, PayloadChange, Record, RerankQuery, Reranker, ScanOptions,
    SearchRequest, TextConfig, TextStats, Update, Value,
};
use numpy::{IntoPyArray, PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::import_exception;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

// The exception classes are defined in Python (`cairndb/_errors.py`) so that each can also
// derive from the built-in exception it behaves like (ValueError, LookupError, OSError).
import_exception!(cairndb._errors, InvalidInputError);
import_exception!(cairndb._errors, CollectionNotFoundError);
import_exception!(cairndb._errors, CollectionExistsError);
import_exception!(cairndb._errors, LockedError);
import_exception!(cairndb._errors, CorruptionError);
import_exception!(cairndb._errors, ClosedError);
import_exception!(cairndb._errors, StorageError);
import_exception!(cairndb._errors, ForkedProcessError);
import_exception!(cairndb._errors, ReadOnlyError);
import_exception!(cairndb._errors, IdCollisionError);

/// The pure-Python helpers for frames, Arrow results and embedding functions.
fn frames(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    py.import("cairndb._frames")
}

/// Maps a Cairn error to its Python exception class, keeping the message.
fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::DimensionMismatch { .. }
        | Error::NonFiniteVector { .. }
        | Error::NonFiniteQuery { .. }
        | Error::ZeroVector { .. }
        | Error::ZeroQuery
        | Error::InvalidName { .. }
        | Error::InvalidArgument(_)
        | Error::CollectionConfigMismatch { .. }
        | Error::InvalidFilter(_)
        | Error::FilterSyntax { .. }
        | Error::FilterTooDeep { .. }
        | Error::VectorTooLarge { .. }
        | Error::BatchTooLarge { .. } => InvalidInputError::new_err(msg),
        Error::CollectionNotFound { .. } => CollectionNotFoundError::new_err(msg),
        Error::CollectionExists { .. } => CollectionExistsError::new_err(msg),
        Error::Locked { .. } => LockedError::new_err(msg),
        Error::ReadOnly { .. } => ReadOnlyError::new_err(msg),
        Error::IdCollision { .. } => IdCollisionError::new_err(msg),
        Error::Corruption { .. } => CorruptionError::new_err(msg),
        Error::CollectionDropped { .. } | Error::Cancelled => ClosedError::new_err(msg),
        Error::ForkedProcess { .. } => ForkedProcessError::new_err(msg),
        _ => StorageError::new_err(msg),
    }
}

fn invalid(msg: impl Into<String>) -> PyErr {
    InvalidInputError::new_err(msg.into())
}

fn closed(what: &str) -> PyErr {
    ClosedError::new_err(format!("{what} is closed"))
}

// ---------------------------------------------------------------------------------------------
// Conversions

/// A Python value → a payload value: None, bool, int (within i64 or u64), float (finite), str,
/// a list or tuple of values, a dict with str keys, or a numpy scalar. `field` names the value
/// in errors; lists and dicts nest at most `Value::MAX_DEPTH` deep (checked on the way down,
/// so a deeply nested input is an error, never a deep recursion).
fn value_from_py(field: &str, v: &Bound<'_, PyAny>) -> PyResult<Value> {
    value_from_py_at(field, v, 0)
}

fn value_from_py_at(path: &str, v: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if v.is_none() {
        return Ok(Value::Null);
    }
    // bool before int: Python's bool is a subclass of int.
    if v.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(v.extract()?));
    }
    if v.is_instance_of::<PyInt>() {
        return int_from_py(path, v);
    }
    if v.is_instance_of::<PyFloat>() {
        return float_from_py(path, v.extract()?);
    }
    if v.is_instance_of::<PyString>() {
        return Ok(Value::Str(v.extract()?));
    }
    let is_list = v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>();
    let is_dict = v.is_instance_of::<PyDict>();
    if (is_list || is_dict) && depth >= Value::MAX_DEPTH {
        return Err(invalid(format!(
            "payload field {path:?}: nested deeper than {} levels of lists/dicts",
            Value::MAX_DEPTH
        )));
    }
    if is_list {
        let mut out = Vec::new();
        for (i, item) in v.try_iter()?.enumerate() {
            out.push(value_from_py_at(
                &format!("{path}[{i}]"),
                &item?,
                depth + 1,
            )?);
        }
        return Ok(Value::List(out));
    }
    if let Ok(d) = v.cast::<PyDict>() {
        let mut out = BTreeMap::new();
        for (k, item) in d.iter() {
            let key: String = k.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "payload field {path:?}: dict keys must be str, found {}",
                    type_name(&k)
                ))
            })?;
            let value = value_from_py_at(&format!("{path}.{key}"), &item, depth + 1)?;
            out.insert(key, value);
        }
        return Ok(Value::Object(out));
    }
    // numpy scalars: integers have __index__, floats convert with __float__.
    if v.hasattr("__index__")?
        && let Ok(i) = v.call_method0("__index__")
    {
        return int_from_py(path, &i);
    }
    if v.hasattr("__float__")?
        && let Ok(f) = v.extract::<f64>()
    {
        return float_from_py(path, f);
    }
    Err(invalid(format!(
        "payload field {path:?}: unsupported value of type {} (use None, bool, int, float, str, list or dict)",
        type_name(v)
    )))
}

fn int_from_py(path: &str, v: &Bound<'_, PyAny>) -> PyResult<Value> {
    if let Ok(i) = v.extract::<i64>() {
        return Ok(Value::Int(i));
    }
    v.extract::<u64>().map(Value::UInt).map_err(|_| {
        invalid(format!(
            "payload field {path:?}: integer out of range (from -2**63 to 2**64 - 1)"
        ))
    })
}

fn float_from_py(path: &str, x: f64) -> PyResult<Value> {
    if x.is_finite() {
        Ok(Value::Float(x))
    } else {
        Err(invalid(format!(
            "payload field {path:?}: {x} is not a finite number (JSON has no NaN or infinity)"
        )))
    }
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

fn value_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    value_to_py_at(py, v, 0)
}

/// A payload value → Python; stored values nest at most `Value::MAX_DEPTH` deep, deeper ones
/// (never stored) are refused rather than recursed into.
fn value_to_py_at<'py>(py: Python<'py>, v: &Value, depth: usize) -> PyResult<Bound<'py, PyAny>> {
    if v.is_container() && depth >= Value::MAX_DEPTH {
        return Err(invalid(format!(
            "payload value nested deeper than {} levels",
            Value::MAX_DEPTH
        )));
    }
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Str(s) => PyString::new(py, s).into_any(),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::UInt(u) => u.into_pyobject(py)?.into_any(),
        Value::Float(f) => PyFloat::new(py, *f).into_any(),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::List(l) => {
            let out = PyList::empty(py);
            for c in l {
                out.append(value_to_py_at(py, c, depth + 1)?)?;
            }
            out.into_any()
        }
        Value::Object(o) => {
            let out = PyDict::new(py);
            for (k, c) in o {
                out.set_item(k, value_to_py_at(py, c, depth + 1)?)?;
            }
            out.into_any()
        }
    })
}

fn payload_from_py(p: &Bound<'_, PyAny>) -> PyResult<Payload> {
    let dict = p.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err(format!("a payload must be a dict, not {}", type_name(p)))
    })?;
    let mut out = BTreeMap::new();
    for (k, v) in dict.iter() {
        let key: String = k.extract().map_err(|_| {
            PyTypeError::new_err(format!("payload keys must be str, found {}", type_name(&k)))
        })?;
        out.insert(key.clone(), value_from_py(&key, &v)?);
    }
    Ok(out)
}

fn payload_to_py<'py>(py: Python<'py>, p: &Payload) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in p {
        d.set_item(k, value_to_py(py, v)?)?;
    }
    Ok(d)
}

/// Rows of vectors from a 2-D numpy array or a sequence of sequences.
fn matrix_from_py(v: &Bound<'_, PyAny>, n: usize, dim: usize) -> PyResult<Vec<Vec<f32>>> {
    if let Ok(a) = v.extract::<PyReadonlyArray2<'_, f32>>() {
        return rows_of(a.as_array(), n, dim);
    }
    if let Ok(a) = v.extract::<PyReadonlyArray2<'_, f64>>() {
        let a = a.as_array().mapv(|x| x as f32);
        return rows_of(a.view(), n, dim);
    }
    if v.hasattr("dtype")? && v.hasattr("shape")? {
        let shape: Vec<usize> = v.getattr("shape")?.extract()?;
        let dtype = v.getattr("dtype")?.str()?.to_string();
        if shape.len() != 2 {
            return Err(invalid(format!(
                "vectors must be a 2-D array of shape (n, {dim}), got shape {shape:?}"
            )));
        }
        return Err(PyTypeError::new_err(format!(
            "vectors must have dtype float32 or float64, got {dtype}"
        )));
    }
    let mut rows = Vec::with_capacity(n);
    for row in v.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "vectors must be a 2-D numpy array or a list of lists, not {}",
            type_name(v)
        ))
    })? {
        rows.push(vector_from_py(&row?, dim, "each vector")?);
    }
    if rows.len() != n {
        return Err(invalid(format!("got {} ids but {} vectors", n, rows.len())));
    }
    Ok(rows)
}

/// The request `search` and `explain` build from their arguments.
#[allow(clippy::too_many_arguments)]
fn request_from_py(
    dim: usize,
    vector: Option<&Bound<'_, PyAny>>,
    text: Option<String>,
    k: usize,
    filter: Option<&Bound<'_, PyAny>>,
    fusion: Option<&str>,
    alpha: Option<f32>,
    rrf_k: Option<f32>,
    ef: Option<usize>,
    exact: bool,
    candidates: Option<usize>,
) -> PyResult<SearchRequest> {
    let mut req = match (vector, text) {
        (Some(v), t) if !v.is_none() => {
            let r = SearchRequest::new(vector_from_py(v, dim, "the query vector")?);
            match t {
                Some(t) => r.text(t),
                None => r,
            }
        }
        (_, Some(t)) => SearchRequest::by_text(t),
        _ => return Err(invalid("search needs a vector, a text, or both")),
    };
    req = req.k(k).exact(exact);
    if let Some(ef) = ef {
        req = req.ef(ef);
    }
    if let Some(c) = candidates {
        req = req.candidates(c);
    }
    if let Some(f) = filter.filter(|f| !f.is_none()) {
        req = req.filter(filter_from_py(f)?);
    }
    req = req.fusion(fusion_from_py(fusion, alpha, rrf_k)?);
    Ok(req)
}

/// `fusion` (None: the engine's default; "rrf", "weighted", "dbsf") with its parameter.
fn fusion_from_py(
    fusion: Option<&str>,
    alpha: Option<f32>,
    rrf_k: Option<f32>,
) -> PyResult<Fusion> {
    Ok(match fusion {
        None => Fusion::default(),
        Some("rrf") => Fusion::Rrf {
            k: rrf_k.unwrap_or(60.0),
        },
        Some("weighted") => Fusion::Weighted {
            alpha: alpha.unwrap_or(0.5),
        },
        Some("dbsf") => Fusion::Dbsf,
        Some(other) => {
            return Err(invalid(format!(
                "unknown fusion {other:?} (use \"rrf\", \"weighted\" or \"dbsf\")"
            )));
        }
    })
}

/// `TextStats` as a dict: `{"documents": int, "total_len": int, "df": {term: int}}`.
fn text_stats_to_py<'py>(py: Python<'py>, s: &TextStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("documents", s.documents)?;
    d.set_item("total_len", s.total_len)?;
    let df = PyDict::new(py);
    for (t, n) in &s.df {
        df.set_item(t, n)?;
    }
    d.set_item("df", df)?;
    Ok(d)
}

/// A dict as `Collection.text_stats` returns it (or a sum of them) back into `TextStats`.
fn text_stats_from_py(o: &Bound<'_, PyAny>) -> PyResult<TextStats> {
    let bad = |why: &str| {
        invalid(format!(
            "text_stats must be a dict {{\"documents\": int, \"total_len\": int, \"df\": \
             {{term: int}}}} as Collection.text_stats returns it: {why}"
        ))
    };
    let d = o.cast::<PyDict>().map_err(|_| bad("not a dict"))?;
    let count = |key: &str| -> PyResult<u64> {
        d.get_item(key)?
            .ok_or_else(|| bad(&format!("{key:?} is missing")))?
            .extract::<u64>()
            .map_err(|_| bad(&format!("{key:?} is not an int from 0 to 2**64 - 1")))
    };
    let mut df = BTreeMap::new();
    let terms = d.get_item("df")?.ok_or_else(|| bad("\"df\" is missing"))?;
    let terms = terms
        .cast::<PyDict>()
        .map_err(|_| bad("\"df\" is not a dict"))?;
    for (t, n) in terms.iter() {
        let t: String = t
            .extract()
            .map_err(|_| bad("a term of \"df\" is not a str"))?;
        let n: u64 = n.extract().map_err(|_| {
            bad(&format!(
                "the df of {t:?} is not an int from 0 to 2**64 - 1"
            ))
        })?;
        df.insert(t, n);
    }
    Ok(TextStats {
        documents: count("documents")?,
        total_len: count("total_len")?,
        df,
    })
}

/// A Python callable `(text, hits) -> scores` as Cairn's re-ranking hook. Called with the
/// GIL taken again (the search itself runs without it). An exception it raises is kept in
/// `raised` and re-raised by `search` once the search has returned.
struct PyReranker {
    f: Py<PyAny>,
    raised: Mutex<Option<PyErr>>,
}

impl Reranker for PyReranker {
    fn rerank(&self, query: &RerankQuery<'_>, candidates: &[Hit]) -> Result<Vec<f32>, Error> {
        Python::attach(|py| {
            let call = || -> PyResult<Vec<f32>> {
                let hits = candidates
                    .iter()
                    .cloned()
                    .map(|h| Bound::new(py, PyHit::from(h)))
                    .collect::<PyResult<Vec<_>>>()?;
                let out = self.f.bind(py).call1((query.text, hits))?;
                if let Ok(a) = out.extract::<PyReadonlyArray1<'_, f32>>() {
                    return Ok(a.as_array().to_vec());
                }
                if let Ok(a) = out.extract::<PyReadonlyArray1<'_, f64>>() {
                    return Ok(a.as_array().iter().map(|&x| x as f32).collect());
                }
                out.try_iter()
                    .map_err(|_| {
                        PyTypeError::new_err(format!(
                            "rerank must return a sequence of numbers, not {}",
                            type_name(&out)
                        ))
                    })?
                    .map(|x| {
                        let x = x?;
                        x.extract::<f64>().map(|v| v as f32).map_err(|_| {
                            PyTypeError::new_err(format!(
                                "rerank must return numbers, found {}",
                                type_name(&x)
                            ))
                        })
                    })
                    .collect()
            };
            call().map_err(|e| {
                let msg = e.to_string();
                if let Ok(mut slot) = self.raised.lock() {
                    *slot = Some(e);
                }
                Error::InvalidArgument(format!("the re-ranker raised {msg}"))
            })
        })
    }
}

/// What `search_batch` returns: ids (a uint64 array, or an object array of str in a
/// collection of str ids) and scores, one row per query.
type IdsAndScores<'py> = (Bound<'py, PyAny>, Bound<'py, PyAny>);

/// Query vectors from a 2-D numpy array or a sequence of vectors (any number of rows).
fn queries_from_py(v: &Bound<'_, PyAny>, dim: usize) -> PyResult<Vec<Vec<f32>>> {
    let n = if let Ok(a) = v.extract::<PyReadonlyArray2<'_, f32>>() {
        a.as_array().nrows()
    } else if let Ok(a) = v.extract::<PyReadonlyArray2<'_, f64>>() {
        a.as_array().nrows()
    } else if v.hasattr("dtype")? && v.hasattr("shape")? {
        // Not a 2-D float array: matrix_from_py names the dtype or the shape.
        0
    } else {
        v.len().map_err(|_| {
            PyTypeError::new_err(format!(
                "queries must be a 2-D numpy array or a list of vectors, not {}",
                type_name(v)
            ))
        })?
    };
    let rows = matrix_from_py(v, n, dim)?;
    if let Some(bad) = rows.iter().position(|r| r.len() != dim) {
        return Err(invalid(format!(
            "query {bad} has {} values but the collection's dimension is {dim}",
            rows[bad].len()
        )));
    }
    Ok(rows)
}

fn rows_of(
    a: numpy::ndarray::ArrayView2<'_, f32>,
    n: usize,
    dim: usize,
) -> PyResult<Vec<Vec<f32>>> {
    let (rows, cols) = a.dim();
    if rows != n {
        return Err(invalid(format!("got {n} ids but {rows} vectors")));
    }
    if cols != dim {
        return Err(invalid(format!(
            "vectors have {cols} columns but the collection's dimension is {dim}"
        )));
    }
    Ok(a.outer_iter().map(|r| r.to_vec()).collect())
}

/// One vector from a 1-D numpy array or a sequence of numbers.
fn vector_from_py(v: &Bound<'_, PyAny>, dim: usize, what: &str) -> PyResult<Vec<f32>> {
    if let Ok(a) = v.extract::<PyReadonlyArray1<'_, f32>>() {
        return Ok(match a.as_slice() {
            Ok(s) => s.to_vec(),
            Err(_) => a.as_array().to_vec(),
        });
    }
    if let Ok(a) = v.extract::<PyReadonlyArray1<'_, f64>>() {
        return Ok(a.as_array().iter().map(|&x| x as f32).collect());
    }
    if v.hasattr("dtype")? && v.hasattr("shape")? {
        let shape: Vec<usize> = v.getattr("shape")?.extract()?;
        let dtype = v.getattr("dtype")?.str()?.to_string();
        if shape.len() != 1 {
            return Err(invalid(format!(
                "{what} must be a 1-D array of length {dim}, got shape {shape:?}"
            )));
        }
        return Err(PyTypeError::new_err(format!(
            "{what} must have dtype float32 or float64, got {dtype}"
        )));
    }
    if v.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a sequence of numbers, not str"
        )));
    }
    let mut out = Vec::with_capacity(dim);
    let iter = v.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "{what} must be a numpy array or a sequence of numbers, not {}",
            type_name(v)
        ))
    })?;
    for x in iter {
        let x = x?;
        if x.is_instance_of::<PyString>() || x.is_instance_of::<PyList>() {
            return Err(PyTypeError::new_err(format!(
                "{what} must hold numbers, found {}",
                type_name(&x)
            )));
        }
        out.push(x.extract::<f64>().map_err(|_| {
            PyTypeError::new_err(format!("{what} must hold numbers, found {}", type_name(&x)))
        })? as f32);
    }
    Ok(out)
}

/// One id: an `int` from 0 to 2**64 - 1 (or a numpy integer) or a `str`. Whether it is the
/// collection's kind of id, and a string's length, the library checks (`InvalidInputError`).
/// A bool, a float or anything else is a `TypeError`; a str that is not valid Unicode (a lone
/// surrogate) an `InvalidInputError`.
fn id_from_py(x: &Bound<'_, PyAny>) -> PyResult<Id> {
    if x.is_instance_of::<PyString>() {
        return x.extract::<String>().map(Id::Str).map_err(|e| {
            let shown = x.repr().map_or_else(|_| "?".into(), |r| r.to_string());
            let shown: String = shown.chars().take(60).collect();
            invalid(format!(
                "string id {shown} is not valid UTF-8 ({}): ids are Unicode text without lone surrogates",
                e.value(x.py())
            ))
        });
    }
    let not_an_id =
        || PyTypeError::new_err(format!("ids must be int or str, found {}", type_name(x)));
    if x.is_instance_of::<PyBool>() || x.is_instance_of::<PyFloat>() {
        return Err(not_an_id());
    }
    if !x.is_instance_of::<PyInt>() && !x.hasattr("__index__")? {
        return Err(not_an_id());
    }
    match x.extract::<u64>() {
        Ok(i) => Ok(Id::Int(i)),
        Err(_) if x.extract::<i128>().is_ok() || x.is_instance_of::<PyInt>() => {
            Err(invalid(format!("id {x} is outside 0..2**64")))
        }
        // A numpy bool and other types with an __index__ that refuses.
        Err(_) => Err(not_an_id()),
    }
}

/// An optional id argument (`after=`): `None` when not given or `None`.
fn opt_id_from_py(x: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Id>> {
    x.filter(|x| !x.is_none()).map(id_from_py).transpose()
}

/// Whether `ids` is one id (an int, a str, or a numpy scalar: it has `__index__` and no
/// length) rather than a sequence of them. A bool counts as one (and is refused as an id).
fn is_one_id(ids: &Bound<'_, PyAny>) -> bool {
    ids.is_instance_of::<PyInt>()
        || ids.is_instance_of::<PyString>()
        || (ids.hasattr("__index__").unwrap_or(false) && !ids.hasattr("__len__").unwrap_or(true))
}

/// Ids: one id, a sequence of ids (ints or strs), or a 1-D numpy array of integers (or of
/// strings).
fn ids_from_py(ids: &Bound<'_, PyAny>) -> PyResult<Vec<Id>> {
    if is_one_id(ids) {
        return Ok(vec![id_from_py(ids)?]);
    }
    if let Ok(a) = ids.extract::<PyReadonlyArray1<'_, u64>>() {
        return Ok(a.as_array().iter().map(|&i| Id::Int(i)).collect());
    }
    if let Ok(a) = ids.extract::<PyReadonlyArray1<'_, i64>>() {
        return a
            .as_array()
            .iter()
            .map(|&i| {
                u64::try_from(i)
                    .map(Id::Int)
                    .map_err(|_| invalid(format!("id {i} is negative")))
            })
            .collect();
    }
    if ids.is_instance_of::<PyBytes>() || ids.is_instance_of::<PyDict>() {
        return Err(PyTypeError::new_err(format!(
            "ids must be an int, a str or a sequence of them, not {}",
            type_name(ids)
        )));
    }
    let iter = ids.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "ids must be an int, a str or a sequence of them, not {}",
            type_name(ids)
        ))
    })?;
    iter.map(|x| id_from_py(&x?)).collect()
}

/// An id as Python sees it: an `int` or a `str`.
fn id_to_py<'py>(py: Python<'py>, id: &Id) -> PyResult<Bound<'py, PyAny>> {
    Ok(match id {
        Id::Int(n) => n.into_pyobject(py)?.into_any(),
        Id::Str(s) => PyString::new(py, s).into_any(),
    })
}

/// A hash of an id for `__hash__`: an int id is its own hash (as before string ids).
fn id_hash(id: &Id) -> u64 {
    use std::hash::{Hash, Hasher};
    match id {
        Id::Int(n) => *n,
        Id::Str(s) => {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            s.hash(&mut h);
            h.finish()
        }
    }
}

/// `int` or `str`, for `repr`.
fn id_repr(id: &Id) -> String {
    match id {
        Id::Int(n) => n.to_string(),
        Id::Str(s) => format!("{s:?}"),
    }
}

/// `id_type`: `"int"` or `"str"`; anything else is an `InvalidInputError` naming the choices.
fn parse_id_type(v: &str) -> PyResult<IdType> {
    match v {
        "int" => Ok(IdType::Int),
        "str" => Ok(IdType::Str),
        other => Err(invalid(format!(
            "id_type must be \"int\" or \"str\", not {other:?}"
        ))),
    }
}

/// A filter from the text syntax (`str`) or a Chroma/MongoDB-style dict. A dict is read by
/// the library's JSON filter reader (`Filter::from_deserializer`: the same language, rules and
/// messages as JSON in Rust and the CLI), through a [`PyJson`] copy of it.
fn filter_from_py(f: &Bound<'_, PyAny>) -> PyResult<Filter> {
    if let Ok(s) = f.extract::<String>() {
        return Filter::parse(&s).map_err(to_py);
    }
    if f.is_instance_of::<PyDict>() {
        let tree = PyJson::from_py(f, 0)?;
        return Filter::from_deserializer(tree).map_err(to_py);
    }
    Err(PyTypeError::new_err(format!(
        "filter must be a str (text syntax) or a dict, not {}",
        type_name(f)
    )))
}

/// A JSON-like copy of a Python filter dict, in the dict's key order, read by serde.
enum PyJson {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    List(Vec<PyJson>),
    Dict(Vec<(String, PyJson)>),
}

impl PyJson {
    /// How deep dicts and lists may nest in a filter dict: enough for `$and` (two levels: the
    /// dict and its list) nested `Filter::MAX_DEPTH` deep, with room to spare, so the library
    /// reports the depth of anything it could accept. Deeper input is refused here, before
    /// the copy could exhaust the stack.
    const MAX_NESTING: usize = 2 * Filter::MAX_DEPTH + 8;

    /// `depth`: the dicts and lists enclosing `v`.
    fn from_py(v: &Bound<'_, PyAny>, depth: usize) -> PyResult<PyJson> {
        if v.is_none() {
            return Ok(PyJson::Null);
        }
        // bool before int: Python's bool is a subclass of int.
        if v.is_instance_of::<PyBool>() {
            return Ok(PyJson::Bool(v.extract()?));
        }
        if v.is_instance_of::<PyString>() {
            return Ok(PyJson::Str(v.extract()?));
        }
        if v.is_instance_of::<PyFloat>() {
            return Ok(PyJson::Float(v.extract()?));
        }
        let int = |v: &Bound<'_, PyAny>| {
            if let Ok(i) = v.extract::<i64>() {
                Ok(PyJson::Int(i))
            } else if let Ok(u) = v.extract::<u64>() {
                Ok(PyJson::UInt(u))
            } else {
                Err(invalid(format!(
                    "filter value {v} is outside the range of a 64-bit integer"
                )))
            }
        };
        if v.is_instance_of::<PyInt>() {
            return int(v);
        }
        let nested = v.is_instance_of::<PyDict>()
            || v.is_instance_of::<PyList>()
            || v.is_instance_of::<PyTuple>();
        if nested && depth >= Self::MAX_NESTING {
            // A filter level costs at most two containers: this one is at least depth / 2.
            return Err(to_py(Error::FilterTooDeep {
                depth: depth / 2,
                max: Filter::MAX_DEPTH,
            }));
        }
        if let Ok(d) = v.cast::<PyDict>() {
            let mut out = Vec::with_capacity(d.len());
            for (k, x) in d.iter() {
                let key: String = k.extract().map_err(|_| {
                    invalid(format!("filter keys must be str, found {}", type_name(&k)))
                })?;
                out.push((key, PyJson::from_py(&x, depth + 1)?));
            }
            return Ok(PyJson::Dict(out));
        }
        if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
            let items = v
                .try_iter()?
                .map(|x| PyJson::from_py(&x?, depth + 1))
                .collect::<PyResult<_>>()?;
            return Ok(PyJson::List(items));
        }
        // numpy scalars: integers have __index__, floats convert with __float__.
        if v.hasattr("__index__")? {
            return int(v);
        }
        if v.hasattr("__float__")?
            && let Ok(f) = v.extract::<f64>()
        {
            return Ok(PyJson::Float(f));
        }
        Err(invalid(format!(
            "unsupported value of type {} in a filter (use str, int, float, bool, None, a list \
             or a dict)",
            type_name(v)
        )))
    }
}

impl<'de> serde::de::IntoDeserializer<'de, serde::de::value::Error> for PyJson {
    type Deserializer = PyJson;
    fn into_deserializer(self) -> PyJson {
        self
    }
}

impl<'de> serde::Deserializer<'de> for PyJson {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        use serde::de::value::{MapDeserializer, SeqDeserializer};
        match self {
            PyJson::Null => v.visit_unit(),
            PyJson::Bool(b) => v.visit_bool(b),
            PyJson::Int(i) => v.visit_i64(i),
            PyJson::UInt(u) => v.visit_u64(u),
            PyJson::Float(x) => v.visit_f64(x),
            PyJson::Str(s) => v.visit_string(s),
            PyJson::List(items) => {
                let mut seq = SeqDeserializer::new(items.into_iter());
                let out = v.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(out)
            }
            PyJson::Dict(entries) => {
                let mut map = MapDeserializer::new(entries.into_iter());
                let out = v.visit_map(&mut map)?;
                map.end()?;
                Ok(out)
            }
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

fn parse_metric(m: &str) -> PyResult<Metric> {
    m.parse::<Metric>().map_err(to_py)
}

fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::Cosine => "cosine",
        Metric::Dot => "dot",
        Metric::L2 => "l2",
    }
}

// ---------------------------------------------------------------------------------------------
// Handles

/// What every handle of one opened database shares: the database, the collections handed
/// out (so that `close()` can drop them all and release the lock), and the calls in flight.
///
/// No lock is held during a call: a call clones the handle it needs under a brief mutex
/// (never held while waiting for anything, nor across Python code) and counts itself in
/// flight. So a call may re-enter (a re-ranker reading the collection), and `close()` marks
/// the database closed, drops the handles and waits, without the GIL, for the calls in flight
/// to end, letting Ctrl-C through.
struct DbState {
    /// The process that opened the database. In a forked child every call fails before any
    /// lock is touched (a thread of the parent may have held one at the fork).
    pid: u32,
    path: String,
    read_only: bool,
    closed: AtomicBool,
    handles: Mutex<Handles>,
    idle: Condvar,
}

impl Drop for DbState {
    fn drop(&mut self) {
        // The last Python object of the database is gone (garbage collected, the GIL held).
        if std::process::id() == self.pid {
            let h = std::mem::take(self.handles.get_mut().unwrap_or_else(|e| e.into_inner()));
            drop_detached(h.db);
        }
    }
}

#[derive(Default)]
struct Handles {
    db: Option<Database>,
    cols: Vec<Weak<Mutex<Option<Collection>>>>,
    in_flight: usize,
}

thread_local! {
    /// The databases (their `DbState` addresses) this thread is inside a call on.
    static CALLS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

impl DbState {
    fn new(db: Database) -> Arc<DbState> {
        Arc::new(DbState {
            pid: std::process::id(),
            path: db.path().to_string_lossy().into_owned(),
            read_only: db.is_read_only(),
            closed: AtomicBool::new(false),
            handles: Mutex::new(Handles {
                db: Some(db),
                ..Handles::default()
            }),
            idle: Condvar::new(),
        })
    }

    fn key(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }

    fn handles(&self) -> MutexGuard<'_, Handles> {
        self.handles.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `ForkedProcessError` in a process forked from the one that opened the database: the
    /// same error the library's own check gives, raised before the binding touches a lock.
    fn check_process(&self) -> PyResult<()> {
        let current = std::process::id();
        if current != self.pid {
            return Err(to_py(Error::ForkedProcess {
                opened_by: self.pid,
                current,
            }));
        }
        Ok(())
    }

    /// Starts a call on the handle `pick` takes from the shared handles; `ClosedError` naming
    /// `what` when there is none (closed).
    fn enter<T: Clone + Send>(
        self: &Arc<Self>,
        pick: impl FnOnce(&Handles) -> Option<T>,
        what: &str,
    ) -> PyResult<Call<T>> {
        self.check_process()?;
        let mut h = self.handles();
        let handle = pick(&h).ok_or_else(|| closed(what))?;
        h.in_flight += 1;
        drop(h);
        CALLS.with(|c| c.borrow_mut().push(self.key()));
        Ok(Call {
            state: Arc::clone(self),
            handle: Some(handle),
        })
    }

    /// Whether this thread is inside a call on this database.
    fn in_call(self: &Arc<Self>) -> bool {
        CALLS.with(|c| c.borrow().contains(&self.key()))
    }
}

/// A handle cloned for one call; derefs to it. Dropping it drops the clone (the last handle
/// of a closed database releases it), then ends the call.
struct Call<T: Send> {
    state: Arc<DbState>,
    handle: Option<T>,
}

impl<T: Send> std::ops::Deref for Call<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.handle.as_ref().expect("set until dropped")
    }
}

/// Drops a handle with the GIL released: when it is the database's last, dropping it waits
/// for background work to stop, and a background thread may need the GIL (to log).
fn drop_detached<T: Send>(handle: T) {
    Python::attach(|py| py.detach(move || drop(handle)));
}

impl<T: Send> Drop for Call<T> {
    fn drop(&mut self) {
        let handle = self.handle.take();
        // While the database is open its own handle outlives ours: drop ours at once (under
        // the mutex, so close() cannot take the database's handle meanwhile). After close()
        // ours may be the last.
        let last = {
            let h = self.state.handles();
            if h.db.is_some() {
                drop(handle);
                None
            } else {
                handle
            }
        };
        if let Some(handle) = last {
            drop_detached(handle);
        }
        let key = self.state.key();
        CALLS.with(|c| {
            let mut c = c.borrow_mut();
            if let Some(i) = c.iter().rposition(|&k| k == key) {
                c.remove(i);
            }
        });
        self.state.handles().in_flight -= 1;
        self.state.idle.notify_all();
    }
}

/// An open Cairn database: a directory holding collections.
///
/// Open it with `cairndb.open(path)`. The database is closed (its lock released) by
/// `close()`, by leaving a `with` block, or when the last reference to it and to its
/// collections goes away.
#[pyclass(module = "cairndb", name = "Database", frozen)]
struct PyDatabase {
    state: Arc<DbState>,
}

impl PyDatabase {
    fn db(&self) -> PyResult<Call<Database>> {
        self.state.enter(|h| h.db.clone(), "database")
    }

    fn wrap(
        &self,
        py: Python<'_>,
        col: Collection,
        embedding: Option<Py<PyAny>>,
    ) -> PyResult<PyCollection> {
        let embedding = embedding.filter(|e| !e.is_none(py));
        if let Some(e) = &embedding {
            frames(py)?.call_method1("check_embedding", (e.bind(py),))?;
        }
        let c = col.config();
        let info = (col.name().to_owned(), c.dim, c.metric, c.id_type);
        let slot = Arc::new(Mutex::new(Some(col)));
        let mut h = self.state.handles();
        h.cols.retain(|w| w.strong_count() > 0);
        h.cols.push(Arc::downgrade(&slot));
        Ok(PyCollection {
            state: Arc::clone(&self.state),
            slot,
            info,
            embedding,
        })
    }
}

#[pymethods]
impl PyDatabase {
    /// Creates a collection. `metric` is "cosine" (default), "dot" or "l2". `id_type` is
    /// "int" (default: ids are ints from 0 to 2**64 - 1) or "str" (ids are strings of 1 to
    /// 1024 bytes of UTF-8). `m` and `ef_construction` set the HNSW graph; `stem` and
    /// `stop_words` set English stemming and stop-word removal for full-text search;
    /// `quantization` ("int8", the default, "rabitq4", "rabitq1" or "none") what graph walks
    /// score.
    #[pyo3(signature = (name, dim, metric="cosine", id_type="int", *, m=16, ef_construction=200, stem=false, stop_words=false, embedding=None, quantization="int8"))]
    #[allow(clippy::too_many_arguments)]
    fn create_collection(
        &self,
        py: Python<'_>,
        name: &str,
        dim: usize,
        metric: &str,
        id_type: &str,
        m: usize,
        ef_construction: usize,
        stem: bool,
        stop_words: bool,
        embedding: Option<Py<PyAny>>,
        quantization: &str,
    ) -> PyResult<PyCollection> {
        let id_type = parse_id_type(id_type)?;
        let mut cfg = CollectionConfig::new(dim, parse_metric(metric)?)
            .with_text(TextConfig::default().stem(stem).stop_words(stop_words))
            .with_id_type(id_type)
            .with_quantization(quantization.parse().map_err(to_py)?);
        cfg.m = m;
        cfg.ef_construction = ef_construction;
        let g = self.db()?;
        let db: &Database = &g;
        let col = py
            .detach(|| db.create_collection(name, cfg))
            .map_err(to_py)?;
        self.wrap(py, col, embedding)
    }

    /// The collection of that name; `CollectionNotFoundError` if there is none.
    /// `embedding`: the embedding function this handle uses for records upserted without
    /// vectors and for searches by text (not stored in the database).
    #[pyo3(signature = (name, *, embedding=None))]
    fn collection(
        &self,
        py: Python<'_>,
        name: &str,
        embedding: Option<Py<PyAny>>,
    ) -> PyResult<PyCollection> {
        let g = self.db()?;
        let col = g.collection(name).map_err(to_py)?;
        self.wrap(py, col, embedding)
    }

    /// The collection of that name, created with these settings if it does not exist. An
    /// existing collection must have the same dimension, metric and id type
    /// (`InvalidInputError` naming the setting otherwise); `m`, `ef_construction`, `stem` and
    /// `stop_words` apply only when it is created.
    #[pyo3(signature = (name, dim, metric="cosine", id_type="int", *, m=16, ef_construction=200, stem=false, stop_words=false, embedding=None, quantization="int8"))]
    #[allow(clippy::too_many_arguments)]
    fn get_or_create_collection(
        &self,
        py: Python<'_>,
        name: &str,
        dim: usize,
        metric: &str,
        id_type: &str,
        m: usize,
        ef_construction: usize,
        stem: bool,
        stop_words: bool,
        embedding: Option<Py<PyAny>>,
        quantization: &str,
    ) -> PyResult<PyCollection> {
        let id_type = parse_id_type(id_type)?;
        let mut cfg = CollectionConfig::new(dim, parse_metric(metric)?)
            .with_text(TextConfig::default().stem(stem).stop_words(stop_words))
            .with_id_type(id_type)
            .with_quantization(quantization.parse().map_err(to_py)?);
        cfg.m = m;
        cfg.ef_construction = ef_construction;
        let g = self.db()?;
        let db: &Database = &g;
        // One call of the library's: checking and creating are one step, so threads asking
        // at once get one collection.
        let col = py
            .detach(|| db.get_or_create_collection(name, cfg))
            .map_err(to_py)?;
        self.wrap(py, col, embedding)
    }

    /// Names of the collections, sorted.
    fn collections(&self) -> PyResult<Vec<String>> {
        Ok(self.db()?.collections())
    }

    /// Deletes a collection and its files. Handles to it raise `ClosedError` afterwards.
    fn drop_collection(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        let g = self.db()?;
        let db: &Database = &g;
        py.detach(|| db.drop_collection(name)).map_err(to_py)
    }

    /// Makes every acknowledged write durable (useful under `durability="buffered"`).
    fn sync(&self, py: Python<'_>) -> PyResult<()> {
        let g = self.db()?;
        let db: &Database = &g;
        py.detach(|| db.sync()).map_err(to_py)
    }

    /// Checks every file and index; raises `CorruptionError` on the first problem, and returns
    /// a summary dict otherwise.
    fn verify<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let g = self.db()?;
        let db: &Database = &g;
        let r = py.detach(|| db.verify()).map_err(to_py)?;
        let json = serde_json::to_string(&r).map_err(|e| invalid(e.to_string()))?;
        py.import("json")?.call_method1("loads", (json,))
    }

    /// Memory figures as a dict: `budget` (bytes or None), `pinned_bytes` (the codes and
    /// graphs a budget keeps resident), `fits`, `resident` (bytes in memory now per part:
    /// codes, graph, vectors, ids, payload, indexes) and `memtable_bytes`.
    fn memory<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let g = self.db()?;
        let db: &Database = &g;
        let r = py.detach(|| db.memory());
        let json = serde_json::to_string(&r).map_err(|e| invalid(e.to_string()))?;
        py.import("json")?.call_method1("loads", (json,))
    }

    /// The database directory.
    #[getter]
    fn path(&self) -> PyResult<String> {
        Ok(self.db()?.path().to_string_lossy().into_owned())
    }

    /// Whether the database was opened with `read_only=True`: it follows the writer process
    /// and every write raises `ReadOnlyError`.
    #[getter]
    fn read_only(&self) -> bool {
        self.state.read_only
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.state.closed.load(Ordering::Acquire)
    }

    /// Closes the database and every collection handle from it, waits for calls in flight on
    /// other threads to end and for background work to stop, and releases the lock. Calls
    /// from then on raise `ClosedError`, and so may calls in flight that had not yet started
    /// their work. Calling it twice is harmless. Called from inside a call on this database
    /// (a re-ranker) it raises `RuntimeError`: it would wait for itself. In a process forked
    /// from the one that opened the database it does nothing (the handles are the parent's).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let state = &self.state;
        if std::process::id() != state.pid {
            return Ok(());
        }
        if state.in_call() {
            return Err(PyRuntimeError::new_err(
                "close() was called from inside a call on this database (a re-ranker?); it \
                 would wait for that call to end: close the database after it returns",
            ));
        }
        let taken = {
            let mut h = state.handles();
            state.closed.store(true, Ordering::Release);
            let cols: Vec<Collection> = std::mem::take(&mut h.cols)
                .iter()
                .filter_map(Weak::upgrade)
                .filter_map(|slot| slot.lock().unwrap_or_else(|e| e.into_inner()).take())
                .collect();
            (h.db.take(), cols)
        };
        // Dropping the last handle waits for background work: not while holding the GIL.
        py.detach(move || drop(taken));
        loop {
            let idle = py.detach(|| {
                let h = state.handles();
                let (h, _) = state
                    .idle
                    .wait_timeout_while(h, Duration::from_millis(50), |h| h.in_flight > 0)
                    .unwrap_or_else(|e| e.into_inner());
                h.in_flight == 0
            });
            if idle {
                return Ok(());
            }
            // Ctrl-C (or any signal handler) interrupts the wait; the database stays closed
            // and is released when the calls in flight end.
            py.check_signals()?;
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        if self.closed() {
            "cairndb.Database(<closed>)".into()
        } else {
            format!("cairndb.Database({:?})", self.state.path)
        }
    }
}

/// A collection: records of one dimension and metric, with their text and payload.
#[pyclass(module = "cairndb", name = "Collection", frozen)]
struct PyCollection {
    state: Arc<DbState>,
    slot: Arc<Mutex<Option<Collection>>>,
    /// Name, dimension, metric and id type, for `repr` without a call.
    info: (String, usize, Metric, IdType),
    /// The embedding function given when the handle was made (`embedding=`): a callable
    /// `list[str] -> vectors` or an object with `embed_documents`/`embed_query`.
    embedding: Option<Py<PyAny>>,
}

impl Drop for PyCollection {
    fn drop(&mut self) {
        // Garbage collected with the GIL held: its handle may be the database's last.
        if std::process::id() == self.state.pid {
            let c = self.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
            drop_detached(c);
        }
    }
}

impl PyCollection {
    /// The vector and text a search runs with, once `mode` and the embedding function have
    /// had their say.
    fn apply_mode<'py>(
        &self,
        py: Python<'py>,
        dim: usize,
        mode: Option<&str>,
        vector: Option<&Bound<'py, PyAny>>,
        text: Option<String>,
    ) -> PyResult<(Option<Bound<'py, PyAny>>, Option<String>)> {
        let vector = vector.filter(|v| !v.is_none()).cloned();
        let mode = match mode {
            Some(m @ ("vector" | "text" | "hybrid")) => m,
            Some(other) => {
                return Err(invalid(format!(
                    "unknown mode {other:?} (use \"vector\", \"text\" or \"hybrid\")"
                )));
            }
            None => match (&vector, &text, &self.embedding) {
                (None, Some(_), Some(_)) => "vector",
                _ => return Ok((vector, text)),
            },
        };
        let embed = |text: &Option<String>| -> PyResult<Bound<'py, PyAny>> {
            let Some(t) = text else {
                return Err(invalid(format!("mode {mode:?} needs a vector or a text")));
            };
            let Some(e) = &self.embedding else {
                return Err(invalid(format!(
                    "mode {mode:?} without a vector needs an embedding function (embedding= on the collection)"
                )));
            };
            frames(py)?.call_method1("embed_query", (e.bind(py), t.as_str(), dim))
        };
        match mode {
            "text" => {
                if vector.is_some() {
                    return Err(invalid("mode \"text\" takes a text, not a vector"));
                }
                if text.is_none() {
                    return Err(invalid("mode \"text\" needs a text"));
                }
                Ok((None, text))
            }
            "vector" => {
                let v = match vector {
                    Some(v) => v,
                    None => embed(&text)?,
                };
                Ok((Some(v), None))
            }
            _ => {
                if text.is_none() {
                    return Err(invalid("mode \"hybrid\" needs a text"));
                }
                let v = match vector {
                    Some(v) => v,
                    None => embed(&text)?,
                };
                Ok((Some(v), text))
            }
        }
    }

    fn col(&self) -> PyResult<Call<Collection>> {
        let slot = &self.slot;
        self.state.enter(
            |h| {
                h.db.as_ref()?;
                slot.lock().unwrap_or_else(|e| e.into_inner()).clone()
            },
            "the collection's database",
        )
    }
}

/// Text and payloads for `n` records, each optional.
fn texts_from_py(texts: Option<&Bound<'_, PyAny>>, n: usize) -> PyResult<Vec<Option<String>>> {
    let Some(t) = texts else {
        return Ok(vec![None; n]);
    };
    if t.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "texts must be a list of str, not one str",
        ));
    }
    let out: Vec<Option<String>> = t
        .try_iter()
        .map_err(|_| PyTypeError::new_err(format!("texts must be a list, not {}", type_name(t))))?
        .map(|x| {
            let x = x?;
            if x.is_none() {
                Ok(None)
            } else {
                x.extract::<String>().map(Some).map_err(|_| {
                    PyTypeError::new_err(format!(
                        "texts must hold str or None, found {}",
                        type_name(&x)
                    ))
                })
            }
        })
        .collect::<PyResult<_>>()?;
    if out.len() != n {
        return Err(invalid(format!("got {n} ids but {} texts", out.len())));
    }
    Ok(out)
}

/// Payloads for `n` records of an update: `None` when not given, and `None` in the list
/// for a record whose payload stays.
fn optional_payloads_from_py(
    p: Option<&Bound<'_, PyAny>>,
    n: usize,
) -> PyResult<Option<Vec<Option<Payload>>>> {
    let Some(p) = p else {
        return Ok(None);
    };
    let out: Vec<Option<Payload>> = p
        .try_iter()
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "payloads must be a list of dicts, not {}",
                type_name(p)
            ))
        })?
        .map(|x| {
            let x = x?;
            if x.is_none() {
                Ok(None)
            } else {
                payload_from_py(&x).map(Some)
            }
        })
        .collect::<PyResult<_>>()?;
    if out.len() != n {
        return Err(invalid(format!("got {n} ids but {} payloads", out.len())));
    }
    Ok(Some(out))
}

fn payloads_from_py(p: Option<&Bound<'_, PyAny>>, n: usize) -> PyResult<Vec<Payload>> {
    let Some(p) = p else {
        return Ok(vec![Payload::new(); n]);
    };
    let out: Vec<Payload> = p
        .try_iter()
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "payloads must be a list of dicts, not {}",
                type_name(p)
            ))
        })?
        .map(|x| {
            let x = x?;
            if x.is_none() {
                Ok(Payload::new())
            } else {
                payload_from_py(&x)
            }
        })
        .collect::<PyResult<_>>()?;
    if out.len() != n {
        return Err(invalid(format!("got {n} ids but {} payloads", out.len())));
    }
    Ok(out)
}

#[pymethods]
impl PyCollection {
    /// Inserts or replaces records, atomically (all or none), durable on return under the
    /// default `durability="sync"`.
    ///
    /// `ids`: ints (or a numpy integer array) in a collection of int ids, strs in one of str
    /// ids. `vectors`: a 2-D float32 numpy array of shape
    /// `(len(ids), dim)` (float64 is converted), or a list of lists. `texts`: optional list of
    /// str or None. `payloads`: optional list of dicts of str → str | int | float | bool |
    /// list[str].
    ///
    /// `ids` may instead be a data frame, given alone: a pandas or polars DataFrame or a
    /// pyarrow Table or RecordBatch with columns `id`, `vector` (FixedSizeList or List of
    /// float32/float64), optional `text`, optional `payload` (JSON object text or a struct),
    /// every other column a payload field (a null leaves the field out). `columns` renames
    /// the roles: `{"id": "doc_id", "vector": "embedding", "text": "body", "payload": ...,
    /// "fields": [...]}` (`fields`: the payload columns, default all the others).
    ///
    /// Without `vectors`, the collection's embedding function (`embedding=`) computes them
    /// from `texts`.
    #[pyo3(signature = (ids, vectors=None, texts=None, payloads=None, *, columns=None))]
    fn upsert(
        &self,
        py: Python<'_>,
        ids: &Bound<'_, PyAny>,
        vectors: Option<&Bound<'_, PyAny>>,
        texts: Option<&Bound<'_, PyAny>>,
        payloads: Option<&Bound<'_, PyAny>>,
        columns: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let g = self.col()?;
        let col: &Collection = &g;
        let dim = col.config().dim;
        let fr = frames(py)?;
        let kind = fr.call_method1("frame_kind", (ids,))?;
        let cols_tuple;
        let (ids, vectors, texts, payloads) = if !kind.is_none() {
            if vectors.is_some() || texts.is_some() || payloads.is_some() {
                return Err(PyTypeError::new_err(
                    "upsert(frame) takes the frame as its only argument (map its columns with columns=)",
                ));
            }
            let embedding = self.embedding.as_ref().map(|e| e.bind(py).clone());
            cols_tuple = fr.call_method1(
                "frame_columns",
                (
                    ids,
                    kind,
                    columns,
                    col.config().id_type.as_str(),
                    dim,
                    embedding,
                ),
            )?;
            let t = cols_tuple.cast::<PyTuple>()?;
            let opt = |i: usize| -> PyResult<Option<Bound<'_, PyAny>>> {
                let x = t.get_item(i)?;
                Ok(if x.is_none() { None } else { Some(x) })
            };
            (t.get_item(0)?, t.get_item(1)?, opt(2)?, opt(3)?)
        } else {
            if columns.is_some() {
                return Err(PyTypeError::new_err(
                    "columns= applies only when upsert is given a data frame",
                ));
            }
            let vectors = match vectors.filter(|v| !v.is_none()) {
                Some(v) => v.clone(),
                None => match &self.embedding {
                    Some(e) => {
                        let Some(t) = texts.filter(|t| !t.is_none()) else {
                            return Err(invalid(
                                "upsert without vectors needs texts for the embedding function",
                            ));
                        };
                        fr.call_method1("embed_documents", (e.bind(py), t, dim))?
                    }
                    None => {
                        return Err(invalid(
                            "upsert needs vectors (or texts and an embedding function set with \
                             embedding= on the collection)",
                        ));
                    }
                },
            };
            // pyarrow arrays, pandas or polars Series: read as numpy (no per-row work).
            let plain = fr
                .call_method1(
                    "plain_columns",
                    (ids, vectors, col.config().id_type.as_str(), dim),
                )?
                .cast_into::<PyTuple>()?;
            (
                plain.get_item(0)?,
                plain.get_item(1)?,
                texts.cloned(),
                payloads.cloned(),
            )
        };
        let ids = ids_from_py(&ids)?;
        let n = ids.len();
        let vectors = matrix_from_py(&vectors, n, dim)?;
        let texts = texts_from_py(texts.as_ref(), n)?;
        let payloads = payloads_from_py(payloads.as_ref(), n)?;
        let records: Vec<Record> = ids
            .into_iter()
            .zip(vectors)
            .zip(texts)
            .zip(payloads)
            .map(|(((id, vector), text), payload)| Record {
                id,
                vector,
                text,
                payload,
            })
            .collect();
        py.detach(|| col.upsert(records)).map_err(to_py)
    }

    /// Searches by vector, by text (BM25), or both (hybrid, fused by `fusion`: None for the
    /// engine's default, weighted min-max with alpha 0.6; or "rrf", "weighted" or "dbsf").
    /// `filter` is the text syntax (`'lang = "en" AND year >= 2020'`)
    /// or a dict (`{"year": {"$gte": 2020}}`). Returns up to `k` `Hit`s, best first.
    ///
    /// `mode`: "vector", "text" (BM25) or "hybrid"; by default what is given decides (a
    /// vector: vector search; a text: BM25, or, when the collection has an embedding
    /// function, vector search of the embedded text; both: hybrid). In "vector" and "hybrid"
    /// mode a missing vector is the embedding of `text`.
    ///
    /// The result is a `SearchResult`: a list of `Hit` with `.to_arrow()` and `.to_pandas()`.
    ///
    /// `text_stats`: BM25 statistics to score the text leg with instead of the collection's
    /// own — for a collection that is one shard of a larger one, the sum of every shard's
    /// `text_stats(text)` (the scatter-gather API; `cairndb.ray` uses it).
    #[pyo3(signature = (vector=None, text=None, k=10, filter=None, fusion=None, *, alpha=None, rrf_k=None, ef=None, exact=false, candidates=None, include_text=true, include_payload=true, rerank=None, rerank_top_n=None, mode=None, text_stats=None))]
    #[allow(clippy::too_many_arguments)]
    fn search<'py>(
        &self,
        py: Python<'py>,
        vector: Option<&Bound<'py, PyAny>>,
        text: Option<String>,
        k: usize,
        filter: Option<&Bound<'_, PyAny>>,
        fusion: Option<&str>,
        alpha: Option<f32>,
        rrf_k: Option<f32>,
        ef: Option<usize>,
        exact: bool,
        candidates: Option<usize>,
        include_text: bool,
        include_payload: bool,
        rerank: Option<Py<PyAny>>,
        rerank_top_n: Option<usize>,
        mode: Option<&str>,
        text_stats: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let g = self.col()?;
        let col: &Collection = &g;
        let dim = col.config().dim;
        let (vector, text) = self.apply_mode(py, dim, mode, vector, text)?;
        let mut req = request_from_py(
            dim,
            vector.as_ref(),
            text,
            k,
            filter,
            fusion,
            alpha,
            rrf_k,
            ef,
            exact,
            candidates,
        )?
        .with_text(include_text)
        .with_payload(include_payload);
        if let Some(ts) = text_stats.filter(|t| !t.is_none()) {
            req = req.text_stats(text_stats_from_py(ts)?);
        }
        let reranker = match rerank.filter(|r| !r.is_none(py)) {
            Some(f) => {
                if !f.bind(py).is_callable() {
                    return Err(PyTypeError::new_err(format!(
                        "rerank must be a callable (text, hits) -> scores, not {}",
                        type_name(f.bind(py))
                    )));
                }
                let r = Arc::new(PyReranker {
                    f,
                    raised: Mutex::new(None),
                });
                req = req.rerank(r.clone(), rerank_top_n.unwrap_or((2 * k).max(50)));
                Some(r)
            }
            None => None,
        };
        let hits = py.detach(|| col.search(&req));
        // An exception raised by the re-ranker is re-raised as it was.
        if let Some(e) = reranker.and_then(|r| r.raised.lock().ok()?.take()) {
            return Err(e);
        }
        let hits: Vec<PyHit> = hits.map_err(to_py)?.into_iter().map(PyHit::from).collect();
        frames(py)?.getattr("SearchResult")?.call1((
            hits,
            col.config().id_type.as_str(),
            include_text,
            include_payload,
        ))
    }

    /// The statistics BM25 scores `text` with in this collection: `{"documents": live
    /// records with text, "total_len": their total length in analyzed terms, "df": {term:
    /// records containing it}}` for each distinct analyzed term of `text`. Statistics of
    /// shards holding disjoint records add up (sum the counts and each term's df) to those of
    /// one collection holding them all; pass the sum as `search(..., text_stats=...)`.
    fn text_stats<'py>(&self, py: Python<'py>, text: String) -> PyResult<Bound<'py, PyDict>> {
        let g = self.col()?;
        let col: &Collection = &g;
        let s = py.detach(|| col.text_stats(&text)).map_err(to_py)?;
        text_stats_to_py(py, &s)
    }

    /// Searches many query vectors at once, on `threads` threads (default: every core; more
    /// than the machine's available parallelism are capped to it; 0 is an error), and
    /// returns two `(len(queries), k)` numpy arrays: the ids (uint64; in a collection of str
    /// ids an array of dtype object holding str) and the scores (float32) of each query's
    /// hits, best first. Where a query has fewer than `k` hits the row is padded with id
    /// `2**64 - 1` (`None` for str ids) and score NaN. `queries`: a 2-D float32 array
    /// (float64 is converted) or a list of vectors. `filter`, `ef` and `exact` as in `search`.
    #[pyo3(signature = (queries, k=10, filter=None, *, ef=None, exact=false, threads=None))]
    #[allow(clippy::too_many_arguments)]
    fn search_batch<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        k: usize,
        filter: Option<&Bound<'py, PyAny>>,
        ef: Option<usize>,
        exact: bool,
        threads: Option<usize>,
    ) -> PyResult<IdsAndScores<'py>> {
        use rayon::prelude::*;
        let g = self.col()?;
        let col: &Collection = &g;
        let dim = col.config().dim;
        let queries = queries_from_py(queries, dim)?;
        if k == 0 {
            return Err(invalid("k must be at least 1"));
        }
        if threads == Some(0) {
            return Err(invalid("threads must be at least 1"));
        }
        let filter = match filter.filter(|f| !f.is_none()) {
            Some(f) => Some(filter_from_py(f)?),
            None => None,
        };
        let request = |q: &Vec<f32>| {
            let mut r = SearchRequest::new(q.clone())
                .k(k)
                .exact(exact)
                .with_text(false)
                .with_payload(false);
            if let Some(ef) = ef {
                r = r.ef(ef);
            }
            if let Some(f) = &filter {
                r = r.filter(f.clone());
            }
            r
        };
        let n = queries.len();
        // More threads than cores only cost memory and scheduling (10,000 OS threads for
        // `threads=10000`): the pool has at most the machine's available parallelism.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pool = match threads.map(|t| t.min(cores)) {
            Some(t) => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .map_err(|e| {
                        pyo3::exceptions::PyRuntimeError::new_err(format!(
                            "cannot start {t} search threads: {e}"
                        ))
                    })?,
            ),
            None => None,
        };
        let results = py
            .detach(|| {
                let run = || {
                    queries
                        .par_iter()
                        .map(|q| col.search(&request(q)))
                        .collect::<Result<Vec<Vec<Hit>>, Error>>()
                };
                match &pool {
                    Some(p) => p.install(run),
                    None => run(),
                }
            })
            .map_err(to_py)?;
        let shape = (n, k);
        let mut scores = vec![f32::NAN; n * k];
        for (i, hits) in results.iter().enumerate() {
            for (j, h) in hits.iter().take(k).enumerate() {
                scores[i * k + j] = h.score;
            }
        }
        let scores = numpy::ndarray::Array2::from_shape_vec(shape, scores)
            .map_err(|e| invalid(e.to_string()))?
            .into_pyarray(py)
            .into_any();
        if col.config().id_type == IdType::Str {
            // An object array of str, padded with None.
            let mut ids: Vec<Bound<'py, PyAny>> = Vec::with_capacity(n * k);
            for hits in &results {
                for h in hits.iter().take(k) {
                    ids.push(id_to_py(py, &h.id)?);
                }
                for _ in hits.len().min(k)..k {
                    ids.push(py.None().into_bound(py));
                }
            }
            let np = py.import("numpy")?;
            let kw = PyDict::new(py);
            kw.set_item("dtype", np.getattr("object_")?)?;
            let flat = np.call_method("array", (PyList::new(py, ids)?,), Some(&kw))?;
            let ids = flat.call_method1("reshape", ((n, k),))?;
            return Ok((ids, scores));
        }
        let mut ids = vec![u64::MAX; n * k];
        for (i, hits) in results.into_iter().enumerate() {
            for (j, h) in hits.into_iter().take(k).enumerate() {
                ids[i * k + j] = h.id.as_u64().unwrap_or(u64::MAX);
            }
        }
        let ids = numpy::ndarray::Array2::from_shape_vec(shape, ids)
            .map_err(|e| invalid(e.to_string()))?;
        Ok((ids.into_pyarray(py).into_any(), scores))
    }

    /// How `search` with these arguments runs: per source (segment or memtable) the plan of
    /// the vector leg (graph walk or exact scan, rows, filter matches), the text leg's plan,
    /// the depth each leg was asked for, and the hits. Returns a dict.
    #[pyo3(signature = (vector=None, text=None, k=10, filter=None, fusion=None, *, alpha=None, rrf_k=None, ef=None, exact=false, candidates=None))]
    #[allow(clippy::too_many_arguments)]
    fn explain<'py>(
        &self,
        py: Python<'py>,
        vector: Option<&Bound<'py, PyAny>>,
        text: Option<String>,
        k: usize,
        filter: Option<&Bound<'py, PyAny>>,
        fusion: Option<&str>,
        alpha: Option<f32>,
        rrf_k: Option<f32>,
        ef: Option<usize>,
        exact: bool,
        candidates: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let g = self.col()?;
        let col: &Collection = &g;
        let req = request_from_py(
            col.config().dim,
            vector,
            text,
            k,
            filter,
            fusion,
            alpha,
            rrf_k,
            ef,
            exact,
            candidates,
        )?
        .with_text(false)
        .with_payload(false)
        .explain(true);
        let r = py.detach(|| col.query(&req)).map_err(to_py)?;
        let json = serde_json::to_string(&r).map_err(|e| invalid(e.to_string()))?;
        py.import("json")?.call_method1("loads", (json,))
    }

    /// The records with these ids, in order, `None` where an id does not exist. Given one id
    /// (an int or a str), returns one `Record` or `None`.
    ///
    /// Without ids: the records that match `filter` (all without one), in scan order, at most
    /// `limit` of them, starting after id `after` — a page of `scan`.
    #[pyo3(signature = (ids=None, *, filter=None, limit=None, after=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        ids: Option<&Bound<'py, PyAny>>,
        filter: Option<&Bound<'py, PyAny>>,
        limit: Option<usize>,
        after: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let g = self.col()?;
        let col: &Collection = &g;
        let after = opt_id_from_py(after)?;
        let Some(ids) = ids else {
            let mut o = ScanOptions::new();
            if let Some(f) = filter {
                o = o.filter(filter_from_py(f)?);
            }
            if let Some(a) = after {
                o = o.after(a);
            }
            let records = py
                .detach(|| -> Result<Vec<Record>, Error> {
                    let mut scan = col.scan(o)?;
                    scan.next_batch(limit.unwrap_or(usize::MAX))
                })
                .map_err(to_py)?;
            let out = records
                .into_iter()
                .map(|r| Bound::new(py, PyRecord::from(r)))
                .collect::<PyResult<Vec<_>>>()?;
            return Ok(PyList::new(py, out)?.into_any());
        };
        if filter.is_some() || limit.is_some() || after.is_some() {
            return Err(invalid(
                "get takes ids, or filter/limit/after — not both".to_owned(),
            ));
        }
        let one = is_one_id(ids);
        let wanted = ids_from_py(ids)?;
        let found = py
            .detach(|| {
                wanted
                    .iter()
                    .map(|id| col.get(id))
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(to_py)?;
        let mut out = Vec::with_capacity(found.len());
        for r in found {
            out.push(match r {
                Some(r) => Bound::new(py, PyRecord::from(r))?.into_any(),
                None => py.None().into_bound(py),
            });
        }
        if one {
            return Ok(out.pop().expect("one id"));
        }
        Ok(PyList::new(py, out)?.into_any())
    }

    /// Deletes records by id, or every record that `filter` matches (atomically); returns how
    /// many it deleted.
    #[pyo3(signature = (ids=None, *, filter=None))]
    fn delete(
        &self,
        py: Python<'_>,
        ids: Option<&Bound<'_, PyAny>>,
        filter: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        let g = self.col()?;
        let col: &Collection = &g;
        match (ids, filter) {
            (Some(ids), None) => {
                let ids = ids_from_py(ids)?;
                py.detach(|| col.delete(&ids)).map_err(to_py)
            }
            (None, Some(f)) => {
                let f = filter_from_py(f)?;
                py.detach(|| col.delete_where(&f)).map_err(to_py)
            }
            (Some(_), Some(_)) => Err(invalid("delete takes ids or filter, not both".to_owned())),
            (None, None) => Err(invalid(
                "delete needs ids or filter= (to delete every record: filter={})".to_owned(),
            )),
        }
    }

    /// Changes records in place, atomically: for each id, `vectors` (a 2-D array, one row per
    /// id), `texts` (None in the list keeps that record's text) and `payloads` (None keeps it)
    /// replace what is stored; what is not given stays. With `merge=True` a payload's keys are
    /// set into the stored payload, with `merge=False` it replaces it. Ids that do not exist
    /// are skipped; returns how many records were updated.
    #[pyo3(signature = (ids, vectors=None, texts=None, payloads=None, merge=true))]
    fn update(
        &self,
        py: Python<'_>,
        ids: &Bound<'_, PyAny>,
        vectors: Option<&Bound<'_, PyAny>>,
        texts: Option<&Bound<'_, PyAny>>,
        payloads: Option<&Bound<'_, PyAny>>,
        merge: bool,
    ) -> PyResult<usize> {
        let g = self.col()?;
        let col: &Collection = &g;
        let ids = ids_from_py(ids)?;
        let n = ids.len();
        let vectors = match vectors {
            Some(v) => Some(matrix_from_py(v, n, col.config().dim)?),
            None => None,
        };
        let texts = match texts {
            Some(_) => Some(texts_from_py(texts, n)?),
            None => None,
        };
        let payloads = optional_payloads_from_py(payloads, n)?;
        let mut updates: Vec<Update> = ids.into_iter().map(Update::new).collect();
        if let Some(vs) = vectors {
            for (u, v) in updates.iter_mut().zip(vs) {
                u.vector = Some(v);
            }
        }
        if let Some(ts) = texts {
            for (u, t) in updates.iter_mut().zip(ts) {
                if t.is_some() {
                    u.text = Some(t);
                }
            }
        }
        if let Some(ps) = payloads {
            for (u, p) in updates.iter_mut().zip(ps) {
                u.payload = p.map(|p| {
                    if merge {
                        PayloadChange::Merge(p)
                    } else {
                        PayloadChange::Replace(p)
                    }
                });
            }
        }
        py.detach(|| col.update(updates)).map_err(to_py)
    }

    /// How many records match `filter` (all records without one).
    #[pyo3(signature = (filter=None))]
    fn count(&self, py: Python<'_>, filter: Option<&Bound<'_, PyAny>>) -> PyResult<usize> {
        let g = self.col()?;
        let col: &Collection = &g;
        let f = filter.map(filter_from_py).transpose()?;
        py.detach(|| col.count(f.as_ref())).map_err(to_py)
    }

    /// Every record that matches `filter` (all without one), in scan order (ascending ids for
    /// int ids; for str ids the order of their 64-bit hashes, fixed but not alphabetical),
    /// over a snapshot taken now (writes made meanwhile are not seen). Records are read
    /// `batch_size` at a time. `include`: which of "vector", "text", "payload" to read
    /// (default all). `after`: start after this id (the `cursor` of an earlier scan).
    #[pyo3(signature = (filter=None, batch_size=1000, *, include=None, after=None))]
    fn scan(
        slf: &Bound<'_, Self>,
        filter: Option<&Bound<'_, PyAny>>,
        batch_size: usize,
        include: Option<Vec<String>>,
        after: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyScan> {
        let after = opt_id_from_py(after)?;
        if batch_size == 0 {
            return Err(invalid("batch_size must be at least 1".to_owned()));
        }
        let this = slf.get();
        let g = this.col()?;
        let col: &Collection = &g;
        let mut o = ScanOptions::new();
        let mut parts = (true, true, true);
        if let Some(f) = filter {
            o = o.filter(filter_from_py(f)?);
        }
        if let Some(a) = after.clone() {
            o = o.after(a);
        }
        if let Some(inc) = include {
            o = o.vectors(false).text(false).payload(false);
            parts = (false, false, false);
            for part in &inc {
                o = match part.as_str() {
                    "vector" | "vectors" => {
                        parts.0 = true;
                        o.vectors(true)
                    }
                    "text" | "texts" => {
                        parts.1 = true;
                        o.text(true)
                    }
                    "payload" | "payloads" => {
                        parts.2 = true;
                        o.payload(true)
                    }
                    other => {
                        return Err(invalid(format!(
                            "include: unknown part {other:?} (use \"vector\", \"text\", \"payload\")"
                        )));
                    }
                };
            }
        }
        let scan = slf.py().detach(|| col.scan(o)).map_err(to_py)?;
        Ok(PyScan {
            col: slf.clone().unbind(),
            scan: Mutex::new(ScanState {
                scan,
                buffered: std::collections::VecDeque::new(),
                done: false,
                last: after,
            }),
            batch_size,
            parts,
        })
    }

    /// The matching records as one `pyarrow.Table` (columns `id`, `vector`
    /// (FixedSizeList<float32>), `text`, `payload` (JSON object text); `include` picks which
    /// of the last three). Reads everything into memory: for bounded memory iterate
    /// `scan(...).to_arrow()`, a `RecordBatchReader` of `batch_size` rows per batch.
    #[pyo3(signature = (filter=None, batch_size=10000, *, include=None))]
    fn to_arrow<'py>(
        slf: &Bound<'py, Self>,
        filter: Option<&Bound<'py, PyAny>>,
        batch_size: usize,
        include: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let scan = Bound::new(
            slf.py(),
            Self::scan(slf, filter, batch_size, include, None)?,
        )?;
        PyScan::to_arrow(&scan)?.call_method0("read_all")
    }

    /// Seals the in-memory part into a segment on disk.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let g = self.col()?;
        let col: &Collection = &g;
        py.detach(|| col.flush()).map_err(to_py)
    }

    /// Builds now the int8 copies that graph searches use for segments written before codes
    /// files existed (otherwise built after the first search); segments with a codes file
    /// have nothing to build.
    fn warm_up(&self, py: Python<'_>) -> PyResult<()> {
        let g = self.col()?;
        let col: &Collection = &g;
        py.detach(|| col.warm_up()).map_err(to_py)
    }

    /// Merges the segments into one, dropping deleted rows; returns a summary dict.
    fn compact<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let g = self.col()?;
        let col: &Collection = &g;
        let r = py.detach(|| col.compact()).map_err(to_py)?;
        let d = PyDict::new(py);
        d.set_item("segments_in", r.segments_in)?;
        d.set_item("rows_in", r.rows_in)?;
        d.set_item("rows_out", r.rows_out)?;
        d.set_item("bytes_in", r.bytes_in)?;
        d.set_item("bytes_out", r.bytes_out)?;
        Ok(d)
    }

    /// Counts and sizes: name, dim, metric, id_type, records, memtable rows and bytes, and per
    /// segment rows, deleted rows and bytes.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let g = self.col()?;
        let s = g.stats();
        let json = serde_json::to_string(&s).map_err(|e| invalid(e.to_string()))?;
        py.import("json")?.call_method1("loads", (json,))
    }

    /// The collection's name.
    #[getter]
    fn name(&self) -> PyResult<String> {
        Ok(self.col()?.name().to_owned())
    }

    /// The vector dimension.
    #[getter]
    fn dim(&self) -> PyResult<usize> {
        Ok(self.col()?.config().dim)
    }

    /// "cosine", "dot" or "l2".
    #[getter]
    fn metric(&self) -> PyResult<&'static str> {
        Ok(metric_name(self.col()?.config().metric))
    }

    /// "int" or "str": the kind of ids the collection holds, chosen at creation.
    #[getter]
    fn id_type(&self) -> PyResult<&'static str> {
        Ok(self.col()?.config().id_type.as_str())
    }

    /// "int8" or "none": what graph walks score, chosen at creation.
    #[getter]
    fn quantization(&self) -> PyResult<&'static str> {
        Ok(self.col()?.config().quantization.as_str())
    }

    fn __len__(&self) -> PyResult<usize> {
        Ok(self.col()?.len())
    }

    /// The embedding function this handle was given (`embedding=`), or None. It is not
    /// stored in the database: give it again to each handle.
    #[getter]
    fn embedding(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.embedding.as_ref().map(|e| e.clone_ref(py))
    }

    fn __repr__(&self) -> String {
        if self.state.closed.load(Ordering::Acquire) {
            return "cairndb.Collection(<closed>)".into();
        }
        let (n, d, m, t) = &self.info;
        let id_type = match t {
            IdType::Int => "",
            IdType::Str => ", id_type=\"str\"",
        };
        format!(
            "cairndb.Collection({n:?}, dim={d}, metric={:?}{id_type})",
            metric_name(*m)
        )
    }
}

/// One search result. `legs` is set for hybrid searches.
#[pyclass(module = "cairndb", name = "Hit", frozen)]
struct PyHit {
    id_rs: Id,
    /// Similarity (vector), BM25 score (text) or fused score (hybrid); higher is better.
    #[pyo3(get)]
    score: f32,
    /// The record's text, if it has one and `include_text` was set.
    #[pyo3(get)]
    text: Option<String>,
    payload_rs: Option<Payload>,
    legs_rs: Option<Legs>,
}

impl From<&PyHit> for Hit {
    fn from(h: &PyHit) -> Self {
        Hit {
            id: h.id_rs.clone(),
            score: h.score,
            text: h.text.clone(),
            payload: h.payload_rs.clone(),
            legs: h.legs_rs,
        }
    }
}

impl From<Hit> for PyHit {
    fn from(h: Hit) -> Self {
        PyHit {
            id_rs: h.id,
            score: h.score,
            text: h.text,
            payload_rs: h.payload,
            legs_rs: h.legs,
        }
    }
}

fn leg_to_py<'py>(py: Python<'py>, l: Option<cairndb::LegScore>) -> PyResult<Bound<'py, PyAny>> {
    Ok(match l {
        Some(l) => {
            let d = PyDict::new(py);
            d.set_item("rank", l.rank)?;
            d.set_item("score", l.score)?;
            d.into_any()
        }
        None => py.None().into_bound(py),
    })
}

#[pymethods]
impl PyHit {
    /// The record id: an int, or a str in a collection of str ids.
    #[getter]
    fn id<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        id_to_py(py, &self.id_rs)
    }

    /// The record's payload as a dict (empty if it has none; `None` if `include_payload` was
    /// off).
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.payload_rs
            .as_ref()
            .map(|p| payload_to_py(py, p))
            .transpose()
    }

    /// For a hybrid search: `{"vector": {"rank", "score"} | None, "text": … | None, "fused":
    /// float}`; `None` otherwise.
    #[getter]
    fn legs<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(l) = self.legs_rs else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        d.set_item("vector", leg_to_py(py, l.vector)?)?;
        d.set_item("text", leg_to_py(py, l.text)?)?;
        d.set_item("fused", l.fused)?;
        Ok(Some(d))
    }

    /// A hit from its parts (what pickling uses): `legs` as the `legs` property gives it.
    #[new]
    #[pyo3(signature = (id, score, text=None, payload=None, legs=None))]
    fn new(
        id: &Bound<'_, PyAny>,
        score: f32,
        text: Option<String>,
        payload: Option<&Bound<'_, PyAny>>,
        legs: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Ok(PyHit {
            id_rs: id_from_py(id)?,
            score,
            text,
            payload_rs: payload.map(payload_from_py).transpose()?,
            legs_rs: legs.map(legs_from_py).transpose()?,
        })
    }

    /// `{"id", "score", "text", "payload", "legs"}`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("id", self.id(py)?)?;
        d.set_item("score", self.score)?;
        d.set_item("text", &self.text)?;
        d.set_item("payload", self.payload(py)?)?;
        d.set_item("legs", self.legs(py)?)?;
        Ok(d)
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let h = slf.get();
        let args = PyTuple::new(
            py,
            [
                h.id(py)?,
                h.score.into_pyobject(py)?.into_any(),
                h.text.clone().into_pyobject(py)?.into_any(),
                h.payload(py)?.into_pyobject(py)?.into_any(),
                h.legs(py)?.into_pyobject(py)?.into_any(),
            ],
        )?;
        Ok((slf.get_type().into_any(), args))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<PyHit>().is_ok_and(|o| {
            let o = o.get();
            o.id_rs == self.id_rs
                && o.score.to_bits() == self.score.to_bits()
                && o.text == self.text
                && o.payload_rs == self.payload_rs
                && o.legs_rs == self.legs_rs
        })
    }

    fn __hash__(&self) -> u64 {
        id_hash(&self.id_rs) ^ u64::from(self.score.to_bits()).rotate_left(32)
    }

    fn __repr__(&self) -> String {
        format!("Hit(id={}, score={:.6})", id_repr(&self.id_rs), self.score)
    }
}

/// A `legs` dict (as `Hit.legs` gives it) back into `Legs`.
fn legs_from_py(l: &Bound<'_, PyAny>) -> PyResult<Legs> {
    let bad = || {
        invalid(
            "legs must be {\"vector\": {\"rank\", \"score\"} | None, \"text\": … | None, \"fused\": float}",
        )
    };
    let d = l.cast::<PyDict>().map_err(|_| bad())?;
    let leg = |name: &str| -> PyResult<Option<cairndb::LegScore>> {
        match d.get_item(name)? {
            None => Ok(None),
            Some(x) if x.is_none() => Ok(None),
            Some(x) => {
                let x = x.cast::<PyDict>().map_err(|_| bad())?;
                let rank = x
                    .get_item("rank")?
                    .ok_or_else(bad)?
                    .extract()
                    .map_err(|_| bad())?;
                let score = x
                    .get_item("score")?
                    .ok_or_else(bad)?
                    .extract()
                    .map_err(|_| bad())?;
                Ok(Some(cairndb::LegScore { rank, score }))
            }
        }
    };
    Ok(Legs {
        vector: leg("vector")?,
        text: leg("text")?,
        fused: d
            .get_item("fused")?
            .ok_or_else(bad)?
            .extract()
            .map_err(|_| bad())?,
    })
}

struct ScanState {
    scan: cairndb::Scan,
    buffered: std::collections::VecDeque<Record>,
    done: bool,
    /// The id of the last record handed out (or the scan's `after`).
    last: Option<Id>,
}

/// An iterator over the records of a `Collection.scan`, in scan order.
#[pyclass(module = "cairndb", name = "Scan", frozen)]
struct PyScan {
    col: Py<PyCollection>,
    scan: Mutex<ScanState>,
    batch_size: usize,
    /// Whether vectors, text and payloads are read.
    parts: (bool, bool, bool),
}

impl PyScan {
    /// Up to `batch_size` more records, taken from the buffer first.
    fn next_records(&self, py: Python<'_>) -> PyResult<Vec<Record>> {
        let mut st = self.scan.try_lock().map_err(|_| {
            PyRuntimeError::new_err("this scan is being iterated by another thread")
        })?;
        let n = self.batch_size;
        let mut out: Vec<Record> = st.buffered.drain(..).collect();
        if out.len() < n && !st.done {
            let g = self.col.get().col()?;
            let st_ref: &mut ScanState = &mut st;
            let want = n - out.len();
            let batch = py
                .detach(|| {
                    let _open = &g;
                    st_ref.scan.next_batch(want)
                })
                .map_err(to_py)?;
            if batch.len() < want {
                st.done = true;
            }
            out.extend(batch);
        }
        if let Some(r) = out.last() {
            st.last = Some(r.id.clone());
        }
        Ok(out)
    }
}

#[pymethods]
impl PyScan {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<PyRecord>> {
        // Another thread iterating the same scan holds the lock with the GIL released:
        // waiting for it here (holding the GIL) could deadlock, so refuse instead.
        let mut st = self.scan.try_lock().map_err(|_| {
            PyRuntimeError::new_err("this scan is being iterated by another thread")
        })?;
        if let Some(r) = st.buffered.pop_front() {
            st.last = Some(r.id.clone());
            return Ok(Some(r.into()));
        }
        if st.done {
            return Ok(None);
        }
        // The database must still be open (raises ClosedError otherwise).
        let g = self.col.get().col()?;
        let n = self.batch_size;
        let st_ref: &mut ScanState = &mut st;
        let batch = py
            .detach(|| {
                let _open = &g;
                st_ref.scan.next_batch(n)
            })
            .map_err(to_py)?;
        if batch.len() < n {
            st.done = true;
        }
        st.buffered.extend(batch);
        let next = st.buffered.pop_front();
        if let Some(r) = &next {
            st.last = Some(r.id.clone());
        }
        Ok(next.map(PyRecord::from))
    }

    /// The next batch as columns `(ids, vectors, texts, payloads)`: ids a uint64 array or a
    /// list of str, vectors an `(n, dim)` float32 array, payloads JSON text; None at the end.
    fn _next_columns<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let recs = self.next_records(py)?;
        if recs.is_empty() {
            return Ok(None);
        }
        let col = self.col.get();
        let dim = col.info.1;
        let ids: Bound<'py, PyAny> = match col.info.3 {
            IdType::Int => recs
                .iter()
                .map(|r| match r.id {
                    Id::Int(i) => i,
                    _ => u64::MAX,
                })
                .collect::<Vec<u64>>()
                .into_pyarray(py)
                .into_any(),
            IdType::Str => PyList::new(
                py,
                recs.iter().map(|r| match &r.id {
                    Id::Str(s) => s.to_string(),
                    other => id_repr(other),
                }),
            )?
            .into_any(),
        };
        let vectors: Bound<'py, PyAny> = if self.parts.0 {
            let mut flat = Vec::with_capacity(recs.len() * dim);
            for r in &recs {
                flat.extend_from_slice(&r.vector);
            }
            flat.into_pyarray(py).reshape([recs.len(), dim])?.into_any()
        } else {
            py.None().into_bound(py)
        };
        let texts = PyList::new(py, recs.iter().map(|r| r.text.clone()))?;
        let payloads = recs
            .iter()
            .map(|r| serde_json::to_string(&r.payload))
            .collect::<Result<Vec<String>, _>>()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Some(PyTuple::new(
            py,
            [
                ids,
                vectors,
                texts.into_any(),
                PyList::new(py, payloads)?.into_any(),
            ],
        )?))
    }

    /// The rest of the scan as a `pyarrow.RecordBatchReader`, one batch of `batch_size`
    /// records at a time: columns `id` (uint64 or string), `vector`
    /// (FixedSizeList<float32>), `text` (string), `payload` (string: JSON object text),
    /// those not read (`include`) left out.
    fn to_arrow<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let this = slf.get();
        let col = this.col.get();
        frames(slf.py())?.call_method1(
            "scan_reader",
            (slf, col.info.3.as_str(), col.info.1, this.parts),
        )
    }

    /// The id of the last record the scan returned, or the `after` it started from:
    /// `scan(after=cursor)` goes on from there (over a newer snapshot).
    #[getter]
    fn cursor<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let st = self.scan.try_lock().map_err(|_| {
            PyRuntimeError::new_err("this scan is being iterated by another thread")
        })?;
        st.last.as_ref().map(|id| id_to_py(py, id)).transpose()
    }
}

/// A stored record, as returned by `Collection.get`.
#[pyclass(module = "cairndb", name = "Record", frozen)]
struct PyRecord {
    id_rs: Id,
    /// The text, if any.
    #[pyo3(get)]
    text: Option<String>,
    vector_rs: Vec<f32>,
    payload_rs: Payload,
}

impl From<Record> for PyRecord {
    fn from(r: Record) -> Self {
        PyRecord {
            id_rs: r.id,
            text: r.text,
            vector_rs: r.vector,
            payload_rs: r.payload,
        }
    }
}

#[pymethods]
impl PyRecord {
    /// The record id: an int, or a str in a collection of str ids.
    #[getter]
    fn id<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        id_to_py(py, &self.id_rs)
    }

    /// The stored vector as a float32 numpy array (normalized under cosine).
    #[getter]
    fn vector<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        PyArray1::from_slice(py, &self.vector_rs)
    }

    /// The payload as a dict.
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        payload_to_py(py, &self.payload_rs)
    }

    /// A record from its parts (what pickling uses).
    #[new]
    #[pyo3(signature = (id, vector, text=None, payload=None))]
    fn new(
        id: &Bound<'_, PyAny>,
        vector: Vec<f32>,
        text: Option<String>,
        payload: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Ok(PyRecord {
            id_rs: id_from_py(id)?,
            text,
            vector_rs: vector,
            payload_rs: payload
                .map(payload_from_py)
                .transpose()?
                .unwrap_or_default(),
        })
    }

    /// `{"id", "vector" (a list of floats), "text", "payload"}`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("id", self.id(py)?)?;
        d.set_item("vector", self.vector_rs.clone())?;
        d.set_item("text", &self.text)?;
        d.set_item("payload", self.payload(py)?)?;
        Ok(d)
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let r = slf.get();
        let args = PyTuple::new(
            py,
            [
                r.id(py)?,
                r.vector_rs.clone().into_pyobject(py)?.into_any(),
                r.text.clone().into_pyobject(py)?.into_any(),
                r.payload(py)?.into_any(),
            ],
        )?;
        Ok((slf.get_type().into_any(), args))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<PyRecord>().is_ok_and(|o| {
            let o = o.get();
            o.id_rs == self.id_rs
                && o.text == self.text
                && o.payload_rs == self.payload_rs
                && o.vector_rs
                    .iter()
                    .map(|x| x.to_bits())
                    .eq(self.vector_rs.iter().map(|x| x.to_bits()))
        })
    }

    fn __hash__(&self) -> u64 {
        id_hash(&self.id_rs)
    }

    fn __repr__(&self) -> String {
        format!(
            "Record(id={}, dim={})",
            id_repr(&self.id_rs),
            self.vector_rs.len()
        )
    }
}

/// Opens (creating if missing) the database in directory `path`.
///
/// `durability`: "sync" (default: a write is on stable storage when it returns) or
/// "buffered" (the log is synced by a background thread once a second; call `sync()` to
/// force). `background_compaction` merges small segments and rewrites ones with many deletes
/// in a background thread. `lock_timeout`: seconds to wait for another process to release
/// the database before raising `LockedError` (default 0: at once).
///
/// `read_only=True` opens an existing database for reading while (at most) one other
/// process writes to it: it takes no lock, never writes a byte, and before each call catches
/// up with the writer (under "sync" durability it sees every batch whose `upsert` or `delete`
/// returned before the call started). Every write raises `ReadOnlyError`. Any number of
/// read-only handles may be open, in any processes.
///
/// `memory_budget` (bytes): the segments' codes and graphs are read in at open and kept
/// resident (locked with `lock_memory=True`); a warning is logged when they do not fit.
/// `Database.memory()` reports the figures.
#[pyfunction]
#[allow(clippy::too_many_arguments)] // keyword arguments of the Python function
#[pyo3(signature = (path, *, durability="sync", background_compaction=true, create=true, read_only=false, lock_timeout=0.0, memory_budget=None, lock_memory=false))]
fn open(
    py: Python<'_>,
    path: std::path::PathBuf,
    durability: &str,
    background_compaction: bool,
    create: bool,
    read_only: bool,
    lock_timeout: f64,
    memory_budget: Option<u64>,
    lock_memory: bool,
) -> PyResult<PyDatabase> {
    // Python's logging configuration as it is now: levels set after an earlier open apply.
    if let Some(h) = LOG_RESET.get() {
        h.reset();
    }
    let d = match durability {
        "sync" => Durability::Sync,
        "buffered" => Durability::buffered(),
        other => {
            return Err(invalid(format!(
                "unknown durability {other:?} (use \"sync\" or \"buffered\")"
            )));
        }
    };
    let wait = Duration::try_from_secs_f64(lock_timeout).map_err(|_| {
        invalid(format!(
            "lock_timeout must be a number of seconds from 0 to 2**64, not {lock_timeout}"
        ))
    })?;
    let opts = Options::default()
        .durability(d)
        .background_compaction(background_compaction)
        .create_if_missing(create)
        .lock_timeout(wait)
        .lock_memory(lock_memory);
    let opts = match memory_budget {
        Some(b) => opts.memory_budget(b),
        None => opts,
    };
    let db = py
        .detach(|| {
            if read_only {
                Database::open_read_only_with(path, opts)
            } else {
                Database::open_with(path, opts)
            }
        })
        .map_err(to_py)?;
    Ok(PyDatabase {
        state: DbState::new(db),
    })
}

/// Merges ranked hit lists of shards holding disjoint records into the best `k`, ranked as
/// one collection holding them all ranks: higher score first, ties to the lower id key.
#[pyfunction]
fn merge_hits(lists: Vec<Vec<PyRef<'_, PyHit>>>, k: usize) -> Vec<PyHit> {
    let lists: Vec<Vec<Hit>> = lists
        .iter()
        .map(|l| l.iter().map(|h| Hit::from(&**h)).collect())
        .collect();
    cairndb::merge_hits(lists, k)
        .into_iter()
        .map(PyHit::from)
        .collect()
}

/// Fuses the ranked lists of a hybrid query's two legs (each best first, e.g. merged from
/// shards by `merge_hits`) exactly as a hybrid `search` of one collection fuses them: every
/// record of either list, best first, with its fused score and `legs`. `fusion`, `alpha` and
/// `rrf_k` as in `search`.
#[pyfunction]
#[pyo3(signature = (vector_hits, text_hits, fusion=None, *, alpha=None, rrf_k=None))]
fn fuse_hits(
    vector_hits: Vec<PyRef<'_, PyHit>>,
    text_hits: Vec<PyRef<'_, PyHit>>,
    fusion: Option<&str>,
    alpha: Option<f32>,
    rrf_k: Option<f32>,
) -> PyResult<Vec<PyHit>> {
    let f = fusion_from_py(fusion, alpha, rrf_k)?;
    let v: Vec<Hit> = vector_hits.iter().map(|h| Hit::from(&**h)).collect();
    let t: Vec<Hit> = text_hits.iter().map(|h| Hit::from(&**h)).collect();
    Ok(f.fuse_hits(&v, &t)
        .map_err(to_py)?
        .into_iter()
        .map(PyHit::from)
        .collect())
}

/// Clears pyo3-log's cache of Python logger levels (it is read again at each `open`).
static LOG_RESET: std::sync::OnceLock<pyo3_log::ResetHandle> = std::sync::OnceLock::new();

#[pymodule]
fn _cairndb(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The engine's log records go to Python's `logging`. Levels are cached per logger (the
    // cache is cleared at each `open`), so a disabled level costs no GIL; records from
    // background threads take the GIL when enabled
    // (the engine never logs while holding a lock a GIL-holding caller could wait for).
    if let Ok(h) = pyo3_log::try_init() {
        let _ = LOG_RESET.set(h);
    }
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_function(wrap_pyfunction!(merge_hits, m)?)?;
    m.add_function(wrap_pyfunction!(fuse_hits, m)?)?;
    m.add_class::<PyDatabase>()?;
    m.add_class::<PyCollection>()?;
    m.add_class::<PyHit>()?;
    m.add_class::<PyRecord>()?;
    m.add_class::<PyScan>()?;
    Ok(())
}
