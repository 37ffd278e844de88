"""My ratings (placeholder)."""

import streamlit as st


def render() -> None:
    st.title("My ratings")
