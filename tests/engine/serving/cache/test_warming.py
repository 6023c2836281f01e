"""BackgroundWarmer: which users it warms, in what order and batches, and when it does not."""

from __future__ import annotations

import threading

from engine.serving.cache import BackgroundWarmer


def ranked(n: int) -> list[str]:
    return [f"u{i:03d}" for i in range(n)]  # most active first


def test_it_warms_the_most_active_users_in_order_up_to_its_limit() -> None:
    asked: list[int] = []
    batches: list[list[str]] = []

    def users(n: int) -> list[str]:
        asked.append(n)
        return ranked(n)

    warmer = BackgroundWarmer(users, batches.append, limit=25, per_second=1e9, batch=10)
    warmer.restart()
    assert warmer.wait_idle(timeout=30)
    warmer.close()
    assert asked == [25]
    assert batches == [ranked(25)[:10], ranked(25)[10:20], ranked(25)[20:]]
    assert warmer.warmed == 25 and warmer.passes == 1


def test_a_process_without_the_claim_warms_nothing() -> None:
    batches: list[list[str]] = []
    warmer = BackgroundWarmer(ranked, batches.append, limit=25, per_second=1e9, claim=lambda: False)
    warmer.restart()
    assert warmer.wait_idle(timeout=30)
    warmer.close()
    assert batches == [] and warmer.passes == 0


def test_a_restart_abandons_the_pass_under_way_and_starts_over() -> None:
    batches: list[list[str]] = []
    first_batch = threading.Event()
    release = threading.Event()

    def warm(chunk: list[str]) -> None:
        batches.append(chunk)
        if len(batches) == 1:
            first_batch.set()
            release.wait(30)

    warmer = BackgroundWarmer(ranked, warm, limit=30, per_second=1e9, batch=10)
    warmer.restart()
    assert first_batch.wait(30)
    warmer.restart()  # a model switch while the first pass warms its first batch
    release.set()
    assert warmer.wait_idle(timeout=30)
    warmer.close()
    # the first pass stops after its batch in flight; the second warms everyone from the top
    assert batches == [ranked(10), ranked(10), ranked(30)[10:20], ranked(30)[20:]]
    assert warmer.passes == 1


def test_a_limit_of_zero_starts_nothing() -> None:
    warmer = BackgroundWarmer(ranked, lambda chunk: None, limit=0, per_second=1.0)
    warmer.restart()
    assert warmer.wait_idle(timeout=1)
    warmer.close()
    assert warmer.passes == 0
