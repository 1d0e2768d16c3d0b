"""structlog, imported without the rich extras it never uses here.

Why: when rich is installed (vcwave's console view needs it), structlog's import pulls in rich's traceback
and pretty-printer (and attrs behind them) for its development console's exception rendering: ~70-100 ms of
CPU in every fresh process that logs (every `vcwave` command, each one a new process). vcwave never
renders with them: exceptions are turned into text by `format_exc_info` before any renderer sees them
(orchestrator.log), and the console view uses rich.console, rich.live and rich.table only. So rich is hidden
while structlog is first imported, and nothing else changes: `import rich...` works as before afterwards.
"""
from __future__ import annotations

import sys


def _import_structlog():  # type: ignore[no-untyped-def]
    hide = "rich" not in sys.modules
    if hide:
        sys.modules["rich"] = None  # type: ignore[assignment]  # `import rich.x` -> ImportError, as without rich
    try:
        import structlog
    finally:
        if hide and "rich" in sys.modules and sys.modules["rich"] is None:
            del sys.modules["rich"]
    return structlog


structlog = _import_structlog()
