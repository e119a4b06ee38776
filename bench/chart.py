"""What the chart tests cost: strict lint and schema validation against a plain render.

Baseline: rendering the chart with its default values through the real Helm library. Then, in
the same run, a strict lint (Kubernetes 1.30) and ``kubernetes-validate --strict`` of every
rendered object. Medians of ``--runs`` and ratios against the render.

    .venv/bin/python bench/chart.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import helm_python
import yaml
from kubernetes_validate import utils as kv

CHART = Path(__file__).resolve().parents[1] / "charts" / "vidconv"


def median_seconds(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    helm_python.disable_logging()
    with helm_python.Chart.load(CHART) as chart:
        def render() -> dict[str, str]:
            return dict(chart.render(values={}, name="vc", namespace="media"))

        objects = [d for path, text in sorted(render().items()) if path.endswith(".yaml")
                   for d in yaml.safe_load_all(text) if d]

        def lint() -> None:
            helm_python.lint(CHART, {}, strict=True, kube_version="v1.30.0", namespace="media")

        def validate() -> None:
            for doc in objects:
                kv.validate(doc, "1.30", strict=True)

        render()  # warm-up: first calls load schemas and the Go library
        lint()
        validate()
        base = median_seconds(render, args.runs)
        print(f"chart render (defaults)          {base * 1000:7.1f} ms   x1.0")
        for label, fn in (("strict lint, Kubernetes 1.30", lint),
                          (f"validate {len(objects)} objects (1.30)", validate)):
            t = median_seconds(fn, args.runs)
            print(f"{label:<32} {t * 1000:7.1f} ms   x{t / base:.1f}")
    print(f"medians of {args.runs} runs")


if __name__ == "__main__":
    main()
