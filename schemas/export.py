"""The contract as documents: JSON Schema for every message, and an AsyncAPI 3.0 document.

Pure functions: they build dicts and strings and write nothing. ``modq schemas`` writes
``render_all()`` under ``docs/`` (``docs/schemas/*.json`` and ``docs/asyncapi.json``), and a
unit test fails when the checked-in files drift from the models.

The AsyncAPI document describes modq as one application: it *receives* submissions and
control messages and *sends* decisions, dead letters, control messages and queue state.
Channel addresses are the default topic names; ``MODQ_TOPIC_PREFIX`` replaces ``forum.``.
"""

from __future__ import annotations

import json
from typing import Any, Final

from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from schemas.control import ControlMessage, WorkerAssignment, WorkerHeartbeat
from schemas.decisions import Decision
from schemas.dlq import HEADERS, MAX_ERROR_MESSAGE_LENGTH, OPTIONAL_HEADERS
from schemas.errors import ErrorType
from schemas.fields import ENTITY_ID_PATTERN, MAX_ID_LENGTH
from schemas.submissions import (
    PostSubmission,
    PrivateMessageSubmission,
    Submission,
    TopicSubmission,
)
from schemas.topics import TopicNames, TopicSpec, default_topic_specs
from schemas.visualization import (
    ClassQueueView,
    ControllerDecisionView,
    KeyQueueView,
    StuckKeysView,
    VisualizationRecord,
    WorkerPoolView,
)

ASYNCAPI_VERSION: Final = "3.0.0"
CONTRACT_VERSION: Final = "1.0.0"
JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
KAFKA_BINDING_VERSION: Final = "0.5.0"

_COMPONENT_REF: Final = "#/components/schemas/{model}"
_VALIDATION: JsonSchemaMode = "validation"

_DOCUMENTS: dict[str, tuple[str, Any]] = {
    "schemas/submission.json": ("Submission", Submission),
    "schemas/topic_submission.json": ("TopicSubmission", TopicSubmission),
    "schemas/post_submission.json": ("PostSubmission", PostSubmission),
    "schemas/private_message_submission.json": (
        "PrivateMessageSubmission",
        PrivateMessageSubmission,
    ),
    "schemas/decision.json": ("Decision", Decision),
    "schemas/control_message.json": ("ControlMessage", ControlMessage),
    "schemas/visualization_record.json": ("VisualizationRecord", VisualizationRecord),
}
"""Path under ``docs/`` → (title, type) of each standalone JSON Schema."""

_ID = f"[A-Za-z0-9_.-]{{1,{MAX_ID_LENGTH}}}"
_TOPIC_ID_KEY = {
    "type": "string",
    "pattern": ENTITY_ID_PATTERN,
    "maxLength": MAX_ID_LENGTH,
    "description": "The topic id.",
}
_PAIR_KEY = {
    "type": "string",
    "pattern": f"^{_ID}:{_ID}$",
    "description": 'The two user ids sorted as strings, "{a}:{b}".',
}
_SUBMISSION_KEY = {
    "description": "The key of the submission it is about.",
    "anyOf": [_TOPIC_ID_KEY, _PAIR_KEY],
}
_QUEUE_KEY = {
    "type": "string",
    "description": (
        "The queue name: a class (global_topics, topic_posts, private_messages), "
        "topic_{topic_id}, users_{a}:{b}, workers, controller or stuck_{class}."
    ),
}
_CONTROL_KEY = {
    "type": "string",
    "pattern": f"^(?:assign|hb):{_ID}$",
    "description": "assign:{worker_id} for assignments, hb:{worker_id} for heartbeats.",
}

_HEADER_DESCRIPTIONS: dict[str, str] = {
    "source_topic": "Topic the record was read from.",
    "source_partition": "Its partition, in decimal.",
    "source_offset": "Its offset, in decimal.",
    "error_type": "Why it was dead-lettered.",
    "error_message": (
        f"What went wrong, at most {MAX_ERROR_MESSAGE_LENGTH} characters; never the input."
    ),
    "error_field": "Dotted path of the offending field, or $ for the whole record.",
    "attempts": "How many times processing was tried, in decimal (at least 1).",
    "worker_id": "The worker that gave up.",
    "failed_at": "When it gave up (RFC 3339 with a UTC offset).",
}


def message_schema(title: str, type_: Any) -> dict[str, Any]:
    """The standalone JSON Schema (2020-12) of one message type, definitions inlined."""
    schema = TypeAdapter(type_).json_schema(mode=_VALIDATION)
    schema.setdefault("title", title)
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


def dead_letter_headers_schema() -> dict[str, Any]:
    """JSON Schema of a DLQ record's headers (each value is UTF-8 text)."""
    properties: dict[str, Any] = {}
    for name, header in HEADERS.items():
        prop: dict[str, Any] = {"type": "string", "description": _HEADER_DESCRIPTIONS[name]}
        if name in {"source_partition", "source_offset"}:
            prop["pattern"] = "^[0-9]+$"
        elif name == "attempts":
            prop["pattern"] = "^[1-9][0-9]*$"
        elif name == "error_type":
            prop["enum"] = [member.value for member in ErrorType]
        elif name == "failed_at":
            prop["format"] = "date-time"
        properties[header] = prop
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "DeadLetterHeaders",
        "description": "Headers of a record on the DLQ; other headers may be present.",
        "type": "object",
        "properties": properties,
        "required": [header for header in HEADERS.values() if header not in OPTIONAL_HEADERS],
        "additionalProperties": True,
    }


def json_schemas() -> dict[str, dict[str, Any]]:
    """Every standalone JSON Schema, by its path under ``docs/``."""
    documents = {path: message_schema(title, type_) for path, (title, type_) in _DOCUMENTS.items()}
    documents["schemas/dead_letter_headers.json"] = dead_letter_headers_schema()
    return documents


def component_schemas() -> dict[str, Any]:
    """Every message's schema by name, references as ``#/components/schemas/{name}``."""
    inputs = [(title, _VALIDATION, TypeAdapter(type_)) for title, type_ in _DOCUMENTS.values()]
    tops, definitions = TypeAdapter.json_schemas(inputs, ref_template=_COMPONENT_REF)
    schemas: dict[str, Any] = dict(definitions.get("$defs", {}))
    for (title, _mode), schema in tops.items():
        if "$ref" not in schema:
            schemas[title] = {"title": title, **schema}
    for schema in schemas.values():
        # AsyncAPI's Schema Object takes the discriminator as a bare property name.
        if isinstance(schema.get("discriminator"), dict):
            schema["discriminator"] = schema["discriminator"]["propertyName"]
    headers = dead_letter_headers_schema()
    headers.pop("$schema")
    schemas["DeadLetterHeaders"] = headers
    return schemas


def _payload(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _message(
    name: str, summary: str, key: dict[str, Any], payload: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An AsyncAPI message with its JSON payload and Kafka key schema."""
    return {
        "name": name,
        "title": name,
        "summary": summary,
        "contentType": "application/json",
        "payload": payload if payload is not None else _payload(name),
        "bindings": {"kafka": {"key": key, "bindingVersion": KAFKA_BINDING_VERSION}},
    }


def _tombstone(name: str, summary: str, key: dict[str, Any]) -> dict[str, Any]:
    """A null value on a compacted topic."""
    return _message(name, summary, key, {"type": "null"})


def component_messages() -> dict[str, dict[str, Any]]:
    """Every message modq's topics carry, by name."""
    dead_letter = _message(
        "DeadLetter",
        "The original value bytes, unchanged; why and where in the headers.",
        _SUBMISSION_KEY,
        {"description": "The submission record's original value bytes."},
    )
    dead_letter["contentType"] = "application/octet-stream"
    dead_letter["headers"] = _payload("DeadLetterHeaders")
    messages = [
        _message(TopicSubmission.__name__, "A new forum topic to moderate.", _TOPIC_ID_KEY),
        _message(PostSubmission.__name__, "A post in a forum topic to moderate.", _TOPIC_ID_KEY),
        _message(PrivateMessageSubmission.__name__, "A private message to moderate.", _PAIR_KEY),
        _message(Decision.__name__, "The outcome for one submission.", _SUBMISSION_KEY),
        dead_letter,
        _message(WorkerHeartbeat.__name__, "A worker's periodic report.", _CONTROL_KEY),
        _message(WorkerAssignment.__name__, "The controller's instruction.", _CONTROL_KEY),
        _tombstone("WorkerRetired", "Tombstone: the worker is gone.", _CONTROL_KEY),
        _message(ClassQueueView.__name__, "The state of one queue class.", _QUEUE_KEY),
        _message(KeyQueueView.__name__, "The state of one per-key queue.", _QUEUE_KEY),
        _message(WorkerPoolView.__name__, "The worker pool (key: workers).", _QUEUE_KEY),
        _message(
            ControllerDecisionView.__name__,
            "The controller's latest allocation (key: controller).",
            _QUEUE_KEY,
        ),
        _message(StuckKeysView.__name__, "A class's most delayed keys.", _QUEUE_KEY),
        _tombstone("QueueRemoved", "Tombstone: the per-key queue emptied.", _QUEUE_KEY),
    ]
    return {message["name"]: message for message in messages}


def _channel(spec: TopicSpec, description: str, messages: list[str]) -> dict[str, Any]:
    """An AsyncAPI channel for one topic, with its Kafka topic binding."""
    topic_config: dict[str, Any] = {
        "cleanup.policy": [spec.config["cleanup.policy"]],
    }
    for name in ("retention.ms", "delete.retention.ms"):
        if name in spec.config:
            topic_config[name] = int(spec.config[name])
    return {
        "address": spec.name,
        "description": description,
        "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in messages},
        "bindings": {
            "kafka": {
                "topic": spec.name,
                "partitions": spec.partitions,
                "replicas": spec.replication_factor,
                "topicConfiguration": topic_config,
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def channels() -> dict[str, dict[str, Any]]:
    """One channel per topic, under the default names and topic specs."""
    specs = default_topic_specs(TopicNames.from_prefix())
    topics, posts, private, decisions, dlq, visualization, control = specs
    views = ["ClassQueueView", "KeyQueueView", "WorkerPoolView", "ControllerDecisionView"]
    return {
        "submissionsTopics": _channel(
            topics, "New topics, keyed by topic id; moderated in batches.", ["TopicSubmission"]
        ),
        "submissionsPosts": _channel(
            posts, "Posts, keyed by topic id; strict order per topic.", ["PostSubmission"]
        ),
        "submissionsPrivateMessages": _channel(
            private,
            "Private messages, keyed by sorted user pair; strict order per conversation.",
            ["PrivateMessageSubmission"],
        ),
        "decisions": _channel(
            decisions, "Decisions, keyed like their submissions, in per-key order.", ["Decision"]
        ),
        "dlq": _channel(dlq, "Records that could not be moderated.", ["DeadLetter"]),
        "visualization": _channel(
            visualization,
            "Compacted queue state, keyed by queue name; read from the start for all of it.",
            [*views, "StuckKeysView", "QueueRemoved"],
        ),
        "control": _channel(
            control,
            "Compacted control plane (internal): assignments and heartbeats per worker.",
            ["WorkerAssignment", "WorkerHeartbeat", "WorkerRetired"],
        ),
    }


def operations(channel_map: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What modq does on each channel: receive submissions, send everything it produces."""
    plan = [
        ("receiveTopicSubmissions", "receive", "submissionsTopics"),
        ("receivePostSubmissions", "receive", "submissionsPosts"),
        ("receivePrivateMessageSubmissions", "receive", "submissionsPrivateMessages"),
        ("sendDecisions", "send", "decisions"),
        ("sendDeadLetters", "send", "dlq"),
        ("sendQueueState", "send", "visualization"),
        ("sendControl", "send", "control"),
        ("receiveControl", "receive", "control"),
    ]
    return {
        operation_id: {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [
                {"$ref": f"#/channels/{channel}/messages/{name}"}
                for name in channel_map[channel]["messages"]
            ],
        }
        for operation_id, action, channel in plan
    }


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of modq's topics and messages."""
    channel_map = channels()
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "modq",
            "version": CONTRACT_VERSION,
            "description": (
                "Moderation queues for a forum on Apache Kafka. Records are UTF-8 JSON with "
                "UTF-8 keys, produced with the murmur2 partitioner, idempotently, acks=all. "
                "Topic names are the defaults; MODQ_TOPIC_PREFIX replaces the leading "
                "'forum.'. Unknown fields are ignored by readers."
            ),
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The broker make run starts when KAFKA_BOOTSTRAP_SERVERS is unset.",
            }
        },
        "channels": channel_map,
        "operations": operations(channel_map),
        "components": {"schemas": component_schemas(), "messages": component_messages()},
    }


def render(document: dict[str, Any]) -> str:
    """Stable JSON text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_all() -> dict[str, str]:
    """Every contract document by its path under ``docs/``, as file text."""
    files = {path: render(schema) for path, schema in json_schemas().items()}
    files["asyncapi.json"] = render(asyncapi_document())
    return dict(sorted(files.items()))
