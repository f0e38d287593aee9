"""The verifier: a pure core that knows nothing about HTTP, SQL or queues."""

from app.engine.check import CheckRequest, ProbeOpener, Verification, Verifier, syntax_of
from app.engine.config import DnsConfig, ProbeConfig, ProxyConfig
from app.engine.model import CheckEmailOutput, Reachable
from app.engine.observer import Observer
from app.engine.probes.behaviour import BehaviourStore, MxBehaviour
from app.engine.probes.catchall import CatchAllStore, MemoryCatchAllStore
from app.engine.probes.dns import Resolver
from app.engine.probes.limits import (
    Lease,
    LocalMxLimiter,
    LocalRateLimiter,
    MxLimiter,
    NoSlot,
    RateLimiter,
)
from app.engine.probes.pool import SessionPool
from app.engine.rules.adapt import MxStats
from app.engine.rules.rates import Rate

__all__ = [
    "BehaviourStore",
    "CatchAllStore",
    "CheckEmailOutput",
    "CheckRequest",
    "DnsConfig",
    "Lease",
    "LocalMxLimiter",
    "LocalRateLimiter",
    "MemoryCatchAllStore",
    "MxBehaviour",
    "MxLimiter",
    "MxStats",
    "NoSlot",
    "Observer",
    "ProbeConfig",
    "ProbeOpener",
    "ProxyConfig",
    "Rate",
    "RateLimiter",
    "Reachable",
    "Resolver",
    "SessionPool",
    "Verification",
    "Verifier",
    "syntax_of",
]
