//! The kernel flow, rule by rule: cache keying, eviction, expiry and flushes; the breaker in both
//! directions; session membership through descendants, exits and reused ids; exclusion of the
//! connected client for both kinds of operation; configuration ranges; pending holds.

use agentsh_kcore::breaker::Transition;
use agentsh_kcore::cache::{CacheKey, Cached, DecisionCache};
use agentsh_kcore::highrisk::{HighRiskSet, Risk};
use agentsh_kcore::notify::Outgoing;
use agentsh_kcore::pending::{HoldStatus, PendingTable};
use agentsh_kcore::{
    Caller, FileOp, KernelCore, QueryOutcome, RegistryOp, Request, Step, Verdict, Why,
};
use agentsh_wire::Utf16Buf;
use agentsh_wire::control::{ControlRepr, Counter, DriverConfig, FailMode, SendResult, SendStatus};
use agentsh_wire::notify::NotifyReason;
use agentsh_wire::op::{Decision, FileOperation, MessageType, OpFlags, Operation};
use agentsh_wire::registry::RegistryRequestRepr;
use agentsh_wire::response::{CacheTtl, PolicyResponseRepr};

const SERVICE_PID: u32 = 500;
const ROOT: u32 = 1000;
const TOKEN: u64 = 0xABCD;
const RUN: &str = "\\REGISTRY\\MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run";
const APP: &str = "\\REGISTRY\\USER\\S-1-5-21-1-2-3-1001\\SOFTWARE\\TestApp";

fn u(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

fn send(core: &mut KernelCore, msg: ControlRepr) -> SendResult {
    let mut input = vec![0u8; msg.buffer_len()];
    msg.emit(&mut input).expect("emit");
    let mut out = [0u8; 512];
    let r = core.on_user_message(&input, &mut out);
    SendResult::decode(msg.message_type(), &out[..r.written]).expect("send result decodes")
}

fn status(core: &mut KernelCore, msg: ControlRepr) -> SendStatus {
    send(core, msg).status()
}

/// A core with a connected, handshaken service and one session rooted at ROOT.
fn connected() -> KernelCore {
    let mut core = KernelCore::new(42);
    core.on_client_connected(SERVICE_PID).expect("first client");
    assert_eq!(
        status(
            &mut core,
            ControlRepr::Hello {
                protocol_version: 1
            }
        ),
        SendStatus::Ok
    );
    let ws = Utf16Buf::encode("C:\\work").expect("fits");
    let reg = ControlRepr::RegisterSession {
        root_process_id: ROOT,
        session_token: TOKEN,
        session_id: 1,
        flags: 0,
        workspace: ws,
    };
    assert_eq!(status(&mut core, reg), SendStatus::Ok);
    core
}

fn reg<'a>(op: Operation, key: &'a [u16], name: &'a [u16]) -> Request<'a> {
    Request::Registry(RegistryOp {
        op,
        flags: OpFlags(0),
        key,
        name,
        value_type: 1,
        data_size: 4,
    })
}

fn reply(decision: Decision, ttl: CacheTtl) -> [u8; 24] {
    let mut b = [0u8; 24];
    PolicyResponseRepr {
        message_type: MessageType::PolicyCheckRegistry,
        decision,
        cache_ttl: ttl,
        notify: false,
        log: false,
        approval_timeout_secs: 0,
        approval_ticket: 0,
    }
    .emit(&mut b)
    .expect("emit");
    b
}

fn pending_reply(ticket: u32, secs: u32) -> [u8; 24] {
    let mut b = [0u8; 24];
    PolicyResponseRepr {
        message_type: MessageType::PolicyCheckRegistry,
        decision: Decision::Pending,
        cache_ttl: CacheTtl::None,
        notify: true,
        log: true,
        approval_timeout_secs: secs,
        approval_ticket: ticket,
    }
    .emit(&mut b)
    .expect("emit");
    b
}

/// Runs one operation through begin/complete with the service answering `answer`.
fn decide(
    core: &mut KernelCore,
    now: u64,
    pid: u32,
    req: &Request<'_>,
    answer: QueryOutcome<'_>,
) -> Verdict {
    let caller = Caller { pid, tid: pid + 1 };
    match core.begin(now, caller, req) {
        Step::Allow(w) => Verdict::Allow(w),
        Step::Deny(w) => Verdict::Deny(w),
        Step::Query { token, .. } => core.complete(now, caller, req, token, answer),
    }
}

fn metric(core: &KernelCore, c: Counter) -> u64 {
    core.metrics().get(c)
}

#[test]
fn a_cached_answer_is_reused_without_a_query() {
    let mut core = connected();
    let (key, name) = (u(APP), u("config"));
    let req = reg(Operation::SetValue, &key, &name);
    let allow = reply(Decision::Allow, CacheTtl::Seconds(60));
    assert_eq!(
        decide(&mut core, 0, ROOT, &req, QueryOutcome::Reply(&allow)),
        Verdict::Allow(Why::Service)
    );
    assert_eq!(
        core.begin(1, Caller { pid: ROOT, tid: 1 }, &req),
        Step::Allow(Why::Cached)
    );
    assert_eq!(metric(&core, Counter::CacheHitCount), 1);
    assert_eq!(metric(&core, Counter::CacheMissCount), 1);
    assert_eq!(metric(&core, Counter::RegistryPolicyQueries), 1);
}

#[test]
fn the_cache_key_includes_value_name_operation_and_session() {
    let mut core = connected();
    let (key, config, other) = (u(RUN), u("Allowed"), u("Evil"));
    let allow = reply(Decision::Allow, CacheTtl::Seconds(60));
    decide(
        &mut core,
        0,
        ROOT,
        &reg(Operation::SetValue, &key, &config),
        QueryOutcome::Reply(&allow),
    );
    let caller = Caller { pid: ROOT, tid: 1 };
    // Another value under the same key is not covered by the first answer.
    assert!(matches!(
        core.begin(1, caller, &reg(Operation::SetValue, &key, &other)),
        Step::Query { .. }
    ));
    // Another operation on the same value neither.
    assert!(matches!(
        core.begin(1, caller, &reg(Operation::DeleteValue, &key, &config)),
        Step::Query { .. }
    ));
    // Rename targets are part of the key.
    let (a, b) = (u("NewA"), u("NewB"));
    decide(
        &mut core,
        0,
        ROOT,
        &reg(Operation::RenameKey, &key, &a),
        QueryOutcome::Reply(&allow),
    );
    assert!(matches!(
        core.begin(1, caller, &reg(Operation::RenameKey, &key, &b)),
        Step::Query { .. }
    ));
}

#[test]
fn cache_keys_fold_case_the_windows_way() {
    let mut cache = DecisionCache::new(100, 1);
    let (k1, k2, n) = (
        u("\\REGISTRY\\MACHINE\\SOFTWARE\\Évian"),
        u("\\registry\\machine\\software\\évian"),
        u("v"),
    );
    cache.insert(
        0,
        &CacheKey {
            token: 1,
            kind: 2,
            path: &k1,
            name: &n,
        },
        Cached {
            allow: false,
            flags: 0,
        },
        CacheTtl::Seconds(5),
        5000,
    );
    assert_eq!(
        cache.lookup(
            1,
            &CacheKey {
                token: 1,
                kind: 2,
                path: &k2,
                name: &u("V")
            }
        ),
        Some(Cached {
            allow: false,
            flags: 0
        })
    );
    // Path and name are kept apart: "a\b" + "c" is not "a" + "b\c".
    let (p1, n1, p2, n2) = (u("A\\B"), u("C"), u("A"), u("B\\C"));
    cache.insert(
        0,
        &CacheKey {
            token: 1,
            kind: 2,
            path: &p1,
            name: &n1,
        },
        Cached {
            allow: true,
            flags: 0,
        },
        CacheTtl::Seconds(5),
        5000,
    );
    assert_eq!(
        cache.lookup(
            1,
            &CacheKey {
                token: 1,
                kind: 2,
                path: &p2,
                name: &n2
            }
        ),
        None
    );
}

#[test]
fn keys_longer_than_the_inline_buffer_are_cached_and_folded_too() {
    let mut cache = DecisionCache::new(10, 5);
    let long = u(&format!(
        "\\REGISTRY\\MACHINE\\SOFTWARE\\{}",
        "Ä".repeat(300)
    ));
    let upper = u(&format!(
        "\\registry\\machine\\software\\{}",
        "ä".repeat(300)
    ));
    let name = u("Value");
    let v = Cached {
        allow: true,
        flags: 1,
    };
    cache.insert(
        0,
        &CacheKey {
            token: 1,
            kind: 2,
            path: &long,
            name: &name,
        },
        v,
        CacheTtl::Seconds(9),
        5000,
    );
    assert_eq!(
        cache.lookup(
            1,
            &CacheKey {
                token: 1,
                kind: 2,
                path: &upper,
                name: &u("VALUE")
            }
        ),
        Some(v)
    );
    assert_eq!(
        cache.lookup(
            1,
            &CacheKey {
                token: 1,
                kind: 2,
                path: &upper,
                name: &u("VALUE2")
            }
        ),
        None
    );
    assert_eq!(
        cache.lookup(
            1,
            &CacheKey {
                token: 2,
                kind: 2,
                path: &upper,
                name: &u("VALUE")
            }
        ),
        None,
        "another session"
    );
}

#[test]
fn eviction_is_least_recently_used_and_lookups_count_as_use() {
    let mut cache = DecisionCache::new(3, 9);
    let keys: Vec<Vec<u16>> = (0..4)
        .map(|i| u(&format!("\\REGISTRY\\MACHINE\\K{i}")))
        .collect();
    let k = |i: usize| CacheKey {
        token: 1,
        kind: 2,
        path: &keys[i],
        name: &[],
    };
    let v = Cached {
        allow: true,
        flags: 0,
    };
    for i in 0..3 {
        cache.insert(0, &k(i), v, CacheTtl::Seconds(60), 5000);
    }
    assert!(
        cache.lookup(1, &k(0)).is_some(),
        "touch K0 so K1 becomes the oldest"
    );
    cache.insert(2, &k(3), v, CacheTtl::Seconds(60), 5000);
    assert_eq!(cache.len(), 3, "a full cache stays within its bound");
    assert!(
        cache.lookup(3, &k(1)).is_none(),
        "the least recently used entry was evicted"
    );
    assert!(cache.lookup(3, &k(0)).is_some());
    assert!(cache.lookup(3, &k(2)).is_some());
    assert!(cache.lookup(3, &k(3)).is_some());
    assert_eq!(cache.evictions(), 1);
    cache.set_capacity(1);
    assert_eq!(cache.len(), 1);
}

#[test]
fn entries_expire_after_their_ttl_and_ttl_zero_is_not_cached() {
    let mut cache = DecisionCache::new(10, 3);
    let key = u("\\REGISTRY\\MACHINE\\X");
    let k = CacheKey {
        token: 1,
        kind: 2,
        path: &key,
        name: &[],
    };
    let v = Cached {
        allow: true,
        flags: 0,
    };
    cache.insert(1000, &k, v, CacheTtl::Seconds(2), 5000);
    assert!(cache.lookup(2999, &k).is_some());
    assert!(cache.lookup(3000, &k).is_none(), "expired at insert + ttl");
    assert!(cache.is_empty(), "an expired entry is removed when touched");
    cache.insert(0, &k, v, CacheTtl::DriverDefault, 700);
    assert!(cache.lookup(699, &k).is_some());
    assert!(
        cache.lookup(700, &k).is_none(),
        "the sentinel means the driver's default TTL"
    );
    cache.insert(0, &k, v, CacheTtl::None, 5000);
    assert!(cache.lookup(0, &k).is_none(), "ttl 0 means do not cache");
}

#[test]
fn pending_is_never_cached_and_approval_holds_until_the_final_decision() {
    let mut core = connected();
    let (key, name) = (
        u("\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services\\evil"),
        u(""),
    );
    let req = reg(Operation::CreateKey, &key, &name);
    let caller = Caller { pid: ROOT, tid: 7 };
    let Step::Query { token, .. } = core.begin(0, caller, &req) else {
        panic!("query expected")
    };
    let verdict = core.complete(
        0,
        caller,
        &req,
        token,
        QueryOutcome::Reply(&pending_reply(9, 30)),
    );
    let Verdict::Hold {
        ticket: 9,
        deadline,
    } = verdict
    else {
        panic!("hold expected, got {verdict:?}")
    };
    assert_eq!(
        deadline,
        30_000 + u64::from(DriverConfig::DEFAULT.pending_grace_ms)
    );
    assert!(matches!(
        core.hold_status(100, caller, &req, 9),
        Verdict::Hold { .. }
    ));
    // The final decision arrives through the port and names the ticket.
    let mut input = [0u8; 32];
    ControlRepr::FinalDecision {
        ticket: 9,
        decision: Decision::Allow,
        flags: 0,
    }
    .emit(&mut input)
    .expect("emit");
    let mut out = [0u8; 64];
    let r = core.on_user_message(&input, &mut out);
    assert_eq!(r.wake, Some(9));
    assert_eq!(
        core.hold_status(200, caller, &req, 9),
        Verdict::Allow(Why::Approval)
    );
    // Nothing was cached: the next identical operation asks again.
    assert!(matches!(core.begin(300, caller, &req), Step::Query { .. }));
    assert_eq!(
        status(
            &mut core,
            ControlRepr::FinalDecision {
                ticket: 9,
                decision: Decision::Allow,
                flags: 0
            }
        ),
        SendStatus::NotFound
    );
}

#[test]
fn a_hold_expires_on_its_own_and_when_the_service_leaves() {
    let mut table = PendingTable::default();
    let deadline = table.begin(1, 0, 10, 500).expect("hold");
    assert_eq!(deadline, 10_500);
    assert_eq!(table.poll(1, 10_499), HoldStatus::Waiting { deadline });
    assert_eq!(table.poll(1, 10_500), HoldStatus::Expired);
    assert_eq!(table.poll(1, 10_501), HoldStatus::Unknown);
    table.begin(2, 0, 10, 500).expect("hold");
    assert_eq!(
        table.begin(2, 0, 10, 500),
        Err(agentsh_kcore::pending::HoldError::DuplicateTicket)
    );
    assert_eq!(table.abandon_all(), vec![2]);
    assert_eq!(table.poll(2, 1), HoldStatus::Decided { allow: false });
    // The kernel caps what a reply may ask for.
    let deadline = table.begin(3, 0, u32::MAX, 0).expect("hold");
    assert_eq!(
        deadline,
        u64::from(agentsh_kcore::pending::MAX_APPROVAL_TIMEOUT_SECS) * 1000
    );

    let mut core = connected();
    let key = u(RUN);
    let req = reg(Operation::SetValue, &key, &[]);
    let caller = Caller { pid: ROOT, tid: 2 };
    let Step::Query { token, .. } = core.begin(0, caller, &req) else {
        panic!("query")
    };
    core.complete(
        0,
        caller,
        &req,
        token,
        QueryOutcome::Reply(&pending_reply(4, 60)),
    );
    assert_eq!(
        core.on_client_disconnected(),
        vec![4],
        "held threads are woken"
    );
    assert_eq!(
        core.hold_status(1, caller, &req, 4),
        Verdict::Deny(Why::Approval)
    );
}

#[test]
fn flushes_on_unregister_reconnect_and_flush_message() {
    let mut core = connected();
    let (key, name) = (u(APP), u("config"));
    let req = reg(Operation::SetValue, &key, &name);
    let allow = reply(Decision::Allow, CacheTtl::Seconds(600));
    let caller = Caller { pid: ROOT, tid: 1 };
    let cached = |core: &mut KernelCore| core.begin(1, caller, &req) == Step::Allow(Why::Cached);

    decide(&mut core, 0, ROOT, &req, QueryOutcome::Reply(&allow));
    assert!(cached(&mut core));
    assert_eq!(
        status(&mut core, ControlRepr::FlushCache { session_token: 0 }),
        SendStatus::Ok
    );
    assert!(!cached(&mut core), "flush message (policy reload)");

    decide(&mut core, 0, ROOT, &req, QueryOutcome::Reply(&allow));
    core.on_client_disconnected();
    core.on_client_connected(SERVICE_PID).expect("reconnect");
    assert_eq!(
        status(
            &mut core,
            ControlRepr::Hello {
                protocol_version: 1
            }
        ),
        SendStatus::Ok
    );
    assert!(!cached(&mut core), "reconnect");

    decide(&mut core, 0, ROOT, &req, QueryOutcome::Reply(&allow));
    assert_eq!(
        status(
            &mut core,
            ControlRepr::UnregisterSession {
                session_token: TOKEN
            }
        ),
        SendStatus::Ok
    );
    assert_eq!(
        core.begin(1, caller, &req),
        Step::Allow(Why::Unsandboxed),
        "no longer a session process"
    );
    assert_eq!(
        metric(&core, Counter::CacheEntries),
        0,
        "unregister dropped the session's entries"
    );
}

#[test]
fn fail_open_allows_and_fail_closed_denies_from_the_first_failure() {
    for (mode, expect) in [
        (FailMode::Open, Verdict::Allow(Why::FailOpen)),
        (FailMode::Closed, Verdict::Deny(Why::FailClosed)),
    ] {
        let mut core = connected();
        let config = DriverConfig {
            fail_mode: mode,
            ..DriverConfig::DEFAULT
        };
        assert_eq!(
            status(&mut core, ControlRepr::SetConfig(config)),
            SendStatus::Ok
        );
        let (key, name) = (u(APP), u("config"));
        let req = reg(Operation::SetValue, &key, &name);
        assert_eq!(
            decide(&mut core, 0, ROOT, &req, QueryOutcome::Timeout),
            expect
        );
        assert_eq!(metric(&core, Counter::PolicyQueryTimeouts), 1);
        assert_eq!(
            decide(&mut core, 0, ROOT, &req, QueryOutcome::Reply(b"garbage")),
            expect,
            "a malformed reply is a failure"
        );
        assert_eq!(metric(&core, Counter::PolicyQueryErrors), 1);
        assert_eq!(metric(&core, Counter::FailMode), mode as u64);
    }
}

#[test]
fn the_breaker_trips_after_max_failures_and_recovers_on_success() {
    let mut core = connected();
    let config = DriverConfig {
        max_consecutive_failures: 3,
        ..DriverConfig::DEFAULT
    };
    status(&mut core, ControlRepr::SetConfig(config));
    assert_eq!(
        core.take_transition(),
        Some(Transition::Recovered),
        "the handshake ended the start-up trip"
    );
    let (key, name) = (u(APP), u("config"));
    let req = reg(Operation::SetValue, &key, &name);
    for i in 0..3 {
        assert_eq!(
            decide(&mut core, 0, ROOT, &req, QueryOutcome::Error),
            Verdict::Allow(Why::FailOpen)
        );
        assert_eq!(
            core.take_transition().is_some(),
            i == 2,
            "trips exactly at the threshold"
        );
    }
    assert_eq!(metric(&core, Counter::ConsecutiveFailures), 3);
    assert_eq!(metric(&core, Counter::FailOpenMode), 1);
    let caller = Caller { pid: ROOT, tid: 1 };
    // Tripped: one probe goes out, the rest are decided at once.
    let Step::Query { token, .. } = core.begin(0, caller, &req) else {
        panic!("probe expected")
    };
    assert_eq!(
        core.begin(0, caller, &req),
        Step::Allow(Why::FailOpen),
        "only one probe in flight"
    );
    let allow = reply(Decision::Allow, CacheTtl::None);
    assert_eq!(
        core.complete(0, caller, &req, token, QueryOutcome::Reply(&allow)),
        Verdict::Allow(Why::Service)
    );
    assert_eq!(core.take_transition(), Some(Transition::Recovered));
    assert_eq!(metric(&core, Counter::FailOpenMode), 0);
    assert_eq!(metric(&core, Counter::ConsecutiveFailures), 0);
    assert!(
        matches!(core.begin(0, caller, &req), Step::Query { .. }),
        "queries flow again"
    );
}

#[test]
fn a_terminating_requester_is_denied_and_never_trips_the_breaker() {
    let mut core = connected();
    let config = DriverConfig {
        max_consecutive_failures: 3,
        ..DriverConfig::DEFAULT
    };
    status(&mut core, ControlRepr::SetConfig(config));
    core.take_transition();
    let (key, name) = (u(APP), u("config"));
    let req = reg(Operation::SetValue, &key, &name);
    // Ten times the threshold: a process killing its own threads mid-query gets denials, and
    // the machine-wide breaker does not move (fail-open would otherwise allow everything).
    for _ in 0..30 {
        assert_eq!(
            decide(&mut core, 0, ROOT, &req, QueryOutcome::RequesterTerminating),
            Verdict::Deny(Why::RequesterTerminating)
        );
    }
    assert_eq!(core.take_transition(), None, "no trip");
    assert_eq!(metric(&core, Counter::ConsecutiveFailures), 0);
    assert_eq!(metric(&core, Counter::FailOpenMode), 0);
    assert_eq!(metric(&core, Counter::PolicyQueryErrors), 0);
    assert!(
        matches!(
            core.begin(0, Caller { pid: ROOT, tid: 1 }, &req),
            Step::Query { .. }
        ),
        "other requests are still asked"
    );
}

#[test]
fn a_held_thread_that_terminates_abandons_its_hold_as_a_denial() {
    let mut core = connected();
    let (key, name) = (u(RUN), u("x"));
    let req = reg(Operation::SetValue, &key, &name);
    let caller = Caller { pid: ROOT, tid: 1 };
    let Step::Query { token, .. } = core.begin(0, caller, &req) else {
        panic!("query expected")
    };
    let pending = pending_reply(7, 30);
    let held = core.complete(0, caller, &req, token, QueryOutcome::Reply(&pending));
    let Verdict::Hold { ticket, .. } = held else {
        panic!("hold expected, got {held:?}")
    };
    assert_eq!(
        core.abandon_hold(ticket),
        Verdict::Deny(Why::RequesterTerminating)
    );
    assert!(
        matches!(
            core.hold_status(1, caller, &req, ticket),
            Verdict::Deny(Why::ApprovalExpired)
        ),
        "the hold is gone"
    );
}

#[test]
fn a_session_child_that_cannot_be_tracked_is_an_error_not_an_outsider() {
    let mut core = connected();
    let mut refused = None;
    for pid in 0..100_000u32 {
        let pid = 10_000 + pid * 4;
        match core.on_process_created_checked(pid, ROOT, ROOT, &[]) {
            Ok(Some(_)) => {}
            Ok(None) => panic!("a child of the root is in the session"),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    assert!(refused.is_some(), "the process table is bounded");
    assert!(
        core.on_process_created(5, ROOT, ROOT, &[]).is_none(),
        "the unchecked form reports no session"
    );
}

#[test]
fn a_disconnected_service_means_the_fail_mode_and_closed_denies() {
    let mut core = connected();
    status(
        &mut core,
        ControlRepr::SetConfig(DriverConfig {
            fail_mode: FailMode::Closed,
            ..DriverConfig::DEFAULT
        }),
    );
    core.on_client_disconnected();
    assert_eq!(
        core.take_transition(),
        Some(Transition::TrippedByDisconnect)
    );
    let (key, name) = (u(APP), u("config"));
    assert_eq!(
        core.begin(
            0,
            Caller { pid: ROOT, tid: 1 },
            &reg(Operation::SetValue, &key, &name)
        ),
        Step::Deny(Why::FailClosed)
    );
    assert_eq!(metric(&core, Counter::ServiceConnected), 0);
}

#[test]
fn critical_keys_stay_closed_in_fail_open_mode() {
    let mut core = connected();
    core.on_client_disconnected();
    let caller = Caller { pid: ROOT, tid: 1 };
    let (run, svc, app) = (
        u(RUN),
        u("\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services\\x"),
        u(APP),
    );
    assert_eq!(
        core.begin(0, caller, &reg(Operation::SetValue, &run, &[])),
        Step::Deny(Why::CriticalWhileUnavailable)
    );
    assert_eq!(
        core.begin(0, caller, &reg(Operation::CreateKey, &svc, &[])),
        Step::Deny(Why::CriticalWhileUnavailable)
    );
    assert_eq!(
        core.begin(0, caller, &reg(Operation::SetValue, &app, &[])),
        Step::Allow(Why::FailOpen)
    );
    let notes: Vec<_> = std::iter::from_fn(|| core.next_notification())
        .map(|n| decision(n).reason)
        .collect();
    assert_eq!(
        notes,
        [
            NotifyReason::FailClosed,
            NotifyReason::FailClosed,
            NotifyReason::FailOpen
        ]
    );
}

#[test]
fn descendants_join_through_the_creating_process_not_the_parent_attribute() {
    let mut core = connected();
    // The agent (ROOT) creates 2000 but names explorer (4) as its parent: still a member.
    assert!(core.on_process_created(2000, ROOT, 4, &[]).is_some());
    assert_eq!(core.session_of(2000).map(|s| s.token), Some(TOKEN));
    // A grandchild joins too.
    core.on_process_created(3000, 2000, 2000, &[]);
    assert!(core.session_of(3000).is_some());
    // An outside process that names a session process as its parent does not join.
    core.on_process_created(4000, 4, ROOT, &[]);
    assert!(core.session_of(4000).is_none());
    // Exits leave; a reused id is not a member.
    core.on_process_exited(3000);
    assert!(core.session_of(3000).is_none());
    core.on_process_created(2000, 4, 4, &[]);
    assert!(
        core.session_of(2000).is_none(),
        "id 2000 reused by an outside process"
    );
    assert_eq!(metric(&core, Counter::TrackedProcesses), 1);
    assert_eq!(metric(&core, Counter::ActiveSessions), 1);
}

#[test]
fn rotating_a_token_keeps_the_sessions_processes() {
    let mut core = connected();
    core.on_process_created(2000, ROOT, ROOT, &[]);
    assert_eq!(
        status(
            &mut core,
            ControlRepr::RotateSessionToken {
                old_token: TOKEN,
                new_token: 77
            }
        ),
        SendStatus::Ok
    );
    assert_eq!(core.session_of(ROOT).map(|s| s.token), Some(77));
    assert_eq!(core.session_of(2000).map(|s| s.token), Some(77));
    assert_eq!(
        status(
            &mut core,
            ControlRepr::RotateSessionToken {
                old_token: TOKEN,
                new_token: 78
            }
        ),
        SendStatus::NotFound
    );
    let ws = Utf16Buf::EMPTY;
    let dup = ControlRepr::RegisterSession {
        root_process_id: 9,
        session_token: 77,
        session_id: 2,
        flags: 0,
        workspace: ws,
    };
    assert_eq!(status(&mut core, dup), SendStatus::AlreadyExists);
}

#[test]
fn the_connected_service_is_excluded_for_registry_and_file_operations() {
    let mut core = connected();
    // Even a session member: make the service's pid a member to show exclusion comes first.
    assert_eq!(status(&mut core, ControlRepr::ExcludeSelf), SendStatus::Ok);
    assert_eq!(core.excluded_process(), Some(SERVICE_PID));
    let key = u(RUN);
    let caller = Caller {
        pid: SERVICE_PID,
        tid: 1,
    };
    assert_eq!(
        core.begin(0, caller, &reg(Operation::SetValue, &key, &[])),
        Step::Allow(Why::Excluded)
    );
    let path = u("\\Device\\HarddiskVolume3\\work\\x");
    let file = Request::File(FileOp {
        op: FileOperation::Write,
        flags: OpFlags(0),
        path: &path,
        target: &[],
        desired_access: 2,
        create_disposition: 0,
    });
    assert_eq!(core.begin(0, caller, &file), Step::Allow(Why::Excluded));
    assert_eq!(metric(&core, Counter::ExcludedOperations), 2);
    core.on_client_disconnected();
    assert_eq!(
        core.excluded_process(),
        None,
        "cleared when the client disconnects"
    );
}

#[test]
fn unsandboxed_processes_are_allowed_and_high_risk_keys_notified() {
    let mut core = connected();
    let (run, other) = (u(RUN), u("\\REGISTRY\\MACHINE\\SOFTWARE\\Vendor"));
    let outsider = Caller { pid: 9999, tid: 1 };
    assert_eq!(
        core.begin(0, outsider, &reg(Operation::SetValue, &run, &u("x"))),
        Step::Allow(Why::Unsandboxed)
    );
    assert_eq!(
        core.begin(0, outsider, &reg(Operation::SetValue, &other, &u("x"))),
        Step::Allow(Why::Unsandboxed)
    );
    let n = decision(core.next_notification().expect("one notification"));
    assert_eq!(n.reason, NotifyReason::HighRiskUnsandboxed);
    assert!(
        core.next_notification().is_none(),
        "ordinary keys are not notified"
    );
    let agentsh_wire::notify::Subject::Registry(r) = n.to_repr().subject else {
        panic!("registry")
    };
    assert_eq!(r.key_path.to_string(), RUN);
}

#[test]
fn unsandboxed_reads_are_reported_only_for_the_credential_stores() {
    let mut core = connected();
    let outsider = Caller { pid: 9999, tid: 1 };
    let noisy = [
        "\\REGISTRY\\MACHINE\\SOFTWARE\\Policies\\Microsoft\\Windows",
        "\\REGISTRY\\MACHINE\\SOFTWARE\\Classes\\CLSID\\{0000}\\InprocServer32",
        "\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Control\\Session Manager",
        RUN,
    ];
    for key in noisy {
        let key = u(key);
        for op in [
            Operation::QueryValue,
            Operation::OpenKey,
            Operation::EnumKeys,
        ] {
            assert_eq!(
                core.begin(0, outsider, &reg(op, &key, &u("x"))),
                Step::Allow(Why::Unsandboxed)
            );
        }
    }
    assert!(
        core.next_notification().is_none(),
        "reads of ordinary high-risk keys are not reported"
    );
    for key in [
        "\\REGISTRY\\MACHINE\\SAM\\SAM\\Domains",
        "\\REGISTRY\\MACHINE\\security\\Policy\\Secrets",
    ] {
        let key = u(key);
        core.begin(0, outsider, &reg(Operation::QueryValue, &key, &u("")));
        let n = decision(
            core.next_notification()
                .expect("credential store read reported"),
        );
        assert_eq!(n.reason, NotifyReason::HighRiskUnsandboxed);
    }
    let samples = u("\\REGISTRY\\MACHINE\\SAMPLES");
    core.begin(0, outsider, &reg(Operation::QueryValue, &samples, &u("")));
    assert!(core.next_notification().is_none(), "SAMPLES is not SAM");
}

#[test]
fn cached_answers_with_notify_flags_still_notify() {
    let mut core = connected();
    let key = u(RUN);
    let x = u("x");
    let req = reg(Operation::SetValue, &key, &x);
    let mut deny = [0u8; 24];
    PolicyResponseRepr {
        message_type: MessageType::PolicyCheckRegistry,
        decision: Decision::Deny,
        cache_ttl: CacheTtl::Seconds(30),
        notify: true,
        log: true,
        approval_timeout_secs: 0,
        approval_ticket: 0,
    }
    .emit(&mut deny)
    .expect("emit");
    decide(&mut core, 0, ROOT, &req, QueryOutcome::Reply(&deny));
    assert_eq!(
        core.begin(1, Caller { pid: ROOT, tid: 1 }, &req),
        Step::Deny(Why::Cached)
    );
    let n = decision(
        core.next_notification()
            .expect("cached decision notification"),
    );
    assert_eq!(
        (n.reason, n.allowed, n.flags),
        (NotifyReason::CachedDecision, false, 3)
    );
}

#[test]
fn the_notification_queue_is_bounded_and_counts_drops() {
    let mut core = connected();
    let key = u(RUN);
    let outsider = Caller { pid: 9999, tid: 1 };
    for _ in 0..agentsh_kcore::notify::QUEUE_CAPACITY + 5 {
        core.begin(0, outsider, &reg(Operation::SetValue, &key, &[]));
    }
    assert_eq!(metric(&core, Counter::NotificationsDropped), 5);
    assert_eq!(
        metric(&core, Counter::NotificationsQueued),
        agentsh_kcore::notify::QUEUE_CAPACITY as u64
    );
}

#[test]
fn long_paths_are_asked_with_the_cut_flagged_and_never_cached() {
    let mut core = connected();
    let long = u(&format!("{APP}\\{}", "x".repeat(600)));
    let req = reg(Operation::SetValue, &long, &[]);
    let caller = Caller { pid: ROOT, tid: 1 };
    let Step::Query { token, .. } = core.begin(0, caller, &req) else {
        panic!("query")
    };
    let mut buf = vec![0u8; 1584];
    core.encode_request(caller, &req, token, &mut buf)
        .expect("encodes");
    let sent = RegistryRequestRepr::decode(&buf).expect("decodes");
    assert!(sent.flags.has(OpFlags::PATH_TRUNCATED));
    let allow = reply(Decision::Allow, CacheTtl::Seconds(60));
    core.complete(0, caller, &req, token, QueryOutcome::Reply(&allow));
    assert!(
        matches!(core.begin(1, caller, &req), Step::Query { .. }),
        "a cut path is never cached"
    );
    assert_eq!(metric(&core, Counter::TruncatedPaths), 2);
}

#[test]
fn reads_take_no_round_trip_unless_a_rule_can_deny_them() {
    let mut core = connected();
    let key = u(RUN);
    let caller = Caller { pid: ROOT, tid: 1 };
    let x = u("x");
    let read = reg(Operation::QueryValue, &key, &x);
    assert_eq!(
        core.begin(0, caller, &read),
        Step::Allow(Why::ReadNotQueried)
    );
    let config = DriverConfig {
        flags: agentsh_wire::control::CONFIG_QUERY_READS,
        ..DriverConfig::DEFAULT
    };
    status(&mut core, ControlRepr::SetConfig(config));
    assert!(matches!(core.begin(0, caller, &read), Step::Query { .. }));
}

#[test]
fn sandboxed_reads_of_high_risk_keys_are_reported_one_way() {
    let mut core = connected();
    let caller = Caller { pid: ROOT, tid: 1 };
    let (run, other, x) = (u(RUN), u("\\REGISTRY\\MACHINE\\SOFTWARE\\Vendor"), u("x"));
    assert_eq!(
        core.begin(0, caller, &reg(Operation::QueryValue, &run, &x)),
        Step::Allow(Why::ReadNotQueried)
    );
    let n = decision(
        core.next_notification()
            .expect("the Run key read is reported"),
    );
    assert_eq!((n.reason, n.allowed), (NotifyReason::Monitored, true));
    assert_eq!(
        core.begin(0, caller, &reg(Operation::QueryValue, &other, &x)),
        Step::Allow(Why::ReadNotQueried)
    );
    assert!(
        core.next_notification().is_none(),
        "an ordinary read is answered without a report"
    );
    // Under NOTIFY_READS (`log_all`) every session read is reported.
    let config = DriverConfig {
        flags: agentsh_wire::control::CONFIG_NOTIFY_READS,
        ..DriverConfig::DEFAULT
    };
    status(&mut core, ControlRepr::SetConfig(config));
    core.begin(0, caller, &reg(Operation::QueryValue, &other, &x));
    assert!(core.next_notification().is_some());
}

#[test]
fn the_port_admits_one_handshaken_client() {
    let mut core = KernelCore::new(1);
    assert_eq!(
        status(&mut core, ControlRepr::GetMetrics),
        SendStatus::HandshakeRequired
    );
    core.on_client_connected(1).expect("first");
    assert_eq!(core.on_client_connected(2), Err(SendStatus::Busy));
    assert_eq!(
        status(&mut core, ControlRepr::ExcludeSelf),
        SendStatus::HandshakeRequired
    );
    assert_eq!(
        send(
            &mut core,
            ControlRepr::Hello {
                protocol_version: 99
            }
        ),
        SendResult::Hello {
            status: SendStatus::VersionMismatch,
            kernel_version: 1
        }
    );
    assert_eq!(
        status(
            &mut core,
            ControlRepr::Hello {
                protocol_version: 1
            }
        ),
        SendStatus::Ok
    );
    assert!(matches!(
        send(&mut core, ControlRepr::GetMetrics),
        SendResult::Metrics(_)
    ));
}

#[test]
fn out_of_range_config_is_refused_and_the_old_one_kept() {
    let mut core = connected();
    let mut input = [0u8; 32];
    let bad = DriverConfig {
        cache_max_entries: 50,
        ..DriverConfig::DEFAULT
    };
    // Emit does not validate; the kernel's decoder does.
    ControlRepr::SetConfig(bad).emit(&mut input).expect("emit");
    let mut out = [0u8; 16];
    let r = core.on_user_message(&input, &mut out);
    let result = SendResult::decode(MessageType::SetConfig, &out[..r.written]).expect("decodes");
    assert_eq!(result.status(), SendStatus::OutOfRange);
    assert_eq!(core.config().cache_max_entries, 4096);
    let mut garbage = input;
    garbage[2] = 31;
    let r = core.on_user_message(&garbage, &mut out);
    assert_eq!(
        SendResult::decode(MessageType::SetConfig, &out[..r.written]).map(|r| r.status()),
        Ok(SendStatus::Malformed)
    );
}

#[test]
fn the_fallible_high_risk_set_is_the_built_in_one() {
    let (a, b) = (
        HighRiskSet::builtin(),
        HighRiskSet::try_builtin().expect("memory"),
    );
    assert_eq!(a.len(), b.len());
    assert!(a.len() > 100);
    let run = u(RUN);
    assert_eq!(a.classify(&run), b.classify(&run));
    assert!(KernelCore::try_new(1).is_some());
}

#[test]
fn the_high_risk_set_covers_every_view_of_a_key() {
    let set = HighRiskSet::builtin();
    let sid = "S-1-5-21-1004336348-1177238915-682003330-1001";
    for (key, risk) in [
        (RUN.to_string(), Risk::Critical),
        (format!("{RUN}Once"), Risk::Critical),
        (
            "\\REGISTRY\\MACHINE\\SOFTWARE\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Run"
                .into(),
            Risk::Critical,
        ),
        (
            format!("\\REGISTRY\\USER\\{sid}\\Software\\Microsoft\\Windows\\CurrentVersion\\Run"),
            Risk::Critical,
        ),
        (
            "\\REGISTRY\\USER\\.DEFAULT\\Software\\Microsoft\\Windows\\CurrentVersion\\Run".into(),
            Risk::Critical,
        ),
        (
            "\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet002\\Services\\Evil\\Parameters".into(),
            Risk::Critical,
        ),
        (
            "\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Control\\Lsa".into(),
            Risk::Critical,
        ),
        (
            format!("\\REGISTRY\\USER\\{sid}_Classes\\CLSID\\{{1234}}\\InprocServer32"),
            Risk::High,
        ),
        (
            "\\registry\\machine\\software\\classes\\txtfile\\shell\\open\\command".into(),
            Risk::High,
        ),
    ] {
        assert_eq!(set.classify(&u(&key)), Some(risk), "{key}");
    }
    assert_eq!(
        set.classify(&u("\\REGISTRY\\MACHINE\\SOFTWARE\\Vendor")),
        None
    );
    assert_eq!(
        set.classify(&u("\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\ServicesX")),
        None
    );
    assert_eq!(
        set.classify(&u("\\REGISTRY\\MACHINE\\SYSTEM")),
        None,
        "a parent of a high-risk key is not high-risk"
    );
}

/// The decision notification `o` must be.
fn decision(o: Outgoing) -> agentsh_kcore::notify::Notification {
    match o {
        Outgoing::Decision(n) => n,
        other => panic!("expected a decision notification, got {other:?}"),
    }
}

#[test]
fn session_processes_are_announced_to_the_service_with_their_image() {
    use agentsh_wire::notify::ProcessEventKind;
    let mut core = connected();
    let image = u("\\Device\\HarddiskVolume3\\Python311\\python.exe");
    assert!(core.on_process_created(2000, ROOT, 4, &image).is_some());
    // An outsider's process is nobody's business.
    assert!(core.on_process_created(4000, 4, 4, &image).is_none());
    core.on_process_exited(4000);
    core.on_process_exited(2000);
    let events: Vec<_> = std::iter::from_fn(|| core.next_notification())
        .map(|o| match o {
            Outgoing::Process(p) => p.to_repr(),
            other => panic!("expected a process event, got {other:?}"),
        })
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    let (created, exited) = (&events[0], &events[1]);
    assert_eq!(created.kind, ProcessEventKind::Created);
    assert_eq!(
        (
            created.process_id,
            created.creating_process_id,
            created.parent_process_id
        ),
        (2000, ROOT, 4)
    );
    assert_eq!(
        created.image_name.to_string(),
        "\\Device\\HarddiskVolume3\\Python311\\python.exe"
    );
    assert_eq!(created.session_id, exited.session_id);
    assert_eq!(
        (exited.kind, exited.process_id),
        (ProcessEventKind::Exited, 2000)
    );
    // The wire form is what the port carries.
    let mut buf = [0u8; Outgoing::MAX_LEN];
    let len = Outgoing::Process(agentsh_kcore::notify::ProcessEvent {
        session_id: created.session_id,
        process_id: created.process_id,
        creating_process_id: created.creating_process_id,
        parent_process_id: created.parent_process_id,
        kind: created.kind,
        exit_status: created.exit_status,
        image: image.to_vec(),
    })
    .emit(&mut buf)
    .expect("fits");
    assert_eq!(len, agentsh_wire::notify::PROCESS_EVENT_LEN);
    assert_eq!(
        agentsh_wire::notify::ProcessEventRepr::decode(&buf[..len]).expect("decodes"),
        *created
    );
}

fn send_scope(
    core: &mut KernelCore,
    entries: &[(agentsh_wire::scope::ScopeKind, &str)],
) -> SendStatus {
    let units: Vec<(agentsh_wire::scope::ScopeKind, Vec<u16>)> =
        entries.iter().map(|(k, s)| (*k, u(s))).collect();
    let mut input = vec![0u8; agentsh_wire::scope::MAX_LEN];
    let n = agentsh_wire::scope::emit(units.iter().map(|(k, v)| (*k, &v[..])), &mut input)
        .expect("emit");
    let mut out = [0u8; 64];
    let r = core.on_user_message(&input[..n], &mut out);
    SendResult::decode(MessageType::SetReadScope, &out[..r.written])
        .expect("send result decodes")
        .status()
}

#[test]
fn only_reads_inside_the_read_scope_are_queried() {
    use agentsh_wire::scope::ScopeKind;
    let mut core = connected();
    let config = DriverConfig {
        flags: agentsh_wire::control::CONFIG_QUERY_READS,
        ..DriverConfig::DEFAULT
    };
    status(&mut core, ControlRepr::SetConfig(config));
    let caller = Caller { pid: ROOT, tid: 1 };
    let (inside, outside, x) = (
        u("\\REGISTRY\\MACHINE\\SOFTWARE\\Secret\\Sub"),
        u("\\REGISTRY\\MACHINE\\SOFTWARE\\Vendor"),
        u("x"),
    );
    // No scope yet: every read is queried.
    assert!(matches!(
        core.begin(0, caller, &reg(Operation::QueryValue, &outside, &x)),
        Step::Query { .. }
    ));
    assert_eq!(
        send_scope(
            &mut core,
            &[(ScopeKind::Registry, "\\registry\\machine\\software\\secret")]
        ),
        SendStatus::Ok
    );
    assert_eq!(core.read_scope_len(), Some(1));
    assert!(
        matches!(
            core.begin(0, caller, &reg(Operation::QueryValue, &inside, &x)),
            Step::Query { .. }
        ),
        "a read under the prefix is queried, case-insensitively"
    );
    let queries = metric(&core, Counter::RegistryPolicyQueries);
    assert_eq!(
        core.begin(0, caller, &reg(Operation::QueryValue, &outside, &x)),
        Step::Allow(Why::ReadNotQueried)
    );
    assert_eq!(metric(&core, Counter::RegistryPolicyQueries), queries);
    // Writes are queried wherever they are.
    assert!(matches!(
        core.begin(0, caller, &reg(Operation::SetValue, &outside, &x)),
        Step::Query { .. }
    ));
    // Whole replacement: the old prefix no longer counts, the new one does.
    assert_eq!(
        send_scope(
            &mut core,
            &[(ScopeKind::Registry, "\\REGISTRY\\MACHINE\\SOFTWARE\\Vendor")]
        ),
        SendStatus::Ok
    );
    assert_eq!(
        core.begin(0, caller, &reg(Operation::QueryValue, &inside, &x)),
        Step::Allow(Why::ReadNotQueried)
    );
    assert!(matches!(
        core.begin(0, caller, &reg(Operation::QueryValue, &outside, &x)),
        Step::Query { .. }
    ));
    // A malformed scope is refused and the one in force kept.
    let mut out = [0u8; 64];
    let r = core.on_user_message(&[0x19, 0, 9, 0, 0, 0, 0, 0, 0], &mut out);
    assert_eq!(
        SendResult::decode(MessageType::SetReadScope, &out[..r.written])
            .expect("send result decodes")
            .status(),
        SendStatus::Malformed
    );
    assert_eq!(core.read_scope_len(), Some(1));
    // An empty scope: no read is queried.
    assert_eq!(send_scope(&mut core, &[]), SendStatus::Ok);
    assert_eq!(
        core.begin(0, caller, &reg(Operation::QueryValue, &outside, &x)),
        Step::Allow(Why::ReadNotQueried)
    );
    // A new Hello drops the scope: everything is queried again until the service resends it.
    status(
        &mut core,
        ControlRepr::Hello {
            protocol_version: 1,
        },
    );
    assert_eq!(core.read_scope_len(), None);
}

#[test]
fn a_read_scope_before_the_handshake_is_refused() {
    let mut core = KernelCore::new(1);
    core.on_client_connected(SERVICE_PID).expect("client");
    assert_eq!(send_scope(&mut core, &[]), SendStatus::HandshakeRequired);
    assert_eq!(core.read_scope_len(), None);
}

#[test]
fn query_session_names_the_session_of_a_tracked_process_and_nothing_else() {
    let mut core = connected();
    let query =
        |core: &mut KernelCore, process_id| send(core, ControlRepr::QuerySession { process_id });
    // The root, and a child the kernel tracked by creation (its announcement to the service is
    // one-way and may not have been read yet): both are answered with the session's public id.
    assert_eq!(
        query(&mut core, ROOT),
        SendResult::Session { session_id: 1 }
    );
    assert!(core.on_process_created(2000, ROOT, ROOT, &[]).is_some());
    assert_eq!(
        query(&mut core, 2000),
        SendResult::Session { session_id: 1 }
    );
    // A process outside every session, and one that has exited, are NotFound.
    let not_found = SendResult::Status {
        message_type: MessageType::QuerySession,
        status: SendStatus::NotFound,
    };
    assert_eq!(query(&mut core, 3000), not_found);
    core.on_process_exited(2000);
    assert_eq!(query(&mut core, 2000), not_found);
    // Once the session ends, its root is in no session either.
    assert_eq!(
        status(
            &mut core,
            ControlRepr::UnregisterSession {
                session_token: TOKEN
            }
        ),
        SendStatus::Ok
    );
    assert_eq!(query(&mut core, ROOT), not_found);
}

#[test]
fn query_session_needs_the_handshake() {
    let mut core = KernelCore::new(7);
    core.on_client_connected(SERVICE_PID).expect("first client");
    assert_eq!(
        status(&mut core, ControlRepr::QuerySession { process_id: ROOT }),
        SendStatus::HandshakeRequired
    );
}

#[test]
fn a_refused_hold_is_denied_and_the_service_is_told_its_ticket() {
    use agentsh_kcore::pending::MAX_HOLDS_PER_SESSION;
    let mut core = connected();
    let key = u(APP);
    // The session takes its whole quota of holds (one thread each).
    for i in 0..MAX_HOLDS_PER_SESSION as u32 {
        let name = u(&format!("v{i}"));
        let req = reg(Operation::SetValue, &key, &name);
        let reply = pending_reply(i + 1, 60);
        assert!(matches!(
            decide(&mut core, 0, ROOT, &req, QueryOutcome::Reply(&reply)),
            Verdict::Hold { .. }
        ));
    }
    while core.next_notification().is_some() {}
    // One more pending answer: refused, denied, and a HoldRefused notification names its ticket.
    let name = u("one-too-many");
    let req = reg(Operation::SetValue, &key, &name);
    let reply = pending_reply(9999, 60);
    assert_eq!(
        decide(&mut core, 0, ROOT, &req, QueryOutcome::Reply(&reply)),
        Verdict::Deny(Why::HoldRefused)
    );
    let n = decision(core.next_notification().expect("the refusal is reported"));
    assert_eq!(n.reason, NotifyReason::HoldRefused);
    assert_eq!(n.flags, 9999, "the refused approval's ticket");
    assert!(!n.allowed);
    assert_eq!(n.session_token, TOKEN);
    assert_eq!(n.process_id, ROOT);
    // It survives the wire: the service decodes the ticket from the flags field.
    let repr = n.to_repr();
    assert_eq!(repr.reason, NotifyReason::HoldRefused);
    assert_eq!(repr.flags, 9999);
    assert!(core.next_notification().is_none());
}
