//! The log and the manifest: frames replayed the way opening replays them.

#[allow(unused_imports)]
use super::*;

/// Decodes a frame body the way replay does: the batch, every vector and every document.
/// Returns whether the body is well formed.
fn decode_body(kind: u8, body: &[u8]) -> bool {
    match kind {
        KIND_UPSERT => decode_upsert(body).is_some_and(|view| {
            let mut v = Vec::new();
            view.rows.iter().all(|&(key, vector, doc)| {
                // Replay's id check, for either kind of collection.
                let _ = StoredDoc::check_id(IdType::Int, key, doc);
                let _ = StoredDoc::check_id(IdType::Str, key, doc);
                v.clear();
                crate::vector::extend_f32(&mut v, vector);
                v.len() == view.dim && StoredDoc::decode(doc).is_some()
            })
        }),
        KIND_DELETE => decode_delete(body).is_some(),
        _ => false,
    }
}

/// Recomputes the checksum of every frame whose length field fits in `frames`.
fn fix_frame_checksums(frames: &mut [u8]) {
    let mut pos = 0usize;
    while frames.len() - pos >= 8 {
        let len = u32_at(frames, pos) as usize;
        let end = pos + 8 + len;
        if len < 9 || end > frames.len() {
            return;
        }
        let crc = crc32c::crc32c(&frames[pos + 8..end]);
        put_u32(frames, pos + 4, crc);
        pos = end;
    }
}

/// Frames of the log file body `frames` (first LSN 1), read as replay reads the newest file:
/// up to the first frame that is torn, corrupt or out of sequence (a skip frame moves the
/// sequence forward as replay does). Returns their count, the last LSN, and where they end.
fn replay_frames(frames: &[u8]) -> (u64, u64, usize) {
    let (mut pos, mut lsn, mut count) = (0usize, 1u64, 0u64);
    while pos < frames.len() {
        match decode_frame(&frames[pos..]) {
            Some((f, len)) if f.lsn == lsn => {
                assert!(len <= frames.len() - pos, "frame runs past the buffer");
                assert_eq!(f.body.len() + 17, len, "frame length and body disagree");
                let next = if f.kind == KIND_SKIP {
                    match f.body.try_into().map(u64::from_le_bytes) {
                        Ok(t) if t > lsn => t,
                        _ => break,
                    }
                } else {
                    decode_body(f.kind, f.body);
                    lsn + 1
                };
                pos += len;
                lsn = next;
                count += 1;
            }
            _ => break,
        }
    }
    (count, lsn - 1, pos)
}

/// The write-ahead log: `data` is a flags byte ([`FIX_CHECKSUMS`], [`WAL_FILE`],
/// [`WAL_DATABASE`]) followed by the frames of a log file (what follows its header).
///
/// Frames are decoded as replay decodes them, batch bodies and documents included. With
/// [`WAL_FILE`] they are also replayed from a real log file, which must read the same frames,
/// cut exactly the torn tail, then append after the last good frame and replay again without
/// loss.
pub fn wal(data: &[u8]) -> Result<()> {
    let Some((&flags, frames)) = data.split_first() else {
        return Ok(());
    };
    let mut frames = frames.to_vec();
    if flags & FIX_CHECKSUMS != 0 {
        fix_frame_checksums(&mut frames);
    }
    let (count, last, end) = replay_frames(&frames);
    if flags & WAL_FILE != 0 {
        wal_file(&frames, count, last, end)?;
    }
    if flags & WAL_DATABASE != 0 {
        wal_database(&frames, flags)?;
    }
    Ok(())
}

/// Writes a log file (first LSN 1) holding `frames` into a new `wal` directory of `dir`.
fn write_log(dir: &Path, frames: &[u8]) -> Result<std::path::PathBuf> {
    let wal_dir = dir.join("wal");
    fs::create_dir_all(&wal_dir).at(&wal_dir)?;
    let path = wal_dir.join(format!("{:020}.wal", 1));
    let mut h = Header::new(FileKind::Wal);
    h.aux = 1;
    let mut file = h.encode().to_vec();
    file.extend_from_slice(frames);
    fs::write(&path, &file).at(&path)?;
    Ok(wal_dir)
}

fn wal_file(frames: &[u8], count: u64, last: u64, end: usize) -> Result<()> {
    let dir = tempdir()?;
    let wal_dir = write_log(dir.path(), frames)?;
    let path = wal_dir.join(format!("{:020}.wal", 1));
    let before = fs::read(&path).at(&path)?;
    let mut seen = 0u64;
    let opened = Wal::open(&wal_dir, u64::MAX, LogMark::default(), false, |f| {
        assert!(f.lsn > seen, "replay out of order");
        seen = f.lsn;
        decode_body(f.kind, f.body);
        Ok(())
    });
    let (log, stats) = match opened {
        Ok(o) => o,
        Err(e) => {
            // A bad frame followed by an intact one: reported, and nothing changed.
            assert_eq!(
                fs::read(&path).at(&path)?,
                before,
                "a failed open changed the log"
            );
            return Err(e);
        }
    };
    assert_eq!(
        stats.frames_replayed, count,
        "the log read other frames than the decoder"
    );
    assert_eq!(
        stats.torn_tail_bytes,
        (frames.len() - end) as u64,
        "the log cut another tail than the torn one"
    );
    assert_eq!(log.last_lsn(), last);
    // Append after the last good frame; a reopen replays everything and cuts nothing.
    let body = batch::encode_delete(1, &[7]);
    let lsn = log.append(KIND_DELETE, &body)?;
    assert_eq!(lsn, last + 1);
    log.sync()?;
    drop(log);
    let mut again = 0u64;
    let (_, stats) = Wal::open(&wal_dir, u64::MAX, LogMark::default(), false, |f| {
        again += 1;
        if f.lsn == lsn {
            assert_eq!(f.body, &body[..], "the appended frame changed");
        }
        Ok(())
    })?;
    assert_eq!(
        stats.frames_replayed,
        count + 1,
        "a reopened log lost frames"
    );
    assert_eq!(stats.torn_tail_bytes, 0, "a repaired log was cut again");
    Ok(())
}

pub(super) fn metric_of(bits: u8) -> Metric {
    match bits & 3 {
        0 => Metric::Cosine,
        1 => Metric::Dot,
        _ => Metric::L2,
    }
}

fn wal_database(frames: &[u8], flags: u8) -> Result<()> {
    let dir = tempdir()?;
    let db_dir = dir.path().join("db");
    fs::create_dir_all(db_dir.join("collections")).at(&db_dir)?;
    let dim = 1 + usize::from(flags >> 4 & 3);
    let mut config = CollectionConfig::new(dim, metric_of(flags >> 6));
    config.m = 4;
    config.ef_construction = 16;
    if flags & WAL_STR_IDS != 0 {
        config.id_type = IdType::Str;
    }
    let manifest = ManifestData {
        last_lsn: 0,
        log_file: 0,
        next_collection_id: 2,
        next_segment_id: 1,
        collections: vec![CollectionEntry {
            id: 1,
            name: "c".into(),
            config,
            flushed_lsn: 0,
            segments: Vec::new(),
        }],
    };
    fs::write(db_dir.join(MANIFEST_FILE), manifest.encode()).at(&db_dir)?;
    write_log(&db_dir, frames)?;
    let db = Database::open(&db_dir)?;
    let c = db.collection("c")?;
    let hits = c.search(&SearchRequest::new(vec![0.5; dim]).k(5))?;
    for h in hits {
        // A hit names a record that `get` finds under that id (replay refused any row whose
        // id does not fit its key).
        let got = c.get(&h.id)?;
        assert!(
            got.is_some_and(|r| r.id == h.id),
            "a search hit that get does not find: {:?}",
            h.id
        );
    }
    c.search(&SearchRequest::new(vec![0.5; dim]).k(5).text("red blue"))?;
    c.flush()?;
    db.verify()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The manifest

/// The manifest: `data` is a flags byte, then the `MANIFEST` file; with [`FIX_CHECKSUMS`] it
/// is the JSON body alone and gets a correct header. What decodes must encode to a manifest
/// that decodes to the same. With [`MANIFEST_DATABASE`] a database is also opened with it.
pub fn manifest(data: &[u8]) -> Result<()> {
    let Some((&flags, rest)) = data.split_first() else {
        return Ok(());
    };
    let bytes = if flags & FIX_CHECKSUMS != 0 {
        with_header(FileKind::Manifest, 0, 0, rest)
    } else {
        rest.to_vec()
    };
    let m = ManifestData::decode(&bytes, Path::new(MANIFEST_FILE))?;
    let again = ManifestData::decode(&m.encode(), Path::new(MANIFEST_FILE))
        .expect("a decoded manifest encodes to a valid one");
    assert_eq!(again, m, "manifest changed in a round trip");
    if flags & MANIFEST_DATABASE != 0 {
        let dir = tempdir()?;
        fs::write(dir.path().join(MANIFEST_FILE), &bytes).at(dir.path())?;
        // The manifest names the log file it was published with: give the database that file,
        // empty, so that the open goes on to the collections (without it, the open reports
        // the missing log as corruption, correctly, and stops there).
        if m.log_file > 0 {
            let wal_dir = dir.path().join("wal");
            fs::create_dir_all(&wal_dir).at(&wal_dir)?;
            let first = m.log_file.max(m.last_lsn.saturating_add(1));
            let path = wal_dir.join(format!("{first:020}.wal"));
            let mut h = Header::new(FileKind::Wal);
            h.aux = first;
            fs::write(&path, h.encode()).at(&path)?;
        }
        let db = Database::open(dir.path())?;
        for name in db.collections() {
            let c = db.collection(&name)?;
            c.len();
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Segments
