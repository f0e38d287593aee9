"""The simulated mail world: a DNS server and fake MX servers on 127.0.0.0/8.

An independent oracle for the verifier: it imports nothing from the engine, the database or
the API. See `standard` for the standard world's domains and `bench` for the bench world.
"""

from app.simulator.behaviours import Behaviour, Mailbox
from app.simulator.recorder import Recorder
from app.simulator.standard import standard_world
from app.simulator.world import DomainKind, World

__all__ = ["Behaviour", "DomainKind", "Mailbox", "Recorder", "World", "standard_world"]
