"""`byollm scaling run|fit|plot|predict` end to end, on a sweep folder whose results are drawn
from a known law (so no sweep has to be trained), and one real predicted run."""

from __future__ import annotations

import dataclasses
import json

import pytest
import train_helpers

from byollm.cli import main
from byollm.scaling.fit import load_fit, parametric_loss
from byollm.scaling.predict import read_predictions
from byollm.scaling.sweep import (
    RESULT_FORMAT,
    RESULT_VERSION,
    SweepConfig,
    append_result,
    describe_point,
    plan_sweep,
    prepare_sweep_data,
    read_results,
    save_sweep_config,
)

# alpha = beta: N_opt = G (C/k)^0.5 with G = (A/B)^(1/0.7) = 0.22, D_opt/N_opt = 1/G^2 = 20; at
# these budgets N_opt is a few thousand parameters, which depths 1-3 of the tiny size rule
# (1.6K to 23K parameters) bracket.
LAW = {"E": 1.5, "A": 7.0, "B": 20.0, "alpha": 0.35, "beta": 0.35}


@pytest.fixture(autouse=True)
def _one_thread():
    with train_helpers.single_thread():
        yield


@pytest.fixture
def sweep_dir(tmp_path):
    """A sweep folder (sweep.json, prepared data, results.jsonl) with losses from LAW."""
    config = SweepConfig(
        name="law",
        out_dir=str(tmp_path),
        corpus="python-stdlib:40KB",  # built offline: no download, never skipped
        val_fraction=0.1,
        budgets=[3.5e9, 7e9, 1.4e10],
        depths=[1, 2, 3],
        aspect_ratio=8,
        head_dim=8,
        block_size=32,
        batch_size=4,
        min_steps=1,
        eval_rows=8,
        threads=1,
    )
    folder = config.sweep_dir()
    folder.mkdir()
    _, meta = prepare_sweep_data(config, progress=False)
    save_sweep_config(config, folder)
    for point in plan_sweep(config, meta["vocab_size"]):
        record = describe_point(point, config)
        loss = float(parametric_loss(LAW, record["params_non_embedding_head"], record["tokens"]))
        append_result(
            folder / "results.jsonl",
            {
                "format": RESULT_FORMAT,
                "version": RESULT_VERSION,
                **record,
                "val_loss": loss,
                "val_bpb": loss / 0.6931471805599453,
                "val_bytes_per_token": 1.0,
            },
        )
    return folder


def test_fit_plot_and_predict(sweep_dir, capsys):
    assert main(["scaling", "fit", str(sweep_dir), "--bootstrap", "20"]) == 0
    report = capsys.readouterr().out
    assert "N_opt =" in report and "Chinchilla" in report and "Epoch AI" in report
    fit = load_fit(sweep_dir / "fit.json")
    assert fit["runs"] == 9 and all(f["has_minimum"] for f in fit["isoflops"])
    assert fit["parametric"]["alpha"] == pytest.approx(0.35, abs=0.01)  # noiseless: exact
    assert fit["n_opt_law"]["exponent"] == pytest.approx(0.5, abs=0.03)
    assert fit["tokens_per_param"] == pytest.approx(20, rel=0.2)

    assert main(["scaling", "plot", str(sweep_dir), "--out", str(sweep_dir / "figs")]) == 0
    for name in ("isoflops", "optimal", "surface", "residuals"):
        png = sweep_dir / "figs" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert str(sweep_dir / "figs" / "isoflops.png") in capsys.readouterr().out

    assert main(["scaling", "predict", str(sweep_dir), "--budget", "10x"]) == 0
    out = capsys.readouterr().out
    assert "budget 1.4e+11 FLOPs" in out and "predicted val loss" in out and "--run" in out
    # every predictor is shown with its backtest (fitted on 3.5e9 and 7e9, scored on 1.4e10);
    # on a sweep drawn from L(N, D) the law fitted to every run extrapolates it exactly
    assert "parametric_near_optimal" in out and "frontier " in out and "blend" in out
    assert "by frontier_e (the preferred predictor, whatever its backtest)" in out
    assert "(backtest error 0.00%, bias" in out  # L(N, D)'s line
    assert not (sweep_dir / "predictions.jsonl").exists()  # a prediction alone writes nothing

    moved = sweep_dir.rename(sweep_dir.parent / "moved")  # a sweep folder works where it is now
    assert main(["scaling", "predict", str(moved), "--budget", "10x"]) == 0
    assert capsys.readouterr().out.splitlines()[:3] == out.splitlines()[:3]


def test_plot_replaces_its_own_figures_and_no_one_elses(sweep_dir, capsys):
    assert main(["scaling", "fit", str(sweep_dir), "--bootstrap", "5"]) == 0
    figs = sweep_dir.parent / "figs"
    assert main(["scaling", "plot", str(sweep_dir), "--out", str(figs)]) == 0
    assert main(["scaling", "plot", str(sweep_dir), "--out", str(figs)]) == 0  # ours: replaced
    capsys.readouterr()
    photo = figs.parent / "photos"
    photo.mkdir()
    (photo / "surface.png").write_bytes(b"\x89PNG\r\n\x1a\n a holiday photo")
    (photo / "isoflops.png").write_bytes((figs / "isoflops.png").read_bytes())  # a copy of ours
    assert main(["scaling", "plot", str(sweep_dir), "--out", str(photo)]) == 2
    err = capsys.readouterr().err
    assert "surface.png exists and is not a plot byollm drew" in err
    assert (photo / "surface.png").read_bytes().endswith(b"a holiday photo")  # kept
    assert not (photo / "optimal.png").exists()  # checked before anything was drawn
    # the sweep's own folder holds its own figures (older ones carry no mark): replaced
    (sweep_dir / "surface.png").write_bytes(b"drawn by an older byollm")
    assert main(["scaling", "plot", str(sweep_dir)]) == 0
    assert (sweep_dir / "surface.png").read_bytes()[:4] == b"\x89PNG"


def test_predict_run_trains_the_run_and_scores_the_prediction(sweep_dir, capsys):
    assert main(["scaling", "fit", str(sweep_dir), "--bootstrap", "10"]) == 0
    results_before = (sweep_dir / "results.jsonl").read_text()
    # a budget below the sweep's keeps the run to a few seconds (the bookkeeping is the same)
    assert main(["scaling", "predict", str(sweep_dir), "--budget", "1e8", "--run"]) == 0
    out = capsys.readouterr().out
    assert "measured" in out and "error" in out
    predicted, outcome = read_predictions(sweep_dir / "predictions.jsonl")
    assert "measured_val_bpb" not in predicted  # written down before the run started
    assert predicted["method"] in predicted["backtest_error_pct"]
    # the bent frontier makes the prediction whenever the fit has it; the backtests are kept
    assert predicted["method"] == "frontier_e" and predicted["method_rule"] == "preferred"
    assert set(predicted["backtest_error_pct"]) >= {"parametric", "frontier", "frontier_e"}
    by_method = predicted["predicted_val_bpb_by_method"]
    assert predicted["predicted_val_bpb"] == by_method[predicted["method"]]
    assert outcome["predicted_val_bpb"] == predicted["predicted_val_bpb"]
    assert outcome["point"] == predicted["point"] == "C1e8-d1" and outcome["budget"] == 1e8
    error = 100 * (outcome["predicted_val_bpb"] - outcome["measured_val_bpb"])
    assert outcome["error_pct"] == pytest.approx(error / outcome["measured_val_bpb"])
    (holdout,) = read_results(sweep_dir / "holdout.jsonl")
    assert (
        holdout["point"] == outcome["point"] and holdout["val_bpb"] == outcome["measured_val_bpb"]
    )
    # the predicted run never joins the sweep's results, so no later fit can peek at it
    assert (sweep_dir / "results.jsonl").read_text() == results_before


def test_run_plan_prints_the_runs(tmp_path, capsys):
    config = tmp_path / "sweep.toml"
    config.write_text(
        f'name = "planned"\nout_dir = "{tmp_path}"\n'
        'corpus = "python-stdlib:40KB"\nbudgets = [1e8]\nsizes = 2\n'
        "aspect_ratio = 8\nhead_dim = 8\nblock_size = 32\nbatch_size = 4\nmin_steps = 1\n"
    )
    assert main(["scaling", "run", "--config", str(config), "--plan", "--budgets", "1e8,2e8"]) == 0
    out = capsys.readouterr().out
    assert "C1e8-d1" in out and "C2e8-d2" in out and "4 runs" in out
    assert not (tmp_path / "planned" / "runs").exists()  # planning trains nothing


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["scaling", "fit", "/nonexistent/sweep"], "/nonexistent/sweep: no such sweep folder"),
        (["scaling", "run", "--plan", "--budgets", "-1"], "budgets must be positive"),
        (["scaling", "run", "--plan", "--aspect", "3"], "unknown key 'aspect'"),
        (["scaling", "run", "--config", "nope"], "unknown sweep preset 'nope'"),
        # a sweep's name is a plain folder name, as a run's is
        (["scaling", "run", "--plan", "--name", ".."], "name '..'"),
        (["scaling", "run", "--plan", "--name", "/tmp/elsewhere"], "name '/tmp/elsewhere'"),
        # every number, before any data is prepared (--plan included)
        (["scaling", "run", "--plan", "--budgets", "inf"], "budgets must be positive"),
        (["scaling", "run", "--plan", "--lr", "nan"], "lr=nan"),
        (["scaling", "run", "--plan", "--muon_lr", "inf"], "muon_lr=inf"),
        (["scaling", "run", "--plan", "--seed", "-1"], "seed=-1"),
        (["scaling", "run", "--plan", "--threads", "100000"], "threads=100000"),
        (["scaling", "run", "--plan", "--eval_rows", "1000000000"], "eval_rows=1000000000"),
        (["scaling", "run", "--plan", "--tokens_per_param_guess", "nan"], "tokens_per_param_guess"),
        (["scaling", "run", "--plan", "--device", "gpu"], "unknown device 'gpu'"),
        (["scaling", "run", "--plan", "--dtype", "int4"], "dtype"),
    ],
)
def test_user_mistakes_are_one_line_errors(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert list(tmp_path.iterdir()) == []  # nothing prepared or written
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_predict_rejects_a_bad_budget(sweep_dir, capsys):
    assert main(["scaling", "fit", str(sweep_dir), "--bootstrap", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "byollm-scaling-fit"
    assert main(["scaling", "predict", str(sweep_dir), "--budget", "lots"]) == 2
    assert "budget 'lots'" in capsys.readouterr().err


def test_sweep_config_survives_its_file(sweep_dir):
    from byollm.scaling.sweep import read_sweep_config

    config = read_sweep_config(sweep_dir)
    assert config.budgets == [3.5e9, 7e9, 1.4e10] and config.depths == [1, 2, 3]
    assert dataclasses.replace(config) == config


def test_fit_out_replaces_only_a_fit_file(sweep_dir, capsys, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    assert main(["scaling", "fit", str(sweep_dir), "--bootstrap", "0", "--out", str(notes)]) == 2
    assert "is not a byollm-scaling-fit file" in capsys.readouterr().err
    assert notes.read_text() == "my notes\n"
    for _ in range(2):  # a new file, then its own fit.json replaced
        assert main(["scaling", "fit", str(sweep_dir), "--bootstrap", "0"]) == 0
    assert load_fit(sweep_dir / "fit.json")["runs"] == 9
