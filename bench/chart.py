"""Draw a GPU benchmark's results (bench/gpu-bench.ps1) as a PNG: per configuration, the cold start beside
the restore to first token stacked by phase, with the physical floor marked. Configurations: ours (page cache
warm), the cold node (weights read after criu, and prefetched while it runs), the weight holder, and, when the
run has them, the weights-in-image and KV-in-image baselines.

    python3 bench/chart.py bench/results/gpu-....json [out.png]    (needs matplotlib: apt python3-matplotlib)
"""
from __future__ import annotations

import json
import sys

# The restore's own phases, as the cmdlet times them; whatever is left to first token is "first token".
PHASES = [("criu-restore", "criu restore", "#4C72B0"),
          ("cuda-restore", "CUDA restore", "#DD8452"),
          ("resume", "resume (weights, KV pool, graphs)", "#55A868"),
          ("other", "validate, hello, first token", "#8C8C8C")]


def configurations(result: dict) -> list:
    """(label, cold start s, restore-to-first-token s, its phases, floor s) of each configuration."""
    found = []
    ours = result.get("ours")
    if ours and "restore" in ours:
        restore = ours["restore"]
        found.append(("llama-8b, ours\n(warm page cache)", ours["cold_start_s"], restore["to_first_token_s"],
                      restore["phases"], ours["floor_s"]))
    cold = result.get("cold_node")
    if cold:
        for key, label in (("restore_reading_after", "cold node,\nweights after criu"),
                           ("restore_prefetching", "cold node,\nweights prefetched")):
            if key in cold:
                run = cold[key]
                found.append((label, cold["cold_start"]["to_first_token_s"], run["to_first_token_s"],
                              run["phases"], run["floor_s"]))
    holder = result.get("holder")
    if holder and ours:
        found.append(("weight holder\n(cold page cache)", ours["cold_start_s"], holder["to_first_token_s"],
                      holder["phases"], holder["floor_s"]))
    baselines = (("weights_in_image", "llama-8b,\nweights in image"),
                 ("baseline", "llama-8b, KV-in-image\nbaseline"))
    for key, label in baselines:
        run = result.get(key)
        if run and "restore" in run:
            restore = run["restore"]
            found.append((label, run["cold_start_s"], restore["to_first_token_s"], restore["phases"],
                          run["floor_s"]))
    return found


def main(argv: list) -> int:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    source, target = argv[0], argv[1] if len(argv) > 1 else argv[0].rsplit(".", 1)[0] + ".png"
    with open(source) as f:
        result = json.load(f)
    configs = configurations(result)
    fig, ax = plt.subplots(figsize=(max(9, 1.9 * len(configs)), 5.2))
    width = 0.36
    for i, (_, cold, total, phases, floor) in enumerate(configs):
        ax.bar(i - width / 2, cold, width, color="#C44E52", label="cold start" if i == 0 else None)
        ax.text(i - width / 2, cold, f"{cold:.1f} s", ha="center", va="bottom", fontsize=8)
        parts = {name: phases.get(name, 0.0) for name, _, _ in PHASES[:-1]}
        parts["other"] = max(0.0, total - sum(parts.values()))
        bottom = 0.0
        for name, label, color in PHASES:
            ax.bar(i + width / 2, parts[name], width, bottom=bottom, color=color,
                   label=label if i == 0 else None)
            bottom += parts[name]
        ax.text(i + width / 2, total, f"{total:.2f} s", ha="center", va="bottom", fontsize=8)
        ax.hlines(floor, i + width / 2 - width / 2, i + width, colors="black", linestyles="dashed",
                  label="physical floor" if i == 0 else None)
    ax.set_xticks(range(len(configs)), [label for label, *_ in configs], fontsize=9)
    ax.set_ylabel("seconds")
    tallest = max(max(cold, total) for _, cold, total, _, _ in configs)
    ax.set_ylim(0, tallest * 1.35)  # room for the legend above the bars
    ax.set_title(f"Cold start vs restore to first token — {result['gpu']}, driver {result['driver']}",
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper center", ncol=3)
    fig.tight_layout()
    fig.savefig(target, dpi=120)
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
