"""`invoke lab.up` writes `<lab>/env.sh` for a session by hand: sourcing it gives the production commands the
lab's installer stand-in and tells the stand-in where its lab is (README: "A session by hand")."""
from __future__ import annotations

import os
import subprocess

from lab.installer_standin import ENV_LAB_DIR
from lab.manage import write_session_env
from orchestrator.clients.installer import ENV_INSTALLER


def test_env_file_points_at_the_stand_in_and_the_lab(tmp_path):
    lab = tmp_path / "lab"
    lab.mkdir()
    env_file = write_session_env(lab)
    assert env_file == lab.resolve() / "env.sh"
    out = subprocess.run(["sh", "-c", f". '{env_file}' && echo \"${ENV_LAB_DIR}\" && echo \"${ENV_INSTALLER}\""],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == str(lab.resolve())
    installer = out[1]
    assert os.access(installer, os.X_OK)
    r = subprocess.run([installer, "--help"], capture_output=True, text=True, timeout=60,
                       env={**os.environ, ENV_LAB_DIR: out[0]})
    assert r.returncode == 0 and "stand-in for VMware's vcsa-deploy" in r.stdout, r.stderr[-500:]
