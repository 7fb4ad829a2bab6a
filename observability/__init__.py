"""The platform's observability: Grafana dashboards, Prometheus alerts and their pictures."""
