//! The comparison as a PNG chart: median wall time of every cell on a log
//! scale, scalelab and CPython side by side, drawn with plotters.

use std::path::Path;

use plotters::prelude::*;

use super::CompareReport;

const SCALELAB: RGBColor = RGBColor(46, 125, 190);
const CPYTHON: RGBColor = RGBColor(230, 140, 30);

pub(crate) fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // egui's own font, already in the binary: no system font needed.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        );
    });
}

/// Writes the chart to `path` (PNG).
pub fn write_png(r: &CompareReport, path: &Path) -> Result<(), String> {
    register_font();
    let rows: Vec<_> = r.rows.iter().collect();
    if rows.is_empty() {
        return Err("nothing to chart".into());
    }
    let (w, h) = (1400u32, 200 + 26 * rows.len() as u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let lo = rows
            .iter()
            .map(|x| x.wall_s_min)
            .fold(f64::INFINITY, f64::min)
            .max(1e-5)
            / 2.0;
        // Room on the right for the legend.
        let hi = rows.iter().map(|x| x.wall_s_max).fold(0.0, f64::max) * 12.0;
        let n = rows.len() as i32;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "Median wall time, {} tasks x {} numbers (cpu) / {} requests x {} ms (io), {} cores",
                    r.tasks, r.numbers_per_task, r.io_requests, r.io_latency_ms, r.cores
                ),
                ("sans-serif", 26),
            )
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(330)
            .build_cartesian_2d((lo..hi).log_scale(), (0..n).into_segmented())
            .map_err(|e| e.to_string())?;
        // The first row at the top.
        let labels: Vec<String> = rows.iter().rev().map(|x| x.label()).collect();
        chart
            .configure_mesh()
            .x_desc("wall time, seconds (log scale; min-max whiskers)")
            .y_labels(rows.len())
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .x_label_formatter(&|v| format!("{v:.3}"))
            .label_style(("sans-serif", 17))
            .axis_desc_style(("sans-serif", 19))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, x) in rows.iter().rev().enumerate() {
            let color = if x.implementation == "cpython" {
                CPYTHON
            } else {
                SCALELAB
            };
            let i = i as i32;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [
                        (lo, SegmentValue::Exact(i)),
                        (x.wall_s_median, SegmentValue::Exact(i + 1)),
                    ],
                    color.mix(0.85).filled(),
                )))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![
                        (x.wall_s_min, SegmentValue::CenterOf(i)),
                        (x.wall_s_max, SegmentValue::CenterOf(i)),
                    ],
                    BLACK.stroke_width(2),
                )))
                .map_err(|e| e.to_string())?;
        }
        // White gaps between the bars.
        chart
            .draw_series((0..=n).map(|i| {
                PathElement::new(
                    vec![(lo, SegmentValue::Exact(i)), (hi, SegmentValue::Exact(i))],
                    WHITE.stroke_width(5),
                )
            }))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, SegmentValue<i32>)>>())
            .map_err(|e| e.to_string())?
            .label("scalelab")
            .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], SCALELAB.filled()));
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, SegmentValue<i32>)>>())
            .map_err(|e| e.to_string())?
            .label("CPython")
            .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], CPYTHON.filled()));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 18))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    image::RgbImage::from_raw(w, h, buf)
        .ok_or("chart buffer has the wrong size")?
        .save(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
