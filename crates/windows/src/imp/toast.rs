//! Shows approval toasts through WinRT's `ToastNotificationManager` (see `crate::toast`).

use windows::Data::Xml::Dom::XmlDocument;
use windows::Foundation::TypedEventHandler;
use windows::UI::Notifications::{ToastNotification, ToastNotificationManager, ToastNotifier};
use windows::core::{HSTRING, IInspectable};
use windows_sys::Win32::System::Console::GetConsoleWindow;
use windows_sys::Win32::System::RemoteDesktop::ProcessIdToSessionId;
use windows_sys::Win32::System::StationsAndDesktops::{
    GetProcessWindowStation, GetUserObjectInformationW, UOI_FLAGS, USEROBJECTFLAGS,
};
use windows_sys::Win32::UI::WindowsAndMessaging::{SW_RESTORE, SetForegroundWindow, ShowWindow};

use super::registry::{Value, set_user_values};
use crate::toast::Toast;

/// The identity toasts are shown under. Windows shows an unpackaged program's toasts only under
/// an AppUserModelID it knows: registered under `HKCU\Software\Classes\AppUserModelId`.
pub const APP_ID: &str = "agentsh.approvals";

/// `WSF_VISIBLE` (winuser.h): the window station has visible display surfaces (a desktop).
const WSF_VISIBLE: u32 = 1;

/// Raises toasts for the approvals watcher.
pub struct Notifier {
    notifier: ToastNotifier,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").field("app_id", &APP_ID).finish()
    }
}

impl Notifier {
    /// A notifier when this process runs in a user's desktop session (not session 0, on a
    /// visible window station); otherwise, or when Windows refuses, why not.
    pub fn desktop() -> Result<Notifier, String> {
        let mut session = 0u32;
        // SAFETY: writes the session id of this process into `session`.
        let ok = unsafe { ProcessIdToSessionId(std::process::id(), &mut session) };
        if ok == 0 {
            return Err(format!(
                "cannot tell this process's session: {}",
                super::util::last_error().1
            ));
        }
        if session == 0 {
            return Err("this process runs in session 0, which has no desktop".into());
        }
        if !visible_window_station() {
            return Err("this process's window station has no visible desktop".into());
        }
        set_user_values(
            &format!("Software\\Classes\\AppUserModelId\\{APP_ID}"),
            &[("DisplayName", Value::Str("agentsh approvals"))],
        )
        .map_err(|f| {
            format!(
                "cannot register the notification identity: {}: {} (error {})",
                f.step, f.message, f.code
            )
        })?;
        let notifier = ToastNotificationManager::CreateToastNotifierWithId(&HSTRING::from(APP_ID))
            .map_err(|e| format!("Windows refused a toast notifier: {}", described(&e)))?;
        Ok(Notifier { notifier })
    }

    /// Shows `toast`; activating it brings this console window forward.
    pub fn show(&self, toast: &Toast) -> Result<(), String> {
        let failed = |what: &str, e: windows::core::Error| format!("{what}: {}", described(&e));
        let doc = XmlDocument::new().map_err(|e| failed("cannot create the toast XML", e))?;
        doc.LoadXml(&HSTRING::from(toast.xml.as_str()))
            .map_err(|e| failed("the toast XML was refused", e))?;
        let notification = ToastNotification::CreateToastNotification(&doc)
            .map_err(|e| failed("cannot create the toast", e))?;
        notification
            .Activated(&TypedEventHandler::<ToastNotification, IInspectable>::new(
                |_, _| {
                    bring_console_forward();
                    Ok(())
                },
            ))
            .map_err(|e| failed("cannot handle the toast's activation", e))?;
        self.notifier
            .Show(&notification)
            .map_err(|e| failed("Windows did not show the toast", e))
    }
}

/// A WinRT error as a person reads it: the system's message and the HRESULT (Wine's messages
/// are often empty).
fn described(e: &windows::core::Error) -> String {
    let message = e.message();
    let code = e.code().0 as u32;
    if message.trim().is_empty() {
        format!("HRESULT 0x{code:08X}")
    } else {
        format!("{} (HRESULT 0x{code:08X})", message.trim())
    }
}

/// Whether this process's window station has visible display surfaces.
fn visible_window_station() -> bool {
    // SAFETY: returns this process's window station handle (not to be closed), or null.
    let station = unsafe { GetProcessWindowStation() };
    if station.is_null() {
        return false;
    }
    let mut flags = USEROBJECTFLAGS {
        fInherit: 0,
        fReserved: 0,
        dwFlags: 0,
    };
    let mut needed = 0u32;
    let size = u32::try_from(std::mem::size_of::<USEROBJECTFLAGS>()).unwrap_or(0);
    // SAFETY: `flags` is a USEROBJECTFLAGS of `size` bytes; `station` is a valid handle.
    let ok = unsafe {
        GetUserObjectInformationW(
            station,
            UOI_FLAGS,
            (&raw mut flags).cast(),
            size,
            &mut needed,
        )
    };
    ok != 0 && flags.dwFlags & WSF_VISIBLE != 0
}

/// Restores and raises the console window the watcher runs in, when it has one.
fn bring_console_forward() {
    // SAFETY: plain call; null when the process has no console window.
    let window = unsafe { GetConsoleWindow() };
    if window.is_null() {
        return;
    }
    // SAFETY: `window` is this process's console window.
    unsafe { ShowWindow(window, SW_RESTORE) };
    // SAFETY: as above; Windows decides whether the foreground may change (a toast's activation
    // lets it).
    unsafe { SetForegroundWindow(window) };
}
