"""Webhook routes: your account's default callback and signing secret, a task's delivery log
and redelivery. Thin handlers over ``services.webhooks``."""

from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vidconv.api.deps import get_ctx, read_json_object, render, require_user
from vidconv.api.openapi import ERROR, UNAVAILABLE, Operation
from vidconv.api.schemas import decode
from vidconv.api.services import webhooks
from vidconv.api.webhooks.schemas import (
    AccountWebhook,
    AccountWebhookUpdate,
    TaskWebhook,
    WebhookDelivery,
    WebhookSecret,
)


async def account_webhook(request: Request) -> Response:
    owner = require_user(request)
    ctx = get_ctx(request)
    if request.method == "PUT":
        update = decode(AccountWebhookUpdate, await read_json_object(request))
        data = await anyio.to_thread.run_sync(
            webhooks.set_default, ctx.sessions, owner, update.callback_url)
    else:
        data = await anyio.to_thread.run_sync(webhooks.account, ctx.sessions, owner)
    return render(AccountWebhook(**data))


async def rotate_secret(request: Request) -> Response:
    owner = require_user(request)
    ctx = get_ctx(request)
    data = await anyio.to_thread.run_sync(webhooks.rotate_secret, ctx.sessions, ctx.box, owner)
    # Never cached anywhere on the way: it is shown this once.
    response = render(WebhookSecret(**data), 201)
    response.headers["Cache-Control"] = "no-store"
    return response


async def task_webhook(request: Request) -> Response:
    owner = require_user(request)
    ctx = get_ctx(request)
    data = await anyio.to_thread.run_sync(
        webhooks.task_webhook, ctx.sessions, owner, request.path_params["task_id"])
    return render(TaskWebhook(**data))


async def redeliver(request: Request) -> Response:
    owner = require_user(request)
    ctx = get_ctx(request)
    data = await anyio.to_thread.run_sync(
        webhooks.redeliver, ctx.sessions, owner, request.path_params["task_id"])
    return render(WebhookDelivery(**data), 202)


routes = [
    Route("/api/account/webhook", account_webhook, methods=["GET", "PUT"]),
    Route("/api/account/webhook/secret", rotate_secret, methods=["POST"]),
    Route("/api/tasks/{task_id}/webhook", task_webhook, methods=["GET"]),
    Route("/api/tasks/{task_id}/webhook/redeliver", redeliver, methods=["POST"]),
]

OPERATIONS = [
    Operation("GET", "/api/account/webhook", "Your webhook settings", "getAccountWebhook",
              {200: AccountWebhook, 401: ERROR, 503: UNAVAILABLE}, auth=True),
    Operation("PUT", "/api/account/webhook", "Set the default callback of your new tasks",
              "setAccountWebhook",
              {200: AccountWebhook, 400: ERROR, 401: ERROR, 409: ERROR, 422: ERROR,
               503: UNAVAILABLE},
              body={"application/json": AccountWebhookUpdate}, auth=True),
    Operation("POST", "/api/account/webhook/secret",
              "Create or rotate your signing secret (shown once)", "rotateWebhookSecret",
              {201: WebhookSecret, 401: ERROR, 503: UNAVAILABLE}, auth=True),
    Operation("GET", "/api/tasks/{task_id}/webhook", "A task's webhook deliveries",
              "getTaskWebhook", {200: TaskWebhook, 401: ERROR, 404: ERROR, 503: UNAVAILABLE},
              auth=True),
    Operation("POST", "/api/tasks/{task_id}/webhook/redeliver", "Send a task's event again",
              "redeliverTaskWebhook",
              {202: WebhookDelivery, 401: ERROR, 404: ERROR, 409: ERROR, 503: UNAVAILABLE},
              auth=True),
]
