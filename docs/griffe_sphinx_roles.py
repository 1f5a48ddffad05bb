"""Griffe extension (mkdocs.yml): render Sphinx roles of the docstrings as inline code.

jaxlmg's Google-style docstrings name other objects with Sphinx roles (``:class:`LMG4```,
``:func:`jaxlmg.canonical```); Markdown has no such syntax, so without this they would show as
``:class:`` followed by code.  A role becomes plain inline code (``~`` keeps the last component,
as in Sphinx).  The docstrings themselves are not changed.
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|data|mod|obj|exc|const):`(~?)([^`]+)`")


def _code(match: re.Match) -> str:
    short, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


class SphinxRoles(griffe.Extension):
    """Rewrite ``:role:`target``` into ```target``` in every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None and ":" in obj.docstring.value:
            obj.docstring.value = _ROLE.sub(_code, obj.docstring.value)
