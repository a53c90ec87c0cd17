//! The I/O-bound workload: each task makes R requests to the local latency
//! service, which answers each after L ms with a payload derived from
//! (seed, task, request). The task's result is the sum of its payloads, so it
//! is as verifiable as a CPU sum. The `mixed` workload draws a slice of its
//! CPU numbers before each request.
//!
//! Protocol (binary, over TCP): the client sends 16 bytes, the task index and
//! the request index as little-endian u64; the service answers 8 bytes, the
//! payload as a little-endian u64.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::cpu::{mix64, task_seed};

/// Bytes of a request: the task index, then the request index.
pub const REQUEST_LEN: usize = 16;

/// A request as it goes on the wire (little-endian u64s).
pub fn encode_request(task: u64, request: u64) -> [u8; REQUEST_LEN] {
    let mut msg = [0u8; REQUEST_LEN];
    msg[..8].copy_from_slice(&task.to_le_bytes());
    msg[8..].copy_from_slice(&request.to_le_bytes());
    msg
}

/// (task, request) from a request's bytes.
pub fn decode_request(msg: &[u8; REQUEST_LEN]) -> (u64, u64) {
    let [
        t0,
        t1,
        t2,
        t3,
        t4,
        t5,
        t6,
        t7,
        r0,
        r1,
        r2,
        r3,
        r4,
        r5,
        r6,
        r7,
    ] = *msg;
    (
        u64::from_le_bytes([t0, t1, t2, t3, t4, t5, t6, t7]),
        u64::from_le_bytes([r0, r1, r2, r3, r4, r5, r6, r7]),
    )
}

/// Longest token a bus run (and so its latency service) accepts.
pub const MAX_TOKEN_LEN: usize = 256;

/// The byte the service sends once it has accepted a connection's token.
pub const TOKEN_ACCEPTED: u8 = 1;

/// A token as a connection presents it: its length as a little-endian u16,
/// then its bytes.
pub fn encode_token(token: &str) -> Vec<u8> {
    let mut out = (token.len() as u16).to_le_bytes().to_vec();
    out.extend_from_slice(token.as_bytes());
    out
}

/// Compares tokens in time independent of where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// An answer's length: the payload, a little-endian u64.
pub const ANSWER_LEN: usize = 8;

/// An answer as it goes on the wire.
pub fn encode_answer(payload: u64) -> [u8; ANSWER_LEN] {
    payload.to_le_bytes()
}

/// The payload from an answer's bytes.
pub fn decode_answer(msg: &[u8; ANSWER_LEN]) -> u64 {
    u64::from_le_bytes(*msg)
}

/// The payload the service returns for request `request` of task `task`: 1..=100.
pub fn payload(seed: u64, task: u64, request: u64) -> u64 {
    1 + mix64(task_seed(seed, task) ^ mix64(request.wrapping_add(1))) % 100
}

/// Sum of the payloads of a task's `requests` requests.
pub fn io_sum(seed: u64, task: u64, requests: u32) -> u64 {
    (0..requests as u64).map(|r| payload(seed, task, r)).sum()
}

/// How many of a mixed task's `numbers` must be drawn before request `i` of
/// `requests` (an even count, so slicing keeps the CPU stream intact).
pub fn mixed_slice_end(numbers: u64, requests: u32, i: u32) -> u64 {
    let end = (numbers as u128 * (i as u128 + 1) / requests as u128) as u64;
    if i + 1 == requests { numbers } else { end & !1 }
}

/// How often a blocked request wakes to see whether the run was cancelled.
const POLL: Duration = Duration::from_millis(20);

/// One connection to the latency service, held for one task.
pub struct IoClient {
    stream: TcpStream,
    addr: SocketAddr,
}

impl IoClient {
    pub fn connect(addr: SocketAddr) -> io::Result<Self> {
        Self::connect_with(addr, None)
    }

    /// Connects and, for a service that asks for one, presents `token` first.
    pub fn connect_with(addr: SocketAddr, token: Option<&str>) -> io::Result<Self> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        if let Some(token) = token {
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            stream.write_all(&encode_token(token))?;
            let mut answer = [0u8; 1];
            match stream.read_exact(&mut answer) {
                Ok(()) if answer[0] == TOKEN_ACCEPTED => {}
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        "the latency service did not accept the run's token",
                    ));
                }
            }
        }
        stream.set_read_timeout(Some(POLL))?;
        Ok(Self { stream, addr })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends one request and waits for its payload; gives up (with `Interrupted`)
    /// as soon as `cancelled()` says so, and fails after `give_up` without an answer.
    pub fn request(
        &mut self,
        task: u64,
        request: u64,
        give_up: Duration,
        cancelled: &dyn Fn() -> bool,
    ) -> io::Result<u64> {
        self.stream.write_all(&encode_request(task, request))?;
        let mut buf = [0u8; ANSWER_LEN];
        let mut got = 0;
        let start = std::time::Instant::now();
        while got < ANSWER_LEN {
            match self.stream.read(&mut buf[got..]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the latency service closed the connection",
                    ));
                }
                Ok(n) => got += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if cancelled() {
                        return Err(io::ErrorKind::Interrupted.into());
                    }
                    if start.elapsed() > give_up {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("no answer within {give_up:?}"),
                        ));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(decode_answer(&buf))
    }
}

/// A service of a test's own on loopback, for the clients' tests here and in
/// the backends: `serve` gets each connection on a thread of its own.
#[cfg(test)]
pub(crate) fn fake_service(serve: fn(TcpStream)) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || serve(conn));
        }
    });
    addr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_little_endian() {
        let msg = encode_request(0x0102, u64::MAX - 1);
        assert_eq!(msg[..2], [0x02, 0x01]);
        assert_eq!(msg[8], 0xfe);
        assert_eq!(decode_request(&msg), (0x0102, u64::MAX - 1));
    }

    #[test]
    fn payloads_are_in_range_and_vary() {
        let p: Vec<u64> = (0..1000).map(|r| payload(1, 2, r)).collect();
        assert!(p.iter().all(|&x| (1..=100).contains(&x)));
        assert!(p.iter().collect::<std::collections::HashSet<_>>().len() > 90);
        assert_ne!(io_sum(1, 2, 10), io_sum(2, 2, 10));
        assert_ne!(io_sum(1, 2, 10), io_sum(1, 3, 10));
    }

    #[test]
    fn mixed_slices_cover_all_numbers_in_even_steps() {
        for (n, r) in [(10u64, 3u32), (1_000_001, 10), (5, 10), (1, 1)] {
            let ends: Vec<u64> = (0..r).map(|i| mixed_slice_end(n, r, i)).collect();
            assert_eq!(*ends.last().unwrap(), n);
            assert!(ends.windows(2).all(|w| w[0] <= w[1]), "{ends:?}");
            assert!(
                ends[..ends.len() - 1].iter().all(|e| e % 2 == 0),
                "{ends:?}"
            );
        }
    }

    /// docs/PROTOCOL.md's latency vectors, so that a worker written from the
    /// page agrees with the service.
    #[test]
    fn the_protocol_pages_payload_vectors_hold() {
        let page = include_str!("../../docs/PROTOCOL.md");
        for (task, payloads) in [
            (0u64, [1, 58, 54, 63]),
            (1, [37, 88, 26, 25]),
            (2, [27, 3, 93, 7]),
        ] {
            let got: Vec<u64> = (0..4).map(|r| payload(42, task, r)).collect();
            assert_eq!(got, payloads, "task {task}");
            let line = format!(
                "{}, {}, {}, {} (sum {})",
                payloads[0],
                payloads[1],
                payloads[2],
                payloads[3],
                io_sum(42, task, 4)
            );
            assert!(page.contains(&line), "PROTOCOL.md lacks `{line}`");
        }
        let mixed = crate::workload::cpu::task_sum(42, 0, 1001) + io_sum(42, 0, 4);
        assert!(page.contains(&format!("sums to {mixed} for task 0")));
        assert_eq!(encode_answer(0x0102), [2, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode_token("ab"), [2, 0, b'a', b'b']);
        assert!(page.contains("`02 00 61 62`, answered `01`") && TOKEN_ACCEPTED == 1);
        assert_eq!(decode_answer(&encode_answer(u64::MAX - 3)), u64::MAX - 3);
    }

    /// Accepts the token "right" and refuses any other.
    fn token_checker(mut conn: TcpStream) {
        let mut len = [0u8; 2];
        if conn.read_exact(&mut len).is_err() {
            return;
        }
        let mut token = vec![0u8; u16::from_le_bytes(len) as usize];
        if conn.read_exact(&mut token).is_err() {
            return;
        }
        let answer = if token == b"right" { TOKEN_ACCEPTED } else { 0 };
        let _ = conn.write_all(&[answer]);
        // Hold the connection until the client is done with it.
        let _ = conn.read(&mut [0u8; 1]);
    }

    #[test]
    fn a_connection_presents_its_token_and_goes_on_only_once_accepted() {
        let addr = fake_service(token_checker);
        assert!(IoClient::connect_with(addr, Some("right")).is_ok());
        let refused = IoClient::connect_with(addr, Some("wrong")).err().unwrap();
        assert_eq!(refused.kind(), io::ErrorKind::PermissionDenied);
        assert!(
            refused
                .to_string()
                .contains("did not accept the run's token")
        );
    }

    #[test]
    fn a_request_with_no_answer_gives_up_after_its_time_and_one_cancelled_stops() {
        // Holds each connection open and never answers.
        let addr = fake_service(|mut conn| {
            let _ = conn.read_to_end(&mut Vec::new());
        });
        let mut c = IoClient::connect(addr).unwrap();
        let e = c
            .request(0, 0, Duration::from_millis(100), &|| false)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(e.to_string(), "no answer within 100ms");
        let e = c
            .request(0, 1, Duration::from_secs(60), &|| true)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Interrupted);
    }

    #[test]
    fn tokens_that_differ_in_two_places_are_not_the_same() {
        // Differences that cancel out when folded with ^ instead of |.
        assert!(!same_token("ab", "ba"));
        assert!(same_token("ab", "ab"));
    }

    /// Reads one request, then resets the connection (SO_LINGER 0: an RST,
    /// not a FIN).
    fn resets_after_a_request(mut conn: TcpStream) {
        use std::os::fd::AsRawFd;
        let _ = conn.read_exact(&mut [0u8; REQUEST_LEN]);
        let off = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt reads the linger struct we own, on our socket.
        unsafe {
            libc::setsockopt(
                conn.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&off as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
    }

    #[test]
    fn a_reset_connection_fails_the_request_at_once_with_the_reset() {
        let addr = fake_service(resets_after_a_request);
        let mut c = IoClient::connect(addr).unwrap();
        let e = c
            .request(0, 0, Duration::from_secs(30), &|| false)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
    }

    #[test]
    fn a_signal_while_waiting_for_an_answer_does_not_end_the_request() {
        // SIGUSR2 interrupts a blocking read (EINTR) instead of ending us.
        extern "C" fn nothing(_: libc::c_int) {}
        // SAFETY: a handler that does nothing, installed for SIGUSR2 only.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = nothing as *const () as usize;
            libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut());
        }
        // Answers each request after 300 ms.
        let addr = fake_service(|mut conn| {
            let mut msg = [0u8; REQUEST_LEN];
            while conn.read_exact(&mut msg).is_ok() {
                std::thread::sleep(Duration::from_millis(300));
                let (task, r) = decode_request(&msg);
                if conn.write_all(&encode_answer(payload(1, task, r))).is_err() {
                    return;
                }
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            tx.send(unsafe { libc::pthread_self() }).unwrap();
            let mut c = IoClient::connect(addr).unwrap();
            c.request(4, 2, Duration::from_secs(30), &|| false)
        });
        let thread = rx.recv().unwrap();
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(40));
            // SAFETY: the waiter thread is alive until it has its answer.
            unsafe { libc::pthread_kill(thread, libc::SIGUSR2) };
        }
        assert_eq!(waiter.join().unwrap().unwrap(), payload(1, 4, 2));
    }
}
