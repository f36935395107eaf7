"""High availability: any number of controllers run, exactly one acts, chosen through Kafka.

**The choice: a consumer group as a lease.** Every controller joins the consumer group
``{prefix}modq.controllers`` subscribed to the control topic, which has exactly one partition.
The group coordinator gives that partition to exactly one member at a time, and that member
leads. It is also exactly what the leader needs to read: on gaining the partition it re-reads
the compacted control topic from the beginning (latest heartbeat and assignment of every
worker, highest generation) and acts only once it has caught up with what was there.

- A leader that stops cleanly leaves the group: a standby gains the partition at once.
- A leader that dies (SIGKILL, lost host) stops heartbeating to the coordinator; after the
  session timeout (:data:`~orchestrator.controller.kafka_io.LEADER_SESSION_TIMEOUT_MS`, 3 s)
  the coordinator rebalances and a standby leads: takeover within a few seconds.
- Members are ordered by member id (``controller-{id}-…``), and the assignor gives the
  partition to the first, so with several alive the smallest id leads; a restarted smaller id
  takes the lead back (one rebalance, generations still increase).
- With no controller alive, workers keep serving their last assignment (they only read the
  control topic); nothing in the data plane depends on a controller.

Residual risk (documented, not hidden): a leader cut off from the coordinator keeps believing
it leads until its own session times out, so for up to one session two controllers may act.
Both derive assignments from the same log and workers apply only a higher generation, so the
effect is at most a redundant move, corrected on the next tick of the real leader.
"""

from __future__ import annotations

import logging

from orchestrator.controller.control_plane import ControlLog
from orchestrator.controller.kafka_io import ControlMember
from schemas.settings import Settings
from schemas.topics import TopicNames

_LOG = logging.getLogger("modq.controller")
FETCH_TIMEOUT_MS = 200


def controllers_group(topics: TopicNames) -> str:
    """The consumer group all controllers of a deployment join."""
    return f"{topics.prefix}modq.controllers"


class Leadership:
    """Group membership plus the control log it feeds. Async context manager.

    ``acting`` is true while this controller leads and has caught up with the control topic;
    ``epoch`` counts the times it gained the lead (the runtime starts its policy state afresh
    on each new epoch).
    """

    def __init__(self, settings: Settings, controller_id: str) -> None:
        topics = TopicNames.from_prefix(settings.topic_prefix)
        self.controller_id = controller_id
        self.log = ControlLog()
        self.epoch = 0
        self._member = ControlMember(
            settings,
            topic=topics.control,
            group=controllers_group(topics),
            controller_id=controller_id,
            on_gain=self._gained,
            on_loss=self._lost,
        )

    async def __aenter__(self) -> Leadership:
        await self._member.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._member.__aexit__(*exc)

    @property
    def acting(self) -> bool:
        """Leading, with the control topic read up to where it was when the lead was gained."""
        return self._member.leading and self._member.caught_up

    @property
    def leading(self) -> bool:
        """Owns the control partition (possibly still catching up)."""
        return self._member.leading

    def _gained(self) -> None:
        self.log.reset()
        self.epoch += 1
        _LOG.info("controller %s gained the lead (epoch %d)", self.controller_id, self.epoch)

    def _lost(self) -> None:
        _LOG.info("controller %s lost the lead", self.controller_id)

    async def follow_once(self) -> int:
        """Fetch and fold the next control records; returns how many. Call it continuously:
        it also keeps the group membership alive."""
        records = await self._member.fetch(FETCH_TIMEOUT_MS)
        for key, value in records:
            self.log.apply(key, value)
        return len(records)
