//! The control socket serves only root and the daemon's user, refuses over-long request
//! lines without repeating them, and caps the connections it serves at once.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Pool, wait_until};

const PEER_ENV: &str = "TANDEM_TEST_PEER_SOCKET";

/// Sends one line and reads at most 64 KiB of the answer's first line.
fn ask(sock: &Path, line: &[u8]) -> String {
    let s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = s.try_clone().unwrap();
    let line = line.to_vec();
    // The daemon may close before reading it all: a failed write is expected then.
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&line);
    });
    let mut reply = String::new();
    let _ = BufReader::new(s.take(64 << 10)).read_line(&mut reply);
    let _ = writer.join();
    reply
}

fn ping() -> Vec<u8> {
    br#"{"version":1,"body":{"op":"ping"}}
"#
    .to_vec()
}

#[test]
fn an_over_long_request_is_refused_without_being_echoed() {
    let p = Pool::new();
    p.ok(&["status"]);
    let sock = p.path().join("tandem.sock");
    let name = "a".repeat(2 << 20);
    let req = format!(r#"{{"version":1,"body":{{"op":"volume-info","name":"{name}"}}}}"#) + "\n";
    let reply = ask(&sock, req.as_bytes());
    assert!(reply.len() < 1024, "reply of {} bytes", reply.len());
    assert!(reply.contains("longer than"), "{reply}");
    assert!(!reply.contains("aaaaaaaa"), "{reply}");
    // The daemon is fine and still answers.
    assert!(ask(&sock, &ping()).contains("pong"));
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn connections_beyond_the_cap_are_told_so() {
    let p = Pool::new();
    p.ok(&["status"]);
    let sock = p.path().join("tandem.sock");
    let idle: Vec<UnixStream> = (0..64)
        .map(|_| UnixStream::connect(&sock).unwrap())
        .collect();
    let reply = ask(&sock, &ping());
    assert!(reply.contains("connections already"), "{reply}");
    drop(idle);
    wait_until("a free connection", || ask(&sock, &ping()).contains("pong"));
}

/// Run as another user by `other_users_are_refused_even_through_an_open_socket`.
#[test]
fn peer_client() {
    if let Some(sock) = std::env::var_os(PEER_ENV) {
        print!("{}", ask(Path::new(&sock), &ping()));
    }
}

#[test]
fn other_users_are_refused_even_through_an_open_socket() {
    let p = Pool::new();
    p.ok(&["status"]);
    let sock = p.path().join("tandem.sock");
    // A socket (and pool) with the wrong permissions.
    std::fs::set_permissions(p.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "peer_client", "--nocapture", "--test-threads=1"])
        .env(PEER_ENV, &sock)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("permission denied"), "{out}");
    assert!(!out.contains("pong"), "{out}");
    // Root (the daemon's user here) is still served.
    assert!(ask(&sock, &ping()).contains("pong"));
}

/// The code of an `err` answer (and its message), parsed from the raw line.
fn refusal(sock: &Path, request: &str) -> (String, String) {
    let reply = ask(sock, format!("{request}\n").as_bytes());
    let v: serde_json::Value = serde_json::from_str(&reply).unwrap_or_else(|e| {
        panic!("the answer to {request} is not JSON ({e}): {reply}");
    });
    let err = &v["body"]["err"];
    (
        err["code"].as_str().unwrap_or_default().to_string(),
        err["message"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn refusals_carry_a_stable_code_beside_the_message() {
    let p = Pool::new();
    p.ok(&["volume", "create", "data"]);
    p.ok(&["group", "create", "app", "data"]);
    let sock = p.path().join("tandem.sock");

    let (code, message) = refusal(
        &sock,
        r#"{"version":1,"body":{"op":"volume-info","name":"nope"}}"#,
    );
    assert_eq!(code, "not_found", "{message}");
    assert!(message.contains("no volume named 'nope'"), "{message}");

    let (code, message) = refusal(
        &sock,
        r#"{"version":1,"body":{"op":"volume-create","name":"data","block_size":null}}"#,
    );
    assert_eq!(code, "exists", "{message}");
    assert!(
        message.contains("volume 'data' already exists"),
        "{message}"
    );

    // The refusal is the snapshot layer's, not the dispatcher's.
    let (code, message) = refusal(
        &sock,
        r#"{"version":1,"body":{"op":"volume-delete","name":"data"}}"#,
    );
    assert_eq!(code, "busy", "{message}");
    assert!(message.contains("belongs to group 'app'"), "{message}");

    let (code, message) = refusal(&sock, r#"{"version":1,"body":{"op":"no-such-op"}}"#);
    assert_eq!(code, "invalid", "{message}");
    assert!(message.starts_with("malformed request"), "{message}");
}
