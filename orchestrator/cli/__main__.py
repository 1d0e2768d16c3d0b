"""`python -m orchestrator.cli ...` = `vcwave ...` (where the console script is not on PATH)."""
from orchestrator.cli.program import main

main()
