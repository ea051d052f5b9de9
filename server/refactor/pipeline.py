"""`optimize`: the LASSI-EE loop, from a CUDA/HIP file to a measured, checked, judged diff.

    1. profile the original through the agent (per kernel where the trace works), keeping its runs'
       outputs as the oracle's reference (and its runs on the alternate inputs of wattson.toml);
    2. k independent trials, each: describe the GPU and the code, plan from the measured profile
       (context.py), then for each iteration generate a candidate, extract its code (extract.py),
       check it (static checks, build, two runs against the oracle with the declared output files,
       files left behind, alternate inputs, kernel launches), self-correct with the failing detail up
       to [optimize] max_corrections times, measure it against the original (compare protocol: host
       CPU time is compared there), ask the judge when it saves energy,
       and feed the measurement back for the next iteration (temperature rising, schedule.py);
    3. the best offerable candidate (selection.py) becomes a checked unified diff, every candidate
       is kept on disk and in the history, and a Markdown report is written (wattson.report).

Trials run on threads of their own: their LLM calls and builds overlap, and the agent's GPU lock
serializes their measurements. Cancelling (the event, or ^C in the CLI) stops every step: running
agent jobs are cancelled (no process is left), finished candidates are kept, and the report says
where the job stopped. docs/optimize.md describes the loop for users.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..config import Config, ConfigError
from ..judge import JudgeMaterial, decide, judge_candidate
from ..llm import LlmCancelled, LlmError, LlmProvider, LlmRefusal, make_provider
from ..profilers.run_files import without_file_bytes
from ..project import ProjectError
from ..prompt_render import PromptError, compare_summary
from ..report import OptimizeReport, write_report
from ..runner import AgentClient, AgentError
from ..store import History, content_hash
from ..verify import RunOutput
from . import candidates as cs
from .candidates import Candidate, JobFolder
from .checks import CandidateChecks, Reference, Verification, checks_summary
from .context import PromptBook, start_trial
from .conversation import CodeReply
from .diffs import DiffError, checked_diff
from .metrics import trial_metrics
from .runs import (
    AgentSide,
    Cancelled,
    alternate_runs,
    candidate_program,
    check_budget,
    failure_text,
    original_program,
    reference_budget,
    run_outputs,
    with_run_args,
)
from .schedule import TemperatureSchedule
from .selection import (
    best_candidate,
    best_so_far_text,
    energy_label,
    offerable,
    rank,
    ratio_with_ci,
    trial_outcome,
)

Progress = Callable[[str, float | None], None]
log = logging.getLogger("wattson.optimize")

MAX_PARALLEL_TRIALS = 3
COMPILE_ERROR, RUNTIME_ERROR, FORMAT = "compile error", "runtime error", "format"
_PROFILE_SHARE = 0.1  # of the progress bar: the original's profile; the trials share the rest


@dataclass
class OptimizeRequest:
    source_path: Path
    source_text: str
    program: dict  # ProgramSpec (the open buffer's text in it)
    config: Config
    kernel: str | None = None  # focus on one kernel when set
    k: int | None = None  # independent trials; None -> config.optimize.k
    iterations: int | None = None  # None -> config.optimize.iterations
    trials: int | None = None  # `--trials n`: run n trials and report pass@k / ER@k (k as above)


@dataclass
class OptimizeOutcome:
    status: str  # "improved" | "no-improvement" | "failed" | "cancelled"
    best_source: str | None  # full new text of source_path
    diff: str | None  # unified diff (difflib, parsed and checked with unidiff)
    energy_ratio: dict | None  # Verdict dict from the compare protocol
    label: str  # "Wattson: −12.3 % energy [−14.0, −10.6]" (shown in the refactor preview)
    message: str  # one line for a notification
    report_path: Path | None  # the Markdown report
    job_id: int | None  # History job id
    metrics: dict | None = None  # pass@k / energy-reduction@k, when trials were requested


def optimize(
    request: OptimizeRequest,
    *,
    agent: AgentClient,
    history: History,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    provider: LlmProvider | None = None,
    max_parallel_trials: int = MAX_PARALLEL_TRIALS,
    schedule: TemperatureSchedule | None = None,
) -> OptimizeOutcome:
    """Run the loop; never raises for what a user can hit (the outcome's message says it)."""
    job = _Job(
        request,
        agent=agent,
        history=history,
        progress=progress,
        cancel=cancel,
        provider=provider,
        max_parallel_trials=max_parallel_trials,
        schedule=schedule or TemperatureSchedule(),
    )
    return job.run()


class _Fatal(Exception):
    """Ends the whole job with a message for the user."""


class _Job:
    def __init__(
        self,
        request: OptimizeRequest,
        *,
        agent: AgentClient,
        history: History,
        progress: Progress | None,
        cancel: threading.Event | None,
        provider: LlmProvider | None,
        max_parallel_trials: int,
        schedule: TemperatureSchedule,
    ):
        self.request = request
        self.config = request.config
        self.history = history
        self.progress_cb = progress
        self.cancel = cancel if cancel is not None else threading.Event()
        self.abort = threading.Event()  # a fatal error in one trial stops the others
        self.llm = provider
        self.schedule = schedule
        self.agent = AgentSide(agent, self.config, self.cancel)
        opt = self.config.optimize
        self.k = request.k or opt.k
        self.n_trials = request.trials or self.k
        self.iterations = request.iterations or opt.iterations
        self.max_corrections = opt.max_corrections
        self.parallel = max(1, min(max_parallel_trials, self.n_trials))
        self.started_at = time.time()
        self.lock = threading.Lock()
        self.candidates: list[Candidate] = []
        self.stages: dict[int, str] = {0: "starting"}
        self.units_done = 0
        # Part of the current unit (iteration) each trial has done, from the agent's own progress,
        # so that a job of one trial and one iteration still moves: checks 0-0.2, measuring 0.2-1.
        self.partial: dict[int, float] = {}
        self.last_fraction = 0.0
        self.errors: list[str] = []
        self.notes: list[str] = []
        self.trial_errors: dict[int, str] = {}
        self.fatal: str | None = None
        self.job_id: int | None = None
        self.folder: JobFolder | None = None
        self.original_profile: dict | None = None
        self.device: dict | None = None
        self.host: str | None = None
        self.fake = False
        # Set in _prepare:
        self.program: dict = {}
        self.original: dict = {}
        self.source_file = ""
        self.book: PromptBook | None = None
        self.checks: CandidateChecks | None = None
        self.reference: Reference | None = None
        self.trace_kernels = False

    # --- progress and stages ---------------------------------------------------------------------
    def _fraction(self) -> float:
        total = max(1, self.n_trials * self.iterations)
        done = self.units_done + sum(self.partial.values())
        return min(0.99, _PROFILE_SHARE + (1 - _PROFILE_SHARE) * done / total)

    def _say(self, message: str, fraction: float | None = None) -> None:
        if self.progress_cb is None:
            return
        with self.lock:  # never backwards: a correction round starts its unit's checks again
            self.last_fraction = max(self.last_fraction, self._fraction() if fraction is None else fraction)
            fraction = self.last_fraction
        self.progress_cb(message, fraction)

    def _stage(self, trial: int, text: str) -> None:
        with self.lock:
            self.stages[trial] = text
        prefix = f"trial {trial}/{self.n_trials}: " if trial else ""
        self._say(prefix + text)

    def _relay(self, trial: int, start: float = 0.0, span: float = 0.2) -> Progress:
        """The agent's progress for one step, as part [start, start + span] of the trial's current unit
        (of the original's profile for trial 0)."""
        prefix = f"trial {trial}/{self.n_trials}: " if trial else ""

        def relay(message: str, fraction: float | None) -> None:
            if fraction is not None and trial == 0:
                self._say(prefix + message, _PROFILE_SHARE * min(1.0, max(0.0, fraction)))
                return
            if fraction is not None:
                with self.lock:
                    self.partial[trial] = start + span * min(1.0, max(0.0, fraction))
            self._say(prefix + message)

        return relay

    def _check_stop(self) -> None:
        if self.cancel.is_set():
            raise Cancelled()
        if self.abort.is_set():
            raise _Fatal(self.fatal or "stopped")

    # --- the job -------------------------------------------------------------------------------------
    def run(self) -> OptimizeOutcome:
        cancelled = False
        try:
            self._make_provider()
            self._prepare()
            self._run_trials()
        except (Cancelled, LlmCancelled):
            cancelled = True
        except KeyboardInterrupt:
            self.cancel.set()
            cancelled = True
        except _Fatal as e:
            self.fatal = self.fatal or str(e)
        except LlmError as e:
            self.fatal = f"the language model could not be used: {e}"
        except AgentError as e:
            self.fatal = _agent_message(e)
        except (ConfigError, ProjectError, PromptError) as e:
            self.fatal = str(e)
        if self.cancel.is_set():
            cancelled = True
        return self._finish(cancelled)

    def _make_provider(self) -> None:
        if self.llm is None:
            # Before any GPU work: a missing key is one sentence, not a wasted profile.
            self.llm = make_provider(self.config, cancel=self.cancel)

    def _prepare(self) -> None:
        req = self.request
        self.program = dict(req.program)
        self.source_file = str(self.program.get("source_file") or req.source_path.name)
        self.program["files"] = dict(self.program.get("files") or {})
        self.program["files"][self.source_file] = {"text": req.source_text}
        self.original = original_program(self.program)
        self.job_id = self.history.start_job(
            kind="optimize", source_path=str(req.source_path), source_hash=content_hash(req.source_text)
        )
        self.folder = JobFolder.create(
            self.history.path.parent, self.job_id, str(self.program.get("name") or "program")
        )
        self._stage(0, "contacting the GPU agent")
        info = self.agent.describe()
        self.host = info.get("host")
        self.fake = bool(info.get("fake"))
        devices = info.get("devices") or []
        if not devices:
            raise _Fatal(
                f"no GPU on {self.host or 'the agent host'}: optimize needs a GPU to measure on; "
                'use --remote "ssh gpu01" (`wattson doctor` says what the host can measure)'
            )
        self._stage(0, "profiling the original")
        try:
            profile = self.agent.profile(
                self.original,
                reference_budget(self.config),
                kernels=True,
                initcheck=self.config.verify.initcheck,
                progress=self._relay(0),
            )
        except AgentError as e:
            raise _Fatal(_original_failed(e)) from e
        self.reference = Reference.from_profile(profile)
        profile = without_file_bytes(profile)  # kept for prompts, history and report: sizes, not bytes
        self.original_profile = profile
        self.device = profile.get("device") or devices[0]
        self.history.add_profile(
            source_path=str(req.source_path),
            source_hash=content_hash(req.source_text),
            result=profile,
            kernels=profile.get("kernels"),
        )
        self.trace_kernels = profile.get("kernels") is not None
        if self.config.verify.initcheck and self.reference.initcheck is None:
            why = [w for w in profile.get("warnings") or [] if "initcheck" in w]
            self.notes.append(
                "compute-sanitizer initcheck did not run: " + ("; ".join(why) or "the agent returned no report")
            )
        for args, run in alternate_runs(req.source_path, self.config):
            self._stage(0, f"running the original with the alternate arguments `{args}`")
            try:
                alt = self.agent.profile(
                    with_run_args(self.original, run), check_budget(self.config), progress=self._relay(0)
                )
            except AgentError as e:
                self.notes.append(
                    f"alternate input `{args}` left out: the original fails on it ({e.message})"
                )
                continue
            self.reference.add_alternate(args, run, alt)
        self.book = PromptBook(self.program, profile, self.device, req.kernel)
        self.checks = CandidateChecks(self.config, self.reference, req.source_text, self.program.get("build"))
        assert self.folder is not None
        self.folder.save_original(self.source_file, req.source_text, profile)
        with self.lock:
            self.stages.pop(0, None)
        self._say("the original is measured", _PROFILE_SHARE)

    def _run_trials(self) -> None:
        if self.parallel == 1:
            for t in range(1, self.n_trials + 1):
                self._trial_guarded(t)
        else:
            with ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="wattson-trial") as pool:
                list(pool.map(self._trial_guarded, range(1, self.n_trials + 1)))
        self._check_stop()

    def _trial_guarded(self, trial: int) -> None:
        """One trial; errors that end only this trial are recorded, job-wide ones stop the others."""
        try:
            self._check_stop()
            self._trial(trial)
        except (Cancelled, LlmCancelled):
            self.cancel.set()
        except _Fatal:
            pass  # another trial's fatal error; already recorded
        except LlmRefusal as e:
            self.trial_errors[trial] = str(e)
        except LlmError as e:
            self._set_fatal(f"the language model could not be used: {e}")
        except AgentError as e:
            self._set_fatal(_agent_message(e))
        except PromptError as e:
            self._set_fatal(str(e))
        except Exception as e:  # noqa: BLE001 - a bug in one trial must not leave the others running
            log.exception("optimize trial %d failed", trial)
            self._set_fatal(
                f"internal error in the optimize loop ({type(e).__name__}: {e}); the log has the "
                "traceback: please report it"
            )
        else:
            with self.lock:
                self.stages.pop(trial, None)  # finished: no longer a place where the job can stop

    def _set_fatal(self, message: str) -> None:
        with self.lock:
            if self.fatal is None:
                self.fatal = message
        self.abort.set()

    # --- one trial ---------------------------------------------------------------------------------
    def _trial(self, t: int) -> None:
        assert self.llm is not None and self.book is not None
        self._stage(t, "describing the code and planning")
        start = start_trial(self.llm, self.book, temperature=self.schedule.context)
        conversation = start.conversation
        prompt = self.book.generate(start.plan)
        best: Candidate | None = None
        for it in range(1, self.iterations + 1):
            temperature = self.schedule.for_iteration(it, self.iterations)
            attempt = 0
            while True:
                self._check_stop()
                what = f"correction {attempt}" if attempt else "a candidate"
                self._stage(t, f"iteration {it}/{self.iterations}: asking the model for {what}")
                reply = conversation.ask_for_code(
                    prompt, temperature=temperature, source_file=self.source_file
                )
                candidate = Candidate(
                    trial=t,
                    iteration=it,
                    attempt=attempt,
                    temperature=temperature,
                    source_text=None,
                    reply_text=reply.text,
                )
                try:
                    self._evaluate(candidate, reply)
                finally:
                    if candidate.status:
                        self._record(candidate)
                if candidate.failure_kind is None:
                    break
                if attempt >= self.max_corrections:
                    self._units(t, self.iterations - it + 1)
                    return  # no passing version within the cap: the trial ends here
                attempt += 1
                prompt = self._correction(candidate, attempt)
            self._units(t, 1)
            if offerable(candidate) and (best is None or rank(candidate) < rank(best)):
                best = candidate
            if it < self.iterations:
                assert candidate.compare is not None
                kernels_after = (candidate.check_profile or {}).get("kernels")
                prompt = self.book.feedback(
                    candidate.compare,
                    kernels_after,
                    iteration=it,
                    max_iterations=self.iterations,
                    best_so_far=best_so_far_text(best),
                )

    def _units(self, trial: int, n: int) -> None:
        with self.lock:
            self.units_done += n
            self.partial[trial] = 0.0

    def _correction(self, candidate: Candidate, attempt: int) -> str:
        assert self.book is not None and candidate.failure_kind is not None
        detail = candidate.failure_detail or ""
        if candidate.failure_kind == FORMAT:
            return self.book.format_problem(detail, attempt, self.max_corrections)
        return self.book.correct(candidate.failure_kind, detail, attempt, self.max_corrections)

    def _record(self, candidate: Candidate) -> None:
        assert self.folder is not None and self.job_id is not None
        self.folder.save_candidate(candidate, self.source_file)
        verdict = candidate.energy_verdict or {}
        candidate.history_id = self.history.add_candidate(
            self.job_id,
            trial=candidate.trial,
            iteration=candidate.iteration,
            status=candidate.status,
            source_text=candidate.source_text or "",
            energy_ratio=verdict.get("ratio"),
            ci_low=verdict.get("ci_low"),
            ci_high=verdict.get("ci_high"),
            detail=candidate.summary(),
        )
        with self.lock:
            self.candidates.append(candidate)

    # --- one candidate -------------------------------------------------------------------------------
    def _evaluate(self, c: Candidate, reply: CodeReply) -> None:
        """Sets c.status; c.failure_kind stays None only for a measured, passing candidate."""
        assert self.checks is not None and self.reference is not None
        c.changes, c.notes = reply.extracted.changes, list(reply.extracted.notes)
        if reply.problem:
            c.fail(cs.FAILED_FORMAT, FORMAT, reply.problem)
            return
        text = reply.extracted.files[self.source_file]
        c.source_text = text
        if text.strip() == self.request.source_text.strip():
            c.fail(
                cs.FAILED_FORMAT,
                FORMAT,
                f"Your `{self.source_file}` is identical to the original. Write a "
                "version that implements the plan.",
            )
            return
        verification = Verification()
        verification.add(self.checks.static(text))
        if verification.failed:
            self._failed_checks(c, verification)
            return
        program = candidate_program(self.original, self.source_file, text, c.label)
        self._stage(c.trial, f"iteration {c.iteration}: building and checking {c.title}")
        try:
            check = self.agent.profile(
                program,
                check_budget(self.config),
                kernels=self.trace_kernels,
                initcheck=self.reference.initcheck is not None,
                progress=self._relay(c.trial),
            )
        except AgentError as e:
            self._agent_failure(c, verification, e)
            return
        c.check_profile = without_file_bytes(check)
        verification.add(self.checks.outputs(check))
        verification.add(self.checks.created(check))
        if not verification.failed and self.reference.alternates:
            runs: list[tuple[str, dict]] = []
            for args, run, _ in self.reference.alternates:
                self._stage(c.trial, f"iteration {c.iteration}: checking {c.title} with arguments `{args}`")
                try:
                    alt = self.agent.profile(
                        with_run_args(program, run),
                        check_budget(self.config, runs=1),
                        progress=self._relay(c.trial),
                    )
                except AgentError as e:
                    self._agent_failure(c, verification, e, f"with the arguments `{args}`")
                    return
                runs.append((args, alt))
            verification.add(self.checks.alternates(runs))
        if not verification.failed:
            verification.add(self.checks.kernels(check.get("kernels")))
            verification.add(self.checks.initcheck(check, self.source_file))
        if verification.failed:
            self._failed_checks(c, verification)
            return
        self._stage(c.trial, f"iteration {c.iteration}: measuring {c.title} against the original")
        try:
            compare = self.agent.compare(self.original, program, progress=self._relay(c.trial, 0.2, 0.8))
        except AgentError as e:
            self._agent_failure(c, verification, e, "while it was measured")
            return
        c.compare = without_file_bytes(compare)
        verification.add(self.checks.measured(compare))
        c.findings = verification.findings
        if verification.failed:
            self._failed_checks(c, verification)
            return
        oracle = verification.result()
        if not c.saves_energy:
            c.decision = decide(oracle, None)
            c.status = cs.NOT_BETTER
            return
        self._stage(c.trial, f"iteration {c.iteration}: the judge reviews {c.title}")
        assert self.llm is not None
        c.verdict = judge_candidate(self.llm, self._judge_material(c, text))
        c.decision = decide(oracle, c.verdict)
        if c.verdict.rejected:
            c.fail(cs.JUDGE_REJECTED, "suspected shortcut", c.verdict.feedback())
            return
        c.status = cs.ACCEPTED

    def _failed_checks(self, c: Candidate, verification: Verification) -> None:
        c.findings = verification.findings
        kind = verification.failure_kind()
        status = cs.SHORTCUT if kind == "suspected shortcut" else cs.WRONG_OUTPUT
        c.fail(status, kind, verification.feedback())

    def _agent_failure(
        self, c: Candidate, verification: Verification, error: AgentError, where: str = ""
    ) -> None:
        """A build or run failure of the candidate goes back to the model; anything else ends the job."""
        c.findings = verification.findings
        suffix = f" {where}" if where else ""
        if error.kind == "build_failed":
            c.fail(cs.FAILED_BUILD, COMPILE_ERROR, failure_text(error))
        elif error.kind == "program_failed":
            c.fail(cs.FAILED_RUN, RUNTIME_ERROR, f"The program failed{suffix}.\n\n{failure_text(error)}")
        else:
            raise error

    def _judge_material(self, c: Candidate, text: str) -> JudgeMaterial:
        assert self.book is not None and self.reference is not None and c.compare is not None
        diff = checked_diff(self.request.source_text, text, self.source_file)
        candidate_runs = run_outputs(c.check_profile or {})
        return JudgeMaterial(
            source_file=self.source_file,
            language=self.book.language,
            code_tag=self.book.code_tag,
            original_code=self.request.source_text,
            candidate_code=text,
            diff=diff,
            original_output=_output_text(self.reference.runs[0]),
            candidate_output=_output_text(candidate_runs[0]) if candidate_runs else "(no output recorded)",
            findings=[f for f in c.findings if f.severity != "fail"],
            checks_summary=checks_summary(
                self.config, len(self.reference.alternates), self.trace_kernels, self.reference.initcheck is not None
            ),
            measurements=compare_summary(c.compare),
        )

    # --- the outcome ---------------------------------------------------------------------------------
    def _finish(self, cancelled: bool) -> OptimizeOutcome:
        with self.lock:
            candidates = sorted(self.candidates, key=lambda c: (c.trial, c.iteration, c.attempt))
            stages = dict(self.stages)
        best = best_candidate(candidates)
        diff: str | None = None
        if best is not None and best.source_text is not None:
            try:
                diff = checked_diff(self.request.source_text, best.source_text, self.source_file)
            except DiffError as e:
                self.errors.append(f"the best candidate was not offered: {e}")
                best = None
        metrics = None
        if self.request.trials and not cancelled:
            outcomes = [
                trial_outcome([c for c in candidates if c.trial == t]) for t in range(1, self.n_trials + 1)
            ]
            metrics = trial_metrics(outcomes, ks=[1, self.k, self.n_trials])
        status, message, label = self._verdict(best, candidates, cancelled)
        stopped_at = None
        if cancelled:
            running = [f"trial {t}: {s}" if t else s for t, s in sorted(stages.items())]
            stopped_at = "; ".join(running) or "finishing"
        report_path = self._write_report(status, message, best, diff, candidates, metrics, stopped_at)
        if self.job_id is not None:
            job_status = (
                "cancelled"
                if cancelled
                else {"improved": "done", "no-improvement": "done"}.get(status, status)
            )
            summary = {
                "status": status,
                "message": message,
                "best": best.summary() if best else None,
                "candidates": len(candidates),
                "report": str(report_path) if report_path else None,
                "tokens": self.llm.account.to_dict() if self.llm is not None else None,
                "metrics": metrics.to_dict() if metrics else None,
                "stopped_at": stopped_at,
            }
            self.history.finish_job(self.job_id, status=job_status, summary=summary)
        if report_path is not None:
            message += f" Report: {report_path}"
        return OptimizeOutcome(
            status=status,
            best_source=best.source_text if best else None,
            diff=diff,
            energy_ratio=best.energy_verdict if best else None,
            label=label,
            message=message,
            report_path=report_path,
            job_id=self.job_id,
            metrics=metrics.to_dict() if metrics else None,
        )

    def _verdict(
        self, best: Candidate | None, candidates: list[Candidate], cancelled: bool
    ) -> tuple[str, str, str]:
        name = self.request.source_path.name
        if best is not None:
            assert best.energy_verdict is not None
            change = ratio_with_ci(best.energy_verdict)
            review = " (needs review)" if best.needs_review else ""
            label = energy_label(best.energy_verdict) + review
            message = (
                f"{name}: the best of {len(candidates)} candidates uses {change} energy (95 % CI){review}"
                + ("; cancelled before the end" if cancelled else "")
                + "."
            )
            return "improved", message, label
        if cancelled:
            return (
                "cancelled",
                f"{name}: cancelled; no process left running, {len(candidates)} candidate(s) kept.",
                "Wattson: cancelled",
            )
        if self.fatal is not None:
            return "failed", _sentence(self.fatal), "Wattson: failed"
        passing = [c for c in candidates if c.passed]
        if passing:
            ratios = [c.energy_ratio for c in passing if c.energy_ratio is not None]
            closest = (
                f"; the closest used {ratio_with_ci(min(passing, key=rank).energy_verdict or {})} energy"
                if ratios
                else ""
            )
            return (
                "no-improvement",
                f"{name}: {len(passing)} correct candidate(s), none used measurably less "
                f"energy than the original{closest}.",
                "Wattson: no improvement",
            )
        if self.trial_errors and not candidates:
            return "failed", _sentence(next(iter(self.trial_errors.values()))), "Wattson: failed"
        return (
            "failed",
            f"{name}: no candidate passed the checks ({len(candidates)} tried, "
            f"{self.max_corrections} correction(s) each); see the report for what failed.",
            "Wattson: failed",
        )

    def _write_report(
        self,
        status: str,
        message: str,
        best: Candidate | None,
        diff: str | None,
        candidates: list[Candidate],
        metrics,
        stopped_at: str | None,
    ) -> Path | None:
        if self.folder is None:
            return None
        llm_label = f"{self.llm.name} ({self.llm.model})" if self.llm is not None else ""
        errors = list(self.errors) + ([self.fatal] if self.fatal else [])
        errors += [f"trial {t}: {e}" for t, e in sorted(self.trial_errors.items())]
        report = OptimizeReport(
            source_path=self.request.source_path,
            source_file=self.source_file,
            status=status,
            message=message,
            started_at=self.started_at,
            finished_at=time.time(),
            job_id=self.job_id,
            folder=self.folder.root,
            kernel=self.request.kernel,
            device=self.device,
            host=self.host,
            fake_sensors=self.fake,
            original_profile=self.original_profile,
            best=best,
            diff=diff,
            candidates=candidates,
            trials=self.n_trials,
            iterations=self.iterations,
            max_corrections=self.max_corrections,
            metrics=metrics,
            account=self.llm.account if self.llm is not None else None,
            llm_label=llm_label,
            schedule_text=self.schedule.describe(self.iterations),
            supports_temperature=bool(getattr(self.llm, "supports_temperature", True)),
            stopped_at=stopped_at,
            errors=errors,
            notes=self.notes,
        )
        if diff:
            self.folder.write_text("best.diff", diff)
        return write_report(report, self.folder.root)


# --- helpers ---------------------------------------------------------------------------------------


def _output_text(run: RunOutput) -> str:
    text = run.stdout
    if run.stderr.strip():
        text += "\n[stderr]\n" + run.stderr
    return text


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _agent_message(error: AgentError) -> str:
    return error.message


def _original_failed(error: AgentError) -> str:
    """The original must build and run cleanly before anything can be compared with it."""
    if error.kind == "build_failed":
        return f"the original does not build, so there is nothing to optimize yet: {failure_text(error)}"
    if error.kind == "program_failed":
        return f"the original fails when it runs; it must run cleanly first: {failure_text(error)}"
    return _agent_message(error)
