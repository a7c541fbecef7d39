"""``appliance check PATH|URL``: validate a call-control document and print its problems.

Each problem is printed as ``<source>:<line>: error <code>: <message>``, the format editors
and CI logs already link to.
"""

from __future__ import annotations

import sys
from typing import TextIO

from appliance.twiml.fetch import Fetcher, FetchError, resolve_url
from appliance.twiml.parse import TwimlError, check_twiml, parse_twiml


def _format(source: str, error: TwimlError) -> str:
    where = f"{source}:{error.line}" if error.line is not None else source
    return f"{where}: {error.kind} {error.code}: {error.message}"


def run_check(target: str, out: TextIO | None = None) -> int:
    """Check the document at ``target`` (a path, file: or http(s) URL); 0 when it is valid."""
    out = out or sys.stdout
    url = resolve_url("", target)
    try:
        # Unsigned: there is no auth token here, and the request is no call's.
        _, body, _ = Fetcher(account_sid="", auth_token="").fetch_document(url, "GET", {})
    except FetchError as exc:
        print(f"{target}: error {exc.code}: {exc.message}", file=out)
        return 1
    problems = check_twiml(body, source=target)
    for problem in problems:
        print(_format(target, problem), file=out)
    if any(not problem.warning for problem in problems):
        return 1
    count = len(parse_twiml(body, source=target).verbs)
    print(f"OK: {count} verb{'' if count == 1 else 's'}", file=out)
    return 0
