"""Static checks of Dockerfile, compose.yaml and the override file, for machines with no Docker.

    .venv/bin/python deploy/check_deploy.py      # exit 0 and "ok" lines, or the problems

It does not replace ``docker compose config`` or a build: it checks what this project
relies on (keys Compose knows, dependency conditions, the database URL after variable
substitution, a non-root user and the ``diffwatch`` entrypoint in both image targets).
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]

# Service keys of the Compose Specification (compose-spec schema, 2025).
SERVICE_KEYS = set(
    """annotations attach blkio_config build cap_add cap_drop cgroup cgroup_parent command
    configs container_name cpu_count cpu_percent cpu_period cpu_quota cpu_rt_period
    cpu_rt_runtime cpu_shares cpus cpuset credential_spec depends_on deploy develop
    device_cgroup_rules devices dns dns_opt dns_search domainname entrypoint env_file
    environment expose extends external_links extra_hosts gpus group_add healthcheck hostname
    image init ipc isolation label_file labels links logging mac_address mem_limit
    mem_reservation mem_swappiness memswap_limit models network_mode networks
    oom_kill_disable oom_score_adj pid pids_limit platform ports post_start pre_stop
    privileged profiles provider pull_policy pull_refresh_after read_only restart runtime
    scale secrets security_opt shm_size stdin_open stop_grace_period stop_signal storage_opt
    sysctls tmpfs tty ulimits use_api_socket user userns_mode uts volumes volumes_from
    working_dir""".split()  # noqa: SIM905 (a word list reads better here)
)
TOP_KEYS = {"version", "name", "include", "services", "models", "networks", "volumes",
            "secrets", "configs"}  # fmt: skip
HEALTHCHECK_KEYS = {"disable", "interval", "retries", "test", "timeout", "start_period",
                    "start_interval"}  # fmt: skip
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
# Innermost ${...} only (no "${" inside): nested defaults resolve from the inside out.
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])((?:[^{}$]|\$(?!\{))*))?\}")


class Loader(yaml.SafeLoader):
    """YAML loader that also reads Compose's ``!reset`` and ``!override`` tags."""


def _tagged(loader: Loader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return {"__tag__": node.tag, **loader.construct_mapping(node, deep=True)}
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


for _tag in ("!reset", "!override"):
    Loader.add_constructor(_tag, _tagged)


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose-style ``${VAR}``, ``${VAR:-default}`` and ``${VAR-default}``, nested."""
    for _ in range(10):  # innermost first, until nothing is left
        new = _VAR.sub(lambda m: _one(m, env), text)
        if new == text:
            return new.replace("$$", "$")
        text = new
    raise ValueError(f"variables nested too deep in {text!r}")


def _one(m: re.Match[str], env: dict[str, str]) -> str:
    name, op, arg = m.group(1), m.group(2), m.group(3)
    value = env.get(name)
    if op == ":-":
        return value if value else arg
    if op == "-":
        return value if value is not None else arg
    if op in (":?", "?") and not value:
        raise ValueError(f"{name} is required: {arg}")
    return value or ""


def check_compose(problems: list[str]) -> dict[str, Any]:
    """Check compose.yaml; returns the loaded document."""
    doc = yaml.load((ROOT / "compose.yaml").read_text(), Loader=Loader)
    for key in doc:
        if key not in TOP_KEYS and not key.startswith("x-"):
            problems.append(f"compose.yaml: unknown top-level key {key!r}")
    services: dict[str, Any] = doc["services"]
    volumes = set(doc.get("volumes") or {})
    for name, svc in services.items():
        for key in svc:
            if key not in SERVICE_KEYS and not key.startswith("x-"):
                problems.append(f"compose.yaml: service {name}: unknown key {key!r}")
        if "image" not in svc and "build" not in svc:
            problems.append(f"compose.yaml: service {name} has neither image nor build")
        for dep, cond in (svc.get("depends_on") or {}).items():
            if dep not in services:
                problems.append(f"compose.yaml: {name} depends on unknown service {dep}")
            if cond.get("condition") not in CONDITIONS:
                problems.append(f"compose.yaml: {name} -> {dep}: bad condition {cond}")
            if cond.get("condition") == "service_healthy" and "healthcheck" not in services[dep]:
                problems.append(f"compose.yaml: {name} waits for {dep} healthy; it has no check")
        for hc_key in svc.get("healthcheck") or {}:
            if hc_key not in HEALTHCHECK_KEYS:
                problems.append(f"compose.yaml: {name}: unknown healthcheck key {hc_key!r}")
        for vol in svc.get("volumes") or []:
            source = vol.split(":")[0]
            if not source.startswith(("/", ".", "$")) and source not in volumes:
                problems.append(f"compose.yaml: {name} mounts undeclared volume {source!r}")
        if not isinstance(svc.get("command", []), list):
            problems.append(f"compose.yaml: {name}: use the exec (list) form for command")
    expected = {
        "postgres": None,
        "migrate": ("postgres", "service_healthy"),
        "collector-logs": ("migrate", "service_completed_successfully"),
        "collector-gpu": ("migrate", "service_completed_successfully"),
        "app": ("migrate", "service_completed_successfully"),
    }
    for name, dep in expected.items():
        if name not in services:
            problems.append(f"compose.yaml: service {name} is missing")
        elif (
            dep and services[name].get("depends_on", {}).get(dep[0], {}).get("condition") != dep[1]
        ):
            problems.append(f"compose.yaml: {name} must wait for {dep[0]} ({dep[1]})")
    url = interpolate(services["app"]["environment"]["DIFFWATCH_DATABASE_URL"], {})
    if url != "postgresql+psycopg://diffwatch:diffwatch@postgres:5432/diffwatch":
        problems.append(f"compose.yaml: default DIFFWATCH_DATABASE_URL is {url!r}")
    ext = interpolate(
        services["app"]["environment"]["DIFFWATCH_DATABASE_URL"],
        {"DIFFWATCH_DATABASE_URL": "postgresql+psycopg://u:p@db:5432/x"},
    )
    if ext != "postgresql+psycopg://u:p@db:5432/x":
        problems.append("compose.yaml: DIFFWATCH_DATABASE_URL from .env does not win")
    logs = services["collector-logs"]
    if not any(str(v).endswith(":/logs:ro") for v in logs.get("volumes", [])):
        problems.append("compose.yaml: collector-logs must mount /logs read-only")
    return doc


def check_override(problems: list[str]) -> None:
    """Check deploy/compose.external-db.yaml against compose.yaml's services."""
    over = yaml.load((ROOT / "deploy/compose.external-db.yaml").read_text(), Loader=Loader)
    reset = over["services"]["migrate"]["depends_on"]
    if reset.get("__tag__") != "!reset":
        problems.append("compose.external-db.yaml: migrate.depends_on must be !reset")
    if not over["services"]["postgres"].get("profiles"):
        problems.append("compose.external-db.yaml: postgres must be moved to a profile")


def dockerfile_stages(text: str) -> dict[str, list[tuple[str, str]]]:
    """Instructions of each named stage: {stage: [(INSTRUCTION, arguments), ...]}."""
    joined = re.sub(r"\\\n", " ", text)
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, args = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else parts[0]
            current = stages.setdefault(name, [])
        if current is not None:
            current.append((instr, args.strip()))
    return stages


def check_dockerfile(problems: list[str]) -> None:
    """Check both image targets: non-root user, volume, entrypoint; COPY --from stages."""
    stages = dockerfile_stages((ROOT / "Dockerfile").read_text())
    for target in ("app", "scoring"):
        if target not in stages:
            problems.append(f"Dockerfile: target {target!r} is missing")
            continue
        ins = stages[target]
        users = [a for i, a in ins if i == "USER"]
        if not users or users[-1].split(":")[0] in ("root", "0"):
            problems.append(f"Dockerfile: {target} must end as a non-root USER")
        entry = [a for i, a in ins if i == "ENTRYPOINT"]
        if not entry or json.loads(entry[-1]) != ["diffwatch"]:
            problems.append(f'Dockerfile: {target} ENTRYPOINT must be ["diffwatch"]')
        if not any(i == "VOLUME" and "/var/lib/diffwatch" in a for i, a in ins):
            problems.append(f"Dockerfile: {target} must declare the DIFFWATCH_HOME volume")
        if not any(i == "ENV" and "DIFFWATCH_HOME=" in a for i, a in ins):
            problems.append(f"Dockerfile: {target} must set DIFFWATCH_HOME")
    for name, ins in stages.items():
        for instr, args in ins:
            if instr == "COPY" and "--from=" in args:
                src = shlex.split(args)[0].split("=", 1)[1]
                if src not in stages:
                    problems.append(f"Dockerfile: {name} copies from unknown stage {src!r}")
    app_build = " ".join(a for i, a in stages.get("app-build", []) if i == "RUN")
    if "scoring" in app_build or "[all]" in app_build:
        problems.append("Dockerfile: the app image must install .[app] only (no torch)")


def main() -> int:
    """Run every check; print the problems (exit 1) or what was checked (exit 0)."""
    problems: list[str] = []
    doc = check_compose(problems)
    check_override(problems)
    check_dockerfile(problems)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print(f"ok compose.yaml: services {', '.join(doc['services'])}")
    print("ok deploy/compose.external-db.yaml")
    print("ok Dockerfile: targets app and scoring")
    return 0


if __name__ == "__main__":
    sys.exit(main())
