"""The widgets' plain-text fallback: what a widget is and where it can be seen, as text.

Where widgets cannot render (a terminal, a notebook viewer such as GitHub's, a VS Code output
whose widget code failed to load) the front end shows a display's ``text/plain``. ipywidgets puts
the widget's ``repr`` there cut to 110 characters; :class:`PlainTextRepr` puts the whole text.
"""

from __future__ import annotations

from typing import Any

WHERE = (
    "An interactive widget: it shows in JupyterLab, Jupyter Notebook, VS Code notebooks (the Jupyter "
    "extension) and Voila. Seeing this text there instead? Run `jobtask-widgets doctor` in the "
    "kernel's environment."
)
"""Where a widget can be seen, and what to do when it is not."""


class PlainTextRepr:
    """A mixin for widgets: ``repr`` and the display's ``text/plain`` are :meth:`plain_text`."""

    def plain_text(self) -> str:
        """What the widget is, in plain words, then :data:`WHERE`."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.plain_text()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # the widget's own bundle: a dict (ipywidgets) or a (data, metadata) pair (anywidget)
        bundle = super()._repr_mimebundle_(**kwargs)  # type: ignore[misc]  # a mixin: the widget class has it
        if isinstance(bundle, tuple):
            data, metadata = bundle
            return {**data, "text/plain": self.plain_text()}, metadata
        return {**bundle, "text/plain": self.plain_text()}


__all__ = ["WHERE", "PlainTextRepr"]
