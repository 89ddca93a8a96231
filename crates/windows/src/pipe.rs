//! The service's local API over a named pipe: its name, its security descriptor, and (on
//! Windows) creating it, identifying its clients, and connecting to it after checking who serves
//! it.
//!
//! The pipe is created with `FILE_FLAG_FIRST_PIPE_INSTANCE`: if another process already created
//! the name (a squatter), creation fails and the service reports it instead of sharing the name.
//! `PIPE_REJECT_REMOTE_CLIENTS` refuses clients on other machines, and the security descriptor
//! [`API_PIPE_SDDL`]:
//!
//! | ACE | who | what |
//! |---|---|---|
//! | `(D;;GA;;;NU)` | NETWORK logons | denied everything, first |
//! | `(A;;GA;;;SY)`, `(A;;GA;;;BA)` | LocalSystem, Administrators | full access |
//! | `(A;;GA;;;OW)` | the pipe's owner (the service's account) | full access, so it can add instances |
//! | `(A;;0x12008b;;;AU)` | authenticated users | [`CLIENT_ACCESS`]: read, write data, read attributes and control — never `FILE_CREATE_PIPE_INSTANCE`, so no other account can add a server instance of the name |
//! | `S:(ML;;NWNR;;;ME)` | mandatory label Medium | no write-up, no read-up: low-integrity processes cannot open it |
//!
//! AppContainer tokens get no access (no package SID is granted), nor do restricted tokens with
//! restricting SIDs (no restricted-code SID is granted). The service also refuses, per request,
//! AppContainer, restricted and below-Medium tokens, and processes of sandbox sessions.

/// The pipe's name.
pub const API_PIPE: &str = r"\\.\pipe\agentsh-api";

/// The pipe's security descriptor (see the module).
pub const API_PIPE_SDDL: &str =
    "D:P(D;;GA;;;NU)(A;;GA;;;SY)(A;;GA;;;BA)(A;;GA;;;OW)(A;;0x12008b;;;AU)S:(ML;;NWNR;;;ME)";

/// What a client asks for and authenticated users are granted: `FILE_READ_DATA` (0x1),
/// `FILE_WRITE_DATA` (0x2), `FILE_READ_EA` (0x8), `FILE_READ_ATTRIBUTES` (0x80),
/// `READ_CONTROL` (0x20000) and `SYNCHRONIZE` (0x100000). `GENERIC_WRITE` would include
/// `FILE_APPEND_DATA`, which on a pipe is `FILE_CREATE_PIPE_INSTANCE` (0x4).
pub const CLIENT_ACCESS: u32 = 0x0012_008B;

/// `FILE_CREATE_PIPE_INSTANCE` (`FILE_APPEND_DATA` on a pipe).
pub const FILE_CREATE_PIPE_INSTANCE: u32 = 0x4;

/// The virtual account the installed service runs as, besides LocalSystem.
pub const SERVICE_ACCOUNT: &str = r"NT SERVICE\agentsh";

/// Why a client did not connect.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The pipe exists, but its server is not the agentsh service; nothing was sent.
    #[error("{0}")]
    Untrusted(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Who a pipe client is, as its impersonated token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// `GetNamedPipeClientProcessId`.
    pub pid: u32,
    /// The token's user SID, as text.
    pub user_sid: String,
    /// A member of Administrators, or of the approvers group.
    pub approver: bool,
    /// An AppContainer token, a restricted token, or an integrity level below Medium.
    pub sandboxed_token: bool,
}

#[cfg(windows)]
pub use crate::imp::pipe::{
    client_account, client_identity, connect, create_server, pipe_owner_sid, pipe_sddl,
    process_user_sid, resolve_group,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_never_granted_the_right_to_create_an_instance() {
        assert_eq!(CLIENT_ACCESS & FILE_CREATE_PIPE_INSTANCE, 0);
        let au = API_PIPE_SDDL
            .split(['(', ')'])
            .find(|ace| ace.ends_with(";;;AU"))
            .expect("an ACE for authenticated users");
        let rights = au.split(';').nth(2).expect("rights");
        let granted = u32::from_str_radix(rights.trim_start_matches("0x"), 16).expect("hex rights");
        assert_eq!(granted, CLIENT_ACCESS);
    }

    #[test]
    fn network_logons_are_denied_before_anything_is_allowed() {
        let dacl = API_PIPE_SDDL
            .strip_prefix("D:P")
            .and_then(|d| d.split("S:").next())
            .expect("a protected DACL");
        assert!(dacl.starts_with("(D;;GA;;;NU)"), "{dacl}");
        assert!(API_PIPE_SDDL.ends_with("S:(ML;;NWNR;;;ME)"));
        assert!(!API_PIPE_SDDL.contains(";;;WD)"), "never Everyone");
        assert!(!API_PIPE_SDDL.contains(";;;AC)"), "never app packages");
    }
}
