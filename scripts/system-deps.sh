#!/usr/bin/env bash
# Install the Debian packages that the real-browser, RTSP, TLS, kcat (librdkafka) and compose-validation tests use.
# Without root (or without apt) it says so loudly; those tests then skip with a message.
set -u
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v stunnel4 >/dev/null 2>&1 || command -v stunnel >/dev/null 2>&1 || need+=(stunnel4)
command -v kcat >/dev/null 2>&1 || command -v kafkacat >/dev/null 2>&1 || need+=(kcat)
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || need+=(docker-compose)
/usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer','1.0'); from gi.repository import GstRtspServer" >/dev/null 2>&1 || \
  need+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "!!! system-deps: cannot install ${need[*]} (not root or no apt-get): browser/RTSP/TLS/kcat tests will be SKIPPED" >&2
  exit 0
fi
echo "system-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null \
  || echo "!!! system-deps: apt-get install failed: browser/RTSP/TLS/kcat tests will be SKIPPED" >&2
exit 0
