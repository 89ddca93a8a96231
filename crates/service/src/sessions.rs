//! The service's view of sandbox sessions: the secret token the driver puts in every request,
//! the public id events carry instead, and the registration the policy's variables expand from.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

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
}

#[derive(Debug, Default)]
struct Inner {
    by_token: HashMap<u64, Arc<SessionInfo>>,
    next_id: u64,
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
        self.inner.write().ok()?.by_token.remove(&token);
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
