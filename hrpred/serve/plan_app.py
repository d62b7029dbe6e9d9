"""The app's Plan tab (`hrpred.serve.app` builds the page): upload a route (or a recorded run),
choose a pace, a finish time or an HR cap, and see the planned run's predicted HR curve with its
band, the splits, the time in zones and the training load, as `hrpred plan` prints them (the
request itself is `hrpred.serve.plan_page`). The runner's numbers and earlier runs are the
tab's own inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hrpred.serve.page import MAX_PAST_FILES, discard_output, error_update, warnings_update
from hrpred.serve.plan_args import MAX_WARMUP_MIN
from hrpred.serve.plan_page import PlanView, plan_file, plan_request
from hrpred.serve.plan_presentation import splits_table
from hrpred.serve.planner import WARMUP_S
from hrpred.serve.presentation import format_number, format_range, zones_table

# Stable element ids of the tab (the browser test and any scripted client read these).
PLAN_IDS = {
    "file": "plan-route",
    "pace": "plan-pace",
    "time": "plan-time",
    "cap": "plan-hr-cap",
    "zone": "plan-zone",
    "warmup": "plan-warmup",
    "stops": "plan-stops",
    "replan": "plan-replan",
    "gender": "plan-gender",
    "max_hr": "plan-max-hr",
    "age": "plan-age",
    "rest_hr": "plan-rest-hr",
    "past": "plan-past-runs",
    "button": "plan-btn",
    "error": "plan-error",
    "status": "plan-status",
    "plot": "plan-plot",
    "finish": "plan-finish",
    "avg": "plan-avg-hr",
    "avg_band": "plan-avg-band",
    "max": "plan-max-hr-out",
    "max_band": "plan-max-band",
    "load": "plan-load",
    "splits": "plan-splits",
    "zones": "plan-zones",
    "warnings": "plan-warnings",
    "csv": "plan-csv",
}
# the request's inputs in `on_plan`'s argument order, and the outputs in `plan_outputs`' order
PLAN_REQUEST = (
    "file", "pace", "time", "cap", "zone", "warmup", "stops", "replan", "gender", "max_hr",
    "age", "rest_hr", "past",
)  # fmt: skip
PLAN_OUTPUTS = (
    "error", "status", "plot", "finish", "avg", "avg_band", "max", "max_band", "load",
    "splits", "zones", "warnings", "csv",
)  # fmt: skip
ZONE_CHOICES = ("none", "Z1", "Z2", "Z3", "Z4")


def plan_outputs(view: PlanView) -> tuple:
    """The output components' new values (PLAN_OUTPUTS order) for one plan's view."""
    import gradio as gr  # deferred: gradio only when the page is built

    return (
        error_update(view.error),
        view.status,
        view.figure,
        view.finish,
        format_number(view.avg_hr),
        format_range(view.avg_band) or "n/a",
        format_number(view.max_hr),
        format_range(view.max_band) or "n/a",
        view.load,
        view.splits if view.splits is not None else splits_table({"splits": []}),
        gr.update(
            value=view.zones if view.zones is not None else zones_table(None),
            label=f"Time in HR zones ({view.zone_basis})" if view.zone_basis else "Time in zones",
        ),
        warnings_update(view.warnings),
        view.csv_path,
    )


def _inputs() -> dict[str, Any]:
    import gradio as gr  # deferred: gradio only when the page is built

    ids = PLAN_IDS
    box = {"max_lines": 1}
    out = {
        "file": gr.File(
            label="Route (.gpx route or track, .tcx course) or a recorded run",
            type="filepath",
            elem_id=ids["file"],
        ),  # fmt: skip
        "pace": gr.Textbox(label="Average pace (min/km, e.g. 5:30)", elem_id=ids["pace"], **box),
        "time": gr.Textbox(label="...or finish time (h:mm:ss)", elem_id=ids["time"], **box),
        "cap": gr.Number(label="HR cap (bpm, optional)", elem_id=ids["cap"]),
        "zone": gr.Dropdown(
            choices=list(ZONE_CHOICES),
            value="none",
            label="...or cap at the top of zone",
            elem_id=ids["zone"],
        ),  # fmt: skip
        "warmup": gr.Number(
            label=f"Warm-up without cap (min, 0-{MAX_WARMUP_MIN:g})",
            value=WARMUP_S / 60,
            elem_id=ids["warmup"],
        ),  # fmt: skip
        "stops": gr.Textbox(label="Stops (KM@M:SS,...)", elem_id=ids["stops"], **box),
        "replan": gr.Checkbox(
            label="A recorded run: plan its route anew (ignore its times)", elem_id=ids["replan"]
        ),
        "gender": gr.Dropdown(
            choices=["unknown", "female", "male"],
            value="unknown",
            label="Gender",
            elem_id=ids["gender"],
        ),  # fmt: skip
        "max_hr": gr.Number(label="Max HR (bpm, optional)", elem_id=ids["max_hr"]),
        "age": gr.Number(label="Age (years, optional)", elem_id=ids["age"]),
        "rest_hr": gr.Number(label="Resting HR (bpm, optional)", elem_id=ids["rest_hr"]),
        "past": gr.File(
            label=f"Personalise (optional): earlier runs with HR (up to {MAX_PAST_FILES}) or a "
            "profile .json",
            type="filepath",
            file_count="multiple",
            elem_id=ids["past"],
        ),  # fmt: skip
    }
    out["button"] = gr.Button("Plan", variant="primary", elem_id=ids["button"])
    return out


def _outputs(band_name: str) -> dict[str, Any]:
    import gradio as gr  # deferred: gradio only when the page is built

    ids = PLAN_IDS

    def number(label: str, key: str, visible: bool = True) -> Any:
        return gr.Textbox(
            label=label, interactive=False, max_lines=1, elem_id=ids[key], visible=visible
        )

    out = {
        "error": gr.Markdown(visible=False, elem_id=ids["error"]),
        "status": gr.Markdown(
            "Upload a route and choose a pace, a time or a cap.", elem_id=ids["status"]
        ),  # fmt: skip
        "plot": gr.Plot(show_label=False, format="png", elem_id=ids["plot"]),
    }
    with gr.Row():
        banded = bool(band_name)
        out["finish"] = number("Finish time", "finish")
        out["avg"] = number("Average predicted HR (bpm)", "avg")
        out["avg_band"] = number(f"Average HR, {band_name} (bpm)", "avg_band", banded)
        out["max"] = number("Max predicted HR (bpm)", "max")
        out["max_band"] = number(f"Max HR, {band_name} (bpm)", "max_band", banded)
    out["load"] = number("Training load (Banister TRIMP)", "load")
    out["splits"] = gr.Dataframe(
        value=splits_table({"splits": []}), label="Splits (per km)", interactive=False,
        elem_id=ids["splits"],
    )  # fmt: skip
    out["zones"] = gr.Dataframe(
        value=zones_table(None), label="Time in zones", interactive=False, elem_id=ids["zones"]
    )
    out["warnings"] = gr.Markdown(visible=False, elem_id=ids["warnings"])
    out["csv"] = gr.File(label="Plan per step (CSV)", interactive=False, elem_id=ids["csv"])
    return out


def plan_tab(bundle: Any, workdir: Path, band_name: str) -> None:
    """The Plan tab's components and events, inside the page being built (`gr.Blocks`)."""
    import gradio as gr  # deferred: gradio only when the page is built

    def on_plan(path, pace, finish, cap, zone, warmup, stops, replan, gender, max_hr, age,
                rest_hr, past) -> tuple:  # fmt: skip
        try:
            request = plan_request(pace, finish, cap, None if zone == "none" else zone,
                                   warmup, stops, replan)  # fmt: skip
        except ValueError as exc:
            view = PlanView(error=str(exc))
        else:
            view = plan_file(
                bundle, path, request=request, gender=gender, max_hr=max_hr, age=age,
                rest_hr=rest_hr, past=past, workdir=workdir,
            )  # fmt: skip
        return (*plan_outputs(view), view.csv_path)

    def on_served(csv_path: str | None) -> None:
        discard_output(csv_path, workdir)  # Gradio serves its own copy

    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            inputs = _inputs()
        with gr.Column(scale=3):
            outputs = _outputs(band_name)
    served = gr.State(None)
    request = [inputs[k] for k in PLAN_REQUEST]
    shown = [*(outputs[k] for k in PLAN_OUTPUTS), served]
    inputs["button"].click(on_plan, inputs=request, outputs=shown).then(on_served, inputs=[served])
