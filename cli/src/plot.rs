//! The recall-vs-QPS chart of `cairn bench`, drawn as SVG with plotters.

use std::fmt::Display;
use std::path::Path;

use plotters::prelude::*;

use crate::util::{CliError, CliResult, fail};

/// One measured point: the ef, its recall and its queries per second.
pub struct Point {
    pub ef: usize,
    pub recall: f64,
    pub qps: f64,
}

/// Axis range of the recall: 0..1 or tighter, on a grid of 0.05.
fn recall_range(points: &[Point]) -> (f64, f64) {
    let min = points
        .iter()
        .map(|p| p.recall)
        .fold(f64::INFINITY, f64::min);
    let max = points
        .iter()
        .map(|p| p.recall)
        .fold(f64::NEG_INFINITY, f64::max);
    let lo = (((min - 0.02) * 20.0).floor() / 20.0).clamp(0.0, 0.95);
    let hi = (((max + 0.02) * 20.0).ceil() / 20.0).clamp(lo + 0.05, 1.0);
    (lo, hi)
}

/// Axis range of the QPS (log scale): a margin around the measured values.
fn qps_range(points: &[Point]) -> (f64, f64) {
    let min = points.iter().map(|p| p.qps).fold(f64::INFINITY, f64::min);
    let max = points.iter().map(|p| p.qps).fold(0.0, f64::max);
    ((min / 1.6).max(1e-3), (max * 1.6).max(1e-2))
}

/// Draws recall (x, linear) against QPS (y, log scale) as a line through the points in
/// order of ef, each point labelled with its ef.
pub fn draw(path: &Path, points: &[Point], caption: &str, k: usize) -> CliResult<()> {
    let err = |e: &dyn Display| -> CliError {
        fail(format_args!("cannot draw the plot {}: {e}", path.display()))
    };
    if points.is_empty() {
        return Err(err(&"no points"));
    }
    let mut sorted: Vec<&Point> = points.iter().collect();
    sorted.sort_by_key(|p| p.ef);
    let (x0, x1) = recall_range(points);
    let (y0, y1) = qps_range(points);

    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(24)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(format!("recall@{k}"))
        .y_desc("queries per second, one thread (log scale)")
        .y_labels(12)
        .x_label_formatter(&|x| format!("{x:.2}"))
        .y_label_formatter(&|y| {
            if *y >= 10.0 {
                format!("{y:.0}")
            } else {
                format!("{y:.2}")
            }
        })
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new(
            sorted.iter().map(|p| (p.recall, p.qps)),
            BLUE.stroke_width(2),
        ))
        .map_err(|e| err(&e))?;
    chart
        .draw_series(sorted.iter().map(|p| {
            EmptyElement::at((p.recall, p.qps))
                + Circle::new((0, 0), 4, BLUE.filled())
                + Text::new(format!("ef {}", p.ef), (7, -16), ("sans-serif", 13))
        }))
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(r: &[f64]) -> Vec<Point> {
        r.iter()
            .map(|&recall| Point {
                ef: 1,
                recall,
                qps: 100.0,
            })
            .collect()
    }

    #[test]
    fn ranges_stay_within_zero_and_one() {
        assert_eq!(recall_range(&pts(&[0.999, 1.0])), (0.95, 1.0));
        assert_eq!(recall_range(&pts(&[0.0, 0.5])), (0.0, 0.55));
        let (lo, hi) = recall_range(&pts(&[0.71, 0.93]));
        assert!(
            (lo - 0.65).abs() < 1e-9 && (hi - 0.95).abs() < 1e-9,
            "{lo} {hi}"
        );
        let (a, b) = qps_range(&pts(&[0.5]));
        assert!(a < 100.0 && b > 100.0);
    }
}
