//! `scalelab serve`: the engine as an HTTP service (the chapter's E5, REST
//! outside; a `bus` run adds the message bus inside). Versioned under
//! `/api/v1`, every call behind a bearer token; docs/API.md explains it.
//!
//! axum on a tokio runtime of its own thread; the runs themselves go one at a
//! time on `runs`' runner thread, so that they never measure each other.

mod api;
pub mod bench;
pub mod body;
pub mod client;
pub mod machine;
mod openapi;
pub mod runs;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::backends::context::EngineOptions;

/// Largest request body accepted (a run spec is a few hundred bytes).
pub const MAX_BODY: usize = 64 * 1024;
/// Nice of the thread that answers HTTP, so that serving many clients takes
/// little from the run they watch (BENCHMARKS.md, "serve").
pub const SERVE_NICE: i32 = 10;
/// Where `scalelab serve` listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Every call must carry `Authorization: Bearer TOKEN`.
    pub token: String,
    pub engine: EngineOptions,
    /// Runs the history keeps (`runs::KEPT_RUNS` by default).
    pub history: usize,
}

/// A bound server, not yet serving.
pub struct Server {
    listener: std::net::TcpListener,
    state: Arc<api::State>,
    // The core sampler runs while this is held.
    _cores: Arc<tokio::sync::watch::Sender<machine::CoreSample>>,
}

impl Server {
    /// Binds the listening socket and starts the run queue and the core sampler.
    pub fn bind(opts: ServeOptions) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(opts.listen)?;
        listener.set_nonblocking(true)?;
        let (cores_tx, cores) = machine::sample_cores()?;
        let state = Arc::new(api::State {
            token: opts.token,
            runs: runs::Runs::start(opts.engine, opts.history)?,
            machine: machine::Machine::this(),
            cores,
        });
        Ok(Self {
            listener,
            state,
            _cores: cores_tx,
        })
    }

    /// The address it listens on (the port the system chose for port 0).
    pub fn addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The run queue (for measuring the server from inside).
    pub fn runs(&self) -> Arc<runs::Runs> {
        self.state.runs.clone()
    }

    /// Serves until the process ends (or the listener fails).
    pub fn run(self) -> std::io::Result<()> {
        // The run being measured goes first; the clients wait their turn.
        crate::metrics::clocks::lower_this_thread(SERVE_NICE, false);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            use axum::serve::ListenerExt;
            // An event is a few hundred bytes written after the stream's
            // headers: Nagle's algorithm would hold it for the client's
            // delayed ACK (40 ms), measured as the p99 of event latency.
            let listener = tokio::net::TcpListener::from_std(self.listener)?.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, api::router(self.state)).await
        })
    }
}
