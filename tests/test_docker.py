"""docker/Dockerfile builds and starts (checked without a Docker engine, which CI lacks).

1. Every path the Dockerfile COPYs exists in the build context (the repository
   root): a missing folder made the image unbuildable once.
2. The image's start command (ENTRYPOINT + CMD, with the Dockerfile's ENV) works
   from a checkout holding only those paths: it is run, in a private network
   namespace so the fixed ports 5060/8080 are free, from a copy of exactly what
   the image gets, and must answer SIP OPTIONS and GET /health.
3. compose: the switch waits for a healthy PostgreSQL and both restart.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from harness.netns import NetNamespace, NetnsSwitch, can_make_namespaces
from harness.softswitch import http_get_json

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _copies() -> list[tuple[str, str]]:
    pairs = []
    for word, rest in _instructions():
        if word == "COPY":
            parts = shlex.split(rest)
            pairs += [(src, parts[-1]) for src in parts[:-1]]
    return pairs


def _env() -> dict[str, str]:
    env = {}
    for word, rest in _instructions():
        if word == "ENV":
            key, _, value = rest.partition("=")
            env[key.strip()] = value.strip()
    return env


def _exec_form(word: str) -> list[str]:
    [rest] = [r for w, r in _instructions() if w == word]
    value = json.loads(rest)
    assert isinstance(value, list)
    return [str(v) for v in value]


def test_every_copied_path_exists() -> None:
    copies = _copies()
    assert copies, "no COPY in the Dockerfile?"
    missing = [src for src, _ in copies if not (ROOT / src).exists()]
    assert not missing, f"the Dockerfile copies paths that do not exist: {missing}"
    # the packages pyproject installs are all copied
    copied = {Path(src).parts[0] for src, _ in copies}
    assert {"switch", "provisioning", "feature_codes", "ata_templates"} <= copied


def test_compose_waits_for_a_healthy_database_and_restarts() -> None:
    doc = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    services = doc["services"]
    assert services["postgres"]["healthcheck"]["test"]
    assert services["softswitch"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["softswitch"]["restart"] == services["postgres"]["restart"] == "unless-stopped"
    assert services["softswitch"]["build"]["dockerfile"] == "docker/Dockerfile"


class ImageSwitch(NetnsSwitch):
    """The image's ENTRYPOINT + CMD, ``softswitch`` being ``python -m switch`` from the copy."""

    def command(self) -> list[str]:
        assert self.netns is not None
        entry = _exec_form("ENTRYPOINT")
        assert entry == ["softswitch"]
        return [*self.netns.prefix(), sys.executable, "-m", "switch", *_exec_form("CMD")]


@pytest.mark.e2e
def test_the_start_command_works_from_a_checkout_of_only_the_copied_paths(tmp_path: Path) -> None:
    assert can_make_namespaces(), "this test needs root (a private network namespace for ports 5060/8080)"
    image = tmp_path / "srv"
    for src, dest in _copies():  # COPY semantics: "dir/" puts the source inside, else it is the target
        source = ROOT / src
        where = image / dest / source.name if dest.endswith("/") else image / dest
        if source.is_dir():
            shutil.copytree(source, where, ignore=shutil.ignore_patterns("__pycache__", "*.so", ".compiled-sources.json"))
        else:
            where.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, where)
    state = tmp_path / "var-lib-softswitch"
    state.mkdir()
    env = {k: v.replace("/var/lib/softswitch", str(state)) for k, v in _env().items()}
    env["PYTHONPATH"] = str(image)  # the copy, not the checkout the venv points at
    with NetNamespace() as ns:
        sw = ImageSwitch(db_url="unused", workdir=image, sip_port=5060, http_port=8080, env=env, netns=ns)
        with sw:
            status, body = ns.call(lambda: http_get_json("http://127.0.0.1:8080/health"))
            assert status == 200, body
        log = sw.log_text()
    assert "Traceback" not in log
    assert any(p.name.endswith(".db") for p in state.iterdir()), "the database should be in the state directory"
    assert (state / "softswitch.key").exists()
