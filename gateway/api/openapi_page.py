"""The browsable `/docs` page: Swagger UI when its files load, else a plain listing of the document.

Swagger UI's script and style come from the jsDelivr CDN, as with FastAPI's own page: the gateway ships no
JavaScript of its own. The page's HTML already lists every operation (method, path, summary, auth, request
body and answers), rendered here from the document, so a browser that cannot reach the CDN (an offline
network) still gets a useful page; when Swagger UI loads, it replaces the listing.
"""

from __future__ import annotations

from html import escape
from typing import Any

SWAGGER_JS = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"
SWAGGER_CSS = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"
_METHODS = ("get", "post", "put", "patch", "delete")
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .3rem .6rem; text-align: left;
vertical-align: top; } code { font-size: .95em; }
"""


def _schema_name(media: dict[str, Any]) -> str:
    schema = media.get("schema", {})
    ref = schema.get("$ref")
    return ref.rsplit("/", 1)[1] if isinstance(ref, str) else str(schema.get("type", ""))


def _body(operation: dict[str, Any]) -> str:
    content = operation.get("requestBody", {}).get("content", {})
    return "<br>".join(f"{escape(m)}: <code>{escape(_schema_name(v))}</code>" for m, v in content.items())


def _answers(operation: dict[str, Any]) -> str:
    rows = []
    for status, answer in operation.get("responses", {}).items():
        media = ", ".join(escape(m) for m in answer.get("content", {}))
        rows.append(f"<b>{escape(status)}</b> {escape(answer.get('description', ''))} <i>{media}</i>")
    return "<br>".join(rows)


def _auth(operation: dict[str, Any]) -> str:
    return " or ".join(escape(name) for req in operation.get("security", []) for name in req) or "none"


def _rows(doc: dict[str, Any]) -> str:
    rows = []
    for path, item in doc.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            text = escape(operation.get("summary", ""))
            if operation.get("description"):
                text += f"<br><small>{escape(operation['description'])}</small>"
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{escape(path)}</code></td>"
                f"<td>{text}</td><td>{_auth(operation)}</td><td>{_body(operation)}</td>"
                f"<td>{_answers(operation)}</td></tr>"
            )
    return "\n".join(rows)


def render(doc: dict[str, Any], openapi_url: str) -> str:
    info = doc.get("info", {})
    title = escape(f"{info.get('title', 'API')} {info.get('version', '')}".strip())
    url = escape(openapi_url)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="{SWAGGER_CSS}">
<style>{_STYLE}</style>
</head>
<body>
<div id="swagger-ui">
<h1>{title}</h1>
<p>The machine-readable OpenAPI 3.1 document is at <a href="{url}">{url}</a>. The interactive explorer
(Swagger UI) loads from cdn.jsdelivr.net; until it does, or when it cannot, this page lists the operations.
Request and answer schemas are in the document's <code>components.schemas</code>.</p>
<table>
<tr><th>method</th><th>path</th><th>what</th><th>auth</th><th>request body</th><th>answers</th></tr>
{_rows(doc)}
</table>
</div>
<script src="{SWAGGER_JS}"></script>
<script>
if (window.SwaggerUIBundle) {{
  SwaggerUIBundle({{url: "{url}", dom_id: "#swagger-ui", deepLinking: true}});
}}
</script>
</body>
</html>
"""
