//! The server's edge over real loopback TCP: clients that drip headers, say nothing, or
//! idle between keep-alive requests are cut off by the server, normal requests keep
//! being served meanwhile, a long stream is never cut, and past the connection cap new
//! connections wait until one closes.
//!
//! Bounds are loose (several times the configured limit): the tests assert that the
//! server closes the socket, not how fast.

use crate::common;

use std::time::{Duration, Instant};

use common::start;
use refusal_guard::mock::Script;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ANSWER: &str = "The Great Wall is not visible to the naked eye from low Earth orbit.";

fn addr_of(base_url: &str) -> String {
    base_url
        .trim_start_matches("http://")
        .trim_end_matches("/v1")
        .to_string()
}

/// How a client's socket ended, as the client saw it.
#[derive(Debug, PartialEq)]
enum Ended {
    /// The server closed it (EOF, reset or a failed write).
    ByServer,
    /// Still open when the client gave up waiting.
    StillOpen,
}

/// Keeps `stream` open, writing `drip` every 100 ms when given, until the server closes
/// it or `give_up` passes. Returns what it read before the end.
async fn hold(mut stream: TcpStream, drip: Option<&[u8]>, give_up: Duration) -> (Ended, Vec<u8>) {
    let deadline = Instant::now() + give_up;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if Instant::now() >= deadline {
            return (Ended::StillOpen, got);
        }
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return (Ended::ByServer, got),
                Ok(n) => got.extend_from_slice(&buf[..n]),
            },
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if let Some(bytes) = drip {
                    if stream.write_all(bytes).await.is_err() {
                        return (Ended::ByServer, got);
                    }
                }
            }
        }
    }
}

async fn healthz(client: &reqwest::Client, base_url: &str) -> bool {
    let url = format!("{}/healthz", base_url.trim_end_matches("/v1"));
    matches!(client.get(url).send().await, Ok(r) if r.status() == 200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_and_idle_clients_are_cut_off_while_requests_are_served() {
    let gw = start("[server]\nheader_read_timeout_ms = 400\nidle_timeout_ms = 600").await;
    gw.primary.set_default(Script::answer(ANSWER));
    let addr = addr_of(&gw.base_url);
    let give_up = Duration::from_secs(15);

    // Slow-loris clients: a request line, then one header every 100 ms, forever.
    let mut slow = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\n")
            .await
            .unwrap();
        slow.push(tokio::spawn(hold(s, Some(b"X-Drip: 1\r\n"), give_up)));
    }
    // Clients that connect and say nothing.
    let mut silent = Vec::new();
    for _ in 0..8 {
        let s = TcpStream::connect(&addr).await.unwrap();
        silent.push(tokio::spawn(hold(s, None, give_up)));
    }
    // A keep-alive client that made one request and then idles.
    let mut keep = TcpStream::connect(&addr).await.unwrap();
    keep.write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await
        .unwrap();
    let idler = tokio::spawn(hold(keep, None, give_up));

    // Meanwhile, normal requests are served, on fresh and reused connections.
    let client = reqwest::Client::new();
    for _ in 0..5 {
        assert!(healthz(&client, &gw.base_url).await);
        let r = client
            .post(format!("{}/chat/completions", gw.base_url))
            .json(&json!({"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    for task in slow {
        let (ended, got) = task.await.unwrap();
        assert_eq!(ended, Ended::ByServer, "a dripping client was cut off");
        assert!(
            got.is_empty(),
            "it got no response: {:?}",
            String::from_utf8_lossy(&got)
        );
    }
    for task in silent {
        assert_eq!(
            task.await.unwrap().0,
            Ended::ByServer,
            "a silent client was cut off"
        );
    }
    let (ended, got) = idler.await.unwrap();
    assert_eq!(ended, Ended::ByServer, "an idle keep-alive connection was closed");
    let got = String::from_utf8_lossy(&got);
    assert!(
        got.starts_with("HTTP/1.1 200") && got.ends_with("ok"),
        "its request was answered first: {got}"
    );
    assert!(
        healthz(&reqwest::Client::new(), &gw.base_url).await,
        "still serving"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_longer_than_the_idle_and_header_timeouts_is_not_cut() {
    let gw = start("[server]\nheader_read_timeout_ms = 200\nidle_timeout_ms = 200").await;
    let long: String = (0..60).map(|i| format!("word{i} ")).collect();
    // Pauses between chunks longer than either timeout, and a whole stream much longer.
    gw.primary.set_default(
        Script::answer(&long)
            .delay_first_byte(Duration::from_millis(300))
            .delay_between_chunks(Duration::from_millis(25)),
    );
    let r = reqwest::Client::new()
        .post(format!("{}/chat/completions", gw.base_url))
        .json(&json!({"model": "qwen-plus", "stream": true, "messages": [{"role": "user", "content": "count"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("word59"), "the whole stream arrived: {text}");
    assert!(text.contains("data: [DONE]"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_new_connections_wait_for_a_free_slot() {
    let gw =
        start("[server]\nmax_connections = 3\nheader_read_timeout_ms = 60000\nidle_timeout_ms = 60000").await;
    let addr = addr_of(&gw.base_url);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    // Let the server accept the three.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = reqwest::Client::new();
    let waiting = tokio::spawn({
        let base = gw.base_url.clone();
        async move { healthz(&client, &base).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "a fourth connection is not served at the cap"
    );
    drop(held.pop());
    let served = tokio::time::timeout(Duration::from_secs(10), waiting).await;
    assert!(
        matches!(served, Ok(Ok(true))),
        "served once a slot was free: {served:?}"
    );
}
