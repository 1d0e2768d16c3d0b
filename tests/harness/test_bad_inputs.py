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


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    require_vcsim()
    res = bad_inputs(tmp_path_factory.mktemp("bad"))
    print("\n" + res.table())
    return {r.name: r for r in res.results}


@pytest.mark.timeout(900)  # the first case builds the corpus's lab and runs every case (each has its own 60 s)
@pytest.mark.parametrize("name", [c["name"] for c in CASES])
def test_bad_input_refused_cleanly(results, name):
    r = results[name]
    assert r.ok, f"{r.command}\nexit {r.code}\nproblems: {r.problems}\nstderr tail: {r.stderr[-1200:]}"
