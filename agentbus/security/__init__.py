"""Security primitives: API keys, message signing, webhook destinations and signatures."""

from agentbus.security import keys, webhooks
from agentbus.security.signing import Keyring

__all__ = ["Keyring", "keys", "webhooks"]
