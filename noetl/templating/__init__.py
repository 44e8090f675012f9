"""Sandboxed Jinja2 rendering for playbooks (DESIGN §3.7).

Who calls it: the engine (args, tool fields, rules), the worker (fields deferred until credentials
are known) and DSL validation (syntax checks). It never does I/O.

Rules:
- A string that is exactly one ``{{ expr }}`` renders to the expression's native value (list, dict,
  number, bool, None); any other string renders to a string.
- Tool fields and args render strictly: an undefined name is a ``TemplateError`` naming it.
  Conditions (``when``) render leniently: an undefined name is falsy.
- The environment is an immutable sandbox: no attribute escapes (``__class__``...), no mutation of
  values from inside a template.
- Compiled templates are cached by source text.
"""

from noetl.templating._rendering import (
    Renderer,
    check_syntax,
    default_renderer,
    evaluate,
    is_template,
    referenced_names,
    render,
    render_value,
    test,
)

__all__ = [
    "Renderer",
    "check_syntax",
    "default_renderer",
    "evaluate",
    "is_template",
    "referenced_names",
    "render",
    "render_value",
    "test",
]
