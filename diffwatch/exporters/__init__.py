"""Exporters: diffwatch's figures for the monitoring stack a team already runs.

``prometheus``: a prometheus_client collector over the rollups, cached, and its HTTP server
(docs/prometheus.md).
"""
