# Shared set-up for scripts/test and bench/: installs missing tools from Debian's and PyPI's
# registries. Sourced, not run.

apt_updated=0
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if [ $apt_updated -eq 0 ]; then
    $sudo apt-get update -qq >/dev/null
    apt_updated=1
  fi
  echo "installing: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

pip_install() {
  # $1.. are "module:package" pairs; installs the packages whose module does not import.
  local missing=()
  for pair in "$@"; do
    python3 -c "import ${pair%%:*}" 2>/dev/null || missing+=("${pair#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}"
  python3 -m pip install -q "${missing[@]}"
}

# What building Tollgate needs from Debian: SQLite headers for GRDB, libmaxminddb for geo rules.
ensure_build_deps() {
  apt_install libsqlite3-dev libmaxminddb-dev
}

ensure_test_tools() {
  command -v python3 >/dev/null || apt_install python3 python3-pip
  ensure_build_deps
  ensure_postgres
  # Chromium and its driver for the real-browser tests; certutil puts the HTTPS test's CA in a
  # throwaway NSS database Chromium trusts; curl and h2load speak HTTP/2 to the gateway.
  apt_install chromium chromium-driver libnss3-tools nghttp2-client curl
  # mmdb_writer writes the geo tests' MaxMind databases.
  pip_install pytest:pytest cryptography:cryptography selenium:selenium detect_secrets:detect-secrets jwt:pyjwt \
    schemathesis:schemathesis mmdb_writer:mmdb-writer netaddr:netaddr aiosmtpd:aiosmtpd h2:h2
}

# PostgreSQL's server binaries for the private test cluster (scripts/pg_cluster.py). The package's
# own cluster and service are not used; on install, policy-rc.d keeps apt from starting them.
ensure_postgres() {
  command -v initdb >/dev/null && return 0
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && return 0
  local policy=/usr/sbin/policy-rc.d created=0
  if [ "$(id -u)" -eq 0 ] && [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created=1
  fi
  apt_install postgresql
  [ $created -eq 1 ] && rm -f "$policy"
  return 0
}

# The demo's mail catcher (scripts/mail_catcher.py) for the two-step sign-up.
ensure_demo_tools() {
  command -v python3 >/dev/null || apt_install python3 python3-pip
  pip_install aiosmtpd:aiosmtpd
}

ensure_bench_tools() {
  ensure_build_deps
  apt_install nginx-light wrk nghttp2-client
  pip_install jwt:pyjwt cryptography:cryptography
}
