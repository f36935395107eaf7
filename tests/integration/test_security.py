"""SASL/SCRAM-SHA-512 over TLS with per-component ACLs, against a secured broker of its own.

The module starts one single-node cluster (not the session's PLAINTEXT broker): a SASL_SSL
client listener with a certificate from a throw-away CA, a SCRAM user per component and
``admin`` as super user, ``StandardAuthorizer``, and the ACL table of ``docs/security.md``.
Every component connects as its own principal; a wrong password, a PLAINTEXT client and an
untrusted CA are refused with an error that says why; the dashboard's principal reads the
visualization topic and nothing else; no password shows up in logs, output or reprs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from pydantic import SecretStr
from typer.testing import CliRunner

from orchestrator.controller.kafka_io import Publisher as ControllerPublisher
from orchestrator.controller.kafka_io import _aio_common
from orchestrator.controller.leadership import Leadership
from orchestrator.dashboard.feed import VisualizationFeed
from orchestrator.dashboard.feed import aiokafka_security as dashboard_security
from orchestrator.dashboard.state import RawRecord
from orchestrator.kafka_admin import KafkaUnavailableError, admin_client, cluster_info
from orchestrator.localkafka import cluster
from orchestrator.localkafka.security import (
    AclRule,
    SecuritySetup,
    apply_acls,
    component_acls,
    make_ca,
    prepare,
)
from orchestrator.provisioning import ensure_topics, topic_specs
from schemas.codec import decode_decision, encode
from schemas.decisions import Decision
from schemas.kafka_config import client_config
from schemas.queues import QueueClass
from schemas.settings import KafkaSecurity, SecurityProtocol, Settings, load_settings
from schemas.submissions import PostSubmission
from schemas.topics import TopicNames
from schemas.visualization import BreakerState, ClassQueueView, visualization_key
from streams.control_channel import aiokafka_security as worker_security
from streams.publisher import Publisher, PublishError
from streams.worker import serve_worker

ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = ROOT / ".modq"  # the jar cache lives here; the cluster gets its own folder
CLUSTER = f"pytest-secured-{os.getpid()}"
WAIT = 45.0
runner = CliRunner()


@dataclass(frozen=True)
class Secured:
    """The secured cluster, its credentials and this module's topic prefix."""

    setup: SecuritySetup
    bootstrap: str
    prefix: str
    state_dir: Path

    @property
    def names(self) -> TopicNames:
        return TopicNames.from_prefix(self.prefix)

    def settings(self, user: str, **security: Any) -> Settings:
        """Settings of a component connecting as ``user`` (``security`` overrides fields)."""
        sec = self.setup.kafka_security(user).model_copy(update=security)
        return Settings(
            kafka_bootstrap_servers=self.bootstrap,
            kafka_security=sec,
            topic_prefix=self.prefix,
            topic_partitions=2,
            state_dir=self.state_dir / user,
            heartbeat_seconds=0.5,
        )

    def env(self, user: str, password: str | None = None) -> dict[str, str]:
        """The environment an operator sets to run a modq command as ``user``."""
        secret = password or self.setup.password(user).get_secret_value()
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "MODQ_TOPIC_PREFIX": self.prefix,
            "MODQ_STATE_DIR": str(self.state_dir / user),
            "MODQ_KAFKA_SECURITY__PROTOCOL": "SASL_SSL",
            "MODQ_KAFKA_SECURITY__SASL_MECHANISM": "SCRAM-SHA-512",
            "MODQ_KAFKA_SECURITY__SASL_USERNAME": user,
            "MODQ_KAFKA_SECURITY__SASL_PASSWORD": secret,
            "MODQ_KAFKA_SECURITY__SSL_CA_LOCATION": str(self.setup.ca_cert),
            "COLUMNS": "400",
        }

    def assert_no_secret(self, text: str, *extra: str) -> None:
        """No password of any user (nor ``extra`` strings) occurs in ``text``."""
        secrets = [p.get_secret_value() for p in self.setup.passwords.values()] + list(extra)
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"{len(leaked)} credential(s) found in the output"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    """One SASL_SSL + SCRAM-SHA-512 + ACL broker for the module, with this prefix's topics."""
    base = tmp_path_factory.mktemp("secured")
    setup = prepare(base)
    try:
        handle = cluster.up(STATE_DIR, name=CLUSTER, port=cluster.free_port(), security=setup)
    except Exception as exc:
        cluster.down(STATE_DIR, name=CLUSTER, wipe=True)
        pytest.fail(f"the secured broker did not start: {exc}")
    try:
        prefix = f"s{uuid.uuid4().hex[:8]}."
        admin = setup.client_config(handle.bootstrap)
        specs = topic_specs(Settings(topic_prefix=prefix, topic_partitions=2))
        ensure_topics(admin, specs)
        apply_acls(admin, component_acls(prefix))
        yield Secured(setup, handle.bootstrap, prefix, base)
    finally:
        cluster.down(STATE_DIR, name=CLUSTER, wipe=True)


@pytest.fixture(autouse=True)
def _no_secret_in_logs(request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture) -> Any:
    """Every test here runs with DEBUG logs captured; none may contain a password."""
    caplog.set_level(logging.DEBUG)
    yield
    if "secured" in request.fixturenames:
        secured: Secured = request.getfixturevalue("secured")
        secured.assert_no_secret(caplog.text, "wrong-" + CLUSTER)


def _post(topic_id: str) -> PostSubmission:
    return PostSubmission(
        kind="post",
        id=f"sec-{uuid.uuid4().hex[:12]}",
        submitted_at=datetime.now(UTC),
        topic_id=topic_id,
        author_id="u1",
        body="hello over TLS",
    )


async def _wait_for(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.05)


def _read_decision(secured: Secured, submission_id: str, within: float) -> Decision:
    """The decision for ``submission_id``, read as the forum back end (``publisher``)."""
    settings = secured.settings("publisher")
    topic = secured.names.decisions
    consumer = Consumer({**client_config(settings), "group.id": f"{secured.prefix}backend.test"})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=100, timeout=0.2):
                if msg.error() is None and msg.value() is not None:
                    decision = decode_decision(msg.value())
                    if decision.submission_id == submission_id:
                        return decision
        raise AssertionError(f"no decision for {submission_id} within {within}s")
    finally:
        consumer.close()


@pytest.fixture
def queue_state(secured: Secured, tmp_path: Path) -> Iterator[Path]:
    """`modq queue-state` (faust) as the ``queue-state`` principal; yields its log file."""
    log = tmp_path / "queue-state.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODQ_")}
    env.update(secured.env("queue-state"))
    env["MODQ_QUEUE_STATE_PUBLISH_INTERVAL"] = "0.2"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "queue-state"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_publisher_worker_queue_state_and_dashboard_over_sasl_ssl(
    secured: Secured, queue_state: Path
) -> None:
    topic_id = f"t{uuid.uuid4().hex[:8]}"
    post = _post(topic_id)
    seen: list[RawRecord] = []
    feed = VisualizationFeed(secured.settings("dashboard"), seen.extend, lambda _status: None)
    async with feed:
        async with Publisher(secured.settings("publisher")) as publisher:
            delivery = await publisher.publish(post)
        assert delivery.topic == secured.names.submissions_posts

        stop = asyncio.Event()
        worker = asyncio.create_task(
            serve_worker(
                secured.settings("worker"),
                worker_id="w-sec",
                initial_class=QueueClass.TOPIC_POSTS,
                stop=stop,
            )
        )
        try:
            decision = await asyncio.to_thread(_read_decision, secured, post.id, WAIT)
        finally:
            stop.set()
            await worker
        assert decision.worker_id == "w-sec"
        assert decision.queue == f"topic_{topic_id}"

        # queue-state (faust, as `queue-state`) -> visualization -> dashboard (as `dashboard`)
        await _wait_for(
            lambda: any(r.key == f"topic_{topic_id}" for r in seen),
            WAIT,
            "the queue-state app's record for the key on the dashboard's feed",
        )
    output = await asyncio.to_thread(queue_state.read_text, "utf-8", "replace")
    secured.assert_no_secret(output)


async def test_controller_leads_publishes_and_status_shows_no_password(secured: Secured) -> None:
    settings = secured.settings("controller")
    async with Leadership(settings, "c-sec") as leadership:
        deadline = time.monotonic() + WAIT
        while not leadership.acting and time.monotonic() < deadline:
            await leadership.follow_once()
        assert leadership.acting, "the controller never led over SASL_SSL"
    view = ClassQueueView(
        queue=QueueClass.GLOBAL_TOPICS,
        length=1,
        oldest_wait_seconds=1.0,
        avg_wait_seconds=1.0,
        score=1.0,
        workers_assigned=1,
        breaker=BreakerState.CLOSED,
        in_rate=0.0,
        out_rate=0.0,
        min_workers=1,
        max_workers=1,
        updated_at=datetime.now(UTC),
    )
    async with ControllerPublisher(settings, "controller-c-sec") as publisher:
        await publisher.send_all(
            secured.names.visualization, [(visualization_key(view), encode(view))]
        )

    from orchestrator.cli import app

    result = runner.invoke(app, ["status"], env=secured.env("controller"))
    assert result.exit_code == 0, result.output
    assert "1 broker(s)" in result.stdout
    assert all(name in result.stdout for name in secured.names.all())
    assert "missing" not in result.stdout
    secured.assert_no_secret(result.output + repr(settings) + str(settings))

    wrong = "wrong-" + CLUSTER
    refused = runner.invoke(app, ["status"], env=secured.env("controller", password=wrong))
    assert refused.exit_code == 1
    assert "authentication failed" in refused.output
    secured.assert_no_secret(refused.output, wrong)


def _refused(secured: Secured, **security: Any) -> str:
    settings = secured.settings("worker", **security)
    with pytest.raises(KafkaUnavailableError) as caught:
        cluster_info(client_config(settings), timeout=3.0)
    return caught.value.detail


def test_wrong_password_is_refused_as_an_authentication_failure(secured: Secured) -> None:
    wrong = "wrong-" + CLUSTER
    detail = _refused(secured, sasl_password=SecretStr(wrong))
    assert "_AUTHENTICATION" in detail
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in detail
    secured.assert_no_secret(detail, wrong)


def test_plaintext_client_is_refused_by_the_sasl_ssl_listener(secured: Secured) -> None:
    detail = _refused(secured, protocol=SecurityProtocol.PLAINTEXT)
    assert "expects another security protocol than PLAINTEXT" in detail


def test_untrusted_ca_fails_the_tls_handshake(secured: Secured, tmp_path: Path) -> None:
    other = make_ca(tmp_path, "other-ca")
    detail = _refused(secured, ssl_ca_location=other.cert)
    assert "_SSL" in detail
    assert "certificate verify failed" in detail


async def test_dashboard_principal_reads_only_the_visualization_topic(secured: Secured) -> None:
    settings = secured.settings("dashboard")
    names = secured.names
    producer: Any = Producer(secured.setup.client_config(secured.bootstrap))  # as admin
    key = f"probe-{uuid.uuid4().hex[:8]}"
    producer.produce(names.visualization, key=key.encode(), value=b"{}")
    assert producer.flush(15) == 0

    seen: list[RawRecord] = []
    async with VisualizationFeed(settings, seen.extend, lambda _status: None):
        await _wait_for(lambda: any(r.key == key for r in seen), WAIT, "the probe record")

    # Every other topic is invisible to it: not even DESCRIBE (which READ would imply).
    admin = admin_client(client_config(settings))
    for topic in names.all():
        error = admin.list_topics(topic, timeout=10).topics[topic].error
        if topic == names.visualization:
            assert error is None
        else:
            assert error is not None, f"the dashboard may describe {topic}"
            assert error.name() == "TOPIC_AUTHORIZATION_FAILED"

    reports: list[Any] = []
    writer: Any = Producer({**client_config(settings), "acks": "all", "message.timeout.ms": 10000})
    writer.produce(
        names.visualization, key=b"k", value=b"{}", on_delivery=lambda e, _m: reports.append(e)
    )
    denials = {"TOPIC_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED", "_FATAL"}
    try:
        writer.flush(15)
    except KafkaException as exc:  # a fatal (cluster) denial raises from flush
        reports.append(exc.args[0])
    assert reports, "the write was neither refused nor reported"
    assert reports[0].name() in denials

    async with Publisher(settings) as publisher:
        with pytest.raises(PublishError) as denied:
            await publisher.publish(_post("t-dash"))
    # Which denial arrives first is a race: the topic's, or the cluster's refusal of an
    # idempotent producer id to a principal without IdempotentWrite (a fatal error).
    assert denied.value.code in denials


def test_settings_never_show_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"pw-{uuid.uuid4().hex}"
    monkeypatch.setenv("MODQ_KAFKA_SECURITY__PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("MODQ_KAFKA_SECURITY__SASL_USERNAME", "worker")
    monkeypatch.setenv("MODQ_KAFKA_SECURITY__SASL_PASSWORD", secret)
    settings = load_settings()
    assert settings.kafka_security.sasl_password is not None
    assert settings.kafka_security.sasl_password.get_secret_value() == secret
    shown = [
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        repr(settings.kafka_security),
    ]
    assert not [text for text in shown if secret in text]
    setup = SecuritySetup(Path("ca.pem"), Path("keystore.pem"), {"admin": SecretStr(secret)})
    assert secret not in repr(setup)


def test_aiokafka_adapters_map_security_alike(tmp_path: Path) -> None:
    """The worker's, controller's and dashboard's aiokafka options agree: SASL only for SASL
    protocols, a TLS context (system CAs when no CA file is set) for SSL protocols."""
    adapters = (worker_security, dashboard_security, _aio_common)
    sasl_ssl = Settings(
        kafka_security=KafkaSecurity(
            protocol=SecurityProtocol.SASL_SSL, sasl_username="u", sasl_password=SecretStr("p")
        )
    )
    for adapter in adapters:
        options = adapter(sasl_ssl)
        assert options["security_protocol"] == "SASL_SSL"
        assert options["sasl_mechanism"] == "SCRAM-SHA-512"
        assert options["sasl_plain_username"] == "u"
        assert options["sasl_plain_password"] == "p"
        assert options["ssl_context"] is not None
    plaintext = Settings(kafka_security=KafkaSecurity(sasl_username="u", ssl_ca_location=None))
    for adapter in adapters:
        options = adapter(plaintext)
        assert options["security_protocol"] == "PLAINTEXT"
        assert "sasl_mechanism" not in options
        assert "ssl_context" not in options


def _documented_acls(prefix: str) -> set[tuple[str, str, str, str, frozenset[str]]]:
    """The ACL table of docs/security.md (rows ``| principal | type | name | pattern | ops |``)."""
    text = (ROOT / "docs" / "security.md").read_text("utf-8")
    rows: set[tuple[str, str, str, str, frozenset[str]]] = set()
    for line in text.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or cells[0] not in {
            "publisher",
            "worker",
            "controller",
            "queue-state",
            "dashboard",
        }:
            continue
        principal, rtype, name, pattern, ops = cells
        rows.add(
            (
                principal,
                rtype,
                name.replace("{prefix}", prefix),
                pattern,
                frozenset(re.split(r",\s*", ops)),
            )
        )
    return rows


def test_docs_list_exactly_the_acls_the_broker_gets() -> None:
    def key(rule: AclRule) -> tuple[str, str, str, str, frozenset[str]]:
        return (
            rule.principal,
            rule.resource_type,
            rule.name,
            rule.pattern,
            frozenset(rule.operations),
        )

    assert _documented_acls("forum.") == {key(rule) for rule in component_acls("forum.")}
