#!/usr/bin/env bash
# Creates the mutual-TLS Secrets the plain manifests expect (the chart generates them itself):
#   vmkernel-ca                 ca.crt, tls.crt, tls.key   the CA (keep its key safe; it signs new certificates)
#   vmkernel-vmkerneld-tls      ca.crt, tls.crt, tls.key   vmkerneld's server certificate (serverAuth)
#   vmkernel-vm-operator-tls    ca.crt, tls.crt, tls.key   the operator's client certificate (clientAuth)
# Usage: deploy/make-certificates.sh [NAMESPACE] [DAYS]      (default vmkernel-system, 3650)
# Uses kubectl's current context (or $KUBECONFIG). Existing Secrets are left alone: delete them to re-issue.
set -euo pipefail
namespace=${1:-vmkernel-system}
days=${2:-3650}
prefix=vmkernel

for tool in openssl kubectl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "make-certificates: error: '$tool' not found" >&2; exit 1; }
done

existing=$(kubectl get secret -n "$namespace" "$prefix-ca" "$prefix-vmkerneld-tls" "$prefix-vm-operator-tls" \
  --ignore-not-found -o name 2>/dev/null | wc -l)
if [ "$existing" -eq 3 ]; then
  echo "make-certificates: the three Secrets exist in $namespace; nothing to do" >&2
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
  -subj "/CN=vmkernel-operator CA" -keyout ca.key -out ca.crt \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

issue() { # name common-name extended-key-usage [subjectAltName]
  local name=$1 cn=$2 eku=$3 san=${4:-}
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } >"$name.ext"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$cn" \
    -keyout "$name.key" -out "$name.csr" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
    -extfile "$name.ext" -out "$name.crt" 2>/dev/null
}
daemon="$prefix-vmkerneld"
issue vmkerneld vmkerneld serverAuth "DNS:$daemon,DNS:$daemon.$namespace,DNS:$daemon.$namespace.svc,DNS:localhost"
issue operator vm-operator clientAuth

kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
secret() { # name crt key
  kubectl create secret generic "$1" -n "$namespace" --type=kubernetes.io/tls \
    --from-file=ca.crt=ca.crt --from-file=tls.crt="$2" --from-file=tls.key="$3" --dry-run=client -o yaml |
    kubectl apply -f -
}
secret "$prefix-ca" ca.crt ca.key
secret "$prefix-vmkerneld-tls" vmkerneld.crt vmkerneld.key
secret "$prefix-vm-operator-tls" operator.crt operator.key
echo "make-certificates: created the CA, vmkerneld and operator certificates in namespace $namespace (valid $days days)" >&2
