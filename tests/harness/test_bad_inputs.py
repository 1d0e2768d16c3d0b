"""The bad-inputs corpus (tests/harness/bad/cases.yml), each case a real `invoke` subprocess against a running
lab: exit 2, a clear message on stderr naming the file/field/node, and nothing changed (lab versions, journal
event count, the saved plan, no lock left behind). The table is printed (`pytest -s`)."""
from __future__ import annotations

import pytest

from tests.conftest import require_vcsim

from lab.harness import BAD_DIR, bad_inputs, load_cases

CASES = load_cases()


def test_corpus_is_large_and_complete():
    assert len(CASES) >= 30
    kinds = {c["name"].split("-")[0] for c in CASES}
    assert {"inventory", "playbook", "plan", "flag", "password", "journal"} <= kinds
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
