//! Glob patterns over canonical paths: `*` is any run of characters including `\`, `?` is one
//! character, `[*]`, `[?]` and `[[]` are a literal `*`, `?` and `[`, and `${NAME}` is a session
//! variable. A pattern ending in `\*` also matches the key or directory it names, so
//! `HKCU\SOFTWARE\${APP_NAME}\*` covers the application key itself and everything beneath it.

use crate::canonical::{self, Root};
use crate::filepath;
use crate::index::IndexComp;

/// Variables a pattern may use; each is set per session from its registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Var {
    /// `${WORKSPACE}`: the sandbox's workspace directory (canonical file path).
    Workspace,
    /// `${APP_NAME}`: the application identifier.
    AppName,
}

impl Var {
    /// Every variable, for error messages and docs.
    pub const ALL: [Var; 2] = [Var::Workspace, Var::AppName];

    /// The name as written between `${` and `}`.
    pub fn name(self) -> &'static str {
        match self {
            Var::Workspace => "WORKSPACE",
            Var::AppName => "APP_NAME",
        }
    }
}

/// Upper-cased variable values of one session, as patterns compare them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VarValues {
    pub workspace: Option<String>,
    pub app_name: Option<String>,
}

impl VarValues {
    fn get(&self, var: Var) -> Option<&str> {
        let v = match var {
            Var::Workspace => self.workspace.as_deref(),
            Var::AppName => self.app_name.as_deref(),
        };
        // An empty value would turn `SOFTWARE\${APP_NAME}\*` into `SOFTWARE\\*`: never matches.
        v.filter(|s| !s.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Lit(Box<str>),
    Var(Var),
    Star,
    One,
    /// One whole key component (the user SID in a catalog `HKU\<user>\...` pattern); always
    /// followed by `\` or the end, so taking every character up to the next `\` is exact.
    Component,
}

/// A compiled glob over upper-cased text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
    /// For a pattern ending in `\*`: the same pattern without it, which also matches.
    itself: Option<Box<Glob>>,
    source: String,
}

/// Why a pattern could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("empty pattern")]
    Empty,
    #[error("unknown variable `${{{0}}}` (known: ${{WORKSPACE}}, ${{APP_NAME}})")]
    UnknownVariable(String),
    #[error("unterminated variable: `${{` without `}}`")]
    UnterminatedVariable,
    #[error("`[` starts an escape: write `[*]`, `[?]` or `[[]` for a literal `*`, `?` or `[`")]
    BadEscape,
    #[error(
        "unknown registry root `{0}` (expected HKLM, HKCU, HKU, HKCR, HKCC, their HKEY_ names, or \\REGISTRY\\...)"
    )]
    UnknownRoot(String),
    #[error("control character U+{0:04X} in pattern (in YAML, write paths in single quotes)")]
    ControlCharacter(u32),
    #[error(
        "character U+{0:04X} in pattern: U+10F800..U+10FFFF stand for unpaired surrogates in names and cannot be written in a pattern"
    )]
    ReservedCharacter(u32),
}

impl Glob {
    /// Compiles upper-cased pattern text (already canonical where that applies).
    fn compile(text: &str) -> Result<Glob, PatternError> {
        let mut tokens: Vec<Token> = Vec::new();
        let mut lit = String::new();
        let mut chars = text.char_indices().peekable();
        let flush = |lit: &mut String, tokens: &mut Vec<Token>| {
            if !lit.is_empty() {
                tokens.push(Token::Lit(std::mem::take(lit).into_boxed_str()));
            }
        };
        while let Some((i, c)) = chars.next() {
            match c {
                '*' => {
                    flush(&mut lit, &mut tokens);
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                }
                '?' => {
                    flush(&mut lit, &mut tokens);
                    tokens.push(Token::One);
                }
                '[' => {
                    let esc = text.get(i + 1..i + 3);
                    match esc {
                        Some("*]") | Some("?]") | Some("[]") => {
                            lit.push(text.as_bytes()[i + 1] as char);
                            chars.next();
                            chars.next();
                        }
                        _ => return Err(PatternError::BadEscape),
                    }
                }
                '$' if text[i + 1..].starts_with('{') => {
                    let Some(end) = text[i + 2..].find('}') else {
                        return Err(PatternError::UnterminatedVariable);
                    };
                    let name = &text[i + 2..i + 2 + end];
                    let var = Var::ALL
                        .into_iter()
                        .find(|v| v.name() == name)
                        .ok_or_else(|| PatternError::UnknownVariable(name.to_owned()))?;
                    flush(&mut lit, &mut tokens);
                    tokens.push(Token::Var(var));
                    while chars.peek().is_some_and(|&(j, _)| j <= i + 2 + end) {
                        chars.next();
                    }
                }
                c => lit.push(c),
            }
        }
        flush(&mut lit, &mut tokens);
        let itself = match tokens.as_slice() {
            [.., Token::Lit(l), Token::Star]
                if l.ends_with('\\') && (l.len() > 1 || tokens.len() > 2) =>
            {
                let mut short = tokens[..tokens.len() - 1].to_vec();
                if let Some(Token::Lit(l)) = short.last_mut() {
                    *l = l[..l.len() - 1].into();
                }
                if short.last() == Some(&Token::Lit("".into())) {
                    short.pop();
                }
                Some(Box::new(Glob {
                    tokens: short,
                    itself: None,
                    source: String::new(),
                }))
            }
            _ => None,
        };
        Ok(Glob {
            tokens,
            itself,
            source: text.to_owned(),
        })
    }

    /// The canonical pattern text.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern contains no wildcard and no variable.
    pub fn is_literal(&self) -> bool {
        self.tokens.iter().all(|t| matches!(t, Token::Lit(_)))
    }

    /// Whether any token is a variable.
    pub fn uses_variables(&self) -> bool {
        self.tokens.iter().any(|t| matches!(t, Token::Var(_)))
    }

    /// The literal text every match starts with.
    pub fn literal_prefix(&self) -> String {
        let mut out = String::new();
        for t in &self.tokens {
            match t {
                Token::Lit(l) => out.push_str(l),
                _ => break,
            }
        }
        out
    }

    /// The components the prefix index files this pattern under: its literal components up to
    /// the last complete one before a wildcard, with [`IndexComp::Any`] for a user component.
    /// An escaped `[*]` is the literal `*` a key really has, never a wildcard.
    pub(crate) fn index_components(&self) -> Vec<IndexComp> {
        let mut comps = Vec::new();
        let mut buf = String::new();
        let push = |comps: &mut Vec<IndexComp>, text: &str| {
            comps.extend(
                text.split('\\')
                    .filter(|c| !c.is_empty())
                    .map(|c| IndexComp::Lit(c.into())),
            );
        };
        for t in &self.tokens {
            match t {
                Token::Lit(l) => buf.push_str(l),
                Token::Component => {
                    push(&mut comps, &buf);
                    buf.clear();
                    comps.push(IndexComp::Any);
                }
                Token::Star | Token::One | Token::Var(_) => {
                    // Only complete components are filed: `RUN*` is not the component `RUN`.
                    let complete = buf.rfind('\\').map_or("", |i| &buf[..i]);
                    push(&mut comps, complete);
                    return comps;
                }
            }
        }
        push(&mut comps, &buf);
        comps
    }

    /// A catalog `HKCU` location read for every user: `HKU\<one component>` + `rest` (empty or
    /// starting with `\`). The user component is one key name (a SID, `.DEFAULT`), never a run
    /// of components, so the index can walk it like any other component.
    fn any_user(rest: &str) -> Result<Glob, PatternError> {
        let mut g = Glob::compile(&format!("HKU\\*{rest}"))?;
        g.user_component();
        Ok(g)
    }

    fn user_component(&mut self) {
        if let [Token::Lit(l), t @ Token::Star, ..] = self.tokens.as_mut_slice()
            && &**l == "HKU\\"
        {
            *t = Token::Component;
        }
        if let Some(itself) = self.itself.as_mut() {
            itself.user_component();
        }
    }

    /// Matches upper-cased `text`. `*` backtracks to the most recent star only, which is exact for
    /// globs (a later star subsumes every earlier choice), so matching is O(pattern × text).
    pub fn matches(&self, text: &str, vars: &VarValues) -> bool {
        self.matches_at(text, 0, vars)
    }

    /// Like [`Glob::matches`], for a caller that already knows the first `skip` bytes of `text`
    /// equal the first `skip` bytes of the pattern's leading literal (the prefix index does).
    pub(crate) fn matches_at(&self, text: &str, skip: usize, vars: &VarValues) -> bool {
        self.matches_tokens(text, skip, vars)
            || self
                .itself
                .as_ref()
                .is_some_and(|g| g.matches_tokens(text, skip, vars))
    }

    fn matches_tokens(&self, text: &str, skip: usize, vars: &VarValues) -> bool {
        let tokens = &self.tokens;
        let bytes = text.as_bytes();
        let (mut ti, mut pos) = (0usize, 0usize);
        // Whatever the stars take, a match must end with the final literal.
        if tokens.len() > 1
            && let Some(Token::Lit(l)) = tokens.last()
            && !bytes.ends_with(l.as_bytes())
        {
            return false;
        }
        if skip > 0 {
            match tokens.first() {
                Some(Token::Lit(l)) if l.len() >= skip && bytes.len() >= skip => {
                    if !bytes[skip..].starts_with(&l.as_bytes()[skip..]) {
                        return false;
                    }
                    ti = 1;
                    pos = l.len();
                }
                _ => return false,
            }
        }
        let mut star: Option<(usize, usize)> = None;
        loop {
            if let Some(tok) = tokens.get(ti) {
                let advanced = match tok {
                    Token::Star => {
                        star = Some((ti + 1, pos));
                        ti += 1;
                        continue;
                    }
                    Token::Component => {
                        let len = bytes[pos..]
                            .iter()
                            .position(|&b| b == b'\\')
                            .unwrap_or(bytes.len() - pos);
                        pos += len;
                        len > 0
                    }
                    Token::One => match text[pos..].chars().next() {
                        Some(c) => {
                            pos += c.len_utf8();
                            true
                        }
                        None => false,
                    },
                    Token::Lit(l) => {
                        if bytes[pos..].starts_with(l.as_bytes()) {
                            pos += l.len();
                            true
                        } else {
                            false
                        }
                    }
                    Token::Var(v) => match vars.get(*v) {
                        Some(val) if bytes[pos..].starts_with(val.as_bytes()) => {
                            pos += val.len();
                            true
                        }
                        Some(_) => false,
                        None => return false,
                    },
                };
                if advanced {
                    ti += 1;
                    continue;
                }
            } else if pos == bytes.len() {
                return true;
            }
            match star {
                Some((after, spos)) if spos < bytes.len() => {
                    // The resume point can sit inside a character (the literal search below may
                    // propose one); step to the next character boundary.
                    let mut next = spos + 1;
                    while !text.is_char_boundary(next) {
                        next += 1;
                    }
                    // A star followed by literal text can only resume where that text occurs.
                    if let Some(Token::Lit(l)) = tokens.get(after) {
                        // Search for a byte of the literal that is rarer than the separator.
                        let lb = l.as_bytes();
                        let a = usize::from(lb.len() > 1 && lb[0] == b'\\');
                        match bytes
                            .get(next + a..)
                            .and_then(|rest| rest.iter().position(|&b| b == lb[a]))
                        {
                            Some(off) => next += off,
                            None => return false,
                        }
                    }
                    star = Some((after, next));
                    ti = after;
                    pos = next;
                }
                _ => return false,
            }
        }
    }
}

fn check_controls(text: &str) -> Result<(), PatternError> {
    match text.chars().find(|c| c.is_control()) {
        Some(c) => Err(PatternError::ControlCharacter(c as u32)),
        None => match text.chars().find(|&c| agentsh_winstr::name::is_reserved(c)) {
            Some(c) => Err(PatternError::ReservedCharacter(c as u32)),
            None => Ok(()),
        },
    }
}

fn is_wild(comp: &str) -> bool {
    comp.contains(['*', '?', '[', '$'])
}

/// How HKCU patterns are read: rules mean the session user's hive; the built-in catalog means
/// every user's hive (a write to another user's Run key is persistence too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserScope {
    SessionUser,
    AnyUser,
}

/// Compiles a registry key pattern into one glob per canonical spelling it covers (`HKCR` covers
/// the machine and the user classes; catalog `HKCU` patterns also cover `HKU\<user>`, the user
/// being exactly one key name).
pub fn registry_key(pattern: &str, scope: UserScope) -> Result<Vec<Glob>, PatternError> {
    check_controls(pattern)?;
    let upper = canonical::upcase(pattern);
    let comps: Vec<&str> = upper.split('\\').filter(|c| !c.is_empty()).collect();
    let Some(&first) = comps.first() else {
        return Err(PatternError::Empty);
    };
    let mut variants: Vec<Vec<&str>> = Vec::new();
    if is_wild(first) {
        variants.push(comps.clone());
    } else if matches!(first, "HKCR" | "HKEY_CLASSES_ROOT") {
        for root in ["HKLM", "HKCU"] {
            let mut v = vec![root, "SOFTWARE", "CLASSES"];
            v.extend_from_slice(&comps[1..]);
            variants.push(v);
        }
    } else {
        variants.push(comps.clone());
    }
    let mut globs = Vec::new();
    for v in variants {
        let resolved = if is_wild(v[0]) {
            v
        } else {
            let r = canonical::resolve(&v, None);
            if r.root == Root::Other && !(v.len() > 1 && v[0] == "REGISTRY") {
                return Err(PatternError::UnknownRoot(first.to_owned()));
            }
            if r.root == Root::CurrentUser && scope == UserScope::AnyUser {
                let rest: String = r.comps[1..].iter().map(|c| format!("\\{c}")).collect();
                globs.push(Glob::any_user(&rest)?);
            }
            r.comps.to_vec()
        };
        globs.push(Glob::compile(&resolved.join("\\"))?);
    }
    Ok(globs)
}

/// Compiles a registry value-name pattern (the empty pattern is the key's default value).
pub fn value_name(pattern: &str) -> Result<Glob, PatternError> {
    check_controls(pattern)?;
    Glob::compile(&canonical::upcase(pattern))
}

/// Compiles a file path pattern (drive-letter, UNC or NT form; `${WORKSPACE}` may start it).
pub fn file_path(pattern: &str) -> Result<Glob, PatternError> {
    check_controls(pattern)?;
    let upper = canonical::upcase(pattern).replace('/', "\\");
    let comps = filepath::split_path(&upper);
    if comps.is_empty() {
        return Err(PatternError::Empty);
    }
    static NO_VOLUMES: filepath::VolumeMap = filepath::VolumeMap::new();
    let (out, _) = filepath::resolve_root(&comps, &NO_VOLUMES);
    Glob::compile(&out.join("\\"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> VarValues {
        VarValues {
            workspace: Some(r"C:\WORK".into()),
            app_name: Some("TESTAPP".into()),
        }
    }

    fn key(p: &str) -> Glob {
        let mut g = registry_key(p, UserScope::SessionUser).expect("valid pattern");
        assert_eq!(g.len(), 1);
        g.remove(0)
    }

    #[test]
    fn star_spans_backslashes_and_run_star_covers_runonce() {
        let g = key(r"HKLM\SYSTEM\CurrentControlSet\Services\*");
        assert!(g.matches(
            r"HKLM\SYSTEM\CURRENTCONTROLSET\SERVICES\EVIL\PARAMETERS",
            &vars()
        ));
        assert!(g.matches(r"HKLM\SYSTEM\CURRENTCONTROLSET\SERVICES", &vars()));
        assert!(!g.matches(r"HKLM\SYSTEM\CURRENTCONTROLSET\SERVICESX", &vars()));
        let run = key(r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run*");
        for k in ["RUN", "RUNONCE", r"RUNONCE\SUB"] {
            assert!(run.matches(
                &format!(r"HKCU\SOFTWARE\MICROSOFT\WINDOWS\CURRENTVERSION\{k}"),
                &vars()
            ));
        }
    }

    #[test]
    fn question_mark_is_one_character_and_escapes_are_literal() {
        let g = key(r"HKLM\a?c");
        assert!(g.matches(r"HKLM\AßC", &vars()));
        assert!(!g.matches(r"HKLM\AC", &vars()));
        let star = registry_key(r"HKCR\[*]\shell\*", UserScope::SessionUser)
            .expect("valid")
            .remove(0);
        assert!(star.matches(r"HKLM\SOFTWARE\CLASSES\*\SHELL\OPEN", &vars()));
        assert!(!star.matches(r"HKLM\SOFTWARE\CLASSES\TXTFILE\SHELL\OPEN", &vars()));
        assert_eq!(
            value_name("[?][[]").map(|g| g.matches("?[", &vars())),
            Ok(true)
        );
    }

    #[test]
    fn regression_star_resume_inside_a_multibyte_character() {
        // Texts are upper-cased, as the engine passes them.
        let g = value_name(r"*\X").expect("valid");
        assert!(!g.matches(r"ß\Y", &vars()));
        assert!(g.matches(r"ßA\X", &vars()));
        let k = registry_key(r"HKLM\*\é", UserScope::SessionUser)
            .expect("valid")
            .remove(0);
        assert!(!k.matches(r"HKLM\ΩÉ", &vars()));
        assert!(k.matches(r"HKLM\Ω\É", &vars()));
    }

    #[test]
    fn variables_match_the_session_values_and_never_an_empty_value() {
        let g = key(r"HKCU\SOFTWARE\${APP_NAME}\*");
        assert!(g.matches(r"HKCU\SOFTWARE\TESTAPP\CONFIG", &vars()));
        assert!(g.matches(r"HKCU\SOFTWARE\TESTAPP", &vars()));
        assert!(!g.matches(r"HKCU\SOFTWARE\OTHER", &vars()));
        let empty = VarValues {
            app_name: Some(String::new()),
            ..vars()
        };
        assert!(!g.matches(r"HKCU\SOFTWARE\\CONFIG", &empty));
        assert!(!g.matches(r"HKCU\SOFTWARE\X", &VarValues::default()));
    }

    #[test]
    fn hkcr_covers_machine_and_user_classes_and_catalog_hkcu_covers_every_user() {
        let g = registry_key(r"HKCR\CLSID\*", UserScope::SessionUser).expect("valid");
        let texts: Vec<&str> = g.iter().map(Glob::as_str).collect();
        assert_eq!(
            texts,
            [
                r"HKLM\SOFTWARE\CLASSES\CLSID\*",
                r"HKCU\SOFTWARE\CLASSES\CLSID\*"
            ]
        );
        let any = registry_key(r"HKCU\Environment", UserScope::AnyUser).expect("valid");
        let texts: Vec<&str> = any.iter().map(Glob::as_str).collect();
        assert_eq!(texts, [r"HKU\*\ENVIRONMENT", r"HKCU\ENVIRONMENT"]);
    }

    #[test]
    fn bad_patterns_are_errors() {
        let cases = [
            ("", PatternError::Empty),
            (r"HKLX\x", PatternError::UnknownRoot("HKLX".into())),
            (
                r"HKCU\${HOME}",
                PatternError::UnknownVariable("HOME".into()),
            ),
            (r"HKCU\${APP_NAME", PatternError::UnterminatedVariable),
            (r"HKCU\[x]", PatternError::BadEscape),
            ("HKCU\\Network\tcpip", PatternError::ControlCharacter(9)),
        ];
        for (p, want) in cases {
            assert_eq!(
                registry_key(p, UserScope::SessionUser),
                Err(want),
                "pattern {p:?}"
            );
        }
    }

    #[test]
    fn file_patterns_are_canonical() {
        let g = file_path(r"${WORKSPACE}\*").expect("valid");
        assert!(g.matches(r"C:\WORK\SRC\MAIN.RS", &vars()));
        assert!(!g.matches(r"C:\WORKER\X", &vars()));
        let w = file_path(r"\??\c:\Windows\*").expect("valid");
        assert_eq!(w.as_str(), r"C:\WINDOWS\*");
    }
}
