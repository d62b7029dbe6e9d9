"""Demo web app (`hrpred app`): upload a workout file or pick a generated sample, see the
predicted HR curve with speed and altitude, time in zones and a CSV of the predictions.
Optionally upload your earlier runs with HR (or a profile from `hrpred profile`): the page
then shows the population and the personalised predictions side by side, as
`hrpred predict --history/--profile` does (only runs that started before the predicted one).
The number boxes and the zone table show the headline prediction (the most personal one: the
population prediction without earlier runs); with a bundle that carries a calibrated band
(issue 14) the figure shades its 80% band, the band boxes give the ranges of its average and
max HR, the zone table each zone's range and the side-by-side table the population's and the
personalised bands. A bundle without a band shows no band boxes and says so in the status.

Runs offline: Gradio analytics and its version check are off, no share link, no server-side
rendering (Node), and the theme uses fonts bundled with Gradio instead of Google Fonts.
Prediction goes through `hrpred.serve.predict` exactly like `hrpred predict`, so the numbers shown
equal the command line's for the same file.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import math
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from hrpred.errors import HrpredError
from hrpred.serve.demo_samples import sample_names, write_sample_gpx
from hrpred.serve.figure import make_figure

if TYPE_CHECKING:
    import gradio as gr
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

DEFAULT_BUNDLE = "models/bundle"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
CACHE_MAX_AGE = (3600, 3600)  # s: every hour, drop uploads/downloads Gradio cached > 1 h ago
# Limits (README "Limits and bad files"): an upload is one file (the file input takes one) of at
# most MAX_UPLOAD, plus at most MAX_PAST_FILES earlier runs (or one profile) of at most
# MAX_UPLOAD each; read_activity decompresses at most hrpred.io.limits.MAX_ACTIVITY_BYTES;
# QUEUE_MAX requests wait while CONCURRENCY run; a prediction's CSV is deleted once served.
MAX_UPLOAD = "64mb"  # = MAX_ACTIVITY_BYTES: a larger file is refused uncompressed anyway
MAX_FILES = 1  # files per request (gr.File(file_count="single"))
MAX_PAST_FILES = 20  # earlier runs per request (the personalisers read the 10 most recent)
PROFILE_SUFFIX = ".json"  # a past-runs upload with this suffix is a profile (hrpred profile)
CONCURRENCY = 2  # predictions at a time
QUEUE_MAX = 16  # requests waiting; more are turned away with "queue full"
GENDERS = ("unknown", "female", "male")
ZONES = ("Z1", "Z2", "Z3", "Z4", "Z5")
ZONES_LABEL = "Time in HR zones"
EMPTY_PERSONAL = pd.DataFrame(columns=["BPM", "population", "+ offset", "learned"])

# Stable element ids: the browser test and any scripted client read these.
IDS = {
    "file": "workout-file",
    "past": "past-runs",
    "sample": "sample-picker",
    "gender": "in-gender",
    "max_hr": "in-max-hr",
    "age": "in-age",
    "rest_hr": "in-rest-hr",
    "button": "predict-btn",
    "error": "error",
    "status": "status",
    "plot": "hr-plot",
    "avg": "pred-avg-hr",
    "max": "pred-max-hr",
    "mae": "pred-mae",
    "drift": "pred-drift",
    "avg_band": "pred-avg-band",
    "max_band": "pred-max-band",
    "zones": "zones",
    "personal": "personal-table",
    "warnings": "warnings",
    "csv": "download-csv",
}


def _offline_environment() -> None:
    """Turn off everything in Gradio/Hugging Face that would call out to the network."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Gradio checks its own URL with httpx, which would go through a proxy from the environment.
    for key in ("NO_PROXY", "no_proxy"):
        hosts = [h for h in os.environ.get(key, "").split(",") if h]
        for host in ("127.0.0.1", "localhost"):
            if host not in hosts:
                hosts.append(host)
        os.environ[key] = ",".join(hosts)


@dataclass(frozen=True)
class PredictionView:
    """What one prediction shows in the page; `error` set means nothing else is."""

    error: str | None = None
    status: str = ""
    figure: Figure | None = None
    avg_hr: float | None = None
    max_hr: float | None = None
    avg_band: tuple[float, float] | None = None  # the headline's calibrated band (BPM)
    max_band: tuple[float, float] | None = None
    mae: float | None = None
    drift_bpm: float | None = None
    zones: pd.DataFrame | None = None
    zone_basis: str = ""
    warnings: tuple[str, ...] = ()
    csv_path: str | None = None
    personal: pd.DataFrame | None = None  # population vs personalised (with earlier runs)


def _one_line(message: object) -> str:
    """First non-empty line of a message, so the page never shows a multi-line trace."""
    text = str(message).strip()
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first or "unknown error"


def _number(value: Any) -> float | None:
    """Optional numeric input from the page: None for blank, NaN or non-positive."""
    if value is None or value == "":
        return None
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        return None
    return number


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def file_stem(path: str | Path) -> str:
    """File name without workout extensions (`run.fit.gz` -> `run`), safe for a download name."""
    name = Path(path).name
    name = re.sub(r"(\.(gpx|tcx|fit|csv))?(\.gz)?$", "", name, flags=re.IGNORECASE) or "workout"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


BAND_ZONE_COLUMNS = ["band_low_min", "band_high_min"]


def zones_table(
    zones: dict[str, float] | None, band: dict[str, list[float]] | None = None
) -> pd.DataFrame:
    """Time in each HR zone as minutes and share of the workout; with the band's zone ranges
    (seconds, `predict`'s band summary `zones`), their ends in minutes."""
    columns = ["zone", "minutes", "share_%", *(BAND_ZONE_COLUMNS if band else [])]
    if not zones:
        return pd.DataFrame(columns=columns)
    seconds = [float(zones.get(z, 0.0) or 0.0) for z in ZONES]
    total = sum(seconds)
    rows = [
        [z, round(s / 60.0, 1), round(100.0 * s / total, 1) if total > 0 else 0.0]
        + ([round(float(b) / 60.0, 1) for b in band[z]] if band else [])
        for z, s in zip(ZONES, seconds, strict=True)
    ]
    return pd.DataFrame(rows, columns=columns)


PERSONAL_ROWS = (  # (label, summary key) of the population-vs-personalised table
    ("avg HR", "avg_hr"),
    ("max HR", "max_hr"),
    ("MAE vs recorded", "mae"),
    ("bias vs recorded", "bias"),
)


def personal_table(summary: dict[str, Any]) -> pd.DataFrame | None:
    """Population, + offset and (history model) learned personalised numbers side by side
    (BPM), None without personalisation."""
    if "offset" not in summary:
        return None
    cols = {"population": summary, "+ offset": summary["offset"]}
    if "personal" in summary:
        cols["learned"] = summary["personal"]
    rows = []
    band = summary.get("band")
    for label, key in PERSONAL_ROWS:
        if key in summary["offset"]:
            rows.append([label, *(_rounded(c.get(key)) for c in cols.values())])
        if band is not None and key in ("avg_hr", "max_hr"):
            name = f"{label} {100 * band['level']:.0f}% band"
            rows.append([name, *(format_range(_pair(c, key)) for c in cols.values())])
    fixes = [None, _rounded(summary["offset"]["offset_bpm"])]
    if "personal" in summary:
        fixes.append(_rounded(summary["personal"]["residual_bpm"]))
    rows.append(["correction", *fixes])
    return pd.DataFrame(rows, columns=["BPM", *cols])


def _pair(curve: dict[str, Any], key: str) -> tuple[float, float] | None:
    """The band of `key` (avg_hr, max_hr) of a curve summary, None without one."""
    band = curve.get("band")
    return None if not band else (float(band[key][0]), float(band[key][1]))


def format_range(pair: tuple[float, float] | None) -> str:
    """A band's ends as text (e.g. 146.1-158.4); empty without a band."""
    return "" if pair is None else f"{pair[0]:.1f}-{pair[1]:.1f}"


HEADLINE_LABELS = {
    "personal": "the learned personalised prediction",
    "offset": "the personalised prediction (+ offset)",
}
NO_BAND_STATUS = " No uncertainty band: this model bundle has no calibration."


def _rounded(value: Any) -> float | None:
    number = _finite(value)
    return None if number is None else round(number, 1)


def _past_paths(past: Any) -> list[str]:
    """The past-runs upload as a list of paths (Gradio gives a list, a path or None)."""
    if not past:
        return []
    items = [past] if isinstance(past, (str, Path)) else list(past)
    return [str(getattr(p, "name", p)) for p in items if p]


def own_profile(bundle: Any, past: Any, gender: str | None, warnings: list[str]) -> Any:
    """The profile of the past-runs upload: one profile JSON, or built from earlier run files
    (files without HR skipped with a warning); None when none was uploaded or no run had HR.
    HrpredError (one line, prefixed "past runs:") for a bad upload."""
    from hrpred.serve.profile import ProfileError, build_profile, check_compatible, load_profile

    paths = _past_paths(past)
    if not paths:
        return None
    if len(paths) > MAX_PAST_FILES:
        raise ProfileError(
            f"past runs: {len(paths)} files, at most {MAX_PAST_FILES} (the personalisers read "
            "the 10 most recent)"
        )
    profiles = [p for p in paths if p.lower().endswith(PROFILE_SUFFIX)]
    if profiles and len(paths) > 1:
        raise ProfileError("past runs: upload either one profile .json or run files, not both")
    try:
        if profiles:
            profile = load_profile(profiles[0])
            check_compatible(profile, bundle)
            return profile
        profile, warns = build_profile(bundle, paths, gender)
    except ProfileError as exc:
        raise ProfileError(f"past runs: {_one_line(exc)}") from None
    warnings += [f"past runs: {w}" for w in warns]
    if not profile.content["n_runs"]:
        warnings.append("past runs: no run with heart rate: population prediction only")
        return None
    return profile


def predict_file(
    bundle: Any,
    path: str | None,
    *,
    gender: str | None = None,
    max_hr: Any = None,
    age: Any = None,
    rest_hr: Any = None,
    past: Any = None,
    workdir: str | Path | None = None,
    read_activity: Callable[[str], Any] | None = None,
    predict_activity: Callable[..., Any] | None = None,
) -> PredictionView:
    """Read a workout file, predict its HR curve and build everything the page shows.

    `past`: the runner's earlier runs with HR (paths), or one profile JSON: personalises the
    prediction (only runs that started before this one). Every failure becomes a one-line
    `error`; the server log keeps the traceback of unexpected ones.
    `read_activity`/`predict_activity` default to the real `hrpred` API.
    """
    if not path:
        return PredictionView(status="Upload a workout file or pick a sample.")
    if read_activity is None:
        from hrpred.io.userfiles import read_activity
    if predict_activity is None:
        from hrpred.serve.predict import predict_activity
    name = Path(path).name
    try:
        gender_arg = None if gender in (None, "", "unknown") else str(gender)
        activity = read_activity(str(path))
        extra: list[str] = []
        profile = own_profile(bundle, past, gender_arg, extra)
        prediction = predict_activity(
            bundle,
            activity,
            gender=gender_arg,
            max_hr=_number(max_hr),
            rest_hr=_number(rest_hr),
            age=_number(age),
            **({"profile": profile} if profile is not None else {}),
        )
        return _view(prediction, activity, name, workdir, tuple(extra))
    except (HrpredError, ValueError, OSError) as exc:  # ActivityError, BundleError, ...
        message = _one_line(exc)
        if message.startswith("past runs: "):
            return PredictionView(error=message)
        # readers usually name the file already; the page must say which file failed once
        return PredictionView(error=message if message.startswith(name) else f"{name}: {message}")
    except Exception as exc:
        log.exception("prediction failed for %s", path)
        return PredictionView(
            error=f"{name}: could not predict ({type(exc).__name__}: {_one_line(exc)})"
        )


def _zone_band_note(band: dict[str, Any] | None) -> str:
    """What the zone table's band columns are (appended to the zone basis); "" without."""
    if band is None:
        return ""
    return (
        f"; band_low/high_min: the least and most minutes over the {100 * band['level']:.0f}% band"
    )


def _view(
    prediction: Any,
    activity: Any,
    name: str,
    workdir: str | Path | None,
    extra: tuple[str, ...] = (),
) -> PredictionView:
    """The page's content for one prediction; writes the CSV download."""
    frame = prediction.frame
    summary = dict(prediction.summary)
    out_dir = Path(tempfile.mkdtemp(prefix="hrpred-app-", dir=workdir))
    csv_path = out_dir / f"{file_stem(name)}_hr_pred.csv"
    frame.to_csv(csv_path, index=False)
    shown = (*extra, *(getattr(prediction, "warnings", ()) or ()))
    warnings = tuple(_one_line(w) for w in shown)
    history = summary.get("history")
    # the numbers shown: the headline (most personal) prediction, with its band if any
    key = summary.get("headline", "population")
    head = summary if key == "population" else summary[key]
    band = head.get("band")
    status = f"Predicted {len(frame)} points ({frame['t_s'].iloc[-1] / 60.0:.1f} min) from {name}."
    if history is not None:
        status += f" Personalised with {history['earlier_runs']} earlier run(s)"
        status += f"; the numbers, zones and band are {HEADLINE_LABELS[key]}."
    if summary.get("band", False) is None:
        status += NO_BAND_STATUS
    return PredictionView(
        status=status,
        figure=make_figure(
            frame,
            name,
            getattr(activity, "latitude", None),
            getattr(activity, "longitude", None),
            band_level=None if band is None else float(band["level"]),
        ),
        avg_hr=_finite(head.get("avg_hr")),
        max_hr=_finite(head.get("max_hr")),
        avg_band=_pair(head, "avg_hr"),
        max_band=_pair(head, "max_hr"),
        mae=_finite(head.get("mae")),
        drift_bpm=_finite(head.get("drift_bpm")),
        zones=zones_table(head.get("zones"), None if band is None else band["zones"]),
        zone_basis=str(summary.get("zone_basis") or "") + _zone_band_note(band),
        warnings=warnings,
        csv_path=str(csv_path),
        personal=personal_table(summary),
    )


def discard_output(csv_path: str | None, workdir: str | Path) -> bool:
    """Delete a prediction's CSV directory once Gradio has served (copied) it; only a
    directory inside the app's temp `workdir` is ever deleted. True if one was."""
    if not csv_path:
        return False
    out_dir = Path(csv_path).resolve().parent
    root = Path(workdir).resolve()
    if out_dir == root or root not in out_dir.parents:
        return False
    shutil.rmtree(out_dir, ignore_errors=True)
    return True


def format_number(value: float | None) -> str:
    """One decimal, or `n/a` (a blank number box would read as 0)."""
    return "n/a" if value is None else f"{value:.1f}"


def _number_box(label: str, elem_id: str, visible: bool = True) -> Any:
    import gradio as gr

    return gr.Textbox(
        label=label, value="", interactive=False, max_lines=1, elem_id=elem_id, visible=visible
    )


def _warnings_markdown(warnings: tuple[str, ...]) -> str:
    return "\n".join(f"- {w}" for w in warnings)


def build_app(bundle_dir: str | Path) -> gr.Blocks:
    """The Gradio page for the bundle in `bundle_dir` (loaded once, shared by all requests)."""
    _offline_environment()
    import gradio as gr

    from hrpred.serve.predict import load_bundle

    bundle = load_bundle(Path(bundle_dir))
    cal = bundle.calibration  # None: no band boxes
    band_name = "" if cal is None else f"{100 * cal.level:.0f}% band"
    workdir = Path(tempfile.mkdtemp(prefix="hrpred-app-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)  # CSVs and samples written

    def view_outputs(view: PredictionView) -> tuple:
        has_error = view.error is not None
        return (
            gr.update(value=f"**Error:** {view.error}" if has_error else "", visible=has_error),
            view.status,
            view.figure,
            format_number(view.avg_hr),
            format_number(view.max_hr),
            format_range(view.avg_band) or "n/a",
            format_range(view.max_band) or "n/a",
            format_number(view.mae),
            format_number(view.drift_bpm),
            gr.update(
                value=view.zones if view.zones is not None else zones_table(None),
                label=f"Time in HR zones ({view.zone_basis})" if view.zone_basis else ZONES_LABEL,
            ),
            gr.update(value=_warnings_markdown(view.warnings), visible=bool(view.warnings)),
            view.csv_path,
            gr.update(
                value=view.personal if view.personal is not None else EMPTY_PERSONAL,
                visible=view.personal is not None,
            ),
        )

    def on_predict(path, gender, max_hr, age, rest_hr, past) -> tuple:
        view = predict_file(
            bundle, path, gender=gender, max_hr=max_hr, age=age, rest_hr=rest_hr, past=past,
            workdir=workdir,
        )  # fmt: skip
        return (*view_outputs(view), view.csv_path)

    def on_served(csv_path: str | None) -> None:
        # runs after the outputs were post-processed: Gradio serves its own copy of the CSV
        discard_output(csv_path, workdir)

    def on_sample(name: str | None) -> Any:
        if not name:
            return gr.update()
        sample_dir = Path(tempfile.mkdtemp(prefix="sample-", dir=workdir))
        return str(write_sample_gpx(name, sample_dir))

    from gradio.themes.utils.fonts import LocalFont

    theme = gr.themes.Default(
        # fonts shipped inside Gradio: the default theme would fetch them from Google Fonts
        font=(LocalFont("IBM Plex Sans"), "ui-sans-serif", "system-ui", "sans-serif"),
        font_mono=(LocalFont("IBM Plex Mono"), "ui-monospace", "monospace"),
    )
    with gr.Blocks(
        title="hrpred: heart-rate prediction",
        theme=theme,
        analytics_enabled=False,
        delete_cache=CACHE_MAX_AGE,
    ) as demo:
        gr.Markdown(
            "# hrpred: predicted heart rate for a run\n"
            "Upload a workout (`.gpx`, `.tcx`, `.fit`, `.fit.gz`, `.csv`) or pick a sample. "
            "The model predicts HR from speed and altitude only; recorded HR, if the file "
            "has it, is shown for comparison. Add your earlier runs with HR (or a profile "
            "from `hrpred profile`) to personalise it: only runs that started before this one "
            f"are used. Model bundle: `{Path(bundle_dir)}`."
        )
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                file_in = gr.File(
                    label="Workout file (.gpx .tcx .fit .fit.gz .csv)",
                    type="filepath",
                    file_count="single" if MAX_FILES == 1 else "multiple",
                    elem_id=IDS["file"],
                )
                sample_in = gr.Dropdown(
                    choices=sample_names(),
                    value=None,
                    label="...or pick a sample workout (generated)",
                    elem_id=IDS["sample"],
                )
                gender_in = gr.Dropdown(
                    choices=list(GENDERS), value="unknown", label="Gender", elem_id=IDS["gender"]
                )
                max_hr_in = gr.Number(
                    label="Max HR (bpm, optional)", placeholder="optional", elem_id=IDS["max_hr"]
                )
                age_in = gr.Number(
                    label="Age (years, optional)", placeholder="optional", elem_id=IDS["age"]
                )
                rest_hr_in = gr.Number(
                    label="Resting HR (bpm, optional)",
                    placeholder="optional",
                    elem_id=IDS["rest_hr"],
                )
                past_in = gr.File(
                    label=f"Personalise (optional): your earlier runs with HR (up to "
                    f"{MAX_PAST_FILES} files) or a profile .json from `hrpred profile`",
                    type="filepath",
                    file_count="multiple",
                    elem_id=IDS["past"],
                )
                button = gr.Button("Predict", variant="primary", elem_id=IDS["button"])
            with gr.Column(scale=3):
                error_out = gr.Markdown(visible=False, elem_id=IDS["error"])
                status_out = gr.Markdown(
                    "Upload a workout file or pick a sample.", elem_id=IDS["status"]
                )
                plot_out = gr.Plot(
                    label="Heart rate, speed and altitude",
                    show_label=False,
                    format="png",  # lossless: thin lines stay sharp
                    elem_id=IDS["plot"],
                )
                with gr.Row():
                    avg_out = _number_box("Average predicted HR (bpm)", IDS["avg"])
                    banded = cal is not None
                    avg_band_out = _number_box(
                        f"Average HR, {band_name} (bpm)", IDS["avg_band"], banded
                    )
                    max_out = _number_box("Max predicted HR (bpm)", IDS["max"])
                    max_band_out = _number_box(
                        f"Max HR, {band_name} (bpm)", IDS["max_band"], banded
                    )
                    mae_out = _number_box("MAE vs recorded HR (bpm)", IDS["mae"])
                    drift_out = _number_box("Drift, 2nd half - 1st half (bpm)", IDS["drift"])
                personal_out = gr.Dataframe(
                    value=EMPTY_PERSONAL,
                    label="Population vs personalised (BPM; only runs that started before "
                    "this one are used)",
                    interactive=False,
                    visible=False,
                    elem_id=IDS["personal"],
                )
                zones_out = gr.Dataframe(
                    value=zones_table(None),
                    label=ZONES_LABEL,
                    interactive=False,
                    elem_id=IDS["zones"],
                )
                warnings_out = gr.Markdown(visible=False, elem_id=IDS["warnings"])
                csv_out = gr.File(label="Predictions (CSV)", interactive=False, elem_id=IDS["csv"])

        inputs = [file_in, gender_in, max_hr_in, age_in, rest_hr_in, past_in]
        outputs = [
            error_out,
            status_out,
            plot_out,
            avg_out,
            max_out,
            avg_band_out,
            max_band_out,
            mae_out,
            drift_out,
            zones_out,
            warnings_out,
            csv_out,
            personal_out,
        ]
        # `change` fires for uploads, clears and the sample picker writing the file input
        served = gr.State(None)
        outputs_and_path = [*outputs, served]
        file_in.change(on_predict, inputs=inputs, outputs=outputs_and_path).then(
            on_served, inputs=[served]
        )
        button.click(on_predict, inputs=inputs, outputs=outputs_and_path).then(
            on_served, inputs=[served]
        )
        past_in.change(on_predict, inputs=inputs, outputs=outputs_and_path).then(
            on_served, inputs=[served]
        )
        sample_in.change(on_sample, inputs=[sample_in], outputs=[file_in])
        # a new upload replaces the sample: clear the picker so the page does not contradict it
        file_in.upload(lambda: None, outputs=[sample_in])
    return demo


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="hrpred app",
        description="Start the demo web app (offline) on a model bundle exported by `export`.",
    )
    parser.add_argument("--bundle", default=DEFAULT_BUNDLE, help="model bundle directory")
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Start the app on host:port with the given bundle (blocks until interrupted)."""
    args = parse_args(argv)
    bundle_dir = Path(args.bundle)
    if not bundle_dir.is_dir():
        raise SystemExit(
            f"no model bundle at {bundle_dir}: run `dvc repro export` or pass --bundle DIR"
        )
    try:
        demo = build_app(bundle_dir)
    except (OSError, ValueError, KeyError) as exc:
        message = _one_line(exc)  # bundle errors already name the directory
        if str(bundle_dir) not in message:
            message = f"cannot load the model bundle {bundle_dir}: {message}"
        raise SystemExit(message) from None
    # SIGTERM (service managers, test harnesses) stops like Ctrl-C: Gradio closes its server
    # and the atexit clean-up of the app's temporary files runs.
    signal.signal(signal.SIGTERM, _interrupt)
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_MAX).launch(
        server_name=args.host,
        server_port=args.port,
        share=False,
        inbrowser=False,
        show_api=False,
        ssr_mode=False,
        max_file_size=MAX_UPLOAD,
        show_error=False,  # errors are shown as one-line messages in the page
    )


if __name__ == "__main__":
    main()
