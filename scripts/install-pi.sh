#!/usr/bin/env bash
# Install the ParkGate gate agent on Raspberry Pi OS (64-bit, bookworm) as a systemd service.
#
#   sudo scripts/install-pi.sh [--models DIR] [--broker-ca FILE] [--no-enable]
#
# Run from a checkout of the repository. What it does (idempotent; safe to run again to upgrade):
#   1. apt: python3-venv, libgl/libglib for OpenCV, v4l-utils, the gpio group's udev rules
#   2. the system user "parkgate" (no login, no home) in the gpio, dialout and video groups
#   3. a venv in /opt/parkgate/venv with this checkout's agent set installed, `parkgate[agent]`
#      (aarch64 wheels from PyPI; none of the cloud's packages)
#   4. models copied to /opt/parkgate/models when --models is given (else fast-alpr downloads them)
#   5. /etc/parkgate/agent.toml from config/agent.example.toml (never overwritten) and an empty,
#      root-only /etc/parkgate/secrets.env for env:NAME secrets (loaded as a systemd credential);
#      --broker-ca: the broker's CA certificate (handed over with `cloud-api provision-lot`'s
#      output) as /etc/parkgate/broker-ca.crt, the agent's [sync] tls_ca_file
#   6. a self-signed HTTPS certificate for the status page, /etc/parkgate/web-cert.pem and
#      web-key.pem (key readable by parkgate only; never overwritten), its SHA-256 printed
#   7. systemd/gate-agent.service into /etc/systemd/system, enabled (started once the config is
#      valid: edit /etc/parkgate/agent.toml, then `systemctl restart gate-agent`)
set -euo pipefail

PREFIX=/opt/parkgate
CONF=/etc/parkgate
MODELS=""
BROKER_CA=""
ENABLE=1
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --models) MODELS="$2"; shift 2 ;;
    --broker-ca) BROKER_CA="$2"; shift 2 ;;
    --no-enable) ENABLE=0; shift ;;
    -h|--help) usage 0 ;;
    *) echo "unknown option: $1" >&2; usage 2 ;;
  esac
done

[ "$(id -u)" -eq 0 ] || { echo "run as root (sudo $0)" >&2; exit 1; }
arch="$(uname -m)"
[ "$arch" = "aarch64" ] || echo "warning: $arch is not aarch64; Raspberry Pi OS 64-bit is the target" >&2

echo "== packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  python3 python3-venv libgl1 libglib2.0-0 v4l-utils ca-certificates >/dev/null
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "Python 3.11+ is required (Raspberry Pi OS bookworm has 3.11)" >&2; exit 1; }

echo "== user and groups"
for group in gpio dialout video; do
  getent group "$group" >/dev/null || groupadd --system "$group"
done
if ! id parkgate >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /var/lib/parkgate --shell /usr/sbin/nologin \
    --user-group parkgate
fi
usermod -a -G gpio,dialout,video parkgate

echo "== venv in $PREFIX/venv"
install -d -m 0755 "$PREFIX"
[ -x "$PREFIX/venv/bin/python" ] || python3 -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install -q --upgrade pip
"$PREFIX/venv/bin/pip" install -q --only-binary=opencv-python-headless,onnxruntime,numpy "$SRC[agent]"
rm -rf "$PREFIX/src" && install -d "$PREFIX/src" && cp -r "$SRC/docs" "$SRC/config" "$PREFIX/src/"

if [ -n "$MODELS" ]; then
  echo "== models from $MODELS"
  install -d -m 0755 "$PREFIX/models"
  cp -r "$MODELS"/. "$PREFIX/models/"
fi

echo "== config in $CONF"
install -d -m 0750 -o root -g parkgate "$CONF"
if [ ! -e "$CONF/agent.toml" ]; then
  install -m 0640 -o root -g parkgate "$SRC/config/agent.example.toml" "$CONF/agent.toml"
  echo "   wrote $CONF/agent.toml: edit the lot id, lanes, camera and relay"
fi
if [ ! -e "$CONF/secrets.env" ]; then
  install -m 0600 -o root -g root /dev/null "$CONF/secrets.env"
  echo "# KEY=value lines; referenced from agent.toml as \"env:KEY\"" >"$CONF/secrets.env"
fi
if [ -n "$BROKER_CA" ]; then
  grep -q -- "-----BEGIN CERTIFICATE-----" "$BROKER_CA" 2>/dev/null \
    || { echo "--broker-ca $BROKER_CA is not a PEM certificate" >&2; exit 2; }
  install -m 0644 -o root -g root "$BROKER_CA" "$CONF/broker-ca.crt"
  echo "   wrote $CONF/broker-ca.crt (the agent's [sync] tls_ca_file)"
fi

echo "== HTTPS certificate for the status page"
if [ ! -e "$CONF/web-cert.pem" ]; then
  # shellcheck disable=SC2046  # one argument per name and address
  "$PREFIX/venv/bin/gate-agent" make-cert --cert "$CONF/web-cert.pem" --key "$CONF/web-key.pem" \
    "$(hostname)" "$(hostname).local" $(hostname -I 2>/dev/null || true)
  chown parkgate:parkgate "$CONF/web-key.pem"
else
  echo "   kept $CONF/web-cert.pem"
fi

echo "== systemd"
install -m 0644 "$SRC/systemd/gate-agent.service" /etc/systemd/system/gate-agent.service
systemctl daemon-reload
if [ "$ENABLE" -eq 1 ]; then
  systemctl enable gate-agent.service
  if (set -a; . "$CONF/secrets.env"; set +a
      "$PREFIX/venv/bin/gate-agent" check-config "$CONF/agent.toml"); then
    systemctl restart gate-agent.service
    echo "   gate-agent started: journalctl -u gate-agent -f"
  else
    echo "   fix $CONF/agent.toml, then: systemctl restart gate-agent" >&2
  fi
fi
echo "done. Status page: https://<this-pi>:8080 (set web.host = \"0.0.0.0\" for the booth LAN;"
echo "     compare the certificate's SHA-256 above with the one your browser shows)"
