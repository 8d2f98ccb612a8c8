"""Calls to providers: the client seam (base.py), clients by name
(clients.py), and the breakers and bulkheads that guard each provider."""

from .base import ProviderClient, signature
from .clients import CLIENTS, check_client, open_client
from .guards import Breaker, Bulkhead, Guards

__all__ = ["CLIENTS", "Breaker", "Bulkhead", "Guards", "ProviderClient", "check_client", "open_client", "signature"]
