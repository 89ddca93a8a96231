//! The interactive terminal approver: shows each approval as it opens and takes a person's answer
//! from a line of input. It is one more way to answer, beside the local API: whichever answer
//! comes first counts, the timer keeps running while the prompt waits, and the prompt never holds
//! up a decision (it only ever calls [`ApprovalManager::answer`]).

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast::error::RecvError;

use crate::approvals::{ApprovalChange, ApprovalManager, ApprovalOutcome, PendingApproval};

const CHOICES: &str = "[a]llow once, allow for the [s]ession, [d]eny";

/// Prompts for approvals on a terminal until the input ends.
///
/// Each approval that opens is shown (id, process, operation, path and value, rule, the rule's
/// message, seconds left) and answered by a line: `a` or `allow` (allow once), `s` or `session`
/// (allow for the rest of the session), `d` or `deny`, in any case. Anything else asks again.
/// Approvals that open while one is shown wait their turn, oldest first. If the one shown is
/// answered elsewhere (the API, `agentsh approvals`) or times out, the prompt says so and moves
/// on; lines typed while nothing is shown answer nothing. The end of the input ends the prompt
/// without answering anything: pending approvals are then left to the API or their timeout.
///
/// Returns when the input ends, or with the error of a failed read or write.
///
/// `agentsh service run --approve-in-terminal` (or the policy's `approvals.terminal_prompt`)
/// runs it beside the service, reading standard input and writing to standard error:
///
/// ```no_run
/// # async fn example(service: &agentsh_service::Service<agentsh_service::SocketTransport>) {
/// use agentsh_service::terminal;
///
/// let prompt = tokio::spawn(terminal::run(
///     service.adapter.approvals.clone(),
///     terminal::stdin(),
///     tokio::io::stderr(),
/// ));
/// # let _ = prompt;
/// # }
/// ```
///
/// Use [`stdin`] rather than `tokio::io::BufReader::new(tokio::io::stdin())`: tokio's stdin
/// reads on a blocking-pool thread that a runtime waits for when it shuts down, so the service
/// could not exit until someone pressed enter.
pub async fn run<R, W>(
    approvals: Arc<ApprovalManager>,
    input: R,
    mut output: W,
) -> std::io::Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Subscribe before listing, so nothing opens unseen in between; ids only grow, so the newest
    // id queued tells which announcements were already listed.
    let mut changes = approvals.subscribe();
    let mut queue: VecDeque<PendingApproval> = approvals.list().into();
    let mut newest = queue.back().map_or(0, |a| a.id);
    let mut lines = input.lines();
    let mut shown: Option<PendingApproval> = None;
    loop {
        // Changes already announced go first, so an approval that has closed is never shown.
        if shown.is_none()
            && changes.is_empty()
            && let Some(next) = queue.pop_front()
        {
            say(&mut output, &describe(&next, queue.len())).await?;
            shown = Some(next);
        }
        tokio::select! {
            // A change first: an answer typed for an approval that has just closed is refused
            // with the reason rather than attempted.
            biased;
            change = changes.recv() => match change {
                Ok(ApprovalChange::Opened(a)) => {
                    if a.id > newest {
                        newest = a.id;
                        queue.push_back(*a);
                    }
                }
                Ok(ApprovalChange::Closed { id, outcome }) => {
                    if shown.as_ref().is_some_and(|a| a.id == id) {
                        shown = None;
                        say(&mut output, &closed_elsewhere(id, outcome, "")).await?;
                    } else if let Some(at) = queue.iter().position(|a| a.id == id) {
                        queue.remove(at);
                        say(&mut output, &closed_elsewhere(id, outcome, " before it was shown")).await?;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    // Missed announcements: what still waits is what `list` says.
                    let live = approvals.list();
                    let waits = |id: u32| live.iter().any(|a| a.id == id);
                    if let Some(a) = shown.take_if(|a| !waits(a.id)) {
                        say(&mut output, &format!("approval {} is no longer waiting (answered elsewhere or timed out)\n", a.id)).await?;
                    }
                    queue.retain(|a| waits(a.id));
                    let known = newest;
                    for a in live.into_iter().filter(|a| a.id > known) {
                        newest = a.id;
                        queue.push_back(a);
                    }
                }
                // The manager is alive (held here), so its sender is too.
                Err(RecvError::Closed) => return Ok(()),
            },
            line = lines.next_line() => {
                let Some(line) = line? else {
                    if let Some(a) = &shown {
                        say(&mut output, &format!(
                            "input closed: approval {} is left unanswered (`agentsh approvals` or its timeout decide it)\n",
                            a.id
                        )).await?;
                    }
                    return Ok(());
                };
                let Some(a) = &shown else {
                    if !line.trim().is_empty() {
                        say(&mut output, "no approval is waiting; that line answers nothing\n").await?;
                    }
                    continue;
                };
                let Some(outcome) = parse_answer(&line) else {
                    say(&mut output, &format!(
                        "`{}` is not an answer; {CHOICES} ({} s left): ",
                        inert(line.trim()),
                        seconds_left(a)
                    )).await?;
                    continue;
                };
                let text = match approvals.answer(a.id, outcome) {
                    Ok(()) => format!("approval {}: {}\n", a.id, done(outcome)),
                    Err(_) => format!(
                        "approval {} is no longer waiting (answered elsewhere or timed out); your answer was not taken\n",
                        a.id
                    ),
                };
                shown = None;
                say(&mut output, &text).await?;
            }
        }
    }
}

/// Standard input as lines for [`run`], read on a thread of its own so that a read waiting for
/// the person never keeps the runtime from shutting down. Call it inside a tokio runtime.
pub fn stdin() -> impl AsyncBufRead + Unpin + Send + 'static {
    let (mut tx, rx) = tokio::io::duplex(4096);
    let runtime = tokio::runtime::Handle::current();
    let spawned = std::thread::Builder::new()
        .name("agentsh-terminal-input".into())
        .spawn(move || {
            let mut line = String::new();
            loop {
                line.clear();
                match std::io::stdin().read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if runtime.block_on(tx.write_all(line.as_bytes())).is_err() {
                            break;
                        }
                    }
                }
            }
            // Dropping `tx` ends the input.
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the terminal input thread; the prompt sees no input");
    }
    tokio::io::BufReader::new(rx)
}

/// A person's answer, if the line is one.
fn parse_answer(line: &str) -> Option<ApprovalOutcome> {
    match line.trim().to_ascii_lowercase().as_str() {
        "a" | "allow" => Some(ApprovalOutcome::AllowOnce),
        "s" | "session" => Some(ApprovalOutcome::AllowSession),
        "d" | "deny" => Some(ApprovalOutcome::Denied),
        _ => None,
    }
}

/// `text` in the display rendering (`agentsh_winstr::name::Display`): every dangerous character
/// (controls, DEL, NEL, line separators, bidi controls and overrides, zero-width and invisible
/// characters, unpaired surrogates) is a visible `\u{1b}` escape. Key paths, value names, process
/// names and messages come from the sandboxed process: written raw, escape sequences or a
/// right-to-left override could redraw the prompt so that a dangerous request reads like a
/// harmless one, and invisible characters could make two different paths look the same.
fn inert(text: &str) -> String {
    agentsh_winstr::name::Display(text).to_string()
}

fn describe(a: &PendingApproval, more: usize) -> String {
    let process = if a.process_name.is_empty() {
        format!("pid {}", a.process_id)
    } else {
        format!("{} (pid {})", inert(&a.process_name), a.process_id)
    };
    let waiting = match more {
        0 => String::new(),
        n => format!(" ({n} more waiting)"),
    };
    let value = a
        .value_name
        .as_deref()
        .map(|v| format!("  value:     {}\n", inert(v)))
        .unwrap_or_default();
    let session = if a.session_id.is_empty() {
        String::new()
    } else {
        format!(", session {}", inert(&a.session_id))
    };
    format!(
        "\napproval {id}{waiting}\n  process:   {process}{session}\n  operation: {op}\n  path:      {path}\n{value}  rule:      {rule}\n  message:   {message}\n{CHOICES} ({left} s left): ",
        id = a.id,
        op = inert(&a.operation),
        path = inert(&a.path),
        rule = inert(&a.rule),
        message = inert(&a.message),
        left = seconds_left(a),
    )
}

/// How an approval the prompt did not answer ended; `when` is empty for the one shown.
fn closed_elsewhere(id: u32, outcome: ApprovalOutcome, when: &str) -> String {
    match outcome {
        ApprovalOutcome::TimedOut => {
            format!("\napproval {id} timed out{when}: denied, nobody answered\n")
        }
        ApprovalOutcome::Withdrawn => format!(
            "\napproval {id} was withdrawn{when}: the driver connection closed and the driver denied it\n"
        ),
        ApprovalOutcome::Refused => format!(
            "\napproval {id} was withdrawn{when}: the driver would not hold the operation (the session's hold quota is taken) and denied it\n"
        ),
        answered => format!(
            "\napproval {id} was answered elsewhere{when}: {}\n",
            done(answered)
        ),
    }
}

fn done(outcome: ApprovalOutcome) -> &'static str {
    match outcome {
        ApprovalOutcome::AllowOnce => "allowed once",
        ApprovalOutcome::AllowSession => "allowed for the rest of the session",
        ApprovalOutcome::Denied => "denied",
        ApprovalOutcome::TimedOut => "timed out",
        ApprovalOutcome::Withdrawn => "withdrawn",
        ApprovalOutcome::Refused => "refused by the driver",
    }
}

/// Whole seconds until the approval times out, rounded up.
fn seconds_left(a: &PendingApproval) -> u64 {
    a.expires_at_ms
        .saturating_sub(crate::events::now_ms())
        .div_ceil(1000)
}

async fn say<W: AsyncWrite + Unpin>(output: &mut W, text: &str) -> std::io::Result<()> {
    output.write_all(text.as_bytes()).await?;
    output.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approvals::GrantKey;
    use tokio::io::{AsyncReadExt, DuplexStream};
    use tokio::task::JoinHandle;

    const PATH: &str = "\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services\\x";

    /// A terminal in memory: what the person types, what the prompt prints, and the prompt.
    struct Terminal {
        keyboard: Option<DuplexStream>,
        screen: DuplexStream,
        printed: String,
        /// How much of `printed` earlier calls to `until` consumed.
        consumed: usize,
        prompt: JoinHandle<std::io::Result<()>>,
    }

    impl Terminal {
        fn start(approvals: &Arc<ApprovalManager>) -> Self {
            let (keyboard, input) = tokio::io::duplex(1024);
            let (output, screen) = tokio::io::duplex(64 * 1024);
            let prompt = tokio::spawn(run(
                approvals.clone(),
                tokio::io::BufReader::new(input),
                output,
            ));
            Terminal {
                keyboard: Some(keyboard),
                screen,
                printed: String::new(),
                consumed: 0,
                prompt,
            }
        }

        async fn type_line(&mut self, line: &str) {
            let keyboard = self.keyboard.as_mut().expect("keyboard open");
            keyboard
                .write_all(format!("{line}\n").as_bytes())
                .await
                .expect("types");
        }

        /// Reads the screen until `text` appears after what earlier calls consumed; returns what
        /// was printed from there up to and including it.
        async fn until(&mut self, text: &str) -> String {
            let start = self.consumed;
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
            while !self.printed[start..].contains(text) {
                let mut buf = [0u8; 1024];
                let n = tokio::time::timeout_at(deadline, self.screen.read(&mut buf))
                    .await
                    .unwrap_or_else(|_| {
                        panic!("`{text}` never printed; got:\n{}", &self.printed[start..])
                    })
                    .expect("reads the screen");
                assert!(n > 0, "prompt ended before `{text}`:\n{}", self.printed);
                self.printed.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            let end = start + self.printed[start..].find(text).unwrap_or(0) + text.len();
            self.consumed = end;
            self.printed[start..end].to_owned()
        }
    }

    fn open(
        approvals: &Arc<ApprovalManager>,
        timeout_secs: u32,
        value: Option<&str>,
    ) -> (u32, JoinHandle<ApprovalOutcome>) {
        let (id, outcome) = approvals.open(pending(timeout_secs, value), grant(value));
        (id, tokio::spawn(outcome))
    }

    fn pending(timeout_secs: u32, value: Option<&str>) -> PendingApproval {
        PendingApproval {
            id: 0,
            session_id: "s-1".into(),
            process_id: 4100,
            process_name: "installer.exe".into(),
            operation: "CreateKey".into(),
            path: PATH.into(),
            value_name: value.map(str::to_owned),
            rule: "approve-service-install".into(),
            message: "installer.exe wants to install a service".into(),
            timeout_secs,
            expires_at_ms: 0,
            ..PendingApproval::default()
        }
    }

    fn grant(value: Option<&str>) -> GrantKey {
        GrantKey {
            session_id: "s-1".into(),
            operation: "CreateKey",
            canonical: PATH.to_ascii_uppercase(),
            value_name: value.map(str::to_owned),
        }
    }

    async fn check(answer: &str, expected: ApprovalOutcome, printed: &str) {
        let approvals = ApprovalManager::new();
        let mut term = Terminal::start(&approvals);
        let (id, outcome) = open(&approvals, 30, Some("ImagePath"));
        let prompt = term.until("s left): ").await;
        for shown in [
            format!("approval {id}\n").as_str(),
            "installer.exe (pid 4100), session s-1",
            "operation: CreateKey",
            PATH,
            "value:     ImagePath",
            "rule:      approve-service-install",
            "message:   installer.exe wants to install a service",
            "(30 s left)",
        ] {
            assert!(prompt.contains(shown), "`{shown}` missing from:\n{prompt}");
        }
        term.type_line(answer).await;
        term.until(&format!("approval {id}: {printed}\n")).await;
        assert_eq!(
            outcome.await.expect("outcome"),
            expected,
            "answer `{answer}`"
        );
        assert_eq!(approvals.pending_count(), 0);
        assert_eq!(
            approvals.granted(&grant(Some("ImagePath"))),
            expected == ApprovalOutcome::AllowSession,
            "a session grant only for `s`"
        );
    }

    #[tokio::test]
    async fn allow_once() {
        check("a", ApprovalOutcome::AllowOnce, "allowed once").await;
        check("Allow", ApprovalOutcome::AllowOnce, "allowed once").await;
    }

    #[tokio::test]
    async fn allow_for_the_session_grants_it() {
        check(
            "S",
            ApprovalOutcome::AllowSession,
            "allowed for the rest of the session",
        )
        .await;
        check(
            " session ",
            ApprovalOutcome::AllowSession,
            "allowed for the rest of the session",
        )
        .await;
    }

    #[tokio::test]
    async fn deny() {
        check("d", ApprovalOutcome::Denied, "denied").await;
        check("DENY", ApprovalOutcome::Denied, "denied").await;
    }

    /// F10 (security review): the prompt escaped U+202E and friends but printed U+061C, U+2028,
    /// U+2029, U+00AD, U+2060, U+2061, U+180E, U+E0041, U+FFF9, U+206A, U+115F, U+3164, U+034F
    /// and U+FE0F raw (trace-uni.jsonl); every one of them, and an unpaired surrogate, is now a
    /// visible escape.
    #[tokio::test]
    async fn f10_bidi_and_invisible_characters_are_visible_in_the_prompt() {
        let approvals = ApprovalManager::new();
        let mut term = Terminal::start(&approvals);
        let hidden = [
            '\u{61c}',
            '\u{2028}',
            '\u{2029}',
            '\u{ad}',
            '\u{2060}',
            '\u{2061}',
            '\u{180e}',
            '\u{e0041}',
            '\u{fff9}',
            '\u{206a}',
            '\u{115f}',
            '\u{3164}',
            '\u{34f}',
            '\u{fe0f}',
        ];
        let mut value: String = hidden.iter().collect();
        value.push('\u{10f800}');
        let (info, key) = (
            PendingApproval {
                value_name: Some(value),
                ..pending(30, None)
            },
            grant(None),
        );
        let (id, outcome) = approvals.open(info, key);
        let prompt = term.until("s left): ").await;
        for c in hidden {
            assert!(
                !prompt.contains(c),
                "U+{:04X} raw in {prompt:?}",
                u32::from(c)
            );
            assert!(
                prompt.contains(&format!("\\u{{{:x}}}", u32::from(c))),
                "U+{:04X} not escaped in {prompt:?}",
                u32::from(c)
            );
        }
        assert!(prompt.contains("\\u{d800}"), "{prompt:?}");
        term.type_line("d").await;
        term.until(&format!("approval {id}: denied")).await;
        assert_eq!(outcome.await, ApprovalOutcome::Denied);
    }

    #[tokio::test]
    async fn control_characters_from_the_sandbox_cannot_redraw_the_prompt() {
        let approvals = ApprovalManager::new();
        let mut term = Terminal::start(&approvals);
        let (info, key) = (
            PendingApproval {
                path: format!("{PATH}\u{1b}[2K\r  path:      HKCU\\Software\\Harmless"),
                value_name: Some("x\u{202e}exe.txt".into()),
                process_name: "agent\u{7}.exe".into(),
                ..pending(30, None)
            },
            grant(None),
        );
        let (id, outcome) = approvals.open(info, key);
        let prompt = term.until("s left): ").await;
        assert!(
            !prompt.contains(['\u{1b}', '\r', '\u{7}', '\u{202e}']),
            "raw control characters:\n{prompt:?}"
        );
        assert!(
            prompt.contains("\\u{1b}[2K\\u{d}  path:      HKCU"),
            "{prompt:?}"
        );
        assert!(prompt.contains("x\\u{202e}exe.txt"), "{prompt:?}");
        assert!(prompt.contains("agent\\u{7}.exe (pid 4100)"), "{prompt:?}");
        term.type_line("d").await;
        term.until(&format!("approval {id}: denied")).await;
        assert_eq!(outcome.await, ApprovalOutcome::Denied);
    }

    #[tokio::test]
    async fn an_invalid_answer_asks_again() {
        let approvals = ApprovalManager::new();
        let mut term = Terminal::start(&approvals);
        let (id, outcome) = open(&approvals, 30, None);
        let prompt = term.until("s left): ").await;
        assert!(!prompt.contains("value:"), "no value line:\n{prompt}");
        for wrong in ["yes", "", "allow once"] {
            term.type_line(wrong).await;
            let again = term.until("s left): ").await;
            assert!(
                again.contains(&format!("`{wrong}` is not an answer")),
                "{again}"
            );
            assert_eq!(approvals.pending_count(), 1, "`{wrong}` answered nothing");
        }
        term.type_line("d").await;
        term.until(&format!("approval {id}: denied")).await;
        assert_eq!(outcome.await.expect("outcome"), ApprovalOutcome::Denied);
    }

    #[tokio::test]
    async fn an_approval_timing_out_while_shown_is_reported_and_not_answered() {
        let approvals = ApprovalManager::new();
        let mut changes = approvals.subscribe();
        let mut term = Terminal::start(&approvals);
        let (id, outcome) = open(&approvals, 1, None);
        term.until("(1 s left): ").await;
        term.until(&format!(
            "approval {id} timed out: denied, nobody answered\n"
        ))
        .await;
        assert_eq!(outcome.await.expect("outcome"), ApprovalOutcome::TimedOut);
        // A late answer is refused, and nothing but the timeout was recorded.
        term.type_line("a").await;
        term.until("that line answers nothing").await;
        assert_eq!(
            changes
                .recv()
                .await
                .ok()
                .map(|c| matches!(c, ApprovalChange::Opened(_))),
            Some(true)
        );
        assert_eq!(
            changes.recv().await.ok(),
            Some(ApprovalChange::Closed {
                id,
                outcome: ApprovalOutcome::TimedOut
            })
        );
        assert!(changes.try_recv().is_err(), "no other change");
        assert!(!approvals.granted(&grant(None)));
    }

    #[tokio::test]
    async fn an_approval_answered_elsewhere_is_reported_and_the_next_one_shown() {
        let approvals = ApprovalManager::new();
        let mut term = Terminal::start(&approvals);
        let (first, first_outcome) = open(&approvals, 30, None);
        term.until("s left): ").await;
        let (second, second_outcome) = open(&approvals, 30, None);
        // What the API does for `POST /v1/approvals/{id}/allow?scope=session`.
        approvals
            .answer(first, ApprovalOutcome::AllowSession)
            .expect("answered through the API");
        term.until(&format!(
            "approval {first} was answered elsewhere: allowed for the rest of the session\n"
        ))
        .await;
        assert_eq!(
            first_outcome.await.expect("outcome"),
            ApprovalOutcome::AllowSession
        );
        let next = term.until("s left): ").await;
        assert!(next.contains(&format!("approval {second}\n")), "{next}");
        term.type_line("deny").await;
        term.until(&format!("approval {second}: denied")).await;
        assert_eq!(
            second_outcome.await.expect("outcome"),
            ApprovalOutcome::Denied
        );
    }

    #[tokio::test]
    async fn withdrawn_approvals_are_reported_shown_or_queued() {
        let approvals = ApprovalManager::new();
        let mut term = Terminal::start(&approvals);
        let (first, a) = open(&approvals, 30, None);
        term.until("s left): ").await;
        let (second, b) = open(&approvals, 30, None);
        // The driver connection closed: what `withdraw_all` does for the runner.
        assert_eq!(approvals.withdraw_all(), 2);
        term.until(&format!(
            "approval {first} was withdrawn: the driver connection closed and the driver denied it\n"
        ))
        .await;
        term.until(&format!(
            "approval {second} was withdrawn before it was shown: the driver connection closed"
        ))
        .await;
        assert_eq!(a.await.expect("outcome"), ApprovalOutcome::Withdrawn);
        assert_eq!(b.await.expect("outcome"), ApprovalOutcome::Withdrawn);
        term.type_line("a").await;
        term.until("that line answers nothing").await;
    }

    #[tokio::test]
    async fn approvals_queue_oldest_first() {
        let approvals = ApprovalManager::new();
        // One already waits when the prompt starts; two more open while it is shown.
        let (first, a) = open(&approvals, 30, None);
        let mut term = Terminal::start(&approvals);
        let shown = term.until("s left): ").await;
        assert!(shown.contains(&format!("approval {first}\n")), "{shown}");
        let (second, b) = open(&approvals, 30, None);
        let (third, c) = open(&approvals, 30, None);
        // Both openings are announced before the answer is typed, and the prompt takes
        // announcements before lines.
        term.type_line("a").await;
        let next = term.until("s left): ").await;
        assert!(
            next.contains(&format!("approval {second} (1 more waiting)\n")),
            "{next}"
        );
        term.type_line("d").await;
        let last = term.until("s left): ").await;
        assert!(last.contains(&format!("approval {third}\n")), "{last}");
        term.type_line("s").await;
        term.until(&format!("approval {third}: allowed")).await;
        assert_eq!(
            (
                a.await.expect("outcome"),
                b.await.expect("outcome"),
                c.await.expect("outcome")
            ),
            (
                ApprovalOutcome::AllowOnce,
                ApprovalOutcome::Denied,
                ApprovalOutcome::AllowSession
            )
        );
    }

    #[tokio::test]
    async fn end_of_input_ends_the_prompt_and_answers_nothing() {
        let approvals = ApprovalManager::new();
        let mut term = Terminal::start(&approvals);
        let (id, outcome) = open(&approvals, 30, None);
        term.until("s left): ").await;
        term.keyboard = None;
        term.until(&format!("input closed: approval {id} is left unanswered"))
            .await;
        (&mut term.prompt)
            .await
            .expect("joins")
            .expect("ends without error");
        assert_eq!(approvals.list().len(), 1, "still waiting");
        approvals
            .answer(id, ApprovalOutcome::Denied)
            .expect("still answerable through the API");
        assert_eq!(outcome.await.expect("outcome"), ApprovalOutcome::Denied);
    }
}
