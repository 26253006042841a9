"""The notebooks are examples users copy from: their code cells must run as written."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_code_cells_run(path: Path, seeded_settings, model_cache, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    import shutil

    data = tmp_path / "data"
    shutil.copytree(seeded_settings.data_dir, data)
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(data))
    monkeypatch.setenv("SWITCHBOARD_MODEL_CACHE", str(model_cache))
    monkeypatch.chdir(path.parent)
    namespace: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                exec(compile("".join(cell["source"]), f"{path.name}", "exec"), namespace)  # noqa: S102
    printed = out.getvalue()
    assert "Cancel order 1009" in printed
    assert "completed -> Done: order 1009 is cancelled" in printed
    if path.name == "quickstart.ipynb":  # issue 11: draw, memory, decision log, an eval plot
        import re

        assert "graph TD;" in printed and "request_approval" in printed
        # The xray drawing opens the technical analyst's subgraph into its steps.
        assert "\tsubgraph analyze_technical\n\tanalyze_technical\\3atriage_log(triage_log)" in printed
        assert "subgraphs: ['analyze_technical']" in printed
        assert "store ('default', 'demo', 'working') last_action -> {'tool': 'cancel_order', 'ok': True" in printed
        assert re.search(r"knowledge 0\.\d\d \[kb-", printed)
        assert re.search(r"request_approval +approve +approved", printed)
        assert re.search(r"execute_action +execute +ok", printed)
        scores = re.search(r"(\d+) cases: trajectory (\d\.\d\d)", printed)
        assert scores and int(scores[1]) >= 30 and float(scores[2]) >= 0.9, printed[-500:]
        assert re.search(r"plot: [1-9]\d{3,} bytes of PNG", printed)
