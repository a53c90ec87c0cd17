//! "Save screenshot": a short settle countdown, eframe's screenshot request, and
//! the PNG encoded and written off the UI thread.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, unbounded};
use egui::{ColorImage, Context};

use super::command::{Command, CommandSender};

/// Frames to wait so that the click that asked for the screenshot has been drawn away.
const SETTLE_FRAMES: u32 = 3;
/// How long to wait for the window to hand over its pixels.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

enum Stage {
    Settle(u32),
    Requested(Instant),
    Saving,
}

/// Takes one screenshot at a time.
pub struct Screenshotter {
    pending: Option<(PathBuf, Stage)>,
    images: (Sender<Arc<ColorImage>>, Receiver<Arc<ColorImage>>),
}

impl Default for Screenshotter {
    fn default() -> Self {
        Self {
            pending: None,
            images: unbounded(),
        }
    }
}

impl Screenshotter {
    /// Starts taking a screenshot into `path`; refused while one is under way.
    pub fn request(&mut self, path: PathBuf) -> Result<(), String> {
        if self.pending.is_some() {
            return Err("a screenshot is already being saved".into());
        }
        self.pending = Some((path, Stage::Settle(SETTLE_FRAMES)));
        Ok(())
    }

    /// Advances the screenshot once a frame. The PNG is written on a thread of
    /// its own, which sends `Command::ScreenshotSaved` through `back`; returns
    /// an error here only when the window never delivered its pixels.
    pub fn update(
        &mut self,
        ctx: &Context,
        back: &CommandSender,
    ) -> Option<Result<PathBuf, String>> {
        let (path, stage) = self.pending.as_mut()?;
        match stage {
            Stage::Settle(0) => {
                let (tx, repaint) = (self.images.0.clone(), ctx.clone());
                ctx.request_screenshot(move |img| {
                    let _ = tx.send(img);
                    repaint.request_repaint();
                });
                *stage = Stage::Requested(Instant::now());
            }
            Stage::Settle(n) => {
                *n -= 1;
                ctx.request_repaint();
            }
            Stage::Requested(since) => {
                if let Ok(img) = self.images.1.try_recv() {
                    let (back, path) = (back.clone(), path.clone());
                    std::thread::spawn(move || {
                        back.send(Command::ScreenshotSaved(
                            write_png(&img, &path).map(|()| path),
                        ));
                    });
                    *stage = Stage::Saving;
                } else if since.elapsed() > DELIVERY_TIMEOUT {
                    self.pending = None;
                    return Some(Err("the window did not deliver a screenshot".into()));
                } else {
                    ctx.request_repaint_after(Duration::from_millis(50));
                }
            }
            Stage::Saving => {}
        }
        None
    }

    /// The PNG writer is done (its `Command::ScreenshotSaved` arrived): ready for the next.
    pub fn saved(&mut self) {
        self.pending = None;
    }
}

/// Encodes the window's pixels as PNG.
pub fn write_png(img: &ColorImage, path: &std::path::Path) -> Result<(), String> {
    let [w, h] = img.size;
    let bytes: Vec<u8> = img.pixels.iter().flat_map(|c| c.to_array()).collect();
    let buf = image::RgbaImage::from_raw(w as u32, h as u32, bytes)
        .ok_or_else(|| "the screenshot has the wrong number of pixels".to_string())?;
    buf.save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use egui::Color32;

    #[test]
    fn png_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shot.png");
        let mut img = ColorImage::filled([4, 3], Color32::from_rgb(10, 20, 30));
        img.pixels[5] = Color32::RED;
        write_png(&img, &path).unwrap();
        let back = image::open(&path).unwrap().to_rgba8();
        assert_eq!(back.dimensions(), (4, 3));
        assert_eq!(back.get_pixel(1, 1).0, [255, 0, 0, 255]);
        let err = write_png(&img, &dir.path().join("no/such/dir.png")).unwrap_err();
        assert!(err.contains("cannot write"), "{err}");
    }
}
