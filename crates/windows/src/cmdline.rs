//! Builds a Windows command line from an argument vector so that the child's `CommandLineToArgvW`
//! (and the MSVC/mingw C runtime) reads back exactly the same arguments.
//!
//! Batch files are different: `CreateProcess` runs them through `cmd.exe`, which does not read
//! `\"` and expands `%VAR%` and `&|<>^` wherever they are not quoted (the "BatBadBut" class,
//! CVE-2024-24576). A `.bat`/`.cmd` target — also one named with trailing dots or spaces, which
//! Windows strips (CVE-2024-43402) — therefore gets the command line Rust's standard library builds
//! since those fixes: `cmd.exe /e:ON /v:OFF /d /c ""script" args"`, each argument quoted unless it
//! holds only letters, digits and `#$*+-./:?@\_`, `"` doubled, `%` written as `%%cd:~,%` (an empty
//! substring of `%cd%`, so no variable is expanded), and arguments with a carriage return or line
//! feed refused — cmd would end the command there. A target named `cmd.exe` itself takes its
//! arguments as a command to run, by design; the policy sees that command as given.

use std::fmt;

/// An argument vector no command line can carry faithfully.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandLineError {
    #[error("batch file `{0}`: a Windows file name cannot contain `\"` or end with `\\`")]
    BatchName(String),
    #[error(
        "batch file `{script}`: argument {index} contains a line break, which cmd.exe would treat as the end of the command"
    )]
    BatchArgument { script: String, index: usize },
}

/// What to start: the application (for batch files, cmd.exe) and the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// `lpApplicationName`: `None` lets `CreateProcess` take the program from the command line.
    pub application: Option<String>,
    pub command_line: String,
}

impl fmt::Display for Launch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.command_line)
    }
}

/// Whether `program` names a batch file: ends with `.bat` or `.cmd` once the trailing dots and
/// spaces Windows ignores are removed.
pub fn is_batch(program: &str) -> bool {
    let name = program.trim_end_matches(['.', ' ']).to_ascii_lowercase();
    name.ends_with(".bat") || name.ends_with(".cmd")
}

/// The launch of `program args`: batch files through `cmd` (the full path of the system's
/// cmd.exe, never one found on the search path), everything else with [`join`].
pub fn launch(program: &str, args: &[String], cmd: &str) -> Result<Launch, CommandLineError> {
    if !is_batch(program) {
        return Ok(Launch {
            application: None,
            command_line: join(program, args),
        });
    }
    if program.contains('"') || program.ends_with('\\') {
        return Err(CommandLineError::BatchName(program.to_owned()));
    }
    let mut line = String::from("cmd.exe /e:ON /v:OFF /d /c \"\"");
    line.push_str(program);
    line.push('"');
    for (i, arg) in args.iter().enumerate() {
        if arg.contains(['\r', '\n']) {
            return Err(CommandLineError::BatchArgument {
                script: program.to_owned(),
                index: i + 1,
            });
        }
        line.push(' ');
        batch_arg_into(&mut line, arg);
    }
    line.push('"');
    Ok(Launch {
        application: Some(cmd.to_owned()),
        command_line: line,
    })
}

fn batch_arg_into(out: &mut String, arg: &str) {
    const UNQUOTED: &str = r"#$*+-./:?@\_";
    let quote = arg.is_empty()
        || arg.ends_with('\\')
        || arg.chars().any(|c| {
            (c.is_ascii() && !(c.is_ascii_alphanumeric() || UNQUOTED.contains(c))) || c.is_control()
        });
    if quote {
        out.push('"');
    }
    let mut backslashes = 0usize;
    for c in arg.chars() {
        if c == '\\' {
            backslashes += 1;
        } else {
            if c == '"' {
                // Backslashes before a quote are doubled; the quote is doubled too.
                out.extend(std::iter::repeat_n('\\', backslashes));
                out.push('"');
            } else if c == '%' {
                out.push_str("%%cd:~,");
            }
            backslashes = 0;
        }
        out.push(c);
    }
    if quote {
        out.extend(std::iter::repeat_n('\\', backslashes));
        out.push('"');
    }
}

/// Quotes `program` and `args` into one command line.
pub fn join(program: &str, args: &[String]) -> String {
    let mut line = String::new();
    quote_into(&mut line, program);
    for arg in args {
        line.push(' ');
        quote_into(&mut line, arg);
    }
    line
}

fn quote_into(out: &mut String, arg: &str) {
    if !arg.is_empty() && !arg.contains([' ', '\t', '\n', '\x0b', '"']) {
        out.push_str(arg);
        return;
    }
    out.push('"');
    let mut backslashes = 0usize;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                // Backslashes before a quote are escaped, then the quote itself.
                out.extend(std::iter::repeat_n('\\', backslashes * 2 + 1));
                out.push('"');
                backslashes = 0;
            }
            _ => {
                out.extend(std::iter::repeat_n('\\', backslashes));
                backslashes = 0;
                out.push(c);
            }
        }
    }
    // Backslashes before the closing quote are doubled so they stay literal.
    out.extend(std::iter::repeat_n('\\', backslashes * 2));
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(args: &[&str], expected: &str) {
        let owned: Vec<String> = args[1..].iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(join(args[0], &owned), expected, "args {args:?}");
    }

    #[test]
    fn quoting_follows_commandlinetoargvw_rules() {
        check(&["cmd.exe", "/c", "echo", "hello"], "cmd.exe /c echo hello");
        check(&["a b.exe", ""], r#""a b.exe" """#);
        check(&["x", r#"say "hi""#], r#"x "say \"hi\"""#);
        check(&["x", r"C:\dir with space\"], r#"x "C:\dir with space\\""#);
        check(&["x", r"C:\plain\path"], r"x C:\plain\path");
        check(&["x", r#"a\"b"#], r#"x "a\\\"b""#);
        check(&["x", "tab\there"], "x \"tab\there\"");
    }

    const CMD: &str = r"C:\Windows\system32\cmd.exe";

    fn bat(program: &str, args: &[&str]) -> Result<Launch, CommandLineError> {
        let owned: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        launch(program, &owned, CMD)
    }

    #[test]
    fn batch_targets_are_recognised_through_trailing_dots_and_spaces() {
        for yes in [
            "run.bat",
            "RUN.CMD",
            r"C:\x\build.cmd",
            "run.bat.",
            "run.bat . .",
            "run.cmd  ",
        ] {
            assert!(is_batch(yes), "{yes}");
        }
        for no in ["run.exe", "bat", "run.bat.exe", "cmd.exe", "run.batch"] {
            assert!(!is_batch(no), "{no}");
        }
    }

    #[test]
    fn batch_arguments_are_quoted_as_rust_std_does_since_batbadbut() {
        // Expected lines written from the rules in the module documentation.
        let cases: &[(&[&str], &str)] = &[
            (
                &["plain", "C:\\dir\\f.txt"],
                r#"cmd.exe /e:ON /v:OFF /d /c ""b.bat" plain C:\dir\f.txt""#,
            ),
            (
                &["a&calc"],
                r#"cmd.exe /e:ON /v:OFF /d /c ""b.bat" "a&calc"""#,
            ),
            (
                &[r#"say "hi""#],
                r#"cmd.exe /e:ON /v:OFF /d /c ""b.bat" "say ""hi"""""#,
            ),
            (
                &["%PATH%"],
                r#"cmd.exe /e:ON /v:OFF /d /c ""b.bat" "%%cd:~,%PATH%%cd:~,%"""#,
            ),
            (&[""], r#"cmd.exe /e:ON /v:OFF /d /c ""b.bat" """"#),
            (
                &[r"dir\"],
                r#"cmd.exe /e:ON /v:OFF /d /c ""b.bat" "dir\\"""#,
            ),
            (
                &[r#"a\"b"#],
                r#"cmd.exe /e:ON /v:OFF /d /c ""b.bat" "a\\""b"""#,
            ),
            (
                &["x|y^z<w>v"],
                r#"cmd.exe /e:ON /v:OFF /d /c ""b.bat" "x|y^z<w>v"""#,
            ),
        ];
        for (args, want) in cases {
            let l = bat("b.bat", args).expect("quotable");
            assert_eq!(l.command_line, *want, "{args:?}");
            assert_eq!(l.application.as_deref(), Some(CMD));
        }
        // Trailing dots and spaces are still a batch file, run through cmd.exe.
        let l = bat("b.bat. ", &["a&b"]).expect("quotable");
        assert_eq!(l.application.as_deref(), Some(CMD));
    }

    #[test]
    fn what_cmd_cannot_carry_is_refused() {
        assert_eq!(
            bat("b.bat", &["ok", "line\nbreak"]),
            Err(CommandLineError::BatchArgument {
                script: "b.bat".into(),
                index: 2
            })
        );
        assert!(matches!(
            bat("b.bat", &["cr\r"]),
            Err(CommandLineError::BatchArgument { .. })
        ));
        assert!(matches!(
            bat(r#"a"b.bat"#, &[]),
            Err(CommandLineError::BatchName(_))
        ));
    }

    #[test]
    fn other_programs_keep_the_commandlinetoargvw_rules() {
        let l = bat("tool.exe", &["a b"]).expect("quotable");
        assert_eq!(
            l,
            Launch {
                application: None,
                command_line: r#"tool.exe "a b""#.into()
            }
        );
    }
}
