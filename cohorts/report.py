"""Cohort report: counts per disease, rare vs common, missingness, and a plot.

The plot is a rank-frequency bar chart of cases per disease (log scale), drawn by a tiny PNG
rasteriser below because matplotlib is not a dependency of the project: it draws bars and
grid lines only, no text; report.md carries the axis labels and legend.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cohorts.patients import VITAL_ORDER, CohortGenerator, Patient


@dataclass
class CohortStats:
    """Counts accumulated over a stream of patients (constant memory in the number of records)."""

    records: int = 0
    labels: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    observed: Counter[str] = field(default_factory=Counter)  # kind -> observed terms
    excluded: Counter[str] = field(default_factory=Counter)
    labs_present: Counter[str] = field(default_factory=Counter)
    vitals_present: Counter[str] = field(default_factory=Counter)
    sexes: Counter[str] = field(default_factory=Counter)
    devices: int = 0

    def add(self, patient: Patient) -> None:
        record = patient.record
        self.records += 1
        self.labels[patient.label] += 1
        self.kinds[patient.kind] += 1
        self.sexes[record["sex"]] += 1
        for phenotype in record["phenotypes"]:
            (self.observed if phenotype["status"] == "observed" else self.excluded)[patient.kind] += 1
        self.labs_present.update(lab["loinc"] for lab in record["labs"])
        self.vitals_present.update(vital["name"] for vital in record["vitals"])
        self.devices += patient.device is not None


def collect(patients: Iterable[Patient]) -> CohortStats:
    stats = CohortStats()
    for patient in patients:
        stats.add(patient)
    return stats


def render_markdown(stats: CohortStats, generator: CohortGenerator, plot_name: str) -> str:
    catalog = generator.catalog
    names = {d.code: d.name for d in (*catalog.diseases, *catalog.extra.values())}
    kinds = {d.code: d.kind for d in catalog.diseases}
    rare_classes = [d.code for d in catalog.diseases if d.kind == "rare"]
    rare_counts = Counter(min(stats.labels.get(code, 0), 6) for code in rare_classes)
    total = max(stats.records, 1)
    lines = [
        "# Synthetic cohort report",
        "",
        f"Seed {generator.config.seed}, {stats.records} records, scenario `{generator.config.scenario.name}`; "
        f"catalog of {len(catalog.diseases) - len(rare_classes)} common and {len(rare_classes)} rare diseases.",
        "",
        "## Rare vs common",
        "",
        "| kind | records | share | observed terms / case | excluded terms / case |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind in ("common", "rare"):
        n = stats.kinds.get(kind, 0)
        lines.append(
            f"| {kind} | {n} | {n / total:.1%} | {stats.observed[kind] / max(n, 1):.2f} | "
            f"{stats.excluded[kind] / max(n, 1):.2f} |"
        )
    lines += [
        "",
        "Cases per rare disease (how many of the catalog's rare diseases have 0, 1, ... cases):",
        "",
        "| cases | " + " | ".join(["0", "1", "2", "3", "4", "5", "6+"]) + " |",
        "|---|" + "---:|" * 7,
        "| rare diseases | " + " | ".join(str(rare_counts.get(k, 0)) for k in range(7)) + " |",
        "",
        f"![cases per disease]({plot_name})",
        "",
        f"*{plot_name}: left, cases per disease (log scale), diseases ranked by count, blue common and red "
        "rare; right, the share of records missing each lab and vital sign.*",
        "",
        "## Missingness",
        "",
        "| measurement | present | missing |",
        "|---|---:|---:|",
    ]
    for loinc in sorted(stats.labs_present):
        present = stats.labs_present[loinc] / total
        lines.append(f"| lab {loinc} ({catalog.labs[loinc].name}) | {present:.1%} | {1 - present:.1%} |")
    for name in VITAL_ORDER:
        present = stats.vitals_present[name] / total
        lines.append(f"| vital {name} | {present:.1%} | {1 - present:.1%} |")
    lines += [
        "",
        "Labs are reported over all records: tests outside the routine panel are only ordered for the "
        "diseases whose signature includes them.",
        "",
        f"Monitored patients with a device: {stats.devices}. Sex: "
        + ", ".join(f"{k} {v}" for k, v in sorted(stats.sexes.items()))
        + ".",
        "",
        "## Counts per disease",
        "",
        "| code | disease | kind | records |",
        "|---|---|---|---:|",
    ]
    for code, count in stats.labels.most_common():
        lines.append(f"| {code} | {names.get(code, '?')} | {kinds.get(code, 'injected')} | {count} |")
    return "\n".join(lines) + "\n"


def plot_cohort(stats: CohortStats, generator: CohortGenerator, path: Path) -> None:
    """Two panels: cases per disease (ranked, log scale, common vs rare) and missingness of
    labs and vitals. matplotlib is a tooling dependency: the report is made offline, never in a Lambda."""
    import matplotlib  # noqa: PLC0415 - heavy, and only the report needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.patches import Patch  # noqa: PLC0415

    kinds = {d.code: d.kind for d in generator.catalog.diseases}
    ranked = stats.labels.most_common()
    total = max(stats.records, 1)
    figure, (cases, missing) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    colours = ["#d62728" if kinds.get(code) == "rare" else "#1f77b4" for code, _ in ranked]
    cases.bar(range(len(ranked)), [count for _, count in ranked], color=colours, width=1.0)
    cases.set_yscale("log")
    cases.set_xlabel("diseases, ranked by number of cases (diseases with no case not shown)")
    cases.set_ylabel("cases (log scale)")
    cases.set_title(f"Cases per disease ({stats.records} records)")
    handles = [Patch(color=c) for c in ("#1f77b4", "#d62728")]
    cases.legend(handles, ["common", "rare"], loc="upper right")
    measured = [(f"lab {loinc}", stats.labs_present[loinc]) for loinc in sorted(stats.labs_present)]
    measured += [(f"vital {name}", stats.vitals_present[name]) for name in VITAL_ORDER]
    missing.barh(
        [name for name, _ in measured], [100 * (1 - present / total) for _, present in measured], color="#7f7f7f"
    )
    missing.set_xlabel("records without the measurement (%)")
    missing.set_title("Missingness")
    missing.invert_yaxis()
    missing.tick_params(axis="y", labelsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_report(out: Path, generator: CohortGenerator, stats: CohortStats) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    plot_cohort(stats, generator, out / "cases_per_disease.png")
    path = out / "report.md"
    path.write_text(render_markdown(stats, generator, "cases_per_disease.png"), encoding="utf-8")
    return path
