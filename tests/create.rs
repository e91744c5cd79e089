//! Creating a database and a collection is crash-safe: a crash at any instant leaves nothing,
//! or a database that opens, holds either no collection or the complete one, and accepts
//! writes. Shown three ways: an injected failure at every file operation of the creation (the
//! `cairndb::faults` seam), a power cut at every one of them (the seam's power-loss copy), and
//! real SIGKILLs of a child process at random moments. Also: the error of a second open names
//! the process that holds the lock.
//!
//! The seam is process-wide, so the tests of this binary take turns (`SERIAL`).

mod common;

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use cairndb::faults;
use cairndb::{CollectionConfig, Database, Error, Metric, Options, Record};

use common::Rng;

static SERIAL: Mutex<()> = Mutex::new(());

const DIM: usize = 4;
const CHILD_ENV: &str = "CAIRN_CHILD";
const DB_ENV: &str = "CAIRN_CHILD_DB";

fn options() -> Options {
    Options::default().background_compaction(false)
}

fn record(id: u64) -> Record {
    Record::new(id, vec![id as f32 + 1.0, 1.0, 0.5, 0.25]).with_text(format!("record {id}"))
}

/// What a user does to start: a new database and one collection in it.
fn create(path: &Path) -> cairndb::Result<()> {
    let db = Database::open_with(path, options())?;
    db.create_collection("c", CollectionConfig::new(DIM, Metric::L2))?;
    Ok(())
}

/// The database at `path` opens, holds no collection or the complete, empty `c` (or, when
/// `written`, `c` with record 0 — `None`: either), takes writes that survive a reopen, and
/// passes `verify`.
fn check_opens(path: &Path, written: Option<bool>, ctx: &str) {
    let db = Database::open_with(path, options())
        .unwrap_or_else(|e| panic!("{ctx}: the database does not open: {e}"));
    let names = db.collections();
    let c = match names.as_slice() {
        [] => db
            .create_collection("c", CollectionConfig::new(DIM, Metric::L2))
            .unwrap_or_else(|e| panic!("{ctx}: creating the collection again: {e}")),
        [n] if n == "c" => {
            let c = db.collection("c").unwrap();
            assert_eq!(c.config().dim, DIM, "{ctx}");
            assert_eq!(c.config().metric, Metric::L2, "{ctx}");
            match written {
                Some(true) => assert_eq!(c.len(), 1, "{ctx}: the acknowledged record is lost"),
                Some(false) => assert_eq!(c.len(), 0, "{ctx}"),
                None => assert!(c.len() <= 1, "{ctx}"),
            }
            c
        }
        other => panic!("{ctx}: unexpected collections {other:?}"),
    };
    c.upsert((1..20).map(record).collect::<Vec<_>>())
        .unwrap_or_else(|e| panic!("{ctx}: writing after the reopen: {e}"));
    c.flush()
        .unwrap_or_else(|e| panic!("{ctx}: sealing after the reopen: {e}"));
    let before = c.len();
    drop(c);
    drop(db);
    let db = Database::open_with(path, options())
        .unwrap_or_else(|e| panic!("{ctx}: the second reopen failed: {e}"));
    db.verify()
        .unwrap_or_else(|e| panic!("{ctx}: verify failed: {e}"));
    let c = db.collection("c").unwrap();
    assert_eq!(c.len(), before, "{ctx}");
    assert_eq!(c.get(7).unwrap().unwrap().text, record(7).text, "{ctx}");
}

#[test]
fn a_failure_and_a_power_cut_at_every_file_operation_of_creation() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();

    faults::count();
    let r = create(&tmp.path().join("counted"));
    let ops = faults::disarm();
    r.unwrap();
    eprintln!("creating a database and a collection: {ops} file operations");
    // Directory, LOCK, the manifest (tmp, write, fsync, rename, fsync), the wal and
    // collections directories, the first log file, the collection's directory, the manifest.
    assert!(ops >= 15, "creation made only {ops} file operations");

    let mut kinds = std::collections::BTreeSet::new();
    for k in 0..ops {
        // a. The k-th operation fails: the call returns an error; the directory opens.
        let path = tmp.path().join(format!("fail-{k}"));
        faults::arm(k);
        let r = create(&path);
        faults::disarm();
        let (op, file) = faults::failed().expect("the armed operation was reached");
        kinds.insert(format!("{op:?}"));
        let ctx = format!("failure at operation {k} of {ops} ({op:?} on {file})");
        assert!(r.is_err(), "{ctx}: the creation reported success");
        check_opens(&path, Some(false), &ctx);

        // b. Power is cut just before the k-th operation: what the disk holds then opens.
        let root = tmp.path().join(format!("run-{k}"));
        let cut = tmp.path().join(format!("cut-{k}"));
        std::fs::create_dir(&root).unwrap();
        faults::power_loss_at(k, &root, &cut);
        let r = create(&root.join("db"));
        faults::disarm();
        r.unwrap();
        assert!(faults::power_loss_taken(), "power cut {k} not reached");
        check_opens(
            &cut.join("db"),
            Some(false),
            &format!("power cut at operation {k} of {ops}"),
        );
    }
    for kind in ["Create", "Write", "Sync", "Rename"] {
        assert!(kinds.contains(kind), "no {kind} failure was injected");
    }
}

/// A directory an interrupted creation of an earlier version left (`LOCK`, `MANIFEST.tmp` and
/// empty `collections` and `wal` directories) is created afresh; anything else is refused.
#[test]
fn leftovers_of_an_interrupted_creation_are_cleaned_up() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("db");
    std::fs::create_dir_all(path.join("collections")).unwrap();
    std::fs::create_dir_all(path.join("wal")).unwrap();
    std::fs::write(path.join("LOCK"), "12345\n").unwrap();
    std::fs::write(path.join("MANIFEST.tmp"), "half a manifest").unwrap();
    check_opens(&path, Some(false), "leftovers");
    assert!(!path.join("MANIFEST.tmp").exists());

    // A file in `wal` is not a leftover of a creation: refused, and nothing is touched.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(other.join("wal")).unwrap();
    std::fs::write(other.join("wal").join("notes.txt"), "mine").unwrap();
    let e = Database::open(&other).unwrap_err();
    assert!(e.to_string().contains("not a Cairn database"), "{e}");
    assert!(!other.join("LOCK").exists());
    assert!(!other.join("MANIFEST").exists());
}

// ---------------------------------------------------------------------------------------------
// Real kills: a child process creates a database and a collection and writes one record; it is
// SIGKILLed at a random moment.

fn child_command(test: &str, role: &str, db: &Path) -> Command {
    let mut c = Command::new(env::current_exe().unwrap());
    c.args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, role)
        .env(DB_ENV, db)
        .stdin(Stdio::null());
    c
}

fn child_role() -> Option<String> {
    env::var(CHILD_ENV).ok()
}

fn child_db() -> PathBuf {
    PathBuf::from(env::var(DB_ENV).expect("CAIRN_CHILD_DB"))
}

#[test]
fn sigkill_while_creating_leaves_a_database_that_opens() {
    let test = "sigkill_while_creating_leaves_a_database_that_opens";
    if child_role().is_some() {
        let path = child_db();
        let db = Database::open_with(&path, options()).unwrap();
        let c = db
            .create_collection("c", CollectionConfig::new(DIM, Metric::L2))
            .unwrap();
        println!("CAIRN:CREATED");
        c.upsert(record(0)).unwrap();
        println!("CAIRN:WRITTEN");
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(0xC4EA7E);
    let runs = 120;
    // How far each child got: no directory, no manifest yet, a database without the
    // collection, the collection, the acknowledged write.
    let mut got = [0usize; 5];
    for run in 0..runs {
        let path = tmp.path().join(format!("db-{run}"));
        let mut child = child_command(test, "create", &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng.below(20_000)));
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let written = stdout.contains("CAIRN:WRITTEN");
        let created = stdout.contains("CAIRN:CREATED");
        if !path.exists() {
            got[0] += 1;
            continue;
        }
        let had_manifest = path.join("MANIFEST").exists();
        let ctx = format!("run {run} (child said {stdout:?})");
        // What was acknowledged is there; a write in flight may or may not be.
        let db = Database::open_with(&path, options())
            .unwrap_or_else(|e| panic!("{ctx}: the database does not open: {e}"));
        let has_c = !db.collections().is_empty();
        if created {
            assert!(has_c, "{ctx}: the created collection is missing");
        }
        got[if written {
            4
        } else if has_c {
            3
        } else if had_manifest {
            2
        } else {
            1
        }] += 1;
        drop(db);
        check_opens(&path, written.then_some(true), &ctx);
    }
    eprintln!(
        "{runs} kills: {} before the directory existed, {} before the manifest, {} before the \
         collection, {} before the write, {} after it",
        got[0], got[1], got[2], got[3], got[4]
    );
}

// ---------------------------------------------------------------------------------------------
// The lock error names the process holding the lock.

#[test]
fn the_lock_error_names_the_holder() {
    let test = "the_lock_error_names_the_holder";
    if child_role().is_some() {
        let r = match Database::open(child_db()) {
            Err(Error::Locked { pid, .. }) => format!("locked {pid:?}"),
            Err(e) => format!("error {e}"),
            Ok(_) => "opened".into(),
        };
        println!("CAIRN:RESULT {r}");
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("db");
    let db = Database::open(&path).unwrap();
    let me = std::process::id();

    // Another process is told which process holds it.
    let out = child_command(test, "lock", &path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let r = stdout
        .lines()
        .find_map(|l| l.split_once("CAIRN:RESULT ").map(|x| x.1))
        .unwrap_or_else(|| panic!("no result from the child: {stdout}"));
    assert_eq!(r, format!("locked Some({me})"));

    // A second handle in this process is told it is this process.
    match Database::open(&path) {
        Err(e @ Error::Locked { pid, .. }) => {
            assert_eq!(pid, Some(me));
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("by this process (pid {me})")),
                "{msg}"
            );
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(db);
    // Released: the next opener writes its own pid.
    let db = Database::open(&path).unwrap();
    let text = std::fs::read_to_string(path.join("LOCK")).unwrap();
    assert_eq!(text.trim(), me.to_string());
    drop(db);
}
