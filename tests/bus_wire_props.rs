//! Property tests of the frame decoder the bus master feeds every frame to:
//! whatever arrives, it answers with a message or an error, never a panic,
//! and every message it accepts survives a round trip unchanged.

use proptest::prelude::*;

use scalelab::spec::WorkloadKind;
use scalelab::wire::{FrameError, MAX_FRAME, Message, decode, encode, read_frame, write_frame};

fn any_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u32>(), any::<u64>()).prop_map(|(pid, cpu_ns)| Message::Hello { pid, cpu_ns }),
        (any::<u32>(), any::<u64>(), any::<u64>()).prop_map(|(task, seed, numbers)| {
            Message::Task {
                task,
                seed,
                numbers,
                workload: WorkloadKind::Cpu,
                io: None,
            }
        }),
        (any::<u32>(), any::<u64>(), any::<u64>())
            .prop_map(|(task, done, cpu_ns)| Message::Progress { task, done, cpu_ns }),
        (
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(0.0f32..1e6, 0..4)
        )
            .prop_map(|(task, sum, cpu_ns, latency_ms)| Message::Done {
                task,
                sum,
                cpu_ns,
                latency_ms,
            }),
        (any::<u32>(), ".{0,40}").prop_map(|(task, reason)| Message::Failed { task, reason }),
        (any::<u32>(), ".{0,40}").prop_map(|(task, reason)| Message::Declined { task, reason }),
        (
            any::<u32>(),
            "[0-9.:]{0,30}",
            any::<u32>(),
            any::<u32>(),
            proptest::option::of("[!-~]{1,40}")
        )
            .prop_map(|(task, addr, requests, latency_ms, token)| Message::Task {
                task,
                seed: 1,
                numbers: 0,
                workload: WorkloadKind::Io,
                io: Some(scalelab::wire::IoTarget {
                    addr,
                    requests,
                    latency_ms,
                    token,
                }),
            }),
        (
            any::<u32>(),
            ".{0,40}",
            ".{0,40}",
            any::<u32>(),
            any::<u64>()
        )
            .prop_map(|(protocol, token, host, pid, cpu_ns)| Message::Join {
                protocol,
                token,
                host,
                pid,
                cpu_ns
            }),
        (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(worker, heartbeat_ms, liveness)| {
            Message::Welcome {
                worker,
                heartbeat_ms,
                liveness,
            }
        }),
        ".{0,80}".prop_map(|reason| Message::Refused { reason }),
        Just(Message::Heartbeat {}),
        Just(Message::Stop {}),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(m) = decode(&body) {
            // Anything accepted is a real message that encodes back to an accepted body.
            prop_assert_eq!(decode(&encode(&m)).unwrap(), m);
        }
    }

    #[test]
    fn messages_round_trip(m in any_message()) {
        prop_assert_eq!(decode(&encode(&m)).unwrap(), m.clone());
        let mut buf = Vec::new();
        write_frame(&mut buf, &m).unwrap();
        prop_assert_eq!(read_frame(&mut &buf[..]).unwrap(), m);
    }

    #[test]
    fn truncated_or_corrupted_messages_are_errors_or_messages(
        m in any_message(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let body = encode(&m);
        // Cutting a JSON object short always breaks it.
        let short = &body[..cut.index(body.len())];
        prop_assert!(matches!(decode(short), Err(FrameError::Malformed(_))));
        let mut bent = body.clone();
        let i = flip.index(bent.len());
        bent[i] ^= 1 << bit;
        // A flipped bit gives a body that is refused as malformed, or a real
        // message (a digit or letter changed) that round-trips as itself.
        match decode(&bent) {
            Err(FrameError::Malformed(_)) => {}
            Err(e) => prop_assert!(false, "a corrupted body gave {e:?}"),
            Ok(m2) => prop_assert_eq!(decode(&encode(&m2)).unwrap(), m2),
        }
    }

    #[test]
    fn json_like_noise_never_panics(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("{".to_string()), Just("}".to_string()), Just("\"type\":".to_string()),
                Just("\"done\"".to_string()), Just("\"join\"".to_string()), Just(",".to_string()),
                Just("\"task\":".to_string()), Just("-1".to_string()), Just("1e400".to_string()),
                Just("18446744073709551616".to_string()), Just("null".to_string()),
                Just("[".to_string()), Just("]".to_string()), "[a-z\"\\\\]{0,6}",
            ],
            0..40,
        )
    ) {
        let _ = decode(parts.concat().as_bytes());
    }

    #[test]
    fn length_prefixes_are_bounded(
        len in prop_oneof![any::<u32>(), 0u32..80, (MAX_FRAME as u32 - 2)..(MAX_FRAME as u32 + 2)],
        rest in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut buf = len.to_le_bytes().to_vec();
        buf.extend_from_slice(&rest);
        let n = len as usize;
        match read_frame(&mut &buf[..]) {
            // Past the bound: refused for its length, before reading (or allocating) a body.
            Err(FrameError::TooLarge(m)) => {
                prop_assert!(n > MAX_FRAME);
                prop_assert_eq!(m, n);
            }
            _ if n > MAX_FRAME => prop_assert!(false, "a {n}-byte prefix was not refused as too large"),
            // Within it but longer than what follows: the stream ended inside the frame.
            Err(FrameError::Io(e)) => {
                prop_assert!(n > rest.len());
                prop_assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
            }
            _ if n > rest.len() => prop_assert!(false, "a frame longer than the stream was read"),
            // Otherwise the body is exactly the n bytes that follow.
            Ok(m) => prop_assert_eq!(decode(&rest[..n]).unwrap(), m),
            Err(FrameError::Malformed(_)) => prop_assert!(decode(&rest[..n]).is_err()),
            Err(FrameError::Eof) => prop_assert!(false, "a prefix was read as a clean end"),
        }
    }
}

#[test]
fn oversize_bodies_are_refused_before_parsing() {
    let big = vec![b' '; MAX_FRAME + 1];
    assert!(matches!(decode(&big), Err(FrameError::TooLarge(_))));
}
