"""Waiting for jobs with the SDK against a live server: a job that does not end in time raises
TimeoutError (the server's long poll answering while it still runs); one that failed raises
JobFailed with its error; and revoking a token ends what it can do."""

from __future__ import annotations

import pytest

from defectlab.client import ApiError, Client, JobFailed
from defectlab.jobs.models import Job, JobState
from defectlab.tenancy.models import Organization
from tests.client.conftest import Server
from tests.client.test_roundtrip import signed_in


def test_wait_gives_up_at_its_timeout_and_says_why_a_job_failed(server: Server) -> None:
    with signed_in(server) as client:
        organization = Organization.objects.get(pk=client.organizations.create("Acme").id)
        # Rows only, no queue message: the first stays queued for as long as the test waits.
        waiting = Job.objects.create(organization=organization, kind="export")
        failed = Job.objects.create(
            organization=organization, kind="export", state=JobState.FAILED, error="Disk full."
        )
        with pytest.raises(TimeoutError, match=f"Job {waiting.pk} is still queued"):
            client.jobs.wait(waiting.pk, timeout=1)
        assert client.jobs.get(waiting.pk, wait=1).state == "queued"
        with pytest.raises(JobFailed) as error:
            client.jobs.wait(failed.pk)
        assert error.value.job.state == "failed" and error.value.message == "Disk full."
        assert isinstance(error.value, ApiError) and error.value.code == "job_failed"
        assert client.jobs.wait(failed.pk, check=False).error == "Disk full."
        assert [job.id for job in client.jobs.list(organization=organization.pk)] == [
            failed.pk,
            waiting.pk,
        ]


def test_a_revoked_token_stops_working(server: Server) -> None:
    with Client(server.url) as session:
        session.login(server.email, server.password)
        token = session.tokens.create("short-lived")
        assert token.key is not None
        assert [t.name for t in session.tokens.list()] == ["short-lived"]
        with Client(server.url, token.key) as script:
            assert script.me().email == server.email
            session.tokens.delete(token)
            with pytest.raises(ApiError) as refused:
                script.me()
        assert refused.value.status == 401
        assert session.tokens.list() == []
