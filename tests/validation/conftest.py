from __future__ import annotations

import pytest

from .test_jsonschema_suite import print_table


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    print_table(config, terminalreporter.write_line)
