//! Writes that read first: partial updates of records, and deletes by filter. Each is one
//! batch, atomic like an upsert or a delete: the writer lock is held from the read to the
//! log append, after every batch logged before has committed, so no other write comes
//! between what was read and what is written. In the log they are ordinary upserts and
//! deletes of whole records and explicit ids: a replay repeats exactly what was decided.

use std::collections::HashMap;

use super::Collection;
use crate::error::Result;
use crate::model::filter::Filter;
use crate::model::id::Id;
use crate::model::record::{Payload, Record, Value};
use crate::query::engine;

/// How an [`Update`] changes a record's payload.
#[derive(Debug, Clone, PartialEq)]
pub enum PayloadChange {
    /// Sets these keys in the stored payload; the other keys stay. (A key set to a value
    /// replaces the old value whole: nested objects are not merged.)
    Merge(Payload),
    /// Replaces the stored payload.
    Replace(Payload),
}

/// A change to one record. What is not set stays as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// The record to change.
    pub id: Id,
    /// A new vector (checked and prepared like an upserted one).
    pub vector: Option<Vec<f32>>,
    /// A new text: `Some(None)` removes the text.
    pub text: Option<Option<String>>,
    /// A change to the payload.
    pub payload: Option<PayloadChange>,
}

impl Update {
    /// A change to record `id` that changes nothing yet.
    pub fn new(id: impl Into<Id>) -> Self {
        Update {
            id: id.into(),
            vector: None,
            text: None,
            payload: None,
        }
    }

    /// Replaces the vector.
    pub fn vector(mut self, v: impl Into<Vec<f32>>) -> Self {
        self.vector = Some(v.into());
        self
    }

    /// Replaces the text.
    pub fn text(mut self, t: impl Into<String>) -> Self {
        self.text = Some(Some(t.into()));
        self
    }

    /// Removes the text.
    pub fn clear_text(mut self) -> Self {
        self.text = Some(None);
        self
    }

    /// Sets these payload keys, keeping the others.
    pub fn merge_payload(mut self, p: Payload) -> Self {
        self.payload = Some(PayloadChange::Merge(p));
        self
    }

    /// Replaces the payload.
    pub fn replace_payload(mut self, p: Payload) -> Self {
        self.payload = Some(PayloadChange::Replace(p));
        self
    }

    /// Sets one payload key (merged with earlier `set_field`s and the stored payload).
    pub fn set_field(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        let (name, value) = (name.into(), value.into());
        match &mut self.payload {
            Some(PayloadChange::Merge(p)) | Some(PayloadChange::Replace(p)) => {
                p.insert(name, value);
            }
            None => {
                let mut p = Payload::new();
                p.insert(name, value);
                self.payload = Some(PayloadChange::Merge(p));
            }
        }
        self
    }

    /// `record` with this change applied.
    fn apply(&self, record: &mut Record) {
        if let Some(v) = &self.vector {
            record.vector.clone_from(v);
        }
        if let Some(t) = &self.text {
            record.text.clone_from(t);
        }
        match &self.payload {
            Some(PayloadChange::Merge(p)) => {
                for (k, v) in p {
                    record.payload.insert(k.clone(), v.clone());
                }
            }
            Some(PayloadChange::Replace(p)) => record.payload.clone_from(p),
            None => {}
        }
    }
}

impl From<Update> for Vec<Update> {
    fn from(u: Update) -> Self {
        vec![u]
    }
}

impl Collection {
    /// Changes records in place: for each [`Update`], the parts it sets (vector, text,
    /// payload keys) replace the stored ones and the rest stays. Atomic like
    /// [`upsert`](Self::upsert), and durable on return under `Durability::Sync`. Updates of
    /// ids that do not exist are skipped; returns how many updates were applied. Several
    /// updates of one id in a batch apply in order.
    ///
    /// Errors: a new vector that [`upsert`](Self::upsert) would refuse (nothing is written
    /// then); a read-only handle.
    pub fn update(&self, updates: impl Into<Vec<Update>>) -> Result<usize> {
        let updates: Vec<Update> = updates.into();
        self.inner.core.check_writable()?;
        self.check_live()?;
        if updates.is_empty() {
            return Ok(0);
        }
        // New vectors are checked and prepared before anything is read or locked.
        let mut updates = updates;
        for u in &mut updates {
            self.key_of(&u.id)?;
            if let Some(v) = &mut u.vector {
                self.prepare_vector(&u.id, v)?;
            }
        }
        let w = self.inner.writer.lock();
        self.check_live()?;
        self.wait_pending()?;
        // Each record once, in the order of its first update, with its updates applied.
        let mut changed: Vec<Record> = Vec::new();
        let mut at: HashMap<&Id, Option<usize>> = HashMap::new();
        let mut applied = 0;
        for u in &updates {
            let slot = match at.get(&u.id) {
                Some(&s) => s,
                None => {
                    let s = self.read_current(&u.id)?.map(|r| {
                        changed.push(r);
                        changed.len() - 1
                    });
                    at.insert(&u.id, s);
                    s
                }
            };
            let Some(i) = slot else { continue };
            u.apply(&mut changed[i]);
            applied += 1;
        }
        if changed.is_empty() {
            return Ok(0);
        }
        // Stored vectors are prepared, and new ones were prepared above: none is again.
        let body = self.encode_upsert(&changed, true)?;
        drop(changed);
        self.write_upsert(w, &body)?;
        Ok(applied)
    }

    /// Deletes every record that `filter` matches once every earlier write has committed
    /// (writes that start later are not affected), atomically; returns how many it deleted.
    /// Durable on return under `Durability::Sync`. Errors: an invalid filter; a read-only
    /// handle.
    pub fn delete_where(&self, filter: &Filter) -> Result<usize> {
        self.inner.core.check_writable()?;
        self.check_live()?;
        filter.validate()?;
        let w = self.inner.writer.lock();
        self.check_live()?;
        self.wait_pending()?;
        let version = self.inner.version();
        let view = self.view(&version);
        let allowed = engine::filter_rows(&view, filter)?;
        let mut ids = Vec::new();
        for (i, a) in allowed.iter().enumerate() {
            for r in &a.rows {
                ids.push(view.id_at(i as u32, r)?);
            }
        }
        if ids.is_empty() {
            return Ok(0);
        }
        self.write_delete(w, &ids)
    }
}
