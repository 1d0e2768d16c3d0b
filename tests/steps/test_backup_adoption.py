"""Which backup job a file-backup step adopts after a kill between journaling "started" and its POST (pure,
with a fake appliance client). Found by the update kill sweep: at a lab clock where the pre and the during
backups are seconds apart, the during step adopted the pre backup's job — one job recorded as two backups."""
from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from orchestrator.steps.backup import _job_started_since


class Jobs:
    def __init__(self, **started: float) -> None:
        self.started = started

    def backup_jobs(self) -> list[str]:
        return list(self.started)

    def backup_job(self, job_id: str) -> SimpleNamespace:
        iso = dt.datetime.fromtimestamp(self.started[job_id], dt.timezone.utc).isoformat()
        return SimpleNamespace(state="SUCCEEDED", start_time=iso)


def test_a_job_another_step_recorded_is_never_adopted():
    client = Jobs(**{"20261201-155523-pre": 1000.0})
    assert _job_started_since(client, 1002.0) == "20261201-155523-pre"  # within the clock slack: looks ours
    assert _job_started_since(client, 1002.0, frozenset({"20261201-155523-pre"})) is None  # it is the pre one
    client = Jobs(**{"20261201-155523-pre": 1000.0, "20261201-155524-during": 1003.0})
    assert _job_started_since(client, 1002.0, frozenset({"20261201-155523-pre"})) == "20261201-155524-during"
