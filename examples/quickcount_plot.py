"""Draw docs/img/quick-count-convergence.png: the quick-count estimate and its 95 %
interval as a 2,000-TPS sample of DKI Jakarta 2024 fills in.

    PYTHONPATH=src .venv/bin/python examples/quickcount_plot.py

The sample is stratified by district (44 strata, proportional allocation, seed
20240214); its TPS arrive in the order of their time stamps on the official count site
(a proxy for arrival: the snapshot's stamp is the last update). The dashed lines are
the full count of the 22,511 TPS with complete results. matplotlib is a development
dependency only: it is imported here, never in the library.
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sipantau_core.quickcount import (  # noqa: E402
    allocate,
    draw_sample,
    estimate_shares_arrays,
    stratify,
)

DATA = ROOT.parent / "shared" / "data" / "dki_pilpres2024_sirekap.csv"
OUT = ROOT / "docs" / "img" / "quick-count-convergence.png"
NAMES = {0: "01 Anies–Muhaimin", 1: "02 Prabowo–Gibran", 2: "03 Ganjar–Mahfud"}
COLOURS = {0: "#2a6f97", 1: "#c0392b", 2: "#6a994e"}


def main() -> None:
    votes: dict[str, list[int]] = {}
    stamp: dict[str, str] = {}
    with DATA.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if all(row[f"paslon_{k}"] for k in (1, 2, 3)):
                votes[row["kode_tps"]] = [int(row[f"paslon_{k}"]) for k in (1, 2, 3)]
                stamp[row["kode_tps"]] = row["ts"]
    frame = stratify(votes, level="district")
    population = Counter(frame.values())
    draw = draw_sample(frame, allocate(population, 2000), seed=20240214)
    arrival = sorted(draw.tps, key=lambda c: (stamp[c], c))
    strata = [draw.strata[c] for c in arrival]
    matrix = np.asarray([votes[c] for c in arrival])
    everything = np.asarray(list(votes.values())).sum(axis=0)
    truth = everything / everything.sum()

    sizes = np.arange(50, len(arrival) + 1, 25)
    share = np.empty((sizes.size, 3))
    margin = np.empty((sizes.size, 3))
    for i, n in enumerate(sizes):
        est = estimate_shares_arrays(strata[:n], matrix[:n], population)
        share[i] = [est.share[k] for k in range(3)]
        margin[i] = [est.margin[k] for k in range(3)]

    fig, axes = plt.subplots(
        2, 1, figsize=(8, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]}, dpi=110
    )
    for ax, cands in ((axes[0], (0, 1)), (axes[1], (2,))):
        for k in cands:
            ax.fill_between(
                sizes,
                100 * (share[:, k] - margin[:, k]),
                100 * (share[:, k] + margin[:, k]),
                color=COLOURS[k],
                alpha=0.2,
                linewidth=0,
            )
            ax.plot(sizes, 100 * share[:, k], color=COLOURS[k], label=NAMES[k])
            ax.axhline(100 * truth[k], color=COLOURS[k], linestyle="--", linewidth=1)
        ax.set_ylabel("share of valid votes (%)")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=9)
    axes[0].set_title(
        "DKI Jakarta 2024: quick-count estimate and 95 % interval as the sample reports\n"
        "(2,000 TPS stratified by district; dashed: full count of 22,511 TPS)",
        fontsize=10,
    )
    axes[1].set_xlabel("sampled TPS reported (in order of time stamp)")
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT)
    print(f"wrote {OUT.relative_to(ROOT)}")
    final = estimate_shares_arrays(strata, matrix, population)
    for k in range(3):
        print(
            f"{NAMES[k]}: {100 * final.share[k]:.2f} % ± {100 * final.margin[k]:.2f} "
            f"(truth {100 * truth[k]:.2f} %)"
        )
    print(
        f"callable: {final.callable}; difference {100 * final.difference:.2f} ± "
        f"{100 * final.difference_margin:.2f} points; notes at n=50: "
        f"{estimate_shares_arrays(strata[:50], matrix[:50], population).notes}"
    )


if __name__ == "__main__":
    main()
