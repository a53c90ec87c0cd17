//! The one message format between scalelab and its workers, over pipes and over the bus.
//!
//! A message is a JSON object with a `"type"` tag. Over a byte stream (a child's
//! stdin/stdout) each message travels as a frame: its length as a 4-byte
//! little-endian unsigned integer, then that many bytes of UTF-8 JSON. Frames
//! larger than `MAX_FRAME` are refused, so a confused peer cannot make the
//! other side allocate without bound.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use crate::spec::WorkloadKind;

/// Largest frame body either side accepts, in bytes.
pub const MAX_FRAME: usize = 64 * 1024;

/// A message between the run's master and a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Message {
    /// Worker -> master, once at start: who it is, and the CPU time its
    /// process has used so far (its start-up, which is no task's).
    Hello {
        pid: u32,
        #[serde(default)]
        cpu_ns: u64,
    },
    /// Master -> worker: run this task. A description only: no code ever travels.
    Task {
        task: u32,
        seed: u64,
        numbers: u64,
        workload: WorkloadKind,
        /// The latency service and request count, for the io and mixed workloads.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        io: Option<IoTarget>,
    },
    /// Worker -> master: numbers drawn so far, and the worker's CPU time so far.
    Progress { task: u32, done: u64, cpu_ns: u64 },
    /// Worker -> master: the task itself failed (not the worker): the run fails.
    Failed { task: u32, reason: String },
    /// Bus worker -> master: this worker does not run the task's workload;
    /// the master gives its tasks to others and stops it.
    Declined { task: u32, reason: String },
    /// Worker -> master: the task's result.
    Done {
        task: u32,
        sum: u64,
        cpu_ns: u64,
        /// Request latencies in ms (I/O workloads; at most `MAX_LATENCIES`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        latency_ms: Vec<f32>,
    },
    /// Bus worker -> master, first: who it is, the run's shared token, and
    /// the CPU time its process has used so far (counted to no task, and for
    /// a remote worker not to the run). A worker that does not say is taken
    /// to have used none.
    Join {
        protocol: u32,
        token: String,
        host: String,
        pid: u32,
        #[serde(default)]
        cpu_ns: u64,
    },
    /// Bus master -> worker: accepted, as worker number `worker`; heartbeat every
    /// `heartbeat_ms`, and a peer silent for `liveness` intervals is gone.
    Welcome {
        worker: u32,
        heartbeat_ms: u32,
        liveness: u32,
    },
    /// Bus master -> worker: not accepted (wrong token, unknown peer, ...); the worker exits.
    Refused { reason: String },
    /// Bus, both ways: still here.
    Heartbeat {},
    /// Bus master -> worker: the run is over (finished or cancelled); drop any task and exit.
    Stop {},
}

/// Where an I/O task sends its requests, and how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IoTarget {
    /// `127.0.0.1:PORT` of the latency service.
    pub addr: String,
    pub requests: u32,
    pub latency_ms: u32,
    /// What to present to the latency service when it is not the run's token
    /// (an encrypted bus keeps its own token off the unencrypted latency link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Most latencies a `done` message carries (so it stays far below `MAX_FRAME`).
pub const MAX_LATENCIES: usize = 2000;

/// The task message for task `task` of `spec`; `io_addr` is the run's latency
/// service (io and mixed workloads), `io_token` its own token if it has one.
/// Shared by the pipe and bus masters.
pub fn task_message(
    spec: &crate::spec::RunSpec,
    task: u32,
    io_addr: Option<std::net::SocketAddr>,
    io_token: Option<&str>,
) -> Message {
    Message::Task {
        task,
        seed: spec.seed,
        numbers: spec.numbers_per_task,
        workload: spec.workload,
        io: io_addr.map(|addr| IoTarget {
            addr: addr.to_string(),
            requests: spec.io.requests,
            latency_ms: spec.io.latency_ms,
            token: io_token.map(str::to_string),
        }),
    }
}

/// Version of the bus conversation a `Join` announces (docs/PROTOCOL.md).
pub const BUS_PROTOCOL: u32 = 1;

/// Why a frame could not be read.
#[derive(Debug)]
pub enum FrameError {
    /// The stream ended cleanly between frames.
    Eof,
    /// The stream failed or ended inside a frame.
    Io(io::Error),
    /// The frame announced more than `MAX_FRAME` bytes.
    TooLarge(usize),
    /// The body is not a valid message.
    Malformed(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Eof => write!(f, "end of stream"),
            FrameError::Io(e) => write!(f, "i/o error: {e}"),
            FrameError::TooLarge(n) => write!(f, "frame of {n} bytes exceeds {MAX_FRAME}"),
            FrameError::Malformed(m) => write!(f, "malformed message: {m}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// The JSON body of a message (a frame on the bus, where the transport delimits it).
pub fn encode(msg: &Message) -> Vec<u8> {
    serde_json::to_vec(msg).expect("wire messages always serialize")
}

/// Parses a message body, refusing oversize or invalid input.
pub fn decode(body: &[u8]) -> Result<Message, FrameError> {
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(body.len()));
    }
    serde_json::from_slice(body).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Writes one length-prefixed frame and flushes it.
pub fn write_frame(w: &mut impl Write, msg: &Message) -> io::Result<()> {
    let body = encode(msg);
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
    buf.extend_from_slice(&body);
    w.write_all(&buf)?;
    w.flush()
}

/// Reads one length-prefixed frame.
pub fn read_frame(r: &mut impl Read) -> Result<Message, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Eof),
            Ok(0) => return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    let n = u32::from_le_bytes(len) as usize;
    if n > MAX_FRAME {
        return Err(FrameError::TooLarge(n));
    }
    let mut body = vec![0u8; n];
    r.read_exact(&mut body).map_err(FrameError::Io)?;
    decode(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_kinds() -> Vec<Message> {
        vec![
            Message::Hello {
                pid: 7,
                cpu_ns: 4_100_000,
            },
            Message::Task {
                task: 3,
                seed: u64::MAX,
                numbers: 1_000_000,
                workload: WorkloadKind::Cpu,
                io: None,
            },
            Message::Task {
                task: 4,
                seed: 1,
                numbers: 0,
                workload: WorkloadKind::Io,
                io: Some(IoTarget {
                    addr: "127.0.0.1:4000".into(),
                    requests: 10,
                    latency_ms: 20,
                    token: None,
                }),
            },
            Message::Task {
                task: 5,
                seed: 1,
                numbers: 0,
                workload: WorkloadKind::Io,
                io: Some(IoTarget {
                    addr: "127.0.0.1:4000".into(),
                    requests: 10,
                    latency_ms: 20,
                    token: Some("0ther".into()),
                }),
            },
            Message::Progress {
                task: 3,
                done: 65536,
                cpu_ns: 123,
            },
            Message::Done {
                task: 3,
                sum: 50_500_000,
                cpu_ns: 456,
                latency_ms: vec![],
            },
            Message::Failed {
                task: 4,
                reason: "no answer".into(),
            },
            Message::Declined {
                task: 5,
                reason: "io is not implemented".into(),
            },
            Message::Done {
                task: 4,
                sum: 500,
                cpu_ns: 456,
                latency_ms: vec![20.5, 21.0],
            },
        ]
    }

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        for m in all_kinds() {
            write_frame(&mut buf, &m).unwrap();
        }
        let mut r = &buf[..];
        for m in all_kinds() {
            assert_eq!(read_frame(&mut r).unwrap(), m);
        }
        assert!(matches!(read_frame(&mut r), Err(FrameError::Eof)));
    }

    #[test]
    fn the_documented_shape_is_kept() {
        let body = String::from_utf8(encode(&Message::Done {
            task: 1,
            sum: 2,
            cpu_ns: 3,
            latency_ms: vec![],
        }))
        .unwrap();
        assert_eq!(body, r#"{"type":"done","task":1,"sum":2,"cpu_ns":3}"#);
    }

    /// A worker that does not say how much CPU its start-up took (one built
    /// before it said) is read as having used none, not refused.
    #[test]
    fn a_hello_or_join_without_its_start_up_cpu_reads_as_none() {
        assert_eq!(
            decode(br#"{"type":"hello","pid":5}"#).unwrap(),
            Message::Hello { pid: 5, cpu_ns: 0 }
        );
        assert_eq!(
            decode(br#"{"type":"join","protocol":1,"token":"t","host":"h","pid":6}"#).unwrap(),
            Message::Join {
                protocol: 1,
                token: "t".into(),
                host: "h".into(),
                pid: 6,
                cpu_ns: 0
            }
        );
    }

    #[test]
    fn bus_messages_round_trip_in_their_documented_shape() {
        let cases = [
            (
                Message::Join {
                    protocol: BUS_PROTOCOL,
                    token: "t0k".into(),
                    host: "box".into(),
                    pid: 12,
                    cpu_ns: 3_900_000,
                },
                r#"{"type":"join","protocol":1,"token":"t0k","host":"box","pid":12,"cpu_ns":3900000}"#,
            ),
            (
                Message::Welcome {
                    worker: 3,
                    heartbeat_ms: 250,
                    liveness: 5,
                },
                r#"{"type":"welcome","worker":3,"heartbeat_ms":250,"liveness":5}"#,
            ),
            (
                Message::Refused {
                    reason: "wrong token".into(),
                },
                r#"{"type":"refused","reason":"wrong token"}"#,
            ),
            (Message::Heartbeat {}, r#"{"type":"heartbeat"}"#),
            (Message::Stop {}, r#"{"type":"stop"}"#),
        ];
        for (msg, json) in cases {
            assert_eq!(String::from_utf8(encode(&msg)).unwrap(), json);
            assert_eq!(decode(json.as_bytes()).unwrap(), msg);
        }
        assert!(decode(br#"{"type":"heartbeat","x":1}"#).is_err());
    }

    #[test]
    fn oversize_truncated_and_garbage_frames_are_refused() {
        let mut big = Vec::new();
        big.extend_from_slice(&(MAX_FRAME as u32 + 1).to_le_bytes());
        assert!(matches!(
            read_frame(&mut &big[..]),
            Err(FrameError::TooLarge(_))
        ));

        let mut short = Vec::new();
        write_frame(&mut short, &Message::Hello { pid: 1, cpu_ns: 0 }).unwrap();
        short.truncate(short.len() - 2);
        assert!(matches!(
            read_frame(&mut &short[..]),
            Err(FrameError::Io(_))
        ));
        assert!(matches!(
            read_frame(&mut &[1u8, 0][..]),
            Err(FrameError::Io(_))
        ));

        for junk in [
            &b"\x03\0\0\0abc"[..],
            b"\x02\0\0\0{}",
            b"\x10\0\0\0{\"type\":\"hello\"}",
        ] {
            assert!(matches!(
                read_frame(&mut &junk[..]),
                Err(FrameError::Malformed(_))
            ));
        }
        assert!(matches!(
            decode(br#"{"type":"hello","pid":1,"extra":2}"#),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn the_bound_is_64_kib_exactly() {
        // docs/PROTOCOL.md promises frames up to 64 KiB: a message padded with
        // whitespace to exactly 65,536 bytes is read, one byte more is refused.
        let mut body = encode(&Message::Hello { pid: 7, cpu_ns: 0 });
        body.resize(64 * 1024, b' ');
        assert_eq!(decode(&body).unwrap(), Message::Hello { pid: 7, cpu_ns: 0 });
        let mut framed = (body.len() as u32).to_le_bytes().to_vec();
        framed.extend_from_slice(&body);
        assert_eq!(
            read_frame(&mut &framed[..]).unwrap(),
            Message::Hello { pid: 7, cpu_ns: 0 }
        );
        body.push(b' ');
        assert!(matches!(decode(&body), Err(FrameError::TooLarge(65_537))));
    }

    #[test]
    fn errors_say_what_went_wrong() {
        let cases = [
            (FrameError::Eof, "end of stream"),
            (
                FrameError::Io(io::ErrorKind::UnexpectedEof.into()),
                "i/o error: unexpected end of file",
            ),
            (
                FrameError::TooLarge(70_000),
                "frame of 70000 bytes exceeds 65536",
            ),
            (
                FrameError::Malformed("expected value".into()),
                "malformed message: expected value",
            ),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), text);
        }
    }

    /// A reader that fails with `first` once, then reads from `rest`.
    struct FailsOnce<'a> {
        first: Option<io::ErrorKind>,
        rest: &'a [u8],
    }

    impl Read for FailsOnce<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.first.take() {
                Some(kind) => Err(kind.into()),
                None => self.rest.read(buf),
            }
        }
    }

    #[test]
    fn an_interrupted_read_is_retried_and_any_other_error_reported() {
        let mut frame = Vec::new();
        write_frame(&mut frame, &Message::Hello { pid: 3, cpu_ns: 0 }).unwrap();
        let mut interrupted = FailsOnce {
            first: Some(io::ErrorKind::Interrupted),
            rest: &frame,
        };
        assert_eq!(
            read_frame(&mut interrupted).unwrap(),
            Message::Hello { pid: 3, cpu_ns: 0 }
        );
        let mut broken = FailsOnce {
            first: Some(io::ErrorKind::BrokenPipe),
            rest: &frame,
        };
        assert!(matches!(
            read_frame(&mut broken),
            Err(FrameError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe
        ));
    }
}
