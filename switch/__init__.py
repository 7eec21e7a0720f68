"""Softswitch control plane: SIP core, services, transport, store.

The SIP core may be compiled with mypyc (scripts/build_core.py); which build is
used is decided here, before anything imports ``switch.sip``.
"""

from . import _core_loader

_core_loader.install()
