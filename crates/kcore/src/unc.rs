//! Network paths that lead back to this machine. A session process that opens
//! `\\localhost\C$\...` reaches the local volume through the SMB server, whose worker threads run
//! in the System process, so the minifilter on the local volume sees System, not the session. The
//! driver therefore denies a session's opens through the redirector (`\Device\Mup\...`) of:
//!
//! - any share on a loopback server name: `localhost` (with or without a trailing dot or an
//!   `@SSL` / `@port` WebDAV suffix), an IPv4 address in 127.0.0.0/8, and the IPv6 loopback in its
//!   UNC literal form (`0--1.ipv6-literal.net` and its spelled-out variants);
//! - an administrative share on any server (`C$`, any drive letter followed by `$`, `ADMIN$`):
//!   the machine's own name and addresses lead to these too, and no sandboxed session needs them.
//!
//! Ordinary shares the machine itself exports, reached by its own name or a LAN address, are not
//! recognised here (docs/security.md, "Loopback shares").

/// `\Device\Mup\` (compared case-insensitively).
const MUP_PREFIX: &str = "\\DEVICE\\MUP\\";

/// Whether `path` (a normalized NT name) is a redirector path that reaches this machine, or an
/// administrative share on any server.
pub fn reaches_local_machine(path: &[u16]) -> bool {
    let Some(rest) = strip_prefix_ci(path, MUP_PREFIX) else {
        return false;
    };
    let mut parts = rest.split(|&c| c == u16::from(b'\\'));
    // Provider-qualified forms (`\;LanmanRedirector\;Z:0000...\server\share`) carry components
    // that start with ';' before the server.
    let mut server = parts.next().unwrap_or(&[]);
    while server.first() == Some(&u16::from(b';')) {
        server = parts.next().unwrap_or(&[]);
    }
    let share = parts.next().unwrap_or(&[]);
    is_loopback_server(server) || is_admin_share(share)
}

fn strip_prefix_ci<'a>(path: &'a [u16], prefix: &str) -> Option<&'a [u16]> {
    if path.len() < prefix.len() {
        return None;
    }
    let (head, rest) = path.split_at(prefix.len());
    head.iter()
        .zip(prefix.bytes())
        .all(|(&c, p)| upper(c) == u16::from(p))
        .then_some(rest)
}

fn upper(c: u16) -> u16 {
    if (u16::from(b'a')..=u16::from(b'z')).contains(&c) {
        c - 32
    } else {
        c
    }
}

fn eq_ci(a: &[u16], b: &str) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.bytes())
            .all(|(&c, p)| upper(c) == u16::from(p))
}

fn is_loopback_server(server: &[u16]) -> bool {
    // A WebDAV suffix (`host@SSL`, `host@8080`) names the same host.
    let host = match server.iter().position(|&c| c == u16::from(b'@')) {
        Some(at) => &server[..at],
        None => server,
    };
    let host = host.strip_suffix(&[u16::from(b'.')]).unwrap_or(host);
    if eq_ci(host, "LOCALHOST") {
        return true;
    }
    if is_ipv4_loopback(host) {
        return true;
    }
    is_ipv6_literal_loopback(host)
}

/// A dotted-decimal IPv4 address whose first octet is 127.
fn is_ipv4_loopback(host: &[u16]) -> bool {
    let mut octets = 0;
    for (i, part) in host.split(|&c| c == u16::from(b'.')).enumerate() {
        let Some(value) = decimal(part) else {
            return false;
        };
        if value > 255 || (i == 0 && value != 127) {
            return false;
        }
        octets += 1;
    }
    octets == 4
}

fn decimal(part: &[u16]) -> Option<u32> {
    if part.is_empty() || part.len() > 3 {
        return None;
    }
    part.iter().try_fold(0u32, |acc, &c| {
        (u16::from(b'0')..=u16::from(b'9'))
            .contains(&c)
            .then(|| acc * 10 + u32::from(c - u16::from(b'0')))
    })
}

/// `::1` in the UNC literal form: `-` for `:`, `.ipv6-literal.net` appended (`0--1`,
/// `0-0-0-0-0-0-0-1`, with any leading zeros).
fn is_ipv6_literal_loopback(host: &[u16]) -> bool {
    const SUFFIX: &str = ".IPV6-LITERAL.NET";
    if host.len() <= SUFFIX.len() || !eq_ci(&host[host.len() - SUFFIX.len()..], SUFFIX) {
        return false;
    }
    let addr = &host[..host.len() - SUFFIX.len()];
    // Groups separated by '-'; one empty run ("--") stands for the zero groups it elides.
    let groups: alloc::vec::Vec<&[u16]> = addr.split(|&c| c == u16::from(b'-')).collect();
    let Some((last, rest)) = groups.split_last() else {
        return false;
    };
    let is_zero = |g: &&[u16]| g.iter().all(|&c| c == u16::from(b'0'));
    let explicit = rest.iter().filter(|g| !g.is_empty()).count() + 1;
    let elided = rest.iter().any(|g| g.is_empty());
    let hex_one = !last.is_empty()
        && last.len() <= 4
        && last[..last.len() - 1].iter().all(|&c| c == u16::from(b'0'))
        && last[last.len() - 1] == u16::from(b'1');
    hex_one
        && rest
            .iter()
            .filter(|g| !g.is_empty())
            .all(|g| is_zero(g) && g.len() <= 4)
        && (explicit == 8 || (elided && explicit < 8))
}

/// `X$` for a drive letter, or `ADMIN$`.
fn is_admin_share(share: &[u16]) -> bool {
    match share {
        [letter, dollar] => {
            upper(*letter) >= u16::from(b'A')
                && upper(*letter) <= u16::from(b'Z')
                && *dollar == u16::from(b'$')
        }
        _ => eq_ci(share, "ADMIN$"),
    }
}

#[cfg(test)]
mod tests {
    use super::reaches_local_machine;
    use alloc::vec::Vec;

    fn w(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn loopback_names_and_admin_shares_reach_this_machine() {
        for path in [
            "\\Device\\Mup\\localhost\\share\\a.txt",
            "\\DEVICE\\MUP\\LOCALHOST\\C$\\Windows",
            "\\Device\\Mup\\localhost.\\share",
            "\\Device\\Mup\\localhost@SSL\\DavWWWRoot\\x",
            "\\Device\\Mup\\127.0.0.1\\share\\x",
            "\\Device\\Mup\\127.1.2.3\\share",
            "\\Device\\Mup\\0--1.ipv6-literal.net\\share",
            "\\Device\\Mup\\0-0-0-0-0-0-0-1.IPV6-LITERAL.NET\\share",
            "\\Device\\Mup\\buildhost\\C$\\Users",
            "\\Device\\Mup\\10.0.0.5\\d$",
            "\\Device\\Mup\\buildhost\\ADMIN$\\System32",
            "\\Device\\Mup\\;LanmanRedirector\\;Z:000000000001a2b3\\localhost\\share",
        ] {
            assert!(reaches_local_machine(&w(path)), "{path}");
        }
    }

    #[test]
    fn other_network_and_local_paths_do_not() {
        for path in [
            "\\Device\\Mup\\fileserver\\share\\a.txt",
            "\\Device\\Mup\\localhostx\\share",
            "\\Device\\Mup\\128.0.0.1\\share",
            "\\Device\\Mup\\127.0.0\\share",
            "\\Device\\Mup\\127.0.0.1.5\\share",
            "\\Device\\Mup\\127.0.0.256\\share",
            "\\Device\\Mup\\0--2.ipv6-literal.net\\share",
            "\\Device\\Mup\\1--1.ipv6-literal.net\\share",
            "\\Device\\Mup\\server\\share$\\x",
            "\\Device\\Mup\\server\\CC$",
            "\\Device\\HarddiskVolume2\\localhost\\C$",
            "\\Device\\Mup",
            "",
        ] {
            assert!(!reaches_local_machine(&w(path)), "{path}");
        }
    }
}
