//! CurveZMQ for the bus: ZeroMQ's own encryption and server authentication
//! (RFC 26), with libsodium underneath (see vendor/zmq-sys).
//!
//! The master is a CURVE server with a long-term key pair: made for the run,
//! or kept in a file (`--keys`) so that workers can pin one public key across
//! runs. A worker is a CURVE client: it pins the master's public key
//! (`--server-key`) and makes a throwaway key pair of its own for each
//! connection. A worker given the wrong key never completes the handshake, so
//! it can neither read the bus nor be read on it; the run's token still decides
//! who may work.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Environment variable through which local workers get the master's public key.
pub const SERVER_KEY_ENV: &str = "SCALELAB_BUS_SERVER_KEY";

/// The master's long-term CURVE key pair.
pub struct ServerKeys {
    public: [u8; 32],
    secret: [u8; 32],
}

impl std::fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerKeys({})", self.public_z85())
    }
}

/// No CURVE in the linked libzmq: a build without libsodium.
fn require_curve() -> Result<(), String> {
    if zmq::has("curve") == Some(true) {
        Ok(())
    } else {
        Err("this build's libzmq has no CURVE (it was built without libsodium)".into())
    }
}

/// The 32 bytes of a Z85-encoded key (40 characters).
pub fn decode_key(z85: &str) -> Result<[u8; 32], String> {
    let bad = || format!("{z85:?} is not a CURVE key (40 characters of Z85)");
    const ALPHABET: &str = "0123456789abcdefghijklmnopqrstuvwxyz\
        ABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
    if z85.len() != 40 || !z85.chars().all(|c| ALPHABET.contains(c)) {
        return Err(bad());
    }
    let key: [u8; 32] = zmq::z85_decode(z85)
        .map_err(|_| bad())?
        .try_into()
        .map_err(|_| bad())?;
    // libzmq decodes a group past 2^32 by wrapping: only a round trip tells.
    if encode_key(&key) != z85 {
        return Err(bad());
    }
    Ok(key)
}

fn encode_key(key: &[u8; 32]) -> String {
    zmq::z85_encode(key).expect("32 bytes are a whole number of Z85 groups")
}

// libzmq's, linked through zmq-sys, which does not export this one.
unsafe extern "C" {
    fn zmq_curve_public(
        z85_public_key: *mut std::ffi::c_char,
        z85_secret_key: *const std::ffi::c_char,
    ) -> std::ffi::c_int;
}

/// The public key that goes with `secret` (libzmq's `zmq_curve_public`).
fn public_of(secret: &[u8; 32]) -> Result<[u8; 32], String> {
    let secret_z85 = std::ffi::CString::new(encode_key(secret)).expect("Z85 has no NUL");
    let mut public_z85 = [0u8; 41];
    // SAFETY: both buffers are 41 bytes (40 Z85 characters and a NUL), as
    // zmq_curve_public requires; it writes only into `public_z85`.
    let rc = unsafe { zmq_curve_public(public_z85.as_mut_ptr().cast(), secret_z85.as_ptr()) };
    if rc != 0 {
        return Err("cannot derive the public key (libzmq without CURVE)".into());
    }
    decode_key(std::str::from_utf8(&public_z85[..40]).map_err(|e| e.to_string())?)
}

impl ServerKeys {
    /// A fresh key pair, for one run.
    pub fn generate() -> Result<Self, String> {
        require_curve()?;
        let pair = zmq::CurveKeyPair::new().map_err(|e| format!("cannot make a key pair: {e}"))?;
        Ok(Self {
            public: pair.public_key,
            secret: pair.secret_key,
        })
    }

    /// The key pair kept in `path`; a new one written there (readable by its
    /// owner only) when the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        require_curve()?;
        let shown = path.display();
        match fs::read_to_string(path) {
            Ok(text) => Self::parse(&text).map_err(|e| format!("{shown}: {e}")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let keys = Self::generate()?;
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| format!("cannot create {shown}: {e}"))?;
                f.write_all(keys.file_text().as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(|e| format!("cannot write {shown}: {e}"))?;
                Ok(keys)
            }
            Err(e) => Err(format!("cannot read {shown}: {e}")),
        }
        .and_then(|keys| {
            // A secret others can read is no secret: say so rather than use it.
            let mode = fs::metadata(path)
                .map_err(|e| format!("cannot read {shown}: {e}"))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(format!(
                    "{shown} can be read by others (mode {:o}): chmod 600 it",
                    mode & 0o777
                ));
            }
            Ok(keys)
        })
    }

    /// The file's text: ZeroMQ's certificate layout (as czmq's `zcert` writes
    /// it), so other ZeroMQ tools read it too.
    fn file_text(&self) -> String {
        format!(
            "#   scalelab bus key pair (CurveZMQ). Keep this file secret:\n\
             #   workers pin the public key with --server-key.\n\
             metadata\n\
             curve\n    public-key = \"{}\"\n    secret-key = \"{}\"\n",
            self.public_z85(),
            encode_key(&self.secret)
        )
    }

    /// Reads a key file: its `secret-key`, and its `public-key`, which must be
    /// the secret's own.
    fn parse(text: &str) -> Result<Self, String> {
        let field = |name: &str| {
            text.lines()
                .filter_map(|l| l.trim().split_once('='))
                .find(|(k, _)| k.trim() == name)
                .map(|(_, v)| v.trim().trim_matches('"').to_string())
                .ok_or_else(|| format!("no {name} in the key file"))
        };
        let secret = decode_key(&field("secret-key")?).map_err(|e| format!("secret-key: {e}"))?;
        let public = public_of(&secret)?;
        if let Ok(written) = field("public-key") {
            if decode_key(&written).ok() != Some(public) {
                return Err("its public-key is not the one of its secret-key".into());
            }
        }
        Ok(Self { public, secret })
    }

    /// The public key as workers pin it.
    pub fn public_z85(&self) -> String {
        encode_key(&self.public)
    }

    /// Makes `socket` a CURVE server with this key pair (before it binds).
    pub fn serve_on(&self, socket: &zmq::Socket) -> Result<(), zmq::Error> {
        socket.set_curve_server(true)?;
        socket.set_curve_secretkey(&self.secret)
    }
}

/// Makes `socket` a CURVE client of the server with public key `server`,
/// with a throwaway key pair of its own (before it connects).
pub fn connect_as_client(socket: &zmq::Socket, server: &[u8; 32]) -> Result<(), String> {
    require_curve()?;
    let mine = zmq::CurveKeyPair::new().map_err(|e| format!("cannot make a key pair: {e}"))?;
    let fail = |e: zmq::Error| format!("cannot set up CURVE: {e}");
    socket.set_curve_serverkey(server).map_err(fail)?;
    socket.set_curve_publickey(&mine.public_key).map_err(fail)?;
    socket.set_curve_secretkey(&mine.secret_key).map_err(fail)
}

/// Connections without one completed handshake after which a join gives up.
const HOPELESS_CONNECTS: u32 = 5;

/// What a connecting socket's handshakes did, from its ZeroMQ monitor: tells
/// a wrong key or a mismatched mechanism from a master that is not there.
pub struct HandshakeWatch {
    events: zmq::Socket,
    pub seen: Handshakes,
}

/// The handshakes counted so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Handshakes {
    pub connected: u32,
    pub succeeded: u32,
    /// Handshakes that failed on a protocol or authentication error (a
    /// mechanism mismatch: one side encrypts, the other not). ZeroMQ does not
    /// reconnect after these, so one is final.
    pub refused: u32,
    // Handshakes cut short without detail (what a wrong server key gives)
    // are not counted: ZeroMQ reconnects and tries again, and the connections
    // tell as much.
}

impl Handshakes {
    /// No handshake got through, and none will: one was refused outright, or
    /// connections keep being made and cut short.
    pub fn hopeless(&self) -> bool {
        self.succeeded == 0 && (self.refused > 0 || self.connected >= HOPELESS_CONNECTS)
    }

    /// Why a join got no answer, when the handshakes say: connections were
    /// made but never got through (`encrypted`: this side pinned a key).
    pub fn diagnosis(&self, encrypted: bool) -> Option<String> {
        if self.connected == 0 || self.succeeded > 0 {
            return None;
        }
        Some(if encrypted {
            format!(
                "connected {} time(s), but the encrypted handshake never completed: \
                 the --server-key is not this master's, or its bus is not encrypted",
                self.connected
            )
        } else {
            format!(
                "connected {} time(s), but the handshake never completed: the master's \
                 bus is encrypted; give the --server-key its join command prints",
                self.connected
            )
        })
    }
}

impl HandshakeWatch {
    /// Watches `socket` (call before it connects).
    pub fn attach(zctx: &zmq::Context, socket: &zmq::Socket) -> Result<Self, String> {
        use zmq::SocketEvent as E;
        let fail = |e: zmq::Error| format!("cannot watch the connection: {e}");
        let endpoint = format!("inproc://scalelab-handshakes-{:p}", socket);
        let wanted = E::CONNECTED as i32
            | E::HANDSHAKE_SUCCEEDED as i32
            | E::HANDSHAKE_FAILED_PROTOCOL as i32
            | E::HANDSHAKE_FAILED_AUTH as i32;
        socket.monitor(&endpoint, wanted).map_err(fail)?;
        let events = zctx.socket(zmq::PAIR).map_err(fail)?;
        events.set_linger(0).map_err(fail)?;
        events.connect(&endpoint).map_err(fail)?;
        Ok(Self {
            events,
            seen: Handshakes::default(),
        })
    }

    /// Counts the events that have come in since the last look.
    pub fn update(&mut self) -> Handshakes {
        use zmq::SocketEvent as E;
        while let Ok(frames) = self.events.recv_multipart(zmq::DONTWAIT) {
            let Some(head) = frames.first().filter(|f| f.len() >= 2) else {
                continue;
            };
            let seen = &mut self.seen;
            match E::from_raw(u16::from_le_bytes([head[0], head[1]])) {
                E::CONNECTED => seen.connected += 1,
                E::HANDSHAKE_SUCCEEDED => seen.succeeded += 1,
                E::HANDSHAKE_FAILED_PROTOCOL | E::HANDSHAKE_FAILED_AUTH => seen.refused += 1,
                _ => {}
            }
        }
        self.seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path in a directory of its own, removed with the returned guard.
    fn temp_path(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        (dir, path)
    }

    #[test]
    fn this_build_has_curve() {
        assert_eq!(zmq::has("curve"), Some(true));
    }

    #[test]
    fn a_key_file_is_made_once_then_read_back() {
        let (_dir, path) = temp_path("made");
        let first = ServerKeys::load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = ServerKeys::load_or_create(&path).unwrap();
        assert_eq!(first.public_z85(), again.public_z85());
        assert_eq!(first.secret, again.secret);
        assert_ne!(
            first.public_z85(),
            ServerKeys::generate().unwrap().public_z85()
        );
    }

    #[test]
    fn the_public_key_is_derived_from_the_secret() {
        let keys = ServerKeys::generate().unwrap();
        assert_eq!(public_of(&keys.secret).unwrap(), keys.public);
        let text = keys.file_text();
        assert!(text.contains(&keys.public_z85()));
        assert_eq!(ServerKeys::parse(&text).unwrap().public, keys.public);
    }

    #[test]
    fn bad_key_files_are_refused_with_a_reason() {
        let keys = ServerKeys::generate().unwrap();
        let other = ServerKeys::generate().unwrap();
        let swapped = keys
            .file_text()
            .replace(&keys.public_z85(), &other.public_z85());
        assert!(
            ServerKeys::parse(&swapped)
                .unwrap_err()
                .contains("not the one")
        );
        assert!(
            ServerKeys::parse("curve\n")
                .unwrap_err()
                .contains("no secret-key")
        );
        let short = "secret-key = \"abc\"";
        assert!(
            ServerKeys::parse(short)
                .unwrap_err()
                .contains("not a CURVE key")
        );

        let (_dir, path) = temp_path("open");
        fs::write(&path, keys.file_text()).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = ServerKeys::load_or_create(&path).unwrap_err();
        assert!(e.contains("chmod 600"), "{e}");
    }

    #[test]
    fn a_join_is_hopeless_once_a_handshake_is_refused_or_connections_keep_failing() {
        let seen = |connected, succeeded, refused| Handshakes {
            connected,
            succeeded,
            refused,
        };
        assert!(!seen(0, 0, 0).hopeless(), "no master yet: keep trying");
        assert!(!seen(HOPELESS_CONNECTS - 1, 0, 0).hopeless());
        assert!(seen(HOPELESS_CONNECTS, 0, 0).hopeless());
        assert!(seen(1, 0, 1).hopeless(), "a refused handshake is final");
        assert!(!seen(HOPELESS_CONNECTS, 1, 0).hopeless(), "one got through");
        assert!(!seen(2, 1, 1).hopeless());
    }

    #[test]
    fn a_failed_join_is_diagnosed_from_its_handshakes() {
        let seen = |connected, succeeded| Handshakes {
            connected,
            succeeded,
            ..Handshakes::default()
        };
        assert_eq!(
            seen(0, 0).diagnosis(true),
            None,
            "nothing to say: no master"
        );
        assert_eq!(
            seen(3, 1).diagnosis(true),
            None,
            "the handshake got through"
        );
        let pinned = seen(3, 0).diagnosis(true).unwrap();
        assert!(
            pinned.starts_with("connected 3 time(s)") && pinned.contains("--server-key is not"),
            "{pinned}"
        );
        let plain = seen(1, 0).diagnosis(false).unwrap();
        assert!(
            plain.starts_with("connected 1 time(s)") && plain.contains("bus is encrypted"),
            "{plain}"
        );
    }

    /// A key pair in a log or a panic message shows its public key, never
    /// its secret.
    #[test]
    fn debug_shows_the_public_key_only() {
        let keys = ServerKeys::generate().unwrap();
        let shown = format!("{keys:?}");
        assert_eq!(shown, format!("ServerKeys({})", keys.public_z85()));
        assert!(!shown.contains(&encode_key(&keys.secret)));
    }

    /// Only a missing file is made anew; one that cannot be read is an error
    /// that says so (a directory here), and nothing is written.
    #[test]
    fn a_key_file_that_cannot_be_read_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let e = ServerKeys::load_or_create(dir.path()).unwrap_err();
        assert!(
            e.starts_with("cannot read ") && e.contains(&dir.path().display().to_string()),
            "{e}"
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// Connects a watched DEALER to a ROUTER on loopback, `client` setting up
    /// its side, and counts the handshakes until `done` holds (or 10 s pass).
    fn watch_a_connection(
        server: Option<&ServerKeys>,
        client: impl FnOnce(&zmq::Socket),
        done: impl Fn(&Handshakes) -> bool,
    ) -> Handshakes {
        let zctx = zmq::Context::new();
        let router = zctx.socket(zmq::ROUTER).unwrap();
        router.set_linger(0).unwrap();
        if let Some(keys) = server {
            keys.serve_on(&router).unwrap();
        }
        router.bind("tcp://127.0.0.1:*").unwrap();
        let endpoint = router.get_last_endpoint().unwrap().unwrap();
        let dealer = zctx.socket(zmq::DEALER).unwrap();
        dealer.set_linger(0).unwrap();
        // Reconnect at once, so that a refused handshake's retries come quickly.
        dealer.set_reconnect_ivl(20).unwrap();
        client(&dealer);
        let mut watch = HandshakeWatch::attach(&zctx, &dealer).unwrap();
        dealer.connect(&endpoint).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let seen = watch.update();
            if done(&seen) || std::time::Instant::now() > deadline {
                return seen;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// The monitor's events are counted one each, in their own count: a
    /// good key's handshake succeeds, a wrong key's connections never get
    /// through, and a plain socket against an encrypted master is refused.
    #[test]
    fn the_watch_counts_each_kind_of_handshake_event() {
        let keys = ServerKeys::generate().unwrap();

        let good = watch_a_connection(
            Some(&keys),
            |s| connect_as_client(s, &keys.public).unwrap(),
            |h| h.succeeded > 0,
        );
        assert_eq!((good.connected, good.succeeded, good.refused), (1, 1, 0));
        assert!(!good.hopeless());
        assert_eq!(good.diagnosis(true), None);

        let other = ServerKeys::generate().unwrap();
        let wrong = watch_a_connection(
            Some(&keys),
            |s| connect_as_client(s, &other.public).unwrap(),
            |h| h.connected >= HOPELESS_CONNECTS,
        );
        assert!(wrong.connected >= HOPELESS_CONNECTS, "{wrong:?}");
        assert_eq!((wrong.succeeded, wrong.refused), (0, 0), "{wrong:?}");
        assert!(wrong.hopeless());

        let plain = watch_a_connection(Some(&keys), |_| {}, |h| h.refused > 0);
        assert_eq!((plain.succeeded, plain.refused), (0, 1), "{plain:?}");
        assert!(plain.connected >= 1, "{plain:?}");
        assert!(plain.hopeless());
    }

    #[test]
    fn keys_decode_only_from_40_z85_characters() {
        let keys = ServerKeys::generate().unwrap();
        assert_eq!(decode_key(&keys.public_z85()).unwrap(), keys.public);
        assert!(decode_key("").is_err());
        assert!(decode_key(&"a".repeat(41)).is_err());
        assert!(decode_key(&" ".repeat(40)).is_err());
        assert!(decode_key(&"#".repeat(40)).is_err(), "groups past 2^32");
    }
}
