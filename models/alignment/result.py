"""What one unit's fit produces, typed and frozen: everything the across-unit summary needs,
and nothing it must guess with a default."""

from __future__ import annotations

from dataclasses import dataclass

from models.alignment.config import Outcome
from models.alignment.execution import ExecutionSums
from models.alignment.falsification import NegativeControl
from models.alignment.link import LinkFit, NoFit


@dataclass(frozen=True)
class MetricLink:
    """One CX metric's own link to voluntary churn in the unit (exploratory, uncorrected)."""

    business_unit: str
    metric: str
    description: str
    fit: LinkFit | NoFit
    n_rows: int
    accounts_measured: int


@dataclass(frozen=True)
class UnitFit:
    business_unit: str
    outcome: Outcome
    link: LinkFit | NoFit
    permutation_p: float | None  # None: not computed (too few events)
    negative_control: NegativeControl
    revenue: LinkFit | NoFit | None  # None: not run
    execution: ExecutionSums
    uses_targets: bool  # execution against targets (the unit's or the config's)
    n_accounts: int
    n_rows: int
    n_events: int
    controls: str  # which optional controls were used or dropped, in words
    metrics: tuple[MetricLink, ...] = ()

    def falsification_failed(self, alpha: float) -> list[str]:
        """The names of the falsification checks that failed."""
        failed = []
        if self.permutation_p is not None and self.permutation_p > alpha:
            failed.append(f"block permutation (p = {self.permutation_p:.3f})")
        if self.negative_control.failed:
            failed.append("negative control (CX also predicts involuntary churn)")
        return failed
