//! `agentsh approvals watch`: the approvals waiting for a person, live, from the service's
//! approvals stream (`GET /v1/approvals/watch`: a snapshot, then each approval opening and
//! closing; nothing is polled). On a terminal it is a full-screen view (ratatui over crossterm)
//! with a countdown per approval and keys that answer; each new approval rings the terminal bell,
//! or on a Windows desktop raises a toast. Without a terminal it prints plain lines, and `--json`
//! passes the stream's lines through for scripts.
//!
//! Everything an entry shows that the sandbox or its session chose (target, value, process,
//! command line, chain, app, workspace, message) goes through the display escaping
//! (`agentsh_winstr::name::Display`): an escape sequence in a key name cannot redraw the view.

use std::io::Write;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use agentsh_service::approvals::{ApprovalOutcome, PendingApproval, WatchLine};
use agentsh_winstr::name::Display;

use crate::api_client::{ApiClient, ApiError};

/// The stream's path.
const STREAM: &str = "/v1/approvals/watch";

/// How the watcher shows what it sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The full-screen view with keys.
    Screen,
    /// One block of plain lines per change.
    Plain,
    /// The stream's JSON lines, as the service sent them.
    Json,
}

/// What the stream thread hands the view.
#[derive(Debug)]
enum Feed {
    /// A line of the stream, parsed, and its text.
    Line(Box<WatchLine>, String),
    /// The connection ended or failed; the thread reconnects.
    Lost(String),
    /// The service refused the watcher (not an approver, not the service): nothing to retry.
    Fatal(ApiError),
}

/// Reads the stream on a thread of its own, reconnecting whenever the service ends it (it ends
/// each stream before the connection's lifetime runs out) or the connection fails.
fn spawn_feed(client: ApiClient) -> mpsc::Receiver<Feed> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            let _ = tx.send(Feed::Lost("cannot start the stream's runtime".into()));
            return;
        };
        loop {
            let mut lines = 0usize;
            let result = runtime.block_on(client.stream_lines(STREAM, |text| {
                lines += 1;
                let feed = match serde_json::from_str::<WatchLine>(text) {
                    Ok(line) => Feed::Line(Box::new(line), text.to_owned()),
                    Err(e) => Feed::Lost(format!(
                        "the service sent a line this agentsh cannot read ({e}); skipped"
                    )),
                };
                tx.send(feed).is_ok()
            }));
            let retry_after = match result {
                Ok(()) if lines > 0 => Duration::ZERO,
                Ok(()) => Duration::from_secs(1),
                Err(e @ (ApiError::Forbidden { .. } | ApiError::Untrusted { .. })) => {
                    let _ = tx.send(Feed::Fatal(e));
                    return;
                }
                Err(e) => {
                    if tx.send(Feed::Lost(e.to_string())).is_err() {
                        return;
                    }
                    Duration::from_secs(1)
                }
            };
            std::thread::sleep(retry_after);
        }
    });
    rx
}

/// The milliseconds since the epoch on this machine's clock.
fn local_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The approvals the watcher knows, oldest first, and which one is selected.
#[derive(Debug, Default)]
pub struct Board {
    approvals: Vec<PendingApproval>,
    /// The service's clock minus this one's, from the last line (countdowns follow the service).
    clock_offset_ms: i64,
    selected: usize,
}

impl Board {
    /// Takes one line of the stream at local time `now_ms`; returns the approvals it opened
    /// (for notifications) and those it closed with their outcome (when the line says).
    pub fn apply(
        &mut self,
        line: WatchLine,
        now_ms: u64,
    ) -> (Vec<PendingApproval>, Vec<(u32, Option<ApprovalOutcome>)>) {
        let (service_now, opened, closed) = match line {
            WatchLine::Snapshot { now_ms, approvals } => {
                let opened: Vec<PendingApproval> = approvals
                    .iter()
                    .filter(|a| !self.approvals.iter().any(|b| b.id == a.id))
                    .cloned()
                    .collect();
                let closed = self
                    .approvals
                    .iter()
                    .filter(|b| !approvals.iter().any(|a| a.id == b.id))
                    .map(|b| (b.id, None))
                    .collect();
                self.approvals = approvals;
                (now_ms, opened, closed)
            }
            WatchLine::Opened { now_ms, approval } => {
                let new = !self.approvals.iter().any(|b| b.id == approval.id);
                self.approvals.retain(|b| b.id != approval.id);
                self.approvals.push((*approval).clone());
                (
                    now_ms,
                    if new { vec![*approval] } else { Vec::new() },
                    Vec::new(),
                )
            }
            WatchLine::Closed {
                now_ms,
                id,
                outcome,
            } => {
                let known = self.approvals.iter().any(|b| b.id == id);
                self.approvals.retain(|b| b.id != id);
                let closed = if known {
                    vec![(id, Some(outcome))]
                } else {
                    Vec::new()
                };
                (now_ms, Vec::new(), closed)
            }
        };
        self.approvals.sort_by_key(|a| a.id);
        self.clock_offset_ms = i64::try_from(service_now)
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(now_ms).unwrap_or(i64::MAX));
        self.selected = self.selected.min(self.approvals.len().saturating_sub(1));
        (opened, closed)
    }

    /// The approvals waiting, oldest first.
    pub fn approvals(&self) -> &[PendingApproval] {
        &self.approvals
    }

    /// Seconds until `a` times out, on the service's clock, at local time `now_ms`.
    pub fn remaining_secs(&self, a: &PendingApproval, now_ms: u64) -> u64 {
        let service_now = i64::try_from(now_ms)
            .unwrap_or(i64::MAX)
            .saturating_add(self.clock_offset_ms);
        let left = i64::try_from(a.expires_at_ms)
            .unwrap_or(i64::MAX)
            .saturating_sub(service_now);
        u64::try_from(left).unwrap_or(0).div_ceil(1000)
    }

    /// The selected approval.
    pub fn selected(&self) -> Option<&PendingApproval> {
        self.approvals.get(self.selected)
    }

    /// Moves the selection by `delta` entries, within the list.
    pub fn select(&mut self, delta: isize) {
        let last = self.approvals.len().saturating_sub(1);
        self.selected = self.selected.saturating_add_signed(delta).min(last);
    }

    /// The ids of every pending approval asking for the same thing as the selected one (it
    /// included), oldest first.
    pub fn identical_to_selected(&self) -> Vec<u32> {
        let Some(selected) = self.selected() else {
            return Vec::new();
        };
        self.approvals
            .iter()
            .filter(|a| a.same_request(selected))
            .map(|a| a.id)
            .collect()
    }
}

/// The target as a person reads it: the key or file, with the value name when there is one.
pub fn target(a: &PendingApproval) -> String {
    match &a.value_name {
        Some(v) => format!("{} value `{}`", Display(&a.path), Display(v)),
        None => Display(&a.path).to_string(),
    }
}

/// An approval's context, one `(label, text)` per line, every text display-escaped.
pub fn details(a: &PendingApproval, remaining_secs: u64) -> Vec<(&'static str, String)> {
    let mut lines = vec![
        (
            "operation",
            format!("{} {}", Display(&a.operation), target(a)),
        ),
        (
            "process",
            match (a.process_name.is_empty(), a.process_image.is_empty()) {
                (_, false) => format!("{} (pid {})", Display(&a.process_image), a.process_id),
                (false, true) => format!("{} (pid {})", Display(&a.process_name), a.process_id),
                (true, true) => format!("pid {} (image not reported)", a.process_id),
            },
        ),
        (
            "command line",
            a.command_line
                .as_deref()
                .map_or_else(|| "(not available)".to_owned(), |c| Display(c).to_string()),
        ),
    ];
    let chain = if a.chain.is_empty() {
        "(the session's root, or its creator was not reported)".to_owned()
    } else {
        a.chain
            .iter()
            .map(|p| match &p.image {
                Some(image) => format!("{} (pid {})", Display(image), p.pid),
                None => format!("pid {}", p.pid),
            })
            .collect::<Vec<_>>()
            .join(" <- ")
    };
    lines.push(("created by", chain));
    lines.push((
        "session",
        format!(
            "{}  app {}  workspace {}",
            Display(&a.session_id),
            a.app
                .as_deref()
                .map_or("(none)".into(), |x| Display(x).to_string()),
            a.workspace
                .as_deref()
                .map_or("(none)".into(), |x| Display(x).to_string()),
        ),
    ));
    let mut rule = format!("{}", Display(&a.rule));
    if let Some(risk) = &a.risk {
        rule.push_str(&format!("  risk {}", Display(risk)));
    }
    if let Some(t) = &a.technique {
        rule.push_str(&format!("  {}", Display(t)));
        if let Some(name) = &a.technique_name {
            rule.push_str(&format!(" {}", Display(name)));
        }
    }
    lines.push(("rule", rule));
    if let Some(d) = &a.description {
        lines.push(("catalog", Display(d).to_string()));
    }
    lines.push(("message", Display(&a.message).to_string()));
    lines.push((
        "on timeout",
        format!(
            "{} in {remaining_secs} s (of {} s) unless answered",
            if a.on_timeout == "deny" {
                "denied".to_owned()
            } else {
                Display(&a.on_timeout).to_string()
            },
            a.timeout_secs
        ),
    ));
    lines
}

/// What an outcome reads as.
fn outcome_text(outcome: Option<ApprovalOutcome>) -> &'static str {
    match outcome {
        Some(ApprovalOutcome::AllowOnce) => "allowed once",
        Some(ApprovalOutcome::AllowSession) => "allowed for the session",
        Some(ApprovalOutcome::Denied) => "denied",
        Some(ApprovalOutcome::TimedOut) => "timed out (denied)",
        Some(ApprovalOutcome::Withdrawn) => "withdrawn (the driver connection closed; denied)",
        Some(ApprovalOutcome::Refused) => {
            "refused by the kernel (the session's holds are full; denied)"
        }
        None => "closed",
    }
}

/// Runs the watcher until the person quits (screen) or the stream is refused.
pub fn run(client: ApiClient, mode: Mode) -> ExitCode {
    let feed = spawn_feed(client.clone());
    let result = match mode {
        Mode::Json => lines(feed, |_, text| {
            let mut safe = String::with_capacity(text.len());
            let _ = agentsh_winstr::name::write_json_safe(&mut safe, text);
            safe.push('\n');
            safe
        }),
        Mode::Plain => {
            let mut board = Board::default();
            lines(feed, move |line, _| plain(&mut board, line))
        }
        Mode::Screen => screen::run(&client, feed),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agentsh: {}", Display(&e));
            ExitCode::from(1)
        }
    }
}

/// Prints what `render` makes of each line until the stream is refused or stdout closes.
fn lines(
    feed: mpsc::Receiver<Feed>,
    mut render: impl FnMut(WatchLine, &str) -> String,
) -> Result<(), String> {
    let mut out = std::io::stdout();
    for item in feed {
        match item {
            Feed::Line(line, text) => {
                let shown = render(*line, &text);
                if out
                    .write_all(shown.as_bytes())
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    return Ok(());
                }
            }
            Feed::Lost(why) => {
                eprintln!("agentsh: approvals stream: {}; reconnecting", Display(&why))
            }
            Feed::Fatal(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// The plain rendering of one line: a block per approval opened, a line per approval closed.
fn plain(board: &mut Board, line: WatchLine) -> String {
    let now = local_now_ms();
    let (opened, closed) = board.apply(line, now);
    let mut out = String::new();
    for a in &opened {
        out.push_str(&format!("approval {} opened\n", a.id));
        for (label, text) in details(a, board.remaining_secs(a, now)) {
            out.push_str(&format!("  {label:<12} {text}\n"));
        }
    }
    for (id, outcome) in closed {
        out.push_str(&format!("approval {id} {}\n", outcome_text(outcome)));
    }
    out
}

/// How each new approval is brought to a person's attention.
enum Notifier {
    /// The terminal bell.
    Bell,
    /// A Windows toast (a desktop session).
    #[cfg(windows)]
    Toast(agentsh_windows::toast::Notifier),
}

impl Notifier {
    /// A toast on a Windows desktop; otherwise the bell. Why toasts are unavailable is
    /// returned for the status line.
    fn choose() -> (Notifier, Option<String>) {
        #[cfg(windows)]
        {
            match agentsh_windows::toast::Notifier::desktop() {
                Ok(n) => (Notifier::Toast(n), None),
                Err(why) => (
                    Notifier::Bell,
                    Some(format!(
                        "desktop notifications are unavailable ({why}); new approvals ring the terminal bell"
                    )),
                ),
            }
        }
        #[cfg(not(windows))]
        {
            (Notifier::Bell, None)
        }
    }

    /// Tells the person about `a`; an error says why a toast could not be shown.
    fn notify(
        &self,
        out: &mut impl Write,
        a: &PendingApproval,
        remaining_secs: u64,
    ) -> Result<(), String> {
        match self {
            Notifier::Bell => {
                let _ = (a, remaining_secs);
                out.write_all(b"\x07")
                    .and_then(|()| out.flush())
                    .map_err(|e| e.to_string())
            }
            #[cfg(windows)]
            Notifier::Toast(n) => n.show(&toast_of(a, remaining_secs)),
        }
    }
}

/// The toast of an approval (the content function is `agentsh_windows::toast::content`).
#[cfg_attr(
    not(windows),
    expect(dead_code, reason = "toasts are shown on Windows only")
)]
fn toast_of(a: &PendingApproval, remaining_secs: u64) -> agentsh_windows::toast::Toast {
    agentsh_windows::toast::content(&agentsh_windows::toast::ApprovalSummary {
        id: a.id,
        process: if a.process_name.is_empty() {
            format!("pid {}", a.process_id)
        } else {
            a.process_name.clone()
        },
        operation: a.operation.clone(),
        target: match &a.value_name {
            Some(v) => format!("{}\\{v}", a.path),
            None => a.path.clone(),
        },
        risk: a.risk.clone(),
        technique: a.technique.clone(),
        remaining_secs,
    })
}

mod screen {
    //! The full-screen view.

    use std::sync::mpsc;
    use std::time::Duration;

    use agentsh_winstr::name::Display;
    use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
    use ratatui::layout::{Constraint, Layout};
    use ratatui::style::{Modifier, Style};
    use ratatui::text::Line;
    use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph, Wrap};

    use super::{Board, Feed, Notifier, details, local_now_ms, outcome_text, target};
    use crate::api_client::ApiClient;
    use crate::approvals::{RememberFor, answer_path};

    /// A person's answer.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Answer {
        Once,
        Session,
        Deny,
        /// Allow once (`true`) or deny, and keep the answer as a remembered rule for the
        /// session's app or for every app.
        Remember(bool, RememberFor),
    }

    impl Answer {
        fn path(self, id: u32) -> String {
            match self {
                Answer::Once => answer_path(id, "allow", &[]),
                Answer::Session => answer_path(id, "allow", &["scope=session"]),
                Answer::Deny => answer_path(id, "deny", &[]),
                Answer::Remember(allow, scope) => {
                    answer_path(id, if allow { "allow" } else { "deny" }, &[scope.query()])
                }
            }
        }

        fn done(self) -> &'static str {
            match self {
                Answer::Once => "allowed once",
                Answer::Session => "allowed for the session",
                Answer::Deny => "denied",
                Answer::Remember(true, RememberFor::App) => {
                    "allowed and remembered as a rule for its app"
                }
                Answer::Remember(false, RememberFor::App) => {
                    "denied and remembered as a rule for its app"
                }
                Answer::Remember(true, RememberFor::AllApps) => {
                    "allowed and remembered as a rule for every app"
                }
                Answer::Remember(false, RememberFor::AllApps) => {
                    "denied and remembered as a rule for every app"
                }
            }
        }
    }

    pub(super) fn run(client: &ApiClient, feed: mpsc::Receiver<Feed>) -> Result<(), String> {
        let mut terminal =
            ratatui::try_init().map_err(|e| format!("cannot use the terminal: {e}"))?;
        let result = event_loop(&mut terminal, client, feed);
        ratatui::restore();
        result
    }

    fn event_loop(
        terminal: &mut ratatui::DefaultTerminal,
        client: &ApiClient,
        feed: mpsc::Receiver<Feed>,
    ) -> Result<(), String> {
        let mut board = Board::default();
        let (notifier, unavailable) = Notifier::choose();
        // The connection's state (and why toasts are unavailable), and the last outcome seen.
        let mut status = unavailable.unwrap_or_else(|| "connecting to the agentsh service…".into());
        let mut last = String::new();
        // Approvals this watcher answered: their closing keeps the answer's own message.
        let mut answered: Vec<u32> = Vec::new();
        loop {
            loop {
                match feed.try_recv() {
                    Ok(Feed::Line(line, _)) => {
                        let now = local_now_ms();
                        let (opened, closed) = board.apply(*line, now);
                        if status.starts_with("connecting") || status.starts_with("stream:") {
                            status = "connected".into();
                        }
                        for (id, outcome) in closed {
                            if let Some(at) = answered.iter().position(|a| *a == id) {
                                answered.swap_remove(at);
                            } else {
                                last = format!("approval {id} {}", outcome_text(outcome));
                            }
                        }
                        for a in &opened {
                            let left = board.remaining_secs(a, now);
                            if let Err(e) = notifier.notify(terminal.backend_mut(), a, left) {
                                status = format!("cannot notify: {}", Display(&e));
                            }
                        }
                    }
                    Ok(Feed::Lost(why)) => {
                        status = format!("stream: {}; reconnecting", Display(&why));
                    }
                    Ok(Feed::Fatal(e)) => return Err(e.to_string()),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        return Err("the approvals stream stopped".into());
                    }
                }
            }
            terminal
                .draw(|frame| draw(frame, &board, &status, &last))
                .map_err(|e| format!("cannot draw: {e}"))?;
            if !event::poll(Duration::from_millis(200)).map_err(|e| e.to_string())? {
                continue;
            }
            let Event::Key(key) = event::read().map_err(|e| e.to_string())? else {
                continue;
            };
            if key.kind != KeyEventKind::Press {
                continue;
            }
            let (answer, all) = match key.code {
                KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                    return Ok(());
                }
                KeyCode::Up | KeyCode::Char('k') => {
                    board.select(-1);
                    continue;
                }
                KeyCode::Down | KeyCode::Char('j') => {
                    board.select(1);
                    continue;
                }
                KeyCode::Char('a') => (Answer::Once, false),
                KeyCode::Char('s') => (Answer::Session, false),
                KeyCode::Char('d') => (Answer::Deny, false),
                KeyCode::Char('A') => (Answer::Once, true),
                KeyCode::Char('D') => (Answer::Deny, true),
                KeyCode::Char('r') => (Answer::Remember(true, RememberFor::App), false),
                KeyCode::Char('R') => (Answer::Remember(false, RememberFor::App), false),
                KeyCode::Char('g') => (Answer::Remember(true, RememberFor::AllApps), false),
                KeyCode::Char('G') => (Answer::Remember(false, RememberFor::AllApps), false),
                _ => continue,
            };
            let ids = if all {
                board.identical_to_selected()
            } else {
                board.selected().map(|a| vec![a.id]).unwrap_or_default()
            };
            if ids.is_empty() {
                last = "no approval selected".into();
                continue;
            }
            let mut done = Vec::new();
            let mut failed = Vec::new();
            for id in &ids {
                match client.post(&answer.path(*id)) {
                    Ok(_) => {
                        done.push(id.to_string());
                        // A closing a reconnect's snapshot swallowed is never seen: keep few.
                        if answered.len() >= 256 {
                            answered.remove(0);
                        }
                        answered.push(*id);
                    }
                    Err(e) => failed.push(format!("{id}: {e}")),
                }
            }
            last = if failed.is_empty() {
                format!("approval {} {}", done.join(", "), answer.done())
            } else {
                Display(&failed.join("; ")).to_string()
            };
        }
    }

    fn draw(frame: &mut ratatui::Frame<'_>, board: &Board, status: &str, last: &str) {
        let now = local_now_ms();
        let [list_area, detail_area, help_area] = Layout::vertical([
            Constraint::Percentage(35),
            Constraint::Min(8),
            Constraint::Length(2),
        ])
        .areas(frame.area());
        let items: Vec<ListItem<'_>> = board
            .approvals()
            .iter()
            .map(|a| {
                ListItem::new(format!(
                    "#{:<4} {:>4} s  {} {}  by {}",
                    a.id,
                    board.remaining_secs(a, now),
                    Display(&a.operation),
                    target(a),
                    Display(if a.process_name.is_empty() {
                        "?"
                    } else {
                        &a.process_name
                    }),
                ))
            })
            .collect();
        let title = format!(" agentsh approvals: {} waiting ", board.approvals().len());
        let list = List::new(items)
            .block(Block::default().borders(Borders::ALL).title(title))
            .highlight_style(Style::default().add_modifier(Modifier::REVERSED))
            .highlight_symbol("> ");
        let mut state = ListState::default();
        if !board.approvals().is_empty() {
            state.select(Some(board.selected));
        }
        frame.render_stateful_widget(list, list_area, &mut state);
        let detail: Vec<Line<'_>> = match board.selected() {
            Some(a) => details(a, board.remaining_secs(a, now))
                .into_iter()
                .map(|(label, text)| Line::from(format!("{label:<12} {text}")))
                .collect(),
            None => vec![Line::from("no approvals waiting")],
        };
        let heading = board
            .selected()
            .map_or(" details ".to_owned(), |a| format!(" approval {} ", a.id));
        frame.render_widget(
            Paragraph::new(detail)
                .block(Block::default().borders(Borders::ALL).title(heading))
                .wrap(Wrap { trim: false }),
            detail_area,
        );
        frame.render_widget(
            Paragraph::new(vec![
                Line::from(
                    "a allow once  s allow for the session  d deny  A/D allow/deny every identical one  r/R allow/deny, remember for the app  g/G allow/deny, remember for all apps  ↑↓ select  q quit",
                ),
                Line::from(if last.is_empty() {
                    status.to_owned()
                } else {
                    format!("{last}  ({status})")
                }),
            ]),
            help_area,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentsh_service::approvals::ChainProcess;

    fn approval(id: u32, path: &str) -> PendingApproval {
        PendingApproval {
            id,
            session_id: "s-1".into(),
            process_id: 4104,
            process_name: "py.exe".into(),
            process_image: "C:\\Python\\py.exe".into(),
            command_line: Some("py.exe -c \"install()\"".into()),
            chain: vec![ChainProcess {
                pid: 4100,
                image: Some("C:\\Tools\\agent.exe".into()),
            }],
            app: Some("TestApp".into()),
            workspace: Some("C:\\work".into()),
            operation: "CreateKey".into(),
            path: path.into(),
            rule: "builtin:services".into(),
            risk: Some("critical".into()),
            technique: Some("T1543.003".into()),
            technique_name: Some("Windows Service".into()),
            description: Some("Service configuration".into()),
            message: "install a service".into(),
            timeout_secs: 30,
            expires_at_ms: 100_000,
            ..PendingApproval::default()
        }
    }

    const SVC: &str = "\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services\\x";

    #[test]
    fn the_board_follows_snapshots_openings_and_closings_and_finds_identical_requests() {
        let mut board = Board::default();
        let (opened, closed) = board.apply(
            WatchLine::Snapshot {
                now_ms: 90_000,
                approvals: vec![approval(1, SVC)],
            },
            80_000,
        );
        assert_eq!(opened.iter().map(|a| a.id).collect::<Vec<_>>(), [1]);
        assert!(closed.is_empty());
        // The service's clock runs 10 s ahead of this one: 10 s left on its clock.
        assert_eq!(board.remaining_secs(&board.approvals()[0], 80_000), 10);
        let (opened, _) = board.apply(
            WatchLine::Opened {
                now_ms: 90_000,
                approval: Box::new(approval(2, SVC)),
            },
            80_000,
        );
        assert_eq!(opened.len(), 1);
        board.apply(
            WatchLine::Opened {
                now_ms: 90_000,
                approval: Box::new(approval(3, "\\REGISTRY\\MACHINE\\SOFTWARE\\other")),
            },
            80_000,
        );
        assert_eq!(
            board.identical_to_selected(),
            [1, 2],
            "3 has another target"
        );
        board.select(2);
        assert_eq!(board.identical_to_selected(), [3]);
        let (_, closed) = board.apply(
            WatchLine::Closed {
                now_ms: 90_000,
                id: 3,
                outcome: ApprovalOutcome::Denied,
            },
            80_000,
        );
        assert_eq!(closed, [(3, Some(ApprovalOutcome::Denied))]);
        assert_eq!(
            board.selected().map(|a| a.id),
            Some(2),
            "selection kept in range"
        );
        // A snapshot after a gap closes what vanished and opens what is new.
        let (opened, closed) = board.apply(
            WatchLine::Snapshot {
                now_ms: 90_000,
                approvals: vec![approval(2, SVC), approval(4, SVC)],
            },
            80_000,
        );
        assert_eq!(opened.iter().map(|a| a.id).collect::<Vec<_>>(), [4]);
        assert_eq!(closed, [(1, None)]);
    }

    #[test]
    fn plain_lines_show_a_block_per_opening_and_a_line_per_closing() {
        let mut board = Board::default();
        let opened = plain(
            &mut board,
            WatchLine::Opened {
                now_ms: 0,
                approval: Box::new(approval(5, SVC)),
            },
        );
        let mut lines = opened.lines();
        assert_eq!(lines.next(), Some("approval 5 opened"));
        assert_eq!(
            lines.next(),
            Some(
                "  operation    CreateKey \\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services\\x"
            )
        );
        assert!(
            opened.contains("  on timeout   denied in 100 s (of 30 s)"),
            "{opened}"
        );
        let closed = plain(
            &mut board,
            WatchLine::Closed {
                now_ms: 0,
                id: 5,
                outcome: ApprovalOutcome::TimedOut,
            },
        );
        assert_eq!(closed, "approval 5 timed out (denied)\n");
        let unknown = plain(
            &mut board,
            WatchLine::Closed {
                now_ms: 0,
                id: 9,
                outcome: ApprovalOutcome::Denied,
            },
        );
        assert_eq!(
            unknown, "",
            "an approval never seen opening is not reported closing"
        );
    }

    #[test]
    fn details_show_the_context_and_escape_what_the_sandbox_chose() {
        let mut a = approval(7, &format!("{SVC}\u{1b}[2K\rHKCU\\Software\\Harmless"));
        a.command_line = Some("py.exe \u{202e}gpj.exe".into());
        a.value_name = Some("ImagePath\u{9b}".into());
        let shown = details(&a, 12);
        let text: String = shown.iter().map(|(l, t)| format!("{l}: {t}\n")).collect();
        assert!(
            !text.contains(['\u{1b}', '\r', '\u{202e}', '\u{9b}']),
            "{text:?}"
        );
        for expected in [
            "operation: CreateKey \\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services\\x\\u{1b}[2K\\u{d}HKCU",
            "value `ImagePath\\u{9b}`",
            "process: C:\\Python\\py.exe (pid 4104)",
            "command line: py.exe \\u{202e}gpj.exe",
            "created by: C:\\Tools\\agent.exe (pid 4100)",
            "session: s-1  app TestApp  workspace C:\\work",
            "rule: builtin:services  risk critical  T1543.003 Windows Service",
            "catalog: Service configuration",
            "on timeout: denied in 12 s (of 30 s) unless answered",
        ] {
            assert!(text.contains(expected), "{expected:?} not in\n{text}");
        }
    }
}
