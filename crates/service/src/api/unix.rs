//! The API's Unix socket: a socket in a directory only the service's account can write (so no
//! other account can create, replace or squat its name), connectable by every local account,
//! each caller identified by `SO_PEERCRED` (uid, gid and pid as the kernel recorded them at
//! `connect`) and, for the approvers group, the supplementary groups of that pid.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{Api, Caller, Via};

/// The socket of a service running as root.
pub const SYSTEM_SOCKET: &str = "/run/agentsh/api.sock";

/// This process's effective uid (the owner of `/proc/self`).
pub fn effective_uid() -> std::io::Result<u32> {
    std::fs::metadata("/proc/self").map(|m| m.uid())
}

/// Where a service running as this account puts its socket: [`SYSTEM_SOCKET`] for root, else
/// `agentsh/api.sock` under `XDG_RUNTIME_DIR`, else under `/tmp/agentsh-<uid>` (a directory
/// the service creates private and refuses if another account made it first).
pub fn default_socket() -> PathBuf {
    match effective_uid() {
        Ok(0) => PathBuf::from(SYSTEM_SOCKET),
        uid => {
            let user_dir = std::env::var_os("XDG_RUNTIME_DIR")
                .filter(|d| !d.is_empty())
                .map(|d| PathBuf::from(d).join("agentsh"));
            user_dir
                .unwrap_or_else(|| {
                    let uid = uid.map(|u| u.to_string()).unwrap_or_else(|_| "user".into());
                    std::env::temp_dir().join(format!("agentsh-{uid}"))
                })
                .join("api.sock")
        }
    }
}

/// Where a client looks for the service: the system socket when it exists, else this
/// account's own.
pub fn client_default_socket() -> PathBuf {
    let system = PathBuf::from(SYSTEM_SOCKET);
    if std::fs::symlink_metadata(&system).is_ok() {
        system
    } else {
        default_socket()
    }
}

fn refuse(dir: &Path, why: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!(
            "API socket directory `{}` {why}; choose another with --api-socket",
            dir.display()
        ),
    )
}

/// Checks that `dir` is a real directory owned by `uid` that nobody else may write.
pub fn check_private_dir(dir: &Path, uid: u32) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(refuse(dir, "is not a directory (a symbolic link?)"));
    }
    if meta.uid() != uid {
        return Err(refuse(
            dir,
            &format!(
                "belongs to uid {}, not to this service's uid {uid}",
                meta.uid()
            ),
        ));
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(refuse(dir, "is writable by other accounts"));
    }
    Ok(())
}

/// Binds the socket at `path`: its directory is created (mode 0755) when missing, and must be
/// owned by this account and writable by no other. A socket left by a previous run is
/// replaced; a socket some running process still answers on is not (`AddrInUse`), and neither
/// is anything that is not a socket.
pub fn bind(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let uid = effective_uid()?;
    if std::fs::symlink_metadata(dir).is_err() {
        std::fs::DirBuilder::new().mode(0o755).create(dir)?;
    }
    check_private_dir(dir, uid)?;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!(
                        "another process is serving at `{}` (is another agentsh service running?)",
                        path.display()
                    ),
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("`{}` exists and is not a socket", path.display()),
            ));
        }
        Err(_) => {}
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    // Every account may connect; each endpoint decides from the caller's identity.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

/// How a Unix caller is judged an approver: root, or a member of `group` (by name).
#[derive(Debug, Clone, Default)]
pub struct Approvers {
    /// The approvers group's gid, resolved from `/etc/group` when the service starts.
    pub gid: Option<u32>,
}

impl Approvers {
    /// Resolves `group` (a name, or a numeric gid) through `/etc/group`.
    pub fn resolve(group: Option<&str>) -> std::io::Result<Self> {
        let Some(group) = group else {
            return Ok(Approvers::default());
        };
        if let Ok(gid) = group.parse::<u32>() {
            return Ok(Approvers { gid: Some(gid) });
        }
        let table = std::fs::read_to_string("/etc/group")?;
        table
            .lines()
            .filter_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let gid = fields.nth(1)?.parse().ok()?;
                (name == group).then_some(gid)
            })
            .next()
            .map(|gid| Approvers { gid: Some(gid) })
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("approvers group `{group}` is not in /etc/group"),
                )
            })
    }

    /// Whether uid `uid` with primary gid `gid` and process `pid` is an approver.
    fn admits(&self, uid: u32, gid: u32, pid: Option<u32>) -> bool {
        if uid == 0 {
            return true;
        }
        let Some(group) = self.gid else {
            return false;
        };
        gid == group || pid.is_some_and(|p| supplementary_groups(p).contains(&group))
    }
}

/// The supplementary groups of `pid` (`Groups:` of `/proc/<pid>/status`).
fn supplementary_groups(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Groups:")).map(|g| {
                g.split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// The owner of `pid` (the uid of `/proc/<pid>`).
pub fn owner_of(pid: u32) -> Option<u32> {
    std::fs::metadata(format!("/proc/{pid}"))
        .ok()
        .map(|m| m.uid())
}

/// The parent of `pid` (`/proc/<pid>/stat` field 4, read after the command name's last `)`).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// `pid`'s ancestors, nearest first, up to (not including) pid 1; at most 256.
pub fn ancestors(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut at = pid;
    while out.len() < 256 {
        match parent_of(at) {
            Some(p) if p > 1 && p != at => {
                out.push(p);
                at = p;
            }
            _ => break,
        }
    }
    out
}

/// The caller on an accepted connection, from `SO_PEERCRED`.
pub fn caller_of(
    stream: &tokio::net::UnixStream,
    approvers: &Approvers,
) -> std::io::Result<Caller> {
    let cred = stream.peer_cred()?;
    // A pid of 0 means the peer lives in another pid namespace: it stays unknown.
    let pid = cred
        .pid()
        .and_then(|p| u32::try_from(p).ok())
        .filter(|p| *p != 0);
    Ok(Caller {
        pid,
        account: cred.uid().to_string(),
        approver: approvers.admits(cred.uid(), cred.gid(), pid),
        restricted_token: false,
        via: Via::Local,
    })
}

/// Serves the API on `listener` until the task is dropped; the socket file is removed when
/// the returned guard is dropped.
pub fn serve(
    listener: tokio::net::UnixListener,
    path: PathBuf,
    api: Api,
    approvers: Approvers,
) -> tokio::task::JoinHandle<()> {
    let router = api.local_router();
    let approvers = Arc::new(approvers);
    tokio::spawn(async move {
        let _remove = RemoveOnDrop(path.clone());
        let mut failing = false;
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => {
                    if failing {
                        failing = false;
                        api.report(format!("API socket `{}`: accepting again", path.display()));
                    }
                    stream
                }
                Err(e) => {
                    // Descriptor exhaustion and the like: reported once per episode, retried
                    // without spinning; the driver is answered meanwhile.
                    if !failing {
                        failing = true;
                        api.report(format!(
                            "API socket `{}`: cannot accept connections: {e}",
                            path.display()
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let caller = match caller_of(&stream, &approvers) {
                Ok(c) => c,
                Err(_) => continue,
            };
            let Some(admission) = api.admit(&caller.account) else {
                // Over a limit: closed at once, so it holds no descriptor.
                continue;
            };
            let api = api.clone();
            let router = router.clone();
            tokio::spawn(async move {
                api.serve_connection(stream, caller, router).await;
                drop(admission);
            });
        }
    })
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
