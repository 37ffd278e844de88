"""The diffwatch dashboard: ``diffwatch app`` runs ``streamlit run`` on this file.

Someone who is not logged in gets only the login page, at every address (so a shared link
opens its page once they have logged in). After login the navigation lists only the pages the
account's role may open (``diffwatch.auth.roles.PAGE_ROLES``); the others stay reachable by
address only to say "Not allowed", because each page checks the role again on the server
before it draws anything.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import streamlit as st

# url path, title, section, module under app.views
PAGES: list[tuple[str, str, str, str]] = [
    ("overview", "Overview", "Dashboard", "overview"),
    ("cost", "Cost", "Dashboard", "cost"),
    ("latency", "Latency & throughput", "Dashboard", "latency"),
    ("gpu", "GPU", "Dashboard", "gpu"),
    ("quality", "Quality & safety", "Dashboard", "quality"),
    ("versions", "Model versions", "Dashboard", "versions"),
    ("releases", "Releases", "Dashboard", "releases"),
    ("explorer", "Generation explorer", "Dashboard", "explorer"),
    ("drift", "Drift", "Dashboard", "drift"),
    ("fairness", "Fairness", "Dashboard", "fairness"),
    ("alerts", "Alerts", "Dashboard", "alerts"),
    ("ratings", "Rating analytics", "Review", "ratings"),
    ("review", "Review queue", "Review", "review"),
    ("compare", "Side-by-side", "Review", "compare"),
    ("my-ratings", "My ratings", "Review", "my_ratings"),
    ("admin", "Accounts & audit log", "Admin", "admin"),
]


def guarded(url_path: str, module: str) -> Callable[[], None]:
    """The page's render function behind a server-side role check."""

    def page() -> None:
        from diffwatch.app.session import require_page

        require_page(url_path)
        importlib.import_module(f"diffwatch.app.views.{module}").render()

    page.__name__ = f"page_{module}"
    return page


def login_at(url_path: str) -> Callable[[], None]:
    """The login page, served at ``url_path`` so the page opens there after login."""
    from diffwatch.app.session import login_page

    def page() -> None:
        login_page()

    page.__name__ = f"login_{url_path.replace('-', '_')}"
    return page


DEFAULT_SUFFIX = "--default"


def to_default(default: st.Page) -> Callable[[], None]:
    """A page that opens ``default`` at ``/``, keeping the address's query parameters."""

    def page() -> None:
        st.switch_page(
            default, query_params={k: st.query_params.get_all(k) for k in st.query_params}
        )

    page.__name__ = "to_default"
    return page


def pages_for(mine: set[str]) -> dict[str, list[st.Page]]:
    """The navigation of a role that may open the pages ``mine``, by section.

    The first of them is the default page, served at ``/``. Streamlit serves a default page
    only there (its own url path answers "Page not found"), so its url path gets a hidden
    page that switches to it: ``/overview?range=7d`` opens ``/?range=7d``, Overview
    highlighted in the navigation. Streamlit keys a page by its url path, so the default
    page is named ``<path>--default`` internally (a name no address reaches).
    """
    sections: dict[str, list[st.Page]] = {}
    hidden: list[st.Page] = []
    for url_path, title, section, module in PAGES:
        page = guarded(url_path, module)
        if url_path not in mine:
            hidden.append(st.Page(page, title=title, url_path=url_path, visibility="hidden"))
        elif not sections:  # the first page of the role: the default, at /
            default = st.Page(page, title=title, url_path=url_path + DEFAULT_SUFFIX, default=True)
            sections[section] = [default]
            hidden.append(
                st.Page(to_default(default), title=title, url_path=url_path, visibility="hidden")
            )
        else:
            sections.setdefault(section, []).append(st.Page(page, title=title, url_path=url_path))
    if hidden:
        sections[""] = hidden
    return sections


def main() -> None:
    """Build the navigation for whoever is logged in and run the chosen page."""
    from diffwatch.app.config import NoDatabase, conninfo
    from diffwatch.app.session import current_user, login_page, logout, sync_cookie
    from diffwatch.auth.roles import allowed_pages

    st.set_page_config(page_title="diffwatch", layout="wide")
    try:
        conninfo()
    except NoDatabase as exc:
        st.error(str(exc))
        st.stop()
    user = current_user()
    sync_cookie()
    if user is None:
        login = [st.Page(login_page, title="Log in", url_path="login", default=True)]
        hidden = [
            st.Page(login_at(url_path), title="Log in", url_path=url_path, visibility="hidden")
            for url_path, *_ in PAGES
        ]
        st.navigation(login + hidden, position="hidden").run()
        return
    nav = st.navigation(pages_for(set(allowed_pages(user.role))))
    with st.sidebar:
        st.text(f"Logged in as {user.username} ({user.role})")
        if st.button("Log out", key="logout"):
            logout(user)
            st.rerun()
    nav.run()


if __name__ == "__main__":
    main()
