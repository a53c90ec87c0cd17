//! What a desktop needs to show scalelab as an app: the icon at the hicolor
//! sizes, the one the window sets, and a valid desktop entry.

use std::path::Path;

fn asset(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets").join(p)
}

#[test]
fn the_icon_exists_at_every_hicolor_size() {
    for size in [16u32, 24, 32, 48, 64, 128, 256, 512] {
        let img = image::open(asset(&format!("icons/scalelab-{size}.png")))
            .unwrap_or_else(|e| panic!("{size} px: {e}"))
            .to_rgba8();
        assert_eq!(img.dimensions(), (size, size));
        // Drawn, not blank: opaque pixels in the middle, transparent corners.
        assert_eq!(img.get_pixel(size / 2, size / 2)[3], 255, "{size} px");
        assert_eq!(img.get_pixel(0, 0)[3], 0, "{size} px: rounded corners");
    }
    let svg = std::fs::read_to_string(asset("scalelab.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("viewBox=\"0 0 256 256\""));
}

#[test]
fn the_window_sets_the_icon() {
    let icon = scalelab::gui::app_icon();
    assert_eq!((icon.width, icon.height), (128, 128));
    assert_eq!(icon.rgba.len(), 128 * 128 * 4);
}

#[test]
fn the_desktop_entry_launches_scalelab_from_the_menu() {
    let entry = std::fs::read_to_string(asset("scalelab.desktop")).unwrap();
    let lines: Vec<&str> = entry.lines().collect();
    assert_eq!(lines[0], "[Desktop Entry]");
    for want in [
        "Type=Application",
        "Name=scalelab",
        "Exec=scalelab",
        "Icon=scalelab",
        "Categories=Development;Education;",
        "StartupWMClass=scalelab",
    ] {
        assert!(lines.contains(&want), "missing {want}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Comment=") && l.len() > 20)
    );
}

/// desktop-file-validate, from Debian's desktop-file-utils (.ci/run installs it).
#[test]
#[cfg_attr(
    not(feature = "heavy"),
    ignore = "heavy tier: needs desktop-file-validate (cargo test --features heavy)"
)]
fn the_desktop_entry_passes_desktop_file_validate() {
    let out = std::process::Command::new("desktop-file-validate")
        .arg(asset("scalelab.desktop"))
        .output()
        .expect("desktop-file-validate (apt-get install desktop-file-utils)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("error:"), "{text}");
}

#[test]
fn readme_changelog_and_binary_carry_one_version() {
    let v = env!("CARGO_PKG_VERSION");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("scalelab {v}")),
        "README names version {v}"
    );
    let changelog = std::fs::read_to_string(root.join("CHANGELOG.md")).unwrap();
    let first = changelog.lines().find(|l| l.starts_with("## ")).unwrap();
    assert!(first.starts_with(&format!("## {v}")), "{first}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scalelab"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("scalelab {v}")
    );
}
