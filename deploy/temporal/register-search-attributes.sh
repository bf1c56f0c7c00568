#!/bin/sh
# One-shot (compose service temporal-setup): registers the search attributes agentry writes, in the namespace
# the processes use. Safe to run again: attributes that exist are left alone.
set -eu
: "${TEMPORAL_ADDRESS:?}"
namespace=${TEMPORAL_NAMESPACE:-default}

until temporal operator namespace describe --namespace "$namespace" >/dev/null 2>&1; do
  echo "waiting for namespace $namespace"
  sleep 2
done

existing=$(temporal operator search-attribute list --namespace "$namespace")
for name in AgentryTenant AgentryPipeline AgentryStatus; do
  if printf '%s\n' "$existing" | grep -qw "$name"; then
    echo "search attribute $name exists"
  else
    temporal operator search-attribute create --namespace "$namespace" --name "$name" --type Keyword
    echo "search attribute $name created"
  fi
done
