//! The app's own frame timings: how long building a frame takes and how far apart
//! frames come while a run is live. Shown in a small status meter, written as JSON
//! by `--frame-stats`.

use std::time::{Duration, Instant};

use crate::metrics::clocks::this_thread_cpu;

use egui::util::History;
use serde::Serialize;

/// Most frames kept for the summary (about 4.6 hours at 60 Hz).
const MAX_KEPT: usize = 1_000_000;

/// Rolling and whole-session frame timings.
pub struct FrameStats {
    frame_start: Option<Instant>,
    /// The UI thread's CPU clock at the start of the frame.
    frame_start_cpu: Duration,
    /// Start of the previous frame, when that frame was itself live.
    last_live_start: Option<Instant>,
    recent_build_ms: History<f32>,
    recent_interval_ms: History<f32>,
    build_ms: Vec<f32>,
    /// The UI thread's CPU time per build: what the build cost, without the time
    /// the scheduler gave the core to someone else (a worker) halfway through.
    build_cpu_ms: Vec<f32>,
    interval_ms: Vec<f32>,
    /// The very first frame's build: it lays out fonts and fills egui's caches,
    /// once, before any run (about 5–6 ms here). Kept apart from the builds that
    /// the percentiles describe, which are the ones that can compete with a run.
    first_build_ms: Option<f32>,
    /// eframe's whole-frame time (build, tessellation, painting), when it reports one.
    frame_cpu_ms: Vec<f32>,
}

/// What `--frame-stats` writes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrameSummary {
    /// Frames built.
    pub frames: usize,
    /// The first frame's build (fonts and caches, once); not in the percentiles below.
    pub first_build_ms: f64,
    /// Intervals between consecutive frames while a run was live.
    pub frame_interval_ms_p50: f64,
    pub frame_interval_ms_p99: f64,
    /// Time spent in the app's own `ui` code per frame after the first (not
    /// tessellation or painting).
    pub build_ms_p50: f64,
    pub build_ms_p99: f64,
    /// The UI thread's CPU time in the app's own `ui` code per frame.
    pub build_cpu_ms_p50: f64,
    pub build_cpu_ms_p99: f64,
    /// eframe's own measure of a whole frame (our build, tessellation, GL painting, swap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_cpu_ms_p50: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_cpu_ms_p99: Option<f64>,
}

impl Default for FrameStats {
    fn default() -> Self {
        Self {
            frame_start: None,
            frame_start_cpu: Duration::ZERO,
            last_live_start: None,
            recent_build_ms: History::new(0..300, 2.0),
            recent_interval_ms: History::new(0..300, 2.0),
            build_ms: Vec::new(),
            build_cpu_ms: Vec::new(),
            interval_ms: Vec::new(),
            first_build_ms: None,
            frame_cpu_ms: Vec::new(),
        }
    }
}

impl FrameStats {
    /// Marks the start of a frame. Intervals are only counted between two live frames:
    /// idle, the app waits for input, and that wait is not a late frame.
    pub fn begin(&mut self, now: Instant, now_s: f64, live: bool) {
        self.frame_start = Some(now);
        self.frame_start_cpu = this_thread_cpu();
        if let Some(prev) = self.last_live_start.filter(|_| live) {
            let ms = (now - prev).as_secs_f32() * 1000.0;
            self.recent_interval_ms.add(now_s, ms);
            push_capped(&mut self.interval_ms, ms);
        }
        self.last_live_start = live.then_some(now);
    }

    /// Marks the end of the frame's build.
    pub fn end(&mut self, now_s: f64) {
        if let Some(start) = self.frame_start.take() {
            let ms = start.elapsed().as_secs_f32() * 1000.0;
            self.recent_build_ms.add(now_s, ms);
            let cpu = this_thread_cpu().saturating_sub(self.frame_start_cpu);
            if self.first_build_ms.is_none() {
                self.first_build_ms = Some(ms);
                return;
            }
            push_capped(&mut self.build_ms, ms);
            push_capped(&mut self.build_cpu_ms, cpu.as_secs_f32() * 1000.0);
        }
    }

    /// Records eframe's measure of the previous whole frame.
    pub fn record_frame_cpu(&mut self, seconds: f32) {
        push_capped(&mut self.frame_cpu_ms, seconds * 1000.0);
    }

    /// Percentiles over the whole session.
    pub fn summary(&self) -> FrameSummary {
        FrameSummary {
            frames: self.build_ms.len() + usize::from(self.first_build_ms.is_some()),
            first_build_ms: self.first_build_ms.map_or(0.0, f64::from),
            frame_interval_ms_p50: percentile(&self.interval_ms, 50.0),
            frame_interval_ms_p99: percentile(&self.interval_ms, 99.0),
            build_ms_p50: percentile(&self.build_ms, 50.0),
            build_ms_p99: percentile(&self.build_ms, 99.0),
            build_cpu_ms_p50: percentile(&self.build_cpu_ms, 50.0),
            build_cpu_ms_p99: percentile(&self.build_cpu_ms, 99.0),
            frame_cpu_ms_p50: (!self.frame_cpu_ms.is_empty())
                .then(|| percentile(&self.frame_cpu_ms, 50.0)),
            frame_cpu_ms_p99: (!self.frame_cpu_ms.is_empty())
                .then(|| percentile(&self.frame_cpu_ms, 99.0)),
        }
    }

    /// One line for the status bar: build time and frame rate over the last two seconds.
    pub fn meter_text(&self) -> String {
        let build = self.recent_build_ms.average().unwrap_or(0.0);
        let build_max = self.recent_build_ms.values().fold(0.0f32, f32::max);
        match self.recent_interval_ms.average() {
            Some(iv) if self.last_live_start.is_some() && iv > 0.0 => format!(
                "frame build {build:.1} ms (max {build_max:.1}) · {:.0} fps, max interval {:.0} ms",
                1000.0 / iv,
                self.recent_interval_ms.values().fold(0.0f32, f32::max)
            ),
            _ => format!("frame build {build:.1} ms (max {build_max:.1}) · idle"),
        }
    }
}

fn push_capped(v: &mut Vec<f32>, x: f32) {
    if v.len() < MAX_KEPT {
        v.push(x);
    }
}

/// Nearest-rank percentile; 0 for no data.
fn percentile(values: &[f32], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f32::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f32> = (1..=100).map(|x| x as f32).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn intervals_count_only_between_live_frames() {
        let mut s = FrameStats::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        s.begin(at(0), 0.0, false);
        s.end(0.0);
        s.begin(at(5000), 5.0, true); // idle wait before: not an interval
        s.end(5.0);
        s.begin(at(5016), 5.016, true);
        s.end(5.016);
        s.begin(at(5032), 5.032, true);
        s.end(5.032);
        let sum = s.summary();
        assert_eq!(sum.frames, 4);
        assert_eq!(sum.frame_interval_ms_p99, 16.0);
    }

    #[test]
    fn the_first_build_is_reported_apart_from_the_percentiles() {
        let mut s = FrameStats::default();
        let start = Instant::now();
        s.begin(start, 0.0, false);
        while start.elapsed() < Duration::from_millis(20) {}
        s.end(0.0);
        for _ in 0..3 {
            s.begin(Instant::now(), 0.1, true);
            s.end(0.1);
        }
        let sum = s.summary();
        assert_eq!(sum.frames, 4);
        assert!(sum.first_build_ms >= 20.0, "{sum:?}");
        assert!(sum.build_ms_p99 < 20.0, "{sum:?}");
        assert!(sum.build_cpu_ms_p99 < 20.0, "{sum:?}");
    }
}
