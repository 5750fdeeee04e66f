#!/usr/bin/env bash
# Offline checks of the deployment artifacts. Run from the repository root:
#   bash deploy/verify.sh
# Environment:
#   STUDIO_ROLE_SYNC_BIN  the built binary (e.g. target/release/studio-role-sync). When set,
#                         the unit is verified against it and the example configs are
#                         checked with its `validate` command. Unset: /bin/true stands in.
#   K8S_VERSIONS          Kubernetes versions to validate against (default "1.31.0 1.34.0").
#   SECURITY_THRESHOLD    highest allowed `systemd-analyze security` exposure, x10 (default 20 = 2.0).
# Checks:
#   (a) systemd-analyze verify on a copy of the unit (any output counts as a failure), and
#       systemd-analyze security --offline under the threshold; the same for the unit with
#       the high-availability drop-in deploy/systemd/ha.conf;
#   (b) kubernetes-validate --strict on every manifest in deploy/kubernetes and its ha/;
#   (c) cross-file consistency: kustomization lists every manifest, no duplicate YAML keys,
#       ports/paths/names agree between configs, unit, manifests and Containerfile;
#   (d) with STUDIO_ROLE_SYNC_BIN: `studio-role-sync validate` accepts the example configs
#       (systemd, its high-availability variant from ha.conf, Kubernetes, Kubernetes ha/).
# Exits non-zero when any check fails.
set -euo pipefail

if [[ ! -f deploy/systemd/studio-role-sync.service ]]; then
  echo "verify: run from the repository root: bash deploy/verify.sh" >&2
  exit 2
fi

UNIT_SRC=deploy/systemd/studio-role-sync.service
K8S_DIR=deploy/kubernetes
UNIT_BIN=/usr/local/bin/studio-role-sync
FAILED=0

pass() { printf 'PASS  %s\n' "$*"; }
fail() { FAILED=$((FAILED + 1)); printf 'FAIL  %s\n' "$*"; }
info() { printf '      %s\n' "$*"; }
indent() { sed 's/^/      | /'; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/studio-role-sync-verify.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# The binary the unit copy points to.
if [[ -n "${STUDIO_ROLE_SYNC_BIN:-}" ]]; then
  BIN=$STUDIO_ROLE_SYNC_BIN
  [[ $BIN == /* ]] || BIN=$PWD/$BIN
  if [[ ! -x $BIN ]]; then
    fail "STUDIO_ROLE_SYNC_BIN=$STUDIO_ROLE_SYNC_BIN is not an executable file"
  fi
else
  BIN=/bin/true
fi

# ---- (a) systemd -----------------------------------------------------------------------
echo "== systemd unit ($UNIT_SRC, binary: $BIN)"
if ! command -v systemd-analyze >/dev/null; then
  info "systemd-analyze missing: installing systemd with apt-get"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi
info "$(systemctl --version 2>/dev/null | head -n1 || echo 'systemd version unknown')"

UNIT_COPY=$WORK/studio-role-sync.service
unit_text=$(<"$UNIT_SRC")
if grep -q "^ExecStart=$UNIT_BIN " "$UNIT_SRC"; then
  # Quoted replacement: no pattern characters in $BIN are interpreted.
  printf '%s\n' "${unit_text//"$UNIT_BIN"/"$BIN"}" >"$UNIT_COPY"
  pass "unit runs $UNIT_BIN (replaced by $BIN in the verified copy)"
else
  printf '%s\n' "$unit_text" >"$UNIT_COPY"
  fail "unit has no 'ExecStart=$UNIT_BIN ...' line"
fi

set +e
verify_out=$(SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "$UNIT_COPY" 2>&1)
verify_rc=$?
set -e
if [[ $verify_rc -eq 0 && -z $verify_out ]]; then
  pass "systemd-analyze verify: no errors, no warnings"
else
  fail "systemd-analyze verify (exit $verify_rc; any warning counts):"
  printf '%s\n' "$verify_out" | indent
fi

threshold=${SECURITY_THRESHOLD:-20}
set +e
security_out=$(SYSTEMD_LOG_COLOR=0 systemd-analyze security --offline=true --threshold="$threshold" \
  --no-pager "$UNIT_COPY" 2>&1)
security_rc=$?
set -e
exposure=$(printf '%s\n' "$security_out" | grep -E 'Overall exposure level' | sed 's/^→ *//' || true)
if [[ $security_rc -eq 0 && -n $exposure ]]; then
  pass "systemd-analyze security: $exposure (threshold $threshold/10)"
else
  fail "systemd-analyze security --threshold=$threshold (exit $security_rc): ${exposure:-no result}"
  printf '%s\n' "$security_out" | grep -v '✓' | indent
fi

# The unit with the high-availability drop-in (deploy/systemd/ha.conf), installed beside the
# copy as systemd would find it (studio-role-sync.service.d/): the same checks.
HA_DROPIN=deploy/systemd/ha.conf
mkdir -p "$WORK/ha/studio-role-sync.service.d"
cp "$UNIT_COPY" "$WORK/ha/studio-role-sync.service"
cp "$HA_DROPIN" "$WORK/ha/studio-role-sync.service.d/ha.conf"
set +e
verify_out=$(SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "$WORK/ha/studio-role-sync.service" 2>&1)
verify_rc=$?
security_out=$(SYSTEMD_LOG_COLOR=0 systemd-analyze security --offline=true --threshold="$threshold" \
  --no-pager "$WORK/ha/studio-role-sync.service" 2>&1)
security_rc=$?
set -e
if [[ $verify_rc -eq 0 && -z $verify_out ]]; then
  pass "systemd-analyze verify with $HA_DROPIN: no errors, no warnings"
else
  fail "systemd-analyze verify with $HA_DROPIN (exit $verify_rc; any warning counts):"
  printf '%s\n' "$verify_out" | indent
fi
exposure=$(printf '%s\n' "$security_out" | grep -E 'Overall exposure level' | sed 's/^→ *//' || true)
if [[ $security_rc -eq 0 && -n $exposure ]]; then
  pass "systemd-analyze security with $HA_DROPIN: $exposure (threshold $threshold/10)"
else
  fail "systemd-analyze security with $HA_DROPIN (exit $security_rc): ${exposure:-no result}"
fi

# ---- Python with kubernetes-validate and PyYAML ----------------------------------------
PY=python3
if ! python3 -c 'import kubernetes_validate, yaml' 2>/dev/null; then
  VENV=${TMPDIR:-/tmp}/studio-role-sync-verify-venv
  if ! "$VENV/bin/python" -c 'import kubernetes_validate, yaml' 2>/dev/null; then
    echo "== installing kubernetes-validate into $VENV"
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
      as_root apt-get update -qq
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check 'kubernetes-validate>=1.31' PyYAML
  fi
  PY=$VENV/bin/python
fi

# ---- (b) Kubernetes manifests ----------------------------------------------------------
echo "== Kubernetes manifests ($K8S_DIR)"
read -r -a versions <<<"$("$PY" - "${K8S_VERSIONS:-1.31.0 1.34.0}" <<'EOF'
import sys
import kubernetes_validate.utils as u
shipped = set(u.all_versions())
wanted = [v for v in sys.argv[1].split() if v in shipped]
print(" ".join(wanted or [u.latest_version()]))
EOF
)"
kv_version=$("$PY" -m kubernetes_validate --version)
info "kubernetes-validate $kv_version, strict, Kubernetes ${versions[*]}"
kflags=()
for v in "${versions[@]}"; do kflags+=(-k "$v"); done

shopt -s nullglob
manifests=()
for f in "$K8S_DIR"/*.yaml "$K8S_DIR"/*.yml "$K8S_DIR"/ha/*.yaml "$K8S_DIR"/ha/*.yml; do
  case "$(basename "$f")" in
    kustomization.yaml | kustomization.yml) ;;  # not a cluster resource: checked in (c)
    *) manifests+=("$f") ;;
  esac
done
shopt -u nullglob
if [[ ${#manifests[@]} -eq 0 ]]; then
  fail "no manifests found in $K8S_DIR"
fi
for f in "${manifests[@]}"; do
  set +e
  kv_out=$("$PY" -m kubernetes_validate --strict "${kflags[@]}" "$f" 2>&1)
  kv_rc=$?
  set -e
  # A WARN (e.g. no schema for a misspelt kind) exits 0 in kubernetes-validate: count it too.
  if [[ $kv_rc -eq 0 ]] && grep -q '^INFO .* passed' <<<"$kv_out" &&
    ! grep -qE '^(ERROR|WARN|FATAL)' <<<"$kv_out"; then
    kinds=$(grep -oE 'for resource [^ ]+' <<<"$kv_out" | awk '{print $3}' | sort -u | paste -sd, -)
    pass "kubernetes-validate --strict $f ($kinds)"
  else
    fail "kubernetes-validate --strict $f (exit $kv_rc):"
    grep -vE '^INFO' <<<"$kv_out" | indent
  fi
done

# ---- (c) consistency across files --------------------------------------------------------
echo "== consistency between unit, configs, manifests and Containerfile"
set +e
"$PY" - "$WORK" <<'EOF'
import glob, os, re, sys
import yaml

work = sys.argv[1]
results = []

def check(ok, what, detail=""):
    results.append((bool(ok), what, detail))

class UniqueKeyLoader(yaml.SafeLoader):
    pass

def construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)

UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)

def load_all(text, name):
    try:
        return [d for d in yaml.load_all(text, Loader=UniqueKeyLoader) if d is not None]
    except yaml.YAMLError as e:
        check(False, f"YAML of {name}", str(e).replace("\n", " "))
        return None

# Every YAML file parses, without duplicate keys.
docs = {}
bad = []
for path in sorted(glob.glob("deploy/**/*.y*ml", recursive=True)):
    d = load_all(open(path).read(), path)
    if d is None:
        bad.append(path)
    docs[path] = d or []
check(not bad, f"{len(docs)} YAML files parse with no duplicate keys", ", ".join(bad))

# The config contract (docs/contracts.md): keys the daemon accepts.
CONFIG_KEYS = {
    "": {"studio", "roles", "safety", "source", "schedule", "timezone", "history", "http", "log",
         "notify", "flapping"},
    "studio": {"base_url", "token_env", "token_file", "oauth", "requests_per_second", "burst",
               "concurrency", "batch_size", "timeout_seconds", "max_retries", "ca_file"},
    "studio.oauth": {"client_id", "client_secret_env", "client_secret_file", "refresh_token_env",
                     "refresh_token_file", "token_url", "authorize_url", "redirect_uri"},
    "roles": {"managed", "remove_unlisted", "protected"},
    "safety": {"max_removals", "max_removal_ratio"},
    "source": {"yaml", "sql", "max_bytes"},
    "source.sql": {"url_env", "url_file", "query", "statement_timeout_seconds"},
    "http": {"listen"},
    "log": {"format", "level"},
    "notify": {"webhook", "email", "timeout_seconds", "retries"},
    "notify.webhook": {"url", "url_env", "url_file", "format"},
    "notify.email": {"smtp_url_env", "smtp_url_file", "from", "to"},
    "flapping": {"after_runs", "reapply"},
}

def unknown_keys(cfg, prefix=""):
    out = []
    for k, v in cfg.items():
        full = f"{prefix}.{k}" if prefix else k
        if k not in CONFIG_KEYS.get(prefix, set()):
            out.append(full)
        elif isinstance(v, dict) and full in CONFIG_KEYS:
            out += unknown_keys(v, full)
    return out

def check_config(cfg, roles, name):
    check(isinstance(cfg, dict), f"{name}: config is a mapping")
    if not isinstance(cfg, dict):
        return
    unk = unknown_keys(cfg)
    check(not unk, f"{name}: only known config keys", ", ".join(unk))
    studio = cfg.get("studio", {})
    auth = [k for k in ("token_env", "token_file", "oauth") if k in studio]
    check(len(auth) == 1, f"{name}: exactly one of token_env/token_file/oauth", str(auth))
    check(str(studio.get("base_url", "")).startswith("https://"), f"{name}: base_url is https")
    managed = set(cfg.get("roles", {}).get("managed") or [])
    check(managed, f"{name}: roles.managed is not empty")
    users = (roles or {}).get("users") if isinstance(roles, dict) else None
    check(isinstance(users, dict) and users, f"{name}: roles file has users")
    if isinstance(users, dict):
        stray = sorted({r for rs in users.values() for r in (rs or [])} - managed)
        check(not stray, f"{name}: roles file uses only managed roles", str(stray))
        emails = [e.strip().lower() for e in users]
        check(len(emails) == len(set(emails)), f"{name}: no email twice in roles file")
        check(all(re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", e) for e in emails),
              f"{name}: roles file keys are emails")

def port_of(listen):
    return int(str(listen).rsplit(":", 1)[1])

# ---- systemd: unit <-> deploy/systemd/studio-role-sync.yaml
unit = open("deploy/systemd/studio-role-sync.service").read()
def directive(name):
    return [m.group(1).strip() for m in re.finditer(rf"^{name}=(.*)$", unit, re.M)]
execstart = directive("ExecStart")
config_path = None
if execstart:
    m = re.search(r"--config (\S+) daemon$", execstart[0])
    config_path = m and m.group(1)
check(config_path, "unit: ExecStart runs `--config PATH daemon`", str(execstart))
check(any(s.endswith(f"--config {config_path} validate") for s in directive("ExecStartPre")),
      "unit: ExecStartPre validates the same config")
cfgdir = directive("ConfigurationDirectory")
statedir = directive("StateDirectory")
check(config_path and cfgdir and os.path.dirname(config_path) == f"/etc/{cfgdir[0]}",
      "unit: config lives in ConfigurationDirectory", f"{config_path} vs {cfgdir}")
sd_cfg_docs = docs.get("deploy/systemd/studio-role-sync.yaml") or [{}]
sd_cfg = sd_cfg_docs[0]
sd_roles = (docs.get("deploy/systemd/roles.yaml") or [None])[0]
check_config(sd_cfg, sd_roles, "systemd config")
creds = [c.split(":", 1)[0] for c in directive("LoadCredential")]
token_file = sd_cfg.get("studio", {}).get("token_file", "")
check(any(token_file == f"/run/credentials/studio-role-sync.service/{c}" for c in creds),
      "systemd config: token_file is a LoadCredential of the unit", f"{token_file} vs {creds}")
check(statedir and os.path.dirname(str(sd_cfg.get("history", ""))) == f"/var/lib/{statedir[0]}",
      "systemd config: history is in StateDirectory", f"{sd_cfg.get('history')} vs {statedir}")
check(sd_cfg.get("source", {}).get("yaml") == "roles.yaml",
      "systemd config: source is roles.yaml beside the config")

# ---- systemd, high availability: deploy/systemd/ha.conf hands the history's URL over as a
# credential, and its comment shows the config that reads it.
ha_conf = open("deploy/systemd/ha.conf").read()
ha_creds = dict(c.split(":", 1) for c in re.findall(r"^LoadCredential=(.*)$", ha_conf, re.M))
snippet, inside = [], False
for line in ha_conf.splitlines():
    if re.match(r"^#\s+history:\s*$", line):
        inside = True
    elif inside and not re.match(r"^#\s{3,}\S", line):
        break
    if inside:
        snippet.append(line[1:])
ha_yaml = (load_all("\n".join(snippet), "the config in ha.conf's comment") or [{}])[0]
ha_hist = ha_yaml.get("history") if isinstance(ha_yaml.get("history"), dict) else {}
ha_file = str(ha_hist.get("url_file", ""))
check(any(ha_file == f"/run/credentials/studio-role-sync.service/{n}" for n in ha_creds)
      and all(path.startswith(f"/etc/{cfgdir[0]}/") for path in ha_creds.values()),
      "ha.conf: history.url_file is its LoadCredential, read from the config folder",
      f"{ha_file} vs {ha_creds}")
check(ha_hist.get("schema") and (ha_yaml.get("ha") or {}).get("lease"),
      "ha.conf: the config sets history.schema and ha.lease", str(ha_yaml))
check(not re.search(r"^(StateDirectory|ExecStart|DynamicUser|User)=", ha_conf, re.M),
      "ha.conf changes no identity, state or command of the unit")
os.makedirs(os.path.join(work, "systemd-ha"), exist_ok=True)
sd_ha = dict(sd_cfg, **ha_yaml)
open(os.path.join(work, "systemd-ha", "studio-role-sync.yaml"), "w").write(
    yaml.safe_dump(sd_ha, sort_keys=False))

# ---- Kubernetes
kdir = "deploy/kubernetes"
kust = (docs.get(f"{kdir}/kustomization.yaml") or [{}])[0]
check(kust.get("apiVersion") == "kustomize.config.k8s.io/v1beta1" and kust.get("kind") == "Kustomization",
      "kustomization.yaml: apiVersion/kind")
listed = kust.get("resources") or []
files = sorted(os.path.basename(p) for p in glob.glob(f"{kdir}/*.y*ml")
               if not os.path.basename(p).startswith("kustomization."))
missing = [r for r in listed if not os.path.isfile(os.path.join(kdir, r))]
unlisted = [f for f in files if f not in listed]
check(not missing and not unlisted, "kustomization.yaml lists every manifest, and only existing ones",
      f"missing: {missing}, unlisted: {unlisted}")
check(not any("namespace" in (d.get("metadata") or {}) for f in files for d in docs[f"{kdir}/{f}"]),
      "manifests are namespace-agnostic")
check(any(i.get("name") == "studio-role-sync" for i in kust.get("images") or []),
      "kustomization.yaml: images entry for studio-role-sync")

objs = {}
for f in files:
    for d in docs[f"{kdir}/{f}"]:
        objs[(d.get("kind"), (d.get("metadata") or {}).get("name"))] = d
by_kind = lambda k: [o for (kind, _), o in objs.items() if kind == k]
deps = by_kind("Deployment")
check(len(deps) == 1, "one Deployment")
if deps:
    dep = deps[0]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    check(spec.get("replicas") == 1 and spec.get("strategy", {}).get("type") == "Recreate",
          "Deployment: replicas 1, strategy Recreate")
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True and psc.get("runAsUser") == 65532 and "fsGroup" in psc
          and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault"
          and csc.get("readOnlyRootFilesystem") is True and csc.get("allowPrivilegeEscalation") is False
          and csc.get("capabilities", {}).get("drop") == ["ALL"],
          "Deployment: non-root 65532, read-only root, no privilege escalation, drop ALL, RuntimeDefault")
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    ann = spec["template"].get("metadata", {}).get("annotations", {})
    probes = {k: c.get(k, {}).get("httpGet", {}) for k in ("livenessProbe", "readinessProbe")}
    check(probes["livenessProbe"].get("path") == "/healthz" and probes["readinessProbe"].get("path") == "/readyz",
          "Deployment: liveness /healthz, readiness /readyz")
    probe_ports = {ports.get(p.get("port"), p.get("port")) for p in probes.values()}
    args = c.get("args") or []
    k_config = args[args.index("--config") + 1] if "--config" in args else None
    cfg_mount = next((m for m in mounts.values() if k_config and m["mountPath"] == os.path.dirname(k_config)), None)
    check(cfg_mount and "subPath" not in cfg_mount and "configMap" in vols.get(cfg_mount["name"], {}),
          "Deployment: config folder mounted from the ConfigMap without subPath", str(cfg_mount))
    cm_name = cfg_mount and vols[cfg_mount["name"]]["configMap"]["name"]
    cm = objs.get(("ConfigMap", cm_name), {}).get("data", {})
    conf_key = k_config and os.path.basename(k_config)
    kcfg = load_all(cm.get(conf_key, ""), f"ConfigMap {conf_key}")
    kcfg = (kcfg or [{}])[0]
    roles_key = (kcfg.get("source") or {}).get("yaml")
    kroles = load_all(cm.get(roles_key, "") if roles_key else "", f"ConfigMap {roles_key}")
    check_config(kcfg, (kroles or [None])[0], "ConfigMap config")
    listen_port = port_of((kcfg.get("http") or {}).get("listen", "127.0.0.1:0"))
    check(str((kcfg.get("http") or {}).get("listen", "")).startswith("0.0.0.0:"),
          "ConfigMap config: http.listen on 0.0.0.0 (reachable by probes)")
    check({listen_port} == probe_ports == {ports.get("http")} and ann.get("prometheus.io/port") == str(listen_port)
          and ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/path") == "/metrics",
          f"http.listen port {listen_port} = containerPort = probe ports = prometheus.io/port",
          f"ports {ports}, probes {probe_ports}, annotations {ann}")
    tf = (kcfg.get("studio") or {}).get("token_file", "")
    tmount = next((m for m in mounts.values() if m["mountPath"] == os.path.dirname(tf)), None)
    tvol = tmount and vols.get(tmount["name"], {}).get("secret")
    sec = tvol and objs.get(("Secret", tvol["secretName"]))
    items = {i["path"]: i["key"] for i in (tvol or {}).get("items", [])} if tvol else {}
    key = items.get(os.path.basename(tf), os.path.basename(tf))
    check(sec and key in (sec.get("stringData") or {}) | (sec.get("data") or {}),
          "token_file is a key of the mounted Secret", f"{tf}")
    hmount = next((m for m in mounts.values() if m["mountPath"] == os.path.dirname(str(kcfg.get("history", "")))), None)
    hvol = hmount and vols.get(hmount["name"], {}).get("persistentVolumeClaim")
    check(hvol and ("PersistentVolumeClaim", hvol["claimName"]) in objs and not hmount.get("readOnly"),
          "history is on the PersistentVolumeClaim, mounted writable", str(kcfg.get("history")))
    svc = by_kind("Service")
    sel = spec["selector"]["matchLabels"]
    tpl_labels = spec["template"]["metadata"]["labels"]
    check(svc and all(s["spec"]["selector"].items() <= tpl_labels.items() for s in svc)
          and all(p.get("targetPort") in (listen_port, "http") for s in svc for p in s["spec"]["ports"]),
          "Service selects the pod and targets the metrics port")
    check(sel.items() <= tpl_labels.items(), "Deployment selector matches its template labels")
    # 0.0.0.0 is narrowed by a NetworkPolicy: Ingress only to the listen port, from a named source.
    pols = [p for p in by_kind("NetworkPolicy")
            if (p["spec"].get("podSelector", {}).get("matchLabels") or {}).items() <= tpl_labels.items()]
    rules = [r for p in pols for r in (p["spec"].get("ingress") or [])]
    check(pols and all("Ingress" in p["spec"].get("policyTypes", []) for p in pols)
          and rules and all(r.get("from") and r.get("ports") for r in rules)
          and all(pt.get("port") in (listen_port, "http") for r in rules for pt in r["ports"]),
          "NetworkPolicy selects the pod and admits only named sources to the metrics port",
          str([p["spec"] for p in pols]))
    # Containerfile default command = the Deployment's args; exposes the same port.
    cf = open("deploy/Containerfile").read()
    m = re.search(r"^CMD (\[.*\])$", cf, re.M)
    import json
    cmd = json.loads(m.group(1)) if m else None
    check(cmd == args, "Containerfile CMD = Deployment args", f"{cmd} vs {args}")
    check(re.search(rf"^EXPOSE {listen_port}$", cf, re.M) and re.search(r"^USER 65532", cf, re.M)
          and re.search(r"^ENTRYPOINT \[\"/usr/local/bin/studio-role-sync\"\]$", cf, re.M)
          and "cargo build --release --locked" in cf,
          "Containerfile: cargo build --release --locked, USER 65532, ENTRYPOINT, EXPOSE")
    image = c.get("image", "")
    check(image.split(":")[0] == "studio-role-sync", "Deployment image is studio-role-sync", image)
    # Write the configs out for check (d).
    os.makedirs(os.path.join(work, "k8s"), exist_ok=True)
    for k, v in cm.items():
        open(os.path.join(work, "k8s", k), "w").write(v)
    open(os.path.join(work, "k8s.config"), "w").write(conf_key or "")

# ---- Kubernetes, high availability (deploy/kubernetes/ha): two daemons on one PostgreSQL
# history, no volume.
hdir = f"{kdir}/ha"
hkust = (docs.get(f"{hdir}/kustomization.yaml") or [{}])[0]
hfiles = sorted(os.path.basename(p) for p in glob.glob(f"{hdir}/*.y*ml")
                if not os.path.basename(p).startswith("kustomization."))
check(sorted(hkust.get("resources") or []) == hfiles and any(
          i.get("name") == "studio-role-sync" for i in hkust.get("images") or []),
      "ha/kustomization.yaml lists every manifest, with the image entry",
      f"{hkust.get('resources')} vs {hfiles}")
hobjs = {}
for f in hfiles:
    for d in docs[f"{hdir}/{f}"]:
        hobjs[(d.get("kind"), (d.get("metadata") or {}).get("name"))] = d
check(not any("namespace" in (d.get("metadata") or {}) for d in hobjs.values()),
      "ha manifests are namespace-agnostic")
hdeps = [o for (k, _), o in hobjs.items() if k == "Deployment"]
check(len(hdeps) == 1, "ha: one Deployment")
if hdeps:
    hspec = hdeps[0]["spec"]
    hpod = hspec["template"]["spec"]
    hc = hpod["containers"][0]
    tpl = hspec["template"]["metadata"]["labels"]
    roll = hspec.get("strategy") or {}
    check(hspec.get("replicas") == 2 and roll.get("type") == "RollingUpdate"
          and (roll.get("rollingUpdate") or {}).get("maxUnavailable") == 0,
          "ha Deployment: 2 replicas, a rolling update that keeps one running")
    # Any volume but the config, the Secret and a scratch /tmp would be state on one node.
    kept = [v["name"] for v in hpod.get("volumes", [])
            if not ({"configMap", "secret", "emptyDir"} & v.keys())]
    check(not kept and not any(k in ("PersistentVolumeClaim", "StatefulSet") for k, _ in hobjs),
          "ha: no volume but the ConfigMap, the Secret and an emptyDir (the state is in PostgreSQL)",
          f"volumes: {kept}")
    anti = (hpod.get("affinity") or {}).get("podAntiAffinity") or {}
    terms = (anti.get("preferredDuringSchedulingIgnoredDuringExecution") or []) + (
        anti.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
    check(terms, "ha Deployment: pod anti-affinity keeps the daemons apart")
    pdbs = [o for (k, _), o in hobjs.items() if k == "PodDisruptionBudget"]
    check(pdbs and all(p["spec"].get("minAvailable") == 1
                       and p["spec"]["selector"]["matchLabels"].items() <= tpl.items() for p in pdbs),
          "ha: a PodDisruptionBudget keeps one daemon running (minAvailable 1)")
    hprobes = {k: hc.get(k, {}).get("httpGet", {}).get("path") for k in ("livenessProbe", "readinessProbe")}
    check(hprobes == {"livenessProbe": "/healthz", "readinessProbe": "/readyz"},
          "ha Deployment: liveness /healthz, readiness /readyz", str(hprobes))
    hsc = hc.get("securityContext", {})
    check(hsc.get("readOnlyRootFilesystem") is True and hsc.get("allowPrivilegeEscalation") is False
          and hsc.get("capabilities", {}).get("drop") == ["ALL"],
          "ha Deployment: read-only root, no privilege escalation, drop ALL")
    hargs = hc.get("args") or []
    hconf = hargs[hargs.index("--config") + 1] if "--config" in hargs else ""
    hcm = next((o for (k, _), o in hobjs.items() if k == "ConfigMap"), {}).get("data", {})
    hcfg = (load_all(hcm.get(os.path.basename(hconf), ""), "ha ConfigMap config") or [{}])[0]
    hist = hcfg.get("history") if isinstance(hcfg.get("history"), dict) else {}
    env = {e["name"]: e for e in hc.get("env", [])}
    ref = ((env.get(hist.get("url_env")) or {}).get("valueFrom") or {}).get("secretKeyRef") or {}
    hsec = hobjs.get(("Secret", ref.get("name")), {})
    check(ref and ref.get("key") in (hsec.get("stringData") or {}) | (hsec.get("data") or {}),
          "ha: history.url_env names an env var from a key of the Secret", str(hist))
    check((hcfg.get("ha") or {}).get("lease"), "ha ConfigMap config: ha.lease is set")
    hsvc = [o for (k, _), o in hobjs.items() if k == "Service"]
    check(hsvc and all(s["spec"]["selector"].items() <= tpl.items()
                       and all(p.get("targetPort") == "http" for p in s["spec"]["ports"]) for s in hsvc),
          "ha: a Service selects the pods and targets the http port")
    # NetworkPolicy: ingress as in the single-replica manifests; where egress is restricted,
    # the daemons must still reach DNS, Studio and the PostgreSQL port of the Secret's URL.
    from urllib.parse import urlsplit
    hurl = ((hsec.get("stringData") or {}).get(ref.get("key")) or "") if ref else ""
    try:
        pg_port = urlsplit(hurl).port or 5432
    except ValueError:
        pg_port = None
    hpols = [o for (k, _), o in hobjs.items() if k == "NetworkPolicy"
             and (o["spec"].get("podSelector", {}).get("matchLabels") or {}).items() <= tpl.items()]
    hin = [r for p in hpols for r in (p["spec"].get("ingress") or [])]
    check(hpols and hin and all(r.get("from") and r.get("ports") for r in hin)
          and all(pt.get("port") == "http" for r in hin for pt in r["ports"]),
          "ha NetworkPolicy admits only named sources to the http port")
    egress_ports = {pt.get("port") for p in hpols for r in (p["spec"].get("egress") or [])
                    for pt in (r.get("ports") or [])}
    limits_egress = any("Egress" in p["spec"].get("policyTypes", []) for p in hpols)
    check(not limits_egress or {pg_port, 443, 53} <= egress_ports,
          "ha NetworkPolicy lets the daemons reach PostgreSQL, Studio (443) and DNS",
          f"PostgreSQL port {pg_port}, egress ports {sorted(map(str, egress_ports))}")
    os.makedirs(os.path.join(work, "k8s-ha"), exist_ok=True)
    for k, v in hcm.items():
        open(os.path.join(work, "k8s-ha", k), "w").write(v)
    open(os.path.join(work, "k8s-ha.config"), "w").write(os.path.basename(hconf))

for ok, what, detail in results:
    print(("PASS  " if ok else "FAIL  ") + what + ("" if ok or not detail else f"\n      | {detail}"))
sys.exit(1 if not all(ok for ok, _, _ in results) else 0)
EOF
consistency_rc=$?
set -e
[[ $consistency_rc -eq 0 ]] || FAILED=$((FAILED + 1))

# ---- (d) the real binary accepts the example configs -------------------------------------
if [[ -n "${STUDIO_ROLE_SYNC_BIN:-}" && -x $BIN ]]; then
  echo "== example configs against \`$BIN validate\`"
  printf 'verify-placeholder-token\n' >"$WORK/token"
  mkdir -p "$WORK/systemd"
  cp deploy/systemd/roles.yaml "$WORK/systemd/roles.yaml"
  # Same config, with the secret and state paths pointed into the scratch folder.
  rewrite() { # src dst
    "$PY" - "$1" "$2" "$WORK" <<'EOF'
import sys, yaml
src, dst, work = sys.argv[1:]
cfg = yaml.safe_load(open(src))
cfg["studio"]["token_file"] = f"{work}/token"
# A PostgreSQL history stays: url_env comes from the environment, url_file is pointed at a
# stand-in URL in the scratch folder (the credential systemd would hand over).
hist = cfg.get("history")
if isinstance(hist, dict) and "url_file" in hist:
    hist["url_file"] = f"{work}/history-url"
elif not (isinstance(hist, dict) and "url_env" in hist):
    cfg["history"] = f"{work}/state/history.db"
open(dst, "w").write(yaml.safe_dump(cfg, sort_keys=False))
EOF
  }
  validate_example() { # label config-to-rewrite-in-place
    set +e
    rewrite "$2" "$2.tmp" && mv "$2.tmp" "$2"
    out=$(env -u STUDIO_ROLE_SYNC_CONFIG timeout 60 "$BIN" --config "$2" validate 2>&1)
    rc=$?
    set -e
    if [[ $rc -eq 0 ]]; then
      pass "studio-role-sync validate accepts $1"
    else
      fail "studio-role-sync validate rejects $1 (exit $rc):"
      printf '%s\n' "$out" | indent
    fi
  }
  cp deploy/systemd/studio-role-sync.yaml "$WORK/systemd/studio-role-sync.yaml"
  validate_example deploy/systemd/studio-role-sync.yaml "$WORK/systemd/studio-role-sync.yaml"
  # validate reads the history's URL (it does not connect): a stand-in for ha.conf's credential.
  printf 'postgres://verify@127.0.0.1:5432/verify\n' >"$WORK/history-url"
  mkdir -p "$WORK/systemd-ha"
  cp deploy/systemd/roles.yaml "$WORK/systemd-ha/roles.yaml"
  validate_example "deploy/systemd/studio-role-sync.yaml with deploy/systemd/ha.conf's history" \
    "$WORK/systemd-ha/studio-role-sync.yaml"
  if [[ -s $WORK/k8s.config ]]; then
    k8s_conf=$(<"$WORK/k8s.config")
    validate_example "$K8S_DIR/configmap.yaml ($k8s_conf)" "$WORK/k8s/$k8s_conf"
  else
    fail "no config found in the ConfigMap to validate"
  fi
  if [[ -s $WORK/k8s-ha.config ]]; then
    k8s_ha_conf=$(<"$WORK/k8s-ha.config")
    # validate reads the history's URL from the variable the config names; it does not connect.
    STUDIO_ROLE_SYNC_HISTORY_URL=postgres://verify@127.0.0.1:5432/verify \
      validate_example "$K8S_DIR/ha/configmap.yaml ($k8s_ha_conf)" "$WORK/k8s-ha/$k8s_ha_conf"
  else
    fail "no config found in the high-availability ConfigMap to validate"
  fi
else
  info "(d) skipped: set STUDIO_ROLE_SYNC_BIN to check the example configs with the real binary"
fi

echo
if [[ $FAILED -eq 0 ]]; then
  echo "verify: OK, every deployment check passed"
else
  echo "verify: FAILED; see the FAIL lines above"
  exit 1
fi
