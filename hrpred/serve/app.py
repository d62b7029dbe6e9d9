"""Demo web app (`hrpred app`): upload a workout file or pick a generated sample, see the
predicted HR curve with speed and altitude, time in zones and a CSV of the predictions; or, in
the Plan tab (`hrpred.serve.plan_app`), plan a route as `hrpred plan` does.
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
equal the command line's for the same file. One request without Gradio (read, personalise,
predict, what the page shows) is `hrpred.serve.page`; this module builds the page and serves it.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from hrpred.bundle.runtime import load_bundle
from hrpred.serve.demo_samples import sample_names, write_sample_gpx
from hrpred.serve.history_app import history_tab
from hrpred.serve.page import (
    MAX_PAST_FILES,
    OUTPUT_PREFIXES,
    PredictionView,
    discard_output,
    error_update,
    one_line,
    predict_file,
    prune_outputs,
    warnings_update,
)
from hrpred.serve.plan_app import plan_tab
from hrpred.serve.presentation import format_number, format_range, zones_table

if TYPE_CHECKING:
    import gradio as gr

DEFAULT_BUNDLE = "models/bundle"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
CACHE_MAX_AGE = (3600, 3600)  # s: every hour, drop uploads/downloads Gradio cached > 1 h ago
# Limits (README "Limits and bad files"): an upload is one file (the file input takes one) of at
# most MAX_UPLOAD, plus at most MAX_PAST_FILES (`hrpred.serve.page`) earlier runs (or one
# profile) of at most MAX_UPLOAD each; read_activity decompresses at most
# hrpred.io.limits.MAX_ACTIVITY_BYTES; QUEUE_MAX requests wait while CONCURRENCY run; a
# prediction's CSV is deleted once served, and in any case once it is one of more than
# `hrpred.serve.page.MAX_KEPT_OUTPUTS` or older than its OUTPUT_MAX_AGE_S (API clients).
MAX_UPLOAD = "64mb"  # = MAX_ACTIVITY_BYTES: a larger file is refused uncompressed anyway
MAX_FILES = 1  # files per request (gr.File(file_count="single"))
CONCURRENCY = 2  # predictions at a time
QUEUE_MAX = 16  # requests waiting; more are turned away with "queue full"
GENDERS = ("unknown", "female", "male")
ZONES_LABEL = "Time in HR zones"
EMPTY_PERSONAL = pd.DataFrame(columns=["BPM", "population", "+ offset", "learned", "headline"])

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


def _number_box(label: str, elem_id: str, visible: bool = True) -> Any:
    import gradio as gr  # deferred: gradio only when the page is built

    return gr.Textbox(
        label=label, value="", interactive=False, max_lines=1, elem_id=elem_id, visible=visible
    )


# the output components, by IDS key, in the order `view_outputs` gives their values
OUTPUTS = (
    "error", "status", "plot", "avg", "max", "avg_band", "max_band", "mae", "drift", "zones",
    "warnings", "csv", "personal",
)  # fmt: skip
# the input components of a prediction, by IDS key, in `predict_file`'s argument order
REQUEST = ("file", "gender", "max_hr", "age", "rest_hr", "past")


def view_outputs(view: PredictionView) -> tuple:
    """The output components' new values (OUTPUTS order) for one prediction's view."""
    import gradio as gr  # deferred: gradio only when the page is built

    return (
        error_update(view.error),
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
        warnings_update(view.warnings),
        view.csv_path,
        gr.update(
            value=view.personal if view.personal is not None else EMPTY_PERSONAL,
            visible=view.personal is not None,
        ),
    )


def _theme() -> Any:
    """Gradio's default theme with the fonts shipped inside Gradio (the default theme would
    fetch them from Google Fonts)."""
    import gradio as gr  # deferred: gradio only when the page is built
    from gradio.themes.utils.fonts import LocalFont

    return gr.themes.Default(
        font=(LocalFont("IBM Plex Sans"), "ui-sans-serif", "system-ui", "sans-serif"),
        font_mono=(LocalFont("IBM Plex Mono"), "ui-monospace", "monospace"),
    )


def _intro(bundle_dir: str | Path) -> str:
    return (
        "# hrpred: predicted heart rate for a run\n"
        "Upload a workout (`.gpx`, `.tcx`, `.fit`, `.fit.gz`, `.csv`) or pick a sample. "
        "The model predicts HR from speed and altitude only; recorded HR, if the file "
        "has it, is shown for comparison. Add your earlier runs with HR (or a profile "
        "from `hrpred profile`) to personalise it: only runs that started before this one "
        f"are used. Model bundle: `{Path(bundle_dir)}`."
    )


def _input_column() -> dict[str, Any]:
    """The left column's components by IDS key: the workout file or a sample, the runner's
    optional numbers, the earlier runs and the Predict button."""
    import gradio as gr  # deferred: gradio only when the page is built

    return {
        "file": gr.File(
            label="Workout file (.gpx .tcx .fit .fit.gz .csv)",
            type="filepath",
            file_count="single" if MAX_FILES == 1 else "multiple",
            elem_id=IDS["file"],
        ),
        "sample": gr.Dropdown(
            choices=sample_names(),
            value=None,
            label="...or pick a sample workout (generated)",
            elem_id=IDS["sample"],
        ),
        "gender": gr.Dropdown(
            choices=list(GENDERS), value="unknown", label="Gender", elem_id=IDS["gender"]
        ),
        "max_hr": gr.Number(
            label="Max HR (bpm, optional)", placeholder="optional", elem_id=IDS["max_hr"]
        ),
        "age": gr.Number(label="Age (years, optional)", placeholder="optional", elem_id=IDS["age"]),
        "rest_hr": gr.Number(
            label="Resting HR (bpm, optional)", placeholder="optional", elem_id=IDS["rest_hr"]
        ),
        "past": gr.File(
            label=f"Personalise (optional): your earlier runs with HR (up to "
            f"{MAX_PAST_FILES} files) or a profile .json from `hrpred profile`",
            type="filepath",
            file_count="multiple",
            elem_id=IDS["past"],
        ),
        "button": gr.Button("Predict", variant="primary", elem_id=IDS["button"]),
    }


def _output_column(band_name: str) -> dict[str, Any]:
    """The right column's components by IDS key: error and status lines, the figure, the
    number boxes (the band's only with a band: `band_name` not empty), the side-by-side and
    zone tables, the warnings and the CSV download."""
    import gradio as gr  # deferred: gradio only when the page is built

    out = {
        "error": gr.Markdown(visible=False, elem_id=IDS["error"]),
        "status": gr.Markdown("Upload a workout file or pick a sample.", elem_id=IDS["status"]),
        "plot": gr.Plot(
            label="Heart rate, speed and altitude",
            show_label=False,
            format="png",  # lossless: thin lines stay sharp
            elem_id=IDS["plot"],
        ),
    }
    with gr.Row():
        banded = bool(band_name)
        out["avg"] = _number_box("Average predicted HR (bpm)", IDS["avg"])
        out["avg_band"] = _number_box(f"Average HR, {band_name} (bpm)", IDS["avg_band"], banded)
        out["max"] = _number_box("Max predicted HR (bpm)", IDS["max"])
        out["max_band"] = _number_box(f"Max HR, {band_name} (bpm)", IDS["max_band"], banded)
        out["mae"] = _number_box("MAE vs recorded HR (bpm)", IDS["mae"])
        out["drift"] = _number_box("Drift, 2nd half - 1st half (bpm)", IDS["drift"])
    out["personal"] = gr.Dataframe(
        value=EMPTY_PERSONAL,
        label="Population vs personalised (BPM; only runs that started before this one are used)",
        interactive=False,
        visible=False,
        elem_id=IDS["personal"],
    )
    out["zones"] = gr.Dataframe(
        value=zones_table(None), label=ZONES_LABEL, interactive=False, elem_id=IDS["zones"]
    )
    out["warnings"] = gr.Markdown(visible=False, elem_id=IDS["warnings"])
    out["csv"] = gr.File(label="Predictions (CSV)", interactive=False, elem_id=IDS["csv"])
    return out


def build_app(bundle_dir: str | Path) -> gr.Blocks:
    """The Gradio page for the bundle in `bundle_dir` (loaded once, shared by all requests)."""
    _offline_environment()
    import gradio as gr  # deferred: gradio only when the page is built

    bundle = load_bundle(Path(bundle_dir))
    cal = bundle.calibration  # None: no band boxes
    band_name = "" if cal is None else f"{100 * cal.level:.0f}% band"
    workdir = Path(tempfile.mkdtemp(prefix="hrpred-app-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)  # CSVs and samples written

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
        prune_outputs(workdir)
        sample_dir = Path(tempfile.mkdtemp(prefix=OUTPUT_PREFIXES[1], dir=workdir))
        return str(write_sample_gpx(name, sample_dir))

    with gr.Blocks(
        title="hrpred: heart-rate prediction",
        theme=_theme(),
        analytics_enabled=False,
        delete_cache=CACHE_MAX_AGE,
    ) as demo:
        gr.Markdown(_intro(bundle_dir))
        with gr.Tab("Predict", id="predict-tab"):
            with gr.Row():
                with gr.Column(scale=1, min_width=280):
                    inputs = _input_column()
                with gr.Column(scale=3):
                    outputs = _output_column(band_name)
        with gr.Tab("Plan", id="plan-tab"):
            plan_tab(bundle, workdir, band_name)
        with gr.Tab("History", id="history-tab"):
            history_tab(bundle, workdir)
        request = [inputs[k] for k in REQUEST]
        # `served`: the CSV's path, deleted once Gradio has copied it
        served = gr.State(None)
        shown = [*(outputs[k] for k in OUTPUTS), served]
        # `change` fires for uploads, clears and the sample picker writing the file input
        for event in (inputs["file"].change, inputs["button"].click, inputs["past"].change):
            event(on_predict, inputs=request, outputs=shown).then(on_served, inputs=[served])
        inputs["sample"].change(on_sample, inputs=[inputs["sample"]], outputs=[inputs["file"]])
        # a new upload replaces the sample: clear the picker so the page does not contradict it
        inputs["file"].upload(lambda: None, outputs=[inputs["sample"]])
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
        message = one_line(exc)  # bundle errors already name the directory
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
