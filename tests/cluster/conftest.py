"""The cluster rehearsal's tests: cluster.yaml run by Ray's own launcher and autoscaler on
this machine (orchestration/platform/rehearsal/). They need root, openssh-server and rsync
(`make ssh`), and skip with the reason otherwise. The timeline of what ran when is printed
at the end of the session."""

from pathlib import Path

import pytest

from hmtl.orchestration.platform.rehearsal.host import missing_tools
from hmtl.orchestration.platform.rehearsal.timeline import TIMELINE

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    reason = missing_tools()
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.cluster)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter):
    if TIMELINE.events:
        terminalreporter.section("cluster rehearsal timeline")
        for line in TIMELINE.lines():
            terminalreporter.write_line(line)
