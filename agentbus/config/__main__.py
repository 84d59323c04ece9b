"""``python -m agentbus.config > docs/configuration.md``: the settings reference, from the declarations."""

from __future__ import annotations

import sys

from agentbus.config.reference import markdown

sys.stdout.write(markdown())
