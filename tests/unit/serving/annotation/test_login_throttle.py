"""The login throttle: past VA_LOGIN_MAX_FAILURES failed logins in VA_LOGIN_LOCKOUT_S, a name waits.

Real time: lockouts of a second where a window has to pass, of a minute where it must not.
"""

from __future__ import annotations

import threading
import time

import pytest

from serving.annotation.sessions import LoginThrottle

LOCKOUT_S = 1.0  # short enough to wait for, long enough for a loaded machine


def test_a_name_is_locked_at_the_limit_and_not_before() -> None:
    throttle = LoginThrottle(max_failures=3, lockout_s=60)
    for _ in range(2):
        throttle.failed("eve")
        assert throttle.retry_after("eve") == 0.0
    throttle.failed("eve")
    wait = throttle.retry_after("eve")
    assert 59 < wait <= 60


def test_the_lock_is_per_name() -> None:
    throttle = LoginThrottle(max_failures=1, lockout_s=60)
    throttle.failed("eve")
    assert throttle.retry_after("eve") > 0
    assert throttle.retry_after("ann") == 0.0
    assert throttle.retry_after("Eve") == 0.0  # names are compared exactly, as the store does


def test_the_wait_counts_down_from_the_oldest_failure_and_then_lifts() -> None:
    throttle = LoginThrottle(max_failures=2, lockout_s=LOCKOUT_S)
    throttle.failed("eve")
    time.sleep(0.3)
    throttle.failed("eve")
    first = throttle.retry_after("eve")
    assert 0 < first <= LOCKOUT_S - 0.3  # counted from the first failure, already 0.3 s old
    time.sleep(0.05)
    assert throttle.retry_after("eve") < first
    time.sleep(first)
    assert throttle.retry_after("eve") == 0.0  # the first failure has left the window


def test_failures_older_than_the_window_do_not_count() -> None:
    throttle = LoginThrottle(max_failures=2, lockout_s=LOCKOUT_S)
    throttle.failed("eve")
    time.sleep(LOCKOUT_S + 0.05)
    throttle.failed("eve")
    assert throttle.retry_after("eve") == 0.0  # one recent failure, under the limit of two


def test_a_successful_login_forgets_the_failures() -> None:
    throttle = LoginThrottle(max_failures=2, lockout_s=60)
    throttle.failed("eve")
    throttle.succeeded("eve")
    throttle.failed("eve")
    assert throttle.retry_after("eve") == 0.0
    throttle.failed("eve")
    assert throttle.retry_after("eve") > 0
    throttle.succeeded("ann")  # someone else's login changes nothing for eve
    assert throttle.retry_after("eve") > 0


@pytest.mark.parametrize(("limit", "locked"), [(400, True), (401, False)])
def test_failures_from_many_threads_are_all_counted(limit: int, locked: bool) -> None:
    throttle = LoginThrottle(max_failures=limit, lockout_s=60)
    start = threading.Barrier(8)

    def fail_fifty_times() -> None:
        start.wait()
        for _ in range(50):
            throttle.failed("eve")
            throttle.retry_after("eve")  # reads race with writes, as concurrent logins do

    threads = [threading.Thread(target=fail_fifty_times) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert (throttle.retry_after("eve") > 0) is locked  # exactly 8 * 50 = 400 failures were counted
