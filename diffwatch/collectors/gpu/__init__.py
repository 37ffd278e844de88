"""GPU metrics: NVML on the host, or a dcgm-exporter Prometheus endpoint."""
