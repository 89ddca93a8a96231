//! How the agentsh service is installed and started, as data the Windows code applies and the
//! tests check natively: where the binary is copied and who may write it, what the service depends
//! on, what the SCM does when it fails, and how long it waits for the driver before giving up.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The folder under `%ProgramFiles%` the service's binary is copied to.
pub const INSTALL_FOLDER: &str = "agentsh";
/// The binary's name there.
pub const INSTALLED_EXE: &str = "agentsh.exe";

/// The install folder's security descriptor: protected (nothing inherited from `%ProgramFiles%`),
/// full control for LocalSystem and Administrators, read and execute for everyone else
/// (`0x1200a9` = `FILE_GENERIC_READ | FILE_GENERIC_EXECUTE`), inherited by the binary. Only an
/// administrator can replace what the LocalSystem service runs.
pub const INSTALL_DIR_SDDL: &str = "D:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)";

/// Services the SCM starts before this one: the driver's kernel service, so a reboot brings the
/// minifilter up before the service connects to its port (a demand-start driver is started as a
/// dependency).
pub const DEPENDENCIES: &[&str] = &["agentsh"];

/// The service's description in services.msc.
pub const DESCRIPTION: &str = "Decides the registry and file operations of sandboxed AI agents for the agentsh minifilter (agentsh.sys) and reports them";

/// What the SCM does when the service stops without being asked: restart after 5 s, again after
/// 10 s, then every 60 s; the count resets after a day without failures. Applied to non-crash
/// failures too (a body that returns an error), so a service that could not reach the driver
/// tries again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    pub reset_period_secs: u32,
    pub restart_delays_ms: [u32; 3],
    pub on_non_crash_failures: bool,
}

pub const RECOVERY: Recovery = Recovery {
    reset_period_secs: 86_400,
    restart_delays_ms: [5_000, 10_000, 60_000],
    on_non_crash_failures: true,
};

/// Where `service install` copies the binary: `<program_files>\agentsh\agentsh.exe`.
pub fn install_path(program_files: &Path) -> PathBuf {
    program_files.join(INSTALL_FOLDER).join(INSTALLED_EXE)
}

/// The image path registered with the SCM: the installed binary, quoted, with `service run`.
pub fn image_path(installed: &Path) -> String {
    format!("\"{}\" service run", installed.display())
}

/// How the service waits for the driver's port at start: tries again after 100 ms, doubling up
/// to 5 s, for at most `give_up_after` (then the service stops with an error and the SCM's
/// recovery restarts it). The SCM sees `START_PENDING` with a new checkpoint at every attempt,
/// and `RUNNING` only once the service serves the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartRetry {
    pub first: Duration,
    pub longest: Duration,
    pub give_up_after: Duration,
}

impl Default for StartRetry {
    fn default() -> Self {
        StartRetry {
            first: Duration::from_millis(100),
            longest: Duration::from_secs(5),
            give_up_after: Duration::from_secs(120),
        }
    }
}

impl StartRetry {
    /// The wait before attempt `attempt + 1` (attempt 0 was the first try), or `None` once
    /// `elapsed` has reached the limit.
    pub fn delay(&self, attempt: u32, elapsed: Duration) -> Option<Duration> {
        if elapsed >= self.give_up_after {
            return None;
        }
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        let d = self.first.saturating_mul(factor).min(self.longest);
        Some(d.min(self.give_up_after - elapsed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_goes_to_program_files_and_is_registered_quoted() {
        let installed = install_path(Path::new(r"C:\Program Files"));
        assert_eq!(
            installed,
            Path::new(r"C:\Program Files")
                .join("agentsh")
                .join("agentsh.exe")
        );
        assert_eq!(
            image_path(Path::new(r"C:\Program Files\agentsh\agentsh.exe")),
            r#""C:\Program Files\agentsh\agentsh.exe" service run"#
        );
    }

    #[test]
    fn the_install_folder_is_protected_and_writable_only_by_system_and_administrators() {
        // D:P = protected DACL; every ACE is inheritable (OICI); only SY and BA get FA.
        assert!(INSTALL_DIR_SDDL.starts_with("D:P"));
        let aces: Vec<&str> = INSTALL_DIR_SDDL
            .split('(')
            .skip(1)
            .map(|a| a.trim_end_matches(')'))
            .collect();
        assert_eq!(aces.len(), 3);
        for ace in &aces {
            let f: Vec<&str> = ace.split(';').collect();
            assert_eq!((f[0], f[1]), ("A", "OICI"), "{ace}");
            let write_rights = f[2] == "FA" || f[2].contains('W');
            assert_eq!(write_rights, matches!(f[5], "SY" | "BA"), "{ace}");
        }
        // 0x1200a9: SYNCHRONIZE | READ_CONTROL | FILE_READ_ATTRIBUTES | FILE_EXECUTE |
        // FILE_READ_EA | FILE_READ_DATA, no write bit.
        assert_eq!(
            0x1200a9 & (0x2 | 0x4 | 0x10 | 0x100 | 0x40000 | 0x80000 | 0x10000),
            0
        );
    }

    #[test]
    fn start_waits_for_the_driver_with_doubling_delays_then_gives_up() {
        let r = StartRetry::default();
        let delays: Vec<u64> = (0..8)
            .map(|a| {
                r.delay(a, Duration::ZERO)
                    .map_or(0, |d| d.as_millis() as u64)
            })
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(r.delay(40, Duration::ZERO), Some(Duration::from_secs(5)));
        assert_eq!(
            r.delay(3, Duration::from_secs(119) + Duration::from_millis(900)),
            Some(Duration::from_millis(100))
        );
        assert_eq!(r.delay(0, Duration::from_secs(120)), None);
    }

    #[test]
    fn the_service_depends_on_the_drivers_kernel_service() {
        assert_eq!(DEPENDENCIES, [crate::driver::FILTER_NAME]);
    }
}
