"""Keep secrets out of logs and messages: mask credentials embedded in URLs."""
from __future__ import annotations

import re

_CRED = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]+)(:(?P<pw>[^@/\s]*))?@")


def mask_url(text: str) -> str:
    """Replace ``user:password@`` in every URL inside ``text`` by ``***:***@``."""
    return _CRED.sub(lambda m: f"{m.group('scheme')}***:***@", str(text))
