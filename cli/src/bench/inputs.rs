//! Checks of the arguments and reading of the small inputs, before the long build.

use std::fs;
use std::path::Path;

use crate::input::read_ivecs;
use crate::util::{CliResult, fail};

use super::MAX_K;

/// Parses `--ef 10,20,40`.
pub(super) fn parse_efs(list: &str) -> CliResult<Vec<usize>> {
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
pub(super) fn check_output(flag: &str, path: &Path) -> CliResult<()> {
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
pub(super) fn check_dir(dir: &Path) -> CliResult<()> {
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
pub(super) fn load_gt(path: &Path, queries: usize, k: usize) -> CliResult<Vec<Vec<u64>>> {
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
