//! The comparison as an aligned table, Markdown, CSV or JSON. Every format is
//! made from the same cells, so they never disagree.

use super::CompareReport;

fn f(v: f64, digits: usize) -> String {
    format!("{v:.digits$}")
}

/// The matrix as a header and rows of cells.
pub fn matrix_cells(r: &CompareReport) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let header = vec![
        "implementation",
        "backend",
        "workload",
        "workers",
        "reps",
        "wall_s_median",
        "wall_s_min",
        "wall_s_max",
        "user_s",
        "sys_s",
        "cpu_percent",
        "speedup_vs_1",
        "efficiency",
        "sums_ok",
    ];
    let rows = r
        .rows
        .iter()
        .map(|x| {
            vec![
                x.implementation.clone(),
                x.backend.clone(),
                x.workload.to_string(),
                x.workers.to_string(),
                x.reps.to_string(),
                f(x.wall_s_median, 4),
                f(x.wall_s_min, 4),
                f(x.wall_s_max, 4),
                f(x.user_s_median, 3),
                f(x.sys_s_median, 3),
                f(x.cpu_percent_median, 0),
                x.speedup_vs_1_worker.map_or("-".into(), |s| f(s, 2)),
                f(x.efficiency, 2),
                x.sums_ok.to_string(),
            ]
        })
        .collect();
    (header, rows)
}

/// The experiments as a header and rows of cells.
pub fn experiment_cells(r: &CompareReport) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let header = vec![
        "experiment",
        "claim",
        "scalelab",
        "cpython",
        "scalelab_wall_s",
        "cpython_wall_s",
        "scalelab_x_faster",
    ];
    let rows = r
        .experiments
        .iter()
        .map(|e| {
            vec![
                e.id.clone(),
                e.claim.clone(),
                e.scalelab.clone(),
                e.cpython.clone(),
                f(e.scalelab_wall_s, 4),
                f(e.cpython_wall_s, 4),
                f(e.scalelab_speedup_over_cpython, 1),
            ]
        })
        .collect();
    (header, rows)
}

fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for r in rows {
        s += &format!("| {} |\n", r.join(" | "));
    }
    s
}

fn aligned_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
            + "\n"
    };
    let mut s = line(header.to_vec());
    for r in rows {
        s += &line(r.iter().map(String::as_str).collect());
    }
    s
}

fn summary_lines(r: &CompareReport, md: bool) -> String {
    let bullet = if md { "- " } else { "  " };
    let mut s = String::new();
    s += &format!(
        "{}cores: {}, tasks: {}, numbers per task: {}, io: {} requests x {} ms, repetitions: {}, CPython: {}\n",
        bullet,
        r.cores,
        r.tasks,
        r.numbers_per_task,
        r.io_requests,
        r.io_latency_ms,
        r.repeat,
        r.python.as_deref().unwrap_or("not used")
    );
    for n in &r.notes {
        s += &format!("{bullet}note: {n}\n");
    }
    s
}

fn checks_and_limits(r: &CompareReport, md: bool) -> String {
    let bullet = if md { "- " } else { "  " };
    let mut s = String::new();
    if !r.checks.is_empty() {
        s += if md {
            "\n### The claims, checked\n\n"
        } else {
            "\nThe claims, checked:\n"
        };
        for c in &r.checks {
            s += &format!(
                "{bullet}{}: {} ({})\n",
                c.claim,
                if c.holds { "holds" } else { "DOES NOT HOLD" },
                c.measured
            );
        }
    }
    if let Some(l) = &r.limits {
        s += if md {
            "\n### The limits\n\n"
        } else {
            "\nThe limits:\n"
        };
        s += &format!(
            "{bullet}kernel {:.3} ns/number, bare generator loop {:.3} ns/number, estimated hardware ceiling {:.3} ns/number ({} cycle/number at {:.0} MHz)\n",
            l.kernel_ns_per_number,
            l.bare_loop_ns_per_number,
            l.ceiling_ns_per_number,
            super::limits::CEILING_CYCLES_PER_NUMBER,
            l.cpu_mhz
        );
        for b in &l.backends {
            s += &format!(
                "{bullet}{}: start {:.3} ms per worker, cancel {:.1} ms median, {:.1} ms worst of 5\n",
                b.backend, b.start_ms_per_worker, b.cancel_ms_median, b.cancel_ms_max
            );
        }
    }
    s
}

/// The human-readable table (the default output).
pub fn to_table(r: &CompareReport) -> String {
    let (h, rows) = matrix_cells(r);
    let (eh, erows) = experiment_cells(r);
    let mut s = summary_lines(r, false);
    s += "\n";
    s += &aligned_table(&h, &rows);
    if !erows.is_empty() {
        s += "\n";
        s += &aligned_table(&eh, &erows);
    }
    s + &checks_and_limits(r, false)
}

/// Markdown: the matrix, the experiments, the checks and the limits.
pub fn to_markdown(r: &CompareReport) -> String {
    let (h, rows) = matrix_cells(r);
    let (eh, erows) = experiment_cells(r);
    let mut s = summary_lines(r, true);
    s += "\n### The matrix (medians of the repetitions)\n\n";
    s += &markdown_table(&h, &rows);
    if !erows.is_empty() {
        s += "\n### The chapter's experiments, scalelab next to CPython\n\n";
        s += &markdown_table(&eh, &erows);
    }
    s + &checks_and_limits(r, true)
}

/// CSV: one line per matrix cell.
pub fn to_csv(r: &CompareReport) -> Result<String, String> {
    let (h, rows) = matrix_cells(r);
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&h).map_err(|e| e.to_string())?;
    for row in rows {
        w.write_record(&row).map_err(|e| e.to_string())?;
    }
    String::from_utf8(w.into_inner().map_err(|e| e.to_string())?).map_err(|e| e.to_string())
}

pub fn to_json(r: &CompareReport) -> String {
    serde_json::to_string_pretty(r).expect("reports always serialize")
}
