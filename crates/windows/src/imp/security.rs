//! Security primitives for the sandbox: SIDs, DACL grants and revocations, the fallback restricted
//! low-integrity token, and AppContainer entry points resolved at run time.

use std::ffi::c_void;
use std::os::windows::io::{AsRawHandle, OwnedHandle};
use std::ptr::{null, null_mut};

use windows_sys::Win32::Foundation::{HANDLE, HLOCAL, LocalFree};
use windows_sys::Win32::Security::Authorization::{
    ConvertSecurityDescriptorToStringSecurityDescriptorW, ConvertSidToStringSidW,
    ConvertStringSecurityDescriptorToSecurityDescriptorW, ConvertStringSidToSidW,
    EXPLICIT_ACCESS_W, GRANT_ACCESS, GetNamedSecurityInfoW, NO_MULTIPLE_TRUSTEE, REVOKE_ACCESS,
    SDDL_REVISION_1, SE_FILE_OBJECT, SE_OBJECT_TYPE, SetEntriesInAclW, SetNamedSecurityInfoW,
    TRUSTEE_IS_SID, TRUSTEE_IS_UNKNOWN, TRUSTEE_W,
};
use windows_sys::Win32::Security::{
    ACE_HEADER, ACL, CreateRestrictedToken, CreateWellKnownSid, DACL_SECURITY_INFORMATION,
    DISABLE_MAX_PRIVILEGE, GetAce, GetLengthSid, GetSecurityDescriptorControl,
    GetSecurityDescriptorDacl, GetSecurityDescriptorSacl, GetTokenInformation,
    LABEL_SECURITY_INFORMATION, PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID,
    SACL_SECURITY_INFORMATION, SE_DACL_PROTECTED, SECURITY_MAX_SID_SIZE, SID_AND_ATTRIBUTES,
    SUB_CONTAINERS_AND_OBJECTS_INHERIT, SYSTEM_MANDATORY_LABEL_ACE, SetTokenInformation,
    TOKEN_ADJUST_DEFAULT, TOKEN_ASSIGN_PRIMARY, TOKEN_DUPLICATE, TOKEN_GROUPS,
    TOKEN_INFORMATION_CLASS, TOKEN_MANDATORY_LABEL, TOKEN_QUERY, TOKEN_USER, TokenGroups,
    TokenIntegrityLevel, TokenUser, WRITE_RESTRICTED, WinBuiltinAdministratorsSid, WinLowLabelSid,
};
use windows_sys::Win32::System::LibraryLoader::{GetProcAddress, LoadLibraryW};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

use super::util::{last_error, owned, wide};
use crate::sid::Sid;

/// `SE_GROUP_INTEGRITY` (winnt.h): marks the SID of a TOKEN_MANDATORY_LABEL.
const SE_GROUP_INTEGRITY: u32 = 0x20;
/// `SE_GROUP_ENABLED` (winnt.h): the group is enabled for access checks.
const SE_GROUP_ENABLED: u32 = 0x4;
/// `SE_GROUP_USE_FOR_DENY_ONLY` (winnt.h): the group matches deny entries only.
const SE_GROUP_USE_FOR_DENY_ONLY: u32 = 0x10;

/// Security descriptors written by this process (every `SetNamedSecurityInfoW` call of the
/// crate, successful or not): the sandbox's set-up cost, which kept grants bring to zero.
static SD_WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn count_write() {
    SD_WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// How many security descriptors this process has written so far.
pub fn security_descriptor_writes() -> u64 {
    SD_WRITES.load(std::sync::atomic::Ordering::Relaxed)
}

/// A failed Win32 step: what was attempted and the error code.
#[derive(Debug)]
pub struct OsFailure {
    pub step: String,
    pub code: u32,
    pub message: String,
}

impl OsFailure {
    pub fn last(step: impl Into<String>) -> Self {
        let (code, message) = last_error();
        OsFailure {
            step: step.into(),
            code,
            message,
        }
    }
    pub fn code(step: impl Into<String>, code: u32) -> Self {
        OsFailure {
            step: step.into(),
            code,
            message: super::util::error_text(code),
        }
    }
}

/// A SID allocated by the system with LocalFree as its release (ConvertStringSidToSidW).
#[derive(Debug)]
pub struct LocalSid(PSID);

impl LocalSid {
    pub fn parse(text: &str) -> Result<Self, OsFailure> {
        let wtext = wide(text);
        let mut sid: PSID = null_mut();
        // SAFETY: `wtext` is NUL-terminated; `sid` receives a LocalAlloc'd SID owned by LocalSid.
        let ok = unsafe { ConvertStringSidToSidW(wtext.as_ptr(), &mut sid) };
        if ok == 0 {
            return Err(OsFailure::last(format!("ConvertStringSidToSidW(`{text}`)")));
        }
        Ok(LocalSid(sid))
    }
    pub fn as_psid(&self) -> PSID {
        self.0
    }
}

impl Drop for LocalSid {
    fn drop(&mut self) {
        // SAFETY: the SID was allocated with LocalAlloc by ConvertStringSidToSidW and is freed once.
        unsafe { LocalFree(self.0 as HLOCAL) };
    }
}

/// The string form (`S-1-15-2-...`) of `sid`.
pub fn sid_string(sid: PSID) -> Result<String, OsFailure> {
    let mut text: *mut u16 = null_mut();
    // SAFETY: `sid` is a valid SID; `text` receives a LocalAlloc'd string freed below.
    let ok = unsafe { ConvertSidToStringSidW(sid, &mut text) };
    if ok == 0 {
        return Err(OsFailure::last("ConvertSidToStringSidW"));
    }
    let mut len = 0usize;
    // SAFETY: the system returned a NUL-terminated string; reading up to the NUL stays inside it.
    while unsafe { *text.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: `text` is valid for `len` u16 units (measured above).
    let units = unsafe { std::slice::from_raw_parts(text, len) };
    let out = String::from_utf16_lossy(units);
    // SAFETY: the string was LocalAlloc'd by ConvertSidToStringSidW and is freed once.
    unsafe { LocalFree(text as HLOCAL) };
    Ok(out)
}

/// The string SID (`S-1-5-21-...`) of the user this process runs as: the `TokenUser` of its token.
pub fn current_user_sid() -> Result<String, OsFailure> {
    let mut token: HANDLE = null_mut();
    // SAFETY: opens the current process token for query into `token`, owned just below.
    let ok = unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) };
    if ok == 0 {
        return Err(OsFailure::last("OpenProcessToken"));
    }
    let token = owned(token).ok_or_else(|| OsFailure::last("OpenProcessToken"))?;
    let buffer = token_information(&token, TokenUser, "TokenUser")?;
    let user: *const TOKEN_USER = buffer.as_ptr().cast();
    // SAFETY: the call filled `buffer` with a TOKEN_USER whose SID points into the same buffer,
    // which stays alive until sid_string has copied the text.
    let sid = unsafe { (*user).User.Sid };
    sid_string(sid)
}

/// Adds (`grant = true`: an inheritable allow ACE with `access`) or removes (every explicit ACE of
/// `sid`) an entry in the DACL of `object`.
pub fn change_dacl(
    object: &str,
    kind: SE_OBJECT_TYPE,
    sid: PSID,
    access: u32,
    grant: bool,
) -> Result<(), OsFailure> {
    let wobject = wide(object);
    let mut old_dacl: *mut ACL = null_mut();
    let mut descriptor: PSECURITY_DESCRIPTOR = null_mut();
    // SAFETY: out-pointers are valid; the descriptor is LocalAlloc'd and freed below.
    let rc = unsafe {
        GetNamedSecurityInfoW(
            wobject.as_ptr(),
            kind,
            DACL_SECURITY_INFORMATION,
            null_mut(),
            null_mut(),
            &mut old_dacl,
            null_mut(),
            &mut descriptor,
        )
    };
    if rc != 0 {
        return Err(OsFailure::code(
            format!("reading the acl of `{object}`"),
            rc,
        ));
    }
    let entry = EXPLICIT_ACCESS_W {
        grfAccessPermissions: access,
        grfAccessMode: if grant { GRANT_ACCESS } else { REVOKE_ACCESS },
        grfInheritance: SUB_CONTAINERS_AND_OBJECTS_INHERIT,
        Trustee: TRUSTEE_W {
            pMultipleTrustee: null_mut(),
            MultipleTrusteeOperation: NO_MULTIPLE_TRUSTEE,
            TrusteeForm: TRUSTEE_IS_SID,
            TrusteeType: TRUSTEE_IS_UNKNOWN,
            ptstrName: sid.cast(),
        },
    };
    let mut new_dacl: *mut ACL = null_mut();
    // SAFETY: `entry` and `old_dacl` (inside `descriptor`) are valid; new_dacl is LocalAlloc'd.
    let rc = unsafe { SetEntriesInAclW(1, &entry, old_dacl, &mut new_dacl) };
    let result = if rc != 0 {
        Err(OsFailure::code(
            format!("building the acl of `{object}`"),
            rc,
        ))
    } else {
        count_write();
        // SAFETY: `new_dacl` is the valid ACL just built; only the DACL is written.
        let rc = unsafe {
            SetNamedSecurityInfoW(
                wobject.as_ptr(),
                kind,
                DACL_SECURITY_INFORMATION,
                null_mut(),
                null_mut(),
                new_dacl,
                null(),
            )
        };
        // SAFETY: `new_dacl` was LocalAlloc'd by SetEntriesInAclW and is freed once.
        unsafe { LocalFree(new_dacl as HLOCAL) };
        if rc != 0 {
            Err(OsFailure::code(
                format!("writing the acl of `{object}`"),
                rc,
            ))
        } else {
            Ok(())
        }
    };
    // SAFETY: the descriptor was LocalAlloc'd by GetNamedSecurityInfoW and is freed once.
    unsafe { LocalFree(descriptor as HLOCAL) };
    result
}

/// Sets (`low = true`: low, inherited by new files and directories, no write-up) or removes the
/// explicit mandatory label of `path`. The fallback's low-integrity process can only write where the
/// label is low.
pub fn set_low_label(path: &str, low: bool) -> Result<(), OsFailure> {
    let wpath = wide(path);
    let sddl = wide(if low { "S:(ML;OICI;NW;;;LW)" } else { "S:" });
    let mut descriptor: PSECURITY_DESCRIPTOR = null_mut();
    // SAFETY: `sddl` is NUL-terminated; the descriptor is LocalAlloc'd and freed below.
    let ok = unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut descriptor,
            null_mut(),
        )
    };
    if ok == 0 {
        return Err(OsFailure::last("building a mandatory label"));
    }
    let mut present = 0;
    let mut defaulted = 0;
    let mut sacl: *mut ACL = null_mut();
    // SAFETY: `descriptor` is valid; out-pointers are valid locals.
    let ok =
        unsafe { GetSecurityDescriptorSacl(descriptor, &mut present, &mut sacl, &mut defaulted) };
    let result = if ok == 0 {
        Err(OsFailure::last("reading the mandatory label"))
    } else {
        count_write();
        // SAFETY: `sacl` (possibly an empty ACL) lives inside `descriptor` for the call.
        let rc = unsafe {
            SetNamedSecurityInfoW(
                wpath.as_ptr(),
                SE_FILE_OBJECT,
                LABEL_SECURITY_INFORMATION,
                null_mut(),
                null_mut(),
                null(),
                sacl,
            )
        };
        if rc != 0 {
            Err(OsFailure::code(
                format!("writing the integrity label of `{path}`"),
                rc,
            ))
        } else {
            Ok(())
        }
    };
    // SAFETY: the descriptor was LocalAlloc'd by the conversion and is freed once.
    unsafe { LocalFree(descriptor as HLOCAL) };
    result
}

/// The fallback token: a copy of ours with every privilege but SeChangeNotify removed, the
/// Administrators group deny-only, a low mandatory label, and write-restricted by the user SID,
/// every group the token enables for access, and `session` (the per-session SID, crate::sid).
///
/// A write-restricted token is checked twice for write access: once with its enabled SIDs and
/// once with its restricting SIDs, and a write is granted only when both grant it; read and
/// execute access come from the first check alone. With the user and its enabled groups among the
/// restricting SIDs the second check grants what the first does (the deny-only Administrators
/// group grants in neither), so the command writes where the Low-integrity user could before, and
/// the token carries `session` for agentsh.sys to recognise a broker impersonating it.
pub fn restricted_low_token(session: &Sid) -> Result<OwnedHandle, OsFailure> {
    let mut own: HANDLE = null_mut();
    // SAFETY: opens the current process token into `own`, owned just below.
    let ok = unsafe {
        OpenProcessToken(
            GetCurrentProcess(),
            TOKEN_DUPLICATE | TOKEN_QUERY | TOKEN_ASSIGN_PRIMARY | TOKEN_ADJUST_DEFAULT,
            &mut own,
        )
    };
    if ok == 0 {
        return Err(OsFailure::last("OpenProcessToken"));
    }
    let own = owned(own).ok_or_else(|| OsFailure::last("OpenProcessToken"))?;

    let mut admins = [0u8; SECURITY_MAX_SID_SIZE as usize];
    let mut admins_len = SECURITY_MAX_SID_SIZE;
    // SAFETY: `admins` has room for any SID; the length is in/out.
    let ok = unsafe {
        CreateWellKnownSid(
            WinBuiltinAdministratorsSid,
            null_mut(),
            admins.as_mut_ptr().cast(),
            &mut admins_len,
        )
    };
    if ok == 0 {
        return Err(OsFailure::last("CreateWellKnownSid(Administrators)"));
    }
    let disable = SID_AND_ATTRIBUTES {
        Sid: admins.as_mut_ptr().cast(),
        Attributes: 0,
    };
    let restricting = restricting_sids(&own, &admins[..admins_len as usize])?;
    let mut session_bytes = session.to_bytes();
    let mut list: Vec<SID_AND_ATTRIBUTES> = restricting
        .iter()
        .map(|sid| SID_AND_ATTRIBUTES {
            Sid: sid.as_ptr().cast_mut().cast(),
            Attributes: 0,
        })
        .collect();
    list.push(SID_AND_ATTRIBUTES {
        Sid: session_bytes.as_mut_ptr().cast(),
        Attributes: 0,
    });
    let count = u32::try_from(list.len()).unwrap_or(u32::MAX);
    let mut restricted: HANDLE = null_mut();
    // SAFETY: `own` is a valid token; `disable` and every entry of `list` point at valid SIDs
    // (`admins`, `restricting`, `session_bytes`) that outlive the call; restricting entries have
    // zero attributes as the function requires.
    let ok = unsafe {
        CreateRestrictedToken(
            own.as_raw_handle(),
            DISABLE_MAX_PRIVILEGE | WRITE_RESTRICTED,
            1,
            &disable,
            0,
            null(),
            count,
            list.as_ptr(),
            &mut restricted,
        )
    };
    if ok == 0 {
        return Err(OsFailure::last("CreateRestrictedToken"));
    }
    let restricted = owned(restricted).ok_or_else(|| OsFailure::last("CreateRestrictedToken"))?;

    let mut low = [0u8; SECURITY_MAX_SID_SIZE as usize];
    let mut low_len = SECURITY_MAX_SID_SIZE;
    // SAFETY: `low` has room for any SID; the length is in/out.
    let ok = unsafe {
        CreateWellKnownSid(
            WinLowLabelSid,
            null_mut(),
            low.as_mut_ptr().cast(),
            &mut low_len,
        )
    };
    if ok == 0 {
        return Err(OsFailure::last("CreateWellKnownSid(low integrity)"));
    }
    let label = TOKEN_MANDATORY_LABEL {
        Label: SID_AND_ATTRIBUTES {
            Sid: low.as_mut_ptr().cast(),
            Attributes: SE_GROUP_INTEGRITY,
        },
    };
    let size = (size_of::<TOKEN_MANDATORY_LABEL>() + low_len as usize) as u32;
    // SAFETY: `label` and the SID it points to are valid for the call.
    let ok = unsafe {
        SetTokenInformation(
            restricted.as_raw_handle(),
            TokenIntegrityLevel,
            (&label as *const TOKEN_MANDATORY_LABEL).cast::<c_void>(),
            size,
        )
    };
    if ok == 0 {
        return Err(OsFailure::last("SetTokenInformation(low integrity)"));
    }
    Ok(restricted)
}

/// The SIDs a write-restricted copy of `token` lists so that its writes stay what they were: the
/// user SID and every group enabled for access (not deny-only, not the integrity label), except
/// `except` (the group the copy makes deny-only). Each as its packet bytes.
pub fn restricting_sids(token: &OwnedHandle, except: &[u8]) -> Result<Vec<Vec<u8>>, OsFailure> {
    let user = token_information(token, TokenUser, "TokenUser")?;
    let mut out = Vec::new();
    // SAFETY: GetTokenInformation filled `user` with a TOKEN_USER (aligned: u64 elements) whose
    // SID points into the same buffer.
    let user_sid = unsafe { (*user.as_ptr().cast::<TOKEN_USER>()).User.Sid };
    out.push(sid_bytes(user_sid));
    let groups = token_information(token, TokenGroups, "TokenGroups")?;
    for group in token_groups(&groups) {
        let attributes = group.Attributes;
        if attributes & SE_GROUP_ENABLED == 0
            || attributes & (SE_GROUP_USE_FOR_DENY_ONLY | SE_GROUP_INTEGRITY) != 0
        {
            continue;
        }
        let bytes = sid_bytes(group.Sid);
        if bytes != except && !out.contains(&bytes) {
            out.push(bytes);
        }
    }
    Ok(out)
}

/// The packet bytes of a valid SID.
fn sid_bytes(sid: PSID) -> Vec<u8> {
    // SAFETY: `sid` is a valid SID (from the system); GetLengthSid reads its header.
    let len = unsafe { GetLengthSid(sid) } as usize;
    // SAFETY: the SID is `len` bytes long.
    unsafe { std::slice::from_raw_parts(sid.cast::<u8>(), len) }.to_vec()
}

/// The entries of the TOKEN_GROUPS in `buffer`, as [`token_information`] returned it for a class
/// that gives one (TokenGroups, TokenRestrictedSids, TokenCapabilities). Never reads past the
/// buffer, whatever its count says.
pub(super) fn token_groups(buffer: &[u64]) -> &[SID_AND_ATTRIBUTES] {
    let bytes = buffer.len() * size_of::<u64>();
    let offset = std::mem::offset_of!(TOKEN_GROUPS, Groups);
    if bytes < size_of::<TOKEN_GROUPS>() {
        return &[];
    }
    let header: *const TOKEN_GROUPS = buffer.as_ptr().cast();
    // SAFETY: `buffer` holds at least a TOKEN_GROUPS and is aligned for it (u64 elements).
    let count = unsafe { (*header).GroupCount } as usize;
    let room = (bytes - offset) / size_of::<SID_AND_ATTRIBUTES>();
    // SAFETY: the Groups array starts inside the structure, at `offset` in `buffer`.
    let first = unsafe { std::ptr::addr_of!((*header).Groups) }.cast::<SID_AND_ATTRIBUTES>();
    // SAFETY: GetTokenInformation wrote GroupCount entries from `first`; no more than fit in
    // `buffer` are read, and the slice borrows `buffer`.
    unsafe { std::slice::from_raw_parts(first, count.min(room)) }
}

/// `GetTokenInformation(class)` into a buffer aligned for the token structures.
pub(super) fn token_information(
    token: &OwnedHandle,
    class: TOKEN_INFORMATION_CLASS,
    name: &str,
) -> Result<Vec<u64>, OsFailure> {
    let mut needed = 0u32;
    // SAFETY: a size query: no buffer, `needed` receives the size the class takes.
    unsafe { GetTokenInformation(token.as_raw_handle(), class, null_mut(), 0, &mut needed) };
    if needed == 0 {
        return Err(OsFailure::last(format!("GetTokenInformation({name}) size")));
    }
    let mut buffer = vec![0u64; (needed as usize).div_ceil(size_of::<u64>())];
    let len = u32::try_from(buffer.len() * size_of::<u64>()).unwrap_or(u32::MAX);
    // SAFETY: `buffer` is writable for `len` bytes and aligned for every token structure.
    let ok = unsafe {
        GetTokenInformation(
            token.as_raw_handle(),
            class,
            buffer.as_mut_ptr().cast(),
            len,
            &mut needed,
        )
    };
    if ok == 0 {
        return Err(OsFailure::last(format!("GetTokenInformation({name})")));
    }
    Ok(buffer)
}

/// A fresh per-session SID (crate::sid) from 128 bits of the operating system's generator.
pub fn new_session_sid() -> Result<Sid, OsFailure> {
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).map_err(|e| OsFailure {
        step: "reading 128 random bits for the session SID".into(),
        code: e.raw_os_error().unwrap_or(0) as u32,
        message: e.to_string(),
    })?;
    Ok(Sid::session(random))
}

type CreateProfileFn = unsafe extern "system" fn(
    *const u16,
    *const u16,
    *const u16,
    *const SID_AND_ATTRIBUTES,
    u32,
    *mut PSID,
) -> i32;
type DeleteProfileFn = unsafe extern "system" fn(*const u16) -> i32;
type DeriveSidFn = unsafe extern "system" fn(*const u16, *mut PSID) -> i32;

/// The AppContainer entry points of userenv.dll, looked up at run time: Windows 8+ has them, Wine
/// does not (a static import would abort the process at the first call).
#[derive(Clone, Copy)]
pub struct AppContainerApi {
    create: CreateProfileFn,
    delete: DeleteProfileFn,
    derive: DeriveSidFn,
}

impl std::fmt::Debug for AppContainerApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppContainerApi")
    }
}

/// `HRESULT_FROM_WIN32(ERROR_ALREADY_EXISTS)`.
const HR_ALREADY_EXISTS: i32 = 0x8007_00B7_u32 as i32;
/// `HRESULT_FROM_WIN32(ERROR_NOT_FOUND)` / `ERROR_FILE_NOT_FOUND` from DeleteAppContainerProfile.
const HR_NOT_FOUND: [i32; 2] = [0x8007_0490_u32 as i32, 0x8007_0002_u32 as i32];

impl AppContainerApi {
    /// Resolves the three entry points; the error says which one is missing.
    pub fn load() -> Result<Self, String> {
        let dll = wide("userenv.dll");
        // SAFETY: loads a system library by name; the module stays loaded for the process lifetime.
        let module = unsafe { LoadLibraryW(dll.as_ptr()) };
        if module.is_null() {
            let (code, text) = last_error();
            return Err(format!(
                "userenv.dll cannot be loaded: {text} (win32 error {code})"
            ));
        }
        let find = |name: &'static [u8]| {
            // SAFETY: `name` is a NUL-terminated ASCII string; `module` is a loaded module.
            let f = unsafe { GetProcAddress(module, name.as_ptr()) };
            f.ok_or_else(|| {
                format!(
                    "userenv.dll has no `{}` (appcontainer needs windows 8 or later; wine lacks it)",
                    String::from_utf8_lossy(&name[..name.len() - 1])
                )
            })
        };
        let create = find(b"CreateAppContainerProfile\0")?;
        let delete = find(b"DeleteAppContainerProfile\0")?;
        let derive = find(b"DeriveAppContainerSidFromAppContainerName\0")?;
        Ok(AppContainerApi {
            // SAFETY: the export has exactly this documented signature (userenv.h).
            create: unsafe {
                std::mem::transmute::<unsafe extern "system" fn() -> isize, CreateProfileFn>(create)
            },
            // SAFETY: the export has exactly this documented signature (userenv.h).
            delete: unsafe {
                std::mem::transmute::<unsafe extern "system" fn() -> isize, DeleteProfileFn>(delete)
            },
            // SAFETY: the export has exactly this documented signature (userenv.h).
            derive: unsafe {
                std::mem::transmute::<unsafe extern "system" fn() -> isize, DeriveSidFn>(derive)
            },
        })
    }

    /// Creates the profile `name` (or reuses an existing one) and returns its SID string.
    /// `created` tells whether this call made it.
    pub fn create_or_open(
        &self,
        name: &str,
        description: &str,
    ) -> Result<(String, bool), OsFailure> {
        let wname = wide(name);
        let wdesc = wide(description);
        let mut sid: PSID = null_mut();
        // SAFETY: strings are NUL-terminated; `sid` receives a SID freed with FreeSid below.
        let hr = unsafe {
            (self.create)(
                wname.as_ptr(),
                wname.as_ptr(),
                wdesc.as_ptr(),
                null(),
                0,
                &mut sid,
            )
        };
        let created = if hr == HR_ALREADY_EXISTS {
            // SAFETY: as above; DeriveAppContainerSidFromAppContainerName allocates the SID.
            let hr = unsafe { (self.derive)(wname.as_ptr(), &mut sid) };
            if hr < 0 {
                return Err(OsFailure::code(
                    format!("DeriveAppContainerSidFromAppContainerName(`{name}`)"),
                    hr as u32,
                ));
            }
            false
        } else if hr < 0 {
            return Err(OsFailure::code(
                format!("CreateAppContainerProfile(`{name}`)"),
                hr as u32,
            ));
        } else {
            true
        };
        let text = sid_string(sid);
        // SAFETY: both functions document FreeSid as the release of the returned SID.
        unsafe { windows_sys::Win32::Security::FreeSid(sid) };
        Ok((text?, created))
    }

    /// Deletes the profile; an absent profile is not an error.
    pub fn delete(&self, name: &str) -> Result<(), OsFailure> {
        let wname = wide(name);
        // SAFETY: `wname` is NUL-terminated.
        let hr = unsafe { (self.delete)(wname.as_ptr()) };
        if hr < 0 && !HR_NOT_FOUND.contains(&hr) {
            return Err(OsFailure::code(
                format!("DeleteAppContainerProfile(`{name}`)"),
                hr as u32,
            ));
        }
        Ok(())
    }
}

/// Which parts of a security descriptor [`apply_sddl`] writes and [`read_sddl`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    /// The DACL (protected from inheritance when the SDDL says `D:P`).
    pub dacl: bool,
    /// The mandatory label (the SACL's label ACE).
    pub label: bool,
}

/// Writes the DACL and/or mandatory label of `sddl` to `object` (a file path or a registry path
/// such as `CURRENT_USER\SOFTWARE\x`). A protected DACL (`D:P`) stops inheritance from the parent.
pub fn apply_sddl(
    object: &str,
    kind: SE_OBJECT_TYPE,
    sddl: &str,
    parts: Parts,
) -> Result<(), OsFailure> {
    let descriptor = Descriptor::from_sddl(sddl)?;
    let mut info = 0;
    let mut dacl: *mut ACL = null_mut();
    let mut sacl: *mut ACL = null_mut();
    if parts.dacl {
        let (mut present, mut defaulted) = (0, 0);
        // SAFETY: `descriptor` is valid; out-pointers are valid locals.
        let ok = unsafe {
            GetSecurityDescriptorDacl(descriptor.0, &mut present, &mut dacl, &mut defaulted)
        };
        if ok == 0 || present == 0 {
            return Err(OsFailure::last(format!("`{sddl}` has no DACL")));
        }
        let (mut control, mut revision) = (0u16, 0u32);
        // SAFETY: `descriptor` is valid; out-pointers are valid locals.
        let ok = unsafe { GetSecurityDescriptorControl(descriptor.0, &mut control, &mut revision) };
        if ok == 0 {
            return Err(OsFailure::last("GetSecurityDescriptorControl"));
        }
        info |= DACL_SECURITY_INFORMATION;
        if control & SE_DACL_PROTECTED != 0 {
            info |= PROTECTED_DACL_SECURITY_INFORMATION;
        }
    }
    if parts.label {
        let (mut present, mut defaulted) = (0, 0);
        // SAFETY: `descriptor` is valid; out-pointers are valid locals.
        let ok = unsafe {
            GetSecurityDescriptorSacl(descriptor.0, &mut present, &mut sacl, &mut defaulted)
        };
        if ok == 0 || present == 0 {
            return Err(OsFailure::last(format!("`{sddl}` has no mandatory label")));
        }
        info |= LABEL_SECURITY_INFORMATION;
    }
    let wobject = wide(object);
    count_write();
    // SAFETY: `wobject` is NUL-terminated; `dacl` and `sacl` (or NULL) live inside `descriptor`,
    // which outlives the call.
    let rc = unsafe {
        SetNamedSecurityInfoW(
            wobject.as_ptr(),
            kind,
            info,
            null_mut(),
            null_mut(),
            dacl,
            sacl,
        )
    };
    if rc != 0 {
        return Err(OsFailure::code(
            format!("writing the security descriptor `{sddl}` to `{object}`"),
            rc,
        ));
    }
    Ok(())
}

/// The DACL and/or mandatory label of `object`, read back with `GetNamedSecurityInfoW`, as SDDL.
pub fn read_sddl(object: &str, kind: SE_OBJECT_TYPE, parts: Parts) -> Result<String, OsFailure> {
    let mut info = 0;
    if parts.dacl {
        info |= DACL_SECURITY_INFORMATION;
    }
    if parts.label {
        info |= LABEL_SECURITY_INFORMATION;
    }
    let wobject = wide(object);
    let mut descriptor: PSECURITY_DESCRIPTOR = null_mut();
    // SAFETY: out-pointers are valid; the descriptor is LocalAlloc'd and owned below.
    let rc = unsafe {
        GetNamedSecurityInfoW(
            wobject.as_ptr(),
            kind,
            info,
            null_mut(),
            null_mut(),
            null_mut(),
            null_mut(),
            &mut descriptor,
        )
    };
    if rc != 0 {
        return Err(OsFailure::code(
            format!("reading the security descriptor of `{object}`"),
            rc,
        ));
    }
    let descriptor = Descriptor(descriptor);
    let mut text: *mut u16 = null_mut();
    let mut len = 0u32;
    // SAFETY: `descriptor` is valid; `text` receives a LocalAlloc'd string freed below.
    let ok = unsafe {
        ConvertSecurityDescriptorToStringSecurityDescriptorW(
            descriptor.0,
            SDDL_REVISION_1,
            info,
            &mut text,
            &mut len,
        )
    };
    if ok == 0 {
        return Err(OsFailure::last(
            "ConvertSecurityDescriptorToStringSecurityDescriptorW",
        ));
    }
    let mut n = 0usize;
    // SAFETY: the string is NUL-terminated; reading stops at the terminator.
    while unsafe { *text.add(n) } != 0 {
        n += 1;
    }
    // SAFETY: `text` holds `n` valid UTF-16 units.
    let units = unsafe { std::slice::from_raw_parts(text, n) };
    let sddl = String::from_utf16_lossy(units);
    // SAFETY: the string was LocalAlloc'd by the conversion and is freed once.
    unsafe { LocalFree(text as HLOCAL) };
    Ok(sddl)
}

/// `sddl` as Windows' own SDDL reader understands it: parsed with
/// `ConvertStringSecurityDescriptorToSecurityDescriptorW` and written back with
/// `ConvertSecurityDescriptorToStringSecurityDescriptorW` (DACL and label).
pub fn canonical_sddl(sddl: &str) -> Result<String, OsFailure> {
    let descriptor = Descriptor::from_sddl(sddl)?;
    // The label ACE lives in the SACL; SACL_SECURITY_INFORMATION prints it on every SDDL writer.
    let info = DACL_SECURITY_INFORMATION | SACL_SECURITY_INFORMATION | LABEL_SECURITY_INFORMATION;
    let mut text: *mut u16 = null_mut();
    let mut len = 0u32;
    // SAFETY: `descriptor` is valid; `text` receives a LocalAlloc'd string freed below.
    let ok = unsafe {
        ConvertSecurityDescriptorToStringSecurityDescriptorW(
            descriptor.0,
            SDDL_REVISION_1,
            info,
            &mut text,
            &mut len,
        )
    };
    if ok == 0 {
        return Err(OsFailure::last(
            "ConvertSecurityDescriptorToStringSecurityDescriptorW",
        ));
    }
    let mut n = 0usize;
    // SAFETY: the string is NUL-terminated; reading stops at the terminator.
    while unsafe { *text.add(n) } != 0 {
        n += 1;
    }
    // SAFETY: `text` holds `n` valid UTF-16 units.
    let units = unsafe { std::slice::from_raw_parts(text, n) };
    let out = String::from_utf16_lossy(units);
    // SAFETY: the string was LocalAlloc'd by the conversion and is freed once.
    unsafe { LocalFree(text as HLOCAL) };
    Ok(out)
}

/// The binary form Windows' SDDL reader makes of `sddl`: whether the DACL is protected, and the
/// SACL's label ACEs as (ACE type, ACE flags, access mask, SID string).
pub fn parsed_label(sddl: &str) -> Result<(bool, Vec<(u8, u8, u32, String)>), OsFailure> {
    let descriptor = Descriptor::from_sddl(sddl)?;
    let (mut control, mut revision) = (0u16, 0u32);
    // SAFETY: `descriptor` is valid; out-pointers are valid locals.
    let ok = unsafe { GetSecurityDescriptorControl(descriptor.0, &mut control, &mut revision) };
    if ok == 0 {
        return Err(OsFailure::last("GetSecurityDescriptorControl"));
    }
    let (mut present, mut defaulted) = (0, 0);
    let mut sacl: *mut ACL = null_mut();
    // SAFETY: `descriptor` is valid; out-pointers are valid locals.
    let ok =
        unsafe { GetSecurityDescriptorSacl(descriptor.0, &mut present, &mut sacl, &mut defaulted) };
    if ok == 0 {
        return Err(OsFailure::last("GetSecurityDescriptorSacl"));
    }
    let mut labels = Vec::new();
    if present != 0 && !sacl.is_null() {
        // SAFETY: `sacl` points into `descriptor`, alive for this function.
        let count = u32::from(unsafe { (*sacl).AceCount });
        for index in 0..count {
            let mut ace: *mut c_void = null_mut();
            // SAFETY: `index` is below the ACL's ACE count; `ace` receives a pointer into it.
            if unsafe { GetAce(sacl, index, &mut ace) } == 0 {
                return Err(OsFailure::last("GetAce"));
            }
            // SAFETY: every ACE starts with an ACE_HEADER.
            let header = unsafe { &*(ace as *const ACE_HEADER) };
            if header.AceType != SYSTEM_MANDATORY_LABEL_ACE_TYPE {
                continue;
            }
            // SAFETY: a label ACE is a SYSTEM_MANDATORY_LABEL_ACE; its SID starts at SidStart.
            let label = unsafe { &*(ace as *const SYSTEM_MANDATORY_LABEL_ACE) };
            let sid = sid_string((&label.SidStart as *const u32).cast_mut().cast())?;
            labels.push((header.AceType, header.AceFlags, label.Mask, sid));
        }
    }
    Ok((control & SE_DACL_PROTECTED != 0, labels))
}

/// `SYSTEM_MANDATORY_LABEL_ACE_TYPE` (winnt.h).
const SYSTEM_MANDATORY_LABEL_ACE_TYPE: u8 = 0x11;

/// A self-relative security descriptor allocated with LocalAlloc.
struct Descriptor(PSECURITY_DESCRIPTOR);

impl Descriptor {
    fn from_sddl(sddl: &str) -> Result<Self, OsFailure> {
        let wsddl = wide(sddl);
        let mut descriptor: PSECURITY_DESCRIPTOR = null_mut();
        // SAFETY: `wsddl` is NUL-terminated; the descriptor is LocalAlloc'd and owned by Self.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                wsddl.as_ptr(),
                SDDL_REVISION_1,
                &mut descriptor,
                null_mut(),
            )
        };
        if ok == 0 {
            return Err(OsFailure::last(format!("parsing the SDDL `{sddl}`")));
        }
        Ok(Descriptor(descriptor))
    }
}

impl Drop for Descriptor {
    fn drop(&mut self) {
        // SAFETY: the descriptor was LocalAlloc'd by the system and is freed once.
        unsafe { LocalFree(self.0 as HLOCAL) };
    }
}

#[cfg(test)]
mod tests {
    //! The fallback's session SID and restricting list under Wine as far as Wine allows. Windows'
    //! own SID reader (`ConvertStringSidToSidW`, which Wine implements) checks the SID crate::sid
    //! writes; Wine's CreateRestrictedToken accepts restricting SIDs and the write-restricted flag
    //! but ignores them, so only a Windows host shows them in the token.
    use windows_sys::Win32::Security::{IsTokenRestricted, TokenRestrictedSids};

    use super::*;

    /// The restricting SIDs of `token` (TokenRestrictedSids) as packet bytes; empty for a token
    /// without them.
    pub fn token_restricting_sids(token: &OwnedHandle) -> Result<Vec<Vec<u8>>, OsFailure> {
        let groups = token_information(token, TokenRestrictedSids, "TokenRestrictedSids")?;
        Ok(token_groups(&groups)
            .iter()
            .map(|group| sid_bytes(group.Sid))
            .collect())
    }

    fn own_token() -> OwnedHandle {
        let mut token: HANDLE = null_mut();
        // SAFETY: opens the current process token for query into `token`, owned just below.
        let ok = unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) };
        assert_ne!(ok, 0, "{:?}", OsFailure::last("OpenProcessToken"));
        owned(token).unwrap_or_else(|| panic!("OpenProcessToken gave no handle"))
    }

    #[test]
    fn a_session_sid_is_fresh_and_reads_back_through_windows_own_sid_reader() {
        let sid = new_session_sid().unwrap_or_else(|f| panic!("{f:?}"));
        let other = new_session_sid().unwrap_or_else(|f| panic!("{f:?}"));
        assert!(sid.is_session(), "{sid}");
        assert_ne!(sid, other, "two sessions got the same SID");
        let parsed = LocalSid::parse(&sid.to_string()).unwrap_or_else(|f| panic!("{f:?}"));
        assert_eq!(sid_bytes(parsed.as_psid()), sid.to_bytes(), "{sid}");
        assert_eq!(
            sid_string(parsed.as_psid()).unwrap_or_else(|f| panic!("{f:?}")),
            sid.to_string()
        );
    }

    #[test]
    fn the_restricting_list_is_the_user_and_the_groups_enabled_for_access() {
        let token = own_token();
        let user = LocalSid::parse(&current_user_sid().unwrap_or_else(|f| panic!("{f:?}")))
            .unwrap_or_else(|f| panic!("{f:?}"));
        let everyone = LocalSid::parse("S-1-1-0").unwrap_or_else(|f| panic!("{f:?}"));
        let list = restricting_sids(&token, &[]).unwrap_or_else(|f| panic!("{f:?}"));
        assert_eq!(
            list.first(),
            Some(&sid_bytes(user.as_psid())),
            "the user SID comes first"
        );
        assert!(
            list.contains(&sid_bytes(everyone.as_psid())),
            "Everyone is enabled in every interactive token"
        );
        for bytes in &list {
            let sid = crate::sid::Sid::from_bytes(bytes).unwrap_or_else(|e| panic!("{e}"));
            assert_ne!(
                sid.authority(),
                16,
                "the integrity label is no restricting SID: {sid}"
            );
        }
        let without = restricting_sids(&token, &sid_bytes(everyone.as_psid()))
            .unwrap_or_else(|f| panic!("{f:?}"));
        assert!(!without.contains(&sid_bytes(everyone.as_psid())));
        assert_eq!(without.len() + 1, list.len());
    }

    #[test]
    fn the_fallback_token_carries_the_session_sid_among_its_restricting_sids() {
        let sid = new_session_sid().unwrap_or_else(|f| panic!("{f:?}"));
        let token = restricted_low_token(&sid).unwrap_or_else(|f| panic!("{f:?}"));
        let restricting = token_restricting_sids(&token);
        if super::super::util::host_is_wine() && !matches!(&restricting, Ok(r) if !r.is_empty()) {
            // Wine 8: NtFilterToken ignores restricting SIDs and the token cannot report them.
            eprintln!(
                "wine: restricting SIDs are not kept ({restricting:?}); checked on Windows only"
            );
            return;
        }
        let restricting = restricting.unwrap_or_else(|f| panic!("{f:?}"));
        assert!(restricting.contains(&sid.to_bytes()), "{sid} missing");
        let user = LocalSid::parse(&current_user_sid().unwrap_or_else(|f| panic!("{f:?}")))
            .unwrap_or_else(|f| panic!("{f:?}"));
        assert!(
            restricting.contains(&sid_bytes(user.as_psid())),
            "the user SID is missing"
        );
        // SAFETY: `token` is a valid token handle.
        assert_ne!(unsafe { IsTokenRestricted(token.as_raw_handle()) }, 0);
    }
}
