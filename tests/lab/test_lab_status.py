"""`invoke lab.status` is for a person (the new-user trial found raw JSON): one line per node with what the twin
says it is doing, the VMs' power, backups and faults; `--json` keeps everything for a machine."""
from __future__ import annotations

import json
import urllib.request

from lab import manage

from lab.bench import TWO_SITE


def _post(info: dict, path: str) -> None:
    urllib.request.urlopen(urllib.request.Request(info["control_url"] + path, data=b"{}", method="POST"),
                           timeout=10).close()


def test_lab_status_names_each_nodes_condition_and_the_vms(tmp_path):
    d = tmp_path / "lab"
    info = manage.up(TWO_SITE, d, 0.001, warm=True, extra=("--no-vcsim",))
    try:
        _post(info, "/lab/node/vc-b/fail")
        _post(info, "/lab/node/psc-b/delete")
        text = manage.render_status(manage.status(d))
        rows = {line.split()[0]: line for line in text.splitlines()[2:6]}
        assert "running" in text.splitlines()[0]
        assert " up " in rows["psc-a"] and "6.7 U1" in rows["psc-a"]
        assert "deleted" in rows["psc-b"]
        assert "down (failed via the lab control API)" in rows["vc-b"]
        assert "VMs on mgmt-vc:" in text and "psc-b" not in text.split("VMs on mgmt-vc:")[1].split("\n")[0]
        json.dumps(manage.status(d))  # the --json form stays serialisable
    finally:
        manage.down(d)
    assert "NOT running" in manage.render_status(manage.status(d))
