#!/usr/bin/env bash
# Creates the Secrets that deploy/rewind.yaml's workloads mount, the way the chart would
# generate them: the collector's admin token, and one CA signing the collector's server
# certificate and the controller's and shippers' client certificates (mutual TLS).
# A Secret that exists already is left as it is, so running this again rotates nothing.
#
#   NAMESPACE=rewind-system bash deploy/make-secrets.sh    # needs kubectl and openssl
#
# The CA's private key is not kept: to rotate, delete the three TLS Secrets and run it again.
set -euo pipefail
ns=${NAMESPACE:-rewind-system}
name=${NAME:-rewind}
kubectl=${KUBECTL:-kubectl}
days=${CERT_VALIDITY_DAYS:-3650}

exists() { "$kubectl" get secret "$1" -n "$ns" >/dev/null 2>&1; }

if exists "$name-admin-token"; then
  echo "secret $ns/$name-admin-token exists; kept" >&2
else
  token=$(openssl rand -base64 48 | tr -dc 'A-Za-z0-9' | head -c 48)
  "$kubectl" create secret generic "$name-admin-token" -n "$ns" --from-literal=token="$token" >/dev/null
  "$kubectl" label secret "$name-admin-token" -n "$ns" app.kubernetes.io/part-of=rewind app.kubernetes.io/component=collector >/dev/null
  echo "secret $ns/$name-admin-token created" >&2
fi

if exists "$name-collector-tls" && exists "$name-controller-tls" && exists "$name-shipper-tls"; then
  echo "TLS secrets of $ns/$name exist; kept" >&2
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
host="$name-collector.$ns.svc"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days "$days" -subj "/CN=$name-ca" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
sign() { # NAME CN EXTFILE
  openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days "$days" -extfile "$3" 2>/dev/null
}
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:%s,DNS:*.%s,DNS:%s.cluster.local,DNS:*.%s.cluster.local,DNS:%s-collector\n' \
  "$host" "$host" "$host" "$host" "$name" > server.ext
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' > client.ext
sign collector "$name-collector" server.ext
sign controller "$name-controller" client.ext
sign shipper "$name-shipper" client.ext
for c in collector controller shipper; do
  "$kubectl" delete secret "$name-$c-tls" -n "$ns" --ignore-not-found >/dev/null
  "$kubectl" create secret generic "$name-$c-tls" -n "$ns" --type=kubernetes.io/tls \
    --from-file=tls.crt="$c.crt" --from-file=tls.key="$c.key" --from-file=ca.crt=ca.crt >/dev/null
  "$kubectl" label secret "$name-$c-tls" -n "$ns" app.kubernetes.io/part-of=rewind app.kubernetes.io/component="$c" >/dev/null
  echo "secret $ns/$name-$c-tls created" >&2
done
