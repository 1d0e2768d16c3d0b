"""The domain journal: an append-only, crash-safe, tamper-evident event log.

Why it exists: vcwave upgrades live PSCs and vCenters one at a time, and a run can die anywhere (power,
SIGKILL, an installer that hangs). The journal is the single source of truth for where the domain stands:
every step start/finish, every backup taken, every snapshot set, every powered-off source appliance kept for
rollback is one event, appended *before* vcwave moves on. Everything else (resume point, rollback assets,
the report) is computed from the events; nothing is ever updated or deleted.

Storage choices and why:

* **SQLite, WAL mode, ``synchronous=FULL``**, one file per domain at
  ``<state_dir>/<domain>/journal.sqlite`` (see :func:`journal_path`). A commit in WAL mode is atomic (a
  transaction is either fully in the log or not at all; a torn tail of the WAL is discarded by its frame
  checksums) and with ``synchronous=FULL`` the WAL is fsync'ed before the commit returns, so when
  :meth:`Journal.append` returns the event survives a process kill *and* an OS crash / power loss.
  WAL also lets ``vcwave status`` read while a run writes.
* **A SHA-256 hash chain per row**: ``hash = sha256(prev_hash + canonical_json(row))``, starting from 64
  zeros, plus the head (last seq and hash) kept in the ``meta`` table in the same transaction. SQLite only
  protects its own structures; it will happily return a row whose bytes were flipped by bit rot inside a
  valid page, a row edited by hand with the ``sqlite3`` shell, or ignore garbage appended after the last
  page. The chain makes any such change visible at open. It detects corruption and naive edits; it cannot
  stop someone who rewrites every later row and the head on purpose (that needs an external anchor: print
  :meth:`Journal.head` in the report).
* **Checks at open** (:meth:`Journal.open`): SQLite header, file length consistent with the page count (a
  garbage tail), the hash chain row by row (naming the first bad ``seq``), head consistency (rows removed
  from the end), then ``PRAGMA integrity_check``. Any failure raises :class:`JournalCorrupt` (exit 2): a
  journal we cannot trust must stop the run, never be silently repaired or recreated.
* **New files are built aside and linked into place** once the schema is committed, so a file at the
  journal path is always a complete journal; an empty or schema-less file there means corruption.

Event kinds (``Event.kind``) and what they carry:

``run.start``         a command starts (run_id required; data: command, argv, vcwave version, plan summary).
``run.end``           a command ends (run_id required; status e.g. succeeded|failed|aborted; data: exit code).
``step``              a plan step on a node. ``status`` is one of ``started | succeeded | failed | skipped |
                      reconciled``. ``started`` is written *before* touching the node, the outcome after.
                      ``reconciled`` is written when, after a crash, the engine checked the live node for a
                      step left ``started``; its ``data["outcome"]`` is ``succeeded | failed | not_done``
                      (``not_done``: the step had no effect and must run again).
                      data: versions before/after, job/task ids, method, error text...
``backup``            a backup that was taken and verified. ``node`` required; data requires non-empty
                      ``backup_id, method, domain_version, node_version`` and a ``location`` key (may be ""
                      when the id alone locates it, e.g. a snapshot); ts is the event time.
``snapshot_set``      a consistent set of VM snapshots (data: snapshot ids per node, management vCenter).
``source_appliance``  a powered-off source appliance kept as a rollback asset (data: vm, moref, version).
``window``            a maintenance window; status ``opened | closed``.
``fact``              pre-upgrade facts (instance UUID, morefs fingerprint, versions...) used to prove later
                      that a node is still the same node.
``note``              free text for humans (data: text).
``disagreement``      the live domain contradicts the journal about a node (``core/live.py``); status ``open``
                      (data: field, journal, live) when first seen or changed, ``resolved`` when it no longer
                      holds. The live answer wins; this keeps when and how they differed.

Secrets: nothing secret may ever be journaled. :meth:`Journal.append` refuses ``data`` with a key that
looks like a password, secret, token, session, cookie, authorization or private/API key, at any depth.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets as _secrets
import sqlite3
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from orchestrator.engine.durable import fsync_dir as _fsync_dir
from orchestrator.core.secret_keys import is_secret_key
from orchestrator.errors import InputError, VcwaveError
from orchestrator.private import private_dirs, private_fd

FORMAT = "vcwave-journal"
SCHEMA_VERSION = 1
GENESIS_HASH = "0" * 64
SQLITE_MAGIC = b"SQLite format 3\x00"

KINDS = frozenset(
    {"run.start", "run.end", "step", "backup", "snapshot_set", "source_appliance", "window", "fact", "note",
     "disagreement", "campaign"}
)
STEP_STATUSES = frozenset({"started", "succeeded", "failed", "skipped", "reconciled"})
RECONCILE_OUTCOMES = frozenset({"succeeded", "failed", "not_done"})
WINDOW_STATUSES = frozenset({"opened", "closed"})
BACKUP_REQUIRED = ("backup_id", "method", "domain_version", "node_version")


STR_FIELDS = ("kind", "run_id", "plan_hash", "phase", "wave", "node", "step", "action", "status")
FILTERABLE = frozenset(STR_FIELDS)

_SCHEMA = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE events (
    seq       INTEGER PRIMARY KEY,
    ts        REAL NOT NULL,
    kind      TEXT NOT NULL,
    run_id    TEXT NOT NULL,
    plan_hash TEXT NOT NULL,
    phase     TEXT NOT NULL,
    wave      TEXT NOT NULL,
    node      TEXT NOT NULL,
    step      TEXT NOT NULL,
    action    TEXT NOT NULL,
    status    TEXT NOT NULL,
    data      TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX events_step ON events(step, seq);
CREATE INDEX events_kind ON events(kind, seq);
-- Defence in depth against our own bugs: the journal is append-only.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'vcwave journal is append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'vcwave journal is append-only'); END;
"""


class JournalCorrupt(VcwaveError):
    """The journal file cannot be trusted (torn, truncated, garbage, edited). Exit 2; nothing is done.

    The message names the file and, when known, the first bad row (``seq``). vcwave never repairs or
    recreates a corrupt journal by itself: the operator must look (and restore it from a copy).
    """

    exit_code = 2

    def __init__(self, path: Path | str, reason: str, seq: int | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        self.seq = seq
        where = f"; first bad row: seq {seq}" if seq is not None else ""
        super().__init__(
            f"journal {self.path} is corrupt: {reason}{where}. vcwave will not trust it; "
            "restore it from a copy or investigate before running anything on this domain"
        )


@dataclass(frozen=True)
class Event:
    """One journal row. ``data`` is a fresh dict per Event (mutating it changes nothing on disk)."""

    seq: int
    ts: float
    kind: str
    run_id: str
    plan_hash: str
    phase: str
    wave: str
    node: str
    step: str
    action: str
    status: str
    data: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def journal_path(state_dir: Path | str, domain: str) -> Path:
    """``<state_dir>/<domain>/journal.sqlite``; the domain name must be a plain directory name."""
    if not domain or domain in {".", ".."} or "/" in domain or "\\" in domain or "\x00" in domain:
        raise InputError(f"domain name {domain!r} cannot be used as a state directory name", rule="")
    return Path(state_dir) / domain / "journal.sqlite"


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces, no NaN) — the bytes the hash chain is computed over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def row_hash(prev_hash: str, row: dict) -> str:
    """``sha256(prev_hash + canonical_json(row))`` where row holds seq, ts, the string fields and data."""
    return hashlib.sha256((prev_hash + canonical_json(row)).encode("utf-8")).hexdigest()


def find_secret_keys(data: Any, path: str = "data") -> list[str]:
    """Paths (e.g. ``data.backup.password``) of keys that look secret, at any depth of dicts/lists."""
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            sub = f"{path}.{key}"
            if is_secret_key(str(key)):
                found.append(sub)
            found.extend(find_secret_keys(value, sub))
    elif isinstance(data, (list, tuple)):
        for i, value in enumerate(data):
            found.extend(find_secret_keys(value, f"{path}[{i}]"))
    return found


def _non_str_keys(data: Any, path: str = "data") -> list[str]:
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if not isinstance(key, str):
                found.append(f"{path}[{key!r}]")
            found.extend(_non_str_keys(value, f"{path}.{key}"))
    elif isinstance(data, (list, tuple)):
        for i, value in enumerate(data):
            found.extend(_non_str_keys(value, f"{path}[{i}]"))
    return found




def _event_row(seq: int, ts: float, fields: dict[str, str], data: dict) -> dict:
    row = {"seq": seq, "ts": ts, "data": data}
    row.update(fields)
    return row


class Journal:
    """An open domain journal. Use :meth:`open`; close with :meth:`close` or a ``with`` block.

    Safe to share between threads (one connection guarded by a lock). Several processes may open the same
    file (``vcwave status`` while a run writes); appends are serialised by ``BEGIN IMMEDIATE``, but only one
    command should write a domain at a time: that is what :class:`orchestrator.engine.lock.DomainLock` is for.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, *, on_disk: bool = True) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = conn
        self._mutex = threading.Lock()
        self._on_disk = on_disk
        # Reads see only events after this seq: the current campaign's (core/attempts.py). 0: all of them.
        self.floor = 0

    @classmethod
    def open_lazy(cls, path: Path | str) -> "Journal":
        """Like :meth:`open`, but a journal that does not exist yet is created only by the first append.

        Why: a command refused after it opened the journal (a guard, a bad flag, a server's bad answer before
        any step) must leave nothing behind; until then reads see an empty journal held in memory."""
        path = Path(path)
        if path.exists():
            return cls.open(path)
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        conn.executescript(_empty_script())
        return cls(path, conn, on_disk=False)

    def _materialize(self) -> None:
        """The first append of a lazily opened journal: create (or join) the file, then verify it."""
        with self._mutex:
            if self._on_disk:
                return
            conn = self._require_open()
            if not self.path.exists():
                type(self)._create(self.path)
            self._conn = type(self)._connect(self.path)
            self._on_disk = True
            conn.close()
        self.verify()

    # ------------------------------------------------------------------ open / verify
    @classmethod
    def open(cls, path: Path | str) -> "Journal":
        """Open (creating it if absent) and verify the journal at ``path``. Raises :class:`JournalCorrupt`."""
        path = Path(path)
        if not path.exists():
            cls._create(path)
        conn = cls._connect(path)
        journal = cls(path, conn)
        try:
            journal.verify()
        except BaseException:
            journal.close()
            raise
        return journal

    @classmethod
    def _create(cls, path: Path) -> None:
        """Build a complete empty journal aside, then hard-link it into place (atomic, never overwrites)."""
        if not path.parent.is_dir():
            private_dirs(path.parent)
            _fsync_dir(path.parent.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{_secrets.token_hex(4)}.tmp")
        try:
            os.close(private_fd(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL))  # 0600: SQLite gives its -wal/-shm
            conn = sqlite3.connect(tmp, isolation_level=None)                # the database file's mode
            try:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise VcwaveError(f"journal {path}: this filesystem does not support SQLite WAL mode")
                conn.execute("PRAGMA synchronous=FULL")
                conn.executescript(_empty_script())
            finally:
                conn.close()  # checkpoints and removes the -wal/-shm of the temporary file
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process created it first: use theirs
        finally:
            for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
                try:
                    leftover.unlink()
                except FileNotFoundError:
                    pass
        _fsync_dir(path.parent)

    @classmethod
    def _connect(cls, path: Path) -> sqlite3.Connection:
        try:
            size = path.stat().st_size
            with open(path, "rb") as fh:
                header = fh.read(len(SQLITE_MAGIC))
        except OSError as exc:
            raise VcwaveError(f"journal {path}: cannot read it: {exc}") from exc
        if size == 0:
            raise JournalCorrupt(path, "the file is empty (a journal is never empty once created)")
        if header != SQLITE_MAGIC:
            raise JournalCorrupt(path, "not a SQLite database (bad header)")
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
        except sqlite3.Error as exc:
            raise JournalCorrupt(path, f"SQLite cannot open it: {exc}") from exc
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise VcwaveError(f"journal {path}: could not switch to WAL mode (got {mode!r})")
            conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise JournalCorrupt(path, f"SQLite cannot read it: {exc}") from exc
        return conn

    def verify(self) -> None:
        """Full check (file length, meta, hash chain, head, ``PRAGMA integrity_check``). Raises JournalCorrupt.

        Run at every open; cheap enough to call again before a rollback decision.
        """
        with self._mutex:
            conn = self._require_open()
            try:
                self._verify_locked(conn)
            except sqlite3.DatabaseError as exc:
                raise JournalCorrupt(self.path, f"SQLite cannot read it: {exc}") from exc

    def _verify_locked(self, conn: sqlite3.Connection) -> None:
        path = self.path
        conn.execute("BEGIN")  # one read snapshot for the whole check
        try:
            # Reading sqlite_master first pins our read snapshot, so no checkpoint can grow the file past it.
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            page_count = conn.execute("PRAGMA page_count").fetchone()[0]
            # The journal never shrinks (no DELETE, no VACUUM), so the main file can be shorter than the
            # logical size (pages still in the WAL) but never longer: extra bytes are a garbage tail that
            # SQLite itself would silently ignore.
            size = path.stat().st_size
            if size % page_size or size > page_count * page_size:
                raise JournalCorrupt(
                    path,
                    f"file length {size} does not match {page_count} pages of {page_size} bytes "
                    "(garbage or torn tail)",
                )
            if not {"meta", "events"} <= tables:
                raise JournalCorrupt(path, "journal tables are missing")
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("format") != FORMAT:
                raise JournalCorrupt(path, f"not a vcwave journal (format {meta.get('format')!r})")
            if meta.get("schema_version") != str(SCHEMA_VERSION):
                raise JournalCorrupt(path, f"unsupported journal schema version {meta.get('schema_version')!r}")
            last_seq, last_hash = self._verify_chain(conn)
            if meta.get("head_seq") != str(last_seq) or meta.get("head_hash") != last_hash:
                head = meta.get("head_seq", "")
                raise JournalCorrupt(
                    path,
                    f"head mismatch: meta says the last row is seq {head} with hash {meta.get('head_hash', '')[:12]}, "
                    f"the table ends at seq {last_seq} (rows removed from the end, or meta edited)",
                    seq=last_seq + 1 if head.isdigit() and int(head) > last_seq else None,
                )
            problems = [r[0] for r in conn.execute("PRAGMA integrity_check(20)").fetchall()]
            if problems != ["ok"]:
                raise JournalCorrupt(path, "SQLite integrity_check failed: " + "; ".join(problems[:5]))
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    def _verify_chain(self, conn: sqlite3.Connection) -> tuple[int, str]:
        """Walk every row in seq order; return (last seq, last hash). Names the first bad seq on failure."""
        expected_seq, prev = 1, GENESIS_HASH
        cur = conn.execute(
            "SELECT seq, ts, " + ", ".join(STR_FIELDS) + ", data, prev_hash, hash FROM events ORDER BY seq"
        )
        while True:
            try:
                row = cur.fetchone()
            except sqlite3.DatabaseError as exc:
                raise JournalCorrupt(self.path, f"row unreadable ({exc})", seq=expected_seq) from exc
            if row is None:
                return expected_seq - 1, prev
            seq, ts = row[0], row[1]
            fields = dict(zip(STR_FIELDS, row[2 : 2 + len(STR_FIELDS)]))
            data_text, prev_hash, stored_hash = row[2 + len(STR_FIELDS) :]
            if seq != expected_seq:
                raise JournalCorrupt(self.path, f"row seq {expected_seq} is missing (next row is {seq})",
                                     seq=expected_seq)
            if not isinstance(ts, float) or not all(isinstance(v, str) for v in fields.values()):
                raise JournalCorrupt(self.path, "row has a column of the wrong type", seq=seq)
            try:
                data = json.loads(data_text)
            except (TypeError, ValueError):
                raise JournalCorrupt(self.path, "row data is not valid JSON", seq=seq) from None
            if prev_hash != prev:
                raise JournalCorrupt(self.path, "hash chain broken (prev_hash does not match the row before)",
                                     seq=seq)
            if row_hash(prev, _event_row(seq, ts, fields, data)) != stored_hash:
                raise JournalCorrupt(self.path, "row content does not match its hash (edited or bit rot)",
                                     seq=seq)
            expected_seq, prev = seq + 1, stored_hash

    # ------------------------------------------------------------------ writing
    def append(
        self,
        kind: str,
        *,
        run_id: str = "",
        plan_hash: str = "",
        phase: str = "",
        wave: str = "",
        node: str = "",
        step: str = "",
        action: str = "",
        status: str = "",
        data: dict | None = None,
    ) -> Event:
        """Append one event; it is durable (fsync'ed WAL commit) when this returns.

        Raises ValueError for an unknown kind, an invalid status, missing required data, data that is not
        JSON, or data with a secret-looking key (the guard: nothing secret is ever journaled).
        """
        fields = {"kind": kind, "run_id": run_id, "plan_hash": plan_hash, "phase": phase, "wave": wave,
                  "node": node, "step": step, "action": action, "status": status}
        for name, value in fields.items():
            if not isinstance(value, str):
                raise ValueError(f"journal event field {name!r} must be a string, got {type(value).__name__}")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ValueError(f"journal event data must be a dict, got {type(data).__name__}")
        leaked = find_secret_keys(data)
        if leaked:
            raise ValueError(
                "refusing to journal secret-looking key(s) " + ", ".join(leaked)
                + ": nothing secret may ever be written to the journal"
            )
        bad_keys = _non_str_keys(data)
        if bad_keys:
            raise ValueError(f"journal event data keys must be strings: {', '.join(bad_keys)}")
        try:
            data_text = canonical_json(data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"journal event data is not plain JSON: {exc}") from exc
        data = json.loads(data_text)  # exactly what a later read returns (tuples -> lists)
        _validate(fields, data)

        if not self._on_disk:
            self._materialize()
        with self._mutex:
            conn = self._require_open()
            ts = time.time()
            conn.execute("BEGIN IMMEDIATE")
            try:
                last = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
                seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
                digest = row_hash(prev, _event_row(seq, ts, fields, data))
                conn.execute(
                    "INSERT INTO events(seq, ts, " + ", ".join(STR_FIELDS) + ", data, prev_hash, hash) "
                    "VALUES (?, ?, " + ", ".join("?" * len(STR_FIELDS)) + ", ?, ?, ?)",
                    (seq, ts, *(fields[f] for f in STR_FIELDS), data_text, prev, digest),
                )
                conn.executemany(
                    "UPDATE meta SET value = ? WHERE key = ?", ((str(seq), "head_seq"), (digest, "head_hash"))
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return Event(seq=seq, ts=ts, data=data, **fields)

    # ------------------------------------------------------------------ reading
    def events(self, **filters: str | Iterable[str]) -> list[Event]:
        """Events in seq order, filtered by exact match on kind/node/step/action/status/run_id (also
        plan_hash/phase/wave). A filter value may be a string or a collection of strings (any of them).
        ``since=<seq>`` keeps only events after that seq."""
        clauses, params = [], []
        since = max(int(filters.pop("since", None) or 0), self.floor)
        if since:
            clauses.append("seq > ?")
            params.append(since)
        for name, value in filters.items():
            if name not in FILTERABLE:
                raise ValueError(f"unknown journal filter {name!r} (known: {', '.join(sorted(FILTERABLE))}, since)")
            values = [value] if isinstance(value, str) else list(value)
            if not values or not all(isinstance(v, str) for v in values):
                raise ValueError(f"journal filter {name!r} needs a string or a non-empty collection of strings")
            clauses.append(f"{name} IN ({', '.join('?' * len(values))})")
            params.extend(values)
        sql = "SELECT seq, ts, " + ", ".join(STR_FIELDS) + ", data FROM events"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY seq"
        with self._mutex:
            rows = self._require_open().execute(sql, params).fetchall()
        return [_row_to_event(r) for r in rows]

    def step_state(self, step_id: str, *, node: str | None = None) -> str | None:
        """Last known state of a step: ``started | succeeded | failed | skipped`` or None (never started,
        or reconciled as ``not_done``). A ``reconciled`` event counts as its ``data["outcome"]``.
        ``node`` narrows it when step ids are not unique across nodes."""
        sql = "SELECT status, data FROM events WHERE kind = 'step' AND step = ? AND seq > ?"
        params: list[str | int] = [step_id, self.floor]
        if node is not None:
            sql += " AND node = ?"
            params.append(node)
        with self._mutex:
            row = self._require_open().execute(sql + " ORDER BY seq DESC LIMIT 1", params).fetchone()
        if row is None:
            return None
        return _effective_status(row[0], json.loads(row[1]))

    def started_unconfirmed(self) -> list[Event]:
        """The ``started`` events of steps (per node+step) whose last event is still ``started``: the run
        died mid-step, so the live node must be checked and the outcome journaled (``reconciled``) before
        anything else happens. Oldest first."""
        last: dict[tuple[str, str], Event] = {}
        for event in self.events(kind="step"):
            last[(event.node, event.step)] = event
        return sorted((e for e in last.values() if e.status == "started"), key=lambda e: e.seq)

    def head(self) -> tuple[int, str]:
        """(last seq, its hash): an anchor to print in reports so a later rewrite of history is visible."""
        with self._mutex:
            row = self._require_open().execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else (0, GENESIS_HASH)

    def export_jsonl(self, path: Path | str) -> Path:
        """Write every event (with its prev_hash/hash) as one canonical JSON object per line."""
        path = Path(path)
        with self._mutex:
            rows = self._require_open().execute(
                "SELECT seq, ts, " + ", ".join(STR_FIELDS) + ", data, prev_hash, hash FROM events ORDER BY seq"
            ).fetchall()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for r in rows:
                record = _row_to_event(r[:-2]).as_dict()
                record["prev_hash"], record["hash"] = r[-2], r[-1]
                fh.write(canonical_json(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return path

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close (idempotent). The last connection checkpoints the WAL into the main file."""
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise VcwaveError(f"journal {self.path} is closed")
        return self._conn


def _empty_script() -> str:
    """SQL that builds an empty journal (schema + meta head at genesis) in one transaction."""
    meta = {
        "format": FORMAT,
        "schema_version": str(SCHEMA_VERSION),
        "created": repr(time.time()),
        "head_seq": "0",
        "head_hash": GENESIS_HASH,
    }
    inserts = "".join(f"INSERT INTO meta(key, value) VALUES ('{k}', '{v}');" for k, v in sorted(meta.items()))
    return "BEGIN IMMEDIATE;" + _SCHEMA + inserts + "COMMIT;"


def _validate(fields: dict[str, str], data: dict) -> None:
    kind, status = fields["kind"], fields["status"]
    if kind not in KINDS:
        raise ValueError(f"unknown journal event kind {kind!r} (known: {', '.join(sorted(KINDS))})")
    if kind in ("run.start", "run.end") and not fields["run_id"]:
        raise ValueError(f"{kind} event needs a run_id")
    if kind == "step":
        if not fields["step"]:
            raise ValueError("step event needs a step id")
        if status not in STEP_STATUSES:
            raise ValueError(f"step status {status!r} is not one of {', '.join(sorted(STEP_STATUSES))}")
        if status == "reconciled" and data.get("outcome") not in RECONCILE_OUTCOMES:
            raise ValueError(
                f"reconciled step event needs data['outcome'] in {', '.join(sorted(RECONCILE_OUTCOMES))}"
            )
    elif kind == "backup":
        if not fields["node"]:
            raise ValueError("backup event needs the node it backs up")
        missing = [k for k in BACKUP_REQUIRED if data.get(k) in (None, "")]
        if "location" not in data:
            missing.append("location")
        if missing:
            raise ValueError(f"backup event data is missing {', '.join(missing)}")
    elif kind == "disagreement" and (not fields["node"] or status not in ("open", "resolved")):
        raise ValueError("disagreement event needs a node and status open or resolved")
    elif kind == "window" and status not in WINDOW_STATUSES:
        raise ValueError(f"window status {status!r} is not one of opened, closed")


def _effective_status(status: str, data: dict) -> str | None:
    if status == "reconciled":
        outcome = data.get("outcome")
        return None if outcome == "not_done" else outcome
    return status


def _row_to_event(r: tuple) -> Event:
    fields = dict(zip(STR_FIELDS, r[2 : 2 + len(STR_FIELDS)]))
    return Event(seq=r[0], ts=r[1], data=json.loads(r[2 + len(STR_FIELDS)]), **fields)


def bench_append(n: int = 200, directory: Path | str | None = None) -> float:
    """Seconds per durable :meth:`Journal.append` (typical step event), measured on a fresh journal in
    ``directory`` (default: a temp dir; pass the real state dir to measure its disk)."""
    if n < 1:
        raise ValueError("n must be >= 1")
    with tempfile.TemporaryDirectory(prefix="vcwave-bench-", dir=directory) as tmp:
        journal = Journal.open(Path(tmp) / "bench" / "journal.sqlite")
        try:
            data = {"version_before": "6.5.0.32000", "version_after": "6.7.0.40000", "job_id": "upgrade-42",
                    "method": "installer"}
            start = time.perf_counter()
            for i in range(n):
                journal.append("step", run_id="bench", plan_hash="0" * 16, phase="psc", wave="1",
                               node=f"psc-{i % 4}", step=f"psc-{i % 4}/upgrade", action="upgrade",
                               status="started" if i % 2 == 0 else "succeeded", data=data)
            elapsed = time.perf_counter() - start
        finally:
            journal.close()
    return elapsed / n
