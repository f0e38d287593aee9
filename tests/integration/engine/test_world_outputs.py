"""Every address of the standard world through the engine at once (each event loop): the
expected verdict, and an output in the shape of Reacher's CheckEmailOutput, errors included."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from app.engine import CheckRequest
from app.simulator import World
from app.simulator.standard import EXPECTED
from app.verifiers import open_verifier
from tests.conftest import world_settings
from tests.fixtures.schema import output_errors

# The shared world greylists for 1 s: a single check waits a little longer, then asks again.
GREYLIST_WAIT = 1.2


async def check_all(world: World, addresses: list[str]) -> dict[str, dict[str, Any]]:
    settings = world_settings(world, check_greylist_wait=GREYLIST_WAIT)
    async with open_verifier(settings, shared_limits=False) as verifier:
        outputs = await asyncio.gather(
            *(verifier.check(CheckRequest(to_email=address)) for address in addresses)
        )
    return {address: o.to_json() for address, o in zip(addresses, outputs, strict=True)}


async def test_every_address_gets_its_verdict_in_reachers_shape(world: World) -> None:
    results = await check_all(world, list(EXPECTED))

    wrong = {
        address: (result["is_reachable"], EXPECTED[address], result["smtp"])
        for address, result in results.items()
        if result["is_reachable"] != EXPECTED[address]
    }
    misshapen = {
        address: problems
        for address, result in results.items()
        if (problems := output_errors(result))
    }
    assert not wrong, "address: (got, expected, smtp)\n" + json.dumps(wrong, indent=1)
    assert not misshapen, json.dumps(misshapen, indent=1)
    assert all(list(result)[:2] == ["input", "is_reachable"] for result in results.values())


async def test_4xx_mailbox_answers_keep_reachers_fields(world: World) -> None:
    """452 4.2.2 is a full inbox; Gmail's 450 4.2.1 "receiving mail at a rate" means the mailbox
    exists: neither is a temporary failure to try again, on any way the reply arrives."""
    full = ["carol@flight.test", "carol@split.test", "carol@splittls.test", "alice@quota.test"]
    full.append("carol@multiline.test")
    rated = ["dave@flight.test", "dave@splitpipe.test", "dave@multiline.test"]
    rated.append("alice@ratelimit.test")
    async with open_verifier(world_settings(world), shared_limits=False) as verifier:
        checked = await asyncio.gather(
            *(verifier.verify(CheckRequest(to_email=address)) for address in full + rated)
        )
    outcome = {
        address: (c.output.is_reachable.value, c.try_again, c.output.to_json()["smtp"])
        for address, c in zip(full + rated, checked, strict=True)
    }

    full_inbox = {
        "can_connect_smtp": True,
        "has_full_inbox": True,
        "is_catch_all": False,
        "is_deliverable": False,
        "is_disabled": False,
    }
    deliverable = {**full_inbox, "has_full_inbox": False, "is_deliverable": True}
    assert {a: outcome[a] for a in full} == {a: ("risky", False, full_inbox) for a in full}
    assert {a: outcome[a] for a in rated} == {a: ("safe", False, deliverable) for a in rated}
