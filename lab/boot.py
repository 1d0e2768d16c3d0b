"""How long an appliance takes to come back: the reboot that ends an install, and a power-on.

Why this is its own idea: on a real appliance the reboot and the start of its services are a real share of
an install, not an instant. VMware: a vCenter upgrade keeps it "out of production for a minimum of 40 to 50
minutes" (vSphere 6.7 upgrade guide, "Downtime During the vCenter Server Upgrade"); of a ~40-minute 6.7
patch install, the reboot + services start is ~10-20 minutes (issue 14; the update precheck itself answers
`estimated_time_to_install: 40`). During that time nothing listens on 443 at first (the OS reboots:
connection refused), then the reverse proxy answers 503 until the API services are up. A crash, a lost reply
or a kill is most likely to land there, so the twin makes it last: 15 of the install's 40 minutes, and 10
minutes after a power-on (snapshot revert, rollback, a powered-off node).

Not after the installer: its stage 2 ends with the new appliance CONFIGURED, services up (vSphere Automation
SDK programming guide, "upgrade stage 2" workflow: "If stage 2 of the upgrade process is successful, the
appliance enters in a CONFIGURED state ... you can check its services"), so the installer stand-in reports
success when the node answers; its own first boot is inside stage 1 and 2's 80 minutes. The source brought
back by an installer rollback (KB 322065) is powered on, so it boots.

A boot is ``{"start", "until", "os_until", "why"}`` (epoch seconds) on the node; times are scaled by the
lab's time scale by the caller.
"""
from __future__ import annotations

INSTALL_SECONDS = 2400.0        # an update install, end to end (lab/state.py DURATIONS["install"])
INSTALL_REBOOT_SECONDS = 900.0  # its last part: reboot + services start
POWER_ON_SECONDS = 600.0        # a powered-on appliance VM until its services answer
OS_SHARE = 0.3                  # first share of a boot: nothing listens (connection refused)

REBOOT_PHASE = 1.0 - INSTALL_REBOOT_SECONDS / INSTALL_SECONDS  # where in an install's progress the reboot begins


def start(now: float, seconds: float, why: str) -> dict:
    """A boot beginning now and lasting `seconds` (already scaled)."""
    return {"start": now, "until": now + seconds, "os_until": now + seconds * OS_SHARE, "why": why}


def phase(boot: dict | None, now: float) -> str | None:
    """"os" (refused), "services" (503), or None (not booting / done)."""
    if not boot or now >= boot["until"]:
        return None
    return "os" if now < boot["os_until"] else "services"
