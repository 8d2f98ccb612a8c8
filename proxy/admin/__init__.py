"""The admin listener: apps and installations, conformance."""
