//! A client of `scalelab serve`: submits a run and reads its events back as
//! the engine's own `Event`s, so that a caller handles a remote run exactly as
//! a local one.

use std::io::{BufRead, BufReader, Read};

use crate::report::event::Event;
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
pub struct Remote {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Remote {
    pub fn new(url: &str, token: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            // 4xx answers carry a JSON reason: read it rather than fail blind.
            .http_status_as_error(false)
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

    /// Queues `spec` on the server; returns the run's id.
    pub fn submit(&self, spec: &RunSpec) -> Result<u64, ClientError> {
        let url = format!("{}/api/v1/runs", self.base);
        let mut resp = self
            .agent
            .post(&url)
            .header("Authorization", &self.bearer())
            .send_json(spec)
            .map_err(|e| ClientError::Http(format!("cannot reach {}: {e}", self.base)))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| ClientError::Http(e.to_string()))?;
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
        let url = format!("{}/api/v1/runs/{id}/events", self.base);
        let resp = self
            .agent
            .get(&url)
            .header("Authorization", &self.bearer())
            .call()
            .map_err(|e| ClientError::Http(format!("cannot reach {}: {e}", self.base)))?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        if status != 200 {
            let text = body.read_to_string().unwrap_or_default();
            return Err(self.failure(status, &text));
        }
        Ok(Events {
            lines: BufReader::new(Box::new(body.into_reader())),
        })
    }

    /// Asks the server to cancel a run.
    pub fn cancel(&self, id: u64) -> Result<(), ClientError> {
        let url = format!("{}/api/v1/runs/{id}", self.base);
        let mut resp = self
            .agent
            .delete(&url)
            .header("Authorization", &self.bearer())
            .call()
            .map_err(|e| ClientError::Http(format!("cannot reach {}: {e}", self.base)))?;
        match resp.status().as_u16() {
            202 => Ok(()),
            s => {
                let text = resp.body_mut().read_to_string().unwrap_or_default();
                Err(self.failure(s, &text))
            }
        }
    }
}

/// A run's event stream (server-sent events, one JSON event per `data:` line).
pub struct Events {
    lines: BufReader<Box<dyn Read + Send>>,
}

impl Iterator for Events {
    type Item = Result<Event, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut line = String::new();
        loop {
            line.clear();
            match self.lines.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(ClientError::Http(format!("the stream broke: {e}")))),
            }
            let Some(data) = line.trim_end().strip_prefix("data:") else {
                continue; // keep-alive comments, blank separators
            };
            let data = data.trim_start();
            return Some(match serde_json::from_str::<Event>(data) {
                Ok(e) => Ok(e),
                // The server's own failure to start the run.
                Err(_) => Err(ClientError::Http(
                    serde_json::from_str::<serde_json::Value>(data)
                        .ok()
                        .and_then(|v| v["data"].as_str().map(str::to_string))
                        .unwrap_or_else(|| format!("an event that is not one: {data}")),
                )),
            });
        }
    }
}
