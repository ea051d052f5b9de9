"""Which documents Wattson serves, and where their text and path come from."""

from __future__ import annotations

from pathlib import Path

from pygls.uris import to_fs_path

CUDA_SUFFIXES = (".cu", ".cuh", ".hip")
CUDA_LANGUAGE_IDS = ("cuda-cpp", "cuda", "hip")
MAX_DOCUMENT_CHARS = 2_000_000  # larger files are refused with a message, not parsed


def is_cuda_document(uri: str, language_id: str | None = None) -> bool:
    """`.cu/.cuh/.hip`, or a CUDA/HIP language id; `cpp`/`c` only with one of those suffixes."""
    path = to_fs_path(uri) or uri
    if path.lower().endswith(CUDA_SUFFIXES):
        return True
    return language_id in CUDA_LANGUAGE_IDS


def document_path(uri: str) -> Path | None:
    path = to_fs_path(uri)
    return Path(path) if path else None


def looks_binary(text: str) -> bool:
    return "\x00" in text[:8192]
