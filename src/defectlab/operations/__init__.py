"""Running an installation: backup and restore, the deployment check, the per-tenant
Kubernetes manifests and the processes' metrics. Above every app (it reads all of them), below
the entry points that call it (`defectlab.cli`, the pages and the worker's probe server)."""
