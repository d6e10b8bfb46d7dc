"""The gate agent's configuration: pydantic models read from TOML.

Every model forbids unknown keys and describes every field, so a typo is reported with its path
(``lanes.0.barrier.pin``) and what is allowed, instead of being silently ignored. Secrets (the
operator API token, MQTT password) may come from the environment: a string value of the form
``env:NAME`` is replaced by ``$NAME`` when the config is loaded.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gate_agent.domain import AntiPassback, Direction, LotRules

__all__ = [
    "AgentConfig",
    "ConfigError",
    "load_config",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RulesConfig(_Model):
    """Local fall-backs only: the lot's rules come from its cloud policy (pushed on the change
    feed, kept in the cache); every value here is used only until the first policy arrives."""

    early_grace_minutes: float = Field(15, ge=0, description="Fall-back: entry this early.")
    late_grace_minutes: float = Field(15, ge=0, description="Fall-back: entry this late after end.")
    anti_passback: AntiPassback = Field(
        AntiPassback.HARD, description="Fall-back: hard (inside can't enter again), soft, off."
    )
    anti_passback_reset_hours: float | None = Field(
        None, gt=0, description="Fall-back: a plate inside longer than this no longer blocks."
    )
    min_confidence: float = Field(0.80, ge=0, le=1, description="Fall-back: less never opens.")
    fuzzy_min_confidence: float = Field(
        0.90, ge=0, le=1, description="Fall-back: a fuzzy match's other characters this sure."
    )
    pay_before_exit: bool = Field(
        False,
        description="Fall-back: the exit holds a car that owes (off: opens, the cloud bills).",
    )

    def to_rules(self) -> LotRules:
        reset = self.anti_passback_reset_hours
        return LotRules(
            early_grace=timedelta(minutes=self.early_grace_minutes),
            late_grace=timedelta(minutes=self.late_grace_minutes),
            anti_passback=self.anti_passback,
            min_confidence=self.min_confidence,
            fuzzy_min_confidence=self.fuzzy_min_confidence,
            anti_passback_reset=None if reset is None else timedelta(hours=reset),
            pay_before_exit=self.pay_before_exit,
        )


class LotConfig(_Model):
    id: str = Field(
        ...,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The lot id the cloud knows this lot by (letters, digits, - and _).",
    )
    data_dir: Path = Field(
        Path("/var/lib/parkgate"), description="Where the SQLite cache and journal live."
    )
    rules: RulesConfig = Field(
        default_factory=RulesConfig,
        description="Local fall-back decision rules, used until the lot's cloud policy arrives.",
    )


class RecognitionConfig(_Model):
    models_dir: Path | None = Field(
        None,
        description="Directory with the detector and OCR ONNX files; default $PARKGATE_MODELS_DIR,"
        " else fast-alpr downloads its models (networked Pi).",
    )
    detector: str = Field(
        "yolo-v9-t-416-license-plates-end2end-int8-dequant-fp32.onnx",
        description="Plate detector file name in models_dir.",
    )
    ocr: str = Field("cct_xs_v2_global", description="OCR model base name in models_dir.")
    threads: int = Field(2, ge=1, le=16, description="onnxruntime intra-op threads.")
    detection_threshold: float = Field(0.4, gt=0, lt=1, description="Plate detector threshold.")
    min_plate_length: int = Field(4, ge=1, le=12, description="Shorter reads are dropped.")
    plate_format: str | None = Field(
        None, description="Optional regex a normalised plate must fully match (per lot)."
    )

    @field_validator("plate_format")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression ({exc})") from None
        return value


class PassConfig(_Model):
    budget_seconds: float = Field(
        1.5, gt=0, le=30, description="Decide at the latest this long after a pass starts."
    )
    gap_seconds: float = Field(
        3.0, gt=0, le=120, description="No reads of a car for this long ends its pass."
    )


class OpenCVCameraConfig(_Model):
    kind: Literal["opencv"] = Field(description="A USB camera index or an RTSP/HTTP URL.")
    source: int | str = Field(..., description="USB index (0) or URL (rtsp://...).")


class ReplayCameraConfig(_Model):
    kind: Literal["replay"] = Field(description="Replay an image folder or a video file.")
    path: Path = Field(..., description="Image folder or video file.")
    fps: float = Field(2.0, ge=0, le=60, description="Frames per second (0: as fast as read).")
    loop: bool = Field(True, description="Start again at the end.")


CameraConfig = Annotated[OpenCVCameraConfig | ReplayCameraConfig, Field(discriminator="kind")]


class GpioBarrierConfig(_Model):
    kind: Literal["gpio"] = Field(description="A relay on a Raspberry Pi GPIO pin.")
    pin: int | str = Field(..., description="BCM pin number (17) or gpiozero pin name ('GPIO17').")
    active_high: bool = Field(True, description="False for relay boards that switch on low.")
    pulse_seconds: float = Field(1.0, gt=0, le=30, description="How long the open pulse lasts.")
    mock: bool = Field(False, description="Use gpiozero's MockFactory (demo/tests, no hardware).")


class SerialBarrierConfig(_Model):
    kind: Literal["serial"] = Field(description="A USB relay board (LCUS/CH340, A0 frames).")
    port: str = Field(..., description="Serial device, e.g. /dev/ttyUSB0.")
    channel: int = Field(1, ge=1, le=8, description="Relay channel on the board.")
    baudrate: int = Field(9600, description="Serial speed of the board.")
    pulse_seconds: float = Field(1.0, gt=0, le=30, description="How long the open pulse lasts.")


class DryRunBarrierConfig(_Model):
    kind: Literal["dry-run"] = Field(description="Log pulses only (commissioning).")
    pulse_seconds: float = Field(1.0, gt=0, le=30, description="Recorded pulse length.")


BarrierConfig = Annotated[
    GpioBarrierConfig | SerialBarrierConfig | DryRunBarrierConfig, Field(discriminator="kind")
]


class PresenceConfig(_Model):
    pin: int | str = Field(..., description="GPIO input of the induction loop or light beam.")
    active_high: bool = Field(True, description="False when the detector pulls the line low.")
    mock: bool = Field(False, description="Use gpiozero's MockFactory (demo/tests).")


class HelpButtonConfig(_Model):
    pin: int | str = Field(..., description="GPIO input of the driver's help button.")
    pull_up: bool = Field(True, description="True: a contact to ground (pressed pulls low).")
    mock: bool = Field(False, description="Use gpiozero's MockFactory (demo/tests).")


class LaneLightConfig(_Model):
    red: int | str = Field(..., description="GPIO output of the red lamp (lit on a denial).")
    green: int | str = Field(..., description="GPIO output of the green lamp (lit while open).")
    amber: int | str | None = Field(None, description="Optional amber lamp (lit while reading).")
    mock: bool = Field(False, description="Use gpiozero's MockFactory (demo/tests).")


class LaneConfig(_Model):
    id: str = Field(..., pattern=r"^[A-Za-z0-9_-]+$", description="Lane id, unique in the lot.")
    direction: Direction = Field(..., description="entry or exit.")
    camera: CameraConfig = Field(..., description="Where frames come from.")
    barrier: BarrierConfig = Field(..., description="What opens the barrier.")
    presence: PresenceConfig | None = Field(None, description="Optional vehicle presence sensor.")
    help_button: HelpButtonConfig | None = Field(
        None, description="Optional help button: a press alarms the operator's status page."
    )
    light: LaneLightConfig | None = Field(
        None, description="Optional lane light mirroring the decision (green open, red denied)."
    )
    read_codes: bool = Field(
        True,
        description="Look for booking access-code QR codes (a driver's phone) in the camera "
        "frames whose plates did not open the barrier.",
    )
    hold_window_seconds: float = Field(
        120.0,
        gt=0,
        le=3600,
        description="An exit holding a car for payment_due opens for it when its stay is paid "
        "within this long, without a new read (unless another car's pass began since).",
    )


class PrivacyConfig(_Model):
    keep_images: bool = Field(False, description="Keep an evidence image per event.")
    image_dir: Path | None = Field(None, description="Where kept images go (default data_dir).")
    retention_days: int = Field(
        30,
        ge=1,
        le=3650,
        description="Days after which plate reads are blanked in the journal (whether or not the "
        "cloud confirmed the event; it is still sent, without the plate), and kept images, "
        "manual-open frames and dead letters are deleted.",
    )
    manual_open_frames: bool = Field(
        False,
        description="Save the camera frame with each manual open (audit evidence, in "
        "<data_dir>/evidence) even when keep_images is false; keep_images=true saves them too. "
        "Deleted after retention_days.",
    )
    event_history_days: int = Field(
        90,
        ge=1,
        le=3650,
        description="Days after which journal events the cloud confirmed are deleted (bounds the "
        "database on the SD card); an unconfirmed event is kept until confirmed.",
    )
    audit_history_days: int = Field(
        400,
        ge=1,
        le=3650,
        description="Days after which operator audit entries (manual opens, presence resets, "
        "logins) are deleted; their plates go after retention_days already.",
    )
    hash_plates: bool = Field(False, description="Store plates hashed at the edge.")


class OperatorConfig(_Model):
    username: str = Field(..., min_length=1, max_length=64, description="Login name.")
    password_hash: str = Field(
        ...,
        description="scrypt hash made by `gate-agent hash-password` (never the plain password).",
    )


class WebConfig(_Model):
    enabled: bool = Field(True, description="Serve the operator status page and JSON API.")
    host: str = Field("127.0.0.1", description="Listen address (0.0.0.0 for the booth LAN).")
    port: int = Field(8080, ge=1, le=65535, description="Listen port.")
    operators: list[OperatorConfig] = Field(
        default_factory=list, description="Operators who may log in and open manually."
    )
    api_token: str | None = Field(
        None, min_length=16, description="Bearer token for the JSON API (use env:NAME)."
    )
    session_secret: str | None = Field(
        None, min_length=16, description="Signs session cookies; default: random per start."
    )
    stale_frame_seconds: float = Field(
        10, gt=0, description="Camera alarm when the newest frame is older than this."
    )
    no_read_alarm_minutes: float = Field(
        30, gt=0, description="Alarm when a lane has read no plate for this long."
    )
    tls_cert_file: Path | None = Field(
        None,
        description="PEM certificate for HTTPS (`gate-agent make-cert` makes one); required"
        " unless host is loopback, where plain HTTP is allowed.",
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file.")
    metrics_token: str | None = Field(
        None,
        min_length=16,
        description="Bearer token for GET /metrics; unset: /metrics answers loopback clients only.",
    )
    max_upload_bytes: int = Field(
        10 * 2**20,
        ge=2**16,
        le=64 * 2**20,
        description="Largest photo upload body (413 above it, refused before it is read).",
    )
    max_image_pixels: int = Field(
        25_000_000,
        ge=10_000,
        le=200_000_000,
        description="Largest uploaded image (width x height, from its header, before decoding).",
    )

    @model_validator(mode="after")
    def _tls_or_loopback(self) -> WebConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("web.tls_cert_file and web.tls_key_file go together")
        if self.enabled and self.tls_cert_file is None and not _loopback(self.host):
            raise ValueError(
                f"web.host {self.host!r} is reachable from the network: set web.tls_cert_file and"
                " web.tls_key_file (`gate-agent make-cert` makes a self-signed pair), or bind"
                " 127.0.0.1"
            )
        return self

    @property
    def tls(self) -> bool:
        """True when the web UI is served over HTTPS."""
        return self.tls_cert_file is not None


def _loopback(host: str) -> bool:
    """True for a host name or address that only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SyncConfig(_Model):
    enabled: bool = Field(False, description="Sync with the cloud over MQTT (off: offline lot).")
    broker_host: str = Field("127.0.0.1", description="MQTT broker host.")
    broker_port: int = Field(1883, ge=1, le=65535, description="MQTT broker port (8883 TLS).")
    username: str | None = Field(None, description="MQTT user (the lot id, as provisioned).")
    password: str | None = Field(None, description="MQTT password (use env:NAME).")
    tls_ca_file: Path | None = Field(
        None,
        description="The broker's CA certificate (from cloud-api broker-tls, handed over with "
        "the lot's credentials); set: TLS, checking the certificate names broker_host. "
        "Required unless the broker is on this machine.",
    )
    cloud_url: str | None = Field(
        None, description="Cloud API base URL for catch-up (GET /lots/{id}/changes)."
    )
    device_token: str | None = Field(None, description="Cloud device token (use env:NAME).")
    heartbeat_seconds: float = Field(30, gt=0, description="Heartbeat period.")
    session_expiry_seconds: int = Field(
        7 * 24 * 3600, ge=60, description="Broker keeps our session and queued messages this long."
    )
    inflight_window: int = Field(20, ge=1, le=1000, description="Unacknowledged event publishes.")
    confirm_timeout_seconds: float = Field(
        30,
        gt=0,
        description="Publish an event again when the broker accepted it (PUBACK) but the cloud"
        " has not confirmed storing it (EventAck on the acks topic) within this many seconds.",
    )

    @model_validator(mode="after")
    def _tls_beyond_this_machine(self) -> SyncConfig:
        if self.enabled and self.tls_ca_file is None and not _is_loopback(self.broker_host):
            raise ValueError(
                f"broker_host {self.broker_host!r} is not this machine: set tls_ca_file (the "
                "broker's CA certificate) so the password crosses the network encrypted and "
                "only to the real broker"
            )
        return self


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class DisplayConfig(_Model):
    """The drivers' lane display (``GET /display/{lane_id}`` on the web server, no login)."""

    enabled: bool = Field(True, description="Serve the lane display pages (with the web UI).")
    language: str | None = Field(
        None,
        pattern=r"^[a-z]{2}$",
        description="Display language (en, de, fr, nl, ...); default: the lot policy's language.",
    )
    pay_url_template: str | None = Field(
        None,
        description="Pay-by-plate link shown as a QR code when a car owes money, with {lot_id} "
        "and {plate}; default {sync.cloud_url}/lots/{lot_id}/pay?plate={plate} when sync has a "
        "cloud_url; none: drivers are sent to the pay station.",
    )
    hold_seconds: float = Field(
        8, gt=0, le=120, description="A decision stays on screen this long, then back to idle."
    )
    max_screens_per_lane: int = Field(
        4, ge=1, le=64, description="Live display connections allowed per lane (more get 429)."
    )

    @field_validator("pay_url_template")
    @classmethod
    def _template_fields(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                value.format(lot_id="lot", plate="AB123")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"only {{lot_id}} and {{plate}} may be used ({exc})") from None
            if not value.startswith(("https://", "http://")):
                raise ValueError("must be an http(s) URL")
        return value


class AgentConfig(_Model):
    lot: LotConfig = Field(..., description="This lot.")
    recognition: RecognitionConfig = Field(default_factory=RecognitionConfig)
    passes: PassConfig = Field(default_factory=PassConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    display: DisplayConfig = Field(
        default_factory=DisplayConfig, description="The drivers' lane display screens."
    )
    lanes: list[LaneConfig] = Field(..., min_length=1, description="One entry per lane.")

    @model_validator(mode="after")
    def _unique_lane_ids(self) -> AgentConfig:
        ids = [lane.id for lane in self.lanes]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"lane ids must be unique; repeated: {', '.join(dupes)}")
        return self


class ConfigError(ValueError):
    """The config file cannot be used; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _expand_env(value: Any, path: str, problems: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{path}.{k}" if path else k, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, f"{path}.{i}", problems) for i, v in enumerate(value)]
    if isinstance(value, str) and value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            problems.append(f"{path}: environment variable {name} is not set (value '{value}')")
            return value
        return os.environ[name]
    return value


# Parts pydantic adds to an error's location for union members; they mean nothing to an operator.
_UNION_TAGS = {"opencv", "replay", "gpio", "serial", "dry-run", "int", "str"}
_KINDS = {"camera": "'opencv', 'replay'", "barrier": "'gpio', 'serial', 'dry-run'"}


def _describe(errors: list[Any]) -> list[str]:
    """One line per field: ``path: what is wrong (allowed: ...)``; union alternatives merged."""
    by_field: dict[str, list[str]] = {}
    for error in errors:
        parts = [str(p) for p in error["loc"] if not (isinstance(p, str) and p in _UNION_TAGS)]
        loc = ".".join(parts) or "(top level)"
        msg = error["msg"]
        if error["type"] == "extra_forbidden":
            msg = "unknown field; remove it or check the spelling"
        elif error["type"] == "missing":
            msg = "required field is missing"
        elif error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            allowed = _KINDS.get(parts[-1], "")
            msg = f"'kind' must be one of {allowed}"
        msgs = by_field.setdefault(loc, [])
        if msg not in msgs:
            msgs.append(msg)
    return [f"{loc}: {' or '.join(msgs)}" for loc, msgs in by_field.items()]


def parse_config(data: dict[str, Any]) -> AgentConfig:
    problems: list[str] = []
    data = _expand_env(data, "", problems)
    if problems:
        raise ConfigError(problems)
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc.errors())) from None


def load_config(path: str | Path) -> AgentConfig:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: not valid TOML ({exc})"]) from None
    return parse_config(data)
