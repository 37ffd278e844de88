"""``diffwatch demo``: the whole pipeline on a simulated service (``diffwatch.demo.run``)."""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from diffwatch.cli.common import fail, iso_time, runtime
from diffwatch.cli.options import (
    DEFAULT_MODEL,
    DEFAULT_PRETRAINED,
    AsJson,
    ClipModel,
    ClipModelConfig,
    ClipOptions,
    DbUrl,
)
from diffwatch.demo.scoring import DEFAULT_SCORE_LIMIT

if TYPE_CHECKING:
    from collections.abc import Iterator

    from diffwatch.demo.alerts import AlertsReport
    from diffwatch.demo.run import DemoResult, Progress, ReviewReport
    from diffwatch.demo.scoring import ScoringReport


HELP = (
    "Simulate a generation service and ingest its logs, images and GPU metrics.\n\n"
    "The service writes JSON-lines logs (rotated by rename, with a few broken lines) and PNG "
    "images drawn to match their prompts; the real log collector ingests them while they are "
    "written, and GPU samples go through the GPU collector's writer.\n\n"
    "Then the real scoring worker scores an even sample of the images over the window on the "
    "CPU: NSFW flags (NudeNet) and CLIP prompt alignment. CLIP uses real weights when they "
    "are here (--clip-checkpoint, or the pretrained tag in the Hugging Face cache); else the "
    "demo CLIP, a tiny CLIP trained on the demo's own scenes (about a minute the first time, "
    "then reused from DIFFWATCH_HOME/demo-models), labelled as such wherever it shows.\n\n"
    "Then the drift checks run on the history: prompt drift and image drift (the last quarter "
    "of the window against the rest; image drift reads the CLIP embeddings that scoring "
    "stored), re-generation of a few logged prompts and of the shipped golden set. "
    "Without --pipeline (or DIFFWATCH_PIPELINE) they use a tiny random-weight pipeline, and "
    "without CLIP weights they use the demo CLIP too; runs made with the tiny pipeline are "
    "labelled demo runs.\n\n"
    "Then it creates the demo accounts (admin, ops, rater1, rater2) with new random passwords, "
    "printed at the end and written to OUT/credentials.txt (mode 0600), queues scored images "
    "for review and has two simulated raters rate most of them through the real queue.\n\n"
    "Re-running adds only the minutes the database does not hold yet: nothing is stored twice."
)


def demo(
    hours: Annotated[
        float, typer.Option(min=0.05, max=24 * 90, help="Hours of simulated history.")
    ] = 24.0,
    rate: Annotated[
        float,
        typer.Option(min=0.1, max=2000, help="Requests per minute (daily average)."),
    ] = 20.0,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where the service writes logs and images. \\[default: DIFFWATCH_HOME/demo]",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Random seed of the simulation.")] = 0,
    end: Annotated[
        str | None,
        typer.Option(
            help="End of the simulated history, ISO 8601 with offset "
            "(e.g. 2026-01-31T12:00:00+00:00). \\[default: now]",
            show_default=False,
        ),
    ] = None,
    score_limit: Annotated[
        int,
        typer.Option(
            min=0,
            help="Score at most this many generations, an even sample over the window "
            "(0: all; about 60 images/s on 2 idle CPU cores).",
        ),
    ] = DEFAULT_SCORE_LIMIT,
    clip_checkpoint: Annotated[
        str | None,
        typer.Option(
            help="A local open_clip weights file; without it real CLIP runs only if the "
            "--clip-pretrained weights are in the Hugging Face cache, else the demo CLIP.",
            show_default=False,
        ),
    ] = None,
    clip_model: ClipModel = DEFAULT_MODEL,
    clip_pretrained: Annotated[
        str, typer.Option(help="open_clip pretrained tag (looked up in the cache only).")
    ] = DEFAULT_PRETRAINED,
    clip_model_config: ClipModelConfig = None,
    demo_clip: Annotated[
        bool,
        typer.Option(
            "--demo-clip/--no-demo-clip",
            help="Without real CLIP weights, train (first run) or reuse the demo CLIP; with "
            "--no-demo-clip CLIP is skipped instead.",
        ),
    ] = True,
    drift: Annotated[
        bool, typer.Option("--drift/--no-drift", help="Run the drift checks at the end.")
    ] = True,
    accounts: Annotated[
        bool,
        typer.Option(
            "--accounts/--no-accounts",
            help="Create the demo accounts (new passwords each run) and seed review ratings.",
        ),
    ] = True,
    alerts: Annotated[
        bool,
        typer.Option(
            "--alerts/--no-alerts",
            help="Load the demo alert rules, replay their last 30 minutes of evaluation and "
            "send the emails (into a local SMTP sink unless DIFFWATCH_SMTP_HOST is set).",
        ),
    ] = True,
    alert_to: Annotated[
        str,
        typer.Option(help="Recipient of the demo's alert emails (for a real SMTP server)."),
    ] = "oncall@example.com",
    pipeline: Annotated[
        str | None,
        typer.Option(
            envvar="DIFFWATCH_PIPELINE",
            help="A diffusers pipeline (local directory or cached hub id) for the drift "
            "checks. \\[default: a tiny random-weight pipeline, labelled as such]",
            show_default=False,
        ),
    ] = None,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve/--no-serve",
            help="Then serve the dashboard on the demo's data (as `diffwatch app`), its image "
            "search encoding text with the CLIP that scored the images. Ctrl-C stops it.",
        ),
    ] = False,
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """Simulate a generation service and ingest its output (see HELP)."""
    from diffwatch.demo.drift import DriftDemoOptions
    from diffwatch.demo.run import DemoOptions, run_demo
    from diffwatch.demo.scoring import ScoreOptions, ScorerLoadError
    from diffwatch.errors import first_line
    from diffwatch.outage import DB_DOWN_ERRORS

    end_at = _parse_end(end)
    rt = runtime(database_url)
    opts = DemoOptions(
        out=(out or rt.settings.home / "demo").expanduser().absolute(),
        hours=hours,
        rate=rate,
        seed=seed,
        end=end_at,
        score=ScoreOptions(
            limit=score_limit,
            clip=ClipOptions(clip_model, clip_pretrained, clip_checkpoint, clip_model_config),
            demo_clip=demo_clip,
        ),
        drift=DriftDemoOptions(pipeline=pipeline) if drift else None,
        review=accounts,
        alerts=alerts,
        alert_to=alert_to,
    )
    show = not as_json and sys.stderr.isatty()
    try:
        with _progress(show) as progress:
            result = run_demo(rt.conninfo, opts, progress)
    except ScorerLoadError as exc:
        raise fail(str(exc), exc.code) from None
    except DB_DOWN_ERRORS as exc:
        raise fail(
            f"database unavailable: {first_line(exc)}; what was stored so far is kept"
        ) from None
    except OSError as exc:
        raise fail(f"cannot write the demo output under {opts.out}: {exc}; pick --out") from None
    search = search_env(result, opts.score.clip)
    if as_json:
        d = result.as_dict()
        d["database_url"] = _shown_url(rt.conninfo)
        typer.echo(json.dumps(d, default=str))
    else:
        _print_summary(result, _shown_url(rt.conninfo))
        if search:
            settings = " ".join(f"{k}={v}" for k, v in search.items())
            typer.echo(f"image search by text in the dashboard (`--serve` sets it): {settings}")
    if serve:
        from diffwatch.cli.app import serve as serve_app

        serve_app(rt, extra_env=search)


SEARCH_PREFIX = "DIFFWATCH_SEARCH_CLIP_"


def search_env(r: DemoResult, clip: ClipOptions) -> dict[str, str]:
    """The DIFFWATCH_SEARCH_CLIP_* settings of the CLIP that scored the demo's images (the
    demo CLIP, or real cached weights), so the dashboard's text search encodes words into
    the images' embedding space; {} when no CLIP scored, or when the environment already
    names a search CLIP (it wins)."""
    import os

    from diffwatch.model.clip_labels import DEMO_CLIP_NAME

    sc = r.scoring
    if sc is None or any(k.startswith(SEARCH_PREFIX) for k in os.environ):
        return {}
    if sc.demo_clip:
        checkpoint = Path(sc.demo_clip["checkpoint"]).absolute()
        return {
            f"{SEARCH_PREFIX}MODEL": DEMO_CLIP_NAME,
            f"{SEARCH_PREFIX}CHECKPOINT": str(checkpoint),
            f"{SEARCH_PREFIX}MODEL_CONFIG": str(checkpoint.parent / f"{DEMO_CLIP_NAME}.json"),
        }
    if not any(s.name == "clip" for s in sc.scorers):
        return {}
    env = {f"{SEARCH_PREFIX}MODEL": clip.model}
    if clip.checkpoint:
        env[f"{SEARCH_PREFIX}CHECKPOINT"] = str(Path(clip.checkpoint).absolute())
    elif clip.pretrained:
        env[f"{SEARCH_PREFIX}PRETRAINED"] = clip.pretrained
        env["HF_HUB_OFFLINE"] = "1"  # the demo found these weights in the cache: only there
    if clip.model_config:
        env[f"{SEARCH_PREFIX}MODEL_CONFIG"] = str(Path(clip.model_config).absolute())
    return env


def _parse_end(value: str | None) -> datetime | None:
    ts = iso_time(value, "--end")
    if ts is not None and ts > datetime.now(UTC):
        raise fail(f"--end {value!r} is in the future; the collector refuses future times", 2)
    return ts


def _shown_url(conninfo: str) -> str:
    """The libpq URL for psql, with any password hidden."""
    from sqlalchemy.engine import make_url

    url = make_url(conninfo)
    return url.render_as_string(hide_password=True) if url.password else conninfo


@contextmanager
def _progress(show: bool) -> Iterator[Progress]:
    from diffwatch.demo.run import Progress

    if not show:
        yield Progress()
        return
    from rich.console import Console
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bars

    with Bars(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        TextColumn("{task.fields[done]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bars:
        sim = bars.add_task("simulating", total=None, done="")
        ing = bars.add_task("ingesting", total=None, done="")
        state = {"pending": 0, "written": 0, "read": 0, "requests": 0, "minutes": 0, "done": 0}

        def show_ingest() -> None:
            mib = 1024 * 1024
            total = state["pending"] + state["written"]
            bars.update(
                ing,
                total=total,
                completed=state["read"],
                done=f"{state['read'] / mib:.1f}/{total / mib:.1f} MiB of logs",
            )

        def start(minutes: int, pending: int) -> None:
            state["pending"] = pending
            state["minutes"] = minutes
            bars.update(sim, total=minutes, done=f"0/{minutes} minutes")
            show_ingest()

        def minute(m, written: int) -> None:
            state["requests"] += len(m.requests)
            state["written"] = written
            state["done"] += 1
            bars.update(
                sim,
                completed=state["done"],
                done=f"{state['done']}/{state['minutes']} minutes, {state['requests']} requests",
            )
            show_ingest()

        def ingested(n: int) -> None:
            state["read"] += n
            show_ingest()

        scoring = {"task": None, "t0": 0.0, "done": 0, "total": 0}

        def score_start(total: int) -> None:
            scoring["task"] = bars.add_task("scoring", total=total, done="")
            scoring["t0"], scoring["total"] = time.perf_counter(), total

        def scored(n: int) -> None:
            scoring["done"] += n
            rate = scoring["done"] / max(time.perf_counter() - scoring["t0"], 1e-9)
            bars.update(
                scoring["task"],
                completed=scoring["done"],
                done=f"{scoring['done']}/{scoring['total']} images, {rate:.0f} images/s",
            )

        training: dict[str, object] = {}

        def train(step: int, steps: int, loss: float) -> None:
            if "task" not in training:
                training["task"] = bars.add_task("demo CLIP", total=steps, done="")
            bars.update(
                training["task"], completed=step, done=f"training {step}/{steps}, loss {loss:.2f}"
            )

        stages: dict[str, object] = {}

        def drift(stage: str, done: int, total: int) -> None:
            if stage not in stages:
                stages[stage] = bars.add_task(stage[:10], total=total, done="")
            bars.update(stages[stage], completed=done, total=total, done=f"{done}/{total} {stage}")

        yield Progress(
            start=start,
            minute=minute,
            ingested=ingested,
            score_start=score_start,
            scored=scored,
            drift=drift,
            train=train,
        )


def _print_summary(r: DemoResult, url: str) -> None:
    s, c, t = r.service, r.collected, r.totals
    echo = typer.echo
    if s.minutes:
        echo(
            f"simulated {s.minutes} minutes ({r.simulated_from} to {r.simulated_to}) on "
            f"{r.gpus} GPUs: {s.requests} requests, {s.errors} errors, {s.broken_lines} "
            f"broken log lines, {s.images} new images"
        )
        echo(f"  logs:   {r.out}/logs (rotated {s.rotations}x)   images: {r.out}/images")
    for note in r.notes:
        echo(f"note: {note}")
    echo(
        f"collected: {c.ingested} rows ingested, {c.duplicates} duplicates dropped, "
        f"{c.rejected} lines rejected; {s.gpu_samples} GPU samples stored"
    )
    if r.scoring:
        _print_scoring(r.scoring)
    if r.drift:
        _print_drift(r.drift)
    if r.review:
        _print_review(r.review)
    if r.rollups:
        echo(
            f"rollups refreshed for the dashboard: {r.rollups.get('generations', 0)} "
            f"generations, {r.rollups.get('gpu_samples', 0)} GPU samples, "
            f"{r.rollups.get('scorer_results', 0)} scorer results rolled up"
        )
    echo("the database now holds:")
    versions = ", ".join(f"{k}: {v}" for k, v in t.by_version.items()) or "none"
    echo(f"  generations       {t.generations:>8}  ({versions}; {t.errors} errors)")
    echo(f"  rejected_records  {t.rejected_records:>8}")
    for reason in t.rejection_examples:
        echo(f"      e.g. {reason[:110]}")
    echo(f"  gpu_samples       {t.gpu_samples:>8}  ({t.gpus} GPUs, source 'demo')")
    echo(f"done in {r.elapsed_s:.1f} s. Look at it in the dashboard:")
    echo("  .venv/bin/diffwatch app    (or `make app`), then open http://127.0.0.1:8501")
    echo("or with psql:")
    echo(f'  psql "{url}"')
    echo(
        "  e.g. SELECT model_version, deployment, count(*), round(avg(inference_ms)) AS "
        "avg_inference_ms FROM generations GROUP BY 1, 2;"
    )
    if r.alerts:
        _print_alerts(r.alerts)
    if r.accounts:
        from diffwatch.demo.accounts import credentials_text

        echo("")
        echo(
            "log in with these demo accounts (new passwords on every run; also in "
            f"{r.credentials_file}, readable by you only):"
        )
        echo(credentials_text(r.accounts), nl=False)


def _print_alerts(a: AlertsReport) -> None:
    echo = typer.echo
    states = ", ".join(f"{name}: {state}" for name, state in a.states.items())
    emails = ", ".join(f"{n} {k}" for k, n in a.emails.items()) or "none"
    echo(
        f"alerts: {a.rules} demo rules replayed over the last 30 minutes ({states}); emails "
        f"queued: {emails}; delivered {a.delivered}, failed {a.failed}, via {a.smtp} "
        f"({a.elapsed_s:.1f} s)"
    )
    for path in a.mail_files:
        echo(f"  received: {path}")
    if a.mail_files:
        echo(
            "  to send them to a real mailbox: DIFFWATCH_SMTP_HOST=smtp.example.com "
            "DIFFWATCH_SMTP_PORT=587 DIFFWATCH_SMTP_SECURITY=starttls "
            "DIFFWATCH_SMTP_USERNAME=... DIFFWATCH_SMTP_PASSWORD=... diffwatch demo "
            "--alert-to you@example.com (docs/alerts.md)"
        )


def _print_review(rv: ReviewReport) -> None:
    queued = ", ".join(f"{k} {v}" for k, v in rv.queued.items())
    raters = ", ".join(f"{k} {v}" for k, v in rv.by_rater.items())
    typer.echo(
        f"review: queued items per reason: {queued}; {rv.ratings} simulated ratings stored "
        f"({raters}; {rv.two_raters} items rated by both), {rv.skips} skips; "
        f"{rv.open_items} items left open for the raters ({rv.elapsed_s:.1f} s)"
    )
    if rv.ratings and rv.truth:
        typer.echo(
            f"  the raters knew what {rv.truth} of the images show (on-prompt or garbled) and "
            "never saw a CLIP score, so CLIP-vs-human calibration compares independent "
            "judgements (demo data only)"
        )


def _print_scoring(sc: ScoringReport) -> None:
    echo = typer.echo
    rate = f", {sc.images_per_s:g} images/s" if sc.images_per_s else ""
    sample = "all pending" if not sc.limit else f"--score-limit {sc.limit}"
    echo(
        f"scored {sc.claimed} generations on the CPU ({sample}) in {sc.elapsed_s:.1f} s{rate}: "
        f"{sc.results} results, {sc.errors} image errors (see scoring_errors)"
    )
    for s in sc.scorers:
        what = (
            f"{s.flagged} flagged"
            if s.flagged is not None
            else f"mean CLIPScore {s.mean:g}"
            if s.mean is not None
            else ""
        )
        echo(f"  {s.name}:{s.version}  {s.scored} images scored" + (f", {what}" if what else ""))
    if not any(s.name == "clip" for s in sc.scorers):
        echo(f"  clip: {sc.clip}")
    if sc.demo_clip:
        d, q = sc.demo_clip, sc.demo_clip["quality"]
        when = f"trained now in {d['train_s']:.0f} s" if d["trained_now"] else "reused"
        gaps = ", ".join(f"{g['kind']} {g['gap']:+.1f}" for g in q["gaps"])
        echo(
            f"  clip is the {d['label']}, {when} ({d['checkpoint']}); held out: "
            f"{100 * q['retrieval_top1']:.0f} % top-1 retrieval among {q['retrieval_pool']} "
            f"prompts, matching minus garbled CLIPScore: {gaps}"
        )
        echo(f"  (no real CLIP: {d['real_clip_missing']})")
    if sc.pending:
        echo(
            f"  {sc.pending} generations not scored yet: `diffwatch demo --score-limit 0` "
            "scores them all, or `diffwatch score` (docs/scoring.md)"
        )


def _print_drift(d: dict) -> None:
    from diffwatch.cli.drift import regen_report

    echo = typer.echo
    p = d["prompts"]
    if "error" in p:
        echo(f"drift: prompt drift not tested: {p['error']}")
    else:
        t, c = p["test"], p.get("combined")
        if c:  # both tests, combined (runs since the lexical test)
            raw = c["p_values"]
            detail = (
                f"combined p = {c['p_value']:.3f} ({c['method']}; embedding p = "
                f"{raw['embedding']:.3f}, effect {t['effect_size']:.2f}; words p = "
                f"{raw['lexical']:.3f}"
                + (f"; decided by {', '.join(c['decided_by'])}" if c["decided_by"] else "")
                + ")"
            )
        else:
            detail = f"p = {t['p_value']:.3f}, effect {t['effect_size']:.2f}"
        echo(
            f"drift: prompts {'DRIFT' if p['drifted'] else 'no drift'} "
            f"({p['windows']['current']} against {p['windows']['reference']}: {detail})"
            + (" [tiny random-weight CLIP: demo only]" if p["demo"] else "")
        )
        if p.get("grew"):
            words = ", ".join(
                f"{t['term']} ({100 * t['rate_reference']:.0f} % -> {100 * t['rate_current']:.0f} %"
                " of prompts)"
                for t in p["grew"][:3]
            )
            echo(f"  what moved: {words}")
    im = d.get("images")
    if im is not None:
        if "error" in im:
            echo(f"  images: not tested: {im['error']}")
        else:
            o = im["overall"]
            echo(
                f"  images: {'DRIFT' if im['drifted'] else 'no drift'} ({im['attribution']}; "
                f"CMMD {o['cmmd']:.3f}, p = {o['p_value']:.3f}, effect {o['effect_size']:.2f}, "
                f"{o['n_reference']} vs {o['n_current']} stored CLIP image embeddings)"
            )
    for key in ("regenerate", "golden"):
        if "error" in d[key]:
            echo(f"  {key}: not run: {d[key]['error']}")
            continue
        for line in regen_report(d[key], d["tiny_pipeline"]).splitlines():
            echo(f"  {line}")
    echo("  the Drift page of the dashboard shows them; docs/drift.md says how to read them")


def register(root: typer.Typer, name: str) -> None:
    """Add this command to ``root`` as ``name`` (called by ``diffwatch.cli`` when it is run)."""
    root.command(name, help=HELP)(demo)
