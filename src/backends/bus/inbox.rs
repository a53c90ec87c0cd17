//! What the bus master does with each message that arrives: admit, record, or count and drop.

use std::collections::VecDeque;
use std::time::Instant;

use super::{MAX_HOST, Master, PREFETCH_BELOW, Peer, REPORTED_DROPS, same_token};
use crate::report::event::{BusEvent, Event, WorkerKind};
use crate::spec::{HEARTBEAT_LIVENESS, MAX_WORKERS};
use crate::wire::{self, BUS_PROTOCOL, FrameError, MAX_FRAME, Message};

/// A short name for a message's kind, for drop reports.
fn kind(m: &Message) -> &'static str {
    match m {
        Message::Hello { .. } => "hello",
        Message::Task { .. } => "task",
        Message::Progress { .. } => "progress",
        Message::Done { .. } => "done",
        Message::Failed { .. } => "failed",
        Message::Declined { .. } => "declined",
        Message::Join { .. } => "join",
        Message::Welcome { .. } => "welcome",
        Message::Refused { .. } => "refused",
        Message::Heartbeat {} => "heartbeat",
        Message::Stop {} => "stop",
    }
}

/// One message off the ROUTER: who sent it, and its body if it was exactly one frame.
struct Incoming {
    id: Vec<u8>,
    body: Option<zmq::Message>,
}

impl Master<'_> {
    /// Handles every message waiting on the socket.
    pub(super) fn drain_inbox(&mut self) -> Result<(), String> {
        while let Some(m) = self.receive()? {
            self.on_message(m)?;
        }
        Ok(())
    }

    /// Receives one message without waiting; `None` when there is none.
    fn receive(&self) -> Result<Option<Incoming>, String> {
        let id = match self.socket.recv_bytes(zmq::DONTWAIT) {
            Ok(id) => id,
            Err(zmq::Error::EAGAIN) => return Ok(None),
            Err(e) => return Err(format!("the bus socket failed: {e}")),
        };
        let mut body = None;
        let mut parts = 1;
        // Read every further part so the next message starts clean; keep one body only.
        while self.socket.get_rcvmore().unwrap_or(false) {
            let m = self
                .socket
                .recv_msg(zmq::DONTWAIT)
                .map_err(|e| format!("the bus socket failed: {e}"))?;
            parts += 1;
            if parts == 2 {
                body = Some(m);
            }
        }
        if parts != 2 {
            body = None;
        }
        Ok(Some(Incoming { id, body }))
    }
    fn describe(&self, at: Option<usize>) -> String {
        match at {
            Some(i) => format!("worker {}", self.peers[i].worker),
            None => "a peer that has not joined".into(),
        }
    }

    /// Counts a frame as dropped and reports the first few.
    fn dropped(&mut self, at: Option<usize>, reason: String) {
        let t = &self.tally;
        if t.malformed + t.oversize + t.unexpected + t.duplicates <= REPORTED_DROPS {
            let peer = self.describe(at);
            self.ctx
                .emit(Event::Bus(BusEvent::Dropped { peer, reason }));
        }
    }

    fn on_message(&mut self, m: Incoming) -> Result<(), String> {
        let at = self.peer_at(&m.id);
        if let Some(i) = at {
            self.peers[i].last_heard = Instant::now();
        }
        let Some(body) = m.body else {
            self.tally.malformed += 1;
            self.dropped(at, "not exactly one frame".into());
            self.refuse_stranger(at, &m.id, "malformed message: not exactly one frame");
            return Ok(());
        };
        let msg = match wire::decode(&body) {
            Ok(msg) => msg,
            Err(FrameError::TooLarge(n)) => {
                self.tally.oversize += 1;
                let why = format!("frame of {n} bytes exceeds {MAX_FRAME}");
                self.refuse_stranger(at, &m.id, &format!("malformed message: {why}"));
                self.dropped(at, why);
                return Ok(());
            }
            Err(e) => {
                self.tally.malformed += 1;
                self.refuse_stranger(at, &m.id, &format!("malformed message: {e}"));
                self.dropped(at, e.to_string());
                return Ok(());
            }
        };
        match (at, msg) {
            (
                None,
                Message::Join {
                    protocol,
                    token,
                    host,
                    pid,
                    cpu_ns,
                },
            ) => {
                self.on_join(m.id, protocol, &token, host, (pid, cpu_ns));
                Ok(())
            }
            (None, msg) => {
                self.count_unwanted(None, &msg);
                // Tell it: a worker this master has given up on must not keep working.
                let _ = self.send(
                    &m.id,
                    &Message::Refused {
                        reason: "not joined: send a join first".into(),
                    },
                );
                Ok(())
            }
            (Some(_), Message::Heartbeat {}) => Ok(()),
            (Some(i), msg @ Message::Join { .. }) => {
                self.count_unwanted(at, &msg);
                let worker = self.peers[i].worker;
                let reason = format!("already joined as worker {worker}");
                let _ = self.send(&m.id, &Message::Refused { reason });
                self.lose(Some(i), None, "joined a second time".into())
            }
            (Some(i), Message::Declined { task, reason }) => {
                if self.peers[i].running.as_ref().map(|t| t.task) != Some(task) {
                    self.count_unwanted(at, &Message::Declined { task, reason });
                    return Ok(());
                }
                self.on_declined(i, task, reason)
            }
            (Some(i), Message::Progress { task, done, cpu_ns }) => {
                if self.peers[i].running.as_ref().map(|t| t.task) != Some(task) {
                    self.count_unwanted(at, &Message::Progress { task, done, cpu_ns });
                    return Ok(());
                }
                let per_task = self.ledger.per_task();
                let p = &mut self.peers[i];
                let cpu_delta = cpu_ns.saturating_sub(p.cpu_ns);
                p.cpu_ns = p.cpu_ns.max(cpu_ns);
                let drawn = p.running.as_mut().map_or(0, |t| t.progress(done, per_task));
                // Worker ids grow with every join, past the meter's slots: share them, adding only.
                let slot = self.ctx.meter.shared_slot(p.worker);
                self.ctx.meter.add_numbers(slot, drawn);
                self.ctx.meter.add_cpu_ns(slot, cpu_delta);
                self.ctx.emit(Event::Progress {
                    task,
                    worker: p.worker,
                    done: done.min(self.ctx.spec.numbers_per_task),
                });
                Ok(())
            }
            (
                Some(i),
                Message::Done {
                    task,
                    sum,
                    cpu_ns,
                    latency_ms,
                },
            ) => self.on_done(i, task, sum, cpu_ns, latency_ms),
            (Some(i), Message::Failed { task, reason }) => {
                if self.peers[i].running.as_ref().map(|t| t.task) != Some(task) {
                    self.count_unwanted(at, &Message::Failed { task, reason });
                    return Ok(());
                }
                // The task itself failed, not the worker: re-running it elsewhere would fail too.
                let p = &self.peers[i];
                Err(format!(
                    "worker {} ({} pid {}): {reason}",
                    p.worker, p.host, p.pid
                ))
            }
            (Some(_), msg) => {
                self.count_unwanted(at, &msg);
                Ok(())
            }
        }
    }

    /// Answers a connection that has not joined with why its message was
    /// dropped, so that a worker with a broken `join` need not wait out its
    /// timeout. Joined workers get no answer to garbage: it is only counted.
    fn refuse_stranger(&self, at: Option<usize>, id: &[u8], reason: &str) {
        if at.is_none() {
            let reason = reason.to_string();
            let _ = self.send(id, &Message::Refused { reason });
        }
    }

    /// Worker `i` does not run this run's workload: its tasks go back, first
    /// in line and without charging a retry (nothing was lost), it is told to
    /// stop, and when no other worker is left the run fails with the reasons.
    fn on_declined(&mut self, i: usize, task: u32, reason: String) -> Result<(), String> {
        if self.peers[i].child.is_some() {
            // scalelab's own workers run every workload: this one is broken.
            return self.lose(Some(i), None, format!("declined task {task}: {reason}"));
        }
        let p = self.peers.remove(i);
        let _ = self.send(&p.id, &Message::Stop {});
        self.ledger.add_cpu(p.cpu_since_join());
        let held = p.running.map(|t| t.task).into_iter().chain(p.queued);
        self.ledger.return_waiting(held);
        let who = format!("worker {} ({} pid {})", p.worker, p.host, p.pid);
        self.declines.push(format!("{who}: {reason}"));
        self.last_loss = Some(format!("{who} declined the workload: {reason}"));
        self.ctx.emit(Event::Bus(BusEvent::Declined {
            worker: p.worker,
            host: p.host,
            pid: p.pid,
            reason,
        }));
        if self.manned() {
            return Ok(());
        }
        Err(format!(
            "no connected worker runs the {} workload: {}",
            self.ctx.spec.workload,
            self.declines.join("; ")
        ))
    }

    /// Counts a valid message that its sender had no business sending.
    fn count_unwanted(&mut self, at: Option<usize>, msg: &Message) {
        let finished = |t: u32| self.ledger.is_finished(t);
        let reason = match *msg {
            Message::Done { task, .. } if finished(task) => {
                self.tally.duplicates += 1;
                format!("late result for task {task}, already finished")
            }
            Message::Done { task, .. } | Message::Progress { task, .. } => {
                self.tally.unexpected += 1;
                format!("{} for task {task}, which it is not running", kind(msg))
            }
            _ => {
                self.tally.unexpected += 1;
                format!("unexpected {}", kind(msg))
            }
        };
        self.dropped(at, reason);
    }

    /// A join; its last argument is the worker's pid and the CPU time it had used.
    fn on_join(
        &mut self,
        id: Vec<u8>,
        protocol: u32,
        token: &str,
        mut host: String,
        (pid, cpu_ns): (u32, u64),
    ) {
        if host.len() > MAX_HOST {
            host = host.chars().take(MAX_HOST / 4).collect();
        }
        let refusal = if protocol != BUS_PROTOCOL {
            Some(format!(
                "protocol {protocol} is not supported (this master speaks {BUS_PROTOCOL})"
            ))
        } else if !same_token(token, &self.token) {
            Some("wrong token".to_string())
        } else if self.peers.len() >= MAX_WORKERS as usize {
            Some(format!("the run already has {MAX_WORKERS} workers"))
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.tally.refused += 1;
            let _ = self.send(
                &id,
                &Message::Refused {
                    reason: reason.clone(),
                },
            );
            self.ctx.emit(Event::Bus(BusEvent::Refused {
                peer: format!("{host} pid {pid}"),
                reason,
            }));
            return;
        }
        let child = (host == self.host)
            .then(|| {
                self.children
                    .iter()
                    .position(|c| c.pid == pid && c.alive && !c.joined)
            })
            .flatten();
        let worker = match child {
            Some(c) => {
                self.children[c].joined = true;
                self.children[c].worker
            }
            None => {
                self.next_worker += 1;
                self.next_worker - 1
            }
        };
        let welcome = Message::Welcome {
            worker,
            heartbeat_ms: self.heartbeat.as_millis() as u32,
            liveness: HEARTBEAT_LIVENESS,
        };
        if self.send(&id, &welcome).is_err() {
            return; // gone already; a child's exit is noticed by its pid
        }
        self.peers.push(Peer {
            id,
            worker,
            host: host.clone(),
            pid,
            child,
            running: None,
            queued: VecDeque::new(),
            short_tasks: false,
            cpu_ns,
            cpu_ns_at_join: cpu_ns,
            last_heard: Instant::now(),
        });
        if child.is_none() {
            self.remote_names
                .insert(worker, format!("worker {worker} (pid {pid} on {host})"));
        }
        self.ctx.emit(Event::WorkerStarted {
            worker,
            kind: WorkerKind::Process,
            os_id: pid,
        });
        self.ctx.emit(Event::Bus(BusEvent::WorkerJoined {
            worker,
            host,
            pid,
            local: child.is_some(),
        }));
    }

    /// A result: it counts only for the task the worker is running (workers
    /// run their tasks in the order sent).
    fn on_done(
        &mut self,
        i: usize,
        task: u32,
        sum: u64,
        cpu_ns: u64,
        latency_ms: Vec<f32>,
    ) -> Result<(), String> {
        if self.peers[i].running.as_ref().map(|t| t.task) != Some(task) {
            self.count_unwanted(
                Some(i),
                &Message::Done {
                    task,
                    sum,
                    cpu_ns,
                    latency_ms,
                },
            );
            return Ok(());
        }
        // An impossible result: the worker is broken or lying. Its task goes back
        // in the queue (a retry is charged) and the worker is dropped.
        if let Err(why) = self.ledger.check_result(sum, &latency_ms) {
            return self.lose(
                Some(i),
                None,
                format!("sent an impossible result for task {task} ({why})"),
            );
        }
        let p = &mut self.peers[i];
        let held = p.running.take().expect("checked above");
        let cpu_delta = cpu_ns.saturating_sub(p.cpu_ns);
        p.cpu_ns = p.cpu_ns.max(cpu_ns);
        let worker = p.worker;
        let slot = self.ctx.meter.shared_slot(worker);
        self.ctx.meter.add_cpu_ns(slot, cpu_delta);
        self.ctx
            .meter
            .add_numbers(slot, held.rest(self.ledger.per_task()));
        self.ctx.meter.add_requests(slot, latency_ms.len() as u64);
        self.ledger.add_latencies(latency_ms);
        // Only the current holder's result reaches here, and the ledger keeps
        // only a task's first result: a task finishes once.
        if let Some(record) = self
            .ledger
            .finish(&held, worker, sum, self.ctx.now_s(), cpu_ns)
        {
            if self.peers[i].child.is_none() && self.verifier.wants(worker, task) {
                self.verifier.submit(task, worker, sum)?;
            }
            self.peers[i].short_tasks =
                record.end_s - record.start_s < PREFETCH_BELOW.as_secs_f64();
            self.ctx.emit(Event::TaskFinished(record));
        }
        // The worker goes straight on to the task waiting at it.
        if let Some(next) = self.peers[i].queued.pop_front() {
            self.begin(i, next, cpu_ns);
        }
        Ok(())
    }
}
