//! The child side of the `processes` backend: `scalelab worker` reads task
//! descriptions on stdin and answers on stdout, in the `wire` format.

use std::io::{Read, Write};
use std::net::SocketAddr;

use super::ProgressThrottle;
use super::task_exec::{TaskEnv, TaskError, TaskInput, run_task};
use crate::metrics::clocks::this_process_cpu;
use crate::spec::{IoParams, WorkloadKind};
use crate::wire::{FrameError, IoTarget, MAX_LATENCIES, Message, read_frame, write_frame};

/// Reports progress on the output pipe; a write error stops the task.
struct PipeEnv<'a, W: Write> {
    output: &'a mut W,
    task: u32,
    throttle: ProgressThrottle,
    broken: Option<std::io::Error>,
}

impl<W: Write> TaskEnv for PipeEnv<'_, W> {
    fn cancelled(&self) -> bool {
        // The master cancels by killing the process; only a broken pipe stops us here.
        self.broken.is_some()
    }

    fn progress(&mut self, done: u64) {
        if self.throttle.due() {
            let msg = Message::Progress {
                task: self.task,
                done,
                cpu_ns: this_process_cpu().as_nanos() as u64,
            };
            if let Err(e) = write_frame(self.output, &msg) {
                self.broken = Some(e);
            }
        }
    }
}

/// Checks that an I/O target names a loopback address: a task description can
/// only point a worker at a latency service on its own machine.
fn loopback_addr(addr: &str) -> Result<SocketAddr, String> {
    let parsed: SocketAddr = addr
        .parse()
        .map_err(|e| format!("bad latency service address {addr:?}: {e}"))?;
    if parsed.ip().is_loopback() {
        Ok(parsed)
    } else {
        Err(format!(
            "refusing a latency service off this machine: {addr}"
        ))
    }
}

/// Makes this worker die with its master: SIGKILL when the parent goes
/// (`PR_SET_PDEATHSIG`), and an error if it is already gone (the race between
/// being started and getting here). Also lowers our priority by `nice`.
pub fn bind_to_parent(parent: u32, nice: i32, idle: bool) -> Result<(), String> {
    // SAFETY: plain syscalls on our own process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() as u32 != parent {
            return Err(format!("the master (pid {parent}) is gone"));
        }
    }
    // A worker process is one thread: lowering it lowers the process.
    crate::metrics::clocks::lower_this_thread(nice, idle);
    Ok(())
}

/// How a bus worker reaches its run's latency service: on the host of the
/// bus endpoint it joined, presenting the run's token.
#[derive(Debug, Clone, Copy)]
pub struct BusSide<'a> {
    /// The bus endpoint as the worker was given it (`tcp://HOST:PORT`).
    pub endpoint: &'a str,
    pub token: &'a str,
}

/// The latency service's address for a bus worker: the port the task names,
/// on the host of the bus it joined. A task description can thus point a
/// worker only at the machine it already talks to.
fn bus_service_addr(addr: &str, side: BusSide<'_>) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let port: u16 = addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .ok_or_else(|| format!("bad latency service address {addr:?}"))?;
    let host = crate::spec::endpoint_host(side.endpoint)
        .ok_or_else(|| format!("bad bus endpoint {:?}", side.endpoint))?;
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))
}

/// What a worker runs for a task message's fields. A pipe worker (`bus` is
/// `None`) refuses an I/O target off this machine; a bus worker goes to the
/// host of its bus, with the token.
pub fn task_input(
    task: u32,
    seed: u64,
    numbers: u64,
    workload: WorkloadKind,
    io: Option<IoTarget>,
    bus: Option<BusSide<'_>>,
) -> Result<TaskInput, String> {
    let (io_params, io_addr) = match &io {
        Some(t) => (
            IoParams {
                requests: t.requests,
                latency_ms: t.latency_ms,
            },
            Some(match bus {
                Some(side) => bus_service_addr(&t.addr, side)?,
                None => loopback_addr(&t.addr)?,
            }),
        ),
        None => (IoParams::default(), None),
    };
    Ok(TaskInput {
        task,
        seed,
        numbers,
        workload,
        io: io_params,
        io_addr,
        io_token: bus.map(|side| side.token.to_string()),
    })
}

/// Why a pipe worker stopped before its input ended.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The master sent something this worker cannot take (the CLI exits 2).
    #[error("bad input from the master: {0}")]
    BadInput(String),
    /// The pipe to the master broke (exit 1).
    #[error("cannot write to the master: {0}")]
    Pipe(#[source] std::io::Error),
}

/// Serves tasks until the input ends (the master closed the pipe or died).
pub fn serve(input: &mut impl Read, output: &mut impl Write) -> Result<(), ServeError> {
    let io_err = ServeError::Pipe;
    write_frame(
        output,
        &Message::Hello {
            pid: std::process::id(),
            cpu_ns: this_process_cpu().as_nanos() as u64,
        },
    )
    .map_err(io_err)?;
    loop {
        let msg = match read_frame(input) {
            Ok(m) => m,
            Err(FrameError::Eof) => return Ok(()),
            Err(e) => return Err(ServeError::BadInput(e.to_string())),
        };
        let Message::Task {
            task,
            seed,
            numbers,
            workload,
            io,
        } = msg
        else {
            return Err(ServeError::BadInput(format!(
                "expected a task, got {msg:?}"
            )));
        };
        let input =
            task_input(task, seed, numbers, workload, io, None).map_err(ServeError::BadInput)?;
        let mut env = PipeEnv {
            output,
            task,
            throttle: ProgressThrottle::new(),
            broken: None,
        };
        let out = match run_task(&mut env, &input) {
            Ok(out) => out,
            Err(TaskError::Cancelled) => {
                return Err(io_err(
                    env.broken
                        .take()
                        .unwrap_or_else(|| std::io::ErrorKind::BrokenPipe.into()),
                ));
            }
            Err(TaskError::Failed(reason)) => {
                // Tell the master why, then go on serving: the worker itself is fine.
                write_frame(output, &Message::Failed { task, reason }).map_err(io_err)?;
                continue;
            }
        };
        let mut latency_ms = out.latencies_ms;
        latency_ms.truncate(MAX_LATENCIES);
        write_frame(
            output,
            &Message::Done {
                task,
                sum: out.sum,
                cpu_ns: this_process_cpu().as_nanos() as u64,
                latency_ms,
            },
        )
        .map_err(io_err)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::cpu::task_sum;

    #[test]
    fn answers_tasks_in_order_and_stops_at_eof() {
        let mut input = Vec::new();
        for task in 0..3 {
            write_frame(
                &mut input,
                &Message::Task {
                    task,
                    seed: 9,
                    numbers: 1000,
                    workload: WorkloadKind::Cpu,
                    io: None,
                },
            )
            .unwrap();
        }
        let mut out = Vec::new();
        serve(&mut &input[..], &mut out).unwrap();
        let mut r = &out[..];
        assert!(matches!(read_frame(&mut r).unwrap(), Message::Hello { .. }));
        for task in 0..3 {
            match read_frame(&mut r).unwrap() {
                Message::Done { task: t, sum, .. } => {
                    assert_eq!(t, task);
                    assert_eq!(sum, task_sum(9, task as u64, 1000));
                }
                m => panic!("unexpected {m:?}"),
            }
        }
    }

    /// Takes the worker's hello (its first write, a whole frame), then fails
    /// every write, keeping what was refused.
    struct BrokenAfterHello {
        hello: Option<Vec<u8>>,
        refused: Vec<Vec<u8>>,
    }

    impl Write for BrokenAfterHello {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.hello.is_none() {
                self.hello = Some(buf.to_vec());
                return Ok(buf.len());
            }
            self.refused.push(buf.to_vec());
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_broken_pipe_stops_the_running_task_at_its_next_report() {
        let mut input = Vec::new();
        // Seconds of work: the first progress report, due after 50 ms, fails.
        let task = Message::Task {
            task: 0,
            seed: 1,
            numbers: 4_000_000_000,
            workload: WorkloadKind::Cpu,
            io: None,
        };
        write_frame(&mut input, &task).unwrap();
        let mut out = BrokenAfterHello {
            hello: None,
            refused: Vec::new(),
        };
        let err = serve(&mut &input[..], &mut out).unwrap_err();
        assert!(matches!(err, ServeError::Pipe(_)), "{err}");
        // The hello went through, with the CPU time the process had used.
        let hello = read_frame(&mut &out.hello.unwrap()[..]).unwrap();
        let pid = std::process::id();
        assert!(
            matches!(hello, Message::Hello { pid: p, cpu_ns } if p == pid && cpu_ns > 0),
            "{hello:?}"
        );
        // The one write refused is the first report; the task stopped there:
        // no more reports, and no result.
        assert_eq!(out.refused.len(), 1);
        let report = read_frame(&mut &out.refused[0][..]).unwrap();
        assert!(
            matches!(report, Message::Progress { task: 0, done, .. } if done > 0),
            "{report:?}"
        );
    }

    #[test]
    fn garbage_input_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        let err = serve(&mut &b"\x05\0\0\0hello"[..], &mut out).unwrap_err();
        assert!(matches!(err, ServeError::BadInput(_)), "{err}");
        assert!(err.to_string().contains("bad input"), "{err}");
        let mut hello = Vec::new();
        write_frame(&mut hello, &Message::Hello { pid: 1, cpu_ns: 0 }).unwrap();
        let err = serve(&mut &hello[..], &mut out).unwrap_err();
        assert!(matches!(err, ServeError::BadInput(_)), "{err}");
        assert!(err.to_string().contains("expected a task"), "{err}");
    }

    #[test]
    fn io_targets_off_this_machine_are_refused() {
        assert!(loopback_addr("127.0.0.1:80").is_ok());
        assert!(loopback_addr("[::1]:80").is_ok());
        assert!(
            loopback_addr("192.0.2.1:80")
                .unwrap_err()
                .contains("refusing")
        );
        assert!(
            loopback_addr("nonsense")
                .unwrap_err()
                .contains("bad latency")
        );
    }
}
