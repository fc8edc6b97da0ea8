"""The comparison report's pictures, as PNG bytes (matplotlib, no screen needed).

- `disagreement`: for one oracle pair, one row per operation, the distribution
  of each graph's largest |error| / tolerance (log scale), with the tolerance
  marked: the whole distribution, not only its worst case.
- `program_drawing`: a program as a layered graph (inputs at the top, the
  output at the bottom), the blamed step in red.
"""

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LinearSegmentedColormap, PowerNorm
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch
from mflow.reports.stats import HIST_BINS, HIST_LO, HIST_STEP

BLAME, PLAIN, INPUT, OUTPUT_EDGE = "#e4572e", "#dfe7f2", "#f2efe2", "#1b2a41"
# white for "no graph fell here", then light to dark blue
SHADES = LinearSegmentedColormap.from_list("shares", ["#ffffff", "#9ecae1", "#08306b"])


def _png(fig):
    FigureCanvasAgg(fig)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=110, bbox_inches="tight")
    return out.getvalue()


def disagreement(pair, by_op):
    """PNG: rows = operations, columns = log10(|error| / tolerance) bins; each
    cell the share of that operation's graphs falling there."""
    ops = sorted(by_op)
    shares = np.array([np.asarray(by_op[op]["hist"], float) / max(1, sum(by_op[op]["hist"]))
                       for op in ops]).reshape(len(ops), HIST_BINS)
    fig = Figure(figsize=(8.5, 0.9 + 0.24 * len(ops)))
    ax = fig.add_subplot()
    # bin k covers [lo + (k-1) step, lo + k step); bins 0 and the last are open-ended
    edges = HIST_LO + HIST_STEP * (np.arange(HIST_BINS + 1) - 1)
    # a square-root scale: a share of a few percent (a tail) is still visible
    image = ax.pcolormesh(edges, np.arange(len(ops) + 1), shares, cmap=SHADES,
                          norm=PowerNorm(0.5, vmin=0, vmax=1))
    ax.axvline(0.0, color=BLAME, lw=1.5, ls="--")
    ax.text(0.1, 0.01, "tolerance", color=BLAME, fontsize=8, va="bottom",
            transform=ax.get_xaxis_transform())
    ax.set_yticks(np.arange(len(ops)) + 0.5,
                  [f"{op} ({sum(by_op[op]['hist']):,})" for op in ops], fontsize=8)
    ax.invert_yaxis()
    ticks = np.arange(HIST_LO, edges[-1] + 1e-9, 2.0)
    ax.set_xticks(ticks, [f"1e{int(t)}" for t in ticks], fontsize=8)
    ax.set_xlabel("each graph's largest |error| / tolerance (leftmost column: below 1e-12, "
                  "exact agreement included)", fontsize=8)
    ax.set_title(f"{pair}: where the graphs fall, per operation (graphs in brackets)",
                 fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01, label="share of the row's graphs")
    return _png(fig)


def _layers(program):
    """Each value's layer: inputs 0, a step one below its deepest operand."""
    n_in = len(program.inputs)
    layer = [0] * n_in
    for step in program.steps:
        layer.append(1 + max((layer[a] for a in step.args), default=0))
    return layer


def _label(program, i):
    shape = "×".join(map(str, program.shapes[i]))
    n_in = len(program.inputs)
    if i < n_in:
        return f"x{i}\n{shape}"
    step = program.steps[i - n_in]
    attrs = {k: v for k, v in step.attrs.items() if k != "value"}
    extra = "\n" + ", ".join(f"{k}={v}" for k, v in attrs.items())[:40] if attrs else ""
    return f"v{i} = {step.op}\n{shape}{extra}"


def program_drawing(program, blamed_value=None):
    """PNG of the program's graph; `blamed_value` (the value index of the
    blamed step, e.g. 1 for "v1") is drawn in red."""
    layer = _layers(program)
    rows = {}
    for i, k in enumerate(layer):
        rows.setdefault(k, []).append(i)
    width = max(len(r) for r in rows.values())
    fig = Figure(figsize=(max(3.0, 2.1 * width), 0.4 + 1.0 * len(rows)))
    ax = fig.add_subplot()
    ax.set_axis_off()
    where = {}
    for k, members in rows.items():
        for j, i in enumerate(members):
            where[i] = (2.0 * (j + 0.5) * width / len(members), -k)
    n_in, last = len(program.inputs), len(layer) - 1
    for i, step in enumerate(program.steps, start=n_in):
        for pos, a in enumerate(step.args):
            (x0, y0), (x1, y1) = where[a], where[i]
            # an operand used twice by one step (add(x, x)) gets two bowed arrows
            bend = 0.0 if step.args.count(a) == 1 else (0.35 if pos == 0 else -0.35)
            ax.annotate("", xy=(x1, y1 + 0.27), xytext=(x0, y0 - 0.27),
                        arrowprops=dict(arrowstyle="->", color="#555555", lw=1,
                                        connectionstyle=f"arc3,rad={bend}"))
            if len(step.args) > 1:
                ax.text(x0 + 0.3 * (x1 - x0) - 0.25 * bend * 2, y0 - 0.27 + 0.3 * (y1 - y0 + 0.54),
                        str(pos), fontsize=7, color="#555555", ha="center", va="center")
    for i, (x, y) in where.items():
        colour = BLAME if i == blamed_value else (INPUT if i < n_in else PLAIN)
        ax.add_patch(FancyBboxPatch((x - 0.9, y - 0.25), 1.8, 0.5, boxstyle="round,pad=0.02",
                                    fc=colour, ec=OUTPUT_EDGE if i == last else "#777777",
                                    lw=2.2 if i == last else 0.8))
        ax.text(x, y, _label(program, i), ha="center", va="center", fontsize=7,
                color="white" if i == blamed_value else "black")
    ax.set_xlim(-0.1, 2.0 * width + 0.1)
    ax.set_ylim(-(len(rows) - 1) - 0.45, 0.45)
    return _png(fig)
