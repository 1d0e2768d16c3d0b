"""vcwave's commands. Each task parses flags, calls one orchestrator function, prints. `invoke --list`."""
from __future__ import annotations

import functools
import sys

from invoke import Collection, Exit, task

from orchestrator.errors import VcwaveError


def _cli(fn):
    """Map vcwave errors to a clear message on stderr and the right exit code (2 = bad input/refused)."""
    @functools.wraps(fn)
    def wrapper(c, *args, **kwargs):
        try:
            out = fn(c, *args, **kwargs)
        except VcwaveError as exc:
            print(f"vcwave: error: {exc}", file=sys.stderr)
            raise Exit(code=exc.exit_code) from None
        if out:
            print(out)
    return wrapper


@task(help={"inventory": "domain inventory YAML", "target": "target release, e.g. '6.7 U3'",
            "out": "where to save the plan (default .vcwave/plan.json)", "json": "print the plan as JSON",
            "playbook": "playbook file or bundled name (default: default)",
            "concurrency": "vCenters upgraded at once (overrides the playbook)",
            "site": "refused: upgrading site by site is not supported"})
@_cli
def plan(c, inventory, target, out=None, json=False, playbook=None, concurrency=None, site=None):
    """Compute and save the wave plan: prechecks/backups/staging, every PSC, then vCenters, then verify."""
    from orchestrator.commands import plan as cmd
    return cmd.run(inventory, target, out, json, playbook, int(concurrency) if concurrency else None, site)


ns = Collection(plan)
