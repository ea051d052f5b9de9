"""Which parts of the original's output change from run to run, and so must not be compared.

Running the original twice (or more) shows its volatile fields: timings, addresses, dates, random
seeds taken from the clock. A number that differs between two runs of the original is masked; so is
a whole line whose text differs. Numbers next to time or bandwidth units are masked even when two
runs happened to agree ("0.0 ms" twice), since a faster candidate would legitimately print less.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .alignment import align, paired
from .numbers import same_number, split_lines, tokenize
from .outputs import RunOutput, looks_binary

STDOUT = "stdout"

# Lines compared per stream; more is reported as not compared (see text_compare.py).
MAX_COMPARED_LINES = 1_000_000


@dataclass
class StreamMask:
    """Volatile parts of one text stream, by index in the first original run's lines."""

    numbers: set[tuple[int, int]] = field(default_factory=set)  # (line index, number index)
    lines: set[int] = field(default_factory=set)  # whole lines whose text varies

    def masks_number(self, line_index: int, number_index: int) -> bool:
        return line_index in self.lines or (line_index, number_index) in self.numbers


@dataclass
class VolatileMask:
    runs: int  # runs of the original it was learned from; 1 means only unit words could be used
    streams: dict[str, StreamMask] = field(default_factory=dict)  # "stdout" and text output files

    def stream(self, name: str) -> StreamMask:
        return self.streams.get(name, StreamMask())


def to_lines(text: str) -> list[str]:
    return split_lines(text)[:MAX_COMPARED_LINES]


def _learn(reference: list[str], other: list[str], mask: StreamMask) -> None:
    """Add to mask whatever differs between two runs' lines."""
    ops = align(reference, other)
    for tag, i1, i2, j1, j2 in ops:
        if tag != "equal" and (tag != "replace" or i2 - i1 != j2 - j1):
            mask.lines.update(range(i1, i2))  # lines one run has and the other lacks vary as a whole
    for i, j in paired(ops):
        if reference[i] == other[j]:
            continue
        a, b = tokenize(reference[i]), tokenize(other[j])
        if a.shape != b.shape or len(a.numbers) != len(b.numbers):
            mask.lines.add(i)
            continue
        for k, (x, y) in enumerate(zip(a.numbers, b.numbers, strict=True)):
            if not same_number(x.value, y.value):
                mask.numbers.add((i, k))


def stream_mask(texts: list[str]) -> StreamMask:
    """The mask of one stream (stdout or a text file) from several runs of the original."""
    mask = StreamMask()
    if not texts or any(looks_binary(t) for t in texts):
        return mask
    reference = to_lines(texts[0])
    for text in texts[1:]:
        _learn(reference, to_lines(text), mask)
    return mask


def _decoded(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def volatile_mask(original_runs: list[RunOutput]) -> VolatileMask:
    """Learn the volatile fields from runs of the original; pass the first run to check_outputs.

    One run gives a mask of nothing learned (numbers beside time units are masked regardless);
    the oracle then says that a second run of the original would make the comparison more reliable.
    """
    if not original_runs:
        raise ValueError("volatile_mask needs at least one run of the original program")
    mask = VolatileMask(runs=len(original_runs))
    mask.streams[STDOUT] = stream_mask([run.stdout for run in original_runs])
    for name in original_runs[0].output_files:
        texts = [_decoded(run.output_files.get(name, b"")) for run in original_runs]
        if all(t is not None for t in texts):
            mask.streams[name] = stream_mask([t for t in texts if t is not None])
    return mask
