"""A real Kubernetes control plane (etcd + kube-apiserver, like controller-runtime's envtest) for tests.

No kubelet, scheduler nor controller-manager: objects are stored, validated (CRD schemas, CEL), admitted and
authorized (RBAC) by the real API server, but nothing runs them; deleted namespaces stay Terminating.
The client identity in the kubeconfig is a client certificate in group system:masters (cluster-admin);
other identities can be tried through impersonation (`Impersonate-User` headers) so RBAC really applies.
Binaries, CRDs: `bash scripts/tools.sh kube` (see scripts/tools/40-kube.sh).
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .process import LocalService, ServiceProcess, free_port, http_ok
from .tools import ToolMissingError, binary, tools_dir

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"  # virtual service IPs: only allocated, never routed to
ADMIN_USER = "ingestion-observability-admin"
ADMIN_GROUPS = ("system:masters",)
FIELD_MANAGER = "ingestion-observability"
CRD_API = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


try:
    from yaml import CSafeLoader as _SafeLoader  # libyaml: far faster on the big CRDs
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]


class _ManifestLoader(_SafeLoader):
    """SafeLoader without YAML 1.1's `=` "value" tag, which Go's YAML (and so Kubernetes) reads as a plain
    string: prometheus-operator's CRDs have `enum: [..., =, ...]`, which PyYAML's SafeLoader refuses."""


_ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:value"]
    for first, resolvers in _SafeLoader.yaml_implicit_resolvers.items()
}


def load_manifests(text: str) -> list[Any]:
    """All documents of a Kubernetes YAML manifest (empty documents dropped)."""
    return [doc for doc in yaml.load_all(text, Loader=_ManifestLoader) if doc is not None]


class KubeApiError(RuntimeError):
    """The API server answered with an HTTP error: `status` is the code, `body` the decoded Status."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        message = body.get("message", body) if isinstance(body, dict) else body
        super().__init__(f"{method} {path}: HTTP {status}: {message}")
        self.status = status
        self.body = body


# --- certificates ---------------------------------------------------------------------------------------


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _cert(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    sans: Sequence[x509.GeneralName] = (),
    usage: Sequence[x509.ObjectIdentifier] = (),
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usage)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


class ControlPlaneCerts:
    """The files of a throwaway PKI in `directory`: a CA, the API server's serving certificate (for
    127.0.0.1/localhost and the in-cluster names), an admin client certificate (O=system:masters), and
    the RSA key pair that signs service-account tokens."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca_cert = directory / "ca.crt"
        self.serving_cert = directory / "apiserver.crt"
        self.serving_key = directory / "apiserver.key"
        self.client_cert = directory / "admin.crt"
        self.client_key = directory / "admin.key"
        self.sa_key = directory / "sa.key"
        self.sa_pub = directory / "sa.pub"

    @classmethod
    def generate(cls, directory: Path, service_ip: str = "10.0.0.1") -> ControlPlaneCerts:
        """`service_ip`: the `kubernetes` Service's address, which pods reach the API server at."""
        directory.mkdir(parents=True, exist_ok=True)
        certs = cls(directory)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ingestion-observability-test-ca")])
        ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)

        serving_key = ec.generate_private_key(ec.SECP256R1())
        dns = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"]
        dns.append("kubernetes.default.svc.cluster.local")
        sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", service_ip)]
        serving = _cert(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
            serving_key,
            ca_name,
            ca_key,
            sans=sans,
            usage=[ExtendedKeyUsageOID.SERVER_AUTH],
        )

        client_key = ec.generate_private_key(ec.SECP256R1())
        client_name = [x509.NameAttribute(NameOID.COMMON_NAME, ADMIN_USER)]
        client_name += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in ADMIN_GROUPS]
        client = _cert(
            x509.Name(client_name), client_key, ca_name, ca_key, usage=[ExtendedKeyUsageOID.CLIENT_AUTH]
        )

        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        certs.ca_cert.write_bytes(_pem_cert(ca))
        certs.serving_cert.write_bytes(_pem_cert(serving))
        certs.serving_key.write_bytes(_pem_key(serving_key))
        certs.client_cert.write_bytes(_pem_cert(client))
        certs.client_key.write_bytes(_pem_key(client_key))
        certs.sa_key.write_bytes(_pem_key(sa_key))
        certs.sa_pub.write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        for key_file in (certs.serving_key, certs.client_key, certs.sa_key):
            key_file.chmod(0o600)
        return certs

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts only the test CA and presents the admin client certificate."""
        context = ssl.create_default_context(cafile=str(self.ca_cert))
        context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


def write_kubeconfig(path: Path, url: str, certs: ControlPlaneCerts, namespace: str = "default") -> None:
    """A self-contained kubeconfig (certificates inlined) whose current context is the admin on `url`."""

    def b64(file: Path) -> str:
        return base64.b64encode(file.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "local", "cluster": {"server": url, "certificate-authority-data": b64(certs.ca_cert)}}
        ],
        "users": [
            {
                "name": ADMIN_USER,
                "user": {
                    "client-certificate-data": b64(certs.client_cert),
                    "client-key-data": b64(certs.client_key),
                },
            }
        ],
        "contexts": [
            {"name": "local", "context": {"cluster": "local", "user": ADMIN_USER, "namespace": namespace}}
        ],
        "current-context": "local",
        "preferences": {},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


# --- the control plane ----------------------------------------------------------------------------------


def etcd_argv(etcd: Path, data_dir: Path, client_port: int, peer_port: int) -> list[str]:
    client = f"http://127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    return [
        str(etcd),
        "--name=default",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        "--initial-cluster-state=new",
        "--unsafe-no-fsync=true",  # test data only: as envtest, trade durability for speed
        "--log-level=warn",
    ]


def service_ip(service_cidr: str) -> str:
    """The `kubernetes` Service's address: the first of the service range."""
    return str(ipaddress.ip_network(service_cidr)[1])


def apiserver_argv(
    apiserver: Path,
    certs: ControlPlaneCerts,
    port: int,
    etcd_url: str,
    *,
    address: str | None = None,
    service_cidr: str = SERVICE_CLUSTER_IP_RANGE,
    kubelets: bool = False,
    extra: Sequence[str] = (),
) -> list[str]:
    """The API server's command line; see KubeControlPlane.start for `address`, `kubelets` and `extra`."""
    url = f"https://127.0.0.1:{port}"
    # Without `address`, loopback only: 127.0.0.1 is not a valid Endpoints address, so no reconciler.
    bind, advertise, endpoints = (
        ("0.0.0.0", address, "lease") if address else ("127.0.0.1", "127.0.0.1", "none")
    )
    flags = [
        f"--bind-address={bind}",
        f"--advertise-address={advertise}",
        f"--endpoint-reconciler-type={endpoints}",
        f"--secure-port={port}",
        f"--etcd-servers={etcd_url}",
        f"--tls-cert-file={certs.serving_cert}",
        f"--tls-private-key-file={certs.serving_key}",
        f"--client-ca-file={certs.ca_cert}",
        f"--service-account-key-file={certs.sa_pub}",
        f"--service-account-signing-key-file={certs.sa_key}",
        f"--service-account-issuer={url}",
        f"--service-cluster-ip-range={service_cidr}",
        "--authorization-mode=RBAC",
        # Without kubelets, no controller-manager creates service accounts' tokens: pods would be refused.
        f"--disable-admission-plugins={'' if kubelets else 'ServiceAccount'}",
        "--allow-privileged=true",
    ]
    if kubelets:
        flags += [
            f"--kubelet-client-certificate={certs.client_cert}",
            f"--kubelet-client-key={certs.client_key}",
            # A node's name is not in any DNS: reach the kubelet at its address.
            "--kubelet-preferred-address-types=InternalIP",
        ]
    return [str(apiserver), *_override(flags, extra)]


def _flag_name(flag: str) -> str:
    return flag.split("=", 1)[0]


def _override(flags: Sequence[str], extra: Sequence[str]) -> list[str]:
    """`flags` with each of `extra` replacing the flag of its name (`--name=value`), or added."""
    replaced = {_flag_name(flag) for flag in extra}
    return [flag for flag in flags if _flag_name(flag) not in replaced] + list(extra)


class KubeControlPlane(LocalService):
    """etcd + kube-apiserver on free loopback ports; `stop()` (or leaving the `with` block) ends both.

    `kubeconfig` is a file for kubectl/helm/kopf/kubernetes clients (or `env()` for subprocesses);
    `request()` calls the REST API as cluster-admin.
    """

    def __init__(
        self,
        work_dir: Path,
        certs: ControlPlaneCerts,
        kubeconfig: Path,
        url: str,
        etcd_url: str,
        etcd: ServiceProcess,
        apiserver: ServiceProcess,
    ) -> None:
        self.work_dir = work_dir
        self.certs = certs
        self.kubeconfig = kubeconfig
        self.url = url
        self.etcd_url = etcd_url
        self.etcd = etcd
        self.apiserver = apiserver
        self._ssl = certs.ssl_context()

    @classmethod
    def start(
        cls,
        work_dir: Path,
        *,
        address: str | None = None,
        service_cidr: str = SERVICE_CLUSTER_IP_RANGE,
        kubelets: bool = False,
        apiserver_flags: Sequence[str] = (),
        timeout: float = 120.0,
    ) -> KubeControlPlane:
        """Generate certificates, start etcd (data in `work_dir/etcd`) and kube-apiserver, wait for /readyz.

        By default the API server is envtest's: on loopback only, no `kubernetes` Endpoints, no service
        account admission. For a node (devstack/node.py): `address`, where pods reach it (it then listens
        on every address, advertises this one and keeps the `kubernetes` Endpoints by lease); `service_cidr`,
        the Services' range (its first address, the `kubernetes` Service's, is in the serving certificate);
        `kubelets`, a controller-manager and kubelets run against it: service accounts get their tokens
        (ServiceAccount admission on) and the API server reaches the kubelets (logs, exec) at their
        InternalIP as the admin. Each `--name=value` of `apiserver_flags` replaces the flag of that name,
        or is added (e.g. "--feature-gates=...").
        """
        etcd_bin, apiserver_bin = binary("etcd"), binary("kube-apiserver")
        work_dir = Path(work_dir).resolve()
        work_dir.mkdir(parents=True, exist_ok=True)
        certs = ControlPlaneCerts.generate(work_dir / "pki", service_ip=service_ip(service_cidr))
        client_port, peer_port, port = free_port(), free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{client_port}"
        url = f"https://127.0.0.1:{port}"
        data_dir = work_dir / "etcd"
        data_dir.mkdir(mode=0o700, exist_ok=True)

        etcd = ServiceProcess(
            "etcd", etcd_argv(etcd_bin, data_dir, client_port, peer_port), work_dir / "etcd.log"
        )
        apiserver: ServiceProcess | None = None
        try:
            etcd.wait_until(lambda: http_ok(f"{etcd_url}/health"), timeout, "healthy")
            argv = apiserver_argv(
                apiserver_bin,
                certs,
                port,
                etcd_url,
                address=address,
                service_cidr=service_cidr,
                kubelets=kubelets,
                extra=apiserver_flags,
            )
            apiserver = ServiceProcess("kube-apiserver", argv, work_dir / "kube-apiserver.log")
            kubeconfig = work_dir / "kubeconfig"
            write_kubeconfig(kubeconfig, url, certs)
            plane = cls(work_dir, certs, kubeconfig, url, etcd_url, etcd, apiserver)
            apiserver.wait_until(plane.ready, timeout, "ready (/readyz)")
            return plane
        except BaseException:
            if apiserver is not None:
                apiserver.stop()
            etcd.stop()
            raise

    # -- lifecycle --

    def ready(self) -> bool:
        """True when GET /readyz answers 200 (all post-start hooks done, RBAC bootstrap roles in place)."""
        try:
            with self._open("GET", "/readyz", None, {}, timeout=5.0) as resp:
                return int(resp.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def alive(self) -> bool:
        return self.etcd.alive() and self.apiserver.alive()

    def stop(self) -> None:
        try:
            self.apiserver.stop()
        finally:
            self.etcd.stop()

    def env(self) -> dict[str, str]:
        """Environment for a subprocess (helm, kubectl, an operator) to talk to this control plane."""
        return {"KUBECONFIG": str(self.kubeconfig)}

    # -- REST --

    def _open(
        self, method: str, path: str, data: bytes | None, headers: Mapping[str, str], timeout: float
    ) -> Any:
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=dict(headers))
        return urllib.request.urlopen(req, context=self._ssl, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Any:
        """Call the API (`path` like "/api/v1/namespaces"); returns the decoded JSON answer.

        Raises KubeApiError on an HTTP error (`.status` 404, 409, 403 ...). `headers` may carry
        `Impersonate-User`/`Impersonate-Group` to act as another identity.
        """
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"Accept": "application/json", **(headers or {})}
        if data is not None:
            all_headers["Content-Type"] = content_type
        try:
            with self._open(method, path, data, all_headers, timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                decoded: Any = json.loads(raw)
            except ValueError:
                decoded = raw.decode(errors="replace")
            raise KubeApiError(method, path, err.code, decoded) from None
        return json.loads(raw) if raw else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def create(self, path: str, body: Mapping[str, Any]) -> Any:
        return self.request("POST", path, body)

    def apply(self, path: str, body: Mapping[str, Any], *, field_manager: str = FIELD_MANAGER) -> Any:
        """Server-side apply of `body` at `path` (the object's own URL), forcing conflicts."""
        query = urllib.parse.urlencode({"fieldManager": field_manager, "force": "true"})
        return self.request("PATCH", f"{path}?{query}", body, content_type="application/apply-patch+yaml")

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    # -- CRDs --

    def apply_crds(self, files: Iterable[Path], *, timeout: float = 60.0) -> list[str]:
        """Create or update every CustomResourceDefinition in `files` (YAML, several documents allowed),
        then wait until each is Established and its resources answer. Returns the CRD names."""
        crds: list[dict[str, Any]] = []
        for file in files:
            for doc in load_manifests(Path(file).read_text()):
                if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                    crds.append(doc)
        for crd in crds:
            self._put_crd(crd)
        names = [str(crd["metadata"]["name"]) for crd in crds]
        self.wait_crds_established(names, timeout=timeout)
        return names

    def _put_crd(self, crd: dict[str, Any]) -> None:
        # Create, else replace: as `kubectl create` / `kubectl replace`, which Strimzi documents for its CRDs.
        crd = {key: value for key, value in crd.items() if key != "status"}
        name = crd["metadata"]["name"]
        try:
            self.request("POST", CRD_API, crd)
        except KubeApiError as err:
            if err.status != 409:
                raise
            current = self.request("GET", f"{CRD_API}/{name}")
            crd["metadata"] = {**crd["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}
            self.request("PUT", f"{CRD_API}/{name}", crd)

    def wait_crds_established(self, names: Iterable[str], *, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for name in names:
            while True:
                crd = self.request("GET", f"{CRD_API}/{name}")
                if _established(crd) and self._serves(crd):
                    break
                if time.monotonic() > deadline:
                    status = crd.get("status")
                    raise TimeoutError(f"CRD {name} not Established after {timeout:.0f}s: {status}")
                time.sleep(0.1)

    def _serves(self, crd: Mapping[str, Any]) -> bool:
        spec = crd["spec"]
        for version in spec["versions"]:
            if version.get("served"):
                path = f"/apis/{spec['group']}/{version['name']}/{spec['names']['plural']}?limit=1"
                try:
                    self.request("GET", path)
                except KubeApiError as err:
                    if err.status == 404:
                        return False
                    raise
        return True


def _established(crd: Mapping[str, Any]) -> bool:
    # a CRD just created may report `status: {conditions: null}`
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def crd_files(*sets: str) -> list[Path]:
    """The CRD YAML files `scripts/tools.sh kube` put in the tools cache, e.g. crd_files("strimzi"),
    crd_files("prometheus-operator"); sorted by name, which is also Strimzi's install order."""
    files: list[Path] = []
    for name in sets:
        directory = tools_dir() / "crds" / name
        found = sorted(directory.glob("*.yaml"))
        if not found:
            raise ToolMissingError(f"no CRDs in {directory}: run `bash scripts/tools.sh kube`")
        files += found
    return files
