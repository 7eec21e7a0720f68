"""Does the key file open the secrets stored in the database? Asked before the switch starts.

A switch started with the wrong key file (a fresh one created because the path
was wrong, or another installation's) cannot answer any carrier challenge or
hand any adapter its config, yet used to say "ready". One stored secret of
each kind is opened here; any failure refuses the start with a clear reason.
"""

from __future__ import annotations

from sqlalchemy import select

from switch.store.crypto import CTX_ADAPTER_SECRET, CTX_LINE_SECRET, SecretBox, SecretBoxError
from switch.store.engine import SessionFactory
from switch.store.models import Adapter, Line

__all__ = ["KeyMismatch", "check_key"]


class KeyMismatch(RuntimeError):
    """The key does not open what is stored."""


async def check_key(session_factory: SessionFactory, box: SecretBox) -> None:
    """Raise :class:`KeyMismatch` unless ``box`` opens a stored line and adapter secret (when there are any)."""
    async with session_factory() as session:
        line = (await session.execute(select(Line.secret_enc).limit(1))).scalar()
        adapter = (await session.execute(select(Adapter.provisioning_secret_enc).limit(1))).scalar()
    for sealed, context, what in ((line, CTX_LINE_SECRET, "line passwords"), (adapter, CTX_ADAPTER_SECRET, "adapter secrets")):
        if not sealed:
            continue
        try:
            box.decrypt(sealed, context=context)
        except SecretBoxError as exc:
            raise KeyMismatch(f"the key file does not open the {what} stored in the database ({exc})") from None
