//! `agentsh approvals` and `agentsh metrics`: clients of the running service's local API.

mod watch;

use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::api_client::{ApiArgs, ApiClient, ApiError};

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// List approvals waiting for a person
    List,
    /// Allow a pending operation (once, or with --session for the rest of the session)
    Approve {
        id: u32,
        #[arg(long)]
        session: bool,
        /// Also keep the answer as a rule for this exact key (and value) or file, in the
        /// policy's remembered-rules file (`<policy>.remembered.yaml`): for the session's app
        /// (`--remember`, `--remember=app`) or for every app (`--remember=all-apps`)
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "app", value_enum)]
        remember: Option<RememberFor>,
    },
    /// Deny a pending operation
    Deny {
        id: u32,
        /// Also keep the answer as a rule for this exact key (and value) or file, in the
        /// policy's remembered-rules file (`<policy>.remembered.yaml`): for the session's app
        /// (`--remember`, `--remember=app`) or for every app (`--remember=all-apps`)
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "app", value_enum)]
        remember: Option<RememberFor>,
    },
    /// Watch approvals live and answer them: a countdown per approval, keys a (allow once),
    /// s (allow for the session), d (deny), A / D (allow / deny every identical one), r / R
    /// (allow / deny and remember for the app), g / G (the same for every app); the terminal
    /// bell (a toast on a Windows desktop) for each new one
    Watch {
        /// Print the service's stream as JSON lines (for scripts) instead of the view
        #[arg(long, conflicts_with = "plain")]
        json: bool,
        /// Print plain lines even on a terminal (the default without one)
        #[arg(long)]
        plain: bool,
    },
}

/// Whom a remembered answer applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RememberFor {
    /// Sessions of the approval's app (the rule gets `apps: [<app>]`)
    App,
    /// Every session
    AllApps,
}

impl RememberFor {
    /// The API's `remember=` value.
    fn query(self) -> &'static str {
        match self {
            RememberFor::App => "remember=app",
            RememberFor::AllApps => "remember=all-apps",
        }
    }
}

#[derive(Debug, Args)]
pub struct ApprovalsArgs {
    #[command(subcommand)]
    pub command: ApprovalsCommand,
    #[command(flatten)]
    pub api: ApiArgs,
}

pub fn run(args: ApprovalsArgs) -> ExitCode {
    if let ApprovalsCommand::Watch { json, plain } = args.command {
        let client = match ApiClient::new(&args.api) {
            Ok(c) => c,
            Err(e) => return finish(Err(e)),
        };
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout())
            && std::io::IsTerminal::is_terminal(&std::io::stdin());
        let mode = match (json, plain, terminal) {
            (true, _, _) => watch::Mode::Json,
            (false, false, true) => watch::Mode::Screen,
            _ => watch::Mode::Plain,
        };
        return watch::run(client, mode);
    }
    finish(ApiClient::new(&args.api).and_then(|client| answer(&client, &args.command)))
}

fn answer(client: &ApiClient, command: &ApprovalsCommand) -> Result<String, ApiError> {
    match command {
        ApprovalsCommand::List => client.get("/v1/approvals").map(|body| render_list(&body)),
        ApprovalsCommand::Approve {
            id,
            session,
            remember,
        } => {
            let mut query = Vec::new();
            if *session {
                query.push("scope=session");
            }
            if let Some(r) = remember {
                query.push(r.query());
            }
            client.post(&answer_path(*id, "allow", &query))
        }
        ApprovalsCommand::Deny { id, remember } => {
            let query: Vec<&str> = remember.iter().map(|r| r.query()).collect();
            client.post(&answer_path(*id, "deny", &query))
        }
        ApprovalsCommand::Watch { .. } => Ok(String::new()),
    }
}

/// `/v1/approvals/{id}/{answer}` with its query.
fn answer_path(id: u32, answer: &str, query: &[&str]) -> String {
    if query.is_empty() {
        format!("/v1/approvals/{id}/{answer}")
    } else {
        format!("/v1/approvals/{id}/{answer}?{}", query.join("&"))
    }
}

/// The pending approvals, one line each. Everything in them but the numbers comes from the
/// sandboxed process (key paths, value names, process names, messages): each is shown in the
/// display rendering (`agentsh_winstr::name::Display`), so an escape sequence in a key name
/// cannot redraw or hide what the operator approves.
fn render_list(body: &str) -> String {
    use agentsh_winstr::name::Display;
    let list: Vec<serde_json::Value> = serde_json::from_str(body).unwrap_or_default();
    if list.is_empty() {
        return "no approvals pending\n".to_owned();
    }
    let text =
        |a: &serde_json::Value, field: &str| Display(a[field].as_str().unwrap_or("")).to_string();
    list.iter()
        .map(|a| {
            let value = a["value_name"]
                .as_str()
                .map(|v| format!(" value `{}`", Display(v)))
                .unwrap_or_default();
            let process = match a["process_name"].as_str() {
                Some(p) if !p.is_empty() => format!("{} ", Display(p)),
                _ => String::new(),
            };
            format!(
                "{:>4}  {}  {process}pid {}  {} {}{value}  rule {}  (times out in {} s): {}\n",
                a["id"],
                text(a, "session_id"),
                a["process_id"],
                text(a, "operation"),
                text(a, "path"),
                text(a, "rule"),
                a["timeout_secs"],
                text(a, "message"),
            )
        })
        .collect()
}

fn finish(result: Result<String, ApiError>) -> ExitCode {
    match result {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            // An error body can quote what the sandbox sent: shown inert.
            eprintln!("agentsh: {}", agentsh_winstr::name::Display(&e.to_string()));
            ExitCode::from(1)
        }
    }
}

/// `agentsh metrics`: the service's and the driver's metrics, with the guide's cache hit rate.
pub fn metrics(api: ApiArgs) -> ExitCode {
    finish(ApiClient::new(&api).and_then(|client| client.get("/v1/metrics")))
}

#[cfg(test)]
mod tests {
    use super::{ApprovalsCommand, RememberFor, answer_path, render_list};
    use clap::Parser;

    #[test]
    fn remember_and_scope_are_sent_as_the_query() {
        assert_eq!(answer_path(3, "deny", &[]), "/v1/approvals/3/deny");
        assert_eq!(
            answer_path(3, "allow", &["scope=session", RememberFor::App.query()]),
            "/v1/approvals/3/allow?scope=session&remember=app"
        );
        assert_eq!(RememberFor::AllApps.query(), "remember=all-apps");
    }

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: ApprovalsCommand,
    }

    #[test]
    fn bare_remember_is_the_apps_scope_and_a_value_needs_an_equals_sign() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("approvals").chain(args.iter().copied()))
                .map(|c| c.command)
        };
        let remember_of = |args: &[&str]| match parse(args).expect("parses") {
            ApprovalsCommand::Approve { remember, .. }
            | ApprovalsCommand::Deny { remember, .. } => remember,
            other => panic!("{other:?}"),
        };
        assert_eq!(remember_of(&["approve", "3"]), None);
        assert_eq!(
            remember_of(&["approve", "3", "--remember"]),
            Some(RememberFor::App)
        );
        assert_eq!(
            remember_of(&["deny", "3", "--remember=app"]),
            Some(RememberFor::App)
        );
        assert_eq!(
            remember_of(&["deny", "3", "--remember=all-apps"]),
            Some(RememberFor::AllApps)
        );
        // `--remember 3` is the bare flag followed by the id, never the id taken as its value.
        assert_eq!(
            remember_of(&["deny", "--remember", "3"]),
            Some(RememberFor::App)
        );
        assert!(parse(&["deny", "3", "--remember=everyone"]).is_err());
    }

    /// F2 (security review, trace-ansi.jsonl): a service key named `evil` + `ESC[2K\r` + a fake
    /// harmless approval line + `ESC[8m` redrew `approvals list` so the operator saw an app setting
    /// and approved a service key. Every sandbox-supplied field is now escaped visibly.
    #[test]
    fn f2_an_escape_sequence_in_a_key_name_cannot_redraw_approvals_list() {
        let payload = "\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services\\evil\u{1b}[2K\r   1  s-1  pid 1000  SetValue \\REGISTRY\\USER\\S-1\\SOFTWARE\\TestApp\\config  rule allow-app-settings  (times out in 3600 s): harmless app setting\u{1b}[8m";
        let body = serde_json::json!([{
            "id": 1, "session_id": "s-1", "process_id": 1000, "process_name": "agent\u{9b}2J.exe",
            "operation": "CreateKey", "path": payload, "value_name": "v\u{202e}gpj.exe",
            "rule": "builtin:services", "timeout_secs": 3600,
            "message": "critical risk, T1543.003\u{1b}[8m",
        }])
        .to_string();
        let shown = render_list(&body);
        for raw in ['\u{1b}', '\r', '\u{9b}', '\u{202e}'] {
            assert!(
                !shown.contains(raw),
                "raw U+{:04X} in {shown:?}",
                u32::from(raw)
            );
        }
        assert!(
            shown.contains("Services\\evil\\u{1b}[2K\\u{d}   1  s-1"),
            "{shown}"
        );
        assert!(shown.contains("T1543.003\\u{1b}[8m"), "{shown}");
        assert!(shown.contains("value `v\\u{202e}gpj.exe`"), "{shown}");
        assert!(shown.contains("agent\\u{9b}2J.exe pid 1000"), "{shown}");
        assert_eq!(shown.lines().count(), 1, "one approval, one line: {shown}");
    }
}
