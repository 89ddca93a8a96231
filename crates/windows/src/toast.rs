//! Desktop notifications for `agentsh approvals watch`: the toast a new approval raises on a
//! Windows desktop. Its content is built here by a pure function ([`content`], tested on every
//! system); showing it ([`Notifier`], Windows only) goes through WinRT's
//! `ToastNotificationManager`, and activating the toast brings the watcher's console window
//! forward.

use std::fmt::Write;

use agentsh_winstr::name::Display;

/// What a toast says about one approval: the fields a person needs to decide whether to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalSummary {
    pub id: u32,
    /// The process's name (or `pid N`).
    pub process: String,
    pub operation: String,
    /// The key (with its value) or file.
    pub target: String,
    pub risk: Option<String>,
    pub technique: Option<String>,
    pub remaining_secs: u64,
}

/// A toast: its two lines of text and the toast XML (`ToastGeneric` template) that carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toast {
    pub title: String,
    pub body: String,
    pub xml: String,
}

/// The longest target a toast shows; the rest is in the watcher (a toast shows a few lines).
pub const MAX_TARGET_CHARS: usize = 160;

/// The toast for an approval. Every sandbox-chosen text is display-escaped (no control, bidi or
/// invisible character reaches the notification) and then XML-escaped; a long target keeps its
/// end (the leaf names what is written) behind `…`.
pub fn content(a: &ApprovalSummary) -> Toast {
    let process = Display(&a.process).to_string();
    let operation = Display(&a.operation).to_string();
    let mut target = Display(&a.target).to_string();
    let count = target.chars().count();
    if count > MAX_TARGET_CHARS {
        let keep: String = target
            .chars()
            .skip(count - (MAX_TARGET_CHARS - 1))
            .collect();
        target = format!("…{keep}");
    }
    let mut title = format!("agentsh: {process} asks to {operation}");
    if let Some(risk) = &a.risk {
        let _ = write!(title, " ({} risk", Display(risk));
        if let Some(t) = &a.technique {
            let _ = write!(title, ", {}", Display(t));
        }
        title.push(')');
    }
    let body = format!(
        "{target}\napproval {}: denied in {} s unless answered in agentsh approvals watch",
        a.id, a.remaining_secs
    );
    let xml = format!(
        "<toast launch=\"approval={}\" activationType=\"foreground\"><visual><binding template=\"ToastGeneric\"><text>{}</text><text>{}</text></binding></visual></toast>",
        a.id,
        xml_escaped(&title),
        xml_escaped(&body)
    );
    Toast { title, body, xml }
}

/// Text as XML character data or attribute value.
fn xml_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(windows)]
pub use crate::imp::toast::Notifier;

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(target: &str) -> ApprovalSummary {
        ApprovalSummary {
            id: 12,
            process: "py.exe".into(),
            operation: "CreateKey".into(),
            target: target.into(),
            risk: Some("critical".into()),
            technique: Some("T1543.003".into()),
            remaining_secs: 29,
        }
    }

    #[test]
    fn a_toast_names_process_target_risk_and_the_countdown() {
        let t = content(&summary(
            r"\REGISTRY\MACHINE\SYSTEM\ControlSet001\Services\evil",
        ));
        assert_eq!(
            t.title,
            "agentsh: py.exe asks to CreateKey (critical risk, T1543.003)"
        );
        assert_eq!(
            t.body,
            "\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services\\evil\napproval 12: denied in 29 s unless answered in agentsh approvals watch"
        );
        assert_eq!(
            t.xml,
            "<toast launch=\"approval=12\" activationType=\"foreground\"><visual><binding template=\"ToastGeneric\"><text>agentsh: py.exe asks to CreateKey (critical risk, T1543.003)</text><text>\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services\\evil\napproval 12: denied in 29 s unless answered in agentsh approvals watch</text></binding></visual></toast>"
        );
    }

    #[test]
    fn sandbox_text_cannot_break_the_xml_or_hide_characters() {
        let mut s = summary("C:\\work\\</text><text>harmless\u{202e}gpj.exe\u{1b}[2K");
        s.process = "a&b\"<x>'.exe".into();
        s.risk = None;
        let t = content(&s);
        assert_eq!(t.title, "agentsh: a&b\"<x>'.exe asks to CreateKey");
        assert!(
            t.xml.contains("a&amp;b&quot;&lt;x&gt;&apos;.exe"),
            "{}",
            t.xml
        );
        assert!(
            t.xml
                .contains("&lt;/text&gt;&lt;text&gt;harmless\\u{202e}gpj.exe\\u{1b}[2K"),
            "{}",
            t.xml
        );
        assert_eq!(t.xml.matches("<text>").count(), 2, "{}", t.xml);
        assert!(!t.xml.contains(['\u{202e}', '\u{1b}']));
    }

    /// Under Wine (and on Windows) the whole path runs: a notifier for the desktop session and
    /// a toast shown, or a clear reason why notifications are unavailable.
    #[cfg(windows)]
    #[test]
    fn a_toast_is_shown_or_its_absence_is_explained() {
        let toast = content(&summary(
            r"\REGISTRY\MACHINE\SYSTEM\ControlSet001\Services\x",
        ));
        match Notifier::desktop() {
            Ok(n) => match n.show(&toast) {
                Ok(()) => eprintln!("toast shown: {toast:?}"),
                Err(why) => {
                    assert!(
                        why.starts_with("Windows did not show the toast")
                            || why.starts_with("cannot create the toast")
                            || why.starts_with("the toast XML was refused")
                            || why.starts_with("cannot handle the toast's activation"),
                        "{why}"
                    );
                    eprintln!("notifications unavailable: {why}");
                }
            },
            Err(why) => {
                assert!(
                    why.contains("session 0")
                        || why.contains("no visible desktop")
                        || why.starts_with("Windows refused a toast notifier")
                        || why.starts_with("cannot register the notification identity"),
                    "{why}"
                );
                eprintln!("notifications unavailable: {why}");
            }
        }
    }

    #[test]
    fn a_long_target_keeps_its_end() {
        let long = format!("C:\\{}\\leaf.txt", "d".repeat(400));
        let t = content(&summary(&long));
        let shown = t.body.lines().next().unwrap_or_default();
        assert_eq!(shown.chars().count(), MAX_TARGET_CHARS);
        assert!(
            shown.starts_with('…') && shown.ends_with("\\leaf.txt"),
            "{shown}"
        );
    }
}
