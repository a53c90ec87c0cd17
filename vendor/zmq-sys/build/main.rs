// scalelab's patch of zmq-sys 0.12.0: libzmq is built with libsodium so that
// ZMQ_CURVE is available (upstream passes `with_libsodium(None)`).
// libsodium-sys-stable (a dependency with `links = "sodium"`) reports where it
// installed libsodium through DEP_SODIUM_INCLUDE and DEP_SODIUM_LIB.
use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build/main.rs");
    println!("cargo:rerun-if-env-changed=PROFILE");
    let dir = |key: &str| {
        PathBuf::from(env::var(key).unwrap_or_else(|_| {
            panic!("{} is not set: libsodium-sys-stable did not report its build", key)
        }))
    };
    let sodium = zeromq_src::LibLocation::new(dir("DEP_SODIUM_LIB"), dir("DEP_SODIUM_INCLUDE"));
    zeromq_src::Build::new().with_libsodium(Some(sodium)).build();
}
