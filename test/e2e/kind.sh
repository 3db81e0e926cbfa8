#!/usr/bin/env bash
# The end-to-end suite on a kind cluster: image, helm install, a PVC of the Rewind
# StorageClass, writes from a pod, a RestorePoint, a VolumeRestore into a new PVC, and the
# restored bytes checked from another pod. It needs a Docker daemon, kind, and registry
# access for kind's node image; where any is missing it says so and exits 0 with
# "e2e: did not run: WHY" (scripts/test.sh prints that line), so a host without them is
# never mistaken for a passing run.
#
#   bash test/e2e/kind.sh            # create cluster rewind-e2e, run, delete it
#   KEEP_CLUSTER=1 bash test/e2e/kind.sh
#
# Exit 0 with "e2e: N passed, 0 failed" when every step holds; non-zero on the first failure.
set -uo pipefail
cd "$(dirname "$0")/../.."

CLUSTER=${E2E_CLUSTER:-rewind-e2e}
NS=e2e
IMAGE=rewind:e2e
passed=0

skip() { echo "e2e: did not run: $*"; exit 0; }
fail() { echo "e2e: FAILED at: $*"; echo "e2e: $passed passed, 1 failed"; exit 1; }
step() { echo "e2e: --- $*"; }
ok() { passed=$((passed + 1)); echo "e2e: ok: $*"; }

command -v docker >/dev/null || skip "docker is not installed"
docker info >/dev/null 2>&1 || skip "no Docker daemon answers (docker info failed)"
command -v kind >/dev/null || skip "kind is not installed (go install sigs.k8s.io/kind@latest)"
command -v kubectl >/dev/null || skip "kubectl is not installed"
HELM=$(bash scripts/helm.sh 2>/dev/null) || skip "helm is not available (scripts/helm.sh)"

cleanup() {
  [ "${KEEP_CLUSTER:-}" = 1 ] || kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "cluster"
kind get clusters 2>/dev/null | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 180s || fail "kind create cluster"
export KUBECONFIG
KUBECONFIG=$(mktemp -t rewind-e2e-kubeconfig.XXXXXX)
kind get kubeconfig --name "$CLUSTER" >"$KUBECONFIG" || fail "kind get kubeconfig"
ok "cluster $CLUSTER"

step "image"
docker build -t "$IMAGE" . || fail "docker build"
kind load docker-image "$IMAGE" --name "$CLUSTER" || fail "kind load docker-image"
ok "image $IMAGE loaded"

step "install"
kubectl apply -f crds/ || fail "kubectl apply -f crds/"
"$HELM" upgrade --install rewind charts/rewind -n rewind-system --create-namespace \
  --set image.repository=rewind --set image.tag=e2e --set image.pullPolicy=Never \
  --set csi.enabled=true --set csi.storageClass.create=true --wait --timeout 5m || fail "helm install (the CSI driver must be in the chart)"
ok "helm install"

step "workload"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply -n "$NS" -f - <<'EOF' || fail "PVC and writer pod"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], storageClassName: rewind, resources: {requests: {storage: 64Mi}}}
---
apiVersion: cdp.rewind.dev/v1alpha1
kind: ProtectedVolume
metadata: {name: data}
spec: {pvcName: data, durability: flush-sync}
---
apiVersion: v1
kind: Pod
metadata: {name: writer}
spec:
  restartPolicy: Never
  containers:
    - name: w
      image: busybox:stable
      command: [sh, -c, 'dd if=/dev/urandom of=/data/a bs=1M count=8 && sync && sha256sum /data/a > /data/a.sha && sync && sleep 3600']
      volumeMounts: [{name: d, mountPath: /data}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: data}}]
EOF
kubectl wait -n "$NS" --for=condition=Protected rwpv/data --timeout=180s || fail "ProtectedVolume Protected"
kubectl wait -n "$NS" --for=condition=Ready pod/writer --timeout=180s || fail "writer pod Ready"
for _ in $(seq 1 60); do kubectl exec -n "$NS" writer -- test -s /data/a.sha 2>/dev/null && break; sleep 2; done
want=$(kubectl exec -n "$NS" writer -- cat /data/a.sha | cut -d' ' -f1) || fail "read the written sha256"
[ -n "$want" ] || fail "writer produced no sha256"
ok "wrote 8 MiB, sha256 $want"

step "restore point"
PATH="$PWD/bin:$PATH" kubectl create restorepoint before -n "$NS" --volume data || fail "kubectl create restorepoint"
kubectl wait -n "$NS" --for=jsonpath='{.status.phase}'=Ready rwrp/before --timeout=120s || fail "RestorePoint Ready"
kubectl exec -n "$NS" writer -- sh -c 'dd if=/dev/urandom of=/data/a bs=1M count=8 conv=notrunc && sync' || fail "overwrite after the point"
ok "RestorePoint before, then overwritten"

step "volume restore"
kubectl apply -n "$NS" -f - <<'EOF' || fail "VolumeRestore"
apiVersion: cdp.rewind.dev/v1alpha1
kind: VolumeRestore
metadata: {name: back}
spec: {volume: data, source: {restorePoint: before}, target: {newPVC: {name: data-before}}}
EOF
kubectl wait -n "$NS" --for=jsonpath='{.status.phase}'=Completed rwvr/back --timeout=300s || fail "VolumeRestore Completed"
kubectl apply -n "$NS" -f - <<'EOF' || fail "reader pod"
apiVersion: v1
kind: Pod
metadata: {name: reader}
spec:
  restartPolicy: Never
  containers:
    - name: r
      image: busybox:stable
      command: [sh, -c, 'sha256sum /data/a | cut -d" " -f1']
      volumeMounts: [{name: d, mountPath: /data}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: data-before}}]
EOF
kubectl wait -n "$NS" --for=jsonpath='{.status.phase}'=Succeeded pod/reader --timeout=300s || fail "reader pod Succeeded"
got=$(kubectl logs -n "$NS" reader | tail -1)
[ "$got" = "$want" ] || fail "restored file sha256 $got, want $want"
ok "restored PVC holds the file as it was at the point"

echo "e2e: $passed passed, 0 failed"
