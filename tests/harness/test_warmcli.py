"""The warm CLI (lab/warmcli.py) must be indistinguishable from a fresh `python -m lab.harness invoke ...` for
what the harness relies on: exit codes, stderr, cwd and environment, its own session (kill -9 of its process
group kills it and only it), and the death status of a killed command."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab import harness, warmcli

ROOT = Path(__file__).resolve().parents[2]
TWO_SITE = str(ROOT / "examples" / "two-site.yml")


def test_exit_codes_stderr_cwd_and_env_are_the_commands_own(tmp_path):
    ok = warmcli.run(["invoke", "plan", "--inventory", TWO_SITE, "--target", "6.7 U3", "--out", "p.json"],
                     tmp_path, harness.cli_env(), timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "p.json").is_file()  # a relative --out lands in the command's cwd
    bad = warmcli.run(["invoke", "upgrade", "--wave", "site-a", "--plan", "p.json"], tmp_path, harness.cli_env(),
                      timeout=60)
    assert bad.returncode == 2 and "--wave must be psc or vcenter" in bad.stderr
    env = {k: v for k, v in harness.cli_env().items() if k != "HOME"}
    env["VCWAVE_TEST_ONLY_IN_CHILD"] = "1"
    missing = warmcli.run(["invoke", "plan", "--inventory", "nope.yml", "--target", "6.7 U3"], tmp_path, env,
                          timeout=60)
    assert missing.returncode == 2 and "nope.yml" in missing.stderr
    assert "VCWAVE_TEST_ONLY_IN_CHILD" not in os.environ  # the caller's environment is untouched


def test_a_spawned_lab_daemon_has_its_own_session_and_dies_by_sigkill(tmp_path):
    out = open(tmp_path / "daemon.out", "w")
    proc = warmcli.WarmCli.shared().spawn(["--inventory", TWO_SITE, "--dir", str(tmp_path / "lab"), "--no-vcsim"],
                                          tmp_path, harness.cli_env(), module="lab.daemon", stdout=out)
    try:
        assert os.getpgid(proc.pid) == proc.pid != os.getpgid(0)
        end = time.monotonic() + 60
        while '"control_url"' not in (tmp_path / "daemon.out").read_text():
            assert proc.poll() is None, (tmp_path / "daemon.out").read_text()
            assert time.monotonic() < end, "the daemon never said it was up"
            time.sleep(0.05)
        assert proc.poll() is None  # a daemon: it runs until told otherwise
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        out.close()
    assert proc.wait(60) == -signal.SIGKILL


def test_only_known_entry_points_run(tmp_path):
    proc = warmcli.WarmCli.shared().spawn(["-c", "print(1)"], tmp_path, harness.cli_env(), module="runpy")
    assert proc.wait(60) != 0
    assert "not an entry point" in proc.stderr.read()


def test_a_caller_gone_before_its_pid_costs_only_its_own_request(tmp_path):
    """The server is shared (a test session's workers, lab/warm_relay.py's relays): a caller killed right
    after asking once took it down for everyone (BrokenPipeError sending the pid). Now the server goes on."""
    import json
    import socket
    server = warmcli.WarmCli.shared()
    for _ in range(5):
        devnull = os.open(os.devnull, os.O_RDWR)
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(server.sock)
        header = {"module": "lab.harness", "argv": ["invoke", "--version"], "cwd": str(tmp_path),
                  "env": harness.cli_env()}
        socket.send_fds(conn, [json.dumps(header).encode()], [devnull] * 3)
        os.close(devnull)
        conn.close()  # gone before the server answers with the pid
    ok = warmcli.run(["invoke", "plan", "--inventory", TWO_SITE, "--target", "6.7 U3", "--out", "p.json"],
                     tmp_path, harness.cli_env(), timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert server.running() and warmcli.WarmCli.shared() is server


RELAY = ROOT / "lab" / "warm_relay.py"
PROGRAM = ("import atexit, os, sys\n"
           "atexit.register(lambda: print('atexit ran', flush=True))\n"
           "print(__name__, sys.argv, sys.stdin.readline().strip(), flush=True)\n"
           "sys.exit(int(sys.argv[1]))\n")


def _relay(tmp_path, *socket_args: str, **env_extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in harness.cli_env().items() if k != "VCWAVE_WARM_SOCKET"} | env_extra
    return subprocess.run([sys.executable, "-S", str(RELAY), *socket_args, "python", "-u", "-c", PROGRAM, "3"],
                          input="from stdin\n", capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)


def test_a_python_c_program_through_the_relay_is_a_fresh_interpreters_main(tmp_path):
    """`python -u -c CODE ARGS` (how execnet starts an xdist worker) forked from the warm server through
    lab/warm_relay.py: the same `__main__`, argv, stdin, exit functions and exit code as a fresh interpreter
    (the relay without a server runs one)."""
    warm = _relay(tmp_path, "--socket", warmcli.WarmCli.shared().sock)
    fresh = _relay(tmp_path)
    assert (warm.returncode, warm.stdout) == (fresh.returncode, fresh.stdout) == (
        3, "__main__ ['-c', '3'] from stdin\natexit ran\n"), (warm, fresh)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_program_killed_by_a_signal_ends_its_relay_by_the_same_signal(tmp_path, signum):
    """What the caller of a relayed program sees when the program is killed (the installer stand-in, a test's
    lock holder killed -9 holding its lock): the signal, as from a fresh interpreter. SIGKILL's handler cannot
    be set, and setting it made the relay end with a traceback and status 1 instead."""
    code = f"import os; print(os.getpid(), flush=True); os.kill(os.getpid(), {int(signum)})"
    server = warmcli.WarmCli.shared()
    relay = warmcli.relay_argv(server.sock, warmcli.PYTHON, ["-c", code])
    for argv in (relay, [sys.executable, "-c", code]):
        r = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=60)
        assert (r.returncode, r.stderr) == (-signum, ""), r
    relayed = subprocess.Popen(relay, stdout=subprocess.PIPE, text=True)
    assert int(relayed.stdout.readline()) != relayed.pid  # the program ran in the server's child, not the relay
    assert relayed.wait(60) == -signum


def test_a_relay_whose_server_died_before_listening_runs_the_program_fresh_at_once(tmp_path):
    """A test session's server that dies while importing never creates its socket: each worker's relay stops
    waiting when the server's pid is gone (not after the minute it would give a live one) and runs the
    program in a fresh interpreter, with the same output."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    start = time.monotonic()
    r = _relay(tmp_path, "--socket", str(tmp_path / "never"), VCWAVE_WARMCLI_PID=dead.stdout.strip())
    assert (r.returncode, r.stdout) == (3, "__main__ ['-c', '3'] from stdin\natexit ran\n"), r
    assert time.monotonic() - start < 30  # the relay's wait for a live server is 60 s


def test_an_execnet_gateway_through_the_relay_is_a_child_of_the_warm_server(tmp_path):
    """What tests/conftest.py gives xdist (warm_worker): a working execnet gateway whose process is the warm
    server's child (its imports already paid), with the caller's cwd and environment."""
    import execnet

    from tests.conftest import warm_worker
    server = warmcli.WarmCli.shared()
    assert warm_worker("ssh=somewhere", server.sock) == "ssh=somewhere"  # only plain popen workers are forked
    gw = execnet.makegateway(warm_worker("popen", server.sock))
    try:
        ch = gw.remote_exec("import os, sys; channel.send((os.getppid(), os.getcwd(), 'pyVmomi' in sys.modules))")
        assert ch.receive(60) == (server.pid, os.getcwd(), True)
    finally:
        gw.exit()


def test_a_python_program_with_other_flags_is_refused(tmp_path):
    proc = warmcli.WarmCli.shared().spawn(["-X", "dev", "-c", "print(1)"], tmp_path, harness.cli_env(),
                                          module="python")
    assert proc.wait(60) != 0
    assert "only `python [-u] [-B] -c CODE` runs here" in proc.stderr.read()


def test_the_relays_header_is_the_json_the_server_reads():
    """lab/warm_relay.py writes its header without the json module (~15 ms of imports per relay): what it writes
    is json.dumps' text, for every kind of value a header holds (quotes, control characters, non-ASCII, an
    undecodable byte of an environment variable as Python keeps it)."""
    import json

    from lab.warm_relay import _json_text
    header = {"module": "python", "argv": ["-c", 'print("a\\tb")\n', "é ∑ 🙂"], "cwd": "/tmp/x y",
              "env": {"PATH": "/usr/bin", "ODD": "caf\udce9", "EMPTY": ""}, "tied": True, "no": False}
    assert _json_text(header) == json.dumps(header)
    assert json.loads(_json_text(header)) == header
