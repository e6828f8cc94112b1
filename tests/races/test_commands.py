"""seed_demo and ensure_staff: first run only, credentials kept once."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from races.models import Race, RaceClass, Racer, RaceSchedule

pytestmark = pytest.mark.django_db


def test_seed_demo_once(settings):
    call_command("seed_demo")
    assert RaceClass.objects.count() == 6
    assert Racer.objects.count() == 150
    names = list(Racer.objects.values_list("name", flat=True))
    assert len(set(names)) == 150 and not any(char.isdigit() for name in names for char in name)
    assert RaceSchedule.objects.filter(enabled=True).count() == 6
    assert Race.objects.filter(status="active").count() == 6
    call_command("seed_demo")
    assert RaceClass.objects.count() == 6
    assert RaceSchedule.objects.count() == 6
    assert list(Racer.objects.values_list("name", flat=True)) == names  # seeded: the same names every time


def test_ensure_staff_generates_and_keeps_credentials(settings, tmp_path, monkeypatch, capsys):
    settings.VAR_DIR = tmp_path
    monkeypatch.delenv("ALLEYCAT_ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv("ALLEYCAT_ADMIN_USERNAME", raising=False)
    call_command("ensure_staff")
    stored = (tmp_path / "admin-credentials.txt").read_text()
    password = stored.split("password: ")[1].strip()
    user = get_user_model().objects.get(username="admin")
    assert user.is_staff and user.check_password(password)
    assert (tmp_path / "admin-credentials.txt").stat().st_mode & 0o777 == 0o600
    call_command("ensure_staff")
    assert get_user_model().objects.count() == 1
    assert password not in capsys.readouterr().out.split("exists")[-1]


def test_ensure_staff_from_environment(settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path
    monkeypatch.setenv("ALLEYCAT_ADMIN_USERNAME", "boss")
    monkeypatch.setenv("ALLEYCAT_ADMIN_PASSWORD", "a-long-password-1")
    call_command("ensure_staff")
    assert get_user_model().objects.get(username="boss").check_password("a-long-password-1")
    assert not (tmp_path / "admin-credentials.txt").exists()
