// The README's quickstart ("Use the crate"), verbatim below this comment: `tests/readme.rs`
// checks that the two agree and runs it twice in a row. `cargo run --example quickstart`
// writes the database `my-db` in the current directory.

use cairndb::{CollectionConfig, Database, Metric, Record, SearchRequest};

fn main() -> cairndb::Result<()> {
    let db = Database::open("my-db")?;
    // The collection made by the first run, or a new one: the program can run again.
    let docs = db.get_or_create_collection("docs", CollectionConfig::new(3, Metric::Cosine))?;

    // One batch, written atomically; durable when upsert returns.
    docs.upsert(vec![
        Record::new(1, vec![1.0, 0.0, 0.0])
            .with_text("red")
            .with_field("lang", "en"),
        Record::new(2, vec![0.0, 1.0, 0.0]).with_text("green"),
    ])?;

    let hits = docs.search(&SearchRequest::new(vec![0.9, 0.1, 0.0]).k(5).with_text(true))?;
    for h in hits {
        println!("{} {:.3} {:?}", h.id, h.score, h.text);
    }
    Ok(())
}
