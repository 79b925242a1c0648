"""The config file: discovery, `${VAR}` interpolation, validation and the broker factory.

Every problem is a ConfigError (exit 4) naming the key's path, e.g.
``brokers.order.queue_ur: unknown key``; secrets found on the way are registered for redaction.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import redact
from .errors import ConfigError, Problem, UsageError

DEFAULT_LOCAL = {"type": "local"}
TOP_LEVEL_KEYS = ("default_broker", "brokers", "serve")
_VARIABLE = re.compile(r"\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class Config:
    """The brokers of one config file.

    Each broker's settings are validated (its pydantic model built, its module imported) when a
    command first uses that broker, not when the file loads: `wfbus emit -b local` never pays for
    the Kafka, SQS and RabbitMQ models of the same file.  What needs no model is still checked for
    every broker at load time: the shape of the file, `${VAR}` interpolation and that
    each type exists.
    """

    raw_brokers: dict[str, dict[str, Any]]  # name -> interpolated settings, not yet validated
    default_broker: str | None
    source: Path | None  # None: the built-in default
    base_dir: Path = field(default_factory=Path.cwd)
    warnings: list[str] = field(default_factory=list)  # about the file as a whole
    on_warning: Callable[[str], None] | None = None
    _label: str = "built-in config"
    _settings: dict[str, Any] = field(
        default_factory=dict
    )  # name -> BrokerSettings, validated once
    # name -> "path: environment variable X is not set" for each unset ${VAR} of that broker: an
    # error only when a command uses that broker, and then all of them at once
    _unset: dict[str, list[Problem]] = field(default_factory=dict)
    _uninterpolated: dict[str, Any] = field(
        default_factory=dict
    )  # name -> the body as written in the file
    _warnings: dict[str, list[str]] = field(default_factory=dict)  # said when that broker is opened
    serve: Any = (
        None  # the `serve:` mapping as written (interpolated); validated by wfbus.serve.settings
    )

    @property
    def brokers(self) -> Mapping[str, Any]:
        """name -> BrokerSettings; a broker is validated when its settings are first looked up."""
        return _Brokers(self)

    @property
    def broker_warnings(self) -> dict[str, list[str]]:
        """Risky settings of every broker (validates them all: for the overview of `wfbus brokers`)."""
        for name in self.raw_brokers:
            self.settings(name)
        return self._warnings

    def warnings_for(self, name: str) -> list[str]:
        """Risky settings of one broker (validating it)."""
        self.settings(name)
        return self._warnings.get(name, [])

    def settings(self, name: str) -> Any:
        """The validated settings of one broker (a ConfigError naming the key if invalid)."""
        found = self._settings.get(name)
        if found is None:
            from .brokers import broker_class

            unset = self._unset.get(name)
            if unset:
                names = sorted({line.rsplit(" variable ", 1)[1].split()[0] for line in unset})
                raise ConfigError(
                    problems=[line.at(self._label) for line in unset],
                    hint=f"export {' '.join(n + '=...' for n in names)}, or write ${{VAR:-default}} "
                    "in the config",
                )
            body = self.raw_brokers[name]
            path = f"brokers.{name}"
            cls = broker_class(body["type"], where=f"{self._label}: {path}.type")
            found = self._settings[name] = _validate(
                cls.settings_model, body, path, self._label, self.base_dir
            )
            for secret in found.secret_values():
                redact.register(secret)
            self._warnings[name] = found.warnings()
        return found

    def resolve_name(self, name: str | None) -> str:
        """The broker a command uses: the one named, else default_broker, else the only one."""
        if name is None:
            if self.default_broker:
                return self.default_broker
            if len(self.raw_brokers) == 1:
                return next(iter(self.raw_brokers))
            raise UsageError(
                "no broker named and the config sets no default_broker",
                hint=f"pass --broker NAME (configured: {', '.join(self.raw_brokers)}) or set default_broker",
            )
        if name not in self.raw_brokers:
            close = difflib.get_close_matches(name, list(self.raw_brokers), n=1)
            suggestion = f"did you mean {close[0]!r}? " if close else ""
            raise UsageError(
                f"unknown broker {name!r}",
                hint=f"{suggestion}configured brokers: {', '.join(self.raw_brokers)} "
                f"(from {self.source or 'the built-in default'}; `wfbus brokers` lists them)",
            )
        return name

    def open(self, name: str | None):  # -> Broker (imported lazily to keep start-up lean)
        from .brokers import broker_class

        resolved = self.resolve_name(name)
        settings = self.settings(resolved)
        if self.on_warning is not None:
            for warning in self._warnings.pop(
                resolved, ()
            ):  # once per run, only for brokers in use
                self.on_warning(f"brokers.{resolved}: {warning}")
        return broker_class(settings.type)(resolved, settings, self.base_dir)


class _Brokers(Mapping):
    """A read-only view of Config's brokers that validates each one on first access."""

    def __init__(self, config: Config) -> None:
        self._config = config

    def __getitem__(self, name: str) -> Any:
        if name not in self._config.raw_brokers:
            raise KeyError(name)
        return self._config.settings(name)

    def __iter__(self):
        return iter(self._config.raw_brokers)

    def __len__(self) -> int:
        return len(self._config.raw_brokers)


def discover(explicit: str | None) -> Path | None:
    """--config, else $WFBUS_CONFIG, else ./wfbus.yaml, else $XDG_CONFIG_HOME/wfbus/config.yaml."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("WFBUS_CONFIG")
    if env:
        return Path(env)
    local = Path("wfbus.yaml")
    if local.is_file():
        return local
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    user = Path(xdg) / "wfbus" / "config.yaml"
    return user if user.is_file() else None


def load(explicit: str | None = None) -> Config:
    redact.register_environment()
    path = discover(explicit)
    if path is None:
        return _build(
            {"default_broker": "local", "brokers": {"local": dict(DEFAULT_LOCAL)}}, None, Path.cwd()
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found",
            hint="check the path given by --config / $WFBUS_CONFIG (see config.example.yaml)",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    raw = parse_yaml(text, str(path))
    if raw is None:
        raise ConfigError(
            f"{path}: config file is empty", hint="define `brokers:` (see config.example.yaml)"
        )
    config = _build(raw, path, path.resolve().parent)
    config.warnings.extend(_clear_secret_warnings(config, path, text))
    return config


def _clear_secret_warnings(config: Config, path: Path, text: str) -> list[str]:
    """A secret written in clear in a file others can read deserves a word (ssh does the same)."""
    try:
        readable_by_others = path.stat().st_mode & 0o044
    except OSError:
        return []
    if not readable_by_others:
        return []  # the usual case costs nothing: no broker's model is built to look for secrets
    clear = [name for name in config.raw_brokers if _secret_written_in_clear(config, name)]
    if not clear:
        return []
    return [
        f"{path} holds secrets in clear (brokers: {', '.join(clear)}) and is readable by other users: "
        f"`chmod 600 {path}`, or write them as ${{VAR}} and keep them in the environment"
    ]


def _secret_written_in_clear(config: Config, name: str) -> bool:
    """A secret setting whose value is written in the file itself; one taken from ${VAR} is not, even
    when its value also appears elsewhere in the file (a password equal to the user name)."""
    from .brokers import broker_class

    body = config._uninterpolated.get(name)
    if not isinstance(body, Mapping) or not isinstance(body.get("type"), str):
        return False
    try:
        as_written = broker_class(body["type"]).settings_model.model_validate(dict(body))
    except Exception:  # noqa: BLE001 - the file as written need not validate (a ${PORT} in an int field)
        return False
    return any(secret and "${" not in secret for secret in as_written.secret_values())


def parse_yaml(text: str, label: str) -> Any:
    import yaml

    from ._yaml import StrictLoader

    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - StrictLoader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{label}:{mark.line + 1}:{mark.column + 1}" if mark else label
        raise ConfigError(
            problems=[Problem(where, None, f"invalid YAML: {exc.problem}")],
            hint="fix the YAML syntax at that line",
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label}: invalid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{label}: invalid YAML: nested too deeply") from None


def _build(raw: Any, source: Path | None, base_dir: Path) -> Config:
    label = str(source) if source else "built-in config"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{label}: the config must be a mapping with `brokers:`")
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            reason = f"unknown key{_did_you_mean(str(key), TOP_LEVEL_KEYS)}"
            raise ConfigError(problems=[Problem(label, str(key), reason)])
    brokers_raw = raw.get("brokers")
    if not isinstance(brokers_raw, Mapping) or not brokers_raw:
        raise ConfigError(
            problems=[Problem(label, "brokers", "must be a mapping of broker names to settings")]
        )
    from .brokers import check_type

    brokers: dict[str, dict[str, Any]] = {}
    unset: dict[str, list[Problem]] = {}
    for name, body in brokers_raw.items():
        path = f"brokers.{name}"
        if not isinstance(name, str) or not name:
            raise ConfigError(
                problems=[Problem(label, path, "broker names must be non-empty strings")]
            )
        if not isinstance(body, Mapping):
            raise ConfigError(
                problems=[Problem(label, path, "must be a mapping with at least `type:`")]
            )
        missing: list[Problem] = []
        body = interpolate(body, path, label, missing)
        if missing:
            if any(line.startswith(f"{path}.type:") for line in missing):
                raise ConfigError(
                    problems=[missing[0].at(label)],
                    hint="the broker type cannot come from an unset variable",
                )
            unset[name] = missing
        type_name = body.get("type")
        if not isinstance(type_name, str):
            raise ConfigError(
                problems=[
                    Problem(
                        label,
                        f"{path}.type",
                        "required (local, sqs, kafka, rabbitmq or a plugin type)",
                    )
                ]
            )
        check_type(
            type_name, where=f"{label}: {path}.type"
        )  # a typo is said now, whichever broker is used
        brokers[name] = body
    default = raw.get("default_broker")
    if default is not None:
        default = interpolate(default, "default_broker", label)
        if default not in brokers:
            raise ConfigError(
                problems=[
                    Problem(label, "default_broker", f"{default!r} is not a configured broker")
                ],
                hint=f"use one of: {', '.join(brokers)}",
            )
    serve = interpolate(raw["serve"], "serve", label) if raw.get("serve") is not None else None
    return Config(
        raw_brokers=brokers,
        default_broker=default,
        source=source,
        base_dir=base_dir,
        _label=label,
        _unset=unset,
        _uninterpolated={n: b for n, b in brokers_raw.items() if isinstance(n, str)},
        serve=serve,
    )


def _validate(
    model: Any, body: Mapping[str, Any], path: str, label: str, base_dir: Path | None = None
) -> Any:
    """The settings model of one broker; `base_dir` (the config file's folder, which relative paths
    are relative to) is given as validation context for settings that name files."""
    from pydantic import ValidationError

    try:
        return model.model_validate(dict(body), context={"base_dir": base_dir})
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join([path, *(str(p) for p in error["loc"])])
            if error["type"] == "extra_forbidden":
                field_name = str(error["loc"][-1])
                message = "unknown key" + _did_you_mean(field_name, list(model.model_fields))
            elif error["type"] == "missing":
                message = "required"
            else:
                message = error["msg"]
            lines.append(Problem(label, where, redact.redact(message)))
        raise ConfigError(
            problems=lines, hint="see config.example.yaml for every key of each broker type"
        ) from None


def _did_you_mean(word: str, options: Any) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def interpolate(value: Any, path: str, label: str, missing: list[Problem] | None = None) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string; $${VAR} is a literal ${VAR}.

    With `missing`, an unset variable is noted there (and left as written) instead of raised, so the
    caller can say every one at once, and only for the brokers a command uses.
    """
    if isinstance(value, str):
        return _interpolate_string(value, path, label, missing)
    if isinstance(value, Mapping):
        return {k: interpolate(v, f"{path}.{k}", label, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, f"{path}[{i}]", label, missing) for i, v in enumerate(value)]
    return value


def _interpolate_string(
    text: str, path: str, label: str, missing: list[Problem] | None = None
) -> str:
    def substitute(match: re.Match[str]) -> str:
        escaped, name, default = match.groups()
        if escaped:
            return match.group(0)[1:]
        value = os.environ.get(name)
        if value is None:
            if default is not None:
                return default
            if missing is not None:
                missing.append(Problem(None, path, f"environment variable {name} is not set"))
                return match.group(0)
            raise ConfigError(
                problems=[Problem(label, path, f"environment variable {name} is not set")],
                hint=f"export {name}=... or write ${{{name}:-default}} in the config",
            )
        return value

    return _VARIABLE.sub(substitute, text)
