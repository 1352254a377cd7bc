"""`defectlab serve-inference`: the detection service's app on uvicorn, one process (scale it
out by running more, behind a load balancer: quotas hold across them with Redis)."""

from __future__ import annotations

from django.conf import settings


def run(host: str, port: int) -> None:
    import uvicorn

    from defectlab.serving.app import create_app

    uvicorn.run(
        create_app(),
        host=host,
        port=port,
        log_config=None,  # the installation's logging (JSON lines on stdout)
        access_log=False,  # every call is logged once, by the meter, with what it did
        server_header=False,
        proxy_headers=settings.PROXY_HEADERS,
        forwarded_allow_ips="*" if settings.PROXY_HEADERS else None,
        timeout_graceful_shutdown=30,
    )
