r"""flowbook's own cost benchmark: density and sampling time against D, and training steps/s.

Run it with one command (it is not part of the test suite)::

    python -m flowbook.teaching.bench                      # table on stdout
    python -m flowbook.teaching.bench --png perf.png       # and the cost-scaling figure
    python -m flowbook.teaching.bench --dims 2,8 --n 1000  # a quick run

What it measures, for ``MAF``, ``IAF`` and ``RealNVP`` (the factories' defaults, hidden width
``--hidden``) at each dimension D:

* ``log_prob`` of ``--n`` points (no gradient). MAF and RealNVP: one conditioner pass per layer;
  IAF: D passes per layer.
* ``sample`` of ``--n`` points. IAF and RealNVP: one pass per layer; MAF: D passes per layer.
* training steps per second of ``flowbook.fit``: Adam (lr 1e-3), batch ``--batch``, loss ``-log_prob(x).mean()``
  (for IAF, whose density is the sequential direction, this is the cost of fitting it by
  maximum likelihood; IAF is meant to be trained from its own samples instead).

Times are the minimum over ``--reps`` repetitions (the least disturbed one on a shared machine).
"""
from __future__ import annotations

import argparse

import torch

from ..flows import IAF, MAF, RealNVP
from ..train import fit
from .timing import time_call

__all__ = ["build", "run"]

FACTORIES = {"MAF": lambda d, h: MAF(d, n_layers=5, hidden=h, depth=2),
             "IAF": lambda d, h: IAF(d, n_layers=5, hidden=h, depth=2),
             "RealNVP": lambda d, h: RealNVP(d, n_layers=8, hidden=h, depth=2)}


def build(kind: str, features: int, hidden: int):
    """The flow ``kind`` (``"MAF"``, ``"IAF"`` or ``"RealNVP"``) with the benchmark's layer counts."""
    torch.manual_seed(0)
    return FACTORIES[kind](features, hidden)


def train_rate(flow, x: torch.Tensor, batch: int, steps: int) -> float:
    """Training steps per second of ``flowbook.fit`` on rows of ``x`` (Adam, lr 1e-3, no clipping).

    Five warm-up steps first; torch's current thread count is kept (``main`` sets ``--threads``).
    """
    options = dict(batch_size=batch, lr=1e-3, clip_grad=None, threads=torch.get_num_threads(), progress=False,
                   generator=torch.Generator().manual_seed(0))
    fit(flow, x, steps=5, **options)
    return steps / fit(flow, x, steps=steps, **options).seconds


def run(dims=(2, 8, 16, 32, 64), kinds=("MAF", "IAF", "RealNVP"), hidden: int = 256, n: int = 10000,
        batch: int = 256, steps: int = 50, reps: int = 3) -> list[dict]:
    """One row per (kind, D): seconds for ``log_prob`` and ``sample`` of n points, steps/s."""
    rows = []
    for kind in kinds:
        for d in dims:
            flow = build(kind, d, hidden).eval()
            x = flow.sample(n)  # points on the model's own support
            with torch.no_grad():
                t_lp = time_call(lambda: flow.log_prob(x), repeat=reps, threads=None)  # --threads set in main
            t_s = time_call(lambda: flow.sample(n), repeat=reps, threads=None)
            rate = train_rate(flow, x, batch, steps)
            rows.append(dict(kind=kind, D=d, params=sum(p.numel() for p in flow.parameters()),
                             logprob_s=t_lp, sample_s=t_s, steps_per_s=rate))
            print(f"{kind:8s} D={d:3d} params={rows[-1]['params']:8d} log_prob {t_lp:8.4f} s  "
                  f"sample {t_s:8.4f} s  train {rate:7.1f} steps/s", flush=True)
    return rows


def plot(rows, path: str, n: int) -> None:
    """Log-log figure: seconds for n points against D, one line per (kind, operation)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axs = plt.subplots(1, 3, figsize=(10, 3.6))  # a page column: 10 in at 150 dpi
    for kind, style in zip(FACTORIES, ("o-", "s--", "^-")):
        r = [row for row in rows if row["kind"] == kind]
        if not r:
            continue
        d = [row["D"] for row in r]
        axs[0].loglog(d, [row["logprob_s"] for row in r], style, label=kind)
        axs[1].loglog(d, [row["sample_s"] for row in r], style, label=kind)
        axs[2].semilogx(d, [row["steps_per_s"] for row in r], style, label=kind)
        for ax in axs:
            ax.set_xticks(d, [str(v) for v in d])
            ax.minorticks_off()
    axs[0].set(title=f"log_prob of {n} points", ylabel="seconds")
    axs[1].set(title=f"sample {n} points", ylabel="seconds")
    axs[2].set(title="training (higher is better)", ylabel="steps per second")
    for ax in axs:
        ax.set_xlabel("dimension D")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle("Cost against dimension: the sequential directions (MAF sampling, IAF density) grow with D")
    fig.tight_layout()
    fig.savefig(path, dpi=150)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dims", default="2,8,16,32,64")
    ap.add_argument("--kinds", default="MAF,IAF,RealNVP")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--png", default="")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    print(f"# torch {torch.__version__}, {a.threads} threads, hidden {a.hidden}, n {a.n}, batch {a.batch}")
    rows = run(tuple(int(d) for d in a.dims.split(",")), tuple(a.kinds.split(",")), a.hidden, a.n,
               a.batch, a.steps, a.reps)
    if a.png:
        plot(rows, a.png, a.n)
    return rows


if __name__ == "__main__":
    main()
