"""Form-encoded requests (multipart/form-data): the `query` and `param_*` fields.

External tables (file parts) are refused with Code 48: the adapter does not support them.
"""

from __future__ import annotations

import email.parser
import email.policy
from typing import cast

from .errors import AdapterError


def is_form(content_type: str) -> bool:
    return content_type.lower().startswith("multipart/form-data")


def read_form(
    content_type: str, body: bytes, query: str | None, query_params: dict[str, str]
) -> tuple[str | None, bytes]:
    """The form's `query` (else `query`), its `param_*` added to `query_params`; no body left."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        # decode=True gives a form field's bytes (a Message only for a nested multipart part).
        payload = cast(bytes, part.get_payload(decode=True) or b"")
        if part.get_filename() is not None:
            raise AdapterError(
                48, "NOT_IMPLEMENTED", "External tables are not supported by the chdb adapter"
            )
        if name == "query":
            query = payload.decode()
        elif isinstance(name, str) and name.startswith("param_"):
            query_params[name[6:]] = payload.decode()
    return query, b""
