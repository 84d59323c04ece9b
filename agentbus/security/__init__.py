"""Security primitives: message signing, webhook destinations and signatures."""

from agentbus.security import webhooks
from agentbus.security.signing import Keyring

__all__ = ["Keyring", "webhooks"]
