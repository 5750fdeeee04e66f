#!/usr/bin/env bash
# Builds the Debian package and the RPM from a release build. Run from the repository root:
#   bash deploy/packaging/build.sh
# Environment:
#   PACKAGE_OUT      where the packages go (default target/packaging)
#   PACKAGE_PROFILE  the cargo profile whose binary is packaged (default release:
#                    target/release/studio-role-sync, brought up to date with `cargo build
#                    --release --locked`; `dev` packages target/debug's, for a quick try)
# Needs cargo-deb and cargo-generate-rpm (`cargo install --locked cargo-deb cargo-generate-rpm`).
#
# The files the packages hold that are not in the repository are made here, into
# $PACKAGE_OUT/files, because they come from the binary or from Cargo.lock and would go stale
# if checked in:
#   studio-role-sync.service   deploy/systemd/studio-role-sync.service with the package's
#                              paths (/usr/bin) and its system user instead of DynamicUser=
#   studio-role-sync.1.gz      `studio-role-sync man`
#   completions/               `studio-role-sync completions bash|zsh|fish`
#   copyright                  every bundled crate's licence (deploy/packaging/copyright.py)
#   changelog.Debian.gz        one entry for this version (Debian requires a changelog)
#   debian/, rpm/              the maintainer scripts with common.sh pasted in
#   studio-role-sync           the binary, stripped, for the RPM (cargo-deb strips its own)
set -euo pipefail

if [[ ! -f deploy/packaging/build.sh ]]; then
    echo "build.sh: run from the repository root: bash deploy/packaging/build.sh" >&2
    exit 2
fi
PROFILE=${PACKAGE_PROFILE:-release}
if [[ $PROFILE == dev ]]; then BIN=target/debug/studio-role-sync; else BIN=target/$PROFILE/studio-role-sync; fi
OUT=${PACKAGE_OUT:-target/packaging}
FILES=$OUT/files
SRC=deploy/packaging

# Up to date with the sources (nothing to do when .ci/run's release build already ran).
cargo build --profile "$PROFILE" --locked
for tool in cargo-deb cargo-generate-rpm; do
    command -v "$tool" >/dev/null || { echo "build.sh: $tool missing: cargo install --locked $tool" >&2; exit 2; }
done

rm -rf "$FILES"
mkdir -p "$FILES/completions" "$FILES/debian" "$FILES/rpm"
# Reproducible archives: file times and the changelog date are the last commit's.
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH

# The unit: the hardened one from deploy/systemd, with the package's binary path and its
# static system user (the config files are group-readable by it, the history is its own).
python3 - deploy/systemd/studio-role-sync.service "$FILES/studio-role-sync.service" <<'PY'
import sys
src, dst = sys.argv[1:]
text = open(src).read()
header, sep, body = text.partition("[Unit]\n")
edits = [("/usr/local/bin/studio-role-sync", "/usr/bin/studio-role-sync", 2),
         ("# A throw-away user, allocated at start; it owns only its state directory.\n"
          "DynamicUser=yes\n",
          "# The package's system user (/usr/lib/sysusers.d/studio-role-sync.conf): it owns only its\n"
          "# state directory, and reads the config files through its group.\n"
          "User=studio-role-sync\nGroup=studio-role-sync\n", 1)]
for old, new, least in edits:
    if body.count(old) < least:
        sys.exit(f"build.sh: {src} no longer has {old.strip()!r} ({least}x): update build.sh")
    body = body.replace(old, new)
head = ("# studio-role-sync: keeps Canvas Studio user roles equal to /etc/studio-role-sync/roles.yaml.\n"
        "# Installed by the studio-role-sync package (made from the project's\n"
        "# deploy/systemd/studio-role-sync.service: /usr/bin, and the system user studio-role-sync\n"
        "# from /usr/lib/sysusers.d/studio-role-sync.conf instead of DynamicUser=).\n"
        "# Write the Studio token to /etc/studio-role-sync/token (0600 root), then:\n"
        "#   systemctl start studio-role-sync\n"
        "#\n"
        "# Local changes belong in a drop-in (`systemctl edit studio-role-sync`), not in this file.\n\n")
open(dst, "w").write(head + sep + body)
PY

"$BIN" man | gzip -9n >"$FILES/studio-role-sync.1.gz"
"$BIN" completions bash >"$FILES/completions/studio-role-sync"
"$BIN" completions zsh >"$FILES/completions/_studio-role-sync"
"$BIN" completions fish >"$FILES/completions/studio-role-sync.fish"
python3 "$SRC/copyright.py" >"$FILES/copyright"

version=$(awk -F'"' '/^version = / { print $2; exit }' Cargo.toml)
revision=1
{
    echo "studio-role-sync ($version-$revision) unstable; urgency=medium"
    echo
    echo "  * studio-role-sync $version, built from commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
    echo "    The project's changes are in its git history."
    echo
    echo " -- studio-role-sync maintainers <studio-role-sync@users.noreply.github.com>  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$FILES/changelog.Debian.gz"

# Maintainer scripts: common.sh and the sysusers.d line pasted in.
sysusers_line=$(grep -v '^#' "$SRC/sysusers.conf" | grep .)
paste_common() { # src dst
    python3 - "$SRC/common.sh" "$1" "$2" "$sysusers_line" <<'PY'
import sys
common, src, dst, line = sys.argv[1:]
# Only a line that is exactly @COMMON@ (comments may name the marker).
text = open(src).read().replace("\n@COMMON@\n", "\n" + open(common).read().rstrip("\n") + "\n")
text = text.replace("@SYSUSERS_LINE@", line)
open(dst, "w").write(text)
PY
}
for s in postinst prerm postrm; do
    paste_common "$SRC/debian/$s" "$FILES/debian/$s"
    chmod 0755 "$FILES/debian/$s"
done
for s in pre post preun postun; do
    paste_common "$SRC/rpm/$s.sh" "$FILES/rpm/$s.sh"
done

strip --remove-section=.comment --remove-section=.note -o "$FILES/studio-role-sync" "$BIN"

start=$(date +%s.%N)
# cargo-deb reads the profile's binary (its asset path target/release/ stands for that) and
# strips its own copy.
cargo deb --no-build --locked --profile "$PROFILE" --deb-revision "$revision" --output "$OUT/"
cargo generate-rpm --output "$OUT/"
end=$(date +%s.%N)
echo "build.sh: packed in $(python3 -c "print(f'{$end - $start:.1f}')") s:"
ls -l "$OUT"/*.deb "$OUT"/*.rpm
