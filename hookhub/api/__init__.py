"""The HTTP face of Hookhub: the REST API, the inbound receiver and operational endpoints."""
