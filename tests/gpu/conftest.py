"""tests/gpu/ needs a real NVIDIA GPU; elsewhere every test here is skipped, and the summary says why."""

from __future__ import annotations

import pytest

_REASON = ""


def _real_nvidia_gpu() -> bool:
    global _REASON
    try:
        import pynvml

        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        pynvml.nvmlShutdown()
    except Exception as e:  # noqa: BLE001 - any NVML failure means: no usable GPU here
        _REASON = f"no NVIDIA GPU on this machine ({type(e).__name__}); tests/gpu/ runs on a GPU host"
        return False
    if count == 0:
        _REASON = "NVML found no GPU; tests/gpu/ runs on a GPU host"
        return False
    return True


HAVE_GPU = _real_nvidia_gpu()


def pytest_collection_modifyitems(config, items):
    if HAVE_GPU:
        return
    skip = pytest.mark.skip(reason=_REASON)
    for item in items:
        if "tests/gpu/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not HAVE_GPU:
        terminalreporter.write_line(f"tests/gpu/: skipped — {_REASON}")
