"""HTTP-facing helpers shared by API handlers: error bodies and the OpenAPI document."""
