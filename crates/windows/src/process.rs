//! What Windows says of another process that the kernel's messages do not carry: its image
//! path and the command line it was started with (for the context of an approval). Read with
//! `PROCESS_QUERY_LIMITED_INFORMATION` only: `QueryFullProcessImageNameW` and
//! `NtQueryInformationProcess(ProcessCommandLineInformation)` (Windows 8.1 and later), never by
//! reading the process's memory.

/// A process's image path and command line, each when it could be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessText {
    pub image: Option<String>,
    pub command_line: Option<String>,
}

#[cfg(windows)]
pub use crate::imp::process::read;

#[cfg(all(test, windows))]
mod tests {
    #[test]
    fn this_processs_image_and_command_line_are_read() {
        let me = super::read(std::process::id()).expect("this process opens");
        let image = me.image.expect("image");
        let exe = std::env::current_exe().expect("current exe");
        let name = exe.file_name().and_then(|n| n.to_str()).expect("exe name");
        assert!(image.ends_with(name), "{image} is {name}");
        if crate::host_is_wine() {
            // Wine 8's NtQueryInformationProcess does not answer ProcessCommandLineInformation:
            // the approval then shows no command line (docs/windows.md).
            assert_eq!(
                me.command_line, None,
                "Wine answered: update docs/windows.md"
            );
        } else {
            let command_line = me.command_line.expect("command line");
            assert!(
                command_line.contains(name.trim_end_matches(".exe")),
                "{command_line}"
            );
        }
        assert_eq!(super::read(0), None, "the idle process cannot be opened");
    }
}
