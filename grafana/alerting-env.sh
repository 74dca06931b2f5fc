#!/bin/sh
# Grafana's entrypoint, second step (after clickhouse-env.sh): write the alerting provisioning
# from the environment, then run the next command (the image's /run.sh).
#
# Why a script and not Grafana's own $VAR interpolation of provisioning files:
# * Grafana leaves a rule's query and expression models as written (QueryV1.mapToModel in
#   pkg/services/provisioning/alerting/rules_types.go uses the raw model so that $__timeFilter
#   survives), so a threshold written as ${VAR} there would reach the threshold expression as text;
# * a contact point with an empty URL fails validation and stops provisioning, so only the ones
#   set in .env may be written.
# Contact point settings keep their ${VAR}: Grafana interpolates those itself (settings go through
# values.JSONValue), so no URL or address is written to disk here.
set -eu
template="${GRAFANA_ALERT_TEMPLATE:-/etc/grafana/alerting/rules.yaml}"
out="${GRAFANA_ALERT_DIR:-/etc/grafana/provisioning/alerting}"

fail() {
  echo "alerting-env: $*" >&2
  exit 64
}

# The thresholds the rules read; grafana/compose.yaml gives each its default.
THRESHOLDS="GRAFANA_ALERT_COST_PER_HOUR_USD GRAFANA_ALERT_APP_COST_PER_HOUR_USD
GRAFANA_ALERT_ERROR_RATE_PERCENT GRAFANA_ALERT_ERROR_MIN_CALLS GRAFANA_ALERT_P95_LATENCY_MS
GRAFANA_ALERT_P95_TTFT_MS GRAFANA_ALERT_STALL_MINUTES GRAFANA_ALERT_QUEUE_PERCENT"

substitutions=""
for name in $THRESHOLDS; do
  eval "value=\${$name:-}"
  case "$value" in
    '' | *[!0-9.]* | *.*.* | .* | *.) fail "$name must be a number such as 10 or 0.5, got '$value' (.env)" ;;
  esac
  substitutions="$substitutions s/\${$name}/$value/g;"
done
minutes="$GRAFANA_ALERT_STALL_MINUTES"
case "$minutes" in
  0 | *.* | 0[0-9]*) fail "GRAFANA_ALERT_STALL_MINUTES must be whole minutes (1 or more), got '$minutes' (.env)" ;;
esac
# The stall rules' query window, in seconds (relativeTimeRange takes seconds).
substitutions="$substitutions s/\${STALL_WINDOW_SECONDS}/$((minutes * 60))/g;"

rm -f "$out"/*.yaml
sed "$substitutions" "$template" >"$out/rules.yaml"
if grep -n '\${' "$out/rules.yaml" >&2; then
  fail "$template names a variable this script does not set (lines above)"
fi

# Contact points: one contact point, llm-gateway, with an integration per destination set. The
# integrations of destinations not set are deleted, in case an earlier start provisioned them
# (Grafana resets the policy before it deletes contact points, so the last one can go).
receivers=""
deletes=""
integration() { # UID TYPE SETTINGS_YAML (set) or UID (not set)
  if [ $# -eq 3 ]; then
    receivers="$receivers
      - uid: $1
        type: $2
        settings:
$3"
  else
    deletes="$deletes
  - orgId: 1
    uid: $1"
  fi
}
if [ -n "${GRAFANA_ALERT_WEBHOOK_URL:-}" ]; then
  integration llm-gateway-webhook webhook '          url: ${GRAFANA_ALERT_WEBHOOK_URL}
          httpMethod: POST'
else
  integration llm-gateway-webhook
fi
if [ -n "${GRAFANA_ALERT_SLACK_WEBHOOK_URL:-}" ]; then
  integration llm-gateway-slack slack '          url: ${GRAFANA_ALERT_SLACK_WEBHOOK_URL}'
else
  integration llm-gateway-slack
fi
if [ -n "${GRAFANA_ALERT_EMAIL_TO:-}" ]; then
  [ -n "${GF_SMTP_HOST:-}" ] || fail "GRAFANA_ALERT_EMAIL_TO needs GRAFANA_SMTP_HOST (host:port) in .env"
  export GF_SMTP_ENABLED=true
  integration llm-gateway-email email '          addresses: ${GRAFANA_ALERT_EMAIL_TO}'
else
  integration llm-gateway-email
fi

{
  echo "# Written by alerting-env.sh from .env; Grafana fills in the \${...} values itself."
  echo "apiVersion: 1"
  if [ -n "$receivers" ]; then
    echo "contactPoints:"
    echo "  - orgId: 1"
    echo "    name: llm-gateway"
    echo "    receivers:$receivers"
    echo "policies:"
    echo "  - orgId: 1"
    echo "    receiver: llm-gateway"
    echo "    group_by: [grafana_folder, alertname]"
  else
    # No destination in .env: the rules still evaluate (and show in Grafana); the policy tree
    # goes back to Grafana's default, which notifies nobody here (no SMTP is configured).
    echo "resetPolicies:"
    echo "  - 1"
  fi
  if [ -n "$deletes" ]; then
    echo "deleteContactPoints:$deletes"
  fi
} >"$out/contact-points.yaml"

exec "$@"
