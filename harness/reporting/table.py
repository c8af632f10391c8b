"""The final table of clause verdicts printed by `harness certify`."""

from __future__ import annotations

from typing import Any


def clause_table(verdicts: dict[str, Any]) -> str:
    rows = [("DUT", "clause", "verdict", "checks")]
    for dut, info in verdicts["duts"].items():
        for clause, c in info["clauses"].items():
            failing = [f"{k['id']} {k['verdict']}" for k in c["checks"] if k["verdict"] != "PASS"]
            passed = sum(1 for k in c["checks"] if k["verdict"] == "PASS")
            summary = ", ".join(failing) if failing else f"{passed} passed"
            if c["not_run"]:
                summary += f"; not run: {', '.join(c['not_run'])}"
            kind = " (documentary)" if c.get("verdict_kind") == "documentary" else ""
            rows.append((dut, f"cl. {clause}", c["verdict"] + kind, summary))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = []
    for i, r in enumerate(rows):
        lines.append("  ".join(r[j].ljust(widths[j]) for j in range(3)) + "  " + r[3])
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 20)
    not_run = sorted({k for info in verdicts["duts"].values() for c in info["clauses"].values() for k in c["not_run"]})
    lines.append("")
    if verdicts["certification_grade"]:
        lines.append(f"overall: {verdicts['verdict']}  (certification-grade)")
    else:
        lines.append(f"overall: {verdicts['verdict']} for the checks that ran — NOT certification-grade: "
                     f"{len(not_run)} check(s) not run")
    return "\n".join(lines)
