"""After a whole rehearsal on the installer path (whose template carries the SSO and root passwords), no file
vcwave wrote — plan, journal, event log, report, installer folders — holds a password it used or a session id
it was given (every SOAP session id vcsim issued and every REST session token of the appliance twin, as the
lab recorded them in `sessions/`), and no installer folder is left in the system temp folder. The lab's own
files (0600: the secrets an administrator points `password_file` at, its session record) are the only place
they may be."""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_a_rehearsal_leaves_no_password_or_session_id_in_any_file_it_wrote(vcsim_binary, tmp_path):
    before = set(Path(tempfile.gettempdir()).glob("vcwave-installer-*"))
    wd = tmp_path / "r"
    r = subprocess.run([sys.executable, "-m", "invoke", "-r", str(ROOT), "rehearse", "--inventory",
                        str(ROOT / "examples" / "two-site-6.0.yml"), "--target", "6.5 U1", "--workdir", str(wd)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=170)
    assert r.returncode == 0 and "outcome: upgraded" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    secrets = {p.read_text().strip() for p in (wd / "lab" / "secrets").iterdir()}
    assert secrets and all(len(s) >= 8 for s in secrets)
    written = [p for p in wd.rglob("*") if p.is_file() and "lab" not in p.relative_to(wd).parts[:1]]
    assert any(p.name == "journal.sqlite" for p in written) and any(p.name == "events.jsonl" for p in written)
    assert any(p.name == "report.html" for p in written)
    issued = {kind: {line for f in (wd / "lab" / "sessions").glob(f"{kind}-*.txt")
                     for line in f.read_text().split() if line} for kind in ("soap", "rest")}
    assert len(issued["soap"]) >= 4 and len(issued["rest"]) >= 4, issued  # the record is there to be checked
    assert all(len(sid) >= 32 for ids in issued.values() for sid in ids)
    secrets |= issued["soap"] | issued["rest"]
    leaks = [(str(p.relative_to(wd)), s[:4] + "…") for p in written for s in secrets if s.encode() in p.read_bytes()]
    assert leaks == []
    assert set(Path(tempfile.gettempdir()).glob("vcwave-installer-*")) - before == set()
