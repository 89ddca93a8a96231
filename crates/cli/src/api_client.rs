//! The running service's local API as the command line reaches it (approvals, metrics, sandbox
//! sessions): a Unix socket, or on Windows a named pipe, and errors that name it.
//!
//! No secret is sent: the service authorizes each request from the caller's operating-system
//! identity. The client in turn checks the server before it sends anything — on Unix that the
//! socket's directory belongs to root or to this account and nobody else may write it, and that
//! the process listening (`SO_PEERCRED`) runs as root or as this account; on Windows that the
//! pipe's server process runs as LocalSystem, the agentsh service's SID or this account, opened
//! with `SECURITY_IDENTIFICATION` so an impostor could not act as the client anyway.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use http_body_util::BodyExt;

#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// The service's local API: its Unix socket (default: /run/agentsh/api.sock when it exists,
    /// else this account's runtime directory), or on Windows its pipe (\\.\pipe\agentsh-api)
    #[arg(long, global = true)]
    pub api_socket: Option<PathBuf>,
}

impl ApiArgs {
    /// The endpoint to call.
    pub fn endpoint(&self) -> PathBuf {
        self.api_socket.clone().unwrap_or_else(default_endpoint)
    }
}

/// Where the service listens by default, as a client sees it.
pub fn default_endpoint() -> PathBuf {
    #[cfg(unix)]
    {
        agentsh_service::api::unix::client_default_socket()
    }
    #[cfg(windows)]
    {
        PathBuf::from(agentsh_windows::pipe::API_PIPE)
    }
}

/// Why a call to the service failed. Each message names the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot reach the agentsh service at `{}`: {message} (is the agentsh service running?)", endpoint.display())]
    Unreachable { endpoint: PathBuf, message: String },
    #[error("not calling `{}`: {why}; it is not the agentsh service", endpoint.display())]
    Untrusted { endpoint: PathBuf, why: String },
    #[error("the agentsh service at `{}` refused this account (403): {body}", endpoint.display())]
    Forbidden { endpoint: PathBuf, body: String },
    #[error("the agentsh service at `{}` answered {status}: {body}", endpoint.display())]
    Status {
        endpoint: PathBuf,
        status: u16,
        body: String,
    },
    #[error("the agentsh service at `{}` sent an answer this agentsh cannot read: {message}", endpoint.display())]
    Malformed { endpoint: PathBuf, message: String },
}

/// A client of the service's local API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    endpoint: PathBuf,
}

/// How long one call may take, connection included.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest line a stream may send (an approvals snapshot holds every pending approval).
pub const MAX_STREAM_LINE: usize = 64 << 20;

impl ApiClient {
    /// A client of the service at `args`' endpoint (nothing is opened yet).
    pub fn new(args: &ApiArgs) -> Result<Self, ApiError> {
        Ok(ApiClient {
            endpoint: args.endpoint(),
        })
    }

    /// `GET path`: the body of a successful answer.
    pub fn get(&self, path: &str) -> Result<String, ApiError> {
        self.call("GET", path, None)
    }

    /// `POST path` without a body.
    pub fn post(&self, path: &str) -> Result<String, ApiError> {
        self.call("POST", path, None)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Result<String, ApiError> {
        self.call("DELETE", path, None)
    }

    fn unreachable(&self, message: impl std::fmt::Display) -> ApiError {
        ApiError::Unreachable {
            endpoint: self.endpoint.clone(),
            message: message.to_string(),
        }
    }

    fn malformed(&self, message: impl std::fmt::Display) -> ApiError {
        ApiError::Malformed {
            endpoint: self.endpoint.clone(),
            message: message.to_string(),
        }
    }

    /// One request on a fresh, checked connection, on a thread of its own (callers may be
    /// inside an async runtime or not).
    fn call(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<String, ApiError> {
        let (status, text) = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| self.unreachable(format!("cannot start the client: {e}")))?;
                    runtime.block_on(async {
                        tokio::time::timeout(CALL_TIMEOUT, self.exchange(method, path, body))
                            .await
                            .map_err(|_| {
                                self.unreachable(format!(
                                    "no answer within {} s",
                                    CALL_TIMEOUT.as_secs()
                                ))
                            })?
                    })
                })
                .join()
                .map_err(|_| self.unreachable("the client thread failed"))?
        })?;
        match status {
            200..=299 => Ok(text),
            403 => Err(ApiError::Forbidden {
                endpoint: self.endpoint.clone(),
                body: text.trim().to_owned(),
            }),
            _ => Err(ApiError::Status {
                endpoint: self.endpoint.clone(),
                status,
                body: text.trim().to_owned(),
            }),
        }
    }

    async fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, String), ApiError> {
        let stream = self.open().await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| self.unreachable(e))?;
        let driver = tokio::spawn(connection);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "localhost");
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(http_body_util::Full::new(bytes_of(body)))
            .map_err(|e| self.malformed(format!("cannot build the request: {e}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| self.unreachable(e))?
            .to_bytes();
        driver.abort();
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|e| self.malformed(format!("the answer is not UTF-8: {e}")))?;
        Ok((status, text))
    }

    /// `GET path` as a stream of lines: `on_line` gets each line as it arrives (without its
    /// line feed) and returns `false` to stop. Returns when the service ends the stream.
    /// Lines longer than [`MAX_STREAM_LINE`] are an error.
    pub async fn stream_lines(
        &self,
        path: &str,
        mut on_line: impl FnMut(&str) -> bool,
    ) -> Result<(), ApiError> {
        let stream = tokio::time::timeout(CALL_TIMEOUT, self.open())
            .await
            .map_err(|_| self.unreachable("no connection within 30 s"))??;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| self.unreachable(e))?;
        let driver = tokio::spawn(connection);
        let request = hyper::Request::builder()
            .method("GET")
            .uri(path)
            .header(hyper::header::HOST, "localhost")
            .body(http_body_util::Full::new(hyper::body::Bytes::new()))
            .map_err(|e| self.malformed(format!("cannot build the request: {e}")))?;
        let response = tokio::time::timeout(CALL_TIMEOUT, sender.send_request(request))
            .await
            .map_err(|_| self.unreachable("no answer within 30 s"))?
            .map_err(|e| self.unreachable(e))?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        if status != 200 {
            let bytes = body
                .collect()
                .await
                .map_err(|e| self.unreachable(e))?
                .to_bytes();
            driver.abort();
            let body = String::from_utf8_lossy(&bytes).trim().to_owned();
            return Err(match status {
                403 => ApiError::Forbidden {
                    endpoint: self.endpoint.clone(),
                    body,
                },
                _ => ApiError::Status {
                    endpoint: self.endpoint.clone(),
                    status,
                    body,
                },
            });
        }
        let mut pending: Vec<u8> = Vec::new();
        let result = loop {
            let Some(frame) = body.frame().await else {
                break Ok(());
            };
            let frame = match frame {
                Ok(f) => f,
                Err(e) => break Err(self.unreachable(e)),
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            let mut stop = false;
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line[..end]);
                if !on_line(&text) {
                    stop = true;
                    break;
                }
            }
            if stop {
                break Ok(());
            }
            if pending.len() > MAX_STREAM_LINE {
                break Err(self.malformed(format!(
                    "a line of the stream is longer than {MAX_STREAM_LINE} bytes"
                )));
            }
        };
        driver.abort();
        result
    }

    /// Connects, after and while checking that the server is the service (see the module).
    #[cfg(unix)]
    async fn open(&self) -> Result<tokio::net::UnixStream, ApiError> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let me = agentsh_service::api::unix::effective_uid()
            .map_err(|e| self.unreachable(format!("cannot tell this process's uid: {e}")))?;
        let trusted = |uid: u32| uid == 0 || uid == me;
        let untrusted = |why: String| ApiError::Untrusted {
            endpoint: self.endpoint.clone(),
            why,
        };
        let dir = self
            .endpoint
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let meta = std::fs::symlink_metadata(dir)
            .map_err(|e| self.unreachable(format!("its directory `{}`: {e}", dir.display())))?;
        if !meta.is_dir() {
            return Err(untrusted(format!(
                "its directory `{}` is not a directory",
                dir.display()
            )));
        }
        if !trusted(meta.uid()) || meta.permissions().mode() & 0o022 != 0 {
            return Err(untrusted(format!(
                "its directory `{}` belongs to uid {} with mode {:o}: only root or this account may own it, and nobody else may write it",
                dir.display(),
                meta.uid(),
                meta.permissions().mode() & 0o7777
            )));
        }
        let stream = tokio::net::UnixStream::connect(&self.endpoint)
            .await
            .map_err(|e| self.unreachable(e))?;
        let server = stream
            .peer_cred()
            .map_err(|e| self.unreachable(format!("cannot identify the server: {e}")))?;
        if !trusted(server.uid()) {
            return Err(untrusted(format!(
                "the process serving it runs as uid {}, neither root nor this account",
                server.uid()
            )));
        }
        Ok(stream)
    }

    /// Connects with identification-only impersonation and checks the server process's
    /// account before anything is sent.
    #[cfg(windows)]
    async fn open(&self) -> Result<tokio::net::windows::named_pipe::NamedPipeClient, ApiError> {
        agentsh_windows::pipe::connect(&self.endpoint).map_err(|e| match e {
            agentsh_windows::pipe::ConnectError::Untrusted(why) => ApiError::Untrusted {
                endpoint: self.endpoint.clone(),
                why,
            },
            agentsh_windows::pipe::ConnectError::Io(e) => self.unreachable(e),
        })
    }
}

fn bytes_of(body: Option<Vec<u8>>) -> hyper::body::Bytes {
    body.map(hyper::body::Bytes::from).unwrap_or_default()
}

/// Session registration: `sandbox run` on Windows, `emulator run --register-through-api` on Unix.
impl ApiClient {
    /// `POST /v1/sessions`: registers a session, returns the service's session id.
    pub fn register_session(
        &self,
        request: &agentsh_service::api::SessionRequest,
    ) -> Result<String, ApiError> {
        let body = serde_json::to_vec(request)
            .map_err(|e| self.malformed(format!("cannot encode the session request: {e}")))?;
        let answer = self.call("POST", "/v1/sessions", Some(body))?;
        /// The service's answer to `POST /v1/sessions`.
        #[derive(serde::Deserialize)]
        struct Registered {
            session_id: String,
        }
        let registered: Registered = serde_json::from_str(&answer).map_err(|e| {
            self.malformed(format!(
                "session registration answer `{}`: {e}",
                answer.trim()
            ))
        })?;
        if !is_session_id(&registered.session_id) {
            return Err(self.malformed(format!("session id `{}`", registered.session_id)));
        }
        Ok(registered.session_id)
    }

    /// `DELETE /v1/sessions/{id}`: ends a session.
    pub fn unregister_session(&self, id: &str) -> Result<(), ApiError> {
        if !is_session_id(id) {
            return Err(self.malformed(format!("session id `{id}`")));
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
/// A stand-in for the service's API in tests: a Unix socket in a private directory that answers
/// every request with the next canned answer and records what it was sent.
#[cfg(all(test, unix))]
pub(crate) mod test_service {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::unix::net::UnixListener;
    use std::path::PathBuf;
    use std::thread::JoinHandle;

    /// One request as the fake service saw it.
    #[derive(Debug)]
    pub(crate) struct Seen {
        pub(crate) request_line: String,
        pub(crate) body: String,
    }

    /// A one-connection-per-request HTTP server on a socket in `dir` (which must be private):
    /// every request is answered with the next of `answers` (status, body).
    pub(crate) fn serve(
        dir: &std::path::Path,
        answers: Vec<(u16, &'static str)>,
    ) -> (PathBuf, JoinHandle<Vec<Seen>>) {
        let path = dir.join("api.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for (status, body) in answers {
                let (stream, _) = listener.accept().expect("accept");
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut request_line = String::new();
                reader.read_line(&mut request_line).expect("request line");
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).expect("header");
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    let (name, value) = line.split_once(':').expect("header line");
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().expect("length");
                    }
                }
                let mut bytes = vec![0; length];
                reader.read_exact(&mut bytes).expect("body");
                seen.push(Seen {
                    request_line: request_line.trim_end().to_owned(),
                    body: String::from_utf8(bytes).expect("utf-8 body"),
                });
                let mut stream = stream;
                write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .expect("answer");
            }
            seen
        });
        (path, handle)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use agentsh_service::api::SessionRequest;

    use super::test_service::serve;
    use super::*;

    fn client(socket: PathBuf) -> ApiClient {
        ApiClient::new(&ApiArgs {
            api_socket: Some(socket),
        })
        .expect("client")
    }

    fn request() -> SessionRequest {
        SessionRequest {
            root_pid: 4242,
            app: Some("demo".into()),
            workspace: Some(r"C:\work\demo".into()),
            workspace_device: None,
            user_sid: Some("S-1-5-21-1-2-3-1001".into()),
            audit: false,
            canary: None,
            wall_check: None,
        }
    }

    #[test]
    fn registration_posts_the_request_and_returns_the_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (socket, server) = serve(
            dir.path(),
            vec![
                (201, r#"{"session_id":"s-7"}"#),
                (200, "session `s-7` ended\n"),
            ],
        );
        let client = client(socket);
        assert_eq!(
            client.register_session(&request()).expect("register"),
            "s-7"
        );
        client.unregister_session("s-7").expect("unregister");
        let seen = server.join().expect("server");
        assert_eq!(seen[0].request_line, "POST /v1/sessions HTTP/1.1");
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
    }

    #[test]
    fn refusals_and_odd_answers_are_reported_with_the_endpoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (socket, server) = serve(
            dir.path(),
            vec![
                (400, "app name `Microsoft` is not allowed\n"),
                (201, "not json"),
                (201, r#"{"session_id":"../x"}"#),
                (403, "account 1000 is not an approver\n"),
            ],
        );
        let client = client(socket.clone());
        let refused = client.register_session(&request()).expect_err("400");
        assert_eq!(
            refused.to_string(),
            format!(
                "the agentsh service at `{}` answered 400: app name `Microsoft` is not allowed",
                socket.display()
            )
        );
        let garbled = client.register_session(&request()).expect_err("not json");
        assert!(matches!(garbled, ApiError::Malformed { .. }), "{garbled:?}");
        assert!(garbled.to_string().contains("`not json`"), "{garbled}");
        let odd = client.register_session(&request()).expect_err("odd id");
        assert!(odd.to_string().contains("session id `../x`"), "{odd}");
        let forbidden = client.get("/v1/approvals").expect_err("403");
        assert!(
            matches!(forbidden, ApiError::Forbidden { .. }),
            "{forbidden:?}"
        );
        server.join().expect("server");
        assert!(client.unregister_session("a/b").is_err());
    }

    #[test]
    fn no_listener_is_unreachable_naming_the_endpoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("absent.sock");
        let err = client(socket.clone())
            .get("/v1/approvals")
            .expect_err("absent");
        assert!(matches!(err, ApiError::Unreachable { .. }), "{err:?}");
        assert!(
            err.to_string().starts_with(&format!(
                "cannot reach the agentsh service at `{}`: ",
                socket.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn a_socket_in_a_directory_others_may_write_is_not_called() {
        // Whoever may write the directory may have put the socket there: the client sends
        // nothing to it (the fake server would record any request it received).
        let dir = tempfile::tempdir().expect("tempdir");
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).expect("dir");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let (socket, _server) = serve(&shared, vec![(200, "served by an impostor")]);
        let err = client(socket).get("/v1/approvals").expect_err("untrusted");
        assert!(matches!(err, ApiError::Untrusted { .. }), "{err:?}");
        assert!(
            err.to_string().contains("nobody else may write it"),
            "{err}"
        );
    }
}
