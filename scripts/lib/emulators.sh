# Shared by scripts/test and scripts/demo: installs and runs the local
# emulators the project needs. Source it; it defines functions only.
#
#   ensure_venv        .venv with pinned moto[server] (and awscli), made once
#   start_moto         moto_server on a free 127.0.0.1 port; exports AWS_* for it
#   start_real_kube    a real kube-apiserver + kube-controller-manager from
#                      ../shared/tools/kube (KFP_KUBE_TOOLS), service-account
#                      issuer = moto's EKS issuer; exports KFP_TEST_REAL_KUBECONFIG
#   stop_emulators     stops whatever start_* started (call it from a trap)

MOTO_VERSION=5.2.5
AWSCLI_VERSION=1.44.14
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV="$ROOT/.venv"
RUN_DIR="$ROOT/.emulators"
EMULATOR_PIDS=()
KUBE_TOOLS=${KFP_KUBE_TOOLS:-$ROOT/../shared/tools/kube}
KUBE_DIRS=()

log() { printf '==> %s\n' "$*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() { # url seconds
  local url=$1 deadline=$((SECONDS + $2))
  until python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$url" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      log "gave up waiting for $url"
      return 1
    fi
    sleep 0.2
  done
}

ensure_venv() {
  local stamp="$VENV/.installed-moto-$MOTO_VERSION-awscli-$AWSCLI_VERSION"
  if [[ -f "$stamp" ]]; then return 0; fi
  log "installing moto[server]==$MOTO_VERSION and awscli==$AWSCLI_VERSION into .venv"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" "awscli==$AWSCLI_VERSION"
  touch "$stamp"
}

# moto_server on a free port, its URL in MOTO_URL. $1 names its log; with
# $2 = unsigned-ok, moto's SigV4 check alone is off (authorization stays on):
# under enforcement it recomputes signatures from the parsed form body and
# refuses the Rust SDK's IAM writes that carry policy documents.
run_moto() {
  ensure_venv
  mkdir -p "$RUN_DIR"
  local port
  port=$(free_port)
  if [[ "${2:-}" == unsigned-ok ]]; then
    "$VENV/bin/python" -c 'import sys
import moto.iam.access_control as access
access.IAMRequestBase.check_signature = lambda self: None
from moto.server import main
main(["-H", "127.0.0.1", "-p", sys.argv[1]])' "$port" >"$RUN_DIR/$1.log" 2>&1 &
  else
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$RUN_DIR/$1.log" 2>&1 &
  fi
  EMULATOR_PIDS+=($!)
  MOTO_URL="http://127.0.0.1:$port"
  wait_http "$MOTO_URL/moto-api/" 60 || { cat "$RUN_DIR/$1.log" >&2; return 1; }
}

start_moto() {
  run_moto moto || return 1
  export AWS_ENDPOINT_URL="$MOTO_URL"
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-west-2 AWS_DEFAULT_REGION=us-west-2
  unset AWS_PROFILE AWS_SESSION_TOKEN
  export KFP_TEST_AWS_ENDPOINT="$AWS_ENDPOINT_URL"
  # Un-ignores the tests that need moto (tests/build.rs).
  export KFP_EMULATORS=1
  log "moto $MOTO_VERSION listening on $AWS_ENDPOINT_URL"
}

# A second moto whose IAM policy enforcement the verify and permissions
# tests switch on (POST /moto-api/reset-auth): enforcing breaks moto's EKS,
# so the other tests keep the first one; its signature check is off (see
# run_moto), its authorization on. Exports its URL.
start_enforcing_moto() {
  run_moto moto-enforcing unsigned-ok || return 1
  export KFP_TEST_AWS_ENFORCING_ENDPOINT="$MOTO_URL"
  log "moto (IAM policies enforced on demand) listening on $MOTO_URL"
}

stop_emulators() {
  local pid dir
  for dir in "${KUBE_DIRS[@]}"; do
    "$KUBE_TOOLS/stop" "$dir" >/dev/null 2>&1 || true
  done
  KUBE_DIRS=()
  for pid in "${EMULATOR_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${EMULATOR_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  EMULATOR_PIDS=()
KUBE_TOOLS=${KFP_KUBE_TOOLS:-$ROOT/../shared/tools/kube}
KUBE_DIRS=()
}

# The Kubernetes API fake (crates/testkit), which also plays the Kubeflow
# profile controller; exports KUBECONFIG for it.
start_fake_apiserver() { # [RECONCILE_DELAY_MS, default 200]
  mkdir -p "$RUN_DIR"
  local bin="$ROOT/target/debug/kfp-tenant-fake-apiserver"
  [[ -x "$bin" ]] || cargo build --locked -q -p kfp-tenant-testkit --bin kfp-tenant-fake-apiserver
  export KUBECONFIG="$RUN_DIR/fake.kubeconfig"
  rm -f "$KUBECONFIG"
  "$bin" --kubeconfig "$KUBECONFIG" --reconcile-delay-ms "${1:-200}" >"$RUN_DIR/apiserver.url" 2>"$RUN_DIR/apiserver.log" &
  EMULATOR_PIDS+=($!)
  local deadline=$((SECONDS + 30))
  until [[ -s "$RUN_DIR/apiserver.url" && -s "$KUBECONFIG" ]]; do
    if ((SECONDS >= deadline)); then cat "$RUN_DIR/apiserver.log" >&2; return 1; fi
    sleep 0.1
  done
  log "Kubernetes API fake listening on $(cat "$RUN_DIR/apiserver.url")"
}

# An EKS cluster in moto and the account's IAM OIDC provider for its issuer,
# as eksctl would leave them.
create_eks_cluster() { # name
  local aws="$VENV/bin/aws --endpoint-url $AWS_ENDPOINT_URL --region $AWS_REGION --output text"
  $aws eks create-cluster --name "$1" --kubernetes-version 1.31 \
    --role-arn arn:aws:iam::123456789012:role/eks-cluster \
    --resources-vpc-config subnetIds=subnet-0123456789abcdef0 >/dev/null
  local issuer
  issuer=$($aws eks describe-cluster --name "$1" --query cluster.identity.oidc.issuer)
  $aws iam create-open-id-connect-provider --url "$issuer" --client-id-list sts.amazonaws.com \
    --thumbprint-list 9e99a48a9960b14926bb7f3b02e22da2b0ab7280 >/dev/null
  log "EKS cluster $1 with OIDC issuer $issuer"
}

create_bucket() { # name
  "$VENV/bin/aws" --endpoint-url "$AWS_ENDPOINT_URL" --region "$AWS_REGION" s3 mb "s3://$1" >/dev/null
  log "S3 bucket $1"
}

# moto's EKS OIDC issuer (one per moto process, the same for every cluster).
moto_issuer() {
  local aws="$VENV/bin/aws --endpoint-url $AWS_ENDPOINT_URL --region $AWS_REGION --output text"
  $aws eks create-cluster --name kfp-tenant-issuer --kubernetes-version 1.31 \
    --role-arn arn:aws:iam::123456789012:role/eks-cluster \
    --resources-vpc-config subnetIds=subnet-0123456789abcdef0 >/dev/null 2>&1 || true
  $aws eks describe-cluster --name kfp-tenant-issuer --query cluster.identity.oidc.issuer
}

# A real control plane (etcd, kube-apiserver, kube-controller-manager, the
# Profile CRD) from ../shared/tools/kube. Sets REAL_KUBE to "started" and
# exports KFP_TEST_REAL_KUBECONFIG, or sets REAL_KUBE_MISSING to why not.
# KFP_REQUIRE_REAL_KUBE=1 (CI) makes a missing control plane an error.
REAL_KUBE=""
REAL_KUBE_MISSING=""
start_real_kube() {
  if [[ ! -x "$KUBE_TOOLS/start" ]]; then
    REAL_KUBE_MISSING="$KUBE_TOOLS/start does not exist (set KFP_KUBE_TOOLS to the folder of a kube start/stop pair)"
    if [[ -n "${KFP_REQUIRE_REAL_KUBE:-}" ]]; then
      log "KFP_REQUIRE_REAL_KUBE is set, but $REAL_KUBE_MISSING"
      return 1
    fi
    return 0
  fi
  mkdir -p "$RUN_DIR"
  local dir="$RUN_DIR/kube" issuer
  issuer=$(moto_issuer)
  "$KUBE_TOOLS/stop" "$dir" >/dev/null 2>&1 || true
  KUBE_DIRS+=("$dir")
  if ! SA_ISSUER="$issuer" "$KUBE_TOOLS/start" "$dir" >"$RUN_DIR/kube.log" 2>&1; then
    cat "$RUN_DIR/kube.log" >&2
    return 1
  fi
  export KFP_TEST_REAL_KUBECONFIG="$dir/kubeconfig"
  # Un-ignores the tests on the real API server (tests/build.rs).
  export KFP_REAL_KUBE=1
  REAL_KUBE=started
  log "real kube-apiserver $(grep -o 'https://127.0.0.1:[0-9]*' "$KFP_TEST_REAL_KUBECONFIG" | head -1), service-account issuer $issuer"
}

# The testkit's Kubeflow profile controller against the cluster in KUBECONFIG
# (a real control plane has none).
start_profile_controller() {
  local bin="$ROOT/target/debug/kfp-tenant-profile-controller"
  [[ -x "$bin" ]] || cargo build --locked -q -p kfp-tenant-testkit --bin kfp-tenant-profile-controller
  "$bin" --kubeconfig "$KUBECONFIG" --reconcile-delay-ms 200 2>"$RUN_DIR/controller.log" &
  EMULATOR_PIDS+=($!)
  log "Kubeflow profile controller (testkit) running"
}
