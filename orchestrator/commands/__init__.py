"""`modq` sub-commands, one module per area; registered explicitly in orchestrator.cli."""
