"""Redis key names, all under one prefix.

User-scoped keys carry the user id inside a hash tag (``{u:<id>}``) so that every key of one
user lands in one Redis Cluster slot and a user's multi-key operations stay atomic there.
User ids are validated before they get here, and no key built here is ever used as a glob.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "recops"

    def user_tag(self, user_id: str) -> str:
        return "{u:" + user_id + "}"

    # feature store
    def user_features(self, user_id: str) -> str:
        return f"{self.prefix}:feat:user:{self.user_tag(user_id)}"

    def item_features(self, item_id: str) -> str:
        return f"{self.prefix}:feat:item:{item_id}"

    # recommendation cache
    def rec_list(self, user_id: str, model: str, n: int, variant: str = "") -> str:
        return f"{self.prefix}:rec:{self.user_tag(user_id)}:{model}:{n}:{variant}"

    def rec_index(self, user_id: str) -> str:
        """Set of a user's cached list keys, so invalidation needs no KEYS/SCAN."""
        return f"{self.prefix}:recidx:{self.user_tag(user_id)}"

    def rec_ledger(self, user_id: str) -> str:
        """Hash of what the cache remembers of a user's lists (engine/serving/cache/miss_causes.py);
        outside ``rec_scan_pattern`` on purpose: it must outlive a flush of every list."""
        return f"{self.prefix}:listlog:{self.user_tag(user_id)}"

    @property
    def rec_ledger_scan_pattern(self) -> str:
        return f"{self.prefix}:listlog:*"

    def cache_warm_claim(self, versions_tag: str) -> str:
        """Taken by the one process that warms the lists of a set of served versions."""
        return f"{self.prefix}:warmclaim:{versions_tag}"

    def rec_lock(self, key: str) -> str:
        return f"{key}:lock"

    @property
    def rec_scan_pattern(self) -> str:
        return f"{self.prefix}:rec*"

    @property
    def invalidation_channel(self) -> str:
        return f"{self.prefix}:invalidate"

    # events
    @property
    def event_stream(self) -> str:
        return f"{self.prefix}:events"

    @property
    def event_counts(self) -> str:
        return f"{self.prefix}:events:count"

    def event_id(self, user_id: str, event_id: str) -> str:
        """Idempotency marker; tagged by user so the dedupe and the live-log append share a slot."""
        return f"{self.prefix}:evid:{self.user_tag(user_id)}:{event_id}"

    def user_log(self, user_id: str) -> str:
        """Capped list of a user's interactions since the dataset was built, newest first."""
        return f"{self.prefix}:live:log:{self.user_tag(user_id)}"

    def user_purchased(self, user_id: str) -> str:
        """Set of items a user bought since the dataset was built (outlives the capped log)."""
        return f"{self.prefix}:live:bought:{self.user_tag(user_id)}"

    # experiments: every key of one experiment carries its ``{e:<key>}`` tag, so the per-event
    # script touches one Cluster slot; the index, version and holdout are global.
    def experiment_tag(self, key: str) -> str:
        return "{e:" + key + "}"

    @property
    def experiment_index(self) -> str:
        return f"{self.prefix}:exp:index"

    @property
    def experiment_version(self) -> str:
        """A new token on every config change, so serving processes reload only when something changed."""
        return f"{self.prefix}:exp:version"

    @property
    def experiment_holdout(self) -> str:
        return f"{self.prefix}:exp:holdout"

    @property
    def experiment_demo_offered(self) -> str:
        """Set once the first start decided about the demo experiment, so that it never comes back."""
        return f"{self.prefix}:exp:demo"

    def experiment_config(self, key: str) -> str:
        return f"{self.prefix}:exp:cfg:{self.experiment_tag(key)}"

    def experiment_bandit_log(self, key: str) -> str:
        """Hash epoch -> traffic weights of a bandit, for the SRM check over changing weights."""
        return f"{self.prefix}:exp:bandit:{self.experiment_tag(key)}"

    def experiment_assignments(self, key: str, phase: int) -> str:
        """Hash user -> the exposure record (epoch, variant, pre-exposure covariates)."""
        return f"{self.prefix}:exp:asg:{self.experiment_tag(key)}:{phase}"

    def experiment_units(self, key: str, phase: int) -> str:
        """Hash ``<unit>:<counter>`` -> the unit's running count since exposure."""
        return f"{self.prefix}:exp:unit:{self.experiment_tag(key)}:{phase}"

    def experiment_dimensions(self, key: str, phase: int) -> str:
        """Hash user -> the user's dimensions at exposure (``name=value`` joined by tabs), for breakdowns."""
        return f"{self.prefix}:exp:dims:{self.experiment_tag(key)}:{phase}"

    def experiment_stats(self, key: str, phase: int) -> str:
        """Hash ``<variant>|<statistic>`` -> running sufficient statistics of the phase."""
        return f"{self.prefix}:exp:stats:{self.experiment_tag(key)}:{phase}"

    def experiment_daily(self, key: str, phase: int, day: str) -> str:
        """The same statistics' increments made on one UTC day (prefix sums give a time series)."""
        return f"{self.prefix}:exp:daily:{self.experiment_tag(key)}:{phase}:{day}"

    def experiment_served(self, key: str, phase: int) -> str:
        """Hash ``<variant>|<model>@<version>`` -> exposures the arm served with that model version."""
        return f"{self.prefix}:exp:served:{self.experiment_tag(key)}:{phase}"

    def experiment_days(self, key: str, phase: int) -> str:
        return f"{self.prefix}:exp:days:{self.experiment_tag(key)}:{phase}"

    def experiment_impressions(self, key: str, phase: int, user_id: str) -> str:
        """List of a user's latest interleaved impressions (JSON: request id, items, teams, clicks), newest first."""
        return f"{self.prefix}:exp:ilv:imp:{self.experiment_tag(key)}:{phase}:{user_id}"

    def experiment_credit(self, key: str, phase: int) -> str:
        """Hash user -> ``<credits of A>,<credits of B>`` over the user's interleaved impressions."""
        return f"{self.prefix}:exp:ilv:credit:{self.experiment_tag(key)}:{phase}"

    def experiment_position_credit(self, key: str, phase: int) -> str:
        """Hash of an interleaving phase's counters: users by preference, per-position credit, click outcomes."""
        return f"{self.prefix}:exp:ilv:pos:{self.experiment_tag(key)}:{phase}"

    def experiment_hourly(self, key: str, phase: int, hour: str) -> str:
        """The statistics' increments made in one UTC hour (``2026-12-02T04``); expire after a few days:
        hours only chart runs younger than two days, days serve the rest."""
        return f"{self.prefix}:exp:hourly:{self.experiment_tag(key)}:{phase}:{hour}"

    def experiment_health(self, key: str, phase: int) -> str:
        """Hash of health counters and times: users seen in a second arm, last exposure and event."""
        return f"{self.prefix}:exp:health:{self.experiment_tag(key)}:{phase}"

    def experiment_crossed(self, key: str, phase: int) -> str:
        """Hash user -> ``<recorded arm>><arm served now>`` of users served a second arm in the phase."""
        return f"{self.prefix}:exp:crossed:{self.experiment_tag(key)}:{phase}"

    def experiment_quality(self, key: str, phase: int) -> str:
        """Hash ``<variant>|lists|cold|fallback`` -> counts of first-exposure lists per arm."""
        return f"{self.prefix}:exp:quality:{self.experiment_tag(key)}:{phase}"

    def experiment_lists(self, key: str, phase: int, variant: str) -> str:
        """Capped list of the arm's most recent first-exposure lists, ``<user>|<item>,<item>,...``."""
        return f"{self.prefix}:exp:lists:{self.experiment_tag(key)}:{phase}:{variant}"

    def experiment_lock(self, name: str) -> str:
        return f"{self.prefix}:exp:lock:{name}"

    # operations
    @property
    def audit_log(self) -> str:
        return f"{self.prefix}:audit"

    def scan_pattern(self, section: str = "") -> str:
        return f"{self.prefix}:{section}*"
