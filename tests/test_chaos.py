"""The chaos load run, small: two apps on loopback, a fault, sessions that leave; nothing leaks."""

from __future__ import annotations

import json

from scripts import chaos_test


def test_a_short_chaos_run_passes_and_reports_the_fault(tiny_model_dir, tmp_path):
    out = tmp_path / "chaos.json"
    code = chaos_test.main(["--sessions", "8", "--duration", "8", "--fault-after-steps", "80", "--max-new-tokens", "24",
                            "--out", str(out), "--model", str(tiny_model_dir), "--quantization", "none"])
    report = json.loads(out.read_text(encoding="utf-8"))
    assert code == 0, report["problems"]
    assert report["engine_step_faults"] == 1 and report["all"]["fault"] >= 1
    assert report["all"]["left"] >= 1 and report["all"]["completed"] >= 1
    assert report["slots_held_after"] == 0 and report["both_apps_serving"]
    assert {door for door, part in report["by_door"].items() if part["replies"]} == set(chaos_test.DOORS)
