//! Simulated processes: names from the trace mapped to process ids, the creating process, the image
//! and the user they run as; exits free the id, which a later start may reuse (as Windows does).

use std::collections::HashMap;

use crate::regpath::DEFAULT_USER_SID;

/// One running simulated process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimProcess {
    pub pid: u32,
    /// The creating process's id; 0 for a process started by nothing in the trace.
    pub creator: u32,
    pub image: String,
    pub user_sid: String,
}

/// The running simulated processes by trace name.
#[derive(Debug)]
pub struct ProcessTable {
    by_name: HashMap<String, SimProcess>,
    next_pid: u32,
}

/// Why a process-table change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    #[error("process `{0}` is already running")]
    AlreadyRunning(String),
    #[error("process `{0}` is not running")]
    NotRunning(String),
    #[error("process id {pid} is already used by `{name}`")]
    PidInUse { pid: u32, name: String },
    #[error("process id 0 is the idle process and cannot be simulated")]
    PidZero,
}

impl Default for ProcessTable {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessTable {
    /// Process ids handed out when a trace gives none start here (multiples of 4, as on Windows).
    pub const FIRST_PID: u32 = 1000;

    pub fn new() -> Self {
        ProcessTable {
            by_name: HashMap::new(),
            next_pid: Self::FIRST_PID,
        }
    }

    pub fn get(&self, name: &str) -> Result<&SimProcess, ProcessError> {
        self.by_name
            .get(name)
            .ok_or_else(|| ProcessError::NotRunning(name.to_owned()))
    }

    /// Starts `name`; `creator` names the creating process, which must be running.
    pub fn start(
        &mut self,
        name: &str,
        pid: Option<u32>,
        creator: Option<&str>,
        image: &str,
        user_sid: Option<&str>,
    ) -> Result<SimProcess, ProcessError> {
        if self.by_name.contains_key(name) {
            return Err(ProcessError::AlreadyRunning(name.to_owned()));
        }
        let creator = match creator {
            Some(c) => Some(self.get(c)?.clone()),
            None => None,
        };
        let pid = match pid {
            Some(0) => return Err(ProcessError::PidZero),
            Some(pid) => {
                if let Some((other, _)) = self.by_name.iter().find(|(_, p)| p.pid == pid) {
                    return Err(ProcessError::PidInUse {
                        pid,
                        name: other.clone(),
                    });
                }
                pid
            }
            None => self.fresh_pid(),
        };
        let process = SimProcess {
            pid,
            creator: creator.as_ref().map_or(0, |c| c.pid),
            image: image.to_owned(),
            // A child runs as its creator's user unless the trace says otherwise.
            user_sid: user_sid
                .map(str::to_owned)
                .or_else(|| creator.map(|c| c.user_sid))
                .unwrap_or_else(|| DEFAULT_USER_SID.to_owned()),
        };
        self.by_name.insert(name.to_owned(), process.clone());
        Ok(process)
    }

    pub fn exit(&mut self, name: &str) -> Result<SimProcess, ProcessError> {
        self.by_name
            .remove(name)
            .ok_or_else(|| ProcessError::NotRunning(name.to_owned()))
    }

    fn fresh_pid(&mut self) -> u32 {
        loop {
            let pid = self.next_pid;
            self.next_pid = self.next_pid.checked_add(4).unwrap_or(Self::FIRST_PID);
            if !self.by_name.values().any(|p| p.pid == pid) {
                return pid;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_inherit_user_and_record_creator() {
        let mut t = ProcessTable::new();
        let agent = t
            .start("agent", Some(4100), None, "agent.exe", Some("S-1-5-21-7"))
            .expect("start");
        let py = t
            .start("py", None, Some("agent"), "py.exe", None)
            .expect("start");
        assert_eq!(agent.creator, 0);
        assert_eq!(py.creator, 4100);
        assert_eq!(py.user_sid, "S-1-5-21-7");
        assert_eq!(py.pid, ProcessTable::FIRST_PID);
    }

    #[test]
    fn refuses_duplicates_unknown_creators_and_pid_clashes() {
        let mut t = ProcessTable::new();
        t.start("a", Some(8), None, "a.exe", None).expect("start");
        assert_eq!(
            t.start("a", None, None, "a.exe", None),
            Err(ProcessError::AlreadyRunning("a".into()))
        );
        assert_eq!(
            t.start("b", None, Some("zz"), "b.exe", None),
            Err(ProcessError::NotRunning("zz".into()))
        );
        assert_eq!(
            t.start("b", Some(8), None, "b.exe", None),
            Err(ProcessError::PidInUse {
                pid: 8,
                name: "a".into()
            })
        );
        assert_eq!(
            t.start("b", Some(0), None, "b.exe", None),
            Err(ProcessError::PidZero)
        );
    }

    #[test]
    fn exited_pid_can_be_reused() {
        let mut t = ProcessTable::new();
        t.start("a", Some(8), None, "a.exe", None).expect("start");
        assert_eq!(t.exit("a").map(|p| p.pid), Ok(8));
        assert_eq!(t.exit("a"), Err(ProcessError::NotRunning("a".into())));
        assert_eq!(
            t.start("b", Some(8), None, "b.exe", None).map(|p| p.pid),
            Ok(8)
        );
    }
}
