"""The catalogue: every action's versions, schemas compiled once.

Sources (action files in files.py, OpenAPI documents in openapi.py) produce
plain `ActionSpec`s; loader.py compiles them into a frozen `Catalogue`.
"""

from .loader import SchemaCompiler, build_actions, compiler_for, load_catalogue, read_sources
from .model import Action, ActionSpec, ActionVersion, Catalogue, VersionSpec, summary

__all__ = [
    "Action", "ActionSpec", "ActionVersion", "Catalogue", "SchemaCompiler", "VersionSpec",
    "build_actions", "compiler_for", "load_catalogue", "read_sources", "summary",
]
