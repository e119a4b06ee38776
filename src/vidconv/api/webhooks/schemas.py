"""The webhook routes' request and response models (``vidconv.api.routes.webhooks``)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, TypeAdapter

from vidconv.api.schemas import CALLBACK_URL_MESSAGE, Model, Out, State, callback_url_field
from vidconv.db.outbox import TaskEvent

DATE_TIME: dict[str, Any] = {"format": "date-time"}


class AccountWebhook(Out):
    """Your webhook settings: the default callback of new tasks, and when the secret was made."""

    callback_url: str | None = Field(description="used by new tasks that give none")
    secret_created_at: str | None = Field(json_schema_extra=DATE_TIME, description=(
        "when the current signing secret was made (null: none yet)"))
    previous_secret_valid_until: str | None = Field(json_schema_extra=DATE_TIME, description=(
        "until when the secret before it still signs beside it"))


class AccountWebhookUpdate(Model):
    """PUT /api/account/webhook: the default callback of new tasks (null: none)."""

    callback_url: str | None = callback_url_field(...)

    MESSAGES: ClassVar[dict[str, str]] = {
        "callback_url": CALLBACK_URL_MESSAGE,
        "callback_url.required": "callback_url is required (null for none)",
    }


class WebhookSecret(Out):
    """A new signing secret, shown this once: the server keeps it encrypted and never shows it
    again."""

    secret: str = Field(description="the HMAC-SHA256 key of vidconv-signature, whsec_ included")
    created_at: str = Field(json_schema_extra=DATE_TIME)
    previous_secret_valid_until: str | None = Field(json_schema_extra=DATE_TIME, description=(
        "the secret it replaces signs beside it until then (null: there was none)"))


class DeliveryAttempt(Out):
    attempted_at: str = Field(json_schema_extra=DATE_TIME)
    status_code: int | None = Field(description="the receiver's answer; null: none came")
    latency_ms: float | None
    error: str | None = Field(description="why it did not count as delivered")


class WebhookDelivery(Out):
    """One event of the task and every attempt at sending it."""

    event_id: str
    type: Literal["task.succeeded", "task.failed", "task.revoked"]
    state: State
    url: str
    status: Literal["pending", "delivered", "failed"]
    created_at: str = Field(json_schema_extra=DATE_TIME)
    next_attempt_at: str | None = Field(json_schema_extra=DATE_TIME, description=(
        "pending: when it is tried next"))
    delivered_at: str | None = Field(json_schema_extra=DATE_TIME)
    attempts: list[DeliveryAttempt]


class TaskWebhook(Out):
    """GET /api/tasks/{id}/webhook: where the task's end goes, and the delivery log."""

    task_id: str
    callback_url: str | None
    deliveries: list[WebhookDelivery]


EVENT = TypeAdapter(TaskEvent)
