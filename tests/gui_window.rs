//! The real window, in scripted mode, as a child process: it must run the listed
//! runs, save a screenshot that shows something, and exit 0. Needs an X display:
//! run the tests as `xvfb-run -a cargo test --features heavy`.

use std::collections::HashSet;
use std::process::Command;

#[test]
fn scripted_mode_runs_and_saves_a_real_screenshot() {
    assert!(
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some(),
        "this test opens a real window and needs a display: run the tests as `xvfb-run -a cargo test --features heavy`"
    );
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("compare.png");
    let stats = dir.path().join("frames.json");
    let out = Command::new(env!("CARGO_BIN_EXE_scalelab"))
        .args(["gui", "--run", "threads:2,processes:2", "--tasks", "4"])
        .args(["--numbers", "2000000", "--exit", "--screenshot"])
        .arg(&shot)
        .arg("--frame-stats")
        .arg(&stats)
        .output()
        .expect("the scalelab binary starts");
    assert!(
        out.status.success(),
        "scripted mode failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    let img = image::open(&shot).expect("a PNG was written").to_rgba8();
    let (w, h) = img.dimensions();
    assert!(w >= 900 && h >= 600, "screenshot is {w}×{h}");
    let colours: HashSet<[u8; 4]> = img.pixels().map(|p| p.0).collect();
    assert!(
        colours.len() > 100,
        "the screenshot looks blank: {} distinct colours",
        colours.len()
    );

    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    for key in [
        "frames",
        "frame_interval_ms_p50",
        "frame_interval_ms_p99",
        "build_ms_p50",
        "build_ms_p99",
    ] {
        assert!(stats[key].is_number(), "{key} missing in {stats}");
    }
    assert!(stats["frames"].as_u64().unwrap() > 10, "{stats}");
}

#[test]
fn scripted_mode_refuses_bad_input_before_opening_a_window() {
    let bin = env!("CARGO_BIN_EXE_scalelab");
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["--run", "threads:0"], "workers: must be at least 1"),
        (&["--run", "nosuch:3"], "unknown backend `nosuch`"),
        (
            &[
                "--run",
                "threads:1",
                "--screenshot",
                "/nonexistent-dir/x.png",
            ],
            "folder /nonexistent-dir does not exist",
        ),
        // A folder nobody can write to, not even root: /proc is a read-only file system.
        (
            &["--run", "threads:1", "--screenshot", "/proc/x.png"],
            "cannot write the screenshot to /proc/x.png",
        ),
    ];
    for (args, message) in cases {
        let out = Command::new(bin)
            .arg("gui")
            .args(args)
            .arg("--exit")
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn without_a_display_the_app_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_scalelab"))
        .args(["gui", "--run", "threads:1", "--exit"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("cannot open the window"), "{stderr}");
    assert!(stderr.contains("xvfb-run"), "{stderr}");
}

/// Runs `prog args` and returns its stdout, panicking with its stderr if it fails.
fn output_of(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{prog} runs (apt-get install xdotool x11-utils): {e}"));
    assert!(
        out.status.success(),
        "{prog} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a window list (a taskbar, a window switcher) reads off a window: the
/// icon in `_NET_WM_ICON`, pixel for pixel the 128 px PNG of assets/icons, and
/// the class `scalelab`, which the desktop entry's StartupWMClass names.
#[test]
fn the_real_window_carries_the_apps_icon_and_class_for_window_lists() {
    assert!(
        std::env::var_os("DISPLAY").is_some(),
        "this test reads X properties of a real window: run the tests as `xvfb-run -a cargo test --features heavy`"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_scalelab"))
        .args(["gui", "--run", "threads:1", "--tasks", "1"])
        .args(["--numbers", "100000000000", "--exit"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the scalelab binary starts");
    let pid = child.id().to_string();
    let found = (|| {
        for _ in 0..150 {
            let out = Command::new("xdotool")
                .args(["search", "--pid", &pid, "--name", "^scalelab$"])
                .output()
                .expect("xdotool runs (apt-get install xdotool)");
            let ids = String::from_utf8_lossy(&out.stdout);
            if let Some(id) = ids.lines().next() {
                return Some(id.to_string());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        None
    })();
    let props = found.map(|w| {
        (
            output_of("xprop", &["-id", &w, "WM_CLASS"]),
            output_of(
                "xprop",
                &[
                    "-id",
                    &w,
                    "-notype",
                    "-f",
                    "_NET_WM_ICON",
                    "32c",
                    "_NET_WM_ICON",
                ],
            ),
        )
    });
    let _ = child.kill();
    let _ = child.wait();
    let (class, icon) = props.expect("the window appeared within 15 s");

    assert!(class.contains("\"scalelab\""), "{class}");
    let values: Vec<u32> = icon
        .split_once('=')
        .expect("_NET_WM_ICON is set")
        .1
        .split(',')
        .map(|v| v.trim().parse().unwrap())
        .collect();
    let png = image::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/icons/scalelab-128.png"
    ))
    .unwrap()
    .to_rgba8();
    assert_eq!(&values[..2], &[128, 128], "a 128 x 128 icon");
    let argb: Vec<u32> = png
        .pixels()
        .map(|p| {
            let [r, g, b, a] = p.0.map(u32::from);
            a << 24 | r << 16 | g << 8 | b
        })
        .collect();
    assert_eq!(values.len(), 2 + argb.len());
    assert!(values[2..] == argb[..], "the window's icon is the app's");
    assert!(argb.iter().any(|&p| p >> 24 == 255), "and not blank");
}
