"""charts/eco-pulse: lint-clean, the same objects as the kustomize base, RBAC exactly what the code
calls, and values that reach the configuration. Renders with the helm that hack/build-helm.sh
builds (`make helm`); a missing helm fails these tests (ECOPULSE_SKIP_HELM=1 skips them, say why).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.config import parse_config_text
from tests.contract.test_manifests import (
    OBJECTS,
    container,
    env_values,
    find,
    load_yaml_documents,
    mount_of,
    pod_spec,
    rules_of,
    the,
)
from tests.contract.test_manifests import render as kustomize
from tests.contract.test_rbac import APPS, calls_of, granted

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "eco-pulse"
NAMESPACE = "eco-pulse"
Manifest = dict[str, Any]


@pytest.fixture(scope="module")
def helm() -> Path:
    if os.environ.get("ECOPULSE_SKIP_HELM") == "1":
        pytest.skip("ECOPULSE_SKIP_HELM=1")
    check = subprocess.run(
        [str(REPO / "hack" / "build-helm.sh"), "--check"], capture_output=True, check=False
    )
    if check.returncode != 0:
        pytest.fail("no helm build: run `make helm` (hack/build-helm.sh)")
    out = subprocess.run(
        [str(REPO / "hack" / "build-helm.sh"), "--print-bin-dir"], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip()) / "helm"


def run_helm(helm: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), *args], input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def render(
    helm: Path,
    *values: str,
    crds: bool = False,
    file: Manifest | None = None,
    release: str = "eco-pulse",
    namespace: str = NAMESPACE,
) -> list[Manifest]:
    """`helm template`, with ``--set`` values and a values file (given on stdin) as a user writes them."""
    argv = ["template", release, str(CHART), "--namespace", namespace]
    if crds:
        argv.append("--include-crds")
    if file is not None:
        argv += ["--values", "-"]
    for value in values:
        argv += ["--set", value]
    done = run_helm(helm, *argv, stdin=yaml.safe_dump(file) if file is not None else None)
    assert done.returncode == 0, done.stderr
    return load_yaml_documents(done.stdout)


def names(objects: list[Manifest]) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in objects}


def cluster_scoped(objects: list[Manifest]) -> list[Manifest]:
    """The rendered objects with no namespace; not the CRDs (the API, shared by design) nor the
    kustomize base's Namespace (a chart's is helm's)."""
    shared = {"CustomResourceDefinition", "Namespace"}
    return [o for o in objects if "namespace" not in o["metadata"] and o["kind"] not in shared]


def in_release(name: str, release: str = "eco-pulse", namespace: str = NAMESPACE) -> str:
    """What the chart calls a cluster-scoped object the kustomize base calls ``name``."""
    return f"{name}.{namespace}" + ("" if release == "eco-pulse" else f".{release}")


def config_of(objects: list[Manifest]) -> Any:
    text = the(objects, "ConfigMap", "eco-pulse-config")["data"]["config.yaml"]
    return parse_config_text(text, source="the chart's ConfigMap")


@pytest.mark.parametrize(
    "values",
    [
        (),
        ("fleet.deferral.enabled=true",),
        ("fleet.deferral.karmadaApiServer=true", "fleet.deferral.caBundle=Q0E="),
    ],
    ids=["defaults", "fleet-deferral-host", "fleet-deferral-karmada"],
)
def test_helm_lint_is_clean(helm: Path, values: tuple[str, ...]) -> None:
    done = run_helm(
        helm, "lint", "--strict", str(CHART), *(arg for value in values for arg in ("--set", value))
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout


def test_the_chart_has_the_objects_of_the_kustomize_base(helm: Path) -> None:
    chart = names(
        render(helm, "networkPolicy.enabled=true", "networkPolicy.controlPlaneCidr=10.0.0.0/24", crds=True)
    )
    # Cluster-scoped objects carry the release's namespace (and name): the base's names, suffixed.
    base = {
        (
            o["kind"],
            in_release(o["metadata"]["name"]) if o in cluster_scoped(OBJECTS) else o["metadata"]["name"],
        )
        for o in OBJECTS
    }
    # The release namespace is helm's (--create-namespace), and a Secret of credentials is yours
    # (carbon.credentialsSecret); the chart adds the generated serving certificate and the
    # scheduler configuration the base keeps as a file.
    assert base - chart == {("Namespace", NAMESPACE), ("Secret", "eco-pulse-provider-credentials")}
    # ... and the uninstall hook that releases every held Job (kustomize: manifests/uninstall/).
    assert chart - base == {
        ("Secret", "eco-pulse-webhook-tls"),
        ("ConfigMap", "eco-pulse-scheduler-config"),
        ("Job", "eco-pulse-release-all"),
    }


@pytest.mark.parametrize("service_account", ["eco-pulse-webhook", "eco-pulse-rebalancer"])
def test_the_chart_grants_exactly_what_the_code_calls(helm: Path, service_account: str) -> None:
    objects = render(helm)
    assert granted(rules_of(service_account, objects)) == calls_of(APPS[service_account])


def test_the_network_policy_needs_the_control_plane_range(helm: Path) -> None:
    assert not find(render(helm), "NetworkPolicy", "eco-pulse-webhook")  # off by default
    done = run_helm(helm, "template", "eco-pulse", str(CHART), "--set", "networkPolicy.enabled=true")
    assert done.returncode != 0 and "networkPolicy.controlPlaneCidr" in done.stderr
    (policy,) = find(
        render(helm, "networkPolicy.enabled=true", "networkPolicy.controlPlaneCidr=10.0.0.0/24"),
        "NetworkPolicy",
    )
    assert policy["spec"]["ingress"][0]["from"][0]["ipBlock"]["cidr"] == "10.0.0.0/24"


def test_the_defaults_are_safe_and_valid(helm: Path) -> None:
    objects = render(helm)
    config = config_of(objects)
    assert config.rebalancer.dry_run is True
    assert config.region_names == ("us-east-1", "eu-west-1", "eu-north-1")
    for name in ("eco-pulse-webhook", "eco-pulse-rebalancer"):
        spec = the(objects, "Deployment", name)["spec"]["template"]["spec"]
        assert "envFrom" not in spec["containers"][0]  # no credentials unless a Secret is named
    hook = the(objects, "MutatingWebhookConfiguration", in_release("eco-pulse"))["webhooks"][0]
    assert hook["failurePolicy"] == "Ignore"
    secret = the(objects, "Secret", "eco-pulse-webhook-tls")
    assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    # The pod templates' warnings entry, as in manifests/ (tests/contract/test_manifests.py).
    configuration = the(objects, "MutatingWebhookConfiguration", in_release("eco-pulse"))
    templates = {h["name"]: h for h in configuration["webhooks"]}["template-warnings.ecopulse.io"]
    assert templates["failurePolicy"] == "Ignore" and templates["sideEffects"] == "None"
    assert templates["clientConfig"]["service"]["path"] == "/warn-templates"
    assert templates["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]


def test_values_reach_the_configuration_and_the_pods(helm: Path) -> None:
    objects = render(
        helm,
        "rebalancer.dryRun=false",
        "carbon.provider=electricitymaps",
        "carbon.credentialsSecret=em-token",
        "nodeSelector.pool=system",
        "tolerations[0].key=dedicated",
        "tolerations[0].operator=Exists",
        "webhook.replicas=3",
        "image.tag=9.9.9",
        file={
            "regions": [
                {"name": "eu-north-1", "zone": "SE-SE3"},
                {"name": "no-1", "zone": "NO"},  # safe_dump quotes it, as a user must
                {"name": "eu-west-1", "zone": "IE"},
            ],
            "baselineRegion": "eu-west-1",
            "prices": {
                "no-1": {"vcpuHour": 0.03, "gibHour": 0.004, "spotVcpuHour": 0.01, "spotGibHour": 0.001}
            },
        },
    )
    config = config_of(objects)
    assert config.rebalancer.dry_run is False
    region = config.region("no-1")
    assert region is not None and region.zone == "NO"  # stays a string through toYaml
    for name in ("eco-pulse-webhook", "eco-pulse-rebalancer"):
        spec = the(objects, "Deployment", name)["spec"]["template"]["spec"]
        container = spec["containers"][0]
        assert container["envFrom"] == [{"secretRef": {"name": "em-token", "optional": True}}]
        assert container["image"] == "ghcr.io/eco-pulse/eco-pulse:9.9.9"
        assert spec["nodeSelector"] == {"pool": "system"}
        assert spec["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert the(objects, "Deployment", "eco-pulse-webhook")["spec"]["replicas"] == 3


def test_cert_manager_mode_uses_an_issuer_and_the_ca_injector(helm: Path) -> None:
    objects = render(helm, "certificates.mode=cert-manager")
    assert not find(objects, "Secret", "eco-pulse-webhook-tls")  # cert-manager writes it
    certificate = the(objects, "Certificate", "eco-pulse-webhook")
    assert certificate["spec"]["secretName"] == "eco-pulse-webhook-tls"
    assert "eco-pulse-webhook.eco-pulse.svc" in certificate["spec"]["dnsNames"]
    hook = the(objects, "MutatingWebhookConfiguration", in_release("eco-pulse"))
    assert hook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "eco-pulse/eco-pulse-webhook"
    assert "caBundle" not in hook["webhooks"][0]["clientConfig"]


def test_switches_leave_out_what_is_off(helm: Path) -> None:
    objects = render(
        helm,
        "rebalancer.enabled=false",
        "extender.enabled=false",
        "grafanaDashboards.enabled=false",
        "alerts.configMap=false",
    )
    present = names(objects)
    for gone in (
        ("Deployment", "eco-pulse-rebalancer"),
        ("ClusterRole", in_release("eco-pulse-rebalancer")),
        ("ConfigMap", "eco-pulse-scheduler-config"),
        ("ConfigMap", "eco-pulse-dashboards"),
        ("ConfigMap", "eco-pulse-alert-rules"),
    ):
        assert gone not in present
    rule = render(helm, "alerts.prometheusRule=true")
    (prometheus_rule,) = find(rule, "PrometheusRule", "eco-pulse")
    alerts = yaml.safe_load((REPO / "dashboards" / "alerts.yaml").read_text())
    assert prometheus_rule["spec"] == alerts  # templating left the {{ $labels }} alone


def test_the_dashboards_are_the_repository_s(helm: Path) -> None:
    dashboards = the(render(helm), "ConfigMap", "eco-pulse-dashboards")
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    for name, text in dashboards["data"].items():
        assert json.loads(text) == json.loads((REPO / "dashboards" / name).read_text())
    for name in ("overview.json", "namespaces.json", "operations.json", "fleet.json", "alerts.yaml"):
        assert (CHART / "files" / name).read_text() == (REPO / "dashboards" / name).read_text(), (
            "run make dashboards"
        )


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("carbon.provider=coal", "carbon/provider"),
        ("certificates.mode=self", "certificates/mode"),
        ("regions[0].zone=false", "regions/0/zone"),
        ("webhook.replicas=0", "webhook/replicas"),
        ("rebalancer.dryrun=false", "dryrun"),
    ],
)
def test_values_schema_refuses_bad_values(helm: Path, value: str, complaint: str) -> None:
    done = run_helm(helm, "template", "eco-pulse", str(CHART), "--set", value)
    assert done.returncode != 0
    assert complaint in done.stderr, done.stderr


def test_cluster_scoped_objects_are_named_from_the_release(helm: Path) -> None:
    # A second release, in another namespace or under another name, and the kustomize base (whose
    # MutatingWebhookConfiguration is eco-pulse) never share a cluster-scoped name.
    installs = {
        ("eco-pulse", NAMESPACE): render(helm),
        ("eco-pulse", "team-b"): render(helm, namespace="team-b"),
        ("green", NAMESPACE): render(helm, release="green"),
    }
    taken = {(o["kind"], o["metadata"]["name"]) for o in cluster_scoped(OBJECTS)}
    for (release, namespace), objects in installs.items():
        mine = cluster_scoped(objects)
        # these at least; anything cluster-scoped added later must use eco-pulse.clusterName too
        assert {o["kind"] for o in mine} >= {
            "MutatingWebhookConfiguration",
            "ClusterRole",
            "ClusterRoleBinding",
        }
        for o in mine:
            assert o["metadata"]["name"].startswith("eco-pulse")  # greppable
            assert o["metadata"]["name"].endswith(in_release("", release, namespace))
        ours = names(mine)
        assert not ours & taken, (release, namespace)
        taken |= ours
        # each binding grants its own release's role to its own release's service account
        for binding in (o for o in mine if o["kind"] == "ClusterRoleBinding"):
            assert binding["roleRef"]["name"] in {
                o["metadata"]["name"] for o in mine if o["kind"] == "ClusterRole"
            }
            assert {s["namespace"] for s in binding["subjects"]} == {namespace}


def test_the_preflight_check_covers_every_template() -> None:
    # charts/eco-pulse/templates/preflight.yaml looks up what each listed template renders: a new
    # template (a CronJob, another webhook) must be listed there to be checked before an install.
    listed = re.search(
        r"\$templates := list ((?:\"[^\"]+\" ?)+)", (CHART / "templates" / "preflight.yaml").read_text()
    )
    assert listed is not None
    checked = set(re.findall(r'"([^"]+)"', listed.group(1)))
    templates = {p.name for p in (CHART / "templates").glob("*.yaml")} - {"preflight.yaml"}
    assert checked == templates


# --- Deferrable Jobs across a Karmada fleet (fleet.deferral, docs/fleet.md) ----------------------

KARMADA_SIDE = ("fleet.deferral.karmadaApiServer=true", "fleet.deferral.caBundle=Q0E=")
JANITOR_GRANTS = {
    (group, resource, verb)
    for group, resource in (("batch", "jobs"), ("work.karmada.io", "resourcebindings"))
    for verb in ("list", "patch")
}


def test_fleet_deferral_is_off_by_default(helm: Path) -> None:
    rendered = names(render(helm))
    assert not {name for name in rendered if "fleet" in name[1]}, rendered


def test_fleet_deferral_in_the_host_cluster_runs_the_karmada_webhook_and_the_janitor(helm: Path) -> None:
    objects = render(helm, "fleet.deferral.enabled=true", file={"fleet": {"config": {"dryRun": False}}})
    assert config_of(objects).fleet.dry_run is False  # fleet mode's and the fleet webhook's section
    webhook = the(objects, "Deployment", "eco-pulse-fleet-webhook")
    env = env_values(container(webhook, "webhook"))
    assert env["ECOPULSE_RELEASER"] == "fleet"
    assert env["ECOPULSE_RELEASER_LEASE"] == "eco-pulse/eco-pulse-fleet"
    mounted = mount_of(webhook, container(webhook, "webhook"), secret="eco-pulse-fleet-webhook-kubeconfig")
    assert mounted["mount"]["mountPath"] == str(Path(env["KUBECONFIG"]).parent)
    service = the(objects, "Service", "eco-pulse-fleet-webhook")
    assert service["spec"]["selector"] == webhook["spec"]["selector"]["matchLabels"]
    # A drain never takes every replica at once, as for the cluster's own webhook.
    budget = the(objects, "PodDisruptionBudget", "eco-pulse-fleet-webhook")
    assert budget["spec"]["selector"]["matchLabels"] == webhook["spec"]["selector"]["matchLabels"]
    assert budget["spec"]["minAvailable"] == 1
    single = render(helm, "fleet.deferral.enabled=true", "fleet.deferral.webhookReplicas=1")
    assert not find(single, "PodDisruptionBudget", "eco-pulse-fleet-webhook")  # it would block every drain
    cron = the(objects, "CronJob", "eco-pulse-fleet-janitor")
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    janitor = pod["containers"][0]
    assert janitor["command"] == ["python", "-m", "fleet", "release-overdue"]
    mount = mount_of(cron["spec"]["jobTemplate"], janitor, secret="eco-pulse-fleet-janitor-kubeconfig")
    assert env_values(janitor)["ECOPULSE_KARMADA_KUBECONFIG"].startswith(mount["mount"]["mountPath"] + "/")
    for account in ("eco-pulse-fleet-webhook", "eco-pulse-fleet-janitor"):
        # Their identities are on the Karmada API server: nothing of the host cluster's.
        assert the(objects, "ServiceAccount", account)["automountServiceAccountToken"] is False
        assert not [b for b in find(objects, "ClusterRoleBinding") + find(objects, "RoleBinding")
                    if any(s["name"] == account for s in b["subjects"])]  # fmt: skip
    # The serving certificate names the fleet webhook's Service too (the Karmada side's URL).
    secret = the(objects, "Secret", "eco-pulse-webhook-tls")
    assert (
        "eco-pulse-fleet-webhook.eco-pulse.svc" in secret["metadata"]["annotations"]["ecopulse.io/dns-names"]
    )
    certificate = the(render(helm, "fleet.deferral.enabled=true", "certificates.mode=cert-manager"),
                      "Certificate", "eco-pulse-webhook")  # fmt: skip
    assert "eco-pulse-fleet-webhook.eco-pulse.svc" in certificate["spec"]["dnsNames"]


def test_fleet_deferral_on_the_karmada_api_server_renders_only_the_registration_and_two_accounts(
    helm: Path,
) -> None:
    objects = render(helm, *KARMADA_SIDE)
    assert {kind for kind, _ in names(objects)} == {
        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Secret",
        "MutatingWebhookConfiguration",
    }  # fmt: skip
    # The janitor: list and patch Jobs and ResourceBindings, nothing else.
    assert granted(rules_of("eco-pulse-fleet-janitor", objects)) == JANITOR_GRANTS
    # The webhook there reads what it reads in one cluster, exactly.
    assert granted(rules_of("eco-pulse-fleet-webhook", objects)) == calls_of(APPS["eco-pulse-webhook"])
    for account in ("eco-pulse-fleet-webhook", "eco-pulse-fleet-janitor"):
        token = the(objects, "Secret", f"{account}-token")
        assert token["metadata"]["annotations"]["kubernetes.io/service-account.name"] == account
    (configuration,) = find(objects, "MutatingWebhookConfiguration")
    hooks = {h["name"]: h for h in configuration["webhooks"]}
    # The same entries as the kustomize file, reached by URL with the host release's CA.
    kustomize = load_yaml_documents((REPO / "manifests/fleet/deferral/karmada-webhook.yaml").read_text())[0]
    for hook in kustomize["webhooks"]:
        mine = dict(hooks[hook["name"]])
        client = mine.pop("clientConfig")
        assert client == {
            "url": f"https://eco-pulse-fleet-webhook.eco-pulse.svc:443{hook['clientConfig']['service']['path']}",
            "caBundle": "Q0E=",
        }
        assert mine == {k: v for k, v in hook.items() if k != "clientConfig"}, hook["name"]
    assert set(hooks) == {h["name"] for h in kustomize["webhooks"]}
    for hook in hooks.values():
        assert hook["failurePolicy"] == "Ignore" and hook["timeoutSeconds"] == 2
    operations = {
        (rule["resources"][0], op)
        for hook in hooks.values()
        for rule in hook["rules"]
        for op in rule["operations"]
    }
    assert operations == {
        ("jobs", "CREATE"), ("resourcebindings", "CREATE"), ("resourcebindings", "UPDATE"),
        ("cronjobs", "CREATE"), ("cronjobs", "UPDATE"),
    }  # fmt: skip
    # The CA is the host release's: without it the render fails, naming the value.
    done = run_helm(helm, "template", "eco-pulse", str(CHART), "--set", KARMADA_SIDE[0])
    assert done.returncode != 0 and "fleet.deferral.caBundle" in done.stderr


def test_the_kustomize_fleet_deferral_trees_match_the_chart(helm: Path, kubectl: Path) -> None:
    """manifests/fleet/deferral (Karmada side) and its host/ (host side) give the same accounts,
    rights, commands and settings as the chart's two releases."""
    karmada = kustomize(kubectl, REPO / "manifests/fleet/deferral")
    assert granted(rules_of("eco-pulse-fleet-janitor", karmada)) == JANITOR_GRANTS
    assert granted(rules_of("eco-pulse-fleet-webhook", karmada)) == calls_of(APPS["eco-pulse-webhook"])
    (external,) = find(karmada, "Service")  # the reference's name, resolved to the host's Service
    assert external["spec"]["externalName"].startswith("eco-pulse-fleet-webhook.eco-pulse.svc")
    for hook in the(karmada, "MutatingWebhookConfiguration", "eco-pulse-fleet-deferral")["webhooks"]:
        assert hook["clientConfig"]["service"]["name"] == external["metadata"]["name"]
    host = kustomize(kubectl, REPO / "manifests/fleet/deferral/host")
    chart = render(helm, "fleet.deferral.enabled=true")
    for kind, name, box in (
        ("Deployment", "eco-pulse-fleet-webhook", "webhook"),
        ("CronJob", "eco-pulse-fleet-janitor", "janitor"),
    ):
        mine, theirs = the(host, kind, name), the(chart, kind, name)
        if kind == "CronJob":
            mine, theirs = mine["spec"]["jobTemplate"], theirs["spec"]["jobTemplate"]
        assert container(mine, box)["command"] == container(theirs, box)["command"]
        assert env_values(container(mine, box)) == env_values(container(theirs, box)), name
        assert pod_spec(mine)["serviceAccountName"] == pod_spec(theirs)["serviceAccountName"]
    budgets = (
        the(host, "PodDisruptionBudget", "eco-pulse-fleet-webhook"),
        the(chart, "PodDisruptionBudget", "eco-pulse-fleet-webhook"),
    )
    assert budgets[0]["spec"] == budgets[1]["spec"]
