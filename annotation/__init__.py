"""Hand labels of (sentence, photo) pairs: a local labelling page, the label files, inter-annotator agreement.

`showcase annotate --pairs P --labels L --annotator NAME` serves the page (`annotation.cli`); label files are
append-only JSONL event logs (`annotation.labels`); `showcase annotate --agreement L1 L2 ...` reports Cohen's or
Fleiss' κ (`annotation.agreement`).
"""
from annotation.agreement import AgreementReport, agreement, agreement_from_files, cohen_kappa, fleiss_kappa
from annotation.labels import LabelFileLocked, LabelLog, PairKey, labeled_pairs, read_events, read_labels, read_pairs

__all__ = ["AgreementReport", "LabelFileLocked", "LabelLog", "PairKey", "agreement", "agreement_from_files",
           "cohen_kappa", "fleiss_kappa", "labeled_pairs", "read_events", "read_labels", "read_pairs"]
