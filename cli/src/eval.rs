//! `cairn eval`: runs a query file against a collection and scores the results against
//! relevance judgments in TREC qrels format, for text, vector and hybrid search (any fusion
//! settings) in one run: MRR@k, nDCG@k, recall@k and hit@k, and TREC run files.
//!
//! Metrics (per query, then the mean over the queries that have at least one relevant
//! document, as trec_eval does):
//! - hit@k: 1 if a relevant document is in the top k.
//! - MRR@k: 1 / the rank of the first relevant document in the top k (0 if none).
//! - recall@k: relevant documents in the top k / relevant documents judged.
//! - nDCG@k: DCG / ideal DCG, DCG = Σ rel_i / log2(i + 1) over ranks i = 1..k with the
//!   judged grade as gain (trec_eval's `ndcg_cut`); unjudged documents have grade 0.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use cairndb::{Collection, Filter, Fusion, SearchRequest};
use clap::Args;
use serde::{Deserialize, Serialize};

use crate::util::{CliResult, Table, fail, open_collection_read_only};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Database directory.
    #[arg(value_name = "DB")]
    pub db: PathBuf,
    /// Collection to evaluate.
    #[arg(value_name = "COLLECTION")]
    pub collection: String,
    /// Queries, one JSON object a line: "qid" (a string or a number; default: the line
    /// number), "text" and/or "vector", optionally "filter" (text syntax or JSON form).
    #[arg(long, value_name = "FILE.jsonl")]
    pub queries: PathBuf,
    /// Relevance judgments in TREC qrels format: `qid iteration docid grade` a line; a
    /// grade above 0 is relevant. A docid is a record id as `cairn export` writes it
    /// (a number, or the string without quotes).
    #[arg(long, value_name = "FILE")]
    pub qrels: PathBuf,
    /// Search modes to evaluate, comma-separated: text (BM25), vector, hybrid. Default:
    /// each mode every query supports.
    #[arg(long, value_name = "MODES", value_delimiter = ',')]
    pub mode: Vec<String>,
    /// Fusions of the hybrid mode, comma-separated: `default` (the library's default), `rrf`
    /// or `rrf:K`, `weighted` or `weighted:ALPHA`, `dbsf`. Default: `default`.
    #[arg(long, value_name = "FUSIONS", value_delimiter = ',')]
    pub fusion: Vec<String>,
    /// Cut-off of every metric, and hits per query.
    #[arg(long, value_name = "K", default_value_t = 10)]
    pub k: usize,
    /// Candidates each leg of a hybrid query finds before fusion (default max(2k, 50)).
    #[arg(long, value_name = "N")]
    pub candidates: Option<usize>,
    /// HNSW search list size (default max(k, 64)).
    #[arg(long, value_name = "EF")]
    pub ef: Option<usize>,
    /// Exact vector search (a scan) instead of the HNSW index.
    #[arg(long)]
    pub exact: bool,
    /// Write a TREC run file per system: PREFIX.<system>.run (`qid Q0 docid rank score tag`).
    #[arg(long, value_name = "PREFIX")]
    pub run: Option<PathBuf>,
    /// Print the results as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// One line of the queries file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryLine {
    #[serde(default)]
    qid: Option<serde_json::Value>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    vector: Option<Vec<f32>>,
    #[serde(default)]
    filter: Option<serde_json::Value>,
}

struct Query {
    qid: String,
    text: Option<String>,
    vector: Option<Vec<f32>>,
    filter: Option<Filter>,
}

/// Judgments: qid → docid → grade.
type Qrels = HashMap<String, HashMap<String, i64>>;

/// A search mode and, for hybrid, its fusion.
#[derive(Debug, Clone, PartialEq)]
enum System {
    Text,
    Vector,
    Hybrid(Option<Fusion>, String),
}

impl System {
    fn label(&self) -> String {
        match self {
            System::Text => "text".into(),
            System::Vector => "vector".into(),
            System::Hybrid(_, name) => format!("hybrid-{name}"),
        }
    }
}

/// The scores of one system.
#[derive(Debug, Clone, Serialize)]
pub struct Scores {
    pub system: String,
    pub queries: usize,
    pub mrr: f64,
    pub ndcg: f64,
    pub recall: f64,
    pub hit: f64,
}

#[derive(Serialize)]
struct Report<'a> {
    k: usize,
    queries: usize,
    judged_queries: usize,
    systems: &'a [Scores],
}

fn read_queries(path: &Path) -> CliResult<Vec<Query>> {
    let body = std::fs::read_to_string(path)
        .map_err(|e| fail(format_args!("cannot read {}: {e}", path.display())))?;
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, line) in body.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |what: &dyn std::fmt::Display| {
            fail(format_args!("{} line {}: {what}", path.display(), i + 1))
        };
        let q: QueryLine = serde_json::from_str(line).map_err(|e| at(&e))?;
        let qid = match q.qid {
            None => (i + 1).to_string(),
            Some(serde_json::Value::String(s)) => s,
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(_) => return Err(at(&"\"qid\" is a string or a number")),
        };
        if qid.is_empty() || qid.chars().any(char::is_whitespace) {
            return Err(at(&format_args!(
                "qid {qid:?} cannot be written in a TREC file (empty, or has whitespace)"
            )));
        }
        if !seen.insert(qid.clone()) {
            return Err(at(&format_args!("qid {qid} appears twice")));
        }
        if q.text.is_none() && q.vector.is_none() {
            return Err(at(&"a query needs \"text\", \"vector\", or both"));
        }
        let filter = match &q.filter {
            None => None,
            Some(serde_json::Value::String(t)) => {
                Some(crate::read::filter_arg(t).map_err(|e| at(&e))?)
            }
            Some(v) => Some(Filter::from_json_value(v).map_err(|e| at(&e))?),
        };
        out.push(Query {
            qid,
            text: q.text,
            vector: q.vector,
            filter,
        });
    }
    if out.is_empty() {
        return Err(fail(format_args!("{} holds no query", path.display())));
    }
    Ok(out)
}

fn read_qrels(path: &Path) -> CliResult<Qrels> {
    let body = std::fs::read_to_string(path)
        .map_err(|e| fail(format_args!("cannot read {}: {e}", path.display())))?;
    let mut out: Qrels = HashMap::new();
    for (i, line) in body.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        let [qid, _iter, doc, grade] = f[..] else {
            return Err(fail(format_args!(
                "{} line {}: a qrels line is `qid iteration docid grade`, got {} fields",
                path.display(),
                i + 1,
                f.len()
            )));
        };
        let grade: i64 = grade.parse().map_err(|_| {
            fail(format_args!(
                "{} line {}: grade {grade:?} is not a whole number",
                path.display(),
                i + 1
            ))
        })?;
        out.entry(qid.to_owned())
            .or_default()
            .insert(doc.to_owned(), grade);
    }
    Ok(out)
}

fn parse_fusion(spec: &str) -> CliResult<(Option<Fusion>, String)> {
    let (name, arg) = match spec.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (spec, None),
    };
    let num = |default: f32| -> CliResult<f32> {
        match arg {
            None => Ok(default),
            Some(a) => a
                .parse::<f32>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| fail(format_args!("--fusion {spec}: {a:?} is not a number"))),
        }
    };
    let fusion = match name {
        "default" if arg.is_none() => None,
        "rrf" => Some(Fusion::Rrf { k: num(60.0)? }),
        "weighted" => {
            let alpha = num(0.5)?;
            if !(0.0..=1.0).contains(&alpha) {
                return Err(fail(format_args!(
                    "--fusion {spec}: alpha must be in [0, 1]"
                )));
            }
            Some(Fusion::Weighted { alpha })
        }
        "dbsf" if arg.is_none() => Some(Fusion::Dbsf),
        _ => {
            return Err(fail(format_args!(
                "--fusion {spec}: expected default, rrf[:K], weighted[:ALPHA] or dbsf"
            )));
        }
    };
    let label = match fusion {
        None => "default".to_owned(),
        Some(Fusion::Rrf { k }) => format!("rrf{k}"),
        Some(Fusion::Weighted { alpha }) => format!("weighted{alpha}"),
        Some(_) => "dbsf".to_owned(),
    };
    Ok((fusion, label))
}

fn systems(a: &EvalArgs, queries: &[Query]) -> CliResult<Vec<System>> {
    let all_text = queries.iter().all(|q| q.text.is_some());
    let all_vec = queries.iter().all(|q| q.vector.is_some());
    let modes: Vec<String> = if a.mode.is_empty() {
        let mut m = Vec::new();
        if all_text {
            m.push("text".to_owned());
        }
        if all_vec {
            m.push("vector".to_owned());
        }
        if all_text && all_vec {
            m.push("hybrid".to_owned());
        }
        if m.is_empty() {
            return Err(fail(
                "no mode fits every query: give each query a \"text\" or each a \"vector\"",
            ));
        }
        m
    } else {
        a.mode.clone()
    };
    let fusions = if a.fusion.is_empty() {
        vec![(None, "default".to_owned())]
    } else {
        a.fusion
            .iter()
            .map(|s| parse_fusion(s))
            .collect::<CliResult<Vec<_>>>()?
    };
    let mut out = Vec::new();
    for m in &modes {
        let missing = |what: &str| {
            fail(format_args!(
                "--mode {m}: every query needs a \"{what}\" (the first without one: qid {})",
                queries
                    .iter()
                    .find(|q| match what {
                        "text" => q.text.is_none(),
                        _ => q.vector.is_none(),
                    })
                    .map_or("?", |q| q.qid.as_str())
            ))
        };
        match m.as_str() {
            "text" if !all_text => return Err(missing("text")),
            "vector" if !all_vec => return Err(missing("vector")),
            "hybrid" if !all_text => return Err(missing("text")),
            "hybrid" if !all_vec => return Err(missing("vector")),
            "text" => out.push(System::Text),
            "vector" => out.push(System::Vector),
            "hybrid" => out.extend(fusions.iter().map(|(f, l)| System::Hybrid(*f, l.clone()))),
            other => {
                return Err(fail(format_args!(
                    "--mode {other}: expected text, vector or hybrid"
                )));
            }
        }
    }
    Ok(out)
}

/// The metrics of one ranked list of docids against one query's judgments.
pub fn score_query(ranked: &[String], judged: &HashMap<String, i64>, k: usize) -> [f64; 4] {
    let relevant = judged.values().filter(|&&g| g > 0).count();
    let top = &ranked[..ranked.len().min(k)];
    let grade = |d: &String| judged.get(d).copied().unwrap_or(0).max(0);
    let first = top.iter().position(|d| grade(d) > 0);
    let hit = f64::from(u8::from(first.is_some()));
    let mrr = first.map_or(0.0, |r| 1.0 / (r + 1) as f64);
    let found = top.iter().filter(|d| grade(d) > 0).count();
    let recall = if relevant == 0 {
        0.0
    } else {
        found as f64 / relevant as f64
    };
    let dcg = |grades: &mut dyn Iterator<Item = i64>| -> f64 {
        grades
            .enumerate()
            .map(|(i, g)| g as f64 / ((i + 2) as f64).log2())
            .sum()
    };
    let got = dcg(&mut top.iter().map(grade));
    let mut ideal: Vec<i64> = judged.values().map(|&g| g.max(0)).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let best = dcg(&mut ideal.into_iter().take(k));
    let ndcg = if best > 0.0 { got / best } else { 0.0 };
    [mrr, ndcg, recall, hit]
}

fn request(q: &Query, s: &System, a: &EvalArgs) -> SearchRequest {
    let mut req = match s {
        System::Text => SearchRequest::by_text(q.text.clone().unwrap_or_default()),
        System::Vector => SearchRequest::new(q.vector.clone().unwrap_or_default()),
        System::Hybrid(f, _) => {
            let r = SearchRequest::new(q.vector.clone().unwrap_or_default())
                .text(q.text.clone().unwrap_or_default());
            match f {
                Some(f) => r.fusion(*f),
                None => r,
            }
        }
    };
    req = req.k(a.k).exact(a.exact);
    if let Some(f) = &q.filter {
        req = req.filter(f.clone());
    }
    if let Some(ef) = a.ef {
        req = req.ef(ef);
    }
    if let Some(c) = a.candidates {
        req = req.candidates(c);
    }
    req
}

/// Runs every system over the judged queries; returns each system's scores and its ranked
/// (docid, score) lists per query.
#[allow(clippy::type_complexity)]
fn run_systems(
    coll: &Collection,
    queries: &[&Query],
    qrels: &Qrels,
    systems: &[System],
    a: &EvalArgs,
) -> CliResult<(Vec<Scores>, Vec<Vec<Vec<(String, f32)>>>)> {
    let mut scores = Vec::new();
    let mut runs = Vec::new();
    for s in systems {
        let mut sum = [0.0f64; 4];
        let mut lists = Vec::with_capacity(queries.len());
        for q in queries {
            let hits = coll
                .search(&request(q, s, a))
                .map_err(|e| fail(format_args!("{} qid {}: {e}", s.label(), q.qid)))?;
            let list: Vec<(String, f32)> = hits
                .into_iter()
                .map(|h| (h.id.to_string(), h.score))
                .collect();
            let ranked: Vec<String> = list.iter().map(|(d, _)| d.clone()).collect();
            let m = score_query(&ranked, &qrels[&q.qid], a.k);
            for (acc, x) in sum.iter_mut().zip(m) {
                *acc += x;
            }
            lists.push(list);
        }
        let n = queries.len().max(1) as f64;
        scores.push(Scores {
            system: s.label(),
            queries: queries.len(),
            mrr: sum[0] / n,
            ndcg: sum[1] / n,
            recall: sum[2] / n,
            hit: sum[3] / n,
        });
        runs.push(lists);
    }
    Ok((scores, runs))
}

pub fn eval(a: &EvalArgs) -> CliResult<()> {
    if a.k == 0 {
        return Err(fail("--k must be at least 1"));
    }
    let queries = read_queries(&a.queries)?;
    let qrels = read_qrels(&a.qrels)?;
    let systems = systems(a, &queries)?;
    // Only queries with a relevant judgment count (trec_eval's convention).
    let judged: Vec<&Query> = queries
        .iter()
        .filter(|q| {
            qrels
                .get(&q.qid)
                .is_some_and(|j| j.values().any(|&g| g > 0))
        })
        .collect();
    if judged.is_empty() {
        return Err(fail(format_args!(
            "no query of {} has a relevant document in {} (qids must match)",
            a.queries.display(),
            a.qrels.display()
        )));
    }
    let (_db, coll) = open_collection_read_only(&a.db, &a.collection)?;
    let (scores, runs) = run_systems(&coll, &judged, &qrels, &systems, a)?;
    if let Some(prefix) = &a.run {
        for (s, lists) in systems.iter().zip(&runs) {
            let path = PathBuf::from(format!("{}.{}.run", prefix.display(), s.label()));
            let mut body = String::new();
            for (q, list) in judged.iter().zip(lists) {
                for (rank, (doc, score)) in list.iter().enumerate() {
                    // A docid with whitespace cannot be written in a TREC file.
                    let doc: String = doc
                        .chars()
                        .map(|c| if c.is_whitespace() { '_' } else { c })
                        .collect();
                    body.push_str(&format!(
                        "{} Q0 {doc} {} {score} cairn-{}\n",
                        q.qid,
                        rank + 1,
                        s.label()
                    ));
                }
            }
            std::fs::write(&path, body)
                .map_err(|e| fail(format_args!("cannot write {}: {e}", path.display())))?;
        }
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        let r = Report {
            k: a.k,
            queries: queries.len(),
            judged_queries: judged.len(),
            systems: &scores,
        };
        let j = serde_json::to_string_pretty(&r)
            .map_err(|e| fail(format_args!("cannot write JSON: {e}")))?;
        outln!(out, "{j}");
        return Ok(());
    }
    let k = a.k;
    outln!(
        out,
        "{} judged queries of {} (k = {k})",
        judged.len(),
        queries.len()
    );
    let (h1, h2, h3, h4) = (
        format!(">MRR@{k}"),
        format!(">nDCG@{k}"),
        format!(">recall@{k}"),
        format!(">hit@{k}"),
    );
    let mut t = Table::new(&["system", h1.as_str(), h2.as_str(), h3.as_str(), h4.as_str()]);
    for s in &scores {
        t.row(vec![
            s.system.clone(),
            format!("{:.4}", s.mrr),
            format!("{:.4}", s.ndcg),
            format!("{:.4}", s.recall),
            format!("{:.4}", s.hit),
        ]);
    }
    write!(out, "{}", t.render("  ")).map_err(crate::util::CliError::output)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(pairs: &[(&str, i64)]) -> HashMap<String, i64> {
        pairs.iter().map(|(d, g)| (d.to_string(), *g)).collect()
    }

    fn ranked(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn metrics_by_hand() {
        // Relevant b (grade 1) and d (grade 2); ranked a, b, c, d.
        let j = judged(&[("b", 1), ("d", 2), ("x", 0)]);
        let [mrr, ndcg, recall, hit] = score_query(&ranked(&["a", "b", "c", "d"]), &j, 10);
        assert_eq!((mrr, recall, hit), (0.5, 1.0, 1.0));
        // DCG = 1/log2(3) + 2/log2(5); ideal = 2/log2(2) + 1/log2(3).
        let want = (1.0 / 3f64.log2() + 2.0 / 5f64.log2()) / (2.0 + 1.0 / 3f64.log2());
        assert!((ndcg - want).abs() < 1e-12, "{ndcg} {want}");
        // Cut at 3: d is out.
        let [mrr, ndcg, recall, hit] = score_query(&ranked(&["a", "b", "c", "d"]), &j, 3);
        assert_eq!((mrr, recall, hit), (0.5, 0.5, 1.0));
        let want = (1.0 / 3f64.log2()) / (2.0 + 1.0 / 3f64.log2());
        assert!((ndcg - want).abs() < 1e-12);
        // Cut at 1: nothing.
        assert_eq!(
            score_query(&ranked(&["a", "b"]), &j, 1),
            [0.0, 0.0, 0.0, 0.0]
        );
        // Perfect ranking: nDCG 1.
        let [_, ndcg, _, _] = score_query(&ranked(&["d", "b"]), &j, 10);
        assert!((ndcg - 1.0).abs() < 1e-12);
        // Negative grades count as 0.
        let j = judged(&[("a", -1), ("b", 1)]);
        assert_eq!(score_query(&ranked(&["a", "b"]), &j, 10)[0], 0.5);
    }

    #[test]
    fn fusion_specs() {
        assert_eq!(parse_fusion("default").unwrap().0, None);
        assert_eq!(
            parse_fusion("rrf:20").unwrap().0,
            Some(Fusion::Rrf { k: 20.0 })
        );
        assert_eq!(
            parse_fusion("weighted").unwrap().0,
            Some(Fusion::Weighted { alpha: 0.5 })
        );
        for bad in ["rrf:x", "weighted:2", "dbsf:1", "nope", "rrf:nan"] {
            assert!(parse_fusion(bad).is_err(), "{bad}");
        }
    }
}
