//! A client of `scalelab serve`: submits a run and reads its events back as
//! the engine's own `Event`s, so that a caller handles a remote run exactly as
//! a local one.

use std::io::{BufRead, BufReader, Read};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::machine::{CoreSample, Machine};
use crate::engine::{RunHandle, StartError, Waker};
use crate::report::event::Event;
use crate::report::{RunReport, RunStatus};
use crate::spec::RunSpec;

/// Why a remote call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the spec, naming the field (the CLI's own checks).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("the server refused the token (401)")]
    Unauthorized,
    #[error("{0}")]
    Http(String),
}

/// One server, by URL (`http://HOST:PORT`) and token.
#[derive(Clone)]
pub struct Remote {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Remote {
    /// The URL; never the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.base)
            .finish_non_exhaustive()
    }
}

/// Silence after which a server counts as gone. Its event streams carry a
/// keep-alive every `api::KEEP_ALIVE` (5 s): this is four of them missed, so a
/// server that vanishes without closing its connections (a machine switched
/// off, a cable pulled) ends the run with a reason rather than never.
pub const SILENCE: Duration = Duration::from_secs(20);

/// How long reaching the server may take.
const CONNECT: Duration = Duration::from_secs(10);

impl Remote {
    pub fn new(url: &str, token: &str) -> Self {
        Self::with_silence(url, token, SILENCE)
    }

    fn with_silence(url: &str, token: &str, silence: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            // 4xx answers carry a JSON reason: read it rather than fail blind.
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT))
            // Each read, headers and the event streams' lines alike.
            .timeout_per_read(Some(silence))
            .build()
            .into();
        Self {
            base: url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            agent,
        }
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    fn failure(&self, status: u16, body: &str) -> ClientError {
        if status == 401 {
            return ClientError::Unauthorized;
        }
        let reason = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| body.trim().to_string());
        ClientError::Http(format!("{} answered {status}: {reason}", self.base))
    }

    /// The status and body of a call, or why the server could not be reached.
    fn answered(
        &self,
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, ureq::Body), ClientError> {
        let resp =
            sent.map_err(|e| ClientError::Http(format!("cannot reach {}: {e}", self.base)))?;
        Ok((resp.status().as_u16(), resp.into_body()))
    }

    /// `GET` of `path` (`/api/v1/...`), with the token.
    fn get(&self, path: &str) -> Result<(u16, ureq::Body), ClientError> {
        let url = format!("{}{path}", self.base);
        self.answered(
            self.agent
                .get(&url)
                .header("Authorization", &self.bearer())
                .call(),
        )
    }

    /// A whole body as text.
    fn text(body: &mut ureq::Body) -> Result<String, ClientError> {
        body.read_to_string()
            .map_err(|e| ClientError::Http(e.to_string()))
    }

    /// The server's machine (`GET /api/v1/machine`).
    pub fn machine(&self) -> Result<Machine, ClientError> {
        let (status, mut body) = self.get("/api/v1/machine")?;
        let body = Self::text(&mut body)?;
        if status != 200 {
            return Err(self.failure(status, &body));
        }
        serde_json::from_str(&body)
            .map_err(|e| ClientError::Http(format!("{} is not a scalelab server: {e}", self.base)))
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The token calls carry (to ask the same server again).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Queues `spec` on the server; returns the run's id.
    pub fn submit(&self, spec: &RunSpec) -> Result<u64, ClientError> {
        let url = format!("{}/api/v1/runs", self.base);
        let sent = self
            .agent
            .post(&url)
            .header("Authorization", &self.bearer())
            .send_json(spec);
        let (status, mut body) = self.answered(sent)?;
        let body = Self::text(&mut body)?;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        match status {
            201 => v["id"]
                .as_u64()
                .ok_or_else(|| ClientError::Http(format!("no run id in {body}"))),
            400 if v["field"].is_string() => Err(ClientError::Invalid {
                field: v["field"].as_str().unwrap_or_default().to_string(),
                message: v["error"].as_str().unwrap_or_default().to_string(),
            }),
            _ => Err(self.failure(status, &body)),
        }
    }

    /// The run's events from its first to its last (the report).
    pub fn events(&self, id: u64) -> Result<Events, ClientError> {
        let (status, mut body) = self.get(&format!("/api/v1/runs/{id}/events"))?;
        if status != 200 {
            let text = Self::text(&mut body).unwrap_or_default();
            return Err(self.failure(status, &text));
        }
        Ok(Events {
            lines: BufReader::new(Box::new(body.into_reader())),
        })
    }

    /// The server's per-core utilisation at 10 Hz (`GET /api/v1/cores`), for
    /// as long as the caller reads.
    pub fn cores(&self) -> Result<CoreSamples, ClientError> {
        let (status, mut body) = self.get("/api/v1/cores")?;
        if status != 200 {
            let text = Self::text(&mut body).unwrap_or_default();
            return Err(self.failure(status, &text));
        }
        Ok(CoreSamples {
            lines: BufReader::new(Box::new(body.into_reader())),
        })
    }

    /// Asks the server to cancel a run.
    pub fn cancel(&self, id: u64) -> Result<(), ClientError> {
        let url = format!("{}/api/v1/runs/{id}", self.base);
        let sent = self
            .agent
            .delete(&url)
            .header("Authorization", &self.bearer())
            .call();
        match self.answered(sent)? {
            (202, _) => Ok(()),
            (status, mut body) => {
                let text = Self::text(&mut body).unwrap_or_default();
                Err(self.failure(status, &text))
            }
        }
    }
}

/// A run's event stream (server-sent events, one JSON event per `data:` line).
pub struct Events {
    lines: BufReader<Box<dyn Read + Send>>,
}

/// The next `data:` line of a server-sent event stream; `None` at its end.
fn next_data(lines: &mut impl BufRead) -> Option<Result<String, ClientError>> {
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) => return Some(Err(ClientError::Http(format!("the stream broke: {e}")))),
        }
        if let Some(data) = line.trim_end().strip_prefix("data:") {
            return Some(Ok(data.trim_start().to_string()));
        }
        // keep-alive comments, blank separators
    }
}

/// The server's per-core samples (`Remote::cores`).
pub struct CoreSamples {
    lines: BufReader<Box<dyn Read + Send>>,
}

impl Iterator for CoreSamples {
    type Item = Result<CoreSample, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        let data = match next_data(&mut self.lines)? {
            Ok(d) => d,
            Err(e) => return Some(Err(e)),
        };
        Some(
            serde_json::from_str(&data)
                .map_err(|e| ClientError::Http(format!("not a core sample: {e}: {data}"))),
        )
    }
}

impl Iterator for Events {
    type Item = Result<Event, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        let data = match next_data(&mut self.lines)? {
            Ok(d) => d,
            Err(e) => return Some(Err(e)),
        };
        Some(match serde_json::from_str::<Event>(&data) {
            Ok(e) => Ok(e),
            // The server's own failure to start the run.
            Err(_) => Err(ClientError::Http(
                serde_json::from_str::<serde_json::Value>(&data)
                    .ok()
                    .and_then(|v| v["data"].as_str().map(str::to_string))
                    .unwrap_or_else(|| format!("an event that is not one: {data}")),
            )),
        })
    }
}

/// Runs `spec` on the server as the engine runs one here: the handle's
/// events are the server's, ending with a terminal one even when the server
/// goes away (then a `Failed` report saying so), and cancelling it cancels the
/// run there. Never blocks: the spec is checked here, everything else happens
/// on the handle's thread. `machine` is the server's, for a report it makes up.
pub fn start(
    remote: Remote,
    spec: RunSpec,
    machine: &Machine,
    wake: Option<Waker>,
) -> Result<RunHandle, StartError> {
    spec.validate()?;
    let (host, cores) = (machine.host.clone(), machine.cores);
    let (tx, rx) = crossbeam_channel::unbounded();
    let cancel = Arc::new(AtomicBool::new(false));
    let asked = cancel.clone();
    let thread = std::thread::Builder::new()
        .name("scalelab-remote-run".into())
        .spawn(move || {
            let wake_last = || {
                if let Some(w) = &wake {
                    w(true)
                }
            };
            let fail = |why: String| {
                let report =
                    RunReport::without_results(spec.clone(), RunStatus::Failed, why, &host, cores);
                let _ = tx.send(Event::Failed(Box::new(report)));
                wake_last();
            };
            let id = match remote.submit(&spec) {
                Ok(id) => id,
                Err(e) => return fail(format!("{}: {e}", remote.url())),
            };
            let done = Arc::new(AtomicBool::new(false));
            // Cancelling is a DELETE, sent from a thread of its own: this one
            // blocks reading the stream.
            let canceller = {
                let (remote, done) = (remote.clone(), done.clone());
                std::thread::spawn(move || {
                    while !done.load(Ordering::Relaxed) {
                        if asked.load(Ordering::Relaxed) {
                            let _ = remote.cancel(id);
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                })
            };
            let mut ended = false;
            let mut broke = None;
            match remote.events(id) {
                Ok(events) => {
                    for e in events {
                        match e {
                            Ok(e) => {
                                ended = e.is_terminal();
                                if tx.send(e).is_err() {
                                    break;
                                }
                                if ended {
                                    break;
                                }
                            }
                            Err(e) => {
                                broke = Some(e.to_string());
                                break;
                            }
                        }
                    }
                }
                Err(e) => broke = Some(e.to_string()),
            }
            done.store(true, Ordering::Relaxed);
            let _ = canceller.join();
            if ended {
                wake_last();
            } else {
                let why = broke.unwrap_or_else(|| "the event stream ended early".into());
                fail(format!("lost the server {} mid-run: {why}", remote.url()));
            }
        })
        .map_err(StartError::Spawn)?;
    Ok(RunHandle::from_parts(rx, cancel, thread))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::Instant;

    use super::*;

    /// A "server" that answers the event stream's headers and then says
    /// nothing more while keeping the connection open: a machine gone dark.
    #[test]
    fn a_server_that_falls_silent_mid_stream_ends_the_stream_with_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = [0u8; 4096];
            let _ = conn.read(&mut request).unwrap();
            conn.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                  transfer-encoding: chunked\r\n\r\n",
            )
            .unwrap();
            conn.flush().unwrap();
            // Silent, connection open, until the test is done.
            let _ = stop_rx.recv_timeout(Duration::from_secs(30));
        });
        let remote = Remote::with_silence(&url, "t", Duration::from_millis(300));
        let mut events = remote.events(1).unwrap();
        let t0 = Instant::now();
        let first = events.next();
        let waited = t0.elapsed();
        let _ = stop_tx.send(());
        server.join().unwrap();
        match first {
            Some(Err(ClientError::Http(why))) => assert!(why.contains("broke"), "{why}"),
            other => panic!("expected the stream to break, got {other:?}"),
        }
        // Not the 30 s the server would have kept it open.
        assert!(waited < Duration::from_secs(20), "{waited:?}");
    }
}
