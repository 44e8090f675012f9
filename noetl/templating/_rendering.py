"""Implementation of ``noetl.templating``; see the package docstring for the rules."""

from __future__ import annotations

import base64
import contextlib
import json
import re
from functools import lru_cache
from typing import Any, Callable, Iterator, Mapping

import jinja2
from jinja2 import meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from noetl.errors import TemplateError

_SINGLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.DOTALL)
_MARKERS = ("{{", "{%", "{#")
_PREPARED = "__noetl_context__"


def _tojson(value: Any, indent: int | None = None) -> str:
    # Jinja's built-in tojson escapes <, >, & and ' for HTML; playbooks build SQL and JSON bodies,
    # where those escapes would corrupt the data.
    return json.dumps(value, indent=indent, ensure_ascii=False, default=str)


def _fromjson(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _b64encode(value: Any) -> str:
    data = value.encode() if isinstance(value, str) else bytes(value)
    return base64.b64encode(data).decode("ascii")


def _b64decode(value: Any) -> str:
    return base64.b64decode(value).decode("utf-8")


#: Largest string or list a template may build with ``*`` and largest exponent of ``**``. Jinja's
#: sandbox bounds ``range`` only; without these, ``{{ 'a' * 10**9 }}`` or ``{{ 9 ** 999999999 }}``
#: would eat the machine's memory or CPU.
MAX_REPEAT = 1_000_000
MAX_EXPONENT = 10_000


class _Environment(ImmutableSandboxedEnvironment):
    """Sandbox where ``a.b`` on a mapping means the key ``b`` first, with bounded ``*`` and ``**``.

    Plain Jinja tries the attribute first, so ``workload.items`` would be the dict method; playbook
    data routinely has keys named items, keys, values or get.
    """

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"exponent {right} is larger than {MAX_EXPONENT}")
            if isinstance(left, int) and isinstance(right, int) and left.bit_length() * abs(right) > 1_000_000:
                raise SecurityError("the power would have more than a million bits")
            return left**right
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int) and \
                        len(seq) * times > MAX_REPEAT:
                    raise SecurityError(f"repeating a sequence to more than {MAX_REPEAT} elements")
            return left * right
        return super().call_binop(context, operator, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)


def _make_env(undefined: type[jinja2.Undefined]) -> ImmutableSandboxedEnvironment:
    # optimized=False: Jinja's optimizer evaluates constant expressions while compiling, outside the
    # sandbox's operator checks, so validating `{{ 9 ** 999999999 }}` would hang.
    env = _Environment(undefined=undefined, autoescape=False, keep_trailing_newline=True, optimized=False)
    env.globals.pop("lipsum", None)  # lorem-ipsum generator: no use in playbooks, unbounded output
    env.filters.update(tojson=_tojson, fromjson=_fromjson, b64encode=_b64encode, b64decode=_b64decode)
    return env


def is_template(value: Any) -> bool:
    """True when ``value`` is a string holding Jinja markup."""
    return isinstance(value, str) and any(m in value for m in _MARKERS)


def _strip_braces(expr: str) -> str:
    """``'{{ x }}'`` -> ``'x'``; a bare expression is returned as is."""
    m = _SINGLE_EXPR.match(expr)
    return m.group("expr") if m else expr


class Renderer:
    """A pair of sandboxed environments (strict and lenient) with compiled-template caches."""

    def __init__(self) -> None:
        self._strict = _make_env(jinja2.StrictUndefined)
        self._lenient = _make_env(jinja2.ChainableUndefined)
        # Caches are per renderer and bounded, so a playbook that builds endless distinct templates
        # (it cannot: templates come from the playbook text) would still not grow memory unboundedly.
        self._compile_expr = lru_cache(maxsize=4096)(self._compile_expr_uncached)
        self._compile_text = lru_cache(maxsize=4096)(self._compile_text_uncached)
        self._names = lru_cache(maxsize=4096)(self._names_uncached)
        self._globals = dict(self._strict.globals)

    def new_context(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """A context dict ready for rendering (Jinja's globals merged in once).

        Rendering with a prepared context skips the per-call copy Jinja makes of its globals and
        variables; the engine renders many templates per event from one context, so this matters.
        Templates cannot modify the dict: assignments inside a template go to a layer of their own.
        """
        context = dict(self._globals)
        context.update(values)
        context[_PREPARED] = True
        return context

    def _prepared(self, context: Mapping[str, Any]) -> dict[str, Any]:
        if _PREPARED in context and isinstance(context, dict):
            return context
        return self.new_context(context)

    def _evaluate(self, template: jinja2.Template, context: Mapping[str, Any]) -> Any:
        ctx = template.new_context(self._prepared(context), shared=True)
        for _ in template.root_render_func(ctx):
            pass
        return ctx.vars["result"]

    # -- compilation -------------------------------------------------------------------------
    def _compile_expr_uncached(self, expr: str, lenient: bool) -> Callable[[Mapping[str, Any]], Any]:
        env = self._lenient if lenient else self._strict
        try:
            # The construction Jinja's compile_expression uses, evaluated without its per-call copy
            # of the context (see new_context). Parsing the bare expression first rejects input such
            # as "x %} {% ..." that would otherwise smuggle statements into the wrapper.
            env.compile_expression(expr.strip())
            template = env.from_string("{% set result = " + expr.strip() + " %}")
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"template syntax error: {exc.message} in '{{{{{expr}}}}}'") from None
        return lambda context: self._evaluate(template, context)

    def _compile_text_uncached(self, source: str) -> jinja2.Template:
        try:
            return self._strict.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"template syntax error: {exc.message} (line {exc.lineno} of the template)") from None

    def _names_uncached(self, source: str) -> frozenset[str]:
        m = _SINGLE_EXPR.match(source)
        try:
            ast = self._strict.parse("{{" + m.group("expr") + "}}" if m else source)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"template syntax error: {exc.message}") from None
        return frozenset(meta.find_undeclared_variables(ast))

    # -- public API --------------------------------------------------------------------------
    def check_syntax(self, source: str) -> str | None:
        """Return a syntax error message for ``source``, or None when it compiles."""
        try:
            m = _SINGLE_EXPR.match(source)
            if m:
                self._compile_expr(m.group("expr"), False)
            else:
                self._compile_text(source)
        except TemplateError as exc:
            return exc.detail
        return None

    def referenced_names(self, value: Any) -> frozenset[str]:
        """Top-level names the templates inside ``value`` (str, list or dict) refer to."""
        if isinstance(value, str):
            return self._names(value) if is_template(value) else frozenset()
        found: set[str] = set()
        if isinstance(value, Mapping):
            for v in value.values():
                found |= self.referenced_names(v)
        elif isinstance(value, list):
            for v in value:
                found |= self.referenced_names(v)
        return frozenset(found)

    def render(self, source: str, context: Mapping[str, Any], *, where: str = "") -> Any:
        """Render one string strictly: native value for a single expression, else a string."""
        if not is_template(source):
            return source
        with _template_errors(where):
            m = _SINGLE_EXPR.match(source)
            if m:
                return _defined(self._compile_expr(m.group("expr"), False)(context))
            template = self._compile_text(source)
            ctx = template.new_context(self._prepared(context), shared=True)
            return template.environment.concat(template.root_render_func(ctx))

    def render_value(self, value: Any, context: Mapping[str, Any], *, where: str = "") -> Any:
        """Render every template inside ``value`` (recursively through dicts and lists)."""
        if isinstance(value, str):
            return self.render(value, context, where=where) if is_template(value) else value
        if isinstance(value, Mapping):
            return {k: self.render_value(v, context, where=f"{where}.{k}" if where else str(k))
                    for k, v in value.items()}
        if isinstance(value, list):
            return [self.render_value(v, context, where=f"{where}[{i}]") for i, v in enumerate(value)]
        return value

    def evaluate(self, expr: str, context: Mapping[str, Any], *, where: str = "") -> Any:
        """Evaluate an expression written with or without ``{{ }}`` (``collect.from``, ``result.from``)."""
        with _template_errors(where):
            return _defined(self._compile_expr(_strip_braces(expr), False)(context))

    def test(self, condition: str, context: Mapping[str, Any], *, where: str = "") -> bool:
        """Evaluate a ``when`` leniently: undefined names are falsy.

        Raises TemplateError for a runtime error inside the expression; the engine records that as a
        warning and treats the condition as false.
        """
        try:
            value = self._compile_expr(_strip_braces(condition), True)(context)
        except TemplateError as exc:
            raise TemplateError(exc.detail, where=where) from None
        except SecurityError as exc:
            raise TemplateError(f"refused by the template sandbox: {exc}", where=where) from None
        except jinja2.UndefinedError:
            return False
        except Exception as exc:  # noqa: BLE001
            raise TemplateError(f"{type(exc).__name__}: {exc}", where=where) from None
        if isinstance(value, jinja2.Undefined):
            return False
        if isinstance(value, str):
            # `when: "{{ x }}"` rendered as text in other engines; treat the usual spellings of false.
            return value.strip().lower() not in ("", "false", "0", "none", "null", "no")
        return bool(value)


def _defined(value: Any) -> Any:
    """A strict single expression must not evaluate to Undefined (e.g. ``{{ x.missing }}``)."""
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    return value


@contextlib.contextmanager
def _template_errors(where: str) -> Iterator[None]:
    """Turn whatever a strict render raises into one TemplateError naming ``where``."""
    try:
        yield
    except TemplateError as exc:
        raise TemplateError(exc.detail, where=where) from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(_undefined_message(exc), where=where) from None
    except SecurityError as exc:
        raise TemplateError(f"refused by the template sandbox: {exc}", where=where) from None
    except Exception as exc:  # noqa: BLE001 - any error inside user expressions is a template error
        raise TemplateError(f"{type(exc).__name__}: {exc}", where=where) from None


def _undefined_message(exc: jinja2.UndefinedError) -> str:
    msg = str(exc.message or exc)
    m = re.match(r"'([^']+)' is undefined", msg)
    if m:
        return f"undefined name '{m.group(1)}'"
    m = re.match(r"'(.+)' has no attribute '([^']+)'", msg)
    if m:
        return f"undefined attribute '{m.group(2)}' ({msg})"
    return msg


default_renderer = Renderer()
check_syntax = default_renderer.check_syntax
referenced_names = default_renderer.referenced_names
render = default_renderer.render
render_value = default_renderer.render_value
evaluate = default_renderer.evaluate
test = default_renderer.test
