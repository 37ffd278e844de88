"""The Streamlit options ``diffwatch app`` serves the dashboard with, and why.

Pure: no Streamlit here (``diffwatch.cli.app`` turns these into ``streamlit run`` flags).

- ``server.allowedHosts``: the dashboard answers only to the host names people use to open
  it, so a page on another site whose name an attacker re-points at our address (DNS
  rebinding) gets a 400 instead of the login form. Streamlit itself checks the list on its
  WebSocket; ``diffwatch.app.guard`` checks it on every HTTP request too.
- ``client.showErrorDetails = "none"``: an exception in a page never shows its traceback,
  message or file paths in the browser; ``diffwatch.app.errors`` shows an error id instead and logs
  the traceback under that id.
- ``client.toolbarMode = "viewer"``: no developer menu (rerun, clear cache) for users.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
_WILDCARD = ("", "0.0.0.0", "::")  # bind addresses that mean every interface


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:  # a host name
        return False


def allowed_hosts(dashboard_url: str, address: str, extra: Iterable[str] = ()) -> list[str]:
    """The Host names the dashboard answers to (ports are not compared).

    ``dashboard_url``'s host (DIFFWATCH_DASHBOARD_URL, where people open it), the address
    it is bound to unless that is every interface, the localhost names when it is bound to
    loopback or to every interface (a DNS-rebinding page never arrives under those names),
    and ``extra`` (DIFFWATCH_DASHBOARD_HOSTS: more names, ``*.example.com``, or ``*`` for
    any).
    """
    hosts: list[str] = []
    name = urlsplit(dashboard_url.strip()).hostname
    if name:
        hosts.append(name)
    bound = address.strip().strip("[]").lower()
    if bound not in _WILDCARD:
        hosts.append(bound)
    if bound in _WILDCARD or _is_loopback(bound):
        hosts.extend(LOOPBACK_HOSTS)
    hosts.extend(h.strip().lower() for h in extra if h.strip())
    return list(dict.fromkeys(h.rstrip(".") for h in hosts))


def streamlit_options(dashboard_url: str, address: str, extra_hosts: Iterable[str] = ()) -> dict:
    """Streamlit config options (``section.name``: value) that ``diffwatch app`` sets."""
    return {
        "server.allowedHosts": allowed_hosts(dashboard_url, address, extra_hosts),
        "client.showErrorDetails": "none",
        "client.toolbarMode": "viewer",
    }
