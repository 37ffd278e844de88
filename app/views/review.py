"""Review queue (placeholder)."""

import streamlit as st


def render() -> None:
    st.title("Review queue")
