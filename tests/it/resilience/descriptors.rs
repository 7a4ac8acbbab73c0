//! At the open-file limit, new client connections are shed while admin, health and the
//! upstream connections of existing clients keep working.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::support::{Redline, config_for, eventually, full, get, sample, serve};

/// Soft and hard limit Redline runs under: its reserve (`fdlimit::reserve`) is 64, so
/// clients are shed from descriptor 192 on.
const NOFILE: u32 = 256;
/// Idle client connections opened: more than the limit.
const FLOOD: usize = NOFILE as usize + 44;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_past_the_descriptor_reserve_are_shed_and_admin_and_old_connections_work() {
    // Every answer closes its connection: each request needs a new upstream descriptor.
    let up = serve(|_| async {
        let mut resp = http::Response::new(full("ok"));
        resp.headers_mut()
            .insert("connection", http::HeaderValue::from_static("close"));
        resp
    })
    .await;
    // Idle connections must outlive the test: no header-read close meanwhile.
    let yaml = config_for(up, "limits:\n  header_read_timeout: 120s\n");
    let rl = Redline::start_with_nofile(&yaml, NOFILE);

    let stream = TcpStream::connect(rl.proxy).await.unwrap();
    let (mut old, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let first = old.send_request(request(&rl)).await.unwrap();
    assert_eq!(first.status(), 200);
    body_of(first).await;

    let mut idle = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        idle.push(TcpStream::connect(rl.proxy).await.unwrap());
    }
    let shed = eventually(Duration::from_secs(10), "connections shed", || async {
        let m = get(&rl.admin_url("/metrics")).await.2;
        sample(&m, "redline_connections_shed_total").filter(|n| *n > 0.0)
    })
    .await;
    assert!(shed >= 1.0, "{shed}");

    assert_eq!(
        get(&rl.admin_url("/healthz")).await.0,
        200,
        "admin at the limit"
    );
    // The old client's request opens a new upstream connection: from the reserve.
    old.ready().await.unwrap();
    let again = old.send_request(request(&rl)).await.unwrap();
    assert_eq!(again.status(), 200, "a request on an old connection");

    let stderr = rl.stderr.lock().unwrap().clone();
    let logged = |what: &str| stderr.iter().filter(|l| l.contains(what)).count();
    assert!(logged("Shedding new client connections") <= 2, "{stderr:?}");
    assert_eq!(logged("Accept failed"), 0, "{stderr:?}");
    drop(idle);
}

fn request(rl: &Redline) -> http::Request<Empty<Bytes>> {
    http::Request::get("/hello")
        .header("host", rl.proxy.to_string())
        .body(Empty::new())
        .unwrap()
}

async fn body_of(resp: http::Response<hyper::body::Incoming>) -> Bytes {
    resp.into_body().collect().await.unwrap().to_bytes()
}
