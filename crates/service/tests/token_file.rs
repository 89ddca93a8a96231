//! The API token file is written only where this account alone can write, and never through a
//! link someone planted.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;

use agentsh_service::api::write_token_file;

#[test]
fn the_token_lands_in_a_private_file_in_a_private_directory() {
    let root = tempfile::tempdir().expect("tempdir");
    let path = root.path().join("agentsh").join("api-token");
    write_token_file(&path, "secret").expect("written");
    assert_eq!(std::fs::read_to_string(&path).expect("reads"), "secret");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().expect("dir")), 0o700);
    write_token_file(&path, "rotated").expect("rewritten");
    assert_eq!(std::fs::read_to_string(&path).expect("reads"), "rotated");
}

#[test]
fn a_planted_link_is_replaced_not_written_through() {
    let root = tempfile::tempdir().expect("tempdir");
    let victim = root.path().join("victim");
    std::fs::write(&victim, "precious").expect("victim");
    let dir = root.path().join("tokens");
    std::fs::create_dir(&dir).expect("dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let path = dir.join("api-token");
    std::os::unix::fs::symlink(&victim, &path).expect("link");
    write_token_file(&path, "secret").expect("written");
    assert_eq!(
        std::fs::read_to_string(&victim).expect("reads"),
        "precious",
        "the link target is untouched"
    );
    assert!(
        !std::fs::symlink_metadata(&path)
            .expect("meta")
            .file_type()
            .is_symlink()
    );
}

#[test]
fn a_directory_others_can_write_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("shared");
    std::fs::create_dir(&dir).expect("dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let err = write_token_file(&dir.join("api-token"), "secret").expect_err("refused");
    assert!(err.to_string().contains("writable by others"), "{err}");
    assert_eq!(
        std::fs::read_dir(&dir).expect("lists").count(),
        0,
        "nothing left behind"
    );
    let link = root.path().join("link");
    std::os::unix::fs::symlink(root.path().join("elsewhere"), &link).expect("link");
    std::fs::create_dir(root.path().join("elsewhere")).expect("target dir");
    let err = write_token_file(&link.join("api-token"), "secret");
    // A symbolic link as the directory itself is refused too (its metadata is not a directory).
    assert!(err.is_err(), "a linked directory is refused");
}
