//! History export: CSV, JSON and a Markdown table, the three formats hyperfine
//! users expect. Engine-side: no UI here, so the CLI could offer it too.

use serde::Serialize;

use super::{RunReport, RunStatus};

/// One run of a history, with the speed-up computed against the chosen baseline.
#[derive(Debug, Clone, Copy)]
pub struct ExportRow<'a> {
    /// The run's number in the history.
    pub id: u64,
    pub report: &'a RunReport,
    /// `None` when there is no baseline or either run did not complete.
    pub speedup: Option<f64>,
}

/// Speed-up of `run` over `baseline`: throughput over the baseline's throughput,
/// which is baseline wall / wall when both did the same work. Only completed runs compare.
pub fn speedup(baseline: &RunReport, run: &RunReport) -> Option<f64> {
    let ok = |r: &RunReport| r.status == RunStatus::Ok && r.wall_s > 0.0;
    (ok(baseline) && ok(run)).then(|| run.throughput() / baseline.throughput())
}

/// The flat record written per run (CSV columns and JSON fields alike).
#[derive(Debug, Serialize)]
struct Record<'a> {
    id: u64,
    /// The machine that ran it (a server's, for a run sent to `scalelab serve`).
    host: &'a str,
    backend: &'static str,
    workload: &'static str,
    workers: u32,
    tasks: u32,
    numbers_per_task: u64,
    seed: u64,
    status: &'static str,
    wall_s: f64,
    user_s: f64,
    sys_s: f64,
    cpu_percent: f64,
    app_cpu_percent: f64,
    cores: usize,
    efficiency: f64,
    speedup: Option<f64>,
    numbers_per_s: f64,
    total: u64,
    reason: Option<&'a str>,
}

fn record<'a>(row: &ExportRow<'a>) -> Record<'a> {
    let r = row.report;
    Record {
        id: row.id,
        host: &r.host,
        backend: r.spec.backend.name(),
        workload: r.spec.workload.name(),
        workers: r.spec.workers,
        tasks: r.spec.tasks,
        numbers_per_task: r.spec.numbers_per_task,
        seed: r.spec.seed,
        status: r.status.name(),
        wall_s: r.wall_s,
        user_s: r.user_s,
        sys_s: r.sys_s,
        cpu_percent: r.cpu_percent,
        app_cpu_percent: r.observer_cpu_percent,
        cores: r.cores,
        efficiency: r.efficiency(),
        speedup: row.speedup,
        numbers_per_s: if r.status == RunStatus::Ok {
            r.throughput()
        } else {
            0.0
        },
        total: r.total,
        reason: r.reason.as_deref(),
    }
}

/// CSV with a header row; empty cells where a value does not apply.
pub fn to_csv(rows: &[ExportRow<'_>]) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    if rows.is_empty() {
        // Serialize writes the header with the first record; an empty history still gets one.
        w.write_record(HEADER)?;
    }
    for row in rows {
        w.serialize(record(row))?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8(bytes).expect("csv of UTF-8 fields is UTF-8"))
}

const HEADER: [&str; 20] = [
    "id",
    "host",
    "backend",
    "workload",
    "workers",
    "tasks",
    "numbers_per_task",
    "seed",
    "status",
    "wall_s",
    "user_s",
    "sys_s",
    "cpu_percent",
    "app_cpu_percent",
    "cores",
    "efficiency",
    "speedup",
    "numbers_per_s",
    "total",
    "reason",
];

/// A JSON object `{ "runs": [...] }`, one object per run.
pub fn to_json(rows: &[ExportRow<'_>]) -> String {
    #[derive(Serialize)]
    struct Doc<'a> {
        runs: Vec<Record<'a>>,
    }
    let doc = Doc {
        runs: rows.iter().map(record).collect(),
    };
    serde_json::to_string_pretty(&doc).expect("records always serialize")
}

/// A Markdown table, as hyperfine's `--export-markdown` gives.
pub fn to_markdown(rows: &[ExportRow<'_>]) -> String {
    let mut out = String::from(
        "| # | host | backend | workers | tasks × numbers | wall [s] | user [s] | sys [s] | CPU [%] | app CPU [%] | speed-up | efficiency | status |\n\
         |--:|:--|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|:--|\n",
    );
    for row in rows {
        let r = row.report;
        let speedup = row.speedup.map_or("–".to_string(), |s| format!("{s:.2}×"));
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} × {} | {:.3} | {:.3} | {:.3} | {:.0} | {:.1} | {} | {:.0} % | {} |\n",
            row.id,
            r.host,
            r.spec.backend,
            r.spec.workers,
            r.spec.tasks,
            group_thousands(r.spec.numbers_per_task),
            r.wall_s,
            r.user_s,
            r.sys_s,
            r.cpu_percent,
            r.observer_cpu_percent,
            speedup,
            100.0 * r.efficiency(),
            r.status.name(),
        ));
    }
    out
}

/// `1000000` as `1,000,000`.
pub fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{BackendKind, RunSpec};

    fn report(backend: BackendKind, wall_s: f64, status: RunStatus) -> RunReport {
        RunReport {
            spec: RunSpec {
                backend,
                ..RunSpec::default()
            },
            status,
            reason: (status != RunStatus::Ok).then(|| "cancelled by the user".into()),
            sums: vec![Some(1); 8],
            total: 8,
            wall_s,
            user_s: 1.5,
            sys_s: 0.25,
            cpu_percent: 175.0,
            observer_cpu_percent: 4.0,
            cores: 2,
            host: "box".into(),
            workers_lost: 0,
            task_timeline: vec![],
            cpu_timeline: vec![],
            io: None,
            gil: None,
            verification: None,
        }
    }

    #[test]
    fn speedup_is_a_throughput_ratio_of_completed_runs() {
        let base = report(BackendKind::Threads, 2.0, RunStatus::Ok);
        let fast = report(BackendKind::Processes, 0.5, RunStatus::Ok);
        assert!((speedup(&base, &fast).unwrap() - 4.0).abs() < 1e-9);
        let cancelled = report(BackendKind::Processes, 0.5, RunStatus::Cancelled);
        assert_eq!(speedup(&base, &cancelled), None);
        // A run with no wall time has no throughput to compare, either side.
        let instant = report(BackendKind::Processes, 0.0, RunStatus::Ok);
        assert_eq!(speedup(&base, &instant), None);
        assert_eq!(speedup(&instant, &fast), None);
    }

    #[test]
    fn csv_has_a_header_and_one_line_per_run() {
        let a = report(BackendKind::Threads, 2.0, RunStatus::Ok);
        let b = report(BackendKind::Processes, 1.0, RunStatus::Cancelled);
        let rows = [
            ExportRow {
                id: 1,
                report: &a,
                speedup: Some(1.0),
            },
            ExportRow {
                id: 2,
                report: &b,
                speedup: None,
            },
        ];
        let csv = to_csv(&rows).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3, "{csv}");
        // The columns, typed out here: a column dropped or renamed in the code shows.
        let columns = "id,host,backend,workload,workers,tasks,numbers_per_task,seed,status,\
                       wall_s,user_s,sys_s,cpu_percent,app_cpu_percent,cores,efficiency,\
                       speedup,numbers_per_s,total,reason";
        assert_eq!(lines[0], columns);
        assert_eq!(to_csv(&[]).unwrap().trim(), columns);
        // Every cell of the first run, by column name: a swapped or wrong value shows.
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let header = reader.headers().unwrap().clone();
        let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let cell = |row: usize, name: &str| -> String {
            let i = header.iter().position(|h| h == name).unwrap();
            records[row][i].to_string()
        };
        let expected = [
            ("id", "1"),
            ("host", "box"),
            ("backend", "threads"),
            ("workload", "cpu"),
            ("workers", "8"),
            ("tasks", "8"),
            ("numbers_per_task", "1000000"),
            ("seed", "42"),
            ("status", "ok"),
            ("wall_s", "2.0"),
            ("user_s", "1.5"),
            ("sys_s", "0.25"),
            ("cpu_percent", "175.0"),
            ("app_cpu_percent", "4.0"),
            ("cores", "2"),
            ("efficiency", "0.875"),
            ("speedup", "1.0"),
            ("numbers_per_s", "4000000.0"),
            ("total", "8"),
            ("reason", ""),
        ];
        for (name, value) in expected {
            assert_eq!(cell(0, name), value, "column {name}");
        }
        // A run that did not complete: no speed-up, no throughput, its reason.
        assert_eq!(cell(1, "status"), "cancelled");
        assert_eq!(cell(1, "speedup"), "");
        assert_eq!(cell(1, "numbers_per_s"), "0.0");
        assert_eq!(cell(1, "reason"), "cancelled by the user");
    }

    #[test]
    fn json_and_markdown_carry_every_run() {
        let a = report(BackendKind::Threads, 2.0, RunStatus::Ok);
        let rows = [ExportRow {
            id: 7,
            report: &a,
            speedup: Some(1.0),
        }];
        let v: serde_json::Value = serde_json::from_str(&to_json(&rows)).unwrap();
        let run = &v["runs"][0];
        for (key, value) in [
            ("id", serde_json::json!(7)),
            ("host", serde_json::json!("box")),
            ("backend", serde_json::json!("threads")),
            ("wall_s", serde_json::json!(2.0)),
            ("user_s", serde_json::json!(1.5)),
            ("sys_s", serde_json::json!(0.25)),
            ("cpu_percent", serde_json::json!(175.0)),
            ("app_cpu_percent", serde_json::json!(4.0)),
            ("efficiency", serde_json::json!(0.875)),
            ("speedup", serde_json::json!(1.0)),
            ("numbers_per_s", serde_json::json!(4_000_000.0)),
        ] {
            assert_eq!(run[key], value, "{key} in {run}");
        }
        assert_eq!(run.as_object().unwrap().len(), 20, "{run}");
        let md = to_markdown(&rows);
        assert_eq!(md.lines().count(), 3);
        assert!(
            md.contains("| 7 | box | threads | 8 | 8 × 1,000,000 | 2.000 | 1.500 | 0.250 | 175 | 4.0 | 1.00× | 88 % | ok |"),
            "{md}"
        );
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(1_000_000), "1,000,000");
    }
}
