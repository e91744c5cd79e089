//! Checks of the arguments and reading of the small inputs, before the long build.

use std::fs;
use std::path::Path;

use cairndb::{CollectionConfig, Metric};

use crate::BenchArgs;
use crate::input::{VectorFile, read_ivecs, read_vectors};
use crate::util::{CliResult, fail, thousands};

use super::MAX_K;
use super::filtered::parse_selectivities;

/// The checked arguments that need parsing.
pub(super) struct Plan {
    pub(super) efs: Vec<usize>,
    /// `--filter-selectivity`: filtered mode, and a `sel` field on every record.
    pub(super) selectivities: Option<Vec<f64>>,
    pub(super) metric: Metric,
}

/// Checks the arguments and the output paths, before anything is read.
pub(super) fn check_args(a: &BenchArgs) -> CliResult<Plan> {
    if a.k == 0 {
        return Err(fail("--k must be at least 1"));
    }
    if a.k > MAX_K {
        return Err(fail(format_args!("--k must be at most {MAX_K}")));
    }
    let efs = parse_efs(&a.ef)?;
    let selectivities = match &a.filter_selectivity {
        Some(list) => Some(parse_selectivities(list)?),
        None => None,
    };
    if a.batch == 0 {
        return Err(fail("--batch must be at least 1"));
    }
    if a.threads == Some(0) {
        return Err(fail("--threads must be at least 1"));
    }
    if a.n_query == Some(0) {
        return Err(fail("--n-query must be at least 1"));
    }
    let metric: Metric = a.metric.into();
    CollectionConfig {
        dim: 1,
        metric,
        m: a.m,
        ef_construction: a.ef_construction,
        quantization: a.quantization.into(),
        ..Default::default()
    }
    .validate()?;
    if let Some(p) = &a.csv {
        check_output("--csv", p)?;
    }
    if let Some(p) = &a.plot {
        check_output("--plot", p)?;
    }
    if let Some(d) = &a.dir {
        check_dir(d)?;
    }
    Ok(Plan {
        efs,
        selectivities,
        metric,
    })
}

/// The inputs: the base set (open, not read yet), the queries and the ground truth if given.
pub(super) struct Inputs {
    pub(super) base_rows: VectorFile,
    /// Rows of the base file, from its header or size.
    pub(super) rows: usize,
    pub(super) dim: usize,
    pub(super) queries: Vec<Vec<f32>>,
    /// `--gt`: each query's true top k, sorted.
    pub(super) gt: Option<Vec<Vec<u64>>>,
}

/// Opens the base file and reads the queries and the ground truth, checking that they agree.
pub(super) fn read_inputs(a: &BenchArgs) -> CliResult<Inputs> {
    let (base_rows, shape) = VectorFile::open(&a.base)?;
    let dim = match shape.dim {
        Some(d) if shape.rows > 0 => d,
        _ => {
            return Err(fail(format_args!(
                "base file {} holds no vectors",
                a.base.display()
            )));
        }
    };
    let (mut queries, qdim) = read_vectors(&a.queries)?;
    if queries.is_empty() {
        return Err(fail(format_args!(
            "query file {} holds no vectors",
            a.queries.display()
        )));
    }
    if qdim != Some(dim) {
        return Err(fail(format_args!(
            "dimension mismatch: the queries in {} have dimension {}, the base vectors in {} have {dim}",
            a.queries.display(),
            qdim.unwrap_or(0),
            a.base.display()
        )));
    }
    if let Some(n) = a.n_query {
        queries.truncate(n);
    }
    let gt = match &a.gt {
        Some(p) => Some(load_gt(p, queries.len(), a.k)?),
        None => None,
    };
    if let Some(gt) = &gt {
        check_gt_ids(gt, shape.rows)?;
    }
    Ok(Inputs {
        base_rows,
        rows: shape.rows,
        dim,
        queries,
        gt,
    })
}

/// Every id of the ground truth must be a row of the base set.
fn check_gt_ids(gt: &[Vec<u64>], rows: usize) -> CliResult<()> {
    if let Some((i, id)) = gt
        .iter()
        .enumerate()
        .find_map(|(i, r)| r.iter().find(|&&id| id >= rows as u64).map(|&id| (i, id)))
    {
        return Err(fail(format_args!(
            "ground truth row {i} names id {id}, but the base set has only {} rows \
             (is it the ground truth of this base set?)",
            thousands(rows as u64)
        )));
    }
    Ok(())
}

/// Parses `--ef 10,20,40`.
fn parse_efs(list: &str) -> CliResult<Vec<usize>> {
    let mut efs = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<usize>() {
            Ok(ef) if (1..=MAX_K).contains(&ef) => efs.push(ef),
            _ => {
                return Err(fail(format_args!(
                    "--ef: `{part}` is not a whole number from 1 to {MAX_K}"
                )));
            }
        }
    }
    if efs.is_empty() {
        return Err(fail(
            "--ef is empty; give a comma-separated list such as 10,20,40",
        ));
    }
    Ok(efs)
}

/// Checks that an output file's directory exists, before the long run starts.
fn check_output(flag: &str, path: &Path) -> CliResult<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(fail(format_args!(
            "{flag} {}: directory {} does not exist",
            path.display(),
            parent.display()
        )));
    }
    if path.is_dir() {
        return Err(fail(format_args!(
            "{flag} {}: is a directory",
            path.display()
        )));
    }
    Ok(())
}

/// `--dir` must be new or empty: the benchmark never builds into (or over) other data.
fn check_dir(dir: &Path) -> CliResult<()> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(fail(format_args!(
                    "refusing to use --dir {}: it is not empty; give a new or empty directory",
                    dir.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(fail(format_args!(
            "cannot use --dir {}: {e}",
            dir.display()
        ))),
    }
}

/// The ids of each query's true top k, sorted (for lookups), from an `.ivecs` file.
fn load_gt(path: &Path, queries: usize, k: usize) -> CliResult<Vec<Vec<u64>>> {
    let rows = read_ivecs(path)?;
    if rows.len() < queries {
        return Err(fail(format_args!(
            "ground truth {} has {} rows, fewer than the {queries} queries",
            path.display(),
            rows.len()
        )));
    }
    let cols = rows.first().map_or(0, Vec::len);
    if cols < k {
        return Err(fail(format_args!(
            "ground truth {} lists {cols} neighbours per query, fewer than k = {k}",
            path.display()
        )));
    }
    rows.into_iter()
        .take(queries)
        .enumerate()
        .map(|(i, row)| {
            row.into_iter()
                .take(k)
                .map(|id| {
                    u64::try_from(id).map_err(|_| {
                        fail(format_args!(
                            "ground truth {} row {i} holds a negative id {id}",
                            path.display()
                        ))
                    })
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ef_lists() {
        assert_eq!(parse_efs("10, 20,40").unwrap(), vec![10, 20, 40]);
        assert!(parse_efs("").is_err());
        assert!(parse_efs(" , ").is_err());
        assert!(parse_efs("10,x").is_err());
        assert!(parse_efs("0").is_err());
    }
}
