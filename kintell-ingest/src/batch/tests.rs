//! Property tests of the batch state machine: invariants over random event sequences from reachable states.

use super::*;
use chrono::TimeZone;
use proptest::prelude::*;

fn at(secs: i64) -> DateTime<Utc> {
    // 2024-01-01T00:00:00Z plus `secs`.
    Utc.timestamp_opt(1_704_067_200 + secs, 0)
        .single()
        .expect("a valid instant")
}

fn owner(n: u8) -> LeaseOwner {
    LeaseOwner::new(format!("host-{}", n % 2), u32::from(n), format!("n{n}")).expect("valid owner")
}

/// Any event, at a `now` near the start of 2024, with leases that sometimes end before `now` and checkpoints that
/// sometimes do not add up, so that guards are exercised as often as the happy path.
fn event() -> impl Strategy<Value = BatchEvent> {
    let now = (0i64..600).prop_map(at);
    let lease = -5i64..120;
    prop_oneof![
        1 => (any::<u8>(), lease.clone(), now.clone()).prop_map(|(o, l, now)| BatchEvent::Start {
            owner: owner(o % 4),
            lease_until: now + chrono::Duration::seconds(l),
            now,
        }),
        8 => (0u64..3, 0u64..3, 0u64..3, 0u64..3, 0u64..4, lease.clone(), now.clone()).prop_map(
            |(inserted, updated, skipped, errors, off, l, now)| BatchEvent::Checkpoint {
                // Mostly consistent; sometimes one more row than the parts.
                rows: inserted + updated + skipped + errors + u64::from(off == 0),
                inserted,
                updated,
                skipped,
                errors,
                lease_until: now + chrono::Duration::seconds(l),
                now,
            }
        ),
        1 => ("[a-z ]{0,8}", now.clone()).prop_map(|(reason, now)| BatchEvent::Pause { reason, now }),
        1 => now.clone().prop_map(|now| BatchEvent::Cancel { now }),
        3 => now.clone().prop_map(|now| BatchEvent::Complete { now }),
        1 => ("[a-z ]{0,8}", now.clone()).prop_map(|(error, now)| BatchEvent::Fail { error, now }),
        1 => (any::<u8>(), lease.clone(), now.clone()).prop_map(|(o, l, now)| BatchEvent::Resume {
            owner: owner(o % 4),
            lease_until: now + chrono::Duration::seconds(l),
            now,
        }),
        1 => (any::<u8>(), lease, any::<bool>(), now.clone()).prop_map(|(o, l, holder_dead, now)| {
            BatchEvent::Takeover {
                owner: owner(o % 4),
                lease_until: now + chrono::Duration::seconds(l),
                holder_dead,
                now,
            }
        }),
        1 => now.clone().prop_map(|now| BatchEvent::RequestPause { now }),
        1 => now.prop_map(|now| BatchEvent::RequestCancel { now }),
    ]
}

fn counters(b: &Batch) -> [u64; 6] {
    [
        b.inserted_rows(),
        b.updated_rows(),
        b.skipped_rows(),
        b.error_rows(),
        b.success_rows(),
        b.last_processed_row(),
    ]
}

/// A state reached from `pending` by `events`, with each step's outcome.
fn run(total: u64, events: &[BatchEvent]) -> (Batch, Vec<Result<BatchStatus, TransitionError>>) {
    let mut b = Batch::new(total);
    let outcomes = events
        .iter()
        .map(|e| b.step(e).map(|()| b.status()))
        .collect();
    (b, outcomes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn invariants_hold_along_any_sequence(
        total in 0u64..16,
        prefix in proptest::collection::vec(event(), 0..40),
        events in proptest::collection::vec(event(), 1..40),
    ) {
        // Any reachable state: whatever the prefix leads to.
        let (mut b, _) = run(total, &prefix);
        for e in &events {
            let before = b.clone();
            let result = b.step(e);
            match &result {
                Err(err) => {
                    prop_assert_eq!(&b, &before, "a refused {} changed the state", e.kind());
                    prop_assert_eq!(err.from_status(), before.status());
                    prop_assert_eq!(err.event(), e.kind());
                    prop_assert!(
                        err.to_string().starts_with(&format!("cannot {} a batch that is {}", e.kind(), before.status())),
                        "{}", err
                    );
                }
                Ok(()) => {
                    prop_assert_eq!(Some(b.status()), transition_target(before.status(), e.kind()));
                    prop_assert!(!before.is_terminal(), "{} left terminal {}", e.kind(), before.status());
                }
            }
            for (old, new) in counters(&before).iter().zip(counters(&b).iter()) {
                prop_assert!(new >= old, "a counter went down: {:?} -> {:?}", counters(&before), counters(&b));
            }
            prop_assert_eq!(b.success_rows() + b.error_rows() + b.skipped_rows(), b.last_processed_row());
            prop_assert!(b.last_processed_row() <= b.total_rows());
            prop_assert_eq!(b.total_rows(), total);
            prop_assert_eq!(b.lease().is_some(), b.status() == BatchStatus::Running);
            // Every reachable state is one a database row may hold, and survives serde.
            prop_assert_eq!(Batch::try_from(b.to_record()), Ok(b.clone()));
            let json = serde_json::to_string(&b).expect("serialises");
            prop_assert_eq!(serde_json::from_str::<Batch>(&json).expect("parses back"), b.clone());
        }
    }

    #[test]
    fn replay_is_deterministic(
        total in 0u64..16,
        events in proptest::collection::vec(event(), 0..60),
    ) {
        prop_assert_eq!(run(total, &events), run(total, &events));
    }

    #[test]
    fn terminal_states_refuse_everything(
        total in 0u64..10,
        prefix in proptest::collection::vec(event(), 0..60),
        e in event(),
    ) {
        let (b, _) = run(total, &prefix);
        if b.is_terminal() {
            prop_assert_eq!(b.apply(&e), Err(TransitionError::Illegal { from: b.status(), event: e.kind() }));
        }
    }

    #[test]
    fn takeover_needs_an_expired_lease_or_a_dead_holder(
        started in 0i64..100,
        lease in 1i64..100,
        later in 0i64..200,
        holder_dead in any::<bool>(),
    ) {
        let b = Batch::new(5)
            .apply(&BatchEvent::Start { owner: owner(0), lease_until: at(started + lease), now: at(started) })
            .expect("starts");
        let now = at(started + later);
        let result = b.apply(&BatchEvent::Takeover {
            owner: owner(1),
            lease_until: now + chrono::Duration::seconds(60),
            holder_dead,
            now,
        });
        let expired = later >= lease;
        prop_assert_eq!(result.is_ok(), expired || holder_dead, "{:?}", result);
        if let Ok(taken) = result {
            prop_assert_eq!(taken.lease_owner(), Some(&owner(1)));
            prop_assert_eq!(taken.started_at(), Some(at(started)));
        }
    }

    #[test]
    fn complete_needs_every_row(total in 0u64..20, done in 0u64..20) {
        let done = done.min(total);
        let b = Batch::new(total)
            .apply(&BatchEvent::Start { owner: owner(0), lease_until: at(60), now: at(0) })
            .and_then(|b| b.apply(&BatchEvent::Checkpoint {
                rows: done, inserted: done, updated: 0, skipped: 0, errors: 0, lease_until: at(70), now: at(10),
            }))
            .expect("starts and checkpoints");
        let result = b.apply(&BatchEvent::Complete { now: at(20) });
        if done == total {
            let c = result.expect("completes");
            prop_assert_eq!(c.completed_at(), Some(at(20)));
            prop_assert_eq!(c.lease(), None);
        } else {
            prop_assert_eq!(result, Err(TransitionError::Incomplete { processed: done, total }));
        }
    }
}

#[test]
fn illegal_records_are_refused() {
    let good = Batch::new(3)
        .apply(&BatchEvent::Start {
            owner: owner(0),
            lease_until: at(60),
            now: at(0),
        })
        .expect("starts")
        .to_record();
    let cases: Vec<(StateRecord, &str)> = vec![
        (
            StateRecord {
                success_rows: 1,
                ..good.clone()
            },
            "success_rows 1 is not inserted_rows 0 + updated_rows 0",
        ),
        (
            StateRecord {
                error_rows: 1,
                ..good.clone()
            },
            "success_rows 0 + error_rows 1 + skipped_rows 0 is not last_processed_row 0",
        ),
        (
            StateRecord {
                error_rows: 4,
                last_processed_row: 4,
                ..good.clone()
            },
            "last_processed_row 4 is past total_rows 3",
        ),
        (
            StateRecord {
                lease_expires_at: None,
                ..good.clone()
            },
            "lease_owner and lease_expires_at must be both set or both empty",
        ),
        (
            StateRecord {
                lease_owner: None,
                lease_expires_at: None,
                ..good.clone()
            },
            "a running batch must hold a lease",
        ),
        (
            StateRecord {
                status: BatchStatus::Paused,
                ..good.clone()
            },
            "a paused batch cannot hold a lease",
        ),
        (
            StateRecord {
                status: BatchStatus::Pending,
                lease_owner: None,
                lease_expires_at: None,
                ..good.clone()
            },
            "a pending batch has neither processed rows nor started_at",
        ),
        (
            StateRecord {
                started_at: None,
                ..good.clone()
            },
            "a running batch must have started_at",
        ),
        (
            StateRecord {
                completed_at: Some(at(5)),
                ..good.clone()
            },
            "completed_at must be set exactly when the batch is completed (status running)",
        ),
        (
            StateRecord {
                status: BatchStatus::Completed,
                lease_owner: None,
                lease_expires_at: None,
                completed_at: Some(at(5)),
                ..good.clone()
            },
            "a completed batch has processed 0 of 3 rows",
        ),
        (
            StateRecord {
                status: BatchStatus::Failed,
                lease_owner: None,
                lease_expires_at: None,
                requested_action: Some(RequestedAction::Cancel),
                ..good.clone()
            },
            "a failed batch cannot carry a cancel request",
        ),
    ];
    for (record, message) in cases {
        let err = Batch::try_from(record).expect_err(message);
        assert_eq!(err.to_string(), message);
    }
    assert!(Batch::try_from(good).is_ok());
}

#[test]
fn requested_event_honours_the_request() {
    let running = Batch::new(3)
        .apply(&BatchEvent::Start {
            owner: owner(0),
            lease_until: at(60),
            now: at(0),
        })
        .expect("starts");
    assert_eq!(running.requested_event(at(1)), None);
    let pause = running
        .apply(&BatchEvent::RequestPause { now: at(1) })
        .expect("records the request");
    let honoured = pause.requested_event(at(2)).expect("an event");
    assert_eq!(
        honoured,
        BatchEvent::Pause {
            reason: PAUSE_REQUESTED_REASON.to_owned(),
            now: at(2)
        }
    );
    let paused = pause.apply(&honoured).expect("pauses");
    assert_eq!(
        (paused.status(), paused.requested_action()),
        (BatchStatus::Paused, None)
    );
    let cancel = pause
        .apply(&BatchEvent::RequestCancel { now: at(3) })
        .expect("cancel replaces pause");
    assert_eq!(
        cancel.requested_event(at(4)),
        Some(BatchEvent::Cancel { now: at(4) })
    );
    let still_cancel = cancel
        .apply(&BatchEvent::RequestPause { now: at(5) })
        .expect("a pause request does not weaken a cancel request");
    assert_eq!(
        still_cancel.requested_action(),
        Some(RequestedAction::Cancel)
    );
}

#[test]
fn every_message_names_state_and_event() {
    let running = Batch::new(2)
        .apply(&BatchEvent::Start {
            owner: owner(0),
            lease_until: at(60),
            now: at(0),
        })
        .expect("starts");
    let cases = [
        (
            Batch::new(2).apply(&BatchEvent::Complete { now: at(0) }),
            "cannot Complete a batch that is pending",
        ),
        (
            running.apply(&BatchEvent::Checkpoint {
                rows: 2,
                inserted: 1,
                updated: 0,
                skipped: 0,
                errors: 0,
                lease_until: at(70),
                now: at(1),
            }),
            "cannot Checkpoint a batch that is running: 2 rows is not 1 inserted + 0 updated + 0 skipped + 0 errors",
        ),
        (
            running.apply(&BatchEvent::Checkpoint {
                rows: 3,
                inserted: 3,
                updated: 0,
                skipped: 0,
                errors: 0,
                lease_until: at(70),
                now: at(1),
            }),
            "cannot Checkpoint a batch that is running: 0 rows processed + 3 would pass its 2 rows",
        ),
        (
            running.apply(&BatchEvent::Complete { now: at(1) }),
            "cannot Complete a batch that is running: 0 of 2 rows processed",
        ),
        (
            running.apply(&BatchEvent::Takeover {
                owner: owner(1),
                lease_until: at(90),
                holder_dead: false,
                now: at(30),
            }),
            "cannot Takeover a batch that is running: its lease is held by host-0:0:n0 until 2024-01-01T00:01:00Z",
        ),
        (
            Batch::new(2).apply(&BatchEvent::Start {
                owner: owner(0),
                lease_until: at(0),
                now: at(0),
            }),
            "cannot Start a batch that is pending: a lease until 2024-01-01T00:00:00Z is over at 2024-01-01T00:00:00Z",
        ),
    ];
    for (result, message) in cases {
        assert_eq!(
            result.map(|b| b.status()).expect_err(message).to_string(),
            message
        );
    }
}
