"""Alert rules: one validated shape for rules from the app, from YAML and from the database.

Pure: no SQL (``diffwatch.db.queries.alert_rules`` stores them) and no Streamlit. Durations are
seconds, or strings such as ``90s``, ``15m``, ``2h``, ``1d``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from diffwatch.model.alert_metrics import METRICS, metric

Comparison = Literal[">", ">=", "<", "<="]
Severity = Literal["info", "warning", "critical"]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_S = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> int:
    """Seconds of ``value``: a number of seconds or a string like '15m', '2h', '1d'."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 15m, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f"expected a duration such as 90s, 15m, 2h or 1d, got {value!r}")
        seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    return round(seconds)


CHANNEL_KINDS = ("webhook", "slack", "alertmanager")
MAX_TARGET_CHARS = 2000  # one recipient or channel target, characters
MAX_TARGETS = 50  # recipients and channel targets of one rule


def target_kind(target: str) -> str:
    """'email', or the channel of a 'webhook:URL', 'slack:URL' or 'alertmanager:URL' target."""
    head, sep, _ = target.partition(":")
    return head if sep and head in CHANNEL_KINDS else "email"


def target_url(target: str) -> str:
    """The URL of a channel target (what follows 'kind:')."""
    return target.partition(":")[2]


def redact_target(target: str) -> str:
    """A channel target safe for logs and pages: scheme, host and port only.

    Webhook URLs are secrets (a Slack hook's path is its password), so the path and query
    become '/…'. Email addresses are returned as they are.
    """
    kind = target_kind(target)
    if kind == "email":
        return target
    try:
        parts = urlsplit(target_url(target))
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return f"{kind}:<invalid URL>"
    rest = "/…" if parts.path not in ("", "/") or parts.query or parts.fragment else ""
    return f"{kind}:{parts.scheme}://{host}{port}{rest}"


def check_target(target: str) -> str:
    """``target`` stripped if it is an email address or a valid channel target; else ValueError.

    Channel URLs are untrusted input: http or https only, a host, no user or password in
    them (say so in the error without echoing the URL), no spaces or control characters,
    at most MAX_TARGET_CHARS; an Alertmanager URL is a base URL (no query or fragment).
    """
    target = target.strip()
    if len(target) > MAX_TARGET_CHARS:
        raise ValueError(
            f"a recipient is {len(target)} characters long; the limit is {MAX_TARGET_CHARS}"
        )
    kind = target_kind(target)
    if kind == "email":
        _, email = parseaddr(target)
        if not email or "@" not in email or email != target or ":" in target:
            raise ValueError(
                f"{target!r} is not an email address such as ops@example.com, nor a channel "
                "target such as webhook:https://hooks.example.com/x, slack:https://hooks."
                "slack.com/services/... or alertmanager:http://alertmanager:9093"
            )
        return target
    url = target_url(target)
    shown = redact_target(target)
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise ValueError(f"{shown}: the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"{shown}: not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(
            f"{kind} target: the URL must start with http:// or https:// (got scheme "
            f"{parts.scheme!r})"
        )
    if not parts.hostname:
        raise ValueError(f"{kind} target: the URL has no host, e.g. {kind}:https://host/path")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError(
            f"{shown}: the URL holds a user name or password; diffwatch does not store "
            "credentials in rules: use a secret URL path or a proxy that adds them"
        )
    if kind == "alertmanager" and (parts.query or parts.fragment):
        raise ValueError(
            f"{shown}: an Alertmanager target is its base URL, e.g. "
            "alertmanager:http://alertmanager:9093, without a query or fragment"
        )
    return target


def format_duration(seconds: int) -> str:
    """'15m', '2h', '1d', '90s': the shortest exact form."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class Rule(BaseModel):
    """One alert rule. ``window_s``, ``for_s`` and ``repeat_s`` are seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    id: int | None = None
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    metric: str
    models: tuple[str, ...] = ()
    versions: tuple[str, ...] = ()
    deployments: tuple[str, ...] = ()
    window_s: int = Field(alias="window", gt=0)
    comparison: Comparison
    threshold: float
    for_s: int = Field(default=0, alias="for", ge=0)
    repeat_s: int = Field(default=3600, alias="repeat", ge=0)
    severity: Severity = "warning"
    recipients: tuple[str, ...] = Field(min_length=1)
    alert_on_no_data: bool = False
    enabled: bool = True
    source: str = "app"

    @field_validator("window_s", "for_s", "repeat_s", mode="before")
    @classmethod
    def _duration(cls, v: object) -> int:
        return parse_duration(v)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return v.strip()

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        metric(v)
        return v

    @field_validator("models", "versions", "deployments", "recipients", mode="before")
    @classmethod
    def _list(cls, v: object) -> object:
        if isinstance(v, str):
            v = [s for s in re.split(r"[,\s]+", v) if s]
        return tuple(str(s).strip() for s in v) if isinstance(v, list | tuple) else v

    @field_validator("recipients")
    @classmethod
    def _addresses(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(v) > MAX_TARGETS:
            raise ValueError(f"{len(v)} recipients; a rule may have at most {MAX_TARGETS}")
        return tuple(check_target(t) for t in v)

    @model_validator(mode="after")
    def _scope(self) -> Rule:
        if not METRICS[self.metric].filterable and (
            self.models or self.versions or self.deployments
        ):
            raise ValueError(
                f"metric {self.metric} is measured over the whole GPU fleet; remove the "
                "model, version and deployment filters (or pick a per-request metric)"
            )
        return self

    def breached(self, value: float) -> bool:
        """Whether ``value`` crosses the threshold in the rule's direction."""
        t = self.threshold
        return {
            ">": value > t,
            ">=": value >= t,
            "<": value < t,
            "<=": value <= t,
        }[self.comparison]

    def describe(self) -> str:
        """One line: 'p95 latency > 5,000 ms over 15m for 5m (deployment canary)'."""
        m = METRICS[self.metric]
        scope = ", ".join(
            f"{label} {'/'.join(vals)}"
            for label, vals in (
                ("model", self.models),
                ("version", self.versions),
                ("deployment", self.deployments),
            )
            if vals
        )
        held = f" for {format_duration(self.for_s)}" if self.for_s else ""
        return (
            f"{m.label} {self.comparison} {m.format(self.threshold)} over "
            f"{format_duration(self.window_s)}{held}" + (f" ({scope})" if scope else "")
        )

    def as_row(self) -> dict[str, Any]:
        """Column values for ``alert_rules`` (without id)."""
        d = self.model_dump(exclude={"id"})
        for k in ("models", "versions", "deployments", "recipients"):
            d[k] = list(d[k])
        return d


class RuleFileError(ValueError):
    """A rules file that cannot be loaded, with the file, the rule and the field at fault."""


def _where(path: str, i: int, raw: Mapping[str, Any]) -> str:
    name = raw.get("name") if isinstance(raw, Mapping) else None
    return f"{path}: rule {i + 1}" + (f" ({name!r})" if name else "")


def rules_from_data(data: object, path: str = "<rules>") -> list[Rule]:
    """Validate a parsed rules document: ``{defaults: {...}, rules: [{...}, ...]}``."""
    if not isinstance(data, Mapping) or not isinstance(data.get("rules"), list):
        raise RuleFileError(
            f"{path}: expected a mapping with a 'rules' list, e.g. 'rules: [{{name: ..., "
            "metric: latency_p95_ms, ...}]'"
        )
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise RuleFileError(f"{path}: 'defaults' must be a mapping of rule fields")
    unknown = set(data) - {"defaults", "rules"}
    if unknown:
        raise RuleFileError(
            f"{path}: unknown top-level keys {sorted(unknown)}; use defaults, rules"
        )
    rules, names = [], set()
    for i, raw in enumerate(data["rules"]):
        if not isinstance(raw, Mapping):
            raise RuleFileError(f"{_where(path, i, {})}: expected a mapping of fields")
        try:
            rule = Rule.model_validate({**defaults, **raw, "source": f"yaml:{path}"})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'rule'}: {e['msg']}" for e in exc.errors()
            )
            raise RuleFileError(f"{_where(path, i, raw)}: {problems}") from None
        if rule.name in names:
            raise RuleFileError(f"{_where(path, i, raw)}: the name is used twice in this file")
        names.add(rule.name)
        rules.append(rule)
    return rules


def load_rules_file(path: Path) -> list[Rule]:
    """Read and validate a YAML rules file (see docs/alerts.md for its shape)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise RuleFileError(f"{path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise RuleFileError(f"{path}: not valid YAML: {exc}") from None
    return rules_from_data(data, str(path))


def dump_rules(rules: Sequence[Rule]) -> str:
    """A YAML rules document for ``rules`` (what ``diffwatch alerts export`` prints)."""
    import yaml

    out = []
    for r in rules:
        d: dict[str, Any] = {"name": r.name}
        if r.description:
            d["description"] = r.description
        d["metric"] = r.metric
        for k in ("models", "versions", "deployments"):
            if getattr(r, k):
                d[k] = list(getattr(r, k))
        d |= {
            "window": format_duration(r.window_s),
            "comparison": r.comparison,
            "threshold": r.threshold,
            "for": format_duration(r.for_s),
            "repeat": format_duration(r.repeat_s),
            "severity": r.severity,
            "recipients": list(r.recipients),
        }
        if r.alert_on_no_data:
            d["alert_on_no_data"] = True
        if not r.enabled:
            d["enabled"] = False
        out.append(d)
    return yaml.safe_dump({"rules": out}, sort_keys=False, allow_unicode=True)
