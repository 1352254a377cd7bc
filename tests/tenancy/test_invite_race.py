"""One invite link, many people (or one person many times) accepting it at the same moment: it
makes exactly one member. Runs on SQLite and on PostgreSQL (set DEFECTLAB_DATABASE_URL)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from defectlab.tenancy.models import AuditEvent, Invite, Membership, Role, User
from defectlab.tenancy.services import create_invite
from tests.conftest import client_for, make_tenant

RACERS = 20
PASSWORD = "correct horse battery"


def _race(clients: list[APIClient], body: Callable[[int], dict[str, Any]]) -> list[int]:
    """Every client posts its acceptance at once (a barrier lines them up); their statuses."""
    barrier = threading.Barrier(len(clients), timeout=60)
    statuses: dict[int, int] = {}
    failures: list[BaseException] = []

    def accept(index: int) -> None:
        try:
            barrier.wait()
            response = clients[index].post("/api/invites/accept/", body(index), format="json")
            statuses[index] = response.status_code
        except BaseException as error:  # reported by the main thread
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=accept, args=(index,)) for index in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    return [statuses[index] for index in range(len(clients))]


@pytest.mark.django_db(transaction=True)
def test_twenty_new_accounts_racing_for_one_admin_invite_make_one_admin() -> None:
    t = make_tenant("Race", tasks=1)
    invite, token = create_invite(t.user(Role.OWNER), t.organization, Role.ADMIN)
    admins_before = Membership.objects.filter(organization=t.organization, role=Role.ADMIN).count()

    statuses = _race(
        [APIClient() for _index in range(RACERS)],
        lambda index: {"token": token, "email": f"racer{index}@race.test", "password": PASSWORD},
    )

    assert sorted(statuses) == [201] + [404] * (RACERS - 1)
    joined = Membership.objects.filter(organization=t.organization).exclude(
        user__in=t.members.values()
    )
    assert joined.count() == 1
    winner = joined.get()
    assert winner.role == Role.ADMIN
    assert Membership.objects.filter(organization=t.organization, role=Role.ADMIN).count() == (
        admins_before + 1
    )
    invite.refresh_from_db()
    assert invite.accepted_by == winner.user
    # The losers' sign-ups were rolled back with their refusal: no account without a membership.
    assert User.objects.filter(email__startswith="racer").count() == 1
    assert AuditEvent.objects.filter(action="invite.accepted").count() == 1


@pytest.mark.django_db(transaction=True)
def test_one_account_accepting_one_invite_twenty_times_at_once_joins_once() -> None:
    t = make_tenant("Race", tasks=1)
    other = make_tenant("Elsewhere", tasks=1)
    joiner = other.user(Role.ANNOTATOR)
    invite, token = create_invite(t.user(Role.OWNER), t.organization, Role.ADMIN)

    statuses = _race(
        [client_for(joiner) for _index in range(RACERS)], lambda _index: {"token": token}
    )

    assert sorted(statuses) == [201] + [404] * (RACERS - 1)
    assert Membership.objects.filter(organization=t.organization, user=joiner).count() == 1
    invite.refresh_from_db()
    assert (invite.accepted_by, invite.accepted_at is not None) == (joiner, True)
    assert Invite.objects.filter(organization=t.organization, accepted_at__isnull=True).count() == 0
