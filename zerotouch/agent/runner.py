"""The agent's loop: fetch commands, run them in order, report, until ``finished``.

A device stops at the first failing command and reports it; the service then holds the device in
ERROR until the operator resets or skips the command, and the agent's long poll picks the plan up
again from where it stopped. After ``finished`` the settings file records ``provisioned = true``
and ``enabled = false``.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zerotouch.agent import settings as agent_settings
from zerotouch.agent.client import Transport
from zerotouch.agent.executor import CommandFailed, execute
from zerotouch.agent.keystore import Keystore

BATCH_LIMIT = 20  # API.md: limit 1-20.


class Outcome(enum.StrEnum):
    PROVISIONED = "provisioned"
    DISABLED = "disabled"  # enabled = false, or provisioned already: nothing to do.
    IDLE = "idle"  # Nothing to do and told not to wait (``until_idle``).


@dataclass
class Report:
    """What a run did, for the caller's display."""

    outcome: Outcome
    commands: int = 0
    failures: int = 0


Listener = Callable[[str, dict[str, Any]], None]


async def run(
    settings: agent_settings.AgentSettings,
    api: Transport,
    keystore: Keystore,
    *,
    settings_path: Path | None,
    until_idle: bool = False,
    listener: Listener | None = None,
) -> Report:
    if settings.provisioned or not settings.enabled:
        return Report(Outcome.DISABLED)
    notify = listener or (lambda _event, _data: None)
    report = Report(Outcome.IDLE)
    after: str | None = None
    while True:
        wait = 0 if until_idle else settings.long_poll
        commands = await api.fetch(after=after, limit=BATCH_LIMIT, wait=wait)
        if not commands:
            if until_idle:
                return report
            if settings.long_poll == 0:
                await asyncio.sleep(settings.retry_interval)
            continue
        responses, finished, last_done = _run_batch(keystore, commands, report, notify)
        if finished:
            await api.finishing(keystore)  # Over MQTT: the production identity connects first.
        await api.respond(responses)
        after = last_done or after
        if finished:
            if settings_path is not None:
                agent_settings.mark_provisioned(settings_path, durable=keystore.durable)
            report.outcome = Outcome.PROVISIONED
            notify("provisioned", {})
            return report


def _run_batch(
    keystore: Keystore, commands: list[dict[str, Any]], report: Report, notify: Listener
) -> tuple[list[dict[str, Any]], bool, str | None]:
    """Run the batch in order, stopping at the first failure; (responses, finished, last id)."""
    responses: list[dict[str, Any]] = []
    last_done: str | None = None
    for command in commands:
        report.commands += 1
        try:
            result = execute(keystore, command["type"], command.get("params") or {})
        except CommandFailed as exc:
            report.failures += 1
            responses.append({"id": command["id"], "error": {"message": str(exc)}})
            notify("failed", {"type": command["type"], "message": str(exc)})
            return responses, False, last_done
        responses.append({"id": command["id"], "result": result})
        last_done = command["id"]
        notify("done", {"type": command["type"]})
        if command["type"] == "finished":
            return responses, True, last_done
    return responses, False, last_done
