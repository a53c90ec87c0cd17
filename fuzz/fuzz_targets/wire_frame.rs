//! Every frame a worker or a bus peer can send: a length-prefixed stream (the
//! pipes) and a bare body (one ZeroMQ frame). Whatever arrives is an error or
//! a message that survives a round trip; nothing panics or allocates past the bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scalelab::wire::{FrameError, MAX_FRAME, decode, encode, read_frame};

fuzz_target!(|data: &[u8]| {
    match decode(data) {
        Ok(m) => assert_eq!(decode(&encode(&m)).unwrap(), m),
        Err(FrameError::TooLarge(n)) => assert!(n > MAX_FRAME && data.len() > MAX_FRAME),
        Err(_) => {}
    }
    let mut stream = data;
    while !stream.is_empty() {
        match read_frame(&mut stream) {
            Ok(m) => assert_eq!(decode(&encode(&m)).unwrap(), m),
            Err(FrameError::TooLarge(n)) => {
                assert!(n > MAX_FRAME);
                break;
            }
            Err(FrameError::Malformed(_)) => {}
            Err(_) => break,
        }
    }
});
