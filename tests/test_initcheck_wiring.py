"""compute-sanitizer initcheck as the optimize loop uses it: the agent's `profile` option, the
candidate check that compares the original's report with the candidate's, and the settings.

The reports here are parsed from texts in the tool's documented format (see tests/test_sanitizer.py);
a real run needs a GPU and is in tests/gpu/test_initcheck_gpu.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from agent_fixture import agent_env
from test_sanitizer import CLEAN_LOG, UNINIT_LOG
from wattson.config import ConfigError, load_config
from wattson.profilers.sanitizer import SanitizerUnavailable, locate_compute_sanitizer, parse_initcheck
from wattson.refactor.checks import SHORTCUT, CandidateChecks, Reference, Verification, checks_summary
from wattson.runner import AgentClient
from wattson.verify import RunOutput, volatile_mask


def _reference(initcheck: dict | None) -> Reference:
    runs = [RunOutput(exit_code=0, stdout="sum 1.0\nPASS\n", stderr="")] * 2
    return Reference(runs=runs, mask=volatile_mask(runs), durations_s=[1.0, 1.0], kernels=None,
                     initcheck=initcheck)


def _checks(tmp_path: Path, initcheck: dict | None) -> CandidateChecks:
    (tmp_path / "wattson.toml").write_text("[verify]\ninitcheck = true\n")
    return CandidateChecks(load_config(tmp_path / "wattson.toml"), _reference(initcheck), "", None)


def test_new_uninitialised_reads_fail_as_a_shortcut_with_the_kernel_named(tmp_path):
    checks = _checks(tmp_path, parse_initcheck(CLEAN_LOG).to_dict())
    findings = checks.initcheck({"initcheck": parse_initcheck(UNINIT_LOG).to_dict()}, "stencil.cu")
    verification = Verification()
    verification.add(findings)
    assert verification.failed and verification.failure_kind() == SHORTCUT
    [failure] = verification.failures
    assert failure.check == "uninitialised-read" and "vectorAdd" in failure.message


def test_clean_candidate_passes_and_a_missing_report_is_a_review(tmp_path):
    checks = _checks(tmp_path, parse_initcheck(CLEAN_LOG).to_dict())
    assert checks.initcheck({"initcheck": parse_initcheck(CLEAN_LOG).to_dict()}, "x.cu") == []
    [review] = checks.initcheck({"initcheck": None, "warnings": ["initcheck unavailable: not installed"]}, "x.cu")
    assert review.severity == "review" and "not installed" in review.message


def test_not_asked_when_the_original_was_not_checked(tmp_path):
    assert _checks(tmp_path, None).initcheck({"initcheck": parse_initcheck(UNINIT_LOG).to_dict()}, "x.cu") == []


def test_summary_names_initcheck_only_when_it_ran(tmp_path):
    config = load_config(None)
    assert "initcheck" in checks_summary(config, 0, False, True)
    assert "initcheck" not in checks_summary(config, 0, False, False)


def test_settings_are_checked(tmp_path):
    toml = tmp_path / "wattson.toml"
    toml.write_text('[verify]\ninitcheck = "yes"\n')
    with pytest.raises(ConfigError, match="initcheck"):
        load_config(toml)
    toml.write_text("[verify]\ninitcheck = true\ninitcheck_timeout_s = 120\n")
    v = load_config(toml).verify
    assert v.initcheck is True and v.initcheck_timeout_s == 120


def test_agent_says_why_when_compute_sanitizer_is_missing(tmp_path, fake_gpu):
    try:
        locate_compute_sanitizer()
        pytest.skip("compute-sanitizer is installed here: the agent would run it")
    except SanitizerUnavailable:
        pass
    spec_path, _ = fake_gpu
    program = {"name": "quiet", "files": {}, "build": None, "run": "echo PASS", "workdir": "."}
    budget = {"warmup_runs": 0, "min_trials": 1, "max_trials": 1, "cooldown_cap_s": 0}
    with AgentClient.start(None, env=agent_env(spec_path, tmp_path)) as agent:
        result = agent.call("profile", {"program": program, "budget": budget, "initcheck": {"timeout_s": 30}},
                            timeout_s=60)
    assert result["initcheck"] is None
    assert any(w.startswith("initcheck unavailable:") and "compute-sanitizer" in w for w in result["warnings"])
