//! How are connections accepted, timed out and drained? Our own accept loop
//! over hyper (axum's `serve` sets no timer, so a client that sends its
//! headers slowly, or nothing at all, would hold a connection forever):
//!
//! - a connection with no request in flight for `idle_timeout` is closed:
//!   a request's headers must therefore arrive within that time of the
//!   connection opening or of its previous response (slow headers, clients
//!   that never send a byte, idle keep-alive and HTTP/2 connections alike).
//!   A watchdog task per connection keeps that one deadline (and eviction
//!   and shutdown) and signals the connection through a oneshot channel, so
//!   the connection's task polls one cheap receiver on each wake. Hyper's
//!   per-request header timer is not used: it allocates and registers a
//!   timer for every request;
//! - at most `max_connections` are open, kept below the descriptor limit so
//!   `accept` never fails with "Too many open files"; at the cap, the
//!   connection idle the longest is closed to make room, and when every
//!   connection is busy the loop stops accepting until one ends (the kernel's
//!   backlog holds newcomers);
//! - on shutdown, connections finish their in-flight requests (hyper's
//!   graceful shutdown), for at most `drain_timeout`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot, watch};
use tower::ServiceExt;

/// Responses up to this size are written with their head.
const SMALL_BODY: u64 = 64 << 10;

/// When a request's head had arrived (hyper has parsed it): set on every
/// request, so serving measures latency from here, end to end.
#[derive(Debug, Clone, Copy)]
pub struct Arrived(pub Instant);

impl Arrived {
    /// The arrival recorded on a request, or now for one that came another way.
    pub fn of(extensions: &axum::http::Extensions) -> Instant {
        extensions.get::<Arrived>().map_or_else(Instant::now, |a| a.0)
    }
}

/// As a handler argument: [`Arrived::of`] the request.
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Arrived {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Arrived(Arrived::of(&parts.extensions)))
    }
}

/// Limits on connections, enforced by [`serve`].
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Connections open at once; `0` = derived from the descriptor limit.
    pub max_connections: usize,
    /// Time a connection may sit with no request in flight, which bounds
    /// how long a client may take to send a request's headers.
    pub idle_timeout: Duration,
    /// How long shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits { max_connections: 0, idle_timeout: Duration::from_secs(10), drain_timeout: Duration::from_secs(30) }
    }
}

impl ConnLimits {
    /// The cap in force: as configured, or three quarters of the process's
    /// open-file limit (the rest stays for the store, artifacts and logs).
    pub fn effective_max_connections(&self) -> usize {
        if self.max_connections > 0 {
            return self.max_connections;
        }
        (open_file_limit() / 4 * 3).clamp(16, 100_000)
    }
}

/// The soft `RLIMIT_NOFILE`, read from `/proc/self/limits` (no `unsafe`);
/// 1024 where that cannot be read.
fn open_file_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse().ok()
        })
        .unwrap_or(1024)
}

/// One open connection, as the accept loop sees it.
struct Conn {
    in_flight: AtomicUsize,
    /// Milliseconds since `epoch` of the last request start or end.
    last_active: AtomicU64,
    close: Notify,
}

struct Registry {
    epoch: Instant,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Woken whenever a connection ends.
    ended: Notify,
}

impl Registry {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn len(&self) -> usize {
        self.conns.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// Closes the connection idle the longest; false when all are busy.
    fn evict_idle(&self) -> bool {
        let Ok(conns) = self.conns.lock() else { return false };
        let victim = conns
            .values()
            .filter(|c| c.in_flight.load(Ordering::Acquire) == 0)
            .min_by_key(|c| c.last_active.load(Ordering::Acquire));
        match victim {
            Some(c) => {
                c.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Counts a request in flight from its start until its response body is
/// done (or dropped), so downloads are never taken for idle.
struct InFlight {
    conn: Arc<Conn>,
    registry: Arc<Registry>,
}

impl InFlight {
    fn begin(conn: &Arc<Conn>, registry: &Arc<Registry>) -> InFlight {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        conn.last_active.store(registry.now_ms(), Ordering::Release);
        InFlight { conn: conn.clone(), registry: registry.clone() }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.conn.last_active.store(self.registry.now_ms(), Ordering::Release);
        self.conn.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let max = limits.effective_max_connections();
    tracing::info!(max_connections = max, "accepting connections");
    let registry =
        Arc::new(Registry { epoch: Instant::now(), conns: Mutex::new(HashMap::new()), ended: Notify::new() });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        // No timer, so no per-request header timer: `idle_timeout` bounds it.
        .header_read_timeout(None)
        // Room for large headers up to our own 431 check (see `edge.rs`).
        // (The header count stays hyper's default of 100: a larger cap makes
        // it allocate its header arrays on the heap for every request.)
        .max_buf_size(1 << 20);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = Arc::new(builder);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut next_id = 0u64;
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors despite the cap (other files): back off.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // At the cap: make room by closing an idle connection, else wait
        // (not accepting) until one ends.
        while registry.len() >= max {
            let ended = registry.ended.notified();
            if !registry.evict_idle() {
                tracing::debug!("every connection is busy; waiting for one to end");
            }
            tokio::select! {
                _ = ended => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let id = next_id;
        let conn = Arc::new(Conn {
            in_flight: AtomicUsize::new(0),
            last_active: AtomicU64::new(registry.now_ms()),
            close: Notify::new(),
        });
        if let Ok(mut conns) = registry.conns.lock() {
            conns.insert(id, conn.clone());
        }
        tokio::spawn(run_connection(
            id,
            stream,
            peer,
            app.clone(),
            conn,
            registry.clone(),
            builder.clone(),
            limits.idle_timeout,
            stop_rx.clone(),
        ));
    }
    // Drain: stop accepting, let every connection finish what it serves.
    drop(listener);
    let _ = stop_tx.send(true);
    let deadline = tokio::time::Instant::now() + limits.drain_timeout;
    while registry.len() > 0 {
        let ended = registry.ended.notified();
        if registry.len() == 0 {
            break;
        }
        if tokio::time::timeout_at(deadline, ended).await.is_err() {
            tracing::warn!(open = registry.len(), "drain timed out; closing the remaining connections");
            break;
        }
    }
    Ok(())
}

/// What the watchdog tells a connection.
enum Signal {
    /// Finish what is in flight, then close (shutdown).
    Drain,
    /// Close now (idle too long, or evicted to make room).
    Close,
}

/// One connection's deadlines: closes it when evicted or idle for
/// `idle_timeout` (no request in flight), drains it on shutdown; ends with
/// the connection.
async fn watchdog(
    id: u64,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    idle_timeout: Duration,
    mut stop: watch::Receiver<bool>,
    mut tx: oneshot::Sender<Signal>,
) {
    if *stop.borrow() {
        let _ = tx.send(Signal::Drain);
        return;
    }
    // While a request is in flight the idle check waits a whole period again.
    let mut floor = tokio::time::Instant::now();
    loop {
        let idle_since = conn.last_active.load(Ordering::Acquire);
        let idle_deadline =
            tokio::time::Instant::from_std(registry.epoch + Duration::from_millis(idle_since) + idle_timeout)
                .max(floor);
        let signal = tokio::select! {
            _ = tx.closed() => return,
            _ = conn.close.notified() => {
                tracing::debug!(id, "closing an idle connection to make room");
                Signal::Close
            }
            _ = tokio::time::sleep_until(idle_deadline) => {
                let still_idle = conn.in_flight.load(Ordering::Acquire) == 0
                    && conn.last_active.load(Ordering::Acquire) == idle_since;
                if !still_idle {
                    floor = tokio::time::Instant::now() + idle_timeout;
                    continue;
                }
                tracing::debug!(id, "closing a connection idle for {idle_timeout:?}");
                Signal::Close
            }
            _ = stop.changed() => Signal::Drain,
        };
        let _ = tx.send(signal);
        return;
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_connection(
    id: u64,
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    app: Router,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    builder: Arc<Builder<TokioExecutor>>,
    idle_timeout: Duration,
    stop: watch::Receiver<bool>,
) {
    let (svc_conn, svc_registry) = (conn.clone(), registry.clone());
    let service = tower::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(Arrived(Instant::now()));
        // Who is on the other end (counted for failed sign-ins).
        req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        let guard = InFlight::begin(&svc_conn, &svc_registry);
        let app = app.clone();
        async move {
            let response = match app.oneshot(req.map(Body::new)).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            // A small body of known size goes out with the head; a larger or
            // streamed one (downloads) keeps the request in flight until it
            // ends, so an idle check never cuts it.
            if http_body::Body::size_hint(response.body()).exact().is_some_and(|n| n <= SMALL_BODY) {
                drop(guard);
                return Ok::<_, Infallible>(response);
            }
            Ok(response.map(move |body| {
                Body::new(body.map_frame(move |frame| {
                    let _alive = &guard;
                    frame
                }))
            }))
        }
    });
    let served = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    let mut served = std::pin::pin!(served);
    // The deadlines live in a watchdog task of their own, so the connection's
    // task polls one cheap receiver beside the connection on each wake.
    let (signal_tx, mut signal) = oneshot::channel();
    tokio::spawn(watchdog(id, conn.clone(), registry.clone(), idle_timeout, stop, signal_tx));
    let mut draining = false;
    loop {
        tokio::select! {
            result = served.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(error = %e, "connection ended with an error");
                }
                break;
            }
            sig = &mut signal, if !draining => match sig {
                Ok(Signal::Drain) => {
                    draining = true;
                    served.as_mut().graceful_shutdown();
                }
                Ok(Signal::Close) | Err(_) => break,
            },
        }
    }
    if let Ok(mut conns) = registry.conns.lock() {
        conns.remove(&id);
    }
    registry.ended.notify_waiters();
}
