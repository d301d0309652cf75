"""Acceptance fixtures: the dashboard's browser harness (see browser_support.py)."""

from tests.acceptance.browser_support import (  # noqa: F401  (fixtures, by name)
    admin_page,
    anonymous_page,
    browser,
    dashboard_server,
    viewer_page,
)
