"""Login throttling (django-axes): the site's login and the admin's, per client address."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db

LOGIN_URLS = ["/accounts/login/", "/admin/login/"]


@pytest.fixture
def staff():
    return get_user_model().objects.create_superuser(username="boss", email="", password="right-horse-battery")


def _login(client: Client, url: str, password: str, **headers):
    return client.post(url, {"username": "boss", "password": password}, headers=headers)


@pytest.mark.parametrize("url", LOGIN_URLS)
def test_five_wrong_passwords_lock_the_address_out(staff, url, settings):
    attacker = Client(REMOTE_ADDR="203.0.113.5")
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        # a made-up X-Forwarded-For each time: it must not count as another client
        response = _login(attacker, url, f"guess-{attempt}", x_forwarded_for=f"10.0.0.{attempt}")
        assert response.status_code == 200  # the form again, with its error
    locked = _login(attacker, url, "guess-last")
    assert locked.status_code == 429
    assert "Too many login attempts" in locked.content.decode()
    # Locked out: even the right password is refused from this address...
    assert _login(attacker, url, "right-horse-battery").status_code == 429
    assert "_auth_user_id" not in attacker.session
    # ... while another address logs in.
    other = Client(REMOTE_ADDR="198.51.100.8")
    assert _login(other, url, "right-horse-battery").status_code == 302
    assert other.session["_auth_user_id"] == str(staff.pk)


def test_a_successful_login_resets_the_count(staff, settings):
    client = Client(REMOTE_ADDR="203.0.113.6")
    for _ in range(2):
        for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
            assert _login(client, "/accounts/login/", f"guess-{attempt}").status_code == 200
        assert _login(client, "/accounts/login/", "right-horse-battery").status_code == 302
        client.logout()
