"""Compile the sans-IO SIP core (switch/sip) with mypyc, in place.

Why: parsing, validation and the transaction layer run for every datagram;
compiled by mypyc they run about twice as fast (bench/bench_parse.py). The
code stays ordinary typed Python: mypyc compiles the same files mypy checks,
and the pure-Python modules remain the fallback (no compiler, or
``SOFTSWITCH_PURE_PYTHON=1``).

The extension modules land next to the sources, with a stamp listing the hash
of every compiled source. ``switch/_core_loader.py`` loads the compiled modules
only while that stamp matches the sources, so an edited ``.py`` is never
shadowed by a stale build. ``scripts/bootstrap.sh`` runs this when the stamp
is out of date.

    .venv/bin/python scripts/build_core.py           # build if out of date
    .venv/bin/python scripts/build_core.py --force   # rebuild
    .venv/bin/python scripts/build_core.py --clean   # remove the build (pure Python)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from switch._core_loader import (  # noqa: E402
    STAMP,
    compiled_modules,
    core_sources,
    current_stamp,
    read_stamp,
    write_stamp,
)

GROUP = "switch.sip._core"  # the shared library lives inside the package (the editable finder maps only packages)


def clean() -> None:
    for so in compiled_modules():
        so.unlink()
    STAMP.unlink(missing_ok=True)
    shutil.rmtree(ROOT / "build" / "mypyc", ignore_errors=True)


def build() -> None:
    import warnings

    from mypyc.build import mypycify
    from setuptools import setup

    warnings.filterwarnings("ignore", message=".*tool.setuptools.*")  # setup() reads pyproject.toml; only build_ext runs

    files = core_sources()
    rel = [str(p.relative_to(ROOT)) for p in files]
    os.chdir(ROOT)
    clean()
    ext = mypycify(rel, opt_level="3", group_name=GROUP, target_dir="build/mypyc")
    setup(
        name="softswitch-core",
        ext_modules=ext,
        script_args=["-q", "build_ext", "--inplace", "--build-temp", "build/mypyc/temp"],
    )
    write_stamp(current_stamp(files))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="rebuild even if the build is current")
    ap.add_argument("--clean", action="store_true", help="remove the compiled modules and use pure Python")
    args = ap.parse_args()
    if args.clean:
        clean()
        print("build_core: removed the compiled SIP core (pure Python from now on)")
        return 0
    want = current_stamp(core_sources())
    if not args.force and read_stamp() == want and compiled_modules():
        print("build_core: compiled SIP core is up to date")
        return 0
    try:
        build()
    except Exception as exc:  # noqa: BLE001 - any build failure leaves the pure-Python core in place
        clean()
        print(f"build_core: could not compile the SIP core ({type(exc).__name__}: {exc}); "
              "running pure Python (slower, same behaviour)", file=sys.stderr)
        return 1
    except SystemExit as exc:  # setuptools reports compiler errors this way
        clean()
        print(f"build_core: could not compile the SIP core ({exc}); running pure Python", file=sys.stderr)
        return 1
    print(f"build_core: compiled {len(want)} modules of switch/sip with mypyc")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
