use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;

use super::HnswParams;
use super::graph::MemGraph;
use super::search::{Links, search};
use super::visited::with_visited;
use crate::vector::Vectors;
use crate::vector::distance::{Metric, prepare};

use crate::vector::FlatVectors as Flat;

/// Clustered data and queries drawn the same way: `clusters` centres, points scattered
/// around them.
pub(crate) fn data_and_queries(n: usize, nq: usize, dim: usize, metric: Metric) -> (Flat, Flat) {
    let all = clustered(n + nq, dim, 50, 1, metric);
    let split = n * dim;
    (
        // The base set keeps int8 copies (cosine, dot), so builds walk over them as the
        // memtable's do.
        Flat {
            dim,
            data: all.data[..split].to_vec(),
            codes: None,
        }
        .with_codes(metric != Metric::L2),
        Flat {
            dim,
            data: all.data[split..].to_vec(),
            codes: None,
        },
    )
}

/// Clustered data: `clusters` centres, points scattered around them.
pub(crate) fn clustered(n: usize, dim: usize, clusters: usize, seed: u64, metric: Metric) -> Flat {
    let mut rng = SmallRng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect();
    let mut data = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let c = &centres[rng.random_range(0..clusters)];
        let mut v: Vec<f32> = c
            .iter()
            .map(|x| x + rng.random_range(-0.3f32..0.3))
            .collect();
        prepare(metric, &mut v).unwrap();
        data.extend(v);
    }
    Flat {
        dim,
        data,
        codes: None,
    }
}

fn brute(flat: &Flat, metric: Metric, q: &[f32], k: usize) -> Vec<u32> {
    let n = flat.data.len() / flat.dim;
    let mut all: Vec<(f32, u32)> = (0..n as u32)
        .map(|i| (metric.score(q, flat.vector(i).unwrap()), i))
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    all.truncate(k);
    all.into_iter().map(|x| x.1).collect()
}

fn build(flat: &Flat, metric: Metric, parallel: bool) -> MemGraph {
    let n = flat.data.len() / flat.dim;
    let mut g = MemGraph::new(HnswParams {
        m: 16,
        ef_construction: 100,
        seed: 7,
    });
    g.reserve(n);
    if parallel {
        (0..n as u32)
            .into_par_iter()
            .for_each(|i| g.insert(i, flat, metric).unwrap());
    } else {
        for i in 0..n as u32 {
            g.insert(i, flat, metric).unwrap();
        }
    }
    g
}

pub(crate) fn recall(
    g: &impl Links,
    flat: &Flat,
    metric: Metric,
    queries: &Flat,
    ef: usize,
) -> f64 {
    let k = 10;
    let nq = queries.data.len() / queries.dim;
    let mut hit = 0;
    for qi in 0..nq as u32 {
        let q = queries.vector(qi).unwrap();
        let truth = brute(flat, metric, q, k);
        let got = with_visited(g.nodes(), |v| {
            search(g, flat, metric, q, k, ef, v, |_| true)
        })
        .unwrap();
        hit += got.iter().filter(|s| truth.contains(&s.node)).count();
    }
    hit as f64 / (nq * k) as f64
}

#[test]
fn recall_on_clustered_data_every_metric() {
    for metric in [Metric::Cosine, Metric::Dot, Metric::L2] {
        let (flat, queries) = data_and_queries(5_000, 100, 32, metric);
        let g = build(&flat, metric, true);
        let r = recall(&g, &flat, metric, &queries, 64);
        assert!(r >= 0.95, "{metric}: recall {r}");
    }
}

#[test]
fn single_threaded_build_is_reproducible() {
    let flat = clustered(1_000, 8, 10, 3, Metric::L2);
    let a = build(&flat, Metric::L2, false);
    let b = build(&flat, Metric::L2, false);
    for n in 0..1_000u32 {
        assert_eq!(
            a.level0_words(n).collect::<Vec<_>>(),
            b.level0_words(n).collect::<Vec<_>>()
        );
    }
}

#[test]
fn deleted_nodes_are_walked_not_returned() {
    let flat = clustered(2_000, 16, 20, 4, Metric::Cosine);
    let g = build(&flat, Metric::Cosine, true);
    let q = flat.vector(5).unwrap().to_vec();
    let got = with_visited(g.nodes(), |v| {
        search(&g, &flat, Metric::Cosine, &q, 10, 64, v, |n| n % 2 == 1)
    })
    .unwrap();
    assert_eq!(got.len(), 10);
    assert!(got.iter().all(|s| s.node % 2 == 1));
}

#[test]
#[ignore]
fn print_recall_curve() {
    for metric in [Metric::Cosine, Metric::Dot, Metric::L2] {
        let (flat, queries) = data_and_queries(5_000, 100, 32, metric);
        let g = build(&flat, metric, true);
        for ef in [10, 32, 64, 128, 256] {
            eprintln!(
                "{metric} ef {ef}: {}",
                recall(&g, &flat, metric, &queries, ef)
            );
        }
    }
}

#[test]
fn invariants_hold_after_builds() {
    for metric in [Metric::Cosine, Metric::L2] {
        let (flat, _) = data_and_queries(20_000, 0, 32, metric);
        let g = build(&flat, metric, true);
        let added = g.repair(&flat, metric, |_| true).unwrap();
        eprintln!("{metric}: repair added {added} links");
        let r = super::check::check(&g, 16, |_| true).unwrap();
        assert!(
            r.problems.is_empty(),
            "{:?}",
            &r.problems[..r.problems.len().min(5)]
        );
        eprintln!(
            "{metric}: {} unreachable of {}",
            r.unreachable.len(),
            r.nodes
        );
        assert!(
            r.unreachable.is_empty(),
            "{metric}: {} unreachable",
            r.unreachable.len()
        );
    }
}

#[test]
fn mapped_graph_equals_built_graph_and_catches_damage() {
    use super::layout::{MappedGraph, write};
    use crate::error::Error;
    let (flat, queries) = data_and_queries(3_000, 50, 16, Metric::Cosine);
    let g = build(&flat, Metric::Cosine, true);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("graph");
    let identity: Vec<u32> = (0..3_000).collect();
    write(&path, 9, &g, &identity).unwrap();
    let mg = MappedGraph::open(&path, 9, 3_000, 16).unwrap();
    assert_eq!(mg.entry(), g.entry());
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for n in 0..3_000u32 {
        assert_eq!(mg.level(n).unwrap(), g.level_of(n));
        for l in 0..=g.level_of(n) {
            mg.neighbors(n, l, &mut a).unwrap();
            g.neighbors(n, l, &mut b).unwrap();
            // Level-0 lists are stored sorted.
            if l == 0 {
                b.sort_unstable();
            }
            assert_eq!(a, b, "node {n} level {l}");
        }
    }
    assert!(
        super::check::check(&mg, 16, |_| true)
            .unwrap()
            .problems
            .is_empty()
    );
    let r1 = recall(&g, &flat, Metric::Cosine, &queries, 64);
    let r2 = recall(&mg, &flat, Metric::Cosine, &queries, 64);
    assert_eq!(r1, r2);
    // The 8-byte offset form (written past 4 GiB of lists) reads as the same graph.
    let wide = dir.path().join("wide");
    super::layout::write_with(&wide, 9, &g, &identity, Some(8)).unwrap();
    let mw = MappedGraph::open(&wide, 9, 3_000, 16).unwrap();
    mw.verify_all().unwrap();
    for n in 0..3_000u32 {
        for l in 0..=g.level_of(n) {
            mw.neighbors(n, l, &mut a).unwrap();
            mg.neighbors(n, l, &mut b).unwrap();
            assert_eq!(a, b, "wide: node {n} level {l}");
        }
    }
    assert!(mw.disk_bytes() > mg.disk_bytes());
    assert_eq!(recall(&mw, &flat, Metric::Cosine, &queries, 64), r2);
    // Whether the file with the meta bytes at `field` replaced by `value` is refused as
    // corrupt when opened.
    let bytes = std::fs::read(&path).unwrap();
    let meta = crate::io::header::HEADER_LEN;
    let refused = |field: usize, value: &[u8]| {
        let mut b = bytes.clone();
        b[meta + field..meta + field + value.len()].copy_from_slice(value);
        let p2 = dir.path().join("patched");
        std::fs::write(&p2, &b).unwrap();
        matches!(
            MappedGraph::open(&p2, 9, 3_000, 16),
            Err(Error::Corruption { .. })
        )
    };
    // An offset width other than 4 or 8, or one that does not match the file, is refused.
    for width in [0u32, 2, 5, 8, 16, u32::MAX] {
        assert!(refused(28, &width.to_le_bytes()), "offset width {width}");
    }
    // Wrong expectations are refused.
    assert!(MappedGraph::open(&path, 8, 3_000, 16).is_err());
    assert!(MappedGraph::open(&path, 9, 2_999, 16).is_err());
    assert!(MappedGraph::open(&path, 9, 3_000, 8).is_err());
    // Sizes in the meta that overflow are refused before anything is read (a fuzz find:
    // upper words near usize::MAX / 4 overflowed the padding of the body's end).
    // The upper table starts after the meta, 3,001 u32 offsets, the lists (padded to 4), the
    // levels and the upper offsets; this many upper words put the body's end within 4 bytes
    // of usize::MAX.
    let list_bytes = crate::io::header::u64_at(&bytes, meta + 32) as usize;
    let upper = 64 + 3_001 * 4 + list_bytes.next_multiple_of(4) + 3_000 + 3_000 * 4;
    for (field, value) in [
        (16, ((usize::MAX - upper) / 4) as u64),
        (16, usize::MAX as u64 / 4 - 3),
        (16, u64::MAX),
        (32, usize::MAX as u64 - 100),
        (32, u64::MAX),
    ] {
        assert!(
            refused(field, &value.to_le_bytes()),
            "meta field {field} = {value}"
        );
    }
    // Any flipped byte is caught by open or by a full check — never a panic.
    let mut rng = SmallRng::seed_from_u64(5);
    let mut offsets: Vec<usize> = (0..200).collect();
    offsets.extend((0..300).map(|_| rng.random_range(0..bytes.len())));
    for off in offsets {
        let mut b = bytes.clone();
        b[off] ^= 0x10;
        let p2 = dir.path().join(format!("g{off}"));
        std::fs::write(&p2, &b).unwrap();
        let caught = match MappedGraph::open(&p2, 9, 3_000, 16) {
            Err(Error::Corruption { .. }) => true,
            Err(e) => panic!("offset {off}: unexpected {e}"),
            Ok(m) => matches!(m.verify_all(), Err(Error::Corruption { .. })),
        };
        assert!(caught, "flip at {off} not caught");
        std::fs::remove_file(&p2).unwrap();
    }
}

#[test]
fn repair_reaches_every_node_among_duplicate_vectors() {
    // Hundreds of identical vectors per point: the heuristic keeps one link per group of
    // duplicates, so most nodes have no incoming link; the repair must reach them all.
    for metric in [Metric::Cosine, Metric::L2] {
        let mut data = Vec::new();
        for i in 0..4_000u32 {
            let mut v: Vec<f32> = (0..8)
                .map(|d| ((i % 23) * 7 + d) as f32 % 11.0 + 1.0)
                .collect();
            prepare(metric, &mut v).unwrap();
            data.extend(v);
        }
        let flat = Flat {
            dim: 8,
            data,
            codes: None,
        }
        .with_codes(metric != Metric::L2);
        let params = HnswParams {
            m: 16,
            ef_construction: 100,
            seed: 7,
        };
        let g = super::build_graph(params, &flat, 4_000, metric).unwrap();
        let r = super::check::check(&g, 16, |_| true).unwrap();
        assert!(
            r.is_sound(),
            "{metric:?}: {:?} / {} unreachable",
            r.problems,
            r.unreachable.len()
        );
    }
}

#[test]
fn repair_reaches_every_node_under_dot_product() {
    // Inner-product graphs on vectors of very different norms leave many nodes without
    // incoming links; the repair must reconnect all of them without orphaning others.
    for seed in 0..5u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let n = 1_500;
        let mut data = Vec::new();
        for _ in 0..n {
            let (a, b) = (
                rng.random_range(0.0f32..8.0),
                rng.random_range(0.0f32..200.0),
            );
            data.extend([a, b, a * b, 1.0]);
        }
        let flat = Flat {
            dim: 4,
            data,
            codes: None,
        }
        .with_codes(true);
        let g = build(&flat, Metric::Dot, true);
        g.repair(&flat, Metric::Dot, |_| true).unwrap();
        let r = super::check::check(&g, 16, |_| true).unwrap();
        assert!(
            r.is_sound(),
            "seed {seed}: {:?} / {} unreachable",
            r.problems,
            r.unreachable.len()
        );
    }
}

#[test]
fn reordered_graph_is_the_same_graph_renumbered() {
    use super::layout::{MappedGraph, bfs_order, write};
    let (flat, queries) = data_and_queries(3_000, 50, 16, Metric::L2);
    let g = build(&flat, Metric::L2, true);
    let order = bfs_order(&g);
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..3_000).collect::<Vec<u32>>(), "a permutation");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("graph");
    write(&path, 1, &g, &order).unwrap();
    let mg = MappedGraph::open(&path, 1, 3_000, 16).unwrap();
    let mut pos = vec![0u32; 3_000];
    for (new, &old) in order.iter().enumerate() {
        pos[old as usize] = new as u32;
    }
    assert_eq!(
        mg.entry().map(|e| e.0),
        g.entry().map(|e| pos[e.0 as usize])
    );
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for old in 0..3_000u32 {
        let new = pos[old as usize];
        assert_eq!(mg.level(new).unwrap(), g.level_of(old));
        for l in 0..=g.level_of(old) {
            mg.neighbors(new, l, &mut a).unwrap();
            g.neighbors(old, l, &mut b).unwrap();
            let mut renamed: Vec<u32> = b.iter().map(|&x| pos[x as usize]).collect();
            if l == 0 {
                renamed.sort_unstable();
            }
            assert_eq!(a, renamed, "node {old} level {l}");
        }
    }
    // Searching the renumbered graph over renumbered vectors finds the same neighbours.
    let moved = Flat {
        dim: 16,
        data: order
            .iter()
            .flat_map(|&o| flat.vector(o).unwrap().to_vec())
            .collect(),
        codes: None,
    };
    assert_eq!(
        recall(&g, &flat, Metric::L2, &queries, 64),
        recall(&mg, &moved, Metric::L2, &queries, 64)
    );
}

mod list_codec {
    use super::super::layout::{decode_list, encode_list};
    use proptest::prelude::*;

    proptest! {
        /// Any set of up to 64 distinct nodes below `n` decodes to itself, sorted, in the
        /// fewest bytes per gap that hold the largest gap.
        #[test]
        fn lists_round_trip(
            n in 1u32..=u32::MAX,
            raw in proptest::collection::vec(any::<u32>(), 0..64),
        ) {
            let mut links: Vec<u32> = raw.iter().map(|x| x % n).collect();
            links.sort_unstable();
            links.dedup();
            let want = links.clone();
            let mut shuffled = links.clone();
            shuffled.reverse();
            let mut bytes = Vec::new();
            encode_list(&mut shuffled, &mut bytes);
            if want.is_empty() {
                prop_assert!(bytes.is_empty());
            } else {
                let max_gap = want.windows(2).map(|p| p[1] - p[0]).max().unwrap_or(0);
                let w = match max_gap { 0..=0xff => 1, 0x100..=0xffff => 2, 0x1_0000..=0xff_ffff => 3, _ => 4 };
                prop_assert_eq!(bytes[0] as usize, w);
                prop_assert_eq!(bytes.len(), 5 + (want.len() - 1) * w);
            }
            let mut out = vec![7];
            decode_list(&bytes, n as usize, 64, &mut out).unwrap();
            prop_assert_eq!(&out, &want);
            // Too many links for the capacity, or a node at or past `n`, is refused.
            if !want.is_empty() {
                prop_assert!(decode_list(&bytes, n as usize, want.len() - 1, &mut out).is_err());
                prop_assert!(decode_list(&bytes, *want.last().unwrap() as usize, 64, &mut out).is_err());
            }
        }

        /// Arbitrary bytes never panic: they decode to nodes below `n` within the capacity,
        /// or are refused.
        #[test]
        fn arbitrary_bytes_are_checked(
            bytes in proptest::collection::vec(any::<u8>(), 0..80),
            n in 1usize..100_000,
        ) {
            let mut out = Vec::new();
            if decode_list(&bytes, n, 32, &mut out).is_ok() {
                prop_assert!(out.len() <= 32);
                prop_assert!(out.iter().all(|&x| (x as usize) < n));
            }
        }
    }
}

/// Levels follow the geometric distribution of the paper: a node reaches level ≥ l with
/// probability m^-l.
#[test]
fn levels_are_geometric() {
    let params = HnswParams {
        m: 16,
        ef_construction: 32,
        seed: 0x5EED_CA12,
    };
    let mut g = MemGraph::new(params);
    let n = 200_000;
    g.reserve(n);
    let at_least = |l: usize| (0..n as u32).filter(|&i| g.level(i).unwrap() >= l).count();
    let (l1, l2) = (at_least(1) as f64 / n as f64, at_least(2) as f64 / n as f64);
    assert!((l1 - 1.0 / 16.0).abs() < 0.004, "P(level >= 1) = {l1}");
    assert!((l2 - 1.0 / 256.0).abs() < 0.001, "P(level >= 2) = {l2}");
    // Reproducible: the same seed draws the same levels.
    let mut h = MemGraph::new(params);
    h.reserve(1000);
    assert!((0..1000).all(|i| g.level(i).unwrap() == h.level(i).unwrap()));
}

/// Concurrent inserts keep every node reachable. A node found through its upper levels before
/// its own level-0 list was set used to have the links that others added to it overwritten;
/// a neighbour linked only that way was then lost (about one node in 300 on 8-d data).
#[test]
fn parallel_inserts_leave_no_node_unreachable() {
    let dim = 8;
    let n = 300usize;
    let mut lost = Vec::new();
    for trial in 0..100u64 {
        let mut rng = SmallRng::seed_from_u64(trial);
        let data: Vec<f32> = (0..n * dim)
            .map(|_| rng.random_range(-0.5f32..0.5))
            .collect();
        let flat = Flat {
            dim,
            data,
            codes: None,
        };
        let params = HnswParams {
            m: 16,
            ef_construction: 100,
            seed: 7,
        };
        let g = MemGraph::with_capacity(params, n);
        g.insert(0, &flat, Metric::L2).unwrap();
        (1..n as u32)
            .into_par_iter()
            .try_for_each(|r| g.insert(r, &flat, Metric::L2))
            .unwrap();
        let r = super::check::check(&g, 16, |_| true).unwrap();
        assert!(r.problems.is_empty(), "trial {trial}: {:?}", r.problems);
        if !r.unreachable.is_empty() {
            lost.push((trial, r.unreachable));
        }
    }
    assert!(
        lost.is_empty(),
        "unreachable after parallel inserts: {lost:?}"
    );
}
