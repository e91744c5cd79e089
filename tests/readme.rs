//! The README's quickstart runs, and runs again on the database its first run left: it is
//! `examples/quickstart.rs`, which must be the README's "Use the crate" code block verbatim.
//!
//! The only test of this binary: it changes the working directory (the quickstart opens
//! `my-db` there).

mod quickstart {
    include!("../examples/quickstart.rs");

    pub fn run() -> cairndb::Result<()> {
        main()
    }
}

/// The first ```rust block after `heading` in `text`.
fn code_block<'a>(text: &'a str, heading: &str) -> &'a str {
    let at = text
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?} in the README"));
    let start = text[at..].find("```rust\n").expect("no rust block") + at + "```rust\n".len();
    let len = text[start..].find("```\n").expect("unterminated block");
    &text[start..start + len]
}

#[test]
fn the_quickstart_is_the_readme_s_and_runs_twice() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let example = std::fs::read_to_string(format!("{root}/examples/quickstart.rs")).unwrap();
    // The example is the README's block below its own `//` header.
    let body: String = example
        .lines()
        .skip_while(|l| l.starts_with("//"))
        .skip_while(|l| l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        body,
        code_block(&readme, "## Use the crate"),
        "examples/quickstart.rs and the README's quickstart differ"
    );

    let dir = tempfile::tempdir().unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    quickstart::run().unwrap_or_else(|e| panic!("first run: {e}"));
    quickstart::run().unwrap_or_else(|e| panic!("second run, on the first run's database: {e}"));
    let db = cairndb::Database::open(dir.path().join("my-db")).unwrap();
    assert_eq!(db.collections(), vec!["docs".to_owned()]);
    assert_eq!(db.collection("docs").unwrap().len(), 2);
}
