//! Small pieces every chart shares: colours, number formats, axis marks.

use egui::Color32;

/// Colour of a task bar: hues spread by the golden ratio so neighbours differ.
pub fn task_color(task: u32) -> Color32 {
    let hue = (task as f32 * 0.618_034).fract();
    egui::ecolor::Hsva::new(hue, 0.55, 0.85, 1.0).into()
}

/// Colour of a utilisation (0..=100) in the heat map: dark blue, cyan, yellow.
pub fn heat_color(u: f32) -> Color32 {
    let t = (u / 100.0).clamp(0.0, 1.0);
    let lerp = |a: [f32; 3], b: [f32; 3], t: f32| {
        Color32::from_rgb(
            (a[0] + (b[0] - a[0]) * t) as u8,
            (a[1] + (b[1] - a[1]) * t) as u8,
            (a[2] + (b[2] - a[2]) * t) as u8,
        )
    };
    let (low, mid, high) = (
        [20.0, 28.0, 60.0],
        [20.0, 150.0, 190.0],
        [255.0, 215.0, 60.0],
    );
    if t < 0.5 {
        lerp(low, mid, t * 2.0)
    } else {
        lerp(mid, high, (t - 0.5) * 2.0)
    }
}

pub fn fmt_secs(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2} s")
    } else if s < 600.0 {
        format!("{s:.1} s")
    } else {
        format!("{}m{:02.0}s", (s / 60.0).floor(), s % 60.0)
    }
}

/// Numbers per second with an SI prefix.
pub fn fmt_rate(x: f64) -> String {
    let (v, unit) = match x.abs() {
        a if a >= 1e9 => (x / 1e9, "G"),
        a if a >= 1e6 => (x / 1e6, "M"),
        a if a >= 1e3 => (x / 1e3, "k"),
        _ => (x, ""),
    };
    format!("{v:.1} {unit}")
}

/// Time axis marks in 1-2-5 steps, about five labelled ones across the plot
/// (egui_plot's default base-10 steps leave a 0..9 s axis with the 0 label only).
pub fn time_grid(input: egui_plot::GridInput) -> Vec<egui_plot::GridMark> {
    grid_125(input, 5.0)
}

/// Value axis marks in 1-2-5 steps, about three labelled ones (short plots).
pub fn value_grid(input: egui_plot::GridInput) -> Vec<egui_plot::GridMark> {
    grid_125(input, 3.0)
}

/// Value axis marks for very short plots: 0 and one more labelled mark, the
/// largest 1-2-5 step that fits under two thirds of the range.
pub fn sparse_value_grid(input: egui_plot::GridInput) -> Vec<egui_plot::GridMark> {
    let (lo, hi) = input.bounds;
    let range = hi - lo;
    if !(range.is_finite() && range > 0.0) {
        return Vec::new();
    }
    let raw = range * 0.66;
    let mag = 10f64.powf(raw.log10().floor());
    let major = [5.0, 2.0, 1.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s <= raw)
        .unwrap_or(mag);
    let first = (lo / major).ceil() as i64;
    let last = (hi / major).floor() as i64;
    (first..=last.min(first + 100))
        .map(|k| egui_plot::GridMark {
            value: k as f64 * major,
            step_size: major,
        })
        .collect()
}

/// Marks every fifth of a 1-2-5 step chosen so that about `labels` steps span the range.
fn grid_125(input: egui_plot::GridInput, labels: f64) -> Vec<egui_plot::GridMark> {
    let (lo, hi) = input.bounds;
    let range = hi - lo;
    if !(range.is_finite() && range > 0.0) {
        return Vec::new();
    }
    let raw = range / labels;
    let mag = 10f64.powf(raw.log10().floor());
    let major = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let minor = major / 5.0;
    let first = (lo / minor).ceil() as i64;
    let last = (hi / minor).floor() as i64;
    (first..=last.min(first + 1000))
        .map(|k| egui_plot::GridMark {
            value: k as f64 * minor,
            step_size: if k % 5 == 0 { major } else { minor },
        })
        .collect()
}

/// An axis label with as many decimals as its step needs (0.5 s steps read
/// "0.5", not "0" as egui_plot's power-of-ten formatter would print them).
pub fn step_tick(mark: egui_plot::GridMark, _range: &std::ops::RangeInclusive<f64>) -> String {
    let decimals = (-(mark.step_size.log10() + 1e-9).floor()).max(0.0) as usize;
    format!("{:.*}", decimals, mark.value)
}

/// Spacing of worker ticks: 1 up to 12 lanes, then 1-2-5 steps keeping about 8 ticks.
pub fn lane_step(lanes: usize) -> f64 {
    let raw = (lanes as f64 / 8.0).max(1.0);
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    if lanes <= 12 { 1.0 } else { step }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heat_colours_run_from_dark_to_yellow() {
        assert_eq!(heat_color(0.0), Color32::from_rgb(20, 28, 60));
        assert_eq!(heat_color(100.0), Color32::from_rgb(255, 215, 60));
        assert_eq!(heat_color(250.0), heat_color(100.0));
    }

    #[test]
    fn time_marks_step_by_one_two_five() {
        let marks = time_grid(egui_plot::GridInput {
            bounds: (0.0, 8.3),
            base_step_size: 0.01,
        });
        let major: Vec<f64> = marks
            .iter()
            .filter(|m| m.step_size == 2.0)
            .map(|m| m.value)
            .collect();
        assert_eq!(major, [0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(marks.len(), 21);
    }

    #[test]
    fn time_ticks_show_the_decimals_their_step_needs() {
        let tick =
            |value, step_size| step_tick(egui_plot::GridMark { value, step_size }, &(0.0..=1.0));
        assert_eq!(tick(1.5, 0.5), "1.5");
        assert_eq!(tick(10.0, 5.0), "10");
        assert_eq!(tick(0.4, 0.2), "0.4");
        assert_eq!(tick(0.05, 0.05), "0.05");
        assert_eq!(tick(20.0, 10.0), "20");
    }

    #[test]
    fn sparse_marks_label_zero_and_one_big_step() {
        let marks = sparse_value_grid(egui_plot::GridInput {
            bounds: (-0.2e9, 3.3e9),
            base_step_size: 1e6,
        });
        let values: Vec<f64> = marks.iter().map(|m| m.value).collect();
        assert_eq!(values, [0.0, 2e9]);
    }

    #[test]
    fn rates_get_si_prefixes() {
        assert_eq!(fmt_rate(1.5e9), "1.5 G");
        assert_eq!(fmt_rate(2.0e6), "2.0 M");
        assert_eq!(fmt_rate(12.0), "12.0 ");
    }
}
