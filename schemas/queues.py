"""Queue classes, per-key queue names and partition keys: the one place that derives them.

Contract (../shared/CONTRACT.md): posts are keyed by ``topic_id`` and queued as
``topic_{topic_id}``; private messages are keyed by ``"{a}:{b}"`` (the two user ids sorted as
strings) and queued as ``users_{a}:{b}``; new topics are keyed by the new ``topic_id`` and share
the ``global_topics`` queue.

The same names key the compacted visualization topic, with ``workers`` (the pool),
``controller`` (the latest allocation) and ``stuck_{class}`` (a class's most delayed keys).

Known ambiguity, inherited from the seed's names: the per-key queue of a forum topic whose id
is ``posts`` is named ``topic_posts``, like the queue class. Records on the visualization topic
tell them apart by their ``type`` field, but they share a compaction key.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class QueueClass(StrEnum):
    """The three queue classes a worker can serve, by their seed names."""

    GLOBAL_TOPICS = "global_topics"
    TOPIC_POSTS = "topic_posts"
    PRIVATE_MESSAGES = "private_messages"


WORKERS_QUEUE: Final = "workers"
"""Visualization key of the worker pool record."""

CONTROLLER_QUEUE: Final = "controller"
"""Visualization key of the controller's latest decision."""

TOPIC_QUEUE_PREFIX = "topic_"
CONVERSATION_QUEUE_PREFIX = "users_"
STUCK_QUEUE_PREFIX = "stuck_"

_ID = r"[A-Za-z0-9_.-]{1,64}"
KEY_QUEUE_PATTERN = rf"^(?:topic_{_ID}|users_{_ID}:{_ID})$"
"""A per-key queue name: ``topic_{topic_id}`` or ``users_{a}:{b}``."""

DECISION_QUEUE_PATTERN = rf"^(?:global_topics|topic_{_ID}|users_{_ID}:{_ID})$"
"""The queue a decision names: a per-key queue or ``global_topics``."""


def pair_key(user_a: str, user_b: str) -> str:
    """Conversation key: the two user ids sorted as strings, joined by ``:``.

    Symmetric (``pair_key(a, b) == pair_key(b, a)``) and injective over pairs because user
    ids cannot contain ``:``.
    """
    first, second = sorted((user_a, user_b))
    return f"{first}:{second}"


def topic_queue_name(topic_id: str) -> str:
    """Per-key queue name of a forum topic's posts."""
    return f"topic_{topic_id}"


def conversation_queue_name(key: str) -> str:
    """Per-key queue name of a conversation, from its pair key."""
    return f"users_{key}"


def stuck_queue_name(queue_class: QueueClass) -> str:
    """Visualization key of a class's most delayed keys: ``stuck_{class}``."""
    return f"{STUCK_QUEUE_PREFIX}{queue_class.value}"


def key_queue_class(queue_name: str) -> QueueClass | None:
    """The class whose per-key queue this name is, from its prefix; ``None`` for other names.

    ``topic_…`` is ``topic_posts``, ``users_…`` is ``private_messages``. Only the prefix is
    read: validate the whole name against ``KEY_QUEUE_PATTERN`` where that matters.
    """
    if queue_name.startswith(TOPIC_QUEUE_PREFIX):
        return QueueClass.TOPIC_POSTS
    if queue_name.startswith(CONVERSATION_QUEUE_PREFIX):
        return QueueClass.PRIVATE_MESSAGES
    return None
