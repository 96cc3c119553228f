//! `bench-ref ADDR`: the bare hyper reference that `scripts/bench/run` measures Rotary
//! against (issue #15).
//!
//! It answers every `POST` with the body a Rotary server returns for GetSecretValue on the
//! benchmark's secret, over HTTP/1.1 keep-alive on a multi-threaded tokio runtime, and does
//! nothing else: no signature check, no routing, no storage, no crypto. Its requests per
//! second are the ceiling that this machine, this client (wrk on the same cores) and hyper
//! allow, so `Rotary / reference` says how much of that ceiling Rotary's own work leaves.
//! It reads each request body in full, as any server must before it answers.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What Rotary answers to GetSecretValue for `hot-000000` (same members, same sizes: a
/// 6-character ARN suffix, a UUID version id, the benchmark's 50-byte JSON value).
const BODY: &str = concat!(
    r#"{"ARN":"arn:aws:secretsmanager:us-east-1:000000000000:secret:hot-000000-AbCdEf","#,
    r#""Name":"hot-000000","VersionId":"0b4c6f9e-3a53-4f1e-9d2a-6c1b8f0e7d21","#,
    r#""SecretString":"{\"username\": \"app\", \"password\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}","#,
    r#""VersionStages":["AWSCURRENT"],"CreatedDate":1764532800.123}"#
);
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const DEFAULT_ADDR: &str = "127.0.0.1:8751";

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let is_post = req.method() == Method::POST;
    // Read the whole body, as Rotary does before it verifies the signature.
    let _ = req.into_body().collect().await;
    // Anything else (GET /health for readiness polling): an empty 200.
    let body = if is_post { BODY.as_bytes() } else { b"" };
    let mut resp = Response::new(Full::new(Bytes::from_static(body)));
    if is_post {
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(CONTENT_TYPE),
        );
    }
    Ok(resp)
}

#[tokio::main]
async fn main() {
    let arg = std::env::args().nth(1);
    let addr: SocketAddr = match arg.as_deref().unwrap_or(DEFAULT_ADDR).parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("usage: bench-ref [ADDR, default {DEFAULT_ADDR}]: {e}");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bench-ref: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        // As Rotary's listener does: answers are small and must not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(tcp), service_fn(answer))
                .await;
        });
    }
}
