"""Security: bearer tokens with roles on every RPC, the token store and its CLI, TLS and
mutual TLS with a CA the tests make, a follower of a token-protected primary, and the
refusal to expose a non-loopback address without TLS and tokens."""

from __future__ import annotations

import datetime
import errno
import ipaddress
import os
import pathlib
import subprocess
import sys

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from metaserver.channel import Credentials
from metaserver.client import Client, RetryPolicy
from metaserver.ops import OPS
from metaserver.service.auth import Role, create_token, required_role
from metaserver.service.codec import OPERATIONS, SERVICE
from metaserver.service.config import ConfigError, ServerConfig
from metaserver.service.errors import ERRNO_KEY
from metaserver.service.info import SERVICE as INFO_SERVICE
from metaserver.service.server import StartError, start
from metaserver.testing import free_port
from metaserver.testing.metaserver_process import wait_for
from metaserver.v1 import replication_pb2

REPLICATION = replication_pb2.DESCRIPTOR.services_by_name["Replication"]
NO_RETRY = RetryPolicy(attempts=1)


@pytest.fixture
def store(tmp_path):
    """A token store with one token per role; (path, {role: token})."""
    path = str(tmp_path / "tokens.json")
    return path, {role: create_token(path, [role], f"test-{role.value}")[1] for role in Role}


@pytest.fixture
def server(store):
    srv = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0", token_store=store[0]))
    yield srv
    srv.stop()


def _call(channel, service, method, token: str | None, timeout: float = 5):
    """One call of `method` with an empty request; the RpcError, or None if it passed."""
    path = f"/{service.full_name}/{method.name}"
    metadata = [("authorization", f"Bearer {token}")] if token is not None else []
    try:
        if method.server_streaming:
            replies = channel.unary_stream(path)(b"", timeout=timeout, metadata=metadata)
            next(iter(replies), None)
            replies.cancel()
        else:
            channel.unary_unary(path)(b"", timeout=timeout, metadata=metadata)
    except grpc.RpcError as exc:
        return exc
    return None


def _errno(exc: grpc.RpcError) -> int:
    return int(dict(exc.trailing_metadata())[ERRNO_KEY])


def test_roles_are_derived_from_the_api():
    for spec in OPERATIONS.values():
        op = OPS[spec.op]
        expected = Role.ADMIN if op.admin else Role.WRITE if op.mutating else Role.READ
        assert required_role(f"/{SERVICE.full_name}/{spec.rpc}") is expected, spec.rpc
    assert required_role(f"/{SERVICE.full_name}/SetQuota") is Role.ADMIN
    assert required_role(f"/{SERVICE.full_name}/Batch") is Role.READ   # then by its ops
    assert required_role(f"/{SERVICE.full_name}/Echo") is Role.READ
    assert required_role(f"/{SERVICE.full_name}/SomeRpcAddedLater") is Role.WRITE
    repl = f"/{REPLICATION.full_name}/"
    assert [required_role(repl + m) for m in ("Stream", "Snapshot", "Fence", "Status", "Promote")
            ] == [Role.REPLICATION] * 3 + [Role.READ, Role.ADMIN]
    assert required_role(f"/{INFO_SERVICE.full_name}/Info") is Role.READ
    assert required_role("/some.Other/Thing") is Role.ADMIN
    assert required_role("/grpc.health.v1.Health/Check") is None


def test_every_rpc_is_refused_without_the_right_role(server, store):
    _, tokens = store
    # Whom each role's token may call, besides itself.
    grants = {Role.READ: {Role.READ}, Role.WRITE: {Role.READ, Role.WRITE},
              Role.REPLICATION: {Role.READ, Role.REPLICATION}, Role.ADMIN: set(Role)}
    with grpc.insecure_channel(server.address) as channel:
        for service in (SERVICE, REPLICATION, INFO_SERVICE):
            for method in service.methods:
                needed = required_role(f"/{service.full_name}/{method.name}")
                assert needed is not None
                for token in (None, "bogus.token", tokens[Role.READ].split(".")[0] + ".x"):
                    exc = _call(channel, service, method, token)
                    assert exc.code() == grpc.StatusCode.UNAUTHENTICATED, method.name
                    assert _errno(exc) == errno.EACCES
                for role, token in tokens.items():
                    exc = _call(channel, service, method, token)
                    if needed in grants[role]:
                        assert exc is None or exc.code() not in (
                            grpc.StatusCode.UNAUTHENTICATED,
                            grpc.StatusCode.PERMISSION_DENIED), (method.name, role)
                    else:
                        assert exc.code() == grpc.StatusCode.PERMISSION_DENIED, \
                            (method.name, role)
                        assert _errno(exc) == errno.EPERM


def test_health_and_reflection_stay_open(server):
    with grpc.insecure_channel(server.address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                          timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        exc = _call(channel, type("S", (), {"full_name": "grpc.reflection.v1alpha."
                                            "ServerReflection"}),
                    type("M", (), {"name": "ServerReflectionInfo", "server_streaming": False}),
                    None)
        # A bidi stream called as unary: the method is found and not refused for a token.
        assert exc is None or exc.code() not in (grpc.StatusCode.UNAUTHENTICATED,
                                                 grpc.StatusCode.PERMISSION_DENIED)


def test_client_library_token_roles_and_env(server, store, monkeypatch):
    _, tokens = store
    monkeypatch.delenv("METASERVER_TOKEN", raising=False)
    with Client(server.address, retry=NO_RETRY) as anonymous:
        with pytest.raises(PermissionError) as info:
            anonymous.resolve(b"/")
        assert info.value.errno == errno.EACCES
    with Client(server.address, token=tokens[Role.READ], retry=NO_RETRY) as reader:
        assert reader.resolve(b"/").ino == 1
        with pytest.raises(PermissionError) as info:
            reader.mkdir(1, b"d")
        assert info.value.errno == errno.EPERM
    with Client(server.address, token=tokens[Role.READ], retry=NO_RETRY) as reader:
        lookups = reader.batch()
        lookups.lookup(1, b"nothing").getattr(1)
        missing, root = lookups.run()
        assert isinstance(missing, FileNotFoundError) and root.ino == 1
        mixed = reader.batch().getattr(1).mkdir(1, b"d")
        with pytest.raises(PermissionError) as info:
            mixed.run()
        assert info.value.errno == errno.EPERM
    with Client(server.address, token=tokens[Role.WRITE], retry=NO_RETRY) as writer:
        # A writer may not lift the limits it writes under, alone or inside a Batch.
        quota_dir = writer.mkdir(1, b"limited").ino
        for attempt in (lambda: writer.set_quota(quota_dir, max_inodes=10),
                        writer.batch().mkdir(1, b"more").set_quota(quota_dir, max_inodes=10).run):
            with pytest.raises(PermissionError) as info:
                attempt()
            assert info.value.errno == errno.EPERM
        assert writer.batch().mkdir(1, b"more").run()[0].ino > 1
    with Client(server.address, token=tokens[Role.ADMIN], retry=NO_RETRY) as admin:
        assert admin.set_quota(quota_dir, max_inodes=10).max_inodes == 10
    monkeypatch.setenv("METASERVER_TOKEN", tokens[Role.WRITE])
    with Client(server.address, retry=NO_RETRY) as writer:
        writer.mkdir(1, b"d")
        assert writer.resolve(b"/d").type.name == "DIRECTORY"


METACTL = str(pathlib.Path(sys.executable).parent / "metactl")


def _metactl(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("METASERVER_TOKEN")}
    return subprocess.run([METACTL, *args], capture_output=True, text=True, timeout=60,
                          env=env)


def test_metactl_token_commands_and_revocation(server, store, tmp_path):
    path, tokens = store
    made = _metactl("token", "create", "--store", path, "--role", "write", "--name", "ci")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    token_id = token.split(".")[0]
    listed = _metactl("token", "list", "--store", path)
    assert token_id in listed.stdout and "ci" in listed.stdout
    assert token.split(".")[1] not in open(path).read()      # only the hash is kept
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    ok = _metactl("--server", server.address, "--token-file", str(token_file), "mkdir", "/m")
    assert ok.returncode == 0, ok.stderr
    refused = _metactl("--server", server.address, "mkdir", "/n")
    assert refused.returncode == 1 and "Permission denied" in refused.stderr
    assert _metactl("token", "revoke", token_id, "--store", path).returncode == 0
    with Client(server.address, token=token, retry=NO_RETRY) as client:
        def refused_now():
            try:
                client.resolve(b"/m")
            except PermissionError:
                return True
            return False
        wait_for(refused_now, timeout=10, what="revocation to take effect")
    bad = _metactl("token", "create", "--store", path, "--role", "root")
    assert bad.returncode == 1 and "--role must be one of" in bad.stderr


def test_non_loopback_needs_tls_and_tokens_or_the_explicit_flag(store, tmp_path):
    with pytest.raises(ConfigError, match="reachable from other machines"):
        ServerConfig(meta_url="memory://", listen="0.0.0.0:7420")
    with pytest.raises(ConfigError, match="reachable from other machines"):
        ServerConfig(meta_url="memory://", listen="10.1.2.3:7420", token_store=store[0])
    ServerConfig(meta_url="memory://", listen="0.0.0.0:7420", allow_insecure_network=True)
    ServerConfig(meta_url="memory://", listen="0.0.0.0:7420", token_store=store[0],
                 tls_cert="c.pem", tls_key="k.pem")
    with pytest.raises(StartError, match="does not exist"):
        start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0",
                           token_store=str(tmp_path / "missing.json")))


# --- TLS ---------------------------------------------------------------------------------

def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _cert(subject: str, key, issuer_cert, issuer_key, *, ca: bool, usage=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name)
               .issuer_name(issuer_cert.subject if issuer_cert else name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate: file paths."""
    root = tmp_path_factory.mktemp("pki")
    ca_key = _key()
    ca = _cert("metaserver test CA", ca_key, None, None, ca=True)
    files = {"ca": ca}
    keys = {}
    for who, usage in (("server", ExtendedKeyUsageOID.SERVER_AUTH),
                       ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
        keys[who] = _key()
        files[who] = _cert(f"metaserver test {who}", keys[who], ca, ca_key, ca=False,
                           usage=usage)
    paths = {}
    for who, cert in files.items():
        paths[who] = root / f"{who}.pem"
        paths[who].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    for who, key in keys.items():
        paths[f"{who}-key"] = root / f"{who}-key.pem"
        paths[f"{who}-key"].write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
    return {k: str(v) for k, v in paths.items()}


def test_tls_serves_verified_clients_and_refuses_plaintext(pki):
    probe = f"127.0.0.1:{free_port()}"
    srv = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0", health_listen=probe,
                             tls_cert=pki["server"], tls_key=pki["server-key"]))
    try:
        # The probe port answers health in plaintext (kubelet gRPC probes) and nothing else.
        with grpc.insecure_channel(probe) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                              timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            exc = _call(channel, SERVICE, SERVICE.methods_by_name["Echo"], None)
            assert exc.code() == grpc.StatusCode.UNIMPLEMENTED
        with Client(srv.address, credentials=Credentials(ca_file=pki["ca"])) as client:
            assert client.echo(b"hi") == b"hi"
        with Client(srv.address, retry=NO_RETRY, timeout=3) as plain:
            with pytest.raises(OSError):
                plain.echo(b"hi")
        # A CA that did not sign the server's certificate: refused.
        with Client(srv.address, retry=NO_RETRY, timeout=3,
                    credentials=Credentials(ca_file=pki["client"])) as wrong_ca:
            with pytest.raises(OSError):
                wrong_ca.echo(b"hi")
    finally:
        srv.stop()


def test_mutual_tls_needs_a_client_certificate_from_the_ca(pki):
    srv = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0",
                             tls_cert=pki["server"], tls_key=pki["server-key"],
                             tls_client_ca=pki["ca"]))
    try:
        with Client(srv.address, credentials=Credentials(
                ca_file=pki["ca"], cert_file=pki["client"], key_file=pki["client-key"])) as c:
            assert c.echo(b"hi") == b"hi"
        with Client(srv.address, retry=NO_RETRY, timeout=3,
                    credentials=Credentials(ca_file=pki["ca"])) as anonymous:
            with pytest.raises(OSError):
                anonymous.echo(b"hi")
    finally:
        srv.stop()


def test_follower_with_a_replication_token_follows_a_protected_primary(store, pki):
    path, tokens = store
    primary = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0", token_store=path,
                                 tls_cert=pki["server"], tls_key=pki["server-key"]))
    token_file = f"{path}.replication"
    with open(token_file, "w") as f:
        f.write(tokens[Role.REPLICATION])
    follower = None
    try:
        with Client(primary.address, token=tokens[Role.WRITE],
                    credentials=Credentials(ca_file=pki["ca"])) as writer:
            writer.mkdir(1, b"before")
            follower = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0",
                                          token_store=path, follow=primary.address,
                                          follow_token_file=token_file,
                                          follow_tls_ca=pki["ca"]))
            writer.mkdir(1, b"after")
            with Client(follower.address, token=tokens[Role.WRITE]) as via_follower:
                wait_for(lambda: _exists(via_follower, b"/after"), what="replicated mkdir")
                assert _exists(via_follower, b"/before")
                # A write through the follower is forwarded with the client's own token.
                via_follower.mkdir(1, b"forwarded")
                assert writer.resolve(b"/forwarded").ino
            with Client(follower.address, token=tokens[Role.READ], retry=NO_RETRY) as reader:
                with pytest.raises(PermissionError):
                    reader.mkdir(1, b"refused")
    finally:
        if follower is not None:
            follower.stop()
        primary.stop()


def test_a_follower_without_the_replication_role_cannot_bootstrap(store):
    path, tokens = store
    primary = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0", token_store=path))
    token_file = f"{path}.read"
    with open(token_file, "w") as f:
        f.write(tokens[Role.READ])
    try:
        with pytest.raises(StartError, match="PERMISSION_DENIED"):
            start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0",
                               follow=primary.address, follow_token_file=token_file))
    finally:
        primary.stop()


def _exists(client: Client, path: bytes) -> bool:
    try:
        client.resolve(path)
    except FileNotFoundError:
        return False
    return True


def test_metabench_takes_a_token(server, store, tmp_path, capsys, monkeypatch):
    from metabench import cli
    monkeypatch.delenv("METASERVER_TOKEN", raising=False)
    monkeypatch.delenv("METASERVER_TOKEN_FILE", raising=False)
    _, tokens = store
    token_file = tmp_path / "token"
    token_file.write_text(tokens[Role.WRITE] + "\n")
    argv = ["-n", "20", "-F", "--server", server.address]
    assert cli.main([*argv, "--token-file", str(token_file)]) == 0
    assert cli.main([*argv, "--token", tokens[Role.WRITE]]) == 0
    assert cli.main([*argv, "--token", tokens[Role.READ]]) != 0     # cannot create
    capsys.readouterr()
    assert cli.main(argv) == 2                                        # no token at all
    assert "refused: /metaserver.v1.Metadata/Echo needs a token" in capsys.readouterr().err


@pytest.mark.parametrize("content, says", [
    ("not json", "is damaged"),
    ('{"tokens": [{"id": "a", "name": "", "roles": ["root"], "sha256": "", "created": ""}]}',
     "is damaged: 'root' is not a valid Role"),
])
def test_a_damaged_token_store_stops_the_start(tmp_path, content, says):
    path = tmp_path / "tokens.json"
    path.write_text(content)
    with pytest.raises(StartError, match=says):
        start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0", token_store=str(path)))


def test_switchover_under_tokens_needs_admin_and_fences_with_the_replication_token(store):
    path, tokens = store
    old = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0", token_store=path))
    token_file = f"{path}.replication"
    with open(token_file, "w") as f:
        f.write(tokens[Role.REPLICATION])
    new = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0", token_store=path,
                             follow=old.address, follow_token_file=token_file))
    try:
        with Client(old.address, token=tokens[Role.WRITE]) as writer:
            writer.mkdir(1, b"before")
        wait_for(lambda: new.node.follower.applied >= old.engine.last_seq(), what="catch-up")
        for role in (Role.WRITE, Role.REPLICATION):
            refused = _metactl("--server", new.address, "--token", tokens[role], "promote")
            assert refused.returncode == 1 and "PERMISSION_DENIED" in refused.stderr
        done = _metactl("--server", new.address, "--token", tokens[Role.ADMIN], "promote")
        assert done.returncode == 0, done.stderr
        with Client(old.address, token=tokens[Role.WRITE], retry=NO_RETRY) as stale:
            with pytest.raises(OSError) as info:    # the old primary was fenced
                stale.mkdir(1, b"after")
            assert info.value.errno == errno.EROFS, info.value
        with Client(new.address, token=tokens[Role.WRITE]) as writer:
            writer.mkdir(1, b"after")
            assert _exists(writer, b"/before")
    finally:
        new.stop()
        old.stop()
