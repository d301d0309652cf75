"""Dashboard pages: every module here that has a ``router`` (a ``fastapi.APIRouter``) is
included by ``hookhub.web.app.install_dashboard``, behind the sign-in and CSRF checks."""
