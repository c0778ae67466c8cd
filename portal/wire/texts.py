"""Marks the wire's English texts that reach a screen; the web layer translates them when shown."""


def N_(text: str) -> str:  # noqa: N802 - the name pybabel extracts (babel.cfg's keywords)
    """The text unchanged: the wire speaks English, stored results keep it, pages translate it."""
    return text
