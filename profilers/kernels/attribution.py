"""Per-kernel energy: the kernel timeline regressed against the power sensor's windows.

The H100's power reading updates every ~100 ms, so one short launch cannot be measured alone. We
aggregate by kernel name over the whole run instead. For each sensor window i, s_ik is the share of
the window that kernel k was charged (overlapping kernels split the overlap), and g_i the share in
which no kernel ran. The model is

    power_i = Q_gap · g_i + Σ_k Q_k · s_ik

with Q_k the board power while k runs and Q_gap the power between kernels, fitted by non-negative
least squares, each window weighted by its length. A kernel's energy is Q_k × its charged time.
(Written with powers per state rather than "idle + Σ P_k s_ik", the model stays identifiable when
the GPU is never idle during the run.) The sensor's lag behind the sampler is chosen by the best
fit among −40–200 ms, the windows across the first kernel's start included. Uncertainty: a block
bootstrap over windows (1 s blocks), 95 % percentile intervals.

What it will not do is invent a number. A kernel is "unattributable" when
- its share moves in step with another kernel's (or with the gaps) in every window, so no window
  tells them apart: they are reported together as a group instead (variance inflation > 100);
- its time is too small or too evenly spread to fit on its own: it is folded into the others;
- its energy's confidence interval is wider than the estimate itself;
- the run has too few sensor windows, or there is no power timeline.
docs/per-kernel-energy.md explains the method and its limits.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from .nnls import SingularMatrix, invert, nnls_gram, solve_linear
from .timeline import ChargedTime, PowerWindow, integrate_w, power_windows, sensor_period_s, sensor_updates
from .trace import KernelRecord

GAP = "(GPU idle between kernels)"
# Candidate sensor lags. Negative ones fit a reading that samples the middle of its period rather
# than averaging the period before it.
_COARSE_LAGS_S = [i * 0.02 for i in range(-2, 11)]


@dataclass
class AttributionSettings:
    sensor_lag_s: float | None = None  # None: pick the best fit in -40..200 ms
    bootstrap_replicates: int = 200
    block_s: float = 1.0  # bootstrap block length
    max_vif: float = 100.0  # above this a column is inseparable from the others
    fold_share: float = 0.05  # inseparable columns below this share of fitted time are folded
    max_relative_ci: float = 1.0  # CI width / estimate above this: unattributable
    min_windows: int = 10
    min_busy_coverage: float = 0.9  # of the busy window, for its energy from the timeline
    seed: int = 0


@dataclass
class KernelEnergy:
    """One kernel name over the whole run (memcpy/memset appear as bracketed pseudo-kernels)."""

    name: str
    launches: int
    gpu_time_s: float  # sum of launch durations
    time_share: float  # charged time / GPU busy time
    energy_j: float | None
    energy_ci_j: tuple[float, float] | None
    energy_share: float | None  # of the busy window's energy
    avg_power_w: float | None  # board power while it runs
    attributable: bool
    reason: str = ""
    kind: str = "kernel"
    charged_time_s: float = 0.0  # gpu_time_s with overlaps split between the kernels running
    energy_share_ci: tuple[float, float] | None = None
    group: str = ""  # the inseparable group it belongs to, if any
    symbol: str = ""  # CUPTI's name (mangled)
    source: str | None = None  # "path:line" of its __global__ definition

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> KernelEnergy:
        d = dict(d)
        for key in ("energy_ci_j", "energy_share_ci"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**d)


@dataclass
class KernelGroupEnergy:
    """Kernels (and possibly the idle gaps) that the sensor cannot separate, reported together."""

    name: str
    members: list[str]
    charged_time_s: float
    energy_j: float
    energy_ci_j: tuple[float, float]
    avg_power_w: float

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> KernelGroupEnergy:
        d = dict(d)
        d["energy_ci_j"] = tuple(d["energy_ci_j"])
        return cls(**d)


@dataclass
class KernelReport:
    kernels: list[KernelEnergy]
    busy_window_energy_j: float | None  # first kernel start to last kernel end, from the timeline
    busy_window_s: float
    method_notes: list[str] = field(default_factory=list)
    busy_time_s: float = 0.0  # time at least one kernel ran
    gap_energy_j: float | None = None  # the busy window's idle gaps
    gap_power_w: float | None = None
    groups: list[KernelGroupEnergy] = field(default_factory=list)
    windows: int = 0
    sensor_lag_s: float | None = None
    sensor_period_s: float | None = None
    fit_rms_w: float | None = None
    model_energy_j: float | None = None  # the fit's own total over the busy window, as a check
    device: int | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kernels"] = [k.to_dict() for k in self.kernels]
        d["groups"] = [g.to_dict() for g in self.groups]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> KernelReport:
        d = dict(d)
        d["kernels"] = [KernelEnergy.from_dict(k) for k in d.get("kernels", [])]
        d["groups"] = [KernelGroupEnergy.from_dict(g) for g in d.get("groups", [])]
        return cls(**d)


# --- the design: one row per sensor window, one column per kernel (or group) and the gaps -----------


@dataclass
class _Column:
    name: str
    members: list[str]  # kernel names (GAP for the gaps)
    total_s: float  # charged time over the whole busy window


@dataclass
class _Design:
    rows: list[dict[int, float]]  # sparse shares per window
    y_w: list[float]
    weights: list[float]
    fitted_share: list[float]  # of each window, before folded time was spread over the rest

    def spread_factor(self, j: int) -> float:
        """How much folded time column j took on: (its own + its spread share) / its own, over the windows."""
        own = sum(w * row.get(j, 0.0) * f for row, w, f in zip(self.rows, self.weights, self.fitted_share,
                                                                  strict=True))
        spread = sum(w * row.get(j, 0.0) for row, w in zip(self.rows, self.weights, strict=True))
        return spread / own if own > 0 else 1.0

    def normal(self, n: int, indices: range | None = None) -> _Normal:
        """The weighted normal equations of these windows (all by default)."""
        g = [0.0] * (n * n)  # row-major n x n
        b = [0.0] * n
        yy = weight = 0.0
        for i in indices if indices is not None else range(len(self.rows)):
            row, w, y = self.rows[i], self.weights[i], self.y_w[i]
            items = list(row.items())
            for a, xa in items:
                b[a] += w * xa * y
                base, wxa = a * n, w * xa
                for c, xc in items:
                    g[base + c] += wxa * xc
            yy += w * y * y
            weight += w
        return _Normal(n, g, b, yy, weight)


@dataclass
class _Normal:
    """XᵀWX (flat), XᵀWy, yᵀWy and ΣW of some windows; those of a union are the sums."""

    n: int
    g: list[float]
    b: list[float]
    yy: float
    weight: float

    @staticmethod
    def total(parts: list[_Normal]) -> _Normal:
        return _Normal(parts[0].n, [sum(v) for v in zip(*(p.g for p in parts), strict=True)],
                       [sum(v) for v in zip(*(p.b for p in parts), strict=True)],
                       sum(p.yy for p in parts), sum(p.weight for p in parts))

    def solve(self, like: list[float] | None = None) -> tuple[list[float], float]:
        """(non-negative powers, weighted residual sum of squares); `like`: a similar solution."""
        n, g = self.n, self.g
        square = [g[i * n : (i + 1) * n] for i in range(n)]
        q = nnls_gram(square, self.b, start=[i for i, v in enumerate(like) if v > 0] if like else None)
        rss = self.yy - 2 * sum(qi * bi for qi, bi in zip(q, self.b, strict=True)) + sum(
            q[i] * g[i * n + j] * q[j] for i in range(n) for j in range(n))
        return q, max(rss, 0.0)


def _design(windows: list[PowerWindow], charged: ChargedTime, columns: list[_Column],
            before_s: float | None = None) -> _Design:
    """`before_s`: also a column (index len(columns)) for the time before it, the pre-run state."""
    rows, ys, ws, fitted = [], [], [], []
    for w in windows:
        length = w.length_s
        if length <= 0:
            continue
        busy = {name: charged.between_s(name, w.start_s, w.end_s) / length for name in charged.names}
        before = 0.0 if before_s is None else max(0.0, min(w.end_s, before_s) - w.start_s) / length
        gap = max(0.0, 1.0 - sum(busy.values()) - before)
        row: dict[int, float] = {len(columns): before} if before > 1e-12 else {}
        for j, col in enumerate(columns):
            share = sum(gap if m == GAP else busy.get(m, 0.0) for m in col.members)
            if share > 1e-12:
                row[j] = share
        total = sum(row.values())
        if total <= 0:
            continue
        if total < 0.999:  # folded columns' time is spread over the rest, in proportion
            row = {j: v / total for j, v in row.items()}
        rows.append(row)
        ys.append(w.power_w)
        ws.append(length)
        fitted.append(min(total, 1.0))
    return _Design(rows, ys, ws, fitted)


def _worst_collinear(design: _Design, n: int, max_vif: float) -> tuple[int, int] | None:
    """(column, the column it leans on most) for the worst variance inflation above max_vif."""
    flat = design.normal(n).g
    g = [flat[i * n : (i + 1) * n] for i in range(n)]
    live = [j for j in range(n) if g[j][j] > 0]
    if len(live) < 2:
        return None
    sub = [[g[a][c] for c in live] for a in live]
    try:
        inv = invert(sub)
        vif = [sub[i][i] * inv[i][i] for i in range(len(live))]
    except SingularMatrix:
        vif = [math.inf] * len(live)
    worst = max(range(len(live)), key=lambda i: vif[i])
    if vif[worst] <= max_vif:
        return None
    # Regress the worst column on the others; its partner is the one that explains most of it.
    others = [i for i in range(len(live)) if i != worst]
    try:
        beta = solve_linear([[sub[a][c] for c in others] for a in others], [sub[a][worst] for a in others])
    except SingularMatrix:
        beta = [sub[a][worst] for a in others]
    partner = max(range(len(others)), key=lambda k: abs(beta[k]) * math.sqrt(sub[others[k]][others[k]]))
    return live[worst], live[others[partner]]


def _select_lag(windows_at: Callable[[float], tuple[list[PowerWindow], list[PowerWindow]]],
                charged: ChargedTime, columns: list[_Column]) -> float:
    """The sensor lag whose windows the model fits best, the step at the first kernel's start included.

    Inside the busy window a wrong lag can fit as well as the true one: with two kernels alternating
    in equal phases, a lag one phase longer trades their shares, and their powers with them. The
    step from the pre-run state to the first kernel has no such twin, so the windows across it
    (the second list of `windows_at`) are fitted too, with the power before the first kernel as one
    more column.
    Every local minimum of the coarse scan is refined: a few milliseconds off matter more than the
    edge when kernels' powers differ a lot, so the coarse step alone can favour the wrong twin."""

    def rms(lag: float) -> float:
        inside, lead_in = windows_at(lag)
        design = _design(inside + lead_in, charged, columns, before_s=charged.start_s)
        if len(design.rows) < 3:
            return math.inf
        normal = design.normal(len(columns) + 1)
        return normal.solve()[1] / normal.weight if normal.weight else math.inf

    coarse = [rms(lag) for lag in _COARSE_LAGS_S]
    last = len(coarse) - 1
    minima = [lag for i, lag in enumerate(_COARSE_LAGS_S)
              if coarse[i] <= coarse[max(i - 1, 0)] and coarse[i] <= coarse[min(i + 1, last)]]
    fine = {round(lag + d * 0.005, 6) for lag in minima for d in (-3, -2, -1, 0, 1, 2, 3)
            if _COARSE_LAGS_S[0] <= lag + d * 0.005 <= _COARSE_LAGS_S[-1]}
    return min(sorted(fine), key=rms)


# --- public ----------------------------------------------------------------------------------------


def attribute_energy(records: list[KernelRecord], timeline: list[tuple[float, float]],
                     device: int | None = None, settings: AttributionSettings | None = None) -> KernelReport:
    """Per-kernel energy of one GPU from its kernel records and its instant-power timeline [(t_s, mW)].

    Times must share one clock (time.monotonic(); trace.py maps CUPTI's onto it). When the records
    span several GPUs, name the one the timeline belongs to with `device`."""
    cfg = settings or AttributionSettings()
    devices = sorted({r.device for r in records})
    if device is None and len(devices) > 1:
        raise ValueError(f"kernels ran on GPUs {devices}: pass device= for the GPU of the power timeline")
    records = [r for r in records if device is None or r.device == device]
    notes: list[str] = []
    if not records:
        return KernelReport(kernels=[], busy_window_energy_j=None, busy_window_s=0.0, device=device,
                            method_notes=["no kernel ran on this GPU"])
    charged = ChargedTime(records)
    busy_window_s = charged.end_s - charged.start_s
    launches: dict[str, int] = {}
    gpu_time: dict[str, float] = {}
    kinds: dict[str, str] = {}
    symbols: dict[str, str] = {}
    for r in records:
        launches[r.name] = launches.get(r.name, 0) + 1
        gpu_time[r.name] = gpu_time.get(r.name, 0.0) + max(0.0, r.duration_s)
        kinds.setdefault(r.name, r.kind)
        symbols.setdefault(r.name, r.symbol)
    gap_s = max(0.0, busy_window_s - charged.busy_s)
    order = sorted(charged.names, key=lambda n: -charged.total_s(n))

    def base_entry(name: str) -> KernelEnergy:
        return KernelEnergy(name=name, launches=launches[name], gpu_time_s=gpu_time[name],
                            time_share=charged.total_s(name) / charged.busy_s if charged.busy_s else 0.0,
                            energy_j=None, energy_ci_j=None, energy_share=None, avg_power_w=None,
                            attributable=False, kind=kinds[name], charged_time_s=charged.total_s(name),
                            symbol=symbols[name])

    updates = sensor_updates(timeline)
    period = sensor_period_s(updates)
    report = KernelReport(kernels=[base_entry(n) for n in order], busy_window_energy_j=None,
                          busy_window_s=busy_window_s, busy_time_s=charged.busy_s, device=device,
                          sensor_period_s=period, method_notes=notes)
    if period is None:
        return _unattributable(report, "no power timeline for this GPU (its sensors give no instant power)"
                               if not timeline else "the power reading never changed during the run")

    def windows_at(lag: float) -> tuple[list[PowerWindow], list[PowerWindow]]:
        """The windows wholly inside the busy window, and those across the first kernel's start and
        two sensor periods before it: enough to pin the pre-run power, short enough that one constant
        describes it (set-up before that varies)."""
        inside, lead_in = [], []
        for w in power_windows(updates, lag, period):
            if w.length_s <= 0:
                continue
            overlap = min(w.end_s, charged.end_s) - max(w.start_s, charged.start_s)
            # Only windows wholly inside: before the first kernel the GPU idles in another state.
            if overlap >= w.length_s - 1e-9:
                inside.append(w)
            if w.start_s < charged.start_s < w.end_s + 2 * period:
                lead_in.append(w)
        return inside, lead_in

    def windows_for(lag: float) -> list[PowerWindow]:
        return windows_at(lag)[0]

    columns = [_Column(n, [n], charged.total_s(n)) for n in order]
    if gap_s > 0:
        columns.append(_Column(GAP, [GAP], gap_s))
    # Columns with less time than one sensor period cannot be fitted: fold them into the rest.
    folded: dict[str, str] = {}
    for col in list(columns):
        if col.total_s < period and len(columns) > 1:
            columns.remove(col)
            folded[col.name] = f"too little GPU time ({_ms(col.total_s)}) to fit on its own"
    available = len(windows_for(0.0))
    if available < max(cfg.min_windows, 2 * len(columns)):
        return _unattributable(report, f"the GPU was busy {busy_window_s:.2g} s, only {available} "
                               f"power-sensor windows (the sensor updates every {1000 * period:.0f} ms): run "
                               "the program longer or loop it")

    # Inseparable columns: fold the small ones into the rest, merge the others into groups.
    merged: dict[str, str] = {}
    lag = cfg.sensor_lag_s if cfg.sensor_lag_s is not None else 0.0
    while len(columns) > 1:
        design = _design(windows_for(lag), charged, columns)
        hit = _worst_collinear(design, len(columns), cfg.max_vif)
        if hit is None:
            break
        worst, partner = columns[hit[0]], columns[hit[1]]
        fitted_s = sum(c.total_s for c in columns)
        if worst.total_s < cfg.fold_share * fitted_s:
            columns.remove(worst)
            for m in worst.members:
                folded[m] = (f"its time ({_ms(worst.total_s)}) is spread too evenly over the run to tell its "
                             "power from the others'")
            continue
        members = sorted(partner.members + worst.members,
                         key=lambda m: -(gap_s if m == GAP else charged.total_s(m)))
        group = _Column(" + ".join(members), members, partner.total_s + worst.total_s)
        columns[columns.index(partner)] = group
        columns.remove(worst)
        for m in group.members:
            merged[m] = group.name
    if cfg.sensor_lag_s is None:
        lag = _select_lag(windows_at, charged, columns)
    report.sensor_lag_s = lag
    windows = windows_for(lag)
    design = _design(windows, charged, columns)
    report.windows = len(design.rows)
    n = len(columns)
    # Bootstrap: resample blocks of ~1 s of consecutive windows, so that the sensor's smoothing and
    # slow drifts (temperature) stay inside a block. Blocks' normal equations add up.
    rows = len(design.rows)
    block = max(1, min(rows // 4, round(cfg.block_s / period)))
    blocks = [design.normal(n, range(start, min(start + block, rows))) for start in range(0, rows, block)]
    everything = _Normal.total(blocks)
    q, rss = everything.solve()
    report.fit_rms_w = math.sqrt(rss / everything.weight) if everything.weight else None
    rng = random.Random(cfg.seed)
    replicates = [_Normal.total(rng.choices(blocks, k=len(blocks))).solve(like=q)[0]
                  for _ in range(cfg.bootstrap_replicates)]

    energy, covered = integrate_w(windows, charged.start_s, charged.end_s)
    if busy_window_s > 2 * period and covered >= cfg.min_busy_coverage * busy_window_s:
        report.busy_window_energy_j = energy * busy_window_s / covered
    else:
        notes.append(f"busy-window energy not given: the power timeline covers {covered:.2g} s of its "
                     f"{busy_window_s:.2g} s")
    # Folded time (launch gaps, kernels too small to fit) counts with the columns it ran beside.
    times_s = [c.total_s * design.spread_factor(j) for j, c in enumerate(columns)]
    model_total = sum(q[j] * times_s[j] for j in range(n))
    report.model_energy_j = model_total
    denominator = report.busy_window_energy_j or model_total

    def ci(values: list[float]) -> tuple[float, float]:
        values = sorted(values)
        lo = values[int(0.025 * (len(values) - 1))]
        hi = values[math.ceil(0.975 * (len(values) - 1))]
        return lo, hi

    by_name = {k.name: k for k in report.kernels}
    for j, col in enumerate(columns):
        e = q[j] * times_s[j]
        samples = [rep[j] * times_s[j] for rep in replicates] or [e]
        e_ci = ci(samples)
        if len(col.members) > 1:
            report.groups.append(KernelGroupEnergy(name=col.name, members=col.members, energy_j=e,
                                                   energy_ci_j=e_ci, charged_time_s=col.total_s,
                                                   avg_power_w=q[j]))
            continue
        if col.members == [GAP]:
            report.gap_power_w, report.gap_energy_j = q[j], e
            continue
        k = by_name[col.name]
        k.avg_power_w, k.energy_j, k.energy_ci_j = q[j], e, e_ci
        k.energy_share = e / denominator if denominator else None
        if denominator:
            k.energy_share_ci = (e_ci[0] / denominator, e_ci[1] / denominator)
        if q[j] <= 0:
            k.reason = "the fit gives it no power at all: its windows do not separate it from the others"
        elif e_ci[1] - e_ci[0] > cfg.max_relative_ci * e:
            k.reason = f"uncertainty too wide: {e:.3g} J, 95 % CI [{e_ci[0]:.3g}, {e_ci[1]:.3g}] J"
        else:
            k.attributable = True
        if not k.attributable:
            k.energy_j = k.energy_ci_j = k.energy_share = k.energy_share_ci = k.avg_power_w = None
    for k in report.kernels:
        if k.name in folded:
            k.reason = folded[k.name]
        elif k.name in merged:
            group = next(g for g in report.groups if g.name == merged[k.name])
            others = [m for m in group.members if m != k.name]
            k.group = group.name
            lo, hi = group.energy_ci_j
            k.reason = (f"runs in step with {', '.join(others)} in every sensor window, so their power "
                        f"cannot be told apart; together {group.energy_j:.3g} J, "
                        f"95 % CI [{lo:.3g}, {hi:.3g}] J")
    notes += _method_notes(report, lag, block * period, cfg, folded)
    return report


def _unattributable(report: KernelReport, reason: str) -> KernelReport:
    for k in report.kernels:
        k.reason = reason
    report.method_notes.append(reason)
    return report


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.3g} ms"


def _method_notes(report: KernelReport, lag: float, block_s: float, cfg: AttributionSettings,
                  folded: dict[str, str]) -> list[str]:
    notes = [
        f"power regressed on each kernel's share of {report.windows} sensor windows "
        f"(~{1000 * (report.sensor_period_s or 0):.0f} ms each), non-negative least squares",
        f"sensor lag {1000 * lag:.0f} ms; 95 % CI from {cfg.bootstrap_replicates} block-bootstrap replicates "
        f"({block_s:.2g} s blocks)",
    ]
    if report.fit_rms_w is not None:
        notes.append(f"fit residual {report.fit_rms_w:.3g} W RMS")
    if report.busy_window_energy_j and report.model_energy_j:
        diff = report.model_energy_j / report.busy_window_energy_j - 1
        notes.append(f"the fit accounts for {report.model_energy_j:.4g} J of the busy window's "
                     f"{report.busy_window_energy_j:.4g} J ({100 * diff:+.1f} %)")
    if folded:
        names = ", ".join(sorted(folded))
        notes.append(f"not fitted on their own: {names}; their time and energy count with the kernels they "
                     "ran beside, in proportion")
    return notes
