"""What the timeline's marks mean, in words that survive printing (no hover on paper).

Every bar carries its action as text: the full word when the bar is wide enough, else a short code that
the legend spells out. The legend lists only what this run contains (a code, an outcome, a kind of backup,
the window, a rollback), so a change board reads no entry that does not apply.
"""
from __future__ import annotations

from dataclasses import dataclass

from orchestrator.report.model import Bar, Report

# action (or backup method) -> (word, code). A snapshot set is its own kind: every VM of the domain at once.
ACTIONS = {
    "precheck": ("precheck", "P"), "backup": ("backup", "B"), "snapshot-set": ("snapshot set", "SS"),
    "stage": ("stage", "St"), "upgrade": ("upgrade", "U"), "verify": ("verify", "V"), "stop": ("stop", "X"),
    "power-off": ("power off", "Off"), "power-on": ("power on", "On"), "restore": ("restore", "R"),
    "rollback": ("rollback", "RB"), "snapshot-revert": ("revert to snapshot", "Rv"),
    "file-restore": ("restore", "R"), "verify-old": ("verify", "V"),
}
CHAR_W = 7.2  # average width of a bold 11px label character, for fitting text into a bar
OUTCOME_MARK = {"failed": "✕", "manual": "!", "reconciled": "↺", "running": "…", "not_done": "↺"}

OUTCOME_STYLE = {"succeeded": ("#2e7d32", "succeeded"), "failed": ("#c62828", "failed ✕"),
                 "reconciled": ("#7b1fa2", "reconciled after a crash ↺"), "manual": ("#ef6c00", "manual step !"),
                 "running": ("#1e88e5", "not finished …"), "skipped": ("#9aa5b1", "skipped"),
                 "not_done": ("#cfd6de", "reconciled: not done ↺")}
BACKUP_STYLE = {"file": "◆ file backup (appliance backup job)",
                "snapshot-set": "■ snapshot set: cold snapshots of every appliance VM, taken together "
                                "(joined by a line)",
                "external": "● external backup (your backup product)"}
TAG_STYLE = {"pre": ("#1565c0", "before the window"), "during": ("#00897b", "during the window"),
             "post": ("#6d4c41", "after the window")}


def kind(bar: Bar) -> str:
    """The bar's action, with a snapshot-set backup told apart from a file backup."""
    method = dict(bar.detail).get("method", "")
    if bar.action == "backup" and (method == "snapshot-set" or "snapshot-set" in bar.step):
        return "snapshot-set"
    if bar.action == "rollback" and method in ACTIONS:  # a rollback lane's step: what it did
        return method
    return bar.action


def word_and_code(bar: Bar) -> tuple[str, str]:
    k = kind(bar)
    return ACTIONS.get(k, (k, k[:2].capitalize()))


def bar_text(bar: Bar, width: float) -> str:
    """The text drawn inside a bar `width` px wide: the word, else the code (the legend explains it)."""
    word, code = word_and_code(bar)
    mark = OUTCOME_MARK.get(bar.outcome, "")
    full = f"{word} {mark}".strip()
    if len(full) * CHAR_W + 6 <= width:
        return full
    return f"{code}{mark}"


@dataclass(frozen=True)
class Entry:
    swatch: str  # a colour (css) or a text glyph
    text: str
    glyph: bool = False


def legend(r: Report) -> list[Entry]:
    """Only what this run contains."""
    out: list[Entry] = []
    seen = list(dict.fromkeys(word_and_code(b) for b in r.bars))
    if seen:
        out.append(Entry("", "bars: " + " · ".join(f"{code} = {word}" for word, code in seen), glyph=True))
    for outcome in dict.fromkeys(b.outcome for b in r.bars):
        color, text = OUTCOME_STYLE.get(outcome, ("#546e7a", outcome))
        out.append(Entry(color, text))
    for method in dict.fromkeys(b.method for b in r.backups):
        out.append(Entry("", BACKUP_STYLE.get(method, f"backup ({method})"), glyph=True))
    for tag in dict.fromkeys(b.tag for b in r.backups if b.tag in TAG_STYLE):
        color, text = TAG_STYLE[tag]
        out.append(Entry(color, f"backup taken {text} ({tag})"))
    if any(b.transitions or b.usable_when_taken for b in r.backups):
        out.append(Entry("", "┄ usable to restore its node alone", glyph=True))
    if any(not t.usable for b in r.backups for t in b.transitions):
        out.append(Entry("", "✕ (red, on the line) the backup stops being usable alone", glyph=True))
    if r.failures:
        out.append(Entry("", "▼ failure (red)", glyph=True))
    if r.outages:
        out.append(Entry("", "▬ (dark strip under a row) the node did not answer: an outage", glyph=True))
    if r.window.opened is not None:
        out.append(Entry("#ffe082", "mixed-version window"))
    if r.rollbacks:
        out.append(Entry("#f8bbbb", "rollback"))
    return out
