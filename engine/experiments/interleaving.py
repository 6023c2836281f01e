"""Interleaving experiments in Redis: merged lists served, impressions kept, clicks credited.

    >>> merged = interleaving.serve(assignment, request_id, list_a, list_b, n)   # team draft + one round trip
    >>> interleaving.credit(accepted_events)                                    # one pipelined round trip
    >>> interleaving.read("rank-test", phase=1)                                 # the readout's statistics

The maths is :mod:`analysis.interleaving` (team draft, credit, the tests and the sign test's
sequential form); this module keeps what it needs in Redis, every key under the experiment's ``{e:<key>}`` tag
so each script touches one Cluster slot:

- per (experiment, phase, user) a capped list of the user's latest impressions, newest first, each a
  JSON object ``{"r": request id, "i": [item ids], "t": "ABBA…" (team per position), "s": length of
  the rankers' common prefix, "c": ",0,3," (positions clicked so far)}``, expiring
  ``IMPRESSION_TTL_SECONDS`` after the user's last one;
- per phase a hash user → ``"<credit A>,<credit B>"``, each user's running credit over all their
  impressions (a user enters it with ``0,0`` at their first impression, so users who never click are
  counted as ties, as Chapelle et al. 2012 count them);
- per phase a hash of counters: ``users|win``, ``users|loss``, ``users|tie`` (users by the sign of
  their credit difference d = B − A, moved by the click that changes a user's sign), ``diff|sum`` and
  ``diff|squares`` (Σ d and Σ d² over users, moved by each credited click; created at the phase's
  first impression, so a phase recorded before they existed has neither and is read by its signs),
  ``diff|=<d>`` (users whose credit difference is the non-zero integer d, moved by each credited
  click: the signed-rank test's statistics; kept when ``diff|values`` was set at the phase's first
  impression, so a phase recorded before has none and is read by its sums),
  ``<team>|shown|<pos>``, ``<team>|click|<pos>`` (per-position clicks, by the team that filled the
  position), ``impressions``, ``credited``, ``shared`` (a click in the rankers' common prefix:
  counted per position, credited to neither — see :mod:`analysis.interleaving`), ``ignored`` (a click
  on an item in no impression it could answer) and ``repeated`` (a second click on one position of
  one impression: credited once).

The readout reads the counters hash only: its cost does not grow with the users or impressions.
The draft's coin flips are seeded from (experiment, phase, user, request id), so a request's
merged list can be reproduced.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import redis

from analysis.interleaving import (
    TEAMS,
    InterleavedList,
    InterleavingResult,
    InterleavingSettings,
    PositionCredit,
    PreferenceCounts,
    ShiftInterval,
    preference_test,
    team_draft,
)
from engine.experiments.assignment import Assignment
from engine.experiments.exposure import ObservedEvent
from engine.experiments.model import Experiment
from engine.experiments.results import ExperimentDecision, ExperimentReadout, Progress
from engine.experiments.snapshot import ConfigSnapshot
from engine.storage.client import eval_script_batch, text_hash
from engine.storage.keys import Keys

log = logging.getLogger(__name__)

IMPRESSION_TTL_SECONDS = 86_400  # a click answers a list seen within the day
IMPRESSIONS_PER_USER = 50  # latest impressions a click can be matched against
CLICK = "click"

# KEYS: the user's impressions, credit per user, counters.  ARGV: user, impression JSON, cap, ttl, teams.
RECORD = """
redis.call('LPUSH', KEYS[1], ARGV[2])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[3]) - 1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
if redis.call('HEXISTS', KEYS[3], 'impressions') == 0 then
  redis.call('HSET', KEYS[3], 'diff|sum', 0, 'diff|squares', 0, 'diff|values', 1)
end
if redis.call('HSETNX', KEYS[2], ARGV[1], '0,0') == 1 then redis.call('HINCRBY', KEYS[3], 'users|tie', 1) end
local teams = ARGV[5]
for p = 1, #teams do
  redis.call('HINCRBY', KEYS[3], string.sub(teams, p, p) .. '|shown|' .. (p - 1), 1)
end
redis.call('HINCRBY', KEYS[3], 'impressions', 1)
return 1
"""

# KEYS: the user's impressions, credit per user, counters.  ARGV: user, item, request id ('' = none).
# The impression a click answers: the one of its request id, else the newest holding the item.
# Returns 1 (credited), 2 (a repeated click on a clicked position), 3 (a click in the common prefix:
# credited to neither team) or 0 (no impression: ignored).
CREDIT = """
local function side(diff)
  if diff > 0 then return 'win' elseif diff < 0 then return 'loss' end
  return 'tie'
end
local list = redis.call('LRANGE', KEYS[1], 0, -1)
for i = 1, #list do
  local imp = cjson.decode(list[i])
  if ARGV[3] == '' or imp.r == ARGV[3] then
    for p = 1, #imp.i do
      if imp.i[p] == ARGV[2] then
        local mark = ',' .. (p - 1) .. ','
        if string.find(imp.c, mark, 1, true) then
          redis.call('HINCRBY', KEYS[3], 'repeated', 1)
          return 2
        end
        imp.c = imp.c .. (p - 1) .. ','
        redis.call('LSET', KEYS[1], i - 1, cjson.encode(imp))
        local team = string.sub(imp.t, p, p)
        redis.call('HINCRBY', KEYS[3], team .. '|click|' .. (p - 1), 1)
        if p <= (imp.s or 0) then
          redis.call('HINCRBY', KEYS[3], 'shared', 1)
          return 3
        end
        local rec = redis.call('HGET', KEYS[2], ARGV[1])
        if not rec then
          rec = '0,0'
          redis.call('HINCRBY', KEYS[3], 'users|tie', 1)
        end
        local a, b = string.match(rec, '^(%d+),(%d+)$')
        a, b = tonumber(a), tonumber(b)
        local before_diff = b - a
        local before = side(before_diff)
        if team == 'A' then a = a + 1 else b = b + 1 end
        redis.call('HSET', KEYS[2], ARGV[1], a .. ',' .. b)
        local after = side(b - a)
        if redis.call('HEXISTS', KEYS[3], 'diff|sum') == 1 then
          local d0 = before_diff
          local d1 = b - a
          redis.call('HINCRBY', KEYS[3], 'diff|sum', d1 - d0)
          redis.call('HINCRBY', KEYS[3], 'diff|squares', d1 * d1 - d0 * d0)
        end
        if redis.call('HEXISTS', KEYS[3], 'diff|values') == 1 then
          if before_diff ~= 0 then redis.call('HINCRBY', KEYS[3], 'diff|=' .. before_diff, -1) end
          if b - a ~= 0 then redis.call('HINCRBY', KEYS[3], 'diff|=' .. (b - a), 1) end
        end
        if after ~= before then
          redis.call('HINCRBY', KEYS[3], 'users|' .. before, -1)
          redis.call('HINCRBY', KEYS[3], 'users|' .. after, 1)
        end
        redis.call('HINCRBY', KEYS[3], 'credited', 1)
        return 1
      end
    end
    if ARGV[3] ~= '' then break end
  end
end
redis.call('HINCRBY', KEYS[3], 'ignored', 1)
return 0
"""


class ClickedEvent(ObservedEvent, Protocol):
    """What crediting reads of an accepted event (``engine.events.tracker.Event`` has it)."""

    @property
    def item_id(self) -> str: ...

    @property
    def request_id(self) -> str | None: ...


def draft_seed(experiment: str, phase: int, user_id: str, request_id: str) -> int:
    """The seed of one request's coin flips: the same request always merges the same way."""
    digest = hashlib.blake2b(f"{experiment}:{phase}:{user_id}:{request_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def merge(assignment: Assignment, request_id: str, list_a: Sequence[str], list_b: Sequence[str], n: int
          ) -> InterleavedList:
    """Team draft of the control's (A) and the treatment's (B) item ids for this request."""
    rng = np.random.default_rng(draft_seed(assignment.experiment, assignment.phase, assignment.user_id, request_id))
    return team_draft(list_a, list_b, n, rng)


@dataclass(frozen=True)
class CreditTally:
    """What one batch of clicks did."""

    credited: int = 0
    repeated: int = 0
    ignored: int = 0
    shared: int = 0  # clicks in the rankers' common prefix: credited to neither


@dataclass(frozen=True)
class InterleavingStats:
    """A phase's stored statistics: the readout's whole input."""

    counts: PreferenceCounts
    positions: tuple[PositionCredit, ...]
    impressions: int
    credited: int
    ignored: int
    repeated: int
    shared: int = 0


def counts_from_credit(credit: Mapping[str, str]) -> PreferenceCounts:
    """Users by the sign of B − A, and its sums, from the ``user → "a,b"`` hash (the counters keep the
    same numbers incrementally; this recounts them, to check)."""
    pairs = [value.partition(",") for value in credit.values()]
    return PreferenceCounts.of(np.array([int(b) - int(a) for a, _, b in pairs], dtype=np.int64))


def positions_from_counters(counters: Mapping[str, str]) -> tuple[PositionCredit, ...]:
    """Per-position rows from the ``<team>|<shown|click>|<pos>`` counters (absent ones are 0)."""
    cells: dict[tuple[str, str, int], int] = {}
    for name, value in counters.items():
        team, what, position = [*name.split("|"), "", ""][:3]
        if team in TEAMS and what in ("shown", "click") and position.isdigit():
            cells[(team, what, int(position))] = int(value)
    depth = 1 + max((p for _, _, p in cells), default=-1)
    return tuple(
        PositionCredit(p, cells.get(("A", "shown", p), 0), cells.get(("B", "shown", p), 0),
                       cells.get(("A", "click", p), 0), cells.get(("B", "click", p), 0))
        for p in range(depth)
    )


def differences_from_counters(counters: Mapping[str, str]) -> tuple[tuple[int, int], ...] | None:
    """``(d, users)`` per non-zero credit difference from the ``diff|=<d>`` counters; ``None`` for a
    phase recorded before they were kept (no ``diff|values``)."""
    if "diff|values" not in counters:
        return None
    by_value = ((int(name[len("diff|="):]), int(users)) for name, users in counters.items()
                if name.startswith("diff|="))
    return tuple(sorted((value, users) for value, users in by_value if users))


class InterleavingRecorder:
    def __init__(self, client: redis.Redis, keys: Keys, snapshot: ConfigSnapshot,
                 ttl_seconds: int = IMPRESSION_TTL_SECONDS) -> None:
        self.redis = client
        self.keys = keys
        self.snapshot = snapshot
        self.ttl_seconds = ttl_seconds
        self._record = client.register_script(RECORD)
        self._credit = client.register_script(CREDIT)

    def _script_keys(self, key: str, phase: int, user_id: str) -> list[str]:
        return [self.keys.experiment_impressions(key, phase, user_id), self.keys.experiment_credit(key, phase),
                self.keys.experiment_position_credit(key, phase)]

    def serve(self, assignment: Assignment, request_id: str, list_a: Sequence[str], list_b: Sequence[str],
              n: int) -> InterleavedList:
        """The merged list for this request, its impression recorded (one round trip).  A failure to
        record is logged, not raised: the list is served, and a click on it is then ignored."""
        merged = merge(assignment, request_id, list_a, list_b, n)
        if assignment.forced or not merged.items:
            return merged
        impression = json.dumps({"r": request_id, "i": list(merged.items), "t": "".join(merged.teams),
                                 "s": merged.shared_prefix, "c": ","}, separators=(",", ":"))
        call = (self._script_keys(assignment.experiment, assignment.phase, assignment.user_id),
                [assignment.user_id, impression, IMPRESSIONS_PER_USER, self.ttl_seconds, "".join(merged.teams)])
        try:
            eval_script_batch(self.redis, self._record, [call])
        except redis.RedisError as exc:
            log.warning("interleaved impression %s of %s not recorded: %s", request_id, assignment.experiment, exc)
        return merged

    def credit(self, events: Iterable[ClickedEvent]) -> CreditTally:
        """Credit each click of a user enrolled in a running interleaving experiment to the team of the
        clicked item in the impression it answers; one pipelined round trip per batch."""
        table = self.snapshot.table
        if not any(exp.rankers is not None for exp in table.experiments):
            return CreditTally()
        calls: list[tuple[list[str], list[Any]]] = []
        for event in events:
            if event.type != CLICK:
                continue
            assignment = table.assign(event.user_id)
            if assignment is None or assignment.rankers is None:
                continue  # not in an interleaving experiment, or a forced QA user
            calls.append((self._script_keys(assignment.experiment, assignment.phase, event.user_id),
                          [event.user_id, event.item_id, event.request_id or ""]))
        if not calls:
            return CreditTally()
        outcomes = [int(r) for r in eval_script_batch(self.redis, self._credit, calls)]
        return CreditTally(outcomes.count(1), outcomes.count(2), outcomes.count(0), outcomes.count(3))

    def read_credit(self, key: str, phase: int) -> dict[str, str]:
        """Every user's ``"<credit A>,<credit B>"`` (a scan of the phase's users: for checks and exports)."""
        return text_hash(self.redis.hgetall(self.keys.experiment_credit(key, phase)))

    def read(self, key: str, phase: int) -> InterleavingStats:
        """The phase's statistics from its counters (one round trip, whatever the number of users)."""
        counters = text_hash(self.redis.hgetall(self.keys.experiment_position_credit(key, phase)))
        kept = "diff|squares" in counters  # absent in a phase recorded before the sums were kept
        wins, losses, ties = (int(counters.get(f"users|{side}", 0)) for side in ("win", "loss", "tie"))
        return InterleavingStats(
            counts=PreferenceCounts(wins, losses, ties,
                                    difference_sum=int(counters["diff|sum"]) if kept else None,
                                    difference_squares=int(counters["diff|squares"]) if kept else None,
                                    differences=differences_from_counters(counters)),
            positions=positions_from_counters(counters),
            impressions=int(counters.get("impressions", 0)),
            credited=int(counters.get("credited", 0)),
            ignored=int(counters.get("ignored", 0)),
            repeated=int(counters.get("repeated", 0)),
            shared=int(counters.get("shared", 0)),
        )


# ------------------------------------------------------------------------------ the readout (pure)


def settings_for(exp: Experiment, sequential: bool) -> InterleavingSettings:
    """The analysis' settings from the experiment's alpha, power and plan (its planned size counts
    users with a preference)."""
    return InterleavingSettings(
        alpha=exp.alpha,
        sequential=sequential,
        planned_users=exp.planned_sample_size,
        looks=exp.sequential.looks if exp.sequential else None,
        power=exp.power,
    )


def _result_dict(result: InterleavingResult) -> dict[str, Any]:
    return {"method": result.method, "p_value": result.p_value,
            "ci": list(result.ci) if result.ci else None, "verdict": result.verdict,
            "significant": result.significant, "beta_prior": result.beta_prior}


def shift_interval_fields(interval: ShiftInterval | None) -> dict[str, Any]:
    """``pseudomedian_ci`` as ``[low, high]`` (``None`` for an unbounded end: JSON has no infinity) and
    ``pseudomedian_ci_closed``, whether each end belongs to it; both ``None`` without an interval."""
    if interval is None:
        return {"pseudomedian_ci": None, "pseudomedian_ci_closed": None}
    ends = [None if math.isinf(end) else end for end in (interval.low, interval.high)]
    return {"pseudomedian_ci": ends, "pseudomedian_ci_closed": [interval.low_closed, interval.high_closed]}


def interleaving_block(exp: Experiment, stats: InterleavingStats, engine: str) -> dict[str, Any]:
    """The readout's ``interleaving`` block.  ``p_value`` is the fixed-horizon decision's (``method``:
    the signed-rank test of the users' credit differences), and ``pseudomedian_ci`` the interval that
    goes with it: the same test inverted (the shifts of the users' credit differences it does not
    reject, ends in or out by ``pseudomedian_ci_closed``), excluding 0 exactly when that verdict
    calls a preference, around the Hodges–Lehmann ``pseudomedian`` (``pseudomedian_message`` says why
    there is none).  The other intervals describe and belong to other tests, so near the line they
    can disagree with the verdict: ``mean_credit_difference_ci`` is the mean credit difference's t
    interval, ``t_test_p_value`` its t-test; ``ci`` is the preference share's Clopper-Pearson
    interval, ``sign_test_p_value`` its exact sign test.  With the sequential engine ``sequential``
    holds the always-valid sign test's, and it is that test's verdict, with its confidence sequence
    ``sequential["ci"]``, that decides (a fixed test read before its planned size is a peek)."""
    fixed = preference_test(stats.counts, settings_for(exp, sequential=False), stats.positions)
    sequential = preference_test(stats.counts, settings_for(exp, sequential=True)) if engine == "sequential" else None
    deciding = sequential or fixed
    control, treatment = (v.name for v in exp.variants[:2])
    return {
        "control": control,  # ranker A
        "treatment": treatment,  # ranker B
        "users": stats.counts.users,
        "wins": stats.counts.wins,  # users crediting the treatment more
        "losses": stats.counts.losses,
        "ties": stats.counts.ties,
        "preference_share": fixed.preference_share,
        "mean_credit_difference": fixed.mean_difference,  # per user, credit treatment − credit control
        "mean_credit_difference_ci": list(fixed.mean_difference_ci) if fixed.mean_difference_ci else None,
        "sign_test_p_value": fixed.sign_test_p_value,
        "t_test_p_value": fixed.t_test_p_value,
        "pseudomedian": fixed.pseudomedian,  # Hodges–Lehmann, over users with a preference
        **shift_interval_fields(fixed.pseudomedian_ci),
        "pseudomedian_message": fixed.pseudomedian_message,
        "alpha": exp.alpha,
        **{k: v for k, v in _result_dict(fixed).items() if k != "beta_prior"},
        "verdict": deciding.verdict,
        "decided_by": deciding.method,
        "sequential": _result_dict(sequential) if sequential else None,
        "message": fixed.message,
        "impressions": stats.impressions,
        "clicks_credited": stats.credited,
        "clicks_ignored": stats.ignored,
        "clicks_repeated": stats.repeated,
        "clicks_shared": stats.shared,  # in the rankers' common prefix: credited to neither
        "positions": [
            {"position": p.position, "shown_a": p.shown_a, "shown_b": p.shown_b,
             "clicks_a": p.clicks_a, "clicks_b": p.clicks_b}
            for p in stats.positions
        ],
    }


def decision_text(block: Mapping[str, Any]) -> tuple[str, str, str | None]:
    """(action, sentence, variant) of an interleaving readout, in the experiment readout's terms."""
    control, treatment = block["control"], block["treatment"]
    decided = block["wins"] + block["losses"]
    if decided == 0:
        why = block["message"] or "no users yet"
        return "not_enough_data", f"interleaving: {why}", None
    share = block["preference_share"]
    p = block["sequential"]["p_value"] if block["sequential"] else block["p_value"]
    mean = block.get("mean_credit_difference")
    # the fixed test's p is the credit differences' (signed ranks); the sequential one's, the signs'
    lean = "" if mean is None or block["sequential"] else f"mean credit difference {mean:+.3g} clicks per user, "
    counted = (f"{block['wins']} of {decided} users with a preference chose {treatment} "
               f"(share {share:.1%}, {lean}p = {p:.3g})")
    if block["verdict"] == "B preferred":
        return "ship", f"users prefer {treatment} over {control}: {counted}", treatment
    if block["verdict"] == "A preferred":
        return "hold", f"users prefer {control} over {treatment}: {counted}; keep {control}", control
    return "keep_running", f"no preference detected yet: {counted}", None


def with_interleaving(readout: ExperimentReadout, exp: Experiment, stats: InterleavingStats) -> ExperimentReadout:
    """``readout`` of an interleaving experiment: its ``interleaving`` block, and the decision that
    block makes (the per-arm metrics stay empty: every user saw both rankers, no arm has users)."""
    block = interleaving_block(exp, stats, readout.engine)
    action, text, variant = decision_text(block)
    decided = stats.counts.decided  # the plan's size counts users with a preference (``settings_for``)
    planned = exp.planned_sample_size
    progress = (Progress(planned, "planned", decided, min(1.0, decided / planned)) if planned
                else Progress(None, "none", decided, None))
    messages = [m for m in readout.messages if m] + [
        "interleaving: every enrolled user sees both rankers merged; per-arm metrics do not apply, "
        + ("the always-valid sign test of the preference share decides" if block["sequential"] else
           f"the {block['decided_by']} decides")]
    return dataclasses.replace(readout, interleaving=block, decision=ExperimentDecision(action, text, variant),
                               decision_text=text, progress=progress, messages=tuple(dict.fromkeys(messages)))
