//! Tests of the pure pacing decisions.
use super::*;

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
}

/// X's answer: `remaining` of 100 left, the window ending at `reset`.
fn x(remaining: u32, reset: i64) -> Heard {
    Heard::Budget {
        budget: RateBudget { limit: Some(100), remaining, reset_at: t(reset) },
        rate_limited: false,
    }
}

/// A reservation with the default lease as the time after which a call is dead.
fn reserve_now(b: &Budget, wanted: usize, now: DateTime<Utc>) -> (Budget, Vec<Verdict>) {
    reserve(b, wanted, now, LEASE)
}

const LEASE: Duration = Duration::from_secs(60);

fn goes(verdicts: &[Verdict]) -> usize {
    verdicts.iter().filter(|v| **v == Verdict::Go).count()
}

/// A budget 100 calls a window, `remaining` left, in a window from 0 s to 900 s.
fn known(remaining: i32) -> Budget {
    Budget {
        window_limit: Some(100),
        remaining,
        window_started: Some(t(0)),
        reset_at: Some(t(900)),
        ..Budget::default()
    }
}

#[test]
fn with_nothing_known_calls_go_and_the_first_budget_counts_those_in_flight() {
    let (b, v) = reserve_now(&Budget::default(), 16, t(0));
    assert_eq!(goes(&v), 16);
    assert_eq!(b.in_flight, 16);
    // The first answer says 99 left; the 15 other calls are still out and will count.
    let b = observe(&b, x(99, 900), t(1));
    assert_eq!((b.remaining, b.reset_at, b.window_limit), (84, Some(t(900)), Some(100)));
    // Their answers only lower the count, never raise it.
    let b = observe(&b, x(90, 900), t(1));
    assert_eq!(b.remaining, 84);
    let b = observe(&b, x(80, 900), t(1));
    assert_eq!(b.remaining, 80);
}

#[test]
fn answers_out_of_order_raise_the_count_only_from_the_freshest() {
    // Three calls out with nothing known; the platform counted them A, B, C (99, 98, 97 left).
    let (b, _) = reserve_now(&Budget::default(), 3, t(0));
    // C answers first: A and B may not be counted yet.
    let b = observe(&b, x(97, 900), t(1));
    assert_eq!(b.remaining, 95);
    // A's answer is older than C's: its 99 counts for nothing, but one call fewer is out.
    let b = observe(&b, x(99, 900), t(1));
    assert_eq!(b.remaining, 96);
    // A reservation meanwhile, then B's answer (older too), then the new call's (the freshest).
    let (b, v) = reserve_now(&b, 1, t(1));
    assert_eq!((v[0], b.remaining), (Verdict::Go, 95));
    let b = observe(&b, x(98, 900), t(1));
    assert_eq!(b.remaining, 96, "C's 97 less the one call out");
    let b = observe(&b, x(96, 900), t(2));
    assert_eq!((b.remaining, b.in_flight), (96, 0), "nothing out: the platform's count is exact");
}

#[test]
fn a_spent_window_with_calls_out_is_looked_at_again_soon() {
    let (b, v) = reserve_now(&known(2), 3, t(10));
    assert_eq!(v[..2], [Verdict::Go, Verdict::Go]);
    // Their answers may still raise the count: not a window later, a moment later.
    assert_eq!(v[2], Verdict::Wait(t(11)));
    assert_eq!(b.in_flight, 2);
}

#[test]
fn answers_without_a_budget_end_calls_made_in_the_dark() {
    let (b, _) = reserve_now(&Budget::default(), 3, t(0));
    let b = observe(&b, Heard::Nothing, t(1));
    let b = observe(&b, Heard::Nothing, t(1));
    assert_eq!(b.in_flight, 1);
    let b = observe(&b, x(99, 900), t(2));
    assert_eq!(b.remaining, 99, "only the call that answered was out");
}

#[test]
fn a_spent_window_holds_posts_for_the_windows_they_need() {
    let (b, v) = reserve_now(&known(0), 248, t(10));
    assert_eq!(goes(&v), 0);
    let waits: Vec<DateTime<Utc>> = v
        .iter()
        .filter_map(|v| match v {
            Verdict::Wait(at) => Some(*at),
            Verdict::Go => None,
        })
        .collect();
    // 100 at the reset, 100 one window later, the last 48 one more window later.
    assert_eq!(waits.iter().filter(|at| **at == t(900)).count(), 100);
    assert_eq!(waits.iter().filter(|at| **at == t(1800)).count(), 100);
    assert_eq!(waits.iter().filter(|at| **at == t(2700)).count(), 48);
    assert_eq!((b.remaining, b.booked_at, b.booked), (0, Some(t(2700)), 48));
}

#[test]
fn a_new_window_is_whole_and_its_end_is_learnt_from_the_next_answer() {
    let (b, v) = reserve_now(&known(0), 100, t(901));
    assert_eq!(goes(&v), 100, "a whole window after the reset");
    assert_eq!((b.reset_at, b.last_reset, b.remaining), (None, Some(t(900)), 0));
    // More posts in the same instant: the end is not known yet, look again soon.
    let (b, v) = reserve_now(&b, 1, t(901));
    assert_eq!(v, [Verdict::Wait(t(902))]);
    // A late answer naming the old window teaches nothing of the new one.
    let b = observe(&b, x(0, 900), t(901));
    assert_eq!((b.reset_at, b.remaining), (None, 0));
    // The new window's answers tell its end; the last one is exact.
    let mut b = b;
    for left in (0..99).rev() {
        b = observe(&b, x(left, 1801), t(902));
    }
    assert_eq!((b.reset_at, b.remaining, b.in_flight), (Some(t(1801)), 0, 0));
    let (_, v) = reserve_now(&b, 1, t(903));
    assert_eq!(v, [Verdict::Wait(t(1801))]);
}

#[test]
fn a_rate_limit_spends_the_window_until_its_reset() {
    let b = known(40);
    let f = lifeline_platforms::Failure::RateLimited {
        retry_after: Some(Duration::from_secs(300)),
        detail: "X 429".into(),
    };
    let b = observe(&b, heard_from_failure(&f, t(600)), t(600));
    assert_eq!((b.remaining, b.reset_at), (0, Some(t(900))));
    let (_, v) = reserve_now(&b, 1, t(601));
    assert_eq!(v, [Verdict::Wait(t(900))]);
    // A rate limit with no reset teaches nothing.
    let f = lifeline_platforms::Failure::RateLimited { retry_after: None, detail: "x".into() };
    assert_eq!(heard_from_failure(&f, t(0)), Heard::Nothing);
}

#[test]
fn a_later_window_reported_by_the_platform_is_believed() {
    let b = observe(&known(0), x(97, 1000), t(100));
    assert_eq!((b.remaining, b.reset_at, b.last_reset), (97, Some(t(1000)), Some(t(900))));
    assert_eq!(b.window_started, Some(t(100)), "the window keeps its length");
    // An answer naming an earlier window is stale.
    let b = observe(&b, x(0, 800), t(101));
    assert_eq!(b.remaining, 97);
    // An answer whose window has ended teaches nothing.
    let b = observe(&b, x(0, 50), t(101));
    assert_eq!(b.remaining, 97);
}

#[test]
fn a_rate_limit_without_a_known_size_forgets_the_window_when_it_ends() {
    let f = lifeline_platforms::Failure::RateLimited {
        retry_after: Some(Duration::from_secs(60)),
        detail: "429".into(),
    };
    let b = observe(&Budget::default(), heard_from_failure(&f, t(0)), t(0));
    let (_, v) = reserve_now(&b, 2, t(1));
    assert_eq!(v, [Verdict::Wait(t(60)), Verdict::Wait(t(60))]);
    let (b, v) = reserve_now(&b, 2, t(61));
    assert_eq!(goes(&v), 2, "nothing known any more: calls go");
    assert_eq!(b.in_flight, 2);
}

#[test]
fn a_reservation_whose_call_was_not_made_is_given_back_by_the_platform_s_count() {
    // 2 left by our count and by X's; two calls reserved, one of them never made (the post was
    // found already out, or the breaker held it).
    let b = Budget { lowest_seen: Some(2), ..known(2) };
    let (b, _) = reserve_now(&b, 2, t(10));
    assert_eq!((b.remaining, b.in_flight), (0, 2));
    let b = observe(&b, Heard::Nothing, t(11));
    let b = observe(&b, x(1, 900), t(11));
    assert_eq!((b.remaining, b.in_flight), (1, 0));
}

#[test]
fn calls_unanswered_for_a_lease_are_dead_and_their_reservations_come_back() {
    let b = Budget { lowest_seen: Some(5), ..known(5) };
    let (b, _) = reserve_now(&b, 5, t(10));
    assert_eq!((b.remaining, b.answered_at), (0, Some(t(10))));
    // Their replica died: no answer. A moment later the window still looks spent...
    let (b, v) = reserve_now(&b, 1, t(20));
    assert_eq!(v, [Verdict::Wait(t(21))]);
    // ...but after a lease without an answer, the platform's last count is what is left.
    let (b, v) = reserve_now(&b, 1, t(71));
    assert_eq!(v, [Verdict::Go]);
    assert_eq!((b.remaining, b.in_flight), (4, 1));
}
