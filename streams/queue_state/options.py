"""The queue-state app's own knobs, read from the environment at the edge.

They are not in the shared ``Settings`` (they concern this component only):

=========================================  ========  ============================================
variable                                   default   meaning
=========================================  ========  ============================================
``MODQ_QUEUE_STATE_PUBLISH_INTERVAL``      1.0       seconds between publications (coalescing)
``MODQ_QUEUE_STATE_TOP_N``                 10        stuck keys per class (1–50)
``MODQ_QUEUE_STATE_WINDOW_SECONDS``        60        tumbling window of the class rates
``MODQ_QUEUE_STATE_EMPTY_GRACE_SECONDS``   60        how long an empty queue's ids are kept
``MODQ_QUEUE_STATE_COMMIT_INTERVAL``       1.0       seconds between offset commits
=========================================  ========  ============================================

The data directory is ``Settings.state_dir`` (``MODQ_STATE_DIR``) / ``queue-state``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from schemas.settings import SettingsError
from schemas.visualization import MAX_STUCK_KEYS

_PREFIX = "MODQ_QUEUE_STATE_"


@dataclass(frozen=True, slots=True)
class QueueStateOptions:
    """Validated knobs of the queue-state app (see the module docstring)."""

    publish_interval: float = 1.0
    top_n: int = 10
    window_seconds: float = 60.0
    empty_grace_seconds: float = 60.0
    commit_interval: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> QueueStateOptions:
        """Read ``MODQ_QUEUE_STATE_*``; ``SettingsError`` naming the variable if invalid."""
        return cls(
            publish_interval=_number(env, "PUBLISH_INTERVAL", 1.0, 0.01, 3600.0),
            top_n=int(_number(env, "TOP_N", 10, 1, MAX_STUCK_KEYS, integer=True)),
            window_seconds=_number(env, "WINDOW_SECONDS", 60.0, 0.1, 86_400.0),
            empty_grace_seconds=_number(env, "EMPTY_GRACE_SECONDS", 60.0, 0.0, 86_400.0),
            commit_interval=_number(env, "COMMIT_INTERVAL", 1.0, 0.05, 600.0),
        )


def _number(
    env: Mapping[str, str],
    name: str,
    default: float,
    low: float,
    high: float,
    *,
    integer: bool = False,
) -> float:
    variable = _PREFIX + name
    raw = env.get(variable)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(int(raw)) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise SettingsError(variable, f"must be {kind} (got {raw!r})") from None
    if not low <= value <= high:
        raise SettingsError(variable, f"must be between {low:g} and {high:g} (got {raw!r})")
    return value
