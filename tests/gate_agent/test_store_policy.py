from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from gate_agent.store import Store
from parkgate_protocol import parse_policy
from tests.gate_agent.test_store_journal import NOW as T0
from tests.gate_agent.test_store_journal import Clock


def test_policy_in_force_survives_a_restart_as_sent(tmp_path: Path) -> None:
    raw = {"schema": 1, "version": 3, "early_grace_minutes": 5}
    with Store(tmp_path / "a.sqlite", clock=Clock()) as store:
        assert store.policy is None
        applied = store.apply_policy(parse_policy(raw), raw)
        assert store.policy == applied and applied.version == 3
    with Store(tmp_path / "a.sqlite") as store:
        assert store.policy is not None
        assert store.policy.version == 3 and store.policy.raw == raw
        assert store.policy.policy.early_grace_minutes == 5
        assert store.policy.applied_at == T0


def test_a_rejected_policy_is_kept_with_why_and_leaves_the_one_in_force(tmp_path: Path) -> None:
    clock = Clock()
    with Store(tmp_path / "a.sqlite", clock=clock) as store:
        good = {"version": 1}
        store.apply_policy(parse_policy(good), good)
        clock.now += timedelta(minutes=1)
        store.reject_policy({"schema": 9, "version": 2}, "unsupported_policy: schema=9")
        assert store.policy is not None and store.policy.version == 1
        refused = store.rejected_policy()
        assert refused is not None and refused.version == 2 and refused.rejected_at == clock.now
        assert store.policy_problem() == "policy v2 rejected: unsupported_policy: schema=9"
        clock.now += timedelta(minutes=1)
        store.apply_policy(parse_policy({"version": 3}), {"version": 3})
        assert store.policy_problem() is None  # a newer good policy is in force
        assert store.rejected_policy() == refused  # still shown as the last refused


def test_a_rejected_policy_without_a_readable_version(tmp_path: Path) -> None:
    with Store(tmp_path / "a.sqlite", clock=Clock()) as store:
        store.reject_policy(["not", "an", "object"], "invalid: policy: not an object")
        refused = store.rejected_policy()
        assert refused is not None and refused.version is None
        assert store.policy_problem() == "policy v? rejected: invalid: policy: not an object"
