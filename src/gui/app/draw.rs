//! Drawing the window: the top bar, the status bar, the form, the live run and
//! the history. It reads the app's state and returns commands; it changes nothing.

use super::*;

impl ScalelabApp {
    pub(super) fn draw(&mut self, ui: &mut Ui) -> Vec<Command> {
        let mut out = Vec::new();
        // Panels paint no background of their own: the frame is cleared to the panel
        // colour (see `clear_color`), which costs a software renderer nothing, where
        // filling the whole window again would shade every pixel once more per frame.
        let bare = egui::Frame::side_top_panel(ui.style()).fill(Color32::TRANSPARENT);
        egui::Panel::top("top_bar").frame(bare).show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading(RichText::new("scalelab").strong());
                ui.label(RichText::new("how concurrency architectures scale").weak());

                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    let compare = ui
                        .add_enabled(
                            !self.is_running() && !self.is_sweeping() && self.attached.is_none(),
                            egui::Button::new(if self.is_comparing() {
                                "Comparing…"
                            } else {
                                "Compare with CPython…"
                            }),
                        )
                        .on_hover_text(
                            "The chapter's experiments on every backend and in real CPython, \
                             side by side, at the chapter's 8 tasks × 1,000,000 numbers whatever \
                             the form says (a minute or two, with progress; it can be cancelled)",
                        )
                        .on_disabled_hover_text(if self.attached.is_some() {
                            "CPython runs on this machine, not on the server: choose \
                             \"this machine\" (Machine, at the top) to compare"
                        } else {
                            "Something is measuring: wait for it to end"
                        });
                    if compare.clicked() {
                        out.push(if self.is_comparing() {
                            Command::ShowCompare(true)
                        } else {
                            Command::StartCompare(
                                compare_view::CHAPTER_TASKS,
                                compare_view::CHAPTER_NUMBERS,
                            )
                        });
                    }
                    if ui
                        .add_enabled(
                            !self.is_running() && !self.is_comparing(),
                            egui::Button::new(if self.is_sweeping() {
                                "Sweeping…"
                            } else {
                                "Scaling curves…"
                            }),
                        )
                        .on_hover_text(
                            "Sweep the worker count for several backends: speed-up against the \
                             ideal, efficiency, and Amdahl's law fitted to each",
                        )
                        .clicked()
                    {
                        out.push(Command::ShowSweep(true));
                    }
                    ui.separator();
                    if ui
                        .button("Save screenshot")
                        .on_hover_text("Write a PNG of the window into the export folder")
                        .clicked()
                    {
                        out.push(Command::Screenshot(self.export_path("png")));
                    }
                    ui.separator();
                    for t in ThemeChoice::ALL.iter().rev() {
                        if ui
                            .selectable_label(self.state.theme == *t, t.label())
                            .clicked()
                        {
                            out.push(Command::SetTheme(*t));
                        }
                    }
                    ui.label("Theme");
                });
            });
            // Where runs go: a row of its own, so that it never runs under the buttons.
            ui.horizontal(|ui| {
                let busy = self.is_running() || self.is_comparing() || self.is_sweeping();
                out.extend(super::super::machine::machine_bar(
                    ui,
                    &mut self.machine,
                    self.attached.as_ref(),
                    busy,
                    // While a run goes, its own chart shows the server's cores.
                    self.server_cores
                        .as_ref()
                        .filter(|_| !busy)
                        .map(super::super::machine::CoreWatch::seen),
                ));
            });
        });
        egui::Panel::bottom("status_bar")
            .frame(bare)
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    if let Some(n) = &self.notice {
                        let color = if n.is_error {
                            ui.visuals().error_fg_color
                        } else {
                            ui.visuals().text_color()
                        };
                        ui.label(RichText::new(&n.text).color(color));
                    }
                    if self.retry.is_some() && self.attached.is_some() {
                        let asking = self.machine.probing;
                        if ui
                            .add_enabled(!asking && !self.is_running(), egui::Button::new("Retry"))
                            .on_hover_text(
                                "Ask the server again and, once it answers, run the same spec there",
                            )
                            .clicked()
                        {
                            out.push(Command::Retry);
                        }
                    }
                    ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                        ui.label(
                            RichText::new(self.frames.meter_text())
                                .small()
                                .color(Color32::GRAY),
                        )
                        .on_hover_text(
                            "Time spent building each frame, and frame rate while a run is live.",
                        );
                        if let Some(live) = &self.live
                            && live.is_live()
                            && let Some(p) = live.recent_observer_percent(2.0)
                        {
                            ui.separator();
                            ui.label(
                                RichText::new(format!("this window: {p:.1} % of a core"))
                                    .small()
                                    .color(Color32::GRAY),
                            )
                            .on_hover_text(
                                "CPU this app used over the last 2 s outside the run: its UI \
                             thread and its renderer's threads. The workers did not get it.",
                            );
                        }
                    });
                });
            });
        egui::Panel::left("controls")
            .frame(bare)
            .default_size(300.0)
            .min_size(260.0)
            .show(ui, |ui| {
                let cx = PanelContext {
                    cores: self.run_cores(),
                    host: self.attached.as_ref().map(|a| a.machine.host.clone()),
                    calibration: self.calibration,
                    // A comparison or a sweep measures too: runs would disturb it.
                    running: self.is_running() || self.is_comparing() || self.is_sweeping(),
                };
                egui::ScrollArea::vertical().show(ui, |ui| {
                    out.extend(controls::show(ui, &mut self.state.form, &cx));
                });
            });
        let history_h = (ui.available_height() * 0.40).max(220.0);
        egui::Panel::bottom("history")
            .frame(bare)
            .resizable(true)
            .default_size(history_h)
            .min_size(160.0)
            .show(ui, |ui| {
                ui.add_space(4.0);
                let shown = self.live.as_ref().and_then(|l| l.history_id);
                out.extend(history::show(
                    ui,
                    &self.state.history,
                    &mut self.state.export_dir,
                    shown,
                ));
            });
        let busy = self.calibration.map(|c| c.busy_run(controls::BUSY_SECONDS));
        let central = egui::Frame::central_panel(ui.style()).fill(Color32::TRANSPARENT);
        egui::CentralPanel::default().frame(central).show(ui, |ui| {
            out.extend(live::show(
                ui,
                self.live.as_mut(),
                &mut self.state.live_options,
                busy,
            ));
        });
        if self.compare_open
            && let Some(job) = &self.compare
        {
            match compare_view::window(ui.ctx(), job) {
                compare_view::Action::Close => out.push(Command::ShowCompare(false)),
                compare_view::Action::Cancel => out.push(Command::CancelCompare),
                compare_view::Action::None => {}
            }
        }
        if self.sweep_open
            && let Some(form) = &mut self.sweep_form
        {
            let busy =
                self.run.is_some() || self.compare.as_ref().is_some_and(CompareJob::is_running);
            out.extend(sweep_view::window(
                ui.ctx(),
                form,
                self.sweep.as_ref(),
                busy,
            ));
        }
        out
    }
}
