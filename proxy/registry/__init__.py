"""Which apps exist, who they are, where they are installed, what they serve.

One Protocol (base.py), backends by name (backends.py): `file` (manifests in
catalogue/apps/, reloaded with the catalogue) and `redis` (shared by every
hub instance, cached in process).
"""

from .backends import BACKENDS, open_registry
from .base import PutOutcome, Registry
from .manifest import ANY_ACTION, App, Limits, ManifestError, Provision, Secret, parse_manifest

__all__ = [
    "ANY_ACTION", "BACKENDS", "App", "Limits", "ManifestError", "Provision", "PutOutcome", "Registry", "Secret",
    "open_registry", "parse_manifest",
]
