//! The latency service the I/O workload talks to: answers each request after
//! a fixed delay with a payload derived from (seed, task, request). It binds
//! 127.0.0.1 on an ephemeral port, or for a bus exposed on purpose the bus's
//! own address, and then asks every connection for the run's token first
//! (docs/PROTOCOL.md). It lives exactly as long as its value.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::workload::io::{
    REQUEST_LEN, TOKEN_ACCEPTED, decode_request, encode_answer, payload, same_token,
};

/// A running latency service; dropping it shuts it down and closes every connection.
pub struct LatencyServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LatencyServer {
    /// Starts the service for a run seeded `seed`, answering after `latency`,
    /// on loopback, with no token asked.
    pub fn start(seed: u64, latency: Duration) -> io::Result<Self> {
        Self::start_at(IpAddr::V4(Ipv4Addr::LOCALHOST), seed, latency, None)
    }

    /// The same on `ip` (port chosen by the system); with a `token`, each
    /// connection must present it before its first request.
    pub fn start_at(
        ip: IpAddr,
        seed: u64,
        latency: Duration,
        token: Option<String>,
    ) -> io::Result<Self> {
        let std_listener = std::net::TcpListener::bind((ip, 0))?;
        let token: Option<Arc<str>> = token.map(Into::into);
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (tx, rx) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("scalelab-latency".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(std_listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = rx => {}
                        _ = accept_loop(listener, seed, latency, token) => {}
                    }
                });
                // Dropping the runtime drops every connection task.
            })?;
        Ok(Self {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// Where the service listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for LatencyServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, seed: u64, latency: Duration, token: Option<Arc<str>>) {
    loop {
        if let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, seed, latency, token.clone()));
        }
    }
}

/// Reads a connection's token (u16 little-endian length, then its bytes) and
/// answers `TOKEN_ACCEPTED` when it is the run's; false closes the connection.
async fn admitted(stream: &mut TcpStream, token: &str) -> bool {
    let check = async {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.ok()?;
        let len = u16::from_le_bytes(len) as usize;
        if len > crate::workload::io::MAX_TOKEN_LEN {
            return None;
        }
        let mut given = vec![0u8; len];
        stream.read_exact(&mut given).await.ok()?;
        let given = String::from_utf8(given).ok()?;
        same_token(&given, token).then_some(())
    };
    // A peer that says nothing is not held on to.
    match tokio::time::timeout(Duration::from_secs(10), check).await {
        Ok(Some(())) => stream.write_all(&[TOKEN_ACCEPTED]).await.is_ok(),
        _ => false,
    }
}

/// Answers a connection's requests one after another until it closes.
async fn serve(mut stream: TcpStream, seed: u64, latency: Duration, token: Option<Arc<str>>) {
    let _ = stream.set_nodelay(true);
    if let Some(token) = token
        && !admitted(&mut stream, &token).await
    {
        return;
    }
    let mut req = [0u8; REQUEST_LEN];
    while stream.read_exact(&mut req).await.is_ok() {
        let (task, request) = decode_request(&req);
        tokio::time::sleep(latency).await;
        if stream
            .write_all(&encode_answer(payload(seed, task, request)))
            .await
            .is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::io::IoClient;
    use std::time::Instant;

    #[test]
    fn answers_after_the_latency_with_the_payload_and_binds_loopback() {
        let server = LatencyServer::start(9, Duration::from_millis(30)).unwrap();
        assert!(server.addr().ip().is_loopback());
        let mut c = IoClient::connect(server.addr()).unwrap();
        let t = Instant::now();
        let p = c.request(4, 2, Duration::from_secs(5), &|| false).unwrap();
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert_eq!(p, payload(9, 4, 2));
    }

    #[test]
    fn concurrent_requests_overlap() {
        let server = LatencyServer::start(1, Duration::from_millis(500)).unwrap();
        let addr = server.addr();
        let t = Instant::now();
        let hs: Vec<_> = (0..8)
            .map(|i| {
                std::thread::spawn(move || {
                    let mut c = IoClient::connect(addr).unwrap();
                    c.request(i, 0, Duration::from_secs(5), &|| false).unwrap()
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        // Eight 500 ms requests in parallel (about 0.5 s), not one after
        // another (4 s): the bound sits halfway, far from a busy machine's noise.
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }

    #[test]
    fn with_a_token_only_a_connection_that_presents_it_is_served() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let server =
            LatencyServer::start_at(ip, 9, Duration::from_millis(1), Some("s3cret".into()))
                .unwrap();
        let mut ok = IoClient::connect_with(server.addr(), Some("s3cret")).unwrap();
        let p = ok.request(4, 2, Duration::from_secs(5), &|| false).unwrap();
        assert_eq!(p, payload(9, 4, 2));
        for wrong in ["s3cres", "s3cre", ""] {
            let e = IoClient::connect_with(server.addr(), Some(wrong))
                .err()
                .unwrap();
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{wrong:?}");
        }
        // A client that sends no token gets no answer: its request is read as
        // a token, refused, and the connection closed.
        let mut bare = IoClient::connect(server.addr()).unwrap();
        assert!(
            bare.request(4, 2, Duration::from_secs(5), &|| false)
                .is_err()
        );
    }

    #[test]
    fn dropping_the_server_ends_it_and_its_connections() {
        let server = LatencyServer::start(1, Duration::from_millis(10)).unwrap();
        let addr = server.addr();
        let mut c = IoClient::connect(addr).unwrap();
        drop(server);
        assert!(c.request(0, 0, Duration::from_secs(2), &|| false).is_err());
        assert!(std::net::TcpStream::connect(addr).is_err());
    }
}
