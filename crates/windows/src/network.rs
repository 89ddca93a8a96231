//! Network access levels of a sandbox and the AppContainer capabilities each one grants.

use std::fmt;
use std::str::FromStr;

/// How much network a sandboxed command gets. `None` is the default: maximum isolation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkAccess {
    /// No capability at all: no sockets beyond what AppContainer denies anyway.
    #[default]
    None,
    /// Internet client connections only (`internetClient`).
    Outbound,
    /// Private network (home/work/intranet) client and server (`privateNetworkClientServer`).
    Local,
    /// Every network capability. Loopback to the host is still blocked by AppContainer unless a
    /// loopback exemption is configured separately (CheckNetIsolation); no capability implies it.
    Full,
}

/// `internetClient` well-known capability SID.
pub const INTERNET_CLIENT: &str = "S-1-15-3-1";
/// `internetClientServer` well-known capability SID.
pub const INTERNET_CLIENT_SERVER: &str = "S-1-15-3-2";
/// `privateNetworkClientServer` well-known capability SID.
pub const PRIVATE_NETWORK_CLIENT_SERVER: &str = "S-1-15-3-3";

impl NetworkAccess {
    /// Capability SIDs (string form) the AppContainer token receives for this level.
    pub fn capability_sids(self) -> &'static [&'static str] {
        match self {
            NetworkAccess::None => &[],
            NetworkAccess::Outbound => &[INTERNET_CLIENT],
            NetworkAccess::Local => &[PRIVATE_NETWORK_CLIENT_SERVER],
            NetworkAccess::Full => &[
                INTERNET_CLIENT,
                PRIVATE_NETWORK_CLIENT_SERVER,
                INTERNET_CLIENT_SERVER,
            ],
        }
    }
}

impl fmt::Display for NetworkAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NetworkAccess::None => "none",
            NetworkAccess::Outbound => "outbound",
            NetworkAccess::Local => "local",
            NetworkAccess::Full => "full",
        })
    }
}

/// A network level name that is not one of `none`, `outbound`, `local`, `full`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown network access `{0}` (expected none, outbound, local or full)")]
pub struct UnknownNetworkAccess(pub String);

impl FromStr for NetworkAccess {
    type Err = UnknownNetworkAccess;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(NetworkAccess::None),
            "outbound" => Ok(NetworkAccess::Outbound),
            "local" => Ok(NetworkAccess::Local),
            "full" => Ok(NetworkAccess::Full),
            other => Err(UnknownNetworkAccess(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_follow_the_access_table() {
        let cases: &[(&str, &[&str])] = &[
            ("none", &[]),
            ("outbound", &["S-1-15-3-1"]),
            ("local", &["S-1-15-3-3"]),
            ("full", &["S-1-15-3-1", "S-1-15-3-3", "S-1-15-3-2"]),
        ];
        for (name, sids) in cases {
            let level: NetworkAccess = name.parse().expect("known level");
            assert_eq!(level.capability_sids(), *sids, "level {name}");
            assert_eq!(level.to_string(), *name);
        }
    }

    #[test]
    fn default_is_no_network() {
        assert_eq!(NetworkAccess::default(), NetworkAccess::None);
    }

    #[test]
    fn unknown_level_is_named_in_the_error() {
        let err = "internet"
            .parse::<NetworkAccess>()
            .expect_err("unknown level");
        assert_eq!(
            err.to_string(),
            "unknown network access `internet` (expected none, outbound, local or full)"
        );
    }
}
