"""Plot a run with matplotlib: rates per phase (target and baselines side by side) and
the distribution of request latencies per phase."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")   # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from metabench.phases import title  # noqa: E402
from metabench.stats import PhaseStats  # noqa: E402


def plot(path: str, heading: str, target: dict[str, PhaseStats],
         baselines: dict[str, dict[str, PhaseStats]]) -> None:
    keys = list(target)
    series = {"metaserver": target, **baselines}
    fig, (rates, latency) = plt.subplots(1, 2, figsize=(13, 5))
    width = 0.8 / len(series)
    x = np.arange(len(keys))
    for n, (label, stats) in enumerate(series.items()):
        values = [stats[k].mean if k in stats else 0 for k in keys]
        errors = [stats[k].stddev if k in stats else 0 for k in keys]
        rates.bar(x + n * width, values, width, yerr=errors, label=label)
    rates.set_xticks(x + width * (len(series) - 1) / 2, [title(k) for k in keys],
                     rotation=30, ha="right")
    rates.set_yscale("log")
    rates.set_ylabel("items/s (mean of iterations)")
    rates.legend(fontsize="small")
    rates.set_title("rate per phase")
    for key, stats in target.items():
        values = np.sort(stats.latencies) * 1e3
        if values.size:
            latency.plot(values, np.arange(1, values.size + 1) / values.size, label=title(key))
    latency.set_xscale("log")
    latency.set_xlabel("request latency (ms)")
    latency.set_ylabel("fraction of requests")
    latency.set_title("latency distribution (metaserver)")
    latency.legend(fontsize="small")
    fig.suptitle(heading, fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
