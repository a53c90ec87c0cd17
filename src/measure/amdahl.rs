//! Amdahl's law fitted to measured speed-ups: S(w) = 1 / (s + (1 − s) / n),
//! n = min(w, cores), with s the serial fraction. Pure arithmetic: the sweep
//! measures, this turns its points into the number a reader takes away.

use serde::Serialize;

/// A speed-up measured with `workers` workers (one repetition).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub workers: u32,
    pub speedup: f64,
}

/// What the fit says of one backend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fit {
    /// The serial fraction, 0..=1.
    pub serial_fraction: f64,
    /// Its standard error (from the fit's residuals and curvature).
    pub serial_fraction_stderr: f64,
    /// Speed-ups the fitted law predicts with 64 and 1024 cores.
    pub predicted_64: f64,
    pub predicted_1024: f64,
    /// Root-mean-square of (measured − fitted) / fitted over the points.
    pub relative_rms: f64,
    /// Why the law does not describe these points, when it does not.
    pub misfit: Option<String>,
}

/// The speed-up Amdahl's law gives with serial fraction `s` and `n` cores busy.
pub fn speedup(s: f64, n: f64) -> f64 {
    1.0 / (s + (1.0 - s) / n)
}

/// Cores the work can use with `workers` workers on a machine of `cores`.
fn busy(workers: u32, cores: u32) -> f64 {
    f64::from(workers.min(cores).max(1))
}

fn residual_sum(points: &[Point], cores: u32, s: f64) -> f64 {
    points
        .iter()
        .map(|p| (p.speedup - speedup(s, busy(p.workers, cores))).powi(2))
        .sum()
}

/// A relative residual above this is no fit.
const MISFIT_RMS: f64 = 0.15;
/// More workers costing more than this share of the speed-up is "slower with more workers".
const SLOWDOWN: f64 = 0.85;

/// Fits s by least squares on the speed-ups themselves. `None` without a
/// point at more than one busy core (nothing to fit s to).
pub fn fit(points: &[Point], cores: u32) -> Option<Fit> {
    let informative = points
        .iter()
        .filter(|p| busy(p.workers, cores) > 1.0)
        .count();
    if informative == 0
        || points
            .iter()
            .any(|p| !p.speedup.is_finite() || p.speedup <= 0.0)
    {
        return None;
    }
    // The sum of squares is smooth and, on [0, 1], has one minimum for any
    // data seen in practice: a fine grid, then golden-section refinement.
    let grid = 1000;
    let mut best = (0..=grid)
        .map(|i| i as f64 / grid as f64)
        .min_by(|&a, &b| {
            residual_sum(points, cores, a).total_cmp(&residual_sum(points, cores, b))
        })?;
    let (mut lo, mut hi) = (
        (best - 1.0 / grid as f64).max(0.0),
        (best + 1.0 / grid as f64).min(1.0),
    );
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..60 {
        let a = hi - phi * (hi - lo);
        let b = lo + phi * (hi - lo);
        if residual_sum(points, cores, a) < residual_sum(points, cores, b) {
            hi = b;
        } else {
            lo = a;
        }
    }
    best = ((lo + hi) / 2.0).clamp(0.0, 1.0);

    // Standard error: σ² / Σ (∂S/∂s)², with σ² from the residuals.
    let n = points.len() as f64;
    let rss = residual_sum(points, cores, best);
    let slope2: f64 = points
        .iter()
        .map(|p| {
            let k = busy(p.workers, cores);
            let d = -(1.0 - 1.0 / k) / (best + (1.0 - best) / k).powi(2);
            d * d
        })
        .sum();
    let stderr = if n > 1.0 && slope2 > 0.0 {
        (rss / (n - 1.0) / slope2).sqrt()
    } else {
        f64::NAN
    };
    let relative_rms = (points
        .iter()
        .map(|p| {
            let f = speedup(best, busy(p.workers, cores));
            ((p.speedup - f) / f).powi(2)
        })
        .sum::<f64>()
        / n)
        .sqrt();
    Some(Fit {
        serial_fraction: best,
        serial_fraction_stderr: stderr,
        predicted_64: speedup(best, 64.0),
        predicted_1024: speedup(best, 1024.0),
        relative_rms,
        misfit: misfit(points, relative_rms),
    })
}

/// Why the law does not describe `points`: it never predicts a speed-up that
/// falls as workers are added, nor points far off its curve.
fn misfit(points: &[Point], relative_rms: f64) -> Option<String> {
    // The median speed-up of each worker count: one lucky or unlucky
    // repetition must not make or hide a slowdown.
    let mut counts: Vec<u32> = points.iter().map(|p| p.workers).collect();
    counts.sort_unstable();
    counts.dedup();
    let by_workers: Vec<(u32, f64)> = counts
        .into_iter()
        .map(|w| {
            let v = points
                .iter()
                .filter(|p| p.workers == w)
                .map(|p| p.speedup)
                .collect();
            (w, crate::measure::median(v))
        })
        .collect();
    let peak = by_workers.iter().map(|(_, s)| *s).fold(0.0, f64::max);
    if let Some(&(w, s)) = by_workers.last()
        && s < SLOWDOWN * peak
    {
        let (pw, _) = by_workers.iter().find(|(_, x)| *x == peak)?;
        return Some(format!(
            "slower with more workers: {s:.2}x at {w} against {peak:.2}x at {pw}, which Amdahl's law cannot give"
        ));
    }
    if relative_rms > MISFIT_RMS {
        return Some(format!(
            "the points stray {:.0} % (rms) from the fitted curve",
            100.0 * relative_rms
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(s: f64, cores: u32, workers: &[u32], noise: impl Fn(usize) -> f64) -> Vec<Point> {
        workers
            .iter()
            .enumerate()
            .map(|(i, &w)| Point {
                workers: w,
                speedup: speedup(s, busy(w, cores)) * (1.0 + noise(i)),
            })
            .collect()
    }

    #[test]
    fn exact_points_give_back_their_serial_fraction() {
        for s in [0.0, 0.05, 0.3, 0.9, 1.0] {
            let f = fit(&points(s, 16, &[1, 2, 4, 8, 16], |_| 0.0), 16).unwrap();
            assert!((f.serial_fraction - s).abs() < 1e-6, "{s}: {f:?}");
            assert!(f.misfit.is_none(), "{s}: {f:?}");
            assert!(f.relative_rms < 1e-9);
        }
        let f = fit(&points(0.05, 16, &[1, 2, 4, 8, 16], |_| 0.0), 16).unwrap();
        assert!((f.predicted_64 - 1.0 / (0.05 + 0.95 / 64.0)).abs() < 1e-3);
        assert!((f.predicted_1024 - 1.0 / (0.05 + 0.95 / 1024.0)).abs() < 1e-2);
    }

    #[test]
    fn noisy_points_give_it_back_within_their_error() {
        // ±4 % of deterministic "noise", three repetitions per worker count.
        let workers: Vec<u32> = [1, 2, 4, 8].iter().flat_map(|&w| [w; 3]).collect();
        let wobble = |i: usize| [0.04, -0.03, 0.01, -0.04, 0.02, 0.03][i % 6];
        let f = fit(&points(0.2, 8, &workers, wobble), 8).unwrap();
        assert!((f.serial_fraction - 0.2).abs() < 0.03, "{f:?}");
        assert!(
            f.serial_fraction_stderr > 0.0 && f.serial_fraction_stderr < 0.03,
            "{f:?}"
        );
        assert!(
            (f.serial_fraction - 0.2).abs() < 4.0 * f.serial_fraction_stderr,
            "{f:?}"
        );
        assert!(f.misfit.is_none(), "{f:?}");
    }

    #[test]
    fn oversubscribed_points_count_only_the_cores_there_are() {
        // 2 cores, up to 8 workers: beyond 2 the law predicts no more gain.
        let f = fit(&points(0.1, 2, &[1, 2, 4, 8], |_| 0.0), 2).unwrap();
        assert!((f.serial_fraction - 0.1).abs() < 1e-6, "{f:?}");
        // The chapter's machine: threads near s = 0, the GIL near s = 1.
        let threads = [(1, 1.0), (2, 1.96), (4, 1.97), (8, 1.95)];
        let gil = [(1, 1.0), (2, 1.01), (4, 0.99), (8, 1.0)];
        let as_points = |v: &[(u32, f64)]| -> Vec<Point> {
            v.iter()
                .map(|&(workers, speedup)| Point { workers, speedup })
                .collect()
        };
        let t = fit(&as_points(&threads), 2).unwrap();
        let g = fit(&as_points(&gil), 2).unwrap();
        assert!(t.serial_fraction < 0.03, "{t:?}");
        assert!(g.serial_fraction > 0.97, "{g:?}");
        assert!(t.misfit.is_none() && g.misfit.is_none());
    }

    #[test]
    fn slower_with_more_workers_is_flagged() {
        // CPython threads on Beazley's measurements: 2 threads slower than 1.
        let beazley =
            [(1, 1.0), (2, 0.55), (4, 0.5)].map(|(workers, speedup)| Point { workers, speedup });
        let f = fit(&beazley, 4).unwrap();
        let why = f.misfit.expect("flagged");
        assert!(
            why.starts_with("slower with more workers: 0.50x at 4 against 1.00x at 1"),
            "{why}"
        );
        // And points nowhere near any curve of the law.
        let zigzag = [(1, 1.0), (2, 1.9), (3, 1.2), (4, 3.9)]
            .map(|(workers, speedup)| Point { workers, speedup });
        let f = fit(&zigzag, 4).unwrap();
        assert!(
            f.misfit.as_ref().is_some_and(|w| w.contains("stray")),
            "{f:?}"
        );
    }

    #[test]
    fn nothing_to_fit_without_a_point_past_one_core() {
        assert!(
            fit(
                &[Point {
                    workers: 1,
                    speedup: 1.0
                }],
                4
            )
            .is_none()
        );
        assert!(
            fit(
                &[Point {
                    workers: 4,
                    speedup: 2.0
                }],
                1
            )
            .is_none()
        );
        assert!(
            fit(
                &[Point {
                    workers: 2,
                    speedup: f64::NAN
                }],
                2
            )
            .is_none()
        );
    }
}
