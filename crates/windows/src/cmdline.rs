//! Builds a Windows command line from an argument vector so that the child's `CommandLineToArgvW`
//! (and the MSVC/mingw C runtime) reads back exactly the same arguments.

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
    use super::join;

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
}
