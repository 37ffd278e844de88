"""Accounts & audit log (placeholder)."""

import streamlit as st


def render() -> None:
    st.title("Accounts & audit log")
