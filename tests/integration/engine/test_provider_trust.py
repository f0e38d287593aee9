"""Provider trust and SPF (seed 003), and probes aimed at named MX hosts (seed 001), against a
simulated world whose domains publish SPF records as TXT records."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from app.engine import CheckRequest, Verifier
from app.simulator import World
from app.verifiers import open_verifier
from tests.conftest import world_settings
from tests.fixtures.schema import assert_reacher_output

GOOGLE = "aspmx.l.google.com"
M365 = "trust-test.mail.protection.outlook.com"
PROOFPOINT = "mx0a-0042.pphosted.com"
OWN = "mail.asurad.test"
ALSO_OWN = "mx.ownmx.test"
FAKE_GMAIL = "mx.fakegmail.test"
# Longer than one 255-byte DNS character-string: served in two, read back as one record.
LONG_SPF = (
    "v=spf1 "
    + " ".join(f"ip4:192.0.2.{i}" for i in range(1, 25))
    + (" include:_spf.google.com ~all")
)


@pytest.fixture(scope="module")
def trust_world() -> Iterator[World]:
    world = World()
    for i, host in enumerate((GOOGLE, M365, PROOFPOINT, OWN, ALSO_OWN, FAKE_GMAIL)):
        world.add_mx(host, ip=f"127.0.0.{60 + i}")
    spf_google = "v=spf1 include:_spf.google.com ~all"
    domains: dict[str, tuple[str, tuple[str, ...]]] = {
        "workspace.test": (GOOGLE, (spf_google, "google-site-verification=abc123")),
        "nospf.test": (GOOGLE, ()),
        "redirected.test": (GOOGLE, ("v=spf1 redirect=_spf.google.com",)),
        "longspf.test": (GOOGLE, (LONG_SPF,)),
        "twospf.test": (GOOGLE, (spf_google, "v=spf1 -all")),
        "m365.test": (M365, ("v=spf1 include:spf.protection.outlook.com -all",)),
        "gatewayed.test": (PROOFPOINT, ("v=spf1 include:spf.protection.outlook.com -all",)),
        "asurad.test": (OWN, ("v=spf1 mx -all",)),
        "ownmx.test": (ALSO_OWN, (spf_google,)),
        # A domain calling itself gmail.com whose mail goes elsewhere (seed 003's fake Gmail).
        "gmail.com": (FAKE_GMAIL, ()),
    }
    for name, (mx, txt) in domains.items():
        world.add_domain(name, mx=[(10, mx)], mailboxes=["alice", "kolaseh179"], txt=txt)
    with world:
        yield world
        assert world.total_data_commands() == 0


@asynccontextmanager
async def verifier_for(world: World, **overrides: object) -> AsyncIterator[Verifier]:
    async with open_verifier(world_settings(world, **overrides), shared_limits=False) as verifier:
        yield verifier


async def check(verifier: Verifier, address: str, **options: Any) -> dict[str, Any]:
    result = (await verifier.check(CheckRequest(to_email=address, **options))).to_json()
    assert_reacher_output(result)
    return result


# domain → (provider, source, trusted, spf record_found, authorises_provider, providers named)
EXPECTED: dict[str, tuple[str, str, bool, bool | None, bool | None, list[str]]] = {
    "workspace.test": ("gmail", "mx", True, True, True, ["gmail"]),
    "nospf.test": ("gmail", "mx", True, False, False, []),
    "redirected.test": ("gmail", "mx", True, True, True, ["gmail"]),
    "longspf.test": ("gmail", "mx", True, True, True, ["gmail"]),
    "twospf.test": ("gmail", "mx", True, True, None, []),
    "m365.test": ("microsoft", "mx", True, True, True, ["microsoft"]),
    # The MX is Proofpoint's filter; the SPF record says the mailboxes are Microsoft 365's.
    "gatewayed.test": ("microsoft", "spf", True, True, True, ["microsoft"]),
    "asurad.test": ("other", "mx", False, True, None, []),
    # Its own MX: an SPF include is no proof of where mailboxes are, so not trusted.
    "ownmx.test": ("gmail", "spf", False, True, True, ["gmail"]),
    "gmail.com": ("other", "mx", False, False, None, []),
}


@pytest.mark.parametrize("domain", list(EXPECTED))
async def test_provider_trust_and_spf_are_reported(trust_world: World, domain: str) -> None:
    provider, source, trusted, found, authorises, named = EXPECTED[domain]
    async with verifier_for(trust_world) as verifier:
        result = await check(verifier, f"alice@{domain}")

    misc = result["misc"]
    assert (misc["provider"], misc["provider_source"], misc["provider_trusted"]) == (
        provider,
        source,
        trusted,
    )
    assert misc["spf"]["record_found"] is found
    assert misc["spf"]["authorises_provider"] is authorises
    assert misc["spf"]["providers"] == named
    assert result["is_reachable"] == "safe"  # reported only: no policy by default
    assert "policy" not in result["debug"]


async def test_several_spf_records_are_an_error_not_a_guess(trust_world: World) -> None:
    async with verifier_for(trust_world) as verifier:
        result = await check(verifier, "alice@twospf.test")

    assert result["misc"]["spf"]["error"] == "2 SPF records (RFC 7208 allows one)"


async def test_the_spf_record_is_asked_once_per_domain(trust_world: World) -> None:
    trust_world.reset_recorders()
    async with verifier_for(trust_world) as verifier:
        await check(verifier, "alice@workspace.test")
        await check(verifier, "kolaseh179@workspace.test")

    assert trust_world.dns_queries[("workspace.test", "TXT")] == 1
    assert trust_world.dns_queries[("workspace.test", "MX")] == 1


async def test_trusted_providers_only_makes_untrusted_providers_risky(trust_world: World) -> None:
    async with verifier_for(trust_world, policy="trusted_providers_only") as verifier:
        untrusted = await check(verifier, "kolaseh179@asurad.test")
        fake = await check(verifier, "alice@gmail.com")
        trusted = await check(verifier, "alice@workspace.test")
        missing = await check(verifier, "nobody@asurad.test")

    assert untrusted["is_reachable"] == "risky"
    assert untrusted["debug"]["policy"] == {
        "name": "trusted_providers_only",
        "changed_verdict": True,
        "reason": "policy trusted_providers_only: other (MX mail.asurad.test, recognised from "
        "mx) is not a trusted provider",
    }
    assert untrusted["smtp"]["is_deliverable"] is True  # the mailbox itself exists
    assert fake["is_reachable"] == "risky"
    assert trusted["is_reachable"] == "safe"
    assert trusted["debug"]["policy"] == {
        "name": "trusted_providers_only",
        "changed_verdict": False,
        "reason": None,
    }
    assert missing["is_reachable"] == "invalid"  # a policy never makes an address better


async def test_a_request_may_ask_for_the_policy(trust_world: World) -> None:
    async with verifier_for(trust_world) as verifier:
        asked = await check(verifier, "alice@ownmx.test", policy="trusted_providers_only")
        default = await check(verifier, "alice@ownmx.test")

    assert asked["is_reachable"] == "risky"
    assert default["is_reachable"] == "safe"


async def test_operators_extend_the_trusted_list(trust_world: World) -> None:
    async with verifier_for(
        trust_world, policy="trusted_providers_only", trusted_providers=("asurad.test",)
    ) as verifier:
        result = await check(verifier, "alice@asurad.test")

    assert result["misc"]["provider_trusted"] is True
    assert result["is_reachable"] == "safe"


async def test_a_named_mx_host_is_probed_without_asking_dns(trust_world: World) -> None:
    trust_world.reset_recorders()
    ip = trust_world.mx_ip(OWN)
    async with verifier_for(trust_world) as verifier:
        found = await check(verifier, "alice@asurad.test", mx_hosts=(ip,))
        missing = await check(verifier, "nobody@asurad.test", mx_hosts=(ip,))

    assert found["is_reachable"] == "safe"
    assert found["mx"] == {"accepts_mail": True, "records": [f"{ip}."]}
    assert found["debug"]["probe"]["mx_host"] == ip
    assert "spf" not in found["misc"]  # no DNS for the domain at all
    assert missing["is_reachable"] == "invalid"
    assert not [q for q in trust_world.dns_queries if q[0] == "asurad.test"]
    assert trust_world.recorder(OWN).rcpt_count >= 2


async def test_a_named_mx_host_obeys_the_private_address_rule(trust_world: World) -> None:
    trust_world.reset_recorders()
    ip = trust_world.mx_ip(OWN)
    async with verifier_for(trust_world, allow_private_mx=False) as verifier:
        result = await check(verifier, "alice@asurad.test", mx_hosts=(ip,))

    assert result["is_reachable"] == "unknown"
    assert "non-public" in result["smtp"]["error"]["message"]
    assert trust_world.recorder(OWN).connections == 0
