//! Errors, opening databases, and formatting helpers shared by the commands.

use std::fmt::Display;
use std::fs;
use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;

use cairndb::{Collection, Database, Durability, Options};

/// The name of the file every Cairn database directory holds.
pub const MANIFEST: &str = "MANIFEST";

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    /// A one-line message for stderr; the process exits with code 1.
    Failed(String),
    /// Standard output was closed by its reader.
    OutputClosed,
}

pub type CliResult<T> = Result<T, CliError>;

impl CliError {
    /// Maps a failed write to standard output.
    pub fn output(e: std::io::Error) -> CliError {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CliError::OutputClosed
        } else {
            CliError::Failed(format!("writing the output failed: {e}"))
        }
    }
}

impl From<cairndb::Error> for CliError {
    fn from(e: cairndb::Error) -> Self {
        CliError::Failed(e.to_string())
    }
}

/// A failure with this message.
pub fn fail(msg: impl Display) -> CliError {
    CliError::Failed(msg.to_string())
}

/// Opens a database that must exist already (never creates one).
pub fn open_existing(db: &Path, durability: Durability) -> CliResult<Database> {
    open_existing_with(db, Options::default().durability(durability))
}

/// Opens a database that must exist already with these options (never creates one).
pub fn open_existing_with(db: &Path, options: Options) -> CliResult<Database> {
    must_exist(db)?;
    Ok(Database::open_with(db, options.create_if_missing(false))?)
}

/// Opens an existing database read-only: it works while another process writes, and changes
/// nothing in the directory.
pub fn open_read_only(db: &Path) -> CliResult<Database> {
    must_exist(db)?;
    Ok(Database::open_read_only(db)?)
}

fn must_exist(db: &Path) -> CliResult<()> {
    if !db.join(MANIFEST).is_file() {
        return Err(if !db.exists() {
            fail(format_args!(
                "database {} does not exist; create it with `cairn create {} COLLECTION --dim N`",
                db.display(),
                db.display()
            ))
        } else {
            fail(format_args!(
                "{} is not a Cairn database (it has no {MANIFEST} file)",
                db.display()
            ))
        });
    }
    Ok(())
}

/// Opens an existing database and one of its collections.
pub fn open_collection(db: &Path, name: &str) -> CliResult<(Database, Collection)> {
    with_collection(open_existing(db, Durability::Sync)?, db, name)
}

/// Opens an existing database read-only and one of its collections.
pub fn open_collection_read_only(db: &Path, name: &str) -> CliResult<(Database, Collection)> {
    with_collection(open_read_only(db)?, db, name)
}

fn with_collection(database: Database, db: &Path, name: &str) -> CliResult<(Database, Collection)> {
    let coll = database.collection(name).map_err(|e| match e {
        cairndb::Error::CollectionNotFound { .. } => fail(format_args!(
            "{e} in {}; existing collections: {}",
            db.display(),
            list_or_none(&database.collections())
        )),
        other => other.into(),
    })?;
    Ok((database, coll))
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".into()
    } else {
        names.join(", ")
    }
}

/// Makes `dir` ready for a new database: an old demo database (a directory with a MANIFEST)
/// or an empty directory is removed; anything else is refused. Returns whether one was removed.
pub fn replace_demo_dir(dir: &Path) -> CliResult<bool> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(fail(format_args!("cannot inspect {}: {e}", dir.display()))),
    };
    if !meta.is_dir() {
        return Err(fail(format_args!(
            "{} exists and is not a directory; choose another --dir",
            dir.display()
        )));
    }
    let mut entries =
        fs::read_dir(dir).map_err(|e| fail(format_args!("cannot read {}: {e}", dir.display())))?;
    let empty = entries.next().is_none();
    if !empty && !dir.join(MANIFEST).is_file() {
        return Err(fail(format_args!(
            "refusing to delete {}: it is not empty and does not look like a Cairn database \
             (no {MANIFEST} file); choose another --dir",
            dir.display()
        )));
    }
    if !empty {
        // A database some process has open (its LOCK is held) is not removed under it.
        if let Ok(lock) = fs::File::open(dir.join("LOCK"))
            && let Err(fs::TryLockError::WouldBlock) = lock.try_lock()
        {
            return Err(cairndb::Error::Locked {
                path: dir.to_owned(),
                pid: fs::read_to_string(dir.join("LOCK"))
                    .ok()
                    .and_then(|s| s.trim().parse().ok()),
            }
            .into());
        }
    }
    fs::remove_dir_all(dir).map_err(|e| {
        fail(format_args!(
            "cannot remove old demo database {}: {e}",
            dir.display()
        ))
    })?;
    Ok(!empty)
}

/// A duration for people: `850 µs`, `12.3 ms`, `4.56 s`.
pub fn fmt_dur(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1e-3 {
        format!("{:.0} µs", s * 1e6)
    } else if s < 0.1 {
        format!("{:.2} ms", s * 1e3)
    } else if s < 1.0 {
        format!("{:.0} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

/// An integer with thousands separators: `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate per second, rounded to a readable number: `12,345` or `4.2`.
pub fn per_sec(count: u64, d: Duration) -> String {
    let s = d.as_secs_f64().max(1e-9);
    let rate = count as f64 / s;
    if rate >= 100.0 {
        thousands(rate.round() as u64)
    } else {
        format!("{rate:.1}")
    }
}

/// Bytes for people: `512 B`, `12.0 KiB`, `3.4 MiB`.
pub fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `1 collection`, `2 collections`.
pub fn plural(n: usize, word: &str) -> String {
    format!(
        "{} {word}{}",
        thousands(n as u64),
        if n == 1 { "" } else { "s" }
    )
}

/// `text` on one line (control characters become spaces), cut to `max` characters with `…`.
pub fn one_line(text: &str, max: usize) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.chars().count() <= max {
        clean
    } else {
        let mut s: String = clean.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// A plain text table with aligned columns.
pub struct Table {
    headers: Vec<String>,
    /// Per column: right-aligned (numbers) or left-aligned.
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers; a header starting with `>` is right-aligned.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers
                .iter()
                .map(|h| h.trim_start_matches('>').to_owned())
                .collect(),
            right: headers.iter().map(|h| h.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table, one line per row, each line starting with `indent`.
    pub fn render(&self, indent: &str) -> String {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::from(indent);
            for (i, cell) in r.iter().enumerate().take(n) {
                let pad = widths[i].saturating_sub(cell.chars().count());
                let last = i + 1 == n;
                if self.right[i] {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    if !last {
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                }
                if !last {
                    line.push_str("  ");
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A byte count: digits with an optional decimal part and a K, M, G or T suffix (powers of
/// 1024; a trailing `B` or `iB` is allowed).
pub(crate) fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix("ib"))
        .or_else(|| t.strip_suffix(['B', 'b']))
        .unwrap_or(t);
    let (num, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        Some('T') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let bad = || format!("{s:?} is not a byte count (e.g. 800M, 1.2G, 123456)");
    let x: f64 = num.trim().parse().map_err(|_| bad())?;
    let bytes = x * mult as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(fmt_bytes(10), "10 B");
        assert_eq!(fmt_bytes(2048), "2.0 KiB");
        assert_eq!(one_line("a\nb", 10), "a b");
        assert_eq!(one_line("abcdef", 4), "abc…");
        let mut t = Table::new(&["name", ">n"]);
        t.row(vec!["a".into(), "100".into()]);
        assert_eq!(t.render(""), "name    n\na     100\n");
    }

    #[test]
    fn byte_counts() {
        assert_eq!(super::parse_bytes("123456"), Ok(123_456));
        assert_eq!(super::parse_bytes("800M"), Ok(800 << 20));
        assert_eq!(super::parse_bytes("1.5G"), Ok(3 << 29));
        assert_eq!(super::parse_bytes("64KiB"), Ok(64 << 10));
        assert_eq!(super::parse_bytes("2gb"), Ok(2 << 30));
        for bad in ["", "G", "-1", "0", "1X", "nan", "1e30T", "0.5"] {
            assert!(super::parse_bytes(bad).is_err(), "{bad}");
        }
    }
}
