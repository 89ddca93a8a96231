//! The service's view of sandbox sessions: the secret token the driver puts in every request,
//! the public id events carry instead, and the registration the policy's variables expand from.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use agentsh_policy::SessionContext;

/// One registered session.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Public identifier, used in events and the API (`s-<n>`); never the token.
    pub id: String,
    /// The numeric form of `id` sent to the driver.
    pub numeric_id: u64,
    pub root_pid: u32,
    pub context: Arc<SessionContext>,
    /// Audit mode: decisions are made and recorded, but every operation is allowed.
    pub audit: bool,
    /// The wall check's canary name: every write-class operation of this session on a key or
    /// file whose last component is this name is denied (`sandbox run`'s driver probes).
    pub canary: Option<Arc<str>>,
    /// The wall check's result as `sandbox run` reported it when registering the command.
    pub wall_check: Option<Arc<str>>,
}

/// What a registration may carry beyond the context: the wall check's canary and result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionExtras {
    pub canary: Option<String>,
    pub wall_check: Option<String>,
}

/// Token → session. Tokens are 64-bit values from the OS's random source, never 0.
#[derive(Debug, Default)]
pub struct SessionRegistry {
    inner: RwLock<Inner>,
    /// Where the table is kept across a restart of the service ([`SessionRegistry::keep_in`]).
    file: Mutex<Option<PathBuf>>,
}

/// A session as the service keeps it on disk, so that after the service restarts the sessions
/// the driver still has (it keeps them while no service is connected) are known again: their
/// requests decided in their own context and their events carrying the same `session_id`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedSession {
    pub id: String,
    pub numeric_id: u64,
    /// The secret the driver puts in the session's requests; the file is readable by the
    /// service's account only.
    pub token: u64,
    pub root_pid: u32,
    pub app: Option<String>,
    pub workspace: Option<String>,
    /// The workspace as the rules compare it (a device path given at registration resolved).
    pub workspace_canonical: Option<String>,
    pub user_sid: Option<String>,
    pub audit: bool,
    /// The wall check's canary and result (absent in files written before they existed).
    #[serde(default)]
    pub canary: Option<String>,
    #[serde(default)]
    pub wall_check: Option<String>,
}

/// A session file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SessionFileError {
    #[error("session file {path}: {message}")]
    Bad { path: String, message: String },
}

impl SavedSession {
    fn from_info(token: u64, info: &SessionInfo) -> Self {
        let c = &info.context;
        SavedSession {
            id: info.id.clone(),
            numeric_id: info.numeric_id,
            token,
            root_pid: info.root_pid,
            app: c.app_name().map(str::to_owned),
            workspace: c.workspace().map(str::to_owned),
            workspace_canonical: c.workspace_canonical().map(str::to_owned),
            user_sid: c.user_sid().map(str::to_owned),
            audit: info.audit,
            canary: info.canary.as_deref().map(str::to_owned),
            wall_check: info.wall_check.as_deref().map(str::to_owned),
        }
    }

    /// The session record again, its context checked as a registration is.
    fn to_info(&self) -> Result<SessionInfo, String> {
        if self.token == 0 || self.numeric_id == 0 || self.id != format!("s-{}", self.numeric_id) {
            return Err(format!(
                "session `{}`: the token and numeric id must be non-zero and the id `s-<numeric id>`",
                self.id
            ));
        }
        let mut context = SessionContext::new(
            self.app.as_deref(),
            self.workspace.as_deref(),
            self.user_sid.as_deref(),
        )
        .map_err(|e| format!("session `{}`: {e}", self.id))?;
        if let Some(canonical) = &self.workspace_canonical
            && context.workspace_canonical() != Some(canonical.as_str())
        {
            // Canonicalizing is idempotent: the resolved form resolves to itself.
            context = context
                .with_workspace_device(canonical, &agentsh_policy::filepath::VolumeMap::new())
                .map_err(|e| format!("session `{}`: {e}", self.id))?;
        }
        Ok(SessionInfo {
            id: self.id.clone(),
            numeric_id: self.numeric_id,
            root_pid: self.root_pid,
            context: Arc::new(context),
            audit: self.audit,
            canary: self.canary.as_deref().map(Arc::from),
            wall_check: self.wall_check.as_deref().map(Arc::from),
        })
    }
}

/// Reads a session file; a missing file is an empty table.
pub fn load_file(path: &Path) -> Result<Vec<SavedSession>, SessionFileError> {
    let bad = |message: String| SessionFileError::Bad {
        path: path.display().to_string(),
        message,
    };
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(bad(e.to_string())),
    }
}

/// Writes `sessions` to `path` whole (a temporary file renamed over it), readable and writable
/// by the service's account only.
pub fn save_file(path: &Path, sessions: &[SavedSession]) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(sessions).map_err(std::io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp)?;
        // Protected while still empty: the tokens are never readable under an inherited DACL.
        #[cfg(windows)]
        agentsh_windows::secure::protect_service_file(&tmp).map_err(std::io::Error::other)?;
        std::io::Write::write_all(&mut f, &json)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[derive(Debug, Default)]
struct Inner {
    by_token: HashMap<u64, Arc<SessionInfo>>,
    next_id: u64,
    /// Numeric ids of sessions read from the session file that the driver has not confirmed
    /// holding: after a reboot or a driver reload their root pids may belong to other processes,
    /// so they are never registered with the driver again.
    unconfirmed: std::collections::HashSet<u64>,
}

/// A token shown in logs: enough to correlate, never enough to use.
pub fn redact(token: u64) -> String {
    format!("{:04x}…", token >> 48)
}

/// A fresh unguessable token.
pub fn new_token() -> std::io::Result<u64> {
    loop {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
        let t = u64::from_le_bytes(bytes);
        if t != 0 {
            return Ok(t);
        }
    }
}

impl SessionRegistry {
    /// Keeps the table in `path` from now on: written after every change. Call after
    /// [`SessionRegistry::restore`].
    pub fn keep_in(&self, path: PathBuf) -> std::io::Result<()> {
        if let Ok(mut f) = self.file.lock() {
            *f = Some(path);
        }
        self.save()
    }

    /// Takes back the sessions of a previous run of the service (from [`load_file`]); new
    /// sessions are numbered after them. Returns how many were restored.
    pub fn restore(&self, saved: &[SavedSession]) -> Result<usize, String> {
        let infos = saved
            .iter()
            .map(|s| s.to_info().map(|i| (s.token, i)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut inner = self
            .inner
            .write()
            .map_err(|_| "session table poisoned".to_owned())?;
        for (token, info) in infos {
            if inner
                .by_token
                .values()
                .any(|s| s.numeric_id == info.numeric_id)
                || inner.by_token.contains_key(&token)
            {
                return Err(format!("session `{}` appears twice", info.id));
            }
            inner.next_id = inner.next_id.max(info.numeric_id);
            inner.unconfirmed.insert(info.numeric_id);
            inner.by_token.insert(token, Arc::new(info));
        }
        Ok(inner.by_token.len())
    }

    /// Sessions read from the session file whose root the driver has not yet been seen to hold.
    pub fn unconfirmed(&self) -> Vec<Arc<SessionInfo>> {
        self.inner
            .read()
            .map(|i| {
                i.by_token
                    .values()
                    .filter(|s| i.unconfirmed.contains(&s.numeric_id))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The driver holds this restored session: it is treated as one registered in this run.
    pub fn confirm(&self, numeric_id: u64) {
        if let Ok(mut inner) = self.inner.write() {
            inner.unconfirmed.remove(&numeric_id);
        }
    }

    /// Whether the session was restored from the file and never confirmed by the driver.
    pub fn is_unconfirmed(&self, numeric_id: u64) -> bool {
        self.inner
            .read()
            .map(|i| i.unconfirmed.contains(&numeric_id))
            .unwrap_or(false)
    }

    /// Every session with its token, as [`save_file`] writes them (ordered by numeric id).
    pub fn saved(&self) -> Vec<SavedSession> {
        let mut all: Vec<SavedSession> = self
            .inner
            .read()
            .map(|i| {
                i.by_token
                    .iter()
                    .map(|(t, s)| SavedSession::from_info(*t, s))
                    .collect()
            })
            .unwrap_or_default();
        all.sort_by_key(|s| s.numeric_id);
        all
    }

    /// Writes the table to its file, if it has one.
    fn save(&self) -> std::io::Result<()> {
        let Ok(file) = self.file.lock() else {
            return Err(std::io::Error::other("session file lock poisoned"));
        };
        match file.as_deref() {
            Some(path) => save_file(path, &self.saved()),
            None => Ok(()),
        }
    }

    /// [`SessionRegistry::save`], a failure reported: the table in memory stays right, only a
    /// restart of the service would lose what the file misses.
    fn persist(&self) {
        if let Err(e) = self.save() {
            tracing::error!(error = %e, "could not write the session file; after a restart of the service these sessions' events would carry no session id");
        }
    }

    /// Adds a session; returns its token and public record.
    pub fn register(
        &self,
        root_pid: u32,
        context: SessionContext,
        audit: bool,
        extras: SessionExtras,
    ) -> std::io::Result<(u64, Arc<SessionInfo>)> {
        let token = new_token()?;
        let mut inner = self
            .inner
            .write()
            .map_err(|_| std::io::Error::other("session table poisoned"))?;
        inner.next_id += 1;
        let numeric_id = inner.next_id;
        let info = Arc::new(SessionInfo {
            id: format!("s-{numeric_id}"),
            numeric_id,
            root_pid,
            context: Arc::new(context),
            audit,
            canary: extras.canary.map(Arc::from),
            wall_check: extras.wall_check.map(Arc::from),
        });
        inner.by_token.insert(token, info.clone());
        drop(inner);
        self.persist();
        Ok((token, info))
    }

    /// The session a request's token names.
    pub fn by_token(&self, token: u64) -> Option<Arc<SessionInfo>> {
        self.inner.read().ok()?.by_token.get(&token).cloned()
    }

    /// The token of the session with public id `id`.
    pub fn token_of(&self, id: &str) -> Option<u64> {
        let inner = self.inner.read().ok()?;
        inner
            .by_token
            .iter()
            .find(|(_, s)| s.id == id)
            .map(|(t, _)| *t)
    }

    /// Removes a session by public id; returns its token.
    pub fn remove(&self, id: &str) -> Option<u64> {
        let token = self.token_of(id)?;
        let mut inner = self.inner.write().ok()?;
        if let Some(info) = inner.by_token.remove(&token) {
            inner.unconfirmed.remove(&info.numeric_id);
        }
        drop(inner);
        self.persist();
        Some(token)
    }

    /// Replaces a session's token (rotation); returns the old and new tokens.
    pub fn rotate(&self, id: &str) -> std::io::Result<Option<(u64, u64)>> {
        let Some(old) = self.token_of(id) else {
            return Ok(None);
        };
        let new = new_token()?;
        let mut inner = self
            .inner
            .write()
            .map_err(|_| std::io::Error::other("session table poisoned"))?;
        if let Some(info) = inner.by_token.remove(&old) {
            inner.by_token.insert(new, info);
        }
        drop(inner);
        self.persist();
        Ok(Some((old, new)))
    }

    /// Puts a session under a given token again (undoing a rotation the driver refused).
    pub fn rotate_to(&self, id: &str, token: u64) -> std::io::Result<()> {
        let Some(current) = self.token_of(id) else {
            return Ok(());
        };
        let mut inner = self
            .inner
            .write()
            .map_err(|_| std::io::Error::other("session table poisoned"))?;
        if let Some(info) = inner.by_token.remove(&current) {
            inner.by_token.insert(token, info);
        }
        drop(inner);
        self.persist();
        Ok(())
    }

    /// Every session's public record.
    pub fn list(&self) -> Vec<Arc<SessionInfo>> {
        self.inner
            .read()
            .map(|i| i.by_token.values().cloned().collect())
            .unwrap_or_default()
    }
}
