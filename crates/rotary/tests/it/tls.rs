//! TLS (issue #9): the AWS SDK for Rust reaches `rotary serve --tls-cert --tls-key` with a
//! custom root (a throwaway CA made with the `openssl` CLI), over HTTP/2 or HTTP/1.1 by ALPN.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_secretsmanager::Client;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};

use crate::harness::{ACCESS_KEY, SECRET_KEY};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// ca.pem, and server.pem / server.key for 127.0.0.1 signed by it.
fn make_pki(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Rotary SDK CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn client(port: u16, ca_pem: Vec<u8>) -> Client {
    let tls_context = TlsContext::builder()
        .with_trust_store(TrustStore::empty().with_pem_certificate(ca_pem))
        .build()
        .unwrap();
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(tls_context)
        .build_https();
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(format!("https://127.0.0.1:{port}"))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
        .http_client(http)
        .build();
    Client::from_conf(conf)
}

#[tokio::test]
async fn the_rust_sdk_works_over_tls_with_a_custom_root() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("skipped: no openssl CLI");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let _server = Killed(
        Command::new(env!("CARGO_BIN_EXE_rotary"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--tls-cert")
            .arg(dir.path().join("server.pem"))
            .arg("--tls-key")
            .arg(dir.path().join("server.key"))
            .env("ROTARY_ROOT_ACCESS_KEY_ID", ACCESS_KEY)
            .env("ROTARY_ROOT_SECRET_ACCESS_KEY", SECRET_KEY)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let ca = std::fs::read(dir.path().join("ca.pem")).unwrap();
    let sm = client(port, ca);
    // Wait for the server: the first call that gets through.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match sm.list_secrets().send().await {
            Ok(_) => break,
            Err(e) => {
                assert!(Instant::now() < deadline, "no answer over TLS: {e:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    sm.create_secret()
        .name("sdk-tls")
        .secret_string("over-tls")
        .send()
        .await
        .unwrap();
    let got = sm
        .get_secret_value()
        .secret_id("sdk-tls")
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some("over-tls"));

    // A client that does not trust the CA is refused.
    let other = tempfile::tempdir().unwrap();
    make_pki(other.path());
    let untrusting = client(port, std::fs::read(other.path().join("ca.pem")).unwrap());
    assert!(untrusting.list_secrets().send().await.is_err());
}
