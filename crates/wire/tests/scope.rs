//! SetReadScope against the layout in docs/protocol.md, byte by byte.

use agentsh_wire::Error;
use agentsh_wire::scope::{self, ReadScopeView, ScopeKind};

/// Two entries written from the table: registry `\R`, file `C`.
const GOLDEN: [u8; 22] = [
    0x19, 0x00, // MessageType 0x19
    0x16, 0x00, // MessageSize 22
    0x02, 0x00, // EntryCount 2
    0x00, 0x00, // reserved
    0x01, 0x00, 0x02, 0x00, 0x5C, 0x00, 0x52, 0x00, // Kind 1, Units 2, "\R"
    0x02, 0x00, 0x01, 0x00, 0x43, 0x00, // Kind 2, Units 1, "C"
];

fn units(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

#[test]
fn golden_decodes_and_encodes() {
    let v = ReadScopeView::new_checked(&GOLDEN).expect("valid");
    assert_eq!(v.len(), 2);
    let got: Vec<(ScopeKind, Vec<u16>)> =
        v.entries().map(|(k, u)| (k, u.iter().collect())).collect();
    assert_eq!(
        got,
        vec![
            (ScopeKind::Registry, units("\\R")),
            (ScopeKind::File, units("C"))
        ]
    );
    let (r, c) = (units("\\R"), units("C"));
    let mut buf = [0xAAu8; 64];
    let n = scope::emit(
        [(ScopeKind::Registry, &r[..]), (ScopeKind::File, &c[..])],
        &mut buf,
    )
    .expect("valid");
    assert_eq!(&buf[..n], &GOLDEN[..]);
}

#[test]
fn empty_scope_is_eight_bytes() {
    let bytes = [0x19, 0, 8, 0, 0, 0, 0, 0];
    assert!(
        ReadScopeView::new_checked(&bytes)
            .expect("valid")
            .is_empty()
    );
}

#[test]
fn malformed_messages_are_refused() {
    let mut wrong_size = GOLDEN;
    wrong_size[2] = 0x17;
    assert!(matches!(
        ReadScopeView::new_checked(&wrong_size),
        Err(Error::SizeMismatch { .. })
    ));
    let mut bad_kind = GOLDEN;
    bad_kind[8] = 3;
    assert_eq!(
        ReadScopeView::new_checked(&bad_kind).expect_err("refused"),
        Error::BadValue {
            field: "Kind",
            value: 3
        }
    );
    let mut zero_units = GOLDEN;
    zero_units[10] = 0;
    assert!(ReadScopeView::new_checked(&zero_units).is_err());
    let mut extra_count = GOLDEN;
    extra_count[4] = 3;
    assert!(matches!(
        ReadScopeView::new_checked(&extra_count),
        Err(Error::Truncated { .. })
    ));
    let mut fewer = GOLDEN;
    fewer[4] = 1;
    assert!(matches!(
        ReadScopeView::new_checked(&fewer),
        Err(Error::SizeMismatch { .. })
    ));
    let mut reserved = GOLDEN;
    reserved[6] = 1;
    assert!(ReadScopeView::new_checked(&reserved).is_err());
    assert!(ReadScopeView::new_checked(&GOLDEN[..7]).is_err());
}

#[test]
fn oversized_scopes_are_refused_by_the_encoder() {
    let long = vec![0x41u16; scope::MAX_PREFIX_UNITS + 1];
    let mut buf = vec![0u8; scope::MAX_LEN];
    assert!(scope::emit([(ScopeKind::Registry, &long[..])], &mut buf).is_err());
    let p = vec![0x41u16; 1000];
    let many: Vec<(ScopeKind, &[u16])> = (0..20).map(|_| (ScopeKind::File, &p[..])).collect();
    assert!(scope::encoded_len(many.iter().copied()).is_none());
}
