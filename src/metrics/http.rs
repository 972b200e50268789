//! The metrics endpoint: a plain HTTP/1.1 listener on one thread that answers
//! `GET /metrics` with the Prometheus text format (version 0.0.4), one request per
//! connection. A scrape every few seconds needs no async runtime: a blocking std listener
//! keeps tokio and hyper out of the daemon.
//!
//! Invariants: one connection is served at a time, and a client that stalls is dropped
//! after [`IO_TIMEOUT`]; anything but `GET`/`HEAD` of `/metrics` (or `/`) gets 404 or 405;
//! dropping the [`Endpoint`] stops the thread and any unique bytes pass, and closes the
//! socket.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::registry::Registry;

use super::gauges::PoolGauges;
use super::unique::Unique;
use crate::fs::Engine;

/// How long a client may take to send its request or read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest request head read.
const MAX_HEAD: usize = 8192;

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(
        "cannot serve metrics on {addr}: {source}; choose a free address and port (tandem daemon --metrics 127.0.0.1:9464)"
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the metrics thread: {0}")]
    Thread(std::io::Error),
}

/// A running metrics endpoint.
pub struct Endpoint {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    unique: Arc<Unique>,
}

impl Endpoint {
    /// Listens on `addr` and serves the process's metrics and the pool's gauges (read from
    /// `engine` at each scrape).
    pub fn start(addr: SocketAddr, engine: Weak<Engine>) -> Result<Endpoint, MetricsError> {
        let listener =
            TcpListener::bind(addr).map_err(|source| MetricsError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| MetricsError::Bind { addr, source })?;
        let mut registry = Registry::with_prefix("tandem");
        super::global().register(&mut registry);
        let unique = Unique::new(engine.clone());
        registry.register_collector(Box::new(PoolGauges {
            engine,
            unique: unique.clone(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("tandem-metrics".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stopped.load(Ordering::Acquire) {
                        break;
                    }
                    match conn {
                        Ok(c) => {
                            if let Err(e) = answer(c, &registry) {
                                tracing::debug!("metrics: a scrape ended early: {e}");
                            }
                        }
                        Err(e) => {
                            tracing::debug!("metrics: accept: {e}");
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
            })
            .map_err(MetricsError::Thread)?;
        tracing::info!("serving metrics on http://{addr}/metrics");
        Ok(Endpoint {
            addr,
            stop,
            thread: Some(thread),
            unique,
        })
    }

    /// The address served (the port the kernel chose when asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("the metrics thread panicked");
        }
        // A unique bytes pass holds the engine while it reads: it ends before the pool closes.
        self.unique.stop();
    }
}

/// Reads one request head and answers it.
fn answer(mut conn: TcpStream, registry: &Registry) -> std::io::Result<()> {
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut words = head.lines().next().unwrap_or_default().split(' ');
    let method = words.next().unwrap_or_default();
    let path = words
        .next()
        .unwrap_or_default()
        .split('?')
        .next()
        .unwrap_or_default();
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            let mut body = String::new();
            match prometheus_text::encode(&mut body, registry) {
                Ok(()) => ("200 OK", prometheus_text::CONTENT_TYPE, body),
                Err(_) => (
                    "500 Internal Server Error",
                    "text/plain",
                    "cannot encode the metrics\n".to_string(),
                ),
            }
        }
        ("GET" | "HEAD", "/") => (
            "200 OK",
            "text/plain",
            "tandem daemon: metrics at /metrics\n".to_string(),
        ),
        ("GET" | "HEAD", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_string(),
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        out.extend_from_slice(body.as_bytes());
    }
    conn.write_all(&out)?;
    conn.flush()
}
