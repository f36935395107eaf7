"""A secured local broker: TLS certificates, SCRAM-SHA-512 users and per-component topic ACLs.

What :func:`prepare` builds in a folder (for tests and demos; an operator's own cluster gets
its certificates and users from its operators, see ``docs/security.md``):

- a throw-away certificate authority (``ca.pem``) and a broker certificate it signed for
  ``127.0.0.1``/``localhost``, stored as a PEM keystore (private key + chain) that Kafka reads
  with ``ssl.keystore.type=PEM``; made with the ``openssl`` command line;
- one random password per principal (``admin`` plus :data:`COMPONENT_PRINCIPALS`), kept in
  :class:`pydantic.SecretStr` so that no ``repr`` shows them.

:meth:`SecuritySetup.broker_overrides` turns a node's client listener into ``SASL_SSL`` with
SCRAM-SHA-512 (also used between brokers, as ``admin``), keeps the KRaft controller listener
``PLAINTEXT`` on loopback, and enables ``StandardAuthorizer`` with ``admin`` as super user.
:meth:`SecuritySetup.format_args` are the ``kafka-storage format --add-scram`` arguments that
create every user before the first start (KIP-900).

:func:`component_acls` is the ACL table of ``docs/security.md`` as data, and
:func:`apply_acls` creates it with confluent-kafka's ``AdminClient.create_acls`` and waits
until the broker's authorizer shows every binding.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from orchestrator.kafka_admin import admin_client
from orchestrator.localkafka.jars import require_tool
from schemas.kafka_config import ConfigValue
from schemas.queues import QueueClass
from schemas.settings import KafkaSecurity, SecurityProtocol
from schemas.topics import TopicNames

MECHANISM = "SCRAM-SHA-512"
ADMIN = "admin"
COMPONENT_PRINCIPALS = ("worker", "controller", "queue-state", "dashboard", "publisher")
"""The SCRAM users the components connect as (``User:<name>`` in ACLs)."""
CERT_DAYS = 2
"""Test certificates live two days: long enough for any run, useless afterwards."""


class CertificateError(RuntimeError):
    """``openssl`` failed; the message holds its output."""


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """A CA certificate (what clients trust) and its private key (what signs)."""

    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        [require_tool("openssl"), *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise CertificateError(f"openssl {args[0]} failed:\n{result.stdout}{result.stderr}")


_EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-noenc")


def make_ca(directory: Path, name: str = "ca") -> CertificateAuthority:
    """A new self-signed CA (P-256 key) as ``<name>.pem`` and ``<name>.key`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl(
        "req", "-x509", *_EC_KEY, "-keyout", key.name, "-out", cert.name,
        "-days", str(CERT_DAYS), "-subj", f"/CN=modq test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    key.chmod(0o600)
    return CertificateAuthority(cert, key)


def issue_keystore(
    ca: CertificateAuthority, directory: Path, name: str = "broker", hosts: Iterable[str] = ()
) -> Path:
    """A server certificate for ``127.0.0.1``/``localhost`` (+ ``hosts``) signed by ``ca``.

    Returns a PEM keystore file: the unencrypted PKCS#8 key, the certificate and the CA's,
    the layout Kafka's ``ssl.keystore.type=PEM`` expects in ``ssl.keystore.location``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    key, csr, crt = (directory / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
    sans = ["IP:127.0.0.1", "DNS:localhost", *(f"DNS:{h}" for h in hosts)]
    ext = directory / f"{name}.ext"
    ext.write_text(
        f"subjectAltName={','.join(sans)}\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n",
        "utf-8",
    )
    _openssl(
        "req", "-new", *_EC_KEY, "-keyout", key.name, "-out", csr.name, "-subj", "/CN=localhost",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", csr.name, "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-CAcreateserial", "-out", crt.name, "-days", str(CERT_DAYS), "-extfile", ext.name,
        cwd=directory,
    )  # fmt: skip
    keystore = directory / f"{name}-keystore.pem"
    keystore.write_text(
        key.read_text("utf-8") + crt.read_text("utf-8") + ca.cert.read_text("utf-8"), "utf-8"
    )
    keystore.chmod(0o600)
    key.chmod(0o600)
    return keystore


@dataclass(frozen=True)
class SecuritySetup:
    """Everything a SASL_SSL + SCRAM-SHA-512 + ACL local broker and its clients need."""

    ca_cert: Path
    keystore: Path
    passwords: Mapping[str, SecretStr] = field(repr=False)
    """SCRAM password of every user, ``admin`` included."""

    def password(self, user: str) -> SecretStr:
        """``user``'s password (``KeyError`` for an unknown user)."""
        return self.passwords[user]

    def broker_overrides(
        self, port: int, controller_port: int, advertised_port: int | None = None
    ) -> dict[str, str]:
        """server.properties entries that secure one combined broker+controller node.

        Merged over :func:`orchestrator.localkafka.cluster.broker_properties`: the client
        listener (``port``) speaks SASL_SSL and is also the inter-broker listener (brokers
        authenticate as ``admin``); the controller listener stays PLAINTEXT on loopback.
        """
        admin_pw = self.password(ADMIN).get_secret_value()
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{ADMIN}" password="{admin_pw}";'
        )
        return {
            "listeners": (f"SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}"),
            "advertised.listeners": f"SASL_SSL://127.0.0.1:{advertised_port or port}",
            "inter.broker.listener.name": "SASL_SSL",
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config": jaas,
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_cert),
            "ssl.client.auth": "none",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            # The broker reaches the controller over the loopback PLAINTEXT controller
            # listener as ANONYMOUS, which KRaft's authorizer must let in (see docs/security.md).
            "super.users": f"User:{ADMIN};User:ANONYMOUS",
            "allow.everyone.if.no.acl.found": "false",
        }

    def format_args(self) -> list[str]:
        """``kafka-storage format`` arguments that create every SCRAM user (KIP-900)."""
        args: list[str] = []
        for user, password in sorted(self.passwords.items()):
            args += [
                "--add-scram",
                f"{MECHANISM}=[name={user},password={password.get_secret_value()}]",
            ]
        return args

    def kafka_security(self, user: str, *, password: SecretStr | None = None) -> KafkaSecurity:
        """modq's client settings for ``user`` (``password`` overrides the real one)."""
        return KafkaSecurity(
            protocol=SecurityProtocol.SASL_SSL,
            sasl_mechanism=MECHANISM,
            sasl_username=user,
            sasl_password=password if password is not None else self.password(user),
            ssl_ca_location=self.ca_cert,
        )

    def client_config(self, bootstrap: str, user: str = ADMIN) -> dict[str, ConfigValue]:
        """librdkafka options to connect to ``bootstrap`` as ``user``."""
        return {
            "bootstrap.servers": bootstrap,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": MECHANISM,
            "sasl.username": user,
            "sasl.password": self.password(user).get_secret_value(),
            "ssl.ca.location": str(self.ca_cert),
        }


def prepare(directory: Path, users: Iterable[str] = COMPONENT_PRINCIPALS) -> SecuritySetup:
    """A CA, a broker keystore and a random password per user (``admin`` always included)."""
    tls = directory / "tls"
    ca = make_ca(tls)
    keystore = issue_keystore(ca, tls)
    names = dict.fromkeys((ADMIN, *users))
    passwords = {name: SecretStr(secrets.token_urlsafe(18)) for name in names}
    return SecuritySetup(ca_cert=ca.cert, keystore=keystore, passwords=passwords)


# --- ACLs -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AclRule:
    """``principal`` may do ``operations`` on the resource(s) ``resource_type``/``name``.

    ``pattern`` is ``literal`` (exactly that name) or ``prefixed`` (every name starting with
    it). Resource types are Kafka's: ``topic``, ``group``, ``transactional_id``.
    """

    principal: str
    resource_type: str
    name: str
    operations: tuple[str, ...]
    pattern: str = "literal"


def component_acls(topic_prefix: str = "forum.") -> tuple[AclRule, ...]:
    """The ACLs of ``docs/security.md``: least privilege per component, for one prefix.

    READ and WRITE imply DESCRIBE in Kafka; DESCRIBE is listed anyway where a client needs
    metadata or offsets only.
    """
    names = TopicNames.from_prefix(topic_prefix)
    p = names.prefix
    subs = names.submission_topics()
    worker_groups = tuple(f"{p}modq.{c.value}" for c in QueueClass)  # one group per class
    queue_state_app = f"{p}modq-queue-state"
    rules: list[AclRule] = []
    # The publisher principal is a forum back end: it writes submissions, reads decisions.
    rules += [AclRule("publisher", "topic", t, ("WRITE", "DESCRIBE")) for t in subs]
    rules += [
        AclRule("publisher", "topic", names.decisions, ("READ", "DESCRIBE")),
        AclRule("publisher", "group", f"{p}backend.", ("READ", "DESCRIBE"), "prefixed"),
    ]
    rules += [AclRule("worker", "topic", t, ("READ", "DESCRIBE")) for t in subs]
    rules += [
        AclRule("worker", "topic", names.decisions, ("WRITE", "DESCRIBE")),
        AclRule("worker", "topic", names.dlq, ("WRITE", "DESCRIBE")),
        AclRule("worker", "topic", names.control, ("READ", "WRITE", "DESCRIBE")),
        AclRule("worker", "transactional_id", f"{p}modq.", ("WRITE", "DESCRIBE"), "prefixed"),
    ]
    rules += [AclRule("worker", "group", g, ("READ", "DESCRIBE")) for g in worker_groups]
    # `modq status` runs as the controller, so it may also describe every topic's configs.
    status = ("DESCRIBE", "DESCRIBE_CONFIGS")
    rules += [AclRule("controller", "topic", t, ("READ", *status)) for t in subs]
    rules += [
        AclRule("controller", "topic", names.decisions, status),
        AclRule("controller", "topic", names.dlq, status),
        AclRule("controller", "topic", names.visualization, ("WRITE", *status)),
        AclRule("controller", "topic", names.control, ("READ", "WRITE", *status)),
        AclRule("controller", "group", f"{p}modq.controllers", ("READ", "DESCRIBE")),
    ]
    rules += [AclRule("controller", "group", g, ("DESCRIBE",)) for g in worker_groups]
    rules += [
        AclRule("queue-state", "topic", t, ("READ", "DESCRIBE")) for t in (*subs, names.decisions)
    ]
    rules += [
        AclRule("queue-state", "topic", names.visualization, ("WRITE", "DESCRIBE")),
        AclRule("queue-state", "group", queue_state_app, ("READ", "DESCRIBE")),
        # faust's own topics: table changelogs and the assignor's leader topic, created by it.
        AclRule(
            "queue-state", "topic", f"{queue_state_app}-",
            ("CREATE", "READ", "WRITE", "DESCRIBE", "DESCRIBE_CONFIGS"), "prefixed",
        ),
    ]  # fmt: skip
    rules.append(AclRule("dashboard", "topic", names.visualization, ("READ", "DESCRIBE")))
    return tuple(rules)


def _bindings(rules: Iterable[AclRule]) -> list[Any]:
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    bindings = [
        AclBinding(
            ResourceType[rule.resource_type.upper()],
            rule.name,
            ResourcePatternType[rule.pattern.upper()],
            f"User:{rule.principal}",
            "*",
            AclOperation[operation],
            AclPermissionType.ALLOW,
        )
        for rule in rules
        for operation in rule.operations
    ]
    return list(dict.fromkeys(bindings))  # the same grant may come from two rules


def apply_acls(
    config: Mapping[str, ConfigValue], rules: Iterable[AclRule], timeout: float = 30.0
) -> int:
    """Create the bindings of ``rules`` (as a super user's ``config``); returns how many.

    Returns once the broker's authorizer lists every binding (``describe_acls`` answers from
    the broker's own copy of the metadata), so a client started next is already subject to it.
    """
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    admin = admin_client(config)
    wanted = _bindings(rules)
    for future in admin.create_acls(wanted, request_timeout=timeout).values():
        future.result(timeout=timeout)
    anything: Any = None  # a wildcard in a filter (the stubs type these arguments as str)
    everything = AclBindingFilter(
        ResourceType.ANY, anything, ResourcePatternType.ANY, anything, anything,
        AclOperation.ANY, AclPermissionType.ANY,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:
        seen = set(admin.describe_acls(everything, request_timeout=timeout).result(timeout))
        missing = [b for b in wanted if b not in seen]
        if not missing:
            return len(wanted)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(missing)} ACL(s) not visible after {timeout:.0f} s")
        time.sleep(0.1)  # polling the authorizer's state with a deadline
