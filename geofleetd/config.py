"""Server configuration: defaults, a TOML file, command-line overrides, CONFIG SET.

Precedence: built-in defaults < ``--config FILE`` (TOML, keys as below, in a
``[server]`` table or at top level) < command-line flags < ``CONFIG SET`` at run time.
``CONFIG REWRITE`` writes the current values back to the file given at start (or
``<dir>/geofleetd.toml`` when none was given).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from geofleetd.errors import GeofleetError

FSYNC_POLICIES = ("always", "everysec", "no")


@dataclass
class Config:
    host: str = "127.0.0.1"
    port: int = 9851
    dir: str = "./data"
    fsync: str = "always"
    max_request_bytes: int = 32 * 1024 * 1024
    max_clients: int = 10000
    map_size_max: int = 64 * 2**30
    compact_ratio: float = 4.0
    compact_min_records: int = 100_000
    subscriber_queue_bytes: int = 8 * 1024 * 1024
    cell_deg: float = 0.01
    log_level: str = "info"
    read_only: bool = False
    requirepass: str = ""
    keepalive: int = 300
    config_file: str = ""

    def validate(self) -> None:
        if self.fsync not in FSYNC_POLICIES:
            raise GeofleetError(f"invalid fsync policy '{self.fsync}'")
        if not 0 <= self.port <= 65535:
            raise GeofleetError(f"invalid port {self.port}")
        if self.max_request_bytes < 1024:
            raise GeofleetError("max_request_bytes must be at least 1024")
        if self.cell_deg <= 0:
            raise GeofleetError("cell_deg must be positive")
        if self.max_clients < 1:
            raise GeofleetError("max_clients must be at least 1")
        if self.subscriber_queue_bytes < 1024:
            raise GeofleetError("subscriber_queue_bytes must be at least 1024")

    # -- files -------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | None, overrides: dict[str, Any]) -> Config:
        cfg = cls()
        if path:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
            table = data.get("server", data)
            cfg.update(table)
            cfg.config_file = path
        cfg.update({k: v for k, v in overrides.items() if v is not None})
        cfg.validate()
        return cfg

    def update(self, values: dict[str, Any]) -> None:
        known = {f.name: f for f in fields(self)}
        for name, value in values.items():
            key = name.replace("-", "_")
            if key not in known:
                raise GeofleetError(f"unknown config property '{name}'")
            setattr(self, key, _coerce(getattr(self, key), value, name))

    def get_matching(self, pattern: str) -> dict[str, str]:
        from geofleetd.store.collection import glob_match

        out = {}
        for name, value in asdict(self).items():
            prop = name.replace("_", "-")
            if glob_match(pattern, prop) or glob_match(pattern, name):
                out[prop] = _text(value)
        return out

    def set_runtime(self, name: str, value: str) -> None:
        key = name.replace("-", "_")
        if key in ("host", "port", "dir", "config_file"):
            raise GeofleetError(f"config property '{name}' cannot change at run time")
        before = asdict(self)
        self.update({key: value})
        try:
            self.validate()
        except GeofleetError:
            self.update(before)
            raise

    def rewrite(self) -> None:
        """Write the current values back, keeping the file's comments and layout:
        a ``key = value`` line whose value changed is replaced in place (its
        trailing comment kept); keys the file lacks are appended to ``[server]``.
        Values equal to the file's (or, for absent keys, to the defaults) and the
        start-up-only keys (host, port, dir) are left as the file has them."""
        path = Path(self.config_file or Path(self.dir) / "geofleetd.toml")
        old_text = path.read_text() if path.exists() else ""
        current = {k: v for k, v in asdict(self).items() if k not in _STARTUP_ONLY}
        defaults = asdict(Config())
        try:
            data = tomllib.loads(old_text) if old_text else {}
        except tomllib.TOMLDecodeError as exc:
            raise GeofleetError(f"cannot rewrite {path}: {exc}") from None
        in_file = data.get("server", data)
        lines = old_text.splitlines()
        done: set[str] = set()
        for i, line in enumerate(lines):
            m = _KEY_LINE.match(line)
            if m is None or m.group(2) not in current:
                continue
            key = m.group(2)
            done.add(key)
            if in_file.get(key) != current[key]:
                lines[i] = (
                    f"{m.group(1)}{key} = {_toml(current[key])}{m.group(3) or ''}"
                )
        missing = [k for k, v in current.items() if k not in done and v != defaults[k]]
        if missing:
            if not any(line.strip() == "[server]" for line in lines):
                lines.append("[server]")
            lines.extend(f"{k} = {_toml(current[k])}" for k in missing)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(path)


_STARTUP_ONLY = frozenset({"host", "port", "dir", "config_file"})
_KEY_LINE = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*)\s*=\s*[^#]*?(\s+#.*)?$")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _coerce(current: Any, value: Any, name: str) -> Any:
    try:
        if isinstance(current, bool):
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text not in ("yes", "no", "true", "false", "1", "0"):
                raise ValueError(text)
            return text in ("yes", "true", "1")
        if isinstance(current, int):
            return int(value)
        if isinstance(current, float):
            return float(value)
        return str(value)
    except ValueError:
        raise GeofleetError(f"invalid value '{value}' for '{name}'") from None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
