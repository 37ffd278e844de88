"""Rating analytics (placeholder)."""

import streamlit as st


def render() -> None:
    st.title("Rating analytics")
