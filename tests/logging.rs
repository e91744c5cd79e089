//! The engine reports what it does through the `log` facade: opening (with what it
//! replayed), seals, compactions, and failures that stop writes. One test: the logger is
//! process-wide.

use std::sync::Mutex;

use cairndb::{CollectionConfig, Database, Metric, Options, Record};

static LINES: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        LINES
            .lock()
            .unwrap()
            .push((r.level(), r.args().to_string()));
    }
    fn flush(&self) {}
}

fn take() -> Vec<(log::Level, String)> {
    std::mem::take(&mut *LINES.lock().unwrap())
}

fn has(lines: &[(log::Level, String)], level: log::Level, needle: &str) -> bool {
    lines.iter().any(|(l, s)| *l == level && s.contains(needle))
}

#[test]
fn the_engine_logs_opens_seals_and_compactions() {
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Debug);
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default()
        .memtable_max_rows(100)
        .background_compaction(false);
    {
        let db = Database::open_with(dir.path(), opts.clone()).unwrap();
        let c = db
            .create_collection("logged", CollectionConfig::new(4, Metric::L2))
            .unwrap();
        for b in 0..3u64 {
            c.upsert(
                (b * 100..b * 100 + 100)
                    .map(|id| Record::new(id, vec![id as f32, 1.0, 2.0, 3.0]))
                    .collect::<Vec<_>>(),
            )
            .unwrap();
            c.flush().unwrap();
        }
        c.upsert(Record::new(999, vec![1.0; 4])).unwrap();
        c.compact().unwrap();
        let lines = take();
        assert!(has(&lines, log::Level::Info, "opened"), "{lines:?}");
        assert!(
            has(
                &lines,
                log::Level::Debug,
                "logged: sealed a memtable of 100 rows"
            ),
            "{lines:?}"
        );
        assert!(
            has(
                &lines,
                log::Level::Info,
                "logged: compacted 3 segments (300 rows"
            ),
            "{lines:?}"
        );
    }
    let _db = Database::open_with(dir.path(), opts).unwrap();
    let lines = take();
    assert!(
        has(
            &lines,
            log::Level::Info,
            "1 collections, 1 frames (1 memtable rows) replayed"
        ),
        "{lines:?}"
    );
}
