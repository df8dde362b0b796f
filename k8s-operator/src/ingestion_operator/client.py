"""The Kubernetes calls of the operator (the official client, blocking: kopf runs sync handlers in threads),
with objects as plain JSON data and API errors as `ApplyError`."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any, cast

import kubernetes
import urllib3
from kubernetes.client import (
    ApiClient,
    ApiException,
    BatchV1Api,
    CoreV1Api,
    CustomObjectsApi,
    V1ConfigMap,
)
from kubernetes.watch import Watch

from ingestion_operator.apply import ApplyError
from ingestion_operator.children import CONFIG_MAP, GROUP, PLURAL, VERSION, Kind
from ingestion_operator.jobrun import CONTROLLER_UID_LABELS

TIMEOUT = 30.0
FIELD_MANAGER = "ingestion-operator"


def load_client(pool_size: int) -> ApiClient:
    """In a pod, its service account; elsewhere, $KUBECONFIG or ~/.kube/config (current context)."""
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    configuration.connection_pool_maxsize = pool_size  # one connection per handler thread
    return ApiClient(configuration)


class KubeClient:
    """`reconcile.Api`: children as custom objects (PrometheusRule, AlertmanagerConfig) or ConfigMaps,
    Secret keys, CronJobs; `recorder.JobApi`: Jobs and their pods; plus source reads and status writes.

    Jobs, pods and CronJobs are read as plain JSON (`_preload_content=False`): the recorder works on the
    API's field names, as kopf gives them."""

    def __init__(self, api_client: ApiClient) -> None:
        self._custom = CustomObjectsApi(api_client)
        self._core = CoreV1Api(api_client)
        self._batch = BatchV1Api(api_client)

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        with _errors(f"get {kind.kind} {namespace}/{name}"):
            try:
                if kind == CONFIG_MAP:
                    return self._plain(
                        self._core.read_namespaced_config_map(name, namespace, _request_timeout=TIMEOUT)
                    )
                return self._custom_call("get_namespaced_custom_object", kind, namespace, name=name)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

    def create(self, kind: Kind, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        with _errors(f"create {kind.kind} {namespace}/{body['metadata']['name']}"):
            if kind == CONFIG_MAP:
                return self._plain(
                    self._core.create_namespaced_config_map(
                        namespace,
                        _config_map(body),
                        field_manager=FIELD_MANAGER,
                        _request_timeout=TIMEOUT,
                    )
                )
            return self._custom_call("create_namespaced_custom_object", kind, namespace, body=dict(body))

    def replace(self, kind: Kind, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        with _errors(f"replace {kind.kind} {namespace}/{name}"):
            if kind == CONFIG_MAP:
                return self._plain(
                    self._core.replace_namespaced_config_map(
                        name,
                        namespace,
                        _config_map(body),
                        field_manager=FIELD_MANAGER,
                        _request_timeout=TIMEOUT,
                    )
                )
            return self._custom_call(
                "replace_namespaced_custom_object", kind, namespace, name=name, body=dict(body)
            )

    def delete(self, kind: Kind, namespace: str, name: str, uid: str, resource_version: str) -> None:
        # Preconditions: never delete an object recreated or changed since it was judged.
        options = kubernetes.client.V1DeleteOptions(
            preconditions=kubernetes.client.V1Preconditions(uid=uid, resource_version=resource_version)
        )
        with _errors(f"delete {kind.kind} {namespace}/{name}"):
            try:
                if kind == CONFIG_MAP:
                    self._core.delete_namespaced_config_map(
                        name, namespace, body=options, _request_timeout=TIMEOUT
                    )
                else:
                    self._custom.delete_namespaced_custom_object(
                        kind.group,
                        kind.version,
                        namespace,
                        kind.plural,
                        name,
                        body=options,
                        _request_timeout=TIMEOUT,
                    )
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def get_source(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The IngestionSource `namespace/name`, or None when it is gone."""
        with _errors(f"get IngestionSource {namespace}/{name}"):
            try:
                return cast(
                    dict[str, Any],
                    self._custom.get_namespaced_custom_object(
                        GROUP, VERSION, namespace, PLURAL, name, _request_timeout=TIMEOUT
                    ),
                )
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

    def secret_keys(self, namespace: str, name: str) -> frozenset[str] | None:
        """The keys of a Secret that hold a value (`get` only: RBAC grants no list or watch). The values
        are dropped at once: the operator never needs a credential itself."""
        with _errors(f"get Secret {namespace}/{name}"):
            try:
                secret = self._core.read_namespaced_secret(name, namespace, _request_timeout=TIMEOUT)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
        return frozenset(key for key, value in (secret.data or {}).items() if value)

    def list_cronjobs(self, namespace: str) -> list[dict[str, Any]]:
        with _errors(f"list CronJobs in {namespace}"):
            response: Any = self._batch.list_namespaced_cron_job(
                namespace, _request_timeout=TIMEOUT, _preload_content=False
            )
        return cast(list[dict[str, Any]], json.loads(response.data)["items"])

    def list_jobs(self, namespace: str) -> tuple[list[dict[str, Any]], str]:
        with _errors(f"list Jobs in {namespace}"):
            response: Any = self._batch.list_namespaced_job(
                namespace, _request_timeout=TIMEOUT, _preload_content=False
            )
        data = json.loads(response.data)
        return data["items"], data["metadata"]["resourceVersion"]

    def watch_jobs(
        self, namespace: str, resource_version: str, timeout: int
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        with _errors(f"watch Jobs in {namespace}"):
            stream = Watch().stream(  # type: ignore[no-untyped-call]
                self._batch.list_namespaced_job,
                namespace,
                resource_version=resource_version,
                allow_watch_bookmarks=False,
                timeout_seconds=timeout,
                _request_timeout=timeout + TIMEOUT,
                deserialize=False,
            )
            for event in stream:
                if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                    yield event["type"], event["object"]

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        with _errors(f"get Job {namespace}/{name}"):
            try:
                response: Any = self._batch.read_namespaced_job(
                    name, namespace, _request_timeout=TIMEOUT, _preload_content=False
                )
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
        return cast(dict[str, Any], json.loads(response.data))

    def patch_job(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        with _errors(f"patch Job {namespace}/{name}"):
            response: Any = self._batch.patch_namespaced_job(
                name,
                namespace,
                dict(patch),
                field_manager=FIELD_MANAGER,
                _request_timeout=TIMEOUT,
                _preload_content=False,
                _content_type="application/merge-patch+json",
            )
        return cast(dict[str, Any], json.loads(response.data))

    def list_pods(self, namespace: str, controller_uid: str) -> list[dict[str, Any]]:
        """The Job's pods, by the label the Job controller puts on them (the current one, else the old)."""
        with _errors(f"list the pods of Job uid {controller_uid} in {namespace}"):
            for label in CONTROLLER_UID_LABELS:
                response: Any = self._core.list_namespaced_pod(
                    namespace,
                    label_selector=f"{label}={controller_uid}",
                    _request_timeout=TIMEOUT,
                    _preload_content=False,
                )
                if items := json.loads(response.data)["items"]:
                    return cast(list[dict[str, Any]], items)
        return []

    def patch_source_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        """A JSON merge patch of the IngestionSource's status (the Jobs' part: the daemon's own writes)."""
        with _errors(f"patch the status of IngestionSource {namespace}/{name}"):
            self._custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                {"status": dict(patch)},
                field_manager=FIELD_MANAGER,
                _request_timeout=TIMEOUT,
                _content_type="application/merge-patch+json",
            )

    def _custom_call(self, method: str, kind: Kind, namespace: str, **kwargs: Any) -> dict[str, Any]:
        if "body" in kwargs:
            kwargs["field_manager"] = FIELD_MANAGER
        call = getattr(self._custom, method)
        result = call(kind.group, kind.version, namespace, kind.plural, _request_timeout=TIMEOUT, **kwargs)
        return cast(dict[str, Any], result)

    @staticmethod
    def _plain(model: V1ConfigMap) -> dict[str, Any]:
        """The model as JSON data, with the API's field names."""
        return cast(dict[str, Any], json.loads(model.to_json()))


def _config_map(body: Mapping[str, Any]) -> V1ConfigMap:
    model = V1ConfigMap.from_dict(dict(body))
    assert model is not None
    return model


@contextlib.contextmanager
def _errors(action: str) -> Iterator[None]:
    try:
        yield
    except ApiException as exc:
        status = exc.status or 0
        reason, message = _status(exc)
        raise ApplyError(
            f"{action}: {message}", reason=reason, retryable=status in (409, 429) or status >= 500
        ) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise ApplyError(f"{action}: {exc}", reason="Unavailable", retryable=True) from exc


def _status(exc: ApiException) -> tuple[str, str]:
    """The Status object's reason and message, else the HTTP reason."""
    try:
        body = json.loads(exc.body or "")
    except ValueError:
        body = None
    if isinstance(body, dict):
        return str(body.get("reason") or exc.reason), str(body.get("message") or exc.reason)
    return str(exc.reason), f"HTTP {exc.status} {exc.reason}"
