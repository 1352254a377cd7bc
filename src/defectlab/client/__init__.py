"""The DefectLab Python SDK: a typed client for a DefectLab server's REST API.

It speaks HTTP (httpx) and imports nothing of the server, so it runs on any machine with the
package installed, without the server's settings::

    from defectlab.client import Client, box

    with Client("http://127.0.0.1:8080", token="dl_…") as client:
        project = client.projects.create(organization, "Welds", labels=["crack", "pore"])
        client.tasks.upload(project, ["./images"])
        client.exports.download(project, "welds.zip", "yolo", progress=True)

``Client.from_env()`` reads ``DEFECTLAB_URL`` and ``DEFECTLAB_TOKEN``. docs/sdk.md has a
complete example. Errors are ``ApiError`` (the server's code, message and status).

``DetectionClient`` calls the detection service (`defectlab serve-inference`) with an
organization API key; ``DetectionClient.from_env()`` reads ``DEFECTLAB_INFERENCE_URL`` and
``DEFECTLAB_KEY``."""

from __future__ import annotations

import os
from typing import Any

import httpx

from defectlab.client.detection import DetectionClient
from defectlab.client.errors import ApiError
from defectlab.client.jobs import Exports, Imports, JobFailed, Jobs
from defectlab.client.resources import (
    Account,
    Annotations,
    Labels,
    Organizations,
    Predictions,
    Projects,
    Reviews,
    Tasks,
    Tokens,
)
from defectlab.client.transport import Transport
from defectlab.client.types import (
    Annotation,
    Answer,
    Detection,
    ImageError,
    ImageResult,
    Job,
    Label,
    ModelInfo,
    Organization,
    Prediction,
    Project,
    Review,
    Task,
    TaskPage,
    Token,
    UploadResult,
    User,
    box,
    parse,
    polygon,
)

# The environment variables the client (and `defectlab remote`) read; they configure a script's
# connection, not a server (docs/configuration.md lists them apart from the server's settings).
ENVIRONMENT = {
    "DEFECTLAB_URL": "Address of the DefectLab server, e.g. http://127.0.0.1:8080.",
    "DEFECTLAB_TOKEN": "A personal API token (dl_…) to act as.",
    "DEFECTLAB_INFERENCE_URL": "Address of the detection service, e.g. http://127.0.0.1:8090.",
    "DEFECTLAB_KEY": "An organization API key (dlk_…) for the detection service.",
}


class Client:
    """A connection to one DefectLab server, as one person.

    Sign in with a personal API token (``token=``, sent as ``Authorization: Bearer``) or with
    ``login(email, password)`` (a session; its writes carry the CSRF token). Requests answered
    429 or 503 are sent again after the ``Retry-After`` the server asks for (up to
    ``max_retry_wait`` seconds; longer asks raise at once) or a short backoff, at most
    ``retries`` times; so are requests whose connection failed, when sending them again is
    safe. ``language`` (``en``, ``zh-hans``) is the language of the server's error messages."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        language: str | None = None,
        timeout: float = 60.0,
        retries: int = 5,
        max_retry_wait: float = 60.0,
        verify: bool | str = True,
        transport: httpx.BaseTransport | None = None,
        **options: Any,
    ) -> None:
        if not url:
            raise ValueError("Give the server's address, e.g. http://127.0.0.1:8080.")
        self._transport = Transport(
            url,
            token=token,
            language=language,
            timeout=timeout,
            retries=retries,
            max_retry_wait=max_retry_wait,
            verify=verify,
            transport=transport,
            **options,
        )
        self.url = self._transport.url
        self.account = Account(self._transport)
        self.tokens = Tokens(self._transport)
        self.organizations = Organizations(self._transport)
        self.projects = Projects(self._transport)
        self.labels = Labels(self._transport)
        self.tasks = Tasks(self._transport)
        self.annotations = Annotations(self._transport)
        self.predictions = Predictions(self._transport)
        self.reviews = Reviews(self._transport)
        self.jobs = Jobs(self._transport)
        self.exports = Exports(self._transport)
        self.imports = Imports(self._transport)

    @classmethod
    def from_env(cls, **options: Any) -> Client:
        """A client for ``DEFECTLAB_URL`` with the token ``DEFECTLAB_TOKEN``."""
        return cls(
            os.environ.get("DEFECTLAB_URL", ""), os.environ.get("DEFECTLAB_TOKEN"), **options
        )

    def login(self, email: str, password: str) -> User:
        """Sign in with a password: this client then holds a session (cookies and CSRF)."""
        return parse(User, self._transport.login(email, password))

    def logout(self) -> None:
        self._transport.call("POST", "/api/auth/logout/")

    def me(self) -> User:
        """Whom this client acts as."""
        return self.account.me()

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "ENVIRONMENT",
    "Annotation",
    "Answer",
    "ApiError",
    "Client",
    "Detection",
    "DetectionClient",
    "ImageError",
    "ImageResult",
    "Job",
    "JobFailed",
    "Label",
    "ModelInfo",
    "Organization",
    "Prediction",
    "Project",
    "Review",
    "Task",
    "TaskPage",
    "Token",
    "UploadResult",
    "User",
    "box",
    "polygon",
]
