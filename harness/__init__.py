"""The process harness shared by the tests and the benchmarks: the real switch, SIPp, baresip.

Why a package of its own: ``tests/`` and ``bench/`` both start ``softswitch run``, SIPp
clients and servers, network namespaces and real phones, and both need free ports and
processes stopped by PID. When this lived in ``tests/`` a benchmark needed the test
extras (pytest) and broke whenever a test module changed. Nothing here imports pytest,
``tests`` or ``bench``, and nothing imports the switch's own code either: the harness
drives the product from outside (its CLI, SIP on sockets, HTTP, the database), the way
an operator's tools would. The architecture test checks all three.

It is not shipped: pyproject's package discovery includes ``switch*`` and
``provisioning*`` only, and this package is imported from a checkout (pytest puts the
repository root on ``sys.path``; the bench scripts do it themselves).

Modules:
  ports      free loopback ports (UDP and TCP) below the ephemeral range
  procs      start, measure (CPU, RSS) and stop processes by PID
  softswitch ``softswitch`` CLI commands and ``SwitchProcess`` (``softswitch run`` as a child)
  sipp       SIPp clients (``run_sipp``) and servers (``SippServer``), injection files
  db         one-off SQL against the switch's database through the same async drivers
  netns      private network namespaces (baresip refuses a loopback-only host)
  baresip    baresip 1.0 driven over ctrl_tcp
  audio      test audio (espeak-ng, sox) and checks on what a phone heard
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["LOOPBACK", "ROOT"]

#: The repository checkout (the product's CLI, ``sipp_scenarios/``, ``.venv/``).
ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"


def _product_from_this_checkout() -> None:
    """Every process the harness starts runs the product of *this* checkout.

    The venv's ``softswitch`` is an editable install of whichever checkout made the
    venv; a second checkout (a git worktree) using that venv would otherwise test the
    first one's code in every child process (the in-process tests already import from
    here: pytest's ``pythonpath``). Children inherit the environment, so one
    ``PYTHONPATH`` entry covers the CLI, ``softswitch run`` and ``python -m switch``.
    """
    import os

    here = str(ROOT)
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if here not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([here, *parts])


_product_from_this_checkout()
