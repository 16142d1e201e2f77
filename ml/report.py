"""The evaluation report of a model: report.md plus four PNG plots, in one directory.

`write_report` renders what `ml.metrics.classification_metrics` (and optionally `bootstrap_intervals`)
computed, and draws the plots from the labels and probabilities. Only labels and aggregate numbers reach
the report: it takes no row identifiers, so it cannot leak a patient's.

Plots are drawn on matplotlib Figure objects with the Agg canvas (no pyplot state, no display), and
matplotlib is imported when a report is written, so importing this module does not need it (matplotlib
is a dev dependency, not one of the training image's).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import ConfusionMatrixDisplay, auc, confusion_matrix, roc_curve

from ml.metrics import Predictions, align, is_rare_code

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CONFUSION_CLASSES = 20
"""The confusion matrix shows this many most frequent true labels; the rest share one row and column."""
OTHER = "(rest)"
"""The confusion matrix's bucket (not "(other)": dxops-evaluate has a model class of that name)."""
WORST, BEST = 20, 10
"""Rows of the per-class tables: the worst recalls (support > 0) and the best ones."""
ROC_MAX_CELLS = 20_000_000
"""Micro-averaged ROC curves rank every (row, class) cell; above this many, a fixed random subset of rows."""

PLOTS = {
    "confusion": "confusion_matrix.png",
    "recall": "recall_vs_support.png",
    "roc": "roc_curves.png",
    "calibration": "reliability.png",
}
HEADLINE = (
    ("accuracy", "Accuracy"),
    ("balanced_accuracy", "Balanced accuracy"),
    ("macro_f1", "Macro F1"),
    ("weighted_f1", "Weighted F1"),
    ("top1_accuracy", "Top-1 accuracy"),
    ("top3_accuracy", "Top-3 accuracy"),
    ("top5_accuracy", "Top-5 accuracy"),
    ("top10_accuracy", "Top-10 accuracy"),
    ("auc_macro_ovr", "ROC AUC (macro, one-vs-rest)"),
    ("ece", "Expected calibration error"),
    ("brier", "Brier score"),
    ("log_loss", "Log loss"),
)
RARE_COLOUR, COMMON_COLOUR = "tab:red", "tab:blue"


def _figure(width: float, height: float) -> Figure:
    """A figure on an Agg canvas, independent of pyplot's global state and of any display."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 (optional dependency)
    from matplotlib.figure import Figure  # noqa: PLC0415

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _format(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{float(value):.4f}"


def _cell(label: str) -> str:
    """A label safe inside a markdown table cell."""
    return label.replace("|", "\\|")


def _plot_confusion(data: Predictions, path: Path) -> None:
    """Row-normalised confusion matrix of the most frequent true labels, everything else as OTHER."""
    frequent = [label for label, _ in sorted(Counter(data.y_true.tolist()).items(), key=lambda kv: (-kv[1], kv[0]))]
    shown = set(frequent[:CONFUSION_CLASSES])

    def bucket(labels: npt.NDArray[np.object_]) -> list[str]:
        return [label if label in shown else OTHER for label in labels.tolist()]

    true, pred = bucket(data.y_true), bucket(data.y_pred)
    labels = frequent[:CONFUSION_CLASSES] + ([OTHER] if OTHER in true or OTHER in pred else [])
    matrix = confusion_matrix(true, pred, labels=labels, normalize="true")
    figure = _figure(11, 9.5)
    axes = figure.subplots()
    display = ConfusionMatrixDisplay(matrix, display_labels=labels)
    display.plot(ax=axes, cmap="Blues", values_format=".2f", xticks_rotation="vertical", text_kw={"fontsize": 6})
    axes.set_title(f"Confusion matrix, row-normalised ({len(shown)} most frequent true labels, others as {OTHER})")
    figure.savefig(path)


def _plot_recall(metrics: Mapping[str, Any], is_rare: Callable[[str], bool], classes: set[str], path: Path) -> None:
    """Recall against support per true label: rare diseases at low support are where models fail."""
    figure = _figure(8, 5.5)
    axes = figure.subplots()
    rows = [(label, m) for label, m in metrics["per_class"].items() if m["support"] > 0]
    for rare, colour, name in ((False, COMMON_COLOUR, "common"), (True, RARE_COLOUR, "rare")):
        for known, marker in ((True, "o"), (False, "x")):
            points = [m for label, m in rows if is_rare(label) == rare and (label in classes) == known]
            if points:
                suffix = "" if known else ", not a model class"
                axes.scatter(
                    [m["support"] for m in points],
                    [m["recall"] or 0.0 for m in points],
                    c=colour,
                    marker=marker,
                    s=18,
                    alpha=0.7,
                    label=f"{name}{suffix} ({len(points)})",
                )
    axes.set_xscale("log")
    axes.set_ylim(-0.03, 1.03)
    axes.set_xlabel("support (true rows, log scale)")
    axes.set_ylabel("recall")
    axes.set_title("Recall against support per class")
    axes.legend(loc="lower right")
    figure.savefig(path)


def _roc_rows(data: Predictions) -> npt.NDArray[np.int64]:
    """All rows, or a fixed random subset when the (row, class) cells exceed ROC_MAX_CELLS."""
    limit = max(1, ROC_MAX_CELLS // len(data.classes))
    if data.n <= limit:
        return np.arange(data.n)
    return np.sort(np.random.default_rng(0).choice(data.n, size=limit, replace=False))


def _plot_roc(data: Predictions, metrics: Mapping[str, Any], rare_rows: npt.NDArray[np.bool_], path: Path) -> None:
    """Micro-averaged one-vs-rest ROC over all rows and within the rare and common rows.

    A row whose label the model does not know has no positive cell: it only adds negatives.
    """
    figure = _figure(7, 6.5)
    axes = figure.subplots()
    rows = _roc_rows(data)
    onehot = np.zeros((rows.size, len(data.classes)), dtype=np.bool_)
    known = data.y_index[rows] >= 0
    onehot[np.flatnonzero(known), data.y_index[rows][known]] = True
    scores = data.proba[rows]
    groups = (
        ("all rows, micro-average", np.ones(rows.size, dtype=np.bool_), "grey"),
        ("rare rows, micro-average", rare_rows[rows], RARE_COLOUR),
        ("common rows, micro-average", ~rare_rows[rows], COMMON_COLOUR),
    )
    for name, members, colour in groups:
        truth = onehot[members].ravel()
        if truth.any() and not truth.all():
            fpr, tpr, _ = roc_curve(truth, scores[members].ravel())
            width = 4.0 if colour == "grey" else 1.5  # the all-rows curve under the others
            axes.plot(fpr, tpr, color=colour, linewidth=width, label=f"{name} (AUC {auc(fpr, tpr):.3f})")
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    axes.plot([], [], " ", label=f"macro AUC (one-vs-rest): {_format(metrics.get('auc_macro_ovr'))}")
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_title("ROC curves, one-vs-rest")
    axes.legend(loc="lower right")
    figure.savefig(path)


def _plot_calibration(points: list[dict[str, float | int]], ece: Any, bins: int, path: Path) -> None:
    """Reliability diagram of the top-1 confidence, with how many rows fall in each confidence bin."""
    figure = _figure(7, 7.5)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    width = 1.0 / bins
    lows = [float(p["low"]) for p in points]
    top.bar(lows, [p["accuracy"] for p in points], width=width, align="edge", edgecolor="black", label="accuracy")
    top.plot(
        [p["confidence"] for p in points],
        [p["accuracy"] for p in points],
        "o",
        color="tab:orange",
        label="mean confidence",
    )
    top.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    top.set_ylabel("accuracy of top-1 prediction")
    top.set_ylim(0, 1)
    top.set_title(f"Reliability (top-1 confidence, {bins} bins), ECE = {_format(ece)}")
    top.legend(loc="lower right")
    bottom.bar(lows, [p["count"] for p in points], width=width, align="edge", color="grey", edgecolor="black")
    bottom.set_xlim(0, 1)
    bottom.set_xlabel("top-1 confidence")
    bottom.set_ylabel("rows")
    figure.savefig(path)


def _headline(metrics: Mapping[str, Any], intervals: Mapping[str, Mapping[str, Any]] | None) -> list[str]:
    keys = [(key, name) for key, name in HEADLINE if key in metrics]
    if intervals:
        lines = ["| Metric | Value | Bootstrap interval |", "|---|---:|---:|"]
        for key, name in keys:
            bounds = intervals.get(key)
            span = f"[{_format(bounds.get('low'))}, {_format(bounds.get('high'))}]" if bounds else ""
            lines.append(f"| {name} | {_format(metrics[key])} | {span} |")
    else:
        lines = ["| Metric | Value |", "|---|---:|"]
        lines += [f"| {name} | {_format(metrics[key])} |" for key, name in keys]
    return lines


def _groups(metrics: Mapping[str, Any]) -> list[str]:
    lines = ["| Group | Rows | Accuracy | Top-3 accuracy | Macro recall | Macro F1 |", "|---|---:|---:|---:|---:|---:|"]
    for name, group in metrics["groups"].items():
        values = [group.get(key) for key in ("n", "accuracy", "top3_accuracy", "macro_recall", "macro_f1")]
        lines.append(f"| {name} | " + " | ".join(_format(v) for v in values) + " |")
    return lines


def _class_table(
    rows: Sequence[tuple[str, Mapping[str, Any]]], is_rare: Callable[[str], bool], classes: set[str]
) -> list[str]:
    lines = ["| Label | Group | Support | Recall | Precision | F1 |", "|---|---|---:|---:|---:|---:|"]
    for label, m in rows:
        group = ("rare" if is_rare(label) else "common") + ("" if label in classes else ", not a model class")
        values = " | ".join(_format(m[key]) for key in ("support", "recall", "precision", "f1"))
        lines.append(f"| {_cell(label)} | {group} | {values} |")
    return lines


def _per_class(metrics: Mapping[str, Any], is_rare: Callable[[str], bool], classes: set[str]) -> list[str]:
    """The worst recalls (biggest classes first among equals) and the best of the remaining classes."""
    supported = [(label, m) for label, m in metrics["per_class"].items() if m["support"] > 0]
    worst = sorted(supported, key=lambda lm: (lm[1]["recall"] or 0.0, -lm[1]["support"], lm[0]))[:WORST]
    listed = {label for label, _ in worst}
    rest = [(label, m) for label, m in supported if label not in listed]
    best = sorted(rest, key=lambda lm: (-(lm[1]["recall"] or 0.0), -lm[1]["support"], lm[0]))[:BEST]
    lines = [
        f"### Worst {len(worst)} recalls (classes with support > 0)",
        "",
        *_class_table(worst, is_rare, classes),
        "",
    ]
    lines += [f"### Best {len(best)} recalls of the other classes", ""]
    lines += _class_table(best, is_rare, classes) if best else ["(every class is listed above)"]
    return lines


def write_report(
    out_dir: Path,
    *,
    title: str,
    y_true: Sequence[str],
    proba: npt.ArrayLike,
    classes: Sequence[str],
    metrics: Mapping[str, Any],
    intervals: Mapping[str, Mapping[str, Any]] | None = None,
    extra_sections: Mapping[str, str] | None = None,
    rare: Collection[str] | None = None,
    ece_bins: int = 15,
    decisions: npt.ArrayLike | None = None,
) -> Path:
    """Write out_dir/report.md and its four PNG plots; return the path of report.md.

    `decisions`: when the model ranks by other scores than its calibrated probabilities (threshold
    correction), their matrix; the confusion matrix shows those decisions, ROC and calibration
    `proba`.

    `metrics` and `intervals` are the outputs of classification_metrics and bootstrap_intervals on the same
    y_true/proba/classes. `rare` is the rare-label set given to classification_metrics (default: the
    `is_rare_code` rule); it colours the plots and splits the ROC curves. `extra_sections` are appended in
    order, each as a "## heading" followed by its markdown body verbatim.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    data = align(y_true, proba, classes)
    rare_set = None if rare is None else frozenset(rare)

    def is_rare(label: str) -> bool:
        return is_rare_code(label) if rare_set is None else label in rare_set

    rare_rows = np.fromiter((is_rare(label) for label in data.y_true.tolist()), dtype=np.bool_, count=data.n)
    points = data.calibration_points(ece_bins)
    _plot_confusion(data if decisions is None else align(y_true, decisions, classes), out_dir / PLOTS["confusion"])
    _plot_recall(metrics, is_rare, set(data.classes.tolist()), out_dir / PLOTS["recall"])
    _plot_roc(data, metrics, rare_rows, out_dir / PLOTS["roc"])
    _plot_calibration(points, metrics.get("ece"), ece_bins, out_dir / PLOTS["calibration"])

    unknown = data.unknown_labels()
    lines = [
        f"# {title}",
        "",
        f"{data.n} evaluation rows, {len(data.classes)} model classes, {len(set(data.y_true.tolist()))} distinct "
        f"true labels ({len(unknown)} of them not model classes: their rows count as errors).",
        "",
        "## Headline metrics",
        "",
        *_headline(metrics, intervals),
        "",
    ]
    if intervals:
        lines += ["Intervals: percentile bootstrap over rows.", ""]
    lines += [
        "## Rare and common diseases",
        "",
        "Rows grouped by their true label. Macro recall averages over the group's true labels; macro F1 over "
        "the group's labels among the true and predicted ones.",
        "",
        *_groups(metrics),
        "",
        "## Plots",
        "",
        f"![Confusion matrix]({PLOTS['confusion']})",
        "",
        f"![Recall against support]({PLOTS['recall']})",
        "",
        f"![ROC curves]({PLOTS['roc']})",
        "",
        f"![Reliability diagram]({PLOTS['calibration']})",
        "",
        "## Per-class results",
        "",
        *_per_class(metrics, is_rare, set(data.classes.tolist())),
        "",
    ]
    for heading, body in (extra_sections or {}).items():
        lines += [f"## {heading}", "", body, ""]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return report
