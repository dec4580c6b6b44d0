#!/usr/bin/env bash
# Validates deploy/*.yaml offline against the Kubernetes 1.37 OpenAPI schemas (strict:
# unknown fields are errors) with the PyPI package kubernetes-validate, whose 1.37.0
# release ships the 1.37 schemas. Installs it if missing. Exits nonzero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=1.37.0
TOOL_VERSION=1.37.0

if ! python3 -c "import kubernetes_validate" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check "kubernetes-validate==${TOOL_VERSION}"
fi

shopt -s nullglob
files=(deploy/*.yaml)
if [ ${#files[@]} -eq 0 ]; then
  echo "validate-manifests: no deploy/*.yaml" >&2
  exit 1
fi
# kubernetes-validate exits 0 on schema errors in some versions; treat any ERROR line as fatal.
out=$(python3 -m kubernetes_validate --strict -k "$K8S_VERSION" "${files[@]}" 2>&1) || {
  echo "$out" >&2
  exit 1
}
echo "$out"
if grep -q "ERROR" <<<"$out"; then
  echo "validate-manifests: schema errors" >&2
  exit 1
fi
# The validator must reject what it should: an unknown field in strict mode.
canary=$(mktemp --suffix=.yaml)
trap 'rm -f "$canary"' EXIT
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nbogus: 1\n' >"$canary"
if python3 -m kubernetes_validate --strict --quiet -k "$K8S_VERSION" "$canary" >/dev/null 2>&1; then
  echo "validate-manifests: the validator accepted an unknown field; strict mode is not working" >&2
  exit 1
fi
echo "validate-manifests: ${#files[@]} file(s) valid against Kubernetes ${K8S_VERSION} (strict)"
