"""Start-up imports: what randomd and randomctl leave out, and leave importable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from randomd.imports import without

REPORT = "import sys; print(sorted({'ssl', 'gi'} & set(sys.modules)))"


# randomctl fails to connect here, after importing all it needs to run a command.
CTL = "import randomd.ctl; randomd.ctl.main(['--address', 'unix:path=/nonexistent', 'status'])"


@pytest.mark.parametrize("entry", ["import randomd.daemon", CTL], ids=["randomd", "randomctl"])
def test_start_up_loads_neither_openssl_nor_pygobject(entry: str) -> None:
    result = subprocess.run([sys.executable, "-c", f"{entry}\n{REPORT}"],
                            capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "[]", result.stdout


def test_a_module_kept_out_cannot_be_imported_inside_the_block() -> None:
    with without("this_module_is_kept_out"), pytest.raises(ImportError):
        import this_module_is_kept_out  # noqa: F401


def test_a_module_kept_out_can_be_imported_after_the_block() -> None:
    with without("json.tool"):
        pass
    import json.tool  # noqa: F401


def test_a_module_already_loaded_is_not_kept_out() -> None:
    with without("sys"):
        import sys as again
    assert again is sys
