//! The Win32 calls of agentsh-windows, run under Wine in CI (and on Windows). Wine enforces no
//! DACLs or mandatory labels, so these tests check what the code writes and reads back
//! (`GetNamedSecurityInfoW` → SDDL), and what the volume manager calls return — not that Windows
//! would enforce the descriptors.
#![cfg(windows)]

use std::path::{Path, PathBuf};
use std::process::Command;

use agentsh_windows::grants::{GrantJournal, JournalError};
use agentsh_windows::secure::{
    check_secret_sddl, label_app_key, protect_token_file, read_file_sddl, read_key_sddl,
};
use agentsh_windows::volumes::{mount_points, nt_path};

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("agentsh-win32-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn the_token_file_and_its_folder_read_back_with_a_protected_dacl_and_no_read_up() {
    let dir = scratch("token").join(".agentsh");
    std::fs::create_dir_all(&dir).expect("token dir");
    let file = dir.join("api-token");
    std::fs::write(&file, "cafe\n").expect("token");
    protect_token_file(&file).expect("protect");
    for path in [&dir, &file] {
        let sddl = read_file_sddl(path).expect("read back");
        check_secret_sddl(&sddl).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            sddl.contains("(A;;FA;;;SY)") || sddl.contains("(A;OICI;FA;;;SY)"),
            "{sddl}"
        );
        assert!(sddl.contains(";FR;;;IU)"), "{sddl}");
    }
    let dir_sddl = read_file_sddl(&dir).expect("read back");
    assert!(dir_sddl.contains("(ML;OICI;NRNWNX;;;ME)"), "{dir_sddl}");
}

#[test]
fn the_app_key_reads_back_labelled_low_for_subkeys_and_the_label_comes_off() {
    let name = format!("agentsh-win32-test-{}", std::process::id());
    let reg_path = format!(r"HKCU\SOFTWARE\{name}");
    let made = Command::new("reg.exe")
        .args(["add", &reg_path, "/f"])
        .output()
        .expect("reg.exe");
    assert!(made.status.success(), "{made:?}");
    let key = format!(r"CURRENT_USER\SOFTWARE\{name}");
    label_app_key(&key, true).expect("label");
    let sddl = read_key_sddl(&key).expect("read back");
    assert!(sddl.contains("(ML;CI;NW;;;LW)"), "{sddl}");
    label_app_key(&key, false).expect("unlabel");
    let sddl = read_key_sddl(&key).expect("read back");
    assert!(!sddl.contains("ML;"), "{sddl}");
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
fn the_install_folder_reads_back_writable_by_system_and_administrators_only() {
    let dir = scratch("install");
    agentsh_windows::scm::protect_install_folder(&dir).expect("protect");
    let sddl = read_file_sddl(&dir).expect("read back");
    assert!(sddl.starts_with("D:P") || sddl.contains("D:P"), "{sddl}");
    for ace in [
        "(A;OICI;FA;;;SY)",
        "(A;OICI;FA;;;BA)",
        "(A;OICI;0x1200a9;;;BU)",
    ] {
        assert!(sddl.contains(ace), "{ace} missing: {sddl}");
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
    let _ = Path::new(&dir);
}
