//! The SetReadScope decoder (what the kernel reads from the port before it stores a scope).
#![no_main]
use agentsh_wire::scope::{self, ReadScopeView, ScopeKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(view) = ReadScopeView::new_checked(data) {
        let entries: Vec<(ScopeKind, Vec<u16>)> =
            view.entries().map(|(k, u)| (k, u.iter().collect())).collect();
        assert_eq!(entries.len(), view.len());
        let mut out = vec![0u8; data.len()];
        let n = scope::emit(entries.iter().map(|(k, u)| (*k, &u[..])), &mut out)
            .expect("a decoded scope re-encodes");
        assert_eq!(&out[..n], data);
    }
});
