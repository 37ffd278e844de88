"""The deployment files hold together (no Docker engine here: static checks only)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _check_deploy():
    spec = importlib.util.spec_from_file_location("check_deploy", ROOT / "deploy/check_deploy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compose_override_and_dockerfile_pass_the_static_checks() -> None:
    cd = _check_deploy()
    problems: list[str] = []
    doc = cd.check_compose(problems)
    cd.check_override(problems)
    cd.check_dockerfile(problems)
    assert problems == []
    assert {"postgres", "migrate", "collector-logs", "collector-gpu", "app"} <= set(doc["services"])


def test_the_checks_catch_a_broken_compose_file(tmp_path, monkeypatch) -> None:
    cd = _check_deploy()
    broken = (ROOT / "compose.yaml").read_text().replace("depends_on:", "depends_onn:", 1)
    (tmp_path / "compose.yaml").write_text(broken)
    for name in ("Dockerfile", "deploy"):
        (tmp_path / name).symlink_to(ROOT / name)
    monkeypatch.setattr(cd, "ROOT", tmp_path)
    problems: list[str] = []
    cd.check_compose(problems)
    assert any("depends_onn" in p for p in problems), problems


def test_every_compose_command_is_a_diffwatch_command() -> None:
    """Each diffwatch service's command exists (compose once ran a 'worker' that did not)."""
    import yaml
    from typer.testing import CliRunner

    from diffwatch.cli import build

    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    checked = []
    for name, svc in services.items():
        cmd = svc.get("command")
        if not cmd or "postgres" in str(svc.get("image", "")) or "dcgm" in name:
            continue
        words = [w for w in cmd if not w.startswith("-") and not w.startswith("$")][:2]
        res = CliRunner().invoke(build(), [*words, "--help"])
        assert res.exit_code == 0, f"{name}: diffwatch {' '.join(words)}: {res.output[-300:]}"
        checked.append(name)
    assert {"migrate", "collector-logs", "app", "worker", "scoring-worker"} <= set(checked)


def test_the_compose_dashboard_listens_on_every_interface_of_its_container() -> None:
    """`diffwatch app` binds 127.0.0.1 unless told otherwise: in a container that would leave
    the published port unanswered. It also needs the public URL for its allowed hosts."""
    import yaml

    from diffwatch.app_defaults import allowed_hosts

    app = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["app"]
    cmd = app["command"]
    assert cmd[cmd.index("--address") + 1] == "0.0.0.0"
    env = app["environment"]
    assert "DIFFWATCH_DASHBOARD_URL" in env and "DIFFWATCH_DATABASE_URL" in env
    hosts = allowed_hosts("https://diffwatch.example.com", "0.0.0.0", ())
    assert "diffwatch.example.com" in hosts and "127.0.0.1" in hosts  # healthcheck's address
