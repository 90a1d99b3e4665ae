"""The `readiness:` section of the policy file: control windows, storage tiers, prices, contacts.

Every field has a default, so a policy without the section still gets a report. The default price
table is AWS's public S3 list price for us-east-1 (`PRICES_AS_OF`); prices change and differ per
region and provider: put yours in the policy (`readiness.prices`, or per vault in `vault_prices`).

Example (seawall.yaml):
    ```yaml
    readiness:
      restore_tested_within: 7d
      drill_within: 35d
      prices: {currency: EUR, as_of: "2026-11-01", storage_gb_month: {hot: 0.02, cool: 0.01, archive: 0.002}}
      contacts: [{name: Ops on call, role: incident commander, reach: "+49 30 1234567"}]
      escalation: ["page the on-call DBA after 15 minutes", "CTO after 1 hour"]
    ```
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from seawall.policy import Schedule

#: When the default prices below were read from https://aws.amazon.com/s3/pricing/ (us-east-1,
#: first 50 TB/month of S3 Standard). Not re-checked on this machine (no internet): override them.
PRICES_AS_OF = "2024-11-01"
TIERS = ("hot", "cool", "archive")


def _duration(value: Any) -> timedelta:
    from seawall.policy import parse_duration  # the policy's own duration syntax (26h, 7d, 2w)

    return parse_duration(value)


Duration = Annotated[timedelta, BeforeValidator(_duration)]
Price = Annotated[float, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierPrices(_Strict):
    """One price per storage tier: hot (S3 Standard), cool (Standard-IA), archive (Glacier Deep Archive)."""

    hot: Price
    cool: Price
    archive: Price

    def of(self, tier: str) -> float:
        return float(getattr(self, tier))


class PriceTable(_Strict):
    """List prices the cost estimate uses (per GiB and per 1,000 requests)."""

    currency: str = "USD"
    as_of: str = Field(PRICES_AS_OF, description="Date the prices were read.")
    source: str = "AWS S3 list prices, us-east-1 (https://aws.amazon.com/s3/pricing/)"
    storage_gb_month: TierPrices = TierPrices(hot=0.023, cool=0.0125, archive=0.00099)
    put_per_1000: Price = Field(0.005, description="PUT/COPY/POST/LIST requests (S3 Standard).")
    get_per_1000: Price = Field(0.0004, description="GET and other requests (S3 Standard).")
    retrieval_gb: TierPrices = TierPrices(hot=0.0, cool=0.01, archive=0.02)
    egress_gb: Price = Field(0.09, description="Data transfer out to the internet (first 10 TB/month).")


class StorageTiers(_Strict):
    """Age thresholds for objects whose store reports no storage class (hot, then cool, then archive)."""

    cool_after: Duration = timedelta(days=30)
    archive_after: Duration = timedelta(days=365)

    def tier_for_age(self, age: timedelta) -> str:
        if age >= self.archive_after:
            return "archive"
        return "cool" if age >= self.cool_after else "hot"


class Contact(_Strict):
    """Someone the runbook tells the reader to call."""

    name: str
    role: str = ""
    reach: str = Field("", description="Phone, e-mail or pager handle.")


class ReportSchedule(_Strict):
    """When the `readiness-report` deployment publishes its artifact."""

    schedule: Schedule
    strict: bool = Field(False, description="Fail the run on UNKNOWN controls too.")


class ReadinessSpec(_Strict):
    """Windows of the time-based controls, the cost model, and who to call."""

    restore_tested_within: Duration = Field(timedelta(days=7), description="restore-tested-within-days window.")
    drill_within: Duration = Field(timedelta(days=35), description="drill-within-days window.")
    success_window: Duration = Field(timedelta(days=30), description="Window of the success rate.")
    storage_tiers: StorageTiers = StorageTiers()
    prices: PriceTable = PriceTable()
    vault_prices: dict[str, PriceTable] = Field(default_factory=dict, description="Per vault name, overrides.")
    restores_per_month: float | None = Field(None, ge=0, description="Full restores a month for the egress "
                                             "estimate (default: restore verifications of the last 30 days).")
    contacts: list[Contact] = Field(default_factory=list)
    escalation: list[str] = Field(default_factory=list)
    report: ReportSchedule | None = None

    @model_validator(mode="after")
    def _tiers_ordered(self) -> ReadinessSpec:
        if self.storage_tiers.archive_after <= self.storage_tiers.cool_after:
            raise ValueError("storage_tiers.archive_after must be longer than cool_after")
        return self

    def prices_for(self, vault: str) -> PriceTable:
        return self.vault_prices.get(vault, self.prices)


def rebuild(schedule_type: type) -> None:
    """Resolve the `Schedule` forward reference (defined in seawall.policy, which imports this module)."""
    ReportSchedule.model_rebuild(_types_namespace={"Schedule": schedule_type})
    ReadinessSpec.model_rebuild(_types_namespace={"Schedule": schedule_type})
