"""The README's first command starts the lab in a relative folder (`.vcwave/rehearsal/lab`): every path the
lab hands to another process (vcsim's TLS certificate, the lab inventory's CA bundle) must still resolve.
A fresh clone once failed here because every test used an absolute temporary folder."""
from __future__ import annotations

import http.client
import ssl
from pathlib import Path

import yaml

from lab.manage import running

ROOT = Path(__file__).resolve().parents[2]


def test_a_lab_started_in_a_relative_folder_serves_vcsim_over_its_tls(vcsim_binary, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with running(ROOT / "examples" / "single-site.yml", Path("rel") / "lab", time_scale=0.0005, warm=True) as info:
        inv = yaml.safe_load(Path(info["inventory"]).read_text())
        bundle = Path(inv["tls"]["ca_bundle"])
        assert bundle.is_absolute() and bundle.exists()
        vc = next(n for n in inv["nodes"] if n["role"] == "vcenter")
        ctx = ssl.create_default_context(cafile=str(bundle))  # vcsim serves the lab's certificate
        conn = http.client.HTTPSConnection(vc["host"], vc.get("sdk_port", vc["port"]), context=ctx, timeout=10)
        try:
            conn.request("GET", "/sdk/vimServiceVersions.xml")
            assert conn.getresponse().status == 200
        finally:
            conn.close()
