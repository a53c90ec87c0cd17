//! The sweep as text: a table for the terminal, Markdown, JSON and CSV, one
//! row per backend and worker count, and each backend's fit.

use std::fmt::Write;

use super::{SweepCurve, SweepReport};

fn heading(r: &SweepReport) -> String {
    format!(
        "{} tasks x {} numbers (cpu), seed {}, {} repetition(s) per point, on {} ({} cores)",
        r.tasks, r.numbers_per_task, r.seed, r.repeat, r.host, r.cores
    )
}

/// One sentence per backend: the serial fraction and what it predicts, or why
/// the law does not fit.
pub fn fit_line(c: &SweepCurve) -> String {
    match &c.fit {
        None => format!(
            "{}: no point uses more than one core, nothing to fit",
            c.backend
        ),
        Some(f) => {
            let mut s = format!(
                "{}: serial fraction s = {:.3} ± {:.3}; Amdahl predicts {:.1}x on 64 cores, {:.1}x on 1024",
                c.backend,
                f.serial_fraction,
                f.serial_fraction_stderr,
                f.predicted_64,
                f.predicted_1024
            );
            if let Some(why) = &f.misfit {
                let _ = write!(s, "; DOES NOT FIT: {why}");
            }
            s
        }
    }
}

pub fn to_table(r: &SweepReport) -> String {
    let mut out = format!("{}\n\n", heading(r));
    let _ = writeln!(
        out,
        "{:<10} {:>7} {:>10} {:>19} {:>9} {:>20} {:>10} {:>6}",
        "backend",
        "workers",
        "wall [s]",
        "min-max [s]",
        "speed-up",
        "min-max",
        "efficiency",
        "%CPU"
    );
    for c in &r.curves {
        for p in &c.points {
            let _ = writeln!(
                out,
                "{:<10} {:>7} {:>10.3} {:>19} {:>8.2}x {:>20} {:>10.2} {:>6.0}",
                c.backend.to_string(),
                p.workers,
                p.wall_s_median,
                format!("{:.3}-{:.3}", p.wall_s_min, p.wall_s_max),
                p.speedup_median,
                format!("{:.2}-{:.2}", p.speedup_min, p.speedup_max),
                p.efficiency,
                p.cpu_percent_median
            );
        }
    }
    out.push('\n');
    for c in &r.curves {
        let _ = writeln!(out, "{}", fit_line(c));
    }
    out
}

pub fn to_markdown(r: &SweepReport) -> String {
    let mut out = format!("{}.\n\n", heading(r));
    out.push_str(
        "| backend | workers | wall [s] median (min-max) | speed-up median (min-max) | efficiency | %CPU |\n\
         |:--|--:|--:|--:|--:|--:|\n",
    );
    for c in &r.curves {
        for p in &c.points {
            let _ = writeln!(
                out,
                "| {} | {} | {:.3} ({:.3}-{:.3}) | {:.2}x ({:.2}-{:.2}) | {:.2} | {:.0} |",
                c.backend,
                p.workers,
                p.wall_s_median,
                p.wall_s_min,
                p.wall_s_max,
                p.speedup_median,
                p.speedup_min,
                p.speedup_max,
                p.efficiency,
                p.cpu_percent_median
            );
        }
    }
    out.push('\n');
    for c in &r.curves {
        let _ = writeln!(out, "- {}", fit_line(c));
    }
    out
}

pub fn to_json(r: &SweepReport) -> String {
    serde_json::to_string_pretty(r).expect("a sweep report serializes")
}

/// One row per backend and worker count; the fit's columns repeat on each of
/// a backend's rows, so that a spreadsheet needs no join.
pub fn to_csv(r: &SweepReport) -> Result<String, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = [
        "host",
        "backend",
        "workers",
        "cores",
        "tasks",
        "numbers_per_task",
        "repeat",
        "wall_s_median",
        "wall_s_min",
        "wall_s_max",
        "speedup_median",
        "speedup_min",
        "speedup_max",
        "efficiency",
        "cpu_percent_median",
        "serial_fraction",
        "serial_fraction_stderr",
        "predicted_speedup_64",
        "predicted_speedup_1024",
        "misfit",
    ];
    w.write_record(header).map_err(|e| e.to_string())?;
    for c in &r.curves {
        let fit = |get: &dyn Fn(&super::Fit) -> f64| {
            c.fit
                .as_ref()
                .map(|f| get(f).to_string())
                .unwrap_or_default()
        };
        for p in &c.points {
            w.write_record([
                r.host.clone(),
                c.backend.to_string(),
                p.workers.to_string(),
                r.cores.to_string(),
                r.tasks.to_string(),
                r.numbers_per_task.to_string(),
                r.repeat.to_string(),
                p.wall_s_median.to_string(),
                p.wall_s_min.to_string(),
                p.wall_s_max.to_string(),
                p.speedup_median.to_string(),
                p.speedup_min.to_string(),
                p.speedup_max.to_string(),
                p.efficiency.to_string(),
                p.cpu_percent_median.to_string(),
                fit(&|f| f.serial_fraction),
                fit(&|f| f.serial_fraction_stderr),
                fit(&|f| f.predicted_64),
                fit(&|f| f.predicted_1024),
                c.fit
                    .as_ref()
                    .and_then(|f| f.misfit.clone())
                    .unwrap_or_default(),
            ])
            .map_err(|e| e.to_string())?;
        }
    }
    let bytes = w.into_inner().map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::amdahl::Fit;
    use crate::measure::sweep::SweepPoint;
    use crate::spec::BackendKind;

    fn report() -> SweepReport {
        let point = |workers: u32, wall: f64| SweepPoint {
            workers,
            wall_s: vec![wall],
            wall_s_median: wall,
            wall_s_min: wall,
            wall_s_max: wall,
            speedup_median: 2.0 / wall,
            speedup_min: 2.0 / wall,
            speedup_max: 2.0 / wall,
            efficiency: 2.0 / wall / f64::from(workers.min(2)),
            cpu_percent_median: 99.0 * f64::from(workers.min(2)),
        };
        SweepReport {
            host: "box".into(),
            cores: 2,
            tasks: 8,
            numbers_per_task: 1000,
            seed: 42,
            repeat: 1,
            curves: vec![SweepCurve {
                backend: BackendKind::Gil,
                points: vec![point(1, 2.0), point(2, 2.1)],
                fit: Some(Fit {
                    serial_fraction: 0.98,
                    serial_fraction_stderr: 0.01,
                    predicted_64: 1.02,
                    predicted_1024: 1.02,
                    relative_rms: 0.01,
                    misfit: Some("slower with more workers".into()),
                }),
            }],
        }
    }

    #[test]
    fn every_format_carries_the_points_and_the_fit() {
        let r = report();
        let csv = to_csv(&r).unwrap();
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let row: Vec<&str> = lines.next().unwrap().split(',').collect();
        let col = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
        assert_eq!(col("backend"), "gil");
        assert_eq!(col("workers"), "1");
        assert_eq!(col("wall_s_median"), "2");
        assert_eq!(col("serial_fraction"), "0.98");
        assert_eq!(col("misfit"), "slower with more workers");
        assert_eq!(lines.count(), 1, "one row per point");

        let md = to_markdown(&r);
        assert!(
            md.contains("| gil | 2 | 2.100 (2.100-2.100) | 0.95x (0.95-0.95) | 0.48 | 198 |"),
            "{md}"
        );
        assert!(
            md.contains("gil: serial fraction s = 0.980 ± 0.010"),
            "{md}"
        );
        assert!(
            md.contains("DOES NOT FIT: slower with more workers"),
            "{md}"
        );
        let table = to_table(&r);
        assert!(table.contains("gil: serial fraction s = 0.980"), "{table}");
        let json: serde_json::Value = serde_json::from_str(&to_json(&r)).unwrap();
        assert_eq!(json["curves"][0]["fit"]["serial_fraction"], 0.98);
        assert_eq!(json["curves"][0]["points"][1]["workers"], 2);
    }
}
