//! Distance kernels: the simsimd-backed `distance::simd` functions against the scalar
//! reference in `distance::scalar`, for one pair of vectors at common dimensions.
//!
//! Run: `cargo bench --bench kernels`

mod common;

use std::hint::black_box;
use std::time::Duration;

use cairndb::distance::{scalar, simd};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const DIMS: [usize; 4] = [50, 128, 384, 768];

type Kernel = fn(&[f32], &[f32]) -> f32;

fn kernels(c: &mut Criterion) {
    let all: [(&str, Kernel, Kernel); 3] = [
        ("dot", simd::dot, scalar::dot),
        ("l2sq", simd::l2sq, scalar::l2sq),
        ("cosine", simd::cosine, scalar::cosine),
    ];
    let mut rng = common::rng(1);
    for (name, simd_fn, scalar_fn) in all {
        let mut g = c.benchmark_group(format!("kernel/{name}"));
        for d in DIMS {
            let a = common::random_vector(&mut rng, d);
            let b = common::random_vector(&mut rng, d);
            // One pair per iteration: criterion reports pairs per second.
            g.throughput(Throughput::Elements(1));
            g.bench_with_input(BenchmarkId::new("simd", d), &d, |bench, _| {
                bench.iter(|| simd_fn(black_box(&a), black_box(&b)))
            });
            g.bench_with_input(BenchmarkId::new("scalar", d), &d, |bench, _| {
                bench.iter(|| scalar_fn(black_box(&a), black_box(&b)))
            });
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1));
    targets = kernels
}
criterion_main!(benches);
