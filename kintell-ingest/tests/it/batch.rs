//! Tests of the batch area: the transition table, pair by pair, and event scenarios, each rendered as text.
//!
//! Scenarios are written one event per line, `@T event args`, with `T` seconds after 2024-01-01T00:00:00Z:
//! `start A until 60`, `checkpoint 3 = 1+1+1+0 until 65` (rows = inserted+updated+skipped+errors), `pause why`,
//! `fail why`, `cancel`, `complete`, `resume B until 90`, `takeover B until 90 [dead]`, `request-pause`,
//! `request-cancel`. Owners `A` and `B` run on one host, `C` on another.

use chrono::{DateTime, TimeZone, Utc};
use expect_test::{Expect, expect};
use kintell_ingest::batch::{
    Batch, BatchEvent, BatchEventKind, ErrorSample, ErrorSummary, LeaseOwner, StateRecord,
    TransitionError, transition_target,
};
use kintell_ingest::domain::BatchStatus;

const T0: i64 = 1_704_067_200;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(T0 + secs, 0)
        .single()
        .expect("a valid instant")
}

fn rel(t: DateTime<Utc>) -> String {
    format!("@{}", t.timestamp() - T0)
}

fn owner(name: &str) -> LeaseOwner {
    match name {
        "A" => LeaseOwner::new("worker-1", 101, "a"),
        "B" => LeaseOwner::new("worker-1", 202, "b"),
        "C" => LeaseOwner::new("worker-2", 303, "c"),
        other => panic!("unknown owner {other}"),
    }
    .expect("valid owner")
}

fn owner_name(o: &LeaseOwner) -> &'static str {
    ["A", "B", "C"]
        .into_iter()
        .find(|n| &owner(n) == o)
        .unwrap_or("?")
}

fn secs(word: &str) -> i64 {
    word.parse()
        .unwrap_or_else(|_| panic!("not a number of seconds: {word}"))
}

/// Parses one scenario line into an event.
fn event(line: &str) -> BatchEvent {
    let (time, rest) = line
        .trim()
        .split_once(' ')
        .unwrap_or_else(|| panic!("no event in {line:?}"));
    let now = at(secs(time.trim_start_matches('@')));
    let words: Vec<&str> = rest.split_whitespace().collect();
    let text = |from: usize| words.get(from..).map(|w| w.join(" ")).unwrap_or_default();
    let lease = |o: usize, u: usize| (owner(words[o]), at(secs(words[u])));
    match words[0] {
        "start" => {
            let (owner, lease_until) = lease(1, 3);
            BatchEvent::Start {
                owner,
                lease_until,
                now,
            }
        }
        "resume" => {
            let (owner, lease_until) = lease(1, 3);
            BatchEvent::Resume {
                owner,
                lease_until,
                now,
            }
        }
        "takeover" => {
            let (owner, lease_until) = lease(1, 3);
            let holder_dead = words.get(4) == Some(&"dead");
            BatchEvent::Takeover {
                owner,
                lease_until,
                holder_dead,
                now,
            }
        }
        "checkpoint" => {
            let parts: Vec<u64> = words[3]
                .split('+')
                .map(|p| p.parse().expect("a count"))
                .collect();
            BatchEvent::Checkpoint {
                rows: words[1].parse().expect("a count"),
                inserted: parts[0],
                updated: parts[1],
                skipped: parts[2],
                errors: parts[3],
                lease_until: at(secs(words[5])),
                now,
            }
        }
        "pause" => BatchEvent::Pause {
            reason: text(1),
            now,
        },
        "fail" => BatchEvent::Fail {
            error: text(1),
            now,
        },
        "cancel" => BatchEvent::Cancel { now },
        "complete" => BatchEvent::Complete { now },
        "request-pause" => BatchEvent::RequestPause { now },
        "request-cancel" => BatchEvent::RequestCancel { now },
        other => panic!("unknown event {other}"),
    }
}

/// One line per state: status, rows, counters, then whatever else is set.
fn render(b: &Batch) -> String {
    let mut s = format!(
        "{} {}/{} ins {} upd {} skip {} err {}",
        b.status(),
        b.last_processed_row(),
        b.total_rows(),
        b.inserted_rows(),
        b.updated_rows(),
        b.skipped_rows(),
        b.error_rows()
    );
    if let Some(lease) = b.lease() {
        s += &format!(
            " | lease {} until {}",
            owner_name(&lease.owner),
            rel(lease.expires_at)
        );
    }
    if let Some(t) = b.started_at() {
        s += &format!(" | started {}", rel(t));
    }
    if let Some(t) = b.completed_at() {
        s += &format!(" | completed {}", rel(t));
    }
    if let Some(e) = b.last_error() {
        s += &format!(" | last_error {e:?}");
    }
    if let Some(a) = b.requested_action() {
        s += &format!(" | requested {a}");
    }
    s
}

/// Applies the scenario to a new batch of `total` rows and compares the step-by-step rendering.
fn check(total: u64, scenario: &str, expect: Expect) {
    let mut batch = Batch::new(total);
    let mut out = format!("         {}\n", render(&batch));
    for line in scenario.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let before = batch.clone();
        match batch.step(&event(line)) {
            Ok(()) => out += &format!("{line}\n      -> {}\n", render(&batch)),
            Err(e) => {
                assert_eq!(batch, before, "a refused event changed the state");
                out += &format!("{line}\n      !! {e}\n");
            }
        }
    }
    expect.assert_eq(&out);
}

/// A batch of 4 rows in `status`, reached by legal events, with 2 rows processed where it has run.
fn in_status(status: BatchStatus) -> Batch {
    let path: &[&str] = match status {
        BatchStatus::Pending => &[],
        BatchStatus::Running => &["@0 start A until 60", "@1 checkpoint 2 = 1+1+0+0 until 61"],
        BatchStatus::Paused => &[
            "@0 start A until 60",
            "@1 checkpoint 2 = 1+1+0+0 until 61",
            "@2 pause low disk",
        ],
        BatchStatus::Failed => &[
            "@0 start A until 60",
            "@1 checkpoint 2 = 1+1+0+0 until 61",
            "@2 fail boom",
        ],
        BatchStatus::Completed => &[
            "@0 start A until 60",
            "@1 checkpoint 4 = 4+0+0+0 until 61",
            "@2 complete",
        ],
        BatchStatus::Cancelled => &["@0 start A until 60", "@2 cancel"],
    };
    let mut b = Batch::new(4);
    for line in path {
        b.step(&event(line)).expect("a legal path");
    }
    assert_eq!(b.status(), status);
    b
}

/// The event of each kind used for the table, at @100 when A's lease (until @61) has expired.
fn sample_event(kind: BatchEventKind) -> &'static str {
    match kind {
        BatchEventKind::Start => "@100 start B until 160",
        BatchEventKind::Checkpoint => "@100 checkpoint 1 = 0+0+1+0 until 160",
        BatchEventKind::Pause => "@100 pause asked",
        BatchEventKind::Cancel => "@100 cancel",
        BatchEventKind::Complete => "@100 complete",
        BatchEventKind::Fail => "@100 fail broken",
        BatchEventKind::Resume => "@100 resume B until 160",
        BatchEventKind::Takeover => "@100 takeover B until 160",
        BatchEventKind::RequestPause => "@100 request-pause",
        BatchEventKind::RequestCancel => "@100 request-cancel",
    }
}

#[test]
fn every_state_event_pair() {
    let mut out = String::new();
    for status in BatchStatus::ALL {
        let b = in_status(*status);
        out += &format!("{}\n", render(&b));
        for kind in BatchEventKind::ALL {
            let e = event(sample_event(*kind));
            assert_eq!(e.kind(), *kind);
            match b.apply(&e) {
                Ok(next) => {
                    assert_eq!(Some(next.status()), transition_target(*status, *kind));
                    out += &format!("  {:<13} -> {}\n", kind.as_str(), render(&next));
                }
                Err(err) => {
                    // Outside the table only `Illegal`; inside it, only a guard refuses.
                    let illegal = matches!(err, TransitionError::Illegal { .. });
                    assert_eq!(
                        transition_target(*status, *kind).is_none(),
                        illegal,
                        "{err}"
                    );
                    out += &format!("  {:<13} !! {err}\n", kind.as_str());
                }
            }
        }
    }
    expect![[r#"
        pending 0/4 ins 0 upd 0 skip 0 err 0
          Start         -> running 0/4 ins 0 upd 0 skip 0 err 0 | lease B until @160 | started @100
          Checkpoint    !! cannot Checkpoint a batch that is pending
          Pause         !! cannot Pause a batch that is pending
          Cancel        -> cancelled 0/4 ins 0 upd 0 skip 0 err 0
          Complete      !! cannot Complete a batch that is pending
          Fail          -> failed 0/4 ins 0 upd 0 skip 0 err 0 | last_error "broken"
          Resume        -> running 0/4 ins 0 upd 0 skip 0 err 0 | lease B until @160 | started @100
          Takeover      !! cannot Takeover a batch that is pending
          RequestPause  -> pending 0/4 ins 0 upd 0 skip 0 err 0 | requested pause
          RequestCancel -> pending 0/4 ins 0 upd 0 skip 0 err 0 | requested cancel
        running 2/4 ins 1 upd 1 skip 0 err 0 | lease A until @61 | started @0
          Start         !! cannot Start a batch that is running
          Checkpoint    -> running 3/4 ins 1 upd 1 skip 1 err 0 | lease A until @160 | started @0
          Pause         -> paused 2/4 ins 1 upd 1 skip 0 err 0 | started @0 | last_error "asked"
          Cancel        -> cancelled 2/4 ins 1 upd 1 skip 0 err 0 | started @0
          Complete      !! cannot Complete a batch that is running: 2 of 4 rows processed
          Fail          -> failed 2/4 ins 1 upd 1 skip 0 err 0 | started @0 | last_error "broken"
          Resume        !! cannot Resume a batch that is running
          Takeover      -> running 2/4 ins 1 upd 1 skip 0 err 0 | lease B until @160 | started @0
          RequestPause  -> running 2/4 ins 1 upd 1 skip 0 err 0 | lease A until @61 | started @0 | requested pause
          RequestCancel -> running 2/4 ins 1 upd 1 skip 0 err 0 | lease A until @61 | started @0 | requested cancel
        paused 2/4 ins 1 upd 1 skip 0 err 0 | started @0 | last_error "low disk"
          Start         !! cannot Start a batch that is paused
          Checkpoint    !! cannot Checkpoint a batch that is paused
          Pause         !! cannot Pause a batch that is paused
          Cancel        -> cancelled 2/4 ins 1 upd 1 skip 0 err 0 | started @0 | last_error "low disk"
          Complete      !! cannot Complete a batch that is paused
          Fail          !! cannot Fail a batch that is paused
          Resume        -> running 2/4 ins 1 upd 1 skip 0 err 0 | lease B until @160 | started @0
          Takeover      !! cannot Takeover a batch that is paused
          RequestPause  !! cannot RequestPause a batch that is paused
          RequestCancel !! cannot RequestCancel a batch that is paused
        completed 4/4 ins 4 upd 0 skip 0 err 0 | started @0 | completed @2
          Start         !! cannot Start a batch that is completed
          Checkpoint    !! cannot Checkpoint a batch that is completed
          Pause         !! cannot Pause a batch that is completed
          Cancel        !! cannot Cancel a batch that is completed
          Complete      !! cannot Complete a batch that is completed
          Fail          !! cannot Fail a batch that is completed
          Resume        !! cannot Resume a batch that is completed
          Takeover      !! cannot Takeover a batch that is completed
          RequestPause  !! cannot RequestPause a batch that is completed
          RequestCancel !! cannot RequestCancel a batch that is completed
        failed 2/4 ins 1 upd 1 skip 0 err 0 | started @0 | last_error "boom"
          Start         !! cannot Start a batch that is failed
          Checkpoint    !! cannot Checkpoint a batch that is failed
          Pause         !! cannot Pause a batch that is failed
          Cancel        -> cancelled 2/4 ins 1 upd 1 skip 0 err 0 | started @0 | last_error "boom"
          Complete      !! cannot Complete a batch that is failed
          Fail          !! cannot Fail a batch that is failed
          Resume        -> running 2/4 ins 1 upd 1 skip 0 err 0 | lease B until @160 | started @0
          Takeover      !! cannot Takeover a batch that is failed
          RequestPause  !! cannot RequestPause a batch that is failed
          RequestCancel !! cannot RequestCancel a batch that is failed
        cancelled 0/4 ins 0 upd 0 skip 0 err 0 | started @0
          Start         !! cannot Start a batch that is cancelled
          Checkpoint    !! cannot Checkpoint a batch that is cancelled
          Pause         !! cannot Pause a batch that is cancelled
          Cancel        !! cannot Cancel a batch that is cancelled
          Complete      !! cannot Complete a batch that is cancelled
          Fail          !! cannot Fail a batch that is cancelled
          Resume        !! cannot Resume a batch that is cancelled
          Takeover      !! cannot Takeover a batch that is cancelled
          RequestPause  !! cannot RequestPause a batch that is cancelled
          RequestCancel !! cannot RequestCancel a batch that is cancelled
    "#]].assert_eq(&out);
}

#[test]
fn a_clean_run() {
    check(
        5,
        "
        @0 start A until 60
        @10 checkpoint 3 = 2+0+1+0 until 70
        @20 checkpoint 2 = 0+1+0+1 until 80
        @30 complete
        ",
        expect![[r#"
                     pending 0/5 ins 0 upd 0 skip 0 err 0
            @0 start A until 60
                  -> running 0/5 ins 0 upd 0 skip 0 err 0 | lease A until @60 | started @0
            @10 checkpoint 3 = 2+0+1+0 until 70
                  -> running 3/5 ins 2 upd 0 skip 1 err 0 | lease A until @70 | started @0
            @20 checkpoint 2 = 0+1+0+1 until 80
                  -> running 5/5 ins 2 upd 1 skip 1 err 1 | lease A until @80 | started @0
            @30 complete
                  -> completed 5/5 ins 2 upd 1 skip 1 err 1 | started @0 | completed @30
        "#]],
    );
}

#[test]
fn checkpoint_guards() {
    check(
        3,
        "
        @0 start A until 60
        @1 checkpoint 2 = 1+0+0+0 until 61
        @2 checkpoint 4 = 4+0+0+0 until 62
        @3 checkpoint 2 = 2+0+0+0 until 3
        @4 checkpoint 0 = 0+0+0+0 until 64
        @5 complete
        @6 checkpoint 3 = 1+1+1+0 until 66
        @7 complete
        ",
        expect![[r#"
                     pending 0/3 ins 0 upd 0 skip 0 err 0
            @0 start A until 60
                  -> running 0/3 ins 0 upd 0 skip 0 err 0 | lease A until @60 | started @0
            @1 checkpoint 2 = 1+0+0+0 until 61
                  !! cannot Checkpoint a batch that is running: 2 rows is not 1 inserted + 0 updated + 0 skipped + 0 errors
            @2 checkpoint 4 = 4+0+0+0 until 62
                  !! cannot Checkpoint a batch that is running: 0 rows processed + 4 would pass its 3 rows
            @3 checkpoint 2 = 2+0+0+0 until 3
                  !! cannot Checkpoint a batch that is running: a lease until 2024-01-01T00:00:03Z is over at 2024-01-01T00:00:03Z
            @4 checkpoint 0 = 0+0+0+0 until 64
                  -> running 0/3 ins 0 upd 0 skip 0 err 0 | lease A until @64 | started @0
            @5 complete
                  !! cannot Complete a batch that is running: 0 of 3 rows processed
            @6 checkpoint 3 = 1+1+1+0 until 66
                  -> running 3/3 ins 1 upd 1 skip 1 err 0 | lease A until @66 | started @0
            @7 complete
                  -> completed 3/3 ins 1 upd 1 skip 1 err 0 | started @0 | completed @7
        "#]],
    );
}

#[test]
fn pause_fail_resume_and_cancel() {
    check(
        4,
        "
        @0 start A until 60
        @1 checkpoint 1 = 1+0+0+0 until 61
        @2 pause operator asked
        @3 checkpoint 1 = 1+0+0+0 until 63
        @50 resume B until 110
        @51 fail connection reset
        @52 resume A until 112
        @53 checkpoint 3 = 0+0+3+0 until 113
        @54 fail disk full
        @55 cancel
        @56 resume A until 116
        ",
        expect![[r#"
                     pending 0/4 ins 0 upd 0 skip 0 err 0
            @0 start A until 60
                  -> running 0/4 ins 0 upd 0 skip 0 err 0 | lease A until @60 | started @0
            @1 checkpoint 1 = 1+0+0+0 until 61
                  -> running 1/4 ins 1 upd 0 skip 0 err 0 | lease A until @61 | started @0
            @2 pause operator asked
                  -> paused 1/4 ins 1 upd 0 skip 0 err 0 | started @0 | last_error "operator asked"
            @3 checkpoint 1 = 1+0+0+0 until 63
                  !! cannot Checkpoint a batch that is paused
            @50 resume B until 110
                  -> running 1/4 ins 1 upd 0 skip 0 err 0 | lease B until @110 | started @0
            @51 fail connection reset
                  -> failed 1/4 ins 1 upd 0 skip 0 err 0 | started @0 | last_error "connection reset"
            @52 resume A until 112
                  -> running 1/4 ins 1 upd 0 skip 0 err 0 | lease A until @112 | started @0
            @53 checkpoint 3 = 0+0+3+0 until 113
                  -> running 4/4 ins 1 upd 0 skip 3 err 0 | lease A until @113 | started @0
            @54 fail disk full
                  -> failed 4/4 ins 1 upd 0 skip 3 err 0 | started @0 | last_error "disk full"
            @55 cancel
                  -> cancelled 4/4 ins 1 upd 0 skip 3 err 0 | started @0 | last_error "disk full"
            @56 resume A until 116
                  !! cannot Resume a batch that is cancelled
        "#]],
    );
}

#[test]
fn requests_are_honoured_between_chunks() {
    check(
        6,
        "
        @0 request-pause
        @1 start A until 60
        @2 checkpoint 2 = 2+0+0+0 until 62
        @3 pause pause requested
        @4 request-pause
        @5 resume A until 65
        @6 request-pause
        @7 request-cancel
        @8 request-pause
        @9 checkpoint 2 = 2+0+0+0 until 69
        @10 cancel
        ",
        expect![[r#"
                     pending 0/6 ins 0 upd 0 skip 0 err 0
            @0 request-pause
                  -> pending 0/6 ins 0 upd 0 skip 0 err 0 | requested pause
            @1 start A until 60
                  -> running 0/6 ins 0 upd 0 skip 0 err 0 | lease A until @60 | started @1 | requested pause
            @2 checkpoint 2 = 2+0+0+0 until 62
                  -> running 2/6 ins 2 upd 0 skip 0 err 0 | lease A until @62 | started @1 | requested pause
            @3 pause pause requested
                  -> paused 2/6 ins 2 upd 0 skip 0 err 0 | started @1 | last_error "pause requested"
            @4 request-pause
                  !! cannot RequestPause a batch that is paused
            @5 resume A until 65
                  -> running 2/6 ins 2 upd 0 skip 0 err 0 | lease A until @65 | started @1
            @6 request-pause
                  -> running 2/6 ins 2 upd 0 skip 0 err 0 | lease A until @65 | started @1 | requested pause
            @7 request-cancel
                  -> running 2/6 ins 2 upd 0 skip 0 err 0 | lease A until @65 | started @1 | requested cancel
            @8 request-pause
                  -> running 2/6 ins 2 upd 0 skip 0 err 0 | lease A until @65 | started @1 | requested cancel
            @9 checkpoint 2 = 2+0+0+0 until 69
                  -> running 4/6 ins 4 upd 0 skip 0 err 0 | lease A until @69 | started @1 | requested cancel
            @10 cancel
                  -> cancelled 4/6 ins 4 upd 0 skip 0 err 0 | started @1
        "#]],
    );
}

#[test]
fn takeover_needs_an_expired_lease_or_a_dead_holder() {
    check(
        4,
        "
        @0 start A until 60
        @30 takeover C until 90
        @30 takeover B until 90 dead
        @89 takeover A until 150
        @90 takeover A until 150
        @91 checkpoint 4 = 4+0+0+0 until 151
        @92 complete
        ",
        expect![[r#"
                     pending 0/4 ins 0 upd 0 skip 0 err 0
            @0 start A until 60
                  -> running 0/4 ins 0 upd 0 skip 0 err 0 | lease A until @60 | started @0
            @30 takeover C until 90
                  !! cannot Takeover a batch that is running: its lease is held by worker-1:101:a until 2024-01-01T00:01:00Z
            @30 takeover B until 90 dead
                  -> running 0/4 ins 0 upd 0 skip 0 err 0 | lease B until @90 | started @0
            @89 takeover A until 150
                  !! cannot Takeover a batch that is running: its lease is held by worker-1:202:b until 2024-01-01T00:01:30Z
            @90 takeover A until 150
                  -> running 0/4 ins 0 upd 0 skip 0 err 0 | lease A until @150 | started @0
            @91 checkpoint 4 = 4+0+0+0 until 151
                  -> running 4/4 ins 4 upd 0 skip 0 err 0 | lease A until @151 | started @0
            @92 complete
                  -> completed 4/4 ins 4 upd 0 skip 0 err 0 | started @0 | completed @92
        "#]],
    );
}

#[test]
fn failures_before_any_row_and_orphans() {
    check(
        10,
        "
        @0 fail too many invalid rows: 6 of 10 (limit 5)
        @1 checkpoint 1 = 1+0+0+0 until 61
        @2 resume A until 62
        ",
        expect![[r#"
                     pending 0/10 ins 0 upd 0 skip 0 err 0
            @0 fail too many invalid rows: 6 of 10 (limit 5)
                  -> failed 0/10 ins 0 upd 0 skip 0 err 0 | last_error "too many invalid rows: 6 of 10 (limit 5)"
            @1 checkpoint 1 = 1+0+0+0 until 61
                  !! cannot Checkpoint a batch that is failed
            @2 resume A until 62
                  -> running 0/10 ins 0 upd 0 skip 0 err 0 | lease A until @62 | started @2
        "#]],
    );
    check(
        2,
        "
        @0 resume A until 60
        @1 checkpoint 2 = 1+1+0+0 until 61
        @2 complete
        ",
        expect![[r#"
                     pending 0/2 ins 0 upd 0 skip 0 err 0
            @0 resume A until 60
                  -> running 0/2 ins 0 upd 0 skip 0 err 0 | lease A until @60 | started @0
            @1 checkpoint 2 = 1+1+0+0 until 61
                  -> running 2/2 ins 1 upd 1 skip 0 err 0 | lease A until @61 | started @0
            @2 complete
                  -> completed 2/2 ins 1 upd 1 skip 0 err 0 | started @0 | completed @2
        "#]],
    );
    check(
        0,
        "
        @0 start A until 60
        @0 complete
        @1 resume A until 61
        ",
        expect![[r#"
                     pending 0/0 ins 0 upd 0 skip 0 err 0
            @0 start A until 60
                  -> running 0/0 ins 0 upd 0 skip 0 err 0 | lease A until @60 | started @0
            @0 complete
                  -> completed 0/0 ins 0 upd 0 skip 0 err 0 | started @0 | completed @0
            @1 resume A until 61
                  !! cannot Resume a batch that is completed
        "#]],
    );
}

#[test]
fn the_record_serialises_as_the_columns() {
    let b = in_status(BatchStatus::Running);
    // Rendered from the value itself, so the key order is the struct's whatever serde_json's map features are.
    expect![[r#"
        {
          "status": "running",
          "total_rows": 4,
          "success_rows": 2,
          "inserted_rows": 1,
          "updated_rows": 1,
          "skipped_rows": 0,
          "error_rows": 0,
          "last_processed_row": 2,
          "started_at": "2024-01-01T00:00:00Z",
          "completed_at": null,
          "lease_owner": "worker-1:101:a",
          "lease_expires_at": "2024-01-01T00:01:01Z",
          "last_error": null,
          "requested_action": null
        }"#]]
    .assert_eq(&serde_json::to_string_pretty(&b).expect("renders"));
    let json = serde_json::to_value(&b).expect("serialises");
    let back: Batch = serde_json::from_value(json.clone()).expect("parses back");
    assert_eq!(back, b);
    let record: StateRecord = serde_json::from_value(json).expect("a record");
    assert_eq!(Batch::try_from(record), Ok(b));
    let mut broken = serde_json::to_value(in_status(BatchStatus::Paused)).expect("serialises");
    broken["error_rows"] = 7.into();
    let err = serde_json::from_value::<Batch>(broken).expect_err("counters do not add up");
    expect!["success_rows 2 + error_rows 7 + skipped_rows 0 is not last_processed_row 2"]
        .assert_eq(&err.to_string());
}

#[test]
fn error_summary_of_a_run() {
    let mut summary = ErrorSummary::new();
    let mut chunk = ErrorSummary::new();
    for row in [14, 12] {
        chunk.record(ErrorSample::new(
            row,
            row + 1,
            "invalid_email",
            Some("participant_email"),
            "not an email",
        ));
    }
    summary.merge(&chunk);
    let mut chunk = ErrorSummary::new();
    chunk.record(ErrorSample::new(
        3,
        4,
        "missing_field",
        Some("date"),
        "date is required",
    ));
    summary.merge(&chunk);
    assert_eq!(
        serde_json::to_value(&summary).expect("serialises"),
        summary.to_json()
    );
    expect![[r#"
        {
          "by_code": {
            "invalid_email": 2,
            "missing_field": 1
          },
          "first": [
            {
              "row": 3,
              "line": 4,
              "code": "missing_field",
              "field": "date",
              "message": "date is required"
            },
            {
              "row": 12,
              "line": 13,
              "code": "invalid_email",
              "field": "participant_email",
              "message": "not an email"
            },
            {
              "row": 14,
              "line": 15,
              "code": "invalid_email",
              "field": "participant_email",
              "message": "not an email"
            }
          ]
        }"#]]
    .assert_eq(&serde_json::to_string_pretty(&summary).expect("renders"));
}
