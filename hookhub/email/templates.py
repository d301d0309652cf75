"""Email templates: compile once (subject, HTML, text), render per recipient in the sandbox.

A template sees ``contact`` (its fields, and its attributes by name: ``contact.FIRSTNAME`` is
``contact.attributes.FIRSTNAME``), ``params`` and ``unsubscribe_url``. The HTML part is
autoescaped; the subject and text are not (they are not HTML). A missing value renders empty.
Without a text part, the text is made from the HTML: from the HTML template once where that can
be trusted (:mod:`hookhub.email.textpart`), else from each rendered HTML (``htmltext``).

Compiling refuses what does not compile (:class:`TemplateInvalid` naming the field and line);
rendering turns any failure into :class:`TemplateRenderError` (that email fails, its batch goes
on). This module must never touch the database or the network, and never raise anything else
from :meth:`EmailTemplate.render`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

from jinja2 import Template, nodes
from jinja2.exceptions import TemplateSyntaxError

from hookhub.email.htmltext import html_to_text
from hookhub.email.sandbox import MAX_PART_CHARS, DataOnly, EmailEnvironment, LimitExceeded
from hookhub.email.textpart import derive_text_source, tidy_derived
from hookhub.errors import TemplateInvalid, TemplateRenderError

MAX_SOURCE_CHARS: Final = 1024 * 1024
_TEMPLATE_FILE = "<template>"
_REFUSED_NODES = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)

_html_env: EmailEnvironment | None = None
_plain_env: EmailEnvironment | None = None


_globals: dict[str, Any] | None = None


def _template_globals() -> dict[str, Any]:
    """Jinja's globals (``range``, ``namespace``, ...), the same in both environments."""
    global _globals
    if _globals is None:
        _globals = dict(_environments()[0].globals)
    return _globals


def _environments() -> tuple[EmailEnvironment, EmailEnvironment]:
    """(HTML, plain) environments, made on first use (nothing is built at import time)."""
    global _html_env, _plain_env
    if _html_env is None or _plain_env is None:
        _html_env = EmailEnvironment(autoescape=True)
        _plain_env = EmailEnvironment(autoescape=False)
    return _html_env, _plain_env


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


class _ContactView(DataOnly):
    """A contact's fields, then its attributes by name (case-insensitive, as attributes are)."""

    __slots__ = ()

    def __missing__(self, key: str) -> Any:
        attributes = dict.get(self, "attributes")
        if isinstance(attributes, Mapping) and isinstance(key, str):
            upper = key.upper()
            if upper in attributes:
                return attributes[upper]
        raise KeyError(key)


def contact_scope(contact: Mapping[str, Any]) -> dict[str, Any]:
    """What ``contact`` is in a template: its fields over its attributes."""
    attributes = contact.get("attributes")
    view = _ContactView(attributes) if isinstance(attributes, Mapping) else _ContactView()
    view.update(contact)
    return view


def _compile_part(env: EmailEnvironment, field: str, source: str) -> Template:
    if len(source) > MAX_SOURCE_CHARS:
        raise TemplateInvalid(
            f"{field} is longer than {MAX_SOURCE_CHARS} characters.",
            details={"field": field, "line": None, "error": "too long"},
        )
    try:
        tree = env.bounded_tree(source)
        for node in tree.find_all(_REFUSED_NODES):
            raise TemplateSyntaxError(
                "templates cannot extend, include or import other templates", node.lineno
            )
        return env.from_string(tree)
    except TemplateSyntaxError as exc:
        raise TemplateInvalid(
            f"{field} does not compile (line {exc.lineno}): {exc.message}",
            details={"field": field, "line": exc.lineno, "error": exc.message},
        ) from exc


def _template_line(template: Template, tb: TracebackType | None) -> int | None:
    """The template line of the innermost template frame in ``tb`` (None if there is none)."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _TEMPLATE_FILE:
            line = template.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next
    return line


def _render_part(template: Template, scope: dict[str, Any]) -> str:
    # ``scope`` already holds the globals (see render): shared, Jinja does not copy them again.
    rendered: str = template.environment.concat(
        template.root_render_func(template.new_context(scope, shared=True))
    )
    return rendered


@dataclass(frozen=True, slots=True, eq=False)
class EmailTemplate:
    """A compiled template; immutable and safe to share between threads."""

    subject_template: Template
    html_template: Template
    text_template: Template | None  # None: the text is made from each rendered HTML
    text_derived: bool = False  # the text template was derived from the HTML: tidy its output

    @classmethod
    def compile(cls, subject: str, html: str, text: str | None = None) -> EmailTemplate:
        html_env, plain_env = _environments()
        subject_template = _compile_part(plain_env, "subject", subject)
        html_template = _compile_part(html_env, "html", html)
        if text is not None:
            text_template = _compile_part(plain_env, "text", text)
            return cls(subject_template, html_template, text_template)
        derived = derive_text_source(html)
        if derived is not None:
            try:
                return cls(
                    subject_template, html_template, _compile_part(plain_env, "text", derived), True
                )
            except TemplateInvalid:
                pass  # unusual syntax the derivation did not foresee: convert per render
        return cls(subject_template, html_template, None)

    def render(
        self, *, contact: Mapping[str, Any], params: Mapping[str, Any], unsubscribe_url: str
    ) -> RenderedEmail:
        scope = {
            **_template_globals(),
            "contact": contact_scope(contact),
            "params": dict(params),
            "unsubscribe_url": unsubscribe_url,
        }
        field, part = "subject", self.subject_template
        try:
            subject = " ".join(_render_part(part, scope).split())
            field, part = "html", self.html_template
            html = _render_part(part, scope)
            if self.text_template is None:
                text = html_to_text(html)
            else:
                field, part = "text", self.text_template
                text = _render_part(part, scope)
                if self.text_derived:
                    text = tidy_derived(text)
        except Exception as exc:
            line = _template_line(part, exc.__traceback__)
            kind = "limit" if isinstance(exc, LimitExceeded | MemoryError) else type(exc).__name__
            reason = str(exc) or type(exc).__name__
            where = f" (line {line})" if line is not None else ""
            raise TemplateRenderError(
                f"{field} failed to render{where}: {reason}",
                details={"field": field, "line": line, "error": reason, "kind": kind},
            ) from None
        return RenderedEmail(subject=subject, html=html, text=text)


class TemplateCache:
    """A small LRU of compiled templates, keyed by what the caller knows (``(id, version)``)."""

    def __init__(self, maxsize: int = 256) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[Hashable, EmailTemplate] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, compile: Callable[[], EmailTemplate]) -> EmailTemplate:
        """The template cached under ``key``, compiled with ``compile()`` on a miss."""
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        template = compile()  # outside the lock: compiling may take a while, and may raise
        with self._lock:
            self._items[key] = template
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return template

    def __len__(self) -> int:
        return len(self._items)


__all__ = [
    "MAX_PART_CHARS",
    "EmailTemplate",
    "RenderedEmail",
    "TemplateCache",
    "contact_scope",
]
