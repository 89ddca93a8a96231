//! `agentsh approvals` and `agentsh metrics` talk to the service only after it proves it knows the
//! token: a listener that cannot prove it is refused and never sees the token, and the real
//! service keeps answering.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

const TOKEN: &str = "00112233445566778899aabbccddeeff";

fn agentsh(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agentsh"))
        .args(args)
        .output()
        .expect("runs agentsh");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

type Answer = Box<dyn Fn(&str) -> (u16, String) + Send>;

/// A process squatting on the API port: it records every request it receives, whole, and
/// answers each with `answer(request)`.
struct Squatter {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Squatter {
    fn start(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
        let addr = listener.local_addr().expect("address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let received = received.clone();
            let stop = stop.clone();
            move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut stream) = stream else { continue };
                    let request = read_request(&mut stream);
                    let (status, body) = answer(&request);
                    received.lock().expect("record").push(request);
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(reply.as_bytes());
                }
            }
        });
        Squatter {
            addr,
            received,
            stop,
            thread: Some(thread),
        }
    }

    fn received(&self) -> Vec<String> {
        self.received.lock().expect("record").clone()
    }
}

impl Drop for Squatter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The request head (a GET has no body); whatever arrives until the blank line or the end.
fn read_request(stream: &mut TcpStream) -> String {
    let mut data = Vec::new();
    let mut byte = [0u8; 1];
    while !data.ends_with(b"\r\n\r\n") && data.len() < 64 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => data.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&data).into_owned()
}

/// The nonce a proof request carries.
fn nonce_of(request: &str) -> Option<[u8; 32]> {
    let query = request.split_whitespace().nth(1)?;
    let hex = query.strip_prefix("/v1/proof?nonce=")?;
    agentsh_service::api::parse_hex32("nonce", hex).ok()
}

fn write_token(dir: &Path, token: &str) -> String {
    let file = dir.join("api-token");
    std::fs::write(&file, format!("{token}\n")).expect("token file");
    file.to_str().expect("utf-8").to_owned()
}

#[test]
fn a_listener_that_cannot_prove_the_token_is_refused_and_never_receives_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = write_token(dir.path(), TOKEN);
    let cases: [(&str, Answer); 5] = [
        (
            "a wrong proof",
            Box::new(|_| (200, format!("{{\"proof\":\"{}\"}}", "00".repeat(32)))),
        ),
        (
            "the proof of another token",
            Box::new(|request| {
                let proof = nonce_of(request)
                    .and_then(|n| {
                        agentsh_service::api::proof(
                            "ffeeddccbbaa99887766554433221100",
                            "127.0.0.1:7878".parse().expect("addr"),
                            &n,
                        )
                    })
                    .map(|p| agentsh_service::api::to_hex(&p))
                    .unwrap_or_default();
                (200, format!("{{\"proof\":\"{proof}\"}}"))
            }),
        ),
        (
            // A squatter relaying the nonce to the real service on another address gets the
            // token's proof for that address, which is not the one the CLI asked.
            "the token's proof relayed from another address",
            Box::new(|request| {
                let proof = nonce_of(request)
                    .and_then(|n| {
                        agentsh_service::api::proof(
                            TOKEN,
                            "127.0.0.1:7878".parse().expect("addr"),
                            &n,
                        )
                    })
                    .map(|p| agentsh_service::api::to_hex(&p))
                    .unwrap_or_default();
                (200, format!("{{\"proof\":\"{proof}\"}}"))
            }),
        ),
        (
            "no proof endpoint",
            Box::new(|_| (404, "not found".to_owned())),
        ),
        (
            "an answer that is no proof",
            Box::new(|_| (200, "[]".to_owned())),
        ),
    ];
    for (what, answer) in cases {
        let squatter = Squatter::start(answer);
        let addr = squatter.addr.to_string();
        let commands: [&[&str]; 4] = [
            &["approvals", "list"],
            &["approvals", "approve", "1", "--session"],
            &["approvals", "deny", "1"],
            &["metrics"],
        ];
        for command in commands {
            let mut args = command.to_vec();
            args.extend(["--api", &addr, "--api-token-file", &token_file]);
            let (code, stdout, stderr) = agentsh(&args);
            assert_eq!(code, 1, "{what}, {command:?}: {stdout}{stderr}");
            let refusal = format!(
                "agentsh: the process listening on {addr} does not know the token in {token_file}: it is not this agentsh service; not sending the token ("
            );
            assert!(
                stderr.starts_with(&refusal),
                "{what}, {command:?}: {stderr}"
            );
            assert!(stdout.is_empty(), "{what}, {command:?}: {stdout}");
        }
        let received = squatter.received();
        assert_eq!(received.len(), 4, "{what}: one proof request a command");
        let mut nonces = Vec::new();
        for request in &received {
            assert!(
                !request.to_ascii_lowercase().contains("authorization"),
                "{what}: the token was sent:\n{request}"
            );
            assert!(
                !request.contains(TOKEN),
                "{what}: the token was sent:\n{request}"
            );
            nonces.push(nonce_of(request).unwrap_or_else(|| {
                panic!("{what}: not a proof request with a 32-byte nonce:\n{request}")
            }));
        }
        nonces.sort();
        nonces.dedup();
        assert_eq!(nonces.len(), 4, "{what}: a fresh nonce every time");
    }
}

/// Approvals and metrics through the real service: the emulator plays the driver, the service
/// and its API run in this process, and the `agentsh` binary is the client.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_and_metrics_through_the_real_service() {
    use agentsh_emulator::emulator::Emulator;
    use agentsh_emulator::request::{OperationRequest, Target, Verdict};
    use agentsh_policy::{Policy, SessionContext};
    use agentsh_service::events::EventPipeline;
    use agentsh_service::{Service, SocketTransport, api};
    use agentsh_wire::Operation;

    async fn cli(args: Vec<String>) -> (i32, String, String) {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            agentsh(&args)
        })
        .await
        .expect("joins")
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("port.sock");
    let emulator = Emulator::start(&socket, 3).expect("listens");
    let policy = Policy::embedded_default().expect("policy");
    let (pipeline, _events) = EventPipeline::channel(256);
    let service = Arc::new(
        Service::start(
            SocketTransport::connect(&socket).await.expect("connects"),
            &policy,
            pipeline,
        )
        .await
        .expect("starts"),
    );
    let context = SessionContext::new(Some("TestApp"), Some("C:\\work"), None).expect("context");
    service
        .register_session(4100, context, false)
        .await
        .expect("session");
    let token = api::new_token().expect("token");
    let token_file = dir.path().join("private").join("api-token");
    api::write_token_file(&token_file, &token).expect("token file");
    let (addr, _api) = api::serve(
        "127.0.0.1:0".parse().expect("addr"),
        service.adapter.clone(),
        service.clone(),
        token,
    )
    .await
    .expect("serves");
    let with_api = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        v.extend([
            "--api".to_owned(),
            addr.to_string(),
            "--api-token-file".to_owned(),
            token_file.to_str().expect("utf-8").to_owned(),
        ]);
        v
    };

    assert_eq!(
        cli(with_api(&["approvals", "list"])).await,
        (0, "no approvals pending\n".to_owned(), String::new())
    );

    let create = OperationRequest {
        pid: 4100,
        thread_id: 1,
        target: Target::registry(
            Operation::CreateKey,
            "\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services\\x",
            "",
            None,
            0,
            0,
        ),
    };
    let person = async {
        for _ in 0..100 {
            let (code, list, stderr) = cli(with_api(&["approvals", "list"])).await;
            assert_eq!(code, 0, "{stderr}");
            if let Some(id) = list
                .split_whitespace()
                .next()
                .and_then(|id| id.parse::<u32>().ok())
            {
                assert!(list.contains("CreateKey"), "{list}");
                let id = id.to_string();
                return cli(with_api(&["approvals", "approve", &id, "--session"])).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        (-1, String::new(), "no approval showed up".to_owned())
    };
    let (out, (code, stdout, stderr)) = tokio::join!(emulator.perform(&create), person);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.ends_with(": allow\n"), "{stdout}");
    assert_eq!(out.verdict, Verdict::Allow);

    let (code, _, stderr) = cli(with_api(&["approvals", "deny", "999"])).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("404") && stderr.contains("no pending approval with id `999`"),
        "{stderr}"
    );

    let (code, metrics, stderr) = cli(with_api(&["metrics"])).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        metrics.contains("agentsh_approvals_opened_total 1"),
        "{metrics}"
    );

    // A token file from another run: the real service cannot prove that token either.
    let stale = write_token(dir.path(), TOKEN);
    let mut args = vec!["metrics".to_owned(), "--api".to_owned(), addr.to_string()];
    args.extend(["--api-token-file".to_owned(), stale]);
    let (code, _, stderr) = cli(args).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("does not know the token in"), "{stderr}");
}
