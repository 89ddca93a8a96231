//! The running service's local API as the command line reaches it (approvals, metrics, sandbox
//! sessions): the address, the bearer token from the service's token file, and errors that name
//! both.
//!
//! The token goes only to a listener that has just proved it knows it: before every request, the
//! client sends a fresh random nonce to `GET /v1/proof` (without the token) and checks the HMAC
//! that comes back in constant time. Any local process can bind the API port while the service is
//! not running, and must not be handed the token. Nothing is remembered between requests.

use std::net::SocketAddr;
use std::path::PathBuf;

use agentsh_service::api;
use clap::Args;

use crate::service_cmd::{DEFAULT_API, default_token_file};

#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// The service's API address
    #[arg(long, default_value = DEFAULT_API, global = true)]
    pub api: SocketAddr,
    /// The service's API token file
    #[arg(long, global = true)]
    pub api_token_file: Option<PathBuf>,
}

/// Why a call to the service failed. Each message names the address or the token file.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot read the service's API token `{}`: {source} (is the agentsh service running?)", path.display())]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the service's API token file `{}` is empty", path.display())]
    EmptyToken { path: PathBuf },
    #[error("cannot reach the agentsh service at {addr}: {message}")]
    Unreachable { addr: SocketAddr, message: String },
    #[error("the agentsh service at {addr} refused the API token from `{}` (401): that file belongs to another run of the service", path.display())]
    Unauthorized { addr: SocketAddr, path: PathBuf },
    #[error("the agentsh service at {addr} answered {status}: {body}")]
    Status {
        addr: SocketAddr,
        status: u16,
        body: String,
    },
    #[error("the agentsh service at {addr} sent an answer this agentsh cannot read: {message}")]
    Malformed { addr: SocketAddr, message: String },
    #[error("the process listening on {addr} does not know the token in {}: it is not this agentsh service; not sending the token ({why})", path.display())]
    Impostor {
        addr: SocketAddr,
        path: PathBuf,
        why: String,
    },
    #[error("cannot draw a random nonce to check the agentsh service: {0}")]
    Random(String),
}

/// A client of the service's local API, holding the token read once from the token file.
#[derive(Debug)]
pub struct ApiClient {
    addr: SocketAddr,
    token_file: PathBuf,
    token: String,
    auth: String,
    agent: ureq::Agent,
}

impl ApiClient {
    /// Reads the token file (`--api-token-file`, else the default location).
    pub fn new(args: &ApiArgs) -> Result<Self, ApiError> {
        let token_file = args
            .api_token_file
            .clone()
            .unwrap_or_else(default_token_file);
        let token = std::fs::read_to_string(&token_file).map_err(|source| ApiError::TokenFile {
            path: token_file.clone(),
            source,
        })?;
        let token = token.trim();
        if token.is_empty() {
            return Err(ApiError::EmptyToken { path: token_file });
        }
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(std::time::Duration::from_secs(30)))
                .build(),
        );
        Ok(ApiClient {
            addr: args.api,
            auth: format!("Bearer {token}"),
            token: token.to_owned(),
            token_file,
            agent,
        })
    }

    /// Makes the listener prove it knows the token: a fresh 32-byte nonce to `GET /v1/proof`,
    /// without the token, and the answer checked in constant time. Every request carrying the
    /// token is preceded by this (nothing is cached: the port may have changed hands).
    fn check_listener(&self) -> Result<(), ApiError> {
        let mut nonce = [0u8; api::PROOF_NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| ApiError::Random(e.to_string()))?;
        let url = self.url(&format!("/v1/proof?nonce={}", api::to_hex(&nonce)));
        let mut response = self
            .agent
            .get(url)
            .call()
            .map_err(|e| ApiError::Unreachable {
                addr: self.addr,
                message: e.to_string(),
            })?;
        let status = response.status();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        let proof = if status.is_success() {
            serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["proof"].as_str().map(str::to_owned))
                .ok_or_else(|| "its answer to `/v1/proof` carries no `proof`".to_owned())
                .and_then(|p| api::parse_hex32("proof", &p))
        } else {
            Err(format!("it answered `/v1/proof` with {}", status.as_u16()))
        };
        let why = match proof {
            Ok(p) if api::verify_proof(&self.token, self.addr, &nonce, &p) => return Ok(()),
            Ok(_) => "its proof does not match the token; if the service was started with another \
                      --api-token-file, pass that file"
                .to_owned(),
            Err(why) => why,
        };
        Err(ApiError::Impostor {
            addr: self.addr,
            path: self.token_file.clone(),
            why,
        })
    }

    /// `GET path`: the body of a successful answer.
    pub fn get(&self, path: &str) -> Result<String, ApiError> {
        self.check_listener()?;
        let request = self
            .agent
            .get(self.url(path))
            .header("Authorization", &self.auth);
        self.finish(request.call())
    }

    /// `POST path` without a body.
    pub fn post(&self, path: &str) -> Result<String, ApiError> {
        self.check_listener()?;
        let request = self
            .agent
            .post(self.url(path))
            .header("Authorization", &self.auth);
        self.finish(request.send_empty())
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn finish(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<String, ApiError> {
        let mut response = result.map_err(|e| ApiError::Unreachable {
            addr: self.addr,
            message: e.to_string(),
        })?;
        let status = response.status();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| ApiError::Malformed {
                addr: self.addr,
                message: e.to_string(),
            })?;
        if status.is_success() {
            Ok(body)
        } else if status == ureq::http::StatusCode::UNAUTHORIZED {
            Err(ApiError::Unauthorized {
                addr: self.addr,
                path: self.token_file.clone(),
            })
        } else {
            Err(ApiError::Status {
                addr: self.addr,
                status: status.as_u16(),
                body: body.trim().to_owned(),
            })
        }
    }
}

/// Session registration: `sandbox run` on Windows, `emulator run --register-through-api` on Unix.
impl ApiClient {
    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Result<String, ApiError> {
        self.check_listener()?;
        let request = self
            .agent
            .delete(self.url(path))
            .header("Authorization", &self.auth);
        self.finish(request.call())
    }

    /// `POST /v1/sessions`: registers a session, returns the service's session id.
    pub fn register_session(
        &self,
        request: &agentsh_service::api::SessionRequest,
    ) -> Result<String, ApiError> {
        let body = serde_json::to_string(request).map_err(|e| ApiError::Malformed {
            addr: self.addr,
            message: format!("cannot encode the session request: {e}"),
        })?;
        self.check_listener()?;
        let answer = self.finish(
            self.agent
                .post(self.url("/v1/sessions"))
                .header("Authorization", &self.auth)
                .header("Content-Type", "application/json")
                .send(body.as_bytes()),
        )?;
        /// The service's answer to `POST /v1/sessions`.
        #[derive(serde::Deserialize)]
        struct Registered {
            session_id: String,
        }
        let registered: Registered =
            serde_json::from_str(&answer).map_err(|e| ApiError::Malformed {
                addr: self.addr,
                message: format!("session registration answer `{}`: {e}", answer.trim()),
            })?;
        if !is_session_id(&registered.session_id) {
            return Err(ApiError::Malformed {
                addr: self.addr,
                message: format!("session id `{}`", registered.session_id),
            });
        }
        Ok(registered.session_id)
    }

    /// `DELETE /v1/sessions/{id}`: ends a session.
    pub fn unregister_session(&self, id: &str) -> Result<(), ApiError> {
        if !is_session_id(id) {
            return Err(ApiError::Malformed {
                addr: self.addr,
                message: format!("session id `{id}`"),
            });
        }
        self.delete(&format!("/v1/sessions/{id}")).map(drop)
    }
}

/// Session ids go into a URL path: the service's ids are short and plain (`s-17`).
fn is_session_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && id != "."
        && id != ".."
}

/// A stand-in for the service's API in tests: a loopback HTTP server that proves it knows its
/// token when asked, answers every other request with the next canned answer, and records what
/// it was sent.
#[cfg(test)]
pub(crate) mod test_service {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{SocketAddr, TcpListener};
    use std::thread::JoinHandle;

    /// One request as the fake service saw it.
    #[derive(Debug)]
    pub(crate) struct Seen {
        pub(crate) request_line: String,
        pub(crate) authorization: Option<String>,
        pub(crate) body: String,
        /// Proof requests answered since the previous request (none of them carried a token).
        pub(crate) proofs_before: usize,
    }

    /// A one-connection-per-request HTTP server: `GET /v1/proof` is answered with the proof of
    /// `token` (and must come without one); every other request with the next of `answers`
    /// (status, body).
    pub(crate) fn serve(
        token: &'static str,
        answers: Vec<(u16, &'static str)>,
    ) -> (SocketAddr, JoinHandle<Vec<Seen>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut proofs = 0;
            let mut answers = answers.into_iter().peekable();
            while let Some(&(status, body)) = answers.peek() {
                let (stream, _) = listener.accept().expect("accept");
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut request_line = String::new();
                reader.read_line(&mut request_line).expect("request line");
                let (mut authorization, mut length) = (None, 0usize);
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).expect("header");
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    let (name, value) = line.split_once(':').expect("header line");
                    match name.to_ascii_lowercase().as_str() {
                        "authorization" => authorization = Some(value.trim().to_owned()),
                        "content-length" => length = value.trim().parse().expect("length"),
                        _ => {}
                    }
                }
                let mut bytes = vec![0; length];
                reader.read_exact(&mut bytes).expect("body");
                let mut stream = stream;
                let nonce = request_line
                    .strip_prefix("GET /v1/proof?nonce=")
                    .and_then(|rest| rest.split(' ').next());
                if let Some(nonce) = nonce {
                    assert_eq!(authorization, None, "the token went with the proof request");
                    let nonce = agentsh_service::api::parse_hex32("nonce", nonce).expect("nonce");
                    let proof = agentsh_service::api::proof(token, addr, &nonce).expect("proof");
                    let answer =
                        format!("{{\"proof\":\"{}\"}}", agentsh_service::api::to_hex(&proof));
                    write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                        answer.len()
                    )
                    .expect("proof");
                    // Not one of `answers`: the next still waits for the request the proof precedes.
                    proofs += 1;
                    continue;
                }
                answers.next();
                seen.push(Seen {
                    request_line: request_line.trim_end().to_owned(),
                    authorization,
                    body: String::from_utf8(bytes).expect("utf-8 body"),
                    proofs_before: std::mem::take(&mut proofs),
                });
                write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .expect("answer");
            }
            seen
        });
        (addr, handle)
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use agentsh_service::api::SessionRequest;

    use super::test_service::serve;
    use super::*;

    fn client(addr: SocketAddr, token: &str) -> (ApiClient, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("api-token");
        std::fs::write(&path, format!("{token}\n")).expect("token");
        let args = ApiArgs {
            api: addr,
            api_token_file: Some(path),
        };
        (ApiClient::new(&args).expect("client"), dir)
    }

    fn request() -> SessionRequest {
        SessionRequest {
            root_pid: 4242,
            app: Some("demo".into()),
            workspace: Some(r"C:\work\demo".into()),
            workspace_device: None,
            user_sid: Some("S-1-5-21-1-2-3-1001".into()),
            audit: false,
        }
    }

    #[test]
    fn registration_posts_the_request_with_the_token_and_returns_the_id() {
        let (addr, server) = serve(
            "f00d",
            vec![
                (201, r#"{"session_id":"s-7"}"#),
                (200, "session `s-7` ended\n"),
            ],
        );
        let (client, _dir) = client(addr, "f00d");
        assert_eq!(
            client.register_session(&request()).expect("register"),
            "s-7"
        );
        client.unregister_session("s-7").expect("unregister");
        let seen = server.join().expect("server");
        assert_eq!(seen[0].request_line, "POST /v1/sessions HTTP/1.1");
        assert_eq!(seen[0].authorization.as_deref(), Some("Bearer f00d"));
        let body: serde_json::Value = serde_json::from_str(&seen[0].body).expect("json body");
        assert_eq!(
            body,
            serde_json::json!({
                "root_pid": 4242,
                "app": "demo",
                "workspace": r"C:\work\demo",
                "user_sid": "S-1-5-21-1-2-3-1001",
                "audit": false
            })
        );
        assert_eq!(seen[1].request_line, "DELETE /v1/sessions/s-7 HTTP/1.1");
        assert_eq!(seen[1].authorization.as_deref(), Some("Bearer f00d"));
        assert!(
            seen.iter().all(|s| s.proofs_before == 1),
            "each request with the token follows a proof: {seen:?}"
        );
    }

    #[test]
    fn a_wrong_token_names_the_token_file() {
        // A listener that proves the token yet refuses it: the refusal names the file.
        let (addr, server) = serve("stale", vec![(401, "missing or wrong API token\n")]);
        let (client, dir) = client(addr, "stale");
        let err = client.register_session(&request()).expect_err("401");
        server.join().expect("server");
        assert!(matches!(err, ApiError::Unauthorized { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&addr.to_string()), "{text}");
        assert!(
            text.contains(&dir.path().join("api-token").display().to_string()),
            "{text}"
        );
    }

    #[test]
    fn refusals_and_odd_answers_are_reported_with_the_address() {
        let (addr, server) = serve(
            "t",
            vec![
                (400, "app name `Microsoft` is not allowed\n"),
                (201, "not json"),
                (201, r#"{"session_id":"../x"}"#),
            ],
        );
        let (client, _dir) = client(addr, "t");
        let refused = client.register_session(&request()).expect_err("400");
        assert_eq!(
            refused.to_string(),
            format!(
                "the agentsh service at {addr} answered 400: app name `Microsoft` is not allowed"
            )
        );
        let garbled = client.register_session(&request()).expect_err("not json");
        assert!(matches!(garbled, ApiError::Malformed { .. }), "{garbled:?}");
        assert!(garbled.to_string().contains("`not json`"), "{garbled}");
        let odd = client.register_session(&request()).expect_err("odd id");
        assert!(odd.to_string().contains("session id `../x`"), "{odd}");
        server.join().expect("server");
        assert!(client.unregister_session("a/b").is_err());
    }

    #[test]
    fn no_listener_is_unreachable_naming_the_address() {
        // Bind and drop: nothing listens on that port afterwards.
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port");
        let (client, _dir) = client(addr, "t");
        let err = client.get("/v1/approvals").expect_err("refused");
        assert!(matches!(err, ApiError::Unreachable { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with(&format!("cannot reach the agentsh service at {addr}: ")),
            "{err}"
        );
    }

    #[test]
    fn a_missing_or_empty_token_file_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("absent");
        let args = ApiArgs {
            api: DEFAULT_API.parse().expect("addr"),
            api_token_file: Some(path.clone()),
        };
        let err = ApiClient::new(&args).expect_err("absent");
        assert!(matches!(err, ApiError::TokenFile { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&format!("`{}`", path.display())),
            "{err}"
        );
        std::fs::write(&path, " \n").expect("write");
        let err = ApiClient::new(&args).expect_err("empty");
        assert!(matches!(err, ApiError::EmptyToken { .. }), "{err:?}");
    }
}
