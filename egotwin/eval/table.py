"""One table from several evaluation runs, and the paper's ablation side by side with ours.

    python -m egotwin.eval.table runs/eval_gt runs/eval_t2vm runs/eval_tm2v runs/eval_tv2m --output_dir runs/table
    python -m egotwin.eval.table full=runs/ablation/eval_full wo_mr=runs/ablation/eval_wo_mr \\
        wo_im=runs/ablation/eval_wo_im wo_ad=runs/ablation/eval_wo_ad --ablation --output_dir runs/ablation/table

Each argument is a folder (or a results.json) written by `python -m egotwin.eval`, optionally named `label=path`.
The first form writes the paper's columns, one row per run (mean ± std over that run's replications), and for runs
that measured it on EgoWorld, the exact viewpoint alignment in a table of its own (docs/alignment.md). `--ablation`
adds, for the consistency metrics the paper ablates (TransErr, RotErr, HandScore), each variant's change against
`full` in our runs and in the paper's (design "Metrics"), and whether the two agree in direction. A change smaller than
the replication spread (the two runs' standard deviations added) is called "within spread" and agrees with nothing.
Writes table.md and table.json into `--output_dir`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from egotwin.config import parse_config, positional

COLUMNS = (
    "I-FID",
    "FVD",
    "CLIP-SIM",
    "M-FID",
    "R-Prec@1",
    "R-Prec@2",
    "R-Prec@3",
    "MM-Dist",
    "TransErr",
    "RotErr",
    "HandScore",
)
"""The paper's table columns (R-Precision split into its top-1/2/3 as in HumanML3D)."""

ALIGNMENT_COLUMNS = ("ViewDist", "Head>Still", "YawHit", "YawErr", "PitchErr")
"""Not the paper's: exact viewpoint alignment on EgoWorld (egotwin/eval/alignment.py), in a table of their own."""
ALIGNMENT_REFERENCES = ("unrelated", "still camera", "start-frame warp")
"""Levels reported beside each alignment column as "<column> (<level>)": another clip's video scored against this
clip's renders (chance), frame 0's render held still (a video that ignores the head), and frame 0's render carried
along the head path by depth, what frame 0 did not see filled with its mean colour (a video that follows the head
exactly and invents nothing: what the start frame alone explains)."""
ALIGNMENT_KEYS = tuple(
    f"{column}{suffix}" for column in ALIGNMENT_COLUMNS for suffix in ("", *(f" ({r})" for r in ALIGNMENT_REFERENCES))
)

PAPER_ABLATION = {
    "full": {"TransErr": 0.67, "RotErr": 0.46, "HandScore": 0.81},
    "wo_mr": {"TransErr": 0.96, "RotErr": 1.22, "HandScore": 0.44},
    "wo_im": {"TransErr": 0.85, "RotErr": 0.89, "HandScore": 0.57},
    "wo_ad": {"TransErr": 0.74, "RotErr": 0.62, "HandScore": 0.73},
}
"""The paper's ablation on Nymeria (design "Metrics"): full EgoTwin, w/o MR (root-centric motion), w/o IM (full
attention), w/o AD (one shared timestep)."""
VARIANT_NAMES = {
    "full": "EgoTwin (full)",
    "wo_mr": "w/o MR (root-centric)",
    "wo_im": "w/o IM (full attention)",
    "wo_ad": "w/o AD (shared timestep)",
}
HIGHER_IS_BETTER = {"TransErr": False, "RotErr": False, "HandScore": True}


def load_results(path: str | Path) -> dict:
    """results.json of one `python -m egotwin.eval` run (a folder holding it, or the file)."""
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no results.json at {path}: write one with `python -m egotwin.eval` first")
    results = json.loads(file.read_text())
    if "summary" not in results:
        raise ValueError(f"{file} is not an egotwin.eval results file (no 'summary')")
    return results


def parse_runs(arguments: list[str]) -> dict[str, dict]:
    """`label=path` or `path` (labelled by the run's own name) -> {label: results}, in argument order."""
    runs: dict[str, dict] = {}
    for argument in arguments:
        label, _, path = argument.rpartition("=") if "=" in argument else ("", "", argument)
        results = load_results(path)
        label = label or results["name"]
        if label in runs:
            raise ValueError(f"two runs are labelled '{label}'")
        runs[label] = results
    return runs


def metrics_table(summaries: dict[str, dict]) -> list[str]:
    """Markdown lines of the paper's columns, one row per {label: summary} ("mean ± std", "n/a" where not measured)."""
    lines = ["| | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for label, summary in summaries.items():
        cells = [f"{summary[c]['mean']:.3f} ± {summary[c]['std']:.3f}" if c in summary else "n/a" for c in COLUMNS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def alignment_table(summaries: dict[str, dict]) -> list[str]:
    """Markdown lines of the exact alignment columns, one row per {label: summary} that has them: "mean ± std" and,
    below it, the unrelated-video (chance) and still-camera levels; [] when no summary has them."""
    summaries = {label: s for label, s in summaries.items() if ALIGNMENT_COLUMNS[0] in s}
    if not summaries:
        return []
    lines = ["| | " + " | ".join(ALIGNMENT_COLUMNS) + " |", "|---" * (len(ALIGNMENT_COLUMNS) + 1) + "|"]

    def cell(summary: dict, column: str) -> str:
        if column not in summary:
            return "n/a"
        text = f"{summary[column]['mean']:.3f} ± {summary[column]['std']:.3f}"
        levels = [f"{r} {summary[k]['mean']:.3f}" for r in ALIGNMENT_REFERENCES if (k := f"{column} ({r})") in summary]
        return text + "<br>" + ", ".join(levels) if levels else text

    for label, summary in summaries.items():
        lines.append(f"| {label} | " + " | ".join(cell(summary, c) for c in ALIGNMENT_COLUMNS) + " |")
    return lines


ALIGNMENT_NOTE = (
    "Exact viewpoint alignment (EgoWorld only, not the paper's; docs/alignment.md): each clip's apartment re-rendered "
    "from the scored head cameras; ViewDist = Lab distance to the render at the head / median over yaw offsets "
    "(0 = shows what the head sees, ~1 = no better than a typical direction), Head>Still = share of frames closer to "
    "the head render than to frame 0's view held still, YawHit / YawErr / PitchErr = the best-matching view's "
    "offsets; over frames where the head turned or moved. Below each: an unrelated clip's video (chance), a still "
    "camera, and the start frame carried along the head path (what it did not see in its mean colour: what the start "
    "frame alone explains). results.json also splits ViewDist by the share of each frame the start frame saw."
)


def comparison_markdown(runs: dict[str, dict]) -> str:
    """The paper's columns, one row per run, the exact alignment columns where measured, and each run's settings."""
    summaries = {label: results["summary"] for label, results in runs.items()}
    lines = metrics_table(summaries) + [""]
    alignment = alignment_table(summaries)
    if alignment:
        lines += alignment + ["", ALIGNMENT_NOTE, ""]
    for label, results in runs.items():
        settings = results["settings"]
        shown = ("mode", "checkpoint", "split", "num_samples", "replications", "seed", "num_inference_steps")
        lines.append(f"- {label}: " + ", ".join(f"{k} {settings.get(k)}" for k in shown if k in settings))
    return "\n".join(lines) + "\n"


def trend(ours: float, full: float, spread: float, metric: str) -> str:
    """'worse', 'better' or 'within spread': an ablated variant's metric against the full model's."""
    if abs(ours - full) <= spread:
        return "within spread"
    worse = ours < full if HIGHER_IS_BETTER[metric] else ours > full
    return "worse" if worse else "better"


def ablation_rows(runs: dict[str, dict]) -> list[dict]:
    """Per variant and metric: ours (mean, std), the paper's value, both changes against full, and the agreement."""
    if "full" not in runs:
        raise ValueError("the ablation table needs a run labelled 'full' (the model the ablations are compared to)")
    unknown = set(runs) - set(PAPER_ABLATION)
    if unknown:
        raise ValueError(f"unknown ablation labels {sorted(unknown)}; use {sorted(PAPER_ABLATION)}")
    full = runs["full"]["summary"]
    rows = []
    for variant, results in runs.items():
        for metric, paper in PAPER_ABLATION[variant].items():
            ours = results["summary"][metric]
            row = {
                "variant": variant,
                "metric": metric,
                "ours_mean": ours["mean"],
                "ours_std": ours["std"],
                "paper": paper,
            }
            if variant != "full":
                spread = ours["std"] + full[metric]["std"]
                row["ours_trend"] = trend(ours["mean"], full[metric]["mean"], spread, metric)
                row["paper_trend"] = trend(paper, PAPER_ABLATION["full"][metric], 0.0, metric)
                row["agrees"] = row["ours_trend"] == row["paper_trend"]
            rows.append(row)
    return rows


def ablation_markdown(rows: list[dict]) -> str:
    lines = [
        "| variant | metric | ours (mean ± std) | paper | ours vs full | paper vs full | agrees |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ours = f"{row['ours_mean']:.3f} ± {row['ours_std']:.3f}"
        trends = (
            (row["ours_trend"], row["paper_trend"], "yes" if row["agrees"] else "no")
            if "agrees" in row
            else ("", "", "")
        )
        lines.append(
            f"| {VARIANT_NAMES[row['variant']]} | {row['metric']} | {ours} | {row['paper']:.2f} | "
            + " | ".join(trends)
            + " |"
        )
    compared = [r for r in rows if "agrees" in r]
    if compared:
        lines += ["", f"Trend agrees with the paper in {sum(r['agrees'] for r in compared)} of {len(compared)} cases."]
    return "\n".join(lines) + "\n"


@dataclasses.dataclass(frozen=True)
class TableConfig:
    """One table from several evaluation runs, and the paper's ablation side by side with ours."""

    runs: tuple[str, ...] = positional(default=())
    """egotwin.eval output folders (or results.json files), each optionally labelled as label=folder (required)."""
    output_dir: str = ""
    """Folder table.md and table.json are written to (required)."""
    ablation: bool = False
    """Compare with the paper's ablation: the runs are labelled full, wo_mr, wo_im, wo_ad (full required)."""


PROG = "python -m egotwin.eval.table"


def main(argv: list[str] | None = None) -> dict:
    config = parse_config(TableConfig, argv, prog=PROG)
    errors = [
        "give at least one run folder" if not config.runs else "",
        "--output_dir is required" if not config.output_dir else "",
    ]
    if any(errors):
        raise SystemExit(f"{PROG}: error: " + "; ".join(e for e in errors if e))
    try:
        runs = parse_runs(list(config.runs))
        rows = ablation_rows(runs) if config.ablation else None
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"{PROG}: error: {error}") from None
    markdown = comparison_markdown(runs)
    table = {"runs": {label: {"settings": r["settings"], "summary": r["summary"]} for label, r in runs.items()}}
    if rows is not None:
        table["ablation"] = rows
        markdown += "\n" + ablation_markdown(rows)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.json").write_text(json.dumps(table, indent=2) + "\n")
    (out / "table.md").write_text(markdown)
    print(markdown)
    return table


if __name__ == "__main__":
    main()
