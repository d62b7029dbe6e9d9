"""Model and dataset cards (README.md files) filled from text templates.

The prose lives in `hrpred/export/templates/*.md` (`string.Template`, `${name}` fields); the
functions here only compute the fields. An optional block is a string that is empty when absent
and ends with a newline when present, so the template keeps the surrounding blank lines.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from importlib.resources import files
from string import Template
from typing import Any

from hrpred.split.history import BUCKETS
from hrpred.uncertainty import POOLED

# Metric keys shown in the model card tables, in this order, when present.
CARD_METRICS = (
    "mae",
    "rmse",
    "mae_after_2min",
    "workout_mae_mean",
    "workout_mae_median",
    "bias",
    "n_workouts",
    "n_steps",
)


def fill(template: str, **fields: Any) -> str:
    """templates/<template> with every `${field}` replaced (a missing field is an error)."""
    text = files("hrpred.export").joinpath("templates", template).read_text(encoding="utf-8")
    return Template(text).substitute({k: str(v) for k, v in fields.items()})


def block(lines: Sequence[str]) -> str:
    """Lines as an optional template block: '' when there are none, else newline-terminated."""
    return "\n".join(lines) + "\n" if lines else ""


def fmt_metric(value: Any) -> str:
    """How the card prints a metric: ints as is, floats with 2 decimals, missing as n/a."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def metric_rows(tree: Any, prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every dict with an `mae` entry in a (nested) metrics dict, as (path, dict)."""
    rows: list[tuple[str, dict[str, Any]]] = []
    if not isinstance(tree, Mapping):
        return rows
    if "mae" in tree:
        rows.append((prefix, dict(tree)))
    for key, value in tree.items():
        if isinstance(value, Mapping):
            rows.extend(metric_rows(value, f"{prefix}.{key}" if prefix else str(key)))
    return rows


def metrics_table(rows: Sequence[tuple[str, Mapping[str, Any]]], label: str) -> list[str]:
    """A markdown table: one row per metrics dict, columns = CARD_METRICS present."""
    cols = [c for c in CARD_METRICS if any(c in r for _, r in rows)]
    if not rows or not cols:
        return ["(no metrics available)"]
    lines = [
        f"| {label} | " + " | ".join(cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for name, row in rows:
        lines.append(f"| {name} | " + " | ".join(fmt_metric(row.get(c)) for c in cols) + " |")
    return lines


def _model_index(config: Mapping[str, Any]) -> list[str]:
    """The card header's model-index entry (test MAE/RMSE), when evaluate reported them."""
    test = config.get("metrics", {}).get("test", {})
    if not (isinstance(test, Mapping) and "mae" in test):
        return []
    unseen = str(config.get("data", {}).get("protocol", "")).startswith("user-disjoint")
    test_name = "hrpred test split" + (" (unseen users)" if unseen else "")
    lines = [
        "model-index:",
        "- name: hrpred-lstm",
        "  results:",
        "  - task: {type: time-series-forecasting, name: heart-rate curve from speed and altitude}",
        f"    dataset: {{type: hrpred, name: {test_name}}}",
        "    metrics:",
    ]
    for key in ("mae", "rmse"):
        if key in test and test[key] is not None:
            lines.append(
                f"    - {{type: {key}, value: {fmt_metric(test[key])}, name: test {key} (BPM)}}"
            )
    return lines


def _extra_sections(metrics: Mapping[str, Any]) -> list[str]:
    """Test metrics per input-only category and the simulator's noise floor, when present."""
    lines: list[str] = []
    cats = metrics.get("categories", {})
    rows = metric_rows(cats.get("input_only", {})) if isinstance(cats, Mapping) else []
    if rows:
        lines += [
            "### Test metrics by workout type (categories from speed and altitude only)",
            "",
            *metrics_table(rows, "category"),
            "",
        ]
    floor = metrics.get("noise_floor", {})
    if isinstance(floor, Mapping) and floor.get("available"):
        lines += [
            "### Noise floor (simulated data)",
            "",
            "On the same test steps, the simulator's noise-free physiology scores MAE "
            f"{fmt_metric(floor.get('target_vs_physio_mae'))} BPM against the recorded target "
            "(sensor noise and faults); the model scores "
            f"{fmt_metric(floor.get('model_mae_same_steps'))} BPM, and "
            f"{fmt_metric(floor.get('model_vs_physio_mae'))} BPM against the noise-free "
            "physiology. No predictor from speed and altitude alone can go below the floor.",
            "",
        ]
    return lines


def _split_table(counts: Mapping[str, Any]) -> list[str]:
    if not counts:
        return []
    lines = ["", "| split | workouts | users |", "|---|---:|---:|"]
    for split in ("train", "val", "test"):
        if split in counts:
            c = counts[split]
            lines.append(f"| {split} | {c.get('workouts', 'n/a')} | {c.get('users', 'n/a')} |")
    return lines


def _personal_section(config: Mapping[str, Any]) -> list[str]:
    """The history model's section (personalisation); none for a population model."""
    history = config.get("history")
    if not isinstance(history, Mapping):
        return []
    test = config.get("metrics", {}).get("test", {})
    rows = [(f"test.{name}", row) for name, row in metric_rows(test) if name]
    onnx = config.get("onnx")
    onnx_note = (
        [
            f"- `model.onnx` also takes `{onnx.get('context_input')}` float32 [batch, "
            f"{history['k_max']}, {len(history['context_features'])}] (UNSCALED context values: "
            f"`{'`, `'.join(history['context_features'])}`; its scaler is inside the graph) "
            f"and `{onnx.get('context_mask_input')}` float32 [batch, {history['k_max']}] "
            "(1 = an earlier workout, 0 = padding; all 0 = cold start)."
        ]
        if onnx
        else []
    )
    return [
        "## Personalisation",
        "",
        f"- `HistoryHRModel` (design `{history['design']}`): the LSTM above, conditioned on the "
        f"runner's own earlier workouts: an encoder ({history['enc_hidden']} units, attention "
        f"pooling, {history['embed']} outputs) reads the summaries of up to "
        f"{history['k_max']} most recent ones (`{'`, `'.join(history['summary_features'])}`, "
        "and days before), computed from each workout's speed, altitude and recorded HR. "
        "Without history (cold start) it predicts for the population.",
        "- Honest by construction: only workouts that started strictly before the predicted "
        "one are read, never the predicted workout's own HR nor a later workout's.",
        "- For runners: `hrpred profile past/*.fit -o me.json` summarises your own runs with HR; "
        "`hrpred predict run.gpx --profile me.json` (or `--history past/`) prints the population "
        "and the personalised prediction side by side.",
        *onnx_note,
        "",
        *(metrics_table(rows, "test (cold = history ignored)") + [""] if rows else []),
    ]


def _pct(value: Any) -> str:
    """A coverage as the card prints it: a percentage with 1 decimal (n/a when missing)."""
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.1f}%"


def _runner_lines(ref: Any, rule: Any) -> list[str]:
    """The runner scale's bullet of the band section (none without a runner scale): its
    reference score (config.json `band.runner_ref`) and rule (`personal.runner_scale`)."""
    if ref is None or not isinstance(rule, Mapping) or not rule.get("k"):
        return []
    return [
        "- Runner scale: the spread of a prediction personalised with the runner's earlier "
        "runs is multiplied by 1 + rule(score - ref) / ref, the score of an earlier run "
        "being the RMS of (recorded - headline) / spread over its valid steps, ref "
        f"{fmt_metric(ref)} the validation workouts' mean, and rule the shrunk, "
        f"recency-weighted mean over the {int(rule['k'])} most recent runs after the latest "
        f"level change (prior {fmt_metric(rule.get('shrink'))} runs, half-life "
        f"{fmt_metric(rule.get('half_life_days'))} days); 1 with no earlier run. The "
        "multipliers below were calibrated on the scaled spread.",
    ]


def _band_section(config: Mapping[str, Any]) -> list[str]:
    """The calibrated band (issue 14): its constants (config.json `band`) and its test
    coverage and width (metrics `test.band`, when evaluate reported them); none without a band."""
    band = config.get("band")
    if not isinstance(band, Mapping) or "step" not in band:
        return []
    level, step, average = band["level"], band["step"], band.get("average", {})
    counts = band.get("n_workouts", {})
    order = [k for k in BUCKETS if k in step or k in counts] + [POOLED]
    lines = [
        f"## Uncertainty: the {level:.0%} band",
        "",
        "- Every predicted curve comes with a per-step band: HR -/+ q x spread, where the "
        "spread is the model's per-step Laplace scale b (BPM; a linear head on the LSTM output, "
        "trained with the Laplace negative log-likelihood of the residual without changing the "
        "central curve).",
        "- Method: split-conformal calibration on the validation split. The score of a step is "
        "|recorded - predicted| / spread; q is its "
        f"ceil((n + 1) x {level:g}) / n empirical quantile, per history bucket (the number of "
        "earlier runs the prediction's plan used, those after the latest level change; with "
        "`evaluate.band.pool_history` "
        "the buckets with history share one constant; a bucket with too few validation "
        "workouts uses the pooled constant `all`). The workout-average band (the average HR of "
        "a whole workout) is calibrated the same way on |mean recorded - mean predicted| / mean "
        "spread.",
        "- The band surrounds the headline personal prediction (population, offset and learned "
        "weighted by their errors on the runner's earlier runs).",
        *_runner_lines(band.get("runner_ref"), config.get("personal", {}).get("runner_scale")),
        "",
        "| history bucket | validation workouts | step multiplier | workout-average multiplier |",
        "|---|---:|---:|---:|",
    ]
    for k in order:
        q = [
            fmt_metric(t[k]) if k in t else f"pooled {fmt_metric(t.get(POOLED))}"
            for t in (step, average)
        ]
        lines.append(f"| {k} | {fmt_metric(counts.get(k))} | {q[0]} | {q[1]} |")
    lines.append("")
    test = config.get("metrics", {}).get("test", {})
    report = test.get("band") if isinstance(test, Mapping) else None
    if isinstance(report, Mapping) and "coverage" in report:
        lines += [
            f"Test split (nominal {level:.0%}): per-step coverage {_pct(report.get('coverage'))}, "
            f"mean width {fmt_metric(report.get('width_bpm'))} BPM; workout-average band "
            f"coverage {_pct(report.get('workout_avg_coverage'))}.",
            "",
            "| test history bucket | workouts | runners | coverage | 90% over runners "
            "| width (BPM) | workout-average coverage |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        rows = report.get("by_history", {})
        for k in [b for b in BUCKETS if b in rows] + [b for b in rows if b not in BUCKETS]:
            row = rows[k]
            iv = row.get("coverage_runner_interval_90") or [None, None]
            lines.append(
                f"| {k} | {fmt_metric(row.get('n_workouts'))} | {fmt_metric(row.get('n_runners'))} "
                f"| {_pct(row.get('coverage'))} | {_pct(iv[0])}-{_pct(iv[1])} "
                f"| {fmt_metric(row.get('width_bpm'))} "
                f"| {_pct(row.get('workout_avg_coverage'))} |"
            )
        lines += [
            "",
            "The interval is where a bucket's coverage lands when its test runners are redrawn "
            "(bootstrap): the steps of one runner share their level error, so a few dozen "
            "runners measure coverage only this precisely.",
            "",
        ]
    lines += [
        "Coverage is over the steps (and workouts) of a bucket, not a promise for every "
        "single workout; the per-step band is not a simultaneous band for the whole curve.",
        "",
    ]
    return lines


def _onnx_line(config: Mapping[str, Any]) -> list[str]:
    """The card's model.onnx line: inputs, and every output with its meaning."""
    onnx = config.get("onnx")
    if not onnx:
        return []
    outputs = onnx.get("outputs", [onnx["output"]])
    band = onnx.get("band")
    extra = ""
    if len(outputs) > 1:
        extra = f"; `{outputs[1]}` [batch, time] the per-step spread (BPM)"
    if isinstance(band, Mapping):
        extra += (
            f"; `{band['lower_output']}` and `{band['upper_output']}` [batch, time] the "
            f"calibrated {band['level']:.0%} band (its multipliers are inside the graph; "
            "without the runner scale: multiply hr_bpm - hr_p10 by the factor of the runner's "
            "earlier runs, as `hrpred predict` does)"
        )
    return [
        f"- `model.onnx` (opset {onnx['opset']}): input `{onnx['input']}` float32 "
        f"[batch, time, {len(config['features'])}] of UNSCALED features (the scaler is "
        f"inside the graph), output `{onnx['output']}` [batch, time] in BPM{extra}."
    ]


def render_model_card(config: Mapping[str, Any]) -> str:
    """README.md of the bundle; every number comes from config.json (its metrics = evaluate)."""
    metrics = config.get("metrics", {})
    data = config.get("data", {})
    model_cfg = config["model"]["config"]
    sampling = config["sampling"]
    training = config.get("training", {})
    params = training.get("params", {})
    scalar_params = [f"{k}={params[k]}" for k in sorted(params) if not isinstance(params[k], dict)]
    main_rows = [
        (name, metrics[name]) for name in ("test", "val") if isinstance(metrics.get(name), Mapping)
    ]
    training_params = [f"- Training parameters: {', '.join(scalar_params)}."] if params else []
    return fill(
        "model_card.md",
        model_index=block(_model_index(config)),
        source=data.get("source", "unknown"),
        split_table=block(_split_table(data.get("splits", {}))),
        n_features=len(config["features"]),
        feature_list="`, `".join(config["features"]),
        median_step=f"{sampling['median_step_s']:.2f}",
        mean_step=f"{sampling['mean_step_s']:.2f}",
        step_s=f"{sampling['step_s']:.2f}",
        step_statistic=sampling.get("step_statistic", "median").replace("_", " "),
        seq_len=config["seq_len"],
        seq_minutes=f"{config['seq_len'] * sampling['step_s'] / 60:.0f}",
        protocol=data.get("protocol", "unknown"),
        model_table="\n".join(metrics_table(main_rows, "split")),
        baseline_table="\n".join(
            metrics_table(metric_rows(metrics.get("baselines", {})), "baseline")
        ),
        extra_sections=block(_extra_sections(metrics)),
        layers=model_cfg.get("layers"),
        hidden=model_cfg.get("hidden"),
        dropout=model_cfg.get("dropout"),
        bidirectional=model_cfg.get("bidirectional"),
        n_params=config["model"].get("n_params", "n/a"),
        target_mean=f"{config['target']['mean']:.2f}",
        target_std=f"{config['target']['std']:.2f}",
        best_epoch=training.get("best_epoch", "n/a"),
        training_params=block(training_params),
        personal_section=block(_personal_section(config)),
        band_section=block(_band_section(config)),
        onnx_line=block(_onnx_line(config)),
    )
