"""Cost: attributed and fleet cost per image, by model version and GPU type; GPU prices."""

from __future__ import annotations

import streamlit as st

from diffwatch.app import charts, data, session, sidebar
from diffwatch.app.text import md


def render() -> None:
    """Draw the page."""
    f = sidebar.filters()
    st.title("Cost")
    st.caption(
        "Attributed cost per image = inference GPU time × the GPU type's price per hour ÷ "
        "batch size. Fleet cost also pays for idle GPU time seen by the GPU collector."
    )
    for by, label in (("version", "model version"), ("gpu_type", "GPU type")):
        df = data.cost(f, by)
        if charts.empty(df, f"cost by {label}"):
            continue
        df = df.assign(cost_per_1k_images_usd=df["cost_per_image_usd"] * 1000)
        charts.bar(
            df,
            "group",
            "cost_per_1k_images_usd",
            f"Attributed cost per 1,000 images by {label} (USD)",
        )
    fleet = data.fleet(f)
    st.subheader("Fleet cost by GPU type")
    if not charts.empty(fleet, "GPU samples"):
        st.dataframe(fleet, hide_index=True, width="stretch")
    st.subheader("GPU prices (USD per GPU-hour)")
    prices = data.prices()
    st.dataframe(prices, hide_index=True, width="stretch")
    user = session.current_user()
    if user is None or user.role != "admin":
        st.caption("Only admins change prices.")
        return
    with st.form("price"):
        st.caption("Add or change a price; costs are recomputed from the rollups at once.")
        c1, c2, c3 = st.columns([2, 1, 3])
        gpu = c1.text_input("GPU type (as the logs name it)")
        usd = c2.number_input("USD / hour", min_value=0.0, step=0.1, format="%.3f")
        note = c3.text_input("Note (source of the price)")
        if st.form_submit_button("Save price"):
            if not gpu.strip():
                st.error("Give the GPU type.")
            else:
                data.set_price(gpu.strip(), float(usd), note or None)
                st.success(f"Saved {md(gpu.strip())}: {usd:.3f} USD/h")
