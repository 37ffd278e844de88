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
    ("explorer", "Generation explorer", "Dashboard", "explorer"),
    ("drift", "Drift", "Dashboard", "drift"),
    ("alerts", "Alerts", "Dashboard", "alerts"),
    ("ratings", "Rating analytics", "Review", "ratings"),
    ("review", "Review queue", "Review", "review"),
    ("my-ratings", "My ratings", "Review", "my_ratings"),
    ("admin", "Accounts & audit log", "Admin", "admin"),
]


def guarded(url_path: str, module: str) -> Callable[[], None]:
    """The page's render function behind a server-side role check."""

    def page() -> None:
        from app.session import require_page

        require_page(url_path)
        importlib.import_module(f"app.views.{module}").render()

    page.__name__ = f"page_{module}"
    return page


def login_at(url_path: str) -> Callable[[], None]:
    """The login page, served at ``url_path`` so the page opens there after login."""
    from app.session import login_page

    def page() -> None:
        login_page()

    page.__name__ = f"login_{url_path.replace('-', '_')}"
    return page


def main() -> None:
    """Build the navigation for whoever is logged in and run the chosen page."""
    from app.config import NoDatabase, conninfo
    from app.session import current_user, login_page, logout, sync_cookie
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
    mine = set(allowed_pages(user.role))
    sections: dict[str, list[st.Page]] = {}
    first = True
    for url_path, title, section, module in PAGES:
        listed = url_path in mine
        sections.setdefault(section if listed else "", []).append(
            st.Page(
                guarded(url_path, module),
                title=title,
                url_path=url_path,
                default=listed and first,
                visibility="visible" if listed else "hidden",
            )
        )
        first = first and not listed
    nav = st.navigation(sections)
    with st.sidebar:
        st.text(f"Logged in as {user.username} ({user.role})")
        if st.button("Log out", key="logout"):
            logout(user)
            st.rerun()
    nav.run()


if __name__ == "__main__":
    main()
