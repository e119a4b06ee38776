"""Read a /metrics page as Prometheus would: prometheus-client's own text-format parser."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


class Samples:
    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [Sample(s.name, dict(s.labels), s.value)
                        for family in text_string_to_metric_families(text)
                        for s in family.samples]

    def get(self, name: str, **labels: str) -> float | None:
        """The value of the one sample with this name and (at least) these labels."""
        found = [s.value for s in self.samples if s.name == name
                 and all(s.labels.get(k) == v for k, v in labels.items())]
        assert len(found) <= 1, f"{name} {labels} matches {len(found)} samples"
        return found[0] if found else None

    def value(self, name: str, **labels: str) -> float:
        """As ``get``, where a missing labelled series counts as 0 (it has not moved yet)."""
        return self.get(name, **labels) or 0.0

    def label_values(self, name: str, label: str) -> set[str]:
        return {s.labels[label] for s in self.samples if s.name == name and label in s.labels}


def scrape(url: str) -> Samples:
    r = httpx.get(url, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    return Samples(r.text)
