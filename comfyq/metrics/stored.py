"""Read the counters and histograms every process recorded in Redis back as metric families."""
from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Iterator

import redis
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric as Family

from .catalogue import Metric
from .recorder import KEY

Fields = dict[bytes, bytes]


def counter_family(metric: Metric, fields: Fields) -> CounterMetricFamily:
    """Build a counter's family from its hash."""
    family = CounterMetricFamily(metric.name, metric.help, labels=metric.labels)
    if not metric.labels and not fields:
        family.add_metric([], 0)  # a counter without labels exists from the start
    for field, value in sorted(fields.items()):
        family.add_metric(json.loads(field), float(value))
    return family


def _bound(part: str) -> float:
    """Return the upper bound a histogram field names."""
    return math.inf if part == "+Inf" else float(part)


def histogram_family(metric: Metric, fields: Fields) -> HistogramMetricFamily:
    """Build a histogram's family from its hash: per-bucket counts become cumulative ones."""
    series: dict[tuple[str, ...], dict[str, float]] = defaultdict(dict)
    for field, value in fields.items():
        *values, part = json.loads(field)
        series[tuple(values)][part] = float(value)
    family = HistogramMetricFamily(metric.name, metric.help, labels=metric.labels)
    for values, parts in sorted(series.items()):
        running, buckets = 0.0, []
        for bound in (*metric.buckets, math.inf):
            running += parts.get("+Inf" if bound == math.inf else repr(bound), 0.0)
            buckets.append(("+Inf" if bound == math.inf else repr(bound), running))
        family.add_metric(list(values), buckets, parts.get("sum", 0.0))
    return family


def families(r: redis.Redis, metrics: tuple[Metric, ...]) -> Iterator[Family]:
    """Yield the family of each stored metric, read in one round trip."""
    pipe = r.pipeline(transaction=False)
    for metric in metrics:
        pipe.hgetall(KEY.format(metric.name))
    for metric, fields in zip(metrics, pipe.execute()):
        yield (histogram_family if metric.kind == "histogram" else counter_family)(metric, fields)
