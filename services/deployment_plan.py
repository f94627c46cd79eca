"""What a deployment does next for one app: how many instances to launch, which to kill.

A plain function of the app's target and its instances, so that a scheduler restarted
mid-deployment (state read back from the store, tasks reconciled) simply continues: nothing
of the deployment's progress lives anywhere else.

Rolling replacement follows Marathon's: with ``n`` instances wanted,
``minHealthy = ceil(n * minimumHealthCapacity)`` and ``maxCapacity = floor(n * (1 +
maximumOverCapacity))`` (one more when they are equal, or nothing could move). New instances
start while old + new < maxCapacity; old ones are killed while the ready (healthy) instances
left would stay at least minHealthy. Scaling kills by ``killSelection``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from services.app_definition import AppDefinition
from services.instances import Instance


@dataclass(frozen=True)
class Step:
    """What to do now: launch this many of the current config, kill these (task ids)."""

    launch: int = 0
    kill: tuple[str, ...] = field(default_factory=tuple)
    done: bool = False  # the app is where the deployment wants it


def capacity(instances: int, min_health: float, max_over: float) -> tuple[int, int]:
    """(minHealthy, maxCapacity) for ``instances`` under an upgrade strategy."""
    min_healthy = math.ceil(instances * min_health - 1e-9)
    max_capacity = math.floor(instances * (1 + max_over) + 1e-9)
    if min_healthy >= max_capacity:
        max_capacity = min_healthy + 1  # room for one new instance, or nothing moves
    return min_healthy, max_capacity


def kill_order(instances: list[Instance], selection: str) -> list[Instance]:
    """Instances in the order a scale-down kills them: not yet running first (they serve no
    one), then by ``killSelection`` (YOUNGEST_FIRST: latest staged first)."""
    youngest_first = selection != "OLDEST_FIRST"
    by_age = sorted(instances, key=lambda i: (i.staged_at, i.task_id), reverse=youngest_first)
    return sorted(by_age, key=lambda i: i.is_running())


def next_step(app: AppDefinition, instances: list[Instance], rolling: bool) -> Step:
    """The next move for ``app`` given its active instances. ``rolling``: a deployment holds
    the app and replaces instances of an older config; without one, only the count is kept
    (Marathon's scale check), whatever config the instances run."""
    active = [i for i in instances if i.is_active()]
    checked = bool(app.health_checks)
    readiness = bool(app.readiness_checks)  # asked of the current config's instances only
    wanted = app.instances
    new = [i for i in active if i.config_version == app.config_version]
    old = [i for i in active if i.config_version != app.config_version]
    if not rolling or not old:
        everyone = active if not rolling else new
        if len(everyone) < wanted:
            return Step(launch=wanted - len(everyone))
        if len(everyone) > wanted:
            extra = kill_order(everyone, app.kill_selection)[: len(everyone) - wanted]
            return Step(kill=tuple(i.task_id for i in extra))
        done = all(
            i.is_ready(checked, readiness and i.config_version == app.config_version)
            for i in everyone
        )
        return Step(done=done)
    strategy = app.upgrade_strategy
    min_healthy, max_capacity = capacity(
        wanted, strategy.minimum_health_capacity, strategy.maximum_over_capacity
    )
    # Keep the new ones to the wanted count (a scale-down during a restart).
    if len(new) > wanted:
        extra = kill_order(new, app.kill_selection)[: len(new) - wanted]
        return Step(kill=tuple(i.task_id for i in extra))
    ready_new = [i for i in new if i.is_ready(checked, readiness)]
    ready_old = [i for i in old if i.is_ready(checked)]
    # Old instances that are not ready serve no one: they go at once.
    kills = [i for i in old if not i.is_ready(checked)]
    healthy_left = len(ready_new) + len(ready_old)
    surplus = healthy_left - min_healthy
    # More old ones than the new config needs beside the new ones may go too.
    for instance in kill_order(ready_old, "OLDEST_FIRST"):
        if surplus <= 0:
            break
        kills.append(instance)
        surplus -= 1
    remaining = len(old) - len(kills)
    room = max_capacity - (remaining + len(new))
    launch = max(0, min(room, wanted - len(new)))
    return Step(launch=launch, kill=tuple(i.task_id for i in kills))
