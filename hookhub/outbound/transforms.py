"""Endpoint transforms: the body an endpoint gets instead of the message, preset or template.

A transform is ``{"preset": name}`` (``hookhub.outbound.presets``) or ``{"template": source}``,
a Jinja2 template rendering JSON in the email templates' bounded sandbox. It sees ``type``,
``timestamp``, ``data`` and ``origin`` (None until messages record one) and a ``tojson`` filter.
Templates are checked when the endpoint is saved and compiled at most once per process.

The worker renders at a delivery's first attempt and stores the result, so every retry sends
the same bytes; a render that fails raises :class:`TransformFailed` with a message meant for
the endpoint's owner. What this module must never do: evaluate a template outside the sandbox,
or let a body larger than :data:`MAX_BODY` through.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import Template, TemplateSyntaxError, Undefined, nodes

from hookhub.core import jsoncodec
from hookhub.email.sandbox import EmailEnvironment
from hookhub.errors import InvalidJSON, ValidationFailed
from hookhub.outbound.lanes import Job
from hookhub.outbound.presets import PRESETS

__all__ = [
    "MAX_BODY",
    "TRANSFORM_FAILED",
    "TransformFailed",
    "job_body",
    "render",
    "validate_transform",
]

MAX_TEMPLATE = 20_000
MAX_BODY = 256 * 1024
TRANSFORM_FAILED = "transform_failed"
"""The error recorded on a delivery whose body could not be rendered."""


_REFUSED = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)


class TransformFailed(ValidationFailed):
    """The transform could not render this message (a 422 in a preview)."""


def _tojson(value: Any) -> str:
    if isinstance(value, Undefined):
        value = None
    try:
        return jsoncodec.dumps(value).decode()
    except ValidationFailed as exc:
        raise TransformFailed(f"tojson: {exc.message}") from exc


@functools.cache
def _environment() -> EmailEnvironment:
    env = EmailEnvironment(autoescape=False)
    env.filters["tojson"] = _tojson
    return env


def _fail(message: str) -> ValidationFailed:
    return ValidationFailed(message, details={"field": "transform"})


@functools.lru_cache(maxsize=1024)
def _template(source: str) -> Template:
    env = _environment()
    try:
        tree = env.bounded_tree(source)
        for node in tree.find_all(_REFUSED):
            raise TemplateSyntaxError("templates cannot extend, include or import", node.lineno)
        return env.from_string(tree)
    except TemplateSyntaxError as exc:
        raise ValidationFailed(
            f"transform.template does not compile (line {exc.lineno}): {exc.message}",
            details={"field": "transform.template", "line": exc.lineno, "error": exc.message},
        ) from exc


def validate_transform(value: Any, *, batched: bool) -> dict[str, Any] | None:
    """The transform to store (None: the message as it is), or a 422 naming the problem."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or len(value) != 1:
        raise _fail('transform must be {"preset": name} or {"template": source}.')
    if batched:
        raise _fail("transform cannot be used on a batched webhook (a batch is a list).")
    if "preset" in value:
        preset = value["preset"]
        if preset not in PRESETS:
            raise ValidationFailed(
                f"Unknown preset {preset!r}; one of {', '.join(PRESETS)}.",
                details={"field": "transform.preset", "presets": list(PRESETS)},
            )
        return {"preset": preset}
    if "template" in value:
        source = value["template"]
        if not isinstance(source, str) or not source.strip():
            raise _fail("transform.template must be a non-empty string.")
        if len(source) > MAX_TEMPLATE:
            raise _fail(f"transform.template is longer than {MAX_TEMPLATE} characters.")
        _template(source)
        return {"template": source}
    raise _fail('transform must be {"preset": name} or {"template": source}.')


def _scope(message: Any) -> dict[str, Any]:
    if not isinstance(message, dict):
        message = {}
    return {
        "type": message.get("type"),
        "timestamp": message.get("timestamp"),
        "data": message.get("data"),
        "origin": message.get("origin"),
    }


@functools.lru_cache(maxsize=1024)
def _renderer(kind: str, value: str) -> Callable[[dict[str, Any]], bytes]:
    if kind == "preset":
        preset = PRESETS[value]
        return lambda scope: jsoncodec.dumps(preset(scope))
    template = _template(value)

    def run(scope: dict[str, Any]) -> bytes:
        text = template.render(scope)
        if len(text) > MAX_BODY:
            raise TransformFailed(f"the template rendered more than {MAX_BODY} characters")
        try:
            parsed = jsoncodec.loads(text)
        except InvalidJSON as exc:
            raise TransformFailed(f"the template did not render JSON: {exc.message}") from exc
        return jsoncodec.dumps(parsed)

    return run


def render(transform: Mapping[str, Any], message: Any) -> bytes:
    """The body ``transform`` makes of ``message`` (its parsed JSON); TransformFailed if none."""
    [(kind, value)] = transform.items()
    try:
        body = _renderer(kind, value)(_scope(message))
    except TransformFailed:
        raise
    except ValidationFailed as exc:  # a stored template that no longer compiles
        raise TransformFailed(exc.message) from exc
    except Exception as exc:  # whatever the template or the data did: the owner's to fix
        raise TransformFailed(f"{type(exc).__name__}: {exc}"[:500]) from exc
    if len(body) > MAX_BODY:
        raise TransformFailed(f"the rendered body is larger than {MAX_BODY} bytes")
    return body


def job_body(transform: Mapping[str, Any], job: Job) -> bytes:
    """The body a transformed delivery sends: stored, or rendered now (and to be stored)."""
    if job.body is None:
        job.body = render(transform, jsoncodec.loads(job.payload))
        job.rendered = True
    return job.body
