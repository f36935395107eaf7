"""Contract documents: the checked-in docs equal what the models produce, and hold together."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from schemas.dlq import HEADERS
from schemas.export import asyncapi_document, json_schemas, render_all
from schemas.topics import TopicNames

DOCS = Path(__file__).resolve().parents[2] / "docs"
REGENERATE = "regenerate with `modq schemas` (schemas.export.render_all)"


@pytest.mark.parametrize("path", sorted(render_all()))
def test_checked_in_document_matches_the_models(path: str) -> None:
    on_disk = DOCS / path
    assert on_disk.is_file(), f"docs/{path} is missing: {REGENERATE}"
    assert on_disk.read_text(encoding="utf-8") == render_all()[path], (
        f"docs/{path} drifted from the models: {REGENERATE}"
    )


def test_no_stale_schema_files_are_left_behind() -> None:
    on_disk = {f"schemas/{file.name}" for file in (DOCS / "schemas").glob("*.json")}
    assert on_disk == {path for path in render_all() if path.startswith("schemas/")}


def test_rendering_is_deterministic_and_newline_terminated() -> None:
    first, second = render_all(), render_all()
    assert first == second
    assert all(text.endswith("}\n") for text in first.values())


def resolve(document: dict[str, Any], pointer: str) -> Any:
    node: Any = document
    for part in pointer.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def refs(node: Any) -> list[str]:
    found = re.findall(r'"\$ref": "([^"]+)"', json.dumps(node))
    mapping = re.findall(r'"(#/components/schemas/[^"]+)"', json.dumps(node))
    return [*found, *mapping]


def test_every_asyncapi_reference_resolves() -> None:
    document = asyncapi_document()
    for pointer in refs(document):
        assert resolve(document, pointer) is not None, pointer


def test_every_json_schema_reference_resolves_locally() -> None:
    for path, schema in json_schemas().items():
        assert schema["$schema"].endswith("2020-12/schema"), path
        for pointer in re.findall(r'"\$ref": "([^"]+)"', json.dumps(schema)):
            assert pointer.startswith("#/$defs/"), (path, pointer)
            resolve(schema, pointer)


def test_asyncapi_has_one_channel_per_topic_and_operations_on_them() -> None:
    document = asyncapi_document()
    assert document["asyncapi"] == "3.0.0"
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == set(TopicNames.from_prefix().all())
    actions = {(op["action"], op["channel"]["$ref"]) for op in document["operations"].values()}
    assert ("receive", "#/channels/submissionsPosts") in actions
    assert ("send", "#/channels/decisions") in actions
    for operation in document["operations"].values():
        channel = resolve(document, operation["channel"]["$ref"])
        for message in operation["messages"]:
            name = message["$ref"].rsplit("/", 1)[1]
            assert name in channel["messages"]


def test_asyncapi_messages_name_their_keys_and_the_dlq_headers() -> None:
    document = asyncapi_document()
    messages = document["components"]["messages"]
    for message in messages.values():
        assert "key" in message["bindings"]["kafka"], message["name"]
    headers = resolve(document, messages["DeadLetter"]["headers"]["$ref"])
    assert set(headers["properties"]) == set(HEADERS.values())
    assert all(name.startswith("modq.") for name in headers["properties"])


def test_discriminators_are_required_on_the_wire() -> None:
    schemas = json_schemas()
    for path in ("topic_submission", "post_submission", "private_message_submission"):
        assert "kind" in schemas[f"schemas/{path}.json"]["required"]
    for definition in schemas["schemas/visualization_record.json"]["$defs"].values():
        if "type" in definition.get("properties", {}):
            assert "type" in definition["required"]


def test_no_visualization_or_decision_schema_has_a_body() -> None:
    for path in ("schemas/decision.json", "schemas/visualization_record.json"):
        assert '"body"' not in json.dumps(json_schemas()[path])
