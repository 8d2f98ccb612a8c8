"""apihub: an asyncio API hub that validates and relays versioned actions
between the apps of an ecosystem. See README.md and docs/contract.md."""

__version__ = "0.1.0"
