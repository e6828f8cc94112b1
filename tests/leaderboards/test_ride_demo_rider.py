"""ensure_demo_rider: the demo account that may ride as racer 1."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate as django_authenticate
from django.core.management import call_command
from django.test import RequestFactory

from races.models import Racer

pytestmark = pytest.mark.django_db


def authenticate(**credentials):
    # Login throttling (django-axes) counts attempts per request: authenticate() needs one, as a login view has.
    return django_authenticate(RequestFactory().post("/accounts/login/"), **credentials)


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


def test_generated_password_is_kept_and_works(var_dir, monkeypatch):
    monkeypatch.delenv("ALLEYCAT_RIDER_PASSWORD", raising=False)
    Racer.objects.create(racer_id=1, name="Ada Pedal")
    call_command("ensure_demo_rider")
    credentials = (var_dir / "rider-credentials.txt").read_text().splitlines()
    password = credentials[1].removeprefix("password: ")
    assert credentials[0] == "username: rider"
    assert oct((var_dir / "rider-credentials.txt").stat().st_mode & 0o777) == "0o600"
    user = authenticate(username="rider", password=password)
    assert user is not None and user.racer.racer_id == 1
    call_command("ensure_demo_rider")  # idempotent: same account, same password
    assert authenticate(username="rider", password=password) == user


def test_password_from_environment(var_dir, monkeypatch):
    monkeypatch.setenv("ALLEYCAT_RIDER_PASSWORD", "a-long-demo-password")
    Racer.objects.create(racer_id=1, name="Ada Pedal")
    call_command("ensure_demo_rider")
    assert authenticate(username="rider", password="a-long-demo-password").racer.pk == 1
    assert not (var_dir / "rider-credentials.txt").exists()


def test_without_racer_one_nothing_is_created(var_dir):
    call_command("ensure_demo_rider")
    assert not Racer.objects.exists()
    assert authenticate(username="rider", password="anything") is None
