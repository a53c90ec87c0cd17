//! Figures in the docs are generated, never typed: the mutation scores in
//! docs/RELIABILITY.md and BENCHMARKS.md are what `scripts/mutants_report.py`
//! makes of the recorded runs, so an edit by hand, or a record added without
//! regenerating, fails here.

use std::path::Path;
use std::process::Command;

fn block(doc: &str, name: &str) -> String {
    let begin = format!("<!-- {name}:begin -->\n");
    let end = format!("\n<!-- {name}:end -->");
    let from = doc.find(&begin).expect("begin marker") + begin.len();
    let to = doc[from..].find(&end).expect("end marker") + from;
    doc[from..to].to_string()
}

#[test]
fn the_mutation_scores_are_what_the_recorded_runs_give() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(root.join("scripts/mutants_report.py"))
        .arg("block")
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).unwrap();
    let generated = generated.trim_end();
    assert!(generated.contains("| run | commit |"), "{generated}");
    for doc in ["docs/RELIABILITY.md", "BENCHMARKS.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        assert_eq!(
            block(&text, "mutants"),
            generated,
            "{doc}: run scripts/mutants_report.py write"
        );
    }
}
