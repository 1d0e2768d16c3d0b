"""`vcwave plan`'s human view: phases in words, batches explained, every node's method and why, columns aligned
to their content (a long value such as backup/during never shifts the next column), the expected window;
`--json` is the plan itself, unchanged."""
from __future__ import annotations

import json

import pytest

from orchestrator.commands import plan as plan_cmd
from orchestrator.commands.plan_table import aligned, render_table

from tests.cli.test_cli import ROOT

EXAMPLES = ROOT / "examples"


def plan_of(name: str, target: str):
    return plan_cmd.make_plan(str(EXAMPLES / name), target)


def table_block(text: str, title: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(title) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("  ")), len(lines))
    return lines[start:end]


def column_starts(header: str) -> list[int]:
    starts, prev = [], " "
    for i, ch in enumerate(header):
        if ch != " " and prev == " " and (i < 2 or header[i - 2:i] == "  "):
            starts.append(i)
        prev = ch
    return starts


@pytest.mark.parametrize("name, target", [("two-site.yml", "6.7 U3"), ("large.yml", "6.7 U3"),
                                          ("two-site-6.0.yml", "6.5 U1")])
def test_columns_align_to_their_content(name, target):
    text = render_table(plan_of(name, target))
    for title in ("steps:", "methods (every node, and why):"):
        block = table_block(text, title)
        starts = column_starts(block[0])
        assert len(starts) >= 4
        for row in block[1:]:
            for s in starts[1:]:
                assert row[s - 2:s] == "  " and row[s] != " ", (title, row)  # every cell starts under its header
    steps = table_block(text, "steps:")
    assert any("backup/during" in r for r in steps)


def test_phases_in_words_with_batches_explained():
    plan = plan_of("large.yml", "6.7 U3")
    text = render_table(plan)
    pscs = [s.node for s in plan.phase("psc").steps if s.action == "upgrade"]
    assert f"  {len(pscs)} PSCs, one at a time — {', '.join(pscs[:6])}, … ({len(pscs)} in all)" in text
    assert "15 vCenters in 1 batch(es), up to 15 at once — per-psc:" in text
    for b, _ in plan.phase("psc").batches():
        assert f"    batch {b}: upgrade + verify on {pscs[b]} (alone, ~" in text
    assert "    batch 0: backup/during on" in text  # the in-domain backups before the vCenters, explained
    assert f"expected mixed-version window: {plan.window_estimate_min / 60:.1f} h" in text


def test_every_node_has_its_method_and_reason():
    plan = plan_of("two-site-6.0.yml", "6.5 U1")
    rows = table_block(render_table(plan), "methods (every node, and why):")[1:]
    upgrades = {s.node: s for s in plan.steps() if s.action == "upgrade"}
    assert len(rows) == len(upgrades) == 4
    for row in rows:
        node = row.split()[0]
        assert upgrades[node].method in row and upgrades[node].reason in row


def test_json_is_the_plan_unchanged(tmp_path):
    out = tmp_path / "plan.json"
    text = plan_cmd.run(str(EXAMPLES / "two-site.yml"), "6.7 U3", str(out), as_json=True)
    assert json.loads(text) == json.loads(out.read_text())


def test_aligned_pads_all_but_the_last_column():
    assert aligned(("a", "bb", "c"), [("long-value", "x", "tail"), ("y", None, "t")], indent="") == [
        "a           bb  c", "long-value  x   tail", "y           -   t"]


def test_a_linked_embedded_hop_says_no_psc_is_upgraded_and_names_the_snapshot_set():
    """A new user's 8.0 plan of embedded vCenters read 'psc: the window opens: every PSC of every site / 0 PSCs,
    one at a time — ' and showed the cold snapshot set as a second 'backup/pre' of the same nodes."""
    text = render_table(plan_of("linked-7.0.yml", "8.0 U3"))
    assert "0 PSCs" not in text and "every PSC of every site" not in text
    assert "psc: no PSC is upgraded in this hop" in text and "vcenter: the vCenters\n" in text
    assert "backup/pre (cold snapshot set) on vc-a, vc-b" in text
    two_site = render_table(plan_of("two-site.yml", "6.7 U3"))
    assert "psc: the window opens: every PSC of every site" in two_site and "2 PSCs, one at a time" in two_site
