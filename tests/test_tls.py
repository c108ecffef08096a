"""TLS to a real registry: verified by default, a custom CA bundle, and opt-in insecure mode."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from support.registry import RegistryProcess
from test_push import make_file

from hoist.core.errors import NetworkError
from hoist.core.oci.reference import parse_reference
from hoist.core.registry.client import RegistryClient, TLSOptions
from hoist.core.transfer.push import TransferRun, plan_file_push

x509 = pytest.importorskip("cryptography.x509")


def self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hoist-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_registry(registry_factory, tmp_path: Path) -> tuple[RegistryProcess, Path]:  # type: ignore[no-untyped-def]
    cert, key = self_signed(tmp_path)
    reg = registry_factory(
        extra_config={"http": {"tls": {"certificate": str(cert), "key": str(key)}}}
    )
    return reg, cert


async def push(host: str, tls: TLSOptions, tmp: Path) -> str:
    target = parse_reference(f"{host}/tls/a:v1")
    transfer = plan_file_push(target, [make_file(tmp / "a.bin", 10_000)])
    async with RegistryClient(host, tls=tls) as client:
        return await TransferRun(transfer, client).run()


async def test_untrusted_certificate_is_refused_by_default(
    tls_registry: tuple[RegistryProcess, Path], state_dir: Path, tmp_path: Path
) -> None:
    reg, _ = tls_registry
    with pytest.raises(NetworkError) as info:
        await push(reg.host, TLSOptions(), tmp_path)
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value) or "certificate" in str(info.value)


async def test_custom_ca_bundle_is_trusted(
    tls_registry: tuple[RegistryProcess, Path], state_dir: Path, tmp_path: Path
) -> None:
    reg, cert = tls_registry
    digest = await push(reg.host, TLSOptions(ca_bundle=cert), tmp_path)
    assert digest.startswith("sha256:")


async def test_insecure_mode_is_an_explicit_opt_in(
    tls_registry: tuple[RegistryProcess, Path], state_dir: Path, tmp_path: Path
) -> None:
    reg, _ = tls_registry
    digest = await push(reg.host, TLSOptions(insecure=True), tmp_path)
    assert digest.startswith("sha256:")
