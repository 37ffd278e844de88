"""Fairness: bias-probe runs (``diffwatch bias probe``) per model version and over time.

What a person sees: the newest run's headline figures; per occupation, the share of each
perceived class for each version chosen (its latest run), with intervals; the headline metric
of every run over time; and one run opened: its changes since the run before it, its abstain
rates, how far its readers agree, and its images per prompt with what each reader perceived.

Everything shown is a *perceived* attribute of a generated image as a classifier reads it,
never a fact about a person, and the page says so wherever a class is named. Suite, model and
version names, prompts and terms come from people: they reach Markdown only through
``diffwatch.app.text.md``, Plotly only through ``text.plotly``, and are otherwise shown with
``st.text`` or in table cells and widget options (plain text).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from diffwatch.app import fairness_data as fd
from diffwatch.app import fairness_shape as fs
from diffwatch.app.text import md
from diffwatch.app.views import fairness_charts as fc
from diffwatch.app.views import fairness_run
from diffwatch.app.views.fairness_filters import multi, select, url_names

VERSIONS_SHOWN = 3  # versions compared by default: the newest three
EXPLAIN = (
    "Every figure on this page is a **perceived** attribute of a generated image: what a "
    "classifier (CLIP zero-shot, NudeNet's face detector, the colour of the face's skin "
    "pixels) reads in the pixels. It is never a fact about a person: generated people have "
    "no gender, age or skin tone of their own, and the classifiers err and carry biases of "
    "their own. Use these numbers to compare how model versions portray occupations, never "
    "to label anyone. Methods and limits: docs/bias.md."
)
NO_RUNS = (
    "No bias probe run has finished yet. Make one with `diffwatch bias probe --pipeline DIR` "
    "(a diffusers pipeline directory; `--suite FILE` for your own prompts, by default the "
    "built-in occupations suite): it generates the suite's neutral prompts ('a photo of a "
    "doctor') with fixed seeds and records what the classifiers perceive in each image. "
    "docs/bias.md explains how to read the results."
)
BY = {"term": "occupation (its prompts pooled)", "prompt": "prompt"}


def render() -> None:
    """Draw the page."""
    st.title("Fairness")
    st.info(EXPLAIN, icon=":material/diversity_3:")
    suites = fd.suites()
    if not suites:
        st.info(NO_RUNS)
        fairness_run.unfinished()
        return
    newest_any = fd.runs()
    sb = st.sidebar
    sb.header("Filters")
    default_suite = newest_any[0]["suite_name"] if newest_any else suites[0]
    suite = select(sb, "Probe suite", suites, "suite", default_suite)
    suite_runs = fs.done_runs(fd.runs(suite))
    models = fs.newest_first_unique(r["model"] for r in suite_runs)
    url = url_names()
    chosen_models = multi(sb, "Model", models, "model", models[:1], url.models)
    of_models = [r for r in suite_runs if r["model"] in chosen_models]
    versions = fs.newest_first_unique(r["model_version"] for r in of_models)
    chosen_versions = multi(
        sb, "Versions (the latest run of each)", versions, "version",
        versions[:VERSIONS_SHOWN], url.versions,
    )  # fmt: skip
    # the bars read per-prompt shares: these few runs are read whole
    selected = [fd.whole(r) for r in fs.latest_per_version(of_models, chosen_models,
                                                           chosen_versions)]  # fmt: skip
    if not selected:
        st.info("Pick a model and at least one of its versions (in the sidebar) to see their "
                "probe runs.")  # fmt: skip
        fairness_run.unfinished()
        return
    newest = selected[-1]
    attrs = fs.attributes_of(selected)
    if not attrs:
        st.warning("These runs' summaries hold no perceived attributes (no image was read).")
        return
    head = fs.as_dict(fs.as_dict(newest["summary"]).get("headline")).get("attribute")
    attr = select(sb, "Perceived attribute", attrs, "attribute",
                  head if head in attrs else attrs[0], fs.attribute_label)  # fmt: skip
    readers = fs.readers_of(selected, attr)
    reader = select(sb, "Read by", readers, "reader",
                    "clip" if "clip" in readers else readers[0], fs.reader_label)  # fmt: skip
    sb.caption("Copy the address bar to share this view.")
    several = len(chosen_models) > 1
    # Colours follow every version of the chosen models, oldest first, so a version keeps
    # its colour in the bars and the trend whichever versions are ticked.
    order = fs.newest_first_unique(fs.series_label(r, several) for r in of_models)[::-1]
    colours = fc.series_colours(order)
    headline(newest, fs.previous_of(newest, suite_runs), attr, reader)
    shares(selected, attr, reader, several, colours)
    trend(of_models, attr, reader, several, colours)
    fairness_run.one_run(of_models, newest, attr, reader)
    fairness_run.unfinished()


# -- the sections --------------------------------------------------------------------------


def headline(run: dict[str, Any], previous: dict[str, Any] | None, attr: str, reader: str) -> None:
    """The newest run's figures for the attribute and reader chosen."""
    k = fs.kpis(run, previous, attr, reader)
    c = st.columns(5)
    change = k["change"]
    c[0].metric(
        f"Worst-{k['k'] or 'k'} MaxSkew",
        "–" if k["worst_k"] is None else f"{k['worst_k']:.3f} nats",
        delta=None if change is None else f"{change:+.3f} since the last run",
        delta_color="inverse",
        help="The mean, over the k most skewed prompts, of MaxSkew = the largest ln(share "
        "of a perceived class / its expected share): 0 = as expected; ln 2 = 0.69 = a class "
        "twice as common as expected. An arrow up: more skewed than the run before.",
    )
    if k["abs_gap"] is not None:
        c[1].metric("Mean |p − 0.5|", f"{k['abs_gap']:.3f}",
                    help="Mean over prompts of how far one class's share is from an even "
                    "split: 0 = half and half, 0.5 = every counted image one class.")  # fmt: skip
    else:
        kl = "–" if k["kl"] is None else f"{k['kl']:.3f} nats"
        c[1].metric("Mean KL to uniform", kl,
                    help="Mean over prompts of the KL divergence of the perceived shares from "
                    "equal shares (nats): 0 = every class equally often.")  # fmt: skip
    c[2].metric("Person-gate abstain rate", fs.pct(k["gate"]),
                help="Images in which no clear person was perceived: not counted for any "
                "attribute.")  # fmt: skip
    c[3].metric(f"Abstained: {fs.reader_label(reader)}", fs.pct(k["abstain"]),
                help="Images this reader gave no class (no person, no face, or too close to "
                "call): not counted in the shares.")  # fmt: skip
    c[4].metric("Images in the run", f"{k['images']:,}")
    than = (
        f"The change compares it with run #{previous['id']} "
        f"({md(previous.get('model_version'))}), the run before it on this suite and model."
        if previous
        else "There is no earlier run of this suite and model to compare it with."
    )
    st.caption(
        f"Newest run #{run['id']}: {md(run.get('model'))} · {md(run.get('model_version'))}, "
        f"finished {fs.when(run.get('finished_at'))} UTC. {md(fs.attribute_label(attr))}, read "
        f"by {md(fs.reader_label(reader))}. {than}"
    )


def shares(
    selected: list[dict[str, Any]], attr: str, reader: str, several: bool,
    colours: dict[str, str],
) -> None:  # fmt: skip
    """Per occupation, each version's perceived shares (bars, intervals) and their table."""
    st.subheader("Per occupation, by version")
    classes = fs.classes_of(selected, attr, reader)
    left, right = st.columns([1, 2])
    by = left.radio("Group by", list(BY), format_func=BY.get, horizontal=True, key="fairness-by")
    series = [fs.series_label(r, several) for r in selected]
    rows = [
        row
        for r in selected
        for row in fs.share_rows(r, fs.series_label(r, several), attr, reader, by)
    ]
    if not any(r["n"] for r in rows):
        st.info("No image of these runs was given a class by this reader: every one abstained.")
        return
    level = fs.level_of(selected[-1]["summary"])
    who = fs.reader_label(reader)
    if len(classes) == 2:
        cls = right.radio("Share of", classes, format_func=lambda c: fs.class_label(attr, c),
                          horizontal=True, key=f"fairness-class-{attr}")  # fmt: skip
        fc.two_class_bars(
            rows, attr, cls, series, colours,
            f"{fs.sentence(fs.class_label(attr, cls))}: share of each {BY[by].split()[0]}'s "
            f"images, by version ({who})",
        )  # fmt: skip
        st.caption(
            f"Bars: the share of the images a reader gave a class that it perceived as "
            f"{md(fs.short_class(attr, cls))}; whiskers: {100 * level:g} % Wilson intervals; "
            "dashed line: an even split. Images where the reader abstained are not counted "
            "(see the abstain rates below)."
        )
    else:
        fc.stacked_shares(
            rows, attr, classes, series,
            f"{fs.attribute_label(attr)}: shares of each {BY[by].split()[0]}'s images, by "
            f"version ({who})",
        )  # fmt: skip
        swatch = " Colours: the Monk Skin Tone scale's swatches." if attr == "skin_tone" else ""
        st.caption(
            "Each bar: one version's images of the occupation, split by the class the reader "
            f"perceived (100 % = the images it gave a class; abstentions are not counted).{swatch}"
        )
    with st.expander("The shares as a table"):
        st.dataframe(
            pd.DataFrame(fs.share_table(rows, attr, level)), hide_index=True, width="stretch"
        )


def trend(
    runs: list[dict[str, Any]], attr: str, reader: str, several: bool, colours: dict[str, str]
) -> None:
    """The chosen metric of every finished run of the chosen models, over time."""
    st.subheader("Trend over probe runs")
    two = len(fs.classes_of(runs, attr, reader)) == 2
    metrics = [m for m in fs.TREND_METRICS if two or m not in fs.TWO_CLASS_ONLY]
    left, _ = st.columns([1, 3])
    metric = left.selectbox("Metric", metrics, format_func=fs.TREND_METRICS.get,
                            key="fairness-metric")  # fmt: skip
    rows = fs.trend_rows(runs, attr, reader, metric, several)
    if not rows:
        st.info("No run of these models has this metric.")
        return
    fc.trend(
        rows, metric, colours,
        f"{fs.sentence(fs.TREND_METRICS[metric])} per run: {fs.attribute_label(attr)}, read by "
        f"{fs.reader_label(reader)}",
    )  # fmt: skip
    st.caption(
        f"One dot per finished run ({len(rows)}), coloured by version; the line joins a "
        "model's runs in time order. Skews and gaps: 0 = as expected, higher = more skewed."
    )
