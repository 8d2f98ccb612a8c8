"""Running apihub: the CLI, serving, the worker supervisor, the catalogue
check and the example provider."""
