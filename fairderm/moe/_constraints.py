"""Group constraints: their differentiable surrogates and their exact values.

Two families, each one constraint per group ``k`` relative to the overall value
(Cotter et al. 2019 write fairness goals this way):

``loss``
    ``g_k = L_k - L <= epsilon``. The learner (theta) sees the mean
    cross-entropy of the group and of everyone; the multipliers see the 0-1
    error rate, so that ``epsilon`` is in accuracy points (the proxy-Lagrangian
    of Cotter et al. 2019: the surrogate only where a gradient is needed).
``eo``
    equalized odds (Hardt et al. 2016) per class ``c`` (only the positive class
    for a binary task), two-sided for the true and the false positive rate:
    ``|TPR_ck - TPR_c| <= epsilon`` and ``|FPR_ck - FPR_c| <= epsilon``, written
    as four one-sided constraints. The learner sees soft rates (mean predicted
    probability of ``c`` over the group's cases of class ``c``, resp. of other
    classes); the multipliers see the rates of the hard predictions.

A constraint whose group (or group-and-class cell) has no case in the data at
hand is undefined there: its value is reported as ``NaN`` and contributes
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

EO_SIDES: tuple[str, ...] = ("tpr_low", "tpr_high", "fpr_high", "fpr_low")


@dataclass(frozen=True)
class ConstraintSet:
    """The constraints of one training run.

    Attributes
    ----------
    kind
        ``loss`` or ``eo``.
    group_names
        Constraint groups, in index order.
    class_index
        Classes with equalized-odds constraints (``eo`` only).
    class_names
        Names of those classes.
    """

    kind: str
    group_names: tuple[str, ...]
    class_index: tuple[int, ...] = ()
    class_names: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        """One name per constraint, e.g. ``V-VI`` or ``V-VI:melanoma:tpr_low``."""
        if self.kind == "loss":
            return list(self.group_names)
        return [
            f"{group}:{cls}:{side}"
            for group in self.group_names
            for cls in self.class_names
            for side in EO_SIDES
        ]

    @property
    def groups_of(self) -> list[str]:
        """The group each constraint belongs to, aligned with :attr:`names`."""
        per_group = 1 if self.kind == "loss" else len(self.class_names) * len(EO_SIDES)
        return [g for g in self.group_names for _ in range(per_group)]

    def __len__(self) -> int:
        return len(self.names)

    def surrogate(
        self, logits: torch.Tensor, y: torch.Tensor, groups: torch.Tensor
    ) -> torch.Tensor:
        """Differentiable ``g`` on a batch; undefined entries are 0.

        The overall term is detached: the learner raises lagging groups toward
        the overall value instead of also pulling the others down
        ("levelling down"), which the plain Lagrangian would reward once the
        multipliers sum to more than 1.
        """
        if self.kind == "loss":
            per_case = F.cross_entropy(logits, y, reduction="none")
            values, overall, defined = _group_means(per_case, groups, len(self.group_names))
            return torch.where(defined, values - overall.detach(), torch.zeros_like(values))
        probs = torch.softmax(logits, dim=-1)
        return self._eo(probs, y, groups, detach_overall=True)

    def exact(self, logits: torch.Tensor, y: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """``g`` from hard predictions (0-1 error or hard TPR/FPR); NaN where undefined."""
        pred = logits.argmax(dim=-1)
        if self.kind == "loss":
            error = (pred != y).float()
            values, overall, defined = _group_means(error, groups, len(self.group_names))
            return torch.where(defined, values - overall, torch.full_like(values, float("nan")))
        hard = F.one_hot(pred, logits.shape[-1]).float()
        return self._eo(hard, y, groups, detach_overall=False, undefined=float("nan"))

    def _eo(
        self,
        scores: torch.Tensor,
        y: torch.Tensor,
        groups: torch.Tensor,
        *,
        detach_overall: bool,
        undefined: float = 0.0,
    ) -> torch.Tensor:
        n_groups = len(self.group_names)
        classes = list(self.class_index)
        is_class = F.one_hot(y, scores.shape[-1]).float()[:, classes]
        score = scores[:, classes]
        member = _membership(groups, n_groups)
        tp_num, tp_den = member.T @ (is_class * score), member.T @ is_class
        fp_num, fp_den = member.T @ ((1 - is_class) * score), member.T @ (1 - is_class)
        tpr_all = (is_class * score).sum(0) / is_class.sum(0).clamp(min=1.0)
        fpr_all = ((1 - is_class) * score).sum(0) / (1 - is_class).sum(0).clamp(min=1.0)
        if detach_overall:
            tpr_all, fpr_all = tpr_all.detach(), fpr_all.detach()
        tpr = tp_num / tp_den.clamp(min=1.0)
        fpr = fp_num / fp_den.clamp(min=1.0)
        stacked = torch.stack(
            [tpr_all - tpr, tpr - tpr_all, fpr - fpr_all, fpr_all - fpr], dim=-1
        )  # (groups, classes, sides), in EO_SIDES order
        defined = torch.stack([tp_den > 0, tp_den > 0, fp_den > 0, fp_den > 0], dim=-1)
        return torch.where(defined, stacked, torch.full_like(stacked, undefined)).reshape(-1)


def _membership(groups: torch.Tensor, n_groups: int) -> torch.Tensor:
    """One-hot group membership; cases outside every group (-1) get a zero row."""
    inside = groups >= 0
    member = F.one_hot(groups.clamp(min=0), n_groups).float()
    return member * inside.unsqueeze(-1).float()


def _group_means(
    values: torch.Tensor, groups: torch.Tensor, n_groups: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-group means, the overall mean, and which groups have cases."""
    member = _membership(groups, n_groups)
    counts = member.sum(0)
    means = (member.T @ values) / counts.clamp(min=1.0)
    return means, values.mean(), counts > 0


def group_losses(logits: torch.Tensor, y: torch.Tensor, groups: torch.Tensor, n_groups: int):
    """Mean cross-entropy per group and which groups are present (for group DRO)."""
    per_case = F.cross_entropy(logits, y, reduction="none")
    means, _, present = _group_means(per_case, groups, n_groups)
    return means, present
