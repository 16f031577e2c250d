"""The app's public API endpoints as an assistant sees them.

Gradio serves every public endpoint as an MCP tool (launch(mcp_server=True)),
named after its function and described by its docstring's summary and Args.
`tool` names each after its API name, so an assistant sees "check_explanation",
not "check", and not "partial" for an endpoint with the model slot bound first.
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable


def tool(api_name: str, fn: Callable, *bound) -> Callable:
    """fn, with `bound` as its first arguments, named api_name and described by fn's docstring."""
    if bound:  # a partial keeps a generator function's streaming, which gradio reads through it
        named = functools.partial(fn, *bound)
        named.__doc__ = fn.__doc__
    else:  # gr.api reads the type hints, which a partial has not
        assert not inspect.isgeneratorfunction(fn), "a wrapper would hide that it streams"
        named = functools.wraps(fn)(lambda *args, **kwargs: fn(*args, **kwargs))
    named.__name__ = api_name
    return named
