"""`defectlab serve-inference`: the detection service's app on uvicorn, one process (scale it
out by running more, behind a load balancer: quotas hold across them with Redis)."""

from __future__ import annotations

from typing import Any

from django.conf import settings


def run(host: str, port: int, mirror: Any = None) -> None:
    """Serve until stopped; with ``mirror`` (serving/mirror.py) as an edge mirror."""
    import uvicorn

    from defectlab.serving.app import Service, create_app

    uvicorn.run(
        create_app(Service(mirror) if mirror is not None else None),
        host=host,
        port=port,
        log_config=None,  # the installation's logging (JSON lines on stdout)
        access_log=False,  # every call is logged once, by the meter, with what it did
        server_header=False,
        proxy_headers=settings.PROXY_HEADERS,
        forwarded_allow_ips="*" if settings.PROXY_HEADERS else None,
        timeout_graceful_shutdown=30,
    )
