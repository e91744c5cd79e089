//! The module layering of `src/` stays true: a module uses only modules of lower layers (or
//! its own), and no two directories import from each other, directly or through others.
//!
//! The layers are listed in `LAYERS`, lowest first, as `docs/architecture.md` draws them.
//! Every `crate::…` path and every `super::…` path in every file under `src/` is checked
//! (`use` lines and paths in code alike, tests included).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Top-level modules of `src/`, lowest layer first.
const LAYERS: &[&str] = &[
    "error",
    "io",
    "vector",
    "model",
    "index",
    "segment",
    "memtable",
    "log",
    "manifest",
    "query",
    "collection",
    "db",
];

/// What sits above every layer: the crate root, and the fuzz harness `fuzzing/` (which reaches
/// into every decoder on purpose; it exists only under `cfg(fuzzing)`).
const ABOVE_ALL: &[&str] = &["lib.rs", "fuzzing"];

/// Whether a file is (in) one of [`ABOVE_ALL`].
fn above_all(rel: &Path) -> bool {
    ABOVE_ALL.iter().any(|a| rel.starts_with(a))
}

/// One source file: its path under `src/` and its text.
struct File {
    rel: PathBuf,
    text: String,
}

fn read_tree(root: &Path, dir: &Path, out: &mut Vec<File>) {
    for e in fs::read_dir(dir).expect("readable src/") {
        let p = e.expect("entry").path();
        let rel = p.strip_prefix(root).expect("under src/").to_owned();
        if rel.starts_with("bin") {
            continue; // a binary of its own, not part of the library
        }
        if p.is_dir() {
            read_tree(root, &p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = fs::read_to_string(&p).expect("UTF-8 source");
            out.push(File { rel, text });
        }
    }
}

/// The module path of a file: `index/hnsw/graph.rs` → `[index, hnsw, graph]`,
/// `index/mod.rs` → `[index]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" {
        parts.push(stem.to_owned());
    }
    parts
}

/// Every module path a file refers to, resolved to absolute paths from the crate root.
/// `super::` is resolved from the module it is written in, inline modules (`mod tests {`)
/// included.
fn references(f: &File) -> Vec<Vec<String>> {
    let file_module = module_path(&f.rel);
    // Inline modules open at this file: their name and the brace depth they close at.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut out = Vec::new();
    for line in f.text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut me = file_module.clone();
        me.extend(inline.iter().map(|(m, _)| m.clone()));
        for (i, _) in code.match_indices("crate::") {
            if code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$') {
                continue; // part of a longer name, or a macro's `$crate::`
            }
            out.push(path_after(&code[i + "crate::".len()..]));
        }
        for (i, _) in code.match_indices("super::") {
            if i >= 2 && &code[i - 2..i] == "::" {
                continue; // part of a longer `super::super::` chain, counted at its start
            }
            let mut base = me.clone();
            let mut rest = &code[i..];
            while let Some(r) = rest.strip_prefix("super::") {
                base.pop();
                rest = r;
            }
            base.extend(path_after(rest));
            out.push(base);
        }
        // An inline module starts on a line `… mod name {`.
        let words: Vec<&str> = code.split_whitespace().collect();
        if let Some(k) = words.iter().position(|w| *w == "mod")
            && words.get(k + 2) == Some(&"{")
        {
            inline.push((words[k + 1].to_owned(), depth + 1));
        }
        for c in code.chars() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if inline.last().is_some_and(|(_, d)| *d > depth) {
                        inline.pop();
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// The identifiers of a path like `a::b::{c, d}` up to the first brace or non-path char.
fn path_after(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = s;
    loop {
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        parts.push(rest[..end].to_owned());
        match rest[end..].strip_prefix("::") {
            Some(r) => rest = r,
            None => break,
        }
    }
    parts
}

/// The directory node of a module path: its longest prefix that is a directory under
/// `src/`, or, for a module that is a single file at the top, that module.
fn node(path: &[String], dirs: &BTreeSet<Vec<String>>) -> Vec<String> {
    for n in (1..=path.len()).rev() {
        if dirs.contains(&path[..n].to_vec()) {
            return path[..n].to_vec();
        }
    }
    path.iter().take(1).cloned().collect()
}

/// What the rules find wrong in a tree of files: upward imports, then directory cycles.
fn problems(files: &[File]) -> Vec<String> {
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    let dirs: BTreeSet<Vec<String>> = files
        .iter()
        .filter(|f| f.rel.iter().count() > 1)
        .map(|f| {
            let mut d: Vec<String> = f
                .rel
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            d.pop();
            d
        })
        .flat_map(|d| (1..=d.len()).map(move |n| d[..n].to_vec()))
        .collect();
    let mut out = Vec::new();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for f in files {
        if above_all(&f.rel) {
            continue;
        }
        let me = module_path(&f.rel);
        let Some(top) = me.first() else { continue };
        let Some(my_rank) = rank(top) else {
            out.push(format!(
                "{}: module `{top}` is not in LAYERS",
                f.rel.display()
            ));
            continue;
        };
        let from = node(&me, &dirs);
        for r in references(f) {
            let Some(target) = r.first() else { continue };
            // `crate::Error`-style re-exports at the root are the error layer's.
            let target_rank = match rank(target) {
                Some(x) => x,
                None if target.starts_with(char::is_uppercase) => 0,
                None => {
                    out.push(format!(
                        "{}: refers to `crate::{}`, which is not a layer",
                        f.rel.display(),
                        r.join("::")
                    ));
                    continue;
                }
            };
            if target_rank > my_rank {
                out.push(format!(
                    "{}: `{}` is in layer `{target}`, above `{top}`",
                    f.rel.display(),
                    r.join("::")
                ));
            }
            let to = node(&r, &dirs);
            if to != from && rank(target).is_some() {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    // Directory cycles: depth-first search for a back edge.
    fn visit(
        n: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        stack: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
        out: &mut Vec<String>,
    ) {
        if done.contains(n) {
            return;
        }
        if let Some(at) = stack.iter().position(|s| s == n) {
            let cycle: Vec<String> = stack[at..]
                .iter()
                .chain(std::iter::once(n))
                .map(|p| p.join("/"))
                .collect();
            out.push(format!("import cycle: {}", cycle.join(" -> ")));
            return;
        }
        stack.push(n.clone());
        for m in edges.get(n).into_iter().flatten() {
            visit(m, edges, stack, done, out);
        }
        stack.pop();
        done.insert(n.clone());
    }
    let mut done = BTreeSet::new();
    for n in edges.keys() {
        visit(n, &edges, &mut Vec::new(), &mut done, &mut out);
    }
    out
}

#[test]
fn layers_depend_downward_only() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    read_tree(&root, &root, &mut files);
    assert!(files.len() > 40, "read {} files", files.len());
    // Every top-level module is in a layer (or above all).
    for f in &files {
        let top = module_path(&f.rel);
        if above_all(&f.rel) {
            continue;
        }
        assert!(
            LAYERS.contains(&top[0].as_str()),
            "{} is in no layer",
            f.rel.display()
        );
    }
    let p = problems(&files);
    assert!(p.is_empty(), "layering broken:\n{}", p.join("\n"));
}

fn file(rel: &str, text: &str) -> File {
    File {
        rel: PathBuf::from(rel),
        text: text.to_owned(),
    }
}

/// The checker itself finds what it is for: an upward `use`, an upward path in code, an upward
/// `super::` path, and a cycle between two directories of one layer.
#[test]
fn checker_finds_upward_imports_and_cycles() {
    let ok = [
        file("io/header.rs", "use crate::error::Result;\n"),
        file("segment/mod.rs", "use crate::io::header::Header;\n"),
        file(
            "segment/writer.rs",
            "use super::Segment; // super is segment\n",
        ),
    ];
    assert_eq!(problems(&ok), Vec::<String>::new());

    let up = [file("io/header.rs", "use crate::segment::Segment;\n")];
    let p = problems(&up);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("above `io`"), "{p:?}");

    let inline = [file(
        "vector/quant.rs",
        "fn f() { let _ = crate::query::engine::run; }\n",
    )];
    assert_eq!(problems(&inline).len(), 1);

    // `super::super` from io/faults/seam.rs is the crate root's `collection`: upward.
    let sup = [file(
        "io/faults/seam.rs",
        "use super::super::super::collection::X;\n",
    )];
    assert_eq!(problems(&sup).len(), 1, "{:?}", problems(&sup));

    let cycle = [
        file("index/hnsw/graph.rs", "use crate::index::text::Analyzer;\n"),
        file(
            "index/text/bm25.rs",
            "use crate::index::hnsw::graph::MemGraph;\n",
        ),
    ];
    let p = problems(&cycle);
    assert!(p.iter().any(|m| m.starts_with("import cycle")), "{p:?}");

    // `super` inside an inline module is that module's parent.
    let tests = [file(
        "vector/distance/mod.rs",
        "fn f() {}\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\nuse super::quant::X;\n",
    )];
    assert_eq!(problems(&tests), Vec::<String>::new());

    // Comments do not count.
    let commented = [file(
        "io/header.rs",
        "// see crate::collection::Collection\n",
    )];
    assert_eq!(problems(&commented), Vec::<String>::new());
}
