"""The layers: which package may import which, checked over every module of the project.

Walks every module of switch/, provisioning/ and feature_codes/ with ``ast``
(so imports inside functions or behind ``TYPE_CHECKING`` count too) and
checks each import against the matrix below (the rules of COORD.md "Layers",
docs/architecture.md). A module that belongs to no layer fails too: a new
package starts inside the rules, by adding a row here.

* Pure cores (``switch.sip``, ``switch.media``, ``feature_codes``): the
  standard library only, and none of its I/O or clocks (time enters as a
  ``now: float`` argument). Checked through everything they import, so a
  pure module cannot reach I/O through a first-party one either.
* Adapters: ``switch.transport`` runs the SIP core on sockets; the store
  knows the database; the services hold the switch's logic; provisioning is
  the HTTP side.
* The composition root (``switch.app``, ``switch.cli`` and the process
  helpers next to it) may import everything; nothing imports it back.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("switch", "provisioning", "feature_codes")

#: stdlib modules a pure core may not use: event loop, sockets, clocks, threads, databases
IO_MODULES = frozenset({
    "asyncio", "socket", "time", "datetime", "threading", "selectors", "subprocess",
    "sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "aiohttp",
})


@dataclass(frozen=True)
class Layer:
    name: str
    #: first-party modules (prefixes) this layer may import
    may: tuple[str, ...]
    #: stdlib only, no I/O (checked transitively)
    pure: bool = False
    #: third-party (or stdlib) modules this layer may not import, with why
    forbidden: tuple[str, ...] = ()


#: The database drivers and SQL: the store's alone. The services call repository functions
#: (``switch.store.repo_*``) and learn about row errors from ``switch.store.errors``.
DATABASE_MODULES = ("sqlalchemy", "asyncpg", "aiosqlite", "sqlite3")


#: Shared modules that are pure although they live in an adapter package (they are checked pure too):
#: the rate limiter and brute-force throttle are counters with ``now`` as an argument.
PURE_SHARED = ("switch.transport.ratelimit",)
#: Leaf modules of the process that the services and the HTTP side may read; they import nothing first-party.
SHARED_LEAVES = {
    "switch.gcstats": "garbage-collector pause counters (gc callbacks), shown by /health and /metrics",
    "switch.memstats": "RSS, C heap and SQLite figures (ctypes), shown by /health; the heap trim of tune_gc",
    "switch.transport.conditions": "one rate-limited log line per condition: SIP TCP's and HTTP's connection caps",
}

#: The composition root: these modules (and ``switch.cli.*``) may import anything.
ROOT_MODULES = (
    "switch", "switch.__main__", "switch._core_loader", "switch.app", "switch.cli", "switch.database",
    "switch.gc_policy", "switch.housekeeping", "switch.operator_cli", "switch.settings",
)

#: Longest prefix wins. The order of the COORD.md list.
LAYERS: tuple[tuple[str, Layer], ...] = (
    ("switch.sip", Layer("sip core", ("switch.sip",), pure=True)),
    ("switch.media", Layer("media core", ("switch.media", "switch.sip"), pure=True)),
    ("switch.transport", Layer("transport", ("switch.transport", "switch.sip"))),
    ("switch.store", Layer("store", ("switch.store", "switch.sip"))),
    ("switch.services", Layer("services", ("switch.services", "switch.sip", "switch.media", "switch.store",
                                           "feature_codes", *PURE_SHARED, *SHARED_LEAVES),
                              forbidden=DATABASE_MODULES)),
    ("feature_codes", Layer("feature codes", ("feature_codes", "switch.services.numbering",
                                              "switch.services.policy"), pure=True)),
    ("provisioning", Layer("provisioning (HTTP)", ("provisioning", "switch.services", "switch.store",
                                                   "switch.sip", "feature_codes", *PURE_SHARED, *SHARED_LEAVES))),
)

#: Thin asyncio modules inside a pure package: the one exception each (COORD.md), checked as adapters.
IO_ADAPTERS = {
    "switch.media.udp": Layer("media UDP transport", ("switch.media", "switch.sip")),
    # converts an operator's recording with sox (``softswitch prompt install``): runs in the CLI, never in a call
    "switch.media.install": Layer("prompt installer", ("switch.media", "switch.sip")),
}

ROOT_LAYER = Layer("composition root", ("",))


def _module_name(path: Path, base: Path = ROOT) -> str:
    rel = path.relative_to(base).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _under(name: str, prefix: str) -> bool:
    return prefix == "" or name == prefix or name.startswith(prefix + ".")


def layer_of(module: str) -> Layer | None:
    if module in IO_ADAPTERS:
        return IO_ADAPTERS[module]
    if module in SHARED_LEAVES:
        return Layer("shared leaf", ())
    if module in ROOT_MODULES or _under(module, "switch.cli"):
        return ROOT_LAYER
    best: tuple[int, Layer] | None = None
    for prefix, layer in LAYERS:
        if _under(module, prefix) and (best is None or len(prefix) > best[0]):
            best = (len(prefix), layer)
    if best is not None and module in PURE_SHARED:
        return Layer(f"{best[1].name} (pure)", best[1].may, pure=True, forbidden=best[1].forbidden)
    return None if best is None else best[1]


def _imports(path: Path, module: str | None = None) -> list[tuple[int, str]]:
    """Absolute names of everything ``path`` (module ``module``) imports, with line numbers."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = module or _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if _is_package(target):
                # "from switch import services": a submodule is imported, else a name of the package itself
                subs = {alias.name for alias in node.names if _is_module(f"{target}.{alias.name}")}
                out += [(node.lineno, f"{target}.{name}") for name in sorted(subs)]
                if len(subs) < len(node.names):
                    out.append((node.lineno, target))
            else:
                out.append((node.lineno, target))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "__import__":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                out.append((node.lineno, node.args[0].value))
    return out


def _is_package(name: str) -> bool:
    top = name.split(".")[0]
    if top not in PACKAGES:
        return False
    return (ROOT.joinpath(*name.split(".")) / "__init__.py").exists() or name in PACKAGES


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _first_party(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


def offences(module: str, imports: list[tuple[int, str]]) -> list[str]:
    """What ``module`` may not import, one line each ("line N: name (why)")."""
    layer = layer_of(module)
    if layer is None:
        return [f"{module} belongs to no layer: add it to LAYERS in tests/test_architecture.py"]
    bad: list[str] = []
    for line, name in imports:
        top = name.split(".")[0]
        if _first_party(name):
            if name == module or any(_under(name, p) for p in layer.may):
                continue
            bad.append(f"line {line}: {name} ({layer.name} may not import it)")
        elif layer.pure and (top in IO_MODULES or top not in sys.stdlib_module_names):
            bad.append(f"line {line}: {name} ({layer.name} is pure: standard library without I/O only)")
        elif top in layer.forbidden:
            bad.append(f"line {line}: {name} ({layer.name} may not use it: SQL and drivers belong to switch.store)")
    return bad


# --------------------------------------------------------------------------- the walk


def _all_modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        base = ROOT / package
        if not base.is_dir():
            continue  # feature_codes may not exist yet
        for path in sorted(base.rglob("*.py")):
            if "migrations" in path.relative_to(ROOT).parts and path.parent.name == "versions":
                continue  # Alembic revisions: loaded by Alembic, imported by nobody
            found[_module_name(path)] = path
    return found


MODULES = _all_modules()


def _resolve(name: str) -> str | None:
    """The module an imported name lives in (``switch.sip.digest.Challenge`` → ``switch.sip.digest``)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def test_the_walk_finds_every_package() -> None:
    names = set(MODULES)
    assert {"switch.sip.parser", "switch.transport.endpoint", "switch.store.models", "switch.services.registrar",
            "switch.app", "provisioning.app", "provisioning.deps"} <= names
    assert not any(".versions." in n for n in names)


@pytest.mark.parametrize("module", sorted(MODULES), ids=str)
def test_module_imports_only_what_its_layer_may(module: str) -> None:
    bad = offences(module, _imports(MODULES[module], module))
    assert not bad, f"{MODULES[module].relative_to(ROOT)} imports " + "; ".join(bad)


def _impure_reach(module: str, seen: set[str] | None = None) -> list[str]:
    """I/O a pure module reaches through the first-party modules it imports: [chain: name]."""
    seen = set() if seen is None else seen
    found: list[str] = []
    for _, name in _imports(MODULES[module], module):
        if not _first_party(name):
            if name.split(".")[0] in IO_MODULES or name.split(".")[0] not in sys.stdlib_module_names:
                found.append(f"{module}: {name}")
            continue
        target = _resolve(name)
        if target is None or target in seen:
            continue
        seen.add(target)
        found += [f"{module} -> {chain}" for chain in _impure_reach(target, seen)]
    return found


PURE_MODULES = sorted(m for m in MODULES if (layer := layer_of(m)) is not None and layer.pure)


@pytest.mark.parametrize("module", PURE_MODULES, ids=str)
def test_pure_modules_reach_no_io(module: str) -> None:
    bad = _impure_reach(module)
    assert not bad, f"{module} is pure but reaches I/O: " + "; ".join(bad)


# --------------------------------------------------------------------------- the checker itself


def test_the_checker_catches_offenders(tmp_path: Path) -> None:
    """Every import form, and every back-edge the layers forbid, is seen."""
    src = tmp_path / "probe.py"

    def check(module: str, text: str) -> list[str]:
        src.write_text(text)
        return sorted(b.split(": ", 1)[1].split(" (")[0] for b in offences(module, _imports(src, module)))

    assert check("switch.sip.probe", (
        "import asyncio\n"
        "import os, time as t\n"
        "from datetime import datetime\n"
        "from . import uri\n"
        "from ..services import registrar\n"
        "from switch import settings\n"
        "import yaml\n"
        "def f():\n"
        "    import socket\n"
        "    from sqlalchemy.orm import Session\n"
        "    return __import__('threading')\n"
    )) == sorted(["asyncio", "time", "datetime", "switch.services.registrar",
                  "switch.settings", "yaml", "socket", "sqlalchemy.orm", "threading"])
    # services -> composition root, provisioning, transport (only through protocols)
    assert check("switch.services.probe", (
        "from typing import TYPE_CHECKING\n"
        "from switch.store import models\n"
        "from .location import Binding\n"
        "from switch.transport.ratelimit import AuthThrottle\n"
        "if TYPE_CHECKING:\n"
        "    from switch.app import Switch\n"
        "    from switch.transport.endpoint import Endpoint\n"
        "from provisioning.deps import HttpDeps\n"
    )) == ["provisioning.deps", "switch.app", "switch.transport.endpoint"]
    # store -> services; provisioning -> composition root
    assert check("switch.store.probe", "from switch.services.location import Binding\nfrom ..sip import uri\n") == [
        "switch.services.location"]
    assert check("provisioning.api.probe", "from ...switch.app import Switch\nfrom switch import app, gcstats\n"
                 "from switch.services.resync import NotifyOutcome\nfrom ..deps import HttpDeps\n"
                 "from switch import _core_loader as core\n") == ["switch._core_loader", "switch.app", "switch.app"]
    # the media core's one asyncio module may use asyncio, still not the services
    assert check("switch.media.udp", "import asyncio\nfrom .rtp import Packetiser\nfrom switch.services import cdr\n") == [
        "switch.services.cdr"]
    assert check("switch.media.rtp", "import asyncio\n") == ["asyncio"]
    # feature codes: numbering yes, anything with I/O no
    assert check("feature_codes.probe", "from switch.services.numbering import normalise\n"
                 "from switch.store import repo_lines\nimport asyncio\n") == [
        "asyncio", "switch.store.repo_lines"]
    # services: no SQL, no database driver, not even inside a function
    assert check("switch.services.probe", (
        "from sqlalchemy import select, text\n"
        "import sqlite3\n"
        "from switch.store.repo_billing import reprice_calls\n"
        "def f():\n"
        "    from sqlalchemy.exc import IntegrityError\n"
        "    import asyncpg\n"
    )) == ["asyncpg", "sqlalchemy", "sqlalchemy.exc", "sqlite3"]
    # the root may import anything; an unknown package is refused until it has a row
    assert check("switch.app", "from provisioning.app import start_http\nfrom switch.transport import endpoint\n") == []
    assert offences("switch.newthing.mod", []) != [] and offences("ui.pages", []) != []


def test_pure_reach_follows_first_party_imports() -> None:
    """A pure module importing a first-party module that does I/O is caught (through the real graph)."""
    MODULES["feature_codes._probe"] = MODULES["switch.services.numbering"]
    MODULES["switch.services._io_probe"] = MODULES["switch.services.qualify"]  # imports asyncio
    try:
        assert _impure_reach("switch.services._io_probe")
        assert not _impure_reach("feature_codes._probe")
    finally:
        del MODULES["feature_codes._probe"], MODULES["switch.services._io_probe"]


# --------------------------------------------------------------------------- the composition root

#: Modules that build parts: every dependency is a constructor argument (or the argument of a
#: lifecycle step such as ``Endpoint.start``); nothing is set on a part after it is built.
WIRING_MODULES = ("switch.app", "switch.housekeeping", "switch.gc_policy")
#: Methods that change a container in place: ``part.hooks.append(...)`` is wiring after the fact.
_IN_PLACE = frozenset({"append", "extend", "insert", "update", "setdefault", "add", "__setitem__"})


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def post_construction_wiring(source: str) -> list[str]:
    """Attributes set on (or containers of) an object the module holds: ``x.a = v``, ``x.a[k] = v``, ``x.a.append(v)``."""
    bad: list[str] = []
    for node in ast.walk(ast.parse(source)):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _IN_PLACE
              and isinstance(node.func.value, ast.Attribute | ast.Subscript)):
            targets = [node.func.value]
        while targets:
            t = targets.pop()
            if isinstance(t, ast.Tuple | ast.List):
                targets += t.elts
            elif isinstance(t, ast.Attribute | ast.Subscript) and _root_name(t) != "self":
                if isinstance(t, ast.Subscript) and not isinstance(t.value, ast.Attribute | ast.Subscript):
                    continue  # a local dict being filled
                bad.append(f"line {t.lineno}: {ast.unparse(t)}")
    return bad


@pytest.mark.parametrize("module", WIRING_MODULES, ids=str)
def test_the_root_sets_nothing_on_a_part_after_building_it(module: str) -> None:
    bad = post_construction_wiring(MODULES[module].read_text(encoding="utf-8"))
    assert not bad, f"{module} wires a part after building it (make it a constructor argument): " + "; ".join(bad)


def test_the_wiring_check_catches_what_it_is_for() -> None:
    """The forms reviewers found in switch/app.py, and what stays allowed."""
    assert sorted(post_construction_wiring(
        'endpoint.handlers["REGISTER"] = registrar.on_register\n'
        "endpoint.seen_hooks.append(status.sip_seen)\n"
        "sw.endpoint.shed_from = time.time()\n"
        "a.b, c = 1, 2\n"
        "service.listeners += [credit]\n"
    )) == ["line 1: endpoint.handlers['REGISTER']", "line 2: endpoint.seen_hooks", "line 3: sw.endpoint.shed_from",
          "line 4: a.b", "line 5: service.listeners"]
    assert post_construction_wiring(
        "out = {}\nout['x'] = 1\nseen = set()\nseen.add(2)\nsw.endpoint.shed_from(time.time())\n"
        "class S:\n    def __init__(self):\n        self.a = 1\n"
    ) == []
