//! The Win32 calls of agentsh-windows, run under Wine in CI (and on Windows).
//!
//! Wine enforces no DACL or mandatory label, and Wine 8 also refuses to set labels (access denied)
//! and keeps no file DACL (it turns one into Unix mode bits and makes a DACL up from those when
//! asked). So each descriptor is checked twice: through Windows' own SDDL reader, which runs the
//! same under Wine (parsed with `ConvertStringSecurityDescriptorToSecurityDescriptorW`, written back
//! with `ConvertSecurityDescriptorToStringSecurityDescriptorW`) — this is what the code asks Windows
//! to apply — and, on Windows, written to the object and read back with `GetNamedSecurityInfoW`.
//! Under Wine the write must fail *reported*, never pass silently.
#![cfg(windows)]

use std::path::PathBuf;
use std::process::Command;

use agentsh_windows::grants::{GrantJournal, JournalError};
use agentsh_windows::secure::{
    APP_KEY_LABEL_SDDL, aces, canonical_sddl, check_secret_sddl, current_user, label_app_key,
    parse_label, protect_token_file, read_file_sddl, read_key_sddl, token_dir_sddl,
    token_file_sddl,
};
use agentsh_windows::volumes::{mount_points, nt_path};
use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};

/// Wine's ntdll exports `wine_get_version`; Windows' does not.
fn wine() -> bool {
    let name: Vec<u16> = "ntdll.dll\0".encode_utf16().collect();
    // SAFETY: `name` is NUL-terminated; ntdll is loaded in every process.
    let ntdll = unsafe { GetModuleHandleW(name.as_ptr()) };
    // SAFETY: `ntdll` is a loaded module; the export name is NUL-terminated.
    unsafe { GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()) }.is_some()
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("agentsh-win32-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// winnt.h: SYSTEM_MANDATORY_LABEL_ACE_TYPE, the label policy bits, the ACE inheritance flags.
const LABEL_ACE: u8 = 0x11;
const NO_WRITE_UP: u32 = 0x1;
const NO_READ_UP: u32 = 0x2;
const NO_EXECUTE_UP: u32 = 0x4;
const OBJECT_INHERIT: u8 = 0x1;
const CONTAINER_INHERIT: u8 = 0x2;
/// The integrity SIDs: Low and Medium.
const LOW: &str = "S-1-16-4096";
const MEDIUM: &str = "S-1-16-8192";

#[test]
fn windows_reads_the_token_descriptors_as_protected_and_no_read_up() {
    let owner = current_user().expect("this process's SID");
    for (sddl, flags) in [
        (token_file_sddl(&owner), 0),
        (token_dir_sddl(&owner), OBJECT_INHERIT | CONTAINER_INHERIT),
    ] {
        // The binary descriptor Windows' SDDL reader builds (no SDDL writer involved).
        let (protected, labels) = parse_label(&sddl).expect("Windows parses it");
        assert!(protected, "{sddl}: DACL not protected");
        assert_eq!(
            labels,
            [(
                LABEL_ACE,
                flags,
                NO_READ_UP | NO_WRITE_UP | NO_EXECUTE_UP,
                MEDIUM.to_owned()
            )],
            "{sddl}"
        );
        // And the DACL as Windows writes it back: no container or everyone entry.
        let read = canonical_sddl(&sddl).expect("written back");
        for ace in aces(&read, 'D') {
            assert!(
                !matches!(ace[5].as_str(), "AC" | "WD" | "AN" | "S-1-15-2-1"),
                "{read}"
            );
        }
        assert_eq!(aces(&read, 'D').len(), 4, "{read}");
    }
}

#[test]
fn the_token_file_is_protected_and_reads_back_or_the_failure_is_reported() {
    let dir = scratch("token").join(".agentsh");
    std::fs::create_dir_all(&dir).expect("token dir");
    let file = dir.join("api-token");
    std::fs::write(&file, "cafe\n").expect("token");
    match protect_token_file(&file) {
        Ok(()) => {
            assert!(
                !wine(),
                "Wine cannot set mandatory labels; a success would be silent"
            );
            for path in [&dir, &file] {
                let sddl = read_file_sddl(path).expect("read back");
                check_secret_sddl(&sddl).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            let dir_sddl = read_file_sddl(&dir).expect("read back");
            assert!(dir_sddl.contains("(ML;OICI;NRNWNX;;;ME)"), "{dir_sddl}");
        }
        Err(e) => {
            assert!(wine(), "Windows must apply the token protection: {e}");
            assert!(
                e.contains("S:(ML;OICI;NRNWNX;;;ME)") && e.contains("access denied"),
                "{e}"
            );
        }
    }
}

#[test]
fn the_app_key_is_labelled_low_for_subkeys_or_the_failure_is_reported() {
    let (_, labels) = parse_label(APP_KEY_LABEL_SDDL).expect("Windows parses it");
    assert_eq!(
        labels,
        [(LABEL_ACE, CONTAINER_INHERIT, NO_WRITE_UP, LOW.to_owned())]
    );
    let name = format!("agentsh-win32-test-{}", std::process::id());
    let reg_path = format!(r"HKCU\SOFTWARE\{name}");
    let made = Command::new("reg.exe")
        .args(["add", &reg_path, "/f"])
        .output()
        .expect("reg.exe");
    assert!(made.status.success(), "{made:?}");
    let key = format!(r"CURRENT_USER\SOFTWARE\{name}");
    match label_app_key(&key, true) {
        Ok(()) => {
            assert!(
                !wine(),
                "Wine cannot set mandatory labels; a success would be silent"
            );
            let sddl = read_key_sddl(&key).expect("read back");
            assert!(sddl.contains("(ML;CI;NW;;;LW)"), "{sddl}");
            label_app_key(&key, false).expect("unlabel");
            let sddl = read_key_sddl(&key).expect("read back");
            assert!(!sddl.contains("ML;"), "{sddl}");
        }
        Err(e) => {
            assert!(wine(), "Windows must label the key: {e}");
            assert!(
                e.contains(APP_KEY_LABEL_SDDL) && e.contains("access denied"),
                "{e}"
            );
        }
    }
    let _ = Command::new("reg.exe")
        .args(["delete", &reg_path, "/f"])
        .output();
}

#[test]
fn the_volume_manager_names_a_files_volume_as_the_minifilter_will() {
    let (volumes, _skipped) = mount_points().expect("volumes");
    assert!(!volumes.is_empty(), "no volume listed");
    assert!(
        volumes
            .iter()
            .all(|(device, _)| device.starts_with(r"\Device\")),
        "{volumes:?}"
    );
    let dir = scratch("volumes");
    let nt = nt_path(&dir).expect("nt path");
    assert!(nt.starts_with(r"\Device\"), "{nt}");
    // The device part is a listed volume, and below its mount point the two names agree.
    let dos = std::fs::canonicalize(&dir).expect("canonical");
    let dos = dos.to_string_lossy();
    let dos = dos.strip_prefix(r"\\?\").unwrap_or(&dos).to_owned();
    let found = volumes.iter().any(|(device, mounts)| {
        mounts.iter().any(|m| {
            let below_mount = dos
                .get(..m.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(m));
            below_mount && nt.eq_ignore_ascii_case(&format!("{device}\\{}", &dos[m.len()..]))
        })
    });
    assert!(
        found,
        "`{nt}` is `{dos}` through no listed volume: {volumes:?}"
    );
}

#[test]
fn the_install_folder_is_writable_by_system_and_administrators_only() {
    let read =
        canonical_sddl(agentsh_windows::service::INSTALL_DIR_SDDL).expect("Windows parses it");
    assert!(read.starts_with("D:P"), "{read}");
    for ace in [
        "(A;OICI;FA;;;SY)",
        "(A;OICI;FA;;;BA)",
        "(A;OICI;0x1200a9;;;BU)",
    ] {
        assert!(read.contains(ace), "{ace} missing: {read}");
    }
    let dir = scratch("install");
    agentsh_windows::scm::protect_install_folder(&dir).expect("protect");
    if !wine() {
        // Wine keeps no file DACL (it makes one up from the Unix mode bits when asked).
        let sddl = read_file_sddl(&dir).expect("read back");
        for ace in ["(A;OICI;FA;;;SY)", "(A;OICI;FA;;;BA)"] {
            assert!(sddl.contains(ace), "{ace} missing: {sddl}");
        }
        assert!(sddl.contains("D:P"), "{sddl}");
    }
}

#[test]
fn a_second_sandbox_with_the_same_name_cannot_take_the_lock() {
    let dir = scratch("lock");
    let journal = GrantJournal::in_dir(&dir, "same").expect("journal");
    let first = journal.lock().expect("first lock");
    let second = GrantJournal::in_dir(&dir, "same").expect("journal").lock();
    assert!(
        matches!(second, Err(JournalError::Busy { .. })),
        "{second:?}"
    );
    drop(first);
    journal.lock().expect("free again once the first is gone");
}

/// The service's image lookup names this very process in NT form, ending with the test
/// executable's name, and answers `None` for a pid no process has.
#[test]
fn a_running_process_image_is_named_in_nt_form() {
    let exe = std::env::current_exe().expect("current exe");
    let name = exe
        .file_name()
        .and_then(|n| n.to_str())
        .expect("exe name")
        .to_ascii_lowercase();
    let image = agentsh_windows::process_image_path(std::process::id())
        .expect("the current process's image");
    assert!(
        image.to_ascii_lowercase().ends_with(&format!("\\{name}")),
        "{image} names {name}"
    );
    assert!(image.starts_with("\\Device\\"), "{image} is an NT path");
    // Pids are multiples of 4; this one is far beyond any the system hands out.
    assert_eq!(agentsh_windows::process_image_path(0xFFFF_FFFC), None);
}

/// The session file's DACL (SYSTEM, Administrators and the service's account only) is applied;
/// on Windows it reads back as written. Wine keeps no file DACL (it makes one up from Unix mode
/// bits), so there only the call's success or a reported failure is checked.
#[test]
fn a_service_file_is_protected_for_the_service_only() {
    let dir = scratch("service-file");
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("sessions.json");
    std::fs::write(&file, "[]").expect("file");
    match agentsh_windows::secure::protect_service_file(&file) {
        Ok(()) if !wine() => {
            let sddl = read_file_sddl(&file).expect("read back");
            let trustees: Vec<String> = aces(&sddl, 'D').iter().map(|a| a[5].clone()).collect();
            assert!(
                trustees
                    .iter()
                    .all(|t| t == "SY" || t == "BA" || t.starts_with("S-1-5-")),
                "{sddl}"
            );
            assert!(
                !sddl.contains(";;;IU)") && !sddl.contains(";;;WD)"),
                "{sddl}"
            );
        }
        Ok(()) => {}
        Err(e) => assert!(wine(), "Windows must apply the session file's DACL: {e}"),
    }
}
