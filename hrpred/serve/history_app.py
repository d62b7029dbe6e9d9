"""The app's History tab (`hrpred.serve.app` builds the page): upload an export (a Strava or
Garmin .zip), several run files or a profile, and see the trend (level per run, what the
earlier runs expected, level changes, flagged runs, decoupling) as `hrpred trend` prints it;
then upload one run to check it against that history as `hrpred check` does (the requests
themselves are `hrpred.serve.history_page`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hrpred.serve.history_page import check_request, history_request
from hrpred.serve.page import error_update, warnings_update

HISTORY_IDS = {
    "files": "history-files",
    "gender": "history-gender",
    "button": "history-btn",
    "error": "history-error",
    "status": "history-status",
    "plot": "history-plot",
    "table": "history-table",
    "warnings": "history-warnings",
    "csv": "history-csv",
    "run": "history-run",
    "check": "history-check-btn",
    "verdict": "history-verdict",
}


def history_tab(bundle: Any, workdir: str | Path) -> None:
    """The tab's components and events (inside a `gr.Tab`)."""
    import gradio as gr  # deferred: gradio only when the page is built

    ids = HISTORY_IDS
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            files = gr.File(
                label="Your export (.zip), run files, or a profile (.json)",
                file_count="multiple", type="filepath", elem_id=ids["files"],
            )  # fmt: skip
            gender = gr.Dropdown(choices=["unknown", "female", "male"], value="unknown",
                                 label="Gender", elem_id=ids["gender"])  # fmt: skip
            button = gr.Button("Show my trend", variant="primary", elem_id=ids["button"])
            run = gr.File(label="A run to check against your history", type="filepath",
                          elem_id=ids["run"])  # fmt: skip
            check = gr.Button("Check this run", elem_id=ids["check"])
        with gr.Column(scale=3):
            error = gr.Markdown(visible=False, elem_id=ids["error"])
            status = gr.Textbox(label="Trend", lines=6, elem_id=ids["status"])
            plot = gr.Plot(label="Level and decoupling per run", elem_id=ids["plot"])
            table = gr.Dataframe(label="Runs", elem_id=ids["table"])
            warnings = gr.Markdown(visible=False, elem_id=ids["warnings"])
            csv = gr.File(label="Trend (CSV)", elem_id=ids["csv"])
            verdict = gr.Textbox(label="Check", lines=5, elem_id=ids["verdict"])
    profile = gr.State(None)

    def on_history(uploads: Any, gender_value: str) -> tuple:
        view = history_request(bundle, uploads, gender_value, workdir)
        return (
            error_update(view.error),
            view.status,
            view.figure,
            view.table,
            warnings_update(view.warnings),
            view.csv_path,
            view.profile,
        )

    outputs = [error, status, plot, table, warnings, csv, profile]
    button.click(on_history, inputs=[files, gender], outputs=outputs)
    check.click(lambda p, path: check_request(bundle, p, path), inputs=[profile, run],
                outputs=[verdict])  # fmt: skip
