"""The queue-state materializer: per-key queues made visible (issue 6).

``run_queue_state_process(settings)`` checks that the input topics are co-partitioned, then
runs the faust-streaming app (:mod:`.faust_app`) until SIGTERM/SIGINT and returns the exit
status: 0 after a graceful stop, 2 when the topics disagree or an option is invalid, 1 on a
runtime failure. Pure logic lives in :mod:`.state` (reducers) and :mod:`.views` (rendering);
counting rules in ``docs/queue_state.md``.
"""

from __future__ import annotations

import logging
import os

from schemas.settings import Settings, SettingsError

_LOG = logging.getLogger("modq.queue_state")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


def run_queue_state_process(settings: Settings, *, loglevel: str = "info") -> int:
    """Run the queue-state app in this process until it is told to stop; its exit status."""
    from streams.queue_state.faust_app import partition_counts_blocking, run_app
    from streams.queue_state.options import QueueStateOptions
    from streams.queue_state.views import CoPartitioningError, check_copartitioning

    try:
        options = QueueStateOptions.from_env(os.environ)
    except SettingsError as exc:
        _LOG.error("%s", exc)
        return EXIT_CONFIG
    try:
        partitions = check_copartitioning(partition_counts_blocking(settings))
    except CoPartitioningError as exc:
        _LOG.error("queue-state cannot start: %s", exc)
        return EXIT_CONFIG
    _LOG.info("queue-state: %d partitions per input topic", partitions)
    return run_app(settings, options, partitions=partitions, loglevel=loglevel)


__all__ = ["EXIT_CONFIG", "EXIT_FAILURE", "EXIT_OK", "run_queue_state_process"]
