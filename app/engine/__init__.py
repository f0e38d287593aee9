"""The verifier: a pure core that knows nothing about HTTP, SQL or queues."""

from app.engine.check import CheckRequest, Verifier
from app.engine.config import DnsConfig, ProbeConfig, ProxyConfig
from app.engine.model import CheckEmailOutput, Reachable
from app.engine.probes.catchall import CatchAllStore, MemoryCatchAllStore
from app.engine.probes.dns import Resolver
from app.engine.probes.limits import Lease, LocalMxLimiter, MxLimiter, NoSlot
from app.engine.probes.pool import SessionPool

__all__ = [
    "CatchAllStore",
    "CheckEmailOutput",
    "CheckRequest",
    "DnsConfig",
    "Lease",
    "LocalMxLimiter",
    "MemoryCatchAllStore",
    "MxLimiter",
    "NoSlot",
    "ProbeConfig",
    "ProxyConfig",
    "Reachable",
    "Resolver",
    "SessionPool",
    "Verifier",
]
