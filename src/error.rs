//! Errors returned by Cairn.
//!
//! Every public operation returns [`Result`]. The variants carry structured fields so callers
//! can react to them, and their messages say what was wrong and where.

use std::path::PathBuf;

/// The result type of every fallible Cairn operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in Cairn.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A vector's length differs from the collection's dimension.
    #[error("dimension mismatch: collection `{collection}` has {expected}, got {got}{}", record_suffix(.id))]
    DimensionMismatch {
        /// The collection name.
        collection: String,
        /// The record whose vector it was (`None` for a query).
        id: Option<crate::Id>,
        /// The collection's dimension.
        expected: usize,
        /// The length of the vector that was given.
        got: usize,
    },

    /// A vector holds NaN or an infinity.
    #[error("vector for id {id} holds a non-finite value at index {index}")]
    NonFiniteVector {
        /// The record id.
        id: crate::Id,
        /// The position of the first non-finite component.
        index: usize,
    },

    /// A query vector holds NaN or an infinity.
    #[error("query vector holds a non-finite value at index {index}")]
    NonFiniteQuery {
        /// The position of the first non-finite component.
        index: usize,
    },

    /// An all-zero vector cannot be normalized for the cosine metric.
    #[error(
        "vector for id {id} is the zero vector (norm 0, zero length), which cosine cannot score"
    )]
    ZeroVector {
        /// The record id.
        id: crate::Id,
    },

    /// An all-zero query vector cannot be normalized for the cosine metric.
    #[error("query vector is the zero vector (norm 0, zero length), which cosine cannot score")]
    ZeroQuery,

    /// No collection of that name exists.
    #[error("collection `{name}` does not exist")]
    CollectionNotFound {
        /// The name that was asked for.
        name: String,
    },

    /// A string id whose 64-bit key (see [`Id`](crate::Id)) belongs to another string id,
    /// stored or earlier in the batch: the batch is refused, nothing is replaced. Give one of
    /// the two records another id.
    #[error(
        "string id {id:?} has the same 64-bit key as the stored id {other:?} (a hash collision): the batch is refused; give one of them another id"
    )]
    IdCollision {
        /// The id that was refused.
        id: String,
        /// The id that holds the key.
        other: String,
    },

    /// A collection of that name exists already.
    #[error("collection `{name}` already exists")]
    CollectionExists {
        /// The name that was asked for.
        name: String,
    },

    /// [`Database::get_or_create_collection`](crate::Database::get_or_create_collection)
    /// found the collection, with a setting other than the one asked for.
    #[error("collection `{name}` exists with {setting} {existing}, asked for {requested}")]
    CollectionConfigMismatch {
        /// The collection name.
        name: String,
        /// The setting that differs: `dim`, `metric` or `id_type`.
        setting: String,
        /// The existing collection's value of it.
        existing: String,
        /// The value that was asked for.
        requested: String,
    },

    /// A collection name outside `[A-Za-z0-9_-]{1,64}`.
    #[error(
        "invalid collection name {name:?}: use 1 to 64 characters from A-Z, a-z, 0-9, `_` and `-`"
    )]
    InvalidName {
        /// The rejected name.
        name: String,
    },

    /// A configuration value or request parameter is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A filter is malformed (a list in `eq`, a range without bounds, a NaN bound…).
    #[error("invalid filter: {0}")]
    InvalidFilter(String),

    /// The filter text does not parse.
    #[error("filter syntax error at column {column}: {message}\n  {input}\n  {caret:>width$}", caret = "^", width = column)]
    FilterSyntax {
        /// 1-based column (in characters) where the error was found.
        column: usize,
        /// What was expected or found.
        message: String,
        /// The filter text.
        input: String,
    },

    /// A background operation stopped because the database is closing.
    #[error("cancelled: the database is closing")]
    Cancelled,

    /// A batch is too large to be written as one atomic log record.
    #[error("batch of {bytes} bytes exceeds the limit of {limit} bytes for one atomic write")]
    BatchTooLarge {
        /// Encoded size of the batch.
        bytes: usize,
        /// The largest size accepted.
        limit: usize,
    },

    /// A file failed a check: wrong magic, version, size, checksum, or an offset out of range.
    #[error("corrupted file {}: {what}", path.display())]
    Corruption {
        /// The file that failed.
        path: PathBuf,
        /// What check failed.
        what: String,
    },

    /// Another process (or another handle in this process) holds the database open.
    #[error(
        "database {} is already open {} (LOCK is held); open it read-only to read while it \
         writes (Database::open_read_only, cairndb.open(path, read_only=True)), or wait for it \
         (Options::lock_timeout)",
        path.display(),
        holder(*.pid)
    )]
    Locked {
        /// The database directory.
        path: PathBuf,
        /// The process holding the lock, as recorded in the LOCK file (`None` if unreadable).
        pid: Option<u32>,
    },

    /// A write was asked of a database opened with
    /// [`Database::open_read_only`](crate::Database::open_read_only).
    #[error(
        "database {} is open read-only: writes go through the process that opened it for writing",
        path.display()
    )]
    ReadOnly {
        /// The database directory.
        path: PathBuf,
    },

    /// An earlier write or fsync failed: the database refuses writes until it is reopened.
    #[error("database refuses writes after an earlier I/O failure ({cause}); reopen it to recover")]
    Poisoned {
        /// The failure that poisoned the database.
        cause: String,
    },

    /// The collection was dropped while this handle was held.
    #[error("collection `{name}` was dropped")]
    CollectionDropped {
        /// The dropped collection's name.
        name: String,
    },

    /// An fsync failed: what the file holds on disk is unknown. The database refuses writes
    /// until it is reopened.
    #[error("fsync failed on {}: {source}", path.display())]
    SyncFailed {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The database was opened by another process, of which this one is a fork (e.g. a
    /// Python `multiprocessing` worker): its handles share the parent's log position and
    /// buffers, so they refuse every call. Open the database in the child after the fork
    /// instead (with the parent's handles closed, or read-only).
    #[error(
        "this database was opened by process {opened_by}; process {current} is a fork of it and cannot use its handles: open the database after forking instead"
    )]
    ForkedProcess {
        /// The process that opened the database.
        opened_by: u32,
        /// This process.
        current: u32,
    },

    /// An operating-system I/O error, with the file it concerned.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A filter nests `and`, `or` and `not` deeper than [`Filter::MAX_DEPTH`], in whatever
    /// form it came (Rust, JSON, the text syntax, a Python dict).
    ///
    /// [`Filter::MAX_DEPTH`]: crate::Filter::MAX_DEPTH
    #[error("filter nested too deeply: and/or/not reach {depth} levels, the limit is {max}")]
    FilterTooDeep {
        /// The depth found (where reading stopped, for a filter being read).
        depth: usize,
        /// [`Filter::MAX_DEPTH`](crate::Filter::MAX_DEPTH).
        max: usize,
    },

    /// A vector's Euclidean norm exceeds [`Metric::MAX_NORM`] under the `Dot` or `L2` metric:
    /// its scores against other vectors could overflow `f32` (to an infinity or NaN).
    ///
    /// [`Metric::MAX_NORM`]: crate::Metric::MAX_NORM
    #[error(
        "{} has norm {norm:e}, above {max:e}, the largest the dot and l2 metrics accept (its scores could overflow 32-bit floats)",
        vector_name(.id)
    )]
    VectorTooLarge {
        /// The record whose vector it was (`None` for a query).
        id: Option<crate::Id>,
        /// The vector's norm (computed in `f64`).
        norm: f64,
        /// [`Metric::MAX_NORM`](crate::Metric::MAX_NORM).
        max: f64,
    },
}

fn vector_name(id: &Option<crate::Id>) -> String {
    match id {
        Some(i) => format!("vector for id {i}"),
        None => "query vector".to_owned(),
    }
}

fn holder(pid: Option<u32>) -> String {
    match pid {
        Some(p) if p == std::process::id() => {
            format!("by this process (pid {p}): another handle has it open")
        }
        Some(p) => format!("by process {p}"),
        None => "in another process or handle".into(),
    }
}

fn record_suffix(id: &Option<crate::Id>) -> String {
    id.as_ref()
        .map(|i| format!(" for record {i}"))
        .unwrap_or_default()
}

impl Error {
    pub(crate) fn corruption(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Error::Corruption {
            path: path.into(),
            what: what.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Attaches a path to `std::io::Result`s.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T>;
    /// For the result of an fsync: a failure is [`Error::SyncFailed`].
    fn synced_at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
    fn synced_at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| Error::SyncFailed {
            path: path.to_owned(),
            source,
        })
    }
}
