"""The bad-inputs corpus (tests/harness/bad/cases.yml): every bad inventory, playbook, plan, flag, credential,
journal and server answer must end with exit 2, a message naming the file/line/field or node/path, no
traceback, and nothing written.

How a case is judged, from outside vcwave's code: the exit code; each `expect` fragment on stderr; no
"Traceback"; every file under the case's folder and the shared state folder byte-identical before and after
(journal -wal/-shm aside); the lab's versions unchanged; the saved plan untouched; no lock left. A server-
answer case (`faults:`) reaches the nodes, so its journal may record the failed attempt: there the check is
that no step was journaled as done.

Cost: the commands run in this process (`invoke -r ROOT ...` through Invoke's own Program, stdout/stderr
captured, `SystemExit` read as the exit code) against one lab started for the whole corpus; only cases marked
`subprocess: true` pay for a real `python -m invoke` process, to keep the exit-code plumbing honest. As in
the harness, the engine's polling and the retry waits are scaled for the lab (the CLI has no flag for them);
a real `python -m invoke` has production waits, so a case that meets a server's garbage answer (retried five
times: 7.5 s) says `subprocess: tuned`: its own process and exit status, through the harness's entry point.
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Iterator

from lab.harness import (DEFAULT_POLL, DEFAULT_SCALE, INVOKE_CORE, ROOT, JournalWatch, _lab, _standin, cli_env,
                         journal_file, lab_versions, run_cli)
from orchestrator.core.yamlsrc import dump_plain, load_trusted

BAD_DIR = ROOT / "tests" / "harness" / "bad"
BASE_INVENTORY = ROOT / "examples" / "two-site.yml"
DONE = "kind = 'step' AND status = 'succeeded'"


@dataclass
class BadResult:
    name: str
    command: str
    code: int | None
    stderr: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class BadInputsResult:
    results: list[BadResult]

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results)

    def table(self) -> str:
        w = max(len(r.name) for r in self.results)
        lines = [f"{'case':<{w}}  exit  ok   message (stderr, last line)"]
        for r in self.results:
            msg = (r.stderr.strip().splitlines() or [""])[-1][:110]
            lines.append(f"{r.name:<{w}}  {str(r.code):>4}  {'yes' if r.ok else 'NO ':<3}  {msg}")
            lines += [f"{'':<{w}}              problem: {p}" for p in r.problems]
        lines.append(f"bad inputs refused cleanly: {sum(r.ok for r in self.results)}/{len(self.results)}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- running
@contextlib.contextmanager
def _tuned() -> Iterator[None]:
    """The lab's time scale for polls and retry waits, restored afterwards (see the module doc)."""
    from orchestrator.clients import retry
    from orchestrator.commands import session

    original = session.CommonFlags.options
    session.CommonFlags.options = lambda self: original(replace(self, poll_interval=DEFAULT_POLL,
                                                                deadline_scale=0.01))
    old = retry.set_default_policy(initial_wait=0.01, max_wait=0.05)
    try:
        yield
    finally:
        session.CommonFlags.options = original
        retry.set_default_policy(old)


@contextlib.contextmanager
def _environment(cwd: Path, env: dict[str, str]) -> Iterator[None]:
    """The command's folder and environment, and afterwards the caller's, logging configuration included
    (a command configures structlog to print to the stderr it was given: the captured one)."""
    import structlog

    from orchestrator import log

    old_cwd, old_env = os.getcwd(), dict(os.environ)
    old_log, old_configured = structlog.get_config(), log._configured
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)
        structlog.configure(**old_log)
        log._configured = old_configured


def run_inprocess(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """`invoke -r ROOT args` in this process: (exit code, stderr). An exception that escapes Invoke is
    what a user would see as a traceback, so it is written to the captured stderr as one."""
    from invoke import Program

    err = io.StringIO()
    code = 0
    with _environment(cwd, env), _tuned(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(err):
        try:
            Program(name="invoke", binary="invoke").run(["invoke", *INVOKE_CORE, *args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 - exactly what the check looks for
            traceback.print_exc(file=err)
            code = 1
    return code, err.getvalue()


# ----------------------------------------------------------------------------------------------- cases
def _tamper(kind: str, plan_path: Path, out: Path) -> None:
    data = json.loads(plan_path.read_text())
    if kind == "edit-step":
        data["phases"][1]["steps"][0]["to"] = "6.7 U1"
    elif kind == "edit-hash":
        data["plan_hash"] = "0" * len(data["plan_hash"])
    elif kind == "edit-both":  # a step edited AND the hash "fixed" by hand to something else
        data["phases"][1]["steps"][0]["node"] = "vc-b"
        data["plan_hash"] = "f" * len(data["plan_hash"])
    elif kind == "wrong-format":
        data["format"] = "vcwave-plan/99"
    elif kind == "no-phases":
        data.pop("phases")
    elif kind == "other-domain":
        data["domain"] = "other.local"
    else:
        raise ValueError(f"unknown plan tampering {kind!r}")
    out.write_text(json.dumps(data, indent=1))


def _edited_inventory(case: dict, base: Path) -> str:
    """The base inventory with the case's `edit` ({from, to} or a list of them) applied, each exactly once."""
    text = base.read_text()
    edits = case["edit"] if isinstance(case["edit"], list) else [case["edit"]]
    for e in edits:
        if text.count(e["from"]) < 1:
            raise ValueError(f"{case['name']}: edit 'from' not found in {base.name}: {e['from']!r}")
        text = text.replace(e["from"], e["to"], 1)
    return text


def _with_password_source(ctx: dict[str, str], case_dir: Path, prep: str) -> str:
    text = Path(ctx["lab_inv"]).read_text()
    if prep == "password-env-missing":
        return re.sub(r"password_file: \S+/secrets/sso", "password_env: VCWAVE_HARNESS_UNSET_SSO", text)
    sec = case_dir / "sso"
    sec.write_text(Path(ctx["lab_dir"], "secrets", "sso").read_text())
    os.chmod(sec, 0o644)
    return re.sub(r"password_file: \S+/secrets/sso", f"password_file: {sec}", text)


def _prepare(case: dict, ctx: dict[str, str], case_dir: Path) -> dict[str, str]:
    """Files a case needs, made from the running lab (plans, changed inventories, secrets...)."""
    v = dict(ctx)
    v["case_dir"] = str(case_dir)
    (case_dir / "a-file").write_text("not a folder\n")  # for the --out / --state-dir cases
    if "file" in case:
        dst = case_dir / Path(case["file"]).name
        text = (BAD_DIR / case["file"]).read_text()
        for k, val in ctx.items():
            text = text.replace("{" + k + "}", val)
        dst.write_text(text)
        v["bad"] = str(dst)
    if "edit" in case:
        base = Path(ctx["lab_inv"]) if case.get("base") == "lab" else BASE_INVENTORY
        dst = case_dir / f"{case['name']}.yml"
        dst.write_text(_edited_inventory(case, base))
        v["bad"] = str(dst)
    if "write" in case:  # a plan/inventory file of exactly these characters (`text`) or bytes (`hex`)
        w = case["write"]
        dst = case_dir / w["name"]
        dst.write_bytes(bytes.fromhex(w["hex"]) if "hex" in w else w["text"].encode("utf-8"))
        v["bad"] = str(dst)
    prep = case.get("prepare", "")
    if prep.startswith("tamper:"):
        dst = case_dir / "plan.json"
        _tamper(prep.split(":", 1)[1], Path(ctx["plan"]), dst)
        v["bad"] = str(dst)
    elif prep == "not-json":
        dst = case_dir / "plan.json"
        dst.write_text(Path(ctx["plan"]).read_text()[:200])
        v["bad"] = str(dst)
    elif prep == "inventory-changed":
        inv = load_trusted(Path(ctx["lab_inv"]).read_text())
        inv["nodes"][3]["backup"]["location"] += "/moved"  # an edit after `invoke plan`
        dst = case_dir / "lab-inventory.yml"
        dst.write_text(dump_plain(inv, sort_keys=False))
        v["bad"] = str(dst)
    elif prep in ("password-env-missing", "password-file-0644"):
        dst = case_dir / "lab-inventory.yml"
        dst.write_text(_with_password_source(ctx, case_dir, prep))
        # a plan made from this very inventory, so the hash check passes and the credential is what fails
        code, err = run_inprocess(["plan", "--inventory", str(dst), "--target", ctx["target"], "--out",
                                   str(case_dir / "plan.json")], case_dir, ctx_env(ctx))
        if code != 0:
            raise RuntimeError(f"prepare {prep}: plan failed: {err}")
        v["bad"], v["bad_plan"] = str(dst), str(case_dir / "plan.json")
    elif prep == "corrupt-journal":
        state = case_dir / "state"
        shutil.copytree(ctx["state"], state, ignore=shutil.ignore_patterns("lock"))
        with open(state / "vsphere.local" / "journal.sqlite", "ab") as fh:
            fh.write(b"\x00garbage tail after a torn write\xff" * 37)
        v["bad"] = str(state)
    elif prep:
        raise ValueError(f"unknown prepare {prep!r}")
    return v


def ctx_env(ctx: dict[str, str]) -> dict[str, str]:
    """The environment an administrator has: the lab's folder, and the example inventory's secrets."""
    return cli_env(ctx["lab_dir"], VCWAVE_SSO_PASSWORD="Corpus-Sso-1!", VCWAVE_ROOT_PASSWORD="Corpus-Root-1!",
                   VCWAVE_BACKUP_PASSWORD="Corpus-Backup-1!")


def load_cases(corpus: Path = BAD_DIR) -> list[dict]:
    cases = load_trusted((corpus / "cases.yml").read_text())
    names = [c["name"] for c in cases]
    dup = [n for n, c in collections.Counter(names).items() if c > 1]
    if dup:
        raise ValueError(f"cases.yml: duplicate case names {dup}")
    return cases


# ----------------------------------------------------------------------------------------------- judging
def _files(*roots: Path) -> dict[str, str]:
    """Every file (-> its SHA-256) and folder under `roots` (SQLite's -wal/-shm are a reader's, not a write)."""
    out = {}
    for root in roots:
        for p in sorted(Path(root).rglob("*")) if Path(root).exists() else ():
            if p.is_dir():
                out[str(p)] = "folder"
            elif not p.name.endswith(("-wal", "-shm")):
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _changed(before: dict[str, str], after: dict[str, str], allow: Iterable[str] = ()) -> list[str]:
    allowed = set(allow)
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p) and p not in allowed)


def _count(workdir: Path, where: str = "1 = 1") -> int:
    w = JournalWatch(journal_file(workdir))
    try:
        return w.query(where)
    finally:
        w.close()


def _judge(case: dict, v: dict[str, str], code: int, stderr: str, res: BadResult) -> None:
    if code != case.get("exit", 2):
        res.problems.append(f"exit {code}, expected {case.get('exit', 2)}")
    low = stderr.lower()
    for frag in case.get("expect", []):
        frag = str(frag).format(**v)
        if frag.lower() not in low:
            res.problems.append(f"stderr does not name {frag!r}")
    if "Traceback" in stderr:
        res.problems.append("a traceback instead of a clear message")


def _run_case(case: dict, ctx: dict[str, str], wd: Path, env: dict[str, str]) -> BadResult:
    from lab import manage

    case_dir = wd / "cases" / case["name"]
    case_dir.mkdir(parents=True)
    try:
        v = _prepare(case, ctx, case_dir)
    except (ValueError, KeyError, RuntimeError) as exc:  # a broken case must show as that case, not stop all
        return BadResult(case["name"], "-", None, "", [f"the case cannot be prepared: {exc}"])
    args = [a.format(**v) for a in case["args"]]
    cenv = {k: val for k, val in env.items() if k not in case.get("unset_env", [])}
    lab_dir = Path(ctx["lab_dir"])
    versions0, done0, events0 = lab_versions(lab_dir), _count(wd, DONE), _count(wd)
    files0 = _files(case_dir, Path(ctx["state"]), Path(ctx["plan"]))
    if case.get("faults"):
        manage.control(lab_dir, "/lab/faults", {"seed": 1, "faults": case["faults"]})
    try:
        if case.get("subprocess"):
            r = run_cli(args, case_dir, cenv, fast=case["subprocess"] == "tuned", timeout=60)
            code, stderr = r.returncode, r.stderr
        else:
            code, stderr = run_inprocess(args, case_dir, cenv)
    finally:
        if case.get("faults"):
            manage.control(lab_dir, "/lab/faults", {"faults": []})
    res = BadResult(case["name"], "invoke " + " ".join(shlex.quote(a) for a in args), code, stderr)
    _judge(case, v, code, stderr, res)
    if lab_versions(lab_dir) != versions0:
        res.problems.append("lab versions changed")
    if _count(wd, DONE) != done0:
        res.problems.append("a step was journaled as done")
    journal = str(journal_file(wd))
    if not case.get("faults") and _count(wd) != events0:
        res.problems.append(f"journal changed ({events0} -> {_count(wd)} events)")
    event_log = str(Path(journal).parent / "events.jsonl")  # like the journal, it records a command that acted
    changed = _changed(files0, _files(case_dir, Path(ctx["state"]), Path(ctx["plan"])),
                       allow=[journal, event_log] if case.get("faults") else [])
    if changed:
        res.problems.append("files written: " + ", ".join(changed)[:300])
    if (Path(ctx["state"]) / "vsphere.local" / "lock").exists():
        res.problems.append("a lock file was left behind")
    return res


def bad_inputs(workdir: str | Path, *, corpus: Path = BAD_DIR, only: Iterable[str] | None = None,
               time_scale: float = DEFAULT_SCALE) -> BadInputsResult:
    """Every case of the corpus against one running two-site lab whose plan is made and whose pre-window
    backups are journaled (so that "nothing changed" is measurable); see the module doc."""
    wd = Path(workdir).resolve()
    if wd.exists():
        shutil.rmtree(wd)
    wd.mkdir(parents=True)
    cases = load_cases(corpus)
    if only is not None:
        keep = set(only)
        cases = [c for c in cases if c["name"] in keep]
    lab_dir = wd / "lab"
    target = "6.7 U3"
    with _lab(str(BASE_INVENTORY), lab_dir, time_scale) as info:
        ctx = {"lab_inv": info["inventory"], "plan": str(wd / "plan.json"), "state": str(wd / "state"),
               "lab_dir": str(lab_dir), "target": target, "root": str(ROOT), "installer": _standin(target)}
        env = ctx_env(ctx)
        for args in (["plan", "--inventory", ctx["lab_inv"], "--target", target, "--out", ctx["plan"]],
                     ["backup", "--phase", "pre", "--inventory", ctx["lab_inv"], "--plan", ctx["plan"],
                      "--state-dir", ctx["state"]]):
            code, err = run_inprocess(args, wd, env)
            if code != 0:
                raise RuntimeError(f"bad_inputs setup: {args[0]} exited {code}: {err[-1500:]}")
        return BadInputsResult([_run_case(case, ctx, wd, env) for case in cases])
