//! Evaluating a filter against one source's indexes: the result is the bitmap of rows that
//! match, dead rows included (the caller removes them).

use std::ops::Deref;

use roaring::RoaringBitmap;

use super::source::Source;
use crate::error::Result;
use crate::index::fields::FieldIndex;
use crate::index::text::{Analyzer, TextIndex};
use crate::model::filter::Filter;

/// What a filter reads of a source: its indexes.
pub(crate) trait Indexes {
    type Fields<'a>: Deref<Target = FieldIndex>
    where
        Self: 'a;
    type Text<'a>: Deref<Target = TextIndex>
    where
        Self: 'a;
    /// Rows `0..rows` make up the source.
    fn rows(&self) -> usize;
    fn fields(&self) -> Result<Self::Fields<'_>>;
    fn text(&self) -> Result<Self::Text<'_>>;
}

impl<T: Source> Indexes for T {
    type Fields<'a>
        = T::Fields<'a>
    where
        T: 'a;
    type Text<'a>
        = T::Text<'a>
    where
        T: 'a;
    fn rows(&self) -> usize {
        Source::rows(self)
    }
    fn fields(&self) -> Result<Self::Fields<'_>> {
        Source::fields(self)
    }
    fn text(&self) -> Result<Self::Text<'_>> {
        Source::text(self)
    }
}

fn universe(rows: usize) -> RoaringBitmap {
    let mut b = RoaringBitmap::new();
    b.insert_range(0..rows as u32);
    b
}

/// Rows containing every term `term` analyzes to (none if it analyzes to nothing). A
/// segment's text index is decoded here on first use.
fn has_term<S: Indexes>(src: &S, analyzer: &Analyzer, term: &str) -> Result<RoaringBitmap> {
    let terms = analyzer.terms(term);
    let mut it = terms.iter();
    let Some(first) = it.next() else {
        return Ok(RoaringBitmap::new());
    };
    let index = src.text()?;
    let mut acc = index.term_rows(first);
    for t in it {
        acc &= index.term_rows(t);
    }
    Ok(acc)
}

/// The rows of `src` that `f` matches.
pub(crate) fn evaluate<S: Indexes>(
    f: &Filter,
    src: &S,
    analyzer: &Analyzer,
) -> Result<RoaringBitmap> {
    Ok(match f {
        Filter::And(v) => {
            let mut it = v.iter();
            let Some(first) = it.next() else {
                return Ok(universe(src.rows()));
            };
            let mut acc = evaluate(first, src, analyzer)?;
            for g in it {
                if acc.is_empty() {
                    break;
                }
                acc &= evaluate(g, src, analyzer)?;
            }
            acc
        }
        Filter::Or(v) => {
            let mut acc = RoaringBitmap::new();
            for g in v {
                acc |= evaluate(g, src, analyzer)?;
            }
            acc
        }
        Filter::Not(g) => universe(src.rows()) - evaluate(g, src, analyzer)?,
        Filter::Eq { field, value } => src.fields()?.eq(field, value),
        Filter::In { field, values } => {
            let fields = src.fields()?;
            let mut acc = RoaringBitmap::new();
            for v in values {
                acc |= fields.eq(field, v);
            }
            acc
        }
        Filter::Range { field, bounds } => src.fields()?.range(field, bounds),
        Filter::Exists { field } => src.fields()?.exists(field),
        Filter::HasTerm { term } => has_term(src, analyzer, term)?,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::prelude::*;

    use super::*;
    use crate::index::text::TextConfig;
    use crate::model::filter::Bounds;
    use crate::model::record::{Payload, Value};

    fn scalar_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            "[abc]{0,2}".prop_map(Value::Str),
            (-3i64..4).prop_map(Value::Int),
            Just(Value::UInt(u64::MAX)),
            prop_oneof![Just(-1.5f64), Just(0.0), Just(2.0), Just(2.5)].prop_map(Value::Float),
            any::<bool>().prop_map(Value::Bool),
        ]
    }

    /// Scalars, lists of anything and objects keyed like the fields, a few levels deep.
    fn value() -> impl Strategy<Value = Value> {
        scalar_value().prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::List),
                prop::collection::btree_map(
                    prop_oneof![Just("x".to_owned()), Just("y".to_owned())],
                    inner,
                    0..3
                )
                .prop_map(Value::Object),
            ]
        })
    }

    fn payload() -> impl Strategy<Value = Payload> {
        prop::collection::btree_map(
            prop_oneof![Just("x"), Just("y"), Just("x.y")],
            value(),
            0..3,
        )
        .prop_map(|m| {
            m.into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<Payload>()
        })
    }

    fn leaf() -> impl Strategy<Value = Filter> {
        let field = prop_oneof![Just("x"), Just("y"), Just("z"), Just("x.y"), Just("y.x.y")];
        let scalar = scalar_value;
        let num = prop_oneof![Just(-2.0f64), Just(0.0), Just(1.0), Just(2.0), Just(2.5)];
        prop_oneof![
            (field.clone(), scalar()).prop_map(|(f, v)| Filter::eq(f, v)),
            (field.clone(), prop::collection::vec(scalar(), 0..3))
                .prop_map(|(f, v)| Filter::any_of(f, v)),
            (
                field.clone(),
                proptest::option::of(num.clone()),
                proptest::option::of(num.clone()),
                any::<bool>(),
                any::<bool>()
            )
                .prop_map(|(f, lo, hi, lo_inc, hi_inc)| {
                    let mut b = Bounds::default();
                    match lo {
                        Some(x) if lo_inc => b.gte = Some(x),
                        Some(x) => b.gt = Some(x),
                        None => {}
                    }
                    match hi {
                        Some(x) if hi_inc => b.lte = Some(x),
                        Some(x) => b.lt = Some(x),
                        None => {}
                    }
                    Filter::Range {
                        field: f.to_owned(),
                        bounds: b,
                    }
                }),
            field.prop_map(Filter::exists),
        ]
    }

    fn filter() -> impl Strategy<Value = Filter> {
        leaf().prop_recursive(3, 16, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Filter::And),
                prop::collection::vec(inner.clone(), 0..3).prop_map(Filter::Or),
                inner.prop_map(Filter::not),
            ]
        })
    }

    /// Field indexes without text, as a filter sees them.
    struct Fields(FieldIndex, TextIndex);

    impl Indexes for Fields {
        type Fields<'a> = &'a FieldIndex;
        type Text<'a> = &'a TextIndex;
        fn rows(&self) -> usize {
            self.0.rows() as usize
        }
        fn fields(&self) -> Result<&FieldIndex> {
            Ok(&self.0)
        }
        fn text(&self) -> Result<&TextIndex> {
            Ok(&self.1)
        }
    }

    fn eval(f: &Filter, fields: &FieldIndex) -> RoaringBitmap {
        let analyzer = Analyzer::new(&TextConfig::default());
        let src = Fields(fields.clone(), TextIndex::new());
        evaluate(f, &src, &analyzer).unwrap()
    }

    proptest! {
        /// The indexes (appended, and sorted + encoded + decoded as in a segment) select
        /// exactly the rows the reference matcher accepts.
        #[test]
        fn index_agrees_with_matcher(
            rows in prop::collection::vec(payload(), 0..40),
            filters in prop::collection::vec(filter(), 1..6),
        ) {
            let mut mem = FieldIndex::new();
            for (i, p) in rows.iter().enumerate() {
                mem.push(i as u32, p);
            }
            mem.set_rows(rows.len() as u32);
            let path = Path::new("fields");
            let seg = FieldIndex::decode(&mem.clone().encode(7), path, 7, rows.len()).unwrap();
            for f in &filters {
                let want: RoaringBitmap = rows
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| f.matches(p, &|_| false))
                    .map(|(i, _)| i as u32)
                    .collect();
                prop_assert_eq!(&eval(f, &mem), &want, "memtable {:?}", f);
                prop_assert_eq!(&eval(f, &seg), &want, "segment {:?}", f);
            }
        }
    }
}
