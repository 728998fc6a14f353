#!/usr/bin/env python3
"""Checks the container image definition, the compose file and the Kubernetes manifests
against the Debian package's paths and against each other, and every hub configuration they
ship with the hub itself (`relais serve --check`). Run by deploy/check:

    python3 deploy/check_manifests.py target/debug/relais
"""

import os
import re
import subprocess
import sys
import tempfile
import tomllib

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
RELAIS = sys.argv[1] if len(sys.argv) > 1 else "relais"
problems = []


def check(ok, what):
    if not ok:
        problems.append(what)


def read(name):
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        return f.read()


def hub_check(text, name, env=None):
    """The hub reads this configuration as valid (and returns it, parsed)."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
        environment.update(env or {})
        out = subprocess.run(
            [RELAIS, "serve", "--config", path, "--check"],
            capture_output=True, text=True, env=environment, check=False,
        )
        check(out.returncode == 0, f"{name}: the hub refuses it: {out.stderr.strip()}")
        return tomllib.loads(out.stdout) if out.returncode == 0 else {}
    finally:
        os.unlink(path)


def port(address):
    return int(address.rsplit(":", 1)[1])


# The Debian package's paths: what every other form must keep.
PACKAGE = {
    "binary": "/usr/bin/relais",
    "connector": "/usr/bin/relais-connector",
    "config": "/etc/relais/hub.toml",
    "data": "/var/lib/relais",
}
unit = read("debian/relais.service")
check(f"ExecStart={PACKAGE['binary']} serve --config {PACKAGE['config']}" in unit,
      "relais.service: ExecStart does not run the packaged binary with the packaged config")
check("ReadWritePaths=/var/lib/relais" in unit, "relais.service: the data directory is not writable")
debian = hub_check(read("debian/hub.toml"), "debian/hub.toml")
check(debian.get("data_dir") == PACKAGE["data"], "debian/hub.toml: data_dir is not /var/lib/relais")

# The container image.
containerfile = read("container/Containerfile")
for key in ("binary", "connector", "config", "data"):
    check(PACKAGE[key] in containerfile, f"Containerfile: {PACKAGE[key]} missing (the package's path)")
users = re.findall(r"^USER\s+(\S+)", containerfile, re.M)
check(users and users[-1].split(":")[0] not in ("0", "root"), "Containerfile: the image runs as root")
check(len(re.findall(r"^FROM ", containerfile, re.M)) >= 2, "Containerfile: not multi-stage")
container = hub_check(read("container/hub.toml"), "container/hub.toml")
check(container.get("data_dir") == PACKAGE["data"], "container/hub.toml: data_dir")
health_port = port(container.get("health_listen", ":0"))
grpc_port = port(container.get("listen", ":0"))
check(f"EXPOSE {grpc_port} {health_port}" in containerfile, "Containerfile: EXPOSE does not match hub.toml")
check(f"http://127.0.0.1:{health_port}" in containerfile, "Containerfile: HEALTHCHECK does not ask the health port")

# The compose file.
compose = yaml.safe_load(read("compose.yaml"))
hub = compose["services"]["relais"]
check(hub.get("read_only") is True, "compose: the hub's root filesystem is not read-only")
check(str(hub.get("user", "0")).split(":")[0] not in ("0", "root"), "compose: the hub runs as root")
check(any(v.endswith(":" + PACKAGE["data"]) for v in hub.get("volumes", [])),
      "compose: no volume on /var/lib/relais")
check(hub["build"]["dockerfile"] == "deploy/container/Containerfile", "compose: not the Containerfile")
check(f"{grpc_port}:{grpc_port}" in hub.get("ports", []), "compose: the gRPC port is not published")
check(f"http://127.0.0.1:{health_port}" in " ".join(hub["healthcheck"]["test"]),
      "compose: the healthcheck does not ask the health port")
check("postgres" in compose["services"] and "otel-collector" in compose["services"],
      "compose: PostgreSQL and the OpenTelemetry collector are not both there")
env = hub.get("environment", {})
check(env.get("RELAIS_DATABASE_URL", "").startswith("postgres://"), "compose: the hub is not on PostgreSQL")
check(env.get("RELAIS_TELEMETRY_OTLP_ENDPOINT", "").endswith(":4317"), "compose: telemetry not sent to the collector")
collector = yaml.safe_load(read("otel-collector.yaml"))
check("otlp" in collector["receivers"], "otel-collector.yaml: no OTLP receiver")
hub_check(read("container/hub.toml"), "container/hub.toml with the compose environment",
          {k: v for k, v in env.items()})

# The Kubernetes manifests.
docs = [d for d in yaml.safe_load_all(read("kubernetes/relais.yaml")) if d]
kinds = {d["kind"]: d for d in docs}
deployment = kinds["Deployment"]
check(deployment["spec"]["replicas"] == 2, "kubernetes: not two replicas")
pod = deployment["spec"]["template"]["spec"]
check(pod["securityContext"].get("runAsNonRoot") is True, "kubernetes: pods may run as root")
container_spec = pod["containers"][0]
check(container_spec["securityContext"].get("readOnlyRootFilesystem") is True,
      "kubernetes: the root filesystem is writable")
check(container_spec["args"] == ["serve", "--config", PACKAGE["config"]], "kubernetes: args")
mounts = {m["name"]: m["mountPath"] for m in container_spec["volumeMounts"]}
volumes = {v["name"]: v for v in pod["volumes"]}
config_text = kinds["ConfigMap"]["data"]["hub.toml"]
k8s = tomllib.loads(config_text)
check(k8s.get("data_dir") == PACKAGE["data"] and mounts.get("data") == PACKAGE["data"],
      "kubernetes: the data directory")
for key in ("ca_cert", "ca_key", "server_cert", "server_key"):
    path = k8s["tls"][key]
    check(os.path.dirname(path) == mounts.get("tls"), f"kubernetes: tls.{key} is not in the mounted secret")
check(volumes["tls"].get("secret", {}).get("secretName") == "relais-tls", "kubernetes: TLS secret")
check(os.path.dirname(k8s["matching_key"]) == mounts.get("matching"),
      "kubernetes: the matching key is not in its mounted secret")
check(volumes["matching"].get("secret", {}).get("secretName") == "relais-matching-key",
      "kubernetes: matching key secret")
check(any(e["name"] == "RELAIS_DATABASE_URL" and "secretKeyRef" in e["valueFrom"]
          for e in container_spec["env"]), "kubernetes: the database URL is not from a secret")
k8s_health = port(k8s["health_listen"])
for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
    check(container_spec[probe].get("grpc", {}).get("port") == k8s_health,
          f"kubernetes: {probe} is not a gRPC probe on the health port")
check(pod["terminationGracePeriodSeconds"] > k8s.get("shutdown", {}).get("timeout_seconds", 10),
      "kubernetes: the grace period is shorter than the hub's shutdown timeout")
service = kinds["Service"]
check([p["port"] for p in service["spec"]["ports"]] == [port(k8s["listen"])]
      and all(p["protocol"] == "TCP" for p in service["spec"]["ports"]),
      "kubernetes: the Service is not a TCP passthrough of the gRPC port")

policy = kinds.get("NetworkPolicy")
check(policy is not None and [p["port"] for r in policy["spec"]["ingress"] for p in r["ports"]]
      == [port(k8s["listen"])], "kubernetes: no NetworkPolicy keeping the health port off the network")
check(volumes.get("admin", {}).get("secret", {}).get("secretName") == "relais-admin"
      and mounts.get("admin") == PACKAGE["data"] + "/admin",
      "kubernetes: the administrator bundle does not come from a secret (each pod would make one)")
check(int(hub.get("stop_grace_period", "0s").rstrip("s")) >= 15 + container.get("shutdown", {}).get("timeout_seconds", 10),
      "compose: stop_grace_period shorter than the hub's shutdown")

# The ConfigMap's configuration, as the hub reads it, with its secrets mounted where it says.
with tempfile.TemporaryDirectory() as tmp:
    text = config_text
    for path in [k8s["tls"][k] for k in ("ca_cert", "ca_key", "server_cert", "server_key")] + [k8s["matching_key"]]:
        local = os.path.join(tmp, path.lstrip("/"))
        os.makedirs(os.path.dirname(local), exist_ok=True)
        open(local, "w").close()
        text = text.replace(f'"{path}"', f'"{local}"')
    hub_check(text, "kubernetes ConfigMap hub.toml", {"RELAIS_DATABASE_URL": "postgres://relais@db/relais"})

if problems:
    print("deploy files are not consistent:", *problems, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print("container, compose and Kubernetes files consistent with the package")
