"""The allocation rules, applied in order by :func:`orchestrator.policy.allocation.allocate`.

Each rule reads a :class:`~orchestrator.policy.tick.TickContext`, places workers on its ledger
with a rule name and a cause, and appends a reason whenever it has to give up. See the
allocation module's docstring for the order and the contract of each rule.
"""

from __future__ import annotations

from orchestrator.policy.models import BreakerStatus, MoveRule
from orchestrator.policy.progress import stall_seconds
from orchestrator.policy.tick import TickContext
from schemas.queues import QueueClass


def _lost_suffix(tick: TickContext, queue_class: QueueClass) -> str:
    names = tick.lost[queue_class]
    return f" after losing worker {', '.join(names)}" if names else ""


def enforce_maxima(tick: TickContext) -> None:
    """Release workers (to unassigned) from every class above its max, then from classes
    above their min while more than ``total_workers`` are assigned; most recently moved first."""
    ledger = tick.ledger
    for c in QueueClass:
        while ledger.count(c) > tick.max(c):
            victim = max(ledger.members[c], key=ledger.seniority)
            cause = f"{c} above its max ({ledger.count(c)} > {tick.max(c)})"
            ledger.place(victim, None, MoveRule.MAX_WORKERS, cause)
    while ledger.assigned() > tick.config.total_workers:
        donor = tick.donor(None, allow_protected=True)
        if donor is None:  # unreachable: the validated mins fit in total_workers
            break
        victim = max(ledger.members[donor], key=ledger.seniority)
        cause = f"pool above total_workers ({ledger.assigned()} > {tick.config.total_workers})"
        ledger.place(victim, None, MoveRule.MAX_WORKERS, cause)


def fill_minima(tick: TickContext) -> None:
    """Fill each class up to its min, in priority order (global_topics first), from
    unassigned workers, then from classes above their min; ignores the cooldown. Only
    global_topics may take a worker below another class's min (degraded pool)."""
    ledger = tick.ledger
    order = sorted(
        QueueClass,
        key=lambda c: (
            c is not QueueClass.GLOBAL_TOPICS,
            not tick.breakers[c].holds_worker,
            -tick.scores[c],
            c.value,
        ),
    )
    for rank, c in enumerate(order):
        while ledger.count(c) < tick.min(c):
            worker = ledger.take_free() if tick.has_room() else None
            if worker is None:
                donor = tick.donor(c, allow_protected=True)
                if donor is None and c is QueueClass.GLOBAL_TOPICS:
                    lower = [d for d in order[rank + 1 :] if ledger.count(d) > 0]
                    donor = lower[-1] if lower else None
                worker = None if donor is None else ledger.take_from(donor)
            if worker is None:
                tick.reasons.append(
                    f"{c} below its min ({ledger.count(c)} < {tick.min(c)}): no worker available"
                )
                break
            cause = f"{c} below its min ({ledger.count(c)} < {tick.min(c)}){_lost_suffix(tick, c)}"
            ledger.place(worker, c, MoveRule.MIN_WORKERS, cause)


def serve_breakers(tick: TickContext) -> None:
    """Give one worker to each class whose breaker is open or recovering, that has pending
    work and none: unassigned first, else from an unprotected class above its min. Ignores
    the cooldown; never takes a worker below a min."""
    ledger = tick.ledger
    held = [c for c in QueueClass if tick.breakers[c].holds_worker and tick.pending(c) > 0]
    held.sort(
        key=lambda c: (
            tick.breakers[c].status is not BreakerStatus.OPEN,
            -stall_seconds(tick.metrics[c], tick.now),
            c.value,
        )
    )
    for c in held:
        status = tick.breakers[c].status
        if ledger.count(c) > 0:
            if status is BreakerStatus.OPEN:
                tick.reasons.append(
                    f"breaker {c} open; it already has {ledger.count(c)} worker(s), "
                    "waiting for progress"
                )
            continue
        if tick.max(c) == 0:
            tick.reasons.append(f"breaker {c} {status} but its max is 0")
            continue
        worker = ledger.take_free() if tick.has_room() else None
        if worker is None:
            donor = tick.donor(c, allow_protected=False)
            worker = None if donor is None else ledger.take_from(donor)
        if worker is None:
            tick.reasons.append(
                f"breaker {c} {status} but no worker can be taken without breaking a min"
            )
            continue
        stalled = stall_seconds(tick.metrics[c], tick.now)
        if status is BreakerStatus.OPEN:
            cause = f"breaker open after {stalled:.0f} s without progress"
        else:
            cause = "breaker recovering: the class keeps a worker until it closes"
        cause += f" ({tick.pending(c)} pending){_lost_suffix(tick, c)}"
        ledger.place(worker, c, MoveRule.CIRCUIT_BREAKER, cause)


def place_unassigned(tick: TickContext) -> None:
    """Put every unassigned worker (by id) to use while the pool has room: on the class with
    pending work and the best per-worker score below its max, else on an idle class below its
    max; leave it spare when every class is at its max."""
    ledger = tick.ledger
    while (worker := ledger.take_free()) is not None:
        if not tick.has_room():
            tick.reasons.append(
                f"{ledger.count(None)} worker(s) spare: the pool is at total_workers "
                f"({tick.config.total_workers})"
            )
            return
        room = [c for c in QueueClass if ledger.count(c) < tick.max(c)]
        if not room:
            tick.reasons.append(f"{ledger.count(None)} worker(s) spare: every class is at its max")
            return
        target = min(
            room,
            key=lambda c: (
                tick.pending(c) == 0,
                -tick.per_worker_score(c, 1),
                ledger.count(c),
                c.value,
            ),
        )
        if tick.pending(target) > 0:
            cause = (
                f"{target} has the highest per-worker score "
                f"({tick.per_worker_score(target, 1):.1f}) among classes below their max"
            )
        elif any(tick.pending(c) > 0 for c in QueueClass):
            cause = f"classes with pending work are at their max; {target} is below its max"
        else:
            cause = f"nothing is pending; {target} is below its max, the worker waits there"
        ledger.place(worker, target, MoveRule.PRIORITY, cause + _lost_suffix(tick, target))


def rebalance(tick: TickContext) -> None:
    """Move workers above their class's min to classes with pending work, best gain first:
    idle releases (own class idle) before priority moves (other class's per-worker score beats
    this one's by more than ``rebalance_margin``). Workers moved this tick or within
    ``cooldown_seconds`` stay; the last worker of a breaker-held class stays. Each worker moves
    at most once, so this is O(W) after sorting."""
    ledger, config = tick.ledger, tick.config
    movers: dict[QueueClass, list[str]] = {}
    blocked: set[QueueClass] = set()
    for c in QueueClass:
        unlocked = [
            w
            for w in ledger.members[c]
            if w not in ledger.touched
            and not ledger.is_locked(w, tick.now, config.cooldown_seconds)
        ]
        movers[c] = sorted(unlocked, key=ledger.seniority, reverse=True)
    for _ in range(len(ledger.current) + len(QueueClass)):
        best: tuple[tuple[bool, float, str, str], QueueClass, QueueClass] | None = None
        for s in QueueClass:
            if s in blocked or ledger.count(s) <= tick.min(s) or tick.protected(s):
                continue
            for t in QueueClass:
                if t is s or ledger.count(t) >= tick.max(t) or tick.pending(t) == 0:
                    continue
                key = _rank(tick, s, t)
                if key is not None and (best is None or key < best[0]):
                    best = (key, s, t)
        if best is None:
            return
        key, source, target = best
        cause = _cause(tick, source, target)
        if not movers[source]:
            blocked.add(source)
            tick.reasons.append(
                f"cooldown: kept {source}'s workers in place although {cause} "
                f"(each moved this tick or less than {config.cooldown_seconds:.0f} s ago)"
            )
            continue
        worker = movers[source].pop()
        rule = MoveRule.PRIORITY if key[0] else MoveRule.IDLE_RELEASE
        ledger.place(worker, target, rule, cause)


def _rank(
    tick: TickContext, source: QueueClass, target: QueueClass
) -> tuple[bool, float, str, str] | None:
    """Sort key of moving one worker from ``source`` to ``target`` (smaller is better), or
    ``None`` when the move is not worth it. Idle releases sort before priority moves."""
    gain_target = tick.per_worker_score(target, 1)
    if tick.pending(source) == 0:
        return (False, -gain_target, source.value, target.value)
    current = tick.per_worker_score(source, 0)
    if gain_target <= current * (1.0 + tick.config.rebalance_margin):
        return None
    return (True, current - gain_target, source.value, target.value)


def _cause(tick: TickContext, source: QueueClass, target: QueueClass) -> str:
    """Why moving one worker from ``source`` to ``target`` is worth it (see :func:`_rank`)."""
    if tick.pending(source) == 0:
        return (
            f"{source} is idle and {target} has {tick.pending(target)} pending "
            f"(score {tick.scores[target]:.1f})"
        )
    gain_target = tick.per_worker_score(target, 1)
    current = tick.per_worker_score(source, 0)
    return (
        f"{target} per-worker score {gain_target:.1f} beats {source}'s {current:.1f} "
        f"by more than the {tick.config.rebalance_margin:.0%} margin"
    )
