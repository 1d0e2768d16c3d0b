"""The bad-inputs corpus (tests/harness/bad/cases.yml), each case an `invoke` command against one running lab
(in-process; a few as real subprocesses): exit 2, a clear message on stderr naming the file/line/field or
node/path, no traceback, and nothing written (every file of the case and state folders, the lab's versions,
the saved plan; no step journaled as done). The table is printed (`pytest -s`)."""
from __future__ import annotations

import collections

import pytest

from tests.conftest import require_vcsim

from lab.badinputs import BAD_DIR, bad_inputs, load_cases

CASES = load_cases()


def test_corpus_is_large_and_complete():
    assert len(CASES) >= 80
    kinds = collections.Counter(c["name"].split("-")[0] for c in CASES)
    assert {"inventory", "playbook", "plan", "flag", "password", "journal", "answer"} <= set(kinds)
    assert kinds["answer"] >= 5 and 3 <= sum(bool(c.get("subprocess")) for c in CASES) <= 8
    for c in CASES:
        if "file" in c:
            assert (BAD_DIR / c["file"]).is_file(), c["name"]
        assert c["args"] and c.get("expect"), c["name"]


def input_class(name: str) -> str:
    """A case's class: what is bad and where, the first two words of its name (`inventory-host`, `flag-target`,
    `answer-html`, `plan-edited`, ...); the cases of one class differ in the value, not in the check."""
    return "-".join(name.split("-")[:2])


def default_tier(cases: list[dict]) -> set[str]:
    """The default tier's cases: the first of each class, and every real-subprocess case (the exit-code
    plumbing); `--full` runs the whole corpus (tests/TIERS.md)."""
    first: dict[str, str] = {}
    for c in cases:
        first.setdefault(input_class(c["name"]), c["name"])
    return set(first.values()) | {c["name"] for c in cases if c.get("subprocess")}


DEFAULT_CASES = default_tier(CASES)


def test_the_default_tier_keeps_every_class_and_every_subprocess_case():
    assert {input_class(n) for n in DEFAULT_CASES} == {input_class(c["name"]) for c in CASES}
    assert {c["name"] for c in CASES if c.get("subprocess")} <= DEFAULT_CASES < {c["name"] for c in CASES}


@pytest.fixture(scope="module")
def results(request, tmp_path_factory):
    """The selected cases (the default tier's or all of them) against one lab, run once for the module."""
    require_vcsim()
    selected = {item.callspec.params["name"] for item in request.session.items
                if getattr(item, "originalname", "") == "test_bad_input_refused_cleanly"}
    res = bad_inputs(tmp_path_factory.mktemp("bad"), only=selected)
    print("\n" + res.table())
    return {r.name: r for r in res.results}


@pytest.mark.timeout(900)  # the first case builds the corpus's lab and runs every case (each has its own 60 s)
@pytest.mark.parametrize("name", [pytest.param(c["name"], marks=() if c["name"] in DEFAULT_CASES else pytest.mark.full)
                                  for c in CASES])
def test_bad_input_refused_cleanly(results, name):
    r = results[name]
    assert r.ok, f"{r.command}\nexit {r.code}\nproblems: {r.problems}\nstderr tail: {r.stderr[-1200:]}"
