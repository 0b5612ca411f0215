"""Draw a GPU benchmark's results (bench/gpu-bench.ps1) as a PNG: per configuration, the cold start beside the
restore to first token stacked by phase, with the physical floor marked.

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
CONFIGS = [("ours", "llama-8b, ours\n(weights from source)"),
           ("weights_in_image", "llama-8b,\nweights in image"),
           ("baseline", "llama-8b, KV-in-image\nbaseline")]


def main(argv: list) -> int:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    source, target = argv[0], argv[1] if len(argv) > 1 else argv[0].rsplit(".", 1)[0] + ".png"
    with open(source) as f:
        result = json.load(f)
    configs = [(key, label, result[key]) for key, label in CONFIGS
               if key in result and "restore" in result[key]]
    fig, ax = plt.subplots(figsize=(9, 5.2))
    width = 0.36
    for i, (_, _, run) in enumerate(configs):
        cold = run["cold_start_s"]
        ax.bar(i - width / 2, cold, width, color="#C44E52", label="cold start" if i == 0 else None)
        ax.text(i - width / 2, cold, f"{cold:.1f} s", ha="center", va="bottom", fontsize=8)
        phases = run["restore"]["phases"]
        total = run["restore"]["to_first_token_s"]
        parts = {name: phases.get(name, 0.0) for name, _, _ in PHASES[:-1]}
        parts["other"] = max(0.0, total - sum(parts.values()))
        bottom = 0.0
        for name, label, color in PHASES:
            ax.bar(i + width / 2, parts[name], width, bottom=bottom, color=color,
                   label=label if i == 0 else None)
            bottom += parts[name]
        ax.text(i + width / 2, total, f"{total:.2f} s", ha="center", va="bottom", fontsize=8)
        ax.hlines(run["floor_s"], i + width / 2 - width / 2, i + width, colors="black", linestyles="dashed",
                  label="physical floor" if i == 0 else None)
    ax.set_xticks(range(len(configs)), [label for _, label, _ in configs], fontsize=9)
    ax.set_ylabel("seconds")
    tallest = max(max(run["cold_start_s"], run["restore"]["to_first_token_s"]) for _, _, run in configs)
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
