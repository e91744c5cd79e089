//! Reading records without a query: counting, and scanning every matching record in id order.
//!
//! A scan reads one version — a snapshot: writes committed after it started are not seen, and
//! records it has not reached yet stay readable even if they are deleted or compacted away
//! meanwhile (the version keeps their segments mapped). It merges the sources by id: each
//! segment's id lookup table is already sorted; a memtable's live rows are sorted when the scan
//! starts. Memory is bounded by the sources, not by the number of records returned: per
//! segment, the bitmap of the filter's rows (if any); per memtable, its matching `(id, row)`
//! pairs; a heap with one entry per source.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use roaring::RoaringBitmap;

use super::Collection;
use super::state::Version;
use crate::error::Result;
use crate::index::hnsw::HnswParams;
use crate::model::filter::Filter;
use crate::model::id::{Id, IdType};
use crate::model::record::{Payload, Record};
use crate::query::engine;
use crate::query::source::{Source, View};

/// What a [`Collection::scan`] returns: which records, from where, and which parts of them.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Only records that match.
    pub filter: Option<Filter>,
    /// Only records after this id in scan order: a [`Scan::cursor`] resumes a scan.
    pub after: Option<Id>,
    /// Read each record's vector (otherwise `Record::vector` is empty).
    pub vectors: bool,
    /// Read each record's text (otherwise `Record::text` is `None`).
    pub text: bool,
    /// Read each record's payload (otherwise `Record::payload` is empty).
    pub payload: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            filter: None,
            after: None,
            vectors: true,
            text: true,
            payload: true,
        }
    }
}

impl ScanOptions {
    /// Every record, whole.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only records that match `filter`.
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Only records after `id` in scan order (resume after a [`Scan::cursor`]). The id need
    /// not exist (any more).
    pub fn after(mut self, id: impl Into<Id>) -> Self {
        self.after = Some(id.into());
        self
    }

    /// Whether to read the vectors (default yes).
    pub fn vectors(mut self, yes: bool) -> Self {
        self.vectors = yes;
        self
    }

    /// Whether to read the texts (default yes).
    pub fn text(mut self, yes: bool) -> Self {
        self.text = yes;
        self
    }

    /// Whether to read the payloads (default yes).
    pub fn payload(mut self, yes: bool) -> Self {
        self.payload = yes;
        self
    }
}

/// Where a scan is in one source.
enum Cursor {
    /// Segment slot `slot` of the version: the next entry of its id lookup table, and the rows
    /// the filter allows (`None`: every live row).
    Segment {
        slot: usize,
        next: usize,
        allowed: Option<RoaringBitmap>,
    },
    /// Memtable `index` of the version: its matching live rows by id, and the next one.
    Memtable {
        index: usize,
        rows: Vec<(u64, u32)>,
        next: usize,
    },
}

/// The records of a collection in scan order, over one version (see [`Collection::scan`]).
/// An iterator of `Result<Record>`: after an error (a checksum failed on a segment read) it
/// ends.
pub struct Scan {
    version: Arc<Version>,
    cursors: Vec<Cursor>,
    /// The next key of each source that has one: (key, cursor, row).
    heads: BinaryHeap<Reverse<(u64, usize, u32)>>,
    options: ScanOptions,
    id_type: IdType,
    last: Option<Id>,
    failed: bool,
}

impl Scan {
    /// The id of the last record returned (or the `after` the scan started from): pass it to
    /// [`ScanOptions::after`] to go on from there in a new scan, over a newer version.
    pub fn cursor(&self) -> Option<&Id> {
        self.last.as_ref()
    }

    /// Up to `n` records; fewer only at the end.
    pub fn next_batch(&mut self, n: usize) -> Result<Vec<Record>> {
        let mut out = Vec::with_capacity(n.min(4096));
        while out.len() < n {
            match self.next() {
                Some(r) => out.push(r?),
                None => break,
            }
        }
        Ok(out)
    }

    /// The next `(id, row)` of cursor `c`, advancing it.
    fn advance(&mut self, c: usize) -> Result<Option<(u64, u32)>> {
        match &mut self.cursors[c] {
            Cursor::Segment {
                slot,
                next,
                allowed,
            } => {
                let s = &self.version.segments[*slot];
                while *next < s.seg.sorted_len() {
                    let (id, row) = s.seg.sorted_entry(*next)?;
                    *next += 1;
                    let wanted = match allowed {
                        Some(a) => a.contains(row),
                        None => !s.deleted.contains(row),
                    };
                    if wanted {
                        return Ok(Some((id, row)));
                    }
                }
                Ok(None)
            }
            Cursor::Memtable { rows, next, .. } => {
                let r = rows.get(*next).copied();
                *next += 1;
                Ok(r)
            }
        }
    }

    fn push_next(&mut self, c: usize) -> Result<()> {
        if let Some((id, row)) = self.advance(c)? {
            self.heads.push(Reverse((id, c, row)));
        }
        Ok(())
    }

    fn read(&self, c: usize, row: u32) -> Result<Record> {
        let (o, t) = (&self.options, self.id_type);
        match &self.cursors[c] {
            Cursor::Segment { slot, .. } => read_row(&self.version.segments[*slot], t, row, o),
            Cursor::Memtable { index, .. } => read_row(&self.version.memtables[*index], t, row, o),
        }
    }
}

/// The record at `row` of `src`, with the parts `o` asks for.
fn read_row<S: Source>(src: &S, t: IdType, row: u32, o: &ScanOptions) -> Result<Record> {
    let id = src.record_id(t, row)?;
    let vector = if o.vectors {
        src.vectors(row as usize, row as usize + 1)?.to_vec()
    } else {
        Vec::new()
    };
    let (text, payload) = if o.text || o.payload {
        src.doc(row)?
    } else {
        (None, Payload::new())
    };
    Ok(Record {
        id,
        vector,
        text: if o.text { text } else { None },
        payload: if o.payload { payload } else { Payload::new() },
    })
}

impl Iterator for Scan {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        if self.failed {
            return None;
        }
        let Reverse((_, c, row)) = self.heads.pop()?;
        match self.push_next(c).and_then(|()| self.read(c, row)) {
            Ok(r) => {
                self.last = Some(r.id.clone());
                Some(Ok(r))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

impl Collection {
    /// The records that match `options.filter` (every record without one), in scan order,
    /// over the version current when this is called: a snapshot, whatever is written
    /// meanwhile. [`Scan::cursor`] and [`ScanOptions::after`] page through a collection across
    /// calls. Errors: an invalid filter; an `after` id of the other kind than the
    /// collection's.
    ///
    /// Scan order is ascending id order for integer ids, and ascending order of the ids'
    /// 64-bit keys for string ids (a fixed hash, see [`Id`]: the same in every process and
    /// version, but not alphabetical).
    ///
    /// A scan keeps its version alive: the segments it reads stay mapped (and on disk until
    /// it is dropped, if a compaction replaces them), so drop long-idle scans.
    pub fn scan(&self, options: ScanOptions) -> Result<Scan> {
        self.check_live()?;
        if let Some(f) = &options.filter {
            f.validate()?;
        }
        let version = self.inner.version();
        let allowed = match &options.filter {
            Some(f) => Some(engine::filter_rows(&self.view(&version), f)?),
            None => None,
        };
        let after = match &options.after {
            Some(id) => Some(self.key_of(id)?),
            None => None,
        };
        let mut cursors = Vec::with_capacity(version.segments.len() + version.memtables.len());
        for (slot, s) in version.segments.iter().enumerate() {
            cursors.push(Cursor::Segment {
                slot,
                next: match after {
                    Some(a) => s.seg.sorted_after(a)?,
                    None => 0,
                },
                allowed: allowed.as_ref().map(|a| a[slot].rows.clone()),
            });
        }
        for (index, m) in version.memtables.iter().enumerate() {
            let mut rows: Vec<(u64, u32)> = match &allowed {
                Some(a) => a[version.segments.len() + index]
                    .rows
                    .iter()
                    .map(|r| Ok((m.id_at(r)?, r)))
                    .collect::<Result<_>>()?,
                None => (0..m.rows)
                    .filter(|&r| m.is_live(r))
                    .map(|r| Ok((m.id_at(r)?, r)))
                    .collect::<Result<_>>()?,
            };
            if let Some(a) = after {
                rows.retain(|&(id, _)| id > a);
            }
            rows.sort_unstable();
            cursors.push(Cursor::Memtable {
                index,
                rows,
                next: 0,
            });
        }
        let mut scan = Scan {
            version,
            heads: BinaryHeap::with_capacity(cursors.len()),
            cursors,
            last: options.after.clone(),
            options,
            id_type: self.inner.config.id_type,
            failed: false,
        };
        for c in 0..scan.cursors.len() {
            scan.push_next(c)?;
        }
        Ok(scan)
    }

    /// How many records match `filter` (every live record without one), in the current
    /// version. Errors: an invalid filter.
    pub fn count(&self, filter: Option<&Filter>) -> Result<usize> {
        self.check_live()?;
        let version = self.inner.version();
        let Some(f) = filter else {
            return Ok(version.len());
        };
        f.validate()?;
        let allowed = engine::filter_rows(&self.view(&version), f)?;
        Ok(allowed.iter().map(|a| a.rows.len() as usize).sum())
    }

    /// The query engine's view of `version`.
    pub(crate) fn view<'a>(
        &self,
        version: &'a Version,
    ) -> View<'a, super::state::SegmentSlot, crate::memtable::MemtableView> {
        let cfg = &self.inner.config;
        View {
            segments: &version.segments,
            memtables: &version.memtables,
            metric: cfg.metric,
            m0: HnswParams::of(cfg).m0(),
            analyzer: version.active().analyzer(),
            id_type: cfg.id_type,
        }
    }
}
