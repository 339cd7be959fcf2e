"""Reading smbfs's unit files the way systemd does, for the tests: sections,
repeated keys, ``${VAR}`` expansion in command lines, EnvironmentFile parsing.

Only what the units in systemd/ use: enough to run smbfs@.service's exact
ExecStart outside systemd.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

SYSTEMD_DIR = Path(__file__).resolve().parents[2] / "systemd"


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> values (a key may repeat, as Environment= does)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path}: key outside a section: {line}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def parse_environment_file(text: str) -> dict[str, str]:
    """systemd.exec(5) EnvironmentFile=: KEY=value lines, '#'/';' comments,
    optional double or single quotes around the value."""
    env: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def expand_command(line: str, env: dict[str, str], instance: str) -> list[str]:
    """An Exec*= line as argv: '-' prefix dropped, %i/%I replaced, ``${VAR}``
    one word (systemd never splits it), ``$VAR`` split on whitespace."""
    line = line.lstrip("-@:+!")
    line = line.replace("%i", instance).replace("%I", instance)
    argv: list[str] = []
    for word in shlex.split(line):
        m = re.fullmatch(r"\$\{(\w+)\}", word)
        if m:
            argv.append(env.get(m.group(1), ""))
            continue
        m = re.fullmatch(r"\$(\w+)", word)
        if m:
            argv.extend(env.get(m.group(1), "").split())
            continue
        argv.append(word)
    return argv


def service_environment(unit: dict[str, dict[str, list[str]]], env_file_text: str) -> dict[str, str]:
    """Environment= first, then the EnvironmentFile= on top (systemd's order)."""
    env: dict[str, str] = {}
    for assignment in unit["Service"].get("Environment", []):
        for word in shlex.split(assignment):
            k, _, v = word.partition("=")
            env[k] = v
    env.update(parse_environment_file(env_file_text))
    return env
