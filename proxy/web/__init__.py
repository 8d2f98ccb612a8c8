"""The HTTP face of the hub: app wiring, state and reload, middleware and
problem+json, handlers, the OpenAPI export."""
