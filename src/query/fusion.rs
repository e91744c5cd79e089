//! Fusion of the vector leg and the text leg of a hybrid request.
//!
//! Each leg hands over its candidates best first. A record found by one leg only gets
//! nothing from the other (RRF: no reciprocal-rank term; score fusions: a normalized score
//! of 0). Ties in the fused score go to the lower id.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::topk::Candidate;
use crate::error::{Error, Result};
use crate::model::record::LegScore;

/// How a hybrid request combines the ranked lists of its two legs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Fusion {
    /// Reciprocal Rank Fusion: `Σ 1 / (k + rank)` over the legs that found the record (rank
    /// from 1). Scale-free; `k` = 60 as in Cormack et al. (2009). The default until issue 18:
    /// on the evaluation sets of docs/benchmarks.md it fell below the better leg on one set
    /// and trailed [`Fusion::default`] on every one.
    Rrf {
        /// The rank offset; larger flattens the difference between top ranks.
        k: f32,
    },
    /// `alpha · v + (1 − alpha) · t`, where each leg's scores are min-max normalized to
    /// `[0, 1]` over its candidates (a leg whose candidates all score the same gives 1). The
    /// default fusion, with `alpha` = [`Fusion::DEFAULT_ALPHA`].
    Weighted {
        /// Weight of the vector leg, in `[0, 1]`.
        alpha: f32,
    },
    /// Distribution-based score fusion: each leg's scores are mapped from
    /// `[mean − 3σ, mean + 3σ]` (over its candidates) to `[0, 1]`, clamped, and summed.
    Dbsf,
}

/// The default: a convex combination of min-max normalized scores with a fixed weight,
/// `Weighted { alpha: DEFAULT_ALPHA }`. Chosen by measurement over four labelled sets of
/// different kinds (manual pages, docstrings, Debian package descriptions, this repository's
/// docs; `scripts/eval/evalsets.py`): the one fixed rule among those tried that beat the
/// better single leg on MRR@10 on every set. The table is in docs/tuning.md.
impl Default for Fusion {
    fn default() -> Self {
        Fusion::Weighted {
            alpha: Fusion::DEFAULT_ALPHA,
        }
    }
}

impl Fusion {
    /// The weight of the vector leg in the default fusion.
    pub const DEFAULT_ALPHA: f32 = 0.6;

    pub(crate) fn validate(&self) -> Result<()> {
        match *self {
            Fusion::Rrf { k } if !(k.is_finite() && k >= 0.0) => Err(Error::InvalidArgument(
                format!("RRF k must be a finite number ≥ 0, not {k}"),
            )),
            Fusion::Weighted { alpha } if !(0.0..=1.0).contains(&alpha) => Err(
                Error::InvalidArgument(format!("alpha must lie in [0, 1], not {alpha}")),
            ),
            _ => Ok(()),
        }
    }
}

/// One fused candidate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fused {
    pub cand: Candidate,
    pub score: f32,
    pub vector: Option<LegScore>,
    pub text: Option<LegScore>,
}

/// Normalizes a leg's scores for the score-based fusions.
fn normalizer(method: Fusion, scores: &[f32]) -> impl Fn(f32) -> f32 {
    let n = scores.len().max(1) as f64;
    let (min, max) = scores
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &s| {
            (lo.min(f64::from(s)), hi.max(f64::from(s)))
        });
    let mean = scores.iter().map(|&s| f64::from(s)).sum::<f64>() / n;
    let var = scores
        .iter()
        .map(|&s| (f64::from(s) - mean).powi(2))
        .sum::<f64>()
        / n;
    let sd = var.sqrt();
    move |s: f32| {
        let s = f64::from(s);
        let x = match method {
            Fusion::Dbsf => {
                if sd > 0.0 {
                    ((s - (mean - 3.0 * sd)) / (6.0 * sd)).clamp(0.0, 1.0)
                } else {
                    1.0
                }
            }
            _ => {
                if max > min {
                    (s - min) / (max - min)
                } else {
                    1.0
                }
            }
        };
        x as f32
    }
}

/// Fuses the two ranked lists (each best first, ids unique within a list). Returns every
/// record of either list, best first.
pub(crate) fn fuse(method: Fusion, vector: &[Candidate], text: &[Candidate]) -> Vec<Fused> {
    let mut by_id: HashMap<u64, Fused> = HashMap::with_capacity(vector.len() + text.len());
    let vs: Vec<f32> = vector.iter().map(|c| c.score).collect();
    let ts: Vec<f32> = text.iter().map(|c| c.score).collect();
    let (vn, tn) = (normalizer(method, &vs), normalizer(method, &ts));
    let contribution = |rank: usize, norm: f32, leg_is_vector: bool| -> f32 {
        match method {
            Fusion::Rrf { k } => 1.0 / (k + rank as f32),
            Fusion::Weighted { alpha } => {
                if leg_is_vector {
                    alpha * norm
                } else {
                    (1.0 - alpha) * norm
                }
            }
            Fusion::Dbsf => norm,
        }
    };
    for (i, c) in vector.iter().enumerate() {
        let e = by_id.entry(c.id).or_insert(Fused {
            cand: *c,
            score: 0.0,
            vector: None,
            text: None,
        });
        e.vector = Some(LegScore {
            rank: i + 1,
            score: c.score,
        });
        e.score += contribution(i + 1, vn(c.score), true);
    }
    for (i, c) in text.iter().enumerate() {
        let e = by_id.entry(c.id).or_insert(Fused {
            cand: *c,
            score: 0.0,
            vector: None,
            text: None,
        });
        e.text = Some(LegScore {
            rank: i + 1,
            score: c.score,
        });
        e.score += contribution(i + 1, tn(c.score), false);
    }
    let mut out: Vec<Fused> = by_id.into_values().collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.cand.id.cmp(&b.cand.id)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::topk::Loc;

    fn list(items: &[(u64, f32)]) -> Vec<Candidate> {
        items
            .iter()
            .map(|&(id, score)| Candidate {
                score,
                id,
                loc: Loc {
                    source: 0,
                    row: id as u32,
                },
            })
            .collect()
    }

    #[test]
    fn rrf_ranks_records_found_by_both_first() {
        let v = list(&[(1, 0.9), (2, 0.8), (3, 0.7)]);
        let t = list(&[(4, 12.0), (3, 9.0), (5, 1.0)]);
        let f = fuse(Fusion::Rrf { k: 60.0 }, &v, &t);
        assert_eq!(f[0].cand.id, 3);
        let expect = 1.0 / 63.0 + 1.0 / 62.0;
        assert!((f[0].score - expect).abs() < 1e-7);
        assert_eq!(
            f[0].vector,
            Some(LegScore {
                rank: 3,
                score: 0.7
            })
        );
        assert_eq!(
            f[0].text,
            Some(LegScore {
                rank: 2,
                score: 9.0
            })
        );
        // 1 and 4 tie at 1/61: the lower id first.
        assert_eq!((f[1].cand.id, f[2].cand.id), (1, 4));
        assert_eq!(f[1].text, None);
        assert_eq!(f.len(), 5);
    }

    #[test]
    fn weighted_uses_min_max_and_alpha() {
        let v = list(&[(1, 1.0), (2, 0.5), (3, 0.0)]);
        let t = list(&[(3, 10.0), (1, 0.0)]);
        let f = fuse(Fusion::Weighted { alpha: 0.25 }, &v, &t);
        let get = |id| f.iter().find(|x| x.cand.id == id).unwrap().score;
        assert!((get(1) - 0.25).abs() < 1e-6);
        assert!((get(2) - 0.125).abs() < 1e-6);
        assert!((get(3) - 0.75).abs() < 1e-6);
        assert_eq!(f[0].cand.id, 3);
    }

    #[test]
    fn the_default_is_weighted_min_max() {
        assert_eq!(
            Fusion::default(),
            Fusion::Weighted {
                alpha: Fusion::DEFAULT_ALPHA
            }
        );
        // By hand, alpha 0.6: vector 1.0, 0.5, 0.0 → 1, 0.5, 0; text 10, 0 → 1, 0.
        let v = list(&[(1, 1.0), (2, 0.5), (3, 0.0)]);
        let t = list(&[(3, 10.0), (1, 0.0)]);
        let f = fuse(Fusion::default(), &v, &t);
        let get = |id| f.iter().find(|x| x.cand.id == id).unwrap().score;
        assert!((get(1) - 0.6).abs() < 1e-6);
        assert!((get(2) - 0.3).abs() < 1e-6);
        assert!((get(3) - 0.4).abs() < 1e-6);
        assert_eq!(
            f.iter().map(|x| x.cand.id).collect::<Vec<_>>(),
            vec![1, 3, 2]
        );
    }

    #[test]
    fn dbsf_maps_three_sigma_to_unit_range() {
        let v = list(&[(1, 2.0), (2, 0.0)]); // mean 1, sd 1 → [-2, 4]
        let f = fuse(Fusion::Dbsf, &v, &[]);
        assert!((f[0].score - 4.0 / 6.0).abs() < 1e-6);
        assert!((f[1].score - 2.0 / 6.0).abs() < 1e-6);
        // One candidate: no spread, normalized to 1.
        let f = fuse(Fusion::Dbsf, &[], &list(&[(9, 3.0)]));
        assert_eq!(f[0].score, 1.0);
    }

    #[test]
    fn invalid_parameters_are_rejected() {
        assert!(Fusion::Weighted { alpha: 1.5 }.validate().is_err());
        assert!(Fusion::Rrf { k: f32::NAN }.validate().is_err());
        assert!(Fusion::Dbsf.validate().is_ok());
    }
}
