"""The evaluation table merger and the ablation comparison with the paper (egotwin.eval.table)."""

import json

import pytest

from egotwin.eval.__main__ import summarize
from egotwin.eval.table import PAPER_ABLATION, ablation_rows, main, parse_runs, trend


def write_run(folder, name, replications):
    folder.mkdir(parents=True)
    results = {
        "name": name,
        "settings": {"mode": "t2vm", "num_samples": 4, "replications": len(replications), "seed": 0},
        "summary": summarize(replications),
        "replications": replications,
    }
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def metrics(trans, rot, hands):
    return {"TransErr": trans, "RotErr": rot, "HandScore": hands, "M-FID": 0.5}


@pytest.mark.parametrize(
    "ours, full, spread, metric, expected",
    [
        (2.0, 1.0, 0.1, "TransErr", "worse"),
        (0.5, 1.0, 0.1, "RotErr", "better"),
        (0.5, 0.8, 0.1, "HandScore", "worse"),
        (0.9, 0.8, 0.05, "HandScore", "better"),
        (1.05, 1.0, 0.1, "TransErr", "within spread"),
    ],
)
def test_trend_known_answers(ours, full, spread, metric, expected):
    assert trend(ours, full, spread, metric) == expected


def test_paper_ablation_every_variant_is_worse_than_full():
    # Spec section 10: every ablation loses on all three consistency metrics.
    for variant in ("wo_mr", "wo_im", "wo_ad"):
        for metric, value in PAPER_ABLATION[variant].items():
            assert trend(value, PAPER_ABLATION["full"][metric], 0.0, metric) == "worse"


def test_ablation_rows_use_replication_spread(tmp_path):
    full = write_run(tmp_path / "full", "full", [metrics(1.0, 1.0, 0.8), metrics(1.2, 1.0, 0.8)])  # TransErr 1.1 ± 0.1
    wo_mr = write_run(tmp_path / "mr", "mr", [metrics(2.0, 0.8, 0.4), metrics(2.0, 0.8, 0.4)])
    wo_ad = write_run(tmp_path / "ad", "ad", [metrics(1.15, 0.5, 0.9), metrics(1.15, 0.5, 0.9)])
    runs = parse_runs([f"full={full}", f"wo_mr={wo_mr}", f"wo_ad={wo_ad / 'results.json'}"])
    rows = {(r["variant"], r["metric"]): r for r in ablation_rows(runs)}
    assert rows["wo_mr", "TransErr"]["ours_trend"] == "worse" and rows["wo_mr", "TransErr"]["agrees"]
    assert rows["wo_mr", "RotErr"]["ours_trend"] == "better" and not rows["wo_mr", "RotErr"]["agrees"]
    assert rows["wo_mr", "HandScore"]["ours_trend"] == "worse" and rows["wo_mr", "HandScore"]["agrees"]
    assert rows["wo_ad", "TransErr"]["ours_trend"] == "within spread"  # 0.05 from full, spread 0.1
    assert rows["wo_ad", "RotErr"]["ours_trend"] == "better"
    assert rows["full", "TransErr"]["ours_mean"] == pytest.approx(1.1)
    assert rows["full", "TransErr"]["ours_std"] == pytest.approx(0.1)
    assert "agrees" not in rows["full", "TransErr"]


def test_ablation_needs_full_and_known_labels(tmp_path):
    run = write_run(tmp_path / "a", "a", [metrics(1, 1, 1)])
    with pytest.raises(ValueError, match="labelled 'full'"):
        ablation_rows(parse_runs([f"wo_mr={run}"]))
    with pytest.raises(ValueError, match="unknown ablation labels"):
        ablation_rows(parse_runs([f"full={run}", f"other={run}"]))
    with pytest.raises(ValueError, match="two runs are labelled"):
        parse_runs([f"x={run}", f"x={run}"])
    with pytest.raises(FileNotFoundError, match="no results.json"):
        parse_runs([str(tmp_path / "missing")])


def test_cli_writes_markdown_and_json(tmp_path):
    full = write_run(tmp_path / "full", "full", [metrics(1.0, 1.0, 0.8)])
    wo_im = write_run(tmp_path / "im", "im", [metrics(1.5, 1.5, 0.5)])
    table = main([f"full={full}", f"wo_im={wo_im}", "--ablation", "--output_dir", str(tmp_path / "table")])
    markdown = (tmp_path / "table" / "table.md").read_text()
    assert "| full | n/a | n/a | n/a | 0.500 ± 0.000 |" in markdown  # no video metrics in these runs
    assert "| w/o IM (full attention) | RotErr | 1.500 ± 0.000 | 0.89 | worse | worse | yes |" in markdown
    assert "Trend agrees with the paper in 3 of 3 cases." in markdown
    assert json.loads((tmp_path / "table" / "table.json").read_text()) == json.loads(json.dumps(table))


def test_cli_reports_a_missing_run_without_a_traceback(tmp_path):
    with pytest.raises(SystemExit, match="python -m egotwin.eval.table: error: no results.json"):
        main([str(tmp_path / "missing"), "--output_dir", str(tmp_path / "table")])
    assert not (tmp_path / "table").exists()  # nothing written
    with pytest.raises(SystemExit, match="give at least one run folder; --output_dir is required"):
        main([])
