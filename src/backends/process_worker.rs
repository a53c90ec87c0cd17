//! The child side of the `processes` backend: `scalelab worker` reads task
//! descriptions on stdin and answers on stdout, in the `wire` format.

use std::io::{Read, Write};

use super::ProgressThrottle;
use crate::engine::spec::WorkloadKind;
use crate::metrics::clocks::this_process_cpu;
use crate::wire::{FrameError, Message, read_frame, write_frame};
use crate::workload::cpu::CpuTask;

/// Serves tasks until the input ends (the master closed the pipe or died).
pub fn serve(input: &mut impl Read, output: &mut impl Write) -> Result<(), String> {
    let io_err = |e: std::io::Error| format!("cannot write to the master: {e}");
    write_frame(
        output,
        &Message::Hello {
            pid: std::process::id(),
        },
    )
    .map_err(io_err)?;
    loop {
        let msg = match read_frame(input) {
            Ok(m) => m,
            Err(FrameError::Eof) => return Ok(()),
            Err(e) => return Err(format!("bad input from the master: {e}")),
        };
        let Message::Task {
            task,
            seed,
            numbers,
            workload,
        } = msg
        else {
            return Err(format!("expected a task, got {msg:?}"));
        };
        let sum = match workload {
            WorkloadKind::Cpu => run_cpu_task(output, task, seed, numbers).map_err(io_err)?,
        };
        write_frame(
            output,
            &Message::Done {
                task,
                sum,
                cpu_ns: this_process_cpu().as_nanos() as u64,
            },
        )
        .map_err(io_err)?;
    }
}

fn run_cpu_task(
    output: &mut impl Write,
    task: u32,
    seed: u64,
    numbers: u64,
) -> std::io::Result<u64> {
    let mut throttle = ProgressThrottle::new();
    let mut failed = None;
    let sum = CpuTask::new(seed, task as u64, numbers).run(|done| {
        if throttle.due() {
            let msg = Message::Progress {
                task,
                done,
                cpu_ns: this_process_cpu().as_nanos() as u64,
            };
            if let Err(e) = write_frame(output, &msg) {
                failed = Some(e);
                return false;
            }
        }
        true
    });
    match (sum, failed) {
        (Some(s), None) => Ok(s),
        (_, Some(e)) => Err(e),
        (None, None) => unreachable!("the kernel only stops early when told to"),
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

    #[test]
    fn garbage_input_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        let err = serve(&mut &b"\x05\0\0\0hello"[..], &mut out).unwrap_err();
        assert!(err.contains("bad input"), "{err}");
        let mut hello = Vec::new();
        write_frame(&mut hello, &Message::Hello { pid: 1 }).unwrap();
        let err = serve(&mut &hello[..], &mut out).unwrap_err();
        assert!(err.contains("expected a task"), "{err}");
    }
}
