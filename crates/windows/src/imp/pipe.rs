//! The API pipe's FFI: the server instance with its security descriptor, the client's identity
//! by impersonation, the client's check of the server, and the tokens' facts they rest on.

use std::ffi::{OsStr, c_void};
use std::os::windows::io::{AsRawHandle, OwnedHandle, RawHandle};
use std::path::Path;
use std::ptr::{null, null_mut};

use tokio::net::windows::named_pipe::{NamedPipeClient, NamedPipeServer, ServerOptions};
use windows_sys::Win32::Foundation::{ERROR_PIPE_BUSY, HANDLE, HLOCAL, LocalFree};
use windows_sys::Win32::Security::Authorization::{
    ConvertSecurityDescriptorToStringSecurityDescriptorW,
    ConvertStringSecurityDescriptorToSecurityDescriptorW, GetSecurityInfo, SDDL_REVISION_1,
    SE_KERNEL_OBJECT,
};
use windows_sys::Win32::Security::{
    CheckTokenMembership, CreateWellKnownSid, DACL_SECURITY_INFORMATION, GetSidSubAuthority,
    GetSidSubAuthorityCount, GetTokenInformation, IsTokenRestricted, LABEL_SECURITY_INFORMATION,
    LookupAccountNameW, OBJECT_SECURITY_INFORMATION, OWNER_SECURITY_INFORMATION,
    PSECURITY_DESCRIPTOR, PSID, RevertToSelf, SECURITY_ATTRIBUTES, SECURITY_MAX_SID_SIZE,
    SID_NAME_USE, TOKEN_MANDATORY_LABEL, TOKEN_QUERY, TOKEN_USER, TokenIntegrityLevel,
    TokenIsAppContainer, TokenUser, WinBuiltinAdministratorsSid,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FILE_FLAG_OVERLAPPED, OPEN_EXISTING, SECURITY_IDENTIFICATION,
    SECURITY_SQOS_PRESENT,
};
use windows_sys::Win32::System::Pipes::{
    GetNamedPipeClientProcessId, GetNamedPipeServerProcessId, ImpersonateNamedPipeClient,
    WaitNamedPipeW,
};
use windows_sys::Win32::System::SystemServices::SECURITY_MANDATORY_MEDIUM_RID;
use windows_sys::Win32::System::Threading::{
    GetCurrentThread, OpenProcess, OpenProcessToken, OpenThreadToken,
    PROCESS_QUERY_LIMITED_INFORMATION,
};

use super::security::{LocalSid, current_user_sid, sid_string};
use super::util::{owned, wide};
use crate::pipe::{API_PIPE_SDDL, CLIENT_ACCESS, ClientIdentity, ConnectError, SERVICE_ACCOUNT};

/// LocalSystem's SID.
const LOCAL_SYSTEM: &str = "S-1-5-18";

fn os_error(step: &str) -> std::io::Error {
    let e = std::io::Error::last_os_error();
    std::io::Error::new(e.kind(), format!("{step}: {e}"))
}

/// A security descriptor allocated by the system with LocalFree as its release.
struct LocalDescriptor(PSECURITY_DESCRIPTOR);

impl Drop for LocalDescriptor {
    fn drop(&mut self) {
        // SAFETY: the descriptor was LocalAlloc'd by the system call that returned it; freed once.
        unsafe { LocalFree(self.0 as HLOCAL) };
    }
}

fn descriptor(sddl: &str) -> std::io::Result<LocalDescriptor> {
    let text = wide(sddl);
    let mut sd: PSECURITY_DESCRIPTOR = null_mut();
    // SAFETY: `text` is NUL-terminated; `sd` receives a LocalAlloc'd descriptor owned below.
    let ok = unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            text.as_ptr(),
            SDDL_REVISION_1,
            &mut sd,
            null_mut(),
        )
    };
    if ok == 0 {
        return Err(os_error(
            "ConvertStringSecurityDescriptorToSecurityDescriptorW",
        ));
    }
    Ok(LocalDescriptor(sd))
}

/// A LocalAlloc'd, NUL-terminated UTF-16 string as a `String` (the string is freed).
fn take_local_string(text: *mut u16) -> String {
    let mut len = 0usize;
    // SAFETY: the system returned a NUL-terminated string; reading up to the NUL stays inside it.
    loop {
        // SAFETY: `len` has not passed the terminating NUL, so `text + len` is inside the string.
        let at = unsafe { text.add(len) };
        // SAFETY: `at` points inside the string (see above).
        if unsafe { *at } == 0 {
            break;
        }
        len += 1;
    }
    // SAFETY: `text` is valid for `len` units (measured above).
    let units = unsafe { std::slice::from_raw_parts(text, len) };
    let out = String::from_utf16_lossy(units);
    // SAFETY: the string was LocalAlloc'd by the system and is freed once.
    unsafe { LocalFree(text as HLOCAL) };
    out
}

/// The descriptor of the kernel object `handle` as SDDL, for `info`.
fn object_sddl(handle: RawHandle, info: OBJECT_SECURITY_INFORMATION) -> std::io::Result<String> {
    let mut sd: PSECURITY_DESCRIPTOR = null_mut();
    // SAFETY: `handle` is an open handle; `sd` receives a LocalAlloc'd descriptor owned below.
    let code = unsafe {
        GetSecurityInfo(
            handle as HANDLE,
            SE_KERNEL_OBJECT,
            info,
            null_mut(),
            null_mut(),
            null_mut(),
            null_mut(),
            &mut sd,
        )
    };
    if code != 0 {
        return Err(std::io::Error::from_raw_os_error(code as i32));
    }
    let sd = LocalDescriptor(sd);
    let mut text: *mut u16 = null_mut();
    // SAFETY: `sd` is a valid descriptor; `text` receives a LocalAlloc'd string freed below.
    let ok = unsafe {
        ConvertSecurityDescriptorToStringSecurityDescriptorW(
            sd.0,
            SDDL_REVISION_1,
            info,
            &mut text,
            null_mut(),
        )
    };
    if ok == 0 {
        return Err(os_error(
            "ConvertSecurityDescriptorToStringSecurityDescriptorW",
        ));
    }
    Ok(take_local_string(text))
}

/// The DACL and mandatory label of a pipe handle, as SDDL.
pub fn pipe_sddl(pipe: &impl AsRawHandle) -> std::io::Result<String> {
    object_sddl(
        pipe.as_raw_handle(),
        DACL_SECURITY_INFORMATION | LABEL_SECURITY_INFORMATION,
    )
}

/// The owner of a pipe (its creator), as a SID string.
pub fn pipe_owner_sid(pipe: &impl AsRawHandle) -> std::io::Result<String> {
    let sddl = object_sddl(pipe.as_raw_handle(), OWNER_SECURITY_INFORMATION)?;
    sddl.strip_prefix("O:")
        .map(|o| expand_alias(o).to_owned())
        .ok_or_else(|| std::io::Error::other(format!("unexpected owner `{sddl}`")))
}

/// The SID strings SDDL abbreviates in an owner field.
fn expand_alias(owner: &str) -> &str {
    match owner {
        "SY" => LOCAL_SYSTEM,
        "BA" => "S-1-5-32-544",
        other => other,
    }
}

/// Creates an instance of the API pipe `name` with [`API_PIPE_SDDL`], remote clients refused;
/// with `first`, `FILE_FLAG_FIRST_PIPE_INSTANCE` (fails if the name exists: a squatter).
pub fn create_server(name: &OsStr, first: bool) -> std::io::Result<NamedPipeServer> {
    let sd = descriptor(API_PIPE_SDDL)?;
    let mut attributes = SECURITY_ATTRIBUTES {
        nLength: size_of::<SECURITY_ATTRIBUTES>() as u32,
        lpSecurityDescriptor: sd.0,
        bInheritHandle: 0,
    };
    let mut options = ServerOptions::new();
    options
        .first_pipe_instance(first)
        .reject_remote_clients(true);
    // SAFETY: `attributes` is a valid SECURITY_ATTRIBUTES whose descriptor outlives the call
    // (the pipe keeps its own copy).
    unsafe {
        options.create_with_security_attributes_raw(
            name,
            (&mut attributes as *mut SECURITY_ATTRIBUTES).cast::<c_void>(),
        )
    }
}

fn token_information(token: HANDLE, class: i32) -> std::io::Result<Vec<u64>> {
    let mut needed = 0u32;
    // SAFETY: a size query: no buffer, `needed` receives the size.
    unsafe { GetTokenInformation(token, class, null_mut(), 0, &mut needed) };
    if needed == 0 {
        return Err(os_error("GetTokenInformation"));
    }
    // u64 units keep the buffer aligned for the structures read from it.
    let mut buffer = vec![0u64; (needed as usize).div_ceil(8)];
    // SAFETY: `buffer` holds `needed` bytes.
    let ok = unsafe {
        GetTokenInformation(
            token,
            class,
            buffer.as_mut_ptr().cast::<c_void>(),
            needed,
            &mut needed,
        )
    };
    if ok == 0 {
        return Err(os_error("GetTokenInformation"));
    }
    Ok(buffer)
}

fn token_user(token: HANDLE) -> std::io::Result<String> {
    let buffer = token_information(token, TokenUser)?;
    // SAFETY: a TokenUser query fills the buffer with a TOKEN_USER (aligned: u64 buffer).
    let user = unsafe { &*buffer.as_ptr().cast::<TOKEN_USER>() };
    sid_string(user.User.Sid)
        .map_err(|e| std::io::Error::other(format!("{}: {}", e.step, e.message)))
}

fn integrity_rid(token: HANDLE) -> std::io::Result<u32> {
    let buffer = token_information(token, TokenIntegrityLevel)?;
    // SAFETY: a TokenIntegrityLevel query fills the buffer with a TOKEN_MANDATORY_LABEL.
    let label = unsafe { &*buffer.as_ptr().cast::<TOKEN_MANDATORY_LABEL>() };
    let sid = label.Label.Sid;
    // SAFETY: `sid` is the label's valid SID inside `buffer`.
    let count_at = unsafe { GetSidSubAuthorityCount(sid) };
    // SAFETY: the system returned a pointer into the SID.
    let count = unsafe { *count_at };
    if count == 0 {
        return Err(std::io::Error::other(
            "an integrity label without sub-authority",
        ));
    }
    // SAFETY: the index is below the SID's sub-authority count.
    let rid_at = unsafe { GetSidSubAuthority(sid, u32::from(count) - 1) };
    // SAFETY: the system returned a pointer into the SID.
    let rid = unsafe { *rid_at };
    Ok(rid)
}

fn is_app_container(token: HANDLE) -> std::io::Result<bool> {
    let buffer = token_information(token, TokenIsAppContainer)?;
    // SAFETY: TokenIsAppContainer fills a DWORD.
    let value = unsafe { *buffer.as_ptr().cast::<u32>() };
    Ok(value != 0)
}

fn member_of(token: HANDLE, sid: PSID) -> std::io::Result<bool> {
    let mut member = 0;
    // SAFETY: `token` is an impersonation token, `sid` a valid SID.
    let ok = unsafe { CheckTokenMembership(token, sid, &mut member) };
    if ok == 0 {
        return Err(os_error("CheckTokenMembership"));
    }
    Ok(member != 0)
}

fn administrators() -> std::io::Result<Vec<u8>> {
    let mut sid = vec![0u8; SECURITY_MAX_SID_SIZE as usize];
    let mut size = SECURITY_MAX_SID_SIZE;
    // SAFETY: `sid` holds `size` bytes.
    let ok = unsafe {
        CreateWellKnownSid(
            WinBuiltinAdministratorsSid,
            null_mut(),
            sid.as_mut_ptr().cast::<c_void>(),
            &mut size,
        )
    };
    if ok == 0 {
        return Err(os_error("CreateWellKnownSid(Administrators)"));
    }
    Ok(sid)
}

/// The SID (text) of an account or group name, or a SID given as text.
pub fn resolve_group(name: &str) -> std::io::Result<String> {
    if name.starts_with("S-1-") {
        return LocalSid::parse(name)
            .map(|_| name.to_owned())
            .map_err(|e| std::io::Error::other(format!("`{name}`: {}", e.message)));
    }
    let account = wide(name);
    let mut sid = vec![0u8; SECURITY_MAX_SID_SIZE as usize];
    let mut sid_size = SECURITY_MAX_SID_SIZE;
    let mut domain = vec![0u16; 256];
    let mut domain_size = domain.len() as u32;
    let mut kind: SID_NAME_USE = 0;
    // SAFETY: every buffer holds the size passed with it.
    let ok = unsafe {
        LookupAccountNameW(
            null(),
            account.as_ptr(),
            sid.as_mut_ptr().cast::<c_void>(),
            &mut sid_size,
            domain.as_mut_ptr(),
            &mut domain_size,
            &mut kind,
        )
    };
    if ok == 0 {
        return Err(os_error(&format!("LookupAccountNameW(`{name}`)")));
    }
    sid_string(sid.as_mut_ptr().cast::<c_void>())
        .map_err(|e| std::io::Error::other(format!("`{name}`: {}", e.message)))
}

/// The user SID of process `pid`'s token, if this process may read it.
pub fn process_user_sid(pid: u32) -> Option<String> {
    // SAFETY: opens the process for limited query; the handle is owned just below.
    let process = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    let process = owned(process)?;
    let mut token: HANDLE = null_mut();
    // SAFETY: `process` is open; `token` receives a handle owned just below.
    let ok =
        unsafe { OpenProcessToken(process.as_raw_handle() as HANDLE, TOKEN_QUERY, &mut token) };
    if ok == 0 {
        return None;
    }
    let token = owned(token)?;
    token_user(token.as_raw_handle() as HANDLE).ok()
}

/// The client's process and account, without waiting for it to send anything (for counting
/// connections per account): `GetNamedPipeClientProcessId`, then that process's user.
pub fn client_account(pipe: &NamedPipeServer) -> std::io::Result<(u32, Option<String>)> {
    let mut pid = 0u32;
    // SAFETY: `pipe` is a connected server instance.
    let ok = unsafe { GetNamedPipeClientProcessId(pipe.as_raw_handle() as HANDLE, &mut pid) };
    if ok == 0 {
        return Err(os_error("GetNamedPipeClientProcessId"));
    }
    Ok((pid, process_user_sid(pid)))
}

/// Reverts this thread's impersonation when dropped; a thread that cannot revert must not run
/// on with the client's identity, so the process stops.
struct Impersonating;

impl Drop for Impersonating {
    fn drop(&mut self) {
        // SAFETY: ends the impersonation this thread started.
        if unsafe { RevertToSelf() } == 0 {
            std::process::abort();
        }
    }
}

/// Who the connected client is: its process, and (impersonating it for the moment of reading
/// its token) its user SID, whether it is an approver (Administrators, or `approvers` — a SID
/// as text), and whether its token is sandboxed (AppContainer, restricted, below Medium).
/// Call once the client has sent data (impersonation needs it).
pub fn client_identity(
    pipe: &NamedPipeServer,
    approvers: Option<&str>,
) -> std::io::Result<ClientIdentity> {
    let (pid, _) = client_account(pipe)?;
    let token = {
        // SAFETY: `pipe` is a connected server instance from which data has been read.
        if unsafe { ImpersonateNamedPipeClient(pipe.as_raw_handle() as HANDLE) } == 0 {
            return Err(os_error("ImpersonateNamedPipeClient"));
        }
        let _revert = Impersonating;
        let mut token: HANDLE = null_mut();
        // SAFETY: GetCurrentThread returns a pseudo handle; nothing to release.
        let thread = unsafe { GetCurrentThread() };
        // SAFETY: opens this thread's impersonation token (checked as the service itself).
        let ok = unsafe { OpenThreadToken(thread, TOKEN_QUERY, 1, &mut token) };
        if ok == 0 {
            return Err(os_error("OpenThreadToken"));
        }
        owned(token).ok_or_else(|| std::io::Error::other("OpenThreadToken returned no token"))?
    };
    let handle = token.as_raw_handle() as HANDLE;
    let user_sid = token_user(handle)?;
    let mut admins = administrators()?;
    let mut approver = member_of(handle, admins.as_mut_ptr().cast::<c_void>())?;
    if !approver && let Some(group) = approvers {
        let sid = LocalSid::parse(group)
            .map_err(|e| std::io::Error::other(format!("`{group}`: {}", e.message)))?;
        approver = member_of(handle, sid.as_psid())?;
    }
    // SAFETY: `handle` is a token opened with TOKEN_QUERY.
    let restricted = unsafe { IsTokenRestricted(handle) } != 0;
    let below_medium = integrity_rid(handle)? < SECURITY_MANDATORY_MEDIUM_RID as u32;
    let sandboxed_token = restricted || below_medium || is_app_container(handle)?;
    Ok(ClientIdentity {
        pid,
        user_sid,
        approver,
        sandboxed_token,
    })
}

/// Opens the API pipe `name` as a client with identification-only impersonation, and checks,
/// before anything is sent, that the agentsh service serves it: the server process
/// (`GetNamedPipeServerProcessId`) runs as LocalSystem, as [`SERVICE_ACCOUNT`] or as this
/// process's own user; when its token cannot be read (a non-administrator may not open a
/// LocalSystem process's token), the pipe's owner — its creator, as
/// `FILE_FLAG_FIRST_PIPE_INSTANCE` guarantees — must be one of those or Administrators.
pub fn connect(name: &Path) -> Result<NamedPipeClient, ConnectError> {
    let wname = wide(name.as_os_str());
    let open = || {
        // SAFETY: `wname` is NUL-terminated; the returned handle is owned by the caller.
        unsafe {
            CreateFileW(
                wname.as_ptr(),
                CLIENT_ACCESS,
                0,
                null(),
                OPEN_EXISTING,
                FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION,
                null_mut(),
            )
        }
    };
    let mut handle = owned(open());
    if handle.is_none()
        && std::io::Error::last_os_error().raw_os_error() == Some(ERROR_PIPE_BUSY as i32)
    {
        // SAFETY: `wname` is NUL-terminated.
        unsafe { WaitNamedPipeW(wname.as_ptr(), 2000) };
        handle = owned(open());
    }
    let handle: OwnedHandle = handle
        .ok_or_else(|| ConnectError::Io(os_error(&format!("CreateFileW(`{}`)", name.display()))))?;
    let mut server_pid = 0u32;
    // SAFETY: `handle` is an open client end of a pipe.
    let ok =
        unsafe { GetNamedPipeServerProcessId(handle.as_raw_handle() as HANDLE, &mut server_pid) };
    if ok == 0 {
        return Err(ConnectError::Io(os_error("GetNamedPipeServerProcessId")));
    }
    let me = current_user_sid().map_err(|e| {
        ConnectError::Io(std::io::Error::other(format!("{}: {}", e.step, e.message)))
    })?;
    let service = resolve_group(SERVICE_ACCOUNT).ok();
    let trusted = |sid: &str| sid == LOCAL_SYSTEM || sid == me || service.as_deref() == Some(sid);
    match process_user_sid(server_pid) {
        Some(sid) if trusted(&sid) => {}
        Some(sid) => {
            return Err(ConnectError::Untrusted(format!(
                "its server process {server_pid} runs as {sid}, not as LocalSystem, {SERVICE_ACCOUNT} or this user"
            )));
        }
        None => {
            let owner = pipe_owner_sid(&handle).map_err(ConnectError::Io)?;
            if !(trusted(&owner) || owner == "S-1-5-32-544") {
                return Err(ConnectError::Untrusted(format!(
                    "the pipe was created by {owner}, not by LocalSystem, Administrators, {SERVICE_ACCOUNT} or this user"
                )));
            }
        }
    }
    let raw = std::os::windows::io::IntoRawHandle::into_raw_handle(handle);
    // SAFETY: `raw` is an overlapped pipe client handle this function owns and hands over.
    unsafe { NamedPipeClient::from_raw_handle(raw) }.map_err(ConnectError::Io)
}

#[cfg(test)]
mod tests {
    //! Under Wine as far as Wine allows: the descriptor as SDDL (parsed, its label ACE read
    //! structurally, and the DACL read back from a real pipe), first-instance squatting, and a
    //! client that checks its server and is identified by impersonation. Wine 8 neither
    //! enforces `FILE_FLAG_FIRST_PIPE_INSTANCE` nor renders labels as SDDL; each test asserts
    //! the Windows behaviour on Windows and states the Wine gap when it runs under Wine. Only
    //! a real Windows host shows impersonation of other accounts, AppContainer and integrity
    //! levels.
    use windows_sys::Win32::Security::SYSTEM_MANDATORY_LABEL_ACE;
    use windows_sys::Win32::Security::{ACL, GetAce, GetSecurityDescriptorSacl};
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
    use windows_sys::Win32::System::SystemServices::{
        SYSTEM_MANDATORY_LABEL_ACE_TYPE, SYSTEM_MANDATORY_LABEL_NO_READ_UP,
        SYSTEM_MANDATORY_LABEL_NO_WRITE_UP,
    };

    use super::*;

    fn name(tag: &str) -> std::ffi::OsString {
        format!(r"\\.\pipe\agentsh-test-{tag}-{}", std::process::id()).into()
    }

    /// Whether this runs under Wine (its ntdll exports `wine_get_version`).
    fn under_wine() -> bool {
        let ntdll = wide("ntdll.dll");
        // SAFETY: `ntdll` is NUL-terminated; ntdll is loaded in every process.
        let module = unsafe { GetModuleHandleW(ntdll.as_ptr()) };
        if module.is_null() {
            return false;
        }
        // SAFETY: `module` is loaded; the name is a NUL-terminated ANSI string.
        let export = unsafe { GetProcAddress(module, c"wine_get_version".as_ptr().cast()) };
        export.is_some()
    }

    const DACL: &str = "D:P(D;;GA;;;NU)(A;;GA;;;SY)(A;;GA;;;BA)(A;;GA;;;OW)(A;;0x12008b;;;AU)";

    #[test]
    fn the_descriptor_parses_to_its_dacl_and_a_medium_no_write_up_no_read_up_label() {
        assert!(API_PIPE_SDDL.starts_with(DACL));
        let sd = descriptor(API_PIPE_SDDL).expect("valid SDDL");
        let mut text: *mut u16 = null_mut();
        // SAFETY: `sd` is valid; `text` receives a LocalAlloc'd string freed by take_local_string.
        let ok = unsafe {
            ConvertSecurityDescriptorToStringSecurityDescriptorW(
                sd.0,
                SDDL_REVISION_1,
                DACL_SECURITY_INFORMATION,
                &mut text,
                null_mut(),
            )
        };
        assert_ne!(ok, 0);
        assert_eq!(take_local_string(text), DACL);

        // The label, read as the ACE the system parsed (not through its SDDL rendering).
        let (mut present, mut defaulted) = (0, 0);
        let mut sacl: *mut ACL = null_mut();
        // SAFETY: `sd` is valid; the outputs are locals.
        let ok =
            unsafe { GetSecurityDescriptorSacl(sd.0, &mut present, &mut sacl, &mut defaulted) };
        assert_ne!(ok, 0);
        assert!(present != 0 && !sacl.is_null(), "a SACL with the label");
        let mut ace: *mut c_void = null_mut();
        // SAFETY: `sacl` is the descriptor's ACL; index 0 is its first ACE.
        let ok = unsafe { GetAce(sacl, 0, &mut ace) };
        assert_ne!(ok, 0);
        // SAFETY: GetAce returned a pointer to the ACE inside the ACL.
        let label = unsafe { &*ace.cast::<SYSTEM_MANDATORY_LABEL_ACE>() };
        assert_eq!(
            u32::from(label.Header.AceType),
            SYSTEM_MANDATORY_LABEL_ACE_TYPE
        );
        assert_eq!(
            label.Mask,
            SYSTEM_MANDATORY_LABEL_NO_WRITE_UP | SYSTEM_MANDATORY_LABEL_NO_READ_UP
        );
        let sid = (&raw const label.SidStart).cast_mut().cast::<c_void>();
        assert_eq!(sid_string(sid).expect("label SID"), "S-1-16-8192", "Medium");
    }

    #[tokio::test]
    async fn a_pipe_carries_its_descriptor_and_a_second_first_instance_is_refused() {
        let pipe = name("sd");
        let server = create_server(&pipe, true).expect("creates");
        let read_back = pipe_sddl(&server).expect("reads its descriptor");
        assert!(read_back.starts_with(DACL), "{read_back}");
        let squat = create_server(&pipe, true);
        if under_wine() {
            // Wine 8 neither renders the label of a pipe nor enforces the first-instance flag;
            // if either changes, the Windows assertions below apply.
            assert!(!read_back.contains("S:"), "{read_back}");
            assert!(
                squat.is_ok(),
                "Wine now enforces FILE_FLAG_FIRST_PIPE_INSTANCE"
            );
        } else {
            assert!(read_back.ends_with("S:(ML;;NWNR;;;ME)"), "{read_back}");
            let squat = squat.expect_err("the name exists");
            assert_eq!(
                squat.kind(),
                std::io::ErrorKind::PermissionDenied,
                "{squat}"
            );
        }
        create_server(&pipe, false).expect("the owner adds instances");
        assert!(
            pipe_owner_sid(&server).is_ok_and(|owner| owner.starts_with("S-1-")),
            "the pipe has an owner"
        );
    }

    #[tokio::test]
    async fn a_client_checks_its_server_and_the_server_identifies_the_client() {
        let pipe = name("id");
        let server = create_server(&pipe, true).expect("creates");
        let accept = tokio::spawn(async move {
            server.connect().await.expect("connects");
            server.readable().await.expect("readable");
            let mut buf = [0u8; 4];
            let n = server.try_read(&mut buf).expect("reads");
            assert_eq!(&buf[..n], b"ping");
            client_identity(&server, None)
        });
        let client = connect(Path::new(&pipe)).expect("a server of this user is trusted");
        client.writable().await.expect("writable");
        client.try_write(b"ping").expect("writes");
        let identity = accept.await.expect("joins").expect("identified");
        assert_eq!(identity.pid, std::process::id());
        assert_eq!(identity.user_sid, current_user_sid().expect("sid"));
        assert!(!identity.sandboxed_token, "{identity:?}");
    }

    #[test]
    fn a_pipe_nobody_serves_is_an_io_error_naming_it() {
        let pipe = name("absent");
        let err = connect(Path::new(&pipe)).expect_err("nothing there");
        assert!(matches!(err, ConnectError::Io(_)), "{err:?}");
        assert!(err.to_string().contains("agentsh-test-absent"), "{err}");
    }
}
