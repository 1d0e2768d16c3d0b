"""Journal: durable, append-only, tamper-evident. Real files in tmp_path, real child processes for crashes."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.engine.journal import (
    GENESIS_HASH,
    Event,
    Journal,
    JournalCorrupt,
    bench_append,
    journal_path,
)
from orchestrator.errors import InputError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def jpath(tmp_path: Path) -> Path:
    return journal_path(tmp_path / "state", "vsphere.local")


def _fill(j: Journal, n: int = 5) -> list[Event]:
    out = [j.append("run.start", run_id="r1", plan_hash="ph", data={"command": "upgrade"})]
    for i in range(n):
        out.append(j.append("step", run_id="r1", plan_hash="ph", phase="psc", wave="1", node=f"psc-{i}",
                            step=f"psc-{i}/upgrade", action="upgrade", status="started"))
        out.append(j.append("step", run_id="r1", plan_hash="ph", phase="psc", wave="1", node=f"psc-{i}",
                            step=f"psc-{i}/upgrade", action="upgrade", status="succeeded",
                            data={"version_before": "6.5.0", "version_after": "6.7.0", "job_id": i}))
    return out


def _run_child(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def test_path_layout_and_bad_domain(tmp_path: Path) -> None:
    assert journal_path(tmp_path, "vsphere.local") == tmp_path / "vsphere.local" / "journal.sqlite"
    for bad in ("", "..", "a/b"):
        with pytest.raises(InputError):
            journal_path(tmp_path, bad)


def test_append_reopen_round_trip(jpath: Path) -> None:
    with Journal.open(jpath) as j:
        written = _fill(j)
        backup = j.append("backup", run_id="r1", node="psc-0", data={
            "backup_id": "b-1", "location": "sftp://bk/psc-0", "method": "file",
            "domain_version": "6.5.0", "node_version": "6.5.0.32000"})
        written.append(backup)
        assert [e.seq for e in written] == list(range(1, len(written) + 1))
        assert j.events() == written
    assert jpath.is_file()
    with Journal.open(jpath) as j:
        assert j.events() == written
        assert j.events(kind="backup") == [backup]
        assert [e.node for e in j.events(kind="step", status="succeeded", node=("psc-1", "psc-3"))] == [
            "psc-1", "psc-3"]
        assert j.events(since=len(written) - 1) == [backup]
        assert j.step_state("psc-2/upgrade") == "succeeded"
        assert j.step_state("nope") is None
        assert j.started_unconfirmed() == []
        assert j.head()[0] == len(written)
        nxt = j.append("note", data={"text": "after reopen"})
        assert nxt.seq == len(written) + 1
    with pytest.raises(ValueError):
        with Journal.open(jpath) as j:
            j.events(colour="red")


def test_data_is_normalised_to_json_and_validated(jpath: Path) -> None:
    with Journal.open(jpath) as j:
        e = j.append("note", data={"ids": (1, 2), "n": {"deep": (3,)}})
        assert e.data == {"ids": [1, 2], "n": {"deep": [3]}} == j.events()[0].data
        with pytest.raises(ValueError, match="keys must be strings"):
            j.append("note", data={"a": {3: "x"}})
        with pytest.raises(ValueError, match="unknown journal event kind"):
            j.append("stepp", step="s", status="started")
        with pytest.raises(ValueError, match="step status"):
            j.append("step", step="s", status="done")
        with pytest.raises(ValueError, match="outcome"):
            j.append("step", step="s", status="reconciled")
        with pytest.raises(ValueError, match="backup event data is missing"):
            j.append("backup", node="psc-0", data={"backup_id": "b"})
        with pytest.raises(ValueError, match="not plain JSON"):
            j.append("note", data={"x": float("nan")})
        with pytest.raises(ValueError, match="not plain JSON"):
            j.append("note", data={"x": object()})
        assert len(j.events()) == 1  # refused appends left nothing behind


@pytest.mark.parametrize("data", [
    {"password": "x"},
    {"backup": {"location": "sftp://h", "credentials": {"SFTP_Password": "x"}}},
    {"headers": [{"vmware-api-session-id": "abc"}]},
    {"api_token": "t"},
    {"clientSecret": "s"},
])
def test_secret_keys_refused(jpath: Path, data: dict) -> None:
    with Journal.open(jpath) as j:
        with pytest.raises(ValueError, match="secret-looking"):
            j.append("note", data=data)
        assert j.events() == []
    raw = jpath.read_bytes() + (Path(str(jpath) + "-wal").read_bytes() if Path(str(jpath) + "-wal").exists() else b"")
    assert b'"x"' not in raw and b"abc" not in raw


def test_started_unconfirmed_and_reconcile(jpath: Path) -> None:
    with Journal.open(jpath) as j:
        j.append("step", node="psc-a", step="psc-a/backup", status="started")
        j.append("step", node="psc-a", step="psc-a/backup", status="succeeded")
        crashed = j.append("step", node="psc-a", step="psc-a/upgrade", status="started", data={"job_id": "u-1"})
        j.append("step", node="psc-b", step="psc-b/precheck", status="started")
        j.append("step", node="psc-b", step="psc-b/precheck", status="failed", data={"error": "boom"})
        assert j.started_unconfirmed() == [crashed]
        assert j.step_state("psc-a/upgrade") == "started"
        assert j.step_state("psc-b/precheck") == "failed"
    with Journal.open(jpath) as j:  # as after a crash: found again on reopen
        assert [e.step for e in j.started_unconfirmed()] == ["psc-a/upgrade"]
        j.append("step", node="psc-a", step="psc-a/upgrade", status="reconciled",
                 data={"outcome": "not_done", "observed_version": "6.5.0"})
        assert j.started_unconfirmed() == []
        assert j.step_state("psc-a/upgrade") is None  # must run again
        j.append("step", node="psc-a", step="psc-a/upgrade", status="started")
        j.append("step", node="psc-a", step="psc-a/upgrade", status="reconciled", data={"outcome": "succeeded"})
        assert j.step_state("psc-a/upgrade") == "succeeded"
        assert j.step_state("psc-a/upgrade", node="psc-b") is None


def test_update_and_delete_blocked_by_triggers(jpath: Path) -> None:
    with Journal.open(jpath) as j:
        _fill(j, 1)
    db = sqlite3.connect(jpath)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE events SET status='failed' WHERE seq=2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM events WHERE seq=3")
    db.close()


def _tamper(jpath: Path, sql: str, *params: object) -> None:
    """What a person with the sqlite3 shell would do: drop the guard trigger and edit."""
    db = sqlite3.connect(jpath, isolation_level=None)
    db.execute("DROP TRIGGER IF EXISTS events_no_update")
    db.execute("DROP TRIGGER IF EXISTS events_no_delete")
    db.execute(sql, params)
    db.close()


def test_chain_detects_row_edited_with_sqlite(jpath: Path) -> None:
    with Journal.open(jpath) as j:
        _fill(j, 3)
    _tamper(jpath, "UPDATE events SET status='succeeded' WHERE seq=4")
    with pytest.raises(JournalCorrupt) as info:
        Journal.open(jpath)
    err = info.value
    assert err.exit_code == 2 and err.seq == 4
    assert str(jpath) in str(err) and "seq 4" in str(err)


def test_chain_detects_edit_with_recomputed_row_hash(jpath: Path) -> None:
    """Even fixing the edited row's own hash breaks the link to the next row."""
    with Journal.open(jpath) as j:
        _fill(j, 3)
    _tamper(jpath, "UPDATE events SET data='{\"version_after\":\"7.0\"}', hash=? WHERE seq=3", "f" * 64)
    with pytest.raises(JournalCorrupt) as info:
        Journal.open(jpath)
    assert info.value.seq == 3


def test_chain_detects_deleted_rows(jpath: Path) -> None:
    with Journal.open(jpath) as j:
        _fill(j, 3)
    _tamper(jpath, "DELETE FROM events WHERE seq=3")
    with pytest.raises(JournalCorrupt, match="seq 3 is missing"):
        Journal.open(jpath)


def test_head_detects_rows_removed_from_the_end(jpath: Path) -> None:
    with Journal.open(jpath) as j:
        _fill(j, 3)  # 7 rows
    _tamper(jpath, "DELETE FROM events WHERE seq >= 6")
    with pytest.raises(JournalCorrupt, match="head mismatch") as info:
        Journal.open(jpath)
    assert info.value.seq == 6


def test_truncated_file_is_corrupt(jpath: Path) -> None:
    with Journal.open(jpath) as j:
        _fill(j, 200)
    size = jpath.stat().st_size
    assert not Path(str(jpath) + "-wal").exists()  # clean close checkpointed everything
    os.truncate(jpath, size // 2)
    with pytest.raises(JournalCorrupt) as info:
        Journal.open(jpath)
    assert info.value.exit_code == 2 and str(jpath) in str(info.value)


def test_garbage_tail_is_corrupt(jpath: Path) -> None:
    """SQLite itself ignores bytes after its last page; we do not trust such a file."""
    with Journal.open(jpath) as j:
        _fill(j, 20)
    with open(jpath, "ab") as fh:
        fh.write(os.urandom(3000))
    with pytest.raises(JournalCorrupt, match="garbage or torn tail"):
        Journal.open(jpath)


def test_overwritten_tail_pages_are_corrupt(jpath: Path) -> None:
    with Journal.open(jpath) as j:
        _fill(j, 200)
    size = jpath.stat().st_size
    with open(jpath, "r+b") as fh:
        fh.seek(size - 8192)
        fh.write(os.urandom(8192))
    with pytest.raises(JournalCorrupt):
        Journal.open(jpath)


@pytest.mark.parametrize("content", [b"", b"not a database at all\n" * 10])
def test_empty_or_foreign_file_is_corrupt(jpath: Path, content: bytes) -> None:
    jpath.parent.mkdir(parents=True)
    jpath.write_bytes(content)
    with pytest.raises(JournalCorrupt):
        Journal.open(jpath)
    assert jpath.read_bytes() == content  # never "repaired" or recreated


def test_sigkill_right_after_append_is_durable(jpath: Path) -> None:
    code = f"""
import os, signal, sys
from orchestrator.engine.journal import Journal
j = Journal.open({str(jpath)!r})
j.append("step", run_id="r9", node="vc-1", step="vc-1/upgrade", status="started", data={{"job_id": "j-1"}})
e = j.append("step", run_id="r9", node="vc-1", step="vc-1/upgrade", status="succeeded", data={{"v": "7.0"}})
sys.stdout.write(str(e.seq)); sys.stdout.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = _run_child(code)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout == "2"
    assert Path(str(jpath) + "-wal").exists()  # never checkpointed: recovery comes from the WAL
    with Journal.open(jpath) as j:
        events = j.events()
        assert [(e.seq, e.status) for e in events] == [(1, "started"), (2, "succeeded")]
        assert events[1].data == {"v": "7.0"}
        assert j.step_state("vc-1/upgrade") == "succeeded"


def test_sigkill_mid_step_is_found_by_started_unconfirmed(jpath: Path) -> None:
    code = f"""
import os, signal
from orchestrator.engine.journal import Journal
j = Journal.open({str(jpath)!r})
j.append("step", node="psc-a", step="psc-a/upgrade", status="started", data={{"job_id": "u-7"}})
os.kill(os.getpid(), signal.SIGKILL)
"""
    assert _run_child(code).returncode == -signal.SIGKILL
    with Journal.open(jpath) as j:
        [pending] = j.started_unconfirmed()
        assert (pending.node, pending.step, pending.data) == ("psc-a", "psc-a/upgrade", {"job_id": "u-7"})


def test_reader_in_other_process_sees_appends(jpath: Path) -> None:
    with Journal.open(jpath) as j:
        j.append("window", status="opened", data={"until": "02:00"})
        proc = _run_child(
            f"from orchestrator.engine.journal import Journal\n"
            f"j = Journal.open({str(jpath)!r}); print(len(j.events())); "
            f"j.append('note', data={{'text': 'from child'}}); j.close()"
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "1"
        assert [e.kind for e in j.events()] == ["window", "note"]
        assert j.append("window", status="closed").seq == 3  # chain continues after the other writer
    with Journal.open(jpath):
        pass


def test_export_jsonl(jpath: Path, tmp_path: Path) -> None:
    with Journal.open(jpath) as j:
        written = _fill(j, 2)
        out = j.export_jsonl(tmp_path / "journal.jsonl")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["seq"] for line in lines] == [e.seq for e in written]
    assert lines[0]["prev_hash"] == GENESIS_HASH
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(lines, lines[1:]))
    assert lines[2]["data"] == written[2].data


def test_closed_journal_refuses(jpath: Path) -> None:
    j = Journal.open(jpath)
    j.close()
    j.close()
    with pytest.raises(Exception, match="closed"):
        j.append("note")


def test_bench_append_helper(tmp_path: Path) -> None:
    per_append = bench_append(5, directory=tmp_path)
    assert per_append > 0
    assert list(tmp_path.iterdir()) == []  # cleans up after itself


def test_lazy_journal_is_created_by_its_first_append_only(tmp_path):
    """A command refused after it opened the journal leaves no file behind; the first event creates it,
    and a later open sees that event through the ordinary, verified path."""
    path = tmp_path / "state" / "vsphere.local" / "journal.sqlite"
    j = Journal.open_lazy(path)
    assert (j.events(), j.head()[0], j.step_state("psc/upgrade/psc-a"), j.started_unconfirmed()) == ([], 0, None, [])
    j.close()
    assert not (tmp_path / "state").exists()
    j = Journal.open_lazy(path)
    j.append("run.start", run_id="r1", plan_hash="ph", data={"command": "backup"})
    j.close()
    again = Journal.open_lazy(path)
    assert [e.kind for e in again.events()] == ["run.start"] and again.head()[0] == 1
    again.close()
