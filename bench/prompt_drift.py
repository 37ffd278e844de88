"""Prompt-drift benchmark: false-positive rate and power of the embedding test, the lexical
test and their combination, for every embedder a user may run, on public prompt sets, beside
Evidently's text drift on the same splits in the same run.

Splits (``tests/public_prompts.py``; PartiPrompts and TIFA v1.0, ``tests/data/prompts``):
null splits (two random halves of one draw) give the false-positive rate; shifted splits
(a topic's share raised, a source set's share changed, a style suffix on some prompts) give
the power. Every split is seeded, so a rerun sees the same splits.

On each split, with one set of permutations shared by the tests (as a run does,
``diffwatch.analytics.drift_combine``): the lexical TF-IDF test once, and for each embedder
(``bench/prompt_drift_embedders.py``) the embedding MMD and the Westfall–Young combination
of the two. The first split of every scenario is also run through ``prompt_drift_test``
itself, and must give the same figures. Evidently runs in its own interpreter
(``--evidently-python``; ``bench/prompt_drift_evidently.py``) on the same split texts; when
none is found the baseline is reported as skipped, with the reason, and our side still runs.

Rates come with exact (Clopper–Pearson) 95 % intervals; a false-positive rate is "within its
binomial bound" when that interval reaches down to α or below. ``--markdown FILE`` also
writes the table that docs/drift.md shows.

Prints ONE JSON object on stdout; progress goes to stderr. Run ``python bench/prompt_drift.py -h``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [str(REPO)] + [
    p for p in sys.path if Path(p or ".").resolve() not in (REPO, REPO / "bench")
]

import numpy as np  # noqa: E402

from bench import smoke  # noqa: E402
from bench.prompt_drift_embedders import EMBEDDERS, Embedder, auto_order, load  # noqa: E402

DEFAULT_EVIDENTLY_PYTHON = REPO / "build" / "venv-bench" / "bin" / "python"


@dataclass(frozen=True)
class Scenario:
    """One row of the table: a prompt set, a window size (prompts a side) and a change."""

    prompt_set: str  # "PartiPrompts" or "TIFA"
    n: int
    name: str
    kind: str  # "null", "mix" or "suffix"
    label: str = ""  # mix: the label whose shares change ("category", "source")
    shares: tuple[tuple[str, float], ...] = ()  # mix: value -> share of the current window
    share: float = 0.0  # suffix: share of current prompts with a style suffix
    kind_of_shift: str = "none"  # "topic share", "source mix", "style suffix"

    @property
    def key(self) -> str:
        return f"{self.prompt_set} n={self.n} {self.name}"


FULL = (
    Scenario("PartiPrompts", 100, "null", "null"),
    Scenario("PartiPrompts", 100, "People 11% -> 50%", "mix", "category", (("People", 0.5),),
             kind_of_shift="topic share"),
    Scenario("PartiPrompts", 250, "null", "null"),
    Scenario("PartiPrompts", 250, "People 11% -> 30%", "mix", "category", (("People", 0.3),),
             kind_of_shift="topic share"),
    Scenario("PartiPrompts", 250, "People 11% -> 50%", "mix", "category", (("People", 0.5),),
             kind_of_shift="topic share"),
    Scenario("PartiPrompts", 250, "Animals 19% -> 40%", "mix", "category", (("Animals", 0.4),),
             kind_of_shift="topic share"),
    Scenario("PartiPrompts", 250, "on 20% of the current prompts", "suffix", share=0.2,
             kind_of_shift="style suffix"),
    Scenario("TIFA", 500, "null", "null"),
    Scenario("TIFA", 500, "COCO captions 49% -> 25%", "mix", "source", (("coco", 0.25),),
             kind_of_shift="source mix"),
    Scenario("TIFA", 500, "PaintSkills 12% -> 25%", "mix", "source", (("paintskill", 0.25),),
             kind_of_shift="source mix"),
    Scenario("TIFA", 500, "on 10% of the current prompts", "suffix", share=0.1,
             kind_of_shift="style suffix"),
    Scenario("TIFA", 1200, "null", "null"),
    Scenario("TIFA", 1200, "COCO captions 49% -> 35%", "mix", "source", (("coco", 0.35),),
             kind_of_shift="source mix"),
)  # fmt: skip
SMOKE = (
    Scenario("PartiPrompts", 40, "null", "null"),
    Scenario("PartiPrompts", 40, "People 11% -> 50%", "mix", "category", (("People", 0.5),),
             kind_of_shift="topic share"),
    Scenario("TIFA", 40, "on 20% of the current prompts", "suffix", share=0.2,
             kind_of_shift="style suffix"),
)  # fmt: skip


def smoke_sizes() -> dict[str, object]:
    """``--smoke``: 3 small scenarios of 4 splits each, 50 permutations, the tiny CLIP."""
    return {"null_splits": 4, "shift_splits": 4, "permutations": 50, "embedders": "tiny"}


def progress(msg: str) -> None:
    """Progress for a person, on stderr (stdout carries only the JSON result)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ splits
def make_splits(s: Scenario, count: int, seed: int) -> list[tuple[list[str], list[str]]]:
    """``count`` seeded splits of scenario ``s`` (the same on every run with ``seed``)."""
    from tests.public_prompts import mix_split, null_split, partiprompts, suffix_split, tifa

    ps = partiprompts() if s.prompt_set == "PartiPrompts" else tifa()
    rng = np.random.default_rng([seed, sum(map(ord, s.key))])
    if s.kind == "null":
        return [null_split(ps.prompts, s.n, rng) for _ in range(count)]
    if s.kind == "mix":
        return [mix_split(ps, s.label, dict(s.shares), s.n, rng) for _ in range(count)]
    return [suffix_split(ps.prompts, s.n, s.share, rng) for _ in range(count)]


# ------------------------------------------------------------------------------ figures
def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact two-sided binomial interval for k successes of n."""
    from scipy.stats import beta

    lo = 0.0 if k == 0 else float(beta.ppf((1 - level) / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - (1 - level) / 2, k + 1, n - k))
    return lo, hi


def rate(flags: Sequence[bool], effects: Sequence[float] | None = None) -> dict[str, Any]:
    """Share flagged, its interval, and the mean effect size."""
    k, n = int(sum(flags)), len(flags)
    lo, hi = clopper_pearson(k, n)
    out: dict[str, Any] = {"flagged": k, "splits": n, "rate": k / n, "ci95": [lo, hi]}
    if effects is not None:
        out["mean_effect"] = float(np.mean(effects))
    return out


@dataclass
class Tally:
    """Per scenario: flags and effect sizes of the lexical test and of each embedder."""

    lexical: list[bool] = field(default_factory=list)
    lexical_effect: list[float] = field(default_factory=list)
    embedding: dict[str, list[bool]] = field(default_factory=dict)
    embedding_effect: dict[str, list[float]] = field(default_factory=dict)
    combined: dict[str, list[bool]] = field(default_factory=dict)  # by the embedder's auto order
    minp: dict[str, list[bool]] = field(default_factory=dict)  # min-p, for every embedder


def run_ours(
    scenarios: Sequence[Scenario],
    splits: dict[str, list[tuple[list[str], list[str]]]],
    embedders: dict[str, Embedder],
    vectors: dict[str, dict[str, np.ndarray]],
    permutations: int,
    alpha: float,
    seed: int,
) -> tuple[dict[str, Tally], dict[str, Any]]:
    """Both tests and their combination on every split; the checks against the public API."""
    from diffwatch.analytics.drift_combine import combine, prompt_drift_test
    from diffwatch.analytics.lexical_drift import lexical_on_splits
    from diffwatch.analytics.prompt_drift import mmd_on_splits, permutation_weights

    tallies: dict[str, Tally] = {}
    same_as_api: list[bool] = []
    for s in scenarios:
        t0 = time.perf_counter()
        tally = tallies[s.key] = Tally()
        for i, (ref, cur) in enumerate(splits[s.key]):
            split_seed = seed * 100_000 + i
            rng = np.random.default_rng(split_seed)
            weights = permutation_weights(len(ref), len(cur), permutations, rng)
            lex, lex_stats = lexical_on_splits(ref, cur, weights, alpha=alpha, seed=split_seed)
            tally.lexical.append(lex.drifted)
            tally.lexical_effect.append(lex.effect_size)
            for name in embedders:
                # float64, as the public functions read their input (as_matrix)
                x = np.stack([vectors[name][p] for p in ref]).astype(np.float64)
                y = np.stack([vectors[name][p] for p in cur]).astype(np.float64)
                emb, emb_stats = mmd_on_splits(x, y, weights, alpha=alpha, seed=split_seed)
                order = auto_order(name)
                used = combine(emb_stats, lex_stats, order)
                minp = used if order == "min-p" else combine(emb_stats, lex_stats, "min-p")
                tally.embedding.setdefault(name, []).append(emb.drifted)
                tally.embedding_effect.setdefault(name, []).append(emb.effect_size)
                tally.combined.setdefault(name, []).append(used.combined <= alpha)
                tally.minp.setdefault(name, []).append(minp.combined <= alpha)
                if i == 0:  # the same figures through the function a run calls
                    api = prompt_drift_test(
                        x, y, ref, cur, permutations=permutations, alpha=alpha,
                        seed=split_seed, max_samples=None, order=order,
                    )  # fmt: skip
                    same_as_api.append(
                        api.embedding == emb and api.lexical == lex and api.p_value == used.combined
                    )
        progress(f"{s.key}: {len(splits[s.key])} splits in {time.perf_counter() - t0:.1f} s")
    return tallies, {"combined_matches_prompt_drift_test": all(same_as_api) and bool(same_as_api)}


# ------------------------------------------------------------------------------ Evidently
def find_evidently(python: str | None) -> tuple[str | None, str]:
    """The interpreter that runs Evidently, or None and the reason it is skipped."""
    env = os.environ.get("DIFFWATCH_BENCH_EVIDENTLY_PYTHON", "")
    candidates = [python] if python else [env, str(DEFAULT_EVIDENTLY_PYTHON)]
    tried = []
    for c in candidates:
        if not c:
            continue
        if not Path(c).exists():
            tried.append(f"{c}: not found")
            continue
        probe = subprocess.run(
            [c, "-c", "import evidently; print(evidently.__version__)"],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        if probe.returncode == 0:
            return c, probe.stdout.strip()
        tried.append(f"{c}: cannot import evidently")
    return None, (
        "Evidently is not installed (a benchmark baseline, not a diffwatch dependency); "
        "tried " + ("; ".join(tried) or "nothing") + ". Fix: uv venv build/venv-bench && "
        'uv pip install --python build/venv-bench evidently "pandas<3", or pass '
        "--evidently-python"
    )


def start_evidently(
    python: str, splits: dict[str, list[tuple[list[str], list[str]]]], workdir: Path
) -> tuple[subprocess.Popen[str], Path]:
    """Start Evidently on every split in the background; return the process and its output."""
    payload = {
        "splits": [
            {"id": f"{key}#{i}", "reference": ref, "current": cur}
            for key, items in splits.items()
            for i, (ref, cur) in enumerate(items)
        ]
    }
    in_path, out_path = workdir / "evidently-in.json", workdir / "evidently-out.json"
    in_path.write_text(json.dumps(payload), encoding="utf-8")
    code = "from bench.prompt_drift_evidently import run; import sys; run(sys.argv[1], sys.argv[2])"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [python, "-c", code, str(in_path), str(out_path)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return proc, out_path


def finish_evidently(
    proc: subprocess.Popen[str], out_path: Path, scenarios: Sequence[Scenario]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Evidently's summary and, per scenario, its rate and mean ROC AUC."""
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"Evidently's run failed ({proc.returncode}):\n{err[-3000:]}")
    out = json.loads(out_path.read_text(encoding="utf-8"))
    per: dict[str, dict[str, Any]] = {}
    for s in scenarios:
        rows = [r for r in out["results"] if r["id"].rsplit("#", 1)[0] == s.key]
        per[s.key] = {
            **rate([r["drifted"] for r in rows], [r["drift_score"] for r in rows]),
            "method": sorted({f"{r['method']} (threshold {r['threshold']})" for r in rows}),
            "seconds_per_split": float(np.mean([r["seconds"] for r in rows])),
        }
    summary = {
        "version": out["evidently"],
        "import_s": out["import_s"],
        "splits": len(out["results"]),
        "random_classifier_percentiles_computed": out["percentile_computations"],
        "api": "Report([ValueDrift(column='prompt')], include_tests=True), method auto",
    }
    return summary, per


# ------------------------------------------------------------------------------ report
def table(result: dict[str, Any]) -> str:
    """The Markdown table of docs/drift.md: one row a scenario, rate (95 % interval)."""
    names = [n for n, e in result["embedders"].items() if "skipped" not in e]

    def cell(r: dict[str, Any] | None) -> str:
        if not r:
            return "–"
        lo, hi = r["ci95"]
        return f"{r['rate']:.2f} ({lo:.2f}–{hi:.2f})"

    head = ["set, n a side", "change", "splits", "lexical"]
    for n in names:
        head += [f"{n}: embedding", f"{n}: combined ({auto_order(n)})"]
        if auto_order(n) != "min-p":
            head.append(f"{n}: min-p")
    head.append("Evidently")
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in result["scenarios"]:
        change = "none (false-positive rate)" if row["kind"] == "null" else row["name"]
        if row["kind"] != "null":
            change = f"{row['shift']}: {row['name']}"
        cells = [f"{row['set']}, {row['n']}", change, str(row["lexical"]["splits"])]
        cells.append(cell(row["lexical"]))
        for n in names:
            e = row["embedders"][n]
            cells += [cell(e["embedding"]), cell(e["combined"])]
            if auto_order(n) != "min-p":
                cells.append(cell(e["min_p"]))
        cells.append(cell(row.get("evidently")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def acceptance(result: dict[str, Any], alpha: float) -> dict[str, Any]:
    """The issue's acceptance: combined FPR within its binomial bound on every null row, and
    with the tiny embedder, power on the topical shifts at least the lexical test's alone."""
    fpr, topical = {}, {}
    for row in result["scenarios"]:
        for name, e in row["embedders"].items():
            c = e["combined"]
            if row["kind"] == "null":
                fpr[f"{row['key']} / {name}"] = {
                    "rate": c["rate"], "ci95": c["ci95"], "within_bound": c["ci95"][0] <= alpha
                }  # fmt: skip
            elif row["shift"] == "topic share" and name == "tiny":
                topical[row["key"]] = {
                    "combined": c["rate"],
                    "lexical": row["lexical"]["rate"],
                    "at_least_lexical": c["rate"] >= row["lexical"]["rate"],
                }
    return {
        "fpr_within_bound": fpr,
        "all_fpr_within_bound": all(v["within_bound"] for v in fpr.values()),
        "tiny_topical_power": topical,
    }


# ------------------------------------------------------------------------------ main
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].replace("\n", " ") + " Prints one JSON object."
    )
    p.add_argument("--null-splits", type=int, default=60, help="Splits per null scenario.")
    p.add_argument("--shift-splits", type=int, default=40, help="Splits per shifted scenario.")
    p.add_argument("--permutations", type=int, default=200, help="Permutations per test.")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--embedders", default=",".join(EMBEDDERS), help=f"Comma list of {', '.join(EMBEDDERS)}."
    )
    p.add_argument("--clip-model", default="ViT-B-32", help="The real CLIP's architecture.")
    p.add_argument("--clip-pretrained", default="laion2b_s34b_b79k", help="Its open_clip tag.")
    p.add_argument("--clip-checkpoint", default=None, help="Its weights file, if not cached.")
    p.add_argument(
        "--demo-models",
        type=Path,
        default=None,
        help="Where the demo CLIP's weights are cached (trained on first use); default: "
        "DIFFWATCH_DEMO_MODELS, else DIFFWATCH_HOME/demo-models, as the demo does.",
    )
    p.add_argument("--evidently-python", default=None, help="Interpreter that has Evidently.")
    p.add_argument("--markdown", type=Path, default=None, help="Also write the table here.")
    smoke.add_smoke(p)
    return smoke.parse(p, argv, smoke_sizes())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print one JSON object; exit 1 when a correctness check fails."""
    a = parse_args(argv)
    t_start = time.perf_counter()
    scenarios = SMOKE if a.smoke else FULL
    splits = {
        s.key: make_splits(s, a.null_splits if s.kind == "null" else a.shift_splits, a.seed)
        for s in scenarios
    }
    disjoint = all(not set(r) & set(c) or s.kind == "suffix" for s in scenarios
                   for r, c in splits[s.key])  # fmt: skip
    workdir = Path(tempfile.mkdtemp(prefix="dw-prompt-drift-"))
    ev_python, ev_note = find_evidently(a.evidently_python)
    ev_proc = None
    if ev_python:
        progress(f"Evidently {ev_note}: {sum(map(len, splits.values()))} splits in the background")
        ev_proc, ev_out = start_evidently(ev_python, splits, workdir)
    else:
        progress(f"Evidently skipped: {ev_note}")

    texts = sorted({p for items in splits.values() for ref, cur in items for p in ref + cur})
    embedders: dict[str, Embedder] = {}
    info: dict[str, dict[str, Any]] = {}
    vectors: dict[str, dict[str, np.ndarray]] = {}
    for name in [e.strip() for e in a.embedders.split(",") if e.strip()]:
        try:
            e = load(
                name, workdir, demo_models=a.demo_models, clip_model=a.clip_model,
                clip_pretrained=a.clip_pretrained, clip_checkpoint=a.clip_checkpoint,
            )  # fmt: skip
        except RuntimeError as exc:
            info[name] = {"skipped": str(exc)}
            progress(f"embedder {name} skipped: {exc}")
            continue
        t0 = time.perf_counter()
        vectors[name] = dict(zip(texts, e.embed(texts), strict=True))
        embedders[name] = e
        info[name] = {
            "label": e.label,
            "load_s": round(e.load_s, 1),
            "embed_s": round(time.perf_counter() - t0, 1),
            "texts": len(texts),
            "trimmed_context_max_abs_diff": e.check_max_abs_diff,
        }
        progress(f"embedder {name}: {len(texts)} prompts in {info[name]['embed_s']} s")

    tallies, checks = run_ours(
        scenarios, splits, embedders, vectors, a.permutations, a.alpha, a.seed
    )
    ev_summary: dict[str, Any] = {"skipped": ev_note}
    ev_rows: dict[str, dict[str, Any]] = {}
    if ev_proc is not None:
        ev_summary, ev_rows = finish_evidently(ev_proc, ev_out, scenarios)
    rows = []
    for s in scenarios:
        t = tallies[s.key]
        rows.append(
            {
                "key": s.key, "set": s.prompt_set, "n": s.n, "name": s.name, "kind": s.kind,
                "shift": s.kind_of_shift,
                "lexical": rate(t.lexical, t.lexical_effect),
                "embedders": {
                    name: {
                        "embedding": rate(t.embedding[name], t.embedding_effect[name]),
                        "order": auto_order(name),
                        "combined": rate(t.combined[name]),
                        "min_p": rate(t.minp[name]),
                    }
                    for name in embedders
                },
                "evidently": ev_rows.get(s.key),
            }
        )  # fmt: skip
    diffs = [v["trimmed_context_max_abs_diff"] for v in info.values() if "skipped" not in v]
    correct = {
        **checks,
        "splits_disjoint": disjoint,
        "trimmed_context_close": all(d is None or d <= 1e-4 for d in diffs),
        "evidently_every_split": ev_proc is None
        or ev_summary["splits"] == sum(map(len, splits.values())),
        "some_embedder": bool(embedders),
    }
    correct["ok"] = all(correct.values())
    result: dict[str, Any] = {
        "smoke": bool(a.smoke),
        "alpha": a.alpha,
        "permutations": a.permutations,
        "seed": a.seed,
        "null_splits": a.null_splits,
        "shift_splits": a.shift_splits,
        "embedders": info,
        "baseline": {"evidently": ev_summary, "lexical_alone": "per scenario, 'lexical'"},
        "scenarios": rows,
        "correct": correct,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    result["acceptance"] = acceptance(result, a.alpha)
    if a.markdown:
        a.markdown.write_text(table(result), encoding="utf-8")
    print(json.dumps(result, indent=1))
    return 0 if correct["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
