"""The human console: `model` folds the event stream into lines and running steps, `view` prints them
(rich live view on a terminal, plain lines elsewhere). The engine never prints; it emits events."""
from orchestrator.console.view import Console

__all__ = ["Console"]
