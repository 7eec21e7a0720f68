"""The B2BUA: calls made of two legs that talk in call-control events.

Kept import-light on purpose: ``routing`` (pure) imports ``causes`` from here,
so this package must not pull in the SIP legs or asyncio at import time.
Import ``switch.services.b2bua.manager`` for ``CallManager`` (the
composition root, ``switch.app``, builds it and its trunks and CDR writer).
"""

from .causes import Cause

__all__ = ["Cause"]
