"""Playbooks: Ansible-style YAML that says which tasks each wave runs, how many nodes at once, and what a
failure does. Loading refuses any playbook that breaks a rule of the seed, naming the rule and the line.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from orchestrator.core import rules
from orchestrator.core.yamlsrc import Located, load_yaml, loads_yaml
from orchestrator.errors import InputError, Where

PHASES = ("pre", "psc", "vcenter", "post")
TASKS = ("precheck", "backup", "stage", "upgrade", "verify")
HOSTS = ("psc", "vcenter", "all")
PER_PSC = "per-psc"                  # vCenters grouped by their PSC; the groups side by side (the default)
PER_PSC_IN_TURN = "per-psc-in-turn"  # the same groups, one group after another (narrower, longer window)
SERIAL_WORDS = (PER_PSC, PER_PSC_IN_TURN)
_PLAY_FIELDS = {"name", "phase", "hosts", "serial", "tasks", "any_errors_fatal", "backup_first",
                "max_fail_percentage"}


@dataclass(frozen=True)
class Play:
    name: str
    phase: str
    hosts: str
    tasks: tuple[str, ...]
    serial: int | str = 1  # int (0 = all at once), or one of SERIAL_WORDS
    any_errors_fatal: bool = True
    backup_first: bool = False
    line: int = 0


@dataclass(frozen=True)
class Playbook:
    path: str
    plays: tuple[Play, ...]

    def play(self, phase: str) -> Play | None:
        return next((p for p in self.plays if p.phase == phase), None)


def bundled_playbook_path(name: str = "default") -> Path:
    """Path of a playbook shipped with the package (orchestrator/playbooks/, package data), by name: found the
    same way from a checkout and from an installed wheel."""
    return Path(str(resources.files("orchestrator") / "playbooks" / f"{name}.yml"))


def load_playbook(path: str | Path | None = None) -> Playbook:
    p = Path(path) if path else bundled_playbook_path()
    if not p.exists() and path and not str(path).endswith((".yml", ".yaml")):
        p = bundled_playbook_path(str(path))
    return parse_playbook(load_yaml(p, "playbook"), str(p))


def loads_playbook(text: str, filename: str = "<playbook>") -> Playbook:
    return parse_playbook(loads_yaml(text, filename, "playbook"), filename)


def _fail(msg: str, file: str, m: Any = None, key: str = "", rule: str = "") -> None:
    line = m.line_of(key) if isinstance(m, Located) and key else getattr(m, "line", None)
    raise InputError(msg, Where(file=file, line=line or None, field=key), rule=rule)


def parse_playbook(data: Any, filename: str) -> Playbook:
    if not isinstance(data, list) or not data:
        _fail("a playbook is a non-empty YAML list of plays", filename, data)
    plays = tuple(_play(item, i, filename) for i, item in enumerate(data))
    _check_rules(plays, filename, data)
    return Playbook(filename, plays)


def _play(raw: Any, index: int, file: str) -> Play:
    if not isinstance(raw, Located):
        _fail(f"play #{index + 1} must be a mapping", file)
    for k in raw:
        if k not in _PLAY_FIELDS:
            _fail(f"unknown field '{k}' in play (allowed: {', '.join(sorted(_PLAY_FIELDS))})", file, raw, k)
    name = str(raw.get("name") or f"play #{index + 1}")
    phase = raw.get("phase")
    if phase not in PHASES:
        _fail(f"play '{name}': phase must be one of {', '.join(PHASES)}, got {phase!r}", file, raw, "phase")
    hosts = raw.get("hosts")
    if not isinstance(hosts, str) or hosts not in HOSTS:
        detail = ""
        if isinstance(hosts, str) and (hosts.startswith("site") or ":" in hosts):
            _fail(f"play '{name}': hosts '{hosts}' selects one site. {rules.SITE_BY_SITE}", file, raw, "hosts",
                  rule="pscs-first")
        _fail(f"play '{name}': hosts must be one of {', '.join(HOSTS)}, got {hosts!r}{detail}", file, raw, "hosts")
    tasks = raw.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        _fail(f"play '{name}': tasks must be a non-empty list", file, raw, "tasks")
    for t in tasks:
        if t not in TASKS:
            _fail(f"play '{name}': unknown task {t!r} (allowed: {', '.join(TASKS)})", file, raw, "tasks")
    if len(set(tasks)) != len(tasks):
        _fail(f"play '{name}': a task is listed twice", file, raw, "tasks")
    serial = raw.get("serial", 1)
    if not (serial in SERIAL_WORDS or (isinstance(serial, int) and not isinstance(serial, bool) and serial >= 0)):
        _fail(f"play '{name}': serial must be a whole number >= 0 (0 = all at once), '{PER_PSC}' or "
              f"'{PER_PSC_IN_TURN}'", file, raw, "serial")
    fatal = raw.get("any_errors_fatal", True)
    if fatal is not True and "upgrade" in tasks:
        _fail(f"play '{name}': a wave that upgrades must stop at the first failure (any_errors_fatal: true)",
              file, raw, "any_errors_fatal", rule="stop-on-failure")
    if raw.get("max_fail_percentage", 0) not in (0, None):
        _fail(f"play '{name}': max_fail_percentage must be 0: a failed node stops the wave", file, raw,
              "max_fail_percentage", rule="stop-on-failure")
    backup_first = raw.get("backup_first", False)
    if not isinstance(backup_first, bool):
        _fail(f"play '{name}': backup_first must be true or false", file, raw, "backup_first")
    if backup_first and "backup" in tasks:
        _fail(f"play '{name}': backup_first already backs up every node before the wave; drop the 'backup' task "
              f"(or backup_first)", file, raw, "backup_first")
    if backup_first and phase != "vcenter":
        _fail(f"play '{name}': backup_first is for the vcenter wave (backups taken in the upgraded domain)", file,
              raw, "backup_first")
    return Play(name, phase, hosts, tuple(tasks), serial, bool(fatal), backup_first, raw.line)


def _check_rules(plays: tuple[Play, ...], file: str, raw: list) -> None:
    """Seed rules that a playbook can break: order of phases, PSCs one at a time, waves not mixed."""
    order = [p.phase for p in plays]
    if len(set(order)) != len(order):
        dup = next(ph for ph in order if order.count(ph) > 1)
        _fail(f"phase '{dup}' appears in more than one play: each phase is one play", file,
              raw[order.index(dup, order.index(dup) + 1)], "phase",
              rule="pscs-first" if dup in ("psc", "vcenter") else "")
    if order != sorted(order, key=PHASES.index):
        rank = [PHASES.index(o) for o in order]
        bad = next(i for i in range(len(order)) if any(r < rank[i] for r in rank[i + 1:]))  # the play too early
        _fail(f"plays must follow the phase order {' -> '.join(PHASES)} (got {' -> '.join(order)}). "
              f"{rules.SITE_BY_SITE}", file, raw[bad], "phase", rule="pscs-first")
    for play, item in zip(plays, raw):
        if "upgrade" in play.tasks:
            expected = {"psc": "psc", "vcenter": "vcenter"}.get(play.phase)
            if expected is None or play.hosts != expected:
                _fail(f"play '{play.name}': upgrades happen only in the psc wave (hosts: psc) and the vcenter wave "
                      f"(hosts: vcenter). {rules.SITE_BY_SITE}", file, item, "hosts", rule="pscs-first")
        if play.phase == "psc" and "upgrade" in play.tasks:
            verdict = rules.psc_concurrency_allowed(play.serial if isinstance(play.serial, int) else -1)
            if not verdict:
                _fail(verdict.reason, file, item, "serial", rule=verdict.rule)
    for wave in ("psc", "vcenter"):
        play = next((p for p in plays if p.phase == wave), None)
        if play is None or "upgrade" not in play.tasks:
            _fail(f"the playbook has no '{wave}' play that upgrades: both waves are required", file, raw[0])
        if "verify" not in play.tasks or play.tasks.index("verify") < play.tasks.index("upgrade"):
            _fail(f"play '{play.name}': every upgrade is followed by 'verify'", file,
                  raw[plays.index(play)], "tasks", rule="verify-after-upgrade")
    _check_backups_cover_every_node(plays, file, raw)


def _backs_up_before_upgrade(play: Play | None) -> bool:
    if play is None:
        return False
    if play.backup_first:
        return True
    return "backup" in play.tasks and "upgrade" in play.tasks and play.tasks.index("backup") < play.tasks.index(
        "upgrade")


def _check_backups_cover_every_node(plays: tuple[Play, ...], file: str, raw: list) -> None:
    """Every node, PSC and vCenter alike, has a backup step before its own upgrade."""
    pre = next((p for p in plays if p.phase == "pre"), None)
    pre_hosts = pre.hosts if pre is not None and "backup" in pre.tasks else None
    for role in ("psc", "vcenter"):
        wave = next(p for p in plays if p.phase == role)
        if pre_hosts in ("all", role) or _backs_up_before_upgrade(wave):
            continue
        _fail(f"no backup of the {role} nodes before they are upgraded: every node needs a verified backup "
              f"before its upgrade (add 'backup' to the pre play with hosts: all, or before 'upgrade')",
              file, raw[plays.index(wave)], "tasks", rule="backup-before-upgrade")
