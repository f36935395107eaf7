"""Reliability harness for issue 8: record a history, check it, inject faults.

Functional core, I/O shell:

- :mod:`chaos.history` — frozen models of what happened (submissions, decisions, dead
  letters, visualization records);
- :mod:`chaos.checker` — a pure function ``check(history, guarantee) -> Report``;
- :mod:`chaos.report` — render a ``Report`` as a rich table or markdown;
- the shell: :mod:`chaos.recorder` (reads the topics into a ``History``),
  :mod:`chaos.workload` (a reproducible mixed workload and a publisher that logs every
  acknowledged record), :mod:`chaos.proxy` (asyncio TCP proxy that cuts or delays a broker)
  and :mod:`chaos.faults` (kill -9, SIGSTOP/SIGCONT of processes and brokers).
"""
