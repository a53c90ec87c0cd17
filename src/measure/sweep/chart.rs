//! The sweep as a PNG: speed-up against workers, one line per backend with
//! min-max whiskers, the ideal min(w, cores), each backend's fitted Amdahl
//! curve dashed; and efficiency against workers beside it. Drawn with plotters.

use std::path::Path;

use plotters::prelude::*;

use super::SweepReport;
use super::output::fit_line;
use crate::measure::compare::chart::register_font;

fn color(b: crate::spec::BackendKind) -> RGBColor {
    let [r, g, bl] = b.rgb();
    RGBColor(r, g, bl)
}

/// Writes the chart to `path` (PNG, 1600 x 700 plus a line per backend).
pub fn write_png(r: &SweepReport, path: &Path) -> Result<(), String> {
    register_font();
    if r.curves.is_empty() {
        return Err("nothing to chart".into());
    }
    let (w, h) = (1600u32, 700 + 30 * r.curves.len() as u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        let (plots, notes) = root.split_vertically(700);
        let plots = plots
            .titled(
                &format!(
                    "Speed-up and efficiency against workers: {} tasks x {} numbers, on {} ({} cores), {} run(s) per point",
                    r.tasks, r.numbers_per_task, r.host, r.cores, r.repeat
                ),
                ("sans-serif", 26),
            )
            .map_err(e)?;
        let (left, right) = plots.split_horizontally(w / 2 + 100);
        let max_w = r.max_workers();
        let x_hi = f64::from(max_w) * 1.05;
        let y_hi = r
            .curves
            .iter()
            .flat_map(|c| c.points.iter().map(|p| p.speedup_max))
            .fold(f64::from(max_w.min(r.cores)), f64::max)
            * 1.15;

        let mut speed = ChartBuilder::on(&left)
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_hi, 0.0..y_hi)
            .map_err(e)?;
        speed
            .configure_mesh()
            .x_desc("workers")
            .y_desc("speed-up (against 1 worker)")
            .label_style(("sans-serif", 17))
            .axis_desc_style(("sans-serif", 19))
            .draw()
            .map_err(e)?;
        // The ideal: every worker a core of its own, up to the cores there are.
        let ideal: Vec<(f64, f64)> = r.ideal().into_iter().map(|[x, y]| (x, y)).collect();
        speed
            .draw_series(LineSeries::new(ideal, BLACK.mix(0.5).stroke_width(2)))
            .map_err(e)?
            .label(format!("ideal: min(workers, {} cores)", r.cores))
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5).stroke_width(2))
            });
        for c in &r.curves {
            let col = color(c.backend);
            if let Some(f) = &c.fit {
                let model: Vec<(f64, f64)> = r
                    .fitted(f.serial_fraction, x_hi, 200)
                    .into_iter()
                    .map(|[x, y]| (x, y))
                    .collect();
                speed
                    .draw_series(DashedLineSeries::new(
                        model,
                        8,
                        6,
                        col.mix(0.8).stroke_width(2),
                    ))
                    .map_err(e)?;
            }
            let line: Vec<(f64, f64)> = c
                .points
                .iter()
                .map(|p| (f64::from(p.workers), p.speedup_median))
                .collect();
            speed
                .draw_series(LineSeries::new(line.clone(), col.stroke_width(3)))
                .map_err(e)?
                .label(match &c.fit {
                    Some(f) => format!("{} (s = {:.2})", c.backend, f.serial_fraction),
                    None => c.backend.to_string(),
                })
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(3))
                });
            speed
                .draw_series(
                    line.iter()
                        .map(|&(x, y)| Circle::new((x, y), 5, col.filled())),
                )
                .map_err(e)?;
            speed
                .draw_series(c.points.iter().map(|p| {
                    let x = f64::from(p.workers);
                    PathElement::new(
                        vec![(x, p.speedup_min), (x, p.speedup_max)],
                        col.stroke_width(2),
                    )
                }))
                .map_err(e)?;
        }
        speed
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 17))
            .draw()
            .map_err(e)?;

        let mut eff = ChartBuilder::on(&right)
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_hi, 0.0..1.3)
            .map_err(e)?;
        eff.configure_mesh()
            .x_desc("workers")
            .y_desc("efficiency (speed-up / min(workers, cores))")
            .label_style(("sans-serif", 17))
            .axis_desc_style(("sans-serif", 19))
            .draw()
            .map_err(e)?;
        eff.draw_series(LineSeries::new(
            vec![(0.0, 1.0), (x_hi, 1.0)],
            BLACK.mix(0.5).stroke_width(2),
        ))
        .map_err(e)?;
        for c in &r.curves {
            let col = color(c.backend);
            let line: Vec<(f64, f64)> = c
                .points
                .iter()
                .map(|p| (f64::from(p.workers), p.efficiency))
                .collect();
            eff.draw_series(LineSeries::new(line.clone(), col.stroke_width(3)))
                .map_err(e)?;
            eff.draw_series(
                line.iter()
                    .map(|&(x, y)| Circle::new((x, y), 5, col.filled())),
            )
            .map_err(e)?;
        }

        for (i, c) in r.curves.iter().enumerate() {
            notes
                .draw(&Text::new(
                    fit_line(c),
                    (30, 5 + 30 * i as i32),
                    ("sans-serif", 19).into_font().color(&color(c.backend)),
                ))
                .map_err(e)?;
        }
        root.present().map_err(e)?;
    }
    image::save_buffer(path, &buf, w, h, image::ColorType::Rgb8)
        .map_err(|err| format!("cannot write {}: {err}", path.display()))
}
