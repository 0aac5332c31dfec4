"""roles/flower's verify probe, run on the Flower host by ``ansible.builtin.script`` with the app's Python.

One process instead of four module runs (``uri`` until Flower answers, then once per page that must
refuse an anonymous request): waits, bounded, until ``<url>/healthcheck`` answers 200, then asks each
of ``--anonymous`` without credentials and without following redirects. Prints one JSON object:
``health`` (the last status, 0 when nothing answered), ``error`` (the last failure), ``waited`` (s) and
``anonymous`` (path -> status). Exit status 0: the tasks judge what it printed.
"""

from __future__ import annotations

import argparse
import json
import ssl
import time
import urllib.error
import urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl) -> None:  # noqa: ANN001
        """A redirect is the answer itself (Flower's login page), not followed."""
        return None


def status(opener: urllib.request.OpenerDirector, url: str, timeout: float) -> tuple[int, str]:
    """The HTTP status of a GET of url (0 and the reason when there was no answer)."""
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, ""
    except urllib.error.HTTPError as error:
        return error.code, ""
    except (urllib.error.URLError, OSError) as error:
        return 0, str(getattr(error, "reason", error))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--ca", default="")
    parser.add_argument("--wait", type=float, default=30)
    parser.add_argument("--anonymous", nargs="*", default=[])
    args = parser.parse_args()
    context = ssl.create_default_context(cafile=args.ca or None)
    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=context))
    started = time.monotonic()
    health, error = status(opener, f"{args.url}/healthcheck", 5)
    while health != 200 and time.monotonic() - started < args.wait:
        time.sleep(1)
        health, error = status(opener, f"{args.url}/healthcheck", 5)
    waited = round(time.monotonic() - started, 1)
    report = {"health": health, "error": error, "waited": waited, "anonymous": {}}
    if health == 200:
        report["anonymous"] = {path: status(opener, f"{args.url}{path}", 10)[0] for path in args.anonymous}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
