"""Observability: logs, metrics, and what each provider call tells them."""
