"""``ops.devstack``: how ``manage.py`` run by hand in a fresh shell finds the stack of ``make run``."""

from ops import devstack


def test_a_plain_manage_py_finds_the_running_stack(tmp_path):
    """``ops.devstack``: development mode from the marker, the endpoint from stack.env."""
    env = {"ALLEYCAT_VAR_DIR": str(tmp_path)}
    assert devstack.apply(env) == "production" and "DJANGO_DEBUG" not in env  # no marker: a deploy
    devstack.stack_env_write(tmp_path, {"AWS_ENDPOINT_URL": "http://127.0.0.1:4999", "AWS_ACCESS_KEY_ID": "k"})
    assert (tmp_path / "stack.env").stat().st_mode & 0o777 == 0o600
    env = {"ALLEYCAT_VAR_DIR": str(tmp_path)}
    assert devstack.apply(env) == "development, running stack"
    assert env["DJANGO_DEBUG"] == "1" and env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4999"
    env = {"ALLEYCAT_VAR_DIR": str(tmp_path), "AWS_ENDPOINT_URL": "http://localstack:4566"}
    devstack.apply(env)
    assert env["AWS_ENDPOINT_URL"] == "http://localstack:4566" and "AWS_ACCESS_KEY_ID" not in env
    env = {"ALLEYCAT_VAR_DIR": str(tmp_path), "DJANGO_DEBUG": "0"}
    assert devstack.apply(env) == "production" and "AWS_ENDPOINT_URL" not in env
    (tmp_path / "stack.env").unlink()  # the stack stopped: the embedded address, never real AWS
    env = {"ALLEYCAT_VAR_DIR": str(tmp_path)}
    assert devstack.apply(env) == "development, embedded endpoint defaults"
    assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
