"""Security primitives: message signing (API keys and rate limits come later)."""

from agentbus.security.signing import Keyring

__all__ = ["Keyring"]
