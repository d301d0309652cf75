"""Hookhub's exceptions: one root, each subclass knowing its HTTP status and error code.

Code anywhere in Hookhub raises these; ``hookhub.api.errors`` turns them into the JSON error
shape ``{"error": {"code", "message", "details"}}`` in one place. Library errors are translated
at the boundary with ``raise ... from exc``.

    HookhubError                     500 internal_error (never shown with its message)
    ├── BadRequest                   400 bad_request
    │   └── InvalidJSON              400 invalid_json
    ├── Unauthorized                 401 unauthorized
    │   └── SignatureInvalid         401 invalid_signature
    ├── Forbidden                    403 forbidden (the API key's scope does not allow it)
    ├── NotFound                     404 not_found
    ├── RequestTimeout               408 request_timeout
    ├── Conflict                     409 conflict
    ├── PayloadTooLarge              413 payload_too_large
    ├── ValidationFailed             422 validation_error
    │   ├── TemplateInvalid          422 template_invalid (an email template does not compile)
    │   ├── TemplateRenderError      422 template_render_error (it fails for this recipient)
    │   └── HeaderInvalid            422 header_invalid (a custom email header is refused)
    ├── RateLimited                  429 rate_limited (carries retry_after)
    ├── HeadersTooLarge              431 request_header_fields_too_large
    ├── Unavailable                  503 unavailable
    ├── SecretKeyError               500 secret_key (a secret key is missing or cannot decrypt)
    └── DkimKeyError                 500 dkim_key (the DKIM settings or key are unusable)
"""

from __future__ import annotations

from typing import Any, ClassVar


class HookhubError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "Internal error."

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class BadRequest(HookhubError):
    status = 400
    code = "bad_request"
    default_message = "The request is malformed."


class InvalidJSON(BadRequest):
    code = "invalid_json"
    default_message = "The body is not valid JSON."


class Unauthorized(HookhubError):
    status = 401
    code = "unauthorized"
    default_message = "A valid API key is required (Authorization: Bearer <key>)."


class SignatureInvalid(Unauthorized):
    code = "invalid_signature"
    default_message = "The signature is missing or does not verify."


class Forbidden(HookhubError):
    status = 403
    code = "forbidden"
    default_message = "The API key's scope does not allow this operation."


class NotFound(HookhubError):
    status = 404
    code = "not_found"
    default_message = "Not found."


class RequestTimeout(HookhubError):
    status = 408
    code = "request_timeout"
    default_message = "The request did not arrive in time."


class Conflict(HookhubError):
    status = 409
    code = "conflict"
    default_message = "The request conflicts with the current state."


class PayloadTooLarge(HookhubError):
    status = 413
    code = "payload_too_large"
    default_message = "The body is larger than the configured limit."


class ValidationFailed(HookhubError):
    status = 422
    code = "validation_error"
    default_message = "The request is invalid."


class RateLimited(HookhubError):
    status = 429
    code = "rate_limited"
    default_message = "Too many requests."

    def __init__(self, message: str | None = None, *, retry_after: float = 1.0) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after


class HeadersTooLarge(HookhubError):
    status = 431
    code = "request_header_fields_too_large"
    default_message = "The request's headers are too large."


class Unavailable(HookhubError):
    status = 503
    code = "unavailable"
    default_message = "A dependency is unavailable; try again shortly."


class SecretKeyError(HookhubError):
    """The secret key is missing, malformed, or not the one stored secrets were sealed with.

    A deployment error rather than a client's: the CLI refuses to start with its message.
    """

    code = "secret_key"
    default_message = "The secret key is missing or does not decrypt the stored secrets."


class TemplateInvalid(ValidationFailed):
    """An email template does not compile; details name the field, the line and Jinja's message."""

    code = "template_invalid"
    default_message = "The template does not compile."


class TemplateRenderError(ValidationFailed):
    """A template failed to render for one recipient: that email fails, never its batch."""

    code = "template_render_error"
    default_message = "The template failed to render."


class HeaderInvalid(ValidationFailed):
    """A custom email header is malformed, injects a line, or overrides a structural header."""

    code = "header_invalid"
    default_message = "An email header is invalid."


class DkimKeyError(HookhubError):
    """The DKIM settings are incomplete or the key does not load: a deployment error."""

    code = "dkim_key"
    default_message = "The DKIM settings or key are unusable."
