"""The dashboard: server-rendered pages in the API's process, calling the same services.

``app.install_dashboard`` wires it into the FastAPI app; pages live in ``hookhub.web.pages``
(each module with a ``router``), templates in ``templates/``, vendored assets in ``static/``.
Nothing here calls the REST API over HTTP or runs SQL (queries stay in ``hookhub.store``).
"""
