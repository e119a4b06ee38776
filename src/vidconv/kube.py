"""How vidconv reaches the Kubernetes API: one place that reads the kubeconfig or the in-cluster
service account, shared by the API's KubernetesExecutor and the operator.

``Settings.kubeconfig`` empty: in-cluster config, else $KUBECONFIG / ~/.kube/config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vidconv.settings import Settings

if TYPE_CHECKING:
    from kubernetes.client import ApiClient, Configuration


POOL_SIZE = 32


def load_configuration(settings: Settings) -> Configuration:
    from kubernetes import config
    from kubernetes.client import Configuration

    cfg = Configuration()
    if settings.kubeconfig:
        config.load_kube_config(config_file=settings.kubeconfig, client_configuration=cfg)
    else:
        try:
            config.load_incluster_config(client_configuration=cfg)
        except config.ConfigException:
            config.load_kube_config(client_configuration=cfg)
    # As many pooled connections as threads calling (the default of 4 makes a burst of
    # concurrent calls open and drop a connection each).
    cfg.connection_pool_maxsize = POOL_SIZE
    return cfg


def api_client(settings: Settings) -> ApiClient:
    from kubernetes.client import ApiClient

    return ApiClient(load_configuration(settings))
