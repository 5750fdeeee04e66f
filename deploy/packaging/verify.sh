#!/usr/bin/env bash
# Checks of the packages that build.sh made, in throwaway roots (nothing is installed on this
# machine). Run from the repository root after build.sh:
#   bash deploy/packaging/verify.sh
# Environment:
#   PACKAGE_OUT  where build.sh put the packages (default target/packaging)
#   SIM_BIN      the simulator server (default: built with
#                `cargo build -p studio-sim --example serve`, target/debug/examples/serve)
#
# The .deb goes into a root of its own with `dpkg --root=ROOT --force-script-chrootless`:
# dpkg unpacks there and runs the maintainer scripts on this machine with DPKG_ROOT=ROOT,
# which they (and systemd-sysusers, useradd, deb-systemd-helper) honour. That root holds no
# shell or libraries of its own, so no chroot is needed, and the package's own binary runs
# from it against this machine's libc (the root's dpkg database lists the host's libc6).
# Checks:
#   (a) lintian: no error, no warning that lintian-overrides does not explain;
#   (b) a first install (with systemd-sysusers hidden, so the useradd fallback runs): files,
#       owners and modes, the system user, conffiles, the unit enabled, `--version`,
#       `systemd-analyze verify` of the installed unit, and `validate` naming the empty token;
#   (c) install the previous build, configure it as an admin does (token, Studio URL, an
#       edited roles.yaml), `validate --online` and `apply` against the simulator; upgrade;
#       the edited conffiles, the token and the history are kept; `plan` finds nothing to do;
#   (d) `dpkg -r` keeps config and history; purge removes the config and keeps the history,
#       unless STUDIO_ROLE_SYNC_PURGE_HISTORY=yes;
#   (e) the .rpm: `rpm -qlp` lists the .deb's files (zsh's folder differs), with the config
#       files %config(noreplace), 0640 root:studio-role-sync, and the four scriptlets.
# Exits non-zero when any check fails.
set -euo pipefail

if [[ ! -f deploy/packaging/verify.sh ]]; then
    echo "verify.sh: run from the repository root: bash deploy/packaging/verify.sh" >&2
    exit 2
fi
OUT=${PACKAGE_OUT:-target/packaging}
FAILED=0
pass() { printf 'PASS  %s\n' "$*"; }
fail() { FAILED=$((FAILED + 1)); printf 'FAIL  %s\n' "$*"; }
indent() { sed 's/^/      | /'; }
check() { # description command...: PASS when the command succeeds
    local what=$1
    shift
    local out
    if out=$("$@" 2>&1); then pass "$what"; else fail "$what"; printf '%s\n' "$out" | indent; fi
}

shopt -s nullglob
debs=("$OUT"/studio-role-sync_*.deb)
rpms=("$OUT"/studio-role-sync-*.rpm)
shopt -u nullglob
if [[ ${#debs[@]} -ne 1 || ${#rpms[@]} -ne 1 ]]; then
    echo "verify.sh: expected one .deb and one .rpm in $OUT (run deploy/packaging/build.sh)" >&2
    exit 2
fi
DEB=${debs[0]}
RPM=${rpms[0]}

missing=()
for t in dpkg lintian rpm systemd-analyze useradd; do command -v "$t" >/dev/null || missing+=("$t"); done
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "== installing ${missing[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        dpkg lintian rpm systemd passwd >/dev/null
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/studio-role-sync-packages.XXXXXX")
SIM_PID=
cleanup() {
    [[ -z $SIM_PID ]] || kill "$SIM_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# ---- (a) lintian ----------------------------------------------------------------------------
echo "== lintian $(lintian --version | awk '{print $2}') on $(basename "$DEB")"
set +e
lint=$(lintian --fail-on error,warning --display-info "$DEB" 2>&1)
lint_rc=$?
set -e
overridden=$(grep -c '^studio-role-sync:' deploy/packaging/lintian-overrides || true)
if [[ $lint_rc -eq 0 ]]; then
    pass "lintian: no error, no unexplained warning ($overridden overridden, each with its reason)"
else
    fail "lintian (exit $lint_rc)"
fi
# What is left: information tags (and, on failure, what failed).
grep -v 'running with root privileges' <<<"$lint" | indent || true

# ---- a throwaway root for dpkg --------------------------------------------------------------
new_root() { # dir: an empty system with a dpkg database, root in passwd, the host's libc6
    local r=$1
    mkdir -p "$r/etc" "$r/var/lib/dpkg/info" "$r/var/lib/dpkg/updates" "$r/var/lib/dpkg/triggers"
    : >"$r/var/lib/dpkg/available"
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$r/etc/passwd"
    printf 'root:x:0:\n' >"$r/etc/group"
    printf 'root:*:19000:0:99999:7:::\n' >"$r/etc/shadow"
    printf 'root:*::\n' >"$r/etc/gshadow"
    chmod 0640 "$r/etc/shadow" "$r/etc/gshadow"
    # The package's dependencies, as installed on this machine (the binary runs with its libc).
    local deps
    deps=$(dpkg-deb -f "$DEB" Depends | tr ',' '\n' | sed -E 's/[[:space:]]*\(.*//; s/\|.*//; s/[[:space:]]//g' | grep .)
    for p in $deps; do
        dpkg-query -s "$p"
        echo
        # Its file list, empty: the root holds none of its files (and dpkg need not warn).
        : >"$r/var/lib/dpkg/info/$(dpkg-query -W -f '${binary:Package}' "$p").list"
    done >"$r/var/lib/dpkg/status"
}
dpkg_in() { # root args...: dpkg on that root, maintainer scripts run outside a chroot
    local r=$1
    shift
    dpkg --root="$r" --force-script-chrootless --log="$WORK/dpkg.log" "$@"
}
mode_of() { stat -c '%a %U:%G' "$1" 2>/dev/null | sed 's/UNKNOWN//g'; }
# Owners by name from the root's own passwd/group (this machine has no such user).
owner_in() { # root path -> "MODE USER:GROUP"
    local r=$1 p=$2 mode uid gid u g
    read -r mode uid gid < <(stat -c '%a %u %g' "$r$p") || return 1
    u=$(awk -F: -v id="$uid" '$3 == id { print $1; exit }' "$r/etc/passwd")
    g=$(awk -F: -v id="$gid" '$3 == id { print $1; exit }' "$r/etc/group")
    echo "$mode ${u:-$uid}:${g:-$gid}"
}
expect_owner() { # root path "MODE USER:GROUP"
    local got
    got=$(owner_in "$1" "$2" 2>/dev/null || echo missing)
    if [[ $got == "$3" ]]; then pass "$2: $3"; else fail "$2: $got, expected $3"; fi
}

# ---- (b) a first install --------------------------------------------------------------------
version=$(dpkg-deb -f "$DEB" Version)
echo "== first install of $(basename "$DEB") into a throwaway root (useradd fallback)"
R=$WORK/fresh
new_root "$R"
# PATH without systemd-sysusers: the maintainer scripts fall back to useradd.
mkdir "$WORK/nosysusers"
for f in /usr/sbin/* /usr/bin/*; do
    [[ $(basename "$f") == systemd-sysusers ]] || ln -sf "$f" "$WORK/nosysusers/"
done
set +e
out=$(PATH=$WORK/nosysusers dpkg_in "$R" -i "$DEB" 2>&1)
rc=$?
set -e
if [[ $rc -eq 0 ]] && dpkg_in "$R" -s studio-role-sync | grep -q '^Status: install ok installed'; then
    pass "dpkg -i $version: installed"
else
    fail "dpkg -i $version (exit $rc)"
fi
[[ -z $out ]] || printf '%s\n' "$out" | indent
for f in /usr/bin/studio-role-sync; do expect_owner "$R" "$f" "755 root:root"; done
for f in /usr/lib/systemd/system/studio-role-sync.service /usr/lib/sysusers.d/studio-role-sync.conf \
    /usr/share/man/man1/studio-role-sync.1.gz /usr/share/bash-completion/completions/studio-role-sync \
    /usr/share/zsh/vendor-completions/_studio-role-sync /usr/share/fish/vendor_completions.d/studio-role-sync.fish \
    /usr/share/doc/studio-role-sync/copyright /usr/share/doc/studio-role-sync/changelog.Debian.gz; do
    expect_owner "$R" "$f" "644 root:root"
done
expect_owner "$R" /etc/studio-role-sync/studio-role-sync.yaml "640 root:studio-role-sync"
expect_owner "$R" /etc/studio-role-sync/roles.yaml "640 root:studio-role-sync"
expect_owner "$R" /etc/studio-role-sync/token "600 root:root"
expect_owner "$R" /var/lib/studio-role-sync "700 studio-role-sync:studio-role-sync"
check "/etc/studio-role-sync/token is an empty placeholder" test ! -s "$R/etc/studio-role-sync/token"
user=$(grep '^studio-role-sync:' "$R/etc/passwd" || true)
uid=$(cut -d: -f3 <<<"$user")
if [[ -n $user && $uid -lt 1000 && $user == *:/var/lib/studio-role-sync:/usr/sbin/nologin ]]; then
    pass "system user: $user"
else
    fail "system user: '${user:-none}' (want a uid < 1000, home /var/lib/studio-role-sync, /usr/sbin/nologin)"
fi
conffiles=$(dpkg_in "$R" -s studio-role-sync | awk '/^Conffiles:/ { on = 1; next } /^[^ ]/ { on = 0 } on { print $1 }' | sort | paste -sd' ')
if [[ $conffiles == "/etc/studio-role-sync/roles.yaml /etc/studio-role-sync/studio-role-sync.yaml" ]]; then
    pass "conffiles: $conffiles"
else
    fail "conffiles: '$conffiles'"
fi
link=$R/etc/systemd/system/multi-user.target.wants/studio-role-sync.service
if [[ $(readlink "$link" 2>/dev/null) == /usr/lib/systemd/system/studio-role-sync.service ]]; then
    pass "unit enabled (multi-user.target.wants), not started on install"
else
    fail "unit not enabled: $link -> $(readlink "$link" 2>/dev/null || echo missing)"
fi
upstream=${version%-*}
check "studio-role-sync --version is $upstream" \
    bash -c "\"$R/usr/bin/studio-role-sync\" --version | grep -qx 'studio-role-sync $upstream'"
# systemd-analyze verify --root would look for all of systemd (sysinit.target, /bin/kill)
# inside the root, which holds only this package: verify the installed unit on this machine,
# its binary path pointed at the binary in the root.
unit_copy=$WORK/studio-role-sync.service
sed "s|/usr/bin/studio-role-sync|$R/usr/bin/studio-role-sync|g" \
    "$R/usr/lib/systemd/system/studio-role-sync.service" >"$unit_copy"
set +e
verify_out=$(SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "$unit_copy" 2>&1)
verify_rc=$?
set -e
if [[ $verify_rc -eq 0 && -z $verify_out ]]; then
    pass "systemd-analyze verify: the installed unit, no errors, no warnings"
else
    fail "systemd-analyze verify of the installed unit (exit $verify_rc; any output counts)"
    printf '%s\n' "$verify_out" | indent
fi
set +e
security_out=$(SYSTEMD_LOG_COLOR=0 systemd-analyze security --offline=true --threshold=20 --no-pager "$unit_copy" 2>&1)
security_rc=$?
set -e
exposure=$(grep -E 'Overall exposure level' <<<"$security_out" | sed 's/^→ *//' || true)
if [[ $security_rc -eq 0 && -n $exposure ]]; then
    pass "systemd-analyze security of the installed unit: $exposure (threshold 2.0)"
else
    fail "systemd-analyze security of the installed unit (exit $security_rc): ${exposure:-no result}"
fi
set +e
out=$(env -u STUDIO_ROLE_SYNC_CONFIG "$R/usr/bin/studio-role-sync" \
    --config "$R/etc/studio-role-sync/studio-role-sync.yaml" validate 2>&1)
rc=$?
set -e
# The packaged config reads the token from the service's credential (absent outside the
# service): validate must refuse it, naming the file and line.
if [[ $rc -eq 1 && $out == *studio-role-sync.yaml*token_file* ]]; then
    pass "validate on the untouched config: exit 1, names token_file"
else
    fail "validate on the untouched config: exit $rc"
fi
printf '%s\n' "$out" | head -n 3 | indent


# ---- (c) upgrade over the previous build, configured as an admin does ------------------------
echo "== previous build, configured against the simulator, then the upgrade to $version"
# The previous build: this .deb relabelled $upstream~prev-1, whose config has one more comment
# line, so the upgrade brings a new version of a conffile the admin has edited.
P=$WORK/prev
dpkg-deb -R "$DEB" "$P"
sed -i "s/^Version: .*/Version: $upstream~prev-1/" "$P/DEBIAN/control"
echo "# (previous build)" >>"$P/etc/studio-role-sync/studio-role-sync.yaml"
if [[ -f $P/DEBIAN/md5sums ]]; then
    (cd "$P" && md5sum etc/studio-role-sync/studio-role-sync.yaml) >"$WORK/md5"
    grep -v ' etc/studio-role-sync/studio-role-sync.yaml$' "$P/DEBIAN/md5sums" >>"$WORK/md5"
    cp "$WORK/md5" "$P/DEBIAN/md5sums"
fi
dpkg-deb --root-owner-group -Zgzip -z1 -b "$P" "$WORK/prev.deb" >/dev/null
R=$WORK/upgrade
new_root "$R"
check "dpkg -i $upstream~prev-1 (systemd-sysusers creates the user)" dpkg_in "$R" -i "$WORK/prev.deb"
check "system user created by systemd-sysusers" grep -q '^studio-role-sync:' "$R/etc/passwd"

SIM_BIN=${SIM_BIN:-}
if [[ -z $SIM_BIN ]]; then
    cargo build --locked --quiet -p studio-sim --example serve
    SIM_BIN=target/debug/examples/serve
fi
mkfifo "$WORK/sim.in"
exec 7<>"$WORK/sim.in"
# Studio: alice and dave hold no role yet; bob and the break-glass account are Admins.
"$SIM_BIN" verify-token alice@myschool.edu bob.smith@myschool.edu=Admin \
    breakglass@myschool.edu=Admin dave@myschool.edu <&7 >"$WORK/sim.url" 2>"$WORK/sim.log" &
SIM_PID=$!
for _ in $(seq 1 100); do [[ -s $WORK/sim.url ]] && break; sleep 0.1; done
url=$(head -n1 "$WORK/sim.url")
echo "      simulator at ${url:-?}"

# The admin's edits: the token, the Studio URL, and dave in roles.yaml. The token and the
# history paths point into the root (outside the service, there is no credential folder).
E=$R/etc/studio-role-sync
printf 'verify-token\n' >"$E/token"
sed -i -E "s|^  base_url: .*|  base_url: $url|; s|^  token_file: .*|  token_file: $E/token|; s|^history: .*|history: $R/var/lib/studio-role-sync/history.db|" \
    "$E/studio-role-sync.yaml"
printf '  dave@myschool.edu: [Admin]\n' >>"$E/roles.yaml"
srs() { env -u STUDIO_ROLE_SYNC_CONFIG "$R/usr/bin/studio-role-sync" --config "$E/studio-role-sync.yaml" "$@"; }
check "validate --online: the packaged config, edited, against the simulator" srs validate --online
check "apply: adds Admin to alice and dave (exit 0)" srs apply
check "plan after apply: nothing to change (exit 0)" srs plan
before=$(srs history --format csv 2>&1 || true)
if [[ $(grep -c . <<<"$before") -ge 2 ]]; then pass "history holds the runs"; else fail "history: $before"; fi

set +e
out=$(dpkg_in "$R" --force-confold -i "$DEB" 2>&1)
rc=$?
set -e
if [[ $rc -eq 0 && $(dpkg_in "$R" -s studio-role-sync | awk '/^Version:/ { print $2 }') == "$version" ]]; then
    pass "upgrade to $version (dpkg --force-confold, as apt-get -y with Dpkg::Options does)"
else
    fail "upgrade to $version (exit $rc)"
fi
[[ -z $out ]] || printf '%s\n' "$out" | indent
check "edited studio-role-sync.yaml kept (simulator URL)" grep -qF "base_url: $url" "$E/studio-role-sync.yaml"
check "the new default config offered beside it (.dpkg-dist)" test -f "$E/studio-role-sync.yaml.dpkg-dist"
check "edited roles.yaml kept (dave)" grep -q '^  dave@myschool.edu: \[Admin\]' "$E/roles.yaml"
check "token kept" grep -qx verify-token "$E/token"
expect_owner "$R" /etc/studio-role-sync/studio-role-sync.yaml "640 root:studio-role-sync"
after=$(srs history --format csv 2>&1 || true)
if [[ -n $before && $after == "$before"* ]]; then pass "history kept: the same runs after the upgrade"; else
    fail "history after the upgrade differs"; diff <(echo "$before") <(echo "$after") | indent || true; fi
check "plan after the upgrade: nothing to change (exit 0)" srs plan

# ---- (d) remove and purge --------------------------------------------------------------------
echo "== dpkg -r, then purge"
check "dpkg -r" dpkg_in "$R" -r studio-role-sync
check "removed: the binary and the unit are gone" \
    test ! -e "$R/usr/bin/studio-role-sync" -a ! -e "$R/usr/lib/systemd/system/studio-role-sync.service"
check "removed: the history stays" test -s "$R/var/lib/studio-role-sync/history.db"
check "removed: the config and the token stay" test -s "$E/studio-role-sync.yaml" -a -s "$E/token"
check "dpkg --purge" dpkg_in "$R" --purge studio-role-sync
check "purged: /etc/studio-role-sync is gone (config, token, .dpkg-dist)" test ! -e "$E"
check "purged: the history stays (not asked to remove it)" test -s "$R/var/lib/studio-role-sync/history.db"
check "reinstall $version over the kept history" dpkg_in "$R" -i "$DEB"
purge_history() { STUDIO_ROLE_SYNC_PURGE_HISTORY=yes dpkg_in "$R" --purge studio-role-sync; }
check "purge with STUDIO_ROLE_SYNC_PURGE_HISTORY=yes" purge_history
check "purged as asked: the history is gone" test ! -e "$R/var/lib/studio-role-sync"

# ---- (e) the RPM -----------------------------------------------------------------------------
echo "== $(basename "$RPM")"
# The .deb's files, with Debian's zsh folder as Fedora's, less what only Debian has.
deb_files=$(dpkg-deb --fsys-tarfile "$DEB" | tar -t | grep -v '/$' | sed 's|^\./|/|; s|/zsh/vendor-completions/|/zsh/site-functions/|' |
    grep -vE '/changelog\.Debian\.gz$|^/usr/share/lintian/' | sort || true)
rpm_files=$(rpm -qlp "$RPM" 2>/dev/null | sort || true)
if [[ -n $rpm_files && $rpm_files == "$deb_files" ]]; then
    pass "rpm -qlp lists the .deb's $(wc -l <<<"$rpm_files") files"
else
    fail "rpm -qlp differs from the .deb (< deb, > rpm)"
    diff <(echo "$deb_files") <(echo "$rpm_files") | indent || true
fi
conf=$(rpm -qp --qf '[%{FILENAMES} %{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILEFLAGS:fflags}\n]' "$RPM" 2>/dev/null | grep '^/etc/' || true)
want="/etc/studio-role-sync/roles.yaml -rw-r----- root:studio-role-sync cn
/etc/studio-role-sync/studio-role-sync.yaml -rw-r----- root:studio-role-sync cn"
if [[ $conf == "$want" ]]; then pass "rpm config files: 0640 root:studio-role-sync, %config(noreplace)"; else
    fail "rpm config files:"; printf '%s\n' "$conf" | indent; fi
scripts=$(rpm -qp --scripts "$RPM" 2>/dev/null | grep -oE '^(preinstall|postinstall|preuninstall|postuninstall) scriptlet' | paste -sd, -)
if [[ $scripts == "preinstall scriptlet,postinstall scriptlet,preuninstall scriptlet,postuninstall scriptlet" ]]; then
    pass "rpm scriptlets: %pre (user), %post (enable), %preun (stop on erase), %postun (restart on upgrade)"
else
    fail "rpm scriptlets: $scripts"
fi

echo
if [[ $FAILED -eq 0 ]]; then
    echo "verify: OK, every package check passed"
else
    echo "verify: FAILED; see the FAIL lines above"
    exit 1
fi
