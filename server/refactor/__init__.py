"""The optimize loop (LASSI-EE): from a CUDA/HIP file to a measured, checked, judged diff.

pipeline.py runs it (`optimize(OptimizeRequest, ...) -> OptimizeOutcome`); context.py starts a
trial (GPU and code described, plan); conversation.py talks to the model; extract.py reads code out
of replies; runs.py drives the GPU agent; checks.py applies wattson.verify to the runs;
candidates.py keeps every candidate; selection.py picks the best; diffs.py writes the checked diff;
schedule.py sets the temperatures; metrics.py computes pass@k and energy-reduction@k.
docs/optimize.md describes it for users.
"""
