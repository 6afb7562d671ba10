"""The edge's Prometheus metrics, served at ``GET /metrics`` on the edge listener.

One registry per edge (several edges can live in one process, as in the tests). Counters the
credential cache and the leaf cache keep themselves are read at scrape time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from latchkey.crypto.tls import LeafCache
from latchkey.edge.credentials import CredentialCache

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class _Caches(Collector):
    def __init__(self, leaves: LeafCache, credentials: CredentialCache) -> None:
        self._leaves = leaves
        self._credentials = credentials

    def collect(self) -> Iterator[Metric]:
        leaves = self._leaves
        lookups = CounterMetricFamily(
            "latchkey_edge_cert_cache_lookups", "Leaf certificate cache lookups", labels=["result"]
        )
        lookups.add_metric(["hit"], leaves.hits)
        lookups.add_metric(["miss"], leaves.misses)
        yield lookups
        yield CounterMetricFamily(
            "latchkey_edge_cert_mints", "Leaf certificates minted", value=leaves.mints
        )
        yield GaugeMetricFamily(
            "latchkey_edge_cert_cache_size", "Hosts with a cached leaf", value=len(leaves)
        )
        creds = self._credentials
        fetches = CounterMetricFamily(
            "latchkey_edge_credential_fetches",
            "STS AssumeRoleWithWebIdentity calls (each try) and failed refreshes",
            labels=["kind"],
        )
        fetches.add_metric(["call"], creds.fetches)
        fetches.add_metric(["failed_refresh"], creds.failures)
        fetches.add_metric(["background_refresh"], creds.background_refreshes)
        yield fetches


class EdgeMetrics:
    def __init__(self, leaves: LeafCache, credentials: CredentialCache) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "latchkey_edge_requests",
            "Requests through the edge by server workload, decision and reason",
            ["server", "decision", "reason"],
            registry=self.registry,
        )
        self.connections = Counter(
            "latchkey_edge_connections",
            "Client connections by what the edge did with them",
            ["kind"],  # intercepted | tunnel | refused
            registry=self.registry,
        )
        self.upstream_seconds = Histogram(
            "latchkey_edge_upstream_seconds",
            "Time from sending a request upstream to its whole answer",
            ["server"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_Caches(leaves, credentials))
        self._request_children: dict[tuple[str, str, str], Any] = {}
        self._upstream_children: dict[str, Any] = {}

    def count_request(self, server: str, decision: str, reason: str) -> None:
        """``requests`` by labels; the labelled child is looked up once per label set."""
        key = (server, decision, reason)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(server, decision, reason)
        child.inc()

    def observe_upstream(self, server: str, seconds: float) -> None:
        child = self._upstream_children.get(server)
        if child is None:
            child = self._upstream_children[server] = self.upstream_seconds.labels(server)
        child.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
