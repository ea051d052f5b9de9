"""Runs the verifier on every corpus variant and says how many hacks it rejects and legit variants it accepts.

For each variant: the static checks (original source vs variant source, with their build commands),
the oracle on the recorded default-input output (volatile fields learned from the original's two
recorded runs), and the oracle on every alternate input. A variant is rejected when any finding is
"fail" or "review". A hack counts as caught only if every check the manifest expects fired.

    /work/venv/bin/python tests/corpus/evaluate.py                 print the table
    /work/venv/bin/python tests/corpus/evaluate.py --write-docs    also refresh docs/verification.md
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from wattson.verify import (
    Finding,
    InputRuns,
    RunOutput,
    check_alternate_inputs,
    check_candidate,
    check_outputs,
    is_blocking,
    volatile_mask,
)

CORPUS = Path(__file__).resolve().parent
REPO = CORPUS.parents[1]
DOCS = REPO / "docs" / "verification.md"
BEGIN, END = "<!-- corpus-results:begin -->", "<!-- corpus-results:end -->"


@dataclass
class Variant:
    program: str
    name: str
    label: str  # "legit" | "hack"
    what: str
    hack_class: str = ""
    expected: list[str] = field(default_factory=list)
    nvcc_flags: list[str] = field(default_factory=list)
    run_on_gpu: bool = True

    @property
    def source(self) -> Path:
        return CORPUS / self.program / f"{self.name}.cu"


@dataclass
class Verdict:
    variant: Variant
    static: list[Finding]
    oracle: list[Finding]

    @property
    def findings(self) -> list[Finding]:
        return self.static + self.oracle

    @property
    def rejected(self) -> bool:
        return any(is_blocking(f) for f in self.findings)

    @property
    def rejected_by_output_alone(self) -> bool:
        return any(is_blocking(f) for f in self.oracle)

    @property
    def caught_by(self) -> list[str]:
        return sorted({f.check for f in self.findings if is_blocking(f)})

    @property
    def missing(self) -> list[str]:
        return [check for check in self.variant.expected if check not in self.caught_by]

    @property
    def correct(self) -> bool:
        if self.variant.label == "legit":
            return not self.rejected
        return self.rejected and not self.missing


def load_manifest() -> dict:
    return json.loads((CORPUS / "manifest.json").read_text())


def variants(manifest: dict | None = None) -> list[Variant]:
    manifest = manifest or load_manifest()
    return [
        Variant(
            program=v["program"],
            name=v["name"],
            label=v["label"],
            what=v["what"],
            hack_class=v.get("class", ""),
            expected=list(v.get("expected", [])),
            nvcc_flags=list(v.get("nvcc_flags", [])),
            run_on_gpu=bool(v.get("run_on_gpu", True)),
        )
        for v in manifest["variants"]
    ]


def build_command(manifest: dict, source: Path, output: Path, flags: list[str] = ()) -> list[str]:  # type: ignore[assignment]
    return ["nvcc", "-O3", f"-arch={manifest['arch']}", *flags, "-o", str(output), str(source)]


def recorded_runs(program: str, name: str) -> dict[str, list[RunOutput]]:
    data = json.loads((CORPUS / program / "outputs" / f"{name}.json").read_text())
    return {args: [RunOutput.from_dict(r) for r in runs] for args, runs in data["runs"].items()}


def judge(variant: Variant, manifest: dict) -> Verdict:
    spec = manifest["programs"][variant.program]
    original_source = CORPUS / spec["source"]
    original_build = " ".join(build_command(manifest, original_source, Path(variant.program)))
    candidate_build = " ".join(
        build_command(manifest, variant.source, Path(variant.program), variant.nvcc_flags)
    )
    static = check_candidate(
        original_source.read_text(),
        variant.source.read_text(),
        original_build=original_build,
        candidate_build=candidate_build,
    )
    originals = recorded_runs(variant.program, "original")
    candidate = recorded_runs(variant.program, variant.name)
    default = " ".join(spec.get("args", []))
    file_modes = spec.get("file_modes", {})
    result = check_outputs(
        originals[default][0], candidate[default][0], volatile_mask(originals[default]), file_modes=file_modes
    )
    alternates = [
        InputRuns(args=" ".join(a), original_runs=originals[" ".join(a)], candidate=candidate[" ".join(a)][0])
        for a in spec.get("alternate_args", [])
    ]
    oracle = result.findings + check_alternate_inputs(alternates, file_modes=file_modes)
    return Verdict(variant, static, oracle)


def evaluate() -> list[Verdict]:
    manifest = load_manifest()
    return [judge(v, manifest) for v in variants(manifest)]


def summary(verdicts: list[Verdict]) -> dict[str, int]:
    hacks = [v for v in verdicts if v.variant.label == "hack"]
    legit = [v for v in verdicts if v.variant.label == "legit"]
    return {
        "hacks": len(hacks),
        "hacks_rejected": sum(v.rejected for v in hacks),
        "hacks_caught_as_expected": sum(v.correct for v in hacks),
        "hacks_rejected_by_output_alone": sum(v.rejected_by_output_alone for v in hacks),
        "legit": len(legit),
        "legit_accepted": sum(not v.rejected for v in legit),
    }


def markdown(verdicts: list[Verdict]) -> str:
    s = summary(verdicts)
    lines = [
        f"- Hacks rejected: **{s['hacks_rejected']}/{s['hacks']}** "
        f"(by every check the manifest expects: {s['hacks_caught_as_expected']}/{s['hacks']}).",
        f"- Legitimate variants accepted: **{s['legit_accepted']}/{s['legit']}**.",
        f"- Hacks that output comparison alone (exit code, markers, stdout, files, alternate inputs) "
        f"rejects: {s['hacks_rejected_by_output_alone']}/{s['hacks']}; the static checks catch the rest.",
        "",
        "| program | variant | label | what it does | rejected by |",
        "|---|---|---|---|---|",
    ]
    for v in verdicts:
        caught = ", ".join(v.caught_by) or "accepted"
        if v.missing:
            caught += f" (MISSED expected: {', '.join(v.missing)})"
        lines.append(
            f"| {v.variant.program} | {v.variant.name} | {v.variant.label} | {v.variant.what} | {caught} |"
        )
    return "\n".join(lines)


def docs_block(verdicts: list[Verdict]) -> str:
    return f"{BEGIN}\n{markdown(verdicts)}\n{END}"


def write_docs(verdicts: list[Verdict]) -> None:
    text = DOCS.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    DOCS.write_text(text[:start] + docs_block(verdicts) + text[end:])


def main(argv: list[str]) -> int:
    verdicts = evaluate()
    print(markdown(verdicts))
    if "--write-docs" in argv:
        write_docs(verdicts)
        print(f"\nupdated {DOCS.relative_to(REPO)}")
    return 0 if all(v.correct for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
