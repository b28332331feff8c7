#!/usr/bin/env bash
# ensure-services.sh: make sure the machine has what the tests and the dev
# stack need: PostgreSQL and Redis server binaries (and, with --browser,
# Chromium for the browser tests; with --promtool, Prometheus' promtool for
# the alert rules' tests; with --bench, wrk for the reader's benchmarks),
# and, unless --install-only, PostgreSQL and Redis answering on their
# standard local ports.
#
# Missing packages are installed with apt-get when running as root on
# Debian/Ubuntu (one `apt-get update` first); otherwise the script prints
# the exact command to run and fails. Installed-but-stopped servers are
# started when running as root; when they cannot be started, the tests
# still work: shared/testenv then starts throwaway servers from the same
# binaries. When everything is present and running this is a quick no-op.
#
# Used by `make test` (ensure-services.sh --browser --promtool) and by the dev stack
# (`make run` calls it with --install-only when server binaries are missing).
set -euo pipefail

install_only=0
browser=0
promtool=0
bench=0
for arg in "$@"; do
	case "$arg" in
	--install-only) install_only=1 ;;
	--browser) browser=1 ;;
	--promtool) promtool=1 ;;
	--bench) bench=1 ;;
	-h | --help)
		sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "ensure-services: unknown argument $arg (want --install-only, --browser, --promtool, --bench)" >&2
		exit 2
		;;
	esac
done

say() { echo "ensure-services: $*"; }

pg_bin_dir() {
	local d
	# Debian keeps the server binaries off PATH, one directory per version
	# (newest first). Version directories are plain numbers.
	for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5 -n -r); do
		if [[ -x $d/initdb && -x $d/postgres ]]; then
			echo "$d"
			return 0
		fi
	done
	if command -v initdb >/dev/null && command -v postgres >/dev/null; then
		dirname "$(command -v initdb)"
		return 0
	fi
	return 1
}

# answers HOST PORT: something accepts TCP connections there.
answers() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

pg_answers() {
	if command -v pg_isready >/dev/null; then
		pg_isready -q -h 127.0.0.1 -p 5432 -t 2
	else
		answers 127.0.0.1 5432
	fi
}

redis_answers() {
	if command -v redis-cli >/dev/null; then
		[[ $(timeout 3 redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null) == PONG ]]
	else
		answers 127.0.0.1 6379
	fi
}

# wait_for NAME CHECK: poll CHECK for up to 30 s.
wait_for() {
	local name=$1 check=$2 _
	for _ in $(seq 1 60); do
		if "$check"; then
			return 0
		fi
		sleep 0.5
	done
	say "$name did not answer within 30 s"
	return 1
}

# --- packages -------------------------------------------------------------
missing=()
pg_bin_dir >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
if ((browser)) && [[ ! -x /usr/bin/chromium ]]; then
	missing+=(chromium)
fi
if ((bench)) && ! command -v wrk >/dev/null; then
	missing+=(wrk)
fi
# promtool ships in Debian's prometheus package (the server, which is not
# wanted here, comes with it: see below). Its recommends (node exporter,
# smartmontools, ...) are not needed.
bare=()
if ((promtool)) && ! command -v promtool >/dev/null; then
	bare+=(prometheus)
fi

installed_postgres=0
wanted=("${missing[@]}" "${bare[@]}")
if ((${#wanted[@]})); then
	if [[ $(id -u) -ne 0 || ! -f /etc/debian_version ]] || ! command -v apt-get >/dev/null; then
		say "missing: ${wanted[*]}. Install them with:"
		if [[ -f /etc/debian_version ]]; then
			if ((${#missing[@]})); then
				echo "    sudo apt-get update && sudo apt-get install -y ${missing[*]}"
			fi
			if ((${#bare[@]})); then
				echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends ${bare[*]}"
			fi
		else
			echo "    (Debian/Ubuntu) sudo apt-get update && sudo apt-get install -y ${wanted[*]}"
			echo "    (macOS)         brew install postgresql redis prometheus"
		fi
		exit 1
	fi
	say "installing ${wanted[*]} with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	if ((${#missing[@]})); then
		apt-get install -y -q "${missing[@]}"
	fi
	if ((${#bare[@]})); then
		apt-get install -y -q --no-install-recommends "${bare[@]}"
		# Only promtool is wanted: where systemd runs, the package has just
		# enabled and started a Prometheus server on :9090.
		if [[ " ${bare[*]} " == *" prometheus "* && -d /run/systemd/system ]]; then
			say "disabling the prometheus service the package started (only promtool is used)"
			systemctl disable --now prometheus.service || true
		fi
	fi
	if [[ " ${missing[*]} " == *" postgresql "* ]]; then
		installed_postgres=1
	fi
fi

if ((install_only)); then
	exit 0
fi

# --- PostgreSQL -------------------------------------------------------------
if ((installed_postgres)) && [[ -d /etc/postgresql ]]; then
	# A fresh Debian cluster asks for passwords over TCP; the tests and the
	# dev stack connect as postgres, order_ingestor and order_reader without
	# one, as on the reference machine. Trust loopback connections on the
	# cluster this script just installed (never on one it found).
	for hba in /etc/postgresql/*/main/pg_hba.conf; do
		[[ -f $hba ]] || continue
		if ! grep -q 'ensure-services.sh' "$hba"; then
			say "trusting loopback connections in $hba"
			{
				echo "# added by scripts/ensure-services.sh for local development and tests"
				echo "local all all trust"
				echo "host all all 127.0.0.1/32 trust"
				echo "host all all ::1/128 trust"
				cat "$hba"
			} >"$hba.new"
			chown --reference="$hba" "$hba.new"
			chmod --reference="$hba" "$hba.new"
			mv "$hba.new" "$hba"
		fi
	done
fi

if pg_answers; then
	if ((installed_postgres)); then
		for conf in /etc/postgresql/*/main; do
			[[ -d $conf ]] || continue
			v=${conf#/etc/postgresql/}
			pg_ctlcluster --skip-systemctl-redirect "${v%/main}" main reload || true
		done
	fi
elif [[ $(id -u) -eq 0 ]] && command -v pg_ctlcluster >/dev/null; then
	version=""
	for conf in /etc/postgresql/*/main; do
		[[ -d $conf ]] || continue
		v=${conf#/etc/postgresql/}
		v=${v%/main}
		if [[ -z $version ]] || ((v > version)); then
			version=$v
		fi
	done
	if [[ -z $version ]]; then
		version=$(basename "$(dirname "$(pg_bin_dir)")")
		say "creating PostgreSQL cluster $version/main"
		pg_createcluster "$version" main || true
	fi
	say "starting PostgreSQL $version/main"
	# A failure here is not fatal: the tests fall back to throwaway servers.
	if ! pg_ctlcluster --skip-systemctl-redirect "$version" main start || ! wait_for PostgreSQL pg_answers; then
		say "PostgreSQL $version/main does not answer on 127.0.0.1:5432: tests will start throwaway servers"
	fi
else
	say "no PostgreSQL answers on 127.0.0.1:5432 and it cannot be started here: tests start throwaway servers from $(pg_bin_dir)"
fi

# --- Redis ------------------------------------------------------------------
if ! redis_answers; then
	if [[ $(id -u) -eq 0 ]]; then
		say "starting Redis on 127.0.0.1:6379"
		mkdir -p /var/lib/redis /var/log/redis
		if ! redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
			--dir /var/lib/redis --logfile /var/log/redis/ci.log || ! wait_for Redis redis_answers; then
			say "Redis does not answer on 127.0.0.1:6379: tests will start a throwaway redis-server"
		fi
	else
		say "no Redis answers on 127.0.0.1:6379 and it cannot be started here: tests start a throwaway redis-server"
	fi
fi
