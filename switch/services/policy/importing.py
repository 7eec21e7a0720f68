"""The call policy's own rules for ``softswitch import``: forward targets, as the API checks them.

The store validates the file's shape; whether a forward target is allowed
(a valid number of an allowed class, never 110/112/113, never the line
itself, ``timeout_s`` 5-120 for ``no_answer`` only) is ``validate_forward``,
run here for every line of the document so a bad target refuses the whole
file with its path, as every other import error does.
"""

from __future__ import annotations

from switch.store.import_validation import ImportDoc, ImportIssue

from ..numbering import NumberClass
from .model import DEFAULT_FORWARD_CLASSES
from .validate import PolicyValidationError, validate_forward

__all__ = ["ForwardTargetCheck"]


class ForwardTargetCheck:
    """A ``DocumentCheck`` for ``load_import_file(checks=...)``."""

    def __init__(self, allowed: frozenset[NumberClass] = DEFAULT_FORWARD_CLASSES, country_code: str = "47") -> None:
        self.allowed = allowed
        self.country_code = country_code

    def __call__(self, doc: ImportDoc) -> list[ImportIssue]:
        on_net = {ls.number for c in doc.customers for a in c.adapters for ls in a.lines}
        issues: list[ImportIssue] = []
        for c in doc.customers:
            for a in c.adapters:
                for ls in a.lines:
                    for kind, target, timeout in ls.policy.forwarding or ():
                        try:
                            validate_forward(kind, target, timeout, line_number=ls.number, on_net=on_net,
                                             allowed=self.allowed, country_code=self.country_code)
                        except PolicyValidationError as err:
                            where = f"{ls.path}.forwarding.{kind.value}"
                            if err.field != "target":
                                where += f".{err.field}"
                            issues.append(ImportIssue(where, err.message))
        return issues
