"""The API's typed models: requests are decoded by them, responses encoded from them, and the
OpenAPI document (``vidconv.api.openapi``) is generated from them, so the three cannot drift.

pydantic, not msgspec: its validation errors are structured (field, kind of failure, limits),
which is what keeps the seed's one-sentence messages ("username is required", "password must
be at least 8 characters") while the rules themselves live in the models; and it generates
JSON Schema 2020-12, the dialect of OpenAPI 3.1. msgspec is faster, but its errors are one
preformatted string, and speed of decoding a few small JSON bodies is not what limits us.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    model_validator,
)

from vidconv import formats, options
from vidconv.api.errors import ApiError, unprocessable
from vidconv.db.models import TaskState

M = TypeVar("M", bound="Model")

USERNAME_PATTERN = r"^[\w.@+-]{1,150}$"
# Deliberately simple: one @, a dot in the domain, no spaces. Deliverability is not checkable.
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s.]+$"
MIN_PASSWORD, MAX_PASSWORD = 8, 1024  # argon2 takes any length; this bounds the work
# A JSON task's input: one of the caller's uploads by name or task id (never a path), or a URL.
# White space as JSON Schema (ECMA-262) means \s, spelled out: Python's \s also takes \x1c-\x1f
# and \x85 but not \ufeff, so the document and the server's check would disagree on those.
SPACE = r"\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
FILE_NAME_PATTERN = rf"^[^/\\\x00]*[^/\\\x00{SPACE}][^/\\\x00]*$"
URL_PATTERN = rf"^https?://[^{SPACE}/?#]+[^{SPACE}]*$"
MAX_ID = 64
# A webhook's callback: http(s), an ASCII host name or IPv4 address (no user:password@, no
# fragment), a port from 1 to 65535, printable ASCII after it. Addresses are checked when
# delivering (VIDCONV_WEBHOOK_URLS), not here: a DNS answer may change in between.
PORT = r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
CALLBACK_URL_PATTERN = (rf"^https?://[A-Za-z0-9](?:[A-Za-z0-9.-]{{0,251}}[A-Za-z0-9])?"
                        rf'(?::{PORT})?(?:[/?][!-"$-~]*)?$')
MAX_URL = 2048
CALLBACK_URL_MESSAGE = ("callback_url must be an http(s) URL with a host name or IPv4 address, "
                        "an optional port, no credentials and no fragment")


class Model(BaseModel):
    """A request model: unknown fields are ignored (as the seed did), values are not coerced."""

    model_config = ConfigDict(extra="ignore", strict=True)
    # field -> the sentence that tells what is wrong with a value of the right type
    MESSAGES: ClassVar[dict[str, str]] = {}
    # field -> status for a value of the right type that breaks the field's rule (default 422)
    STATUS: ClassVar[dict[str, int]] = {}


class Out(BaseModel):
    """A response model: exactly these fields, nothing else."""

    model_config = ConfigDict(extra="forbid")


def decode(model: type[M], data: Any) -> M:
    """``data`` as ``model``, or the ApiError a client is told (one sentence)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _error(model, exc.errors()[0]) from None


_KIND = {"string_type": "a string", "int_type": "a whole number", "int_parsing": "a whole number",
         "bool_type": "true or false", "dict_type": "an object", "model_type": "an object",
         "float_type": "a number", "float_parsing": "a number"}


def _error(model: type[Model], error: Any) -> ApiError:
    loc = [str(p) for p in error.get("loc", ())]
    name = loc[0] if loc else ""
    kind, value = error.get("type", ""), error.get("input")
    if name in ("options",) and len(loc) > 1:
        return _option_error(loc[1], kind, error)
    if kind == "missing" or value is None or value == "":
        return unprocessable(model.MESSAGES.get(f"{name}.required", f"{name} is required"))
    if name in _FORMAT_MESSAGE and kind != "string_type":
        try:
            formats.get_profile(value)
        except formats.FormatError as exc:
            return unprocessable(str(exc))
    if kind in _KIND:
        return unprocessable(f"{name} must be {_KIND[kind]}")
    if not name:  # a model-level rule
        return unprocessable(str(error.get("ctx", {}).get("error") or error.get("msg")))
    message = model.MESSAGES.get(name) or f"{name}: {error.get('msg')}"
    return ApiError(model.STATUS.get(name, 422), message)


def _option_error(key: str, kind: str, error: Any) -> ApiError:
    if kind == "extra_forbidden":
        return unprocessable(
            f"Unknown option {key!r}; valid options are {', '.join(sorted(options.OPTIONS))}.")
    value = error.get("input")
    try:  # options.py words every range and type error the same way for both executors
        fmt = next((f for f in formats.format_names() if key in options.options_for(f)), "")
        if fmt:
            options.validate_options(fmt, {key: value})
    except formats.FormatError as exc:
        return unprocessable(str(exc))
    return unprocessable(f"Option {key}: {error.get('msg')}")


# -- auth ---------------------------------------------------------------------------------------


class Signup(Model):
    username: str = Field(min_length=1, max_length=150, pattern=USERNAME_PATTERN)
    email: str = Field(min_length=1, max_length=254, pattern=EMAIL_PATTERN)
    password1: str = Field(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)
    password2: str = Field(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)

    MESSAGES: ClassVar[dict[str, str]] = {
        "username": "username may hold up to 150 letters, digits and . @ + - _",
        "email": "email is not a valid address",
        "password1": f"password must be at least {MIN_PASSWORD} characters",
        "password2": f"password must be at least {MIN_PASSWORD} characters",
    }

    @model_validator(mode="after")
    def _passwords_match(self) -> Signup:
        if self.password1 != self.password2:
            raise ValueError("passwords do not match")
        return self


class Login(Model):
    username: str = Field(min_length=1, description="user name or email")
    password: str = Field(min_length=1)


class SignedUp(Out):
    message: Literal["usuario creado exitosamente"] = "usuario creado exitosamente"
    id: str


class LoggedIn(Out):
    message: Literal["Inicio de sesión exitoso"] = "Inicio de sesión exitoso"
    token: str
    id: str


class Message(Out):
    """Every error: one sentence."""

    message: str


# -- tasks ---------------------------------------------------------------------------------------

if TYPE_CHECKING:
    Format = str
    State = str
else:
    Format = Literal[tuple(formats.format_names())]
    State = Literal[tuple(s.value for s in TaskState)]


def _whole(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _option_field(spec: options.OptionSpec) -> tuple[Any, Any]:
    # Typed without None, defaulting to None: an option is given (and then of its type) or
    # left out; an explicit null is refused like any other wrong type.
    if spec.kind == "bool":
        return bool, Field(None, description=spec.description)
    if spec.kind == "choice":
        return Literal[spec.choices], Field(None, description=spec.description)
    bounds: dict[str, Any] = {}
    if spec.minimum is not None:
        bounds["gt" if spec.exclusive_minimum else "ge"] = spec.minimum
    if spec.maximum is not None:
        bounds["le"] = spec.maximum
    if spec.kind == "int":  # JSON Schema's integer: 71.0 is one
        return Annotated[int, BeforeValidator(_whole)], Field(
            None, description=spec.description, **bounds)
    return float, Field(None, description=spec.description, allow_inf_nan=False, **bounds)


def _options_schema(schema: dict[str, Any]) -> None:
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)
    schema["allOf"] = option_rules()


if TYPE_CHECKING:
    Options = BaseModel
else:
    Options = create_model(
        "Options",
        __config__=ConfigDict(extra="forbid", strict=True, json_schema_extra=_options_schema),
        __doc__="Conversion options; give either video_bitrate or quality, not both.",
        **{key: _option_field(spec) for key, spec in options.OPTIONS.items()},
    )


def parse_option_text(key: str, text: str) -> Any:
    """A multipart option field's text as its typed value (strictly: what the schema says)."""
    spec = options.OPTIONS.get(key)
    if spec is None:
        raise unprocessable(
            f"Unknown option {key!r}; valid options are {', '.join(sorted(options.OPTIONS))}.")
    value = text.strip()
    if spec.kind == "bool" and value in ("true", "false"):
        return value == "true"
    if spec.kind == "choice" and value in spec.choices:
        return value
    if spec.kind == "int" and re.fullmatch(r"[+-]?\d+", value):
        return int(value)
    if spec.kind == "number" and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", value):
        return float(value)
    kind = {"bool": "true or false", "int": "a whole number",
            "choice": "one of " + ", ".join(spec.choices)}.get(spec.kind, "a number")
    raise unprocessable(f"Option {key} must be {kind}, not {text!r}.")


def _format_options(fmt: str) -> dict[str, Any]:
    """How format ``fmt`` narrows the Options schema: false for each option it does not take;
    an audio-only format keeps its audio."""
    taken = options.options_for(fmt)
    rules: dict[str, Any] = {key: False for key in options.OPTIONS if key not in taken}
    if formats.FORMATS[fmt].audio_only:
        rules["audio"] = {"const": True}
    return rules


def format_rules(*containers: str) -> dict[str, Any]:
    """What options.validate_options refuses for a format, said in JSON Schema: one branch per
    group of formats that take the same options (an audio-only format takes no video option
    and keeps its audio; a lossless one takes no audio bitrate).
    ``containers`` are where the options may be: ``options`` (JSON) and ``""``, the form itself
    (multipart, which takes both). One anyOf whose branches each name their formats and hold
    every container: no if/then or not, and as few choices as schemathesis can expand."""
    groups: dict[str, list[str]] = {}
    for fmt in formats.format_names():
        groups.setdefault(json.dumps(_format_options(fmt), sort_keys=True), []).append(fmt)
    branches = []
    for rules, names in groups.items():
        narrowed = json.loads(rules)
        props: dict[str, Any] = {"conversion_type": {"enum": names}, "newFormat": {"enum": names}}
        for container in containers:
            if container:
                props[container] = {"properties": narrowed}
            else:
                props.update(narrowed)
        branches.append({"properties": props})
    return {"anyOf": branches}


def option_rules() -> list[dict[str, Any]]:
    """Options that exclude one another: video_bitrate or quality."""
    return [{"dependentSchemas": {"video_bitrate": {"properties": {"quality": False}}}}]


_FORMAT_MESSAGE = {"conversion_type", "newFormat"}


def callback_url_field(default: Any = None) -> Any:
    return Field(default, max_length=MAX_URL, pattern=CALLBACK_URL_PATTERN, description=(
        "where the task's end (SUCCESS, FAILURE, REVOKED) is POSTed as a signed JSON event"))


class TaskForm(Model):
    """What a task asks for, whichever way it comes (multipart fields or JSON)."""

    conversion_type: Format | None = None
    newFormat: Format | None = Field(None, description="alias of conversion_type")
    options: Options = Field(default_factory=Options)
    callback_url: str | None = callback_url_field()

    MESSAGES: ClassVar[dict[str, str]] = {"callback_url": CALLBACK_URL_MESSAGE}

    def format(self) -> str:
        if self.conversion_type and self.newFormat:
            raise unprocessable("give conversion_type or its alias newFormat, not both")
        fmt = self.conversion_type or self.newFormat
        if fmt is None:
            raise unprocessable("conversion_type is required")
        return str(fmt)

    def checked_options(self) -> dict[str, Any]:
        """The options, also held to the rules across fields (options.validate_options)."""
        try:
            return options.validate_options(
                self.format(), self.options.model_dump(exclude_unset=True))
        except formats.FormatError as exc:
            raise unprocessable(str(exc)) from None


class TaskFromReference(TaskForm):
    """POST /api/tasks as JSON: convert one of your earlier uploads, or an http(s) URL, or a
    finished resumable upload (``upload``: the id at the end of its Location)."""

    file: str | None = Field(None, min_length=1, description=(
        "one of your earlier uploads (its file name or task id), or an http(s) URL "
        "(public addresses only unless the server says so)"))
    upload: str | None = Field(None, min_length=1, max_length=MAX_ID, description=(
        "a finished resumable upload of yours: the last segment of its Location "
        "(POST /api/uploads/); it becomes the task's input as it lies, without a copy"))

    MESSAGES: ClassVar[dict[str, str]] = {
        **TaskForm.MESSAGES,
        "file.required": "file is required: the name of an uploaded file or an http(s) URL",
        "file": "file must be the name of one of your uploads or an http(s) URL, not a path",
    }
    STATUS: ClassVar[dict[str, int]] = {"file": 400}

    @model_validator(mode="after")
    def _one_input(self) -> TaskFromReference:
        if self.file is None and self.upload is None:
            raise ValueError("file is required: the name of an uploaded file or an http(s) "
                             "URL (or upload: the id of a finished resumable upload)")
        if self.file is not None and self.upload is not None:
            raise ValueError("give file or upload, not both")
        return self


class TaskSummary(Out):
    task_id: str
    conversion_type: str
    status: State


class TaskList(Out):
    tasks: list[TaskSummary]


class TaskCreated(Out):
    message: Literal["Conversion started"] = "Conversion started"
    task_id: str


class TaskDetail(Out):
    """GET /api/tasks/{id}: the seed's state/result plus what a client needs to follow it."""

    state: State
    result: str | None = Field(description="SUCCESS: the output file name; FAILURE: the error")
    task_id: str
    conversion_type: str
    options: dict[str, Any]
    file_name: str
    progress: float = Field(ge=0, le=100)
    created_at: str | None = Field(json_schema_extra={"format": "date-time"})
    started_at: str | None = Field(json_schema_extra={"format": "date-time"})
    finished_at: str | None = Field(json_schema_extra={"format": "date-time"})
    error: str | None
    error_code: str | None
    error_detail: str | None = Field(
        description="FAILURE: what the tools said (ffmpeg's last lines), for operators")
    attempts: int
    input_size: int | None
    input_duration: float | None
    output_size: int | None
    output_duration: float | None
    callback_url: str | None = Field(description="where its end is POSTed (GET "
                                     "/api/tasks/{id}/webhook lists the deliveries)")
    fps: float | None = Field(description="frames per second, as the transcoder last said")
    speed: float | None = Field(description="times real time, as the transcoder last said")
    eta_seconds: float | None = Field(description="seconds left, from the speed and what is "
                                                  "left of the input; null while unknown")
    files: list[OutputFileOut] | None = Field(None, description=(
        "SUCCESS: every file the task made, the main one first (a picture option or an "
        "adaptive stream makes several)"))
    url: str | None = Field(None, description=(
        "SUCCESS: the signed link of the main file (an adaptive stream's master playlist: "
        "its relative URIs resolve under the same signature)"))
    urls_expire_at: str | None = Field(None, json_schema_extra={"format": "date-time"},
                                       description="when the signed links stop working")


class OutputFileOut(Out):
    """One file of a finished task."""

    name: str = Field(description="relative to the task's outputs: ?file= of /api/download")
    size: int = Field(ge=0)
    role: Literal["main", "thumbnail", "preview", "sprites", "sprites_index", "playlist",
                  "media"]
    type: str = Field(description="its media type")
    url: str = Field(description="a signed link to it for a plain GET (no token; Range, "
                                 "CORS), valid until urls_expire_at: a path on this server")


class ProgressEvent(Out):
    """The data of an ``event: progress`` of GET /api/tasks/{id}/events."""

    task_id: str
    progress: float = Field(ge=0, le=100)
    fps: float | None
    speed: float | None
    eta_seconds: float | None


class StateEvent(Out):
    """The data of an ``event: state``: the task's state, and once finished its result."""

    task_id: str
    state: State
    progress: float = Field(ge=0, le=100)
    result: str | None = Field(description="SUCCESS: the output file name; FAILURE: the error; "
                                           "REVOKED: cancelled, or deleted")
    error: str | None
    error_code: str | None


class OptionInfo(Out):
    """One conversion option a format takes: its type, range and default."""

    name: str
    type: Literal["integer", "number", "boolean", "string"]
    description: str
    minimum: int | float | None
    maximum: int | float | None
    exclusive_minimum: bool
    choices: list[str] | None
    default: bool | int | float | str | None = Field(
        description="what the conversion does when the option is not given (null: the input "
                    "decides)")
    default_by_preset: dict[str, int] | None = Field(
        description="quality: each preset's own default")
    excludes: list[str] = Field(description="options that may not be given with this one")


class FormatInfo(Out):
    name: Format
    extension: str
    mime_type: str
    audio_only: bool
    description: str
    options: list[OptionInfo]


class FormatList(Out):
    """GET /api/formats: every target format, its options, and this server's upload limit."""

    formats: list[FormatInfo]
    max_upload_bytes: int


class ListQuery(BaseModel):
    """GET /api/tasks?max=&order= (query values are text: numbers are parsed)."""

    model_config = ConfigDict(extra="ignore")
    max: int = Field(1000, ge=1, le=2**31 - 1, description="at most 1000 are listed")
    order: int = Field(0, ge=0, le=1, description="0 oldest first, 1 newest first")


class DownloadQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    task_id: str = Field(min_length=1, max_length=MAX_ID)
    file: str = Field("", max_length=255, pattern=r"^[^/\\]*$",
                      description="one of the task's files (its files[].name); without it: "
                                  "the main output, or a zip of all of them when there are "
                                  "several")


class Health(Out):
    status: Literal["ok"] = "ok"


class Ready(Out):
    status: Literal["ready"] = "ready"
    checks: dict[str, str]


class NotReady(Out):
    message: str
    checks: dict[str, str]
